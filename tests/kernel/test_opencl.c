// SPDX-License-Identifier: MIT
/*
 * test_opencl.c - the OpenCL sample (samples/opencl/opencl_vecadd) end to
 * end: a real .cl kernel built and run by PoCL through the OpenCL ICD
 * loader on buffers that wrap hmmgpu device-view memory.
 *
 * In the test VM the sample runs through hmmvm-host (tools/vm/host-run,
 * named by $HMMVM_HOST_RUN): chrooted into the host's root filesystem,
 * shared read-only over virtio-9p, because PoCL needs LLVM, clang's
 * libraries, ld and its kernel library from the host's Debian.  On a host
 * whose own kernel runs hmmgpu it runs directly.  A test is skipped only
 * when OpenCL cannot run at all (no sample built, no host root shared, no
 * OpenCL platform), never when the sample fails.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define SAMPLE_REL "samples/opencl/opencl_vecadd"

/* PoCL compiles the kernel with LLVM, which is slow under TCG. */
#define OCL_TIMEOUT 600

/* The sample, next to this program in the build tree: "" when not built. */
static void sample_path(char *path, size_t len)
{
	char self[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	ASSERT_GT(n, 0);
	self[n] = '\0';
	/* BUILD/tests/kernel/test_opencl -> BUILD */
	for (int i = 0; i < 3; i++) {
		slash = strrchr(self, '/');
		ASSERT_TRUE(slash != NULL);
		*slash = '\0';
	}
	if (snprintf(path, len, "%s/%s", self, SAMPLE_REL) >= (int)len ||
	    access(path, X_OK))
		path[0] = '\0';
}

struct result {
	int status;      /* exit status, 128 + signal when killed */
	char out[65536]; /* stdout and stderr, interleaved */
};

/*
 * Runs the sample with @args (NULL-terminated, after the program name),
 * @input on its standard input (NULL: none) and @env_set ("NAME=value",
 * may be NULL) added to its environment.
 */
static void run_sample(struct result *r, const char *const *args,
		       const char *input, const char *env_set)
{
	const char *host_run = getenv("HMMVM_HOST_RUN");
	char path[PATH_MAX];
	const char *argv[16];
	int out[2], in[2], argc = 0, status;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	sample_path(path, sizeof(path));
	if (!path[0])
		SKIP("%s was not built (meson found no OpenCL ICD loader: apt-get install ocl-icd-opencl-dev)",
		     SAMPLE_REL);
	if (host_run && *host_run)
		argv[argc++] = host_run;
	argv[argc++] = path;
	for (; args && *args; args++)
		argv[argc++] = *args;
	argv[argc] = NULL;

	ASSERT_EQ(pipe(out), 0);
	ASSERT_EQ(pipe(in), 0);
	fflush(stdout);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(out[1], 2);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		if (env_set)
			putenv((char *)env_set);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	if (input) {
		size_t left = strlen(input);

		signal(SIGPIPE, SIG_IGN);
		while (left > 0) {
			n = write(in[1], input, left);
			if (n <= 0)
				break;
			input += n;
			left -= (size_t)n;
		}
	}
	close(in[1]);
	while (len < sizeof(r->out) - 1 &&
	       (n = read(out[0], r->out + len, sizeof(r->out) - 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		len += (size_t)n;
	}
	r->out[len] = '\0';
	close(out[0]);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) :
					128 + WTERMSIG(status);

	/* Show what it printed, as TAP comments. */
	for (char *line = r->out, *end; *line; line = end) {
		end = strchr(line, '\n');
		if (end)
			*end = '\0';
		TH_LOG("| %s", line);
		if (!end)
			break;
		*end++ = '\n';
	}
	TH_LOG("%s exited with status %d", SAMPLE_REL, r->status);
}

/*
 * Skips the test when OpenCL cannot run here: hmmvm-host found no host
 * root, or (unless @sample_may_skip) the sample found no device or no
 * OpenCL platform.
 */
static void skip_if_no_opencl(const struct result *r, bool sample_may_skip)
{
	if (r->status != HMMT_SKIP_STATUS)
		return;
	if (!strncmp(r->out, "hmmvm-host: ", 12) || !sample_may_skip)
		SKIP("OpenCL cannot run here: %.*s",
		     (int)strcspn(r->out, "\n"), r->out);
}

/* The line of @out that starts with @prefix, or fails the test. */
static const char *line_of(const char *out, const char *prefix)
{
	size_t plen = strlen(prefix);

	for (const char *p = out; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (!strncmp(p, prefix, plen))
			return p;
	HMMT_FAIL("the sample printed no line starting with '%s'", prefix);
	return NULL;
}

/* The number after "@key=" in @line (up to its end), or fails the test. */
static double value_of(const char *line, const char *key)
{
	size_t klen = strlen(key);
	const char *end = strchr(line, '\n');

	for (const char *p = line; *p && (!end || p < end); p++) {
		if ((p == line || p[-1] == ' ') && !strncmp(p, key, klen) &&
		    p[klen] == '=')
			return strtod(p + klen + 1, NULL);
	}
	HMMT_FAIL("no %s= in: %.*s", key,
		  (int)(end ? end - line : (long)strlen(line)), line);
	return 0;
}

/*
 * The sample's own claims, checked from its output: right after clFinish
 * every page of a, b and c is on the device; during the kernel nothing
 * went back to the host and the CPU took no fault; exactly c's 8 MiB came
 * over, by device faults of the kernel's stores through the view (a and b
 * were prefetched, and prefetching maps them in the view: no fault, no
 * copy); every result is exact; and the CPU's check faulted c back.
 */
TEST_TIMEOUT(vecadd_runs_on_device_resident_data, OCL_TIMEOUT)
{
	static const char *const args[] = { "-s", "8", NULL };
	struct result *r = malloc(sizeof(*r));
	const char *res, *sum;
	long resident, total;

	ASSERT_TRUE(r != NULL);
	run_sample(r, args, NULL, NULL);
	skip_if_no_opencl(r, false);
	ASSERT_EQ(r->status, 0);

	res = line_of(r->out, "residency: ");
	ASSERT_EQ(sscanf(res, "residency: after clFinish %ld/%ld pages",
			 &resident, &total), 2);
	/* 3 buffers of 8 MiB, in pages of at most 64 KiB */
	ASSERT_GE(total, 3 * (8 << 20) / (64 << 10));
	ASSERT_EQ(resident, total);
	ASSERT_GT(value_of(res, "device_faults"), 0);
	ASSERT_EQ(value_of(res, "cpu_faults"), 0);
	ASSERT_EQ(value_of(res, "to_device"), 8 << 20);
	ASSERT_EQ(value_of(res, "to_host"), 0);

	ASSERT_TRUE(strstr(line_of(r->out, "verify: "), "results exact") != NULL);

	sum = line_of(r->out, "summary: ");
	ASSERT_GT(value_of(sum, "cpu_faults"), 0);
	ASSERT_GT(value_of(sum, "device_faults"), 0);
	ASSERT_GE(value_of(sum, "to_device"), 24); /* MiB: a, b, then c */
	ASSERT_GE(value_of(sum, "to_host"), 8);    /* MiB: c */
	ASSERT_EQ(value_of(sum, "evictions"), 0);
	free(r);
}

/*
 * A kernel that computes the wrong thing (from standard input, -k -) makes
 * the sample fail: its check is real.
 */
TEST_TIMEOUT(vecadd_fails_on_wrong_results, OCL_TIMEOUT)
{
	static const char *const args[] = { "-s", "1", "-k", "-", NULL };
	static const char wrong[] =
		"__kernel void vecadd(__global const float *a,\n"
		"		     __global const float *b,\n"
		"		     __global float *c, const uint n)\n"
		"{\n"
		"	size_t i = get_global_id(0);\n"
		"\n"
		"	if (i < n)\n"
		"		c[i] = i == 4242 ? 0.5f : a[i] + b[i];\n"
		"}\n";
	struct result *r = malloc(sizeof(*r));

	ASSERT_TRUE(r != NULL);
	run_sample(r, args, wrong, NULL);
	skip_if_no_opencl(r, false);
	ASSERT_EQ(r->status, 1);
	ASSERT_TRUE(strstr(r->out, "c[4242] = 0.5, expected") != NULL);
	ASSERT_TRUE(strstr(r->out, "1 of 262144 results wrong") != NULL);
	free(r);
}

/* No OpenCL platform: one clear line and the skip status, 77. */
TEST(vecadd_skips_without_opencl_platform)
{
	struct result *r = malloc(sizeof(*r));

	ASSERT_TRUE(r != NULL);
	/* ocl-icd reads the ICDs of this (missing) directory only */
	run_sample(r, NULL, NULL, "OCL_ICD_VENDORS=/nonexistent-icd-dir");
	skip_if_no_opencl(r, true);
	if (strstr(r->out, "no hmmgpu device"))
		SKIP("no hmmgpu device");
	ASSERT_EQ(r->status, HMMT_SKIP_STATUS);
	ASSERT_TRUE(strstr(r->out, "no OpenCL platform") != NULL);
	free(r);
}

TEST_MAIN()
