/* SPDX-License-Identifier: MIT */
/*
 * hmmgpu_drm.h - ioctl ABI of the hmmgpu virtual GPU.
 *
 * Shared by the kernel driver (kernel-driver/), the runtime (runtime/), the
 * tools and the tests.  Rules (Documentation/process/botching-up-ioctls.rst):
 *
 *  - only __u32/__u64 fields, pointers passed as __u64;
 *  - every struct is a multiple of 8 bytes with explicit padding;
 *  - every @flags, @pad and @extensions field marked "must be zero" is
 *    checked by the driver, which answers -EINVAL when it is not zero;
 *  - fields are documented (in) or (out); (out) fields are written by the
 *    driver whatever the caller put there;
 *  - ioctl numbers are dense and never reused.
 */
#ifndef _UAPI_HMMGPU_DRM_H_
#define _UAPI_HMMGPU_DRM_H_

#include "drm.h"

#if defined(__cplusplus)
extern "C" {
#endif

/**
 * HMMGPU_ABI_VERSION - version of this ABI reported by GET_INFO.
 *
 * Bumped when an ioctl or an output field is added; existing ioctls never
 * change layout.  4: &drm_hmmgpu_get_info.caps.  5: HMMGPU_ADVICE_PREFERRED.
 * 6: &drm_hmmgpu_stats.thrash_pins and .thrash_remote.  7: VIEW_REGISTER
 * of shared, file-backed and hugetlb memory; MIGRATE of private file
 * mappings; the SNAPSHOT ioctl; HMMGPU_ADVICE_ACCESSED_BY.
 * 8: HMMGPU_ADVICE_READ_MOSTLY, HMMGPU_SNAP_DUPLICATE,
 * &drm_hmmgpu_stats.dup_pages and .dup_drops.
 */
#define HMMGPU_ABI_VERSION 8

#define DRM_HMMGPU_GET_INFO 0x00
#define DRM_HMMGPU_MIGRATE 0x01
#define DRM_HMMGPU_RESIDENCY 0x02
#define DRM_HMMGPU_STATS 0x03
#define DRM_HMMGPU_VIEW_REGISTER 0x04
#define DRM_HMMGPU_VIEW_UNREGISTER 0x05
#define DRM_HMMGPU_VIEW_ADVISE 0x06
#define DRM_HMMGPU_SNAPSHOT 0x07

#define DRM_IOCTL_HMMGPU_GET_INFO \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_HMMGPU_GET_INFO, struct drm_hmmgpu_get_info)
#define DRM_IOCTL_HMMGPU_MIGRATE \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_HMMGPU_MIGRATE, struct drm_hmmgpu_migrate)
#define DRM_IOCTL_HMMGPU_RESIDENCY \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_HMMGPU_RESIDENCY, struct drm_hmmgpu_residency)
#define DRM_IOCTL_HMMGPU_STATS \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_HMMGPU_STATS, struct drm_hmmgpu_stats)
#define DRM_IOCTL_HMMGPU_VIEW_REGISTER \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_HMMGPU_VIEW_REGISTER, struct drm_hmmgpu_view_register)
#define DRM_IOCTL_HMMGPU_VIEW_UNREGISTER \
	DRM_IOW(DRM_COMMAND_BASE + DRM_HMMGPU_VIEW_UNREGISTER, struct drm_hmmgpu_view_unregister)
#define DRM_IOCTL_HMMGPU_VIEW_ADVISE \
	DRM_IOW(DRM_COMMAND_BASE + DRM_HMMGPU_VIEW_ADVISE, struct drm_hmmgpu_view_advise)
#define DRM_IOCTL_HMMGPU_SNAPSHOT \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_HMMGPU_SNAPSHOT, struct drm_hmmgpu_snapshot)

/*
 * Bits of &drm_hmmgpu_get_info.caps: what the driver can do on the running
 * kernel and CPU.  A driver of ABI version 3 or less has no caps field and
 * can do all of them.
 */
/*
 * HMMGPU_CAP_VIEW: VIEW_REGISTER works.  Without it (Linux 7.x on an x86
 * CPU with PCIDs but no INVPCID: no way for a module to flush the TLB,
 * which is the device's) VIEW_REGISTER fails with -EOPNOTSUPP.
 */
#define HMMGPU_CAP_VIEW (1ULL << 0)
/*
 * HMMGPU_CAP_DEVICE_THP: device memory comes in 2 MiB pages too (Linux
 * 6.19 and later, with the experimental device_thp module parameter on).  MIGRATE
 * moves each whole, 2 MiB-aligned 2 MiB of a VMA not marked
 * MADV_NOHUGEPAGE as one 2 MiB device page when the source is a huge page,
 * an untouched range or a 2 MiB page of another device, and a CPU access
 * to one brings all of it back to a huge page.  Counts and residency stay
 * per 4 KiB page.
 */
#define HMMGPU_CAP_DEVICE_THP (1ULL << 1)

/* Values of &drm_hmmgpu_get_info.copy_engine. */
#define HMMGPU_COPY_ENGINE_SOFTWARE 0 /* the device's own copy threads */
#define HMMGPU_COPY_ENGINE_DMAENGINE 1 /* a dmaengine DMA_MEMCPY channel */

/**
 * struct drm_hmmgpu_get_info - describe the device behind this file.
 *
 * Input fields must be zero; the driver fills every (out) field.
 */
struct drm_hmmgpu_get_info {
	/** @flags: (in) must be zero. */
	__u32 flags;
	/** @pad: (in) must be zero. */
	__u32 pad;
	/** @extensions: (in) must be zero; room for chained extensions. */
	__u64 extensions;

	/** @abi_version: (out) HMMGPU_ABI_VERSION of the running driver. */
	__u32 abi_version;
	/** @device_index: (out) index of this device among hmmgpu devices. */
	__u32 device_index;
	/** @page_size: (out) size in bytes of a device page. */
	__u64 page_size;
	/** @mem_total: (out) device memory in bytes. */
	__u64 mem_total;
	/** @mem_free: (out) device memory not holding any page, in bytes. */
	__u64 mem_free;
	/** @copy_engine: (out) HMMGPU_COPY_ENGINE_* in use. */
	__u32 copy_engine;
	/** @copy_channels: (out) number of copy-engine channels. */
	__u32 copy_channels;
	/** @caps: (out) HMMGPU_CAP_* bits (ABI version 4 and later). */
	__u64 caps;
	/** @reserved: (out) zero; room to grow without a new ioctl. */
	__u64 reserved[3];
};

/* Values of &drm_hmmgpu_migrate.target. */
#define HMMGPU_MIGRATE_TO_DEVICE 0 /* to the device behind the file */
#define HMMGPU_MIGRATE_TO_SYSTEM 1 /* to system RAM */

/**
 * struct drm_hmmgpu_migrate - migrate a range of the caller's memory.
 *
 * Best effort, like cudaMemPrefetchAsync: every page of
 * [@start, @start + @size) that can move does; pages that cannot (shared
 * mappings, hugetlb, pinned pages, PROT_NONE, pages whose copy failed,
 * and the page cache pages and holes of private file mappings, whose
 * copy-on-write pages do move) stay where they are, with their data, and
 * are counted in @skipped.  Memory locked with mlock() (mlock2(), mlockall(), MAP_LOCKED:
 * the VMA is VM_LOCKED) never goes to a device, since mlock() promises
 * that it stays in RAM and is accessed without a fault: to the device,
 * every page of a locked range counts in @skipped, and a device fault
 * through a view maps its system pages instead of migrating them.  After
 * munlock() it moves again.  To system, locked ranges move like others
 * (pages that mlock2(MLOCK_ONFAULT) left on a device come home).  To
 * the device, pages on another hmmgpu device move device to device.  To
 * system, pages on any hmmgpu device move; pages that are not on a device
 * (system pages, never-touched holes, shared mappings, file pages)
 * count as @already.  To the device, holes become zero-filled device
 * pages.  When the device is full, least recently used data of other
 * migrations is evicted to make room, never data this call moved: a
 * range larger than the free and evictable memory fills the device
 * (in address order, with migrate_workers=1) and counts the rest in
 * @skipped.
 *
 * Errors: -EINVAL for bad flags, pad, extensions, target, a zero size, an
 * unaligned @start or @size or a range that wraps; -EFAULT when part of
 * the range is not mapped at all; -ENODEV when the device was removed.
 * On error no page of the range was left half-migrated.
 */
struct drm_hmmgpu_migrate {
	/** @start: (in) page-aligned address in the caller's address space. */
	__u64 start;
	/** @size: (in) bytes, a non-zero multiple of the page size. */
	__u64 size;
	/** @target: (in) HMMGPU_MIGRATE_TO_DEVICE or _TO_SYSTEM. */
	__u32 target;
	/** @flags: (in) must be zero. */
	__u32 flags;
	/** @extensions: (in) must be zero. */
	__u64 extensions;
	/** @moved: (out) pages migrated by this call. */
	__u64 moved;
	/** @already: (out) pages that were at the target already. */
	__u64 already;
	/** @skipped: (out) pages that could not move and stayed put. */
	__u64 skipped;
	/** @pad: (in) must be zero. */
	__u64 pad;
};

/* Values written by DRM_IOCTL_HMMGPU_RESIDENCY, one byte per page. */
#define HMMGPU_RESIDENCY_NONE 0 /* no data: never touched (see below) */
#define HMMGPU_RESIDENCY_SYSTEM 1 /* in system RAM or swapped out */
#define HMMGPU_RESIDENCY_THIS_DEVICE 2 /* on the device behind the file */
#define HMMGPU_RESIDENCY_OTHER_DEVICE 3 /* on another device */

/**
 * struct drm_hmmgpu_residency - where each page of a range is.
 *
 * Writes @npages bytes at @locations, one HMMGPU_RESIDENCY_* per page of
 * [@start, @start + @npages pages), and sums them in @count.  Nothing is
 * faulted in or migrated.  Where a page is does not depend on the
 * protection of its mapping: pages of a PROT_NONE range are reported
 * where they are, like any other.  A swapped-out page is in system
 * memory's backing store and reads as SYSTEM (an access brings it back
 * without a device).  A page in the middle of a migration reads where its
 * data is until the migration completes.  A page on a device of another
 * driver reads as OTHER_DEVICE.  NONE means that the page holds no data:
 * never touched, unmapped holes, PFN mappings (VM_IO, VM_PFNMAP, views),
 * pages that no longer exist (hardware-poisoned, MADV_GUARD markers), and
 * PROT_NONE hugetlb pages, whose page tables are not read.
 *
 * Errors: -EINVAL for bad flags or pad, an unaligned @start, @npages zero
 * or above 1 << 24, or a wrapping range; -EFAULT when @locations is not
 * writable.
 */
struct drm_hmmgpu_residency {
	/** @start: (in) page-aligned address in the caller's address space. */
	__u64 start;
	/** @npages: (in) number of pages, 1 to 1 << 24. */
	__u64 npages;
	/** @locations: (in) user pointer to @npages bytes. */
	__u64 locations;
	/** @flags: (in) must be zero. */
	__u32 flags;
	/** @pad: (in) must be zero. */
	__u32 pad;
	/** @count: (out) pages per HMMGPU_RESIDENCY_* value. */
	__u64 count[4];
};

/*
 * The u32 word DRM_IOCTL_HMMGPU_SNAPSHOT writes per page: where the page
 * is (bits 0-7), which hmmgpu device holds it (bits 8-15) and what the
 * CPU page tables say of it (bits 16 and up).
 */
#define HMMGPU_SNAP_WHERE_MASK 0xffu /* HMMGPU_RESIDENCY_* */
#define HMMGPU_SNAP_DEVICE_SHIFT 8
#define HMMGPU_SNAP_DEVICE_MASK (0xffu << HMMGPU_SNAP_DEVICE_SHIFT)
/* device field of a page on no hmmgpu device (system, another driver) */
#define HMMGPU_SNAP_NO_DEVICE HMMGPU_SNAP_DEVICE_MASK
/* the CPU may read the page through its mapping (a device page faults back) */
#define HMMGPU_SNAP_READ (1u << 16)
/* ... and write it without a write fault (copy-on-write, write-notify) */
#define HMMGPU_SNAP_WRITE (1u << 17)
/* a present CPU page-table entry maps it: a system page in RAM */
#define HMMGPU_SNAP_MAPPED (1u << 18)
/* the shared zero page (or huge zero page): read, never written */
#define HMMGPU_SNAP_ZERO (1u << 19)
/* mapped by a PMD-level entry (a transparent or hugetlb huge page, or a
 * 2 MiB device page) */
#define HMMGPU_SNAP_PMD (1u << 20)
/* mapped by a PUD-level entry (a 1 GiB hugetlb page) */
#define HMMGPU_SNAP_PUD (1u << 21)
/* held by a device for its atomics (make_device_exclusive()): a CPU
 * access takes it back first */
#define HMMGPU_SNAP_EXCLUSIVE (1u << 22)
/* in swap: system memory's backing store */
#define HMMGPU_SNAP_SWAP (1u << 23)
/* (ABI 8) a read-only copy of this system page is in the memory of the
 * caller's device (HMMGPU_ADVICE_READ_MOSTLY); the CPU keeps the page */
#define HMMGPU_SNAP_DUPLICATE (1u << 24)

/**
 * struct drm_hmmgpu_snapshot - what the page tables say of each page.
 *
 * The richer RESIDENCY (ABI 7; hmm-tests' HMM_DMIRROR_SNAPSHOT): writes
 * @npages u32 words at @pages, one per page of [@start, @start + @npages
 * pages), each an HMMGPU_RESIDENCY_* location (the same RESIDENCY
 * reports) with the HMMGPU_SNAP_* bits, and sums the locations in
 * @count.  Nothing is faulted in or migrated.  A page that holds no data
 * reads NONE with no bits; a system page in RAM is MAPPED, READ where
 * its VMA is readable (not PROT_NONE), WRITE where its entry is writable;
 * a device page is READ (and WRITE) as its CPU entry would be once back;
 * a swapped-out page is SWAP.  The device field is the device index (of
 * GET_INFO) of the hmmgpu device a device page is on, else
 * HMMGPU_SNAP_NO_DEVICE.
 *
 * Errors: -EINVAL for bad flags, pad or extensions, an unaligned @start,
 * @npages zero or above 1 << 24, or a wrapping range; -EFAULT when
 * @pages is not writable; -ENODEV after removal.
 */
struct drm_hmmgpu_snapshot {
	/** @start: (in) page-aligned address in the caller's address space. */
	__u64 start;
	/** @npages: (in) number of pages, 1 to 1 << 24. */
	__u64 npages;
	/** @pages: (in) user pointer to @npages __u32 words. */
	__u64 pages;
	/** @flags: (in) must be zero. */
	__u32 flags;
	/** @pad: (in) must be zero. */
	__u32 pad;
	/** @extensions: (in) must be zero. */
	__u64 extensions;
	/** @count: (out) pages per HMMGPU_RESIDENCY_* value. */
	__u64 count[4];
};

/* Why pages moved: index of the per-cause counters of struct drm_hmmgpu_stats. */
#define HMMGPU_CAUSE_EXPLICIT 0 /* MIGRATE ioctl (prefetch) */
#define HMMGPU_CAUSE_CPU_FAULT 1 /* CPU touched a device page */
#define HMMGPU_CAUSE_EVICTION 2 /* device memory was full */
#define HMMGPU_CAUSE_PEER 3 /* moved from another hmmgpu device */
#define HMMGPU_CAUSE_DEVICE_FAULT 4 /* the device touched a system page */
#define HMMGPU_CAUSE_REMOVAL 5 /* the device went away */
#define HMMGPU_CAUSE_PREFETCH 6 /* density prefetch after a device fault */
#define HMMGPU_CAUSE_COUNT 8

/* Directions: first index of the migration counters. */
#define HMMGPU_DIR_TO_DEVICE 0
#define HMMGPU_DIR_TO_SYSTEM 1

#define HMMGPU_LATENCY_BUCKETS 24 /* log2 microseconds: [2^i, 2^(i+1)) */

/* Values of &drm_hmmgpu_stats.scope. */
#define HMMGPU_STATS_FILE 0 /* what this open file caused */
#define HMMGPU_STATS_DEVICE 1 /* the whole device since it was created */

/**
 * struct drm_hmmgpu_stats - counters of a device or of an open file.
 *
 * Bytes are pages times &drm_hmmgpu_get_info.page_size, given for
 * convenience.  A migration batch is one migrate_vma (or eviction) step.
 *
 * Errors: -EINVAL for a bad @scope, flags or pad.
 */
struct drm_hmmgpu_stats {
	/** @scope: (in) HMMGPU_STATS_FILE or HMMGPU_STATS_DEVICE. */
	__u32 scope;
	/** @flags: (in) must be zero. */
	__u32 flags;
	/** @extensions: (in) must be zero. */
	__u64 extensions;

	/** @pages: (out) pages migrated, [direction][cause]. */
	__u64 pages[2][HMMGPU_CAUSE_COUNT];
	/** @bytes: (out) bytes migrated, [direction][cause]. */
	__u64 bytes[2][HMMGPU_CAUSE_COUNT];
	/** @cpu_faults: (out) CPU faults on device pages handled. */
	__u64 cpu_faults;
	/** @device_faults: (out) device faults handled. */
	__u64 device_faults;
	/** @evictions: (out) eviction passes (each moves one or more pages). */
	__u64 evictions;
	/** @batches: (out) migration batches submitted to the copy engine. */
	__u64 batches;
	/** @copy_errors: (out) pages whose copy failed (left in place). */
	__u64 copy_errors;
	/** @copy_busy_ns: (out) time the copy engine spent on batches. */
	__u64 copy_busy_ns;
	/** @migrate_latency: (out) batches by duration, log2 microseconds. */
	__u64 migrate_latency[HMMGPU_LATENCY_BUCKETS];
	/** @fault_latency: (out) CPU faults by duration, log2 microseconds. */
	__u64 fault_latency[HMMGPU_LATENCY_BUCKETS];
	/**
	 * @thrash_pins: (out) blocks pinned in system memory for bouncing
	 * between CPU and device (ABI 6; the thrash_* module parameters).
	 */
	__u64 thrash_pins;
	/** @thrash_remote: (out) device faults mapped remotely for a pin. */
	__u64 thrash_remote;
	/**
	 * @remaps: (out) times pages were entered again in a view with
	 * HMMGPU_ADVICE_ACCESSED_BY after a migration moved them (ABI 7).
	 */
	__u64 remaps;
	/**
	 * @dup_pages: (out) read-only device copies of system pages made
	 * for device reads under HMMGPU_ADVICE_READ_MOSTLY (ABI 8).
	 */
	__u64 dup_pages;
	/**
	 * @dup_drops: (out) such copies dropped: the CPU page changed or
	 * may be written (mprotect, munmap, migration, ...), eviction, the
	 * end of the advice or of the view (ABI 8).
	 */
	__u64 dup_drops;
	/** @reserved: (out) zero. */
	__u64 reserved[3];
};

/* Views one file may hold at once (VIEW_REGISTER's -ENOSPC). */
#define HMMGPU_VIEWS_PER_FILE 65535

/**
 * struct drm_hmmgpu_view_register - create a device view of a CPU range.
 *
 * The range must be mapped, readable memory of the caller with pages:
 * private anonymous memory, private file mappings, MAP_SHARED anonymous
 * or file memory, hugetlbfs (ABI 7; before, private anonymous only).
 * Pages that cannot move to device memory (shared, file and hugetlb
 * pages) are mapped remotely, as with HMMGPU_ADVICE_REMOTE; a device
 * write to a file page dirties it like a CPU write (written back,
 * seen by read() at once and by the file after msync()/writeback).
 * mmap() of the render node with MAP_SHARED at @offset, for at most @size
 * bytes, maps the *view*: view address V + off is the device's address of
 * CPU address @start + off.  Device work touches memory only through
 * views; a view access to a page that is not on the device is a device
 * fault that migrates an aligned block to the device (or, with
 * HMMGPU_ADVICE_REMOTE, maps the system page).  Only the registering
 * process may mmap a view; views are not inherited across fork and
 * cannot be grown by mremap.
 *
 * Handles and offsets belong to the file the view was registered on: a
 * file holds at most HMMGPU_VIEWS_PER_FILE views at once, and another
 * file (of this process or another) has its own.  The view's memory is
 * charged to the caller's memory cgroup.
 *
 * Errors: -EINVAL for bad flags or extensions, an unaligned or wrapping
 * range, a range of 1 TiB or more, or one that is not readable memory
 * with pages (part of it unmapped, PROT_NONE or write-only, a PFN map
 * such as device memory or another view); -ENOSPC when this
 * file holds HMMGPU_VIEWS_PER_FILE views already; -ENOMEM; -EOPNOTSUPP
 * where the device has no view (see HMMGPU_CAP_VIEW); -ENODEV after
 * removal.
 */
struct drm_hmmgpu_view_register {
	/** @start: (in) page-aligned CPU address. */
	__u64 start;
	/** @size: (in) bytes, a non-zero multiple of the page size. */
	__u64 size;
	/** @flags: (in) must be zero. */
	__u32 flags;
	/** @handle: (out) view handle, non-zero. */
	__u32 handle;
	/** @offset: (out) mmap offset of the view, on this file only. */
	__u64 offset;
	/** @extensions: (in) must be zero. */
	__u64 extensions;
};

/**
 * struct drm_hmmgpu_view_unregister - destroy a view.
 *
 * Its mappings are zapped at once; a later access to them gets SIGBUS.
 * Errors: -EINVAL for a non-zero @pad; -ENOENT for a handle this file
 * does not own.
 */
struct drm_hmmgpu_view_unregister {
	/** @handle: (in) the view. */
	__u32 handle;
	/** @pad: (in) must be zero. */
	__u32 pad;
};

/* Values of &drm_hmmgpu_view_advise.advice. */
#define HMMGPU_ADVICE_GRANULARITY 1 /* @value: bytes a device fault moves */
#define HMMGPU_ADVICE_REMOTE 2 /* @value 1: map system pages, do not migrate */
#define HMMGPU_ADVICE_PREFERRED 3 /* @value 1: the range belongs on this device */
#define HMMGPU_ADVICE_ACCESSED_BY 4 /* @value 1: keep it mapped wherever it is */
#define HMMGPU_ADVICE_ATOMIC 5 /* @value: HMMGPU_ATOMIC_* */
#define HMMGPU_ADVICE_READ_MOSTLY 6 /* @value 1: device reads get a copy */

/* Values of HMMGPU_ADVICE_ATOMIC (Xe's DRM_XE_ATOMIC_* names). */
#define HMMGPU_ATOMIC_DEFAULT 0 /* no policy: device faults as advised */
#define HMMGPU_ATOMIC_DEVICE 1 /* device atomics: take system pages exclusive */
#define HMMGPU_ATOMIC_GLOBAL 2 /* CPU and device atomics: one copy, in RAM */
#define HMMGPU_ATOMIC_CPU 3 /* CPU atomics only: as the default */

/**
 * struct drm_hmmgpu_view_advise - tune how device faults on a view behave.
 *
 * HMMGPU_ADVICE_GRANULARITY: @value is a power of two from the page size
 * to 2 MiB; a device fault migrates the aligned block of that size around
 * the faulting address (default: the view_fault_kib module parameter).
 * HMMGPU_ADVICE_REMOTE: @value 1 makes device faults map the system page
 * itself (zero-copy, like a GPU reading host memory), @value 0 restores
 * migration.  Existing view mappings are zapped so the advice applies to
 * every later access.
 * HMMGPU_ADVICE_PREFERRED: @value 1 makes this device the preferred
 * location of the view's CPU range (CUDA's SetPreferredLocation), @value
 * 0 forgets it.  Its pages on the device, however they came (device
 * faults, MIGRATE of this file, device to device), are evicted only to
 * make room for other preferred data, after every other block; data
 * without the advice does not push them out.  A CPU fault on one brings
 * back that page alone instead of the fault_kib block.  How device
 * faults map the range (HMMGPU_ADVICE_REMOTE) and explicit migrations
 * elsewhere are not affected.  The advice ends with the view.
 * HMMGPU_ADVICE_ACCESSED_BY (ABI 7): @value 1 is CUDA's SetAccessedBy:
 * the device maps the data wherever it is and keeps it mapped, so its
 * accesses do not fault for it, and the advice moves nothing.  Every page
 * of the range that has data is entered in the view's mapping (map the
 * view first) when the advice is given, device faults map pages where
 * they are instead of migrating them, and pages that the driver migrates
 * (MIGRATE either way, CPU fault-back, eviction) are entered again at
 * their new place right after.  @value 0 ends it; the entries are
 * cleared and device faults migrate again (unless HMMGPU_ADVICE_REMOTE).
 * HMMGPU_ADVICE_ATOMIC (ABI 7): the atomic-access policy of the range.
 * HMMGPU_ATOMIC_DEVICE: where the view maps a system page of private
 * anonymous writable memory remotely (HMMGPU_ADVICE_REMOTE, accessed-by,
 * a thrashing pin, mlock()), a device fault takes the page
 * device-exclusive (make_device_exclusive(), as a GPU without
 * system-scope atomics does): a CPU access then faults, takes it back
 * and clears the view's entry, and the next device access takes it
 * again; SNAPSHOT shows HMMGPU_SNAP_EXCLUSIVE meanwhile.  Pages that
 * migrate are in device memory, the device's own.
 * HMMGPU_ATOMIC_GLOBAL: device faults never migrate (the data stays in
 * system memory, where CPU and device atomics meet on one copy) and
 * take nothing exclusive.  HMMGPU_ATOMIC_CPU and _DEFAULT: no change.
 * Existing entries are cleared so that the policy applies to every
 * later access.
 * HMMGPU_ADVICE_READ_MOSTLY (ABI 8): @value 1 is CUDA's SetReadMostly.
 * A device read of a private anonymous page whose CPU mapping is not
 * writable (no PROT_WRITE: mprotect(PROT_READ) the data) makes a
 * read-only copy of the page in device memory and maps it in the view;
 * the CPU keeps its page mapped, so neither side faults on reads.
 * Anything that could change the CPU page (mprotect() to writable,
 * munmap, migration, fork, reclaim) drops the copies of the range
 * first, so no reader sees stale data.  Device writes need a writable
 * CPU mapping (else SIGBUS, as without the advice): they only happen
 * after the copies were dropped.  Device reads of other pages (in
 * writable or shared mappings, file pages, the zero page, pages pinned
 * by DMA) behave as without the advice.  SNAPSHOT shows
 * HMMGPU_SNAP_DUPLICATE on the copied pages.  @value 0 drops every
 * copy.  The advice ends with the view.
 *
 * Errors: -EINVAL for bad advice or value; -ENOENT for a handle this
 * file does not own.
 */
struct drm_hmmgpu_view_advise {
	/** @handle: (in) the view. */
	__u32 handle;
	/** @advice: (in) HMMGPU_ADVICE_*. */
	__u32 advice;
	/** @value: (in) depends on @advice. */
	__u64 value;
};

#if defined(__cplusplus)
}
#endif

#endif /* _UAPI_HMMGPU_DRM_H_ */
