// SPDX-License-Identifier: MIT
/*
 * LayerNorm on the GPU (kernels/kernels.h; Ba, Kiros & Hinton 2016):
 * y = (x - mean) rstd w + b, rstd = 1 / sqrt(var + 1e-5), var biased.
 * One warp per row, mean then variance about it (two passes over the row,
 * as the CPU kernel). Backward: one warp per row for dinp; dw and db as
 * deterministic column sums over chunks of rows.
 */
#include "kernels/cuda/cuda.h"

#define LN_EPS		1e-5f
#define ROWS_PER_BLOCK	8	/* warps of 32 */
#ifndef CHUNKS		/* tests/cuda-emu sets fewer */
#define CHUNKS		64
#endif

__global__ void ln_fwd(act_t *__restrict__ out, float *__restrict__ mean,
		       float *__restrict__ rstd, const act_t *__restrict__ inp,
		       const float *__restrict__ w, const float *__restrict__ b, int N, int C)
{
	int row = blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5), lane = threadIdx.x & 31;
	const act_t *x;
	act_t *y;
	float m = 0, v = 0, s;

	if (row >= N)
		return;
	x = inp + (size_t)row * C;
	y = out + (size_t)row * C;
	for (int c = lane; c < C; c += 32)
		m += a2f(x[c]);
	m = warp_sum(m) / C;
	for (int c = lane; c < C; c += 32)
		v += (a2f(x[c]) - m) * (a2f(x[c]) - m);
	v = warp_sum(v) / C;
	s = 1.0f / sqrtf(v + LN_EPS);
	for (int c = lane; c < C; c += 32)
		y[c] = f2a((a2f(x[c]) - m) * s * w[c] + b[c]);
	if (lane == 0) {
		mean[row] = m;
		rstd[row] = s;
	}
}

void layernorm_forward(act_t *out, real *mean, real *rstd, const act_t *inp,
		       const real *w, const real *b, int N, int C)
{
	if (N <= 0)
		return;		/* an empty grid is a launch error */
	KGPT_LAUNCH(ln_fwd, (N + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK, 32 * ROWS_PER_BLOCK, 0,
		    out, mean, rstd, inp, w, b, N, C);
}

/* dx += rstd (g - mean(g) - xh mean(g xh)), g = dy w, xh = (x - mean) rstd. */
__global__ void ln_bwd_dx(act_t *__restrict__ dinp, const act_t *__restrict__ dout,
			  const act_t *__restrict__ inp, const float *__restrict__ w,
			  const float *__restrict__ mean, const float *__restrict__ rstd,
			  int N, int C)
{
	int row = blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5), lane = threadIdx.x & 31;
	const act_t *x, *dy;
	act_t *dx;
	float m, s, gm = 0, gxm = 0;

	if (row >= N)
		return;
	x = inp + (size_t)row * C;
	dy = dout + (size_t)row * C;
	dx = dinp + (size_t)row * C;
	m = mean[row];
	s = rstd[row];
	for (int c = lane; c < C; c += 32) {
		float g = a2f(dy[c]) * w[c];

		gm += g;
		gxm += g * (a2f(x[c]) - m) * s;
	}
	gm = warp_sum(gm) / C;
	gxm = warp_sum(gxm) / C;
	for (int c = lane; c < C; c += 32) {
		float xh = (a2f(x[c]) - m) * s;

		dx[c] = f2a(a2f(dx[c]) + s * (a2f(dy[c]) * w[c] - gm - xh * gxm));
	}
}

/* part[k][0][c], part[k][1][c]: dw and db of the rows of chunk k. */
__global__ void ln_bwd_part(float *__restrict__ part, const act_t *__restrict__ dout,
			    const act_t *__restrict__ inp, const float *__restrict__ mean,
			    const float *__restrict__ rstd, int N, int C, int rows)
{
	int c = blockIdx.x * blockDim.x + threadIdx.x, k = blockIdx.y;
	int r0 = k * rows, r1 = r0 + rows < N ? r0 + rows : N;
	float dw = 0, db = 0;

	if (c >= C)
		return;
	for (int r = r0; r < r1; r++) {
		float dy = a2f(dout[(size_t)r * C + c]);

		dw += dy * (a2f(inp[(size_t)r * C + c]) - mean[r]) * rstd[r];
		db += dy;
	}
	part[(size_t)k * 2 * C + c] = dw;
	part[(size_t)k * 2 * C + C + c] = db;
}

__global__ void ln_bwd_add(float *__restrict__ dw, float *__restrict__ db,
			   const float *__restrict__ part, int C, int chunks)
{
	int c = blockIdx.x * blockDim.x + threadIdx.x;
	float sw = 0, sb = 0;

	if (c >= C)
		return;
	for (int k = 0; k < chunks; k++) {
		sw += part[(size_t)k * 2 * C + c];
		sb += part[(size_t)k * 2 * C + C + c];
	}
	dw[c] += sw;
	db[c] += sb;
}

void layernorm_backward(act_t *dinp, real *dw, real *db, const act_t *dout,
			const act_t *inp, const real *w, const real *mean,
			const real *rstd, int N, int C)
{
	int chunks = N < CHUNKS ? N : CHUNKS, rows;
	float *part;

	if (N <= 0)
		return;
	rows = (N + chunks - 1) / chunks;
	part = (float *)kgpt_cuda_scratch(KGPT_SCRATCH_REDUCE, (size_t)chunks * 2 * C * sizeof(float));
	KGPT_LAUNCH(ln_bwd_dx, (N + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK, 32 * ROWS_PER_BLOCK, 0,
		    dinp, dout, inp, w, mean, rstd, N, C);
	KGPT_LAUNCH(ln_bwd_part, dim3((C + 255) / 256, chunks), 256, 0, part, dout, inp, mean,
		    rstd, N, C, rows);
	KGPT_LAUNCH(ln_bwd_add, (C + 255) / 256, 256, 0, dw, db, part, C, chunks);
}
