// SPDX-License-Identifier: MIT
/*
 * LayerNorm over the channels of each row (Ba, Kiros & Hinton 2016):
 * y = (x - mean) * rstd * w + b, rstd = 1 / sqrt(var + eps), eps = 1e-5,
 * var the biased (1/C) variance.
 */
#include "kernels/kernels.h"
#include "kernels/cpu/kutil.h"

#define LN_EPS	R(1e-5)

/*
 * out, inp: (N,C); mean, rstd: (N), kept for the backward pass; w, b: (C).
 * Two passes over each row (mean, then variance about it), parallel over
 * rows.
 */
void layernorm_forward(real *out, real *mean, real *rstd, const real *inp,
		       const real *w, const real *b, int N, int C)
{
#pragma omp parallel for schedule(static) if ((long)N * C >= KPAR_MIN)
	for (int n = 0; n < N; n++) {
		const real *restrict x = inp + (size_t)n * C;
		real *restrict y = out + (size_t)n * C;
		real m = 0, v = 0, s;

#pragma omp simd reduction(+:m)
		for (int c = 0; c < C; c++)
			m += x[c];
		m /= C;
#pragma omp simd reduction(+:v)
		for (int c = 0; c < C; c++)
			v += (x[c] - m) * (x[c] - m);
		v /= C;
		s = 1 / rsqrt_(v + LN_EPS);
#pragma omp simd
		for (int c = 0; c < C; c++)
			y[c] = (x[c] - m) * s * w[c] + b[c];
		mean[n] = m;
		rstd[n] = s;
	}
}

/*
 * Backward of one row. With xh = (x - mean) * rstd and g = dout * w:
 * dx += rstd * (g - mean(g) - xh * mean(g * xh)).
 */
static void layernorm_backward_row(real *restrict dx, const real *restrict dy,
				   const real *restrict x,
				   const real *restrict w, real m, real s,
				   int C)
{
	real gm = 0, gxm = 0;

#pragma omp simd reduction(+:gm, gxm)
	for (int c = 0; c < C; c++) {
		real g = dy[c] * w[c];

		gm += g;
		gxm += g * (x[c] - m) * s;
	}
	gm /= C;
	gxm /= C;
#pragma omp simd
	for (int c = 0; c < C; c++) {
		real xh = (x[c] - m) * s;

		dx[c] += s * (dy[c] * w[c] - gm - xh * gxm);
	}
}

/*
 * dinp (N,C) += dL/dinp; dw, db (C) += sum over rows of dout * xh, dout.
 * dout, inp: (N,C); w: (C); mean, rstd: (N) from the forward pass.
 * Pass 1 is parallel over rows (dinp); pass 2 over channel slices (dw, db),
 * adding rows in order so that the sums are deterministic and need no
 * per-thread buffers.
 */
void layernorm_backward(real *dinp, real *dw, real *db, const real *dout,
			const real *inp, const real *w, const real *mean,
			const real *rstd, int N, int C)
{
	int par = (long)N * C >= KPAR_MIN;

#pragma omp parallel if (par)
	{
		size_t c0, c1;

#pragma omp for schedule(static) nowait
		for (int n = 0; n < N; n++)
			layernorm_backward_row(dinp + (size_t)n * C,
					       dout + (size_t)n * C,
					       inp + (size_t)n * C, w, mean[n],
					       rstd[n], C);

		kthread_range(C, 16, &c0, &c1);
		for (int n = 0; n < N; n++) {
			const real *restrict dy = dout + (size_t)n * C;
			const real *restrict x = inp + (size_t)n * C;
			real m = mean[n], s = rstd[n];

#pragma omp simd
			for (size_t c = c0; c < c1; c++) {
				dw[c] += dy[c] * (x[c] - m) * s;
				db[c] += dy[c];
			}
		}
	}
}
