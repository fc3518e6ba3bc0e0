// SPDX-License-Identifier: MIT
/*
 * Whole-model tests in float64, for the configuration this binary is
 * compiled against (tests/configs/NAME.config, see tests/model/run.sh):
 *  - loss at initialisation is close to ln(50257);
 *  - the gradient of every parameter tensor (sampled entries) matches
 *    central finite differences of the training loss (dropout masks are a
 *    function of the seed, so the loss is deterministic);
 *  - two half-scaled micro-batches accumulate to the gradient of their
 *    mean loss;
 *  - an evaluation between two training steps changes nothing;
 *  - the same seed gives the same initial parameters.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2/gpt2.h"
#include "kgpt/rng.h"
#include "tests/tap.h"

#define N_ROWS		(GPT2_B * GPT2_T)
/* entries checked per tensor (a long block, e.g. tests/configs/kv-gen,
 * makes every loss evaluation expensive: fewer there) */
#define SAMPLES		(N_ROWS <= 64 ? 6 : 2)
#define FD_EPS		1e-5
#define FD_TOL		1e-6	/* |analytic - numeric| <= FD_TOL + FD_RTOL * |numeric| */
#define FD_RTOL		1e-4

static int inputs[2][N_ROWS], targets[2][N_ROWS];
static const uint64_t SEED = 0x5eed;

static void make_batch(struct kgpt_rng *rng, int *in, int *tg)
{
	for (int i = 0; i < N_ROWS; i++) {
		in[i] = (int)kgpt_rng_below(rng, GPT2_V);
		tg[i] = (int)kgpt_rng_below(rng, GPT2_V);
	}
}

/* Training loss of batch 0 at the current parameters (grads disturbed),
 * auxiliary losses included (KV pruning's lambda * mean(rho)). */
static double loss_at(struct gpt2 *m)
{
	double ce = gpt2_forward_backward(m, inputs[0], targets[0], 1.0f, SEED);

	return ce + m->kv_aux_loss;
}

/* Perturb parameters away from their special init values (LayerNorm 1,
 * biases 0) so that every path carries gradient. */
static void perturb(struct gpt2 *m, struct kgpt_rng *rng)
{
	for (size_t i = 0; i < m->num_params; i++)
		if (m->params[i] != 0 || i < m->tensors[P_WTE].size)
			m->params[i] += 0.05 * kgpt_rng_normal(rng);
		else
			m->params[i] = 0.05 * kgpt_rng_normal(rng);
	/* padded vocabulary rows stay 0 */
	memset(gpt2_param(m, P_WTE) + (size_t)GPT2_V * GPT2_C, 0,
	       (size_t)(GPT2_VP - GPT2_V) * GPT2_C * sizeof(real));
	/* parameters with a valid range (KV pruning's rho) back into it */
	gpt2_clamp_params(m);
}

static void test_gradients(struct gpt2 *m, struct kgpt_rng *rng)
{
	real *analytic = malloc(m->num_params * sizeof(real));

	gpt2_zero_grad(m);
	loss_at(m);
	memcpy(analytic, m->grads, m->num_params * sizeof(real));
	for (int t = 0; t < GPT2_NUM_TENSORS; t++) {
		const struct gpt2_tensor_info *ti = &m->tensors[t];
		double worst = 0;
		int fails = 0;

		if (!ti->size)
			continue;
		for (int s = 0; s < SAMPLES; s++) {
			size_t i = ti->offset + kgpt_rng_below(rng, ti->size);
			real keep = m->params[i];
			double lp, lm, num, err;

			/* for wte, sample rows the batch actually uses half the time */
			if (t == P_WTE && (s & 1))
				i = ti->offset + (size_t)inputs[0][s] * GPT2_C +
				    kgpt_rng_below(rng, GPT2_C);
			keep = m->params[i];
			m->params[i] = keep + FD_EPS;
			lp = loss_at(m);
			m->params[i] = keep - FD_EPS;
			lm = loss_at(m);
			m->params[i] = keep;
			num = (lp - lm) / (2 * FD_EPS);
			err = fabs(analytic[i] - num);
			if (err > FD_TOL + FD_RTOL * fabs(num))
				fails++;
			if (err > worst)
				worst = err;
		}
		ok(!fails, "d loss / d %s matches finite differences (%d samples, worst abs err %.2e)",
		   ti->name, SAMPLES, worst);
	}
	free(analytic);
}

static void test_accumulation(struct gpt2 *m)
{
	real *g = malloc(m->num_params * sizeof(real));
	double worst = 0;
	double l0, l1;

	gpt2_zero_grad(m);
	l0 = gpt2_forward_backward(m, inputs[0], targets[0], 0.5f, SEED);
	l1 = gpt2_forward_backward(m, inputs[1], targets[1], 0.5f, SEED + 1);
	memcpy(g, m->grads, m->num_params * sizeof(real));
	/* d/dp of (L0 + L1) / 2 by finite differences on a few entries */
	for (int k = 0; k < (N_ROWS <= 64 ? 8 : 2); k++) {
		size_t i = m->tensors[P_QKVW].offset + (size_t)k * 7;
		real keep = m->params[i];
		double lp, lm;

		m->params[i] = keep + FD_EPS;
		lp = (gpt2_forward_backward(m, inputs[0], targets[0], 1, SEED) +
		      gpt2_forward_backward(m, inputs[1], targets[1], 1, SEED + 1)) / 2;
		m->params[i] = keep - FD_EPS;
		lm = (gpt2_forward_backward(m, inputs[0], targets[0], 1, SEED) +
		      gpt2_forward_backward(m, inputs[1], targets[1], 1, SEED + 1)) / 2;
		m->params[i] = keep;
		if (fabs(g[i] - (lp - lm) / (2 * FD_EPS)) > worst)
			worst = fabs(g[i] - (lp - lm) / (2 * FD_EPS));
	}
	ok(worst < 1e-7 && isfinite(l0) && isfinite(l1),
	   "two micro-batches scaled 1/2 accumulate to the gradient of their mean loss (worst %.2e)",
	   worst);
	free(g);
}

int main(void)
{
	static struct gpt2 m, m2;
	struct kgpt_rng rng;
	double l;

	kgpt_rng_seed(&rng, 42);
	make_batch(&rng, inputs[0], targets[0]);
	make_batch(&rng, inputs[1], targets[1]);
	if (!ok(gpt2_init(&m, 1337) == 0, "gpt2_init"))
		return tap_done();
	diag("config: n_layer %d n_head %d n_embd %d block_size %d B %d, bias %d, tied %d, dropout %g",
	     GPT2_L, GPT2_NH, GPT2_C, GPT2_T, GPT2_B, GPT2_HAS_BIAS,
	     IS_ENABLED(CONFIG_GPT2_WEIGHT_TYING), GPT2_DROPOUT);

	l = gpt2_forward(&m, inputs[0], targets[0], GPT2_B, GPT2_T);
	is_close(l, log(50257.0), 0.05, "loss at init is ln(50257) = 10.825");

	gpt2_init(&m2, 1337);
	ok(!memcmp(m.params, m2.params, m.num_params * sizeof(real)),
	   "the same seed gives the same initial parameters");
	gpt2_free(&m2);
	gpt2_init(&m2, 1338);
	ok(memcmp(m.params, m2.params, m.num_params * sizeof(real)) != 0,
	   "another seed gives other parameters");
	gpt2_free(&m2);

	perturb(&m, &rng);
	test_gradients(&m, &rng);
	test_accumulation(&m);

	gpt2_free(&m);
	return tap_done();
}
