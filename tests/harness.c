// SPDX-License-Identifier: MIT
/*
 * harness.c - runner of the tests declared with TEST() (see harness.h).
 */
#define _GNU_SOURCE
#include "harness.h"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct hmmt_test *hmmt_head, **hmmt_tail = &hmmt_head;

void hmmt_register(struct hmmt_test *t)
{
	/* Constructors run in file order: keep that order. */
	*hmmt_tail = t;
	hmmt_tail = &t->next;
}

static bool hmmt_selected(const struct hmmt_test *t, int argc, char **argv)
{
	if (argc < 2)
		return true;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], t->name))
			return true;
	return false;
}

static double hmmt_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Prints one /proc file of task @tid of @pid as TAP comments, if readable. */
static void hmmt_print_proc(pid_t pid, const char *tid, const char *file)
{
	char path[128], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%s/%s", (int)pid, tid,
		 file);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		printf("#   %s: %s\n", file, line);
	}
	fclose(f);
}

/*
 * Where a test that timed out is stuck: the name, wait channel and kernel
 * stack of each of its threads (the stacks are readable by root only, as
 * in the test VM), before it is killed.
 */
static void hmmt_print_stuck(pid_t pid)
{
	char path[64];
	struct dirent *d;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return;
	while ((d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		printf("# thread %s:\n", d->d_name);
		hmmt_print_proc(pid, d->d_name, "comm");
		hmmt_print_proc(pid, d->d_name, "wchan");
		hmmt_print_proc(pid, d->d_name, "stack");
	}
	closedir(dir);
	fflush(stdout);
}

/* Returns 0 pass, 1 fail, 2 skip. */
static int hmmt_run_one(const struct hmmt_test *t)
{
	double deadline = hmmt_now() + t->timeout;
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		printf("# fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		setpgid(0, 0);
		t->fn();
		fflush(stdout);
		_exit(0);
	}

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			printf("# waitpid: %s\n", strerror(errno));
			return 1;
		}
		if (hmmt_now() > deadline) {
			printf("# timed out after %u s\n", t->timeout);
			hmmt_print_stuck(pid);
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return 1;
		}
		usleep(10000);
	}
	/* Reap anything the test left behind in its process group. */
	kill(-pid, SIGKILL);

	if (WIFSIGNALED(status)) {
		printf("# killed by signal %d (%s)\n", WTERMSIG(status),
		       strsignal(WTERMSIG(status)));
		return 1;
	}
	if (WEXITSTATUS(status) == HMMT_SKIP_STATUS)
		return 2;
	return WEXITSTATUS(status) ? 1 : 0;
}

int hmmt_main(int argc, char **argv)
{
	int total = 0, n = 0, failed = 0, skipped = 0;
	struct hmmt_test *t;

	if (argc == 2 && !strcmp(argv[1], "-l")) {
		for (t = hmmt_head; t; t = t->next)
			printf("%s\n", t->name);
		return 0;
	}

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (t = hmmt_head; t; t = t->next)
		total += hmmt_selected(t, argc, argv);
	if (!total) {
		fprintf(stderr, "%s: no test of that name; -l lists them\n",
			argv[0]);
		return 2;
	}

	printf("TAP version 13\n1..%d\n", total);
	for (t = hmmt_head; t; t = t->next) {
		if (!hmmt_selected(t, argc, argv))
			continue;
		n++;
		switch (hmmt_run_one(t)) {
		case 0:
			printf("ok %d %s\n", n, t->name);
			break;
		case 2:
			printf("ok %d %s # SKIP\n", n, t->name);
			skipped++;
			break;
		default:
			printf("not ok %d %s\n", n, t->name);
			failed++;
			break;
		}
	}
	printf("# %d passed, %d failed, %d skipped\n", n - failed - skipped,
	       failed, skipped);
	if (failed)
		return 1;
	return skipped == n ? HMMT_SKIP_STATUS : 0;
}
