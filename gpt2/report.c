// SPDX-License-Identifier: MIT
/*
 * What the mechanisms add to the trainer's outputs: start-up lines,
 * per-log-line values in metrics.jsonl, summary.json fields and the console
 * summary. Each mechanism of ra/ reports itself through its hooks
 * (ra/rmlp_gpt2.h, ra/rattn_gpt2.h, ra/kvprune_gpt2.h, defined in
 * ra/..._report.c), which are inline no-ops when it is off; the
 * optimizer's part is here. The reports read the model's parameters and
 * gradients on the host, so each hook below brackets them with
 * gpt2_sync_for_host()/_for_backend().
 */
#include <stdio.h>
#include <string.h>
#include "gpt2/train.h"

/* ------------------------------------------------------------------------
 * AdamW-SPAM (gpt2/optim.h): its counters, the LR factor of its ramp
 */

static void spam_add_json(struct train *tr, cJSON *obj)
{
	const struct spam_state *s = &tr->model.opt.spam;

	cJSON_AddNumberToObject(obj, "spam_spikes", s->spikes);
	cJSON_AddNumberToObject(obj, "spam_resets", s->resets);
	cJSON_AddNumberToObject(obj, "spam_last_spike", s->last_spike);
	cJSON_AddNumberToObject(obj, "spam_clipped", (double)s->clipped);
	cJSON_AddNumberToObject(obj, "spam_lr_factor", optim_lr_factor(&tr->model));
}

static void spam_print_summary(struct train *tr)
{
	const struct spam_state *s = &tr->model.opt.spam;

	printf("  AdamW-SPAM      %d spikes (soft resets, last at step %d), %d periodic resets, "
	       "%lld gradient elements clipped\n", s->spikes, s->last_spike, s->resets,
	       (long long)s->clipped);
}

/* ------------------------------------------------------------------------
 * The hooks of gpt2/train.h
 */

void train_print_mechanism_header(struct train *tr)
{
	printf("kgpt: mechanisms: R-MLP %s, KV-cache pruning %s\n",
	       IS_ENABLED(CONFIG_RMLP) ? "on" : "off",
	       IS_ENABLED(CONFIG_KV_CACHE_PRUNE) ? "on" : "off");
	gpt2_sync_for_host(&tr->model);
	rmlp_report_header();
	ra_report_header();
	kv_report_header(tr);
	gpt2_sync_for_backend(&tr->model);
}

void train_log_mechanisms(struct train *tr, cJSON *line)
{
	gpt2_sync_for_host(&tr->model);
	rmlp_report_json(tr, line, 0);
	ra_report_json(tr, line, 0);
	kv_report_json(tr, line, 0);
	gpt2_sync_for_backend(&tr->model);
	if (IS_ENABLED(CONFIG_OPTIMIZER_SELECT_ADAMWSPAM))
		spam_add_json(tr, line);
}

void train_summary_mechanisms(struct train *tr, cJSON *summary)
{
	gpt2_sync_for_host(&tr->model);
	rmlp_report_json(tr, summary, 1);
	ra_report_json(tr, summary, 1);
	kv_report_json(tr, summary, 1);
	gpt2_sync_for_backend(&tr->model);
	if (IS_ENABLED(CONFIG_OPTIMIZER_SELECT_ADAMWSPAM))
		spam_add_json(tr, summary);
}

void train_print_mechanisms(struct train *tr)
{
	gpt2_sync_for_host(&tr->model);
	rmlp_report_summary(tr);
	ra_report_summary(tr);
	kv_report_summary(tr);
	gpt2_sync_for_backend(&tr->model);
	if (IS_ENABLED(CONFIG_OPTIMIZER_SELECT_ADAMWSPAM))
		spam_print_summary(tr);
}
