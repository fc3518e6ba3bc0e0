// SPDX-License-Identifier: MIT
/*
 * Whole-model tests in float32 for the configuration this binary is
 * compiled against: evaluation between training steps changes nothing,
 * training steps are reproducible, and a few steps on a fixed batch lower
 * its loss.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2/gpt2.h"
#include "kgpt/rng.h"
#include "tests/tap.h"

#define N_ROWS (GPT2_B * GPT2_T)

static int in[N_ROWS], tg[N_ROWS], ev_in[N_ROWS], ev_tg[N_ROWS];

static float step(struct gpt2 *m, uint64_t seed)
{
	float loss;

	gpt2_zero_grad(m);
	loss = gpt2_forward_backward(m, in, tg, 1.0f, seed);
	gpt2_clip_grad(m, 1.0f);
	gpt2_update(m, 1e-3f);
	return loss;
}

int main(void)
{
	static struct gpt2 a, b;
	struct kgpt_rng rng;
	float first, last = 0;

	kgpt_rng_seed(&rng, 7);
	for (int i = 0; i < N_ROWS; i++) {
		in[i] = (int)kgpt_rng_below(&rng, 1000);
		tg[i] = (in[i] + 1) % 1000;	/* a learnable map */
		ev_in[i] = (int)kgpt_rng_below(&rng, GPT2_V);
		ev_tg[i] = (int)kgpt_rng_below(&rng, GPT2_V);
	}
	if (!ok(gpt2_init(&a, 1) == 0 && gpt2_init(&b, 1) == 0, "two models initialised"))
		return tap_done();

	step(&a, 11);
	step(&b, 11);
	gpt2_forward(&a, ev_in, ev_tg, GPT2_B, GPT2_T);	/* evaluation in between */
	step(&a, 12);
	step(&b, 12);
	gpt2_sync_for_host(&a);		/* the backend may still be updating them */
	gpt2_sync_for_host(&b);
	ok(!memcmp(a.params, b.params, a.num_params * sizeof(real)) &&
	   !memcmp(a.opt.m, b.opt.m, a.num_params * sizeof(float)),
	   "an evaluation between training steps leaves parameters and moments bit-identical");
	gpt2_sync_for_backend(&a);
	gpt2_sync_for_backend(&b);

	first = step(&a, 13);
	for (int i = 0; i < 30; i++)
		last = step(&a, 14 + i);
	ok(last < first - 0.5f, "30 steps on one batch lower its loss (%.3f -> %.3f)", first, last);
	ok(isfinite(last), "loss stays finite");
	gpt2_free(&a);
	gpt2_free(&b);
	return tap_done();
}
