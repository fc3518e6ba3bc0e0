// SPDX-License-Identifier: MIT
/*
 * The host emulation's runtime (include/kernels/cuda/cuda.h): launches,
 * barriers, the lane exchange and the backend's device scratch.
 */
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>
#include "kernels/cuda/cuda.h"

thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

static std::barrier<> *block_bar;
static std::vector<std::unique_ptr<std::barrier<>>> warp_bars;
static std::vector<uint64_t> lanes;

std::barrier<> *emu_block_barrier(void)
{
	return block_bar;
}

std::barrier<> *emu_warp_barrier(int warp)
{
	return warp_bars[warp].get();
}

unsigned char *emu_lane_slot(int thread)
{
	return (unsigned char *)&lanes[thread];
}

void emu_launch(dim3 grid, dim3 block, std::function<void()> f)
{
	unsigned int n = block.x;

	if (block.y != 1 || block.z != 1 || grid.z != 1 || !n || n > 1024) {
		fprintf(stderr, "cuda-emu: blocks of %u x %u x %u threads: only (1..1024, 1, 1)\n",
			block.x, block.y, block.z);
		abort();
	}
	gridDim = grid;
	blockDim = block;
	lanes.assign(n, 0);
	warp_bars.clear();
	/* a last, partial warp exchanges among its own lanes only */
	for (unsigned int w = 0; w < (n + 31) / 32; w++)
		warp_bars.emplace_back(new std::barrier<>(n - 32 * w < 32 ? n - 32 * w : 32));
	for (unsigned int by = 0; by < grid.y; by++)
		for (unsigned int bx = 0; bx < grid.x; bx++) {
			std::barrier<> bar(n);
			std::vector<std::thread> threads;

			block_bar = &bar;
			for (unsigned int t = 0; t < n; t++)
				threads.emplace_back([&f, t, bx, by] {
					threadIdx = dim3(t);
					blockIdx = dim3(bx, by);
					f();
				});
			for (auto &th : threads)
				th.join();
		}
}

/* kernels/cuda/common.cuh: host memory, grown on demand, never freed. */
void *kgpt_cuda_scratch(int slot, size_t bytes)
{
	static void *buf[KGPT_SCRATCH_SLOTS];
	static size_t have[KGPT_SCRATCH_SLOTS];

	if (bytes > have[slot]) {
		free(buf[slot]);
		buf[slot] = calloc(1, bytes);
		have[slot] = bytes;
		if (!buf[slot]) {
			fprintf(stderr, "cuda-emu: out of memory\n");
			abort();
		}
	}
	return buf[slot];
}
