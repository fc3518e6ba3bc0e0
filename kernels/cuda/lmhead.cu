// SPDX-License-Identifier: MIT
/*
 * LM head and softmax cross-entropy over the padded vocabulary on the GPU
 * (kernels/kernels.h), fused and chunked over rows as on the CPU: for a
 * chunk of cn rows, one cuBLAS product writes the logits (cn, V) into the
 * caller's scratch (row stride Vp), one block per row turns them into the
 * loss and, for backward, in place into
 *	dlogits[j] = dloss * (softmax(logits)[j] - [j == target]),
 * and two more products add dlogits @ wte to dx and dlogits^T @ x to dwte.
 * Only the first V columns and rows of wte are computed, read or written;
 * the padded columns V..Vp-1 of scratch are set to 0. The exponentials are
 * summed in double. Row offsets are size_t: B*T*Vp passes 2^31.
 * The logits are float32. With bf16 activations (act_t) the head's weight
 * is rounded to bf16 once per call and the logit gradients once per
 * chunk, so that every product has bf16 operands (gemm.cu).
 */
#include "kernels/cuda/cuda.h"

#define XENT_THREADS	512

__global__ void xent_rows(float *__restrict__ scratch, float *__restrict__ losses,
			  const int *__restrict__ targets, int V, int Vp, float dloss, int grad)
{
	__shared__ float shf[32];
	__shared__ double shd[32];
	float *l = scratch + (size_t)blockIdx.x * Vp;
	int t = targets[blockIdx.x];
	float lt = l[t], m = -INFINITY, f;
	double s = 0;

	for (int j = threadIdx.x; j < V; j += blockDim.x)
		m = fmaxf(m, l[j]);
	m = block_max(m, shf, -INFINITY);
	for (int j = threadIdx.x; j < V; j += blockDim.x) {
		float e = expf(l[j] - m);

		if (grad)
			l[j] = e;
		s += e;
	}
	s = block_sum(s, shd);
	if (threadIdx.x == 0)
		losses[blockIdx.x] = (float)(log(s) - (double)(lt - m));
	if (!grad)
		return;
	f = (float)(dloss / s);
	for (int j = threadIdx.x; j < Vp; j += blockDim.x)
		l[j] = j < V ? l[j] * f - (j == t ? dloss : 0.0f) : 0.0f;
}

static void lm_head(real *losses, act_t *dx, real *dwte, const act_t *x,
		    const real *wte, const int *targets, real dloss, int N,
		    int C, int V, int Vp, real *scratch, int chunk, int grad)
{
	const act_t *w = kgpt_cuda_as_act(wte, (size_t)V * C, KGPT_SCRATCH_WEIGHT);
	const cudaDataType_t A = KGPT_CUDA_ACT;

	for (int n0 = 0; n0 < N; n0 += chunk) {
		int cn = N - n0 < chunk ? N - n0 : chunk;
		const act_t *xc = x + (size_t)n0 * C, *dl;

		kgpt_cuda_gemm(0, 1, cn, V, C, 1, xc, A, C, w, C, 0, scratch, CUDA_R_32F, Vp);
		KGPT_LAUNCH(xent_rows, cn, XENT_THREADS, 0, scratch, losses + n0, targets + n0,
			    V, Vp, dloss, grad);
		if (!grad)
			continue;
		dl = kgpt_cuda_as_act(scratch, (size_t)cn * Vp, KGPT_SCRATCH_LOGITS);
		kgpt_cuda_gemm(0, 0, cn, C, V, 1, dl, A, Vp, w, C, 1, dx + (size_t)n0 * C, A, C);
		kgpt_cuda_gemm(1, 0, V, C, cn, 1, dl, A, Vp, xc, C, 1, dwte, CUDA_R_32F, C);
	}
}

void lm_head_forward(real *losses, const act_t *x, const real *wte,
		     const int *targets, int N, int C, int V, int Vp,
		     real *scratch, int chunk)
{
	lm_head(losses, NULL, NULL, x, wte, targets, 0, N, C, V, Vp, scratch, chunk, 0);
}

void lm_head_forward_backward(real *losses, act_t *dx, real *dwte,
			      const act_t *x, const real *wte,
			      const int *targets, real dloss, int N, int C,
			      int V, int Vp, real *scratch, int chunk)
{
	lm_head(losses, dx, dwte, x, wte, targets, dloss, N, C, V, Vp, scratch, chunk, 1);
}
