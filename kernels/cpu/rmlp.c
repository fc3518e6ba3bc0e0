// SPDX-License-Identifier: MIT
/*
 * The R-MLP's element-wise passes on the CPU (kernels/kernels.h; the
 * layer itself is ra/rmlp.c, its math docs/r-mlp.md): GELU with the path
 * scalars forward, and backward GELU' with the scalars' gradients and the
 * up-projection's bias gradient in the same pass. One OpenMP pass each.
 */
#include "kernels/kernels.h"
#include "kernels/cpu/kutil.h"

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
 * vectorisable kexp() of kgpt/fastmath.h; double (the gradient
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
void rmlp_act_forward(real *h, real *u, const real *pre, real s_std, real s_low,
		      int N, int Ds, int Rr, int mixer)
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
static void rmlp_act_sums(real *dh, real *dfcb, double *acc_std, double *acc_low,
			  const real *pre, const real *du, real s_std, real s_low, int N,
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

/* The whole backward pass: the sums, then the scalars' gradients
 * (s_low = w_rec * gate). */
void rmlp_act_backward(real *dh, real *dfcb, real *dw_std, real *dw_rec, real *dgate,
		       const real *pre, const real *du, real s_std, real s_low,
		       real w_rec, real gate, int N, int Ds, int Rr)
{
	double acc_std, acc_low;

	rmlp_act_sums(dh, dfcb, &acc_std, &acc_low, pre, du, s_std, s_low, N, Ds, Rr);
	*dw_std = (real)(*dw_std + acc_std);
	*dw_rec = (real)(*dw_rec + (double)gate * acc_low);
	if (dgate)
		*dgate = (real)(*dgate + (double)w_rec * acc_low);
}
