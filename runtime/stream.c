// SPDX-License-Identifier: MIT
/*
 * stream.c - streams, events, callbacks, device synchronize, teardown.
 *
 * Streams.  A stream is a FIFO of work items and one worker thread that
 * runs them one after the other: a prefetch (hmm__prefetch()), a launch
 * (hmm__launch_run(), launch.c), a callback, an event record, or a wait
 * for an event.  The first error of an item is kept as the stream's
 * error; later items still run (a callback sees the error as its
 * status); hmm_stream_synchronize() returns the error and clears it.
 * Progress is counted: an item takes a sequence number when queued, and
 * "completed" advances when it has run, so synchronize waits for the
 * count it saw when called, not for work queued after it.
 *
 * Events.  Each hmm_event_record() makes a *mark*: a small reference
 * counted object that the record item completes, with the CLOCK_MONOTONIC
 * time of its completion.  The event points at its latest mark; recording
 * again replaces it.  hmm_stream_wait_event() takes a reference to the
 * mark the event has at that moment, so the waiting stream waits for
 * exactly that record, even if the event is recorded again or destroyed
 * meanwhile.  An event with no mark (never recorded) is complete; a record
 * on the NULL stream makes a mark that is complete at once.  Since a wait
 * only ever names a record already queued, waits cannot form a cycle.
 *
 * Handles.  The struct hmm_stream and struct hmm_event pointers that the
 * application holds are not the objects: they are numbers (from one
 * counter, never reused in the process, never 0) that a table of live
 * objects maps to the object, under the table's lock.  A call looks its
 * handle up and takes a reference to the object before it uses it, so a
 * destroyed handle, a handle destroyed by another thread meanwhile, or a
 * pointer that never was a handle, is -EINVAL and never a dereference of
 * freed memory; a stream of one kind passed as the other is not found
 * either.  Handles are never dereferenced: they only need to be distinct.
 *
 * Calls from a stream's own work that would wait for that work (destroy
 * or synchronize the stream, synchronize its device, synchronize or
 * destroy an event still to be recorded on it; hmm_free(),
 * hmm_unregister() and hmm_shutdown(), which wait for every stream) return
 * -EDEADLK instead of hanging.
 *
 * Cycles.  A wait of one stream's work for another stream (a callback or
 * kernel of X synchronizing or destroying stream Y, or waiting for an
 * event recorded on Y; a wait item of X for a record on Y) is an edge
 * X -> Y of a wait-for graph, registered for as long as it waits and
 * live while Y has not reached what is waited for.  A wait that would
 * close a cycle of live edges (Y's work already waits, directly or
 * through other streams, for X) is not made: a call returns -EDEADLK, a
 * wait item fails with -EDEADLK as its stream's error (the call waiting
 * on that stream then sees it).  Whoever blocks last closes the cycle, so
 * every cycle made of these waits is found, whatever the order in which
 * its waits begin.  Waits the library cannot see (a callback blocked on
 * the application's own lock or semaphore) are not in the graph.
 *
 * Locking, in this order:
 *   streams.lock  the list and table of streams and their reference counts
 *   stream.lock   a stream's queue, counts, error and stop flag
 *   ev_lock       the table of events, their reference counts and mark
 *                 pointers, and every mark
 *   wait_lock     the wait-for graph (taken last: nothing under it)
 * ev_lock is taken under stream.lock when a record is queued or completes;
 * stream.lock under streams.lock when the teardown looks for busy streams.
 * No lock is held while an item runs or while waiting for a stream.
 * A stream is freed when its last reference goes: the table's, dropped by
 * hmm_stream_destroy() after the worker has drained the queue and exited,
 * and those every call takes while it uses the stream.  An event likewise.
 *
 * fork(): streams and events belong to the process that created them
 * (their threads exist only there).  In a child, every call naming one of
 * the parent's returns -ECHILD at once, before touching anything the
 * parent's threads may have held, and the calls that wait for all streams
 * (hmm_device_synchronize(), hmm_free()) skip them.  They stay in the
 * child's tables, unused.  The locks of the tables are held across fork()
 * so that the child can create streams and events of its own.
 *
 * Teardown.  hmm_shutdown() destroys the streams and events of the process
 * still alive, then has launch.c join the execution threads and memory.c
 * free what it no longer needs.  The library's destructor does the same at
 * exit() when that cannot block: not from a thread of the library, and
 * only when no stream has work queued and no launch runs.
 */
#define _GNU_SOURCE
#include "hmm_private.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

/* --- handle tables ------------------------------------------------------ */

/* An object's entry in a handle table. */
struct handle_node {
	uint64_t id;               /* the handle, as a number */
	struct handle_node *next;  /* in its bucket */
};

/* Live objects by handle, hashed on the number; its owner's lock. */
struct handle_table {
	struct handle_node **bucket;
	size_t nbuckets; /* a power of two, or 0 */
	size_t count;
};

/* Handles of streams and events: never 0, never reused. */
static atomic_uint_least64_t handle_seq;

static uint64_t handle_new(void)
{
	/* on a 32-bit system the numbers wrap after 2^32 objects */
	uint64_t id;

	do
		id = (uintptr_t)(atomic_fetch_add(&handle_seq, 1) + 1);
	while (!id);
	return id;
}

static uint64_t handle_id(const void *h)
{
	return (uint64_t)(uintptr_t)h;
}

static void *handle_ptr(uint64_t id)
{
	return (void *)(uintptr_t)id;
}

static struct handle_node *table_find(const struct handle_table *t,
				      uint64_t id)
{
	struct handle_node *n;

	if (!t->nbuckets)
		return NULL;
	for (n = t->bucket[id & (t->nbuckets - 1)]; n; n = n->next)
		if (n->id == id)
			return n;
	return NULL;
}

/* Adds @n (its id set); 0 or -ENOMEM. */
static int table_add(struct handle_table *t, struct handle_node *n)
{
	struct handle_node **b;

	if (t->count >= t->nbuckets) {
		size_t nb = t->nbuckets ? 2 * t->nbuckets : 64;

		b = calloc(nb, sizeof(*b));
		if (!b && !t->nbuckets)
			return -ENOMEM;
		if (b) {
			/* rehash; a failed growth only makes chains longer */
			for (size_t i = 0; i < t->nbuckets; i++) {
				while (t->bucket[i]) {
					struct handle_node *m = t->bucket[i];

					t->bucket[i] = m->next;
					m->next = b[m->id & (nb - 1)];
					b[m->id & (nb - 1)] = m;
				}
			}
			free(t->bucket);
			t->bucket = b;
			t->nbuckets = nb;
		}
	}
	b = &t->bucket[n->id & (t->nbuckets - 1)];
	n->next = *b;
	*b = n;
	t->count++;
	return 0;
}

static void table_del(struct handle_table *t, struct handle_node *n)
{
	struct handle_node **pp = &t->bucket[n->id & (t->nbuckets - 1)];

	while (*pp != n)
		pp = &(*pp)->next;
	*pp = n->next;
	t->count--;
}

/* Frees the buckets of an empty table. */
static void table_release(struct handle_table *t)
{
	if (t->count)
		return;
	free(t->bucket);
	t->bucket = NULL;
	t->nbuckets = 0;
}

/* --- objects ------------------------------------------------------------ */

struct stream;

/* One hmm_event_record(). */
struct mark {
	unsigned int refs;           /* ev_lock */
	bool done;                   /* ev_lock */
	uint64_t ts_ns;              /* when done; ev_lock */
	const struct stream *stream; /* recorded on (compared only), or NULL */
	pthread_cond_t cond;         /* done became true; with ev_lock */
};

struct event {
	struct handle_node node; /* in ev_table; ev_lock */
	pid_t pid;               /* the process that created it */
	unsigned int refs;       /* the table's and the callers'; ev_lock */
	struct mark *mark; /* the latest record, NULL when never; ev_lock */
};

enum item_kind {
	ITEM_PREFETCH,
	ITEM_LAUNCH,
	ITEM_CALLBACK,
	ITEM_RECORD,
	ITEM_WAIT,
	ITEM_MEMOP,
};

struct item {
	struct item *next;
	enum item_kind kind;
	union {
		struct {
			const void *ptr;
			size_t size;
			int dst;
		} prefetch;
		struct {
			hmm_kernel_fn fn;
			struct hmm_dim3 grid;
			void *args;
		} launch;
		struct {
			hmm_stream_callback_fn fn;
			void *user_data;
		} callback;
		struct mark *mark; /* ITEM_RECORD, ITEM_WAIT: a reference */
		struct hmm__memop memop;
	};
};

struct stream {
	struct handle_node node; /* id: handle and creation order */
	pid_t pid;               /* the process that created it */
	int dev;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t work;      /* an item was queued, or stop; with lock */
	pthread_cond_t progress;  /* completed advanced; with lock */
	struct item *head, *tail; /* lock */
	/*
	 * The item the thread runs, kept reachable from the stream: in a
	 * fork child, where that thread does not exist, it would otherwise
	 * be pointed to by nothing (valgrind: "definitely lost"); lock.
	 */
	struct item *running;
	uint64_t queued;          /* items queued so far; lock */
	uint64_t completed;       /* items run so far; lock (atomic stores,
				     read without it by the wait graph) */
	int error;                /* first error not returned yet; lock */
	bool stop;                /* being destroyed: queue nothing; lock */
	/* streams.lock: */
	unsigned int refs;
	struct stream *prev, *next;
};

static struct {
	pthread_once_t once;
	pthread_mutex_t lock;
	struct stream *head, *tail; /* in creation (id) order */
	struct handle_table table;
} streams = {
	.once = PTHREAD_ONCE_INIT,
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static struct handle_table ev_table; /* ev_lock */

/* The stream whose worker runs the calling thread, if any. */
static __thread struct stream *current_stream;

static void fork_prepare(void)
{
	pthread_mutex_lock(&streams.lock);
	pthread_mutex_lock(&ev_lock);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&ev_lock);
	pthread_mutex_unlock(&streams.lock);
}

static void streams_once(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_parent);
}

static void streams_init(void)
{
	pthread_once(&streams.once, streams_once);
}

/*
 * The stream whose work the calling thread runs: its worker (an item), or
 * an execution thread (a kernel of a launch queued on it); NULL otherwise.
 */
static struct stream *work_stream(void)
{
	if (current_stream)
		return current_stream;
	return (struct stream *)hmm__exec_stream();
}

/* Whether the caller is a thread of the library running stream work. */
static bool on_library_thread(void)
{
	return current_stream || hmm__in_exec_thread();
}

/* --- the wait-for graph ------------------------------------------------ */

/* A wait of stream work for a stream: an edge from -> to. */
struct waiter {
	const struct stream *from;  /* whose work waits */
	const struct stream *to;    /* for which stream */
	uint64_t target;            /* until to->completed reaches it, or */
	const struct mark *mark;    /* until this mark is done */
	struct waiter *next;
};

static pthread_mutex_t wait_lock = PTHREAD_MUTEX_INITIALIZER;
static struct waiter *waiters; /* wait_lock */

/* Whether @w still waits; the waiter holds a reference to what it names. */
static bool waiter_live(const struct waiter *w)
{
	if (w->mark)
		return !__atomic_load_n(&w->mark->done, __ATOMIC_ACQUIRE);
	return __atomic_load_n(&w->to->completed, __ATOMIC_ACQUIRE) <
	       w->target;
}

/*
 * Whether the work of @at waits, through live edges, for @goal; @depth
 * bounds the walk (the graph has no cycle, this is only a guard).
 * wait_lock held.
 */
static bool waits_for_locked(const struct stream *at, const struct stream *goal,
			     unsigned int depth)
{
	if (at == goal)
		return true;
	if (!depth)
		return false;
	for (const struct waiter *w = waiters; w; w = w->next)
		if (w->from == at && waiter_live(w) &&
		    waits_for_locked(w->to, goal, depth - 1))
			return true;
	return false;
}

/*
 * Registers @w (from, to and target or mark set; from may be NULL, for a
 * thread that runs no stream work: nothing waits for it), or returns
 * -EDEADLK when the wait would close a cycle (@w is not registered then).
 */
static int wait_begin(struct waiter *w)
{
	unsigned int n = 1;
	int ret = 0;

	if (!w->from)
		return 0;
	pthread_mutex_lock(&wait_lock);
	for (const struct waiter *o = waiters; o; o = o->next)
		n++;
	if (waits_for_locked(w->to, w->from, n)) {
		ret = -EDEADLK;
	} else {
		w->next = waiters;
		waiters = w;
	}
	pthread_mutex_unlock(&wait_lock);
	if (ret)
		hmm__log(HMM_LOG_INFO, "a wait of stream work would close a "
			 "cycle of waits between streams: -EDEADLK");
	return ret;
}

static void wait_end(struct waiter *w)
{
	struct waiter **pp;

	if (!w->from)
		return;
	pthread_mutex_lock(&wait_lock);
	for (pp = &waiters; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	pthread_mutex_unlock(&wait_lock);
}

/* --- marks ------------------------------------------------------------- */

static struct mark *mark_new(const struct stream *s)
{
	struct mark *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->refs = 1;
	m->stream = s;
	pthread_cond_init(&m->cond, NULL);
	return m;
}

/* Drops a reference; ev_lock held. */
static void mark_put_locked(struct mark *m)
{
	if (!m || --m->refs)
		return;
	pthread_cond_destroy(&m->cond);
	free(m);
}

static void mark_put(struct mark *m)
{
	pthread_mutex_lock(&ev_lock);
	mark_put_locked(m);
	pthread_mutex_unlock(&ev_lock);
}

static void mark_complete(struct mark *m)
{
	uint64_t now = hmm__now_ns();

	pthread_mutex_lock(&ev_lock);
	m->ts_ns = now;
	__atomic_store_n(&m->done, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&m->cond);
	mark_put_locked(m);
	pthread_mutex_unlock(&ev_lock);
}

/* Waits for @m to complete; ev_lock held. */
static void mark_wait_locked(struct mark *m)
{
	while (!m->done)
		pthread_cond_wait(&m->cond, &ev_lock);
}

/*
 * Waits for @m (a reference held) as a wait of the calling thread's
 * stream work, if any: 0, or -EDEADLK when that would close a cycle of
 * waits (not waited then).  ev_lock held.
 */
static int mark_wait(struct mark *m)
{
	struct waiter w = { .from = work_stream(), .to = m->stream,
			    .mark = m };
	int ret;

	if (m->done)
		return 0;
	ret = wait_begin(&w);
	if (ret)
		return ret;
	mark_wait_locked(m);
	wait_end(&w);
	return 0;
}

/* --- events: handles ---------------------------------------------------- */

/*
 * The event of handle @h, with a reference taken: 0, -EINVAL (NULL, not
 * a live event) or -ECHILD (an event of the parent process).
 */
static int event_get(const struct hmm_event *h, struct event **ep)
{
	struct handle_node *n;
	int ret = -EINVAL;

	if (!h)
		return -EINVAL;
	pthread_mutex_lock(&ev_lock);
	n = table_find(&ev_table, handle_id(h));
	if (n) {
		struct event *e = container_of(n, struct event, node);

		if (e->pid != getpid()) {
			ret = -ECHILD;
		} else {
			e->refs++;
			*ep = e;
			ret = 0;
		}
	}
	pthread_mutex_unlock(&ev_lock);
	return ret;
}

/* Drops a reference; ev_lock held. */
static void event_put_locked(struct event *e)
{
	if (--e->refs)
		return;
	mark_put_locked(e->mark);
	free(e);
}

static void event_put(struct event *e)
{
	pthread_mutex_lock(&ev_lock);
	event_put_locked(e);
	pthread_mutex_unlock(&ev_lock);
}

/*
 * Waits for the latest record of @e, if any: 0, or -EDEADLK when that
 * record is still queued on the calling worker's own stream.
 */
static int event_wait(struct event *e)
{
	struct mark *m;
	int ret;

	pthread_mutex_lock(&ev_lock);
	m = e->mark;
	if (!m || m->done) {
		pthread_mutex_unlock(&ev_lock);
		return 0;
	}
	if (m->stream == work_stream()) {
		pthread_mutex_unlock(&ev_lock);
		return -EDEADLK;
	}
	m->refs++;
	ret = mark_wait(m);
	mark_put_locked(m);
	pthread_mutex_unlock(&ev_lock);
	return ret;
}

/* --- streams ----------------------------------------------------------- */

static struct hmm_stream *stream_handle(const struct stream *s)
{
	return handle_ptr(s->node.id);
}

static void stream_free(struct stream *s)
{
	pthread_cond_destroy(&s->progress);
	pthread_cond_destroy(&s->work);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Drops a reference; streams.lock held. */
static void stream_put_locked(struct stream *s)
{
	if (!--s->refs)
		stream_free(s);
}

static void stream_put(struct stream *s)
{
	pthread_mutex_lock(&streams.lock);
	stream_put_locked(s);
	pthread_mutex_unlock(&streams.lock);
}

/*
 * The stream of handle @h, with a reference taken: 0, -EINVAL (NULL, not
 * a live stream) or -ECHILD (a stream of the parent process).
 */
static int stream_get(const struct hmm_stream *h, struct stream **sp)
{
	struct handle_node *n;
	int ret = -EINVAL;

	if (!h)
		return -EINVAL;
	pthread_mutex_lock(&streams.lock);
	n = table_find(&streams.table, handle_id(h));
	if (n) {
		struct stream *s = container_of(n, struct stream, node);

		if (s->pid != getpid()) {
			ret = -ECHILD;
		} else {
			s->refs++;
			*sp = s;
			ret = 0;
		}
	}
	pthread_mutex_unlock(&streams.lock);
	return ret;
}

/*
 * Takes @s out of the table and the list: its handle is dead from now on,
 * and the table's reference is the caller's.  streams.lock held.
 */
static void stream_unlink_locked(struct stream *s)
{
	table_del(&streams.table, &s->node);
	if (s->prev)
		s->prev->next = s->next;
	else
		streams.head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		streams.tail = s->prev;
	s->prev = s->next = NULL;
}

/* Lets the worker of an unlinked stream drain its queue, and joins it. */
static void stream_stop(struct stream *s)
{
	/* the worker drains the queue before it looks at stop */
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
}

/*
 * Waits until the work queued on @s when called has run; returns the
 * stream's error, and clears it when @clear.
 */
static int stream_wait(struct stream *s, bool clear)
{
	struct waiter w = { .from = work_stream(), .to = s };
	int ret;

	pthread_mutex_lock(&s->lock);
	w.target = s->queued;
	if (s->completed < w.target) {
		ret = wait_begin(&w);
		if (ret) {
			pthread_mutex_unlock(&s->lock);
			return ret;
		}
		while (s->completed < w.target)
			pthread_cond_wait(&s->progress, &s->lock);
		wait_end(&w);
	}
	ret = s->error;
	if (clear)
		s->error = 0;
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static int run_item(struct stream *s, struct item *it, int status)
{
	int ret = 0;
	hmm__mark_stream((uintptr_t)stream_handle(s), s->dev);

	switch (it->kind) {
	case ITEM_PREFETCH:
		ret = hmm__prefetch(it->prefetch.ptr, it->prefetch.size,
				    it->prefetch.dst);
		if (ret)
			hmm__log(HMM_LOG_INFO, "stream prefetch of %p+%zu to "
				 "%d: %s", it->prefetch.ptr, it->prefetch.size,
				 it->prefetch.dst, hmm_strerror(-ret));
		break;
	case ITEM_LAUNCH:
		ret = hmm__launch_run(s->dev, it->launch.fn, it->launch.grid,
				      it->launch.args, s);
		if (ret)
			hmm__log(HMM_LOG_INFO, "launch on %d: %s", s->dev,
				 hmm_strerror(-ret));
		break;
	case ITEM_CALLBACK:
		it->callback.fn(stream_handle(s), status,
				it->callback.user_data);
		break;
	case ITEM_RECORD:
		break; /* completed with the stream's count, see below */
	case ITEM_WAIT:
		pthread_mutex_lock(&ev_lock);
		ret = mark_wait(it->mark);
		mark_put_locked(it->mark);
		pthread_mutex_unlock(&ev_lock);
		if (ret)
			hmm__log(HMM_LOG_ERROR, "stream wait for an event: "
				 "a cycle of waits between streams, not "
				 "waited (%s)", hmm_strerror(-ret));
		break;
	case ITEM_MEMOP:
		ret = hmm__memop_run(&it->memop);
		hmm__memop_release(&it->memop);
		if (ret)
			hmm__log(HMM_LOG_INFO, "stream memory operation %d: %s",
				 it->memop.kind, hmm_strerror(-ret));
		break;
	}
	return ret;
}

static void *stream_thread(void *arg)
{
	struct stream *s = arg;

	current_stream = s;
	/* callbacks are the application's code: its fault handler applies */
	hmm__unblock_fault_signals();
	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct item *it;
		int status, ret;

		while (!s->head && !s->stop)
			pthread_cond_wait(&s->work, &s->lock);
		it = s->head;
		if (!it)
			break; /* stopped, and nothing left */
		s->head = it->next;
		if (!s->head)
			s->tail = NULL;
		s->running = it;
		status = s->error;
		pthread_mutex_unlock(&s->lock);

		ret = run_item(s, it, status);

		pthread_mutex_lock(&s->lock);
		if (ret && !s->error)
			s->error = ret;
		/*
		 * An event completes together with the stream's count, so
		 * that nobody sees the event complete and the stream busy
		 * with the same item, or the other way round.
		 */
		if (it->kind == ITEM_RECORD)
			mark_complete(it->mark);
		__atomic_store_n(&s->completed, s->completed + 1,
				 __ATOMIC_RELEASE);
		pthread_cond_broadcast(&s->progress);
		s->running = NULL;
		free(it);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static struct item *item_new(enum item_kind kind)
{
	struct item *it = calloc(1, sizeof(*it));

	if (it)
		it->kind = kind;
	return it;
}

/* Appends @it; s->lock held, s->stop false. */
static void enqueue_locked(struct stream *s, struct item *it)
{
	if (s->tail)
		s->tail->next = it;
	else
		s->head = it;
	s->tail = it;
	s->queued++;
	pthread_cond_signal(&s->work);
}

/*
 * Queues @it on @s: 0, or -EINVAL when @s is being destroyed by another
 * thread (the caller still owns @it then).
 */
static int enqueue(struct stream *s, struct item *it)
{
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	if (s->stop)
		ret = -EINVAL;
	else
		enqueue_locked(s, it);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

HMM_EXPORT int hmm_stream_create(struct hmm_stream **sp, int dev)
{
	HMM_KEEP_ERRNO();
	struct stream *s;
	sigset_t all, old;
	char name[16];
	int ret;

	if (!sp)
		return -EINVAL;
	if (dev != HMM_CPU && hmm__device_fd(dev) < 0)
		return -ENODEV;
	streams_init();

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dev = dev;
	s->pid = getpid();
	s->refs = 1; /* the table's */
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->work, NULL);
	pthread_cond_init(&s->progress, NULL);

	/* the application's signals are not for this thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&s->thread, NULL, stream_thread, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		hmm__log(HMM_LOG_ERROR, "stream thread: %s",
			 hmm_strerror(ret));
		stream_free(s);
		return ret == ENOMEM ? -ENOMEM : -EAGAIN;
	}
	snprintf(name, sizeof(name), "hmm-stream%d", dev);
	pthread_setname_np(s->thread, name);

	/* numbered under the lock: the list stays in handle order */
	pthread_mutex_lock(&streams.lock);
	s->node.id = handle_new();
	ret = table_add(&streams.table, &s->node);
	if (!ret) {
		s->prev = streams.tail;
		if (streams.tail)
			streams.tail->next = s;
		else
			streams.head = s;
		streams.tail = s;
	}
	pthread_mutex_unlock(&streams.lock);
	if (ret) {
		stream_stop(s);
		stream_free(s);
		return ret;
	}

	*sp = stream_handle(s);
	return 0;
}

HMM_EXPORT int hmm_stream_destroy(struct hmm_stream *h)
{
	HMM_KEEP_ERRNO();
	struct handle_node *n;
	struct stream *s;
	int ret = 0;

	if (!h)
		return -EINVAL;
	/*
	 * From stream work, a destroy that would close a cycle of waits is
	 * refused before the handle dies: its queue is waited for first.
	 */
	if (work_stream() && !stream_get(h, &s)) {
		ret = s == work_stream() ? -EDEADLK : stream_wait(s, false);
		stream_put(s);
		if (ret == -EDEADLK)
			return ret;
		ret = 0;
	}
	/* found and unlinked at once: of two destroys, one finds nothing */
	pthread_mutex_lock(&streams.lock);
	n = table_find(&streams.table, handle_id(h));
	s = n ? container_of(n, struct stream, node) : NULL;
	if (!s)
		ret = -EINVAL;
	else if (s->pid != getpid())
		ret = -ECHILD;
	else if (s == work_stream())
		ret = -EDEADLK;
	else
		stream_unlink_locked(s);
	pthread_mutex_unlock(&streams.lock);
	if (ret)
		return ret;

	stream_stop(s);
	stream_put(s);
	return 0;
}

HMM_EXPORT int hmm_stream_synchronize(struct hmm_stream *h)
{
	HMM_KEEP_ERRNO();
	HMM_MARK_SYNC("hmm_stream_synchronize", h, HMM__MARK_NO_DEV);
	struct stream *s;
	int ret;

	ret = stream_get(h, &s);
	if (ret)
		return ret;
	if (s == work_stream())
		ret = -EDEADLK;
	else
		ret = stream_wait(s, true);
	stream_put(s);
	return ret;
}

HMM_EXPORT int hmm_stream_query(struct hmm_stream *h)
{
	HMM_KEEP_ERRNO();
	struct stream *s;
	int ret;

	ret = stream_get(h, &s);
	if (ret)
		return ret;
	pthread_mutex_lock(&s->lock);
	ret = s->completed == s->queued ? 0 : -EBUSY;
	pthread_mutex_unlock(&s->lock);
	stream_put(s);
	return ret;
}

/* Queues @it on stream @h, or frees it: 0, -EINVAL, -ECHILD. */
static int queue_item(struct hmm_stream *h, struct item *it)
{
	struct stream *s;
	int ret;

	ret = stream_get(h, &s);
	if (!ret) {
		ret = enqueue(s, it);
		stream_put(s);
	}
	if (ret)
		free(it);
	return ret;
}

HMM_EXPORT int hmm_stream_add_callback(struct hmm_stream *h,
				       hmm_stream_callback_fn fn,
				       void *user_data)
{
	HMM_KEEP_ERRNO();
	struct item *it;

	if (!h || !fn)
		return -EINVAL;
	it = item_new(ITEM_CALLBACK);
	if (!it)
		return -ENOMEM;
	it->callback.fn = fn;
	it->callback.user_data = user_data;
	return queue_item(h, it);
}

int hmm__stream_memop(struct hmm_stream *h, const struct hmm__memop *op)
{
	struct item *it = item_new(ITEM_MEMOP);
	struct hmm__memop copy = *op;
	int ret;

	if (!it) {
		hmm__memop_release(&copy);
		return -ENOMEM;
	}
	it->memop = *op;
	ret = queue_item(h, it);
	if (ret)
		hmm__memop_release(&copy);
	return ret;
}

int hmm__stream_launch(struct hmm_stream *h, hmm_kernel_fn kernel,
		       struct hmm_dim3 grid, void *args)
{
	struct item *it = item_new(ITEM_LAUNCH);

	if (!it)
		return -ENOMEM;
	it->launch.fn = kernel;
	it->launch.grid = grid;
	it->launch.args = args;
	return queue_item(h, it);
}

HMM_EXPORT int hmm_prefetch_async(const void *ptr, size_t size, int dst,
				  struct hmm_stream *h)
{
	HMM_KEEP_ERRNO();
	HMM_MARK_CALL("hmm_prefetch_async", h, NULL);
	struct item *it;
	int ret;

	ret = hmm__prefetch_check(ptr, size, dst);
	if (ret)
		return ret;
	if (!h)
		return hmm__prefetch(ptr, size, dst);
	it = item_new(ITEM_PREFETCH);
	if (!it)
		return -ENOMEM;
	it->prefetch.ptr = ptr;
	it->prefetch.size = size;
	it->prefetch.dst = dst;
	return queue_item(h, it);
}

/*
 * The first stream of this process created after stream @after_id and
 * still there, of device @dev (any device when @any), with a reference
 * taken; NULL when none.  streams.lock held.
 */
static struct stream *next_stream_locked(int dev, bool any, uint64_t after_id)
{
	pid_t self = getpid();

	for (struct stream *s = streams.head; s; s = s->next) {
		if (s->node.id > after_id && (any || s->dev == dev) &&
		    s->pid == self) {
			s->refs++;
			return s;
		}
	}
	return NULL;
}

/*
 * Waits for the streams of @dev (all streams when @any), one at a time in
 * creation order, with no lock held while waiting: streams may come and
 * go meanwhile, and streams created during the call are waited for too.
 * Return: the first error found (cleared when @clear), or 0.
 */
static int streams_wait(int dev, bool any, bool clear)
{
	struct stream *s;
	uint64_t last = 0;
	int first = 0;

	pthread_mutex_lock(&streams.lock);
	while ((s = next_stream_locked(dev, any, last))) {
		int ret;

		pthread_mutex_unlock(&streams.lock);
		ret = stream_wait(s, clear);
		if (ret && (!first || ret == -EDEADLK))
			first = ret;
		pthread_mutex_lock(&streams.lock);
		last = s->node.id;
		stream_put_locked(s);
	}
	pthread_mutex_unlock(&streams.lock);
	return first;
}

HMM_EXPORT int hmm_device_synchronize(int dev)
{
	HMM_KEEP_ERRNO();
	HMM_MARK_SYNC("hmm_device_synchronize", NULL, dev);
	struct stream *self = work_stream();

	if (dev != HMM_CPU && (dev < 0 || dev >= hmm__device_count()))
		return -ENODEV;
	if (self && self->dev == dev)
		return -EDEADLK;
	return streams_wait(dev, false, true);
}

int hmm__streams_wait_all(void)
{
	if (on_library_thread())
		return -EDEADLK;
	/* the errors stay for the application's synchronize calls */
	streams_wait(HMM_CPU, true, false);
	return 0;
}

/* --- events ------------------------------------------------------------ */

HMM_EXPORT int hmm_event_create(struct hmm_event **ep)
{
	HMM_KEEP_ERRNO();
	struct event *e;
	int ret;

	if (!ep)
		return -EINVAL;
	streams_init();
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->pid = getpid();
	e->refs = 1; /* the table's */
	pthread_mutex_lock(&ev_lock);
	e->node.id = handle_new();
	ret = table_add(&ev_table, &e->node);
	pthread_mutex_unlock(&ev_lock);
	if (ret) {
		free(e);
		return ret;
	}
	*ep = handle_ptr(e->node.id);
	return 0;
}

HMM_EXPORT int hmm_event_destroy(struct hmm_event *h)
{
	HMM_KEEP_ERRNO();
	struct event *e;
	int ret;

	ret = event_get(h, &e);
	if (ret)
		return ret;
	ret = event_wait(e);
	pthread_mutex_lock(&ev_lock);
	if (!ret) {
		if (table_find(&ev_table, e->node.id) == &e->node) {
			table_del(&ev_table, &e->node);
			e->refs--; /* the table's; the caller's is left */
		} else {
			ret = -EINVAL; /* another thread destroyed it */
		}
	}
	event_put_locked(e);
	pthread_mutex_unlock(&ev_lock);
	return ret;
}

/* Makes @m the latest record of @e; ev_lock held. */
static void event_set_mark_locked(struct event *e, struct mark *m)
{
	struct mark *old = e->mark;

	e->mark = m;
	mark_put_locked(old);
}

/* hmm_event_record() on the NULL stream: a record complete at once. */
static int event_record_now(struct event *e)
{
	struct mark *m = mark_new(NULL);

	if (!m)
		return -ENOMEM;
	m->ts_ns = hmm__now_ns();
	m->done = true;
	pthread_mutex_lock(&ev_lock);
	event_set_mark_locked(e, m);
	pthread_mutex_unlock(&ev_lock);
	return 0;
}

HMM_EXPORT int hmm_event_record(struct hmm_event *eh, struct hmm_stream *sh)
{
	HMM_KEEP_ERRNO();
	struct item *it = NULL;
	struct mark *m = NULL;
	struct stream *s;
	struct event *e;
	int ret;

	ret = event_get(eh, &e);
	if (ret)
		return ret;
	if (!sh) {
		ret = event_record_now(e);
		goto out_event;
	}
	ret = stream_get(sh, &s);
	if (ret)
		goto out_event;
	it = item_new(ITEM_RECORD);
	m = mark_new(s);
	if (!it || !m) {
		ret = -ENOMEM;
		goto out_free;
	}
	m->refs++; /* the event's and the item's */
	it->mark = m;

	/* the event takes the mark only if the record is queued */
	pthread_mutex_lock(&s->lock);
	if (s->stop) {
		ret = -EINVAL;
	} else {
		pthread_mutex_lock(&ev_lock);
		event_set_mark_locked(e, m);
		pthread_mutex_unlock(&ev_lock);
		enqueue_locked(s, it);
		it = NULL;
		m = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	if (m)
		m->refs--; /* the item's, never handed out */
out_free:
	free(it);
	if (m)
		mark_put(m);
	stream_put(s);
out_event:
	event_put(e);
	return ret;
}

HMM_EXPORT int hmm_stream_wait_event(struct hmm_stream *sh,
				     struct hmm_event *eh)
{
	HMM_KEEP_ERRNO();
	struct item *it;
	struct mark *m;
	struct stream *s;
	struct event *e;
	int ret;

	if (!sh || !eh)
		return -EINVAL;
	ret = stream_get(sh, &s);
	if (ret)
		return ret;
	ret = event_get(eh, &e);
	if (ret)
		goto out_stream;
	it = item_new(ITEM_WAIT);
	if (!it) {
		ret = -ENOMEM;
		goto out_event;
	}

	pthread_mutex_lock(&ev_lock);
	m = e->mark;
	if (!m || m->done) {
		/* never recorded, or already complete: nothing to wait for */
		pthread_mutex_unlock(&ev_lock);
		free(it);
		goto out_event;
	}
	m->refs++;
	pthread_mutex_unlock(&ev_lock);

	it->mark = m;
	ret = enqueue(s, it);
	if (ret) {
		mark_put(m);
		free(it);
	}
out_event:
	event_put(e);
out_stream:
	stream_put(s);
	return ret;
}

HMM_EXPORT int hmm_event_synchronize(struct hmm_event *h)
{
	HMM_KEEP_ERRNO();
	HMM_MARK_SYNC("hmm_event_synchronize", NULL, HMM__MARK_NO_DEV);
	struct event *e;
	int ret;

	ret = event_get(h, &e);
	if (ret)
		return ret;
	ret = event_wait(e);
	event_put(e);
	return ret;
}

HMM_EXPORT int hmm_event_query(struct hmm_event *h)
{
	HMM_KEEP_ERRNO();
	struct event *e;
	int ret;

	ret = event_get(h, &e);
	if (ret)
		return ret;
	pthread_mutex_lock(&ev_lock);
	ret = !e->mark || e->mark->done ? 0 : -EBUSY;
	event_put_locked(e);
	pthread_mutex_unlock(&ev_lock);
	return ret;
}

HMM_EXPORT int hmm_event_elapsed_ms(float *ms, struct hmm_event *start_h,
				    struct hmm_event *end_h)
{
	HMM_KEEP_ERRNO();
	struct event *start, *end;
	int ret;

	if (!ms || !start_h || !end_h)
		return -EINVAL;
	ret = event_get(start_h, &start);
	if (ret)
		return ret;
	ret = event_get(end_h, &end);
	if (ret) {
		event_put(start);
		return ret;
	}
	pthread_mutex_lock(&ev_lock);
	if (!start->mark || !end->mark)
		ret = -ENODATA;
	else if (!start->mark->done || !end->mark->done)
		ret = -EBUSY;
	else
		*ms = (float)((double)(int64_t)(end->mark->ts_ns -
						start->mark->ts_ns) / 1e6);
	event_put_locked(start);
	event_put_locked(end);
	pthread_mutex_unlock(&ev_lock);
	return ret;
}

/* --- teardown ---------------------------------------------------------- */

/* Whether every stream of this process has run all its work. */
static bool streams_idle(void)
{
	pid_t self = getpid();
	bool idle = true;

	pthread_mutex_lock(&streams.lock);
	for (struct stream *s = streams.head; s && idle; s = s->next) {
		if (s->pid != self)
			continue;
		pthread_mutex_lock(&s->lock);
		idle = s->completed == s->queued;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&streams.lock);
	return idle;
}

/* Destroys the streams of this process, each as hmm_stream_destroy(). */
static void streams_destroy_all(void)
{
	pid_t self = getpid();

	for (;;) {
		struct stream *s;

		pthread_mutex_lock(&streams.lock);
		for (s = streams.head; s && s->pid != self; s = s->next)
			;
		if (!s) {
			table_release(&streams.table);
			pthread_mutex_unlock(&streams.lock);
			return;
		}
		stream_unlink_locked(s);
		pthread_mutex_unlock(&streams.lock);
		stream_stop(s);
		stream_put(s);
	}
}

/* Destroys the events of this process (their records have completed). */
static void events_destroy_all(void)
{
	pid_t self = getpid();

	pthread_mutex_lock(&ev_lock);
	for (size_t i = 0; i < ev_table.nbuckets; i++) {
		struct handle_node **pp = &ev_table.bucket[i];

		while (*pp) {
			struct event *e = container_of(*pp, struct event,
						       node);

			if (e->pid != self) {
				pp = &(*pp)->next;
				continue;
			}
			*pp = e->node.next;
			ev_table.count--;
			event_put_locked(e);
		}
	}
	table_release(&ev_table);
	pthread_mutex_unlock(&ev_lock);
}

/*
 * The work of hmm_shutdown(); at exit, only when it cannot block: -EBUSY,
 * doing nothing, when some stream has work queued or a launch runs.
 */
static int teardown(bool at_exit)
{
	if (on_library_thread())
		return -EDEADLK;
	if (at_exit && (!streams_idle() || hmm__launch_busy()))
		return -EBUSY;
	streams_destroy_all();
	events_destroy_all();
	hmm__mem_shutdown();
	return hmm__launch_shutdown();
}

HMM_EXPORT int hmm_shutdown(void)
{
	HMM_KEEP_ERRNO();

	return teardown(false);
}

/*
 * At exit() (or dlclose()), end the library's threads and free its state
 * when that is safe; otherwise leave them to the end of the process.
 */
__attribute__((destructor)) static void hmm_fini(void)
{
	int saved = errno, ret;

	ret = teardown(true);
	if (ret)
		hmm__log(HMM_LOG_DEBUG, "no teardown at exit (%s): the "
			 "library's threads end with the process",
			 hmm_strerror(ret));
	errno = saved;
}
