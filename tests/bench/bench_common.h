/* SPDX-License-Identifier: MIT */
/*
 * bench_common.h - what the small benchmarks (bench_pingpong,
 * bench_samples, bench_backing, bench_readmostly) share: a clock, the
 * sort order of their median, the one-line fatal error, and reading and
 * writing an hmmgpu module parameter.  Header-only: each is one program.
 */
#ifndef HMM_BENCH_COMMON_H
#define HMM_BENCH_COMMON_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The thrashing threshold, which bench_pingpong and bench_samples flip. */
#define BENCH_THRASH_PARAM "/sys/module/hmmgpu/parameters/thrash_threshold"

/* CLOCK_MONOTONIC in seconds. */
static inline double bench_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* qsort() order of doubles, ascending. */
static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* "@prog: @what: strerror(@err)" on stderr, and exit status 2. */
static inline void bench_die(const char *prog, const char *what, int err)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(err));
	exit(2);
}

/* The number in @path into *@v: 0 or a negative errno. */
static inline int bench_param_read(const char *path, unsigned int *v)
{
	FILE *f = fopen(path, "re");
	int ok;

	if (!f)
		return -errno;
	ok = fscanf(f, "%u", v) == 1;
	fclose(f);
	return ok ? 0 : -EINVAL;
}

/* @v written to @path: 0 or a negative errno. */
static inline int bench_param_write(const char *path, unsigned int v)
{
	FILE *f = fopen(path, "we");
	int ret = 0;

	if (!f)
		return -errno;
	if (fprintf(f, "%u\n", v) < 0)
		ret = -EIO;
	if (fclose(f) && !ret)
		ret = -errno;
	return ret;
}

#endif
