/* SPDX-License-Identifier: MIT */
/*
 * W&B (Weights & Biases) over HTTP: libcurl for the transfers, cJSON for
 * the bodies (protocol: docs/wandb.md). Two layers:
 *
 *   wb_*     the protocol and the run folder's spool, no Kconfig: built
 *            into libkgpt.a for the trainer and build/kgpt-wandb
 *   wandb_*  the metrics subscriber of gpt2/metrics.c, compiled into the
 *            trainer with CONFIG_ENABLE_WANDB (tracker/wandb.c)
 *
 * What a run folder RUN holds for W&B (none of it holds the API key):
 *   RUN/wandb-run.json      entity, project, run_id, name, group, config,
 *                           exitcode (null while running)
 *   RUN/wandb-spool.jsonl   history row i on line i (with _step, _runtime,
 *                           _timestamp), as sent to wandb-history.jsonl
 *   RUN/wandb-summary.json  the summary, one line
 *   RUN/wandb-acked.json    what the server acknowledged: rows (lines of
 *                           the spool), summary, complete, upserted
 */
#ifndef KGPT_TRACKER_WANDB_H
#define KGPT_TRACKER_WANDB_H

#include <stddef.h>
#include <cjson/cJSON.h>

/* One W&B run being delivered from its run folder. */
struct wb_sender {
	char dir[4096];		/* the run folder */
	char base[1024];	/* WANDB_BASE_URL without trailing '/' */
	char key[1024];		/* the API key; memory only */
	cJSON *run;		/* RUN/wandb-run.json */
	long acked;		/* spool lines the server acknowledged */
	int upserted, summary_sent, complete_sent;
	long pos_line;		/* spool line at byte pos_byte */
	long pos_byte;
	int max_lines;		/* rows per request, halved on HTTP 413 */
	int timeout_s;		/* per request (WANDB_HTTP_TIMEOUT, default 30) */
	double retry_after;	/* s the server asked to wait (429), or 0 */
	int attempt;		/* failures in a row, for the backoff */
	void *curl;
	char err[4400];		/* the last failure, one line, no key */
};

enum wb_step {
	WB_DONE,	/* nothing left to send */
	WB_MORE,	/* a request went through; call again */
	WB_RETRY,	/* network error, 408, 429, 5xx: wait wb_backoff(), again */
	WB_FATAL,	/* 400/401/403/404/422...: s->err says why; not retried */
};

/*
 * The API key for base (WANDB_API_KEY, else the password of `machine
 * <host>` in $NETRC or ~/.netrc) into key[n]. Returns 0, or -ENOKEY.
 */
int wb_api_key(const char *base, char *key, size_t n);

/* WANDB_BASE_URL (default https://api.wandb.ai) without a trailing '/'. */
void wb_base_url(char *base, size_t n);

/*
 * POST body (JSON) to base + path with Basic auth api:key. Returns the
 * HTTP status, or -1 on a network error (message in s->err); the response
 * body in *resp (malloc'd, may be NULL), Retry-After in s->retry_after.
 */
int wb_post(struct wb_sender *s, const char *path, const char *body, char **resp);

/* The run's identity, config (flat CONFIG_ object: wrapped {value,desc})
 * and a fresh acked state, written into dir. Returns 0 or -errno. */
int wb_run_create(const char *dir, const char *entity, const char *project,
		  const char *run_id, const char *name, const char *group,
		  const cJSON *config);

/* Open dir's run for delivery (reads wandb-run.json and wandb-acked.json,
 * the key and base URL). Returns 0, -ENOENT (no W&B run there) or -errno. */
int wb_sender_open(struct wb_sender *s, const char *dir);
void wb_sender_close(struct wb_sender *s);

/* A trainer runs again on this run (--resume): running again, so it is
 * upserted again and completed again at its end. Returns 0 or -errno. */
int wb_restart(struct wb_sender *s);

/* Store the exit code in wandb-run.json (delivered with complete). */
int wb_set_exitcode(struct wb_sender *s, int exitcode);

/* Save what was acknowledged to RUN/wandb-acked.json (atomic rename). */
int wb_save_acked(struct wb_sender *s);

/*
 * One request: UpsertBucket first, then the next batch of spooled rows,
 * the summary when it changed and, with final and nothing else left,
 * complete + exitcode. heartbeat: send an empty file_stream request when
 * there is nothing else. Spool lines not yet ended by '\n' wait.
 */
enum wb_step wb_step(struct wb_sender *s, int final, int heartbeat);

/* Seconds to wait before the next try: Retry-After when the server gave
 * one, else 1 s * 2^attempt capped at 60 s, plus 0-25 % jitter. */
double wb_backoff(const struct wb_sender *s);

/* Spool lines not yet acknowledged (counts the spool file). */
long wb_pending(struct wb_sender *s);

/* 8 random characters of [a-z0-9] (a W&B run id) into id[9]. */
void wb_new_run_id(char id[9]);

#ifdef CONFIG_ENABLE_WANDB
struct metrics;
struct metrics_run;
/* The metrics subscriber (gpt2/metrics.c), CONFIG_ENABLE_WANDB only. */
int wandb_open(struct metrics *m, const struct metrics_run *run);
void wandb_row(struct metrics *m, long index, const cJSON *row);
void wandb_summary(struct metrics *m, const cJSON *summary);
int wandb_close(struct metrics *m, int exit_code);
#endif

#endif /* KGPT_TRACKER_WANDB_H */
