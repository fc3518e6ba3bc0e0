// SPDX-License-Identifier: MIT
/*
 * The optimizer's kernels on the GPU (kernels/kernels.h): AdamW
 * (Loshchilov & Hutter 2019) with Adam's bias correction, AdamW-SPAM's
 * update (Huang et al. 2025: spike-aware clipping, AMSGrad) and its soft
 * reset. All state float32; the bias corrections are computed on the host
 * in double as on the CPU. One pass, grid-stride.
 */
#include <math.h>
#include "kernels/cuda/cuda.h"

#define THREADS		256
#define MAX_BLOCKS	65536u

__global__ void adamw_k(float *__restrict__ p, const float *__restrict__ g,
			float *__restrict__ m, float *__restrict__ v, size_t n, float lr,
			float b1, float b2, float eps, float wd, float c1, float c2)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		float mi = b1 * m[i] + (1 - b1) * g[i];
		float vi = b2 * v[i] + (1 - b2) * g[i] * g[i];

		m[i] = mi;
		v[i] = vi;
		p[i] -= lr * (mi * c1 / (sqrtf(vi * c2) + eps) + wd * p[i]);
	}
}

void adamw_update(float *p, const float *g, float *m, float *v, size_t n,
		  float lr, float beta1, float beta2, float eps, float wd,
		  int t)
{
	float c1 = (float)(1 / (1 - pow(beta1, t))), c2 = (float)(1 / (1 - pow(beta2, t)));

	if (n)
		KGPT_LAUNCH(adamw_k, kgpt_blocks(n, THREADS, MAX_BLOCKS), THREADS, 0,
			    p, g, m, v, n, lr, beta1, beta2, eps, wd, c1, c2);
}

/* SPAM's update; *clipped += the elements clipped (an integer count, so
 * the atomic add is exact and the result deterministic). */
__global__ void adamw_spam_k(float *__restrict__ p, const float *__restrict__ g,
			     float *__restrict__ m, float *__restrict__ v,
			     float *__restrict__ vmax, size_t n, float lr, float b1, float b2,
			     float eps, float wd, float c1, float c2, float theta,
			     unsigned long long *clipped)
{
	unsigned long long mine = 0;

	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		float gi = g[i], mi, vi;

		if (theta > 0 && v[i] > 0) {	/* v = 0: no estimate yet */
			float lim = sqrtf(theta * v[i]);

			if (gi > lim || gi < -lim) {
				gi = gi > 0 ? lim : -lim;
				mine++;
			}
		}
		mi = b1 * m[i] + (1 - b1) * gi;
		vi = b2 * v[i] + (1 - b2) * gi * gi;
		m[i] = mi;
		v[i] = vi;
		if (vi > vmax[i])
			vmax[i] = vi;
		p[i] -= lr * (mi * c1 / (sqrtf(vmax[i] * c2) + eps) + wd * p[i]);
	}
	if (mine)
		atomicAdd(clipped, mine);
}

size_t adamw_spam_update(float *p, const float *g, float *m, float *v, float *vmax,
			 size_t n, float lr, float beta1, float beta2, float eps, float wd,
			 int t, float theta)
{
	float c1 = (float)(1 / (1 - pow(beta1, t))), c2 = (float)(1 / (1 - pow(beta2, t)));
	unsigned long long *cnt, got;

	if (!n)
		return 0;
	cnt = (unsigned long long *)kgpt_cuda_scratch(KGPT_SCRATCH_COUNT, sizeof(*cnt));
	CUDA_CHECK(cudaMemsetAsync(cnt, 0, sizeof(*cnt), 0));
	KGPT_LAUNCH(adamw_spam_k, kgpt_blocks(n, THREADS, MAX_BLOCKS), THREADS, 0,
		    p, g, m, v, vmax, n, lr, beta1, beta2, eps, wd, c1, c2, theta, cnt);
	kgpt_download(&got, cnt, sizeof(got));
	return (size_t)got;
}

__global__ void soft_reset_k(float *m, float *v, float *vmax, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		m[i] *= 0.5f;
		v[i] *= 0.9f;
		if (vmax)
			vmax[i] *= 0.9f;
	}
}

void spam_soft_reset(float *m, float *v, float *vmax, size_t n)
{
	if (n)
		KGPT_LAUNCH(soft_reset_k, kgpt_blocks(n, THREADS, MAX_BLOCKS), THREADS, 0,
			    m, v, vmax, n);
}
