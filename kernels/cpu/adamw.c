// SPDX-License-Identifier: MIT
/*
 * AdamW (Loshchilov & Hutter 2019, algorithm 2, with Adam's bias
 * correction from Kingma & Ba 2015):
 *	m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *	p -= lr * (m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + wd * p)
 * Always float: the optimiser state is float32 even in float64 test builds.
 * Also AdamW-SPAM's update and the soft reset of its moments.
 * Memory bound (4 streams in, 3 out); one pass, parallel over blocks.
 */
#include <math.h>
#include "kernels/kernels.h"
#include "kernels/cpu/kutil.h"

#ifdef __AVX__
#include <immintrin.h>
#endif

struct adamw_k {
	float lr, b1, b2, eps, wd;
	float c1, c2;		/* 1 / (1 - b^t), the bias corrections */
};

/* Elements [i, end) one at a time. */
static void adamw_scalar(float *restrict p, const float *restrict g,
			 float *restrict m, float *restrict v, size_t i,
			 size_t end, const struct adamw_k *k)
{
	for (; i < end; i++) {
		float mi = k->b1 * m[i] + (1 - k->b1) * g[i];
		float vi = k->b2 * v[i] + (1 - k->b2) * g[i] * g[i];

		m[i] = mi;
		v[i] = vi;
		p[i] -= k->lr * (mi * k->c1 / (sqrtf(vi * k->c2) + k->eps) +
				 k->wd * p[i]);
	}
}

#ifdef __AVX__
/*
 * Elements [i, end) eight at a time; returns where it stopped. Written
 * with intrinsics because sqrtf() loops are not vectorised by gcc unless
 * -fno-math-errno.
 */
static size_t adamw_avx(float *p, const float *g, float *m, float *v,
			size_t i, size_t end, const struct adamw_k *k)
{
	const __m256 b1 = _mm256_set1_ps(k->b1), nb1 = _mm256_set1_ps(1 - k->b1);
	const __m256 b2 = _mm256_set1_ps(k->b2), nb2 = _mm256_set1_ps(1 - k->b2);
	const __m256 c1 = _mm256_set1_ps(k->c1), c2 = _mm256_set1_ps(k->c2);
	const __m256 lr = _mm256_set1_ps(k->lr), eps = _mm256_set1_ps(k->eps);
	const __m256 wd = _mm256_set1_ps(k->wd);

	for (; i + 8 <= end; i += 8) {
		__m256 gi = _mm256_loadu_ps(g + i), pi = _mm256_loadu_ps(p + i);
		__m256 mi = _mm256_mul_ps(b1, _mm256_loadu_ps(m + i));
		__m256 vi = _mm256_mul_ps(b2, _mm256_loadu_ps(v + i));
		__m256 d, u;

		mi = _mm256_add_ps(mi, _mm256_mul_ps(nb1, gi));
		vi = _mm256_add_ps(vi, _mm256_mul_ps(_mm256_mul_ps(nb2, gi), gi));
		_mm256_storeu_ps(m + i, mi);
		_mm256_storeu_ps(v + i, vi);
		d = _mm256_add_ps(_mm256_sqrt_ps(_mm256_mul_ps(vi, c2)), eps);
		u = _mm256_div_ps(_mm256_mul_ps(mi, c1), d);
		u = _mm256_add_ps(u, _mm256_mul_ps(wd, pi));
		_mm256_storeu_ps(p + i, _mm256_sub_ps(pi, _mm256_mul_ps(lr, u)));
	}
	return i;
}
#endif

/*
 * One AdamW step of n elements: p (params), g (grads), m, v (moments), all
 * float (n). lr, beta1, beta2, eps, wd as in the formula; t >= 1 the step
 * number. Each thread updates one contiguous block.
 */
void adamw_update(float *p, const float *g, float *m, float *v, size_t n,
		  float lr, float beta1, float beta2, float eps, float wd,
		  int t)
{
	struct adamw_k k = {
		.lr = lr, .b1 = beta1, .b2 = beta2, .eps = eps, .wd = wd,
		.c1 = (float)(1 / (1 - pow(beta1, t))),
		.c2 = (float)(1 / (1 - pow(beta2, t))),
	};

#pragma omp parallel if (n >= KPAR_MIN)
	{
		size_t i0, i1;

		kthread_range(n, 16, &i0, &i1);
#ifdef __AVX__
		i0 = adamw_avx(p, g, m, v, i0, i1, &k);
#endif
		adamw_scalar(p, g, m, v, i0, i1, &k);
	}
}

/*
 * AdamW-SPAM's update (Huang et al. 2025; gpt2/Kconfig.optimizer): with
 * theta > 0 each gradient element is first clipped to +-sqrt(theta v),
 * v its second moment before this step (not where v is still 0: no
 * estimate yet); then AdamW with AMSGrad, the
 * denominator from vmax = max(vmax, v) (Reddi et al. 2018):
 *	m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  vmax = max(vmax, v)
 *	p -= lr * (m / (1 - b1^t) / (sqrt(vmax / (1 - b2^t)) + eps) + wd * p)
 * p, g, m, v, vmax: float (n); t >= 1. Returns the number of elements
 * clipped. Scalar: the clip and the max make it branchy, and SPAM's cost
 * is measured in `make bench`.
 */
size_t adamw_spam_update(float *p, const float *g, float *m, float *v, float *vmax,
			 size_t n, float lr, float beta1, float beta2, float eps, float wd,
			 int t, float theta)
{
	const float c1 = (float)(1 / (1 - pow(beta1, t)));
	const float c2 = (float)(1 / (1 - pow(beta2, t)));
	size_t clipped = 0;

#pragma omp parallel for reduction(+:clipped) if (n >= KPAR_MIN)
	for (size_t i = 0; i < n; i++) {
		float gi = g[i], mi, vi;

		if (theta > 0 && v[i] > 0) {	/* v = 0: no estimate yet */
			float lim = sqrtf(theta * v[i]);

			if (gi > lim || gi < -lim) {
				gi = gi > 0 ? lim : -lim;
				clipped++;
			}
		}
		mi = beta1 * m[i] + (1 - beta1) * gi;
		vi = beta2 * v[i] + (1 - beta2) * gi * gi;
		m[i] = mi;
		v[i] = vi;
		if (vi > vmax[i])
			vmax[i] = vi;
		p[i] -= lr * (mi * c1 / (sqrtf(vmax[i] * c2) + eps) + wd * p[i]);
	}
	return clipped;
}

/* SPAM's soft reset: m *= 0.5, v *= 0.9, vmax *= 0.9 (vmax may be NULL). */
void spam_soft_reset(float *m, float *v, float *vmax, size_t n)
{
#pragma omp parallel for if (n >= 65536)
	for (size_t i = 0; i < n; i++) {
		m[i] *= 0.5f;
		v[i] *= 0.9f;
		if (vmax)
			vmax[i] *= 0.9f;
	}
}
