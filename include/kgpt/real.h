/* SPDX-License-Identifier: MIT */
/*
 * kgpt scalar type.
 *
 * Every kernel in kernels/ and ra/ computes in `real`, which is float32 in
 * the trainer. The test suite compiles the same sources a second time with
 * -DKGPT_F64 so that backward passes can be checked against central finite
 * differences in float64 (see the tests/unit/test_*_f64.c files).
 */
#ifndef KGPT_REAL_H
#define KGPT_REAL_H

#include <math.h>

#ifdef KGPT_F64
typedef double real;
#define R(x)		(x)
#define rexp		exp
#define rlog		log
#define rtanh		tanh
#define rsqrt_		sqrt
#define rfabs		fabs
#define cblas_gemm	cblas_dgemm
#define cblas_gemv	cblas_dgemv
#define REAL_NAME	"float64"
#else
typedef float real;
#define R(x)		(x##f)
#define rexp		expf
#define rlog		logf
#define rtanh		tanhf
#define rsqrt_		sqrtf
#define rfabs		fabsf
#define cblas_gemm	cblas_sgemm
#define cblas_gemv	cblas_sgemv
#define REAL_NAME	"float32"
#endif

#endif /* KGPT_REAL_H */
