// SPDX-License-Identifier: MIT
/*
 * test_rt_memory_host.c - libhmm's managed memory on a host with no
 * hmmgpu device: the interval map (every address of a range names it,
 * the byte after it does not), hmm_malloc() alignment and zero fill,
 * hmm_register() of what the application has (shared and file memory
 * too; refusal of special mappings), advice and attributes, residency through mincore(), the
 * host fallbacks, and many threads allocating and freeing at once.
 *
 * Data is checked with a pattern that depends on the allocation and the
 * offset, so that two allocations handed the same memory are caught.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <hmm/hmm.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define KIB (1UL << 10)
#define MIB (1UL << 20)

static size_t ps(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static size_t round_pages(size_t n)
{
	return (n + ps() - 1) & ~(ps() - 1);
}

static void need_no_device(void)
{
	if (hmm_device_count() > 0)
		SKIP("this host has an hmmgpu device");
}

/* Whether @p is in a managed range: hmm_devptr(p, HMM_CPU) is p. */
static bool managed(const void *p)
{
	void *d;

	errno = 0;
	d = hmm_devptr(p, HMM_CPU);
	if (d) {
		ASSERT_TRUE(d == p);
		return true;
	}
	ASSERT_EQ(errno, EINVAL);
	return false;
}

static uint8_t pattern(uint64_t seed, size_t off)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL + off / 8 + 1;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 29;
	return (uint8_t)(x >> (8 * (off % 8)));
}

static void fill(void *p, size_t size, uint64_t seed)
{
	uint8_t *b = p;

	for (size_t i = 0; i < size; i++)
		b[i] = pattern(seed, i);
}

/* -1 when @size bytes at @p hold the pattern of @seed, else the offset. */
static ssize_t check(const void *p, size_t size, uint64_t seed)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < size; i++) {
		if (b[i] != pattern(seed, i))
			return (ssize_t)i;
	}
	return -1;
}

static ssize_t check_zero(const void *p, size_t size)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < size; i++) {
		if (b[i])
			return (ssize_t)i;
	}
	return -1;
}

/* Whether [p, p + size) is mapped (mincore() says ENOMEM for holes). */
static bool mapped(const void *p, size_t size)
{
	size_t n = (size + ps() - 1) / ps();
	unsigned char *vec = malloc(n);
	int ret;

	ASSERT_TRUE(vec);
	ret = mincore((void *)p, size, vec);
	free(vec);
	if (ret)
		ASSERT_EQ(errno, ENOMEM);
	return !ret;
}

static void *plain_map(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	return p;
}

/* --- the interval map ----------------------------------------------------- */

/*
 * Every address of an allocation names it: the first byte, the last byte
 * asked for, the last byte of its last page; the byte after is not.
 */
TEST(lookup_inside_and_at_the_edges)
{
	static const size_t sizes[] = { 1, 100, 4096, 4097, 65536, 2 * MIB - 1,
					2 * MIB, 2 * MIB + 1, 5 * MIB + 3 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t size = sizes[i], len = round_pages(size);
		char *p = hmm_malloc(size);

		ASSERT_TRUE(p);
		ASSERT_TRUE(managed(p));
		ASSERT_TRUE(managed(p + size / 2));
		ASSERT_TRUE(managed(p + size - 1));
		ASSERT_TRUE(managed(p + len - 1));
		ASSERT_FALSE(managed(p + len));
		ASSERT_FALSE(managed(p - 1));
		/* a range must be managed in every byte */
		ASSERT_EQ(hmm_prefetch(p, len, HMM_CPU), 0);
		ASSERT_EQ(hmm_prefetch(p + len - 1, 1, HMM_CPU), 0);
		ASSERT_EQ(hmm_prefetch(p, len + 1, HMM_CPU), -EINVAL);
		ASSERT_EQ(hmm_prefetch(p - 1, 2, HMM_CPU), -EINVAL);
		ASSERT_EQ(hmm_free(p), 0);
		ASSERT_FALSE(managed(p));
		ASSERT_FALSE(managed(p + len - 1));
	}
}

/* Registered ranges between unmanaged pages: exact edges both sides. */
TEST(lookup_at_the_edges_of_registered_ranges)
{
	char *m = plain_map(16 * ps());

	/* [2, 4) and [4, 5) adjacent, [7, 10) alone; 100 bytes into page 7 */
	ASSERT_EQ(hmm_register(m + 2 * ps(), 2 * ps()), 0);
	ASSERT_EQ(hmm_register(m + 4 * ps() + 10, 20), 0);
	ASSERT_EQ(hmm_register(m + 7 * ps() + 100, 3 * ps() - 100), 0);

	ASSERT_FALSE(managed(m + 2 * ps() - 1));
	ASSERT_TRUE(managed(m + 2 * ps()));
	ASSERT_TRUE(managed(m + 4 * ps() - 1));
	ASSERT_TRUE(managed(m + 4 * ps()));
	ASSERT_TRUE(managed(m + 5 * ps() - 1));
	ASSERT_FALSE(managed(m + 5 * ps()));
	ASSERT_FALSE(managed(m + 7 * ps() - 1));
	ASSERT_TRUE(managed(m + 7 * ps())); /* rounded out to the page */
	ASSERT_TRUE(managed(m + 10 * ps() - 1));
	ASSERT_FALSE(managed(m + 10 * ps()));

	/* ranges spanning adjacent managed ranges are managed */
	ASSERT_EQ(hmm_prefetch(m + 2 * ps(), 3 * ps(), HMM_CPU), 0);
	ASSERT_EQ(hmm_prefetch(m + 2 * ps(), 3 * ps() + 1, HMM_CPU), -EINVAL);
	ASSERT_EQ(hmm_prefetch(m + 4 * ps(), 4 * ps(), HMM_CPU), -EINVAL);

	/* unregister by an interior address of the last page */
	ASSERT_EQ(hmm_unregister(m + 4 * ps() + 4000 % ps()), 0);
	ASSERT_FALSE(managed(m + 4 * ps()));
	ASSERT_TRUE(managed(m + 4 * ps() - 1));
	ASSERT_EQ(hmm_unregister(m + 3 * ps()), 0);
	ASSERT_EQ(hmm_unregister(m + 9 * ps()), 0);
	for (size_t off = 0; off < 16 * ps(); off += ps() / 2)
		ASSERT_FALSE(managed(m + off));
	munmap(m, 16 * ps());
}

/* Many ranges at once: each address names its own, in any order. */
TEST(lookup_among_many_allocations)
{
	enum { N = 500 };
	char **p = calloc(N, sizeof(*p));
	size_t *size = calloc(N, sizeof(*size));

	ASSERT_TRUE(p && size);
	for (int i = 0; i < N; i++) {
		size[i] = 1 + (size_t)i * 977 % (64 * KIB);
		p[i] = hmm_malloc(size[i]);
		ASSERT_TRUE(p[i]);
		fill(p[i], size[i], (uint64_t)i);
	}
	for (int i = 0; i < N; i++) {
		ASSERT_TRUE(managed(p[i] + size[i] - 1));
		ASSERT_EQ(check(p[i], size[i], (uint64_t)i), -1);
	}
	/* free every other one, by its last byte */
	for (int i = 0; i < N; i += 2)
		ASSERT_EQ(hmm_free(p[i] + size[i] - 1), 0);
	for (int i = 0; i < N; i++) {
		ASSERT_EQ(managed(p[i]), i % 2 == 1);
		if (i % 2)
			ASSERT_EQ(check(p[i], size[i], (uint64_t)i), -1);
		else
			ASSERT_EQ(hmm_free(p[i]), -EINVAL);
	}
	for (int i = 1; i < N; i += 2)
		ASSERT_EQ(hmm_free(p[i] + size[i] / 2), 0);
	free(p);
	free(size);
}

TEST(free_by_interior_pointer_unmaps_all_of_it)
{
	size_t size = 3 * MIB + 5;
	char *p = hmm_malloc(size);

	ASSERT_TRUE(p);
	fill(p, size, 3);
	ASSERT_EQ(hmm_free(p + 2 * MIB + 7), 0);
	ASSERT_FALSE(mapped(p, ps()));
	ASSERT_FALSE(mapped(p + round_pages(size) - ps(), ps()));
	ASSERT_FALSE(managed(p));
	ASSERT_EQ(hmm_free(p), -EINVAL);
	ASSERT_EQ(hmm_free(p + size - 1), -EINVAL);
}

/* --- hmm_malloc ----------------------------------------------------------- */

TEST(malloc_alignment)
{
	static const size_t sizes[] = { 1, 4095, 4096, 4097, MIB, 2 * MIB - 1,
					2 * MIB, 2 * MIB + 1, 3 * MIB,
					17 * MIB + 12345, 64 * MIB };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uintptr_t align = sizes[i] >= 2 * MIB ? 2 * MIB : ps();
		char *p[4];

		/* several in a row: the trimming leaves no stray mapping */
		for (int j = 0; j < 4; j++) {
			p[j] = hmm_malloc(sizes[i]);
			ASSERT_TRUE(p[j]);
			ASSERT_EQ((uintptr_t)p[j] % align, 0);
			ASSERT_TRUE(mapped(p[j], round_pages(sizes[i])));
			p[j][sizes[i] - 1] = 2;
			p[j][0] = 1;
		}
		for (int j = 0; j < 4; j++) {
			ASSERT_EQ(p[j][0], 1);
			ASSERT_EQ(p[j][sizes[i] - 1], sizes[i] > 1 ? 2 : 1);
			ASSERT_EQ(hmm_free(p[j]), 0);
		}
	}
}

/* The 2 MiB case over-allocates and trims: nothing is left mapped. */
TEST(malloc_trims_what_it_over_allocates)
{
	char *p = hmm_malloc(4 * MIB);

	ASSERT_TRUE(p);
	ASSERT_EQ(hmm_free(p), 0);
	/* the whole aligned window around it is free again */
	ASSERT_FALSE(mapped(p, ps()));
	ASSERT_FALSE(mapped(p + 4 * MIB - ps(), ps()));
}

TEST(malloc_memory_is_zero_filled)
{
	static const size_t sizes[] = { 1, 5000, 300 * KIB, 2 * MIB + 3 };

	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			size_t len = round_pages(sizes[i]);
			char *p = hmm_malloc(sizes[i]);

			ASSERT_TRUE(p);
			ASSERT_EQ(check_zero(p, len), -1);
			/* dirty it: the next round gets the same addresses */
			fill(p, len, i + 10 * round);
			ASSERT_EQ(check(p, len, i + 10 * round), -1);
			ASSERT_EQ(hmm_free(p), 0);
		}
	}
}

TEST(malloc_memory_is_private_anonymous)
{
	char *p = hmm_malloc(MIB);
	int status;
	pid_t pid;

	ASSERT_TRUE(p);
	fill(p, MIB, 1);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		/* the child's copy is its own */
		if (check(p, MIB, 1) != -1)
			_exit(2);
		fill(p, MIB, 2);
		/* the library works in the child */
		if (!managed(p) || hmm_free(p) != 0)
			_exit(3);
		p = hmm_malloc(MIB);
		if (!p || check_zero(p, MIB) != -1 || hmm_free(p))
			_exit(4);
		_exit(0);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	ASSERT_EQ(check(p, MIB, 1), -1);
	ASSERT_TRUE(managed(p));
	ASSERT_EQ(hmm_free(p), 0);
}

TEST(fork_child_sees_the_same_ranges)
{
	char *p = hmm_malloc(MIB);
	int status;
	pid_t pid;

	ASSERT_TRUE(p);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(managed(p + MIB - 1) && !managed(p + MIB) &&
			      hmm_free(p) == 0 && hmm_free(p) == -EINVAL ?
		      0 : 1);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	/* the child's free did not free the parent's */
	ASSERT_TRUE(managed(p));
	ASSERT_EQ(hmm_free(p), 0);
}

/* --- hmm_register --------------------------------------------------------- */

TEST(register_malloc_memory)
{
	/* 1 MiB is an mmap of its own for malloc(); 100 bytes are not */
	static const size_t sizes[] = { MIB, 100, 3 * 4096 + 5 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t size = sizes[i];
		char *b = malloc(size);

		ASSERT_TRUE(b);
		fill(b, size, 5 + i);
		ASSERT_EQ(hmm_register(b, size), 0);
		ASSERT_TRUE(managed(b));
		ASSERT_TRUE(managed(b + size - 1));
		ASSERT_EQ(hmm_prefetch(b, size, HMM_CPU), 0);
		/* the same again overlaps */
		ASSERT_EQ(hmm_register(b, size), -EEXIST);
		ASSERT_EQ(hmm_unregister(b + size / 2), 0);
		ASSERT_FALSE(managed(b));
		ASSERT_EQ(check(b, size, 5 + i), -1);
		free(b);
	}
}

TEST(register_stack_memory)
{
	char buf[3 * 4096];

	fill(buf, sizeof(buf), 9);
	ASSERT_EQ(hmm_register(buf, sizeof(buf)), 0);
	ASSERT_TRUE(managed(buf + 100));
	ASSERT_EQ(hmm_unregister(buf), 0);
	ASSERT_EQ(check(buf, sizeof(buf), 9), -1);
}

TEST(register_overlapping_is_eexist)
{
	char *m = plain_map(6 * ps());
	char *p = hmm_malloc(2 * ps());

	ASSERT_TRUE(p);
	ASSERT_EQ(hmm_register(m + ps(), 2 * ps()), 0);
	ASSERT_EQ(hmm_register(m, 2 * ps()), -EEXIST);
	ASSERT_EQ(hmm_register(m + 2 * ps(), ps()), -EEXIST);
	ASSERT_EQ(hmm_register(m + 2 * ps() + ps() / 2, ps()), -EEXIST);
	ASSERT_EQ(hmm_register(m, 6 * ps()), -EEXIST);
	ASSERT_EQ(hmm_register(p + 1, 1), -EEXIST);
	ASSERT_EQ(hmm_register(p, 2 * ps()), -EEXIST);
	/* the first registration is unchanged */
	ASSERT_FALSE(managed(m));
	ASSERT_TRUE(managed(m + ps()));
	ASSERT_TRUE(managed(m + 3 * ps() - 1));
	ASSERT_FALSE(managed(m + 3 * ps()));
	ASSERT_EQ(hmm_unregister(m + ps()), 0);
	ASSERT_EQ(hmm_free(p), 0);
	munmap(m, 6 * ps());
}

/*
 * Shared and file memory registers (devices map it in place); memory
 * that is not readable, special mappings and device files do not.
 */
TEST(register_shared_file_and_special_memory)
{
	char path[] = "/tmp/hmmt-XXXXXX";
	char *shm, *file, *ro, *none, *mix;
	int fd;

	shm = mmap(NULL, 4 * ps(), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(shm != MAP_FAILED);
	fill(shm, 4 * ps(), 31);
	ASSERT_EQ(hmm_register(shm, 4 * ps()), 0);
	ASSERT_TRUE(managed(shm + 3 * ps()));
	ASSERT_EQ(hmm_register(shm + ps(), 1), -EEXIST);
	ASSERT_EQ(hmm_unregister(shm), 0);
	ASSERT_EQ(check(shm, 4 * ps(), 31), -1);

	fd = mkstemp(path);
	ASSERT_GE(fd, 0);
	unlink(path);
	ASSERT_EQ(ftruncate(fd, 4 * ps()), 0);
	file = mmap(NULL, 4 * ps(), PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	ASSERT_TRUE(file != MAP_FAILED);
	ASSERT_EQ(hmm_register(file, 4 * ps()), 0);
	ASSERT_EQ(hmm_unregister(file + 2 * ps()), 0);
	close(fd);

	/* not readable: no device could view it */
	none = mmap(NULL, 2 * ps(), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	ASSERT_TRUE(none != MAP_FAILED);
	ASSERT_EQ(hmm_register(none, 2 * ps()), -EINVAL);

	/* read-only private anonymous memory is fine */
	ro = mmap(NULL, 2 * ps(), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		  0);
	ASSERT_TRUE(ro != MAP_FAILED);
	ASSERT_EQ(hmm_register(ro, 2 * ps()), 0);
	ASSERT_EQ(hmm_unregister(ro), 0);

	/* private pages followed by a shared one: one range, in whole */
	mix = plain_map(3 * ps());
	ASSERT_TRUE(mmap(mix + 2 * ps(), ps(), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
		    mix + 2 * ps());
	ASSERT_EQ(hmm_register(mix, 3 * ps()), 0);
	ASSERT_EQ(hmm_unregister(mix), 0);
	ASSERT_EQ(hmm_register(mix + ps(), ps() + 1), 0);
	ASSERT_EQ(hmm_unregister(mix + ps()), 0);
	ASSERT_EQ(hmm_register(mix, 2 * ps()), 0);
	ASSERT_EQ(hmm_unregister(mix), 0);

	/* two private anonymous mappings of different protections, adjacent */
	ASSERT_EQ(mprotect(mix + ps(), ps(), PROT_READ), 0);
	ASSERT_EQ(hmm_register(mix, 2 * ps()), 0);
	ASSERT_EQ(hmm_unregister(mix + ps()), 0);

	/* the vDSO is no anonymous memory */
	{
		FILE *f = fopen("/proc/self/maps", "r");
		char line[512];
		unsigned long lo, hi;

		ASSERT_TRUE(f);
		while (fgets(line, sizeof(line), f)) {
			if (strstr(line, "[vdso]") &&
			    sscanf(line, "%lx-%lx", &lo, &hi) == 2)
				ASSERT_EQ(hmm_register((void *)lo, hi - lo),
					  -EINVAL);
		}
		fclose(f);
	}
	munmap(shm, 4 * ps());
	munmap(file, 4 * ps());
	munmap(none, 2 * ps());
	munmap(ro, 2 * ps());
	munmap(mix, 3 * ps());
}

/* Memory freed without hmm_unregister() and mapped again by hmm_malloc(). */
TEST(malloc_over_a_stale_registration)
{
	char *m = plain_map(4 * MIB);
	char *p;

	ASSERT_EQ(hmm_register(m, 4 * MIB), 0);
	ASSERT_EQ(munmap(m, 4 * MIB), 0);
	/* the kernel may hand the same addresses out again */
	for (int i = 0; i < 8; i++) {
		p = hmm_malloc(MIB);
		ASSERT_TRUE(p);
		ASSERT_EQ(check_zero(p, MIB), -1);
		ASSERT_TRUE(managed(p));
		ASSERT_EQ(hmm_free(p), 0);
	}
}

/*
 * Registrations share pages: two buffers in one page are registered one
 * after the other, each unregistered by its own address; the pages stay
 * managed while one is left.
 */
TEST(registrations_share_a_page)
{
	char *page = plain_map(ps());
	char *a = page + 100, *b = page + 300;

	fill(page, ps(), 21);
	ASSERT_EQ(hmm_register(a, 100), 0);
	ASSERT_EQ(hmm_register(b, 100), 0);
	/* the same bytes again, or bytes overlapping either: -EEXIST */
	ASSERT_EQ(hmm_register(a, 100), -EEXIST);
	ASSERT_EQ(hmm_register(a + 50, 200), -EEXIST);
	/* between the two buffers, in neither: which one is meant? */
	ASSERT_EQ(hmm_unregister(page + 250), -EINVAL);
	ASSERT_EQ(hmm_unregister(a + 99), 0);
	ASSERT_TRUE(managed(b));
	ASSERT_TRUE(managed(a));    /* the page is b's still */
	ASSERT_EQ(hmm_prefetch(b, 100, HMM_CPU), 0);
	ASSERT_EQ(hmm_unregister(a), 0); /* the only one left: b's */
	ASSERT_FALSE(managed(b));
	ASSERT_EQ(hmm_unregister(b), -EINVAL);
	ASSERT_EQ(check(page, ps(), 21), -1);
	munmap(page, ps());
}

/* Two small malloc() buffers, as a CUDA program registers them. */
TEST(register_two_malloc_buffers)
{
	char *x = malloc(64), *y = malloc(64);

	ASSERT_TRUE(x && y);
	ASSERT_EQ(hmm_register(x, 64), 0);
	ASSERT_EQ(hmm_register(y, 64), 0);
	ASSERT_EQ(hmm_unregister(y), 0);
	ASSERT_TRUE(managed(x));
	ASSERT_EQ(hmm_unregister(x), 0);
	ASSERT_FALSE(managed(x));
	free(x);
	free(y);
}

/* A registration inside the pages of another shares them too. */
TEST(registration_inside_a_registered_range)
{
	char *m = plain_map(4 * ps());

	ASSERT_EQ(hmm_register(m, 2 * ps() + 10), 0);
	ASSERT_EQ(hmm_register(m + 2 * ps() + 20, 100), 0);
	/* pages beyond the first registration: -EEXIST */
	ASSERT_EQ(hmm_register(m + 2 * ps() + 200, ps()), -EEXIST);
	ASSERT_EQ(hmm_unregister(m + ps()), 0);
	ASSERT_TRUE(managed(m));
	ASSERT_TRUE(managed(m + 2 * ps() + 20));
	ASSERT_EQ(hmm_unregister(m + 2 * ps() + 20), 0);
	ASSERT_FALSE(managed(m + 2 * ps()));
	munmap(m, 4 * ps());
}

/*
 * Memory freed without hmm_unregister() and mapped again: the stale
 * registration is found (its memory is no longer all mapped) and dropped,
 * and the new memory registers.
 */
TEST(register_again_after_unmap_and_remap)
{
	char *m = plain_map(4 * ps()), *n;

	ASSERT_EQ(hmm_register(m, 4 * ps()), 0);
	ASSERT_EQ(munmap(m, 4 * ps()), 0);
	n = mmap(m, 2 * ps(), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ASSERT_TRUE(n == m);
	fill(n, 2 * ps(), 23);
	ASSERT_EQ(hmm_register(n, 2 * ps()), 0);
	ASSERT_TRUE(managed(n + 2 * ps() - 1));
	ASSERT_FALSE(managed(n + 2 * ps()));
	ASSERT_EQ(hmm_unregister(n), 0);
	ASSERT_EQ(check(n, 2 * ps(), 23), -1);
	munmap(n, 2 * ps());
}

/*
 * Heap memory freed without hmm_unregister() stays mapped, so the library
 * cannot tell: hmm_unregister() drops the old registration, which touches
 * nothing but brings pages back from devices.
 */
TEST(stale_heap_registration_is_dropped_by_unregister)
{
	char *b = malloc(200), *c;
	volatile uintptr_t old = (uintptr_t)b; /* (not a pointer use after free) */

	ASSERT_TRUE(b);
	ASSERT_EQ(hmm_register(b, 200), 0);
	free(b);
	c = malloc(200);
	ASSERT_TRUE(c);
	if ((uintptr_t)c == old)
		ASSERT_EQ(hmm_register(c, 200), -EEXIST);
	/* the address names the registration; nothing is dereferenced */
	ASSERT_EQ(hmm_unregister((void *)old), 0);
	ASSERT_EQ(hmm_register(c, 200), 0);
	ASSERT_EQ(hmm_unregister(c), 0);
	free(c);
}

/* --- mremap() of managed memory ------------------------------------------- */

/* Moves [@p, @p + @len) elsewhere with mremap(); returns the new address. */
static char *move_away(char *p, size_t len)
{
	char *to = plain_map(len);
	void *q = mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);

	ASSERT_TRUE(q == to);
	return q;
}

/*
 * hmm_free() of an allocation moved away, with other memory mapped at
 * its old address since: -ESTALE, and that memory stays.  Before, it
 * returned 0 and unmapped the newcomer.
 */
TEST(free_after_mremap_leaves_the_new_mapping_alone)
{
	size_t len = 4 * ps();
	char *p = hmm_malloc(len), *q, *other;

	ASSERT_TRUE(p);
	fill(p, len, 31);
	q = move_away(p, len);
	ASSERT_FALSE(mapped(p, len));
	other = mmap(p, len, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ASSERT_TRUE(other == p);
	fill(other, len, 32);
	ASSERT_EQ(hmm_free(p), -ESTALE);
	ASSERT_TRUE(mapped(other, len));
	ASSERT_EQ(check(other, len, 32), -1);
	/* forgotten now */
	ASSERT_FALSE(managed(p));
	ASSERT_EQ(hmm_free(p), -EINVAL);
	/* the moved memory is the application's, intact */
	ASSERT_EQ(check(q, len, 31), -1);
	ASSERT_FALSE(managed(q));
	munmap(other, len);
	munmap(q, len);
}

/* No device view, no host pointer for a moved range: ESTALE. */
TEST(devptr_after_mremap_is_estale)
{
	size_t len = 2 * MIB;
	char *p = hmm_malloc(len), *q;

	ASSERT_TRUE(p);
	ASSERT_TRUE(managed(p + len - 1));
	q = move_away(p, len);
	errno = 0;
	ASSERT_TRUE(hmm_devptr(p, HMM_CPU) == NULL);
	ASSERT_EQ(errno, ESTALE);
	ASSERT_EQ(hmm_free(p + 5), -ESTALE);
	ASSERT_FALSE(mapped(p, len));
	munmap(q, len);
}

/* A registered range moved away: hmm_unregister() says so. */
TEST(unregister_after_mremap_is_estale)
{
	char *m = plain_map(2 * ps()), *q;

	ASSERT_EQ(hmm_register(m, 2 * ps()), 0);
	q = move_away(m, 2 * ps());
	ASSERT_EQ(hmm_unregister(m), -ESTALE);
	ASSERT_EQ(hmm_unregister(m), -EINVAL);
	munmap(q, 2 * ps());
}

/* mprotect() of managed memory is not a move: hmm_free() frees it. */
TEST(free_after_mprotect_frees)
{
	char *p = hmm_malloc(3 * ps());

	ASSERT_TRUE(p);
	ASSERT_EQ(mprotect(p + ps(), ps(), PROT_NONE), 0);
	ASSERT_TRUE(managed(p));
	ASSERT_EQ(hmm_free(p), 0);
	ASSERT_FALSE(mapped(p, 3 * ps()));
}

/* --- host fallbacks ------------------------------------------------------- */

TEST(host_prefetch_and_devptr)
{
	char *p = hmm_malloc(MIB);
	struct hmm_stats st0, st1;
	int where;

	need_no_device();
	ASSERT_TRUE(p);
	fill(p, MIB, 4);
	ASSERT_EQ(hmm_get_stats(HMM_CPU, &st0), 0);
	ASSERT_EQ(hmm_prefetch(p, MIB, 0), -ENODEV);
	ASSERT_EQ(hmm_prefetch(p, MIB, HMM_CPU), 0);
	ASSERT_EQ(hmm_prefetch(p + 10, 100, HMM_CPU), 0);
	ASSERT_EQ(hmm_get_stats(HMM_CPU, &st1), 0);
	ASSERT_EQ(st1.prefetch_calls - st0.prefetch_calls, 2);
	ASSERT_EQ(st1.prefetch_bytes - st0.prefetch_bytes, MIB + 100);
	ASSERT_EQ(hmm_get_stats(0, &st1), -ENODEV);
	ASSERT_EQ(hmm_range_get_attr(p, MIB, HMM_ATTR_LAST_PREFETCH_LOCATION,
				     &where, sizeof(where)), 0);
	ASSERT_EQ(where, HMM_CPU);
	ASSERT_TRUE(hmm_devptr(p + 77, HMM_CPU) == p + 77);
	ASSERT_ERRNO(hmm_devptr(p, 0) ? 0 : -1, ENODEV);
	ASSERT_EQ(check(p, MIB, 4), -1);
	ASSERT_EQ(hmm_free(p), 0);
}

TEST(host_residency_through_mincore)
{
	size_t npages = 64, size = npages * ps();
	char *p = hmm_malloc(size);
	int8_t *loc = malloc(npages + 1);

	need_no_device();
	ASSERT_TRUE(p && loc);
	/* no transparent huge page would fill the untouched pages */
	madvise(p, size, MADV_NOHUGEPAGE);
	ASSERT_EQ(hmm_residency(p, size, loc, npages), (int)npages);
	for (size_t i = 0; i < npages; i++)
		ASSERT_EQ(loc[i], HMM_LOC_NONE);
	for (size_t i = 0; i < npages; i += 3)
		p[i * ps() + 5] = 1;
	loc[npages] = 0x33;
	ASSERT_EQ(hmm_residency(p, size, loc, npages + 1), (int)npages);
	ASSERT_EQ(loc[npages], 0x33); /* one entry per page, no more */
	for (size_t i = 0; i < npages; i++)
		ASSERT_EQ(loc[i], i % 3 ? HMM_LOC_NONE : HMM_CPU);
	/* unaligned: page 3 from its last byte to page 4's first */
	ASSERT_EQ(hmm_residency(p + 4 * ps() - 1, 2, loc, 2), 2);
	ASSERT_EQ(loc[0], HMM_CPU);
	ASSERT_EQ(loc[1], HMM_LOC_NONE);
	/* prefetch to the CPU moves nothing */
	ASSERT_EQ(hmm_prefetch(p, size, HMM_CPU), 0);
	ASSERT_EQ(hmm_residency(p, size, loc, npages), (int)npages);
	for (size_t i = 0; i < npages; i++)
		ASSERT_EQ(loc[i], i % 3 ? HMM_LOC_NONE : HMM_CPU);
	ASSERT_EQ(hmm_free(p), 0);
	free(loc);
}

TEST(residency_of_unmanaged_memory)
{
	char *m = plain_map(8 * ps());
	int8_t loc[8];

	need_no_device();
	madvise(m, 8 * ps(), MADV_NOHUGEPAGE);
	m[2 * ps()] = 1;
	ASSERT_EQ(hmm_residency(m, 8 * ps(), loc, 8), 8);
	for (int i = 0; i < 8; i++)
		ASSERT_EQ(loc[i], i == 2 ? HMM_CPU : HMM_LOC_NONE);
	munmap(m, 8 * ps());
}

/* --- advice and attributes ------------------------------------------------ */

TEST(advice_is_kept_per_allocation)
{
	char *m = plain_map(4 * ps());
	uint64_t g;
	int v, r[3];

	/* two adjacent registered ranges, advised differently */
	ASSERT_EQ(hmm_register(m, 2 * ps()), 0);
	ASSERT_EQ(hmm_register(m + 2 * ps(), 2 * ps()), 0);

	ASSERT_EQ(hmm_range_get_attr(m, 4 * ps(), HMM_ATTR_PREFERRED_LOCATION,
				     &v, sizeof(v)), 0);
	ASSERT_EQ(v, HMM_LOC_NONE);
	ASSERT_EQ(hmm_range_get_attr(m, 4 * ps(), HMM_ATTR_FAULT_GRANULARITY,
				     &g, sizeof(g)), 0);
	ASSERT_EQ(g, 0);

	/* one byte of the first range advises all of it */
	ASSERT_EQ(hmm_advise(m + ps() + 7, 1, HMM_ADVISE_FAULT_GRANULARITY, 0,
			     256 * KIB), 0);
	ASSERT_EQ(hmm_range_get_attr(m, 1, HMM_ATTR_FAULT_GRANULARITY, &g,
				     sizeof(g)), 0);
	ASSERT_EQ(g, 256 * KIB);
	ASSERT_EQ(hmm_range_get_attr(m + 3 * ps(), 1,
				     HMM_ATTR_FAULT_GRANULARITY, &g,
				     sizeof(g)), 0);
	ASSERT_EQ(g, 0);
	/* the two differ */
	g = 1;
	ASSERT_EQ(hmm_range_get_attr(m, 4 * ps(), HMM_ATTR_FAULT_GRANULARITY,
				     &g, sizeof(g)), 0);
	ASSERT_EQ(g, 0);

	/* advice across both: the same again */
	ASSERT_EQ(hmm_advise(m + ps(), 2 * ps(), HMM_ADVISE_FAULT_GRANULARITY,
			     0, 16 * KIB), 0);
	ASSERT_EQ(hmm_range_get_attr(m, 4 * ps(), HMM_ATTR_FAULT_GRANULARITY,
				     &g, sizeof(g)), 0);
	ASSERT_EQ(g, 16 * KIB);

	ASSERT_EQ(hmm_advise(m, ps(), HMM_ADVISE_SET_PREFERRED_LOCATION,
			     HMM_CPU, 0), 0);
	ASSERT_EQ(hmm_range_get_attr(m + ps(), ps(),
				     HMM_ATTR_PREFERRED_LOCATION, &v,
				     sizeof(v)), 0);
	ASSERT_EQ(v, HMM_CPU);
	v = 5;
	ASSERT_EQ(hmm_range_get_attr(m, 4 * ps(), HMM_ATTR_PREFERRED_LOCATION,
				     &v, sizeof(v)), 0);
	ASSERT_EQ(v, HMM_LOC_NONE);
	ASSERT_EQ(hmm_advise(m, ps(), HMM_ADVISE_UNSET_PREFERRED_LOCATION,
			     HMM_CPU, 0), 0);
	ASSERT_EQ(hmm_range_get_attr(m, ps(), HMM_ATTR_PREFERRED_LOCATION, &v,
				     sizeof(v)), 0);
	ASSERT_EQ(v, HMM_LOC_NONE);

	/* no device: nobody accesses remotely */
	memset(r, 0, sizeof(r));
	ASSERT_EQ(hmm_range_get_attr(m, ps(), HMM_ATTR_REMOTE_ACCESS, r,
				     sizeof(r)), 0);
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(r[i], HMM_LOC_NONE);

	/* last prefetch: per range */
	ASSERT_EQ(hmm_prefetch(m + 3 * ps(), 1, HMM_CPU), 0);
	ASSERT_EQ(hmm_range_get_attr(m + 2 * ps(), 2 * ps(),
				     HMM_ATTR_LAST_PREFETCH_LOCATION, &v,
				     sizeof(v)), 0);
	ASSERT_EQ(v, HMM_CPU);
	v = 0;
	ASSERT_EQ(hmm_range_get_attr(m, 4 * ps(),
				     HMM_ATTR_LAST_PREFETCH_LOCATION, &v,
				     sizeof(v)), 0);
	ASSERT_EQ(v, HMM_LOC_NONE);

	/* a new range at the same place starts without advice */
	ASSERT_EQ(hmm_unregister(m), 0);
	ASSERT_EQ(hmm_register(m, 2 * ps()), 0);
	ASSERT_EQ(hmm_range_get_attr(m, 1, HMM_ATTR_FAULT_GRANULARITY, &g,
				     sizeof(g)), 0);
	ASSERT_EQ(g, 0);
	ASSERT_EQ(hmm_unregister(m), 0);
	ASSERT_EQ(hmm_unregister(m + 2 * ps()), 0);
	munmap(m, 4 * ps());
}

/* --- threads -------------------------------------------------------------- */

#define THREADS 8
#define ROUNDS 150
#define LIVE 6

static atomic_int thread_errors;

static void *alloc_worker(void *arg)
{
	unsigned int id = (unsigned int)(uintptr_t)arg, rnd = id * 7919 + 1;
	char *p[LIVE] = { NULL };
	size_t size[LIVE] = { 0 };
	uint64_t seed[LIVE] = { 0 };

	for (int r = 0; r < ROUNDS; r++) {
		int k = r % LIVE;

		if (p[k]) {
			if (check(p[k], size[k], seed[k]) != -1 ||
			    !managed(p[k] + size[k] - 1) ||
			    hmm_free(p[k] + rnd % size[k]) != 0)
				atomic_fetch_add(&thread_errors, 1);
			p[k] = NULL;
		}
		rnd = rnd * 1103515245 + 12345;
		size[k] = 1 + (rnd >> 8) % (r % 5 == 0 ? 3 * MIB : 200 * KIB);
		seed[k] = ((uint64_t)id << 32) | (unsigned int)r;
		p[k] = hmm_malloc(size[k]);
		if (!p[k]) {
			atomic_fetch_add(&thread_errors, 1);
			continue;
		}
		if (size[k] >= 2 * MIB && (uintptr_t)p[k] % (2 * MIB))
			atomic_fetch_add(&thread_errors, 1);
		if (check_zero(p[k], size[k]) != -1)
			atomic_fetch_add(&thread_errors, 1);
		fill(p[k], size[k], seed[k]);
		if (hmm_prefetch(p[k], size[k], HMM_CPU) != 0)
			atomic_fetch_add(&thread_errors, 1);
	}
	for (int k = 0; k < LIVE; k++) {
		if (!p[k])
			continue;
		if (check(p[k], size[k], seed[k]) != -1 || hmm_free(p[k]))
			atomic_fetch_add(&thread_errors, 1);
	}
	return NULL;
}

/* Registrations come and go in other threads meanwhile. */
static void *register_worker(void *arg)
{
	char *m = arg;

	for (int r = 0; r < ROUNDS; r++) {
		char *q = m + (size_t)(r % 4) * 4 * ps();

		if (hmm_register(q, 4 * ps()) != 0 || !managed(q + 1) ||
		    hmm_register(q + ps(), ps()) != -EEXIST ||
		    hmm_unregister(q + 3 * ps()) != 0 || managed(q))
			atomic_fetch_add(&thread_errors, 1);
	}
	return NULL;
}

TEST_TIMEOUT(threads_allocate_and_free_concurrently, 300)
{
	pthread_t t[THREADS + 2];
	char *m[2] = { plain_map(16 * ps()), plain_map(16 * ps()) };

	for (int i = 0; i < THREADS; i++)
		ASSERT_EQ(pthread_create(&t[i], NULL, alloc_worker,
					 (void *)(uintptr_t)i), 0);
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(pthread_create(&t[THREADS + i], NULL,
					 register_worker, m[i]), 0);
	for (int i = 0; i < THREADS + 2; i++)
		ASSERT_EQ(pthread_join(t[i], NULL), 0);
	ASSERT_EQ(atomic_load(&thread_errors), 0);
	munmap(m[0], 16 * ps());
	munmap(m[1], 16 * ps());
}

TEST_MAIN()
