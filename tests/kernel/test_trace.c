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
 * Sums "key value" lines named @key over the hmmgpu_stats files of the
 * primary nodes (dri/0-63: the same file also shows under other names of
 * each device).
 */
static unsigned long long debugfs_sum(const char *key, unsigned int *nfiles)
{
	unsigned long long sum = 0;
	unsigned int n = 0;
	glob_t g;

	if (glob("/sys/kernel/debug/dri/*/hmmgpu_stats", 0, NULL, &g))
		SKIP("no hmmgpu_stats in debugfs");
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *dir = g.gl_pathv[i] + strlen("/sys/kernel/debug/dri/");
		char line[256], name[128], *end;
		unsigned long long v;
		long minor = strtol(dir, &end, 10);
		FILE *f;

		if (end == dir || *end != '/' || minor >= 64)
			continue;
		n++;
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

TEST_MAIN()
