// SPDX-License-Identifier: MIT
/*
 * kgpt trainer: trains the GPT-2 of the compiled-in configuration
 * (gpt2/config.h) and writes a run folder:
 *
 *   OUTPUT_DIR/<project>-<date>-<time>/
 *     config, autoconf.h     the configuration it was built from
 *     metrics.jsonl          one JSON object per log or eval line
 *     summary.json           final figures and the configuration
 *     checkpoints/           model (llm.c format) + kgpt state
 *     sample.txt             a short generated sample
 *     loss.png               train/val loss (gnuplot, when installed)
 *   OUTPUT_DIR/latest -> that folder
 *
 * Usage: train_gpt2 [--resume | --fresh] [--init-from FILE] [--stop-at STEP]
 *        [--print-config] [--bench STEPS [--warmup W] [--json FILE]] [--help].
 * Everything else is decided by Kconfig at build time; `make TIME=60`
 * overrides the time budget.
 *
 * Without --fresh, an unfinished run of the same configuration in
 * OUTPUT_DIR/latest (no summary.json yet, a checkpoint present) is resumed
 * where its last checkpoint left it; `make resume` (--resume) insists on
 * resuming. SIGINT or SIGTERM finishes the current step, writes a
 * checkpoint and exits with 130 / 143.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "gpt2/gpt2.h"
#include "gpt2/checkpoint.h"
#include "gpt2/dataloader.h"
#include "gpt2/dist.h"
#include "gpt2/step.h"
#include "gpt2/tokenizer.h"
#include "gpt2/train.h"
#include "kgpt/proc.h"
#include "kgpt/rng.h"
#include <generated/config_text.h>

#define SAMPLE_TOKENS	64

/* ------------------------------------------------------------------------
 * Small utilities
 */

static int mkdir_p(const char *path)
{
	char buf[4096];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

static int write_file(const char *dir, const char *name, const char *text)
{
	char path[4096];
	FILE *f;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f) {
		rc = -errno;
		fprintf(stderr, "kgpt: cannot write %s: %s\n", path, strerror(-rc));
		return rc;
	}
	if (fputs(text, f) < 0)
		rc = -EIO;
	if (fclose(f) && !rc)
		rc = -errno;
	if (rc)
		fprintf(stderr, "kgpt: error writing %s: %s\n", path, strerror(-rc));
	return rc;
}

/* ------------------------------------------------------------------------
 * Learning-rate schedule: linear warmup over CONFIG_GPT2_WARMUP_STEPS, then
 * cosine decay to GPT2_MIN_LR over the budget. The budget fraction is the
 * larger of elapsed/KGPT_MAX_TIME and step/CONFIG_GPT2_MAX_ITERS (whichever bound ends
 * the run first).
 */
double budget_fraction(int step, double elapsed)
{
	const double max_time = KGPT_MAX_TIME, max_iters = CONFIG_GPT2_MAX_ITERS;
	double f = 0.0;

	if (max_time > 0)
		f = elapsed / max_time;
	if (max_iters > 0 && step / max_iters > f)
		f = step / max_iters;
	return f < 1.0 ? f : 1.0;
}

float lr_at(int step, double frac)
{
	const int warmup = CONFIG_GPT2_WARMUP_STEPS;

	if (step < warmup)
		return GPT2_LR * (step + 1) / warmup;
	if (!IS_ENABLED(CONFIG_GPT2_DECAY_LR))
		return GPT2_LR;
	return GPT2_MIN_LR + 0.5f * (GPT2_LR - GPT2_MIN_LR) * (1.0f + cosf((float)M_PI * frac));
}

/* ------------------------------------------------------------------------
 * Evaluation: mean loss over the same EVAL_SAMPLES validation batches,
 * shared out among the data-parallel ranks (batch i on rank i mod N).
 */
float evaluate(struct train *tr)
{
	double acc[2];
	int n;

	acc[0] = gpt2_eval_loss_part(&tr->model, &tr->val, CONFIG_GPT2_EVAL_SAMPLES,
				     dist_rank(), dist_size(), tr->inputs, tr->targets, &n);
	acc[1] = n;
	dist_sum_doubles(acc, 2);
	return acc[1] > 0 ? (float)(acc[0] / acc[1]) : NAN;
}

/* ------------------------------------------------------------------------
 * Metrics: one row per log line and per evaluation, through the metrics
 * sink (gpt2/metrics.h) to metrics.jsonl and the other subscribers.
 */
static cJSON *metrics_base(struct train *tr, const char *type)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "type", type);
	cJSON_AddNumberToObject(o, "iter", tr->step);
	cJSON_AddNumberToObject(o, "tokens", (double)tr->tokens);
	cJSON_AddNumberToObject(o, "elapsed_s", tr->elapsed);
	return o;
}

static void log_train(struct train *tr, float lr, float norm, double tok_s)
{
	cJSON *o = metrics_base(tr, "train");
	float loss = tr->log_loss_sum / tr->log_loss_n;

	tr->train_loss = loss;
	cJSON_AddNumberToObject(o, "lr", lr);
	cJSON_AddNumberToObject(o, "train_loss", loss);
	cJSON_AddNumberToObject(o, "train_perplexity", exp(loss));
	cJSON_AddNumberToObject(o, "tokens_per_s", tok_s);
	cJSON_AddNumberToObject(o, "grad_norm", norm);
	train_log_mechanisms(tr, o);
	metrics_log(&tr->metrics, o);
	tr->log_loss_sum = 0;
	tr->log_loss_n = 0;
}

static void log_eval(struct train *tr, float val_loss)
{
	cJSON *o = metrics_base(tr, "eval");

	tr->val_loss = val_loss;
	if (val_loss < tr->best_val_loss)
		tr->best_val_loss = val_loss;
	cJSON_AddNumberToObject(o, "val_loss", val_loss);
	cJSON_AddNumberToObject(o, "val_perplexity", exp(val_loss));
	cJSON_AddNumberToObject(o, "best_val_loss", tr->best_val_loss);
	metrics_log(&tr->metrics, o);
}

/* ------------------------------------------------------------------------
 * Console: a progress line with ETA, and a summary at the end.
 */
static void fmt_time(char *buf, size_t len, double s)
{
	if (s < 0 || !isfinite(s))
		snprintf(buf, len, "?");
	else if (s < 120)
		snprintf(buf, len, "%.0fs", s);
	else if (s < 7200)
		snprintf(buf, len, "%.0fm%02.0fs", floor(s / 60), fmod(s, 60));
	else
		snprintf(buf, len, "%.0fh%02.0fm", floor(s / 3600), fmod(s / 60, 60));
}

static void progress(struct train *tr, float loss, float lr, double tok_s)
{
	char eta[32], el[32];
	double frac = budget_fraction(tr->step, tr->elapsed);

	fmt_time(el, sizeof(el), tr->elapsed);
	fmt_time(eta, sizeof(eta), frac > 0 ? tr->elapsed * (1 - frac) / frac : -1);
	printf("%sstep %6d | loss %.4f | lr %.2e | %7.0f tok/s | %s elapsed | %3.0f%% | ETA %s%s",
	       tr->tty ? "\r" : "", tr->step, loss, lr, tok_s, el, 100 * frac, eta,
	       tr->tty ? "   " : "\n");
	fflush(stdout);
}

/* ------------------------------------------------------------------------
 * Run folder
 */
static cJSON *config_json(void);

/* The metrics sink of the run in tr->run_dir; resume: metrics.jsonl is cut
 * back to its length at the checkpoint, bytes. */
static int open_metrics(struct train *tr, int resume, uint64_t bytes)
{
	struct metrics_run run = {
		.run_dir = tr->run_dir, .resume = resume, .resume_bytes = bytes,
	};
	cJSON *config = config_json();
	int rc;

	run.config = config;
	rc = metrics_open(&tr->metrics, &run);
	cJSON_Delete(config);
	return rc;
}

static int open_run_dir(struct train *tr)
{
	char stamp[64], latest[4200], tmp[4200];
	time_t t = time(NULL);
	int rc;

	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", localtime(&t));
	snprintf(tr->run_dir, sizeof(tr->run_dir), "%s", CONFIG_OUTPUT_DIR);
	rc = mkdir_p(CONFIG_OUTPUT_DIR);
	for (int i = 0; !rc; i++) {
		snprintf(tr->run_dir, sizeof(tr->run_dir), "%s/%s-%s%s%.0d", CONFIG_OUTPUT_DIR,
			 CONFIG_TRACKER_PROJECT, stamp, i ? "-" : "", i);
		if (mkdir(tr->run_dir, 0755) == 0)
			break;
		/* a run of the same second: the next name, never a shared folder */
		rc = errno == EEXIST && i < 1000 ? 0 : -errno;
	}
	if (rc) {
		fprintf(stderr, "kgpt: cannot create the run folder %s: %s\n"
			"kgpt: check CONFIG_OUTPUT_DIR (\"%s\") is writable (make menuconfig, Output)\n",
			tr->run_dir, strerror(-rc), CONFIG_OUTPUT_DIR);
		return rc;
	}
	if (write_file(tr->run_dir, "config", kgpt_config_text) ||
	    write_file(tr->run_dir, "autoconf.h", kgpt_autoconf_text))
		return -EIO;
	snprintf(latest, sizeof(latest), "%s/latest", CONFIG_OUTPUT_DIR);
	snprintf(tmp, sizeof(tmp), "%s/.latest.%d", CONFIG_OUTPUT_DIR, (int)getpid());
	unlink(tmp);
	if (symlink(strrchr(tr->run_dir, '/') + 1, tmp) || rename(tmp, latest)) {
		fprintf(stderr, "kgpt: warning: cannot point %s at this run: %s; `make resume`, "
			"`make sample` and build/generate will find the previous run there\n",
			latest, strerror(errno));
		unlink(tmp);
	}
	return open_metrics(tr, 0, 0);
}

/* ------------------------------------------------------------------------
 * Sample: SAMPLE_TOKENS tokens after <|endoftext|>, sampled from the
 * model's distribution with the run's seed (no KV cache: the forward pass
 * reruns on the growing context, cheap for this length).
 */
static void write_sample(struct train *tr)
{
	int ctx[GPT2_T];
	float *logits = malloc(GPT2_VP * sizeof(float));
	struct kgpt_rng rng;
	char *text = NULL, *clean;
	size_t len;
	int n = 1;

	if (!logits || !tr->tok_ok)
		goto out;
	kgpt_rng_seed(&rng, CONFIG_SEED + 7);
	ctx[0] = GPT2_EOT;
	while (n < SAMPLE_TOKENS + 1 && n < GPT2_T) {
		double sum = 0, r, acc = 0, mx = -INFINITY;
		int next = 0;

		gpt2_forward(&tr->model, ctx, NULL, 1, n);
		gpt2_logits(&tr->model, n - 1, logits);
		for (int i = 0; i < GPT2_V; i++)
			mx = logits[i] > mx ? logits[i] : mx;
		for (int i = 0; i < GPT2_V; i++)
			sum += exp(logits[i] - mx);
		r = kgpt_rng_uniform(&rng) * sum;
		for (next = 0; next < GPT2_V - 1; next++) {
			acc += exp(logits[next] - mx);
			if (acc > r)
				break;
		}
		ctx[n++] = next;
	}
	if (tokenizer_decode(&tr->tok, ctx + 1, n - 1, &text, &len))
		goto out;
	clean = utf8_sanitize(text, len);
	if (clean) {
		write_file(tr->run_dir, "sample.txt", clean);
		printf("\n--- sample (%d tokens) ---\n%s\n---\n", n - 1, clean);
		free(clean);
	}
out:
	free(text);
	free(logits);
}

/* ------------------------------------------------------------------------
 * Loss plot through gnuplot, when it is installed.
 */
static void write_plot(struct train *tr)
{
	static const char extract[] =
		"cd \"$KGPT_RUN_DIR\" && "
		"sed -n 's/.*\"type\":\"train\",\"iter\":\\([0-9.e+-]*\\),.*\"train_loss\":\\([0-9.e+-]*\\).*/\\1 \\2/p' metrics.jsonl > .train.dat && "
		"sed -n 's/.*\"type\":\"eval\",\"iter\":\\([0-9.e+-]*\\),.*\"val_loss\":\\([0-9.e+-]*\\).*/\\1 \\2/p' metrics.jsonl > .val.dat && "
		"gnuplot .loss.gp 2>/dev/null; rc=$?; rm -f .train.dat .val.dat .loss.gp; exit $rc";
	char path[4200];
	FILE *f;

	if (system("command -v gnuplot >/dev/null 2>&1")) {
		printf("kgpt: gnuplot not found, no loss.png (apt-get install gnuplot-nox); "
		       "the data is in %s/metrics.jsonl\n", tr->run_dir);
		return;
	}
	/* the script is a file and the folder an environment variable, so no
	 * name from .config ever becomes shell syntax */
	snprintf(path, sizeof(path), "%s/.loss.gp", tr->run_dir);
	f = fopen(path, "w");
	if (!f) {
		printf("kgpt: cannot write %s (%s); no loss.png\n", path, strerror(errno));
		return;
	}
	fputs("set terminal png size 900,540\nset output 'loss.png'\nset title '", f);
	for (const char *p = CONFIG_TRACKER_PROJECT; *p; p++) {
		if (*p == '\'')
			fputc('\'', f);	/* '' is a quote in gnuplot's '...' */
		fputc(*p, f);
	}
	fputs(": loss' noenhanced\nset xlabel 'step'\nset ylabel 'cross-entropy (nats)'\n"
	      "set grid\nplot '.train.dat' with lines lw 2 title 'train_loss' noenhanced, "
	      "'.val.dat' with linespoints lw 2 pt 7 title 'val_loss' noenhanced\n", f);
	if (fclose(f)) {
		printf("kgpt: cannot write %s; no loss.png\n", path);
		return;
	}
	setenv("KGPT_RUN_DIR", tr->run_dir, 1);
	if (system(extract))
		printf("kgpt: gnuplot failed; no loss.png\n");
}

/* ------------------------------------------------------------------------
 * summary.json and the console summary
 */
static cJSON *config_json(void)
{
	cJSON *o = cJSON_CreateObject();
	const char *p = kgpt_config_text;

	while (*p) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		char line[1024];
		char *eq;

		snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) - 1 ? n : sizeof(line) - 1), p);
		eq = strchr(line, '=');
		if (!strncmp(line, "CONFIG_", 7) && eq) {
			char *v = eq + 1;
			size_t vl = strlen(v);

			*eq = 0;
			if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
				v[vl - 1] = 0;
				cJSON_AddStringToObject(o, line + 7, v + 1);
			} else if (!strcmp(v, "y")) {
				cJSON_AddTrueToObject(o, line + 7);
			} else {
				cJSON_AddNumberToObject(o, line + 7, atof(v));
			}
		}
		p += n + (e ? 1 : 0);
	}
	return o;
}

/* RUN/summary.json, which marks the run finished. Returns 0 or a negative
 * errno after a message. */
static int write_summary(struct train *tr)
{
	cJSON *o = cJSON_CreateObject();
	char *s;
	int rc;

	cJSON_AddNumberToObject(o, "val_loss", tr->val_loss);
	cJSON_AddNumberToObject(o, "val_perplexity", exp(tr->val_loss));
	cJSON_AddNumberToObject(o, "train_loss", tr->train_loss);
	cJSON_AddNumberToObject(o, "train_perplexity", exp(tr->train_loss));
	cJSON_AddNumberToObject(o, "best_val_loss", tr->best_val_loss);
	cJSON_AddNumberToObject(o, "best_perplexity", exp(tr->best_val_loss));
	cJSON_AddNumberToObject(o, "iters", tr->step);
	cJSON_AddNumberToObject(o, "tokens", (double)tr->tokens);
	cJSON_AddNumberToObject(o, "wall_s", tr->elapsed);
	cJSON_AddNumberToObject(o, "tokens_per_s", tr->elapsed > 0 ? tr->tokens / tr->elapsed : 0);
	cJSON_AddNumberToObject(o, "params", (double)tr->model.num_trainable);
	cJSON_AddNumberToObject(o, "peak_rss_bytes", (double)kgpt_peak_rss_bytes());
	cJSON_AddStringToObject(o, "stopped_by", tr->stop_reason);
	if (dist_size() > 1) {
		cJSON_AddNumberToObject(o, "ranks", dist_size());
		cJSON_AddNumberToObject(o, "allreduce_bytes_per_step",
					(double)tr->model.num_params * sizeof(real));
		cJSON_AddNumberToObject(o, "allreduce_s_per_step", tr->allreduce_steps ?
					tr->allreduce_s / tr->allreduce_steps : 0);
	}
	train_summary_mechanisms(tr, o);
	metrics_summary(&tr->metrics, o);
	cJSON_AddItemToObject(o, "config", config_json());
	s = cJSON_Print(o);
	rc = s ? write_file(tr->run_dir, "summary.json", s) : -ENOMEM;
	if (!s)
		fprintf(stderr, "kgpt: out of memory writing %s/summary.json\n", tr->run_dir);
	free(s);
	cJSON_Delete(o);
	return rc;
}

static void print_summary(struct train *tr)
{
	static const char *const files[] = {
		"model.bin", "summary.json", "metrics.jsonl", "sample.txt", "loss.png",
		"checkpoints/",
	};
	char el[32];

	fmt_time(el, sizeof(el), tr->elapsed);
	printf("\n==================== kgpt summary ====================\n");
	printf("  run             %s\n", tr->run_dir);
	printf("  model           n_layer %d, n_head %d, n_embd %d, block_size %d, %.2fM params\n",
	       GPT2_L, GPT2_NH, GPT2_C, GPT2_T, tr->model.num_trainable / 1e6);
	printf("  trained         %d steps, %.2fM tokens in %s (%.0f tokens/s), stopped by %s\n",
	       tr->step, tr->tokens / 1e6, el, tr->elapsed > 0 ? tr->tokens / tr->elapsed : 0,
	       tr->stop_reason);
	printf("  train_loss      %.4f  (perplexity %.2f)\n", tr->train_loss, exp(tr->train_loss));
	printf("  val_loss        %.4f  (perplexity %.2f)\n", tr->val_loss, exp(tr->val_loss));
	printf("  best_val_loss   %.4f  (perplexity %.2f)\n", tr->best_val_loss,
	       exp(tr->best_val_loss));
	printf("  peak RSS        %.1f MiB\n", kgpt_peak_rss_bytes() / 1048576.0);
	if (dist_size() > 1)
		printf("  data parallel   %d ranks; gradient all-reduce %.1f MiB, %.1f ms per step "
		       "(rank 0)\n", dist_size(), tr->model.num_params * sizeof(real) / 1048576.0,
		       tr->allreduce_steps ? 1e3 * tr->allreduce_s / tr->allreduce_steps : 0);
	train_print_mechanisms(tr);
	printf("  files          ");
	for (int i = 0; i < (int)(sizeof(files) / sizeof(files[0])); i++) {
		char path[4300];

		snprintf(path, sizeof(path), "%s/%s", tr->run_dir, files[i]);
		if (!access(path, F_OK))
			printf(" %s", files[i]);
	}
	printf("\n");
	printf("======================================================\n");
}

/* ------------------------------------------------------------------------
 * Checkpoints, resume and signals
 *
 * RUN/checkpoints/step_N (gpt2/checkpoint.h) holds the model, the AdamW
 * moments and struct train_state below. Restoring all of it makes a
 * resumed run continue bit for bit: the step fixes the learning rate (with
 * the elapsed time when there is a time budget), the dropout masks and
 * AdamW's bias correction; the data loader's position (shard, batch and
 * the rng that orders the epoch) fixes the next batches; metrics.jsonl is
 * cut back to its length at the checkpoint, so no row is doubled or lost.
 */
#define TRAIN_STATE_MAGIC	0x3173746bu	/* "kts1" */
#define TRAIN_STATE_VERSION	1

struct train_state {		/* saved byte for byte: fixed-size fields */
	uint32_t magic, version;
	uint64_t config_hash;	/* FNV-1a 64 of the .config text */
	int64_t step;		/* optimizer steps done */
	int64_t tokens;		/* training tokens seen */
	double elapsed;		/* training seconds so far */
	float train_loss, val_loss, best_val_loss;
	float log_loss_sum;	/* of the log interval in progress */
	int32_t log_loss_n;
	int32_t max_time_s;	/* KGPT_MAX_TIME of the build that saved it */
	uint64_t metrics_bytes;	/* length of metrics.jsonl */
	struct dataloader_pos train_pos;
};

enum run_mode {
	RUN_AUTO,	/* resume OUTPUT_DIR/latest if it is ours and unfinished */
	RUN_RESUME,	/* --resume: resume OUTPUT_DIR/latest or fail */
	RUN_FRESH,	/* --fresh: always a new run */
};

static volatile sig_atomic_t stop_signal;	/* SIGINT or SIGTERM seen */
static int stop_agreed;			/* stop_signal of any rank, at share_step() */
static atomic_int stop_count;		/* stop signals taken, any thread */
static int stop_at;			/* --stop-at STEP; 0: none */
static int data_failed;			/* the training loader failed */
static int saved_step = -1;		/* step of the last checkpoint */
static uint64_t saved_metrics;		/* metrics.jsonl length then */

static void on_stop_signal(int sig)
{
	static const char first[] = "\nkgpt: interrupted: finishing this step, then "
		"writing a checkpoint (interrupt again to quit at once)\n";
	static const char again[] = "\nkgpt: interrupted again: quitting now; the last "
		"complete checkpoint is kept (make resume)\n";
	ssize_t r;

	/* any thread (OpenMP workers too) may take the signal: count atomically */
	if (atomic_fetch_add(&stop_count, 1)) {
		r = write(STDERR_FILENO, again, sizeof(again) - 1);
		_exit(128 + sig);
	}
	stop_signal = sig;
	r = write(STDERR_FILENO, first, sizeof(first) - 1);
	(void)r;
}

static void catch_stop_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGINT);		/* one handler at a time per thread */
	sigaddset(&sa.sa_mask, SIGTERM);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static uint64_t config_hash(void)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const char *p = kgpt_config_text; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
	return h;
}

/* The trainer's state in st (metrics_bytes left 0). */
static void train_state_get(struct train *tr, struct train_state *st)
{
	memset(st, 0, sizeof(*st));
	st->magic = TRAIN_STATE_MAGIC;
	st->version = TRAIN_STATE_VERSION;
	st->config_hash = config_hash();
	st->step = tr->step;
	st->tokens = tr->tokens;
	st->elapsed = tr->elapsed;
	st->train_loss = tr->train_loss;
	st->val_loss = tr->val_loss;
	st->best_val_loss = tr->best_val_loss;
	st->log_loss_sum = tr->log_loss_sum;
	st->log_loss_n = tr->log_loss_n;
	st->max_time_s = KGPT_MAX_TIME;
	dataloader_tell(&tr->train, &st->train_pos);
}

/* The trainer's counters from st (the data position is the caller's). */
static void train_state_set(struct train *tr, const struct train_state *st)
{
	tr->step = (int)st->step;
	tr->tokens = (long)st->tokens;
	tr->elapsed = st->elapsed;
	tr->train_loss = st->train_loss;
	tr->val_loss = st->val_loss;
	tr->best_val_loss = st->best_val_loss;
	tr->log_loss_sum = st->log_loss_sum;
	tr->log_loss_n = st->log_loss_n;
}

/* Write RUN/checkpoints/step_N, unless this very state is saved already.
 * Rank 0 alone writes; the other ranks hold the same state. */
static int save_checkpoint(struct train *tr)
{
	struct train_state st;
	int rc;

	if (!IS_ENABLED(CONFIG_SAVE_CHECKPOINT) || !dist_is_root())
		return 0;
	train_state_get(tr, &st);
	rc = metrics_sync(&tr->metrics, &st.metrics_bytes);
	if (rc)
		return rc;
	if (tr->step == saved_step && st.metrics_bytes == saved_metrics)
		return 0;
	rc = ckpt_save(tr->run_dir, &tr->model, &st, sizeof(st), CKPT_KEEP_DEFAULT);
	if (!rc) {
		saved_step = tr->step;
		saved_metrics = st.metrics_bytes;
	}
	return rc;
}

static void train_after_step(struct train *tr)
{
#ifdef CONFIG_CHECKPOINT_INTERVAL
	if (CONFIG_CHECKPOINT_INTERVAL > 0 && tr->step % CONFIG_CHECKPOINT_INTERVAL == 0 &&
	    save_checkpoint(tr))
		fprintf(stderr, "kgpt: warning: the checkpoint of step %d failed (above); "
			"training goes on and tries again at step %d\n", tr->step,
			tr->step + CONFIG_CHECKPOINT_INTERVAL);
#endif
}

/*
 * The final checkpoint and RUN/model.bin, the final model in llm.c's
 * format (a hard link to the checkpoint's copy where the filesystem
 * allows). Returns 0 or a negative errno after a message.
 */
static int train_finish(struct train *tr)
{
	char src[4200], dst[4200], tmp[4300];
	int rc;

	if (!IS_ENABLED(CONFIG_SAVE_CHECKPOINT))
		return 0;
	rc = save_checkpoint(tr);
	if (rc) {
		fprintf(stderr, "kgpt: the final checkpoint could not be written (above). The run "
			"stays unfinished: make room and run `make resume` to redo the steps after "
			"the last checkpoint.\n");
		return rc;
	}
	snprintf(src, sizeof(src), "%s/checkpoints/step_%06d/model.bin", tr->run_dir, tr->step);
	snprintf(dst, sizeof(dst), "%s/model.bin", tr->run_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", dst, (int)getpid());
	unlink(tmp);
	if (link(src, tmp) == 0 && rename(tmp, dst) == 0) {
		int fd = open(tr->run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd >= 0) {		/* the new name on disk too */
			fsync(fd);
			close(fd);
		}
		return 0;
	}
	unlink(tmp);
	return ckpt_write_llmc(dst, &tr->model);
}

/* After SIGINT, SIGTERM or --stop-at: checkpoint, and say how to go on. */
static int train_interrupted(struct train *tr)
{
	const char *why = stop_agreed == SIGTERM ? "SIGTERM" :
			  stop_agreed ? "SIGINT" : "--stop-at";
	int code = stop_agreed ? 128 + stop_agreed : 0;

	if (!dist_is_root())
		return code;

	if (tr->tty)
		printf("\n");
	fflush(stdout);
	if (!IS_ENABLED(CONFIG_SAVE_CHECKPOINT)) {
		uint64_t bytes;

		metrics_sync(&tr->metrics, &bytes);
		fprintf(stderr, "kgpt: %s: stopped after step %d. Checkpoints are off "
			"(CONFIG_SAVE_CHECKPOINT=n), so this run cannot be resumed.\n", why, tr->step);
		return code ? code : 1;
	}
	if (save_checkpoint(tr)) {
		fprintf(stderr, "kgpt: %s: stopped after step %d, but its checkpoint could not "
			"be written (above). %s\n", why, tr->step, saved_step >= 0 ?
			"`make resume` continues from the last complete checkpoint." :
			"There is no checkpoint to resume from.");
		return code ? code : 1;
	}
	fprintf(stderr, "kgpt: %s: stopped after step %d; checkpoint %s/checkpoints/step_%06d "
		"written.\nkgpt: resume with `make resume` (or train_gpt2 --resume)\n",
		why, tr->step, tr->run_dir, tr->step);
	return code;
}

/* OUTPUT_DIR/latest as a path in dir; -ENOENT when there is none. */
static int latest_run(char *dir, size_t len)
{
	char link_path[4200], target[4096];
	ssize_t n;

	snprintf(link_path, sizeof(link_path), "%s/latest", CONFIG_OUTPUT_DIR);
	n = readlink(link_path, target, sizeof(target) - 1);
	if (n < 0)
		return -ENOENT;
	target[n] = 0;
	if (target[0] == '/')
		n = snprintf(dir, len, "%s", target);
	else
		n = snprintf(dir, len, "%s/%s", CONFIG_OUTPUT_DIR, target);
	return n < (ssize_t)len ? 0 : -ENAMETOOLONG;
}

static int exists_in(const char *dir, const char *name)
{
	char path[4400];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

/* 1 when dir/checkpoints holds a step_N directory (complete or not). */
static int has_checkpoint(const char *dir)
{
	char path[4400];
	struct dirent *d;
	int found = 0;
	DIR *dp;

	snprintf(path, sizeof(path), "%s/checkpoints", dir);
	dp = opendir(path);
	while (dp && !found && (d = readdir(dp)))
		found = !strncmp(d->d_name, "step_", 5);
	if (dp)
		closedir(dp);
	return found;
}

/* 1 when dir/config is the .config this trainer was built from. */
static int same_config(const char *dir)
{
	size_t want = strlen(kgpt_config_text), got;
	char path[4400], *buf;
	FILE *f;
	int same;

	snprintf(path, sizeof(path), "%s/config", dir);
	f = fopen(path, "r");
	buf = malloc(want + 2);
	if (!f || !buf) {
		if (f)
			fclose(f);
		free(buf);
		return 0;
	}
	got = fread(buf, 1, want + 1, f);
	fclose(f);
	same = got == want && !memcmp(buf, kgpt_config_text, want);
	free(buf);
	return same;
}

/*
 * Which run to continue. RUN_RESUME: OUTPUT_DIR/latest, which must be
 * unfinished (no summary.json). RUN_AUTO: OUTPUT_DIR/latest only when it
 * is unfinished, built from this very .config and has a checkpoint.
 * Returns 1 with its path in dir, 0 for a new run, or a negative errno
 * after a message.
 */
static int run_to_resume(enum run_mode mode, char *dir, size_t len)
{
	if (mode == RUN_FRESH)
		return 0;
	if (latest_run(dir, len)) {
		if (mode == RUN_AUTO)
			return 0;
		fprintf(stderr, "kgpt: nothing to resume: %s/latest does not exist; `make` "
			"starts a run\n", CONFIG_OUTPUT_DIR);
		return -ENOENT;
	}
	if (exists_in(dir, "summary.json")) {
		if (mode == RUN_AUTO)
			return 0;
		fprintf(stderr, "kgpt: nothing to resume: %s is finished (it has summary.json); "
			"`make` starts a new run\n", dir);
		return -EEXIST;
	}
	if (mode == RUN_AUTO && !same_config(dir)) {
		printf("kgpt: %s is unfinished but was built from another .config; starting a "
		       "new run (to continue that one: cp %s/config .config && make resume)\n",
		       dir, dir);
		return 0;
	}
	if (mode == RUN_AUTO && !has_checkpoint(dir)) {
		printf("kgpt: %s is unfinished but has no checkpoint; starting a new run\n", dir);
		return 0;
	}
	return 1;
}

/* Continue the run in dir from its newest complete checkpoint. */
static int resume_run(struct train *tr, const char *dir)
{
	char ck[4200];
	struct train_state st;
	int rc;

	rc = ckpt_load_latest(dir, &tr->model, &st, sizeof(st), ck, sizeof(ck));
	if (rc == -ENOENT)
		fprintf(stderr, "kgpt: %s has no checkpoint: it stopped before its first one\n",
			dir);
	if (!rc && (st.magic != TRAIN_STATE_MAGIC || st.version != TRAIN_STATE_VERSION ||
		    st.step != tr->model.step)) {
		fprintf(stderr, "kgpt: %s: the trainer state is not this trainer's (magic %08x, "
			"version %u, step %lld / %d)\n", ck, st.magic, st.version,
			(long long)st.step, tr->model.step);
		rc = -EINVAL;
	}
	if (!rc && st.max_time_s != KGPT_MAX_TIME) {
		/* the budget sets the learning-rate schedule: resuming under
		 * another one would not continue the same run */
		fprintf(stderr, "kgpt: %s was trained with a time budget of %d s (TIME=%d), "
			"this build has %d s; resume it with `make resume TIME=%d`\n", dir,
			(int)st.max_time_s, (int)st.max_time_s, KGPT_MAX_TIME, (int)st.max_time_s);
		rc = -EINVAL;
	}
	if (!rc)
		rc = dataloader_seek(&tr->train, &st.train_pos);
	if (rc) {
		fprintf(stderr, "kgpt: cannot resume %s (above); nothing was changed. "
			"`make FRESH=1` (train_gpt2 --fresh) starts a new run instead.\n", dir);
		return rc;
	}
	if (st.config_hash != config_hash())
		fprintf(stderr, "kgpt: warning: %s was built from another .config (see its "
			"config file); the sizes match, so it goes on with this build's settings\n",
			dir);

	snprintf(tr->run_dir, sizeof(tr->run_dir), "%s", dir);
	rc = open_metrics(tr, 1, st.metrics_bytes);
	if (rc)
		return rc;
	train_state_set(tr, &st);
	saved_step = tr->step;
	saved_metrics = st.metrics_bytes;
	printf("kgpt: resuming %s from step %d (%s)\n", dir, tr->step, ck);
	return 0;
}

/* A new run folder (from init_from's parameters if given), or a resumed one. */
static int start_or_resume(struct train *tr, enum run_mode mode, const char *init_from)
{
	char dir[4096];
	int rc = init_from ? 0 : run_to_resume(mode, dir, sizeof(dir));

	if (rc < 0)
		return rc;
	if (rc)
		return resume_run(tr, dir);
	if (init_from) {
		rc = ckpt_load_llmc(init_from, &tr->model);
		if (rc) {
			fprintf(stderr, "kgpt: cannot start from %s (above); nothing was written\n",
				init_from);
			return rc;
		}
		printf("kgpt: starting from the parameters of %s\n", init_from);
		if (gpt2_ra_from_baseline(&tr->model))
			printf("kgpt: RA: the last %d rows of every head's query and key projections swapped (the reciprocal repack of a baseline)\n",
			       GPT2_RA_R);
	}
	return open_run_dir(tr);
}

/* ------------------------------------------------------------------------
 * Training
 */
/*
 * Data parallel: the step's GPT2_ACCUM * N micro-batches are dealt out
 * among N ranks, so each rank needs at least one batch of its own in an
 * epoch. Returns 0, or -EINVAL after a message naming what to change.
 */
static int check_ranks(struct train *tr)
{
	size_t batches = dataloader_batches(&tr->train);
	const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
	long cores = sysconf(_SC_NPROCESSORS_ONLN);

	if (dist_size() == 1)
		return 0;
	if (batches < (size_t)dist_size()) {
		if (dist_is_root())
			fprintf(stderr, "kgpt: %d ranks, but the training data (%s/%s) holds only "
				"%zu batches of B %d x T %d tokens: every rank needs one of its own. "
				"Use at most NP=%zu, or a smaller CONFIG_BATCH_SIZE or block_size "
				"(make menuconfig, Training).\n", dist_size(), CONFIG_DATA_DIR,
				CONFIG_GPT2_DATASET_TRAIN, batches, GPT2_B, GPT2_T, batches);
		return -EINVAL;
	}
	if (dist_is_root() && local && cores > 0 && (long)atoi(local) * tr->threads > cores)
		fprintf(stderr, "kgpt: warning: %s ranks x %d threads on a machine of %ld cores: "
			"they compete for the cores; set OMP_NUM_THREADS to %ld (make NP= does)\n",
			local, tr->threads, cores, cores / atoi(local) > 0 ? cores / atoi(local) : 1);
	return 0;
}

/*
 * Data parallel: every rank starts from rank 0's state, the initial
 * parameters of a new run or a resumed checkpoint (parameters, optimizer
 * state, counters, data position). Returns 0 or a negative errno, the
 * same on every rank.
 */
static int share_start(struct train *tr)
{
	struct gpt2 *m = &tr->model;
	struct optim_buf ob[OPTIM_MAX_BUFS];
	int nb = optim_state_bufs(&m->opt, m->num_params, ob);
	struct train_state st;
	int rc = 0;

	if (dist_size() == 1)
		return 0;
	if (dist_is_root())
		train_state_get(tr, &st);
	dist_bcast(&st, sizeof(st));
	gpt2_sync_for_host(m);
	dist_bcast(m->params, m->num_params * sizeof(*m->params));
	for (int i = 0; i < nb; i++)
		dist_bcast(ob[i].p, ob[i].bytes);
	gpt2_sync_for_backend(m);
	dist_bcast(&m->step, sizeof(m->step));
	if (!dist_is_root()) {
		train_state_set(tr, &st);
		rc = dataloader_seek(&tr->train, &st.train_pos);
	}
	return dist_any(rc) ? -EINVAL : 0;
}

static int setup(struct train *tr, enum run_mode mode, const char *init_from)
{
	char train_pat[4096], val_pat[4096], vocab[4096];
	int rc;

	tr->tty = isatty(STDOUT_FILENO) && dist_is_root();
	tr->best_val_loss = INFINITY;
	tr->val_loss = NAN;
	tr->train_loss = NAN;
	snprintf(tr->stop_reason, sizeof(tr->stop_reason), "?");
	dataloader_path(train_pat, sizeof(train_pat), CONFIG_DATA_DIR, CONFIG_GPT2_DATASET_TRAIN);
	dataloader_path(val_pat, sizeof(val_pat), CONFIG_DATA_DIR, CONFIG_GPT2_DATASET_VAL);
	rc = dataloader_open(&tr->train, train_pat, GPT2_B, GPT2_T, CONFIG_SEED, 1);
	if (!rc)
		rc = dataloader_open(&tr->val, val_pat, GPT2_B, GPT2_T, CONFIG_SEED, 0);
	if (dist_any(rc))
		return rc ? rc : -ECANCELED;
	rc = check_ranks(tr);
	if (rc)
		return rc;
	/* the sample is rank 0's: only it needs the vocabulary */
	snprintf(vocab, sizeof(vocab), "%s/gpt2", CONFIG_DATA_DIR);
	rc = dist_is_root() ? tokenizer_load(&tr->tok, vocab) : 0;
	if (rc)
		fprintf(stderr, "kgpt: cannot load the GPT-2 vocabulary %s/{encoder.json,vocab.bpe} "
			"(above); `make data` fetches it\n", vocab);
	tr->tok_ok = !rc && dist_is_root();
	if (!rc)
		rc = gpt2_init(&tr->model, CONFIG_SEED);
	if (!rc && dist_is_root())
		rc = start_or_resume(tr, mode, init_from);
	if (dist_any(rc))
		return rc ? rc : -ECANCELED;	/* rank 0 said why */
	return share_start(tr);
}

static void print_header(struct train *tr)
{
	printf("kgpt: GPT-2 n_layer %d n_head %d n_embd %d block_size %d | %.2fM params | "
	       "B %d x T %d x accum %d%s = %d tokens/step\n",
	       GPT2_L, GPT2_NH, GPT2_C, GPT2_T, tr->model.num_trainable / 1e6, GPT2_B, GPT2_T,
	       GPT2_ACCUM, dist_size() > 1 ? " x ranks" : "", GPT2_N * GPT2_ACCUM * dist_size());
	printf("kgpt: lr %.2e (warmup %d, %s), weight decay %.2g, clip %.2g, dropout %.2g, "
	       "seed %d, %d threads\n", GPT2_LR, CONFIG_GPT2_WARMUP_STEPS,
	       IS_ENABLED(CONFIG_GPT2_DECAY_LR) ? "cosine decay" : "constant",
	       GPT2_WD, GPT2_CLIP, GPT2_DROPOUT, CONFIG_SEED, tr->threads);
	if (KGPT_MAX_TIME > 0)
		printf("kgpt: budget %d s, ", KGPT_MAX_TIME);
	else
		printf("kgpt: budget no time limit, ");
	if (CONFIG_GPT2_MAX_ITERS > 0)
		printf("%d steps", CONFIG_GPT2_MAX_ITERS);
	else
		printf("no step limit");
	printf(" | memory %.1f MiB planned | run %s\n", gpt2_bytes(&tr->model) / 1048576.0,
	       tr->run_dir);
	if (dist_size() > 1)
		printf("kgpt: data parallel: %d ranks x %d threads, %d micro-batches per step "
		       "(micro-batch j on rank j mod %d), gradients summed with MPI_Allreduce "
		       "(%.1f MiB per step)\n", dist_size(), tr->threads, GPT2_ACCUM * dist_size(),
		       dist_size(), tr->model.num_params * sizeof(real) / 1048576.0);
	train_print_mechanism_header(tr);
}

/* The trainer's batch source for gpt2_train_step(): its training loader. */
static int next_batch(void *arg, int *inputs, int *targets)
{
	return dataloader_next(arg, inputs, targets);
}

/*
 * One optimizer step over GPT2_ACCUM * N micro-batches, N data-parallel
 * ranks (gpt2_train_step(): micro-batch j is rank j mod N's, gradients
 * summed before clipping). Returns the mean loss; NAN with data_failed
 * set on every rank when any rank could not read its data.
 */
static float train_step(struct train *tr, float lr, float *norm)
{
	const struct gpt2_batches src = {
		.next = next_batch, .arg = &tr->train,
		.inputs = tr->inputs, .targets = tr->targets, .seed = CONFIG_SEED,
	};
	struct gpt2_step_result r;

	gpt2_train_step(&tr->model, &src, lr, &r);
	if (dist_size() > 1) {
		tr->allreduce_s += r.allreduce_s;
		tr->allreduce_steps++;
	}
	*norm = r.norm;
	if (r.data_failed)
		data_failed = 1;
	return r.loss;
}

/*
 * After each step, every rank agrees on the training time (rank 0's
 * clock: it sets the learning rate and ends a time budget) and on a stop
 * signal that reached any rank, so that all take the same decisions.
 */
static void share_step(struct train *tr, double t0)
{
	double s[2] = { kgpt_now_s() - t0, stop_signal };

	if (dist_size() > 1) {
		if (!dist_is_root())
			s[0] = 0;
		dist_max_doubles(s, 2);
	}
	tr->elapsed = s[0];
	stop_agreed = (int)s[1];
}

/* The end of the run's budget comes first: a run that reached it is
 * finished, whatever interrupted it at that step. */
static int should_stop(struct train *tr)
{
	if (CONFIG_GPT2_MAX_ITERS > 0 && tr->step >= CONFIG_GPT2_MAX_ITERS) {
		snprintf(tr->stop_reason, sizeof(tr->stop_reason), "max_iters");
		return 1;
	}
	if (KGPT_MAX_TIME > 0 && tr->elapsed >= KGPT_MAX_TIME) {
		snprintf(tr->stop_reason, sizeof(tr->stop_reason), "max_time");
		return 1;
	}
	if (stop_agreed || (stop_at > 0 && tr->step >= stop_at)) {
		snprintf(tr->stop_reason, sizeof(tr->stop_reason),
			 stop_agreed ? "signal" : "stop_at");
		return 1;
	}
	return 0;
}

static int interrupted(const struct train *tr)
{
	return !strcmp(tr->stop_reason, "signal") || !strcmp(tr->stop_reason, "stop_at");
}

/* Evaluate, log to metrics.jsonl and print the result on its own line. */
static void eval_and_print(struct train *tr)
{
	float val_loss = evaluate(tr);

	if (!dist_is_root())
		return;
	log_eval(tr, val_loss);
	printf("%seval  step %6d | val_loss %.4f | val_perplexity %.2f\n", tr->tty ? "\n" : "",
	       tr->step, tr->val_loss, exp(tr->val_loss));
}

static int train_loop(struct train *tr)
{
	double t_log = kgpt_now_s(), t0 = kgpt_now_s() - tr->elapsed;
	long tokens_log = 0;

	if (tr->step == 0)	/* the untrained model's val_loss, for reference */
		eval_and_print(tr);

	while (!should_stop(tr)) {
		float lr = lr_at(tr->step, budget_fraction(tr->step, tr->elapsed));
		float norm, loss = train_step(tr, lr, &norm);

		if (data_failed) {
			fprintf(stderr, "\nkgpt: step %d: cannot read the training data (above); "
				"stopping. The last complete checkpoint is kept.\n", tr->step + 1);
			snprintf(tr->stop_reason, sizeof(tr->stop_reason), "data");
			return -EIO;
		}
		if (!isfinite(loss) || !isfinite(norm)) {
			fprintf(stderr, "\nkgpt: step %d: loss is %f (grad norm %f); stopping. "
				"The last good checkpoint is kept; lower CONFIG_LEARNING_RATE or "
				"set CONFIG_GRAD_CLIP.\n", tr->step + 1, loss, norm);
			snprintf(tr->stop_reason, sizeof(tr->stop_reason), "nan");
			return -EDOM;
		}
		tr->step++;
		tr->tokens += (long)GPT2_N * GPT2_ACCUM * dist_size();
		tokens_log += (long)GPT2_N * GPT2_ACCUM * dist_size();
		share_step(tr, t0);
		tr->log_loss_sum += loss;
		tr->log_loss_n++;
		if (dist_is_root() &&
		    (tr->step % CONFIG_GPT2_LOG_INTERVAL == 0 || tr->step == 1)) {
			double tok_s = tokens_log / (kgpt_now_s() - t_log);

			progress(tr, loss, lr, tok_s);
			log_train(tr, lr, norm, tok_s);
			t_log = kgpt_now_s();
			tokens_log = 0;
		}
		if (tr->step % CONFIG_GPT2_EVAL_INTERVAL == 0) {
			eval_and_print(tr);
			t_log = kgpt_now_s();
		}
		train_after_step(tr);
	}
	return 0;
}

static void usage(void)
{
	printf("usage: train_gpt2 [--resume | --fresh] [--init-from FILE] [--stop-at STEP]\n"
	       "                  [--print-config] [--bench STEPS [--warmup W] [--json FILE]]\n"
	       "Trains the GPT-2 configured at build time (make menuconfig; make).\n"
	       "An unfinished run of the same .config in OUTPUT_DIR/latest is resumed.\n"
	       "  --resume         resume OUTPUT_DIR/latest (make resume); fail if impossible\n"
	       "  --fresh          start a new run even if the latest one is unfinished\n"
	       "  --init-from FILE start a new run from an llm.c model file's parameters\n"
	       "  --stop-at STEP   stop after STEP steps with a checkpoint, as on SIGINT\n"
	       "  --print-config   print the .config this binary was compiled from\n"
	       "  --bench STEPS    time STEPS training steps on random tokens after W warm-up\n"
	       "                   steps (default 1); no data needed, no run folder; --json\n"
	       "                   FILE writes the figures (make bench runs them all)\n");
}

/* Rank 0, a finished run: the final checkpoint, model.bin, the sample,
 * summary.json, the plot and the console summary. Returns the exit code. */
static int finish_run(struct train *tr)
{
	int rc;

	if (tr->tty)
		printf("\n");
	rc = train_finish(tr);
	if (!rc) {
		write_sample(tr);
		rc = write_summary(tr);
		if (rc)
			fprintf(stderr, "kgpt: the model and its final checkpoint are saved, but "
				"without summary.json the run counts as unfinished: make room in "
				"%s and run `make resume` to finish it\n", tr->run_dir);
	}
	if (!rc) {
		write_plot(tr);
		print_summary(tr);
	}
	if (metrics_close(&tr->metrics, rc ? 1 : 0) && !rc) {
		fprintf(stderr, "kgpt: the run is finished and saved, but not every metrics row "
			"reached its tracker (above); exit status 3\n");
		return 3;
	}
	return rc ? 1 : 0;
}

/* Set up, train and finish; every rank returns rank 0's exit code. */
static int run(struct train *tr, enum run_mode mode, const char *init_from)
{
	int rc;

#ifdef _OPENMP
	tr->threads = omp_get_max_threads();
#else
	tr->threads = 1;
#endif
	if (setup(tr, mode, init_from))
		return 1;
	if (dist_is_root())
		print_header(tr);
	catch_stop_signals();
	rc = train_loop(tr);
	if (!rc && interrupted(tr)) {
		rc = train_interrupted(tr);
		if (dist_is_root())
			metrics_close(&tr->metrics, rc);
	} else if (!rc) {
		if (tr->step % CONFIG_GPT2_EVAL_INTERVAL) {
			float val_loss = evaluate(tr);

			if (dist_is_root())
				log_eval(tr, val_loss);
		}
		rc = dist_is_root() ? finish_run(tr) : 0;
	} else {
		if (dist_is_root())
			metrics_close(&tr->metrics, 1);
		rc = 1;
	}
	dist_bcast(&rc, sizeof(rc));
	return rc;
}

static int run_main(int argc, char **argv)
{
	static struct train tr;
	enum run_mode mode = RUN_AUTO;
	const char *init_from = NULL, *bench_json = NULL;
	int bench = 0, warmup = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--print-config")) {
			if (dist_is_root())
				fputs(kgpt_config_text, stdout);
			return 0;
		} else if (!strcmp(a, "--help")) {
			if (dist_is_root())
				usage();
			return 0;
		} else if (!strcmp(a, "--resume") && mode != RUN_FRESH) {
			mode = RUN_RESUME;
		} else if (!strcmp(a, "--fresh") && mode != RUN_RESUME) {
			mode = RUN_FRESH;
		} else if (!strcmp(a, "--init-from") && i + 1 < argc) {
			init_from = argv[++i];
		} else if (!strcmp(a, "--stop-at") && i + 1 < argc && atoi(argv[i + 1]) > 0) {
			stop_at = atoi(argv[++i]);
		} else if (!strcmp(a, "--bench") && i + 1 < argc && atoi(argv[i + 1]) > 0) {
			bench = atoi(argv[++i]);
		} else if (!strcmp(a, "--warmup") && i + 1 < argc && atoi(argv[i + 1]) >= 0) {
			warmup = atoi(argv[++i]);
		} else if (!strcmp(a, "--json") && i + 1 < argc) {
			bench_json = argv[++i];
		} else {
			usage();
			return 2;
		}
	}
	if (bench && dist_size() > 1) {
		if (dist_is_root())
			fprintf(stderr, "kgpt: --bench times one process; run it without mpirun "
				"(make bench)\n");
		return 2;
	}
	if (bench)
		return train_bench(bench, warmup, bench_json);
	if (init_from && mode == RUN_RESUME) {
		fprintf(stderr, "kgpt: --init-from starts a new run; it cannot go with --resume\n");
		return 2;
	}
	return run(&tr, mode, init_from);
}

int main(int argc, char **argv)
{
	int rc;

	if (dist_init(&argc, &argv))
		return 1;
	rc = run_main(argc, argv);
	dist_finalize();
	return rc;
}
