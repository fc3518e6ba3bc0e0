// SPDX-License-Identifier: MIT
/*
 * Reciprocal Attention's kernels on the CPU (kernels/kernels.h; the
 * mechanism is ra/rattn.h, its math docs/reciprocal-attention.md): the
 * query/key scaling by sqrt(w_std), sqrt(w_rec) and the self-restart mix,
 * forward and backward, one OpenMP pass each. The gates' gradients are
 * reduced in double, per thread, then in a fixed order.
 */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/cpu/kutil.h"

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
