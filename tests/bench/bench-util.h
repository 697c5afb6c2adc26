/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-util.h - the clock and the sort order that xpmem-touch and
 * xpmem-exporter share.
 */
#ifndef XPMEM_BENCH_UTIL_H
#define XPMEM_BENCH_UTIL_H

#include <time.h>

/* Seconds on CLOCK_MONOTONIC. */
static inline double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* qsort() order of doubles, smallest first. */
static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

#endif /* XPMEM_BENCH_UTIL_H */
