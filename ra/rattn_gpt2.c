// SPDX-License-Identifier: MIT
/*
 * Reciprocal Attention in the GPT-2 model (ra/rattn_gpt2.h): each
 * layer's slices of w_std, w_rec and alpha applied with ra/rattn.h's
 * operations. Compiled only with CONFIG_RA. The forward and backward
 * hooks queue backend kernels; init, clamp and the repack are host code
 * on the parameters (shared memory), init inside gpt2_init()'s sync,
 * clamp and the repack bracketed here.
 */
#include "gpt2/gpt2.h"
#include "kernels/kernels.h"

#define RA_STRIDE	(IS_ENABLED(CONFIG_RA_PER_HEAD_GATES) ? 1 : 0)
#define RA_ALPHA_INIT	0.05f

static real *w_std(struct gpt2 *m, real *base, int l)
{
	return base + m->tensors[P_RA_W_STD].offset + (size_t)l * GPT2_RA_GATES;
}

static real *w_rec(struct gpt2 *m, real *base, int l)
{
	return base + m->tensors[P_RA_W_REC].offset + (size_t)l * GPT2_RA_GATES;
}

static real *alpha(struct gpt2 *m, real *base, int l)
{
	return base + m->tensors[P_RA_ALPHA].offset + (size_t)l * GPT2_NH;
}

void gpt2_ra_qk_forward(struct gpt2 *m, int l, int N)
{
	rattn_scale_forward(m->layer[l].qkv, w_std(m, m->params, l), w_rec(m, m->params, l),
			    RA_STRIDE, N, GPT2_C, GPT2_NH, GPT2_RA_R);
}

void gpt2_ra_qk_backward(struct gpt2 *m, int l, int N)
{
	rattn_scale_backward(m->dqkv, w_std(m, m->grads, l), w_rec(m, m->grads, l),
			     m->layer[l].qkv, w_std(m, m->params, l), w_rec(m, m->params, l),
			     RA_STRIDE, N, GPT2_C, GPT2_NH, GPT2_RA_R);
}

void gpt2_ra_out_forward(struct gpt2 *m, int l, int N)
{
	struct gpt2_layer_acts *a = &m->layer[l];

	if (IS_ENABLED(CONFIG_RA_SELF_RESTART))
		rattn_restart_forward(a->atto, a->atty, a->qkv, alpha(m, m->params, l), N,
				      GPT2_C, GPT2_NH);
}

void gpt2_ra_out_backward(struct gpt2 *m, int l, int N)
{
	struct gpt2_layer_acts *a = &m->layer[l];

	if (IS_ENABLED(CONFIG_RA_SELF_RESTART))
		rattn_restart_backward(m->dqkv, alpha(m, m->grads, l), m->datty, a->atty, a->qkv,
				       alpha(m, m->params, l), N, GPT2_C, GPT2_NH);
}

void gpt2_ra_init(struct gpt2 *m)
{
	rattn_init_gates(gpt2_param(m, P_RA_W_STD), gpt2_param(m, P_RA_W_REC),
			 m->tensors[P_RA_W_STD].size, GPT2_HS, GPT2_RA_R);
	for (size_t i = 0; i < m->tensors[P_RA_ALPHA].size; i++)
		gpt2_param(m, P_RA_ALPHA)[i] = RA_ALPHA_INIT;
}

/* The gate tensors only, each step: the rest of the parameters stays
 * with the backend. */
static void ra_gates_sync(struct gpt2 *m, void (*sync)(const void *, size_t))
{
	static const int t[] = { P_RA_W_STD, P_RA_W_REC, P_RA_ALPHA };

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		sync(gpt2_param(m, t[i]), m->tensors[t[i]].size * sizeof(real));
}

void gpt2_ra_clamp(struct gpt2 *m)
{
	ra_gates_sync(m, kgpt_sync_for_host);
	rattn_clamp(gpt2_param(m, P_RA_W_STD), gpt2_param(m, P_RA_W_REC),
		    m->tensors[P_RA_W_STD].size, gpt2_param(m, P_RA_ALPHA),
		    m->tensors[P_RA_ALPHA].size);
	ra_gates_sync(m, kgpt_sync_for_backend);
}

int gpt2_ra_from_baseline(struct gpt2 *m)
{
	gpt2_sync_for_host(m);
	for (int l = 0; l < GPT2_L; l++)
		rattn_repack(gpt2_param(m, P_QKVW) + (size_t)l * 3 * GPT2_C * GPT2_C,
			     GPT2_HAS_BIAS ? gpt2_param(m, P_QKVB) + (size_t)l * 3 * GPT2_C :
			     NULL, GPT2_C, GPT2_NH, GPT2_RA_R);
	gpt2_sync_for_backend(m);
	return 1;
}
