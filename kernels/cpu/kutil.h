/* SPDX-License-Identifier: MIT */
/*
 * Private helpers of the CPU kernels: splitting work among the threads of
 * an OpenMP team, and an exponential that gcc vectorises at -O2.
 */
#ifndef KGPT_KERNELS_CPU_KUTIL_H
#define KGPT_KERNELS_CPU_KUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "kgpt/real.h"

#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
static inline int omp_get_max_threads(void) { return 1; }
#endif

/* max over x[0..n), -INFINITY for n = 0. */
static inline real kmax(const real *x, int n)
{
	real m = -INFINITY;

#pragma omp simd reduction(max:m)
	for (int j = 0; j < n; j++)
		m = x[j] > m ? x[j] : m;
	return m;
}

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

/*
 * Hide a value from the optimiser (the idea of Linux's OPTIMIZER_HIDE_VAR).
 * With constant clamp bounds, gcc -O2 partial-redundancy elimination
 * specialises kexp() on the clamped paths, the loop body gets branches and
 * is no longer vectorised. Bounds that come through this stay symbolic.
 */
#define KHIDE(v)	__asm__("" : "+m"(v))

/* Bounds for the argument of kexp(): e^-87 = 1.6e-38 and e^88 = 1.7e38
 * are still normal floats (e^-708, e^709 normal doubles). Callers copy
 * them to locals and KHIDE() them. */
#ifdef KGPT_F64
#define KEXP_LO		(-708.0)
#define KEXP_HI		709.0
#else
#define KEXP_LO		(-87.0f)
#define KEXP_HI		88.0f
#endif

/*
 * e^x for x in [lo, hi] = [KEXP_LO, KEXP_HI]; outside it, x is clamped
 * (so in float e^-1000 gives 1.6e-38, not 0, and nothing overflows).
 * float: x = k ln2 + r, |r| <= ln2/2, k = rint(x / ln2) by the 1.5*2^23
 * rounding trick, ln2 split in two (Cody & Waite 1980) so k*ln2_hi is
 * exact, e^r by its Taylor series to r^7 (truncation < 6e-9 relative),
 * 2^k assembled in the exponent field. Max error about 2 ulp, no branches,
 * no calls, so loops around it vectorise. double (gradient tests): exp().
 */
static inline real kexp(real x, real lo, real hi)
{
#ifdef KGPT_F64
	x = x < lo ? lo : x;
	x = x > hi ? hi : x;
	return exp(x);
#else
	const float shift = 12582912.0f;		/* 1.5 * 2^23 */
	float k, r, p, s;
	int32_t bits;

	x = x < lo ? lo : x;
	x = x > hi ? hi : x;
	k = x * 1.44269504088896341f + shift;
	k -= shift;
	r = x - k * 0.693145751953125f;
	r -= k * 1.428606765330187e-6f;
	p = 1.0f / 5040.0f;
	p = p * r + 1.0f / 720.0f;
	p = p * r + 1.0f / 120.0f;
	p = p * r + 1.0f / 24.0f;
	p = p * r + 1.0f / 6.0f;
	p = p * r + 0.5f;
	p = p * r + 1.0f;
	p = p * r + 1.0f;
	bits = ((int32_t)k + 127) << 23;
	memcpy(&s, &bits, sizeof(s));
	return p * s;
#endif
}

#endif /* KGPT_KERNELS_CPU_KUTIL_H */
