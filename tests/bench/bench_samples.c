// SPDX-License-Identifier: MIT
/*
 * bench_samples.c - the samples with hmmgpu's thrashing mitigation on and
 * off, in one run: does mitigation slow down programs that do not thrash?
 *
 * Runs inside the test VM as root (tools/bench --samples), from the top of
 * the build directory: it runs samples/vecadd, saxpy, stencil and gather
 * as they are built, -r times in each mode, the modes alternating (and
 * which goes first, so that neither always runs after the other) so that
 * a change of the host's load hits both, with the module parameter
 * /sys/module/hmmgpu/parameters/thrash_threshold as loaded ("on") and 0
 * ("off"), and puts the loaded value back at the end.  A sample that
 * fails (its own data checks) stops the benchmark.  Printed: the median
 * wall time of each sample in each mode, the ratio on/off (1.00: no
 * difference; above: mitigation costs), and the pins mitigation made.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "drm_node.h"
#include "hmmgpu_drm.h"

#define MAX_RUNS 32

static void die(const char *what, int err)
{
	bench_die("bench_samples", what, err);
}

#define PARAM BENCH_THRASH_PARAM
#define param_read(v) bench_param_read(PARAM, v)
#define param_write(v) bench_param_write(PARAM, v)

static const char *const samples[][4] = {
	{ "samples/vecadd", NULL },
	{ "samples/saxpy", NULL },
	{ "samples/stencil", NULL },
	{ "samples/gather", "--max-mib", "64", NULL },
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

/* Thrashing pins made so far on the device open as @fd. */
static uint64_t pins(int fd)
{
	struct drm_hmmgpu_stats st = { .scope = HMMGPU_STATS_DEVICE };

	if (ioctl(fd, DRM_IOCTL_HMMGPU_STATS, &st))
		die("STATS", errno);
	return st.thrash_pins;
}

/* Runs sample @i, its output to /dev/null: wall seconds. */
static double run(unsigned int i)
{
	double t0 = bench_now_s();
	int status;
	pid_t pid = fork();

	if (pid < 0)
		die("fork", errno);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0) {
			dup2(null, 1);
			close(null);
		}
		execv(samples[i][0], (char *const *)samples[i]);
		fprintf(stderr, "bench_samples: %s: %s (run from the top of "
			"the build directory)\n", samples[i][0],
			strerror(errno));
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid)
		die("waitpid", errno);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "bench_samples: %s failed (status 0x%x): no "
			"number is printed\n", samples[i][0], status);
		exit(1);
	}
	return bench_now_s() - t0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_samples [-r RUNS]\n"
		"  -r RUNS  runs of each sample in each mode, median reported "
		"(default 5, at most %d)\n", MAX_RUNS);
}

int main(int argc, char **argv)
{
	static double on[NSAMPLES][MAX_RUNS], off[NSAMPLES][MAX_RUNS];
	uint64_t pins_on[NSAMPLES] = { 0 };
	unsigned long runs = 5;
	unsigned int loaded;
	int fd, opt, ret;

	while ((opt = getopt(argc, argv, "r:h")) != -1) {
		switch (opt) {
		case 'r': runs = strtoul(optarg, NULL, 0); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!runs || runs > MAX_RUNS) {
		usage(stderr);
		return 2;
	}
	fd = bench_open_first_device("bench_samples");
	loaded = bench_thrash_loaded("bench_samples");

	for (unsigned int i = 0; i < NSAMPLES; i++) {
		for (unsigned long r = 0; r < 2 * runs; r++) {
			/* off, on, on, off, off, on...: neither mode always first */
			bool mode_on = (r ^ (r >> 1)) & 1;
			uint64_t p0;

			if ((ret = param_write(mode_on ? loaded : 0)))
				die("writing " PARAM, -ret);
			p0 = pins(fd);
			if (mode_on)
				on[i][r / 2] = run(i);
			else
				off[i][r / 2] = run(i);
			if (mode_on)
				pins_on[i] += pins(fd) - p0;
		}
	}
	param_write(loaded);

	printf("samples with thrashing mitigation on (thrash_threshold=%u) "
	       "and off (0), median of %lu runs\n", loaded, runs);
	printf("%-26s %10s %10s %8s %10s\n", "sample", "on (s)", "off (s)",
	       "on/off", "pins/run");
	for (unsigned int i = 0; i < NSAMPLES; i++) {
		char name[64] = "";

		for (int k = 0; samples[i][k]; k++)
			snprintf(name + strlen(name), sizeof(name) - strlen(name),
				 "%s%s", k ? " " : "",
				 k ? samples[i][k] : strrchr(samples[i][k], '/') + 1);
		qsort(on[i], runs, sizeof(double), bench_cmp_double);
		qsort(off[i], runs, sizeof(double), bench_cmp_double);
		printf("%-26s %10.3f %10.3f %7.2fx %10.1f\n", name,
		       on[i][runs / 2], off[i][runs / 2],
		       on[i][runs / 2] / off[i][runs / 2],
		       (double)pins_on[i] / runs);
	}
	close(fd);
	return 0;
}
