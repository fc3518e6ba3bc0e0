/* SPDX-License-Identifier: MIT */
/*
 * Reciprocal Attention (RA): per-dimension scaling of queries and keys,
 * and the optional self-restart mix of each head's output with its values.
 *
 * Each head of size D = C / NH splits into D_std = D - R standard
 * dimensions and R reciprocal ones (the last R). Scaling q and k by
 * sqrt(w_std) on the first D_std and sqrt(w_rec) on the last R makes the
 * score  w_std <q_std, k_std> + w_rec <q_low, k_low>  with the usual
 * 1/sqrt(D) of the attention kernel on top. Initialised from a baseline
 * checkpoint, rattn_repack() swaps the last R rows of the query and key
 * projections, so that the R part scores <k_low(i), q_low(j)>: the
 * reciprocal direction. Self-restart: out = (1 - alpha) * y + alpha * v,
 * per head. See docs/reciprocal-attention.md.
 *
 * Gates: w_std, w_rec and alpha are arrays indexed by head h at
 * [h * stride]: stride 1 for per-head gates (NH entries), 0 for one value
 * shared by the layer's heads. All functions take the layer's slices;
 * sizes are arguments, no Kconfig. qkv rows are (3C): q, k, v, each NH
 * heads of D, as GPT-2's c_attn output.
 */
#ifndef KGPT_RA_RATTN_H
#define KGPT_RA_RATTN_H

#include <stddef.h>
#include "kgpt/real.h"

/* Lower bound on w_std and w_rec (sqrt and 1/w stay finite; applied by
 * rattn_clamp()) and the range of alpha. */
#define RATTN_W_MIN	1e-4f
#define RATTN_ALPHA_MAX	0.5f

/* Geometric initialisation: w_std = (D - R) / D, w_rec = R / D, the
 * R-MLP's rule on the head dimension. n entries each. */
void rattn_init_gates(real *w_std, real *w_rec, size_t n, int D, int R);

/*
 * qkv (N, 3C): the query and key parts of every row scaled in place,
 * dimension d of head h by sqrt(w_std[h*stride]) for d < D - R, else by
 * sqrt(w_rec[h*stride]). Values untouched. w >= RATTN_W_MIN expected.
 */
void rattn_scale_forward(real *qkv, const real *w_std, const real *w_rec, int stride,
			 int N, int C, int NH, int R);

/*
 * Its backward, in place on dqkv (N, 3C), which holds d/d q', d/d k' of
 * the scaled q' = sqrt(w) q, k' = sqrt(w) k (qkv: the scaled values as
 * the forward left them). dw_std[h*stride], dw_rec[h*stride] +=
 * sum (dq' q' + dk' k') / (2 w) over the rows and the part's dimensions;
 * then dq = sqrt(w) dq', dk = sqrt(w) dk'. The value part is untouched.
 */
void rattn_scale_backward(real *dqkv, real *dw_std, real *dw_rec, const real *qkv,
			  const real *w_std, const real *w_rec, int stride, int N, int C,
			  int NH, int R);

/*
 * Self-restart: out (N, C) = (1 - alpha[h]) y + alpha[h] v for every
 * head h of every row; y (N, C) the attention output, v the value part
 * of qkv (N, 3C). out and y must not alias.
 */
void rattn_restart_forward(real *out, const real *y, const real *qkv, const real *alpha,
			   int N, int C, int NH);

/*
 * Its backward: given dout (N, C) = d/d out, dalpha[h] += sum dout (v - y);
 * the value part of dqkv (N, 3C) += alpha dout; and dout becomes d/d y =
 * (1 - alpha) dout, in place.
 */
void rattn_restart_backward(real *dqkv, real *dalpha, real *dout, const real *y,
			    const real *qkv, const real *alpha, int N, int C, int NH);

/*
 * A baseline layer made reciprocal: in qkvw (3C, C) (output rows q, k, v)
 * and qkvb (3C, may be NULL), swap the last R rows of every head's query
 * block with the same rows of its key block.
 */
void rattn_repack(real *qkvw, real *qkvb, int C, int NH, int R);

/* w into [RATTN_W_MIN, inf) (n entries); alpha into [0, RATTN_ALPHA_MAX]
 * (na entries, alpha may be NULL). NaN stays NaN: the trainer's
 * non-finite check reports it. */
void rattn_clamp(real *w_std, real *w_rec, size_t n, real *alpha, size_t na);

#endif /* KGPT_RA_RATTN_H */
