// SPDX-License-Identifier: MIT
/*
 * test_hmmprof.c - hmmprof's numbers agree with what a program does.
 *
 * The program is this test binary itself, run again as
 * `test_hmmprof --pattern`: a known access pattern through libhmm (fill
 * 8 MiB on the CPU, prefetch it to device 0, read 1 MiB back on the CPU,
 * prefetch it all home, let the device read 2 MiB through its view, bring
 * those 2 MiB home).  The counts it must produce follow from the module
 * parameters (fault_kib, view_fault_kib, prefetch_pct) and the tests
 * check them in hmmprof's JSON, CSV and plots, and its error cases.  The
 * buffer is named "pattern" (hmm_set_name()): libhmm's API markers let
 * hmmprof charge every event to it, and put the launch of touch_kernel
 * on the Perfetto timeline with the migrations.
 */
#define _GNU_SOURCE
#include "kt_common.h"

#include <fcntl.h>
#include <glob.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hmm/hmm.h>

/*
 * The expected counts assume 4 KiB device pages (a CPU fault brings back
 * fault_kib); 2 MiB device pages are test_thp's.
 */
KT_WITHOUT_DEVICE_THP()

#define PAT_SIZE (8ul << 20)  /* allocation, 2 MiB-aligned by hmm_malloc */
#define PAT_READ (1ul << 20)  /* read back by the CPU */
#define PAT_DEV (2ul << 20)   /* read by the device */

/* --- the program under the profiler ------------------------------------ */

struct touch_args {
	const volatile uint8_t *d;
	size_t bytes, step;
	unsigned long sum;
};

/* One grid point: reads one byte per page, in order, through the view. */
static void touch_kernel(struct hmm_dim3 idx, struct hmm_dim3 grid,
			 void *arg)
{
	struct touch_args *t = arg;

	(void)idx;
	(void)grid;
	for (size_t off = 0; off < t->bytes; off += t->step)
		t->sum += t->d[off];
}

static int pattern_main(void)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	struct touch_args t = { .bytes = PAT_DEV, .step = ps };
	struct hmm_dim3 one = { 1, 1, 1 };
	struct hmm_stream *s;
	volatile uint8_t sink = 0;
	uint8_t *p;

	p = hmm_malloc(PAT_SIZE);
	if (!p || hmm_set_name(p, "pattern"))
		return 10;
	/*
	 * No THP: khugepaged's collapse attempts invalidate the device's
	 * view of the range, and the refault would be one fault more than
	 * the pattern makes (seen on 7.3 with the device memory in a BAR).
	 */
	if (madvise(p, PAT_SIZE, MADV_NOHUGEPAGE))
		return 18;
	fprintf(stderr, "hmmprof-pattern: buffer 0x%lx\n", (unsigned long)p);
	memset(p, 0x5a, PAT_SIZE);
	if (hmm_prefetch(p, PAT_SIZE, 0))
		return 11;
	for (size_t off = 0; off < PAT_READ; off += ps)
		sink += p[off];
	if (hmm_prefetch(p, PAT_SIZE, HMM_CPU))
		return 12;
	t.d = hmm_devptr(p, 0);
	if (!t.d || hmm_stream_create(&s, 0))
		return 13;
	if (hmm_launch(s, touch_kernel, one, &t) || hmm_stream_destroy(s))
		return 14;
	if (t.sum != 0x5a * (PAT_DEV / ps))
		return 15;
	if (hmm_prefetch(p, PAT_DEV, HMM_CPU))
		return 16;
	(void)sink;
	return hmm_free(p) ? 17 : 0;
}

/*
 * The eviction pattern, for a device of EVICT_DEV_MIB: 1.5 times that is
 * filled on the CPU and prefetched to device 0, which must evict the
 * allocation's own least recently used blocks to take the rest.  It
 * prints where its pages are at the end, as hmm_residency() says.
 */
#define EVICT_DEV_MIB 16
#define EVICT_DEV_PARAMS "mem_mib=16" /* EVICT_DEV_MIB */
#define EVICT_SIZE ((EVICT_DEV_MIB + EVICT_DEV_MIB / 2) << 20)

static int evict_pattern_main(void)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), npages = EVICT_SIZE / ps;
	size_t on_dev = 0, on_host = 0;
	int8_t *loc = malloc(npages);
	uint8_t *p = hmm_malloc(EVICT_SIZE);

	if (!p || !loc)
		return 10;
	memset(p, 0x5a, EVICT_SIZE);
	/*
	 * Two prefetches: one never evicts its own pages, so the second
	 * pushes out the least recently used part of the first.
	 */
	if (hmm_prefetch(p, (size_t)EVICT_DEV_MIB << 20, 0) ||
	    hmm_prefetch(p + ((size_t)EVICT_DEV_MIB << 20),
			 EVICT_SIZE - ((size_t)EVICT_DEV_MIB << 20), 0))
		return 11;
	if (hmm_residency(p, EVICT_SIZE, loc, npages) != (int)npages)
		return 12;
	for (size_t i = 0; i < npages; i++) {
		on_dev += loc[i] == 0;
		on_host += loc[i] == HMM_CPU;
	}
	fprintf(stderr, "hmmprof-evict: buffer 0x%lx device %zu host %zu\n",
		(unsigned long)p, on_dev, on_host);
	free(loc);
	return 0; /* exit with the pages where they are */
}

/* What the pattern must produce, in pages. */
struct expect {
	uint64_t prefetch_to_device;
	uint64_t cpu_fault_pages, cpu_faults;
	uint64_t device_fault_pages, density_pages, device_faults;
	uint64_t prefetch_to_host;
};

static void expected(struct expect *e)
{
	uint64_t ps = kt_page_size();
	uint64_t f = kt_module_param("fault_kib") * 1024 / ps;
	uint64_t g = kt_module_param("view_fault_kib") * 1024 / ps;
	uint64_t pct = kt_module_param_or("prefetch_pct", 0);
	uint64_t region = PAT_DEV / ps, resident = 0;
	bool *res = calloc(region, sizeof(*res));

	ASSERT_TRUE(res != NULL);
	memset(e, 0, sizeof(*e));
	e->prefetch_to_device = PAT_SIZE / ps;
	/* each CPU fault brings back the aligned block of fault_kib */
	e->cpu_faults = (PAT_READ / ps + f - 1) / f;
	e->cpu_fault_pages = e->cpu_faults * f;
	e->prefetch_to_host = PAT_SIZE / ps - e->cpu_fault_pages;
	/*
	 * The device reads page by page: each fault moves its view_fault_kib
	 * block; once more than prefetch_pct of the 2 MiB region is on the
	 * device, the rest follows (density prefetch), and no more faults.
	 */
	for (uint64_t i = 0; i < region; i++) {
		if (res[i])
			continue;
		e->device_faults++;
		for (uint64_t j = i / g * g; j < i / g * g + g && j < region; j++) {
			if (!res[j]) {
				res[j] = true;
				resident++;
				e->device_fault_pages++;
			}
		}
		if (pct && g < region && resident < region &&
		    resident * 100 > pct * region) {
			e->density_pages = region - resident;
			for (uint64_t j = 0; j < region; j++)
				res[j] = true;
			resident = region;
		}
	}
	/* and the 2 MiB come home at the end */
	e->prefetch_to_host += region;
	free(res);
}

/* --- running hmmprof --------------------------------------------------- */

static char self_path[PATH_MAX];
static char hmmprof_path[PATH_MAX];

/* hmmprof sits in the build tree at tools/hmmprof/, we at tests/kernel/. */
static void find_paths(void)
{
	char dir[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self_path,
			     sizeof(self_path) - 1);

	ASSERT_GT(n, 0);
	self_path[n] = '\0';
	snprintf(dir, sizeof(dir), "%s", self_path);
	snprintf(hmmprof_path, sizeof(hmmprof_path),
		 "%s/../../tools/hmmprof/hmmprof", dirname(dir));
	if (access(hmmprof_path, X_OK))
		SKIP("%s not built", hmmprof_path);
}

struct result {
	int status;  /* from waitpid() */
	char *out;   /* stdout */
	char *err;   /* stderr */
	size_t out_len;
};

static char *slurp(const char *path, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r;

	ASSERT_TRUE(buf != NULL);
	ASSERT_GE(fd, 0);
	while ((r = read(fd, buf + n, cap - 1 - n)) > 0) {
		n += (size_t)r;
		if (n + 1 == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			ASSERT_TRUE(buf != NULL);
		}
	}
	close(fd);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

/* Runs @argv (NULL-terminated) as @uid (-1: ours), capturing its output. */
static void run_as(char *const argv[], int uid, struct result *r)
{
	char out[] = "/tmp/hmmprof-test-out-XXXXXX";
	char err[] = "/tmp/hmmprof-test-err-XXXXXX";
	int ofd = mkstemp(out), efd = mkstemp(err);
	pid_t pid;

	ASSERT_GE(ofd, 0);
	ASSERT_GE(efd, 0);
	fflush(stdout);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		dup2(ofd, 1);
		dup2(efd, 2);
		if (uid >= 0 && (setgid((gid_t)uid) || setuid((uid_t)uid)))
			_exit(99);
		execv(argv[0], argv);
		_exit(98);
	}
	close(ofd);
	close(efd);
	ASSERT_EQ(waitpid(pid, &r->status, 0), pid);
	r->out = slurp(out, &r->out_len);
	r->err = slurp(err, NULL);
	unlink(out);
	unlink(err);
}

static void run(char *const argv[], struct result *r)
{
	run_as(argv, -1, r);
}

static void result_free(struct result *r)
{
	free(r->out);
	free(r->err);
}

static void expect_exit(const struct result *r, int code)
{
	if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != code) {
		TH_LOG("stderr: %s", r->err);
		HMMT_FAIL("expected exit status %d, got wait status 0x%x",
			  code, r->status);
	}
}

/* --- a small JSON reader: well-formedness and lookups by path ---------- */

static const char *ws(const char *s)
{
	while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
		s++;
	return s;
}

/* Returns the end of the JSON value at @s, or NULL when it is not one. */
static const char *skip_value(const char *s)
{
	s = ws(s);
	if (*s == '{' || *s == '[') {
		char close = *s == '{' ? '}' : ']';
		bool obj = *s == '{';

		s = ws(s + 1);
		if (*s == close)
			return s + 1;
		for (;;) {
			if (obj) {
				if (*s != '"')
					return NULL;
				s = skip_value(s);
				if (!s || *(s = ws(s)) != ':')
					return NULL;
				s++;
			}
			s = skip_value(s);
			if (!s)
				return NULL;
			s = ws(s);
			if (*s == close)
				return s + 1;
			if (*s != ',')
				return NULL;
			s = ws(s + 1);
		}
	}
	if (*s == '"') {
		for (s++; *s && *s != '"'; s++)
			if (*s == '\\' && !*++s)
				return NULL;
		return *s ? s + 1 : NULL;
	}
	if (!strncmp(s, "true", 4))
		return s + 4;
	if (!strncmp(s, "false", 5))
		return s + 5;
	if (!strncmp(s, "null", 4))
		return s + 4;
	if (*s == '-' || (*s >= '0' && *s <= '9')) {
		char *end;

		strtod(s, &end);
		return end;
	}
	return NULL;
}

static bool json_valid(const char *s)
{
	const char *end = skip_value(s);

	return end && !*ws(end);
}

/* The value at @path ("a.b.0.c") in @json, or NULL. */
static const char *json_at(const char *json, const char *path)
{
	const char *v = ws(json);
	char key[128];

	while (*path) {
		size_t n = strcspn(path, ".");

		snprintf(key, sizeof(key), "%.*s", (int)n, path);
		path += n + (path[n] == '.');
		if (*v == '[') {
			long idx = strtol(key, NULL, 10);

			v = ws(v + 1);
			for (long i = 0; i < idx && v && *v != ']'; i++) {
				v = skip_value(v);
				if (!v || *(v = ws(v)) != ',')
					return NULL;
				v = ws(v + 1);
			}
			if (!v || *v == ']')
				return NULL;
			continue;
		}
		if (*v != '{')
			return NULL;
		v = ws(v + 1);
		for (;;) {
			const char *k = v, *after;

			if (*k != '"')
				return NULL;
			after = skip_value(k);
			if (!after)
				return NULL;
			v = ws(ws(after) + 1); /* past ':' */
			if ((size_t)(after - k - 2) == strlen(key) &&
			    !strncmp(k + 1, key, strlen(key)))
				break;
			v = skip_value(v);
			if (!v || *(v = ws(v)) != ',')
				return NULL;
			v = ws(v + 1);
		}
	}
	return v;
}

static uint64_t json_u64(const char *json, const char *path)
{
	const char *v = json_at(json, path);

	if (!v || *v < '0' || *v > '9')
		HMMT_FAIL("no number at %s in the JSON", path);
	return strtoull(v, NULL, 10);
}

static bool json_is(const char *json, const char *path, const char *lit)
{
	const char *v = json_at(json, path);

	return v && !strncmp(v, lit, strlen(lit));
}

/* Checks every migration count of @scope ("process" or "device"). */
static void check_counts(const char *json, const char *scope,
			 const struct expect *e)
{
	static const char *const causes[] = {
		"prefetch", "device_fault", "density", "cpu_fault",
		"eviction", "peer", "removal",
	};
	uint64_t ps = kt_page_size(), want[2][7] = { { 0 } };
	char path[160];

	want[0][0] = e->prefetch_to_device;
	want[0][1] = e->device_fault_pages;
	want[0][2] = e->density_pages;
	want[1][0] = e->prefetch_to_host;
	want[1][3] = e->cpu_fault_pages;
	for (int dir = 0; dir < 2; dir++) {
		const char *d = dir ? "to_host" : "to_device";
		uint64_t total = 0;

		for (int k = 0; k < 7; k++) {
			snprintf(path, sizeof(path), "%s.migrations.%s.%s.pages",
				 scope, d, causes[k]);
			TH_LOG("%s = %llu (expect %llu)", path,
			       (unsigned long long)json_u64(json, path),
			       (unsigned long long)want[dir][k]);
			ASSERT_EQ(json_u64(json, path), want[dir][k]);
			snprintf(path, sizeof(path), "%s.migrations.%s.%s.bytes",
				 scope, d, causes[k]);
			ASSERT_EQ(json_u64(json, path), want[dir][k] * ps);
			total += want[dir][k];
		}
		snprintf(path, sizeof(path), "%s.migrations.%s.total.pages",
			 scope, d);
		ASSERT_EQ(json_u64(json, path), total);
	}
	snprintf(path, sizeof(path), "%s.cpu_faults.count", scope);
	ASSERT_EQ(json_u64(json, path), e->cpu_faults);
	snprintf(path, sizeof(path), "%s.device_faults.count", scope);
	ASSERT_EQ(json_u64(json, path), e->device_faults);
	snprintf(path, sizeof(path), "%s.evictions", scope);
	ASSERT_EQ(json_u64(json, path), 0);
}

static void profile_pattern(const char *const opts[], struct result *r)
{
	char *argv[16];
	int n = 0;

	find_paths();
	argv[n++] = hmmprof_path;
	argv[n++] = "run";
	for (int i = 0; opts[i]; i++)
		argv[n++] = (char *)opts[i];
	argv[n++] = "--";
	argv[n++] = self_path;
	argv[n++] = "--pattern";
	argv[n] = NULL;
	run(argv, r);
	expect_exit(r, 0);
}

/* The buffer address the pattern printed on stderr. */
static unsigned long pattern_buffer(const struct result *r)
{
	const char *m = strstr(r->err, "hmmprof-pattern: buffer ");

	ASSERT_TRUE(m != NULL);
	return strtoul(m + strlen("hmmprof-pattern: buffer "), NULL, 16);
}

/* --- the tests --------------------------------------------------------- */

TEST(json_counts_match_the_access_pattern)
{
	const char *opts[] = { "-q", "--json", "-", NULL };
	uint64_t ps = kt_page_size();
	struct result r;
	struct expect e;
	char start[32];

	expected(&e);
	profile_pattern(opts, &r);
	ASSERT_TRUE(json_valid(r.out));
	ASSERT_TRUE(json_is(r.out, "trace.enabled", "true"));
	ASSERT_EQ(json_u64(r.out, "trace.lost_events"), 0);
	ASSERT_EQ(json_u64(r.out, "exit_status"), 0);
	ASSERT_EQ(json_u64(r.out, "page_size"), ps);
	/* the process, from its events; the device, from its counters */
	check_counts(r.out, "process", &e);
	check_counts(r.out, "device", &e);
	ASSERT_EQ(json_u64(r.out, "process.batches"),
		  json_u64(r.out, "device.batches"));
	ASSERT_EQ(json_u64(r.out, "process.copy_failures"), 0);
	/* one latency per fault, ordered percentiles */
	ASSERT_LE(json_u64(r.out, "process.cpu_faults.p50_ns"),
		  json_u64(r.out, "process.cpu_faults.p99_ns"));
	ASSERT_LE(json_u64(r.out, "process.cpu_faults.p99_ns"),
		  json_u64(r.out, "process.cpu_faults.max_ns"));
	ASSERT_GT(json_u64(r.out, "process.cpu_faults.max_ns"), 0);
	ASSERT_GT(json_u64(r.out, "process.device_faults.max_ns"), 0);
	ASSERT_GT(json_u64(r.out, "process.migrate_ns.to_device"), 0);
	ASSERT_GT(json_u64(r.out, "process.migrate_ns.to_host"), 0);
	ASSERT_GE(json_u64(r.out, "wall_ns"),
		  json_u64(r.out, "process.migrate_ns.total"));
	/* the buffer is the one touched range, all home at the end */
	snprintf(start, sizeof(start), "\"0x%lx\"", pattern_buffer(&r));
	ASSERT_TRUE(json_is(r.out, "ranges.0.start", start));
	ASSERT_EQ(json_u64(r.out, "ranges.0.bytes"), PAT_SIZE);
	ASSERT_EQ(json_u64(r.out, "ranges.0.pages_at_exit.host"), PAT_SIZE / ps);
	ASSERT_EQ(json_u64(r.out, "ranges.0.pages_at_exit.untouched"), 0);
	ASSERT_TRUE(json_at(r.out, "ranges.1") == NULL);
	result_free(&r);
}

TEST(summary_names_every_cause)
{
	const char *opts[] = { NULL };
	struct result r;
	struct expect e;
	char want[64];

	expected(&e);
	profile_pattern(opts, &r);
	ASSERT_TRUE(strstr(r.err, "== hmmprof: ") != NULL);
	ASSERT_TRUE(strstr(r.err, "host to device") != NULL);
	ASSERT_TRUE(strstr(r.err, "device to host") != NULL);
	ASSERT_TRUE(strstr(r.err, "  prefetch ") != NULL);
	ASSERT_TRUE(strstr(r.err, "  CPU fault ") != NULL);
	ASSERT_TRUE(strstr(r.err, "  device fault ") != NULL);
	ASSERT_TRUE(strstr(r.err, "Time migrating:") != NULL);
	/* 8 MiB prefetched to the device, in scaled units */
	ASSERT_TRUE(strstr(r.err, "8.00 MiB") != NULL);
	snprintf(want, sizeof(want), "%-20s %9llu", "CPU, process",
		 (unsigned long long)e.cpu_faults);
	if (!strstr(r.err, want))
		HMMT_FAIL("no '%s' in:\n%s", want, r.err);
	result_free(&r);
}

/* Splits a CSV line (no quoted fields) into at most @max fields. */
static int csv_split(char *line, char **f, int max)
{
	int n = 0;

	for (char *s = line; n < max; s++) {
		f[n++] = s;
		s = strchr(s, ',');
		if (!s)
			break;
		*s = '\0';
	}
	return n;
}

TEST(csv_timeline_adds_up_to_the_counts)
{
	const char *opts[] = { "-q", "--csv", "-", NULL };
	uint64_t ps = kt_page_size(), sum[2][7] = { { 0 } }, faults = 0;
	uint64_t dev_faults = 0, launches = 0, allocs = 0, prefetches = 0;
	static const char *const causes[] = {
		"prefetch", "device_fault", "density", "cpu_fault",
		"eviction", "peer", "removal",
	};
	char *line, *save = NULL, *f[16];
	unsigned long long last = 0;
	struct result r;
	struct expect e;
	int rows = 0, pid = -1;

	expected(&e);
	profile_pattern(opts, &r);
	line = strtok_r(r.out, "\n", &save);
	ASSERT_TRUE(line != NULL);
	ASSERT_STREQ(line, "time_ns,pid,tid,dev,direction,cause,start,npages,"
			   "pages,bytes,peer_pages,failed,ns,event,allocation,"
			   "detail");
	while ((line = strtok_r(NULL, "\n", &save))) {
		unsigned long long t, bytes;
		unsigned int pages;
		int p, k, d;

		ASSERT_EQ(csv_split(line, f, 16), 16);
		t = strtoull(f[0], NULL, 10);
		p = atoi(f[1]);
		pages = (unsigned int)strtoul(f[8], NULL, 10);
		bytes = strtoull(f[9], NULL, 10);
		/* in time order; one process: every row names it */
		ASSERT_GE(t, last);
		last = t;
		if (pid < 0)
			pid = p;
		ASSERT_EQ(p, pid);
		ASSERT_EQ(strtoul(f[11], NULL, 10), 0); /* failed */
		if (!strcmp(f[13], "alloc")) {
			ASSERT_STREQ(f[14], "pattern");
			ASSERT_EQ(bytes, PAT_SIZE);
			allocs++;
			continue;
		}
		if (!strcmp(f[13], "launch")) {
			ASSERT_STREQ(f[15], "touch_kernel");
			ASSERT_STREQ(f[3], "0");
			launches++;
			continue;
		}
		if (!strcmp(f[13], "prefetch")) {
			ASSERT_STREQ(f[14], "pattern");
			prefetches++;
			continue;
		}
		if (!strcmp(f[13], "device_fault")) {
			ASSERT_STREQ(f[14], "pattern");
			dev_faults++;
			continue;
		}
		if (strcmp(f[13], "batch") && strcmp(f[13], "cpu_fault"))
			continue; /* other API markers */
		ASSERT_EQ(bytes, (unsigned long long)pages * ps);
		/* every migration of the program hit its one buffer */
		ASSERT_STREQ(f[14], "pattern");
		d = !strcmp(f[4], "to_host");
		ASSERT_TRUE(d || !strcmp(f[4], "to_device"));
		for (k = 0; k < 7 && strcmp(f[5], causes[k]); k++)
			;
		ASSERT_LT(k, 7);
		sum[d][k] += pages;
		faults += k == 3;
		rows++;
	}
	ASSERT_GT(rows, 0);
	ASSERT_EQ(sum[0][0], e.prefetch_to_device);
	ASSERT_EQ(sum[0][1], e.device_fault_pages);
	ASSERT_EQ(sum[0][2], e.density_pages);
	ASSERT_EQ(sum[1][0], e.prefetch_to_host);
	ASSERT_EQ(sum[1][3], e.cpu_fault_pages);
	ASSERT_EQ(faults, e.cpu_faults);
	ASSERT_EQ(dev_faults, e.device_faults);
	ASSERT_EQ(allocs, 1);
	ASSERT_EQ(launches, 1);
	ASSERT_EQ(prefetches, 3); /* to the device, home, the 2 MiB home */
	result_free(&r);
}

/* @bytes (at least 1 MiB) as hmmprof scales them: "8.00 MiB", "10.0 MiB". */
static char *mib(char *buf, size_t len, uint64_t bytes)
{
	double v = (double)bytes / (1 << 20);

	snprintf(buf, len, v < 10 ? "%.2f MiB" : v < 100 ? "%.1f MiB" :
				    "%.0f MiB", v);
	return buf;
}

/*
 * The named buffer in the allocation table: every byte, fault and cause
 * of the pattern is its own, in the JSON and in the summary.
 */
TEST(allocation_table_charges_the_named_buffer)
{
	const char *opts[] = { "--json", "-", NULL };
	uint64_t ps = kt_page_size();
	struct result r;
	struct expect e;
	char start[32], want[160], b[32], b2[32];
	const char *site;

	expected(&e);
	profile_pattern(opts, &r);
	ASSERT_TRUE(json_valid(r.out));
	ASSERT_TRUE(json_is(r.out, "allocations.0.name", "\"pattern\""));
	snprintf(start, sizeof(start), "\"0x%lx\"", pattern_buffer(&r));
	ASSERT_TRUE(json_is(r.out, "allocations.0.start", start));
	ASSERT_EQ(json_u64(r.out, "allocations.0.size"), PAT_SIZE);
	ASSERT_TRUE(json_at(r.out, "allocations.1") == NULL);
	ASSERT_EQ(json_u64(r.out, "allocations.0.migrations.to_device.prefetch"),
		  e.prefetch_to_device * ps);
	ASSERT_EQ(json_u64(r.out,
			   "allocations.0.migrations.to_device.device_fault"),
		  e.device_fault_pages * ps);
	ASSERT_EQ(json_u64(r.out, "allocations.0.migrations.to_device.density"),
		  e.density_pages * ps);
	ASSERT_EQ(json_u64(r.out, "allocations.0.migrations.to_host.prefetch"),
		  e.prefetch_to_host * ps);
	ASSERT_EQ(json_u64(r.out, "allocations.0.migrations.to_host.cpu_fault"),
		  e.cpu_fault_pages * ps);
	ASSERT_EQ(json_u64(r.out, "allocations.0.cpu_faults"), e.cpu_faults);
	ASSERT_EQ(json_u64(r.out, "allocations.0.device_faults"),
		  e.device_faults);
	/* the 2 MiB the device read had gone home before: they bounced */
	ASSERT_EQ(json_u64(r.out, "allocations.0.bounced_pages"), PAT_DEV / ps);
	ASSERT_GT(json_u64(r.out, "allocations.0.migrate_ns"), 0);
	ASSERT_EQ(json_u64(r.out, "unattributed_bytes.to_device"), 0);
	ASSERT_EQ(json_u64(r.out, "unattributed_bytes.to_host"), 0);
	/* the allocation site: a function of this program (the pattern's,
	 * or main() when the compiler put the one into the other) */
	site = json_at(r.out, "allocations.0.site");
	ASSERT_TRUE(site != NULL);
	if (strncmp(site, "\"pattern_main+0x", 15) &&
	    strncmp(site, "\"main+0x", 8))
		HMMT_FAIL("allocation site %.40s", site);
	/* the summary's table: the name, its size and bytes to the device */
	snprintf(want, sizeof(want), "  %-18s %10s %10s", "pattern",
		 mib(b, sizeof(b), PAT_SIZE),
		 mib(b2, sizeof(b2), (e.prefetch_to_device +
				      e.device_fault_pages +
				      e.density_pages) * ps));
	if (!strstr(r.err, want))
		HMMT_FAIL("no '%s' in:\n%s", want, r.err);
	result_free(&r);
}

/*
 * A minimal XML check: tags nest and close, attributes are quoted.
 * Returns NULL or what is wrong.
 */
static const char *xml_problem(const char *s)
{
	static char why[128];
	char stack[64][32];
	int depth = 0;

	while ((s = strchr(s, '<'))) {
		const char *end;
		char name[32];
		size_t n;

		if (!strncmp(s, "<?", 2) || !strncmp(s, "<!", 2)) {
			s = strchr(s, '>');
			if (!s)
				return "unterminated declaration";
			continue;
		}
		end = s + 1;
		/* find the tag's end, skipping quoted attribute values */
		while (*end && *end != '>') {
			if (*end == '"') {
				end = strchr(end + 1, '"');
				if (!end)
					return "unterminated attribute";
			}
			end++;
		}
		if (!*end)
			return "unterminated tag";
		if (s[1] == '/') {
			n = strcspn(s + 2, " >");
			snprintf(name, sizeof(name), "%.*s", (int)n, s + 2);
			if (!depth || strcmp(stack[depth - 1], name)) {
				snprintf(why, sizeof(why), "</%s> closes %s",
					 name, depth ? stack[depth - 1] : "nothing");
				return why;
			}
			depth--;
		} else if (end[-1] != '/') {
			n = strcspn(s + 1, " />");
			if (depth == 64)
				return "too deep";
			snprintf(stack[depth++], sizeof(stack[0]), "%.*s",
				 (int)n, s + 1);
		}
		s = end + 1;
	}
	if (depth) {
		snprintf(why, sizeof(why), "<%s> never closed",
			 stack[depth - 1]);
		return why;
	}
	return NULL;
}

static unsigned int count(const char *s, const char *what)
{
	unsigned int n = 0;

	while ((s = strstr(s, what))) {
		n++;
		s += strlen(what);
	}
	return n;
}

TEST(svg_and_html_hold_the_plots)
{
	char svg[] = "/tmp/hmmprof-test-XXXXXX.svg";
	char html[] = "/tmp/hmmprof-test-XXXXXX.html";
	const char *opts[] = { "-q", "--svg", svg, "--html", html, NULL };
	const char *why, *body;
	struct result r;
	char *s, *h;

	close(mkstemps(svg, 4));
	close(mkstemps(html, 5));
	profile_pattern(opts, &r);
	s = slurp(svg, NULL);
	h = slurp(html, NULL);
	unlink(svg);
	unlink(html);

	/* SVG: an XML document whose root is <svg> */
	ASSERT_EQ(strncmp(s, "<?xml", 5), 0);
	body = strstr(s, "<svg ");
	ASSERT_TRUE(body != NULL);
	ASSERT_TRUE(strstr(body, "xmlns=\"http://www.w3.org/2000/svg\"") != NULL);
	why = xml_problem(s);
	if (why)
		HMMT_FAIL("SVG is not well-formed: %s", why);
	ASSERT_TRUE(strstr(s, "</svg>\n") != NULL);
	/* one line per direction, with points */
	ASSERT_EQ(count(s, "<polyline id=\"to_device\""), 1);
	ASSERT_EQ(count(s, "<polyline id=\"to_host\""), 1);
	ASSERT_TRUE(strstr(s, "points=\"96,") != NULL);
	/* the timeline: the kernel on its stream, faults and batches on
	 * device 0 */
	ASSERT_EQ(count(s, "<g id=\"timeline\">"), 1);
	ASSERT_EQ(count(s, "<g class=\"lane\" id=\"lane-stream-"), 1);
	ASSERT_EQ(count(s, "<g class=\"lane\" id=\"lane-device-0\">"), 1);
	ASSERT_GT(count(s, "<rect class=\"kernel\""), 0);
	ASSERT_GT(count(s, "<rect class=\"device_fault\""), 0);
	ASSERT_GT(count(s, "<rect class=\"to_device\""), 0);
	ASSERT_GT(count(s, "<rect class=\"to_host\""), 0);
	/* the fault latency histogram: both kinds of fault */
	ASSERT_EQ(count(s, "<g id=\"fault-latency\">"), 1);
	ASSERT_GT(count(s, "<rect class=\"lat-cpu\""), 0);
	ASSERT_GT(count(s, "<rect class=\"lat-device\""), 0);
	/* one residency map (one range), with host and device 0 cells */
	ASSERT_EQ(count(s, "<g class=\"residency\""), 1);
	ASSERT_GT(count(s, "<rect class=\"res-dev0\""), 0);
	ASSERT_GT(count(s, "<rect class=\"res-host\""), 0);

	/* HTML: one self-contained page with the summary and the same SVG */
	ASSERT_EQ(strncmp(h, "<!DOCTYPE html>", 15), 0);
	why = xml_problem(strstr(h, "<html"));
	if (why)
		HMMT_FAIL("HTML does not nest: %s", why);
	ASSERT_TRUE(strstr(h, "<pre id=\"summary\">") != NULL);
	ASSERT_TRUE(strstr(h, "host to device") != NULL);
	ASSERT_EQ(count(h, "<svg "), 1);
	ASSERT_EQ(count(h, "<polyline id=\"to_device\""), 1);
	ASSERT_GT(count(h, "<rect class=\"res-dev0\""), 0);
	/* nothing fetched from elsewhere */
	ASSERT_EQ(count(h, "<script"), 0);
	ASSERT_EQ(count(h, "src="), 0);
	ASSERT_EQ(count(h, "href="), 0);
	ASSERT_EQ(count(h, "<link"), 0);
	free(s);
	free(h);
	result_free(&r);
}

/*
 * The structure Perfetto and chrome://tracing need, on hmmprof's output
 * (one event per line): every complete ("X") event has pid, tid, ts and
 * dur; on each track (pid, tid) the slices come in time order and nest.
 * tests/unit/check_trace_events.py checks the same, and more, on the
 * host.  Returns NULL or what is wrong.
 */
static const char *trace_problem(const char *s)
{
	static char why[160];
	struct track {
		int pid, tid, depth;
		double last, ends[64];
	} *t = calloc(512, sizeof(*t));
	int ntracks = 0, line = 0;

	ASSERT_TRUE(t != NULL);
	for (; s && *s; s = strchr(s, '\n'), s = s ? s + 1 : NULL, line++) {
		const char *at;
		double ts, dur;
		int pid, tid, k;

		if (strncmp(s, "{\"ph\":\"X\"", 10))
			continue;
		at = strstr(s, "\"pid\":");
		if (!at || sscanf(at, "\"pid\":%d,\"tid\":%d,\"ts\":%lf,"
				  "\"dur\":%lf", &pid, &tid, &ts, &dur) != 4 ||
		    ts < 0 || dur < 0) {
			snprintf(why, sizeof(why), "line %d: no pid, tid, ts, dur",
				 line);
			goto out;
		}
		for (k = 0; k < ntracks && (t[k].pid != pid || t[k].tid != tid);
		     k++)
			;
		if (k == ntracks) {
			if (ntracks == 512)
				continue;
			t[ntracks].pid = pid;
			t[ntracks++].tid = tid;
		}
		if (ts < t[k].last) {
			snprintf(why, sizeof(why), "line %d: ts %.3f goes back "
				 "on track %d/%d", line, ts, pid, tid);
			goto out;
		}
		t[k].last = ts;
		while (t[k].depth && t[k].ends[t[k].depth - 1] <= ts)
			t[k].depth--;
		if (t[k].depth && ts + dur > t[k].ends[t[k].depth - 1] + 1e-6) {
			snprintf(why, sizeof(why), "line %d: a slice overlaps the "
				 "end of its parent on track %d/%d", line, pid,
				 tid);
			goto out;
		}
		if (t[k].depth < 64)
			t[k].ends[t[k].depth++] = ts + dur;
	}
	free(t);
	return NULL;
out:
	free(t);
	return why;
}

TEST(perfetto_timeline_has_kernels_migrations_and_faults)
{
	char path[] = "/tmp/hmmprof-test-XXXXXX.json";
	const char *opts[] = { "-q", "--perfetto", path, NULL };
	const char *why, *k;
	struct result r;
	struct expect e;
	double kts, kdur, mts;
	char *s;

	expected(&e);
	close(mkstemps(path, 5));
	profile_pattern(opts, &r);
	s = slurp(path, NULL);
	unlink(path);
	ASSERT_TRUE(json_valid(s));
	ASSERT_EQ(strncmp(s, "{\"displayTimeUnit\":\"ns\"", 23), 0);
	why = trace_problem(s);
	if (why)
		HMMT_FAIL("trace events: %s", why);
	/* the program's process and the device are named tracks */
	ASSERT_EQ(count(s, "\"name\":\"process_name\""), 2);
	ASSERT_EQ(count(s, "{\"name\":\"hmmgpu 0\"}"), 1);
	/* the kernel, by its name, on its stream's thread */
	ASSERT_EQ(count(s, "\"cat\":\"kernel\",\"name\":\"touch_kernel\""), 1);
	ASSERT_EQ(count(s, "(device 0)\"}}"), 1);
	/* one slice per device fault and per CPU fault */
	ASSERT_EQ(count(s, "\"name\":\"device fault\""), e.device_faults);
	ASSERT_EQ(count(s, "\"name\":\"CPU fault\""), e.cpu_faults);
	ASSERT_GE(count(s, "\"cat\":\"migration\""), 3);
	ASSERT_EQ(count(s, "\"name\":\"prefetch to device\""), 1);
	ASSERT_EQ(count(s, "\"name\":\"prefetch to host\""), 2);
	ASSERT_GT(count(s, "\"allocation\":\"pattern\""), e.device_faults);
	ASSERT_GT(count(s, "\"ph\":\"C\""), 0);
	/* one time axis: the device-fault migrations lie in the kernel */
	k = strstr(s, "\"name\":\"touch_kernel\"");
	ASSERT_EQ(sscanf(strstr(k, "\"ts\":"), "\"ts\":%lf,\"dur\":%lf",
			 &kts, &kdur), 2);
	k = strstr(s, "\"cause\":\"device_fault\"");
	ASSERT_TRUE(k != NULL);
	while (k > s && k[-1] != '\n')
		k--;
	ASSERT_EQ(sscanf(strstr(k, "\"ts\":"), "\"ts\":%lf", &mts), 1);
	TH_LOG("kernel [%.3f, %.3f] us, first device-fault batch at %.3f us",
	       kts, kts + kdur, mts);
	ASSERT_TRUE(mts >= kts - 1 && mts <= kts + kdur + 1);
	free(s);
	result_free(&r);
}

/*
 * Evicted pages leave the device in the residency map too: with the
 * hmmgpu_evicted events, the map at exit is exactly what hmm_residency()
 * said in the program, and no evicted byte is left unplaced.
 */
TEST(residency_map_follows_evictions)
{
	char *argv[] = { NULL, "run", "-q", "--json", "-", "--", self_path,
			 "--evict-pattern", NULL };
	unsigned long buf, on_dev, on_host;
	uint64_t ps = kt_page_size(), evicted;
	char start[32];
	const char *m;
	struct result r;

	find_paths();
	kt_reload_hmmgpu(EVICT_DEV_PARAMS);
	argv[0] = hmmprof_path;
	run(argv, &r);
	expect_exit(&r, 0);
	ASSERT_TRUE(json_valid(r.out));
	m = strstr(r.err, "hmmprof-evict: buffer ");
	ASSERT_TRUE(m != NULL);
	ASSERT_EQ(sscanf(m, "hmmprof-evict: buffer 0x%lx device %lu host %lu",
			 &buf, &on_dev, &on_host), 3);
	TH_LOG("the program saw %lu pages on the device, %lu on the host",
	       on_dev, on_host);
	ASSERT_EQ(on_dev + on_host, EVICT_SIZE / ps);
	ASSERT_GT(on_host, 0);

	evicted = json_u64(r.out, "process.migrations.to_host.eviction.pages");
	ASSERT_GE(evicted, on_host);
	ASSERT_EQ(json_u64(r.out, "evicted_bytes_not_in_map"), 0);
	snprintf(start, sizeof(start), "\"0x%lx\"", buf);
	ASSERT_TRUE(json_is(r.out, "ranges.0.start", start));
	ASSERT_EQ(json_u64(r.out, "ranges.0.bytes"), EVICT_SIZE);
	ASSERT_EQ(json_u64(r.out, "ranges.0.pages_at_exit.device0"), on_dev);
	ASSERT_EQ(json_u64(r.out, "ranges.0.pages_at_exit.host"), on_host);
	result_free(&r);
	kt_restore_hmmgpu();
}

TEST(counters_only_without_tracing)
{
	const char *opts[] = { "-q", "--no-trace", "--json", "-", NULL };
	struct result r;
	struct expect e;

	expected(&e);
	profile_pattern(opts, &r);
	ASSERT_TRUE(json_valid(r.out));
	ASSERT_TRUE(json_is(r.out, "trace.enabled", "false"));
	ASSERT_TRUE(json_is(r.out, "process", "null"));
	check_counts(r.out, "device", &e);
	result_free(&r);
}

/*
 * Sets the mode of every render node (0: puts back the first one's mode,
 * which *@old receives when not NULL); returns how many there are.
 */
static int chmod_render_nodes(mode_t mode, mode_t *old)
{
	struct stat st;
	glob_t g;
	int n;

	if (glob("/dev/dri/renderD*", 0, NULL, &g))
		return 0;
	if (old) {
		ASSERT_EQ(stat(g.gl_pathv[0], &st), 0);
		*old = st.st_mode & 07777;
	}
	for (size_t i = 0; i < g.gl_pathc; i++)
		ASSERT_EQ(chmod(g.gl_pathv[i], mode), 0);
	n = (int)g.gl_pathc;
	globfree(&g);
	return n;
}

TEST(unprivileged_user_gets_counters_and_a_warning)
{
	struct result r;
	struct expect e;
	char *argv[8];
	mode_t mode;

	if (geteuid() != 0)
		SKIP("needs root to switch users");
	find_paths();
	expected(&e);
	/* render nodes open to all, tracefs still root's */
	ASSERT_GT(chmod_render_nodes(0666, &mode), 0);
	argv[0] = hmmprof_path;
	argv[1] = "run";
	argv[2] = "--json";
	argv[3] = "-";
	argv[4] = self_path;
	argv[5] = "--pattern";
	argv[6] = NULL;
	run_as(argv, 65534, &r);
	chmod_render_nodes(mode, NULL);
	expect_exit(&r, 0);
	if (!strstr(r.err, "hmmprof: warning: cannot trace: "))
		HMMT_FAIL("no warning about tracing in:\n%s", r.err);
	ASSERT_TRUE(strstr(r.err, "whole-device counters only") != NULL);
	ASSERT_TRUE(json_is(r.out, "process", "null"));
	check_counts(r.out, "device", &e);
	result_free(&r);

	/* render nodes closed to it: a clear error, nothing run */
	ASSERT_GT(chmod_render_nodes(0600, NULL), 0);
	argv[2] = "--";
	argv[3] = "/bin/true";
	argv[4] = NULL;
	run_as(argv, 65534, &r);
	chmod_render_nodes(mode, NULL);
	expect_exit(&r, 1);
	if (!strstr(r.err, "hmmprof: no permission to open the hmmgpu render "
			   "nodes"))
		HMMT_FAIL("unexpected message: %s", r.err);
	result_free(&r);
}

TEST(program_not_found_exits_127)
{
	char noexec[] = "/tmp/hmmprof-test-noexec-XXXXXX";
	char *argv[5];
	struct result r;
	int fd;

	find_paths();
	argv[0] = hmmprof_path;
	argv[1] = "run";
	argv[2] = "--";
	argv[3] = "/nonexistent/hmmprof-test-program";
	argv[4] = NULL;
	run(argv, &r);
	expect_exit(&r, 127);
	ASSERT_STREQ(r.err, "hmmprof: cannot run "
			    "'/nonexistent/hmmprof-test-program': "
			    "No such file or directory\n");
	result_free(&r);

	argv[3] = "hmmprof-test-no-such-command";
	run(argv, &r);
	expect_exit(&r, 127);
	ASSERT_STREQ(r.err, "hmmprof: cannot run "
			    "'hmmprof-test-no-such-command': command not found\n");
	result_free(&r);

	/* there but not executable: 126, like a shell */
	fd = mkstemp(noexec);
	ASSERT_GE(fd, 0);
	close(fd);
	argv[3] = noexec;
	run(argv, &r);
	unlink(noexec);
	expect_exit(&r, 126);
	ASSERT_TRUE(strstr(r.err, "Permission denied") != NULL);
	result_free(&r);
}

/* Usage errors exit 2 with one line; an output that cannot be written, 1. */
TEST(bad_usage_exits_2_and_unwritable_output_1)
{
	char *two[] = { NULL, "run", "--json", "-", "-o", "-", "--", "/bin/true",
			NULL };
	char *none[] = { NULL, "run", NULL };
	char *buf[] = { NULL, "run", "--buffer-kib", "1", "--", "/bin/true",
			NULL };
	char *unwritable[] = { NULL, "run", "--json", "/nonexistent/p.json",
			       "--", "/bin/true", NULL };
	char **cases[] = { two, none, buf };
	struct result r;

	find_paths();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cases[i][0] = hmmprof_path;
		run(cases[i], &r);
		expect_exit(&r, 2);
		ASSERT_EQ(strncmp(r.err, "hmmprof: ", 9), 0);
		ASSERT_EQ(strchr(r.err, '\n') - r.err + 1, (long)strlen(r.err));
		result_free(&r);
	}
	unwritable[0] = hmmprof_path;
	run(unwritable, &r);
	expect_exit(&r, 1);
	ASSERT_STREQ(r.err, "hmmprof: cannot write the JSON to "
			    "'/nonexistent/p.json': No such file or directory\n");
	result_free(&r);
}

TEST(exit_status_is_the_programs)
{
	char *argv[] = { NULL, "run", "-q", "--", "/bin/sh", "-c", NULL, NULL };
	struct result r;

	find_paths();
	argv[0] = hmmprof_path;
	argv[6] = "exit 3";
	run(argv, &r);
	expect_exit(&r, 3);
	result_free(&r);
	argv[6] = "kill -TERM $$";
	run(argv, &r);
	expect_exit(&r, 128 + SIGTERM);
	result_free(&r);
}

TEST(no_device_is_a_clear_error)
{
	char *run_argv[] = { NULL, "run", "--", "/bin/true", NULL };
	char *top_argv[] = { NULL, "top", "-n", "1", NULL };
	struct result r;
	int ret;

	find_paths();
	run_argv[0] = top_argv[0] = hmmprof_path;
	ret = kt_unload_hmmgpu();
	if (ret)
		HMMT_FAIL("unloading hmmgpu: %s", strerror(-ret));
	run(run_argv, &r);
	expect_exit(&r, 1);
	ASSERT_STREQ(r.err, "hmmprof: no hmmgpu device found "
			    "(is hmmgpu.ko loaded?)\n");
	result_free(&r);
	run(top_argv, &r);
	expect_exit(&r, 1);
	ASSERT_STREQ(r.err, "hmmprof: no hmmgpu device found "
			    "(is hmmgpu.ko loaded?)\n");
	ASSERT_EQ(r.out_len, 0);
	result_free(&r);
	kt_restore_hmmgpu();
}

TEST(top_prints_plain_lines_when_not_a_terminal)
{
	char *argv[] = { NULL, "top", "-i", "0.2", "-n", "2", NULL };
	int ndev = kt_count_devices();
	struct result r;
	char want[32];

	find_paths();
	argv[0] = hmmprof_path;
	run(argv, &r);
	expect_exit(&r, 0);
	ASSERT_TRUE(strchr(r.out, '\033') == NULL);
	ASSERT_EQ(count(r.out, "# hmmprof top"), 1);
	for (int d = 0; d < ndev; d++) {
		snprintf(want, sizeof(want), " dev %d mem ", d);
		ASSERT_EQ(count(r.out, want), 2);
	}
	/* what each device is, once: its bus, for PCI its IDs and BAR */
	for (int d = 0; d < ndev; d++) {
		char bus[64], *line;

		ASSERT_EQ(kt_device_bus(d, bus, sizeof(bus)), 0);
		snprintf(want, sizeof(want), "# dev %d: ", d);
		ASSERT_EQ(count(r.out, want), 1);
		line = strstr(r.out, want) + strlen(want);
		ASSERT_EQ(strncmp(line, bus, strlen(bus)), 0);
		line += strlen(bus);
		if (!strncmp(bus, "pci:", 4))
			ASSERT_EQ(strncmp(line, " [", 2), 0);
		else
			ASSERT_EQ(strncmp(line, ", memory in system RAM\n", 23),
				  0);
	}
	/* and a line per process holding an hmmgpu file, if any */
	ASSERT_EQ(count(r.out, "\n"),
		  1 + 3 * (unsigned int)ndev + count(r.out, " proc "));
	ASSERT_TRUE(strstr(r.out, " h2d ") && strstr(r.out, " d2h "));
	ASSERT_STREQ(r.err, "");
	result_free(&r);
}

/*
 * One row per process, from /proc/PID/fdinfo: a child that put 1 MiB on
 * device 0 shows with it, and hmmprof's own files do not show.
 */
TEST(top_shows_each_process_and_its_device_memory)
{
	char *argv[] = { NULL, "top", "-i", "0.2", "-n", "1", NULL };
	size_t size = 1UL << 20, npages = size / kt_page_size();
	int ready[2], done[2];
	char want[64];
	const char *line;
	struct result r;
	pid_t pid;

	find_paths();
	argv[0] = hmmprof_path;
	ASSERT_EQ(pipe(ready), 0);
	ASSERT_EQ(pipe(done), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		int fd = kt_open_device(0);
		char *p = kt_map(size);

		kt_fill(p, size, 91);
		KT_EXPECT_MIGRATE(fd, p, size, HMMGPU_MIGRATE_TO_DEVICE,
				  npages, 0, 0);
		kt_pipe_signal(ready[1]);
		kt_pipe_wait(done[0]);
		_exit(0);
	}
	kt_pipe_wait(ready[0]);
	run(argv, &r);
	kt_pipe_signal(done[1]);
	ASSERT_EQ(kt_wait_child(pid), 0);
	expect_exit(&r, 0);
	TH_LOG("%s", r.out);
	snprintf(want, sizeof(want), " proc %d ", (int)pid);
	line = strstr(r.out, want);
	ASSERT_TRUE(line != NULL);
	ASSERT_TRUE(strncmp(strstr(line, " dev "), " dev 0 mem 1.00 MiB ",
			    20) == 0);
	ASSERT_EQ(count(r.out, " proc "), 1);
	ASSERT_STREQ(r.err, "");
	result_free(&r);
}

TEST(top_stops_cleanly_on_sigint)
{
	char out[] = "/tmp/hmmprof-test-top-XXXXXX";
	int fd = mkstemp(out), status;
	struct stat st;
	pid_t pid;

	find_paths();
	ASSERT_GE(fd, 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		dup2(fd, 1);
		execl(hmmprof_path, hmmprof_path, "top", "-i", "0.1",
		      (char *)NULL);
		_exit(98);
	}
	close(fd);
	/* wait for a first refresh (the harness bounds the test's time) */
	do {
		usleep(20000);
		ASSERT_EQ(stat(out, &st), 0);
	} while (st.st_size < 100);
	ASSERT_EQ(kill(pid, SIGINT), 0);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	unlink(out);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "--pattern"))
		return pattern_main();
	if (argc == 2 && !strcmp(argv[1], "--evict-pattern"))
		return evict_pattern_main();
	return hmmt_main(argc, argv);
}
