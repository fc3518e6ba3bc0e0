/* SPDX-License-Identifier: MIT */
/*
 * The trainer's state (gpt2/train_gpt2.c) and the hooks through which the
 * mechanisms of ra/ report themselves (gpt2/report.c).
 */
#ifndef KGPT_TRAIN_H
#define KGPT_TRAIN_H

#include <stdio.h>
#include <cjson/cJSON.h>
#include "gpt2/gpt2.h"
#include "gpt2/dataloader.h"
#include "gpt2/metrics.h"
#include "gpt2/tokenizer.h"

struct train {
	struct gpt2 model;
	struct dataloader train, val;
	struct tokenizer tok;
	int tok_ok;		/* vocabulary loaded (for the sample) */
	int inputs[GPT2_N], targets[GPT2_N];	/* the current batch (B,T) */
	int threads;
	int tty;		/* stdout is a terminal: \r progress line */

	int step;		/* optimizer steps done */
	long tokens;		/* training tokens seen */
	double elapsed;		/* training seconds, resumed runs included */
	float log_loss_sum;	/* train loss summed since the last log line */
	int log_loss_n;
	float train_loss, val_loss, best_val_loss;
	char stop_reason[32];	/* max_iters, max_time, nan, signal, stop_at, data */
	double allreduce_s;	/* data parallel: seconds in the gradient all-reduce */
	int allreduce_steps;	/* steps it was timed over (this process) */

	char run_dir[4096];
	struct metrics metrics;	/* the sink of every logged row (gpt2/metrics.h) */
};

/* Fraction of the training budget used at (step, elapsed seconds), 0..1. */
double budget_fraction(int step, double elapsed);
/* Learning rate at step (0-based) and budget fraction frac. */
float lr_at(int step, double frac);
/* Mean val_loss over CONFIG_GPT2_EVAL_SAMPLES validation batches. */
float evaluate(struct train *tr);

/* gpt2/bench.c: time `steps` trainer steps after `warmup` on synthetic
 * data, print them and, with json, write the figures there. Returns 0 or 1
 * (out of memory, json not writable). */
int train_bench(int steps, int warmup, const char *json);

/* gpt2/report.c: what each enabled mechanism adds to the outputs. */
void train_print_mechanism_header(struct train *tr);	/* start-up lines */
void train_log_mechanisms(struct train *tr, cJSON *line);	/* metrics.jsonl */
void train_summary_mechanisms(struct train *tr, cJSON *summary);
void train_print_mechanisms(struct train *tr);		/* console summary */

#endif /* KGPT_TRAIN_H */
