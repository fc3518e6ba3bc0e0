/* SPDX-License-Identifier: MIT */
/*
 * GPT-2 (Radford et al. 2019) specialised at compile time by gpt2/config.h.
 *
 * Parameters live in one allocation, sliced into named tensors by a table
 * (gpt2_tensor_info); the first GPT2_LLMC_TENSORS are llm.c's layout in
 * llm.c's order, so the float32 checkpoint is one write. Activations live
 * in a second allocation planned once; per step only the attention
 * kernels allocate their scratch (per call, per thread).
 * Backward keeps gradients of one layer's activations at a time.
 *
 * Memory is the compute backend's (kernels/kernels.h): parameters,
 * gradients and the optimizer moments are shared memory, which host code
 * (initialisation, checkpoints, reports) touches only between
 * gpt2_sync_for_host() and gpt2_sync_for_backend(); the activations are
 * backend memory, which only kernels touch.
 */
#ifndef KGPT_GPT2_H
#define KGPT_GPT2_H

#include <stddef.h>
#include <stdint.h>
#include "gpt2/config.h"
#include "kgpt/real.h"
#include "kernels/kernels.h"	/* act_t */
#include "gpt2/optim.h"
#include "ra/kvprune.h"

enum gpt2_tensor {
	/* llm.c's 16 tensors, in its order (checkpoint format 20240326) */
	P_WTE, P_WPE, P_LN1W, P_LN1B, P_QKVW, P_QKVB, P_ATTPROJW, P_ATTPROJB,
	P_LN2W, P_LN2B, P_FCW, P_FCB, P_FCPROJW, P_FCPROJB, P_LNFW, P_LNFB,
	/* kgpt's own, saved in the kgpt state file */
	P_LMHEAD,	/* (Vp, C) untied head; empty with weight tying */
	P_MIXW,		/* R-MLP mixer, per layer (R_l, R_l) */
	P_W_STD,	/* R-MLP w_std (L) */
	P_W_REC,	/* R-MLP w_rec (L) */
	P_GATE_ALPHA,	/* R-MLP gate_alpha (L) */
	P_KV_RHO,	/* KV pruning learned keep ratio rho (L) */
	P_RA_W_STD,	/* RA w_std (L) or per head (L,NH) */
	P_RA_W_REC,	/* RA w_rec (L) or per head (L,NH) */
	P_RA_ALPHA,	/* RA self-restart alpha (L,NH) */
	GPT2_NUM_TENSORS
};
#define GPT2_LLMC_TENSORS	16

struct gpt2_tensor_info {
	const char *name;	/* PyTorch-style short name, e.g. "qkvw" */
	size_t size;		/* elements; 0 when the configuration has none */
	size_t offset;		/* into gpt2.params */
	int decay;		/* 1: a 2-D weight matrix, weight-decayed */
};

/* Saved activations of one block (pointers into gpt2.acts); act_t is
 * the activations' storage type (kernels/kernels.h), the statistics are
 * real. */
struct gpt2_layer_acts {
	act_t *ln1;				/* (N,C) */
	real *ln1_mean, *ln1_rstd;		/* (N), (N) */
	act_t *qkv;				/* (N,3C) */
	act_t *atty;				/* (N,C) attention output */
	act_t *atto;				/* (N,C) attproj input: atty, or with RA
						 * self-restart the mix with v */
	real *att_lse;				/* (B,NH,T) row log-sum-exp */
	int *kv_evict;				/* (B,NH,T) KV pruning: eviction step */
	act_t *res2;				/* (N,C) x + attention branch */
	act_t *ln2;				/* (N,C) */
	real *ln2_mean, *ln2_rstd;		/* (N), (N) */
	act_t *fch;				/* (N,D_ff) MLP pre-activation; NULL with R-MLP */
	act_t *mlp_saved;			/* R-MLP: N * rmlp_saved_per_row(); else NULL */
	act_t *res3;				/* (N,C) block output */
};

struct gpt2 {
	struct gpt2_tensor_info tensors[GPT2_NUM_TENSORS];
	real *params;		/* num_params */
	real *grads;		/* num_params */
	struct gpt2_optim opt;	/* optimizer state (gpt2/optim.h) */
	size_t num_params;	/* all, including the padded vocabulary rows */
	size_t num_trainable;	/* excluding padded rows (the reported count) */

	void *acts;		/* one allocation for everything below */
	size_t acts_bytes;
	int *inputs, *targets;	/* (B,T) copies of the current batch */
	act_t *encoded;		/* (N,C) embeddings = input of block 0 */
	struct gpt2_layer_acts layer[GPT2_L];
	act_t *lnf;
	real *lnf_mean, *lnf_rstd;
	real *losses;		/* (N) per-token loss */
	/* backward scratch, one layer at a time */
	act_t *dres, *dln, *dqkv, *datty, *dfch, *dh, *branch;
	real *lm_scratch;	/* the LM head's logits, LM_CHUNK (gpt2.c) x Vp */
	int lm_chunk;
	real *host;		/* host memory: staging for losses and logits */
	real *kv_host;		/* learned KV budget: host copies for the soft walk
				 * (ra/kvprune_gpt2.c), KV_HOST_N (gpt2.c) reals; NULL without */

	int step;		/* optimizer steps taken (AdamW t; gpt2_update() counts) */
	real kv_aux_loss;	/* lambda * mean(rho) of the last forward */
	int training;		/* the forward in progress is a training one */
	int kv_full;		/* KV pruning: 1 = gpt2_forward() attends over
				 * all keys (comparison); training ignores it */
};

/* Tensor t of the parameters / gradients. */
static inline real *gpt2_param(struct gpt2 *m, enum gpt2_tensor t)
{
	return m->params + m->tensors[t].offset;
}

/* Frozen tensors: the LayerNorm biases of a model configured without
 * biases. They stay 0: no gradient, no update. */
static inline int gpt2_tensor_frozen(int t)
{
	return !GPT2_HAS_BIAS && (t == P_LN1B || t == P_LN2B || t == P_LNFB);
}

static inline real *gpt2_grad(struct gpt2 *m, enum gpt2_tensor t)
{
	return m->grads + m->tensors[t].offset;
}

/* Allocate everything and initialise as GPT-2 does: weights N(0, 0.02),
 * residual output projections N(0, 0.02/sqrt(2 n_layer)), biases 0,
 * LayerNorm gains 1, R-MLP gates at geometric init, padded vocabulary rows
 * 0. Returns 0 or -ENOMEM (with a message giving the bytes asked for). */
int gpt2_init(struct gpt2 *m, uint64_t seed);
void gpt2_free(struct gpt2 *m);

/* Host code is about to read or write m's parameters, gradients or
 * optimizer moments (checkpoints, reports, broadcasts): wait for the
 * kernels queued before (kgpt_sync_for_host() on each array). */
void gpt2_sync_for_host(const struct gpt2 *m);
/* ... and is done with them: kernels may use them again. */
void gpt2_sync_for_backend(const struct gpt2 *m);

/* Evaluation forward (no dropout) of inputs (B,T) ids, B <= GPT2_B,
 * T <= GPT2_T. With targets (B,T): returns the mean cross-entropy in nats
 * and fills m->losses; without (NULL): returns 0 and leaves m->lnf ready
 * for gpt2_logits(). KV pruning: the hard rule with gpt2_kv_budget(), or
 * full attention when m->kv_full is set. */
double gpt2_forward(struct gpt2 *m, const int *inputs, const int *targets,
		    int B, int T);

/* Mean gpt2_forward() loss over the first `batches` batches of dl (reset
 * first; fewer if it has fewer), using inputs and targets (GPT2_B,
 * GPT2_T) as buffers. *used gets the batches evaluated; NAN if none. */
struct dataloader;
double gpt2_eval_loss(struct gpt2 *m, struct dataloader *dl, int batches, int *inputs,
		      int *targets, int *used);
/* The part of it for data-parallel rank `part` of `parts`: the SUM of the
 * losses of batches i with i mod parts == part (the others are skipped
 * unread), their count in *used. */
double gpt2_eval_loss_part(struct gpt2 *m, struct dataloader *dl, int batches, int part,
			   int parts, int *inputs, int *targets, int *used);

/* Training micro-batch: forward with dropout (masks from dropout_seed) and
 * backward of loss * grad_scale, ACCUMULATING into m->grads. inputs and
 * targets are (GPT2_B, GPT2_T). Returns the mean cross-entropy (without
 * auxiliary losses: KV pruning's lambda * mean(rho) is left in
 * m->kv_aux_loss, its gradient accumulated with the rest). */
double gpt2_forward_backward(struct gpt2 *m, const int *inputs,
			     const int *targets, float grad_scale,
			     uint64_t dropout_seed);

/* Logits (Vp) of row `row` of the last gpt2_forward() without targets. */
void gpt2_logits(struct gpt2 *m, int row, float *logits);


/*
 * Incremental generation of one sequence: one KV cache per layer
 * (ra/kvprune.h), holding min(t, gpt2_kv_budget(m, l)) tokens per head
 * with KV pruning (the policy of training, hard rule) and every token
 * without it. Bytes: kv_cache_alloc_bytes() of each cache.
 */
struct gpt2_gen {
	struct kv_cache cache[GPT2_L];
	int t;			/* tokens fed = position of the next one */
};

/* Allocate the caches for model m (its learned budgets are read now).
 * Returns 0, -ENOMEM or -EINVAL (nothing left allocated). */
int gpt2_gen_init(struct gpt2_gen *g, const struct gpt2 *m);
void gpt2_gen_free(struct gpt2_gen *g);
/* Forget the sequence (keeps the allocation). */
void gpt2_gen_reset(struct gpt2_gen *g);
/* Bytes allocated by the caches: all arrays (kv_cache_alloc_bytes()
 * summed), and with kv_only the key and value arrays alone. */
size_t gpt2_gen_bytes(const struct gpt2_gen *g, int kv_only);

/*
 * Feed token `token` at position g->t: embedding, every block through
 * its KV cache (kv_cache_step()) and the MLP path of training
 * (N = 1), final LayerNorm; with logits (Vp floats, may be NULL to skip
 * the LM head) the next-token logits. Teacher-forced gpt2_forward() gives
 * the same logits up to the rounding of the matmuls (tested to 1e-5).
 * Uses row 0 of m's activations: a previous gpt2_forward()'s results are
 * overwritten. Returns 0, -EINVAL (token outside [0, V)) or -ENOSPC (the
 * context holds GPT2_MAXT tokens already).
 */
int gpt2_step(struct gpt2 *m, struct gpt2_gen *g, int token, float *logits);

/* Put parameters that have a valid range back into it: KV pruning's
 * learned rho into [recency / block_size, 1] (kvprune_clamp_rho()), RA's
 * w_std, w_rec >= 1e-4 and alpha into [0, 0.5] (rattn_clamp()). Nothing
 * to do in other configurations. */
void gpt2_clamp_params(struct gpt2 *m);

/* Model FLOPs per token for forward + backward: 6 * (matmul parameters,
 * R-MLP mixers included; no recomputation counted) +
 * attention 12 * L * C * T (Kaplan et al. 2020, PaLM appendix B). */
double gpt2_flops_per_token(void);

/* Bytes of parameters, gradients, optimizer state and activations. */
size_t gpt2_bytes(const struct gpt2 *m);

/*
 * Seconds spent in each phase of the model, summed over every call since
 * the program started or the caller last zeroed the array: each kernel
 * call of gpt2.c is timed into the phase of its kernel (gpt2/phase.h).
 * For benchmarks (train_gpt2 --bench); reading it costs nothing.
 */
enum gpt2_phase {
	GPT2_PH_MATMUL,		/* linear layers (and R-MLP) */
	GPT2_PH_LMHEAD,		/* LM head + cross-entropy */
	GPT2_PH_ATTENTION,	/* attention (and KV pruning) */
	GPT2_PH_ELEMENTWISE,	/* embeddings, LayerNorm, GELU, residual, dropout */
	GPT2_PH_OPTIMIZER,	/* gradient norm, clipping, AdamW */
	GPT2_NUM_PHASES
};
extern double gpt2_phase_s[GPT2_NUM_PHASES];
/* Nonzero: every timed call waits for the backend first and after
 * (kgpt_sync()), so that a backend that queues kernels is timed per
 * phase; 0 (the default): no waiting. */
extern int gpt2_phase_sync;
extern const char *const gpt2_phase_name[GPT2_NUM_PHASES];

/* The mechanisms of ra/: their hooks, inline no-ops when they are off. */
#include "ra/rmlp_gpt2.h"
#include "ra/rattn_gpt2.h"
#include "ra/kvprune_gpt2.h"

#endif /* KGPT_GPT2_H */
