// SPDX-License-Identifier: MIT
/*
 * test_ioctl.c - argument checking of MIGRATE, RESIDENCY and STATS (one
 * test per rejection; after each one the range is untouched and the file
 * still works), what RESIDENCY reports, and the FILE and DEVICE scopes of
 * STATS.
 *
 * Runs inside the test VM with hmmgpu.ko loaded (tools/vm/hmmvm test).
 */
#define _GNU_SOURCE
#include "kt_common.h"

#include <sys/mman.h>
#include <unistd.h>

#include <xf86drm.h>

#define NPAGES 16

struct ctx {
	int fd;
	char *p;
	size_t ps;
};

static void ctx_init(struct ctx *c)
{
	c->fd = kt_open_device(0);
	c->ps = kt_page_size();
	c->p = kt_map(NPAGES * c->ps);
	kt_fill(c->p, NPAGES * c->ps, 1);
}

/* The rejected call left the range alone and the file usable. */
static void ctx_check_and_fini(struct ctx *c)
{
	size_t size = NPAGES * c->ps;

	KT_EXPECT_WHERE(c->fd, c->p, NPAGES, HMMGPU_RESIDENCY_SYSTEM);
	KT_EXPECT_DATA(c->p, size, 1);
	KT_EXPECT_MIGRATE(c->fd, c->p, size, HMMGPU_MIGRATE_TO_DEVICE, NPAGES,
			  0, 0);
	KT_EXPECT_MIGRATE(c->fd, c->p, size, HMMGPU_MIGRATE_TO_SYSTEM, NPAGES,
			  0, 0);
	KT_EXPECT_DATA(c->p, size, 1);
	kt_unmap(c->p, size);
	close(c->fd);
}

/* --- MIGRATE -------------------------------------------------------------- */

static void valid_migrate(const struct ctx *c, struct drm_hmmgpu_migrate *m)
{
	memset(m, 0, sizeof(*m));
	m->start = (uintptr_t)c->p;
	m->size = NPAGES * c->ps;
	m->target = HMMGPU_MIGRATE_TO_DEVICE;
}

/* MIGRATE with one field spoiled by @spoil must fail with @err. */
static void expect_migrate_error(void (*spoil)(const struct ctx *,
					       struct drm_hmmgpu_migrate *),
				 int err)
{
	struct drm_hmmgpu_migrate m;
	struct ctx c;

	ctx_init(&c);
	valid_migrate(&c, &m);
	spoil(&c, &m);
	ASSERT_ERRNO(drmIoctl(c.fd, DRM_IOCTL_HMMGPU_MIGRATE, &m), err);
	ctx_check_and_fini(&c);
}

static void mig_flags(const struct ctx *c, struct drm_hmmgpu_migrate *m)
{
	m->flags = 1;
}

static void mig_high_flag(const struct ctx *c, struct drm_hmmgpu_migrate *m)
{
	m->flags = 1u << 31;
}

static void mig_pad(const struct ctx *c, struct drm_hmmgpu_migrate *m)
{
	m->pad = 1;
}

static void mig_extensions(const struct ctx *c, struct drm_hmmgpu_migrate *m)
{
	m->extensions = (uintptr_t)c->p;
}

static void mig_target(const struct ctx *c, struct drm_hmmgpu_migrate *m)
{
	m->target = 2;
}

static void mig_target_max(const struct ctx *c, struct drm_hmmgpu_migrate *m)
{
	m->target = ~0u;
}

static void mig_zero_size(const struct ctx *c, struct drm_hmmgpu_migrate *m)
{
	m->size = 0;
}

static void mig_unaligned_start(const struct ctx *c,
				struct drm_hmmgpu_migrate *m)
{
	m->start += 1;
	m->size -= c->ps;
}

static void mig_unaligned_start_end(const struct ctx *c,
				    struct drm_hmmgpu_migrate *m)
{
	m->start += c->ps - 8;
	m->size -= c->ps;
}

static void mig_unaligned_size(const struct ctx *c,
			       struct drm_hmmgpu_migrate *m)
{
	m->size -= 1;
}

static void mig_unaligned_small_size(const struct ctx *c,
				     struct drm_hmmgpu_migrate *m)
{
	m->size = 8;
}

static void mig_wrap(const struct ctx *c, struct drm_hmmgpu_migrate *m)
{
	m->size = -(uint64_t)c->ps; /* start + size wraps past zero */
}

static void mig_wrap_top(const struct ctx *c, struct drm_hmmgpu_migrate *m)
{
	m->start = -(uint64_t)c->ps; /* the last page of the address space */
	m->size = 2 * c->ps;
}

static void mig_unmapped(const struct ctx *c, struct drm_hmmgpu_migrate *m)
{
	/* a range just unmapped */
	char *q = kt_map(4 * c->ps);

	kt_unmap(q, 4 * c->ps);
	m->start = (uintptr_t)q;
	m->size = 4 * c->ps;
}

static void mig_null(const struct ctx *c, struct drm_hmmgpu_migrate *m)
{
	m->start = 0;
	m->size = c->ps;
}

static void mig_unmapped_middle(const struct ctx *c,
				struct drm_hmmgpu_migrate *m)
{
	/* [mapped, filled | unmapped | mapped, filled] */
	char *q = kt_map(12 * c->ps);

	kt_fill(q, 12 * c->ps, 2);
	kt_unmap(q + 4 * c->ps, 4 * c->ps);
	m->start = (uintptr_t)q;
	m->size = 12 * c->ps;
}

static void mig_unmapped_tail(const struct ctx *c,
			      struct drm_hmmgpu_migrate *m)
{
	/* the buffer and the unmapped page right after it */
	char *q = kt_map((NPAGES + 1) * c->ps);

	kt_fill(q, NPAGES * c->ps, 3);
	kt_unmap(q + NPAGES * c->ps, c->ps);
	m->start = (uintptr_t)q;
	m->size = (NPAGES + 1) * c->ps;
}

static void mig_unmapped_head(const struct ctx *c,
			      struct drm_hmmgpu_migrate *m)
{
	/* an unmapped page, then a mapped one */
	char *q = kt_map(2 * c->ps);

	kt_fill(q, 2 * c->ps, 4);
	kt_unmap(q, c->ps);
	m->start = (uintptr_t)q;
	m->size = 2 * c->ps;
}

TEST(migrate_rejects_flags)
{
	expect_migrate_error(mig_flags, EINVAL);
	expect_migrate_error(mig_high_flag, EINVAL);
}

TEST(migrate_rejects_pad)
{
	expect_migrate_error(mig_pad, EINVAL);
}

TEST(migrate_rejects_extensions)
{
	expect_migrate_error(mig_extensions, EINVAL);
}

TEST(migrate_rejects_bad_target)
{
	expect_migrate_error(mig_target, EINVAL);
	expect_migrate_error(mig_target_max, EINVAL);
}

TEST(migrate_rejects_zero_size)
{
	expect_migrate_error(mig_zero_size, EINVAL);
}

TEST(migrate_rejects_unaligned_start)
{
	expect_migrate_error(mig_unaligned_start, EINVAL);
	expect_migrate_error(mig_unaligned_start_end, EINVAL);
}

TEST(migrate_rejects_unaligned_size)
{
	expect_migrate_error(mig_unaligned_size, EINVAL);
	expect_migrate_error(mig_unaligned_small_size, EINVAL);
}

TEST(migrate_rejects_wrapping_range)
{
	expect_migrate_error(mig_wrap, EINVAL);
	expect_migrate_error(mig_wrap_top, EINVAL);
}

TEST(migrate_unmapped_range_is_efault)
{
	expect_migrate_error(mig_unmapped, EFAULT);
	expect_migrate_error(mig_null, EFAULT);
}

/*
 * Partly unmapped: -EFAULT before anything moved (no page is left
 * half-migrated); the mapped parts keep their data.
 */
static void expect_partly_unmapped(void (*spoil)(const struct ctx *,
						 struct drm_hmmgpu_migrate *),
				   uint64_t seed)
{
	struct drm_hmmgpu_migrate m;
	struct ctx c;
	size_t ps, npages;
	char *q;

	ctx_init(&c);
	ps = c.ps;
	valid_migrate(&c, &m);
	spoil(&c, &m);
	q = (char *)(uintptr_t)m.start;
	npages = m.size / ps;
	for (unsigned int target = 0; target < 2; target++) {
		m.target = target;
		ASSERT_ERRNO(drmIoctl(c.fd, DRM_IOCTL_HMMGPU_MIGRATE, &m),
			     EFAULT);
	}
	for (size_t i = 0; i < npages; i++) {
		uint8_t loc;

		ASSERT_EQ(kt_residency(c.fd, q + i * ps, 1, &loc, NULL), 0);
		if (loc == HMMGPU_RESIDENCY_NONE)
			continue; /* the hole */
		/* nothing moved, the data is there */
		ASSERT_EQ(loc, HMMGPU_RESIDENCY_SYSTEM);
		ASSERT_EQ(kt_check_range(q, i * ps, ps, seed), -1);
	}
	ctx_check_and_fini(&c);
}

TEST(migrate_partly_unmapped_range_is_efault)
{
	expect_partly_unmapped(mig_unmapped_middle, 2);
	expect_partly_unmapped(mig_unmapped_tail, 3);
	expect_partly_unmapped(mig_unmapped_head, 4);
}

/* --- RESIDENCY ------------------------------------------------------------ */

static void valid_residency(const struct ctx *c, struct drm_hmmgpu_residency *r,
			    uint8_t *loc)
{
	memset(r, 0, sizeof(*r));
	r->start = (uintptr_t)c->p;
	r->npages = NPAGES;
	r->locations = (uintptr_t)loc;
}

static void expect_residency_error(void (*spoil)(const struct ctx *,
						 struct drm_hmmgpu_residency *),
				   int err)
{
	struct drm_hmmgpu_residency r;
	uint8_t loc[NPAGES + 1];
	struct ctx c;

	ctx_init(&c);
	memset(loc, 0xee, sizeof(loc));
	valid_residency(&c, &r, loc);
	spoil(&c, &r);
	ASSERT_ERRNO(drmIoctl(c.fd, DRM_IOCTL_HMMGPU_RESIDENCY, &r), err);
	/* nothing written where it was not asked for */
	ASSERT_EQ(loc[NPAGES], 0xee);
	ctx_check_and_fini(&c);
}

static void res_flags(const struct ctx *c, struct drm_hmmgpu_residency *r)
{
	r->flags = 1;
}

static void res_high_flag(const struct ctx *c, struct drm_hmmgpu_residency *r)
{
	r->flags = 1u << 31;
}

static void res_pad(const struct ctx *c, struct drm_hmmgpu_residency *r)
{
	r->pad = 1;
}

static void res_unaligned(const struct ctx *c, struct drm_hmmgpu_residency *r)
{
	r->start += 8;
}

static void res_zero(const struct ctx *c, struct drm_hmmgpu_residency *r)
{
	r->npages = 0;
}

static void res_too_many(const struct ctx *c, struct drm_hmmgpu_residency *r)
{
	r->npages = (1ULL << 24) + 1;
}

static void res_huge(const struct ctx *c, struct drm_hmmgpu_residency *r)
{
	r->npages = ~0ULL;
}

static void res_wrap(const struct ctx *c, struct drm_hmmgpu_residency *r)
{
	r->start = -(uint64_t)c->ps;
	r->npages = 2;
}

static void res_null(const struct ctx *c, struct drm_hmmgpu_residency *r)
{
	r->locations = 0;
}

static void res_read_only(const struct ctx *c, struct drm_hmmgpu_residency *r)
{
	void *ro = mmap(NULL, c->ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
			-1, 0);

	ASSERT_TRUE(ro != MAP_FAILED);
	r->locations = (uintptr_t)ro;
}

static void res_unmapped(const struct ctx *c, struct drm_hmmgpu_residency *r)
{
	char *q = kt_map(c->ps);

	kt_unmap(q, c->ps);
	r->locations = (uintptr_t)q;
}

static void res_kernel(const struct ctx *c, struct drm_hmmgpu_residency *r)
{
	r->locations = ~0ULL << 47; /* a kernel address */
}

TEST(residency_rejects_flags)
{
	expect_residency_error(res_flags, EINVAL);
	expect_residency_error(res_high_flag, EINVAL);
}

TEST(residency_rejects_pad)
{
	expect_residency_error(res_pad, EINVAL);
}

TEST(residency_rejects_unaligned_start)
{
	expect_residency_error(res_unaligned, EINVAL);
}

TEST(residency_rejects_zero_pages)
{
	expect_residency_error(res_zero, EINVAL);
}

TEST(residency_rejects_too_many_pages)
{
	expect_residency_error(res_too_many, EINVAL);
	expect_residency_error(res_huge, EINVAL);
}

TEST(residency_rejects_wrapping_range)
{
	expect_residency_error(res_wrap, EINVAL);
}

TEST(residency_rejects_bad_locations_pointer)
{
	expect_residency_error(res_null, EFAULT);
	expect_residency_error(res_read_only, EFAULT);
	expect_residency_error(res_unmapped, EFAULT);
	expect_residency_error(res_kernel, EFAULT);
}

TEST(residency_reports_every_location)
{
	size_t ps = kt_page_size(), npages = 40;
	struct drm_hmmgpu_residency r;
	int fd = kt_open_device(0);
	uint8_t loc[40], want[40];
	char *p = kt_map(npages * ps);

	/*
	 * pages 0-9 untouched, 10-19 touched, 20-29 unmapped,
	 * 30-39 on the device (and on the other device, seen from there)
	 */
	kt_fill(p + 10 * ps, 10 * ps, 5);
	kt_unmap(p + 20 * ps, 10 * ps);
	kt_fill(p + 30 * ps, 10 * ps, 6);
	KT_EXPECT_MIGRATE(fd, p + 30 * ps, 10 * ps, HMMGPU_MIGRATE_TO_DEVICE,
			  10, 0, 0);
	for (size_t i = 0; i < npages; i++) {
		want[i] = i < 10  ? HMMGPU_RESIDENCY_NONE :
			  i < 20  ? HMMGPU_RESIDENCY_SYSTEM :
			  i < 30  ? HMMGPU_RESIDENCY_NONE :
				    HMMGPU_RESIDENCY_THIS_DEVICE;
	}

	/* out fields are written whatever the caller put there */
	memset(&r, 0xa5, sizeof(r));
	memset(loc, 0xee, sizeof(loc));
	r.start = (uintptr_t)p;
	r.npages = npages;
	r.locations = (uintptr_t)loc;
	r.flags = 0;
	r.pad = 0;
	ASSERT_EQ(drmIoctl(fd, DRM_IOCTL_HMMGPU_RESIDENCY, &r), 0);
	for (size_t i = 0; i < npages; i++) {
		if (loc[i] != want[i])
			TH_LOG("page %zu: %u, expected %u", i, loc[i], want[i]);
		ASSERT_EQ(loc[i], want[i]);
	}
	ASSERT_EQ(r.count[HMMGPU_RESIDENCY_NONE], 20);
	ASSERT_EQ(r.count[HMMGPU_RESIDENCY_SYSTEM], 10);
	ASSERT_EQ(r.count[HMMGPU_RESIDENCY_THIS_DEVICE], 10);
	ASSERT_EQ(r.count[HMMGPU_RESIDENCY_OTHER_DEVICE], 0);
	/* in fields are left as they were */
	ASSERT_EQ(r.start, (uintptr_t)p);
	ASSERT_EQ(r.npages, npages);

	/* a single page, and the same range seen from the other device */
	ASSERT_EQ(kt_residency(fd, p + 35 * ps, 1, loc, NULL), 0);
	ASSERT_EQ(loc[0], HMMGPU_RESIDENCY_THIS_DEVICE);
	if (kt_module_param("num_devices") > 1) {
		int fd1 = kt_open_device(1);

		KT_EXPECT_WHERE(fd1, p + 30 * ps, 10,
				HMMGPU_RESIDENCY_OTHER_DEVICE);
		KT_EXPECT_WHERE(fd1, p + 10 * ps, 10, HMMGPU_RESIDENCY_SYSTEM);
		close(fd1);
	}
	/* nothing was faulted in or migrated by asking */
	KT_EXPECT_WHERE(fd, p, 10, HMMGPU_RESIDENCY_NONE);
	KT_EXPECT_WHERE(fd, p + 30 * ps, 10, HMMGPU_RESIDENCY_THIS_DEVICE);
	KT_EXPECT_DATA(p + 30 * ps, 10 * ps, 6);
	KT_EXPECT_DATA(p + 10 * ps, 10 * ps, 5);
	close(fd);
}

/* --- STATS ---------------------------------------------------------------- */

static void expect_stats_einval(unsigned int scope, unsigned int flags,
				uint64_t extensions)
{
	struct drm_hmmgpu_stats st;
	int fd = kt_open_device(0);

	memset(&st, 0, sizeof(st));
	st.scope = scope;
	st.flags = flags;
	st.extensions = extensions;
	ASSERT_ERRNO(drmIoctl(fd, DRM_IOCTL_HMMGPU_STATS, &st), EINVAL);
	/* the file stays usable */
	ASSERT_EQ(kt_stats(fd, HMMGPU_STATS_FILE, &st), 0);
	ASSERT_EQ(kt_stats(fd, HMMGPU_STATS_DEVICE, &st), 0);
	close(fd);
}

TEST(stats_rejects_bad_scope)
{
	expect_stats_einval(2, 0, 0);
	expect_stats_einval(~0u, 0, 0);
}

TEST(stats_rejects_flags)
{
	expect_stats_einval(HMMGPU_STATS_FILE, 1, 0);
	expect_stats_einval(HMMGPU_STATS_DEVICE, 1u << 31, 0);
}

TEST(stats_rejects_extensions)
{
	expect_stats_einval(HMMGPU_STATS_FILE, 0, 1);
	expect_stats_einval(HMMGPU_STATS_DEVICE, 0, 0x1000);
}

static uint64_t sum(const __u64 *v, size_t n)
{
	uint64_t s = 0;

	for (size_t i = 0; i < n; i++)
		s += v[i];
	return s;
}

/* Every bytes[][] counter is its pages[][] counter in bytes. */
static void expect_bytes_match_pages(const struct drm_hmmgpu_stats *st)
{
	for (int d = 0; d < 2; d++)
		for (int c = 0; c < HMMGPU_CAUSE_COUNT; c++)
			ASSERT_EQ(st->bytes[d][c],
				  st->pages[d][c] * kt_page_size());
	for (int i = 0; i < 8; i++)
		ASSERT_EQ(st->reserved[i], 0);
}

TEST(stats_file_and_device_scopes)
{
	size_t ps = kt_page_size(), npages = 300, size = npages * ps;
	struct drm_hmmgpu_stats a, b, dev0, dev1, other0, other1, zero;
	unsigned int ndev = kt_module_param("num_devices");
	int fa = kt_open_device(0);
	int fb = kt_open_device(0);
	int fo = ndev > 1 ? kt_open_device(1) : -1;
	char *p = kt_map(size);

	if (fo >= 0)
		kt_get_stats(fo, HMMGPU_STATS_DEVICE, &other0);
	kt_get_stats(fb, HMMGPU_STATS_DEVICE, &dev0);
	kt_fill(p, size, 7);
	KT_EXPECT_MIGRATE(fa, p, size, HMMGPU_MIGRATE_TO_DEVICE, npages, 0, 0);
	KT_EXPECT_MIGRATE(fa, p, size, HMMGPU_MIGRATE_TO_SYSTEM, npages, 0, 0);
	KT_EXPECT_DATA(p, size, 7);

	/* the file that migrated counted exactly its pages */
	kt_get_stats(fa, HMMGPU_STATS_FILE, &a);
	expect_bytes_match_pages(&a);
	ASSERT_EQ(a.scope, HMMGPU_STATS_FILE);
	ASSERT_EQ(a.pages[HMMGPU_DIR_TO_DEVICE][HMMGPU_CAUSE_EXPLICIT], npages);
	ASSERT_EQ(a.pages[HMMGPU_DIR_TO_SYSTEM][HMMGPU_CAUSE_EXPLICIT], npages);
	ASSERT_EQ(sum(a.pages[0], HMMGPU_CAUSE_COUNT) +
		  sum(a.pages[1], HMMGPU_CAUSE_COUNT), 2 * npages);
	ASSERT_GE(a.batches, 2);
	ASSERT_EQ(a.copy_errors, 0);
	ASSERT_EQ(a.cpu_faults, 0);
	ASSERT_EQ(a.device_faults, 0);

	/* a fresh file: every FILE counter zero, out fields overwritten */
	kt_get_stats(fb, HMMGPU_STATS_FILE, &b);
	memset(&zero, 0, sizeof(zero));
	zero.scope = HMMGPU_STATS_FILE;
	ASSERT_EQ(memcmp(&b, &zero, sizeof(b)), 0);

	/* the DEVICE scope saw it, from any file */
	kt_get_stats(fb, HMMGPU_STATS_DEVICE, &dev1);
	expect_bytes_match_pages(&dev1);
	ASSERT_EQ(dev1.scope, HMMGPU_STATS_DEVICE);
	ASSERT_EQ(dev1.pages[HMMGPU_DIR_TO_DEVICE][HMMGPU_CAUSE_EXPLICIT] -
		  dev0.pages[HMMGPU_DIR_TO_DEVICE][HMMGPU_CAUSE_EXPLICIT],
		  npages);
	ASSERT_EQ(dev1.pages[HMMGPU_DIR_TO_SYSTEM][HMMGPU_CAUSE_EXPLICIT] -
		  dev0.pages[HMMGPU_DIR_TO_SYSTEM][HMMGPU_CAUSE_EXPLICIT],
		  npages);
	ASSERT_GE(dev1.batches - dev0.batches, a.batches);

	/* and the other device saw nothing */
	if (fo >= 0) {
		kt_get_stats(fo, HMMGPU_STATS_DEVICE, &other1);
		ASSERT_EQ(memcmp(other1.pages, other0.pages,
				 sizeof(other0.pages)), 0);
		ASSERT_EQ(other1.batches, other0.batches);
		close(fo);
	}
	close(fa);
	close(fb);
}

TEST(stats_histograms_count_every_event)
{
	size_t ps = kt_page_size(), npages = 512, size = npages * ps;
	struct drm_hmmgpu_stats st;
	int fd = kt_open_device(0);
	char *p = kt_map(size);

	kt_fill(p, size, 8);
	KT_EXPECT_MIGRATE(fd, p, size, HMMGPU_MIGRATE_TO_DEVICE, npages, 0, 0);
	KT_EXPECT_DATA(p, size, 8); /* CPU faults */

	kt_get_stats(fd, HMMGPU_STATS_FILE, &st);
	ASSERT_GE(st.batches, 1);
	ASSERT_EQ(sum(st.migrate_latency, HMMGPU_LATENCY_BUCKETS), st.batches);
	kt_get_stats(fd, HMMGPU_STATS_DEVICE, &st);
	ASSERT_GE(st.cpu_faults, 1);
	ASSERT_EQ(sum(st.migrate_latency, HMMGPU_LATENCY_BUCKETS), st.batches);
	ASSERT_EQ(sum(st.fault_latency, HMMGPU_LATENCY_BUCKETS),
		  st.cpu_faults);
	ASSERT_GT(st.copy_busy_ns, 0);
	close(fd);
}

TEST_MAIN()
