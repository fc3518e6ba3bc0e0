/* SPDX-License-Identifier: MIT */
/*
 * Random numbers for kgpt.
 *
 * Two kinds:
 *  - struct kgpt_rng: a sequential generator (xoshiro256** by Blackman &
 *    Vigna, seeded through splitmix64) for initialisation and data order.
 *    Its whole state is 32 bytes and is saved in checkpoints.
 *  - kgpt_hash_uniform(): a counter-based generator (a splitmix64 finaliser
 *    of seed ^ index). A dropout mask element is a pure function of
 *    (seed, index), so a backward pass or a recomputation regenerates the
 *    exact mask of its forward pass without storing it.
 */
#ifndef KGPT_RNG_H
#define KGPT_RNG_H

#include <stdint.h>
#include <math.h>

/* The counter-based functions run in GPU kernels too (kernels/cuda/). */
#ifdef __CUDACC__
#define KGPT_HD		__host__ __device__
#else
#define KGPT_HD
#endif

struct kgpt_rng {
	uint64_t s[4];
};

static inline KGPT_HD uint64_t kgpt_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline void kgpt_rng_seed(struct kgpt_rng *rng, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		rng->s[i] = kgpt_splitmix64(&seed);
}

static inline uint64_t kgpt_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256**: 64 random bits. */
static inline uint64_t kgpt_rng_u64(struct kgpt_rng *rng)
{
	uint64_t *s = rng->s;
	uint64_t r = kgpt_rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = kgpt_rotl(s[3], 45);
	return r;
}

/* Uniform in [0, 1) with 24 bits (float) resolution. */
static inline float kgpt_rng_uniform(struct kgpt_rng *rng)
{
	return (kgpt_rng_u64(rng) >> 40) * (1.0f / 16777216.0f);
}

/* Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; bias < 2^-32). */
static inline uint64_t kgpt_rng_below(struct kgpt_rng *rng, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)kgpt_rng_u64(rng) * n) >> 64);
}

/* Standard normal by Box-Muller (one of the pair; simplicity over speed). */
static inline float kgpt_rng_normal(struct kgpt_rng *rng)
{
	float u1 = kgpt_rng_uniform(rng), u2 = kgpt_rng_uniform(rng);

	if (u1 < 1e-30f)
		u1 = 1e-30f;
	return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}

/* Counter-based: uniform in [0, 1) as a pure function of (seed, idx). */
static inline KGPT_HD float kgpt_hash_uniform(uint64_t seed, uint64_t idx)
{
	uint64_t x = seed ^ (idx * 0xd1b54a32d192ed03ULL);

	return (kgpt_splitmix64(&x) >> 40) * (1.0f / 16777216.0f);
}

/*
 * Dropout keep decision for element idx of the mask identified by seed:
 * returns 1 with probability 1 - p. Callers scale kept values by 1/(1-p).
 */
static inline KGPT_HD int kgpt_dropout_keep(uint64_t seed, uint64_t idx, float p)
{
	return kgpt_hash_uniform(seed, idx) >= p;
}

#endif /* KGPT_RNG_H */
