/* SPDX-License-Identifier: MIT */
/*
 * Minimal TAP (Test Anything Protocol) producer for kgpt's C tests.
 * Each ok()/is_close() prints one "ok N - name" or "not ok N - name" line;
 * tap_done() prints the plan and exits non-zero when anything failed.
 * The runner (scripts/run-tests.sh) adds up every binary's counts.
 */
#ifndef KGPT_TAP_H
#define KGPT_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>

static int tap_n, tap_failed;

static inline int ok(int cond, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

static inline void diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* |got - want| <= tol, printed with both values. */
#define is_close(got, want, tol, name)                                      \
	ok(fabs((double)(got) - (double)(want)) <= (tol),                   \
	   "%s (got %.9g, want %.9g, tol %.3g)", name, (double)(got),       \
	   (double)(want), (double)(tol))

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	if (tap_failed)
		printf("# %d of %d failed\n", tap_failed, tap_n);
	return tap_failed ? 1 : 0;
}

#endif /* KGPT_TAP_H */
