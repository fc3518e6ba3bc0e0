// SPDX-License-Identifier: MIT
/*
 * gen TOKENS: incremental generation on the compiled-in configuration, for
 * the benchmark table of tests/gpu/run.sh. A model initialised with a
 * fixed seed is fed TOKENS random token ids (at most block_size) one at a
 * time through gpt2_step() and its KV caches (pruned to k per head with
 * CONFIG_KV_CACHE_PRUNE), logits included. No checkpoint or vocabulary is
 * needed.
 *
 * Prints one line of key=value pairs: tokens, tokens_per_s, the caches'
 * bytes (kv_bytes: K and V; cache_bytes: with the bookkeeping), what the
 * backend's allocator handed out for them (cache_alloc_bytes: the change
 * of kgpt_mem_used() across gpt2_gen_init(); device memory on CUDA), the
 * bytes a full cache of the same tokens would hold (full_kv_bytes,
 * kv_cache_bytes()), and the backend's peak allocation
 * (backend_peak_bytes, kgpt_mem_peak(): model and caches). The caches
 * are backend memory (ra/kvprune.h): on CUDA they stay on the device.
 * Exit status 0, 1 on an error, 2 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>

#include "gpt2/gpt2.h"
#include "kernels/kernels.h"
#include "kgpt/proc.h"
#include "kgpt/rng.h"

int main(int argc, char **argv)
{
	static struct gpt2 m;
	struct gpt2_gen g;
	struct kgpt_rng rng;
	float *logits = malloc(GPT2_VP * sizeof(float));
	int n = argc == 2 ? atoi(argv[1]) : 0, err = 0;
	size_t alloc;
	double t0, s;

	if (n < 1 || n > GPT2_T) {
		fprintf(stderr, "usage: gen TOKENS (1 .. block_size %d)\n", GPT2_T);
		return 2;
	}
	if (!logits || gpt2_init(&m, 42)) {
		fprintf(stderr, "gen: out of memory\n");
		return 1;
	}
	alloc = kgpt_mem_used();
	if (gpt2_gen_init(&g, &m)) {
		fprintf(stderr, "gen: out of memory for the KV caches\n");
		return 1;
	}
	alloc = kgpt_mem_used() - alloc;
	kgpt_rng_seed(&rng, 42);
	t0 = kgpt_now_s();
	for (int i = 0; i < n && !err; i++)
		err = gpt2_step(&m, &g, (int)kgpt_rng_below(&rng, GPT2_V), logits);
	kgpt_sync();
	s = kgpt_now_s() - t0;
	if (err) {
		fprintf(stderr, "gen: gpt2_step() failed: %d\n", err);
		return 1;
	}
	printf("tokens=%d tokens_per_s=%.1f kv_bytes=%zu cache_bytes=%zu cache_alloc_bytes=%zu "
	       "full_kv_bytes=%zu backend_peak_bytes=%zu backend=%s\n", n, n / s,
	       gpt2_gen_bytes(&g, 1), gpt2_gen_bytes(&g, 0), alloc,
	       kv_cache_bytes(GPT2_L, GPT2_C, n, sizeof(act_t), 1), kgpt_mem_peak(),
	       kgpt_backend_name());
	gpt2_gen_free(&g);
	gpt2_free(&m);
	free(logits);
	return 0;
}
