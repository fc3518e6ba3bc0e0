/* SPDX-License-Identifier: MIT */
/*
 * KV-cache pruning's cache walk on the host. kvp_step() advances the
 * cache of one (sequence, layer, head) by one token: it inserts token i,
 * evicts per the policy of ra/kvprune.h, (soft: ranks and masks) and
 * attends; kvp_run() walks every (b, h) of a layer through T steps in
 * parallel (kvp_fwd_head()). Host code on host memory, included by the
 * places that walk a cache on the host: ra/kvprune.c (the learned
 * budget's soft forward and its backward's replay) and the CPU backend
 * (kernels/cpu/kvprune.c: the hard forward of training and evaluation,
 * attention_forward_pruned(); kernels/cpu/kvcache.c: the generation
 * step), so that training and generation share the arithmetic operation
 * for operation. The CUDA backend's walk and generation step
 * (kernels/cuda/kvcache.cu) are the same policy in device code.
 *
 * Its softmax exponentiates with kexp_sum() (kgpt/fastmath.h), the CPU
 * attention's, so pruned and unpruned attention round alike.
 */
#ifndef KGPT_RA_KVPRUNE_STEP_H
#define KGPT_RA_KVPRUNE_STEP_H

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kgpt/fastmath.h"
#include "kgpt/omp.h"
#include "kgpt/real.h"
#include "kgpt/rng.h"
#include "ra/kvprune.h"

#ifdef KGPT_F64
#define kvp_log1p	log1p
#else
#define kvp_log1p	log1pf
#endif

/* ---------------------------------------------------------------------- */
/* Small vector helpers (hs wide). */

typedef real vreal __attribute__((vector_size(32)));
#define VW	((int)(32 / sizeof(real)))

static inline vreal vload(const real *p)
{
	vreal v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* a . b with four independent vector sums (a fixed order: the same in
 * training and generation). */
static inline real vdot(const real *a, const real *b, int n)
{
	vreal s0 = { 0 }, s1 = { 0 }, s2 = { 0 }, s3 = { 0 };
	real s = 0;
	int j = 0;

	for (; j + 4 * VW <= n; j += 4 * VW) {
		s0 += vload(a + j) * vload(b + j);
		s1 += vload(a + j + VW) * vload(b + j + VW);
		s2 += vload(a + j + 2 * VW) * vload(b + j + 2 * VW);
		s3 += vload(a + j + 3 * VW) * vload(b + j + 3 * VW);
	}
	for (; j + VW <= n; j += VW)
		s0 += vload(a + j) * vload(b + j);
	s0 = (s0 + s1) + (s2 + s3);
	for (int l = 0; l < VW; l++)
		s += s0[l];
	for (; j < n; j++)
		s += a[j] * b[j];
	return s;
}

/* ---------------------------------------------------------------------- */
/* The cache of one (sequence, layer, head) and one step of it. */

struct kvp_head {
	int hs;			/* head size */
	int cap;		/* slots */
	int kld;		/* row stride of key: cap (KV) or T (V_ONLY) */
	int n;			/* entries in use */
	int last;		/* slot the newest token went to */
	real *key;		/* (hs, kld) transposed; KV: column = slot, V_ONLY: position */
	real *val;		/* (hs, cap) transposed, column = slot */
	int *pos;		/* (cap) position of the entry in a slot */
	real *imp;		/* (cap) attention weight received */
	int *cnt;		/* (cap) queries that saw it */
	real *prob;		/* (kld) scores, then probabilities */
	real *w;		/* (cap) weight of each slot's value in the output */
	/* soft only, NULL in hard mode */
	int *order;		/* (cap) evictable slots, most important first */
	int n_ev;		/* entries in order[] */
	real *rkey;		/* (cap) importance of each slot while ranking */
	real *m, *logm;		/* (cap) soft mask of each slot and its log */
};

struct kvp_step {
	const real *q, *k, *v;	/* (hs) each: token i of this head */
	int i;			/* its position */
	int recency;
	int v_only;
	real scale;		/* 1 / sqrt(hs) */
	int soft;
	real budget;		/* soft: rho * block_size, in entries */
	real tau;		/* soft: temperature, in ranks */
	float p;		/* dropout */
	uint64_t seed;
	uint64_t base;		/* mask element of (i, key 0) */
	uint64_t *digest;	/* soft: rank hash, may be NULL */
};

static inline void kvp_head_reset(struct kvp_head *hd)
{
	hd->n = 0;
	hd->n_ev = 0;
}

/* Dropout scale of key j for this query (1 without dropout). */
static inline real kvp_z(const struct kvp_step *st, int j)
{
	if (st->p <= 0)
		return R(1.0);
	return kgpt_dropout_keep(st->seed, st->base + j, st->p) ?
	       R(1.0) / (R(1.0) - (real)st->p) : R(0.0);
}

/*
 * Least important slot with position <= lim; ties: the older entry.
 * Importances go through hd->w (free until the attention of this step).
 */
static inline int kvp_victim(const struct kvp_head *hd, int lim)
{
	real *r = hd->w, bv = INFINITY;
	int best = -1;

#pragma omp simd
	for (int s = 0; s < hd->n; s++)
		r[s] = hd->imp[s] / (real)hd->cnt[s];	/* every count >= 1 here */
#pragma omp simd
	for (int s = 0; s < hd->n; s++)
		r[s] = hd->pos[s] <= lim ? r[s] : INFINITY;
#pragma omp simd reduction(min:bv)
	for (int s = 0; s < hd->n; s++)
		bv = r[s] < bv ? r[s] : bv;
	for (int s = 0; s < hd->n; s++)
		if (r[s] == bv && (best < 0 || hd->pos[s] < hd->pos[best]))
			best = s;
	return best < 0 ? 0 : best;	/* only NaN importances: a diverged run */
}

static inline int kvp_slot_of(const struct kvp_head *hd, int pos)
{
	for (int s = 0; s < hd->n; s++)
		if (hd->pos[s] == pos)
			return s;
	return -1;
}

static inline void kvp_order_remove(struct kvp_head *hd, int slot)
{
	int r = 0;

	while (r < hd->n_ev && hd->order[r] != slot)
		r++;
	if (r == hd->n_ev)
		return;
	memmove(hd->order + r, hd->order + r + 1, (size_t)(hd->n_ev - r - 1) * sizeof(int));
	hd->n_ev--;
}

/*
 * Steps 2 and 4 of the policy: the token at i - recency leaves the
 * recency window (soft: it joins the ranking); token i enters, into a
 * free slot or into the slot of the victim. Returns the evicted position
 * or -1.
 */
static inline int kvp_insert(struct kvp_head *hd, const struct kvp_step *st)
{
	int slot, col, ev = -1, hs = hd->hs;

	if (st->soft && st->i - st->recency >= 0)
		hd->order[hd->n_ev++] = kvp_slot_of(hd, st->i - st->recency);
	if (hd->n < hd->cap) {
		slot = hd->n++;
	} else {
		slot = kvp_victim(hd, st->i - st->recency);
		ev = hd->pos[slot];
		if (st->soft)
			kvp_order_remove(hd, slot);
	}
	col = st->v_only ? st->i : slot;
	for (int t = 0; t < hs; t++) {
		hd->val[(size_t)t * hd->cap + slot] = st->v[t];
		hd->key[(size_t)t * hd->kld + col] = st->k[t];
	}
	hd->pos[slot] = st->i;
	hd->imp[slot] = 0;
	hd->cnt[slot] = 0;
	hd->last = slot;
	return ev;
}

/* a ranks before b: more important, or as important and newer. */
static inline int kvp_before(const struct kvp_head *hd, int a, int b)
{
	return hd->rkey[a] > hd->rkey[b] ||
	       (hd->rkey[a] == hd->rkey[b] && hd->pos[a] > hd->pos[b]);
}

/* log sigmoid(x) and sigmoid(x), without overflow. */
static inline real log_sigmoid(real x, real *sig)
{
	real e;

	if (x >= 0) {
		e = rexp(-x);
		*sig = R(1.0) / (R(1.0) + e);
		return -kvp_log1p(e);
	}
	e = rexp(x);
	*sig = e / (R(1.0) + e);
	return x - kvp_log1p(e);
}

/*
 * Soft only: rank the evictable entries by importance (insertion sort
 * from the previous order, which changes little from one query to the
 * next) and set every slot's mask; recency entries get 1.
 */
static inline void kvp_rank(struct kvp_head *hd, const struct kvp_step *st)
{
	int n_rec = hd->n - hd->n_ev;

	for (int s = 0; s < hd->n; s++) {
		hd->m[s] = R(1.0);
		hd->logm[s] = R(0.0);
	}
	for (int r = 0; r < hd->n_ev; r++) {
		int s = hd->order[r];

		hd->rkey[s] = hd->imp[s] / (real)hd->cnt[s];
	}
	for (int r = 1; r < hd->n_ev; r++) {
		int s = hd->order[r], q = r;

		while (q > 0 && kvp_before(hd, s, hd->order[q - 1])) {
			hd->order[q] = hd->order[q - 1];
			q--;
		}
		hd->order[q] = s;
	}
	for (int r = 0; r < hd->n_ev; r++) {
		int s = hd->order[r];
		real x = (st->budget - (real)n_rec - (real)r - R(0.5)) / st->tau;

		hd->logm[s] = log_sigmoid(x, &hd->m[s]);
		if (st->digest)
			*st->digest = (*st->digest ^ (uint64_t)hd->pos[s]) * 0x100000001b3ULL;
	}
	if (st->digest)
		*st->digest = (*st->digest ^ 0xffffffffULL) * 0x100000001b3ULL;
}

/* softmax of x[0..n) in place; returns the log-sum-exp */
static inline real kvp_softmax(real *x, int n)
{
	real mx = kmax(x, n), sum, inv;

	sum = kexp_sum(x, n, mx);
	inv = R(1.0) / sum;
#pragma omp simd
	for (int j = 0; j < n; j++)
		x[j] *= inv;
	return mx + rlog(sum);
}

/*
 * sc[c] = scale * q . key column c, c < n. The key cache is transposed, so
 * this runs across columns (vectorised), four channels per pass.
 */
static inline void kvp_scores(real *sc, const struct kvp_head *hd, const struct kvp_step *st, int n)
{
	const real *k0 = hd->key, *q = st->q;
	size_t ld = (size_t)hd->kld;
	int t = 0;

	memset(sc, 0, (size_t)n * sizeof(real));
	for (; t + 4 <= hd->hs; t += 4, k0 += 4 * ld) {
		const real *k1 = k0 + ld, *k2 = k1 + ld, *k3 = k2 + ld;
		real q0 = q[t], q1 = q[t + 1], q2 = q[t + 2], q3 = q[t + 3];

#pragma omp simd
		for (int c = 0; c < n; c++)
			sc[c] += q0 * k0[c] + q1 * k1[c] + q2 * k2[c] + q3 * k3[c];
	}
	for (; t < hd->hs; t++, k0 += ld) {
		real qt = q[t];

#pragma omp simd
		for (int c = 0; c < n; c++)
			sc[c] += qt * k0[c];
	}
#pragma omp simd
	for (int c = 0; c < n; c++)
		sc[c] *= st->scale;
}

/* out[t] = sum over slots s of w[s] val[t][s] (w: hd->w), four rows of
 * the transposed value cache per pass, each with its own vector sum. */
static inline void kvp_mix(real *out, const struct kvp_head *hd)
{
	const real *v0 = hd->val, *w = hd->w;
	size_t ld = (size_t)hd->cap;
	int n = hd->n, t = 0;

	for (; t + 4 <= hd->hs; t += 4, v0 += 4 * ld) {
		const real *v1 = v0 + ld, *v2 = v1 + ld, *v3 = v2 + ld;
		vreal a0 = { 0 }, a1 = { 0 }, a2 = { 0 }, a3 = { 0 };
		real r0 = 0, r1 = 0, r2 = 0, r3 = 0;
		int j = 0;

		for (; j + VW <= n; j += VW) {
			vreal x = vload(w + j);

			a0 += x * vload(v0 + j);
			a1 += x * vload(v1 + j);
			a2 += x * vload(v2 + j);
			a3 += x * vload(v3 + j);
		}
		for (int l = 0; l < VW; l++) {
			r0 += a0[l];
			r1 += a1[l];
			r2 += a2[l];
			r3 += a3[l];
		}
		for (; j < n; j++) {
			r0 += w[j] * v0[j];
			r1 += w[j] * v1[j];
			r2 += w[j] * v2[j];
			r3 += w[j] * v3[j];
		}
		out[t] = r0;
		out[t + 1] = r1;
		out[t + 2] = r2;
		out[t + 3] = r3;
	}
	for (; t < hd->hs; t++, v0 += ld)
		out[t] = vdot(w, v0, n);
}

/* KV mode: softmax over the cached keys (soft: plus log m). */
static inline real kvp_attend_kv(struct kvp_head *hd, const struct kvp_step *st, real *out)
{
	int n = hd->n;
	real *p = hd->prob, lse;

	kvp_scores(p, hd, st, n);
	if (st->soft) {
#pragma omp simd
		for (int s = 0; s < n; s++)
			p[s] += hd->logm[s];
	}
	lse = kvp_softmax(p, n);
#pragma omp simd
	for (int s = 0; s < n; s++) {
		hd->imp[s] += p[s];
		hd->cnt[s]++;
	}
	if (st->p > 0) {
		for (int s = 0; s < n; s++)
			hd->w[s] = p[s] * kvp_z(st, hd->pos[s]);
	} else {
		memcpy(hd->w, p, (size_t)n * sizeof(real));
	}
	kvp_mix(out, hd);
	return lse;
}

/* V_ONLY: softmax over all keys <= i, only cached values (soft: times m). */
static inline real kvp_attend_v(struct kvp_head *hd, const struct kvp_step *st, real *out)
{
	real *p = hd->prob, lse;

	kvp_scores(p, hd, st, st->i + 1);
	lse = kvp_softmax(p, st->i + 1);
	for (int s = 0; s < hd->n; s++) {
		int j = hd->pos[s];
		real w = p[j] * (st->soft ? hd->m[s] : R(1.0));

		hd->imp[s] += w;
		hd->cnt[s]++;
		hd->w[s] = w * kvp_z(st, j);
	}
	kvp_mix(out, hd);
	return lse;
}

/*
 * One step of the policy for token st->i: out (hs) = its attention
 * output, *lse = its log-sum-exp. Returns the evicted position or -1.
 */
static inline int kvp_step(struct kvp_head *hd, const struct kvp_step *st, real *out, real *lse)
{
	int ev = kvp_insert(hd, st);

	if (st->soft)
		kvp_rank(hd, st);
	*lse = st->v_only ? kvp_attend_v(hd, st, out) : kvp_attend_kv(hd, st, out);
	return ev;
}

/* ---------------------------------------------------------------------- */
/* The walk of training: one cache walk per (b, h), in parallel. */

struct kvp_job {
	const struct kvprune_cfg *cfg;
	int B, T, C, NH, hs;
	int cap;		/* slots: min(k or k_max, T) */
	real scale;
	float p;
	uint64_t seed;
	const real *qkv;
	real *out, *lse;	/* forward */
	int *evict;
	real *dqkv;		/* backward */
	const real *dout;
	real *dbudget;		/* (B*NH) */
};

/* Per-thread cache and scratch, allocated before the parallel region. */
struct kvp_scratch {
	struct kvp_head hd;
	real *orow;		/* (hs) */
	real *ds;		/* (T) */
	real *tv;		/* (cap) */
	real *dKt, *dVt;	/* soft backward: (hs, kld), (hs, cap) */
	real *rmem;
	int *imem;
};

static inline void kvp_scratch_free(struct kvp_scratch *w)
{
	free(w->rmem);
	free(w->imem);
	w->rmem = NULL;		/* a second free (error paths) is harmless */
	w->imem = NULL;
}

static inline int kvp_scratch_alloc(struct kvp_scratch *w, const struct kvp_job *jb)
{
	int cap = jb->cap, T = jb->T, hs = jb->hs, soft = jb->cfg->soft;
	int kld = jb->cfg->mode == KVPRUNE_V_ONLY ? T : cap;
	size_t nc = (size_t)(kld + cap) * hs;	/* caches; as much again for gradients */
	size_t nr = nc * (soft ? 2 : 1) + 7 * (size_t)cap + 2 * (size_t)T + hs;
	real *r = malloc(nr * sizeof(real));
	int *im = malloc(3 * (size_t)cap * sizeof(int));

	memset(w, 0, sizeof(*w));
	w->rmem = r;
	w->imem = im;
	if (!r || !im) {
		kvp_scratch_free(w);
		return -ENOMEM;
	}
	w->hd.hs = hs;
	w->hd.cap = cap;
	w->hd.kld = kld;
	w->hd.key = r, r += (size_t)kld * hs;
	w->hd.val = r, r += (size_t)cap * hs;
	w->hd.imp = r, r += cap;
	w->hd.w = r, r += cap;
	w->hd.rkey = soft ? r : NULL, r += cap;
	w->hd.m = soft ? r : NULL, r += cap;
	w->hd.logm = soft ? r : NULL, r += cap;
	w->tv = r, r += cap;
	w->hd.prob = r, r += T;
	w->ds = r, r += T;
	w->orow = r, r += hs;
	if (soft) {
		w->dKt = r, r += (size_t)kld * hs;
		w->dVt = r;
	}
	w->hd.pos = im;
	w->hd.cnt = im + cap;
	w->hd.order = soft ? im + 2 * cap : NULL;
	return 0;
}

static inline void kvp_step_init(struct kvp_step *st, const struct kvp_job *jb, int bh, int i,
			  uint64_t *digest)
{
	const struct kvprune_cfg *cfg = jb->cfg;
	const real *row = jb->qkv + ((size_t)(bh / jb->NH) * jb->T + i) * 3 * jb->C +
			  (size_t)(bh % jb->NH) * jb->hs;

	st->q = row;
	st->k = row + jb->C;
	st->v = row + 2 * jb->C;
	st->i = i;
	st->recency = cfg->recency;
	st->v_only = cfg->mode == KVPRUNE_V_ONLY;
	st->scale = jb->scale;
	st->soft = cfg->soft;
	st->budget = cfg->soft ? cfg->rho * (real)cfg->block_size : R(0.0);
	st->tau = cfg->soft ? cfg->tau : R(1.0);
	st->p = jb->p;
	st->seed = jb->seed;
	st->base = ((uint64_t)bh * jb->T + i) * jb->T;
	st->digest = digest;
}

#define KVP_DIGEST_INIT	0xcbf29ce484222325ULL

static inline void kvp_fwd_head(const struct kvp_job *jb, int bh, struct kvp_scratch *w)
{
	int b = bh / jb->NH, h = bh % jb->NH, T = jb->T;
	int *ev = jb->evict + (size_t)bh * T;
	uint64_t dig = KVP_DIGEST_INIT;

	kvp_head_reset(&w->hd);
	for (int j = 0; j < T; j++)
		ev[j] = T;
	for (int i = 0; i < T; i++) {
		struct kvp_step st;
		real *o = jb->out + ((size_t)b * T + i) * jb->C + (size_t)h * jb->hs;
		int e;

		kvp_step_init(&st, jb, bh, i, &dig);
		e = kvp_step(&w->hd, &st, o, jb->lse + (size_t)bh * T + i);
		if (e >= 0)
			ev[e] = i;
	}
	if (jb->cfg->soft && jb->cfg->rank_digest)
		jb->cfg->rank_digest[bh] = dig;
}
/* The job of B x NH walks of T steps with cfg (checked by the caller:
 * kvprune_check()). Returns 0 or -EINVAL (sizes). */
static inline int kvp_job_init(struct kvp_job *jb, int B, int T, int C, int NH, float p,
			       uint64_t seed, const struct kvprune_cfg *cfg)
{
	int lim;

	if (B < 1 || T < 1 || NH < 1 || C < NH || C % NH)
		return -EINVAL;
	memset(jb, 0, sizeof(*jb));
	jb->cfg = cfg;
	jb->B = B;
	jb->T = T;
	jb->C = C;
	jb->NH = NH;
	jb->hs = C / NH;
	lim = cfg->soft ? cfg->k_max : cfg->k;
	jb->cap = lim < T ? lim : T;
	jb->scale = R(1.0) / rsqrt_((real)jb->hs);
	jb->p = p;
	jb->seed = seed;
	return 0;
}

/* Run fn on every (b, h), parallel over the pairs, scratch per thread. */
static inline int kvp_run(const struct kvp_job *jb,
		   void (*fn)(const struct kvp_job *, int, struct kvp_scratch *))
{
	int nt = omp_get_max_threads(), err = 0, nbh = jb->B * jb->NH;
	struct kvp_scratch *w;

	if (nt > nbh)
		nt = nbh;
	w = calloc((size_t)nt, sizeof(*w));
	if (!w)
		return -ENOMEM;
	for (int t = 0; t < nt && !err; t++)
		err = kvp_scratch_alloc(&w[t], jb);
	if (err)
		goto out;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
	for (int bh = 0; bh < nbh; bh++)
		fn(jb, bh, &w[omp_get_thread_num()]);
out:
	for (int t = 0; t < nt; t++)
		kvp_scratch_free(&w[t]);
	free(w);
	return err;
}

#endif /* KGPT_RA_KVPRUNE_STEP_H */
