/* SPDX-License-Identifier: MIT */
/*
 * The compiled-in configuration: every size of the model as a compile-time
 * constant, derived from the Kconfig header, and the build-time checks that
 * Kconfig cannot express. Every file of the trainer includes this first.
 */
#ifndef KGPT_GPT2_CONFIG_H
#define KGPT_GPT2_CONFIG_H

#include <generated/autoconf.h>
#include <generated/kgpt_config.h>
#include "kgpt/kconfig.h"

/* Combinations selectable in Kconfig that kgpt does not implement yet
 * (scripts/gen-config.sh refuses them at configuration time already). */
#if defined(KGPT_AMP_BF16) && !IS_ENABLED(CONFIG_BACKEND_CUDA)
#error "CONFIG_GPT2_AMP_DTYPE=\"bf16\": the CPU backend computes in fp32 only. Set it to \"fp32\" or choose the CUDA backend (make menuconfig, Backend)."
#endif
/* bf16 activations: the Makefile passes -DKGPT_ACT_BF16 to the model's
 * objects (ACT_CPPFLAGS); a file built without it would disagree with the
 * backend on act_t's size. The float64 gradient build stores reals. */
#if !defined(KGPT_F64) && defined(KGPT_AMP_BF16) != defined(KGPT_ACT_BF16)
#error "CONFIG_GPT2_AMP_DTYPE and -DKGPT_ACT_BF16 disagree: build through the Makefile (ACT_CPPFLAGS)"
#endif
#if IS_ENABLED(CONFIG_BACKEND_CUDA) && IS_ENABLED(CONFIG_DISTRIBUTED)
#error "CONFIG_DISTRIBUTED=y with CONFIG_BACKEND_CUDA=y: not supported yet (docs/cuda.md). Turn one of them off."
#endif

/* Model sizes (llm.c's single-letter names in comments). */
#define GPT2_L		CONFIG_GPT2_N_LAYER	/* L: blocks */
#define GPT2_NH		CONFIG_GPT2_N_HEAD	/* NH: heads */
#define GPT2_C		CONFIG_GPT2_N_EMBD	/* C: channels */
#define GPT2_HS		(GPT2_C / GPT2_NH)	/* hs: head size */
#define GPT2_MAXT	CONFIG_GPT2_BLOCK_SIZE	/* maxT: context */
#define GPT2_T		CONFIG_GPT2_BLOCK_SIZE	/* T: training sequence */
#define GPT2_B		CONFIG_BATCH_SIZE	/* B: micro-batch */
#define GPT2_N		(GPT2_B * GPT2_T)	/* N: rows per micro-batch */
#define GPT2_V		50257			/* V: GPT-2 vocabulary */
#define GPT2_VP		50304			/* Vp: padded to 128 */
#define GPT2_EOT	50256			/* <|endoftext|> */
#define GPT2_ACCUM	CONFIG_GPT2_GRADIENT_ACCUMULATION

#if IS_ENABLED(CONFIG_RMLP)
#define GPT2_DFF	(CONFIG_RMLP_EXPANSION * GPT2_C)	/* D_ff */
#else
#define GPT2_DFF	(4 * GPT2_C)
#endif

/*
 * R-MLP reciprocal width R_l of every layer, an initializer of int[GPT2_L]:
 * CONFIG_RMLP_R_FF_PER_LAYER (checked by scripts/gen-config.sh) or
 * CONFIG_RMLP_R_FF in every layer; all 0 without CONFIG_RMLP.
 */
#if defined(KGPT_RMLP_R_FF_LIST) && IS_ENABLED(CONFIG_RMLP)
#define GPT2_RMLP_R_LIST	KGPT_RMLP_R_FF_LIST
#elif IS_ENABLED(CONFIG_RMLP)
#define GPT2_RMLP_R_LIST	{ [0 ... GPT2_L - 1] = CONFIG_RMLP_R_FF }
#else
#define GPT2_RMLP_R_LIST	{ [0 ... GPT2_L - 1] = 0 }
#endif

#if IS_ENABLED(CONFIG_GPT2_BIAS)
#define GPT2_HAS_BIAS	1
#else
#define GPT2_HAS_BIAS	0
#endif

#define GPT2_DROPOUT	((float)CONFIG_GPT2_DROPOUT_F)
#define GPT2_LR		((float)CONFIG_LEARNING_RATE_F)
#define GPT2_WD		((float)CONFIG_WEIGHT_DECAY_F)
#define GPT2_BETA1	((float)CONFIG_ADAM_BETA1_F)
#define GPT2_BETA2	((float)CONFIG_ADAM_BETA2_F)
#define GPT2_EPS	((float)CONFIG_ADAM_EPS_F)
#define GPT2_CLIP	((float)CONFIG_GRAD_CLIP_F)
#if IS_ENABLED(CONFIG_GPT2_DECAY_LR)
#define GPT2_MIN_LR	((float)CONFIG_GPT2_MIN_LR_F)
#else
#define GPT2_MIN_LR	GPT2_LR
#endif

_Static_assert(GPT2_C % GPT2_NH == 0, "CONFIG_GPT2_N_EMBD must be a multiple of CONFIG_GPT2_N_HEAD");
#if IS_ENABLED(CONFIG_BACKEND_CUDA)
_Static_assert(GPT2_HS == 8 || GPT2_HS == 16 || GPT2_HS == 32 || GPT2_HS == 64,
	       "CONFIG_GPT2_N_EMBD / CONFIG_GPT2_N_HEAD: the CUDA attention kernels take head sizes 8, 16, 32, 64");
#endif
#if IS_ENABLED(CONFIG_RMLP)
_Static_assert(CONFIG_RMLP_R_FF >= 1 && CONFIG_RMLP_R_FF < GPT2_DFF,
	       "CONFIG_RMLP_R_FF must be in 1 .. D_ff - 1 (D_ff = CONFIG_RMLP_EXPANSION * n_embd)");
#endif
#if IS_ENABLED(CONFIG_RA)
_Static_assert(CONFIG_RA_R >= 1 && CONFIG_RA_R < GPT2_HS,
	       "CONFIG_RA_R must be in 1 .. n_embd / n_head - 1");
#endif
#if IS_ENABLED(CONFIG_KV_CACHE_PRUNE)
_Static_assert(CONFIG_KV_PRUNE_K >= 1 && CONFIG_KV_PRUNE_K <= GPT2_MAXT,
	       "CONFIG_KV_PRUNE_K must be in 1 .. CONFIG_GPT2_BLOCK_SIZE");
_Static_assert(CONFIG_KV_PRUNE_RECENCY >= 1 && CONFIG_KV_PRUNE_RECENCY < CONFIG_KV_PRUNE_K,
	       "CONFIG_KV_PRUNE_RECENCY must be in 1 .. CONFIG_KV_PRUNE_K - 1");
#endif

#endif /* KGPT_GPT2_CONFIG_H */
