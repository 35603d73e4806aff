// SPDX-License-Identifier: MIT
/*
 * test_rt_marker.c - libhmm's API markers and hmm_set_name(), without a
 * device: HMM_TRACE_MARKER naming a plain file instead of a tracefs
 * trace_marker, the program (this test, run again as `--child`) makes
 * calls on the host fallback, and the lines it leaves must say what it
 * did; hmmprof's parser and symbol lookup must read them back, naming the
 * static kernel function from the program's own symbol table.
 */
#define _GNU_SOURCE
#include "harness.h"

#include "hmmprof.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hmm/hmm.h>

#define SIZE 8192
#define REG_SIZE 12345

struct fill_args {
	uint8_t *p;
};

static void marker_test_kernel(struct hmm_dim3 idx, struct hmm_dim3 grid,
			       void *arg)
{
	struct fill_args *a = arg;

	(void)grid;
	a->p[idx.x] = 7;
}

/* The calls whose markers the test checks. */
static int child_main(void)
{
	struct hmm_dim3 grid = { 2, 1, 1 };
	struct fill_args a;
	struct hmm_stream *s;
	uint8_t *p = hmm_malloc(SIZE), *q = hmm_malloc(SIZE), *r;

	if (!p || !q)
		return 10;
	if (hmm_set_name(p, "my buffer") || hmm_memset(p, 1, SIZE) ||
	    hmm_memcpy(q, p, SIZE) || hmm_prefetch(p, SIZE, HMM_CPU))
		return 11;
	a.p = p;
	if (hmm_stream_create(&s, HMM_CPU) ||
	    hmm_launch(s, marker_test_kernel, grid, &a) ||
	    hmm_stream_synchronize(s) || hmm_stream_destroy(s))
		return 12;
	if (p[0] != 7 || p[1] != 7 || p[2] != 1 || q[5] != 1)
		return 13;
	if (hmm_free(p) || hmm_free(q))
		return 14;
	/* registered memory is an allocation too; a failed call marks nothing */
	r = malloc(REG_SIZE);
	if (!r || hmm_register(r, REG_SIZE) || hmm_unregister(r) ||
	    hmm_unregister(r) != -EINVAL)
		return 15;
	free(r);
	return 0;
}

static char *slurp(const char *path)
{
	static char buf[1 << 16];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	ASSERT_GE(fd, 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	ASSERT_GE(n, 0);
	buf[n] = '\0';
	return buf;
}

/* Runs the child with HMM_TRACE_MARKER=@marker (NULL: unset). */
static void run_child(const char *marker)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int status;
	pid_t pid;

	ASSERT_GT(n, 0);
	self[n] = '\0';
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		if (marker)
			setenv("HMM_TRACE_MARKER", marker, 1);
		else
			unsetenv("HMM_TRACE_MARKER");
		execl(self, self, "--child", (char *)NULL);
		_exit(99);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
}

/* The line of @text that starts with @prefix, parsed as hmmprof would. */
static bool find_marker(const char *text, const char *prefix, int nth,
			struct hp_marker *m)
{
	char line[2048];

	for (const char *s = text; (s = strstr(s, prefix)); s++) {
		size_t len = strcspn(s, "\n");

		if (s != text && s[-1] != '\n')
			continue;
		if (nth--)
			continue;
		snprintf(line, sizeof(line), "%.*s", (int)len, s);
		return hp_marker_parse(line, m);
	}
	return false;
}

TEST(markers_say_what_the_program_did)
{
	char path[] = "/tmp/hmm-marker-test-XXXXXX";
	struct hp_marker alloc, m;
	struct hp_profile prof;
	uint64_t reg;
	const char *text;
	int fd = mkstemp(path);

	ASSERT_GE(fd, 0);
	close(fd);
	run_child(path);
	text = slurp(path);
	unlink(path);
	TH_LOG("markers:\n%s", text);

	ASSERT_TRUE(find_marker(text, "hmm: alloc ", 0, &alloc));
	ASSERT_EQ(alloc.size, SIZE);
	ASSERT_NE(alloc.ptr, 0);
	ASSERT_NE(alloc.code[1].addr, 0); /* the caller */
	ASSERT_TRUE(find_marker(text, "hmm: alloc ", 1, &m));
	ASSERT_NE(m.ptr, alloc.ptr);

	ASSERT_TRUE(find_marker(text, "hmm: name ", 0, &m));
	ASSERT_EQ(m.ptr, alloc.ptr);
	ASSERT_STREQ(m.name, "my buffer");

	ASSERT_TRUE(find_marker(text, "hmm: memset ", 0, &m));
	ASSERT_EQ(m.ptr, alloc.ptr);
	ASSERT_EQ(m.size, SIZE);
	ASSERT_EQ(m.stream, 0);
	ASSERT_TRUE(find_marker(text, "hmm: memcpy ", 0, &m));
	ASSERT_EQ(m.src, alloc.ptr);
	ASSERT_EQ(m.size, SIZE);
	ASSERT_TRUE(find_marker(text, "hmm: prefetch ", 0, &m));
	ASSERT_EQ(m.ptr, alloc.ptr);
	ASSERT_EQ(m.dev, HMM_CPU);

	/* the stream's worker, then the kernel on it */
	ASSERT_TRUE(find_marker(text, "hmm: stream ", 0, &m));
	ASSERT_NE(m.stream, 0);
	ASSERT_EQ(m.dev, HMM_CPU);
	ASSERT_TRUE(find_marker(text, "hmm: launch ", 0, &m));
	ASSERT_EQ(m.dev, HMM_CPU);
	ASSERT_NE(m.stream, 0);
	ASSERT_EQ(m.grid[0], 2);
	ASSERT_EQ(m.grid[1], 1);
	ASSERT_EQ(m.grid[2], 1);
	/* a static function: no dynamic symbol, the file and offset */
	ASSERT_STREQ(m.code[0].sym, "");
	ASSERT_NE(m.code[0].obj[0], '\0');
	hp_profile_init(&prof);
	ASSERT_STREQ(hp_code_name(&prof, &m.code[0], 0, false),
		     "marker_test_kernel");
	hp_profile_free(&prof);

	ASSERT_TRUE(find_marker(text, "hmm: call ", 0, &m));
	ASSERT_STREQ(m.what, "hmm_launch");
	ASSERT_TRUE(find_marker(text, "hmm: sync ", 0, &m));
	ASSERT_STREQ(m.what, "hmm_stream_synchronize");
	ASSERT_TRUE(find_marker(text, "hmm: free ", 0, &m));
	ASSERT_EQ(m.ptr, alloc.ptr);
	ASSERT_TRUE(find_marker(text, "hmm: free ", 1, &m));

	/* hmm_register(): its bytes, its caller; hmm_unregister() once */
	ASSERT_TRUE(find_marker(text, "hmm: alloc ", 2, &m));
	ASSERT_EQ(m.size, REG_SIZE);
	ASSERT_NE(m.code[1].addr, 0);
	reg = m.ptr;
	ASSERT_TRUE(find_marker(text, "hmm: free ", 2, &m));
	ASSERT_EQ(m.ptr, reg);
	ASSERT_FALSE(find_marker(text, "hmm: free ", 3, &m));
}

TEST(no_variable_no_markers)
{
	/* the child's calls still work; there is nothing to look at */
	run_child(NULL);
	/* a file that cannot be opened: the program runs unchanged */
	run_child("/nonexistent/trace_marker");
}

TEST(set_name_checks_its_arguments)
{
	uint8_t *p = hmm_malloc(SIZE);
	int x;

	ASSERT_TRUE(p != NULL);
	errno = 1234;
	ASSERT_EQ(hmm_set_name(p, "weights"), 0);
	ASSERT_EQ(hmm_set_name(p + SIZE - 1, "inside"), 0);
	ASSERT_EQ(errno, 1234);
	ASSERT_EQ(hmm_set_name(p, NULL), -EINVAL);
	ASSERT_EQ(hmm_set_name(p, ""), -EINVAL);
	ASSERT_EQ(hmm_set_name(NULL, "x"), -EINVAL);
	ASSERT_EQ(hmm_set_name(&x, "not managed"), -EINVAL);
	ASSERT_EQ(hmm_free(p), 0);
	ASSERT_EQ(hmm_set_name(p, "freed"), -EINVAL);
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "--child"))
		return child_main();
	return hmmt_main(argc, argv);
}
