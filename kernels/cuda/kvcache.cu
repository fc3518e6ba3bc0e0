// SPDX-License-Identifier: MIT
/*
 * Generation through a KV cache on the GPU (kv_cache_attend(),
 * kernels/kernels.h; the policy is ra/kvprune.h's): the cache's arrays
 * are device memory and one launch advances every head of a layer by one
 * token, so a generation step moves nothing between host and device but
 * the token id and the logits.
 *
 * One block per head. Its threads find the victim (a block-wide argmin
 * of importance / count over the slots outside the recency window, ties
 * to the smaller position, as kvp_victim() on the CPU), write the new key
 * and value into their slot, compute one score per cached key (a thread
 * per key column: the transposed layout makes the reads coalesced), the
 * softmax, the importance updates, and then one warp per channel sums the
 * weighted values. The scores and weights live in the cache's scratch,
 * (kcap + cap) floats per head, so no size limit comes from shared
 * memory.
 *
 * The arithmetic is the CPU's up to the order of the sums and the
 * exponential (expf here, kexp_sum() there), so the kept sets are the
 * CPU's except where two importances are within rounding of each other.
 */
#include <limits.h>
#include <math.h>
#include "kernels/cuda/cuda.h"
#include "ra/kvprune.h"

#define THREADS		256

/* (r, p) comes before (br, bp): less important, or as important and older. */
__device__ __forceinline__ bool kvc_before(float r, int p, float br, int bp)
{
	return r < br || (r == br && p < bp);
}

/*
 * The slot of the least important entry of position <= lim among slots
 * [0, n); every thread of the block gets it. -1 if there is none (the
 * caller's policy guarantees one: recency < k).
 */
__device__ int kvc_victim(const float *imp, const int *cnt, const int *pos, int n, int lim)
{
	__shared__ float sh_r[32];
	__shared__ int sh_p[32], sh_s[32];
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
	float br = INFINITY;
	int bp = INT_MAX, bs = -1;

	for (int s = threadIdx.x; s < n; s += blockDim.x) {
		float r = imp[s] / (float)cnt[s];	/* every count >= 1 here */

		if (pos[s] <= lim && kvc_before(r, pos[s], br, bp)) {
			br = r;
			bp = pos[s];
			bs = s;
		}
	}
	for (int o = 16; o > 0; o >>= 1) {
		float r = __shfl_xor_sync(0xffffffffu, br, o);
		int p = __shfl_xor_sync(0xffffffffu, bp, o);
		int s = __shfl_xor_sync(0xffffffffu, bs, o);

		if (kvc_before(r, p, br, bp)) {
			br = r;
			bp = p;
			bs = s;
		}
	}
	if (lane == 0) {
		sh_r[warp] = br;
		sh_p[warp] = bp;
		sh_s[warp] = bs;
	}
	__syncthreads();
	if (threadIdx.x == 0) {
		for (int w = 1; w < nw; w++)
			if (kvc_before(sh_r[w], sh_p[w], sh_r[0], sh_p[0])) {
				sh_r[0] = sh_r[w];
				sh_p[0] = sh_p[w];
				sh_s[0] = sh_s[w];
			}
	}
	__syncthreads();
	return sh_s[0];
}

/* The cache's arrays (every head) and the token's vectors. */
struct kvc_head {
	float *key, *val, *imp, *prob;
	int *pos, *cnt, *len;
	const float *q, *k, *v;
	float *out;
};

__global__ void kvc_step(struct kvc_head a, int t, int hs, int cap, int kcap, int recency,
			 int v_only, float scale)
{
	__shared__ float sh[32];
	__shared__ int sh_slot, sh_n;
	int h = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	int nw = blockDim.x >> 5, n, nk;
	float *key = a.key + (size_t)h * hs * kcap, *val = a.val + (size_t)h * hs * cap;
	float *imp = a.imp + (size_t)h * cap, *prob = a.prob + (size_t)h * (kcap + cap);
	float *w = prob + kcap, mx = -INFINITY, sum = 0, inv;
	int *pos = a.pos + (size_t)h * cap, *cnt = a.cnt + (size_t)h * cap;
	const float *q = a.q + (size_t)h * hs;

	/* 1. insert: a free slot, or the victim's */
	n = a.len[h];
	if (n == cap) {
		int s = kvc_victim(imp, cnt, pos, n, t - recency);

		if (threadIdx.x == 0)
			sh_slot = s;
	} else if (threadIdx.x == 0) {
		sh_slot = n;
		n++;
	}
	if (threadIdx.x == 0)
		sh_n = n;
	__syncthreads();
	n = sh_n;
	for (int d = threadIdx.x; d < hs; d += blockDim.x) {
		val[(size_t)d * cap + sh_slot] = a.v[(size_t)h * hs + d];
		key[(size_t)d * kcap + (v_only ? t : sh_slot)] = a.k[(size_t)h * hs + d];
	}
	if (threadIdx.x == 0) {
		pos[sh_slot] = t;
		imp[sh_slot] = 0;
		cnt[sh_slot] = 0;
		a.len[h] = n;
	}
	__syncthreads();

	/* 2. scores over the cached keys (V_ONLY: every key <= t), softmax */
	nk = v_only ? t + 1 : n;
	for (int c = threadIdx.x; c < nk; c += blockDim.x) {
		float s = 0;

		for (int d = 0; d < hs; d++)
			s += q[d] * key[(size_t)d * kcap + c];
		prob[c] = s * scale;
		mx = fmaxf(mx, prob[c]);
	}
	mx = block_max(mx, sh, -INFINITY);
	for (int c = threadIdx.x; c < nk; c += blockDim.x) {
		float e = expf(prob[c] - mx);

		prob[c] = e;
		sum += e;
	}
	inv = 1.0f / block_sum(sum, sh);

	/* 3. every cached entry's weight, importance and count */
	for (int s = threadIdx.x; s < n; s += blockDim.x) {
		float ws = prob[v_only ? pos[s] : s] * inv;

		imp[s] += ws;
		cnt[s]++;
		w[s] = ws;
	}
	__syncthreads();

	/* 4. out = the weighted sum of the cached values, a warp per channel */
	for (int d = warp; d < hs; d += nw) {
		const float *vr = val + (size_t)d * cap;
		float acc = 0;

		for (int s = lane; s < n; s += 32)
			acc += w[s] * vr[s];
		acc = warp_sum(acc);
		if (lane == 0)
			a.out[(size_t)h * hs + d] = acc;
	}
}

void kv_cache_attend(struct kv_cache *c, real *out, const real *q, const real *k,
		     const real *v)
{
	struct kvc_head a;

	a.key = c->key;
	a.val = c->val;
	a.imp = c->imp;
	a.prob = c->scratch;
	a.pos = c->pos;
	a.cnt = c->cnt;
	a.len = c->len;
	a.q = q;
	a.k = k;
	a.v = v;
	a.out = out;
	KGPT_LAUNCH(kvc_step, c->n_head, THREADS, 0, a, c->t, c->head_size, c->cap, c->kcap,
		    c->recency, c->mode == KVPRUNE_V_ONLY, 1.0f / sqrtf((float)c->head_size));
}
