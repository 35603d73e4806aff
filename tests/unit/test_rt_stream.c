// SPDX-License-Identifier: MIT
/*
 * test_rt_stream.c - libhmm streams, events, callbacks and launches on the
 * host (HMM_CPU; no device needed): argument checks, stream order, error
 * reporting, events and their timing, waits across streams, launch
 * coverage of 1D/2D/3D grids, device synchronize, destroy with pending
 * work, many streams at once; also HMM_LOG and hmm_strerror().
 *
 * Streams are held back where a test needs work to be pending with a
 * *gate*: a callback that blocks until the test opens it.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "hmm/hmm.h"

#include <limits.h>
#include <pthread.h>
#include <sys/wait.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* --- helpers ----------------------------------------------------------- */

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
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

/* A gate: gate_cb blocks its stream until gate_open(). */
struct gate {
	sem_t sem;
	atomic_int entered;
};

static void gate_init(struct gate *g)
{
	ASSERT_EQ(sem_init(&g->sem, 0, 0), 0);
	atomic_init(&g->entered, 0);
}

static void gate_cb(struct hmm_stream *s, int status, void *arg)
{
	struct gate *g = arg;

	atomic_fetch_add(&g->entered, 1);
	while (sem_wait(&g->sem))
		;
}

static void gate_open(struct gate *g)
{
	ASSERT_EQ(sem_post(&g->sem), 0);
}

/* An order log: each entry appends its tag. */
#define LOG_MAX 4096
struct order_log {
	atomic_int n;
	int tag[LOG_MAX];
	int status[LOG_MAX];
};

struct log_entry {
	struct order_log *log;
	int tag;
};

static void log_append(struct order_log *l, int tag, int status)
{
	int i = atomic_fetch_add(&l->n, 1);

	if (i < LOG_MAX) {
		l->tag[i] = tag;
		l->status[i] = status;
	}
}

static void log_cb(struct hmm_stream *s, int status, void *arg)
{
	struct log_entry *e = arg;

	log_append(e->log, e->tag, status);
}

static void log_kernel(struct hmm_dim3 idx, struct hmm_dim3 grid, void *arg)
{
	struct log_entry *e = arg;

	log_append(e->log, e->tag, 0);
}

static void nop_kernel(struct hmm_dim3 idx, struct hmm_dim3 grid, void *arg)
{
}

static void nop_cb(struct hmm_stream *s, int status, void *arg)
{
}

/* --- argument checks --------------------------------------------------- */

TEST(stream_create_checks_arguments)
{
	int n = hmm_device_count();
	struct hmm_stream *s = (struct hmm_stream *)0x1;

	ASSERT_GE(n, 0);
	ASSERT_EQ(hmm_stream_create(NULL, HMM_CPU), -EINVAL);
	/* past the last device, and numbers that are no location */
	ASSERT_EQ(hmm_stream_create(&s, n), -ENODEV);
	ASSERT_EQ(hmm_stream_create(&s, 1000), -ENODEV);
	ASSERT_EQ(hmm_stream_create(&s, -2), -ENODEV);
	ASSERT_EQ(hmm_stream_create(&s, INT_MIN), -ENODEV);
	/* a failed create leaves *s alone */
	ASSERT_TRUE(s == (struct hmm_stream *)0x1);
	if (n == 0)
		ASSERT_EQ(hmm_stream_create(&s, 0), -ENODEV);
}

TEST(stream_calls_reject_null)
{
	struct hmm_stream *s = cpu_stream();
	struct hmm_event *e = new_event();

	ASSERT_EQ(hmm_stream_destroy(NULL), -EINVAL);
	ASSERT_EQ(hmm_stream_synchronize(NULL), -EINVAL);
	ASSERT_EQ(hmm_stream_query(NULL), -EINVAL);
	ASSERT_EQ(hmm_stream_add_callback(NULL, nop_cb, NULL), -EINVAL);
	ASSERT_EQ(hmm_stream_add_callback(s, NULL, NULL), -EINVAL);
	ASSERT_EQ(hmm_stream_wait_event(NULL, e), -EINVAL);
	ASSERT_EQ(hmm_stream_wait_event(s, NULL), -EINVAL);
	/* nothing was queued by the rejected calls */
	ASSERT_EQ(hmm_stream_query(s), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(hmm_event_destroy(e), 0);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
}

TEST(event_calls_reject_null)
{
	struct hmm_stream *s = cpu_stream();
	struct hmm_event *e = new_event();
	float ms = 123.0f;

	ASSERT_EQ(hmm_event_create(NULL), -EINVAL);
	ASSERT_EQ(hmm_event_destroy(NULL), -EINVAL);
	ASSERT_EQ(hmm_event_record(NULL, s), -EINVAL);
	ASSERT_EQ(hmm_event_record(NULL, NULL), -EINVAL);
	ASSERT_EQ(hmm_event_synchronize(NULL), -EINVAL);
	ASSERT_EQ(hmm_event_query(NULL), -EINVAL);
	ASSERT_EQ(hmm_event_elapsed_ms(NULL, e, e), -EINVAL);
	ASSERT_EQ(hmm_event_elapsed_ms(&ms, NULL, e), -EINVAL);
	ASSERT_EQ(hmm_event_elapsed_ms(&ms, e, NULL), -EINVAL);
	ASSERT_TRUE(ms == 123.0f);
	/* the rejected record left the event unrecorded */
	ASSERT_EQ(hmm_event_elapsed_ms(&ms, e, e), -ENODATA);
	ASSERT_EQ(hmm_event_destroy(e), 0);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
}

TEST(device_calls_check_the_device)
{
	struct hmm_device_info info;
	int n = hmm_device_count();

	ASSERT_GE(n, 0);
	ASSERT_EQ(hmm_device_synchronize(HMM_CPU), 0);
	ASSERT_EQ(hmm_device_synchronize(n), -ENODEV);
	ASSERT_EQ(hmm_device_synchronize(-2), -ENODEV);
	ASSERT_EQ(hmm_device_synchronize(INT_MAX), -ENODEV);
	ASSERT_EQ(hmm_device_get_info(0, NULL), -EINVAL);
	ASSERT_EQ(hmm_device_get_info(n, &info), -ENODEV);
	ASSERT_EQ(hmm_device_get_info(HMM_CPU, &info), -ENODEV);
	ASSERT_EQ(hmm_device_get_info(-2, &info), -ENODEV);
	/* the count does not change by itself */
	ASSERT_EQ(hmm_device_count(), n);
}

TEST(launch_checks_arguments)
{
	struct hmm_stream *s = cpu_stream();
	struct hmm_dim3 one = { 1, 1, 1 };
	struct order_log *log = calloc(1, sizeof(*log));
	struct log_entry le = { log, 7 };
	const struct hmm_dim3 bad[] = {
		{ 0, 1, 1 }, { 1, 0, 1 }, { 1, 1, 0 }, { 0, 0, 0 },
		/* more than 2^32 - 1 points */
		{ 65536, 65536, 1 }, { 1, 65536, 65536 }, { 65536, 1, 65536 },
		{ 2048, 2048, 1025 },
		{ UINT32_MAX, UINT32_MAX, UINT32_MAX },
		{ UINT32_MAX, 2, 1 },
	};

	ASSERT_TRUE(log != NULL);
	ASSERT_EQ(hmm_launch(NULL, nop_kernel, one, NULL), -EINVAL);
	ASSERT_EQ(hmm_launch(s, NULL, one, NULL), -EINVAL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ASSERT_EQ(hmm_launch(s, log_kernel, bad[i], &le), -EINVAL);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	/* none of them ran */
	ASSERT_EQ(atomic_load(&log->n), 0);
	/* a valid one runs */
	ASSERT_EQ(hmm_launch(s, log_kernel, one, &le), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(atomic_load(&log->n), 1);
	ASSERT_EQ(log->tag[0], 7);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	free(log);
}

TEST(prefetch_async_checks_arguments_now)
{
	struct hmm_stream *s = cpu_stream();
	int n = hmm_device_count();
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	char *p = hmm_malloc(4 * ps);
	static char unmanaged[4096];

	ASSERT_TRUE(p != NULL);
	ASSERT_EQ(hmm_prefetch_async(NULL, ps, HMM_CPU, s), -EINVAL);
	ASSERT_EQ(hmm_prefetch_async(p, 0, HMM_CPU, s), -EINVAL);
	ASSERT_EQ(hmm_prefetch_async(p, ps, n, s), -ENODEV);
	ASSERT_EQ(hmm_prefetch_async(p, ps, -2, s), -ENODEV);
	ASSERT_EQ(hmm_prefetch_async(unmanaged, sizeof(unmanaged), HMM_CPU, s),
		  -EINVAL);
	/* the same checks without a stream */
	ASSERT_EQ(hmm_prefetch_async(NULL, ps, HMM_CPU, NULL), -EINVAL);
	ASSERT_EQ(hmm_prefetch_async(p, ps, n, NULL), -ENODEV);
	ASSERT_EQ(hmm_stream_query(s), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);

	/* valid ones: queued, or synchronous without a stream */
	memset(p, 0x3c, 4 * ps);
	ASSERT_EQ(hmm_prefetch_async(p, 4 * ps, HMM_CPU, s), 0);
	ASSERT_EQ(hmm_prefetch_async(p + 1, 10, HMM_CPU, NULL), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	for (size_t i = 0; i < 4 * ps; i++)
		ASSERT_EQ((unsigned char)p[i], 0x3c);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	ASSERT_EQ(hmm_free(p), 0);
}

/* --- order and errors -------------------------------------------------- */

TEST(items_of_a_stream_run_in_order)
{
	struct order_log *log = calloc(1, sizeof(*log));
	struct log_entry ent[200];
	struct hmm_stream *s = cpu_stream();
	struct hmm_dim3 one = { 1, 1, 1 };
	struct gate g;

	ASSERT_TRUE(log != NULL);
	gate_init(&g);
	/* held back, so that everything below is queued before it runs */
	ASSERT_EQ(hmm_stream_add_callback(s, gate_cb, &g), 0);
	for (int i = 0; i < 200; i++) {
		ent[i].log = log;
		ent[i].tag = i;
		if (i % 3 == 1)
			ASSERT_EQ(hmm_launch(s, log_kernel, one, &ent[i]), 0);
		else
			ASSERT_EQ(hmm_stream_add_callback(s, log_cb, &ent[i]),
				  0);
	}
	ASSERT_EQ(hmm_stream_query(s), -EBUSY);
	ASSERT_EQ(atomic_load(&log->n), 0);
	gate_open(&g);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(hmm_stream_query(s), 0);
	ASSERT_EQ(atomic_load(&log->n), 200);
	for (int i = 0; i < 200; i++) {
		ASSERT_EQ(log->tag[i], i);
		ASSERT_EQ(log->status[i], 0);
	}
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	free(log);
}

/* The points of a launch have all run when the next item starts. */
struct count_args {
	atomic_ulong points;
	unsigned long seen_by_next;
};

static void count_kernel(struct hmm_dim3 idx, struct hmm_dim3 grid,
			 void *arg)
{
	struct count_args *c = arg;

	atomic_fetch_add(&c->points, 1);
}

static void count_cb(struct hmm_stream *s, int status, void *arg)
{
	struct count_args *c = arg;

	c->seen_by_next = atomic_load(&c->points);
}

TEST(a_launch_completes_before_the_next_item)
{
	struct hmm_stream *s = cpu_stream();
	struct hmm_dim3 grid = { 1000, 50, 1 };
	struct count_args c[4];

	for (int i = 0; i < 4; i++) {
		atomic_init(&c[i].points, 0);
		c[i].seen_by_next = 0;
		ASSERT_EQ(hmm_launch(s, count_kernel, grid, &c[i]), 0);
		ASSERT_EQ(hmm_stream_add_callback(s, count_cb, &c[i]), 0);
	}
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(c[i].seen_by_next, 50000);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
}

struct user_args {
	struct hmm_stream *s;
	struct hmm_stream *got_s;
	int status;
	int calls;
	pthread_t thread;
};

static void user_cb(struct hmm_stream *s, int status, void *arg)
{
	struct user_args *u = arg;

	u->got_s = s;
	u->status = status;
	u->calls++;
	u->thread = pthread_self();
}

TEST(callbacks_get_their_stream_data_and_status)
{
	struct user_args u[3] = { { 0 } };
	struct hmm_stream *s = cpu_stream();

	for (int i = 0; i < 3; i++) {
		u[i].status = -12345;
		ASSERT_EQ(hmm_stream_add_callback(s, user_cb, &u[i]), 0);
	}
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(u[i].calls, 1);
		ASSERT_TRUE(u[i].got_s == s);
		ASSERT_EQ(u[i].status, 0);
		/* on the stream's thread, not the caller's */
		ASSERT_FALSE(pthread_equal(u[i].thread, pthread_self()));
		ASSERT_TRUE(pthread_equal(u[i].thread, u[0].thread));
	}
	ASSERT_EQ(hmm_stream_destroy(s), 0);
}

/*
 * Registered memory that the application unmaps without hmm_unregister():
 * still managed, so prefetches of it are queued, and fail when they run
 * (-EFAULT, as the driver's MIGRATE says for an unmapped range).  Freeing
 * managed memory cannot make queued work fail: hmm_free() waits for it.
 */
/* Registered and then unmapped: hmm_unregister() says -ESTALE. */
static char *unmapped_registered(size_t size)
{
	char *m = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(m != MAP_FAILED);
	ASSERT_EQ(hmm_register(m, size), 0);
	ASSERT_EQ(munmap(m, size), 0);
	return m;
}

/*
 * A prefetch that fails when it runs: the stream's error, seen by later
 * callbacks, returned by synchronize once and then cleared; the work
 * after it still runs.
 */
TEST(the_first_error_is_returned_once)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	struct hmm_stream *s = cpu_stream();
	struct user_args u[2] = { { 0 } };
	char *m = unmapped_registered(2 * ps);
	struct gate g;

	gate_init(&g);
	ASSERT_EQ(hmm_stream_add_callback(s, gate_cb, &g), 0);
	ASSERT_EQ(hmm_prefetch_async(m, ps, HMM_CPU, s), 0);
	ASSERT_EQ(hmm_prefetch_async(m + ps, ps, HMM_CPU, s), 0);
	ASSERT_EQ(hmm_stream_add_callback(s, user_cb, &u[0]), 0);
	gate_open(&g);
	ASSERT_EQ(hmm_stream_synchronize(s), -EFAULT);
	ASSERT_EQ(u[0].calls, 1);
	ASSERT_EQ(u[0].status, -EFAULT);
	/* cleared */
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(hmm_stream_add_callback(s, user_cb, &u[1]), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(u[1].status, 0);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	/* its memory is gone: forgotten, nothing touched */
	ASSERT_EQ(hmm_unregister(m), -ESTALE);
}

/* Calls from a stream's own work that would wait for it. */
struct self_args {
	struct hmm_event *later;
	int sync, destroy, devsync, evsync, evdestroy, other;
	struct hmm_stream *other_s;
};

static void self_cb(struct hmm_stream *s, int status, void *arg)
{
	struct self_args *a = arg;

	a->sync = hmm_stream_synchronize(s);
	a->destroy = hmm_stream_destroy(s);
	a->devsync = hmm_device_synchronize(HMM_CPU);
	a->evsync = hmm_event_synchronize(a->later);
	a->evdestroy = hmm_event_destroy(a->later);
	/* waiting for another stream is fine */
	a->other = hmm_stream_synchronize(a->other_s);
}

TEST(waiting_for_itself_is_refused)
{
	struct hmm_stream *s = cpu_stream();
	struct self_args a = { .later = new_event(), .other_s = cpu_stream() };
	struct gate g;

	/* held until the record is queued after the callback */
	gate_init(&g);
	ASSERT_EQ(hmm_stream_add_callback(s, gate_cb, &g), 0);
	ASSERT_EQ(hmm_stream_add_callback(s, self_cb, &a), 0);
	ASSERT_EQ(hmm_event_record(a.later, s), 0);
	gate_open(&g);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(a.sync, -EDEADLK);
	ASSERT_EQ(a.destroy, -EDEADLK);
	ASSERT_EQ(a.devsync, -EDEADLK);
	ASSERT_EQ(a.evsync, -EDEADLK);
	ASSERT_EQ(a.evdestroy, -EDEADLK);
	ASSERT_EQ(a.other, 0);
	/* all still usable */
	ASSERT_EQ(hmm_event_query(a.later), 0);
	ASSERT_EQ(hmm_event_destroy(a.later), 0);
	ASSERT_EQ(hmm_stream_destroy(a.other_s), 0);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
}

/* The same calls from a kernel of a launch on the stream. */
struct self_kernel_args {
	struct hmm_stream *s;
	struct self_args a;
};

static void self_kernel(struct hmm_dim3 idx, struct hmm_dim3 grid, void *arg)
{
	struct self_kernel_args *k = arg;

	self_cb(k->s, 0, &k->a);
}

TEST_TIMEOUT(waiting_for_itself_from_a_kernel_is_refused, 20)
{
	struct self_kernel_args k = {
		.s = cpu_stream(),
		.a = { .later = new_event(), .other_s = cpu_stream() },
	};
	struct gate g;

	gate_init(&g);
	ASSERT_EQ(hmm_stream_add_callback(k.s, gate_cb, &g), 0);
	ASSERT_EQ(hmm_launch(k.s, self_kernel, (struct hmm_dim3){ 1, 1, 1 },
			     &k), 0);
	ASSERT_EQ(hmm_event_record(k.a.later, k.s), 0);
	gate_open(&g);
	ASSERT_EQ(hmm_stream_synchronize(k.s), 0);
	ASSERT_EQ(k.a.sync, -EDEADLK);
	ASSERT_EQ(k.a.destroy, -EDEADLK);
	ASSERT_EQ(k.a.devsync, -EDEADLK);
	ASSERT_EQ(k.a.evsync, -EDEADLK);
	ASSERT_EQ(k.a.evdestroy, -EDEADLK);
	ASSERT_EQ(k.a.other, 0);
	ASSERT_EQ(hmm_event_destroy(k.a.later), 0);
	ASSERT_EQ(hmm_stream_destroy(k.a.other_s), 0);
	ASSERT_EQ(hmm_stream_destroy(k.s), 0);
}

/*
 * A ring of streams whose work synchronizes the next stream: stream i's
 * callback (or kernel) waits at a barrier until all have started, then
 * synchronizes stream i + 1.  The last wait would close the cycle.
 */
#define RING_MAX 4
struct ring {
	int n;
	struct hmm_stream *s[RING_MAX];
	pthread_barrier_t all_in;
	int ret[RING_MAX];
};

struct ring_entry {
	struct ring *r;
	int i;
};

static void ring_step(struct ring_entry *e)
{
	struct ring *r = e->r;

	pthread_barrier_wait(&r->all_in);
	r->ret[e->i] = hmm_stream_synchronize(r->s[(e->i + 1) % r->n]);
}

static void ring_cb(struct hmm_stream *s, int status, void *arg)
{
	ring_step(arg);
}

static void ring_kernel(struct hmm_dim3 idx, struct hmm_dim3 grid, void *arg)
{
	ring_step(arg);
}

static void run_ring(int n, bool kernel_first)
{
	struct ring r = { .n = n };
	struct ring_entry e[RING_MAX];
	int deadlocks = 0;

	ASSERT_EQ(pthread_barrier_init(&r.all_in, NULL, n), 0);
	for (int i = 0; i < n; i++) {
		r.s[i] = cpu_stream();
		e[i] = (struct ring_entry){ &r, i };
	}
	for (int i = 0; i < n; i++) {
		if (i == 0 && kernel_first)
			ASSERT_EQ(hmm_launch(r.s[i], ring_kernel,
					     (struct hmm_dim3){ 1, 1, 1 },
					     &e[i]), 0);
		else
			ASSERT_EQ(hmm_stream_add_callback(r.s[i], ring_cb,
							  &e[i]), 0);
	}
	for (int i = 0; i < n; i++)
		ASSERT_EQ(hmm_stream_synchronize(r.s[i]), 0);
	/* the wait that would have closed the cycle was refused, only it */
	for (int i = 0; i < n; i++) {
		TH_LOG("stream %d: %d", i, r.ret[i]);
		if (r.ret[i] == -EDEADLK)
			deadlocks++;
		else
			ASSERT_EQ(r.ret[i], 0);
	}
	ASSERT_EQ(deadlocks, 1);
	for (int i = 0; i < n; i++)
		ASSERT_EQ(hmm_stream_destroy(r.s[i]), 0);
	pthread_barrier_destroy(&r.all_in);
}

TEST_TIMEOUT(callbacks_synchronizing_each_other_are_edeadlk, 20)
{
	run_ring(2, false);
}

TEST_TIMEOUT(a_cycle_of_three_streams_is_edeadlk, 20)
{
	run_ring(3, false);
}

TEST_TIMEOUT(a_kernel_in_a_cycle_of_waits_is_edeadlk, 20)
{
	run_ring(2, true);
}

static void busy_cb(struct hmm_stream *s, int status, void *arg)
{
	sleep_ms(150);
}

static void keep_status_cb(struct hmm_stream *s, int status, void *arg)
{
	*(int *)arg = status;
}

/* A's callback synchronizes B, whose queued wait needs A's later record. */
struct wait_cycle {
	struct hmm_stream *b;
	int sync_b;
};

static void sync_b_cb(struct hmm_stream *s, int status, void *arg)
{
	struct wait_cycle *w = arg;

	w->sync_b = hmm_stream_synchronize(w->b);
}

TEST_TIMEOUT(a_wait_item_closing_a_cycle_is_edeadlk, 20)
{
	struct hmm_stream *a = cpu_stream(), *b = cpu_stream();
	struct wait_cycle w = { .b = b, .sync_b = 1 };
	struct hmm_event *m = new_event();
	struct gate ga;
	int status = 1;

	gate_init(&ga);
	ASSERT_EQ(hmm_stream_add_callback(a, gate_cb, &ga), 0);
	ASSERT_EQ(hmm_stream_add_callback(a, sync_b_cb, &w), 0);
	ASSERT_EQ(hmm_event_record(m, a), 0);
	/* B is busy while A's callback starts waiting for it */
	ASSERT_EQ(hmm_stream_add_callback(b, busy_cb, NULL), 0);
	ASSERT_EQ(hmm_stream_wait_event(b, m), 0);
	ASSERT_EQ(hmm_stream_add_callback(b, keep_status_cb, &status), 0);
	gate_open(&ga);
	ASSERT_EQ(hmm_stream_synchronize(a), 0);
	ASSERT_EQ(w.sync_b, -EDEADLK);
	/* whichever side found it, both streams went on */
	TH_LOG("status after the wait: %d", status);
	ASSERT_TRUE(status == 0 || status == -EDEADLK);
	hmm_stream_synchronize(b);
	ASSERT_EQ(hmm_stream_synchronize(b), 0);
	ASSERT_EQ(hmm_event_destroy(m), 0);
	ASSERT_EQ(hmm_stream_destroy(a), 0);
	ASSERT_EQ(hmm_stream_destroy(b), 0);
}

/* A chain of waits with no cycle is not refused. */
TEST_TIMEOUT(a_chain_of_waits_is_not_a_cycle, 20)
{
	struct hmm_stream *a = cpu_stream(), *b = cpu_stream();
	struct hmm_stream *c = cpu_stream();
	struct wait_cycle wa = { .b = b, .sync_b = 1 };
	struct wait_cycle wb = { .b = c, .sync_b = 1 };

	ASSERT_EQ(hmm_stream_add_callback(c, busy_cb, NULL), 0);
	ASSERT_EQ(hmm_stream_add_callback(b, sync_b_cb, &wb), 0);
	ASSERT_EQ(hmm_stream_add_callback(a, sync_b_cb, &wa), 0);
	ASSERT_EQ(hmm_stream_synchronize(a), 0);
	ASSERT_EQ(wa.sync_b, 0);
	ASSERT_EQ(wb.sync_b, 0);
	ASSERT_EQ(hmm_stream_destroy(a), 0);
	ASSERT_EQ(hmm_stream_destroy(b), 0);
	ASSERT_EQ(hmm_stream_destroy(c), 0);
}

/* --- events ------------------------------------------------------------ */

TEST(an_event_never_recorded_is_complete)
{
	struct hmm_event *e = new_event(), *f = new_event();
	struct hmm_stream *s = cpu_stream();
	float ms = -1.0f;

	ASSERT_EQ(hmm_event_query(e), 0);
	ASSERT_EQ(hmm_event_synchronize(e), 0);
	ASSERT_EQ(hmm_event_elapsed_ms(&ms, e, f), -ENODATA);
	/* one recorded and complete, the other never */
	ASSERT_EQ(hmm_event_record(f, s), 0);
	ASSERT_EQ(hmm_event_synchronize(f), 0);
	ASSERT_EQ(hmm_event_elapsed_ms(&ms, e, f), -ENODATA);
	ASSERT_EQ(hmm_event_elapsed_ms(&ms, f, e), -ENODATA);
	ASSERT_TRUE(ms == -1.0f);
	/* a stream waiting for it does not wait */
	ASSERT_EQ(hmm_stream_wait_event(s, e), 0);
	ASSERT_EQ(hmm_stream_query(s), 0);
	ASSERT_EQ(hmm_event_destroy(e), 0);
	ASSERT_EQ(hmm_event_destroy(f), 0);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
}

TEST(query_before_and_after_completion)
{
	struct hmm_event *e = new_event(), *f = new_event();
	struct hmm_stream *s = cpu_stream();
	struct gate g;
	float ms;

	gate_init(&g);
	ASSERT_EQ(hmm_event_record(f, s), 0);
	ASSERT_EQ(hmm_stream_add_callback(s, gate_cb, &g), 0);
	ASSERT_EQ(hmm_event_record(e, s), 0);
	ASSERT_EQ(hmm_event_query(e), -EBUSY);
	ASSERT_EQ(hmm_event_synchronize(f), 0);
	ASSERT_EQ(hmm_event_query(f), 0);
	ASSERT_EQ(hmm_event_elapsed_ms(&ms, f, e), -EBUSY);
	ASSERT_EQ(hmm_event_elapsed_ms(&ms, e, f), -EBUSY);
	ASSERT_EQ(hmm_stream_query(s), -EBUSY);
	gate_open(&g);
	ASSERT_EQ(hmm_event_synchronize(e), 0);
	ASSERT_EQ(hmm_event_query(e), 0);
	ASSERT_EQ(hmm_event_elapsed_ms(&ms, f, e), 0);
	ASSERT_GE(ms, 0.0f);
	ASSERT_EQ(hmm_event_elapsed_ms(&ms, e, e), 0);
	ASSERT_TRUE(ms == 0.0f);

	/* recording again replaces the record: pending until it runs */
	gate_init(&g);
	ASSERT_EQ(hmm_stream_add_callback(s, gate_cb, &g), 0);
	ASSERT_EQ(hmm_event_record(e, s), 0);
	ASSERT_EQ(hmm_event_query(e), -EBUSY);
	gate_open(&g);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(hmm_event_query(e), 0);
	ASSERT_EQ(hmm_event_destroy(e), 0);
	ASSERT_EQ(hmm_event_destroy(f), 0);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
}

static void sleep_cb(struct hmm_stream *s, int status, void *arg)
{
	sleep_ms(*(unsigned int *)arg);
}

TEST(elapsed_time_measures_the_work_between)
{
	struct hmm_event *start = new_event(), *end = new_event();
	struct hmm_stream *s = cpu_stream();
	unsigned int ms_sleep = 60;
	double t0, t1;
	float ms = -1.0f, back;

	t0 = now_ms();
	ASSERT_EQ(hmm_event_record(start, s), 0);
	ASSERT_EQ(hmm_stream_add_callback(s, sleep_cb, &ms_sleep), 0);
	ASSERT_EQ(hmm_event_record(end, s), 0);
	ASSERT_EQ(hmm_event_synchronize(end), 0);
	t1 = now_ms();
	ASSERT_EQ(hmm_event_elapsed_ms(&ms, start, end), 0);
	TH_LOG("slept %u ms, elapsed %.3f ms (wall %.3f ms)", ms_sleep, ms,
	       t1 - t0);
	/* at least the sleep, at most what the caller saw pass */
	ASSERT_GE(ms, ms_sleep - 0.5);
	ASSERT_LE(ms, t1 - t0 + 0.5);
	/* the other way round: negative */
	ASSERT_EQ(hmm_event_elapsed_ms(&back, end, start), 0);
	ASSERT_TRUE(back == -ms);
	ASSERT_EQ(hmm_event_destroy(start), 0);
	ASSERT_EQ(hmm_event_destroy(end), 0);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
}

/* Stream B waits for an event recorded on stream A. */
struct flag_args {
	atomic_int a_done;
	int b_saw;
};

static void a_work_cb(struct hmm_stream *s, int status, void *arg)
{
	struct flag_args *f = arg;

	sleep_ms(20);
	atomic_store(&f->a_done, 1);
}

static void b_check_cb(struct hmm_stream *s, int status, void *arg)
{
	struct flag_args *f = arg;

	f->b_saw = atomic_load(&f->a_done);
}

TEST(wait_event_orders_two_streams)
{
	struct hmm_stream *a = cpu_stream(), *b = cpu_stream();
	struct hmm_event *e = new_event();
	struct flag_args f = { .b_saw = -1 };
	struct gate g;

	atomic_init(&f.a_done, 0);
	gate_init(&g);
	ASSERT_EQ(hmm_stream_add_callback(a, gate_cb, &g), 0);
	ASSERT_EQ(hmm_stream_add_callback(a, a_work_cb, &f), 0);
	ASSERT_EQ(hmm_event_record(e, a), 0);
	ASSERT_EQ(hmm_stream_wait_event(b, e), 0);
	ASSERT_EQ(hmm_stream_add_callback(b, b_check_cb, &f), 0);
	/* B is held by A's gate */
	sleep_ms(30);
	ASSERT_EQ(hmm_stream_query(b), -EBUSY);
	ASSERT_EQ(f.b_saw, -1);
	gate_open(&g);
	ASSERT_EQ(hmm_stream_synchronize(b), 0);
	ASSERT_EQ(f.b_saw, 1);
	ASSERT_EQ(hmm_stream_synchronize(a), 0);
	ASSERT_EQ(hmm_event_destroy(e), 0);
	ASSERT_EQ(hmm_stream_destroy(a), 0);
	ASSERT_EQ(hmm_stream_destroy(b), 0);
}

/*
 * A wait is for the record the event had when it was queued: recording
 * the event again elsewhere, or destroying it, does not release it.
 */
TEST(wait_event_waits_for_the_record_it_saw)
{
	struct hmm_stream *a = cpu_stream(), *b = cpu_stream();
	struct hmm_stream *c = cpu_stream();
	struct hmm_event *e = new_event();
	struct flag_args f = { .b_saw = -1 };
	struct gate g;

	atomic_init(&f.a_done, 0);
	gate_init(&g);
	ASSERT_EQ(hmm_stream_add_callback(a, gate_cb, &g), 0);
	ASSERT_EQ(hmm_stream_add_callback(a, a_work_cb, &f), 0);
	ASSERT_EQ(hmm_event_record(e, a), 0);
	ASSERT_EQ(hmm_stream_wait_event(b, e), 0);
	ASSERT_EQ(hmm_stream_add_callback(b, b_check_cb, &f), 0);
	/* a new record on an idle stream completes at once */
	ASSERT_EQ(hmm_event_record(e, c), 0);
	ASSERT_EQ(hmm_event_synchronize(e), 0);
	ASSERT_EQ(hmm_event_query(e), 0);
	ASSERT_EQ(hmm_event_destroy(e), 0);
	sleep_ms(30);
	ASSERT_EQ(hmm_stream_query(b), -EBUSY);
	ASSERT_EQ(f.b_saw, -1);
	gate_open(&g);
	ASSERT_EQ(hmm_stream_synchronize(b), 0);
	ASSERT_EQ(f.b_saw, 1);
	ASSERT_EQ(hmm_stream_destroy(a), 0);
	ASSERT_EQ(hmm_stream_destroy(b), 0);
	ASSERT_EQ(hmm_stream_destroy(c), 0);
}

static void *open_later(void *arg)
{
	sleep_ms(30);
	gate_open(arg);
	return NULL;
}

TEST(event_destroy_waits_for_the_record)
{
	struct hmm_stream *s = cpu_stream();
	struct hmm_event *e = new_event();
	struct flag_args f = { .b_saw = -1 };
	pthread_t t;
	struct gate g;

	atomic_init(&f.a_done, 0);
	gate_init(&g);
	ASSERT_EQ(hmm_stream_add_callback(s, gate_cb, &g), 0);
	ASSERT_EQ(hmm_stream_add_callback(s, a_work_cb, &f), 0);
	ASSERT_EQ(hmm_event_record(e, s), 0);
	ASSERT_EQ(pthread_create(&t, NULL, open_later, &g), 0);
	ASSERT_EQ(hmm_event_destroy(e), 0);
	/* the work recorded before it has run */
	ASSERT_EQ(atomic_load(&f.a_done), 1);
	pthread_join(t, NULL);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
}

/* --- launches ---------------------------------------------------------- */

struct hits {
	struct hmm_dim3 grid;
	atomic_uint *hit;
	atomic_int bad;
	pthread_t threads[64];
	atomic_int nthreads;
};

static void hit_kernel(struct hmm_dim3 idx, struct hmm_dim3 grid, void *arg)
{
	struct hits *h = arg;
	pthread_t self = pthread_self();
	int n;

	if (grid.x != h->grid.x || grid.y != h->grid.y ||
	    grid.z != h->grid.z || idx.x >= grid.x || idx.y >= grid.y ||
	    idx.z >= grid.z) {
		atomic_fetch_add(&h->bad, 1);
		return;
	}
	atomic_fetch_add(&h->hit[idx.x + (size_t)grid.x *
				 (idx.y + (size_t)grid.y * idx.z)], 1);
	/* the set of threads that ran points (racy, enough to compare) */
	n = atomic_load(&h->nthreads);
	for (int i = 0; i < n && i < 64; i++)
		if (pthread_equal(h->threads[i], self))
			return;
	n = atomic_fetch_add(&h->nthreads, 1);
	if (n < 64)
		h->threads[n] = self;
}

static void check_grid(struct hmm_stream *s, struct hmm_dim3 grid)
{
	size_t n = (size_t)grid.x * grid.y * grid.z;
	struct hits h = { .grid = grid };
	struct user_args u = { 0 };

	h.hit = calloc(n, sizeof(*h.hit));
	ASSERT_TRUE(h.hit != NULL);
	ASSERT_EQ(hmm_launch(s, hit_kernel, grid, &h), 0);
	ASSERT_EQ(hmm_stream_add_callback(s, user_cb, &u), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(atomic_load(&h.bad), 0);
	for (size_t i = 0; i < n; i++) {
		if (atomic_load(&h.hit[i]) != 1)
			HMMT_FAIL("grid %ux%ux%u: point %zu ran %u times",
				  grid.x, grid.y, grid.z, i,
				  atomic_load(&h.hit[i]));
	}
	/* on the execution threads: not the caller's, not the stream's */
	ASSERT_GE(atomic_load(&h.nthreads), 1);
	ASSERT_LE(atomic_load(&h.nthreads), sysconf(_SC_NPROCESSORS_ONLN));
	for (int i = 0; i < atomic_load(&h.nthreads) && i < 64; i++) {
		ASSERT_FALSE(pthread_equal(h.threads[i], pthread_self()));
		ASSERT_FALSE(pthread_equal(h.threads[i], u.thread));
	}
	free(h.hit);
}

TEST(launch_covers_every_point_once)
{
	struct hmm_stream *s = cpu_stream();
	const struct hmm_dim3 grids[] = {
		{ 1, 1, 1 }, { 2, 1, 1 }, { 1000, 1, 1 }, { 100003, 1, 1 },
		{ 37, 23, 1 }, { 1, 513, 1 }, { 256, 256, 1 },
		{ 13, 7, 5 }, { 1, 1, 77 }, { 3, 1, 300 }, { 64, 32, 16 },
	};

	for (size_t i = 0; i < sizeof(grids) / sizeof(grids[0]); i++)
		check_grid(s, grids[i]);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
}

/* Launches of several streams at once share the pool and all complete. */
struct par_args {
	struct hmm_stream *s;
	int ok;
};

static void *launch_many(void *arg)
{
	struct par_args *p = arg;
	struct hmm_dim3 grid = { 300, 7, 3 };
	struct hits h = { .grid = grid };

	h.hit = calloc(300 * 7 * 3, sizeof(*h.hit));
	if (!h.hit)
		return NULL;
	for (int r = 0; r < 20; r++)
		if (hmm_launch(p->s, hit_kernel, grid, &h))
			goto out;
	if (hmm_stream_synchronize(p->s) || atomic_load(&h.bad))
		goto out;
	for (int i = 0; i < 300 * 7 * 3; i++)
		if (atomic_load(&h.hit[i]) != 20)
			goto out;
	p->ok = 1;
out:
	free(h.hit);
	return NULL;
}

TEST(concurrent_launches_from_many_streams)
{
	struct par_args p[6];
	pthread_t t[6];

	for (int i = 0; i < 6; i++) {
		p[i].s = cpu_stream();
		p[i].ok = 0;
		ASSERT_EQ(pthread_create(&t[i], NULL, launch_many, &p[i]), 0);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		ASSERT_EQ(p[i].ok, 1);
		ASSERT_EQ(hmm_stream_destroy(p[i].s), 0);
	}
}

/*
 * The child of a fork() has none of the parent's threads: its launches
 * start execution threads of its own.
 */
TEST(launch_after_fork)
{
	struct hmm_stream *s = cpu_stream();
	struct hmm_dim3 grid = { 31, 17, 3 };
	int status;
	pid_t pid;

	check_grid(s, grid); /* the parent's pool is running */
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		s = cpu_stream();
		check_grid(s, grid);
		ASSERT_EQ(hmm_stream_destroy(s), 0);
		ASSERT_EQ(hmm_device_synchronize(HMM_CPU), 0);
		exit(0);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	/* and the parent's still works */
	s = cpu_stream();
	check_grid(s, grid);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
}

/* --- device synchronize, destroy, many streams ------------------------- */

TEST(device_synchronize_waits_for_every_host_stream)
{
	struct hmm_stream *s[4];
	struct flag_args f[4];
	struct gate g;

	gate_init(&g);
	for (int i = 0; i < 4; i++) {
		s[i] = cpu_stream();
		atomic_init(&f[i].a_done, 0);
		if (i == 0)
			ASSERT_EQ(hmm_stream_add_callback(s[i], gate_cb, &g),
				  0);
		ASSERT_EQ(hmm_stream_add_callback(s[i], a_work_cb, &f[i]), 0);
	}
	{
		pthread_t t;

		ASSERT_EQ(pthread_create(&t, NULL, open_later, &g), 0);
		ASSERT_EQ(hmm_device_synchronize(HMM_CPU), 0);
		pthread_join(t, NULL);
	}
	for (int i = 0; i < 4; i++) {
		ASSERT_EQ(atomic_load(&f[i].a_done), 1);
		ASSERT_EQ(hmm_stream_query(s[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(hmm_stream_destroy(s[i]), 0);
	/* no stream at all */
	ASSERT_EQ(hmm_device_synchronize(HMM_CPU), 0);
}

TEST(device_synchronize_returns_a_stream_error)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	struct hmm_stream *ok = cpu_stream(), *bad = cpu_stream();
	char *m = unmapped_registered(ps);
	struct gate g;

	gate_init(&g);
	ASSERT_EQ(hmm_stream_add_callback(bad, gate_cb, &g), 0);
	ASSERT_EQ(hmm_prefetch_async(m, ps, HMM_CPU, bad), 0);
	ASSERT_EQ(hmm_stream_add_callback(ok, nop_cb, NULL), 0);
	gate_open(&g);
	ASSERT_EQ(hmm_device_synchronize(HMM_CPU), -EFAULT);
	/* returned, so cleared */
	ASSERT_EQ(hmm_stream_synchronize(bad), 0);
	ASSERT_EQ(hmm_device_synchronize(HMM_CPU), 0);
	ASSERT_EQ(hmm_stream_destroy(ok), 0);
	ASSERT_EQ(hmm_stream_destroy(bad), 0);
	ASSERT_EQ(hmm_unregister(m), -ESTALE);
}

TEST(destroy_waits_for_pending_work)
{
	struct hmm_stream *s = cpu_stream();
	struct hmm_dim3 grid = { 5000, 1, 1 };
	struct count_args c;
	struct flag_args f;
	struct hmm_event *e = new_event();
	struct gate g;
	pthread_t t;

	atomic_init(&c.points, 0);
	atomic_init(&f.a_done, 0);
	gate_init(&g);
	ASSERT_EQ(hmm_stream_add_callback(s, gate_cb, &g), 0);
	ASSERT_EQ(hmm_stream_add_callback(s, a_work_cb, &f), 0);
	ASSERT_EQ(hmm_launch(s, count_kernel, grid, &c), 0);
	ASSERT_EQ(hmm_event_record(e, s), 0);
	ASSERT_EQ(pthread_create(&t, NULL, open_later, &g), 0);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	ASSERT_EQ(atomic_load(&f.a_done), 1);
	ASSERT_EQ(atomic_load(&c.points), 5000);
	/* the event recorded on it completed, and outlives it */
	ASSERT_EQ(hmm_event_query(e), 0);
	ASSERT_EQ(hmm_event_destroy(e), 0);
	pthread_join(t, NULL);
}

/* Streams run concurrently: two callbacks that each wait for the other. */
struct meet {
	sem_t a, b;
	int a_ok, b_ok;
};

static int timed_wait(sem_t *s, unsigned int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	while (sem_timedwait(s, &ts))
		if (errno != EINTR)
			return -errno;
	return 0;
}

static void meet_a(struct hmm_stream *s, int status, void *arg)
{
	struct meet *m = arg;

	sem_post(&m->a);
	m->a_ok = timed_wait(&m->b, 20000) == 0;
}

static void meet_b(struct hmm_stream *s, int status, void *arg)
{
	struct meet *m = arg;

	sem_post(&m->b);
	m->b_ok = timed_wait(&m->a, 20000) == 0;
}

TEST(different_streams_run_concurrently)
{
	struct hmm_stream *a = cpu_stream(), *b = cpu_stream();
	struct meet m = { .a_ok = -1, .b_ok = -1 };

	ASSERT_EQ(sem_init(&m.a, 0, 0), 0);
	ASSERT_EQ(sem_init(&m.b, 0, 0), 0);
	ASSERT_EQ(hmm_stream_add_callback(a, meet_a, &m), 0);
	ASSERT_EQ(hmm_stream_add_callback(b, meet_b, &m), 0);
	ASSERT_EQ(hmm_stream_synchronize(a), 0);
	ASSERT_EQ(hmm_stream_synchronize(b), 0);
	ASSERT_EQ(m.a_ok, 1);
	ASSERT_EQ(m.b_ok, 1);
	ASSERT_EQ(hmm_stream_destroy(a), 0);
	ASSERT_EQ(hmm_stream_destroy(b), 0);
}

#define MANY 32
#define PER_STREAM 100

struct seq_args {
	atomic_int next;
	int bad;
};

struct seq_entry {
	struct seq_args *seq;
	int want;
};

static void seq_cb(struct hmm_stream *s, int status, void *arg)
{
	struct seq_entry *e = arg;

	if (atomic_fetch_add(&e->seq->next, 1) != e->want)
		e->seq->bad++;
}

TEST(many_streams_at_once)
{
	struct hmm_stream *s[MANY];
	struct seq_args seq[MANY];
	static struct seq_entry ent[MANY][PER_STREAM];
	struct count_args c[MANY];
	struct hmm_dim3 grid = { 64, 4, 1 };

	for (int i = 0; i < MANY; i++) {
		s[i] = cpu_stream();
		atomic_init(&seq[i].next, 0);
		seq[i].bad = 0;
		atomic_init(&c[i].points, 0);
	}
	for (int k = 0; k < PER_STREAM; k++) {
		for (int i = 0; i < MANY; i++) {
			ent[i][k].seq = &seq[i];
			ent[i][k].want = k;
			ASSERT_EQ(hmm_stream_add_callback(s[i], seq_cb,
							  &ent[i][k]), 0);
			if (k % 25 == 0)
				ASSERT_EQ(hmm_launch(s[i], count_kernel, grid,
						     &c[i]), 0);
		}
	}
	ASSERT_EQ(hmm_device_synchronize(HMM_CPU), 0);
	for (int i = 0; i < MANY; i++) {
		ASSERT_EQ(atomic_load(&seq[i].next), PER_STREAM);
		ASSERT_EQ(seq[i].bad, 0);
		ASSERT_EQ(atomic_load(&c[i].points), 4 * 64 * 4);
		ASSERT_EQ(hmm_stream_query(s[i]), 0);
	}
	for (int i = 0; i < MANY; i++)
		ASSERT_EQ(hmm_stream_destroy(s[i]), 0);
}

/* Several threads queue on one stream: each thread's items stay in order. */
struct producer {
	struct hmm_stream *s;
	struct order_log *log;
	struct log_entry ent[250];
	int id, ret;
};

static void *produce(void *arg)
{
	struct producer *p = arg;

	for (int i = 0; i < 250; i++) {
		p->ent[i].log = p->log;
		p->ent[i].tag = p->id * 1000 + i;
		p->ret |= hmm_stream_add_callback(p->s, log_cb, &p->ent[i]);
	}
	return NULL;
}

TEST(threads_queue_on_one_stream)
{
	struct order_log *log = calloc(1, sizeof(*log));
	struct producer *p = calloc(4, sizeof(*p));
	struct hmm_stream *s = cpu_stream();
	pthread_t t[4];
	int last[4] = { -1, -1, -1, -1 };

	ASSERT_TRUE(log && p);
	for (int i = 0; i < 4; i++) {
		p[i].s = s;
		p[i].log = log;
		p[i].id = i;
		ASSERT_EQ(pthread_create(&t[i], NULL, produce, &p[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ASSERT_EQ(p[i].ret, 0);
	}
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(atomic_load(&log->n), 1000);
	for (int i = 0; i < 1000; i++) {
		int id = log->tag[i] / 1000, k = log->tag[i] % 1000;

		ASSERT_EQ(k, last[id] + 1);
		last[id] = k;
	}
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	free(p);
	free(log);
}

/* --- HMM_LOG and hmm_strerror() ---------------------------------------- */

/* What the library prints on stderr during hmm_device_count(). */
static void first_call_output(const char *hmm_log, char *out, size_t len)
{
	int pfd[2], saved;
	ssize_t n;

	if (hmm_log)
		ASSERT_EQ(setenv("HMM_LOG", hmm_log, 1), 0);
	else
		ASSERT_EQ(unsetenv("HMM_LOG"), 0);
	ASSERT_EQ(pipe(pfd), 0);
	saved = dup(2);
	ASSERT_GE(saved, 0);
	ASSERT_EQ(dup2(pfd[1], 2), 2);
	close(pfd[1]);
	/* the first call of the process: discovery says what it found */
	ASSERT_GE(hmm_device_count(), 0);
	ASSERT_EQ(dup2(saved, 2), 2);
	close(saved);
	n = read(pfd[0], out, len - 1);
	close(pfd[0]);
	out[n > 0 ? n : 0] = '\0';
}

TEST(hmm_log_unset_prints_nothing)
{
	char out[4096];

	first_call_output(NULL, out, sizeof(out));
	ASSERT_STREQ(out, "");
}

TEST(hmm_log_error_hides_info)
{
	char out[4096];

	first_call_output("error", out, sizeof(out));
	ASSERT_STREQ(out, "");
}

static void expect_lines(const char *out)
{
	ASSERT_TRUE(out[0] != '\0');
	for (const char *l = out; *l;) {
		const char *nl = strchr(l, '\n');

		ASSERT_EQ(strncmp(l, "libhmm: ", 8), 0);
		ASSERT_TRUE(nl != NULL);
		l = nl + 1;
	}
}

TEST(hmm_log_info_prints_lines)
{
	char out[4096];

	first_call_output("info", out, sizeof(out));
	TH_LOG("%.*s", (int)strcspn(out, "\n"), out);
	expect_lines(out);
}

TEST(hmm_log_1_means_info)
{
	char out[4096];

	first_call_output("1", out, sizeof(out));
	expect_lines(out);
}

TEST(strerror_messages)
{
	char buf[256];

	ASSERT_STREQ(hmm_strerror(0), "success");
	/* both signs */
	ASSERT_STREQ(hmm_strerror(-ENODEV), hmm_strerror(ENODEV));
	ASSERT_TRUE(strstr(hmm_strerror(-ENODEV), "hmmgpu") != NULL);
	ASSERT_TRUE(strstr(hmm_strerror(-EEXIST), "already managed") != NULL);
	ASSERT_TRUE(strstr(hmm_strerror(-ENODATA), "never recorded") != NULL);
	ASSERT_TRUE(strstr(hmm_strerror(-EBUSY), "not") != NULL);
	ASSERT_TRUE(strstr(hmm_strerror(-EDEADLK), "own") != NULL);
	/* others: the C library's */
	snprintf(buf, sizeof(buf), "%s", strerror(EINVAL));
	ASSERT_STREQ(hmm_strerror(-EINVAL), buf);
	/* nonsense values still give a string */
	ASSERT_TRUE(hmm_strerror(INT_MIN) != NULL);
	ASSERT_TRUE(hmm_strerror(INT_MAX) != NULL);
	ASSERT_TRUE(hmm_strerror(-123456) != NULL);
}

TEST_MAIN()
