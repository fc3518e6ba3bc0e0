// SPDX-License-Identifier: MIT
/*
 * attention_forward / attention_backward in float32 (the trainer's build:
 * vectorised exponential, register-blocked products, several threads)
 * against a float64 reference that materialises the (T, T) scores.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kernels/kernels.h"
#include "kgpt/rng.h"
#include "tests/tap.h"

struct shape {
	int B, T, C, NH;
	float p;
	uint64_t seed;
};

static double zscale(const struct shape *s, int bh, int i, int j)
{
	uint64_t idx = ((uint64_t)bh * s->T + i) * s->T + j;

	if (s->p <= 0)
		return 1;
	return kgpt_dropout_keep(s->seed, idx, s->p) ? 1 / (1 - (double)s->p) : 0;
}

/* out, lse and dqkv (+=) of sum(dout * out), in double. */
static void reference(double *out, double *lse, double *dqkv, const float *qkv,
		      const float *dout, const struct shape *s)
{
	int T = s->T, C = s->C, hs = C / s->NH;
	double *P = malloc(sizeof(double) * T * T), sc = 1 / sqrt((double)hs);
	double *dP = malloc(sizeof(double) * T);

	for (int bh = 0; bh < s->B * s->NH; bh++) {
		int b = bh / s->NH, h = bh % s->NH;
#define X(i, part, t) ((double)qkv[((size_t)b * T + (i)) * 3 * C + (part) * C + h * hs + (t)])
#define DX(i, part, t) dqkv[((size_t)b * T + (i)) * 3 * C + (part) * C + h * hs + (t)]
		for (int i = 0; i < T; i++) {
			double mx = -INFINITY, sum = 0, D = 0;
			const float *go = dout + ((size_t)b * T + i) * C + h * hs;

			for (int j = 0; j <= i; j++) {
				double d = 0;

				for (int t = 0; t < hs; t++)
					d += X(i, 0, t) * X(j, 1, t);
				P[i * T + j] = d * sc;
				mx = fmax(mx, P[i * T + j]);
			}
			for (int j = 0; j <= i; j++)
				sum += exp(P[i * T + j] - mx);
			lse[bh * T + i] = mx + log(sum);
			for (int t = 0; t < hs; t++)
				out[((size_t)b * T + i) * C + h * hs + t] = 0;
			for (int j = 0; j <= i; j++) {
				double p = exp(P[i * T + j] - mx) / sum, z = zscale(s, bh, i, j), d = 0;

				P[i * T + j] = p;
				for (int t = 0; t < hs; t++) {
					out[((size_t)b * T + i) * C + h * hs + t] += p * z * X(j, 2, t);
					d += go[t] * X(j, 2, t);
					DX(j, 2, t) += p * z * go[t];
				}
				dP[j] = d * z;
				D += p * dP[j];
			}
			for (int j = 0; j <= i; j++) {
				double ds = P[i * T + j] * (dP[j] - D) * sc;

				for (int t = 0; t < hs; t++) {
					DX(i, 0, t) += ds * X(j, 1, t);
					DX(j, 1, t) += ds * X(i, 0, t);
				}
			}
		}
#undef X
#undef DX
	}
	free(P);
	free(dP);
}

static double rel_err(const float *got, const double *want, size_t n)
{
	double e = 0, m = 0;

	for (size_t i = 0; i < n; i++) {
		e = fmax(e, fabs(got[i] - want[i]));
		m = fmax(m, fabs(want[i]));
	}
	return e / (m > 0 ? m : 1);
}

static void check(int B, int T, int C, int NH, float p, uint64_t seed, float sd)
{
	struct shape s = { B, T, C, NH, p, seed };
	size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, nl = (size_t)B * NH * T;
	float *qkv = malloc(4 * nq), *dout = malloc(4 * no), *out = malloc(4 * no);
	float *lse = malloc(4 * nl), *dqkv = calloc(nq, 4);
	double *rout = malloc(8 * no), *rlse = malloc(8 * nl), *rd = calloc(nq, 8);
	double le = 0;
	struct kgpt_rng rng;

	kgpt_rng_seed(&rng, 99 + T);
	for (size_t i = 0; i < nq; i++)
		qkv[i] = sd * kgpt_rng_normal(&rng);
	for (size_t i = 0; i < no; i++)
		dout[i] = kgpt_rng_normal(&rng);
	attention_forward(out, lse, qkv, B, T, C, NH, p, seed);
	attention_backward(dqkv, dout, qkv, out, lse, B, T, C, NH, p, seed);
	reference(rout, rlse, rd, qkv, dout, &s);
	for (size_t i = 0; i < nl; i++)
		le = fmax(le, fabs(lse[i] - rlse[i]) / (1 + fabs(rlse[i])));
	ok(rel_err(out, rout, no) < 2e-6 && le < 1e-6,
	   "float32 B%d T%d C%d NH%d p%.2f sd %.1f: out (%.1e) and lse (%.1e) match float64",
	   B, T, C, NH, p, sd, rel_err(out, rout, no), le);
	ok(rel_err(dqkv, rd, nq) < 2e-5,
	   "float32 B%d T%d C%d NH%d p%.2f sd %.1f: dqkv matches float64 (%.1e)",
	   B, T, C, NH, p, sd, rel_err(dqkv, rd, nq));
	free(qkv); free(dout); free(out); free(lse); free(dqkv); free(rout); free(rlse);
	free(rd);
}

int main(void)
{
	check(2, 200, 128, 2, 0, 0, 1.0f);	/* hs 64, threads, partial block */
	check(1, 67, 96, 3, 0, 0, 1.0f);	/* hs 32, odd T */
	check(2, 131, 120, 5, 0, 0, 1.0f);	/* hs 24: padded panels */
	check(1, 130, 64, 2, 0.1f, 42, 1.0f);	/* dropout */
	check(3, 64, 48, 4, 0, 0, 3.0f);	/* peaked softmax */
	return tap_done();
}
