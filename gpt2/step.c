// SPDX-License-Identifier: MIT
/*
 * The training step of gpt2/step.h.
 */
#include <math.h>

#include "gpt2/step.h"
#include "gpt2/dist.h"
#include "kgpt/proc.h"
#include "kgpt/rng.h"

/* Micro-batches and their backward; acc gets the loss sum and 1 if next()
 * failed (then the rest are not read). */
static void micro_batches(struct gpt2 *m, const struct gpt2_batches *src, double acc[2])
{
	const int n = GPT2_ACCUM * dist_size();

	for (int j = 0; j < n; j++) {
		uint64_t seed = (src->seed << 32) ^ ((uint64_t)m->step * n + j);
		int mine = j % dist_size() == dist_rank();

		if (src->next(src->arg, mine ? src->inputs : NULL, mine ? src->targets : NULL)) {
			acc[1] = 1;
			return;
		}
		if (mine)
			acc[0] += gpt2_forward_backward(m, src->inputs, src->targets, 1.0f / n,
							kgpt_splitmix64(&seed));
	}
}

void gpt2_train_step(struct gpt2 *m, const struct gpt2_batches *src, float lr,
		     struct gpt2_step_result *r)
{
	double acc[2] = { 0.0, 0.0 };	/* loss sum, ranks whose data failed */
	double t0 = kgpt_now_s();

	r->loss = NAN;
	r->norm = NAN;
	r->allreduce_s = 0;
	r->data_failed = 0;
	gpt2_zero_grad(m);
	gpt2_phase_s[GPT2_PH_OPTIMIZER] += kgpt_now_s() - t0;
	micro_batches(m, src, acc);
	if (dist_size() > 1) {
		t0 = kgpt_now_s();
		gpt2_sync_for_host(m);
		dist_sum_reals(m->grads, m->num_params);
		gpt2_sync_for_backend(m);
		dist_sum_doubles(acc, 2);
		r->allreduce_s = kgpt_now_s() - t0;
	}
	if (acc[1] > 0) {
		r->data_failed = 1;
		return;
	}
	r->norm = gpt2_optim_step(m, lr);
	r->loss = (float)(acc[0] / (GPT2_ACCUM * dist_size()));
}
