/* SPDX-License-Identifier: MIT */
/*
 * The CUDA backend's device helpers that need no CUDA runtime call: the
 * scratch slots, launch geometry and the warp and block reductions the
 * kernels share. kernels/cuda/cuda.h includes it after the CUDA headers;
 * so does tests/cuda-emu/include/kernels/cuda/cuda.h, the host emulation
 * that runs the kernels in `make check` without a GPU, so that both test
 * and build use these very functions.
 */
#ifndef KGPT_KERNELS_CUDA_COMMON_CUH
#define KGPT_KERNELS_CUDA_COMMON_CUH

#include <stddef.h>

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
	KGPT_SCRATCH_WEIGHT,	/* bf16: a weight rounded for one product */
	KGPT_SCRATCH_LOGITS,	/* bf16: the LM head's logit gradients, rounded */
	KGPT_SCRATCH_CONVERT,	/* bf16: kgpt_download_act()'s staging */
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

/*
 * Activations (act_t, kernels/kernels.h) to float and back: the identity
 * with float32 activations; with bf16 the exact widening and the rounding
 * to nearest even. Every kernel computes in float and touches act_t only
 * through these.
 */
__host__ __device__ __forceinline__ float a2f(act_t v)
{
	return (float)v;
}

__host__ __device__ __forceinline__ act_t f2a(float v)
{
	return (act_t)v;
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

#endif /* KGPT_KERNELS_CUDA_COMMON_CUH */
