// SPDX-License-Identifier: MIT
/*
 * Linear layer, out = inp @ W^T + bias, through one BLAS gemm per product
 * (sgemm in the trainer, dgemm in the float64 tests; see kgpt/real.h), and
 * kgpt_gemm(), the contract's general product, for the mechanisms.
 * All arrays are row-major; W is (OC, C) as in PyTorch.
 */
#include <cblas.h>
#include "kernels/kernels.h"
#include "kernels/cpu/kutil.h"

/* C = alpha op(A) op(B) + beta C, row-major (kernels/kernels.h). */
void kgpt_gemm(int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda,
	       const real *B, int ldb, real beta, real *C, int ldc)
{
	cblas_gemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
		   M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* Activations are real on the CPU backend: both are kgpt_gemm(). */
void kgpt_gemm_act(int ta, int tb, int M, int N, int K, real alpha, const act_t *A,
		   int lda, const real *W, int ldw, real beta, act_t *C, int ldc)
{
	kgpt_gemm(ta, tb, M, N, K, alpha, A, lda, W, ldw, beta, C, ldc);
}

void kgpt_gemm_dw(int ta, int tb, int M, int N, int K, real alpha, const act_t *A, int lda,
		  const act_t *B, int ldb, real beta, real *C, int ldc)
{
	kgpt_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/*
 * out (N,OC) = inp (N,C) @ w^T (w: (OC,C)) + bias (OC); bias may be NULL.
 * The bias is broadcast into out first (OpenMP over rows) and the gemm
 * adds onto it (beta = 1), so the bias costs one write of out and no extra
 * read pass. 2*N*C*OC flops.
 */
void matmul_forward(real *out, const real *inp, const real *w,
		    const real *bias, int N, int C, int OC)
{
	real beta = 0;

	if (bias) {
#pragma omp parallel for schedule(static) if ((long)N * OC >= KPAR_MIN)
		for (int n = 0; n < N; n++) {
			real *restrict o = out + (size_t)n * OC;

#pragma omp simd
			for (int j = 0; j < OC; j++)
				o[j] = bias[j];
		}
		beta = 1;
	}
	cblas_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1, inp, C,
		   w, C, beta, out, OC);
}

/*
 * dbias (OC) += column sums of dout (N,OC). Each thread owns a slice of
 * the columns and adds the rows in order (deterministic, no reduction
 * buffers).
 */
void bias_backward(real *dbias, const real *dout, int N, int OC)
{
#pragma omp parallel if ((long)N * OC >= KPAR_MIN)
	{
		size_t j0, j1;

		kthread_range(OC, 16, &j0, &j1);
		for (int n = 0; n < N; n++) {
			const real *restrict d = dout + (size_t)n * OC;

#pragma omp simd
			for (size_t j = j0; j < j1; j++)
				dbias[j] += d[j];
		}
	}
}

/*
 * dinp (N,C) += dout (N,OC) @ w (OC,C)	[gemm NoTrans, NoTrans, beta 1]
 * dw (OC,C) += dout^T @ inp (N,C)		[gemm Trans, NoTrans, beta 1]
 * dbias (OC) += sum over rows of dout.
 * dinp and dbias may be NULL (not wanted). 4*N*C*OC flops with dinp.
 */
void matmul_backward(real *dinp, real *dw, real *dbias, const real *dout,
		     const real *inp, const real *w, int N, int C, int OC)
{
	if (dinp)
		cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC,
			   1, dout, OC, w, C, 1, dinp, C);
	cblas_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1, dout,
		   OC, inp, C, 1, dw, C);
	if (dbias)
		bias_backward(dbias, dout, N, OC);
}
