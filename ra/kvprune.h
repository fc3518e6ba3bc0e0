/* SPDX-License-Identifier: MIT */
/*
 * KV-cache pruning: causal self-attention in which every (sequence,
 * layer, head) keeps at most k cached keys/values instead of the whole
 * context, with the same eviction rule in training, evaluation and
 * generation (docs/kv-pruning.md has the policy with a worked example,
 * the learned-budget relaxation and the memory arithmetic).
 *
 * Policy (one definition, used by every function here):
 *  1. Causal: the output at position i depends only on tokens <= i.
 *  2. Token i enters the cache at step i. If the cache then holds more
 *     than k entries, the least important entry outside the recency
 *     window is evicted; evicted entries never return. Then query i
 *     attends over the cache contents.
 *  3. Importance of a cached entry = the attention weight it has received
 *     from the queries since it entered (its own query included), divided
 *     by the number of those queries (exposure correction). At step i it
 *     counts queries up to i - 1, so the victim is chosen before query i
 *     attends. Ties: the older entry (smaller position) is evicted.
 *  4. The newest `recency` tokens (positions > i - recency) are never
 *     evicted; 1 <= recency < k.
 *  5. With k >= T nothing is evicted and the result is bit-identical to
 *     attention_forward()/attention_backward() (they are called).
 * "Attention weight received" is the weight with which the entry's value
 * enters the output, before dropout: the probability over the cached keys
 * in KV mode, the probability over all keys in V_ONLY mode (times the
 * soft mask in the learned relaxation). The rule is a variant of the
 * accumulated-attention "heavy hitter" eviction of H2O (Zhang et al.
 * 2023, "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of
 * Large Language Models"), which it is related to, not a reproduction
 * of: here the score is exposure-corrected, there is a fixed recency
 * window, and the model is trained under the same pruning.
 *
 * Because evicted entries never return, the keys kept for query i are
 * {j <= i : evict_step[j] > i}: one int per key and (b, layer, h)
 * describes every query's cache, (B,NH,T) ints per layer.
 *
 * Modes:
 *  KVPRUNE_KV      softmax over the kept keys; keys and values pruned.
 *  KVPRUNE_V_ONLY  one softmax over all keys <= i; out = sum over kept j
 *                  of p_j v_j (kept probabilities are not renormalised);
 *                  only values pruned, the key cache stays whole.
 *
 * Learned budget (cfg.soft = 1, training only): each layer has a keep
 * ratio rho. The cache runs with capacity k_max (hard evictions by the
 * rule above only beyond k_max) and at each query every evictable entry
 * gets a soft mask from its importance rank r (0 = most important; the
 * n_rec recency entries have mask 1 and count first):
 *     m = sigmoid((rho * block_size - n_rec - r - 0.5) / tau)
 * KV: p_j = m_j e^{s_j} / sum_l m_l e^{s_l}; V_ONLY: out = sum m_j p_j v_j.
 * rho * block_size = k puts the 0.5 crossing exactly between the k-th
 * and the (k+1)-th entry, where the hard rule with k cuts. Ranks are
 * piecewise constant in rho and held fixed for the derivative, which
 * flows through m only. Evaluation and generation use the hard rule with
 * k = kvprune_rho_to_k(rho, ...).
 *
 * Conventions are those of kernels/kernels.h: qkv (B,T,3C) packed
 * [q | k | v], head h uses channels h*hs..h*hs+hs-1, hs = C/NH, scale
 * 1/sqrt(hs); out (B,T,C); lse (B,NH,T); backward ACCUMULATES; OpenMP
 * inside (call from one thread); `real` is float32 (float64 under
 * -DKGPT_F64). Nothing here reads Kconfig. Errors are negative errno
 * values. The cache walks run on the host, on host memory: the training
 * functions' arrays are host copies (ra/kvprune_gpt2.c makes them), the
 * generation cache is host memory. The two exceptions call the backend
 * and take its memory: the hard backward (always) and the forward's
 * shortcut for k >= T, which the model runs itself.
 */
#ifndef KGPT_RA_KVPRUNE_H
#define KGPT_RA_KVPRUNE_H

#include <stddef.h>
#include <stdint.h>
#include "kgpt/real.h"
#include "kernels/kernels.h"	/* act_t */

enum kvprune_mode {
	KVPRUNE_KV = 0,		/* prune keys and values */
	KVPRUNE_V_ONLY = 1,	/* prune values only */
};

/* Default temperature of the soft mask, in ranks: about 4 ranks on each
 * side of the cut carry most of the gradient. */
#define KVPRUNE_TAU_DEFAULT	R(4.0)

/*
 * Configuration of one layer's pruning.
 *  mode        KVPRUNE_KV or KVPRUNE_V_ONLY.
 *  k           hard budget, entries per (sequence, head); >= 1.
 *  recency     newest tokens never evicted; 1 <= recency < k (hard) or
 *              < k_max (soft).
 *  soft        0: the hard rule with k. 1: the learned-budget relaxation
 *              (training only; k is not used).
 *  rho         soft: keep ratio, finite and > 0 (the model clamps it to
 *              [recency / block_size, 1], kvprune_clamp_rho()).
 *  block_size  soft: rho * block_size is the budget in entries; >= 1.
 *  k_max       soft: cache capacity, recency < k_max; block_size (no hard
 *              eviction below T) or a ceiling above rho * block_size.
 *  tau         soft: mask temperature in ranks, > 0 (KVPRUNE_TAU_DEFAULT).
 *  rank_digest soft, optional: (B*NH) hash of every rank used, written by
 *              the forward; equal digests mean equal ranks (used by the
 *              tests to hold the ranks fixed for finite differences).
 */
struct kvprune_cfg {
	enum kvprune_mode mode;
	int k;
	int recency;
	int soft;
	real rho;
	int block_size;
	int k_max;
	real tau;
	uint64_t *rank_digest;
};

/* 0 if cfg is valid (see struct kvprune_cfg), else -EINVAL: k < 1,
 * recency < 1, recency >= k (hard) or >= k_max (soft), unknown mode,
 * soft with block_size < 1, tau <= 0 or rho not finite and > 0. */
int kvprune_check(const struct kvprune_cfg *cfg);

/* Keep ratio clamped to [recency / block_size, 1] (returns it). */
real kvprune_clamp_rho(real rho, int recency, int block_size);

/* Hard budget for evaluation and generation from a learned ratio:
 * round(rho * block_size) clamped to [recency + 1, block_size] (so the
 * result is a valid k). block_size > recency >= 1. */
int kvprune_rho_to_k(real rho, int recency, int block_size);

/*
 * Pruned attention forward.
 * out: (B,T,C); lse: (B,NH,T) log-sum-exp of each query's scores over the
 * keys it normalises over (KV: kept keys, plus log m when soft; V_ONLY:
 * all keys <= i); evict_step: (B,NH,T) ints, evict_step[(b*NH+h)*T + j]
 * = the step (query position) at which key j left the cache, T if never;
 * qkv: (B,T,3C). Dropout p on the probabilities with the mask of
 * attention_forward() (element ((b*NH+h)*T + i)*T + j); importance is
 * accumulated before dropout. Hard mode with k >= T calls
 * attention_forward() and sets evict_step to T.
 * Hard mode is the backend's attention_forward_pruned(), on backend
 * memory (a block per (b, h) on a GPU); soft mode is host code on host
 * memory (ra/kvprune_gpt2.c stages the arrays).
 * Cost: O(B NH T min(T, k) hs) (V_ONLY and soft: O(B NH T^2 hs)), run as
 * one sequential cache walk per (b, h), parallel over (b, h). Returns 0,
 * -EINVAL (bad sizes or cfg) or -ENOMEM.
 */
int kvprune_attention_forward(real *out, real *lse, int *evict_step,
			      const real *qkv, int B, int T, int C, int NH,
			      float dropout_p, uint64_t dropout_seed,
			      const struct kvprune_cfg *cfg);

/*
 * Hard mode on the model's activations (act_t, kernels/kernels.h; backend
 * memory): the backend's attention_forward_pruned() and, with k >= T,
 * attention_backward(), else attention_backward_pruned(). Arguments as
 * kvprune_attention_forward() and _backward() below; cfg->soft must be 0.
 * Returns 0 or -EINVAL (bad cfg or sizes; the forward also -ENOMEM).
 * kvprune_attention_forward() and _backward() on real arrays take this
 * path in hard mode where act_t is real, and return -EINVAL for it with
 * bf16 activations.
 */
int kvprune_hard_forward(act_t *out, real *lse, int *evict_step, const act_t *qkv,
			 int B, int T, int C, int NH, float dropout_p, uint64_t dropout_seed,
			 const struct kvprune_cfg *cfg);
int kvprune_hard_backward(act_t *dqkv, const act_t *dout, const act_t *qkv,
			  const act_t *out, const real *lse, const int *evict_step, int B,
			  int T, int C, int NH, float dropout_p, uint64_t dropout_seed,
			  const struct kvprune_cfg *cfg);

/*
 * Pruned attention backward: dqkv (B,T,3C) += d(loss)/d(qkv) and, soft
 * only, *drho += d(loss)/d(rho) (drho may be NULL otherwise; it is then
 * not touched). dout: (B,T,C); qkv, out, lse, evict_step: what the
 * forward got and wrote, with the same dropout arguments and cfg.
 * The eviction decisions are not differentiable and are held fixed.
 * Hard: the backend's attention_backward_pruned() with the kept sets
 * from evict_step (k >= T: attention_backward(), bit-identical).
 * Soft: replays the cache walk of the forward per (b, h) (ranks and masks
 * are recomputed, nothing of size T^2 is stored) and differentiates each
 * query; the rho gradients of the (b, h) pairs are added in a fixed
 * order, so the result does not depend on the thread count.
 * Returns 0, -EINVAL or -ENOMEM.
 */
int kvprune_attention_backward(real *dqkv, real *drho, const real *dout,
			       const real *qkv, const real *out, const real *lse,
			       const int *evict_step, int B, int T, int C, int NH,
			       float dropout_p, uint64_t dropout_seed,
			       const struct kvprune_cfg *cfg);

/*
 * Generation cache of one layer for one sequence, hard rule only.
 * KV mode: every head holds at most cap = min(k, max_tokens) entries
 * (key, value, position, importance sum, query count), allocated at that
 * capacity. V_ONLY: the values likewise; the keys of all tokens, up to
 * max_tokens (the key cache is not pruned in that mode).
 * Entries live in slots; a new token takes the slot of the entry it
 * evicts. Keys and values are stored transposed (one row per channel,
 * one column per slot), so that scores and outputs run across slots.
 * The arrays are backend memory (kgpt_alloc(), kernels/kernels.h), so on
 * a GPU the cache never leaves the device; the step is the backend's
 * kv_cache_attend(). Host code reads the scalars; the arrays only through
 * kv_cache_len() or kgpt_download(). Change them only through the
 * functions below.
 */
struct kv_cache {
	enum kvprune_mode mode;
	int n_head, head_size, k, recency;
	int max_tokens;		/* tokens the cache accepts (block_size) */
	int cap;		/* value (and KV-mode key) slots per head */
	int kcap;		/* key slots per head: cap, or max_tokens */
	int t;			/* tokens seen = position of the next one */
	act_t *key;		/* (n_head, head_size, kcap): column = slot
				 * (V_ONLY: position); act_t (kernels/kernels.h) */
	act_t *val;		/* (n_head, head_size, cap): column = slot */
	int *pos;		/* (n_head, cap) position of each slot */
	real *imp;		/* (n_head, cap) accumulated attention weight */
	int *cnt;		/* (n_head, cap) queries that saw the entry */
	int *len;		/* (n_head) entries in use */
	real *scratch;		/* (n_head, kcap + cap) scores, weights */
	size_t kv_bytes;	/* bytes allocated for key and val */
	size_t bytes;		/* bytes allocated in all */
};

/*
 * Allocate an empty cache for a layer of n_embd channels in n_head heads
 * (n_embd % n_head == 0), accepting up to max_tokens tokens, with the hard
 * rule of cfg (cfg->soft must be 0). Returns 0, -EINVAL or -ENOMEM (then
 * nothing is left allocated).
 */
int kv_cache_init(struct kv_cache *c, int n_head, int n_embd, int max_tokens,
		  const struct kvprune_cfg *cfg);
void kv_cache_free(struct kv_cache *c);
/* Forget all tokens (a new sequence); keeps the allocation. */
void kv_cache_reset(struct kv_cache *c);

/* Entries in use in head h's cache (a download from backend memory). */
int kv_cache_len(const struct kv_cache *c, int h);

/*
 * One generation step at position c->t: for every head insert the new
 * token's key and value, evict per the policy, attend with its query and
 * write the output. q, k, v: (n_embd) each (the token's row of qkv,
 * split); out: (n_embd); all four backend memory. On the CPU backend
 * the arithmetic is that of kvprune_attention_forward() at the same
 * position, operation for operation, so teacher-forced and step-by-step
 * outputs are identical (no dropout here) - except with k >= T, where
 * the forward is attention_forward()'s blocked arithmetic and the two
 * agree to rounding (about 1e-7 relative in float32). On CUDA the kept
 * sets are the same up to near-ties of the importances, the outputs
 * equal to float32 rounding (tests/gpu/run.sh). Returns 0, or -ENOSPC
 * when c->t == max_tokens.
 */
int kv_cache_step(struct kv_cache *c, act_t *out, const act_t *q, const act_t *k,
		  const act_t *v);

/* Bytes allocated by kv_cache_init() (all arrays; c->bytes). */
size_t kv_cache_alloc_bytes(const struct kv_cache *c);

/*
 * Bytes of a KV cache holding `tokens` keys and values per layer and
 * sequence: 2 * n_layer * tokens * n_embd * bytes_per_elem * batch.
 * Full cache: tokens = T; KV-mode pruned: tokens = min(T, k).
 * E.g. GPT-2 124M in bf16: 2 * 12 * 768 * 2 = 36,864 bytes per token.
 */
size_t kv_cache_bytes(int n_layer, int n_embd, long tokens, int bytes_per_elem,
		      int batch);

/*
 * Same for a pruning mode at sequence length T and budget k:
 * KV:     2 * n_layer * min(T, k) * n_embd * bytes * batch;
 * V_ONLY: n_layer * (T + min(T, k)) * n_embd * bytes * batch (K whole).
 */
size_t kv_cache_bytes_mode(enum kvprune_mode mode, int n_layer, int n_embd,
			   long T, long k, int bytes_per_elem, int batch);

#endif /* KGPT_RA_KVPRUNE_H */
