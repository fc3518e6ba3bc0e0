/* SPDX-License-Identifier: MIT */
/*
 * The parts of AdamW-SPAM (Huang et al. 2025, "SPAM: Spike-Aware Adam
 * with Momentum Reset for Stable LLM Training") that are not the update
 * kernels (adamw_spam_update() and spam_soft_reset(), the soft reset a
 * spike triggers, in kernels/kernels.h): spike detection on the global
 * gradient norm, the periodic reset's schedule and its learning-rate
 * ramp. No Kconfig here: every setting is an argument; gpt2/optim.c
 * passes the CONFIG_SPAM_* values.
 */
#ifndef KGPT_SPAM_H
#define KGPT_SPAM_H

#include <stddef.h>
#include <stdint.h>

#define SPAM_HISTORY	 100	/* gradient norms kept for spike detection */
#define SPAM_MIN_HISTORY 10	/* norms needed before spikes are detected */

/* SPAM's counters and norm history; on disk as is (int32 / float32). */
struct spam_state {
	float norms[SPAM_HISTORY];	/* ring of the last finite global norms */
	int32_t n_norms;		/* entries of norms[] filled, <= SPAM_HISTORY */
	int32_t head;			/* where the next norm goes */
	int32_t spikes;			/* spike events (soft resets) so far */
	int32_t resets;			/* periodic resets so far */
	int32_t last_spike;		/* step of the last spike, 0 if none */
	int32_t pad;
	int64_t clipped;		/* gradient elements clipped so far */
};

/*
 * Spike test of the global gradient norm `norm` of step `step`: once at
 * least SPAM_MIN_HISTORY finite norms are recorded, its z-score against
 * them (mean and population standard deviation of the last up to
 * SPAM_HISTORY, in double) above `threshold` is a spike: s->spikes++,
 * s->last_spike = step, returns 1. A finite norm is then recorded (a
 * spike's too); a non-finite one is neither tested nor recorded.
 * Returns 0 when no spike (also when the deviation is 0).
 */
int spam_spike(struct spam_state *s, float norm, double threshold, int step);

/*
 * Learning-rate factor k optimizer steps after a periodic reset (k = 0:
 * the step of the reset itself) with a ramp of `steps` steps: the cosine
 * 1 - 0.99 (1 + cos(pi k / steps)) / 2, from 0.01 at k = 0 up to 1;
 * 1 for k >= steps, k < 0 or steps <= 0.
 */
float spam_ramp(int k, int steps);

/*
 * Steps since the last periodic reset for optimizer step t (1-based)
 * with resets at every multiple of interval: t mod interval; -1 before
 * the first reset (t < interval) or without resets (interval <= 0).
 */
int spam_since_reset(int t, int interval);

#endif /* KGPT_SPAM_H */
