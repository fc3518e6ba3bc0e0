// SPDX-License-Identifier: MIT
/*
 * The R-MLP in the trainer's outputs (ra/rmlp_gpt2.h): w_std, w_rec,
 * gate_alpha and the mixer's Frobenius norm of every layer.
 * Compiled only with CONFIG_RMLP.
 */
#include <stdio.h>
#include <string.h>
#include "gpt2/train.h"

/* Every layer's values and their means over the layers. */
struct rmlp_report {
	double w_std[GPT2_L], w_rec[GPT2_L], gate_alpha[GPT2_L], rec_scale[GPT2_L];
	double mix_fro[GPT2_L];
	struct rmlp_stats mean;
};

static void rmlp_collect(struct train *tr, struct rmlp_report *r)
{
	memset(r, 0, sizeof(*r));
	for (int l = 0; l < GPT2_L; l++) {
		struct rmlp_dims d = gpt2_rmlp_dims(l);
		struct rmlp_params p = gpt2_rmlp_params(&tr->model, l);
		struct rmlp_stats s;

		rmlp_get_stats(&s, &p, &d);
		r->w_std[l] = s.w_std;
		r->w_rec[l] = s.w_rec;
		r->gate_alpha[l] = s.gate_alpha;
		r->rec_scale[l] = s.rec_scale;
		r->mix_fro[l] = s.mix_fro;
		r->mean.w_std += s.w_std / GPT2_L;
		r->mean.w_rec += s.w_rec / GPT2_L;
		r->mean.gate_alpha += s.gate_alpha / GPT2_L;
		r->mean.rec_scale += s.rec_scale / GPT2_L;
		r->mean.mix_fro += s.mix_fro / GPT2_L;
	}
}

/* The split and the geometric initial scalars, one line per run of layers
 * with the same R_l. */
void rmlp_report_header(void)
{
	for (int l = 0; l < GPT2_L; l++) {
		struct rmlp_dims d = gpt2_rmlp_dims(l);
		real w_std, w_rec;
		int last = l;

		if (l > 0 && gpt2_rmlp_rff(l) == gpt2_rmlp_rff(l - 1))
			continue;
		while (last + 1 < GPT2_L && gpt2_rmlp_rff(last + 1) == gpt2_rmlp_rff(l))
			last++;
		rmlp_init_gates(&w_std, &w_rec, NULL, &d);
		printf("kgpt: R-MLP layers %d-%d: D_ff %d = D_ff_std %d + R_ff %d, "
		       "init w_std %.4f w_rec %.4f\n", l, last, rmlp_dff(&d), d.D_std, d.R,
		       (double)w_std, (double)w_rec);
	}
	printf("kgpt: R-MLP mixer %s, gates %s\n",
	       IS_ENABLED(CONFIG_RMLP_USE_MIXER) ? "on (R_ff x R_ff, init identity)" : "off",
	       IS_ENABLED(CONFIG_RMLP_USE_GATES) ? "on (gate_alpha init 0.1)" : "off");
}

/* metrics.jsonl: arrays over the layers; summary.json (means set): the
 * same and the means. gate_alpha and rec_scale = w_rec * gate_alpha (the
 * reciprocal path's whole factor) only with gates, mix_fro with the mixer. */
void rmlp_report_json(struct train *tr, cJSON *obj, int means)
{
	struct rmlp_report r;

	rmlp_collect(tr, &r);
	cJSON_AddItemToObject(obj, "rmlp_w_std", cJSON_CreateDoubleArray(r.w_std, GPT2_L));
	cJSON_AddItemToObject(obj, "rmlp_w_rec", cJSON_CreateDoubleArray(r.w_rec, GPT2_L));
	if (IS_ENABLED(CONFIG_RMLP_USE_GATES)) {
		cJSON_AddItemToObject(obj, "rmlp_gate_alpha",
				      cJSON_CreateDoubleArray(r.gate_alpha, GPT2_L));
		cJSON_AddItemToObject(obj, "rmlp_rec_scale",
				      cJSON_CreateDoubleArray(r.rec_scale, GPT2_L));
	}
	if (IS_ENABLED(CONFIG_RMLP_USE_MIXER))
		cJSON_AddItemToObject(obj, "rmlp_mix_fro",
				      cJSON_CreateDoubleArray(r.mix_fro, GPT2_L));
	if (!means)
		return;
	cJSON_AddNumberToObject(obj, "rmlp_w_std_mean", r.mean.w_std);
	cJSON_AddNumberToObject(obj, "rmlp_w_rec_mean", r.mean.w_rec);
	if (IS_ENABLED(CONFIG_RMLP_USE_GATES)) {
		cJSON_AddNumberToObject(obj, "rmlp_gate_alpha_mean", r.mean.gate_alpha);
		cJSON_AddNumberToObject(obj, "rmlp_rec_scale_mean", r.mean.rec_scale);
	}
	if (IS_ENABLED(CONFIG_RMLP_USE_MIXER))
		cJSON_AddNumberToObject(obj, "rmlp_mix_fro_mean", r.mean.mix_fro);
}

void rmlp_report_summary(struct train *tr)
{
	struct rmlp_report r;

	rmlp_collect(tr, &r);
	printf("  R-MLP           w_std %.4f  w_rec %.4f", r.mean.w_std, r.mean.w_rec);
	if (IS_ENABLED(CONFIG_RMLP_USE_GATES))
		printf("  gate_alpha %.4f", r.mean.gate_alpha);
	if (IS_ENABLED(CONFIG_RMLP_USE_MIXER))
		printf("  |mixw|_F %.3f", r.mean.mix_fro);
	printf("  (means over %d layers)\n", GPT2_L);
}
