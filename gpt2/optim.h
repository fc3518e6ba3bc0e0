/* SPDX-License-Identifier: MIT */
/*
 * The optimizer (gpt2/optim.c) and its state: AdamW (Loshchilov & Hutter
 * 2019), or with CONFIG_OPTIMIZER_SELECT_ADAMWSPAM AdamW-SPAM (Huang et
 * al. 2025), chosen in Kconfig. The state lives in struct gpt2 (m->opt)
 * and is allocated with the model; gpt2/checkpoint.c saves it in the kgpt
 * state file: m and v where they always were, SPAM's own state in the
 * optional optimizer section after them (optim_extra_bytes()).
 */
#ifndef KGPT_OPTIM_H
#define KGPT_OPTIM_H

#include <stddef.h>
#include <stdint.h>
#include "gpt2/config.h"
#include "gpt2/spam.h"

struct gpt2_optim {
	float *m, *v;		/* AdamW moments, num_params each (shared memory) */
	float *vmax;		/* SPAM: AMSGrad max of v (num_params); else NULL */
	struct spam_state spam;	/* SPAM only; zero otherwise */
};

struct gpt2;

/* Allocate o's moments for num_params parameters, zeroed, in the
 * backend's shared memory (kernels/kernels.h). Returns 0 or -ENOMEM
 * (after a message, nothing left allocated). */
int optim_alloc(struct gpt2_optim *o, size_t num_params);
/* Free them (num_params as allocated). */
void optim_free(struct gpt2_optim *o, size_t num_params);
/* Bytes of optimizer state per parameter (for gpt2_bytes()). */
size_t optim_bytes_per_param(void);
/* Bytes of the state file's optimizer section after m and v: SPAM's vmax
 * (num_params floats) and struct spam_state; 0 for AdamW. */
size_t optim_extra_bytes(size_t num_params);

/* One piece of the optimizer state, as saved and broadcast. */
struct optim_buf {
	void *p;
	size_t bytes;
};
#define OPTIM_MAX_BUFS	4

/*
 * The whole optimizer state of o as buffers b[], in the state file's
 * order: m, v (num_params floats each), then with AdamW-SPAM vmax and
 * struct spam_state (optim_extra_bytes() together). Returns their count,
 * at most OPTIM_MAX_BUFS.
 */
int optim_state_bufs(struct gpt2_optim *o, size_t num_params, struct optim_buf *b);

void gpt2_zero_grad(struct gpt2 *m);
/* Global L2 norm of the gradients; if clip > 0 and it is larger, scale the
 * gradients down to norm clip. Frozen tensors' gradients are zeroed first.
 * Returns the norm before clipping. */
float gpt2_clip_grad(struct gpt2 *m, float clip);
/* One optimizer step with learning rate lr (weight decay on 2-D weights):
 * m->step++, the update of every trainable tensor, gpt2_clamp_params().
 * AdamW-SPAM: also its periodic reset, LR ramp, spike-aware clipping and
 * AMSGrad (see gpt2/Kconfig.optimizer). */
void gpt2_update(struct gpt2 *m, float lr);

/*
 * The optimizer's part of a training step, after the gradients are
 * summed: gpt2_clip_grad() at CONFIG_GRAD_CLIP (AdamW-SPAM: at 1.0, then
 * its spike detection on the norm) and gpt2_update(). Returns the global
 * gradient norm before clipping.
 */
float gpt2_optim_step(struct gpt2 *m, float lr);

/* The factor AdamW-SPAM's ramp put on the learning rate of the last step
 * (spam_ramp()); 1 for AdamW and outside a ramp. */
float optim_lr_factor(const struct gpt2 *m);

#endif /* KGPT_OPTIM_H */
