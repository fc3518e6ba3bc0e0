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
 * rebuilds the activation (one pass, plus the mixer gemm) in scratch, and
 * turns dh into dpre in place in one pass that also reduces the scalars'
 * gradients and the up-projection's bias gradient.
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
 * e^{-2z} for the GELU below, z = sqrt(2/pi) (x + 0.044715 x^3), the
 * exponent clamped to [lo, hi]. -2 sqrt(2/pi) is one constant (scaling by
 * 2 is exact, so this is bit-for-bit -2 * z). float: the branch-free,
 * vectorisable kexp() of kernels/cpu/kutil.h; double (the gradient
 * tests): libm's exp().
 */
static inline real rmlp_exp_m2z(real x, real lo, real hi)
{
	real a = -2 * GELU_K * (x + GELU_C * x * x * x);

#ifdef KGPT_F64
	a = a < lo ? lo : a;
	a = a > hi ? hi : a;
#endif
	return kexp(a, lo, hi);
}

/*
 * GELU, tanh approximation, in its sigmoid form:
 * 0.5 x (1 + tanh z) = x s,  s = 1 / (1 + e),  e = e^{-2z}.
 * Returns s, and e * s = 1 - s (for the derivative, without
 * cancellation) in *es.
 */
static inline real rmlp_gelu_s(real x, real *es, real lo, real hi)
{
	real e = rmlp_exp_m2z(x, lo, hi);
	real s = 1 / (1 + e);

	*es = e * s;
	return s;
}

/* GELU(x) = x / (1 + e^{-2z}) (one division, no multiply by s). */
static inline real rmlp_gelu(real x, real lo, real hi)
{
	return x / (1 + rmlp_exp_m2z(x, lo, hi));
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
#pragma omp parallel for schedule(static) firstprivate(lo, hi) \
	if ((long)N * Dff >= KPAR_MIN)
	for (int n = 0; n < N; n++) {
		const real *restrict ps = pre + (size_t)n * Dff;
		const real *restrict pl = ps + Ds;
		real *restrict hs = h + (size_t)n * Dff;
		real *restrict hl = mixer ? u + (size_t)n * Rr : hs + Ds;
		real sl = mixer ? 1 : s_low;

#pragma omp simd
		for (int j = 0; j < Ds; j++)
			hs[j] = s_std * rmlp_gelu(ps[j], lo, hi);
#pragma omp simd
		for (int k = 0; k < Rr; k++)
			hl[k] = sl * rmlp_gelu(pl[k], lo, hi);
	}
}

/* Elements per partial sum of the scalar gradients (see below). */
#define RMLP_SUM_BLK	128

/*
 * One contiguous run of n elements of a row, backward: d := scale *
 * GELU'(x) * dm, db += d when db is not NULL; returns sum dm * GELU(x).
 * dm may be d itself (read before written). The sum runs in `real` over
 * blocks of RMLP_SUM_BLK elements (16 terms per vector lane) and in double
 * across blocks: converting every term to double inside the vector loop
 * costs a quarter of the pass.
 */
static inline double rmlp_seg_backward(real *d, real *db, const real *dm,
				       const real *x, real scale, int n,
				       real lo, real hi)
{
	double sum = 0;

	for (int j0 = 0; j0 < n; j0 += RMLP_SUM_BLK) {
		int j1 = j0 + RMLP_SUM_BLK < n ? j0 + RMLP_SUM_BLK : n;
		real bs = 0;

#pragma omp simd reduction(+:bs)
		for (int j = j0; j < j1; j++) {
			real es, s = rmlp_gelu_s(x[j], &es, lo, hi);
			real g = dm[j];

			bs += g * x[j] * s;
			d[j] = scale * g * rmlp_dgelu(x[j], s, es);
		}
		sum += bs;
		if (db)
#pragma omp simd
			for (int j = j0; j < j1; j++)
				db[j] += d[j];
	}
	return sum;
}

/*
 * Activation pass, backward, for the columns [c0, c1) of every row (see
 * rmlp_act_backward()); stores its parts of the two scalar sums in
 * sum[0], sum[1] (once, at the end: the threads' slots share a line).
 */
static void rmlp_act_backward_cols(real *dh, real *dfcb, double sum[2],
				   const real *pre, const real *du,
				   real s_std, real s_low, int N, int Ds,
				   int Rr, int c0, int c1, real lo, real hi)
{
	int Dff = Ds + Rr;
	int s0 = c0 < Ds ? c0 : Ds, s1 = c1 < Ds ? c1 : Ds;	/* standard */
	int l0 = c0 > Ds ? c0 : Ds, l1 = c1 > Ds ? c1 : Ds;	/* reciprocal */
	double as = 0, al = 0;

	for (int n = 0; n < N; n++) {
		const real *ps = pre + (size_t)n * Dff;
		real *ds = dh + (size_t)n * Dff;
		const real *dm = du ? du + (size_t)n * Rr + (l0 - Ds) : ds + l0;

		as += rmlp_seg_backward(ds + s0, dfcb ? dfcb + s0 : NULL,
					ds + s0, ps + s0, s_std, s1 - s0, lo,
					hi);
		al += rmlp_seg_backward(ds + l0, dfcb ? dfcb + l0 : NULL, dm,
					ps + l0, s_low, l1 - l0, lo, hi);
	}
	sum[0] = as;
	sum[1] = al;
}

/* Threads of the backward pass; their partial sums are added in order. */
#define RMLP_MAX_THREADS	256

/*
 * Activation pass, backward, in place: dh (N, D_ff) -> dpre (N, D_ff).
 * Standard part: dpre = s_std GELU'(pre) dh, *acc_std = sum dh GELU(pre).
 * Reciprocal part, with dm = du (N, Rr) = dh_low @ mixw when there is a
 * mixer, else dm = dh[:, Ds:]: dpre = s_low GELU'(pre) dm and
 * *acc_low = sum dm GELU(pre) = dL/ds_low. Also dfcb (D_ff) += column
 * sums of dpre when dfcb is not NULL, which saves matmul_backward() a
 * pass over dpre. Each thread owns a range of columns and walks the rows
 * in order, and the threads' partial sums are added in thread order, so
 * every result is deterministic for a given thread count.
 */
static void rmlp_act_backward(real *dh, real *dfcb, double *acc_std,
			      double *acc_low, const real *pre,
			      const real *du, real s_std, real s_low, int N,
			      int Ds, int Rr)
{
	int Dff = Ds + Rr, nt = omp_get_max_threads();
	double part[RMLP_MAX_THREADS][2] = { { 0 } };
	real lo = RMLP_EXP_LO, hi = RMLP_EXP_HI;

	KHIDE(lo);
	KHIDE(hi);
	nt = nt < RMLP_MAX_THREADS ? nt : RMLP_MAX_THREADS;
#pragma omp parallel num_threads(nt) firstprivate(lo, hi) \
	if ((long)N * Dff >= KPAR_MIN)
	{
		size_t c0, c1;

		kthread_range(Dff, 16, &c0, &c1);
		rmlp_act_backward_cols(dh, dfcb, part[omp_get_thread_num()],
				       pre, du, s_std, s_low, N, Ds, Rr,
				       (int)c0, (int)c1, lo, hi);
	}
	*acc_std = *acc_low = 0;
	for (int t = 0; t < nt; t++) {
		*acc_std += part[t][0];
		*acc_low += part[t][1];
	}
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
	/*
	 * Order: [dfcprojb, h] (OpenMP), [dfcprojw, dh, mixer] (BLAS),
	 * [GELU' with dfcb] (OpenMP), [dinp, dfcw] (BLAS). dfcb's column sums
	 * ride on the GELU' pass instead of a pass of their own over dpre
	 * (N, D_ff), which pays for rebuilding h.
	 */
	if (g->fcprojb)		/* here, not by matmul_backward() between its gemms */
		bias_backward(g->fcprojb, dout, N, C);
	/* Down-projection: needs h, rebuilt in a. */
	rmlp_activation(a, u, saved, p, d, N);
	cblas_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, Dff, N, 1, dout,
		   C, a, Dff, 1, g->fcprojw, Dff);
	/* a = dh (N, D_ff) = dout (N, C) @ fcprojw (C, D_ff), overwriting h. */
	cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, Dff, C, 1,
		   dout, C, p->fcprojw, Dff, 0, a, Dff);
	if (d->use_mixer)
		rmlp_mix_backward(g->mixw, u, a, p->mixw, s_low, N, Ds, Rr);
	rmlp_act_backward(a, g->fcb, &acc_std, &acc_low, saved,
			  d->use_mixer ? u : NULL, *p->w_std, s_low, N, Ds, Rr);
	*g->w_std = (real)(*g->w_std + acc_std);
	*g->w_rec = (real)(*g->w_rec + (double)gate * acc_low);
	if (d->use_gates)
		*g->gate_alpha = (real)(*g->gate_alpha + (double)w_rec * acc_low);
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
