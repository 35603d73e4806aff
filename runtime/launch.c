// SPDX-License-Identifier: MIT
/*
 * launch.c - the execution pools and hmm_launch().
 *
 * A device executes kernels on a pool of threads of the library: one per
 * online CPU, started at the first launch on that device and kept until
 * hmm_shutdown() (or the library's destructor) joins them; the next
 * launch starts a new pool.  HMM_CPU has a pool of its own.  Device code
 * touches managed memory only through device pointers (hmm_devptr()), so
 * the same threads are "the device" for every access they make.
 *
 * A launch is queued on a stream (stream.c); when the stream's worker
 * reaches it, it calls hmm__launch_run(), which hands the grid to the
 * pool as a job and waits for it.  The grid's points are numbered in
 * x-fastest order (i = x + X * (y + Y * z)) and the pool's threads take
 * chunks of consecutive numbers from the job, about eight chunks per
 * thread so that uneven points still balance.  Jobs of concurrent
 * launches (streams of the same device) queue in the pool in arrival
 * order: the threads finish handing out the first before starting the
 * next.  The job completes when all its points have run.
 *
 * Locking: exec.lock protects the pool table and each pool's count of
 * launches using it (a pool is only stopped when unused); each pool's
 * lock protects its job queue, its stop flag and the fields of its jobs.
 * A job lives on the stack of the thread that waits for it: the last pool
 * thread to finish a chunk signals it under the pool lock, so the job is
 * not touched after the waiter sees it complete.
 *
 * fork(): the child has none of the pool threads; a pthread_atfork
 * handler forgets the pools there, and the child's first launch starts
 * new ones.
 */
#define _GNU_SOURCE
#include "hmm_private.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#define POOL_MAX_THREADS 256
#define CHUNKS_PER_THREAD 8

struct job {
	hmm_kernel_fn fn;
	struct hmm_dim3 grid;
	void *args;
	uint64_t total;     /* points */
	uint64_t chunk;     /* points per chunk */
	uint64_t next;      /* first point not handed out yet */
	uint64_t done;      /* points that have run */
	struct job *link;   /* next job of the pool */
	pthread_cond_t cond; /* done reached total */
};

struct pool {
	int dev;
	unsigned int users;      /* launches using it; exec.lock */
	pthread_mutex_t lock;
	pthread_cond_t work;     /* a job was queued, or stop */
	struct job *head, *tail; /* jobs with points not handed out; lock */
	bool stop;               /* the threads end when idle; lock */
	int nthreads;
	pthread_t threads[];
};

/* pools[0] is HMM_CPU's, pools[d + 1] device d's */
static struct {
	pthread_once_t once;
	pthread_mutex_t lock; /* protects pools[] */
	struct pool *pools[HMM_MAX_DEVICES + 1];
} exec = {
	.once = PTHREAD_ONCE_INIT,
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

static void fork_prepare(void)
{
	pthread_mutex_lock(&exec.lock);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&exec.lock);
}

static void fork_child(void)
{
	/* no thread of the child uses them: the memory can go */
	for (int i = 0; i <= HMM_MAX_DEVICES; i++) {
		free(exec.pools[i]);
		exec.pools[i] = NULL;
	}
	pthread_mutex_unlock(&exec.lock);
}

static void exec_init(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* Set in the execution threads: hmm_free() from a kernel is -EDEADLK. */
static __thread bool exec_thread;

bool hmm__in_exec_thread(void)
{
	return exec_thread;
}

/* Runs points [@first, @first + @n) of @j. */
static void run_points(const struct job *j, uint64_t first, uint64_t n)
{
	const struct hmm_dim3 g = j->grid;
	uint64_t plane = (uint64_t)g.x * g.y;
	struct hmm_dim3 idx = {
		.x = (uint32_t)(first % g.x),
		.y = (uint32_t)(first % plane / g.x),
		.z = (uint32_t)(first / plane),
	};

	for (uint64_t i = 0; i < n; i++) {
		j->fn(idx, g, j->args);
		if (++idx.x == g.x) {
			idx.x = 0;
			if (++idx.y == g.y) {
				idx.y = 0;
				idx.z++;
			}
		}
	}
}

static void *pool_thread(void *arg)
{
	struct pool *p = arg;

	exec_thread = true;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct job *j = p->head;
		uint64_t first, n;

		if (!j) {
			if (p->stop)
				break;
			pthread_cond_wait(&p->work, &p->lock);
			continue;
		}
		first = j->next;
		n = j->total - first < j->chunk ? j->total - first : j->chunk;
		j->next += n;
		if (j->next == j->total) {
			p->head = j->link;
			if (!p->head)
				p->tail = NULL;
		}
		pthread_mutex_unlock(&p->lock);

		run_points(j, first, n);

		pthread_mutex_lock(&p->lock);
		j->done += n;
		if (j->done == j->total)
			pthread_cond_signal(&j->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static int online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	return n > POOL_MAX_THREADS ? POOL_MAX_THREADS : (int)n;
}

/* Starts a pool for @dev; NULL and errno when not a single thread starts. */
static struct pool *pool_new(int dev)
{
	int want = online_cpus();
	sigset_t all, old;
	struct pool *p;
	int ret = 0;

	p = calloc(1, sizeof(*p) + want * sizeof(p->threads[0]));
	if (!p)
		return NULL;
	p->dev = dev;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);

	/* the application's signals are not for these threads */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 0; i < want; i++) {
		char name[16];

		ret = pthread_create(&p->threads[i], NULL, pool_thread, p);
		if (ret)
			break;
		snprintf(name, sizeof(name), "hmm-exec%d/%d", dev, i);
		pthread_setname_np(p->threads[i], name);
		p->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	if (!p->nthreads) {
		hmm__log(HMM_LOG_ERROR, "no execution thread for %d: %s", dev,
			 hmm_strerror(ret));
		pthread_cond_destroy(&p->work);
		pthread_mutex_destroy(&p->lock);
		free(p);
		errno = ret;
		return NULL;
	}
	if (p->nthreads < want)
		hmm__log(HMM_LOG_WARN, "%d of %d execution threads for %d: %s",
			 p->nthreads, want, dev, hmm_strerror(ret));
	hmm__log(HMM_LOG_DEBUG, "execution pool for %d: %d threads", dev,
		 p->nthreads);
	return p;
}

/*
 * The pool of @dev (HMM_CPU or a device number), started on first use,
 * with a use counted (pool_put() when done).
 */
static struct pool *pool_get(int dev)
{
	struct pool *p;
	int slot = dev + 1;

	if (slot < 0 || slot > HMM_MAX_DEVICES) {
		errno = ENODEV;
		return NULL;
	}
	pthread_once(&exec.once, exec_init);
	pthread_mutex_lock(&exec.lock);
	p = exec.pools[slot];
	if (!p)
		p = exec.pools[slot] = pool_new(dev);
	if (p)
		p->users++;
	pthread_mutex_unlock(&exec.lock);
	return p;
}

static void pool_put(struct pool *p)
{
	pthread_mutex_lock(&exec.lock);
	p->users--;
	pthread_mutex_unlock(&exec.lock);
}

/* Ends the threads of @p, which nobody can reach any more, and frees it. */
static void pool_stop(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

bool hmm__launch_busy(void)
{
	bool busy = false;

	pthread_mutex_lock(&exec.lock);
	for (int i = 0; i <= HMM_MAX_DEVICES; i++)
		busy |= exec.pools[i] && exec.pools[i]->users;
	pthread_mutex_unlock(&exec.lock);
	return busy;
}

int hmm__launch_shutdown(void)
{
	struct pool *stop[HMM_MAX_DEVICES + 1] = { NULL };

	pthread_mutex_lock(&exec.lock);
	for (int i = 0; i <= HMM_MAX_DEVICES; i++) {
		if (exec.pools[i] && exec.pools[i]->users) {
			pthread_mutex_unlock(&exec.lock);
			return -EBUSY;
		}
	}
	for (int i = 0; i <= HMM_MAX_DEVICES; i++) {
		stop[i] = exec.pools[i];
		exec.pools[i] = NULL;
	}
	pthread_mutex_unlock(&exec.lock);

	for (int i = 0; i <= HMM_MAX_DEVICES; i++) {
		if (stop[i])
			pool_stop(stop[i]);
	}
	return 0;
}

int hmm__launch_run(int dev, hmm_kernel_fn kernel, struct hmm_dim3 grid,
		    void *args)
{
	struct job j = {
		.fn = kernel,
		.grid = grid,
		.args = args,
		.total = (uint64_t)grid.x * grid.y * grid.z,
	};
	uint64_t t0 = hmm__now_ns();
	struct pool *p;

	/* a removed device's views give SIGBUS: do not run its kernels */
	if (dev != HMM_CPU && hmm__device_fd(dev) < 0)
		return -ENODEV;
	p = pool_get(dev);
	if (!p)
		return -errno;

	j.chunk = j.total / ((uint64_t)p->nthreads * CHUNKS_PER_THREAD);
	if (!j.chunk)
		j.chunk = 1;
	pthread_cond_init(&j.cond, NULL);

	pthread_mutex_lock(&p->lock);
	if (p->tail)
		p->tail->link = &j;
	else
		p->head = &j;
	p->tail = &j;
	pthread_cond_broadcast(&p->work);
	while (j.done < j.total)
		pthread_cond_wait(&j.cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
	pthread_cond_destroy(&j.cond);
	pool_put(p);

	hmm__stats_launch(dev, hmm__now_ns() - t0);
	return 0;
}

HMM_EXPORT int hmm_launch(struct hmm_stream *s, hmm_kernel_fn kernel,
			  struct hmm_dim3 grid, void *args)
{
	HMM_KEEP_ERRNO();
	uint64_t plane;

	if (!s || !kernel)
		return -EINVAL;
	if (!grid.x || !grid.y || !grid.z)
		return -EINVAL;
	/* each factor is below 2^32: neither product can overflow */
	plane = (uint64_t)grid.x * grid.y;
	if (plane > UINT32_MAX || plane * grid.z > UINT32_MAX)
		return -EINVAL;
	return hmm__stream_launch(s, kernel, grid, args);
}
