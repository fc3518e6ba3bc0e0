// SPDX-License-Identifier: MIT
/*
 * Reciprocal MLP, forward beside backward (interface and shapes in
 * ra/rmlp.h, math in docs/r-mlp.md).
 *
 * Forward: one gemm for both up-projections (fcw is the concatenation
 * [standard rows | reciprocal rows]); one element-wise pass applies GELU
 * and the scalars (rmlp_act_forward()); with the mixer, one small gemm
 * writes the reciprocal columns in place (leading dimension D_ff, no
 * copy); then the down-projection gemm. Every product and pass is a
 * kernel of kernels/kernels.h, so the layer runs on any backend; the
 * three scalars are read to the host once per call (kgpt_download(): on
 * a GPU backend that waits for the kernels before).
 *
 * The scalar factor s_low = w_rec * gate_alpha of the reciprocal path is
 * applied after the mixer, as the gemm's alpha. Its gradient is then
 * <dh_low, m> with m = u @ mixw^T the mixer's output, which equals
 * <dh_low @ mixw, u>: the (N, R) product dh_low @ mixw is needed anyway
 * for du, so the scalar costs one multiply-add per element of u.
 *
 * Only the pre-activation is kept between forward and backward; backward
 * rebuilds the activation (one pass, plus the mixer gemm) in scratch, and
 * turns dh into dpre in place in one pass (rmlp_act_backward()) that also
 * reduces the scalars' gradients and the up-projection's bias gradient.
 */
#include <math.h>
#include "kernels/kernels.h"
#include "ra/rmlp.h"

/* The layer's scalars on the host; gate is 1 without gates. */
struct rmlp_scalars {
	real w_std, w_rec, gate;
	real s_low;		/* w_rec * gate, the factor on the reciprocal path */
};

static void rmlp_scalars(struct rmlp_scalars *s, const struct rmlp_params *p,
			 const struct rmlp_dims *d)
{
	kgpt_download(&s->w_std, p->w_std, sizeof(real));
	kgpt_download(&s->w_rec, p->w_rec, sizeof(real));
	s->gate = 1;
	if (d->use_gates)
		kgpt_download(&s->gate, p->gate_alpha, sizeof(real));
	s->s_low = s->w_rec * s->gate;
}

/* h[:, Ds:] (N, Rr), leading dimension Dff = s_low * u (N, Rr) @ mixw^T. */
static void rmlp_mix_forward(act_t *h, const act_t *u, const real *mixw,
			     real s_low, int N, int Ds, int Rr)
{
	kgpt_gemm_act(0, 1, N, Rr, Rr, s_low, u, Rr, mixw, Rr, 0, h + Ds, Ds + Rr);
}

/*
 * With dh_low = dh[:, Ds:] (N, Rr), leading dimension Dff:
 * dmixw (Rr, Rr) += s_low dh_low^T @ u, then u (N, Rr) = dh_low @ mixw
 * (u is consumed: the activation pass needs only this product).
 */
static void rmlp_mix_backward(real *dmixw, act_t *u, const act_t *dh,
			      const real *mixw, real s_low, int N, int Ds,
			      int Rr)
{
	int Dff = Ds + Rr;

	kgpt_gemm_dw(1, 0, Rr, Rr, N, s_low, dh + Ds, Dff, u, Rr, 1, dmixw, Rr);
	kgpt_gemm_act(0, 0, N, Rr, Rr, 1, dh + Ds, Dff, mixw, Rr, 0, u, Rr);
}

/* h (N, D_ff) = [s_std GELU(pre_std) | s_low mix(GELU(pre_low))]. */
static void rmlp_activation(act_t *h, act_t *u, const act_t *pre,
			    const struct rmlp_params *p, const struct rmlp_scalars *s,
			    const struct rmlp_dims *d, int N)
{
	rmlp_act_forward(h, u, pre, s->w_std, s->s_low, N, d->D_std, d->R,
			 d->use_mixer);
	if (d->use_mixer)
		rmlp_mix_forward(h, u, p->mixw, s->s_low, N, d->D_std, d->R);
}

void rmlp_forward(act_t *out, act_t *saved, act_t *scratch, const act_t *inp,
		  const struct rmlp_params *p, const struct rmlp_dims *d,
		  int N)
{
	int Dff = rmlp_dff(d);
	act_t *h = scratch, *u = scratch + (size_t)N * Dff;
	struct rmlp_scalars s;

	if (N <= 0)
		return;
	rmlp_scalars(&s, p, d);
	matmul_forward(saved, inp, p->fcw, p->fcb, N, d->C, Dff);
	rmlp_activation(h, u, saved, p, &s, d, N);
	matmul_forward(out, h, p->fcprojw, p->fcprojb, N, Dff, d->C);
}

void rmlp_backward(act_t *dinp, const struct rmlp_grads *g, act_t *scratch,
		   const act_t *dout, const act_t *inp, const act_t *saved,
		   const struct rmlp_params *p, const struct rmlp_dims *d,
		   int N)
{
	int C = d->C, Ds = d->D_std, Rr = d->R, Dff = Ds + Rr;
	act_t *a = scratch, *u = scratch + (size_t)N * Dff;
	struct rmlp_scalars s;

	if (N <= 0)
		return;
	rmlp_scalars(&s, p, d);
	/*
	 * Order: [dfcprojb, h] (element-wise), [dfcprojw, dh, mixer] (gemms),
	 * [GELU' with dfcb] (element-wise), [dinp, dfcw] (gemms). dfcb's column sums
	 * ride on the GELU' pass instead of a pass of their own over dpre
	 * (N, D_ff), which pays for rebuilding h.
	 */
	if (g->fcprojb)		/* here, not by matmul_backward() between its gemms */
		bias_backward(g->fcprojb, dout, N, C);
	/* Down-projection: needs h, rebuilt in a. */
	rmlp_activation(a, u, saved, p, &s, d, N);
	kgpt_gemm_dw(1, 0, C, Dff, N, 1, dout, C, a, Dff, 1, g->fcprojw, Dff);
	/* a = dh (N, D_ff) = dout (N, C) @ fcprojw (C, D_ff), overwriting h. */
	kgpt_gemm_act(0, 0, N, Dff, C, 1, dout, C, p->fcprojw, Dff, 0, a, Dff);
	if (d->use_mixer)
		rmlp_mix_backward(g->mixw, u, a, p->mixw, s.s_low, N, Ds, Rr);
	rmlp_act_backward(a, g->fcb, g->w_std, g->w_rec, d->use_gates ? g->gate_alpha : NULL,
			  saved, d->use_mixer ? u : NULL, s.w_std, s.s_low, s.w_rec, s.gate,
			  N, Ds, Rr);
	/* Up-projection: a now holds dpre; dfcb is done. */
	matmul_backward(dinp, g->fcw, NULL, a, inp, p->fcw, N, C, Dff);
}

void rmlp_init_gates(real *w_std, real *w_rec, real *gate_alpha,
		     const struct rmlp_dims *d)
{
	double dff = rmlp_dff(d);

	*w_std = (real)(d->D_std / dff);
	*w_rec = (real)(d->R / dff);
	if (gate_alpha)
		*gate_alpha = R(0.1);
}

void rmlp_from_baseline(real *mixw, real *w_std, real *w_rec,
			real *gate_alpha, const struct rmlp_dims *d)
{
	size_t rr = (size_t)d->R;

	if (mixw)
		for (size_t i = 0; i < rr * rr; i++)
			mixw[i] = i % (rr + 1) == 0 ? 1 : 0;
	rmlp_init_gates(w_std, w_rec, gate_alpha, d);
}

void rmlp_get_stats(struct rmlp_stats *s, const struct rmlp_params *p,
		    const struct rmlp_dims *d)
{
	s->w_std = *p->w_std;
	s->w_rec = *p->w_rec;
	s->gate_alpha = d->use_gates ? *p->gate_alpha : 1;
	s->rec_scale = s->w_rec * s->gate_alpha;
	s->mix_fro = 0;
	if (d->use_mixer) {
		size_t n = (size_t)d->R * d->R;
		double ss = 0;

		for (size_t i = 0; i < n; i++)
			ss += (double)p->mixw[i] * p->mixw[i];
		s->mix_fro = sqrt(ss);
	}
}
