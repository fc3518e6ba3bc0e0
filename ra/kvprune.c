// SPDX-License-Identifier: MIT
/*
 * KV-cache pruning (ra/kvprune.h, docs/kv-pruning.md).
 *
 * One routine, kvp_step(), advances the cache of one (sequence, layer,
 * head) by one token: insert, evict, (soft: rank and mask), attend. The
 * training forward walks every (b, h) through it, one thread per pair;
 * the CPU backend's generation step (kernels/cpu/kvcache.c) calls it for
 * each head of the new token; the soft backward replays it. So training,
 * evaluation and generation on the CPU share not only the rule but the
 * arithmetic; the CUDA backend's generation step is the same rule in
 * device code.
 *
 * The hard backward needs no replay: the kept sets are {j <= i :
 * evict_step[j] > i} and go to the backend's attention_backward_pruned()
 * (kernels/kernels.h) as masks.
 *
 * The training walk is host code on host memory (the step itself is in
 * ra/kvprune_step.h): it reads qkv and writes out, lse and evict_step
 * directly. The model (ra/kvprune_gpt2.c) hands it host copies of the
 * backend's arrays, so it runs with any backend. The generation cache's
 * arrays are backend memory and its step is the backend's
 * (kv_cache_attend(), kernels/kernels.h).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kgpt/fastmath.h"
#include "kgpt/omp.h"
#include "kgpt/rng.h"
#include "kernels/kernels.h"
#include "ra/kvprune.h"
#include "ra/kvprune_step.h"

/* ---------------------------------------------------------------------- */
/* Backward of one step (soft replay), after kvp_step() for the query. */

/*
 * Gradients of one query in the replay. dK and dV of the cached entries
 * accumulate in transposed per-head buffers (a column per slot, like the
 * caches: rank-1 updates across slots) and go to their rows of dqkv when
 * the entry is evicted or the sequence ends.
 */
struct kvp_grad {
	const real *dO;		/* (hs) d loss / d out_i */
	const real *o;		/* (hs) out_i */
	real *dq;		/* (hs) row i of dqkv, q part */
	real *dk, *dv;		/* row 0 of dqkv, k and v parts */
	int ld;			/* row stride of dqkv (3C) */
	real *dKt;		/* (hs, kld) by key column */
	real *dVt;		/* (hs, cap) by slot */
	real *ds;		/* (T) d loss / d score of each key column */
	real *tv;		/* (cap) dO . value of each slot */
	real dbudget;		/* accumulates d loss / d (rho * block_size) */
};

/* M[t][c] += a x[t] y[c], t < rows, c < n (row stride ld). */
static void rank1(real *M, size_t ld, int rows, const real *x, real a, const real *y, int n)
{
	for (int t = 0; t < rows; t++, M += ld) {
		real xt = a * x[t];

#pragma omp simd
		for (int c = 0; c < n; c++)
			M[c] += xt * y[c];
	}
}

/* dst (hs) += column c of M, then the column is zeroed. */
static void flush_col(real *dst, real *M, size_t ld, int c, int hs)
{
	for (int t = 0; t < hs; t++) {
		dst[t] += M[t * ld + c];
		M[t * ld + c] = 0;
	}
}

/* g->tv[s] = dO . value of slot s */
static void kvp_dov(struct kvp_grad *g, const struct kvp_head *hd)
{
	const real *vt = hd->val;

	memset(g->tv, 0, (size_t)hd->n * sizeof(real));
	for (int t = 0; t < hd->hs; t++, vt += hd->cap) {
		real d = g->dO[t];

#pragma omp simd
		for (int s = 0; s < hd->n; s++)
			g->tv[s] += d * vt[s];
	}
}

/* dq += scale sum_c ds[c] key column c; dK column c += scale ds[c] q. */
static void kvp_dqk(struct kvp_grad *g, const struct kvp_head *hd, const struct kvp_step *st,
		    int n)
{
	const real *kt = hd->key;

	for (int t = 0; t < hd->hs; t++, kt += hd->kld)
		g->dq[t] += st->scale * vdot(g->ds, kt, n);
	rank1(g->dKt, hd->kld, hd->hs, st->q, st->scale, g->ds, n);
}

static void kvp_bwd_kv(const struct kvp_head *hd, const struct kvp_step *st,
		       struct kvp_grad *g)
{
	real D = vdot(g->dO, g->o, hd->hs);

	kvp_dov(g, hd);
	for (int s = 0; s < hd->n; s++) {
		real z = kvp_z(st, hd->pos[s]);

		g->ds[s] = hd->prob[s] * (g->tv[s] * z - D);
		if (st->soft)	/* d log m / d budget = (1 - m) / tau */
			g->dbudget += g->ds[s] * (R(1.0) - hd->m[s]) / st->tau;
	}
	/* dV column s += (p z)_s dO: the forward's weights hd->w */
	rank1(g->dVt, hd->cap, hd->hs, g->dO, R(1.0), hd->w, hd->n);
	kvp_dqk(g, hd, st, hd->n);
}

static void kvp_bwd_v(const struct kvp_head *hd, const struct kvp_step *st,
		      struct kvp_grad *g)
{
	int L = st->i + 1;
	real D = vdot(g->dO, g->o, hd->hs);

	kvp_dov(g, hd);
	/* ds_j = p_j (dw_j - D), dw_j = m z dO.v_j for cached values, else 0 */
#pragma omp simd
	for (int j = 0; j < L; j++)
		g->ds[j] = -hd->prob[j] * D;
	for (int s = 0; s < hd->n; s++) {
		int j = hd->pos[s];
		real m = st->soft ? hd->m[s] : R(1.0), t = g->tv[s] * kvp_z(st, j);

		g->ds[j] += hd->prob[j] * m * t;
		if (st->soft)	/* d m / d budget = m (1 - m) / tau */
			g->dbudget += hd->prob[j] * t * m * (R(1.0) - m) / st->tau;
	}
	/* dV column s += (m p z)_s dO: the forward's weights hd->w */
	rank1(g->dVt, hd->cap, hd->hs, g->dO, R(1.0), hd->w, hd->n);
	kvp_dqk(g, hd, st, L);
}

/* ---------------------------------------------------------------------- */
/* Configuration and sizes. */

int kvprune_check(const struct kvprune_cfg *cfg)
{
	if (!cfg || (cfg->mode != KVPRUNE_KV && cfg->mode != KVPRUNE_V_ONLY))
		return -EINVAL;
	if (cfg->recency < 1)
		return -EINVAL;
	if (!cfg->soft)
		return cfg->k < 1 || cfg->recency >= cfg->k ? -EINVAL : 0;
	if (cfg->block_size < 1 || cfg->recency >= cfg->k_max || !(cfg->tau > 0))
		return -EINVAL;
	if (!isfinite(cfg->rho) || !(cfg->rho > 0))
		return -EINVAL;
	return 0;
}

real kvprune_clamp_rho(real rho, int recency, int block_size)
{
	real lo = (real)recency / (real)block_size;

	if (!(rho >= lo))	/* NaN too */
		return lo;
	return rho > R(1.0) ? R(1.0) : rho;
}

int kvprune_rho_to_k(real rho, int recency, int block_size)
{
	double k = floor((double)rho * block_size + 0.5);

	if (!(k >= recency + 1))
		return recency + 1;
	return k > block_size ? block_size : (int)k;
}

size_t kv_cache_bytes(int n_layer, int n_embd, long tokens, int bytes_per_elem, int batch)
{
	return (size_t)2 * n_layer * (size_t)tokens * n_embd * bytes_per_elem * batch;
}

size_t kv_cache_bytes_mode(enum kvprune_mode mode, int n_layer, int n_embd, long T,
			   long k, int bytes_per_elem, int batch)
{
	long kept = k < T ? k : T;

	if (mode == KVPRUNE_V_ONLY)
		return (size_t)n_layer * (size_t)(T + kept) * n_embd * bytes_per_elem * batch;
	return kv_cache_bytes(n_layer, n_embd, kept, bytes_per_elem, batch);
}

/* ---------------------------------------------------------------------- */
/* The soft backward: the walk replayed per (b, h). */

/* dqkv rows of the entries still cached (and V_ONLY: of all keys) get
 * their accumulated dK, dV. */
static void kvp_flush_all(struct kvp_grad *g, const struct kvp_head *hd, int T, int v_only)
{
	for (int s = 0; s < hd->n; s++) {
		flush_col(g->dv + (size_t)hd->pos[s] * g->ld, g->dVt, hd->cap, s, hd->hs);
		if (!v_only)
			flush_col(g->dk + (size_t)hd->pos[s] * g->ld, g->dKt, hd->kld, s, hd->hs);
	}
	for (int j = 0; v_only && j < T; j++)
		flush_col(g->dk + (size_t)j * g->ld, g->dKt, hd->kld, j, hd->hs);
}

/* Soft backward of one (b, h): replay the walk, differentiate each query. */
static void kvp_bwd_head(const struct kvp_job *jb, int bh, struct kvp_scratch *w)
{
	int b = bh / jb->NH, h = bh % jb->NH, T = jb->T, C3 = 3 * jb->C;
	int v_only = jb->cfg->mode == KVPRUNE_V_ONLY;
	real *d0 = jb->dqkv + (size_t)b * T * C3 + (size_t)h * jb->hs;
	struct kvp_grad g = { .dk = d0 + jb->C, .dv = d0 + 2 * jb->C, .ld = C3,
			      .dKt = w->dKt, .dVt = w->dVt, .ds = w->ds, .tv = w->tv,
			      .o = w->orow };

	memset(w->dKt, 0, (size_t)w->hd.kld * jb->hs * sizeof(real));
	memset(w->dVt, 0, (size_t)w->hd.cap * jb->hs * sizeof(real));
	kvp_head_reset(&w->hd);
	for (int i = 0; i < T; i++) {
		struct kvp_step st;
		real lse;
		int ev;

		kvp_step_init(&st, jb, bh, i, NULL);
		ev = kvp_step(&w->hd, &st, w->orow, &lse);
		if (ev >= 0) {	/* the slot's previous entry is complete */
			int s = w->hd.last;

			flush_col(g.dv + (size_t)ev * C3, w->dVt, w->hd.cap, s, jb->hs);
			if (!v_only)
				flush_col(g.dk + (size_t)ev * C3, w->dKt, w->hd.kld, s, jb->hs);
		}
		g.dO = jb->dout + ((size_t)b * T + i) * jb->C + (size_t)h * jb->hs;
		g.dq = d0 + (size_t)i * C3;
		if (v_only)
			kvp_bwd_v(&w->hd, &st, &g);
		else
			kvp_bwd_kv(&w->hd, &st, &g);
	}
	kvp_flush_all(&g, &w->hd, T, v_only);
	jb->dbudget[bh] = g.dbudget;
}


int kvprune_hard_forward(act_t *out, real *lse, int *evict_step, const act_t *qkv,
			 int B, int T, int C, int NH, float dropout_p, uint64_t dropout_seed,
			 const struct kvprune_cfg *cfg)
{
	if (kvprune_check(cfg) || cfg->soft)
		return -EINVAL;
	return attention_forward_pruned(out, lse, evict_step, qkv, cfg->k, cfg->recency,
					cfg->mode == KVPRUNE_V_ONLY, B, T, C, NH, dropout_p,
					dropout_seed);
}

int kvprune_hard_backward(act_t *dqkv, const act_t *dout, const act_t *qkv,
			  const act_t *out, const real *lse, const int *evict_step, int B,
			  int T, int C, int NH, float dropout_p, uint64_t dropout_seed,
			  const struct kvprune_cfg *cfg)
{
	if (kvprune_check(cfg) || cfg->soft || B < 1 || T < 1 || NH < 1 || C % NH)
		return -EINVAL;
	if (cfg->k >= T)
		attention_backward(dqkv, dout, qkv, out, lse, B, T, C, NH, dropout_p,
				   dropout_seed);
	else
		attention_backward_pruned(dqkv, dout, qkv, out, lse, evict_step,
					  cfg->mode == KVPRUNE_V_ONLY, B, T, C, NH, dropout_p,
					  dropout_seed);
	return 0;
}

/* Hard mode on real arrays: the act_t entry points above where act_t is
 * real (the CPU backend); with bf16 activations only those take it. */
#ifdef KGPT_ACT_BF16
#define HARD_ON_REALS(call)	(-EINVAL)
#else
#define HARD_ON_REALS(call)	(call)
#endif

int kvprune_attention_forward(real *out, real *lse, int *evict_step,
			      const real *qkv, int B, int T, int C, int NH,
			      float dropout_p, uint64_t dropout_seed,
			      const struct kvprune_cfg *cfg)
{
	struct kvp_job jb;
	int err;

	if (kvprune_check(cfg))
		return -EINVAL;
	if (!cfg->soft)
		return HARD_ON_REALS(kvprune_hard_forward(out, lse, evict_step, qkv, B, T, C, NH,
							  dropout_p, dropout_seed, cfg));
	err = kvp_job_init(&jb, B, T, C, NH, dropout_p, dropout_seed, cfg);
	if (err)
		return err;
	jb.qkv = qkv;
	jb.out = out;
	jb.lse = lse;
	jb.evict = evict_step;
	return kvp_run(&jb, kvp_fwd_head);
}

int kvprune_attention_backward(real *dqkv, real *drho, const real *dout,
			       const real *qkv, const real *out, const real *lse,
			       const int *evict_step, int B, int T, int C, int NH,
			       float dropout_p, uint64_t dropout_seed,
			       const struct kvprune_cfg *cfg)
{
	struct kvp_job jb;
	int err = kvprune_check(cfg) ? -EINVAL :
		  kvp_job_init(&jb, B, T, C, NH, dropout_p, dropout_seed, cfg);
	real sum = 0;

	if (err)
		return err;
	if (!cfg->soft)
		return HARD_ON_REALS(kvprune_hard_backward(dqkv, dout, qkv, out, lse, evict_step,
							   B, T, C, NH, dropout_p, dropout_seed,
							   cfg));
	jb.dbudget = calloc((size_t)B * NH, sizeof(real));
	if (!jb.dbudget)
		return -ENOMEM;
	jb.qkv = qkv;
	jb.dqkv = dqkv;
	jb.dout = dout;
	err = kvp_run(&jb, kvp_bwd_head);
	for (int bh = 0; !err && bh < B * NH; bh++)
		sum += jb.dbudget[bh];
	if (!err && drho)
		*drho += sum * (real)cfg->block_size;
	free(jb.dbudget);
	return err;
}

/* ---------------------------------------------------------------------- */
/* Generation cache: its arrays are backend memory, its step the backend's. */

static void kvc_free(void *p, size_t n, size_t size)
{
	kgpt_free(p, n * size);
}

void kv_cache_free(struct kv_cache *c)
{
	size_t nh = (size_t)c->n_head, kv = nh * c->head_size;

	kvc_free(c->key, kv * c->kcap, sizeof(act_t));
	kvc_free(c->val, kv * c->cap, sizeof(act_t));
	kvc_free(c->pos, nh * c->cap, sizeof(int));
	kvc_free(c->imp, nh * c->cap, sizeof(real));
	kvc_free(c->cnt, nh * c->cap, sizeof(int));
	kvc_free(c->len, nh, sizeof(int));
	kvc_free(c->scratch, nh * (c->kcap + c->cap), sizeof(real));
	memset(c, 0, sizeof(*c));
}

void kv_cache_reset(struct kv_cache *c)
{
	c->t = 0;
	kgpt_zero(c->len, (size_t)c->n_head * sizeof(int));
}

/* kgpt_alloc() that adds what it allocated to *bytes */
static void *kvc_alloc(size_t n, size_t size, size_t *bytes)
{
	void *p = kgpt_alloc(n * size);

	if (p)
		*bytes += n * size;
	return p;
}

int kv_cache_init(struct kv_cache *c, int n_head, int n_embd, int max_tokens,
		  const struct kvprune_cfg *cfg)
{
	size_t kv = 0, meta = 0, nh;
	int hs;

	memset(c, 0, sizeof(*c));
	if (kvprune_check(cfg) || cfg->soft || n_head < 1 || n_embd < n_head ||
	    n_embd % n_head || max_tokens < 1)
		return -EINVAL;
	nh = (size_t)n_head;
	hs = n_embd / n_head;
	c->mode = cfg->mode;
	c->n_head = n_head;
	c->head_size = hs;
	c->k = cfg->k;
	c->recency = cfg->recency;
	c->max_tokens = max_tokens;
	c->cap = cfg->k < max_tokens ? cfg->k : max_tokens;
	c->kcap = cfg->mode == KVPRUNE_V_ONLY ? max_tokens : c->cap;
	c->key = kvc_alloc(nh * c->kcap * hs, sizeof(act_t), &kv);
	c->val = kvc_alloc(nh * c->cap * hs, sizeof(act_t), &kv);
	c->pos = kvc_alloc(nh * c->cap, sizeof(int), &meta);
	c->imp = kvc_alloc(nh * c->cap, sizeof(real), &meta);
	c->cnt = kvc_alloc(nh * c->cap, sizeof(int), &meta);
	c->len = kvc_alloc(nh, sizeof(int), &meta);
	c->scratch = kvc_alloc(nh * (c->kcap + c->cap), sizeof(real), &meta);
	if (!c->key || !c->val || !c->pos || !c->imp || !c->cnt || !c->len || !c->scratch) {
		kv_cache_free(c);
		return -ENOMEM;
	}
	c->kv_bytes = kv;
	c->bytes = kv + meta;
	return 0;
}

size_t kv_cache_alloc_bytes(const struct kv_cache *c)
{
	return c->bytes;
}

int kv_cache_len(const struct kv_cache *c, int h)
{
	int n;

	kgpt_download(&n, c->len + h, sizeof(n));
	return n;
}

int kv_cache_step(struct kv_cache *c, act_t *out, const act_t *q, const act_t *k,
		  const act_t *v)
{
	if (c->t >= c->max_tokens)
		return -ENOSPC;
	kv_cache_attend(c, out, q, k, v);
	c->t++;
	return 0;
}
