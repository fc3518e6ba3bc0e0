// SPDX-License-Identifier: MIT
/*
 * The W&B subscriber of the metrics sink (gpt2/metrics.h), with
 * CONFIG_ENABLE_WANDB. The training thread only appends each row to
 * RUN/wandb-spool.jsonl (as metrics.jsonl: one line, flushed) and wakes
 * the uploader; a background pthread does every network transfer
 * (tracker/wandb-api.c), so training never waits on the server. What
 * the server has not acknowledged stays in the spool: the next run of the
 * same folder (--resume) or `make wandb-sync` delivers it.
 */
#include "gpt2/config.h"

#if IS_ENABLED(CONFIG_ENABLE_WANDB)
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <curl/curl.h>

#include "gpt2/metrics.h"
#include "tracker/wandb.h"

#define WANDB_SEND_INTERVAL	2.0	/* s between requests (server: 2/s per run) */
#define WANDB_HEARTBEAT		30.0	/* s without a request before a heartbeat */

struct wandb {
	struct wb_sender s;
	FILE *spool;
	int offline;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int closing;		/* under lock: send everything, then exit */
	int summary_new;	/* under lock: wandb-summary.json was rewritten */
	int exit_code;		/* under lock, with closing: the trainer's */
	double deadline;	/* closing: give up at this time (monotonic s) */
	int fatal;		/* the uploader stopped on a permanent error */
	int done;		/* the uploader delivered everything */
	double t0;		/* wall time the run started, for _runtime */
};

static double now_mono(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double now_wall(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* Wait on w->wake until monotonic time `until` or a signal. Under lock. */
static void wait_until(struct wandb *w, double until)
{
	struct timespec ts;
	double left = until - now_mono(), at;

	if (left <= 0)
		return;
	at = now_wall() + left;
	ts.tv_sec = (time_t)at;
	ts.tv_nsec = (long)((at - ts.tv_sec) * 1e9);
	pthread_cond_timedwait(&w->wake, &w->lock, &ts);
}

/* ------------------------------------------------------------------------
 * The uploader thread
 */
static void report(struct wandb *w, const char *what)
{
	fprintf(stderr, "\nkgpt: W&B: %s%s; rows stay in %s/wandb-spool.jsonl "
		"(make wandb-sync RUN=%s delivers them)\n", what, w->s.err, w->s.dir, w->s.dir);
}

/*
 * Under lock: what the training thread told since the last look. Returns
 * whether the run is closing; on the first look that it is, stores the
 * exit code (this thread owns w->s).
 */
static int take_news(struct wandb *w, int closing)
{
	if (w->closing && !closing)
		wb_set_exitcode(&w->s, w->exit_code);
	if (w->summary_new)
		w->s.summary_sent = 0;
	w->summary_new = 0;
	return w->closing;
}

static void *uploader(void *arg)
{
	struct wandb *w = arg;
	double last = now_mono(), next = last;
	int closing = 0, warned = 0;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		enum wb_step st;
		double now;

		if (!w->closing)
			wait_until(w, next > 0 ? next : now_mono() + WANDB_SEND_INTERVAL);
		closing = take_news(w, closing);
		now = now_mono();
		if (closing && now > w->deadline)
			break;
		if (!closing && now < next)
			continue;
		pthread_mutex_unlock(&w->lock);
		do {
			st = wb_step(&w->s, closing, now_mono() - last > WANDB_HEARTBEAT);
			if (st == WB_MORE || st == WB_DONE)
				last = now_mono();
			pthread_mutex_lock(&w->lock);
			closing = take_news(w, closing);
			pthread_mutex_unlock(&w->lock);
		} while ((st == WB_MORE || (st == WB_DONE && closing && !w->s.complete_sent)) &&
			 !(closing && now_mono() > w->deadline));
		pthread_mutex_lock(&w->lock);
		next = now_mono() + WANDB_SEND_INTERVAL;
		if (st == WB_FATAL) {
			w->fatal = 1;
			pthread_mutex_unlock(&w->lock);
			report(w, "");
			pthread_mutex_lock(&w->lock);
			break;
		}
		if (st == WB_RETRY) {
			if (!warned++) {
				pthread_mutex_unlock(&w->lock);
				fprintf(stderr, "\nkgpt: W&B: %s; retrying in the background\n", w->s.err);
				pthread_mutex_lock(&w->lock);
			}
			next = now_mono() + wb_backoff(&w->s);
			if (closing) {
				if (next > w->deadline)
					break;
				wait_until(w, next);
			}
			continue;
		}
		warned = 0;
		if (closing && st == WB_DONE) {
			w->done = 1;
			break;
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* ------------------------------------------------------------------------
 * The subscriber
 */
static const char *env_or(const char *name, const char *dflt)
{
	const char *e = getenv(name);

	return e && *e ? e : dflt;
}

/* A new run's identity in wandb-run.json: CONFIG values, overridden by
 * the W&B environment variables. */
static int create_run(struct wandb *w, const struct metrics_run *run)
{
	const char *base = strrchr(run->run_dir, '/');
	char id[9];

	wb_new_run_id(id);
	return wb_run_create(run->run_dir, env_or("WANDB_ENTITY", CONFIG_WANDB_ENTITY),
			     env_or("WANDB_PROJECT", CONFIG_TRACKER_PROJECT),
			     env_or("WANDB_RUN_ID", id),
			     env_or("WANDB_NAME", *CONFIG_WANDB_RUN_NAME ? CONFIG_WANDB_RUN_NAME :
				    base ? base + 1 : run->run_dir),
			     env_or("WANDB_RUN_GROUP", CONFIG_WANDB_RUN_GROUP), run->config);
}

/* Resume: cut the spool back to the rows metrics.jsonl kept (row i is
 * line i of both); rows the server already has are not sent again. */
static int cut_spool(const char *path, long rows)
{
	FILE *f = fopen(path, "r");
	long n = 0, at = 0;
	int c;

	if (!f)
		return 0;
	while (n < rows && (c = getc(f)) != EOF)
		if (c == '\n') {
			n++;
			at = ftell(f);
		}
	fclose(f);
	return truncate(path, at) ? -errno : 0;
}

int wandb_open(struct metrics *m, const struct metrics_run *run)
{
	const char *mode = env_or("WANDB_MODE", "online");
	char path[4200];
	struct wandb *w;
	int rc;

	if (!strcmp(mode, "disabled"))
		return 0;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->offline = !strcmp(mode, "offline") || !strcmp(mode, "dryrun");
	snprintf(path, sizeof(path), "%s/wandb-run.json", run->run_dir);
	rc = access(path, F_OK) ? create_run(w, run) : 0;
	if (!rc)
		rc = wb_sender_open(&w->s, run->run_dir);
	snprintf(path, sizeof(path), "%s/wandb-spool.jsonl", run->run_dir);
	if (!rc && run->resume)
		rc = cut_spool(path, m->rows) ?: wb_restart(&w->s);
	if (!rc && !(w->spool = fopen(path, "a")))
		rc = -errno;
	if (rc) {
		fprintf(stderr, "kgpt: W&B: cannot set up %s/wandb-*: %s\n", run->run_dir,
			strerror(rc == -ENOENT ? EINVAL : -rc));
		free(w);
		return rc;
	}
	w->t0 = now_wall();
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	m->wandb = w;
	if (w->offline) {
		printf("W&B: offline; rows are spooled in %s (make wandb-sync RUN=%s)\n",
		       run->run_dir, run->run_dir);
		return 0;
	}
	if (!w->s.key[0]) {
		fprintf(stderr, "kgpt: W&B: no API key (WANDB_API_KEY or ~/.netrc for %s); rows are "
			"spooled in %s for make wandb-sync\n", w->s.base, run->run_dir);
		w->fatal = 1;
		return 0;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	w->started = !pthread_create(&w->thread, NULL, uploader, w);
	return 0;
}

void wandb_row(struct metrics *m, long index, const cJSON *row)
{
	struct wandb *w = m->wandb;
	const cJSON *el = cJSON_GetObjectItem(row, "elapsed_s");
	cJSON *o;
	char *s;

	if (!w)
		return;
	o = cJSON_Duplicate(row, 1);
	cJSON_AddNumberToObject(o, "_step", index);
	cJSON_AddNumberToObject(o, "_runtime", cJSON_IsNumber(el) ? el->valuedouble :
				now_wall() - w->t0);
	cJSON_AddNumberToObject(o, "_timestamp", now_wall());
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (s) {
		fprintf(w->spool, "%s\n", s);
		fflush(w->spool);
	}
	free(s);
}

void wandb_summary(struct metrics *m, const cJSON *summary)
{
	struct wandb *w = m->wandb;
	char *s, path[4200], tmp[4220];
	FILE *f;

	if (!w || !(s = cJSON_PrintUnformatted(summary)))
		return;
	snprintf(path, sizeof(path), "%s/wandb-summary.json", w->s.dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (f) {
		fprintf(f, "%s\n", s);
		if (!fclose(f) && !rename(tmp, path)) {
			pthread_mutex_lock(&w->lock);
			w->summary_new = 1;
			pthread_mutex_unlock(&w->lock);
		}
	}
	free(s);
}

int wandb_close(struct metrics *m, int exit_code)
{
	struct wandb *w = m->wandb;
	long left;
	int rc = 0;

	if (!w)
		return 0;
	fclose(w->spool);
	pthread_mutex_lock(&w->lock);
	w->exit_code = exit_code;
	w->closing = 1;
	w->deadline = now_mono() + CONFIG_WANDB_FLUSH_TIMEOUT;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	if (w->started)
		pthread_join(w->thread, NULL);
	wb_set_exitcode(&w->s, exit_code);	/* for sync, if the thread did not */
	left = wb_pending(&w->s);
	if (w->offline) {
		printf("W&B: offline; %ld rows spooled in %s (make wandb-sync RUN=%s)\n",
		       left, w->s.dir, w->s.dir);
	} else if (!w->done) {
		fprintf(stderr, "kgpt: W&B: %ld rows not delivered%s; they are in %s/wandb-spool.jsonl: "
			"make wandb-sync RUN=%s\n", left, w->fatal ? "" : " in time", w->s.dir,
			w->s.dir);
		rc = 1;
	}
	wb_sender_close(&w->s);
	free(w);
	m->wandb = NULL;
	return rc;
}
#endif /* CONFIG_ENABLE_WANDB */
