// SPDX-License-Identifier: MIT
/*
 * test_thp.c - 2 MiB device pages (device-private THP, Linux 6.19 and
 * later): whole huge pages, empty ranges and the huge zero page migrate
 * as one device folio and come back as one huge page on a CPU fault;
 * splits (partial munmap, mprotect, partial migration, mremap, fork) and
 * eviction keep every byte.  The counterparts of hmm-tests' THP cases
 * (migrate_anon_huge_*, migrate_partial_unmap_fault, migrate_remap_fault;
 * docs/hmm-tests-parity.md).
 *
 * Whether a range is a huge page is read where the kernel says it:
 * AnonHugePages of /proc/self/smaps for the CPU side, and the CPU fault
 * counters (one fault bringing 512 pages back) for the device side.
 * Skipped on kernels without device THP (GET_INFO has no
 * HMMGPU_CAP_DEVICE_THP).  The device_thp parameter (experimental, off by
 * default) is turned on while the program runs.
 */
#define _GNU_SOURCE
#include "kt_common.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define HUGE (2UL << 20)
#define TO_DEVICE HMMGPU_MIGRATE_TO_DEVICE
#define TO_SYSTEM HMMGPU_MIGRATE_TO_SYSTEM
#define AT_NONE HMMGPU_RESIDENCY_NONE
#define AT_SYSTEM HMMGPU_RESIDENCY_SYSTEM
#define AT_DEVICE HMMGPU_RESIDENCY_THIS_DEVICE
#define AT_OTHER HMMGPU_RESIDENCY_OTHER_DEVICE
#define THP_PARAM "/sys/module/hmmgpu/parameters/device_thp"

/* device_thp is experimental and off by default: on while this runs. */
KT_WITH_DEVICE_THP()

/* Opens device @index, skipping the test without device THP. */
static int open_thp_device(unsigned int index)
{
	struct drm_hmmgpu_get_info info;
	int fd = kt_open_device(index);

	kt_get_info(fd, &info);
	if (!(info.caps & HMMGPU_CAP_DEVICE_THP)) {
		close(fd);
		SKIP("no device THP on this kernel (Linux 6.19 and later) or device_thp=0");
	}
	return fd;
}

/* kB of AnonHugePages in the smaps entry of the VMA holding @p. */
static long anon_huge_kb(const void *p)
{
	unsigned long a = (unsigned long)p, lo, hi;
	char line[512];
	bool in = false;
	long kb = -1;
	FILE *f = fopen("/proc/self/smaps", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in = a >= lo && a < hi;
			continue;
		}
		if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

/* A 2 MiB-aligned anonymous buffer of @size that may use huge pages. */
static char *map_huge(size_t size)
{
	char *p = kt_map_aligned(size, HUGE);

	if (madvise(p, size, MADV_HUGEPAGE))
		SKIP("madvise(MADV_HUGEPAGE): %s", strerror(errno));
	return p;
}

/* Fills @size bytes at @p, which must then be huge pages in RAM. */
static void fill_huge(char *p, size_t size, uint64_t seed)
{
	kt_fill(p, size, seed);
	if (anon_huge_kb(p) < (long)(size >> 10))
		SKIP("no transparent huge pages in RAM (AnonHugePages %ld kB)",
		     anon_huge_kb(p));
}

static uint64_t cpu_fault_pages(int fd, struct drm_hmmgpu_stats *st)
{
	kt_get_stats(fd, HMMGPU_STATS_FILE, st);
	return st->pages[HMMGPU_DIR_TO_SYSTEM][HMMGPU_CAUSE_CPU_FAULT];
}

/*
 * Reads one byte of @p (a device-resident 2 MiB folio) with the CPU and
 * checks that the one fault brought all of it back as a huge page.
 */
static void fault_back_whole(int fd, char *p)
{
	struct drm_hmmgpu_stats a, b;
	uint64_t pa = cpu_fault_pages(fd, &a), pb;
	size_t npages = HUGE / kt_page_size();

	(void)*(volatile char *)(p + HUGE / 2 + 5);
	pb = cpu_fault_pages(fd, &b);
	ASSERT_EQ(b.cpu_faults - a.cpu_faults, 1);
	ASSERT_EQ(pb - pa, npages);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	ASSERT_EQ(anon_huge_kb(p), (long)(HUGE >> 10));
}

/* hmm-tests migrate_anon_huge_fault: a huge page there and back. */
TEST(huge_page_moves_whole_and_a_cpu_fault_brings_it_back_whole)
{
	size_t npages = HUGE / kt_page_size();
	int fd = open_thp_device(0);
	unsigned long long free0 = kt_mem_free(fd);
	char *p = map_huge(HUGE);

	fill_huge(p, HUGE, 1);
	KT_EXPECT_MIGRATE(fd, p, HUGE, TO_DEVICE, npages, 0, 0);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	ASSERT_EQ(kt_mem_free(fd), free0 - HUGE);
	fault_back_whole(fd, p);
	KT_EXPECT_DATA(p, HUGE, 1);
	ASSERT_EQ(kt_mem_free(fd), free0);

	/* and by MIGRATE: a huge page again */
	KT_EXPECT_MIGRATE(fd, p, HUGE, TO_DEVICE, npages, 0, 0);
	KT_EXPECT_MIGRATE(fd, p, HUGE, TO_SYSTEM, npages, 0, 0);
	ASSERT_EQ(anon_huge_kb(p), (long)(HUGE >> 10));
	KT_EXPECT_DATA(p, HUGE, 1);
	kt_unmap(p, HUGE);
	close(fd);
}

/*
 * With device_thp off, the same range goes as 4 KiB pages and a CPU fault
 * brings back fault_kib: the checks above can tell the two apart.
 */
TEST(with_device_thp_off_pages_move_one_by_one)
{
	size_t npages = HUGE / kt_page_size();
	int fd = open_thp_device(0);
	struct drm_hmmgpu_stats a, b;
	char *p = map_huge(HUGE);
	uint64_t pa, pb;

	fill_huge(p, HUGE, 2);
	ASSERT_EQ(kt_sysfs_write(THP_PARAM, "0"), 0);
	KT_EXPECT_MIGRATE(fd, p, HUGE, TO_DEVICE, npages, 0, 0);
	ASSERT_EQ(kt_sysfs_write(THP_PARAM, "1"), 0);
	pa = cpu_fault_pages(fd, &a);
	(void)*(volatile char *)(p + 5);
	pb = cpu_fault_pages(fd, &b);
	ASSERT_EQ(b.cpu_faults - a.cpu_faults, 1);
	ASSERT_EQ(pb - pa, kt_module_param("fault_kib") * 1024 /
			   kt_page_size());
	ASSERT_EQ(anon_huge_kb(p), 0);
	KT_EXPECT_DATA(p, HUGE, 2);
	kt_unmap(p, HUGE);
	close(fd);
}

/* hmm-tests migrate_anon_huge_empty: never touched, aligned 2 MiB. */
TEST(empty_huge_range_becomes_one_zeroed_device_folio)
{
	size_t npages = HUGE / kt_page_size();
	int fd = open_thp_device(0);
	char *p = map_huge(HUGE), *q;

	/* device memory that held data before: zeroes must come back */
	q = map_huge(HUGE);
	fill_huge(q, HUGE, 3);
	KT_EXPECT_MIGRATE(fd, q, HUGE, TO_DEVICE, npages, 0, 0);
	kt_unmap(q, HUGE);

	KT_EXPECT_MIGRATE(fd, p, HUGE, TO_DEVICE, npages, 0, 0);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	fault_back_whole(fd, p);
	ASSERT_EQ(kt_check_zero(p, HUGE), -1);
	kt_unmap(p, HUGE);
	close(fd);
}

/* hmm-tests migrate_anon_huge_zero: the huge zero page, only read. */
TEST(huge_zero_page_becomes_a_zeroed_device_folio)
{
	size_t npages = HUGE / kt_page_size();
	int fd = open_thp_device(0);
	char *p = map_huge(HUGE);

	ASSERT_EQ(*(volatile char *)(p + 100), 0);
	KT_EXPECT_MIGRATE(fd, p, HUGE, TO_DEVICE, npages, 0, 0);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	fault_back_whole(fd, p);
	ASSERT_EQ(kt_check_zero(p, HUGE), -1);
	/* writable again, like any anonymous memory */
	p[7] = 7;
	ASSERT_EQ(p[7], 7);
	kt_unmap(p, HUGE);
	close(fd);
}

/* hmm-tests migrate_anon_huge_free: freeing it frees the device folio. */
TEST(freeing_a_device_folio_returns_its_memory)
{
	size_t npages = HUGE / kt_page_size();
	int fd = open_thp_device(0);
	unsigned long long free0 = kt_mem_free(fd);
	char *p = map_huge(2 * HUGE);

	fill_huge(p, 2 * HUGE, 4);
	KT_EXPECT_MIGRATE(fd, p, 2 * HUGE, TO_DEVICE, 2 * npages, 0, 0);
	ASSERT_EQ(kt_mem_free(fd), free0 - 2 * HUGE);
	/* MADV_DONTNEED of one, munmap of the other */
	ASSERT_EQ(madvise(p, HUGE, MADV_DONTNEED), 0);
	ASSERT_EQ(kt_wait_mem_free(fd, free0 - HUGE, 2000), free0 - HUGE);
	KT_EXPECT_WHERE(fd, p, npages, AT_NONE);
	kt_unmap(p + HUGE, HUGE);
	ASSERT_EQ(kt_wait_mem_free(fd, free0, 2000), free0);
	kt_unmap(p, HUGE);
	close(fd);
}

/* hmm-tests migrate_partial_unmap_fault: munmap splits the folio. */
TEST(munmap_of_part_of_a_device_folio_keeps_the_rest)
{
	static const size_t offs[] = { 0, HUGE / 4, HUGE / 2 };
	size_t ps = kt_page_size(), npages = HUGE / ps, cut = HUGE / 4;
	int fd = open_thp_device(0);
	unsigned long long free0 = kt_mem_free(fd);

	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		size_t off = offs[i];
		char *p = map_huge(HUGE);

		TH_LOG("unmapping [%zu KiB, +%zu KiB)", off >> 10, cut >> 10);
		fill_huge(p, HUGE, 10 + i);
		KT_EXPECT_MIGRATE(fd, p, HUGE, TO_DEVICE, npages, 0, 0);
		kt_unmap(p + off, cut);
		if (off)
			KT_EXPECT_WHERE(fd, p, off / ps, AT_DEVICE);
		/* CPU reads fault the rest back, page by page now */
		ASSERT_EQ(kt_check_range(p, 0, off, 10 + i), -1);
		ASSERT_EQ(kt_check_range(p, off + cut, HUGE - off - cut,
					 10 + i), -1);
		if (off)
			KT_EXPECT_WHERE(fd, p, off / ps, AT_SYSTEM);
		KT_EXPECT_WHERE(fd, p + off + cut, (HUGE - off - cut) / ps,
				AT_SYSTEM);
		if (off)
			kt_unmap(p, off);
		kt_unmap(p + off + cut, HUGE - off - cut);
		ASSERT_EQ(kt_wait_mem_free(fd, free0, 2000), free0);
	}
	close(fd);
}

/* mprotect() of part of a device folio splits its PMD. */
TEST(mprotect_of_part_of_a_device_folio_keeps_data_and_protection)
{
	size_t ps = kt_page_size(), npages = HUGE / ps;
	int fd = open_thp_device(0);
	char *p = map_huge(HUGE);
	pid_t pid;

	fill_huge(p, HUGE, 20);
	KT_EXPECT_MIGRATE(fd, p, HUGE, TO_DEVICE, npages, 0, 0);
	ASSERT_EQ(mprotect(p + HUGE / 2, HUGE / 2, PROT_READ), 0);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		p[HUGE / 2 + 3] = 1;
		_exit(0);
	}
	ASSERT_EQ(kt_wait_child(pid), 128 + SIGSEGV);
	KT_EXPECT_DATA(p, HUGE, 20);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	p[3] = (char)~kt_pattern_byte(20, 3);
	ASSERT_EQ(p[3], (char)~kt_pattern_byte(20, 3));
	kt_unmap(p, HUGE);
	close(fd);
}

/* Migrating half of a device folio back splits it; both halves keep data. */
TEST(partial_migration_of_a_device_folio)
{
	size_t ps = kt_page_size(), npages = HUGE / ps, half = npages / 2;
	int fd = open_thp_device(0);
	char *p = map_huge(HUGE);

	fill_huge(p, HUGE, 30);
	KT_EXPECT_MIGRATE(fd, p, HUGE, TO_DEVICE, npages, 0, 0);
	KT_EXPECT_MIGRATE(fd, p + HUGE / 2, HUGE / 2, TO_SYSTEM, half, 0, 0);
	KT_EXPECT_WHERE(fd, p, half, AT_DEVICE);
	KT_EXPECT_WHERE(fd, p + HUGE / 2, half, AT_SYSTEM);
	ASSERT_EQ(kt_check_range(p, HUGE / 2, HUGE / 2, 30), -1);
	/* the rest, now 4 KiB device pages, back again and forth */
	KT_EXPECT_MIGRATE(fd, p, HUGE, TO_DEVICE, half, half, 0);
	KT_EXPECT_MIGRATE(fd, p, HUGE, TO_SYSTEM, npages, 0, 0);
	KT_EXPECT_DATA(p, HUGE, 30);
	kt_unmap(p, HUGE);
	close(fd);
}

/* hmm-tests migrate_remap_fault: mremap moves the device folio. */
TEST(mremap_moves_a_device_folio)
{
	size_t npages = HUGE / kt_page_size();
	int fd = open_thp_device(0);
	char *p = map_huge(HUGE), *dst = map_huge(HUGE), *q;

	fill_huge(p, HUGE, 40);
	KT_EXPECT_MIGRATE(fd, p, HUGE, TO_DEVICE, npages, 0, 0);
	q = mremap(p, HUGE, HUGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ASSERT_TRUE(q == dst);
	KT_EXPECT_WHERE(fd, q, npages, AT_DEVICE);
	fault_back_whole(fd, q);
	KT_EXPECT_DATA(q, HUGE, 40);
	kt_unmap(q, HUGE);
	close(fd);
}

/* fork() shares a device folio copy-on-write. */
TEST(fork_keeps_private_copies_of_a_device_folio)
{
	size_t npages = HUGE / kt_page_size();
	int fd = open_thp_device(0);
	char *p = map_huge(HUGE);
	pid_t pid;

	fill_huge(p, HUGE, 50);
	KT_EXPECT_MIGRATE(fd, p, HUGE, TO_DEVICE, npages, 0, 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		if (kt_check(p, HUGE, 50) != -1)
			_exit(1);
		memset(p, 0x5a, HUGE);
		_exit(0);
	}
	ASSERT_EQ(kt_wait_child(pid), 0);
	KT_EXPECT_DATA(p, HUGE, 50);
	kt_unmap(p, HUGE);
	close(fd);
}

/* A device folio of one device moves whole to another. */
TEST(device_folio_moves_between_devices)
{
	size_t npages = HUGE / kt_page_size();
	int fd0 = open_thp_device(0), fd1;
	struct drm_hmmgpu_stats a, b;
	char *p = map_huge(HUGE);

	if (kt_count_devices() < 2)
		SKIP("needs two hmmgpu devices");
	fd1 = open_thp_device(1);
	fill_huge(p, HUGE, 60);
	KT_EXPECT_MIGRATE(fd0, p, HUGE, TO_DEVICE, npages, 0, 0);
	kt_get_stats(fd1, HMMGPU_STATS_FILE, &a);
	KT_EXPECT_MIGRATE(fd1, p, HUGE, TO_DEVICE, npages, 0, 0);
	kt_get_stats(fd1, HMMGPU_STATS_FILE, &b);
	ASSERT_EQ(b.pages[HMMGPU_DIR_TO_DEVICE][HMMGPU_CAUSE_PEER] -
		  a.pages[HMMGPU_DIR_TO_DEVICE][HMMGPU_CAUSE_PEER], npages);
	KT_EXPECT_WHERE(fd1, p, npages, AT_DEVICE);
	KT_EXPECT_WHERE(fd0, p, npages, AT_OTHER);
	ASSERT_EQ(kt_mem_free(fd0), kt_mem_total(fd0));
	fault_back_whole(fd1, p);
	KT_EXPECT_DATA(p, HUGE, 60);
	kt_unmap(p, HUGE);
	close(fd1);
	close(fd0);
}

/* A view reads and writes a device folio like any device memory. */
TEST(view_reads_and_writes_a_device_folio)
{
	size_t npages = HUGE / kt_page_size();
	int fd = open_thp_device(0);
	char *p = map_huge(HUGE);
	struct kt_view v;

	fill_huge(p, HUGE, 70);
	KT_EXPECT_MIGRATE(fd, p, HUGE, TO_DEVICE, npages, 0, 0);
	kt_view_open(&v, fd, p, HUGE);
	ASSERT_EQ(kt_dev_check(v.dev, 0, HUGE, 70), -1);
	kt_dev_fill(v.dev, 0, HUGE / 2, 71);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	kt_view_close(&v);
	ASSERT_EQ(kt_check_range(p, 0, HUGE / 2, 71), -1);
	ASSERT_EQ(kt_check_range(p, HUGE / 2, HUGE / 2, 70), -1);
	kt_unmap(p, HUGE);
	close(fd);
}

/*
 * Device memory of two blocks, three huge pages: the migrations evict
 * whole device folios, which come back as huge pages, and every byte is
 * where its last writer put it.
 */
TEST(eviction_moves_device_folios_whole)
{
	size_t npages = HUGE / kt_page_size();
	struct drm_hmmgpu_stats a, b;
	char *p[3];
	int fd;

	kt_reload_hmmgpu("mem_mib=4");
	fd = open_thp_device(0);
	ASSERT_EQ(kt_mem_total(fd), 2 * HUGE);
	for (int i = 0; i < 3; i++) {
		p[i] = map_huge(HUGE);
		fill_huge(p[i], HUGE, 80 + i);
	}
	kt_get_stats(fd, HMMGPU_STATS_DEVICE, &a);
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 3; i++)
			KT_EXPECT_MIGRATE(fd, p[i], HUGE, TO_DEVICE, npages,
					  0, 0);
	kt_get_stats(fd, HMMGPU_STATS_DEVICE, &b);
	ASSERT_GE(b.pages[HMMGPU_DIR_TO_SYSTEM][HMMGPU_CAUSE_EVICTION] -
		  a.pages[HMMGPU_DIR_TO_SYSTEM][HMMGPU_CAUSE_EVICTION],
		  7 * npages);
	/* the last two are on the device, the first was evicted whole */
	KT_EXPECT_WHERE(fd, p[0], npages, AT_SYSTEM);
	ASSERT_EQ(anon_huge_kb(p[0]), (long)(HUGE >> 10));
	for (int i = 0; i < 3; i++)
		KT_EXPECT_DATA(p[i], HUGE, 80 + i);
	for (int i = 0; i < 3; i++)
		kt_unmap(p[i], HUGE);
	ASSERT_EQ(kt_wait_mem_free(fd, kt_mem_total(fd), 2000),
		  kt_mem_total(fd));
	close(fd);
	kt_restore_hmmgpu();
}

TEST_MAIN()
