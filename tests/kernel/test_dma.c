// SPDX-License-Identifier: MIT
/*
 * test_dma.c - hmmgpu's dmaengine copy engine, run against the test-only
 * DMA_MEMCPY provider hmmgpu_testdma.ko (tests/kernel/dma/): choosing the
 * engine, exact copies both ways, copy failures that leave pages where
 * they are with their data, and the module parameters that pick the
 * engine.
 *
 * Runs inside the test VM with hmmgpu.ko loaded (tools/vm/hmmvm test).
 * Each test reloads hmmgpu as it needs it, and leaves it loaded with its
 * original parameters and hmmgpu_testdma unloaded, also when it fails.
 */
#define _GNU_SOURCE
#include "kt_common.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TESTDMA_NAME "hmmgpu_testdma"
#define TESTDMA_KO_DEFAULT "/lib/modules/" TESTDMA_NAME ".ko"
#define TESTDMA_PARAMS "/sys/module/" TESTDMA_NAME "/parameters/"
#define BUF_SIZE (4UL << 20)
#define SEED 0xd3a7e57ULL
#define FAIL_EVERY 7

static pid_t dma_owner;

static const char *testdma_ko(void)
{
	const char *ko = getenv("HMMGPU_TESTDMA_KO");

	if (!ko)
		ko = TESTDMA_KO_DEFAULT;
	if (access(ko, R_OK))
		SKIP("%s not found (tools/vm/hmmvm builds it)", ko);
	return ko;
}

static bool testdma_loaded(void)
{
	return !access("/sys/module/" TESTDMA_NAME, F_OK);
}

static int testdma_load(const char *params)
{
	int fd = open(testdma_ko(), O_RDONLY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, params, 0) ? -errno : 0;
	close(fd);
	return ret;
}

/* Unloads the test module, retrying while a channel release finishes. */
static int testdma_unload(void)
{
	for (int tries = 0;; tries++) {
		if (!syscall(SYS_delete_module, TESTDMA_NAME, O_NONBLOCK))
			return 0;
		if ((errno != EWOULDBLOCK && errno != EAGAIN) || tries >= 250)
			return -errno;
		usleep(20000);
	}
}

/* A parameter of the test module: a counter, or fail_every. */
static long long testdma_param(const char *name)
{
	char path[128], buf[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), TESTDMA_PARAMS "%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		HMMT_FAIL("open %s: %s", path, strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		HMMT_FAIL("read %s failed", path);
	buf[n] = '\0';
	return strtoll(buf, NULL, 0);
}

static void testdma_set_fail_every(unsigned int n)
{
	char val[16];

	snprintf(val, sizeof(val), "%u", n);
	ASSERT_EQ(kt_sysfs_write(TESTDMA_PARAMS "fail_every", val), 0);
	ASSERT_EQ(testdma_param("fail_every"), n);
}

/*
 * At exit, before kt_common's handler (atexit runs handlers in reverse):
 * hmmgpu holds the test module while it uses a channel, so unload hmmgpu
 * first, then the test module; kt_common then loads hmmgpu with its
 * original parameters.
 */
static void dma_at_exit(void)
{
	int ret;

	if (getpid() != dma_owner)
		return;
	close_range(3, ~0U, 0);
	if (!testdma_loaded())
		return;
	if (!access("/sys/module/hmmgpu", F_OK)) {
		ret = kt_unload_hmmgpu();
		if (ret)
			printf("# test_dma: could not unload hmmgpu: %s\n",
			       strerror(-ret));
	}
	ret = testdma_unload();
	if (ret)
		printf("# test_dma: could not unload " TESTDMA_NAME ": %s\n",
		       strerror(-ret));
	fflush(stdout);
}

/*
 * Writes "num_devices=N mem_mib=M copy_channels=C" of the loaded hmmgpu
 * to @params, then unloads it (which makes kt_common restore it at exit)
 * and arms dma_at_exit().  Makes sure the test module is not loaded
 * either.
 */
static void unload_all(char *params, size_t len)
{
	unsigned int ndev = kt_module_param("num_devices");
	unsigned int mib = kt_module_param("mem_mib");
	unsigned int channels = kt_module_param_or("copy_channels", 4);

	(void)testdma_ko();
	snprintf(params, len, "num_devices=%u mem_mib=%u copy_channels=%u",
		 ndev, mib, channels);
	ASSERT_EQ(kt_unload_hmmgpu(), 0);
	if (dma_owner != getpid()) {
		dma_owner = getpid();
		atexit(dma_at_exit);
	}
	if (testdma_loaded())
		ASSERT_EQ(testdma_unload(), 0);
}

/*
 * Loads the test module with one channel per hmmgpu device and
 * @fail_every, then hmmgpu with copy_engine=@engine.
 */
static void load_with_testdma(const char *engine, unsigned int fail_every)
{
	char params[128], tparams[64];
	unsigned int ndev = kt_module_param("num_devices");
	int ret;

	unload_all(params, sizeof(params));
	snprintf(tparams, sizeof(tparams), "channels=%u fail_every=%u",
		 ndev > 8 ? 8 : ndev, fail_every);
	ASSERT_EQ(testdma_load(tparams), 0);
	ASSERT_EQ(testdma_param("copies"), 0);
	ASSERT_EQ(testdma_param("failed"), 0);

	snprintf(params + strlen(params), sizeof(params) - strlen(params),
		 " copy_engine=%s", engine);
	ret = kt_load_hmmgpu(params);
	if (ret)
		HMMT_FAIL("loading hmmgpu with \"%s\": %s", params,
			  strerror(-ret));
	ASSERT_EQ(kt_count_devices(), ndev);
}

/* Unloads both modules and brings hmmgpu back as it was. */
static void restore_all(void)
{
	ASSERT_EQ(kt_unload_hmmgpu(), 0);
	if (testdma_loaded())
		ASSERT_EQ(testdma_unload(), 0);
	kt_restore_hmmgpu();
	ASSERT_FALSE(testdma_loaded());
}

/* A 4 MiB buffer of small pages filled with the pattern. */
static void *pattern_buffer(void)
{
	void *p = kt_map(BUF_SIZE);

	/* small pages: these tests are about copies, not THP splitting */
	ASSERT_EQ(madvise(p, BUF_SIZE, MADV_NOHUGEPAGE), 0);
	kt_fill(p, BUF_SIZE, SEED);
	return p;
}

static sigjmp_buf bus_jmp;
static void *volatile bus_addr;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	bus_addr = si->si_addr;
	siglongjmp(bus_jmp, 1);
}

/*
 * Reads the buffer back with the CPU (faulting device pages back) and
 * checks it.  A SIGBUS fails the test with the page it hit instead of
 * killing the process, so that the modules are still restored at exit.
 */
static ssize_t read_back(const void *p)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus,
				.sa_flags = SA_SIGINFO };
	struct sigaction old;
	ssize_t bad;

	ASSERT_EQ(sigaction(SIGBUS, &sa, &old), 0);
	if (sigsetjmp(bus_jmp, 1)) {
		sigaction(SIGBUS, &old, NULL);
		HMMT_FAIL("SIGBUS reading page %zu of the buffer back",
			  (size_t)((const char *)bus_addr - (const char *)p) /
				  kt_page_size());
	}
	bad = kt_check(p, BUF_SIZE, SEED);
	ASSERT_EQ(sigaction(SIGBUS, &old, NULL), 0);
	return bad;
}

TEST(auto_picks_dmaengine_when_a_channel_exists)
{
	unsigned int ndev = kt_module_param("num_devices");
	struct drm_hmmgpu_get_info info;

	load_with_testdma("auto", 0);
	for (unsigned int i = 0; i < ndev; i++) {
		int fd = kt_open_device(i);

		kt_get_info(fd, &info);
		ASSERT_EQ(info.copy_engine, HMMGPU_COPY_ENGINE_DMAENGINE);
		ASSERT_EQ(info.copy_channels, 1);
		close(fd);
	}
	/* hmmgpu holds the channels, so the provider stays */
	ASSERT_ERRNO(syscall(SYS_delete_module, TESTDMA_NAME, O_NONBLOCK),
		     EWOULDBLOCK);
	restore_all();
}

TEST(software_is_used_when_asked_even_with_a_channel)
{
	unsigned int channels = kt_module_param_or("copy_channels", 4);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	struct drm_hmmgpu_get_info info;
	int fd;

	/* 0: one channel per online CPU, at most 4 */
	if (!channels)
		channels = cpus < 4 ? cpus : 4;
	load_with_testdma("software", 0);
	fd = kt_open_device(0);
	kt_get_info(fd, &info);
	ASSERT_EQ(info.copy_engine, HMMGPU_COPY_ENGINE_SOFTWARE);
	ASSERT_EQ(info.copy_channels, channels);
	close(fd);
	/* no channel taken: the provider can go while hmmgpu stays */
	ASSERT_EQ(testdma_unload(), 0);
	restore_all();
}

TEST(dmaengine_migrates_both_ways_exactly)
{
	size_t npages = BUF_SIZE / kt_page_size();
	struct drm_hmmgpu_get_info info;
	struct drm_hmmgpu_stats st;
	long long copies;
	void *p;
	int fd;

	load_with_testdma("dmaengine", 0);
	fd = kt_open_device(0);
	kt_get_info(fd, &info);
	ASSERT_EQ(info.copy_engine, HMMGPU_COPY_ENGINE_DMAENGINE);
	ASSERT_EQ(info.copy_channels, 1);

	p = pattern_buffer();
	KT_EXPECT_MIGRATE(fd, p, BUF_SIZE, HMMGPU_MIGRATE_TO_DEVICE, npages,
			  0, 0);
	KT_EXPECT_WHERE(fd, p, npages, HMMGPU_RESIDENCY_THIS_DEVICE);
	copies = testdma_param("copies");
	ASSERT_GE(copies, npages);

	KT_EXPECT_MIGRATE(fd, p, BUF_SIZE, HMMGPU_MIGRATE_TO_SYSTEM, npages,
			  0, 0);
	KT_EXPECT_WHERE(fd, p, npages, HMMGPU_RESIDENCY_SYSTEM);
	ASSERT_EQ(read_back(p), -1);
	ASSERT_GE(testdma_param("copies"), copies + npages);
	ASSERT_EQ(testdma_param("failed"), 0);

	kt_get_stats(fd, HMMGPU_STATS_DEVICE, &st);
	ASSERT_EQ(st.copy_errors, 0);
	ASSERT_GT(st.copy_busy_ns, 0);

	kt_unmap(p, BUF_SIZE);
	close(fd);
	restore_all();
}

TEST(dmaengine_copy_failures_leave_pages_in_system)
{
	size_t npages = BUF_SIZE / kt_page_size();
	struct drm_hmmgpu_migrate m;
	struct drm_hmmgpu_stats st;
	uint64_t count[4];
	uint8_t *loc;
	void *p;
	int fd;

	load_with_testdma("dmaengine", FAIL_EVERY);
	fd = kt_open_device(0);
	p = pattern_buffer();

	ASSERT_EQ(kt_migrate(fd, p, BUF_SIZE, HMMGPU_MIGRATE_TO_DEVICE, &m),
		  0);
	TH_LOG("to device with fail_every=%d: moved %llu, skipped %llu",
	       FAIL_EVERY, (unsigned long long)m.moved,
	       (unsigned long long)m.skipped);
	ASSERT_EQ(m.already, 0);
	ASSERT_EQ(m.moved + m.skipped, npages);
	ASSERT_GT(m.skipped, 0);
	ASSERT_GT(m.moved, 0);
	ASSERT_GT(testdma_param("failed"), 0);

	/* a page whose copy failed stayed in system memory */
	loc = malloc(npages);
	ASSERT_TRUE(loc != NULL);
	ASSERT_EQ(kt_residency(fd, p, npages, loc, count), 0);
	ASSERT_EQ(count[HMMGPU_RESIDENCY_THIS_DEVICE], m.moved);
	ASSERT_EQ(count[HMMGPU_RESIDENCY_SYSTEM], m.skipped);
	free(loc);

	kt_get_stats(fd, HMMGPU_STATS_DEVICE, &st);
	ASSERT_EQ(st.copy_errors, m.skipped);

	/* read back by the CPU, through copies that do not fail */
	testdma_set_fail_every(0);
	ASSERT_EQ(read_back(p), -1);
	KT_EXPECT_WHERE(fd, p, npages, HMMGPU_RESIDENCY_SYSTEM);

	kt_unmap(p, BUF_SIZE);
	close(fd);
	restore_all();
}

TEST(dmaengine_copy_failures_to_system_leave_pages_on_device)
{
	size_t npages = BUF_SIZE / kt_page_size();
	struct drm_hmmgpu_migrate m;
	void *p;
	int fd;

	load_with_testdma("dmaengine", 0);
	fd = kt_open_device(0);
	p = pattern_buffer();
	KT_EXPECT_MIGRATE(fd, p, BUF_SIZE, HMMGPU_MIGRATE_TO_DEVICE, npages,
			  0, 0);

	testdma_set_fail_every(FAIL_EVERY);
	ASSERT_EQ(kt_migrate(fd, p, BUF_SIZE, HMMGPU_MIGRATE_TO_SYSTEM, &m),
		  0);
	TH_LOG("to system with fail_every=%d: moved %llu, skipped %llu",
	       FAIL_EVERY, (unsigned long long)m.moved,
	       (unsigned long long)m.skipped);
	ASSERT_EQ(m.already, 0);
	ASSERT_EQ(m.moved + m.skipped, npages);
	ASSERT_GT(m.skipped, 0);
	ASSERT_EQ(kt_residency_count(fd, p, npages,
				     HMMGPU_RESIDENCY_THIS_DEVICE),
		  m.skipped);

	/* the pages left behind come back once copies work again */
	testdma_set_fail_every(0);
	KT_EXPECT_MIGRATE(fd, p, BUF_SIZE, HMMGPU_MIGRATE_TO_SYSTEM, m.skipped,
			  m.moved, 0);
	KT_EXPECT_WHERE(fd, p, npages, HMMGPU_RESIDENCY_SYSTEM);
	ASSERT_EQ(read_back(p), -1);

	kt_unmap(p, BUF_SIZE);
	close(fd);
	restore_all();
}

TEST(dmaengine_copy_failures_in_cpu_faults_keep_data)
{
	size_t npages = BUF_SIZE / kt_page_size();
	long long failed;
	void *p;
	int fd;

	load_with_testdma("dmaengine", 0);
	fd = kt_open_device(0);
	p = pattern_buffer();
	KT_EXPECT_MIGRATE(fd, p, BUF_SIZE, HMMGPU_MIGRATE_TO_DEVICE, npages,
			  0, 0);

	/*
	 * CPU faults bring the pages back through an engine that fails one
	 * copy in seven: a failed copy leaves its page on the device, and
	 * the access faults again until the page is back.
	 */
	testdma_set_fail_every(FAIL_EVERY);
	failed = testdma_param("failed");
	ASSERT_EQ(read_back(p), -1);
	TH_LOG("CPU faults met %lld copy failures",
	       testdma_param("failed") - failed);
	ASSERT_GT(testdma_param("failed"), failed);
	testdma_set_fail_every(0);
	KT_EXPECT_WHERE(fd, p, npages, HMMGPU_RESIDENCY_SYSTEM);

	kt_unmap(p, BUF_SIZE);
	close(fd);
	restore_all();
}

TEST(dmaengine_without_a_channel_fails_to_load)
{
	char params[128];

	unload_all(params, sizeof(params));
	strncat(params, " copy_engine=dmaengine",
		sizeof(params) - strlen(params) - 1);
	ASSERT_EQ(kt_load_hmmgpu(params), -ENODEV);
	ASSERT_EQ(access("/sys/module/hmmgpu", F_OK), -1);
	ASSERT_EQ(kt_count_devices(), 0);
	kt_restore_hmmgpu();
}

TEST(bad_copy_engine_parameters_are_rejected)
{
	static const char *const bad[] = {
		"copy_engine=foo",
		"copy_engine=",
		"copy_channels=17",
	};
	char params[128], p[192];

	unload_all(params, sizeof(params));
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(p, sizeof(p), "%s %s", params, bad[i]);
		TH_LOG("%s", bad[i]);
		ASSERT_EQ(kt_load_hmmgpu(p), -EINVAL);
		ASSERT_EQ(access("/sys/module/hmmgpu", F_OK), -1);
	}
	kt_restore_hmmgpu();
}

#define HMMGPU_PARAMS "/sys/module/hmmgpu/parameters/"

/* Sets writable parameter @name of the test module to @val. */
static void testdma_set(const char *name, const char *val)
{
	char path[128];

	snprintf(path, sizeof(path), TESTDMA_PARAMS "%s", name);
	ASSERT_EQ(kt_sysfs_write(path, val), 0);
}

/*
 * Device removal must bring every page home even when the DMA engine
 * fails every copy: the CPU copies what the engine did not (the data on
 * the device is intact). Removal used to retry such pages forever.
 */
TEST_TIMEOUT(removal_with_failing_copies_keeps_data, 300)
{
	size_t npages = BUF_SIZE / kt_page_size();
	long long failed;
	void *p;
	int fd;

	load_with_testdma("dmaengine", 0);
	fd = kt_open_device(0);
	p = pattern_buffer();
	KT_EXPECT_MIGRATE(fd, p, BUF_SIZE, HMMGPU_MIGRATE_TO_DEVICE, npages,
			  0, 0);
	close(fd);

	testdma_set_fail_every(1);
	failed = testdma_param("failed");
	ASSERT_EQ(kt_unbind_device(0), 0);
	TH_LOG("removal: %lld copies failed on purpose",
	       testdma_param("failed") - failed);
	ASSERT_GE(testdma_param("failed") - failed, (long long)npages);
	/* every page is in system memory again, with its data */
	ASSERT_EQ(read_back(p), -1);
	testdma_set_fail_every(0);
	ASSERT_EQ(kt_bind_device(0), 0);
	kt_unmap(p, BUF_SIZE);
	restore_all();
}

/*
 * A DMA engine that stops completing copies (hardware that hung) does not
 * hang the process that waits for them: after copy_timeout_ms the batch
 * is cancelled and its copies count as failed, so a migration to the
 * device leaves the pages in system memory with their data, and the
 * engine works again once the stall ends.
 */
TEST_TIMEOUT(stalled_engine_is_cancelled_and_pages_stay_in_system, 300)
{
	size_t npages = BUF_SIZE / kt_page_size();
	struct drm_hmmgpu_migrate m;
	struct drm_hmmgpu_stats st;
	void *p;
	int fd;

	load_with_testdma("dmaengine", 0);
	ASSERT_EQ(kt_sysfs_write(HMMGPU_PARAMS "copy_timeout_ms", "200"), 0);
	fd = kt_open_device(0);
	p = pattern_buffer();

	testdma_set("stall", "1");
	ASSERT_EQ(kt_migrate(fd, p, BUF_SIZE, HMMGPU_MIGRATE_TO_DEVICE, &m),
		  0);
	TH_LOG("to device, stalled: moved %llu, skipped %llu",
	       (unsigned long long)m.moved, (unsigned long long)m.skipped);
	ASSERT_EQ(m.moved, 0);
	ASSERT_EQ(m.skipped, npages);
	KT_EXPECT_WHERE(fd, p, npages, HMMGPU_RESIDENCY_SYSTEM);
	kt_get_stats(fd, HMMGPU_STATS_DEVICE, &st);
	ASSERT_EQ(st.copy_errors, npages);
	KT_EXPECT_DATA(p, BUF_SIZE, SEED);

	/* the engine copies again once it works */
	testdma_set("stall", "0");
	KT_EXPECT_MIGRATE(fd, p, BUF_SIZE, HMMGPU_MIGRATE_TO_DEVICE, npages,
			  0, 0);
	ASSERT_EQ(read_back(p), -1);
	kt_unmap(p, BUF_SIZE);
	close(fd);
	ASSERT_EQ(kt_sysfs_write(HMMGPU_PARAMS "copy_timeout_ms", "10000"), 0);
	restore_all();
}

/*
 * Removal with a hung engine: every batch is cancelled after
 * copy_timeout_ms and the CPU copies the pages home.
 */
TEST_TIMEOUT(removal_with_stalled_engine_keeps_data, 300)
{
	size_t npages = BUF_SIZE / kt_page_size();
	void *p;
	int fd;

	load_with_testdma("dmaengine", 0);
	ASSERT_EQ(kt_sysfs_write(HMMGPU_PARAMS "copy_timeout_ms", "200"), 0);
	fd = kt_open_device(0);
	p = pattern_buffer();
	KT_EXPECT_MIGRATE(fd, p, BUF_SIZE, HMMGPU_MIGRATE_TO_DEVICE, npages,
			  0, 0);
	close(fd);

	testdma_set("stall", "1");
	ASSERT_EQ(kt_unbind_device(0), 0);
	ASSERT_EQ(read_back(p), -1);
	testdma_set("stall", "0");
	ASSERT_EQ(kt_bind_device(0), 0);
	kt_unmap(p, BUF_SIZE);
	ASSERT_EQ(kt_sysfs_write(HMMGPU_PARAMS "copy_timeout_ms", "10000"), 0);
	restore_all();
}

TEST_MAIN()
