// SPDX-License-Identifier: MIT
/*
 * KV-cache pruning in the trainer's outputs (ra/kvprune_gpt2.h): every
 * layer's budget k (the learned ones from rho), the KV-cache bytes with
 * and without pruning, and with a learned budget rho and its gradient.
 * Compiled only with CONFIG_KV_CACHE_PRUNE.
 */
#include <stdio.h>
#include "gpt2/train.h"

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
void kv_report_header(struct train *tr)
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
void kv_report_json(struct train *tr, cJSON *obj, int summary)
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

void kv_report_summary(struct train *tr)
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
