// SPDX-License-Identifier: MIT
/*
 * Reciprocal Attention in the model, for the configuration this binary is
 * compiled against (tests/configs/NAME.config, see tests/model/run.sh):
 *  - without CONFIG_RA: no RA tensor; the attproj input is the attention
 *    output itself;
 *  - tensor sizes, no weight decay, the geometric initialisation
 *    w_std = (D - R) / D, w_rec = R / D and alpha = 0.05;
 *  - at w_std = w_rec = 1 and alpha = 0, every layer's q, k and attproj
 *    input equal GPT-2's bit for bit: qkv is the c_attn matmul unchanged,
 *    the attproj input is the attention output unchanged, and (without KV
 *    pruning) that output is the attention kernel's on the same qkv;
 *  - at random w_std, w_rec, alpha, every layer computes
 *    (1 - alpha) softmax((w_std q_std.k_std + w_rec q_low.k_low) / sqrt(D)) V
 *    + alpha V against a float64 reference written here (full attention:
 *    m->kv_full with KV pruning);
 *  - the clamps: w below 1e-4 and alpha outside [0, 0.5] are put back;
 *  - the repack of a baseline: the R part of the scores becomes
 *    <k_low(i), q_low(j)> of the baseline, and repacking twice restores it.
 * The gradients of w_std, w_rec and alpha are checked against finite
 * differences by tests/model/test_gpt2_f64.c (every tensor).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2/gpt2.h"
#include "kernels/kernels.h"
#include "kgpt/rng.h"
#include "tests/tap.h"
#include <stdio.h>

#ifdef KGPT_ACT_BF16
/* This test reads and writes activations on the host as reals, so it is
 * for builds where act_t is real; tests/gpu/parity checks the bf16 CUDA
 * build against the CPU instead. */
int main(void)
{
	printf("1..0 # SKIP bf16 activations: this test reads activations as reals\n");
	return 0;
}
#else

#define C	GPT2_C
#define NH	GPT2_NH
#define D	GPT2_HS
#define R	GPT2_RA_R
#define B	GPT2_B
#define T	GPT2_T
#define N	(B * T)

static int in[N];

static void set_all(struct gpt2 *m, enum gpt2_tensor t, real v)
{
	for (size_t i = 0; i < m->tensors[t].size; i++)
		gpt2_param(m, t)[i] = v;
}

static void set_random(struct gpt2 *m, enum gpt2_tensor t, double lo, double hi,
		       struct kgpt_rng *rng)
{
	for (size_t i = 0; i < m->tensors[t].size; i++)
		gpt2_param(m, t)[i] = (real)(lo + (hi - lo) * kgpt_rng_uniform(rng));
}

/* Sharper attention than at init, so that the scale matters. */
static void perturb(struct gpt2 *m, struct kgpt_rng *rng)
{
	for (size_t i = 0; i < m->tensors[P_QKVW].size; i++)
		gpt2_param(m, P_QKVW)[i] += (real)(0.3 * kgpt_rng_normal(rng));
}

/* c_attn of layer l recomputed from the model's own ln1: (N, 3C). */
static void plain_qkv(struct gpt2 *m, int l, real *qkv)
{
	const real *b = GPT2_HAS_BIAS ? gpt2_param(m, P_QKVB) + (size_t)l * 3 * C : NULL;

	matmul_forward(qkv, m->layer[l].ln1, gpt2_param(m, P_QKVW) + (size_t)l * 3 * C * C, b,
		       N, C, 3 * C);
}

static void test_layout(struct gpt2 *m)
{
	const size_t gates = IS_ENABLED(CONFIG_RA_PER_HEAD_GATES) ? NH : 1;
	const size_t want_w = IS_ENABLED(CONFIG_RA) ? GPT2_L * gates : 0;
	const size_t want_a = IS_ENABLED(CONFIG_RA_SELF_RESTART) ? GPT2_L * NH : 0;
	int init_ok = 1;

	ok(m->tensors[P_RA_W_STD].size == want_w && m->tensors[P_RA_W_REC].size == want_w &&
	   m->tensors[P_RA_ALPHA].size == want_a && !m->tensors[P_RA_W_STD].decay &&
	   !m->tensors[P_RA_W_REC].decay && !m->tensors[P_RA_ALPHA].decay,
	   "RA tensors: w_std, w_rec %zu each, alpha %zu, none weight-decayed", want_w, want_a);
	for (size_t i = 0; i < want_w; i++)
		init_ok &= gpt2_param(m, P_RA_W_STD)[i] == (real)(D - R) / D &&
			   gpt2_param(m, P_RA_W_REC)[i] == (real)R / D;
	for (size_t i = 0; i < want_a; i++)
		init_ok &= gpt2_param(m, P_RA_ALPHA)[i] == (real)0.05f;
	ok(init_ok, "geometric init: w_std = (D - R) / D = %.4f, w_rec = R / D = %.4f, "
	   "alpha = 0.05", IS_ENABLED(CONFIG_RA) ? (double)(D - R) / D : 0.0,
	   IS_ENABLED(CONFIG_RA) ? (double)R / D : 0.0);
	if (!IS_ENABLED(CONFIG_RA_SELF_RESTART)) {
		int same = 1;

		for (int l = 0; l < GPT2_L; l++)
			same &= m->layer[l].atto == m->layer[l].atty;
		ok(same, "without self-restart the attproj input is the attention output");
	}
}

static void test_neutral(struct gpt2 *m)
{
	real *qkv = malloc((size_t)N * 3 * C * sizeof(real));
	real *y = malloc((size_t)N * C * sizeof(real));
	real *lse = malloc((size_t)B * NH * T * sizeof(real));
	int qkv_same = 1, out_same = 1, att_same = 1;

	set_all(m, P_RA_W_STD, 1);
	set_all(m, P_RA_W_REC, 1);
	set_all(m, P_RA_ALPHA, 0);
	gpt2_forward(m, in, NULL, B, T);
	for (int l = 0; l < GPT2_L; l++) {
		struct gpt2_layer_acts *a = &m->layer[l];

		plain_qkv(m, l, qkv);
		qkv_same &= !memcmp(qkv, a->qkv, (size_t)N * 3 * C * sizeof(real));
		out_same &= !memcmp(a->atto, a->atty, (size_t)N * C * sizeof(real));
		if (!IS_ENABLED(CONFIG_KV_CACHE_PRUNE)) {
			attention_forward(y, lse, qkv, B, T, C, NH, 0.0f, 0);
			att_same &= !memcmp(y, a->atty, (size_t)N * C * sizeof(real));
		}
	}
	ok(qkv_same, "w_std = w_rec = 1: every layer's q, k, v equal the c_attn matmul bit for bit");
	ok(out_same, "alpha = 0: every layer's attproj input equals the attention output bit for bit");
	if (!IS_ENABLED(CONFIG_KV_CACHE_PRUNE))
		ok(att_same, "w = 1, alpha = 0: every layer's attention output equals GPT-2's "
		   "attention kernel on the same inputs bit for bit");
	free(qkv);
	free(y);
	free(lse);
}

/* Layer l's attproj input by the formula, in float64, from the plain qkv. */
static double ref_layer(struct gpt2 *m, int l, const real *qkv)
{
	const size_t g = IS_ENABLED(CONFIG_RA_PER_HEAD_GATES) ? 1 : 0;
	const real *ws = gpt2_param(m, P_RA_W_STD) + (size_t)l * GPT2_RA_GATES;
	const real *wr = gpt2_param(m, P_RA_W_REC) + (size_t)l * GPT2_RA_GATES;
	const real *al = IS_ENABLED(CONFIG_RA_SELF_RESTART) ?
			 gpt2_param(m, P_RA_ALPHA) + (size_t)l * NH : NULL;
	double worst = 0, p[T];

	for (int b = 0; b < B; b++)
		for (int h = 0; h < NH; h++)
			for (int t = 0; t < T; t++) {
				const real *q = qkv + ((size_t)b * T + t) * 3 * C + h * D;
				double mx = -INFINITY, sum = 0;

				for (int u = 0; u <= t; u++) {
					const real *k = qkv + ((size_t)b * T + u) * 3 * C + C + h * D;
					double s_std = 0, s_low = 0;

					for (int d = 0; d < D - R; d++)
						s_std += (double)q[d] * k[d];
					for (int d = D - R; d < D; d++)
						s_low += (double)q[d] * k[d];
					p[u] = (ws[h * g] * s_std + wr[h * g] * s_low) / sqrt(D);
					mx = fmax(mx, p[u]);
				}
				for (int u = 0; u <= t; u++)
					sum += p[u] = exp(p[u] - mx);
				for (int d = 0; d < D; d++) {
					const size_t row = (size_t)b * T + t;
					double y = 0, v = qkv[row * 3 * C + 2 * C + h * D + d];
					double a = al ? al[h] : 0, got;

					for (int u = 0; u <= t; u++)
						y += p[u] / sum * qkv[((size_t)b * T + u) * 3 * C + 2 * C +
								     h * D + d];
					got = m->layer[l].atto[row * C + h * D + d];
					worst = fmax(worst, fabs(got - ((1 - a) * y + a * v)));
				}
			}
	return worst;
}

static void test_formula(struct gpt2 *m, struct kgpt_rng *rng)
{
	real *qkv = malloc((size_t)N * 3 * C * sizeof(real));
	double worst = 0;

	set_random(m, P_RA_W_STD, 0.2, 2.0, rng);
	set_random(m, P_RA_W_REC, 0.2, 3.0, rng);
	set_random(m, P_RA_ALPHA, 0.0, 0.5, rng);
	m->kv_full = 1;
	gpt2_forward(m, in, NULL, B, T);
	m->kv_full = 0;
	for (int l = 0; l < GPT2_L; l++) {
		plain_qkv(m, l, qkv);
		worst = fmax(worst, ref_layer(m, l, qkv));
	}
	ok(worst < 2e-5, "random w_std, w_rec, alpha: every layer's attproj input equals "
	   "(1 - alpha) softmax((w_std q_std.k_std + w_rec q_low.k_low) / sqrt(D)) V + alpha V "
	   "(max abs diff %.2e)", worst);
	free(qkv);
}

static void test_clamp(struct gpt2 *m)
{
	real *ws = gpt2_param(m, P_RA_W_STD), *wr = gpt2_param(m, P_RA_W_REC);
	real *al = gpt2_param(m, P_RA_ALPHA);
	const int na = m->tensors[P_RA_ALPHA].size > 0;

	ws[0] = -3;
	wr[0] = 0;
	ws[1 % m->tensors[P_RA_W_STD].size] = 0.7f;
	if (na) {
		al[0] = -0.1f;
		al[1] = 0.9f;
		al[2 % m->tensors[P_RA_ALPHA].size] = 0.25f;
	}
	gpt2_clamp_params(m);
	ok(ws[0] == RATTN_W_MIN && wr[0] == RATTN_W_MIN &&
	   (m->tensors[P_RA_W_STD].size < 2 || ws[1] == 0.7f) &&
	   (!na || (al[0] == 0 && al[1] == RATTN_ALPHA_MAX &&
		    (m->tensors[P_RA_ALPHA].size < 3 || al[2] == 0.25f))),
	   "gpt2_clamp_params: w_std, w_rec >= 1e-4, alpha in [0, 0.5], values inside kept");
}

/* R part of the score of query row i and key row j, head h, from (N, 3C). */
static double low_score(const real *qkv, int i, int j, int h, int swap)
{
	const real *qi = qkv + (size_t)i * 3 * C + (swap ? C : 0) + h * D;
	const real *kj = qkv + (size_t)j * 3 * C + (swap ? 0 : C) + h * D;
	double s = 0;

	for (int d = D - R; d < D; d++)
		s += (double)qi[d] * kj[d];
	return s;
}

static void test_repack(struct gpt2 *m)
{
	const size_t nw = m->tensors[P_QKVW].size;
	real *keep = malloc(nw * sizeof(real));
	real *before = malloc((size_t)N * 3 * C * sizeof(real));
	real *after = malloc((size_t)N * 3 * C * sizeof(real));
	double worst = 0, std_diff = 0;

	memcpy(keep, gpt2_param(m, P_QKVW), nw * sizeof(real));
	gpt2_forward(m, in, NULL, B, T);
	plain_qkv(m, 0, before);
	gpt2_ra_from_baseline(m);
	plain_qkv(m, 0, after);		/* same ln1: the layer's input is unchanged */
	for (int h = 0; h < NH; h++)
		for (int i = 0; i < 3; i++)
			for (int j = 0; j < 3; j++)
				worst = fmax(worst, fabs(low_score(after, i, j, h, 0) -
							 low_score(before, i, j, h, 1)));
	/* the standard part and the values are untouched */
	for (int i = 0; i < N; i++)
		for (int h = 0; h < NH; h++)
			for (int d = 0; d < D; d++) {
				size_t o = (size_t)i * 3 * C + h * D + d;

				if (d < D - R)
					std_diff = fmax(std_diff, fabs(after[o] - before[o]) +
							fabs(after[o + C] - before[o + C]));
				std_diff = fmax(std_diff, fabs(after[o + 2 * C] - before[o + 2 * C]));
			}
	ok(worst < 1e-5 && std_diff == 0, "repack of a baseline: the R part scores "
	   "<k_low(i), q_low(j)> of the baseline (max diff %.2e); q_std, k_std and v unchanged",
	   worst);
	gpt2_ra_from_baseline(m);
	ok(!memcmp(keep, gpt2_param(m, P_QKVW), nw * sizeof(real)),
	   "repacking twice restores the baseline's c_attn weights");
	free(keep);
	free(before);
	free(after);
}

int main(void)
{
	static struct gpt2 m;
	struct kgpt_rng rng;

	kgpt_rng_seed(&rng, 11);
	for (int i = 0; i < N; i++)
		in[i] = (int)kgpt_rng_below(&rng, GPT2_V);
	if (!ok(gpt2_init(&m, 3) == 0, "gpt2_init"))
		return tap_done();
	diag("RA %s: head size %d = D_std %d + R %d, gates per %s, self-restart %s",
	     IS_ENABLED(CONFIG_RA) ? "on" : "off", D, D - R, R,
	     IS_ENABLED(CONFIG_RA_PER_HEAD_GATES) ? "head" : "layer",
	     IS_ENABLED(CONFIG_RA_SELF_RESTART) ? "on" : "off");
	test_layout(&m);
	if (IS_ENABLED(CONFIG_RA)) {
		perturb(&m, &rng);
		test_neutral(&m);
		test_formula(&m, &rng);
		test_clamp(&m);
		test_repack(&m);
	}
	gpt2_free(&m);
	return tap_done();
}
#endif /* KGPT_ACT_BF16 */
