// SPDX-License-Identifier: MIT
/*
 * The CUDA backend's layer kernels under the host emulation
 * (include/kernels/cuda/cuda.h), against the CPU backend: embeddings,
 * LayerNorm, GELU, residual, dropout, scaling and the sum of squares
 * (kernels/cuda/elementwise.cu, layernorm.cu), the R-MLP's passes
 * (rmlp.cu) and Reciprocal Attention's (rattn.cu), forward and backward.
 * The CUDA sources are compiled with tests/cuda-emu/rename.h forced in,
 * so their functions are emu_*.
 *
 * Built twice (tests/kconfig/cuda-emu.sh): with float32 activations, each
 * result within 1e-5 of the CPU's (relative L2); and with -DEMU_BF16, the
 * kernels compiled with KGPT_ACT_BF16 and fed bf16 activations, within
 * 1e-2: the CPU gets the same bf16-rounded inputs as floats, so what is
 * left is the kernels' rounding of what they store (2^-9 relative each
 * time) and nothing else. The backward kernels accumulate (+=), so every
 * gradient starts nonzero. TAP on stdout.
 */
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#ifdef EMU_BF16
#include "emu_bf16.h"
typedef emu_bf16 eact;
static const double tol = 1e-2;
#define ACT_NAME "bf16"
#else
typedef float eact;
static const double tol = 1e-5;
#define ACT_NAME "fp32"
#endif

extern "C" {
#include "kernels/kernels.h"	/* the CPU backend: act_t is float */

void emu_encoder_forward(eact *out, const int *inp, const float *wte, const float *wpe, int B,
			 int T, int C);
void emu_encoder_backward(float *dwte, float *dwpe, const eact *dout, const int *inp, int B,
			  int T, int C);
void emu_layernorm_forward(eact *out, float *mean, float *rstd, const eact *inp,
			   const float *w, const float *b, int N, int C);
void emu_layernorm_backward(eact *dinp, float *dw, float *db, const eact *dout,
			    const eact *inp, const float *w, const float *mean,
			    const float *rstd, int N, int C);
void emu_gelu_forward(eact *out, const eact *inp, size_t n);
void emu_gelu_backward(eact *dinp, const eact *inp, const eact *dout, size_t n);
void emu_residual_forward(eact *out, const eact *a, const eact *b, size_t n);
void emu_dropout_forward(eact *x, size_t n, float p, uint64_t seed);
void emu_dropout_backward(eact *dx, size_t n, float p, uint64_t seed);
void emu_scale_act_inplace(eact *x, size_t n, float s);
double emu_sumsq(const float *g, size_t n);
void emu_rmlp_act_forward(eact *h, eact *u, const eact *pre, float s_std, float s_low, int N,
			  int Ds, int Rr, int mixer);
void emu_rmlp_act_backward(eact *dh, float *dfcb, float *dw_std, float *dw_rec, float *dgate,
			   const eact *pre, const eact *du, float s_std, float s_low,
			   float w_rec, float gate, int N, int Ds, int Rr);
void emu_rattn_scale_forward(eact *qkv, const float *w_std, const float *w_rec, int stride,
			     int N, int C, int NH, int R);
void emu_rattn_scale_backward(eact *dqkv, float *dw_std, float *dw_rec, const eact *qkv,
			      const float *w_std, const float *w_rec, int stride, int N, int C,
			      int NH, int R);
void emu_rattn_restart_forward(eact *out, const eact *y, const eact *qkv, const float *alpha,
			       int N, int C, int NH);
void emu_rattn_restart_backward(eact *dqkv, float *dalpha, eact *dout, const eact *y,
				const eact *qkv, const float *alpha, int N, int C, int NH);
}
#include "tests/tap.h"

typedef std::vector<float> vec;

/* n values uniform in [-scale/2, scale/2), rounded through eact so that
 * both backends see the same activations. */
static vec rnd(size_t n, unsigned int seed, float scale)
{
	vec v(n);

	srand(seed);
	for (auto &x : v)
		x = (float)(eact)((rand() / (float)RAND_MAX - 0.5f) * scale);
	return v;
}

static std::vector<eact> E(const vec &v)
{
	return std::vector<eact>(v.begin(), v.end());
}

static vec F(const std::vector<eact> &v)
{
	return vec(v.begin(), v.end());
}

/* |a - b| / |a| in L2; a is the CPU's. */
static double rel_l2(const vec &a, const vec &b)
{
	double d = 0, r = 0;

	for (size_t i = 0; i < a.size(); i++) {
		d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
		r += (double)a[i] * a[i];
	}
	return r > 0 ? sqrt(d / r) : sqrt(d);
}

/* One ok line for a list of (name, CPU result, emulated result). */
struct cmp {
	const char *name;
	vec cpu, emu;
};

static void check(const char *what, std::initializer_list<cmp> l)
{
	char buf[512];
	int n = 0, good = 1;

	for (const cmp &c : l) {
		double e = rel_l2(c.cpu, c.emu);

		good &= c.cpu.size() == c.emu.size() && e <= tol;
		n += snprintf(buf + n, sizeof(buf) - n, "%s%s %.1e", n ? ", " : "", c.name, e);
	}
	ok(good, "%s (" ACT_NAME "): %s; tolerance %.0e", what, buf, tol);
}

enum { B = 2, T = 19, N = B * T, C = 48, NH = 4, VP = 23 };

static void embeddings(void)
{
	std::vector<int> ids(N);
	vec wte = rnd((size_t)VP * C, 1, 1), wpe = rnd((size_t)T * C, 2, 1);
	vec out(N * C), dout = rnd(N * C, 3, 2), dwte = rnd(wte.size(), 4, 1);
	vec dwpe = rnd(wpe.size(), 5, 1), dwte2 = dwte, dwpe2 = dwpe;
	std::vector<eact> eout(N * C), edout = E(dout);

	for (int i = 0; i < N; i++)
		ids[i] = (i * 7) % 5 + (i % 3) * 6;	/* repeated ids: the buckets */
	encoder_forward(out.data(), ids.data(), wte.data(), wpe.data(), B, T, C);
	emu_encoder_forward(eout.data(), ids.data(), wte.data(), wpe.data(), B, T, C);
	encoder_backward(dwte.data(), dwpe.data(), dout.data(), ids.data(), B, T, C);
	emu_encoder_backward(dwte2.data(), dwpe2.data(), edout.data(), ids.data(), B, T, C);
	check("encoder forward and backward",
	      { { "out", out, F(eout) }, { "dwte", dwte, dwte2 }, { "dwpe", dwpe, dwpe2 } });
}

static void layernorm(void)
{
	vec x = rnd(N * C, 6, 4), w = rnd(C, 7, 2), b = rnd(C, 8, 1), out(N * C), mean(N), rstd(N);
	vec m2(N), r2(N), dout = rnd(N * C, 9, 2), dinp = rnd(N * C, 10, 1);
	vec dw = rnd(C, 11, 1), db = rnd(C, 12, 1), dw2 = dw, db2 = db;
	std::vector<eact> ex = E(x), eout(N * C), edout = E(dout), edinp = E(dinp);

	layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C);
	emu_layernorm_forward(eout.data(), m2.data(), r2.data(), ex.data(), w.data(), b.data(), N,
			      C);
	check("layernorm forward", { { "out", out, F(eout) }, { "mean", mean, m2 },
				     { "rstd", rstd, r2 } });
	layernorm_backward(dinp.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(),
			   mean.data(), rstd.data(), N, C);
	emu_layernorm_backward(edinp.data(), dw2.data(), db2.data(), edout.data(), ex.data(),
			       w.data(), mean.data(), rstd.data(), N, C);
	check("layernorm backward",
	      { { "dinp", dinp, F(edinp) }, { "dw", dw, dw2 }, { "db", db, db2 } });
}

static void elementwise(void)
{
	const size_t n = N * C;
	vec x = rnd(n, 13, 8), y = rnd(n, 14, 2), out(n), dinp = rnd(n, 15, 1), res(n);
	std::vector<eact> ex = E(x), ey = E(y), eout(n), edinp = E(dinp), eres(n);
	vec d = y, g = rnd(n, 16, 1);
	std::vector<eact> ed = E(d);

	gelu_forward(out.data(), x.data(), n);
	emu_gelu_forward(eout.data(), ex.data(), n);
	gelu_backward(dinp.data(), x.data(), y.data(), n);
	emu_gelu_backward(edinp.data(), ex.data(), ey.data(), n);
	residual_forward(res.data(), x.data(), y.data(), n);
	emu_residual_forward(eres.data(), ex.data(), ey.data(), n);
	check("gelu forward, backward; residual",
	      { { "gelu", out, F(eout) }, { "dinp", dinp, F(edinp) },
		{ "residual", res, F(eres) } });

	dropout_forward(d.data(), n, 0.2f, 77);
	emu_dropout_forward(ed.data(), n, 0.2f, 77);
	vec dfw = d, dd = F(ed);
	dropout_backward(d.data(), n, 0.3f, 78);
	emu_dropout_backward(ed.data(), n, 0.3f, 78);
	vec dx = y;
	std::vector<eact> edx = E(y);

	scale_inplace(dx.data(), n, -1.5f);
	emu_scale_act_inplace(edx.data(), n, -1.5f);
	check("dropout forward, backward; scaling",
	      { { "forward", dfw, dd }, { "backward", d, F(ed) },
		{ "scale", dx, F(edx) } });
	/* the forward's mask alone, exactly: the same kept elements */
	vec d0 = y;
	std::vector<eact> ed0 = E(y);
	size_t same = 0;

	dropout_forward(d0.data(), n, 0.2f, 77);
	emu_dropout_forward(ed0.data(), n, 0.2f, 77);
	for (size_t i = 0; i < n; i++)
		same += (d0[i] == 0) == ((float)ed0[i] == 0);
	ok(same == n, "dropout (" ACT_NAME "): the same elements dropped (%zu of %zu agree)",
	   same, n);
	double s1 = sumsq(g.data(), n), s2 = emu_sumsq(g.data(), n);

	ok(fabs(s1 - s2) <= 1e-12 * s1, "sumsq: %.17g and %.17g", s1, s2);
}

static void rmlp(int mixer)
{
	const int Ds = 40, Rr = 9, Dff = Ds + Rr;
	const float s_std = 0.8f, s_low = 0.3f, w_rec = 0.6f, gate = 0.5f;
	vec pre = rnd((size_t)N * Dff, 20, 6), h((size_t)N * Dff), u((size_t)N * Rr);
	std::vector<eact> epre = E(pre), eh((size_t)N * Dff), eu((size_t)N * Rr);
	vec dh = rnd((size_t)N * Dff, 21, 2), du = rnd((size_t)N * Rr, 22, 2);
	std::vector<eact> edh = E(dh), edu = E(du);
	vec dfcb = rnd(Dff, 23, 1), dfcb2 = dfcb, sc = { 0.1f, 0.2f, 0.3f }, sc2 = sc;
	char what[64];

	if (!mixer) {		/* no mixer: u is not written */
		std::fill(u.begin(), u.end(), 0.0f);
		eu = E(u);
	}
	rmlp_act_forward(h.data(), u.data(), pre.data(), s_std, s_low, N, Ds, Rr, mixer);
	emu_rmlp_act_forward(eh.data(), eu.data(), epre.data(), s_std, s_low, N, Ds, Rr, mixer);
	rmlp_act_backward(dh.data(), dfcb.data(), &sc[0], &sc[1], &sc[2], pre.data(),
			  mixer ? du.data() : NULL, s_std, s_low, w_rec, gate, N, Ds, Rr);
	emu_rmlp_act_backward(edh.data(), dfcb2.data(), &sc2[0], &sc2[1], &sc2[2], epre.data(),
			      mixer ? edu.data() : NULL, s_std, s_low, w_rec, gate, N, Ds, Rr);
	snprintf(what, sizeof(what), "R-MLP passes, mixer %d", mixer);
	/* where mixer is 0 the forward leaves h's reciprocal part to itself */
	check(what, { { "h", h, F(eh) }, { "u", u, F(eu) }, { "dpre", dh, F(edh) },
		      { "dfcb", dfcb, dfcb2 }, { "dw_std dw_rec dgate", sc, sc2 } });
}

static void rattn(int stride)
{
	const int R = 3, n3 = N * 3 * C, ng = stride ? NH : 1;
	vec w_std = rnd(ng, 30, 0.5f), w_rec = rnd(ng, 31, 0.5f), alpha = rnd(NH, 32, 0.6f);
	vec qkv = rnd(n3, 33, 3), dqkv = rnd(n3, 34, 2), y = rnd(N * C, 35, 2), out(N * C);
	vec dout = rnd(N * C, 36, 2), g = rnd(3 * NH, 37, 1), g2 = g;
	char what[64];

	for (int h = 0; h < ng; h++) {		/* gates in (0.25, 0.75) */
		w_std[h] += 0.5f;
		w_rec[h] += 0.5f;
	}
	for (auto &a : alpha)
		a += 0.3f;
	std::vector<eact> eqkv = E(qkv), edqkv = E(dqkv), ey = E(y), eout(N * C), edout = E(dout);

	rattn_scale_forward(qkv.data(), w_std.data(), w_rec.data(), stride, N, C, NH, R);
	emu_rattn_scale_forward(eqkv.data(), w_std.data(), w_rec.data(), stride, N, C, NH, R);
	rattn_scale_backward(dqkv.data(), &g[0], &g[NH], qkv.data(), w_std.data(), w_rec.data(),
			     stride, N, C, NH, R);
	emu_rattn_scale_backward(edqkv.data(), &g2[0], &g2[NH], eqkv.data(), w_std.data(),
				 w_rec.data(), stride, N, C, NH, R);
	snprintf(what, sizeof(what), "RA scaling, gates per %s", stride ? "head" : "layer");
	check(what, { { "qkv", qkv, F(eqkv) }, { "dqkv", dqkv, F(edqkv) },
		      { "dw", vec(g.begin(), g.begin() + 2 * NH),
			vec(g2.begin(), g2.begin() + 2 * NH) } });
	if (!stride)
		return;
	rattn_restart_forward(out.data(), y.data(), qkv.data(), alpha.data(), N, C, NH);
	emu_rattn_restart_forward(eout.data(), ey.data(), eqkv.data(), alpha.data(), N, C, NH);
	rattn_restart_backward(dqkv.data(), &g[2 * NH], dout.data(), y.data(), qkv.data(),
			       alpha.data(), N, C, NH);
	emu_rattn_restart_backward(edqkv.data(), &g2[2 * NH], edout.data(), ey.data(), eqkv.data(),
				   alpha.data(), N, C, NH);
	check("RA self-restart", { { "out", out, F(eout) }, { "dqkv", dqkv, F(edqkv) },
				   { "dy", dout, F(edout) },
				   { "dalpha", vec(g.begin() + 2 * NH, g.end()),
				     vec(g2.begin() + 2 * NH, g2.end()) } });
}

int main(void)
{
	embeddings();
	layernorm();
	elementwise();
	rmlp(0);
	rmlp(1);
	rattn(1);
	rattn(0);
	return tap_done();
}
