/* SPDX-License-Identifier: MIT */
/*
 * Exponentials that gcc vectorises, for host code: the CPU backend's
 * kernels (kernels/cpu/) and the host-side cache walk of KV-cache pruning
 * (ra/kvprune.c), which must round exactly as the CPU attention does.
 * Header-only (static inline), generic GCC vectors, no ISA intrinsics.
 */
#ifndef KGPT_FASTMATH_H
#define KGPT_FASTMATH_H

#include <stdint.h>
#include <string.h>
#include "kgpt/real.h"

/* The 32-byte vector helpers below are static; without -mavx gcc warns
 * that returning such vectors would change a public ABI, which none is. */
#pragma GCC diagnostic ignored "-Wpsabi"

/* max over x[0..n), -INFINITY for n = 0. */
static inline real kmax(const real *x, int n)
{
	real m = -INFINITY;

#pragma omp simd reduction(max:m)
	for (int j = 0; j < n; j++)
		m = x[j] > m ? x[j] : m;
	return m;
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

#ifdef KGPT_F64
/* float64 (gradient tests): the C library's exp. x[j] = e^(x[j] - c) for
 * j < n; returns the sum. */
static inline real kexp_sum(real *x, int n, real c)
{
	real s = 0;

	for (int j = 0; j < n; j++) {
		x[j] = exp(x[j] - c);
		s += x[j];
	}
	return s;
}
#else
#define KVN	8
typedef float kvf __attribute__((vector_size(KVN * sizeof(float))));
typedef int32_t kvi __attribute__((vector_size(KVN * sizeof(float))));

static inline kvf kvload(const float *p)
{
	kvf v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* lanes of a where mask, of b elsewhere */
#define KVSEL(mask, a, b)	((kvf)(((mask) & (kvi)(a)) | (~(mask) & (kvi)(b))))

/*
 * e^x for 8 floats: x = n ln2 + r with n = rint(x / ln2) (1.5 * 2^23
 * rounding trick) and ln2 in two parts (Cody & Waite), e^r by the minimax
 * polynomial of Cephes' expf (about 1 ulp), 2^n built in the exponent
 * field. x > 88 is clamped; x < -87 (and -INFINITY) gives exactly 0.
 */
static inline kvf kvexp(const kvf *px)
{
	const kvf zero = { 0 };
	kvf x = *px;
	kvi under = x < -87.0f;
	kvf k, r, p;
	kvi n;

	x = KVSEL(x > 88.0f, zero + 88.0f, x);
	x = KVSEL(under, zero - 87.0f, x);
	k = x * 1.44269504088896341f + 12582912.0f;
	n = (kvi)k - 0x4B400000;
	k -= 12582912.0f;
	r = x - k * 0.693359375f;
	r = r - k * -2.12194440e-4f;
	p = zero + 1.9875691500e-4f;
	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * r * r + r + 1.0f;
	p *= (kvf)((n + 127) << 23);
	return (kvf)((kvi)p & ~under);
}

/* x[j] = e^(x[j] - c) for j < n (kvexp()); returns the sum, added in
 * eight lanes and then across them. */
static inline real kexp_sum(real *x, int n, real c)
{
	kvf acc = { 0 }, e;
	float tail[KVN], s = 0;
	int j;

	for (j = 0; j + KVN <= n; j += KVN) {
		e = kvload(x + j) - c;
		e = kvexp(&e);
		memcpy(x + j, &e, sizeof(e));
		acc += e;
	}
	if (j < n) {
		for (int t = 0; t < KVN; t++)
			tail[t] = j + t < n ? x[j + t] : -INFINITY;
		e = kvload(tail) - c;
		e = kvexp(&e);
		memcpy(x + j, &e, (size_t)(n - j) * sizeof(float));
		acc += e;
	}
	for (int t = 0; t < KVN; t++)
		s += acc[t];
	return s;
}
#endif

#endif /* KGPT_FASTMATH_H */
