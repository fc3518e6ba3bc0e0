/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the C tests (after kgpt/real.h and kgpt/rng.h).
 */
#ifndef KGPT_TESTS_UTIL_H
#define KGPT_TESTS_UTIL_H

#include <math.h>
#include <stddef.h>
#include "kgpt/real.h"
#include "kgpt/rng.h"

/* The worse of an error so far m and a new one v: a NaN is the worst. */
static inline double worse(double m, double v)
{
	return isnan(v) ? INFINITY : fmax(m, v);
}

/* max |a - b| over n elements, in double; INFINITY if any is NaN. */
static inline double max_abs_diff(const real *a, const real *b, size_t n)
{
	double m = 0;

	for (size_t i = 0; i < n; i++)
		m = worse(m, fabs((double)a[i] - (double)b[i]));
	return m;
}

/* x[i] = sd * a standard normal sample from rng. */
static inline void fill_normal(real *x, size_t n, struct kgpt_rng *rng, double sd)
{
	for (size_t i = 0; i < n; i++)
		x[i] = (real)(sd * kgpt_rng_normal(rng));
}

#endif /* KGPT_TESTS_UTIL_H */
