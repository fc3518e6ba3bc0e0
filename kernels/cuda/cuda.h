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
 * chunks added in order (elementwise.cu). in and out are float.
 */
void kgpt_cuda_colsum(float *out, const float *in, int N, int n);

#endif /* KGPT_KERNELS_CUDA_H */
