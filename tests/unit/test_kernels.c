// SPDX-License-Identifier: MIT
/*
 * The float32 CPU kernels (the trainer's build) against straightforward
 * float64 references written here, on sizes that are not multiples of the
 * vector width so that loop tails run too.
 *
 * Comparisons are normwise: err = max_i |got_i - ref_i| / max_i |ref_i|,
 * against 1e-5 (float32 epsilon is 6e-8; sums here are over <= 1000 terms)
 * unless stated. The gradients themselves are checked against finite
 * differences in test_kernels_f64.c.
 */
#include <stdlib.h>
#include <string.h>
#include "tests/tap.h"
#include "kernels/kernels.h"
#include "kgpt/fastmath.h"
#include "kgpt/omp.h"
#include "kgpt/rng.h"

#ifdef KGPT_F64
#error "test_kernels.c checks the float32 build"
#endif

#define TOL	1e-5

static struct kgpt_rng rng;

/* max(m, v), where a NaN v makes it infinite (fmax() would drop it). */
static double worse(double m, double v)
{
	return isnan(v) ? INFINITY : fmax(m, v);
}

static void *xalloc(size_t n)
{
	void *p = calloc(n ? n : 1, 1);

	if (!p)
		abort();
	return p;
}

/* f (n) and d (n) with the same values, uniform in [-s, s). */
static void fill2(float *f, double *d, size_t n, double s)
{
	for (size_t i = 0; i < n; i++) {
		f[i] = (2 * kgpt_rng_uniform(&rng) - 1) * s;
		if (d)
			d[i] = f[i];
	}
}

static float *fnew(size_t n)
{
	return xalloc(n * sizeof(float));
}

static double *dnew(size_t n)
{
	return xalloc(n * sizeof(double));
}

/* Normwise relative error of got against ref, reported as one test. */
static void cmp(const char *name, const float *got, const double *ref,
		size_t n, double tol)
{
	double e = 0, m = 1e-30;

	for (size_t i = 0; i < n; i++) {
		e = worse(e, fabs(got[i] - ref[i]));
		m = fmax(m, fabs(ref[i]));
	}
	ok(e / m <= tol, "%s: %zu elements, err %.2e (tol %.0e)", name, n,
	   e / m, tol);
}

/* ------------------------------------------------------------------ kexp */

static void test_kexp(void)
{
	float lo = KEXP_LO, hi = KEXP_HI;
	double e = 0;

	for (float x = -87.0f; x <= 88.0f; x += 0.001f) {
		double want = exp((double)x);

		e = worse(e, fabs(kexp(x, lo, hi) - want) / want);
	}
	ok(e < 3e-7, "kexp relative error over [-87, 88]: %.2e", e);
	ok(kexp(-1e30f, lo, hi) < 1e-37f && kexp(-INFINITY, lo, hi) < 1e-37f,
	   "kexp saturates low");
	ok(isfinite(kexp(1e30f, lo, hi)) && kexp(1e30f, lo, hi) > 1e38f,
	   "kexp saturates high without overflow");
}

/* --------------------------------------------------------------- encoder */

static void test_encoder(void)
{
	int B = 3, T = 13, C = 100, Vp = 64, N = B * T;
	size_t nw = (size_t)Vp * C, np = (size_t)T * C, no = (size_t)N * C;
	int *inp = xalloc(N * sizeof(int));
	float *wte = fnew(nw), *wpe = fnew(np), *out = fnew(no);
	float *dout = fnew(no), *dwte = fnew(nw), *dwpe = fnew(np);
	double *rout = dnew(no), *rdwte = dnew(nw), *rdwpe = dnew(np);

	for (int n = 0; n < N; n++)
		inp[n] = (int)kgpt_rng_below(&rng, 20);	/* many repeats */
	fill2(wte, NULL, nw, 1);
	fill2(wpe, NULL, np, 1);
	fill2(dout, NULL, no, 1);
	for (int n = 0; n < N; n++)
		for (int c = 0; c < C; c++) {
			size_t i = (size_t)n * C + c;

			rout[i] = (double)wte[inp[n] * C + c] +
				  wpe[(n % T) * C + c];
			rdwte[inp[n] * C + c] += dout[i];
			rdwpe[(n % T) * C + c] += dout[i];
		}
	encoder_forward(out, inp, wte, wpe, B, T, C);
	encoder_backward(dwte, dwpe, dout, inp, B, T, C);
	cmp("encoder_forward", out, rout, no, 1e-7);
	cmp("encoder_backward dwte", dwte, rdwte, nw, TOL);
	cmp("encoder_backward dwpe", dwpe, rdwpe, np, TOL);
	free(inp), free(wte), free(wpe), free(out), free(dout), free(dwte);
	free(dwpe), free(rout), free(rdwte), free(rdwpe);
}

/* ------------------------------------------------------------- layernorm */

/* Reference LayerNorm forward and backward of (N,C) in double. */
static void ln_ref(double *y, double *dx, double *dw, double *db,
		   const double *x, const double *w, const double *b,
		   const double *dy, int N, int C)
{
	for (int n = 0; n < N; n++) {
		const double *xr = x + (size_t)n * C, *g = dy + (size_t)n * C;
		double m = 0, v = 0, s, a = 0, bb = 0;

		for (int c = 0; c < C; c++)
			m += xr[c] / C;
		for (int c = 0; c < C; c++)
			v += (xr[c] - m) * (xr[c] - m) / C;
		s = 1 / sqrt(v + 1e-5);
		for (int c = 0; c < C; c++) {
			double xh = (xr[c] - m) * s;

			y[(size_t)n * C + c] = xh * w[c] + b[c];
			dw[c] += g[c] * xh;
			db[c] += g[c];
			a += g[c] * w[c] / C;
			bb += g[c] * w[c] * xh / C;
		}
		for (int c = 0; c < C; c++)
			dx[(size_t)n * C + c] = s * (g[c] * w[c] - a -
						     (xr[c] - m) * s * bb);
	}
}

static void test_layernorm(void)
{
	int N = 37, C = 100;
	size_t nc = (size_t)N * C;
	float *x = fnew(nc), *w = fnew(C), *b = fnew(C), *dy = fnew(nc);
	float *y = fnew(nc), *m = fnew(N), *s = fnew(N), *dx = fnew(nc);
	float *dw = fnew(C), *db = fnew(C);
	double *xd = dnew(nc), *wd = dnew(C), *bd = dnew(C), *dyd = dnew(nc);
	double *yd = dnew(nc), *dxd = dnew(nc), *dwd = dnew(C), *dbd = dnew(C);

	fill2(x, xd, nc, 3);
	fill2(w, wd, C, 1);
	fill2(b, bd, C, 1);
	fill2(dy, dyd, nc, 1);
	ln_ref(yd, dxd, dwd, dbd, xd, wd, bd, dyd, N, C);
	layernorm_forward(y, m, s, x, w, b, N, C);
	layernorm_backward(dx, dw, db, dy, x, w, m, s, N, C);
	cmp("layernorm_forward", y, yd, nc, TOL);
	cmp("layernorm_backward dinp", dx, dxd, nc, TOL);
	cmp("layernorm_backward dw", dw, dwd, C, TOL);
	cmp("layernorm_backward db", db, dbd, C, TOL);
	free(x), free(w), free(b), free(dy), free(y), free(m), free(s);
	free(dx), free(dw), free(db), free(xd), free(wd), free(bd), free(dyd);
	free(yd), free(dxd), free(dwd), free(dbd);
}

/* ---------------------------------------------------------------- matmul */

/*
 * matmul forward and backward against naive triple loops in double. The
 * tolerance of each output is elementwise: 1e-6 * sum_k |a_k b_k|, above
 * the float32 rounding bound of a K-term dot product for the K used here.
 */
static void test_matmul(int N, int C, int OC)
{
	size_t ni = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
	float *x = fnew(ni), *w = fnew(nw), *bias = fnew(OC), *y = fnew(no);
	float *dy = fnew(no), *dx = fnew(ni), *dw = fnew(nw), *db = fnew(OC);
	double e[4] = { 0 };

	fill2(x, NULL, ni, 1);
	fill2(w, NULL, nw, 1);
	fill2(bias, NULL, OC, 1);
	fill2(dy, NULL, no, 1);
	matmul_forward(y, x, w, bias, N, C, OC);
	matmul_backward(dx, dw, db, dy, x, w, N, C, OC);
	for (int n = 0; n < N; n++)
		for (int o = 0; o < OC; o++) {
			double s = bias[o], a = fabs(bias[o]);

			for (int c = 0; c < C; c++) {
				s += (double)x[n * C + c] * w[o * C + c];
				a += fabs((double)x[n * C + c] * w[o * C + c]);
			}
			e[0] = worse(e[0], fabs(y[n * OC + o] - s) / a);
		}
	for (int n = 0; n < N; n++)
		for (int c = 0; c < C; c++) {
			double s = 0, a = 0;

			for (int o = 0; o < OC; o++) {
				s += (double)dy[n * OC + o] * w[o * C + c];
				a += fabs((double)dy[n * OC + o] * w[o * C + c]);
			}
			e[1] = worse(e[1], fabs(dx[n * C + c] - s) / a);
		}
	for (int o = 0; o < OC; o++) {
		double sb = 0, ab = 0;

		for (int c = 0; c < C; c++) {
			double s = 0, a = 0;

			for (int n = 0; n < N; n++) {
				s += (double)dy[n * OC + o] * x[n * C + c];
				a += fabs((double)dy[n * OC + o] * x[n * C + c]);
			}
			e[2] = worse(e[2], fabs(dw[o * C + c] - s) / a);
		}
		for (int n = 0; n < N; n++) {
			sb += dy[n * OC + o];
			ab += fabs(dy[n * OC + o]);
		}
		e[3] = worse(e[3], fabs(db[o] - sb) / ab);
	}
	ok(e[0] < 1e-6 && e[1] < 1e-6 && e[2] < 1e-6 && e[3] < 1e-6,
	   "matmul N=%d C=%d OC=%d vs naive: out %.1e dinp %.1e dw %.1e "
	   "dbias %.1e (tol 1e-6 sum|ab|)", N, C, OC, e[0], e[1], e[2], e[3]);
	free(x), free(w), free(bias), free(y), free(dy), free(dx), free(dw);
	free(db);
}

/* ------------------------------------------------------------------ gelu */

static void test_gelu(void)
{
	size_t n = 10007;
	float *x = fnew(n), *y = fnew(n), *dy = fnew(n), *dx = fnew(n);
	double *yd = dnew(n), *dxd = dnew(n);

	fill2(x, NULL, n, 6);
	fill2(dy, NULL, n, 1);
	x[0] = 0;
	for (size_t i = 0; i < n; i++) {
		double v = x[i], k = sqrt(2 / M_PI), a = 0.044715;
		double t = tanh(k * (v + a * v * v * v));
		double dt = (1 - t * t) * k * (1 + 3 * a * v * v);

		yd[i] = 0.5 * v * (1 + t);
		dxd[i] = dy[i] * (0.5 * (1 + t) + 0.5 * v * dt);
	}
	gelu_forward(y, x, n);
	gelu_backward(dx, x, dy, n);
	cmp("gelu_forward", y, yd, n, 1e-6);
	cmp("gelu_backward", dx, dxd, n, 1e-6);

	/* Far tails: gelu(x) -> max(x, 0), gelu'(x) -> [x > 0], no NaN. */
	x[0] = -1e4f, x[1] = 1e4f, x[2] = -100, x[3] = 100;
	dy[0] = dy[1] = dy[2] = dy[3] = 1;
	memset(dx, 0, 4 * sizeof(float));
	gelu_forward(y, x, 4);
	gelu_backward(dx, x, dy, 4);
	ok(fabsf(y[0]) < 1e-30f && y[1] == 1e4f && fabsf(y[2]) < 1e-30f &&
	   y[3] == 100 && fabsf(dx[0]) < 1e-20f && dx[1] == 1 &&
	   fabsf(dx[2]) < 1e-20f && dx[3] == 1, "gelu tails at +-100, +-1e4");
	free(x), free(y), free(dy), free(dx), free(yd), free(dxd);
}

/* ------------------------------------------------------------ elementwise */

static void test_elementwise(void)
{
	size_t n = 100003, kept = 0, agree = 0;
	float *a = fnew(n), *b = fnew(n), *o = fnew(n);
	double s = 0, e = 0;

	fill2(a, NULL, n, 1);
	fill2(b, NULL, n, 1);
	residual_forward(o, a, b, n);
	for (size_t i = 0; i < n; i++)
		e = worse(e, fabs(o[i] - (a[i] + b[i])));
	ok(e == 0, "residual_forward");

	memcpy(o, a, n * sizeof(float));
	dropout_forward(o, n, 0.1f, 42);
	for (size_t i = 0; i < n; i++) {
		int k = kgpt_dropout_keep(42, i, 0.1f);

		kept += k;
		agree += o[i] == (k ? a[i] * (1 / (1 - 0.1f)) : 0);
	}
	ok(agree == n, "dropout_forward follows kgpt_dropout_keep");
	is_close((double)kept / n, 0.9, 0.005, "dropout keeps 1 - p");

	for (size_t i = 0; i < n; i++)
		s += (double)a[i] * a[i];
	is_close(sumsq(a, n), s, 1e-12 * s, "sumsq in double");
	scale_inplace(a, n, 2.0f);
	is_close(sumsq(a, n), 4 * s, 4e-12 * s, "scale_inplace");
	free(a), free(b), free(o);
}

/* --------------------------------------------------------------- lm head */

/* Reference: losses, dx, dwte for L = sum dloss * losses, in double. */
static void lm_ref(double *loss, double *dx, double *dw, const float *x,
		   const float *w, const int *tgt, double dloss, int N, int C,
		   int V)
{
	double *l = dnew(V);

	for (int n = 0; n < N; n++) {
		double m = -INFINITY, s = 0;

		for (int j = 0; j < V; j++) {
			l[j] = 0;
			for (int c = 0; c < C; c++)
				l[j] += (double)x[n * C + c] * w[j * C + c];
			m = fmax(m, l[j]);
		}
		for (int j = 0; j < V; j++)
			s += exp(l[j] - m);
		loss[n] = log(s) - (l[tgt[n]] - m);
		for (int j = 0; j < V; j++) {
			double d = dloss * (exp(l[j] - m) / s - (j == tgt[n]));

			for (int c = 0; c < C; c++) {
				dx[n * C + c] += d * w[j * C + c];
				dw[j * C + c] += d * x[n * C + c];
			}
		}
	}
	free(l);
}

static void test_lmhead(void)
{
	int N = 37, C = 72, V = 1000, Vp = 1024, chunk = 16;
	size_t nx = (size_t)N * C, nw = (size_t)Vp * C;
	float *x = fnew(nx), *w = fnew(nw), *loss = fnew(N), *loss2 = fnew(N);
	float *dx = fnew(nx), *dw = fnew(nw), *scr = fnew((size_t)chunk * Vp);
	double *rl = dnew(N), *rdx = dnew(nx), *rdw = dnew(nw), pad = 0;
	int *tgt = xalloc(N * sizeof(int));

	fill2(x, NULL, nx, 2);
	fill2(w, NULL, nw, 1);
	for (int n = 0; n < N; n++)
		tgt[n] = (int)kgpt_rng_below(&rng, V);
	lm_ref(rl, rdx, rdw, x, w, tgt, 1.0 / N, N, C, V);
	lm_head_forward_backward(loss, dx, dw, x, w, tgt, 1.0f / N, N, C, V,
				 Vp, scr, chunk);
	lm_head_forward(loss2, x, w, tgt, N, C, V, Vp, scr, chunk);
	cmp("lm_head losses", loss, rl, N, TOL);
	cmp("lm_head dx", dx, rdx, nx, TOL);
	cmp("lm_head dwte", dw, rdw, nw, TOL);
	for (size_t i = (size_t)V * C; i < nw; i++)
		pad = worse(pad, fabs(dw[i]));
	ok(pad == 0, "lm_head padded rows of dwte stay zero");
	ok(memcmp(loss, loss2, N * sizeof(float)) == 0,
	   "lm_head_forward = forward_backward losses");
	free(x), free(w), free(loss), free(loss2), free(dx), free(dw);
	free(scr), free(rl), free(rdx), free(rdw), free(tgt);
}

/* ----------------------------------------------------------------- adamw */

static void test_adamw(size_t n, float wd, int steps)
{
	float *p = fnew(n), *g = fnew(n), *m = fnew(n), *v = fnew(n);
	double *pr = dnew(n), *gr = dnew(n), *mr = dnew(n), *vr = dnew(n);
	double ep = 0;

	fill2(p, pr, n, 1);
	for (int t = 1; t <= steps; t++) {
		double c1 = 1 - pow(0.9f, t), c2 = 1 - pow(0.999f, t);

		fill2(g, gr, n, 0.01);
		adamw_update(p, g, m, v, n, 6e-4f, 0.9f, 0.999f, 1e-8f, wd, t);
		for (size_t i = 0; i < n; i++) {
			mr[i] = 0.9f * mr[i] + (1 - 0.9f) * gr[i];
			vr[i] = 0.999f * vr[i] + (1 - 0.999f) * gr[i] * gr[i];
			pr[i] -= 6e-4f * (mr[i] / c1 / (sqrt(vr[i] / c2) +
							1e-8f) + wd * pr[i]);
		}
	}
	for (size_t i = 0; i < n; i++)
		ep = worse(ep, fabs(p[i] - pr[i]));
	ok(ep < 1e-6, "adamw n=%zu wd=%g %d steps vs double: max |dp| %.1e",
	   n, wd, steps, ep);
	free(p), free(g), free(m), free(v), free(pr), free(gr), free(mr);
	free(vr);
}

int main(void)
{
	kgpt_rng_seed(&rng, 99);
	diag("kernels in %s, %d OpenMP threads", REAL_NAME,
	     omp_get_max_threads());
	test_kexp();
	test_encoder();
	test_layernorm();
	test_matmul(37, 100, 75);
	test_matmul(64, 768, 96);
	test_matmul(5, 3, 2);
	test_gelu();
	test_elementwise();
	test_lmhead();
	test_adamw(100003, 0.1f, 1);
	test_adamw(100003, 0.1f, 10);
	test_adamw(13, 0, 3);
	return tap_done();
}
