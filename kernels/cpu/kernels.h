/* SPDX-License-Identifier: MIT */
/*
 * kgpt CPU kernels: the layers of GPT-2, each forward beside its backward.
 *
 * Conventions (the same in every kernel here and in ra/):
 *  - Size names: B batch, T sequence length, C channels (n_embd), NH heads,
 *    V vocabulary (50257), Vp padded vocabulary (50304), N = B*T rows,
 *    OC output channels.
 *  - Row-major arrays. A weight matrix of a linear layer is (OC, C), as in
 *    PyTorch state dicts and llm.c checkpoints; out = inp @ W^T + bias.
 *  - Outputs first, then inputs, then sizes.
 *  - Every backward ACCUMULATES (+=) into the gradients it writes, both
 *    parameter gradients and input gradients; callers zero them when needed.
 *    The one exception is dropout_backward, which masks dx in place.
 *  - Kernels know nothing of Kconfig: sizes arrive as arguments.
 *  - `real` is float32 in the trainer, float64 in the gradient tests
 *    (include/kgpt/real.h).
 *  - Kernels parallelise with OpenMP themselves; call them from one thread.
 */
#ifndef KGPT_KERNELS_CPU_H
#define KGPT_KERNELS_CPU_H

#include <stddef.h>
#include <stdint.h>
#include "kgpt/real.h"

/* Token + position embedding.
 * out: (B,T,C); inp: (B,T) token ids < Vp (the trainer checks < V); wte: (Vp,C); wpe: (maxT,C). */
void encoder_forward(real *out, const int *inp, const real *wte,
		     const real *wpe, int B, int T, int C);
void encoder_backward(real *dwte, real *dwpe, const real *dout,
		      const int *inp, int B, int T, int C);

/* LayerNorm over the last dimension, eps = 1e-5 (Ba, Kiros & Hinton 2016).
 * out, inp: (N,C); mean, rstd: (N) saved for backward; w, b: (C). */
void layernorm_forward(real *out, real *mean, real *rstd, const real *inp,
		       const real *w, const real *b, int N, int C);
void layernorm_backward(real *dinp, real *dw, real *db, const real *dout,
			const real *inp, const real *w, const real *mean,
			const real *rstd, int N, int C);

/* Linear layer through the BLAS (sgemm/dgemm).
 * out: (N,OC) = inp (N,C) @ w^T (w: (OC,C)) + bias (OC), bias may be NULL.
 * Backward: dinp (N,C) += dout @ w; dw (OC,C) += dout^T @ inp;
 * dbias (OC) += column sums of dout. dinp, dbias may be NULL (skipped). */
void matmul_forward(real *out, const real *inp, const real *w,
		    const real *bias, int N, int C, int OC);
/* dbias (OC) += column sums of dout (N,OC), deterministic (each thread
 * owns a range of columns and adds the rows in order); matmul_backward's
 * bias gradient, also called on its own where a fused kernel needs it. */
void bias_backward(real *dbias, const real *dout, int N, int OC);
void matmul_backward(real *dinp, real *dw, real *dbias, const real *dout,
		     const real *inp, const real *w, int N, int C, int OC);

/* GELU, tanh approximation (Hendrycks & Gimpel 2016, eq. in section 2):
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). out, inp: (n).
 * Backward takes the pre-activation, so the activation need not be kept. */
void gelu_forward(real *out, const real *inp, size_t n);
void gelu_backward(real *dinp, const real *inp, const real *dout, size_t n);

/* out = a + b, all (n). out may alias a or b. */
void residual_forward(real *out, const real *a, const real *b, size_t n);

/* Inverted dropout with probability p (Srivastava et al. 2014), in place.
 * The mask element i is kgpt_dropout_keep(seed, i, p) (include/kgpt/rng.h),
 * so backward regenerates it from (seed, p) and nothing is stored.
 * dropout_backward scales dx in place (it does not accumulate).
 * p == 0 is a no-op. */
void dropout_forward(real *x, size_t n, float p, uint64_t seed);
void dropout_backward(real *dx, size_t n, float p, uint64_t seed);

/* LM head + softmax cross-entropy over the padded vocabulary, in chunks of
 * rows so the (N,Vp) logits are never stored whole.
 * x: (N,C) final LayerNorm output; wte: (Vp,C) (tied) or the head weight;
 * targets: (N) ids < V; losses: (N) per-row -log p(target), natural log.
 * Padded logits (V <= j < Vp) get no probability and no gradient.
 * scratch: chunk*Vp reals. */
void lm_head_forward(real *losses, const real *x, const real *wte,
		     const int *targets, int N, int C, int V, int Vp,
		     real *scratch, int chunk);
/* Same, and backward for a total loss L = sum_i dloss * losses[i]:
 * dx (N,C) += dL/dx, dwte (Vp,C) += dL/dwte. */
void lm_head_forward_backward(real *losses, real *dx, real *dwte,
			      const real *x, const real *wte,
			      const int *targets, real dloss, int N, int C,
			      int V, int Vp, real *scratch, int chunk);

/* Causal multi-head self-attention (Vaswani et al. 2017), memory-efficient:
 * the (B,NH,T,T) probabilities are never stored; forward saves the
 * log-sum-exp of each query row, backward recomputes the probabilities.
 * qkv: (B,T,3C) packed [q | k | v], head h uses channels h*hs..h*hs+hs-1
 * of each, hs = C/NH; out: (B,T,C); lse: (B,NH,T). Scores scaled by
 * 1/sqrt(hs). Dropout p on the probabilities, mask from (seed, index).
 * Backward: dqkv (B,T,3C) +=. */
void attention_forward(real *out, real *lse, const real *qkv, int B, int T,
		       int C, int NH, float dropout_p, uint64_t dropout_seed);
void attention_backward(real *dqkv, const real *dout, const real *qkv,
			const real *out, const real *lse, int B, int T, int C,
			int NH, float dropout_p, uint64_t dropout_seed);

/* AdamW (Loshchilov & Hutter 2019) on one tensor of n elements:
 * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr * (m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + wd * p).
 * step t starts at 1. Pass wd = 0 for tensors that are not decayed. */
void adamw_update(float *p, const float *g, float *m, float *v, size_t n,
		  float lr, float beta1, float beta2, float eps, float wd,
		  int t);

/* AdamW-SPAM (Huang et al. 2025): with theta > 0 each g clipped to
 * +-sqrt(theta v) first (v before the step; not where v is 0), then AdamW with AMSGrad,
 * the denominator sqrt(vmax / (1-b2^t)) + eps with vmax = max(vmax, v).
 * All float (n). Returns the number of elements clipped. */
size_t adamw_spam_update(float *p, const float *g, float *m, float *v, float *vmax,
			 size_t n, float lr, float beta1, float beta2, float eps, float wd,
			 int t, float theta);

/* Sum of squares of g (n), accumulated in double. */
double sumsq(const real *g, size_t n);
/* x *= s, (n). */
void scale_inplace(real *x, size_t n, real s);

#endif /* KGPT_KERNELS_CPU_H */
