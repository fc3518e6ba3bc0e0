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
 * Precision of the products, chosen at build time (kernels/Kconfig),
 * accumulation in float32 always:
 *  - fp32: float32 operands, the multiplications in float32
 *    (CUBLAS_COMPUTE_32F) or on TF32 tensor cores (KGPT_CUDA_TF32);
 *  - bf16 (CONFIG_GPT2_AMP_DTYPE="bf16", KGPT_ACT_BF16): activations are
 *    stored in bf16 (act_t), and a product with a weight rounds the
 *    weight's float32 master copy to bf16 first, into device scratch, so
 *    both operands are bf16 on the tensor cores; weight gradients are
 *    written in float32. kgpt_gemm() on float32 operands uses bf16 tensor
 *    cores too (CUBLAS_COMPUTE_32F_FAST_16BF).
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

void kgpt_cuda_gemm(int ta, int tb, int M, int N, int K, float alpha, const void *A,
		    cudaDataType_t ab, int lda, const void *B, int ldb, float beta, void *C,
		    cudaDataType_t c, int ldc)
{
	cublasComputeType_t compute = ab == CUDA_R_32F ? COMPUTE : CUBLAS_COMPUTE_32F;

	if (M <= 0 || N <= 0)
		return;
	CUBLAS_CHECK(cublasGemmEx(kgpt_cublas(), tb ? CUBLAS_OP_T : CUBLAS_OP_N,
				  ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha,
				  B, ab, ldb, A, ab, lda, &beta, C, c, ldc, compute,
				  CUBLAS_GEMM_DEFAULT));
}

void kgpt_gemm(int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda,
	       const real *B, int ldb, real beta, real *C, int ldc)
{
	kgpt_cuda_gemm(ta, tb, M, N, K, alpha, A, CUDA_R_32F, lda, B, ldb, beta, C, CUDA_R_32F,
		       ldc);
}

__global__ void to_act(act_t *__restrict__ dst, const float *__restrict__ src, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		dst[i] = f2a(src[i]);
}

void kgpt_cuda_to_act(act_t *dst, const float *src, size_t n)
{
	if (n)
		KGPT_LAUNCH(to_act, kgpt_blocks(n, 256, 65536), 256, 0, dst, src, n);
}

const act_t *kgpt_cuda_as_act(const float *x, size_t n, int slot)
{
#ifdef KGPT_ACT_BF16
	act_t *d = (act_t *)kgpt_cuda_scratch(slot, n * sizeof(act_t));

	kgpt_cuda_to_act(d, x, n);
	return d;
#else
	return x;
#endif
}

/* The rows W spans: (rows, ld) with rows = op(W)'s K or N as stored. */
static size_t span(int t, int rows_nt, int rows_t, int ld)
{
	return (size_t)(t ? rows_t : rows_nt) * ld;
}

void kgpt_gemm_act(int ta, int tb, int M, int N, int K, real alpha, const act_t *A,
		   int lda, const real *W, int ldw, real beta, act_t *C, int ldc)
{
	const act_t *w;

	if (M <= 0 || N <= 0)
		return;
	/* op(W) is (K, N): stored (K, ldw) untransposed, (N, ldw) transposed */
	w = kgpt_cuda_as_act(W, span(tb, K, N, ldw), KGPT_SCRATCH_WEIGHT);
	kgpt_cuda_gemm(ta, tb, M, N, K, alpha, A, KGPT_CUDA_ACT, lda, w, ldw, beta, C,
		       KGPT_CUDA_ACT, ldc);
}

void kgpt_gemm_dw(int ta, int tb, int M, int N, int K, real alpha, const act_t *A, int lda,
		  const act_t *B, int ldb, real beta, real *C, int ldc)
{
	kgpt_cuda_gemm(ta, tb, M, N, K, alpha, A, KGPT_CUDA_ACT, lda, B, ldb, beta, C,
		       CUDA_R_32F, ldc);
}

/* out (N,OC) rows = bias (OC). */
__global__ void bias_broadcast(act_t *__restrict__ out, const float *__restrict__ bias,
			       size_t n, int OC)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		out[i] = f2a(bias[i % OC]);
}

/* out = inp @ w^T + bias: the bias broadcast first, the gemm adds (beta 1). */
void matmul_forward(act_t *out, const act_t *inp, const real *w,
		    const real *bias, int N, int C, int OC)
{
	real beta = 0;

	if (bias) {
		size_t n = (size_t)N * OC;

		KGPT_LAUNCH(bias_broadcast, kgpt_blocks(n, 256, 65536), 256, 0, out, bias, n, OC);
		beta = 1;
	}
	kgpt_gemm_act(0, 1, N, OC, C, 1, inp, C, w, C, beta, out, OC);
}

void bias_backward(real *dbias, const act_t *dout, int N, int OC)
{
	kgpt_cuda_colsum(dbias, dout, N, OC);
}

/* dinp += dout @ w; dw += dout^T @ inp; dbias += column sums of dout. */
void matmul_backward(act_t *dinp, real *dw, real *dbias, const act_t *dout,
		     const act_t *inp, const real *w, int N, int C, int OC)
{
	if (dinp)
		kgpt_gemm_act(0, 0, N, C, OC, 1, dout, OC, w, C, 1, dinp, C);
	kgpt_gemm_dw(1, 0, OC, C, N, 1, dout, OC, inp, C, 1, dw, C);
	if (dbias)
		bias_backward(dbias, dout, N, OC);
}
