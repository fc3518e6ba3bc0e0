/* SPDX-License-Identifier: MIT */
/*
 * A host emulation of the CUDA runtime subset kgpt's kernels use, standing
 * in for kernels/cuda/cuda.h when tests/cuda-emu/ compiles a kernels/cuda
 * source with the host C++ compiler (its include path comes first). A
 * launch runs the grid's blocks one after another; a block runs each of
 * its threads as a std::thread, __syncthreads() is a std::barrier of the
 * block, __shfl_xor_sync() an exchange behind a barrier of the warp, and
 * __shared__ variables are static (one block at a time uses them).
 * Device pointers are host pointers.
 *
 * What this checks: indexing, the split of work over threads and blocks,
 * the reductions and the barriers' placement (a value read before the
 * barrier that publishes it is read stale here too, usually). What it
 * cannot: the GPU's memory model and timing, warp-synchronous code
 * without barriers, speed. tests/gpu/run.sh on a GPU is the real check.
 */
#ifndef KGPT_TESTS_CUDA_EMU_H
#define KGPT_TESTS_CUDA_EMU_H

#include <barrier>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>

#ifdef KGPT_ACT_BF16
#include "emu_bf16.h"
#define KGPT_ACT_HOST_BF16	emu_bf16
#endif
#include "kernels/kernels.h"

struct dim3 {
	unsigned int x, y, z;
	dim3(unsigned int a = 1, unsigned int b = 1, unsigned int c = 1) : x(a), y(b), z(c) {}
};

extern thread_local dim3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__	inline
#define __launch_bounds__(n)
#define __shared__	static

/* The barrier of the running block, and per warp; the warps' exchange. */
std::barrier<> *emu_block_barrier(void);
std::barrier<> *emu_warp_barrier(int warp);
unsigned char *emu_lane_slot(int thread);	/* 8 bytes per thread */

static inline void __syncthreads(void)
{
	emu_block_barrier()->arrive_and_wait();
}

/* Every lane of the warp must call it, as on the GPU with a full mask. */
template <typename T> T __shfl_xor_sync(unsigned int mask, T v, int lane_mask)
{
	int t = (int)threadIdx.x, w = t / 32;
	T r;

	static_assert(sizeof(T) <= 8, "an exchange slot holds 8 bytes");
	(void)mask;
	memcpy(emu_lane_slot(t), &v, sizeof(T));
	emu_warp_barrier(w)->arrive_and_wait();
	memcpy(&r, emu_lane_slot((t & ~31) | ((t & 31) ^ lane_mask)), sizeof(T));
	emu_warp_barrier(w)->arrive_and_wait();
	return r;
}

/* Run f for every thread of a grid x block launch. */
void emu_launch(dim3 grid, dim3 block, std::function<void()> f);

/* The runtime calls the kernels' host code makes: copies are memcpy. */
typedef int cudaError_t;
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDefault };
static inline cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind k)
{
	(void)k;
	memcpy(dst, src, n);
	return 0;
}
#define CUDA_CHECK(call)	((void)(call))

/* Column sums over rows (elementwise.cu), as kernels/cuda/cuda.h declares. */
void kgpt_cuda_colsum(float *out, const act_t *in, int N, int n);

#define KGPT_LAUNCH(k, grid, block, shmem, ...)					\
	emu_launch(dim3(grid), dim3(block), [&]() { k(__VA_ARGS__); })

#include "kernels/cuda/common.cuh"

#endif /* KGPT_TESTS_CUDA_EMU_H */
