// SPDX-License-Identifier: MIT
/*
 * Causal multi-head attention on the GPU (kernels/kernels.h), in the
 * manner of FlashAttention (Dao et al. 2022): nothing of size T x T
 * exists in device memory. Forward walks the keys in tiles with an online
 * softmax and keeps the log-sum-exp of each query row; backward
 * recomputes the probabilities from it, in two kernels so that every
 * gradient element is written by one thread (no atomics, deterministic):
 * one per key tile for dK and dV, one per query tile for dQ.
 *
 * Layout: qkv (B,T,3C) packed [q | k | v], head h at channels h*HS..; out
 * (B,T,C); lse and D (B,NH,T). Tiles of TILE rows, one thread per row of
 * the block's own tile; the other side's tile is in shared memory and
 * read by every thread at once (broadcast). The head size is a template
 * parameter (8, 16, 32, 64; scripts/gen-config.sh refuses others with this
 * backend), so each row's vectors live in registers or, padded to HS + 4
 * floats (conflict-free float4 reads), in shared memory. Activations
 * are act_t (bf16 with KGPT_ACT_BF16), converted to float as they are
 * loaded; shared memory, registers and the lse are float.
 *
 * Per element (i, j), as kernels/cpu/attention.c:
 *   causal  j <= i;  kept = causal and (no pruning or evict[j] > i)
 *   P_ij    exp(S_ij - lse_i) for causal keys in V_ONLY mode and plain
 *           attention, for kept keys in KV mode; 0 otherwise
 *   Z_ij    kept ? (dropout ? keep(seed, ((b NH + h) T + i) T + j) / (1 - p) : 1) : 0
 *   out_i = sum_j P_ij Z_ij v_j;  dV_j += P Z dO_i;  dP = dO_i . v_j;
 *   dS = P (dP Z - D_i), D_i = dO_i . out_i;  dQ += scale dS k_j;
 *   dK += scale dS q_i.
 * Pruned forward (the cache walk) is host code, ra/kvprune.c; only its
 * backward runs here.
 */
#include <stdio.h>
#include <stdlib.h>
#include "kernels/cuda/cuda.h"
#include "kgpt/rng.h"

#define TILE	64

struct att_args {
	const act_t *qkv, *dout, *out;	/* activations (act_t) */
	const float *lse, *D;
	act_t *o, *dqkv;
	float *l, *Dw;
	const int *evict;
	int v_only, B, T, C, NH;
	float scale, p;
	uint64_t seed;
};

/* Dropout scale of (query i, key j) of head bh. */
__device__ __forceinline__ float att_z(const att_args &a, int bh, int i, int j)
{
	uint64_t idx;

	if (a.p <= 0)
		return 1.0f;
	idx = ((uint64_t)bh * a.T + (uint64_t)i) * (uint64_t)a.T + (uint64_t)j;
	return kgpt_dropout_keep(a.seed, idx, a.p) ? 1.0f / (1.0f - a.p) : 0.0f;
}

/* rows [r0, r0 + TILE) of one head, HS floats each, rows ld_in apart
 * from head, row-packed with stride ld into sm (zeros past T). */
template <int HS>
__device__ void load_rows(float *sm, int ld, const act_t *head, size_t ld_in, int r0,
			  const att_args &a)
{
#ifdef KGPT_ACT_BF16
	for (int x = threadIdx.x; x < TILE * HS; x += blockDim.x) {
		int r = x / HS, c = x % HS;

		sm[r * ld + c] = r0 + r < a.T ? a2f(head[(size_t)(r0 + r) * ld_in + c]) : 0.0f;
	}
#else
	const int q4 = HS / 4;

	for (int x = threadIdx.x; x < TILE * q4; x += blockDim.x) {
		int r = x / q4, c = (x % q4) * 4;
		float4 v = make_float4(0, 0, 0, 0);

		if (r0 + r < a.T)
			v = *(const float4 *)(head + (size_t)(r0 + r) * ld_in + c);
		*(float4 *)(sm + r * ld + c) = v;
	}
#endif
}

/* The same for head's part `part` (0 q, 1 k, 2 v) of qkv (B,T,3C). */
template <int HS>
__device__ void load_tile(float *sm, int ld, const act_t *head, int part, int r0,
			  const att_args &a)
{
	load_rows<HS>(sm, ld, head + (size_t)part * a.C, 3 * (size_t)a.C, r0, a);
}

template <int HS>
__device__ __forceinline__ float dot_sm(const float *x, const float *y)
{
	float s = 0;

#pragma unroll
	for (int d = 0; d < HS; d += 4) {
		float4 u = *(const float4 *)(x + d), v = *(const float4 *)(y + d);

		s += u.x * v.x + u.y * v.y + u.z * v.z + u.w * v.w;
	}
	return s;
}

/* ------------------------------------------------------------------------
 * Forward: block = one query tile of one (b, h); thread = one query.
 */
template <int HS>
__global__ void __launch_bounds__(TILE) att_fwd(att_args a)
{
	__shared__ __align__(16) float Ks[TILE * HS];
	__shared__ __align__(16) float Vs[TILE * HS];
	int bh = blockIdx.y, b = bh / a.NH, h = bh % a.NH;
	int i0 = blockIdx.x * TILE, i = i0 + threadIdx.x;
	size_t C3 = 3 * (size_t)a.C;
	const act_t *head = a.qkv + (size_t)b * a.T * C3 + (size_t)h * HS;
	float q[HS], acc[HS], m = -INFINITY, l = 0;

#pragma unroll
	for (int d = 0; d < HS; d++) {
		q[d] = i < a.T ? a2f(head[(size_t)i * C3 + d]) : 0.0f;
		acc[d] = 0;
	}
	for (int j0 = 0; j0 <= i0; j0 += TILE) {
		__syncthreads();
		load_tile<HS>(Ks, HS, head, 1, j0, a);
		load_tile<HS>(Vs, HS, head, 2, j0, a);
		__syncthreads();
		int n = i >= a.T ? 0 : i - j0 + 1 < TILE ? i - j0 + 1 : TILE;

		for (int jj = 0; jj < n; jj++) {
			const float *k = Ks + jj * HS, *v = Vs + jj * HS;
			float s = 0, e, w;

#pragma unroll
			for (int d = 0; d < HS; d++)
				s += q[d] * k[d];
			s *= a.scale;
			if (s > m) {
				float corr = expf(m - s);

				l *= corr;
#pragma unroll
				for (int d = 0; d < HS; d++)
					acc[d] *= corr;
				m = s;
			}
			e = expf(s - m);
			l += e;
			w = e * att_z(a, bh, i, j0 + jj);
#pragma unroll
			for (int d = 0; d < HS; d++)
				acc[d] += w * v[d];
		}
	}
	if (i >= a.T)
		return;
	act_t *o = a.o + ((size_t)b * a.T + i) * a.C + (size_t)h * HS;

#pragma unroll
	for (int d = 0; d < HS; d++)
		o[d] = f2a(acc[d] / l);
	a.l[(size_t)bh * a.T + i] = m + logf(l);
}

/* D_i = dO_i . out_i for every (b, h, i). */
template <int HS>
__global__ void att_bwd_d(att_args a)
{
	size_t r = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
	size_t n = (size_t)a.B * a.NH * a.T;

	if (r >= n)
		return;
	int i = (int)(r % a.T), bh = (int)(r / a.T), b = bh / a.NH, h = bh % a.NH;
	size_t off = ((size_t)b * a.T + i) * a.C + (size_t)h * HS;
	float s = 0;

#pragma unroll
	for (int d = 0; d < HS; d++)
		s += a2f(a.dout[off + d]) * a2f(a.out[off + d]);
	a.Dw[r] = s;
}

/* ------------------------------------------------------------------------
 * dK, dV: block = one key tile of one (b, h); thread = one key, its k and
 * v in shared memory (padded rows), dk and dv in registers; the query
 * tiles from the diagonal on go through shared memory.
 */
template <int HS>
__global__ void __launch_bounds__(TILE) att_bwd_kv(att_args a)
{
	extern __shared__ __align__(16) float sm[];
	const int ldo = HS + 4;
	float *Ko = sm, *Vo = Ko + TILE * ldo, *Qs = Vo + TILE * ldo, *dOs = Qs + TILE * HS;
	float *ls = dOs + TILE * HS, *Ds = ls + TILE;
	int bh = blockIdx.y, b = bh / a.NH, h = bh % a.NH;
	int j0 = blockIdx.x * TILE, j = j0 + threadIdx.x;
	size_t C3 = 3 * (size_t)a.C;
	const act_t *head = a.qkv + (size_t)b * a.T * C3 + (size_t)h * HS;
	const act_t *dohead = a.dout + (size_t)b * a.T * a.C + (size_t)h * HS;
	float dk[HS], dv[HS];
	int ev = j < a.T && a.evict ? a.evict[(size_t)bh * a.T + j] : a.T;

	load_tile<HS>(Ko, ldo, head, 1, j0, a);
	load_tile<HS>(Vo, ldo, head, 2, j0, a);
#pragma unroll
	for (int d = 0; d < HS; d++)
		dk[d] = dv[d] = 0;
	for (int i0 = j0; i0 < a.T; i0 += TILE) {
		__syncthreads();
		load_tile<HS>(Qs, HS, head, 0, i0, a);
		load_rows<HS>(dOs, HS, dohead, a.C, i0, a);
		for (int r = threadIdx.x; r < TILE; r += blockDim.x) {
			int i = i0 + r;

			ls[r] = i < a.T ? a.lse[(size_t)bh * a.T + i] : 0.0f;
			Ds[r] = i < a.T ? a.D[(size_t)bh * a.T + i] : 0.0f;
		}
		__syncthreads();
		int r0 = j > i0 ? j - i0 : 0, n = a.T - i0 < TILE ? a.T - i0 : TILE;

		if (j >= a.T)
			n = 0;

		for (int r = r0; r < n; r++) {
			int i = i0 + r, kept = ev > i;
			const float *qi = Qs + r * HS, *doi = dOs + r * HS;
			float s, p, z, ds;

			if (!kept && !a.v_only)
				continue;	/* KV mode: no probability */
			s = a.scale * dot_sm<HS>(qi, Ko + threadIdx.x * ldo);
			p = expf(s - ls[r]);
			z = kept ? att_z(a, bh, i, j) : 0.0f;
			ds = kept ? dot_sm<HS>(doi, Vo + threadIdx.x * ldo) * z : 0.0f;
			ds = p * (ds - Ds[r]);
#pragma unroll
			for (int d = 0; d < HS; d++) {
				dv[d] += p * z * doi[d];
				dk[d] += a.scale * ds * qi[d];
			}
		}
	}
	if (j >= a.T)
		return;
	act_t *g = a.dqkv + ((size_t)b * a.T + j) * C3 + (size_t)h * HS;

#pragma unroll
	for (int d = 0; d < HS; d++) {
		g[a.C + d] = f2a(a2f(g[a.C + d]) + dk[d]);
		g[2 * (size_t)a.C + d] = f2a(a2f(g[2 * (size_t)a.C + d]) + dv[d]);
	}
}

/* ------------------------------------------------------------------------
 * dQ: block = one query tile; thread = one query, q and dq in registers,
 * dO in shared memory (padded row); key tiles up to the diagonal.
 */
template <int HS>
__global__ void __launch_bounds__(TILE) att_bwd_q(att_args a)
{
	extern __shared__ __align__(16) float sm[];
	const int ldo = HS + 4;
	float *dOo = sm, *Ks = dOo + TILE * ldo, *Vs = Ks + TILE * HS;
	int *evs = (int *)(Vs + TILE * HS);
	int bh = blockIdx.y, b = bh / a.NH, h = bh % a.NH;
	int i0 = blockIdx.x * TILE, i = i0 + threadIdx.x;
	size_t C3 = 3 * (size_t)a.C;
	const act_t *head = a.qkv + (size_t)b * a.T * C3 + (size_t)h * HS;
	const act_t *dohead = a.dout + (size_t)b * a.T * a.C + (size_t)h * HS;
	float q[HS], dq[HS], lse = 0, D = 0;

	load_rows<HS>(dOo, ldo, dohead, a.C, i0, a);
	if (i < a.T) {
		lse = a.lse[(size_t)bh * a.T + i];
		D = a.D[(size_t)bh * a.T + i];
	}
#pragma unroll
	for (int d = 0; d < HS; d++) {
		q[d] = i < a.T ? a2f(head[(size_t)i * C3 + d]) : 0.0f;
		dq[d] = 0;
	}
	for (int j0 = 0; j0 <= i0; j0 += TILE) {
		__syncthreads();
		load_tile<HS>(Ks, HS, head, 1, j0, a);
		load_tile<HS>(Vs, HS, head, 2, j0, a);
		for (int r = threadIdx.x; r < TILE; r += blockDim.x) {
			int jj = j0 + r;

			evs[r] = jj < a.T && a.evict ? a.evict[(size_t)bh * a.T + jj] : a.T;
		}
		__syncthreads();
		int n = i >= a.T ? 0 : i - j0 + 1 < TILE ? i - j0 + 1 : TILE;

		for (int r = 0; r < n; r++) {
			int kept = evs[r] > i;
			const float *k = Ks + r * HS;
			float s = 0, p, z, ds;

			if (!kept && !a.v_only)
				continue;
#pragma unroll
			for (int d = 0; d < HS; d++)
				s += q[d] * k[d];
			s *= a.scale;
			p = expf(s - lse);
			z = kept ? att_z(a, bh, i, j0 + r) : 0.0f;
			ds = kept ? dot_sm<HS>(dOo + threadIdx.x * ldo, Vs + r * HS) * z : 0.0f;
			ds = p * (ds - D);
#pragma unroll
			for (int d = 0; d < HS; d++)
				dq[d] += a.scale * ds * k[d];
		}
	}
	if (i >= a.T)
		return;
	act_t *g = a.dqkv + ((size_t)b * a.T + i) * C3 + (size_t)h * HS;

#pragma unroll
	for (int d = 0; d < HS; d++)
		g[d] = f2a(a2f(g[d]) + dq[d]);
}

/* ------------------------------------------------------------------------
 * Dispatch on the head size.
 */

static void att_init(att_args *a, int B, int T, int C, int NH, float p, uint64_t seed)
{
	int hs = C / NH;

	if (hs != 8 && hs != 16 && hs != 32 && hs != 64) {
		fprintf(stderr, "kgpt: CUDA attention: head size %d (n_embd %d / n_head %d) is not "
			"one of 8, 16, 32, 64; scripts/gen-config.sh should have refused it\n", hs, C, NH);
		exit(1);
	}
	*a = att_args();
	a->B = B;
	a->T = T;
	a->C = C;
	a->NH = NH;
	a->scale = 1.0f / sqrtf((float)hs);
	a->p = p;
	a->seed = seed;
}

template <int HS> static void fwd(const att_args &a)
{
	dim3 grid((a.T + TILE - 1) / TILE, a.B * a.NH);

	KGPT_LAUNCH(att_fwd<HS>, grid, TILE, 0, a);
}

template <int HS> static void bwd(const att_args &a)
{
	dim3 grid((a.T + TILE - 1) / TILE, a.B * a.NH);
	size_t rows = (size_t)a.B * a.NH * a.T;
	size_t kv = (2 * TILE * (HS + 4) + 2 * TILE * HS + 2 * TILE) * sizeof(float);
	size_t q = (TILE * (HS + 4) + 2 * TILE * HS) * sizeof(float) + TILE * sizeof(int);
	static int ready;

	if (!ready) {
		CUDA_CHECK(cudaFuncSetAttribute(att_bwd_kv<HS>,
						cudaFuncAttributeMaxDynamicSharedMemorySize, (int)kv));
		CUDA_CHECK(cudaFuncSetAttribute(att_bwd_q<HS>,
						cudaFuncAttributeMaxDynamicSharedMemorySize, (int)q));
		ready = 1;
	}
	KGPT_LAUNCH(att_bwd_d<HS>, kgpt_blocks(rows, 256, 1u << 30), 256, 0, a);
	KGPT_LAUNCH(att_bwd_kv<HS>, grid, TILE, kv, a);
	KGPT_LAUNCH(att_bwd_q<HS>, grid, TILE, q, a);
}

#define DISPATCH(fn, a) do {						\
	switch ((a).C / (a).NH) {					\
	case 8: fn<8>(a); break;					\
	case 16: fn<16>(a); break;					\
	case 32: fn<32>(a); break;					\
	default: fn<64>(a); break;					\
	}								\
} while (0)

void attention_forward(act_t *out, real *lse, const act_t *qkv, int B, int T,
		       int C, int NH, float dropout_p, uint64_t dropout_seed)
{
	att_args a;

	if (B <= 0 || T <= 0)
		return;		/* nothing to do (an empty grid is a launch error) */
	att_init(&a, B, T, C, NH, dropout_p, dropout_seed);
	a.qkv = qkv;
	a.o = out;
	a.l = lse;
	DISPATCH(fwd, a);
}

static void backward(act_t *dqkv, const act_t *dout, const act_t *qkv, const act_t *out,
		     const real *lse, const int *evict, int v_only, int B, int T, int C,
		     int NH, float p, uint64_t seed)
{
	att_args a;

	if (B <= 0 || T <= 0)
		return;
	att_init(&a, B, T, C, NH, p, seed);
	a.qkv = qkv;
	a.dout = dout;
	a.out = out;
	a.lse = lse;
	a.dqkv = dqkv;
	a.evict = evict;
	a.v_only = v_only;
	a.Dw = (float *)kgpt_cuda_scratch(KGPT_SCRATCH_ATT, (size_t)B * NH * T * sizeof(float));
	a.D = a.Dw;
	DISPATCH(bwd, a);
}

void attention_backward(act_t *dqkv, const act_t *dout, const act_t *qkv,
			const act_t *out, const real *lse, int B, int T, int C,
			int NH, float dropout_p, uint64_t dropout_seed)
{
	backward(dqkv, dout, qkv, out, lse, NULL, 0, B, T, C, NH, dropout_p, dropout_seed);
}

void attention_backward_pruned(act_t *dqkv, const act_t *dout, const act_t *qkv,
			       const act_t *out, const real *lse,
			       const int *evict_step, int v_only, int B, int T,
			       int C, int NH, float dropout_p, uint64_t dropout_seed)
{
	backward(dqkv, dout, qkv, out, lse, evict_step, v_only, B, T, C, NH, dropout_p,
		 dropout_seed);
}
