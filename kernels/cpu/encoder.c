// SPDX-License-Identifier: MIT
/*
 * Token + position embedding (Radford et al. 2019, GPT-2: h0 = W_e[x] + W_p).
 */
#include "kernels/kernels.h"
#include "kernels/cpu/kutil.h"

/*
 * out[b,t,:] = wte[inp[b,t],:] + wpe[t,:].
 * out: (B,T,C); inp: (B,T), ids < Vp; wte: (Vp,C); wpe: (maxT,C), T <= maxT.
 * Parallel over the B*T rows.
 */
void encoder_forward(real *out, const int *inp, const real *wte,
		     const real *wpe, int B, int T, int C)
{
	long N = (long)B * T;

#pragma omp parallel for schedule(static) if (N * C >= KPAR_MIN)
	for (long n = 0; n < N; n++) {
		real *restrict o = out + n * C;
		const real *restrict e = wte + (size_t)inp[n] * C;
		const real *restrict p = wpe + (n % T) * C;

#pragma omp simd
		for (int c = 0; c < C; c++)
			o[c] = e[c] + p[c];
	}
}

/*
 * dwte[inp[b,t],:] += dout[b,t,:]; dwpe[t,:] += sum_b dout[b,t,:].
 * dwte: (Vp,C); dwpe: (maxT,C); dout: (B,T,C); inp: (B,T).
 * A token can repeat within the batch, so rows of dwte cannot be split
 * among threads; the channels are instead (each thread owns a slice of C
 * for every row). Rows are added in order, so the result is deterministic.
 */
void encoder_backward(real *dwte, real *dwpe, const real *dout,
		      const int *inp, int B, int T, int C)
{
	long N = (long)B * T;

#pragma omp parallel if (N * C >= KPAR_MIN)
	{
		size_t c0, c1;

		kthread_range(C, 16, &c0, &c1);
		for (long n = 0; n < N; n++) {
			real *restrict we = dwte + (size_t)inp[n] * C;
			real *restrict wp = dwpe + (n % T) * C;
			const real *restrict d = dout + n * C;

#pragma omp simd
			for (size_t c = c0; c < c1; c++) {
				we[c] += d[c];
				wp[c] += d[c];
			}
		}
	}
}
