// SPDX-License-Identifier: MIT
/*
 * KV-cache pruning (ra/kvprune.h) in float64: the policy against a
 * reference written straight from its definition (positions, not slots),
 * causality, k >= T equals plain attention bit for bit, the cache size
 * and recency invariants, finite-difference gradients through the pruned
 * attention and through the learned keep ratio rho, the memory formula,
 * and the argument checks.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kernels/kernels.h"
#include "kgpt/rng.h"
#include "ra/kvprune.h"
#include "tests/tap.h"
#include "tests/util.h"

struct shape {
	int B, T, C, NH;
	float p;
	uint64_t seed;
};

static size_t n_qkv(const struct shape *s)
{
	return (size_t)s->B * s->T * 3 * s->C;
}

static size_t n_out(const struct shape *s)
{
	return (size_t)s->B * s->T * s->C;
}

static size_t n_bht(const struct shape *s)
{
	return (size_t)s->B * s->NH * s->T;
}

static struct kvprune_cfg hard(enum kvprune_mode mode, int k, int rec)
{
	struct kvprune_cfg c = { .mode = mode, .k = k, .recency = rec };

	return c;
}

static struct kvprune_cfg soft(enum kvprune_mode mode, int rec, real rho, int bs, int kmax,
			       real tau)
{
	struct kvprune_cfg c = { .mode = mode, .recency = rec, .soft = 1, .rho = rho,
				 .block_size = bs, .k_max = kmax, .tau = tau };

	return c;
}

/* ---------------------------------------------------------------------- */
/* Reference: the policy of ra/kvprune.h, by position, with full sorting. */

static const real *ref_key;

static int ref_cmp(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	/* most important first; equal importance: newer first */
	if (ref_key[x] != ref_key[y])
		return ref_key[x] > ref_key[y] ? -1 : 1;
	return y - x;
}

static void ref_forward(real *out, real *lse, int *ev, const real *qkv,
			const struct shape *s, const struct kvprune_cfg *cfg)
{
	int T = s->T, C = s->C, hs = C / s->NH, v_only = cfg->mode == KVPRUNE_V_ONLY;
	int cap = cfg->soft ? cfg->k_max : cfg->k;
	real scale = 1 / sqrt((real)hs);
	real *imp = malloc(sizeof(real) * T), *key = malloc(sizeof(real) * T);
	real *sc = malloc(sizeof(real) * T), *m = malloc(sizeof(real) * T);
	int *alive = malloc(sizeof(int) * T), *cnt = malloc(sizeof(int) * T);
	int *ord = malloc(sizeof(int) * T);

	for (int bh = 0; bh < s->B * s->NH; bh++) {
		int b = bh / s->NH, h = bh % s->NH, nalive = 0;
		const real *base = qkv + (size_t)b * T * 3 * C + h * hs;

		for (int i = 0; i < T; i++) {
			const real *q = base + (size_t)i * 3 * C;
			real mx = -INFINITY, sum = 0;
			int n_ev = 0;

			ev[bh * T + i] = T;
			alive[i] = 1, imp[i] = 0, cnt[i] = 0, nalive++;
			if (nalive > cap) {
				int vic = -1;

				for (int j = 0; j <= i - cfg->recency; j++) {
					if (!alive[j])
						continue;
					if (vic < 0 || imp[j] / cnt[j] < imp[vic] / cnt[vic])
						vic = j;	/* strict: the older wins ties */
				}
				alive[vic] = 0, nalive--;
				ev[bh * T + vic] = i;
			}
			for (int j = 0; j <= i; j++)
				m[j] = 1;
			if (cfg->soft) {
				for (int j = 0; j <= i - cfg->recency; j++)
					if (alive[j]) {
						key[j] = imp[j] / cnt[j];
						ord[n_ev++] = j;
					}
				ref_key = key;
				qsort(ord, n_ev, sizeof(int), ref_cmp);
				for (int r = 0; r < n_ev; r++) {
					real x = (cfg->rho * cfg->block_size - (nalive - n_ev) - r - 0.5) /
						 cfg->tau;

					m[ord[r]] = 1 / (1 + exp(-x));
				}
			}
			for (int j = 0; j <= i; j++) {
				const real *k = base + (size_t)j * 3 * C + C;
				real d = 0;

				for (int t = 0; t < hs; t++)
					d += q[t] * k[t];
				sc[j] = d * scale;
				if (!v_only)
					sc[j] = alive[j] ? sc[j] + log(m[j]) : -INFINITY;
				mx = sc[j] > mx ? sc[j] : mx;
			}
			for (int j = 0; j <= i; j++)
				sum += exp(sc[j] - mx);
			lse[bh * T + i] = mx + log(sum);
			for (int t = 0; t < hs; t++)
				out[((size_t)b * T + i) * C + h * hs + t] = 0;
			for (int j = 0; j <= i; j++) {
				real p = exp(sc[j] - mx) / sum, w, z = 1;
				uint64_t idx = ((uint64_t)bh * T + i) * T + j;

				if (!alive[j])
					continue;
				w = v_only ? p * m[j] : p;
				imp[j] += w;
				cnt[j]++;
				if (s->p > 0)
					z = kgpt_dropout_keep(s->seed, idx, s->p) ? 1 / (1 - (real)s->p) : 0;
				for (int t = 0; t < hs; t++)
					out[((size_t)b * T + i) * C + h * hs + t] +=
						w * z * base[(size_t)j * 3 * C + 2 * C + t];
			}
		}
	}
	free(imp); free(key); free(sc); free(m); free(alive); free(cnt); free(ord);
}

static const char *cfg_name(const struct kvprune_cfg *c, char *buf, size_t n)
{
	if (c->soft)
		snprintf(buf, n, "%s soft rho %.3f bs %d k_max %d rec %d tau %.2f",
			 c->mode ? "V_ONLY" : "KV", (double)c->rho, c->block_size, c->k_max,
			 c->recency, (double)c->tau);
	else
		snprintf(buf, n, "%s k %d rec %d", c->mode ? "V_ONLY" : "KV", c->k, c->recency);
	return buf;
}

static void check_reference(const struct shape *s, struct kvprune_cfg cfg)
{
	size_t nq = n_qkv(s), no = n_out(s), nl = n_bht(s);
	real *qkv = malloc(sizeof(real) * nq), *out = malloc(sizeof(real) * no);
	real *rout = malloc(sizeof(real) * no), *lse = malloc(sizeof(real) * nl);
	real *rlse = malloc(sizeof(real) * nl);
	int *ev = malloc(sizeof(int) * nl), *rev = malloc(sizeof(int) * nl), nev = 0, rc;
	struct kgpt_rng rng;
	char name[128];

	kgpt_rng_seed(&rng, 11 + s->T + cfg.k);
	fill_normal(qkv, nq, &rng, 1.0);
	rc = kvprune_attention_forward(out, lse, ev, qkv, s->B, s->T, s->C, s->NH, s->p,
				       s->seed, &cfg);
	ref_forward(rout, rlse, rev, qkv, s, &cfg);
	for (size_t i = 0; i < nl; i++)
		nev += ev[i] < s->T;
	cfg_name(&cfg, name, sizeof(name));
	ok(rc == 0 && !memcmp(ev, rev, sizeof(int) * nl),
	   "%s, T %d p %.2f: eviction steps equal the reference policy (%d evictions)",
	   name, s->T, s->p, nev);
	ok(max_abs_diff(out, rout, no) < 1e-12 && max_abs_diff(lse, rlse, nl) < 1e-12,
	   "%s: outputs and lse equal the reference (%.2e, %.2e)", name,
	   max_abs_diff(out, rout, no), max_abs_diff(lse, rlse, nl));
	free(qkv); free(out); free(rout); free(lse); free(rlse); free(ev); free(rev);
}

/* ---------------------------------------------------------------------- */
/* (a) causality */

static void check_causal(const struct shape *s, struct kvprune_cfg cfg, int t)
{
	size_t nq = n_qkv(s), no = n_out(s), nl = n_bht(s);
	real *qkv = malloc(sizeof(real) * nq), *o1 = malloc(sizeof(real) * no);
	real *o2 = malloc(sizeof(real) * no), *l1 = malloc(sizeof(real) * nl);
	real *l2 = malloc(sizeof(real) * nl);
	int *e1 = malloc(sizeof(int) * nl), *e2 = malloc(sizeof(int) * nl), bad = 0;
	struct kgpt_rng rng;
	char name[128];

	kgpt_rng_seed(&rng, 5 + t);
	fill_normal(qkv, nq, &rng, 1.0);
	kvprune_attention_forward(o1, l1, e1, qkv, s->B, s->T, s->C, s->NH, s->p, s->seed, &cfg);
	for (int b = 0; b < s->B; b++)	/* new tokens after t */
		fill_normal(qkv + ((size_t)b * s->T + t + 1) * 3 * s->C,
		     (size_t)(s->T - t - 1) * 3 * s->C, &rng, 2.0);
	kvprune_attention_forward(o2, l2, e2, qkv, s->B, s->T, s->C, s->NH, s->p, s->seed, &cfg);
	for (int b = 0; b < s->B; b++)
		bad += memcmp(o1 + (size_t)b * s->T * s->C, o2 + (size_t)b * s->T * s->C,
			      sizeof(real) * (t + 1) * s->C) != 0;
	for (int bh = 0; bh < s->B * s->NH; bh++)
		for (int j = 0; j < s->T; j++) {
			int a = e1[bh * s->T + j], c = e2[bh * s->T + j];

			bad += l1[bh * s->T + j] != l2[bh * s->T + j] && j <= t;
			bad += (a <= t || c <= t) && a != c;	/* evictions up to t */
		}
	ok(!bad, "%s: changing tokens after %d leaves outputs, lse, evictions <= %d unchanged",
	   cfg_name(&cfg, name, sizeof(name)), t, t);
	free(qkv); free(o1); free(o2); free(l1); free(l2); free(e1); free(e2);
}

/* ---------------------------------------------------------------------- */
/* (c) k >= T: exactly attention_forward / attention_backward */

static void check_identity(const struct shape *s, enum kvprune_mode mode, int k)
{
	size_t nq = n_qkv(s), no = n_out(s), nl = n_bht(s);
	real *qkv = malloc(sizeof(real) * nq), *o1 = malloc(sizeof(real) * no);
	real *o2 = malloc(sizeof(real) * no), *l1 = malloc(sizeof(real) * nl);
	real *l2 = malloc(sizeof(real) * nl), *dout = malloc(sizeof(real) * no);
	real *g1 = calloc(nq, sizeof(real)), *g2 = calloc(nq, sizeof(real));
	int *ev = malloc(sizeof(int) * nl), never = 1;
	struct kvprune_cfg cfg = hard(mode, k, 3);
	struct kgpt_rng rng;

	kgpt_rng_seed(&rng, 3);
	fill_normal(qkv, nq, &rng, 1.0);
	fill_normal(dout, no, &rng, 1.0);
	attention_forward(o1, l1, qkv, s->B, s->T, s->C, s->NH, s->p, s->seed);
	kvprune_attention_forward(o2, l2, ev, qkv, s->B, s->T, s->C, s->NH, s->p, s->seed, &cfg);
	attention_backward(g1, dout, qkv, o1, l1, s->B, s->T, s->C, s->NH, s->p, s->seed);
	kvprune_attention_backward(g2, NULL, dout, qkv, o2, l2, ev, s->B, s->T, s->C, s->NH,
				   s->p, s->seed, &cfg);
	for (size_t i = 0; i < nl; i++)
		never &= ev[i] == s->T;
	ok(!memcmp(o1, o2, sizeof(real) * no) && !memcmp(l1, l2, sizeof(real) * nl) && never,
	   "%s k %d >= T %d: forward bit-identical to attention_forward, nothing evicted",
	   mode ? "V_ONLY" : "KV", k, s->T);
	ok(!memcmp(g1, g2, sizeof(real) * nq),
	   "%s k %d >= T %d: backward bit-identical to attention_backward",
	   mode ? "V_ONLY" : "KV", k, s->T);
	free(qkv); free(o1); free(o2); free(l1); free(l2); free(dout); free(g1); free(g2);
	free(ev);
}

/* ---------------------------------------------------------------------- */
/* (d), (e): the generation cache's invariants */

static void check_cache_invariants(enum kvprune_mode mode, int T, int k, int rec)
{
	int NH = 2, C = 8, bad_len = 0, bad_rec = 0, bad_set = 0, nev = 0;
	size_t nq = (size_t)T * 3 * C;
	real *qkv = malloc(sizeof(real) * nq), *out = malloc(sizeof(real) * C);
	real *ref = malloc(sizeof(real) * T * C), *lse = malloc(sizeof(real) * NH * T);
	int *ev = malloc(sizeof(int) * NH * T);
	struct kvprune_cfg cfg = hard(mode, k, rec);
	struct kv_cache c;
	struct kgpt_rng rng;
	double diff = 0;

	kgpt_rng_seed(&rng, 17 + T + k);
	fill_normal(qkv, nq, &rng, 1.5);
	kvprune_attention_forward(ref, lse, ev, qkv, 1, T, C, NH, 0, 0, &cfg);
	if (kv_cache_init(&c, NH, C, T, &cfg)) {
		ok(0, "kv_cache_init");
		return;
	}
	for (int i = 0; i < T; i++) {
		const real *row = qkv + (size_t)i * 3 * C;

		kv_cache_step(&c, out, row, row + C, row + 2 * C);
		diff = fmax(diff, max_abs_diff(out, ref + (size_t)i * C, C));
		for (int h = 0; h < NH; h++) {
			int *pos = c.pos + (size_t)h * c.cap, n = c.len[h], kept = 0;

			bad_len += n != (i + 1 < k ? i + 1 : k);
			for (int j = i - rec + 1 > 0 ? i - rec + 1 : 0; j <= i; j++) {
				int found = 0;

				for (int sl = 0; sl < n; sl++)
					found |= pos[sl] == j;
				bad_rec += !found;
			}
			/* the slots hold exactly {j <= i : evict_step[j] > i} */
			for (int j = 0; j <= i; j++)
				kept += ev[h * T + j] > i;
			for (int sl = 0; sl < n; sl++)
				bad_set += ev[h * T + pos[sl]] <= i;
			bad_set += kept != n;
		}
	}
	for (int j = 0; j < NH * T; j++)
		nev += ev[j] < T;
	ok(!bad_len, "%s T %d k %d: the cache holds min(i+1, k) entries at every step",
	   mode ? "V_ONLY" : "KV", T, k);
	ok(!bad_rec, "%s T %d k %d rec %d: the newest %d tokens are always cached",
	   mode ? "V_ONLY" : "KV", T, k, rec, rec);
	ok(!bad_set, "%s T %d k %d: cache contents = {j <= i : evict_step[j] > i} (%d evictions)",
	   mode ? "V_ONLY" : "KV", T, k, nev);
	/* k >= T: the forward is attention_forward's blocked arithmetic */
	ok(k < T ? diff == 0 : diff < 1e-13,
	   "%s T %d k %d: kv_cache_step outputs equal the pruned forward (%s, %.2e)",
	   mode ? "V_ONLY" : "KV", T, k, k < T ? "identical" : "k >= T, to rounding", diff);
	if (T <= k)
		ok(nev == 0, "%s: a sequence of %d <= k = %d tokens evicts nothing",
		   mode ? "V_ONLY" : "KV", T, k);
	kv_cache_free(&c);
	free(qkv); free(out); free(ref); free(lse); free(ev);
}

/* (e) with the training path: T <= k (k > T delegates, k == T walks) */
static void check_no_eviction(void)
{
	struct shape s = { 2, 12, 8, 2, 0, 0 };
	size_t nq = n_qkv(&s), no = n_out(&s), nl = n_bht(&s);
	real *qkv = malloc(sizeof(real) * nq), *o1 = malloc(sizeof(real) * no);
	real *o2 = malloc(sizeof(real) * no), *l1 = malloc(sizeof(real) * nl);
	real *l2 = malloc(sizeof(real) * nl);
	int *ev = malloc(sizeof(int) * nl), nev = 0;
	struct kvprune_cfg cfg = hard(KVPRUNE_KV, 12, 4);
	struct kgpt_rng rng;

	kgpt_rng_seed(&rng, 23);
	fill_normal(qkv, nq, &rng, 1.0);
	attention_forward(o1, l1, qkv, s.B, s.T, s.C, s.NH, 0, 0);
	cfg.k = 13;	/* > T: delegates */
	kvprune_attention_forward(o2, l2, ev, qkv, s.B, s.T, s.C, s.NH, 0, 0, &cfg);
	for (size_t i = 0; i < nl; i++)
		nev += ev[i] != s.T;
	ok(nev == 0 && max_abs_diff(o1, o2, no) < 1e-13,
	   "T = 12 <= k = 13: no eviction, plain attention (%.2e)", max_abs_diff(o1, o2, no));
	free(qkv); free(o1); free(o2); free(l1); free(l2); free(ev);
}

/* ---------------------------------------------------------------------- */
/* (f) finite differences through qkv and rho */

struct fd_ctx {
	const struct shape *s;
	struct kvprune_cfg cfg;
	const real *w;		/* loss = sum w * out */
	real *out, *lse;
	int *ev, *ev0;
	uint64_t *dig, *dig0;
};

/* loss; *same = the discrete decisions equal those of the base point */
static real fd_loss(struct fd_ctx *f, const real *qkv, int *same)
{
	const struct shape *s = f->s;
	size_t nl = n_bht(s), no = n_out(s);
	real L = 0;

	f->cfg.rank_digest = f->dig;
	kvprune_attention_forward(f->out, f->lse, f->ev, qkv, s->B, s->T, s->C, s->NH, s->p,
				  s->seed, &f->cfg);
	*same = !memcmp(f->ev, f->ev0, sizeof(int) * nl);
	if (f->cfg.soft)
		*same &= !memcmp(f->dig, f->dig0, sizeof(uint64_t) * s->B * s->NH);
	for (size_t i = 0; i < no; i++)
		L += f->w[i] * f->out[i];
	return L;
}

static void check_fd(const struct shape *s, struct kvprune_cfg cfg)
{
	size_t nq = n_qkv(s), no = n_out(s), nl = n_bht(s), nbh = (size_t)s->B * s->NH;
	real *qkv = malloc(sizeof(real) * nq), *w = malloc(sizeof(real) * no);
	real *out = malloc(sizeof(real) * no), *lse = malloc(sizeof(real) * nl);
	real *dq = calloc(nq, sizeof(real)), drho = 0;
	int *ev0 = malloc(sizeof(int) * nl), skipped = 0, evs = 0;
	uint64_t *dig0 = calloc(nbh, sizeof(uint64_t));
	struct fd_ctx f = { s, cfg, w, malloc(sizeof(real) * no), malloc(sizeof(real) * nl),
			    malloc(sizeof(int) * nl), ev0, calloc(nbh, sizeof(uint64_t)), dig0 };
	double err = 0, gmax = 0;
	struct kgpt_rng rng;
	char name[128];

	kgpt_rng_seed(&rng, 31 + s->T);
	fill_normal(qkv, nq, &rng, 1.0);
	fill_normal(w, no, &rng, 1.0);
	cfg.rank_digest = dig0;
	kvprune_attention_forward(out, lse, ev0, qkv, s->B, s->T, s->C, s->NH, s->p, s->seed,
				  &cfg);
	for (size_t i = 0; i < nl; i++)
		evs += ev0[i] < s->T;
	kvprune_attention_backward(dq, cfg.soft ? &drho : NULL, w, qkv, out, lse, ev0, s->B,
				   s->T, s->C, s->NH, s->p, s->seed, &cfg);
	for (size_t i = 0; i < nq; i++) {
		real x = qkv[i], h = 1e-5, lp, lm, fd;
		int s1, s2;

		qkv[i] = x + h;
		lp = fd_loss(&f, qkv, &s1);
		qkv[i] = x - h;
		lm = fd_loss(&f, qkv, &s2);
		qkv[i] = x;
		if (!s1 || !s2) {	/* a decision flipped: not differentiable here */
			skipped++;
			continue;
		}
		fd = (lp - lm) / (2 * h);
		err = fmax(err, fabs(fd - dq[i]));
		gmax = fmax(gmax, fabs(fd));
	}
	cfg_name(&cfg, name, sizeof(name));
	ok(err < 1e-7 * (1 + gmax) && skipped * 50 <= (int)nq,
	   "%s p %.2f: dqkv = central differences (err %.1e, |g| %.2f, %d evicted, %d/%zu skipped)",
	   name, s->p, err, gmax, evs, skipped, nq);
	if (cfg.soft) {
		real r = cfg.rho, h = 1e-6, lp, lm, fd;
		int s1, s2;

		f.cfg.rho = r + h;
		lp = fd_loss(&f, qkv, &s1);
		f.cfg.rho = r - h;
		lm = fd_loss(&f, qkv, &s2);
		fd = (lp - lm) / (2 * h);
		ok(s1 && s2, "%s: ranks and evictions identical at rho +- %.0e (digests equal)",
		   name, h);
		ok(fabs(fd - drho) < 1e-6 * (1 + fabs(fd)) && fabs(drho) > 1e-6,
		   "%s: d loss / d rho = %.9f matches central difference %.9f", name, drho, fd);
	}
	free(qkv); free(w); free(out); free(lse); free(dq); free(ev0); free(dig0);
	free(f.out); free(f.lse); free(f.ev); free(f.dig);
}

/* ---------------------------------------------------------------------- */
/* (h) bytes */

static void check_bytes(void)
{
	const double MiB = 1024.0 * 1024.0;
	size_t per_tok = kv_cache_bytes(12, 768, 1, 2, 1), sum = 0, sumv = 0;
	struct kvprune_cfg kv = hard(KVPRUNE_KV, 391, 64), vo = hard(KVPRUNE_V_ONLY, 391, 64);
	int ok_all = 1;

	ok(per_tok == 36864, "124M bf16: %zu bytes of K and V per token (2*12*768*2)", per_tok);
	for (int batch = 8; batch <= 32; batch *= 2) {
		double full = kv_cache_bytes(12, 768, 1024, 2, batch) / MiB;
		double pr = kv_cache_bytes_mode(KVPRUNE_KV, 12, 768, 1024, 391, 2, batch) / MiB;

		diag("batch %2d x 1024 tokens: full %.2f MiB, k = 391: %.2f MiB, V_ONLY %.2f MiB",
		     batch, full, pr,
		     kv_cache_bytes_mode(KVPRUNE_V_ONLY, 12, 768, 1024, 391, 2, batch) / MiB);
		ok_all &= full == 36.0 * batch && fabs(pr - 13.75 * batch) < 0.01 * batch;
	}
	ok(ok_all, "full 288/576/1152 MiB, pruned at k = 391: 110/220/440 MiB (to 0.1%%)");
	/* a 12-layer model's generation caches, as allocated */
	for (int l = 0; l < 12; l++) {
		struct kv_cache c, d;

		if (kv_cache_init(&c, 12, 768, 1024, &kv) || kv_cache_init(&d, 12, 768, 1024, &vo)) {
			ok(0, "kv_cache_init 124M");
			return;
		}
		sum += c.kv_bytes;
		sumv += d.kv_bytes;
		ok_all &= kv_cache_alloc_bytes(&c) > c.kv_bytes;
		kv_cache_free(&c);
		kv_cache_free(&d);
	}
	ok(sum == kv_cache_bytes(12, 768, 391, sizeof(real), 1) &&
	   sum == kv_cache_bytes_mode(KVPRUNE_KV, 12, 768, 1024, 391, sizeof(real), 1),
	   "KV: allocated K+V bytes of 12 layers (%zu) = kv_cache_bytes(12, 768, 391, %zu, 1)",
	   sum, sizeof(real));
	ok(sumv == kv_cache_bytes_mode(KVPRUNE_V_ONLY, 12, 768, 1024, 391, sizeof(real), 1),
	   "V_ONLY: allocated K+V bytes (%zu) = 12 * (1024 + 391) * 768 * %zu", sumv,
	   sizeof(real));
}

/* ---------------------------------------------------------------------- */

static void check_errors(void)
{
	struct kvprune_cfg c = hard(KVPRUNE_KV, 4, 2);
	struct kv_cache kc;
	real out[8] = { 0 }, lse[2], q[8] = { 0 };
	int ev[2], e = 0;

	e += kvprune_check(&c) == 0;
	c.k = 0;
	e += kvprune_check(&c) == -EINVAL;
	c.k = 2;
	e += kvprune_check(&c) == -EINVAL;	/* recency >= k */
	c.k = 4, c.recency = 0;
	e += kvprune_check(&c) == -EINVAL;
	c.recency = 2, c.mode = 7;
	e += kvprune_check(&c) == -EINVAL;
	c = soft(KVPRUNE_KV, 2, 0.5, 16, 16, 0);
	e += kvprune_check(&c) == -EINVAL;	/* tau */
	c.tau = 1, c.rho = NAN;
	e += kvprune_check(&c) == -EINVAL;
	c.rho = 0.5, c.k_max = 2;
	e += kvprune_check(&c) == -EINVAL;	/* recency >= k_max */
	c.k_max = 16;
	e += kvprune_check(&c) == 0;
	e += kv_cache_init(&kc, 2, 8, 16, &c) == -EINVAL;	/* soft */
	c = hard(KVPRUNE_KV, 0, 2);
	e += kvprune_attention_forward(out, lse, ev, q, 1, 1, 8, 2, 0, 0, &c) == -EINVAL;
	c = hard(KVPRUNE_KV, 4, 2);
	e += kvprune_attention_forward(out, lse, ev, q, 1, 1, 7, 2, 0, 0, &c) == -EINVAL;
	e += kv_cache_init(&kc, 2, 8, 1, &c) == 0;
	e += kv_cache_step(&kc, out, q, q, q) == 0;
	e += kv_cache_step(&kc, out, q, q, q) == -ENOSPC;
	kv_cache_free(&kc);
	ok(e == 15, "argument checks: -EINVAL for k < 1, recency >= k, bad mode/tau/rho/k_max, "
	   "-ENOSPC past max_tokens (%d of 15)", e);
	ok(kvprune_rho_to_k(0.382, 64, 1024) == 391 && kvprune_rho_to_k(0.01, 64, 1024) == 65 &&
	   kvprune_rho_to_k(2, 64, 1024) == 1024,
	   "rho_to_k: round(0.382 * 1024) = 391, clamped to [recency + 1, block_size]");
	ok(kvprune_clamp_rho(0.01, 64, 1024) == 0.0625 && kvprune_clamp_rho(1.5, 64, 1024) == 1 &&
	   kvprune_clamp_rho(0.5, 64, 1024) == 0.5, "clamp_rho to [recency / block_size, 1]");
}

int main(void)
{
	struct shape s1 = { 2, 40, 8, 2, 0, 0 }, s2 = { 1, 33, 12, 3, 0.2f, 77 };
	struct shape fd = { 2, 20, 8, 2, 0, 0 }, fdd = { 1, 20, 8, 2, 0.25f, 5 };

	check_reference(&s1, hard(KVPRUNE_KV, 6, 2));
	check_reference(&s1, hard(KVPRUNE_KV, 10, 1));
	check_reference(&s1, hard(KVPRUNE_V_ONLY, 7, 3));
	check_reference(&s2, hard(KVPRUNE_KV, 5, 4));
	check_reference(&s2, hard(KVPRUNE_V_ONLY, 9, 2));
	check_reference(&s1, soft(KVPRUNE_KV, 2, 0.2, 40, 40, 1.5));
	check_reference(&s1, soft(KVPRUNE_KV, 3, 0.15, 40, 12, 2));
	check_reference(&s2, soft(KVPRUNE_V_ONLY, 2, 0.3, 33, 20, 1));

	check_causal(&s1, hard(KVPRUNE_KV, 6, 2), 17);
	check_causal(&s1, hard(KVPRUNE_V_ONLY, 6, 2), 9);
	check_causal(&s2, soft(KVPRUNE_KV, 2, 0.25, 33, 16, 1.5), 20);
	check_causal(&s2, soft(KVPRUNE_V_ONLY, 2, 0.25, 33, 33, 1.5), 11);

	check_identity(&s1, KVPRUNE_KV, 40);
	check_identity(&s2, KVPRUNE_KV, 50);
	check_identity(&s1, KVPRUNE_V_ONLY, 40);

	check_cache_invariants(KVPRUNE_KV, 60, 8, 3);
	check_cache_invariants(KVPRUNE_V_ONLY, 60, 8, 3);
	check_cache_invariants(KVPRUNE_KV, 30, 5, 4);
	check_cache_invariants(KVPRUNE_KV, 16, 16, 4);
	check_no_eviction();

	check_fd(&fd, hard(KVPRUNE_KV, 5, 2));
	check_fd(&fd, hard(KVPRUNE_V_ONLY, 5, 2));
	check_fd(&fdd, hard(KVPRUNE_KV, 6, 3));
	check_fd(&fdd, hard(KVPRUNE_V_ONLY, 6, 1));
	check_fd(&fd, soft(KVPRUNE_KV, 2, 0.3, 20, 20, 1.5));
	check_fd(&fd, soft(KVPRUNE_KV, 3, 0.25, 20, 9, 2));
	check_fd(&fdd, soft(KVPRUNE_V_ONLY, 2, 0.3, 20, 20, 1.5));
	check_fd(&fd, soft(KVPRUNE_V_ONLY, 2, 0.35, 20, 12, 3));

	check_bytes();
	check_errors();
	return tap_done();
}
