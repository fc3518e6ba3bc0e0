// SPDX-License-Identifier: MIT
/*
 * The CPU backend's forward of hard-pruned attention
 * (attention_forward_pruned(), kernels/kernels.h): every (b, h) of the
 * layer walked through ra/kvprune_step.h's kvp_step(), one pair per
 * OpenMP thread, so that training, evaluation and generation on the CPU
 * share the arithmetic.
 */
#include <errno.h>
#include "kernels/kernels.h"
#include "ra/kvprune.h"
#include "ra/kvprune_step.h"

int attention_forward_pruned(real *out, real *lse, int *evict_step, const real *qkv,
			     int k, int recency, int v_only, int B, int T, int C, int NH,
			     float dropout_p, uint64_t dropout_seed)
{
	struct kvprune_cfg cfg = {
		.mode = v_only ? KVPRUNE_V_ONLY : KVPRUNE_KV, .k = k, .recency = recency,
	};
	struct kvp_job jb;
	int err;

	if (recency < 1 || recency >= k)
		return -EINVAL;
	err = kvp_job_init(&jb, B, T, C, NH, dropout_p, dropout_seed, &cfg);
	if (err)
		return err;
	if (k >= T) {
		attention_forward(out, lse, qkv, B, T, C, NH, dropout_p, dropout_seed);
		for (size_t j = 0; j < (size_t)B * NH * T; j++)
			evict_step[j] = T;
		return 0;
	}
	jb.qkv = qkv;
	jb.out = out;
	jb.lse = lse;
	jb.evict = evict_step;
	return kvp_run(&jb, kvp_fwd_head);
}
