// SPDX-License-Identifier: MIT
/*
 * test_rt_memory.c - libhmm's managed memory on real hmmgpu devices:
 * hmm_malloc / hmm_register, hmm_prefetch both ways and device to device,
 * hmm_residency, device access through hmm_devptr() views, advice
 * (remote access, preferred location, fault granularity) and attributes,
 * statistics, fork, freeing device-resident memory, and many threads at
 * once.
 *
 * "Device execution" is a thread of the test process that touches memory
 * only through device pointers (dev_run()).  Every test checks the data
 * (a pattern per offset and seed) and the location of every page, not
 * only return codes.
 *
 * Runs inside the test VM with hmmgpu.ko loaded with two devices
 * (tools/vm/hmmvm test); tests that need two skip with one.
 */
#define _GNU_SOURCE
#include "kt_common.h"

#include <hmm/hmm.h>

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KIB (1UL << 10)
#define MIB (1UL << 20)
#define REGION (2 * MIB)

/* Seconds a test of device work may take (TCG, debug kernel). */
#define RT_TIMEOUT 90

#define TO_DEV HMM_DIR_TO_DEVICE
#define TO_HOST HMM_DIR_TO_HOST

/* Skips unless libhmm sees at least @n devices. */
static void need_devices(int n)
{
	int have = hmm_device_count();

	if (have < 0)
		HMMT_FAIL("hmm_device_count: %s", hmm_strerror(have));
	if (have < n) {
		(void)kt_module_param("num_devices"); /* skips when unloaded */
		SKIP("%d hmmgpu device(s), %d needed", have, n);
	}
}

static uint64_t mem_free(int dev)
{
	struct hmm_device_info info;

	ASSERT_EQ(hmm_device_get_info(dev, &info), 0);
	return info.mem_free;
}

static uint64_t mem_total(int dev)
{
	struct hmm_device_info info;

	ASSERT_EQ(hmm_device_get_info(dev, &info), 0);
	return info.mem_total;
}

/* Polls mem_free of @dev for up to @ms until it is @want; the last value. */
static uint64_t wait_mem_free(int dev, uint64_t want, unsigned int ms)
{
	uint64_t got = mem_free(dev);

	for (unsigned int t = 0; got != want && t < ms; t += 10) {
		usleep(10000);
		got = mem_free(dev);
	}
	return got;
}

static void get_stats(int dev, struct hmm_stats *st)
{
	ASSERT_EQ(hmm_get_stats(dev, st), 0);
}

static uint64_t moved(const struct hmm_stats *a, const struct hmm_stats *b,
		      int dir, int cause)
{
	return b->pages[dir][cause] - a->pages[dir][cause];
}

/*
 * The index of the first page of [p, p + npages pages) that hmm_residency()
 * does not put at @want, or -1; also cross-checks the library's answer
 * with the driver's own, through a file of the test's own.
 */
static long where_mismatch(const void *p, size_t npages, int want)
{
	int8_t *loc = malloc(npages);
	long bad = -1;
	int ret;

	ASSERT_TRUE(loc);
	ret = hmm_residency(p, npages * kt_page_size(), loc, npages);
	if (ret != (int)npages)
		HMMT_FAIL("hmm_residency of %zu pages at %p: %d (%s)", npages,
			  p, ret, hmm_strerror(ret));
	for (size_t i = 0; i < npages; i++) {
		if (loc[i] != want) {
			TH_LOG("page %zu of %p is at %d, not %d", i, p, loc[i],
			       want);
			bad = (long)i;
			break;
		}
	}
	free(loc);
	return bad;
}

#define EXPECT_WHERE(p, npages, want) \
	ASSERT_EQ(where_mismatch(p, npages, want), -1)

/* Pages of [p, p + npages pages) at @where. */
static size_t count_where(const void *p, size_t npages, int where)
{
	int8_t *loc = malloc(npages);
	size_t n = 0;

	ASSERT_TRUE(loc);
	ASSERT_EQ(hmm_residency(p, npages * kt_page_size(), loc, npages),
		  (int)npages);
	for (size_t i = 0; i < npages; i++)
		n += loc[i] == where;
	free(loc);
	return n;
}

/* --- device execution ----------------------------------------------------- */

/* The device: kt_dev_*() run jobs on the test's device thread. */
#define dev_check kt_dev_check
#define dev_check_zero kt_dev_check_zero
#define dev_fill kt_dev_fill

/* One device access: the word at @base + @off (a device pointer). */
static uint64_t dev_read_word(char *base, size_t off)
{
	uint64_t val = 0;

	ASSERT_EQ(kt_dev_probe(base, off, false, &val), 0);
	return val;
}

#define EXPECT_DEV_DATA(base, off, len, seed) \
	ASSERT_EQ(dev_check(base, off, len, seed), -1)
#define EXPECT_CPU_DATA(base, off, len, seed) \
	ASSERT_EQ(kt_check_range(base, off, len, seed), -1)

static char *devptr(const void *p, int d)
{
	char *x = hmm_devptr(p, d);

	if (!x)
		HMMT_FAIL("hmm_devptr(%p, %d): %s", p, d, strerror(errno));
	return x;
}

/* --- prefetch ------------------------------------------------------------- */

/*
 * To device 0 and back by CPU faults: every page on the device, device
 * memory used by exactly the pages, the counters of both directions, and
 * the data back on the CPU.
 */
TEST_TIMEOUT(prefetch_to_device_and_cpu_faults_back, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = 6 * MIB + 3 * ps + 100;
	size_t npages = (size + ps - 1) / ps;
	struct hmm_stats st0, st1, st2;
	uint64_t free0;
	char *p;
	int where;

	need_devices(1);
	p = hmm_malloc(size);
	ASSERT_TRUE(p);
	kt_fill(p, size, 11);
	EXPECT_WHERE(p, npages, HMM_CPU);
	free0 = mem_free(0);
	get_stats(0, &st0);

	ASSERT_EQ(hmm_prefetch(p, size, 0), 0);
	get_stats(0, &st1);
	EXPECT_WHERE(p, npages, 0);
	ASSERT_EQ(mem_free(0), free0 - npages * ps);
	ASSERT_EQ(moved(&st0, &st1, TO_DEV, HMM_CAUSE_PREFETCH), npages);
	ASSERT_EQ(st1.bytes[TO_DEV][HMM_CAUSE_PREFETCH] -
		  st0.bytes[TO_DEV][HMM_CAUSE_PREFETCH], npages * ps);
	ASSERT_EQ(st1.prefetch_calls - st0.prefetch_calls, 1);
	ASSERT_EQ(st1.prefetch_bytes - st0.prefetch_bytes, size);
	ASSERT_GT(st1.prefetch_ns, st0.prefetch_ns);
	ASSERT_EQ(hmm_range_get_attr(p + 5, 1, HMM_ATTR_LAST_PREFETCH_LOCATION,
				     &where, sizeof(where)), 0);
	ASSERT_EQ(where, 0);

	/* the CPU reads: faults bring everything back, data exact */
	KT_EXPECT_DATA(p, size, 11);
	get_stats(0, &st2);
	EXPECT_WHERE(p, npages, HMM_CPU);
	ASSERT_EQ(mem_free(0), free0);
	ASSERT_GT(st2.cpu_faults, st1.cpu_faults);
	ASSERT_EQ(moved(&st1, &st2, TO_HOST, HMM_CAUSE_CPU_FAULT), npages);
	ASSERT_EQ(moved(&st1, &st2, TO_DEV, HMM_CAUSE_PREFETCH), 0);
	ASSERT_EQ(hmm_free(p), 0);
}

TEST_TIMEOUT(prefetch_to_device_and_back_to_cpu, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = 3 * MIB, npages = size / ps;
	struct hmm_stats st0, st1, c0, c1;
	uint64_t free0;
	char *p;
	int where;

	need_devices(1);
	p = hmm_malloc(size);
	ASSERT_TRUE(p);
	kt_fill(p, size, 12);
	free0 = mem_free(0);
	ASSERT_EQ(hmm_prefetch(p, size, 0), 0);
	EXPECT_WHERE(p, npages, 0);
	/* again: nothing moves, nothing breaks */
	ASSERT_EQ(hmm_prefetch(p, size, 0), 0);
	EXPECT_WHERE(p, npages, 0);

	get_stats(0, &st0);
	get_stats(HMM_CPU, &c0);
	ASSERT_EQ(hmm_prefetch(p, size, HMM_CPU), 0);
	get_stats(0, &st1);
	get_stats(HMM_CPU, &c1);
	EXPECT_WHERE(p, npages, HMM_CPU);
	ASSERT_EQ(mem_free(0), free0);
	ASSERT_EQ(moved(&st0, &st1, TO_HOST, HMM_CAUSE_PREFETCH), npages);
	ASSERT_EQ(st1.cpu_faults, st0.cpu_faults);
	/* the runtime counts prefetches per destination */
	ASSERT_EQ(c1.prefetch_calls - c0.prefetch_calls, 1);
	ASSERT_EQ(c1.prefetch_bytes - c0.prefetch_bytes, size);
	ASSERT_EQ(st1.prefetch_calls, st0.prefetch_calls);
	ASSERT_EQ(hmm_range_get_attr(p, size, HMM_ATTR_LAST_PREFETCH_LOCATION,
				     &where, sizeof(where)), 0);
	ASSERT_EQ(where, HMM_CPU);
	KT_EXPECT_DATA(p, size, 12);
	get_stats(0, &st0);
	ASSERT_EQ(st0.cpu_faults, st1.cpu_faults);
	ASSERT_EQ(hmm_free(p), 0);
}

/* Part of an allocation, unaligned: exactly its pages move. */
TEST_TIMEOUT(prefetch_part_of_an_allocation, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = MIB, npages = size / ps;
	size_t first = 5, n = 17;
	char *p;

	need_devices(1);
	p = hmm_malloc(size);
	ASSERT_TRUE(p);
	kt_fill(p, size, 13);
	/* from the last byte of page 4 to the first byte of page 22 */
	ASSERT_EQ(hmm_prefetch(p + first * ps - 1, n * ps + 2, 0), 0);
	EXPECT_WHERE(p, first - 1, HMM_CPU);
	EXPECT_WHERE(p + (first - 1) * ps, n + 2, 0);
	EXPECT_WHERE(p + (first + n + 1) * ps, npages - first - n - 1,
		     HMM_CPU);
	KT_EXPECT_DATA(p, size, 13);
	EXPECT_WHERE(p, npages, HMM_CPU);
	ASSERT_EQ(hmm_free(p), 0);
}

/* Never-touched memory prefetched to the device reads as zeros. */
TEST_TIMEOUT(prefetch_of_untouched_memory_is_zeros, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = 2 * MIB, npages = size / ps;
	char *p;

	need_devices(1);
	p = hmm_malloc(size);
	ASSERT_TRUE(p);
	ASSERT_EQ(count_where(p, npages, HMM_LOC_NONE) +
		  count_where(p, npages, HMM_CPU), npages);
	ASSERT_EQ(hmm_prefetch(p, size, 0), 0);
	EXPECT_WHERE(p, npages, 0);
	ASSERT_EQ(dev_check_zero(devptr(p, 0), 0, size), -1);
	EXPECT_WHERE(p, npages, 0);
	ASSERT_EQ(kt_check_zero(p, size), -1);
	EXPECT_WHERE(p, npages, HMM_CPU);
	ASSERT_EQ(hmm_free(p), 0);
}

/* One prefetch across adjacent registered ranges. */
TEST_TIMEOUT(prefetch_spanning_allocations, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), npages = 96, size = npages * ps;
	char *m = kt_map(size);
	int where;

	need_devices(1);
	kt_fill(m, size, 14);
	ASSERT_EQ(hmm_register(m, 32 * ps), 0);
	ASSERT_EQ(hmm_register(m + 32 * ps, 32 * ps), 0);
	ASSERT_EQ(hmm_register(m + 64 * ps, 32 * ps), 0);
	ASSERT_EQ(hmm_prefetch(m + 16 * ps, 64 * ps, 0), 0);
	EXPECT_WHERE(m, 16, HMM_CPU);
	EXPECT_WHERE(m + 16 * ps, 64, 0);
	EXPECT_WHERE(m + 80 * ps, 16, HMM_CPU);
	/* each range touched records it */
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(hmm_range_get_attr(m + i * 32 * ps, 1,
					     HMM_ATTR_LAST_PREFETCH_LOCATION,
					     &where, sizeof(where)), 0);
		ASSERT_EQ(where, 0);
	}
	/* with a hole, nothing moves */
	ASSERT_EQ(hmm_unregister(m + 40 * ps), 0);
	ASSERT_EQ(hmm_prefetch(m, size, HMM_CPU), -EINVAL);
	/* the unregistered range came back to the CPU on its own */
	EXPECT_WHERE(m + 32 * ps, 32, HMM_CPU);
	EXPECT_WHERE(m + 16 * ps, 16, 0);
	EXPECT_WHERE(m + 64 * ps, 16, 0);
	KT_EXPECT_DATA(m, size, 14);
	ASSERT_EQ(hmm_unregister(m), 0);
	ASSERT_EQ(hmm_unregister(m + 64 * ps), 0);
	kt_unmap(m, size);
}

/* Device 0 to device 1, and residency of ranges split between them. */
TEST_TIMEOUT(prefetch_to_the_other_device, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = 2 * MIB, npages = size / ps;
	struct hmm_stats a0, a1;
	uint64_t free0, free1;
	int8_t *loc;
	char *p;

	need_devices(2);
	loc = malloc(npages);
	p = hmm_malloc(size);
	ASSERT_TRUE(p && loc);
	kt_fill(p, size, 15);
	free0 = mem_free(0);
	free1 = mem_free(1);

	ASSERT_EQ(hmm_prefetch(p, size, 0), 0);
	EXPECT_WHERE(p, npages, 0);
	get_stats(1, &a0);
	ASSERT_EQ(hmm_prefetch(p, size, 1), 0);
	get_stats(1, &a1);
	EXPECT_WHERE(p, npages, 1);
	ASSERT_EQ(mem_free(0), free0);
	ASSERT_EQ(mem_free(1), free1 - size);
	ASSERT_EQ(moved(&a0, &a1, TO_DEV, HMM_CAUSE_PEER) +
		  moved(&a0, &a1, TO_DEV, HMM_CAUSE_PREFETCH), npages);

	/* every third page back on device 0, a few on the CPU */
	for (size_t i = 0; i < npages; i += 3)
		ASSERT_EQ(hmm_prefetch(p + i * ps, 1, 0), 0);
	for (size_t i = 1; i < npages; i += 7)
		ASSERT_EQ(hmm_prefetch(p + i * ps, ps, HMM_CPU), 0);
	ASSERT_EQ(hmm_residency(p, size, loc, npages), (int)npages);
	for (size_t i = 0; i < npages; i++) {
		int want = i % 7 == 1 ? HMM_CPU : i % 3 == 0 ? 0 : 1;

		ASSERT_EQ(loc[i], want);
	}
	/* the devices' data is the CPU's data */
	EXPECT_DEV_DATA(devptr(p, 1), 0, size, 15);
	KT_EXPECT_DATA(p, size, 15);
	EXPECT_WHERE(p, npages, HMM_CPU);
	ASSERT_EQ(hmm_free(p), 0);
	ASSERT_EQ(wait_mem_free(0, free0, 2000), free0);
	ASSERT_EQ(wait_mem_free(1, free1, 2000), free1);
	free(loc);
}

/* hmm_residency of memory libhmm does not manage, moved by another file. */
TEST_TIMEOUT(residency_of_unmanaged_memory, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), npages = 64, size = npages * ps;
	int fd, last = 0;
	char *m;

	need_devices(1);
	last = hmm_device_count() - 1;
	fd = kt_open_device((unsigned int)last);
	m = kt_map(size);
	kt_fill(m, size / 2, 16);
	ASSERT_EQ(kt_migrate(fd, m, size / 4, HMMGPU_MIGRATE_TO_DEVICE, NULL),
		  0);
	EXPECT_WHERE(m, npages / 4, last);
	EXPECT_WHERE(m + size / 4, npages / 4, HMM_CPU);
	ASSERT_EQ(count_where(m + size / 2, npages / 2, HMM_LOC_NONE) +
		  count_where(m + size / 2, npages / 2, HMM_CPU), npages / 2);
	KT_EXPECT_DATA(m, size / 2, 16);
	close(fd);
	kt_unmap(m, size);
}

/* --- device access through views ------------------------------------------ */

TEST_TIMEOUT(device_reads_and_writes_through_devptr, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = 4 * MIB + 5 * ps;
	size_t npages = size / ps;
	struct hmm_stats st0, st1;
	char *p, *d;

	need_devices(1);
	p = hmm_malloc(size);
	ASSERT_TRUE(p);
	kt_fill(p, size, 21);
	d = devptr(p, 0);
	ASSERT_TRUE(d != p);
	/* any address inside maps to the same offset; the view is reused */
	ASSERT_TRUE(hmm_devptr(p + 12345, 0) == d + 12345);
	ASSERT_TRUE(hmm_devptr(p + size - 1, 0) == d + size - 1);
	ASSERT_TRUE(hmm_devptr(p, HMM_CPU) == p);
	/* creating the view moves nothing */
	EXPECT_WHERE(p, npages, HMM_CPU);

	get_stats(0, &st0);
	EXPECT_DEV_DATA(d, 0, size, 21);
	get_stats(0, &st1);
	EXPECT_WHERE(p, npages, 0);
	ASSERT_GT(st1.device_faults, st0.device_faults);
	ASSERT_EQ(moved(&st0, &st1, TO_DEV, HMM_CAUSE_DEVICE_FAULT) +
		  moved(&st0, &st1, TO_DEV, HMM_CAUSE_DENSITY), npages);

	/* device writes, the CPU reads them */
	dev_fill(d, 0, size, 22);
	KT_EXPECT_DATA(p, size, 22);
	EXPECT_WHERE(p, npages, HMM_CPU);
	/* CPU writes, the device reads them */
	kt_fill(p, size, 23);
	EXPECT_DEV_DATA(d, 0, size, 23);
	/*
	 * Prefetched pages are on the device already: device accesses
	 * only map them (a prefetch does not fill the view), nothing moves.
	 */
	ASSERT_EQ(hmm_prefetch(p, size, HMM_CPU), 0);
	ASSERT_EQ(hmm_prefetch(p, size, 0), 0);
	get_stats(0, &st0);
	EXPECT_DEV_DATA(d, 0, size, 23);
	get_stats(0, &st1);
	EXPECT_WHERE(p, npages, 0);
	for (int c = 0; c < HMM_CAUSE_COUNT; c++)
		ASSERT_EQ(moved(&st0, &st1, TO_DEV, c), 0);
	/* mapped now: a second pass takes no fault */
	EXPECT_DEV_DATA(d, 0, size, 23);
	get_stats(0, &st0);
	ASSERT_EQ(st0.device_faults, st1.device_faults);
	KT_EXPECT_DATA(p, size, 23);
	ASSERT_EQ(hmm_free(p), 0);
}

/* A view on each device; the second device's faults take from the first. */
TEST_TIMEOUT(views_on_two_devices, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = MIB, npages = size / ps;
	char *p, *d0, *d1;

	need_devices(2);
	p = hmm_malloc(size);
	ASSERT_TRUE(p);
	kt_fill(p, size, 24);
	d0 = devptr(p, 0);
	d1 = devptr(p, 1);
	ASSERT_TRUE(d0 != d1);
	EXPECT_DEV_DATA(d0, 0, size, 24);
	EXPECT_WHERE(p, npages, 0);
	dev_fill(d1, 0, size, 25);
	EXPECT_WHERE(p, npages, 1);
	EXPECT_DEV_DATA(d0, 0, size, 25);
	EXPECT_WHERE(p, npages, 0);
	KT_EXPECT_DATA(p, size, 25);
	ASSERT_EQ(hmm_free(p), 0);
}

/* --- freeing -------------------------------------------------------------- */

TEST_TIMEOUT(free_while_device_resident_returns_device_memory, RT_TIMEOUT)
{
	static const size_t sizes[] = { 64 * KIB, 2 * MIB, 5 * MIB + 4096 };
	int ndev = hmm_device_count() >= 2 ? 2 : 1;
	uint64_t free0[2] = { 0 }, total[2] = { 0 };

	need_devices(1);
	for (int d = 0; d < ndev; d++) {
		total[d] = mem_total(d);
		free0[d] = wait_mem_free(d, total[d], 2000);
	}
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t size = sizes[i], half = size / 2;
		char *p = hmm_malloc(size);

		ASSERT_TRUE(p);
		kt_fill(p, size, 30 + i);
		ASSERT_EQ(hmm_prefetch(p, half, 0), 0);
		ASSERT_EQ(hmm_prefetch(p + half, size - half, ndev - 1), 0);
		/* with views mapped, one of them faulted through */
		EXPECT_DEV_DATA(devptr(p, 0), 0, size, 30 + i);
		if (ndev > 1)
			(void)devptr(p, 1);
		ASSERT_LT(mem_free(0), free0[0]);
		ASSERT_EQ(hmm_free(p + size - 1), 0);
		for (int d = 0; d < ndev; d++)
			ASSERT_EQ(wait_mem_free(d, free0[d], 2000), free0[d]);
		ASSERT_EQ(hmm_free(p), -EINVAL);
	}
}

/* --- registered memory ---------------------------------------------------- */

TEST_TIMEOUT(register_prefetch_use_unregister, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = 3 * MIB + 1000;
	int last = hmm_device_count() - 1;
	uint64_t free0, freel;
	char *b, *d, *base;
	size_t npages, off;

	need_devices(1);
	b = malloc(size);
	ASSERT_TRUE(b);
	base = (char *)((uintptr_t)b & ~(uintptr_t)(ps - 1));
	off = (size_t)(b - base);
	npages = (off + size + ps - 1) / ps;
	kt_fill(b, size, 40);
	free0 = mem_free(0);
	freel = mem_free(last);

	ASSERT_EQ(hmm_register(b, size), 0);
	ASSERT_EQ(hmm_prefetch(b, size, 0), 0);
	EXPECT_WHERE(base, npages, 0);
	/* the device sees the data and changes the first half */
	d = devptr(b, 0);
	EXPECT_DEV_DATA(d, 0, size, 40);
	dev_fill(d, 0, size / 2, 41);
	EXPECT_WHERE(base, npages, 0);
	/* the second half goes to the last device */
	ASSERT_EQ(hmm_prefetch(b + size / 2, size - size / 2, last), 0);

	ASSERT_EQ(hmm_unregister(b + 17), 0);
	/* back on the CPU before anyone touched it */
	EXPECT_WHERE(base, npages, HMM_CPU);
	ASSERT_EQ(mem_free(0), free0);
	ASSERT_EQ(mem_free(last), freel);
	EXPECT_CPU_DATA(b, 0, size / 2, 41);
	EXPECT_CPU_DATA(b, size / 2, size - size / 2, 40);
	ASSERT_EQ(hmm_unregister(b), -EINVAL);
	ASSERT_ERRNO(hmm_devptr(b, 0) ? 0 : -1, EINVAL);
	free(b);
}

/*
 * Two buffers in one page, registered one after the other: unregistering
 * the first leaves the page, its device residency and the device pointer
 * of the second alone; unregistering the second brings it back.
 */
TEST_TIMEOUT(registrations_sharing_a_page_on_a_device, RT_TIMEOUT)
{
	size_t ps = kt_page_size();
	char *page, *a, *b, *db;

	need_devices(1);
	page = mmap(NULL, ps, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(page != MAP_FAILED);
	kt_fill(page, ps, 61);
	a = page + 64;
	b = page + 2048;
	ASSERT_EQ(hmm_register(a, 256), 0);
	ASSERT_EQ(hmm_register(b, 256), 0);
	db = devptr(b, 0);
	ASSERT_EQ(hmm_prefetch(b, 256, 0), 0);
	EXPECT_WHERE(page, 1, 0);
	ASSERT_EQ(hmm_unregister(a), 0);
	/* b's registration keeps the page where it is, and its view */
	EXPECT_WHERE(page, 1, 0);
	ASSERT_TRUE(hmm_devptr(b, 0) == db);
	/* the device reads b's bytes through it (the page's pattern) */
	EXPECT_DEV_DATA(db - 2048, 2048, 256, 61);
	ASSERT_EQ(hmm_unregister(b), 0);
	EXPECT_WHERE(page, 1, HMM_CPU);
	KT_EXPECT_DATA(page, ps, 61);
	munmap(page, ps);
}

/*
 * An allocation on a device moved away by mremap(), something else
 * mapped at its old address: no stale view from hmm_devptr(), and
 * hmm_free() leaves the newcomer alone; the moved data is intact and its
 * device memory comes back when the application unmaps it.
 */
TEST_TIMEOUT(mremap_of_device_resident_memory, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = REGION, npages = size / ps;
	uint64_t free0;
	char *p, *q, *to, *other;

	need_devices(1);
	free0 = mem_free(0);
	p = hmm_malloc(size);
	ASSERT_TRUE(p);
	kt_fill(p, size, 51);
	(void)devptr(p, 0);
	ASSERT_EQ(hmm_prefetch(p, size, 0), 0);
	EXPECT_WHERE(p, npages, 0);

	to = mmap(NULL, size, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(to != MAP_FAILED);
	q = mremap(p, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	ASSERT_TRUE(q == to);
	other = mmap(p, size, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ASSERT_TRUE(other == p);
	kt_fill(other, size, 52);

	ASSERT_ERRNO(hmm_devptr(p, 0) ? 0 : -1, ESTALE);
	ASSERT_ERRNO(hmm_devptr(p + ps, HMM_CPU) ? 0 : -1, ESTALE);
	ASSERT_EQ(hmm_free(p), -ESTALE);
	ASSERT_EQ(hmm_free(p), -EINVAL);
	KT_EXPECT_DATA(other, size, 52);
	/* the moved pages: still on the device, the data intact */
	EXPECT_WHERE(q, npages, 0);
	KT_EXPECT_DATA(q, size, 51);
	ASSERT_EQ(munmap(q, size), 0);
	ASSERT_EQ(wait_mem_free(0, free0, 2000), free0);
	munmap(other, size);
}

/* --- copies, fills, discard, batches, pointer attributes ------------------ */

/*
 * hmm_discard() of device-resident memory: the device memory comes back
 * without a page copied home, the pages are populated nowhere, and the
 * CPU and the device read zeros.
 */
TEST_TIMEOUT(discard_frees_device_pages_without_copying_back, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = REGION, npages = size / ps;
	struct hmm_stats st0, st1;
	uint64_t free0;
	char *p, *d;

	need_devices(1);
	free0 = mem_free(0);
	p = hmm_malloc(size);
	ASSERT_TRUE(p);
	kt_fill(p, size, 71);
	d = devptr(p, 0);
	ASSERT_EQ(hmm_prefetch(p, size, 0), 0);
	EXPECT_WHERE(p, npages, 0);
	ASSERT_LT(mem_free(0), free0);

	get_stats(0, &st0);
	ASSERT_EQ(hmm_discard(p, size), 0);
	get_stats(0, &st1);
	for (int c = 0; c < HMM_CAUSE_COUNT; c++)
		ASSERT_EQ(moved(&st0, &st1, TO_HOST, c), 0);
	ASSERT_EQ(wait_mem_free(0, free0, 2000), free0);
	EXPECT_WHERE(p, npages, HMM_LOC_NONE);
	ASSERT_EQ(dev_check_zero(d, 0, size), -1);
	ASSERT_EQ(kt_check_zero(p, size), -1);
	ASSERT_EQ(hmm_free(p), 0);
}

/*
 * hmm_memcpy() and hmm_memset() on device-resident memory, to and from
 * plain memory; hmm_prefetch_batch() to a device; the view address in
 * hmm_pointer_get_attributes().
 */
TEST_TIMEOUT(memcpy_memset_and_batch_on_a_device, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = REGION, npages = size / ps;
	struct hmm_pointer_attributes at;
	char *a, *b, *plain, *d;
	const void *ptrs[2];
	size_t sizes[2] = { size, size };

	need_devices(1);
	a = hmm_malloc(size);
	b = hmm_malloc(size);
	plain = malloc(size);
	ASSERT_TRUE(a && b && plain);
	kt_fill(a, size, 81);
	ASSERT_EQ(hmm_pointer_get_attributes(a + 100, 0, &at), 0);
	ASSERT_EQ(at.type, HMM_MEMORY_MANAGED);
	ASSERT_TRUE(at.devptr == NULL); /* no view yet: the query maps none */
	ASSERT_EQ(hmm_pointer_get_attributes(a + 100, 0, &at), 0);
	ASSERT_TRUE(at.devptr == NULL);

	ptrs[0] = a;
	ptrs[1] = b;
	ASSERT_EQ(hmm_prefetch_batch(ptrs, sizes, 2, 0, NULL), 0);
	EXPECT_WHERE(a, npages, 0);
	EXPECT_WHERE(b, npages, 0);
	/* a prefetch to a device maps the views (see hmm_prefetch()) */
	d = devptr(a, 0);
	ASSERT_EQ(hmm_pointer_get_attributes(a + 100, 0, &at), 0);
	ASSERT_TRUE(at.devptr == d + 100);

	/*
	 * Both ends on the device: the copy is the device's, nothing comes
	 * back to system memory (it used to bounce through it).
	 */
	ASSERT_EQ(hmm_memcpy(b, a, size), 0);
	EXPECT_WHERE(a, npages, 0);
	EXPECT_WHERE(b, npages, 0);
	EXPECT_DEV_DATA(devptr(b, 0), 0, size, 81);
	/* to the host: the source stays on the device */
	ASSERT_EQ(hmm_memcpy(plain, a, size), 0);
	EXPECT_WHERE(a, npages, 0);
	KT_EXPECT_DATA(plain, size, 81);
	ASSERT_EQ(hmm_memset(a + 1, 0, size - 2), 0);
	EXPECT_WHERE(a, npages, 0);
	ASSERT_EQ(dev_check_zero(d, 1, size - 2), -1);
	/* the CPU sees the same, and brings the pages back */
	KT_EXPECT_DATA(b, size, 81);
	ASSERT_EQ(kt_check_zero(a + 1, size - 2), -1);
	ASSERT_EQ(a[0], (char)kt_pattern_byte(81, 0));
	ASSERT_EQ(a[size - 1], (char)kt_pattern_byte(81, size - 1));
	/* partly on the device: the CPU copies, as before */
	ASSERT_EQ(hmm_prefetch(a, size / 2, 0), 0);
	ASSERT_EQ(hmm_memset(a, 0, size), 0);
	ASSERT_EQ(kt_check_zero(a, size), -1);
	ASSERT_EQ(dev_check_zero(d, 0, size), -1);
	ASSERT_EQ(hmm_free(a), 0);
	ASSERT_EQ(hmm_free(b), 0);
	free(plain);
}

/* --- fork ----------------------------------------------------------------- */

TEST_TIMEOUT(fork_after_prefetch, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = 2 * MIB, npages = size / ps;
	char *p, *d;
	pid_t pid;

	need_devices(1);
	p = hmm_malloc(size);
	ASSERT_TRUE(p);
	kt_fill(p, size, 50);
	d = devptr(p, 0);
	ASSERT_EQ(hmm_prefetch(p, size, 0), 0);
	EXPECT_WHERE(p, npages, 0);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		struct hmm_stats st;
		char *cd;

		/*
		 * The child has device files of its own: its counters start
		 * at zero, not at the parent's prefetch.
		 */
		ASSERT_EQ(hmm_get_stats(0, &st), 0);
		ASSERT_EQ(st.pages[HMM_DIR_TO_DEVICE][HMM_CAUSE_PREFETCH], 0);
		/* the child reads the data as of fork, then writes its own */
		KT_EXPECT_DATA(p, size, 50);
		kt_fill(p, size, 51);
		/* its own view, on its own copy */
		cd = devptr(p, 0);
		EXPECT_DEV_DATA(cd, 0, size, 51);
		dev_fill(cd, 0, size / 2, 52);
		KT_EXPECT_DATA(p, size / 2, 52);
		ASSERT_EQ(hmm_get_stats(0, &st), 0);
		ASSERT_GT(st.device_faults, 0);
		ASSERT_GT(st.cpu_faults, 0);
		ASSERT_EQ(hmm_free(p), 0);
		_exit(0);
	}
	ASSERT_EQ(kt_wait_child(pid), 0);
	/* the child's faults were not counted on the parent's file */
	{
		struct hmm_stats st;

		ASSERT_EQ(hmm_get_stats(0, &st), 0);
		ASSERT_EQ(st.device_faults, 0);
	}
	/* the parent's data and view are unchanged */
	EXPECT_DEV_DATA(d, 0, size, 50);
	KT_EXPECT_DATA(p, size, 50);
	dev_fill(d, 0, size, 53);
	KT_EXPECT_DATA(p, size, 53);
	ASSERT_EQ(hmm_free(p), 0);
}

/* --- advice --------------------------------------------------------------- */

/*
 * Remote access: device accesses map the system pages, nothing migrates;
 * advice given before and after the view exists.
 */
TEST_TIMEOUT(remote_access_advice_does_not_migrate, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = MIB, npages = size / ps;
	struct hmm_stats st0, st1;
	char *p, *q, *dp, *dq;
	uint64_t free0;

	need_devices(1);
	p = hmm_malloc(size);
	q = hmm_malloc(size);
	ASSERT_TRUE(p && q);
	kt_fill(p, size, 60);
	kt_fill(q, size, 61);
	free0 = mem_free(0);
	/* p: advised before its view exists; q: after */
	ASSERT_EQ(hmm_advise(p, 1, HMM_ADVISE_SET_REMOTE_ACCESS, 0, 0), 0);
	dp = devptr(p, 0);
	dq = devptr(q, 0);
	ASSERT_EQ(hmm_advise(q + size - 1, 1, HMM_ADVISE_SET_REMOTE_ACCESS, 0,
			     0), 0);

	get_stats(0, &st0);
	EXPECT_DEV_DATA(dp, 0, size, 60);
	EXPECT_DEV_DATA(dq, 0, size, 61);
	dev_fill(dp, 0, size / 2, 62);
	get_stats(0, &st1);
	EXPECT_WHERE(p, npages, HMM_CPU);
	EXPECT_WHERE(q, npages, HMM_CPU);
	ASSERT_EQ(mem_free(0), free0);
	ASSERT_GT(st1.device_faults, st0.device_faults);
	for (int c = 0; c < HMM_CAUSE_COUNT; c++)
		ASSERT_EQ(moved(&st0, &st1, TO_DEV, c), 0);
	EXPECT_CPU_DATA(p, 0, size / 2, 62);
	EXPECT_CPU_DATA(p, size / 2, size / 2, 60);

	/* unset: device faults migrate again */
	ASSERT_EQ(hmm_advise(q, size, HMM_ADVISE_UNSET_REMOTE_ACCESS, 0, 0),
		  0);
	EXPECT_DEV_DATA(dq, 0, size, 61);
	EXPECT_WHERE(q, npages, 0);
	EXPECT_WHERE(p, npages, HMM_CPU);
	ASSERT_EQ(hmm_free(p), 0);
	ASSERT_EQ(hmm_free(q), 0);
}

/*
 * Accessed-by (CUDA's SetAccessedBy), advised before and after the view
 * exists: the device reads and writes system data without a device
 * fault and nothing moves; the attribute names the device; unset, it
 * names none.
 */
TEST_TIMEOUT(accessed_by_advice_maps_without_faults, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = MIB, npages = size / ps;
	struct hmm_stats st0, st1;
	char *p, *q, *dp, *dq;
	int r[2];

	need_devices(1);
	p = hmm_malloc(size);
	q = hmm_malloc(size);
	ASSERT_TRUE(p && q);
	kt_fill(p, size, 70);
	kt_fill(q, size, 71);
	ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_SET_ACCESSED_BY, 0, 0), 0);
	dp = devptr(p, 0);
	dq = devptr(q, 0);
	ASSERT_EQ(hmm_advise(q, size, HMM_ADVISE_SET_ACCESSED_BY, 0, 0), 0);

	get_stats(0, &st0);
	EXPECT_DEV_DATA(dp, 0, size, 70);
	EXPECT_DEV_DATA(dq, 0, size, 71);
	dev_fill(dp, 0, size / 2, 72);
	get_stats(0, &st1);
	ASSERT_EQ(st1.device_faults, st0.device_faults);
	for (int c = 0; c < HMM_CAUSE_COUNT; c++)
		ASSERT_EQ(moved(&st0, &st1, TO_DEV, c), 0);
	EXPECT_WHERE(p, npages, HMM_CPU);
	EXPECT_WHERE(q, npages, HMM_CPU);
	EXPECT_CPU_DATA(p, 0, size / 2, 72);

	ASSERT_EQ(hmm_range_get_attr(p, size, HMM_ATTR_ACCESSED_BY, r,
				     sizeof(r)), 0);
	ASSERT_EQ(r[0], 0);
	ASSERT_EQ(r[1], HMM_LOC_NONE);
	ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_UNSET_ACCESSED_BY, 0, 0), 0);
	ASSERT_EQ(hmm_range_get_attr(p, size, HMM_ATTR_ACCESSED_BY, r,
				     sizeof(r)), 0);
	ASSERT_EQ(r[0], HMM_LOC_NONE);
	ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_SET_ACCESSED_BY, HMM_CPU, 0),
		  -EINVAL);
	ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_SET_ACCESSED_BY, 0, 1),
		  -EINVAL);
	ASSERT_EQ(hmm_free(p), 0);
	ASSERT_EQ(hmm_free(q), 0);
}

/*
 * Read-mostly (CUDA's SetReadMostly), advised before the view exists: in
 * a PROT_READ allocation device reads get copies (counted, device memory
 * used), nothing migrates, the CPU keeps its pages; an update after
 * mprotect() is what the device reads next; unset, the copies go.
 */
TEST_TIMEOUT(read_mostly_advice_copies_read_only_data, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = MIB, npages = size / ps;
	struct hmm_stats st0, st1;
	uint64_t free0;
	char *p, *dp;
	int rm = 0;

	need_devices(1);
	p = hmm_malloc(size);
	ASSERT_TRUE(p != NULL);
	kt_fill(p, size, 75);
	ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_SET_READ_MOSTLY, 0, 0), 0);
	ASSERT_EQ(hmm_range_get_attr(p, size, HMM_ATTR_READ_MOSTLY, &rm,
				     sizeof(rm)), 0);
	ASSERT_EQ(rm, 1);
	ASSERT_EQ(mprotect(p, size, PROT_READ), 0);
	dp = devptr(p, 0);
	free0 = mem_free(0);

	get_stats(0, &st0);
	EXPECT_DEV_DATA(dp, 0, size, 75);
	EXPECT_CPU_DATA(p, 0, size, 75);
	get_stats(0, &st1);
	ASSERT_EQ(st1.read_mostly_copies - st0.read_mostly_copies, npages);
	ASSERT_EQ(st1.cpu_faults, st0.cpu_faults);
	for (int c = 0; c < HMM_CAUSE_COUNT; c++)
		ASSERT_EQ(moved(&st0, &st1, TO_DEV, c), 0);
	EXPECT_WHERE(p, npages, HMM_CPU);
	ASSERT_EQ(mem_free(0), free0 - size);

	ASSERT_EQ(mprotect(p, size, PROT_READ | PROT_WRITE), 0);
	ASSERT_EQ(mem_free(0), free0);
	kt_fill(p, ps, 76);
	ASSERT_EQ(mprotect(p, size, PROT_READ), 0);
	EXPECT_DEV_DATA(dp, 0, ps, 76);
	EXPECT_DEV_DATA(dp, ps, size - ps, 75);

	ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_UNSET_READ_MOSTLY, 0, 0), 0);
	ASSERT_EQ(mem_free(0), free0);
	get_stats(0, &st1);
	ASSERT_GE(st1.read_mostly_drops - st0.read_mostly_drops, 2 * npages);
	ASSERT_EQ(mprotect(p, size, PROT_READ | PROT_WRITE), 0);
	ASSERT_EQ(hmm_free(p), 0);
}

/*
 * Read-mostly memory the CPU keeps writing (no mprotect()): libhmm
 * write-protects it with userfaultfd, so device reads still get copies.
 * A CPU write to a page drops that page's copy before it lands (the device
 * then reads the new data, and only that copy went); the page is protected
 * again once the CPU stops writing, and the device's next read copies it
 * again.  A device write works too, a fork() child writes its own
 * memory without a handler; unset, the copies go.
 */
TEST_TIMEOUT(read_mostly_advice_lets_the_cpu_write, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = MIB, npages = size / ps;
	struct hmm_stats st0, st1;
	uint64_t free0;
	char *p, *dp;
	int tries;
	pid_t pid;

	need_devices(1);
	p = hmm_malloc(size);
	ASSERT_TRUE(p != NULL);
	kt_fill(p, size, 77);
	ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_SET_READ_MOSTLY, 0, 0), 0);
	dp = devptr(p, 0);
	free0 = mem_free(0);

	get_stats(0, &st0);
	EXPECT_DEV_DATA(dp, 0, size, 77);
	get_stats(0, &st1);
	ASSERT_EQ(st1.read_mostly_copies - st0.read_mostly_copies, npages);
	for (int c = 0; c < HMM_CAUSE_COUNT; c++)
		ASSERT_EQ(moved(&st0, &st1, TO_DEV, c), 0);
	EXPECT_WHERE(p, npages, HMM_CPU);
	ASSERT_EQ(mem_free(0), free0 - size);

	/* the CPU writes one page: its copy goes first, the others stay */
	kt_fill_range(p, 2 * ps, ps, 78);
	get_stats(0, &st0);
	ASSERT_EQ(st0.read_mostly_drops - st1.read_mostly_drops, 1);
	ASSERT_EQ(mem_free(0), free0 - size + ps);
	EXPECT_DEV_DATA(dp, 2 * ps, ps, 78);
	EXPECT_DEV_DATA(dp, 0, 2 * ps, 77);
	EXPECT_DEV_DATA(dp, 3 * ps, size - 3 * ps, 77);
	EXPECT_CPU_DATA(p, 2 * ps, ps, 78);

	/* protected again once the writes stop: the device copies it again */
	for (tries = 0; tries < 500; tries++) {
		usleep(20000);
		EXPECT_DEV_DATA(dp, 2 * ps, ps, 78);
		if (mem_free(0) == free0 - size)
			break;
	}
	ASSERT_LT(tries, 500);
	get_stats(0, &st1);
	ASSERT_EQ(st1.read_mostly_copies - st0.read_mostly_copies, 1);

	/* a device write lands, and is what the CPU reads */
	dev_fill(dp, 5 * ps, ps, 79);
	EXPECT_CPU_DATA(p, 5 * ps, ps, 79);
	EXPECT_CPU_DATA(p, 0, 2 * ps, 77);
	EXPECT_DEV_DATA(dp, 5 * ps, ps, 79);

	/* a fork() child's memory is not armed: it writes with no handler */
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		kt_fill(p, size, 81);
		_exit(kt_check(p, size, 81) == -1 ? 0 : 1);
	}
	ASSERT_EQ(kt_wait_child(pid), 0);
	EXPECT_CPU_DATA(p, 0, 2 * ps, 77);
	EXPECT_DEV_DATA(dp, 2 * ps, ps, 78);

	ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_UNSET_READ_MOSTLY, 0, 0), 0);
	ASSERT_EQ(wait_mem_free(0, free0, 10000), free0);
	kt_fill(p, size, 80);
	EXPECT_DEV_DATA(dp, 0, size, 80);
	ASSERT_EQ(hmm_free(p), 0);
}

/*
 * hmm_register() of memory that is not private anonymous: a memfd
 * mapped MAP_SHARED.  The device reads and writes it in place through
 * hmm_devptr(); the file sees the writes; a prefetch leaves it in system
 * memory.  A view address (a device file's mapping) is refused.
 */
TEST_TIMEOUT(register_shared_file_memory, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = 64 * ps, npages = size / ps;
	int mfd = memfd_create("hmm-rt-shared", 0);
	char *m, *dm, *buf;

	need_devices(1);
	ASSERT_GE(mfd, 0);
	ASSERT_EQ(ftruncate(mfd, (off_t)size), 0);
	m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_TRUE(m != MAP_FAILED);
	kt_fill(m, size, 77);
	ASSERT_EQ(hmm_register(m, size), 0);
	dm = devptr(m, 0);
	EXPECT_DEV_DATA(dm, 0, size, 77);
	dev_fill(dm, 0, size / 2, 78);
	EXPECT_CPU_DATA(m, 0, size / 2, 78);
	buf = malloc(size);
	ASSERT_TRUE(buf != NULL);
	ASSERT_EQ(pread(mfd, buf, size, 0), (ssize_t)size);
	EXPECT_CPU_DATA(buf, 0, size / 2, 78);
	EXPECT_CPU_DATA(buf, size / 2, size / 2, 77);
	free(buf);
	ASSERT_EQ(hmm_prefetch(m, size, 0), 0);
	EXPECT_WHERE(m, npages, HMM_CPU);
	ASSERT_EQ(hmm_register(dm, ps), -EINVAL);
	ASSERT_EQ(hmm_unregister(m), 0);
	kt_unmap(m, size);
	close(mfd);
}

/*
 * Device atomics with remote access: the pages the device wrote are
 * held device-exclusive (hmm_snapshot() says so) until the CPU reads
 * them; the attribute reads the policy back.
 */
TEST_TIMEOUT(atomic_policy_device_takes_pages_exclusive, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), npages = 16, size = npages * ps;
	struct hmm_page_info info[16];
	uint32_t policy = 0;
	char *p, *dp;

	need_devices(1);
	p = hmm_malloc(size);
	ASSERT_TRUE(p != NULL);
	kt_fill(p, size, 75);
	ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_ATOMIC_POLICY, 0,
			     HMM_ATOMIC_CPU + 1), -EINVAL);
	ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_SET_REMOTE_ACCESS, 0, 0), 0);
	ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_ATOMIC_POLICY, 0,
			     HMM_ATOMIC_DEVICE), 0);
	ASSERT_EQ(hmm_range_get_attr(p, size, HMM_ATTR_ATOMIC_POLICY, &policy,
				     sizeof(policy)), 0);
	ASSERT_EQ(policy, HMM_ATOMIC_DEVICE);
	dp = devptr(p, 0);
	dev_fill(dp, 0, size, 76);
	ASSERT_EQ(hmm_snapshot(p, size, info, npages), (int)npages);
	for (size_t i = 0; i < npages; i++) {
		ASSERT_EQ(info[i].loc, HMM_CPU);
		ASSERT_TRUE(info[i].flags & HMM_PAGE_EXCLUSIVE);
	}
	KT_EXPECT_DATA(p, size, 76);
	ASSERT_EQ(hmm_snapshot(p, size, info, npages), (int)npages);
	for (size_t i = 0; i < npages; i++)
		ASSERT_EQ(info[i].flags & HMM_PAGE_EXCLUSIVE, 0);
	ASSERT_EQ(hmm_free(p), 0);
}

/*
 * hmm_snapshot(): location and permission of each page, in agreement
 * with hmm_residency(), of managed and unmanaged memory.
 */
TEST_TIMEOUT(snapshot_agrees_with_residency, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), npages = 16, size = npages * ps;
	struct hmm_page_info info[16];
	int8_t loc[16];
	char *p, *u;

	need_devices(1);
	p = hmm_malloc(size);
	ASSERT_TRUE(p != NULL);
	kt_fill(p, 8 * ps, 73);
	ASSERT_EQ(hmm_prefetch(p, 4 * ps, 0), 0);
	ASSERT_EQ(hmm_snapshot(p, size, info, npages), (int)npages);
	ASSERT_EQ(hmm_residency(p, size, loc, npages), (int)npages);
	for (size_t i = 0; i < npages; i++)
		ASSERT_EQ(info[i].loc, loc[i]);
	for (size_t i = 0; i < 4; i++) {
		ASSERT_EQ(info[i].loc, 0);
		ASSERT_EQ(info[i].flags, HMM_PAGE_READ | HMM_PAGE_WRITE);
	}
	for (size_t i = 4; i < 8; i++) {
		ASSERT_EQ(info[i].loc, HMM_CPU);
		ASSERT_EQ(info[i].flags,
			  HMM_PAGE_READ | HMM_PAGE_WRITE | HMM_PAGE_MAPPED);
	}
	/* prefetched holes are zero-filled device pages; the rest none */
	ASSERT_EQ(hmm_snapshot(p, size, info, npages - 1), -EINVAL);
	ASSERT_EQ(hmm_snapshot(NULL, size, info, npages), -EINVAL);
	KT_EXPECT_DATA(p, 8 * ps, 73);
	ASSERT_EQ(hmm_free(p), 0);

	/* unmanaged memory, one page read-only */
	u = kt_map(size);
	kt_fill(u, size, 74);
	ASSERT_EQ(mprotect(u, ps, PROT_READ), 0);
	ASSERT_EQ(hmm_snapshot(u, size, info, npages), (int)npages);
	ASSERT_EQ(info[0].flags, HMM_PAGE_READ | HMM_PAGE_MAPPED);
	ASSERT_EQ(info[1].flags,
		  HMM_PAGE_READ | HMM_PAGE_WRITE | HMM_PAGE_MAPPED);
	ASSERT_EQ(info[1].loc, HMM_CPU);
	kt_unmap(u, size);
}

/* Preferred location HMM_CPU: the same, for every device. */
TEST_TIMEOUT(preferred_location_cpu_maps_system_memory, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = 512 * KIB, npages = size / ps;
	int ndev = hmm_device_count() >= 2 ? 2 : 1;
	char *p;

	need_devices(1);
	p = hmm_malloc(size);
	ASSERT_TRUE(p);
	kt_fill(p, size, 63);
	(void)devptr(p, 0);
	ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_SET_PREFERRED_LOCATION,
			     HMM_CPU, 0), 0);
	for (int d = 0; d < ndev; d++) {
		EXPECT_DEV_DATA(devptr(p, d), 0, size, 63);
		EXPECT_WHERE(p, npages, HMM_CPU);
	}
	/* explicit prefetch still moves it */
	ASSERT_EQ(hmm_prefetch(p, size, 0), 0);
	EXPECT_WHERE(p, npages, 0);
	ASSERT_EQ(hmm_prefetch(p, size, HMM_CPU), 0);
	ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_UNSET_PREFERRED_LOCATION, 0,
			     0), 0);
	EXPECT_DEV_DATA(devptr(p, ndev - 1), 0, size, 63);
	EXPECT_WHERE(p, npages, ndev - 1);
	KT_EXPECT_DATA(p, size, 63);
	ASSERT_EQ(hmm_free(p), 0);
}

/*
 * Preferred location on a device acts in the driver: a CPU read of one
 * page brings back that page, not the fault block; without the advice
 * the same read brings back the block (fault_kib).
 */
TEST_TIMEOUT(preferred_location_device_keeps_the_rest_there, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = 512 * KIB, npages = size / ps;
	size_t block = kt_module_param_or("fault_kib", 64) * 1024 / ps;
	int8_t *loc = calloc(npages, 1);
	char *p, *q;
	size_t on_cpu;

	need_devices(1);
	ASSERT_TRUE(loc != NULL);
	p = hmm_malloc(size);
	q = hmm_malloc(size);
	ASSERT_TRUE(p && q);
	kt_fill(p, size, 64);
	kt_fill(q, size, 65);
	ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_SET_PREFERRED_LOCATION, 0,
			     0), 0);
	ASSERT_EQ(hmm_prefetch(p, size, 0), 0);
	ASSERT_EQ(hmm_prefetch(q, size, 0), 0);
	EXPECT_WHERE(p, npages, 0);
	EXPECT_WHERE(q, npages, 0);
	(void)((volatile char *)p)[100 * ps + 7];
	(void)((volatile char *)q)[100 * ps + 7];

	ASSERT_EQ(hmm_residency(p, size, loc, npages), (int)npages);
	on_cpu = 0;
	for (size_t i = 0; i < npages; i++)
		on_cpu += loc[i] == HMM_CPU;
	ASSERT_EQ(on_cpu, 1);
	ASSERT_EQ(loc[100], HMM_CPU);
	ASSERT_EQ(hmm_residency(q, size, loc, npages), (int)npages);
	on_cpu = 0;
	for (size_t i = 0; i < npages; i++)
		on_cpu += loc[i] == HMM_CPU;
	ASSERT_EQ(on_cpu, block);

	/* forgotten: the next read brings back a block again */
	ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_UNSET_PREFERRED_LOCATION, 0,
			     0), 0);
	(void)((volatile char *)p)[50 * ps];
	ASSERT_EQ(hmm_residency(p, size, loc, npages), (int)npages);
	on_cpu = 0;
	for (size_t i = 0; i < npages; i++)
		on_cpu += loc[i] == HMM_CPU;
	ASSERT_EQ(on_cpu, 1 + block);
	KT_EXPECT_DATA(p, size, 64);
	KT_EXPECT_DATA(q, size, 65);
	ASSERT_EQ(hmm_free(p), 0);
	ASSERT_EQ(hmm_free(q), 0);
	free(loc);
}

/*
 * One device read in a fresh 2 MiB region moves one aligned block of the
 * advised granularity (small enough that density prefetch stays out).
 */
TEST_TIMEOUT(granularity_advice_sets_the_fault_block, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = 4 * MIB, npages = size / ps;
	size_t def = kt_module_param_or("view_fault_kib", 64) * KIB;
	static const size_t grans[] = { 16 * KIB, 256 * KIB, 0 };
	struct hmm_stats st0, st1;
	char *p, *d;

	need_devices(1);
	if (def > 256 * KIB)
		SKIP("view_fault_kib is %zu KiB", def / KIB);
	p = hmm_malloc(size);
	ASSERT_TRUE(p);
	kt_fill(p, size, 70);
	kt_no_khugepaged(p, size);
	d = devptr(p, 0);

	/* not advised: the driver's default block */
	get_stats(0, &st0);
	ASSERT_EQ(dev_read_word(d, 100 * KIB + 8),
		  kt_pattern(70, (100 * KIB + 8) / 8));
	get_stats(0, &st1);
	ASSERT_EQ(count_where(p, npages, 0), def / ps);
	ASSERT_EQ(moved(&st0, &st1, TO_DEV, HMM_CAUSE_DEVICE_FAULT), def / ps);
	ASSERT_EQ(st1.device_faults - st0.device_faults, 1);
	ASSERT_EQ(hmm_prefetch(p, size, HMM_CPU), 0);

	/* advised on the existing view, in another region each time */
	for (size_t i = 0; i < sizeof(grans) / sizeof(grans[0]); i++) {
		size_t g = grans[i] ? grans[i] : def;
		size_t off = (i % 2) * REGION + 3 * 256 * KIB + 5 * ps;
		uint64_t got;

		ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_FAULT_GRANULARITY, 0,
				     grans[i]), 0);
		ASSERT_EQ(hmm_range_get_attr(p, size,
					     HMM_ATTR_FAULT_GRANULARITY, &got,
					     sizeof(got)), 0);
		ASSERT_EQ(got, grans[i]);
		get_stats(0, &st0);
		ASSERT_EQ(dev_read_word(d, off), kt_pattern(70, off / 8));
		get_stats(0, &st1);
		ASSERT_EQ(count_where(p, npages, 0), g / ps);
		/* the aligned block around the access */
		EXPECT_WHERE(p + (off & ~(g - 1)), g / ps, 0);
		ASSERT_EQ(moved(&st0, &st1, TO_DEV, HMM_CAUSE_DEVICE_FAULT),
			  g / ps);
		ASSERT_EQ(hmm_prefetch(p, size, HMM_CPU), 0);
	}
	KT_EXPECT_DATA(p, size, 70);
	ASSERT_EQ(hmm_free(p), 0);
}

/* Advice given before the view exists applies to the view made later. */
TEST_TIMEOUT(granularity_advice_before_the_view, RT_TIMEOUT)
{
	size_t ps = kt_page_size(), size = 2 * MIB, npages = size / ps;
	char *p;

	need_devices(1);
	p = hmm_malloc(size);
	ASSERT_TRUE(p);
	kt_fill(p, size, 71);
	ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_FAULT_GRANULARITY, 0,
			     128 * KIB), 0);
	ASSERT_EQ(dev_read_word(devptr(p, 0), MIB + 8),
		  kt_pattern(71, (MIB + 8) / 8));
	ASSERT_EQ(count_where(p, npages, 0), 128 * KIB / ps);
	EXPECT_WHERE(p + MIB, 128 * KIB / ps, 0);
	KT_EXPECT_DATA(p, size, 71);
	ASSERT_EQ(hmm_free(p), 0);
}

TEST_TIMEOUT(range_get_attr_reports_advice_and_prefetch, RT_TIMEOUT)
{
	size_t size = MIB;
	int ndev, v, r[4];
	uint64_t g;
	char *p, *q;

	need_devices(1);
	ndev = hmm_device_count() >= 2 ? 2 : 1;
	p = hmm_malloc(size);
	q = hmm_malloc(size);
	ASSERT_TRUE(p && q);

	ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_SET_PREFERRED_LOCATION,
			     ndev - 1, 0), 0);
	ASSERT_EQ(hmm_range_get_attr(p + 10, 10, HMM_ATTR_PREFERRED_LOCATION,
				     &v, sizeof(v)), 0);
	ASSERT_EQ(v, ndev - 1);

	for (int d = ndev - 1; d >= 0; d--)
		ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_SET_REMOTE_ACCESS, d,
				     0), 0);
	/* twice is once */
	ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_SET_REMOTE_ACCESS, 0, 0), 0);
	ASSERT_EQ(hmm_range_get_attr(p, size, HMM_ATTR_REMOTE_ACCESS, r,
				     sizeof(r)), 0);
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(r[i], i < ndev ? i : HMM_LOC_NONE);
	ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_UNSET_REMOTE_ACCESS, 0, 0),
		  0);
	ASSERT_EQ(hmm_range_get_attr(p, size, HMM_ATTR_REMOTE_ACCESS, r,
				     sizeof(r)), 0);
	ASSERT_EQ(r[0], ndev > 1 ? 1 : HMM_LOC_NONE);
	ASSERT_EQ(r[1], HMM_LOC_NONE);

	ASSERT_EQ(hmm_advise(p, size, HMM_ADVISE_FAULT_GRANULARITY, 0,
			     128 * KIB), 0);
	ASSERT_EQ(hmm_range_get_attr(p, 1, HMM_ATTR_FAULT_GRANULARITY, &g,
				     sizeof(g)), 0);
	ASSERT_EQ(g, 128 * KIB);

	/* last prefetch: part of p counts for p */
	ASSERT_EQ(hmm_range_get_attr(p, size, HMM_ATTR_LAST_PREFETCH_LOCATION,
				     &v, sizeof(v)), 0);
	ASSERT_EQ(v, HMM_LOC_NONE);
	ASSERT_EQ(hmm_prefetch(p + 4096, 4096, ndev - 1), 0);
	ASSERT_EQ(hmm_range_get_attr(p, size, HMM_ATTR_LAST_PREFETCH_LOCATION,
				     &v, sizeof(v)), 0);
	ASSERT_EQ(v, ndev - 1);
	ASSERT_EQ(hmm_prefetch(p, size, HMM_CPU), 0);
	ASSERT_EQ(hmm_range_get_attr(p, size, HMM_ATTR_LAST_PREFETCH_LOCATION,
				     &v, sizeof(v)), 0);
	ASSERT_EQ(v, HMM_CPU);
	/* q is untouched by all of it */
	ASSERT_EQ(hmm_range_get_attr(q, size, HMM_ATTR_PREFERRED_LOCATION, &v,
				     sizeof(v)), 0);
	ASSERT_EQ(v, HMM_LOC_NONE);
	ASSERT_EQ(hmm_range_get_attr(q, size, HMM_ATTR_LAST_PREFETCH_LOCATION,
				     &v, sizeof(v)), 0);
	ASSERT_EQ(v, HMM_LOC_NONE);
	ASSERT_EQ(hmm_range_get_attr(q, size, HMM_ATTR_REMOTE_ACCESS, r,
				     sizeof(r)), 0);
	ASSERT_EQ(r[0], HMM_LOC_NONE);
	ASSERT_EQ(hmm_free(p), 0);
	ASSERT_EQ(hmm_free(q), 0);
}

/* --- threads -------------------------------------------------------------- */

#define WORKERS 4
#define WORKER_ROUNDS 12

static atomic_int worker_errors;

#define WORKER_CHECK(cond)                                                   \
	do {                                                                 \
		if (!(cond)) {                                               \
			TH_LOG("worker %u round %d: %s failed", id, r,       \
			       #cond);                                       \
			atomic_fetch_add(&worker_errors, 1);                 \
		}                                                            \
	} while (0)

static void worker(void *arg)
{
	unsigned int id = (unsigned int)(uintptr_t)arg, rnd = id * 31 + 7;
	int ndev = hmm_device_count();
	size_t ps = kt_page_size();

	for (int r = 0; r < WORKER_ROUNDS; r++) {
		size_t size, npages;
		uint64_t seed = id * 1000 + r;
		int target = (int)((id + r) % ndev);
		char *p, *d;

		rnd = rnd * 1103515245 + 12345;
		size = ps + (rnd >> 4) % (r % 3 ? 512 * KIB : 3 * MIB);
		npages = (size + ps - 1) / ps;
		p = hmm_malloc(size);
		WORKER_CHECK(p);
		if (!p)
			continue;
		WORKER_CHECK(kt_check_zero(p, size) == -1);
		kt_fill(p, size, seed);
		WORKER_CHECK(hmm_prefetch(p, size, target) == 0);
		WORKER_CHECK(count_where(p, npages, target) == npages);
		/* this thread is the device now, through the view */
		d = hmm_devptr(p, target);
		WORKER_CHECK(d);
		if (d) {
			WORKER_CHECK(kt_check(d, size, seed) == -1);
			kt_fill(d, size / 2, seed + 1);
		}
		if (r % 4 == 3) {
			/* freed while on the device */
			WORKER_CHECK(hmm_free(p + size / 2) == 0);
			continue;
		}
		WORKER_CHECK(hmm_prefetch(p, size, HMM_CPU) == 0);
		if (d)
			WORKER_CHECK(kt_check(p, size / 2, seed + 1) == -1);
		WORKER_CHECK(kt_check_range(p, size / 2, size - size / 2,
					    seed) == -1);
		WORKER_CHECK(count_where(p, npages, HMM_CPU) == npages);
		WORKER_CHECK(hmm_free(p) == 0);
	}
}

TEST_TIMEOUT(threads_allocate_prefetch_and_free, 300)
{
	struct kt_thread t[WORKERS];
	int ndev;
	uint64_t free0[2] = { 0 };

	need_devices(1);
	ndev = hmm_device_count() >= 2 ? 2 : 1;
	for (int d = 0; d < ndev; d++)
		free0[d] = wait_mem_free(d, mem_total(d), 2000);
	for (int i = 0; i < WORKERS; i++)
		kt_start(&t[i], worker, (void *)(uintptr_t)i);
	for (int i = 0; i < WORKERS; i++)
		kt_join(&t[i]);
	ASSERT_EQ(atomic_load(&worker_errors), 0);
	for (int d = 0; d < ndev; d++)
		ASSERT_EQ(wait_mem_free(d, free0[d], 2000), free0[d]);
}

TEST_MAIN()
