// SPDX-License-Identifier: MIT
/*
 * test_rt_safety.c - libhmm misuse that must not crash or hang (no device
 * needed): stale stream and event handles, hmm_free()/hmm_unregister()
 * with stream work still queued on the memory, a fork child using its
 * parent's handles, errno across successful calls, hmm_strerror() of
 * unknown codes, the NULL stream of hmm_event_record(), hmm_shutdown(),
 * and what HMM_LOG=debug says about bad ranges.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "hmm/hmm.h"

#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* --- helpers ----------------------------------------------------------- */

static size_t ps(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts))
		;
}

static struct hmm_stream *cpu_stream(void)
{
	struct hmm_stream *s = NULL;

	ASSERT_EQ(hmm_stream_create(&s, HMM_CPU), 0);
	ASSERT_TRUE(s != NULL);
	return s;
}

static struct hmm_event *new_event(void)
{
	struct hmm_event *e = NULL;

	ASSERT_EQ(hmm_event_create(&e), 0);
	ASSERT_TRUE(e != NULL);
	return e;
}

/* A gate: gate_cb blocks its stream until the gate is opened. */
static void gate_cb(struct hmm_stream *s, int status, void *arg)
{
	while (sem_wait(arg))
		;
}

static void *open_later(void *arg)
{
	sleep_ms(50);
	sem_post(arg);
	return NULL;
}

static void nop_cb(struct hmm_stream *s, int status, void *arg)
{
}

static void nop_kernel(struct hmm_dim3 idx, struct hmm_dim3 grid, void *arg)
{
}

/* Writes its index into the int array at @arg. */
static void write_kernel(struct hmm_dim3 idx, struct hmm_dim3 grid,
			 void *arg)
{
	int *p = arg;

	p[idx.x] = (int)idx.x;
}

/* Threads of this process, from /proc/self/task. */
static int thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	int n = 0;

	ASSERT_TRUE(d != NULL);
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* --- stale handles ----------------------------------------------------- */

TEST(destroying_a_stream_twice_is_einval)
{
	struct hmm_stream *s = cpu_stream(), *t;

	ASSERT_EQ(hmm_stream_destroy(s), 0);
	ASSERT_EQ(hmm_stream_destroy(s), -EINVAL);
	/* a stream created since is not named by the old handle */
	t = cpu_stream();
	ASSERT_EQ(hmm_stream_destroy(s), -EINVAL);
	ASSERT_EQ(hmm_stream_query(t), 0);
	ASSERT_EQ(hmm_stream_add_callback(t, nop_cb, NULL), 0);
	ASSERT_EQ(hmm_stream_synchronize(t), 0);
	ASSERT_EQ(hmm_stream_destroy(t), 0);
}

TEST(calls_on_a_destroyed_stream_are_einval)
{
	struct hmm_stream *s = cpu_stream(), *live = cpu_stream();
	struct hmm_event *e = new_event();
	struct hmm_dim3 one = { 1, 1, 1 };
	char *p = hmm_malloc(ps());

	ASSERT_TRUE(p != NULL);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), -EINVAL);
	ASSERT_EQ(hmm_stream_query(s), -EINVAL);
	ASSERT_EQ(hmm_stream_add_callback(s, nop_cb, NULL), -EINVAL);
	ASSERT_EQ(hmm_stream_wait_event(s, e), -EINVAL);
	ASSERT_EQ(hmm_launch(s, nop_kernel, one, NULL), -EINVAL);
	ASSERT_EQ(hmm_prefetch_async(p, ps(), HMM_CPU, s), -EINVAL);
	ASSERT_EQ(hmm_event_record(e, s), -EINVAL);
	/* the rejected record left the event as it was: never recorded */
	ASSERT_EQ(hmm_event_elapsed_ms(&(float){ 0 }, e, e), -ENODATA);
	/* the others are fine */
	ASSERT_EQ(hmm_event_record(e, live), 0);
	ASSERT_EQ(hmm_event_synchronize(e), 0);
	ASSERT_EQ(hmm_event_destroy(e), 0);
	ASSERT_EQ(hmm_stream_destroy(live), 0);
	ASSERT_EQ(hmm_free(p), 0);
}

TEST(calls_on_a_destroyed_event_are_einval)
{
	struct hmm_stream *s = cpu_stream();
	struct hmm_event *e = new_event(), *live = new_event();
	float ms = 5.0f;

	ASSERT_EQ(hmm_event_record(e, s), 0);
	ASSERT_EQ(hmm_event_destroy(e), 0);
	ASSERT_EQ(hmm_event_destroy(e), -EINVAL);
	ASSERT_EQ(hmm_event_record(e, s), -EINVAL);
	ASSERT_EQ(hmm_event_synchronize(e), -EINVAL);
	ASSERT_EQ(hmm_event_query(e), -EINVAL);
	ASSERT_EQ(hmm_stream_wait_event(s, e), -EINVAL);
	ASSERT_EQ(hmm_event_record(live, s), 0);
	ASSERT_EQ(hmm_event_synchronize(live), 0);
	ASSERT_EQ(hmm_event_elapsed_ms(&ms, e, live), -EINVAL);
	ASSERT_EQ(hmm_event_elapsed_ms(&ms, live, e), -EINVAL);
	ASSERT_TRUE(ms == 5.0f);
	/* nothing was queued by the rejected calls */
	ASSERT_EQ(hmm_stream_query(s), 0);
	ASSERT_EQ(hmm_event_destroy(live), 0);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
}

/* Pointers that were never handles, and handles of the other kind. */
TEST(handles_that_were_never_created_are_einval)
{
	struct hmm_stream *s = cpu_stream();
	struct hmm_event *e = new_event();
	long junk[16] = { 0 };

	ASSERT_EQ(hmm_stream_query((struct hmm_stream *)junk), -EINVAL);
	ASSERT_EQ(hmm_stream_destroy((struct hmm_stream *)junk), -EINVAL);
	ASSERT_EQ(hmm_event_query((struct hmm_event *)junk), -EINVAL);
	ASSERT_EQ(hmm_event_destroy((struct hmm_event *)junk), -EINVAL);
	ASSERT_EQ(hmm_stream_query((struct hmm_stream *)e), -EINVAL);
	ASSERT_EQ(hmm_event_query((struct hmm_event *)s), -EINVAL);
	ASSERT_EQ(hmm_event_destroy(e), 0);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
}

/* Many threads destroy the same handles: each is destroyed once. */
struct racer {
	struct hmm_stream **s;
	struct hmm_event **e;
	int n, ok;
};

static void *destroy_all(void *arg)
{
	struct racer *r = arg;

	for (int i = 0; i < r->n; i++) {
		int a = hmm_stream_destroy(r->s[i]);
		int b = hmm_event_destroy(r->e[i]);

		if ((a && a != -EINVAL) || (b && b != -EINVAL))
			return NULL;
		r->ok += !a + !b;
	}
	return NULL;
}

TEST(concurrent_destroys_destroy_once)
{
	enum { N = 32, T = 4 };
	struct hmm_stream *s[N];
	struct hmm_event *e[N];
	struct racer r[T];
	pthread_t t[T];
	int total = 0;

	for (int i = 0; i < N; i++) {
		s[i] = cpu_stream();
		e[i] = new_event();
		ASSERT_EQ(hmm_event_record(e[i], s[i]), 0);
	}
	for (int i = 0; i < T; i++) {
		r[i] = (struct racer){ .s = s, .e = e, .n = N };
		ASSERT_EQ(pthread_create(&t[i], NULL, destroy_all, &r[i]), 0);
	}
	for (int i = 0; i < T; i++) {
		pthread_join(t[i], NULL);
		total += r[i].ok;
	}
	ASSERT_EQ(total, 2 * N);
}

/* --- hmm_free() and hmm_unregister() wait for stream work -------------- */

TEST(free_waits_for_a_queued_launch)
{
	struct hmm_stream *s = cpu_stream();
	struct hmm_dim3 grid = { 1024, 1, 1 };
	int *p = hmm_malloc(1024 * sizeof(int));
	pthread_t t;
	sem_t g;

	ASSERT_TRUE(p != NULL);
	ASSERT_EQ(sem_init(&g, 0, 0), 0);
	ASSERT_EQ(hmm_stream_add_callback(s, gate_cb, &g), 0);
	ASSERT_EQ(hmm_launch(s, write_kernel, grid, hmm_devptr(p, HMM_CPU)),
		  0);
	ASSERT_EQ(pthread_create(&t, NULL, open_later, &g), 0);
	/* cudaFree semantics: the launch runs on the memory first */
	ASSERT_EQ(hmm_free(p), 0);
	ASSERT_EQ(hmm_stream_query(s), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	pthread_join(t, NULL);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
}

TEST(free_waits_for_a_queued_prefetch)
{
	struct hmm_stream *s = cpu_stream(), *other = cpu_stream();
	char *p = hmm_malloc(4 * ps());
	pthread_t t;
	sem_t g;

	ASSERT_TRUE(p != NULL);
	ASSERT_EQ(sem_init(&g, 0, 0), 0);
	/* the prefetch is on another stream than any the caller names */
	ASSERT_EQ(hmm_stream_add_callback(s, gate_cb, &g), 0);
	ASSERT_EQ(hmm_prefetch_async(p, 4 * ps(), HMM_CPU, s), 0);
	ASSERT_EQ(pthread_create(&t, NULL, open_later, &g), 0);
	ASSERT_EQ(hmm_free(p), 0);
	/* the prefetch ran before the free: no error surfaces later */
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(hmm_device_synchronize(HMM_CPU), 0);
	pthread_join(t, NULL);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	ASSERT_EQ(hmm_stream_destroy(other), 0);
}

TEST(unregister_waits_for_queued_work)
{
	struct hmm_stream *s = cpu_stream();
	struct hmm_dim3 grid = { 256, 1, 1 };
	int *m = mmap(NULL, 4 * ps(), PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pthread_t t;
	sem_t g;

	ASSERT_TRUE(m != MAP_FAILED);
	ASSERT_EQ(hmm_register(m, 4 * ps()), 0);
	ASSERT_EQ(sem_init(&g, 0, 0), 0);
	ASSERT_EQ(hmm_stream_add_callback(s, gate_cb, &g), 0);
	ASSERT_EQ(hmm_prefetch_async(m, 4 * ps(), HMM_CPU, s), 0);
	ASSERT_EQ(hmm_launch(s, write_kernel, grid, hmm_devptr(m, HMM_CPU)),
		  0);
	ASSERT_EQ(pthread_create(&t, NULL, open_later, &g), 0);
	ASSERT_EQ(hmm_unregister(m), 0);
	ASSERT_EQ(hmm_stream_query(s), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	for (int i = 0; i < 256; i++)
		ASSERT_EQ(m[i], i);
	pthread_join(t, NULL);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	munmap(m, 4 * ps());
}

/* From a stream's own work, a free would wait for itself. */
struct free_args {
	void *p;
	int ret;
};

static void free_cb(struct hmm_stream *s, int status, void *arg)
{
	struct free_args *f = arg;

	f->ret = hmm_free(f->p);
}

static void free_kernel(struct hmm_dim3 idx, struct hmm_dim3 grid, void *arg)
{
	struct free_args *f = arg;

	f->ret = hmm_free(f->p);
}

TEST(free_from_stream_work_is_edeadlk)
{
	struct hmm_stream *s = cpu_stream();
	struct free_args f = { .p = hmm_malloc(ps()), .ret = 1 };
	struct free_args k = { .p = f.p, .ret = 1 };

	ASSERT_TRUE(f.p != NULL);
	ASSERT_EQ(hmm_stream_add_callback(s, free_cb, &f), 0);
	ASSERT_EQ(hmm_launch(s, free_kernel, (struct hmm_dim3){ 1, 1, 1 }, &k),
		  0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(f.ret, -EDEADLK);
	ASSERT_EQ(k.ret, -EDEADLK);
	/* still there, and freed from outside */
	memset(f.p, 1, ps());
	ASSERT_EQ(hmm_free(f.p), 0);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
}

/* --- fork -------------------------------------------------------------- */

TEST(a_child_cannot_use_its_parents_handles)
{
	struct hmm_stream *s = cpu_stream();
	struct hmm_event *e = new_event();
	struct hmm_dim3 one = { 1, 1, 1 };
	char *p = hmm_malloc(ps());
	int status;
	pid_t pid;
	sem_t g;

	ASSERT_TRUE(p != NULL);
	ASSERT_EQ(sem_init(&g, 0, 0), 0);
	/* the parent's stream is busy while the child runs */
	ASSERT_EQ(hmm_stream_add_callback(s, gate_cb, &g), 0);
	ASSERT_EQ(hmm_event_record(e, s), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		struct hmm_stream *mine;
		float ms;

		ASSERT_EQ(hmm_launch(s, nop_kernel, one, NULL), -ECHILD);
		ASSERT_EQ(hmm_stream_synchronize(s), -ECHILD);
		ASSERT_EQ(hmm_stream_query(s), -ECHILD);
		ASSERT_EQ(hmm_stream_add_callback(s, nop_cb, NULL), -ECHILD);
		ASSERT_EQ(hmm_prefetch_async(p, ps(), HMM_CPU, s), -ECHILD);
		ASSERT_EQ(hmm_stream_wait_event(s, e), -ECHILD);
		ASSERT_EQ(hmm_event_record(e, s), -ECHILD);
		ASSERT_EQ(hmm_event_record(e, NULL), -ECHILD);
		ASSERT_EQ(hmm_event_synchronize(e), -ECHILD);
		ASSERT_EQ(hmm_event_query(e), -ECHILD);
		ASSERT_EQ(hmm_event_elapsed_ms(&ms, e, e), -ECHILD);
		ASSERT_EQ(hmm_event_destroy(e), -ECHILD);
		ASSERT_EQ(hmm_stream_destroy(s), -ECHILD);
		ASSERT_TRUE(strstr(hmm_strerror(-ECHILD), "fork") != NULL);
		/* the parent's busy stream holds up nothing here */
		ASSERT_EQ(hmm_device_synchronize(HMM_CPU), 0);
		mine = cpu_stream();
		ASSERT_EQ(hmm_launch(mine, nop_kernel, one, NULL), 0);
		ASSERT_EQ(hmm_stream_synchronize(mine), 0);
		ASSERT_EQ(hmm_free(p), 0);
		ASSERT_EQ(hmm_stream_destroy(mine), 0);
		ASSERT_EQ(hmm_shutdown(), 0);
		exit(0);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	/* the parent's handles still work */
	ASSERT_EQ(sem_post(&g), 0);
	ASSERT_EQ(hmm_event_synchronize(e), 0);
	ASSERT_EQ(hmm_launch(s, nop_kernel, one, NULL), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(hmm_event_destroy(e), 0);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	ASSERT_EQ(hmm_free(p), 0);
}

/* --- errno, hmm_strerror(), the NULL stream ------------------------------ */

#define KEEP(call)                                                           \
	do {                                                                 \
		errno = 4242;                                                \
		call;                                                        \
		if (errno != 4242)                                           \
			HMMT_FAIL("%s changed errno to %d (%s)", #call,      \
				  errno, strerror(errno));                   \
	} while (0)

TEST(successful_calls_leave_errno_alone)
{
	struct hmm_stream *s = NULL;
	struct hmm_event *e = NULL, *f = NULL;
	struct hmm_stats st;
	int8_t loc[4];
	float ms;
	char *p = NULL, *m;
	int n = -1;

	m = mmap(NULL, 4 * ps(), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(m != MAP_FAILED);
	/* the first call of the process discovers the devices */
	KEEP(n = hmm_device_count());
	ASSERT_GE(n, 0);
	KEEP(p = hmm_malloc(4 * ps()));
	ASSERT_TRUE(p != NULL);
	KEEP(ASSERT_EQ(hmm_register(m, 4 * ps()), 0));
	KEEP(ASSERT_TRUE(hmm_devptr(p, HMM_CPU) == p));
	KEEP(ASSERT_EQ(hmm_prefetch(p, ps(), HMM_CPU), 0));
	KEEP(ASSERT_EQ(hmm_advise(p, ps(), HMM_ADVISE_FAULT_GRANULARITY, 0,
				  65536), 0));
	KEEP(ASSERT_EQ(hmm_residency(p, 4 * ps(), loc, 4), 4));
	KEEP(ASSERT_EQ(hmm_get_stats(HMM_CPU, &st), 0));
	KEEP(ASSERT_EQ(hmm_stream_create(&s, HMM_CPU), 0));
	KEEP(ASSERT_EQ(hmm_event_create(&e), 0));
	KEEP(ASSERT_EQ(hmm_event_create(&f), 0));
	KEEP(ASSERT_EQ(hmm_event_record(e, s), 0));
	KEEP(ASSERT_EQ(hmm_launch(s, nop_kernel, (struct hmm_dim3){ 8, 1, 1 },
				  NULL), 0));
	KEEP(ASSERT_EQ(hmm_prefetch_async(p, ps(), HMM_CPU, s), 0));
	KEEP(ASSERT_EQ(hmm_stream_add_callback(s, nop_cb, NULL), 0));
	KEEP(ASSERT_EQ(hmm_event_record(f, s), 0));
	KEEP(ASSERT_EQ(hmm_stream_wait_event(s, f), 0));
	KEEP(ASSERT_EQ(hmm_stream_synchronize(s), 0));
	KEEP(ASSERT_EQ(hmm_device_synchronize(HMM_CPU), 0));
	KEEP(ASSERT_EQ(hmm_stream_query(s), 0));
	KEEP(ASSERT_EQ(hmm_event_synchronize(f), 0));
	KEEP(ASSERT_EQ(hmm_event_query(f), 0));
	KEEP(ASSERT_EQ(hmm_event_elapsed_ms(&ms, e, f), 0));
	KEEP(ASSERT_TRUE(hmm_strerror(-EINVAL) != NULL));
	KEEP(ASSERT_TRUE(hmm_strerror(-999) != NULL));
	KEEP(ASSERT_EQ(hmm_event_destroy(e), 0));
	KEEP(ASSERT_EQ(hmm_event_destroy(f), 0));
	KEEP(ASSERT_EQ(hmm_stream_destroy(s), 0));
	KEEP(ASSERT_EQ(hmm_unregister(m), 0));
	KEEP(ASSERT_EQ(hmm_free(p), 0));
	KEEP(ASSERT_EQ(hmm_free(NULL), 0));
	KEEP(ASSERT_EQ(hmm_shutdown(), 0));
	munmap(m, 4 * ps());
}

TEST(strerror_keeps_the_sign_of_unknown_codes)
{
	char want[64];

	snprintf(want, sizeof(want), "Unknown error %d", -123456);
	ASSERT_STREQ(hmm_strerror(-123456), want);
	snprintf(want, sizeof(want), "Unknown error %d", 123456);
	ASSERT_STREQ(hmm_strerror(123456), want);
	snprintf(want, sizeof(want), "Unknown error %d", INT_MIN);
	ASSERT_STREQ(hmm_strerror(INT_MIN), want);
	snprintf(want, sizeof(want), "Unknown error %d", INT_MAX);
	ASSERT_STREQ(hmm_strerror(INT_MAX), want);
	/* known codes of either sign: the same message, no number */
	ASSERT_STREQ(hmm_strerror(-EINVAL), strerror(EINVAL));
	ASSERT_STREQ(hmm_strerror(EINVAL), strerror(EINVAL));
}

/*
 * A NULL stream means "now, on the calling thread" (hmm_prefetch_async()
 * with NULL runs the prefetch at once): the record completes at once.
 */
TEST(event_record_on_the_null_stream_completes_at_once)
{
	struct hmm_stream *s = cpu_stream();
	struct hmm_event *a = new_event(), *b = new_event();
	float ms = -1.0f;
	sem_t g;

	ASSERT_EQ(hmm_event_record(a, NULL), 0);
	ASSERT_EQ(hmm_event_query(a), 0);
	ASSERT_EQ(hmm_event_synchronize(a), 0);
	sleep_ms(20);
	ASSERT_EQ(hmm_event_record(b, NULL), 0);
	ASSERT_EQ(hmm_event_elapsed_ms(&ms, a, b), 0);
	ASSERT_GE(ms, 19.5f);
	/* it replaces a record still pending on a stream */
	ASSERT_EQ(sem_init(&g, 0, 0), 0);
	ASSERT_EQ(hmm_stream_add_callback(s, gate_cb, &g), 0);
	ASSERT_EQ(hmm_event_record(a, s), 0);
	ASSERT_EQ(hmm_event_query(a), -EBUSY);
	ASSERT_EQ(hmm_event_record(a, NULL), 0);
	ASSERT_EQ(hmm_event_query(a), 0);
	ASSERT_EQ(hmm_stream_wait_event(s, a), 0);
	ASSERT_EQ(sem_post(&g), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(hmm_event_destroy(a), 0);
	ASSERT_EQ(hmm_event_destroy(b), 0);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
}

/* --- hmm_shutdown() ---------------------------------------------------- */

TEST(shutdown_joins_the_execution_threads)
{
	struct hmm_stream *s = cpu_stream(), *t;
	struct hmm_event *e = new_event();
	struct hmm_dim3 grid = { 4096, 1, 1 };
	int *p = hmm_malloc(4096 * sizeof(int));

	ASSERT_TRUE(p != NULL);
	ASSERT_EQ(thread_count(), 2); /* this one and the stream's */
	ASSERT_EQ(hmm_launch(s, write_kernel, grid, p), 0);
	ASSERT_EQ(hmm_event_record(e, s), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_GT(thread_count(), 2); /* the execution pool */
	/* the stream and the event still alive are destroyed too */
	ASSERT_EQ(hmm_shutdown(), 0);
	ASSERT_EQ(thread_count(), 1);
	ASSERT_EQ(hmm_stream_query(s), -EINVAL);
	ASSERT_EQ(hmm_event_query(e), -EINVAL);
	/* memory stays, and the library works again afterwards */
	for (int i = 0; i < 4096; i++)
		ASSERT_EQ(p[i], i);
	memset(p, 0, 4096 * sizeof(int));
	t = cpu_stream();
	ASSERT_EQ(hmm_launch(t, write_kernel, grid, p), 0);
	ASSERT_EQ(hmm_stream_synchronize(t), 0);
	ASSERT_EQ(p[4095], 4095);
	ASSERT_EQ(hmm_stream_destroy(t), 0);
	ASSERT_EQ(hmm_free(p), 0);
	ASSERT_EQ(hmm_shutdown(), 0);
	ASSERT_EQ(hmm_shutdown(), 0);
	ASSERT_EQ(thread_count(), 1);
}

static void shutdown_cb(struct hmm_stream *s, int status, void *arg)
{
	*(int *)arg = hmm_shutdown();
}

TEST(shutdown_from_stream_work_is_edeadlk)
{
	struct hmm_stream *s = cpu_stream();
	int ret = 1;

	ASSERT_EQ(hmm_stream_add_callback(s, shutdown_cb, &ret), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(ret, -EDEADLK);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
}

/* At exit() the library's destructor ends its threads when it is safe. */
TEST(exit_with_idle_streams_and_with_busy_ones)
{
	for (int busy = 0; busy < 2; busy++) {
		int status;
		pid_t pid = fork();

		ASSERT_GE(pid, 0);
		if (pid == 0) {
			struct hmm_stream *s = cpu_stream();
			static sem_t g;

			ASSERT_EQ(hmm_launch(s, nop_kernel,
					     (struct hmm_dim3){ 64, 1, 1 },
					     NULL), 0);
			ASSERT_EQ(hmm_stream_synchronize(s), 0);
			if (busy) {
				/* never opened: exit must not wait for it */
				ASSERT_EQ(sem_init(&g, 0, 0), 0);
				ASSERT_EQ(hmm_stream_add_callback(s, gate_cb,
								  &g), 0);
			}
			exit(0);
		}
		ASSERT_EQ(waitpid(pid, &status, 0), pid);
		ASSERT_TRUE(WIFEXITED(status));
		ASSERT_EQ(WEXITSTATUS(status), 0);
	}
}

/* --- HMM_LOG=debug ------------------------------------------------------ */

/* Runs @fn with HMM_LOG=debug and stderr in @out (a fresh process). */
static void debug_output(void (*fn)(void), char *out, size_t len)
{
	int pfd[2], saved;
	ssize_t n, got = 0;

	ASSERT_EQ(setenv("HMM_LOG", "debug", 1), 0);
	ASSERT_EQ(pipe(pfd), 0);
	saved = dup(2);
	ASSERT_GE(saved, 0);
	ASSERT_EQ(dup2(pfd[1], 2), 2);
	close(pfd[1]);
	fn();
	ASSERT_EQ(dup2(saved, 2), 2);
	close(saved);
	while ((n = read(pfd[0], out + got, len - 1 - got)) > 0)
		got += n;
	close(pfd[0]);
	out[got] = '\0';
}

/* Logs @out one TAP comment line per line (TH_LOG prefixes only one). */
static void log_lines(char *out)
{
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"))
		TH_LOG("%s", line);
}

static char unmanaged[4096];

static void bad_ranges(void)
{
	char *p = hmm_malloc(ps());

	ASSERT_TRUE(p != NULL);
	ASSERT_EQ(hmm_prefetch(unmanaged, 100, HMM_CPU), -EINVAL);
	ASSERT_EQ(hmm_free(unmanaged), -EINVAL);
	ASSERT_EQ(hmm_unregister(p), -EINVAL);
	ASSERT_EQ(hmm_advise(unmanaged, 100, HMM_ADVISE_FAULT_GRANULARITY, 0,
			     0), -EINVAL);
	ASSERT_EQ(hmm_free(p), 0);
}

TEST(range_not_managed_is_logged_at_debug)
{
	char out[16384];

	debug_output(bad_ranges, out, sizeof(out));
	ASSERT_TRUE(strstr(out, "hmm_prefetch") != NULL);
	ASSERT_TRUE(strstr(out, "hmm_free") != NULL);
	ASSERT_TRUE(strstr(out, "hmm_unregister") != NULL);
	ASSERT_TRUE(strstr(out, "hmm_advise") != NULL);
	ASSERT_TRUE(strstr(out, "not managed") != NULL);
	log_lines(out);
}

static void register_prot_none(void)
{
	void *none = mmap(NULL, 2 * ps(), PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(none != MAP_FAILED);
	ASSERT_EQ(hmm_register(none, 2 * ps()), -EINVAL);
	munmap(none, 2 * ps());
}

TEST(register_of_prot_none_memory_says_so)
{
	char out[16384];

	debug_output(register_prot_none, out, sizeof(out));
	ASSERT_TRUE(strstr(out, "PROT_NONE") != NULL);
	ASSERT_TRUE(strstr(out, "not private anonymous") == NULL);
	log_lines(out);
}

TEST_MAIN()
