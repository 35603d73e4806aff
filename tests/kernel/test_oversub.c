// SPDX-License-Identifier: MIT
/*
 * test_oversub.c - oversubscription: more data migrated to a device than
 * it has memory.  hmmgpu is reloaded with a small device (mem_mib=16) and
 * its original parameters come back after each test.  Least recently
 * migrated pages are evicted to system RAM; data stays exact, the device
 * never holds more than its memory, and the eviction counters say so.
 *
 * Runs inside the test VM with hmmgpu.ko loaded (tools/vm/hmmvm test).
 */
#define _GNU_SOURCE
#include "kt_common.h"

#include <sys/mman.h>
#include <unistd.h>

#define MEM_MIB 16
#define CHUNK (4UL << 20)

#define TO_DEVICE HMMGPU_MIGRATE_TO_DEVICE
#define TO_SYSTEM HMMGPU_MIGRATE_TO_SYSTEM
#define AT_SYSTEM HMMGPU_RESIDENCY_SYSTEM
#define AT_DEVICE HMMGPU_RESIDENCY_THIS_DEVICE

static int small_device(void)
{
	int fd;

	kt_reload_hmmgpu("mem_mib=16"); /* MEM_MIB */
	fd = kt_open_device(0);
	ASSERT_EQ(kt_mem_total(fd), (unsigned long long)MEM_MIB << 20);
	ASSERT_EQ(kt_mem_free(fd), kt_mem_total(fd));
	return fd;
}

/*
 * The device holds no more than its memory, GET_INFO agrees with
 * RESIDENCY, and no page of the buffer got lost.  Returns the number of
 * the buffer's pages on the device.
 */
static size_t expect_within_capacity(int fd, const char *p, size_t npages)
{
	size_t ps = kt_page_size();
	unsigned long long total = kt_mem_total(fd);
	size_t on = kt_residency_count(fd, p, npages, AT_DEVICE);

	ASSERT_LE(on * ps, total);
	ASSERT_EQ(total - kt_mem_free(fd), on * ps);
	ASSERT_EQ(kt_residency_count(fd, p, npages, AT_SYSTEM), npages - on);
	return on;
}

static uint64_t evicted_pages(const struct drm_hmmgpu_stats *st)
{
	return st->pages[HMMGPU_DIR_TO_SYSTEM][HMMGPU_CAUSE_EVICTION];
}

TEST(oversubscribed_twice_in_chunks_keeps_data)
{
	int fd = small_device();
	size_t ps = kt_page_size(), size = 2 * kt_mem_total(fd);
	size_t npages = size / ps, cpages = CHUNK / ps, nchunks = size / CHUNK;
	struct drm_hmmgpu_stats st0, st1;
	char *p = kt_map(size);
	uint64_t moved = 0;
	size_t on = 0;

	kt_fill(p, size, 201);
	kt_get_stats(fd, HMMGPU_STATS_DEVICE, &st0);
	for (size_t c = 0; c < nchunks; c++) {
		KT_EXPECT_MIGRATE(fd, p + c * CHUNK, CHUNK, TO_DEVICE, cpages,
				  0, 0);
		moved += cpages;
		/* what was just migrated is all there */
		KT_EXPECT_WHERE(fd, p + c * CHUNK, cpages, AT_DEVICE);
		on = expect_within_capacity(fd, p, npages);
	}
	kt_get_stats(fd, HMMGPU_STATS_DEVICE, &st1);
	TH_LOG("%zu of %zu pages on the device, %llu evicted in %llu passes",
	       on, npages,
	       (unsigned long long)(evicted_pages(&st1) - evicted_pages(&st0)),
	       (unsigned long long)(st1.evictions - st0.evictions));

	ASSERT_GT(st1.evictions - st0.evictions, 0);
	ASSERT_GT(evicted_pages(&st1) - evicted_pages(&st0), 0);
	/* every page that moved and is not on the device was evicted */
	ASSERT_EQ(evicted_pages(&st1) - evicted_pages(&st0), moved - on);
	ASSERT_EQ(st1.bytes[HMMGPU_DIR_TO_SYSTEM][HMMGPU_CAUSE_EVICTION] -
		  st0.bytes[HMMGPU_DIR_TO_SYSTEM][HMMGPU_CAUSE_EVICTION],
		  (moved - on) * ps);
	ASSERT_EQ(st1.pages[HMMGPU_DIR_TO_DEVICE][HMMGPU_CAUSE_EXPLICIT] -
		  st0.pages[HMMGPU_DIR_TO_DEVICE][HMMGPU_CAUSE_EXPLICIT],
		  moved);
	/* least recently used first: the first chunk went */
	KT_EXPECT_WHERE(fd, p, cpages, AT_SYSTEM);

	/* CPU faults bring the rest back; everything exact */
	KT_EXPECT_DATA(p, size, 201);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), kt_mem_total(fd));

	/* the evicted pages can come back to the device */
	KT_EXPECT_MIGRATE(fd, p, CHUNK, TO_DEVICE, cpages, 0, 0);
	KT_EXPECT_MIGRATE(fd, p, CHUNK, TO_SYSTEM, cpages, 0, 0);
	KT_EXPECT_DATA(p, size, 201);

	kt_unmap(p, size);
	close(fd);
	kt_restore_hmmgpu();
}

TEST(oversubscribed_random_chunks_and_writes_keep_data)
{
	int fd = small_device();
	size_t ps = kt_page_size(), size = 2 * kt_mem_total(fd);
	size_t npages = size / ps, cpages = CHUNK / ps, nchunks = size / CHUNK;
	struct drm_hmmgpu_stats st0, st1;
	char *p = kt_map(size);
	char *shadow = malloc(size);
	uint64_t rng = 12345;

	ASSERT_TRUE(shadow != NULL);
	kt_fill(p, size, 211);
	memcpy(shadow, p, size);
	kt_get_stats(fd, HMMGPU_STATS_DEVICE, &st0);

	for (int step = 0; step < 40; step++) {
		struct drm_hmmgpu_migrate m;
		size_t c, off;
		unsigned int target;

		rng = kt_pattern(rng, step);
		c = rng % nchunks;
		target = (rng >> 8) % 5 ? TO_DEVICE : TO_SYSTEM;
		ASSERT_EQ(kt_migrate(fd, p + c * CHUNK, CHUNK, target, &m), 0);
		ASSERT_EQ(m.moved + m.already, cpages);
		ASSERT_EQ(m.skipped, 0);
		KT_EXPECT_WHERE(fd, p + c * CHUNK, cpages,
				target == TO_DEVICE ? AT_DEVICE : AT_SYSTEM);
		expect_within_capacity(fd, p, npages);

		/* a CPU write somewhere: faults back whatever it hits */
		off = (rng >> 16) % size;
		p[off] = (char)(rng >> 40);
		shadow[off] = (char)(rng >> 40);
	}
	kt_get_stats(fd, HMMGPU_STATS_DEVICE, &st1);
	ASSERT_GT(st1.evictions - st0.evictions, 0);
	ASSERT_GT(evicted_pages(&st1) - evicted_pages(&st0), 0);

	if (memcmp(p, shadow, size) != 0) {
		for (size_t i = 0; i < size; i++) {
			if (p[i] == shadow[i])
				continue;
			TH_LOG("byte %zu (page %zu): 0x%02x, expected 0x%02x",
			       i, i / ps, (uint8_t)p[i], (uint8_t)shadow[i]);
			ASSERT_EQ(p[i], shadow[i]);
		}
	}
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), kt_mem_total(fd));
	free(shadow);
	kt_unmap(p, size);
	close(fd);
	kt_restore_hmmgpu();
}

/* small_device() with @workers threads per MIGRATE (migrate_workers). */
static int small_device_with_workers(unsigned int workers)
{
	char params[64];

	snprintf(params, sizeof(params), "mem_mib=%d migrate_workers=%u",
		 MEM_MIB, workers);
	kt_reload_hmmgpu(params);
	return kt_open_device(0);
}

/*
 * A migration never evicts for itself (DOC: Device memory): a range twice
 * the device fills the device and stops, the rest skipped, nothing of it
 * evicted. Before epochs, its last part pushed out its first part.
 */
static void one_call_twice_the_device(unsigned int workers)
{
	int fd = small_device_with_workers(workers);

	size_t ps = kt_page_size(), size = 2 * kt_mem_total(fd);
	size_t npages = size / ps, cap = kt_mem_total(fd) / ps;
	struct drm_hmmgpu_migrate m;
	struct drm_hmmgpu_stats st;
	char *p = kt_map(size);
	size_t on;

	ASSERT_EQ(kt_mem_free(fd), kt_mem_total(fd));
	kt_fill(p, size, 221);
	ASSERT_EQ(kt_migrate(fd, p, size, TO_DEVICE, &m), 0);
	TH_LOG("%u workers: moved %llu, already %llu, skipped %llu", workers,
	       (unsigned long long)m.moved, (unsigned long long)m.already,
	       (unsigned long long)m.skipped);
	ASSERT_EQ(m.already, 0);
	ASSERT_EQ(m.moved + m.skipped, npages);
	/* the device is full of it, less what a 2 MiB unit could not fill */
	ASSERT_LE(m.moved, cap);
	ASSERT_GE(m.moved, cap - 512);
	kt_get_stats(fd, HMMGPU_STATS_FILE, &st);
	ASSERT_EQ(evicted_pages(&st), 0);
	ASSERT_EQ(st.evictions, 0);
	on = expect_within_capacity(fd, p, npages);
	ASSERT_EQ(on, m.moved);
	/* one unit goes in address order: the first part is what moved */
	if (workers == 1)
		KT_EXPECT_WHERE(fd, p, m.moved, AT_DEVICE);
	KT_EXPECT_DATA(p, size, 221);
	ASSERT_EQ(kt_mem_free(fd), kt_mem_total(fd));
	kt_unmap(p, size);
	close(fd);
	kt_restore_hmmgpu();
}

TEST(oversubscribed_by_one_migrate_call_keeps_its_first_part)
{
	one_call_twice_the_device(1);
}

TEST(oversubscribed_by_one_call_of_four_units_evicts_none_of_its_own)
{
	one_call_twice_the_device(4);
}

/*
 * Nor does it evict the part of its range that is on the device already
 * and that it has not reached yet: X's second half went to the device
 * first, so it is the least recently used data when a migration of all
 * of X needs room for the first half. Before block_holds_range(), one
 * unit evicted X's second half for X's first, moved it back in, and
 * evicted Y only then: twice the evictions, every page of X moved.
 */
static void own_later_part_stays(unsigned int workers)
{
	int fd = small_device_with_workers(workers);

	size_t ps = kt_page_size(), total = kt_mem_total(fd);
	size_t xsize = total / 2, ysize = total - xsize / 2;
	size_t xpages = xsize / ps, ypages = ysize / ps, half = xpages / 2;
	char *x = kt_map_aligned(xsize, 2UL << 20);
	char *y = kt_map_aligned(ysize, 2UL << 20);
	struct drm_hmmgpu_stats st0, st1;

	kt_fill(x, xsize, 246);
	kt_fill(y, ysize, 247);
	KT_EXPECT_MIGRATE(fd, x + xsize / 2, xsize / 2, TO_DEVICE, half, 0, 0);
	KT_EXPECT_MIGRATE(fd, y, ysize, TO_DEVICE, ypages, 0, 0);
	ASSERT_EQ(kt_mem_free(fd), 0);

	kt_get_stats(fd, HMMGPU_STATS_FILE, &st0);
	KT_EXPECT_MIGRATE(fd, x, xsize, TO_DEVICE, half, half, 0);
	kt_get_stats(fd, HMMGPU_STATS_FILE, &st1);
	TH_LOG("%u workers: %llu pages evicted", workers,
	       (unsigned long long)(evicted_pages(&st1) - evicted_pages(&st0)));
	ASSERT_EQ(evicted_pages(&st1) - evicted_pages(&st0), half);
	KT_EXPECT_WHERE(fd, x, xpages, AT_DEVICE);
	ASSERT_EQ(kt_residency_count(fd, y, ypages, AT_DEVICE), ypages - half);
	ASSERT_EQ(kt_residency_count(fd, y, ypages, AT_SYSTEM), half);
	ASSERT_EQ(kt_mem_free(fd), 0);
	KT_EXPECT_DATA(x, xsize, 246);
	KT_EXPECT_DATA(y, ysize, 247);
	kt_unmap(x, xsize);
	kt_unmap(y, ysize);
	ASSERT_EQ(kt_wait_mem_free(fd, total, 2000), total);
	close(fd);
	kt_restore_hmmgpu();
}

TEST(migration_keeps_its_own_later_part_on_the_device)
{
	own_later_part_stays(1);
}

TEST(migration_of_two_units_keeps_its_own_later_part_on_the_device)
{
	own_later_part_stays(2);
}

TEST(eviction_of_another_process_pages_keeps_their_data)
{
	int fd = small_device();
	size_t ps = kt_page_size(), size = 12UL << 20, npages = size / ps;
	int ready[2], go[2];
	char *p;
	pid_t pid;

	ASSERT_EQ(pipe(ready), 0);
	ASSERT_EQ(pipe(go), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		char *q = kt_map(size);

		close(fd);
		fd = kt_open_device(0);
		kt_fill(q, size, 232);
		KT_EXPECT_MIGRATE(fd, q, size, TO_DEVICE, npages, 0, 0);
		KT_EXPECT_WHERE(fd, q, npages, AT_DEVICE);
		kt_pipe_signal(ready[1]);
		kt_pipe_wait(go[0]);
		/* the parent's migration pushed some of ours out */
		ASSERT_LE(kt_residency_count(fd, q, npages, AT_DEVICE),
			  kt_mem_total(fd) / ps - npages);
		KT_EXPECT_DATA(q, size, 232);
		KT_EXPECT_WHERE(fd, q, npages, AT_SYSTEM);
		_exit(0);
	}

	kt_pipe_wait(ready[0]);
	p = kt_map(size);
	kt_fill(p, size, 231);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	kt_pipe_signal(go[1]);
	ASSERT_EQ(kt_wait_child(pid), 0);

	KT_EXPECT_MIGRATE(fd, p, size, TO_SYSTEM, npages, 0, 0);
	KT_EXPECT_DATA(p, size, 231);
	ASSERT_EQ(kt_wait_mem_free(fd, kt_mem_total(fd), 2000),
		  kt_mem_total(fd));
	close(fd);
	kt_restore_hmmgpu();
}

/*
 * HMMGPU_ADVICE_PREFERRED: data that belongs on the device is evicted
 * only for other preferred data. B does not push preferred A out (it
 * fills what is free and skips the rest); once A's advice is gone, the
 * rest of B evicts A's least recently used blocks as usual.
 */
TEST(preferred_data_is_not_evicted_for_other_data)
{
	int fd = small_device();
	size_t ps = kt_page_size(), asize = 8UL << 20, bsize = 12UL << 20;
	size_t apages = asize / ps, bpages = bsize / ps;
	size_t free_pages = (kt_mem_total(fd) - asize) / ps;
	struct drm_hmmgpu_stats st0, st1;
	struct drm_hmmgpu_migrate m;
	char *a = kt_map(asize), *b = kt_map(bsize);
	uint32_t handle;
	uint64_t offset;

	kt_fill(a, asize, 241);
	kt_fill(b, bsize, 242);
	ASSERT_EQ(kt_view_register(fd, a, asize, &handle, &offset), 0);
	ASSERT_EQ(kt_view_advise(fd, handle, HMMGPU_ADVICE_PREFERRED, 1), 0);
	KT_EXPECT_MIGRATE(fd, a, asize, TO_DEVICE, apages, 0, 0);

	ASSERT_EQ(kt_migrate(fd, b, bsize, TO_DEVICE, &m), 0);
	TH_LOG("B with A preferred: moved %llu, skipped %llu",
	       (unsigned long long)m.moved, (unsigned long long)m.skipped);
	ASSERT_EQ(m.moved, free_pages);
	ASSERT_EQ(m.skipped, bpages - free_pages);
	KT_EXPECT_WHERE(fd, a, apages, AT_DEVICE);
	/* which part of B: its blocks' order, with several units */
	ASSERT_EQ(kt_residency_count(fd, b, bpages, AT_DEVICE), free_pages);

	/* without the advice, A is just the least recently used data */
	ASSERT_EQ(kt_view_advise(fd, handle, HMMGPU_ADVICE_PREFERRED, 0), 0);
	kt_get_stats(fd, HMMGPU_STATS_FILE, &st0);
	KT_EXPECT_MIGRATE(fd, b, bsize, TO_DEVICE, bpages - free_pages,
			  free_pages, 0);
	kt_get_stats(fd, HMMGPU_STATS_FILE, &st1);
	TH_LOG("B without: %llu pages evicted in %llu passes, %llu free",
	       (unsigned long long)(evicted_pages(&st1) - evicted_pages(&st0)),
	       (unsigned long long)(st1.evictions - st0.evictions),
	       (unsigned long long)kt_mem_free(fd));
	/*
	 * Exactly the room B needed: two units that evicted at once each
	 * freed a block for themselves, although the first block was room
	 * enough for both (3 of 6 runs on 6.1, before evictions took the
	 * room they made under the eviction lock).
	 */
	ASSERT_EQ(evicted_pages(&st1) - evicted_pages(&st0),
		  bpages - free_pages);
	KT_EXPECT_WHERE(fd, b, bpages, AT_DEVICE);
	ASSERT_EQ(kt_residency_count(fd, a, apages, AT_DEVICE),
		  apages - (bpages - free_pages));
	ASSERT_EQ(kt_mem_free(fd), 0);
	KT_EXPECT_DATA(a, asize, 241);
	KT_EXPECT_DATA(b, bsize, 242);
	ASSERT_EQ(kt_view_unregister(fd, handle), 0);
	kt_unmap(a, asize);
	kt_unmap(b, bsize);
	ASSERT_EQ(kt_wait_mem_free(fd, kt_mem_total(fd), 2000),
		  kt_mem_total(fd));
	close(fd);
	kt_restore_hmmgpu();
}

/* Preferred data may still push out other preferred data, oldest first. */
TEST(preferred_data_evicts_other_preferred_data_last)
{
	int fd = small_device();
	size_t ps = kt_page_size(), asize = 8UL << 20, csize = 4UL << 20;
	size_t apages = asize / ps, cpages = csize / ps;
	char *a = kt_map(asize), *b = kt_map(asize), *c = kt_map(csize);
	uint32_t ha, hc;
	uint64_t offset;

	kt_fill(a, asize, 243);
	kt_fill(b, asize, 244);
	kt_fill(c, csize, 245);
	ASSERT_EQ(kt_view_register(fd, a, asize, &ha, &offset), 0);
	ASSERT_EQ(kt_view_register(fd, c, csize, &hc, &offset), 0);
	ASSERT_EQ(kt_view_advise(fd, ha, HMMGPU_ADVICE_PREFERRED, 1), 0);
	ASSERT_EQ(kt_view_advise(fd, hc, HMMGPU_ADVICE_PREFERRED, 1), 0);
	/* A (preferred) first, then B (not): the device is full */
	KT_EXPECT_MIGRATE(fd, a, asize, TO_DEVICE, apages, 0, 0);
	KT_EXPECT_MIGRATE(fd, b, asize, TO_DEVICE, apages, 0, 0);
	/* C (preferred) takes B's blocks although A's are older */
	KT_EXPECT_MIGRATE(fd, c, csize, TO_DEVICE, cpages, 0, 0);
	KT_EXPECT_WHERE(fd, a, apages, AT_DEVICE);
	KT_EXPECT_WHERE(fd, c, cpages, AT_DEVICE);
	ASSERT_EQ(kt_residency_count(fd, b, apages, AT_DEVICE),
		  apages - cpages);
	KT_EXPECT_DATA(a, asize, 243);
	KT_EXPECT_DATA(b, asize, 244);
	KT_EXPECT_DATA(c, csize, 245);
	ASSERT_EQ(kt_view_unregister(fd, ha), 0);
	ASSERT_EQ(kt_view_unregister(fd, hc), 0);
	kt_unmap(a, asize);
	kt_unmap(b, asize);
	kt_unmap(c, csize);
	ASSERT_EQ(kt_wait_mem_free(fd, kt_mem_total(fd), 2000),
		  kt_mem_total(fd));
	close(fd);
	kt_restore_hmmgpu();
}

/*
 * A CPU fault on preferred data brings back the page the CPU needs, not
 * the fault_kib block around it (which it still does for other data).
 */
TEST(cpu_fault_on_preferred_data_brings_back_one_page)
{
	int fd = kt_open_device(0);
	size_t ps = kt_page_size(), size = 1UL << 20, npages = size / ps;
	size_t block = kt_module_param("fault_kib") * 1024 / ps;
	char *a = kt_map_aligned(size, size), *b = kt_map_aligned(size, size);
	volatile char *va = a, *vb = b;
	uint32_t handle;
	uint64_t offset;

	ASSERT_GT(block, 1);
	kt_fill(a, size, 246);
	kt_fill(b, size, 247);
	ASSERT_EQ(kt_view_register(fd, a, size, &handle, &offset), 0);
	ASSERT_EQ(kt_view_advise(fd, handle, HMMGPU_ADVICE_PREFERRED, 1), 0);
	KT_EXPECT_MIGRATE(fd, a, size, TO_DEVICE, npages, 0, 0);
	KT_EXPECT_MIGRATE(fd, b, size, TO_DEVICE, npages, 0, 0);
	(void)va[5 * ps + 3];
	(void)vb[5 * ps + 3];
	ASSERT_EQ(kt_residency_count(fd, a, npages, AT_SYSTEM), 1);
	ASSERT_EQ(kt_residency_count(fd, b, npages, AT_SYSTEM), block);
	KT_EXPECT_DATA(a, size, 246);
	KT_EXPECT_DATA(b, size, 247);
	ASSERT_EQ(kt_view_unregister(fd, handle), 0);
	kt_unmap(a, size);
	kt_unmap(b, size);
	close(fd);
}

TEST_MAIN()
