// SPDX-License-Identifier: MIT
/*
 * Reciprocal MLP, forward beside backward (interface and shapes in
 * ra/rmlp.h, math in docs/r-mlp.md).
 *
 * Forward: one gemm for both up-projections (fcw is the concatenation
 * [standard rows | reciprocal rows]); one OpenMP pass applies GELU and the
 * scalars; with the mixer, one small gemm writes the reciprocal columns in
 * place (leading dimension D_ff, no copy); then the down-projection gemm.
 *
 * The scalar factor s_low = w_rec * gate_alpha of the reciprocal path is
 * applied after the mixer, as the gemm's alpha. Its gradient is then
 * <dh_low, m> with m = u @ mixw^T the mixer's output, which equals
 * <dh_low @ mixw, u>: the (N, R) product dh_low @ mixw is needed anyway
 * for du, so the scalar costs one multiply-add per element of u.
 *
 * Only the pre-activation is kept between forward and backward; backward
 * rebuilds the activation (one pass, plus the mixer gemm) in scratch.
 */
#include <cblas.h>
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/kutil.h"
#include "ra/rmlp.h"

#define GELU_K		R(0.7978845608028654)	/* sqrt(2/pi) */
#define GELU_C		R(0.044715)
/* Bounds of the exponent -2z: e^80 = 5.5e34, so 1/(1+e) stays a normal
 * float (no denormals) and GELU is within float precision in both tails. */
#define RMLP_EXP_LO	R(-80.0)
#define RMLP_EXP_HI	R(80.0)

/*
 * e^{-2z} for the GELU below, the exponent clamped to [lo, hi]. float: the
 * branch-free, vectorisable kexp() of kernels/cpu/kutil.h; double (the
 * gradient tests): libm's exp().
 */
static inline real rmlp_exp_m2z(real z, real lo, real hi)
{
	real a = -2 * z;

#ifdef KGPT_F64
	a = a < lo ? lo : a;
	a = a > hi ? hi : a;
#endif
	return kexp(a, lo, hi);
}

/*
 * GELU, tanh approximation, in its sigmoid form:
 * 0.5 x (1 + tanh z) = x s,  s = 1 / (1 + e),  e = e^{-2z},
 * z = sqrt(2/pi) (x + 0.044715 x^3). Returns s, and e * s = 1 - s
 * (for the derivative, without cancellation) in *es.
 */
static inline real rmlp_gelu_s(real x, real *es, real lo, real hi)
{
	real z = GELU_K * (x + GELU_C * x * x * x);
	real e = rmlp_exp_m2z(z, lo, hi);
	real s = 1 / (1 + e);

	*es = e * s;
	return s;
}

/* d GELU / dx = s + x s (1 - s) 2 dz/dx, with s, es from rmlp_gelu_s(). */
static inline real rmlp_dgelu(real x, real s, real es)
{
	return s * (1 + 2 * GELU_K * x * es * (1 + 3 * GELU_C * x * x));
}

/*
 * Activation pass, forward. pre (N, D_ff) -> h (N, D_ff):
 * h[:, :Ds] = s_std GELU(pre[:, :Ds]); the reciprocal part goes to
 * h[:, Ds:] = s_low GELU(pre[:, Ds:]) without the mixer, or to
 * u (N, Rr) = GELU(pre[:, Ds:]) with it (h[:, Ds:] is then left to the
 * mixer gemm).
 */
static void rmlp_act_forward(real *h, real *u, const real *pre, real s_std,
			     real s_low, int N, int Ds, int Rr, int mixer)
{
	int Dff = Ds + Rr;
	real lo = RMLP_EXP_LO, hi = RMLP_EXP_HI;

	KHIDE(lo);
	KHIDE(hi);
#pragma omp parallel for schedule(static) if ((long)N * Dff >= KPAR_MIN)
	for (int n = 0; n < N; n++) {
		const real *restrict ps = pre + (size_t)n * Dff;
		const real *restrict pl = ps + Ds;
		real *restrict hs = h + (size_t)n * Dff;
		real *restrict hl = mixer ? u + (size_t)n * Rr : hs + Ds;
		real sl = mixer ? 1 : s_low;

#pragma omp simd
		for (int j = 0; j < Ds; j++) {
			real x = ps[j], es;

			hs[j] = s_std * x * rmlp_gelu_s(x, &es, lo, hi);
		}
#pragma omp simd
		for (int k = 0; k < Rr; k++) {
			real x = pl[k], es;

			hl[k] = sl * x * rmlp_gelu_s(x, &es, lo, hi);
		}
	}
}

/*
 * Activation pass, backward, in place: dh (N, D_ff) -> dpre (N, D_ff).
 * Standard part: dpre = s_std GELU'(pre) dh, *acc_std = sum dh GELU(pre).
 * Reciprocal part, with dm = du (N, Rr) = dh_low @ mixw when there is a
 * mixer, else dm = dh[:, Ds:]: dpre = s_low GELU'(pre) dm and
 * *acc_low = sum dm GELU(pre) = dL/ds_low. Sums in double.
 */
static void rmlp_act_backward(real *dh, double *acc_std, double *acc_low,
			      const real *pre, const real *du, real s_std,
			      real s_low, int N, int Ds, int Rr)
{
	int Dff = Ds + Rr;
	double as = 0, al = 0;
	real lo = RMLP_EXP_LO, hi = RMLP_EXP_HI;

	KHIDE(lo);
	KHIDE(hi);
#pragma omp parallel for schedule(static) reduction(+:as, al) \
	if ((long)N * Dff >= KPAR_MIN)
	for (int n = 0; n < N; n++) {
		const real *restrict ps = pre + (size_t)n * Dff;
		const real *restrict pl = ps + Ds;
		real *restrict ds = dh + (size_t)n * Dff;
		/* dm is dl itself without mixer: neither may be restrict. */
		real *dl = ds + Ds;
		const real *dm = du ? du + (size_t)n * Rr : dl;
		double rs = 0, rl = 0;

#pragma omp simd reduction(+:rs)
		for (int j = 0; j < Ds; j++) {
			real x = ps[j], es, s = rmlp_gelu_s(x, &es, lo, hi);
			real g = ds[j];

			rs += (double)(g * x * s);
			ds[j] = s_std * g * rmlp_dgelu(x, s, es);
		}
#pragma omp simd reduction(+:rl)
		for (int k = 0; k < Rr; k++) {
			real x = pl[k], es, s = rmlp_gelu_s(x, &es, lo, hi);
			real g = dm[k];

			rl += (double)(g * x * s);
			dl[k] = s_low * g * rmlp_dgelu(x, s, es);
		}
		as += rs;
		al += rl;
	}
	*acc_std = as;
	*acc_low = al;
}

/* w_rec * gate_alpha, the factor on the reciprocal path. */
static inline real rmlp_low_scale(const struct rmlp_params *p,
				  const struct rmlp_dims *d)
{
	return *p->w_rec * (d->use_gates ? *p->gate_alpha : 1);
}

/* h[:, Ds:] (N, Rr), leading dimension Dff = s_low * u (N, Rr) @ mixw^T. */
static void rmlp_mix_forward(real *h, const real *u, const real *mixw,
			     real s_low, int N, int Ds, int Rr)
{
	cblas_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, Rr, Rr, s_low,
		   u, Rr, mixw, Rr, 0, h + Ds, Ds + Rr);
}

/*
 * With dh_low = dh[:, Ds:] (N, Rr), leading dimension Dff:
 * dmixw (Rr, Rr) += s_low dh_low^T @ u, then u (N, Rr) = dh_low @ mixw
 * (u is consumed: the activation pass needs only this product).
 */
static void rmlp_mix_backward(real *dmixw, real *u, const real *dh,
			      const real *mixw, real s_low, int N, int Ds,
			      int Rr)
{
	int Dff = Ds + Rr;

	cblas_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, Rr, Rr, N, s_low,
		   dh + Ds, Dff, u, Rr, 1, dmixw, Rr);
	cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, Rr, Rr, 1,
		   dh + Ds, Dff, mixw, Rr, 0, u, Rr);
}

/* h (N, D_ff) = [s_std GELU(pre_std) | s_low mix(GELU(pre_low))]. */
static void rmlp_activation(real *h, real *u, const real *pre,
			    const struct rmlp_params *p,
			    const struct rmlp_dims *d, int N)
{
	real s_low = rmlp_low_scale(p, d);

	rmlp_act_forward(h, u, pre, *p->w_std, s_low, N, d->D_std, d->R,
			 d->use_mixer);
	if (d->use_mixer)
		rmlp_mix_forward(h, u, p->mixw, s_low, N, d->D_std, d->R);
}

void rmlp_forward(real *out, real *saved, real *scratch, const real *inp,
		  const struct rmlp_params *p, const struct rmlp_dims *d,
		  int N)
{
	int Dff = rmlp_dff(d);
	real *h = scratch, *u = scratch + (size_t)N * Dff;

	if (N <= 0)
		return;
	matmul_forward(saved, inp, p->fcw, p->fcb, N, d->C, Dff);
	rmlp_activation(h, u, saved, p, d, N);
	matmul_forward(out, h, p->fcprojw, p->fcprojb, N, Dff, d->C);
}

void rmlp_backward(real *dinp, const struct rmlp_grads *g, real *scratch,
		   const real *dout, const real *inp, const real *saved,
		   const struct rmlp_params *p, const struct rmlp_dims *d,
		   int N)
{
	int C = d->C, Ds = d->D_std, Rr = d->R, Dff = Ds + Rr;
	real *a = scratch, *u = scratch + (size_t)N * Dff;
	real w_rec = *p->w_rec, gate = d->use_gates ? *p->gate_alpha : 1;
	real s_low = w_rec * gate;
	double acc_std, acc_low;

	if (N <= 0)
		return;
	/* Down-projection: needs h, rebuilt in a. */
	rmlp_activation(a, u, saved, p, d, N);
	matmul_backward(NULL, g->fcprojw, g->fcprojb, dout, a, p->fcprojw, N,
			Dff, C);
	/* a = dh (N, D_ff) = dout (N, C) @ fcprojw (C, D_ff), overwriting h. */
	cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, Dff, C, 1,
		   dout, C, p->fcprojw, Dff, 0, a, Dff);
	if (d->use_mixer)
		rmlp_mix_backward(g->mixw, u, a, p->mixw, s_low, N, Ds, Rr);
	rmlp_act_backward(a, &acc_std, &acc_low, saved,
			  d->use_mixer ? u : NULL, *p->w_std, s_low, N, Ds, Rr);
	*g->w_std = (real)(*g->w_std + acc_std);
	*g->w_rec = (real)(*g->w_rec + (double)gate * acc_low);
	if (d->use_gates)
		*g->gate_alpha = (real)(*g->gate_alpha + (double)w_rec * acc_low);
	/* Up-projection: a now holds dpre. */
	matmul_backward(dinp, g->fcw, g->fcb, a, inp, p->fcw, N, C, Dff);
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
