// SPDX-License-Identifier: MIT
/*
 * Reciprocal Attention in the trainer's outputs (ra/rattn_gpt2.h): w_std,
 * w_rec and alpha of every layer (means over its heads when they are per
 * head). Compiled only with CONFIG_RA.
 */
#include <stdio.h>
#include "gpt2/train.h"

struct ra_report {
	double w_std[GPT2_L], w_rec[GPT2_L], alpha[GPT2_L];
	double mean_w_std, mean_w_rec, mean_alpha;
};

static double head_mean(const real *x, int n)
{
	double s = 0;

	for (int i = 0; i < n; i++)
		s += x[i];
	return s / n;
}

static void ra_collect(struct train *tr, struct ra_report *r)
{
	struct gpt2 *m = &tr->model;

	r->mean_w_std = r->mean_w_rec = r->mean_alpha = 0;
	for (int l = 0; l < GPT2_L; l++) {
		r->w_std[l] = head_mean(gpt2_param(m, P_RA_W_STD) + (size_t)l * GPT2_RA_GATES,
					GPT2_RA_GATES);
		r->w_rec[l] = head_mean(gpt2_param(m, P_RA_W_REC) + (size_t)l * GPT2_RA_GATES,
					GPT2_RA_GATES);
		r->alpha[l] = IS_ENABLED(CONFIG_RA_SELF_RESTART) ?
			      head_mean(gpt2_param(m, P_RA_ALPHA) + (size_t)l * GPT2_NH,
					GPT2_NH) : 0;
		r->mean_w_std += r->w_std[l] / GPT2_L;
		r->mean_w_rec += r->w_rec[l] / GPT2_L;
		r->mean_alpha += r->alpha[l] / GPT2_L;
	}
}

void ra_report_header(void)
{
	real ws, wr;

	rattn_init_gates(&ws, &wr, 1, GPT2_HS, GPT2_RA_R);
	printf("kgpt: RA: head size %d = D_std %d + R %d, init w_std %.4f w_rec %.4f per %s\n",
	       GPT2_HS, GPT2_HS - GPT2_RA_R, GPT2_RA_R, (double)ws, (double)wr,
	       IS_ENABLED(CONFIG_RA_PER_HEAD_GATES) ? "head" : "layer");
	printf("kgpt: RA self-restart %s\n", IS_ENABLED(CONFIG_RA_SELF_RESTART) ?
	       "on (alpha per head, init 0.05, in [0, 0.5])" : "off");
}

/* metrics.jsonl: arrays over the layers (per-head gates: the mean over the
 * heads); summary.json (means set): the same and the means over layers. */
void ra_report_json(struct train *tr, cJSON *obj, int means)
{
	struct ra_report r;

	ra_collect(tr, &r);
	cJSON_AddItemToObject(obj, "ra_w_std", cJSON_CreateDoubleArray(r.w_std, GPT2_L));
	cJSON_AddItemToObject(obj, "ra_w_rec", cJSON_CreateDoubleArray(r.w_rec, GPT2_L));
	if (IS_ENABLED(CONFIG_RA_SELF_RESTART))
		cJSON_AddItemToObject(obj, "ra_alpha", cJSON_CreateDoubleArray(r.alpha, GPT2_L));
	if (!means)
		return;
	cJSON_AddNumberToObject(obj, "ra_w_std_mean", r.mean_w_std);
	cJSON_AddNumberToObject(obj, "ra_w_rec_mean", r.mean_w_rec);
	if (IS_ENABLED(CONFIG_RA_SELF_RESTART))
		cJSON_AddNumberToObject(obj, "ra_alpha_mean", r.mean_alpha);
}

void ra_report_summary(struct train *tr)
{
	struct ra_report r;

	ra_collect(tr, &r);
	printf("  RA              w_std %.4f  w_rec %.4f", r.mean_w_std, r.mean_w_rec);
	if (IS_ENABLED(CONFIG_RA_SELF_RESTART))
		printf("  alpha %.4f", r.mean_alpha);
	printf("  (means over %d layers)\n", GPT2_L);
}
