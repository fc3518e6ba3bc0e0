// SPDX-License-Identifier: MIT
/*
 * The R-MLP's element-wise passes on the GPU (kernels/kernels.h; the layer
 * is ra/rmlp.c, the math docs/r-mlp.md). GELU in its sigmoid form with
 * the exponent clamped to [-80, 80], as kernels/cpu/rmlp.c. Backward
 * reduces the two scalar sums in double over a fixed grid and adds the
 * blocks' partials in order (deterministic), then the up-projection's
 * bias gradient is a column sum of dpre.
 */
#include "kernels/cuda/cuda.h"

#define THREADS		256
#ifndef BLOCKS		/* tests/cuda-emu sets fewer */
#define BLOCKS		1024	/* fixed: the partial sums' order depends on it */
#endif

#define GELU_K	0.7978845608028654f
#define GELU_C	0.044715f

/* e^{-2z}, z = sqrt(2/pi) (x + 0.044715 x^3), exponent in [-80, 80]. */
__device__ __forceinline__ float m2z(float x)
{
	float a = -2.0f * GELU_K * (x + GELU_C * x * x * x);

	return expf(fminf(fmaxf(a, -80.0f), 80.0f));
}

__global__ void rmlp_fwd(act_t *__restrict__ h, act_t *__restrict__ u,
			 const act_t *__restrict__ pre, float s_std, float s_low, size_t N,
			 int Ds, int Rr, int mixer)
{
	size_t Dff = (size_t)Ds + Rr, n = N * Dff;

	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		size_t r = i / Dff;
		int c = (int)(i % Dff);
		float x = a2f(pre[i]), g = x / (1.0f + m2z(x));

		if (c < Ds)
			h[i] = f2a(s_std * g);
		else if (mixer)
			u[r * Rr + (c - Ds)] = f2a(g);
		else
			h[i] = f2a(s_low * g);
	}
}

void rmlp_act_forward(act_t *h, act_t *u, const act_t *pre, real s_std, real s_low,
		      int N, int Ds, int Rr, int mixer)
{
	size_t n = (size_t)N * (Ds + Rr);

	KGPT_LAUNCH(rmlp_fwd, kgpt_blocks(n, THREADS, 65536), THREADS, 0, h, u, pre, s_std,
		    s_low, (size_t)N, Ds, Rr, mixer);
}

/*
 * dh -> dpre in place; part[2 * block] and part[2 * block + 1] get the
 * block's sums of dm GELU(x) over the standard and reciprocal columns.
 */
__global__ void rmlp_bwd(act_t *__restrict__ dh, double *__restrict__ part,
			 const act_t *__restrict__ pre, const act_t *__restrict__ du,
			 float s_std, float s_low, size_t N, int Ds, int Rr)
{
	__shared__ double sh[32];
	size_t Dff = (size_t)Ds + Rr, n = N * Dff;
	double as = 0, al = 0;

	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		size_t r = i / Dff;
		int c = (int)(i % Dff);
		float x = a2f(pre[i]), e = m2z(x), s = 1.0f / (1.0f + e), es = e * s;
		float dg = s * (1.0f + 2.0f * GELU_K * x * es * (1.0f + 3.0f * GELU_C * x * x));
		int low = c >= Ds;
		float dm = a2f(low && du ? du[r * Rr + (c - Ds)] : dh[i]);

		if (low)
			al += (double)(dm * x * s);
		else
			as += (double)(dm * x * s);
		dh[i] = f2a((low ? s_low : s_std) * dm * dg);
	}
	as = block_sum(as, sh);
	al = block_sum(al, sh);
	if (threadIdx.x == 0) {
		part[2 * blockIdx.x] = as;
		part[2 * blockIdx.x + 1] = al;
	}
}

/* The partials in order; *dw_std += acc_std, *dw_rec += gate acc_low,
 * *dgate += w_rec acc_low. One block. */
__global__ void rmlp_bwd_scalars(float *dw_std, float *dw_rec, float *dgate,
				 const double *part, int nparts, float w_rec, float gate)
{
	__shared__ double sh[32];
	double as = 0, al = 0;

	for (int b = threadIdx.x; b < nparts; b += blockDim.x) {
		as += part[2 * b];
		al += part[2 * b + 1];
	}
	as = block_sum(as, sh);
	al = block_sum(al, sh);
	if (threadIdx.x == 0) {
		*dw_std = (float)(*dw_std + as);
		*dw_rec = (float)(*dw_rec + (double)gate * al);
		if (dgate)
			*dgate = (float)(*dgate + (double)w_rec * al);
	}
}

void rmlp_act_backward(act_t *dh, real *dfcb, real *dw_std, real *dw_rec, real *dgate,
		       const act_t *pre, const act_t *du, real s_std, real s_low,
		       real w_rec, real gate, int N, int Ds, int Rr)
{
	double *part = (double *)kgpt_cuda_scratch(KGPT_SCRATCH_ATT, 2 * BLOCKS * sizeof(double));

	KGPT_LAUNCH(rmlp_bwd, BLOCKS, THREADS, 0, dh, part, pre, du, s_std, s_low, (size_t)N,
		    Ds, Rr);
	KGPT_LAUNCH(rmlp_bwd_scalars, 1, 1024, 0, dw_std, dw_rec, dgate, part, BLOCKS, w_rec,
		    gate);
	if (dfcb)
		kgpt_cuda_colsum(dfcb, dh, N, Ds + Rr);
}
