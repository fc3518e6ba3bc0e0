/* SPDX-License-Identifier: MIT */
/*
 * bf16 on the host, as the CUDA kernels see __nv_bfloat16: widened to
 * float exactly, rounded from float to nearest even (NaN stays a NaN).
 * The emulation's act_t with KGPT_ACT_BF16 (include/kernels/cuda/cuda.h),
 * and what tests/cuda-emu/test_layers.cpp feeds it.
 */
#ifndef KGPT_TESTS_EMU_BF16_H
#define KGPT_TESTS_EMU_BF16_H

#include <cstdint>
#include <cstring>

struct emu_bf16 {
	uint16_t bits;
	emu_bf16() = default;
	emu_bf16(float f)
	{
		uint32_t u;

		memcpy(&u, &f, 4);
		if ((u & 0x7fffffffu) > 0x7f800000u)
			bits = (uint16_t)((u >> 16) | 0x40);
		else
			bits = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
	}
	operator float() const
	{
		uint32_t u = (uint32_t)bits << 16;
		float f;

		memcpy(&f, &u, 4);
		return f;
	}
};

#endif /* KGPT_TESTS_EMU_BF16_H */
