/* SPDX-License-Identifier: MIT */
/*
 * OpenMP's runtime calls, or stand-ins for one thread when a file is
 * compiled without -fopenmp (host code only).
 */
#ifndef KGPT_OMP_H
#define KGPT_OMP_H

#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
static inline int omp_get_max_threads(void) { return 1; }
#endif

#endif /* KGPT_OMP_H */
