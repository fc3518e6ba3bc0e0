// SPDX-License-Identifier: MIT
/*
 * kgpt generator and evaluator for a trained checkpoint of the compiled-in
 * configuration (build it with the .config the run was trained with).
 *
 *   generate [--checkpoint PATH] [--prompt TEXT] [--tokens N]
 *            [--temperature X] [--seed S]
 *   generate --eval [--checkpoint PATH] [--batches N]
 *
 * PATH is a run folder (its newest complete checkpoint is loaded), one
 * checkpoint folder (RUN/checkpoints/step_N) or an llm.c model file
 * (model.bin: parameters only); default CONFIG_OUTPUT_DIR/latest.
 *
 * Generation encodes the prompt with the GPT-2 tokenizer
 * ($KGPT_VOCAB_DIR, default CONFIG_DATA_DIR/gpt2) and feeds it, then
 * samples N tokens one at a time with gpt2_step(): a real incremental KV
 * cache per layer, pruned to k entries per head with
 * CONFIG_KV_CACHE_PRUNE (the rule of training), holding every token
 * without. The caches are backend memory (on a GPU, device memory). The
 * text is printed as it comes; then the KV-cache bytes allocated (and
 * what the backend's allocator measured), the formula's bytes for the
 * tokens in the context, and the speed. Generation stops at block_size tokens of context.
 *
 * --eval reports the checkpoint's val_loss over the configured validation
 * shards (CONFIG_GPT2_EVAL_SAMPLES batches of B x block_size, as the
 * trainer's evaluation), with KV pruning and with full attention side by
 * side.
 *
 * Exit status: 0, 1 on an error (with a message), 2 on a usage error.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "gpt2/gpt2.h"
#include "gpt2/checkpoint.h"
#include "gpt2/dataloader.h"
#include "gpt2/tokenizer.h"
#include "kernels/kernels.h"
#include "kgpt/proc.h"
#include "kgpt/rng.h"

#define DEFAULT_TOKENS	128

struct args {
	const char *checkpoint;
	const char *prompt;
	int tokens;
	double temperature;
	uint64_t seed;
	int eval;
	int batches;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: generate [--checkpoint PATH] [--prompt TEXT] [--tokens N]\n"
		"                [--temperature X] [--seed S]\n"
		"       generate --eval [--checkpoint PATH] [--batches N]\n"
		"Generates text from a checkpoint of this build's configuration with a KV\n"
		"cache per layer (pruned to k entries per head with KV-cache pruning).\n"
		"  --checkpoint PATH  run folder, checkpoint folder or llm.c model file\n"
		"                     (default %s/latest)\n"
		"  --prompt TEXT      text to continue (default: start of a document)\n"
		"  --tokens N         tokens to generate (default %d), at most up to\n"
		"                     block_size %d tokens of context\n"
		"  --temperature X    softmax temperature, 0 = greedy (default 1)\n"
		"  --seed S           sampling seed (default %d)\n"
		"  --eval             val_loss on the validation shards, with KV pruning\n"
		"                     and with full attention\n"
		"  --batches N        validation batches for --eval (default %d)\n"
		"The vocabulary is read from $KGPT_VOCAB_DIR or %s/gpt2.\n",
		CONFIG_OUTPUT_DIR, DEFAULT_TOKENS, GPT2_T, CONFIG_SEED,
		CONFIG_GPT2_EVAL_SAMPLES, CONFIG_DATA_DIR);
}

/* A whole-number argument in [lo, hi]; -1 if it is not one. */
static long parse_long(const char *s, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	return v;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	static char latest[4200];

	snprintf(latest, sizeof(latest), "%s/latest", CONFIG_OUTPUT_DIR);
	a->checkpoint = latest;
	a->prompt = NULL;
	a->tokens = DEFAULT_TOKENS;
	a->temperature = 1.0;
	a->seed = CONFIG_SEED;
	a->eval = 0;
	a->batches = CONFIG_GPT2_EVAL_SAMPLES;
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *end;

		if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(o, "--eval")) {
			a->eval = 1;
			continue;
		}
		if (strcmp(o, "--checkpoint") && strcmp(o, "--prompt") && strcmp(o, "--tokens") &&
		    strcmp(o, "--batches") && strcmp(o, "--seed") && strcmp(o, "--temperature")) {
			fprintf(stderr, "generate: unknown option %s\n", o);
			return -EINVAL;
		}
		if (!v) {
			fprintf(stderr, "generate: %s needs a value\n", o);
			return -EINVAL;
		}
		i++;
		if (!strcmp(o, "--checkpoint")) {
			a->checkpoint = v;
		} else if (!strcmp(o, "--prompt")) {
			a->prompt = v;
		} else if (!strcmp(o, "--tokens")) {
			a->tokens = (int)parse_long(v, 0, 1 << 30);
			if (a->tokens < 0)
				goto bad;
		} else if (!strcmp(o, "--batches")) {
			a->batches = (int)parse_long(v, 1, 1 << 30);
			if (a->batches < 0)
				goto bad;
		} else if (!strcmp(o, "--seed")) {
			long s = parse_long(v, 0, 0x7fffffffL);

			if (s < 0)
				goto bad;
			a->seed = (uint64_t)s;
		} else {	/* --temperature */
			a->temperature = strtod(v, &end);
			if (end == v || *end || !(a->temperature >= 0) || !isfinite(a->temperature))
				goto bad;
		}
		continue;
bad:
		fprintf(stderr, "generate: %s %s: not a valid value\n", o, v);
		return -EINVAL;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Loading
 */

static int is_dir(const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISDIR(st.st_mode);
}

/*
 * Load path into m: a checkpoint folder (it has a DONE marker), a run
 * folder (its newest usable checkpoint) or an llm.c model file. The
 * trainer state in a checkpoint is checked and dropped. Returns 0 or a
 * negative errno after the checkpoint module's message.
 */
static int load(struct gpt2 *m, const char *path)
{
	char done[4200], found[4200];
	int err;

	if (!is_dir(path)) {
		err = ckpt_load_llmc(path, m);
		if (!err && IS_ENABLED(CONFIG_KV_PRUNE_LEARNED))
			fprintf(stderr, "kgpt: warning: %s is an llm.c model file: it has no "
				"learned KV budget, rho keeps its initial value\n", path);
		if (!err)
			printf("kgpt: loaded the llm.c model file %s\n", path);
		return err;
	}
	snprintf(done, sizeof(done), "%s/DONE", path);
	if (!access(done, F_OK)) {
		err = ckpt_load(path, m, NULL, CKPT_STATE_ANY);
		snprintf(found, sizeof(found), "%s", path);
	} else {
		err = ckpt_load_latest(path, m, NULL, CKPT_STATE_ANY, found, sizeof(found));
		if (err == -ENOENT)
			fprintf(stderr, "kgpt: %s holds no checkpoint (a run folder has "
				"checkpoints/step_N; `make` writes them)\n", path);
	}
	if (!err)
		printf("kgpt: loaded %s (step %d)\n", found, m->step);
	return err;
}

/* ------------------------------------------------------------------------
 * Generation
 */

/* Next token from the logits of the V real tokens: softmax at temperature
 * t (t = 0: the most likely token). */
static int sample(const float *logits, double t, struct kgpt_rng *rng)
{
	double mx = -INFINITY, sum = 0, r, acc = 0;
	int best = 0;

	for (int i = 0; i < GPT2_V; i++)
		if (logits[i] > mx) {
			mx = logits[i];
			best = i;
		}
	if (t == 0)
		return best;
	for (int i = 0; i < GPT2_V; i++)
		sum += exp((logits[i] - mx) / t);
	r = kgpt_rng_uniform(rng) * sum;
	for (int i = 0; i < GPT2_V; i++) {
		acc += exp((logits[i] - mx) / t);
		if (acc > r)
			return i;
	}
	return best;
}

static void print_token(const struct tokenizer *tok, int id)
{
	size_t len;
	const char *s = tokenizer_token(tok, id, &len);

	if (s)
		fwrite(s, 1, len, stdout);
	fflush(stdout);
}

/* The caches' bytes against the formula for `tokens` tokens of context;
 * alloc: what the backend's allocator handed out for them. */
static void print_cache_bytes(struct gpt2 *m, const struct gpt2_gen *g, int tokens,
			      size_t alloc)
{
	const enum kvprune_mode mode = IS_ENABLED(CONFIG_KV_PRUNE_MODE_V_ONLY) ?
				       KVPRUNE_V_ONLY : KVPRUNE_KV;
	size_t kv = gpt2_gen_bytes(g, 1), all = gpt2_gen_bytes(g, 0), used = 0, cap = 0;
	size_t full = kv_cache_bytes(GPT2_L, GPT2_C, tokens, sizeof(act_t), 1);

	for (int l = 0; l < GPT2_L; l++) {
		long k = gpt2_kv_budget(m, l);

		used += kv_cache_bytes_mode(mode, 1, GPT2_C, tokens, k, sizeof(act_t), 1);
		cap += kv_cache_bytes_mode(mode, 1, GPT2_C, GPT2_T, k, sizeof(act_t), 1);
	}
	printf("kgpt: KV cache allocated: %zu bytes (K and V %zu, bookkeeping %zu), "
	       "%d layers, n_embd %d, %s; the backend's allocator measured %zu bytes (%s)\n",
	       all, kv, all - kv, GPT2_L, GPT2_C, KGPT_ACT_NAME, alloc, kgpt_backend_name());
	printf("kgpt: formula kv_cache_bytes_mode() for the %d tokens in the context: %zu bytes "
	       "(at capacity %zu = the K and V allocated: %s); a full cache would hold %zu\n",
	       tokens, used, cap, cap == kv ? "yes" : "NO", full);
}

static int generate(struct gpt2 *m, const struct args *a)
{
	char vocab[4200];
	const char *env = getenv("KGPT_VOCAB_DIR");
	struct tokenizer tok;
	struct gpt2_gen g;
	struct kgpt_rng rng;
	float *logits = malloc(GPT2_VP * sizeof(float));
	int *ids = NULL, eot = GPT2_EOT, n_gen = 0, err;
	size_t n = 0, alloc;
	double t0, t1, t2;

	memset(&tok, 0, sizeof(tok));
	snprintf(vocab, sizeof(vocab), "%s", env && *env ? env : CONFIG_DATA_DIR "/gpt2");
	err = logits ? tokenizer_load(&tok, vocab) : -ENOMEM;
	if (err) {
		fprintf(stderr, "kgpt: cannot load the GPT-2 vocabulary from %s (above); `make data` "
			"fetches it, or set KGPT_VOCAB_DIR\n", vocab);
		goto out;
	}
	if (a->prompt && *a->prompt) {
		err = tokenizer_encode(&tok, a->prompt, strlen(a->prompt), &ids, &n);
		if (err)
			goto out;
	}
	if (n > GPT2_T) {
		fprintf(stderr, "kgpt: the prompt is %zu tokens; the context holds block_size %d\n",
			n, GPT2_T);
		err = -E2BIG;
		goto out;
	}
	alloc = kgpt_mem_used();
	err = gpt2_gen_init(&g, m);
	alloc = kgpt_mem_used() - alloc;
	if (err) {
		fprintf(stderr, "kgpt: cannot allocate the KV caches: %s\n", strerror(-err));
		goto out;
	}
	if (IS_ENABLED(CONFIG_KV_CACHE_PRUNE))
		printf("kgpt: KV cache pruned to k = %d of %d tokens per layer and head "
		       "(layer 0; recency %d)\n", gpt2_kv_budget(m, 0), GPT2_T,
		       g.cache[0].recency);
	else
		printf("kgpt: KV cache of up to %d tokens per layer and head (no pruning)\n",
		       GPT2_T);
	printf("---\n");
	kgpt_rng_seed(&rng, a->seed);

	/* the prompt, or <|endoftext|> to start a document */
	t0 = kgpt_now_s();
	for (size_t i = 0; i < (n ? n : 1) && !err; i++)
		err = gpt2_step(m, &g, n ? ids[i] : eot, i + 1 == (n ? n : 1) ? logits : NULL);
	if (n)
		fputs(a->prompt, stdout);
	fflush(stdout);
	t1 = kgpt_now_s();
	while (!err && n_gen < a->tokens) {
		int next = sample(logits, a->temperature, &rng);

		print_token(&tok, next);
		n_gen++;
		if (g.t >= GPT2_T) {
			printf("\n[the context is full: block_size %d tokens; stopping]", GPT2_T);
			break;
		}
		if (n_gen < a->tokens)
			err = gpt2_step(m, &g, next, logits);
	}
	t2 = kgpt_now_s();
	printf("\n---\n");
	if (err) {
		fprintf(stderr, "kgpt: generation step failed: %s\n", strerror(-err));
	} else {
		print_cache_bytes(m, &g, g.t, alloc);
		printf("kgpt: %d prompt tokens in %.3f s, %d tokens generated in %.3f s: "
		       "%.1f tokens/s\n", (int)(n ? n : 1), t1 - t0, n_gen, t2 - t1,
		       n_gen > 0 && t2 > t1 ? n_gen / (t2 - t1) : 0.0);
	}
	gpt2_gen_free(&g);
out:
	tokenizer_free(&tok);
	free(ids);
	free(logits);
	return err;
}

/* ------------------------------------------------------------------------
 * Evaluation
 */

static int evaluate(struct gpt2 *m, const struct args *a)
{
	static int in[GPT2_N], tg[GPT2_N];
	char pat[4200];
	struct dataloader dl;
	double pruned, full;
	int n, err;

	dataloader_path(pat, sizeof(pat), CONFIG_DATA_DIR, CONFIG_GPT2_DATASET_VAL);
	err = dataloader_open(&dl, pat, GPT2_B, GPT2_T, CONFIG_SEED, 0);
	if (err)
		return err;
	m->kv_full = 1;
	full = gpt2_eval_loss(m, &dl, a->batches, in, tg, &n);
	m->kv_full = 0;
	/* without KV pruning in the build both passes would be the same one */
	pruned = full;
	if (IS_ENABLED(CONFIG_KV_CACHE_PRUNE))
		pruned = gpt2_eval_loss(m, &dl, a->batches, in, tg, &n);
	dataloader_close(&dl);
	if (!n) {
		fprintf(stderr, "kgpt: %s: no validation batch of %d x %d tokens\n", pat, GPT2_B,
			GPT2_T);
		return -EINVAL;
	}
	printf("kgpt: val_loss over %d batches of %d x %d tokens (%s)\n", n, GPT2_B, GPT2_T, pat);
	if (IS_ENABLED(CONFIG_KV_CACHE_PRUNE)) {
		char label[256];
		size_t len = snprintf(label, sizeof(label), "KV pruned, k ");
		int same = 1;

		for (int l = 1; l < GPT2_L; l++)
			same &= gpt2_kv_budget(m, l) == gpt2_kv_budget(m, 0);
		for (int l = 0; l < (same ? 1 : GPT2_L) && len < sizeof(label); l++)
			len += snprintf(label + len, sizeof(label) - len, "%s%d", l ? "," : "",
					gpt2_kv_budget(m, l));
		if (len < sizeof(label))
			snprintf(label + len, sizeof(label) - len, " of %d", GPT2_T);
		printf("  %-36s %10s %12s\n", "attention", "val_loss", "perplexity");
		printf("  %-36s %10.4f %12.2f\n", label, pruned, exp(pruned));
		printf("  %-36s %10.4f %12.2f\n", "full (no eviction)", full, exp(full));
		printf("  %-36s %+10.4f\n", "pruned - full", pruned - full);
	} else {
		printf("  full attention (KV pruning is not in this build) val_loss %.4f "
		       "(perplexity %.2f)\n", full, exp(full));
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct gpt2 m;
	struct args a;
	int err;

	if (parse_args(argc, argv, &a)) {
		usage(stderr);
		return 2;
	}
	err = gpt2_init(&m, CONFIG_SEED);
	if (err)
		return 1;
	err = load(&m, a.checkpoint);
	if (!err)
		err = a.eval ? evaluate(&m, &a) : generate(&m, &a);
	gpt2_free(&m);
	return err ? 1 : 0;
}
