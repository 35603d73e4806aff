/* SPDX-License-Identifier: MIT */
/**
 * @file hmm.h
 * @brief libhmm: managed memory for the hmmgpu virtual GPU.
 *
 * Conventions: functions return 0 (or a count) on success and a negative
 * errno on failure; functions returning a pointer return NULL and set
 * errno.  A successful call leaves errno as it was, and so does a failed
 * call of a function that returns an int.  The library never exits and
 * never prints.  Every function is thread-safe.
 *
 * fork(): streams and events belong to the process that created them:
 * their work runs on threads of that process, which a child does not
 * have.  In a child, every call naming a stream or event of its parent
 * returns -ECHILD ("no child processes" is the C library's text; the
 * library's own, from hmm_strerror(), says it is the parent's), at once,
 * so that a child cannot queue work that never runs and then wait for it
 * forever.  -ECHILD is used for nothing else.  The child may create
 * streams and events of its own; managed memory is inherited as usual.
 *
 * Locations: a device number (0 to hmm_device_count() - 1) or HMM_CPU.
 * Without any device, hmm_malloc() still gives host memory, launches run
 * on host threads (streams of HMM_CPU), and anything that needs a device
 * fails with -ENODEV; an application written with `dev = count > 0 ? 0 :
 * HMM_CPU` runs unchanged on both.  Reference and examples: docs/api.md.
 *
 * Logging: the library prints nothing unless the environment variable
 * HMM_LOG is set: HMM_LOG=error, warn, info or debug (1 means info)
 * prints messages of that level and above to stderr, one line each,
 * prefixed "libhmm: ".
 */
#ifndef HMM_HMM_H
#define HMM_HMM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Length of the string fields of struct hmm_device_info, with the NUL. */
#define HMM_DEVICE_NAME_MAX 64

/** Copy engines a device may use (hmm_device_info::copy_engine). */
enum hmm_copy_engine {
	HMM_COPY_ENGINE_SOFTWARE = 0,  /**< the device's own copy threads */
	HMM_COPY_ENGINE_DMAENGINE = 1, /**< a dmaengine DMA_MEMCPY channel */
};

/** What hmm_device_get_info() reports of a device. */
struct hmm_device_info {
	char name[HMM_DEVICE_NAME_MAX];        /**< "hmmgpu0", "hmmgpu1", ... */
	char render_node[HMM_DEVICE_NAME_MAX]; /**< "/dev/dri/renderD128" */
	uint64_t mem_total;      /**< device memory in bytes */
	uint64_t mem_free;       /**< device memory holding no page, bytes */
	uint64_t page_size;      /**< bytes in a device page */
	uint32_t index;          /**< the device number used by every call */
	uint32_t abi_version;    /**< ioctl ABI version of the driver */
	uint32_t copy_engine;    /**< enum hmm_copy_engine */
	uint32_t copy_channels;  /**< copy-engine channels */
	/** the bus device behind the node, "subsystem:name": for hmmgpu,
	 *  "platform:hmmgpu.0", ... (libdrm's drmGetDevices2() when it lists
	 *  the device, else udev) */
	char bus[HMM_DEVICE_NAME_MAX];
	uint64_t caps;           /**< HMM_DEVICE_CAP_* bits */
	/* With HMM_DEVICE_CAP_PCI, the PCI identity read with libpciaccess
	 * (zero otherwise; these were reserved fields before 0.2): */
	uint32_t pci_domain;     /**< bus address: domain, */
	uint8_t pci_bus;         /**< bus, */
	uint8_t pci_dev;         /**< device */
	uint8_t pci_func;        /**< and function */
	uint8_t pci_bar;         /**< the memory BAR holding device memory */
	uint16_t pci_vendor_id;  /**< vendor ID (0x1af4 for ivshmem) */
	uint16_t pci_device_id;  /**< device ID (0x1110 for ivshmem) */
	uint32_t pci_pad;        /**< zero */
	uint64_t pci_bar_size;   /**< size of that BAR in bytes */
};

/**
 * hmm_device_info::caps: the device's views work on this kernel and CPU
 * (device pointers, hmm_launch(), OpenCL interop).  Without it (Linux 7.x
 * on an x86 CPU with PCIDs but no INVPCID) those return -EOPNOTSUPP;
 * managed memory, prefetch and residency still work.
 */
#define HMM_DEVICE_CAP_VIEW (1ULL << 0)

/**
 * hmm_device_info::caps: the device is a PCI device whose memory BAR holds
 * its device memory (hmmgpu's PCI personality), and the pci_* fields
 * describe it.  The BAR is the largest memory BAR, the one the driver
 * takes.
 */
#define HMM_DEVICE_CAP_PCI (1ULL << 1)

/**
 * Number of hmmgpu devices this process can use.
 *
 * Devices are found once, at the first call of any function, by
 * enumerating DRM render nodes and keeping those whose driver is hmmgpu.
 *
 * @return the count (0 when there is none), or a negative errno when
 *         enumeration failed.  Nodes the process may not open (not in the
 *         "render" group) are not counted.  Device numbers are never
 *         reused: a device removed since (hot-unplug, unbind) keeps its
 *         number and is still counted, but every call naming it returns
 *         -ENODEV; a device that appears gets the next number.
 */
int hmm_device_count(void);

/**
 * Describes device @p dev.
 *
 * @param dev   device number, 0 to hmm_device_count() - 1
 * @param info  filled on success
 * @return 0, -EINVAL when @p info is NULL, -ENODEV when @p dev does not
 *         exist or was removed.
 *
 * @code
 * struct hmm_device_info info;
 * if (hmm_device_get_info(0, &info) == 0)
 *         printf("%s: %llu MiB\n", info.name,
 *                (unsigned long long)(info.mem_total >> 20));
 * @endcode
 */
int hmm_device_get_info(int dev, struct hmm_device_info *info);

/** The CPU (system memory) as a location. */
#define HMM_CPU (-1)
/** hmm_residency(): the page is not populated anywhere yet. */
#define HMM_LOC_NONE (-2)

/* ------------------------------------------------------------------------ */
/** @name Managed memory */
/** @{ */

/**
 * Allocates @p size bytes of managed memory: private anonymous memory,
 * zero-filled, CPU-accessible at once, that can migrate to any device.
 * Sizes of 2 MiB and more are 2 MiB-aligned (a device migrates and
 * prefetches by 2 MiB regions), smaller ones page-aligned.  The memory
 * is registered with a device's view on first device use.
 *
 * @return the address, or NULL with errno EINVAL (@p size 0) or ENOMEM.
 */
void *hmm_malloc(size_t size);

/**
 * Frees memory from hmm_malloc(); any address inside the allocation
 * names it.  Like cudaFree(), it first waits until the work queued so far
 * on every stream of the process has run (launches, asynchronous
 * prefetches and callbacks, whatever memory they touch), so work queued
 * on the allocation before the call never finds it gone; errors of that
 * work stay with their streams.  Device pages return to their device.
 * Views of it on every device go away; device pointers to it become
 * invalid.
 *
 * mremap() of managed memory: the library does not follow the memory
 * to its new address (it is plain memory there, not managed; hmm_malloc()
 * or hmm_register() it anew if needed).  At the old address, hmm_free(),
 * hmm_unregister() and hmm_devptr() check that the range is still mapped
 * private anonymous memory; when it is not (the range was moved away,
 * unmapped, or something shared, file-backed or special was mapped
 * there since) they fail with -ESTALE / ESTALE, the library forgets the
 * range and its views, and nothing at that address is unmapped or
 * migrated.  The application unmaps the moved memory itself.  A private
 * anonymous mapping made at exactly the old address since cannot be told
 * from the original from user space: do not do that with managed memory.
 * mprotect() and madvise() are not moves: they are fine.
 *
 * @return 0; -EINVAL when @p ptr is inside no hmm_malloc() allocation
 *         (memory from hmm_register() is released with hmm_unregister());
 *         -EDEADLK when called from work running on a stream (a callback
 *         or a kernel: it would wait for itself; nothing is freed);
 *         -ESTALE when the allocation was moved by mremap() or unmapped
 *         (see above: forgotten, nothing unmapped); hmm_free(NULL)
 *         returns 0.
 */
int hmm_free(void *ptr);

/**
 * Names the managed memory (from hmm_malloc() or hmm_register()) that
 * @p ptr is in, for profilers, like NVTX's resource naming: hmmprof then
 * shows the hmm_malloc() allocation as @p name in its per-allocation
 * table, its JSON, CSV and timeline.  The name goes only to a profiler that is running
 * (see HMM_TRACE_MARKER in docs/hmmprof.md); without one the call checks
 * its arguments and does nothing else.  The name is a UTF-8 string; up to
 * 128 bytes of it are kept.  Naming again renames.
 *
 * @return 0; -EINVAL when @p ptr is not managed memory, or @p name is
 *         NULL or empty.
 */
int hmm_set_name(const void *ptr, const char *name);

/**
 * Makes memory the application already has (from malloc() or mmap()) managed:
 * [@p ptr, @p ptr + @p size) rounded out to whole pages.  Private
 * anonymous memory migrates like hmm_malloc() memory.  Any other
 * readable memory with pages may be registered too (with a driver of ABI
 * 7 or later, for device pointers): MAP_SHARED anonymous memory, memfd,
 * shared and private file mappings, hugetlbfs.  Its shared, file and
 * hugetlb pages never migrate: devices map them where they are (a
 * device write to a file page is written back like a CPU write), and
 * prefetches leave them in place; the pages a process wrote in a
 * private file mapping (its copy-on-write copies) migrate.  Special
 * mappings and device files' mappings are refused.  The memory stays
 * the application's: hmm_unregister() before freeing it.
 *
 * Pages are managed as a whole, and registrations may share them: a
 * range whose pages lie inside a registered range (say, two small
 * malloc() buffers in one page) is a further registration of that range,
 * counted; its pages, views and advice stay until the last registration
 * sharing them is unregistered.  Registrations must not overlap in their
 * bytes, and a range whose pages reach beyond a registered range, or
 * overlap an hmm_malloc() allocation, is -EEXIST (register the larger
 * range first).
 *
 * Memory freed without hmm_unregister(): a registration whose memory is
 * no longer mapped private anonymous (a large malloc() buffer goes back
 * to the kernel) is found and dropped when its addresses are registered
 * again.  Heap memory stays mapped when freed, so a registration of it
 * cannot be told from a live one: hmm_unregister() at the old address
 * drops it (that touches nothing but bringing its pages back from
 * devices).
 *
 * @return 0; -EINVAL for NULL, size 0, or memory that is not mapped
 *         and readable, or is a special or device mapping; -EEXIST when it overlaps the bytes of
 *         a registration, or overlaps a managed range without lying in a
 *         registered one; -ENOMEM.
 */
int hmm_register(void *ptr, size_t size);

/**
 * Ends an hmm_register(): the one whose bytes hold @p ptr, or, when
 * the pages of @p ptr belong to a single registration, that one (any
 * address of its pages names it).  Like hmm_free(), it first waits until
 * the work queued so far on every stream of the process has run.  When
 * no other registration shares the pages, data on a device comes back to
 * system memory then, so the application's memory keeps its contents;
 * otherwise nothing changes for the pages.  A range moved by mremap() or
 * unmapped is forgotten as hmm_free() says: -ESTALE.
 *
 * @return 0; -EINVAL when @p ptr is inside no registered range, or in
 *         pages several registrations share but in the bytes of none;
 *         -EDEADLK when called from work running on a stream (nothing is
 *         done); -ESTALE.
 */
int hmm_unregister(void *ptr);

/**
 * The address of @p ptr in @p dev's view: the pointer device code
 * (hmm_launch() kernels, OpenCL buffers) uses for @p ptr.  The first call
 * for an allocation and device maps the view.  Device accesses through it
 * fault pages over on demand.  hmm_devptr(ptr, HMM_CPU) is @p ptr.
 *
 * @return the device address, or NULL with errno EINVAL (@p ptr not
 *         managed), ENODEV (no such device), ESTALE (the range was moved
 *         by mremap() or unmapped: see hmm_free()), or, when the first
 *         call maps the view: EOPNOTSUPP (the device has no views on this
 *         kernel, see HMM_DEVICE_CAP_VIEW), ENOSPC (too many views on
 *         the device), ENOMEM, or another errno of VIEW_REGISTER or
 *         mmap().
 */
void *hmm_devptr(const void *ptr, int dev);

/** What hmm_pointer_get_attributes() says a pointer is. */
enum hmm_memory_type {
	HMM_MEMORY_UNMANAGED = 0,  /**< not managed by libhmm */
	HMM_MEMORY_MANAGED = 1,    /**< in an hmm_malloc() allocation */
	HMM_MEMORY_REGISTERED = 2, /**< in an hmm_register()ed range */
};

/** What hmm_pointer_get_attributes() reports of a pointer. */
struct hmm_pointer_attributes {
	uint32_t type;      /**< enum hmm_memory_type */
	int32_t device;     /**< the device asked about, or HMM_CPU */
	/** the allocation, or the registration (the bytes hmm_register()
	 *  named) holding the pointer; NULL when unmanaged */
	void *base;
	uint64_t size;      /**< its bytes (an allocation's, page-rounded) */
	/** the managed pages holding the pointer: the allocation, or the
	 *  pages the registrations sharing them cover */
	void *range_base;
	uint64_t range_size; /**< their bytes */
	/** the pointer's address in the view of @c device (the pointer
	 *  itself for HMM_CPU), NULL while no view is mapped: the query
	 *  maps none, hmm_devptr() does */
	void *devptr;
	uint64_t reserved[4]; /**< zero */
};

/**
 * Says what @p ptr is: managed (hmm_malloc()), registered, or neither;
 * the allocation or registration holding it; its address in the view of
 * @p dev.  Any pointer may be asked about.
 *
 * @param dev   a device, or HMM_CPU
 * @return 0 and *@p attr (type HMM_MEMORY_UNMANAGED, other fields zero,
 *         for memory libhmm does not manage); -EINVAL (@p ptr or @p attr
 *         NULL); -ENODEV (no such device); -ESTALE (the range was moved
 *         by mremap() or unmapped, see hmm_free()).
 */
int hmm_pointer_get_attributes(const void *ptr, int dev,
			       struct hmm_pointer_attributes *attr);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Streams and events */
/** @{ */

/**
 * An in-order queue of work for one device (or HMM_CPU).
 *
 * Stream and event pointers are handles: the library never dereferences
 * them and never hands the same value out twice in a process (on a 32-bit
 * system, not within 2^32 creations).  A call
 * with a handle that was destroyed, or never created, returns -EINVAL
 * (and in a fork child, a handle of the parent: -ECHILD).
 */
struct hmm_stream;
/** A point in a stream's work, to wait for or to time. */
struct hmm_event;

/**
 * Creates a stream of work for @p dev (a device, or HMM_CPU for host
 * execution).  Work queued on a stream runs in order, one item after the
 * other, on a thread of the library; different streams run concurrently.
 *
 * A call made from work running on a stream (a callback or a kernel)
 * that would wait for that same stream returns -EDEADLK instead of
 * hanging: hmm_stream_destroy(), hmm_stream_synchronize() and
 * hmm_device_synchronize() of it, waiting for an event still to be
 * recorded on it, and hmm_free(), hmm_unregister() and hmm_shutdown(),
 * which wait for every stream.
 *
 * Waits between streams that would form a cycle are refused the same
 * way: when a callback or kernel of stream X would wait (synchronize,
 * destroy, event synchronize or destroy) for stream Y while Y's work
 * already waits, directly or through other streams, for X, the call
 * returns -EDEADLK; when a hmm_stream_wait_event() item is what would
 * close the cycle, it is not waited and fails with -EDEADLK as its
 * stream's error.  Waits on the application's own locks or semaphores
 * are not seen.
 *
 * Every call taking a stream or an event returns -EINVAL for a handle
 * that is not alive (see struct hmm_stream) and -ECHILD for one of the
 * parent process after fork().
 *
 * @return 0 and *@p s; -EINVAL (@p s NULL), -ENODEV, -ENOMEM, -EAGAIN.
 */
int hmm_stream_create(struct hmm_stream **s, int dev);

/**
 * Waits for the work queued on @p s, then destroys it.  Work queued on it
 * by other threads after this call has begun is refused (-EINVAL).
 * @return 0; -EINVAL (@p s NULL, or already destroyed); -ECHILD; -EDEADLK.
 */
int hmm_stream_destroy(struct hmm_stream *s);

/**
 * Waits until all work queued on @p s so far has run.
 * @return 0, -EINVAL, -ECHILD, -EDEADLK (called from work on @p s, a
 *         callback or a kernel of it, or the wait would close a cycle of
 *         waits between streams), or the first error of that work (then
 *         cleared), such as -EFAULT from a kernel that faulted.
 */
int hmm_stream_synchronize(struct hmm_stream *s);

/** @return 0 when all work on @p s has run, -EBUSY when some has not,
 *  -EINVAL, -ECHILD. */
int hmm_stream_query(struct hmm_stream *s);

/** A function hmm_stream_add_callback() runs; @p status is 0 or the
 *  stream's pending error. */
typedef void (*hmm_stream_callback_fn)(struct hmm_stream *s, int status,
				       void *user_data);

/**
 * Queues a call of @p fn(@p s, status, @p user_data) on @p s, after the
 * work queued before it.  @p fn must not queue work on @p s and wait for
 * it.
 * @return 0, -EINVAL, -ECHILD, -ENOMEM.
 */
int hmm_stream_add_callback(struct hmm_stream *s, hmm_stream_callback_fn fn,
			    void *user_data);

/**
 * Makes the work queued on @p s after this call wait until @p e has
 * completed (@p e may be recorded on any stream).  An event never
 * recorded is complete.
 * @return 0, -EINVAL, -ECHILD, -ENOMEM.
 */
int hmm_stream_wait_event(struct hmm_stream *s, struct hmm_event *e);

/**
 * Waits until every stream of @p dev (HMM_CPU: the host streams) has run
 * all its work.  In a fork child, the parent's streams are not waited for.
 * @return 0, -ENODEV, -EDEADLK (called from work running on one of those
 *         streams: it would wait for itself), or the first error found on
 *         those streams (then cleared, as by hmm_stream_synchronize()).
 */
int hmm_device_synchronize(int dev);

/** Creates an event. @return 0 and *@p e, -EINVAL, -ENOMEM. */
int hmm_event_create(struct hmm_event **e);

/** Destroys @p e (waiting for it first).
 *  @return 0, -EINVAL (NULL, or already destroyed), -ECHILD, -EDEADLK. */
int hmm_event_destroy(struct hmm_event *e);

/**
 * Records @p e on @p s: @p e completes, and takes its timestamp, when
 * the work queued on @p s before it has run.  Recording again replaces
 * the previous record.  @p s NULL, as for hmm_prefetch_async(), means
 * now, on the calling thread: @p e is complete at once, timestamped now.
 * @return 0, -EINVAL, -ECHILD, -ENOMEM.
 */
int hmm_event_record(struct hmm_event *e, struct hmm_stream *s);

/** Waits until @p e has completed.
 *  @return 0, -EINVAL, -ECHILD, -EDEADLK. */
int hmm_event_synchronize(struct hmm_event *e);

/** @return 0 when @p e has completed (or was never recorded), -EBUSY when
 *  not yet, -EINVAL, -ECHILD. */
int hmm_event_query(struct hmm_event *e);

/**
 * Milliseconds between the completion of @p start and of @p end.
 * @return 0 and *@p ms; -EINVAL; -ECHILD; -EBUSY when either has not
 *         completed; -ENODATA when either was never recorded.
 */
int hmm_event_elapsed_ms(float *ms, struct hmm_event *start,
			 struct hmm_event *end);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Migration, advice and residency */
/** @{ */

/**
 * Migrates [@p ptr, @p ptr + @p size) (rounded out to pages) to @p dst, a
 * device or HMM_CPU, and returns when it is there.  Pages that cannot
 * move (pinned, shared) stay where they are; that is not an error.  The
 * range must lie in managed memory (it may span allocations).  A full
 * device evicts other data, least recently used first, but never pages
 * this prefetch moved: a range larger than what the device can hold
 * fills it (in address order) and leaves the rest where it was;
 * hmm_residency() says where each page is (HMM_LOG=info logs how many
 * pages stayed).
 *
 * @return 0; -EINVAL (NULL, size 0, range not managed); -ENODEV (no such
 *         device: also when no device exists at all); -ENOMEM (device
 *         memory full even after eviction); -EFAULT (part of a registered
 *         range was unmapped without hmm_unregister()).
 */
int hmm_prefetch(const void *ptr, size_t size, int dst);

/**
 * hmm_prefetch() queued on @p s: it runs after the work queued on @p s
 * before it; hmm_stream_synchronize() or an event tells when it is done.
 * Arguments are checked now; errors of the migration itself are the
 * stream's (hmm_stream_synchronize() returns them).  @p s NULL: a
 * synchronous hmm_prefetch().
 *
 * @return 0, or the errors of hmm_prefetch() found at queueing time;
 *         -EINVAL or -ECHILD for the stream.
 */
int hmm_prefetch_async(const void *ptr, size_t size, int dst,
		       struct hmm_stream *s);

/**
 * Prefetches @p count ranges (@p ptrs[i], @p sizes[i]) to @p dst in one
 * call: hmm_prefetch() of each, in order, queued on @p s as one item
 * (@p s NULL: now, on the calling thread).  Every range is checked before
 * anything moves, so a bad range fails the call with nothing done.  The
 * arrays are copied: they may be reused when the call returns.  When a
 * migration fails, the ranges after it are not prefetched (with @p s, the
 * error is the stream's).
 *
 * @return 0; -EINVAL (NULL arrays, @p count 0, or a range hmm_prefetch()
 *         refuses); -ENODEV; -ENOMEM; -ECHILD for the stream; without a
 *         stream, the errors of hmm_prefetch().
 */
int hmm_prefetch_batch(const void *const *ptrs, const size_t *sizes,
		       size_t count, int dst, struct hmm_stream *s);

/**
 * Says that the contents of [@p ptr, @p ptr + @p size) are no longer
 * needed: its whole pages are dropped wherever they are, and a page on a
 * device is freed there without being copied back to system memory
 * (madvise(MADV_DONTNEED) of the managed memory).  Afterwards a read of a
 * discarded page returns zeros, on the CPU and through a device view; the
 * next access populates it again where it happens.  The partial pages at
 * either end of the range keep their contents.  The range must be managed
 * (it may span allocations).  It does not wait for stream work: work
 * queued on the range may see zeros.
 *
 * @return 0; -EINVAL (NULL, size 0, range not managed, mlock()ed pages);
 *         -ESTALE (moved by mremap() or unmapped, see hmm_free()).
 */
int hmm_discard(void *ptr, size_t size);

/**
 * hmm_discard() of @p count ranges (@p ptrs[i], @p sizes[i]) in one call,
 * in stream order on @p s (CUDA's cudaMemDiscardBatchAsync): the ranges
 * are dropped after the work queued on @p s before, so that work sees
 * their contents, and before the work queued after, which sees zeros
 * (or its own writes).  @p s NULL: now, on the calling thread.  Every
 * range is checked before any is dropped.
 *
 * @return 0; -EINVAL (NULL arrays, @p count 0, a range not managed, a
 *         dead stream); -ENOMEM; with @p s NULL, the errors of
 *         hmm_discard(); queued, those are the stream's (the first one
 *         ends the batch).
 */
int hmm_discard_batch(void *const *ptrs, const size_t *sizes, size_t count,
		      struct hmm_stream *s);

/** Advice for hmm_advise(). */
enum hmm_advice {
	/** Keep the data on @p dev (a device or HMM_CPU) where possible.
	 *  With a device: its pages there are evicted only to make room
	 *  for other data preferred there (data without the advice stays
	 *  in system memory, or is mapped there, when the device is full
	 *  of preferred data); a CPU access brings back the page it
	 *  touches, not the usual block; device accesses migrate unless
	 *  remote access is advised; prefetches elsewhere still move it.
	 *  With HMM_CPU, device accesses map system memory instead of
	 *  migrating it. */
	HMM_ADVISE_SET_PREFERRED_LOCATION = 1,
	/** Forget the preferred location. */
	HMM_ADVISE_UNSET_PREFERRED_LOCATION = 2,
	/** Device @p dev accesses the range remotely (zero-copy, pages stay
	 *  where they are) rather than faulting them over. */
	HMM_ADVISE_SET_REMOTE_ACCESS = 3,
	/** Device @p dev faults pages over again. */
	HMM_ADVISE_UNSET_REMOTE_ACCESS = 4,
	/** A device fault moves @p value bytes: a power of two from 4 KiB
	 *  to 2 MiB (0: the driver's default).  For every device; @p dev is
	 *  not used. */
	HMM_ADVISE_FAULT_GRANULARITY = 5,
	/** Device @p dev keeps the range mapped wherever its data is
	 *  (CUDA's SetAccessedBy): its accesses to data that exists do not
	 *  fault, and neither the advice nor those accesses move the data.
	 *  When the data moves (a prefetch, a CPU access, eviction), the
	 *  device maps it at its new place.  Needs a driver of ABI 7 or
	 *  later (else -EINVAL from the driver). */
	HMM_ADVISE_SET_ACCESSED_BY = 6,
	/** Device @p dev maps the range on demand again (and migrates it
	 *  on access, unless remote access is advised). */
	HMM_ADVISE_UNSET_ACCESSED_BY = 7,
	/** The atomic-access policy of the range, @p value an
	 *  enum hmm_atomic_policy, for every device; @p dev is not used.
	 *  Needs a driver of ABI 7 or later. */
	HMM_ADVISE_ATOMIC_POLICY = 8,
	/** The range is mostly read (CUDA's SetReadMostly), for every
	 *  device; @p dev is not used.  Where the CPU cannot write it
	 *  (mprotect() it PROT_READ), device reads get a read-only copy in
	 *  device memory while the CPU keeps its pages: neither side faults
	 *  on reads.  Making it writable again (mprotect()) drops the
	 *  copies first, so no reader sees stale data; device writes need a
	 *  writable range, as always.  Writable memory behaves as without
	 *  the advice.  Needs a driver of ABI 8 or later. */
	HMM_ADVISE_SET_READ_MOSTLY = 9,
	/** Drop the copies; device reads migrate again. */
	HMM_ADVISE_UNSET_READ_MOSTLY = 10,
};

/** Values of HMM_ADVISE_ATOMIC_POLICY (Intel Xe's atomic-access policy). */
enum hmm_atomic_policy {
	/** No policy (the default). */
	HMM_ATOMIC_DEFAULT = 0,
	/** The device does atomics: system pages it maps remotely (remote
	 *  access, accessed-by, pinned or locked memory) are taken
	 *  device-exclusive while it uses them, and a CPU access takes
	 *  them back; data on the device is the device's own. */
	HMM_ATOMIC_DEVICE = 1,
	/** CPU and device atomics on one copy: device accesses never
	 *  migrate the data, they map it in system memory. */
	HMM_ATOMIC_GLOBAL = 2,
	/** Only the CPU does atomics: as the default. */
	HMM_ATOMIC_CPU = 3,
};

/**
 * Advises how [@p ptr, @p ptr + @p size) is used.  Advice is kept per
 * allocation (or registered range): it applies to every allocation the
 * range touches, in whole.  @p value is used by
 * HMM_ADVISE_FAULT_GRANULARITY and HMM_ADVISE_ATOMIC_POLICY only (0
 * otherwise); @p dev by the advice that names a device (0 otherwise is
 * fine: HMM_ADVISE_SET_READ_MOSTLY ignores it).
 *
 * @return 0; -EINVAL (bad advice or @p value, a non-zero @p value with
 *         another advice than HMM_ADVISE_FAULT_GRANULARITY or
 *         HMM_ADVISE_ATOMIC_POLICY, remote access or accessed-by by
 *         HMM_CPU, or range not managed); -ENODEV (no such device;
 *         unsetting remote access of a removed device is allowed).
 */
int hmm_advise(const void *ptr, size_t size, enum hmm_advice advice, int dev,
	       uint64_t value);

/** Attributes for hmm_range_get_attr(). */
enum hmm_attr {
	/** int: the preferred location (a device, HMM_CPU), or HMM_LOC_NONE
	 *  when none or when the allocations of the range differ. */
	HMM_ATTR_PREFERRED_LOCATION = 1,
	/** int[n]: the devices advised for remote access, then HMM_LOC_NONE
	 *  in the remaining slots; @p len = n * sizeof(int). */
	HMM_ATTR_REMOTE_ACCESS = 2,
	/** int: where the last hmm_prefetch() of the range sent it, or
	 *  HMM_LOC_NONE when never, or when parts of the range differ. */
	HMM_ATTR_LAST_PREFETCH_LOCATION = 3,
	/** uint64_t: the advised fault granularity in bytes, 0 when not
	 *  advised or when the allocations of the range differ. */
	HMM_ATTR_FAULT_GRANULARITY = 4,
	/** int[n]: the devices advised with HMM_ADVISE_SET_ACCESSED_BY,
	 *  then HMM_LOC_NONE in the remaining slots; @p len = n *
	 *  sizeof(int). */
	HMM_ATTR_ACCESSED_BY = 5,
	/** uint32_t: the enum hmm_atomic_policy advised, HMM_ATOMIC_DEFAULT
	 *  when none or when the allocations of the range differ. */
	HMM_ATTR_ATOMIC_POLICY = 6,
	/** int: 1 when every allocation of the range is advised with
	 *  HMM_ADVISE_SET_READ_MOSTLY, else 0. */
	HMM_ATTR_READ_MOSTLY = 7,
};

/**
 * Reads attribute @p attr of [@p ptr, @p ptr + @p size) into @p out
 * (@p len bytes).
 * @return 0; -EINVAL (bad attribute, length, or range not managed).
 */
int hmm_range_get_attr(const void *ptr, size_t size, enum hmm_attr attr,
		       void *out, size_t len);

/**
 * Reads @p count attributes of [@p ptr, @p ptr + @p size) at once
 * (cudaMemRangeGetAttributes): attribute @p attrs[i] into @p outs[i], of
 * @p lens[i] bytes, each as hmm_range_get_attr() would, all from one
 * reading of the advice.  Every attribute and length is checked before
 * anything is written.
 * @return 0; -EINVAL (NULL arrays, @p count 0, a bad attribute or
 *         length, or range not managed).
 */
int hmm_range_get_attrs(const void *ptr, size_t size,
			const enum hmm_attr *attrs, void *const *outs,
			const size_t *lens, size_t count);

/**
 * Where each page of [@p ptr, @p ptr + @p size) (rounded out to pages) is
 * now: @p loc[i] is a device number, HMM_CPU, or HMM_LOC_NONE (never
 * touched).  Works on any private anonymous memory, managed or not.
 *
 * @param loc     one entry per page
 * @param npages  entries in @p loc: at least the pages of the range
 * @return the number of pages written; -EINVAL (NULL, size 0, @p npages
 *         too small, unmapped range); -EFAULT.
 */
int hmm_residency(const void *ptr, size_t size, int8_t *loc, size_t npages);

/** Bits of hmm_page_info.flags, from the CPU page tables (hmm_snapshot()). */
enum hmm_page_flags {
	/** The CPU may read the page (a device page faults back first). */
	HMM_PAGE_READ = 1 << 0,
	/** ... and write it without a write fault (copy-on-write). */
	HMM_PAGE_WRITE = 1 << 1,
	/** A CPU page-table entry maps it, in system RAM. */
	HMM_PAGE_MAPPED = 1 << 2,
	/** The shared zero page (or huge zero page): read, never written. */
	HMM_PAGE_ZERO = 1 << 3,
	/** Mapped by a 2 MiB (PMD) entry: a huge page, or a 2 MiB device
	 *  page. */
	HMM_PAGE_HUGE_PMD = 1 << 4,
	/** Mapped by a 1 GiB (PUD) entry: a hugetlb page. */
	HMM_PAGE_HUGE_PUD = 1 << 5,
	/** Held by a device for its atomics (device-exclusive entry). */
	HMM_PAGE_EXCLUSIVE = 1 << 6,
	/** In swap. */
	HMM_PAGE_SWAP = 1 << 7,
};

/** One page as hmm_snapshot() reports it. */
struct hmm_page_info {
	/** Where the page is, as hmm_residency() says: a device number,
	 *  HMM_CPU, or HMM_LOC_NONE (no data). */
	int8_t loc;
	/** HMM_PAGE_* bits. */
	uint8_t flags;
};

/**
 * The richer hmm_residency() (hmm-tests' snapshot): where each page of
 * [@p ptr, @p ptr + @p size) (rounded out to pages) is and what the CPU
 * page tables say of it (HMM_PAGE_*), of any memory, managed or not,
 * faulting nothing in and moving nothing.  One call of the driver's
 * SNAPSHOT ioctl per 16 Mi pages.
 *
 * @param pages   one entry per page
 * @param npages  entries in @p pages: at least the pages of the range
 * @return the number of pages written; -EINVAL (NULL, size 0, @p npages
 *         too small); -ENODEV (no device); -EOPNOTSUPP (a driver older
 *         than ABI 7); -ENOMEM.
 */
int hmm_snapshot(const void *ptr, size_t size, struct hmm_page_info *pages,
		 size_t npages);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Copies and fills */
/** @{ */

/**
 * Copies @p size bytes from @p src to @p dst, between any memory:
 * managed, registered or plain, and returns when done.  A side that lies
 * in one allocation (or registered range) and is wholly on a device is
 * accessed by that device, through its view: its pages stay there, so a
 * copy between two ranges on one device, or from one to the host, moves
 * no page.  Any other side is accessed by the CPU: its pages on a device
 * come to system memory as the copy touches them (CPU faults).  Before
 * copying, the process's mappings are checked, so a bad pointer is an
 * error, not a crash.  hmm_memset() reaches its destination the same
 * way.
 *
 * @return 0 (also for @p size 0); -EINVAL (NULL, a wrapping range, or
 *         ranges that overlap); -EFAULT (part of @p src is not mapped
 *         readable, or part of @p dst not writable; nothing is copied).
 */
int hmm_memcpy(void *dst, const void *src, size_t size);

/**
 * hmm_memcpy() queued on @p s, in stream order.  Arguments and mappings
 * are checked now and again when it runs (memory unmapped in between is
 * the stream's -EFAULT).  @p s NULL: a synchronous hmm_memcpy().
 * @return the errors of hmm_memcpy(); -EINVAL or -ECHILD for the stream;
 *         -ENOMEM.
 */
int hmm_memcpy_async(void *dst, const void *src, size_t size,
		     struct hmm_stream *s);

/**
 * Sets @p size bytes at @p dst to (unsigned char)@p value, any memory, on
 * the CPU (device-resident pages come to system memory first).
 * @return 0 (also for @p size 0); -EINVAL (NULL, a wrapping range);
 *         -EFAULT (part of it is not mapped writable; nothing is set).
 */
int hmm_memset(void *dst, int value, size_t size);

/**
 * hmm_memset() queued on @p s, in stream order (checks as for
 * hmm_memcpy_async()).  @p s NULL: a synchronous hmm_memset().
 * @return the errors of hmm_memset(); -EINVAL or -ECHILD for the stream;
 *         -ENOMEM.
 */
int hmm_memset_async(void *dst, int value, size_t size, struct hmm_stream *s);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Launching kernels */
/** @{ */

/** A 1-3D extent or index. Unused dimensions are 1 (extent) or 0 (index). */
struct hmm_dim3 {
	uint32_t x, y, z;
};

/**
 * A kernel: called once per point @p idx of the grid, on the device's
 * execution threads, with the @p args given to hmm_launch().  It must
 * touch managed memory only through device pointers (hmm_devptr()).
 */
typedef void (*hmm_kernel_fn)(struct hmm_dim3 idx, struct hmm_dim3 grid,
			      void *args);

/**
 * Runs @p kernel over every point of @p grid on @p s's device, in stream
 * order: after the work queued on @p s before it, and before the work
 * queued after it.  The points are shared among the device's execution
 * threads (one per CPU); the launch completes when all have run.  @p args
 * is passed as is and must stay valid until then.  Each extent of @p grid
 * must be at least 1 (a 1D grid is {n, 1, 1}).
 *
 * A kernel that faults (SIGSEGV or SIGBUS on an execution thread: a stale
 * or unmapped device pointer, a write to read-only memory, a stack
 * overflow) does not end the process: the launch fails with -EFAULT, an
 * error of @p s like any other (returned once by hmm_stream_synchronize(),
 * seen by later callbacks as their status; later work still runs, the
 * stream and the device stay usable; unlike CUDA's illegal-address error
 * it is not sticky).  The points not started yet are skipped, those
 * running finish; HMM_LOG=error logs the signal, the address and the grid
 * point.  What the kernel held when it faulted (a lock, malloc()ed
 * memory) stays held.  The library installs SIGSEGV and SIGBUS handlers
 * for this at the first launch; faults anywhere else (the application's
 * threads, callbacks) go to the handlers installed before it, or kill the
 * process as they would without libhmm.  A handler the application
 * installs after its first launch replaces the library's: kernel faults
 * then reach it instead.
 *
 * A kernel given host pointers of managed memory instead of hmm_devptr()
 * addresses computes the right results, but every page of them that is
 * on the device comes home by a CPU fault.  Such faults are counted in
 * hmm_stats.launch_cpu_faults, and HMM_LOG=warn reports the first launch
 * of each kernel that took any, by symbol name.
 *
 * @return 0; -EINVAL (NULL or dead stream, NULL kernel, an extent of 0,
 *         more than 2^32 - 1 points in all); -ECHILD; -ENOMEM.
 */
int hmm_launch(struct hmm_stream *s, hmm_kernel_fn kernel,
	       struct hmm_dim3 grid, void *args);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Statistics */
/** @{ */

/** Causes of migrations (the driver's HMMGPU_CAUSE_*). */
enum hmm_cause {
	HMM_CAUSE_PREFETCH = 0,     /**< hmm_prefetch() and explicit moves */
	HMM_CAUSE_CPU_FAULT = 1,    /**< the CPU touched a device page */
	HMM_CAUSE_EVICTION = 2,     /**< device memory was needed elsewhere */
	HMM_CAUSE_PEER = 3,         /**< from another device */
	HMM_CAUSE_DEVICE_FAULT = 4, /**< the device touched a system page */
	HMM_CAUSE_REMOVAL = 5,      /**< the device went away */
	HMM_CAUSE_DENSITY = 6,      /**< density prefetch after a device fault */
	HMM_CAUSE_COUNT = 8,
};

/** Directions of migrations. */
enum hmm_dir {
	HMM_DIR_TO_DEVICE = 0, /**< host to device */
	HMM_DIR_TO_HOST = 1,   /**< device to host */
};

/** What hmm_get_stats() reports: this process on one device. */
struct hmm_stats {
	/** pages migrated, by [enum hmm_dir][enum hmm_cause] */
	uint64_t pages[2][HMM_CAUSE_COUNT];
	/** bytes migrated, by [enum hmm_dir][enum hmm_cause] */
	uint64_t bytes[2][HMM_CAUSE_COUNT];
	uint64_t cpu_faults;    /**< CPU faults on device pages */
	uint64_t device_faults; /**< device faults through views */
	uint64_t evictions;     /**< blocks evicted for this process */
	uint64_t copy_errors;   /**< pages whose copy failed (left in place) */
	/* the runtime's own counts */
	uint64_t prefetch_bytes; /**< bytes asked of hmm_prefetch*() */
	uint64_t prefetch_calls; /**< hmm_prefetch() runs, async ones too */
	uint64_t prefetch_ns;    /**< time spent in them */
	uint64_t launches;       /**< hmm_launch() runs completed */
	uint64_t launch_ns;      /**< time spent running them */
	/** CPU faults on device memory taken by kernels of launches on the
	 *  device: a kernel that uses host pointers instead of hmm_devptr()
	 *  brings the data home (see hmm_launch()) */
	uint64_t launch_cpu_faults;
	/** blocks the driver pinned in system memory because they bounced
	 *  between the CPU and the device (thrashing), and device faults it
	 *  then served by mapping them where they are */
	uint64_t thrash_pins;
	uint64_t thrash_remote;
	/** times the driver mapped moved data again for a device advised
	 *  with HMM_ADVISE_SET_ACCESSED_BY (0 on drivers before ABI 7) */
	uint64_t accessed_by_remaps;
	/** read-only copies the driver made in device memory for device
	 *  reads of HMM_ADVISE_SET_READ_MOSTLY data, and copies it dropped
	 *  (a write, munmap, eviction...); 0 on drivers before ABI 8 */
	uint64_t read_mostly_copies;
	uint64_t read_mostly_drops;
	uint64_t reserved[2];    /**< zero */
};

/**
 * Counters of this process for device @p dev: the driver's (migrations,
 * faults, evictions, since the library opened the device) and the
 * runtime's own.  With @p dev HMM_CPU: the runtime's counts of
 * prefetches to the CPU and launches on host streams, driver counters
 * zero (works without any device).
 * @return 0; -EINVAL (@p st NULL); -ENODEV.
 */
int hmm_get_stats(int dev, struct hmm_stats *st);

/** @} */

/**
 * A message for @p err, a negative errno returned by libhmm (a positive
 * errno is accepted too).  A code the C library does not know reads
 * "Unknown error N", N as given (sign included).  The string is static
 * or thread-local: valid until the next call in the same thread.
 */
const char *hmm_strerror(int err);

/**
 * Ends the library's use of threads and memory: waits for the work of
 * every stream of the process and destroys the streams and events still
 * alive (their handles are dead afterwards: -EINVAL), joins the
 * execution threads, and frees the library's tables.  Managed memory is
 * not touched: allocations stay valid until hmm_free().  The library
 * may be used again afterwards; it starts what it needs anew.
 *
 * Call it when the other threads of the process no longer use the
 * library (before dlclose(), or at the end of main() for a clean
 * valgrind report).  At exit() the library's destructor does the same if
 * that cannot block: when no stream has work queued and no call is made
 * from a library thread; otherwise the threads end with the process.
 *
 * @return 0; -EDEADLK when called from work running on a stream (nothing
 *         is done); -EBUSY when another thread started a launch meanwhile
 *         (the execution threads are left running).
 */
int hmm_shutdown(void);

#ifdef __cplusplus
}
#endif

#endif /* HMM_HMM_H */
