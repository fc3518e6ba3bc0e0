// SPDX-License-Identifier: MIT
/*
 * CPU-against-GPU parity of the compiled-in configuration (tests/gpu/run.sh).
 *
 *   parity dump FILE       compute the probes below, write them to FILE
 *   parity compare FILE    compute them again and compare with FILE's
 *
 * The same configuration is built twice, once per backend; the CPU build
 * dumps, the CUDA build compares (either build may do either: a CPU build
 * comparing against its own dump must agree exactly). The probes, all
 * from one model initialised with a fixed seed on fixed random tokens:
 *   logits    evaluation forward without targets, rows 0, N/2 and N-1 (Vp)
 *   loss      evaluation forward with targets (mean cross-entropy, nats)
 *   evict     KV pruning: the eviction step of every (b, h, t), per layer,
 *             from the training forward (which keys were kept)
 *   train     the training forward's loss (dropout masks are counter-based:
 *             the same on both backends)
 *   grad.NAME every gradient tensor of gpt2_forward_backward()
 *   step.NAME each tensor's change in one AdamW step at lr 1e-3 after
 *             clipping at 1.0
 *   gen.logits generation: the logits after the first sequence's T tokens
 *             fed one at a time through gpt2_step() and the KV caches
 *   gen.kept  which of those T positions each layer's and head's cache
 *             holds at the end (1 or 0; pruned to k with KV pruning)
 *   ckpt.loss the dumping build's checkpoint of the model after the step
 *             (FILE.ckpt, a run folder with checkpoints/step_000001),
 *             loaded into a new model: its evaluation loss
 *   ckpt.step one more AdamW step from the loaded parameters and moments:
 *             the parameters' change (a checkpoint moves from the dumping
 *             backend to the comparing one with its optimizer state)
 *
 * FILE: per probe a 32-byte name, u32 kind (0 float32, 1 int32), u32 0,
 * u64 count, then the values. A probe missing from FILE, or of another
 * size, fails.
 *
 * Tolerances, by the precision of the compare build's matrix products
 * (CONFIG_GPT2_AMP_DTYPE, CONFIG_CUDA_TF32), relative to the CPU's values:
 * float arrays by relative L2 error |a - b| / |a|, losses by |a - b| / |a|,
 * eviction steps by the share that differ (near-ties may flip when q, k
 * differ in the last bits):
 *                     loss     logits, grad   step     evict
 *   fp32              1e-5     1e-4           1e-2     1e-3
 *   TF32              1e-3     1e-2           1e-1     1e-2
 *   bf16              1e-2     5e-2           2e-1     5e-2
 * The update is loosest: Adam divides by sqrt(v), so a gradient element
 * near zero has its update's direction decided by its last bits.
 *
 * TAP on stdout (one line per probe, with the error found); exit status
 * 0 when every probe is within its tolerance, 1 otherwise or on an error.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2/checkpoint.h"
#include "gpt2/gpt2.h"
#include "gpt2/optim.h"
#include "kernels/kernels.h"
#include "kgpt/rng.h"
#include "tests/tap.h"

#define PARITY_SEED	1234u
#define N_ROWS		(GPT2_B * GPT2_T)
#define NAME_LEN	32

#if defined(KGPT_AMP_BF16)
#define PRECISION "bf16"
static const double tol_loss = 1e-2, tol_arr = 5e-2, tol_step = 2e-1, tol_evict = 5e-2;
#elif IS_ENABLED(CONFIG_CUDA_TF32)
#define PRECISION "TF32"
static const double tol_loss = 1e-3, tol_arr = 1e-2, tol_step = 1e-1, tol_evict = 1e-2;
#else
#define PRECISION "fp32"
static const double tol_loss = 1e-5, tol_arr = 1e-4, tol_step = 1e-2, tol_evict = 1e-3;
#endif

struct probe {
	char name[NAME_LEN];
	int is_int;
	size_t n;
	void *v;
	double tol;
	struct probe *next;
};

static struct probe *probes, **tail = &probes;

/* A copy of n values of v under name. */
static void add(const char *name, int is_int, const void *v, size_t n, double tol)
{
	struct probe *p = calloc(1, sizeof(*p));

	if (!p || !(p->v = malloc(n * 4 + 1))) {
		fprintf(stderr, "parity: out of memory\n");
		exit(1);
	}
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->is_int = is_int;
	p->n = n;
	p->tol = tol;
	memcpy(p->v, v, n * 4);
	*tail = p;
	tail = &p->next;
}

static void add_f(const char *name, const float *v, size_t n, double tol)
{
	add(name, 0, v, n, tol);
}

static void add_scalar(const char *name, double x)
{
	float f = (float)x;

	add_f(name, &f, 1, tol_loss);
}

static float *host_floats(size_t n)
{
	float *f = malloc(n * sizeof(float) + 1);

	if (!f) {
		fprintf(stderr, "parity: out of memory\n");
		exit(1);
	}
	return f;
}

static void probe_logits(struct gpt2 *m, const int *in)
{
	const int rows[3] = { 0, N_ROWS / 2, N_ROWS - 1 };
	float *lg = host_floats((size_t)3 * GPT2_VP);

	gpt2_forward(m, in, NULL, GPT2_B, GPT2_T);
	for (int r = 0; r < 3; r++)
		gpt2_logits(m, rows[r], lg + (size_t)r * GPT2_VP);
	add_f("logits", lg, (size_t)3 * GPT2_VP, tol_arr);
	free(lg);
}

static void probe_evict(struct gpt2 *m)
{
#if IS_ENABLED(CONFIG_KV_CACHE_PRUNE)
	const size_t n = (size_t)GPT2_B * GPT2_NH * GPT2_T;
	int *ev = malloc(n * sizeof(int) + 1);
	char name[NAME_LEN];

	if (!ev)
		exit(1);
	for (int l = 0; l < GPT2_L; l++) {
		kgpt_download(ev, m->layer[l].kv_evict, n * sizeof(int));
		snprintf(name, sizeof(name), "evict.%d", l);
		add(name, 1, ev, n, tol_evict);
	}
	free(ev);
#else
	(void)m;
	(void)tol_evict;
#endif
}

/* Generation of the first sequence through the caches (backend memory,
 * so the CUDA build runs kernels/cuda/kvcache.cu). */
static void probe_gen(struct gpt2 *m, const int *in)
{
	const size_t nk = (size_t)GPT2_L * GPT2_NH * GPT2_T;
	float *lg = host_floats(GPT2_VP);
	int *kept = calloc(nk, sizeof(int)), *pos = NULL;
	struct gpt2_gen g;

	if (!kept || gpt2_gen_init(&g, m)) {
		fprintf(stderr, "parity: out of memory for the KV caches\n");
		exit(1);
	}
	for (int t = 0; t < GPT2_T; t++)
		if (gpt2_step(m, &g, in[t], t + 1 == GPT2_T ? lg : NULL)) {
			fprintf(stderr, "parity: gpt2_step() failed at position %d\n", t);
			exit(1);
		}
	for (int l = 0; l < GPT2_L; l++) {
		const struct kv_cache *c = &g.cache[l];

		pos = realloc(pos, (size_t)c->n_head * c->cap * sizeof(int));
		if (!pos)
			exit(1);
		kgpt_download(pos, c->pos, (size_t)c->n_head * c->cap * sizeof(int));
		for (int h = 0; h < GPT2_NH; h++)
			for (int s = 0, n = kv_cache_len(c, h); s < n; s++)
				kept[((size_t)l * GPT2_NH + h) * GPT2_T + pos[h * c->cap + s]] = 1;
	}
	add_f("gen.logits", lg, GPT2_VP, tol_arr);
	add("gen.kept", 1, kept, nk, tol_evict);
	gpt2_gen_free(&g);
	free(pos);
	free(kept);
	free(lg);
}

/* grad.NAME or step.NAME of every tensor the configuration has. */
static void probe_tensors(struct gpt2 *m, const char *what, const real *x, double tol)
{
	char name[NAME_LEN];

	for (int t = 0; t < GPT2_NUM_TENSORS; t++) {
		const struct gpt2_tensor_info *ti = &m->tensors[t];

		if (!ti->size)
			continue;
		snprintf(name, sizeof(name), "%s.%s", what, ti->name);
		add_f(name, x + ti->offset, ti->size, tol);
	}
}

/* One AdamW step at lr 1e-3 after clipping at 1.0 on m's gradients:
 * returns each parameter's change (host memory, num_params floats). */
static float *step_change(struct gpt2 *m)
{
	float *d = host_floats(m->num_params);

	gpt2_sync_for_host(m);
	memcpy(d, m->params, m->num_params * sizeof(float));
	gpt2_sync_for_backend(m);
	gpt2_clip_grad(m, 1.0f);
	gpt2_update(m, 1e-3f);
	gpt2_sync_for_host(m);
	for (size_t i = 0; i < m->num_params; i++)
		d[i] = m->params[i] - d[i];
	gpt2_sync_for_backend(m);
	return d;
}

/* The checkpoint of the dumping build, loaded into a fresh model. */
static void probe_ckpt(const char *run, const int *in, const int *tg)
{
	static struct gpt2 m;
	float *step;
	int err = gpt2_init(&m, PARITY_SEED + 1);

	if (!err)
		err = ckpt_load_latest(run, &m, NULL, CKPT_STATE_ANY, NULL, 0);
	if (err) {
		fprintf(stderr, "parity: cannot load the checkpoint in %s (%s): `parity dump` "
			"writes it beside the dump\n", run, strerror(-err));
		exit(1);
	}
	add_scalar("ckpt.loss", gpt2_forward(&m, in, tg, GPT2_B, GPT2_T));
	gpt2_zero_grad(&m);
	gpt2_forward_backward(&m, in, tg, 1.0f, PARITY_SEED + 1);
	step = step_change(&m);
	add_f("ckpt.step", step, m.num_params, tol_step);
	free(step);
	gpt2_free(&m);
}

/* The probes; with dump, the model after the step is saved as run. */
static int compute(const char *run, int dump)
{
	static struct gpt2 m;
	static int in[N_ROWS], tg[N_ROWS];
	struct kgpt_rng rng;
	float *step;
	double loss;

	if (gpt2_init(&m, PARITY_SEED))
		return -ENOMEM;
	kgpt_rng_seed(&rng, PARITY_SEED);
	for (int i = 0; i < N_ROWS; i++) {
		in[i] = (int)kgpt_rng_below(&rng, GPT2_V);
		tg[i] = (int)kgpt_rng_below(&rng, GPT2_V);
	}
	probe_logits(&m, in);
	add_scalar("loss", gpt2_forward(&m, in, tg, GPT2_B, GPT2_T));

	gpt2_zero_grad(&m);
	loss = gpt2_forward_backward(&m, in, tg, 1.0f, PARITY_SEED);
	kgpt_sync();
	add_scalar("train", loss);
	probe_evict(&m);
	gpt2_sync_for_host(&m);
	probe_tensors(&m, "grad", m.grads, tol_arr);
	gpt2_sync_for_backend(&m);

	step = step_change(&m);
	probe_tensors(&m, "step", step, tol_step);
	free(step);
	if (dump && ckpt_save(run, &m, NULL, 0, 1)) {
		fprintf(stderr, "parity: cannot write the checkpoint %s\n", run);
		exit(1);
	}
	probe_gen(&m, in);
	gpt2_free(&m);
	probe_ckpt(run, in, tg);
	return 0;
}

static int dump(const char *path)
{
	FILE *f = fopen(path, "wb");
	int bad = !f;

	for (struct probe *p = probes; f && p; p = p->next) {
		uint32_t hdr[2] = { (uint32_t)p->is_int, 0 };
		uint64_t n = p->n;

		bad |= fwrite(p->name, NAME_LEN, 1, f) != 1 || fwrite(hdr, sizeof(hdr), 1, f) != 1 ||
		       fwrite(&n, sizeof(n), 1, f) != 1 || fwrite(p->v, 4, p->n, f) != p->n;
	}
	if (f && fclose(f))
		bad = 1;
	if (bad) {
		fprintf(stderr, "parity: cannot write %s: %s\n", path, strerror(errno));
		return 1;
	}
	printf("# parity: %s written (%s backend, %s)\n", path, kgpt_backend_name(), PRECISION);
	return 0;
}

/* The error of got against want (the reference): relative L2 for floats
 * and the loss, the share of differing elements for ints. */
static double error_of(const struct probe *got, const void *want)
{
	double d = 0, r = 0;

	if (got->is_int) {
		const int32_t *a = want, *b = got->v;
		size_t diff = 0;

		for (size_t i = 0; i < got->n; i++)
			diff += a[i] != b[i];
		return (double)diff / (double)got->n;
	}
	for (size_t i = 0; i < got->n; i++) {
		double a = ((const float *)want)[i], b = ((const float *)got->v)[i];

		d += (a - b) * (a - b);
		r += a * a;
	}
	if (!isfinite(d))
		return INFINITY;
	return r > 0 ? sqrt(d / r) : sqrt(d);
}

static int compare(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct probe *p = probes;
	char name[NAME_LEN];

	if (!f) {
		fprintf(stderr, "parity: cannot open %s: %s (write it with `parity dump` in "
			"the CPU build)\n", path, strerror(errno));
		return 1;
	}
	diag("parity: %s backend (%s) against %s", kgpt_backend_name(), PRECISION, path);
	for (; p; p = p->next) {
		uint32_t hdr[2];
		uint64_t n;
		void *want;

		if (fread(name, NAME_LEN, 1, f) != 1 || fread(hdr, sizeof(hdr), 1, f) != 1 ||
		    fread(&n, sizeof(n), 1, f) != 1) {
			ok(0, "%s: missing from %s", p->name, path);
			continue;
		}
		name[NAME_LEN - 1] = 0;
		if (strcmp(name, p->name) || n != p->n || (int)hdr[0] != p->is_int) {
			ok(0, "%s: %s has %s (%llu values) here", p->name, path, name,
			   (unsigned long long)n);
			break;
		}
		want = malloc(n * 4 + 1);
		if (!want || fread(want, 4, n, f) != n) {
			ok(0, "%s: %s is truncated", p->name, path);
			free(want);
			break;
		}
		double e = error_of(p, want);

		ok(e <= p->tol, "%s (%zu values): %s %.3g <= %.0e", p->name, p->n,
		   p->is_int ? "differing" : "relative error", e, p->tol);
		free(want);
	}
	fclose(f);
	return tap_done();
}

int main(int argc, char **argv)
{
	static char run[4200];

	if (argc != 3 || (strcmp(argv[1], "dump") && strcmp(argv[1], "compare"))) {
		fprintf(stderr, "usage: parity dump FILE | parity compare FILE\n");
		return 2;
	}
	snprintf(run, sizeof(run), "%s.ckpt", argv[2]);
	if (compute(run, !strcmp(argv[1], "dump"))) {
		fprintf(stderr, "parity: the model does not fit in memory\n");
		return 1;
	}
	return strcmp(argv[1], "dump") ? compare(argv[2]) : dump(argv[2]);
}
