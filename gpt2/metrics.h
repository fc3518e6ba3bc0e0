/* SPDX-License-Identifier: MIT */
/*
 * The metrics sink: the one place a logged row goes. The trainer calls
 * metrics_log() once per row (a train log line, an evaluation) and
 * metrics_summary() once at the end; every subscriber of gpt2/metrics.c
 * gets each of them in order:
 *
 *   jsonl   RUN/metrics.jsonl, one JSON object per line, always
 *   wandb   the W&B uploader (tracker/wandb.h), with CONFIG_ENABLE_WANDB
 *
 * Row i of a run (0, 1, 2, ...) is line i of metrics.jsonl. A resumed run
 * cuts metrics.jsonl back to its length at the checkpoint and logs the
 * rows after it again, with the same indices, so no subscriber sees a row
 * twice or misses one.
 */
#ifndef KGPT_METRICS_H
#define KGPT_METRICS_H

#include <stdint.h>
#include <stdio.h>
#include <cjson/cJSON.h>

struct wandb;

struct metrics {
	char run_dir[4096];
	char path[4200];	/* run_dir/metrics.jsonl */
	FILE *jsonl;
	long rows;		/* rows logged so far: the index of the next one */
	struct wandb *wandb;	/* CONFIG_ENABLE_WANDB: the uploader, or NULL */
};

/* How metrics_open() starts. */
struct metrics_run {
	const char *run_dir;	/* the run folder, which exists */
	int resume;		/* 1: continue RUN/metrics.jsonl */
	uint64_t resume_bytes;	/* with resume: its length at the checkpoint */
	const cJSON *config;	/* flat object of the CONFIG_ values (W&B config) */
};

/*
 * Open every subscriber for the run. A new run starts an empty
 * metrics.jsonl; a resumed one cuts it back to resume_bytes (a file
 * shorter than that is kept, with a warning) and counts its rows.
 * Returns 0, or a negative errno after a message naming the file.
 */
int metrics_open(struct metrics *m, const struct metrics_run *run);

/* Row `row` to every subscriber, in order; takes ownership of row. */
void metrics_log(struct metrics *m, cJSON *row);

/* The run's final figures (summary.json's object) to the subscribers that
 * keep a summary (W&B). Does not take ownership. */
void metrics_summary(struct metrics *m, const cJSON *summary);

/*
 * Put metrics.jsonl on disk and store its length in bytes in *bytes (0
 * when it is not open). Returns 0, or a negative errno after a message:
 * a checkpoint must never record a length the file does not have, since
 * resuming cuts the file back to it.
 */
int metrics_sync(struct metrics *m, uint64_t *bytes);

/*
 * Close every subscriber: exit_code is the trainer's (0 finished, 130
 * interrupted, 1 failed), which W&B records. Returns 0, or 1 when a
 * subscriber could not deliver everything (it said what and how to
 * recover, e.g. `make wandb-sync`); metrics.jsonl is complete either way.
 */
int metrics_close(struct metrics *m, int exit_code);

#endif /* KGPT_METRICS_H */
