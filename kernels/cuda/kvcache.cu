// SPDX-License-Identifier: MIT
/*
 * KV-cache pruning's cache walk on the GPU (ra/kvprune.h, the policy):
 * the generation step kv_cache_attend() and the forward of training and
 * evaluation, attention_forward_pruned() (kernels/kernels.h). Both are
 * kvc_advance(): one block moves one (sequence, head)'s cache on by one
 * token. Generation launches a block per head for each token, on the
 * cache's device arrays, so a step moves nothing between host and device
 * but the token id and the logits; training launches a block per
 * (b, h), each walking its T tokens with its cache in device scratch.
 *
 * In a step the block's threads find the victim (a block-wide argmin of
 * importance / count over the slots outside the recency window, ties to
 * the smaller position, as kvp_victim() on the CPU), write the new key
 * and value into their slot, compute one score per cached key (a thread
 * per key column: the transposed layout makes the reads coalesced), the
 * softmax, the importance updates and the dropout masks, and then one
 * warp per channel sums the weighted values. Scores and weights live in
 * global scratch, (kcap + cap) floats per head, so no size limit comes
 * from shared memory.
 *
 * The arithmetic is the CPU's up to the order of the sums and the
 * exponential (expf here, kexp_sum() there), so the kept sets are the
 * CPU's except where two importances are within rounding of each other.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include "kernels/cuda/cuda.h"
#include "kgpt/rng.h"
#include "ra/kvprune.h"

/* Threads per block (a multiple of 32); tests/cuda-emu builds with fewer. */
#ifndef KVC_THREADS
#define KVC_THREADS	256
#endif

/* (r, p) comes before (br, bp): less important, or as important and older. */
__device__ __forceinline__ bool kvc_before(float r, int p, float br, int bp)
{
	return r < br || (r == br && p < bp);
}

/*
 * The slot of the least important entry of position <= lim among slots
 * [0, n); every thread of the block gets it. As on the CPU, entries
 * inside the recency window count as infinitely important, and a NaN
 * importance (a diverged run) never wins; if nothing does, slot 0, so
 * that the cache stays in bounds while the NaN loss stops the run.
 */
__device__ int kvc_victim(const float *imp, const int *cnt, const int *pos, int n, int lim)
{
	__shared__ float sh_r[32];
	__shared__ int sh_p[32], sh_s[32];
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
	float br = INFINITY;
	int bp = INT_MAX, bs = -1;

	for (int s = threadIdx.x; s < n; s += blockDim.x) {
		/* every count >= 1 here */
		float r = pos[s] <= lim ? imp[s] / (float)cnt[s] : INFINITY;

		if (kvc_before(r, pos[s], br, bp)) {
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
	return sh_s[0] < 0 ? 0 : sh_s[0];
}

/* One head's cache: its arrays, and the scratch of its scores and weights. */
struct kvc_cache {
	act_t *key;		/* (hs, kcap), a column per slot (V_ONLY: per position) */
	act_t *val;		/* (hs, cap), a column per slot */
	float *imp;		/* (cap) attention weight received */
	float *prob;		/* (kcap + cap): scores, then (at kcap) the weights */
	int *pos, *cnt;		/* (cap) position of each slot, queries that saw it */
	int cap, kcap;
};

/* The step's constants. */
struct kvc_rule {
	int hs, recency, v_only;
	float scale;		/* 1/sqrt(hs) */
	float p;		/* dropout on the weights, 0 in generation */
	uint64_t seed;
};

/*
 * Token t of one head through its cache c, by the whole block: insert its
 * key k and value v (hs each), evict per the policy, attend with its
 * query q; out (hs) = the output, *lse (when not NULL) = the log-sum-exp
 * of the scores. *n_sh (shared memory): the entries in use, updated.
 * Dropout mask element of key j: base + j. Returns the evicted position
 * or -1, in every thread.
 */
__device__ int kvc_advance(const struct kvc_cache *c, const struct kvc_rule *r, int *n_sh,
			   const act_t *q, const act_t *k, const act_t *v, act_t *out,
			   float *lse, int t, uint64_t base)
{
	__shared__ float sh[32];
	int n = *n_sh, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	int nw = blockDim.x >> 5, slot, ev = -1, nk, hs = r->hs;
	float *w = c->prob + c->kcap, mx = -INFINITY, sum = 0, inv, z;

	/* 1. insert: a free slot, or the victim's */
	if (n == c->cap) {
		slot = kvc_victim(c->imp, c->cnt, c->pos, n, t - r->recency);
		ev = c->pos[slot];
	} else {
		slot = n++;
	}
	__syncthreads();	/* every thread has read pos[slot] and *n_sh */
	for (int d = threadIdx.x; d < hs; d += blockDim.x) {
		c->val[(size_t)d * c->cap + slot] = v[d];
		c->key[(size_t)d * c->kcap + (r->v_only ? t : slot)] = k[d];
	}
	if (threadIdx.x == 0) {
		c->pos[slot] = t;
		c->imp[slot] = 0;
		c->cnt[slot] = 0;
		*n_sh = n;
	}
	__syncthreads();

	/* 2. scores over the cached keys (V_ONLY: every key <= t), softmax */
	nk = r->v_only ? t + 1 : n;
	for (int j = threadIdx.x; j < nk; j += blockDim.x) {
		float s = 0;

		for (int d = 0; d < hs; d++)
			s += a2f(q[d]) * a2f(c->key[(size_t)d * c->kcap + j]);
		c->prob[j] = s * r->scale;
		mx = fmaxf(mx, c->prob[j]);
	}
	mx = block_max(mx, sh, -INFINITY);
	for (int j = threadIdx.x; j < nk; j += blockDim.x) {
		float e = expf(c->prob[j] - mx);

		c->prob[j] = e;
		sum += e;
	}
	sum = block_sum(sum, sh);
	inv = 1.0f / sum;
	if (lse && threadIdx.x == 0)
		*lse = mx + logf(sum);

	/* 3. every cached entry's weight (before dropout) is its importance */
	z = r->p > 0 ? 1.0f / (1.0f - r->p) : 1.0f;
	for (int s = threadIdx.x; s < n; s += blockDim.x) {
		int j = c->pos[s];
		float ws = c->prob[r->v_only ? j : s] * inv;

		c->imp[s] += ws;
		c->cnt[s]++;
		if (r->p > 0)
			ws *= kgpt_dropout_keep(r->seed, base + j, r->p) ? z : 0.0f;
		w[s] = ws;
	}
	__syncthreads();

	/* 4. out = the weighted sum of the cached values, a warp per channel */
	for (int d = warp; d < hs; d += nw) {
		const act_t *vr = c->val + (size_t)d * c->cap;
		float acc = 0;

		for (int s = lane; s < n; s += 32)
			acc += w[s] * a2f(vr[s]);
		acc = warp_sum(acc);
		if (lane == 0)
			out[d] = f2a(acc);
	}
	__syncthreads();	/* the next step may overwrite a slot read above */
	return ev;
}

/* ------------------------------------------------------------------------
 * Generation: block h advances head h of a struct kv_cache by one token.
 */

/* The arrays of a struct kv_cache (every head) and the token's vectors. */
struct kvc_heads {
	act_t *key, *val;
	float *imp, *scratch;
	int *pos, *cnt, *len;
	const act_t *q, *k, *v;
	act_t *out;
};

__global__ void kvc_step(struct kvc_heads a, struct kvc_rule r, int t, int cap, int kcap)
{
	__shared__ int n_sh;
	int h = blockIdx.x, hs = r.hs;
	struct kvc_cache c;

	c.key = a.key + (size_t)h * hs * kcap;
	c.val = a.val + (size_t)h * hs * cap;
	c.imp = a.imp + (size_t)h * cap;
	c.prob = a.scratch + (size_t)h * (kcap + cap);
	c.pos = a.pos + (size_t)h * cap;
	c.cnt = a.cnt + (size_t)h * cap;
	c.cap = cap;
	c.kcap = kcap;
	if (threadIdx.x == 0)
		n_sh = a.len[h];
	__syncthreads();
	kvc_advance(&c, &r, &n_sh, a.q + (size_t)h * hs, a.k + (size_t)h * hs,
		    a.v + (size_t)h * hs, a.out + (size_t)h * hs, NULL, t, 0);
	if (threadIdx.x == 0)
		a.len[h] = n_sh;
}

static struct kvc_rule kvc_rule(int hs, int recency, int v_only, float p, uint64_t seed)
{
	struct kvc_rule r;

	r.hs = hs;
	r.recency = recency;
	r.v_only = v_only;
	r.scale = 1.0f / sqrtf((float)hs);
	r.p = p;
	r.seed = seed;
	return r;
}

void kv_cache_attend(struct kv_cache *c, act_t *out, const act_t *q, const act_t *k,
		     const act_t *v)
{
	struct kvc_heads a;

	a.key = c->key;
	a.val = c->val;
	a.imp = c->imp;
	a.scratch = c->scratch;
	a.pos = c->pos;
	a.cnt = c->cnt;
	a.len = c->len;
	a.q = q;
	a.k = k;
	a.v = v;
	a.out = out;
	KGPT_LAUNCH(kvc_step, c->n_head, KVC_THREADS, 0, a,
		    kvc_rule(c->head_size, c->recency, c->mode == KVPRUNE_V_ONLY, 0.0f, 0), c->t,
		    c->cap, c->kcap);
}

/* ------------------------------------------------------------------------
 * Training and evaluation: block (b, h) walks its sequence, T tokens.
 */

/* One walk's cache in the scratch: key and val (act_t, padded to 16
 * bytes), then imp and prob (floats), pos and cnt (ints). */
static __host__ __device__ size_t kvp_walk_kv_bytes(int hs, int cap, int kcap)
{
	return ((size_t)hs * (kcap + cap) * sizeof(act_t) + 15) & ~(size_t)15;
}

static __host__ __device__ size_t kvp_walk_bytes(int hs, int cap, int kcap)
{
	return kvp_walk_kv_bytes(hs, cap, kcap) +
	       ((size_t)cap + (kcap + cap) + 2 * (size_t)cap) * sizeof(float);
}

__global__ void kvp_walk(act_t *out, float *lse, int *evict, const act_t *qkv,
			 unsigned char *scratch, struct kvc_rule r, int T, int C, int NH, int cap,
			 int kcap)
{
	__shared__ int n_sh;
	int bh = blockIdx.x, b = bh / NH, h = bh % NH, hs = r.hs;
	unsigned char *f = scratch + (size_t)bh * kvp_walk_bytes(hs, cap, kcap);
	int *ev = evict + (size_t)bh * T;
	struct kvc_cache c;

	c.key = (act_t *)f;
	c.val = c.key + (size_t)hs * kcap;
	c.imp = (float *)(f + kvp_walk_kv_bytes(hs, cap, kcap));
	c.prob = c.imp + cap;
	c.pos = (int *)(c.prob + kcap + cap);
	c.cnt = c.pos + cap;
	c.cap = cap;
	c.kcap = kcap;
	for (int j = threadIdx.x; j < T; j += blockDim.x)
		ev[j] = T;
	if (threadIdx.x == 0)
		n_sh = 0;
	__syncthreads();
	for (int i = 0; i < T; i++) {
		const act_t *row = qkv + ((size_t)b * T + i) * 3 * C + (size_t)h * hs;
		int e = kvc_advance(&c, &r, &n_sh, row, row + C, row + 2 * C,
				    out + ((size_t)b * T + i) * C + (size_t)h * hs,
				    lse + (size_t)bh * T + i, i, ((uint64_t)bh * T + i) * T);

		if (e >= 0 && threadIdx.x == 0)
			ev[e] = i;
	}
}

__global__ void kvp_fill(int *x, size_t n, int v)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		x[i] = v;
}

int attention_forward_pruned(act_t *out, real *lse, int *evict_step, const act_t *qkv,
			     int k, int recency, int v_only, int B, int T, int C, int NH,
			     float dropout_p, uint64_t dropout_seed)
{
	size_t nbh = (size_t)B * NH;
	int hs, cap, kcap;
	unsigned char *scratch;

	if (B < 1 || T < 1 || NH < 1 || C < NH || C % NH || recency < 1 || recency >= k)
		return -EINVAL;
	if (k >= T) {
		attention_forward(out, lse, qkv, B, T, C, NH, dropout_p, dropout_seed);
		KGPT_LAUNCH(kvp_fill, kgpt_blocks(nbh * T, KVC_THREADS, 65536u), KVC_THREADS, 0,
			    evict_step, nbh * T, T);
		return 0;
	}
	hs = C / NH;
	cap = k;
	kcap = v_only ? T : cap;
	scratch = (unsigned char *)kgpt_cuda_scratch(KGPT_SCRATCH_KVP,
						     nbh * kvp_walk_bytes(hs, cap, kcap));
	KGPT_LAUNCH(kvp_walk, (unsigned int)nbh, KVC_THREADS, 0, out, lse, evict_step, qkv, scratch,
		    kvc_rule(hs, recency, v_only, dropout_p, dropout_seed), T, C, NH, cap, kcap);
	return 0;
}
