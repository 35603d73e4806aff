// SPDX-License-Identifier: GPL-2.0
/*
 * hmmgpu_view.c - the device MMU view: mapping, device faults, density
 * prefetch, remote access and invalidation.
 */

#include <linux/hmm.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/pagemap.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/userfaultfd_k.h>
#include <asm/tlbflush.h>

#include <drm/drm_drv.h>
#include <drm/drm_file.h>

#include "hmmgpu_drv.h"
#include "hmmgpu_trace.h"

/**
 * DOC: Device view
 *
 * A GPU does not ask for data: it touches an address and its MMU faults.
 * The view is our device's MMU. VIEW_REGISTER takes a range [P, P + size)
 * of the caller's memory and returns a handle and an mmap offset; mmap of
 * the render node at that offset maps the view, in which address V + off
 * is the device's address of CPU address P + off. Device execution
 * (runtime threads, OpenCL) touches memory only through views.
 *
 * Any memory the CPU can read and that has pages may be registered:
 * private anonymous memory, private file mappings, MAP_SHARED memory
 * (shmem, memfd, files) and hugetlbfs. What cannot move to device-private
 * memory (shared and file pages, hugetlb, mlock()ed ranges) is always
 * mapped remotely (below). A device write to a file page is written back
 * like a CPU write: the view maps a page writable only after
 * hmm_range_fault() faulted it for write, which for a shared file mapping
 * runs ->page_mkwrite and dirties the page; writeback write-protects the
 * CPU entries first, which invalidates the range and clears the view's
 * entries, so the next device write faults and dirties the page again;
 * and a dirty view entry marks its page dirty when it is cleared (View
 * invalidation). Only PFN maps (VM_IO, VM_PFNMAP, VM_MIXEDMAP: device
 * memory, views themselves) are refused: they have no pages to map.
 *
 * The view is a VM_PFNMAP mapping whose entries point at the *backing
 * pages* of device pages, i.e. at the simulated VRAM, or, for remote
 * access, at system pages. Its page-table entries are the device's page
 * table: the driver writes and clears them itself, the way a GPU driver
 * writes its GPU page table, and the CPU TLB is the device TLB.
 *
 * A view access to an address with no entry is a *device fault*
 * (hmmgpu_view_fault()):
 *
 * 1. the CPU address and its VMA are looked up; none, or a write to a
 *    page the CPU may not write (the VMA lacks VM_WRITE), is a fatal
 *    device fault: SIGBUS for the accessing thread, nothing else changes;
 * 2. the aligned block of the view's granularity around the address
 *    (VIEW_ADVISE, default view_fault_kib), within the CPU VMA and the
 *    part of the view the faulting mapping covers, is migrated to the
 *    device in one batch, with the same code as the MIGRATE ioctl;
 * 3. density prefetch: if more than prefetch_pct percent of the enclosing
 *    2 MiB region (within the same bounds) is now on the device, the rest
 *    of it is migrated too;
 * 4. hmm_range_fault() finds the pages of the block (or region): device
 *    pages of any hmmgpu device without faulting, system pages faulted in
 *    when they could not move (pinned pages, for instance);
 * 5. under the view's lock, if no invalidation ran since step 4 began,
 *    every page is entered in the view, read-only where the CPU mapping
 *    is read-only.
 *
 * A device write to a read-only entry comes back through pfn_mkwrite into
 * the same path. When the page is a device page the CPU maps read-only in
 * a writable VMA (copy-on-write after fork(), or mprotect() history), the
 * fault path first makes the CPU fault it for write, which brings it to
 * system memory and breaks the sharing, and lets the access fault again;
 * the second fault migrates the now private page back.
 *
 * With remote access (HMMGPU_ADVICE_REMOTE) steps 2 and 3 are skipped:
 * the view maps the system pages themselves, zero-copy, like a GPU
 * reading host memory over the bus.
 *
 * In a CPU range armed with userfaultfd, step 4 faults nothing in and
 * step 5 enters the faulting page only: the device cannot wait for the
 * handler (hmm_range_fault() has no way to let it), so a page that is
 * not there, or a write the handler would have to allow, is a fatal
 * device fault. Migration (steps 2 and 3) is as usual; the core leaves
 * the missing pages of such a range alone.
 *
 * An explicit MIGRATE to the device enters the pages it moved in the
 * caller's mapped views of that file (hmmgpu_view_populate()), the way a
 * GPU driver maps a prefetched range: prefetched data costs no device
 * fault.
 *
 * A mapping may cover just a part of the view, and the page tables
 * around it belong to other VMAs of the process: every page-table
 * operation on a mapping (allocating, entering, clearing) stays within
 * the range that mapping covers (view_vma_range()).
 */

/**
 * DOC: View invalidation and lifetime
 *
 * Coherence rests on an interval notifier over the CPU range of each view
 * (&hmmgpu_view.notifier). Every CPU-side change to the range (munmap,
 * mprotect, fork's write protection, copy-on-write, reclaim, compaction,
 * and every migration: CPU fault-back, prefetch to system, eviction,
 * device removal) invalidates the range before it takes effect, i.e.
 * before any page is copied, freed or reused. The callback clears the
 * view's entries for the range and flushes the TLB before it returns, so
 * no device access can reach a page after that point; a dirty entry of a
 * system page (anonymous, shmem or memfd) marks the page dirty first, so
 * reclaim does not drop a device write.
 *
 * The entries are cleared with apply_to_existing_page_range() (or, where
 * the kernel does not export it, hmmgpu_compat.h's equivalent) and no
 * nested mmu notifier: zapping through zap_vma_ptes() or
 * unmap_mapping_range() would start an invalidation of the same mm inside
 * this one. Walking the view's page tables from any context (the
 * callback can run in reclaim, holding no mmap_lock of the view's mm)
 * needs them to stay allocated: a second interval notifier, over the view
 * mapping itself (&hmmgpu_view.map_notifier), is told before munmap or
 * exit frees them, and marks the view unmapped under the view lock that
 * the walkers hold. The kernel exports no ranged user TLB flush to
 * modules on x86: hmmgpu_flush_tlb_range() flushes the range on the CPUs
 * that may hold entries where it can, everything everywhere where it
 * cannot (see hmmgpu_compat.h); either only when an entry was actually
 * cleared.
 *
 * Only a device fault enters pages in a mapping the map notifier marked
 * unmapped (after a refused mremap(), its VMA is the one faulted on).
 * hmmgpu_view_populate() does not, and it finds the mapping by looking
 * it up in the mm rather than trusting &hmmgpu_view.map_vma: munmap()
 * takes the VMA out of the tree, then downgrades to the read lock that
 * MIGRATE also takes, tells the map notifier, frees the page tables and
 * only then calls ->close, which forgets the VMA under the view lock.
 * Entries entered in that window would outlive the mapping.
 *
 * Lifetime: a view lives while it is registered or mapped (a reference
 * each). Only the registering process may map it, through the file it
 * was registered on (the mapping keeps that file, and so the
 * &hmmgpu_file the view points to, alive), once at a time; the mapping
 * is VM_DONTCOPY (not inherited across fork), VM_DONTEXPAND, and refuses
 * mremap() and partial munmap()/mprotect(). UNREGISTER or closing the
 * file clears the entries; faults on what remains get SIGBUS, as do
 * faults after the CPU range was unmapped or the device removed.
 */

/**
 * DOC: View locking
 *
 * The fault handler runs with the mmap_lock held for read: the view has
 * no map_pages, so the core retries per-VMA-lock faults under the mmap
 * lock (and pfn_mkwrite likewise). &hmmgpu_view.lock is never held
 * across migrate_vma_setup() or hmm_range_fault(): it is held only to
 * check the notifier sequence and write entries, and the page tables
 * those entries need are allocated before taking it, so nothing under it
 * allocates memory or can enter reclaim (which could call the notifier,
 * which takes it).
 *
 * The one driver lock a fault holds across migration is
 * &hmmgpu_view.fault_lock of its 2 MiB region (hashed), around the
 * block's migration and its density prefetch: device threads fault
 * neighbouring blocks of one region at the same moment, and two
 * migrate_vma_setup() calls on one transparent huge page make each
 * other's split fail (each holds a reference the other's split counts),
 * so both would skip the whole region and leave it in system memory.
 * It is safe because only device faults take it, always under the
 * mmap_lock and holding nothing else, one at a time: no notifier
 * callback, reclaim, CPU fault (migrate_to_ram) or eviction path takes
 * it, so nothing that migrate_vma_setup() or a copy waits for can be
 * waiting for it.
 *
 * Order: &hmmgpu_file.views_lock > mmap_lock > &hmmgpu_view.fault_lock >
 * (mmu notifier invalidation) > &hmmgpu_view.lock > page-table lock.
 *
 * - &hmmgpu_file.views_lock is taken by ioctls and file release only,
 *   never inside a fault or a callback; MIGRATE's hmmgpu_view_populate()
 *   takes the mmap_lock inside it, VIEW_ADVISE a view's lock.
 * - mmap() runs under the mmap_lock and takes the &hmmgpu_file.handles
 *   lock (a spinlock, nothing nests in it) and &hmmgpu_view.lock.
 * - The notifier callbacks take &hmmgpu_view.lock, or only try to when
 *   the caller cannot sleep (the OOM reaper), then retry later; under it
 *   they clear entries (page-table locks) and flush TLBs (IPIs).
 * - view_kill() takes &hmmgpu_view.lock, drops it, then removes the
 *   notifier, which waits for callbacks in flight: never under a lock a
 *   callback takes.
 */

static void view_free(struct kref *ref)
{
	struct hmmgpu_view *view = container_of(ref, struct hmmgpu_view, ref);

	/* view_kill() dropped every read-mostly copy */
	WARN_ON_ONCE(!xa_empty(&view->dups));
	xa_destroy(&view->dups);
	mmdrop(view->mm);
	kfree(view);
}

/*
 * The device TLB flush of view addresses [@vs, @ve): x86 exports no
 * flush_tlb_mm_range() to modules, hmmgpu_compat.h does what it can
 * (only the CPUs that may hold entries, only the range, where the kernel
 * uses no PCIDs).
 */
static void view_flush_tlb(struct hmmgpu_view *view, unsigned long vs,
			   unsigned long ve)
{
	hmmgpu_flush_tlb_range(view->mm, vs, ve);
}

/* The view address of CPU address @addr; view->lock held, mapped. */
static unsigned long view_addr(struct hmmgpu_view *view, unsigned long addr)
{
	return view->map_base + (addr - view->start);
}

/**
 * view_vma_range() - the CPU range a view mapping covers.
 * @view: the view.
 * @vvma: a VMA mapping @view, whole or in part (hmmgpu_mmap() checked
 *	  that its offset and length lie within the view).
 * @lo: out: the CPU address of @vvma's first page.
 * @hi: out: the CPU address after its last page.
 *
 * Every page-table operation on @vvma stays within [@lo, @hi): a device
 * fault's block, its density region and a populated range are clamped
 * to it, since the page tables around @vvma belong to other VMAs.
 */
static void view_vma_range(struct hmmgpu_view *view,
			   struct vm_area_struct *vvma, unsigned long *lo,
			   unsigned long *hi)
{
	*lo = view->start + (((u64)vvma->vm_pgoff << PAGE_SHIFT) -
			     view->offset);
	*hi = *lo + (vvma->vm_end - vvma->vm_start);
}

struct clear_ctx {
	struct mm_struct *mm;
	/* with @pfns: keep entries that already map what the fault wants */
	const unsigned long *pfns;
	const unsigned long *hmm_pfns;
	unsigned long vstart;
	bool vma_write;
	/* entries of system pages only: device pages do not change */
	bool system_only;
	/* out: a present entry was cleared, the TLB needs a flush */
	bool flush;
};

static int clear_pte(pte_t *ptep, unsigned long addr, void *data)
{
	struct clear_ctx *c = data;
	pte_t pte = ptep_get(ptep);
	bool upgrade = false;
	struct folio *folio;

	if (!pte_present(pte))
		return 0;
	if (c->system_only && !is_zero_pfn(pte_pfn(pte)) &&
	    !(pfn_valid(pte_pfn(pte)) &&
	      folio_test_anon(page_folio(pfn_to_page(pte_pfn(pte))))))
		return 0;	/* a backing page: its device page stays */
	if (c->pfns) {
		unsigned long i = (addr - c->vstart) >> PAGE_SHIFT;

		if (pte_pfn(pte) == c->pfns[i]) {
			if (pte_write(pte) || !c->vma_write ||
			    !(c->hmm_pfns[i] & HMM_PFN_WRITE))
				return 0;
			upgrade = true;
		}
	}
	pte = ptep_get_and_clear(c->mm, addr, ptep);
	if (pte_dirty(pte) && pfn_valid(pte_pfn(pte))) {
		folio = page_folio(pfn_to_page(pte_pfn(pte)));
		/*
		 * A system page mapped remotely, anonymous or file (shmem,
		 * memfd): reclaim must keep the device's write, which only
		 * this entry may know of. As zap does, under the page-table
		 * lock (apply_to_*page_range() holds it) while the CPU maps
		 * the page: truncation must unmap it from the CPU first, and
		 * that invalidation waits for the view lock we hold. A
		 * backing page has no mapping and nothing to write back.
		 */
		if (folio_test_anon(folio) || folio_mapping(folio))
			folio_mark_dirty(folio);
	}
	/* A stale read-only entry of the same page is harmless. */
	if (!upgrade)
		c->flush = true;
	return 0;
}

/*
 * Clears the view entries of CPU range [@start, @end), or with
 * @system_only those of system pages only; view->lock held.
 */
static void view_clear(struct hmmgpu_view *view, unsigned long start,
		       unsigned long end, bool system_only)
{
	struct clear_ctx c = { .mm = view->mm, .system_only = system_only };
	unsigned long vs, ve;

	lockdep_assert_held(&view->lock);
	if (!view->mapped)
		return;
	start = max(start, view->start);
	end = min(end, view->end);
	if (start >= end)
		return;
	vs = max(view_addr(view, start), view->map_start);
	ve = min(view_addr(view, end), view->map_end);
	if (vs >= ve)
		return;
	hmmgpu_apply_to_existing_page_range(view->mm, vs, ve - vs, clear_pte,
					    &c);
	if (c.flush)
		view_flush_tlb(view, vs, ve);
}

/*
 * Frees read-mostly copy @page, just taken out of @view->dups; its view
 * entry is cleared and flushed already. view->lock held.
 */
static void dup_release(struct page *page)
{
	struct hmmgpu_dmem *dmem = hmmgpu_page_dmem(page);

	spin_lock(&dmem->lock);
	hmmgpu_dpage(page)->dup_view = NULL;
	spin_unlock(&dmem->lock);
	put_page(page);
}

/*
 * Drops the read-mostly copies of CPU range [@start, @end) (DOC:
 * Read-mostly): their entries are cleared and the device TLB flushed
 * before the pages are freed. view->lock held.
 *
 * Return: the number of copies dropped.
 */
static unsigned long view_drop_dups(struct hmmgpu_view *view,
				    unsigned long start, unsigned long end)
{
	unsigned long first, last, idx, n = 0;
	struct page *page;

	lockdep_assert_held(&view->lock);
	start = max(start, view->start);
	end = min(end, view->end);
	if (start >= end || xa_empty(&view->dups))
		return 0;
	first = (start - view->start) >> PAGE_SHIFT;
	last = ((end - view->start) >> PAGE_SHIFT) - 1;
	idx = first;
	if (!xa_find(&view->dups, &idx, last, XA_PRESENT))
		return 0;
	/* every entry of the range: the copies' are among them */
	view_clear(view, start, end, false);
	xa_for_each_range(&view->dups, idx, page, first, last) {
		xa_erase(&view->dups, idx);
		dup_release(page);
		n++;
	}
	hmmgpu_count_dups(view->hfile->hdev, view->hfile, 0, n);
	return n;
}

static bool view_lock_for(struct hmmgpu_view *view,
			  const struct mmu_notifier_range *range)
{
	if (mmu_notifier_range_blockable(range)) {
		mutex_lock(&view->lock);
		return true;
	}
	return mutex_trylock(&view->lock);
}

/* The CPU range changes: clear the view entries before it does. */
static bool view_invalidate(struct mmu_interval_notifier *mni,
			    const struct mmu_notifier_range *range,
			    unsigned long cur_seq)
{
	struct hmmgpu_view *view = container_of(mni, struct hmmgpu_view,
						notifier);

	bool fill = range->event == MMU_NOTIFY_MIGRATE &&
		    range->owner == &hmmgpu_fill_owner;

	/*
	 * A device fault taking a page device-exclusive: the page stays
	 * where the view maps it (DOC: Device atomics).
	 */
	if (range->event == MMU_NOTIFY_EXCLUSIVE &&
	    range->owner == &hmmgpu_owner)
		return true;
	if (!view_lock_for(view, range))
		return false;
	mmu_interval_set_seq(mni, cur_seq);
	/* our own fetch to a device changes system pages only */
	view_clear(view, range->start, range->end, fill);
	/* the CPU page may change from now on: its copies go */
	view_drop_dups(view, range->start, range->end);
	/* and only adds to the density count; anything else may lower it */
	if (!fill)
		view->inval_gen++;
	mutex_unlock(&view->lock);
	return true;
}

static const struct mmu_interval_notifier_ops hmmgpu_view_notifier_ops = {
	.invalidate = view_invalidate,
};

/*
 * The view mapping itself changes. On munmap() and exit its page tables
 * are about to be freed: stop walking them. Other events (mprotect,
 * madvise of the view) leave the page tables in place.
 */
static bool view_map_invalidate(struct mmu_interval_notifier *mni,
				const struct mmu_notifier_range *range,
				unsigned long cur_seq)
{
	struct hmmgpu_view *view = container_of(mni, struct hmmgpu_view,
						map_notifier);

	if (range->event != MMU_NOTIFY_UNMAP &&
	    range->event != MMU_NOTIFY_RELEASE)
		return true;
	if (!view_lock_for(view, range))
		return false;
	mmu_interval_set_seq(mni, cur_seq);
	/*
	 * Clear now: a refused mremap() moves the page tables away and back
	 * after this, and the view must not keep entries it cannot see.
	 */
	view_clear(view, view->start, view->end, false);
	view->mapped = false;
	mutex_unlock(&view->lock);
	return true;
}

static const struct mmu_interval_notifier_ops hmmgpu_view_map_notifier_ops = {
	.invalidate = view_map_invalidate,
};

/*
 * Is every page of [@start, @end) mapped readable memory that has pages
 * (anonymous, shared, file-backed or hugetlb)?  PFN maps (device memory,
 * views themselves) have no pages for hmm_range_fault() to find.
 */
static bool range_registrable(struct mm_struct *mm, unsigned long start,
			      unsigned long end)
{
	struct vm_area_struct *vma;
	unsigned long addr;

	hmmgpu_mmap_assert_locked(mm);
	for (addr = start; addr < end; addr = vma->vm_end) {
		vma = vma_lookup(mm, addr);
		if (!vma || !(vma->vm_flags & VM_READ) ||
		    (vma->vm_flags & (VM_IO | VM_PFNMAP | VM_MIXEDMAP)))
			return false;
	}
	return true;
}

/**
 * DOC: Accessed-by
 *
 * HMMGPU_ADVICE_ACCESSED_BY is CUDA's cudaMemAdviseSetAccessedBy: the
 * device keeps a mapping of the data wherever it is, so that its
 * accesses do not fault for it, and the advice itself moves nothing.
 * Unlike HMMGPU_ADVICE_REMOTE, which only changes what a device fault
 * does, the driver maps ahead:
 *
 * - when the advice is given, every page of the range that has data is
 *   entered in the view: device pages (of this device) locally, system
 *   pages and pages that cannot move remotely;
 * - a device fault (a page that had no data yet, or an entry an
 *   invalidation cleared) maps the page where it is, as with remote
 *   access: nothing migrates because the device touched it;
 * - every migration of the driver that moves pages of the range (MIGRATE
 *   either way, by any file of the process; CPU fault-back; eviction)
 *   ends by queueing the view's remap work for the range it worked on
 *   (hmmgpu_view_remap()), which enters the pages at their place, under
 *   the mmap lock like a device fault. The migration's invalidation
 *   cleared the old entries first, so no entry ever maps a page that
 *   left; between the two, a device access faults and maps the page
 *   itself, which is what the work would have done. A batch that moved
 *   nothing is remapped too: the core's collection invalidates the
 *   whole batch before anyone knows what will move, so its entries are
 *   gone all the same.
 *
 * The work runs after the migration completed (queued after
 * migrate_vma_finalize()), so the pages it looks for are in place. It
 * holds a reference to the view while queued; ending the registration
 * (or the advice) cancels it, so that it never runs on a dead view or
 * file. Migrations find the accessed-by views through one list
 * (hmmgpu_ab_views), empty unless a process gives the advice: the cost
 * for everyone else is one list_empty() per migration.
 */

static void view_populate(struct hmmgpu_view *view, unsigned long start,
			  unsigned long end);
static void view_free(struct kref *ref);

static DEFINE_SPINLOCK(hmmgpu_ab_lock);
static LIST_HEAD(hmmgpu_ab_views);	/* protected by hmmgpu_ab_lock */

static void view_remap_work(struct work_struct *work)
{
	struct hmmgpu_view *view = container_of(work, struct hmmgpu_view,
						remap_work);
	struct hmmgpu_device *hdev = view->hfile->hdev;
	unsigned long start, end;
	int idx;

	spin_lock(&hmmgpu_ab_lock);
	start = view->remap_start;
	end = view->remap_end;
	view->remap_start = ULONG_MAX;
	view->remap_end = 0;
	spin_unlock(&hmmgpu_ab_lock);

	if (start < end && drm_dev_enter(&hdev->drm, &idx)) {
		if (mmget_not_zero(view->mm)) {
			mmap_read_lock(view->mm);
			view_populate(view, start, end);
			mmap_read_unlock(view->mm);
			mmput(view->mm);
		}
		hmmgpu_count_remap(hdev, view->hfile);
		drm_dev_exit(idx);
	}
	kref_put(&view->ref, view_free);
}

/*
 * Gives or takes HMMGPU_ADVICE_ACCESSED_BY.  Giving it enters every page
 * of the range that has data; taking it clears the entries, as a change
 * of HMMGPU_ADVICE_REMOTE does.  Takes &hmmgpu_view.lock and the mmap
 * lock; never called under either.
 */
static void view_set_accessed_by(struct hmmgpu_view *view, bool on)
{
	bool was;

	mutex_lock(&view->lock);
	was = view->accessed_by;
	view->accessed_by = on;
	if (was != on)
		view_clear(view, view->start, view->end, false);
	mutex_unlock(&view->lock);
	if (was == on)
		return;
	spin_lock(&hmmgpu_ab_lock);
	if (on)
		list_add_tail(&view->ab_node, &hmmgpu_ab_views);
	else
		list_del_init(&view->ab_node);
	spin_unlock(&hmmgpu_ab_lock);
	if (!on) {
		/* queued work holds a reference: drop it with the work */
		if (cancel_work_sync(&view->remap_work))
			kref_put(&view->ref, view_free);
		return;
	}
	if (current->mm == view->mm) {
		mmap_read_lock(view->mm);
		view_populate(view, view->start, view->end);
		mmap_read_unlock(view->mm);
	}
}

/* Does any view want hmmgpu_view_remap()? A hint: read without the lock. */
bool hmmgpu_view_remap_wanted(void)
{
	return !list_empty(&hmmgpu_ab_views);
}

/**
 * hmmgpu_view_remap() - pages of a range moved: re-enter them in the
 * accessed-by views of their process.
 * @mm: the address space of [@start, @end), or NULL to go by @tgid.
 * @tgid: the process, when @mm is NULL (eviction knows only that).
 * @start: page-aligned start of what moved.
 * @end: its end.
 *
 * Context: any that may take a spinlock; called after the migration
 * completed (DOC: Accessed-by).
 */
void hmmgpu_view_remap(struct mm_struct *mm, pid_t tgid, unsigned long start,
		       unsigned long end)
{
	struct hmmgpu_view *view;

	if (!hmmgpu_view_remap_wanted())
		return;
	spin_lock(&hmmgpu_ab_lock);
	list_for_each_entry(view, &hmmgpu_ab_views, ab_node) {
		if ((mm ? view->mm != mm : view->tgid != tgid) ||
		    start >= view->end || end <= view->start)
			continue;
		view->remap_start = min(view->remap_start,
					max(start, view->start));
		view->remap_end = max(view->remap_end, min(end, view->end));
		kref_get(&view->ref);
		if (!queue_work(hmmgpu_unbound_wq, &view->remap_work))
			kref_put(&view->ref, view_free);
	}
	spin_unlock(&hmmgpu_ab_lock);
}

/**
 * hmmgpu_view_register() - VIEW_REGISTER.
 * @hfile: the caller's file.
 * @args: the ioctl arguments; @handle and @offset are filled.
 *
 * Return: 0; -EINVAL for bad arguments or a range that is not mapped,
 * readable memory with pages (range_registrable()); -ENOSPC when @hfile holds
 * HMMGPU_VIEWS_PER_FILE views; -ENOMEM;
 * -EOPNOTSUPP where the device TLB cannot be flushed (hmmgpu_compat.h).
 */
int hmmgpu_view_register(struct hmmgpu_file *hfile,
			 struct drm_hmmgpu_view_register *args)
{
	struct mm_struct *mm = current->mm;
	struct hmmgpu_view *view;
	bool ok;
	u32 handle;
	int ret, i;

	if (args->flags || args->extensions || !args->size ||
	    !PAGE_ALIGNED(args->start) || !PAGE_ALIGNED(args->size) ||
	    args->start + args->size < args->start ||
	    args->start + args->size > TASK_SIZE ||
	    args->size >= HMMGPU_VIEW_MAX_SIZE)
		return -EINVAL;
	/* see hmmgpu_compat.h: no way to flush the device TLB here */
	if (!hmmgpu_can_flush_tlb())
		return -EOPNOTSUPP;

	mmap_read_lock(mm);
	ok = range_registrable(mm, args->start, args->start + args->size);
	mmap_read_unlock(mm);
	if (!ok)
		return -EINVAL;

	/* charged to the caller's memory cgroup, like the rest it pins */
	view = kzalloc(sizeof(*view), GFP_KERNEL_ACCOUNT);
	if (!view)
		return -ENOMEM;
	kref_init(&view->ref);
	mutex_init(&view->lock);
	xa_init(&view->dups);
	INIT_LIST_HEAD(&view->ab_node);
	INIT_WORK(&view->remap_work, view_remap_work);
	view->remap_start = ULONG_MAX;
	for (i = 0; i < HMMGPU_VIEW_FAULT_LOCKS; i++)
		mutex_init(&view->fault_lock[i]);
	view->hfile = hfile;
	view->mm = mm;
	view->tgid = task_tgid_nr(current);
	mmgrab(mm);
	view->start = args->start;
	view->end = args->start + args->size;
	view->granularity = (unsigned long)hmmgpu_view_fault_kib << 10;

	ret = mmu_interval_notifier_insert(&view->notifier, mm, view->start,
					   args->size,
					   &hmmgpu_view_notifier_ops);
	if (ret)
		goto err_put;

	ret = xa_alloc(&hfile->handles, &handle, view,
		       XA_LIMIT(1, HMMGPU_VIEW_MAX_HANDLE), GFP_KERNEL_ACCOUNT);
	if (ret) {
		ret = ret == -EBUSY ? -ENOSPC : ret;
		goto err_remove_notifier;
	}
	view->handle = handle;
	view->offset = (u64)handle << HMMGPU_VIEW_OFFSET_SHIFT;
	args->handle = handle;
	args->offset = view->offset;

	/*
	 * Listed, the view is another thread's to unregister and free (it
	 * may guess the handle): nothing of it is read after this.
	 */
	mutex_lock(&hfile->views_lock);
	list_add_tail(&view->node, &hfile->views);
	mutex_unlock(&hfile->views_lock);
	return 0;

err_remove_notifier:
	mmu_interval_notifier_remove(&view->notifier);
err_put:
	kref_put(&view->ref, view_free);
	return ret;
}

/*
 * Enters or takes @view's range in its file's preferred ranges.
 * @view->lock held.
 */
static void view_set_preferred(struct hmmgpu_view *view, bool preferred)
{
	struct hmmgpu_file *hfile = view->hfile;
	int idx;

	lockdep_assert_held(&view->lock);
	if (view->preferred == preferred)
		return;
	spin_lock(&hfile->pref_lock);
	if (preferred) {
		view->pref_node.start = view->start;
		view->pref_node.last = view->end - 1;
		interval_tree_insert(&view->pref_node, &hfile->pref_tree);
	} else {
		interval_tree_remove(&view->pref_node, &hfile->pref_tree);
	}
	spin_unlock(&hfile->pref_lock);
	view->preferred = preferred;
	/*
	 * What came under the advice is ordinary data from now on. After a
	 * removal (a file closed after unbind) the device memory is gone,
	 * and with it every mark.
	 */
	if (!preferred && drm_dev_enter(&hfile->hdev->drm, &idx)) {
		hmmgpu_dmem_forget_preferred(&hfile->hdev->dmem, view->tgid,
					     view->start, view->end);
		drm_dev_exit(idx);
	}
}

/**
 * hmmgpu_file_preferred() - is a range preferred on @hfile's device?
 * @hfile: the file a migration to its device is charged to.
 * @mm: the address space of the range.
 * @start: start of the range.
 * @end: its end.
 *
 * Return: true when a view of @hfile in @mm with HMMGPU_ADVICE_PREFERRED
 * covers a part of [@start, @end).
 *
 * Context: any; takes &hmmgpu_file.pref_lock.
 */
bool hmmgpu_file_preferred(struct hmmgpu_file *hfile, struct mm_struct *mm,
			   unsigned long start, unsigned long end)
{
	struct interval_tree_node *node;
	bool found = false;

	if (RB_EMPTY_ROOT(&hfile->pref_tree.rb_root))
		return false;
	spin_lock(&hfile->pref_lock);
	for (node = interval_tree_iter_first(&hfile->pref_tree, start,
					     end - 1);
	     node && !found;
	     node = interval_tree_iter_next(node, start, end - 1))
		found = container_of(node, struct hmmgpu_view,
				     pref_node)->mm == mm;
	spin_unlock(&hfile->pref_lock);
	return found;
}

/* Ends a registration; @view is off the file's list already. */
static void view_kill(struct hmmgpu_view *view)
{
	view_set_accessed_by(view, false);
	mutex_lock(&view->lock);
	view_set_preferred(view, false);
	view->dead = true;
	view_clear(view, view->start, view->end, false);
	view_drop_dups(view, view->start, view->end);
	mutex_unlock(&view->lock);
	xa_erase(&view->hfile->handles, view->handle);
	mmu_interval_notifier_remove(&view->notifier);
	kref_put(&view->ref, view_free);
}

/* Takes @handle's view off @hfile's list; NULL if @hfile has none. */
static struct hmmgpu_view *view_take(struct hmmgpu_file *hfile, u32 handle)
{
	struct hmmgpu_view *view;

	mutex_lock(&hfile->views_lock);
	list_for_each_entry(view, &hfile->views, node) {
		if (view->handle == handle) {
			list_del(&view->node);
			mutex_unlock(&hfile->views_lock);
			return view;
		}
	}
	mutex_unlock(&hfile->views_lock);
	return NULL;
}

/**
 * hmmgpu_view_unregister() - VIEW_UNREGISTER.
 * @hfile: the caller's file.
 * @handle: the view.
 *
 * Return: 0, or -ENOENT when @hfile registered no such view.
 */
int hmmgpu_view_unregister(struct hmmgpu_file *hfile, u32 handle)
{
	struct hmmgpu_view *view = view_take(hfile, handle);

	if (!view)
		return -ENOENT;
	view_kill(view);
	return 0;
}

/**
 * hmmgpu_view_release_all() - end every registration of a closing file.
 * @hfile: the file.
 */
void hmmgpu_view_release_all(struct hmmgpu_file *hfile)
{
	struct hmmgpu_view *view;

	for (;;) {
		mutex_lock(&hfile->views_lock);
		view = list_first_entry_or_null(&hfile->views,
						struct hmmgpu_view, node);
		if (view)
			list_del(&view->node);
		mutex_unlock(&hfile->views_lock);
		if (!view)
			break;
		view_kill(view);
	}
}

/**
 * hmmgpu_view_advise() - VIEW_ADVISE.
 * @hfile: the caller's file.
 * @args: the ioctl arguments.
 *
 * Return: 0; -EINVAL for a bad advice or value; -ENOENT for a view
 * @hfile did not register.
 */
int hmmgpu_view_advise(struct hmmgpu_file *hfile,
		       struct drm_hmmgpu_view_advise *args)
{
	struct hmmgpu_view *view, *found = NULL;

	switch (args->advice) {
	case HMMGPU_ADVICE_GRANULARITY:
		if (args->value < PAGE_SIZE || args->value > SZ_2M ||
		    !is_power_of_2(args->value))
			return -EINVAL;
		break;
	case HMMGPU_ADVICE_REMOTE:
	case HMMGPU_ADVICE_PREFERRED:
	case HMMGPU_ADVICE_ACCESSED_BY:
	case HMMGPU_ADVICE_READ_MOSTLY:
		if (args->value > 1)
			return -EINVAL;
		break;
	case HMMGPU_ADVICE_ATOMIC:
		if (args->value > HMMGPU_ATOMIC_CPU)
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}

	mutex_lock(&hfile->views_lock);
	list_for_each_entry(view, &hfile->views, node) {
		if (view->handle == args->handle) {
			found = view;
			break;
		}
	}
	if (found && args->advice == HMMGPU_ADVICE_ACCESSED_BY) {
		view_set_accessed_by(found, args->value);
		goto out;
	}
	if (found) {
		mutex_lock(&found->lock);
		if (args->advice == HMMGPU_ADVICE_PREFERRED) {
			/* where pages go, not how the view maps them */
			view_set_preferred(found, args->value);
			mutex_unlock(&found->lock);
			goto out;
		}
		if (args->advice == HMMGPU_ADVICE_GRANULARITY)
			found->granularity = args->value;
		else if (args->advice == HMMGPU_ADVICE_ATOMIC)
			found->atomic = args->value;
		else if (args->advice == HMMGPU_ADVICE_READ_MOSTLY)
			found->read_mostly = args->value;
		else
			found->remote = args->value;
		/* Entries made under the old advice go: the next access obeys. */
		view_clear(found, found->start, found->end, false);
		if (!found->read_mostly)
			view_drop_dups(found, found->start, found->end);
		mutex_unlock(&found->lock);
	}
out:
	mutex_unlock(&hfile->views_lock);
	return found ? 0 : -ENOENT;
}

static int noop_pte(pte_t *pte, unsigned long addr, void *data)
{
	return 0;
}

/*
 * The CPU faults @addr for write with a pagemap owner that is not ours,
 * so a device page comes back to system memory and copy-on-write is
 * broken there. The device access then faults again and migrates the
 * page, now private to this process, back.
 */
static vm_fault_t break_cow(struct hmmgpu_view *view, unsigned long addr)
{
	unsigned long pfn;
	struct hmm_range range = {
		.notifier = &view->notifier,
		.start = addr,
		.end = addr + PAGE_SIZE,
		.hmm_pfns = &pfn,
		.default_flags = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
		.dev_private_owner = NULL,
	};
	int err;

	for (;;) {
		range.notifier_seq = mmu_interval_read_begin(&view->notifier);
		err = hmm_range_fault(&range);
		if (err != -EBUSY)
			break;
		/* see view_map(): let whoever changes the range finish */
		if (fatal_signal_pending(current))
			return VM_FAULT_SIGBUS;
		cond_resched();
	}
	return err ? VM_FAULT_SIGBUS : VM_FAULT_NOPAGE;
}

/* Does hmm_range_fault() output @hmm_pfns hold pages of another device? */
static bool peer_pages(struct hmmgpu_view *view,
		       const unsigned long *hmm_pfns, unsigned long npages)
{
	struct hmmgpu_dmem *dmem = &view->hfile->hdev->dmem;
	unsigned long i;

	for (i = 0; i < npages; i++) {
		struct page *page;

		if (!(hmm_pfns[i] & HMM_PFN_VALID))
			continue;
		page = hmm_pfn_to_page(hmm_pfns[i]);
		if (hmmgpu_is_hmmgpu_page(page) &&
		    hmmgpu_page_dmem(page) != dmem)
			return true;
	}
	return false;
}

/* How view_map() finds the pages it enters. */
enum view_map_mode {
	/* fault in what is missing (a device fault) */
	VIEW_MAP_FAULT,
	/* only what is present now, the rest is left alone (populate) */
	VIEW_MAP_PRESENT,
	/*
	 * only what is present now, and every page must be (writable at
	 * @write_addr), else the device fault is fatal: where faulting in
	 * would need a userfaultfd handler
	 */
	VIEW_MAP_PRESENT_ONLY,
};

/*
 * Maps CPU range [@start, @end) into view VMA @vvma. @write_addr is the
 * CPU address of a write access (it must be writable), or 0. @mode says
 * whether missing pages are faulted in. With @cvma, the CPU VMA of the
 * range, pages found on another hmmgpu device are migrated here first
 * (once), as a device fault of a GPU pulls pages from its peers.
 */
static vm_fault_t view_map(struct hmmgpu_view *view,
			   struct vm_area_struct *vvma,
			   struct vm_area_struct *cvma, unsigned long start,
			   unsigned long end, unsigned long write_addr,
			   enum view_map_mode mode)
{
	bool fault = mode == VIEW_MAP_FAULT;
	unsigned long npages = (end - start) >> PAGE_SHIFT, i;
	unsigned long vstart = vvma->vm_start +
			       (view->offset + (start - view->start) -
				((u64)vvma->vm_pgoff << PAGE_SHIFT));
	struct hmm_range range = {
		.notifier = &view->notifier,
		.start = start,
		.end = end,
		.default_flags = fault ? HMM_PFN_REQ_FAULT : 0,
		.pfn_flags_mask = fault ? HMM_PFN_REQ_WRITE : 0,
		.dev_private_owner = &hmmgpu_owner,
	};
	bool vma_write = vvma->vm_flags & VM_WRITE;
	pgprot_t rw = vm_get_page_prot(vvma->vm_flags);
	/*
	 * A writable mapping is readable (x86 has no write-only entries):
	 * the read-only entry of a PROT_WRITE-only view must still allow
	 * reads. Without VM_READ it would allow nothing, and the core takes
	 * a fault on such an entry for a spurious one: the access would
	 * fault forever.
	 */
	pgprot_t ro = vm_get_page_prot((vvma->vm_flags & ~VM_WRITE) |
				       (vma_write ? VM_READ : 0));
	vm_fault_t ret = VM_FAULT_NOPAGE;
	unsigned long *hmm_pfns, *pfns, vlo, vhi;
	struct clear_ctx c;
	int err;

	/* the callers clamp: nothing outside @vvma is ours to touch */
	view_vma_range(view, vvma, &vlo, &vhi);
	if (WARN_ON_ONCE(start < vlo || end > vhi || start >= end))
		return VM_FAULT_SIGBUS;

	hmm_pfns = kvmalloc_array(npages, 2 * sizeof(*hmm_pfns), GFP_KERNEL);
	if (!hmm_pfns)
		return VM_FAULT_OOM;
	pfns = hmm_pfns + npages;

	/* The page tables the entries need, allocated outside the lock. */
	err = apply_to_page_range(vvma->vm_mm, vstart, end - start, noop_pte,
				  NULL);
	if (err) {
		ret = vmf_error(err);
		goto out_free;
	}

again:
	/*
	 * The range changed under us: read it again. Not by returning to let
	 * the access fault again: an access from the kernel (copy_from_user()
	 * of an ioctl's arguments in a view) would retry at once, in a loop
	 * with no preemption point. Whoever changes the range gets the CPU
	 * here instead; a dying process stops (its access fails).
	 */
	if (fatal_signal_pending(current)) {
		ret = VM_FAULT_SIGBUS;
		goto out_free;
	}
	cond_resched();
	for (i = 0; i < npages; i++)
		hmm_pfns[i] = 0;
	if (write_addr)
		hmm_pfns[(write_addr - start) >> PAGE_SHIFT] = HMM_PFN_REQ_WRITE;
	range.hmm_pfns = hmm_pfns;
	range.notifier_seq = mmu_interval_read_begin(&view->notifier);
	err = hmm_range_fault(&range);
	if (err == -EBUSY)
		goto again;
	if (err) {
		ret = err == -ENOMEM ? VM_FAULT_OOM : VM_FAULT_SIGBUS;
		goto out_free;
	}
	if (mode == VIEW_MAP_PRESENT_ONLY) {
		for (i = 0; i < npages; i++) {
			if ((hmm_pfns[i] & HMM_PFN_VALID) &&
			    !(hmm_pfns[i] & HMM_PFN_ERROR))
				continue;
			ret = VM_FAULT_SIGBUS;
			goto out_free;
		}
		if (write_addr && !(hmm_pfns[(write_addr - start) >>
					     PAGE_SHIFT] & HMM_PFN_WRITE)) {
			ret = VM_FAULT_SIGBUS;
			goto out_free;
		}
	}
	if (cvma && peer_pages(view, hmm_pfns, npages)) {
		struct hmmgpu_migrate_result res = { 0 };

		hmmgpu_migrate_block(view->hfile, cvma, start, end,
				     HMMGPU_CAUSE_PEER, &res);
		cvma = NULL;
		goto again;
	}
	if (write_addr &&
	    !(hmm_pfns[(write_addr - start) >> PAGE_SHIFT] & HMM_PFN_WRITE)) {
		/* a device page the CPU maps read-only in a writable VMA */
		ret = break_cow(view, write_addr);
		goto out_free;
	}
	for (i = 0; i < npages; i++) {
		struct page *page;

		pfns[i] = -1UL;
		if (!(hmm_pfns[i] & HMM_PFN_VALID) ||
		    (hmm_pfns[i] & HMM_PFN_ERROR))
			continue;
		page = hmmgpu_hmm_pfn_to_page(hmm_pfns[i],
					      start + (i << PAGE_SHIFT));
		pfns[i] = page_to_pfn(hmmgpu_is_hmmgpu_page(page) ?
				      hmmgpu_backing_page(page) : page);
	}

	mutex_lock(&view->lock);
	if (view->dead || vvma != view->map_vma) {
		/* unregistered meanwhile, or a VMA that is not the view's */
		mutex_unlock(&view->lock);
		ret = VM_FAULT_SIGBUS;
		goto out_free;
	}
	if (mmu_interval_read_retry(&view->notifier, range.notifier_seq)) {
		mutex_unlock(&view->lock);
		goto again;
	}
	if (!view->mapped) {
		/*
		 * Only a device fault maps again, after a refused mremap()
		 * cleared the entries: its VMA is the live one the fault was
		 * taken on. Not hmmgpu_view_populate(): the map notifier may
		 * have seen this mapping go (a munmap() past its point of no
		 * return), and entries now would outlive it.
		 */
		if (!fault) {
			mutex_unlock(&view->lock);
			goto out_free;
		}
		view->mapped = true;
		view->map_start = vvma->vm_start;
		view->map_end = vvma->vm_end;
		view->map_base = vstart - (start - view->start);
	}
	/*
	 * Entries that map another page, or the same page read-only where
	 * it may now be written, go first: vmf_insert_pfn_prot() does not
	 * replace entries.
	 */
	c = (struct clear_ctx) {
		.mm = vvma->vm_mm,
		.pfns = pfns,
		.hmm_pfns = hmm_pfns,
		.vstart = vstart,
		.vma_write = vma_write,
	};
	hmmgpu_apply_to_existing_page_range(vvma->vm_mm, vstart, end - start,
					    clear_pte, &c);
	if (c.flush)
		view_flush_tlb(view, vstart, vstart + (end - start));
	for (i = 0; i < npages; i++) {
		bool w = vma_write && (hmm_pfns[i] & HMM_PFN_WRITE);

		if (pfns[i] == -1UL)
			continue;
		vmf_insert_pfn_prot(vvma, vstart + (i << PAGE_SHIFT), pfns[i],
				    w ? rw : ro);
	}
	mutex_unlock(&view->lock);
out_free:
	kvfree(hmm_pfns);
	return ret;
}

/**
 * DOC: Device atomics
 *
 * HMMGPU_ADVICE_ATOMIC sets a view's atomic-access policy (Xe's names).
 * With HMMGPU_ATOMIC_DEVICE, a device fault that maps a system page of
 * private anonymous writable memory remotely then takes that page
 * device-exclusive, as a GPU without system-scope atomics must before it
 * operates on host memory: make_device_exclusive() (a range function
 * before Linux 6.15, hmmgpu_compat.h) replaces the CPU's entry with a
 * device-exclusive one, so that a CPU access faults, restores the entry
 * and invalidates the range first (which clears the view's entry), and
 * the next device access faults and takes the page again. mprotect()
 * and fork() restore or protect such entries through the same
 * invalidations (hmm-tests exclusive_mprotect, exclusive_cow).
 *
 * The view's entry is made first, by view_map(), and the page is taken
 * after it, every system page of the block the fault mapped
 * (view_take_exclusive()): the invalidation
 * make_device_exclusive() starts carries hmmgpu's pgmap owner, and the
 * view notifier lets exactly that event through without clearing
 * anything, since the page stays where the view maps it. Any other
 * invalidation between the two clears the entry as usual; the exclusive
 * entry then stands alone until a CPU access restores it or the next
 * device fault maps the page again. Only pages present in system memory
 * are taken (a device page is the device's already, and taking it would
 * bring it back; a page taken already is not present), and a page that
 * cannot be taken (shared, file-backed) stays mapped as it is.
 *
 * With HMMGPU_ATOMIC_GLOBAL device faults map pages where they are and
 * never migrate: CPU and device atomics then work on one copy in system
 * memory (device pages already there stay mapped there).
 */

/*
 * HMMGPU_ATOMIC_DEVICE: takes the system pages of [@start, @end), just
 * entered in @view, device-exclusive (DOC: Device atomics). Pages that
 * are not present in system memory now (device pages, pages taken
 * already, holes) are left alone. mmap_lock held.
 */
static void view_take_exclusive(struct hmmgpu_view *view, unsigned long start,
				unsigned long end)
{
	unsigned long npages = (end - start) >> PAGE_SHIFT, i;
	struct hmm_range range = {
		.notifier = &view->notifier,
		.start = start,
		.end = end,
		.dev_private_owner = &hmmgpu_owner,
	};
	unsigned long *hpfns;
	int tries = 0, err;

	hpfns = kvcalloc(npages, sizeof(*hpfns), GFP_KERNEL);
	if (!hpfns)
		return;
	range.hmm_pfns = hpfns;
	do {
		range.notifier_seq = mmu_interval_read_begin(&view->notifier);
		err = hmm_range_fault(&range);
	} while (err == -EBUSY && ++tries < HMMGPU_RETRIES);
	for (i = 0; !err && i < npages; i++) {
		struct page *page;

		if (!(hpfns[i] & HMM_PFN_VALID) || (hpfns[i] & HMM_PFN_ERROR))
			continue;
		page = hmm_pfn_to_page(hpfns[i]);
		if (is_zone_device_page(page) || !PageAnon(page))
			continue;
		page = hmmgpu_make_device_exclusive(view->mm,
						    start + (i << PAGE_SHIFT),
						    &hmmgpu_owner);
		if (page)
			hmmgpu_device_exclusive_done(page);
	}
	kvfree(hpfns);
}

/**
 * DOC: Read-mostly
 *
 * HMMGPU_ADVICE_READ_MOSTLY is CUDA's cudaMemAdviseSetReadMostly: a device
 * read gets a copy of the page in device memory while the CPU keeps its
 * page mapped and readable, so that both read at full speed and neither
 * faults; any write collapses the copies before it completes.
 *
 * The copies (*duplicates*) are device pages taken from the device's
 * memory like a migration's destination (hmmgpu_dmem_alloc()), filled
 * with a copy of the system page, kept in &hmmgpu_view.dups by CPU page
 * and entered read-only in the view (their backing pages, as for any
 * device page). No CPU page table maps them: the CPU's page stays where
 * it is, which is what makes them copies rather than a migration.
 *
 * Correctness. The copy of a page may exist only while the page cannot
 * change without an invalidation of the view's range first, because the
 * invalidation (view_invalidate()) is the only event the driver hears of.
 * The kernel sends none when the CPU writes through a writable present
 * PTE, nor when do_wp_page() reuses an exclusive anonymous page for a
 * write fault in a VM_WRITE mapping (wp_page_reuse()): copies of pages
 * the CPU may write could go stale without the driver knowing. So a
 * device read fault copies a page only when, under the mmap lock it holds
 * and checked against the notifier sequence (mmu_interval_read_begin()
 * before hmm_range_fault(), mmu_interval_read_retry() under the view lock
 * before the copy is entered, as every view fault does):
 *
 * - the CPU VMA has no VM_SHARED/VM_MAYSHARE, is not hugetlb, is armed
 *   with userfaultfd for write protection only if at all (a handler of
 *   missing pages would have to provide them, and a device cannot wait
 *   for one), and either
 *
 *   - has no VM_WRITE: a CPU write must first make the mapping writable
 *     with mprotect(), which runs change_protection() and invalidates the
 *     range (MMU_NOTIFY_PROTECTION_VMA) before any PTE becomes writable;
 *   - or is armed for write protection (VM_UFFD_WP), and the entry that
 *     maps the page is present, not writable and marked uffd-wp
 *     (hmmgpu_uffd_wp_pfn(), read after hmm_range_fault() and before the
 *     sequence check). See "Writable memory" below;
 * - the page is a private anonymous page (PageAnon()): it is reached only
 *   through the page tables of this range, or read-only through another
 *   process's after fork() (where a write copies it, leaving ours
 *   alone). File pages (write() changes the page cache under a read-only
 *   mapping) and the zero page are mapped remotely instead;
 * - the page is not pinned for DMA (folio_maybe_dma_pinned()): a pin taken
 *   for writing while the mapping was writable (io_uring fixed buffers,
 *   RDMA, vfio) writes with no fault and no invalidation.
 *
 * Writable memory. libhmm arms read-mostly memory with userfaultfd write
 * protection and lifts it page by page when the CPU writes (its handler
 * thread), so that applications need no mprotect(). Proof that a copy made
 * under the second rule cannot go stale: at the sequence check the entry
 * was present, not writable and marked, and no invalidation of the page
 * has come since the sequence was taken (else the check fails). The CPU
 * writes a page only through a writable entry. An entry marked uffd-wp
 * becomes writable, or loses its mark, only by
 *
 * - a write fault, which do_wp_page() hands to the handler
 *   (handle_userfault()) because the mark is there, and the handler's
 *   UFFDIO_WRITEPROTECT (or the unregistration, or the release of the
 *   userfaultfd, both of which lift the protection of the whole range
 *   with uffd_wp_range()) runs change_protection(), which invalidates;
 * - mprotect(): change_protection() invalidates first, and
 *   can_change_pte_writable() refuses marked entries anyway;
 * - the entry going away or being replaced (munmap(), madvise(), swap,
 *   migration, fork()'s copy-on-write, THP split and collapse), all of
 *   which invalidate first; a page faulted in afresh is a new page.
 *
 * Every path invalidates before the write can happen, and the callback
 * drops the copy before it returns. Not covered: userfaultfd's
 * asynchronous write protection (UFFD_FEATURE_WP_ASYNC, 6.7), where the
 * kernel itself clears the mark on a write fault without an invalidation.
 * Only a userfaultfd the process opened itself and registered on this
 * range can be in that mode (a range has one userfaultfd; libhmm's is
 * synchronous, and registering another on an armed range fails), so only
 * a process that arms its own read-mostly memory that way reads stale
 * copies of its own data; the driver cannot see the mode.
 *
 * A device write to a marked page would fail, since hmm_range_fault()
 * cannot wait for the handler. view_uffd_write() has fixup_user_fault()
 * make the write fault instead (it can drop the mmap lock and wait), so
 * the handler lifts the protection, then has the access retried; such a
 * write maps the page where it is rather than migrating it.
 *
 * Every other way to change the page or its mapping goes through the
 * notifier: mprotect() to writable, munmap(), mremap(), madvise()
 * (DONTNEED, FREE, PAGEOUT), fork() (which write-protects, and whose
 * later copy-on-write copies invalidate), migration (NUMA, compaction,
 * hmmgpu's own, to any device), reclaim and swap, KSM, THP collapse and
 * split, exit. The callback drops the copies of the range (view_drop_dups():
 * the view's entries first, then a TLB flush, then the pages are freed)
 * before it returns, i.e. before the change is made. The copies are clean,
 * so dropping them costs nothing; the next device read faults and copies
 * again if the rule still allows it, else falls back to the behaviour
 * without the advice (migration, or remote mapping per the other advices).
 *
 * A device write to a copy faults (the view maps copies read-only), and
 * the fault drops the page's copy before anything else. As without the
 * advice, the write then needs a writable CPU mapping (else SIGBUS) and,
 * for a marked page, the handler's leave (above).
 *
 * Holes, known and accepted: a FOLL_FORCE write (ptrace(PTRACE_POKEDATA),
 * writes to /proc/PID/mem) into an exclusive anonymous page of a
 * read-only private mapping is allowed by can_follow_write_pte() without
 * a fault, so without an invalidation: a debugger's write is not seen by
 * the device until the copies are dropped for another reason. A page
 * pinned for DMA *after* the copy was made cannot be written through the
 * pin (pinning for write needs a writable mapping, or FOLL_FORCE: the
 * same hole). Pages under userfaultfd write protection are not exposed
 * to it: can_follow_write_pte() refuses marked entries.
 *
 * Lifetime: the copies belong to the view. Unregistering, closing the
 * file, the end of the process (its mm's release invalidates everything)
 * and @value 0 drop them; the view mapping going away only clears their
 * entries. Eviction and device removal drop the copies of a block before
 * migrating the rest (hmmgpu_dup_drop_range()): &hmmgpu_dpage.dup_view
 * names the owner, under &hmmgpu_dmem.lock, and holds while the copy is
 * in &hmmgpu_view.dups, since view_kill() drops every copy before it lets
 * the view go. Eviction never migrates a copy (skip_dups()).
 *
 * Locking: copies are entered, looked up for reuse and dropped under
 * &hmmgpu_view.lock; dup_view is written under &hmmgpu_dmem.lock too.
 * Eviction takes a view's lock to drop its copies (evict_lock > view
 * lock, as for the invalidations its migrations start) and frees device
 * pages under it (view lock > &hmmgpu_dmem.lock). Device pages are taken,
 * and evicted for, with no view lock held; the xarray entry is stored
 * with GFP_NOWAIT under the view lock (on failure the page is mapped
 * remotely instead), since nothing under that lock may enter reclaim.
 */

/*
 * Takes room for @want copies into @pool (unlocked, one reference each),
 * evicting for them if the device is full. Return: how many it got.
 */
static unsigned long dup_alloc(struct hmmgpu_file *hfile, struct page **pool,
			       unsigned long want, u64 epoch)
{
	struct hmmgpu_dmem *dmem = &hfile->hdev->dmem;
	struct hmmgpu_evict_for who = { .epoch = epoch };
	unsigned long got, i;

	got = hmmgpu_dmem_alloc(dmem, pool, want, epoch);
	if (got < want)
		got += hmmgpu_dmem_alloc_evicting(dmem, pool + got, want - got,
						  hfile, &who);
	for (i = 0; i < got; i++)
		unlock_page(pool[i]);
	return got;
}

/* Copies system page @src to the backing page of device page @dst. */
static bool dup_fill(struct page *dst, struct page *src)
{
	struct folio *folio = page_folio(src);

	/*
	 * A reference for the copy: the page may be migrated or reclaimed
	 * meanwhile (which the sequence check then sees). A folio freed and
	 * reused since is copied for nothing, never entered.
	 */
	if (!folio_try_get(folio))
		return false;
	if (page_folio(src) == folio)
		copy_highpage(hmmgpu_backing_page(dst), src);
	folio_put(folio);
	return true;
}

/*
 * Can page @page, which hmm_range_fault() found at @addr with flags
 * @hmm_pfn, be copied (DOC: Read-mostly)?  @wp: the CPU VMA may be
 * writable, and only a page userfaultfd write-protects may be.
 */
static bool dup_eligible(struct mm_struct *mm, unsigned long addr,
			 unsigned long hmm_pfn, struct page *page, bool wp)
{
	if (is_zone_device_page(page) || !PageAnon(page) ||
	    folio_maybe_dma_pinned(page_folio(page)))
		return false;
	return !wp || (!(hmm_pfn & HMM_PFN_WRITE) &&
		       hmmgpu_uffd_wp_pfn(mm, addr) == page_to_pfn(page));
}

/**
 * view_map_dups() - a device read fault in a read-mostly view.
 * @view: the view.
 * @vvma: the view mapping faulted on.
 * @start: start of the CPU block, within @vvma's part of the view and
 *	   within one CPU VMA that dup_vma_ok() accepted.
 * @end: its end.
 * @wp: the CPU VMA is armed with userfaultfd write protection: each page
 *	is checked for it (dup_eligible()).
 *
 * Maps the block read-only: eligible system pages through a copy in
 * device memory (an existing one or a new one), everything else where
 * it is, as a remote mapping would. Nothing migrates.
 *
 * Context: mmap_lock held for read (a device fault).
 * Return: VM_FAULT_NOPAGE, or an error for the faulting access.
 */
static vm_fault_t view_map_dups(struct hmmgpu_view *view,
				struct vm_area_struct *vvma,
				unsigned long start, unsigned long end, bool wp)
{
	struct hmmgpu_file *hfile = view->hfile;
	struct hmmgpu_dmem *dmem = &hfile->hdev->dmem;
	unsigned long npages = (end - start) >> PAGE_SHIFT, i, k, want, got;
	unsigned long idx0 = (start - view->start) >> PAGE_SHIFT, made = 0;
	unsigned long vstart = vvma->vm_start +
			       (view->offset + (start - view->start) -
				((u64)vvma->vm_pgoff << PAGE_SHIFT));
	struct hmm_range range = {
		.notifier = &view->notifier,
		.start = start,
		.end = end,
		.default_flags = HMM_PFN_REQ_FAULT,
		.dev_private_owner = &hmmgpu_owner,
	};
	bool vma_write = vvma->vm_flags & VM_WRITE;
	/* readable even in a PROT_WRITE-only view: see view_map() */
	pgprot_t ro = vm_get_page_prot((vvma->vm_flags & ~VM_WRITE) |
				       (vma_write ? VM_READ : 0));
	u64 epoch = hmmgpu_next_epoch();
	vm_fault_t ret = VM_FAULT_NOPAGE;
	unsigned long *hmm_pfns, *pfns;
	struct page **src, **fresh, **pool;
	struct clear_ctx c;
	int err;

	hmm_pfns = kvcalloc(npages, 5 * sizeof(*hmm_pfns), GFP_KERNEL);
	if (!hmm_pfns)
		return VM_FAULT_OOM;
	pfns = hmm_pfns + npages;
	src = (struct page **)(pfns + npages);
	fresh = src + npages;	/* taken, not yet entered: kept across retries */
	pool = fresh + npages;

	err = apply_to_page_range(vvma->vm_mm, vstart, end - start, noop_pte,
				  NULL);
	if (err) {
		ret = vmf_error(err);
		goto out_free;
	}

again:
	/* as in view_map(): whoever changes the range gets the CPU */
	if (fatal_signal_pending(current)) {
		ret = VM_FAULT_SIGBUS;
		goto out_free;
	}
	cond_resched();
	memset(hmm_pfns, 0, npages * sizeof(*hmm_pfns));
	range.hmm_pfns = hmm_pfns;
	range.notifier_seq = mmu_interval_read_begin(&view->notifier);
	err = hmm_range_fault(&range);
	if (err == -EBUSY)
		goto again;
	if (err) {
		ret = err == -ENOMEM ? VM_FAULT_OOM : VM_FAULT_SIGBUS;
		goto out_free;
	}

	/* the pages to copy, and room for those that have no copy yet */
	want = 0;
	for (i = 0; i < npages; i++) {
		struct page *page;

		src[i] = NULL;
		if (!(hmm_pfns[i] & HMM_PFN_VALID) ||
		    (hmm_pfns[i] & HMM_PFN_ERROR))
			continue;
		page = hmmgpu_hmm_pfn_to_page(hmm_pfns[i],
					      start + (i << PAGE_SHIFT));
		/* a copy there already: checked again under the lock */
		if (!dup_eligible(view->mm, start + (i << PAGE_SHIFT),
				  hmm_pfns[i], page, wp) ||
		    xa_load(&view->dups, idx0 + i))
			continue;
		src[i] = page;
		want += !fresh[i];
	}
	got = want ? dup_alloc(hfile, pool, want, epoch) : 0;
	for (i = 0, k = 0; i < npages && k < got; i++)
		if (src[i] && !fresh[i])
			fresh[i] = pool[k++];
	for (i = 0; i < npages; i++)
		if (src[i] && fresh[i] && !dup_fill(fresh[i], src[i]))
			src[i] = NULL;

	mutex_lock(&view->lock);
	if (view->dead || vvma != view->map_vma) {
		mutex_unlock(&view->lock);
		ret = VM_FAULT_SIGBUS;
		goto out_free;
	}
	if (mmu_interval_read_retry(&view->notifier, range.notifier_seq)) {
		mutex_unlock(&view->lock);
		goto again;
	}
	if (!view->mapped) {
		/* a device fault after a refused mremap(): see view_map() */
		view->mapped = true;
		view->map_start = vvma->vm_start;
		view->map_end = vvma->vm_end;
		view->map_base = vstart - (start - view->start);
	}
	for (i = 0; i < npages; i++) {
		struct page *page, *dup;

		pfns[i] = -1UL;
		if (!(hmm_pfns[i] & HMM_PFN_VALID) ||
		    (hmm_pfns[i] & HMM_PFN_ERROR))
			continue;
		dup = xa_load(&view->dups, idx0 + i);
		if (!dup && src[i] && fresh[i] &&
		    !xa_is_err(xa_store(&view->dups, idx0 + i, fresh[i],
					GFP_NOWAIT))) {
			struct hmmgpu_dpage *dp = hmmgpu_dpage(fresh[i]);

			dup = fresh[i];
			fresh[i] = NULL;
			spin_lock(&dmem->lock);
			dp->addr = start + (i << PAGE_SHIFT);
			dp->tgid = view->tgid;
			dp->client = hfile->client_id;
			dp->dup_view = view;
			spin_unlock(&dmem->lock);
			made++;
		}
		if (dup) {
			pfns[i] = page_to_pfn(hmmgpu_backing_page(dup));
			continue;
		}
		page = hmmgpu_hmm_pfn_to_page(hmm_pfns[i],
					      start + (i << PAGE_SHIFT));
		pfns[i] = page_to_pfn(hmmgpu_is_hmmgpu_page(page) ?
				      hmmgpu_backing_page(page) : page);
	}
	/* entries that map something else go; the same page stays */
	c = (struct clear_ctx) {
		.mm = vvma->vm_mm,
		.pfns = pfns,
		.hmm_pfns = hmm_pfns,
		.vstart = vstart,
		.vma_write = false,
	};
	hmmgpu_apply_to_existing_page_range(vvma->vm_mm, vstart, end - start,
					    clear_pte, &c);
	if (c.flush)
		view_flush_tlb(view, vstart, vstart + (end - start));
	for (i = 0; i < npages; i++) {
		if (pfns[i] != -1UL)
			vmf_insert_pfn_prot(vvma, vstart + (i << PAGE_SHIFT),
					    pfns[i], ro);
	}
	mutex_unlock(&view->lock);
	hmmgpu_count_dups(hfile->hdev, hfile, made, 0);
out_free:
	for (i = 0; i < npages; i++)
		if (fresh[i])
			put_page(fresh[i]);
	kvfree(hmm_pfns);
	return ret;
}

/*
 * May a device read fault in CPU VMA @cvma make copies (DOC: Read-mostly)?
 * The pages are checked one by one later (dup_eligible()); *@wp is set
 * when the CPU may write the VMA, so that each page must be one that
 * userfaultfd write-protects.
 */
static bool dup_vma_ok(struct vm_area_struct *cvma, bool *wp)
{
	vm_flags_t uffd = cvma->vm_flags & __VM_UFFD_FLAGS;

	if (cvma->vm_flags & (VM_SHARED | VM_MAYSHARE) ||
	    is_vm_hugetlb_page(cvma))
		return false;
	/*
	 * Write protection only: a handler of missing (or read-protected)
	 * pages would have to provide them, and a device cannot wait for it.
	 */
	if (uffd && uffd != VM_UFFD_WP)
		return false;
	*wp = cvma->vm_flags & VM_WRITE;
	return !*wp || uffd;
}

/**
 * hmmgpu_dup_drop_range() - drop the read-mostly copies among device pages.
 * @dmem: the device memory.
 * @first: index of the first device page.
 * @n: number of device pages.
 *
 * For eviction and removal, before they migrate the rest: copies are
 * clean, their views just forget them (DOC: Read-mostly).
 *
 * Context: may sleep; no view lock held.
 * Return: the number of copies dropped.
 */
unsigned long hmmgpu_dup_drop_range(struct hmmgpu_dmem *dmem,
				    unsigned long first, unsigned long n)
{
	unsigned long i, dropped = 0;

	for (i = first; i < first + n; i++) {
		struct hmmgpu_dpage *dp = &dmem->dpages[i];
		struct page *page = pfn_to_page(dmem->pfn_first + i);
		struct hmmgpu_view *view;
		unsigned long addr;

		if (!READ_ONCE(dp->dup_view))
			continue;
		spin_lock(&dmem->lock);
		view = dp->dup_view;
		addr = dp->addr;
		/* a view holding copies is registered: its reference is there */
		if (view)
			kref_get(&view->ref);
		spin_unlock(&dmem->lock);
		if (!view)
			continue;
		mutex_lock(&view->lock);
		if (addr >= view->start && addr < view->end &&
		    xa_load(&view->dups,
			    (addr - view->start) >> PAGE_SHIFT) == page)
			dropped += view_drop_dups(view, addr, addr + PAGE_SIZE);
		mutex_unlock(&view->lock);
		kref_put(&view->ref, view_free);
		cond_resched();
	}
	return dropped;
}

/**
 * hmmgpu_dup_snapshot() - mark the pages that have read-mostly copies.
 * @hfile: the caller's file: copies on its device, in its views.
 * @mm: the caller's address space.
 * @start: page-aligned start.
 * @npages: pages from @start.
 * @snap: the SNAPSHOT words of those pages; HMMGPU_SNAP_DUPLICATE is
 *	  added where a copy exists.
 *
 * Context: no lock held; takes &hmmgpu_file.views_lock and the views'.
 */
void hmmgpu_dup_snapshot(struct hmmgpu_file *hfile, struct mm_struct *mm,
			 unsigned long start, unsigned long npages, u32 *snap)
{
	unsigned long end = start + (npages << PAGE_SHIFT), idx;
	struct hmmgpu_view *view;
	struct page *page;

	mutex_lock(&hfile->views_lock);
	list_for_each_entry(view, &hfile->views, node) {
		unsigned long s = max(start, view->start);
		unsigned long e = min(end, view->end);

		if (view->mm != mm || s >= e)
			continue;
		mutex_lock(&view->lock);
		xa_for_each_range(&view->dups, idx, page,
				  (s - view->start) >> PAGE_SHIFT,
				  ((e - view->start) >> PAGE_SHIFT) - 1)
			snap[(view->start + (idx << PAGE_SHIFT) - start) >>
			     PAGE_SHIFT] |= HMMGPU_SNAP_DUPLICATE;
		mutex_unlock(&view->lock);
	}
	mutex_unlock(&hfile->views_lock);
}

/* Pages of [@start, @end) on @hdev now (no fault, no migration). */
static unsigned long resident_pages(struct hmmgpu_view *view,
				    struct hmmgpu_device *hdev,
				    unsigned long start, unsigned long end)
{
	unsigned long npages = (end - start) >> PAGE_SHIFT, i, n = 0;
	struct hmm_range range = {
		.notifier = &view->notifier,
		.start = start,
		.end = end,
		.dev_private_owner = &hmmgpu_owner,
	};
	unsigned long *pfns;
	int tries = 0, err;

	pfns = kvcalloc(npages, sizeof(*pfns), GFP_KERNEL);
	if (!pfns)
		return 0;
	range.hmm_pfns = pfns;
	do {
		range.notifier_seq = mmu_interval_read_begin(&view->notifier);
		err = hmm_range_fault(&range);
	} while (err == -EBUSY && ++tries < 4);
	if (!err) {
		for (i = 0; i < npages; i++) {
			struct page *page;

			if (!(pfns[i] & HMM_PFN_VALID))
				continue;
			page = hmm_pfn_to_page(pfns[i]);
			if (is_device_private_page(page) &&
			    hmmgpu_page_dmem(page) == &hdev->dmem)
				n++;
		}
	}
	kvfree(pfns);
	return n;
}

/*
 * Pages of region [@rstart, @rend) on @hdev, after a device fault moved
 * @moved of them there.  Counting walks the whole region; a sequential
 * first touch faults a region about prefetch_pct / 100 * 32 times in a
 * row, so the count of the last region is kept and grown by what each
 * fault moved, until an invalidation other than the view's own fetches
 * (a page leaving, an explicit migration, munmap) makes it recount.
 * Faults in one region are serialised by its fault lock.
 */
static unsigned long region_density(struct hmmgpu_view *view,
				    struct hmmgpu_device *hdev,
				    unsigned long rstart, unsigned long rend,
				    unsigned long moved)
{
	unsigned long gen, n;

	mutex_lock(&view->lock);
	if (view->dens_region == rstart && view->dens_gen == view->inval_gen) {
		view->dens_resident += moved;
		n = view->dens_resident;
		mutex_unlock(&view->lock);
		return n;
	}
	gen = view->inval_gen;
	mutex_unlock(&view->lock);

	n = resident_pages(view, hdev, rstart, rend);
	/* 0 after a fault moved pages: the count failed; do not keep it */
	if (!n)
		return 0;

	mutex_lock(&view->lock);
	/* an invalidation meanwhile leaves @gen behind: the next recounts */
	view->dens_region = rstart;
	view->dens_resident = n;
	view->dens_gen = gen;
	mutex_unlock(&view->lock);
	return n;
}

/* Forgets the density count of region @rstart (it was prefetched). */
static void region_density_forget(struct hmmgpu_view *view,
				  unsigned long rstart)
{
	mutex_lock(&view->lock);
	if (view->dens_region == rstart)
		view->dens_region = 0;
	mutex_unlock(&view->lock);
}

/* A device fault at CPU address @addr; mmap_lock held. */
static vm_fault_t view_device_fault(struct hmmgpu_view *view,
				    struct vm_area_struct *vvma,
				    unsigned long addr, bool write)
{
	struct hmmgpu_file *hfile = view->hfile;
	struct hmmgpu_device *hdev = hfile->hdev;
	struct hmmgpu_migrate_result res = { 0 };
	unsigned long gran, start, end, rstart, rend, resident, vlo, vhi;
	unsigned int pct = READ_ONCE(hmmgpu_prefetch_pct);
	enum view_map_mode mode = VIEW_MAP_FAULT;
	unsigned long uffd_page = 0;
	struct vm_area_struct *cvma;
	struct mutex *fault_lock;
	bool remote, dead, read_mostly, wp;
	u32 atomic;
	u64 t0 = ktime_get_ns();
	vm_fault_t ret;

	mutex_lock(&view->lock);
	gran = view->granularity;
	/*
	 * Accessed-by never moves data either: it maps it where it is; nor
	 * do global atomics, which want one copy, in system memory.
	 */
	atomic = view->atomic;
	remote = view->remote || view->accessed_by ||
		 atomic == HMMGPU_ATOMIC_GLOBAL;
	read_mostly = view->read_mostly;
	dead = view->dead;
	mutex_unlock(&view->lock);
	if (dead)
		return VM_FAULT_SIGBUS;

	cvma = vma_lookup(view->mm, addr);
	if (!cvma || !(cvma->vm_flags & VM_READ) ||
	    (write && !(cvma->vm_flags & VM_WRITE)))
		return VM_FAULT_SIGBUS;
	/* a write collapses the page's copy first (DOC: Read-mostly) */
	if (write && !xa_empty(&view->dups)) {
		mutex_lock(&view->lock);
		view_drop_dups(view, ALIGN_DOWN(addr, PAGE_SIZE),
			       ALIGN_DOWN(addr, PAGE_SIZE) + PAGE_SIZE);
		mutex_unlock(&view->lock);
	}

	hmmgpu_count_device_fault(hdev, hfile);
	/*
	 * The block, within the CPU VMA and the part of the view that @vvma
	 * maps (itself within the registered range): a mapping may cover
	 * just a part of the view, and the page tables next to it are other
	 * VMAs' (view_vma_range()).
	 */
	view_vma_range(view, vvma, &vlo, &vhi);
	start = max3(ALIGN_DOWN(addr, gran), cvma->vm_start, vlo);
	end = min3(ALIGN_DOWN(addr, gran) + gran, cvma->vm_end, vhi);
	/* read-mostly: reads of what the CPU cannot write get copies */
	if (read_mostly && !write && dup_vma_ok(cvma, &wp)) {
		ret = view_map_dups(view, vvma, start, end, wp);
		trace_hmmgpu_device_fault(hdev->index, addr, start,
					  (end - start) >> PAGE_SHIFT, 0, 1,
					  ktime_get_ns() - t0);
		return ret;
	}
	/*
	 * A device cannot wait for a userfaultfd handler, and
	 * hmm_range_fault() gives it no way to (it may not drop the mmap
	 * lock). In a range armed with userfaultfd the block migrates as
	 * usual (the core leaves missing pages alone), but only the faulting
	 * page is mapped, and only if it is there: a page only the handler
	 * could provide is a fatal device fault. A write to a write-protected
	 * page waits for the handler afterwards (view_uffd_write()) and is
	 * then mapped where the page is: moving it to the device first would
	 * only bring it back.
	 */
	if (userfaultfd_armed(cvma)) {
		uffd_page = ALIGN_DOWN(addr, PAGE_SIZE);
		mode = VIEW_MAP_PRESENT_ONLY;
		if (write && userfaultfd_wp(cvma))
			remote = true;
	}
	/* a block that bounced is mapped where it is for now */
	if (!remote && hmmgpu_thrash_pinned(hfile, addr)) {
		hmmgpu_count_thrash_remote(hdev, hfile);
		remote = true;
	}
	if (remote || !hmmgpu_vma_migratable(cvma, HMMGPU_MIGRATE_TO_DEVICE)) {
		if (uffd_page) {
			start = uffd_page;
			end = uffd_page + PAGE_SIZE;
		}
		ret = view_map(view, vvma, NULL, start, end, write ? addr : 0,
			       mode);
		if (ret == VM_FAULT_NOPAGE && atomic == HMMGPU_ATOMIC_DEVICE &&
		    !uffd_page && vma_is_anonymous(cvma) &&
		    (cvma->vm_flags & VM_WRITE))
			view_take_exclusive(view, start, end);
		trace_hmmgpu_device_fault(hdev->index, addr, start,
					  (end - start) >> PAGE_SHIFT, 0, 1,
					  ktime_get_ns() - t0);
		return ret;
	}

	/* One fault at a time migrates in a 2 MiB region (DOC: View locking). */
	fault_lock = &view->fault_lock[(addr / SZ_2M) % HMMGPU_VIEW_FAULT_LOCKS];
	mutex_lock(fault_lock);
	hmmgpu_migrate_block(hfile, cvma, start, end,
			     HMMGPU_CAUSE_DEVICE_FAULT, &res);
	if (res.moved)
		hmmgpu_thrash_to_device(hfile, addr);

	/* Density prefetch over the enclosing 2 MiB region. */
	rstart = max3(ALIGN_DOWN(addr, SZ_2M), cvma->vm_start, vlo);
	rend = min3(ALIGN_DOWN(addr, SZ_2M) + SZ_2M, cvma->vm_end, vhi);
	/* only a fault that moved pages can change the density */
	if (pct && res.moved && (rend - rstart) > (end - start)) {
		unsigned long rpages = (rend - rstart) >> PAGE_SHIFT;

		resident = region_density(view, hdev, rstart, rend,
					  res.moved);
		if (resident < rpages &&
		    resident * 100 > (unsigned long)pct * rpages) {
			hmmgpu_migrate_block(hfile, cvma, rstart, rend,
					     HMMGPU_CAUSE_PREFETCH, &res);
			region_density_forget(view, rstart);
			start = rstart;
			end = rend;
		}
	}
	mutex_unlock(fault_lock);
	if (uffd_page) {
		start = uffd_page;
		end = uffd_page + PAGE_SIZE;
		cvma = NULL;
	}
	ret = view_map(view, vvma, cvma, start, end, write ? addr : 0, mode);
	trace_hmmgpu_device_fault(hdev->index, addr, start,
				  (end - start) >> PAGE_SHIFT, res.moved, 0,
				  ktime_get_ns() - t0);
	return ret;
}

static const struct vm_operations_struct hmmgpu_view_vm_ops;

/**
 * view_populate() - enter the present pages of [@start, @end) in @view.
 * @view: a view of the calling process.
 * @start: page-aligned start.
 * @end: page-aligned end.
 *
 * The mapping is looked up in the mm, never taken from &hmmgpu_view.map_vma:
 * munmap() takes the VMA out of the tree, then downgrades to the read
 * lock (which MIGRATE may hold at the same time), frees the page tables
 * and only then calls ->close. A VMA found in the tree under the mmap
 * lock stays until the lock is dropped; one on its way out is not found.
 *
 * Context: @view->mm's mmap_lock held.
 */
static void view_populate(struct hmmgpu_view *view, unsigned long start,
			  unsigned long end)
{
	struct vm_area_struct *vvma;
	unsigned long vlo, vhi, next, map_start;
	bool mapped;

	hmmgpu_mmap_assert_locked(view->mm);
	mutex_lock(&view->lock);
	mapped = view->mapped && !view->dead;
	map_start = view->map_start;
	mutex_unlock(&view->lock);
	if (!mapped)
		return;
	vvma = vma_lookup(view->mm, map_start);
	if (!vvma || vvma->vm_ops != &hmmgpu_view_vm_ops ||
	    vvma->vm_private_data != view)
		return;
	/* only what the mapping covers */
	view_vma_range(view, vvma, &vlo, &vhi);
	start = max(start, vlo);
	end = min(end, vhi);
	for (; start < end; start = next) {
		next = min(ALIGN_DOWN(start, SZ_2M) + SZ_2M, end);
		if (view_map(view, vvma, NULL, start, next, 0,
			     VIEW_MAP_PRESENT) != VM_FAULT_NOPAGE)
			break;
	}
}

/**
 * hmmgpu_view_populate() - enter pages just prefetched in the views.
 * @hfile: the file whose MIGRATE moved [@start, @end) to its device.
 * @start: page-aligned start.
 * @end: page-aligned end.
 *
 * Like a GPU driver that maps a prefetched range in the GPU page table,
 * so that the device does not fault on data that is already there: the
 * pages of the range that are present now are entered in every mapped
 * view of the caller's that covers them, within the part each mapping
 * covers. Best effort: what is not entered faults in later; a view whose
 * entries were cleared by a refused mremap() is left to its next fault.
 *
 * Context: process context, mmap_lock not held.
 */
void hmmgpu_view_populate(struct hmmgpu_file *hfile, unsigned long start,
			  unsigned long end)
{
	struct mm_struct *mm = current->mm;
	struct hmmgpu_view *view;

	mutex_lock(&hfile->views_lock);
	list_for_each_entry(view, &hfile->views, node) {
		if (view->mm != mm || start >= view->end || end <= view->start)
			continue;
		mmap_read_lock(mm);
		view_populate(view, max(start, view->start),
			      min(end, view->end));
		mmap_read_unlock(mm);
	}
	mutex_unlock(&hfile->views_lock);
}

/*
 * A device write at CPU address @addr failed (@ret): if userfaultfd
 * write-protects the page, let its handler allow the write, as a CPU write
 * would, and have the access retried.  hmm_range_fault() cannot wait for
 * the handler (it may not drop the mmap lock); fixup_user_fault() can, and
 * the handler's UFFDIO_WRITEPROTECT invalidates the page, which drops its
 * copies first (DOC: Read-mostly).  Only while the page is protected, so a
 * failure of another cause cannot loop.
 *
 * Context: @vmf's mmap_lock held for read; released when the return value
 * has VM_FAULT_RETRY.
 */
static vm_fault_t view_uffd_write(struct hmmgpu_view *view,
				  struct vm_fault *vmf, unsigned long addr,
				  vm_fault_t ret)
{
	struct mm_struct *mm = vmf->vma->vm_mm;
	struct vm_area_struct *cvma;
	bool unlocked = false;

	if (mm != view->mm || !(vmf->flags & FAULT_FLAG_ALLOW_RETRY) ||
	    (vmf->flags & (FAULT_FLAG_RETRY_NOWAIT | HMMGPU_FAULT_FLAG_VMA_LOCK)))
		return ret;
	cvma = vma_lookup(mm, addr);
	if (!cvma || !userfaultfd_wp(cvma) || !(cvma->vm_flags & VM_WRITE) ||
	    hmmgpu_uffd_wp_pfn(mm, addr) == ULONG_MAX)
		return ret;
	/*
	 * A page away (on a device) comes back first, keeping its protection:
	 * the retried access then waits for the handler as above.
	 */
	if (fixup_user_fault(mm, addr, FAULT_FLAG_WRITE, &unlocked))
		return ret;
	/* the view mapping may have changed while the lock was dropped */
	mmap_read_unlock(mm);
	return VM_FAULT_RETRY | VM_FAULT_NOPAGE;
}

static vm_fault_t hmmgpu_view_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vvma = vmf->vma;
	struct hmmgpu_view *view = vvma->vm_private_data;
	struct hmmgpu_device *hdev = view->hfile->hdev;
	unsigned long addr;
	vm_fault_t ret;
	int idx;

	hmmgpu_mmap_assert_locked(vvma->vm_mm);
	/*
	 * A view is the device's address space: the device (a user thread
	 * acting as it) accesses it, the kernel does not. A system call
	 * handed a view address (an ioctl's arguments, read(), write())
	 * gets EFAULT, as for any PFN mapping it cannot use.
	 */
	if (!(vmf->flags & FAULT_FLAG_USER))
		return VM_FAULT_SIGBUS;
	if (!drm_dev_enter(&hdev->drm, &idx))
		return VM_FAULT_SIGBUS;
	addr = view->start + (((u64)vmf->pgoff << PAGE_SHIFT) - view->offset);
	ret = view_device_fault(view, vvma, addr,
				vmf->flags & FAULT_FLAG_WRITE);
	drm_dev_exit(idx);
	if (ret == VM_FAULT_SIGBUS && (vmf->flags & FAULT_FLAG_WRITE))
		ret = view_uffd_write(view, vmf, addr, ret);
	return ret;
}

/*
 * A device write to a read-only entry: the fault path replaces the entry
 * with a writable one, after breaking copy-on-write on the CPU side (or
 * gives SIGBUS when the CPU may not write there).
 */
static vm_fault_t hmmgpu_view_pfn_mkwrite(struct vm_fault *vmf)
{
	return hmmgpu_view_fault(vmf);
}

static void hmmgpu_view_vm_open(struct vm_area_struct *vma)
{
	struct hmmgpu_view *view = vma->vm_private_data;

	kref_get(&view->ref);
}

static void hmmgpu_view_vm_close(struct vm_area_struct *vma)
{
	struct hmmgpu_view *view = vma->vm_private_data;
	bool mapping;

	/*
	 * Not the copy a refused mremap() made: the mapping goes. munmap()
	 * or exit told the map notifier, which cleared the entries; the
	 * view lock orders this against view_map(), which may run at the
	 * same time under the read lock munmap() downgraded to.
	 */
	mutex_lock(&view->lock);
	mapping = view->map_vma == vma;
	if (mapping) {
		view->mapped = false;
		view->map_vma = NULL;
	}
	mutex_unlock(&view->lock);
	if (mapping)
		mmu_interval_notifier_remove(&view->map_notifier);
	kref_put(&view->ref, view_free);
}

static int hmmgpu_view_vm_may_split(struct vm_area_struct *vma,
				    unsigned long addr)
{
	return -EINVAL;
}

static int hmmgpu_view_vm_mremap(struct vm_area_struct *vma)
{
	return -EINVAL;
}

static const struct vm_operations_struct hmmgpu_view_vm_ops = {
	.open = hmmgpu_view_vm_open,
	.close = hmmgpu_view_vm_close,
	.may_split = hmmgpu_view_vm_may_split,
	.mremap = hmmgpu_view_vm_mremap,
	.fault = hmmgpu_view_fault,
	.pfn_mkwrite = hmmgpu_view_pfn_mkwrite,
};

/**
 * hmmgpu_mmap() - file_operations.mmap of the render node: map a view.
 * @filp: the DRM file.
 * @vma: the new mapping; its offset names the view.
 *
 * Context: mmap_lock held for write.
 * Return: 0; -EINVAL for an offset of no view of this file (a view
 * registered on another file is no view here), a private mapping, or one
 * that goes past the view's end; -EPERM for an executable mapping (and
 * mprotect() cannot make one executable later); -EACCES when the caller is not the
 * process that registered the view; -EBUSY when the view is mapped
 * already; -ENODEV after removal.
 */
int hmmgpu_mmap(struct file *filp, struct vm_area_struct *vma)
{
	struct drm_file *priv = filp->private_data;
	struct hmmgpu_device *hdev = to_hmmgpu(priv->minor->dev);
	struct hmmgpu_file *hfile = priv->driver_priv;
	u64 off = (u64)vma->vm_pgoff << PAGE_SHIFT;
	u64 len = vma->vm_end - vma->vm_start;
	struct hmmgpu_view *view;
	bool busy;
	int idx, ret = 0;

	if (!drm_dev_enter(&hdev->drm, &idx))
		return -ENODEV;
	/*
	 * Handles are per file, so only a view of this file is found: the
	 * mapping keeps its file open (and so the &hmmgpu_file the view
	 * points to), not any other file.
	 */
	xa_lock(&hfile->handles);
	view = xa_load(&hfile->handles, off >> HMMGPU_VIEW_OFFSET_SHIFT);
	if (view)
		kref_get(&view->ref);
	xa_unlock(&hfile->handles);
	if (!view) {
		ret = -EINVAL;
		goto out_exit;
	}
	if (view->mm != current->mm) {
		ret = -EACCES;
		goto out_put;
	}
	/* Device memory is data: nothing executes from a view. */
	if (vma->vm_flags & VM_EXEC) {
		ret = -EPERM;
		goto out_put;
	}
	if (!(vma->vm_flags & VM_SHARED) ||
	    off - view->offset >= view->end - view->start ||
	    len > view->end - view->start - (off - view->offset)) {
		ret = -EINVAL;
		goto out_put;
	}
	mutex_lock(&view->lock);
	busy = view->map_vma;
	mutex_unlock(&view->lock);
	if (busy) {
		ret = -EBUSY;
		goto out_put;
	}
	ret = mmu_interval_notifier_insert_locked(&view->map_notifier,
						  vma->vm_mm, vma->vm_start,
						  len,
						  &hmmgpu_view_map_notifier_ops);
	if (ret)
		goto out_put;
	hmmgpu_vm_flags_set(vma, VM_PFNMAP | VM_IO | VM_DONTEXPAND | VM_DONTDUMP |
			  VM_DONTCOPY);
	/* and mprotect(PROT_EXEC) may not add it later */
	hmmgpu_vm_flags_clear(vma, VM_MAYEXEC);
	vma->vm_private_data = view;
	vma->vm_ops = &hmmgpu_view_vm_ops;
	mutex_lock(&view->lock);
	view->map_vma = vma;
	view->mapped = true;
	view->map_start = vma->vm_start;
	view->map_end = vma->vm_end;
	view->map_base = vma->vm_start - (off - view->offset);
	mutex_unlock(&view->lock);
	goto out_exit;	/* the VMA keeps the reference */

out_put:
	kref_put(&view->ref, view_free);
out_exit:
	drm_dev_exit(idx);
	return ret;
}
