// SPDX-License-Identifier: GPL-2.0
/*
 * hmmgpu_migrate.c - migration between system memory and device memory,
 * device to device, CPU fault-back (migrate_to_ram) and eviction.
 */

#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/hmm.h>
#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>

#include "hmmgpu_copy.h"
#include "hmmgpu_drv.h"
#include "hmmgpu_trace.h"

/**
 * DOC: Migration flow
 *
 * Every migration, whatever started it, is a sequence of *batches* of at
 * most HMMGPU_BATCH_PAGES pages aligned to a 2 MiB block, never one page
 * at a time. A batch is:
 *
 * 1. migrate_vma_setup() (or migrate_device_range() for eviction): the
 *    core collects the pages, locks them and replaces their CPU mappings
 *    by migration entries, so the CPU can no longer change them;
 * 2. destination pages for the whole batch: device pages from the
 *    device's allocator (evicting least recently used blocks if it is
 *    full), or system pages with one bulk allocation;
 * 3. one copy-engine batch for all of them: backing page to system page,
 *    system page to backing page, or zero-fill for holes and the zero
 *    page; then the wait for its fence;
 * 4. pages whose copy failed get no destination (their dst entry is
 *    cleared and the new page released), so the core leaves them where
 *    they were, with their data: a copy error is a skipped page, never
 *    corrupted data;
 * 5. migrate_vma_pages() and migrate_vma_finalize(): the core moves the
 *    struct page state over and installs the new pages in the page
 *    tables (device-private swap entries for device pages).
 *
 * The fence is waited for before migrate_vma_pages(), not after it: once
 * migrate_vma_pages() has moved a page, the core offers no clean way to
 * take it back, and step 4 needs to know which copies failed. What the
 * copy overlaps with instead is the next batch: an explicit migration to
 * the device runs steps 1-3 of batch k+1 before steps 4-5 of batch k, so
 * the copy engine works while the CPU does page-table work. (Back to
 * system memory the batches can overlap the same way, but do not for
 * now: see migrate_in_vma().)
 *
 * Explicit migration (the MIGRATE ioctl) runs under mmap_read_lock of the
 * caller's mm, VMA by VMA: to the device, ranges that are not private
 * memory (MAP_SHARED, VM_IO/PFNMAP, hugetlb), not readable, or locked in
 * RAM by mlock() (VM_LOCKED) are counted as skipped without touching
 * them; to system, ranges that are not private memory are already there,
 * since their pages never go to a device. Private memory is anonymous
 * memory and private file mappings: of the latter only the copy-on-write
 * (anonymous) pages move, their page cache pages and holes are skipped
 * (file_page(); the core refuses them too, and fills no hole of a file
 * mapping). To
 * the device, it selects system pages and device pages of every hmmgpu
 * device (all share one pgmap owner): pages of another device move device
 * to device, pages already on this device are left alone. To system, it
 * selects device pages only.
 *
 * A MIGRATE of several 2 MiB blocks is shared by up to migrate_workers
 * threads (default 0: one per online CPU; 1: the caller alone), at least
 * two blocks each: the caller checks the range,
 * drops the mmap_lock, queues helpers on an unbound workqueue and works
 * beside them; each thread takes the mmap_lock for reading and claims one
 * block at a time, so page-table work and copies of different blocks run
 * on every CPU. The caller waits for the helpers without holding the lock
 * (a helper queued behind a writer would otherwise wait for the caller).
 * Counts and errors are those of one thread, except that a range that a
 * racing munmap() removes in the caller's unlocked window counts as
 * skipped instead of failing with -EFAULT. While hmmgpu's migration
 * tracepoints are on, the caller works alone: tracers select events by
 * the task that emits them, and a helper's would be charged to no one.
 * Its threads share the migration's epoch and range, so none evicts
 * blocks another has filled or is about to find its pages in (DOC:
 * Device memory). The threads take blocks in turn, so of a range larger
 * than the free device memory, the blocks that moved are not always its
 * first part, as they are with one thread.
 *
 * Where the kernel has device-private THP (see "Device THP") and the
 * device_thp parameter is on, a batch that is a whole, aligned 2 MiB of a
 * VMA not marked MADV_NOHUGEPAGE is collected with
 * %MIGRATE_VMA_SELECT_COMPOUND: a huge page, an untouched range, the huge
 * zero page or a 2 MiB folio of another device comes as one entry, which
 * goes to one 2 MiB device folio (a wholly free block) with one copy batch
 * and one PMD, and back to one 2 MiB system folio. When no such folio can
 * be had, the entry moves as 512 pages, all or none (the core installs a
 * split entry's pages without looking at their destinations), and so does
 * one whose copy failed. A CPU fault on a device folio still mapped by a
 * PMD brings the whole folio back (hmmgpu_migrate_to_ram()). Partial
 * munmap(), mprotect() or migration of a device folio makes the core split
 * its PMD and, at the next migration or CPU fault on it, the folio; the
 * pages then live on as 4 KiB device pages, which hmmgpu tells apart by
 * pfn, so it needs no folio_split callback. Until then a partly unmapped
 * device folio keeps its 2 MiB of device memory, as a huge page in RAM
 * does until the kernel splits it; eviction reclaims it.
 * Eviction (migrate_device_range()) cannot split a folio: it moves it to a
 * 2 MiB system folio or leaves it for another pass.
 *
 * A CPU access to a device page calls hmmgpu_migrate_to_ram(), which
 * migrates the aligned block of fault_kib around the faulting address,
 * clamped to the VMA, so that a sequential CPU reader does not fault once
 * per 4 KiB. Pages of the block whose copy failed stay on the device; the
 * faulting page itself is then copied by the CPU, and the fault fails with
 * VM_FAULT_SIGBUS only when no system page could be had for it. A fault
 * that moved pages is a major fault (VM_FAULT_MAJOR), as a swap-in is. Not
 * every caller of migrate_to_ram() is an access: khugepaged, collapsing a
 * region into a huge page, "swaps in" its device pages too; such a fault
 * (a kernel thread's, with none of the flags of an access) is refused and
 * the pages stay on the device. A CPU fault of a preferred page
 * (HMMGPU_ADVICE_PREFERRED) brings back that page alone.
 */

/*
 * Everything a batch of up to @n pages needs, in one allocation, and the
 * state of a batch between its submission and its completion.
 */
struct hmmgpu_mig {
	unsigned long n;
	struct migrate_vma args;
	unsigned long npages;
	unsigned long nops;
	unsigned long already;
	int cause;
	pid_t tgid;	/* process of the pages, for eviction's trace */
	u64 epoch;	/* its blocks are not evicted for it (DOC: Device memory) */
	unsigned long range_start;	/* the whole migration's range: */
	unsigned long range_end;	/* ... its pages are not evicted for it */
	bool preferred;	/* to the device, of a preferred range, in part */
	u64 t0;
	unsigned long *src;
	unsigned long *dst;
	struct page **pages;
	unsigned int *op_idx;
	unsigned long *failed;
	struct hmmgpu_copy_op *ops;
	struct hmmgpu_copy_batch batch;
};

/* Numbers the migrations for eviction (DOC: Device memory); never 0. */
static atomic64_t migration_epoch = ATOMIC64_INIT(0);

static u64 next_epoch(void)
{
	return atomic64_inc_return(&migration_epoch);
}

/* An epoch for device pages taken outside a migration (read-mostly copies). */
u64 hmmgpu_next_epoch(void)
{
	return next_epoch();
}

static struct hmmgpu_mig *mig_alloc(unsigned long n)
{
	struct hmmgpu_mig *m;
	size_t off = ALIGN(sizeof(*m), sizeof(long));
	size_t size = off + n * (2 * sizeof(long) + sizeof(struct page *) +
				 sizeof(struct hmmgpu_copy_op)) +
		      BITS_TO_LONGS(n) * sizeof(long) + n * sizeof(unsigned int);
	void *p;

	p = kvzalloc(size, GFP_KERNEL);
	if (!p)
		return NULL;
	m = p;
	m->n = n;
	m->tgid = task_tgid_nr(current);
	m->epoch = next_epoch();
	m->src = p + off;
	m->dst = m->src + n;
	m->failed = m->dst + n;
	m->pages = (struct page **)(m->failed + BITS_TO_LONGS(n));
	m->ops = (struct hmmgpu_copy_op *)(m->pages + n);
	m->op_idx = (unsigned int *)(m->ops + n);
	return m;
}

static void mig_free(struct hmmgpu_mig *m)
{
	kvfree(m);
}

/* Releases a destination page that will not be used (locked, one ref). */
static void release_dst(unsigned long *dst)
{
	struct page *page = migrate_pfn_to_page(*dst);

	*dst = 0;
	if (page) {
		unlock_page(page);
		put_page(page);
	}
}

/*
 * Entry @i of @m's src array as if a compound entry at 0 (a 2 MiB folio
 * or hole collected whole, see "Device THP") were HMMGPU_BLOCK_PAGES
 * order-0 entries: the flags of entry 0 and, for a folio, its i-th page.
 * The array itself must not change between setup and pages().
 */
static unsigned long src_entry(const struct hmmgpu_mig *m, unsigned long i)
{
	unsigned long s = m->src[0];

	if (!(s & HMMGPU_MIGRATE_PFN_COMPOUND))
		return m->src[i];
	s &= ~HMMGPU_MIGRATE_PFN_COMPOUND;
	if (s & MIGRATE_PFN_VALID)
		s += i << MIGRATE_PFN_SHIFT;
	return s;
}

static bool mig_compound(const struct hmmgpu_mig *m)
{
	return m->src[0] & HMMGPU_MIGRATE_PFN_COMPOUND;
}

/* Whether [@start, @end) of @vma may be collected as one 2 MiB folio. */
static bool want_compound(struct vm_area_struct *vma, unsigned long start,
			  unsigned long end)
{
	return hmmgpu_device_thp() && vma_is_anonymous(vma) &&
	       IS_ALIGNED(start, SZ_2M) &&
	       end == start + SZ_2M && start >= vma->vm_start &&
	       end <= vma->vm_end && !(vma->vm_flags & VM_NOHUGEPAGE);
}

/*
 * Releases every destination of @m: a compound source moves with all of
 * its pages or not at all, since the core installs a split one's pages
 * without looking at their destinations.
 */
static void release_all_dst(struct hmmgpu_mig *m)
{
	unsigned long i;

	for (i = 0; i < m->npages; i++)
		release_dst(&m->dst[i]);
}

/* Starts copying the @nops ops of @m. */
static void copy_submit(struct hmmgpu_device *hdev, struct hmmgpu_mig *m,
			unsigned long nops, bool urgent)
{
	m->nops = nops;
	if (!nops)
		return;
	m->batch.ops = m->ops;
	m->batch.nr = nops;
	m->batch.failed = m->failed;
	m->batch.urgent = urgent;
	hmmgpu_copy_submit(hdev->copy, &m->batch);
}

/*
 * Waits for the copies of @m. The destinations of failed ops are cleared
 * (the page stays where it is), or with @cpu_copy copied again by the CPU
 * from the source, which the failed op left intact. Returns the number
 * of failed ops.
 */
static unsigned long copy_wait(struct hmmgpu_mig *m, u64 *busy_ns,
			       bool cpu_copy)
{
	unsigned long nfailed = 0, k;

	*busy_ns = 0;
	if (!m->nops)
		return 0;
	if (hmmgpu_copy_wait(&m->batch)) {
		for_each_set_bit(k, m->failed, m->nops) {
			if (cpu_copy)
				copy_highpage(m->ops[k].dst, m->ops[k].src);
			else
				release_dst(&m->dst[m->op_idx[k]]);
			nfailed++;
		}
		if (nfailed && !cpu_copy && mig_compound(m))
			release_all_dst(m);
	}
	*busy_ns = m->batch.busy_ns;
	hmmgpu_copy_batch_fini(&m->batch);
	return nfailed;
}

/*
 * A compound source (a 2 MiB device folio): one 2 MiB system folio for
 * it, and the copies of its pages. False, with nothing done, when there
 * is no free 2 MiB of system memory.
 */
static bool to_system_folio(struct hmmgpu_device *hdev, struct hmmgpu_mig *m,
			    bool must_move)
{
	struct page *spage = migrate_pfn_to_page(m->src[0]);
	struct folio *sfolio, *dfolio;
	unsigned long k;

	if (!spage || !(m->src[0] & MIGRATE_PFN_MIGRATE) ||
	    !hmmgpu_is_hmmgpu_page(spage))
		return false;
	dfolio = folio_alloc(GFP_HIGHUSER_MOVABLE | __GFP_NOWARN |
			     (must_move ? 0 : __GFP_NORETRY), HMMGPU_PMD_ORDER);
	if (!dfolio)
		return false;
	folio_lock(dfolio);
	sfolio = page_folio(spage);
	m->dst[0] = migrate_pfn(folio_pfn(dfolio)) |
		    HMMGPU_MIGRATE_PFN_COMPOUND |
		    (m->src[0] & MIGRATE_PFN_WRITE);
	for (k = 0; k < HMMGPU_BLOCK_PAGES; k++) {
		m->ops[k].src = hmmgpu_backing_page(folio_page(sfolio, k));
		m->ops[k].dst = folio_page(dfolio, k);
		m->op_idx[k] = 0;
	}
	copy_submit(hdev, m, HMMGPU_BLOCK_PAGES, false);
	return true;
}

/*
 * Prepares the device pages collected in @m->src[0..@npages) for a move
 * to system memory: allocates system pages and starts the copies; the
 * wait is copy_wait()'s, which drops failures. Entries that are not
 * device pages selected for migration get no destination. With
 * @must_move (device removal: the device memory is going away) nothing is
 * dropped: allocations wait for memory and failed copies are done again
 * by the CPU, as nouveau and test_hmm do.
 *
 * A 2 MiB device folio goes to a 2 MiB system folio. Without one, the
 * core splits it and its pages go to 4 KiB pages, all or none, when it
 * was collected from page tables (@from_vma); eviction and removal
 * (migrate_device_range()) cannot split it: it stays for now, and removal
 * tries again.
 */
static void to_system_submit(struct hmmgpu_device *hdev, struct hmmgpu_mig *m,
			     unsigned long npages, bool must_move,
			     bool from_vma)
{
	unsigned long i, need = 0, got, k = 0, nops = 0;
	bool compound = mig_compound(m);

	memset(m->dst, 0, npages * sizeof(*m->dst));
	m->nops = 0;
	if (compound && (to_system_folio(hdev, m, must_move) || !from_vma))
		return;
	for (i = 0; i < npages; i++) {
		unsigned long e = src_entry(m, i);
		struct page *spage = migrate_pfn_to_page(e);

		if (spage && (e & MIGRATE_PFN_MIGRATE) &&
		    hmmgpu_is_hmmgpu_page(spage))
			need++;
	}
	memset(m->pages, 0, need * sizeof(*m->pages));
	got = 0;
	while (got < need) {
		/* fills the empty slots; may stop short, so go on while it helps */
		unsigned long n = hmmgpu_alloc_pages_bulk(GFP_HIGHUSER_MOVABLE,
							 need, m->pages);

		if (n == got)
			break;
		got = n;
	}
	for (; must_move && got < need; got++)
		m->pages[got] = alloc_page(GFP_HIGHUSER_MOVABLE | __GFP_NOFAIL);
	if (compound && got < need) {
		while (got)
			__free_page(m->pages[--got]);
	}

	for (i = 0; i < npages && k < got; i++) {
		unsigned long e = src_entry(m, i);
		struct page *spage = migrate_pfn_to_page(e);
		struct page *dpage;

		if (!spage || !(e & MIGRATE_PFN_MIGRATE) ||
		    !hmmgpu_is_hmmgpu_page(spage))
			continue;
		dpage = m->pages[k++];
		lock_page(dpage);
		m->dst[i] = migrate_pfn(page_to_pfn(dpage));
		if (e & MIGRATE_PFN_WRITE)
			m->dst[i] |= MIGRATE_PFN_WRITE;
		m->ops[nops].src = hmmgpu_backing_page(spage);
		m->ops[nops].dst = dpage;
		m->op_idx[nops] = i;
		nops++;
	}
	copy_submit(hdev, m, nops, false);
}

/* to_system_submit() and the wait for its copies, in one. */
static unsigned long prepare_to_system(struct hmmgpu_device *hdev,
				       struct hmmgpu_mig *m,
				       unsigned long npages, u64 *busy_ns,
				       unsigned long *nfailed, bool must_move,
				       bool from_vma)
{
	to_system_submit(hdev, m, npages, must_move, from_vma);
	*nfailed = copy_wait(m, busy_ns, must_move);
	return must_move ? m->nops : m->nops - *nfailed;
}

/*
 * Whether page @i of @m moved, after *_pages(): its entry kept its
 * destination, or the 2 MiB folio it is part of moved whole.
 */
static bool page_moved(const struct hmmgpu_mig *m, unsigned long i)
{
	if (mig_compound(m))
		i = 0;
	return m->dst[i] && (m->src[i] & MIGRATE_PFN_MIGRATE);
}

/* Counts the pages that moved, after *_pages(). */
static unsigned long count_moved(struct hmmgpu_mig *m, unsigned long npages)
{
	unsigned long i, moved = 0;

	for (i = 0; i < npages; i++)
		moved += page_moved(m, i);
	return moved;
}

/*
 * Reports the pages of an eviction batch that moved, as runs of one
 * process's consecutive CPU addresses (hmmgpu_evicted). @dps: the batch's
 * device pages; read before finalize, while they are still ours.
 */
static void trace_evicted(struct hmmgpu_device *hdev, struct hmmgpu_mig *m,
			  struct hmmgpu_dpage *dps, unsigned long npages,
			  u32 cause)
{
	unsigned long i, start = 0, n = 0;
	pid_t tgid = 0;

	for (i = 0; i < npages; i++) {
		struct hmmgpu_dpage *dp = &dps[i];

		if (!page_moved(m, i))
			continue;
		if (n && dp->tgid == tgid &&
		    dp->addr == start + (n << PAGE_SHIFT)) {
			n++;
			continue;
		}
		if (n)
			trace_hmmgpu_evicted(hdev->index, cause, tgid, start, n);
		start = dp->addr;
		tgid = dp->tgid;
		n = 1;
	}
	if (n)
		trace_hmmgpu_evicted(hdev->index, cause, tgid, start, n);
}

/* Where an eviction batch's pages were, per process (remap_evicted()). */
#define HMMGPU_REMAP_SLOTS 8
struct remap_slots {
	pid_t tgid[HMMGPU_REMAP_SLOTS];
	unsigned long start[HMMGPU_REMAP_SLOTS];
	unsigned long end[HMMGPU_REMAP_SLOTS];
	unsigned int n;
};

/*
 * Before finalize, while the device pages still say whose they were:
 * the span of the collected pages of each process, moved or not, since
 * their unmapping invalidated them all (up to HMMGPU_REMAP_SLOTS
 * processes a batch; the pages of more are left to device faults).  The
 * remap enters only what is there.
 */
static void remap_collect(struct hmmgpu_mig *m, struct hmmgpu_dpage *dp,
			  unsigned long npages, struct remap_slots *r)
{
	unsigned long i;
	unsigned int k;

	r->n = 0;
	if (!hmmgpu_view_remap_wanted())
		return;
	/* every page collected was unmapped, moved or not */
	for (i = 0; i < npages; i++) {
		if (!(src_entry(m, i) & MIGRATE_PFN_MIGRATE) || !dp[i].addr)
			continue;
		for (k = 0; k < r->n && r->tgid[k] != dp[i].tgid; k++)
			;
		if (k == r->n) {
			if (k == HMMGPU_REMAP_SLOTS)
				continue;
			r->n++;
			r->tgid[k] = dp[i].tgid;
			r->start[k] = dp[i].addr;
			r->end[k] = dp[i].addr + PAGE_SIZE;
		}
		r->start[k] = min(r->start[k], dp[i].addr);
		r->end[k] = max(r->end[k], dp[i].addr + PAGE_SIZE);
	}
}

/* After finalize: evicted pages go back in accessed-by views. */
static void remap_evicted(const struct remap_slots *r)
{
	unsigned int k;

	for (k = 0; k < r->n; k++)
		hmmgpu_view_remap(NULL, r->tgid[k], r->start[k], r->end[k]);
}

/*
 * Read-mostly copies (DOC: Read-mostly) map nothing on the CPU side: there
 * is nothing to migrate, and their views drop them (hmmgpu_dup_drop_range(),
 * which eviction calls first). One made since stays where it is.
 */
static void skip_dups(struct hmmgpu_dmem *dmem, struct hmmgpu_mig *m,
		      unsigned long first, unsigned long npages)
{
	unsigned long i;

	if (mig_compound(m))
		return;
	for (i = 0; i < npages; i++)
		if (READ_ONCE(dmem->dpages[first + i].dup_view))
			m->src[i] &= ~MIGRATE_PFN_MIGRATE;
}

/**
 * hmmgpu_evict_range() - move device pages of a pfn range back to RAM.
 * @dmem: the device memory.
 * @first: index of the first device page.
 * @n: number of device pages.
 * @cause: HMMGPU_CAUSE_EVICTION or HMMGPU_CAUSE_REMOVAL.
 * @hfile: file charged with the eviction, or NULL.
 *
 * Free pages and pages locked by a migration in flight are skipped.
 *
 * Context: may sleep.
 * Return: pages moved, or -ENOMEM.
 */
int hmmgpu_evict_range(struct hmmgpu_dmem *dmem, unsigned long first,
		       unsigned long n, u32 cause, struct hmmgpu_file *hfile)
{
	struct hmmgpu_device *hdev = dmem->hdev;
	unsigned long done, total = 0;
	struct remap_slots remap;
	struct hmmgpu_mig *m;

	m = mig_alloc(HMMGPU_BATCH_PAGES);
	if (!m)
		return -ENOMEM;

	for (done = 0; done < n; done += HMMGPU_BATCH_PAGES) {
		unsigned long npages = min_t(unsigned long, n - done,
					     HMMGPU_BATCH_PAGES);
		unsigned long nfailed, moved;
		u64 t0 = ktime_get_ns(), busy;

		migrate_device_range(m->src, dmem->pfn_first + first + done,
				     npages);
		skip_dups(dmem, m, first + done, npages);
		prepare_to_system(hdev, m, npages, &busy, &nfailed,
				  cause == HMMGPU_CAUSE_REMOVAL, false);
		migrate_device_pages(m->src, m->dst, npages);
		moved = count_moved(m, npages);
		if (moved && trace_hmmgpu_evicted_enabled())
			trace_evicted(hdev, m, &dmem->dpages[first + done],
				      npages, cause);
		remap_collect(m, &dmem->dpages[first + done], npages, &remap);
		migrate_device_finalize(m->src, m->dst, npages);
		remap_evicted(&remap);

		if (!moved && !nfailed)
			continue;
		hmmgpu_count_migration(hdev, hfile, HMMGPU_DIR_TO_SYSTEM, cause,
				       moved);
		hmmgpu_count_batch(hdev, hfile, busy, ktime_get_ns() - t0,
				   nfailed);
		trace_hmmgpu_migrate_batch(hdev->index, HMMGPU_DIR_TO_SYSTEM,
					   cause, 0, npages, moved, nfailed, 0,
					   ktime_get_ns() - t0);
		total += moved;
	}
	if (total && cause == HMMGPU_CAUSE_EVICTION)
		hmmgpu_count_eviction(hdev, hfile);
	mig_free(m);
	return total;
}

/* Who takes device pages for batch @m, for eviction (evict_next()). */
static struct hmmgpu_evict_for evict_for(struct hmmgpu_mig *m)
{
	return (struct hmmgpu_evict_for) {
		.epoch = m->epoch,
		.tgid = m->tgid,
		.start = m->range_start,
		.end = m->range_end,
		.preferred = m->preferred,
	};
}

/* Gets @need device pages into @m->pages, evicting if the device is full. */
static unsigned long alloc_device_pages(struct hmmgpu_file *hfile,
					struct hmmgpu_mig *m,
					unsigned long need)
{
	struct hmmgpu_dmem *dmem = &hfile->hdev->dmem;
	struct hmmgpu_evict_for who;
	unsigned long got;

	got = hmmgpu_dmem_alloc(dmem, m->pages, need, m->epoch);
	if (got < need) {
		who = evict_for(m);
		got += hmmgpu_dmem_alloc_evicting(dmem, m->pages + got,
						  need - got, hfile, &who);
	}
	return got;
}

static bool on_this_device(struct hmmgpu_device *hdev, struct page *page)
{
	return page && is_device_private_page(page) &&
	       hmmgpu_page_dmem(page) == &hdev->dmem;
}

/* Is page @i of @m's range in a preferred range of @hfile's device? */
static bool page_preferred(struct hmmgpu_file *hfile, struct hmmgpu_mig *m,
			   unsigned long i)
{
	unsigned long addr = m->args.start + (i << PAGE_SHIFT);

	return m->preferred &&
	       hmmgpu_file_preferred(hfile, m->args.vma->vm_mm, addr,
				     addr + PAGE_SIZE);
}

/*
 * A compound source (a 2 MiB system THP, an empty aligned 2 MiB range, or
 * a 2 MiB folio of another device): one 2 MiB device folio for it, and
 * the copies of its pages (zeroes for the empty range). False, with
 * nothing done, when the source is on this device already or the device
 * has no wholly free block even after an eviction pass: the caller then
 * moves it as 512 pages.
 */
static bool to_device_folio(struct hmmgpu_file *hfile,
			    struct vm_area_struct *vma, struct hmmgpu_mig *m)
{
	struct hmmgpu_dmem *dmem = &hfile->hdev->dmem;
	struct page *spage = migrate_pfn_to_page(m->src[0]), *dpage;
	struct folio *sfolio = spage ? page_folio(spage) : NULL, *dfolio;
	unsigned long k;

	if (!(m->src[0] & MIGRATE_PFN_MIGRATE) ||
	    on_this_device(hfile->hdev, spage))
		return false;
	dpage = hmmgpu_dmem_alloc_folio(dmem, m->epoch);
	if (!dpage) {
		struct hmmgpu_evict_for who = evict_for(m);

		dpage = hmmgpu_dmem_alloc_folio_evicting(dmem, hfile, &who);
	}
	if (!dpage)
		return false;
	if (m->preferred)
		hmmgpu_dmem_set_preferred(dmem, dpage, HMMGPU_BLOCK_PAGES);
	dfolio = page_folio(dpage);
	for (k = 0; k < HMMGPU_BLOCK_PAGES; k++) {
		struct page *d = folio_page(dfolio, k);
		struct hmmgpu_dpage *dp = hmmgpu_dpage(d);
		struct page *sp = sfolio ? folio_page(sfolio, k) : NULL;

		dp->addr = m->args.start + (k << PAGE_SHIFT);
		dp->tgid = m->tgid;
		dp->client = hfile->client_id;
		m->ops[k].src = !sp ? NULL :
				is_device_private_page(sp) ?
				hmmgpu_backing_page(sp) : sp;
		m->ops[k].dst = hmmgpu_backing_page(d);
		m->op_idx[k] = 0;
	}
	m->dst[0] = migrate_pfn(page_to_pfn(dpage)) |
		    HMMGPU_MIGRATE_PFN_COMPOUND;
	if ((m->src[0] & MIGRATE_PFN_WRITE) ||
	    (!spage && (vma->vm_flags & VM_WRITE)))
		m->dst[0] |= MIGRATE_PFN_WRITE;
	copy_submit(hfile->hdev, m, HMMGPU_BLOCK_PAGES, false);
	return true;
}

/*
 * A page cache page, of a private file mapping that the CPU has not
 * written yet: it belongs to the file, and only anonymous pages go to
 * device-private memory (the core refuses the others in
 * migrate_vma_pages()).  Its copy-on-write copies are anonymous and move.
 */
static bool file_page(struct page *page)
{
	return page && !is_zone_device_page(page) && !PageAnon(page) &&
	       !is_zero_pfn(page_to_pfn(page));
}

/*
 * First half of a batch to the device: collects [@start, @end) of @vma,
 * gets device pages and starts the copies. to_device_finish() completes
 * it; in between, the caller may start the next batch, so that the copy
 * engine works while the CPU does the next batch's page-table work.
 */
static int to_device_start(struct hmmgpu_file *hfile,
			   struct vm_area_struct *vma, unsigned long start,
			   unsigned long end, int cause, struct hmmgpu_mig *m)
{
	struct hmmgpu_device *hdev = hfile->hdev;
	unsigned long i, need = 0, got, k = 0, nops = 0;
	int ret;

	m->t0 = ktime_get_ns();
	m->npages = (end - start) >> PAGE_SHIFT;
	m->already = 0;
	m->cause = cause;
	m->nops = 0;
	m->args = (struct migrate_vma) {
		.vma = vma,
		.start = start,
		.end = end,
		.src = m->src,
		.dst = m->dst,
		.pgmap_owner = &hmmgpu_owner,
		.flags = MIGRATE_VMA_SELECT_SYSTEM |
			 MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
	};
	/*
	 * A device fault (or its prefetch) fetches system pages only: pages
	 * on a device stay where they are, and the view maps them there. The
	 * owner tells the view notifier that no device page changes, so it
	 * keeps the view's entries of device pages.
	 */
	if (cause == HMMGPU_CAUSE_DEVICE_FAULT ||
	    cause == HMMGPU_CAUSE_PREFETCH) {
		m->args.pgmap_owner = &hmmgpu_fill_owner;
		m->args.flags = MIGRATE_VMA_SELECT_SYSTEM;
	} else if (want_compound(vma, start, end)) {
		m->args.flags |= HMMGPU_MIGRATE_VMA_SELECT_COMPOUND;
	}
	ret = migrate_vma_setup(&m->args);
	if (ret)
		return ret;
	m->preferred = hmmgpu_file_preferred(hfile, vma->vm_mm, start, end);
	if (mig_compound(m) && to_device_folio(hfile, vma, m))
		return 0;

	for (i = 0; i < m->npages; i++) {
		unsigned long e = src_entry(m, i);
		struct page *spage = migrate_pfn_to_page(e);

		if (!(e & MIGRATE_PFN_MIGRATE))
			continue;
		if (file_page(spage)) {
			/* the core would refuse it after the copy: skip now */
			m->src[i] &= ~MIGRATE_PFN_MIGRATE;
			continue;
		}
		if (on_this_device(hdev, spage)) {
			m->already++;
			hmmgpu_dmem_claim(&hdev->dmem, spage, m->epoch);
			/* advice given after the page came: now it counts */
			if (page_preferred(hfile, m, i))
				hmmgpu_dmem_set_preferred(&hdev->dmem, spage,
							  1);
		} else {
			need++;
		}
	}
	got = need ? alloc_device_pages(hfile, m, need) : 0;
	/* a 2 MiB source moves whole or not at all (release_all_dst()) */
	if (mig_compound(m) && got < need) {
		for (i = 0; i < got; i++) {
			unlock_page(m->pages[i]);
			put_page(m->pages[i]);
		}
		got = 0;
	}

	for (i = 0; i < m->npages && k < got; i++) {
		unsigned long e = src_entry(m, i);
		struct page *spage = migrate_pfn_to_page(e);
		struct hmmgpu_dpage *dp;
		struct page *dpage;

		if (!(e & MIGRATE_PFN_MIGRATE) || on_this_device(hdev, spage))
			continue;
		dpage = m->pages[k++];
		dp = hmmgpu_dpage(dpage);
		dp->addr = start + (i << PAGE_SHIFT);
		dp->tgid = m->tgid;
		dp->client = hfile->client_id;
		if (page_preferred(hfile, m, i))
			hmmgpu_dmem_set_preferred(&hdev->dmem, dpage, 1);
		m->dst[i] = migrate_pfn(page_to_pfn(dpage));
		if ((e & MIGRATE_PFN_WRITE) ||
		    (!spage && (vma->vm_flags & VM_WRITE)))
			m->dst[i] |= MIGRATE_PFN_WRITE;
		/* No source page: a hole or the zero page, zero-filled. */
		m->ops[nops].src = !spage ? NULL :
				   is_device_private_page(spage) ?
				   hmmgpu_backing_page(spage) : spage;
		m->ops[nops].dst = hmmgpu_backing_page(dpage);
		m->op_idx[nops] = i;
		nops++;
	}
	/* a device fault waits for its copy and has nothing to overlap */
	copy_submit(hdev, m, nops, cause == HMMGPU_CAUSE_DEVICE_FAULT ||
				   cause == HMMGPU_CAUSE_PREFETCH);
	return 0;
}

/* Second half: waits for the copies and commits the batch. */
static void to_device_finish(struct hmmgpu_file *hfile, struct hmmgpu_mig *m,
			     struct hmmgpu_migrate_result *res)
{
	struct hmmgpu_device *hdev = hfile->hdev;
	unsigned long i, moved = 0, peer = 0, nfailed;
	u64 busy;

	nfailed = copy_wait(m, &busy, false);
	migrate_vma_pages(&m->args);
	for (i = 0; i < m->npages; i++) {
		struct page *spage = migrate_pfn_to_page(src_entry(m, i));

		if (!page_moved(m, i))
			continue;
		moved++;
		if (spage && is_device_private_page(spage))
			peer++;
	}
	migrate_vma_finalize(&m->args);
	/* moved or not, the collection invalidated the batch (DOC: Accessed-by) */
	hmmgpu_view_remap(m->args.vma->vm_mm, 0, m->args.start, m->args.end);

	res->moved += moved;
	res->already += m->already;
	res->skipped += m->npages - moved - m->already;
	hmmgpu_count_migration(hdev, hfile, HMMGPU_DIR_TO_DEVICE, m->cause,
			       moved - peer);
	hmmgpu_count_migration(hdev, hfile, HMMGPU_DIR_TO_DEVICE,
			       HMMGPU_CAUSE_PEER, peer);
	if (m->nops)
		hmmgpu_count_batch(hdev, hfile, busy, ktime_get_ns() - m->t0,
				   nfailed);
	trace_hmmgpu_migrate_batch(hdev->index, HMMGPU_DIR_TO_DEVICE,
				   m->cause, m->args.start,
				   m->npages, moved, nfailed, peer,
				   ktime_get_ns() - m->t0);
}

/*
 * First half of an explicit batch of [@start, @end) of @vma from any
 * hmmgpu device to system memory: collects the pages, gets system pages
 * and starts the copies. to_system_finish() completes it; as to the
 * device, a caller may overlap the next batch's page-table work with them.
 */
static int to_system_start(struct hmmgpu_file *hfile,
			   struct vm_area_struct *vma, unsigned long start,
			   unsigned long end, struct hmmgpu_mig *m)
{
	unsigned long i;
	int ret;

	m->t0 = ktime_get_ns();
	m->npages = (end - start) >> PAGE_SHIFT;
	m->already = 0;
	m->cause = HMMGPU_CAUSE_EXPLICIT;
	m->nops = 0;
	m->args = (struct migrate_vma) {
		.vma = vma,
		.start = start,
		.end = end,
		.src = m->src,
		.dst = m->dst,
		.pgmap_owner = &hmmgpu_owner,
		.flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
	};
	if (want_compound(vma, start, end))
		m->args.flags |= HMMGPU_MIGRATE_VMA_SELECT_COMPOUND;
	ret = migrate_vma_setup(&m->args);
	if (ret)
		return ret;
	/* Not on a device (system pages, holes) counts as already there. */
	for (i = 0; i < m->npages; i++) {
		unsigned long e = src_entry(m, i);
		struct page *spage = migrate_pfn_to_page(e);

		if (!spage || !(e & MIGRATE_PFN_MIGRATE) ||
		    !hmmgpu_is_hmmgpu_page(spage))
			m->already++;
	}
	to_system_submit(hfile->hdev, m, m->npages, false, true);
	return 0;
}

/* Second half: waits for the copies and commits the batch. */
static void to_system_finish(struct hmmgpu_file *hfile, struct hmmgpu_mig *m,
			     struct hmmgpu_migrate_result *res)
{
	struct hmmgpu_device *hdev = hfile->hdev;
	unsigned long moved, nfailed, selected = m->npages - m->already;
	u64 busy;

	nfailed = copy_wait(m, &busy, false);
	migrate_vma_pages(&m->args);
	moved = count_moved(m, m->npages);
	migrate_vma_finalize(&m->args);
	/* moved or not, the collection invalidated the batch (DOC: Accessed-by) */
	hmmgpu_view_remap(m->args.vma->vm_mm, 0, m->args.start, m->args.end);

	res->moved += moved;
	res->skipped += selected - moved;
	res->already += m->already;
	hmmgpu_count_migration(hdev, hfile, HMMGPU_DIR_TO_SYSTEM,
			       HMMGPU_CAUSE_EXPLICIT, moved);
	if (selected)
		hmmgpu_count_batch(hdev, hfile, busy, ktime_get_ns() - m->t0,
				   nfailed);
	trace_hmmgpu_migrate_batch(hdev->index, HMMGPU_DIR_TO_SYSTEM,
				   HMMGPU_CAUSE_EXPLICIT, m->args.start,
				   m->npages, moved, nfailed, 0,
				   ktime_get_ns() - m->t0);
}

static void batch_finish(struct hmmgpu_file *hfile, struct hmmgpu_mig *m,
			 u32 target, struct hmmgpu_migrate_result *res)
{
	if (target == HMMGPU_MIGRATE_TO_DEVICE)
		to_device_finish(hfile, m, res);
	else
		to_system_finish(hfile, m, res);
}

/**
 * hmmgpu_vma_migratable() - may pages of @vma be on a device at all?
 * @vma: the VMA.
 * @target: HMMGPU_MIGRATE_TO_DEVICE or HMMGPU_MIGRATE_TO_SYSTEM.
 *
 * Says what kind of memory may move, not whether it may move now: a
 * VM_LOCKED range is migratable memory that vma_locked_in_ram() keeps
 * from going to a device.
 *
 * Return: true when pages of @vma may move towards @target.
 */
bool hmmgpu_vma_migratable(struct vm_area_struct *vma, u32 target)
{
	/*
	 * Private memory: anonymous, or a private file mapping, whose
	 * copy-on-write pages are anonymous (its file pages and holes stay:
	 * to_device_start() and the core skip them).  Shared memory, hugetlb
	 * and PFN maps never move; a view maps them where they are.
	 */
	if (vma->vm_flags & (VM_SHARED | VM_MAYSHARE | VM_IO | VM_PFNMAP |
			     VM_MIXEDMAP | VM_HUGETLB))
		return false;
	/* Data on a device always may come home; PROT_NONE data stays. */
	return target == HMMGPU_MIGRATE_TO_SYSTEM ||
	       (vma->vm_flags & VM_READ);
}

/*
 * mlock() promises that the pages of a VM_LOCKED range are in RAM and are
 * accessed without a fault; a page on the device breaks both.  So such a
 * range never goes to a device: MIGRATE counts it as skipped, and a device
 * fault maps its system pages instead of migrating them. It may still come
 * back from one (pages left there by mlock2(MLOCK_ONFAULT), which does not
 * fault them in).
 *
 * Not covered: a page that another process locked.  After fork() the two
 * share their anonymous pages until one writes, and a child that mlock()s
 * a read-only range locks pages of the parent's unlocked one.  Those pages
 * move: migrate_vma_setup() unmaps them from every process before the
 * driver sees them, and that unmapping munlocks them (PG_mlocked is gone
 * by then), so only a page-table walk before the setup could tell; the
 * locked process faults them back on its next access.
 */
static bool vma_locked_in_ram(struct vm_area_struct *vma)
{
	return vma->vm_flags & VM_LOCKED;
}

/*
 * An explicit migration shared by several *units*: the calling thread and
 * helpers on hmmgpu's unbound workqueue. Each unit holds the mm's mmap_lock for
 * reading, claims the next unclaimed 2 MiB block of the range, migrates
 * it (overlapping its own batches as the caller alone would) and claims
 * the next, until none is left or the caller has a fatal signal.
 */
struct hmmgpu_migrate_job {
	struct hmmgpu_file *hfile;
	struct mm_struct *mm;
	struct task_struct *caller;
	pid_t tgid;
	u64 epoch;	/* shared by the units: none evicts another's blocks */
	unsigned long start;
	unsigned long end;
	unsigned long first_block;	/* ALIGN_DOWN(start, 2 MiB) */
	unsigned long nblocks;
	atomic_long_t next_block;	/* claimed so far */
	u32 target;
};

struct hmmgpu_migrate_unit {
	struct work_struct work;
	struct hmmgpu_migrate_job *job;
	struct hmmgpu_migrate_result res;
	int ret;
};

/* Most units of one migration, and fewest blocks worth one more unit. */
#define HMMGPU_MIGRATE_MAX_UNITS 8
#define HMMGPU_MIGRATE_UNIT_BLOCKS 2

/* Migrates [@addr, @end), a part of one 2 MiB block, of @vma. */
static void migrate_in_vma(struct hmmgpu_migrate_job *job,
			   struct vm_area_struct *vma, unsigned long addr,
			   unsigned long end, struct hmmgpu_mig *m[2],
			   struct hmmgpu_mig **inflight, int *cur,
			   struct hmmgpu_migrate_result *res)
{
	unsigned long npages = (end - addr) >> PAGE_SHIFT;
	int err;

	if (!hmmgpu_vma_migratable(vma, job->target)) {
		/* such memory is never on a device */
		if (job->target == HMMGPU_MIGRATE_TO_SYSTEM)
			res->already += npages;
		else
			res->skipped += npages;
		return;
	}
	if (job->target == HMMGPU_MIGRATE_TO_DEVICE && vma_locked_in_ram(vma)) {
		res->skipped += npages;
		return;
	}
	m[*cur]->tgid = job->tgid;
	m[*cur]->epoch = job->epoch;
	m[*cur]->range_start = job->start;
	m[*cur]->range_end = job->end;
	if (job->target == HMMGPU_MIGRATE_TO_SYSTEM) {
		/*
		 * One batch at a time back to system memory: overlapping
		 * them is suspected of a CPU-fault livelock that the fuzzer
		 * met on 6.1 and 6.12 (issue 13's note), until it is found.
		 */
		err = to_system_start(job->hfile, vma, addr, end, m[*cur]);
		if (!err)
			to_system_finish(job->hfile, m[*cur], res);
		if (err)
			res->skipped += npages;
		return;
	}
	err = to_device_start(job->hfile, vma, addr, end,
			      HMMGPU_CAUSE_EXPLICIT, m[*cur]);
	if (*inflight)
		batch_finish(job->hfile, *inflight, job->target, res);
	*inflight = err ? NULL : m[*cur];
	*cur ^= 1;
	/* the core refused the range: nothing moved */
	if (err)
		res->skipped += npages;
}

/*
 * One unit's work, with the mmap_lock held for reading. Batches overlap:
 * batch k+1 is collected, and its copies started, while the copy engine
 * works on batch k. Returns 0 or -EINTR.
 */
static int migrate_unit_run(struct hmmgpu_migrate_job *job,
			    struct hmmgpu_mig *m[2],
			    struct hmmgpu_migrate_result *res)
{
	struct hmmgpu_mig *inflight = NULL;
	unsigned long b;
	int ret = 0, cur = 0;

	while ((b = atomic_long_fetch_inc(&job->next_block)) < job->nblocks) {
		unsigned long bstart = job->first_block + b * SZ_2M;
		unsigned long end = min(job->end, bstart + SZ_2M);
		unsigned long addr = max(job->start, bstart);

		while (addr < end) {
			struct vm_area_struct *vma = find_vma(job->mm, addr);

			/*
			 * The whole range was mapped when the ioctl checked
			 * it; a unit that took the lock later may find a hole
			 * that a racing munmap made: nothing there moves.
			 */
			if (!vma || vma->vm_start >= end) {
				res->skipped += (end - addr) >> PAGE_SHIFT;
				break;
			}
			if (vma->vm_start > addr) {
				res->skipped += (vma->vm_start - addr) >> PAGE_SHIFT;
				addr = vma->vm_start;
			}
			migrate_in_vma(job, vma, addr, min(end, vma->vm_end), m,
				       &inflight, &cur, res);
			addr = min(end, vma->vm_end);
		}
		if (fatal_signal_pending(job->caller)) {
			ret = -EINTR;
			break;
		}
		cond_resched();
	}
	if (inflight)
		batch_finish(job->hfile, inflight, job->target, res);
	return ret;
}

/* A helper unit, on hmmgpu_migrate_wq. */
static void migrate_unit_work(struct work_struct *work)
{
	struct hmmgpu_migrate_unit *u =
		container_of(work, struct hmmgpu_migrate_unit, work);
	struct hmmgpu_mig *m[2];

	m[0] = mig_alloc(HMMGPU_BATCH_PAGES);
	m[1] = mig_alloc(HMMGPU_BATCH_PAGES);
	/* without memory, claim nothing: the other units do the work */
	if (m[0] && m[1]) {
		mmap_read_lock(u->job->mm);
		u->ret = migrate_unit_run(u->job, m, &u->res);
		mmap_read_unlock(u->job->mm);
	}
	mig_free(m[1]);
	mig_free(m[0]);
}

/*
 * How many units share a migration of @nblocks blocks. One while
 * hmmgpu's migration events are traced: tracers such as hmmprof select
 * events by the task that emits them (set_event_pid), and a helper's
 * events would be charged to no process.
 */
static unsigned int migrate_units(unsigned long nblocks)
{
	unsigned int n = READ_ONCE(hmmgpu_migrate_workers);

	if (trace_hmmgpu_migrate_batch_enabled() ||
	    trace_hmmgpu_evicted_enabled())
		return 1;

	if (!n)
		n = num_online_cpus();
	n = min_t(unsigned int, n, HMMGPU_MIGRATE_MAX_UNITS);
	return max_t(unsigned long, 1,
		     min_t(unsigned long, n,
			   nblocks / HMMGPU_MIGRATE_UNIT_BLOCKS));
}

/**
 * hmmgpu_migrate_range() - the MIGRATE ioctl's work.
 * @hfile: the caller's file; its device is the target of TO_DEVICE.
 * @start: page-aligned start in the current process's address space.
 * @end: page-aligned end, above @start.
 * @target: HMMGPU_MIGRATE_TO_DEVICE or HMMGPU_MIGRATE_TO_SYSTEM.
 * @res: pages moved, already there and skipped, accumulated.
 *
 * A range of several 2 MiB blocks is shared by up to migrate_workers
 * units (the caller and helpers on hmmgpu_migrate_wq), one block at a
 * time, so that page-table work and copies of different blocks proceed on
 * every CPU. The caller drops the mmap_lock after checking the range and
 * before the helpers start, and takes it again as one of the units: a
 * helper that waits for the lock behind a writer would otherwise wait for
 * the caller, which waits for the helper. A range munmapped in that window
 * counts as skipped; a fatal signal stops every unit between blocks.
 *
 * Return: 0; -EFAULT, before anything moved, when part of the range is
 * not mapped; -ENOMEM; -EINTR when a fatal signal stopped it between
 * batches (every page is then either moved or untouched).
 */
int hmmgpu_migrate_range(struct hmmgpu_file *hfile, unsigned long start,
			 unsigned long end, u32 target,
			 struct hmmgpu_migrate_result *res)
{
	struct hmmgpu_migrate_unit *units = NULL;
	struct hmmgpu_migrate_job job = {
		.hfile = hfile,
		.mm = current->mm,
		.caller = current,
		.tgid = task_tgid_nr(current),
		.epoch = next_epoch(),
		.start = start,
		.end = end,
		.first_block = ALIGN_DOWN(start, SZ_2M),
		.target = target,
	};
	struct vm_area_struct *vma;
	struct hmmgpu_mig *m[2];
	unsigned int nunits, i;
	unsigned long addr;
	int ret = 0;

	job.nblocks = (ALIGN(end, SZ_2M) - job.first_block) / SZ_2M;
	atomic_long_set(&job.next_block, 0);
	m[0] = mig_alloc(HMMGPU_BATCH_PAGES);
	m[1] = mig_alloc(HMMGPU_BATCH_PAGES);
	if (!m[0] || !m[1]) {
		ret = -ENOMEM;
		goto out_free;
	}

	mmap_read_lock(job.mm);
	for (addr = start; addr < end; addr = vma->vm_end) {
		vma = vma_lookup(job.mm, addr);
		if (!vma) {
			mmap_read_unlock(job.mm);
			ret = -EFAULT;
			goto out_free;
		}
	}
	nunits = migrate_units(job.nblocks);
	if (nunits > 1)
		units = kcalloc(nunits, sizeof(*units), GFP_KERNEL);
	/* without memory for the helpers, the caller does it all */
	if (!units) {
		ret = migrate_unit_run(&job, m, res);
		mmap_read_unlock(job.mm);
		goto out_free;
	}
	mmap_read_unlock(job.mm);

	for (i = 1; i < nunits; i++) {
		units[i].job = &job;
		INIT_WORK(&units[i].work, migrate_unit_work);
		queue_work(hmmgpu_migrate_wq, &units[i].work);
	}
	mmap_read_lock(job.mm);
	ret = migrate_unit_run(&job, m, res);
	mmap_read_unlock(job.mm);
	for (i = 1; i < nunits; i++) {
		flush_work(&units[i].work);
		res->moved += units[i].res.moved;
		res->already += units[i].res.already;
		res->skipped += units[i].res.skipped;
		if (!ret)
			ret = units[i].ret;
	}
	kfree(units);
out_free:
	mig_free(m[1]);
	mig_free(m[0]);
	return ret;
}

/**
 * hmmgpu_migrate_block() - migrate one block of a VMA to the device.
 * @hfile: the file charged; its device is the target.
 * @vma: a private VMA (hmmgpu_vma_migratable()) containing [@start, @end).
 * @start: page-aligned start.
 * @end: page-aligned end, at most 2 MiB past @start, in one 2 MiB block.
 * @cause: HMMGPU_CAUSE_DEVICE_FAULT, HMMGPU_CAUSE_PREFETCH or
 *	   HMMGPU_CAUSE_PEER.
 * @res: pages moved, already there and skipped, accumulated.
 *
 * A VM_LOCKED @vma does not move (vma_locked_in_ram()): every page of the
 * block counts as skipped.
 *
 * Context: mmap_lock of @vma's mm held; may sleep.
 * Return: 0, -ENOMEM, or the error of migrate_vma_setup().
 */
int hmmgpu_migrate_block(struct hmmgpu_file *hfile, struct vm_area_struct *vma,
			 unsigned long start, unsigned long end, int cause,
			 struct hmmgpu_migrate_result *res)
{
	struct hmmgpu_mig *m;
	int ret;

	hmmgpu_mmap_assert_locked(vma->vm_mm);
	if (vma_locked_in_ram(vma)) {
		res->skipped += (end - start) >> PAGE_SHIFT;
		return 0;
	}
	m = mig_alloc((end - start) >> PAGE_SHIFT);
	if (!m)
		return -ENOMEM;
	m->range_start = start;
	m->range_end = end;
	ret = to_device_start(hfile, vma, start, end, cause, m);
	if (!ret)
		to_device_finish(hfile, m, res);
	mig_free(m);
	return ret;
}

/**
 * hmmgpu_migrate_to_ram() - dev_pagemap_ops.migrate_to_ram: CPU fault.
 * @vmf: the fault on a device-private page of an hmmgpu device.
 *
 * Migrates the hmmgpu_fault_kib-aligned block around the fault, clamped
 * to the VMA, back to system memory in one batch.
 *
 * Context: the core holds the mmap_lock or the VMA lock and a reference
 * on vmf->page.  Whether it also holds the page lock depends on the
 * kernel: 6.1 and 6.12 do not lock it, newer kernels (7.3) take it with a
 * trylock first.  Nothing here depends on either: migrate_vma_setup() is
 * told the faulting page (@fault_page) and locks, or finds locked, every
 * page it collects accordingly.
 * Return: 0 (the access is retried), with VM_FAULT_MAJOR when pages
 * moved; VM_FAULT_OOM; or VM_FAULT_SIGBUS when the faulting page could
 * not be brought back (no memory for it).
 */
vm_fault_t hmmgpu_migrate_to_ram(struct vm_fault *vmf)
{
	struct hmmgpu_device *hdev = hmmgpu_page_dmem(vmf->page)->hdev;
	struct vm_area_struct *vma = vmf->vma;
	unsigned long gran = (unsigned long)hmmgpu_fault_kib << 10;
	unsigned long start, end, npages, fidx, moved, nfailed;
	struct migrate_vma args = { 0 };
	struct hmmgpu_mig *m;
	u64 t0 = ktime_get_ns(), busy;
	vm_fault_t ret = 0;
	bool compound;

	/*
	 * khugepaged collapsing a 2 MiB region "swaps in" its non-present
	 * entries with do_swap_page(), device pages included (it allows up
	 * to max_ptes_swap of them): it would pull data the program put on
	 * the device back to system memory, unasked, to make a huge page of
	 * it (found as pages migrated twice in test_samples and test_parity).
	 * Its fault, from a kernel thread with none of the flags of an
	 * access (user, remote GUP, killable page fault), is refused: the
	 * page stays, and the collapse gives up on the entry it cannot
	 * isolate. Explicit collapses (MADV_COLLAPSE, from the process) and
	 * every real access still bring pages back.
	 */
	if ((current->flags & PF_KTHREAD) &&
	    !(vmf->flags & (FAULT_FLAG_USER | FAULT_FLAG_REMOTE |
			    FAULT_FLAG_KILLABLE)))
		return 0;

	/*
	 * A 2 MiB device folio mapped by a PMD comes back whole, to a 2 MiB
	 * system folio when there is one: one copy batch for all its pages
	 * on every channel, and the CPU keeps a huge page. (Splitting it to
	 * bring back fault_kib would cost a split now and leave a PTE-mapped
	 * folio that no later migration collects whole.) Its copies are done
	 * again by the CPU if the engine fails them, since the access cannot
	 * go on without its page and the folio moves whole or not at all.
	 */
	compound = !vmf->pte && folio_test_large(page_folio(vmf->page));
	if (compound)
		gran = SZ_2M;
	else if (READ_ONCE(hmmgpu_dpage(vmf->page)->preferred))
		/* the device is where it should be: only what the CPU needs */
		gran = PAGE_SIZE;
	start = max(ALIGN_DOWN(vmf->address, gran), vma->vm_start);
	end = min(ALIGN_DOWN(vmf->address, gran) + gran, vma->vm_end);
	npages = (end - start) >> PAGE_SHIFT;
	fidx = (vmf->address - start) >> PAGE_SHIFT;

	m = mig_alloc(npages);
	if (!m)
		return VM_FAULT_OOM;

	args.vma = vma;
	args.start = start;
	args.end = end;
	args.src = m->src;
	args.dst = m->dst;
	args.pgmap_owner = &hmmgpu_owner;
	args.flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE;
	if (compound)
		args.flags |= HMMGPU_MIGRATE_VMA_SELECT_COMPOUND;
	args.fault_page = vmf->page;
	if (migrate_vma_setup(&args)) {
		ret = VM_FAULT_SIGBUS;
		goto out_free;
	}

	prepare_to_system(hdev, m, npages, &busy, &nfailed, mig_compound(m),
			  true);
	/*
	 * The faulting page has to come back or the access cannot go on. If
	 * the copy engine failed it (its data is intact on the device), copy
	 * it with the CPU; only without a page to copy it to is the access
	 * lost.
	 */
	if ((m->src[fidx] & MIGRATE_PFN_MIGRATE) && !m->dst[fidx]) {
		struct page *spage = migrate_pfn_to_page(m->src[fidx]);
		struct page *dpage = alloc_page(GFP_HIGHUSER_MOVABLE);

		if (spage && dpage) {
			lock_page(dpage);
			copy_highpage(dpage, hmmgpu_backing_page(spage));
			m->dst[fidx] = migrate_pfn(page_to_pfn(dpage));
		} else {
			if (dpage)
				__free_page(dpage);
			ret = VM_FAULT_SIGBUS;
		}
	}
	migrate_vma_pages(&args);
	moved = count_moved(m, npages);
	migrate_vma_finalize(&args);
	hmmgpu_view_remap(vma->vm_mm, 0, args.start, args.end);

	/*
	 * Only a program's own access can be a bounce (DOC: Thrashing): not a
	 * fault that the kernel takes for it (hmm_range_fault() of a device
	 * write breaking copy-on-write, copy_to_user()).
	 */
	hmmgpu_count_fault_back(hdev, vma->vm_mm, moved, busy, nfailed,
				ktime_get_ns() - t0,
				moved && (vmf->flags & FAULT_FLAG_USER) ?
				vmf->address : 0);
	trace_hmmgpu_cpu_fault(hdev->index, vmf->address, start, npages,
			       moved, ktime_get_ns() - t0);
	/*
	 * The faulting page did not move: someone else holds it (an
	 * eviction, a migration, another CPU fault), and the access will
	 * fault again at once. Where the core does not wait for a locked
	 * device page itself (6.1 and 6.12 do not, 7.3 does), a fault in
	 * kernel mode (copy_to_user() of an ioctl) retries without ever
	 * reaching a preemption point: on a kernel without full preemption,
	 * the copy thread the holder waits for could then never run on this
	 * CPU (a soft lockup, found by the fuzzer on 6.1). Give the CPU
	 * away for a tick before the access faults again.
	 */
	if (!(src_entry(m, fidx) & MIGRATE_PFN_MIGRATE))
		schedule_timeout_uninterruptible(1);
	/*
	 * Data came from device memory, as a swap-in brings it from a swap
	 * device: a major fault, in the task's maj_flt (getrusage(), perf's
	 * major-faults). libhmm tells by it that a kernel touched managed
	 * memory through host pointers (docs/api.md).
	 */
	if (moved)
		ret |= VM_FAULT_MAJOR;
out_free:
	mig_free(m);
	return ret;
}

/* mmu_interval_notifier for residency snapshots: only bumps the sequence. */
static bool residency_invalidate(struct mmu_interval_notifier *mni,
				 const struct mmu_notifier_range *range,
				 unsigned long cur_seq)
{
	mmu_interval_set_seq(mni, cur_seq);
	return true;
}

static const struct mmu_interval_notifier_ops residency_notifier_ops = {
	.invalidate = residency_invalidate,
};

/* Not known yet: hmm_range_fault() found no page there. */
#define RESIDENCY_UNKNOWN 0xffffffffu

/*
 * The snapshot word (HMMGPU_SNAP_*) of @page, a device page or one in
 * RAM: where it is and which device holds it.
 */
static u32 snap_where(struct hmmgpu_device *hdev, struct page *page)
{
	u32 w;

	if (!is_device_private_page(page))
		return HMMGPU_RESIDENCY_SYSTEM | HMMGPU_SNAP_NO_DEVICE;
	/* a device page of another driver is on another device, too */
	if (!hmmgpu_is_hmmgpu_page(page))
		return HMMGPU_RESIDENCY_OTHER_DEVICE | HMMGPU_SNAP_NO_DEVICE;
	w = hmmgpu_page_dmem(page) == &hdev->dmem ?
	    HMMGPU_RESIDENCY_THIS_DEVICE : HMMGPU_RESIDENCY_OTHER_DEVICE;
	return w | (container_of(hmmgpu_page_dmem(page), struct hmmgpu_device,
				 dmem)->index << HMMGPU_SNAP_DEVICE_SHIFT);
}

/*
 * Is @page, mapped at @order, the zero page or the huge zero page?  No
 * kernel exports the huge zero folio to modules, but it is the one huge
 * page mapped in a process that is neither anonymous nor in a file's
 * page cache (nor, for hmm_range_fault(), a DAX page: those are refused).
 */
static bool snap_zero(struct page *page, unsigned int order)
{
	struct folio *folio = page_folio(page);

	if (is_zero_pfn(page_to_pfn(page)))
		return true;
	return order == PMD_SHIFT - PAGE_SHIFT && folio_test_large(folio) &&
	       !folio_test_anon(folio) && !folio_test_hugetlb(folio) &&
	       !folio->mapping;
}

/* The snapshot word of one hmm_range_fault() entry for @addr. */
static u32 snap_of(struct hmmgpu_device *hdev, unsigned long hpfn,
		   unsigned long addr)
{
	unsigned int order;
	struct page *page;
	u32 w;

	if (!(hpfn & HMM_PFN_VALID) || (hpfn & HMM_PFN_ERROR))
		return RESIDENCY_UNKNOWN;
	page = hmmgpu_hmm_pfn_to_page(hpfn, addr);
	w = snap_where(hdev, page) | HMMGPU_SNAP_READ;
	if (hpfn & HMM_PFN_WRITE)
		w |= HMMGPU_SNAP_WRITE;
	order = hmm_pfn_to_map_order(hpfn);
	if (!is_device_private_page(page)) {
		w |= HMMGPU_SNAP_MAPPED;
		if (snap_zero(page, order))
			w |= HMMGPU_SNAP_ZERO;
	}
	if (order == PUD_SHIFT - PAGE_SHIFT)
		w |= HMMGPU_SNAP_PUD;
	else if (order == PMD_SHIFT - PAGE_SHIFT)
		w |= HMMGPU_SNAP_PMD;
	return w;
}

/* A walk of the page tables under [@start, ...), filling @snap. */
struct residency_walk {
	struct hmmgpu_device *hdev;
	unsigned long start;
	u32 *snap;
	/* the VMA may be read: a mapped page is readable */
	bool vma_read;
};

/*
 * hmmgpu_apply_to_existing_page_range() callback, under the page table
 * lock: what the entry of @addr says of its page, for pages still
 * unknown.  Empty entries (some kernels skip them) stay unknown: NONE.
 */
static int residency_pte(pte_t *ptep, unsigned long addr, void *data)
{
	struct residency_walk *w = data;
	u32 *snap = &w->snap[(addr - w->start) >> PAGE_SHIFT];
	u32 read = w->vma_read ? HMMGPU_SNAP_READ : 0;
	pte_t pte = ptep_get(ptep);
	struct page *page;
	bool swapped;

	if (*snap != RESIDENCY_UNKNOWN || pte_none(pte))
		return 0;
	if (pte_present(pte)) {
		/* PROT_NONE: of the VMA, or of NUMA balancing's hinting */
		*snap = HMMGPU_RESIDENCY_SYSTEM | HMMGPU_SNAP_NO_DEVICE |
			HMMGPU_SNAP_MAPPED | read;
		return 0;
	}
	page = hmmgpu_pte_swap_page(pte, &swapped);
	if (page) {
		/* device-private, exclusive, or under migration: where now */
		*snap = snap_where(w->hdev, page) | read;
		if (hmmgpu_pte_device_exclusive(pte))
			*snap |= HMMGPU_SNAP_EXCLUSIVE;
	} else if (swapped) {
		/* system memory's backing store */
		*snap = HMMGPU_RESIDENCY_SYSTEM | HMMGPU_SNAP_NO_DEVICE |
			HMMGPU_SNAP_SWAP | read;
	}
	/* else a marker or a poisoned page: no data, NONE */
	return 0;
}

enum residency_pmd_kind {
	RESIDENCY_PMD_EMPTY,
	RESIDENCY_PMD_TABLE,
	RESIDENCY_PMD_HUGE,
};

/*
 * What the page tables of @mm hold at the PMD of @addr: nothing, a PTE
 * table, or a huge page (mapped, PROT_NONE or under migration).  The
 * caller holds the mmap_lock, which keeps every level above the PTE
 * tables in place.
 */
static enum residency_pmd_kind residency_pmd(struct mm_struct *mm,
					     unsigned long addr)
{
	pmd_t pmd;

	if (!hmmgpu_pmd_read(mm, addr, &pmd) || pmd_none(pmd))
		return RESIDENCY_PMD_EMPTY;
	if (!pmd_present(pmd) || pmd_leaf(pmd))
		return RESIDENCY_PMD_HUGE;
	return pmd_bad(pmd) ? RESIDENCY_PMD_EMPTY : RESIDENCY_PMD_TABLE;
}

static bool snap_unknown(const u32 *snap, unsigned long n)
{
	unsigned long i;

	for (i = 0; i < n; i++)
		if (snap[i] == RESIDENCY_UNKNOWN)
			return true;
	return false;
}

/*
 * Fills the entries of @snap (for [@start, @end) of @vma) that
 * hmm_range_fault() left unknown, from the page tables: PROT_NONE VMAs
 * (hmm_range_fault() refuses them), swap, migration and device-exclusive
 * entries and device pages of other drivers (it reports all of these as
 * absent).  Reads entries only, allocates nothing, faults nothing in.
 */
static void residency_walk(struct hmmgpu_device *hdev,
			   struct vm_area_struct *vma, unsigned long start,
			   unsigned long end, u32 *snap)
{
	struct residency_walk w = {
		.hdev = hdev,
		.start = start,
		.snap = snap,
		.vma_read = vma->vm_flags & VM_READ,
	};
	struct mm_struct *mm = vma->vm_mm;
	unsigned long addr, next, i;

	hmmgpu_mmap_assert_locked(mm);
	for (addr = start; addr < end; addr = next) {
		unsigned long first = (addr - start) >> PAGE_SHIFT;
		unsigned long n;

		next = pmd_addr_end(addr, end);
		n = (next - addr) >> PAGE_SHIFT;
		if (!snap_unknown(snap + first, n))
			continue;
		switch (residency_pmd(mm, addr)) {
		case RESIDENCY_PMD_TABLE:
			hmmgpu_apply_to_existing_page_range(mm, addr,
							    next - addr,
							    residency_pte, &w);
			break;
		case RESIDENCY_PMD_HUGE: {
			/* a 2 MiB device folio, or a huge page in RAM */
			struct page *page = NULL;
			u32 where = HMMGPU_RESIDENCY_SYSTEM |
				    HMMGPU_SNAP_NO_DEVICE | HMMGPU_SNAP_MAPPED;
			pmd_t pmd;

			if (hmmgpu_pmd_read(mm, addr, &pmd) && !pmd_present(pmd))
				page = hmmgpu_pmd_swap_page(pmd);
			if (page)
				where = snap_where(hdev, page) |
					(w.vma_read ? HMMGPU_SNAP_READ : 0);
			for (i = first; i < first + n; i++)
				if (snap[i] == RESIDENCY_UNKNOWN)
					snap[i] = where | HMMGPU_SNAP_PMD;
			break;
		}
		case RESIDENCY_PMD_EMPTY:
			break;
		}
	}
}

/* Can residency_walk() read the page tables of @vma? */
static bool residency_walkable(struct vm_area_struct *vma)
{
	/* PFN maps (views among them) hold no memory of the process */
	return !(vma->vm_flags & (VM_IO | VM_PFNMAP | VM_MIXEDMAP |
				  VM_HUGETLB));
}

/* The word of a page that holds no data. */
#define SNAP_NONE (HMMGPU_RESIDENCY_NONE | HMMGPU_SNAP_NO_DEVICE)

/* Snapshot of [@start, @end), at most HMMGPU_BATCH_PAGES, into @snap. */
static int residency_chunk(struct hmmgpu_device *hdev, struct mm_struct *mm,
			   struct mmu_interval_notifier *mni,
			   unsigned long start, unsigned long end,
			   unsigned long *pfns, u32 *snap)
{
	struct hmm_range range = {
		.notifier = mni,
		.hmm_pfns = pfns,
		.default_flags = 0,
		.pfn_flags_mask = 0,
		.dev_private_owner = &hmmgpu_owner,
	};
	unsigned long addr, i;
	int tries = 0, ret;

again:
	/*
	 * A range that keeps changing (another thread migrating or
	 * remapping it) is read again a bounded number of times; after that
	 * the page tables, read under their locks, are the answer: like
	 * every answer of this ioctl, a snapshot.
	 */
	if (tries++) {
		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	range.notifier_seq = mmu_interval_read_begin(mni);
	mmap_read_lock(mm);
	for (addr = start; addr < end;) {
		struct vm_area_struct *vma = find_vma(mm, addr);
		unsigned long vend, n;
		u32 *l;

		if (!vma || vma->vm_start >= end) {
			for (i = (addr - start) >> PAGE_SHIFT;
			     i < (end - start) >> PAGE_SHIFT; i++)
				snap[i] = SNAP_NONE;
			break;
		}
		if (vma->vm_start > addr) {
			for (; addr < vma->vm_start; addr += PAGE_SIZE)
				snap[(addr - start) >> PAGE_SHIFT] = SNAP_NONE;
		}
		vend = min(end, vma->vm_end);
		n = (vend - addr) >> PAGE_SHIFT;
		l = snap + ((addr - start) >> PAGE_SHIFT);
		range.start = addr;
		range.end = vend;
		range.hmm_pfns = pfns + ((addr - start) >> PAGE_SHIFT);
		ret = hmm_range_fault(&range);
		if (ret == -EBUSY && tries < HMMGPU_RETRIES) {
			mmap_read_unlock(mm);
			goto again;
		}
		/* on another error, the page tables tell what there is */
		for (i = 0; i < n; i++)
			l[i] = ret ? RESIDENCY_UNKNOWN :
			       snap_of(hdev, range.hmm_pfns[i],
				       addr + (i << PAGE_SHIFT));
		if (residency_walkable(vma) && snap_unknown(l, n))
			residency_walk(hdev, vma, addr, vend, l);
		/* nothing found: never touched (or no data, see the uapi) */
		for (i = 0; i < n; i++)
			if (l[i] == RESIDENCY_UNKNOWN)
				l[i] = SNAP_NONE;
		addr = vend;
	}
	mmap_read_unlock(mm);
	if (mmu_interval_check_retry(mni, range.notifier_seq) &&
	    tries < HMMGPU_RETRIES)
		goto again;
	return 0;
}

/**
 * hmmgpu_residency() - the work of the RESIDENCY and SNAPSHOT ioctls.
 * @hfile: the caller's file.
 * @start: page-aligned start in the current process's address space.
 * @npages: pages to report.
 * @out: user buffer of @npages bytes (HMMGPU_RESIDENCY_*) or, with
 *	 @words, of @npages u32 words (HMMGPU_SNAP_*).
 * @words: SNAPSHOT (true) or RESIDENCY.
 * @count: pages per HMMGPU_RESIDENCY_* value, accumulated.
 *
 * Faults nothing in and migrates nothing. hmm_range_fault() (without
 * fault flags) reports mapped pages, with their permission and mapping
 * level, and this driver's device pages; what it reports as absent
 * (PROT_NONE VMAs, swap, migration and device-exclusive entries, device
 * pages of other drivers) is read from the page table entries
 * (residency_walk()), under the mmap_lock and the page table locks.
 *
 * Return: 0, -EFAULT when @out is not writable, -ENOMEM, -EINTR, or the
 * error of mmu_interval_notifier_insert().
 */
int hmmgpu_residency(struct hmmgpu_file *hfile, unsigned long start,
		     unsigned long npages, void __user *out, bool words,
		     u64 count[4])
{
	struct mm_struct *mm = current->mm;
	struct mmu_interval_notifier mni;
	unsigned long done, *pfns;
	u32 *snap;
	u8 *loc;
	int ret;

	pfns = kvmalloc_array(HMMGPU_BATCH_PAGES, sizeof(*pfns), GFP_KERNEL);
	snap = kvmalloc_array(HMMGPU_BATCH_PAGES, sizeof(*snap), GFP_KERNEL);
	loc = kmalloc(HMMGPU_BATCH_PAGES, GFP_KERNEL);
	if (!pfns || !snap || !loc) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = mmu_interval_notifier_insert(&mni, mm, start,
					   npages << PAGE_SHIFT,
					   &residency_notifier_ops);
	if (ret)
		goto out_free;

	for (done = 0; done < npages; done += HMMGPU_BATCH_PAGES) {
		unsigned long n = min_t(unsigned long, npages - done,
					HMMGPU_BATCH_PAGES);
		unsigned long s = start + (done << PAGE_SHIFT), i;
		int err;

		ret = residency_chunk(hfile->hdev, mm, &mni, s,
				      s + (n << PAGE_SHIFT), pfns, snap);
		if (ret)
			break;
		if (words)
			hmmgpu_dup_snapshot(hfile, mm, s, n, snap);
		for (i = 0; i < n; i++) {
			loc[i] = snap[i] & HMMGPU_SNAP_WHERE_MASK;
			count[loc[i]]++;
		}
		if (words)
			err = copy_to_user((u32 __user *)out + done, snap,
					   n * sizeof(*snap));
		else
			err = copy_to_user((u8 __user *)out + done, loc, n);
		if (err) {
			ret = -EFAULT;
			break;
		}
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		cond_resched();
	}
	mmu_interval_notifier_remove(&mni);
out_free:
	kfree(loc);
	kvfree(snap);
	kvfree(pfns);
	return ret;
}
