// SPDX-License-Identifier: MIT
/*
 * Data-parallel training over MPI (gpt2/dist.h), CONFIG_DISTRIBUTED.
 *
 * Only the main thread calls MPI (MPI_THREAD_FUNNELED); the OpenMP
 * threads of the kernels never do. Errors are fatal (MPI's default
 * handler): a rank that dies makes the launcher stop the whole job, so
 * no rank waits forever in a collective.
 */
#include "gpt2/dist.h"

/* built only with CONFIG_DISTRIBUTED (gpt2/Kbuild); the guard keeps a
 * syntax check of every file in other configurations quiet */
#if IS_ENABLED(CONFIG_DISTRIBUTED)
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#define DIST_CHUNK	((size_t)1 << 28)	/* elements per MPI call */

static int rank, size = 1;

int dist_init(int *argc, char ***argv)
{
	int provided = 0;

	if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
		fprintf(stderr, "kgpt: MPI_Init failed: start the trainer with mpirun or srun "
			"(make NP=N), see README, Data-parallel training\n");
		return 1;
	}
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	return 0;
}

void dist_finalize(void)
{
	MPI_Finalize();
}

int dist_rank(void)
{
	return rank;
}

int dist_size(void)
{
	return size;
}

static void sum_in_place(void *buf, size_t n, size_t elem, MPI_Datatype type)
{
	char *p = buf;

	if (size == 1)
		return;
	for (size_t done = 0; done < n; done += DIST_CHUNK) {
		size_t k = n - done < DIST_CHUNK ? n - done : DIST_CHUNK;

		MPI_Allreduce(MPI_IN_PLACE, p + done * elem, (int)k, type, MPI_SUM,
			      MPI_COMM_WORLD);
	}
}

void dist_sum_reals(real *buf, size_t n)
{
	sum_in_place(buf, n, sizeof(real), sizeof(real) == sizeof(double) ? MPI_DOUBLE :
		     MPI_FLOAT);
}

void dist_sum_doubles(double *buf, size_t n)
{
	sum_in_place(buf, n, sizeof(double), MPI_DOUBLE);
}

void dist_max_doubles(double *buf, size_t n)
{
	if (size > 1)
		MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
}

void dist_bcast(void *buf, size_t bytes)
{
	char *p = buf;

	if (size == 1)
		return;
	for (size_t done = 0; done < bytes; done += DIST_CHUNK) {
		size_t k = bytes - done < DIST_CHUNK ? bytes - done : DIST_CHUNK;

		MPI_Bcast(p + done, (int)k, MPI_BYTE, 0, MPI_COMM_WORLD);
	}
}

int dist_any(int flag)
{
	int in = flag != 0, out = in;

	if (size > 1)
		MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
	return out;
}

void dist_abort(int code)
{
	fflush(stdout);
	fflush(stderr);
	MPI_Abort(MPI_COMM_WORLD, code);
	exit(code);	/* not reached */
}

#endif /* CONFIG_DISTRIBUTED */
