/* SPDX-License-Identifier: MIT */
/*
 * One training step, shared by the trainer (gpt2/train_gpt2.c) and the
 * benchmark (gpt2/bench.c): zero the gradients, the micro-batches of
 * forward and backward, the gradients summed over the data-parallel ranks
 * (gpt2/dist.h), then the optimizer (gpt2_optim_step()).
 */
#ifndef KGPT_STEP_H
#define KGPT_STEP_H

#include <stdint.h>
#include "gpt2/gpt2.h"

/*
 * Where the micro-batches come from. next() fills inputs and targets
 * (GPT2_B, GPT2_T token ids) with the next micro-batch, or, with both
 * NULL, skips it unread (another rank's). Returns 0 or a negative errno
 * (after a message). inputs, targets: the buffers the step passes it.
 */
struct gpt2_batches {
	int (*next)(void *arg, int *inputs, int *targets);
	void *arg;
	int *inputs, *targets;	/* (GPT2_B, GPT2_T) each */
	uint64_t seed;		/* dropout masks: seed of the run */
};

struct gpt2_step_result {
	float loss;		/* mean loss over all micro-batches (all ranks) */
	float norm;		/* global gradient norm before clipping */
	double allreduce_s;	/* seconds summing over the ranks (0 with one) */
	int data_failed;	/* a rank could not read its data: no update */
};

/*
 * Optimizer step number m->step + 1 at learning rate lr over
 * n = GPT2_ACCUM * dist_size() micro-batches: micro-batch j (its batch,
 * and its dropout seed splitmix64((seed << 32) ^ (m->step * n + j))) is
 * rank j mod dist_size()'s, the others are skipped unread; each
 * contributes its loss / n to the gradients. The gradients and the
 * losses are summed over the ranks, then gpt2_optim_step() updates, so N
 * ranks at accumulation A take the same step as one process at A * N.
 * When any rank's next() failed, every rank returns with data_failed
 * set, loss and norm NAN, and the parameters not updated. Zeroing the
 * gradients is timed into GPT2_PH_OPTIMIZER.
 */
void gpt2_train_step(struct gpt2 *m, const struct gpt2_batches *src, float lr,
		     struct gpt2_step_result *r);

#endif /* KGPT_STEP_H */
