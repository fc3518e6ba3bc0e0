/* SPDX-License-Identifier: MIT */
/*
 * KV-cache pruning (ra/kvprune.h) inside the GPT-2 model and trainer:
 * the hooks gpt2/gpt2.c and gpt2/report.c call unconditionally. With
 * CONFIG_KV_CACHE_PRUNE they are ra/kvprune_gpt2.c and
 * ra/kvprune_report.c; without it they are the inline no-ops below and
 * none of the pruning code is compiled in.
 *
 * Hard rule with k = CONFIG_KV_PRUNE_K; with CONFIG_KV_PRUNE_LEARNED,
 * training runs the soft relaxation with the layer's keep ratio rho
 * (P_KV_RHO), evaluation and generation the hard rule with
 * k = kvprune_rho_to_k(rho) (docs/kv-pruning.md).
 */
#ifndef KGPT_RA_KVPRUNE_GPT2_H
#define KGPT_RA_KVPRUNE_GPT2_H

#include <stdint.h>
#include "gpt2/config.h"
#include "ra/kvprune.h"

struct gpt2;
struct train;
struct cJSON;

#if IS_ENABLED(CONFIG_KV_CACHE_PRUNE)
/* KV-cache budget k of layer l in evaluation and generation, tokens per
 * (sequence, head): CONFIG_KV_PRUNE_K, or with CONFIG_KV_PRUNE_LEARNED
 * kvprune_rho_to_k() of the layer's rho. Without KV pruning GPT2_MAXT
 * (nothing is evicted). */
int gpt2_kv_budget(const struct gpt2 *m, int l);

/*
 * Pruned attention of layer l over the (B,T) batch: layer l's qkv ->
 * atty, att_lse, kv_evict, with dropout p (mask seed). Returns 1 when
 * it ran; 0 in an evaluation with m->kv_full (the model then attends over
 * every key). A kernel failure is reported and poisons atty with NaN.
 */
int gpt2_kv_attn_forward(struct gpt2 *m, int l, int B, int T, float p, uint64_t seed);

/* Its backward: m->dqkv += d/d qkv from m->datty (learned budget: the
 * layer's rho gradient += too). Returns 1 (0 never: training prunes). */
int gpt2_kv_attn_backward(struct gpt2 *m, int l, int B, int T, float p, uint64_t seed);

/* Learned budget: m->kv_aux_loss = lambda * mean(rho), and
 * grad_scale * lambda / n_layer into every rho's gradient. */
void gpt2_kv_aux_loss(struct gpt2 *m, float grad_scale);

/* Learned budget: every rho = CONFIG_KV_PRUNE_INIT_RATIO, clamped. */
void gpt2_kv_init(struct gpt2 *m);

/* Learned budget: rho into [recency / block_size, 1]. */
void gpt2_kv_clamp(struct gpt2 *m);

/* The hard rule of layer l for the generation cache (kv_cache_init()). */
struct kvprune_cfg gpt2_kv_gen_cfg(const struct gpt2 *m, int l);

/* ra/kvprune_report.c: the trainer's outputs. Start-up lines (policy and
 * the memory table), metrics.jsonl / summary.json fields (summary: also
 * the cache bytes), the console summary. */
void kv_report_header(struct train *tr);
void kv_report_json(struct train *tr, struct cJSON *obj, int summary);
void kv_report_summary(struct train *tr);
#else
static inline int gpt2_kv_budget(const struct gpt2 *m, int l)
{
	return GPT2_MAXT;
}

static inline int gpt2_kv_attn_forward(struct gpt2 *m, int l, int B, int T, float p,
				       uint64_t seed)
{
	return 0;
}

static inline int gpt2_kv_attn_backward(struct gpt2 *m, int l, int B, int T, float p,
					uint64_t seed)
{
	return 0;
}

static inline void gpt2_kv_aux_loss(struct gpt2 *m, float grad_scale) { }
static inline void gpt2_kv_init(struct gpt2 *m) { }
static inline void gpt2_kv_clamp(struct gpt2 *m) { }

/* A budget above block_size: the generation cache never evicts. */
static inline struct kvprune_cfg gpt2_kv_gen_cfg(const struct gpt2 *m, int l)
{
	struct kvprune_cfg c = { .mode = KVPRUNE_KV, .k = GPT2_MAXT + 1, .recency = 1 };

	return c;
}

static inline void kv_report_header(struct train *tr) { }
static inline void kv_report_json(struct train *tr, struct cJSON *obj, int summary) { }
static inline void kv_report_summary(struct train *tr) { }
#endif

#endif /* KGPT_RA_KVPRUNE_GPT2_H */
