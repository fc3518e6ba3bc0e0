// SPDX-License-Identifier: MIT
/*
 * What the mechanisms of ra/ add to the trainer's outputs: start-up lines,
 * per-log-line values in metrics.jsonl, summary.json fields and the console
 * summary. With a mechanism off, its part compiles to nothing.
 */
#include <stdio.h>
#include "gpt2/train.h"

void train_print_mechanism_header(struct train *tr)
{
	printf("kgpt: mechanisms: R-MLP %s, KV-cache pruning %s\n",
	       IS_ENABLED(CONFIG_RMLP) ? "on" : "off",
	       IS_ENABLED(CONFIG_KV_CACHE_PRUNE) ? "on" : "off");
}

void train_log_mechanisms(struct train *tr, cJSON *line)
{
}

void train_summary_mechanisms(struct train *tr, cJSON *summary)
{
}

void train_print_mechanisms(struct train *tr)
{
}
