// SPDX-License-Identifier: MIT
/*
 * Matrix products through cuBLAS (kernels/kernels.h): kgpt_gemm() and the
 * linear layer. Every product of the model and its mechanisms (the
 * R-MLP's included) comes here.
 *
 * kgpt's arrays are row-major, cuBLAS's column-major: a row-major
 * C (M,N) = op(A) op(B) is the column-major C^T (N,M) = op(B)^T op(A)^T,
 * so the call swaps the operands and M with N and keeps each operand's own
 * transposition.
 *
 * Precision of the products, chosen at build time (kernels/Kconfig):
 * float32 storage always, accumulation in float32; the multiplications in
 * float32 (CUBLAS_COMPUTE_32F), on TF32 tensor cores (KGPT_CUDA_TF32) or
 * on bf16 tensor cores (KGPT_CUDA_BF16, CONFIG_GPT2_AMP_DTYPE="bf16").
 */
#include "kernels/cuda/cuda.h"

#if defined(KGPT_CUDA_BF16)
#define COMPUTE		CUBLAS_COMPUTE_32F_FAST_16BF
#elif defined(KGPT_CUDA_TF32)
#define COMPUTE		CUBLAS_COMPUTE_32F_FAST_TF32
#else
#define COMPUTE		CUBLAS_COMPUTE_32F
#endif

cublasHandle_t kgpt_cublas(void)
{
	static cublasHandle_t h;

	if (!h) {
		CUBLAS_CHECK(cublasCreate(&h));
		CUBLAS_CHECK(cublasSetStream(h, 0));
		CUBLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
	}
	return h;
}

void kgpt_gemm(int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda,
	       const real *B, int ldb, real beta, real *C, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
	CUBLAS_CHECK(cublasGemmEx(kgpt_cublas(), tb ? CUBLAS_OP_T : CUBLAS_OP_N,
				  ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha,
				  B, CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta,
				  C, CUDA_R_32F, ldc, COMPUTE, CUBLAS_GEMM_DEFAULT));
}

/* out (N,OC) rows = bias (OC). */
__global__ void bias_broadcast(float *__restrict__ out, const float *__restrict__ bias,
			       size_t n, int OC)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		out[i] = bias[i % OC];
}

/* out = inp @ w^T + bias: the bias broadcast first, the gemm adds (beta 1). */
void matmul_forward(real *out, const real *inp, const real *w,
		    const real *bias, int N, int C, int OC)
{
	real beta = 0;

	if (bias) {
		size_t n = (size_t)N * OC;

		KGPT_LAUNCH(bias_broadcast, kgpt_blocks(n, 256, 65536), 256, 0, out, bias, n, OC);
		beta = 1;
	}
	kgpt_gemm(0, 1, N, OC, C, 1, inp, C, w, C, beta, out, OC);
}

void bias_backward(real *dbias, const real *dout, int N, int OC)
{
	kgpt_cuda_colsum(dbias, dout, N, OC);
}

/* dinp += dout @ w; dw += dout^T @ inp; dbias += column sums of dout. */
void matmul_backward(real *dinp, real *dw, real *dbias, const real *dout,
		     const real *inp, const real *w, int N, int C, int OC)
{
	if (dinp)
		kgpt_gemm(0, 0, N, C, OC, 1, dout, OC, w, C, 1, dinp, C);
	kgpt_gemm(1, 0, OC, C, N, 1, dout, OC, inp, C, 1, dw, C);
	if (dbias)
		bias_backward(dbias, dout, N, OC);
}
