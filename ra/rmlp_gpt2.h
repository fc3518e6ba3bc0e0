/* SPDX-License-Identifier: MIT */
/*
 * The R-MLP (ra/rmlp.h, docs/r-mlp.md) inside the GPT-2 model and
 * trainer. The inline helpers give the compile-time sizes of each layer
 * and its slices of the parameters; the hooks are what gpt2/gpt2.c and
 * gpt2/report.c call unconditionally. With CONFIG_RMLP they are
 * ra/rmlp_gpt2.c and ra/rmlp_report.c; without it the inline no-ops
 * below, and none of the R-MLP code is compiled in.
 * Included by gpt2/gpt2.h after struct gpt2.
 */
#ifndef KGPT_RA_RMLP_GPT2_H
#define KGPT_RA_RMLP_GPT2_H

#include "gpt2/config.h"
#include "ra/rmlp.h"

struct gpt2;
struct train;
struct cJSON;

/*
 * The R-MLP of layer l (ra/rmlp.h, docs/r-mlp.md): compile-time sizes and
 * the layer's slices of the parameters or gradients. R_l is
 * CONFIG_RMLP_R_FF or the entry of CONFIG_RMLP_R_FF_PER_LAYER; P_MIXW holds
 * the layers' (R_l, R_l) mixers one after the other. Without CONFIG_RMLP
 * nothing calls these and nothing of them is compiled in.
 */
static inline int gpt2_rmlp_rff(int l)
{
	static const int r_ff[GPT2_L] = GPT2_RMLP_R_LIST;

	return r_ff[l];
}

static inline struct rmlp_dims gpt2_rmlp_dims(int l)
{
	struct rmlp_dims d = {
		.C = GPT2_C,
		.D_std = GPT2_DFF - gpt2_rmlp_rff(l),
		.R = gpt2_rmlp_rff(l),
		.use_mixer = IS_ENABLED(CONFIG_RMLP_USE_MIXER),
		.use_gates = IS_ENABLED(CONFIG_RMLP_USE_GATES),
	};

	return d;
}

/* Elements of P_MIXW before layer l's mixer: sum of R_k^2 over k < l. */
static inline size_t gpt2_rmlp_mix_offset(int l)
{
	size_t off = 0;

	for (int k = 0; k < l; k++)
		off += (size_t)gpt2_rmlp_rff(k) * gpt2_rmlp_rff(k);
	return off;
}

/* Layer l's R-MLP tensors in base (m->params or m->grads); NULL for the
 * tensors this configuration does not have (biases, mixer, gate). */
static inline struct rmlp_grads gpt2_rmlp_slices(const struct gpt2 *m, real *base, int l)
{
	const struct gpt2_tensor_info *t = m->tensors;
	const size_t dff = GPT2_DFF, c = GPT2_C, ll = (size_t)l;
	struct rmlp_grads s = {
		.fcw = base + t[P_FCW].offset + ll * dff * c,
		.fcb = GPT2_HAS_BIAS ? base + t[P_FCB].offset + ll * dff : NULL,
		.mixw = IS_ENABLED(CONFIG_RMLP_USE_MIXER) ?
			base + t[P_MIXW].offset + gpt2_rmlp_mix_offset(l) : NULL,
		.fcprojw = base + t[P_FCPROJW].offset + ll * c * dff,
		.fcprojb = GPT2_HAS_BIAS ? base + t[P_FCPROJB].offset + ll * c : NULL,
		.w_std = base + t[P_W_STD].offset + ll,
		.w_rec = base + t[P_W_REC].offset + ll,
		.gate_alpha = IS_ENABLED(CONFIG_RMLP_USE_GATES) ?
			      base + t[P_GATE_ALPHA].offset + ll : NULL,
	};

	return s;
}

static inline struct rmlp_params gpt2_rmlp_params(const struct gpt2 *m, int l)
{
	struct rmlp_grads s = gpt2_rmlp_slices(m, m->params, l);
	struct rmlp_params p = {
		.fcw = s.fcw, .fcb = s.fcb, .mixw = s.mixw, .fcprojw = s.fcprojw,
		.fcprojb = s.fcprojb, .w_std = s.w_std, .w_rec = s.w_rec,
		.gate_alpha = s.gate_alpha,
	};

	return p;
}

static inline struct rmlp_grads gpt2_rmlp_grads(const struct gpt2 *m, int l)
{
	return gpt2_rmlp_slices(m, m->grads, l);
}

#if IS_ENABLED(CONFIG_RMLP)
/*
 * R-MLP of layer l: its ln2 (N,C) -> out (N,C), N <= GPT2_N rows, keeping
 * the pre-activation in the layer's mlp_saved and using m->dh as scratch
 * (sized by ra/rmlp.h's helpers in gpt2.c's plan_acts()). Returns 1 (it
 * replaces GPT-2's MLP).
 */
int gpt2_rmlp_forward(struct gpt2 *m, int l, act_t *out, int N);

/* Its backward: m->dln = d/d ln2 (overwritten) given dout (N,C);
 * parameter gradients +=. Returns 1. */
int gpt2_rmlp_backward(struct gpt2 *m, int l, const act_t *dout, int N);

/* Every layer: mixer = identity, w_std = D_std / D_ff, w_rec = R_l / D_ff,
 * gate_alpha = 0.1 (rmlp_from_baseline()); no random draws. */
void gpt2_rmlp_init(struct gpt2 *m);

/* ra/rmlp_report.c: start-up lines (the split, the initial scalars),
 * metrics.jsonl / summary.json fields (means: the layer means too) and
 * the console summary. */
void rmlp_report_header(void);
void rmlp_report_json(struct train *tr, struct cJSON *obj, int means);
void rmlp_report_summary(struct train *tr);
#else
static inline int gpt2_rmlp_forward(struct gpt2 *m, int l, act_t *out, int N)
{
	return 0;
}

static inline int gpt2_rmlp_backward(struct gpt2 *m, int l, const act_t *dout, int N)
{
	return 0;
}

static inline void gpt2_rmlp_init(struct gpt2 *m) { }
static inline void rmlp_report_header(void) { }
static inline void rmlp_report_json(struct train *tr, struct cJSON *obj, int means) { }
static inline void rmlp_report_summary(struct train *tr) { }
#endif

#endif /* KGPT_RA_RMLP_GPT2_H */
