// SPDX-License-Identifier: MIT
/*
 * bench_pingpong.c - a buffer that the device and the CPU write in turn,
 * with hmmgpu's thrashing mitigation on (its thrash_* parameters as
 * loaded) and off (thrash_threshold=0), in one run.
 *
 * Runs inside the test VM as root (tools/bench --pingpong): it sets the
 * module parameter /sys/module/hmmgpu/parameters/thrash_threshold between
 * the two halves and puts the loaded value back at the end.
 *
 * A round: a device thread writes one word in every page of the buffer
 * through a view (the device's access), then the CPU writes one word in
 * every page (its own access); the next round starts when both are done.
 * Without mitigation every round migrates the whole buffer to the device
 * and back; with it, blocks that bounce are pinned in system memory after
 * thrash_threshold rounds and the device maps them there. Each pattern
 * is checked at the end of the round by the other side, so the numbers
 * are for correct data only. Printed: rounds per second of each mode
 * (the median of -r runs of -n rounds), the ratio on/off, and the pins.
 *
 * The worst ping-pong pattern for plain migration is the one that moves
 * the most per access: one word per page, every page, every turn.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "drm_node.h"
#include "hmmgpu_drm.h"

#define MIB (1UL << 20)
#define MAX_RUNS 32

static void die(const char *what, int err)
{
	bench_die("bench_pingpong", what, err);
}

#define PARAM BENCH_THRASH_PARAM
#define param_read(v) bench_param_read(PARAM, v)
#define param_write(v) bench_param_write(PARAM, v)

static size_t page_size;

struct ping {
	volatile uint64_t *dev;	/* the view of the buffer */
	volatile uint64_t *cpu;	/* the buffer */
	size_t npages, words_per_page;
	unsigned int rounds;
	sem_t go, done;
	bool bad;
};

/* The device side: round r writes 2r + 1, after checking the CPU's 2r. */
static void *device_main(void *arg)
{
	struct ping *p = arg;

	for (unsigned int r = 0; r < p->rounds; r++) {
		while (sem_wait(&p->go))
			;
		for (size_t i = 0; i < p->npages; i++) {
			volatile uint64_t *w = p->dev + i * p->words_per_page;

			if (*w != 2ULL * r)
				p->bad = true;
			*w = 2ULL * r + 1;
		}
		sem_post(&p->done);
	}
	return NULL;
}

/* @rounds rounds on @fd's device over @size bytes: seconds, or < 0. */
static double run(int fd, size_t size, unsigned int rounds, uint64_t *pins)
{
	struct drm_hmmgpu_view_register reg = { .size = size };
	struct drm_hmmgpu_view_unregister unreg = { 0 };
	struct drm_hmmgpu_stats st0 = { .scope = HMMGPU_STATS_FILE }, st1;
	struct ping p = { .rounds = rounds };
	pthread_t t;
	double t0, t1;
	char *buf;
	void *view;

	buf = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		die("mmap", errno);
	madvise(buf, size, MADV_NOHUGEPAGE);
	memset(buf, 0, size);
	view = bench_view_map("bench_pingpong", fd, &reg, buf);
	p.dev = view;
	p.cpu = (volatile uint64_t *)buf;
	p.npages = size / page_size;
	p.words_per_page = page_size / sizeof(uint64_t);
	sem_init(&p.go, 0, 0);
	sem_init(&p.done, 0, 0);
	if (ioctl(fd, DRM_IOCTL_HMMGPU_STATS, &st0))
		die("STATS", errno);
	if (pthread_create(&t, NULL, device_main, &p))
		die("pthread_create", EAGAIN);

	t0 = bench_now_s();
	for (unsigned int r = 0; r < rounds; r++) {
		sem_post(&p.go);
		while (sem_wait(&p.done))
			;
		for (size_t i = 0; i < p.npages; i++) {
			volatile uint64_t *w = p.cpu + i * p.words_per_page;

			if (*w != 2ULL * r + 1)
				p.bad = true;
			*w = 2ULL * r + 2;
		}
	}
	t1 = bench_now_s();
	pthread_join(t, NULL);
	st1 = st0;
	if (ioctl(fd, DRM_IOCTL_HMMGPU_STATS, &st1))
		die("STATS", errno);
	*pins = st1.thrash_pins - st0.thrash_pins;

	munmap(view, size);
	unreg.handle = reg.handle;
	ioctl(fd, DRM_IOCTL_HMMGPU_VIEW_UNREGISTER, &unreg);
	munmap(buf, size);
	sem_destroy(&p.go);
	sem_destroy(&p.done);
	if (p.bad) {
		fprintf(stderr, "bench_pingpong: a side read the wrong value: "
			"the data is wrong, no number is printed\n");
		exit(1);
	}
	return t1 - t0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_pingpong [-s MIB] [-n ROUNDS] [-r RUNS]\n"
		"  -s MIB     buffer size (default 4)\n"
		"  -n ROUNDS  turns of each side per run (default 50)\n"
		"  -r RUNS    runs of each mode, median reported (default 3, "
		"at most %d)\n", MAX_RUNS);
}

int main(int argc, char **argv)
{
	unsigned long mib = 4, rounds = 50, runs = 3;
	double on[MAX_RUNS], off[MAX_RUNS], med_on, med_off;
	uint64_t pins_on = 0, pins_off = 0, pins;
	unsigned int loaded;
	int fd = -1, opt, ret;

	while ((opt = getopt(argc, argv, "s:n:r:h")) != -1) {
		switch (opt) {
		case 's': mib = strtoul(optarg, NULL, 0); break;
		case 'n': rounds = strtoul(optarg, NULL, 0); break;
		case 'r': runs = strtoul(optarg, NULL, 0); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!mib || mib > 1024 || !rounds || rounds > 100000 || !runs ||
	    runs > MAX_RUNS) {
		usage(stderr);
		return 2;
	}
	page_size = (size_t)sysconf(_SC_PAGESIZE);
	fd = bench_open_first_device("bench_pingpong");
	loaded = bench_thrash_loaded("bench_pingpong");

	/* alternate the modes, so that a change of host load hits both */
	for (unsigned long i = 0; i < runs; i++) {
		if ((ret = param_write(loaded)))
			die("writing " PARAM, -ret);
		on[i] = run(fd, mib * MIB, rounds, &pins);
		pins_on += pins;
		if ((ret = param_write(0)))
			die("writing " PARAM, -ret);
		off[i] = run(fd, mib * MIB, rounds, &pins);
		pins_off += pins;
	}
	param_write(loaded);
	qsort(on, runs, sizeof(on[0]), bench_cmp_double);
	qsort(off, runs, sizeof(off[0]), bench_cmp_double);
	med_on = on[runs / 2];
	med_off = off[runs / 2];

	printf("ping-pong: %lu MiB, one word per page, %lu rounds per run, "
	       "median of %lu runs\n", mib, rounds, runs);
	printf("%-28s %12s %12s %10s\n", "mode", "rounds/s", "MiB/s moved",
	       "pins/run");
	printf("%-28s %12.1f %12s %10.1f\n", "mitigation on (threshold)",
	       rounds / med_on, "-", (double)pins_on / runs);
	printf("%-28s %12.1f %12.1f %10.1f\n", "plain migration (off)",
	       rounds / med_off, 2.0 * mib * rounds / med_off,
	       (double)pins_off / runs);
	printf("ratio on/off: %.2fx (target >= 3x)\n", med_off / med_on);
	close(fd);
	return 0;
}
