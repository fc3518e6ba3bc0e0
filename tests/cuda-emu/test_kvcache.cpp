// SPDX-License-Identifier: MIT
/*
 * kernels/cuda/kvcache.cu under the host emulation (include/kernels/cuda/
 * cuda.h), against the CPU backend (kernels/cpu/kvcache.c, kvprune.c):
 *  - generation, kv_cache_attend(): T tokens through a cache per layer,
 *    KV and V_ONLY, with and without eviction; every token's output
 *    within 1e-5 of the CPU's (relative L2) and the same kept positions
 *    in every head at the end;
 *  - the walk of training, attention_forward_pruned(): KV and V_ONLY,
 *    with dropout; out and lse within 1e-5 (relative L2), the eviction
 *    steps equal.
 * The sums run in another order than the CPU's (and expf is not
 * kexp_sum()), so the outputs differ in the last bits: about 1e-7.
 * The emulated functions are the CUDA file's, renamed emu_* at compile
 * time; with k >= T the CUDA walk calls attention_forward(), which is
 * the CPU's here (this test is about the walk). TAP on stdout.
 */
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <vector>

extern "C" {
#include "kernels/kernels.h"
#include "ra/kvprune.h"

void emu_kv_cache_attend(struct kv_cache *c, real *out, const real *q, const real *k,
			 const real *v);
int emu_attention_forward_pruned(real *out, real *lse, int *evict_step, const real *qkv,
				 int k, int recency, int v_only, int B, int T, int C, int NH,
				 float dropout_p, uint64_t dropout_seed);

/* The CUDA walk's k >= T path: the CPU's attention. */
void emu_attention_forward(real *out, real *lse, const real *qkv, int B, int T, int C, int NH,
			   float dropout_p, uint64_t dropout_seed)
{
	attention_forward(out, lse, qkv, B, T, C, NH, dropout_p, dropout_seed);
}
}
#include "tests/tap.h"

static std::vector<float> uniform(size_t n, unsigned int seed, float scale)
{
	std::vector<float> v(n);

	srand(seed);
	for (auto &x : v)
		x = (rand() / (float)RAND_MAX - 0.5f) * scale;
	return v;
}

/* |a - b| / |a|, L2 norms; a is the CPU's. */
static double rel_l2(const float *a, const float *b, size_t n)
{
	double d = 0, r = 0;

	for (size_t i = 0; i < n; i++) {
		d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
		r += (double)a[i] * a[i];
	}
	return r > 0 ? sqrt(d / r) : sqrt(d);
}

static std::set<int> kept(const struct kv_cache *c, int h)
{
	std::set<int> s;

	for (int i = 0; i < kv_cache_len(c, h); i++)
		s.insert(c->pos[(size_t)h * c->cap + i]);
	return s;
}

static void generation(int v_only, int T, int NH, int hs, int k, int rec)
{
	const int C = NH * hs;
	struct kvprune_cfg cfg = {};
	struct kv_cache cpu, emu;
	std::vector<float> rows = uniform((size_t)T * 3 * C, 7, 2), o1(C), o2(C);
	double worst = 0;
	int same = 1;

	cfg.mode = v_only ? KVPRUNE_V_ONLY : KVPRUNE_KV;
	cfg.k = k;
	cfg.recency = rec;
	if (kv_cache_init(&cpu, NH, C, T, &cfg) || kv_cache_init(&emu, NH, C, T, &cfg)) {
		ok(0, "kv_cache_init");
		return;
	}
	for (int t = 0; t < T; t++) {
		const float *r = rows.data() + (size_t)t * 3 * C;

		kv_cache_step(&cpu, o1.data(), r, r + C, r + 2 * C);
		emu_kv_cache_attend(&emu, o2.data(), r, r + C, r + 2 * C);
		emu.t++;
		worst = fmax(worst, rel_l2(o1.data(), o2.data(), C));
	}
	for (int h = 0; h < NH; h++)
		same &= kept(&cpu, h) == kept(&emu, h) && kv_cache_len(&emu, h) == (k < T ? k : T);
	ok(worst < 1e-5 && same, "generation %s, T %d, %d heads of %d, k %d, recency %d: "
	   "outputs within %.1e of the CPU's, the same kept positions in every head",
	   v_only ? "V_ONLY" : "KV", T, NH, hs, k, rec, worst);
	kv_cache_free(&cpu);
	kv_cache_free(&emu);
}

static void walk(int v_only, int B, int T, int NH, int hs, int k, int rec, float p)
{
	const int C = NH * hs;
	const size_t N = (size_t)B * T, nev = (size_t)B * NH * T;
	std::vector<float> qkv = uniform(N * 3 * C, 3, 3), o1(N * C), o2(N * C), l1(nev), l2(nev);
	std::vector<int> e1(nev), e2(nev);
	int r1, r2, evicted = 0, differ = 0;
	double dout, dlse;

	r1 = attention_forward_pruned(o1.data(), l1.data(), e1.data(), qkv.data(), k, rec,
				      v_only, B, T, C, NH, p, 99);
	r2 = emu_attention_forward_pruned(o2.data(), l2.data(), e2.data(), qkv.data(), k, rec,
					  v_only, B, T, C, NH, p, 99);
	dout = rel_l2(o1.data(), o2.data(), o1.size());
	dlse = rel_l2(l1.data(), l2.data(), l1.size());
	for (size_t i = 0; i < nev; i++) {
		differ += e1[i] != e2[i];
		evicted += e1[i] < T;
	}
	ok(!r1 && !r2 && dout < 1e-5 && dlse < 1e-5 && !differ && (k >= T || evicted),
	   "walk %s, B %d, T %d, %d heads of %d, k %d, recency %d, dropout %.1f: out within "
	   "%.1e, lse %.1e of the CPU's, eviction steps equal (%d of %zu keys evicted)",
	   v_only ? "V_ONLY" : "KV", B, T, NH, hs, k, rec, p, dout, dlse, evicted, nev);
}

int main(void)
{
	generation(0, 40, 2, 16, 12, 4);
	generation(1, 40, 2, 16, 12, 4);
	generation(0, 24, 2, 8, 30, 4);		/* k > T: nothing evicted */
	walk(0, 1, 36, 2, 16, 10, 3, 0.0f);
	walk(1, 2, 30, 1, 32, 9, 3, 0.1f);
	walk(0, 1, 30, 2, 8, 8, 2, 0.1f);
	walk(0, 1, 20, 2, 16, 24, 4, 0.0f);	/* k >= T: attention_forward */
	return tap_done();
}
