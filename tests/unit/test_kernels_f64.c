// SPDX-License-Identifier: MIT
/*
 * Gradient checks of the CPU kernels in float64 (built with -DKGPT_F64 and
 * linked against the float64 kernel library).
 *
 * Every backward is compared, element by element, with central finite
 * differences of a scalar loss L = sum(out * R) for a fixed random R:
 *	dL/dx_i ~ (L(x_i + h) - L(x_i - h)) / (2h), h = 1e-6,
 * and passes when |analytic - numeric| <= 1e-6 * max(|a|, |n|) + 1e-8.
 * The truncation error is O(h^2) ~ 1e-12 relative; the rounding error of
 * the differences is about ulp(|L|) / h ~ 1e-14 / 1e-6 = 1e-8 absolute
 * for |L| ~ 50, hence the absolute term (it matters only for elements
 * whose gradient is itself below 1e-2).
 * Accumulation is checked by running each backward twice from random
 * gradients g0: the result must be g0 + 2 * gradient (to 1e-12).
 * AdamW (float by contract) is checked against a double reference.
 */
#include <stdlib.h>
#include <string.h>
#include "tests/tap.h"
#include "tests/util.h"
#include "kernels/kernels.h"
#include "kgpt/rng.h"

#ifndef KGPT_F64
#error "test_kernels_f64.c must be built with -DKGPT_F64"
#endif

#define FD_H		1e-6
#define FD_RTOL		1e-6
#define FD_ATOL		1e-8
#define ACC_TOL		1e-12

static struct kgpt_rng rng;

/* max(m, v), where a NaN v makes it infinite (fmax() would drop it). */
static real *alloc(size_t n)
{
	real *p = calloc(n ? n : 1, sizeof(real));

	if (!p)
		abort();
	return p;
}

/* a (n) uniform in [-s, s). */
static void fill(real *a, size_t n, double s)
{
	for (size_t i = 0; i < n; i++)
		a[i] = (2 * kgpt_rng_uniform(&rng) - 1) * s;
}

static real *rand_new(size_t n, double s)
{
	real *a = alloc(n);

	fill(a, n, s);
	return a;
}

static double dot(const real *a, const real *b, size_t n)
{
	double s = 0;

	for (size_t i = 0; i < n; i++)
		s += (double)a[i] * b[i];
	return s;
}

/* The scalar loss of the test in progress, as a function of its inputs. */
static double (*loss_fn)(void);

/* num (n) = central differences of loss_fn() with respect to x (n). */
static void fd_grad(real *x, size_t n, double *num)
{
	for (size_t i = 0; i < n; i++) {
		real x0 = x[i];
		double lp, lm;

		x[i] = x0 + FD_H;
		lp = loss_fn();
		x[i] = x0 - FD_H;
		lm = loss_fn();
		x[i] = x0;
		num[i] = (lp - lm) / (2 * FD_H);
	}
}

/*
 * Compare the analytic gradient a (n) of x with finite differences; one
 * test. Reports the largest relative error among elements with
 * max(|a|, |n|) > 1e-4 and the largest ratio of error to tolerance.
 */
static void check_grad(const char *name, real *x, const real *a, size_t n)
{
	double *num = malloc(n * sizeof(*num)), rel = 0, ratio = 0;
	size_t bad = 0;

	fd_grad(x, n, num);
	for (size_t i = 0; i < n; i++) {
		double d = fabs(a[i] - num[i]);
		double m = fmax(fabs(a[i]), fabs(num[i]));
		double tol = FD_RTOL * m + FD_ATOL;

		if (!(d <= tol))
			bad++;
		if (m > 1e-4 || isnan(d))
			rel = worse(rel, d / m);
		ratio = worse(ratio, d / tol);
	}
	ok(bad == 0, "%s: %zu elements vs finite differences, max rel err "
	   "%.1e, max err/tol %.2f", name, n, rel, ratio);
	free(num);
}

/* max |a - b| over n. */
/* g1 must be g0 + 2 * (g_once - 0): accumulation of two backward calls. */
static void check_twice(const char *name, const real *g0, const real *g1,
			const real *once, size_t n)
{
	double m = 0;

	for (size_t i = 0; i < n; i++)
		m = worse(m, fabs(g1[i] - (g0[i] + 2 * once[i])));
	ok(m <= ACC_TOL, "%s: two backward calls accumulate (err %.1e)", name,
	   m);
}

/* ---------------------------------------------------------------- encoder */

static struct {
	int B, T, C, Vp, maxT;
	int *inp;
	real *out, *wte, *wpe, *r;
} enc;

static double enc_loss(void)
{
	encoder_forward(enc.out, enc.inp, enc.wte, enc.wpe, enc.B, enc.T,
			enc.C);
	return dot(enc.out, enc.r, (size_t)enc.B * enc.T * enc.C);
}

static void test_encoder(void)
{
	int B = 2, T = 3, C = 8, Vp = 16, maxT = 4, N = B * T;
	size_t nw = (size_t)Vp * C, np = (size_t)maxT * C;
	real *dwte = alloc(nw), *dwpe = alloc(np);
	real *g0w = rand_new(nw, 1), *g0p = rand_new(np, 1);
	real *g1w = alloc(nw), *g1p = alloc(np);
	double want;

	enc.B = B, enc.T = T, enc.C = C, enc.Vp = Vp, enc.maxT = maxT;
	enc.inp = malloc(N * sizeof(int));
	for (int n = 0; n < N; n++)
		enc.inp[n] = (int)kgpt_rng_below(&rng, 11);
	enc.inp[4] = enc.inp[0];	/* a repeated token */
	enc.out = alloc((size_t)N * C);
	enc.wte = rand_new(nw, 1);
	enc.wpe = rand_new(np, 1);
	enc.r = rand_new((size_t)N * C, 1);

	enc_loss();
	want = enc.wte[(size_t)enc.inp[5] * C + 3] + enc.wpe[2 * C + 3];
	is_close(enc.out[5 * C + 3], want, 1e-15, "encoder_forward element");

	loss_fn = enc_loss;
	encoder_backward(dwte, dwpe, enc.r, enc.inp, B, T, C);
	check_grad("encoder dwte", enc.wte, dwte, nw);
	check_grad("encoder dwpe", enc.wpe, dwpe, np);

	memcpy(g1w, g0w, nw * sizeof(real));
	memcpy(g1p, g0p, np * sizeof(real));
	encoder_backward(g1w, g1p, enc.r, enc.inp, B, T, C);
	encoder_backward(g1w, g1p, enc.r, enc.inp, B, T, C);
	check_twice("encoder dwte", g0w, g1w, dwte, nw);
	check_twice("encoder dwpe", g0p, g1p, dwpe, np);

	free(enc.inp), free(enc.out), free(enc.wte), free(enc.wpe);
	free(enc.r), free(dwte), free(dwpe), free(g0w), free(g0p);
	free(g1w), free(g1p);
}

/* -------------------------------------------------------------- layernorm */

static struct {
	int N, C;
	real *out, *mean, *rstd, *inp, *w, *b, *r;
} ln;

static double ln_loss(void)
{
	layernorm_forward(ln.out, ln.mean, ln.rstd, ln.inp, ln.w, ln.b, ln.N,
			  ln.C);
	return dot(ln.out, ln.r, (size_t)ln.N * ln.C);
}

/* Naive LayerNorm of row n into y (C); max |y - ln.out row|. */
static double ln_forward_err(int n)
{
	const real *x = ln.inp + (size_t)n * ln.C;
	double m = 0, v = 0, e = 0;

	for (int c = 0; c < ln.C; c++)
		m += x[c];
	m /= ln.C;
	for (int c = 0; c < ln.C; c++)
		v += (x[c] - m) * (x[c] - m);
	v /= ln.C;
	for (int c = 0; c < ln.C; c++) {
		double y = (x[c] - m) / sqrt(v + 1e-5) * ln.w[c] + ln.b[c];

		e = worse(e, fabs(y - ln.out[(size_t)n * ln.C + c]));
	}
	e = worse(e, fabs(m - ln.mean[n]));
	return worse(e, fabs(1 / sqrt(v + 1e-5) - ln.rstd[n]));
}

static void test_layernorm(void)
{
	int N = 6, C = 8;
	size_t nc = (size_t)N * C;
	real *dinp = alloc(nc), *dw = alloc(C), *db = alloc(C);
	real *g0 = rand_new(nc + 2 * C, 1), *g1 = alloc(nc + 2 * C);
	real *once = alloc(nc + 2 * C);
	double e = 0;

	ln.N = N, ln.C = C;
	ln.out = alloc(nc), ln.mean = alloc(N), ln.rstd = alloc(N);
	ln.inp = rand_new(nc, 2);
	for (size_t i = 0; i < nc; i++)
		ln.inp[i] += 0.5;	/* a non-zero mean */
	ln.w = rand_new(C, 1), ln.b = rand_new(C, 1), ln.r = rand_new(nc, 1);

	ln_loss();
	for (int n = 0; n < N; n++)
		e = worse(e, ln_forward_err(n));
	ok(e < 1e-13, "layernorm_forward vs naive (err %.1e)", e);

	loss_fn = ln_loss;
	layernorm_backward(dinp, dw, db, ln.r, ln.inp, ln.w, ln.mean, ln.rstd,
			   N, C);
	check_grad("layernorm dinp", ln.inp, dinp, nc);
	check_grad("layernorm dw", ln.w, dw, C);
	check_grad("layernorm db", ln.b, db, C);

	memcpy(once, dinp, nc * sizeof(real));
	memcpy(once + nc, dw, C * sizeof(real));
	memcpy(once + nc + C, db, C * sizeof(real));
	memcpy(g1, g0, (nc + 2 * C) * sizeof(real));
	for (int k = 0; k < 2; k++)
		layernorm_backward(g1, g1 + nc, g1 + nc + C, ln.r, ln.inp, ln.w,
				   ln.mean, ln.rstd, N, C);
	check_twice("layernorm", g0, g1, once, nc + 2 * C);

	free(ln.out), free(ln.mean), free(ln.rstd), free(ln.inp), free(ln.w);
	free(ln.b), free(ln.r), free(dinp), free(dw), free(db), free(g0);
	free(g1), free(once);
}

/* ----------------------------------------------------------------- matmul */

static struct {
	int N, C, OC;
	real *out, *inp, *w, *bias, *r;
} mm;

static double mm_loss(void)
{
	matmul_forward(mm.out, mm.inp, mm.w, mm.bias, mm.N, mm.C, mm.OC);
	return dot(mm.out, mm.r, (size_t)mm.N * mm.OC);
}

/* max |out - naive inp @ w^T + bias|. */
static double mm_forward_err(void)
{
	double e = 0;

	for (int n = 0; n < mm.N; n++)
		for (int o = 0; o < mm.OC; o++) {
			double s = mm.bias ? mm.bias[o] : 0;

			for (int c = 0; c < mm.C; c++)
				s += mm.inp[n * mm.C + c] * mm.w[o * mm.C + c];
			e = worse(e, fabs(s - mm.out[n * mm.OC + o]));
		}
	return e;
}

static void test_matmul_case(int with_bias)
{
	int N = 6, C = 8, OC = 5;
	size_t ni = (size_t)N * C, nw = (size_t)OC * C;
	size_t ng = ni + nw + OC;
	real *g = alloc(ng), *g0 = rand_new(ng, 1), *g1 = alloc(ng);
	real *dw_only = alloc(nw);
	const char *tag = with_bias ? "matmul+bias" : "matmul";
	char name[64];

	mm.N = N, mm.C = C, mm.OC = OC;
	mm.out = alloc((size_t)N * OC);
	mm.inp = rand_new(ni, 1), mm.w = rand_new(nw, 1);
	mm.bias = with_bias ? rand_new(OC, 1) : NULL;
	mm.r = rand_new((size_t)N * OC, 1);

	mm_loss();
	snprintf(name, sizeof(name), "%s forward vs naive", tag);
	ok(mm_forward_err() < 1e-13, "%s (err %.1e)", name, mm_forward_err());

	loss_fn = mm_loss;
	matmul_backward(g, g + ni, with_bias ? g + ni + nw : NULL, mm.r,
			mm.inp, mm.w, N, C, OC);
	snprintf(name, sizeof(name), "%s dinp", tag);
	check_grad(name, mm.inp, g, ni);
	snprintf(name, sizeof(name), "%s dw", tag);
	check_grad(name, mm.w, g + ni, nw);
	if (with_bias)
		check_grad("matmul+bias dbias", mm.bias, g + ni + nw, OC);

	memcpy(g1, g0, ng * sizeof(real));
	for (int k = 0; k < 2; k++)
		matmul_backward(g1, g1 + ni, with_bias ? g1 + ni + nw : NULL,
				mm.r, mm.inp, mm.w, N, C, OC);
	if (!with_bias)
		memcpy(g1 + ni + nw, g0 + ni + nw, OC * sizeof(real));
	check_twice(tag, g0, g1, g, ng);

	/* dinp == NULL and dbias == NULL: dw alone, the same values. */
	matmul_backward(NULL, dw_only, NULL, mm.r, mm.inp, mm.w, N, C, OC);
	ok(max_abs_diff(dw_only, g + ni, nw) == 0, "%s dw with dinp, dbias NULL",
	   tag);

	free(mm.out), free(mm.inp), free(mm.w), free(mm.bias), free(mm.r);
	free(g), free(g0), free(g1), free(dw_only);
}

/* ------------------------------------------------------------------- gelu */

static struct {
	size_t n;
	real *out, *inp, *r;
} ge;

static double gelu_loss(void)
{
	gelu_forward(ge.out, ge.inp, ge.n);
	return dot(ge.out, ge.r, ge.n);
}

static void test_gelu(void)
{
	size_t n = 37;
	real *d = alloc(n), *g0 = rand_new(n, 1), *g1 = alloc(n);
	double e = 0;

	ge.n = n, ge.out = alloc(n), ge.inp = rand_new(n, 4);
	ge.r = rand_new(n, 1);
	ge.inp[0] = 0, ge.inp[1] = -9, ge.inp[2] = 9, ge.inp[3] = -30;
	ge.inp[4] = 40;

	gelu_loss();
	for (size_t i = 0; i < n; i++) {
		double x = ge.inp[i];
		double u = sqrt(2 / M_PI) * (x + 0.044715 * x * x * x);

		e = worse(e, fabs(ge.out[i] - 0.5 * x * (1 + tanh(u))));
	}
	ok(e < 1e-14, "gelu_forward vs 0.5x(1+tanh(u)) (err %.1e)", e);

	loss_fn = gelu_loss;
	gelu_backward(d, ge.inp, ge.r, n);
	check_grad("gelu dinp", ge.inp, d, n);
	memcpy(g1, g0, n * sizeof(real));
	gelu_backward(g1, ge.inp, ge.r, n);
	gelu_backward(g1, ge.inp, ge.r, n);
	check_twice("gelu", g0, g1, d, n);

	free(ge.out), free(ge.inp), free(ge.r), free(d), free(g0), free(g1);
}

/* ---------------------------------------------------------------- dropout */

static struct {
	size_t n;
	float p;
	uint64_t seed;
	real *x, *tmp, *r;
} dr;

static double dropout_loss(void)
{
	memcpy(dr.tmp, dr.x, dr.n * sizeof(real));
	dropout_forward(dr.tmp, dr.n, dr.p, dr.seed);
	return dot(dr.tmp, dr.r, dr.n);
}

static void test_dropout(void)
{
	size_t n = 40, big = 200000, kept = 0;
	real *d = alloc(n), *y, *x0;
	double e = 0;

	dr.n = n, dr.p = 0.25f, dr.seed = 0x5eedULL;
	dr.x = rand_new(n, 1), dr.tmp = alloc(n), dr.r = rand_new(n, 1);

	dropout_loss();
	for (size_t i = 0; i < n; i++) {
		double want = kgpt_dropout_keep(dr.seed, i, dr.p) ?
			      dr.x[i] / 0.75 : 0;

		e = worse(e, fabs(dr.tmp[i] - want));
	}
	ok(e < 1e-15, "dropout_forward = x * keep(seed, i) / (1 - p)");

	loss_fn = dropout_loss;
	memcpy(d, dr.r, n * sizeof(real));
	dropout_backward(d, n, dr.p, dr.seed);	/* mask regenerated */
	check_grad("dropout dx (p = 0.25)", dr.x, d, n);

	y = rand_new(big, 1), x0 = alloc(big);
	memcpy(x0, y, big * sizeof(real));
	dropout_forward(y, big, 0.25f, 7);
	for (size_t i = 0; i < big; i++)
		kept += y[i] != 0;
	is_close((double)kept / big, 0.75, 0.005, "dropout keeps 1 - p");
	memcpy(d, dr.r, n * sizeof(real));
	dropout_backward(d, n, 0, 7);
	ok(max_abs_diff(d, dr.r, n) == 0, "dropout p = 0 is a no-op");

	free(dr.x), free(dr.tmp), free(dr.r), free(d), free(y), free(x0);
}

/* ---------------------------------------------------------------- lm head */

static struct {
	int N, C, V, Vp, chunk;
	int *tgt;
	real dloss;
	real *x, *wte, *losses, *scratch;
} lm;

static double lm_loss(void)
{
	double s = 0;

	lm_head_forward(lm.losses, lm.x, lm.wte, lm.tgt, lm.N, lm.C, lm.V,
			lm.Vp, lm.scratch, lm.chunk);
	for (int i = 0; i < lm.N; i++)
		s += lm.dloss * lm.losses[i];
	return s;
}

/* Naive -log softmax(x_n @ wte^T)[t] over the first V logits. */
static double lm_ref_loss(int n)
{
	double l[64], m = -INFINITY, s = 0;

	for (int j = 0; j < lm.V; j++) {
		l[j] = 0;
		for (int c = 0; c < lm.C; c++)
			l[j] += lm.x[n * lm.C + c] * lm.wte[j * lm.C + c];
		m = fmax(m, l[j]);
	}
	for (int j = 0; j < lm.V; j++)
		s += exp(l[j] - m);
	return -(l[lm.tgt[n]] - m - log(s));
}

static void test_lmhead(void)
{
	int N = 6, C = 8, V = 11, Vp = 16, chunk = 4;	/* chunks 4 + 2 */
	size_t nx = (size_t)N * C, nw = (size_t)Vp * C;
	real *dx = alloc(nx), *dw = alloc(nw), *l2 = alloc(N);
	real *g0 = rand_new(nx + nw, 1), *g1 = alloc(nx + nw);
	real *once = alloc(nx + nw);
	double e = 0, pad = 0;

	lm.N = N, lm.C = C, lm.V = V, lm.Vp = Vp, lm.chunk = chunk;
	lm.dloss = 0.37;
	lm.tgt = malloc(N * sizeof(int));
	for (int n = 0; n < N; n++)
		lm.tgt[n] = (int)kgpt_rng_below(&rng, V);
	lm.tgt[1] = V - 1;
	lm.x = rand_new(nx, 1), lm.wte = rand_new(nw, 1);
	lm.losses = alloc(N), lm.scratch = alloc((size_t)chunk * Vp);

	lm_head_forward_backward(lm.losses, dx, dw, lm.x, lm.wte, lm.tgt,
				 lm.dloss, N, C, V, Vp, lm.scratch, chunk);
	for (int n = 0; n < N; n++)
		e = worse(e, fabs(lm.losses[n] - lm_ref_loss(n)));
	ok(e < 1e-13, "lm_head losses vs naive log-softmax (err %.1e)", e);
	lm_loss();
	memcpy(l2, lm.losses, N * sizeof(real));
	lm_head_forward_backward(lm.losses, g1, g1 + nx, lm.x, lm.wte, lm.tgt,
				 lm.dloss, N, C, V, Vp, lm.scratch, chunk);
	ok(max_abs_diff(l2, lm.losses, N) == 0,
	   "lm_head_forward losses = forward_backward losses");

	loss_fn = lm_loss;
	check_grad("lm_head dx", lm.x, dx, nx);
	check_grad("lm_head dwte", lm.wte, dw, nw);
	for (size_t i = (size_t)V * C; i < nw; i++)
		pad = worse(pad, fabs(dw[i]));
	ok(pad == 0, "lm_head padded rows of dwte get exactly zero");

	memcpy(once, dx, nx * sizeof(real));
	memcpy(once + nx, dw, nw * sizeof(real));
	memcpy(g1, g0, (nx + nw) * sizeof(real));
	for (int k = 0; k < 2; k++)
		lm_head_forward_backward(lm.losses, g1, g1 + nx, lm.x, lm.wte,
					 lm.tgt, lm.dloss, N, C, V, Vp,
					 lm.scratch, chunk);
	check_twice("lm_head", g0, g1, once, nx + nw);

	/* Padded rows of wte are never read: NaN there changes nothing. */
	for (size_t i = (size_t)V * C; i < nw; i++)
		lm.wte[i] = NAN;
	memset(dx, 0, nx * sizeof(real));
	lm_head_forward_backward(lm.losses, dx, dw, lm.x, lm.wte, lm.tgt,
				 lm.dloss, N, C, V, Vp, lm.scratch, chunk);
	ok(max_abs_diff(l2, lm.losses, N) == 0 && max_abs_diff(dx, once, nx) == 0,
	   "lm_head ignores the padded rows of wte");

	/* One chunk holding every row gives the same losses. */
	lm.chunk = N;
	free(lm.scratch);
	lm.scratch = alloc((size_t)N * Vp);
	lm_loss();
	ok(max_abs_diff(l2, lm.losses, N) < 1e-14, "lm_head chunk = N agrees");

	free(lm.tgt), free(lm.x), free(lm.wte), free(lm.losses);
	free(lm.scratch), free(dx), free(dw), free(l2), free(g0), free(g1);
	free(once);
}

/* ------------------------------------------------------------------ adamw */

/* Reference AdamW in double, steps t0+1 .. t0+steps. */
static void adamw_ref(double *p, const double *g, double *m, double *v,
		      size_t n, double lr, double b1, double b2, double eps,
		      double wd, int t)
{
	double c1 = 1 - pow(b1, t), c2 = 1 - pow(b2, t);

	for (size_t i = 0; i < n; i++) {
		m[i] = b1 * m[i] + (1 - b1) * g[i];
		v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
		p[i] -= lr * ((m[i] / c1) / (sqrt(v[i] / c2) + eps) + wd * p[i]);
	}
}

static void test_adamw_case(size_t n, float wd, int steps)
{
	float *p = malloc(n * 4), *g = malloc(n * 4), *m = calloc(n, 4);
	float *v = calloc(n, 4);
	double *pr = malloc(n * 8), *gr = malloc(n * 8), *mr = calloc(n, 8);
	double *vr = calloc(n, 8), ep = 0, em = 0, ev = 0;

	for (size_t i = 0; i < n; i++)
		pr[i] = p[i] = 2 * kgpt_rng_uniform(&rng) - 1;
	for (int t = 1; t <= steps; t++) {
		for (size_t i = 0; i < n; i++)
			gr[i] = g[i] = (2 * kgpt_rng_uniform(&rng) - 1) * 0.1f;
		adamw_update(p, g, m, v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, wd, t);
		adamw_ref(pr, gr, mr, vr, n, 1e-3f, 0.9f, 0.95f, 1e-8f, wd, t);
	}
	for (size_t i = 0; i < n; i++) {
		ep = worse(ep, fabs(p[i] - pr[i]));
		em = worse(em, fabs(m[i] - mr[i]) / (fabs(mr[i]) + 1e-3));
		ev = worse(ev, fabs(v[i] - vr[i]) / (fabs(vr[i]) + 1e-5));
	}
	ok(ep < 1e-6 && em < 1e-5 && ev < 1e-5,
	   "adamw n=%zu wd=%g %d step(s) vs double (p %.1e, m %.1e, v %.1e)",
	   n, wd, steps, ep, em, ev);
	free(p), free(g), free(m), free(v), free(pr), free(gr), free(mr);
	free(vr);
}

/* ---------------------------------------------------- residual, sums etc */

static void test_misc(size_t n)
{
	real *a = rand_new(n, 1), *b = rand_new(n, 1), *o = alloc(n);
	double s = 0, e = 0;

	residual_forward(o, a, b, n);
	for (size_t i = 0; i < n; i++)
		e = worse(e, fabs(o[i] - (a[i] + b[i])));
	ok(e == 0, "residual_forward n=%zu", n);
	residual_forward(a, a, b, n);
	ok(max_abs_diff(a, o, n) == 0, "residual_forward in place");
	for (size_t i = 0; i < n; i++)
		s += a[i] * a[i];
	is_close(sumsq(a, n), s, 1e-12 * s, "sumsq");
	scale_inplace(a, n, 0.5);
	is_close(sumsq(a, n), s / 4, 1e-12 * s, "scale_inplace");
	free(a), free(b), free(o);
}

int main(void)
{
	kgpt_rng_seed(&rng, 1234);
	diag("kernels in %s", REAL_NAME);
	test_encoder();
	test_layernorm();
	test_matmul_case(1);
	test_matmul_case(0);
	test_gelu();
	test_dropout();
	test_lmhead();
	test_adamw_case(1003, 0.1f, 1);
	test_adamw_case(1003, 0.1f, 5);
	test_adamw_case(40, 0, 5);
	test_misc(1000);
	test_misc(100003);
	return tap_done();
}
