// SPDX-License-Identifier: MIT
/*
 * The R-MLP in the GPT-2 model (ra/rmlp_gpt2.h): each layer's MLP is
 * ra/rmlp.h's with the layer's compile-time sizes. Compiled only with
 * CONFIG_RMLP.
 */

#include "gpt2/gpt2.h"

int gpt2_rmlp_forward(struct gpt2 *m, int l, act_t *out, int N)
{
	struct rmlp_dims d = gpt2_rmlp_dims(l);
	struct rmlp_params rp = gpt2_rmlp_params(m, l);

	rmlp_forward(out, m->layer[l].mlp_saved, m->dh, m->layer[l].ln2, &rp, &d, N);
	return 1;
}

int gpt2_rmlp_backward(struct gpt2 *m, int l, const act_t *dout, int N)
{
	struct gpt2_layer_acts *a = &m->layer[l];
	struct rmlp_dims d = gpt2_rmlp_dims(l);
	struct rmlp_params rp = gpt2_rmlp_params(m, l);
	struct rmlp_grads rg = gpt2_rmlp_grads(m, l);

	kgpt_zero(m->dln, (size_t)N * GPT2_C * sizeof(act_t));
	rmlp_backward(m->dln, &rg, m->dh, dout, a->ln2, a->mlp_saved, &rp, &d, N);
	return 1;
}

/*
 * No random draws, so every other tensor equals that of a GPT-2 model of
 * the same seed, and a fresh R-MLP is exactly what --init-from makes of a
 * baseline checkpoint (ckpt_load_llmc() keeps these tensors as they are).
 */
void gpt2_rmlp_init(struct gpt2 *m)
{
	for (int l = 0; l < GPT2_L; l++) {
		struct rmlp_dims d = gpt2_rmlp_dims(l);
		struct rmlp_grads p = gpt2_rmlp_slices(m, m->params, l);

		rmlp_from_baseline(p.mixw, p.w_std, p.w_rec, p.gate_alpha, &d);
	}
}
