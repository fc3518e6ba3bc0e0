// SPDX-License-Identifier: MIT
/*
 * GPT-2 forward and backward, specialised by gpt2/config.h, on the compute
 * backend of kernels/kernels.h (Kconfig chooses it; nothing here knows
 * which). Parameters, gradients and optimizer state are shared memory,
 * activations backend memory, stored as act_t (kernels/kernels.h: bf16
 * with CONFIG_GPT2_AMP_DTYPE="bf16"). What host code reads of them goes
 * through kgpt_download() (the losses) or kgpt_download_act() (logits).
 *
 * Block l (pre-LayerNorm, Radford et al. 2019):
 *   res2 = x + Dropout(AttnProj(Attention(LN1(x))))
 *   res3 = res2 + Dropout(MLP(LN2(res2)))
 * then LNf and the LM head with cross-entropy over the 50257 real tokens.
 * The mechanisms of ra/ replace Attention (KV-cache pruning), scale its
 * queries and keys and mix its output with the values (Reciprocal
 * Attention) and replace MLP (R-MLP) at compile time; with them off this
 * file calls none of their code.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2/gpt2.h"
#include "gpt2/dataloader.h"
#include "kernels/kernels.h"
#include "kgpt/rng.h"
#include "gpt2/phase.h"		/* last: times every kernel call below */

#define C	GPT2_C
#define L	GPT2_L
#define NH	GPT2_NH
#define DFF	GPT2_DFF
#define V	GPT2_V
#define VP	GPT2_VP

/* LM-head rows per chunk: scratch LM_CHUNK * Vp. Each chunk reads and
 * writes the whole (Vp, C) gradient of the head once; from 256 rows on
 * that pass costs little next to the chunk's three gemms. */
#define LM_CHUNK	(GPT2_N < 512 ? GPT2_N : 512)

double gpt2_phase_s[GPT2_NUM_PHASES];
int gpt2_phase_sync;
const char *const gpt2_phase_name[GPT2_NUM_PHASES] = {
	[GPT2_PH_MATMUL] = "matmul",
	[GPT2_PH_LMHEAD] = "lm_head",
	[GPT2_PH_ATTENTION] = "attention",
	[GPT2_PH_ELEMENTWISE] = "elementwise",
	[GPT2_PH_OPTIMIZER] = "optimizer",
};

/* ------------------------------------------------------------------------
 * Mechanism hooks: attention and MLP. The default bodies are GPT-2's; the
 * ra/ mechanisms take over here when Kconfig enables them.
 */

/* Dropout seed of site `site` of layer l for the micro-batch seed. */
static uint64_t site_seed(uint64_t seed, int l, int site)
{
	uint64_t x = seed + 0x632be59bd9b4e019ULL * (uint64_t)(l * 8 + site + 1);

	return kgpt_splitmix64(&x);
}

/* (B,T) attention of layer l: qkv -> atty, saving what backward needs.
 * KV pruning: pruned, except in an evaluation with m->kv_full. */
static void attn_forward(struct gpt2 *m, int l, int B, int T, float p,
			 uint64_t seed)
{
	struct gpt2_layer_acts *a = &m->layer[l];

	if (gpt2_kv_attn_forward(m, l, B, T, p, seed))
		return;
	attention_forward(a->atty, a->att_lse, a->qkv, B, T, C, NH, p, seed);
}

/* dqkv += d attention / d qkv given datty (KV pruning, learned budget:
 * the layer's rho gradient += too). */
static void attn_backward(struct gpt2 *m, int l, int B, int T, float p,
			  uint64_t seed)
{
	struct gpt2_layer_acts *a = &m->layer[l];

	if (gpt2_kv_attn_backward(m, l, B, T, p, seed))
		return;
	attention_backward(m->dqkv, m->datty, a->qkv, a->atty, a->att_lse, B,
			   T, C, NH, p, seed);
}

/*
 * MLP of layer l: ln2 (N,C) -> out (N,C), N <= GPT2_N rows. GPT-2's keeps
 * the pre-activation in fch (N,D_ff) and uses dh as the GELU output. With
 * CONFIG_RMLP the R-MLP of ra/rmlp.h runs instead: it keeps the
 * pre-activation in mlp_saved and uses dh as its scratch (both sized by
 * ra/rmlp.h's helpers, see plan_acts()).
 */
static void mlp_forward(struct gpt2 *m, int l, act_t *out, int N)
{
	struct gpt2_layer_acts *a = &m->layer[l];
	const real *fcb = GPT2_HAS_BIAS ? gpt2_param(m, P_FCB) + (size_t)l * DFF : NULL;
	const real *fcpb = GPT2_HAS_BIAS ? gpt2_param(m, P_FCPROJB) + (size_t)l * C : NULL;

	if (gpt2_rmlp_forward(m, l, out, N))
		return;
	matmul_forward(a->fch, a->ln2, gpt2_param(m, P_FCW) + (size_t)l * DFF * C, fcb,
		       N, C, DFF);
	gelu_forward(m->dh, a->fch, (size_t)N * DFF);
	matmul_forward(out, m->dh, gpt2_param(m, P_FCPROJW) + (size_t)l * C * DFF, fcpb,
		       N, DFF, C);
}

/* dln (zeroed here) = d MLP / d ln2 given dout; parameter grads +=. */
static void mlp_backward(struct gpt2 *m, int l, const act_t *dout, int N)
{
	struct gpt2_layer_acts *a = &m->layer[l];
	size_t nd = (size_t)N * DFF;
	act_t *h = m->dfch, *dh = m->dh;
	real *dfcb = GPT2_HAS_BIAS ? gpt2_grad(m, P_FCB) + (size_t)l * DFF : NULL;
	real *dfcpb = GPT2_HAS_BIAS ? gpt2_grad(m, P_FCPROJB) + (size_t)l * C : NULL;

	if (gpt2_rmlp_backward(m, l, dout, N))
		return;
	gelu_forward(h, a->fch, nd);	/* recompute instead of storing */
	kgpt_zero(dh, nd * sizeof(act_t));
	matmul_backward(dh, gpt2_grad(m, P_FCPROJW) + (size_t)l * C * DFF, dfcpb, dout, h,
			gpt2_param(m, P_FCPROJW) + (size_t)l * C * DFF, N, DFF, C);
	kgpt_zero(h, nd * sizeof(act_t));
	gelu_backward(h, a->fch, dh, nd);
	kgpt_zero(m->dln, (size_t)N * C * sizeof(act_t));
	matmul_backward(m->dln, gpt2_grad(m, P_FCW) + (size_t)l * DFF * C, dfcb, h, a->ln2,
			gpt2_param(m, P_FCW) + (size_t)l * DFF * C, N, C, DFF);
}

/* ------------------------------------------------------------------------
 * Parameters
 */

/* Keep every constrained parameter in its domain after an update (the
 * optimizer calls this last): the mechanisms' clamps, see ra/. */
void gpt2_clamp_params(struct gpt2 *m)
{
	gpt2_kv_clamp(m);
	gpt2_ra_clamp(m);
}

static void fill_tensor_table(struct gpt2_tensor_info *t)
{
	const size_t c = C, vp = VP, maxt = GPT2_MAXT, l = L, dff = DFF;
	const size_t bias = GPT2_HAS_BIAS;
	/* R-MLP: the layers' (R_l, R_l) mixers back to back, one w_std, w_rec
	 * (and gate_alpha) per layer; the scalars are not weight-decayed, the
	 * mixers are, like every other 2-D weight (docs/r-mlp.md) */
	const size_t rmlp = IS_ENABLED(CONFIG_RMLP);
	const size_t mix = IS_ENABLED(CONFIG_RMLP_USE_MIXER) ? gpt2_rmlp_mix_offset(L) : 0;
	const size_t gates = IS_ENABLED(CONFIG_RMLP_USE_GATES);
	const struct gpt2_tensor_info table[GPT2_NUM_TENSORS] = {
		[P_WTE]      = { "wte",      vp * c,          0, 1 },
		[P_WPE]      = { "wpe",      maxt * c,        0, 1 },
		[P_LN1W]     = { "ln1w",     l * c,           0, 0 },
		[P_LN1B]     = { "ln1b",     l * c,           0, 0 },
		[P_QKVW]     = { "qkvw",     l * 3 * c * c,   0, 1 },
		[P_QKVB]     = { "qkvb",     bias * l * 3 * c, 0, 0 },
		[P_ATTPROJW] = { "attprojw", l * c * c,       0, 1 },
		[P_ATTPROJB] = { "attprojb", bias * l * c,    0, 0 },
		[P_LN2W]     = { "ln2w",     l * c,           0, 0 },
		[P_LN2B]     = { "ln2b",     l * c,           0, 0 },
		[P_FCW]      = { "fcw",      l * dff * c,     0, 1 },
		[P_FCB]      = { "fcb",      bias * l * dff,  0, 0 },
		[P_FCPROJW]  = { "fcprojw",  l * c * dff,     0, 1 },
		[P_FCPROJB]  = { "fcprojb",  bias * l * c,    0, 0 },
		[P_LNFW]     = { "lnfw",     c,               0, 0 },
		[P_LNFB]     = { "lnfb",     c,               0, 0 },
		[P_LMHEAD]   = { "lm_head",  IS_ENABLED(CONFIG_GPT2_WEIGHT_TYING) ? 0 : vp * c, 0, 1 },
		[P_MIXW]     = { "mixw",     mix,             0, 1 },
		[P_W_STD]    = { "w_std",    rmlp * l,        0, 0 },
		[P_W_REC]    = { "w_rec",    rmlp * l,        0, 0 },
		[P_GATE_ALPHA] = { "gate_alpha", gates * l,   0, 0 },
		[P_KV_RHO]   = { "kv_rho",   IS_ENABLED(CONFIG_KV_PRUNE_LEARNED) ? l : 0, 0, 0 },
		/* RA: gates per layer or per head, not weight-decayed */
		[P_RA_W_STD] = { "ra_w_std", l * GPT2_RA_GATES, 0, 0 },
		[P_RA_W_REC] = { "ra_w_rec", l * GPT2_RA_GATES, 0, 0 },
		[P_RA_ALPHA] = { "ra_alpha", IS_ENABLED(CONFIG_RA_SELF_RESTART) ? l * NH : 0, 0, 0 },
	};
	size_t off = 0;

	for (int i = 0; i < GPT2_NUM_TENSORS; i++) {
		t[i] = table[i];
		t[i].offset = off;
		off += t[i].size;
	}
}

static void init_normal(real *p, size_t n, float std, struct kgpt_rng *rng)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (real)(std * kgpt_rng_normal(rng));
}

static void init_const(real *p, size_t n, real v)
{
	for (size_t i = 0; i < n; i++)
		p[i] = v;
}

static void init_params(struct gpt2 *m, uint64_t seed)
{
	struct kgpt_rng rng;
	const float std = 0.02f, res_std = 0.02f / sqrtf(2.0f * L);

	kgpt_rng_seed(&rng, seed);
	memset(m->params, 0, m->num_params * sizeof(real));
	/* the padded rows V..Vp-1 of wte stay 0: never an input or a target */
	init_normal(gpt2_param(m, P_WTE), (size_t)V * C, std, &rng);
	init_normal(gpt2_param(m, P_WPE), m->tensors[P_WPE].size, std, &rng);
	init_const(gpt2_param(m, P_LN1W), m->tensors[P_LN1W].size, 1);
	init_normal(gpt2_param(m, P_QKVW), m->tensors[P_QKVW].size, std, &rng);
	init_normal(gpt2_param(m, P_ATTPROJW), m->tensors[P_ATTPROJW].size, res_std, &rng);
	init_const(gpt2_param(m, P_LN2W), m->tensors[P_LN2W].size, 1);
	init_normal(gpt2_param(m, P_FCW), m->tensors[P_FCW].size, std, &rng);
	init_normal(gpt2_param(m, P_FCPROJW), m->tensors[P_FCPROJW].size, res_std, &rng);
	init_const(gpt2_param(m, P_LNFW), C, 1);
	if (m->tensors[P_LMHEAD].size)
		init_normal(gpt2_param(m, P_LMHEAD), (size_t)V * C, std, &rng);
	gpt2_rmlp_init(m);
	gpt2_kv_init(m);
	gpt2_ra_init(m);
}

/* ------------------------------------------------------------------------
 * Memory plan
 */

/* Lay out (or, with base NULL, only count) the activations. */
static size_t plan_acts(struct gpt2 *m, char *base)
{
	const size_t n = GPT2_N, b = GPT2_B, t = GPT2_T, c = C;
	size_t off = 0;
	/* count elements of the pointer's type, each array 64-byte aligned */
#define TAKE(ptr, count) do { if (base) (ptr) = (void *)(base + off);		\
			      off += (count) * sizeof(*(ptr));				\
			      off = (off + 63) & ~(size_t)63; } while (0)

	TAKE(m->inputs, n);
	TAKE(m->targets, n);
	TAKE(m->encoded, n * c);
	for (int l = 0; l < L; l++) {
		struct gpt2_layer_acts *a = &m->layer[l];

		TAKE(a->ln1, n * c);
		TAKE(a->ln1_mean, n);
		TAKE(a->ln1_rstd, n);
		TAKE(a->qkv, n * 3 * c);
		TAKE(a->atty, n * c);
		if (IS_ENABLED(CONFIG_RA_SELF_RESTART))
			TAKE(a->atto, n * c);
		else if (base)
			a->atto = a->atty;
		TAKE(a->att_lse, b * NH * t);
		if (IS_ENABLED(CONFIG_KV_CACHE_PRUNE))
			TAKE(a->kv_evict, b * NH * t);
		TAKE(a->res2, n * c);
		TAKE(a->ln2, n * c);
		TAKE(a->ln2_mean, n);
		TAKE(a->ln2_rstd, n);
		if (IS_ENABLED(CONFIG_RMLP)) {
			struct rmlp_dims d = gpt2_rmlp_dims(l);

			TAKE(a->mlp_saved, n * rmlp_saved_per_row(&d));
		} else {
			TAKE(a->fch, n * DFF);
		}
		TAKE(a->res3, n * c);
	}
	TAKE(m->lnf, n * c);
	TAKE(m->lnf_mean, n);
	TAKE(m->lnf_rstd, n);
	TAKE(m->losses, n);
	TAKE(m->dres, n * c);
	TAKE(m->dln, n * c);
	TAKE(m->dqkv, n * 3 * c);
	TAKE(m->datty, n * c);
	if (IS_ENABLED(CONFIG_RMLP)) {
		/* the R-MLP's scratch for forward and backward, in place of
		 * GPT-2's two (N,D_ff) buffers: N (D_ff + max R_l) reals with
		 * the mixer, N D_ff without (act_t each) */
		size_t per_row = 0;

		for (int l = 0; l < L; l++) {
			struct rmlp_dims d = gpt2_rmlp_dims(l);

			if (rmlp_scratch_per_row(&d) > per_row)
				per_row = rmlp_scratch_per_row(&d);
		}
		TAKE(m->dh, n * per_row);
	} else {
		TAKE(m->dfch, n * DFF);
		TAKE(m->dh, n * DFF);
	}
	TAKE(m->branch, n * c);
	TAKE(m->lm_scratch, (size_t)LM_CHUNK * VP);
#undef TAKE
	return off;
}

/* Host staging for what host code reads of backend memory: the losses
 * (N) and one row of logits (Vp). */
#define HOST_N	(GPT2_N > VP ? GPT2_N : VP)

/* The learned KV budget's host copies of one layer for its soft walk
 * (ra/kvprune_gpt2.c): qkv and dqkv (N,3C), out (N,C), lse and the
 * eviction steps (B,NH,T). The hard rule runs on backend memory. */
#define KV_HOST_N	((size_t)GPT2_N * 7 * C + 2 * (size_t)GPT2_B * NH * GPT2_T)

/* bytes of backend (or, shared, shared) memory, zeroed; NULL after a
 * message naming what and how much. */
static void *xalloc(size_t bytes, int shared, const char *what)
{
	void *p = shared ? kgpt_alloc_shared(bytes) : kgpt_alloc(bytes);

	if (!p)
		fprintf(stderr, "kgpt: out of %s memory allocating %s (%.1f MiB); %s\n",
			kgpt_backend_name(), what, (double)bytes / (1 << 20),
			strstr(what, "activation") ?
			"lower CONFIG_BATCH_SIZE or CONFIG_GPT2_BLOCK_SIZE" :
			"choose a smaller model (n_layer, n_embd) in make menuconfig");
	return p;
}

int gpt2_init(struct gpt2 *m, uint64_t seed)
{
	memset(m, 0, sizeof(*m));
	fill_tensor_table(m->tensors);
	m->num_params = m->tensors[GPT2_NUM_TENSORS - 1].offset +
			m->tensors[GPT2_NUM_TENSORS - 1].size;
	m->num_trainable = m->num_params - (size_t)(VP - V) * C *
			   (1 + (m->tensors[P_LMHEAD].size != 0));
	for (int t = 0; t < GPT2_NUM_TENSORS; t++)
		if (gpt2_tensor_frozen(t))
			m->num_trainable -= m->tensors[t].size;
	m->params = xalloc(m->num_params * sizeof(real), 1, "parameters");
	m->grads = xalloc(m->num_params * sizeof(real), 1, "gradients");
	m->acts_bytes = plan_acts(m, NULL);
	m->acts = xalloc(m->acts_bytes, 0, "activations");
	m->host = malloc(HOST_N * sizeof(real));
	if (IS_ENABLED(CONFIG_KV_PRUNE_LEARNED)) {
		m->kv_host = malloc(KV_HOST_N * sizeof(real));
		if (!m->kv_host)
			fprintf(stderr, "kgpt: out of host memory for the learned KV budget's copies "
				"(%.1f MiB); lower CONFIG_BATCH_SIZE or CONFIG_GPT2_BLOCK_SIZE\n",
				(double)KV_HOST_N * sizeof(real) / (1 << 20));
	}
	if (!m->params || !m->grads || !m->acts || !m->host ||
	    (IS_ENABLED(CONFIG_KV_PRUNE_LEARNED) && !m->kv_host) ||
	    optim_alloc(&m->opt, m->num_params)) {
		gpt2_free(m);
		return -ENOMEM;
	}
	plan_acts(m, m->acts);
	m->lm_chunk = LM_CHUNK;
	gpt2_sync_for_host(m);
	init_params(m, seed);
	gpt2_sync_for_backend(m);
	return 0;
}

void gpt2_free(struct gpt2 *m)
{
	kgpt_free(m->params, m->num_params * sizeof(real));
	kgpt_free(m->grads, m->num_params * sizeof(real));
	optim_free(&m->opt, m->num_params);
	kgpt_free(m->acts, m->acts_bytes);
	free(m->host);
	free(m->kv_host);
	memset(m, 0, sizeof(*m));
}

/* sync (kgpt_sync_for_host or _for_backend) on every shared array of m. */
static void sync_shared(const struct gpt2 *m, void (*sync)(const void *, size_t))
{
	size_t np = m->num_params;

	sync(m->params, np * sizeof(real));
	sync(m->grads, np * sizeof(real));
	sync(m->opt.m, np * sizeof(float));
	sync(m->opt.v, np * sizeof(float));
	if (m->opt.vmax)
		sync(m->opt.vmax, np * sizeof(float));
}

void gpt2_sync_for_host(const struct gpt2 *m)
{
	sync_shared(m, kgpt_sync_for_host);
}

void gpt2_sync_for_backend(const struct gpt2 *m)
{
	sync_shared(m, kgpt_sync_for_backend);
}

size_t gpt2_bytes(const struct gpt2 *m)
{
	return m->num_params * (2 * sizeof(real) + optim_bytes_per_param()) +
	       m->acts_bytes;
}

/* ------------------------------------------------------------------------
 * Forward
 */

static const act_t *layer_input(struct gpt2 *m, int l)
{
	return l == 0 ? m->encoded : m->layer[l - 1].res3;
}

static const real *head_weight(struct gpt2 *m)
{
	return m->tensors[P_LMHEAD].size ? gpt2_param(m, P_LMHEAD) : gpt2_param(m, P_WTE);
}

/* res = x + Dropout(branch), (N,C). */
static void add_branch(act_t *res, const act_t *x, act_t *branch, size_t n, float p,
		       uint64_t seed)
{
	if (p > 0.0f)
		dropout_forward(branch, n, p, seed);
	residual_forward(res, x, branch, n);
}

static void block_forward(struct gpt2 *m, int l, int B, int T, float p, uint64_t seed)
{
	struct gpt2_layer_acts *a = &m->layer[l];
	const int N = B * T;
	const size_t nc = (size_t)N * C;
	const act_t *x = layer_input(m, l);
	const real *qkvb = GPT2_HAS_BIAS ? gpt2_param(m, P_QKVB) + (size_t)l * 3 * C : NULL;
	const real *apb = GPT2_HAS_BIAS ? gpt2_param(m, P_ATTPROJB) + (size_t)l * C : NULL;

	layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x,
			  gpt2_param(m, P_LN1W) + (size_t)l * C,
			  gpt2_param(m, P_LN1B) + (size_t)l * C, N, C);
	matmul_forward(a->qkv, a->ln1, gpt2_param(m, P_QKVW) + (size_t)l * 3 * C * C, qkvb,
		       N, C, 3 * C);
	gpt2_ra_qk_forward(m, l, N);
	attn_forward(m, l, B, T, p, site_seed(seed, l, 0));
	gpt2_ra_out_forward(m, l, N);
	matmul_forward(m->branch, a->atto, gpt2_param(m, P_ATTPROJW) + (size_t)l * C * C,
		       apb, N, C, C);
	add_branch(a->res2, x, m->branch, nc, p, site_seed(seed, l, 1));

	layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res2,
			  gpt2_param(m, P_LN2W) + (size_t)l * C,
			  gpt2_param(m, P_LN2B) + (size_t)l * C, N, C);
	mlp_forward(m, l, m->branch, N);
	add_branch(a->res3, a->res2, m->branch, nc, p, site_seed(seed, l, 2));
}

/* Embeddings, all blocks and the final LayerNorm, with dropout p. */
static void forward_trunk(struct gpt2 *m, const int *inputs, int B, int T, float p,
			  uint64_t seed)
{
	const int N = B * T;

	kgpt_upload(m->inputs, inputs, (size_t)N * sizeof(int));
	encoder_forward(m->encoded, m->inputs, gpt2_param(m, P_WTE), gpt2_param(m, P_WPE),
			B, T, C);
	if (p > 0.0f)
		dropout_forward(m->encoded, (size_t)N * C, p, site_seed(seed, L, 0));
	for (int l = 0; l < L; l++)
		block_forward(m, l, B, T, p, seed);
	layernorm_forward(m->lnf, m->lnf_mean, m->lnf_rstd, m->layer[L - 1].res3,
			  gpt2_param(m, P_LNFW), gpt2_param(m, P_LNFB), N, C);
}

/* Mean of the N losses of the last forward (m->losses, backend memory). */
static double mean_loss(struct gpt2 *m, int N)
{
	double s = 0;

	kgpt_download(m->host, m->losses, (size_t)N * sizeof(real));
	for (int i = 0; i < N; i++)
		s += m->host[i];
	return s / N;
}

double gpt2_forward(struct gpt2 *m, const int *inputs, const int *targets, int B, int T)
{
	const int N = B * T;

	m->training = 0;
	forward_trunk(m, inputs, B, T, 0.0f, 0);
	if (!targets)
		return 0.0f;
	kgpt_upload(m->targets, targets, (size_t)N * sizeof(int));
	lm_head_forward(m->losses, m->lnf, head_weight(m), m->targets, N, C, V, VP,
			m->lm_scratch, m->lm_chunk);
	return mean_loss(m, N);
}

double gpt2_eval_loss_part(struct gpt2 *m, struct dataloader *dl, int batches, int part,
			   int parts, int *inputs, int *targets, int *used)
{
	size_t avail = dataloader_batches(dl);
	double sum = 0;

	*used = 0;
	dataloader_reset(dl);
	for (int i = 0; i < batches && (size_t)i < avail; i++) {
		int mine = i % parts == part;

		if (dataloader_next(dl, mine ? inputs : NULL, mine ? targets : NULL))
			break;
		if (!mine)
			continue;
		sum += gpt2_forward(m, inputs, targets, GPT2_B, GPT2_T);
		(*used)++;
	}
	return sum;
}

double gpt2_eval_loss(struct gpt2 *m, struct dataloader *dl, int batches, int *inputs,
		      int *targets, int *used)
{
	double sum = gpt2_eval_loss_part(m, dl, batches, 0, 1, inputs, targets, used);

	return *used ? sum / *used : NAN;
}

void gpt2_logits(struct gpt2 *m, int row, float *logits)
{
	act_t *out = (act_t *)m->lm_scratch;	/* Vp act_t fit in LM_CHUNK Vp reals */

	matmul_forward(out, m->lnf + (size_t)row * C, head_weight(m), NULL, 1, C, VP);
	kgpt_download_act(m->host, out, VP);
	for (int i = 0; i < VP; i++)
		logits[i] = (float)m->host[i];
}

/* ------------------------------------------------------------------------
 * Generation: one token at a time through a KV cache per layer
 */

int gpt2_gen_init(struct gpt2_gen *g, const struct gpt2 *m)
{
	memset(g, 0, sizeof(*g));
	for (int l = 0; l < L; l++) {
		/* without pruning: a budget k above block_size, nothing evicted */
		struct kvprune_cfg cfg = gpt2_kv_gen_cfg(m, l);
		int err = kv_cache_init(&g->cache[l], NH, C, GPT2_MAXT, &cfg);
		if (err) {
			gpt2_gen_free(g);
			return err;
		}
	}
	return 0;
}

void gpt2_gen_free(struct gpt2_gen *g)
{
	for (int l = 0; l < L; l++)
		kv_cache_free(&g->cache[l]);
	memset(g, 0, sizeof(*g));
}

void gpt2_gen_reset(struct gpt2_gen *g)
{
	for (int l = 0; l < L; l++)
		kv_cache_reset(&g->cache[l]);
	g->t = 0;
}

size_t gpt2_gen_bytes(const struct gpt2_gen *g, int kv_only)
{
	size_t n = 0;

	for (int l = 0; l < L; l++)
		n += kv_only ? g->cache[l].kv_bytes : kv_cache_alloc_bytes(&g->cache[l]);
	return n;
}

/* Attention of the new token in layer l through its KV cache, which is
 * backend memory like qkv and atty: nothing moves to the host. */
static int gen_attention(struct gpt2 *m, struct gpt2_gen *g, int l)
{
	act_t *qkv = m->layer[l].qkv;

	return kv_cache_step(&g->cache[l], m->layer[l].atty, qkv, qkv + C, qkv + 2 * C);
}

int gpt2_step(struct gpt2 *m, struct gpt2_gen *g, int token, float *logits)
{
	const int t = g->t;

	if (token < 0 || token >= V)
		return -EINVAL;
	if (t >= GPT2_MAXT)
		return -ENOSPC;
	/* the embedding of position t: wpe from row t on */
	kgpt_upload(m->inputs, &token, sizeof(token));
	encoder_forward(m->encoded, m->inputs, gpt2_param(m, P_WTE),
			gpt2_param(m, P_WPE) + (size_t)t * C, 1, 1, C);
	for (int l = 0; l < L; l++) {
		struct gpt2_layer_acts *a = &m->layer[l];
		const act_t *x = layer_input(m, l);
		const real *qkvb = GPT2_HAS_BIAS ? gpt2_param(m, P_QKVB) + (size_t)l * 3 * C : NULL;
		const real *apb = GPT2_HAS_BIAS ? gpt2_param(m, P_ATTPROJB) + (size_t)l * C : NULL;
		int err;

		layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x,
				  gpt2_param(m, P_LN1W) + (size_t)l * C,
				  gpt2_param(m, P_LN1B) + (size_t)l * C, 1, C);
		matmul_forward(a->qkv, a->ln1, gpt2_param(m, P_QKVW) + (size_t)l * 3 * C * C,
			       qkvb, 1, C, 3 * C);
		gpt2_ra_qk_forward(m, l, 1);
		err = gen_attention(m, g, l);
		if (err)
			return err;
		gpt2_ra_out_forward(m, l, 1);
		matmul_forward(m->branch, a->atto, gpt2_param(m, P_ATTPROJW) + (size_t)l * C * C,
			       apb, 1, C, C);
		residual_forward(a->res2, x, m->branch, C);
		layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res2,
				  gpt2_param(m, P_LN2W) + (size_t)l * C,
				  gpt2_param(m, P_LN2B) + (size_t)l * C, 1, C);
		mlp_forward(m, l, m->branch, 1);
		residual_forward(a->res3, a->res2, m->branch, C);
	}
	layernorm_forward(m->lnf, m->lnf_mean, m->lnf_rstd, m->layer[L - 1].res3,
			  gpt2_param(m, P_LNFW), gpt2_param(m, P_LNFB), 1, C);
	if (logits)
		gpt2_logits(m, 0, logits);
	g->t++;
	return 0;
}

/* ------------------------------------------------------------------------
 * Backward (one layer's activation gradients at a time; m->dres carries
 * the gradient of the residual stream downwards)
 */

/* The gradient of a branch behind dropout: dres itself, or a masked copy. */
static const act_t *branch_grad(struct gpt2 *m, size_t n, float p, uint64_t seed)
{
	if (p == 0.0f)
		return m->dres;
	kgpt_copy(m->branch, m->dres, n * sizeof(act_t));
	dropout_backward(m->branch, n, p, seed);
	return m->branch;
}

static void block_backward(struct gpt2 *m, int l, float p, uint64_t seed)
{
	struct gpt2_layer_acts *a = &m->layer[l];
	const int B = GPT2_B, T = GPT2_T, N = GPT2_N;
	const size_t nc = (size_t)N * C;
	const act_t *dbranch;
	real *dqkvb = GPT2_HAS_BIAS ? gpt2_grad(m, P_QKVB) + (size_t)l * 3 * C : NULL;
	real *dapb = GPT2_HAS_BIAS ? gpt2_grad(m, P_ATTPROJB) + (size_t)l * C : NULL;

	/* MLP branch: dres = d/d res3 on entry, d/d res2 after. */
	dbranch = branch_grad(m, nc, p, site_seed(seed, l, 2));
	mlp_backward(m, l, dbranch, N);
	layernorm_backward(m->dres, gpt2_grad(m, P_LN2W) + (size_t)l * C,
			   gpt2_grad(m, P_LN2B) + (size_t)l * C, m->dln, a->res2,
			   gpt2_param(m, P_LN2W) + (size_t)l * C, a->ln2_mean, a->ln2_rstd, N, C);

	/* Attention branch: dres becomes d/d x. */
	dbranch = branch_grad(m, nc, p, site_seed(seed, l, 1));
	kgpt_zero(m->datty, nc * sizeof(act_t));
	matmul_backward(m->datty, gpt2_grad(m, P_ATTPROJW) + (size_t)l * C * C, dapb,
			dbranch, a->atto, gpt2_param(m, P_ATTPROJW) + (size_t)l * C * C,
			N, C, C);
	kgpt_zero(m->dqkv, 3 * nc * sizeof(act_t));
	gpt2_ra_out_backward(m, l, N);
	attn_backward(m, l, B, T, p, site_seed(seed, l, 0));
	gpt2_ra_qk_backward(m, l, N);
	kgpt_zero(m->dln, nc * sizeof(act_t));
	matmul_backward(m->dln, gpt2_grad(m, P_QKVW) + (size_t)l * 3 * C * C, dqkvb,
			m->dqkv, a->ln1, gpt2_param(m, P_QKVW) + (size_t)l * 3 * C * C,
			N, C, 3 * C);
	layernorm_backward(m->dres, gpt2_grad(m, P_LN1W) + (size_t)l * C,
			   gpt2_grad(m, P_LN1B) + (size_t)l * C, m->dln, layer_input(m, l),
			   gpt2_param(m, P_LN1W) + (size_t)l * C, a->ln1_mean, a->ln1_rstd, N, C);
}

double gpt2_forward_backward(struct gpt2 *m, const int *inputs, const int *targets,
			     float grad_scale, uint64_t seed)
{
	const int B = GPT2_B, T = GPT2_T, N = GPT2_N;
	const size_t nc = (size_t)N * C;
	const float p = GPT2_DROPOUT;
	real *dhead = m->tensors[P_LMHEAD].size ? gpt2_grad(m, P_LMHEAD) : gpt2_grad(m, P_WTE);

	m->training = 1;
	forward_trunk(m, inputs, B, T, p, seed);
	kgpt_upload(m->targets, targets, (size_t)N * sizeof(int));

	kgpt_zero(m->dln, nc * sizeof(act_t));
	lm_head_forward_backward(m->losses, m->dln, dhead, m->lnf, head_weight(m), m->targets,
				 (real)grad_scale / N, N, C, V, VP, m->lm_scratch, m->lm_chunk);
	kgpt_zero(m->dres, nc * sizeof(act_t));
	layernorm_backward(m->dres, gpt2_grad(m, P_LNFW), gpt2_grad(m, P_LNFB), m->dln,
			   m->layer[L - 1].res3, gpt2_param(m, P_LNFW), m->lnf_mean,
			   m->lnf_rstd, N, C);
	for (int l = L - 1; l >= 0; l--)
		block_backward(m, l, p, seed);
	if (p > 0.0f)
		dropout_backward(m->dres, nc, p, site_seed(seed, L, 0));
	encoder_backward(gpt2_grad(m, P_WTE), gpt2_grad(m, P_WPE), m->dres, m->inputs, B, T, C);
	gpt2_kv_aux_loss(m, grad_scale);
	m->training = 0;
	return mean_loss(m, N);
}

double gpt2_flops_per_token(void)
{
	double mm = (double)L * (4.0 * C * C + 2.0 * C * DFF) + (double)VP * C;

	if (IS_ENABLED(CONFIG_RMLP_USE_MIXER))
		mm += (double)gpt2_rmlp_mix_offset(L);	/* the mixers' sum R_l^2 */
	return 6.0 * mm + 12.0 * L * C * GPT2_T;
}
