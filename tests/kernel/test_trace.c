// SPDX-License-Identifier: MIT
/*
 * test_trace.c - the driver's observability: tracepoints fire once per
 * migration batch and per CPU fault with the right fields, and the
 * debugfs file agrees with the STATS ioctl.
 */
#define _GNU_SOURCE
#include "kt_common.h"

#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define TRACING "/sys/kernel/tracing"

static void tracing_write(const char *file, const char *text)
{
	char path[256];

	snprintf(path, sizeof(path), TRACING "/%s", file);
	if (access(path, F_OK))
		SKIP("%s missing: tracefs not mounted or no hmmgpu events", path);
	ASSERT_EQ(kt_sysfs_write(path, text), 0);
}

/* Reads the trace buffer into a malloc'd string. */
static char *trace_read(void)
{
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap);
	int fd = open(TRACING "/trace", O_RDONLY | O_CLOEXEC);
	ssize_t r;

	ASSERT_TRUE(buf != NULL);
	ASSERT_GE(fd, 0);
	while ((r = read(fd, buf + len, cap - 1 - len)) > 0)
		len += r;
	close(fd);
	buf[len] = '\0';
	return buf;
}

static unsigned int count_lines(const char *text, const char *a,
				const char *b)
{
	unsigned int n = 0;

	for (const char *line = text; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);

		if (memmem(line, len, a, strlen(a)) &&
		    (!b || memmem(line, len, b, strlen(b))))
			n++;
		line = end ? end + 1 : NULL;
	}
	return n;
}

static void trace_start(void)
{
	int fd;

	tracing_write("events/hmmgpu/enable", "1");
	/* opening with O_TRUNC empties the buffer */
	fd = open(TRACING "/trace", O_WRONLY | O_TRUNC | O_CLOEXEC);
	ASSERT_GE(fd, 0);
	close(fd);
}

static void trace_stop(void)
{
	tracing_write("events/hmmgpu/enable", "0");
}

TEST(migrate_batch_tracepoint_per_batch)
{
	size_t size = 4 << 20, npages = size / kt_page_size();
	int fd = kt_open_device(0);
	char *p = kt_map_aligned(size, 2 << 20), *trace;

	kt_fill(p, size, 501);
	trace_start();
	KT_EXPECT_MIGRATE(fd, p, size, HMMGPU_MIGRATE_TO_DEVICE, npages, 0, 0);
	KT_EXPECT_MIGRATE(fd, p, size, HMMGPU_MIGRATE_TO_SYSTEM, npages, 0, 0);
	trace_stop();
	trace = trace_read();
	/* 2 MiB batches: two each way, every page accounted for */
	ASSERT_EQ(count_lines(trace, "hmmgpu_migrate_batch:",
			      "to_device cause=explicit"), 2);
	ASSERT_EQ(count_lines(trace, "hmmgpu_migrate_batch:",
			      "to_system cause=explicit"), 2);
	ASSERT_EQ(count_lines(trace, "hmmgpu_migrate_batch:",
			      "npages=512 moved=512 failed=0"), 4);
	free(trace);
	KT_EXPECT_DATA(p, size, 501);
	close(fd);
}

TEST(cpu_fault_tracepoint_names_the_address)
{
	size_t size = 1 << 20;
	int fd = kt_open_device(0);
	char *p = kt_map_aligned(size, 2 << 20), *trace, want[64];
	unsigned long block = kt_module_param("fault_kib") << 10;
	volatile char c;

	kt_fill(p, size, 502);
	KT_EXPECT_MIGRATE(fd, p, size, HMMGPU_MIGRATE_TO_DEVICE,
			  size / kt_page_size(), 0, 0);
	trace_start();
	c = p[5 * kt_page_size() + 3];
	(void)c;
	trace_stop();
	trace = trace_read();
	/* the fault reports the page, not the byte */
	snprintf(want, sizeof(want), "addr=0x%lx",
		 (unsigned long)(p + 5 * kt_page_size()));
	ASSERT_EQ(count_lines(trace, "hmmgpu_cpu_fault:", want), 1);
	snprintf(want, sizeof(want), "npages=%lu moved=%lu",
		 block / kt_page_size(), block / kt_page_size());
	ASSERT_EQ(count_lines(trace, "hmmgpu_cpu_fault:", want), 1);
	ASSERT_EQ(count_lines(trace, "hmmgpu_migrate_batch:", NULL), 0);
	free(trace);
	KT_EXPECT_DATA(p, size, 502);
	close(fd);
}

/*
 * An eviction names the CPU addresses of the pages it took back: on a
 * 16 MiB device, migrating a second buffer evicts the first one's least
 * recently used blocks, and the hmmgpu_evicted events cover exactly the
 * pages of the first buffer that are in system memory afterwards.
 */
TEST(evicted_tracepoint_names_the_evicted_pages)
{
	size_t ps = kt_page_size(), size = 16 << 20, npages = size / ps;
	size_t reported = 0, home;
	char *a, *b, *trace, want[64];
	uint8_t *loc, *seen;
	int fd;

	kt_reload_hmmgpu("mem_mib=16");
	fd = kt_open_device(0);
	a = kt_map_aligned(size, 2 << 20);
	b = kt_map_aligned(4 << 20, 2 << 20);
	kt_fill(a, size, 503);
	kt_fill(b, 4 << 20, 504);
	KT_EXPECT_MIGRATE(fd, a, size, HMMGPU_MIGRATE_TO_DEVICE, npages, 0, 0);
	trace_start();
	ASSERT_EQ(kt_migrate(fd, b, 4 << 20, HMMGPU_MIGRATE_TO_DEVICE, NULL), 0);
	trace_stop();
	trace = trace_read();

	loc = malloc(npages);
	seen = calloc(npages, 1);
	ASSERT_TRUE(loc && seen);
	ASSERT_EQ(kt_residency(fd, a, npages, loc, NULL), 0);
	snprintf(want, sizeof(want), "tgid=%d ", (int)getpid());
	for (const char *l = strstr(trace, "hmmgpu_evicted: "); l;
	     l = strstr(l + 1, "hmmgpu_evicted: ")) {
		unsigned long start, n;
		const char *f = strstr(l, "start=");

		ASSERT_TRUE(f != NULL);
		ASSERT_EQ(sscanf(f, "start=0x%lx npages=%lu", &start, &n), 2);
		ASSERT_TRUE(memmem(l, strcspn(l, "\n"), "cause=eviction",
				   strlen("cause=eviction")) != NULL);
		ASSERT_TRUE(memmem(l, strcspn(l, "\n"), want, strlen(want)) !=
			    NULL);
		/* inside a, page-aligned, each page once, now in system RAM */
		ASSERT_GE(start, (unsigned long)a);
		ASSERT_LE(start + n * ps, (unsigned long)a + size);
		ASSERT_EQ(start % ps, 0);
		for (size_t i = (start - (unsigned long)a) / ps;
		     i < (start - (unsigned long)a) / ps + n; i++) {
			ASSERT_EQ(seen[i], 0);
			seen[i] = 1;
			ASSERT_EQ(loc[i], HMMGPU_RESIDENCY_SYSTEM);
		}
		reported += n;
	}
	home = kt_residency_count(fd, a, npages, HMMGPU_RESIDENCY_SYSTEM);
	TH_LOG("%zu pages of a evicted, %zu reported", home, reported);
	ASSERT_GE(home, (4 << 20) / ps);
	ASSERT_EQ(reported, home);
	free(loc);
	free(seen);
	free(trace);
	KT_EXPECT_DATA(a, size, 503);
	KT_EXPECT_DATA(b, 4 << 20, 504);
	close(fd);
	kt_restore_hmmgpu();
}

/*
 * Sums "key value" lines named @key over the hmmgpu_stats files, one per
 * device: the same file shows under several names of each device
 * (dri/<minor> links to the device's own folder since Linux 6.3; 6.1 has
 * it in the render minor's folder only), so files are told apart by
 * inode, not by path.
 */
static unsigned long long debugfs_sum(const char *key, unsigned int *nfiles)
{
	unsigned long long sum = 0;
	struct stat seen[64];
	unsigned int n = 0;
	glob_t g;

	if (glob("/sys/kernel/debug/dri/*/hmmgpu_stats", 0, NULL, &g))
		SKIP("no hmmgpu_stats in debugfs");
	for (size_t i = 0; i < g.gl_pathc; i++) {
		char line[256], name[128];
		unsigned long long v;
		struct stat st;
		bool dup = false;
		FILE *f;

		ASSERT_EQ(stat(g.gl_pathv[i], &st), 0);
		for (unsigned int j = 0; j < n; j++)
			dup |= seen[j].st_dev == st.st_dev &&
			       seen[j].st_ino == st.st_ino;
		if (dup)
			continue;
		ASSERT_LT(n, 64);
		seen[n++] = st;
		f = fopen(g.gl_pathv[i], "r");

		ASSERT_TRUE(f != NULL);
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "%127s %llu", name, &v) == 2 &&
			    !strcmp(name, key))
				sum += v;
		fclose(f);
	}
	*nfiles = n;
	globfree(&g);
	return sum;
}

TEST(debugfs_stats_follow_migrations)
{
	size_t size = 2 << 20, npages = size / kt_page_size();
	unsigned int ndev = kt_module_param("num_devices"), nfiles;
	unsigned long long mem = kt_module_param("mem_mib") << 20;
	unsigned long long before, after;
	struct drm_hmmgpu_stats st;
	int fd = kt_open_device(0);
	char *p = kt_map(size);

	ASSERT_EQ(debugfs_sum("mem_total_bytes", &nfiles), ndev * mem);
	ASSERT_EQ(nfiles, ndev);
	before = debugfs_sum("pages_to_device_explicit", &nfiles);
	kt_fill(p, size, 503);
	KT_EXPECT_MIGRATE(fd, p, size, HMMGPU_MIGRATE_TO_DEVICE, npages, 0, 0);
	after = debugfs_sum("pages_to_device_explicit", &nfiles);
	ASSERT_EQ(after - before, npages);
	kt_get_stats(fd, HMMGPU_STATS_DEVICE, &st);
	ASSERT_GE(st.pages[HMMGPU_DIR_TO_DEVICE][HMMGPU_CAUSE_EXPLICIT],
		  npages);
	ASSERT_EQ(debugfs_sum("mem_free_bytes", &nfiles),
		  ndev * mem - npages * kt_page_size());
	kt_unmap(p, size);
	close(fd);
}

/*
 * Every counter of STATS that has one number per device shows in debugfs
 * with the same value (summed over the devices).  The test first makes
 * the newer ones non-zero: a remap for an accessed-by view, and read-only
 * copies for a read-mostly one, made and dropped.
 */
TEST(debugfs_shows_every_counter_of_stats)
{
#define KEY(f) { #f, offsetof(struct drm_hmmgpu_stats, f) }
	static const struct {
		const char *name;
		size_t off;
	} keys[] = {
		KEY(cpu_faults), KEY(device_faults), KEY(evictions),
		KEY(batches), KEY(copy_errors), KEY(thrash_pins),
		KEY(thrash_remote), KEY(remaps), KEY(dup_pages),
		KEY(dup_drops),
	};
#undef KEY
	size_t size = 256 << 10, npages = size / kt_page_size();
	unsigned int ndev = kt_module_param("num_devices"), nfiles;
	struct drm_hmmgpu_stats st;
	int fd = kt_open_device(0);
	char *p = kt_map(size);
	struct kt_view v;
	int i;

	kt_fill(p, size, 505);
	kt_view_open(&v, fd, p, size);
	ASSERT_EQ(kt_view_advise(fd, v.handle, HMMGPU_ADVICE_ACCESSED_BY, 1),
		  0);
	KT_EXPECT_MIGRATE(fd, p, size, HMMGPU_MIGRATE_TO_DEVICE, npages, 0, 0);
	for (i = 0; i < 5000; i++) {
		kt_get_stats(fd, HMMGPU_STATS_FILE, &st);
		if (st.remaps)
			break;
		usleep(2000);
	}
	ASSERT_GT(st.remaps, 0);
	ASSERT_EQ(kt_view_advise(fd, v.handle, HMMGPU_ADVICE_ACCESSED_BY, 0),
		  0);
	KT_EXPECT_MIGRATE(fd, p, size, HMMGPU_MIGRATE_TO_SYSTEM, npages, 0, 0);
	/* copies need a mapping the CPU cannot write (DOC: Read-mostly) */
	ASSERT_EQ(mprotect(p, size, PROT_READ), 0);
	ASSERT_EQ(kt_view_advise(fd, v.handle, HMMGPU_ADVICE_READ_MOSTLY, 1),
		  0);
	KT_EXPECT_DATA(v.dev, size, 505);
	kt_view_close(&v);
	kt_get_stats(fd, HMMGPU_STATS_FILE, &st);
	ASSERT_EQ(st.dup_pages, npages);
	ASSERT_EQ(st.dup_drops, npages);

	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		unsigned long long want = 0;

		for (unsigned int d = 0; d < ndev; d++) {
			int dfd = kt_open_device(d);
			__u64 v_;

			kt_get_stats(dfd, HMMGPU_STATS_DEVICE, &st);
			memcpy(&v_, (const char *)&st + keys[k].off, sizeof(v_));
			want += v_;
			close(dfd);
		}
		printf("# %s %llu\n", keys[k].name, want);
		ASSERT_EQ(debugfs_sum(keys[k].name, &nfiles), want);
		ASSERT_EQ(nfiles, ndev);
	}
	kt_unmap(p, size);
	close(fd);
}

TEST_MAIN()
