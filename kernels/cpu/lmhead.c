// SPDX-License-Identifier: MIT
/*
 * LM head and softmax cross-entropy, fused and chunked over rows.
 *
 * For a chunk of cn rows of x, the logits x_chunk @ wte^T (cn, V) go to
 * the caller's scratch (one gemm), each row becomes its loss and, for the
 * backward pass, in place its gradient
 *	dlogits[j] = dloss * (softmax(logits)[j] - [j == target]),
 * and two more gemms add dlogits @ wte to dx and dlogits^T @ x_chunk to
 * dwte. The (N, Vp) logits never exist whole. Only the first V columns are
 * computed and only the first V rows of wte are read or written; the
 * padded columns V..Vp-1 of scratch are set to zero, so the padded rows of
 * dwte receive exactly nothing.
 */
#include <cblas.h>
#include "kernels/kernels.h"
#include "kernels/cpu/kutil.h"

/*
 * Cross-entropy of one row of logits l (Vp) against target t < V:
 * -log softmax(l[0..V))[t] = log sum_j e^(l_j - m) - (l_t - m), m = max l,
 * the sum in double. If grad, l becomes dloss * (softmax - onehot(t)) on
 * 0..V-1 and 0 on V..Vp-1.
 */
static real xent_row(real *restrict l, int t, int V, int Vp, real dloss,
		     int grad, real lo, real hi)
{
	real m = l[0], lt = l[t], f;
	double s = 0;

#pragma omp simd reduction(max:m)
	for (int j = 0; j < V; j++)
		m = l[j] > m ? l[j] : m;
	if (!grad) {
#pragma omp simd reduction(+:s)
		for (int j = 0; j < V; j++)
			s += kexp(l[j] - m, lo, hi);
		return (real)(log(s) - (double)(lt - m));
	}
#pragma omp simd reduction(+:s)
	for (int j = 0; j < V; j++) {
		l[j] = kexp(l[j] - m, lo, hi);
		s += l[j];
	}
	f = (real)(dloss / s);
#pragma omp simd
	for (int j = 0; j < V; j++)
		l[j] *= f;
	l[t] -= dloss;
	for (int j = V; j < Vp; j++)
		l[j] = 0;
	return (real)(log(s) - (double)(lt - m));
}

/*
 * Both entry points. x: (N,C); wte: (Vp,C); targets, losses: (N);
 * scratch: chunk * Vp. With grad: dx (N,C) +=, dwte (Vp,C) += for the loss
 * sum_i dloss * losses[i]. Flops: 2*N*C*V forward, 6*N*C*V with grad.
 */
static void lm_head(real *losses, real *dx, real *dwte, const real *x,
		    const real *wte, const int *targets, real dloss, int N,
		    int C, int V, int Vp, real *scratch, int chunk, int grad)
{
	real lo = KEXP_LO, hi = KEXP_HI;

	KHIDE(lo);
	KHIDE(hi);
	for (int n0 = 0; n0 < N; n0 += chunk) {
		int cn = N - n0 < chunk ? N - n0 : chunk;
		const real *xc = x + (size_t)n0 * C;

		cblas_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, cn, V, C,
			   1, xc, C, wte, C, 0, scratch, Vp);
#pragma omp parallel for schedule(static)
		for (int i = 0; i < cn; i++)
			losses[n0 + i] = xent_row(scratch + (size_t)i * Vp,
						  targets[n0 + i], V, Vp,
						  dloss, grad, lo, hi);
		if (!grad)
			continue;
		cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cn, C, V,
			   1, scratch, Vp, wte, C, 1, dx + (size_t)n0 * C, C);
		cblas_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, cn,
			   1, scratch, Vp, xc, C, 1, dwte, C);
	}
}

/* losses (N) = -log softmax(x @ wte^T)[targets]; see lm_head(). */
void lm_head_forward(real *losses, const real *x, const real *wte,
		     const int *targets, int N, int C, int V, int Vp,
		     real *scratch, int chunk)
{
	lm_head(losses, NULL, NULL, x, wte, targets, 0, N, C, V, Vp, scratch,
		chunk, 0);
}

/* The same losses, and dx, dwte += gradients of sum_i dloss * losses[i]. */
void lm_head_forward_backward(real *losses, real *dx, real *dwte,
			      const real *x, const real *wte,
			      const int *targets, real dloss, int N, int C,
			      int V, int Vp, real *scratch, int chunk)
{
	lm_head(losses, dx, dwte, x, wte, targets, dloss, N, C, V, Vp, scratch,
		chunk, 1);
}
