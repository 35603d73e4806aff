// SPDX-License-Identifier: MIT
/*
 * test_rt_faults.c - a kernel that faults (no device needed: HMM_CPU's
 * execution pool runs kernels as a device's does): a write to read-only
 * memory, a read of inaccessible memory and a stack overflow in a kernel
 * are -EFAULT of the launch and its stream, logged with the address, and
 * the process, the stream and the pool go on; faults outside kernels
 * still kill the process, or reach the application's own handler.
 *
 * Inaccessible memory is made with mprotect(), not munmap(): memcheck
 * tracks mappings but not protections, so the fault happens natively and
 * the test runs clean under valgrind too.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "hmm/hmm.h"

#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define NPOINTS 1000

/* --- helpers ----------------------------------------------------------- */

static size_t ps(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static struct hmm_stream *cpu_stream(void)
{
	struct hmm_stream *s = NULL;

	ASSERT_EQ(hmm_stream_create(&s, HMM_CPU), 0);
	ASSERT_TRUE(s != NULL);
	return s;
}

/* A page mapped with @prot (after being mapped read-write). */
static char *page_with(int prot)
{
	char *p = mmap(NULL, ps(), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	ASSERT_EQ(mprotect(p, ps(), prot), 0);
	return p;
}

/* Point @bad touches @target as @write says; every other point counts. */
struct touch {
	uint32_t bad;
	volatile char *target;
	bool write;
	atomic_int ran;
};

static void touch_kernel(struct hmm_dim3 idx, struct hmm_dim3 grid,
			 void *arg)
{
	struct touch *t = arg;

	if (idx.x == t->bad) {
		if (t->write)
			t->target[0] = 1;
		else
			(void)t->target[0];
	}
	atomic_fetch_add(&t->ran, 1);
}

static void count_kernel(struct hmm_dim3 idx, struct hmm_dim3 grid,
			 void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
}

static void status_cb(struct hmm_stream *s, int status, void *arg)
{
	*(int *)arg = status;
}

/* After a faulted launch: the stream and the pool run a whole launch. */
static void expect_stream_works(struct hmm_stream *s)
{
	atomic_int n = 0;

	ASSERT_EQ(hmm_launch(s, count_kernel, (struct hmm_dim3){ NPOINTS, 1,
								 1 }, &n), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(atomic_load(&n), NPOINTS);
}

static void no_core_dumps(void)
{
	struct rlimit rl = { 0, 0 };

	ASSERT_EQ(setrlimit(RLIMIT_CORE, &rl), 0);
}

/* Runs @fn in a child; its wait status. */
static int in_child(void (*fn)(void))
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		no_core_dumps();
		fn();
		_exit(0);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	return status;
}

/* --- faults in kernels ------------------------------------------------- */

TEST(a_write_to_read_only_memory_is_efault)
{
	struct hmm_stream *s = cpu_stream();
	struct touch t = { .bad = 7, .target = page_with(PROT_READ),
			   .write = true };
	int status = 1;

	ASSERT_EQ(hmm_launch(s, touch_kernel, (struct hmm_dim3){ NPOINTS, 1,
								 1 }, &t), 0);
	ASSERT_EQ(hmm_stream_add_callback(s, status_cb, &status), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), -EFAULT);
	/* the callback after it saw the error; synchronize cleared it */
	ASSERT_EQ(status, -EFAULT);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	/* the faulting point did not finish; the rest may have been skipped */
	ASSERT_LT(atomic_load(&t.ran), NPOINTS);
	expect_stream_works(s);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	ASSERT_EQ(munmap((void *)t.target, ps()), 0);
}

TEST(a_read_of_inaccessible_memory_is_efault)
{
	struct hmm_stream *s = cpu_stream();
	struct touch t = { .bad = 0, .target = page_with(PROT_NONE) };

	ASSERT_EQ(hmm_launch(s, touch_kernel, (struct hmm_dim3){ 1, 1, 1 },
			     &t), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), -EFAULT);
	ASSERT_EQ(atomic_load(&t.ran), 0);
	expect_stream_works(s);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	ASSERT_EQ(munmap((void *)t.target, ps()), 0);
}

TEST(every_point_faulting_is_one_error)
{
	struct hmm_stream *s = cpu_stream();
	struct touch t = { .target = page_with(PROT_READ), .write = true };

	/* every point faults: no hang, one error, the pool survives */
	for (uint32_t i = 0; i < 4; i++) {
		t.bad = i * 100;
		ASSERT_EQ(hmm_launch(s, touch_kernel,
				     (struct hmm_dim3){ 400, 1, 1 }, &t), 0);
	}
	ASSERT_EQ(hmm_device_synchronize(HMM_CPU), -EFAULT);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	expect_stream_works(s);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	ASSERT_EQ(munmap((void *)t.target, ps()), 0);
}

TEST(faults_on_two_streams_at_once)
{
	struct hmm_stream *a = cpu_stream(), *b = cpu_stream();
	struct touch ta = { .bad = 10, .target = page_with(PROT_NONE) };
	struct touch tb = { .bad = 500, .target = page_with(PROT_READ),
			    .write = true };

	for (int i = 0; i < 20; i++) {
		ASSERT_EQ(hmm_launch(a, touch_kernel,
				     (struct hmm_dim3){ NPOINTS, 1, 1 }, &ta),
			  0);
		ASSERT_EQ(hmm_launch(b, touch_kernel,
				     (struct hmm_dim3){ NPOINTS, 1, 1 }, &tb),
			  0);
	}
	ASSERT_EQ(hmm_stream_synchronize(a), -EFAULT);
	ASSERT_EQ(hmm_stream_synchronize(b), -EFAULT);
	expect_stream_works(a);
	expect_stream_works(b);
	ASSERT_EQ(hmm_stream_destroy(a), 0);
	ASSERT_EQ(hmm_stream_destroy(b), 0);
}

static volatile int depth_limit = 1 << 30;

static int recurse(volatile char *p, int depth)
{
	volatile char frame[512];

	frame[0] = (char)depth;
	frame[511] = p[0];
	if (depth >= depth_limit)
		return 0;
	return recurse(frame, depth + 1) + frame[0];
}

static void overflow_kernel(struct hmm_dim3 idx, struct hmm_dim3 grid,
			    void *arg)
{
	*(int *)arg = recurse(arg, 0);
}

TEST(a_stack_overflow_in_a_kernel_is_efault)
{
	struct hmm_stream *s;
	const char *pre = getenv("LD_PRELOAD");
	int sink = 0;

	/* memcheck ends the process on a thread's stack overflow itself */
	if (pre && strstr(pre, "vgpreload"))
		SKIP("under valgrind");
	s = cpu_stream();
	ASSERT_EQ(hmm_launch(s, overflow_kernel, (struct hmm_dim3){ 1, 1, 1 },
			     &sink), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), -EFAULT);
	expect_stream_works(s);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
}

/* HMM_LOG=error names the signal and the address. */
TEST(the_fault_is_logged_with_its_address)
{
	struct touch t = { .bad = 3, .target = page_with(PROT_READ),
			   .write = true };
	struct hmm_stream *s;
	char out[4096], addr[32];
	ssize_t n, got = 0;
	int pfd[2], saved;

	ASSERT_EQ(setenv("HMM_LOG", "error", 1), 0);
	ASSERT_EQ(pipe(pfd), 0);
	saved = dup(2);
	ASSERT_GE(saved, 0);
	ASSERT_EQ(dup2(pfd[1], 2), 2);
	close(pfd[1]);
	s = cpu_stream();
	ASSERT_EQ(hmm_launch(s, touch_kernel, (struct hmm_dim3){ 10, 1, 1 },
			     &t), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), -EFAULT);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	ASSERT_EQ(dup2(saved, 2), 2);
	close(saved);
	while ((n = read(pfd[0], out + got, sizeof(out) - 1 - got)) > 0)
		got += n;
	close(pfd[0]);
	out[got] = '\0';
	TH_LOG("%s", out);
	snprintf(addr, sizeof(addr), "%p", (void *)t.target);
	ASSERT_TRUE(strstr(out, "SIGSEGV") != NULL);
	ASSERT_TRUE(strstr(out, addr) != NULL);
	ASSERT_TRUE(strstr(out, "(3, 0, 0)") != NULL);
	ASSERT_TRUE(strstr(out, "HMM_CPU") != NULL);
}

/* --- faults elsewhere -------------------------------------------------- */

static char *ro_page;

static void fault_on_the_main_thread(void)
{
	struct hmm_stream *s = cpu_stream();

	/* the pool runs, the library's handler is installed */
	expect_stream_works(s);
	ro_page[0] = 1;
	_exit(3);
}

TEST(a_fault_outside_a_kernel_still_kills)
{
	int status;

	ro_page = page_with(PROT_READ);
	status = in_child(fault_on_the_main_thread);
	ASSERT_TRUE(WIFSIGNALED(status));
	ASSERT_EQ(WTERMSIG(status), SIGSEGV);
}

static void fault_in_a_callback_cb(struct hmm_stream *s, int status,
				   void *arg)
{
	ro_page[0] = 1;
}

static void fault_in_a_callback(void)
{
	struct hmm_stream *s = cpu_stream();

	expect_stream_works(s);
	ASSERT_EQ(hmm_stream_add_callback(s, fault_in_a_callback_cb, NULL), 0);
	hmm_stream_synchronize(s);
	_exit(3);
}

TEST(a_fault_in_a_callback_still_kills)
{
	int status;

	/* callbacks are the application's code on a stream thread */
	ro_page = page_with(PROT_READ);
	status = in_child(fault_in_a_callback);
	ASSERT_TRUE(WIFSIGNALED(status));
	ASSERT_EQ(WTERMSIG(status), SIGSEGV);
}

static void app_handler(int sig, siginfo_t *si, void *uc)
{
	_exit(si->si_addr == ro_page && sig == SIGSEGV ? 42 : 43);
}

static void app_handler_then_faults(void)
{
	struct touch t = { .bad = 1, .target = ro_page, .write = true };
	struct sigaction sa = { .sa_sigaction = app_handler,
				.sa_flags = SA_SIGINFO };
	struct hmm_stream *s;

	sigemptyset(&sa.sa_mask);
	ASSERT_EQ(sigaction(SIGSEGV, &sa, NULL), 0);
	s = cpu_stream();
	/* a kernel's fault is the launch's error, not the application's */
	ASSERT_EQ(hmm_launch(s, touch_kernel, (struct hmm_dim3){ 8, 1, 1 },
			     &t), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), -EFAULT);
	/* the main thread's fault goes to the application's handler */
	ro_page[0] = 1;
	_exit(3);
}

TEST(the_applications_handler_gets_the_other_faults)
{
	int status;

	ro_page = page_with(PROT_READ);
	status = in_child(app_handler_then_faults);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 42);
}

static void app_handler_then_callback_faults(void)
{
	struct sigaction sa = { .sa_sigaction = app_handler,
				.sa_flags = SA_SIGINFO };
	struct hmm_stream *s;

	sigemptyset(&sa.sa_mask);
	ASSERT_EQ(sigaction(SIGSEGV, &sa, NULL), 0);
	s = cpu_stream();
	expect_stream_works(s);
	ASSERT_EQ(hmm_stream_add_callback(s, fault_in_a_callback_cb, NULL), 0);
	hmm_stream_synchronize(s);
	_exit(3);
}

TEST(the_applications_handler_gets_a_callbacks_fault)
{
	int status;

	/* a callback is the application's code, not a kernel */
	ro_page = page_with(PROT_READ);
	status = in_child(app_handler_then_callback_faults);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 42);
}

static void shutdown_restores(void)
{
	struct sigaction cur;
	struct hmm_stream *s = cpu_stream();

	expect_stream_works(s);
	ASSERT_EQ(sigaction(SIGSEGV, NULL, &cur), 0);
	ASSERT_TRUE(cur.sa_handler != SIG_DFL);
	ASSERT_EQ(hmm_shutdown(), 0);
	ASSERT_EQ(sigaction(SIGSEGV, NULL, &cur), 0);
	ASSERT_TRUE(cur.sa_handler == SIG_DFL);
	ASSERT_EQ(sigaction(SIGBUS, NULL, &cur), 0);
	ASSERT_TRUE(cur.sa_handler == SIG_DFL);
}

TEST(shutdown_puts_the_previous_handlers_back)
{
	int status = in_child(shutdown_restores);

	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
}

TEST_MAIN()
