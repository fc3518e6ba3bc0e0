// SPDX-License-Identifier: MIT
/*
 * Causal multi-head self-attention (Vaswani et al. 2017), forward and
 * backward, memory-efficient in the manner of FlashAttention (Dao et al.
 * 2022): the (B,NH,T,T) probabilities are never stored. Forward keeps the
 * log-sum-exp of each query row; backward recomputes the probabilities
 * from it.
 *
 * Work split: one task per (b, h) pair, scheduled dynamically over the
 * OpenMP team. A task owns the q, k, v columns of its head in qkv (and the
 * same columns of dqkv), so no two threads ever write the same element.
 * Within a task, queries go in blocks of ATT_BQ rows: the scores of a
 * block against the keys it can see, (ATT_BQ, i0 + ATT_BQ), are one matrix
 * product into a per-thread scratch, the softmax runs on it in place, one
 * more product multiplies by V. Each thread allocates its scratch once per
 * call (about 2.6 MiB at T = 1024, hs = 64 in float32, 3.1 MiB for the
 * pruned backward, see scratch_alloc()); nothing of size T^2 exists.
 *
 * Masking is by -INFINITY (exp gives exactly 0), never by a large finite
 * negative number, so a masked key has probability 0 whatever its score.
 *
 * Backward, per query block (P = probabilities, Z = dropout scale of each
 * element, O = forward output, D_i = rowsum(dO * O)_i):
 *   dV += (P Z)^T dO,  dP = (dO V^T) Z,  dS = P (dP - D),
 *   dQ += scale dS K,  dK += scale dS^T Q.
 * D_i = sum_j P_ij dP_ij holds with dropout too, since O = (P Z) V.
 *
 * The matrix products are small (one side is a head, 64 wide) and run one
 * per thread, so they use the register-blocked product below rather than
 * the BLAS: it reads K^T and V packed once per head instead of once per
 * query block, and skips the tiles that the causal mask zeroes.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kgpt/rng.h"
#include "kernels/kernels.h"
#include "kernels/cpu/kutil.h"

/* The 32-byte vector helpers below are static; without -mavx gcc warns
 * that returning such vectors would change a public ABI, which none is. */
#pragma GCC diagnostic ignored "-Wpsabi"

/* Queries per block. */
#ifndef ATT_BQ
#define ATT_BQ	64
#endif

/* Below this many multiply-adds (B NH T^2 hs / 2) one thread does it all:
 * waking the team would cost more than it saves. */
#define ATT_PAR_MIN	(1 << 20)

/* ---------------------------------------------------------------------- */
/* Register-blocked matrix product, C (m, n) = alpha A B (+ C).           */

#ifdef KGPT_F64
#define VN	4
#define VBC(s)	((vreal){ s, s, s, s })
#else
#define VN	8
#define VBC(s)	((vreal){ s, s, s, s, s, s, s, s })
#endif
typedef real vreal __attribute__((vector_size(VN * sizeof(real))));

#define MR	6		/* rows of a register tile */
#define NR	(2 * VN)	/* columns of a register tile = of a B panel */
#define KC	256		/* depth of one pass, keeps a B panel in L1 */

static inline vreal vload(const real *p)
{
	vreal v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/*
 * C tile (mr <= MR, nr <= NR) = alpha * sum_p a(r, p) b(p, :) (+ C if beta).
 * a(r, p) = a[r ars + p acs]; b: kc rows of NR contiguous reals (a packed
 * panel). Rows past mr repeat the last one and are not stored.
 */
static void tile(int kc, const real *a, int ars, int acs, const real *b, real *c,
		 int ldc, real alpha, int beta, int mr, int nr)
{
	const real *a0 = a, *a1 = a + (mr > 1 ? 1 : 0) * ars;
	const real *a2 = a + (mr > 2 ? 2 : mr - 1) * ars, *a3 = a + (mr > 3 ? 3 : mr - 1) * ars;
	const real *a4 = a + (mr > 4 ? 4 : mr - 1) * ars, *a5 = a + (mr > 5 ? 5 : mr - 1) * ars;
	vreal c00 = { 0 }, c01 = { 0 }, c10 = { 0 }, c11 = { 0 }, c20 = { 0 }, c21 = { 0 };
	vreal c30 = { 0 }, c31 = { 0 }, c40 = { 0 }, c41 = { 0 }, c50 = { 0 }, c51 = { 0 };
	vreal t[MR][2];
	size_t o = 0;

	for (int p = 0; p < kc; p++, o += acs, b += NR) {
		vreal b0 = vload(b), b1 = vload(b + VN), x;

		x = VBC(a0[o]);
		c00 += x * b0;
		c01 += x * b1;
		x = VBC(a1[o]);
		c10 += x * b0;
		c11 += x * b1;
		x = VBC(a2[o]);
		c20 += x * b0;
		c21 += x * b1;
		x = VBC(a3[o]);
		c30 += x * b0;
		c31 += x * b1;
		x = VBC(a4[o]);
		c40 += x * b0;
		c41 += x * b1;
		x = VBC(a5[o]);
		c50 += x * b0;
		c51 += x * b1;
	}
	t[0][0] = c00, t[0][1] = c01, t[1][0] = c10, t[1][1] = c11;
	t[2][0] = c20, t[2][1] = c21, t[3][0] = c30, t[3][1] = c31;
	t[4][0] = c40, t[4][1] = c41, t[5][0] = c50, t[5][1] = c51;
	for (int r = 0; r < mr; r++) {
		const real *tr = (const real *)t[r];
		real *cr = c + (size_t)r * ldc;

		if (beta) {
#pragma omp simd
			for (int j = 0; j < nr; j++)
				cr[j] += alpha * tr[j];
		} else {
#pragma omp simd
			for (int j = 0; j < nr; j++)
				cr[j] = alpha * tr[j];
		}
	}
}

/* A packed B (k, n): ceil(n / NR) panels of (k, NR), zero padded; row r
 * of panel q starts at p + q * ps + r * NR. */
struct panels {
	real *p;
	size_t ps;
};

/*
 * Causal trimming, for products whose row r is query row0 + r:
 *  TRIM_COLS: column j is key j; tiles entirely above the diagonal
 *             (j > row0 + r for all their elements) are not computed.
 *  TRIM_DEPTH: the depth index p is key p and A is 0 for p > row0 + r;
 *             the sum stops at the diagonal.
 */
enum { TRIM_NONE, TRIM_COLS, TRIM_DEPTH };

struct gemm_args {
	int m, n, k;
	real alpha;
	const real *A;
	int ars, acs;
	const struct panels *B;
	int beta;
	real *C;
	int ldc;
	int trim, row0;
};

static void tile_call(const struct gemm_args *g, int i, int j, int p0, int kc)
{
	int mr = g->m - i < MR ? g->m - i : MR, nr = g->n - j < NR ? g->n - j : NR;

	if (g->trim == TRIM_COLS && j > g->row0 + i + mr - 1)
		return;
	if (g->trim == TRIM_DEPTH) {
		int lim = g->row0 + i + mr - p0;

		if (lim <= 0 && p0)
			return;
		kc = kc < lim ? kc : (lim > 0 ? lim : 0);
	}
	tile(kc, g->A + (size_t)i * g->ars + (size_t)p0 * g->acs, g->ars, g->acs,
	     g->B->p + (size_t)(j / NR) * g->B->ps + (size_t)p0 * NR,
	     g->C + (size_t)i * g->ldc + j, g->ldc, g->alpha, g->beta || p0, mr, nr);
}

/* C (m, n) = alpha A B + (beta ? C : 0), in passes of KC over the depth. */
static void gemm_pk(const struct gemm_args *g)
{
	for (int p0 = 0; p0 < g->k || p0 == 0; p0 += KC) {
		int kc = g->k - p0 < KC ? g->k - p0 : KC;

		if (g->n <= 4 * NR) {	/* narrow: a row tile meets all panels */
			for (int i = 0; i < g->m; i += MR)
				for (int j = 0; j < g->n; j += NR)
					tile_call(g, i, j, p0, kc);
		} else {		/* wide: a panel meets all row tiles */
			for (int j = 0; j < g->n; j += NR)
				for (int i = 0; i < g->m; i += MR)
					tile_call(g, i, j, p0, kc);
		}
	}
}

/*
 * Pack B = X (k rows, n columns) into panels; row p of X is
 * src + (idx ? idx[p] : p) * ld.
 */
static void pack_rows(struct panels *d, const real *src, int ld, const int *idx, int k, int n)
{
	for (int j = 0; j < n; j += NR) {
		real *o = d->p + (size_t)(j / NR) * d->ps;
		int w = n - j < NR ? n - j : NR;

		for (int p = 0; p < k; p++, o += NR) {
			const real *s = src + (size_t)(idx ? idx[p] : p) * ld + j;

			if (w == NR) {
				memcpy(o, s, NR * sizeof(real));
				continue;
			}
			memcpy(o, s, (size_t)w * sizeof(real));
			memset(o + w, 0, (size_t)(NR - w) * sizeof(real));
		}
	}
}

/*
 * Pack B = X^T (k rows, n columns) where X is (n, k) with row j at
 * src + (idx ? idx[j] : j) * ld: e.g. K^T from the rows of K.
 */
static void pack_trans(struct panels *d, const real *src, int ld, const int *idx, int n, int k)
{
	for (int j = 0; j < n; j += NR) {
		real *o = d->p + (size_t)(j / NR) * d->ps;
		int w = n - j < NR ? n - j : NR;

		for (int t = 0; t < NR; t++) {
			const real *s = t < w ? src + (size_t)(idx ? idx[j + t] : j + t) * ld : NULL;

			for (int p = 0; p < k; p++)
				o[(size_t)p * NR + t] = s ? s[p] : 0;
		}
	}
}

/* ---------------------------------------------------------------------- */
/* Row primitives: max, exp(x - c) with its sum, dot product. */

static real row_dot(const real *a, const real *b, int n)
{
	real s = 0;

#pragma omp simd reduction(+:s)
	for (int j = 0; j < n; j++)
		s += a[j] * b[j];
	return s;
}

#ifdef KGPT_F64
/* P[j] = e^(P[j] - c), dS[j] = P[j] (dS[j] - D), j < n. */
static void row_exp_ds(real *P, real *dS, int n, real c, real D)
{
	for (int j = 0; j < n; j++) {
		P[j] = exp(P[j] - c);
		dS[j] = P[j] * (dS[j] - D);
	}
}
#else
/* P[j] = e^(P[j] - c), dS[j] = P[j] (dS[j] - D), j < n. */
static void row_exp_ds(real *P, real *dS, int n, real c, real D)
{
	float tp[VN], td[VN];
	vreal e, d;
	int j;

	for (j = 0; j + VN <= n; j += VN) {
		e = vload(P + j) - c;
		e = kvexp(&e);
		d = e * (vload(dS + j) - D);
		memcpy(P + j, &e, sizeof(e));
		memcpy(dS + j, &d, sizeof(d));
	}
	if (j < n) {
		for (int t = 0; t < VN; t++) {
			tp[t] = j + t < n ? P[j + t] : -INFINITY;
			td[t] = j + t < n ? dS[j + t] : 0;
		}
		e = vload(tp) - c;
		e = kvexp(&e);
		d = e * (vload(td) - D);
		memcpy(P + j, &e, (size_t)(n - j) * sizeof(float));
		memcpy(dS + j, &d, (size_t)(n - j) * sizeof(float));
	}
}
#endif

/*
 * Unnormalised softmax of the scores x[0..L) in place: x[j] = e^(x[j] -
 * max); x[L..n) are masked and set to 0. Returns the log-sum-exp and in
 * *inv the normalisation 1 / sum (applied to the output row instead).
 */
static real softmax_row(real *x, int L, int n, real *inv)
{
	real mx = kmax(x, L);
	real sum = kexp_sum(x, L, mx);

	*inv = R(1.0) / sum;
	memset(x + L, 0, (size_t)(n - L) * sizeof(real));
	return mx + rlog(sum);
}

/* Inverted dropout on one row of probabilities: element j of the row is
 * element base + j of the (B,NH,T,T) mask. */
static void dropout_row(real *x, int n, uint64_t seed, uint64_t base, float p)
{
	real sc = R(1.0) / (R(1.0) - (real)p);

	for (int j = 0; j < n; j++)
		x[j] = kgpt_dropout_keep(seed, base + j, p) ? x[j] * sc : 0;
}

/* ---------------------------------------------------------------------- */

struct att_shape {
	int B, T, C, NH, hs, C3;
	int Tp, hsp;	/* T, hs rounded up to NR */
	int ldS;	/* row stride of the score scratch */
	real scale;
};

static int round_up(int x, int a)
{
	return (x + a - 1) / a * a;
}

static void att_shape_init(struct att_shape *s, int B, int T, int C, int NH)
{
	s->B = B;
	s->T = T;
	s->C = C;
	s->NH = NH;
	s->hs = C / NH;
	s->C3 = 3 * C;
	s->Tp = round_up(T, NR);
	s->hsp = round_up(s->hs, NR);
	/* one extra panel: rows 4 KiB apart would share L1 sets */
	s->ldS = s->Tp + NR;
	s->scale = R(1.0) / rsqrt_((real)s->hs);
}

static int att_parallel(const struct att_shape *s)
{
	return (double)s->B * s->NH * s->T * s->T * s->hs / 2 >= ATT_PAR_MIN;
}

/* Columns of head h in row 0 of sequence b: q, and k = q + C, v = q + 2C. */
static size_t qkv_off(const struct att_shape *s, int bh)
{
	return (size_t)(bh / s->NH) * s->T * s->C3 + (size_t)(bh % s->NH) * s->hs;
}

static size_t out_off(const struct att_shape *s, int bh)
{
	return (size_t)(bh / s->NH) * s->T * s->C + (size_t)(bh % s->NH) * s->hs;
}

/*
 * Per-thread scratch, allocated once per call:
 *   S, dS      (ATT_BQ, ldS)   scores / probabilities, dP / dS
 *   Kt, Vt     (hs, Tp)        K^T, V^T panels (S = Q K^T, dP = dO V^T)
 *   Kr, Vr     (T, hsp)        K, V panels (O = P V, dQ = dS K)
 *   Qb, dOb    (ATT_BQ, hsp)   the block's Q, dO panels (dK, dV)
 *   dK, dV     (T, hs)         the head's key / value gradients
 *   dKg, dVg   (T, hs)         those of a block's gathered keys (pruned)
 *   Kh, Vh     (T, hs)         the head's keys and values, contiguous
 *   idx, jpos, evb (T)         gathered keys, their positions and
 *                              eviction steps (pruned)
 * Forward uses S, Kt, Vr, Kh; backward all but Vr.
 */
struct att_scratch {
	real *S, *dS;
	struct panels Kt, Vt, Kr, Vr, Qb, dOb;
	real *dK, *dV, *dKg, *dVg;
	real *Kh, *Vh;		/* the head's K, V rows, contiguous */
	int *jpos, *evb;	/* pruned: position, eviction step of block key c */
	int *idx;
	int full;	/* Kt, Vt, Kr hold the whole head */
	real *mem;
};

static void *att_alloc(size_t bytes)
{
	void *p = malloc(bytes ? bytes : 1);

	if (!p) {
		fprintf(stderr, "attention: out of memory (%zu bytes of scratch)\n", bytes);
		abort();
	}
	return p;
}

static void scratch_alloc(struct att_scratch *w, const struct att_shape *s, int masked)
{
	size_t nS = (size_t)ATT_BQ * s->ldS, nT = (size_t)s->hs * s->Tp;
	size_t nR = (size_t)s->T * s->hsp, nB = (size_t)ATT_BQ * s->hsp;
	size_t nG = (size_t)s->T * s->hs;
	real *p = att_alloc((2 * nS + 2 * nT + 2 * nR + 2 * nB + (masked ? 6 : 4) * nG) *
			    sizeof(real));

	w->mem = p;
	w->S = p, p += nS;
	w->dS = p, p += nS;
	w->Kt = (struct panels){ p, (size_t)s->hs * NR }, p += nT;
	w->Vt = (struct panels){ p, (size_t)s->hs * NR }, p += nT;
	w->Kr = (struct panels){ p, (size_t)s->T * NR }, p += nR;
	w->Vr = (struct panels){ p, (size_t)s->T * NR }, p += nR;
	w->Qb = (struct panels){ p, (size_t)ATT_BQ * NR }, p += nB;
	w->dOb = (struct panels){ p, (size_t)ATT_BQ * NR }, p += nB;
	w->dK = p, p += nG;
	w->dV = p, p += nG;
	w->Kh = p, p += nG;
	w->Vh = p, p += nG;
	w->dKg = w->dVg = NULL;
	w->idx = w->jpos = w->evb = NULL;
	if (!masked)
		return;
	w->dKg = p, p += nG;
	w->dVg = p;
	w->idx = att_alloc(3 * (size_t)s->T * sizeof(int));
	w->jpos = w->idx + s->T;
	w->evb = w->jpos + s->T;
}

static void scratch_free(struct att_scratch *w)
{
	free(w->mem);
	free(w->idx);
}

/* Copy the (T, hs) rows of one head's k (or v) columns of qkv (stride
 * 3C) into dst: one streaming pass, so the packings that follow read
 * from cache instead of gathering across the whole of qkv. */
static void head_rows(real *dst, const real *src, const struct att_shape *s)
{
	for (int j = 0; j < s->T; j++)
		memcpy(dst + (size_t)j * s->hs, src + (size_t)j * s->C3,
		       (size_t)s->hs * sizeof(real));
}

/*
 * Forward of one head. out: (B,T,C), lse: (B,NH,T).
 */
static void fwd_head(real *out, real *lse, const real *qkv, int bh,
		     const struct att_shape *s, struct att_scratch *w, float p, uint64_t seed)
{
	const real *q = qkv + qkv_off(s, bh);
	real *o = out + out_off(s, bh);
	int T = s->T, C3 = s->C3, hs = s->hs;

	lse += (size_t)bh * T;
	head_rows(w->Kh, q + s->C, s);
	pack_trans(&w->Kt, w->Kh, hs, NULL, T, hs);
	pack_rows(&w->Vr, q + 2 * s->C, C3, NULL, T, hs);
	for (int i0 = 0; i0 < T; i0 += ATT_BQ) {
		int m = T - i0 < ATT_BQ ? T - i0 : ATT_BQ, n = i0 + m;
		/* S (m, n) = scale Q[i0:n] K[0:n]^T */
		struct gemm_args gs = { m, n, hs, s->scale, q + (size_t)i0 * C3, C3, 1,
					&w->Kt, 0, w->S, s->ldS, TRIM_COLS, i0 };
		/* O[i0:n] (m, hs) = E V[0:n], E = unnormalised P */
		struct gemm_args go = { m, hs, n, R(1.0), w->S, s->ldS, 1, &w->Vr, 0,
					o + (size_t)i0 * s->C, s->C, TRIM_DEPTH, i0 };

		real inv[ATT_BQ];

		gemm_pk(&gs);
		for (int r = 0; r < m; r++) {
			real *row = w->S + (size_t)r * s->ldS;
			int i = i0 + r;

			lse[i] = softmax_row(row, i + 1, n, &inv[r]);
			if (p > 0)
				dropout_row(row, i + 1, seed, ((uint64_t)bh * T + i) * T, p);
		}
		gemm_pk(&go);
		for (int r = 0; r < m; r++) {
			real *orow = o + (size_t)(i0 + r) * s->C;

#pragma omp simd
			for (int t = 0; t < hs; t++)
				orow[t] *= inv[r];
		}
	}
}

void attention_forward(real *out, real *lse, const real *qkv, int B, int T,
		       int C, int NH, float dropout_p, uint64_t dropout_seed)
{
	struct att_shape s;

	att_shape_init(&s, B, T, C, NH);
#pragma omp parallel if (att_parallel(&s))
	{
		struct att_scratch w;

		scratch_alloc(&w, &s, 0);
#pragma omp for schedule(dynamic, 1)
		for (int bh = 0; bh < B * NH; bh++)
			fwd_head(out, lse, qkv, bh, &s, &w, dropout_p, dropout_seed);
		scratch_free(&w);
	}
}

/* ---------------------------------------------------------------------- */
/* Backward, shared by attention_backward() and the pruned attention. */

/*
 * Pruning masks (ra/kvprune.h). evict: (B,NH,T) step at which each key
 * left the cache (T: never); NULL for plain causal attention. Key j is
 * kept for query i when j <= i and evict[j] > i.
 *  KV:     P_ij = 0 unless kept (the softmax ran over the kept keys).
 *  V_ONLY: P_ij over all j <= i, but only kept values reach the output.
 */
struct att_mask {
	const int *evict;
	int v_only;
};

struct bwd_io {
	real *dqkv;
	const real *dout, *qkv, *out, *lse;
	float p;
	uint64_t seed;
};

/*
 * Plain causal row i: P = exp(S - lse) for keys <= i, 0 after;
 * dS = P (dP Z - D); P becomes P Z (for dV).
 */
static void bwd_row_causal(real *P, real *dS, int i, int n, real lse, real D,
			   float p, uint64_t seed, uint64_t base)
{
	int L = i + 1;

	memset(P + L, 0, (size_t)(n - L) * sizeof(real));
	memset(dS + L, 0, (size_t)(n - L) * sizeof(real));
	if (p > 0) {
		real sc = R(1.0) / (R(1.0) - (real)p);

		kexp_sum(P, L, lse);
		for (int j = 0; j < L; j++) {
			real z = kgpt_dropout_keep(seed, base + j, p) ? sc : 0;

			dS[j] = P[j] * (dS[j] * z - D);
			P[j] *= z;
		}
		return;
	}
	row_exp_ds(P, dS, L, lse, D);
}

/*
 * Pruned row i over the block's keys c < n: position jpos[c], eviction
 * step evb[c]. Key c is kept when jpos[c] <= i < evb[c].
 */
static void bwd_row_masked(real *P, real *dS, int i, const int *jpos, const int *evb, int n,
			   int v_only, real lse, real D, float p, uint64_t seed, uint64_t base)
{
#pragma omp simd
	for (int c = 0; c < n; c++)	/* no probability: -inf, e^-inf = 0 */
		P[c] = jpos[c] > i || (!v_only && evb[c] <= i) ? -INFINITY : P[c];
	kexp_sum(P, n, lse);
	if (p > 0) {
		real sc = R(1.0) / (R(1.0) - (real)p);

		for (int c = 0; c < n; c++) {
			int kept = jpos[c] <= i && evb[c] > i;
			real z = kept && kgpt_dropout_keep(seed, base + jpos[c], p) ? sc : 0;

			dS[c] = jpos[c] <= i ? P[c] * (dS[c] * z - D) : 0;
			P[c] *= z;
		}
		return;
	}
	/* V_ONLY: a causal key without value still has P > 0: dS = -P D.
	 * Both sides are computed and one selected (dS may hold garbage
	 * above the diagonal, in tiles the product skipped). */
#pragma omp simd
	for (int c = 0; c < n; c++) {
		int causal = jpos[c] <= i, kept = causal & (evb[c] > i);
		real a = P[c] * (dS[c] - D), b = -P[c] * D;

		dS[c] = kept ? a : (causal ? b : 0);
		P[c] = kept ? P[c] : 0;
	}
}

/*
 * Keys for the query block [i0, i0 + m): in KV mode only those still
 * cached at query i0 (the others have probability 0 for the whole block),
 * their positions in w->idx; else all of 0..i0+m-1. Returns their number
 * and sets *idx (NULL: key c is position c). Packs K^T, V^T and K for
 * them from w->Kh, w->Vh: a gathered set for this block, or the whole
 * head once.
 */
static int block_keys(const int **idx, const int *ev, const struct att_mask *mk, int i0,
		      int m, const struct att_shape *s, struct att_scratch *w)
{
	int n = i0 + m, nu = 0;

	*idx = NULL;
	if (ev && !mk->v_only) {
		for (int j = 0; j < n; j++)
			if (ev[j] > i0)
				w->idx[nu++] = j;
		if (nu < n) {
			*idx = w->idx;
			pack_trans(&w->Kt, w->Kh, s->hs, w->idx, nu, s->hs);
			pack_trans(&w->Vt, w->Vh, s->hs, w->idx, nu, s->hs);
			pack_rows(&w->Kr, w->Kh, s->hs, w->idx, nu, s->hs);
			w->full = 0;
			return nu;
		}
	}
	if (!w->full) {
		pack_trans(&w->Kt, w->Kh, s->hs, NULL, s->T, s->hs);
		pack_trans(&w->Vt, w->Vh, s->hs, NULL, s->T, s->hs);
		pack_rows(&w->Kr, w->Kh, s->hs, NULL, s->T, s->hs);
		w->full = 1;
	}
	return n;
}

/* dst rows (idx ? idx[c] : c) += src rows c, c < n, all hs wide. */
static void rows_add(real *dst, int ld, const real *src, int lds, const int *idx, int n, int hs)
{
	for (int c = 0; c < n; c++) {
		real *d = dst + (size_t)(idx ? idx[c] : c) * ld;
		const real *a = src + (size_t)c * lds;

#pragma omp simd
		for (int t = 0; t < hs; t++)
			d[t] += a[t];
	}
}

/* P and dS of rows i0..i0+m-1 over the n keys of the block, in place. */
static void bwd_rows(const struct bwd_io *io, int bh, int i0, int m, const int *idx, int n,
		     const int *ev, const struct att_shape *s, const struct att_mask *mk,
		     struct att_scratch *w)
{
	size_t oo = out_off(s, bh) + (size_t)i0 * s->C;
	const real *lse = io->lse + (size_t)bh * s->T + i0;

	for (int c = 0; ev && c < n; c++) {
		w->jpos[c] = idx ? idx[c] : c;
		w->evb[c] = ev[w->jpos[c]];
	}
	for (int r = 0; r < m; r++) {
		int i = i0 + r;
		real *P = w->S + (size_t)r * s->ldS, *dS = w->dS + (size_t)r * s->ldS;
		real D = row_dot(io->dout + oo + (size_t)r * s->C, io->out + oo + (size_t)r * s->C,
				 s->hs);
		uint64_t base = ((uint64_t)bh * s->T + i) * s->T;

		if (ev)
			bwd_row_masked(P, dS, i, w->jpos, w->evb, n, mk->v_only, lse[r], D,
				       io->p, io->seed, base);
		else
			bwd_row_causal(P, dS, i, n, lse[r], D, io->p, io->seed, base);
	}
}

/* Gradients of one query block [i0, i0 + m) of head bh: dQ into dqkv, dK
 * and dV into the head's w->dK, w->dV. */
static void bwd_block(const struct bwd_io *io, int bh, int i0, int m,
		      const struct att_shape *s, const struct att_mask *mk,
		      struct att_scratch *w)
{
	size_t qo = qkv_off(s, bh);
	const real *q = io->qkv + qo, *dO = io->dout + out_off(s, bh) + (size_t)i0 * s->C;
	const int *ev = mk->evict ? mk->evict + (size_t)bh * s->T : NULL, *idx;
	int C3 = s->C3, hs = s->hs, ld = s->ldS, n, trim, beta;
	real *dK, *dV;

	n = block_keys(&idx, ev, mk, i0, m, s, w);
	trim = idx ? TRIM_NONE : TRIM_COLS;
	beta = !idx;
	dK = idx ? w->dKg : w->dK;
	dV = idx ? w->dVg : w->dV;
	{
		/* S = scale Q K^T, dP = dO V^T: (m, n) */
		struct gemm_args gs = { m, n, hs, s->scale, q + (size_t)i0 * C3, C3, 1,
					&w->Kt, 0, w->S, ld, trim, i0 };
		struct gemm_args gp = { m, n, hs, R(1.0), dO, s->C, 1, &w->Vt, 0,
					w->dS, ld, trim, i0 };

		gemm_pk(&gs);
		gemm_pk(&gp);
	}
	bwd_rows(io, bh, i0, m, idx, n, ev, s, mk, w);
	pack_rows(&w->Qb, q + (size_t)i0 * C3, C3, NULL, m, hs);
	pack_rows(&w->dOb, dO, s->C, NULL, m, hs);
	{
		/* dQ (m, hs) += scale dS K */
		struct gemm_args gq = { m, hs, n, s->scale, w->dS, ld, 1, &w->Kr, 1,
					io->dqkv + qo + (size_t)i0 * C3, C3,
					idx ? TRIM_NONE : TRIM_DEPTH, i0 };
		/* dV (n, hs) += (P Z)^T dO, dK (n, hs) += scale dS^T Q */
		struct gemm_args gv = { n, hs, m, R(1.0), w->S, 1, ld, &w->dOb, beta,
					dV, hs, TRIM_NONE, 0 };
		struct gemm_args gk = { n, hs, m, s->scale, w->dS, 1, ld, &w->Qb, beta,
					dK, hs, TRIM_NONE, 0 };

		gemm_pk(&gq);
		gemm_pk(&gv);
		gemm_pk(&gk);
	}
	if (idx) {
		rows_add(w->dV, hs, w->dVg, hs, idx, n, hs);
		rows_add(w->dK, hs, w->dKg, hs, idx, n, hs);
	}
}

static void bwd_head(const struct bwd_io *io, int bh, const struct att_shape *s,
		     const struct att_mask *mk, struct att_scratch *w)
{
	real *dk = io->dqkv + qkv_off(s, bh) + s->C;
	const real *k = io->qkv + qkv_off(s, bh) + s->C;
	size_t nG = (size_t)s->T * s->hs;

	memset(w->dK, 0, nG * sizeof(real));
	memset(w->dV, 0, nG * sizeof(real));
	w->full = 0;
	head_rows(w->Kh, k, s);
	head_rows(w->Vh, k + s->C, s);
	for (int i0 = 0; i0 < s->T; i0 += ATT_BQ)
		bwd_block(io, bh, i0, s->T - i0 < ATT_BQ ? s->T - i0 : ATT_BQ, s, mk, w);
	rows_add(dk, s->C3, w->dK, s->hs, NULL, s->T, s->hs);
	rows_add(dk + s->C, s->C3, w->dV, s->hs, NULL, s->T, s->hs);
}

static void bwd_all(const struct bwd_io *io, const struct att_shape *s,
		    const struct att_mask *mk)
{
#pragma omp parallel if (att_parallel(s))
	{
		struct att_scratch w;

		scratch_alloc(&w, s, mk->evict != NULL);
#pragma omp for schedule(dynamic, 1)
		for (int bh = 0; bh < s->B * s->NH; bh++)
			bwd_head(io, bh, s, mk, &w);
		scratch_free(&w);
	}
}

void attention_backward(real *dqkv, const real *dout, const real *qkv,
			const real *out, const real *lse, int B, int T, int C,
			int NH, float dropout_p, uint64_t dropout_seed)
{
	struct bwd_io io = { dqkv, dout, qkv, out, lse, dropout_p, dropout_seed };
	struct att_mask mk = { NULL, 0 };
	struct att_shape s;

	att_shape_init(&s, B, T, C, NH);
	bwd_all(&io, &s, &mk);
}

/* attention_backward() with the kept sets of evict_step (kernels/kernels.h;
 * struct att_mask). */
void attention_backward_pruned(real *dqkv, const real *dout, const real *qkv,
			       const real *out, const real *lse,
			       const int *evict_step, int v_only, int B, int T,
			       int C, int NH, float dropout_p, uint64_t dropout_seed)
{
	struct bwd_io io = { dqkv, dout, qkv, out, lse, dropout_p, dropout_seed };
	struct att_mask mk = { evict_step, v_only };
	struct att_shape s;

	att_shape_init(&s, B, T, C, NH);
	bwd_all(&io, &s, &mk);
}
