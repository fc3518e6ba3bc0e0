/* SPDX-License-Identifier: MIT */
/*
 * Reciprocal MLP (R-MLP): the MLP of a GPT-2 block with its hidden
 * dimension D_ff split into a standard path of D_std units and a
 * reciprocal path of R units (the ReciprocalMLP of the R-MLP study; the
 * math, the layout and how to choose R are in docs/r-mlp.md):
 *
 *   pre   = inp @ fcw^T + fcb                     (N, D_ff), D_ff = D_std + R
 *   h_std = w_std * GELU(pre[:, :D_std])          (N, D_std)
 *   u     = GELU(pre[:, D_std:])                  (N, R)
 *   h_low = w_rec * g * (mixer ? u @ mixw^T : u)  (N, R), g = gate_alpha or 1
 *   out   = [h_std | h_low] @ fcprojw^T + fcprojb (N, C)
 *
 * GELU is the tanh approximation (Hendrycks & Gimpel 2016), as in GPT-2.
 * The parameters keep llm.c's MLP layout, so a baseline checkpoint maps on
 * unchanged: rows 0..D_std-1 of fcw (and entries of fcb, columns of
 * fcprojw) are the standard path, rows D_std..D_ff-1 the reciprocal path.
 *
 * Conventions are those of kernels/kernels.h: row-major, out = inp @
 * W^T + b, outputs first, every backward ACCUMULATES (+=), call from one
 * thread, `real` is float32 (float64 under -DKGPT_F64). rmlp_forward()
 * and rmlp_backward() run on the compute backend (its gemm and the
 * R-MLP's element-wise kernels), their arrays in backend memory, the
 * parameters in shared memory; rmlp_init_gates(), rmlp_from_baseline()
 * and rmlp_get_stats() are host code on shared memory (between
 * kgpt_sync_for_host() and kgpt_sync_for_backend()).
 * Nothing here reads Kconfig: the model passes the sizes.
 */
#ifndef KGPT_RA_RMLP_H
#define KGPT_RA_RMLP_H

#include <stddef.h>
#include "kgpt/real.h"
#include "kernels/kernels.h"	/* act_t */

/*
 * Sizes of one layer's R-MLP. Valid when C >= 1, D_std >= 1, R >= 1
 * (so 1 <= R < D_ff); rmlp_dims_valid() checks this. The functions below
 * do not check: invalid sizes are a programming error.
 */
struct rmlp_dims {
	int C;		/* n_embd */
	int D_std;	/* standard path width, D_ff - R_ff */
	int R;		/* reciprocal path width R_ff */
	int use_mixer;	/* nonzero: h_low = u @ mixw^T before the scaling */
	int use_gates;	/* nonzero: the reciprocal path is scaled by gate_alpha */
};

/*
 * One layer's parameters (all read-only here).
 * fcw (D_ff, C), fcb (D_ff) or NULL; fcprojw (C, D_ff), fcprojb (C) or
 * NULL: llm.c's fcw, fcb, fcprojw, fcprojb.
 * mixw (R, R): h_low[n, j] = sum_k mixw[j*R + k] u[n, k], i.e. out = u @
 * mixw^T, PyTorch's nn.Linear(R, R, bias=False).weight. NULL without mixer.
 * w_std, w_rec, gate_alpha: one scalar each; gate_alpha NULL without gates.
 */
struct rmlp_params {
	const real *fcw, *fcb, *mixw, *fcprojw, *fcprojb;
	const real *w_std, *w_rec, *gate_alpha;
};

/* Gradients, same shapes as struct rmlp_params, all accumulated (+=).
 * fcb / fcprojb may be NULL exactly when the parameter is NULL; mixw and
 * gate_alpha are only touched with use_mixer / use_gates. */
struct rmlp_grads {
	real *fcw, *fcb, *mixw, *fcprojw, *fcprojb;
	real *w_std, *w_rec, *gate_alpha;
};

/* Per-layer values for the training log. */
struct rmlp_stats {
	double w_std, w_rec;
	double gate_alpha;	/* 1 when use_gates is 0 */
	double rec_scale;	/* w_rec * gate_alpha: total factor on h_low */
	double mix_fro;		/* Frobenius norm of mixw, 0 when use_mixer is 0 */
};

static inline int rmlp_dff(const struct rmlp_dims *d)
{
	return d->D_std + d->R;
}

/* 1 when the sizes are usable (C, D_std, R all >= 1), else 0. */
static inline int rmlp_dims_valid(const struct rmlp_dims *d)
{
	return d->C >= 1 && d->D_std >= 1 && d->R >= 1;
}

/*
 * Reals per row (per token) of activation memory. The model allocates
 * N * rmlp_saved_per_row() per layer for @saved (the pre-activation, kept
 * from forward to backward) and N * rmlp_scratch_per_row() once, shared by
 * all layers, for @scratch (reused by every forward and backward call).
 */
static inline size_t rmlp_saved_per_row(const struct rmlp_dims *d)
{
	return (size_t)rmlp_dff(d);
}

static inline size_t rmlp_scratch_per_row(const struct rmlp_dims *d)
{
	return (size_t)rmlp_dff(d) + (d->use_mixer ? (size_t)d->R : 0);
}

/* Parameters beyond the baseline MLP: R^2 (mixer) + 1 (gates) + 2. */
static inline size_t rmlp_extra_params(const struct rmlp_dims *d)
{
	return (d->use_mixer ? (size_t)d->R * d->R : 0) +
	       (d->use_gates ? 1 : 0) + 2;
}

/* All parameters of one layer's R-MLP, with both biases:
 * 2 D_ff C + D_ff + C (the baseline MLP) + rmlp_extra_params(). */
static inline size_t rmlp_num_params(const struct rmlp_dims *d)
{
	size_t dff = (size_t)rmlp_dff(d), c = (size_t)d->C;

	return 2 * dff * c + dff + c + rmlp_extra_params(d);
}

/*
 * rmlp_forward - out = R-MLP(inp).
 * @out: (N, C), overwritten.
 * @saved: (N, D_ff), receives pre; keep it for rmlp_backward().
 * @scratch: N * rmlp_scratch_per_row() elements, clobbered.
 * @inp: (N, C). The four activation arrays are act_t (kernels/kernels.h).
 * No buffer may overlap another. N <= 0 does nothing.
 * Cost: the baseline MLP's two gemms (2 N C D_ff flops each), one pass
 * over (N, D_ff), and with the mixer one (N,R)x(R,R) gemm (2 N R^2).
 */
void rmlp_forward(act_t *out, act_t *saved, act_t *scratch, const act_t *inp,
		  const struct rmlp_params *p, const struct rmlp_dims *d,
		  int N);

/*
 * rmlp_backward - gradients of L given dout = dL/dout.
 * @dinp: (N, C), += dL/dinp; NULL skips it.
 * @g: every gradient of struct rmlp_grads, +=. The scalars' gradients
 *     are reduced in double and added once.
 * @scratch: N * rmlp_scratch_per_row() act_t, clobbered (the same buffer
 *     as forward's may be passed).
 * @dout: (N, C); @inp: (N, C) as given to forward; @saved: forward's,
 *     unchanged. The parameters must be those of the forward call.
 * Recomputes the (N, D_ff) activation from @saved instead of keeping it.
 * Cost: the baseline MLP's four gemms (8 N C D_ff flops) and passes over
 * (N, D_ff) as many as the baseline's (rebuilding h is one more, the
 * bias gradient of fcb one less: it is fused into the GELU' pass), and
 * with the mixer three (N,R)x(R,R) gemms (6 N R^2).
 */
void rmlp_backward(act_t *dinp, const struct rmlp_grads *g, act_t *scratch,
		   const act_t *dout, const act_t *inp, const act_t *saved,
		   const struct rmlp_params *p, const struct rmlp_dims *d,
		   int N);

/*
 * rmlp_init_gates - geometric initialisation of the scalars:
 * w_std = D_std / D_ff, w_rec = R / D_ff (each path weighted by its share
 * of the hidden units), gate_alpha = 0.1. @gate_alpha may be NULL.
 */
void rmlp_init_gates(real *w_std, real *w_rec, real *gate_alpha,
		     const struct rmlp_dims *d);

/*
 * rmlp_from_baseline - start an R-MLP from a baseline MLP's checkpoint.
 * The baseline's fcw, fcb, fcprojw, fcprojb are used unchanged (same
 * layout); this sets the rest: mixw = identity (R, R) (may be NULL
 * without mixer) and the scalars by rmlp_init_gates(). The output then
 * equals the baseline's with the standard units scaled by w_std and the
 * reciprocal units by w_rec * gate_alpha (docs/r-mlp.md).
 */
void rmlp_from_baseline(real *mixw, real *w_std, real *w_rec,
			real *gate_alpha, const struct rmlp_dims *d);

/* rmlp_get_stats - current scalars and ||mixw||_F of one layer. */
void rmlp_get_stats(struct rmlp_stats *s, const struct rmlp_params *p,
		    const struct rmlp_dims *d);

#endif /* KGPT_RA_RMLP_H */
