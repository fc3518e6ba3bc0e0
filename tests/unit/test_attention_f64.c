// SPDX-License-Identifier: MIT
/*
 * attention_forward / attention_backward in float64: against a naive
 * reference that materialises the (T, T) scores of every head, and
 * central finite differences of a scalar loss, with and without dropout.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kernels/kernels.h"
#include "kgpt/rng.h"
#include "tests/tap.h"
#include "tests/util.h"

/* Naive forward and backward of one head, with the (T, T) matrix. */
struct ref_shape {
	int B, T, C, NH, hs;
	float p;
	uint64_t seed;
};

static real ref_z(const struct ref_shape *s, int bh, int i, int j)
{
	uint64_t idx = ((uint64_t)bh * s->T + i) * s->T + j;

	if (s->p <= 0)
		return 1;
	return kgpt_dropout_keep(s->seed, idx, s->p) ? 1 / (1 - (real)s->p) : 0;
}

/* P (T, T) of head bh and the log-sum-exp of each row. */
static void ref_probs(real *P, real *lse, const real *qkv, const struct ref_shape *s, int bh)
{
	int b = bh / s->NH, h = bh % s->NH, T = s->T, C = s->C;
	real scale = 1 / sqrt((real)s->hs);

	for (int i = 0; i < T; i++) {
		const real *q = qkv + ((size_t)b * T + i) * 3 * C + h * s->hs;
		real mx = -INFINITY, sum = 0;

		for (int j = 0; j < T; j++) {
			const real *k = qkv + ((size_t)b * T + j) * 3 * C + C + h * s->hs;
			real d = 0;

			for (int t = 0; t < s->hs; t++)
				d += q[t] * k[t];
			P[i * T + j] = j <= i ? d * scale : -INFINITY;
			if (P[i * T + j] > mx)
				mx = P[i * T + j];
		}
		for (int j = 0; j < T; j++) {
			P[i * T + j] = exp(P[i * T + j] - mx);
			sum += P[i * T + j];
		}
		for (int j = 0; j < T; j++)
			P[i * T + j] /= sum;
		lse[i] = mx + log(sum);
	}
}

static void ref_forward(real *out, real *lse, const real *qkv, const struct ref_shape *s)
{
	int T = s->T, C = s->C;
	real *P = malloc(sizeof(real) * T * T);

	for (int bh = 0; bh < s->B * s->NH; bh++) {
		int b = bh / s->NH, h = bh % s->NH;

		ref_probs(P, lse + (size_t)bh * T, qkv, s, bh);
		for (int i = 0; i < T; i++) {
			real *o = out + ((size_t)b * T + i) * C + h * s->hs;

			for (int t = 0; t < s->hs; t++) {
				real acc = 0;

				for (int j = 0; j < T; j++)
					acc += P[i * T + j] * ref_z(s, bh, i, j) *
					       qkv[((size_t)b * T + j) * 3 * C + 2 * C + h * s->hs + t];
				o[t] = acc;
			}
		}
	}
	free(P);
}

/* dqkv += d(sum dout * out)/dqkv, by the textbook formulas on (T, T). */
static void ref_backward(real *dqkv, const real *dout, const real *qkv, const struct ref_shape *s)
{
	int T = s->T, C = s->C, hs = s->hs;
	real *P = malloc(sizeof(real) * T * T), *dP = malloc(sizeof(real) * T * T);
	real *lse = malloc(sizeof(real) * T);
	real scale = 1 / sqrt((real)hs);

	for (int bh = 0; bh < s->B * s->NH; bh++) {
		int b = bh / s->NH, h = bh % s->NH;
#define Q(i) (qkv + ((size_t)b * T + (i)) * 3 * C + h * hs)
#define DQ(i) (dqkv + ((size_t)b * T + (i)) * 3 * C + h * hs)
		ref_probs(P, lse, qkv, s, bh);
		for (int i = 0; i < T; i++) {
			const real *go = dout + ((size_t)b * T + i) * C + h * hs;
			real rs = 0;

			for (int j = 0; j < T; j++) {
				real z = ref_z(s, bh, i, j), d = 0;

				for (int t = 0; t < hs; t++) {
					d += go[t] * Q(j)[2 * C + t];
					DQ(j)[2 * C + t] += P[i * T + j] * z * go[t];
				}
				dP[i * T + j] = d * z;
				rs += P[i * T + j] * dP[i * T + j];
			}
			for (int j = 0; j < T; j++) {
				real ds = P[i * T + j] * (dP[i * T + j] - rs) * scale;

				for (int t = 0; t < hs; t++) {
					DQ(i)[t] += ds * Q(j)[C + t];
					DQ(j)[C + t] += ds * Q(i)[t];
				}
			}
		}
#undef Q
#undef DQ
	}
	free(P);
	free(dP);
	free(lse);
}

static real loss_of(const real *qkv, const real *w, const struct ref_shape *s,
		    real *out, real *lse)
{
	real L = 0;
	size_t n = (size_t)s->B * s->T * s->C;

	attention_forward(out, lse, qkv, s->B, s->T, s->C, s->NH, s->p, s->seed);
	for (size_t i = 0; i < n; i++)
		L += w[i] * out[i];
	return L;
}

static void check_case(int B, int T, int C, int NH, float p, uint64_t seed)
{
	struct ref_shape s = { B, T, C, NH, C / NH, p, seed };
	size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, nl = (size_t)B * NH * T;
	real *qkv = malloc(sizeof(real) * nq), *w = malloc(sizeof(real) * no);
	real *out = malloc(sizeof(real) * no), *lse = malloc(sizeof(real) * nl);
	real *rout = malloc(sizeof(real) * no), *rlse = malloc(sizeof(real) * nl);
	real *dqkv = malloc(sizeof(real) * nq), *rdqkv = calloc(nq, sizeof(real));
	real *tmp = malloc(sizeof(real) * no), *tl = malloc(sizeof(real) * nl);
	struct kgpt_rng rng;
	double fd_err = 0, fd_max = 0;

	kgpt_rng_seed(&rng, 1000 + T + p * 10);
	fill_normal(qkv, nq, &rng, 1.0);
	fill_normal(w, no, &rng, 1.0);

	attention_forward(out, lse, qkv, B, T, C, NH, p, seed);
	ref_forward(rout, rlse, qkv, &s);
	ok(max_abs_diff(out, rout, no) < 1e-12,
	   "B%d T%d C%d NH%d p%.2f: forward equals the naive (T,T) reference (%.2e)",
	   B, T, C, NH, p, max_abs_diff(out, rout, no));
	ok(max_abs_diff(lse, rlse, nl) < 1e-12,
	   "B%d T%d p%.2f: lse equals the naive log-sum-exp (%.2e)", B, T, p,
	   max_abs_diff(lse, rlse, nl));

	/* backward accumulates: start from 1, compare after subtracting */
	for (size_t i = 0; i < nq; i++)
		dqkv[i] = 1;
	attention_backward(dqkv, w, qkv, out, lse, B, T, C, NH, p, seed);
	for (size_t i = 0; i < nq; i++)
		dqkv[i] -= 1;
	ref_backward(rdqkv, w, qkv, &s);
	ok(max_abs_diff(dqkv, rdqkv, nq) < 1e-11,
	   "B%d T%d p%.2f: dqkv (accumulated) equals the naive backward (%.2e)", B, T, p,
	   max_abs_diff(dqkv, rdqkv, nq));

	/* central differences on every element of qkv */
	for (size_t i = 0; i < nq; i++) {
		real x = qkv[i], h = 1e-5, lp, lm, fd;

		qkv[i] = x + h;
		lp = loss_of(qkv, w, &s, tmp, tl);
		qkv[i] = x - h;
		lm = loss_of(qkv, w, &s, tmp, tl);
		qkv[i] = x;
		fd = (lp - lm) / (2 * h);
		if (fabs(fd - dqkv[i]) > fd_err)
			fd_err = fabs(fd - dqkv[i]);
		if (fabs(fd) > fd_max)
			fd_max = fabs(fd);
	}
	ok(fd_err < 1e-7 * (1 + fd_max),
	   "B%d T%d p%.2f: dqkv matches central differences on all %zu inputs (max err %.2e)",
	   B, T, p, nq, fd_err);

	free(qkv); free(w); free(out); free(lse); free(rout); free(rlse);
	free(dqkv); free(rdqkv); free(tmp); free(tl);
}

/* Rows can be fully dominated: -INFINITY masking must not leak. */
static void check_extreme(void)
{
	int B = 1, T = 70, C = 8, NH = 2;
	size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
	real *qkv = malloc(sizeof(real) * nq), *out = malloc(sizeof(real) * no);
	real *lse = malloc(sizeof(real) * B * NH * T);
	struct kgpt_rng rng;
	int bad = 0;

	kgpt_rng_seed(&rng, 7);
	fill_normal(qkv, nq, &rng, 30.0);	/* scores of order 1e3 */
	attention_forward(out, lse, qkv, B, T, C, NH, 0, 0);
	for (size_t i = 0; i < no; i++)
		bad += !isfinite(out[i]);
	/* output 0 sees only key 0: out = v_0 exactly */
	for (int h = 0; h < NH; h++)
		for (int t = 0; t < C / NH; t++)
			bad += out[h * (C / NH) + t] != qkv[2 * C + h * (C / NH) + t];
	ok(!bad, "large scores: finite outputs, first row is exactly v_0");
	free(qkv); free(out); free(lse);
}

int main(void)
{
	check_case(1, 1, 4, 1, 0, 0);
	check_case(2, 7, 12, 3, 0, 0);
	check_case(2, 70, 16, 2, 0, 0);		/* two query blocks */
	check_case(1, 130, 8, 2, 0, 0);		/* three, last partial */
	check_case(2, 70, 16, 2, 0.25f, 12345);
	check_case(1, 5, 8, 2, 0.5f, 99);
	check_extreme();
	return tap_done();
}
