// SPDX-License-Identifier: MIT
/*
 * Reciprocal Attention's host operations (ra/rattn.h): the gates'
 * initialisation and clamps and the baseline repack, on shared memory.
 * The query/key scaling and the self-restart mix are kernels of the
 * backend (kernels/kernels.h, kernels/cpu/rattn.c); the attention itself
 * is the backend's (or KV pruning's) on the scaled q and k.
 */
#include <math.h>

#include "ra/rattn.h"

void rattn_init_gates(real *w_std, real *w_rec, size_t n, int D, int R)
{
	for (size_t i = 0; i < n; i++) {
		w_std[i] = (real)(D - R) / D;
		w_rec[i] = (real)R / D;
	}
}

static void swap_rows(real *a, real *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		real t = a[i];

		a[i] = b[i];
		b[i] = t;
	}
}

void rattn_repack(real *qkvw, real *qkvb, int C, int NH, int R)
{
	const int D = C / NH;

	for (int h = 0; h < NH; h++) {
		const size_t q0 = (size_t)h * D + D - R, k0 = (size_t)C + q0;

		swap_rows(qkvw + q0 * C, qkvw + k0 * C, (size_t)R * C);
		if (qkvb)
			swap_rows(qkvb + q0, qkvb + k0, R);
	}
}

void rattn_clamp(real *w_std, real *w_rec, size_t n, real *alpha, size_t na)
{
	for (size_t i = 0; i < n; i++) {
		if (w_std[i] < RATTN_W_MIN)
			w_std[i] = RATTN_W_MIN;
		if (w_rec[i] < RATTN_W_MIN)
			w_rec[i] = RATTN_W_MIN;
	}
	for (size_t i = 0; i < na; i++) {
		if (alpha[i] < 0)
			alpha[i] = 0;
		else if (alpha[i] > RATTN_ALPHA_MAX)
			alpha[i] = RATTN_ALPHA_MAX;
	}
}
