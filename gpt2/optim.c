// SPDX-License-Identifier: MIT
/*
 * The optimizer: zeroing and clipping the gradients, and the AdamW update
 * (adamw_update(), kernels/kernels.h) of every trainable tensor, with its
 * state (the moments m and v, shared memory of the backend) in m->opt. Frozen tensors (the LayerNorm biases of a
 * model without biases) get no gradient and no update.
 *
 * With CONFIG_OPTIMIZER_SELECT_ADAMWSPAM, AdamW-SPAM (Huang et al. 2025;
 * what kgpt does and where it follows the PyTorch original is in the
 * help of gpt2/Kconfig.optimizer): per step, the global norm clipped at
 * 1.0, the spike test on that norm (a spike halves m and scales v and
 * vmax by 0.9), the periodic reset (m, v, vmax zeroed at every multiple
 * of CONFIG_SPAM_INTERVAL) and the LR ramp after it, then
 * adamw_spam_update(): spike-aware clipping and AMSGrad.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2/gpt2.h"
#include "gpt2/optim.h"
#include "kernels/kernels.h"
#include "gpt2/phase.h"		/* last: times every kernel call below */

#define SPAM	IS_ENABLED(CONFIG_OPTIMIZER_SELECT_ADAMWSPAM)

#if SPAM
#define SPAM_CLIP	1.0f			/* global-norm clip */
#define SPAM_THRESHOLD	CONFIG_SPAM_SPIKE_THRESHOLD_F
#if IS_ENABLED(CONFIG_SPAM_ENABLE_CLIP)
#define SPAM_THETA	((float)CONFIG_SPAM_THETA)
#else
#define SPAM_THETA	0.0f			/* no spike-aware clipping */
#endif
#if IS_ENABLED(CONFIG_SPAM_PERIODIC_RESET)
#define SPAM_INTERVAL	CONFIG_SPAM_INTERVAL
#else
#define SPAM_INTERVAL	0
#endif
#if IS_ENABLED(CONFIG_SPAM_WARMUP)
#define SPAM_RAMP	CONFIG_SPAM_WARMUP_STEPS
#else
#define SPAM_RAMP	0
#endif
#endif

int optim_alloc(struct gpt2_optim *o, size_t num_params)
{
	size_t bytes = num_params * sizeof(float);

	memset(o, 0, sizeof(*o));
	o->m = kgpt_alloc_shared(bytes);
	o->v = kgpt_alloc_shared(bytes);
	if (SPAM)
		o->vmax = kgpt_alloc_shared(bytes);
	if (!o->m || !o->v || (SPAM && !o->vmax)) {
		fprintf(stderr, "kgpt: out of %s memory allocating the AdamW moments (%.1f MiB); "
			"choose a smaller model (n_layer, n_embd) in make menuconfig\n",
			kgpt_backend_name(), (double)num_params * optim_bytes_per_param() / (1 << 20));
		optim_free(o, num_params);
		return -ENOMEM;
	}
	return 0;
}

void optim_free(struct gpt2_optim *o, size_t num_params)
{
	kgpt_free(o->m, num_params * sizeof(float));
	kgpt_free(o->v, num_params * sizeof(float));
	kgpt_free(o->vmax, num_params * sizeof(float));
	memset(o, 0, sizeof(*o));
}

size_t optim_bytes_per_param(void)
{
	return (SPAM ? 3 : 2) * sizeof(float);
}

size_t optim_extra_bytes(size_t num_params)
{
	return SPAM ? num_params * sizeof(float) + sizeof(struct spam_state) : 0;
}

int optim_state_bufs(struct gpt2_optim *o, size_t num_params, struct optim_buf *b)
{
	b[0] = (struct optim_buf){ o->m, num_params * sizeof(float) };
	b[1] = (struct optim_buf){ o->v, num_params * sizeof(float) };
	if (!SPAM)
		return 2;
	b[2] = (struct optim_buf){ o->vmax, num_params * sizeof(float) };
	b[3] = (struct optim_buf){ &o->spam, sizeof(o->spam) };
	return 4;
}

void gpt2_zero_grad(struct gpt2 *m)
{
	kgpt_zero(m->grads, m->num_params * sizeof(real));
}

float gpt2_clip_grad(struct gpt2 *m, float clip)
{
	float norm;

	/* frozen tensors get no update: their gradients stay out of the norm */
	for (int t = 0; t < GPT2_NUM_TENSORS; t++)
		if (m->tensors[t].size && gpt2_tensor_frozen(t))
			kgpt_zero(m->grads + m->tensors[t].offset,
				  m->tensors[t].size * sizeof(real));
	norm = (float)sqrt(sumsq(m->grads, m->num_params));

	if (clip > 0.0f && norm > clip)
		scale_inplace(m->grads, m->num_params, (real)(clip / (norm + 1e-6f)));
	return norm;
}

/* One tensor's update: AdamW, or AdamW-SPAM's kernel. */
static void update_tensor(struct gpt2 *m, int t, float lr)
{
	const struct gpt2_tensor_info *ti = &m->tensors[t];
	struct gpt2_optim *o = &m->opt;
	const float wd = ti->decay ? GPT2_WD : 0.0f;
	size_t i = ti->offset;

#ifdef KGPT_F64
	(void)o, (void)wd, (void)i;	/* the float64 build is for gradient tests only */
#elif SPAM
	o->spam.clipped += (int64_t)adamw_spam_update(m->params + i, m->grads + i, o->m + i,
						      o->v + i, o->vmax + i, ti->size, lr,
						      GPT2_BETA1, GPT2_BETA2, GPT2_EPS, wd,
						      m->step, SPAM_THETA);
#else
	adamw_update(m->params + i, m->grads + i, o->m + i, o->v + i, ti->size, lr,
		     GPT2_BETA1, GPT2_BETA2, GPT2_EPS, wd, m->step);
#endif
}

/* AdamW-SPAM's periodic reset at step m->step: both moments (and vmax)
 * zeroed at each multiple of the interval. Returns the LR factor of the
 * ramp after the last reset (1 without). */
static float spam_periodic(struct gpt2 *m)
{
#if SPAM
	struct gpt2_optim *o = &m->opt;
	int k = spam_since_reset(m->step, SPAM_INTERVAL);

	if (k == 0) {
		kgpt_zero(o->m, m->num_params * sizeof(float));
		kgpt_zero(o->v, m->num_params * sizeof(float));
		kgpt_zero(o->vmax, m->num_params * sizeof(float));
		o->spam.resets++;
	}
	return spam_ramp(k, SPAM_RAMP);
#else
	return 1.0f;
#endif
}

void gpt2_update(struct gpt2 *m, float lr)
{
	m->step++;
	lr *= spam_periodic(m);
	for (int t = 0; t < GPT2_NUM_TENSORS; t++)
		if (m->tensors[t].size && !gpt2_tensor_frozen(t))
			update_tensor(m, t, lr);
	gpt2_clamp_params(m);
}

float optim_lr_factor(const struct gpt2 *m)
{
#if SPAM
	return spam_ramp(spam_since_reset(m->step, SPAM_INTERVAL), SPAM_RAMP);
#else
	(void)m;
	return 1.0f;
#endif
}

float gpt2_optim_step(struct gpt2 *m, float lr)
{
#if SPAM
	struct gpt2_optim *o = &m->opt;
	float norm = gpt2_clip_grad(m, SPAM_CLIP);

	if (spam_spike(&o->spam, norm, SPAM_THRESHOLD, m->step + 1))
		spam_soft_reset(o->m, o->v, o->vmax, m->num_params);
#else
	float norm = gpt2_clip_grad(m, GPT2_CLIP);
#endif
	gpt2_update(m, lr);
	return norm;
}
