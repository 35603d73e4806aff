// SPDX-License-Identifier: MIT
/*
 * test_rt_args.c - argument checks of libhmm's memory, migration, advice,
 * residency and statistics calls, on a host with no hmmgpu device: every
 * bad argument gets the errno hmm.h documents, and nothing changes.
 *
 * (Stream and launch arguments are checked in test_rt_stream.c.)
 */
#define _GNU_SOURCE
#include "harness.h"

#include <hmm/hmm.h>

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIB (1UL << 20)

static size_t ps(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* A device number that names no device. */
static int bad_dev(void)
{
	int n = hmm_device_count();

	ASSERT_GE(n, 0);
	return n;
}

static void need_no_device(void)
{
	if (hmm_device_count() > 0)
		SKIP("this host has an hmmgpu device");
}

/* Memory that is mapped but not managed. */
static void *plain_map(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	return p;
}

/* An address range with nothing mapped. */
static void *hole(size_t size)
{
	void *p = plain_map(size);

	ASSERT_EQ(munmap(p, size), 0);
	return p;
}

/* --- hmm_malloc / hmm_free ------------------------------------------------ */

TEST(malloc_size_zero_is_einval)
{
	ASSERT_ERRNO(hmm_malloc(0) ? 0 : -1, EINVAL);
}

TEST(malloc_impossible_size_is_enomem)
{
	ASSERT_ERRNO(hmm_malloc(SIZE_MAX) ? 0 : -1, ENOMEM);
	ASSERT_ERRNO(hmm_malloc(SIZE_MAX - ps() + 1) ? 0 : -1, ENOMEM);
	ASSERT_ERRNO(hmm_malloc(SIZE_MAX / 2) ? 0 : -1, ENOMEM);
}

TEST(free_null_is_ok)
{
	ASSERT_EQ(hmm_free(NULL), 0);
}

TEST(free_of_unmanaged_memory_is_einval)
{
	char stack[64];
	void *heap = malloc(100), *m = plain_map(ps());

	ASSERT_EQ(hmm_free(stack), -EINVAL);
	ASSERT_EQ(hmm_free(heap), -EINVAL);
	ASSERT_EQ(hmm_free(m), -EINVAL);
	ASSERT_EQ(hmm_free(hole(ps())), -EINVAL);
	/* still there */
	memset(m, 1, ps());
	free(heap);
	munmap(m, ps());
}

TEST(free_of_registered_memory_is_einval)
{
	char *m = plain_map(4 * ps());

	ASSERT_EQ(hmm_register(m, 4 * ps()), 0);
	ASSERT_EQ(hmm_free(m), -EINVAL);
	ASSERT_EQ(hmm_free(m + 3 * ps()), -EINVAL);
	/* still registered */
	ASSERT_EQ(hmm_unregister(m + ps()), 0);
	ASSERT_EQ(hmm_unregister(m), -EINVAL);
	munmap(m, 4 * ps());
}

TEST(double_free_is_einval)
{
	char *p = hmm_malloc(3 * ps());

	ASSERT_TRUE(p);
	ASSERT_EQ(hmm_free(p + ps()), 0);
	ASSERT_EQ(hmm_free(p), -EINVAL);
	ASSERT_EQ(hmm_free(p + ps()), -EINVAL);
}

/* --- hmm_register / hmm_unregister ---------------------------------------- */

TEST(register_null_or_size_zero_is_einval)
{
	char *m = plain_map(ps());

	ASSERT_EQ(hmm_register(NULL, ps()), -EINVAL);
	ASSERT_EQ(hmm_register(m, 0), -EINVAL);
	/* nothing was registered */
	ASSERT_EQ(hmm_unregister(m), -EINVAL);
	munmap(m, ps());
}

TEST(register_wrapping_range_is_einval)
{
	char *m = plain_map(ps());

	ASSERT_EQ(hmm_register(m, SIZE_MAX), -EINVAL);
	ASSERT_EQ(hmm_register((void *)(UINTPTR_MAX - 10), 100), -EINVAL);
	ASSERT_EQ(hmm_unregister(m), -EINVAL);
	munmap(m, ps());
}

TEST(register_unmapped_memory_is_einval)
{
	char *m = plain_map(3 * ps());

	ASSERT_EQ(hmm_register(hole(ps()), ps()), -EINVAL);
	/* a hole in the middle */
	ASSERT_EQ(munmap(m + ps(), ps()), 0);
	ASSERT_EQ(hmm_register(m, 3 * ps()), -EINVAL);
	ASSERT_EQ(hmm_register(m, ps() + 1), -EINVAL);
	ASSERT_EQ(hmm_unregister(m), -EINVAL);
	munmap(m, 3 * ps());
}

TEST(register_overlap_is_eexist)
{
	char *m = plain_map(8 * ps());
	char *p = hmm_malloc(ps());

	ASSERT_TRUE(p);
	ASSERT_EQ(hmm_register(m + 2 * ps(), 2 * ps()), 0);
	ASSERT_EQ(hmm_register(m + 2 * ps(), 2 * ps()), -EEXIST);
	ASSERT_EQ(hmm_register(m, 3 * ps()), -EEXIST);
	ASSERT_EQ(hmm_register(m + 3 * ps(), 3 * ps()), -EEXIST);
	ASSERT_EQ(hmm_register(m, 8 * ps()), -EEXIST);
	ASSERT_EQ(hmm_register(m + 3 * ps() + 5, 1), -EEXIST);
	/* one byte of the next page after a page-rounded range */
	ASSERT_EQ(hmm_register(m + ps() + 1, ps()), -EEXIST);
	/* hmm_malloc() memory is managed already */
	ASSERT_EQ(hmm_register(p, ps()), -EEXIST);
	/* the neighbours are free */
	ASSERT_EQ(hmm_register(m + ps(), ps()), 0);
	ASSERT_EQ(hmm_register(m + 4 * ps(), ps()), 0);
	ASSERT_EQ(hmm_unregister(m + ps()), 0);
	ASSERT_EQ(hmm_unregister(m + 3 * ps()), 0);
	ASSERT_EQ(hmm_unregister(m + 4 * ps()), 0);
	ASSERT_EQ(hmm_free(p), 0);
	munmap(m, 8 * ps());
}

TEST(unregister_of_unmanaged_or_malloc_memory_is_einval)
{
	char *p = hmm_malloc(ps());
	char *m = plain_map(ps());

	ASSERT_TRUE(p);
	ASSERT_EQ(hmm_unregister(NULL), -EINVAL);
	ASSERT_EQ(hmm_unregister(m), -EINVAL);
	ASSERT_EQ(hmm_unregister(p), -EINVAL);
	/* p is still allocated */
	ASSERT_EQ(hmm_free(p), 0);
	munmap(m, ps());
}

/* --- hmm_devptr ----------------------------------------------------------- */

TEST(devptr_null_or_unmanaged_is_einval)
{
	char *m = plain_map(ps());

	ASSERT_ERRNO(hmm_devptr(NULL, HMM_CPU) ? 0 : -1, EINVAL);
	ASSERT_ERRNO(hmm_devptr(m, HMM_CPU) ? 0 : -1, EINVAL);
	ASSERT_ERRNO(hmm_devptr(hole(ps()), HMM_CPU) ? 0 : -1, EINVAL);
	munmap(m, ps());
}

TEST(devptr_bad_device_is_enodev)
{
	char *p = hmm_malloc(ps());

	ASSERT_TRUE(p);
	ASSERT_ERRNO(hmm_devptr(p, bad_dev()) ? 0 : -1, ENODEV);
	ASSERT_ERRNO(hmm_devptr(p, 1000) ? 0 : -1, ENODEV);
	ASSERT_ERRNO(hmm_devptr(p, -3) ? 0 : -1, ENODEV);
	ASSERT_ERRNO(hmm_devptr(p, INT32_MIN) ? 0 : -1, ENODEV);
	ASSERT_ERRNO(hmm_devptr(p, HMM_LOC_NONE) ? 0 : -1, ENODEV);
	ASSERT_TRUE(hmm_devptr(p, HMM_CPU) == p);
	hmm_free(p);
}

TEST(devptr_without_device_is_enodev)
{
	char *p = hmm_malloc(ps());

	need_no_device();
	ASSERT_TRUE(p);
	ASSERT_ERRNO(hmm_devptr(p, 0) ? 0 : -1, ENODEV);
	hmm_free(p);
}

/* --- hmm_prefetch --------------------------------------------------------- */

TEST(prefetch_null_or_size_zero_is_einval)
{
	char *p = hmm_malloc(ps());

	ASSERT_TRUE(p);
	ASSERT_EQ(hmm_prefetch(NULL, ps(), HMM_CPU), -EINVAL);
	ASSERT_EQ(hmm_prefetch(p, 0, HMM_CPU), -EINVAL);
	ASSERT_EQ(hmm_prefetch(NULL, 0, bad_dev()), -EINVAL);
	hmm_free(p);
}

TEST(prefetch_of_unmanaged_range_is_einval)
{
	char *p = hmm_malloc(2 * ps());
	char *m = plain_map(ps());

	ASSERT_TRUE(p);
	ASSERT_EQ(hmm_prefetch(m, ps(), HMM_CPU), -EINVAL);
	ASSERT_EQ(hmm_prefetch(hole(ps()), ps(), HMM_CPU), -EINVAL);
	/* one byte past the end of the allocation */
	ASSERT_EQ(hmm_prefetch(p, 2 * ps() + 1, HMM_CPU), -EINVAL);
	ASSERT_EQ(hmm_prefetch(p + 2 * ps() - 1, 2, HMM_CPU), -EINVAL);
	ASSERT_EQ(hmm_prefetch(p, SIZE_MAX, HMM_CPU), -EINVAL);
	/* the whole allocation is fine */
	ASSERT_EQ(hmm_prefetch(p, 2 * ps(), HMM_CPU), 0);
	ASSERT_EQ(hmm_prefetch(p + 2 * ps() - 1, 1, HMM_CPU), 0);
	hmm_free(p);
	/* freed */
	ASSERT_EQ(hmm_prefetch(p, 1, HMM_CPU), -EINVAL);
	munmap(m, ps());
}

TEST(prefetch_to_bad_device_is_enodev)
{
	char *p = hmm_malloc(ps());

	ASSERT_TRUE(p);
	ASSERT_EQ(hmm_prefetch(p, ps(), bad_dev()), -ENODEV);
	ASSERT_EQ(hmm_prefetch(p, ps(), 1000), -ENODEV);
	ASSERT_EQ(hmm_prefetch(p, ps(), -3), -ENODEV);
	ASSERT_EQ(hmm_prefetch(p, ps(), HMM_LOC_NONE), -ENODEV);
	hmm_free(p);
}

TEST(prefetch_without_device)
{
	char *p = hmm_malloc(ps());
	int where = 7;

	need_no_device();
	ASSERT_TRUE(p);
	ASSERT_EQ(hmm_prefetch(p, ps(), 0), -ENODEV);
	ASSERT_EQ(hmm_range_get_attr(p, ps(), HMM_ATTR_LAST_PREFETCH_LOCATION,
				     &where, sizeof(where)), 0);
	ASSERT_EQ(where, HMM_LOC_NONE);
	ASSERT_EQ(hmm_prefetch(p, ps(), HMM_CPU), 0);
	hmm_free(p);
}

/* --- hmm_advise ----------------------------------------------------------- */

TEST(advise_null_size_zero_or_unmanaged_is_einval)
{
	char *p = hmm_malloc(ps());
	char *m = plain_map(ps());
	const enum hmm_advice a = HMM_ADVISE_SET_PREFERRED_LOCATION;

	ASSERT_TRUE(p);
	ASSERT_EQ(hmm_advise(NULL, ps(), a, HMM_CPU, 0), -EINVAL);
	ASSERT_EQ(hmm_advise(p, 0, a, HMM_CPU, 0), -EINVAL);
	ASSERT_EQ(hmm_advise(m, ps(), a, HMM_CPU, 0), -EINVAL);
	ASSERT_EQ(hmm_advise(p, ps() + 1, a, HMM_CPU, 0), -EINVAL);
	ASSERT_EQ(hmm_advise(p, SIZE_MAX, a, HMM_CPU, 0), -EINVAL);
	ASSERT_EQ(hmm_advise(p, ps(), a, HMM_CPU, 0), 0);
	hmm_free(p);
	munmap(m, ps());
}

TEST(advise_bad_advice_is_einval)
{
	char *p = hmm_malloc(ps());
	int pref = 0;

	ASSERT_TRUE(p);
	ASSERT_EQ(hmm_advise(p, ps(), (enum hmm_advice)0, HMM_CPU, 0),
		  -EINVAL);
	ASSERT_EQ(hmm_advise(p, ps(), (enum hmm_advice)11, HMM_CPU, 0),
		  -EINVAL);
	ASSERT_EQ(hmm_advise(p, ps(), (enum hmm_advice)-1, HMM_CPU, 0),
		  -EINVAL);
	/* a value with advice that takes none */
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_SET_PREFERRED_LOCATION,
			     HMM_CPU, 1), -EINVAL);
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_UNSET_PREFERRED_LOCATION,
			     HMM_CPU, 4096), -EINVAL);
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_SET_REMOTE_ACCESS, 0, 1),
		  -EINVAL);
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_UNSET_REMOTE_ACCESS, 0, 1),
		  -EINVAL);
	/* remote access by the CPU means nothing */
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_SET_REMOTE_ACCESS, HMM_CPU,
			     0), -EINVAL);
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_UNSET_REMOTE_ACCESS, HMM_CPU,
			     0), -EINVAL);
	/* nothing was recorded */
	ASSERT_EQ(hmm_range_get_attr(p, ps(), HMM_ATTR_PREFERRED_LOCATION,
				     &pref, sizeof(pref)), 0);
	ASSERT_EQ(pref, HMM_LOC_NONE);
	hmm_free(p);
}

TEST(advise_bad_granularity_is_einval)
{
	static const uint64_t bad[] = { 1, 512, 2048, 4095, 4097, 12288,
					65535, 3UL << 20, 4UL << 20,
					1ULL << 40, UINT64_MAX };
	char *p = hmm_malloc(ps());
	uint64_t g = 1;

	ASSERT_TRUE(p);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_FAULT_GRANULARITY, 0,
				     bad[i]), -EINVAL);
	ASSERT_EQ(hmm_range_get_attr(p, ps(), HMM_ATTR_FAULT_GRANULARITY, &g,
				     sizeof(g)), 0);
	ASSERT_EQ(g, 0);
	/* the limits themselves are fine, and 0 (driver default) */
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_FAULT_GRANULARITY, 0, 4096),
		  0);
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_FAULT_GRANULARITY, 0,
			     2UL << 20), 0);
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_FAULT_GRANULARITY, 0, 0), 0);
	hmm_free(p);
}

TEST(advise_bad_device_is_enodev)
{
	char *p = hmm_malloc(ps());

	ASSERT_TRUE(p);
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_SET_PREFERRED_LOCATION,
			     bad_dev(), 0), -ENODEV);
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_SET_PREFERRED_LOCATION, -7,
			     0), -ENODEV);
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_SET_PREFERRED_LOCATION,
			     HMM_LOC_NONE, 0), -ENODEV);
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_SET_REMOTE_ACCESS,
			     bad_dev(), 0), -ENODEV);
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_SET_REMOTE_ACCESS, 1000, 0),
		  -ENODEV);
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_UNSET_REMOTE_ACCESS,
			     bad_dev(), 0), -ENODEV);
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_UNSET_REMOTE_ACCESS, -5, 0),
		  -ENODEV);
	hmm_free(p);
}

TEST(advise_without_device)
{
	char *p = hmm_malloc(ps());
	int pref = 7;

	need_no_device();
	ASSERT_TRUE(p);
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_SET_REMOTE_ACCESS, 0, 0),
		  -ENODEV);
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_SET_PREFERRED_LOCATION, 0,
			     0), -ENODEV);
	/* what does not need a device works */
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_SET_PREFERRED_LOCATION,
			     HMM_CPU, 0), 0);
	ASSERT_EQ(hmm_range_get_attr(p, ps(), HMM_ATTR_PREFERRED_LOCATION,
				     &pref, sizeof(pref)), 0);
	ASSERT_EQ(pref, HMM_CPU);
	hmm_free(p);
}

/* --- hmm_range_get_attr --------------------------------------------------- */

TEST(get_attr_null_size_zero_or_unmanaged_is_einval)
{
	char *p = hmm_malloc(ps());
	char *m = plain_map(ps());
	int v;

	ASSERT_TRUE(p);
	ASSERT_EQ(hmm_range_get_attr(NULL, ps(), HMM_ATTR_PREFERRED_LOCATION,
				     &v, sizeof(v)), -EINVAL);
	ASSERT_EQ(hmm_range_get_attr(p, 0, HMM_ATTR_PREFERRED_LOCATION, &v,
				     sizeof(v)), -EINVAL);
	ASSERT_EQ(hmm_range_get_attr(p, ps(), HMM_ATTR_PREFERRED_LOCATION,
				     NULL, sizeof(v)), -EINVAL);
	ASSERT_EQ(hmm_range_get_attr(m, ps(), HMM_ATTR_PREFERRED_LOCATION,
				     &v, sizeof(v)), -EINVAL);
	ASSERT_EQ(hmm_range_get_attr(p, ps() + 1, HMM_ATTR_PREFERRED_LOCATION,
				     &v, sizeof(v)), -EINVAL);
	hmm_free(p);
	munmap(m, ps());
}

TEST(get_attr_bad_attribute_is_einval)
{
	char *p = hmm_malloc(ps());
	uint64_t v[4];

	ASSERT_TRUE(p);
	ASSERT_EQ(hmm_range_get_attr(p, ps(), (enum hmm_attr)0, v, sizeof(int)),
		  -EINVAL);
	ASSERT_EQ(hmm_range_get_attr(p, ps(), (enum hmm_attr)8, v, sizeof(int)),
		  -EINVAL);
	ASSERT_EQ(hmm_range_get_attr(p, ps(), (enum hmm_attr)8, v, 8),
		  -EINVAL);
	hmm_free(p);
}

/*
 * Read-mostly is for every device (@dev not used), takes no value, and
 * reads back as an int: 1 only when the whole range is advised.
 */
TEST(read_mostly_advice_and_attribute)
{
	char *p = hmm_malloc(2 * ps()), *q = hmm_malloc(ps());
	int rm = -1;

	ASSERT_TRUE(p && q);
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_SET_READ_MOSTLY, 0, 1),
		  -EINVAL);
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_UNSET_READ_MOSTLY, 0, 2),
		  -EINVAL);
	ASSERT_EQ(hmm_range_get_attr(p, ps(), HMM_ATTR_READ_MOSTLY, &rm,
				     sizeof(rm)), 0);
	ASSERT_EQ(rm, 0);
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_SET_READ_MOSTLY, 0, 0), 0);
	ASSERT_EQ(hmm_range_get_attr(p, 2 * ps(), HMM_ATTR_READ_MOSTLY, &rm,
				     sizeof(rm)), 0);
	ASSERT_EQ(rm, 1);
	ASSERT_EQ(hmm_range_get_attr(p, ps(), HMM_ATTR_READ_MOSTLY, &rm, 8),
		  -EINVAL);
	ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_UNSET_READ_MOSTLY, HMM_CPU,
			     0), 0);
	ASSERT_EQ(hmm_range_get_attr(p, ps(), HMM_ATTR_READ_MOSTLY, &rm,
				     sizeof(rm)), 0);
	ASSERT_EQ(rm, 0);
	hmm_free(q);
	hmm_free(p);
}

TEST(get_attr_bad_length_is_einval)
{
	char *p = hmm_malloc(ps());
	uint64_t buf[8];
	int32_t *ibuf = (int32_t *)buf;

	ASSERT_TRUE(p);
	for (size_t len = 0; len <= sizeof(buf); len++) {
		int want;

		memset(buf, 0x5a, sizeof(buf));
		want = len == sizeof(int) ? 0 : -EINVAL;
		ASSERT_EQ(hmm_range_get_attr(p, ps(),
					     HMM_ATTR_PREFERRED_LOCATION, buf,
					     len), want);
		ASSERT_EQ(hmm_range_get_attr(p, ps(),
					     HMM_ATTR_LAST_PREFETCH_LOCATION,
					     buf, len), want);
		want = len == sizeof(uint64_t) ? 0 : -EINVAL;
		ASSERT_EQ(hmm_range_get_attr(p, ps(),
					     HMM_ATTR_FAULT_GRANULARITY, buf,
					     len), want);
		want = len && len % sizeof(int) == 0 ? 0 : -EINVAL;
		memset(buf, 0x5a, sizeof(buf));
		ASSERT_EQ(hmm_range_get_attr(p, ps(), HMM_ATTR_REMOTE_ACCESS,
					     buf, len), want);
		/* written exactly len bytes, not one more */
		if (!want) {
			for (size_t i = 0; i < len / sizeof(int); i++)
				ASSERT_EQ(ibuf[i], HMM_LOC_NONE);
		}
		for (size_t i = want ? 0 : len; i < sizeof(buf); i++)
			ASSERT_EQ(((uint8_t *)buf)[i], 0x5a);
	}
	hmm_free(p);
}

/* --- hmm_residency -------------------------------------------------------- */

TEST(residency_null_size_zero_or_no_room_is_einval)
{
	char *p = hmm_malloc(4 * ps());
	int8_t loc[8];

	ASSERT_TRUE(p);
	memset(loc, 0x55, sizeof(loc));
	ASSERT_EQ(hmm_residency(NULL, ps(), loc, 8), -EINVAL);
	ASSERT_EQ(hmm_residency(p, 0, loc, 8), -EINVAL);
	ASSERT_EQ(hmm_residency(p, ps(), NULL, 8), -EINVAL);
	ASSERT_EQ(hmm_residency(p, 4 * ps(), loc, 3), -EINVAL);
	ASSERT_EQ(hmm_residency(p, 4 * ps(), loc, 0), -EINVAL);
	/* 2 bytes across a page boundary are 2 pages */
	ASSERT_EQ(hmm_residency(p + ps() - 1, 2, loc, 1), -EINVAL);
	ASSERT_EQ(hmm_residency(p, SIZE_MAX, loc, 8), -EINVAL);
	for (size_t i = 0; i < sizeof(loc); i++)
		ASSERT_EQ(loc[i], 0x55);
	ASSERT_EQ(hmm_residency(p + ps() - 1, 2, loc, 2), 2);
	ASSERT_EQ(hmm_residency(p, 4 * ps(), loc, 8), 4);
	hmm_free(p);
}

TEST(residency_of_unmapped_range_is_einval)
{
	char *m = plain_map(3 * ps());
	int8_t loc[3];

	ASSERT_EQ(hmm_residency(hole(ps()), ps(), loc, 3), -EINVAL);
	ASSERT_EQ(munmap(m + 2 * ps(), ps()), 0);
	ASSERT_EQ(hmm_residency(m, 3 * ps(), loc, 3), -EINVAL);
	ASSERT_EQ(hmm_residency(m, 2 * ps(), loc, 3), 2);
	munmap(m, 2 * ps());
}

TEST(residency_into_read_only_memory_is_efault)
{
	char *p = hmm_malloc(4 * ps());
	int8_t *ro = mmap(NULL, ps(), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);

	ASSERT_TRUE(p);
	ASSERT_TRUE(ro != MAP_FAILED);
	ASSERT_EQ(hmm_residency(p, 4 * ps(), ro, 4), -EFAULT);
	hmm_free(p);
	munmap(ro, ps());
}

/* --- hmm_get_stats -------------------------------------------------------- */

TEST(get_stats_null_is_einval)
{
	ASSERT_EQ(hmm_get_stats(HMM_CPU, NULL), -EINVAL);
	ASSERT_EQ(hmm_get_stats(0, NULL), -EINVAL);
}

TEST(get_stats_bad_device_is_enodev)
{
	struct hmm_stats st;

	ASSERT_EQ(hmm_get_stats(bad_dev(), &st), -ENODEV);
	ASSERT_EQ(hmm_get_stats(1000, &st), -ENODEV);
	ASSERT_EQ(hmm_get_stats(-3, &st), -ENODEV);
	ASSERT_EQ(hmm_get_stats(HMM_LOC_NONE, &st), -ENODEV);
	ASSERT_EQ(hmm_get_stats(INT32_MIN, &st), -ENODEV);
}

TEST(get_stats_of_the_cpu_works_without_device)
{
	struct hmm_stats st;

	memset(&st, 0xff, sizeof(st));
	ASSERT_EQ(hmm_get_stats(HMM_CPU, &st), 0);
	ASSERT_EQ(st.cpu_faults, 0);
	ASSERT_EQ(st.device_faults, 0);
	ASSERT_EQ(st.prefetch_calls, 0);
	ASSERT_EQ(st.launch_cpu_faults, 0);
	ASSERT_EQ(st.thrash_pins, 0);
	ASSERT_EQ(st.thrash_remote, 0);
	for (size_t i = 0; i < sizeof(st.reserved) / sizeof(st.reserved[0]);
	     i++)
		ASSERT_EQ(st.reserved[i], 0);
}

TEST_MAIN()
