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

/*
 * Device scratch of at least bytes for slot (KGPT_SCRATCH_*), kept and
 * grown across calls. Only one kernel sequence uses a slot at a time;
 * growing waits for the device before the old buffer is freed.
 */
enum {
	KGPT_SCRATCH_REDUCE,	/* partial sums of the deterministic reductions */
	KGPT_SCRATCH_ATT,	/* attention backward: D = rowsum(dO * O) */
	KGPT_SCRATCH_COUNT,	/* counters read back by the host */
	KGPT_SCRATCH_ENC,	/* encoder backward: the rows bucketed by token */
	KGPT_SCRATCH_KVP,	/* KV pruning's walk: a cache per (b, h) */
	KGPT_SCRATCH_SLOTS
};
void *kgpt_cuda_scratch(int slot, size_t bytes);

/* Blocks of `threads` for n elements, at most max_blocks (grid-stride
 * loops cover the rest). */
static inline unsigned int kgpt_blocks(size_t n, int threads, unsigned int max_blocks)
{
	size_t b = (n + (size_t)threads - 1) / (size_t)threads;

	if (b < 1)
		b = 1;
	return b > max_blocks ? max_blocks : (unsigned int)b;
}

/* Sum over a warp (every lane gets it). */
template <typename T> __device__ __forceinline__ T warp_sum(T v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

template <typename T> __device__ __forceinline__ T warp_max(T v)
{
	for (int o = 16; o > 0; o >>= 1) {
		T w = __shfl_xor_sync(0xffffffffu, v, o);

		v = w > v ? w : v;
	}
	return v;
}

/*
 * Sum over the block (blockDim.x a multiple of 32, at most 1024); every
 * thread gets it. The order is fixed by the block size, so the result is
 * deterministic. sh: 32 elements of shared memory.
 */
template <typename T> __device__ T block_sum(T v, T *sh)
{
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;

	v = warp_sum(v);
	__syncthreads();		/* sh may still be read from a previous call */
	if (lane == 0)
		sh[warp] = v;
	__syncthreads();
	v = lane < nw ? sh[lane] : (T)0;
	return warp_sum(v);
}

template <typename T> __device__ T block_max(T v, T *sh, T lowest)
{
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;

	v = warp_max(v);
	__syncthreads();
	if (lane == 0)
		sh[warp] = v;
	__syncthreads();
	v = lane < nw ? sh[lane] : lowest;
	return warp_max(v);
}

/*
 * Column sums of a (N, n) row-major matrix into out (n) +=, deterministic:
 * rows cut into a fixed number of chunks, partial sums per chunk, then the
 * chunks added in order (elementwise.cu). in and out are float.
 */
void kgpt_cuda_colsum(float *out, const float *in, int N, int n);

#endif /* KGPT_KERNELS_CUDA_H */
