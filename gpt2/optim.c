// SPDX-License-Identifier: MIT
/*
 * The optimizer: zeroing and clipping the gradients, and the AdamW update
 * (kernels/cpu/adamw.c) of every trainable tensor, with its state (the
 * moments m and v) in m->opt. Frozen tensors (the LayerNorm biases of a
 * model without biases) get no gradient and no update.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2/gpt2.h"
#include "gpt2/optim.h"
#include "kernels/cpu/kernels.h"
#include "gpt2/phase.h"		/* last: times every kernel call below */

int optim_alloc(struct gpt2_optim *o, size_t num_params)
{
	memset(o, 0, sizeof(*o));
	o->m = calloc(num_params, sizeof(float));
	o->v = calloc(num_params, sizeof(float));
	if (!o->m || !o->v) {
		fprintf(stderr, "kgpt: out of memory allocating the AdamW moments (%.1f MiB); "
			"choose a smaller model (n_layer, n_embd) in make menuconfig\n",
			(double)num_params * optim_bytes_per_param() / (1 << 20));
		optim_free(o);
		return -ENOMEM;
	}
	return 0;
}

void optim_free(struct gpt2_optim *o)
{
	free(o->m);
	free(o->v);
	free(o->vmax);
	memset(o, 0, sizeof(*o));
}

size_t optim_bytes_per_param(void)
{
	return 2 * sizeof(float);
}

size_t optim_extra_bytes(size_t num_params)
{
	(void)num_params;
	return 0;
}

int optim_state_bufs(struct gpt2_optim *o, size_t num_params, struct optim_buf *b)
{
	b[0] = (struct optim_buf){ o->m, num_params * sizeof(float) };
	b[1] = (struct optim_buf){ o->v, num_params * sizeof(float) };
	return 2;
}

void gpt2_zero_grad(struct gpt2 *m)
{
	memset(m->grads, 0, m->num_params * sizeof(real));
}

float gpt2_clip_grad(struct gpt2 *m, float clip)
{
	float norm;

	/* frozen tensors get no update: their gradients stay out of the norm */
	for (int t = 0; t < GPT2_NUM_TENSORS; t++)
		if (m->tensors[t].size && gpt2_tensor_frozen(t))
			memset(m->grads + m->tensors[t].offset, 0,
			       m->tensors[t].size * sizeof(real));
	norm = (float)sqrt(sumsq(m->grads, m->num_params));

	if (clip > 0.0f && norm > clip)
		scale_inplace(m->grads, m->num_params, (real)(clip / (norm + 1e-6f)));
	return norm;
}

void gpt2_update(struct gpt2 *m, float lr)
{
	struct gpt2_optim *o = &m->opt;

	m->step++;
	for (int t = 0; t < GPT2_NUM_TENSORS; t++) {
		const struct gpt2_tensor_info *ti = &m->tensors[t];
		size_t i = ti->offset;

		if (!ti->size || gpt2_tensor_frozen(t))
			continue;
#ifdef KGPT_F64
		(void)i;	/* the float64 build is for gradient tests only */
		(void)o;
#else
		adamw_update(m->params + i, m->grads + i, o->m + i, o->v + i, ti->size, lr,
			     GPT2_BETA1, GPT2_BETA2, GPT2_EPS, ti->decay ? GPT2_WD : 0.0f,
			     m->step);
#endif
	}
	gpt2_clamp_params(m);
}

float gpt2_optim_step(struct gpt2 *m, float lr)
{
	float norm = gpt2_clip_grad(m, GPT2_CLIP);

	gpt2_update(m, lr);
	return norm;
}
