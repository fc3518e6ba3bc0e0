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
 *
 * The functions here are host code on shared memory (between
 * kgpt_sync_for_host() and kgpt_sync_for_backend()); the scaling and the
 * self-restart mix, rattn_scale_*() and rattn_restart_*(), are kernels of
 * the backend, declared in kernels/kernels.h.
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
