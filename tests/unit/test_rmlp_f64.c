// SPDX-License-Identifier: MIT
/*
 * R-MLP in float64: forward against a direct evaluation of the formula,
 * backward against central finite differences for every parameter and the
 * input, in all four combinations of use_mixer / use_gates, with and
 * without biases, and with w_rec = 0; backward accumulates and does not
 * depend on what forward left in scratch.
 */
#include <stdlib.h>
#include <string.h>
#include "tests/tap.h"
#include "kgpt/rng.h"
#include "ra/rmlp.h"

#define N	5
#define C	6
#define DS	10
#define RR	3
#define DFF	(DS + RR)
#define FD_H	1e-5
#define FD_TOL	1e-7

/* One layer's parameters, each tensor at a fixed place in one array. */
enum { T_FCW, T_FCB, T_MIXW, T_FCPROJW, T_FCPROJB, T_WSTD, T_WREC, T_GATE,
       T_INP, NT };
static const char *const tname[NT] = { "fcw", "fcb", "mixw", "fcprojw",
	"fcprojb", "w_std", "w_rec", "gate_alpha", "inp" };
static const size_t tsize[NT] = { DFF * C, DFF, RR * RR, C * DFF, C, 1, 1,
	1, N * C };

struct layer {
	real *t[NT];
	real *mem;
};

static void layer_alloc(struct layer *l)
{
	size_t off = 0, total = 0;

	for (int i = 0; i < NT; i++)
		total += tsize[i];
	l->mem = calloc(total, sizeof(real));
	for (int i = 0; i < NT; i++) {
		l->t[i] = l->mem + off;
		off += tsize[i];
	}
}

static void fill_normal(real *x, size_t n, double sd, struct kgpt_rng *rng)
{
	for (size_t i = 0; i < n; i++)
		x[i] = sd * kgpt_rng_normal(rng);
}

/* Values large enough that GELU is well into its curved range. */
static void layer_init(struct layer *l, struct kgpt_rng *rng)
{
	fill_normal(l->t[T_FCW], tsize[T_FCW], 0.5, rng);
	fill_normal(l->t[T_FCB], tsize[T_FCB], 0.3, rng);
	fill_normal(l->t[T_MIXW], tsize[T_MIXW], 0.6, rng);
	fill_normal(l->t[T_FCPROJW], tsize[T_FCPROJW], 0.4, rng);
	fill_normal(l->t[T_FCPROJB], tsize[T_FCPROJB], 0.3, rng);
	fill_normal(l->t[T_INP], tsize[T_INP], 1.0, rng);
	l->t[T_WSTD][0] = 0.8;
	l->t[T_WREC][0] = 0.35;
	l->t[T_GATE][0] = 0.7;
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
	const real *fcw = l->t[T_FCW], *inp = l->t[T_INP];
	double h[DFF], u[RR];
	double s_low = l->t[T_WREC][0] * (d->use_gates ? l->t[T_GATE][0] : 1);

	for (int n = 0; n < N; n++) {
		for (int j = 0; j < DFF; j++) {
			double a = bias ? l->t[T_FCB][j] : 0;

			for (int c = 0; c < C; c++)
				a += fcw[j * C + c] * inp[n * C + c];
			h[j] = gelu_ref(a);
		}
		for (int j = 0; j < DS; j++)
			h[j] *= l->t[T_WSTD][0];
		for (int k = 0; k < RR; k++)
			u[k] = h[DS + k];
		for (int j = 0; j < RR; j++) {
			double m = u[j];

			if (d->use_mixer) {
				m = 0;
				for (int k = 0; k < RR; k++)
					m += l->t[T_MIXW][j * RR + k] * u[k];
			}
			h[DS + j] = s_low * m;
		}
		for (int c = 0; c < C; c++) {
			double a = bias ? l->t[T_FCPROJB][c] : 0;

			for (int j = 0; j < DFF; j++)
				a += l->t[T_FCPROJW][c * DFF + j] * h[j];
			out[n * C + c] = a;
		}
	}
}

struct bufs {
	real out[N * C], dout[N * C], saved[N * DFF];
	real scratch[N * (DFF + RR)];
};

/* L = sum out * dout through rmlp_forward(). */
static double loss(struct bufs *b, const struct layer *l,
		   const struct rmlp_dims *d, int bias)
{
	struct rmlp_params p = params_of(l, bias);
	double L = 0;

	rmlp_forward(b->out, b->saved, b->scratch, l->t[T_INP], &p, d, N);
	for (int i = 0; i < N * C; i++)
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
	for (size_t i = 0; i < sizeof(b->scratch) / sizeof(real); i++)
		b->scratch[i] = NAN;
	rmlp_backward(g->t[T_INP], &q, b->scratch, b->dout, l->t[T_INP],
		      b->saved, &p, d, N);
}

static void check_forward(struct bufs *b, struct layer *l,
			  const struct rmlp_dims *d, int bias, const char *tag)
{
	double ref[N * C], err = 0;

	loss(b, l, d, bias);
	forward_ref(ref, l, d, bias);
	for (int i = 0; i < N * C; i++)
		err = fmax(err, fabs(b->out[i] - ref[i]));
	ok(err <= 1e-12, "%s forward = direct formula (max err %.3g)", tag, err);
}

/*
 * Finite differences for every used tensor; disabled ones stay untouched.
 * A gradient must not vanish, except for the tensors in the zero_ok mask
 * (bit t for tensor t).
 */
static void check_grads(struct bufs *b, struct layer *l, struct layer *g,
			const struct rmlp_dims *d, int bias, unsigned zero_ok,
			const char *tag)
{
	real saved0[N * DFF];

	loss(b, l, d, bias);
	memcpy(saved0, b->saved, sizeof(saved0));
	for (int t = 0; t < NT; t++)
		for (size_t i = 0; i < tsize[t]; i++)
			g->t[t][i] = 12345;
	for (int t = 0; t < NT; t++)
		if (tensor_used(t, d, bias))
			memset(g->t[t], 0, tsize[t] * sizeof(real));
	backward(b, g, l, d, bias);
	ok(!memcmp(saved0, b->saved, sizeof(saved0)),
	   "%s backward leaves saved unchanged", tag);
	for (int t = 0; t < NT; t++) {
		double err = 0, gmax = 0;
		int same = 1;

		if (!tensor_used(t, d, bias)) {
			for (size_t i = 0; i < tsize[t]; i++)
				same &= g->t[t][i] == 12345;
			ok(same, "%s d%s untouched (unused)", tag, tname[t]);
			continue;
		}
		for (size_t i = 0; i < tsize[t]; i++) {
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
		   "%s d%s = finite differences (max rel err %.3g, max |grad| %.3g)",
		   tag, tname[t], err, gmax);
	}
}

/* A second backward adds the same amount again: everything doubles. */
static void check_accumulate(struct bufs *b, struct layer *l, struct layer *g,
			     const struct rmlp_dims *d, int bias, const char *tag)
{
	struct layer g1;
	double err = 0;

	layer_alloc(&g1);
	for (int t = 0; t < NT; t++)
		memset(g->t[t], 0, tsize[t] * sizeof(real));
	loss(b, l, d, bias);
	backward(b, g, l, d, bias);
	for (int t = 0; t < NT; t++)
		memcpy(g1.t[t], g->t[t], tsize[t] * sizeof(real));
	backward(b, g, l, d, bias);
	for (int t = 0; t < NT; t++)
		for (size_t i = 0; i < tsize[t]; i++)
			err = fmax(err, fabs(g->t[t][i] - 2 * g1.t[t][i]));
	ok(err <= 1e-12, "%s second backward doubles every gradient (err %.3g)",
	   tag, err);
	free(g1.mem);
}

int main(void)
{
	static struct bufs b;
	struct layer l, g;
	struct kgpt_rng rng;

	layer_alloc(&l);
	layer_alloc(&g);
	kgpt_rng_seed(&rng, 42);
	layer_init(&l, &rng);
	fill_normal(b.dout, N * C, 1.0, &rng);
	for (int bias = 1; bias >= 0; bias--)
		for (int mix = 0; mix <= 1; mix++)
			for (int gates = 0; gates <= 1; gates++) {
				struct rmlp_dims d = { C, DS, RR, mix, gates };
				char tag[64];

				if (!bias && (!mix || !gates))
					continue;
				snprintf(tag, sizeof(tag),
					 "mixer=%d gates=%d bias=%d:", mix,
					 gates, bias);
				check_forward(&b, &l, &d, bias, tag);
				check_grads(&b, &l, &g, &d, bias, 0, tag);
				check_accumulate(&b, &l, &g, &d, bias, tag);
			}
	/* A silent reciprocal path (w_rec = 0): w_rec still gets its
	 * gradient (no division by the scale anywhere); mixw and gate_alpha
	 * then have none. */
	{
		struct rmlp_dims d = { C, DS, RR, 1, 1 };

		l.t[T_WREC][0] = 0;
		check_grads(&b, &l, &g, &d, 1, 1u << T_MIXW | 1u << T_GATE,
			    "mixer=1 gates=1 w_rec=0:");
	}
	free(l.mem);
	free(g.mem);
	return tap_done();
}
