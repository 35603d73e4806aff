// SPDX-License-Identifier: MIT
/*
 * bench_migrate.c - throughput of page migration between system RAM and
 * device memory, for hmmgpu and for the kernel's reference driver test_hmm,
 * against memcpy of the same bytes.
 *
 * Runs inside the test VM (tools/bench builds it and boots the VM).  For
 * each size it runs rounds; a round is a memcpy round (the same bytes
 * between two populated buffers, the best of MEMCPY_REPS copies), then a
 * round of each driver, their order alternating, so that a change of load
 * on the host weighs on all of them alike.  A driver's round maps a fresh
 * anonymous buffer (MADV_NOHUGEPAGE: 4 KiB pages for every driver) and:
 *
 *   fills it with a pattern unique to the word, the round and the driver
 *   to device        timed; every page must move, and the driver must
 *                    then report every page on the device
 *   to system        timed; every page must move back, the driver must
 *                    report every page in system RAM, the data must match
 *   to device        untimed, checked as above
 *   CPU fault-back   timed: read one byte per page; then every page must
 *                    be in system RAM and the data must match
 *
 * Each throughput is the size divided by the time of a round: the tables
 * show the best round, the median round and the spread of the rounds
 * ((fastest - slowest) / median), so that a noisy host shows.
 *
 * Then CPU fault-back by 1, 2 and 4 threads: after a migration to the
 * device, each thread reads one byte per page of its own 2 MiB-aligned
 * share of the buffer; timed from the start line to the last thread's
 * end, then checked like the single-threaded fault-back.
 *
 * Then, where hmmgpu has 2 MiB device pages (GET_INFO's
 * HMMGPU_CAP_DEVICE_THP; -H: not at all), huge pages against 4 KiB pages:
 * the same rounds with a 2 MiB-aligned buffer, MADV_HUGEPAGE against
 * MADV_NOHUGEPAGE, for both drivers, at 2 MiB and every size measured,
 * with how much of the THP buffer the kernel backed with huge pages
 * (AnonHugePages) after the fill, after to system and after fault-back.
 *
 * Then the device view (-V: only that, -N: not that): fault-driven first
 * touch through a view, for every fault granularity, with density
 * prefetch on and off, against explicit prefetch (MIGRATE) of the same
 * range, and the latency of the device faults; see "device view" below.
 *
 * A failed check ends the program with status 1: no number is printed for
 * work that did not happen.  Whether the performance targets are met is
 * printed for information only and never changes the exit status.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xf86drm.h>

#include "drm_node.h"

#if BENCH_HAVE_TEST_HMM
/* Extracted from the kernel source at build time (tests/bench/meson.build). */
#include "test_hmm_uapi.h"
#endif

#define MAX_SIZES 16
#define MAX_ROUNDS 15
#define MAX_NODES 16
#define MIB (1024 * 1024)
#define REGION (2 * MIB) /* a PMD: the unit of fault-back shares, prefetch */

/* Thread counts of the multi-threaded CPU fault-back rows. */
static const unsigned int fault_threads[] = { 1, 2, 4 };
#define FAULT_THREAD_ROWS (sizeof(fault_threads) / sizeof(fault_threads[0]))
#define MAX_FAULT_THREADS 4

enum bench_op { OP_TO_DEVICE, OP_TO_SYSTEM, OP_FAULT_BACK, OP_COUNT };
enum bench_drv { DRV_HMMGPU, DRV_TEST_HMM, DRV_COUNT };
enum bench_where { WHERE_SYSTEM, WHERE_DEVICE };
/* The buffers of the huge-page table: 2 MiB pages, 4 KiB pages. */
enum bench_pages { PAGES_HUGE, PAGES_4K, PAGES_COUNT };
/* When a round looks at how much of a THP buffer is in huge pages. */
enum bench_huge_stage { HUGE_FILLED, HUGE_TO_SYSTEM, HUGE_FAULT_BACK,
			HUGE_STAGES };

static const char *const op_names[OP_COUNT] = {
	[OP_TO_DEVICE] = "to device",
	[OP_TO_SYSTEM] = "to system",
	[OP_FAULT_BACK] = "CPU fault-back",
};

/* The same, for narrow column groups. */
static const char *const op_short_names[OP_COUNT] = {
	[OP_TO_DEVICE] = "to device",
	[OP_TO_SYSTEM] = "to system",
	[OP_FAULT_BACK] = "fault-back",
};

struct bench_driver;

/* What one driver must provide; both return 0 or a negative errno. */
struct bench_driver_ops {
	/* Migrates [buf, buf + size) to @to; *@moved = pages it moved. */
	int (*migrate)(struct bench_driver *d, void *buf, size_t size,
		       enum bench_where to, uint64_t *moved);
	/* *@n = pages of [buf, buf + size) that the driver sees at @where. */
	int (*count_at)(struct bench_driver *d, void *buf, size_t size,
			enum bench_where where, uint64_t *n);
};

struct bench_driver {
	const char *name;
	const struct bench_driver_ops *ops;
	bool available;
	char why[160];   /* why it is not available */
	char desc[160];  /* what it is, for the header */
	char features[160]; /* hmmgpu: what it runs with, for the header */
	bool device_thp; /* hmmgpu: 2 MiB device pages (HMMGPU_CAP_DEVICE_THP) */
	char thp_why[160]; /* hmmgpu: why not */
	int fd;
	uint64_t mem_total; /* device memory, 0 when unbounded */
	/* per-round scratch */
	uint8_t *where;  /* one byte per page */
	void *bounce;    /* test_hmm: its device's copy of the data */
	bool have_stats; /* hmmgpu: the STATS ioctl answers */
	bool reads_back; /* test_hmm: TO_DEV copies the data to @bounce */
	/*
	 * test_hmm: its TO_SYS counts a 2 MiB folio as one page (its cpages
	 * counts the core's src entries, one per folio)
	 */
	bool counts_folios;
};

struct bench_stats_delta {
	bool valid;
	uint64_t batches;
	uint64_t copy_busy_ns;
	uint64_t cpu_faults;
	uint64_t pages_to_device;
	uint64_t pages_to_system;
	uint64_t pages_cpu_fault;
	uint64_t fault_latency[HMMGPU_LATENCY_BUCKETS]; /* log2 us buckets */
	double wall_s; /* time spent in hmmgpu migrations and fault-back */
};

/* What the rounds of one measurement give, in MB/s; 0: not measured. */
struct bench_rates {
	double best;   /* the fastest round */
	double median; /* the median round (even count: mean of the middle times) */
	double worst;  /* the slowest round */
};

struct bench_result {
	size_t size;
	struct bench_rates memcpy_rate;
	struct bench_rates rate[DRV_COUNT][OP_COUNT];
	/* CPU fault-back by fault_threads[i] threads */
	struct bench_rates threads[DRV_COUNT][FAULT_THREAD_ROWS];
	char skipped[DRV_COUNT][96];      /* why a driver was not measured */
	struct bench_stats_delta stats;
};

/*
 * A row of the huge-page table: one size, both drivers, THP buffers
 * against 4 KiB ones (hmmgpu with HMMGPU_CAP_DEVICE_THP only).
 */
struct thp_result {
	size_t size;
	struct bench_rates rate[DRV_COUNT][PAGES_COUNT][OP_COUNT];
	/* of the THP buffers, % in huge pages, the least of the rounds; <0: unknown */
	double huge_pct[DRV_COUNT][HUGE_STAGES];
	char skipped[DRV_COUNT][96]; /* why a driver was not measured */
};

static const char *const pages_names[PAGES_COUNT] = {
	[PAGES_HUGE] = "THP",
	[PAGES_4K] = "4K",
};

static size_t page_size;
static bool verbose;
static bool use_median; /* device view: the median round, else the best */
static volatile uint64_t sink; /* keeps the fault-back reads */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The median of the ascending @s[@n]. */
static double median_sorted(const double *s, unsigned int n)
{
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/*
 * The time that stands for @n rounds: the shortest by default (a busy
 * host only ever adds time), or the median.
 */
static double pick(const double *v, unsigned int n)
{
	double s[MAX_ROUNDS];

	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	return use_median ? median_sorted(s, n) : s[0];
}

static double rate_mbps(size_t bytes, double seconds)
{
	return seconds > 0 ? (double)bytes / seconds / 1e6 : 0;
}

/* The best, median and worst rate of @n rounds of @bytes, from their times. */
static void rates_of(size_t bytes, const double *v, unsigned int n,
		     struct bench_rates *r)
{
	double s[MAX_ROUNDS];

	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	r->best = rate_mbps(bytes, s[0]);
	r->median = rate_mbps(bytes, median_sorted(s, n));
	r->worst = rate_mbps(bytes, s[n - 1]);
}

/* The rate a table shows: the best round's, or the median round's. */
static double rate_of(const struct bench_rates *r, bool median)
{
	return median ? r->median : r->best;
}

/* (fastest - slowest) / median, in %; <0: not measured. */
static double spread_pct(const struct bench_rates *r)
{
	return r->median > 0 ? (r->best - r->worst) / r->median * 100 : -1;
}

/* --- data ---------------------------------------------------------------- */

/* A different word at every offset, for every seed (splitmix64 mixing). */
static inline uint64_t pattern_word(uint64_t seed, size_t i)
{
	uint64_t x = seed + (uint64_t)i * 0x9e3779b97f4a7c15ull;

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void fill(void *buf, size_t size, uint64_t seed)
{
	uint64_t *w = buf;

	for (size_t i = 0; i < size / sizeof(*w); i++)
		w[i] = pattern_word(seed, i);
}

/* Checks every word of @buf; prints the first mismatch. */
static bool verify(const void *buf, size_t size, uint64_t seed,
		   const char *what)
{
	const uint64_t *w = buf;

	for (size_t i = 0; i < size / sizeof(*w); i++) {
		uint64_t want = pattern_word(seed, i);

		if (w[i] != want) {
			fprintf(stderr,
				"bench_migrate: DATA CHECK FAILED %s: byte offset %zu (page %zu) holds 0x%016" PRIx64 ", expected 0x%016" PRIx64 "\n",
				what, i * sizeof(*w), i * sizeof(*w) / page_size,
				w[i], want);
			return false;
		}
	}
	return true;
}

static uint64_t touch_pages(const void *buf, size_t size)
{
	const volatile uint8_t *p = buf;
	uint64_t sum = 0;

	for (size_t off = 0; off < size; off += page_size)
		sum += p[off];
	return sum;
}

static void *map_buffer(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* 4 KiB pages for everyone; fails harmlessly where THP is off */
	madvise(p, size, MADV_NOHUGEPAGE);
	return p;
}

/*
 * A fresh buffer aligned to @align (a multiple of the page size), with
 * MADV_HUGEPAGE when @huge (the kernel may back it with 2 MiB pages, if
 * @align is 2 MiB), else MADV_NOHUGEPAGE.
 */
static void *map_aligned(size_t size, size_t align, bool huge)
{
	uint8_t *p = mmap(NULL, size + align, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t start;

	if (p == MAP_FAILED)
		return NULL;
	start = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
	if (start > (uintptr_t)p)
		munmap(p, start - (uintptr_t)p);
	if ((uintptr_t)p + align > start)
		munmap((void *)(start + size), (uintptr_t)p + align - start);
	madvise((void *)start, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	return (void *)start;
}

/*
 * KiB of [@buf, @buf + @size) in huge pages: the AnonHugePages of its
 * mappings in /proc/self/smaps.  -1 when that cannot be told: no smaps,
 * or a mapping that reaches outside the buffer (its huge pages could be
 * anywhere in it) or a hole in it.
 */
static long anon_huge_kib(const void *buf, size_t size)
{
	uintptr_t lo = (uintptr_t)buf, hi = lo + size;
	bool inside = false, exact = true;
	size_t len = 0, covered = 0;
	char *line = NULL;
	long kib = 0;
	FILE *f;

	f = fopen("/proc/self/smaps", "re");
	if (!f)
		return -1;
	while (getline(&line, &len, f) > 0) {
		unsigned long start, end, v;

		/* a mapping's first line: "start-end perms offset dev inode path" */
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			inside = start < hi && end > lo;
			if (inside && (start < lo || end > hi))
				exact = false;
			if (inside)
				covered += end - start;
		} else if (inside &&
			   sscanf(line, "AnonHugePages: %lu kB", &v) == 1) {
			kib += (long)v;
		}
	}
	free(line);
	fclose(f);
	return exact && covered == size ? kib : -1;
}

/* --- hmmgpu -------------------------------------------------------------- */

static int hmmgpu_migrate(struct bench_driver *d, void *buf, size_t size,
			  enum bench_where to, uint64_t *moved)
{
	struct drm_hmmgpu_migrate m = {
		.start = (uintptr_t)buf,
		.size = size,
		.target = to == WHERE_DEVICE ? HMMGPU_MIGRATE_TO_DEVICE :
					       HMMGPU_MIGRATE_TO_SYSTEM,
	};

	if (drmIoctl(d->fd, DRM_IOCTL_HMMGPU_MIGRATE, &m))
		return -errno;
	*moved = m.moved;
	if (m.moved + m.already + m.skipped != size / page_size)
		fprintf(stderr,
			"bench_migrate: hmmgpu MIGRATE: moved %llu + already %llu + skipped %llu != %zu pages\n",
			(unsigned long long)m.moved,
			(unsigned long long)m.already,
			(unsigned long long)m.skipped, size / page_size);
	return 0;
}

static int hmmgpu_count_at(struct bench_driver *d, void *buf, size_t size,
			   enum bench_where where, uint64_t *n)
{
	struct drm_hmmgpu_residency r = {
		.start = (uintptr_t)buf,
		.npages = size / page_size,
		.locations = (uintptr_t)d->where,
	};

	if (drmIoctl(d->fd, DRM_IOCTL_HMMGPU_RESIDENCY, &r))
		return -errno;
	*n = r.count[where == WHERE_DEVICE ? HMMGPU_RESIDENCY_THIS_DEVICE :
					     HMMGPU_RESIDENCY_SYSTEM];
	return 0;
}

static const struct bench_driver_ops hmmgpu_ops = {
	.migrate = hmmgpu_migrate,
	.count_at = hmmgpu_count_at,
};

static int hmmgpu_stats_scope(struct bench_driver *d,
			      struct drm_hmmgpu_stats *st, uint32_t scope)
{
	memset(st, 0, sizeof(*st));
	st->scope = scope;
	if (drmIoctl(d->fd, DRM_IOCTL_HMMGPU_STATS, st))
		return -errno;
	return 0;
}

static int hmmgpu_stats(struct bench_driver *d, struct drm_hmmgpu_stats *st)
{
	return hmmgpu_stats_scope(d, st, HMMGPU_STATS_DEVICE);
}

/* Reads /sys/module/hmmgpu/parameters/@name into @buf ("" when absent). */
static void module_param(const char *name, char *buf, size_t len)
{
	char path[128];
	ssize_t n;
	int fd;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "/sys/module/hmmgpu/parameters/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

/*
 * Whether hmmgpu makes 2 MiB device pages (device-private THP) now:
 * GET_INFO's HMMGPU_CAP_DEVICE_THP, the one place that decides it.  When
 * not, @why says why: a driver before device THP, the writable device_thp
 * parameter off, or a kernel without device-private THP (before 6.19).
 */
static bool hmmgpu_device_thp(const struct drm_hmmgpu_get_info *info,
			      char *why, size_t len)
{
	char param[16];
	struct utsname u;

	why[0] = '\0';
	if (info->abi_version >= 4 && (info->caps & HMMGPU_CAP_DEVICE_THP))
		return true;
	module_param("device_thp", param, sizeof(param));
	if (!param[0])
		snprintf(why, len, "the running driver (ABI %u) has no device THP",
			 info->abi_version);
	else if (param[0] == 'N' || param[0] == 'n' || param[0] == '0')
		snprintf(why, len, "device_thp is off (/sys/module/hmmgpu/parameters/device_thp is %s)",
			 param);
	else
		snprintf(why, len, "kernel %s has no device-private THP (it came in 6.19)",
			 uname(&u) == 0 ? u.release : "?");
	return false;
}

/* What the driver can do on this kernel, for the header. */
static void hmmgpu_features(struct bench_driver *d,
			    const struct drm_hmmgpu_get_info *info)
{
	/* a driver of ABI 3 or less has no caps and can do everything */
	bool view = info->abi_version < 4 || (info->caps & HMMGPU_CAP_VIEW);

	d->device_thp = hmmgpu_device_thp(info, d->thp_why,
					  sizeof(d->thp_why));
	snprintf(d->features, sizeof(d->features),
		 "ABI %u, device page %" PRIu64 " B, device THP: %s, device views: %s",
		 info->abi_version, (uint64_t)info->page_size,
		 d->device_thp ? "yes (2 MiB device pages)" : "no",
		 view ? "yes" : "no");
}

static void hmmgpu_open(struct bench_driver *d, unsigned int index)
{
	struct hmm_node nodes[MAX_NODES];
	struct drm_hmmgpu_get_info info;
	struct drm_hmmgpu_stats st;
	char fault_kib[32], path[HMM_NODE_PATH_MAX] = "";
	uint64_t moved;
	void *probe;
	int n, ret;

	d->name = "hmmgpu";
	d->ops = &hmmgpu_ops;
	d->fd = -1;
	n = hmm_node_scan(nodes, MAX_NODES, NULL);
	if (n <= 0) {
		snprintf(d->why, sizeof(d->why), "no hmmgpu device (%s)",
			 n < 0 ? strerror(-n) : "is hmmgpu.ko loaded?");
		return;
	}
	for (int i = 0; i < n; i++) {
		if (nodes[i].index == index) {
			d->fd = nodes[i].fd;
			nodes[i].fd = -1;
			snprintf(path, sizeof(path), "%s", nodes[i].path);
		}
	}
	hmm_node_close_all(nodes, n);
	if (d->fd < 0) {
		snprintf(d->why, sizeof(d->why), "no hmmgpu device %u", index);
		return;
	}
	ret = hmm_node_get_info(d->fd, &info);
	if (ret) {
		snprintf(d->why, sizeof(d->why), "GET_INFO: %s", strerror(-ret));
		return;
	}
	d->mem_total = info.mem_total;

	/* Is MIGRATE there?  A populated page migrated to system: a no-op. */
	probe = map_buffer(page_size);
	if (!probe) {
		snprintf(d->why, sizeof(d->why), "mmap: %s", strerror(errno));
		return;
	}
	memset(probe, 1, page_size);
	ret = hmmgpu_migrate(d, probe, page_size, WHERE_SYSTEM, &moved);
	munmap(probe, page_size);
	if (ret) {
		snprintf(d->why, sizeof(d->why),
			 "the running driver (ABI %u) does not do MIGRATE: %s",
			 info.abi_version, strerror(-ret));
		return;
	}
	d->have_stats = hmmgpu_stats(d, &st) == 0;
	hmmgpu_features(d, &info);

	module_param("fault_kib", fault_kib, sizeof(fault_kib));
	snprintf(d->desc, sizeof(d->desc),
		 "%s, device %u, %" PRIu64 " MiB, copy engine %s x%u, fault_kib=%s",
		 path, info.device_index, d->mem_total / MIB,
		 info.copy_engine == HMMGPU_COPY_ENGINE_DMAENGINE ? "dmaengine" :
								    "software",
		 info.copy_channels, fault_kib[0] ? fault_kib : "?");
	d->available = true;
}

/* --- test_hmm ------------------------------------------------------------ */

#if BENCH_HAVE_TEST_HMM
static int test_hmm_migrate(struct bench_driver *d, void *buf, size_t size,
			    enum bench_where to, uint64_t *moved)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)buf,
		/* to device, test_hmm copies its device's data back here */
		.ptr = (uintptr_t)d->bounce,
		.npages = size / page_size,
	};
	unsigned long req = to == WHERE_DEVICE ? HMM_DMIRROR_MIGRATE_TO_DEV :
						 HMM_DMIRROR_MIGRATE_TO_SYS;

	if (ioctl(d->fd, req, &cmd))
		return -errno;
	*moved = cmd.cpages;
	return 0;
}

/* A page test_hmm's snapshot shows as device-private on its own device. */
static bool snap_on_device(uint8_t perm)
{
	return (perm & 0xf0) == HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL;
}

/* A present, readable system page (neither device, zero page nor error). */
static bool snap_in_system(uint8_t perm)
{
	return (perm & 0xf0) == 0 &&
	       (perm & (HMM_DMIRROR_PROT_READ | HMM_DMIRROR_PROT_WRITE));
}

static int test_hmm_count_at(struct bench_driver *d, void *buf, size_t size,
			     enum bench_where where, uint64_t *n)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)buf,
		.ptr = (uintptr_t)d->where,
		.npages = size / page_size,
	};

	if (ioctl(d->fd, HMM_DMIRROR_SNAPSHOT, &cmd))
		return -errno;
	*n = 0;
	for (size_t i = 0; i < size / page_size; i++)
		*n += where == WHERE_DEVICE ? snap_on_device(d->where[i]) :
					      snap_in_system(d->where[i]);
	return 0;
}

static const struct bench_driver_ops test_hmm_ops = {
	.migrate = test_hmm_migrate,
	.count_at = test_hmm_count_at,
};
#endif

static void test_hmm_open(struct bench_driver *d, const char *path)
{
	d->name = "test_hmm";
	d->fd = -1;
#if BENCH_HAVE_TEST_HMM
	d->ops = &test_hmm_ops;
	d->reads_back = true;
	d->counts_folios = true;
	d->fd = open(path, O_RDWR | O_CLOEXEC);
	if (d->fd < 0) {
		snprintf(d->why, sizeof(d->why), "%s: %s%s", path,
			 strerror(errno),
			 errno == ENOENT ? " (insmod test_hmm.ko first)" : "");
		return;
	}
	snprintf(d->desc, sizeof(d->desc), "%s (lib/test_hmm.c of %s)", path,
		 BENCH_TEST_HMM_SOURCE);
	d->available = true;
#else
	snprintf(d->why, sizeof(d->why),
		 "built without its uapi header (kernel source %s not found at configure time)",
		 BENCH_TEST_HMM_SOURCE);
#endif
}

/* --- measurement ----------------------------------------------------------- */

/*
 * Did a migration of @npages pages move them all?  Where @d counts a 2 MiB
 * folio as one page (@folios), @moved lies between one per 2 MiB and one
 * per page, and the residency check that follows is what tells.
 */
static bool check_moved(struct bench_driver *d, const char *what,
			uint64_t moved, size_t npages, bool folios)
{
	size_t per_folio = REGION / page_size;

	if (moved == npages ||
	    (folios && moved <= npages &&
	     moved >= (npages + per_folio - 1) / per_folio))
		return true;
	fprintf(stderr,
		"bench_migrate: CHECK FAILED %s %s: %" PRIu64 " of %zu pages moved\n",
		d->name, what, moved, npages);
	return false;
}

static bool check_at(struct bench_driver *d, void *buf, size_t size,
		     enum bench_where where, const char *when)
{
	uint64_t n = 0;
	int ret = d->ops->count_at(d, buf, size, where, &n);

	if (ret) {
		fprintf(stderr, "bench_migrate: %s residency %s: %s\n",
			d->name, when, strerror(-ret));
		return false;
	}
	if (n == size / page_size)
		return true;
	fprintf(stderr,
		"bench_migrate: CHECK FAILED %s %s: %" PRIu64 " of %zu pages in %s\n",
		d->name, when, n, size / page_size,
		where == WHERE_DEVICE ? "device memory" : "system RAM");
	return false;
}

/*
 * Timed migration of the whole buffer, with its checks; <0 on failure.
 * @huge: the buffer may hold huge pages (see check_moved()).
 */
static double timed_migrate_pages(struct bench_driver *d, void *buf,
				  size_t size, enum bench_where to, bool huge)
{
	const char *what = to == WHERE_DEVICE ? "to device" : "to system";
	char when[32];
	uint64_t moved = 0;
	double t0, t1;
	int ret;

	t0 = now_s();
	ret = d->ops->migrate(d, buf, size, to, &moved);
	t1 = now_s();
	if (ret) {
		fprintf(stderr, "bench_migrate: %s migrate %s: %s\n", d->name,
			what, strerror(-ret));
		return -1;
	}
	snprintf(when, sizeof(when), "after %s", what);
	if (!check_moved(d, what, moved, size / page_size,
			 huge && to == WHERE_SYSTEM && d->counts_folios) ||
	    !check_at(d, buf, size, to, when))
		return -1;
	return t1 - t0;
}

/* The same, of a buffer of 4 KiB pages. */
static double timed_migrate(struct bench_driver *d, void *buf, size_t size,
			    enum bench_where to)
{
	return timed_migrate_pages(d, buf, size, to, false);
}

/* Undoes round_begin(); @buf may be NULL. */
static void round_end(struct bench_driver *d, void *buf, size_t size)
{
	if (d->bounce)
		munmap(d->bounce, size);
	d->bounce = NULL;
	free(d->where);
	d->where = NULL;
	if (buf)
		munmap(buf, size);
}

/*
 * A round's fresh buffer of @size bytes (aligned to @align, when not 0;
 * MADV_HUGEPAGE when @huge, else MADV_NOHUGEPAGE), filled from @seed, and
 * @d's scratch for it; NULL when out of memory.  round_end() undoes it.
 */
static void *round_begin(struct bench_driver *d, size_t size, size_t align,
			 bool huge, uint64_t seed)
{
	void *buf = align ? map_aligned(size, align, huge) : map_buffer(size);

	d->where = malloc(size / page_size);
	d->bounce = d->reads_back ? map_buffer(size) : NULL;
	if (!buf || !d->where || (d->reads_back && !d->bounce)) {
		fprintf(stderr, "bench_migrate: out of memory for %zu MiB\n",
			size / MIB);
		round_end(d, buf, size);
		return NULL;
	}
	if (d->bounce)
		memset(d->bounce, 0, size); /* populated, outside the timing */
	fill(buf, size, seed);
	return buf;
}

/*
 * The buffer of a round: where it is, whether it asks for huge pages and,
 * when it does, how much of it the kernel backed with them (KiB, -1: not
 * known) after the fill, after to system and after the fault-back.
 */
struct round_buf {
	size_t align; /* 0: wherever mmap() puts it */
	bool huge;    /* MADV_HUGEPAGE, else MADV_NOHUGEPAGE */
	long huge_kib[HUGE_STAGES];
};

/*
 * One round on @d with a fresh buffer of @size bytes as @rb says: the
 * times of the three operations go to @t[op], the time of every hmmgpu
 * operation of the round (the untimed migration too) is added to
 * *@wall_s.  Returns false when a check failed.
 */
static bool driver_round(struct bench_driver *d, size_t size, uint64_t seed,
			 struct round_buf *rb, double t[OP_COUNT],
			 double *wall_s)
{
	double t0, t1, again;
	bool ok = false;
	void *buf;

	buf = round_begin(d, size, rb->align, rb->huge, seed);
	if (!buf)
		return false;
	if (rb->huge)
		rb->huge_kib[HUGE_FILLED] = anon_huge_kib(buf, size);

	t[OP_TO_DEVICE] = timed_migrate_pages(d, buf, size, WHERE_DEVICE,
					      rb->huge);
	if (t[OP_TO_DEVICE] < 0)
		goto out;
	/* test_hmm hands back what its device holds: check it too */
	if (d->bounce &&
	    !verify(d->bounce, size, seed, "in test_hmm's device copy"))
		goto out;

	t[OP_TO_SYSTEM] = timed_migrate_pages(d, buf, size, WHERE_SYSTEM,
					      rb->huge);
	if (t[OP_TO_SYSTEM] < 0 ||
	    !verify(buf, size, seed, "after to system"))
		goto out;
	if (rb->huge)
		rb->huge_kib[HUGE_TO_SYSTEM] = anon_huge_kib(buf, size);

	again = timed_migrate_pages(d, buf, size, WHERE_DEVICE, rb->huge);
	if (again < 0)
		goto out;

	t0 = now_s();
	sink += touch_pages(buf, size);
	t1 = now_s();
	t[OP_FAULT_BACK] = t1 - t0;
	if (!check_at(d, buf, size, WHERE_SYSTEM, "after CPU fault-back") ||
	    !verify(buf, size, seed, "after CPU fault-back"))
		goto out;
	if (rb->huge)
		rb->huge_kib[HUGE_FAULT_BACK] = anon_huge_kib(buf, size);

	*wall_s += t[OP_TO_DEVICE] + t[OP_TO_SYSTEM] + again + t[OP_FAULT_BACK];
	ok = true;
out:
	round_end(d, buf, size);
	return ok;
}

/*
 * The start line of the threads of a multi-threaded fault-back: the main
 * thread lets them go once all of them wait, so that creating them is
 * not timed, or tells them to give up when one could not be created.
 */
struct fault_start {
	pthread_mutex_t lock;
	pthread_cond_t cond;  /* ready went up, or go was set */
	unsigned int ready;   /* threads waiting at the line */
	bool go;
	bool cancelled;
};

/* One reader of a multi-threaded fault-back: its share and its times. */
struct fault_thread {
	pthread_t thread;
	struct fault_start *start;
	const void *buf; /* its share: whole 2 MiB blocks */
	size_t size;
	uint64_t sum;
	double t0, t1;
};

static void *fault_thread_main(void *arg)
{
	struct fault_thread *ft = arg;
	struct fault_start *s = ft->start;
	bool run;

	pthread_mutex_lock(&s->lock);
	s->ready++;
	pthread_cond_broadcast(&s->cond);
	while (!s->go)
		pthread_cond_wait(&s->cond, &s->lock);
	run = !s->cancelled;
	pthread_mutex_unlock(&s->lock);
	if (!run)
		return NULL;
	ft->t0 = now_s();
	ft->sum = touch_pages(ft->buf, ft->size);
	ft->t1 = now_s();
	return NULL;
}

/* Creates @n readers of @buf, each with its share; how many were created. */
static unsigned int fault_threads_create(struct fault_thread *ft,
					 unsigned int n, struct fault_start *s,
					 uint8_t *buf, size_t size)
{
	size_t nblocks = size / REGION;
	unsigned int i;
	int ret;

	for (i = 0; i < n; i++) {
		/* as many blocks each as they divide; no block is shared */
		size_t first = nblocks * i / n, end = nblocks * (i + 1) / n;

		ft[i] = (struct fault_thread){
			.start = s,
			.buf = buf + first * REGION,
			.size = (end - first) * REGION,
		};
		ret = pthread_create(&ft[i].thread, NULL, fault_thread_main,
				     &ft[i]);
		if (ret) {
			fprintf(stderr, "bench_migrate: fault-back thread: %s\n",
				strerror(ret));
			break;
		}
	}
	return i;
}

/*
 * CPU fault-back of @buf (2 MiB-aligned, on the device) by @n threads,
 * each reading one byte per page of its own share.  The time from the
 * first thread leaving the start line to the last one finishing; <0 when
 * the threads could not run.
 */
static double fault_back_threads(void *buf, size_t size, unsigned int n)
{
	struct fault_start s = {
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.cond = PTHREAD_COND_INITIALIZER,
	};
	struct fault_thread ft[MAX_FAULT_THREADS];
	unsigned int created;
	double t0, t1;

	created = fault_threads_create(ft, n, &s, buf, size);
	pthread_mutex_lock(&s.lock);
	while (created == n && s.ready < n)
		pthread_cond_wait(&s.cond, &s.lock);
	s.cancelled = created < n;
	s.go = true;
	pthread_cond_broadcast(&s.cond);
	pthread_mutex_unlock(&s.lock);
	for (unsigned int i = 0; i < created; i++)
		pthread_join(ft[i].thread, NULL);
	if (created < n)
		return -1;
	t0 = ft[0].t0;
	t1 = ft[0].t1;
	for (unsigned int i = 0; i < n; i++) {
		sink += ft[i].sum;
		if (ft[i].t0 < t0)
			t0 = ft[i].t0;
		if (ft[i].t1 > t1)
			t1 = ft[i].t1;
	}
	return t1 - t0;
}

/*
 * One multi-threaded fault-back round on @d: a fresh 2 MiB-aligned buffer
 * of @size bytes to the device (untimed, checked), then read back by @n
 * threads; every page must then be in system RAM and the data must
 * match.  Its time, or <0 when a check failed.
 */
static double fault_threads_round(struct bench_driver *d, size_t size,
				  unsigned int n, uint64_t seed)
{
	double t = -1;
	char when[64];
	void *buf;

	buf = round_begin(d, size, REGION, false, seed);
	if (!buf)
		return -1;
	if (timed_migrate(d, buf, size, WHERE_DEVICE) < 0)
		goto out;
	t = fault_back_threads(buf, size, n);
	if (t < 0)
		goto out;
	snprintf(when, sizeof(when), "after CPU fault-back by %u threads", n);
	if (!check_at(d, buf, size, WHERE_SYSTEM, when) ||
	    !verify(buf, size, seed, when))
		t = -1;
out:
	round_end(d, buf, size);
	return t;
}

/* Copies per memcpy round; the round keeps the fastest (it is the limit). */
#define MEMCPY_REPS 3

/* memcpy of @size bytes between two populated buffers; <0 on failure. */
static double memcpy_round(size_t size, uint64_t seed)
{
	void *src = map_buffer(size), *dst = map_buffer(size);
	double t = -1, t0, dt;

	if (!src || !dst) {
		fprintf(stderr, "bench_migrate: out of memory for %zu MiB\n",
			size / MIB);
		goto out;
	}
	fill(src, size, seed);
	memset(dst, 0, size);
	for (int i = 0; i < MEMCPY_REPS; i++) {
		t0 = now_s();
		memcpy(dst, src, size);
		dt = now_s() - t0;
		if (t < 0 || dt < t)
			t = dt;
	}
	if (memcmp(dst, src, size)) {
		fprintf(stderr, "bench_migrate: DATA CHECK FAILED after memcpy\n");
		t = -1;
	}
out:
	if (src)
		munmap(src, size);
	if (dst)
		munmap(dst, size);
	return t;
}

static void stats_delta(const struct drm_hmmgpu_stats *a,
			const struct drm_hmmgpu_stats *b,
			struct bench_stats_delta *d)
{
	d->valid = true;
	d->batches = b->batches - a->batches;
	d->copy_busy_ns = b->copy_busy_ns - a->copy_busy_ns;
	d->cpu_faults = b->cpu_faults - a->cpu_faults;
	d->pages_to_device = d->pages_to_system = 0;
	for (int c = 0; c < HMMGPU_CAUSE_COUNT; c++) {
		d->pages_to_device += b->pages[HMMGPU_DIR_TO_DEVICE][c] -
				      a->pages[HMMGPU_DIR_TO_DEVICE][c];
		d->pages_to_system += b->pages[HMMGPU_DIR_TO_SYSTEM][c] -
				      a->pages[HMMGPU_DIR_TO_SYSTEM][c];
	}
	d->pages_cpu_fault =
		b->pages[HMMGPU_DIR_TO_SYSTEM][HMMGPU_CAUSE_CPU_FAULT] -
		a->pages[HMMGPU_DIR_TO_SYSTEM][HMMGPU_CAUSE_CPU_FAULT];
	for (int i = 0; i < HMMGPU_LATENCY_BUCKETS; i++)
		d->fault_latency[i] = b->fault_latency[i] - a->fault_latency[i];
}

/*
 * Measures one size: rounds of memcpy, hmmgpu and test_hmm interleaved
 * (the drivers' order alternating), so that a change of load on the host
 * during the run weighs on all of them alike.  Returns false when a check
 * failed.
 */
static bool run_size(struct bench_driver *drivers, size_t size,
		     unsigned int rounds, const bool run[DRV_COUNT],
		     struct bench_result *res)
{
	double t[DRV_COUNT][OP_COUNT][MAX_ROUNDS], tm[MAX_ROUNDS];
	struct bench_driver *hg = &drivers[DRV_HMMGPU];
	struct drm_hmmgpu_stats before, after;
	bool stats;

	stats = run[DRV_HMMGPU] && hg->have_stats &&
		hmmgpu_stats(hg, &before) == 0;

	for (unsigned int r = 0; r < rounds; r++) {
		uint64_t seed = ((uint64_t)size << 8) ^ r;

		fprintf(stderr, "bench_migrate: %zu MiB round %u/%u\n",
			size / MIB, r + 1, rounds);
		tm[r] = memcpy_round(size, seed);
		if (tm[r] < 0)
			return false;
		if (verbose)
			printf("# %4zu MiB round %u memcpy   %10.3f ms (best of %d)\n",
			       size / MIB, r + 1, tm[r] * 1e3, MEMCPY_REPS);
		for (int k = 0; k < DRV_COUNT; k++) {
			int drv = r % 2 ? DRV_COUNT - 1 - k : k;
			struct round_buf rb = { 0 };
			double ot[OP_COUNT], wall = 0;

			if (!run[drv])
				continue;
			if (!driver_round(&drivers[drv], size,
					  seed ^ ((uint64_t)(drv + 1) << 4), &rb,
					  ot, &wall))
				return false;
			for (int op = 0; op < OP_COUNT; op++)
				t[drv][op][r] = ot[op];
			if (drv == DRV_HMMGPU)
				res->stats.wall_s += wall;
			if (verbose)
				printf("# %4zu MiB round %u %-8s to device %10.3f ms, to system %10.3f ms, fault-back %10.3f ms\n",
				       size / MIB, r + 1, drivers[drv].name,
				       ot[OP_TO_DEVICE] * 1e3,
				       ot[OP_TO_SYSTEM] * 1e3,
				       ot[OP_FAULT_BACK] * 1e3);
		}
	}

	rates_of(size, tm, rounds, &res->memcpy_rate);
	for (int drv = 0; drv < DRV_COUNT; drv++)
		for (int op = 0; op < OP_COUNT && run[drv]; op++)
			rates_of(size, t[drv][op], rounds, &res->rate[drv][op]);
	if (stats && hmmgpu_stats(hg, &after) == 0)
		stats_delta(&before, &after, &res->stats);
	return true;
}

/*
 * The multi-threaded fault-back rows of one size: rounds of every thread
 * count, the drivers' order alternating, as in run_size().  A thread
 * count with fewer 2 MiB blocks than threads is not measured.  Returns
 * false when a check failed.
 */
static bool run_fault_threads(struct bench_driver *drivers, size_t size,
			      unsigned int rounds, const bool run[DRV_COUNT],
			      struct bench_result *res)
{
	double t[DRV_COUNT][FAULT_THREAD_ROWS][MAX_ROUNDS];

	for (unsigned int r = 0; r < rounds; r++) {
		fprintf(stderr, "bench_migrate: %zu MiB fault-back by threads round %u/%u\n",
			size / MIB, r + 1, rounds);
		for (size_t i = 0; i < FAULT_THREAD_ROWS; i++) {
			unsigned int n = fault_threads[i];

			if (size / REGION < n)
				continue;
			for (int k = 0; k < DRV_COUNT; k++) {
				int drv = r % 2 ? DRV_COUNT - 1 - k : k;
				uint64_t seed = ((uint64_t)size << 8) ^ r ^
						((uint64_t)n << 40) ^
						((uint64_t)(drv + 1) << 4);

				if (!run[drv])
					continue;
				t[drv][i][r] = fault_threads_round(&drivers[drv],
								   size, n, seed);
				if (t[drv][i][r] < 0)
					return false;
				if (verbose)
					printf("# %4zu MiB round %u %-8s fault-back by %u threads %10.3f ms\n",
					       size / MIB, r + 1,
					       drivers[drv].name, n,
					       t[drv][i][r] * 1e3);
			}
		}
	}
	for (int drv = 0; drv < DRV_COUNT; drv++)
		for (size_t i = 0; i < FAULT_THREAD_ROWS && run[drv]; i++)
			if (size / REGION >= fault_threads[i])
				rates_of(size, t[drv][i], rounds,
					 &res->threads[drv][i]);
	return true;
}

/* Which drivers measure @size; why not goes to @res->skipped. */
static void size_drivers(const struct bench_driver *drivers, size_t size,
			 struct bench_result *res, bool run[DRV_COUNT])
{
	res->size = size;
	for (int drv = 0; drv < DRV_COUNT; drv++) {
		const struct bench_driver *d = &drivers[drv];

		run[drv] = d->available;
		if (d->available && d->mem_total && size > d->mem_total) {
			snprintf(res->skipped[drv], sizeof(res->skipped[drv]),
				 "%s not measured: larger than its %" PRIu64 " MiB of device memory",
				 d->name, d->mem_total / MIB);
			run[drv] = false;
		}
	}
}

/*
 * The huge-page table's rounds of one size: hmmgpu and test_hmm, each
 * with a THP buffer and a 4 KiB one, the four in an order that reverses
 * from round to round.  Returns false when a check failed.
 */
static bool run_thp_size(struct bench_driver *drivers, size_t size,
			 unsigned int rounds, struct thp_result *res)
{
	double t[DRV_COUNT][PAGES_COUNT][OP_COUNT][MAX_ROUNDS];
	const int nruns = DRV_COUNT * PAGES_COUNT;
	bool run[DRV_COUNT];
	struct bench_result sr = { 0 };

	size_drivers(drivers, size, &sr, run);
	res->size = size;
	memcpy(res->skipped, sr.skipped, sizeof(res->skipped));
	for (int drv = 0; drv < DRV_COUNT; drv++)
		for (int st = 0; st < HUGE_STAGES; st++)
			res->huge_pct[drv][st] = 100;

	for (unsigned int r = 0; r < rounds; r++) {
		fprintf(stderr, "bench_migrate: %zu MiB huge pages round %u/%u\n",
			size / MIB, r + 1, rounds);
		for (int k = 0; k < nruns; k++) {
			int i = r % 2 ? nruns - 1 - k : k;
			int drv = i / PAGES_COUNT, pg = i % PAGES_COUNT;
			struct round_buf rb = {
				.align = REGION,
				.huge = pg == PAGES_HUGE,
			};
			uint64_t seed = ((uint64_t)size << 8) ^ r ^
					((uint64_t)(drv + 1) << 4) ^
					((uint64_t)(pg + 1) << 48);
			double ot[OP_COUNT], wall = 0;

			if (!run[drv])
				continue;
			if (!driver_round(&drivers[drv], size, seed, &rb, ot,
					  &wall))
				return false;
			for (int op = 0; op < OP_COUNT; op++)
				t[drv][pg][op][r] = ot[op];
			for (int st = 0; rb.huge && st < HUGE_STAGES; st++) {
				double pct = rb.huge_kib[st] < 0 ? -1 :
					     (double)rb.huge_kib[st] * 1024 * 100 /
						     (double)size;
				double *min = &res->huge_pct[drv][st];

				if (*min >= 0 && (pct < 0 || pct < *min))
					*min = pct;
			}
			if (verbose)
				printf("# %4zu MiB round %u %-8s %-3s to device %10.3f ms, to system %10.3f ms, fault-back %10.3f ms\n",
				       size / MIB, r + 1, drivers[drv].name,
				       pages_names[pg], ot[OP_TO_DEVICE] * 1e3,
				       ot[OP_TO_SYSTEM] * 1e3,
				       ot[OP_FAULT_BACK] * 1e3);
		}
	}
	for (int drv = 0; drv < DRV_COUNT; drv++)
		for (int pg = 0; pg < PAGES_COUNT && run[drv]; pg++)
			for (int op = 0; op < OP_COUNT; op++)
				rates_of(size, t[drv][pg][op], rounds,
					 &res->rate[drv][pg][op]);
	return true;
}

/* One size: the migration table's rounds, then the threads' rounds. */
static bool measure_size(struct bench_driver *drivers, size_t size,
			 unsigned int rounds, struct bench_result *res)
{
	bool run[DRV_COUNT];

	size_drivers(drivers, size, res, run);
	return run_size(drivers, size, rounds, run, res) &&
	       run_fault_threads(drivers, size, rounds, run, res);
}

/* --- output --------------------------------------------------------------- */

static void print_rate(double v)
{
	if (v > 0)
		printf(" %8.1f", v);
	else
		printf(" %8s", "-");
}

static void print_ratio(double a, double b)
{
	if (a > 0 && b > 0)
		printf(" %8.2fx", a / b);
	else
		printf(" %9s", "-");
}

static void print_spread(const struct bench_rates *r)
{
	double pct = spread_pct(r);

	if (pct >= 0)
		printf(" %8.1f", pct);
	else
		printf(" %8s", "-");
}

#define GROUP_WIDTH 37 /* " %8s %8s %9s %9s" less its first space */

/* " | " and @name centred in dashes over @width columns. */
static void print_group(const char *name, int width)
{
	static const char dashes[] = "------------------------------------";
	int len = (int)strlen(name) + 2;
	int left = (width - len) / 2;

	printf(" | %.*s %s %.*s", left, dashes, name, width - len - left,
	       dashes);
}

/* The migration table, of the best rounds or of the median rounds. */
static void print_table(const struct bench_result *res, int nres,
			bool median)
{
	printf("\n%s round:\n%8s %8s", median ? "median" : "best", "", "");
	for (int op = 0; op < OP_COUNT; op++)
		print_group(op_names[op], GROUP_WIDTH);
	printf("\n%8s %8s", "size", "memcpy");
	for (int op = 0; op < OP_COUNT; op++)
		printf(" | %8s %8s %9s %9s", "hmmgpu", "test_hmm", "/test_hmm",
		       "/memcpy");
	printf("\n%8s %8s", "MiB", "MB/s");
	for (int op = 0; op < OP_COUNT; op++)
		printf(" | %8s %8s %9s %9s", "MB/s", "MB/s", "x", "x");
	printf("\n");
	for (int i = 0; i < nres; i++) {
		const struct bench_result *r = &res[i];
		double m = rate_of(&r->memcpy_rate, median);

		printf("%8zu", r->size / MIB);
		print_rate(m);
		for (int op = 0; op < OP_COUNT; op++) {
			double a = rate_of(&r->rate[DRV_HMMGPU][op], median);
			double b = rate_of(&r->rate[DRV_TEST_HMM][op], median);

			printf(" |");
			print_rate(a);
			print_rate(b);
			print_ratio(a, b);
			print_ratio(a, m);
		}
		printf("\n");
	}
}

#define SPREAD_WIDTH 17 /* " %8s %8s" less its first space */

/* How far apart the rounds were: a busy host shows here first. */
static void print_spreads(const struct bench_result *res, int nres)
{
	printf("\nspread of the rounds, (fastest - slowest) / median, %% of the median MB/s:\n");
	printf("%8s %8s", "", "");
	for (int op = 0; op < OP_COUNT; op++)
		print_group(op_short_names[op], SPREAD_WIDTH);
	printf("\n%8s %8s", "size", "memcpy");
	for (int op = 0; op < OP_COUNT; op++)
		printf(" | %8s %8s", "hmmgpu", "test_hmm");
	printf("\n%8s %8s", "MiB", "%");
	for (int op = 0; op < OP_COUNT; op++)
		printf(" | %8s %8s", "%", "%");
	printf("\n");
	for (int i = 0; i < nres; i++) {
		const struct bench_result *r = &res[i];

		printf("%8zu", r->size / MIB);
		print_spread(&r->memcpy_rate);
		for (int op = 0; op < OP_COUNT; op++) {
			printf(" |");
			print_spread(&r->rate[DRV_HMMGPU][op]);
			print_spread(&r->rate[DRV_TEST_HMM][op]);
		}
		printf("\n");
	}
}

static void print_skipped(const struct bench_result *res, int nres)
{
	for (int i = 0; i < nres; i++)
		for (int drv = 0; drv < DRV_COUNT; drv++)
			if (res[i].skipped[drv][0])
				printf("%zu MiB: %s\n", res[i].size / MIB,
				       res[i].skipped[drv]);
}

#define THREADS_WIDTH 27 /* " %8s %8s %9s" less its first space */

static void print_threads_row(const struct bench_result *r, size_t i)
{
	const struct bench_rates *h = &r->threads[DRV_HMMGPU][i];
	const struct bench_rates *t = &r->threads[DRV_TEST_HMM][i];

	printf("%8zu %8u |", r->size / MIB, fault_threads[i]);
	print_rate(h->best);
	print_rate(t->best);
	print_ratio(h->best, t->best);
	printf(" |");
	print_rate(h->median);
	print_rate(t->median);
	print_ratio(h->median, t->median);
	printf(" |");
	print_spread(h);
	print_spread(t);
	printf("\n");
}

/* The multi-threaded CPU fault-back rows. */
static void print_threads(const struct bench_result *res, int nres)
{
	printf("\nCPU fault-back by threads: each reads one byte of every page of its own 2 MiB-aligned share\n"
	       "of the buffer; time from the start line to the last thread's end; MB/s of the whole buffer:\n");
	printf("%8s %8s", "", "");
	print_group("best round", THREADS_WIDTH);
	print_group("median round", THREADS_WIDTH);
	print_group("spread", SPREAD_WIDTH);
	printf("\n%8s %8s", "size", "threads");
	for (int g = 0; g < 2; g++)
		printf(" | %8s %8s %9s", "hmmgpu", "test_hmm", "/test_hmm");
	printf(" | %8s %8s\n", "hmmgpu", "test_hmm");
	printf("%8s %8s", "MiB", "");
	for (int g = 0; g < 2; g++)
		printf(" | %8s %8s %9s", "MB/s", "MB/s", "x");
	printf(" | %8s %8s\n", "%", "%");
	for (int i = 0; i < nres; i++)
		for (size_t k = 0; k < FAULT_THREAD_ROWS; k++)
			print_threads_row(&res[i], k);
	printf("(a size with fewer 2 MiB blocks than threads is not measured with that many threads)\n");
}

#define HUGE_WIDTH 32 /* " %10s %10s %10s" less its first space */

/* The kernel's THP mode, the bracketed word of its sysfs file, or "?". */
static void thp_mode(char *buf, size_t len)
{
	char line[128] = "", *open_br, *close_br;
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");

	snprintf(buf, len, "?");
	if (!f)
		return;
	if (fgets(line, sizeof(line), f)) {
		open_br = strchr(line, '[');
		close_br = open_br ? strchr(open_br, ']') : NULL;
		if (close_br)
			snprintf(buf, len, "%.*s", (int)(close_br - open_br - 1),
				 open_br + 1);
	}
	fclose(f);
}

static void print_pct(double v, int width)
{
	if (v >= 0)
		printf(" %*.0f", width, v);
	else
		printf(" %*s", width, "-");
}

/* A driver of a huge-page row was measured. */
static bool thp_measured(const struct thp_result *r, int drv)
{
	return r->rate[drv][PAGES_4K][OP_TO_DEVICE].best > 0;
}

/*
 * The huge-page table of the best or the median rounds; the best one
 * also shows how much of the THP buffers was in huge pages.
 */
static void print_thp_table(const struct thp_result *res, int nres,
			    bool median)
{
	printf("\n%s round:\n%8s %-8s", median ? "median" : "best", "", "");
	for (int op = 0; op < OP_COUNT; op++)
		print_group(op_names[op], THREADS_WIDTH);
	if (!median)
		print_group("THP buffer in huge pages", HUGE_WIDTH);
	printf("\n%8s %-8s", "size", "driver");
	for (int op = 0; op < OP_COUNT; op++)
		printf(" | %8s %8s %9s", "THP", "4K", "THP/4K");
	if (!median)
		printf(" | %10s %10s %10s", "filled", "to system", "fault-back");
	printf("\n%8s %-8s", "MiB", "");
	for (int op = 0; op < OP_COUNT; op++)
		printf(" | %8s %8s %9s", "MB/s", "MB/s", "x");
	if (!median)
		printf(" | %10s %10s %10s", "%", "%", "%");
	printf("\n");
	for (int i = 0; i < nres; i++) {
		for (int drv = 0; drv < DRV_COUNT; drv++) {
			const struct thp_result *r = &res[i];

			printf("%8zu %-8s", r->size / MIB,
			       drv == DRV_HMMGPU ? "hmmgpu" : "test_hmm");
			for (int op = 0; op < OP_COUNT; op++) {
				double h = rate_of(&r->rate[drv][PAGES_HUGE][op],
						   median);
				double f = rate_of(&r->rate[drv][PAGES_4K][op],
						   median);

				printf(" |");
				print_rate(h);
				print_rate(f);
				print_ratio(h, f);
			}
			if (!median) {
				printf(" |");
				for (int st = 0; st < HUGE_STAGES; st++)
					print_pct(thp_measured(r, drv) ?
							  r->huge_pct[drv][st] : -1,
						  10);
			}
			printf("\n");
		}
	}
}

/* The spread of the huge-page table's rounds. */
static void print_thp_spreads(const struct thp_result *res, int nres)
{
	printf("\nspread of the rounds, (fastest - slowest) / median, %% of the median MB/s:\n");
	printf("%8s %-8s", "", "");
	for (int op = 0; op < OP_COUNT; op++)
		print_group(op_short_names[op], SPREAD_WIDTH);
	printf("\n%8s %-8s", "size", "driver");
	for (int op = 0; op < OP_COUNT; op++)
		printf(" | %8s %8s", "THP", "4K");
	printf("\n%8s %-8s", "MiB", "");
	for (int op = 0; op < OP_COUNT; op++)
		printf(" | %8s %8s", "%", "%");
	printf("\n");
	for (int i = 0; i < nres; i++) {
		for (int drv = 0; drv < DRV_COUNT; drv++) {
			printf("%8zu %-8s", res[i].size / MIB,
			       drv == DRV_HMMGPU ? "hmmgpu" : "test_hmm");
			for (int op = 0; op < OP_COUNT; op++) {
				printf(" |");
				print_spread(&res[i].rate[drv][PAGES_HUGE][op]);
				print_spread(&res[i].rate[drv][PAGES_4K][op]);
			}
			printf("\n");
		}
	}
}

/* Where the kernel did not give a THP buffer huge pages, or took them away. */
static void print_thp_notes(const struct thp_result *res, int nres)
{
	static const char *const stage_names[HUGE_STAGES] = {
		[HUGE_FILLED] = "after the fill",
		[HUGE_TO_SYSTEM] = "after to system",
		[HUGE_FAULT_BACK] = "after CPU fault-back",
	};

	for (int i = 0; i < nres; i++) {
		for (int drv = 0; drv < DRV_COUNT; drv++) {
			const struct thp_result *r = &res[i];
			const double *pct = r->huge_pct[drv];
			const char *name = drv == DRV_HMMGPU ? "hmmgpu" : "test_hmm";

			if (r->skipped[drv][0]) {
				printf("%zu MiB: %s\n", r->size / MIB,
				       r->skipped[drv]);
				continue;
			}
			if (!thp_measured(r, drv))
				continue;
			if (pct[HUGE_FILLED] < 0) {
				printf("note: %zu MiB, %s: /proc/self/smaps did not tell how much of the THP buffer was in huge pages\n",
				       r->size / MIB, name);
				continue;
			}
			if (pct[HUGE_FILLED] < 100) {
				printf("note: %zu MiB, %s: THE KERNEL DID NOT GIVE HUGE PAGES: only %.0f%% of a THP buffer was in huge pages\n"
				       "      after the fill (AnonHugePages), so its THP row measures 4 KiB pages in part\n",
				       r->size / MIB, name, pct[HUGE_FILLED]);
				continue;
			}
			for (int st = HUGE_TO_SYSTEM; st < HUGE_STAGES; st++)
				if (pct[st] < 100)
					printf("note: %zu MiB, %s: the THP buffer came back partly in 4 KiB pages: %s, %.0f%% was in huge pages\n",
					       r->size / MIB, name,
					       stage_names[st], pct[st]);
		}
	}
}

/*
 * The huge-page table: THP buffers against 4 KiB ones, with hmmgpu's
 * device THP; one line saying why not without it.
 */
static void print_thp(const struct bench_driver *hg,
		      const struct thp_result *res, int nres,
		      const char *not_sized)
{
	char mode[32];

	if (!hg->available) {
		printf("\nhuge pages against 4 KiB pages: not measured: hmmgpu: %s\n",
		       hg->why);
		return;
	}
	if (!hg->device_thp) {
		printf("\nhuge pages against 4 KiB pages: not measured: device THP is not available on this kernel: %s\n",
		       hg->thp_why);
		return;
	}
	thp_mode(mode, sizeof(mode));
	printf("\nhuge pages against 4 KiB pages (hmmgpu with 2 MiB device pages), MB/s = 1e6 bytes/s:\n"
	       "  method    per round, driver and buffer: a fresh 2 MiB-aligned buffer, MADV_HUGEPAGE (THP) or\n"
	       "            MADV_NOHUGEPAGE (4K), filled; then the steps and checks of the migration table; the four\n"
	       "            interleaved, their order reversing from round to round.  THP buffer in huge pages:\n"
	       "            AnonHugePages of the buffer in /proc/self/smaps, %% of its size, the least of the rounds,\n"
	       "            after the fill, after to system, after CPU fault-back (transparent_hugepage: %s)\n",
	       mode);
	if (not_sized[0])
		printf("  sizes     %s\n", not_sized);
	print_thp_table(res, nres, false);
	print_thp_table(res, nres, true);
	print_thp_spreads(res, nres);
	print_thp_notes(res, nres);
}

struct bench_target {
	enum bench_op op;
	bool vs_memcpy; /* else vs test_hmm */
	double min;
};

/*
 * The targets of issue #13 at 64 MiB for order-0 device pages (every
 * kernel), from the migration table.
 */
static const struct bench_target targets[] = {
	{ OP_TO_DEVICE, true, 0.5 },
	{ OP_TO_SYSTEM, true, 0.5 },
	{ OP_TO_SYSTEM, false, 1.5 },
	{ OP_FAULT_BACK, false, 5.0 },
};

/*
 * Its targets with device THP (7.3), from the huge-page table: hmmgpu's
 * THP buffers against its 4 KiB ones (vs_memcpy false) and against
 * memcpy of the migration table, in both directions.
 */
static const struct bench_target thp_targets[] = {
	{ OP_TO_DEVICE, false, 3.0 },
	{ OP_TO_SYSTEM, false, 3.0 },
	{ OP_TO_DEVICE, true, 0.7 },
	{ OP_TO_SYSTEM, true, 0.7 },
};

#define TARGET_SIZE (64 * MIB)

/*
 * One target's line: @a / @b of the best rounds, then of the median
 * rounds (index 0, 1), against @min; a rate of 0 was not measured.
 */
static void print_target_line(const char *op, const char *what, double min,
			      const double a[2], const double b[2])
{
	printf("  %-14s %-17s >= %.1fx:", op, what, min);
	for (int m = 0; m < 2; m++) {
		int width = m ? 0 : 16;

		if (a[m] > 0 && b[m] > 0)
			printf(" %5.2fx %-*s", a[m] / b[m], width ? width - 7 : 0,
			       a[m] / b[m] >= min ? "met" : "NOT met");
		else
			printf(" %-*s", width, "not measured");
	}
	printf("\n");
}

static void print_targets(const struct bench_result *res, int nres,
			  const struct thp_result *thp, int nthp)
{
	const struct bench_result *r = NULL;
	const struct thp_result *h = NULL;

	for (int i = 0; i < nres; i++)
		if (res[i].size == TARGET_SIZE)
			r = &res[i];
	for (int i = 0; i < nthp; i++)
		if (thp[i].size == TARGET_SIZE)
			h = &thp[i];
	printf("\n%-43s %-16s %s\n", "targets at 64 MiB (informational):",
	       "best round", "median round");
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		const struct bench_target *t = &targets[i];
		double a[2] = { 0, 0 }, b[2] = { 0, 0 };

		for (int m = 0; r && m < 2; m++) {
			a[m] = rate_of(&r->rate[DRV_HMMGPU][t->op], m);
			b[m] = t->vs_memcpy ?
				       rate_of(&r->memcpy_rate, m) :
				       rate_of(&r->rate[DRV_TEST_HMM][t->op], m);
		}
		print_target_line(op_names[t->op],
				  t->vs_memcpy ? "hmmgpu/memcpy" :
						 "hmmgpu/test_hmm",
				  t->min, a, b);
	}
	if (nthp < 0)
		return; /* no device THP: print_thp() said why */
	for (size_t i = 0; i < sizeof(thp_targets) / sizeof(thp_targets[0]); i++) {
		const struct bench_target *t = &thp_targets[i];
		double a[2] = { 0, 0 }, b[2] = { 0, 0 };

		for (int m = 0; h && m < 2; m++) {
			a[m] = rate_of(&h->rate[DRV_HMMGPU][PAGES_HUGE][t->op], m);
			if (!t->vs_memcpy)
				b[m] = rate_of(&h->rate[DRV_HMMGPU][PAGES_4K][t->op],
					       m);
			else if (r)
				b[m] = rate_of(&r->memcpy_rate, m);
		}
		print_target_line(op_names[t->op],
				  t->vs_memcpy ? "hmmgpu THP/memcpy" :
					       "hmmgpu THP/4K",
				  t->min, a, b);
	}
}

/* Lower bound in us of the bucket holding quantile @q of histogram @h. */
static long long latency_quantile(const uint64_t *h, double q)
{
	uint64_t total = 0, seen = 0;

	for (int i = 0; i < HMMGPU_LATENCY_BUCKETS; i++)
		total += h[i];
	if (!total)
		return -1;
	for (int i = 0; i < HMMGPU_LATENCY_BUCKETS; i++) {
		seen += h[i];
		if ((double)seen >= q * (double)total)
			return 1ll << i;
	}
	return 1ll << (HMMGPU_LATENCY_BUCKETS - 1);
}

static void print_latency(const uint64_t *h, double q)
{
	long long us = latency_quantile(h, q);

	if (us < 0)
		printf(" %7s", "-");
	else
		printf(" %7lld", us);
}

static void print_stats(const struct bench_result *res, int nres)
{
	bool any = false;

	for (int i = 0; i < nres; i++)
		any |= res[i].stats.valid;
	if (!any)
		return;
	printf("\nhmmgpu counters (STATS, device scope), delta over each size's rounds:\n");
	printf("%8s %9s %11s %10s %10s %8s %10s %9s %7s %7s\n", "size",
	       "batches", "pages/batch", "copy busy", "mig. wall", "busy",
	       "CPU faults", "per fault", "p50", "p90");
	printf("%8s %9s %11s %10s %10s %8s %10s %9s %7s %7s\n", "MiB", "", "",
	       "ms", "ms", "%", "", "KiB", "us", "us");
	for (int i = 0; i < nres; i++) {
		const struct bench_stats_delta *s = &res[i].stats;
		uint64_t pages = s->pages_to_device + s->pages_to_system;

		if (!s->valid)
			continue;
		printf("%8zu %9" PRIu64, res[i].size / MIB, s->batches);
		if (s->batches)
			printf(" %11.1f", (double)pages / (double)s->batches);
		else
			printf(" %11s", "-");
		printf(" %10.1f %10.1f", (double)s->copy_busy_ns / 1e6,
		       s->wall_s * 1e3);
		if (s->wall_s > 0)
			printf(" %7.1f%%", (double)s->copy_busy_ns / 1e7 / s->wall_s);
		else
			printf(" %8s", "-");
		printf(" %10" PRIu64, s->cpu_faults);
		if (s->cpu_faults)
			printf(" %9.1f", (double)s->pages_cpu_fault *
						 (double)page_size / 1024.0 /
						 (double)s->cpu_faults);
		else
			printf(" %9s", "-");
		print_latency(s->fault_latency, 0.5);
		print_latency(s->fault_latency, 0.9);
		printf("\n");
	}
	printf("(mig. wall: time in the MIGRATE ioctls, timed or not, and in the fault-back loops;\n"
	       " copy busy: submission to fence of every copy batch; p50/p90: CPU fault latency,\n"
	       " lower bound of the driver's log2 bucket)\n");
}

#define PARAMS_DIR "/sys/module/hmmgpu/parameters"
#define PARAMS_COLUMNS 100 /* where the params line wraps */

static int param_entry(const struct dirent *e)
{
	return e->d_name[0] != '.';
}

/*
 * Every hmmgpu module parameter, name=value in name order, as the module
 * reports it (0 often means "the default"; the effective copy engine and
 * channels are on the hmmgpu line).
 */
static void print_module_params(void)
{
	struct dirent **names;
	int n, col = 0;

	n = scandir(PARAMS_DIR, &names, param_entry, alphasort);
	if (n < 0) {
		printf("  params    %s: %s\n", PARAMS_DIR, strerror(errno));
		return;
	}
	printf("  params   ");
	for (int i = 0; i < n; i++) {
		char val[64];
		int len;

		module_param(names[i]->d_name, val, sizeof(val));
		len = (int)(strlen(names[i]->d_name) + strlen(val)) + 2;
		if (col && col + len > PARAMS_COLUMNS - 12) {
			printf("\n           ");
			col = 0;
		}
		printf(" %s=%s", names[i]->d_name, val);
		col += len;
		free(names[i]);
	}
	printf("\n");
	free(names);
}

/* --- a busy machine (-L) ---------------------------------------------------- */

#define MAX_LOAD 16

static pid_t load_pids[MAX_LOAD];
static unsigned int nload;

/*
 * Starts @n processes that spin on the CPU until stop_load(): the
 * migrations then compete for the CPUs as on a busy host. Returns false
 * when fork() failed (the ones started are stopped).
 */
static bool start_load(unsigned int n)
{
	for (nload = 0; nload < n; nload++) {
		pid_t pid = fork();

		if (pid < 0) {
			fprintf(stderr, "bench_migrate: fork for -L: %s\n",
				strerror(errno));
			return false;
		}
		if (pid == 0) {
			volatile unsigned long spin = 0;

			for (;;)
				spin++;
		}
		load_pids[nload] = pid;
	}
	return true;
}

static void stop_load(void)
{
	for (unsigned int i = 0; i < nload; i++) {
		kill(load_pids[i], SIGKILL);
		waitpid(load_pids[i], NULL, 0);
	}
	nload = 0;
}

static void print_header(struct bench_driver *drivers, unsigned int rounds,
			 bool migration)
{
	struct utsname u;

	printf("bench_migrate: page migration throughput, %u rounds (best, median, spread), MB/s = 1e6 bytes/s\n",
	       rounds);
	if (uname(&u) == 0)
		printf("  kernel    %s %s, %ld CPUs online, page %zu B\n",
		       u.release, u.machine, sysconf(_SC_NPROCESSORS_ONLN),
		       page_size);
	for (int i = 0; i < DRV_COUNT; i++) {
		struct bench_driver *d = &drivers[i];

		if (d->available)
			printf("  %-9s %s\n", d->name, d->desc);
		else
			printf("  %-9s not measured: %s\n", d->name, d->why);
		if (i == DRV_HMMGPU && d->available) {
			printf("  features  %s\n", d->features);
			print_module_params();
		}
	}
	if (nload)
		printf("  load      %u busy-looping processes beside the benchmark (-L): a busy machine\n",
		       nload);
	if (migration)
		printf("  method    per round and driver: a fresh anonymous buffer (MADV_NOHUGEPAGE), filled; to device,\n"
		       "            to system, data check, to device (untimed), CPU fault-back, data check; residency checked\n"
		       "            after every step; memcpy, hmmgpu and test_hmm rounds interleaved.  Then CPU fault-back\n"
		       "            by 1, 2, 4 threads of a fresh 2 MiB-aligned buffer migrated to the device (untimed)\n");
	fflush(stdout);
}

/* --- device view: fault-driven first touch --------------------------------- */

/*
 * A device thread reads the first word of every page of a fresh buffer
 * through a view, in order: every page it reaches that is not on the
 * device yet is a device fault, which migrates the aligned block of the
 * view's granularity and, with density prefetch, the rest of the 2 MiB
 * region once more than prefetch_pct percent of it is there.  Against it:
 * MIGRATE of the same range to the device (explicit prefetch).  Both for
 * every granularity, with prefetch_pct at the module's value (50 when
 * that is 0) and at 0, set for each configuration and restored at the
 * end.  Every pass checks the words it read, then every page must be on
 * the device and the whole buffer, read through the view, must match.
 */

#define KIB 1024
#define MAX_GRANS 8
#define VIEW_PCT_DEFAULT 50 /* prefetch on, when the module has it off */
#define CLOCK_CALLS 10000   /* calls that measure the cost of a time stamp */

/* One row of the view table: a granularity, prefetch on or off. */
struct view_result {
	size_t gran;
	unsigned int pct; /* prefetch_pct during the row's rounds; 0: off */
	/* counters of the picked round's first-touch pass; faults' range */
	uint64_t faults, faults_min, faults_max;
	uint64_t pages_fault, pages_prefetch;
	uint64_t map_faults; /* the pass after the explicit prefetch */
	double touch_mbps, explicit_mbps, both_mbps;
	/* the faults of the picked round's first-touch pass, in us */
	double lat_p50_us, lat_p99_us, nonfault_max_us;
	uint64_t nlat;
};

/* What the device thread does and what it saw. */
struct view_pass {
	const volatile uint64_t *view;
	size_t npages;
	uint64_t *words;  /* [npages]: the first word of every page, as read */
	uint64_t *stamps; /* [npages + 1]: ns, before the first read and after each */
};

/* Counter deltas of one pass (STATS, file scope). */
struct view_counts {
	uint64_t faults, pages_fault, pages_prefetch, pages_other;
};

/* The fault times of one first-touch pass. */
struct view_latency {
	uint64_t n;                 /* faults timed */
	double p50_us, p99_us;      /* nearest rank */
	double nonfault_max_us;     /* the slowest other access; 0: none */
};

/* Per-size scratch of the view section. */
struct view_scratch {
	struct view_pass pass;
	uint64_t *acc; /* [npages]: time of every access, ns */
};

struct view_map {
	uint32_t handle;
	void *dev;
	size_t size;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x < y) - (x > y);
}

/* Nearest-rank quantile @q of the descending @v[@n]. */
static uint64_t quantile_desc(const uint64_t *v, size_t n, double q)
{
	size_t rank = (size_t)(q * (double)n + 0.999999);

	if (!n)
		return 0;
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[n - rank];
}

/* Index of the round pick() stands for (the lower middle for -m). */
static unsigned int pick_index(const double *v, unsigned int n)
{
	unsigned int idx[MAX_ROUNDS];

	for (unsigned int i = 0; i < n; i++)
		idx[i] = i;
	/* insertion sort of the indices by time: n is small */
	for (unsigned int i = 1; i < n; i++)
		for (unsigned int j = i; j > 0 && v[idx[j]] < v[idx[j - 1]]; j--) {
			unsigned int t = idx[j];

			idx[j] = idx[j - 1];
			idx[j - 1] = t;
		}
	return use_median ? idx[(n - 1) / 2] : idx[0];
}

/* Writes @val to /sys/module/hmmgpu/parameters/@name; 0 or -errno. */
static int set_module_param(const char *name, const char *val)
{
	char path[128];
	ssize_t n;
	int fd, ret = 0;

	snprintf(path, sizeof(path), "/sys/module/hmmgpu/parameters/%s", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	if (n < 0)
		ret = -errno;
	else if ((size_t)n != strlen(val))
		ret = -EIO;
	close(fd);
	return ret;
}

static int set_prefetch_pct(unsigned int pct)
{
	char val[16];

	snprintf(val, sizeof(val), "%u\n", pct);
	return set_module_param("prefetch_pct", val);
}

/* Registers a view of [@cpu, @cpu + @size), advises @gran, maps it. */
static int view_open(struct bench_driver *d, void *cpu, size_t size,
		     size_t gran, struct view_map *v)
{
	struct drm_hmmgpu_view_register r = {
		.start = (uintptr_t)cpu,
		.size = size,
	};
	struct drm_hmmgpu_view_advise a = {
		.advice = HMMGPU_ADVICE_GRANULARITY,
		.value = gran,
	};
	void *dev;

	v->handle = 0;
	v->dev = NULL;
	v->size = size;
	if (drmIoctl(d->fd, DRM_IOCTL_HMMGPU_VIEW_REGISTER, &r))
		return -errno;
	v->handle = a.handle = r.handle;
	if (drmIoctl(d->fd, DRM_IOCTL_HMMGPU_VIEW_ADVISE, &a))
		return -errno;
	dev = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd,
		   (off_t)r.offset);
	if (dev == MAP_FAILED)
		return -errno;
	v->dev = dev;
	return 0;
}

static void view_close(struct bench_driver *d, struct view_map *v)
{
	struct drm_hmmgpu_view_unregister u = { .handle = v->handle };

	if (v->dev)
		munmap(v->dev, v->size);
	if (v->handle && drmIoctl(d->fd, DRM_IOCTL_HMMGPU_VIEW_UNREGISTER, &u))
		fprintf(stderr, "bench_migrate: VIEW_UNREGISTER %u: %s\n",
			v->handle, strerror(errno));
	v->dev = NULL;
	v->handle = 0;
}

/* The device: reads the first word of every page through the view. */
static void *view_pass_main(void *arg)
{
	struct view_pass *p = arg;
	size_t stride = page_size / sizeof(uint64_t);

	p->stamps[0] = now_ns();
	for (size_t i = 0; i < p->npages; i++) {
		p->words[i] = p->view[i * stride];
		p->stamps[i + 1] = now_ns();
	}
	return NULL;
}

/* Runs the pass on a thread of its own; its time in s, <0 on failure. */
static double view_pass_run(struct view_pass *p)
{
	pthread_t t;
	int ret;

	ret = pthread_create(&t, NULL, view_pass_main, p);
	if (!ret)
		ret = pthread_join(t, NULL);
	if (ret) {
		fprintf(stderr, "bench_migrate: device thread: %s\n",
			strerror(ret));
		return -1;
	}
	return (double)(p->stamps[p->npages] - p->stamps[0]) * 1e-9;
}

/* The words the pass read against the pattern; prints the first mismatch. */
static bool view_check_words(const struct view_pass *p, uint64_t seed,
			     const char *what)
{
	size_t stride = page_size / sizeof(uint64_t);

	for (size_t i = 0; i < p->npages; i++) {
		uint64_t want = pattern_word(seed, i * stride);

		if (p->words[i] != want) {
			fprintf(stderr,
				"bench_migrate: DATA CHECK FAILED %s: page %zu read 0x%016" PRIx64 " through the view, expected 0x%016" PRIx64 "\n",
				what, i, p->words[i], want);
			return false;
		}
	}
	return true;
}

static void view_counts_delta(const struct drm_hmmgpu_stats *a,
			      const struct drm_hmmgpu_stats *b,
			      struct view_counts *c)
{
	const int dir = HMMGPU_DIR_TO_DEVICE;

	c->faults = b->device_faults - a->device_faults;
	c->pages_fault = b->pages[dir][HMMGPU_CAUSE_DEVICE_FAULT] -
			 a->pages[dir][HMMGPU_CAUSE_DEVICE_FAULT];
	c->pages_prefetch = b->pages[dir][HMMGPU_CAUSE_PREFETCH] -
			    a->pages[dir][HMMGPU_CAUSE_PREFETCH];
	c->pages_other = 0;
	for (int k = 0; k < HMMGPU_CAUSE_COUNT; k++)
		c->pages_other += b->pages[dir][k] - a->pages[dir][k];
	c->pages_other -= c->pages_fault + c->pages_prefetch;
}

/*
 * The pass through a view of @buf, timed, with its checks: the words
 * read, every page on the device, the whole buffer read through the view
 * (untimed).  @what names the pass in messages.  Its time, or <0.
 */
static double view_pass_checked(struct bench_driver *d, struct view_map *v,
				void *buf, size_t size, uint64_t seed,
				struct view_scratch *sc, struct view_counts *c,
				const char *what)
{
	struct drm_hmmgpu_stats before, after;
	char when[96];
	double t;
	int ret;

	sc->pass.view = v->dev;
	sc->pass.npages = size / page_size;
	ret = hmmgpu_stats_scope(d, &before, HMMGPU_STATS_FILE);
	if (ret) {
		fprintf(stderr, "bench_migrate: hmmgpu STATS: %s\n",
			strerror(-ret));
		return -1;
	}
	t = view_pass_run(&sc->pass);
	if (t < 0)
		return -1;
	ret = hmmgpu_stats_scope(d, &after, HMMGPU_STATS_FILE);
	if (ret) {
		fprintf(stderr, "bench_migrate: hmmgpu STATS: %s\n",
			strerror(-ret));
		return -1;
	}
	view_counts_delta(&before, &after, c);
	snprintf(when, sizeof(when), "after %s", what);
	if (!view_check_words(&sc->pass, seed, when) ||
	    !check_at(d, buf, size, WHERE_DEVICE, when))
		return -1;
	snprintf(when, sizeof(when), "read through the view after %s", what);
	if (!verify(v->dev, size, seed, when))
		return -1;
	return t;
}

/*
 * The @n slowest accesses of the last pass are its @n faults: their
 * median and p99, and the slowest of the other accesses, go to @lat.
 */
static void view_fault_latency(struct view_scratch *sc, uint64_t n,
			       struct view_latency *lat)
{
	const struct view_pass *p = &sc->pass;

	for (size_t i = 0; i < p->npages; i++)
		sc->acc[i] = p->stamps[i + 1] - p->stamps[i];
	qsort(sc->acc, p->npages, sizeof(*sc->acc), cmp_u64_desc);
	if (n > p->npages)
		n = p->npages;
	lat->n = n;
	lat->p50_us = (double)quantile_desc(sc->acc, n, 0.5) * 1e-3;
	lat->p99_us = (double)quantile_desc(sc->acc, n, 0.99) * 1e-3;
	lat->nonfault_max_us = n < p->npages ? (double)sc->acc[n] * 1e-3 : 0;
}

/* First touch of a fresh buffer through a view; its time, or <0. */
static double view_touch_round(struct bench_driver *d, size_t size,
			       size_t gran, uint64_t seed,
			       struct view_scratch *sc, struct view_counts *c,
			       struct view_latency *lat)
{
	struct view_map v = { 0 };
	double t = -1;
	void *buf;
	int ret;

	buf = map_aligned(size, REGION, false);
	if (!buf) {
		fprintf(stderr, "bench_migrate: out of memory for %zu MiB\n",
			size / MIB);
		return -1;
	}
	fill(buf, size, seed);
	ret = view_open(d, buf, size, gran, &v);
	if (ret) {
		fprintf(stderr, "bench_migrate: view of %zu MiB, granularity %zu KiB: %s\n",
			size / MIB, gran / KIB, strerror(-ret));
		goto out;
	}
	t = view_pass_checked(d, &v, buf, size, seed, sc, c, "first touch");
	if (t < 0)
		goto out;
	if (c->pages_fault + c->pages_prefetch != size / page_size ||
	    c->pages_other)
		fprintf(stderr,
			"bench_migrate: note: first touch of %zu pages counted %" PRIu64 " by device fault + %" PRIu64 " by prefetch + %" PRIu64 " other\n",
			size / page_size, c->pages_fault, c->pages_prefetch,
			c->pages_other);
	view_fault_latency(sc, c->faults, lat);
out:
	view_close(d, &v);
	munmap(buf, size);
	return t;
}

/*
 * Explicit prefetch of a fresh buffer (MIGRATE, timed), then the same pass
 * through a view (timed apart: it takes faults that only map pages).
 * Returns false when a check failed.
 */
static bool view_explicit_round(struct bench_driver *d, size_t size,
				size_t gran, uint64_t seed,
				struct view_scratch *sc, double *t_migrate,
				double *t_pass, struct view_counts *c)
{
	struct view_map v = { 0 };
	bool ok = false;
	void *buf;
	int ret;

	buf = map_aligned(size, REGION, false);
	if (!buf) {
		fprintf(stderr, "bench_migrate: out of memory for %zu MiB\n",
			size / MIB);
		return false;
	}
	fill(buf, size, seed);
	ret = view_open(d, buf, size, gran, &v);
	if (ret) {
		fprintf(stderr, "bench_migrate: view of %zu MiB, granularity %zu KiB: %s\n",
			size / MIB, gran / KIB, strerror(-ret));
		goto out;
	}
	*t_migrate = timed_migrate(d, buf, size, WHERE_DEVICE);
	if (*t_migrate < 0)
		goto out;
	*t_pass = view_pass_checked(d, &v, buf, size, seed, sc, c,
				    "explicit prefetch and a pass");
	if (*t_pass < 0)
		goto out;
	if (c->pages_fault + c->pages_prefetch + c->pages_other)
		fprintf(stderr,
			"bench_migrate: note: the pass after explicit prefetch moved %" PRIu64 " pages\n",
			c->pages_fault + c->pages_prefetch + c->pages_other);
	ok = true;
out:
	view_close(d, &v);
	munmap(buf, size);
	return ok;
}

/*
 * The rounds of one row, first touch and explicit interleaved, their order
 * alternating.  Throughputs: the best (-m: median) round of each; the
 * counters and the fault latency: those of the round whose first touch
 * was picked.  (-v prints each round's own ratio too; the explicit
 * MIGRATE, which hands its copies to the copy threads on the other CPU,
 * suffers more than the first touch when the host is busy, so a round's
 * ratio is no better an estimate than the ratio of the picked rounds.)
 */
static bool view_row(struct bench_driver *d, size_t size, unsigned int rounds,
		     struct view_scratch *sc, struct view_result *vr)
{
	double tt[MAX_ROUNDS], te[MAX_ROUNDS], tb[MAX_ROUNDS];
	struct view_counts ct[MAX_ROUNDS], ce[MAX_ROUNDS];
	struct view_latency lat[MAX_ROUNDS];
	unsigned int best;

	memset(ct, 0, sizeof(ct));
	memset(ce, 0, sizeof(ce));
	memset(lat, 0, sizeof(lat));
	for (unsigned int r = 0; r < rounds; r++) {
		uint64_t seed = 0x76696577ull ^ ((uint64_t)vr->gran << 16) ^
				((uint64_t)vr->pct << 8) ^ ((uint64_t)r << 1);
		double tp = 0;

		fprintf(stderr, "bench_migrate: view %zu KiB prefetch %s round %u/%u\n",
			vr->gran / KIB, vr->pct ? "on" : "off", r + 1, rounds);
		for (int k = 0; k < 2; k++) {
			if ((k == 0) == (r % 2 == 0)) {
				tt[r] = view_touch_round(d, size, vr->gran,
							 seed, sc, &ct[r],
							 &lat[r]);
				if (tt[r] < 0)
					return false;
			} else if (!view_explicit_round(d, size, vr->gran,
						       seed ^ 1, sc, &te[r],
						       &tp, &ce[r])) {
				return false;
			}
		}
		tb[r] = te[r] + tp;
		if (verbose)
			printf("# view %4zu KiB prefetch %-3s round %u: first touch %9.3f ms (%" PRIu64 " faults, median %.1f us, p99 %.1f us), explicit %9.3f ms + pass %9.3f ms (%" PRIu64 " faults), ratio %.2fx\n",
			       vr->gran / KIB, vr->pct ? "on" : "off", r + 1,
			       tt[r] * 1e3, ct[r].faults, lat[r].p50_us,
			       lat[r].p99_us, te[r] * 1e3, tp * 1e3,
			       ce[r].faults, te[r] / tt[r]);
	}
	best = pick_index(tt, rounds);
	vr->faults = ct[best].faults;
	vr->faults_min = vr->faults_max = ct[0].faults;
	for (unsigned int r = 1; r < rounds; r++) {
		if (ct[r].faults < vr->faults_min)
			vr->faults_min = ct[r].faults;
		if (ct[r].faults > vr->faults_max)
			vr->faults_max = ct[r].faults;
	}
	vr->pages_fault = ct[best].pages_fault;
	vr->pages_prefetch = ct[best].pages_prefetch;
	vr->map_faults = ce[best].faults;
	vr->touch_mbps = rate_mbps(size, pick(tt, rounds));
	vr->explicit_mbps = rate_mbps(size, pick(te, rounds));
	vr->both_mbps = rate_mbps(size, pick(tb, rounds));
	vr->nlat = lat[best].n;
	vr->lat_p50_us = lat[best].p50_us;
	vr->lat_p99_us = lat[best].p99_us;
	vr->nonfault_max_us = lat[best].nonfault_max_us;
	return true;
}

/* What the view section measured, for the output. */
struct view_section {
	size_t size;
	unsigned int rounds;
	unsigned int pct_orig, pct_on;
	double clock_ns; /* cost of a time stamp */
	char skipped[200]; /* why nothing was measured */
	struct view_result res[2 * MAX_GRANS];
	int nres;
};

/* Cost in ns of one now_ns(), which every access time includes. */
static double clock_cost_ns(void)
{
	uint64_t t0 = now_ns(), t1;

	for (int i = 0; i < CLOCK_CALLS; i++)
		sink += now_ns();
	t1 = now_ns();
	return (double)(t1 - t0) / CLOCK_CALLS;
}

/*
 * The view section: every granularity, prefetch on then off.  Returns
 * false when a check failed; a section that cannot run says why in
 * @vs->skipped.
 */
static bool run_view(struct bench_driver *d, size_t size, const size_t *grans,
		     int ngrans, unsigned int rounds, struct view_section *vs)
{
	size_t npages = size / page_size;
	struct view_scratch sc = { 0 };
	struct view_map probe_view = { 0 };
	char pct_str[32], *end;
	bool ok = false;
	void *probe;
	int ret;

	vs->size = size;
	vs->rounds = rounds;
	if (!d->available) {
		snprintf(vs->skipped, sizeof(vs->skipped), "hmmgpu: %s", d->why);
		return true;
	}
	if (d->mem_total && size > d->mem_total) {
		snprintf(vs->skipped, sizeof(vs->skipped),
			 "%zu MiB is larger than the device's %" PRIu64 " MiB",
			 size / MIB, d->mem_total / MIB);
		return true;
	}
	module_param("prefetch_pct", pct_str, sizeof(pct_str));
	vs->pct_orig = (unsigned int)strtoul(pct_str, &end, 10);
	if (!pct_str[0] || *end) {
		snprintf(vs->skipped, sizeof(vs->skipped),
			 "hmmgpu has no prefetch_pct parameter (a driver before the device view?)");
		return true;
	}
	vs->pct_on = vs->pct_orig ? vs->pct_orig : VIEW_PCT_DEFAULT;

	/* Does the running driver have views? */
	probe = map_buffer(page_size);
	if (!probe) {
		fprintf(stderr, "bench_migrate: out of memory\n");
		return false;
	}
	memset(probe, 1, page_size);
	ret = view_open(d, probe, page_size, page_size, &probe_view);
	view_close(d, &probe_view);
	munmap(probe, page_size);
	if (ret) {
		snprintf(vs->skipped, sizeof(vs->skipped),
			 "the running driver does not do device views: %s",
			 strerror(-ret));
		return true;
	}

	sc.pass.words = calloc(npages, sizeof(*sc.pass.words));
	sc.pass.stamps = calloc(npages + 1, sizeof(*sc.pass.stamps));
	sc.acc = calloc(npages, sizeof(*sc.acc));
	d->where = malloc(npages);
	if (!sc.pass.words || !sc.pass.stamps || !sc.acc ||
	    !d->where) {
		fprintf(stderr, "bench_migrate: out of memory for the view section\n");
		goto out;
	}
	vs->clock_ns = clock_cost_ns();

	for (int g = 0; g < ngrans; g++) {
		for (int on = 1; on >= 0; on--) {
			struct view_result *vr = &vs->res[vs->nres];

			vr->gran = grans[g];
			vr->pct = on ? vs->pct_on : 0;
			ret = set_prefetch_pct(vr->pct);
			if (ret) {
				fprintf(stderr, "bench_migrate: cannot set hmmgpu's prefetch_pct to %u: %s\n",
					vr->pct, strerror(-ret));
				goto out;
			}
			if (!view_row(d, size, rounds, &sc, vr))
				goto out;
			vs->nres++;
		}
	}
	ok = true;
out:
	ret = set_prefetch_pct(vs->pct_orig);
	if (ret)
		fprintf(stderr, "bench_migrate: WARNING: hmmgpu's prefetch_pct not restored to %u: %s\n",
			vs->pct_orig, strerror(-ret));
	free(d->where);
	d->where = NULL;
	free(sc.pass.words);
	free(sc.pass.stamps);
	free(sc.acc);
	return ok;
}

/*
 * The target of the issues: 64 KiB granularity, prefetch on; 0.5x until
 * issue #13 raised it to 0.7x.
 */
#define VIEW_TARGET_GRAN (64 * KIB)
#define VIEW_TARGET_MIN 0.7

static void print_view(const struct view_section *vs)
{
	const struct view_result *t = NULL;

	printf("\ndevice view: fault-driven first touch of %zu MiB, %s of %u rounds, MB/s = 1e6 bytes/s\n",
	       vs->size / MIB, use_median ? "median" : "best", vs->rounds);
	if (vs->skipped[0]) {
		printf("  not measured: %s\n", vs->skipped);
		return;
	}
	printf("  method    per row and round: a fresh 2 MiB-aligned buffer (MADV_NOHUGEPAGE), filled, and a view of\n"
	       "            it with the row's granularity; one device thread reads the first word of every page through\n"
	       "            the view, in order (first touch); then the words read, the residency of every page and the\n"
	       "            whole buffer through the view are checked.  Explicit: another fresh buffer, MIGRATE to\n"
	       "            device, then the same pass and checks.  The two alternate in order from round to round\n"
	       "  prefetch  on: prefetch_pct=%u%s; off: 0; restored to %u afterwards\n"
	       "  latency   every access timed (CLOCK_MONOTONIC, %.0f ns a stamp); the N slowest accesses of a pass\n"
	       "            are its faults, N = its device faults (STATS, file scope)\n",
	       vs->pct_on, vs->pct_orig ? " (the module's value)" : "",
	       vs->pct_orig, vs->clock_ns);
	printf("\n%6s %8s | %7s %9s %9s | %8s %8s %9s | %8s %7s | %9s %9s %9s\n",
	       "gran", "prefetch", "device", "pages by", "pages by", "first", "explicit",
	       "ratio", "explicit", "faults", "fault", "fault", "slowest");
	printf("%6s %8s | %7s %9s %9s | %8s %8s %9s | %8s %7s | %9s %9s %9s\n",
	       "", "", "faults", "fault", "prefetch", "touch", "prefetch",
	       "", "+ pass", "in pass", "median", "p99", "no-fault");
	printf("%6s %8s | %7s %9s %9s | %8s %8s %9s | %8s %7s | %9s %9s %9s\n",
	       "KiB", "%", "", "", "", "MB/s", "MB/s", "x", "MB/s", "", "us", "us",
	       "us");
	for (int i = 0; i < vs->nres; i++) {
		const struct view_result *r = &vs->res[i];

		if (r->gran == VIEW_TARGET_GRAN && r->pct)
			t = r;
		printf("%6zu ", r->gran / KIB);
		if (r->pct)
			printf("%8u", r->pct);
		else
			printf("%8s", "off");
		printf(" | %7" PRIu64 "%s%9" PRIu64 " %9" PRIu64 " |",
		       r->faults, r->faults_min != r->faults_max ? "*" : " ",
		       r->pages_fault, r->pages_prefetch);
		print_rate(r->touch_mbps);
		print_rate(r->explicit_mbps);
		print_ratio(r->touch_mbps, r->explicit_mbps);
		printf(" |");
		print_rate(r->both_mbps);
		printf(" %7" PRIu64 " |", r->map_faults);
		if (r->nlat)
			printf(" %9.1f %9.1f", r->lat_p50_us, r->lat_p99_us);
		else
			printf(" %9s %9s", "-", "-");
		if (r->nonfault_max_us > 0)
			printf(" %9.1f\n", r->nonfault_max_us);
		else
			printf(" %9s\n", "-");
	}
	for (int i = 0; i < vs->nres; i++)
		if (vs->res[i].faults_min != vs->res[i].faults_max)
			printf("* %zu KiB prefetch %s: device faults varied from %" PRIu64 " to %" PRIu64 " between rounds\n",
			       vs->res[i].gran / KIB,
			       vs->res[i].pct ? "on" : "off",
			       vs->res[i].faults_min, vs->res[i].faults_max);
	printf("(ratio: first touch/explicit prefetch; explicit prefetch: MIGRATE to device alone; explicit\n"
	       " + pass: MIGRATE and then the same pass, whose faults (faults in pass) only map pages; counters\n"
	       " and fault latency: the pass of the %s first-touch round; slowest no-fault: the slowest\n"
	       " access of that pass not counted as a fault)\n",
	       use_median ? "median" : "fastest");

	printf("\ntarget (informational):\n");
	printf("  device view %zu KiB, prefetch on: first touch/explicit prefetch >= %.1fx: ",
	       (size_t)VIEW_TARGET_GRAN / KIB, VIEW_TARGET_MIN);
	if (t && t->touch_mbps > 0 && t->explicit_mbps > 0)
		printf("%5.2fx  %s\n", t->touch_mbps / t->explicit_mbps,
		       t->touch_mbps / t->explicit_mbps >= VIEW_TARGET_MIN ?
			       "met" : "NOT met");
	else
		printf("not measured\n");
}

/* --- main ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench_migrate [-s MIB[,MIB..]] [-r ROUNDS] [-m] [-d DEVICE] [-t PATH] [-v]\n"
		"                     [-H] [-V | -N] [-w MIB] [-g KIB[,KIB..]] [-L N]\n"
		"  -s  buffer sizes in MiB (default 4,16,64,256), for the migration and the\n"
		"      fault-back-by-threads tables, and with 2 MiB for the huge-page table\n"
		"      (multiples of 2 MiB only)\n"
		"  -r  rounds per size and driver, and per row of the view table (default 5, at most %d)\n"
		"  -m  device view: report the median round (default: the best, i.e. fastest,\n"
		"      round); the migration tables always show the best round, the median\n"
		"      round and the spread of the rounds\n"
		"  -d  hmmgpu device index (default 0)\n"
		"  -t  test_hmm device (default /dev/hmm_dmirror0, device-private)\n"
		"  -v  print the time of every round\n"
		"  -H  no huge-page table (it runs where hmmgpu has device THP)\n"
		"  -V  the device-view section only (no migration table)\n"
		"  -N  no device-view section\n"
		"  -w  device-view buffer size in MiB (default 64)\n"
		"  -g  device-view fault granularities in KiB, powers of two from the page size\n"
		"      to 2048 (default 4,16,64,256,1024,2048; at most %d)\n"
		"  -L  run N processes that spin on the CPU beside the benchmark, a busy machine\n"
		"      (at most %d; default 0)\n"
		"The device-view section sets hmmgpu's prefetch_pct parameter for each row and\n"
		"restores it afterwards (root).\n"
		"Exit status: 0, or 1 when a data or residency check failed.\n",
		MAX_ROUNDS, MAX_GRANS, MAX_LOAD);
}

/*
 * The sizes of the huge-page table: 2 MiB and the multiples of 2 MiB of
 * the @n @sizes, ascending, each once; the others are listed in
 * @not_sized.  Returns how many.
 */
static int thp_sizes(const size_t *sizes, int n, size_t *out,
		     char *not_sized, size_t len)
{
	size_t pos = 0;
	int m = 0;

	not_sized[0] = '\0';
	out[m++] = REGION;
	for (int i = 0; i < n; i++) {
		int j;

		if (sizes[i] % REGION) {
			pos += (size_t)snprintf(not_sized + pos, len - pos,
						"%s%zu", pos ? ", " : "",
						sizes[i] / MIB);
			if (pos >= len)
				pos = len - 1;
			continue;
		}
		for (j = 0; j < m && out[j] != sizes[i]; j++)
			;
		if (j < m || m == MAX_SIZES + 1)
			continue;
		/* insert in order */
		for (j = m; j > 0 && out[j - 1] > sizes[i]; j--)
			out[j] = out[j - 1];
		out[j] = sizes[i];
		m++;
	}
	if (pos && pos + 40 < len)
		snprintf(not_sized + pos, len - pos,
			 " MiB: not multiples of 2 MiB, not measured");
	return m;
}

static int parse_sizes(const char *arg, size_t *sizes)
{
	char *copy = strdup(arg), *save = NULL, *tok;
	int n = 0;

	if (!copy)
		return -1;
	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *end;
		unsigned long v = strtoul(tok, &end, 10);

		if (*end || v == 0 || v > 65536 || n == MAX_SIZES) {
			n = -1;
			break;
		}
		sizes[n++] = (size_t)v * MIB;
	}
	free(copy);
	return n;
}

/* Granularities in KiB: powers of two from the page size to 2 MiB. */
static int parse_grans(const char *arg, size_t *grans)
{
	char *copy = strdup(arg), *save = NULL, *tok;
	int n = 0;

	if (!copy)
		return -1;
	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *end;
		unsigned long v = strtoul(tok, &end, 10);

		if (*end || v * KIB < page_size || v > 2048 || (v & (v - 1)) ||
		    n == MAX_GRANS) {
			n = -1;
			break;
		}
		grans[n++] = (size_t)v * KIB;
	}
	free(copy);
	return n;
}

int main(int argc, char **argv)
{
	static const size_t default_sizes[] = { 4 * MIB, 16 * MIB, 64 * MIB,
						256 * MIB };
	struct bench_driver drivers[DRV_COUNT] = { 0 };
	struct bench_result res[MAX_SIZES];
	struct thp_result thp[MAX_SIZES + 1];
	size_t thp_size[MAX_SIZES + 1];
	char not_sized[128];
	const char *test_hmm_path = "/dev/hmm_dmirror0";
	static const size_t default_grans[] = { 4 * KIB, 16 * KIB, 64 * KIB,
						256 * KIB, 1024 * KIB,
						2048 * KIB };
	static struct view_section view;
	size_t sizes[MAX_SIZES], grans[MAX_GRANS], view_size = 64 * MIB;
	unsigned int rounds = 5, device = 0, load = 0;
	int nsizes = 4, ngrans = 6, opt, rc = 0, nres = 0, nthp = 0, nthp_sizes;
	bool migration = true, do_view = true, do_thp = true;
	const char *grans_arg = NULL;
	unsigned long v;
	char *end;

	memcpy(sizes, default_sizes, sizeof(default_sizes));
	memcpy(grans, default_grans, sizeof(default_grans));
	while ((opt = getopt(argc, argv, "s:r:md:t:vHVNw:g:L:h")) != -1) {
		switch (opt) {
		case 's':
			nsizes = parse_sizes(optarg, sizes);
			if (nsizes <= 0) {
				usage(stderr);
				return 2;
			}
			break;
		case 'r':
			rounds = (unsigned int)strtoul(optarg, NULL, 10);
			if (rounds < 1 || rounds > MAX_ROUNDS) {
				usage(stderr);
				return 2;
			}
			break;
		case 'm':
			use_median = true;
			break;
		case 'd':
			device = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 't':
			test_hmm_path = optarg;
			break;
		case 'v':
			verbose = true;
			break;
		case 'H':
			do_thp = false;
			break;
		case 'V':
			migration = false;
			break;
		case 'N':
			do_view = false;
			break;
		case 'w':
			v = strtoul(optarg, &end, 10);
			if (*end || v == 0 || v > 65536) {
				usage(stderr);
				return 2;
			}
			view_size = (size_t)v * MIB;
			break;
		case 'g':
			grans_arg = optarg;
			break;
		case 'L':
			v = strtoul(optarg, &end, 10);
			if (*end || v > MAX_LOAD) {
				usage(stderr);
				return 2;
			}
			load = (unsigned int)v;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	page_size = (size_t)sysconf(_SC_PAGESIZE);
	if (grans_arg)
		ngrans = parse_grans(grans_arg, grans);
	if (optind != argc || (!migration && !do_view) || ngrans <= 0) {
		usage(stderr);
		return 2;
	}

	hmmgpu_open(&drivers[DRV_HMMGPU], device);
	test_hmm_open(&drivers[DRV_TEST_HMM], test_hmm_path);
	if (!start_load(load)) {
		stop_load();
		return 1;
	}
	print_header(drivers, rounds, migration);

	memset(res, 0, sizeof(res));
	memset(thp, 0, sizeof(thp));
	for (int i = 0; migration && i < nsizes && !rc; i++)
		if (!measure_size(drivers, sizes[i], rounds, &res[nres++]))
			rc = 1;
	/* the huge-page table: only where hmmgpu has device THP */
	do_thp = do_thp && migration && drivers[DRV_HMMGPU].available &&
		 drivers[DRV_HMMGPU].device_thp;
	nthp_sizes = thp_sizes(sizes, nsizes, thp_size, not_sized,
			       sizeof(not_sized));
	for (int i = 0; do_thp && i < nthp_sizes && !rc; i++)
		if (!run_thp_size(drivers, thp_size[i], rounds, &thp[nthp++]))
			rc = 1;
	if (do_view && !rc &&
	    !run_view(&drivers[DRV_HMMGPU], view_size, grans, ngrans, rounds,
		      &view))
		rc = 1;
	stop_load();
	if (rc) {
		fprintf(stderr, "bench_migrate: a check failed; no results printed\n");
	} else {
		if (migration) {
			print_table(res, nres, false);
			print_table(res, nres, true);
			print_spreads(res, nres);
			print_skipped(res, nres);
			print_threads(res, nres);
			if (do_thp || !drivers[DRV_HMMGPU].device_thp)
				print_thp(&drivers[DRV_HMMGPU], thp, nthp,
					  not_sized);
			/* -1: no THP targets, print_thp() said why */
			print_targets(res, nres, thp,
				      drivers[DRV_HMMGPU].device_thp ? nthp : -1);
			print_stats(res, nres);
		}
		if (do_view)
			print_view(&view);
	}
	for (int drv = 0; drv < DRV_COUNT; drv++)
		if (drivers[drv].fd >= 0)
			close(drivers[drv].fd);
	return rc;
}
