// SPDX-License-Identifier: MIT
/*
 * test_ioctl.c - argument checking of MIGRATE, RESIDENCY and STATS (one
 * test per rejection; after each one the range is untouched and the file
 * still works), what RESIDENCY reports, the FILE and DEVICE scopes of
 * STATS, and the DRM core's own ioctls on an hmmgpu render node.
 *
 * Runs inside the test VM with hmmgpu.ko loaded (tools/vm/hmmvm test).
 */
#define _GNU_SOURCE
#include "kt_common.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/ioctl.h>
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
	for (size_t i = 0; i < sizeof(st->reserved) / sizeof(st->reserved[0]);
	     i++)
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

/* --- the DRM core's ioctls ------------------------------------------------- */

/* Every DRM_IOCTL_* of <drm/drm.h> that the libdrm headers here name. */
#define CORE(n) { #n, n },
static const struct core_ioctl {
	const char *name;
	unsigned long cmd;
} core_ioctls[] = {
	CORE(DRM_IOCTL_VERSION)
	CORE(DRM_IOCTL_GET_UNIQUE)
	CORE(DRM_IOCTL_GET_MAGIC)
	CORE(DRM_IOCTL_IRQ_BUSID)
	CORE(DRM_IOCTL_GET_MAP)
	CORE(DRM_IOCTL_GET_CLIENT)
	CORE(DRM_IOCTL_GET_STATS)
	CORE(DRM_IOCTL_SET_VERSION)
	CORE(DRM_IOCTL_MODESET_CTL)
	CORE(DRM_IOCTL_GEM_CLOSE)
	CORE(DRM_IOCTL_GEM_FLINK)
	CORE(DRM_IOCTL_GEM_OPEN)
	CORE(DRM_IOCTL_GET_CAP)
	CORE(DRM_IOCTL_SET_CLIENT_CAP)
	CORE(DRM_IOCTL_SET_UNIQUE)
	CORE(DRM_IOCTL_AUTH_MAGIC)
	CORE(DRM_IOCTL_BLOCK)
	CORE(DRM_IOCTL_UNBLOCK)
	CORE(DRM_IOCTL_CONTROL)
	CORE(DRM_IOCTL_ADD_MAP)
	CORE(DRM_IOCTL_ADD_BUFS)
	CORE(DRM_IOCTL_MARK_BUFS)
	CORE(DRM_IOCTL_INFO_BUFS)
	CORE(DRM_IOCTL_MAP_BUFS)
	CORE(DRM_IOCTL_FREE_BUFS)
	CORE(DRM_IOCTL_RM_MAP)
	CORE(DRM_IOCTL_SET_SAREA_CTX)
	CORE(DRM_IOCTL_GET_SAREA_CTX)
	CORE(DRM_IOCTL_SET_MASTER)
	CORE(DRM_IOCTL_DROP_MASTER)
	CORE(DRM_IOCTL_ADD_CTX)
	CORE(DRM_IOCTL_RM_CTX)
	CORE(DRM_IOCTL_MOD_CTX)
	CORE(DRM_IOCTL_GET_CTX)
	CORE(DRM_IOCTL_SWITCH_CTX)
	CORE(DRM_IOCTL_NEW_CTX)
	CORE(DRM_IOCTL_RES_CTX)
	CORE(DRM_IOCTL_ADD_DRAW)
	CORE(DRM_IOCTL_RM_DRAW)
	CORE(DRM_IOCTL_DMA)
	CORE(DRM_IOCTL_LOCK)
	CORE(DRM_IOCTL_UNLOCK)
	CORE(DRM_IOCTL_FINISH)
	CORE(DRM_IOCTL_PRIME_HANDLE_TO_FD)
	CORE(DRM_IOCTL_PRIME_FD_TO_HANDLE)
	CORE(DRM_IOCTL_AGP_ACQUIRE)
	CORE(DRM_IOCTL_AGP_RELEASE)
	CORE(DRM_IOCTL_AGP_ENABLE)
	CORE(DRM_IOCTL_AGP_INFO)
	CORE(DRM_IOCTL_AGP_ALLOC)
	CORE(DRM_IOCTL_AGP_FREE)
	CORE(DRM_IOCTL_AGP_BIND)
	CORE(DRM_IOCTL_AGP_UNBIND)
	CORE(DRM_IOCTL_SG_ALLOC)
	CORE(DRM_IOCTL_SG_FREE)
	CORE(DRM_IOCTL_WAIT_VBLANK)
	CORE(DRM_IOCTL_CRTC_GET_SEQUENCE)
	CORE(DRM_IOCTL_CRTC_QUEUE_SEQUENCE)
	CORE(DRM_IOCTL_UPDATE_DRAW)
	CORE(DRM_IOCTL_MODE_GETRESOURCES)
	CORE(DRM_IOCTL_MODE_GETCRTC)
	CORE(DRM_IOCTL_MODE_SETCRTC)
	CORE(DRM_IOCTL_MODE_CURSOR)
	CORE(DRM_IOCTL_MODE_GETGAMMA)
	CORE(DRM_IOCTL_MODE_SETGAMMA)
	CORE(DRM_IOCTL_MODE_GETENCODER)
	CORE(DRM_IOCTL_MODE_GETCONNECTOR)
	CORE(DRM_IOCTL_MODE_ATTACHMODE)
	CORE(DRM_IOCTL_MODE_DETACHMODE)
	CORE(DRM_IOCTL_MODE_GETPROPERTY)
	CORE(DRM_IOCTL_MODE_SETPROPERTY)
	CORE(DRM_IOCTL_MODE_GETPROPBLOB)
	CORE(DRM_IOCTL_MODE_GETFB)
	CORE(DRM_IOCTL_MODE_ADDFB)
	CORE(DRM_IOCTL_MODE_RMFB)
	CORE(DRM_IOCTL_MODE_PAGE_FLIP)
	CORE(DRM_IOCTL_MODE_DIRTYFB)
	CORE(DRM_IOCTL_MODE_CREATE_DUMB)
	CORE(DRM_IOCTL_MODE_MAP_DUMB)
	CORE(DRM_IOCTL_MODE_DESTROY_DUMB)
	CORE(DRM_IOCTL_MODE_GETPLANERESOURCES)
	CORE(DRM_IOCTL_MODE_GETPLANE)
	CORE(DRM_IOCTL_MODE_SETPLANE)
	CORE(DRM_IOCTL_MODE_ADDFB2)
	CORE(DRM_IOCTL_MODE_OBJ_GETPROPERTIES)
	CORE(DRM_IOCTL_MODE_OBJ_SETPROPERTY)
	CORE(DRM_IOCTL_MODE_CURSOR2)
	CORE(DRM_IOCTL_MODE_ATOMIC)
	CORE(DRM_IOCTL_MODE_CREATEPROPBLOB)
	CORE(DRM_IOCTL_MODE_DESTROYPROPBLOB)
	CORE(DRM_IOCTL_SYNCOBJ_CREATE)
	CORE(DRM_IOCTL_SYNCOBJ_DESTROY)
	CORE(DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD)
	CORE(DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE)
	CORE(DRM_IOCTL_SYNCOBJ_WAIT)
	CORE(DRM_IOCTL_SYNCOBJ_RESET)
	CORE(DRM_IOCTL_SYNCOBJ_SIGNAL)
	CORE(DRM_IOCTL_MODE_CREATE_LEASE)
	CORE(DRM_IOCTL_MODE_LIST_LESSEES)
	CORE(DRM_IOCTL_MODE_GET_LEASE)
	CORE(DRM_IOCTL_MODE_REVOKE_LEASE)
	CORE(DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT)
	CORE(DRM_IOCTL_SYNCOBJ_QUERY)
	CORE(DRM_IOCTL_SYNCOBJ_TRANSFER)
	CORE(DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL)
	CORE(DRM_IOCTL_MODE_GETFB2)
#ifdef DRM_IOCTL_SYNCOBJ_EVENTFD
	CORE(DRM_IOCTL_SYNCOBJ_EVENTFD)
#endif
#ifdef DRM_IOCTL_MODE_CLOSEFB
	CORE(DRM_IOCTL_MODE_CLOSEFB)
#endif
#ifdef DRM_IOCTL_SET_CLIENT_NAME
	CORE(DRM_IOCTL_SET_CLIENT_NAME)
#endif
#ifdef DRM_IOCTL_GEM_CHANGE_HANDLE
	CORE(DRM_IOCTL_GEM_CHANGE_HANDLE)
#endif
};
#undef CORE

#define ARG_BYTES 512 /* more than any core ioctl's argument */
#define ARG_VARIANTS 8

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * Argument @variant for ioctl number @nr: zeroed, 0xa5 bytes, 0xff bytes,
 * every 32-bit word 1 (small handles and descriptors), then random bytes
 * from a seed of @nr and @variant (reproducible).
 */
static void core_arg(uint8_t *arg, unsigned int nr, unsigned int variant)
{
	uint64_t seed = 0x9e3779b97f4a7c15ULL * (nr * ARG_VARIANTS + variant + 1);

	switch (variant) {
	case 0:
		memset(arg, 0, ARG_BYTES);
		break;
	case 1:
		memset(arg, 0xa5, ARG_BYTES);
		break;
	case 2:
		memset(arg, 0xff, ARG_BYTES);
		break;
	case 3:
		for (size_t i = 0; i < ARG_BYTES / 4; i++)
			((uint32_t *)arg)[i] = 1;
		break;
	default:
		for (size_t i = 0; i < ARG_BYTES / 8; i++)
			((uint64_t *)arg)[i] = xorshift(&seed);
		break;
	}
}

/*
 * One core ioctl: 0 or -errno.  It must either succeed or fail with a
 * real errno; anything the kernel does wrong shows in its log, which the
 * VM runner checks (the defect this guards against printed lockdep's
 * "INFO: trying to register non-static key" and a call trace).
 */
static int core_call(int fd, unsigned long cmd, const char *name,
		     unsigned int variant, unsigned long *nok)
{
	uint8_t arg[ARG_BYTES] __attribute__((aligned(8)));

	core_arg(arg, _IOC_NR(cmd), variant);
	if (ioctl(fd, cmd, arg) == 0) {
		(*nok)++;
		return 0;
	}
	if (errno <= 0 || errno >= 4096)
		HMMT_FAIL("%s, arguments %u: errno %d", name, variant, errno);
	return -errno;
}

/* Open file descriptors of this process. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	ASSERT_TRUE(d != NULL);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

/*
 * Every DRM core ioctl a render node accepts must be safe on hmmgpu,
 * which has no GEM objects: each number of <drm/drm.h>, then every core
 * ioctl number with a large read-write argument (for ioctls newer than
 * these headers), with zeroed, patterned and random arguments.  Each call
 * fails with an errno or succeeds harmlessly (no descriptor appears, the
 * file keeps working), and the kernel log stays clean.  The GEM and PRIME
 * ioctls must find an empty, initialized handle table.
 */
TEST(drm_core_ioctls_are_safe)
{
	struct drm_gem_close gclose = { 0 };
	struct drm_prime_handle prime = { 0 };
	unsigned long calls = 0, nok = 0;
	struct ctx c;
	int fds, ret;

	ctx_init(&c);
	fds = count_fds();

	for (size_t i = 0; i < sizeof(core_ioctls) / sizeof(core_ioctls[0]);
	     i++) {
		for (unsigned int v = 0; v < ARG_VARIANTS; v++, calls++)
			core_call(c.fd, core_ioctls[i].cmd, core_ioctls[i].name,
				  v, &nok);
	}
	/* core numbers: below DRM_COMMAND_BASE and from DRM_COMMAND_END */
	for (unsigned int nr = 0; nr < 0x100; nr++) {
		char name[32];

		if (nr >= DRM_COMMAND_BASE && nr < DRM_COMMAND_END)
			continue;
		snprintf(name, sizeof(name), "core ioctl 0x%02x", nr);
		for (unsigned int v = 0; v < ARG_VARIANTS; v++, calls++)
			core_call(c.fd, _IOC(_IOC_READ | _IOC_WRITE,
					     DRM_IOCTL_BASE, nr, ARG_BYTES),
				  name, v, &nok);
	}
	TH_LOG("%lu core ioctl calls, %lu succeeded", calls, nok);

	/* GEM: an empty handle table */
	ASSERT_ERRNO(ioctl(c.fd, DRM_IOCTL_GEM_CLOSE, &gclose), EINVAL);
	gclose.handle = 1;
	ASSERT_ERRNO(ioctl(c.fd, DRM_IOCTL_GEM_CLOSE, &gclose), EINVAL);
	/*
	 * PRIME: no handle to export (Linux 6.1 refuses PRIME for a driver
	 * without PRIME callbacks: -ENOSYS), nothing to import from a
	 * descriptor that is not a dma-buf.
	 */
	for (uint32_t h = 0; h < 3; h++) {
		prime.handle = h;
		prime.flags = h ? DRM_CLOEXEC : 0;
		prime.fd = -1;
		ret = ioctl(c.fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &prime) ?
			      errno : 0;
		if (ret != ENOENT && ret != ENOSYS)
			TH_LOG("PRIME_HANDLE_TO_FD of handle %u: %d", h, ret);
		ASSERT_TRUE(ret == ENOENT || ret == ENOSYS);
	}
	prime.fd = c.fd;
	ret = ioctl(c.fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, &prime) ? errno : 0;
	ASSERT_TRUE(ret == EINVAL || ret == ENOSYS);
	prime.fd = -1;
	ret = ioctl(c.fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, &prime) ? errno : 0;
	ASSERT_TRUE(ret == EBADF || ret == ENOSYS);

	/* nothing handed out a descriptor; the file works, and a new one */
	ASSERT_EQ(count_fds(), fds);
	ctx_check_and_fini(&c);
	ctx_init(&c);
	ctx_check_and_fini(&c);
}

TEST_MAIN()
