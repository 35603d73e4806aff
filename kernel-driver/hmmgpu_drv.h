/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hmmgpu_drv.h - private declarations shared by the hmmgpu driver files.
 */
#ifndef HMMGPU_DRV_H
#define HMMGPU_DRV_H

#include <linux/interval_tree.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mmu_notifier.h>
#include <linux/xarray.h>
#include <linux/memremap.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/platform_device.h>
#include <linux/spinlock.h>
#include <linux/types.h>

#include <drm/drm_device.h>

#include "hmmgpu_compat.h"
#include "hmmgpu_drm.h"

#define HMMGPU_DRIVER_NAME "hmmgpu"
#define HMMGPU_DRIVER_DESC "hmm virtual GPU with device-private memory"
/* DRM_IOCTL_VERSION's date, on kernels that still report one */
#define HMMGPU_DRIVER_DATE "20261204"
#define HMMGPU_DRIVER_MAJOR 0
#define HMMGPU_DRIVER_MINOR 2

/* Device memory is handed out and evicted in blocks of this many pages. */
#define HMMGPU_BLOCK_PAGES (SZ_2M >> PAGE_SHIFT)
/* Pages in one migration batch (one migrate_vma_setup, one fence). */
#define HMMGPU_BATCH_PAGES HMMGPU_BLOCK_PAGES

struct hmmgpu_copy_engine;
struct hmmgpu_device;

/* Module parameters, read-only after load (hmmgpu_drv.c). */
extern unsigned int hmmgpu_fault_kib;
extern unsigned int hmmgpu_view_fault_kib;
extern unsigned int hmmgpu_prefetch_pct;
extern unsigned int hmmgpu_migrate_workers;
extern struct workqueue_struct *hmmgpu_migrate_wq;
bool hmmgpu_device_thp(void);

/**
 * struct hmmgpu_counters - what a device or an open file counts.
 *
 * Plain atomics: every field is updated without a lock and read one by
 * one, so a STATS reply is not a snapshot across fields.
 */
struct hmmgpu_counters {
	atomic64_t pages[2][HMMGPU_CAUSE_COUNT];
	atomic64_t cpu_faults;
	atomic64_t device_faults;
	atomic64_t evictions;
	atomic64_t batches;
	atomic64_t copy_errors;
	atomic64_t copy_busy_ns;
	atomic64_t thrash_pins;
	atomic64_t thrash_remote;
	atomic64_t remaps;
	atomic64_t dup_pages;
	atomic64_t dup_drops;
	atomic64_t migrate_latency[HMMGPU_LATENCY_BUCKETS];
	atomic64_t fault_latency[HMMGPU_LATENCY_BUCKETS];
};

/**
 * struct hmmgpu_dpage - driver state of one device page.
 * @backing: the system page that stores this device page's data (the
 *	     simulated VRAM), reserved at probe.
 * @next_free: next free page of the same block while this one is free.
 * @addr: CPU address the page was migrated to the device for, and
 * @tgid: the process whose address it is; set when the page becomes a
 *	  migration's destination, read by the hmmgpu_evicted tracepoint
 *	  (stale after an mremap() of the range, shared after a fork()).
 * @client: &hmmgpu_file.client_id of the file whose migration took it
 *	    (fdinfo's drm-resident-vram); set with @tgid.
 * @preferred: the page is of a range whose preferred location is this
 *	       device (HMMGPU_ADVICE_PREFERRED); protected by
 *	       &hmmgpu_dmem.lock, cleared when the page is freed.
 * @dup_view: the view whose read-only copy of CPU page @addr this page
 *	      is (DOC: Read-mostly), or NULL; protected by
 *	      &hmmgpu_dmem.lock, set and cleared under the view's lock too.
 */
struct hmmgpu_dpage {
	struct page *backing;
	struct hmmgpu_dpage *next_free;
	unsigned long addr;
	pid_t tgid;
	bool preferred;
	u64 client;
	struct hmmgpu_view *dup_view;
};

/**
 * struct hmmgpu_block - HMMGPU_BLOCK_PAGES contiguous device pages.
 * @first: index of the block's first page in &hmmgpu_dmem.dpages.
 * @nr_free: free pages in the block.
 * @free: stack of the free pages, linked through @next_free.
 * @avail: entry in &hmmgpu_dmem.avail while @nr_free > 0.
 * @lru: entry in &hmmgpu_dmem.lru while some page is in use.
 */
struct hmmgpu_block {
	unsigned int first;
	unsigned int nr_free;
	struct hmmgpu_dpage *free;
	struct list_head avail;
	struct list_head lru;
	u64 epoch;	/* the migration that last took pages of it */
	unsigned int nr_preferred;	/* its pages with @preferred */
};

/**
 * struct hmmgpu_dmem - the device memory of one device.
 * @hdev: the device.
 * @pgmap: the MEMORY_DEVICE_PRIVATE pagemap of all of it.
 * @res: the physical address range the pagemap's struct pages stand for.
 * @pfn_first: pfn of the first device page.
 * @npages: number of device pages.
 * @dpages: per-page state, @npages entries.
 * @blocks: @npages / HMMGPU_BLOCK_PAGES blocks.
 * @nblocks: number of blocks.
 * @lock: protects @avail, @lru, @nr_free, @dying and every block's
 *	  @nr_free, @free, @avail and @lru.
 * @avail: blocks with free pages; allocation takes from the first.
 * @lru: blocks with pages in use, least recently used first.
 * @nr_free: free device pages.
 * @dying: set at removal: allocation fails from then on.
 * @evict_lock: serializes eviction passes of this device.
 * @in_bar: the backing store is in a PCI memory BAR (PCI personality),
 *	    not in system RAM.
 * @bar: with @in_bar, the range of the BAR that holds it.
 * @bar_pgmap: with @bar, the MEMORY_DEVICE_GENERIC pagemap over the used
 *	       part of it: struct pages and a kernel mapping for the BAR, so
 *	       that its pages are backing pages like RAM ones (DOC: PCI
 *	       personality in hmmgpu_pci.c).
 */
struct hmmgpu_dmem {
	struct hmmgpu_device *hdev;
	struct dev_pagemap pgmap;
	struct resource *res;
	unsigned long pfn_first;
	unsigned long npages;
	struct hmmgpu_dpage *dpages;
	struct hmmgpu_block *blocks;
	unsigned int nblocks;

	spinlock_t lock;
	struct list_head avail;	/* protected by @lock */
	struct list_head lru;	/* protected by @lock */
	unsigned long nr_free;	/* protected by @lock */
	bool dying;		/* protected by @lock */

	struct mutex evict_lock;

	bool in_bar;
	struct range bar;
	struct dev_pagemap bar_pgmap;
};

/**
 * struct hmmgpu_device - one virtual GPU.
 * @drm: the DRM device; its lifetime is the lifetime of this structure.
 * @index: index among hmmgpu devices (hmmgpu_index_get()); for a platform
 *	   device also its id.
 * @dmem: the device memory; torn down at removal, before @drm goes.
 * @copy: the copy engine; NULL once the device is removed.
 * @stats: counters of the whole device.
 * @files_lock: protects @files.
 * @files: open files (&hmmgpu_file.node), to charge CPU faults to the
 *	   file of the faulting process.
 */
struct hmmgpu_device {
	struct drm_device drm;
	unsigned int index;
	struct hmmgpu_dmem dmem;
	struct hmmgpu_copy_engine *copy;
	struct hmmgpu_counters stats;

	spinlock_t files_lock;
	struct list_head files;	/* protected by @files_lock */
};

/**
 * struct hmmgpu_file - per-open context of a render or primary node.
 * @hdev: the device this file was opened on.
 * @mm: the opening process's address space (a reference from mmgrab()).
 * @node: entry in &hmmgpu_device.files.
 * @stats: what this file caused.
 * @views_lock: protects @views.
 * @views: views registered through this file (&hmmgpu_view.node).
 * @handles: the same views by handle (at most HMMGPU_VIEW_MAX_HANDLE);
 *	     a view's mmap offset on this file is its handle shifted by
 *	     HMMGPU_VIEW_OFFSET_SHIFT.  Its own lock: mmap() looks views up
 *	     in it under the mmap_lock, which @views_lock nests outside.
 */
struct hmmgpu_file {
	struct hmmgpu_device *hdev;
	struct mm_struct *mm;
	u64 client_id;		/* fdinfo's drm-client-id, unique */
	struct list_head node;
	struct hmmgpu_counters stats;

	struct mutex views_lock;
	struct list_head views;	/* protected by @views_lock */
	struct xarray handles;
	/*
	 * The CPU ranges of this file's views whose preferred location is
	 * the device (&hmmgpu_view.pref_node), for migrations that must
	 * know without the views' locks (hmmgpu_file_preferred()).
	 */
	spinlock_t pref_lock;
	struct rb_root_cached pref_tree;	/* protected by @pref_lock */
	/* per 64 KiB block, &struct hmmgpu_thrash (DOC: Thrashing) */
	struct xarray thrash;
};

/*
 * Times RESIDENCY reads a range again when it changed meanwhile
 * (hmm_range_fault()'s -EBUSY, a notifier sequence that moved on) before
 * it reads the page tables instead.  Its retries, and the fault paths'
 * (which do not give up: the access needs the page), also stop at a
 * fatal signal and give the CPU away.
 */
#define HMMGPU_RETRIES 16

/*
 * View handles are per file, from 1 to HMMGPU_VIEW_MAX_HANDLE (the uapi's
 * limit of views per file); offsets are handle << 40: 1 TiB per view.
 */
#define HMMGPU_VIEW_OFFSET_SHIFT 40
/* Device-fault migration locks per view, one per 2 MiB region (hashed). */
#define HMMGPU_VIEW_FAULT_LOCKS 8
#define HMMGPU_VIEW_MAX_SIZE (1ULL << HMMGPU_VIEW_OFFSET_SHIFT)
#define HMMGPU_VIEW_MAX_HANDLE HMMGPU_VIEWS_PER_FILE

/**
 * struct hmmgpu_view - a device view of a CPU range (hmmgpu_view.c).
 * @ref: one reference for the registration, one per VMA mapping it.
 * @hfile: the file it was registered through.
 * @mm: the registering address space; only it may map the view.
 * @handle: the handle userspace names it by.
 * @start: first CPU address.
 * @end: end of the CPU range.
 * @offset: mmap offset, in bytes, of view address 0.
 * @notifier: interval notifier over [@start, @end) of @mm.
 * @map_notifier: interval notifier over the view mapping, while there is
 *		  one: tells when its page tables are about to go.
 * @map_vma: the VMA of the mapping, or NULL; written under @mm's mmap_lock
 *	     and @lock, read under either; outside the mmap lock only
 *	     compared, never dereferenced.
 * @lock: orders entry insertion against invalidation (the notifier's
 *	  sequence); protects the fields below.
 * @granularity: bytes a device fault migrates.
 * @remote: map system pages instead of migrating.
 * @accessed_by: HMMGPU_ADVICE_ACCESSED_BY: mapped wherever the data is,
 *		 kept mapped after migrations (DOC: Accessed-by).
 * @atomic: HMMGPU_ADVICE_ATOMIC's policy (DOC: Device atomics).
 * @read_mostly: HMMGPU_ADVICE_READ_MOSTLY (DOC: Read-mostly).
 * @dups: the read-only device copies of CPU pages (DOC: Read-mostly),
 *	  device pages indexed by (CPU address - @start) >> PAGE_SHIFT;
 *	  changed under @lock only.
 * @ab_node: entry in the list of accessed-by views, while @accessed_by.
 * @remap_work: re-enters pages of [@remap_start, @remap_end) after a
 *		migration moved them; holds a reference while queued.
 * @dead: unregistered: faults get SIGBUS.
 * @mapped: the mapping's page tables may hold entries and are alive.
 * @map_start: start of the mapping, valid while @mapped.
 * @map_end: end of the mapping, valid while @mapped.
 * @map_base: view address of CPU address @start, valid while @mapped.
 * @node: entry in &hmmgpu_file.views.
 */
struct hmmgpu_view {
	struct kref ref;
	struct hmmgpu_file *hfile;
	struct mm_struct *mm;
	pid_t tgid;	/* of @mm's process, which registered the view */
	u32 handle;
	unsigned long start;
	unsigned long end;
	u64 offset;
	struct mmu_interval_notifier notifier;
	struct mmu_interval_notifier map_notifier;
	struct vm_area_struct *map_vma;

	/*
	 * Serialise the migrations of device faults in one 2 MiB region,
	 * hashed by region (see DOC: View locking).
	 */
	struct mutex fault_lock[HMMGPU_VIEW_FAULT_LOCKS];

	struct mutex lock;
	unsigned long granularity;	/* protected by @lock */
	bool remote;			/* protected by @lock */
	bool preferred;			/* protected by @lock */
	bool accessed_by;		/* protected by @lock */
	u32 atomic;			/* HMMGPU_ATOMIC_*, protected by @lock */
	bool read_mostly;		/* protected by @lock */
	struct xarray dups;		/* changed under @lock */
	struct list_head ab_node;	/* protected by hmmgpu_ab_lock */
	struct work_struct remap_work;
	unsigned long remap_start;	/* protected by hmmgpu_ab_lock */
	unsigned long remap_end;	/* protected by hmmgpu_ab_lock */
	/* in &hmmgpu_file.pref_tree while @preferred; [start, end - 1] */
	struct interval_tree_node pref_node;
	bool dead;			/* protected by @lock */
	bool mapped;			/* protected by @lock */
	unsigned long map_start;	/* protected by @lock */
	unsigned long map_end;		/* protected by @lock */
	unsigned long map_base;		/* protected by @lock */
	/*
	 * Density prefetch's count of the last region a device fault
	 * migrated in (region_density()): the region's start (0: none), its
	 * pages on the device, and @inval_gen when they were counted.
	 * @inval_gen grows with every invalidation of the range but the
	 * view's own fetches to the device.
	 */
	unsigned long dens_region;	/* protected by @lock */
	unsigned long dens_resident;	/* protected by @lock */
	unsigned long dens_gen;		/* protected by @lock */
	unsigned long inval_gen;	/* protected by @lock */
	struct list_head node;
};

static inline struct hmmgpu_device *to_hmmgpu(struct drm_device *drm)
{
	return container_of(drm, struct hmmgpu_device, drm);
}

/* hmmgpu_dmem.c */
extern const struct dev_pagemap_ops hmmgpu_devmem_ops;
/* The pgmap owner of every hmmgpu device (device-to-device migration). */
extern int hmmgpu_owner;
extern int hmmgpu_fill_owner;

int hmmgpu_dmem_init(struct hmmgpu_device *hdev, u64 size,
		     const struct range *bar);
void hmmgpu_dmem_fini(struct hmmgpu_device *hdev);
struct page *hmmgpu_dmem_alloc_folio(struct hmmgpu_dmem *dmem, u64 epoch);
unsigned long hmmgpu_dmem_alloc(struct hmmgpu_dmem *dmem, struct page **pages,
				unsigned long n, u64 epoch);

/**
 * struct hmmgpu_evict_for - the migration that takes device pages, evicting.
 * @epoch: its epoch: blocks it took pages of, or found its pages in, stay.
 * @tgid: its process; 0 when it has no range (read-mostly copies).
 * @start: start of its whole range (all its batches and units).
 * @end: end of that range: blocks holding a page that came from
 *	 [@start, @end) stay too, since the migration may be about to find
 *	 it there (a block it has not reached yet).
 * @preferred: the room is for preferred data (HMMGPU_ADVICE_PREFERRED).
 */
struct hmmgpu_evict_for {
	u64 epoch;
	pid_t tgid;
	unsigned long start;
	unsigned long end;
	bool preferred;
};

unsigned long hmmgpu_dmem_alloc_evicting(struct hmmgpu_dmem *dmem,
					 struct page **pages, unsigned long n,
					 struct hmmgpu_file *hfile,
					 const struct hmmgpu_evict_for *who);
struct page *hmmgpu_dmem_alloc_folio_evicting(struct hmmgpu_dmem *dmem,
					      struct hmmgpu_file *hfile,
					      const struct hmmgpu_evict_for *who);
void hmmgpu_dmem_set_preferred(struct hmmgpu_dmem *dmem, struct page *page,
			       unsigned long nr);
void hmmgpu_dmem_claim(struct hmmgpu_dmem *dmem, struct page *page, u64 epoch);
void hmmgpu_dmem_forget_preferred(struct hmmgpu_dmem *dmem, pid_t tgid,
				  unsigned long start, unsigned long end);
unsigned long hmmgpu_dmem_resident(struct hmmgpu_dmem *dmem, u64 client);
u64 hmmgpu_dmem_free_bytes(struct hmmgpu_dmem *dmem);

/** hmmgpu_page_dmem() - the device memory a device-private page is in. */
static inline struct hmmgpu_dmem *hmmgpu_page_dmem(struct page *page)
{
	return container_of(hmmgpu_page_pgmap(page), struct hmmgpu_dmem, pgmap);
}

/** hmmgpu_is_hmmgpu_page() - is @page a device page of any hmmgpu device? */
static inline bool hmmgpu_is_hmmgpu_page(struct page *page)
{
	return is_device_private_page(page) &&
	       hmmgpu_page_pgmap(page)->owner == &hmmgpu_owner;
}

/** hmmgpu_dpage() - the driver state of a device page. */
static inline struct hmmgpu_dpage *hmmgpu_dpage(struct page *page)
{
	struct hmmgpu_dmem *dmem = hmmgpu_page_dmem(page);

	return &dmem->dpages[page_to_pfn(page) - dmem->pfn_first];
}

/** hmmgpu_backing_page() - the page that holds a device page's data. */
static inline struct page *hmmgpu_backing_page(struct page *page)
{
	return hmmgpu_dpage(page)->backing;
}

/* hmmgpu_drv.c: what both personalities share */
struct hmmgpu_device *hmmgpu_device_create(struct device *parent,
					   unsigned int index,
					   const struct range *bar);
void hmmgpu_device_remove(struct hmmgpu_device *hdev);
int hmmgpu_index_get(void);
void hmmgpu_index_put(unsigned int index);
extern unsigned int hmmgpu_mem_mib;

/* hmmgpu_pci.c: the PCI personality */
int hmmgpu_pci_init(void);
void hmmgpu_pci_exit(void);

/* hmmgpu_migrate.c */
struct hmmgpu_migrate_result {
	unsigned long moved;
	unsigned long already;
	unsigned long skipped;
};

int hmmgpu_migrate_range(struct hmmgpu_file *hfile, unsigned long start,
			 unsigned long end, u32 target,
			 struct hmmgpu_migrate_result *res);
int hmmgpu_residency(struct hmmgpu_file *hfile, unsigned long start,
		     unsigned long npages, void __user *out, bool words,
		     u64 count[4]);
int hmmgpu_migrate_block(struct hmmgpu_file *hfile, struct vm_area_struct *vma,
			 unsigned long start, unsigned long end, int cause,
			 struct hmmgpu_migrate_result *res);
bool hmmgpu_vma_migratable(struct vm_area_struct *vma, u32 target);
vm_fault_t hmmgpu_migrate_to_ram(struct vm_fault *vmf);
int hmmgpu_evict_range(struct hmmgpu_dmem *dmem, unsigned long first,
		       unsigned long n, u32 cause, struct hmmgpu_file *hfile);
u64 hmmgpu_next_epoch(void);

/* hmmgpu_view.c */
int hmmgpu_view_register(struct hmmgpu_file *hfile,
			 struct drm_hmmgpu_view_register *args);
int hmmgpu_view_unregister(struct hmmgpu_file *hfile, u32 handle);
int hmmgpu_view_advise(struct hmmgpu_file *hfile,
		       struct drm_hmmgpu_view_advise *args);
bool hmmgpu_file_preferred(struct hmmgpu_file *hfile, struct mm_struct *mm,
			   unsigned long start, unsigned long end);

/* hmmgpu_thrash.c */
#define HMMGPU_THRASH_SHIFT 16 /* blocks of 64 KiB */
extern unsigned int hmmgpu_thrash_threshold;
extern unsigned int hmmgpu_thrash_lapse_us;
extern unsigned int hmmgpu_thrash_pin_ms;
bool hmmgpu_thrash_pinned(struct hmmgpu_file *hfile, unsigned long addr);
void hmmgpu_thrash_to_device(struct hmmgpu_file *hfile, unsigned long addr);
bool hmmgpu_thrash_bounce(struct hmmgpu_file *hfile, unsigned long addr);
void hmmgpu_thrash_fini(struct hmmgpu_file *hfile);
void hmmgpu_view_release_all(struct hmmgpu_file *hfile);
bool hmmgpu_view_remap_wanted(void);
unsigned long hmmgpu_dup_drop_range(struct hmmgpu_dmem *dmem,
				    unsigned long first, unsigned long n);
void hmmgpu_dup_snapshot(struct hmmgpu_file *hfile, struct mm_struct *mm,
			 unsigned long start, unsigned long npages, u32 *snap);
void hmmgpu_view_remap(struct mm_struct *mm, pid_t tgid, unsigned long start,
		       unsigned long end);
void hmmgpu_view_populate(struct hmmgpu_file *hfile, unsigned long start,
			  unsigned long end);
int hmmgpu_mmap(struct file *filp, struct vm_area_struct *vma);

/* hmmgpu_stats.c */
void hmmgpu_count_migration(struct hmmgpu_device *hdev,
			    struct hmmgpu_file *hfile, int dir, int cause,
			    unsigned long pages);
void hmmgpu_count_batch(struct hmmgpu_device *hdev, struct hmmgpu_file *hfile,
			u64 busy_ns, u64 total_ns, unsigned long copy_errors);
void hmmgpu_count_fault_back(struct hmmgpu_device *hdev, struct mm_struct *mm,
			     unsigned long moved, u64 busy_ns,
			     unsigned long copy_errors, u64 ns,
			     unsigned long bounce);
void hmmgpu_count_eviction(struct hmmgpu_device *hdev,
			   struct hmmgpu_file *hfile);
void hmmgpu_count_device_fault(struct hmmgpu_device *hdev,
			       struct hmmgpu_file *hfile);
void hmmgpu_count_thrash_pin(struct hmmgpu_device *hdev,
			     struct hmmgpu_file *hfile);
void hmmgpu_count_remap(struct hmmgpu_device *hdev, struct hmmgpu_file *hfile);
void hmmgpu_count_thrash_remote(struct hmmgpu_device *hdev,
				struct hmmgpu_file *hfile);
void hmmgpu_count_dups(struct hmmgpu_device *hdev, struct hmmgpu_file *hfile,
		       unsigned long made, unsigned long dropped);
void hmmgpu_stats_fill(const struct hmmgpu_counters *c,
		       struct drm_hmmgpu_stats *out);
void hmmgpu_debugfs_register(struct hmmgpu_device *hdev, bool registered);

#endif /* HMMGPU_DRV_H */
