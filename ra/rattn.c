// SPDX-License-Identifier: MIT
/*
 * Reciprocal Attention's own operations (ra/rattn.h): the query/key
 * scaling, the self-restart mix and the baseline repack. The attention
 * itself is the kernels' (or KV pruning's) on the scaled q and k.
 */
#include <math.h>
#include <string.h>

#include "ra/rattn.h"

void rattn_init_gates(real *w_std, real *w_rec, size_t n, int D, int R)
{
	for (size_t i = 0; i < n; i++) {
		w_std[i] = (real)(D - R) / D;
		w_rec[i] = (real)R / D;
	}
}

void rattn_scale_forward(real *qkv, const real *w_std, const real *w_rec, int stride,
			 int N, int C, int NH, int R)
{
	const int D = C / NH, Ds = D - R;

#pragma omp parallel for schedule(static)
	for (int i = 0; i < N; i++) {
		real *row = qkv + (size_t)i * 3 * C;

		for (int h = 0; h < NH; h++) {
			const real ss = sqrt(w_std[h * stride]), sr = sqrt(w_rec[h * stride]);

			for (int part = 0; part < 2; part++) {
				real *x = row + (size_t)part * C + (size_t)h * D;

				for (int d = 0; d < Ds; d++)
					x[d] *= ss;
				for (int d = Ds; d < D; d++)
					x[d] *= sr;
			}
		}
	}
}

void rattn_scale_backward(real *dqkv, real *dw_std, real *dw_rec, const real *qkv,
			  const real *w_std, const real *w_rec, int stride, int N, int C,
			  int NH, int R)
{
	const int D = C / NH, Ds = D - R;
	double acc[2 * NH];

	memset(acc, 0, sizeof(acc));
#pragma omp parallel
	{
		double mine[2 * NH];

		memset(mine, 0, sizeof(mine));
#pragma omp for schedule(static)
		for (int i = 0; i < N; i++) {
			const real *row = qkv + (size_t)i * 3 * C;
			real *drow = dqkv + (size_t)i * 3 * C;

			for (int h = 0; h < NH; h++) {
				const real ss = sqrt(w_std[h * stride]);
				const real sr = sqrt(w_rec[h * stride]);
				double s_std = 0, s_rec = 0;

				for (int part = 0; part < 2; part++) {
					const size_t o = (size_t)part * C + (size_t)h * D;

					for (int d = 0; d < Ds; d++) {
						s_std += (double)drow[o + d] * row[o + d];
						drow[o + d] *= ss;
					}
					for (int d = Ds; d < D; d++) {
						s_rec += (double)drow[o + d] * row[o + d];
						drow[o + d] *= sr;
					}
				}
				mine[2 * h] += s_std;
				mine[2 * h + 1] += s_rec;
			}
		}
#pragma omp critical
		for (int j = 0; j < 2 * NH; j++)
			acc[j] += mine[j];
	}
	for (int h = 0; h < NH; h++) {
		dw_std[h * stride] += (real)(acc[2 * h] / (2.0 * w_std[h * stride]));
		dw_rec[h * stride] += (real)(acc[2 * h + 1] / (2.0 * w_rec[h * stride]));
	}
}

void rattn_restart_forward(real *out, const real *y, const real *qkv, const real *alpha,
			   int N, int C, int NH)
{
	const int D = C / NH;

#pragma omp parallel for schedule(static)
	for (int i = 0; i < N; i++) {
		const real *yi = y + (size_t)i * C, *v = qkv + (size_t)i * 3 * C + 2 * C;
		real *o = out + (size_t)i * C;

		for (int h = 0; h < NH; h++) {
			const real a = alpha[h], b = 1 - a;

			for (int d = h * D; d < (h + 1) * D; d++)
				o[d] = b * yi[d] + a * v[d];
		}
	}
}

void rattn_restart_backward(real *dqkv, real *dalpha, real *dout, const real *y,
			    const real *qkv, const real *alpha, int N, int C, int NH)
{
	const int D = C / NH;
	double acc[NH];

	memset(acc, 0, sizeof(acc));
#pragma omp parallel
	{
		double mine[NH];

		memset(mine, 0, sizeof(mine));
#pragma omp for schedule(static)
		for (int i = 0; i < N; i++) {
			const real *yi = y + (size_t)i * C, *v = qkv + (size_t)i * 3 * C + 2 * C;
			real *dv = dqkv + (size_t)i * 3 * C + 2 * C, *g = dout + (size_t)i * C;

			for (int h = 0; h < NH; h++) {
				const real a = alpha[h], b = 1 - a;
				double s = 0;

				for (int d = h * D; d < (h + 1) * D; d++) {
					s += (double)g[d] * (v[d] - yi[d]);
					dv[d] += a * g[d];
					g[d] *= b;
				}
				mine[h] += s;
			}
		}
#pragma omp critical
		for (int h = 0; h < NH; h++)
			acc[h] += mine[h];
	}
	for (int h = 0; h < NH; h++)
		dalpha[h] += (real)acc[h];
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
