// SPDX-License-Identifier: MIT
/*
 * bench_readmostly.c - a table that the device and the CPU both read,
 * with rare CPU writes, with HMMGPU_ADVICE_READ_MOSTLY and without, in
 * one run.
 *
 * Runs inside the test VM (tools/bench --readmostly). The table is
 * private anonymous memory. Three modes, each doing the same reads:
 *
 * a round: a device thread (through a view) and the CPU each read every
 * word of the table at the same time and check its sum; every -w rounds
 * the CPU then updates one word.
 *
 * - "advice, PROT_READ": the table is kept PROT_READ; an update is an
 *   mprotect() of the page to writable, the write, mprotect() back.
 * - "advice, writable": the table stays writable, under userfaultfd
 *   write protection as libhmm arms read-mostly memory; an update is a
 *   plain write, which waits for a handler thread that lifts the page's
 *   protection (dropping its copy), then the page is protected again
 *   (libhmm does that after 10 ms without writes).
 * - "no advice": as the first, without the advice.
 *
 * With the advice the device reads its copies and the CPU its pages, and
 * an update drops (and the next device read remakes) the page's copy.
 * Without it the device's reads migrate the table to the device and the
 * CPU's bring it back (thrashing mitigation, as loaded, may pin blocks
 * and map them remotely). Printed: rounds per second of each mode (the
 * median of -r runs), the ratio, and per run what moved and what was
 * copied. The sums are checked on both sides: a stale read fails the run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "drm_node.h"
#include "hmmgpu_drm.h"

#define MIB (1UL << 20)
#define MAX_RUNS 32

static void die(const char *what, int err)
{
	bench_die("bench_readmostly", what, err);
}

static size_t page_size;

struct table {
	const volatile uint64_t *dev;	/* the view of the table */
	uint64_t *cpu;			/* the table */
	size_t nwords;
	unsigned int rounds;
	uint64_t want;			/* the sum this round must read */
	sem_t go, done;
	bool bad;
};

static uint64_t sum(const volatile uint64_t *w, size_t n)
{
	uint64_t s = 0;

	for (size_t i = 0; i < n; i++)
		s += w[i];
	return s;
}

/* The device side: reads the whole table each round. */
static void *device_main(void *arg)
{
	struct table *t = arg;

	for (unsigned int r = 0; r < t->rounds; r++) {
		while (sem_wait(&t->go))
			;
		if (sum(t->dev, t->nwords) != t->want)
			t->bad = true;
		sem_post(&t->done);
	}
	return NULL;
}

enum mode { ADVICE_RO, ADVICE_WP, NO_ADVICE, NMODES };

static const char *const mode_name[NMODES] = {
	"advice, PROT_READ", "advice, writable", "no advice",
};

/* The userfaultfd of the writable mode, and a pipe that stops its handler. */
static int wp_uffd = -1, wp_stop[2] = { -1, -1 };

/* The write-protection handler: lifts it from the page written. */
static void *wp_main(void *arg)
{
	int uffd = wp_uffd;

	(void)arg;
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = uffd, .events = POLLIN },
			{ .fd = wp_stop[0], .events = POLLIN },
		};
		struct uffdio_writeprotect wp = { .mode = 0 };
		struct uffd_msg msg;

		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			die("poll", errno);
		if (pfd[1].revents)
			break;
		if (read(uffd, &msg, sizeof(msg)) != sizeof(msg) ||
		    msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		wp.range.start = msg.arg.pagefault.address & ~(page_size - 1);
		wp.range.len = page_size;
		if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp))
			die("UFFDIO_WRITEPROTECT", errno);
	}
	return NULL;
}

/* Write-protects [@p, @p + @len) with a new userfaultfd. */
static int wp_arm(void *p, size_t len)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	struct uffdio_writeprotect wp = {
		.range = reg.range,
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};
	int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (uffd < 0)
		die("userfaultfd (the writable mode needs it)", errno);
	if (ioctl(uffd, UFFDIO_API, &api))
		die("UFFDIO_API", errno);
	if (!(api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP))
		die("userfaultfd without write protection", EOPNOTSUPP);
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER", errno);
	if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp))
		die("UFFDIO_WRITEPROTECT", errno);
	return uffd;
}

struct result {
	double seconds;
	uint64_t to_device, to_system, copies, drops, cpu_faults;
};

static uint64_t moved(const struct drm_hmmgpu_stats *s, int dir)
{
	uint64_t n = 0;

	for (int c = 0; c < HMMGPU_CAUSE_COUNT; c++)
		n += s->pages[dir][c];
	return n;
}

/* @rounds rounds over @size bytes in mode @mode. */
static struct result run(int fd, size_t size, unsigned int rounds,
			 unsigned int every, enum mode mode)
{
	struct drm_hmmgpu_view_register reg = { .size = size };
	struct drm_hmmgpu_view_unregister unreg = { 0 };
	struct drm_hmmgpu_stats st0 = { .scope = HMMGPU_STATS_FILE }, st1;
	struct table t = { .rounds = rounds };
	struct result res;
	pthread_t th, wp_th;
	double t0;
	void *view;

	t.cpu = mmap(NULL, size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t.cpu == MAP_FAILED)
		die("mmap", errno);
	madvise(t.cpu, size, MADV_NOHUGEPAGE);
	t.nwords = size / sizeof(uint64_t);
	for (size_t i = 0; i < t.nwords; i++)
		t.cpu[i] = i * 2654435761u;
	t.want = sum(t.cpu, t.nwords);
	if (mode == ADVICE_WP) {
		wp_uffd = wp_arm(t.cpu, size);
		if (pipe(wp_stop))
			die("pipe", errno);
		if (pthread_create(&wp_th, NULL, wp_main, NULL))
			die("pthread_create", EAGAIN);
	} else if (mprotect(t.cpu, size, PROT_READ)) {
		die("mprotect", errno);
	}
	reg.start = (uintptr_t)t.cpu;
	if (ioctl(fd, DRM_IOCTL_HMMGPU_VIEW_REGISTER, &reg))
		die("VIEW_REGISTER", errno);
	if (mode != NO_ADVICE) {
		struct drm_hmmgpu_view_advise va = {
			.handle = reg.handle,
			.advice = HMMGPU_ADVICE_READ_MOSTLY,
			.value = 1,
		};

		if (ioctl(fd, DRM_IOCTL_HMMGPU_VIEW_ADVISE, &va))
			die("VIEW_ADVISE READ_MOSTLY (a driver before ABI 8?)",
			    errno);
	}
	view = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, (off_t)reg.offset);
	if (view == MAP_FAILED)
		die("mmap of the view", errno);
	t.dev = view;
	sem_init(&t.go, 0, 0);
	sem_init(&t.done, 0, 0);
	if (ioctl(fd, DRM_IOCTL_HMMGPU_STATS, &st0))
		die("STATS", errno);
	if (pthread_create(&th, NULL, device_main, &t))
		die("pthread_create", EAGAIN);

	t0 = bench_now_s();
	for (unsigned int r = 0; r < rounds; r++) {
		sem_post(&t.go);
		if (sum(t.cpu, t.nwords) != t.want)
			t.bad = true;
		while (sem_wait(&t.done))
			;
		if (every && r % every == every - 1) {
			/* a rare update: one word of one page */
			size_t w = (r * 7919UL) % t.nwords;
			char *pg = (char *)t.cpu +
				   (w * sizeof(uint64_t) / page_size) *
				   page_size;

			if (mode == ADVICE_WP) {
				struct uffdio_writeprotect wp = {
					.range = {
						.start = (uintptr_t)pg,
						.len = page_size,
					},
					.mode = UFFDIO_WRITEPROTECT_MODE_WP,
				};

				t.cpu[w] += 1;
				t.want += 1;
				if (ioctl(wp_uffd, UFFDIO_WRITEPROTECT, &wp))
					die("UFFDIO_WRITEPROTECT", errno);
				continue;
			}
			if (mprotect(pg, page_size, PROT_READ | PROT_WRITE))
				die("mprotect", errno);
			t.cpu[w] += 1;
			t.want += 1;
			if (mprotect(pg, page_size, PROT_READ))
				die("mprotect", errno);
		}
	}
	res.seconds = bench_now_s() - t0;
	pthread_join(th, NULL);
	st1 = st0;
	if (ioctl(fd, DRM_IOCTL_HMMGPU_STATS, &st1))
		die("STATS", errno);
	res.to_device = moved(&st1, HMMGPU_DIR_TO_DEVICE) -
			moved(&st0, HMMGPU_DIR_TO_DEVICE);
	res.to_system = moved(&st1, HMMGPU_DIR_TO_SYSTEM) -
			moved(&st0, HMMGPU_DIR_TO_SYSTEM);
	res.copies = st1.dup_pages - st0.dup_pages;
	res.drops = st1.dup_drops - st0.dup_drops;
	res.cpu_faults = st1.cpu_faults - st0.cpu_faults;

	munmap(view, size);
	unreg.handle = reg.handle;
	ioctl(fd, DRM_IOCTL_HMMGPU_VIEW_UNREGISTER, &unreg);
	if (wp_uffd >= 0) {
		if (write(wp_stop[1], "x", 1) != 1)
			die("write", errno);
		pthread_join(wp_th, NULL);
		close(wp_uffd);
		close(wp_stop[0]);
		close(wp_stop[1]);
		wp_uffd = -1;
	}
	munmap(t.cpu, size);
	sem_destroy(&t.go);
	sem_destroy(&t.done);
	if (t.bad) {
		fprintf(stderr, "bench_readmostly: a side read a wrong sum: "
			"the data is wrong, no number is printed\n");
		exit(1);
	}
	return res;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_readmostly [-s MIB] [-n ROUNDS] [-w EVERY] "
		"[-r RUNS]\n"
		"  -s MIB     table size (default 4)\n"
		"  -n ROUNDS  rounds per run (default 20)\n"
		"  -w EVERY   a CPU write every EVERY rounds (default 5; 0: "
		"none)\n"
		"  -r RUNS    runs of each mode, median reported (default 3, "
		"at most %d)\n", MAX_RUNS);
}

static void print_mode(const char *name, double med, unsigned long rounds,
		       const struct result *sum_res, unsigned long runs)
{
	printf("%-20s %10.2f %12.1f %12.1f %10.1f %10.1f %10.1f\n", name,
	       rounds / med, (double)sum_res->to_device / runs,
	       (double)sum_res->to_system / runs,
	       (double)sum_res->copies / runs, (double)sum_res->drops / runs,
	       (double)sum_res->cpu_faults / runs);
}

int main(int argc, char **argv)
{
	unsigned long mib = 4, rounds = 20, every = 5, runs = 3;
	double secs[NMODES][MAX_RUNS], med[NMODES];
	struct result tot[NMODES] = { 0 }, r;
	struct hmm_node nodes[8];
	int n, fd = -1, opt;

	while ((opt = getopt(argc, argv, "s:n:w:r:h")) != -1) {
		switch (opt) {
		case 's': mib = strtoul(optarg, NULL, 0); break;
		case 'n': rounds = strtoul(optarg, NULL, 0); break;
		case 'w': every = strtoul(optarg, NULL, 0); break;
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
	n = hmm_node_scan(nodes, 8, NULL);
	if (n <= 0) {
		fprintf(stderr, "bench_readmostly: no hmmgpu device: load "
			"hmmgpu.ko (tools/bench does)\n");
		return 2;
	}
	fd = nodes[0].fd;
	nodes[0].fd = -1;
	hmm_node_close_all(nodes, n);

#define ADD(a, b) do { (a).to_device += (b).to_device; \
	(a).to_system += (b).to_system; (a).copies += (b).copies; \
	(a).drops += (b).drops; (a).cpu_faults += (b).cpu_faults; } while (0)
	/* alternate the modes, so that a change of host load hits all */
	for (unsigned long i = 0; i < runs; i++) {
		for (int m = 0; m < NMODES; m++) {
			r = run(fd, mib * MIB, rounds, every, m);
			secs[m][i] = r.seconds;
			ADD(tot[m], r);
		}
	}
	for (int m = 0; m < NMODES; m++) {
		qsort(secs[m], runs, sizeof(secs[m][0]), bench_cmp_double);
		med[m] = secs[m][runs / 2];
	}

	printf("read-mostly: %lu MiB table read by device and CPU, a CPU write "
	       "every %lu rounds, %lu rounds per run, median of %lu runs\n",
	       mib, every, rounds, runs);
	printf("%-20s %10s %12s %12s %10s %10s %10s\n", "mode", "rounds/s",
	       "to dev/run", "to sys/run", "copies", "drops", "cpu faults");
	for (int m = 0; m < NMODES; m++)
		print_mode(mode_name[m], med[m], rounds, &tot[m], runs);
	printf("ratio advice/none: %.2fx (PROT_READ), %.2fx (writable)\n",
	       med[NO_ADVICE] / med[ADVICE_RO],
	       med[NO_ADVICE] / med[ADVICE_WP]);
	close(fd);
	return 0;
}
