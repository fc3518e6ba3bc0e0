/* SPDX-License-Identifier: MIT */
/*
 * Private helpers of the CPU kernels: splitting work among the threads of
 * an OpenMP team; the vectorisable exponentials (kexp(), kexp_sum()) and
 * OpenMP's calls come from include/kgpt/ as for the other host code.
 */
#ifndef KGPT_KERNELS_CPU_KUTIL_H
#define KGPT_KERNELS_CPU_KUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "kgpt/real.h"
#include "kgpt/fastmath.h"
#include "kgpt/omp.h"

/* Below this many elements a loop runs on one thread: waking the team
 * costs more than it saves. */
#define KPAR_MIN	16384

/*
 * Range [*lo, *hi) of [0, n) for the calling thread of the current team,
 * cut at multiples of align elements (align 16 floats = one cache line,
 * so no two threads write the same line). Threads past the end get an
 * empty range.
 */
static inline void kthread_range(size_t n, size_t align, size_t *lo,
				 size_t *hi)
{
	size_t nt = (size_t)omp_get_num_threads();
	size_t t = (size_t)omp_get_thread_num();
	size_t blocks = (n + align - 1) / align;
	size_t b0 = blocks * t / nt, b1 = blocks * (t + 1) / nt;

	*lo = b0 * align < n ? b0 * align : n;
	*hi = b1 * align < n ? b1 * align : n;
}

#endif /* KGPT_KERNELS_CPU_KUTIL_H */
