// SPDX-License-Identifier: MIT
/*
 * test_rt_memops.c - hmm_memcpy(), hmm_memset() and their queued forms,
 * hmm_discard(), hmm_prefetch_batch() and hmm_pointer_get_attributes(),
 * on a host with no hmmgpu device: between managed, registered and plain
 * memory; bad pointers are errors, not crashes; stream order.  In the
 * VM, tests/kernel/test_rt_memory.c runs them on device-resident memory.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <hmm/hmm.h>

#include <semaphore.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIB (1UL << 20)

static size_t ps(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static void *plain_map(size_t size, int prot)
{
	void *p = mmap(NULL, size, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	return p;
}

static void fill(void *p, size_t size, unsigned int seed)
{
	unsigned char *b = p;

	for (size_t i = 0; i < size; i++)
		b[i] = (unsigned char)(i * 131 + seed * 7 + (i >> 12));
}

static ssize_t check(const void *p, size_t size, unsigned int seed)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < size; i++) {
		if (b[i] != (unsigned char)(i * 131 + seed * 7 + (i >> 12)))
			return (ssize_t)i;
	}
	return -1;
}

static ssize_t check_byte(const void *p, size_t size, unsigned char v)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < size; i++) {
		if (b[i] != v)
			return (ssize_t)i;
	}
	return -1;
}

static struct hmm_stream *cpu_stream(void)
{
	struct hmm_stream *s;

	ASSERT_EQ(hmm_stream_create(&s, HMM_CPU), 0);
	return s;
}

/* --- hmm_memcpy / hmm_memset --------------------------------------------- */

/* Every pair of kinds: managed, registered, plain; unaligned offsets. */
TEST(memcpy_between_every_kind_of_memory)
{
	size_t size = 3 * ps() + 123;
	char *kinds[3];

	kinds[0] = hmm_malloc(size + 64);
	kinds[1] = plain_map(size + 64 + ps(), PROT_READ | PROT_WRITE);
	ASSERT_EQ(hmm_register(kinds[1], size + 64), 0);
	kinds[2] = malloc(size + 64);
	ASSERT_TRUE(kinds[0] && kinds[2]);
	for (int from = 0; from < 3; from++) {
		for (int to = 0; to < 3; to++) {
			if (from == to)
				continue;
			fill(kinds[from] + 7, size, (unsigned int)(from * 3 + to));
			memset(kinds[to], 0, size + 64);
			ASSERT_EQ(hmm_memcpy(kinds[to] + 33, kinds[from] + 7,
					     size), 0);
			ASSERT_EQ(check(kinds[to] + 33, size,
					(unsigned int)(from * 3 + to)), -1);
			/* nothing around it */
			ASSERT_EQ(check_byte(kinds[to], 33, 0), -1);
			ASSERT_EQ(check_byte(kinds[to] + 33 + size, 31, 0), -1);
		}
	}
	ASSERT_EQ(hmm_free(kinds[0]), 0);
	ASSERT_EQ(hmm_unregister(kinds[1]), 0);
	munmap(kinds[1], size + 64 + ps());
	free(kinds[2]);
}

TEST(memset_sets_exactly_the_bytes)
{
	size_t size = 2 * MIB + 3;
	char *p = hmm_malloc(size + 10);

	ASSERT_TRUE(p);
	ASSERT_EQ(hmm_memset(p + 5, 0xa5, size), 0);
	ASSERT_EQ(check_byte(p, 5, 0), -1);
	ASSERT_EQ(check_byte(p + 5, size, 0xa5), -1);
	ASSERT_EQ(check_byte(p + 5 + size, 5, 0), -1);
	/* the value is taken as an unsigned char, as memset() does */
	ASSERT_EQ(hmm_memset(p, 0x1ff, 4), 0);
	ASSERT_EQ(check_byte(p, 4, 0xff), -1);
	ASSERT_EQ(hmm_free(p), 0);
}

/* Bad pointers are errors, never a crash, and nothing is written. */
TEST(memcpy_and_memset_of_bad_memory_are_errors)
{
	char *m = plain_map(4 * ps(), PROT_READ | PROT_WRITE);
	char *ro = plain_map(ps(), PROT_READ);
	char *none = plain_map(ps(), PROT_NONE);

	ASSERT_EQ(munmap(m + 2 * ps(), ps()), 0); /* a hole */
	fill(m, ps(), 1);
	ASSERT_EQ(hmm_memcpy(NULL, m, 1), -EINVAL);
	ASSERT_EQ(hmm_memcpy(m, NULL, 1), -EINVAL);
	ASSERT_EQ(hmm_memset(NULL, 0, 1), -EINVAL);
	ASSERT_EQ(hmm_memcpy((void *)(UINTPTR_MAX - 10), m, 100), -EINVAL);
	/* overlapping ranges */
	ASSERT_EQ(hmm_memcpy(m + 10, m, 100), -EINVAL);
	/* nothing to do */
	ASSERT_EQ(hmm_memcpy(m + ps(), m, 0), 0);
	ASSERT_EQ(hmm_memset(m, 0, 0), 0);
	/* into and out of a hole */
	ASSERT_EQ(hmm_memcpy(m + ps() + ps() / 2, m, ps()), -EFAULT);
	ASSERT_EQ(check_byte(m + ps(), ps(), 0), -1);
	ASSERT_EQ(hmm_memcpy(m, m + 2 * ps(), 10), -EFAULT);
	ASSERT_EQ(hmm_memset(m + 3 * ps() - 1, 1, 2), -EFAULT);
	/* read-only and inaccessible memory */
	ASSERT_EQ(hmm_memcpy(ro, m, 10), -EFAULT);
	ASSERT_EQ(hmm_memset(ro, 1, 1), -EFAULT);
	ASSERT_EQ(hmm_memcpy(m, ro, 10), 0);
	ASSERT_EQ(hmm_memcpy(m, none, 10), -EFAULT);
	ASSERT_EQ(check_byte(m, 10, 0), -1);
	munmap(m, 4 * ps());
	munmap(ro, ps());
	munmap(none, ps());
}

/* Queued forms run in stream order, after the work before them. */
TEST(memcpy_and_memset_async_in_stream_order)
{
	struct hmm_stream *s = cpu_stream();
	size_t size = MIB;
	char *a = hmm_malloc(size), *b = hmm_malloc(size), *c = malloc(size);

	ASSERT_TRUE(a && b && c);
	ASSERT_EQ(hmm_memset_async(a, 0x11, size, s), 0);
	ASSERT_EQ(hmm_memcpy_async(b, a, size, s), 0);
	ASSERT_EQ(hmm_memset_async(a, 0x22, size / 2, s), 0);
	ASSERT_EQ(hmm_memcpy_async(c, a, size, s), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(check_byte(b, size, 0x11), -1);
	ASSERT_EQ(check_byte(c, size / 2, 0x22), -1);
	ASSERT_EQ(check_byte(c + size / 2, size / 2, 0x11), -1);
	/* checked when queued */
	{
		char *hole = plain_map(ps(), PROT_READ | PROT_WRITE);

		ASSERT_EQ(munmap(hole, ps()), 0);
		ASSERT_EQ(hmm_memcpy_async(c, hole, 10, s), -EFAULT);
		ASSERT_EQ(hmm_memcpy_async(hole, c, 10, s), -EFAULT);
	}
	ASSERT_EQ(hmm_memset_async(NULL, 0, 1, s), -EINVAL);
	/* a NULL stream: now */
	ASSERT_EQ(hmm_memset_async(a, 0x33, 1, NULL), 0);
	ASSERT_EQ(a[0], 0x33);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	/* a dead stream */
	ASSERT_EQ(hmm_memset_async(a, 0, 1, s), -EINVAL);
	ASSERT_EQ(hmm_free(a), 0);
	ASSERT_EQ(hmm_free(b), 0);
	free(c);
}

static void gate_cb(struct hmm_stream *s, int status, void *data)
{
	(void)s;
	(void)status;
	while (sem_wait(data))
		;
}

/* Memory unmapped between queueing and running: the stream's -EFAULT. */
TEST(memcpy_async_of_memory_unmapped_meanwhile)
{
	struct hmm_stream *s = cpu_stream();
	char *m = plain_map(2 * ps(), PROT_READ | PROT_WRITE);
	char *d = plain_map(2 * ps(), PROT_READ | PROT_WRITE);
	sem_t gate;

	ASSERT_EQ(sem_init(&gate, 0, 0), 0);
	/* the stream waits until the memory is gone */
	ASSERT_EQ(hmm_stream_add_callback(s, gate_cb, &gate), 0);
	ASSERT_EQ(hmm_memcpy_async(d, m, 2 * ps(), s), 0);
	ASSERT_EQ(munmap(m, 2 * ps()), 0);
	ASSERT_EQ(sem_post(&gate), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), -EFAULT);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	sem_destroy(&gate);
	munmap(d, 2 * ps());
}

/* --- hmm_discard ------------------------------------------------------- */

TEST(discard_drops_whole_pages_to_zeros)
{
	size_t size = 8 * ps();
	char *p = hmm_malloc(size), *m, *ref = malloc(size);

	ASSERT_TRUE(p && ref);
	fill(p, size, 5);
	fill(ref, size, 5);
	/* from the middle of page 1 to the middle of page 6: pages 2-5 go */
	ASSERT_EQ(hmm_discard(p + ps() + 100, 5 * ps()), 0);
	ASSERT_EQ(memcmp(p, ref, 2 * ps()), 0);
	ASSERT_EQ(check_byte(p + 2 * ps(), 4 * ps(), 0), -1);
	ASSERT_EQ(memcmp(p + 6 * ps(), ref + 6 * ps(), 2 * ps()), 0);
	/* writable again, like new memory */
	p[3 * ps()] = 1;
	ASSERT_EQ(p[3 * ps()], 1);
	/* less than a whole page: nothing */
	ASSERT_EQ(hmm_discard(p + 1, ps() - 2), 0);
	ASSERT_EQ(memcmp(p, ref, ps()), 0);
	ASSERT_EQ(hmm_free(p), 0);
	free(ref);

	/* only managed memory */
	m = plain_map(ps(), PROT_READ | PROT_WRITE);
	m[0] = 7;
	ASSERT_EQ(hmm_discard(m, ps()), -EINVAL);
	ASSERT_EQ(m[0], 7);
	ASSERT_EQ(hmm_discard(NULL, ps()), -EINVAL);
	/* registered memory is managed too */
	ASSERT_EQ(hmm_register(m, ps()), 0);
	ASSERT_EQ(hmm_discard(m, ps()), 0);
	ASSERT_EQ(m[0], 0);
	ASSERT_EQ(hmm_unregister(m), 0);
	munmap(m, ps());
}

TEST(discard_of_a_moved_range_is_estale)
{
	char *p = hmm_malloc(2 * ps());
	char *to = plain_map(2 * ps(), PROT_READ | PROT_WRITE);
	char *other;

	ASSERT_TRUE(p);
	ASSERT_TRUE(mremap(p, 2 * ps(), 2 * ps(),
			   MREMAP_MAYMOVE | MREMAP_FIXED, to) == to);
	other = mmap(p, 2 * ps(), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ASSERT_TRUE(other == p);
	other[0] = 9;
	ASSERT_EQ(hmm_discard(p, 2 * ps()), -ESTALE);
	ASSERT_EQ(other[0], 9);
	ASSERT_EQ(hmm_free(p), -ESTALE);
	munmap(other, 2 * ps());
	munmap(to, 2 * ps());
}

/* --- hmm_discard_batch --------------------------------------------------- */

TEST(discard_batch_checks_all_first_and_keeps_stream_order)
{
	size_t size = 4 * ps();
	char *a = hmm_malloc(size), *b = hmm_malloc(size), *copy = malloc(size);
	char plain[64], *ref = malloc(size);
	void *ptrs[3] = { a, b, plain };
	size_t sizes[3] = { size, size, sizeof(plain) };
	struct hmm_stream *s = cpu_stream();

	ASSERT_TRUE(a && b && copy && ref);
	fill(a, size, 11);
	fill(ref, size, 11);
	fill(b, size, 12);
	/* the third is not managed: nothing is dropped */
	ASSERT_EQ(hmm_discard_batch(ptrs, sizes, 3, NULL), -EINVAL);
	ASSERT_EQ(hmm_discard_batch(ptrs, sizes, 3, s), -EINVAL);
	ASSERT_EQ(memcmp(a, ref, size), 0);
	ASSERT_EQ(hmm_discard_batch(NULL, sizes, 2, NULL), -EINVAL);
	ASSERT_EQ(hmm_discard_batch(ptrs, NULL, 2, NULL), -EINVAL);
	ASSERT_EQ(hmm_discard_batch(ptrs, sizes, 0, NULL), -EINVAL);

	/* in stream order: after the fill, before the copy */
	ASSERT_EQ(hmm_memset_async(a, 7, size, s), 0);
	ASSERT_EQ(hmm_discard_batch(ptrs, sizes, 2, s), 0);
	ptrs[0] = NULL; /* the arrays were copied */
	ASSERT_EQ(hmm_memcpy_async(copy, a, size, s), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(check_byte(copy, size, 0), -1);
	ASSERT_EQ(check_byte(b, size, 0), -1);

	/* now, without a stream */
	fill(a, size, 13);
	ptrs[0] = a;
	ASSERT_EQ(hmm_discard_batch(ptrs, sizes, 1, NULL), 0);
	ASSERT_EQ(check_byte(a, size, 0), -1);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	ASSERT_EQ(hmm_free(a), 0);
	ASSERT_EQ(hmm_free(b), 0);
	free(copy);
	free(ref);
}

/* --- hmm_range_get_attrs ------------------------------------------------- */

TEST(range_get_attrs_reads_several_at_once)
{
	char *p = hmm_malloc(2 * ps());
	enum hmm_attr attrs[4] = {
		HMM_ATTR_PREFERRED_LOCATION, HMM_ATTR_FAULT_GRANULARITY,
		HMM_ATTR_REMOTE_ACCESS, HMM_ATTR_LAST_PREFETCH_LOCATION,
	};
	int preferred = 5, remote[2] = { 5, 5 }, last = 5;
	uint64_t gran = 5;
	void *outs[4] = { &preferred, &gran, remote, &last };
	size_t lens[4] = { sizeof(int), sizeof(uint64_t), sizeof(remote),
			   sizeof(int) };

	ASSERT_TRUE(p);
	ASSERT_EQ(hmm_advise(p, 2 * ps(), HMM_ADVISE_SET_PREFERRED_LOCATION,
			     HMM_CPU, 0), 0);
	ASSERT_EQ(hmm_advise(p, 2 * ps(), HMM_ADVISE_FAULT_GRANULARITY, 0,
			     128 << 10), 0);
	ASSERT_EQ(hmm_prefetch(p, 2 * ps(), HMM_CPU), 0);
	ASSERT_EQ(hmm_range_get_attrs(p, 2 * ps(), attrs, outs, lens, 4), 0);
	ASSERT_EQ(preferred, HMM_CPU);
	ASSERT_EQ(gran, 128 << 10);
	ASSERT_EQ(remote[0], HMM_LOC_NONE);
	ASSERT_EQ(remote[1], HMM_LOC_NONE);
	ASSERT_EQ(last, HMM_CPU);

	/* one bad length or attribute: nothing is written */
	preferred = 5;
	lens[3] = 1;
	ASSERT_EQ(hmm_range_get_attrs(p, 2 * ps(), attrs, outs, lens, 4),
		  -EINVAL);
	ASSERT_EQ(preferred, 5);
	lens[3] = sizeof(int);
	attrs[1] = (enum hmm_attr)99;
	ASSERT_EQ(hmm_range_get_attrs(p, 2 * ps(), attrs, outs, lens, 4),
		  -EINVAL);
	ASSERT_EQ(preferred, 5);
	attrs[1] = HMM_ATTR_FAULT_GRANULARITY;
	outs[2] = NULL;
	ASSERT_EQ(hmm_range_get_attrs(p, 2 * ps(), attrs, outs, lens, 4),
		  -EINVAL);
	outs[2] = remote;
	ASSERT_EQ(hmm_range_get_attrs(p, 2 * ps(), attrs, outs, lens, 0),
		  -EINVAL);
	ASSERT_EQ(hmm_range_get_attrs(p, 2 * ps(), NULL, outs, lens, 4),
		  -EINVAL);
	ASSERT_EQ(hmm_range_get_attrs(p, 2 * ps(), attrs, NULL, lens, 4),
		  -EINVAL);
	ASSERT_EQ(hmm_range_get_attrs(p, 2 * ps(), attrs, outs, NULL, 4),
		  -EINVAL);
	ASSERT_EQ(hmm_range_get_attrs(NULL, 2 * ps(), attrs, outs, lens, 4),
		  -EINVAL);
	/* not managed */
	ASSERT_EQ(hmm_range_get_attrs(&last, sizeof(last), attrs, outs, lens,
				      4), -EINVAL);
	ASSERT_EQ(preferred, 5);
	ASSERT_EQ(hmm_free(p), 0);
}

/* --- hmm_prefetch_batch -------------------------------------------------- */

TEST(prefetch_batch_checks_all_first)
{
	char *a = hmm_malloc(MIB), *b = hmm_malloc(3 * ps());
	char plain[64];
	const void *ptrs[3] = { a, b + 10, plain };
	size_t sizes[3] = { MIB, 100, sizeof(plain) };
	struct hmm_stream *s = cpu_stream();
	struct hmm_stats st0, st1;
	int where;

	ASSERT_TRUE(a && b);
	ASSERT_EQ(hmm_get_stats(HMM_CPU, &st0), 0);
	/* the third is not managed: nothing is done */
	ASSERT_EQ(hmm_prefetch_batch(ptrs, sizes, 3, HMM_CPU, NULL), -EINVAL);
	ASSERT_EQ(hmm_prefetch_batch(ptrs, sizes, 3, HMM_CPU, s), -EINVAL);
	ASSERT_EQ(hmm_get_stats(HMM_CPU, &st1), 0);
	ASSERT_EQ(st1.prefetch_calls, st0.prefetch_calls);
	ASSERT_EQ(hmm_prefetch_batch(NULL, sizes, 2, HMM_CPU, NULL), -EINVAL);
	ASSERT_EQ(hmm_prefetch_batch(ptrs, NULL, 2, HMM_CPU, NULL), -EINVAL);
	ASSERT_EQ(hmm_prefetch_batch(ptrs, sizes, 0, HMM_CPU, NULL), -EINVAL);
	ASSERT_EQ(hmm_prefetch_batch(ptrs, sizes, 2, 0, NULL), -ENODEV);

	ASSERT_EQ(hmm_prefetch_batch(ptrs, sizes, 2, HMM_CPU, NULL), 0);
	ASSERT_EQ(hmm_get_stats(HMM_CPU, &st1), 0);
	ASSERT_EQ(st1.prefetch_calls, st0.prefetch_calls + 2);
	ASSERT_EQ(hmm_range_get_attr(b, 3 * ps(),
				     HMM_ATTR_LAST_PREFETCH_LOCATION, &where,
				     sizeof(where)), 0);
	ASSERT_EQ(where, HMM_CPU);
	/* queued: the arrays may change once the call has returned */
	ASSERT_EQ(hmm_prefetch_batch(ptrs, sizes, 2, HMM_CPU, s), 0);
	ptrs[0] = NULL;
	sizes[1] = 0;
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(hmm_get_stats(HMM_CPU, &st0), 0);
	ASSERT_EQ(st0.prefetch_calls, st1.prefetch_calls + 2);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	ASSERT_EQ(hmm_free(a), 0);
	ASSERT_EQ(hmm_free(b), 0);
}

/* --- hmm_pointer_get_attributes ---------------------------------------- */

TEST(pointer_attributes_of_every_kind)
{
	struct hmm_pointer_attributes at;
	char *p = hmm_malloc(3 * ps() + 1);
	char *page = plain_map(ps(), PROT_READ | PROT_WRITE);
	char local;

	ASSERT_TRUE(p);
	ASSERT_EQ(hmm_pointer_get_attributes(p + 5, HMM_CPU, &at), 0);
	ASSERT_EQ(at.type, HMM_MEMORY_MANAGED);
	ASSERT_EQ(at.device, HMM_CPU);
	ASSERT_TRUE(at.base == p && at.size == 4 * ps());
	ASSERT_TRUE(at.range_base == p && at.range_size == 4 * ps());
	ASSERT_TRUE(at.devptr == p + 5);

	ASSERT_EQ(hmm_register(page + 10, 20), 0);
	ASSERT_EQ(hmm_register(page + 100, 50), 0);
	ASSERT_EQ(hmm_pointer_get_attributes(page + 120, HMM_CPU, &at), 0);
	ASSERT_EQ(at.type, HMM_MEMORY_REGISTERED);
	ASSERT_TRUE(at.base == page + 100 && at.size == 50);
	ASSERT_TRUE(at.range_base == page && at.range_size == ps());
	/* between the two: the pages, no registration */
	ASSERT_EQ(hmm_pointer_get_attributes(page + 60, HMM_CPU, &at), 0);
	ASSERT_EQ(at.type, HMM_MEMORY_REGISTERED);
	ASSERT_TRUE(at.base == page && at.size == ps());
	ASSERT_EQ(hmm_unregister(page + 10), 0);
	ASSERT_EQ(hmm_unregister(page + 100), 0);

	memset(&at, 0xff, sizeof(at));
	ASSERT_EQ(hmm_pointer_get_attributes(&local, HMM_CPU, &at), 0);
	ASSERT_EQ(at.type, HMM_MEMORY_UNMANAGED);
	ASSERT_TRUE(at.base == NULL && at.size == 0 && at.devptr == NULL);
	ASSERT_EQ(at.reserved[0], 0);

	ASSERT_EQ(hmm_pointer_get_attributes(NULL, HMM_CPU, &at), -EINVAL);
	ASSERT_EQ(hmm_pointer_get_attributes(p, HMM_CPU, NULL), -EINVAL);
	ASSERT_EQ(hmm_pointer_get_attributes(p, 0, &at), -ENODEV);
	ASSERT_EQ(hmm_pointer_get_attributes(p, -7, &at), -ENODEV);
	ASSERT_EQ(hmm_free(p), 0);
	munmap(page, ps());
}

TEST_MAIN()
