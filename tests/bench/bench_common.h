/* SPDX-License-Identifier: MIT */
/*
 * bench_common.h - what the small benchmarks (bench_pingpong,
 * bench_samples, bench_backing, bench_readmostly) share: a clock, the
 * sort order of their median, the one-line fatal error, reading and
 * writing an hmmgpu module parameter, opening the first device and
 * mapping a view.  Header-only: each is one program.
 */
#ifndef HMM_BENCH_COMMON_H
#define HMM_BENCH_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

#include "drm_node.h"
#include "hmmgpu_drm.h"

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

/*
 * The first hmmgpu device, open (the others are closed); without one,
 * a line on stderr saying to load hmmgpu.ko, and exit status 2.
 */
static inline int bench_open_first_device(const char *prog)
{
	struct hmm_node nodes[8];
	int n, fd;

	n = hmm_node_scan(nodes, 8, NULL);
	if (n <= 0) {
		fprintf(stderr, "%s: no hmmgpu device: load hmmgpu.ko "
			"(tools/bench does)\n", prog);
		exit(2);
	}
	fd = nodes[0].fd;
	nodes[0].fd = -1;
	hmm_node_close_all(nodes, n);
	return fd;
}

/*
 * The thrashing threshold hmmgpu was loaded with, the "on" setting of
 * the benchmarks that flip it; 3, the default, when it was loaded off.
 */
static inline unsigned int bench_thrash_loaded(const char *prog)
{
	unsigned int loaded;
	int ret = bench_param_read(BENCH_THRASH_PARAM, &loaded);

	if (ret)
		bench_die(prog, "reading " BENCH_THRASH_PARAM " (a driver "
			  "without thrashing mitigation?)", -ret);
	return loaded ? loaded : 3;
}

/*
 * Registers @buf (@reg->size bytes) as a view of @fd and maps it
 * read-write; on failure, bench_die().
 */
static inline void *bench_view_map(const char *prog, int fd,
				   struct drm_hmmgpu_view_register *reg,
				   void *buf)
{
	void *view;

	reg->start = (uintptr_t)buf;
	if (ioctl(fd, DRM_IOCTL_HMMGPU_VIEW_REGISTER, reg))
		bench_die(prog, "VIEW_REGISTER", errno);
	view = mmap(NULL, reg->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		    (off_t)reg->offset);
	if (view == MAP_FAILED)
		bench_die(prog, "mmap of the view", errno);
	return view;
}

#endif
