/* SPDX-License-Identifier: MIT */
/*
 * hmm_private.h - declarations shared by the libhmm sources.
 *
 * Who owns what:
 *   device.c  - the device table: discovery, hotplug, file descriptors
 *   log.c     - HMM_LOG
 *   error.c   - hmm_strerror()
 *   memory.c  - managed allocations, the interval map, views, devptr
 *   migrate.c - prefetch, advice, attributes, residency
 *   memops.c  - hmm_memcpy(), hmm_memset(), hmm_discard(),
 *               hmm_prefetch_batch() and their queued forms
 *   stats.c   - hmm_get_stats() and the runtime's own counters
 *   stream.c  - streams, events, callbacks, device synchronize,
 *               hmm_shutdown() and the library's destructor
 *   launch.c  - the execution pools and hmm_launch()
 *   marker.c  - API markers for profilers (HMM_TRACE_MARKER) and
 *               hmm_set_name()
 */
#ifndef HMM_PRIVATE_H
#define HMM_PRIVATE_H

#include "hmm/hmm.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Marks the definition of a public function (built -fvisibility=hidden). */
#define HMM_EXPORT __attribute__((visibility("default")))

static inline void hmm__errno_restore(const int *saved)
{
	errno = *saved;
}

/*
 * The first line of every public function that returns 0 or -errno: the
 * C library calls it makes may change errno, and the caller's errno is
 * put back when the function returns, whatever it returns (its result is
 * the error).  Functions returning a pointer save and restore errno
 * themselves, since they set it when they fail.
 */
#define HMM_KEEP_ERRNO()                                                     \
	const int hmm__saved_errno                                           \
		__attribute__((cleanup(hmm__errno_restore), unused)) = errno

#define HMM_MAX_DEVICES 16

/* --- device.c ------------------------------------------------------------ */

/*
 * Number of devices (as hmm_device_count()), 0 when enumeration failed.
 * Device numbers stay valid for the life of the process: a removed
 * device keeps its number and hmm__device_fd() says -ENODEV for it.
 */
int hmm__device_count(void);

/*
 * The render-node file of device @dev, opened once by the library and
 * shared by all its parts (views, migrations and statistics of this
 * process live on it); -ENODEV when @dev is no device or was removed.
 */
int hmm__device_fd(int dev);


/* --- log.c --------------------------------------------------------------- */

enum hmm_log_level {
	HMM_LOG_ERROR = 0,
	HMM_LOG_WARN = 1,
	HMM_LOG_INFO = 2,
	HMM_LOG_DEBUG = 3,
};

/* Prints "libhmm: <message>\n" to stderr when HMM_LOG asks for @level. */
void hmm__log(enum hmm_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* --- memory.c / migrate.c ------------------------------------------------ */

/*
 * Checks the arguments of hmm_prefetch() without migrating: 0, -EINVAL
 * or -ENODEV.
 */
int hmm__prefetch_check(const void *ptr, size_t size, int dst);

/* hmm_prefetch() itself: what a stream runs for hmm_prefetch_async(). */
int hmm__prefetch(const void *ptr, size_t size, int dst);

/*
 * 0 when every byte of [@ptr, @ptr + @size) is managed, else -EINVAL
 * (logged at debug level as a call of @who).
 */
int hmm__mem_check(const char *who, const void *ptr, size_t size);

/* Views on @dev for the allocations there, before a prefetch to @dev. */
void hmm__mem_ensure_views(const void *ptr, size_t size, int dev);

/* Records @loc as the last prefetch location of the allocations there. */
void hmm__mem_set_last_prefetch(const void *ptr, size_t size, int loc);

/* hmm_advise() on the allocations of the range (arguments checked). */
int hmm__mem_advise(const void *ptr, size_t size, enum hmm_advice advice,
		    int dev, uint64_t value);

/*
 * The advice and last prefetch location of the range: a value the
 * allocations disagree on reads as HMM_LOC_NONE (0 for @granularity,
 * the common devices for the @remote and @accessed bit masks).
 */
int hmm__mem_get_attrs(const void *ptr, size_t size, int *preferred,
		       uint32_t *remote, uint32_t *accessed, uint32_t *atomic,
		       bool *read_mostly, int *last_prefetch,
		       uint64_t *granularity);

/*
 * 0 when [@ptr, @ptr + @size) can be accessed as @prot (PROT_READ and/or
 * PROT_WRITE) without a fault, any memory; -EFAULT when not; -ENOMEM.
 */
int hmm__mem_accessible(const void *ptr, size_t size, int prot);

/*
 * Discards the whole pages of [@ptr, @ptr + @size), which must be
 * managed and still mapped as they were (MADV_DONTNEED): 0, -EINVAL,
 * -ESTALE, or madvise()'s error.
 */
int hmm__mem_discard(const void *ptr, size_t size);
void *hmm__mem_device_alias(const void *ptr, size_t size, int *dev);

/* Frees the interval map's array when no range is left (hmm_shutdown()). */
void hmm__mem_shutdown(void);

/* readmostly.c: userfaultfd write protection of read-mostly memory. */
int hmm__rm_arm(uintptr_t base, size_t size);
void hmm__rm_disarm(uintptr_t base, size_t size);
void hmm__rm_fork_child(void);
void hmm__rm_shutdown(void);

/* MIGRATE of the page range [@start, @start + @len) to @dst; 0 or -errno. */
int hmm__migrate_raw(uintptr_t start, size_t len, int dst);

/* --- memops.c ----------------------------------------------------------- */

/* What a memory operation queued on a stream does. */
enum hmm__memop_kind {
	HMM__MEMOP_COPY,
	HMM__MEMOP_SET,
	HMM__MEMOP_PREFETCH_BATCH,
	HMM__MEMOP_DISCARD_BATCH,
};

/* A memory operation, run at once or queued on a stream (stream.c). */
struct hmm__memop {
	enum hmm__memop_kind kind;
	void *dst;               /* COPY, SET */
	const void *src;         /* COPY */
	size_t size;             /* COPY, SET */
	int value;               /* SET */
	const void **ptrs;       /* *_BATCH: owned copies of the */
	size_t *sizes;           /* caller's arrays, freed by _release() */
	size_t count;
	int loc;                 /* PREFETCH_BATCH: where to */
};

/* Runs @op: 0 or -errno. */
int hmm__memop_run(const struct hmm__memop *op);

/* Frees what @op owns (not @op). */
void hmm__memop_release(struct hmm__memop *op);

/* --- stream.c / launch.c ------------------------------------------------- */

/*
 * Queues @op on @s (a copy of it; it owns what @op owned), or releases
 * it: 0, -EINVAL, -ECHILD, -ENOMEM.
 */
int hmm__stream_memop(struct hmm_stream *s, const struct hmm__memop *op);

/* Queues a launch of @kernel over @grid on @s (arguments already checked). */
int hmm__stream_launch(struct hmm_stream *s, hmm_kernel_fn kernel,
		       struct hmm_dim3 grid, void *args);

/*
 * Runs @kernel over @grid on @dev's pool and waits: 0, -ENODEV, -EAGAIN,
 * or -EFAULT when a point faulted (SIGSEGV, SIGBUS; logged, the points
 * not started are skipped).  @owner is the stream the launch belongs to,
 * what hmm__exec_stream() says on the threads running it.
 */
int hmm__launch_run(int dev, hmm_kernel_fn kernel, struct hmm_dim3 grid,
		    void *args, const void *owner);

/*
 * Unblocks SIGSEGV and SIGBUS in the calling thread of the library (its
 * other signals stay blocked): a fault there reaches the application's
 * handler, or kills the process, as on any thread of the application.
 */
void hmm__unblock_fault_signals(void);

/*
 * The @owner of the launch whose kernel the calling execution thread
 * runs, NULL on other threads.
 */
const void *hmm__exec_stream(void);

/*
 * Waits for the work queued so far on every stream of this process, for
 * hmm_free() and hmm_unregister(); stream errors stay for the streams'
 * synchronize calls.  Return: 0, or -EDEADLK from a thread of the library
 * (a callback or a kernel would wait for itself).
 */
int hmm__streams_wait_all(void);

/* Whether the calling thread is an execution thread (runs kernels). */
bool hmm__in_exec_thread(void);

/* Whether a launch is running on some execution pool. */
bool hmm__launch_busy(void);

/*
 * Stops and joins the threads of every execution pool and frees the
 * pools (started again by the next launch): 0, or -EBUSY when a launch
 * runs (nothing is stopped then).
 */
int hmm__launch_shutdown(void);

/* --- stats.c ------------------------------------------------------------- */

/* Adds a completed prefetch of @bytes to @dst that took @ns. */
void hmm__stats_prefetch(int dst, uint64_t bytes, uint64_t ns);

/* Adds a completed launch on device @dev (or HMM_CPU) that took @ns. */
void hmm__stats_launch(int dev, uint64_t ns);
void hmm__stats_launch_cpu_faults(int dev, uint64_t n);

/* --- misc ---------------------------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t hmm__now_ns(void);

/* --- marker.c ------------------------------------------------------------ */

/*
 * The trace_marker file that HMM_TRACE_MARKER named, opened when the
 * library was loaded; -1 when nobody profiles (then a hook below costs
 * this test, and HMM__MARK() the few stores of its struct).
 */
extern int hmm__marker_fd;

static inline bool hmm__marking(void)
{
	return __builtin_expect(hmm__marker_fd >= 0, 0);
}

enum hmm__mark_kind {
	HMM__MARK_LAUNCH,   /* a kernel ran: @dev, @fn, @grid */
	HMM__MARK_PREFETCH, /* a prefetch ran: @a, @size, @dev */
	HMM__MARK_MEMOP,    /* a memory operation ran: @memop, @a, @b, @size */
	HMM__MARK_CALL,     /* an API call queued work on @stream: @name */
	HMM__MARK_SYNC,     /* an API call waited: @name, @stream */
	HMM__MARK_FREE,     /* hmm_free(@a) */
};

/* A marker being timed: HMM__MARK() starts it, scope exit writes it. */
struct hmm__mark {
	uint64_t t0;           /* 0: not profiling */
	enum hmm__mark_kind kind;
	const char *name;
	uintptr_t a, b;
	uint64_t size;
	int dev;
	int memop;             /* enum hmm__memop_kind */
	const void *fn;
	struct hmm_dim3 grid;
	uintptr_t stream;
	const void *caller;
};

/* Writes the marker @m (its duration ends now), when profiling. */
void hmm__mark_end(struct hmm__mark *m);

/* The cleanup handler of HMM__MARK(): no call when nobody profiles. */
static inline void hmm__mark_done(struct hmm__mark *m)
{
	if (__builtin_expect(m->t0 != 0, 0))
		hmm__mark_end(m);
}

/*
 * One line at the top of a function: times the function from there to
 * its return and writes the marker then (a cleanup handler).  The
 * fields are designated initializers of struct hmm__mark.
 */
#define HMM__MARK(...)                                                       \
	struct hmm__mark hmm__mark                                           \
		__attribute__((cleanup(hmm__mark_done), unused)) = {         \
			.t0 = hmm__marking() ? hmm__now_ns() : 0,            \
			.caller = __builtin_return_address(0), __VA_ARGS__ }

/* The hooks in the API functions, one line each. */
#define HMM__MARK_NO_DEV INT32_MIN
#define HMM_MARK_LAUNCH(dev_, kernel, grid_)                                 \
	HMM__MARK(.kind = HMM__MARK_LAUNCH, .dev = (dev_),                   \
		  .fn = (const void *)(uintptr_t)(kernel), .grid = (grid_))
#define HMM_MARK_CALL(name_, stream_, kernel)                                \
	HMM__MARK(.kind = HMM__MARK_CALL, .name = (name_),                   \
		  .stream = (uintptr_t)(stream_),                            \
		  .fn = (const void *)(uintptr_t)(kernel))
#define HMM_MARK_SYNC(name_, stream_, dev_)                                  \
	HMM__MARK(.kind = HMM__MARK_SYNC, .name = (name_),                   \
		  .stream = (uintptr_t)(stream_), .dev = (dev_))
#define HMM_MARK_PREFETCH(ptr, size_, dst)                                   \
	HMM__MARK(.kind = HMM__MARK_PREFETCH, .a = (uintptr_t)(ptr),         \
		  .size = (size_), .dev = (dst))
#define HMM_MARK_MEMOP(op)                                                   \
	HMM__MARK(.kind = HMM__MARK_MEMOP, .memop = (int)(op)->kind,         \
		  .a = (uintptr_t)(op)->dst, .b = (uintptr_t)(op)->src,      \
		  .size = (op)->size)
#define HMM_MARK_FREE(ptr)                                                   \
	HMM__MARK(.kind = HMM__MARK_FREE, .a = (uintptr_t)(ptr))

/* An allocation of @size bytes at @ptr, asked for at @caller. */
void hmm__mark_alloc(const void *ptr, size_t size, const void *caller);

/*
 * The calling thread runs an item of stream @stream (a handle) on @dev:
 * its worker.  The first call on a thread writes a "stream" marker.
 */
void hmm__mark_stream(uintptr_t stream, int dev);

#endif /* HMM_PRIVATE_H */
