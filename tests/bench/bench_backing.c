// SPDX-License-Identifier: MIT
/*
 * bench_backing.c - device memory in a PCI memory BAR against device
 * memory in reserved RAM, in one run.
 *
 * Runs inside the test VM (tools/bench --backing) with hmmgpu loaded as
 * "num_devices=2 pci=all": device 0 is the PCI personality, its memory in
 * the BAR of QEMU's ivshmem-plain device; device 1 is a platform device,
 * its memory in RAM.  The bus of each render node tells which is which.
 *
 * A round, on each device in turn (so that a change of the host's load
 * hits both): a buffer filled on the CPU migrates to the device (MIGRATE:
 * the copy engine writes the backing store), back to system memory
 * (MIGRATE: it reads it), to the device again, and then comes back by CPU
 * faults, one read per page; then the device reads every word of the
 * buffer, now on the device, through a view (its accesses land in the
 * backing pages).  Every direction checks the data.  Printed: the median
 * GiB/s of each step per device, the ratio BAR/RAM, and memcpy of the
 * same size (RAM to RAM) for scale.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
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

enum step { TO_DEV, TO_SYS, FAULT_BACK, DEV_READ, MEMCPY, NSTEPS };

static void die(const char *what, int err)
{
	bench_die("bench_backing", what, err);
}

static const char *const step_name[NSTEPS] = {
	[TO_DEV] = "to device (MIGRATE)",
	[TO_SYS] = "to system (MIGRATE)",
	[FAULT_BACK] = "to system (CPU faults)",
	[DEV_READ] = "device reads (view)",
	[MEMCPY] = "memcpy RAM to RAM",
};

static size_t page_size;

static void bad_data(const char *where)
{
	fprintf(stderr, "bench_backing: wrong data after %s: no number is "
		"printed\n", where);
	exit(1);
}

static uint64_t word(size_t i, unsigned int round)
{
	return (i * 0x9e3779b97f4a7c15ULL) ^ round;
}

static void migrate(int fd, void *p, size_t size, unsigned int target)
{
	struct drm_hmmgpu_migrate m = {
		.start = (uintptr_t)p,
		.size = size,
		.target = target,
	};

	if (ioctl(fd, DRM_IOCTL_HMMGPU_MIGRATE, &m))
		die("MIGRATE", errno);
	if (m.moved != size / page_size) {
		fprintf(stderr, "bench_backing: MIGRATE moved %llu of %zu "
			"pages\n", (unsigned long long)m.moved,
			size / page_size);
		exit(1);
	}
}

/* One round on the device open as @fd: the seconds of each step. */
static void round_on(int fd, size_t size, unsigned int round, double *t)
{
	struct drm_hmmgpu_view_register reg = { .size = size };
	struct drm_hmmgpu_view_unregister unreg = { 0 };
	size_t nwords = size / sizeof(uint64_t);
	size_t wpp = page_size / sizeof(uint64_t);
	volatile uint64_t *view;
	uint64_t *buf, sum = 0, want = 0;
	double t0;

	buf = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		die("mmap", errno);
	madvise(buf, size, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < nwords; i++)
		buf[i] = word(i, round);

	t0 = bench_now_s();
	migrate(fd, buf, size, HMMGPU_MIGRATE_TO_DEVICE);
	t[TO_DEV] = bench_now_s() - t0;
	t0 = bench_now_s();
	migrate(fd, buf, size, HMMGPU_MIGRATE_TO_SYSTEM);
	t[TO_SYS] = bench_now_s() - t0;
	for (size_t i = 0; i < nwords; i += wpp)
		if (buf[i] != word(i, round))
			bad_data("MIGRATE to system");

	migrate(fd, buf, size, HMMGPU_MIGRATE_TO_DEVICE);
	t0 = bench_now_s();
	for (size_t i = 0; i < nwords; i += wpp)
		sum += ((volatile uint64_t *)buf)[i];
	t[FAULT_BACK] = bench_now_s() - t0;
	for (size_t i = 0; i < nwords; i += wpp)
		want += word(i, round);
	if (sum != want)
		bad_data("the CPU faults");

	/* every word read by the device, where the data now is: the device */
	migrate(fd, buf, size, HMMGPU_MIGRATE_TO_DEVICE);
	view = bench_view_map("bench_backing", fd, &reg, buf);
	/* the first touch maps the view (device faults): not the measure */
	for (size_t i = 0; i < nwords; i += wpp)
		(void)view[i];
	sum = want = 0;
	t0 = bench_now_s();
	for (size_t i = 0; i < nwords; i++)
		sum += view[i];
	t[DEV_READ] = bench_now_s() - t0;
	for (size_t i = 0; i < nwords; i++)
		want += word(i, round);
	if (sum != want)
		bad_data("the device reads");
	munmap((void *)view, size);
	unreg.handle = reg.handle;
	ioctl(fd, DRM_IOCTL_HMMGPU_VIEW_UNREGISTER, &unreg);
	munmap(buf, size);
}

static double memcpy_round(size_t size)
{
	char *a = malloc(size), *b = malloc(size);
	double t0, t;

	if (!a || !b)
		die("malloc", ENOMEM);
	memset(a, 1, size);
	memset(b, 2, size);
	t0 = bench_now_s();
	memcpy(b, a, size);
	t = bench_now_s() - t0;
	if (b[size - 1] != 1)
		bad_data("memcpy");
	free(a);
	free(b);
	return t;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_backing [-s MIB] [-r RUNS]\n"
		"  -s MIB   buffer size (default 64, at most 192)\n"
		"  -r RUNS  rounds on each device, median reported (default 5, "
		"at most %d)\n"
		"Needs hmmgpu loaded with num_devices=2 pci=all and a PCI "
		"device for it\n(tools/bench --backing).\n", MAX_RUNS);
}

int main(int argc, char **argv)
{
	static double t[2][NSTEPS][MAX_RUNS];
	unsigned long mib = 64, runs = 5;
	struct hmm_node nodes[8];
	int fd[2] = { -1, -1 }; /* 0: BAR, 1: RAM */
	double med[2][NSTEPS];
	int n, opt;

	while ((opt = getopt(argc, argv, "s:r:h")) != -1) {
		switch (opt) {
		case 's': mib = strtoul(optarg, NULL, 0); break;
		case 'r': runs = strtoul(optarg, NULL, 0); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	/* 192 MiB: the buffer fits in the 256 MiB of each device */
	if (!mib || mib > 192 || !runs || runs > MAX_RUNS) {
		usage(stderr);
		return 2;
	}
	page_size = (size_t)sysconf(_SC_PAGESIZE);
	n = hmm_node_scan(nodes, 8, NULL);
	if (n < 0)
		die("listing hmmgpu devices", -n);
	for (int i = 0; i < n; i++) {
		int which = strncmp(nodes[i].bus, "pci:", 4) ? 1 : 0;

		if (fd[which] < 0) {
			fd[which] = nodes[i].fd;
			nodes[i].fd = -1;
		}
	}
	hmm_node_close_all(nodes, n);
	if (fd[0] < 0 || fd[1] < 0) {
		fprintf(stderr, "bench_backing: needs one hmmgpu device on PCI "
			"and one platform device (found %s and %s): load "
			"hmmgpu with num_devices=2 pci=all in a VM with the PCI "
			"device (tools/bench --backing)\n",
			fd[0] < 0 ? "no PCI one" : "a PCI one",
			fd[1] < 0 ? "no platform one" : "a platform one");
		return 2;
	}

	/* one warm-up round each: first touches of the backing store */
	for (int d = 0; d < 2; d++) {
		double s[NSTEPS];

		round_on(fd[d], mib * MIB, 0, s);
	}
	for (unsigned long r = 0; r < runs; r++) {
		for (int d = 0; d < 2; d++) {
			double s[NSTEPS] = { 0 };

			round_on(fd[d], mib * MIB, (unsigned int)r + 1, s);
			for (int k = 0; k < MEMCPY; k++)
				t[d][k][r] = s[k];
			t[d][MEMCPY][r] = memcpy_round(mib * MIB);
		}
	}
	for (int d = 0; d < 2; d++) {
		for (int k = 0; k < NSTEPS; k++) {
			qsort(t[d][k], runs, sizeof(double), bench_cmp_double);
			med[d][k] = t[d][k][runs / 2];
		}
	}

	printf("device memory in the PCI BAR against reserved RAM: %lu MiB, "
	       "median of %lu rounds each, GiB/s\n", mib, runs);
	printf("%-26s %10s %10s %10s %12s\n", "step", "BAR", "RAM",
	       "BAR/RAM", "BAR/memcpy");
	for (int k = 0; k < MEMCPY; k++) {
		double gib = (double)mib / 1024;
		double bar = gib / med[0][k], ram = gib / med[1][k];
		double cpy = gib / ((med[0][MEMCPY] + med[1][MEMCPY]) / 2);

		printf("%-26s %10.2f %10.2f %9.2fx %11.2fx\n", step_name[k],
		       bar, ram, bar / ram, bar / cpy);
	}
	printf("%-26s %10.2f (RAM to RAM, the same size)\n",
	       step_name[MEMCPY],
	       (double)mib / 1024 / ((med[0][MEMCPY] + med[1][MEMCPY]) / 2));
	close(fd[0]);
	close(fd[1]);
	return 0;
}
