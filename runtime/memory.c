// SPDX-License-Identifier: MIT
/*
 * memory.c - managed allocations, the interval map, device views, devptr.
 *
 * Design
 * ------
 * Every managed range (an hmm_malloc() allocation or an hmm_register()ed
 * range) is a struct hmm_alloc: a page-aligned [base, base + size), its
 * advice and its device views.  The ranges never overlap and live in
 * the *interval map*, an array of pointers sorted by base address:
 *
 *   - lookup of the range holding an address: binary search, O(log n);
 *   - insert and remove: binary search plus a memmove of the pointers
 *     after the slot, O(n) (a few microseconds for 10^5 ranges; the
 *     syscalls around them cost more);
 *   - a run of adjacent ranges covering [ptr, ptr + size): O(log n + k).
 *
 * Views: the first hmm_devptr() of an allocation for device d registers
 * the whole allocation with VIEW_REGISTER on hmm__device_fd(d) and maps
 * the view (mmap MAP_SHARED at the returned offset).  The advice of the
 * allocation that the driver knows about (REMOTE, GRANULARITY) is applied
 * to a view when it is created and whenever the advice changes.
 *
 * Teardown: hmm_free() and hmm_unregister() first wait for the work
 * queued on every stream of the process (stream.c), as cudaFree() does:
 * a launch or an asynchronous prefetch queued before the call may touch
 * the range, and must not find it gone.  From a thread of the library (a
 * callback, a kernel) that wait would include the caller's own work:
 * -EDEADLK.  The wait runs with no lock of this file held.  Then
 * hmm_free() unmaps and unregisters the views, and unmaps the memory
 * (device pages are freed with it).  hmm_unregister() unmaps and
 * unregisters the views first, so that no device access can fault pages
 * over again, and then migrates the device-resident pages of the range
 * back to system memory: the application's memory keeps its contents and
 * no device memory stays held by memory the library no longer tracks.
 *
 * Registrations: hmm_register() manages whole pages, and several
 * registrations may share a registered range: one whose pages lie inside
 * it is recorded in its list (hmm_alloc.regs, the reference count) rather
 * than refused, so two malloc() buffers in one page both register, and
 * the range, its views (device pointers stay valid) and its advice live
 * until the last is unregistered.  Registrations never overlap in bytes,
 * so an address names at most one.  A registered range whose memory is
 * gone (not mapped private anonymous any more) is evicted when its
 * addresses are registered again.
 *
 * Moved memory: the library cannot follow mremap().  hmm_free(),
 * hmm_unregister(), hmm_devptr(), hmm_discard() and
 * hmm_pointer_get_attributes() check that the range is still mapped
 * private anonymous memory (range_check()); when it is not they say
 * -ESTALE, and the releases forget the range and its views without
 * touching the memory now at that address.
 *
 * Locking
 * -------
 *   map.lock (rwlock, writer-preferring)  >  hmm_alloc.lock (mutex)
 *
 * map.lock, read-held, keeps every hmm_alloc in the map alive: only a
 * writer removes one, and it destroys it after dropping the lock, when no
 * other thread can reach it any more.  So every use of an hmm_alloc
 * happens under the read lock, and needs no reference count.  Nothing
 * slow runs under map.lock: the MIGRATE ioctls of prefetches run with no
 * lock held (migrate.c checks the range, drops the lock, migrates, and
 * records the result under the lock again); view creation (VIEW_REGISTER
 * + mmap) and VIEW_ADVISE are short ioctls.  hmm_alloc.lock serialises
 * view creation and advice of one allocation.  The read lock is never
 * taken recursively (the writer-preferring kind would deadlock).
 *
 * map.lock is taken before device.c's lock (hmm__device_fd() runs under
 * it), never after.
 *
 * fork(): views are not inherited (VM_DONTCOPY) and belong to the
 * parent's registrations on the shared render-node files.  A pthread_atfork
 * handler write-locks the map around fork() and, in the child, forgets
 * every view without unmapping or unregistering it; the child's next
 * hmm_devptr() makes views of its own.  The handler is registered at the
 * first hmm_malloc() or hmm_register(), so after device.c's (registered
 * by a constructor): prepare handlers run in reverse order of
 * registration, so fork() takes map.lock before device.c's lock, in the
 * lock order above.
 */
#define _GNU_SOURCE
#include "hmm_private.h"
#include "hmmgpu_drm.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xf86drm.h>


#define HMM_HUGE_SIZE (2UL << 20)

/** One device view of an allocation. */
struct hmm_view {
	void *addr;       /**< the view mapping, NULL when there is none */
	uint32_t handle;  /**< VIEW_REGISTER handle, 0 when there is none */
	bool remote;      /**< HMMGPU_ADVICE_REMOTE as last applied */
	bool preferred;   /**< HMMGPU_ADVICE_PREFERRED as last applied */
	bool accessed_by; /**< HMMGPU_ADVICE_ACCESSED_BY as last applied */
	uint32_t atomic;  /**< HMMGPU_ADVICE_ATOMIC as last applied */
	bool read_mostly; /**< HMMGPU_ADVICE_READ_MOSTLY as last applied */
	uint64_t gran;    /**< granularity last applied, 0: driver default */
};

/** One hmm_register() call: the bytes it named. */
struct hmm_reg {
	uintptr_t start, end;
};

/** A managed range: an hmm_malloc() allocation or a registered range. */
struct hmm_alloc {
	uintptr_t base;   /**< page-aligned */
	size_t size;      /**< page multiple */
	bool registered;  /**< hmm_register()ed, not hmm_malloc()ed */
	/** registered memory that is not private anonymous (shared, a
	 *  file, hugetlbfs): never migrates, devices map it in place */
	bool any_memory;
	bool stale;       /**< its memory is gone: tear down views only */
	/*
	 * A registered range: the hmm_register() calls sharing its pages
	 * (their byte ranges never overlap), the reference count being
	 * nregs.  Changed under map.lock write-held, read under it held.
	 */
	struct hmm_reg *regs;
	size_t nregs;
	pthread_mutex_t lock; /**< protects the fields below */
	struct hmm_view views[HMM_MAX_DEVICES];
	int preferred;        /**< device, HMM_CPU or HMM_LOC_NONE */
	uint32_t remote_mask; /**< bit d: device d accesses remotely */
	uint32_t accessed_mask; /**< bit d: device d keeps it mapped */
	bool read_mostly;       /**< HMM_ADVISE_SET_READ_MOSTLY */
	/** write-protected for read-mostly copies (readmostly.c) */
	bool rm_armed;
	uint32_t atomic;      /**< enum hmm_atomic_policy */
	uint64_t granularity; /**< advised bytes per device fault, 0: none */
	int last_prefetch;    /**< device, HMM_CPU or HMM_LOC_NONE */
	struct hmm_alloc *next_dead; /**< list of ranges to destroy */
};

/** The interval map (see the top of the file). */
static struct {
	pthread_rwlock_t lock;   /**< protects v, n, cap */
	struct hmm_alloc **v;    /**< sorted by base, never overlapping */
	size_t n, cap;
} map = { .lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP };

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* (glibc answers from memory: no cache needed, and none to race on) */
static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* --- the interval map ----------------------------------------------------- */

/* Index of the first range whose base is above @addr.  map.lock held. */
static size_t map_upper(uintptr_t addr)
{
	size_t lo = 0, hi = map.n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (map.v[mid]->base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Index of the range holding @addr, or -1.  map.lock held.
 */
static ssize_t map_index(uintptr_t addr);

/* Index of the first range that may touch [@addr, ...); map.lock held. */
static size_t map_first_touching(uintptr_t addr)
{
	ssize_t i = map_index(addr);

	return i >= 0 ? (size_t)i : map_upper(addr);
}

/* Every range @a (at index @i) touching [@p, @end); map.lock held. */
#define for_each_alloc_touching(a, i, p, end)                               \
	for ((i) = map_first_touching(p);                                   \
	     (i) < map.n && ((a) = map.v[i])->base < (end); (i)++)

static ssize_t map_index(uintptr_t addr)
{
	size_t i = map_upper(addr);

	if (i == 0)
		return -1;
	i--;
	if (addr - map.v[i]->base >= map.v[i]->size)
		return -1;
	return (ssize_t)i;
}

static struct hmm_alloc *map_find(uintptr_t addr)
{
	ssize_t i = map_index(addr);

	return i < 0 ? NULL : map.v[i];
}

/*
 * The run of adjacent ranges that covers every byte of [@start, @end):
 * its first index in *@first and its length in *@count.  map.lock held.
 * Return: 0, or -EINVAL when some byte is in no range.
 */
static int map_run(uintptr_t start, uintptr_t end, size_t *first,
		   size_t *count)
{
	ssize_t i = map_index(start);
	size_t j;
	uintptr_t covered;

	if (i < 0)
		return -EINVAL;
	j = (size_t)i;
	covered = map.v[j]->base + map.v[j]->size;
	while (covered < end) {
		if (j + 1 >= map.n || map.v[j + 1]->base != covered)
			return -EINVAL;
		j++;
		covered += map.v[j]->size;
	}
	*first = (size_t)i;
	*count = j - (size_t)i + 1;
	return 0;
}

static void map_remove_at(size_t i)
{
	memmove(&map.v[i], &map.v[i + 1], (map.n - i - 1) * sizeof(*map.v));
	map.n--;
}

/*
 * Inserts @a.  Ranges that overlap it are -EEXIST, unless @evict: then
 * they are taken out, marked stale and chained on *@dead for the caller
 * to destroy (see hmm_malloc()).  map.lock write-held.
 * Return: 0, -EEXIST or -ENOMEM.
 */
static int map_insert(struct hmm_alloc *a, bool evict,
		      struct hmm_alloc **dead)
{
	uintptr_t end = a->base + a->size;
	size_t pos;

	for (;;) {
		struct hmm_alloc *o = NULL;

		pos = map_upper(a->base);
		if (pos > 0 && map.v[pos - 1]->base + map.v[pos - 1]->size >
				       a->base)
			o = map.v[--pos];
		else if (pos < map.n && map.v[pos]->base < end)
			o = map.v[pos];
		if (!o)
			break;
		if (!evict)
			return -EEXIST;
		map_remove_at(pos);
		o->stale = true;
		o->next_dead = *dead;
		*dead = o;
	}
	if (map.n == map.cap) {
		size_t cap = map.cap ? 2 * map.cap : 64;
		struct hmm_alloc **v = realloc(map.v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		map.v = v;
		map.cap = cap;
	}
	memmove(&map.v[pos + 1], &map.v[pos], (map.n - pos) * sizeof(*map.v));
	map.v[pos] = a;
	map.n++;
	return 0;
}

/* --- fork ----------------------------------------------------------------- */

static void atfork_prepare(void)
{
	pthread_rwlock_wrlock(&map.lock);
}

static void atfork_parent(void)
{
	pthread_rwlock_unlock(&map.lock);
}

/*
 * The child has none of the parent's view mappings (VM_DONTCOPY) and the
 * registrations are the parent's: forget them.  The lock is initialised
 * again rather than unlocked: the thread that locked it was the parent's.
 */
static void atfork_child(void)
{
	pthread_rwlock_t fresh =
		PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

	for (size_t i = 0; i < map.n; i++) {
		struct hmm_alloc *a = map.v[i];

		for (int d = 0; d < HMM_MAX_DEVICES; d++)
			memset(&a->views[d], 0, sizeof(a->views[d]));
		a->rm_armed = false;
	}
	map.lock = fresh;
	hmm__rm_fork_child();
}

static void atfork_register(void)
{
	if (pthread_atfork(atfork_prepare, atfork_parent, atfork_child))
		hmm__log(HMM_LOG_WARN, "pthread_atfork failed: views are not "
			 "reset in children");
}

/* --- views ---------------------------------------------------------------- */

/* view_fault_kib of the loaded driver, in bytes (64 KiB when unknown). */
static uint64_t default_granularity(void)
{
	unsigned long kib = 64;
	FILE *f = fopen("/sys/module/hmmgpu/parameters/view_fault_kib", "re");

	if (f) {
		if (fscanf(f, "%lu", &kib) != 1 || !kib)
			kib = 64;
		fclose(f);
	}
	return (uint64_t)kib << 10;
}

/* Whether device @dev should access @a remotely.  a->lock held. */
static bool want_remote(const struct hmm_alloc *a, int dev)
{
	return a->preferred == HMM_CPU || (a->remote_mask & (1U << dev));
}

static int view_advise(int fd, uint32_t handle, uint32_t advice,
		       uint64_t value)
{
	struct drm_hmmgpu_view_advise va = {
		.handle = handle,
		.advice = advice,
		.value = value,
	};

	return drmIoctl(fd, DRM_IOCTL_HMMGPU_VIEW_ADVISE, &va) ? -errno : 0;
}

/*
 * Brings the driver's advice of view @v (device @dev) in line with the
 * advice of @a.  a->lock held.
 * Return: 0 or the first error of VIEW_ADVISE.
 */
static int view_sync(struct hmm_alloc *a, int dev, int fd, struct hmm_view *v)
{
	bool remote = want_remote(a, dev);
	int ret = 0, err;

	if (v->remote != remote) {
		err = view_advise(fd, v->handle, HMMGPU_ADVICE_REMOTE, remote);
		if (err)
			ret = err;
		else
			v->remote = remote;
	}
	if (v->preferred != (a->preferred == dev)) {
		err = view_advise(fd, v->handle, HMMGPU_ADVICE_PREFERRED,
				  a->preferred == dev);
		if (err && !ret)
			ret = err;
		if (!err)
			v->preferred = a->preferred == dev;
	}
	/*
	 * After the mapping exists: the driver maps the range when it is
	 * advised, which it can only do into a mapped view.
	 */
	if (v->addr && v->accessed_by != !!(a->accessed_mask & (1U << dev))) {
		bool on = a->accessed_mask & (1U << dev);

		err = view_advise(fd, v->handle, HMMGPU_ADVICE_ACCESSED_BY, on);
		if (err && !ret)
			ret = err;
		if (!err)
			v->accessed_by = on;
	}
	if (v->atomic != a->atomic) {
		err = view_advise(fd, v->handle, HMMGPU_ADVICE_ATOMIC,
				  a->atomic);
		if (err && !ret)
			ret = err;
		if (!err)
			v->atomic = a->atomic;
	}
	if (v->read_mostly != a->read_mostly) {
		err = view_advise(fd, v->handle, HMMGPU_ADVICE_READ_MOSTLY,
				  a->read_mostly);
		if (err && !ret)
			ret = err;
		if (!err)
			v->read_mostly = a->read_mostly;
	}
	if (v->gran != a->granularity) {
		uint64_t g = a->granularity ? a->granularity :
					      default_granularity();

		err = view_advise(fd, v->handle, HMMGPU_ADVICE_GRANULARITY, g);
		if (err && !ret)
			ret = err;
		if (!err)
			v->gran = a->granularity;
	}
	if (ret)
		hmm__log(HMM_LOG_WARN, "VIEW_ADVISE of %#" PRIxPTR
			 " on device %d: %s", a->base, dev, strerror(-ret));
	return ret;
}

/* Applies the advice of @a to all its views.  a->lock held. */
static int views_sync(struct hmm_alloc *a)
{
	int ret = 0;

	for (int d = 0; d < HMM_MAX_DEVICES; d++) {
		struct hmm_view *v = &a->views[d];
		int fd, err;

		if (!v->handle)
			continue;
		fd = hmm__device_fd(d);
		if (fd < 0)
			continue; /* removed: the view is dead anyway */
		err = view_sync(a, d, fd, v);
		if (err && !ret)
			ret = err;
	}
	return ret;
}

/*
 * Registers and maps the view of @a on device @dev (file @fd), with the
 * advice of @a applied.  a->lock held.
 * Return: 0, or the errno of VIEW_REGISTER, VIEW_ADVISE or mmap.
 */
static int view_create(struct hmm_alloc *a, int dev, int fd)
{
	struct drm_hmmgpu_view_register reg = {
		.start = a->base,
		.size = a->size,
	};
	struct drm_hmmgpu_view_unregister unreg = { 0 };
	struct hmm_view *v = &a->views[dev];
	void *addr;
	int ret;

	if (drmIoctl(fd, DRM_IOCTL_HMMGPU_VIEW_REGISTER, &reg)) {
		ret = -errno;
		hmm__log(HMM_LOG_ERROR, "VIEW_REGISTER %#" PRIxPTR "+%zu on "
			 "device %d: %s", a->base, a->size, dev,
			 strerror(-ret));
		return ret;
	}
	v->handle = reg.handle;
	v->remote = false;
	v->preferred = false;
	v->accessed_by = false;
	v->atomic = HMM_ATOMIC_DEFAULT;
	v->read_mostly = false;
	v->gran = 0;
	ret = view_sync(a, dev, fd, v);
	if (ret)
		goto err_unregister;
	addr = mmap(NULL, a->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		    (off_t)reg.offset);
	if (addr == MAP_FAILED) {
		ret = -errno;
		hmm__log(HMM_LOG_ERROR, "mmap of the view of %#" PRIxPTR
			 " on device %d: %s", a->base, dev, strerror(-ret));
		goto err_unregister;
	}
	v->addr = addr;
	hmm__log(HMM_LOG_DEBUG, "view of %#" PRIxPTR "+%zu on device %d at %p",
		 a->base, a->size, dev, addr);
	/* accessed-by waits for the mapping; its failure is not fatal */
	if (a->accessed_mask & (1U << dev))
		(void)view_sync(a, dev, fd, v);
	return 0;

err_unregister:
	unreg.handle = v->handle;
	drmIoctl(fd, DRM_IOCTL_HMMGPU_VIEW_UNREGISTER, &unreg);
	memset(v, 0, sizeof(*v));
	return ret;
}

/* --- what is mapped at a range ------------------------------------------ */

/*
 * PROCMAP_QUERY (Linux 6.11, <linux/fs.h>): one VMA of /proc/self/maps
 * by address, in O(log n) instead of reading the whole file.  Declared
 * here because the build's kernel headers may predate it; it is uapi, so
 * its layout is fixed.
 */
struct hmm_procmap_query {
	uint64_t size;
	uint64_t query_flags;
	uint64_t query_addr;
	uint64_t vma_start;
	uint64_t vma_end;
	uint64_t vma_flags;
	uint64_t vma_page_size;
	uint64_t vma_offset;
	uint64_t inode;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint32_t vma_name_size;
	uint32_t build_id_size;
	uint64_t vma_name_addr;
	uint64_t build_id_addr;
};
#define HMM_PROCMAP_QUERY _IOWR('f', 17, struct hmm_procmap_query)
#define HMM_PROCMAP_READABLE 0x01
#define HMM_PROCMAP_WRITABLE 0x02
#define HMM_PROCMAP_EXECUTABLE 0x04
#define HMM_PROCMAP_SHARED 0x08

/* A VMA as /proc/self/maps describes it. */
struct vma_desc {
	bool r, w, x, shared;
	unsigned long inode;
	const char *name;     /* "" for none */
};

/* What a walk wants of every VMA of a range: why not, or NULL. */
typedef const char *(*vma_check_fn)(const struct vma_desc *v, int want);

/*
 * Why @v is not private anonymous memory (readable, when @want is
 * PROT_READ), or NULL when it is.  Special mappings (the vDSO, vvar) are
 * not: only no name, [heap], [stack] and [anon:NAME] pass.
 */
static const char *vma_not_anon(const struct vma_desc *v, int want)
{
	if (want == PROT_READ && !v->r && !v->w && !v->x)
		return "PROT_NONE memory (not accessible)";
	if (want == PROT_READ && !v->r)
		return "memory that is not readable";
	if (v->shared)
		return "shared memory, not private";
	if (v->inode)
		return "a file mapping, not anonymous memory";
	if (!*v->name || !strcmp(v->name, "[heap]") ||
	    !strncmp(v->name, "[stack", 6) || !strncmp(v->name, "[anon:", 6))
		return NULL;
	return "a special mapping, not anonymous memory";
}

/*
 * Why @v is not memory a device view can map (readable, when @want is
 * PROT_READ, with pages: not a special mapping nor a device file's), or
 * NULL.  What hmm_register() takes besides private anonymous memory.
 */
static const char *vma_not_paged(const struct vma_desc *v, int want)
{
	if (want == PROT_READ && !v->r && !v->w && !v->x)
		return "PROT_NONE memory (not accessible)";
	if (want == PROT_READ && !v->r)
		return "memory that is not readable";
	/* MAP_SHARED | MAP_ANONYMOUS memory is "/dev/zero (deleted)" */
	if (!strncmp(v->name, "/dev/", 5) && strncmp(v->name, "/dev/zero", 9))
		return "a device file mapping (no pages to share)";
	if (v->name[0] == '[' && strcmp(v->name, "[heap]") &&
	    strncmp(v->name, "[stack", 6) && strncmp(v->name, "[anon", 5))
		return "a special mapping";
	return NULL;
}

/* Why @v cannot be accessed as @want (PROT_READ, PROT_WRITE), or NULL. */
static const char *vma_not_accessible(const struct vma_desc *v, int want)
{
	if ((want & PROT_READ) && !v->r)
		return "memory that is not readable";
	if ((want & PROT_WRITE) && !v->w)
		return "memory that is not writable";
	return NULL;
}

/*
 * vma_walk_file() - vma_walk() by reading /proc/self/maps, for kernels
 * without PROCMAP_QUERY; without /proc, only "is it mapped" is checked
 * (mincore()).
 */
static int vma_walk_file(uintptr_t start, uintptr_t end, vma_check_fn fn,
			 int want, const char **why)
{
	FILE *f = fopen("/proc/self/maps", "re");
	uintptr_t covered = start;
	char *line = NULL;
	size_t cap = 0;
	int ret = -EINVAL;

	if (!f) {
		unsigned char vec;

		hmm__log(HMM_LOG_DEBUG, "/proc/self/maps: %s; checking only "
			 "that the range is mapped", strerror(errno));
		for (uintptr_t p = start; p < end; p += page_size()) {
			if (mincore((void *)p, page_size(), &vec)) {
				*why = "memory that is not mapped";
				return -EINVAL;
			}
		}
		return 0;
	}
	*why = "memory that is not mapped";
	while (getline(&line, &cap, f) > 0) {
		unsigned long lo, hi, off, inode;
		unsigned int maj, min;
		char perms[8], *path;
		struct vma_desc v;
		int pos = 0;
		size_t len;

		if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu %n", &lo, &hi,
			   perms, &off, &maj, &min, &inode, &pos) < 7 || !pos ||
		    strlen(perms) < 4)
			continue;
		if (hi <= covered)
			continue;
		if (lo > covered)
			break; /* a hole */
		path = line + pos;
		len = strlen(path);
		while (len && (path[len - 1] == '\n' || path[len - 1] == ' '))
			path[--len] = '\0';
		v = (struct vma_desc){
			.r = perms[0] == 'r', .w = perms[1] == 'w',
			.x = perms[2] == 'x', .shared = perms[3] != 'p',
			.inode = inode, .name = path,
		};
		*why = fn(&v, want);
		if (*why)
			break;
		*why = "memory that is not mapped";
		covered = hi;
		if (covered >= end) {
			ret = 0;
			break;
		}
	}
	if (ferror(f) && ret) {
		*why = "memory that /proc/self/maps could not be read for";
		ret = -ENOMEM;
	}
	free(line);
	fclose(f);
	return ret;
}

/**
 * vma_walk() - does every VMA of [@start, @end) pass @fn?
 * @start: page-aligned
 * @end: page-aligned, above @start
 * @fn: the check of one VMA, given @want
 * @want: passed to @fn
 * @why: set to what is wrong when the answer is -EINVAL
 *
 * The range must be mapped without a gap.  One PROCMAP_QUERY ioctl per
 * VMA of the range (a few microseconds), reading /proc/self/maps where
 * the kernel predates it.
 *
 * Return: 0; -EINVAL; -ENOMEM (the maps could not be read).
 */
static int vma_walk(uintptr_t start, uintptr_t end, vma_check_fn fn,
		    int want, const char **why)
{
	uintptr_t covered = start;
	int fd, ret = 0;

	fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vma_walk_file(start, end, fn, want, why);
	while (covered < end) {
		/* long names are file paths: anon and special ones are short */
		char name[128];
		struct hmm_procmap_query q = {
			.size = sizeof(q),
			.query_addr = covered,
			.vma_name_size = sizeof(name),
			.vma_name_addr = (uintptr_t)name,
		};
		struct vma_desc v;

		/* (valgrind does not know what the ioctl writes there) */
		memset(name, 0, sizeof(name));
		if (ioctl(fd, HMM_PROCMAP_QUERY, &q)) {
			if (errno == ENOENT) {
				*why = "memory that is not mapped";
				ret = -EINVAL;
			} else if (errno == ENAMETOOLONG) {
				*why = "a file mapping, not anonymous memory";
				ret = -EINVAL;
			} else if (covered == start) {
				/* no PROCMAP_QUERY (before Linux 6.11) */
				close(fd);
				return vma_walk_file(start, end, fn, want, why);
			} else {
				*why = "memory that /proc/self/maps could not "
				       "be read for";
				ret = -ENOMEM;
			}
			break;
		}
		if (q.vma_start > covered) {
			*why = "memory that is not mapped";
			ret = -EINVAL;
			break;
		}
		if (!q.vma_name_size)
			name[0] = '\0';
		v = (struct vma_desc){
			.r = q.vma_flags & HMM_PROCMAP_READABLE,
			.w = q.vma_flags & HMM_PROCMAP_WRITABLE,
			.x = q.vma_flags & HMM_PROCMAP_EXECUTABLE,
			.shared = q.vma_flags & HMM_PROCMAP_SHARED,
			.inode = (unsigned long)q.inode,
			.name = name,
		};
		*why = fn(&v, want);
		if (*why) {
			ret = -EINVAL;
			break;
		}
		covered = (uintptr_t)q.vma_end;
	}
	close(fd);
	return ret;
}

/**
 * range_check() - is [@start, @end) still private anonymous memory?
 * @need_read: also readable (what VIEW_REGISTER wants, for hmm_register())
 *
 * Mapped without a gap, private, no file (inode 0) and no special
 * mapping.  hmm_register() checks this before it takes memory (it works
 * with no device and answers at once, not at the first hmm_devptr()).
 * hmm_free(), hmm_unregister() and hmm_devptr() check it (without
 * @need_read: mprotect() of managed memory is fine) to find a range the
 * application moved with mremap() or unmapped: the library must then
 * touch nothing at the old address, where someone else's memory may be.
 * A private anonymous mapping made at the very same address since cannot
 * be told from the original from user space (the kernels we run on have
 * no VMA names to mark ours with): that case goes unnoticed.
 *
 * Return: as vma_walk().
 */
static int range_check(uintptr_t start, uintptr_t end, bool need_read,
		       const char **why)
{
	return vma_walk(start, end, vma_not_anon, need_read ? PROT_READ : 0,
			why);
}

/*
 * hmm__mem_accessible() - can [@ptr, @ptr + @size) be accessed as @prot
 * (PROT_READ, PROT_WRITE) without a fault?  Any memory: managed or not.
 * Return: 0; -EFAULT (a hole, or the wrong protection); -ENOMEM.
 */
int hmm__mem_accessible(const void *ptr, size_t size, int prot)
{
	size_t ps = page_size();
	uintptr_t start = (uintptr_t)ptr & ~(uintptr_t)(ps - 1);
	uintptr_t end = ((uintptr_t)ptr + size + ps - 1) & ~(uintptr_t)(ps - 1);
	const char *why = NULL;
	int ret;

	ret = vma_walk(start, end, vma_not_accessible, prot, &why);
	if (ret)
		hmm__log(HMM_LOG_DEBUG, "%p+%zu: %s", ptr, size,
			 why ? why : strerror(-ret));
	return ret == -EINVAL ? -EFAULT : ret;
}

/*
 * Whether the memory of @a is still the memory it managed (see
 * range_check()); says why not at info level, as a call of @who.
 * -ENOMEM (cannot tell) counts as yes: better the old behaviour than a
 * leak of every allocation when /proc is short of memory.
 */
static bool alloc_still_there(const char *who, const struct hmm_alloc *a)
{
	const char *why = NULL;
	int ret;

	/* registered shared or file memory: still mapped, as it was */
	ret = a->any_memory ? vma_walk(a->base, a->base + a->size,
				       vma_not_paged, 0, &why) :
			      range_check(a->base, a->base + a->size, false,
					  &why);
	if (ret != -EINVAL)
		return true;
	hmm__log(HMM_LOG_INFO, "%s: %#" PRIxPTR "+%zu is now %s: moved by "
		 "mremap() or unmapped; the library forgets it and touches "
		 "nothing there", who, a->base, a->size, why);
	return false;
}

/* --- allocations ---------------------------------------------------------- */

static struct hmm_alloc *alloc_new(uintptr_t base, size_t size,
				   bool registered)
{
	struct hmm_alloc *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	if (pthread_mutex_init(&a->lock, NULL)) {
		free(a);
		return NULL;
	}
	a->base = base;
	a->size = size;
	a->registered = registered;
	a->preferred = HMM_LOC_NONE;
	a->last_prefetch = HMM_LOC_NONE;
	return a;
}

/* Frees @a itself (its views and memory are someone else's business). */
static void alloc_free(struct hmm_alloc *a)
{
	pthread_mutex_destroy(&a->lock);
	free(a->regs);
	free(a);
}

/*
 * Ends @a, which no other thread can reach any more (out of the map):
 * its views go, then its memory (hmm_malloc) or its device pages
 * (hmm_register: migrated back to system memory).  A stale range's memory
 * is already gone: only its views are torn down.
 */
static void alloc_destroy(struct hmm_alloc *a)
{
	if (a->rm_armed && !a->stale)
		hmm__rm_disarm(a->base, a->size);
	for (int d = 0; d < HMM_MAX_DEVICES; d++) {
		struct hmm_view *v = &a->views[d];
		struct drm_hmmgpu_view_unregister unreg = {
			.handle = v->handle,
		};
		int fd;

		if (v->addr && munmap(v->addr, a->size))
			hmm__log(HMM_LOG_WARN, "munmap of a view: %s",
				 strerror(errno));
		if (!v->handle)
			continue;
		fd = hmm__device_fd(d);
		if (fd >= 0 &&
		    drmIoctl(fd, DRM_IOCTL_HMMGPU_VIEW_UNREGISTER, &unreg))
			hmm__log(HMM_LOG_WARN, "VIEW_UNREGISTER %u on device "
				 "%d: %s", v->handle, d, strerror(errno));
	}
	if (!a->stale) {
		if (a->registered) {
			int ret = hmm__migrate_raw(a->base, a->size, HMM_CPU);

			if (ret)
				hmm__log(HMM_LOG_WARN, "bringing %#" PRIxPTR
					 "+%zu back to system memory: %s",
					 a->base, a->size, strerror(-ret));
		} else if (munmap((void *)a->base, a->size)) {
			hmm__log(HMM_LOG_WARN, "munmap %#" PRIxPTR "+%zu: %s",
				 a->base, a->size, strerror(errno));
		}
	}
	alloc_free(a);
}

static void destroy_dead(struct hmm_alloc *dead)
{
	while (dead) {
		struct hmm_alloc *next = dead->next_dead;

		hmm__log(HMM_LOG_WARN, "range %#" PRIxPTR "+%zu was unmapped "
			 "while managed; forgetting it", dead->base,
			 dead->size);
		alloc_destroy(dead);
		dead = next;
	}
}

/*
 * Maps @len bytes (a page multiple) of private anonymous memory, 2 MiB
 * aligned when @len is 2 MiB or more: over-allocate by 2 MiB less a page
 * and trim both ends.
 */
static void *map_anon(size_t len)
{
	size_t ps = page_size(), extra, head, tail;
	uintptr_t p, aligned;
	void *m;

	if (len < HMM_HUGE_SIZE) {
		m = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return m == MAP_FAILED ? NULL : m;
	}
	extra = HMM_HUGE_SIZE - ps;
	if (len > SIZE_MAX - extra) {
		errno = ENOMEM;
		return NULL;
	}
	m = mmap(NULL, len + extra, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	p = (uintptr_t)m;
	aligned = (p + HMM_HUGE_SIZE - 1) & ~(HMM_HUGE_SIZE - 1);
	head = aligned - p;
	tail = extra - head;
	if (head)
		munmap(m, head);
	if (tail)
		munmap((void *)(aligned + len), tail);
	return (void *)aligned;
}

HMM_EXPORT void *hmm_malloc(size_t size)
{
	size_t ps = page_size(), len;
	struct hmm_alloc *a, *dead = NULL;
	int ret, saved = errno;
	void *p;

	if (!size) {
		errno = EINVAL;
		return NULL;
	}
	if (size > SIZE_MAX - ps) {
		errno = ENOMEM;
		return NULL;
	}
	len = (size + ps - 1) & ~(ps - 1);
	pthread_once(&atfork_once, atfork_register);

	p = map_anon(len);
	if (!p) {
		hmm__log(HMM_LOG_ERROR, "hmm_malloc(%zu): %s", size,
			 strerror(errno));
		errno = ENOMEM;
		return NULL;
	}
	a = alloc_new((uintptr_t)p, len, false);
	if (!a)
		goto err_unmap;

	/*
	 * A managed range that overlaps memory the kernel has just handed
	 * out must have been unmapped behind the library's back (say,
	 * registered memory freed without hmm_unregister()): evict it.
	 */
	pthread_rwlock_wrlock(&map.lock);
	ret = map_insert(a, true, &dead);
	pthread_rwlock_unlock(&map.lock);
	destroy_dead(dead);
	if (ret)
		goto err_free;
	hmm__mark_alloc(p, size, __builtin_return_address(0));
	errno = saved;
	return p;

err_free:
	alloc_free(a);
err_unmap:
	munmap(p, len);
	errno = ENOMEM;
	return NULL;
}

/*
 * Whether @ptr is in a managed range of the kind @registered names (an
 * hmm_register()ed one, or an hmm_malloc() allocation); says why not at
 * debug level, as a call of @who.
 */
static bool release_check(const char *who, void *ptr, bool registered)
{
	ssize_t i;
	bool ok;

	pthread_rwlock_rdlock(&map.lock);
	i = map_index((uintptr_t)ptr);
	ok = i >= 0 && map.v[i]->registered == registered;
	pthread_rwlock_unlock(&map.lock);
	if (!ok)
		hmm__log(HMM_LOG_DEBUG, "%s(%p): %s", who, ptr,
			 i < 0 ? "range not managed" :
			 registered ? "memory from hmm_malloc(): hmm_free() "
				      "releases it" :
				      "registered memory: hmm_unregister() "
				      "releases it");
	return ok;
}

/*
 * The registration of @a that address @p names: the one whose bytes hold
 * @p, else the only one (@p in the rest of its pages); -1 when @p is in
 * none of several.  map.lock held.
 */
static ssize_t reg_find(const struct hmm_alloc *a, uintptr_t p)
{
	for (size_t k = 0; k < a->nregs; k++) {
		if (p >= a->regs[k].start && p < a->regs[k].end)
			return (ssize_t)k;
	}
	return a->nregs == 1 ? 0 : -1;
}

/*
 * hmm_free() (@registered false) and hmm_unregister(): waits for the
 * streams' work, then drops the registration @ptr names, or takes the
 * range out of the map and ends it when no registration is left (always
 * for hmm_free()).  A range that is no longer the memory the library
 * managed (moved by mremap(), unmapped; see range_check()) is forgotten
 * with its views and nothing at its address is touched: -ESTALE.
 * Return: 0, -EINVAL, -EDEADLK or -ESTALE.
 */
static int release(const char *who, void *ptr, bool registered)
{
	struct hmm_alloc *a;
	ssize_t i, r;
	int ret;

	if (!release_check(who, ptr, registered))
		return -EINVAL;
	ret = hmm__streams_wait_all();
	if (ret)
		return ret;
	pthread_rwlock_wrlock(&map.lock);
	i = map_index((uintptr_t)ptr);
	if (i < 0 || map.v[i]->registered != registered) {
		/* another thread released it meanwhile */
		pthread_rwlock_unlock(&map.lock);
		return -EINVAL;
	}
	a = map.v[i];
	if (registered) {
		r = reg_find(a, (uintptr_t)ptr);
		if (r < 0) {
			pthread_rwlock_unlock(&map.lock);
			hmm__log(HMM_LOG_DEBUG, "%s(%p): in pages several "
				 "registrations share, but in the bytes of "
				 "none", who, ptr);
			return -EINVAL;
		}
		if (a->nregs > 1) {
			/* the others keep the pages, views and advice */
			a->regs[r] = a->regs[--a->nregs];
			pthread_rwlock_unlock(&map.lock);
			return 0;
		}
	}
	map_remove_at((size_t)i);
	pthread_rwlock_unlock(&map.lock);
	if (!alloc_still_there(who, a)) {
		a->stale = true;
		ret = -ESTALE;
	}
	alloc_destroy(a);
	return ret;
}

HMM_EXPORT int hmm_free(void *ptr)
{
	HMM_KEEP_ERRNO();
	HMM_MARK_FREE(ptr);

	if (!ptr)
		return 0;
	return release("hmm_free", ptr, false);
}

/*
 * Takes out of the map the registered ranges touching [@start, @end)
 * whose memory is gone (unmapped, or replaced by memory that is not
 * private anonymous: say, a large malloc() buffer freed without
 * hmm_unregister()), so that the memory now there can be registered.
 * The checks run with no lock held.
 */
static void evict_stale_regs(uintptr_t start, uintptr_t end)
{
	struct { uintptr_t base; size_t size; bool any, stale; } cand[8];
	struct hmm_alloc *a, *dead = NULL;
	size_t n = 0, i;
	bool any = false;

	pthread_rwlock_rdlock(&map.lock);
	for_each_alloc_touching(a, i, start, end) {
		if (a->registered && n < sizeof(cand) / sizeof(cand[0]))
			cand[n++] = (typeof(cand[0])){ a->base, a->size,
						       a->any_memory, false };
	}
	pthread_rwlock_unlock(&map.lock);
	for (size_t k = 0; k < n; k++) {
		const char *why;

		uintptr_t b = cand[k].base, e = b + cand[k].size;

		cand[k].stale = (cand[k].any ?
				 vma_walk(b, e, vma_not_paged, 0, &why) :
				 range_check(b, e, false, &why)) == -EINVAL;
		any |= cand[k].stale;
	}
	if (!any)
		return;
	pthread_rwlock_wrlock(&map.lock);
	for (size_t k = 0; k < n; k++) {
		ssize_t j = cand[k].stale ? map_index(cand[k].base) : -1;

		if (j < 0 || map.v[j]->base != cand[k].base ||
		    map.v[j]->size != cand[k].size || !map.v[j]->registered)
			continue;
		a = map.v[j];
		map_remove_at((size_t)j);
		a->stale = true;
		a->next_dead = dead;
		dead = a;
	}
	pthread_rwlock_unlock(&map.lock);
	destroy_dead(dead);
}

/*
 * Adds the registration @reg (pages [@start, @end)) to the registered
 * range that holds those pages, if there is one.  map.lock write-held.
 * Return: 0 (added), 1 (no such range), -EEXIST (@reg overlaps the bytes
 * of a registration there), -ENOMEM.
 */
static int reg_share(uintptr_t start, uintptr_t end, struct hmm_reg reg)
{
	struct hmm_alloc *a = map_find(start);
	struct hmm_reg *v;

	if (!a || !a->registered || end > a->base + a->size)
		return 1;
	for (size_t k = 0; k < a->nregs; k++) {
		if (reg.start < a->regs[k].end && a->regs[k].start < reg.end)
			return -EEXIST;
	}
	v = realloc(a->regs, (a->nregs + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	a->regs = v;
	a->regs[a->nregs++] = reg;
	return 0;
}

HMM_EXPORT int hmm_register(void *ptr, size_t size)
{
	HMM_KEEP_ERRNO();
	size_t ps = page_size();
	uintptr_t start, end;
	struct hmm_alloc *a;
	struct hmm_reg reg;
	const char *why = NULL;
	bool any = false;
	int ret;

	if (!ptr || !size)
		return -EINVAL;
	if ((uintptr_t)ptr > UINTPTR_MAX - size ||
	    (uintptr_t)ptr + size > UINTPTR_MAX - ps)
		return -EINVAL;
	reg = (struct hmm_reg){ (uintptr_t)ptr, (uintptr_t)ptr + size };
	start = (uintptr_t)ptr & ~(uintptr_t)(ps - 1);
	end = ((uintptr_t)ptr + size + ps - 1) & ~(uintptr_t)(ps - 1);

	ret = range_check(start, end, true, &why);
	if (ret == -EINVAL) {
		/* shared, file-backed or hugetlb memory: devices map it */
		any = true;
		ret = vma_walk(start, end, vma_not_paged, PROT_READ, &why);
	}
	if (ret) {
		hmm__log(HMM_LOG_INFO, "hmm_register(%p, %zu): %s", ptr, size,
			 why ? why : hmm_strerror(ret));
		return ret;
	}
	pthread_once(&atfork_once, atfork_register);
	evict_stale_regs(start, end);
	a = alloc_new(start, end - start, true);
	if (!a)
		return -ENOMEM;
	a->any_memory = any;
	a->regs = malloc(sizeof(*a->regs));
	if (!a->regs) {
		alloc_free(a);
		return -ENOMEM;
	}
	a->regs[0] = reg;
	a->nregs = 1;
	pthread_rwlock_wrlock(&map.lock);
	ret = reg_share(start, end, reg);
	if (ret == 1)
		ret = map_insert(a, false, NULL);
	else if (!ret)
		ret = 1; /* shared: @a is not needed */
	pthread_rwlock_unlock(&map.lock);
	if (ret) {
		if (ret == -EEXIST)
			hmm__log(HMM_LOG_DEBUG, "hmm_register(%p, %zu): "
				 "overlaps a managed range (memory freed and "
				 "reused without hmm_unregister()? "
				 "hmm_unregister() drops that registration)",
				 ptr, size);
		alloc_free(a);
	}
	if (ret == 1 || !ret)
		hmm__mark_alloc(ptr, size, __builtin_return_address(0));
	return ret == 1 ? 0 : ret;
}

HMM_EXPORT int hmm_unregister(void *ptr)
{
	HMM_KEEP_ERRNO();
	HMM_MARK_FREE(ptr);
	int ret;

	if (!ptr)
		return -EINVAL;
	ret = release("hmm_unregister", ptr, true);
	if (ret)
		hmm__mark.t0 = 0; /* nothing was unregistered: no marker */
	return ret;
}

HMM_EXPORT void *hmm_devptr(const void *ptr, int dev)
{
	struct hmm_alloc *a;
	void *ret = NULL;
	int fd = -1, err = 0, saved = errno;

	if (!ptr) {
		errno = EINVAL;
		return NULL;
	}
	if (dev != HMM_CPU) {
		fd = dev >= 0 && dev < HMM_MAX_DEVICES ? hmm__device_fd(dev) :
							 -ENODEV;
		if (fd < 0) {
			errno = ENODEV;
			return NULL;
		}
	}
	pthread_rwlock_rdlock(&map.lock);
	a = map_find((uintptr_t)ptr);
	if (!a) {
		hmm__log(HMM_LOG_DEBUG, "hmm_devptr(%p, %d): range not managed",
			 ptr, dev);
		err = EINVAL;
	} else if (!alloc_still_there("hmm_devptr", a)) {
		/*
		 * Moved by mremap() or unmapped: a view would show whatever
		 * is at the old address now.  (A few microseconds under the
		 * read lock: PROCMAP_QUERY, see range_check().)
		 */
		err = ESTALE;
	} else if (dev == HMM_CPU) {
		ret = (void *)ptr;
	} else {
		pthread_mutex_lock(&a->lock);
		if (!a->views[dev].addr)
			err = -view_create(a, dev, fd);
		if (!err)
			ret = (char *)a->views[dev].addr +
			      ((uintptr_t)ptr - a->base);
		pthread_mutex_unlock(&a->lock);
	}
	pthread_rwlock_unlock(&map.lock);
	errno = ret ? saved : err;
	return ret;
}

HMM_EXPORT int hmm_pointer_get_attributes(const void *ptr, int dev,
					  struct hmm_pointer_attributes *attr)
{
	HMM_KEEP_ERRNO();
	struct hmm_alloc *a;
	int ret = 0;

	if (!ptr || !attr)
		return -EINVAL;
	if (dev != HMM_CPU &&
	    (dev < 0 || dev >= HMM_MAX_DEVICES || hmm__device_fd(dev) < 0))
		return -ENODEV;
	memset(attr, 0, sizeof(*attr));
	attr->type = HMM_MEMORY_UNMANAGED;
	attr->device = dev;
	pthread_rwlock_rdlock(&map.lock);
	a = map_find((uintptr_t)ptr);
	if (!a) {
		/* not an error: the answer is "unmanaged" */
	} else if (!alloc_still_there("hmm_pointer_get_attributes", a)) {
		ret = -ESTALE;
	} else {
		ssize_t r = a->registered ? reg_find(a, (uintptr_t)ptr) : -1;

		attr->type = a->registered ? HMM_MEMORY_REGISTERED :
					     HMM_MEMORY_MANAGED;
		attr->range_base = (void *)a->base;
		attr->range_size = a->size;
		attr->base = (void *)(r >= 0 ? a->regs[r].start : a->base);
		attr->size = r >= 0 ? a->regs[r].end - a->regs[r].start :
				      a->size;
		if (dev == HMM_CPU) {
			attr->devptr = (void *)ptr;
		} else {
			pthread_mutex_lock(&a->lock);
			if (a->views[dev].addr)
				attr->devptr = (char *)a->views[dev].addr +
					       ((uintptr_t)ptr - a->base);
			pthread_mutex_unlock(&a->lock);
		}
	}
	pthread_rwlock_unlock(&map.lock);
	return ret;
}

/* --- for migrate.c -------------------------------------------------------- */

/* Says at debug level that @who was called on a range not all managed. */
static void log_unmanaged(const char *who, const void *ptr, size_t size)
{
	hmm__log(HMM_LOG_DEBUG, "%s(%p, %zu): range not managed", who, ptr,
		 size);
}

/*
 * hmm__mem_check() - whether every byte of [@ptr, @ptr + @size) is managed.
 * Return: 0, or -EINVAL (also for a NULL @ptr, a zero @size or a range
 * that wraps).
 */
int hmm__mem_check(const char *who, const void *ptr, size_t size)
{
	size_t first, count;
	int ret;

	if (!ptr || !size || (uintptr_t)ptr > UINTPTR_MAX - size)
		return -EINVAL;
	pthread_rwlock_rdlock(&map.lock);
	ret = map_run((uintptr_t)ptr, (uintptr_t)ptr + size, &first, &count);
	pthread_rwlock_unlock(&map.lock);
	if (ret)
		log_unmanaged(who, ptr, size);
	return ret;
}

/*
 * hmm__mem_discard() - MADV_DONTNEED on the whole pages of [@ptr, @ptr +
 * @size): the kernel drops them wherever they are (a device page is
 * freed by the driver, not copied back) and the next access reads zeros.
 * The partial pages at either end keep their data.  The range must be
 * managed, and still mapped as it was (a moved range would have someone
 * else's memory at its address).  madvise() runs with no lock held.
 * Return: 0, -EINVAL, -ESTALE, or the errno of madvise() (-EINVAL for
 * mlock()ed pages).
 */
int hmm__mem_discard(const void *ptr, size_t size)
{
	size_t ps = page_size(), first = 0, count = 0;
	uintptr_t start, end;
	bool live = true;
	int ret;

	if (!ptr || !size || (uintptr_t)ptr > UINTPTR_MAX - size)
		return -EINVAL;
	pthread_rwlock_rdlock(&map.lock);
	ret = map_run((uintptr_t)ptr, (uintptr_t)ptr + size, &first, &count);
	for (size_t i = first; !ret && i < first + count; i++)
		live = live && alloc_still_there("hmm_discard", map.v[i]);
	pthread_rwlock_unlock(&map.lock);
	if (ret) {
		log_unmanaged("hmm_discard", ptr, size);
		return ret;
	}
	if (!live)
		return -ESTALE;
	start = ((uintptr_t)ptr + ps - 1) & ~(uintptr_t)(ps - 1);
	end = ((uintptr_t)ptr + size) & ~(uintptr_t)(ps - 1);
	if (start >= end)
		return 0;
	if (madvise((void *)start, end - start, MADV_DONTNEED))
		return -errno;
	return 0;
}

/* Whether all @n pages from @start are on the device behind @fd. */
static bool all_on_device(int fd, uintptr_t start, size_t n)
{
	size_t chunk = n < 4096 ? n : 4096;
	uint8_t *loc = malloc(chunk);
	bool all = loc != NULL;

	for (size_t done = 0; all && done < n; done += chunk) {
		struct drm_hmmgpu_residency r = {
			.start = start + done * page_size(),
			.npages = n - done < chunk ? n - done : chunk,
			.locations = (uintptr_t)loc,
		};

		all = !drmIoctl(fd, DRM_IOCTL_HMMGPU_RESIDENCY, &r) &&
		      r.count[HMMGPU_RESIDENCY_THIS_DEVICE] == r.npages;
	}
	free(loc);
	return all;
}

/*
 * hmm__mem_device_alias() - the address at which a device reaches
 * [@ptr, @ptr + @size) where it already is.
 *
 * When the range lies in one managed range that has a view on device d,
 * and every page of it is on d now, returns the range's address in that
 * view (and d in *@dev): a copy through it is the device's own access, so
 * the pages stay on d, where a CPU access would bring each back. NULL
 * otherwise: the caller uses @ptr. Pages that leave meanwhile (an
 * eviction, another thread's access) are faulted back to d by the view,
 * with their data: the alias is a hint for speed, never for correctness.
 */
void *hmm__mem_device_alias(const void *ptr, size_t size, int *dev)
{
	uintptr_t p = (uintptr_t)ptr, ps = page_size(), start, end;
	struct hmm_alloc *a;
	void *alias = NULL;

	if (!size || p > UINTPTR_MAX - size - ps)
		return NULL;
	start = p & ~(ps - 1);
	end = (p + size + ps - 1) & ~(ps - 1);
	pthread_rwlock_rdlock(&map.lock);
	a = map_find(p);
	if (a && p + size <= a->base + a->size &&
	    alloc_still_there("a device copy", a)) {
		pthread_mutex_lock(&a->lock);
		for (int d = 0; d < HMM_MAX_DEVICES && !alias; d++) {
			int fd;

			if (!a->views[d].addr)
				continue;
			fd = hmm__device_fd(d);
			if (fd >= 0 &&
			    all_on_device(fd, start, (end - start) / ps)) {
				alias = (char *)a->views[d].addr + (p - a->base);
				*dev = d;
			}
		}
		pthread_mutex_unlock(&a->lock);
	}
	pthread_rwlock_unlock(&map.lock);
	return alias;
}

void hmm__mem_shutdown(void)
{
	pthread_rwlock_wrlock(&map.lock);
	/* closing the userfaultfd lifts the protection of every range */
	for (size_t i = 0; i < map.n; i++)
		map.v[i]->rm_armed = false;
	hmm__rm_shutdown();
	if (!map.n) {
		free(map.v);
		map.v = NULL;
		map.cap = 0;
	}
	pthread_rwlock_unlock(&map.lock);
}

/*
 * hmm__mem_set_last_prefetch() - records that the managed ranges touched
 * by [@ptr, @ptr + @size) were last prefetched to @loc.  Ranges freed
 * meanwhile are skipped.
 */
void hmm__mem_set_last_prefetch(const void *ptr, size_t size, int loc)
{
	uintptr_t p = (uintptr_t)ptr, end = p + size;
	struct hmm_alloc *a;
	size_t i;

	pthread_rwlock_rdlock(&map.lock);
	for_each_alloc_touching(a, i, p, end) {
		pthread_mutex_lock(&a->lock);
		a->last_prefetch = loc;
		pthread_mutex_unlock(&a->lock);
	}
	pthread_rwlock_unlock(&map.lock);
}

/*
 * hmm__mem_ensure_views() - gives every managed range that [@ptr, @ptr +
 * @size) touches a view on device @dev, before a prefetch there: the
 * driver enters prefetched pages in existing views, so device code finds
 * them mapped and takes no device fault.  Best effort: a range whose view
 * cannot be made gets one at hmm_devptr() time, as usual.
 */
void hmm__mem_ensure_views(const void *ptr, size_t size, int dev)
{
	uintptr_t p = (uintptr_t)ptr, end = p + size;
	int fd = hmm__device_fd(dev);
	struct hmm_alloc *a;
	size_t i;

	if (fd < 0)
		return;
	pthread_rwlock_rdlock(&map.lock);
	for_each_alloc_touching(a, i, p, end) {
		pthread_mutex_lock(&a->lock);
		if (!a->views[dev].addr && view_create(a, dev, fd))
			hmm__log(HMM_LOG_DEBUG, "no view of %#" PRIxPTR
				 " on device %d before prefetch", a->base, dev);
		pthread_mutex_unlock(&a->lock);
	}
	pthread_rwlock_unlock(&map.lock);
}

/*
 * Write-protects private anonymous read-mostly memory, so that the devices
 * get copies of it while the CPU may still write it (readmostly.c), and
 * ends that with the advice.  Best effort: unarmed, the advice copies
 * read-only memory only.  a->lock held.
 */
static void rm_sync(struct hmm_alloc *a)
{
	if (a->read_mostly && !a->rm_armed && !a->any_memory && !a->stale)
		a->rm_armed = !hmm__rm_arm(a->base, a->size);
	else if (!a->read_mostly && a->rm_armed) {
		hmm__rm_disarm(a->base, a->size);
		a->rm_armed = false;
	}
}

/*
 * hmm__mem_advise() - records @advice for every managed range that
 * [@ptr, @ptr + @size) touches and applies it to their views.  The
 * caller has validated @advice, @dev and @value.
 * Return: 0, -EINVAL (range not managed), or an error of VIEW_ADVISE (the
 * advice is recorded anyway).
 */
int hmm__mem_advise(const void *ptr, size_t size, enum hmm_advice advice,
		    int dev, uint64_t value)
{
	size_t first = 0, count = 0;
	int ret;

	if (!ptr || !size || (uintptr_t)ptr > UINTPTR_MAX - size)
		return -EINVAL;
	pthread_rwlock_rdlock(&map.lock);
	ret = map_run((uintptr_t)ptr, (uintptr_t)ptr + size, &first, &count);
	for (size_t i = first; !ret && i < first + count; i++) {
		struct hmm_alloc *a = map.v[i];
		int err;

		pthread_mutex_lock(&a->lock);
		switch (advice) {
		case HMM_ADVISE_SET_PREFERRED_LOCATION:
			a->preferred = dev;
			break;
		case HMM_ADVISE_UNSET_PREFERRED_LOCATION:
			a->preferred = HMM_LOC_NONE;
			break;
		case HMM_ADVISE_SET_REMOTE_ACCESS:
			a->remote_mask |= 1U << dev;
			break;
		case HMM_ADVISE_UNSET_REMOTE_ACCESS:
			a->remote_mask &= ~(1U << dev);
			break;
		case HMM_ADVISE_SET_ACCESSED_BY:
			a->accessed_mask |= 1U << dev;
			break;
		case HMM_ADVISE_UNSET_ACCESSED_BY:
			a->accessed_mask &= ~(1U << dev);
			break;
		case HMM_ADVISE_ATOMIC_POLICY:
			a->atomic = (uint32_t)value;
			break;
		case HMM_ADVISE_SET_READ_MOSTLY:
		case HMM_ADVISE_UNSET_READ_MOSTLY:
			a->read_mostly = advice == HMM_ADVISE_SET_READ_MOSTLY;
			rm_sync(a);
			break;
		case HMM_ADVISE_FAULT_GRANULARITY:
			a->granularity = value;
			break;
		}
		err = views_sync(a);
		pthread_mutex_unlock(&a->lock);
		/* keep going: the advice is per range, record it for all */
		if (err && !ret)
			ret = err;
	}
	if (!count)
		log_unmanaged("hmm_advise", ptr, size);
	pthread_rwlock_unlock(&map.lock);
	return ret;
}

/*
 * hmm__mem_get_attrs() - the advice of the managed ranges that
 * [@ptr, @ptr + @size) touches, combined: *@preferred, *@last_prefetch
 * (HMM_LOC_NONE) and *@granularity (0) when the ranges differ; *@remote
 * the devices advised for remote access on every one of them;
 * *@read_mostly whether every one is read-mostly.
 * Return: 0 or -EINVAL (range not managed).
 */
int hmm__mem_get_attrs(const void *ptr, size_t size, int *preferred,
		       uint32_t *remote, uint32_t *accessed, uint32_t *atomic,
		       bool *read_mostly, int *last_prefetch,
		       uint64_t *granularity)
{
	size_t first = 0, count = 0;
	int ret;

	if (!ptr || !size || (uintptr_t)ptr > UINTPTR_MAX - size)
		return -EINVAL;
	pthread_rwlock_rdlock(&map.lock);
	ret = map_run((uintptr_t)ptr, (uintptr_t)ptr + size, &first, &count);
	for (size_t i = first; !ret && i < first + count; i++) {
		struct hmm_alloc *a = map.v[i];

		pthread_mutex_lock(&a->lock);
		if (i == first) {
			*preferred = a->preferred;
			*remote = a->remote_mask;
			*accessed = a->accessed_mask;
			*atomic = a->atomic;
			*read_mostly = a->read_mostly;
			*last_prefetch = a->last_prefetch;
			*granularity = a->granularity;
		} else {
			if (*preferred != a->preferred)
				*preferred = HMM_LOC_NONE;
			*remote &= a->remote_mask;
			*accessed &= a->accessed_mask;
			if (*atomic != a->atomic)
				*atomic = HMM_ATOMIC_DEFAULT;
			*read_mostly = *read_mostly && a->read_mostly;
			if (*last_prefetch != a->last_prefetch)
				*last_prefetch = HMM_LOC_NONE;
			if (*granularity != a->granularity)
				*granularity = 0;
		}
		pthread_mutex_unlock(&a->lock);
	}
	if (!count)
		log_unmanaged("hmm_range_get_attr", ptr, size);
	pthread_rwlock_unlock(&map.lock);
	return ret;
}
