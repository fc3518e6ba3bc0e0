// SPDX-License-Identifier: MIT
/*
 * GELU, tanh approximation (Hendrycks & Gimpel 2016, section 2):
 * gelu(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
 * Since 0.5 (1 + tanh(u)) = sigmoid(2u) = 1 / (1 + e^(-2u)), this is
 * computed as x * s with s = 1 / (1 + e^(-2u)), which needs one
 * exponential, saturates without overflow or NaN, and vectorises
 * (kexp() in kutil.h). The derivative follows from s' = s (1 - s):
 * gelu'(x) = s + x * s (1 - s) * 2 du/dx, du/dx = sqrt(2/pi) (1 + 3 *
 * 0.044715 x^2), with 1 - s = e s for e = e^(-2u), which avoids the
 * cancellation of 1 - s when s is near 1.
 */
#include "kernels/kernels.h"
#include "kernels/cpu/kutil.h"

#define GELU_K	R(0.7978845608028654)	/* sqrt(2/pi) */
#define GELU_A	R(0.044715)

/* e = e^(-2u) for the pre-activation x; then s = 1 / (1 + e). */
static inline real gelu_e(real x, real lo, real hi)
{
	return kexp(-2 * GELU_K * (x + GELU_A * x * x * x), lo, hi);
}

/* out (n) = gelu(inp (n)). out may alias inp. */
void gelu_forward(real *out, const real *inp, size_t n)
{
	real lo = KEXP_LO, hi = KEXP_HI;

	KHIDE(lo);
	KHIDE(hi);
#pragma omp parallel for simd schedule(static) if (n >= KPAR_MIN)
	for (size_t i = 0; i < n; i++)
		out[i] = inp[i] / (1 + gelu_e(inp[i], lo, hi));
}

/* dinp (n) += gelu'(inp) * dout; inp is the pre-activation (n). */
void gelu_backward(real *dinp, const real *inp, const real *dout, size_t n)
{
	real lo = KEXP_LO, hi = KEXP_HI;

	KHIDE(lo);
	KHIDE(hi);
#pragma omp parallel for simd schedule(static) if (n >= KPAR_MIN)
	for (size_t i = 0; i < n; i++) {
		real x = inp[i];
		real e = gelu_e(x, lo, hi);
		real s = 1 / (1 + e);
		real du = GELU_K * (1 + 3 * GELU_A * x * x);

		dinp[i] += dout[i] * (s + x * (e * s) * s * 2 * du);
	}
}
