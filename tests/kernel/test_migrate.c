// SPDX-License-Identifier: MIT
/*
 * test_migrate.c - page migration between system RAM and hmmgpu device
 * memory: MIGRATE both ways, holes and the zero page, CPU faults that bring
 * blocks back, and what the rest of mm does to device-resident memory
 * (munmap, exit, fork, mremap, mprotect, shared mappings), device to
 * device, device removal.
 *
 * Every test checks the data (a pattern that differs per page and per
 * seed) and the residency of every page, not only return codes.
 *
 * Runs inside the test VM with hmmgpu.ko loaded (tools/vm/hmmvm test).
 */
#define _GNU_SOURCE
#include "kt_common.h"

#include <fcntl.h>
#include <linux/kernel-page-flags.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xf86drm.h>

#define TO_DEVICE HMMGPU_MIGRATE_TO_DEVICE
#define TO_SYSTEM HMMGPU_MIGRATE_TO_SYSTEM
#define AT_NONE HMMGPU_RESIDENCY_NONE
#define AT_SYSTEM HMMGPU_RESIDENCY_SYSTEM
#define AT_DEVICE HMMGPU_RESIDENCY_THIS_DEVICE
#define AT_OTHER HMMGPU_RESIDENCY_OTHER_DEVICE

/* Bytes a CPU fault on a device page brings back (fault_kib). */
static size_t fault_block(void)
{
	size_t fb = kt_module_param_or("fault_kib", 64) * 1024;

	return fb < kt_page_size() ? kt_page_size() : fb;
}

/* Reads one byte the way a test means it: through the CPU, once. */
static uint8_t cpu_read(const void *p, size_t off)
{
	return *(const volatile uint8_t *)((const uint8_t *)p + off);
}

static void cpu_write(void *p, size_t off, uint8_t v)
{
	*(volatile uint8_t *)((uint8_t *)p + off) = v;
}

/* Touches every page of [p, p + size) with a read (maps the zero page). */
static void read_every_page(const void *p, size_t size)
{
	for (size_t off = 0; off < size; off += kt_page_size())
		(void)cpu_read(p, off);
}

/* --- to the device and back ---------------------------------------------- */

/*
 * Fills @npages pages at @p, migrates them to the device and back and
 * checks counts, residency, device memory use and data at every step.
 */
static void roundtrip(int fd, char *p, size_t npages, uint64_t seed)
{
	size_t ps = kt_page_size(), size = npages * ps;
	unsigned long long free0 = kt_mem_free(fd);

	kt_fill(p, size, seed);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);

	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	ASSERT_EQ(kt_mem_free(fd), free0 - size);

	/* nothing left to move */
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, 0, npages, 0);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	ASSERT_EQ(kt_mem_free(fd), free0 - size);

	KT_EXPECT_MIGRATE(fd, p, size, TO_SYSTEM, npages, 0, 0);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), free0);
	KT_EXPECT_DATA(p, size, seed);

	KT_EXPECT_MIGRATE(fd, p, size, TO_SYSTEM, 0, npages, 0);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
}

TEST(migrate_to_device_and_back_keeps_data)
{
	/* 1 page, one 64 KiB block, 300 pages (not a multiple of 64 KiB),
	 * 4 MiB and 10 MiB + 3 pages (huge pages in the middle) */
	static const size_t sizes[] = { 1, 16, 300, 1024, 2563 };
	size_t ps = kt_page_size();
	int fd = kt_open_device(0);

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char *p = kt_map(sizes[i] * ps);

		TH_LOG("%zu pages", sizes[i]);
		roundtrip(fd, p, sizes[i], 100 + i);
		kt_unmap(p, sizes[i] * ps);
	}
	ASSERT_EQ(kt_mem_free(fd), kt_mem_total(fd));
	close(fd);
}

TEST(migrate_range_not_aligned_to_a_block)
{
	size_t ps = kt_page_size(), fb = fault_block();
	size_t npages = 300;
	int fd = kt_open_device(0);
	/* start 3 pages past a block boundary, end in the middle of one */
	char *base = kt_map_aligned(npages * ps + fb, fb);

	kt_fill(base, npages * ps + fb, 7);
	roundtrip(fd, base + 3 * ps, npages, 8);
	/* the pages around the range never moved and kept their data */
	KT_EXPECT_WHERE(fd, base, 3, AT_SYSTEM);
	KT_EXPECT_WHERE(fd, base + (3 + npages) * ps, fb / ps - 3, AT_SYSTEM);
	ASSERT_EQ(kt_check_range(base, 0, 3 * ps, 7), -1);
	ASSERT_EQ(kt_check_range(base, (3 + npages) * ps, fb - 3 * ps, 7), -1);
	close(fd);
}

TEST(migrate_part_of_a_huge_page)
{
	size_t ps = kt_page_size(), huge = 2UL << 20, size = 2 * huge;
	size_t npages = size / ps, sub = 16 + 1;
	size_t first = huge / ps + 100; /* inside the second huge page */
	int fd = kt_open_device(0);
	char *p = kt_map_aligned(size, huge);

	madvise(p, size, MADV_HUGEPAGE); /* best effort */
	kt_fill(p, size, 21);

	KT_EXPECT_MIGRATE(fd, p + first * ps, sub * ps, TO_DEVICE, sub, 0, 0);
	KT_EXPECT_WHERE(fd, p, first, AT_SYSTEM);
	KT_EXPECT_WHERE(fd, p + first * ps, sub, AT_DEVICE);
	KT_EXPECT_WHERE(fd, p + (first + sub) * ps, npages - first - sub,
			AT_SYSTEM);

	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages - sub, sub, 0);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	KT_EXPECT_MIGRATE(fd, p, size, TO_SYSTEM, npages, 0, 0);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	KT_EXPECT_DATA(p, size, 21);
	close(fd);
}

/*
 * Holes (never touched) and the zero page (only read) become zeroed device
 * pages, even when every device page held someone's data before.
 */
TEST(holes_and_zero_page_read_as_zeros)
{
	size_t ps = kt_page_size();
	unsigned long long total;
	char *dirty, *holes, *zero;
	size_t npages, half;
	int fd;

	/* a small device, so that every one of its pages gets dirtied */
	kt_reload_hmmgpu("mem_mib=16");
	fd = kt_open_device(0);
	total = kt_mem_total(fd);
	ASSERT_EQ(total, 16ULL << 20);
	ASSERT_EQ(kt_mem_free(fd), total);
	npages = total / ps;
	half = npages / 2;

	dirty = kt_map(total);
	kt_fill(dirty, total, 0xd1);
	KT_EXPECT_MIGRATE(fd, dirty, total, TO_DEVICE, npages, 0, 0);
	KT_EXPECT_WHERE(fd, dirty, npages, AT_DEVICE);
	ASSERT_EQ(kt_mem_free(fd), 0);
	kt_unmap(dirty, total);
	ASSERT_EQ(kt_wait_mem_free(fd, total, 2000), total);

	/*
	 * Each on its own 2 MiB blocks: a read of "zero" may map the huge
	 * zero page, and where the two VMAs merged and a block straddled
	 * them (Linux 6.1 places them so), it would cover "holes" too.
	 */
	holes = kt_map_aligned(half * ps, 2 << 20);
	zero = kt_map_aligned(half * ps, 2 << 20);
	read_every_page(zero, half * ps);
	KT_EXPECT_WHERE(fd, holes, half, AT_NONE);

	KT_EXPECT_MIGRATE(fd, holes, half * ps, TO_DEVICE, half, 0, 0);
	KT_EXPECT_MIGRATE(fd, zero, half * ps, TO_DEVICE, half, 0, 0);
	KT_EXPECT_WHERE(fd, holes, half, AT_DEVICE);
	KT_EXPECT_WHERE(fd, zero, half, AT_DEVICE);
	ASSERT_EQ(kt_mem_free(fd), total - 2 * half * ps);

	/* CPU reads fault the pages back: zeros, nothing of "dirty" */
	ASSERT_EQ(kt_check_zero(holes, half * ps), -1);
	ASSERT_EQ(kt_check_zero(zero, half * ps), -1);
	KT_EXPECT_WHERE(fd, holes, half, AT_SYSTEM);
	KT_EXPECT_WHERE(fd, zero, half, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), total);

	/* and through an explicit migration back, too */
	KT_EXPECT_MIGRATE(fd, holes, half * ps, TO_DEVICE, half, 0, 0);
	KT_EXPECT_MIGRATE(fd, holes, half * ps, TO_SYSTEM, half, 0, 0);
	ASSERT_EQ(kt_check_zero(holes, half * ps), -1);

	kt_unmap(holes, half * ps);
	kt_unmap(zero, half * ps);
	close(fd);
	kt_restore_hmmgpu();
}

/* --- CPU faults ---------------------------------------------------------- */

/*
 * Migrates 8 fault blocks to the device, touches one byte in block 3 with
 * @write, and checks that exactly that block came back.
 */
static void cpu_fault_brings_back_block(bool write)
{
	size_t ps = kt_page_size(), fb = fault_block(), bp = fb / ps;
	size_t size = 8 * fb, npages = size / ps;
	size_t off = 3 * fb + fb / 2 + 123; /* block 3 */
	struct drm_hmmgpu_stats st0, st1, fst0, fst1;
	int fd = kt_open_device(0);
	unsigned long long free0 = kt_mem_free(fd);
	char *p = kt_map_aligned(size, fb);
	uint8_t want = kt_pattern_byte(31, off);

	kt_fill(p, size, 31);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);

	kt_get_stats(fd, HMMGPU_STATS_DEVICE, &st0);
	kt_get_stats(fd, HMMGPU_STATS_FILE, &fst0);
	if (write)
		cpu_write(p, off, (uint8_t)~want);
	else
		ASSERT_EQ(cpu_read(p, off), want);
	kt_get_stats(fd, HMMGPU_STATS_DEVICE, &st1);
	kt_get_stats(fd, HMMGPU_STATS_FILE, &fst1);

	/* exactly the aligned block around the byte is back */
	KT_EXPECT_WHERE(fd, p, 3 * bp, AT_DEVICE);
	KT_EXPECT_WHERE(fd, p + 3 * fb, bp, AT_SYSTEM);
	KT_EXPECT_WHERE(fd, p + 4 * fb, 4 * bp, AT_DEVICE);
	ASSERT_EQ(kt_mem_free(fd), free0 - 7 * fb);

	ASSERT_GE(st1.cpu_faults - st0.cpu_faults, 1);
	ASSERT_EQ(st1.pages[HMMGPU_DIR_TO_SYSTEM][HMMGPU_CAUSE_CPU_FAULT] -
		  st0.pages[HMMGPU_DIR_TO_SYSTEM][HMMGPU_CAUSE_CPU_FAULT], bp);
	ASSERT_EQ(st1.bytes[HMMGPU_DIR_TO_SYSTEM][HMMGPU_CAUSE_CPU_FAULT] -
		  st0.bytes[HMMGPU_DIR_TO_SYSTEM][HMMGPU_CAUSE_CPU_FAULT], fb);
	/* nothing else moved */
	ASSERT_EQ(st1.pages[HMMGPU_DIR_TO_SYSTEM][HMMGPU_CAUSE_EXPLICIT],
		  st0.pages[HMMGPU_DIR_TO_SYSTEM][HMMGPU_CAUSE_EXPLICIT]);
	ASSERT_EQ(st1.pages[HMMGPU_DIR_TO_DEVICE][HMMGPU_CAUSE_EXPLICIT],
		  st0.pages[HMMGPU_DIR_TO_DEVICE][HMMGPU_CAUSE_EXPLICIT]);
	/* a file's counters never exceed its device's */
	ASSERT_LE(fst1.cpu_faults - fst0.cpu_faults,
		  st1.cpu_faults - st0.cpu_faults);

	/* the block holds the data, with the write when there was one */
	ASSERT_EQ(kt_check_range(p, 3 * fb, fb / 2 + 123, 31), -1);
	ASSERT_EQ(cpu_read(p, off), write ? (uint8_t)~want : want);
	ASSERT_EQ(kt_check_range(p, off + 1, 4 * fb - off - 1, 31), -1);
	KT_EXPECT_WHERE(fd, p, 3 * bp, AT_DEVICE);
	KT_EXPECT_WHERE(fd, p + 4 * fb, 4 * bp, AT_DEVICE);

	/* a round trip keeps the write */
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, bp, npages - bp, 0);
	KT_EXPECT_MIGRATE(fd, p, size, TO_SYSTEM, npages, 0, 0);
	ASSERT_EQ(kt_check_range(p, 0, off, 31), -1);
	ASSERT_EQ(cpu_read(p, off), write ? (uint8_t)~want : want);
	ASSERT_EQ(kt_check_range(p, off + 1, size - off - 1, 31), -1);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	close(fd);
}

TEST(cpu_read_fault_brings_back_one_block)
{
	cpu_fault_brings_back_block(false);
}

TEST(cpu_write_fault_brings_back_one_block)
{
	cpu_fault_brings_back_block(true);
}

TEST(cpu_fault_block_follows_fault_kib)
{
	/* 4 KiB device pages: a 2 MiB one comes back whole (test_thp) */
	static const char *const params[] = { "fault_kib=4 device_thp=0",
					      "fault_kib=512 device_thp=0" };

	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		TH_LOG("%s", params[i]);
		kt_reload_hmmgpu(params[i]);
		ASSERT_EQ(fault_block(),
			  strtoul(params[i] + strlen("fault_kib="), NULL, 10)
				  << 10);
		cpu_fault_brings_back_block(i % 2);
	}
	kt_restore_hmmgpu();
}

TEST(cpu_fault_reads_every_page_back)
{
	size_t ps = kt_page_size(), npages = 300, size = npages * ps;
	struct drm_hmmgpu_stats st0, st1;
	int fd = kt_open_device(0);
	char *p = kt_map(size);

	kt_fill(p, size, 33);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	kt_get_stats(fd, HMMGPU_STATS_DEVICE, &st0);
	/* plain CPU reads of everything, in order */
	KT_EXPECT_DATA(p, size, 33);
	kt_get_stats(fd, HMMGPU_STATS_DEVICE, &st1);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), kt_mem_total(fd));
	ASSERT_EQ(st1.pages[HMMGPU_DIR_TO_SYSTEM][HMMGPU_CAUSE_CPU_FAULT] -
		  st0.pages[HMMGPU_DIR_TO_SYSTEM][HMMGPU_CAUSE_CPU_FAULT],
		  npages);
	/* blocks, not pages: far fewer faults than pages */
	ASSERT_GE(st1.cpu_faults - st0.cpu_faults, 1);
	if (fault_block() >= 16 * ps)
		ASSERT_LE(st1.cpu_faults - st0.cpu_faults, npages / 8);
	close(fd);
}

TEST(cpu_fault_block_stops_at_vma_edge)
{
	size_t ps = kt_page_size(), fb = fault_block(), bp = fb / ps;
	size_t size = 2 * fb, npages = size / ps, cut = bp / 2;
	int fd = kt_open_device(0);
	char *p;

	if (bp < 2)
		SKIP("fault block of one page");
	p = kt_map_aligned(size, fb);
	kt_fill(p, size, 41);
	/* two VMAs, the edge in the middle of block 0 */
	ASSERT_EQ(mprotect(p + cut * ps, size - cut * ps, PROT_READ), 0);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);

	ASSERT_EQ(cpu_read(p, 5), kt_pattern_byte(41, 5));
	KT_EXPECT_WHERE(fd, p, cut, AT_SYSTEM);
	KT_EXPECT_WHERE(fd, p + cut * ps, npages - cut, AT_DEVICE);

	/* and the other way round, from the read-only side */
	ASSERT_EQ(cpu_read(p, (cut + 1) * ps),
		  kt_pattern_byte(41, (cut + 1) * ps));
	KT_EXPECT_WHERE(fd, p, bp, AT_SYSTEM);
	KT_EXPECT_WHERE(fd, p + fb, bp, AT_DEVICE);
	KT_EXPECT_DATA(p, size, 41);
	close(fd);
}

TEST(partial_fault_back_then_migrate_again)
{
	size_t ps = kt_page_size(), fb = fault_block(), bp = fb / ps;
	size_t size = 8 * fb, npages = size / ps;
	int fd = kt_open_device(0);
	char *p = kt_map_aligned(size, fb);

	kt_fill(p, size, 51);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	/* the first byte of block 1, the last byte of block 6 */
	ASSERT_EQ(cpu_read(p, fb), kt_pattern_byte(51, fb));
	ASSERT_EQ(cpu_read(p, 7 * fb - 1), kt_pattern_byte(51, 7 * fb - 1));
	ASSERT_EQ(kt_residency_count(fd, p, npages, AT_SYSTEM), 2 * bp);
	KT_EXPECT_WHERE(fd, p + fb, bp, AT_SYSTEM);
	KT_EXPECT_WHERE(fd, p + 6 * fb, bp, AT_SYSTEM);

	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, 2 * bp, npages - 2 * bp, 0);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	ASSERT_EQ(kt_mem_free(fd), kt_mem_total(fd) - size);

	KT_EXPECT_MIGRATE(fd, p, size, TO_SYSTEM, npages, 0, 0);
	KT_EXPECT_DATA(p, size, 51);
	close(fd);
}

/* --- what mm does to device-resident memory ------------------------------- */

TEST(munmap_frees_device_memory)
{
	size_t ps = kt_page_size(), npages = 512 + 44, size = npages * ps;
	size_t half = 256;
	int fd = kt_open_device(0);
	unsigned long long total = kt_mem_total(fd);
	char *p;

	ASSERT_EQ(kt_mem_free(fd), total);
	p = kt_map(size);
	kt_fill(p, size, 61);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	ASSERT_EQ(kt_mem_free(fd), total - size);

	/* part of it first */
	kt_unmap(p, half * ps);
	ASSERT_EQ(kt_wait_mem_free(fd, total - size + half * ps, 2000),
		  total - size + half * ps);
	KT_EXPECT_WHERE(fd, p, half, AT_NONE);
	KT_EXPECT_WHERE(fd, p + half * ps, npages - half, AT_DEVICE);
	ASSERT_EQ(kt_check_range(p, half * ps, ps, 61), -1);

	kt_unmap(p + half * ps, size - half * ps);
	ASSERT_EQ(kt_wait_mem_free(fd, total, 2000), total);
	close(fd);
}

TEST(process_exit_frees_device_memory)
{
	size_t ps = kt_page_size(), npages = 1024 + 7, size = npages * ps;
	int fd = kt_open_device(0);
	unsigned long long total = kt_mem_total(fd);

	ASSERT_EQ(kt_mem_free(fd), total);
	/* a child that exits, then one that is killed */
	for (int kill_it = 0; kill_it < 2; kill_it++) {
		int ready[2], go[2];
		pid_t pid;

		ASSERT_EQ(pipe(ready), 0);
		ASSERT_EQ(pipe(go), 0);
		pid = fork();
		ASSERT_GE(pid, 0);
		if (pid == 0) {
			int cfd = kt_open_device(0);
			char *q = kt_map(size);

			close(fd);
			kt_fill(q, size, 62);
			KT_EXPECT_MIGRATE(cfd, q, size, TO_DEVICE, npages, 0,
					  0);
			kt_pipe_signal(ready[1]);
			kt_pipe_wait(go[0]);
			_exit(0); /* no munmap, no close */
		}
		kt_pipe_wait(ready[0]);
		ASSERT_EQ(kt_mem_free(fd), total - size);
		if (kill_it) {
			ASSERT_EQ(kill(pid, SIGKILL), 0);
			ASSERT_EQ(kt_wait_child(pid), 128 + SIGKILL);
		} else {
			kt_pipe_signal(go[1]);
			ASSERT_EQ(kt_wait_child(pid), 0);
		}
		ASSERT_EQ(kt_wait_mem_free(fd, total, 5000), total);
		close(ready[0]);
		close(ready[1]);
		close(go[0]);
		close(go[1]);
	}
	close(fd);
}

TEST(closing_the_file_keeps_device_pages)
{
	size_t ps = kt_page_size(), npages = 300, size = npages * ps;
	int fd = kt_open_device(0);
	unsigned long long total = kt_mem_total(fd);
	char *p = kt_map(size);

	kt_fill(p, size, 63);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	close(fd);

	fd = kt_open_device(0);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	ASSERT_EQ(kt_mem_free(fd), total - size);
	KT_EXPECT_DATA(p, size, 63);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), total);
	close(fd);
}

TEST(fork_keeps_private_copies)
{
	size_t ps = kt_page_size(), npages = 300, size = npages * ps;
	int fd = kt_open_device(0);
	int to_child[2], to_parent[2];
	char *p = kt_map(size);
	pid_t pid;

	kt_fill(p, size, 71);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	ASSERT_EQ(pipe(to_child), 0);
	ASSERT_EQ(pipe(to_parent), 0);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		int cfd = kt_open_device(0);

		kt_pipe_wait(to_child[0]);
		/* the data from before fork, then writes of our own */
		KT_EXPECT_DATA(p, size / 2, 71);
		kt_fill(p, size, 72);
		KT_EXPECT_MIGRATE(cfd, p, size, TO_DEVICE, npages, 0, 0);
		KT_EXPECT_WHERE(cfd, p, npages, AT_DEVICE);
		kt_pipe_signal(to_parent[1]);

		kt_pipe_wait(to_child[0]);
		/* the parent's writes are not ours */
		KT_EXPECT_DATA(p, size, 72);
		KT_EXPECT_MIGRATE(cfd, p, size, TO_SYSTEM, 0, npages, 0);
		_exit(0);
	}

	/* fork left the pages where they were */
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	kt_pipe_signal(to_child[1]);
	kt_pipe_wait(to_parent[0]);

	/* the child's reads and writes did not change our copy */
	KT_EXPECT_DATA(p, size, 71);
	kt_fill(p, size, 73);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	kt_pipe_signal(to_child[1]);
	ASSERT_EQ(kt_wait_child(pid), 0);

	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	KT_EXPECT_MIGRATE(fd, p, size, TO_SYSTEM, npages, 0, 0);
	KT_EXPECT_DATA(p, size, 73);
	kt_unmap(p, size);
	ASSERT_EQ(kt_wait_mem_free(fd, kt_mem_total(fd), 2000),
		  kt_mem_total(fd));
	close(fd);
}

TEST(mremap_moves_device_pages)
{
	size_t ps = kt_page_size(), npages = 300, size = npages * ps;
	int fd = kt_open_device(0);
	unsigned long long total = kt_mem_total(fd);
	char *p = kt_map(size), *target = kt_map(size), *q;
	size_t back;

	kt_fill(p, size, 81);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);

	q = mremap(p, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, target);
	ASSERT_TRUE(q == target);
	KT_EXPECT_WHERE(fd, p, npages, AT_NONE);
	KT_EXPECT_WHERE(fd, q, npages, AT_DEVICE);
	ASSERT_EQ(kt_mem_free(fd), total - size);

	/* half back through CPU faults (whole blocks), the rest explicitly */
	KT_EXPECT_DATA(q, size / 2, 81);
	KT_EXPECT_WHERE(fd, q, npages / 2, AT_SYSTEM);
	back = kt_residency_count(fd, q, npages, AT_SYSTEM);
	ASSERT_EQ(kt_residency_count(fd, q, npages, AT_DEVICE), npages - back);
	KT_EXPECT_MIGRATE(fd, q, size, TO_SYSTEM, npages - back, back, 0);
	KT_EXPECT_WHERE(fd, q, npages, AT_SYSTEM);
	KT_EXPECT_DATA(q, size, 81);
	ASSERT_EQ(kt_mem_free(fd), total);
	kt_unmap(q, size);
	close(fd);
}

/* A shared mapping, anonymous (@file < 0) or of @file: nothing moves. */
static void shared_range_is_skipped(int file)
{
	size_t ps = kt_page_size(), npages = 64 + 3, size = npages * ps;
	int fd = kt_open_device(0);
	unsigned long long total = kt_mem_total(fd);
	char *p;

	if (file >= 0) {
		ASSERT_EQ(ftruncate(file, size), 0);
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, file,
			 0);
	} else {
		p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	}
	ASSERT_TRUE(p != MAP_FAILED);
	kt_fill(p, size, 91);

	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, 0, 0, npages);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), total);
	KT_EXPECT_DATA(p, size, 91);
	/* never on a device: already in system memory */
	KT_EXPECT_MIGRATE(fd, p, size, TO_SYSTEM, 0, npages, 0);

	/* untouched pages of a shared mapping cannot move either */
	ASSERT_EQ(madvise(p, size, MADV_REMOVE), 0);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, 0, 0, npages);
	ASSERT_EQ(kt_mem_free(fd), total);
	ASSERT_EQ(kt_check_zero(p, size), -1);
	kt_unmap(p, size);
	close(fd);
}

TEST(shared_anonymous_range_is_skipped)
{
	shared_range_is_skipped(-1);
}

TEST(shared_file_range_is_skipped)
{
	char path[] = "/tmp/kt-migrate-XXXXXX";
	int file = mkstemp(path);

	ASSERT_GE(file, 0);
	unlink(path);
	shared_range_is_skipped(file);
	close(file);
}

TEST(private_and_shared_in_one_range)
{
	size_t ps = kt_page_size(), n = 40, size = 2 * n * ps;
	int fd = kt_open_device(0);
	char *p = kt_map(size), *s;

	/* [private | shared], two VMAs, one call */
	s = mmap(p + n * ps, n * ps, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ASSERT_TRUE(s == p + n * ps);
	kt_fill(p, size, 92);

	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, n, 0, n);
	KT_EXPECT_WHERE(fd, p, n, AT_DEVICE);
	KT_EXPECT_WHERE(fd, s, n, AT_SYSTEM);
	/* the shared half never left system memory: already there */
	KT_EXPECT_MIGRATE(fd, p, size, TO_SYSTEM, n, n, 0);
	KT_EXPECT_WHERE(fd, p, 2 * n, AT_SYSTEM);
	KT_EXPECT_DATA(p, size, 92);
	close(fd);
}

TEST(read_only_range_migrates_and_stays_read_only)
{
	size_t ps = kt_page_size(), npages = 100, size = npages * ps;
	int fd = kt_open_device(0);
	char *p = kt_map(size);
	pid_t pid;

	kt_fill(p, size, 101);
	ASSERT_EQ(mprotect(p, size, PROT_READ), 0);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);

	/* a CPU write to a device-resident read-only page is still refused */
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		cpu_write(p, 3 * ps + 1, 0);
		_exit(0);
	}
	ASSERT_EQ(kt_wait_child(pid), 128 + SIGSEGV);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);

	KT_EXPECT_DATA(p, size, 101);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);

	/* and explicitly back from the device once more */
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	KT_EXPECT_MIGRATE(fd, p, size, TO_SYSTEM, npages, 0, 0);
	KT_EXPECT_DATA(p, size, 101);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		cpu_write(p, 5 * ps, 0);
		_exit(0);
	}
	ASSERT_EQ(kt_wait_child(pid), 128 + SIGSEGV);

	/* writable again: a write after migration is kept */
	ASSERT_EQ(mprotect(p, size, PROT_READ | PROT_WRITE), 0);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	cpu_write(p, 7, (uint8_t)~kt_pattern_byte(101, 7));
	ASSERT_EQ(cpu_read(p, 7), (uint8_t)~kt_pattern_byte(101, 7));
	ASSERT_EQ(kt_check_range(p, 8, size - 8, 101), -1);
	close(fd);
}

TEST(prot_none_range_is_skipped)
{
	size_t ps = kt_page_size(), n = 50, size = 2 * n * ps;
	int fd = kt_open_device(0);
	unsigned long long total = kt_mem_total(fd);
	char *p = kt_map(size);

	kt_fill(p, size, 111);
	ASSERT_EQ(mprotect(p + n * ps, n * ps, PROT_NONE), 0);

	/* only PROT_NONE: not an error, nothing moves */
	KT_EXPECT_MIGRATE(fd, p + n * ps, n * ps, TO_DEVICE, 0, 0, n);
	ASSERT_EQ(kt_mem_free(fd), total);
	/* half and half */
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, n, 0, n);
	KT_EXPECT_WHERE(fd, p, n, AT_DEVICE);
	ASSERT_EQ(kt_mem_free(fd), total - n * ps);

	ASSERT_EQ(mprotect(p + n * ps, n * ps, PROT_READ | PROT_WRITE), 0);
	KT_EXPECT_WHERE(fd, p + n * ps, n, AT_SYSTEM);
	KT_EXPECT_DATA(p, size, 111);
	KT_EXPECT_WHERE(fd, p, 2 * n, AT_SYSTEM);
	close(fd);
}

/* --- where RESIDENCY finds pages the CPU cannot reach -------------------- */

/* Checks RESIDENCY of @n pages at @p against @want, page by page. */
static void expect_locations(int fd, const void *p, size_t n,
			     const uint8_t *want)
{
	uint64_t count[4], sum[4] = { 0 };
	uint8_t *loc = malloc(n);

	ASSERT_TRUE(loc != NULL);
	ASSERT_EQ(kt_residency(fd, p, n, loc, count), 0);
	for (size_t i = 0; i < n; i++) {
		if (loc[i] != want[i])
			TH_LOG("page %zu: at %u, expected %u", i, loc[i],
			       want[i]);
		ASSERT_EQ(loc[i], want[i]);
		sum[want[i]]++;
	}
	for (int w = 0; w < 4; w++)
		ASSERT_EQ(count[w], sum[w]);
	free(loc);
}

/*
 * PROT_NONE changes who may touch a page, not where it is: pages on the
 * device and in RAM of a PROT_NONE range are reported there, and only
 * never-touched pages as NONE; a read-only range the same.
 */
TEST(residency_reports_prot_none_pages)
{
	size_t ps = kt_page_size(), n = 16, npages = 3 * n;
	size_t size = npages * ps, huge = 2UL << 20;
	unsigned int ndev = kt_module_param("num_devices");
	int fd = kt_open_device(0);
	char *p = kt_map(size), *h;
	uint8_t want[3 * 16];

	/* [on the device | in RAM | never touched] */
	kt_fill(p, 2 * n * ps, 151);
	KT_EXPECT_MIGRATE(fd, p, n * ps, TO_DEVICE, n, 0, 0);
	for (size_t i = 0; i < npages; i++)
		want[i] = i < n ? AT_DEVICE : i < 2 * n ? AT_SYSTEM : AT_NONE;

	ASSERT_EQ(mprotect(p, size, PROT_NONE), 0);
	expect_locations(fd, p, npages, want);
	if (ndev > 1) {
		int fd1 = kt_open_device(1);

		KT_EXPECT_WHERE(fd1, p, n, AT_OTHER);
		KT_EXPECT_WHERE(fd1, p + n * ps, n, AT_SYSTEM);
		close(fd1);
	}
	/* part of the range PROT_NONE, part read-only */
	ASSERT_EQ(mprotect(p + n * ps / 2, size - n * ps / 2, PROT_READ), 0);
	expect_locations(fd, p, npages, want);
	/* asking moved nothing */
	ASSERT_EQ(kt_mem_free(fd), kt_mem_total(fd) - n * ps);

	ASSERT_EQ(mprotect(p, size, PROT_READ | PROT_WRITE), 0);
	expect_locations(fd, p, npages, want);
	KT_EXPECT_DATA(p, 2 * n * ps, 151);
	ASSERT_EQ(kt_check_zero(p + 2 * n * ps, n * ps), -1);
	KT_EXPECT_WHERE(fd, p, 2 * n, AT_SYSTEM);
	kt_unmap(p, size);

	/* a PROT_NONE huge page (a PMD entry, when THP gives one) */
	h = kt_map_aligned(huge, huge);
	madvise(h, huge, MADV_HUGEPAGE); /* best effort */
	kt_fill(h, huge, 152);
	ASSERT_EQ(mprotect(h, huge, PROT_NONE), 0);
	KT_EXPECT_WHERE(fd, h, huge / ps, AT_SYSTEM);
	ASSERT_EQ(mprotect(h, huge, PROT_READ), 0);
	KT_EXPECT_DATA(h, huge, 152);
	kt_unmap(h, huge);
	close(fd);
}

#define SWAP_DEV "/dev/ram15" /* a brd RAM disk (CONFIG_BLK_DEV_RAM) */

/* Makes @SWAP_DEV a swap area and turns it on; SKIP where it cannot. */
static void swap_on(void)
{
	size_t ps = kt_page_size();
	char *hdr = calloc(1, ps);
	uint32_t info[3];
	off_t size;
	int f;

	ASSERT_TRUE(hdr != NULL);
	f = open(SWAP_DEV, O_RDWR);
	if (f < 0)
		SKIP("%s: %s", SWAP_DEV, strerror(errno));
	size = lseek(f, 0, SEEK_END);
	if (size < (off_t)(64 * ps))
		SKIP("%s is too small for swap", SWAP_DEV);
	/* union swap_header: version 1, last page, no bad pages */
	info[0] = 1;
	info[1] = size / ps - 1;
	info[2] = 0;
	memcpy(hdr + 1024, info, sizeof(info));
	memcpy(hdr + ps - 10, "SWAPSPACE2", 10);
	ASSERT_EQ(pwrite(f, hdr, ps, 0), (ssize_t)ps);
	ASSERT_EQ(fsync(f), 0);
	close(f);
	free(hdr);
	if (swapon(SWAP_DEV, 0) && errno != EBUSY)
		SKIP("swapon %s: %s", SWAP_DEV, strerror(errno));
}

/* Pages of [@p, @p + @n pages) that /proc/self/pagemap says are in swap. */
static size_t swapped_pages(const void *p, size_t n)
{
	size_t ps = kt_page_size(), swapped = 0;
	int f = open("/proc/self/pagemap", O_RDONLY);

	ASSERT_GE(f, 0);
	for (size_t i = 0; i < n; i++) {
		uint64_t e;
		off_t off = ((uintptr_t)p / ps + i) * sizeof(e);

		ASSERT_EQ(pread(f, &e, sizeof(e), off), (ssize_t)sizeof(e));
		if (e & (1ULL << 62))
			swapped++;
	}
	close(f);
	return swapped;
}

/*
 * A swapped-out page is in system memory's backing store: RESIDENCY says
 * SYSTEM, in a readable and in a PROT_NONE range, and asking does not
 * swap it in.
 */
TEST(residency_reports_swapped_pages)
{
	size_t ps = kt_page_size(), n = 32, npages = 4 * n;
	size_t size = npages * ps;
	int fd = kt_open_device(0);
	char *p = kt_map(size);
	uint8_t want[4 * 32];
	size_t swapped = 0;

	swap_on();
	/* [on the device | swapped | swapped, PROT_NONE | never touched] */
	kt_fill(p, 3 * n * ps, 161);
	KT_EXPECT_MIGRATE(fd, p, n * ps, TO_DEVICE, n, 0, 0);
	for (int tries = 0; tries < 10 && swapped < 2 * n; tries++) {
		ASSERT_EQ(madvise(p + n * ps, 2 * n * ps, MADV_PAGEOUT), 0);
		swapped = swapped_pages(p + n * ps, 2 * n);
	}
	TH_LOG("%zu of %zu pages swapped out", swapped, 2 * n);
	if (!swapped)
		SKIP("MADV_PAGEOUT swapped nothing out");
	ASSERT_EQ(mprotect(p + 2 * n * ps, n * ps, PROT_NONE), 0);
	for (size_t i = 0; i < npages; i++)
		want[i] = i < n ? AT_DEVICE : i < 3 * n ? AT_SYSTEM : AT_NONE;

	expect_locations(fd, p, npages, want);
	/* nothing was swapped in by asking */
	ASSERT_EQ(swapped_pages(p + n * ps, 2 * n), swapped);

	ASSERT_EQ(mprotect(p + 2 * n * ps, n * ps, PROT_READ | PROT_WRITE), 0);
	KT_EXPECT_DATA(p, 3 * n * ps, 161);
	ASSERT_EQ(kt_check_zero(p + 3 * n * ps, n * ps), -1);
	KT_EXPECT_WHERE(fd, p, 3 * n, AT_SYSTEM);
	kt_unmap(p, size);
	close(fd);
	ASSERT_EQ(swapoff(SWAP_DEV), 0);
}

/* --- mlock ----------------------------------------------------------------- */

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif

/*
 * mlock() promises that the memory stays in RAM and is accessed without
 * a fault: a locked range does not move to the device (every page
 * skipped), the unlocked part of a range does, and after munlock() all of
 * it does.  Locking device-resident memory brings it home; locking it
 * with MLOCK_ONFAULT leaves it there, and it still comes back on request.
 */
TEST(mlocked_range_stays_in_ram)
{
	size_t ps = kt_page_size(), npages = 256, half = npages / 2;
	size_t size = npages * ps;
	struct drm_hmmgpu_stats st0, st1;
	int fd = kt_open_device(0);
	unsigned long long total = kt_mem_total(fd);
	char *p = kt_map(size);

	kt_fill(p, size, 171);
	if (mlock(p, size))
		SKIP("mlock: %s", strerror(errno));

	kt_get_stats(fd, HMMGPU_STATS_FILE, &st0);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, 0, 0, npages);
	kt_get_stats(fd, HMMGPU_STATS_FILE, &st1);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), total);
	ASSERT_EQ(st1.pages[HMMGPU_DIR_TO_DEVICE][HMMGPU_CAUSE_EXPLICIT],
		  st0.pages[HMMGPU_DIR_TO_DEVICE][HMMGPU_CAUSE_EXPLICIT]);
	KT_EXPECT_DATA(p, size, 171);
	/* never left: already in system memory */
	KT_EXPECT_MIGRATE(fd, p, size, TO_SYSTEM, 0, npages, 0);

	/* half unlocked: that half moves, the locked half stays */
	ASSERT_EQ(munlock(p, half * ps), 0);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, half, 0, npages - half);
	KT_EXPECT_WHERE(fd, p, half, AT_DEVICE);
	KT_EXPECT_WHERE(fd, p + half * ps, npages - half, AT_SYSTEM);

	/* all unlocked: the rest moves */
	ASSERT_EQ(munlock(p + half * ps, size - half * ps), 0);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages - half, half, 0);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);

	/* mlock() of device-resident memory faults it home */
	ASSERT_EQ(mlock(p, size), 0);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	ASSERT_EQ(kt_wait_mem_free(fd, total, 2000), total);
	KT_EXPECT_DATA(p, size, 171);
	ASSERT_EQ(munlock(p, size), 0);

	/* MLOCK_ONFAULT leaves device pages there; they do not move again */
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	ASSERT_EQ(syscall(SYS_mlock2, p, size, MLOCK_ONFAULT), 0);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, 0, 0, npages);
	KT_EXPECT_MIGRATE(fd, p, size, TO_SYSTEM, npages, 0, 0);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	KT_EXPECT_DATA(p, size, 171);
	ASSERT_EQ(munlock(p, size), 0);
	kt_unmap(p, size);
	close(fd);
}

/*
 * A device access through a view to locked memory does not migrate it
 * either: the device fault maps the system pages, and device writes land
 * in them.
 */
TEST(mlocked_range_device_access_maps_system_pages)
{
	size_t ps = kt_page_size(), npages = 64, size = npages * ps;
	int fd = kt_open_device(0);
	unsigned long long total = kt_mem_total(fd);
	char *p = kt_map(size);
	struct kt_view v;

	kt_fill(p, size, 181);
	if (mlock(p, size))
		SKIP("mlock: %s", strerror(errno));
	kt_view_open(&v, fd, p, size);

	ASSERT_EQ(kt_dev_check(v.dev, 0, size, 181), -1);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), total);
	kt_dev_fill(v.dev, 0, size / 2, 182);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	ASSERT_EQ(kt_check_range(p, 0, size / 2, 182), -1);
	ASSERT_EQ(kt_check_range(p, size / 2, size / 2, 181), -1);

	kt_view_close(&v);
	ASSERT_EQ(munlock(p, size), 0);
	kt_unmap(p, size);
	close(fd);
}

/* Pins the calling thread to one CPU, so that its LRU batches are one. */
static void pin_to_one_cpu(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	ASSERT_EQ(sched_setaffinity(0, sizeof(set), &set), 0);
}

/* Reads @size bytes at @p through GUP with FOLL_TOUCH: marks them accessed. */
static void touch_through_gup(void *p, size_t size)
{
	char *buf = malloc(size);
	struct iovec local = { .iov_base = buf, .iov_len = size };
	struct iovec remote = { .iov_base = p, .iov_len = size };

	ASSERT_NE(buf, NULL);
	ASSERT_EQ(process_vm_readv(getpid(), &local, 1, &remote, 1, 0),
		  (ssize_t)size);
	free(buf);
}

/*
 * Empties every CPU's LRU batches: move_pages() to the node the pages are
 * on moves nothing but disables the LRU caches first.
 */
static void drain_lru_batches(void *p, size_t npages)
{
	size_t ps = kt_page_size(), i;
	void **pages = calloc(npages, sizeof(*pages));
	int *nodes = calloc(npages, sizeof(*nodes));
	int *status = calloc(npages, sizeof(*status));

	ASSERT_NE(pages, NULL);
	ASSERT_NE(nodes, NULL);
	ASSERT_NE(status, NULL);
	for (i = 0; i < npages; i++)
		pages[i] = (char *)p + i * ps;
	ASSERT_EQ(syscall(SYS_move_pages, 0, npages, pages, nodes, status, 0),
		  0);
	free(pages);
	free(nodes);
	free(status);
}

/*
 * How many of the @npages pages at @p, all in system memory, have
 * /proc/kpageflags bit @kpf (KPF_*) set.
 */
static size_t count_kpageflag(const void *p, size_t npages, int kpf)
{
	size_t ps = kt_page_size(), i, n = 0;
	int map = open("/proc/self/pagemap", O_RDONLY);
	int flags = open("/proc/kpageflags", O_RDONLY);

	ASSERT_GE(map, 0);
	ASSERT_GE(flags, 0);
	for (i = 0; i < npages; i++) {
		uint64_t e, f;
		off_t at = ((uintptr_t)p / ps + i) * sizeof(e);

		ASSERT_EQ(pread(map, &e, sizeof(e), at), (ssize_t)sizeof(e));
		ASSERT_TRUE(e >> 63); /* present */
		e &= (1ULL << 55) - 1;
		ASSERT_NE(e, 0); /* no PFN: not root */
		ASSERT_EQ(pread(flags, &f, sizeof(f), e * sizeof(f)),
			  (ssize_t)sizeof(f));
		n += (f >> kpf) & 1;
	}
	close(map);
	close(flags);
	return n;
}

/*
 * A device page takes the LRU state of the page whose data it receives
 * (folio_migrate_flags() copies PG_active, PG_unevictable, PG_dirty and
 * more) and hands it to the page that brings the data back.  A device page
 * freed on the device must not keep that state for its next data: it
 * did, so pages that were never active came back active, and a page that
 * got PG_unevictable from one predecessor and PG_active from the next
 * crashed the CPU fault that brought it back (VM_BUG_ON_FOLIO() in
 * folio_migrate_flags(), found by the fuzzer).  Active pages go to the
 * device and are freed there; pages that were never active take their
 * device pages (freed pages are reused first, and a page kept on the
 * device keeps their block partly used) and must come back inactive.
 */
TEST(device_pages_forget_the_state_of_their_last_data)
{
	size_t ps = kt_page_size(), npages = 64, size = npages * ps;
	int fd = kt_open_device(0);
	unsigned long long total = kt_mem_total(fd);
	char *p = kt_map(size), *q = kt_map(size), *keep = kt_map(ps);
	size_t active;

	pin_to_one_cpu();
	kt_fill(p, size, 195);
	kt_fill(keep, ps, 196);
	touch_through_gup(p, size);
	touch_through_gup(p, size);
	drain_lru_batches(p, npages);
	active = count_kpageflag(p, npages, KPF_ACTIVE);
	if (active != npages)
		SKIP("%zu of %zu pages accessed twice are active (MGLRU?)",
		     active, npages);

	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	KT_EXPECT_MIGRATE(fd, keep, ps, TO_DEVICE, 1, 0, 0);
	kt_unmap(p, size);
	ASSERT_EQ(kt_wait_mem_free(fd, total - ps, 2000), total - ps);

	kt_fill(q, size, 197);
	drain_lru_batches(q, npages);
	ASSERT_EQ(count_kpageflag(q, npages, KPF_ACTIVE), 0);
	KT_EXPECT_MIGRATE(fd, q, size, TO_DEVICE, npages, 0, 0);
	KT_EXPECT_DATA(q, size, 197); /* CPU faults bring it back */
	KT_EXPECT_WHERE(fd, q, npages, AT_SYSTEM);
	drain_lru_batches(q, npages);
	ASSERT_EQ(count_kpageflag(q, npages, KPF_ACTIVE), 0);
	ASSERT_EQ(count_kpageflag(q, npages, KPF_UNEVICTABLE), 0);
	KT_EXPECT_DATA(keep, ps, 196);
	kt_unmap(q, size);
	kt_unmap(keep, ps);
	ASSERT_EQ(kt_wait_mem_free(fd, total, 2000), total);
	close(fd);
}

/* --- two devices, two processes ------------------------------------------ */

TEST(migrate_between_devices)
{
	size_t ps = kt_page_size(), npages = 300, size = npages * ps;
	struct drm_hmmgpu_stats st0, st1;
	int fd0, fd1;
	char *p;

	if (kt_module_param("num_devices") < 2)
		SKIP("needs two hmmgpu devices");
	fd0 = kt_open_device(0);
	fd1 = kt_open_device(1);
	p = kt_map(size);
	kt_fill(p, size, 121);

	KT_EXPECT_MIGRATE(fd0, p, size, TO_DEVICE, npages, 0, 0);
	KT_EXPECT_WHERE(fd1, p, npages, AT_OTHER);

	kt_get_stats(fd1, HMMGPU_STATS_DEVICE, &st0);
	KT_EXPECT_MIGRATE(fd1, p, size, TO_DEVICE, npages, 0, 0);
	kt_get_stats(fd1, HMMGPU_STATS_DEVICE, &st1);
	KT_EXPECT_WHERE(fd1, p, npages, AT_DEVICE);
	KT_EXPECT_WHERE(fd0, p, npages, AT_OTHER);
	ASSERT_EQ(kt_mem_free(fd0), kt_mem_total(fd0));
	ASSERT_EQ(kt_mem_free(fd1), kt_mem_total(fd1) - size);
	ASSERT_EQ(st1.pages[HMMGPU_DIR_TO_DEVICE][HMMGPU_CAUSE_PEER] -
		  st0.pages[HMMGPU_DIR_TO_DEVICE][HMMGPU_CAUSE_PEER], npages);

	/* and back to device 0 through CPU faults on half of it */
	KT_EXPECT_DATA(p, size / 2, 121);
	KT_EXPECT_MIGRATE(fd0, p, size, TO_DEVICE, npages, 0, 0);
	KT_EXPECT_WHERE(fd0, p, npages, AT_DEVICE);
	ASSERT_EQ(kt_mem_free(fd1), kt_mem_total(fd1));
	KT_EXPECT_MIGRATE(fd0, p, size, TO_SYSTEM, npages, 0, 0);
	KT_EXPECT_DATA(p, size, 121);
	close(fd0);
	close(fd1);
}

/* One process's loop of round trips, until @deadline. */
static void migrate_loop(unsigned int dev, uint64_t seed, double deadline)
{
	size_t ps = kt_page_size(), fb = fault_block(), bp = fb / ps;
	size_t size = 16 * fb + 5 * ps, npages = size / ps;
	int fd = kt_open_device(dev);
	char *p = kt_map_aligned(size, fb);
	unsigned int rounds = 0;
	struct timespec ts;

	for (;;) {
		uint64_t s = seed * 1000 + rounds;

		kt_fill(p, size, s);
		KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
		KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
		/* one block back through the CPU, then all of it again */
		ASSERT_EQ(cpu_read(p, (rounds % 16) * fb),
			  kt_pattern_byte(s, (rounds % 16) * fb));
		KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, bp, npages - bp, 0);
		KT_EXPECT_MIGRATE(fd, p, size, TO_SYSTEM, npages, 0, 0);
		KT_EXPECT_DATA(p, size, s);
		rounds++;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if (ts.tv_sec + ts.tv_nsec / 1e9 > deadline && rounds >= 3)
			break;
	}
	TH_LOG("process %d: %u rounds on device %u", (int)getpid(), rounds,
	       dev);
	close(fd);
}

TEST(processes_migrate_concurrently)
{
	unsigned int ndev = kt_module_param("num_devices");
	struct timespec ts;
	pid_t pids[3];
	double deadline;
	int fd = kt_open_device(0);

	clock_gettime(CLOCK_MONOTONIC, &ts);
	deadline = ts.tv_sec + ts.tv_nsec / 1e9 + 8;
	/* two on device 0, one on the last device */
	for (int i = 0; i < 3; i++) {
		pids[i] = fork();
		ASSERT_GE(pids[i], 0);
		if (pids[i] == 0) {
			close(fd);
			migrate_loop(i < 2 ? 0 : ndev - 1, i + 1, deadline);
			_exit(0);
		}
	}
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(kt_wait_child(pids[i]), 0);
	ASSERT_EQ(kt_wait_mem_free(fd, kt_mem_total(fd), 2000),
		  kt_mem_total(fd));
	close(fd);
}

/* --- one migration shared by several threads ---------------------------- */

#define WORKERS_PARAM "/sys/module/hmmgpu/parameters/migrate_workers"

static void set_migrate_workers(unsigned long long n)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", n);
	ASSERT_EQ(kt_sysfs_write(WORKERS_PARAM, buf), 0);
	ASSERT_EQ(kt_module_param("migrate_workers"), n);
}

/* migrate_workers can change at run time, within 0-8 only. */
TEST(migrate_workers_is_writable_within_its_range)
{
	unsigned long long orig = kt_module_param_or("migrate_workers", ~0ULL);

	if (orig == ~0ULL)
		SKIP("hmmgpu has no migrate_workers parameter");
	ASSERT_EQ(kt_sysfs_write(WORKERS_PARAM, "9"), -EINVAL);
	ASSERT_EQ(kt_sysfs_write(WORKERS_PARAM, "-1"), -EINVAL);
	ASSERT_EQ(kt_module_param("migrate_workers"), orig);
	set_migrate_workers(8);
	set_migrate_workers(1);
	set_migrate_workers(orig);
}

/*
 * A range of 18 blocks, not aligned to one, made of seven VMAs whose
 * edges fall inside blocks, so that every thread sharing the migration
 * meets VMA edges in the middle of its blocks, in pages:
 *   A [0, 2000)     private, filled            moves
 *   B [2000, 2600)  MAP_SHARED, filled         skipped / already
 *   C [2600, 3900)  private, never touched     moves (zero-filled)
 *   D [3900, 4500)  private read-only, filled  moves
 *   E [4500, 5000)  PROT_NONE                  skipped / already
 *   F [5000, 9000)  private, filled            moves
 *   G [9000, 9300)  mlock()ed, filled          skipped / already
 */
enum { SH_A = 0, SH_B = 2000, SH_C = 2600, SH_D = 3900, SH_E = 4500,
       SH_F = 5000, SH_G = 9000, SH_END = 9300 };

static void shared_migration_round(int fd, unsigned int workers,
				   uint64_t seed)
{
	size_t ps = kt_page_size(), size = (size_t)SH_END * ps;
	size_t moving = (SH_B - SH_A) + (SH_D - SH_C) + (SH_E - SH_D) +
			(SH_G - SH_F);
	size_t staying = SH_END - moving;
	unsigned long long free0 = kt_mem_free(fd);
	char *base = kt_map_aligned(size + 3 * ps, 2 << 20), *p = base + 3 * ps;
	char *b;

	TH_LOG("migrate_workers=%u", workers);
	set_migrate_workers(workers);
	/*
	 * 4 KiB pages: a huge page that a later mprotect() or mlock() cuts
	 * stays a large folio mapped by PTEs, which the core does not migrate
	 * (migrate_part_of_a_huge_page covers huge pages).
	 */
	ASSERT_EQ(madvise(base, size + 3 * ps, MADV_NOHUGEPAGE), 0);
	b = mmap(p + SH_B * ps, (SH_C - SH_B) * ps, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ASSERT_TRUE(b == p + SH_B * ps);
	kt_fill_range(p, 0, SH_C * ps, seed);
	kt_fill_range(p, SH_D * ps, (SH_E - SH_D) * ps, seed);
	kt_fill_range(p, SH_F * ps, (SH_END - SH_F) * ps, seed);
	ASSERT_EQ(mprotect(p + SH_D * ps, (SH_E - SH_D) * ps, PROT_READ), 0);
	ASSERT_EQ(mprotect(p + SH_E * ps, (SH_F - SH_E) * ps, PROT_NONE), 0);
	ASSERT_EQ(mlock(p + SH_G * ps, (SH_END - SH_G) * ps), 0);

	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, moving, 0, staying);
	ASSERT_EQ(kt_mem_free(fd), free0 - moving * ps);
	KT_EXPECT_WHERE(fd, p, SH_B, AT_DEVICE);
	KT_EXPECT_WHERE(fd, p + SH_B * ps, SH_C - SH_B, AT_SYSTEM);
	KT_EXPECT_WHERE(fd, p + SH_C * ps, SH_E - SH_C, AT_DEVICE);
	KT_EXPECT_WHERE(fd, p + SH_E * ps, SH_F - SH_E, AT_NONE);
	KT_EXPECT_WHERE(fd, p + SH_F * ps, SH_G - SH_F, AT_DEVICE);
	KT_EXPECT_WHERE(fd, p + SH_G * ps, SH_END - SH_G, AT_SYSTEM);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, 0, moving, staying);

	KT_EXPECT_MIGRATE(fd, p, size, TO_SYSTEM, moving, staying, 0);
	ASSERT_EQ(kt_mem_free(fd), free0);
	KT_EXPECT_WHERE(fd, p, SH_E, AT_SYSTEM);
	KT_EXPECT_WHERE(fd, p + SH_F * ps, SH_END - SH_F, AT_SYSTEM);
	ASSERT_EQ(kt_check_range(p, 0, SH_C * ps, seed), -1);
	ASSERT_EQ(kt_check_zero(p + SH_C * ps, (SH_D - SH_C) * ps), -1);
	ASSERT_EQ(kt_check_range(p, SH_D * ps, (SH_E - SH_D) * ps, seed), -1);
	ASSERT_EQ(kt_check_range(p, SH_F * ps, (SH_END - SH_F) * ps, seed),
		  -1);
	kt_unmap(base, size + 3 * ps);
}

TEST(migration_shared_by_threads_counts_and_keeps_every_page)
{
	static const unsigned int workers[] = { 1, 2, 3, 8 };
	unsigned long long orig = kt_module_param_or("migrate_workers", ~0ULL);
	int fd = kt_open_device(0);

	if (orig == ~0ULL)
		SKIP("hmmgpu has no migrate_workers parameter");
	for (size_t i = 0; i < sizeof(workers) / sizeof(workers[0]); i++)
		shared_migration_round(fd, workers[i], 700 + i);
	set_migrate_workers(orig);
	ASSERT_EQ(kt_mem_free(fd), kt_mem_total(fd));
	close(fd);
}

struct unmap_race {
	char *p;
	size_t off, len;
	unsigned int delay_us;
};

static void unmap_after_delay(void *arg)
{
	struct unmap_race *r = arg;

	usleep(r->delay_us);
	kt_unmap(r->p + r->off, r->len);
}

/*
 * The threads sharing a migration take the mmap_lock after the ioctl has
 * checked the range: a munmap in between makes a hole that they must
 * count as skipped, leaving nothing on the device for it and the rest of
 * the range intact.
 */
TEST(munmap_racing_a_shared_migration_loses_nothing)
{
	size_t ps = kt_page_size(), size = 16 << 20, hole = 4 << 20;
	size_t npages = size / ps;
	int fd = kt_open_device(0);

	for (unsigned int i = 0; i < 24; i++) {
		char *p = kt_map_aligned(size, 2 << 20);
		struct unmap_race r = { p, 5 << 20, hole, (i % 8) * 500 };
		struct kt_thread t;
		struct drm_hmmgpu_migrate res;
		int ret;

		kt_fill(p, size, 800 + i);
		kt_start(&t, unmap_after_delay, &r);
		ret = kt_migrate(fd, p, size, TO_DEVICE, &res);
		kt_join(&t);
		ASSERT_TRUE(ret == 0 || ret == -EFAULT);
		if (ret == 0)
			ASSERT_EQ(res.moved + res.already + res.skipped,
				  npages);
		/* what is still mapped kept its data, wherever it is */
		ASSERT_EQ(kt_check_range(p, 0, r.off, 800 + i), -1);
		ASSERT_EQ(kt_check_range(p, r.off + hole, size - r.off - hole,
					 800 + i), -1);
		kt_unmap(p, r.off);
		kt_unmap(p + r.off + hole, size - r.off - hole);
	}
	ASSERT_EQ(kt_wait_mem_free(fd, kt_mem_total(fd), 2000),
		  kt_mem_total(fd));
	close(fd);
}

/* --- device removal ------------------------------------------------------ */

TEST(unbind_returns_device_pages_to_their_processes)
{
	size_t ps = kt_page_size(), npages = 700, size = npages * ps;
	unsigned int ndev = kt_module_param("num_devices");
	struct drm_hmmgpu_get_info info = { 0 };
	struct drm_hmmgpu_stats st;
	int ready[2], go[2];
	int fd, fd1 = -1;
	char *p;
	pid_t pid;

	ASSERT_EQ(pipe(ready), 0);
	ASSERT_EQ(pipe(go), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		/* another process with device pages and an open file */
		int cfd = kt_open_device(0);
		char *q = kt_map(size);

		kt_fill(q, size, 132);
		KT_EXPECT_MIGRATE(cfd, q, size, TO_DEVICE, npages, 0, 0);
		kt_pipe_signal(ready[1]);
		kt_pipe_wait(go[0]);
		KT_EXPECT_DATA(q, size, 132);
		ASSERT_EQ(kt_migrate(cfd, q, size, TO_DEVICE, NULL), -ENODEV);
		_exit(0);
	}

	fd = kt_open_device(0);
	if (ndev > 1)
		fd1 = kt_open_device(1);
	p = kt_map(size);
	kt_fill(p, size, 131);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	if (fd1 >= 0)
		KT_EXPECT_WHERE(fd1, p, npages, AT_OTHER);
	kt_pipe_wait(ready[0]);

	ASSERT_EQ(kt_unbind_device(0), 0);

	/* the file stays, its ioctls report the removal */
	ASSERT_EQ(kt_migrate(fd, p, size, TO_SYSTEM, NULL), -ENODEV);
	ASSERT_EQ(kt_migrate(fd, p, size, TO_DEVICE, NULL), -ENODEV);
	ASSERT_EQ(kt_residency(fd, p, npages, NULL, NULL), -ENODEV);
	ASSERT_EQ(kt_stats(fd, HMMGPU_STATS_FILE, &st), -ENODEV);
	ASSERT_ERRNO(drmIoctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, &info), ENODEV);
	/* every page came back to system RAM with its data */
	if (fd1 >= 0)
		KT_EXPECT_WHERE(fd1, p, npages, AT_SYSTEM);
	KT_EXPECT_DATA(p, size, 131);
	kt_pipe_signal(go[1]);
	ASSERT_EQ(kt_wait_child(pid), 0);
	close(fd);

	ASSERT_EQ(kt_bind_device(0), 0);
	fd = kt_open_device(0);
	ASSERT_EQ(kt_mem_free(fd), kt_mem_total(fd));
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	KT_EXPECT_MIGRATE(fd, p, size, TO_SYSTEM, npages, 0, 0);
	KT_EXPECT_DATA(p, size, 131);
	close(fd);
	if (fd1 >= 0)
		close(fd1);
}

TEST(module_unload_returns_device_pages)
{
	size_t ps = kt_page_size(), npages = 600, size = npages * ps;
	int ready[2], go[2];
	char *p;
	pid_t pid;
	int fd;

	if (!getenv("HMMGPU_KO"))
		SKIP("HMMGPU_KO does not name the module file");
	ASSERT_EQ(pipe(ready), 0);
	ASSERT_EQ(pipe(go), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		/* another process: migrates, closes its file, keeps data */
		int cfd = kt_open_device(0);
		char *q = kt_map(size);

		kt_fill(q, size, 142);
		KT_EXPECT_MIGRATE(cfd, q, size, TO_DEVICE, npages, 0, 0);
		KT_EXPECT_WHERE(cfd, q, npages, AT_DEVICE);
		close(cfd);
		kt_pipe_signal(ready[1]);
		kt_pipe_wait(go[0]);
		KT_EXPECT_DATA(q, size, 142);
		_exit(0);
	}

	fd = kt_open_device(0);
	p = kt_map(size);
	kt_fill(p, size, 141);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	close(fd);
	kt_pipe_wait(ready[0]);

	ASSERT_EQ(kt_unload_hmmgpu(), 0);
	ASSERT_EQ(access("/sys/module/hmmgpu", F_OK), -1);
	KT_EXPECT_DATA(p, size, 141);
	kt_pipe_signal(go[1]);
	ASSERT_EQ(kt_wait_child(pid), 0);

	kt_restore_hmmgpu();
	fd = kt_open_device(0);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), kt_mem_total(fd));
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	KT_EXPECT_MIGRATE(fd, p, size, TO_SYSTEM, npages, 0, 0);
	KT_EXPECT_DATA(p, size, 141);
	close(fd);
}

/* --- khugepaged ----------------------------------------------------------- */

#define KHUGEPAGED "/sys/kernel/mm/transparent_hugepage/khugepaged/"

/* A number from a sysfs file, or -1. */
static long sysfs_long(const char *path)
{
	FILE *f = fopen(path, "re");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/*
 * khugepaged collapses a 2 MiB region with a few device pages in it (up
 * to max_ptes_swap non-present entries) by "swapping them in": it used to
 * pull them back to system memory unasked, a migration the program never
 * made (test_samples and test_parity saw pages migrated twice). Made to
 * scan at once, it now leaves them on the device.
 */
TEST_TIMEOUT(khugepaged_leaves_device_pages_on_the_device, 120)
{
	size_t ps = kt_page_size(), size = 2UL << 20, dev = 64 * 1024;
	long sleep0, scan0, alloc0, full0;
	char *p = kt_map_aligned(size, size);
	int fd = kt_open_device(0);
	char buf[32];

	if (access(KHUGEPAGED "full_scans", R_OK))
		SKIP("no khugepaged (CONFIG_TRANSPARENT_HUGEPAGE)");
	sleep0 = sysfs_long(KHUGEPAGED "scan_sleep_millisecs");
	alloc0 = sysfs_long(KHUGEPAGED "alloc_sleep_millisecs");
	scan0 = sysfs_long(KHUGEPAGED "pages_to_scan");
	ASSERT_GE(sysfs_long(KHUGEPAGED "max_ptes_swap"), (long)(dev / ps));

	/* 4 KiB pages, 16 of them on the device, then eligible */
	ASSERT_EQ(madvise(p, size, MADV_NOHUGEPAGE), 0);
	kt_fill(p, size, 1501);
	KT_EXPECT_MIGRATE(fd, p, dev, TO_DEVICE, dev / ps, 0, 0);
	ASSERT_EQ(madvise(p, size, MADV_HUGEPAGE), 0);

	ASSERT_EQ(kt_sysfs_write(KHUGEPAGED "scan_sleep_millisecs", "10"), 0);
	ASSERT_EQ(kt_sysfs_write(KHUGEPAGED "alloc_sleep_millisecs", "10"), 0);
	ASSERT_EQ(kt_sysfs_write(KHUGEPAGED "pages_to_scan", "4096"), 0);
	/* two full scans: the region was looked at, whatever the order */
	full0 = sysfs_long(KHUGEPAGED "full_scans");
	for (int i = 0; i < 3000 &&
	     sysfs_long(KHUGEPAGED "full_scans") < full0 + 2; i++)
		usleep(10000);
	TH_LOG("khugepaged: %ld full scans",
	       sysfs_long(KHUGEPAGED "full_scans") - full0);
	snprintf(buf, sizeof(buf), "%ld", sleep0);
	kt_sysfs_write(KHUGEPAGED "scan_sleep_millisecs", buf);
	snprintf(buf, sizeof(buf), "%ld", alloc0);
	kt_sysfs_write(KHUGEPAGED "alloc_sleep_millisecs", buf);
	snprintf(buf, sizeof(buf), "%ld", scan0);
	kt_sysfs_write(KHUGEPAGED "pages_to_scan", buf);
	ASSERT_GE(sysfs_long(KHUGEPAGED "full_scans"), full0 + 2);

	KT_EXPECT_WHERE(fd, p, dev / ps, AT_DEVICE);
	KT_EXPECT_WHERE(fd, p + dev, (size - dev) / ps, AT_SYSTEM);
	KT_EXPECT_DATA(p, size, 1501);
	kt_unmap(p, size);
	close(fd);
}

TEST_MAIN()
