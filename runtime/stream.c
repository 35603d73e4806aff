// SPDX-License-Identifier: MIT
/*
 * stream.c - streams, events, callbacks, device synchronize.
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
 * meanwhile.  An event with no mark (never recorded) is complete.  Since
 * a wait only ever names a record already queued, waits cannot form a
 * cycle.
 *
 * Calls from a stream's own work that would wait for that work (destroy
 * or synchronize the stream, synchronize its device, synchronize or
 * destroy an event still to be recorded on it) return -EDEADLK instead of
 * hanging.
 *
 * Locking, in this order (ev_lock is taken under stream.lock when a
 * record completes; no other lock is taken under another):
 *   streams.lock  the list of streams and their reference counts
 *   stream.lock   a stream's queue, counts and error
 *   ev_lock       every event's mark pointer and every mark
 * No lock is held while an item runs or while waiting for a stream.
 * A stream is freed when its last reference goes: the one of
 * hmm_stream_create(), dropped by hmm_stream_destroy() after the worker
 * has drained the queue and exited, and those hmm_device_synchronize()
 * takes while it waits.
 *
 * fork(): streams and events of the parent are not usable in the child
 * (their threads do not exist there); the lists' locks are held across
 * fork() so that the child can create streams of its own.
 */
#define _GNU_SOURCE
#include "hmm_private.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* One hmm_event_record(). */
struct mark {
	unsigned int refs;               /* ev_lock */
	bool done;                       /* ev_lock */
	uint64_t ts_ns;                  /* when done; ev_lock */
	const struct hmm_stream *stream; /* recorded on (compared only) */
	pthread_cond_t cond;             /* done became true; with ev_lock */
};

struct hmm_event {
	struct mark *mark; /* the latest record, NULL when never; ev_lock */
};

enum item_kind {
	ITEM_PREFETCH,
	ITEM_LAUNCH,
	ITEM_CALLBACK,
	ITEM_RECORD,
	ITEM_WAIT,
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
	};
};

struct hmm_stream {
	int dev;
	uint64_t id;       /* creation order, for hmm_device_synchronize() */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t work;      /* an item was queued, or stop; with lock */
	pthread_cond_t progress;  /* completed advanced; with lock */
	struct item *head, *tail; /* lock */
	uint64_t queued;          /* items queued so far; lock */
	uint64_t completed;       /* items run so far; lock */
	int error;                /* first error not returned yet; lock */
	bool stop;                /* lock */
	/* streams.lock: */
	unsigned int refs;
	struct hmm_stream *prev, *next;
};

static struct {
	pthread_once_t once;
	pthread_mutex_t lock;
	struct hmm_stream *head, *tail; /* in creation (id) order */
	uint64_t next_id;
} streams = {
	.once = PTHREAD_ONCE_INIT,
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;

/* The stream whose worker runs the calling thread, if any. */
static __thread struct hmm_stream *current_stream;

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

/* --- marks ------------------------------------------------------------- */

static struct mark *mark_new(const struct hmm_stream *s)
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
	m->done = true;
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
 * Waits for the latest record of @e, if any: 0, or -EDEADLK when that
 * record is still queued on the calling worker's own stream.
 */
static int event_wait(struct hmm_event *e)
{
	struct mark *m;

	pthread_mutex_lock(&ev_lock);
	m = e->mark;
	if (!m || m->done) {
		pthread_mutex_unlock(&ev_lock);
		return 0;
	}
	if (m->stream == current_stream) {
		pthread_mutex_unlock(&ev_lock);
		return -EDEADLK;
	}
	m->refs++;
	mark_wait_locked(m);
	mark_put_locked(m);
	pthread_mutex_unlock(&ev_lock);
	return 0;
}

/* --- streams ----------------------------------------------------------- */

static void stream_free(struct hmm_stream *s)
{
	pthread_cond_destroy(&s->progress);
	pthread_cond_destroy(&s->work);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Drops a reference; streams.lock held. */
static void stream_put_locked(struct hmm_stream *s)
{
	if (!--s->refs)
		stream_free(s);
}

static int run_item(struct hmm_stream *s, struct item *it, int status)
{
	int ret = 0;

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
				      it->launch.args);
		if (ret)
			hmm__log(HMM_LOG_INFO, "launch on %d: %s", s->dev,
				 hmm_strerror(-ret));
		break;
	case ITEM_CALLBACK:
		it->callback.fn(s, status, it->callback.user_data);
		break;
	case ITEM_RECORD:
		break; /* completed with the stream's count, see below */
	case ITEM_WAIT:
		pthread_mutex_lock(&ev_lock);
		mark_wait_locked(it->mark);
		mark_put_locked(it->mark);
		pthread_mutex_unlock(&ev_lock);
		break;
	}
	return ret;
}

static void *stream_thread(void *arg)
{
	struct hmm_stream *s = arg;

	current_stream = s;
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
		s->completed++;
		pthread_cond_broadcast(&s->progress);
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

static void enqueue(struct hmm_stream *s, struct item *it)
{
	pthread_mutex_lock(&s->lock);
	if (s->tail)
		s->tail->next = it;
	else
		s->head = it;
	s->tail = it;
	s->queued++;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
}

HMM_EXPORT int hmm_stream_create(struct hmm_stream **sp, int dev)
{
	struct hmm_stream *s;
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
	s->refs = 1;
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

	pthread_mutex_lock(&streams.lock);
	s->id = ++streams.next_id;
	s->prev = streams.tail;
	if (streams.tail)
		streams.tail->next = s;
	else
		streams.head = s;
	streams.tail = s;
	pthread_mutex_unlock(&streams.lock);

	*sp = s;
	return 0;
}

HMM_EXPORT int hmm_stream_destroy(struct hmm_stream *s)
{
	if (!s)
		return -EINVAL;
	if (s == current_stream)
		return -EDEADLK;

	pthread_mutex_lock(&streams.lock);
	if (s->prev)
		s->prev->next = s->next;
	else
		streams.head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		streams.tail = s->prev;
	pthread_mutex_unlock(&streams.lock);

	/* the worker drains the queue before it looks at stop */
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);

	pthread_mutex_lock(&streams.lock);
	stream_put_locked(s);
	pthread_mutex_unlock(&streams.lock);
	return 0;
}

HMM_EXPORT int hmm_stream_synchronize(struct hmm_stream *s)
{
	uint64_t target;
	int ret;

	if (!s)
		return -EINVAL;
	if (s == current_stream)
		return -EDEADLK;
	pthread_mutex_lock(&s->lock);
	target = s->queued;
	while (s->completed < target)
		pthread_cond_wait(&s->progress, &s->lock);
	ret = s->error;
	s->error = 0;
	pthread_mutex_unlock(&s->lock);
	return ret;
}

HMM_EXPORT int hmm_stream_query(struct hmm_stream *s)
{
	int ret;

	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	ret = s->completed == s->queued ? 0 : -EBUSY;
	pthread_mutex_unlock(&s->lock);
	return ret;
}

HMM_EXPORT int hmm_stream_add_callback(struct hmm_stream *s,
				       hmm_stream_callback_fn fn,
				       void *user_data)
{
	struct item *it;

	if (!s || !fn)
		return -EINVAL;
	it = item_new(ITEM_CALLBACK);
	if (!it)
		return -ENOMEM;
	it->callback.fn = fn;
	it->callback.user_data = user_data;
	enqueue(s, it);
	return 0;
}

int hmm__stream_launch(struct hmm_stream *s, hmm_kernel_fn kernel,
		       struct hmm_dim3 grid, void *args)
{
	struct item *it = item_new(ITEM_LAUNCH);

	if (!it)
		return -ENOMEM;
	it->launch.fn = kernel;
	it->launch.grid = grid;
	it->launch.args = args;
	enqueue(s, it);
	return 0;
}

HMM_EXPORT int hmm_prefetch_async(const void *ptr, size_t size, int dst,
				  struct hmm_stream *s)
{
	struct item *it;
	int ret;

	ret = hmm__prefetch_check(ptr, size, dst);
	if (ret)
		return ret;
	if (!s)
		return hmm__prefetch(ptr, size, dst);
	it = item_new(ITEM_PREFETCH);
	if (!it)
		return -ENOMEM;
	it->prefetch.ptr = ptr;
	it->prefetch.size = size;
	it->prefetch.dst = dst;
	enqueue(s, it);
	return 0;
}

/*
 * The first stream of @dev created after stream @after_id and still
 * there, with a reference taken; NULL when none.  streams.lock held.
 */
static struct hmm_stream *next_of_device_locked(int dev, uint64_t after_id)
{
	for (struct hmm_stream *s = streams.head; s; s = s->next) {
		if (s->id > after_id && s->dev == dev) {
			s->refs++;
			return s;
		}
	}
	return NULL;
}

HMM_EXPORT int hmm_device_synchronize(int dev)
{
	struct hmm_stream *s;
	uint64_t last = 0;
	int first = 0;

	if (dev != HMM_CPU && (dev < 0 || dev >= hmm__device_count()))
		return -ENODEV;
	if (current_stream && current_stream->dev == dev)
		return -EDEADLK;

	/*
	 * One stream at a time, in creation order, with no lock held while
	 * waiting: streams may come and go meanwhile.  Streams created
	 * during the call are waited for too.
	 */
	pthread_mutex_lock(&streams.lock);
	while ((s = next_of_device_locked(dev, last))) {
		int ret;

		pthread_mutex_unlock(&streams.lock);
		ret = hmm_stream_synchronize(s);
		if (ret && !first)
			first = ret;
		pthread_mutex_lock(&streams.lock);
		last = s->id;
		stream_put_locked(s);
	}
	pthread_mutex_unlock(&streams.lock);
	return first;
}

/* --- events ------------------------------------------------------------ */

HMM_EXPORT int hmm_event_create(struct hmm_event **ep)
{
	struct hmm_event *e;

	if (!ep)
		return -EINVAL;
	streams_init();
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	*ep = e;
	return 0;
}

HMM_EXPORT int hmm_event_destroy(struct hmm_event *e)
{
	int ret;

	if (!e)
		return -EINVAL;
	ret = event_wait(e);
	if (ret)
		return ret;
	mark_put(e->mark);
	free(e);
	return 0;
}

HMM_EXPORT int hmm_event_record(struct hmm_event *e, struct hmm_stream *s)
{
	struct item *it;
	struct mark *m, *old;

	if (!e || !s)
		return -EINVAL;
	it = item_new(ITEM_RECORD);
	m = mark_new(s);
	if (!it || !m) {
		free(it);
		if (m)
			mark_put(m);
		return -ENOMEM;
	}
	m->refs++; /* the event's and the item's */
	it->mark = m;

	pthread_mutex_lock(&ev_lock);
	old = e->mark;
	e->mark = m;
	mark_put_locked(old);
	pthread_mutex_unlock(&ev_lock);

	enqueue(s, it);
	return 0;
}

HMM_EXPORT int hmm_stream_wait_event(struct hmm_stream *s,
				     struct hmm_event *e)
{
	struct item *it;
	struct mark *m;

	if (!s || !e)
		return -EINVAL;
	it = item_new(ITEM_WAIT);
	if (!it)
		return -ENOMEM;

	pthread_mutex_lock(&ev_lock);
	m = e->mark;
	if (!m || m->done) {
		/* never recorded, or already complete: nothing to wait for */
		pthread_mutex_unlock(&ev_lock);
		free(it);
		return 0;
	}
	m->refs++;
	pthread_mutex_unlock(&ev_lock);

	it->mark = m;
	enqueue(s, it);
	return 0;
}

HMM_EXPORT int hmm_event_synchronize(struct hmm_event *e)
{
	if (!e)
		return -EINVAL;
	return event_wait(e);
}

HMM_EXPORT int hmm_event_query(struct hmm_event *e)
{
	int ret;

	if (!e)
		return -EINVAL;
	pthread_mutex_lock(&ev_lock);
	ret = !e->mark || e->mark->done ? 0 : -EBUSY;
	pthread_mutex_unlock(&ev_lock);
	return ret;
}

HMM_EXPORT int hmm_event_elapsed_ms(float *ms, struct hmm_event *start,
				    struct hmm_event *end)
{
	int ret = 0;

	if (!ms || !start || !end)
		return -EINVAL;
	pthread_mutex_lock(&ev_lock);
	if (!start->mark || !end->mark)
		ret = -ENODATA;
	else if (!start->mark->done || !end->mark->done)
		ret = -EBUSY;
	else
		*ms = (float)((double)(int64_t)(end->mark->ts_ns -
						start->mark->ts_ns) / 1e6);
	pthread_mutex_unlock(&ev_lock);
	return ret;
}
