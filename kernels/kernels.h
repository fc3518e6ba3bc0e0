/* SPDX-License-Identifier: MIT */
/*
 * kgpt's compute backend: every kernel the model (gpt2/), the mechanisms
 * (ra/) and the optimizer call, and the memory they run on. This header
 * is the whole contract; a backend implements all of it. Kconfig chooses
 * the backend (kernels/Kconfig: BACKEND_CPU is kernels/cpu/, BACKEND_CUDA
 * kernels/cuda/) and kernels/Kbuild links exactly that one, so no caller
 * knows which backend runs it and none includes anything under kernels/
 * but this file.
 *
 * Conventions (the same for every function here and in ra/):
 *  - Size names: B batch, T sequence length, C channels (n_embd), NH heads,
 *    hs = C/NH head size, V vocabulary (50257), Vp padded vocabulary
 *    (50304), N = B*T rows, OC output channels, D_ff MLP width.
 *  - Row-major arrays. A weight matrix of a linear layer is (OC, C), as in
 *    PyTorch state dicts and llm.c checkpoints; out = inp @ W^T + bias.
 *  - Outputs first, then inputs, then sizes.
 *  - Every backward ACCUMULATES (+=) into the gradients it writes, both
 *    parameter gradients and input gradients; callers zero them when needed
 *    (kgpt_zero()). The one exception is dropout_backward, which masks dx
 *    in place.
 *  - Kernels know nothing of Kconfig: sizes arrive as arguments.
 *  - `real` is float32 in the trainer, float64 in the gradient tests
 *    (include/kgpt/real.h; only the CPU backend has a float64 build). The
 *    optimizer state is float32 always.
 *  - `act_t` is the storage type of activations and of their gradients
 *    (everything of size N x channels that flows between kernels): `real`,
 *    except with KGPT_ACT_BF16 (CONFIG_GPT2_AMP_DTYPE="bf16" on the CUDA
 *    backend), where it is bfloat16 (1 sign, 8 exponent, 7 mantissa bits;
 *    Kalamkar et al. 2019). Parameters, their gradients, the optimizer
 *    state, losses, LayerNorm's mean and rstd, attention's lse and the LM
 *    head's logits stay `real`: the master copy and every accumulation are
 *    float32, bf16 is only how activations are stored between kernels.
 *    Host code never does arithmetic on act_t; it moves activations with
 *    kgpt_download_act() and kgpt_upload_act(), which convert.
 *  - Call from one host thread. A backend parallelises inside (the CPU
 *    backend with OpenMP, the CUDA one on the device).
 *  - Element counts are size_t, offsets computed in size_t: B*T*Vp passes
 *    2^31 at B = 48, T = 1024.
 *
 * Memory. Two kinds, both zeroed when allocated:
 *  - backend memory (kgpt_alloc()): what kernels read and write. Host code
 *    never dereferences it; kgpt_upload() and kgpt_download() move data
 *    in and out. Activations and scratch live here.
 *  - shared memory (kgpt_alloc_shared()): backend memory that host code may
 *    also read and write, between kgpt_sync_for_host() and
 *    kgpt_sync_for_backend() on the range (the pairing of Linux's
 *    dma_sync_single_for_cpu/_for_device). Parameters, gradients and the
 *    optimizer state live here, so that initialisation, checkpoints and
 *    reports are host code on every backend.
 * Every pointer argument of a kernel is backend or shared memory unless its
 * comment says "host".
 *
 * Ordering. Kernels run in the order they are called and may run after
 * they return (the CUDA backend queues them). What returns a value
 * computed from backend memory (sumsq(), adamw_spam_update()) and
 * kgpt_download() wait for everything queued before. On the CPU backend
 * all memory is host memory, every kernel has finished when it returns,
 * and the sync functions do nothing.
 *
 * Errors. A backend that fails (a CUDA error, a failed launch) prints the
 * call, file and line and ends the program: kernels return no error
 * codes. Allocation is the exception: kgpt_alloc*() return NULL, and the
 * caller says what it was allocating.
 */
#ifndef KGPT_KERNELS_H
#define KGPT_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include "kgpt/real.h"

#ifdef __cplusplus
extern "C" {		/* a backend may be written in CUDA C++ */
#endif

struct kv_cache;	/* ra/kvprune.h */

#if defined(KGPT_ACT_BF16) && defined(KGPT_F64)
#error "bf16 activations are a CUDA-backend build; the float64 build stores activations as real"
#endif
#if defined(KGPT_ACT_BF16) && defined(__CUDACC__)
#include <cuda_bf16.h>
typedef __nv_bfloat16 act_t;	/* the backend's own type, same 2 bytes */
#elif defined(KGPT_ACT_BF16) && defined(KGPT_ACT_HOST_BF16)
typedef KGPT_ACT_HOST_BF16 act_t;	/* tests/cuda-emu: a host bf16 with conversions */
#elif defined(KGPT_ACT_BF16)
typedef struct kgpt_bf16 { uint16_t bits; } act_t;	/* opaque to host code */
#else
typedef real act_t;
#endif
/* act_t's name in logs and reports */
#if defined(KGPT_ACT_BF16)
#define KGPT_ACT_NAME	"bf16"
#elif defined(KGPT_F64)
#define KGPT_ACT_NAME	"fp64"
#else
#define KGPT_ACT_NAME	"fp32"
#endif

/* ------------------------------------------------------------------------
 * The backend and its memory
 */

/* One line naming the backend and what it runs on, for logs and benchmark
 * results, e.g. "cpu (OpenMP, BLAS)" or "cuda (NVIDIA H100, sm_90)". */
const char *kgpt_backend_name(void);

/* bytes of backend memory, zeroed; NULL when it cannot be had. */
void *kgpt_alloc(size_t bytes);
/* bytes of shared memory (see above), zeroed; NULL when it cannot be had. */
void *kgpt_alloc_shared(size_t bytes);
/* Free p (from either, bytes as allocated; NULL is a no-op). */
void kgpt_free(void *p, size_t bytes);
/* The most bytes of kgpt_alloc*() memory held at once so far, and the
 * bytes held now. */
size_t kgpt_mem_peak(void);
size_t kgpt_mem_used(void);

/* p[0..bytes) = 0. */
void kgpt_zero(void *p, size_t bytes);
/* dst = src, bytes, both backend memory; the ranges do not overlap. */
void kgpt_copy(void *dst, const void *src, size_t bytes);
/* host -> backend: dst (backend) = src (host), bytes. src may be reused
 * as soon as this returns. */
void kgpt_upload(void *dst, const void *src, size_t bytes);
/* backend -> host: dst (host) = src (backend), bytes, after every kernel
 * queued before has finished. */
void kgpt_download(void *dst, const void *src, size_t bytes);

/* host <-> backend for activations, converting between act_t and real:
 * dst (host, n reals) = src (backend, n act_t), after every kernel
 * queued before has finished; dst (backend, n act_t) = src (host, n
 * reals), rounded to nearest even. Plain copies where act_t is real. */
void kgpt_download_act(real *dst, const act_t *src, size_t n);
void kgpt_upload_act(act_t *dst, const real *src, size_t n);

/* Host code is about to read or write the shared memory [p, p + bytes):
 * wait for the kernels queued before (and move the range to the host
 * where that is faster than reading it remotely). */
void kgpt_sync_for_host(const void *p, size_t bytes);
/* Host code is done with the shared memory [p, p + bytes); kernels may use
 * it again (a backend may move it back to the device). */
void kgpt_sync_for_backend(const void *p, size_t bytes);
/* Wait until every kernel queued so far has finished (phase timing). */
void kgpt_sync(void);

/* ------------------------------------------------------------------------
 * Matrix products
 */

/*
 * kgpt_gemm - C = alpha op(A) op(B) + beta C, row-major: the BLAS's
 * sgemm (dgemm in float64) with CblasRowMajor.
 * @ta, @tb: nonzero: op(X) = X^T, else op(X) = X. op(A) is (M,K), op(B)
 *           (K,N), C (M,N).
 * @lda, @ldb, @ldc: row strides in elements of A, B, C as stored (A is
 *           (M,K) or, transposed, (K,M)).
 * With beta = 0, C is only written. 2*M*N*K flops.
 */
void kgpt_gemm(int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda,
	       const real *B, int ldb, real beta, real *C, int ldc);

/* The same product for the two kinds a model runs, which differ from
 * kgpt_gemm() only in the storage types (act_t, see above):
 * kgpt_gemm_act: activations A by a weight W (parameters) into
 * activations C, e.g. a layer's forward or its input gradient;
 * kgpt_gemm_dw: activations A by activations B into a weight gradient C
 * (float32, usually beta = 1 to accumulate). Where act_t is bf16, W is
 * rounded to bf16 for the product and the sums are float32. */
void kgpt_gemm_act(int ta, int tb, int M, int N, int K, real alpha, const act_t *A,
		   int lda, const real *W, int ldw, real beta, act_t *C, int ldc);
void kgpt_gemm_dw(int ta, int tb, int M, int N, int K, real alpha, const act_t *A, int lda,
		  const act_t *B, int ldb, real beta, real *C, int ldc);

/* Linear layer.
 * out: (N,OC) = inp (N,C) @ w^T (w: (OC,C)) + bias (OC), bias may be NULL.
 * Backward: dinp (N,C) += dout @ w; dw (OC,C) += dout^T @ inp;
 * dbias (OC) += column sums of dout. dinp, dbias may be NULL (skipped). */
void matmul_forward(act_t *out, const act_t *inp, const real *w,
		    const real *bias, int N, int C, int OC);
/* dbias (OC) += column sums of dout (N,OC), deterministic (the rows are
 * added in order); matmul_backward's bias gradient, also called on its own
 * where a fused kernel needs it. */
void bias_backward(real *dbias, const act_t *dout, int N, int OC);
void matmul_backward(act_t *dinp, real *dw, real *dbias, const act_t *dout,
		     const act_t *inp, const real *w, int N, int C, int OC);

/* ------------------------------------------------------------------------
 * Layers
 */

/* Token + position embedding: out[b,t,:] = wte[inp[b,t],:] + wpe[t,:].
 * out: (B,T,C); inp: (B,T) token ids < Vp (the trainer checks < V);
 * wte: (Vp,C); wpe: (maxT,C), T <= maxT.
 * Backward: dwte[inp[b,t],:] += dout[b,t,:], dwpe[t,:] += sum_b dout[b,t,:]. */
void encoder_forward(act_t *out, const int *inp, const real *wte,
		     const real *wpe, int B, int T, int C);
void encoder_backward(real *dwte, real *dwpe, const act_t *dout,
		      const int *inp, int B, int T, int C);

/* LayerNorm over the last dimension, eps = 1e-5 (Ba, Kiros & Hinton 2016):
 * y = (x - mean) rstd w + b, rstd = 1 / sqrt(var + eps), var biased (1/C).
 * out, inp: (N,C); mean, rstd: (N) saved for backward; w, b: (C).
 * Backward: dinp (N,C) +=; dw, db (C) += sum over rows of dout * xhat, dout. */
void layernorm_forward(act_t *out, real *mean, real *rstd, const act_t *inp,
		       const real *w, const real *b, int N, int C);
void layernorm_backward(act_t *dinp, real *dw, real *db, const act_t *dout,
			const act_t *inp, const real *w, const real *mean,
			const real *rstd, int N, int C);

/* GELU, tanh approximation (Hendrycks & Gimpel 2016, eq. in section 2):
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). out, inp: (n); out may
 * alias inp. Backward takes the pre-activation inp, so the activation need
 * not be kept: dinp (n) += gelu'(inp) dout. */
void gelu_forward(act_t *out, const act_t *inp, size_t n);
void gelu_backward(act_t *dinp, const act_t *inp, const act_t *dout, size_t n);

/* out = a + b, all (n). out may alias a or b. */
void residual_forward(act_t *out, const act_t *a, const act_t *b, size_t n);

/* Inverted dropout with probability p (Srivastava et al. 2014), in place.
 * The mask element i is kgpt_dropout_keep(seed, i, p) (include/kgpt/rng.h),
 * so backward regenerates it from (seed, p) and nothing is stored.
 * dropout_backward scales dx in place (it does not accumulate).
 * p == 0 is a no-op. x, dx: (n). */
void dropout_forward(act_t *x, size_t n, float p, uint64_t seed);
void dropout_backward(act_t *dx, size_t n, float p, uint64_t seed);

/* LM head + softmax cross-entropy over the padded vocabulary, in chunks of
 * rows so the (N,Vp) logits are never stored whole.
 * x: (N,C) final LayerNorm output; wte: (Vp,C) (tied) or the head weight;
 * targets: (N) ids < V; losses: (N) per-row -log p(target), natural log.
 * Padded logits (V <= j < Vp) get no probability and no gradient, and the
 * padded rows V..Vp-1 of wte are neither read nor written.
 * scratch: chunk*Vp reals (backend memory). */
void lm_head_forward(real *losses, const act_t *x, const real *wte,
		     const int *targets, int N, int C, int V, int Vp,
		     real *scratch, int chunk);
/* Same, and backward for a total loss L = sum_i dloss * losses[i]:
 * dx (N,C) += dL/dx, dwte (Vp,C) += dL/dwte. */
void lm_head_forward_backward(real *losses, act_t *dx, real *dwte,
			      const act_t *x, const real *wte,
			      const int *targets, real dloss, int N, int C,
			      int V, int Vp, real *scratch, int chunk);

/* ------------------------------------------------------------------------
 * Attention
 */

/* Causal multi-head self-attention (Vaswani et al. 2017), memory-efficient
 * (FlashAttention, Dao et al. 2022): the (B,NH,T,T) probabilities are never
 * stored; forward saves the log-sum-exp of each query row, backward
 * recomputes the probabilities from it.
 * qkv: (B,T,3C) packed [q | k | v], head h uses channels h*hs..h*hs+hs-1
 * of each; out: (B,T,C); lse: (B,NH,T), natural log. Scores scaled by
 * 1/sqrt(hs). Dropout p on the probabilities, mask element
 * ((b*NH+h)*T + i)*T + j from (seed, index) (kgpt_dropout_keep()).
 * Backward: dqkv (B,T,3C) += given dout (B,T,C) and the forward's out, lse. */
void attention_forward(act_t *out, real *lse, const act_t *qkv, int B, int T,
		       int C, int NH, float dropout_p, uint64_t dropout_seed);
void attention_backward(act_t *dqkv, const act_t *dout, const act_t *qkv,
			const act_t *out, const real *lse, int B, int T, int C,
			int NH, float dropout_p, uint64_t dropout_seed);

/*
 * Forward of hard-pruned attention (ra/kvprune.h, the policy): for every
 * (b, h) the cache walk over positions 0..T-1 holding at most k keys and
 * values, the newest `recency` never evicted (1 <= recency < k). v_only
 * = 0 (KV mode): query i's softmax runs over the kept keys; v_only = 1
 * (V_ONLY): over all keys <= i, and only kept values enter the output.
 * out (B,T,C), lse (B,NH,T) as attention_forward(), dropout likewise;
 * evict_step (B,NH,T) ints: the step at which each key left the cache, T
 * if never. k >= T evicts nothing: attention_forward() itself. The CPU
 * backend runs ra/kvprune_step.h's walk, one (b, h) per thread; the CUDA
 * backend one block per (b, h). Returns 0, -EINVAL (sizes) or -ENOMEM
 * (the CPU walk's scratch; on CUDA a failed allocation of the walk's
 * device scratch ends the program, as every CUDA failure does).
 */
int attention_forward_pruned(act_t *out, real *lse, int *evict_step, const act_t *qkv,
			     int k, int recency, int v_only, int B, int T, int C, int NH,
			     float dropout_p, uint64_t dropout_seed);

/*
 * Backward of hard-pruned attention (ra/kvprune.h): attention_backward()
 * restricted, for query i of head (b, h), to the kept keys
 * {j <= i : evict_step[(b*NH+h)*T + j] > i}.
 * evict_step: (B,NH,T) ints, the step at which each key left the cache,
 * T if never. v_only = 0 (KV mode): the softmax ran over the kept keys
 * alone, and lse is theirs. v_only = 1 (V_ONLY): the softmax ran over all
 * keys <= i, but only kept values entered the output. out and lse are the
 * pruned forward's; otherwise as attention_backward().
 */
void attention_backward_pruned(act_t *dqkv, const act_t *dout, const act_t *qkv,
			       const act_t *out, const real *lse,
			       const int *evict_step, int v_only, int B, int T,
			       int C, int NH, float dropout_p, uint64_t dropout_seed);

/*
 * Generation through a KV cache (ra/kvprune.h, struct kv_cache; its
 * arrays are backend memory): one step for the token at position c->t
 * (< c->max_tokens; the caller advances c->t), every head h of c:
 *  1. insert the token's key k[h*hs..] and value v[h*hs..] into a free
 *     slot, or, when all cap slots are in use, into the slot of the least
 *     important entry of position <= t - recency (importance imp / cnt;
 *     ties: the smaller position), which is evicted;
 *  2. scores scale q . key over the cached keys (V_ONLY: over all keys
 *     <= t), scale = 1/sqrt(hs); softmax;
 *  3. each cached entry's imp += its weight, cnt += 1;
 *  4. out[h*hs..] (hs) = sum of the weights times the cached values.
 * q, k, v, out: (n_embd) each. No dropout. The policy of training: the CPU
 * backend runs ra/kvprune_step.h's kvp_step(), the walk of training.
 */
void kv_cache_attend(struct kv_cache *c, act_t *out, const act_t *q, const act_t *k,
		     const act_t *v);

/* ------------------------------------------------------------------------
 * The R-MLP's element-wise passes (ra/rmlp.h, docs/r-mlp.md). ra/rmlp.c
 * runs them between its matrix products; the scalars arrive as host
 * values, their gradients are accumulated in backend memory.
 */

/*
 * rmlp_act_forward - pre (N, D_ff) -> h (N, D_ff), D_ff = Ds + Rr:
 * h[:, :Ds] = s_std GELU(pre[:, :Ds]); the reciprocal part, without the
 * mixer (mixer = 0), to h[:, Ds:] = s_low GELU(pre[:, Ds:]); with it, to
 * u (N, Rr) = GELU(pre[:, Ds:]) (h[:, Ds:] is then left to the mixer's
 * gemm). GELU as gelu_forward().
 */
void rmlp_act_forward(act_t *h, act_t *u, const act_t *pre, real s_std, real s_low,
		      int N, int Ds, int Rr, int mixer);

/*
 * rmlp_act_backward - in place, dh (N, D_ff) -> dpre (N, D_ff).
 * Standard part: dpre = s_std GELU'(pre) dh; acc_std = sum dh GELU(pre).
 * Reciprocal part, with dm = du (N, Rr) = dh_low @ mixw when du is not
 * NULL (the mixer), else dm = dh[:, Ds:]: dpre = s_low GELU'(pre) dm and
 * acc_low = sum dm GELU(pre) = dL/d s_low. Then, with s_low = w_rec * gate:
 * *dw_std += acc_std, *dw_rec += gate acc_low, *dgate += w_rec acc_low
 * (dgate may be NULL: no gate). The sums are reduced in double,
 * deterministically. dfcb (D_ff), when not NULL, += column sums of dpre
 * (the up-projection's bias gradient).
 */
void rmlp_act_backward(act_t *dh, real *dfcb, real *dw_std, real *dw_rec, real *dgate,
		       const act_t *pre, const act_t *du, real s_std, real s_low,
		       real w_rec, real gate, int N, int Ds, int Rr);

/* ------------------------------------------------------------------------
 * Reciprocal Attention's passes (ra/rattn.h, docs/reciprocal-attention.md):
 * head h of size D = C / NH has D - R standard and R reciprocal dimensions
 * (the last R). The gates w_std, w_rec and alpha are read at [h * stride]
 * (stride 1: per head; 0: one value for the layer) from shared memory;
 * their gradients are accumulated there. qkv rows are (3C): q, k, v.
 * RATTN_W_MIN (ra/rattn.h) bounds w from below.
 */

/*
 * qkv (N, 3C): the query and key parts of every row scaled in place,
 * dimension d of head h by sqrt(w_std[h*stride]) for d < D - R, else by
 * sqrt(w_rec[h*stride]). Values untouched. w >= RATTN_W_MIN (ra/rattn.h) expected.
 */
void rattn_scale_forward(act_t *qkv, const real *w_std, const real *w_rec, int stride,
			 int N, int C, int NH, int R);

/*
 * Its backward, in place on dqkv (N, 3C), which holds d/d q', d/d k' of
 * the scaled q' = sqrt(w) q, k' = sqrt(w) k (qkv: the scaled values as
 * the forward left them). dw_std[h*stride], dw_rec[h*stride] +=
 * sum (dq' q' + dk' k') / (2 w) over the rows and the part's dimensions;
 * then dq = sqrt(w) dq', dk = sqrt(w) dk'. The value part is untouched.
 */
void rattn_scale_backward(act_t *dqkv, real *dw_std, real *dw_rec, const act_t *qkv,
			  const real *w_std, const real *w_rec, int stride, int N, int C,
			  int NH, int R);

/*
 * Self-restart: out (N, C) = (1 - alpha[h]) y + alpha[h] v for every
 * head h of every row; y (N, C) the attention output, v the value part
 * of qkv (N, 3C). out and y must not alias.
 */
void rattn_restart_forward(act_t *out, const act_t *y, const act_t *qkv, const real *alpha,
			   int N, int C, int NH);

/*
 * Its backward: given dout (N, C) = d/d out, dalpha[h] += sum dout (v - y);
 * the value part of dqkv (N, 3C) += alpha dout; and dout becomes d/d y =
 * (1 - alpha) dout, in place.
 */
void rattn_restart_backward(act_t *dqkv, real *dalpha, act_t *dout, const act_t *y,
			    const act_t *qkv, const real *alpha, int N, int C, int NH);

/* ------------------------------------------------------------------------
 * Optimizer
 */

/* AdamW (Loshchilov & Hutter 2019) on one tensor of n elements:
 * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr * (m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + wd * p).
 * step t starts at 1. Pass wd = 0 for tensors that are not decayed.
 * All float (n). */
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

/* AdamW-SPAM's soft reset after a spike (gpt2/spam.h), over n elements:
 * m *= 0.5, v *= 0.9, vmax *= 0.9 (vmax may be NULL). All float. */
void spam_soft_reset(float *m, float *v, float *vmax, size_t n);

/* Sum of squares of g (n), accumulated in double (deterministic). */
double sumsq(const real *g, size_t n);
/* x *= s, (n); scale_act_inplace() on activations (act_t). */
void scale_inplace(real *x, size_t n, real s);
void scale_act_inplace(act_t *x, size_t n, real s);

#ifdef __cplusplus
}
#endif

#endif /* KGPT_KERNELS_H */
