// SPDX-License-Identifier: MIT
/*
 * Elementwise kernels: residual add, inverted dropout, scaling and the sum
 * of squares used for gradient-norm clipping.
 */
#include "kernels/kernels.h"
#include "kernels/cpu/kutil.h"
#include "kgpt/rng.h"

/* out = a + b, all (n); out may alias a or b (no restrict). */
void residual_forward(real *out, const real *a, const real *b, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= KPAR_MIN)
	for (size_t i = 0; i < n; i++)
		out[i] = a[i] + b[i];
}

/*
 * x (n) *= keep(seed, i, p) / (1 - p), in place (Srivastava et al. 2014,
 * inverted so that inference needs no rescaling). The mask is a pure
 * function of (seed, i) (kgpt/rng.h), so forward and backward share it.
 * Used for both directions: dropout is linear in x.
 */
static void dropout_apply(real *x, size_t n, float p, uint64_t seed)
{
	real scale = 1 / (1 - (real)p);

	if (p <= 0)
		return;
#pragma omp parallel for simd schedule(static) if (n >= KPAR_MIN)
	for (size_t i = 0; i < n; i++)
		x[i] = kgpt_dropout_keep(seed, i, p) ? x[i] * scale : 0;
}

/* x (n): forward of inverted dropout with probability p, in place. */
void dropout_forward(real *x, size_t n, float p, uint64_t seed)
{
	dropout_apply(x, n, p, seed);
}

/* dx (n): gradient through the same mask, in place (not accumulated). */
void dropout_backward(real *dx, size_t n, float p, uint64_t seed)
{
	dropout_apply(dx, n, p, seed);
}

/*
 * sum g[i]^2 over (n), in double. Each thread sums a fixed contiguous
 * block and the partial sums are added in thread order, so the result
 * does not depend on scheduling.
 */
double sumsq(const real *g, size_t n)
{
	int nt = n >= KPAR_MIN ? omp_get_max_threads() : 1;
	double part[nt], s = 0;

	for (int t = 0; t < nt; t++)
		part[t] = 0;
#pragma omp parallel num_threads(nt) if (nt > 1)
	{
		size_t i0, i1;
		double t = 0;

		kthread_range(n, 16, &i0, &i1);
#pragma omp simd reduction(+:t)
		for (size_t i = i0; i < i1; i++)
			t += (double)g[i] * g[i];
		part[omp_get_thread_num()] = t;
	}
	for (int t = 0; t < nt; t++)
		s += part[t];
	return s;
}

/* x (n) *= s. */
void scale_inplace(real *x, size_t n, real s)
{
#pragma omp parallel for simd schedule(static) if (n >= KPAR_MIN)
	for (size_t i = 0; i < n; i++)
		x[i] *= s;
}

void scale_act_inplace(act_t *x, size_t n, real s)
{
	scale_inplace(x, n, s);		/* act_t is real here */
}
