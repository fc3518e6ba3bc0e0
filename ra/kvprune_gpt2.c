// SPDX-License-Identifier: MIT
/*
 * KV-cache pruning in the GPT-2 model (ra/kvprune_gpt2.h): every layer's
 * attention keeps at most k keys/values per (sequence, head), with the
 * same rule in training, evaluation and generation (docs/kv-pruning.md).
 * Compiled only with CONFIG_KV_CACHE_PRUNE. The learned keep ratios rho
 * are parameters in shared memory: read and written here on the host,
 * between kgpt_sync_for_host() and kgpt_sync_for_backend(). The hard
 * rule (fixed k, and every evaluation) is the backend's: its walk
 * attention_forward_pruned() and its backward attention_backward_pruned()
 * on backend memory. The learned budget's soft walk, forward and
 * backward, is host code and runs on host copies of the layer's arrays
 * (m->kv_host).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gpt2/gpt2.h"
#include "kernels/kernels.h"

#define L	GPT2_L
#define KV_MODE	(IS_ENABLED(CONFIG_KV_PRUNE_MODE_V_ONLY) ? KVPRUNE_V_ONLY : KVPRUNE_KV)
#define KV_REC	CONFIG_KV_PRUNE_RECENCY

/* Layer l's rho, read on the host. */
static real kv_rho(const struct gpt2 *m, int l)
{
	const real *rho = m->params + m->tensors[P_KV_RHO].offset + l;
	real r;

	kgpt_sync_for_host(rho, sizeof(*rho));
	r = *rho;
	kgpt_sync_for_backend(rho, sizeof(*rho));
	return r;
}

int gpt2_kv_budget(const struct gpt2 *m, int l)
{
#if IS_ENABLED(CONFIG_KV_PRUNE_LEARNED)
	return kvprune_rho_to_k(kv_rho(m, l), KV_REC, GPT2_MAXT);
#else
	return CONFIG_KV_PRUNE_K;
#endif
}

/* Pruning of layer l; soft selects the learned relaxation (training). */
static struct kvprune_cfg kv_cfg(const struct gpt2 *m, int l, int soft)
{
	struct kvprune_cfg c = {
		.mode = KV_MODE, .k = gpt2_kv_budget(m, l), .recency = KV_REC,
		.block_size = GPT2_MAXT, .k_max = GPT2_MAXT, .tau = KVPRUNE_TAU_DEFAULT,
	};

	if (IS_ENABLED(CONFIG_KV_PRUNE_LEARNED) && soft) {
		c.soft = 1;
		c.rho = kv_rho(m, l);
	}
	return c;
}

struct kvprune_cfg gpt2_kv_gen_cfg(const struct gpt2 *m, int l)
{
	return kv_cfg(m, l, 0);
}

/* The pruned kernels allocate their scratch per call: on failure say so
 * and poison the result (forward: the loss; backward: the gradients and
 * so their norm) with NaN, which stops the trainer. x is backend memory:
 * scaled by NaN with the backend's kernel. */
static void kv_failed(act_t *x, size_t n, int err, int l, const char *what)
{
	fprintf(stderr, "kgpt: layer %d: KV-pruned attention %s failed: %s\n", l, what,
		strerror(-err));
	scale_act_inplace(x, n, (real)NAN);
}

/*
 * The soft walk (ra/kvprune.c) is host code: it runs on m->kv_host, host
 * copies of the layer's arrays, downloaded before and uploaded after
 * (kgpt_download_act()/kgpt_upload_act(): plain copies on the CPU backend,
 * PCIe transfers on a GPU, converting bf16 activations to real and back). Layout: qkv (N, 3C), then out or dout (N, C),
 * then lse (B, NH, T) and evict (B, NH, T) ints in the forward, dqkv
 * (N, 3C) in the soft backward. KV_HOST_N (gpt2/gpt2.c) reals.
 */
struct kv_stage {
	real *qkv, *o, *lse, *dqkv;
	int *evict;
};

static struct kv_stage kv_stage(const struct gpt2 *m, int B, int T)
{
	const size_t n = (size_t)B * T, c = GPT2_C;
	struct kv_stage st;

	st.qkv = m->kv_host;
	st.o = st.qkv + n * 3 * c;
	st.lse = st.o + n * c;
	st.evict = (int *)(st.lse + (size_t)B * GPT2_NH * T);
	st.dqkv = st.o + n * c;
	return st;
}

int gpt2_kv_attn_forward(struct gpt2 *m, int l, int B, int T, float p, uint64_t seed)
{
	struct gpt2_layer_acts *a = &m->layer[l];
	struct kvprune_cfg cfg = kv_cfg(m, l, m->training);
	struct kv_stage st;
	const size_t n = (size_t)B * T, nev = (size_t)B * GPT2_NH * T;
	int err;

	if (!m->training && m->kv_full)
		return 0;
	if (!cfg.soft) {	/* the backend's walk, on backend memory */
		err = kvprune_hard_forward(a->atty, a->att_lse, a->kv_evict, a->qkv, B, T,
					   GPT2_C, GPT2_NH, p, seed, &cfg);
		if (err)
			kv_failed(a->atty, n * GPT2_C, err, l, "forward");
		return 1;
	}
	st = kv_stage(m, B, T);
	kgpt_download_act(st.qkv, a->qkv, n * 3 * GPT2_C);
	err = kvprune_attention_forward(st.o, st.lse, st.evict, st.qkv, B, T,
					GPT2_C, GPT2_NH, p, seed, &cfg);
	if (err) {
		kv_failed(a->atty, n * GPT2_C, err, l, "forward");
		return 1;
	}
	kgpt_upload_act(a->atty, st.o, n * GPT2_C);
	kgpt_upload(a->att_lse, st.lse, nev * sizeof(real));
	kgpt_upload(a->kv_evict, st.evict, nev * sizeof(int));
	return 1;
}

/* The soft (learned budget) backward replays the walk on the host:
 * qkv, dout and dqkv down, dqkv up; d rho summed on the host and added
 * to the shared gradient. */
static int kv_backward_soft(struct gpt2 *m, int l, int B, int T, float p, uint64_t seed,
			    const struct kvprune_cfg *cfg)
{
	struct gpt2_layer_acts *a = &m->layer[l];
	struct kv_stage st = kv_stage(m, B, T);
	const size_t n = (size_t)B * T, c = GPT2_C;
	real *drho = gpt2_grad(m, P_KV_RHO) + l, d = 0;
	int err;

	kgpt_download_act(st.qkv, a->qkv, n * 3 * c);
	kgpt_download_act(st.o, m->datty, n * c);
	kgpt_download_act(st.dqkv, m->dqkv, n * 3 * c);
	err = kvprune_attention_backward(st.dqkv, &d, st.o, st.qkv, NULL, NULL, NULL, B, T,
					 GPT2_C, GPT2_NH, p, seed, cfg);
	if (err)
		return err;
	kgpt_upload_act(m->dqkv, st.dqkv, n * 3 * c);
	kgpt_sync_for_host(drho, sizeof(*drho));
	*drho += d;
	kgpt_sync_for_backend(drho, sizeof(*drho));
	return 0;
}

int gpt2_kv_attn_backward(struct gpt2 *m, int l, int B, int T, float p, uint64_t seed)
{
	struct gpt2_layer_acts *a = &m->layer[l];
	struct kvprune_cfg cfg = kv_cfg(m, l, m->training);
	int err;

	/* hard: the backend's (pruned) attention backward, on backend memory */
	if (cfg.soft)
		err = kv_backward_soft(m, l, B, T, p, seed, &cfg);
	else
		err = kvprune_hard_backward(m->dqkv, m->datty, a->qkv, a->atty, a->att_lse,
					    a->kv_evict, B, T, GPT2_C, GPT2_NH, p, seed, &cfg);
	if (err)
		kv_failed(m->dqkv, (size_t)B * T * 3 * GPT2_C, err, l, "backward");
	return 1;
}

void gpt2_kv_aux_loss(struct gpt2 *m, float grad_scale)
{
#if IS_ENABLED(CONFIG_KV_PRUNE_LEARNED)
	const real lambda = (real)CONFIG_KV_PRUNE_LAMBDA_F;
	const real *rho = gpt2_param(m, P_KV_RHO);
	real *drho = gpt2_grad(m, P_KV_RHO);
	double sum = 0;

	kgpt_sync_for_host(rho, L * sizeof(*rho));
	kgpt_sync_for_host(drho, L * sizeof(*drho));
	for (int l = 0; l < L; l++) {
		sum += rho[l];
		drho[l] += (real)grad_scale * lambda / L;
	}
	kgpt_sync_for_backend(rho, L * sizeof(*rho));
	kgpt_sync_for_backend(drho, L * sizeof(*drho));
	m->kv_aux_loss = (real)(lambda * sum / L);
#endif
}

#if IS_ENABLED(CONFIG_KV_PRUNE_LEARNED)
/* Rho of every layer into [recency / block_size, 1], on the host. */
static void kv_clamp_host(real *rho)
{
	for (int l = 0; l < L; l++)
		rho[l] = kvprune_clamp_rho(rho[l], KV_REC, GPT2_MAXT);
}
#endif

/* At gpt2_init(), between its gpt2_sync_for_host() and _for_backend(). */
void gpt2_kv_init(struct gpt2 *m)
{
#if IS_ENABLED(CONFIG_KV_PRUNE_LEARNED)
	real *rho = gpt2_param(m, P_KV_RHO);

	for (int l = 0; l < L; l++)
		rho[l] = (real)CONFIG_KV_PRUNE_INIT_RATIO_F;
	kv_clamp_host(rho);
#endif
}

void gpt2_kv_clamp(struct gpt2 *m)
{
#if IS_ENABLED(CONFIG_KV_PRUNE_LEARNED)
	real *rho = gpt2_param(m, P_KV_RHO);

	kgpt_sync_for_host(rho, L * sizeof(*rho));
	kv_clamp_host(rho);
	kgpt_sync_for_backend(rho, L * sizeof(*rho));
#endif
}
