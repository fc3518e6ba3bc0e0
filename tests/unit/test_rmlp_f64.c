// SPDX-License-Identifier: MIT
/*
 * R-MLP in float64: forward against a direct evaluation of the formula,
 * backward against central finite differences for every parameter and the
 * input, in all four combinations of use_mixer / use_gates, with and
 * without biases, and with w_rec = 0; backward accumulates and does not
 * depend on what forward left in scratch. A second, larger size runs the
 * passes on several threads (column ranges that straddle the boundary of
 * the two paths) and is checked on a sample of elements.
 */
#include <stdlib.h>
#include <string.h>
#include "tests/tap.h"
#include "tests/util.h"
#include "kgpt/rng.h"
#include "ra/rmlp.h"

#define FD_H	1e-5
#define FD_TOL	1e-7

/* One layer's parameters and input, each tensor at its place in one array. */
enum { T_FCW, T_FCB, T_MIXW, T_FCPROJW, T_FCPROJB, T_WSTD, T_WREC, T_GATE,
       T_INP, NT };
static const char *const tname[NT] = { "fcw", "fcb", "mixw", "fcprojw",
	"fcprojb", "w_std", "w_rec", "gate_alpha", "inp" };

struct layer {
	int N, C, Ds, Rr;
	size_t size[NT];
	real *t[NT];
	real *mem;
};

/* Forward/backward buffers and dout, for one size. */
struct bufs {
	real *out, *dout, *saved, *saved0, *scratch;
	size_t n_scratch;
};

static void layer_alloc(struct layer *l, int N, int C, int Ds, int Rr)
{
	size_t dff = (size_t)Ds + Rr, off = 0, total = 0;
	size_t size[NT] = { dff * C, dff, (size_t)Rr * Rr, C * dff, C, 1, 1,
			    1, (size_t)N * C };

	l->N = N;
	l->C = C;
	l->Ds = Ds;
	l->Rr = Rr;
	memcpy(l->size, size, sizeof(size));
	for (int i = 0; i < NT; i++)
		total += size[i];
	l->mem = calloc(total, sizeof(real));
	for (int i = 0; i < NT; i++) {
		l->t[i] = l->mem + off;
		off += size[i];
	}
}

static void bufs_alloc(struct bufs *b, const struct layer *l)
{
	size_t nc = (size_t)l->N * l->C, nd = (size_t)l->N * (l->Ds + l->Rr);

	b->out = calloc(nc, sizeof(real));
	b->dout = calloc(nc, sizeof(real));
	b->saved = calloc(nd, sizeof(real));
	b->saved0 = calloc(nd, sizeof(real));
	b->n_scratch = nd + (size_t)l->N * l->Rr;
	b->scratch = calloc(b->n_scratch, sizeof(real));
}

static void bufs_free(struct bufs *b)
{
	free(b->out);
	free(b->dout);
	free(b->saved);
	free(b->saved0);
	free(b->scratch);
}

/* Values large enough that GELU is well into its curved range. */
static void layer_init(struct layer *l, struct kgpt_rng *rng)
{
	double sd = 1.2 / sqrt(l->C);

	fill_normal(l->t[T_FCW], l->size[T_FCW], rng, sd);
	fill_normal(l->t[T_FCB], l->size[T_FCB], rng, 0.3);
	fill_normal(l->t[T_MIXW], l->size[T_MIXW], rng, 1.5 / sqrt(l->Rr));
	fill_normal(l->t[T_FCPROJW], l->size[T_FCPROJW], rng, 0.4);
	fill_normal(l->t[T_FCPROJB], l->size[T_FCPROJB], rng, 0.3);
	fill_normal(l->t[T_INP], l->size[T_INP], rng, 1.0);
	l->t[T_WSTD][0] = 0.8;
	l->t[T_WREC][0] = 0.35;
	l->t[T_GATE][0] = 0.7;
}

static struct rmlp_dims dims_of(const struct layer *l, int mixer, int gates)
{
	struct rmlp_dims d = { l->C, l->Ds, l->Rr, mixer, gates };

	return d;
}

static struct rmlp_params params_of(const struct layer *l, int bias)
{
	struct rmlp_params p = {
		.fcw = l->t[T_FCW], .fcb = bias ? l->t[T_FCB] : NULL,
		.mixw = l->t[T_MIXW], .fcprojw = l->t[T_FCPROJW],
		.fcprojb = bias ? l->t[T_FCPROJB] : NULL,
		.w_std = l->t[T_WSTD], .w_rec = l->t[T_WREC],
		.gate_alpha = l->t[T_GATE],
	};
	return p;
}

static struct rmlp_grads grads_of(const struct layer *g, int bias)
{
	struct rmlp_grads q = {
		.fcw = g->t[T_FCW], .fcb = bias ? g->t[T_FCB] : NULL,
		.mixw = g->t[T_MIXW], .fcprojw = g->t[T_FCPROJW],
		.fcprojb = bias ? g->t[T_FCPROJB] : NULL,
		.w_std = g->t[T_WSTD], .w_rec = g->t[T_WREC],
		.gate_alpha = g->t[T_GATE],
	};
	return q;
}

static double gelu_ref(double x)
{
	return 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}

/* The R-MLP straight from its definition (ra/rmlp.h), out (N, C). */
static void forward_ref(double *out, const struct layer *l,
			const struct rmlp_dims *d, int bias)
{
	int C = l->C, Ds = l->Ds, Rr = l->Rr, Dff = Ds + Rr;
	const real *fcw = l->t[T_FCW], *inp = l->t[T_INP];
	double *h = calloc(Dff, sizeof(double)), *u = calloc(Rr, sizeof(double));
	double s_low = l->t[T_WREC][0] * (d->use_gates ? l->t[T_GATE][0] : 1);

	for (int n = 0; n < l->N; n++) {
		for (int j = 0; j < Dff; j++) {
			double a = bias ? l->t[T_FCB][j] : 0;

			for (int c = 0; c < C; c++)
				a += fcw[j * C + c] * inp[n * C + c];
			h[j] = gelu_ref(a);
		}
		for (int j = 0; j < Ds; j++)
			h[j] *= l->t[T_WSTD][0];
		for (int k = 0; k < Rr; k++)
			u[k] = h[Ds + k];
		for (int j = 0; j < Rr; j++) {
			double m = u[j];

			if (d->use_mixer) {
				m = 0;
				for (int k = 0; k < Rr; k++)
					m += l->t[T_MIXW][j * Rr + k] * u[k];
			}
			h[Ds + j] = s_low * m;
		}
		for (int c = 0; c < C; c++) {
			double a = bias ? l->t[T_FCPROJB][c] : 0;

			for (int j = 0; j < Dff; j++)
				a += l->t[T_FCPROJW][c * Dff + j] * h[j];
			out[n * C + c] = a;
		}
	}
	free(h);
	free(u);
}

/* L = sum out * dout through rmlp_forward(). */
static double loss(struct bufs *b, const struct layer *l,
		   const struct rmlp_dims *d, int bias)
{
	struct rmlp_params p = params_of(l, bias);
	size_t nc = (size_t)l->N * l->C;
	double L = 0;

	rmlp_forward(b->out, b->saved, b->scratch, l->t[T_INP], &p, d, l->N);
	for (size_t i = 0; i < nc; i++)
		L += b->out[i] * b->dout[i];
	return L;
}

static int tensor_used(int t, const struct rmlp_dims *d, int bias)
{
	if (t == T_MIXW)
		return d->use_mixer;
	if (t == T_GATE)
		return d->use_gates;
	if (t == T_FCB || t == T_FCPROJB)
		return bias;
	return 1;
}

static void backward(struct bufs *b, struct layer *g, const struct layer *l,
		     const struct rmlp_dims *d, int bias)
{
	struct rmlp_params p = params_of(l, bias);
	struct rmlp_grads q = grads_of(g, bias);

	/* Backward must not rely on what forward left in scratch. */
	for (size_t i = 0; i < b->n_scratch; i++)
		b->scratch[i] = NAN;
	rmlp_backward(g->t[T_INP], &q, b->scratch, b->dout, l->t[T_INP],
		      b->saved, &p, d, l->N);
}

static void check_forward(struct bufs *b, struct layer *l,
			  const struct rmlp_dims *d, int bias, const char *tag)
{
	size_t nc = (size_t)l->N * l->C;
	double *ref = calloc(nc, sizeof(double)), err = 0;

	loss(b, l, d, bias);
	forward_ref(ref, l, d, bias);
	for (size_t i = 0; i < nc; i++)
		err = fmax(err, fabs(b->out[i] - ref[i]));
	ok(err <= 1e-12, "%s forward = direct formula (max err %.3g)", tag, err);
	free(ref);
}

/*
 * Finite differences for every used tensor (all elements, or `sample`
 * random ones of each); disabled tensors stay untouched. A gradient must
 * not vanish, except for the tensors in the zero_ok mask (bit t).
 */
static void check_grads(struct bufs *b, struct layer *l, struct layer *g,
			const struct rmlp_dims *d, int bias, unsigned zero_ok,
			int sample, struct kgpt_rng *rng, const char *tag)
{
	size_t nd = (size_t)l->N * (l->Ds + l->Rr);

	loss(b, l, d, bias);
	memcpy(b->saved0, b->saved, nd * sizeof(real));
	for (int t = 0; t < NT; t++)
		for (size_t i = 0; i < g->size[t]; i++)
			g->t[t][i] = tensor_used(t, d, bias) ? 0 : 12345;
	backward(b, g, l, d, bias);
	ok(!memcmp(b->saved0, b->saved, nd * sizeof(real)),
	   "%s backward leaves saved unchanged", tag);
	for (int t = 0; t < NT; t++) {
		size_t n = l->size[t];
		int m = sample && (size_t)sample < n ? sample : (int)n;
		double err = 0, gmax = 0;
		int same = 1;

		if (!tensor_used(t, d, bias)) {
			for (size_t i = 0; i < n; i++)
				same &= g->t[t][i] == 12345;
			ok(same, "%s d%s untouched (unused)", tag, tname[t]);
			continue;
		}
		for (int k = 0; k < m; k++) {
			size_t i = m == (int)n ? (size_t)k : kgpt_rng_below(rng, n);
			real v = l->t[t][i];
			double lp, lm, num;

			l->t[t][i] = v + FD_H;
			lp = loss(b, l, d, bias);
			l->t[t][i] = v - FD_H;
			lm = loss(b, l, d, bias);
			l->t[t][i] = v;
			num = (lp - lm) / (2 * FD_H);
			err = fmax(err, fabs(num - g->t[t][i]) / fmax(1, fabs(num)));
			gmax = fmax(gmax, fabs(num));
		}
		ok(err <= FD_TOL && (gmax > 1e-3 || (zero_ok >> t & 1)),
		   "%s d%s = finite differences (%d of %zu, max rel err %.3g, "
		   "max |grad| %.3g)", tag, tname[t], m, n, err, gmax);
	}
}

/* A second backward adds the same amount again: everything doubles. */
static void check_accumulate(struct bufs *b, struct layer *l, struct layer *g,
			     const struct rmlp_dims *d, int bias, const char *tag)
{
	struct layer g1;
	double err = 0;

	layer_alloc(&g1, l->N, l->C, l->Ds, l->Rr);
	for (int t = 0; t < NT; t++)
		memset(g->t[t], 0, g->size[t] * sizeof(real));
	loss(b, l, d, bias);
	backward(b, g, l, d, bias);
	for (int t = 0; t < NT; t++)
		memcpy(g1.t[t], g->t[t], g->size[t] * sizeof(real));
	backward(b, g, l, d, bias);
	for (int t = 0; t < NT; t++)
		for (size_t i = 0; i < g->size[t]; i++)
			err = fmax(err, fabs(g->t[t][i] - 2 * g1.t[t][i]));
	ok(err <= 1e-12, "%s second backward doubles every gradient (err %.3g)",
	   tag, err);
	free(g1.mem);
}

/* N=5, C=6, D_std=10, R=3: every element, every combination. */
static void test_small(struct kgpt_rng *rng)
{
	struct layer l, g;
	struct bufs b;

	layer_alloc(&l, 5, 6, 10, 3);
	layer_alloc(&g, 5, 6, 10, 3);
	bufs_alloc(&b, &l);
	layer_init(&l, rng);
	fill_normal(b.dout, (size_t)l.N * l.C, rng, 1.0);
	for (int bias = 1; bias >= 0; bias--)
		for (int mix = 0; mix <= 1; mix++)
			for (int gates = 0; gates <= 1; gates++) {
				struct rmlp_dims d = dims_of(&l, mix, gates);
				char tag[64];

				if (!bias && (!mix || !gates))
					continue;
				snprintf(tag, sizeof(tag),
					 "mixer=%d gates=%d bias=%d:", mix,
					 gates, bias);
				check_forward(&b, &l, &d, bias, tag);
				check_grads(&b, &l, &g, &d, bias, 0, 0, rng, tag);
				check_accumulate(&b, &l, &g, &d, bias, tag);
			}
	/* A silent reciprocal path (w_rec = 0): w_rec still gets its
	 * gradient (no division by the scale anywhere); mixw and gate_alpha
	 * then have none. */
	{
		struct rmlp_dims d = dims_of(&l, 1, 1);

		l.t[T_WREC][0] = 0;
		check_grads(&b, &l, &g, &d, 1, 1u << T_MIXW | 1u << T_GATE, 0,
			    rng, "mixer=1 gates=1 w_rec=0:");
	}
	bufs_free(&b);
	free(l.mem);
	free(g.mem);
}

/*
 * N=64, C=8, D_std=290, R=30: N * D_ff = 20480 elements, above the kernels'
 * threshold for threads, so the passes run split by columns (with 3
 * threads the split falls inside the reciprocal path). 25 sampled
 * elements per tensor.
 */
static void test_threads(struct kgpt_rng *rng)
{
	struct layer l, g;
	struct bufs b;

	layer_alloc(&l, 64, 8, 290, 30);
	layer_alloc(&g, 64, 8, 290, 30);
	bufs_alloc(&b, &l);
	layer_init(&l, rng);
	fill_normal(b.dout, (size_t)l.N * l.C, rng, 1.0);
	for (int mix = 0; mix <= 1; mix++) {
		struct rmlp_dims d = dims_of(&l, mix, mix);
		char tag[64];

		snprintf(tag, sizeof(tag), "N=64 D_ff=320 mixer=%d gates=%d:",
			 mix, mix);
		check_forward(&b, &l, &d, 1, tag);
		check_grads(&b, &l, &g, &d, 1, 0, 25, rng, tag);
		check_accumulate(&b, &l, &g, &d, 1, tag);
	}
	bufs_free(&b);
	free(l.mem);
	free(g.mem);
}

int main(void)
{
	struct kgpt_rng rng;

	kgpt_rng_seed(&rng, 42);
	test_small(&rng);
	test_threads(&rng);
	return tap_done();
}
