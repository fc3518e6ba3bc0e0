// SPDX-License-Identifier: MIT
/*
 * R-MLP in float32 at GPT-2 124M sizes (C = 768, D_ff = 3072):
 *  - with w_std = w_rec = 1, no mixer, no gates, forward and backward equal
 *    the baseline MLP (matmul -> gelu -> matmul with the same weights);
 *  - rmlp_from_baseline() gives the baseline with each path scaled by its
 *    factor;
 *  - geometric init values, parameter counts, buffer sizes, statistics.
 * With --bench (or KGPT_BENCH=1 in the environment) it also times forward +
 * backward against the baseline MLP at N = 256 and N = 8192.
 */
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include "tests/tap.h"
#include "tests/util.h"
#include "kgpt/rng.h"
#include "kernels/kernels.h"
#include "ra/rmlp.h"

#define C	768
#define DFF	3072
#define RMAX	1152	/* largest R_ff tested */

static real *alloc_reals(size_t n)
{
	real *p = malloc(n * sizeof(real));

	if (!p) {
		fprintf(stderr, "test_rmlp: out of memory (%zu reals)\n", n);
		exit(2);
	}
	return p;
}

static real *normal(size_t n, float sd, struct kgpt_rng *rng)
{
	real *p = alloc_reals(n);

	for (size_t i = 0; i < n; i++)
		p[i] = sd * kgpt_rng_normal(rng);
	return p;
}

static real *zeros(size_t n)
{
	real *p = alloc_reals(n);

	memset(p, 0, n * sizeof(real));
	return p;
}

static double max_abs(const real *a, size_t n)
{
	double m = 0;

	for (size_t i = 0; i < n; i++)
		m = fmax(m, fabs((double)a[i]));
	return m;
}

/* One layer's weights in llm.c's layout, GPT-2 initialisation scales, and
 * an input like a LayerNorm output. */
struct mlp {
	real *fcw, *fcb, *fcprojw, *fcprojb, *mixw, *inp, *dout;
};

static void mlp_init(struct mlp *m, int N, struct kgpt_rng *rng)
{
	m->fcw = normal((size_t)DFF * C, 0.02f, rng);
	m->fcb = normal(DFF, 0.02f, rng);
	m->fcprojw = normal((size_t)C * DFF, 0.02f, rng);
	m->fcprojb = normal(C, 0.02f, rng);
	m->mixw = normal((size_t)RMAX * RMAX, 0.03f, rng);
	m->inp = normal((size_t)N * C, 1.0f, rng);
	m->dout = normal((size_t)N * C, 0.01f, rng);
}

static void mlp_free(struct mlp *m)
{
	free(m->fcw);
	free(m->fcb);
	free(m->fcprojw);
	free(m->fcprojb);
	free(m->mixw);
	free(m->inp);
	free(m->dout);
}

/* Baseline MLP activations and gradients (llm.c's buffers). */
struct base {
	real *pre, *h, *out, *dh, *dpre, *dinp;
	real *dfcw, *dfcb, *dfcprojw, *dfcprojb;
};

static void base_alloc(struct base *b, int N)
{
	b->pre = zeros((size_t)N * DFF);
	b->h = zeros((size_t)N * DFF);
	b->out = zeros((size_t)N * C);
	b->dh = zeros((size_t)N * DFF);
	b->dpre = zeros((size_t)N * DFF);
	b->dinp = zeros((size_t)N * C);
	b->dfcw = zeros((size_t)DFF * C);
	b->dfcb = zeros(DFF);
	b->dfcprojw = zeros((size_t)C * DFF);
	b->dfcprojb = zeros(C);
}

static void base_free(struct base *b)
{
	real **p[] = { &b->pre, &b->h, &b->out, &b->dh, &b->dpre, &b->dinp,
		       &b->dfcw, &b->dfcb, &b->dfcprojw, &b->dfcprojb };

	for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++)
		free(*p[i]);
}

static void base_forward(struct base *b, const struct mlp *m, int N)
{
	matmul_forward(b->pre, m->inp, m->fcw, m->fcb, N, C, DFF);
	gelu_forward(b->h, b->pre, (size_t)N * DFF);
	matmul_forward(b->out, b->h, m->fcprojw, m->fcprojb, N, DFF, C);
}

/* b->dh and b->dpre must be zero (the kernels accumulate). */
static void base_backward(struct base *b, const struct mlp *m, int N)
{
	matmul_backward(b->dh, b->dfcprojw, b->dfcprojb, m->dout, b->h,
			m->fcprojw, N, DFF, C);
	gelu_backward(b->dpre, b->pre, b->dh, (size_t)N * DFF);
	matmul_backward(b->dinp, b->dfcw, b->dfcb, b->dpre, m->inp, m->fcw, N,
			C, DFF);
}

/* One R-MLP layer: scalars, buffers sized by the header's helpers. */
struct rl {
	struct rmlp_dims d;
	real w_std, w_rec, gate, dw_std, dw_rec, dgate;
	real *saved, *scratch, *out, *dinp, *dfcw, *dfcb, *dfcprojw, *dfcprojb;
	real *dmixw;
};

static void rl_alloc(struct rl *r, int Rff, int mixer, int gates, int N)
{
	struct rmlp_dims d = { C, DFF - Rff, Rff, mixer, gates };

	memset(r, 0, sizeof(*r));
	r->d = d;
	r->saved = zeros(N * rmlp_saved_per_row(&d));
	r->scratch = zeros(N * rmlp_scratch_per_row(&d));
	r->out = zeros((size_t)N * C);
	r->dinp = zeros((size_t)N * C);
	r->dfcw = zeros((size_t)DFF * C);
	r->dfcb = zeros(DFF);
	r->dfcprojw = zeros((size_t)C * DFF);
	r->dfcprojb = zeros(C);
	r->dmixw = zeros((size_t)Rff * Rff);
	rmlp_init_gates(&r->w_std, &r->w_rec, &r->gate, &d);
}

static void rl_free(struct rl *r)
{
	free(r->saved);
	free(r->scratch);
	free(r->out);
	free(r->dinp);
	free(r->dfcw);
	free(r->dfcb);
	free(r->dfcprojw);
	free(r->dfcprojb);
	free(r->dmixw);
}

static struct rmlp_params rl_params(const struct rl *r, const struct mlp *m)
{
	struct rmlp_params p = {
		.fcw = m->fcw, .fcb = m->fcb, .mixw = m->mixw,
		.fcprojw = m->fcprojw, .fcprojb = m->fcprojb,
		.w_std = &r->w_std, .w_rec = &r->w_rec, .gate_alpha = &r->gate,
	};
	return p;
}

static void rl_forward(struct rl *r, const struct mlp *m, int N)
{
	struct rmlp_params p = rl_params(r, m);

	rmlp_forward(r->out, r->saved, r->scratch, m->inp, &p, &r->d, N);
}

static void rl_backward(struct rl *r, const struct mlp *m, int N)
{
	struct rmlp_params p = rl_params(r, m);
	struct rmlp_grads g = {
		.fcw = r->dfcw, .fcb = r->dfcb, .mixw = r->dmixw,
		.fcprojw = r->dfcprojw, .fcprojb = r->dfcprojb,
		.w_std = &r->dw_std, .w_rec = &r->dw_rec, .gate_alpha = &r->dgate,
	};

	rmlp_backward(r->dinp, &g, r->scratch, m->dout, m->inp, r->saved, &p,
		      &r->d, N);
}

/* max |a - b| / max |b| */
static double rel_diff(const real *a, const real *b, size_t n)
{
	return max_abs_diff(a, b, n) / fmax(max_abs(b, n), 1e-30);
}

/* sum over rows and the columns [j0, j1) of dh * h, in double. */
static double dot_cols(const real *dh, const real *h, int N, int j0, int j1)
{
	double s = 0;

	for (size_t n = 0; n < (size_t)N; n++)
		for (int j = j0; j < j1; j++)
			s += (double)dh[n * DFF + j] * h[n * DFF + j];
	return s;
}

/* w_std = w_rec = 1, no mixer, no gates: the baseline MLP exactly. */
static void test_equals_baseline(int Rff, struct kgpt_rng *rng)
{
	const int N = 64;
	struct mlp m;
	struct base b;
	struct rl r;
	double ws, wr;

	mlp_init(&m, N, rng);
	base_alloc(&b, N);
	rl_alloc(&r, Rff, 0, 0, N);
	r.w_std = r.w_rec = 1;
	base_forward(&b, &m, N);
	rl_forward(&r, &m, N);
	ok(max_abs_diff(r.out, b.out, (size_t)N * C) <= 1e-6,
	   "R=%d w=1: forward = baseline MLP (max abs diff %.3g, max |out| %.3g)",
	   Rff, max_abs_diff(r.out, b.out, (size_t)N * C),
	   max_abs(b.out, (size_t)N * C));
	base_backward(&b, &m, N);
	rl_backward(&r, &m, N);
	ok(rel_diff(r.dinp, b.dinp, (size_t)N * C) <= 1e-5 &&
	   rel_diff(r.dfcw, b.dfcw, (size_t)DFF * C) <= 1e-5 &&
	   rel_diff(r.dfcb, b.dfcb, DFF) <= 1e-5 &&
	   rel_diff(r.dfcprojw, b.dfcprojw, (size_t)C * DFF) <= 1e-5 &&
	   rel_diff(r.dfcprojb, b.dfcprojb, C) <= 1e-5,
	   "R=%d w=1: backward = baseline MLP (rel diff dinp %.2g dfcw %.2g "
	   "dfcb %.2g dfcprojw %.2g dfcprojb %.2g)", Rff,
	   rel_diff(r.dinp, b.dinp, (size_t)N * C),
	   rel_diff(r.dfcw, b.dfcw, (size_t)DFF * C),
	   rel_diff(r.dfcb, b.dfcb, DFF),
	   rel_diff(r.dfcprojw, b.dfcprojw, (size_t)C * DFF),
	   rel_diff(r.dfcprojb, b.dfcprojb, C));
	/* d w_std = <dh_std, h_std>, d w_rec = <dh_low, h_low> at w = 1. */
	ws = dot_cols(b.dh, b.h, N, 0, DFF - Rff);
	wr = dot_cols(b.dh, b.h, N, DFF - Rff, DFF);
	ok(fabs(r.dw_std - ws) <= 1e-4 * fmax(fabs(ws), 1e-3) &&
	   fabs(r.dw_rec - wr) <= 1e-4 * fmax(fabs(wr), 1e-3),
	   "R=%d w=1: d w_std %.6g (want %.6g), d w_rec %.6g (want %.6g)",
	   Rff, r.dw_std, ws, r.dw_rec, wr);
	rl_free(&r);
	base_free(&b);
	mlp_free(&m);
}

/* From a baseline checkpoint: baseline activations scaled per path. */
static void test_from_baseline(int Rff, struct kgpt_rng *rng)
{
	const int N = 64, Ds = DFF - Rff;
	struct mlp m;
	struct base b;
	struct rl r;
	real *want = zeros((size_t)N * C);
	struct rmlp_stats st;
	struct rmlp_params p;
	double e;

	mlp_init(&m, N, rng);
	base_alloc(&b, N);
	rl_alloc(&r, Rff, 1, 1, N);
	rmlp_from_baseline(m.mixw, &r.w_std, &r.w_rec, &r.gate, &r.d);
	base_forward(&b, &m, N);
	for (size_t n = 0; n < (size_t)N; n++)
		for (int j = 0; j < DFF; j++)
			b.h[n * DFF + j] *= j < Ds ? r.w_std : r.w_rec * r.gate;
	matmul_forward(want, b.h, m.fcprojw, m.fcprojb, N, DFF, C);
	rl_forward(&r, &m, N);
	e = max_abs_diff(r.out, want, (size_t)N * C);
	ok(e <= 1e-6, "R=%d from baseline (mixer, gates): output = baseline "
	   "with paths scaled by w_std, w_rec*gate_alpha (max abs diff %.3g)",
	   Rff, e);
	p = rl_params(&r, &m);
	rmlp_get_stats(&st, &p, &r.d);
	ok(fabs(st.w_std - (double)Ds / DFF) < 1e-7 &&
	   fabs(st.w_rec - (double)Rff / DFF) < 1e-7 &&
	   fabs(st.gate_alpha - 0.1) < 1e-7 &&
	   fabs(st.rec_scale - 0.1 * Rff / DFF) < 1e-7 &&
	   fabs(st.mix_fro - sqrt(Rff)) < 1e-5,
	   "R=%d stats: w_std %.4f w_rec %.4f gate_alpha %.4f rec_scale %.5f "
	   "|mixw|_F %.4f", Rff, st.w_std, st.w_rec, st.gate_alpha,
	   st.rec_scale, st.mix_fro);
	free(want);
	rl_free(&r);
	base_free(&b);
	mlp_free(&m);
}

/* Two backward passes from zeroed gradients give the same bits (mixer,
 * gates, random scalars, on the threads the test runs with). */
static void test_deterministic(int Rff, struct kgpt_rng *rng)
{
	const int N = 64;
	struct mlp m;
	struct rl r[2];
	int same = 1;

	mlp_init(&m, N, rng);
	for (int k = 0; k < 2; k++) {
		rl_alloc(&r[k], Rff, 1, 1, N);
		r[k].w_std = 0.8f;
		r[k].w_rec = 0.6f;
		r[k].gate = 0.3f;
		rl_forward(&r[k], &m, N);
		rl_backward(&r[k], &m, N);
	}
	same &= !memcmp(r[0].out, r[1].out, (size_t)N * C * sizeof(real));
	same &= !memcmp(r[0].dinp, r[1].dinp, (size_t)N * C * sizeof(real));
	same &= !memcmp(r[0].dfcw, r[1].dfcw, (size_t)DFF * C * sizeof(real));
	same &= !memcmp(r[0].dfcb, r[1].dfcb, DFF * sizeof(real));
	same &= !memcmp(r[0].dfcprojw, r[1].dfcprojw,
			(size_t)C * DFF * sizeof(real));
	same &= !memcmp(r[0].dfcprojb, r[1].dfcprojb, C * sizeof(real));
	same &= !memcmp(r[0].dmixw, r[1].dmixw,
			(size_t)Rff * Rff * sizeof(real));
	same &= r[0].dw_std == r[1].dw_std && r[0].dw_rec == r[1].dw_rec &&
		r[0].dgate == r[1].dgate;
	ok(same, "R=%d mixer+gates: forward and backward are deterministic "
	   "(%d threads)", Rff, omp_get_max_threads());
	rl_free(&r[0]);
	rl_free(&r[1]);
	mlp_free(&m);
}

static void test_init(void)
{
	static const struct { int R; double ws, wr; } v[] = {
		{ 64, 0.9792, 0.0208 }, { 256, 0.9167, 0.0833 },
		{ 512, 0.8333, 0.1667 }, { 1152, 0.6250, 0.3750 },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct rmlp_dims d = { C, DFF - v[i].R, v[i].R, 0, 1 };
		real ws, wr, ga;

		rmlp_init_gates(&ws, &wr, &ga, &d);
		ok(fabs(ws - v[i].ws) < 5e-5 && fabs(wr - v[i].wr) < 5e-5 &&
		   ga == R(0.1),
		   "geometric init R=%d D_ff=%d: w_std %.4f w_rec %.4f "
		   "gate_alpha %.1f", v[i].R, DFF, ws, wr, ga);
	}
}

static void test_sizes(void)
{
	struct rmlp_dims d64 = { C, DFF - 64, 64, 0, 0 };
	struct rmlp_dims d64mg = { C, DFF - 64, 64, 1, 1 };
	struct rmlp_dims d1152mg = { C, DFF - 1152, 1152, 1, 1 };
	size_t base = 2 * 3072 * 768 + 3072 + 768;	/* llm.c's MLP */

	ok(base == 4722432, "baseline MLP parameters per layer %zu", base);
	ok(rmlp_num_params(&d64) == base + 2 &&
	   rmlp_extra_params(&d64) == 2,
	   "params R=64 no mixer/gates: %zu (+2)", rmlp_num_params(&d64));
	ok(rmlp_num_params(&d64mg) == base + 64 * 64 + 1 + 2,
	   "params R=64 mixer+gates: %zu (+R^2+1+2 = +%zu)",
	   rmlp_num_params(&d64mg), rmlp_extra_params(&d64mg));
	ok(rmlp_num_params(&d1152mg) == base + 1152 * 1152 + 1 + 2,
	   "params R=1152 mixer+gates: %zu (+%zu)", rmlp_num_params(&d1152mg),
	   rmlp_extra_params(&d1152mg));
	ok(rmlp_saved_per_row(&d64) == DFF && rmlp_scratch_per_row(&d64) == DFF &&
	   rmlp_scratch_per_row(&d1152mg) == DFF + 1152,
	   "reals per row: saved %zu, scratch %zu (%zu with a 1152 mixer)",
	   rmlp_saved_per_row(&d64), rmlp_scratch_per_row(&d64),
	   rmlp_scratch_per_row(&d1152mg));
	ok(rmlp_dims_valid(&d64) && !rmlp_dims_valid(&(struct rmlp_dims){ C, DFF, 0, 0, 0 }) &&
	   !rmlp_dims_valid(&(struct rmlp_dims){ C, 0, DFF, 0, 0 }),
	   "rmlp_dims_valid rejects R = 0 and D_std = 0");
}

/* ---- timing ---------------------------------------------------------- */

#define MAX_REPS	64

/* Best forward, backward and total seconds, and every run's total. */
struct timing {
	double best[3], total[MAX_REPS];
	int n;
};

static void tick(struct timing *t, double t0, double t1, double t2)
{
	double s[3] = { t1 - t0, t2 - t1, t2 - t0 };

	for (int i = 0; i < 3; i++)
		if (!t->n || s[i] < t->best[i])
			t->best[i] = s[i];
	t->total[t->n++] = s[2];
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median over the runs of t's total / base's total in the same run: the
 * two ran back to back, so load from other processes mostly cancels. */
static double median_ratio(const struct timing *t, const struct timing *base)
{
	double r[MAX_REPS];

	for (int i = 0; i < t->n; i++)
		r[i] = t->total[i] / base->total[i];
	qsort(r, t->n, sizeof(r[0]), cmp_double);
	return t->n % 2 ? r[t->n / 2] : (r[t->n / 2 - 1] + r[t->n / 2]) / 2;
}

static void report(const char *name, const struct timing *t,
		   const struct timing *base)
{
	char rel[80] = "";

	if (base)
		snprintf(rel, sizeof(rel), "  best %+6.1f%%, median paired %+6.1f%%",
			 (t->best[2] / base->best[2] - 1) * 100,
			 (median_ratio(t, base) - 1) * 100);
	diag("  %-24s fwd %8.2f  bwd %8.2f  total %8.2f ms%s", name,
	     t->best[0] * 1e3, t->best[1] * 1e3, t->best[2] * 1e3, rel);
}

/* Baseline MLP and R-MLP variants in turn, each run `reps` times after a
 * warm-up; the best time of each is the least disturbed by other load. */
static void bench(int N, int reps, struct kgpt_rng *rng)
{
	static const struct { int R, mixer; } v[] = {
		{ 64, 0 }, { 1152, 0 }, { 64, 1 }, { 1152, 1 },
	};
	enum { NV = sizeof(v) / sizeof(v[0]) };
	struct timing tb, tv[NV];
	struct mlp m;
	struct base b;
	struct rl r[NV];

	memset(&tb, 0, sizeof(tb));
	memset(tv, 0, sizeof(tv));
	mlp_init(&m, N, rng);
	base_alloc(&b, N);
	for (int i = 0; i < NV; i++)
		rl_alloc(&r[i], v[i].R, v[i].mixer, v[i].mixer, N);
	for (int k = 0; k <= reps; k++) {
		double t0, t1;

		/* The baseline's accumulating buffers are zeroed untimed. */
		memset(b.dh, 0, (size_t)N * DFF * sizeof(real));
		memset(b.dpre, 0, (size_t)N * DFF * sizeof(real));
		t0 = omp_get_wtime();
		base_forward(&b, &m, N);
		t1 = omp_get_wtime();
		base_backward(&b, &m, N);
		if (k)
			tick(&tb, t0, t1, omp_get_wtime());
		for (int i = 0; i < NV; i++) {
			t0 = omp_get_wtime();
			rl_forward(&r[i], &m, N);
			t1 = omp_get_wtime();
			rl_backward(&r[i], &m, N);
			if (k)
				tick(&tv[i], t0, t1, omp_get_wtime());
		}
	}
	diag("N=%d C=%d D_ff=%d, %d threads, %d runs (times: best run):", N, C,
	     DFF, omp_get_max_threads(), reps);
	report("baseline MLP", &tb, NULL);
	for (int i = 0; i < NV; i++) {
		char name[32];

		snprintf(name, sizeof(name), "R-MLP R=%d%s", v[i].R,
			 v[i].mixer ? " mixer+gates" : "");
		report(name, &tv[i], &tb);
	}
	for (int i = 0; i < NV; i++)
		rl_free(&r[i]);
	base_free(&b);
	mlp_free(&m);
}

int main(int argc, char **argv)
{
	struct kgpt_rng rng;
	const char *env = getenv("KGPT_BENCH");
	int do_bench = (env && *env && strcmp(env, "0")) ||
		       (argc > 1 && !strcmp(argv[1], "--bench"));

	kgpt_rng_seed(&rng, 1234);
	test_equals_baseline(64, &rng);
	test_equals_baseline(1152, &rng);
	test_from_baseline(64, &rng);
	test_from_baseline(1152, &rng);
	test_deterministic(1152, &rng);
	test_init();
	test_sizes();
	if (do_bench) {
		bench(256, MAX_REPS, &rng);
		bench(8192, 15, &rng);
	}
	return tap_done();
}
