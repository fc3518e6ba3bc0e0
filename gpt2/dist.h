/* SPDX-License-Identifier: MIT */
/*
 * Data-parallel training across processes (CONFIG_DISTRIBUTED): one rank
 * per process, launched by `mpirun -np N` (make NP=N) or Slurm's srun, on
 * OpenMPI. Every rank holds the whole model; each optimizer step's
 * GPT2_ACCUM * N micro-batches are dealt out round-robin (micro-batch j
 * to rank j mod N), the gradients summed with MPI_Allreduce, and every
 * rank then takes the same optimizer step. N ranks at accumulation A
 * train exactly as one process at accumulation A * N (same data order,
 * same dropout masks), up to the rounding of the sum. Rank 0 alone
 * writes the run folder, the checkpoints and the metrics.
 *
 * Without CONFIG_DISTRIBUTED these are inline no-ops of one rank, and
 * nothing of MPI is compiled or linked.
 */
#ifndef KGPT_DIST_H
#define KGPT_DIST_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include "gpt2/config.h"
#include "kgpt/real.h"

#if IS_ENABLED(CONFIG_DISTRIBUTED)

/*
 * Start MPI (MPI_Init_thread, funneled: only the main thread calls MPI)
 * and learn this process's rank and the number of ranks. Call once,
 * first thing in main(). Returns 0, or 1 after a message when MPI cannot
 * start (the launcher's output says why).
 */
int dist_init(int *argc, char ***argv);

/* Leave MPI after every rank is done; call before returning from main(). */
void dist_finalize(void);

/* This process's rank, 0 .. dist_size() - 1, and the number of ranks. */
int dist_rank(void);
int dist_size(void);

/*
 * Sum buf (n reals, float32, float64 in KGPT_F64 builds) over the ranks,
 * in place: afterwards every rank holds the same sum. Large buffers go in
 * pieces of at most 2^28 elements (MPI counts are int).
 */
void dist_sum_reals(real *buf, size_t n);

/* Same for n doubles (losses, counts). */
void dist_sum_doubles(double *buf, size_t n);

/* Element-wise maximum of n doubles over the ranks, in place. */
void dist_max_doubles(double *buf, size_t n);

/* Copy `bytes` bytes at buf from rank 0 to every rank. */
void dist_bcast(void *buf, size_t bytes);

/* 1 on every rank when flag is non-zero on any of them (logical OR). */
int dist_any(int flag);

/*
 * Stop every rank now with exit status code, after this rank printed why
 * (MPI_Abort: the launcher kills the other ranks; use where the ranks can
 * no longer agree, e.g. rank 0 failed to start the run).
 */
void __attribute__((noreturn)) dist_abort(int code);

#else /* !CONFIG_DISTRIBUTED */

/*
 * One process: started by mpirun or srun as one of several ranks, every
 * rank would train the whole model alone into the same run folder, so
 * that is refused with a message. Returns 0, or 1 after the message.
 */
static inline int dist_init(int *argc, char ***argv)
{
	static const char *const vars[] = {
		"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS",
	};

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		const char *v = getenv(vars[i]);

		if (v && atoi(v) > 1) {
			fprintf(stderr, "kgpt: started as one of %s ranks (%s), but this trainer "
				"was built without CONFIG_DISTRIBUTED: every rank would train "
				"alone into the same run folder. Say y to 'Data-parallel "
				"training (MPI)' (make menuconfig, Training) or run one "
				"process.\n", v, vars[i]);
			return 1;
		}
	}
	return 0;
}

static inline void dist_finalize(void) {}
static inline int dist_rank(void) { return 0; }
static inline int dist_size(void) { return 1; }
static inline void dist_sum_reals(real *buf, size_t n) {}
static inline void dist_sum_doubles(double *buf, size_t n) {}
static inline void dist_max_doubles(double *buf, size_t n) {}
static inline void dist_bcast(void *buf, size_t bytes) {}
static inline int dist_any(int flag) { return flag != 0; }

#endif /* CONFIG_DISTRIBUTED */

/* 1 on the rank that writes files and prints progress. */
static inline int dist_is_root(void)
{
	return dist_rank() == 0;
}

#endif /* KGPT_DIST_H */
