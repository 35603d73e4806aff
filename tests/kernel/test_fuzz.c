// SPDX-License-Identifier: MIT
/*
 * test_fuzz.c - a seeded, time-bounded fuzzer of the render node: random
 * hmmgpu and DRM core ioctls from several threads while other threads
 * map, unmap, move and protect the memory those ioctls name (also with
 * userfaultfd write protection, which a handler thread lifts), fork
 * children, open and close render-node files, and mmap the node (views)
 * with random offsets, lengths and protections and touch what maps.
 *
 * It passes when it ends in time, every ioctl returned 0 or failed with
 * an errno of an expected set (the errnos seen are printed), no thread
 * crashed outside the guarded touches, no child died of a signal, and
 * the devices' memory is all free again once everything is unmapped and
 * closed.  The VM runner fails the run on any kernel report.
 *
 * Environment: HMM_FUZZ_SECONDS (default 20), HMM_FUZZ_SEED (default
 * from the clock; printed first as "# seed N").  A seed gives every
 * thread the same sequence of operations again; how the threads
 * interleave is up to the scheduler, so a race found under one seed may
 * need a few runs (or a longer one) to show again.
 *
 * Every address the fuzzer writes through or lets the kernel write to
 * lies in its own arena: slots of 2 MiB between two large PROT_NONE
 * guards, which only the memory and mmap threads change, each slot under
 * its own lock, always with MAP_FIXED inside the arena.  Nothing else of
 * the process maps memory while the fuzzer runs (its threads exist
 * before the first hole appears), so a hole in the arena is never
 * reused by anyone else.
 *
 * Runs inside the test VM with hmmgpu.ko loaded (tools/vm/hmmvm test).
 */
#define _GNU_SOURCE
#include "kt_common.h"
#include "kt_rng.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1UL << 20)
#define NSLOTS 16
#define SLOT (2 * MIB)
#define GUARD (64 * MIB) /* > any size the fuzzer lets reach past a slot */
#define NFILES 8	 /* render-node files; the first per device stay */
#define NVIEWS 32
#define NIOCTL_THREADS 4
#define MAX_ERRNO 134

#define DEFAULT_SECONDS 60
/* The test's time limit: the run, the final wait for memory, margin. */
#define TIMEOUT_MARGIN 100

/* --- seeded random numbers ------------------------------------------------ */


/* Mostly zero (a valid flags/pad/extensions field), sometimes not. */
static uint64_t junk(struct rng *r, unsigned int pct_bad)
{
	if (!chance(r, pct_bad))
		return 0;
	switch (below(r, 4)) {
	case 0:
		return 1;
	case 1:
		return 1ULL << below(r, 64);
	case 2:
		return ~0ULL;
	default:
		return rnd(r);
	}
}

/* --- shared state --------------------------------------------------------- */

enum slot_state { SLOT_HOLE, SLOT_ANON, SLOT_NODE, SLOT_LOST };

struct slot {
	pthread_mutex_t lock;	/* protects the slot's mappings, fields */
	enum slot_state state;
	size_t len;		/* bytes from its start that may be mapped */
};

static size_t ps;
static char *region;		/* guard | slots | guard */
static size_t region_len;
static char *arena;		/* the slots */
static char *arena_end;		/* end of the high guard */
static struct slot slots[NSLOTS];

static atomic_bool stop;
static int ndev;
static char node_path[KT_MAX_NODES][64];
static _Atomic int files[NFILES];
static int null_fd;

struct fview {
	bool used;
	int fd;
	uint32_t handle;
	uint64_t offset;
	uint64_t size;
};
static pthread_mutex_t views_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fview views[NVIEWS]; /* protected by views_lock */

/* --- results ------------------------------------------------------------- */

enum op {
	OP_GET_INFO, OP_MIGRATE, OP_RESIDENCY, OP_STATS, OP_VIEW_REGISTER,
	OP_VIEW_UNREGISTER, OP_VIEW_ADVISE, OP_CORE, OP_BAD_NR, OP_MMAP,
	OP_SNAPSHOT, OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
	"GET_INFO", "MIGRATE", "RESIDENCY", "STATS", "VIEW_REGISTER",
	"VIEW_UNREGISTER", "VIEW_ADVISE", "core", "bad-nr", "node mmap",
	"SNAPSHOT",
};

static atomic_ulong op_ok[OP_COUNT];
static atomic_ulong op_err[OP_COUNT][MAX_ERRNO];
static atomic_ulong n_ioctls, n_mem_ops, n_node_maps, n_forks, n_reopens;
static atomic_ulong n_wp_ops, n_wp_done, n_wp_faults;
static atomic_ulong n_touch, n_touch_sig[2]; /* SIGBUS, SIGSEGV */
static atomic_ulong n_lost, n_child_bad;

static pthread_mutex_t bad_lock = PTHREAD_MUTEX_INITIALIZER;
static char bad_call[512]; /* the first unexpected result */
static atomic_ulong n_bad;

static bool errno_expected(enum op op, int err)
{
	switch (err) {
	case EINVAL: case EFAULT: case ENOENT: case EACCES: case ENOMEM:
	case ENOSPC: case EBUSY: case EOPNOTSUPP: case ENODEV: case EPERM:
	case ENOTTY: case EBADF: case ERANGE: case EOVERFLOW:
		return true;
	case ENOSYS: /* PRIME without callbacks (Linux 6.1) */
		return op == OP_CORE;
	default:
		return false;
	}
}

/*
 * Counts the result of one call (@ret, errno); an unexpected one is kept
 * with the call's arguments (@fmt) and fails the test at the end.
 */
static void __attribute__((format(printf, 3, 4)))
note(enum op op, long ret, const char *fmt, ...)
{
	int err = errno;
	va_list ap;
	size_t n;

	if (ret == 0 || (op == OP_MMAP && ret != -1)) {
		op_ok[op]++;
		return;
	}
	if (ret == -1 && err > 0 && err < MAX_ERRNO) {
		op_err[op][err]++;
		if (errno_expected(op, err))
			return;
	}
	if (n_bad++)
		return;
	pthread_mutex_lock(&bad_lock);
	n = snprintf(bad_call, sizeof(bad_call), "%s returned %ld errno %d "
		     "(%s): ", op_names[op], ret, err, strerror(err));
	va_start(ap, fmt);
	if (n < sizeof(bad_call))
		vsnprintf(bad_call + n, sizeof(bad_call) - n, fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&bad_lock);
}

/* --- what each thread is doing (for a stall report) ---------------------- */

#define NTHREADS (NIOCTL_THREADS + 3)
/* After the run, how long the threads have to finish before a stall. */
#define STALL_SECONDS 30

struct activity {
	atomic_int tid;
	_Atomic(const char *) what;	/* NULL between operations */
	_Atomic uintptr_t addr;		/* of a touch */
	atomic_bool write;
	atomic_bool done;
};

static uint64_t seeds[NTHREADS];
static struct activity acts[NTHREADS];
static __thread struct activity *me;

/* The calling thread is fuzzer thread @arg (a pointer into seeds[]). */
static uint64_t thread_begin(void *arg)
{
	me = &acts[(uint64_t *)arg - seeds];
	me->tid = gettid();
	return *(uint64_t *)arg;
}

static void thread_end(void)
{
	me->what = NULL;
	me->done = true;
}

static void doing(const char *what)
{
	if (me)
		me->what = what;
}

/* --- guarded touches ------------------------------------------------------ */

static __thread sigjmp_buf touch_env;
static __thread volatile sig_atomic_t touch_armed;

static void touch_handler(int sig, siginfo_t *si, void *uctx)
{
	(void)si;
	(void)uctx;
	if (!touch_armed) {
		/* not a guarded touch: the access runs again and kills */
		signal(sig, SIG_DFL);
		return;
	}
	touch_armed = 0;
	siglongjmp(touch_env, sig);
}

/* Reads or writes the byte at @p: 0, or the signal that stopped it. */
static int touch(char *p, bool write, uint8_t val)
{
	volatile char *v = p;
	int sig;

	const char *outer = me ? me->what : NULL;

	if (me) {
		me->addr = (uintptr_t)p;
		me->write = write;
	}
	doing("touch");
	sig = sigsetjmp(touch_env, 1);
	if (sig) {
		doing(outer);
		return sig;
	}
	touch_armed = 1;
	if (write)
		*v = val;
	else
		(void)*v;
	touch_armed = 0;
	doing(outer);
	return 0;
}

static void touch_count(char *p, bool write, uint8_t val)
{
	int sig = touch(p, write, val);

	n_touch++;
	if (sig == SIGBUS)
		n_touch_sig[0]++;
	else if (sig == SIGSEGV)
		n_touch_sig[1]++;
}

/* --- addresses, sizes, files --------------------------------------------- */

static char *slot_addr(unsigned int i)
{
	return arena + (size_t)i * SLOT;
}

static uint64_t page_in_arena(struct rng *r)
{
	return (uintptr_t)arena + below(r, NSLOTS * SLOT / ps) * ps;
}

/*
 * An address for an ioctl: mostly a page of the arena, else unaligned, in
 * the low guard, never mappable (below mmap_min_addr), a kernel address,
 * non-canonical, or the top of the address space.
 */
static uint64_t any_addr(struct rng *r)
{
	switch (below(r, 24)) {
	case 0:
		return below(r, 16) * ps; /* below mmap_min_addr */
	case 1:
		return 0xffff888000000000ULL + below(r, 1 << 20) * ps;
	case 2:
		return (~0ULL << 47) + below(r, 1 << 20) * ps;
	case 3:
		return 0x0000800000000000ULL + below(r, 1 << 20) * ps;
	case 4:
		return -(uint64_t)ps * (1 + below(r, 4));
	case 5:
	case 6:
		return page_in_arena(r) + 1 + below(r, ps - 1);
	case 7:
		return (uintptr_t)region + below(r, GUARD / ps) * ps;
	default:
		return page_in_arena(r);
	}
}

/*
 * A size for a range at @start: mostly pages that stay inside the arena
 * and its high guard, else zero, unaligned, 1 TiB and more, or wrapping.
 */
static uint64_t any_size(struct rng *r, uint64_t start)
{
	uint64_t size, end = (uintptr_t)arena_end;

	switch (below(r, 20)) {
	case 0:
		return 0;
	case 1:
		return 1 + below(r, 4 * ps);
	case 2:
		return 1ULL << 40;
	case 3:
		return (1ULL << 40) - ps;
	case 4:
		return -start + ps * below(r, 3); /* wraps, or ends at 0 */
	case 5:
		return ~0ULL - ps + 1;
	default:
		size = (1 + (chance(r, 70) ? below(r, 64) : below(r, 1024))) *
		       ps;
		if (start >= (uintptr_t)region && start < end &&
		    size > end - start)
			size = (end - start) & ~(uint64_t)(ps - 1);
		return size ? size : ps;
	}
}

/* A file descriptor: mostly a render node, else closed or not DRM. */
static int any_fd(struct rng *r)
{
	unsigned int k = below(r, 100);

	if (k < 65)
		return files[below(r, ndev)];
	if (k < 93)
		return files[below(r, NFILES)];
	if (k < 96)
		return null_fd;
	return k < 98 ? -1 : 999;
}

/* A view this fuzzer registered, or false. */
static bool any_view(struct rng *r, struct fview *v)
{
	unsigned int i = below(r, NVIEWS);
	bool ok;

	pthread_mutex_lock(&views_lock);
	ok = views[i].used;
	if (ok)
		*v = views[i];
	pthread_mutex_unlock(&views_lock);
	return ok;
}

static uint32_t any_handle(struct rng *r)
{
	struct fview v;

	if (chance(r, 70) && any_view(r, &v))
		return v.handle;
	switch (below(r, 3)) {
	case 0:
		return below(r, 64);
	case 1:
		return (1U << 20) - 1 + below(r, 2);
	default:
		return rnd(r);
	}
}

/* --- the ioctls ----------------------------------------------------------- */

/* The argument pointer: mostly @arg, sometimes one the kernel cannot use. */
static void *any_arg(struct rng *r, void *arg)
{
	if (!chance(r, 3))
		return arg;
	switch (below(r, 3)) {
	case 0:
		return NULL;
	case 1:
		return (void *)0xffff888000000000ULL;
	default:
		return (void *)(uintptr_t)page_in_arena(r);
	}
}

static void fuzz_get_info(struct rng *r)
{
	struct drm_hmmgpu_get_info a;
	int fd = any_fd(r);
	long ret;

	memset(&a, 0xa5, sizeof(a));
	a.flags = junk(r, 10);
	a.pad = junk(r, 10);
	a.extensions = junk(r, 10);
	ret = ioctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, any_arg(r, &a));
	note(OP_GET_INFO, ret, "fd %d flags %#x pad %#x ext %#llx", fd,
	     a.flags, a.pad, (unsigned long long)a.extensions);
}

static void fuzz_migrate(struct rng *r)
{
	struct drm_hmmgpu_migrate a;
	int fd = any_fd(r);
	long ret;

	memset(&a, 0xa5, sizeof(a));
	a.start = any_addr(r);
	a.size = any_size(r, a.start);
	a.target = chance(r, 95) ? below(r, 2) : (uint32_t)rnd(r);
	a.flags = junk(r, 5);
	a.extensions = junk(r, 5);
	a.pad = junk(r, 5);
	ret = ioctl(fd, DRM_IOCTL_HMMGPU_MIGRATE, any_arg(r, &a));
	note(OP_MIGRATE, ret, "fd %d start %#llx size %#llx target %u "
	     "flags %#x ext %#llx pad %#llx", fd,
	     (unsigned long long)a.start, (unsigned long long)a.size,
	     a.target, a.flags, (unsigned long long)a.extensions,
	     (unsigned long long)a.pad);
}

/* A page count for RESIDENCY and SNAPSHOT: mostly small, some bounds. */
static uint64_t any_npages(struct rng *r)
{
	switch (below(r, 10)) {
	case 0:
		return 0;
	case 1:
		return (1ULL << 24) + below(r, 2) - 1;
	case 2:
		return rnd(r);
	default:
		return 1 + below(r, chance(r, 80) ? 64 : 4096);
	}
}

static void fuzz_residency(struct rng *r)
{
	struct drm_hmmgpu_residency a;
	int fd = any_fd(r);
	uint64_t room;
	long ret;

	memset(&a, 0xa5, sizeof(a));
	a.start = any_addr(r);
	a.npages = any_npages(r);
	/*
	 * The kernel writes up to 1 << 24 bytes at @locations: only in the
	 * arena, whose high guard stops anything longer, or where it faults.
	 */
	a.locations = chance(r, 85) ? page_in_arena(r) + below(r, 64) :
				      any_addr(r);
	room = (uintptr_t)arena_end - a.locations;
	if (a.locations >= (uintptr_t)arena &&
	    a.locations < (uintptr_t)arena_end &&
	    a.npages > room && a.npages <= 1ULL << 24)
		a.npages = room;
	a.flags = junk(r, 5);
	a.pad = junk(r, 5);
	ret = ioctl(fd, DRM_IOCTL_HMMGPU_RESIDENCY, any_arg(r, &a));
	note(OP_RESIDENCY, ret, "fd %d start %#llx npages %#llx loc %#llx "
	     "flags %#x pad %#x", fd, (unsigned long long)a.start,
	     (unsigned long long)a.npages, (unsigned long long)a.locations,
	     a.flags, a.pad);
}

static void fuzz_snapshot(struct rng *r)
{
	struct drm_hmmgpu_snapshot a;
	int fd = any_fd(r);
	uint64_t room;
	long ret;

	memset(&a, 0xa5, sizeof(a));
	a.start = any_addr(r);
	a.npages = any_npages(r);
	/* four bytes a page: only in the arena (its guard stops more), or bad */
	a.pages = chance(r, 85) ? page_in_arena(r) + 4 * below(r, 16) :
				  any_addr(r);
	room = ((uintptr_t)arena_end - a.pages) / 4;
	if (a.pages >= (uintptr_t)arena && a.pages < (uintptr_t)arena_end &&
	    a.npages > room && a.npages <= 1ULL << 24)
		a.npages = room;
	a.flags = junk(r, 5);
	a.pad = junk(r, 5);
	a.extensions = junk(r, 5);
	ret = ioctl(fd, DRM_IOCTL_HMMGPU_SNAPSHOT, any_arg(r, &a));
	note(OP_SNAPSHOT, ret, "fd %d start %#llx npages %#llx pages %#llx "
	     "flags %#x pad %#x ext %#llx", fd, (unsigned long long)a.start,
	     (unsigned long long)a.npages, (unsigned long long)a.pages,
	     a.flags, a.pad, (unsigned long long)a.extensions);
}

static void fuzz_stats(struct rng *r)
{
	struct drm_hmmgpu_stats a;
	int fd = any_fd(r);
	long ret;

	memset(&a, 0xa5, sizeof(a));
	a.scope = chance(r, 90) ? below(r, 2) : (uint32_t)rnd(r);
	a.flags = junk(r, 5);
	a.extensions = junk(r, 5);
	ret = ioctl(fd, DRM_IOCTL_HMMGPU_STATS, any_arg(r, &a));
	note(OP_STATS, ret, "fd %d scope %u flags %#x ext %#llx", fd, a.scope,
	     a.flags, (unsigned long long)a.extensions);
}

static int view_unregister(int fd, uint32_t handle, uint32_t pad)
{
	struct drm_hmmgpu_view_unregister a = { .handle = handle, .pad = pad };
	long ret = ioctl(fd, DRM_IOCTL_HMMGPU_VIEW_UNREGISTER, &a);

	note(OP_VIEW_UNREGISTER, ret, "fd %d handle %u pad %#x", fd, handle,
	     pad);
	return ret;
}

static void forget_view(int fd, uint32_t handle)
{
	pthread_mutex_lock(&views_lock);
	for (int i = 0; i < NVIEWS; i++)
		if (views[i].used && views[i].fd == fd &&
		    views[i].handle == handle)
			views[i].used = false;
	pthread_mutex_unlock(&views_lock);
}

static void fuzz_view_register(struct rng *r)
{
	struct drm_hmmgpu_view_register a;
	struct fview old = { 0 };
	int fd = any_fd(r), i;
	long ret;

	memset(&a, 0xa5, sizeof(a));
	a.start = chance(r, 80) ? page_in_arena(r) : any_addr(r);
	a.size = any_size(r, a.start);
	a.flags = junk(r, 5);
	a.extensions = junk(r, 5);
	ret = ioctl(fd, DRM_IOCTL_HMMGPU_VIEW_REGISTER, any_arg(r, &a));
	note(OP_VIEW_REGISTER, ret, "fd %d start %#llx size %#llx flags %#x "
	     "ext %#llx", fd, (unsigned long long)a.start,
	     (unsigned long long)a.size, a.flags,
	     (unsigned long long)a.extensions);
	if (ret)
		return;
	/* keep it for the mmap thread, in the place of a random one */
	i = below(r, NVIEWS);
	pthread_mutex_lock(&views_lock);
	old = views[i];
	views[i] = (struct fview){ .used = true, .fd = fd, .handle = a.handle,
				   .offset = a.offset, .size = a.size };
	pthread_mutex_unlock(&views_lock);
	if (old.used)
		view_unregister(old.fd, old.handle, 0);
}

static void fuzz_view_unregister(struct rng *r)
{
	int fd = any_fd(r);
	uint32_t handle = any_handle(r);

	if (!view_unregister(fd, handle, junk(r, 5)))
		forget_view(fd, handle);
}

static void fuzz_view_advise(struct rng *r)
{
	struct drm_hmmgpu_view_advise a;
	struct fview v;
	int fd;
	long ret;

	if (chance(r, 80) && any_view(r, &v)) {
		fd = chance(r, 90) ? v.fd : any_fd(r);
		a.handle = v.handle;
	} else {
		fd = any_fd(r);
		a.handle = any_handle(r);
	}
	a.advice = chance(r, 90) ? 1 + below(r, HMMGPU_ADVICE_READ_MOSTLY) :
				   (uint32_t)rnd(r);
	if (a.advice == HMMGPU_ADVICE_GRANULARITY)
		a.value = chance(r, 85) ? ps << below(r, 10) :
					  rnd(r) >> below(r, 64);
	else
		a.value = chance(r, 90) ? below(r, 2) : rnd(r);
	ret = ioctl(fd, DRM_IOCTL_HMMGPU_VIEW_ADVISE, any_arg(r, &a));
	note(OP_VIEW_ADVISE, ret, "fd %d handle %u advice %u value %#llx", fd,
	     a.handle, a.advice, (unsigned long long)a.value);
}

/* A writable buffer for the kernel: the arena (bounded by its guard) or bad. */
static void *any_out_ptr(struct rng *r)
{
	return (void *)(uintptr_t)(chance(r, 80) ? page_in_arena(r) +
						   below(r, ps) :
						   any_addr(r));
}

/* A few DRM core ioctls, with random arguments. */
static void fuzz_core(struct rng *r)
{
	union {
		struct drm_version version;
		struct drm_get_cap cap;
		struct drm_set_client_cap ccap;
		struct drm_gem_close gclose;
		struct drm_prime_handle prime;
		struct drm_syncobj_create sync;
		struct drm_unique unique;
		uint8_t bytes[256];
	} a;
	int fd = any_fd(r), k = below(r, 8);
	unsigned long cmd;
	long ret;

	for (size_t i = 0; i < sizeof(a.bytes) / 8; i++)
		((uint64_t *)a.bytes)[i] = chance(r, 50) ? 0 : rnd(r);
	switch (k) {
	case 0:
		cmd = DRM_IOCTL_VERSION;
		a.version.name_len = below(r, 2) ? below(r, 64) : rnd(r);
		a.version.name = any_out_ptr(r);
		a.version.date_len = below(r, 64);
		a.version.date = any_out_ptr(r);
		a.version.desc_len = below(r, 2) ? below(r, 64) : rnd(r);
		a.version.desc = any_out_ptr(r);
		break;
	case 1:
		cmd = DRM_IOCTL_GET_CAP;
		a.cap.capability = chance(r, 80) ? below(r, 0x20) : rnd(r);
		break;
	case 2:
		cmd = DRM_IOCTL_SET_CLIENT_CAP;
		a.ccap.capability = chance(r, 80) ? below(r, 8) : rnd(r);
		a.ccap.value = below(r, 3);
		break;
	case 3:
		cmd = DRM_IOCTL_GEM_CLOSE;
		a.gclose.handle = below(r, 4);
		a.gclose.pad = junk(r, 20);
		break;
	case 4:
		cmd = DRM_IOCTL_PRIME_HANDLE_TO_FD;
		a.prime.handle = below(r, 4);
		a.prime.flags = chance(r, 50) ? DRM_CLOEXEC :
						(uint32_t)junk(r, 50);
		a.prime.fd = -1;
		break;
	case 5:
		cmd = DRM_IOCTL_PRIME_FD_TO_HANDLE;
		a.prime.fd = any_fd(r);
		a.prime.flags = junk(r, 20);
		break;
	case 6:
		cmd = DRM_IOCTL_SYNCOBJ_CREATE;
		a.sync.flags = junk(r, 30);
		break;
	default:
		cmd = DRM_IOCTL_GET_UNIQUE;
		a.unique.unique_len = below(r, 2) ? below(r, 64) : rnd(r);
		a.unique.unique = any_out_ptr(r);
		break;
	}
	ret = ioctl(fd, cmd, any_arg(r, &a));
	note(OP_CORE, ret, "fd %d cmd %#lx", fd, cmd);
	if (ret == 0 && k == 4 && a.prime.fd >= 0)
		close(a.prime.fd); /* no GEM object: should not happen */
	if (ret == 0 && k == 6) {
		struct drm_syncobj_destroy d = { .handle = a.sync.handle };

		ioctl(fd, DRM_IOCTL_SYNCOBJ_DESTROY, &d);
	}
}

/*
 * Driver ioctl numbers of no ioctl, and hmmgpu's own numbers encoded with
 * another size (the DRM core copies what the encoding says, and zeroes
 * the rest of the driver's struct).
 */
static void fuzz_bad_nr(struct rng *r)
{
	uint8_t a[256] __attribute__((aligned(8)));
	unsigned int nr = DRM_COMMAND_BASE +
			  (chance(r, 50) ? below(r, 8) : below(r, 0x60));
	unsigned int dir = below(r, 4), size = below(r, sizeof(a));
	int fd = any_fd(r);
	long ret;

	memset(a, 0, sizeof(a));
	for (size_t i = 0; i < sizeof(a) / 8; i++)
		if (chance(r, 20))
			((uint64_t *)a)[i] = rnd(r);
	ret = ioctl(fd, _IOC(dir, DRM_IOCTL_BASE, nr, size), a);
	note(OP_BAD_NR, ret, "fd %d nr %#x dir %u size %u", fd, nr, dir, size);
}

static void ioctl_thread(void *arg)
{
	struct rng r = { thread_begin(arg) };

	while (!stop) {
		unsigned int k = below(&r, 100);

		doing("ioctl");
		if (k < 8)
			fuzz_get_info(&r);
		else if (k < 33)
			fuzz_migrate(&r);
		else if (k < 42)
			fuzz_residency(&r);
		else if (k < 48)
			fuzz_snapshot(&r);
		else if (k < 55)
			fuzz_stats(&r);
		else if (k < 73)
			fuzz_view_register(&r);
		else if (k < 78)
			fuzz_view_unregister(&r);
		else if (k < 88)
			fuzz_view_advise(&r);
		else if (k < 96)
			fuzz_core(&r);
		else
			fuzz_bad_nr(&r);
		n_ioctls++;
	}
	thread_end();
}

/* --- the memory the ioctls name ------------------------------------------- */

static int any_prot(struct rng *r)
{
	static const int prots[] = { PROT_READ | PROT_WRITE, PROT_READ,
				     PROT_NONE, PROT_WRITE };

	return chance(r, 70) ? prots[0] : prots[below(r, 4)];
}

/* A random page-aligned sub-range of @len bytes: *@off, returns length. */
static size_t any_subrange(struct rng *r, size_t len, size_t *off)
{
	size_t npages = len / ps, first = below(r, npages);

	*off = first * ps;
	return (1 + below(r, npages - first)) * ps;
}

/* Touches a few random bytes of the arena (any slot, any state). */
static void touch_arena(struct rng *r, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		touch_count((char *)(uintptr_t)page_in_arena(r) + below(r, ps),
			    chance(r, 60), rnd(r));
}

/* Slot @i (locked) becomes a fresh anonymous mapping. */
static void slot_map_anon(struct rng *r, unsigned int i)
{
	struct slot *s = &slots[i];
	size_t len = chance(r, 30) ? SLOT : (1 + below(r, SLOT / ps)) * ps;
	int flags = MAP_FIXED_NOREPLACE | MAP_ANONYMOUS, prot = any_prot(r);
	char *p;

	flags |= chance(r, 90) ? MAP_PRIVATE : MAP_SHARED;
	if (chance(r, 10))
		flags |= MAP_POPULATE;
	if (chance(r, 3))
		flags |= MAP_LOCKED;
	munmap(slot_addr(i), SLOT);
	s->state = SLOT_HOLE;
	p = mmap(slot_addr(i), len, prot, flags, -1, 0);
	if (p == MAP_FAILED) {
		if (errno == EEXIST) {
			/* not ours: never again (cannot happen, see top) */
			s->state = SLOT_LOST;
			n_lost++;
		}
		return;
	}
	s->state = SLOT_ANON;
	s->len = len;
	if (chance(r, 40))
		madvise(p, len,
			chance(r, 50) ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	if (prot & PROT_WRITE)
		for (size_t off = 0; off < len; off += ps * (1 + below(r, 8)))
			touch_count(p + off, true, i);
}

/*
 * Userfaultfd write protection of arena memory, lifted page by page by a
 * handler thread when anyone writes (a CPU touch, the kernel, or a device
 * write through a view, which waits for it too): read-mostly views copy
 * protected pages of writable memory.  Without userfaultfd, no such ops.
 */
static unsigned long env_ulong(const char *name, unsigned long def);

static int wp_uffd = -1, wp_stop[2] = { -1, -1 };
static struct kt_thread wp_thread;

static void wp_serve(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = wp_uffd, .events = POLLIN },
			{ .fd = wp_stop[0], .events = POLLIN },
		};
		struct uffdio_writeprotect wp = { .mode = 0 };
		struct uffd_msg msg;

		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			HMMT_FAIL("poll: %s", strerror(errno));
		if (pfd[1].revents)
			break;
		if (read(wp_uffd, &msg, sizeof(msg)) != sizeof(msg) ||
		    msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		wp.range.start = msg.arg.pagefault.address & ~(ps - 1);
		wp.range.len = ps;
		n_wp_faults++;
		/* gone meanwhile: wake the writer, its retry sees what is */
		if (ioctl(wp_uffd, UFFDIO_WRITEPROTECT, &wp))
			(void)ioctl(wp_uffd, UFFDIO_WAKE, &wp.range);
	}
}

static void wp_setup(void)
{
	struct uffdio_api api = { .api = UFFD_API };

	/*
	 * Opt-in (HMM_FUZZ_UFFD=1) until the fault loops it finds on 6.1 are
	 * understood (docs/testing-vm.md).
	 */
	if (!env_ulong("HMM_FUZZ_UFFD", 0))
		return;
	wp_uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (wp_uffd < 0)
		return;
	if (ioctl(wp_uffd, UFFDIO_API, &api) ||
	    !(api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		close(wp_uffd);
		wp_uffd = -1;
		return;
	}
	ASSERT_EQ(pipe(wp_stop), 0);
	kt_start(&wp_thread, wp_serve, NULL);
}

/* After every other thread: nobody can wait for the handler any more. */
static void wp_teardown(void)
{
	if (wp_uffd < 0)
		return;
	kt_pipe_signal(wp_stop[1]);
	kt_join(&wp_thread);
	close(wp_uffd);
	close(wp_stop[0]);
	close(wp_stop[1]);
}

/* Registers, protects, unprotects or unregisters [@p, @p + @len). */
static void wp_op(struct rng *r, char *p, size_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	struct uffdio_writeprotect wp = {
		.range = reg.range,
		.mode = chance(r, 70) ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};
	int k = below(r, 100), ret;

	if (wp_uffd < 0)
		return;
	/* errors (a view, a hole, not registered) are fine */
	if (k < 50)
		ret = ioctl(wp_uffd, UFFDIO_REGISTER, &reg);
	else if (k < 90)
		ret = ioctl(wp_uffd, UFFDIO_WRITEPROTECT, &wp);
	else
		ret = ioctl(wp_uffd, UFFDIO_UNREGISTER, &reg.range);
	/* mostly protected at once: a slot rarely stays long enough */
	if (!ret && k < 50 && chance(r, 80)) {
		wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
		ret = ioctl(wp_uffd, UFFDIO_WRITEPROTECT, &wp);
	}
	n_wp_ops++;
	n_wp_done += !ret;
	/* writes that meet the protection (a touch is rare otherwise) */
	if (!ret && k < 90)
		for (unsigned int t = below(r, 4); t; t--)
			touch_count(p + below(r, len), chance(r, 80), rnd(r));
}

/* One operation on the memory of a random slot. */
static void mem_op(struct rng *r)
{
	unsigned int i = below(r, NSLOTS), j;
	struct slot *s = &slots[i];
	size_t off, len;
	int k = below(r, 100);

	pthread_mutex_lock(&s->lock);
	if (s->state == SLOT_LOST)
		goto out;
	if (s->state == SLOT_HOLE || k < 25) {
		slot_map_anon(r, i);
		goto out;
	}
	len = any_subrange(r, s->len, &off);
	if (k < 40) {
		munmap(slot_addr(i) + off, len);
		if (off == 0 && len == s->len)
			s->state = SLOT_HOLE;
	} else if (k < 55) {
		mprotect(slot_addr(i) + off, len, any_prot(r));
	} else if (k < 62) {
		/* shrink or grow in place, within the slot */
		size_t nlen = (1 + below(r, SLOT / ps)) * ps;

		if (mremap(slot_addr(i), s->len, nlen, 0) != MAP_FAILED)
			s->len = nlen;
	} else if (k < 70 && s->state == SLOT_ANON) {
		/* move to another slot (locked in order) */
		j = below(r, NSLOTS);
		if (j > i && pthread_mutex_trylock(&slots[j].lock) == 0) {
			if (slots[j].state != SLOT_LOST) {
				munmap(slot_addr(j), SLOT);
				slots[j].state = SLOT_HOLE;
				if (mremap(slot_addr(i), s->len, s->len,
					   MREMAP_MAYMOVE | MREMAP_FIXED,
					   slot_addr(j)) != MAP_FAILED) {
					slots[j].state = SLOT_ANON;
					slots[j].len = s->len;
					s->state = SLOT_HOLE;
				}
			}
			pthread_mutex_unlock(&slots[j].lock);
		}
	} else if (k < 80) {
		static const int advice[] = { MADV_DONTNEED, MADV_HUGEPAGE,
					      MADV_NOHUGEPAGE, MADV_COLD,
					      MADV_PAGEOUT, MADV_FREE };

		madvise(slot_addr(i) + off, len, advice[below(r, 6)]);
	} else if (k < 83) {
		if (chance(r, 50))
			mlock(slot_addr(i) + off, len);
		else
			munlock(slot_addr(i) + off, len);
	} else if (k < 88) {
		wp_op(r, slot_addr(i) + off, len);
	} else {
		touch_arena(r, 1 + below(r, 16));
	}
out:
	pthread_mutex_unlock(&s->lock);
	n_mem_ops++;
}

static void mem_thread(void *arg)
{
	struct rng r = { thread_begin(arg) };

	while (!stop) {
		doing("memory op");
		mem_op(&r);
	}
	thread_end();
}

/* --- mmap of the render node ---------------------------------------------- */

static void node_map(struct rng *r)
{
	unsigned int i = below(r, NSLOTS);
	struct slot *s = &slots[i];
	int prot = any_prot(r), flags = MAP_FIXED, fd;
	uint64_t offset, len;
	struct fview v;
	char *p;

	if (chance(r, 85) && any_view(r, &v)) {
		size_t vpages = v.size / ps, first = below(r, vpages);

		fd = chance(r, 97) ? v.fd : any_fd(r);
		offset = v.offset + first * ps;
		len = (1 + below(r, vpages - first)) * ps;
		if (chance(r, 5))
			len += ps; /* past the view's end */
		if (chance(r, 5))
			offset += 1 + below(r, ps - 1);
	} else {
		fd = any_fd(r);
		offset = chance(r, 50) ? below(r, 64) << 40 :
					 rnd(r) & ~(ps - 1);
		len = (1 + below(r, 16)) * ps;
	}
	if (len > SLOT)
		len = SLOT;
	flags |= chance(r, 92) ? MAP_SHARED : MAP_PRIVATE;
	if (chance(r, 5))
		flags |= MAP_POPULATE;

	pthread_mutex_lock(&s->lock);
	if (s->state == SLOT_LOST)
		goto out;
	munmap(slot_addr(i), SLOT);
	s->state = SLOT_HOLE;
	p = mmap(slot_addr(i), len, prot, flags, fd, offset);
	note(OP_MMAP, p == MAP_FAILED ? -1 : 0, "fd %d offset %#llx len %#llx "
	     "prot %#x flags %#x", fd, (unsigned long long)offset,
	     (unsigned long long)len, prot, flags);
	if (p == MAP_FAILED)
		goto out;
	n_node_maps++;
	s->state = SLOT_NODE;
	s->len = len;
	/* device accesses, through the view */
	for (unsigned int t = 1 + below(r, 8); t; t--)
		touch_count(p + below(r, len), chance(r, 50), rnd(r));
	switch (below(r, 6)) {
	case 0: /* cannot grow a view; never past the slot */
		if (len < SLOT && mremap(p, len, len + ps, 0) != MAP_FAILED)
			s->len = len + ps;
		break;
	case 1:
		mprotect(p, len, any_prot(r));
		break;
	case 2:
		if (len > ps)
			munmap(p + ps * below(r, len / ps), ps);
		break;
	default:
		break;
	}
out:
	pthread_mutex_unlock(&s->lock);
}

static void node_thread(void *arg)
{
	struct rng r = { thread_begin(arg) };

	while (!stop) {
		doing("node mmap");
		node_map(&r);
		doing("touches");
		touch_arena(&r, below(&r, 4));
	}
	thread_end();
}

/* --- children and files --------------------------------------------------- */

/* In a child: touches, a migration, a view of its own; then exit. */
static void __attribute__((noreturn)) child(struct rng *r)
{
	if (chance(r, 30))
		_exit(0);
	touch_arena(r, below(r, 16));
	if (chance(r, 50)) {
		struct drm_hmmgpu_migrate m = { 0 };

		m.start = page_in_arena(r);
		m.size = any_size(r, m.start);
		m.target = below(r, 2);
		ioctl(files[below(r, ndev)], DRM_IOCTL_HMMGPU_MIGRATE, &m);
	}
	if (chance(r, 30)) {
		/* a view of the child's memory on the parent's file */
		struct drm_hmmgpu_view_register v = { 0 };
		int fd = files[below(r, NFILES)];
		char *p;

		v.start = page_in_arena(r);
		v.size = (1 + below(r, 32)) * ps;
		if (ioctl(fd, DRM_IOCTL_HMMGPU_VIEW_REGISTER, &v) == 0) {
			p = mmap(NULL, v.size, PROT_READ | PROT_WRITE,
				 MAP_SHARED, fd, v.offset);
			if (p != MAP_FAILED)
				for (int t = 0; t < 4; t++)
					touch(p + below(r, v.size),
					      chance(r, 50), 1);
			if (chance(r, 50)) {
				struct drm_hmmgpu_view_unregister u = {
					.handle = v.handle,
				};

				ioctl(fd, DRM_IOCTL_HMMGPU_VIEW_UNREGISTER, &u);
			}
		}
	}
	touch_arena(r, below(r, 8));
	_exit(0);
}

static void file_thread(void *arg)
{
	struct rng r = { thread_begin(arg) };

	while (!stop) {
		doing("fork or reopen");
		if (chance(&r, 30)) {
			uint64_t cseed = rnd(&r);
			pid_t pid = fork();

			if (pid == 0) {
				struct rng cr = { cseed };

				child(&cr);
			}
			if (pid < 0)
				HMMT_FAIL("fork: %s", strerror(errno));
			if (kt_wait_child(pid))
				n_child_bad++;
			n_forks++;
		} else {
			/* close an extra file, open another device's */
			unsigned int i = ndev + below(&r, NFILES - ndev);
			int old = atomic_exchange(&files[i], -1);

			if (old >= 0)
				close(old);
			if (chance(&r, 80)) {
				int fd = open(node_path[below(&r, ndev)],
					      O_RDWR | O_CLOEXEC);

				if (fd < 0)
					HMMT_FAIL("open: %s", strerror(errno));
				files[i] = fd;
			}
			n_reopens++;
			usleep(1000);
		}
	}
	thread_end();
}

/* --- a stall --------------------------------------------------------------- */

#define TRACING "/sys/kernel/tracing"

/* The mappings of the arena, from /proc/self/maps. */
static void print_arena_maps(void)
{
	unsigned long lo, hi;
	char line[512];
	FILE *f;

	f = fopen("/proc/self/maps", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 &&
		    hi > (uintptr_t)arena && lo < (uintptr_t)arena_end)
			TH_LOG("  maps: %.*s", (int)strcspn(line, "\n"), line);
	fclose(f);
}

/* Fault counts and CPU time of thread @tid, from its stat line. */
static void print_task_stat(const char *path, int tid)
{
	unsigned long minflt, majflt, utime, stime;
	char buf[1024], *p;
	FILE *f;

	f = fopen(path, "re");
	if (!f)
		return;
	p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	fclose(f);
	/* after the comm: state ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt cmajflt utime stime */
	if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %lu %*u %lu %*u "
			"%lu %lu", &minflt, &majflt, &utime, &stime) == 4)
		TH_LOG("  thread %d: %lu minor faults, %lu major, user %lu "
		       "ticks, system %lu", tid, minflt, majflt, utime, stime);
}

static void print_thread_stat(int tid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	print_task_stat(path, tid);
}

/* The kernel stacks of the threads of process @pid (root only). */
static void print_process_stacks(int pid)
{
	char path[300], line[256];
	struct dirent *d;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	dir = opendir(path);
	while (dir && (d = readdir(dir))) {
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stack", pid,
			 d->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		TH_LOG("  kernel stack of %d/%s:", pid, d->d_name);
		while (fgets(line, sizeof(line), f)) {
			line[strcspn(line, "\n")] = '\0';
			TH_LOG("    %s", line);
		}
		fclose(f);
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", pid,
			 d->d_name);
		print_task_stat(path, atoi(d->d_name));
		/* faults that never resolve show as counts that grow */
		usleep(200000);
		print_task_stat(path, atoi(d->d_name));
	}
	if (dir)
		closedir(dir);
}

/*
 * Where every thread of the process and of its children is in the
 * kernel: a stalled thread may be waiting for a child that is stuck.
 */
static void print_kernel_stacks(void)
{
	struct dirent *d;
	DIR *dir = opendir("/proc");

	print_process_stacks(getpid());
	while (dir && (d = readdir(dir))) {
		char path[300], buf[512], *p;
		int ppid = 0;
		FILE *f;

		if (d->d_name[0] < '1' || d->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", d->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
		fclose(f);
		if (p && sscanf(p + 2, "%*c %d", &ppid) == 1 &&
		    ppid == getpid())
			print_process_stacks(atoi(d->d_name));
	}
	if (dir)
		closedir(dir);
}

/* The hmmgpu trace events of @ms milliseconds, last lines first cut. */
static void print_trace(unsigned int ms)
{
	static char buf[1 << 16];
	size_t len = 0;
	ssize_t r;
	char *line;
	int fd;

	if (kt_sysfs_write(TRACING "/trace", "") ||
	    kt_sysfs_write(TRACING "/events/hmmgpu/enable", "1")) {
		TH_LOG("  (no hmmgpu trace events to show)");
		return;
	}
	usleep(ms * 1000);
	kt_sysfs_write(TRACING "/events/hmmgpu/enable", "0");
	fd = open(TRACING "/trace", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	/* the first 64 KiB: the events of the first moments are enough */
	while (len < sizeof(buf) - 1 &&
	       (r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += r;
	close(fd);
	buf[len] = '\0';
	for (unsigned int n = 0; (line = strtok(n ? NULL : buf, "\n")) &&
				 n < 40; n++)
		if (line[0] != '#')
			TH_LOG("  trace: %s", line);
}

/*
 * The threads finish the operation they are in once the run ends; one
 * that does not within STALL_SECONDS is stuck (in a fault that never
 * resolves, say). What it was doing, the mapping and fault counts at the
 * address it touched, and the driver's trace events meanwhile go to the
 * log before the test fails, while the stuck thread can still be looked at.
 * Returns whether all threads finished.
 */
static bool wait_threads_done(void)
{
	unsigned int waited;
	bool all = false;

	for (waited = 0; waited < STALL_SECONDS * 10; waited++) {
		all = true;
		for (int i = 0; i < NTHREADS; i++)
			all &= acts[i].done;
		if (all)
			return true;
		usleep(100000);
	}
	for (int i = 0; i < NTHREADS; i++) {
		struct activity *a = &acts[i];
		const char *what = a->what;

		if (a->done)
			continue;
		TH_LOG("stalled: thread %d (%d) in %s, last touch %s of %#lx",
		       i, a->tid, what ? what : "(between operations)",
		       a->write ? "write" : "read", (unsigned long)a->addr);
		print_thread_stat(a->tid);
	}
	/* the mappings of the arena, then what changes in a second */
	print_arena_maps();
	print_kernel_stacks();
	print_trace(1000);
	for (int i = 0; i < NTHREADS; i++)
		if (!acts[i].done)
			print_thread_stat(acts[i].tid);
	return false;
}

/* --- the test ------------------------------------------------------------- */

static unsigned long env_ulong(const char *name, unsigned long def)
{
	const char *v = getenv(name);
	char *end;
	unsigned long n;

	if (!v || !*v)
		return def;
	errno = 0;
	n = strtoul(v, &end, 0);
	if (errno || *end)
		HMMT_FAIL("%s=%s: not a number", name, v);
	return n;
}

static void fuzz_setup(void)
{
	struct sigaction sa;

	ps = kt_page_size();
	region_len = 2 * GUARD + NSLOTS * SLOT + SLOT;
	region = mmap(NULL, region_len, PROT_NONE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_TRUE(region != MAP_FAILED);
	/* slots 2 MiB aligned, for huge pages */
	arena = (char *)(((uintptr_t)region + GUARD + SLOT - 1) & ~(SLOT - 1));
	arena_end = arena + NSLOTS * SLOT + GUARD;
	ASSERT_LE((uintptr_t)arena_end, (uintptr_t)region + region_len);
	for (unsigned int i = 0; i < NSLOTS; i++) {
		pthread_mutex_init(&slots[i].lock, NULL);
		ASSERT_TRUE(mmap(slot_addr(i), SLOT, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
				 0) != MAP_FAILED);
		slots[i].state = SLOT_ANON;
		slots[i].len = SLOT;
		kt_fill(slot_addr(i), SLOT, i);
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = touch_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	ASSERT_EQ(sigaction(SIGBUS, &sa, NULL), 0);
	ASSERT_EQ(sigaction(SIGSEGV, &sa, NULL), 0);

	ndev = kt_count_devices();
	if (ndev > NFILES / 2)
		ndev = NFILES / 2;
	for (int i = 0; i < NFILES; i++) {
		char link[64];
		ssize_t n;

		if (i < ndev) {
			files[i] = kt_open_device(i);
			snprintf(link, sizeof(link), "/proc/self/fd/%d",
				 files[i]);
			n = readlink(link, node_path[i],
				     sizeof(node_path[i]) - 1);
			ASSERT_GT(n, 0);
			node_path[i][n] = 0;
		} else {
			files[i] = open(node_path[i % ndev],
					O_RDWR | O_CLOEXEC);
			ASSERT_GE(files[i], 0);
		}
	}
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	ASSERT_GE(null_fd, 0);
}

static void print_results(void)
{
	char line[1024];

	for (int op = 0; op < OP_COUNT; op++) {
		size_t n = snprintf(line, sizeof(line), "%s: %lu ok",
				    op_names[op], (unsigned long)op_ok[op]);

		for (int e = 1; e < MAX_ERRNO && n < sizeof(line); e++)
			if (op_err[op][e])
				n += snprintf(line + n, sizeof(line) - n,
					      ", %s %lu", strerrorname_np(e) ?
					      strerrorname_np(e) : "?",
					      (unsigned long)op_err[op][e]);
		TH_LOG("%s", line);
	}
	TH_LOG("touches %lu: SIGBUS %lu, SIGSEGV %lu",
	       (unsigned long)n_touch, (unsigned long)n_touch_sig[0],
	       (unsigned long)n_touch_sig[1]);
	TH_LOG("memory ops %lu, node mmaps %lu, forks %lu, reopens %lu",
	       (unsigned long)n_mem_ops, (unsigned long)n_node_maps,
	       (unsigned long)n_forks, (unsigned long)n_reopens);
	TH_LOG("userfaultfd write protection: %lu ops (%lu done), %lu write "
	       "faults lifted%s", (unsigned long)n_wp_ops,
	       (unsigned long)n_wp_done, (unsigned long)n_wp_faults,
	       wp_uffd < 0 ? " (off: HMM_FUZZ_UFFD=1 turns it on)" : "");
}

TEST_TIMEOUT(fuzz_render_node, DEFAULT_SECONDS + TIMEOUT_MARGIN)
{
	uint64_t seed = env_ulong("HMM_FUZZ_SEED", 0);
	unsigned long seconds = env_ulong("HMM_FUZZ_SECONDS", DEFAULT_SECONDS);
	struct kt_thread ioctls[NIOCTL_THREADS], mem, node, file;
	struct rng sr;
	unsigned long long total;
	struct timespec now;
	unsigned long iterations;

	if (!getenv("HMM_FUZZ_SEED")) {
		clock_gettime(CLOCK_REALTIME, &now);
		seed = (uint64_t)now.tv_sec * 1000000007ULL ^ now.tv_nsec ^
		       getpid();
	}
	TH_LOG("seed %llu", (unsigned long long)seed);
	TH_LOG("replay: HMM_FUZZ_SEED=%llu HMM_FUZZ_SECONDS=%lu",
	       (unsigned long long)seed, seconds);

	/*
	 * HMM_FUZZ_MEM_MIB=N reloads hmmgpu with N MiB devices: with 2, one
	 * slot of the arena, migrations evict and eviction races everything
	 * else (docs/testing-vm.md).
	 */
	if (getenv("HMM_FUZZ_MEM_MIB")) {
		char params[64];

		snprintf(params, sizeof(params), "mem_mib=%lu",
			 env_ulong("HMM_FUZZ_MEM_MIB", 2));
		kt_reload_hmmgpu(params);
	}
	fuzz_setup();
	wp_setup();
	sr.s = seed;
	for (int i = 0; i < NIOCTL_THREADS + 3; i++)
		seeds[i] = rnd(&sr);
	for (int i = 0; i < NIOCTL_THREADS; i++)
		kt_start(&ioctls[i], ioctl_thread, &seeds[i]);
	kt_start(&mem, mem_thread, &seeds[NIOCTL_THREADS]);
	kt_start(&node, node_thread, &seeds[NIOCTL_THREADS + 1]);
	kt_start(&file, file_thread, &seeds[NIOCTL_THREADS + 2]);

	sleep(seconds);
	stop = true;
	if (!wait_threads_done())
		HMMT_FAIL("a thread did not finish in %d s after the run "
			  "(above: what it was doing)", STALL_SECONDS);
	for (int i = 0; i < NIOCTL_THREADS; i++)
		kt_join(&ioctls[i]);
	kt_join(&mem);
	kt_join(&node);
	kt_join(&file);
	wp_teardown();

	iterations = n_ioctls + n_mem_ops + n_node_maps + n_forks + n_reopens;
	print_results();
	TH_LOG("iterations %lu (ioctls %lu) in %lu s", iterations,
	       (unsigned long)n_ioctls, seconds);
	if (n_bad)
		TH_LOG("%lu unexpected results, the first: %s",
		       (unsigned long)n_bad, bad_call);
	ASSERT_EQ(n_bad, 0);
	ASSERT_EQ(n_child_bad, 0);
	ASSERT_EQ(n_lost, 0);

	/* unmap and close everything: the devices' memory is all free */
	ASSERT_EQ(munmap(region, region_len), 0);
	for (int i = 0; i < NFILES; i++)
		if (files[i] >= 0)
			close(files[i]);
	close(null_fd);
	for (int d = 0; d < ndev; d++) {
		int fd = kt_open_device(d);
		struct drm_hmmgpu_stats st;

		kt_get_stats(fd, HMMGPU_STATS_DEVICE, &st);
		TH_LOG("device %d: %llu eviction passes, %llu CPU faults, %llu device faults",
		       d, (unsigned long long)st.evictions,
		       (unsigned long long)st.cpu_faults,
		       (unsigned long long)st.device_faults);
		total = kt_mem_total(fd);
		ASSERT_EQ(kt_wait_mem_free(fd, total, 10000), total);
		close(fd);
	}
	kt_restore_hmmgpu();
}

/*
 * The time limit follows HMM_FUZZ_SECONDS (the harness reads it from this
 * struct when the test starts).
 */
__attribute__((constructor(200))) static void fuzz_timeout(void)
{
	const char *v = getenv("HMM_FUZZ_SECONDS");
	unsigned long s = v ? strtoul(v, NULL, 0) : DEFAULT_SECONDS;

	hmmt_t_fuzz_render_node.timeout = s + TIMEOUT_MARGIN;
}

TEST_MAIN()
