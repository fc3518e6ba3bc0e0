// SPDX-License-Identifier: MIT
/*
 * AdamW-SPAM's pieces (gpt2/spam.h, adamw_spam_update()) on small cases
 * computed by hand: the spike test and its soft reset, the reset schedule,
 * the LR ramp, the spike-aware clipping threshold and AMSGrad's maximum.
 */
#include <math.h>
#include <string.h>
#include "tests/tap.h"
#include "gpt2/spam.h"
#include "kernels/kernels.h"

/* Ten norms alternating 1 and 3: mean 2, standard deviation 1. */
static void ten_norms(struct spam_state *s)
{
	memset(s, 0, sizeof(*s));
	for (int i = 0; i < 10; i++)
		spam_spike(s, i % 2 ? 3.0f : 1.0f, 2.0, i + 1);
}

static void test_spike(void)
{
	struct spam_state s;
	float m[2] = { 2.0f, -1.0f }, v[2] = { 1.0f, 0.5f }, vmax[2] = { 2.0f, 1.0f };
	int n;

	memset(&s, 0, sizeof(s));
	for (n = 0; n < 9; n++)
		spam_spike(&s, n % 2 ? 3.0f : 1.0f, 2.0, n + 1);
	ok(!spam_spike(&s, 1000.0f, 2.0, 10) && s.spikes == 0,
	   "no spike test before 10 norms are recorded (norm 1000 after 9)");
	ten_norms(&s);
	ok(s.n_norms == 10 && s.spikes == 0, "10 norms recorded, no spike among them");
	ok(!spam_spike(&s, 3.9f, 2.0, 11), "norm 3.9: z = 1.9, not a spike at threshold 2");
	ten_norms(&s);
	ok(spam_spike(&s, 4.5f, 2.0, 11) && s.spikes == 1 && s.last_spike == 11,
	   "norm 4.5: z = 2.5 > 2, one spike, at step 11");
	ok(!spam_spike(&s, 2.0f, 2.0, 12) && s.spikes == 1,
	   "the next, ordinary norm is none: exactly one spike event");
	ok(!spam_spike(&s, NAN, 2.0, 13) && s.n_norms == 12 && s.spikes == 1,
	   "a NaN norm is neither a spike nor recorded");
	for (int i = 0; i < 200; i++)
		spam_spike(&s, 1.0f, 2.0, 14 + i);
	ok(s.n_norms == SPAM_HISTORY, "the history holds the last %d norms", SPAM_HISTORY);
	spam_soft_reset(m, v, vmax, 2);
	ok(m[0] == 1.0f && m[1] == -0.5f && v[0] == 0.9f && v[1] == 0.45f &&
	   vmax[0] == 1.8f && vmax[1] == 0.9f,
	   "the soft reset halves m and multiplies v and vmax by 0.9");
}

static void test_schedule(void)
{
	static const float want[5] = { 0.01f, 0.15498f, 0.505f, 0.85502f, 1.0f };

	ok(spam_since_reset(999, 1000) == -1 && spam_since_reset(1000, 1000) == 0 &&
	   spam_since_reset(1003, 1000) == 3 && spam_since_reset(2000, 1000) == 0 &&
	   spam_since_reset(5, 0) == -1,
	   "resets at steps 1000, 2000 (interval 1000); none before, none with interval 0");
	for (int k = 0; k < 5; k++)
		is_close(spam_ramp(k, 4), want[k], 1e-5, "ramp of 4 steps");
	ok(spam_ramp(-1, 4) == 1.0f && spam_ramp(3, 0) == 1.0f, "no ramp outside one");
}

static void test_update(void)
{
	/* theta 50, v 0.02: the limit is sqrt(50 * 0.02) = 1 */
	float p[3] = { 0, 0, 0 }, g[3] = { 3.0f, -0.5f, 5.0f };
	float m[3] = { 0, 0, 0 }, v[3] = { 0.02f, 0.02f, 0.0f }, vmax[3] = { 0, 0, 0 };
	size_t c = adamw_spam_update(p, g, m, v, vmax, 3, 0.0f, 0.9f, 0.5f, 0.0f, 0.0f, 1, 50.0f);

	ok(c == 1, "one element clipped (3 > sqrt(50 * 0.02) = 1)");
	is_close(m[0], 0.1, 1e-6, "m of the clipped element: 0.1 * 1");
	is_close(m[1], -0.05, 1e-6, "m of -0.5 (within the limit): 0.1 * -0.5");
	is_close(m[2], 0.5, 1e-6, "v = 0 (no estimate yet): 5 not clipped, m = 0.5");
	memset(m, 0, sizeof(m));
	v[0] = 0.02f;
	c = adamw_spam_update(p, g, m, v, vmax, 1, 0.0f, 0.9f, 0.5f, 0.0f, 0.0f, 1, 0.0f);
	ok(c == 0 && fabsf(m[0] - 0.3f) < 1e-7f, "theta 0: no clipping (m = 0.1 * 3)");

	/* AMSGrad: b1 = b2 = 0.5, t = 1 (c1 = c2 = 2), g = 0, m 0.2, v 1, vmax 4 */
	p[0] = 1.0f, g[0] = 0.0f, m[0] = 0.2f, v[0] = 1.0f, vmax[0] = 4.0f;
	adamw_spam_update(p, g, m, v, vmax, 1, 0.1f, 0.5f, 0.5f, 0.0f, 0.0f, 1, 0.0f);
	ok(v[0] == 0.5f && vmax[0] == 4.0f, "v falls to 0.5, vmax keeps its maximum 4");
	is_close(p[0], 1.0 - 0.1 * (0.1 * 2 / sqrt(4.0 * 2)), 1e-6,
		 "the step divides by sqrt(vmax c2), not sqrt(v c2)");
	g[0] = 2.0f, v[0] = 1.0f, vmax[0] = 0.5f;
	adamw_spam_update(p, g, m, v, vmax, 1, 0.0f, 0.5f, 0.5f, 0.0f, 0.0f, 1, 0.0f);
	ok(v[0] == 2.5f && vmax[0] == 2.5f, "a larger v (0.5 + 0.5 * 4 = 2.5) becomes the maximum");
}

int main(void)
{
	test_spike();
	test_schedule();
	test_update();
	return tap_done();
}
