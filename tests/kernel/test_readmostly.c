// SPDX-License-Identifier: MIT
/*
 * test_readmostly.c - HMMGPU_ADVICE_READ_MOSTLY (issue 15): device reads
 * of memory the CPU cannot write get read-only copies in device memory
 * while the CPU keeps its pages; anything that lets the page change drops
 * the copies first, so nobody reads stale data.
 *
 * Every test checks the data on both sides, where each page is
 * (RESIDENCY, SNAPSHOT's HMMGPU_SNAP_DUPLICATE), the copy counters, and
 * that device memory is all free again at the end.
 * Runs inside the test VM with hmmgpu.ko loaded (tools/vm/hmmvm test).
 */
#define _GNU_SOURCE
#include "kt_common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xf86drm.h>

#ifndef HMMGPU_ADVICE_READ_MOSTLY

TEST(read_mostly)
{
	SKIP("hmmgpu_drm.h has no HMMGPU_ADVICE_READ_MOSTLY (ABI version %d)",
	     HMMGPU_ABI_VERSION);
}

#else

#define KIB (1UL << 10)
#define MIB (1UL << 20)
#define TIMEOUT 120

#define AT_SYSTEM HMMGPU_RESIDENCY_SYSTEM
#define AT_DEVICE HMMGPU_RESIDENCY_THIS_DEVICE

#define EXPECT_DEV_DATA(base, off, len, seed)                                \
	ASSERT_EQ(kt_dev_check(base, off, len, seed), -1)
#define EXPECT_CPU_DATA(base, off, len, seed)                                \
	ASSERT_EQ(kt_check_range(base, off, len, seed), -1)

/* Device memory all free: nothing of an earlier test, nothing leaked. */
#define EXPECT_ALL_FREE(fd)                                                  \
	ASSERT_EQ(kt_wait_mem_free(fd, kt_mem_total(fd), 10000),             \
		  kt_mem_total(fd))

static struct drm_hmmgpu_stats stats(int fd)
{
	struct drm_hmmgpu_stats st;

	kt_get_stats(fd, HMMGPU_STATS_DEVICE, &st);
	return st;
}

static uint64_t pages_to_device(const struct drm_hmmgpu_stats *st)
{
	uint64_t n = 0;

	for (int c = 0; c < HMMGPU_CAUSE_COUNT; c++)
		n += st->pages[HMMGPU_DIR_TO_DEVICE][c];
	return n;
}

/*
 * Pages of @npages from @p that SNAPSHOT shows with a copy; every one
 * must also be a system page the CPU maps (the CPU keeps its page).
 */
static size_t dup_pages(int fd, const void *p, size_t npages)
{
	struct drm_hmmgpu_snapshot s = {
		.start = (uintptr_t)p,
		.npages = npages,
	};
	uint32_t *w = calloc(npages, sizeof(*w));
	size_t n = 0;

	ASSERT_TRUE(w != NULL);
	s.pages = (uintptr_t)w;
	ASSERT_EQ(drmIoctl(fd, DRM_IOCTL_HMMGPU_SNAPSHOT, &s), 0);
	for (size_t i = 0; i < npages; i++) {
		if (!(w[i] & HMMGPU_SNAP_DUPLICATE))
			continue;
		ASSERT_EQ(w[i] & HMMGPU_SNAP_WHERE_MASK, AT_SYSTEM);
		ASSERT_NE(w[i] & HMMGPU_SNAP_MAPPED, 0);
		ASSERT_EQ(w[i] & HMMGPU_SNAP_WRITE, 0);
		n++;
	}
	free(w);
	return n;
}

/* @size bytes of pattern @seed, read-only, with a read-mostly view. */
static char *rm_table(int fd, struct kt_view *v, size_t size, uint64_t seed)
{
	char *p = kt_map_aligned(size, 64 * KIB);

	/* a collapse would drop copies: counts must be exact */
	kt_no_khugepaged(p, size);
	kt_fill(p, size, seed);
	ASSERT_EQ(mprotect(p, size, PROT_READ), 0);
	kt_view_open(v, fd, p, size);
	ASSERT_EQ(kt_view_advise(fd, v->handle, HMMGPU_ADVICE_READ_MOSTLY, 1),
		  0);
	return p;
}

/*
 * The device reads a read-only table: every page gets a copy in device
 * memory (which mem_free shows), nothing migrates, the CPU pages stay
 * mapped and the CPU reads them without a fault.  Reading again costs
 * the device no fault.
 */
TEST_TIMEOUT(device_reads_get_copies_and_the_cpu_keeps_its_pages, TIMEOUT)
{
	size_t ps = kt_page_size(), size = 256 * KIB, npages = size / ps;
	int fd = kt_open_device(0);
	struct drm_hmmgpu_stats s0, s1;
	unsigned long long free0;
	struct kt_view v;
	char *p;

	EXPECT_ALL_FREE(fd);
	free0 = kt_mem_free(fd);
	p = rm_table(fd, &v, size, 5001);
	s0 = stats(fd);
	EXPECT_DEV_DATA(v.dev, 0, size, 5001);
	s1 = stats(fd);
	ASSERT_EQ(s1.dup_pages - s0.dup_pages, npages);
	ASSERT_EQ(s1.dup_drops - s0.dup_drops, 0);
	ASSERT_EQ(pages_to_device(&s1) - pages_to_device(&s0), 0);
	ASSERT_EQ(dup_pages(fd, p, npages), npages);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), free0 - size);

	/* the CPU reads its own pages: no CPU fault reaches the driver */
	EXPECT_CPU_DATA(p, 0, size, 5001);
	/* the device reads its copies: no device fault */
	EXPECT_DEV_DATA(v.dev, 0, size, 5001);
	s0 = stats(fd);
	ASSERT_EQ(s0.cpu_faults, s1.cpu_faults);
	ASSERT_EQ(s0.device_faults, s1.device_faults);
	ASSERT_EQ(s0.dup_pages, s1.dup_pages);

	kt_view_close(&v);
	ASSERT_EQ(kt_mem_free(fd), free0);
	ASSERT_EQ(stats(fd).dup_drops - s1.dup_drops, npages);
	kt_unmap(p, size);
	close(fd);
}

/*
 * mprotect() to writable drops the copies before the CPU can write; the
 * CPU's write is what the device reads next (no stale copy), and a new
 * mprotect(PROT_READ) lets the device copy the new data.
 */
TEST_TIMEOUT(cpu_write_after_mprotect_is_seen_by_the_device, TIMEOUT)
{
	size_t ps = kt_page_size(), size = 256 * KIB, npages = size / ps;
	int fd = kt_open_device(0);
	struct drm_hmmgpu_stats s0;
	unsigned long long free0;
	struct kt_view v;
	char *p;

	EXPECT_ALL_FREE(fd);
	free0 = kt_mem_free(fd);
	p = rm_table(fd, &v, size, 5101);
	EXPECT_DEV_DATA(v.dev, 0, size, 5101);
	ASSERT_EQ(dup_pages(fd, p, npages), npages);

	s0 = stats(fd);
	ASSERT_EQ(mprotect(p, size, PROT_READ | PROT_WRITE), 0);
	ASSERT_EQ(dup_pages(fd, p, npages), 0);
	ASSERT_EQ(stats(fd).dup_drops - s0.dup_drops, npages);
	ASSERT_EQ(kt_mem_free(fd), free0);

	/* a rare update of part of the table */
	kt_fill_range(p, 16 * ps, 8 * ps, 5102);
	ASSERT_EQ(mprotect(p, size, PROT_READ), 0);
	EXPECT_DEV_DATA(v.dev, 0, 16 * ps, 5101);
	EXPECT_DEV_DATA(v.dev, 16 * ps, 8 * ps, 5102);
	EXPECT_DEV_DATA(v.dev, 24 * ps, size - 24 * ps, 5101);
	ASSERT_EQ(dup_pages(fd, p, npages), npages);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);

	/* the same without a device read in between: still nothing stale */
	ASSERT_EQ(mprotect(p, size, PROT_READ | PROT_WRITE), 0);
	kt_fill_range(p, 16 * ps, 8 * ps, 5103);
	EXPECT_DEV_DATA(v.dev, 16 * ps, 8 * ps, 5103);
	kt_view_close(&v);
	EXPECT_CPU_DATA(p, 16 * ps, 8 * ps, 5103);
	ASSERT_EQ(kt_mem_free(fd), free0);
	kt_unmap(p, size);
	close(fd);
}

/*
 * The usual update: one page made writable, written, protected again.
 * That page's copy goes, and so may the others of the 2 MiB around it:
 * on 6.12 and 7.3 (not 6.1) splitting the VMA invalidates the 2 MiB around
 * each split point (__split_huge_pmd() of split_huge_pmd_address()
 * starts its invalidation before it looks for a huge page). The next
 * device read copies them again and sees the write.
 */
TEST_TIMEOUT(a_one_page_update_drops_the_copies_around_it, TIMEOUT)
{
	size_t ps = kt_page_size(), size = 4 * MIB, npages = size / ps;
	size_t pmd_pages = 2 * MIB / ps, at = 700;
	int fd = kt_open_device(0);
	struct drm_hmmgpu_stats s0, s1;
	uint64_t drops;
	struct kt_view v;
	char *p;

	EXPECT_ALL_FREE(fd);
	p = rm_table(fd, &v, size, 5151);
	EXPECT_DEV_DATA(v.dev, 0, size, 5151);
	ASSERT_EQ(dup_pages(fd, p, npages), npages);
	s0 = stats(fd);
	ASSERT_EQ(mprotect(p + at * ps, ps, PROT_READ | PROT_WRITE), 0);
	ASSERT_EQ(dup_pages(fd, p + at * ps, 1), 0);
	kt_fill_range(p, at * ps, ps, 5152);
	ASSERT_EQ(mprotect(p + at * ps, ps, PROT_READ), 0);
	s1 = stats(fd);
	drops = s1.dup_drops - s0.dup_drops;
	TH_LOG("copies dropped by a one-page update: %llu",
	       (unsigned long long)drops);
	ASSERT_GE(drops, 1);
	ASSERT_LE(drops, 2 * pmd_pages);
	ASSERT_EQ(dup_pages(fd, p, npages), npages - drops);
	ASSERT_EQ(dup_pages(fd, p + at * ps, 1), 0);
	EXPECT_DEV_DATA(v.dev, at * ps, ps, 5152);
	EXPECT_DEV_DATA(v.dev, 0, at * ps, 5151);
	EXPECT_DEV_DATA(v.dev, (at + 1) * ps, size - (at + 1) * ps, 5151);
	ASSERT_EQ(dup_pages(fd, p, npages), npages);
	ASSERT_EQ(stats(fd).dup_pages - s1.dup_pages, drops);
	EXPECT_CPU_DATA(p, at * ps, ps, 5152);
	kt_view_close(&v);
	kt_unmap(p, size);
	EXPECT_ALL_FREE(fd);
	close(fd);
}

/*
 * A device write needs a writable CPU mapping, as without the advice:
 * refused (SIGBUS) while read-only, copies untouched; once writable (the
 * copies gone) it works and the CPU sees it.
 */
TEST_TIMEOUT(device_write_needs_the_copies_gone, TIMEOUT)
{
	size_t ps = kt_page_size(), size = 64 * KIB, npages = size / ps;
	int fd = kt_open_device(0);
	unsigned long long free0;
	struct kt_view v;
	uint64_t x = 42;
	char *p;

	EXPECT_ALL_FREE(fd);
	free0 = kt_mem_free(fd);
	p = rm_table(fd, &v, size, 5201);
	EXPECT_DEV_DATA(v.dev, 0, size, 5201);
	ASSERT_EQ(kt_dev_probe(v.dev, 3 * ps, true, &x), SIGBUS);
	ASSERT_EQ(dup_pages(fd, p, npages), npages);
	EXPECT_DEV_DATA(v.dev, 0, size, 5201);

	ASSERT_EQ(mprotect(p, size, PROT_READ | PROT_WRITE), 0);
	ASSERT_EQ(dup_pages(fd, p, npages), 0);
	kt_dev_fill(v.dev, 0, size, 5202);
	ASSERT_EQ(dup_pages(fd, p, npages), 0);
	EXPECT_CPU_DATA(p, 0, size, 5202);
	kt_view_close(&v);
	ASSERT_EQ(kt_mem_free(fd), free0);
	kt_unmap(p, size);
	close(fd);
}

/* Without mprotect(PROT_READ) the advice changes nothing: reads migrate. */
TEST_TIMEOUT(writable_memory_migrates_as_without_the_advice, TIMEOUT)
{
	size_t size = 64 * KIB, npages = size / kt_page_size();
	int fd = kt_open_device(0);
	struct drm_hmmgpu_stats s0, s1;
	char *p = kt_map_aligned(size, 64 * KIB);
	struct kt_view v;

	EXPECT_ALL_FREE(fd);
	kt_fill(p, size, 5301);
	kt_view_open(&v, fd, p, size);
	ASSERT_EQ(kt_view_advise(fd, v.handle, HMMGPU_ADVICE_READ_MOSTLY, 1),
		  0);
	s0 = stats(fd);
	EXPECT_DEV_DATA(v.dev, 0, size, 5301);
	s1 = stats(fd);
	ASSERT_EQ(s1.dup_pages, s0.dup_pages);
	ASSERT_EQ(pages_to_device(&s1) - pages_to_device(&s0), npages);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	ASSERT_EQ(dup_pages(fd, p, npages), 0);
	EXPECT_CPU_DATA(p, 0, size, 5301);
	kt_view_close(&v);
	kt_unmap(p, size);
	EXPECT_ALL_FREE(fd);
	close(fd);
}

/* munmap() of the CPU range, and the advice's end, free the copies. */
TEST_TIMEOUT(munmap_and_advice_off_free_the_copies, TIMEOUT)
{
	size_t size = 256 * KIB, npages = size / kt_page_size();
	int fd = kt_open_device(0);
	unsigned long long free0;
	struct kt_view v;
	char *p;

	EXPECT_ALL_FREE(fd);
	free0 = kt_mem_free(fd);
	p = rm_table(fd, &v, size, 5401);
	EXPECT_DEV_DATA(v.dev, 0, size, 5401);
	ASSERT_EQ(kt_mem_free(fd), free0 - size);
	ASSERT_EQ(kt_view_advise(fd, v.handle, HMMGPU_ADVICE_READ_MOSTLY, 0),
		  0);
	ASSERT_EQ(kt_mem_free(fd), free0);
	ASSERT_EQ(dup_pages(fd, p, npages), 0);
	/* without the advice, the read migrates */
	EXPECT_DEV_DATA(v.dev, 0, size, 5401);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	ASSERT_EQ(kt_migrate(fd, p, size, HMMGPU_MIGRATE_TO_SYSTEM, NULL), 0);
	ASSERT_EQ(kt_view_advise(fd, v.handle, HMMGPU_ADVICE_READ_MOSTLY, 1),
		  0);
	EXPECT_DEV_DATA(v.dev, 0, size, 5401);
	ASSERT_EQ(dup_pages(fd, p, npages), npages);

	ASSERT_EQ(munmap(p, size), 0);
	ASSERT_EQ(kt_mem_free(fd), free0);
	kt_view_close(&v);
	close(fd);
}

/*
 * Closing the file with copies (unregistered or not), and a process
 * exiting with copies, leave nothing on the device.
 */
TEST_TIMEOUT(close_and_exit_free_the_copies, TIMEOUT)
{
	size_t size = 256 * KIB;
	int fd = kt_open_device(0), fd2;
	struct kt_view v;
	char *p;
	pid_t pid;

	EXPECT_ALL_FREE(fd);
	fd2 = kt_open_device(0);
	p = rm_table(fd2, &v, size, 5501);
	EXPECT_DEV_DATA(v.dev, 0, size, 5501);
	ASSERT_EQ(kt_mem_free(fd), kt_mem_total(fd) - size);
	ASSERT_EQ(munmap(v.dev, size), 0);
	close(fd2);
	EXPECT_ALL_FREE(fd);
	kt_unmap(p, size);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		int cfd = kt_open_device(0);
		struct kt_view cv;
		char *cp = rm_table(cfd, &cv, size, 5502);

		if (kt_dev_check(cv.dev, 0, size, 5502) != -1)
			_exit(1);
		_exit(kt_mem_free(cfd) == kt_mem_total(cfd) - size ? 0 : 2);
		(void)cp;
	}
	ASSERT_EQ(kt_wait_child(pid), 0);
	EXPECT_ALL_FREE(fd);
	close(fd);
}

/*
 * fork() drops the copies (it write-protects the range); the child's
 * writes go to its own pages, the parent's device keeps reading the
 * parent's data, and the parent's next update is seen.
 */
TEST_TIMEOUT(fork_drops_the_copies_and_the_child_writes_its_own, TIMEOUT)
{
	size_t ps = kt_page_size(), size = 128 * KIB, npages = size / ps;
	int fd = kt_open_device(0);
	struct kt_view v;
	char *p;
	pid_t pid;

	EXPECT_ALL_FREE(fd);
	p = rm_table(fd, &v, size, 5601);
	EXPECT_DEV_DATA(v.dev, 0, size, 5601);
	ASSERT_EQ(dup_pages(fd, p, npages), npages);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		if (mprotect(p, size, PROT_READ | PROT_WRITE))
			_exit(1);
		kt_fill(p, size, 5602);
		_exit(kt_check(p, size, 5602) == -1 ? 0 : 2);
	}
	ASSERT_EQ(kt_wait_child(pid), 0);
	EXPECT_DEV_DATA(v.dev, 0, size, 5601);
	EXPECT_CPU_DATA(p, 0, size, 5601);
	ASSERT_EQ(dup_pages(fd, p, npages), npages);

	ASSERT_EQ(mprotect(p, size, PROT_READ | PROT_WRITE), 0);
	kt_fill(p, ps, 5603);
	ASSERT_EQ(mprotect(p, size, PROT_READ), 0);
	EXPECT_DEV_DATA(v.dev, 0, ps, 5603);
	EXPECT_DEV_DATA(v.dev, ps, size - ps, 5601);
	kt_view_close(&v);
	kt_unmap(p, size);
	EXPECT_ALL_FREE(fd);
	close(fd);
}

/*
 * Device memory full: eviction drops copies (clean, nothing to copy back)
 * to make room; the device reads the table again afterwards, right.
 */
TEST_TIMEOUT(eviction_drops_copies, TIMEOUT)
{
	size_t size = 4 * MIB, npages = size / kt_page_size();
	int fd = kt_open_device(0);
	struct drm_hmmgpu_stats s0;
	size_t big;
	struct kt_view v;
	char *p, *q;

	EXPECT_ALL_FREE(fd);
	big = kt_mem_total(fd);
	p = rm_table(fd, &v, size, 5701);
	EXPECT_DEV_DATA(v.dev, 0, size, 5701);
	ASSERT_EQ(dup_pages(fd, p, npages), npages);

	s0 = stats(fd);
	q = kt_map_aligned(big, 2 * MIB);
	kt_fill(q, big, 5702);
	ASSERT_EQ(kt_migrate(fd, q, big, HMMGPU_MIGRATE_TO_DEVICE, NULL), 0);
	ASSERT_EQ(dup_pages(fd, p, npages), 0);
	ASSERT_EQ(stats(fd).dup_drops - s0.dup_drops, npages);
	ASSERT_EQ(stats(fd).evictions, s0.evictions);
	KT_EXPECT_DATA(q, big, 5702);
	kt_unmap(q, big);

	EXPECT_DEV_DATA(v.dev, 0, size, 5701);
	EXPECT_CPU_DATA(p, 0, size, 5701);
	kt_view_close(&v);
	kt_unmap(p, size);
	EXPECT_ALL_FREE(fd);
	close(fd);
}

/*
 * Device removal with copies: they are dropped with the device memory
 * (their entries first: the backing pages are freed), the CPU keeps its
 * data, the view faults; after the device is back all of it is free.
 */
TEST_TIMEOUT(unbind_with_copies_keeps_cpu_data, TIMEOUT)
{
	size_t size = 256 * KIB;
	int fd = kt_open_device(0);
	struct kt_view v;
	uint64_t x = 0;
	char *p;
	int sig;

	EXPECT_ALL_FREE(fd);
	p = rm_table(fd, &v, size, 5751);
	EXPECT_DEV_DATA(v.dev, 0, size, 5751);
	ASSERT_EQ(kt_unbind_device(0), 0);
	EXPECT_CPU_DATA(p, 0, size, 5751);
	sig = kt_dev_probe(v.dev, 8, false, &x);
	if (!sig)
		ASSERT_EQ(x, kt_pattern(5751, 1));
	else
		ASSERT_EQ(sig, SIGBUS);
	ASSERT_EQ(kt_view_unregister(fd, v.handle), -ENODEV);
	kt_unmap(v.dev, size);
	close(fd);
	ASSERT_EQ(kt_bind_device(0), 0);

	fd = kt_open_device(0);
	EXPECT_ALL_FREE(fd);
	kt_view_open(&v, fd, p, size);
	ASSERT_EQ(kt_view_advise(fd, v.handle, HMMGPU_ADVICE_READ_MOSTLY, 1),
		  0);
	EXPECT_DEV_DATA(v.dev, 0, size, 5751);
	kt_view_close(&v);
	kt_unmap(p, size);
	EXPECT_ALL_FREE(fd);
	close(fd);
}

/* Shared memory has no copies: the device maps it, or migrates it. */
TEST_TIMEOUT(shared_memory_gets_no_copies, TIMEOUT)
{
	size_t size = 64 * KIB, npages = size / kt_page_size();
	int fd = kt_open_device(0);
	struct drm_hmmgpu_stats s0;
	struct kt_view v;
	char *p;

	EXPECT_ALL_FREE(fd);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(p, MAP_FAILED);
	kt_fill(p, size, 5801);
	ASSERT_EQ(mprotect(p, size, PROT_READ), 0);
	kt_view_open(&v, fd, p, size);
	ASSERT_EQ(kt_view_advise(fd, v.handle, HMMGPU_ADVICE_READ_MOSTLY, 1),
		  0);
	s0 = stats(fd);
	EXPECT_DEV_DATA(v.dev, 0, size, 5801);
	ASSERT_EQ(stats(fd).dup_pages, s0.dup_pages);
	ASSERT_EQ(dup_pages(fd, p, npages), 0);
	kt_view_close(&v);
	ASSERT_EQ(munmap(p, size), 0);
	EXPECT_ALL_FREE(fd);
	close(fd);
}

/* --- writable memory under userfaultfd write protection ------------------ */

/*
 * Write protection by userfaultfd, and the handler that lifts it one page
 * at a time, as libhmm's does: the CPU may write, but every write to a
 * protected page waits for the handler, whose UFFDIO_WRITEPROTECT
 * invalidates the page (which drops its copy) before the write goes on.
 */
struct wp_server {
	int uffd;
	int stop[2];	/* readable: stop */
	struct kt_thread t;
	atomic_ulong faults;
};

static void wp_serve(void *arg)
{
	struct wp_server *s = arg;
	size_t ps = kt_page_size();

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = s->uffd, .events = POLLIN },
			{ .fd = s->stop[0], .events = POLLIN },
		};
		struct uffdio_writeprotect wp;
		struct uffd_msg msg;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			HMMT_FAIL("poll: %s", strerror(errno));
		}
		if (pfd[1].revents)
			break;
		if (read(s->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT ||
		    !(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP))
			HMMT_FAIL("userfaultfd event %u flags %#llx", msg.event,
				  (unsigned long long)msg.arg.pagefault.flags);
		wp = (struct uffdio_writeprotect){
			.range.start = msg.arg.pagefault.address & ~(ps - 1),
			.range.len = ps,
		};
		/* counted first: lifting the protection wakes the writer */
		atomic_fetch_add(&s->faults, 1);
		if (ioctl(s->uffd, UFFDIO_WRITEPROTECT, &wp))
			HMMT_FAIL("UFFDIO_WRITEPROTECT: %s", strerror(errno));
	}
}

/*
 * Registers [@p, @p + @size) for write protection with a new userfaultfd
 * and protects [@p, @p + @prot); the handler does not run yet.
 */
static bool wp_arm(struct wp_server *s, char *p, size_t size, size_t prot)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)p, .len = size },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)p, .len = prot },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};

	s->uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (s->uffd < 0)
		return false;
	ASSERT_EQ(ioctl(s->uffd, UFFDIO_API, &api), 0);
	if (!(api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		close(s->uffd);
		return false;
	}
	ASSERT_EQ(ioctl(s->uffd, UFFDIO_REGISTER, &reg), 0);
	if (prot)
		ASSERT_EQ(ioctl(s->uffd, UFFDIO_WRITEPROTECT, &wp), 0);
	ASSERT_EQ(pipe(s->stop), 0);
	atomic_init(&s->faults, 0);
	return true;
}

static void wp_disarm(struct wp_server *s, bool running)
{
	if (running) {
		kt_pipe_signal(s->stop[1]);
		kt_join(&s->t);
	}
	close(s->stop[0]);
	close(s->stop[1]);
	if (s->uffd >= 0)
		close(s->uffd);
}

/* @size bytes of pattern @seed, writable, read-mostly, all protected. */
static char *wp_table(int fd, struct kt_view *v, struct wp_server *s,
		      size_t size, uint64_t seed)
{
	char *p = kt_map_aligned(size, 64 * KIB);

	kt_no_khugepaged(p, size);
	kt_fill(p, size, seed);
	if (!wp_arm(s, p, size, size)) {
		kt_unmap(p, size);
		return NULL;
	}
	kt_view_open(v, fd, p, size);
	ASSERT_EQ(kt_view_advise(fd, v->handle, HMMGPU_ADVICE_READ_MOSTLY, 1),
		  0);
	return p;
}

/*
 * Writable memory that userfaultfd write-protects gets copies like
 * read-only memory.  A CPU write to one page waits for the handler, whose
 * lifting of the protection drops that page's copy before the write
 * lands: the device then reads the new data, from the CPU's page (a page
 * the CPU may write gets no copy), and the other copies stay.
 */
TEST_TIMEOUT(cpu_write_to_write_protected_memory_drops_its_copy_first,
	     TIMEOUT)
{
	size_t ps = kt_page_size(), size = 256 * KIB, npages = size / ps;
	int fd = kt_open_device(0);
	struct drm_hmmgpu_stats s0, s1;
	unsigned long long free0;
	struct wp_server w;
	struct kt_view v;
	char *p;

	EXPECT_ALL_FREE(fd);
	free0 = kt_mem_free(fd);
	p = wp_table(fd, &v, &w, size, 5801);
	if (!p)
		SKIP("no userfaultfd write protection here");
	s0 = stats(fd);
	EXPECT_DEV_DATA(v.dev, 0, size, 5801);
	s1 = stats(fd);
	ASSERT_EQ(s1.dup_pages - s0.dup_pages, npages);
	ASSERT_EQ(pages_to_device(&s1) - pages_to_device(&s0), 0);
	ASSERT_EQ(dup_pages(fd, p, npages), npages);
	ASSERT_EQ(kt_mem_free(fd), free0 - size);

	kt_start(&w.t, wp_serve, &w);
	kt_fill_range(p, 5 * ps, ps, 5802);
	ASSERT_EQ(atomic_load(&w.faults), 1);
	ASSERT_EQ(stats(fd).dup_drops - s1.dup_drops, 1);
	ASSERT_EQ(dup_pages(fd, p, npages), npages - 1);
	EXPECT_DEV_DATA(v.dev, 5 * ps, ps, 5802);
	EXPECT_DEV_DATA(v.dev, 0, 5 * ps, 5801);
	EXPECT_DEV_DATA(v.dev, 6 * ps, size - 6 * ps, 5801);
	/* the page the CPU may write now stayed where it was, without copy */
	ASSERT_EQ(dup_pages(fd, p, npages), npages - 1);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	ASSERT_EQ(pages_to_device(&s1), pages_to_device(&s0));
	/* written again: no more faults, and the device sees every write */
	kt_fill_range(p, 5 * ps, ps, 5803);
	ASSERT_EQ(atomic_load(&w.faults), 1);
	EXPECT_DEV_DATA(v.dev, 5 * ps, ps, 5803);
	EXPECT_CPU_DATA(p, 0, 5 * ps, 5801);

	kt_view_close(&v);
	ASSERT_EQ(kt_mem_free(fd), free0);
	wp_disarm(&w, true);
	kt_unmap(p, size);
	close(fd);
}

/*
 * In a range registered for write protection, only the pages actually
 * protected get copies: the others the CPU may write without a fault, so
 * the device maps them where they are.
 */
TEST_TIMEOUT(only_write_protected_pages_get_copies, TIMEOUT)
{
	size_t ps = kt_page_size(), size = 128 * KIB, npages = size / ps;
	int fd = kt_open_device(0);
	struct wp_server w;
	struct kt_view v;
	char *p = kt_map_aligned(size, 64 * KIB);

	EXPECT_ALL_FREE(fd);
	kt_no_khugepaged(p, size);
	kt_fill(p, size, 5811);
	if (!wp_arm(&w, p, size, size / 2)) {
		kt_unmap(p, size);
		SKIP("no userfaultfd write protection here");
	}
	kt_view_open(&v, fd, p, size);
	ASSERT_EQ(kt_view_advise(fd, v.handle, HMMGPU_ADVICE_READ_MOSTLY, 1),
		  0);
	EXPECT_DEV_DATA(v.dev, 0, size, 5811);
	ASSERT_EQ(dup_pages(fd, p, npages / 2), npages / 2);
	ASSERT_EQ(dup_pages(fd, p + size / 2, npages / 2), 0);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	/* the CPU writes the unprotected half: no handler, and seen */
	kt_fill_range(p, size / 2, size / 2, 5812);
	EXPECT_DEV_DATA(v.dev, size / 2, size / 2, 5812);
	EXPECT_DEV_DATA(v.dev, 0, size / 2, 5811);
	ASSERT_EQ(dup_pages(fd, p, npages), npages / 2);
	kt_view_close(&v);
	wp_disarm(&w, false);
	kt_unmap(p, size);
	EXPECT_ALL_FREE(fd);
	close(fd);
}

/*
 * A device write to a write-protected page waits for the handler too,
 * where before it was a fatal device fault: the page's copy goes, and the
 * write is what the CPU reads.
 */
TEST_TIMEOUT(device_write_to_write_protected_memory_waits_for_the_handler,
	     TIMEOUT)
{
	size_t ps = kt_page_size(), size = 64 * KIB, npages = size / ps;
	int fd = kt_open_device(0);
	struct wp_server w;
	struct kt_view v;
	char *p;

	EXPECT_ALL_FREE(fd);
	p = wp_table(fd, &v, &w, size, 5821);
	if (!p)
		SKIP("no userfaultfd write protection here");
	EXPECT_DEV_DATA(v.dev, 0, size, 5821);
	ASSERT_EQ(dup_pages(fd, p, npages), npages);
	kt_start(&w.t, wp_serve, &w);
	kt_dev_fill(v.dev, 3 * ps, ps, 5822);
	ASSERT_EQ(atomic_load(&w.faults), 1);
	ASSERT_EQ(dup_pages(fd, p + 3 * ps, 1), 0);
	EXPECT_CPU_DATA(p, 3 * ps, ps, 5822);
	EXPECT_CPU_DATA(p, 0, 3 * ps, 5821);
	EXPECT_DEV_DATA(v.dev, 4 * ps, size - 4 * ps, 5821);
	kt_view_close(&v);
	wp_disarm(&w, true);
	kt_unmap(p, size);
	EXPECT_ALL_FREE(fd);
	close(fd);
}

/*
 * Closing the userfaultfd lifts the protection of every page (the core
 * does it with an invalidation): every copy goes, and a CPU write needs no
 * handler and is what the device reads.
 */
TEST_TIMEOUT(closing_the_userfaultfd_drops_every_copy, TIMEOUT)
{
	size_t size = 128 * KIB, npages = size / kt_page_size();
	int fd = kt_open_device(0);
	struct drm_hmmgpu_stats s1;
	struct wp_server w;
	struct kt_view v;
	char *p;

	EXPECT_ALL_FREE(fd);
	p = wp_table(fd, &v, &w, size, 5831);
	if (!p)
		SKIP("no userfaultfd write protection here");
	EXPECT_DEV_DATA(v.dev, 0, size, 5831);
	ASSERT_EQ(dup_pages(fd, p, npages), npages);
	s1 = stats(fd);
	close(w.uffd);
	w.uffd = -1;
	ASSERT_EQ(dup_pages(fd, p, npages), 0);
	ASSERT_EQ(stats(fd).dup_drops - s1.dup_drops, npages);
	kt_fill(p, size, 5832);
	EXPECT_DEV_DATA(v.dev, 0, size, 5832);
	kt_view_close(&v);
	wp_disarm(&w, false);
	kt_unmap(p, size);
	EXPECT_ALL_FREE(fd);
	close(fd);
}

TEST(advise_rejects_read_mostly_two)
{
	size_t size = 64 * KIB;
	int fd = kt_open_device(0);
	struct kt_view v;
	char *p = kt_map(size);

	kt_view_open(&v, fd, p, size);
	ASSERT_EQ(kt_view_advise(fd, v.handle, HMMGPU_ADVICE_READ_MOSTLY, 2),
		  -EINVAL);
	ASSERT_EQ(kt_view_advise(fd, v.handle, HMMGPU_ADVICE_READ_MOSTLY,
				 1ULL << 32), -EINVAL);
	ASSERT_EQ(kt_view_advise(fd, v.handle, HMMGPU_ADVICE_READ_MOSTLY, 1),
		  0);
	kt_view_close(&v);
	kt_unmap(p, size);
	close(fd);
}

TEST(advise_rejects_read_mostly_of_another_files_view)
{
	size_t size = 64 * KIB;
	int fd = kt_open_device(0), fd2 = kt_open_device(0);
	struct kt_view v;
	char *p = kt_map(size);

	kt_view_open(&v, fd, p, size);
	ASSERT_EQ(kt_view_advise(fd2, v.handle, HMMGPU_ADVICE_READ_MOSTLY, 1),
		  -ENOENT);
	kt_view_close(&v);
	kt_unmap(p, size);
	close(fd2);
	close(fd);
}

TEST(advise_rejects_the_advice_after_read_mostly)
{
	size_t size = 64 * KIB;
	int fd = kt_open_device(0);
	struct kt_view v;
	char *p = kt_map(size);

	kt_view_open(&v, fd, p, size);
	ASSERT_EQ(kt_view_advise(fd, v.handle, HMMGPU_ADVICE_READ_MOSTLY + 1,
				 1), -EINVAL);
	kt_view_close(&v);
	kt_unmap(p, size);
	close(fd);
}

#endif /* HMMGPU_ADVICE_READ_MOSTLY */

TEST_MAIN()
