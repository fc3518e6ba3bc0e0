// SPDX-License-Identifier: MIT
/*
 * Benchmarks of the CPU kernels and of the BLAS under them, at the GPT-2
 * 124M shapes (C = 768, 12 layers, V = 50257, Vp = 50304). Not part of
 * libkgpt (kernels/Kbuild leaves bench_*.c out). Build and run, e.g.:
 *
 *   gcc -O3 -march=native -fopenmp -Iinclude -I. kernels/cpu/bench_kernels.c \
 *       kernels/cpu/{encoder,layernorm,matmul,gelu,elementwise,lmhead,adamw}.c \
 *       -lopenblas -lm -o bench_kernels
 *   ./bench_kernels gemm 256 8192	sgemm GFLOP/s of every shape, N rows
 *   ./bench_kernels step 4 64 256	every kernel at B=4, T=64, LM chunk 256
 *   ./bench_kernels layer 4 64 256	only a layer's sequence and the LM head
 *
 * Each figure is the best of several runs. BENCH_CLOCK=thread times with
 * the calling thread's CPU time instead of the wall clock: the only
 * meaningful figure for a single-threaded run on a machine shared with
 * other work. Linking another BLAS (e.g. -L.../blis-openmp -lblis)
 * benchmarks that one: only the cblas interface is used.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "kernels/kernels.h"
#include "kernels/cpu/kutil.h"
#include "kgpt/proc.h"

#define BC	768		/* n_embd */
#define BV	50257
#define BVP	50304
#define BL	12		/* layers */

static double now(void)
{
	static int clk = -1;

	if (clk < 0) {
		const char *e = getenv("BENCH_CLOCK");

		clk = e && !strcmp(e, "thread") ? CLOCK_THREAD_CPUTIME_ID :
		      CLOCK_MONOTONIC;
	}
	return kgpt_clock_s(clk);
}

/* n floats uniform in [-s/2, s/2), 64-byte aligned. */
static float *rnd(size_t n, float s)
{
	float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);

	if (!p) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < n; i++)
		p[i] = ((float)rand() / RAND_MAX - 0.5f) * s;
	return p;
}

/* Best time in seconds of reps runs of stmt, printed under name. */
#define BEST(name, reps, stmt) ({					\
	double _b = 1e30;						\
	for (int _r = 0; _r < (reps); _r++) {				\
		double _t0 = now();					\
		stmt;							\
		_b = fmin(_b, now() - _t0);				\
	}								\
	printf("  %-30s %9.3f ms\n", name, _b * 1e3);			\
	fflush(stdout);							\
	_b; })

/*
 * One row-major sgemm C (M,N) = op(A) op(B) + beta C, checked on 32
 * entries against double dot products, then timed; returns GFLOP/s.
 */
static double bench_gemm(const char *name, int ta, int tb, int M, int N,
			 int K, float beta)
{
	int lda = ta ? M : K, ldb = tb ? K : N, reps = 0;
	float *A = rnd((size_t)M * K, 1), *B = rnd((size_t)K * N, 1);
	float *Cm = rnd((size_t)M * N, 1), *C0 = rnd((size_t)M * N, 0);
	enum CBLAS_TRANSPOSE opa = ta ? CblasTrans : CblasNoTrans;
	enum CBLAS_TRANSPOSE opb = tb ? CblasTrans : CblasNoTrans;
	double best = 1e30, total = 0, err = 0, gf;

	memcpy(C0, Cm, (size_t)M * N * sizeof(float));
	cblas_sgemm(CblasRowMajor, opa, opb, M, N, K, 1, A, lda, B, ldb, beta,
		    Cm, N);
	for (int s = 0; s < 32; s++) {
		int i = rand() % M, j = rand() % N;
		double r = beta * C0[(size_t)i * N + j], a = fabs(r);

		for (int k = 0; k < K; k++) {
			double x = ta ? A[(size_t)k * lda + i] :
					A[(size_t)i * lda + k];
			double y = tb ? B[(size_t)j * ldb + k] :
					B[(size_t)k * ldb + j];

			r += x * y;
			a += fabs(x * y);
		}
		err = fmax(err, fabs(Cm[(size_t)i * N + j] - r) / a);
	}
	while (reps < 3 || total < 0.3) {
		double t0 = now(), t;

		cblas_sgemm(CblasRowMajor, opa, opb, M, N, K, 1, A, lda, B,
			    ldb, beta, Cm, N);
		t = now() - t0;
		total += t;
		best = fmin(best, t);
		reps++;
	}
	gf = 2.0 * M * N * K / best / 1e9;
	printf("%-10s %c%c M=%5d N=%5d K=%5d %7.1f GFLOP/s %9.3f ms  err %.1e%s\n",
	       name, ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, gf, best * 1e3,
	       err, err > 1e-5 ? "  WRONG" : "");
	fflush(stdout);
	free(A), free(B), free(Cm), free(C0);
	return gf;
}

/*
 * The gemms of one transformer layer, forward and backward, at N rows
 * (out = inp W^T: NT; dinp = dout W: NN; dW = dout^T inp: TN), then those
 * of the LM head for a chunk of min(N, 1024) rows.
 */
static void bench_gemms(int N)
{
	static const int sh[4][2] = { { BC, 3 * BC }, { BC, BC },
				      { BC, 4 * BC }, { 4 * BC, BC } };
	static const char *nm[4] = { "qkv", "attproj", "fc", "fcproj" };
	int ch = N < 1024 ? N : 1024;
	double fl = 0, t = 0;

	for (int s = 0; s < 4; s++) {
		int c = sh[s][0], oc = sh[s][1];
		double f = 2.0 * N * c * oc;

		t += f / bench_gemm(nm[s], 0, 1, N, oc, c, 1);
		t += f / bench_gemm(nm[s], 0, 0, N, c, oc, 1);
		t += f / bench_gemm(nm[s], 1, 0, oc, c, N, 1);
		fl += 3 * f;
	}
	printf("== N=%d: layer gemms %.1f GFLOP/s overall, %.2f ms a layer\n",
	       N, fl / t, t / 1e6);
	fl = 2.0 * ch * BV * BC;
	t = fl / bench_gemm("lm_logits", 0, 1, ch, BV, BC, 0);
	t += fl / bench_gemm("lm_dx", 0, 0, ch, BC, BV, 1);
	t += fl / bench_gemm("lm_dwte", 1, 0, BV, BC, ch, 1);
	printf("== N=%d: LM head gemms (chunk %d) %.1f GFLOP/s overall\n", N,
	       ch, 3 * fl / t);
}

/* Buffers of one layer's kernels at N rows. */
struct lbuf {
	float *x, *y, *dx, *dy, *mean, *rstd, *w, *b, *dw, *db;
	float *h, *g, *dh, *W, *dW, *bias;
};

/* One layer forward and backward as the trainer sequences it, minus
 * attention; exercises the hand-over between OpenMP and the BLAS. */
static void layer_seq(struct lbuf *l, int N)
{
	size_t nc = (size_t)N * BC;

	layernorm_forward(l->y, l->mean, l->rstd, l->x, l->w, l->b, N, BC);
	matmul_forward(l->h, l->y, l->W, l->bias, N, BC, 3 * BC);
	matmul_forward(l->dx, l->y, l->W, l->bias, N, BC, BC);
	residual_forward(l->x, l->x, l->dx, nc);
	layernorm_forward(l->y, l->mean, l->rstd, l->x, l->w, l->b, N, BC);
	matmul_forward(l->h, l->y, l->W, l->bias, N, BC, 4 * BC);
	gelu_forward(l->g, l->h, 4 * nc);
	matmul_forward(l->dx, l->g, l->W, l->bias, N, 4 * BC, BC);
	residual_forward(l->x, l->x, l->dx, nc);
	matmul_backward(l->dh, l->dW, l->db, l->dy, l->g, l->W, N, 4 * BC, BC);
	gelu_backward(l->dh, l->h, l->dh, 4 * nc);
	matmul_backward(l->dx, l->dW, l->bias, l->dh, l->y, l->W, N, BC,
			4 * BC);
	layernorm_backward(l->dx, l->dw, l->db, l->dy, l->x, l->w, l->mean,
			   l->rstd, N, BC);
	residual_forward(l->dy, l->dy, l->dx, nc);
	matmul_backward(l->dh, l->dW, l->db, l->dy, l->y, l->W, N, BC, BC);
	matmul_backward(l->dx, l->dW, l->bias, l->dh, l->y, l->W, N, BC,
			3 * BC);
	layernorm_backward(l->dx, l->dw, l->db, l->dy, l->x, l->w, l->mean,
			   l->rstd, N, BC);
}

/* Every kernel at B x T, and an estimate of a training step without
 * attention; with quick, only the layer sequence and the LM head. */
static void bench_step(int B, int T, int chunk, int reps, int quick)
{
	int N = B * T;
	size_t nc = (size_t)N * BC, np = 124475904;
	struct lbuf l = {
		.x = rnd(nc, 2), .y = rnd(nc, 1), .dx = rnd(nc, 1),
		.dy = rnd(nc, 1), .mean = rnd(N, 1), .rstd = rnd(N, 1),
		.w = rnd(BC, 1), .b = rnd(BC, 1), .dw = rnd(BC, 1),
		.db = rnd(4 * BC, 1), .h = rnd(4 * nc, 2), .g = rnd(4 * nc, 1),
		.dh = rnd(4 * nc, 1), .W = rnd(4 * BC * BC, 0.05f),
		.dW = rnd(4 * BC * BC, 1), .bias = rnd(4 * BC, 1),
	};
	float *wte = rnd((size_t)BVP * BC, 0.05f), *dwte = rnd((size_t)BVP * BC, 1);
	float *wpe = rnd((size_t)T * BC, 0.05f), *dwpe = rnd((size_t)T * BC, 1);
	float *scr = rnd((size_t)chunk * BVP, 1), *loss = rnd(N, 1);
	float *p, *g, *m, *v;
	int *tok = malloc(N * sizeof(int));
	double lay, lm, ad, ss, enc, fl;

	for (int i = 0; i < N; i++)
		tok[i] = rand() % BV;
	printf("# B=%d T=%d N=%d, LM chunk %d, %d OpenMP threads\n", B, T, N,
	       chunk, omp_get_max_threads());
	if (quick)
		goto layer;
	BEST("layernorm fwd", reps, layernorm_forward(l.y, l.mean, l.rstd,
			l.x, l.w, l.b, N, BC));
	BEST("layernorm bwd", reps, layernorm_backward(l.dx, l.dw, l.db, l.dy,
			l.x, l.w, l.mean, l.rstd, N, BC));
	BEST("gelu fwd (4C)", reps, gelu_forward(l.g, l.h, 4 * nc));
	BEST("gelu bwd (4C)", reps, gelu_backward(l.dh, l.h, l.g, 4 * nc));
	BEST("residual", reps, residual_forward(l.x, l.x, l.dx, nc));
	BEST("dropout fwd p=0.1", reps, dropout_forward(l.dx, nc, 0.1f, 1));
	BEST("matmul fwd 768->3072 +bias", reps, matmul_forward(l.h, l.y,
			l.W, l.bias, N, BC, 4 * BC));
	BEST("matmul bwd 768->3072 +bias", reps, matmul_backward(l.dx, l.dW,
			l.db, l.h, l.y, l.W, N, BC, 4 * BC));
layer:
	lay = BEST("layer fwd+bwd, no attention", reps, layer_seq(&l, N));
	printf("  %-30s %9.1f GFLOP/s\n", "  (its gemms)",
	       6.0 * N * BC * 12 * BC / lay / 1e9);
	enc = BEST("encoder fwd", reps, encoder_forward(l.x, tok, wte, wpe, B,
			T, BC));
	enc += BEST("encoder bwd", reps, encoder_backward(dwte, dwpe, l.dy,
			tok, B, T, BC));
	lm = BEST("lm_head fwd+bwd", reps, lm_head_forward_backward(loss,
			l.dx, dwte, l.x, wte, tok, 1.0f / N, N, BC, BV, BVP,
			scr, chunk));
	printf("  %-30s %9.1f GFLOP/s\n", "  (its gemms)",
	       6.0 * N * BC * BV / lm / 1e9);
	if (quick)
		return;
	free(l.h), free(l.g), free(l.dh), free(scr), free(wte), free(dwte);
	p = rnd(np, 1), g = rnd(np, 0.01f), m = rnd(np, 0.01f);
	v = rnd(np, 0);
	ss = BEST("sumsq 124M", 3, sumsq(g, np));
	BEST("scale 124M", 3, scale_inplace(g, np, 1.0f));
	ad = BEST("adamw 124M", 3, adamw_update(p, g, m, v, np, 1e-4f, 0.9f,
			0.95f, 1e-8f, 0.1f, 3));
	printf("  %-30s %9.1f GB/s\n", "  (adamw traffic)", 28.0 * np / ad / 1e9);
	fl = 6.0 * N * BC * (BL * 12.0 * BC + BV);
	printf("step without attention: %.3f s = %d layers %.3f + LM head %.3f "
	       "+ adamw, sumsq %.3f + encoder %.3f; %.1f GFLOP/s on its "
	       "%.0f GFLOP of gemms\n", BL * lay + lm + ad + ss + enc, BL,
	       BL * lay, lm, ad + ss, enc, fl / (BL * lay + lm + ad + ss + enc)
	       / 1e9, fl / 1e9);
}

int main(int argc, char **argv)
{
	srand(1);
	if (argc >= 2 && !strcmp(argv[1], "gemm")) {
		for (int i = 2; i < argc; i++)
			bench_gemms(atoi(argv[i]));
		return 0;
	}
	if (argc >= 2 && (!strcmp(argv[1], "step") ||
			  !strcmp(argv[1], "layer"))) {
		bench_step(argc > 2 ? atoi(argv[2]) : 4,
			   argc > 3 ? atoi(argv[3]) : 64,
			   argc > 4 ? atoi(argv[4]) : 256,
			   argc > 5 ? atoi(argv[5]) : 5, argv[1][0] == 'l');
		return 0;
	}
	fprintf(stderr, "usage: %s gemm N... | step|layer B T chunk [reps]\n",
		argv[0]);
	return 2;
}
