// SPDX-License-Identifier: MIT
/*
 * peak: the fp32 peak of this machine, measured (scripts/bench.sh builds
 * and runs it; it prints one JSON object).
 *
 * Every OpenMP thread runs independent chains of vector fused multiply-adds
 * (enough of them to hide the FMA latency on both FMA units) and divides
 * its flops by its own CPU time: that is one core's peak at the clock it
 * runs at, whatever else the machine is doing. On a virtual machine a
 * core can still be slowed by work on its hardware sibling, so each
 * thread keeps the best of TRIALS runs. The machine's peak is the sum
 * over the threads (one per core). The wall-clock rate of all trials is
 * printed too: on an idle machine the two agree, on a loaded one the
 * wall-clock figure shows the share the benchmark got.
 *
 * AVX2 + FMA (Zen 3): 2 FMA units x 8 floats x 2 flops = 32 flops per
 * cycle and core; AVX-512 doubles the width.
 */
#include <stdio.h>
#include <time.h>
#include <omp.h>

#ifdef __AVX512F__
#define VW	16	/* floats per vector register */
#else
#define VW	8
#endif
#define NACC	12	/* independent chains: > latency 4 x 2 FMA units */
#define ITERS	20000000L	/* per trial: 0.1 s at 3 GHz (AVX2) */
#define TRIALS	7

typedef float vf __attribute__((vector_size(VW * sizeof(float))));

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ITERS rounds of a = a * mul + add on NACC chains of VW floats. */
static float fma_chains(float seed)
{
	vf mul = { 0 }, add = { 0 }, s;
	vf a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11;
	float r = 0;

	mul += 0.999999f;
	add += 1e-7f;
	a0 = mul * seed, a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3, a4 = a0 + 4;
	a5 = a0 + 5, a6 = a0 + 6, a7 = a0 + 7, a8 = a0 + 8, a9 = a0 + 9;
	a10 = a0 + 10, a11 = a0 + 11;
	for (long it = 0; it < ITERS; it++) {
		a0 = a0 * mul + add, a1 = a1 * mul + add, a2 = a2 * mul + add;
		a3 = a3 * mul + add, a4 = a4 * mul + add, a5 = a5 * mul + add;
		a6 = a6 * mul + add, a7 = a7 * mul + add, a8 = a8 * mul + add;
		a9 = a9 * mul + add, a10 = a10 * mul + add, a11 = a11 * mul + add;
	}
	s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
	for (int i = 0; i < VW; i++)
		r += s[i];
	return r;
}

int main(void)
{
	const double flops = (double)ITERS * NACC * VW * 2;	/* per trial */
	double peak = 0, wall, w0;
	float sink = 0;
	int nt = omp_get_max_threads();

	w0 = clock_s(CLOCK_MONOTONIC);
#pragma omp parallel reduction(+:peak, sink)
	{
		double best = 0;

		for (int t = 0; t < TRIALS; t++) {
			double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID), r;

			sink += fma_chains(1.0f + omp_get_thread_num() + t);
			r = flops / (clock_s(CLOCK_THREAD_CPUTIME_ID) - c0) / 1e9;
			best = r > best ? r : best;
		}
		peak += best;
	}
	wall = nt * TRIALS * flops / (clock_s(CLOCK_MONOTONIC) - w0) / 1e9;
	printf("{\"threads\": %d, \"peak_gflops\": %.1f, \"per_core_gflops\": %.1f, "
	       "\"wall_gflops\": %.1f, \"flops_per_cycle\": %d, \"ghz\": %.2f, \"sink\": %g}\n",
	       nt, peak, peak / nt, wall, 4 * VW, peak / nt / (4 * VW), sink);
	return 0;
}
