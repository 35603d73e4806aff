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
 *
 * Faults in kernels.  A GPU reports a kernel's bad access as an error of
 * the launch; here the kernel is a function on a pool thread, and a bad
 * access (an unmapped or stale device pointer, a write to read-only
 * memory, a view of a device that went away, a stack overflow) raises
 * SIGSEGV or SIGBUS in that thread.  When the first pool starts, the
 * library installs a handler for both signals (SA_ONSTACK, keeping the
 * handlers installed before it), and each pool thread runs on an
 * alternate signal stack of its own with the two signals unblocked.
 * Around every chunk of points a pool thread arms a sigsetjmp() buffer in
 * its struct exec_ctx, reached through one initial-exec TLS pointer (no
 * allocation or lock in the handler).  The handler takes only a
 * kernel-raised signal (si_code > 0) on an armed pool thread: it records
 * the signal, code and address and siglongjmp()s back to the pool
 * thread, which marks the job faulted.  Every other signal, and a fault
 * on any other thread or outside a kernel, goes to the handler that was
 * there before (with its sa_mask), or to the default action, which kills
 * the process as without libhmm.  A faulted job hands out its remaining
 * points without running them; the chunks other threads are running
 * finish; the launch returns -EFAULT, logged at error level with the
 * address and the grid point.  What the kernel held when it faulted
 * (a lock, memory from malloc()) stays held: only the kernel's own
 * frames are left.  hmm_shutdown() puts the previous handlers back if
 * ours are still installed.
 *
 * Host pointers in kernels.  A kernel handed a host pointer of managed
 * memory instead of its hmm_devptr() address gets correct data, but each
 * page of it that is on the device comes home by a CPU fault, and the
 * data ends up in system memory: slow, and silent.  The driver counts
 * such a fault as a major fault of the thread that takes it (it moves
 * data from device memory, as a swap-in does), so a device's pool thread
 * reads its major-fault count (getrusage(RUSAGE_THREAD)) around every
 * chunk: what a launch took goes to the stats (launch_cpu_faults), and
 * the first launch of each kernel that took any is reported once at
 * warning level, by symbol name.  (A kernel reading a file mapping that
 * is not in the page cache takes major faults too; the message says so.)
 */
#define _GNU_SOURCE
#include "hmm_private.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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
	uint64_t done;      /* points that have run, or were skipped */
	const void *owner;  /* the stream that launched it (identity only) */
	int fault_sig;      /* first fault: signal, 0 when none */
	int fault_code;     /* its si_code */
	void *fault_addr;   /* its address */
	uint64_t fault_point; /* the point that faulted */
	uint64_t cpu_faults;  /* major faults of its chunks on a device pool */
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
	/*
	 * The threads' alternate signal stacks, one block so that it stays
	 * reachable (and is freed) when a fork child forgets the threads;
	 * NULL when it could not be allocated.
	 */
	char *altstacks;
	size_t altstack_size;
	int started;             /* threads that took their stack; lock */
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
		if (exec.pools[i])
			free(exec.pools[i]->altstacks);
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

/* The stream whose kernel the calling execution thread runs, or NULL. */
static __thread const void *exec_owner;

bool hmm__in_exec_thread(void)
{
	return exec_thread;
}

const void *hmm__exec_stream(void)
{
	return exec_owner;
}

/* --- faults in kernels ---------------------------------------------------- */

/* A pool thread's state for the fault handler. */
struct exec_ctx {
	sigjmp_buf env;
	volatile sig_atomic_t armed; /* a kernel runs: faults are caught */
	volatile uint64_t point;     /* the point running */
	int sig, code;               /* the caught fault */
	void *addr;
};

/*
 * The calling pool thread's context, NULL on other threads.  Initial-exec,
 * so that the handler reads it without __tls_get_addr(), which may
 * allocate.
 */
static __thread struct exec_ctx *fault_ctx
	__attribute__((tls_model("initial-exec")));

static const int fault_signals[] = { SIGSEGV, SIGBUS };
#define NFAULT_SIGNALS (sizeof(fault_signals) / sizeof(fault_signals[0]))

/* The handlers before ours; written before ours is installed; exec.lock. */
static struct sigaction fault_prev[NFAULT_SIGNALS];
static bool fault_installed; /* exec.lock */

/* Passes a signal that is not a kernel's fault to the previous handler. */
static void fault_chain(int sig, siginfo_t *si, void *uc)
{
	const struct sigaction *prev = NULL;
	struct sigaction dfl;

	for (size_t i = 0; i < NFAULT_SIGNALS; i++)
		if (fault_signals[i] == sig)
			prev = &fault_prev[i];
	if (prev && (prev->sa_flags & SA_SIGINFO)) {
		pthread_sigmask(SIG_BLOCK, &prev->sa_mask, NULL);
		prev->sa_sigaction(sig, si, uc);
		return;
	}
	if (prev && prev->sa_handler != SIG_DFL &&
	    prev->sa_handler != SIG_IGN) {
		pthread_sigmask(SIG_BLOCK, &prev->sa_mask, NULL);
		prev->sa_handler(sig);
		return;
	}
	if (prev && prev->sa_handler == SIG_IGN && si->si_code <= 0)
		return; /* sent, and ignored before us */
	/*
	 * The default action: a fault happens again on return and ends the
	 * process as it would have without us; a sent signal is sent again,
	 * delivered on return.
	 */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, NULL);
	if (si->si_code <= 0)
		raise(sig);
}

/* SIGSEGV and SIGBUS; async-signal-safe. */
static void fault_handler(int sig, siginfo_t *si, void *uc)
{
	struct exec_ctx *c = fault_ctx;

	if (c && c->armed && si->si_code > 0) {
		c->armed = 0;
		c->sig = sig;
		c->code = si->si_code;
		c->addr = si->si_addr;
		siglongjmp(c->env, 1);
	}
	fault_chain(sig, si, uc);
}

/* Installs fault_handler() once; exec.lock held. */
static void fault_install(void)
{
	struct sigaction sa;

	if (fault_installed)
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fault_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < NFAULT_SIGNALS; i++) {
		sigaction(fault_signals[i], NULL, &fault_prev[i]);
		sigaction(fault_signals[i], &sa, NULL);
	}
	fault_installed = true;
}

/* Puts the previous handlers back where ours is still there; exec.lock. */
static void fault_uninstall(void)
{
	if (!fault_installed)
		return;
	for (size_t i = 0; i < NFAULT_SIGNALS; i++) {
		struct sigaction cur;

		if (sigaction(fault_signals[i], NULL, &cur) == 0 &&
		    (cur.sa_flags & SA_SIGINFO) &&
		    cur.sa_sigaction == fault_handler)
			sigaction(fault_signals[i], &fault_prev[i], NULL);
	}
	fault_installed = false;
}

/* Bytes of a pool thread's alternate signal stack. */
static size_t altstack_size(void)
{
	long min = sysconf(_SC_SIGSTKSZ);
	size_t size = 64 * 1024;

	if (min > 0 && (size_t)min > size)
		size = ((size_t)min + 4095) & ~(size_t)4095;
	return size;
}

/*
 * Gives the calling pool thread the alternate signal stack @stack (so
 * that a kernel's stack overflow can be caught too; NULL: none) and
 * unblocks the fault signals; whether the stack is in use.
 */
static bool fault_thread_init(struct exec_ctx *c, void *stack, size_t size)
{
	stack_t ss = { .ss_sp = stack, .ss_size = size };
	bool on = stack && !sigaltstack(&ss, NULL);

	if (!on)
		hmm__log(HMM_LOG_DEBUG, "no alternate signal stack: a "
			 "kernel's stack overflow is not caught");
	hmm__unblock_fault_signals();
	fault_ctx = c;
	return on;
}

void hmm__unblock_fault_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	for (size_t i = 0; i < NFAULT_SIGNALS; i++)
		sigaddset(&set, fault_signals[i]);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

static void fault_thread_exit(bool altstack)
{
	stack_t ss = { .ss_flags = SS_DISABLE };
	sigset_t set;

	sigemptyset(&set);
	for (size_t i = 0; i < NFAULT_SIGNALS; i++)
		sigaddset(&set, fault_signals[i]);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	fault_ctx = NULL;
	if (altstack)
		sigaltstack(&ss, NULL);
}

/* Runs points [@first, @first + @n) of @j. */
static void run_points(const struct job *j, uint64_t first, uint64_t n,
		       struct exec_ctx *c)
{
	const struct hmm_dim3 g = j->grid;
	uint64_t plane = (uint64_t)g.x * g.y;
	struct hmm_dim3 idx = {
		.x = (uint32_t)(first % g.x),
		.y = (uint32_t)(first % plane / g.x),
		.z = (uint32_t)(first / plane),
	};

	for (uint64_t i = 0; i < n; i++) {
		c->point = first + i;
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

/*
 * Runs a chunk with faults caught: 0, or the signal of a fault (the
 * fault's details in @c).  Nothing here is live across the siglongjmp()
 * but @c's fields, which are volatile or written by the handler.
 */
static __attribute__((noinline)) int run_chunk(struct exec_ctx *c,
					       const struct job *j,
					       uint64_t first, uint64_t n)
{
	if (sigsetjmp(c->env, 1))
		return c->sig;
	c->armed = 1;
	run_points(j, first, n, c);
	c->armed = 0;
	return 0;
}

/* Major faults of the calling thread so far (see "Host pointers"). */
static uint64_t thread_major_faults(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru))
		return 0;
	return (uint64_t)ru.ru_majflt;
}

/*
 * Reports once per kernel that a launch of @fn on @dev took @n CPU faults
 * on device memory.
 */
static void warn_host_pointers(int dev, hmm_kernel_fn fn, uint64_t n)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static hmm_kernel_fn told[64];
	static unsigned int ntold;
	const char *name = NULL;
	bool seen = false;
	Dl_info info;

	pthread_mutex_lock(&lock);
	for (unsigned int i = 0; i < ntold && !seen; i++)
		seen = told[i] == fn;
	if (!seen && ntold < sizeof(told) / sizeof(told[0]))
		told[ntold++] = fn;
	pthread_mutex_unlock(&lock);
	if (seen)
		return;
	if (dladdr((void *)(uintptr_t)fn, &info) && info.dli_sname &&
	    info.dli_saddr == (void *)(uintptr_t)fn)
		name = info.dli_sname;
	hmm__log(HMM_LOG_WARN, "kernel %s (%p) on device %d took %" PRIu64
		 " CPU faults on device memory: it touches managed memory "
		 "through host pointers (pass hmm_devptr() addresses), or "
		 "reads files not in the page cache; said once per kernel",
		 name ? name : "?", (void *)(uintptr_t)fn, dev, n);
}

static void *pool_thread(void *arg)
{
	struct pool *p = arg;
	struct exec_ctx ctx = { .armed = 0 };
	char *stack = NULL;
	bool altstack;

	exec_thread = true;
	pthread_mutex_lock(&p->lock);
	if (p->altstacks)
		stack = p->altstacks + (size_t)p->started * p->altstack_size;
	p->started++;
	pthread_mutex_unlock(&p->lock);
	altstack = fault_thread_init(&ctx, stack, p->altstack_size);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct job *j = p->head;
		uint64_t first, n, maj;
		int sig = 0;

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
		if (j->fault_sig) {
			/* a point faulted: the rest of the launch is skipped */
			j->done += n;
			if (j->done == j->total)
				pthread_cond_signal(&j->cond);
			continue;
		}
		pthread_mutex_unlock(&p->lock);

		exec_owner = j->owner;
		maj = p->dev != HMM_CPU ? thread_major_faults() : 0;
		sig = run_chunk(&ctx, j, first, n);
		if (p->dev != HMM_CPU)
			maj = thread_major_faults() - maj;
		exec_owner = NULL;

		pthread_mutex_lock(&p->lock);
		if (p->dev != HMM_CPU)
			j->cpu_faults += maj;
		if (sig && !j->fault_sig) {
			j->fault_sig = sig;
			j->fault_code = ctx.code;
			j->fault_addr = ctx.addr;
			j->fault_point = ctx.point;
		}
		j->done += n;
		if (j->done == j->total)
			pthread_cond_signal(&j->cond);
	}
	pthread_mutex_unlock(&p->lock);
	fault_thread_exit(altstack);
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
	p->altstack_size = altstack_size();
	p->altstacks = malloc(want * p->altstack_size);
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
		free(p->altstacks);
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
	if (!p) {
		fault_install();
		p = exec.pools[slot] = pool_new(dev);
	}
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
	free(p->altstacks);
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
	fault_uninstall();
	pthread_mutex_unlock(&exec.lock);

	for (int i = 0; i <= HMM_MAX_DEVICES; i++) {
		if (stop[i])
			pool_stop(stop[i]);
	}
	return 0;
}

/* Logs the fault of @j, a launch on @dev. */
static void log_fault(int dev, const struct job *j)
{
	uint64_t plane = (uint64_t)j->grid.x * j->grid.y;
	uint64_t pt = j->fault_point;

	char where[16];

	if (dev == HMM_CPU)
		snprintf(where, sizeof(where), "HMM_CPU");
	else
		snprintf(where, sizeof(where), "device %d", dev);
	hmm__log(HMM_LOG_ERROR, "kernel %p on %s: %s (code %d) at address %p, "
		 "grid point (%u, %u, %u); the launch is -EFAULT",
		 (void *)(uintptr_t)j->fn, where,
		 j->fault_sig == SIGBUS ? "SIGBUS" : "SIGSEGV", j->fault_code,
		 j->fault_addr, (unsigned int)(pt % j->grid.x),
		 (unsigned int)(pt % plane / j->grid.x),
		 (unsigned int)(pt / plane));
}

int hmm__launch_run(int dev, hmm_kernel_fn kernel, struct hmm_dim3 grid,
		    void *args, const void *owner)
{
	struct job j = {
		.fn = kernel,
		.grid = grid,
		.args = args,
		.total = (uint64_t)grid.x * grid.y * grid.z,
		.owner = owner,
	};
	uint64_t t0 = hmm__now_ns();
	struct pool *p;
	HMM_MARK_LAUNCH(dev, kernel, grid);

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
	if (j.cpu_faults) {
		hmm__stats_launch_cpu_faults(dev, j.cpu_faults);
		warn_host_pointers(dev, kernel, j.cpu_faults);
	}
	if (j.fault_sig) {
		log_fault(dev, &j);
		return -EFAULT;
	}
	return 0;
}

HMM_EXPORT int hmm_launch(struct hmm_stream *s, hmm_kernel_fn kernel,
			  struct hmm_dim3 grid, void *args)
{
	HMM_KEEP_ERRNO();
	uint64_t plane;
	HMM_MARK_CALL("hmm_launch", s, kernel);

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
