// SPDX-License-Identifier: MIT
/*
 * test_harness.c - the test harness reports what happened: a passing test
 * as ok, an assertion failure, a crash and a time-out as not ok, a skip as
 * a skip, and a non-zero exit status when anything failed.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <sys/wait.h>
#include <unistd.h>

static const char *fixture;

/* Runs the fixture with @args, returns its output and exit status. */
static char *run_fixture(const char *const *args, int *status)
{
	static char buf[16384];
	size_t len = 0;
	int pipefd[2];
	pid_t pid;
	ssize_t r;

	ASSERT_EQ(pipe(pipefd), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		char *argv[16] = { (char *)fixture };
		int i;

		for (i = 0; args[i] && i < 14; i++)
			argv[i + 1] = (char *)args[i];
		argv[i + 1] = NULL;
		dup2(pipefd[1], 1);
		execv(fixture, argv);
		_exit(127);
	}
	close(pipefd[1]);
	while ((r = read(pipefd[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += r;
	buf[len] = '\0';
	close(pipefd[0]);
	ASSERT_EQ(waitpid(pid, status, 0), pid);
	return buf;
}

static void expect_line(const char *out, const char *line)
{
	char want[256];

	snprintf(want, sizeof(want), "\n%s\n", line);
	if (!strstr(out, want))
		HMMT_FAIL("missing line \"%s\" in output:\n%s", line, out);
}

TEST(reports_every_outcome)
{
	const char *const none[] = { NULL };
	int status;
	char *out = run_fixture(none, &status);

	expect_line(out, "1..6");
	expect_line(out, "ok 1 passes");
	expect_line(out, "not ok 2 fails_an_assertion");
	expect_line(out, "not ok 3 fails_errno_check");
	expect_line(out, "not ok 4 crashes");
	expect_line(out, "ok 5 skips # SKIP");
	expect_line(out, "not ok 6 hangs");
	expect_line(out, "# 1 passed, 4 failed, 1 skipped");
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 1);
}

TEST(selects_tests_by_name)
{
	const char *const one[] = { "passes", NULL };
	const char *const skip[] = { "skips", NULL };
	const char *const bad[] = { "no_such_test", NULL };
	int status;
	char *out;

	out = run_fixture(one, &status);
	expect_line(out, "1..1");
	expect_line(out, "ok 1 passes");
	ASSERT_EQ(WEXITSTATUS(status), 0);

	run_fixture(skip, &status);
	ASSERT_EQ(WEXITSTATUS(status), HMMT_SKIP_STATUS);

	run_fixture(bad, &status);
	ASSERT_EQ(WEXITSTATUS(status), 2);
}

int main(int argc, char **argv)
{
	fixture = getenv("HMMT_FIXTURE");
	if (!fixture) {
		fprintf(stderr, "%s: set HMMT_FIXTURE to the fixture program\n",
			argv[0]);
		return 2;
	}
	return hmmt_main(argc, argv);
}
