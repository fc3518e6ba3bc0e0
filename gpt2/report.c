// SPDX-License-Identifier: MIT
/*
 * What the mechanisms of ra/ add to the trainer's outputs: start-up lines,
 * per-log-line values in metrics.jsonl, summary.json fields and the console
 * summary. With a mechanism off, its part compiles to nothing.
 */
#include <stdio.h>
#include <string.h>
#include "gpt2/train.h"

/* ------------------------------------------------------------------------
 * R-MLP (ra/rmlp.h, docs/r-mlp.md): w_std, w_rec, gate_alpha and the
 * mixer's Frobenius norm of every layer.
 */

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
static void rmlp_print_header(void)
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
static void rmlp_add_json(struct train *tr, cJSON *obj, int means)
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

static void rmlp_print_summary(struct train *tr)
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

/* ------------------------------------------------------------------------
 * KV-cache pruning (ra/kvprune.h, docs/kv-pruning.md): every layer's
 * budget k (the learned ones from rho), the KV-cache bytes with and
 * without pruning, and with a learned budget rho and its gradient.
 */
#if IS_ENABLED(CONFIG_KV_CACHE_PRUNE)
#define KV_MODE	(IS_ENABLED(CONFIG_KV_PRUNE_MODE_V_ONLY) ? KVPRUNE_V_ONLY : KVPRUNE_KV)

static double mib(size_t bytes)
{
	return bytes / 1048576.0;
}

/*
 * Bytes of the K and V caches of `batch` sequences of T tokens, elements
 * of elem_bytes bytes, summed over the layers: pruned with every layer's
 * budget (kv_cache_bytes_mode()), or full.
 */
static size_t kv_bytes(struct train *tr, long T, int elem_bytes, int batch, int pruned)
{
	size_t n = 0;

	for (int l = 0; l < GPT2_L; l++)
		n += pruned ? kv_cache_bytes_mode(KV_MODE, 1, GPT2_C, T,
						  gpt2_kv_budget(&tr->model, l), elem_bytes, batch) :
			      kv_cache_bytes(1, GPT2_C, T, elem_bytes, batch);
	return n;
}

/* Budgets as "k" or "k0,k1,..." when the layers differ. */
static void kv_budgets(struct train *tr, char *buf, size_t len)
{
	int same = 1, n = 0;

	for (int l = 1; l < GPT2_L; l++)
		same &= gpt2_kv_budget(&tr->model, l) == gpt2_kv_budget(&tr->model, 0);
	buf[0] = 0;
	for (int l = 0; l < (same ? 1 : GPT2_L) && n < (int)len; l++)
		n += snprintf(buf + n, len - n, "%s%d", l ? "," : "", gpt2_kv_budget(&tr->model, l));
}

/* The policy, and the memory table of docs/kv-pruning.md for this model:
 * batch 8, 16, 32 of block_size tokens, full and pruned, bf16 and fp32. */
static void kv_print_header(struct train *tr)
{
	static const int batch[] = { 8, 16, 32 };
	const long T = GPT2_T;
	char k[256];

	kv_budgets(tr, k, sizeof(k));
	printf("kgpt: KV pruning: %s, k %s of %ld tokens per layer and head, recency %d%s\n",
	       IS_ENABLED(CONFIG_KV_PRUNE_MODE_V_ONLY) ? "values only (keys kept)" : "keys and values",
	       k, T, CONFIG_KV_PRUNE_RECENCY,
	       IS_ENABLED(CONFIG_KV_PRUNE_LEARNED) ? " (learned: k = round(rho * block_size))" : "");
#if IS_ENABLED(CONFIG_KV_PRUNE_LEARNED)
	printf("kgpt: KV pruning: learned keep ratio rho per layer, init %g, memory cost lambda %g "
	       "* mean(rho); soft mask in training, hard rule in evaluation\n",
	       (double)CONFIG_KV_PRUNE_INIT_RATIO_F, (double)CONFIG_KV_PRUNE_LAMBDA_F);
#endif
	printf("kgpt: KV cache for %ld-token sequences (n_layer %d, n_embd %d):\n", T, GPT2_L, GPT2_C);
	printf("kgpt:   batch   full bf16    pruned bf16   full fp32    pruned fp32\n");
	for (size_t i = 0; i < sizeof(batch) / sizeof(batch[0]); i++)
		printf("kgpt:   %5d %9.2f MiB %9.2f MiB %9.2f MiB %9.2f MiB\n", batch[i],
		       mib(kv_bytes(tr, T, 2, batch[i], 0)), mib(kv_bytes(tr, T, 2, batch[i], 1)),
		       mib(kv_bytes(tr, T, 4, batch[i], 0)), mib(kv_bytes(tr, T, 4, batch[i], 1)));
}

/* metrics.jsonl: keep ratio k / block_size per layer; learned: rho, the
 * gradient of the last step (after clipping) and lambda * mean(rho).
 * summary.json (summary set): also the cache bytes for the configured
 * batch, full and pruned, in fp32 and bf16. */
static void kv_add_json(struct train *tr, cJSON *obj, int summary)
{
	double keep[GPT2_L], k[GPT2_L];
	cJSON *full, *pruned;

	for (int l = 0; l < GPT2_L; l++) {
		k[l] = gpt2_kv_budget(&tr->model, l);
		keep[l] = k[l] / GPT2_T;
	}
	cJSON_AddItemToObject(obj, "kv_keep_ratio", cJSON_CreateDoubleArray(keep, GPT2_L));
#if IS_ENABLED(CONFIG_KV_PRUNE_LEARNED)
	{
		double rho[GPT2_L], grad[GPT2_L];

		for (int l = 0; l < GPT2_L; l++) {
			rho[l] = gpt2_param(&tr->model, P_KV_RHO)[l];
			grad[l] = gpt2_grad(&tr->model, P_KV_RHO)[l];
		}
		cJSON_AddItemToObject(obj, "kv_rho", cJSON_CreateDoubleArray(rho, GPT2_L));
		if (!summary)
			cJSON_AddItemToObject(obj, "kv_rho_grad", cJSON_CreateDoubleArray(grad, GPT2_L));
		cJSON_AddNumberToObject(obj, "kv_aux_loss", tr->model.kv_aux_loss);
	}
#endif
	if (!summary)
		return;
	cJSON_AddItemToObject(obj, "kv_k", cJSON_CreateDoubleArray(k, GPT2_L));
	cJSON_AddNumberToObject(obj, "kv_cache_batch", GPT2_B);
	cJSON_AddNumberToObject(obj, "kv_cache_tokens", GPT2_T);
	full = cJSON_AddObjectToObject(obj, "kv_cache_bytes_full");
	cJSON_AddNumberToObject(full, "fp32", (double)kv_bytes(tr, GPT2_T, 4, GPT2_B, 0));
	cJSON_AddNumberToObject(full, "bf16", (double)kv_bytes(tr, GPT2_T, 2, GPT2_B, 0));
	pruned = cJSON_AddObjectToObject(obj, "kv_cache_bytes_pruned");
	cJSON_AddNumberToObject(pruned, "fp32", (double)kv_bytes(tr, GPT2_T, 4, GPT2_B, 1));
	cJSON_AddNumberToObject(pruned, "bf16", (double)kv_bytes(tr, GPT2_T, 2, GPT2_B, 1));
}

static void kv_print_summary(struct train *tr)
{
	char k[256];

	kv_budgets(tr, k, sizeof(k));
	printf("  KV cache        k %s of %d; %d x %d tokens: %.2f -> %.2f MiB fp32 "
	       "(bf16 %.2f -> %.2f MiB)\n", k, GPT2_T, GPT2_B, GPT2_T,
	       mib(kv_bytes(tr, GPT2_T, 4, GPT2_B, 0)), mib(kv_bytes(tr, GPT2_T, 4, GPT2_B, 1)),
	       mib(kv_bytes(tr, GPT2_T, 2, GPT2_B, 0)), mib(kv_bytes(tr, GPT2_T, 2, GPT2_B, 1)));
#if IS_ENABLED(CONFIG_KV_PRUNE_LEARNED)
	printf("  KV rho         ");
	for (int l = 0; l < GPT2_L; l++)
		printf(" %.4f", (double)gpt2_param(&tr->model, P_KV_RHO)[l]);
	printf("  (per layer)\n");
#endif
}
#else
static inline void kv_print_header(struct train *tr) { }
static inline void kv_add_json(struct train *tr, cJSON *obj, int summary) { }
static inline void kv_print_summary(struct train *tr) { }
#endif

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
	if (IS_ENABLED(CONFIG_RMLP))
		rmlp_print_header();
	if (IS_ENABLED(CONFIG_KV_CACHE_PRUNE))
		kv_print_header(tr);
}

void train_log_mechanisms(struct train *tr, cJSON *line)
{
	if (IS_ENABLED(CONFIG_RMLP))
		rmlp_add_json(tr, line, 0);
	if (IS_ENABLED(CONFIG_KV_CACHE_PRUNE))
		kv_add_json(tr, line, 0);
	if (IS_ENABLED(CONFIG_OPTIMIZER_SELECT_ADAMWSPAM))
		spam_add_json(tr, line);
}

void train_summary_mechanisms(struct train *tr, cJSON *summary)
{
	if (IS_ENABLED(CONFIG_RMLP))
		rmlp_add_json(tr, summary, 1);
	if (IS_ENABLED(CONFIG_KV_CACHE_PRUNE))
		kv_add_json(tr, summary, 1);
	if (IS_ENABLED(CONFIG_OPTIMIZER_SELECT_ADAMWSPAM))
		spam_add_json(tr, summary);
}

void train_print_mechanisms(struct train *tr)
{
	if (IS_ENABLED(CONFIG_RMLP))
		rmlp_print_summary(tr);
	if (IS_ENABLED(CONFIG_KV_CACHE_PRUNE))
		kv_print_summary(tr);
	if (IS_ENABLED(CONFIG_OPTIMIZER_SELECT_ADAMWSPAM))
		spam_print_summary(tr);
}
