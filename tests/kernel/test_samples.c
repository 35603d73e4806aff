// SPDX-License-Identifier: MIT
/*
 * test_samples.c - the samples of samples/, run in the VM on a real
 * hmmgpu device.
 *
 * Each sample checks its own result element by element and exits 1 on a
 * mismatch, so exit status 0 already says that the data is right.  The
 * tests add what the sample cannot judge by itself: that its last line is
 * the summary (sample_common.h), and that the summary's counters are the
 * ones the sample's access pattern must produce on this device (exact
 * MiB where the pattern fixes them, from the module's fault_kib and
 * view_fault_kib).  --inject-error shows that each check can fail.
 */
#define _GNU_SOURCE
#include "kt_common.h"

#include <limits.h>
#include <unistd.h>

/*
 * The expected counts assume 4 KiB device pages (a CPU fault brings back
 * fault_kib); 2 MiB device pages are test_thp's.
 */
KT_WITHOUT_DEVICE_THP()

/* The summary line of a sample (format: samples/sample_common.h). */
struct summary {
	unsigned long long cpu_faults, device_faults, evictions;
	double to_dev, to_dev_prefetch, to_dev_fault, to_dev_density,
		to_dev_peer;
	double to_host, to_host_prefetch, to_host_cpu_fault,
		to_host_eviction;
};

/*
 * Runs samples/@name with @args (NULL-terminated); @r receives what it
 * did.
 */
static void run_sample(const char *name, const char *const *args,
		       struct kt_output *r)
{
	char rel[64], path[PATH_MAX];
	char *argv[16];
	int argc = 0;

	snprintf(rel, sizeof(rel), "samples/%s", name);
	kt_build_path(rel, path, sizeof(path));
	argv[argc++] = path;
	for (; args && *args; args++) {
		ASSERT_LT(argc, 15);
		argv[argc++] = (char *)*args;
	}
	argv[argc] = NULL;
	kt_run(argv, r);
}

/* The last line of @out, which must be the summary; fails the test if not. */
static void parse_summary(const char *out, struct summary *s)
{
	const char *last = out, *p;
	size_t len = strlen(out);

	/* The start of the last non-empty line. */
	while (len > 0 && out[len - 1] == '\n')
		len--;
	for (p = out; p < out + len; p++)
		if (*p == '\n')
			last = p + 1;
	if (sscanf(last,
		   "summary: cpu_faults=%llu device_faults=%llu to_device=%lf MiB (prefetch %lf, fault %lf, density %lf, peer %lf) to_host=%lf MiB (prefetch %lf, cpu_fault %lf, eviction %lf) evictions=%llu",
		   &s->cpu_faults, &s->device_faults, &s->to_dev,
		   &s->to_dev_prefetch, &s->to_dev_fault, &s->to_dev_density,
		   &s->to_dev_peer, &s->to_host, &s->to_host_prefetch,
		   &s->to_host_cpu_fault, &s->to_host_eviction,
		   &s->evictions) != 12)
		HMMT_FAIL("the last line is not the summary: '%.*s'",
			  (int)(out + len - last), last);
}

/* MiB values are printed with two decimals: compare them in 1/100 MiB. */
#define CENTI(x) ((long long)((x) * 100.0 + 0.5))
#define ASSERT_MIB(x, mib) ASSERT_EQ(CENTI(x), CENTI(mib))

/* Runs a sample that must succeed, and returns its summary. */
static void run_ok(const char *name, const char *const *args,
		   struct summary *s)
{
	struct kt_output r;

	run_sample(name, args, &r);
	ASSERT_EQ(r.status, 0);
	if (strstr(r.out, "on the host"))
		HMMT_FAIL("%s ran on the host, not on hmmgpu device 0", name);
	parse_summary(r.out, s);
	kt_output_free(&r);
}

/* CPU faults that bring back @mib MiB, at fault_kib per fault. */
static unsigned long long cpu_faults_for(unsigned long mib)
{
	return (mib << 10) / kt_module_param("fault_kib");
}

/*
 * vecadd with a prefetch first: a, b and c (4 MiB each) go over by
 * prefetch, which also fills the device view, so the kernel takes no
 * device fault; the CPU's check reads c back, fault_kib at a time.
 */
TEST_TIMEOUT(vecadd_with_prefetch_takes_no_device_fault, 300)
{
	static const char *const args[] = { "--size", "4", "--mode",
					    "prefetch", NULL };
	struct summary s;

	run_ok("vecadd", args, &s);
	ASSERT_MIB(s.to_dev_prefetch, 12);
	ASSERT_MIB(s.to_dev, 12);
	ASSERT_EQ(s.device_faults, 0);
	ASSERT_MIB(s.to_host_cpu_fault, 4);
	ASSERT_MIB(s.to_host, 4);
	ASSERT_EQ(s.cpu_faults, cpu_faults_for(4));
	ASSERT_EQ(s.evictions, 0);
}

/*
 * vecadd without a prefetch: the same 12 MiB go over, all of it by device
 * faults (and the density prefetch they trigger), each fault moving at
 * least one view_fault_kib block.
 */
TEST_TIMEOUT(vecadd_without_prefetch_moves_everything_by_faults, 300)
{
	static const char *const args[] = { "--size", "4", "--mode", "fault",
					    NULL };
	unsigned long long max_faults =
		(12ull << 10) / kt_module_param("view_fault_kib");
	struct summary s;

	run_ok("vecadd", args, &s);
	ASSERT_MIB(s.to_dev_prefetch, 0);
	ASSERT_MIB(s.to_dev_fault + s.to_dev_density, 12);
	ASSERT_MIB(s.to_dev, 12);
	ASSERT_GT(s.device_faults, 0);
	ASSERT_LE(s.device_faults, max_faults);
	ASSERT_MIB(s.to_host_cpu_fault, 4);
	ASSERT_EQ(s.cpu_faults, cpu_faults_for(4));
}

/* saxpy both ways: x and y (4 MiB each) once by prefetch, once by faults;
 * y comes back to the CPU after each. */
TEST_TIMEOUT(saxpy_both_ways_add_up, 300)
{
	static const char *const args[] = { "--size", "4", NULL };
	struct summary s;

	run_ok("saxpy", args, &s);
	ASSERT_MIB(s.to_dev_prefetch, 8);
	ASSERT_MIB(s.to_dev_fault + s.to_dev_density, 8);
	ASSERT_MIB(s.to_dev, 16);
	ASSERT_GT(s.device_faults, 0);
	ASSERT_MIB(s.to_host_cpu_fault, 8);
	ASSERT_EQ(s.cpu_faults, cpu_faults_for(8));
}

/*
 * The stencil's grids (1 MiB each at 512 x 512) are prefetched once; the
 * iterations then move nothing and take no fault; the CPU reads one grid
 * back (at most both, when a fault block reaches into the other).
 */
TEST_TIMEOUT(stencil_iterates_on_the_device_without_moving, 300)
{
	static const char *const args[] = { "--size", "512", "--iterations",
					    "20", NULL };
	struct summary s;

	run_ok("stencil", args, &s);
	ASSERT_MIB(s.to_dev_prefetch, 2);
	ASSERT_MIB(s.to_dev, 2);
	ASSERT_EQ(s.device_faults, 0);
	ASSERT_GE(CENTI(s.to_host_cpu_fault), CENTI(1));
	ASSERT_LE(CENTI(s.to_host_cpu_fault), CENTI(2));
	ASSERT_GE(s.cpu_faults, cpu_faults_for(1));
	ASSERT_MIB(s.to_host_eviction, 0);
}

/*
 * gather on a 16 MiB device: a 32 MiB table, random lookups.  More than
 * the device holds goes over, so the driver evicts; the sample checks
 * every lookup and the whole table afterwards.
 */
TEST_TIMEOUT(gather_oversubscribes_and_evicts, 600)
{
	static const char *const args[] = { "--lookups", "3000", NULL };
	struct summary s;

	kt_reload_hmmgpu("mem_mib=16");
	run_ok("gather", args, &s);
	ASSERT_GT(s.device_faults, 0);
	ASSERT_GT(CENTI(s.to_dev), CENTI(16));
	ASSERT_GT(s.evictions, 0);
	ASSERT_GT(CENTI(s.to_host_eviction), 0);
	ASSERT_LE(CENTI(s.to_host), CENTI(s.to_dev));
	kt_restore_hmmgpu();
}

/*
 * gather --remote on the same device: the table is read where it is, so
 * none of it moves and nothing is evicted; only the indices and results
 * (12 KiB each, within a fault block) migrate, and the results come
 * back for the check.
 */
TEST_TIMEOUT(gather_remote_moves_nothing, 600)
{
	static const char *const args[] = { "--lookups", "3000", "--remote",
					    NULL };
	struct summary s;

	kt_reload_hmmgpu("mem_mib=16");
	run_ok("gather", args, &s);
	ASSERT_GT(s.device_faults, 0);
	ASSERT_LE(CENTI(s.to_dev), CENTI(0.25));
	ASSERT_EQ(s.evictions, 0);
	ASSERT_MIB(s.to_host_eviction, 0);
	kt_restore_hmmgpu();
}

/* Every sample's check catches a wrong element: exit 1, MISMATCH named. */
TEST_TIMEOUT(every_sample_catches_a_wrong_result, 600)
{
	static const struct {
		const char *name;
		const char *args[6];
	} runs[] = {
		{ "vecadd", { "--size", "1", "--inject-error" } },
		{ "saxpy", { "--size", "1", "--inject-error" } },
		{ "stencil", { "--size", "64", "--iterations", "4",
			       "--inject-error" } },
		{ "gather", { "--lookups", "500", "--max-mib", "4",
			      "--inject-error" } },
	};

	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		char want[64];
		struct kt_output r;

		snprintf(want, sizeof(want), "%s: MISMATCH: ", runs[i].name);
		run_sample(runs[i].name, runs[i].args, &r);
		ASSERT_EQ(r.status, 1);
		ASSERT_TRUE(strstr(r.err, want) != NULL);
		kt_output_free(&r);
	}
}

/* A bad option is a usage error: exit 2 and one line naming it. */
TEST(bad_options_exit_2_with_one_line)
{
	static const char *const bad[][3] = {
		{ "--size", "0", NULL },
		{ "--mode", "sideways", NULL },
		{ "--no-such-option", NULL },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct kt_output r;

		run_sample("vecadd", bad[i], &r);
		ASSERT_EQ(r.status, 2);
		ASSERT_TRUE(strstr(r.err, bad[i][0] + 2) != NULL);
		ASSERT_EQ(strchr(r.err, '\n') - r.err + 1, (long)strlen(r.err));
		kt_output_free(&r);
	}
}

TEST_MAIN()
