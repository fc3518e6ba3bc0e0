// SPDX-License-Identifier: MIT
/*
 * Reciprocal Attention's kernels on the GPU (kernels/kernels.h; the
 * mechanism is ra/rattn.h, its math docs/reciprocal-attention.md): the
 * query/key scaling by sqrt(w_std), sqrt(w_rec) and the self-restart mix,
 * forward and backward. The gates live in shared (managed) memory and are
 * read by the kernels directly.
 *
 * The gates' gradients are reduced deterministically: a fixed grid of
 * (head, chunk of rows) blocks writes one partial sum each, in double,
 * and one more kernel adds the chunks of each head in order and then the
 * heads in order (stride 0: one gate for the layer, accumulated over the
 * heads by a single thread, as kernels/cpu/rattn.c does). No atomics.
 */
#include "kernels/cuda/cuda.h"

#define THREADS		256
#define MAX_BLOCKS	65536u
#ifndef CHUNKS		/* tests/cuda-emu sets fewer */
#define CHUNKS		64	/* fixed: the partial sums' order depends on it */
#endif

/* q and k of every row: dimension d of head h by sqrt(w_std) (d < D - R)
 * or sqrt(w_rec). */
__global__ void rattn_scale_fwd(act_t *__restrict__ qkv, const float *__restrict__ w_std,
				const float *__restrict__ w_rec, int stride, size_t N, int C,
				int D, int R)
{
	size_t n = N * 2 * (size_t)C;

	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		size_t r = i / (2 * (size_t)C);
		int c = (int)(i % (2 * (size_t)C)), cc = c % C, h = cc / D, d = cc % D;
		float w = d < D - R ? w_std[h * stride] : w_rec[h * stride];

		size_t o = r * 3 * (size_t)C + c;

		qkv[o] = f2a(a2f(qkv[o]) * sqrtf(w));
	}
}

void rattn_scale_forward(act_t *qkv, const real *w_std, const real *w_rec, int stride,
			 int N, int C, int NH, int R)
{
	size_t n = (size_t)N * 2 * C;

	if (n)
		KGPT_LAUNCH(rattn_scale_fwd, kgpt_blocks(n, THREADS, MAX_BLOCKS), THREADS, 0,
			    qkv, w_std, w_rec, stride, (size_t)N, C, C / NH, R);
}

/* Rows [k * rows, (k + 1) * rows) of chunk k = blockIdx.y. */
__device__ __forceinline__ void chunk_rows(int N, int rows, int *r0, int *r1)
{
	*r0 = blockIdx.y * rows;
	*r1 = *r0 + rows < N ? *r0 + rows : N;
}

/*
 * Block (h, k): head h over the rows of chunk k. part[(k NH + h) 2 + 0/1]
 * = sum dq' q' + dk' k' over the standard / reciprocal dimensions; then
 * dq' and dk' scaled to dq, dk in place.
 */
__global__ void rattn_scale_bwd(double *__restrict__ part, act_t *__restrict__ dqkv,
				const act_t *__restrict__ qkv, const float *__restrict__ w_std,
				const float *__restrict__ w_rec, int stride, int N, int C, int NH,
				int R, int rows)
{
	__shared__ double sh[32];
	int h = blockIdx.x, D = C / NH, r0, r1;
	float ss = sqrtf(w_std[h * stride]), sr = sqrtf(w_rec[h * stride]);
	double s_std = 0, s_rec = 0;

	chunk_rows(N, rows, &r0, &r1);
	for (size_t x = threadIdx.x; x < (size_t)(r1 > r0 ? r1 - r0 : 0) * 2 * D;
	     x += blockDim.x) {
		size_t r = r0 + x / (2 * D);
		int part2 = (int)(x % (2 * D)) / D, d = (int)(x % D);
		size_t o = r * 3 * (size_t)C + (size_t)part2 * C + (size_t)h * D + d;
		float g = a2f(dqkv[o]);
		double t = (double)g * a2f(qkv[o]);

		if (d < D - R) {
			s_std += t;
			dqkv[o] = f2a(g * ss);
		} else {
			s_rec += t;
			dqkv[o] = f2a(g * sr);
		}
	}
	s_std = block_sum(s_std, sh);
	s_rec = block_sum(s_rec, sh);
	if (threadIdx.x == 0) {
		part[((size_t)blockIdx.y * NH + h) * 2] = s_std;
		part[((size_t)blockIdx.y * NH + h) * 2 + 1] = s_rec;
	}
}

/* One thread: per head the chunks in order, then the heads in order. */
__global__ void rattn_scale_bwd_gates(float *dw_std, float *dw_rec, const double *part,
				      const float *w_std, const float *w_rec, int stride,
				      int NH, int chunks)
{
	for (int h = 0; h < NH; h++) {
		double a = 0, b = 0;

		for (int k = 0; k < chunks; k++) {
			a += part[((size_t)k * NH + h) * 2];
			b += part[((size_t)k * NH + h) * 2 + 1];
		}
		dw_std[h * stride] += (float)(a / (2.0 * w_std[h * stride]));
		dw_rec[h * stride] += (float)(b / (2.0 * w_rec[h * stride]));
	}
}

static int chunks_of(int N)
{
	return N < CHUNKS ? (N > 0 ? N : 1) : CHUNKS;
}

void rattn_scale_backward(act_t *dqkv, real *dw_std, real *dw_rec, const act_t *qkv,
			  const real *w_std, const real *w_rec, int stride, int N, int C,
			  int NH, int R)
{
	int chunks = chunks_of(N), rows = (N + chunks - 1) / chunks;
	double *part;

	if (N <= 0)
		return;
	part = (double *)kgpt_cuda_scratch(KGPT_SCRATCH_REDUCE,
					   (size_t)chunks * NH * 2 * sizeof(double));
	KGPT_LAUNCH(rattn_scale_bwd, dim3(NH, chunks), THREADS, 0, part, dqkv, qkv, w_std,
		    w_rec, stride, N, C, NH, R, rows);
	KGPT_LAUNCH(rattn_scale_bwd_gates, 1, 1, 0, dw_std, dw_rec, part, w_std, w_rec, stride,
		    NH, chunks);
}

/* out = (1 - alpha[h]) y + alpha[h] v, (N, C). */
__global__ void rattn_restart_fwd(act_t *__restrict__ out, const act_t *__restrict__ y,
				  const act_t *__restrict__ qkv, const float *__restrict__ alpha,
				  size_t N, int C, int D)
{
	size_t n = N * (size_t)C;

	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		size_t r = i / C;
		int c = (int)(i % C);
		float a = alpha[c / D];

		out[i] = f2a((1 - a) * a2f(y[i]) + a * a2f(qkv[r * 3 * (size_t)C + 2 * (size_t)C + c]));
	}
}

void rattn_restart_forward(act_t *out, const act_t *y, const act_t *qkv, const real *alpha,
			   int N, int C, int NH)
{
	size_t n = (size_t)N * C;

	if (n)
		KGPT_LAUNCH(rattn_restart_fwd, kgpt_blocks(n, THREADS, MAX_BLOCKS), THREADS, 0,
			    out, y, qkv, alpha, (size_t)N, C, C / NH);
}

/*
 * Block (h, k): part[k NH + h] = sum dout (v - y) over head h of the
 * chunk's rows; dv += alpha dout; dout *= 1 - alpha, in place.
 */
__global__ void rattn_restart_bwd(double *__restrict__ part, act_t *__restrict__ dqkv,
				  act_t *__restrict__ dout, const act_t *__restrict__ y,
				  const act_t *__restrict__ qkv, const float *__restrict__ alpha,
				  int N, int C, int NH, int rows)
{
	__shared__ double sh[32];
	int h = blockIdx.x, D = C / NH, r0, r1;
	float a = alpha[h];
	double s = 0;

	chunk_rows(N, rows, &r0, &r1);
	for (size_t x = threadIdx.x; x < (size_t)(r1 > r0 ? r1 - r0 : 0) * D; x += blockDim.x) {
		size_t r = r0 + x / D, o = r * C + (size_t)h * D + x % D;
		size_t ov = r * 3 * (size_t)C + 2 * (size_t)C + (size_t)h * D + x % D;
		float g = a2f(dout[o]);

		s += (double)g * (a2f(qkv[ov]) - a2f(y[o]));
		dqkv[ov] = f2a(a2f(dqkv[ov]) + a * g);
		dout[o] = f2a((1 - a) * g);
	}
	s = block_sum(s, sh);
	if (threadIdx.x == 0)
		part[(size_t)blockIdx.y * NH + h] = s;
}

/* Thread h: dalpha[h] += the chunks' sums, in order. */
__global__ void rattn_restart_bwd_alpha(float *dalpha, const double *part, int NH, int chunks)
{
	int h = blockIdx.x * blockDim.x + threadIdx.x;
	double s = 0;

	if (h >= NH)
		return;
	for (int k = 0; k < chunks; k++)
		s += part[(size_t)k * NH + h];
	dalpha[h] += (float)s;
}

void rattn_restart_backward(act_t *dqkv, real *dalpha, act_t *dout, const act_t *y,
			    const act_t *qkv, const real *alpha, int N, int C, int NH)
{
	int chunks = chunks_of(N), rows = (N + chunks - 1) / chunks;
	double *part;

	if (N <= 0)
		return;
	part = (double *)kgpt_cuda_scratch(KGPT_SCRATCH_REDUCE,
					   (size_t)chunks * NH * sizeof(double));
	KGPT_LAUNCH(rattn_restart_bwd, dim3(NH, chunks), THREADS, 0, part, dqkv, dout, y, qkv,
		    alpha, N, C, NH, rows);
	KGPT_LAUNCH(rattn_restart_bwd_alpha, (NH + 63) / 64, 64, 0, dalpha, part, NH, chunks);
}
