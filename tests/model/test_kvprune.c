// SPDX-License-Identifier: MIT
/*
 * KV-cache pruning at the model level, in float32, for the configuration
 * this binary is compiled against (tests/model/run.sh). Without
 * CONFIG_KV_CACHE_PRUNE the same checks hold for the plain model and its
 * full generation cache (which never evicts):
 *  (a) causality: tokens after position t do not change the losses at
 *      positions <= t, in evaluation and in the training forward;
 *  (b) teacher-forced logits (gpt2_forward) equal step-by-step generation
 *      logits (gpt2_step, KV cache per layer) within 1e-5 over the whole
 *      block (256 tokens with tests/configs/kv-gen.config);
 *  (c) with sequences no longer than every layer's budget k, the pruned
 *      model equals full attention bit for bit (and with longer ones it
 *      does not: the pruning is real);
 *  (e) a prompt of at most k tokens evicts nothing, one more token does;
 *  (g) learned budget: with lambda = 0 the keep ratio rho rises over
 *      training on a task that needs the whole context, with a large
 *      lambda it falls to its floor;
 *  (h) the K and V bytes the generation caches allocate equal
 *      2 * n_layer * min(T, k) * n_embd * sizeof(act_t) (one sequence;
 *      V_ONLY: n_layer * (T + min(T, k)) * n_embd * sizeof(act_t)).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "gpt2/gpt2.h"
#include "kernels/kernels.h"
#include "kgpt/rng.h"
#include "ra/kvprune.h"
#include "tests/tap.h"

#define N_ROWS	(GPT2_B * GPT2_T)
#define V_ONLY	IS_ENABLED(CONFIG_KV_PRUNE_MODE_V_ONLY)

static int in[N_ROWS], tg[N_ROWS], in2[N_ROWS], tg2[N_ROWS];
static real loss1[N_ROWS], loss2[N_ROWS];

/* Sharpen attention and move every parameter off its initial value, so
 * that importances are far from ties and every path matters. */
static void perturb(struct gpt2 *m, struct kgpt_rng *rng)
{
	real *qkvw = gpt2_param(m, P_QKVW);

	gpt2_sync_for_host(m);
	for (size_t i = 0; i < m->tensors[P_QKVW].size; i++)
		qkvw[i] += (real)(0.3 * kgpt_rng_normal(rng));
	for (size_t i = 0; i < m->tensors[P_WPE].size; i++)
		gpt2_param(m, P_WPE)[i] += (real)(0.3 * kgpt_rng_normal(rng));
	gpt2_sync_for_backend(m);
}

static int min_budget(const struct gpt2 *m)
{
	int k = GPT2_T;

	for (int l = 0; l < GPT2_L; l++)
		if (gpt2_kv_budget(m, l) < k)
			k = gpt2_kv_budget(m, l);
	return k;
}

/* (a) positions t + 1 .. T - 1 of every sequence replaced by other tokens */
static void test_causality(struct gpt2 *m, struct kgpt_rng *rng)
{
	const int t = GPT2_T / 2;
	int same_eval = 1, same_train = 1, changed = 0;

	memcpy(in2, in, sizeof(in));
	memcpy(tg2, tg, sizeof(tg));
	for (int b = 0; b < GPT2_B; b++)
		for (int i = t + 1; i < GPT2_T; i++) {
			in2[b * GPT2_T + i] = (int)kgpt_rng_below(rng, GPT2_V);
			tg2[b * GPT2_T + i] = (int)kgpt_rng_below(rng, GPT2_V);
		}

	gpt2_forward(m, in, tg, GPT2_B, GPT2_T);
	kgpt_download(loss1, m->losses, sizeof(loss1));
	gpt2_forward(m, in2, tg2, GPT2_B, GPT2_T);
	kgpt_download(loss2, m->losses, sizeof(loss2));
	for (int b = 0; b < GPT2_B; b++)
		for (int i = 0; i < GPT2_T; i++) {
			int r = b * GPT2_T + i;

			if (i <= t)
				same_eval &= loss1[r] == loss2[r];
			else
				changed |= loss1[r] != loss2[r];
		}
	ok(same_eval && changed, "(a) evaluation: tokens after position %d leave the losses at "
	   "positions <= %d bit-identical (and change the later ones)", t, t);

	gpt2_zero_grad(m);
	gpt2_forward_backward(m, in, tg, 1.0f, 77);
	kgpt_download(loss1, m->losses, sizeof(loss1));
	gpt2_forward_backward(m, in2, tg2, 1.0f, 77);
	kgpt_download(loss2, m->losses, sizeof(loss2));
	for (int b = 0; b < GPT2_B; b++)
		for (int i = 0; i <= t; i++)
			same_train &= loss1[b * GPT2_T + i] == loss2[b * GPT2_T + i];
	gpt2_zero_grad(m);
	ok(same_train, "(a) training forward%s: the same for positions <= %d",
	   IS_ENABLED(CONFIG_KV_PRUNE_LEARNED) ? " (soft mask of the learned budget)" : "", t);
}

/* (b) one sequence of GPT2_T tokens, teacher-forced vs generated */
static void test_generation(struct gpt2 *m)
{
	const int T = GPT2_T;
	float *ref = malloc((size_t)T * GPT2_VP * sizeof(float));
	float *lg = malloc(GPT2_VP * sizeof(float));
	struct gpt2_gen g;
	double worst = 0;
	int rc;

	if (!ref || !lg || gpt2_gen_init(&g, m)) {
		ok(0, "(b) allocate the generation caches");
		free(ref);
		free(lg);
		return;
	}
	gpt2_forward(m, in, NULL, 1, T);
	for (int i = 0; i < T; i++)
		gpt2_logits(m, i, ref + (size_t)i * GPT2_VP);
	for (int i = 0; i < T; i++) {
		rc = gpt2_step(m, &g, in[i], lg);
		if (rc)
			break;
		for (int v = 0; v < GPT2_V; v++)
			worst = fmax(worst, fabs(lg[v] - ref[(size_t)i * GPT2_VP + v]));
	}
	ok(!rc && worst <= 1e-5, "(b) %d tokens: step-by-step generation logits = teacher-forced "
	   "logits (max |diff| %.2e, KV budget %d of %d)", T, worst, min_budget(m), T);
	ok(gpt2_step(m, &g, in[0], lg) == -ENOSPC,
	   "(b) a full context (block_size tokens) refuses another token with -ENOSPC");
	gpt2_gen_free(&g);
	free(ref);
	free(lg);
}

/* (c) the pruned model with T <= k is the unpruned one */
static void test_identity(struct gpt2 *m)
{
	const int k = min_budget(m), B = GPT2_B;
	double full, pruned;
	int same;

	m->kv_full = 1;
	gpt2_forward(m, in, tg, B, k);
	kgpt_download(loss1, m->losses, (size_t)B * k * sizeof(real));
	m->kv_full = 0;
	gpt2_forward(m, in, tg, B, k);
	kgpt_download(loss2, m->losses, (size_t)B * k * sizeof(real));
	same = !memcmp(loss1, loss2, (size_t)B * k * sizeof(real));
	ok(same, "(c) sequences of T = %d <= k tokens: pruned = full attention, bit-identical", k);

	if (!IS_ENABLED(CONFIG_KV_CACHE_PRUNE) || k >= GPT2_T)
		return;
	m->kv_full = 1;
	full = gpt2_forward(m, in, tg, B, GPT2_T);
	m->kv_full = 0;
	pruned = gpt2_forward(m, in, tg, B, GPT2_T);
	ok(full != pruned, "(c) T = %d > k = %d: the pruned loss differs from full attention "
	   "(%.6f vs %.6f)", GPT2_T, k, pruned, full);
}

/* (e) and (h): the caches of a fresh generator */
static void test_cache(struct gpt2 *m)
{
	struct gpt2_gen g;
	size_t want = 0, kv = 0;
	int k = min_budget(m), kept = 1, evicted = 0;

	if (gpt2_gen_init(&g, m)) {
		ok(0, "(e) allocate the generation caches");
		return;
	}
	for (int l = 0; l < GPT2_L; l++) {
		long kl = gpt2_kv_budget(m, l);

		want += kv_cache_bytes_mode(V_ONLY ? KVPRUNE_V_ONLY : KVPRUNE_KV, 1, GPT2_C,
					    GPT2_T, kl, sizeof(act_t), 1);
		kv += (size_t)(V_ONLY ? GPT2_T + (kl < GPT2_T ? kl : GPT2_T) :
			       2 * (kl < GPT2_T ? kl : GPT2_T)) * GPT2_C * sizeof(act_t);
	}
	ok(gpt2_gen_bytes(&g, 1) == kv && want == kv,
	   "(h) K and V bytes allocated for one sequence: %zu = %s formula %zu = "
	   "kv_cache_bytes_mode() (budget %d, block %d; %zu bytes in all with the bookkeeping)",
	   gpt2_gen_bytes(&g, 1), V_ONLY ? "V_ONLY" : "KV", kv, k, GPT2_T,
	   gpt2_gen_bytes(&g, 0));

	for (int i = 0; i < k; i++)
		gpt2_step(m, &g, in[i], NULL);
	for (int l = 0; l < GPT2_L; l++)
		for (int h = 0; h < GPT2_NH; h++)
			kept &= kv_cache_len(&g.cache[l], h) == k;
	ok(kept, "(e) a prompt of k = %d tokens: every layer and head holds all %d", k, k);
	if (k < GPT2_T) {
		gpt2_step(m, &g, in[k], NULL);
		for (int l = 0; l < GPT2_L; l++) {
			int kl = gpt2_kv_budget(m, l);

			for (int h = 0; h < GPT2_NH; h++)
				evicted += kv_cache_len(&g.cache[l], h) == (kl < k + 1 ? kl : k + 1);
		}
		ok(evicted == GPT2_L * GPT2_NH,
		   "(e) token %d: caches with budget %d evict one entry, larger ones keep all",
		   k + 1, k);
	}
	gpt2_gen_free(&g);
}

#if IS_ENABLED(CONFIG_KV_PRUNE_LEARNED)
#define G_STEPS		300
#define G_EXTRA		4.0	/* test-only memory weight added to lambda */
#define G_A		100	/* the two tokens of the majority task */
#define G_B		101

/*
 * One batch of the majority task: random strings of the tokens G_A and
 * G_B; the target at position i is the token that occurs most often in
 * positions 0..i (on a tie, the first token). Every earlier token counts
 * equally, so no importance rule can keep what the answer needs in a
 * budget smaller than the context: here keeping more context is what
 * lowers the loss.
 */
static void majority_batch(struct kgpt_rng *rng)
{
	for (int b = 0; b < GPT2_B; b++) {
		int *x = &in[b * GPT2_T], *y = &tg[b * GPT2_T], c = 0;

		for (int i = 0; i < GPT2_T; i++) {
			x[i] = kgpt_rng_below(rng, 2) ? G_B : G_A;
			c += x[i] == G_B ? 1 : -1;
			y[i] = c > 0 ? G_B : c < 0 ? G_A : x[0];
		}
	}
}

/*
 * G_STEPS trainer steps (AdamW, lr 1e-2, a fresh majority batch each
 * step) from the same initialisation, with the configured lambda and
 * with lambda + extra (extra added to the rho gradient here, as the
 * model adds lambda / L). Returns the mean rho after the last step
 * (NAN if any rho left [recency / block_size, 1]); *avg gets the mean
 * over the steps, *loss the mean loss of the last 20 steps.
 */
static double train_rho(double extra, double *avg, double *loss)
{
	static struct gpt2 m;
	struct kgpt_rng rng;
	double mean = 0;

	*avg = *loss = 0;
	kgpt_rng_seed(&rng, 11);
	if (gpt2_init(&m, 3))
		return NAN;
	for (int s = 0; s < G_STEPS; s++) {
		real *rho = gpt2_param(&m, P_KV_RHO);
		double l_s;

		majority_batch(&rng);
		gpt2_zero_grad(&m);
		l_s = gpt2_forward_backward(&m, in, tg, 1.0f, 100 + s);
		if (s >= G_STEPS - 20)
			*loss += l_s / 20;
		gpt2_sync_for_host(&m);
		for (int l = 0; l < GPT2_L; l++)
			gpt2_grad(&m, P_KV_RHO)[l] += (real)(extra / GPT2_L);
		gpt2_sync_for_backend(&m);
		gpt2_clip_grad(&m, 1.0f);
		gpt2_update(&m, 1e-2f);
		mean = 0;
		gpt2_sync_for_host(&m);
		for (int l = 0; l < GPT2_L; l++) {
			if (!(rho[l] >= (real)CONFIG_KV_PRUNE_RECENCY / GPT2_T && rho[l] <= 1))
				mean = NAN;
			mean += rho[l] / GPT2_L;
		}
		gpt2_sync_for_backend(&m);
		*avg += mean / G_STEPS;
	}
	gpt2_free(&m);
	return mean;
}

/*
 * (g) On a task that needs the whole context, the loss alone (lambda = 0)
 * raises rho from its initial value; the memory term with a large lambda
 * pushes it down to its floor recency / block_size. Measured over seeds
 * 1-4 and 1 or 2 threads: rho 0.38 -> 0.65-0.92 in 300 steps at
 * lambda = 0, the floor at lambda = 4. It runs on one thread, so that the
 * trajectory is the same on every machine.
 */
static void test_learned(void)
{
	const double lambda = CONFIG_KV_PRUNE_LAMBDA_F, init = CONFIG_KV_PRUNE_INIT_RATIO_F;
	const double floor_ = (double)CONFIG_KV_PRUNE_RECENCY / GPT2_T;
	double avg_a, avg_b, loss_a, loss_b, a, b;
#ifdef _OPENMP
	int threads = omp_get_max_threads();

	omp_set_num_threads(1);	/* one trajectory, whatever the machine */
#endif
	a = train_rho(0, &avg_a, &loss_a);
	b = train_rho(G_EXTRA, &avg_b, &loss_b);
#ifdef _OPENMP
	omp_set_num_threads(threads);
#endif

	diag("(g) majority task, %d steps: loss of the last 20 steps %.4f (lambda %g), %.4f "
	     "(lambda %g); chance is ln 2 = 0.6931", G_STEPS, loss_a, lambda, loss_b,
	     lambda + G_EXTRA);
	ok(isfinite(a) && isfinite(b), "(g) rho stays in [recency / block_size, 1] = [%.4f, 1] "
	   "after every update", floor_);
	ok(b < init && fabs(b - floor_) < 1e-6, "(g) lambda = %g + %g (test-only): %d steps bring "
	   "mean rho from %.4f down to the floor %.4f (%.4f)", lambda, G_EXTRA, G_STEPS, init,
	   floor_, b);
	if (lambda >= 1)
		ok(a < init, "(g) lambda = %g: mean rho falls over %d steps (%.4f -> %.4f)", lambda,
		   G_STEPS, init, a);
	else
		ok(a > init + 0.1 && avg_a > init, "(g) lambda = %g: mean rho rises over %d steps "
		   "(%.4f -> %.4f, %.4f on average), the loss wants the older context", lambda,
		   G_STEPS, init, a, avg_a);
}
#else
static inline void test_learned(void) { }
#endif

int main(void)
{
	static struct gpt2 m;
	struct kgpt_rng rng;

	kgpt_rng_seed(&rng, 5);
	for (int i = 0; i < N_ROWS; i++) {
		in[i] = (int)kgpt_rng_below(&rng, GPT2_V);
		tg[i] = (int)kgpt_rng_below(&rng, GPT2_V);
	}
	if (!ok(gpt2_init(&m, 9) == 0, "gpt2_init"))
		return tap_done();
	diag("KV-cache pruning %s%s%s: budget %d of block_size %d, n_layer %d, n_head %d",
	     IS_ENABLED(CONFIG_KV_CACHE_PRUNE) ? "on" : "off (full generation cache)",
	     V_ONLY ? ", V_ONLY" : "", IS_ENABLED(CONFIG_KV_PRUNE_LEARNED) ? ", learned" : "",
	     min_budget(&m), GPT2_T, GPT2_L, GPT2_NH);
	perturb(&m, &rng);

	test_causality(&m, &rng);
	test_generation(&m);
	test_identity(&m);
	test_cache(&m);
	gpt2_free(&m);
	test_learned();
	return tap_done();
}
