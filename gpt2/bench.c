// SPDX-License-Identifier: MIT
/*
 * train_gpt2 --bench STEPS [--warmup W] [--json FILE]: times training
 * steps of the compiled-in configuration on synthetic data and reports
 * them (scripts/bench.sh runs it for each configuration of bench/).
 *
 * A step is the trainer's, gpt2_train_step() (gpt2/step.h): zero the
 * gradients, GPT2_ACCUM forward/backward micro-batches, the gradient norm
 * (and clipping when configured), one optimizer update. The batches are
 * random token ids from a fixed seed, so no data file, vocabulary or run
 * folder is needed and nothing is written except FILE. All memory of the
 * model is touched before the first step, so warm-up steps only warm the
 * caches and the BLAS.
 *
 * Reported per configuration: wall-clock ms per step (each step, min,
 * median), process CPU ms per step, tokens/s and model GFLOP/s from the
 * median step (gpt2_flops_per_token(): 6 * matmul parameters + 12 L C T
 * per token), the share of the step in each phase of gpt2_phase_s[] (the
 * rest, memsets and copies between kernels, is "other"), the peak
 * resident set size and the backend's peak memory (kgpt_mem_peak()).
 * A backend that queues kernels (CUDA) is waited for at the end of each
 * step; its phases are only the time to queue them unless
 * KGPT_PHASE_SYNC=1 makes every timed kernel call wait (slower steps,
 * true phases).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "gpt2/step.h"
#include "gpt2/train.h"
#include "kernels/kernels.h"
#include "kgpt/proc.h"
#include "kgpt/rng.h"

#define BENCH_SEED	20240326u

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median of n values (sorts a copy). */
static double median(const double *v, int n)
{
	double *s = malloc((size_t)n * sizeof(*s)), r;

	if (!s)
		return v[0];
	memcpy(s, v, (size_t)n * sizeof(*s));
	qsort(s, (size_t)n, sizeof(*s), cmp_double);
	r = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
	free(s);
	return r;
}

/* The benchmark's batch source for gpt2_train_step(): random token ids
 * from rng (arg); a skipped micro-batch draws nothing. */
static int random_batch(void *arg, int *inputs, int *targets)
{
	struct kgpt_rng *rng = arg;

	for (int i = 0; inputs && i < GPT2_N; i++) {
		inputs[i] = (int)kgpt_rng_below(rng, GPT2_V);
		targets[i] = (int)kgpt_rng_below(rng, GPT2_V);
	}
	return 0;
}

/* One trainer step (gpt2_train_step()) at the configured peak learning
 * rate: the schedule changes no timing. Returns the mean loss. */
static double bench_step(struct gpt2 *m, struct kgpt_rng *rng, int *inputs,
			 int *targets, float *norm)
{
	const struct gpt2_batches src = {
		.next = random_batch, .arg = rng, .inputs = inputs, .targets = targets,
		.seed = BENCH_SEED,
	};
	struct gpt2_step_result r;

	gpt2_train_step(m, &src, GPT2_LR, &r);
	*norm = r.norm;
	return r.loss;
}

/* Touch every page of the model's memory (it is zero already, from
 * kgpt_alloc*()), so that no timed step pays for first-touch page faults. */
static void prefault(struct gpt2 *m)
{
	kgpt_zero(m->grads, m->num_params * sizeof(*m->grads));
	kgpt_zero(m->opt.m, m->num_params * sizeof(float));
	kgpt_zero(m->opt.v, m->num_params * sizeof(float));
	if (m->opt.vmax)
		kgpt_zero(m->opt.vmax, m->num_params * sizeof(float));
	kgpt_zero(m->acts, m->acts_bytes);
}

static cJSON *phases_json(const double *ph_ms, double other_ms)
{
	cJSON *o = cJSON_CreateObject();

	for (int p = 0; p < GPT2_NUM_PHASES; p++)
		cJSON_AddNumberToObject(o, gpt2_phase_name[p], ph_ms[p]);
	cJSON_AddNumberToObject(o, "other", other_ms);
	return o;
}

static int write_json(const char *path, cJSON *o)
{
	char *s = cJSON_Print(o);
	FILE *f = fopen(path, "w");
	int rc = 0;

	if (!s || !f || fputs(s, f) < 0 || fputc('\n', f) < 0)
		rc = -1;
	if (f && fclose(f))
		rc = -1;
	if (rc)
		fprintf(stderr, "kgpt: cannot write %s\n", path);
	free(s);
	return rc;
}

int train_bench(int steps, int warmup, const char *json)
{
	static struct gpt2 model;
	static int inputs[GPT2_N], targets[GPT2_N];
	double *wall = calloc((size_t)steps, sizeof(double));
	double *cpu = calloc((size_t)steps, sizeof(double));
	double ph_ms[GPT2_NUM_PHASES], sum_ms = 0, t_ph = 0, med, min, fpt, loss0 = 0, loss = 0;
	const double tokens = (double)GPT2_N * GPT2_ACCUM;
	struct kgpt_rng rng;
	int threads = 1, rc = 0;
	const char *ps;
	float norm = 0;
	cJSON *o, *a;

	if (!wall || !cpu || gpt2_init(&model, BENCH_SEED)) {
		free(wall);
		free(cpu);
		return 1;
	}
#ifdef _OPENMP
	threads = omp_get_max_threads();
#endif
	kgpt_rng_seed(&rng, BENCH_SEED);
	prefault(&model);
	ps = getenv("KGPT_PHASE_SYNC");
	gpt2_phase_sync = ps && *ps && strcmp(ps, "0");
	printf("kgpt bench: L %d NH %d C %d | B %d T %d accum %d | R-MLP %s, KV pruning %s | "
	       "%d threads | %d warm-up + %d steps\n", GPT2_L, GPT2_NH, GPT2_C, GPT2_B, GPT2_T,
	       GPT2_ACCUM, IS_ENABLED(CONFIG_RMLP) ? "on" : "off",
	       IS_ENABLED(CONFIG_KV_CACHE_PRUNE) ? "on" : "off", threads, warmup, steps);
	printf("kgpt bench: backend %s%s\n", kgpt_backend_name(),
	       gpt2_phase_sync ? ", every kernel waited for (KGPT_PHASE_SYNC)" : "");
	fflush(stdout);
	for (int s = 0; s < warmup; s++) {
		loss = bench_step(&model, &rng, inputs, targets, &norm);
		if (!s)
			loss0 = loss;	/* loss_first: the loss of the very first step */
	}
	memset(gpt2_phase_s, 0, sizeof(gpt2_phase_s));
	for (int s = 0; s < steps; s++) {
		double w0 = kgpt_now_s(), c0 = kgpt_clock_s(CLOCK_PROCESS_CPUTIME_ID);

		loss = bench_step(&model, &rng, inputs, targets, &norm);
		kgpt_sync();	/* the step's last kernels belong to it */
		wall[s] = (kgpt_now_s() - w0) * 1e3;
		cpu[s] = (kgpt_clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0) * 1e3;
		if (!warmup && !s)
			loss0 = loss;
		sum_ms += wall[s];
		printf("  step %d: %.1f ms (cpu %.1f ms) loss %.4f\n", s + 1, wall[s], cpu[s], loss);
		fflush(stdout);
	}
	for (int p = 0; p < GPT2_NUM_PHASES; p++) {
		ph_ms[p] = gpt2_phase_s[p] * 1e3 / steps;
		t_ph += ph_ms[p];
	}
	med = median(wall, steps);
	min = wall[0];
	for (int s = 1; s < steps; s++)
		min = wall[s] < min ? wall[s] : min;
	fpt = gpt2_flops_per_token();

	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "n_layer", GPT2_L);
	cJSON_AddNumberToObject(o, "n_head", GPT2_NH);
	cJSON_AddNumberToObject(o, "n_embd", GPT2_C);
	cJSON_AddNumberToObject(o, "B", GPT2_B);
	cJSON_AddNumberToObject(o, "T", GPT2_T);
	cJSON_AddNumberToObject(o, "accum", GPT2_ACCUM);
	cJSON_AddBoolToObject(o, "rmlp", IS_ENABLED(CONFIG_RMLP));
	cJSON_AddBoolToObject(o, "kv_prune", IS_ENABLED(CONFIG_KV_CACHE_PRUNE));
	cJSON_AddNumberToObject(o, "params", (double)model.num_trainable);
	cJSON_AddNumberToObject(o, "threads", threads);
	cJSON_AddNumberToObject(o, "warmup", warmup);
	cJSON_AddNumberToObject(o, "steps", steps);
	a = cJSON_AddArrayToObject(o, "step_ms");
	for (int s = 0; s < steps; s++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber(wall[s]));
	a = cJSON_AddArrayToObject(o, "cpu_ms");
	for (int s = 0; s < steps; s++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber(cpu[s]));
	cJSON_AddNumberToObject(o, "step_ms_min", min);
	cJSON_AddNumberToObject(o, "step_ms_median", med);
	cJSON_AddNumberToObject(o, "cpu_ms_median", median(cpu, steps));
	cJSON_AddNumberToObject(o, "tokens_per_step", tokens);
	cJSON_AddNumberToObject(o, "tokens_per_s", tokens / (med * 1e-3));
	cJSON_AddNumberToObject(o, "flops_per_token", fpt);
	cJSON_AddNumberToObject(o, "gflops", fpt * tokens / (med * 1e-3) / 1e9);
	cJSON_AddItemToObject(o, "phase_ms", phases_json(ph_ms, sum_ms / steps - t_ph));
	cJSON_AddNumberToObject(o, "peak_rss_bytes", (double)kgpt_peak_rss_bytes());
	cJSON_AddStringToObject(o, "backend", kgpt_backend_name());
	cJSON_AddNumberToObject(o, "backend_peak_bytes", (double)kgpt_mem_peak());
	cJSON_AddBoolToObject(o, "phase_sync", gpt2_phase_sync);
	cJSON_AddNumberToObject(o, "planned_bytes", (double)gpt2_bytes(&model));
	cJSON_AddNumberToObject(o, "loss_first", loss0);
	cJSON_AddNumberToObject(o, "loss_last", loss);
	cJSON_AddNumberToObject(o, "grad_norm_last", norm);

	printf("kgpt bench: median %.1f ms/step, %.0f tokens/s, %.1f GFLOP/s, peak RSS %.0f MiB\n",
	       med, tokens / (med * 1e-3), fpt * tokens / (med * 1e-3) / 1e9,
	       (double)kgpt_peak_rss_bytes() / 1048576.0);
	if (json)
		rc = write_json(json, o);
	cJSON_Delete(o);
	gpt2_free(&model);
	free(wall);
	free(cpu);
	return rc ? 1 : 0;
}
