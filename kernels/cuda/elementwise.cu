// SPDX-License-Identifier: MIT
/*
 * Element-wise and reduction kernels of the CUDA backend
 * (kernels/kernels.h): embeddings, GELU, residual, dropout, scaling, the
 * sum of squares, and the deterministic column sums behind the bias
 * gradients. Offsets are size_t throughout; the 1-D kernels are
 * grid-stride loops.
 *
 * Reductions are deterministic: a fixed grid, partial sums per block in
 * a fixed order, then the partials added in order by one more kernel. No
 * floating-point atomics anywhere, so two runs give the same bits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernels/cuda/cuda.h"
#include "kgpt/rng.h"

#define THREADS		256
#define MAX_BLOCKS	65536u

#define GRID_STRIDE(i, n) \
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); \
	     i += (size_t)gridDim.x * blockDim.x)

/* ------------------------------------------------------------------------
 * Column sums (kernels/cuda/cuda.h)
 */

#ifndef COLSUM_CHUNKS	/* tests/cuda-emu sets fewer */
#define COLSUM_CHUNKS	64
#endif

/* part[c][j] = sum of rows [c*rows, (c+1)*rows) of in's column j. */
__global__ void colsum_part(float *__restrict__ part, const act_t *__restrict__ in, int N,
			    int n, int rows)
{
	int j = blockIdx.x * blockDim.x + threadIdx.x, c = blockIdx.y;
	int r0 = c * rows, r1 = r0 + rows < N ? r0 + rows : N;
	float s = 0;

	if (j >= n)
		return;
	for (int r = r0; r < r1; r++)
		s += a2f(in[(size_t)r * n + j]);
	part[(size_t)c * n + j] = s;
}

/* out[j] += sum over the chunks of part[c][j], in chunk order. */
__global__ void colsum_add(float *__restrict__ out, const float *__restrict__ part, int n,
			   int chunks)
{
	int j = blockIdx.x * blockDim.x + threadIdx.x;
	float s = 0;

	if (j >= n)
		return;
	for (int c = 0; c < chunks; c++)
		s += part[(size_t)c * n + j];
	out[j] += s;
}

void kgpt_cuda_colsum(float *out, const act_t *in, int N, int n)
{
	int chunks = N < COLSUM_CHUNKS ? (N > 0 ? N : 1) : COLSUM_CHUNKS;
	int rows = (N + chunks - 1) / chunks;
	float *part = (float *)kgpt_cuda_scratch(KGPT_SCRATCH_REDUCE,
						 (size_t)chunks * n * sizeof(float));
	dim3 grid((n + THREADS - 1) / THREADS, chunks);

	if (N <= 0 || n <= 0)
		return;
	KGPT_LAUNCH(colsum_part, grid, THREADS, 0, part, in, N, n, rows);
	KGPT_LAUNCH(colsum_add, (n + THREADS - 1) / THREADS, THREADS, 0, out, part, n, chunks);
}

/* ------------------------------------------------------------------------
 * Embeddings
 */

__global__ void encoder_fwd(act_t *__restrict__ out, const int *__restrict__ inp,
			    const float *__restrict__ wte, const float *__restrict__ wpe,
			    size_t total, int T, int C)
{
	GRID_STRIDE(i, total) {
		size_t n = i / C;
		int c = (int)(i % C);

		out[i] = f2a(wte[(size_t)inp[n] * C + c] + wpe[(size_t)(n % T) * C + c]);
	}
}

void encoder_forward(act_t *out, const int *inp, const real *wte,
		     const real *wpe, int B, int T, int C)
{
	size_t total = (size_t)B * T * C;

	KGPT_LAUNCH(encoder_fwd, kgpt_blocks(total, THREADS, MAX_BLOCKS), THREADS, 0,
		    out, inp, wte, wpe, total, T, C);
}

/* dwpe[t][c] += sum over b of dout[b][t][c], b in order. */
__global__ void encoder_bwd_wpe(float *__restrict__ dwpe, const act_t *__restrict__ dout,
				int B, int T, int C)
{
	size_t tc = (size_t)T * C;

	GRID_STRIDE(i, tc) {
		float s = 0;

		for (int b = 0; b < B; b++)
			s += a2f(dout[(size_t)b * tc + i]);
		dwpe[i] += s;
	}
}

/*
 * dwte[inp[n]][c] += dout[n][c], deterministic and parallel: the rows
 * are bucketed by token on the host (a stable counting sort of the B*T
 * ids, which are copied down for it), and one thread per (token, channel)
 * adds its token's rows in increasing n, straight into dwte: the order
 * and rounding of the CPU's kernel (kernels/cpu/encoder.c), with one
 * block row per distinct token instead of one thread per channel walking
 * all B*T rows. rows: the row ids by token; first: (U + 1) bucket starts;
 * tok: (U) the tokens.
 */
__global__ void encoder_bwd_wte(float *__restrict__ dwte, const act_t *__restrict__ dout,
				const int *__restrict__ rows, const int *__restrict__ first,
				const int *__restrict__ tok, int C)
{
	int u = blockIdx.y, c = blockIdx.x * blockDim.x + threadIdx.x;
	float *w;
	float acc;

	if (c >= C)
		return;
	w = dwte + (size_t)tok[u] * C + c;
	acc = *w;
	for (int k = first[u]; k < first[u + 1]; k++)
		acc += a2f(dout[(size_t)rows[k] * C + c]);
	*w = acc;
}

/* Host staging of the bucketing, kept and grown across calls. */
static int *enc_host, *enc_count;
static size_t enc_have, enc_count_have;

static void *enc_grow(void *p, size_t *have, size_t need)
{
	if (need <= *have)
		return p;
	free(p);
	p = malloc(need);
	if (!p) {
		fprintf(stderr, "kgpt: encoder backward: out of host memory (%zu bytes)\n", need);
		exit(1);
	}
	*have = need;
	return p;
}

/*
 * The buckets of the N token ids inp (device memory) into h: rows (N),
 * first (U + 1), tok (U), packed in that order, then the ids (N) copied
 * down; a counting sort, stable, so a token's rows stay in increasing n.
 * Returns U, the distinct tokens.
 */
static int enc_buckets(const int *inp, int N, int *h)
{
	int *rows = h, *ids = h + 3 * (size_t)N + 1, *first, *tok, *cnt, U = 0, V = 0;

	CUDA_CHECK(cudaMemcpy(ids, inp, (size_t)N * sizeof(int), cudaMemcpyDeviceToHost));
	for (int n = 0; n < N; n++)
		V = ids[n] >= V ? ids[n] + 1 : V;
	enc_count = (int *)enc_grow(enc_count, &enc_count_have, ((size_t)V + 1) * sizeof(int));
	cnt = enc_count;
	memset(cnt, 0, ((size_t)V + 1) * sizeof(int));
	for (int n = 0; n < N; n++)
		cnt[ids[n] + 1]++;
	first = rows + N;
	for (int v = 0; v < V; v++) {
		if (cnt[v + 1])
			U++;
		cnt[v + 1] += cnt[v];	/* cnt[v]: where token v's rows begin */
	}
	for (int n = 0; n < N; n++)
		rows[cnt[ids[n]]++] = n;	/* cnt[v] ends at the next token's start */
	tok = first + U + 1;
	U = 0;
	for (int k = 0; k < N; k++)
		if (!k || ids[rows[k]] != ids[rows[k - 1]]) {
			first[U] = k;
			tok[U++] = ids[rows[k]];
		}
	first[U] = N;
	return U;
}

void encoder_backward(real *dwte, real *dwpe, const act_t *dout,
		      const int *inp, int B, int T, int C)
{
	size_t tc = (size_t)T * C, need;
	int N = B * T, U, *d;

	if (N <= 0)
		return;
	KGPT_LAUNCH(encoder_bwd_wpe, kgpt_blocks(tc, THREADS, MAX_BLOCKS), THREADS, 0,
		    dwpe, dout, B, T, C);
	need = (4 * (size_t)N + 1) * sizeof(int);
	enc_host = (int *)enc_grow(enc_host, &enc_have, need);
	U = enc_buckets(inp, N, enc_host);
	d = (int *)kgpt_cuda_scratch(KGPT_SCRATCH_ENC, (3 * (size_t)N + 1) * sizeof(int));
	CUDA_CHECK(cudaMemcpy(d, enc_host, ((size_t)N + 2 * U + 1) * sizeof(int),
			      cudaMemcpyHostToDevice));
	/* the packed layout of enc_buckets(): rows (N), first (U + 1), tok (U) */
	for (int u0 = 0; u0 < U; u0 += 65535) {
		int nu = U - u0 < 65535 ? U - u0 : 65535;
		dim3 grid((C + 127) / 128, nu);

		KGPT_LAUNCH(encoder_bwd_wte, grid, 128, 0, dwte, dout, d, d + N + u0,
			    d + N + U + 1 + u0, C);
	}
}

/* ------------------------------------------------------------------------
 * GELU, tanh approximation in its sigmoid form (kernels/cpu/gelu.c):
 * gelu(x) = x s, s = 1 / (1 + e), e = e^(-2u), u = sqrt(2/pi) (x + 0.044715 x^3),
 * the exponent clamped to [-87, 88] as the CPU's kexp() clamps it.
 */

#define GELU_K	0.7978845608028654f
#define GELU_A	0.044715f

__device__ __forceinline__ float gelu_e(float x)
{
	float a = -2.0f * GELU_K * (x + GELU_A * x * x * x);

	return expf(fminf(fmaxf(a, -87.0f), 88.0f));
}

__global__ void gelu_fwd(act_t *out, const act_t *inp, size_t n)
{
	GRID_STRIDE(i, n) {
		float x = a2f(inp[i]);

		out[i] = f2a(x / (1.0f + gelu_e(x)));
	}
}

__global__ void gelu_bwd(act_t *__restrict__ dinp, const act_t *__restrict__ inp,
			 const act_t *__restrict__ dout, size_t n)
{
	GRID_STRIDE(i, n) {
		float x = a2f(inp[i]), e = gelu_e(x), s = 1.0f / (1.0f + e);
		float du = GELU_K * (1.0f + 3.0f * GELU_A * x * x);

		dinp[i] = f2a(a2f(dinp[i]) + a2f(dout[i]) * (s + x * (e * s) * s * 2.0f * du));
	}
}

void gelu_forward(act_t *out, const act_t *inp, size_t n)
{
	KGPT_LAUNCH(gelu_fwd, kgpt_blocks(n, THREADS, MAX_BLOCKS), THREADS, 0, out, inp, n);
}

void gelu_backward(act_t *dinp, const act_t *inp, const act_t *dout, size_t n)
{
	KGPT_LAUNCH(gelu_bwd, kgpt_blocks(n, THREADS, MAX_BLOCKS), THREADS, 0, dinp, inp, dout, n);
}

/* ------------------------------------------------------------------------
 * Residual, dropout, scaling
 */

__global__ void residual_fwd(act_t *out, const act_t *a, const act_t *b, size_t n)
{
	GRID_STRIDE(i, n)
		out[i] = f2a(a2f(a[i]) + a2f(b[i]));
}

void residual_forward(act_t *out, const act_t *a, const act_t *b, size_t n)
{
	KGPT_LAUNCH(residual_fwd, kgpt_blocks(n, THREADS, MAX_BLOCKS), THREADS, 0, out, a, b, n);
}

/* x *= keep(seed, i, p) / (1 - p): the mask of kgpt/rng.h, element i. */
__global__ void dropout_apply(act_t *x, size_t n, float p, uint64_t seed)
{
	float scale = 1.0f / (1.0f - p);

	GRID_STRIDE(i, n)
		x[i] = f2a(kgpt_dropout_keep(seed, i, p) ? a2f(x[i]) * scale : 0.0f);
}

void dropout_forward(act_t *x, size_t n, float p, uint64_t seed)
{
	if (p > 0)
		KGPT_LAUNCH(dropout_apply, kgpt_blocks(n, THREADS, MAX_BLOCKS), THREADS, 0,
			    x, n, p, seed);
}

void dropout_backward(act_t *dx, size_t n, float p, uint64_t seed)
{
	if (p > 0)
		KGPT_LAUNCH(dropout_apply, kgpt_blocks(n, THREADS, MAX_BLOCKS), THREADS, 0,
			    dx, n, p, seed);
}

template <typename T> __global__ void scale_k(T *x, size_t n, float s)
{
	GRID_STRIDE(i, n)
		x[i] = (T)((float)x[i] * s);
}

void scale_inplace(real *x, size_t n, real s)
{
	KGPT_LAUNCH(scale_k<float>, kgpt_blocks(n, THREADS, MAX_BLOCKS), THREADS, 0, x, n, s);
}

void scale_act_inplace(act_t *x, size_t n, real s)
{
	KGPT_LAUNCH(scale_k<act_t>, kgpt_blocks(n, THREADS, MAX_BLOCKS), THREADS, 0, x, n, s);
}

/* ------------------------------------------------------------------------
 * Sum of squares in double: SUMSQ_BLOCKS fixed partial sums, then one
 * block adds them.
 */

#ifndef SUMSQ_BLOCKS	/* tests/cuda-emu sets fewer */
#define SUMSQ_BLOCKS	1024
#endif

__global__ void sumsq_part(double *part, const float *__restrict__ g, size_t n)
{
	__shared__ double sh[32];
	double s = 0;

	GRID_STRIDE(i, n)
		s += (double)g[i] * g[i];
	s = block_sum(s, sh);
	if (threadIdx.x == 0)
		part[blockIdx.x] = s;
}

__global__ void sum_parts(double *out, const double *part, int nparts)
{
	__shared__ double sh[32];
	double s = 0;

	for (int i = threadIdx.x; i < nparts; i += blockDim.x)
		s += part[i];
	s = block_sum(s, sh);
	if (threadIdx.x == 0)
		*out = s;
}

double sumsq(const real *g, size_t n)
{
	double *part = (double *)kgpt_cuda_scratch(KGPT_SCRATCH_REDUCE,
						   (SUMSQ_BLOCKS + 1) * sizeof(double));
	double s;

	KGPT_LAUNCH(sumsq_part, SUMSQ_BLOCKS, THREADS, 0, part, g, n);
	KGPT_LAUNCH(sum_parts, 1, 1024, 0, part + SUMSQ_BLOCKS, part, SUMSQ_BLOCKS);
	kgpt_download(&s, part + SUMSQ_BLOCKS, sizeof(s));
	return s;
}
