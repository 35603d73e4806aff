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

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
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
