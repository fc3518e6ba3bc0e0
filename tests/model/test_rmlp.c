// SPDX-License-Identifier: MIT
/*
 * The model's MLP against a reference forward written here from the
 * kernels, for the configuration this binary is compiled against:
 *  - every configuration: with the R-MLP's scalars at 1 (w_std = w_rec =
 *    gate_alpha = 1, mixers = identity, which is the plain R-MLP), or
 *    without CONFIG_RMLP as it is, the model's logits and loss equal
 *    GPT-2's forward with matmul -> GELU -> matmul MLPs on the same
 *    weights (max abs diff <= 1e-6);
 *  - CONFIG_RMLP: at other values of the scalars and mixers the model
 *    computes [w_std GELU(pre_std) | w_rec g GELU(pre_low) mixw^T] layer by
 *    layer (docs/r-mlp.md), which checks R_l, the mixer offsets and the
 *    scalar slices of every layer; tensor sizes and weight decay; the
 *    geometric initialisation; a baseline llm.c file loaded with
 *    ckpt_load_llmc() keeps the R-MLP tensors at their initial values and,
 *    with the scalars at 1, reproduces GPT-2's forward of that file;
 *  - without CONFIG_RMLP: no R-MLP tensor and no R-MLP buffer.
 * The reference takes each block's attention output from the model's own
 * forward (atto: atty, or its RA self-restart mix), so it holds for any
 * attention mechanism; everything else is recomputed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpt2/checkpoint.h"
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

#define B	GPT2_B
#define T	GPT2_T
#define N	GPT2_N
#define C	GPT2_C
#define D	GPT2_DFF
#define TOL	1e-6
#define CHUNK	8	/* LM-head rows per chunk in the reference */

static int in[N], tg[N];
static real *lnf_ref;	/* (N,C) */

static real *xalloc(size_t n)
{
	real *p = calloc(n, sizeof(real));

	if (!p) {
		fprintf(stderr, "test_rmlp: out of memory (%zu reals)\n", n);
		exit(2);
	}
	return p;
}

/* Parameters away from their special initial values, so that every path
 * carries signal: weights and biases + N(0, 0.1), LayerNorm gains
 * 1 + N(0, 0.1); embeddings and head + N(0, 0.02), which keeps the logits
 * below 1 (and float32's rounding of them below 1e-7). Padded vocabulary
 * rows stay 0. */
static void randomize(struct gpt2 *m, uint64_t seed)
{
	struct kgpt_rng rng;

	kgpt_rng_seed(&rng, seed);
	for (int t = 0; t < GPT2_LLMC_TENSORS; t++) {
		double sd = t == P_WTE || t == P_WPE ? 0.02 : 0.1;

		for (size_t i = 0; i < m->tensors[t].size; i++)
			m->params[m->tensors[t].offset + i] += (real)(sd * kgpt_rng_normal(&rng));
	}
	if (m->tensors[P_LMHEAD].size)
		for (size_t i = 0; i < (size_t)GPT2_V * C; i++)
			gpt2_param(m, P_LMHEAD)[i] += (real)(0.02 * kgpt_rng_normal(&rng));
	memset(gpt2_param(m, P_WTE) + (size_t)GPT2_V * C, 0,
	       (size_t)(GPT2_VP - GPT2_V) * C * sizeof(real));
}

/*
 * R-MLP scalars and mixers of every layer: neutral (all 1, mixers identity)
 * or, with `seed`, w_std, w_rec, gate_alpha uniform in [0.5, 1.5] and
 * mixers identity + N(0, 0.3).
 */
static void set_rmlp(struct gpt2 *m, int neutral, uint64_t seed)
{
	struct kgpt_rng rng;

	kgpt_rng_seed(&rng, seed);
	for (int l = 0; l < GPT2_L && IS_ENABLED(CONFIG_RMLP); l++) {
		struct rmlp_dims d = gpt2_rmlp_dims(l);
		struct rmlp_grads s = gpt2_rmlp_slices(m, m->params, l);
		size_t rr = (size_t)d.R;

		*s.w_std = neutral ? 1 : (real)(0.5 + kgpt_rng_uniform(&rng));
		*s.w_rec = neutral ? 1 : (real)(0.5 + kgpt_rng_uniform(&rng));
		if (s.gate_alpha)
			*s.gate_alpha = neutral ? 1 : (real)(0.5 + kgpt_rng_uniform(&rng));
		for (size_t i = 0; s.mixw && i < rr * rr; i++)
			s.mixw[i] = (i % (rr + 1) == 0 ? 1 : 0) +
				    (neutral ? 0 : (real)(0.3 * kgpt_rng_normal(&rng)));
	}
}

/*
 * The R-MLP's activation from h = GELU(pre) (N,D), in place, as the
 * formula of docs/r-mlp.md says it: standard columns times w_std,
 * reciprocal columns u -> w_rec g (u @ mixw^T).
 */
static void ref_rmlp_scale(struct gpt2 *m, int l, real *h)
{
	struct rmlp_dims d = gpt2_rmlp_dims(l);
	struct rmlp_params p = gpt2_rmlp_params(m, l);
	const int Ds = d.D_std, R = d.R;
	double g = p.gate_alpha ? *p.gate_alpha : 1.0;
	real *u = xalloc((size_t)N * R), *mx = xalloc((size_t)N * R);

	for (int n = 0; n < N; n++) {
		for (int j = 0; j < Ds; j++)
			h[(size_t)n * D + j] *= *p.w_std;
		memcpy(u + (size_t)n * R, h + (size_t)n * D + Ds, R * sizeof(real));
	}
	if (p.mixw)
		matmul_forward(mx, u, p.mixw, NULL, N, R, R);
	else
		memcpy(mx, u, (size_t)N * R * sizeof(real));
	for (int n = 0; n < N; n++)
		for (int k = 0; k < R; k++)
			h[(size_t)n * D + Ds + k] = (real)(*p.w_rec * g * mx[(size_t)n * R + k]);
	free(u);
	free(mx);
}

/*
 * GPT-2's forward on m's weights with m's attention outputs; MLP =
 * matmul -> GELU -> matmul, followed by ref_rmlp_scale() when rmlp is set.
 * Leaves the final LayerNorm output in lnf_ref; returns the mean loss.
 */
static double ref_forward(struct gpt2 *m, int rmlp)
{
	real *x = xalloc((size_t)N * C), *ln = xalloc((size_t)N * C);
	real *br = xalloc((size_t)N * C), *pre = xalloc((size_t)N * D);
	real *h = xalloc((size_t)N * D), *mean = xalloc(N), *rstd = xalloc(N);
	real *losses = xalloc(N), *scratch = xalloc((size_t)CHUNK * GPT2_VP);
	const real *head = m->tensors[P_LMHEAD].size ? gpt2_param(m, P_LMHEAD) :
			   gpt2_param(m, P_WTE);
	double loss = 0;

	encoder_forward(x, in, gpt2_param(m, P_WTE), gpt2_param(m, P_WPE), B, T, C);
	for (int l = 0; l < GPT2_L; l++) {
		size_t lc = (size_t)l * C, ld = (size_t)l * D;
		const real *apb = GPT2_HAS_BIAS ? gpt2_param(m, P_ATTPROJB) + lc : NULL;
		const real *fcb = GPT2_HAS_BIAS ? gpt2_param(m, P_FCB) + ld : NULL;
		const real *fpb = GPT2_HAS_BIAS ? gpt2_param(m, P_FCPROJB) + lc : NULL;

		matmul_forward(br, m->layer[l].atto, gpt2_param(m, P_ATTPROJW) + lc * C, apb,
			       N, C, C);
		residual_forward(x, x, br, (size_t)N * C);
		layernorm_forward(ln, mean, rstd, x, gpt2_param(m, P_LN2W) + lc,
				  gpt2_param(m, P_LN2B) + lc, N, C);
		matmul_forward(pre, ln, gpt2_param(m, P_FCW) + ld * C, fcb, N, C, D);
		gelu_forward(h, pre, (size_t)N * D);
		if (rmlp)
			ref_rmlp_scale(m, l, h);
		matmul_forward(br, h, gpt2_param(m, P_FCPROJW) + lc * D, fpb, N, D, C);
		residual_forward(x, x, br, (size_t)N * C);
	}
	layernorm_forward(lnf_ref, mean, rstd, x, gpt2_param(m, P_LNFW),
			  gpt2_param(m, P_LNFB), N, C);
	lm_head_forward(losses, lnf_ref, head, tg, N, C, GPT2_V, GPT2_VP, scratch, CHUNK);
	for (int i = 0; i < N; i++)
		loss += losses[i];
	free(x);
	free(ln);
	free(br);
	free(pre);
	free(h);
	free(mean);
	free(rstd);
	free(losses);
	free(scratch);
	return loss / N;
}

/*
 * Model forward against ref_forward(m, rmlp): max abs difference over all
 * logits (every row, the real vocabulary) into *dlogit, of the losses into
 * *dloss.
 */
static void compare(struct gpt2 *m, int rmlp, double *dlogit, double *dloss)
{
	const real *head = m->tensors[P_LMHEAD].size ? gpt2_param(m, P_LMHEAD) :
			   gpt2_param(m, P_WTE);
	float *got = malloc(GPT2_VP * sizeof(float));
	real *want = xalloc(GPT2_VP);
	double lm, lr;

	lm = gpt2_forward(m, in, tg, B, T);
	lr = ref_forward(m, rmlp);
	*dloss = fabs(lm - lr);
	*dlogit = 0;
	gpt2_forward(m, in, NULL, B, T);
	for (int row = 0; row < N; row++) {
		gpt2_logits(m, row, got);
		matmul_forward(want, lnf_ref + (size_t)row * C, head, NULL, 1, C, GPT2_VP);
		for (int j = 0; j < GPT2_V; j++)
			*dlogit = fmax(*dlogit, fabs((double)got[j] - want[j]));
	}
	free(got);
	free(want);
}

static void test_baseline_equality(struct gpt2 *m, const char *what)
{
	double dlogit, dloss;

	set_rmlp(m, 1, 0);
	compare(m, 0, &dlogit, &dloss);
	ok(dlogit <= TOL && dloss <= TOL,
	   "%s: logits and loss equal matmul -> GELU -> matmul MLPs (max diff %.2e, loss %.2e)",
	   what, dlogit, dloss);
}

static void test_rmlp_formula(struct gpt2 *m)
{
	double dlogit, dloss, base_logit, base_loss;

	set_rmlp(m, 0, 99);
	compare(m, 0, &base_logit, &base_loss);
	compare(m, 1, &dlogit, &dloss);
	ok(dlogit <= 1e-5 && dloss <= 1e-5,
	   "random w_std, w_rec, gates, mixers: every layer computes the R-MLP formula "
	   "(max logit diff %.2e, loss %.2e)", dlogit, dloss);
	ok(base_logit > 1e-3,
	   "and these values do change the model (max logit diff to GPT-2's MLP %.2e)",
	   base_logit);
}

static void test_layout(struct gpt2 *m)
{
	size_t mix = 0;
	int dec = m->tensors[P_MIXW].decay && !m->tensors[P_W_STD].decay &&
		  !m->tensors[P_W_REC].decay && !m->tensors[P_GATE_ALPHA].decay;
	int bufs = 1;

	for (int l = 0; l < GPT2_L; l++) {
		mix += (size_t)gpt2_rmlp_rff(l) * gpt2_rmlp_rff(l);
		bufs &= m->layer[l].mlp_saved && !m->layer[l].fch;
	}
	ok(m->tensors[P_MIXW].size == (IS_ENABLED(CONFIG_RMLP_USE_MIXER) ? mix : 0) &&
	   m->tensors[P_W_STD].size == GPT2_L && m->tensors[P_W_REC].size == GPT2_L &&
	   m->tensors[P_GATE_ALPHA].size ==
	   (IS_ENABLED(CONFIG_RMLP_USE_GATES) ? GPT2_L : 0),
	   "tensor sizes: mixw %zu (sum R_l^2 with the mixer), w_std %zu, w_rec %zu, "
	   "gate_alpha %zu", m->tensors[P_MIXW].size, m->tensors[P_W_STD].size,
	   m->tensors[P_W_REC].size, m->tensors[P_GATE_ALPHA].size);
	ok(dec, "mixw is weight-decayed, w_std, w_rec and gate_alpha are not");
	ok(bufs && !m->dfch && m->dh,
	   "each layer keeps mlp_saved (not fch); one R-MLP scratch (dh), no dfch");
}

/* The R-MLP tensors of m are at their initial values. */
static int at_init(struct gpt2 *m, const char **why)
{
	for (int l = 0; l < GPT2_L; l++) {
		struct rmlp_dims d = gpt2_rmlp_dims(l);
		struct rmlp_params p = gpt2_rmlp_params(m, l);
		size_t rr = (size_t)d.R;

		if (*p.w_std != (real)((double)(D - d.R) / D) ||
		    *p.w_rec != (real)((double)d.R / D)) {
			*why = "w_std, w_rec";
			return 0;
		}
		if (p.gate_alpha && *p.gate_alpha != (real)0.1) {
			*why = "gate_alpha";
			return 0;
		}
		for (size_t i = 0; p.mixw && i < rr * rr; i++)
			if (p.mixw[i] != (i % (rr + 1) == 0 ? 1 : 0)) {
				*why = "mixw";
				return 0;
			}
	}
	return 1;
}

static void test_init(void)
{
	static struct gpt2 m;
	const char *why = "";
	char line[512] = "";

	gpt2_init(&m, 5);
	for (int l = 0; l < GPT2_L; l++) {
		struct rmlp_params p = gpt2_rmlp_params(&m, l);
		size_t used = strlen(line);

		snprintf(line + used, sizeof(line) - used, " [R %d: %.4f %.4f]",
			 gpt2_rmlp_rff(l), (double)*p.w_std, (double)*p.w_rec);
	}
	diag("layers [R_l: w_std w_rec]:%s", line);
	ok(at_init(&m, &why),
	   "init: w_std = D_std / D_ff, w_rec = R_l / D_ff, gate_alpha = 0.1, mixers identity%s%s",
	   *why ? "; wrong: " : "", why);
	gpt2_free(&m);
}

/* A baseline llm.c file (written from a model with random weights)
 * loaded into a fresh R-MLP model. */
static void test_from_baseline(struct gpt2 *a)
{
	static struct gpt2 b;
	char dir[] = "/tmp/kgpt-rmlp-XXXXXX", path[64];
	const char *why = "";
	int same = 1;

	if (!ok(mkdtemp(dir) != NULL, "temporary directory"))
		return;
	snprintf(path, sizeof(path), "%s/model.bin", dir);
	gpt2_init(&b, 77);
	ok(ckpt_write_llmc(path, a) == 0 && ckpt_load_llmc(path, &b) == 0,
	   "a baseline llm.c file loads into the R-MLP model (ckpt_load_llmc)");
	for (int t = 0; t < GPT2_LLMC_TENSORS; t++)
		same &= !memcmp(gpt2_param(a, t), gpt2_param(&b, t),
				a->tensors[t].size * sizeof(real));
	ok(same, "fcw, fcb, fcprojw, fcprojb (and the rest) are the file's: the first "
	   "D_std hidden units standard, the last R_l reciprocal");
	ok(at_init(&b, &why), "the R-MLP tensors keep their initial values%s%s",
	   *why ? "; wrong: " : "", why);
	test_baseline_equality(&b, "from the baseline file with the scalars at 1");
	unlink(path);
	rmdir(dir);
	gpt2_free(&b);
}

int main(void)
{
	static struct gpt2 m;
	struct kgpt_rng rng;

	kgpt_rng_seed(&rng, 3);
	for (int i = 0; i < N; i++) {
		in[i] = (int)kgpt_rng_below(&rng, GPT2_V);
		tg[i] = (int)kgpt_rng_below(&rng, GPT2_V);
	}
	lnf_ref = xalloc((size_t)N * C);
	if (!ok(gpt2_init(&m, 1) == 0, "gpt2_init"))
		return tap_done();
	randomize(&m, 11);
	diag("config: n_layer %d n_embd %d D_ff %d, R-MLP %s, mixer %d, gates %d",
	     GPT2_L, C, D, IS_ENABLED(CONFIG_RMLP) ? "on" : "off",
	     IS_ENABLED(CONFIG_RMLP_USE_MIXER), IS_ENABLED(CONFIG_RMLP_USE_GATES));

	if (IS_ENABLED(CONFIG_RMLP)) {
		test_baseline_equality(&m, "w_std = w_rec = 1, no mixing, no gate");
		test_rmlp_formula(&m);
		test_layout(&m);
		test_init();
		test_from_baseline(&m);
	} else {
		int none = !m.tensors[P_MIXW].size && !m.tensors[P_W_STD].size &&
			   !m.tensors[P_W_REC].size && !m.tensors[P_GATE_ALPHA].size;

		for (int l = 0; l < GPT2_L; l++)
			none &= !m.layer[l].mlp_saved && m.layer[l].fch != NULL;
		test_baseline_equality(&m, "GPT-2's MLP");
		ok(none, "without CONFIG_RMLP: no R-MLP tensor (mixw, w_std, w_rec, "
		   "gate_alpha empty) and no mlp_saved buffer");
	}
	gpt2_free(&m);
	free(lnf_ref);
	return tap_done();
}
#endif /* KGPT_ACT_BF16 */
