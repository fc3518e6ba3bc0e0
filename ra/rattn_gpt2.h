/* SPDX-License-Identifier: MIT */
/*
 * Reciprocal Attention (ra/rattn.h, docs/reciprocal-attention.md) inside
 * the GPT-2 model and trainer: the hooks gpt2/gpt2.c and gpt2/report.c
 * call unconditionally. With CONFIG_RA they are ra/rattn_gpt2.c and
 * ra/rattn_report.c; without it the inline no-ops below, and none of the
 * RA code is compiled in.
 *
 * Tensors: P_RA_W_STD and P_RA_W_REC hold GPT2_RA_GATES values per layer
 * (n_head with CONFIG_RA_PER_HEAD_GATES, else 1), P_RA_ALPHA n_head per
 * layer with CONFIG_RA_SELF_RESTART. Included by gpt2/gpt2.h after
 * struct gpt2.
 */
#ifndef KGPT_RA_RATTN_GPT2_H
#define KGPT_RA_RATTN_GPT2_H

#include "gpt2/config.h"
#include "ra/rattn.h"

struct gpt2;
struct train;
struct cJSON;

#if IS_ENABLED(CONFIG_RA)
#define GPT2_RA_R	CONFIG_RA_R
#define GPT2_RA_GATES	(IS_ENABLED(CONFIG_RA_PER_HEAD_GATES) ? GPT2_NH : 1)
#else
#define GPT2_RA_R	0
#define GPT2_RA_GATES	0
#endif

#if IS_ENABLED(CONFIG_RA)
/* Layer l's q and k in its qkv (N, 3C) scaled in place by sqrt(w_std),
 * sqrt(w_rec) (rattn_scale_forward()); after the qkv matmul, before the
 * attention. N <= GPT2_N rows (1 in generation). */
void gpt2_ra_qk_forward(struct gpt2 *m, int l, int N);

/* Backward of that, after the attention's: m->dqkv (N, 3C) from d/d q',
 * k' to d/d q, k in place; the layer's w_std, w_rec gradients +=. */
void gpt2_ra_qk_backward(struct gpt2 *m, int l, int N);

/* Self-restart of layer l: atto (N, C) = (1 - alpha) atty + alpha v. A
 * no-op without CONFIG_RA_SELF_RESTART (atto is then atty). */
void gpt2_ra_out_forward(struct gpt2 *m, int l, int N);

/* Its backward, before the attention's: m->datty holds d/d atto on entry
 * and d/d atty on return; m->dqkv's value part += alpha d/d atto; the
 * layer's alpha gradients +=. */
void gpt2_ra_out_backward(struct gpt2 *m, int l, int N);

/* Geometric init w_std = (D - R) / D, w_rec = R / D, alpha = 0.05. No
 * random draws: every other tensor equals a baseline model's of the
 * same seed. */
void gpt2_ra_init(struct gpt2 *m);

/* w_std, w_rec >= RATTN_W_MIN; alpha into [0, RATTN_ALPHA_MAX]. */
void gpt2_ra_clamp(struct gpt2 *m);

/* After loading a baseline checkpoint's parameters (--init-from, never
 * on a resume): every layer's q/k projection repacked (rattn_repack()).
 * Returns 1 when it repacked, for the trainer's message. */
int gpt2_ra_from_baseline(struct gpt2 *m);

/* ra/rattn_report.c: the start-up line, metrics.jsonl / summary.json
 * fields (means: the layer means too) and the console summary. */
void ra_report_header(void);
void ra_report_json(struct train *tr, struct cJSON *obj, int means);
void ra_report_summary(struct train *tr);
#else
static inline void gpt2_ra_qk_forward(struct gpt2 *m, int l, int N) { }
static inline void gpt2_ra_qk_backward(struct gpt2 *m, int l, int N) { }
static inline void gpt2_ra_out_forward(struct gpt2 *m, int l, int N) { }
static inline void gpt2_ra_out_backward(struct gpt2 *m, int l, int N) { }
static inline void gpt2_ra_init(struct gpt2 *m) { }
static inline void gpt2_ra_clamp(struct gpt2 *m) { }
static inline int gpt2_ra_from_baseline(struct gpt2 *m) { return 0; }
static inline void ra_report_header(void) { }
static inline void ra_report_json(struct train *tr, struct cJSON *obj, int means) { }
static inline void ra_report_summary(struct train *tr) { }
#endif

#endif /* KGPT_RA_RATTN_GPT2_H */
