// SPDX-License-Identifier: MIT
/*
 * KV-cache pruning in float32 (the trainer's build): step-by-step
 * generation equals the teacher-forced pruned forward over 256 tokens;
 * k >= T is bit-identical to plain attention; the hard backward (blocked,
 * gathered keys, several threads) matches a float64 reference built from
 * the kept sets {j <= i : evict_step[j] > i}.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kernels/kernels.h"
#include "kgpt/rng.h"
#include "ra/kvprune.h"
#include "tests/tap.h"
#include "tests/util.h"

/* (b) teacher forcing vs generation, at the attention level */
static void check_generation(enum kvprune_mode mode, int T, int C, int NH, int k, int rec)
{
	size_t nq = (size_t)T * 3 * C;
	float *qkv = malloc(4 * nq), *ref = malloc(4 * (size_t)T * C), *out = malloc(4 * C);
	float *lse = malloc(4 * (size_t)NH * T);
	int *ev = malloc(sizeof(int) * NH * T), rc, same = 1;
	struct kvprune_cfg cfg = { .mode = mode, .k = k, .recency = rec };
	struct kv_cache c;
	struct kgpt_rng rng;
	double diff = 0;

	kgpt_rng_seed(&rng, 1234 + k);
	fill_normal(qkv, nq, &rng, 1.0f);
	rc = kvprune_attention_forward(ref, lse, ev, qkv, 1, T, C, NH, 0, 0, &cfg);
	rc |= kv_cache_init(&c, NH, C, T, &cfg);
	for (int i = 0; !rc && i < T; i++) {
		const float *row = qkv + (size_t)i * 3 * C;

		rc |= kv_cache_step(&c, out, row, row + C, row + 2 * C);
		for (int t = 0; t < C; t++)
			diff = fmax(diff, fabs(out[t] - ref[(size_t)i * C + t]));
		same &= !memcmp(out, ref + (size_t)i * C, 4 * (size_t)C);
	}
	/* k < T: the same operations (kvprune.h), so the same bits */
	ok(!rc && (k < T ? same : diff <= 1e-5),
	   "%s T %d C %d NH %d k %d rec %d: kv_cache_step = teacher-forced forward (max diff %.1e%s)",
	   mode ? "V_ONLY" : "KV", T, C, NH, k, rec, diff, same ? ", bit-identical" : "");
	diag("%s k %d: %zu bytes of K and V per layer for this sequence (%zu allocated in all)",
	     mode ? "V_ONLY" : "KV", k, c.kv_bytes, kv_cache_alloc_bytes(&c));
	kv_cache_free(&c);
	free(qkv); free(ref); free(out); free(lse); free(ev);
}

/* (c) in float32 */
static void check_identity(enum kvprune_mode mode, int B, int T, int C, int NH, float p)
{
	size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, nl = (size_t)B * NH * T;
	float *qkv = malloc(4 * nq), *dout = malloc(4 * no), *o1 = malloc(4 * no);
	float *o2 = malloc(4 * no), *l1 = malloc(4 * nl), *l2 = malloc(4 * nl);
	float *g1 = calloc(nq, 4), *g2 = calloc(nq, 4);
	int *ev = malloc(sizeof(int) * nl);
	struct kvprune_cfg cfg = { .mode = mode, .k = T, .recency = 16 };
	struct kgpt_rng rng;

	kgpt_rng_seed(&rng, 8);
	fill_normal(qkv, nq, &rng, 1.0f);
	fill_normal(dout, no, &rng, 1.0f);
	attention_forward(o1, l1, qkv, B, T, C, NH, p, 9);
	attention_backward(g1, dout, qkv, o1, l1, B, T, C, NH, p, 9);
	kvprune_attention_forward(o2, l2, ev, qkv, B, T, C, NH, p, 9, &cfg);
	kvprune_attention_backward(g2, NULL, dout, qkv, o2, l2, ev, B, T, C, NH, p, 9, &cfg);
	ok(!memcmp(o1, o2, 4 * no) && !memcmp(l1, l2, 4 * nl) && !memcmp(g1, g2, 4 * nq),
	   "float32 %s k = T = %d: forward and backward bit-identical to attention_*",
	   mode ? "V_ONLY" : "KV", T);
	free(qkv); free(dout); free(o1); free(o2); free(l1); free(l2); free(g1); free(g2);
	free(ev);
}

/* float64 gradient of sum(dout * out) of the hard-pruned attention */
static void ref_backward(double *dq, const float *qkv, const float *dout, const int *ev,
			 int v_only, int B, int T, int C, int NH)
{
	int hs = C / NH;
	double sc = 1 / sqrt((double)hs), *p = malloc(8 * T), *dp = malloc(8 * T);

	for (int bh = 0; bh < B * NH; bh++) {
		int b = bh / NH, h = bh % NH;
		const int *e = ev + (size_t)bh * T;
#define X(i, part, t) ((double)qkv[((size_t)b * T + (i)) * 3 * C + (part) * C + h * hs + (t)])
#define DX(i, part, t) dq[((size_t)b * T + (i)) * 3 * C + (part) * C + h * hs + (t)]
		for (int i = 0; i < T; i++) {
			const float *go = dout + ((size_t)b * T + i) * C + h * hs;
			double mx = -INFINITY, sum = 0, D = 0;

			for (int j = 0; j <= i; j++) {
				double d = 0;

				for (int t = 0; t < hs; t++)
					d += X(i, 0, t) * X(j, 1, t);
				p[j] = (v_only || e[j] > i) ? d * sc : -INFINITY;
				mx = fmax(mx, p[j]);
			}
			for (int j = 0; j <= i; j++)
				sum += exp(p[j] - mx);
			for (int j = 0; j <= i; j++) {
				double d = 0;

				p[j] = exp(p[j] - mx) / sum;
				if (e[j] > i)
					for (int t = 0; t < hs; t++) {
						d += go[t] * X(j, 2, t);
						DX(j, 2, t) += p[j] * go[t];
					}
				dp[j] = d;
				D += p[j] * d;
			}
			for (int j = 0; j <= i; j++) {
				double ds = p[j] * (dp[j] - D) * sc;

				for (int t = 0; t < hs; t++) {
					DX(i, 0, t) += ds * X(j, 1, t);
					DX(j, 1, t) += ds * X(i, 0, t);
				}
			}
		}
#undef X
#undef DX
	}
	free(p);
	free(dp);
}

static void check_backward(enum kvprune_mode mode, int B, int T, int C, int NH, int k, int rec)
{
	size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, nl = (size_t)B * NH * T;
	float *qkv = malloc(4 * nq), *dout = malloc(4 * no), *out = malloc(4 * no);
	float *lse = malloc(4 * nl), *g = calloc(nq, 4);
	double *rg = calloc(nq, 8), e = 0, m = 0;
	int *ev = malloc(sizeof(int) * nl), nev = 0;
	struct kvprune_cfg cfg = { .mode = mode, .k = k, .recency = rec };
	struct kgpt_rng rng;

	kgpt_rng_seed(&rng, 77);
	fill_normal(qkv, nq, &rng, 1.0f);
	fill_normal(dout, no, &rng, 1.0f);
	kvprune_attention_forward(out, lse, ev, qkv, B, T, C, NH, 0, 0, &cfg);
	kvprune_attention_backward(g, NULL, dout, qkv, out, lse, ev, B, T, C, NH, 0, 0, &cfg);
	ref_backward(rg, qkv, dout, ev, mode == KVPRUNE_V_ONLY, B, T, C, NH);
	for (size_t i = 0; i < nq; i++) {
		e = fmax(e, fabs(g[i] - rg[i]));
		m = fmax(m, fabs(rg[i]));
	}
	for (size_t i = 0; i < nl; i++)
		nev += ev[i] < T;
	ok(e / m < 2e-5,
	   "float32 %s B%d T%d C%d NH%d k %d: hard backward = float64 on kept sets (%.1e, %d evicted)",
	   mode ? "V_ONLY" : "KV", B, T, C, NH, k, e / m, nev);
	free(qkv); free(dout); free(out); free(lse); free(g); free(rg); free(ev);
}

int main(void)
{
	check_generation(KVPRUNE_KV, 256, 128, 4, 40, 8);
	check_generation(KVPRUNE_V_ONLY, 256, 128, 4, 40, 8);
	check_generation(KVPRUNE_KV, 256, 64, 1, 97, 1);
	check_identity(KVPRUNE_KV, 2, 150, 128, 2, 0);
	check_identity(KVPRUNE_V_ONLY, 2, 150, 128, 2, 0.1f);
	check_backward(KVPRUNE_KV, 2, 200, 128, 2, 40, 8);
	check_backward(KVPRUNE_V_ONLY, 2, 200, 128, 2, 40, 8);
	check_backward(KVPRUNE_KV, 1, 100, 96, 3, 70, 5);
	return tap_done();
}
