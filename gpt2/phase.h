/* SPDX-License-Identifier: MIT */
/*
 * Phase timers of the model (private to gpt2/gpt2.c and gpt2/optim.c,
 * included after every other header there).
 *
 * Every kernel called from gpt2.c is wrapped, under its own name, by a
 * macro that reads the monotonic clock before and after the call and adds
 * the difference to gpt2_phase_s[] (gpt2/gpt2.h) under the kernel's phase.
 * A function-like macro is not expanded again inside its own expansion, so
 * matmul_forward(...) below still calls the function. Call sites need no
 * change, and a kernel call added to gpt2.c later is timed as well once its
 * name is listed here.
 *
 * Cost: two clock_gettime() through the vDSO, about 50 ns, per kernel
 * call: some 600 calls per step of the 124M model, 30 us against a step
 * of 500 ms or more. With gpt2_phase_sync set, each clock read first
 * waits for the backend (kgpt_sync()), so that the time of a backend that
 * queues kernels (CUDA) lands in the phase of the kernel, not of the next
 * call that happens to wait.
 */
#ifndef KGPT_GPT2_PHASE_H
#define KGPT_GPT2_PHASE_H

#include "gpt2/gpt2.h"
#include "kgpt/proc.h"
#include "kernels/kernels.h"
#include "ra/kvprune.h"
#include "ra/rmlp.h"

/* The clock, after waiting for the backend when gpt2_phase_sync asks. */
static inline double phase_now(void)
{
	if (gpt2_phase_sync)
		kgpt_sync();
	return kgpt_now_s();
}

/* A call that returns nothing, timed into phase ph. */
#define PHASE_VOID(ph, call) ({						\
	double t0_ = phase_now();					\
	call;								\
	gpt2_phase_s[ph] += phase_now() - t0_;				\
})

/* A call that returns a value, timed into phase ph; yields the value. */
#define PHASE_VAL(ph, call) ({						\
	double t0_ = phase_now();					\
	__typeof__(call) r_ = (call);					\
	gpt2_phase_s[ph] += phase_now() - t0_;				\
	r_;								\
})

/* Linear layers; an R-MLP is two of them around its element-wise part. */
#define matmul_forward(...)	PHASE_VOID(GPT2_PH_MATMUL, matmul_forward(__VA_ARGS__))
#define matmul_backward(...)	PHASE_VOID(GPT2_PH_MATMUL, matmul_backward(__VA_ARGS__))
#define rmlp_forward(...)	PHASE_VOID(GPT2_PH_MATMUL, rmlp_forward(__VA_ARGS__))
#define rmlp_backward(...)	PHASE_VOID(GPT2_PH_MATMUL, rmlp_backward(__VA_ARGS__))

/* LM head with its softmax cross-entropy (three gemms per chunk). */
#define lm_head_forward(...)	PHASE_VOID(GPT2_PH_LMHEAD, lm_head_forward(__VA_ARGS__))
#define lm_head_forward_backward(...) \
	PHASE_VOID(GPT2_PH_LMHEAD, lm_head_forward_backward(__VA_ARGS__))

/* Attention, plain or pruned. */
#define attention_forward(...)	PHASE_VOID(GPT2_PH_ATTENTION, attention_forward(__VA_ARGS__))
#define attention_backward(...)	PHASE_VOID(GPT2_PH_ATTENTION, attention_backward(__VA_ARGS__))
#define kvprune_attention_forward(...) \
	PHASE_VAL(GPT2_PH_ATTENTION, kvprune_attention_forward(__VA_ARGS__))
#define kvprune_attention_backward(...) \
	PHASE_VAL(GPT2_PH_ATTENTION, kvprune_attention_backward(__VA_ARGS__))

/* Element-wise and row-wise kernels. */
#define encoder_forward(...)	PHASE_VOID(GPT2_PH_ELEMENTWISE, encoder_forward(__VA_ARGS__))
#define encoder_backward(...)	PHASE_VOID(GPT2_PH_ELEMENTWISE, encoder_backward(__VA_ARGS__))
#define layernorm_forward(...)	PHASE_VOID(GPT2_PH_ELEMENTWISE, layernorm_forward(__VA_ARGS__))
#define layernorm_backward(...)	PHASE_VOID(GPT2_PH_ELEMENTWISE, layernorm_backward(__VA_ARGS__))
#define gelu_forward(...)	PHASE_VOID(GPT2_PH_ELEMENTWISE, gelu_forward(__VA_ARGS__))
#define gelu_backward(...)	PHASE_VOID(GPT2_PH_ELEMENTWISE, gelu_backward(__VA_ARGS__))
#define residual_forward(...)	PHASE_VOID(GPT2_PH_ELEMENTWISE, residual_forward(__VA_ARGS__))
#define dropout_forward(...)	PHASE_VOID(GPT2_PH_ELEMENTWISE, dropout_forward(__VA_ARGS__))
#define dropout_backward(...)	PHASE_VOID(GPT2_PH_ELEMENTWISE, dropout_backward(__VA_ARGS__))

/* Optimizer: gradient norm, clipping, AdamW. */
#define sumsq(...)		PHASE_VAL(GPT2_PH_OPTIMIZER, sumsq(__VA_ARGS__))
#define scale_inplace(...)	PHASE_VOID(GPT2_PH_OPTIMIZER, scale_inplace(__VA_ARGS__))
#define adamw_update(...)	PHASE_VOID(GPT2_PH_OPTIMIZER, adamw_update(__VA_ARGS__))
#define adamw_spam_update(...)	PHASE_VAL(GPT2_PH_OPTIMIZER, adamw_spam_update(__VA_ARGS__))

#endif /* KGPT_GPT2_PHASE_H */
