/* SPDX-License-Identifier: MIT */
/*
 * Time and memory of this process: the one way the trainer, the tools and
 * the benchmarks read them.
 */
#ifndef KGPT_PROC_H
#define KGPT_PROC_H

#include <stddef.h>
#include <time.h>
#include <sys/resource.h>

/* Seconds on clock id: CLOCK_MONOTONIC (wall), CLOCK_PROCESS_CPUTIME_ID
 * (CPU time of all threads) or CLOCK_THREAD_CPUTIME_ID (this thread's).
 * Through the vDSO: about 25 ns. */
static inline double kgpt_clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Wall-clock seconds on the monotonic clock. */
static inline double kgpt_now_s(void)
{
	return kgpt_clock_s(CLOCK_MONOTONIC);
}

/* Peak resident set size of this process so far, bytes. */
static inline size_t kgpt_peak_rss_bytes(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (size_t)ru.ru_maxrss * 1024;	/* Linux reports KiB */
}

#endif /* KGPT_PROC_H */
