// SPDX-License-Identifier: MIT
/*
 * AdamW-SPAM's spike detection and reset schedule (gpt2/spam.h); the soft
 * reset of the moments is a kernel (spam_soft_reset(), kernels/kernels.h).
 */
#include <math.h>

#include "gpt2/spam.h"

int spam_spike(struct spam_state *s, float norm, double threshold, int step)
{
	double sum = 0, sq = 0, mean, sd;
	int spike = 0;

	if (!isfinite(norm))
		return 0;
	if (s->n_norms >= SPAM_MIN_HISTORY) {
		for (int i = 0; i < s->n_norms; i++)
			sum += s->norms[i];
		mean = sum / s->n_norms;
		for (int i = 0; i < s->n_norms; i++)
			sq += (s->norms[i] - mean) * (s->norms[i] - mean);
		sd = sqrt(sq / s->n_norms);
		if (sd > 0 && (norm - mean) / sd > threshold) {
			spike = 1;
			s->spikes++;
			s->last_spike = step;
		}
	}
	s->norms[s->head] = norm;
	s->head = (s->head + 1) % SPAM_HISTORY;
	if (s->n_norms < SPAM_HISTORY)
		s->n_norms++;
	return spike;
}

float spam_ramp(int k, int steps)
{
	if (steps <= 0 || k < 0 || k >= steps)
		return 1.0f;
	return (float)(1.0 - 0.99 * (1.0 + cos(M_PI * k / steps)) / 2.0);
}

int spam_since_reset(int t, int interval)
{
	if (interval <= 0 || t < interval)
		return -1;
	return t % interval;
}
