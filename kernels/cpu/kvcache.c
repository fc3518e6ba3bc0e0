// SPDX-License-Identifier: MIT
/*
 * The CPU backend's generation step through a KV cache (kv_cache_attend(),
 * kernels/kernels.h): every head of the new token through kvp_step(), the
 * step of training's cache walk (ra/kvprune_step.h), so that generation
 * and the teacher-forced pruned forward compute the same numbers.
 */
#include <string.h>
#include "kernels/kernels.h"
#include "ra/kvprune.h"
#include "ra/kvprune_step.h"

/* The struct kvp_head of head h of the cache (the layout of training). */
static void kvc_head(const struct kv_cache *c, int h, struct kvp_head *hd)
{
	size_t hs = (size_t)c->head_size;

	memset(hd, 0, sizeof(*hd));
	hd->hs = c->head_size;
	hd->cap = c->cap;
	hd->n = c->len[h];
	hd->kld = c->kcap;
	hd->key = c->key + (size_t)h * c->kcap * hs;
	hd->val = c->val + (size_t)h * c->cap * hs;
	hd->pos = c->pos + (size_t)h * c->cap;
	hd->imp = c->imp + (size_t)h * c->cap;
	hd->cnt = c->cnt + (size_t)h * c->cap;
	hd->prob = c->scratch + (size_t)h * (c->kcap + c->cap);
	hd->w = hd->prob + c->kcap;
}

void kv_cache_attend(struct kv_cache *c, real *out, const real *q, const real *k,
		     const real *v)
{
	int hs = c->head_size;

	for (int h = 0; h < c->n_head; h++) {
		struct kvp_head hd;
		struct kvp_step st = {
			.q = q + (size_t)h * hs, .k = k + (size_t)h * hs,
			.v = v + (size_t)h * hs, .i = c->t, .recency = c->recency,
			.v_only = c->mode == KVPRUNE_V_ONLY,
			.scale = R(1.0) / rsqrt_((real)hs), .tau = R(1.0),
		};
		real lse;

		kvc_head(c, h, &hd);
		kvp_step(&hd, &st, out + (size_t)h * hs, &lse);
		c->len[h] = hd.n;
	}
}
