/* SPDX-License-Identifier: MIT */
/*
 * Private helpers of the CUDA backend (the .cu files here): return-code
 * checks, launches, the cuBLAS handle, reduction scratch and the block
 * reductions the kernels share.
 *
 * Every CUDA and cuBLAS call goes through CUDA_CHECK() or CUBLAS_CHECK(),
 * every kernel launch through KGPT_LAUNCH(): a failure prints the call (or
 * kernel), the file and the line and ends the program (kernels/kernels.h,
 * Errors). With KGPT_CUDA_SYNC=1 in the environment each launch is also
 * waited for, so that an error inside a kernel is reported at its launch
 * instead of at the next synchronising call.
 *
 * The backend computes in float32 only; there is no float64 build of it.
 * Activations are stored as act_t (kernels/kernels.h: float, or bf16 with
 * CONFIG_GPT2_AMP_DTYPE="bf16"); kernels convert with a2f() and f2a().
 */
#ifndef KGPT_KERNELS_CUDA_H
#define KGPT_KERNELS_CUDA_H

#ifdef KGPT_F64
#error "the CUDA backend has no float64 build; the gradient tests link the CPU backend"
#endif

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include "kernels/kernels.h"

#define CUDA_CHECK(call)	kgpt_cuda_check((call), #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(call)	kgpt_cublas_check((call), #call, __FILE__, __LINE__)

/* k<<<grid, block, shared bytes>>>(args...), then the launch checked. */
#define KGPT_LAUNCH(k, grid, block, shmem, ...) do {				\
	k<<<(grid), (block), (shmem)>>>(__VA_ARGS__);				\
	kgpt_cuda_launched(#k, __FILE__, __LINE__);				\
} while (0)

void kgpt_cuda_check(cudaError_t err, const char *call, const char *file, int line);
void kgpt_cublas_check(cublasStatus_t st, const char *call, const char *file, int line);
void kgpt_cuda_launched(const char *kernel, const char *file, int line);

/* The backend's cuBLAS handle (created on first use, on the default
 * stream, with the math mode of the build: see gemm.cu). */
cublasHandle_t kgpt_cublas(void);

#include "kernels/cuda/common.cuh"

/*
 * Column sums of a (N, n) row-major matrix into out (n) +=, deterministic:
 * rows cut into a fixed number of chunks, partial sums per chunk, then the
 * chunks added in order (elementwise.cu). in is activations (act_t), out
 * float.
 */
void kgpt_cuda_colsum(float *out, const act_t *in, int N, int n);

/* cuBLAS's data type of act_t. */
#ifdef KGPT_ACT_BF16
#define KGPT_CUDA_ACT	CUDA_R_16BF
#else
#define KGPT_CUDA_ACT	CUDA_R_32F
#endif

/*
 * Row-major C (M,N) = alpha op(A) op(B) + beta C (gemm.cu): A and B of
 * cuBLAS type ab (CUDA_R_32F or KGPT_CUDA_ACT), C of type c, sums in
 * float32. kgpt_gemm() is this with everything float.
 */
void kgpt_cuda_gemm(int ta, int tb, int M, int N, int K, float alpha, const void *A,
		    cudaDataType_t ab, int lda, const void *B, int ldb, float beta, void *C,
		    cudaDataType_t c, int ldc);

/* dst (n act_t) = src (n floats), rounded (gemm.cu). */
void kgpt_cuda_to_act(act_t *dst, const float *src, size_t n);

/* x (n floats, device: a weight, the LM head's logit gradients) as act_t
 * for a product: x itself where act_t is float, else its bf16 rounding
 * in scratch slot `slot`, valid until the slot's next use (gemm.cu). */
const act_t *kgpt_cuda_as_act(const float *x, size_t n, int slot);

#endif /* KGPT_KERNELS_CUDA_H */
