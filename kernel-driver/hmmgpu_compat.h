/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hmmgpu_compat.h - every kernel-version difference hmmgpu meets, in one
 * place.
 */
#ifndef HMMGPU_COMPAT_H
#define HMMGPU_COMPAT_H

#include <linux/dma-fence.h>
#include <linux/fs.h>
#include <linux/gfp.h>
#include <linux/hmm.h>
#include <linux/memremap.h>
#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/rmap.h>
#include <linux/platform_device.h>
#include <linux/seq_file.h>
#include <linux/smp.h>
#include <linux/swap.h>
#include <linux/swapops.h>
#include <asm/tlbflush.h>
#ifdef CONFIG_X86
#include <asm/invpcid.h>
#include <asm/special_insns.h>
#endif
#include <drm/drm_debugfs.h>
#include <drm/drm_device.h>
#include <drm/drm_file.h>

#include "hmmgpu_probes.h"

#if HMMGPU_HAVE_LEAFOPS
#include <linux/leafops.h>
#endif

/**
 * DOC: Kernel compatibility
 *
 * hmmgpu builds against Linux 6.1 LTS, 6.12 LTS and the newest stable
 * series, and against the distribution kernels in between, which backport
 * freely.  So no code asks which version it is built for.  At build time
 * Kbuild runs the compile probes of ``kernel-driver/probes/`` (one tiny C
 * file per API question, compiled with the kernel's own compiler and flags;
 * ``probes/run.sh``) and writes their answers as ``HMMGPU_HAVE_*`` defines
 * into ``hmmgpu_probes.h``.  This header alone reads those defines and
 * offers one helper per changed API; the rest of the driver calls the
 * helpers and contains no version conditionals.
 *
 * Each probe names, in its comment, the kernel that changed the API.  To
 * support a new change: add ``probes/NAME.c`` that compiles only where the
 * new API exists (``NAME.sym`` for "is this symbol exported"), then a
 * helper here that uses ``HMMGPU_HAVE_NAME``.
 *
 * The probes, and the kernel that changed each API:
 *
 * - ``drm_debugfs_add_files``: 6.3, device-centred debugfs files;
 * - ``vm_flags_set``: 6.3, vm_flags read-only for drivers;
 * - ``dump_mm.sym``: exported after 6.1 (mmap_assert_locked() on
 *   CONFIG_DEBUG_VM kernels calls it);
 * - ``platform_remove_void``: 6.11, void platform_driver.remove;
 * - ``fop_unsigned_offset``: 6.12, drm_open() wants FOP_UNSIGNED_OFFSET;
 * - ``alloc_pages_bulk``: 6.14, alloc_pages_bulk_array() renamed;
 * - ``drm_driver_date``: 6.14, drm_driver.date removed;
 * - ``page_pgmap``: 6.15, page->pgmap moved behind page_pgmap();
 * - ``dma_fence_init64``: 6.17, dma_fence_ops.use_64bit_seqno replaced;
 * - ``system_dfl_wq``: 6.17, system_unbound_wq renamed (7.x warns about
 *   the old name);
 * - ``folio_free``: 6.19, dev_pagemap_ops.page_free became folio_free;
 * - ``zone_device_page_init_order``: 6.19, zone_device_page_init() takes
 *   the pagemap and an order;
 * - ``device_thp``: 6.19, device-private THP (see "Device THP" below);
 * - ``leafops``: 6.19, non-present page table entries are read with the
 *   softleaf_t helpers of leafops.h instead of swapops.h's;
 * - ``apply_to_existing_page_range.sym``, ``__flush_tlb_all.sym``: 7.x
 *   exports neither to modules (the latter to KVM only).
 */

/* --- work ---------------------------------------------------------------- */

/* The system's unbound workqueue, by the name this kernel wants. */
#if HMMGPU_HAVE_SYSTEM_DFL_WQ
#define hmmgpu_unbound_wq system_dfl_wq
#else
#define hmmgpu_unbound_wq system_unbound_wq
#endif

/* --- device-private pages ------------------------------------------------ */

/**
 * hmmgpu_page_pgmap() - the pagemap of a ZONE_DEVICE page.
 * @page: the page.
 *
 * page->pgmap before Linux 6.15, page_pgmap() since.
 */
static inline struct dev_pagemap *hmmgpu_page_pgmap(const struct page *page)
{
#if HMMGPU_HAVE_PAGE_PGMAP
	return page_pgmap(page);
#else
	return page->pgmap;
#endif
}

/**
 * hmmgpu_device_page_init() - make a free device page an allocated one.
 * @page: an order-0 device page of @pgmap with no reference.
 * @pgmap: its pagemap.
 *
 * Leaves @page with one reference, locked.  Linux 6.19 added the pagemap
 * and the order to zone_device_page_init().
 */
static inline void hmmgpu_device_page_init(struct page *page,
					   struct dev_pagemap *pgmap)
{
#if HMMGPU_HAVE_ZONE_DEVICE_PAGE_INIT_ORDER
	zone_device_page_init(page, pgmap, 0);
#else
	zone_device_page_init(page);
#endif
}

/**
 * DOC: Device THP
 *
 * Since Linux 6.19 the core migrates 2 MiB folios of device-private
 * memory whole (HMMGPU_HAVE_DEVICE_THP): migrate_vma_setup() with
 * %MIGRATE_VMA_SELECT_COMPOUND reports a PMD-mapped THP, an empty aligned
 * 2 MiB range or a PMD-level device-private entry as one src entry with
 * %MIGRATE_PFN_COMPOUND (the next 511 entries are empty), and a dst entry
 * with the flag installs a 2 MiB folio with one PMD.  Elsewhere the flags
 * are 0 here, no src entry ever has them, and hmmgpu_device_folio_init()
 * is never called.
 */
#if HMMGPU_HAVE_DEVICE_THP
#define HMMGPU_MIGRATE_PFN_COMPOUND MIGRATE_PFN_COMPOUND
#define HMMGPU_MIGRATE_VMA_SELECT_COMPOUND MIGRATE_VMA_SELECT_COMPOUND
#define HMMGPU_PMD_ORDER HPAGE_PMD_ORDER
#else
#define HMMGPU_MIGRATE_PFN_COMPOUND 0UL
#define HMMGPU_MIGRATE_VMA_SELECT_COMPOUND 0
#define HMMGPU_PMD_ORDER (21 - PAGE_SHIFT)
#endif

/**
 * hmmgpu_device_folio_init() - make 2 MiB of free device pages one folio.
 * @page: the first of HMMGPU_BLOCK_PAGES free device pages of @pgmap.
 * @pgmap: their pagemap.
 *
 * Leaves the folio with one reference, locked.  Only where
 * HMMGPU_HAVE_DEVICE_THP.
 */
static inline void hmmgpu_device_folio_init(struct page *page,
					    struct dev_pagemap *pgmap)
{
#if HMMGPU_HAVE_DEVICE_THP
	zone_device_folio_init(page_folio(page), pgmap, HMMGPU_PMD_ORDER);
#else
	WARN_ON_ONCE(1);
#endif
}

/*
 * HMMGPU_DEFINE_PAGEMAP_FREE(name, fn) defines @name, the pagemap callback
 * that receives the last reference of a device folio, calling
 * ``void fn(struct page *page, unsigned long nr)`` with its first page and
 * its number of pages; HMMGPU_PAGEMAP_FREE_OP(name) is the &struct
 * dev_pagemap_ops initializer for it.  Linux 6.19 replaced page_free(page)
 * with folio_free(folio); before it, every device page is its own folio.
 */
#if HMMGPU_HAVE_FOLIO_FREE
#define HMMGPU_DEFINE_PAGEMAP_FREE(name, fn)				\
	static void name(struct folio *folio)				\
	{								\
		fn(&folio->page, folio_nr_pages(folio));		\
	}
#define HMMGPU_PAGEMAP_FREE_OP(name) .folio_free = (name)
#else
#define HMMGPU_DEFINE_PAGEMAP_FREE(name, fn)				\
	static void name(struct page *page)				\
	{								\
		fn(page, 1);						\
	}
#define HMMGPU_PAGEMAP_FREE_OP(name) .page_free = (name)
#endif

/**
 * hmmgpu_alloc_pages_bulk() - allocate order-0 pages into an array.
 * @gfp: allocation flags.
 * @nr: entries of @pages.
 * @pages: filled where NULL.
 *
 * alloc_pages_bulk_array() became alloc_pages_bulk() in Linux 6.14.
 *
 * Return: the number of entries of @pages that hold a page.
 */
static inline unsigned long hmmgpu_alloc_pages_bulk(gfp_t gfp,
						     unsigned long nr,
						     struct page **pages)
{
#if HMMGPU_HAVE_ALLOC_PAGES_BULK
	return alloc_pages_bulk(gfp, nr, pages);
#else
	return alloc_pages_bulk_array(gfp, nr, pages);
#endif
}

/* --- the mm a driver sees ------------------------------------------------ */

/**
 * hmmgpu_pte_swap_page() - what a non-present page table entry stands for.
 * @pte: an entry that is neither present nor none, read under its page
 *	 table lock.
 * @swapped: set to whether @pte is a swap entry: the page is in swap.
 *
 * Linux 6.19 replaced the swp_entry_t tests of swapops.h with the
 * softleaf_t ones of leafops.h.  The page is found from the entry's pfn
 * without the checks of pfn_swap_entry_to_page() / softleaf_to_page(),
 * which want a migration entry's page locked: the caller only looks at
 * where the page is, under the page table lock that keeps the entry (and
 * so the page) there.
 *
 * Return: the page a migration, device-private or device-exclusive entry
 * points to; NULL for a swap entry and for entries that stand for no page
 * (markers, hardware-poisoned pages).
 */
static inline struct page *hmmgpu_pte_swap_page(pte_t pte, bool *swapped)
{
#if HMMGPU_HAVE_LEAFOPS
	softleaf_t entry = softleaf_from_pte(pte);

	*swapped = softleaf_is_swap(entry);
	if (softleaf_is_migration(entry) || softleaf_is_device_private(entry) ||
	    softleaf_is_device_exclusive(entry))
		return pfn_to_page(softleaf_to_pfn(entry));
	return NULL;
#else
	swp_entry_t entry = pte_to_swp_entry(pte);

	*swapped = !non_swap_entry(entry);
	if (is_migration_entry(entry) || is_device_private_entry(entry) ||
	    is_device_exclusive_entry(entry))
		return pfn_to_page(swp_offset_pfn(entry));
	return NULL;
#endif
}

/**
 * hmmgpu_pte_device_exclusive() - is @pte a device-exclusive entry?
 * @pte: an entry that is neither present nor none.
 *
 * make_device_exclusive() leaves one where a device holds a page for its
 * atomics (swapops.h before 6.19, leafops.h after).
 */
static inline bool hmmgpu_pte_device_exclusive(pte_t pte)
{
#if HMMGPU_HAVE_LEAFOPS
	return softleaf_is_device_exclusive(softleaf_from_pte(pte));
#else
	return is_device_exclusive_entry(pte_to_swp_entry(pte));
#endif
}

/**
 * hmmgpu_make_device_exclusive() - take the page at @addr for the device.
 * @mm: the address space, its mmap_lock held for reading.
 * @addr: page-aligned address in an anonymous, writable VMA.
 * @owner: passed to the MMU_NOTIFY_EXCLUSIVE invalidation it starts, so
 *	   that the caller's notifier can tell it from others.
 *
 * The CPU entry becomes a device-exclusive entry: a CPU access faults,
 * restores it and invalidates the range first.  Linux 6.15 replaced
 * make_device_exclusive_range() with make_device_exclusive() (one page,
 * an error pointer on failure).
 *
 * Return: the page, locked and referenced (hmmgpu_device_exclusive_done()
 * releases it once the device's entry is written), or NULL.
 */
static inline struct page *hmmgpu_make_device_exclusive(struct mm_struct *mm,
							unsigned long addr,
							void *owner)
{
#if HMMGPU_HAVE_MAKE_DEVICE_EXCLUSIVE
	struct folio *folio;
	struct page *page = make_device_exclusive(mm, addr, owner, &folio);

	return IS_ERR(page) ? NULL : page;
#else
	struct page *page = NULL;

	if (make_device_exclusive_range(mm, addr, addr + PAGE_SIZE, &page,
					owner) != 1)
		return NULL;
	return page;
#endif
}

/* Unlocks and releases a page of hmmgpu_make_device_exclusive(). */
static inline void hmmgpu_device_exclusive_done(struct page *page)
{
	struct folio *folio = page_folio(page);

	folio_unlock(folio);
	folio_put(folio);
}

/**
 * hmmgpu_hmm_pfn_to_page() - the page of one hmm_range_fault() entry.
 * @hmm_pfn: an output entry with HMM_PFN_VALID.
 * @addr: the address the entry is for.
 *
 * hmm_range_fault() of the kernels with device THP fills the entries of
 * a PMD-level device-private entry counting from the folio's first page,
 * whatever the offset in the PMD where the walked range starts
 * (hmm_vma_handle_absent_pmd() in mm/hmm.c; the present-PMD case adds the
 * offset): when the range starts inside such a PMD, every entry names the
 * wrong page of the right folio.  The page for @addr is the folio's page
 * at @addr's offset in the PMD, which is what this returns for entries of
 * PMD order, and the entry's page for all others.
 *
 * Return: the page mapped at @addr.
 */
static inline struct page *hmmgpu_hmm_pfn_to_page(unsigned long hmm_pfn,
						  unsigned long addr)
{
	struct page *page = hmm_pfn_to_page(hmm_pfn);

#if HMMGPU_HAVE_DEVICE_THP
	if (hmm_pfn_to_map_order(hmm_pfn) == HMMGPU_PMD_ORDER &&
	    is_device_private_page(page))
		page = folio_page(page_folio(page),
				  (addr & ~PMD_MASK) >> PAGE_SHIFT);
#endif
	return page;
}

/**
 * hmmgpu_pmd_swap_page() - the page a non-present PMD entry points to.
 * @pmd: a PMD entry that is neither none nor present.
 *
 * Only kernels with device THP have PMD-level device-private entries;
 * there, the page of such an entry or of a PMD migration entry.
 *
 * Return: that page, or NULL (other entries, other kernels).
 */
static inline struct page *hmmgpu_pmd_swap_page(pmd_t pmd)
{
#if HMMGPU_HAVE_DEVICE_THP && HMMGPU_HAVE_LEAFOPS
	softleaf_t entry = softleaf_from_pmd(pmd);

	if (softleaf_is_device_private(entry) || softleaf_is_migration(entry))
		return pfn_to_page(softleaf_to_pfn(entry));
#endif
	return NULL;
}

/**
 * hmmgpu_vm_flags_set() - set flags of a VMA being mapped (->mmap).
 * @vma: the VMA.
 * @flags: VM_* flags to add.
 *
 * vm_flags became read-only for drivers in Linux 6.3.
 */
static inline void hmmgpu_vm_flags_set(struct vm_area_struct *vma,
				       vm_flags_t flags)
{
#if HMMGPU_HAVE_VM_FLAGS_SET
	vm_flags_set(vma, flags);
#else
	vma->vm_flags |= flags;
#endif
}

/* hmmgpu_vm_flags_set()'s counterpart: clear flags of a VMA being mapped. */
static inline void hmmgpu_vm_flags_clear(struct vm_area_struct *vma,
					 vm_flags_t flags)
{
#if HMMGPU_HAVE_VM_FLAGS_SET
	vm_flags_clear(vma, flags);
#else
	vma->vm_flags &= ~flags;
#endif
}

/**
 * hmmgpu_mmap_assert_locked() - assert that the caller holds @mm's mmap
 * lock (read or write).
 * @mm: the mm.
 *
 * mmap_assert_locked() calls dump_mm() on CONFIG_DEBUG_VM kernels, which
 * Linux 6.1 does not export: there the same check is made with lockdep and
 * a warning.
 */
static inline void hmmgpu_mmap_assert_locked(struct mm_struct *mm)
{
#if HMMGPU_HAVE_EXPORT_DUMP_MM
	mmap_assert_locked(mm);
#else
	lockdep_assert_held(&mm->mmap_lock);
	WARN_ON_ONCE(!rwsem_is_locked(&mm->mmap_lock));
#endif
}

/**
 * hmmgpu_apply_to_existing_page_range() - call @fn on every entry of
 * @mm's page tables in [@addr, @addr + @size) that has a page table,
 * allocating none.
 * @mm: the mm.
 * @addr: start, page aligned.
 * @size: length, page aligned.
 * @fn: called with each entry (present or not) and its address.
 * @data: passed to @fn.
 *
 * The caller keeps the page tables of the range from being freed (the view
 * does with its map notifier and lock).  Linux 7.x stopped exporting
 * apply_to_existing_page_range(); there, apply_to_page_range() is called on
 * each PMD-sized piece whose page table is present, so it never allocates
 * (the caller may be an mmu notifier callback in reclaim).
 *
 * Return: 0, or the first non-zero value @fn returned.
 */
/**
 * hmmgpu_pmd_read() - the PMD entry of @mm that covers @addr.
 * @mm: the mm.
 * @addr: the address.
 * @pmd: set to the entry, when there is one.
 *
 * Reads the upper levels without locks: the caller keeps them in place
 * (the mmap_lock, or the view's map notifier and lock).  The entry itself
 * may change under the caller unless it holds the PMD lock.
 *
 * Return: false when no PMD level exists for @addr.
 */
static inline bool hmmgpu_pmd_read(struct mm_struct *mm, unsigned long addr,
				   pmd_t *pmd)
{
	pgd_t *pgd = pgd_offset(mm, addr);
	p4d_t *p4d;
	pud_t *pud;

	if (pgd_none(READ_ONCE(*pgd)) || pgd_bad(READ_ONCE(*pgd)))
		return false;
	p4d = p4d_offset(pgd, addr);
	if (p4d_none(READ_ONCE(*p4d)) || p4d_bad(READ_ONCE(*p4d)))
		return false;
	pud = pud_offset(p4d, addr);
	if (pud_none(READ_ONCE(*pud)) || pud_bad(READ_ONCE(*pud)))
		return false;
	*pmd = READ_ONCE(*pmd_offset(pud, addr));
	return true;
}

#if HMMGPU_HAVE_EXPORT_APPLY_TO_EXISTING_PAGE_RANGE
static inline int hmmgpu_apply_to_existing_page_range(struct mm_struct *mm,
						      unsigned long addr,
						      unsigned long size,
						      pte_fn_t fn, void *data)
{
	return apply_to_existing_page_range(mm, addr, size, fn, data);
}
#else
/* Is there a page table (not a huge leaf) under the PMD of @addr? */
static inline bool hmmgpu_pte_table_present(struct mm_struct *mm,
					    unsigned long addr)
{
	pmd_t pmd;

	return hmmgpu_pmd_read(mm, addr, &pmd) && !pmd_none(pmd) &&
	       !pmd_bad(pmd) && !pmd_leaf(pmd);
}

static inline int hmmgpu_apply_to_existing_page_range(struct mm_struct *mm,
						      unsigned long addr,
						      unsigned long size,
						      pte_fn_t fn, void *data)
{
	unsigned long end = addr + size, next;
	int err;

	for (; addr < end; addr = next) {
		next = pmd_addr_end(addr, end);
		if (!hmmgpu_pte_table_present(mm, addr))
			continue;
		err = apply_to_page_range(mm, addr, next - addr, fn, data);
		if (err)
			return err;
	}
	return 0;
}
#endif

/* A fault made without the mmap_lock (none before Linux 6.4). */
#if HMMGPU_HAVE_FAULT_FLAG_VMA_LOCK
#define HMMGPU_FAULT_FLAG_VMA_LOCK FAULT_FLAG_VMA_LOCK
#else
#define HMMGPU_FAULT_FLAG_VMA_LOCK 0
#endif

/* The userfaultfd protection bit of an entry, by this kernel's name. */
#if HMMGPU_HAVE_PTE_UFFD
#define hmmgpu_pte_uffd pte_uffd
#define hmmgpu_pmd_uffd pmd_uffd
#define hmmgpu_pte_swp_uffd pte_swp_uffd
#define hmmgpu_pmd_swp_uffd pmd_swp_uffd
#else
#define hmmgpu_pte_uffd pte_uffd_wp
#define hmmgpu_pmd_uffd pmd_uffd_wp
#define hmmgpu_pte_swp_uffd pte_swp_uffd_wp
#define hmmgpu_pmd_swp_uffd pmd_swp_uffd_wp
#endif

/* hmmgpu_uffd_wp_pfn(): protected, but not present (swapped, migrating,
 * on a device) */
#define HMMGPU_UFFD_WP_AWAY (ULONG_MAX - 1)

/**
 * hmmgpu_uffd_wp_pfn() - the page that @mm maps at @addr through a present
 * entry that userfaultfd write-protects.
 * @mm: the mm.
 * @addr: the address.
 *
 * No function the kernel exports reads a user page table entry on every
 * supported kernel (follow_pte() is gone since 6.12; hmm_range_fault()
 * reports write permission but not why it is missing).  This reads the
 * entry the way get_user_pages_fast() does: without locks, with interrupts
 * off, so that no page table can be freed under it (tables are freed after
 * an IPI or an RCU-sched grace period, which wait for this CPU).  The
 * entry may change right after; the caller checks a notifier sequence
 * taken before it, and every change that could matter (the protection
 * removed, the page unmapped or replaced) invalidates.
 *
 * Return: the pfn of a present, write-protected entry marked uffd-wp (a PTE
 * or a PMD leaf), %HMMGPU_UFFD_WP_AWAY for a non-present entry so marked,
 * else ULONG_MAX.
 */
static inline unsigned long hmmgpu_uffd_wp_pfn(struct mm_struct *mm,
					       unsigned long addr)
{
	unsigned long pfn = ULONG_MAX;
#if defined(CONFIG_USERFAULTFD) && defined(CONFIG_HAVE_ARCH_USERFAULTFD_WP)
	unsigned long flags;
	pmd_t pmd;
	pte_t pte;

	local_irq_save(flags);
	if (!hmmgpu_pmd_read(mm, addr, &pmd) || pmd_none(pmd))
		goto out;
	if (!pmd_present(pmd)) {
		if (hmmgpu_pmd_swp_uffd(pmd))
			pfn = HMMGPU_UFFD_WP_AWAY;
		goto out;
	}
	if (pmd_leaf(pmd)) {
		if (hmmgpu_pmd_uffd(pmd) && !pmd_write(pmd))
			pfn = pmd_pfn(pmd) + ((addr & ~PMD_MASK) >> PAGE_SHIFT);
		goto out;
	}
	if (pmd_bad(pmd))
		goto out;
	pte = READ_ONCE(*pte_offset_kernel(&pmd, addr));
	if (pte_present(pte) && hmmgpu_pte_uffd(pte) && !pte_write(pte))
		pfn = pte_pfn(pte);
	else if (!pte_present(pte) && !pte_none(pte) &&
		 hmmgpu_pte_swp_uffd(pte))
		pfn = HMMGPU_UFFD_WP_AWAY;
out:
	local_irq_restore(flags);
#endif
	return pfn;
}

/*
 * The device TLB is the CPU TLB, and x86 exports no ranged user TLB flush
 * to modules: a view flushes every CPU's whole TLB, the way
 * __flush_tlb_all() does.  Linux 7.x exports __flush_tlb_all() to KVM
 * only.  There, each CPU flushes itself with what needs no export: INVPCID
 * "all contexts" where the CPU has it (Intel since Haswell, AMD since Zen
 * 3), else, when the kernel does not use PCIDs, a write of CR3 (which
 * drops every non-global entry, and user entries are never global).  A CPU
 * with PCIDs but without INVPCID has no such way: hmmgpu_can_flush_tlb()
 * says so and the driver offers no device view there.  (The test VM's
 * emulated CPU has neither, so its 7.3 runs take the CR3 path.)  Other
 * architectures flush the mm.
 */
#ifdef CONFIG_X86
static inline bool hmmgpu_can_flush_tlb(void)
{
#if HMMGPU_HAVE_EXPORT_FLUSH_TLB_ALL
	return true;
#else
	return boot_cpu_has(X86_FEATURE_INVPCID) ||
	       !boot_cpu_has(X86_FEATURE_PCID);
#endif
}

/* How the device TLB is flushed here, for the log. */
static inline const char *hmmgpu_tlb_flush_method(void)
{
	if (!boot_cpu_has(X86_FEATURE_PCID))
		return "ranged INVLPG on the process's CPUs (no PCIDs)";
#if HMMGPU_HAVE_EXPORT_FLUSH_TLB_ALL
	return "__flush_tlb_all";
#else
	if (boot_cpu_has(X86_FEATURE_INVPCID))
		return "INVPCID";
	return boot_cpu_has(X86_FEATURE_PCID) ? "none (no device view)" :
						"CR3 write";
#endif
}

static inline void hmmgpu_flush_local_tlb(void *unused)
{
#if HMMGPU_HAVE_EXPORT_FLUSH_TLB_ALL
	__flush_tlb_all();
#else
	if (boot_cpu_has(X86_FEATURE_INVPCID))
		invpcid_flush_all();
	else
		native_write_cr3(__native_read_cr3());
#endif
}
#else
static inline bool hmmgpu_can_flush_tlb(void)
{
	return true;
}

static inline const char *hmmgpu_tlb_flush_method(void)
{
	return "flush_tlb_mm";
}
#endif

#ifdef CONFIG_X86
/* Above this many pages a CPU drops its whole TLB (as x86's own flushes). */
#define HMMGPU_TLB_SINGLE_PAGE_CEILING 33

struct hmmgpu_tlb_range {
	unsigned long start;
	unsigned long end;
};

/*
 * One CPU's part of a ranged flush where the kernel uses no PCIDs: INVLPG
 * of each page, or a write of CR3 for a long range.  Without PCIDs the
 * TLB holds entries of the loaded CR3 only, and each switch of CR3 (to
 * another mm, or to the user page tables of page-table isolation) drops
 * them: entries of this mm can only be on CPUs that have it loaded.
 */
static inline void hmmgpu_flush_local_range(void *data)
{
	const struct hmmgpu_tlb_range *r = data;
	unsigned long addr;

	if ((r->end - r->start) >> PAGE_SHIFT > HMMGPU_TLB_SINGLE_PAGE_CEILING) {
		native_write_cr3(__native_read_cr3());
		return;
	}
	for (addr = r->start; addr < r->end; addr += PAGE_SIZE)
		asm volatile("invlpg (%0)" : : "r" (addr) : "memory");
}
#endif

/**
 * hmmgpu_flush_tlb_range() - flush the device TLB for [@start, @end) of @mm.
 * @mm: the mm whose page tables changed.
 * @start: first address whose entry was cleared or changed.
 * @end: end of that range.
 *
 * Where the kernel uses no PCIDs (the test VM's CPU, and x86 booted with
 * nopcid), only the CPUs in mm_cpumask(@mm), which are the ones that may
 * have @mm loaded, flush, and only the range.  With PCIDs a CPU also
 * keeps entries of mms it ran before, under other PCIDs, and x86 exports
 * no way for a module to reach them but flushing every context of every
 * CPU (hmmgpu_flush_local_tlb()); that is what happens there.  Only
 * where hmmgpu_can_flush_tlb().
 *
 * Context: process context, interrupts enabled.
 */
static inline void hmmgpu_flush_tlb_range(struct mm_struct *mm,
					  unsigned long start,
					  unsigned long end)
{
#ifdef CONFIG_X86
	struct hmmgpu_tlb_range r = { .start = start, .end = end };

	if (!boot_cpu_has(X86_FEATURE_PCID)) {
		on_each_cpu_mask(mm_cpumask(mm), hmmgpu_flush_local_range, &r,
				 true);
		return;
	}
	on_each_cpu(hmmgpu_flush_local_tlb, NULL, 1);
#else
	flush_tlb_mm(mm);
#endif
}

/* --- fences ---------------------------------------------------------------- */

/*
 * HMMGPU_FENCE_OPS_SEQNO64 goes first in a &struct dma_fence_ops whose
 * fences are initialized with hmmgpu_fence_init64(): before Linux 6.17 the
 * ops said "64-bit sequence numbers" (use_64bit_seqno), since then a fence
 * flag set by dma_fence_init64() does.
 */
#if HMMGPU_HAVE_DMA_FENCE_INIT64
#define HMMGPU_FENCE_OPS_SEQNO64
#else
#define HMMGPU_FENCE_OPS_SEQNO64 .use_64bit_seqno = true,
#endif

/**
 * hmmgpu_fence_init64() - initialize a fence with a 64-bit sequence number.
 * @fence: the fence.
 * @ops: its ops, starting with HMMGPU_FENCE_OPS_SEQNO64.
 * @lock: its lock.
 * @context: its context (dma_fence_context_alloc()).
 * @seqno: its sequence number on @context.
 */
static inline void hmmgpu_fence_init64(struct dma_fence *fence,
				       const struct dma_fence_ops *ops,
				       spinlock_t *lock, u64 context, u64 seqno)
{
#if HMMGPU_HAVE_DMA_FENCE_INIT64
	dma_fence_init64(fence, ops, lock, context, seqno);
#else
	dma_fence_init(fence, ops, lock, context, seqno);
#endif
}

/* --- driver model and DRM ------------------------------------------------ */

/*
 * HMMGPU_DEFINE_PLATFORM_REMOVE(name, fn) defines @name, a
 * &platform_driver.remove callback calling ``void fn(struct platform_device
 * *)``: the callback returned int until Linux 6.11.
 */
#if HMMGPU_HAVE_PLATFORM_REMOVE_VOID
#define HMMGPU_DEFINE_PLATFORM_REMOVE(name, fn)				\
	static void name(struct platform_device *pdev)			\
	{								\
		fn(pdev);						\
	}
#else
#define HMMGPU_DEFINE_PLATFORM_REMOVE(name, fn)				\
	static int name(struct platform_device *pdev)			\
	{								\
		fn(pdev);						\
		return 0;						\
	}
#endif

/*
 * HMMGPU_DRM_DRIVER_DATE(date) goes in a &struct drm_driver initializer,
 * without a comma after it.  Until Linux 6.14 the DRM core copied
 * drm_driver.date into every DRM_IOCTL_VERSION reply, warned when it was
 * NULL, and libdrm's drmGetVersion() crashed on the missing string; then
 * the field went.
 */
#if HMMGPU_HAVE_DRM_DRIVER_DATE
#define HMMGPU_DRM_DRIVER_DATE(d) .date = (d),
#else
#define HMMGPU_DRM_DRIVER_DATE(d)
#endif

/*
 * HMMGPU_FOP_UNSIGNED_OFFSET goes in a &struct file_operations initializer,
 * without a comma after it: since Linux 6.12 drm_open() refuses files whose
 * fop_flags lack FOP_UNSIGNED_OFFSET; before, the flag did not exist.
 */
#if HMMGPU_HAVE_FOP_UNSIGNED_OFFSET
#define HMMGPU_FOP_UNSIGNED_OFFSET .fop_flags = FOP_UNSIGNED_OFFSET,
#else
#define HMMGPU_FOP_UNSIGNED_OFFSET
#endif

/*
 * Device debugfs files.  Since Linux 6.3 a device keeps its files itself
 * (&struct drm_debugfs_info, drm_debugfs_add_files() before
 * drm_dev_register()); 6.1 creates &struct drm_info_list files in a
 * registered minor's directory.  Both structures have the same fields.  A
 * driver defines one array of &struct hmmgpu_debugfs_info and passes it to
 * hmmgpu_debugfs_add() before and to hmmgpu_debugfs_add_registered() after
 * drm_dev_register(): each does the work on the kernels it is for.  A
 * show() callback finds its device with hmmgpu_debugfs_drm().
 */
#if HMMGPU_HAVE_DRM_DEBUGFS_ADD_FILES
#define hmmgpu_debugfs_info drm_debugfs_info

static inline struct drm_device *hmmgpu_debugfs_drm(struct seq_file *m)
{
	struct drm_debugfs_entry *entry = m->private;

	return entry->dev;
}

static inline void hmmgpu_debugfs_add(struct drm_device *drm,
				      const struct hmmgpu_debugfs_info *files,
				      int count)
{
	drm_debugfs_add_files(drm, files, count);
}

static inline void
hmmgpu_debugfs_add_registered(struct drm_device *drm,
			      const struct hmmgpu_debugfs_info *files,
			      int count)
{
}
#else
#define hmmgpu_debugfs_info drm_info_list

static inline struct drm_device *hmmgpu_debugfs_drm(struct seq_file *m)
{
	struct drm_info_node *node = m->private;

	return node->minor->dev;
}

static inline void hmmgpu_debugfs_add(struct drm_device *drm,
				      const struct hmmgpu_debugfs_info *files,
				      int count)
{
}

/* The files go in the render node's directory (dri/128 and up). */
static inline void
hmmgpu_debugfs_add_registered(struct drm_device *drm,
			      const struct hmmgpu_debugfs_info *files,
			      int count)
{
	if (drm->render && drm->render->debugfs_root)
		drm_debugfs_create_files(files, count,
					 drm->render->debugfs_root,
					 drm->render);
}
#endif

#endif /* HMMGPU_COMPAT_H */
