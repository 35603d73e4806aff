// SPDX-License-Identifier: GPL-2.0
/*
 * hmmgpu_dmem.c - device memory: device-private pages, their backing
 * store, the allocator, LRU and eviction.
 */

#include <linux/delay.h>
#include <linux/highmem.h>
#include <linux/ioport.h>
#include <linux/memremap.h>
#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include <drm/drm_print.h>

#include "hmmgpu_drv.h"

/**
 * DOC: Device memory
 *
 * Each device has one MEMORY_DEVICE_PRIVATE pagemap covering all of its
 * memory (the mem_mib parameter, rounded up to 2 MiB). memremap_pages()
 * gives it real struct pages in ZONE_DEVICE; the CPU cannot map them, so
 * a CPU access to one faults and hmmgpu_migrate_to_ram() brings the data
 * back. Every device page has a *backing page* that stores the page's
 * data, the simulated VRAM: an ordinary system page allocated at probe,
 * or on a PCI device a page of its memory BAR (DOC: PCI personality).
 * Nothing is allocated per page when migrating.
 *
 * The pages are grouped in 2 MiB blocks. Allocation pops pages from the
 * free stack of the first block that has free pages, so a migration batch
 * fills blocks densely; freeing (the pagemap's page_free callback) pushes
 * the page back on its block's stack. Both are O(1) under @lock. Partly
 * used blocks come first in the list of blocks with free pages and wholly
 * free ones last, so that 4 KiB pages do not break up free blocks while
 * others are partly used: where the kernel has device THP, a wholly free
 * block becomes one 2 MiB folio (hmmgpu_dmem_alloc_folio()).
 *
 * Blocks with pages in use sit on an LRU list; allocating from a block or
 * migrating into it makes it the most recently used. When the allocator
 * runs dry, hmmgpu_dmem_alloc_evicting() migrates the least recently used blocks
 * back to system memory with migrate_device_range(), whole blocks at a
 * time: that keeps evictions batched like every other migration, the way
 * GPU drivers evict buffer objects rather than pages.
 *
 * A migration never evicts for itself: each one (a MIGRATE call with all
 * its units, a device fault, a prefetch) has an epoch, a number no other
 * has, and the blocks it takes pages of carry it; eviction passes over
 * the blocks of the epoch that asks for room, and over blocks holding
 * pages of its range that it has not reached yet (each device page
 * records the process and address it came for): a migration whose range
 * is partly on the device already would otherwise evict its own later
 * part to make room for its first, and move it back in. A range larger than the
 * device therefore fills the device and stops, the rest counted as
 * skipped, instead of pushing out its own first part to make room for
 * its last (which a later access would only bring back).
 *
 * Read-mostly copies (DOC: Read-mostly in hmmgpu_view.c) are device
 * pages that no CPU page table maps: eviction and removal drop them
 * (they are clean) before migrating the rest of a block.
 *
 * Pages of a range whose preferred location is the device
 * (HMMGPU_ADVICE_PREFERRED) are marked, and their blocks count them:
 * eviction takes blocks without such pages first, and takes the others
 * only to make room for more preferred data. Data without the advice
 * does not push preferred data out; it stays in system memory (or a
 * view maps it there) when the device is full of preferred data.
 *
 * A device page never shows a previous owner's data: a page handed out
 * by the allocator is always fully written by the copy engine before it
 * is mapped, either with the source page's data or with zeros when the
 * source is a hole or the zero page.
 *
 * All hmmgpu devices share one pgmap owner, &hmmgpu_owner, so that a
 * migration to one device selects pages sitting on another one and moves
 * them device to device.
 */

/**
 * DOC: Locking
 *
 * Lock order, outermost first:
 *
 * 1. mmap_lock of the target mm, read (migration, CPU faults);
 * 2. &hmmgpu_dmem.evict_lock (eviction passes, device removal);
 * 3. page locks, taken by migrate_vma_setup()/migrate_device_range()
 *    (the latter only tries: a page locked by a migration in flight is
 *    skipped by eviction, so eviction never waits for a migration that
 *    waits for it);
 * 4. &hmmgpu_dmem.lock and &hmmgpu_device.files_lock, spinlocks, never
 *    held across anything that sleeps.
 *
 * No driver lock is held across migrate_vma_setup(); the copy engine's
 * fence is waited for with only the mmap_lock and page locks held.
 */

int hmmgpu_owner;
/* Owner of migrations to a device that select system pages only. */
int hmmgpu_fill_owner;

static struct page *dpage_to_page(struct hmmgpu_dmem *dmem,
				  struct hmmgpu_dpage *dp)
{
	return pfn_to_page(dmem->pfn_first + (dp - dmem->dpages));
}

static struct hmmgpu_block *dpage_block(struct hmmgpu_dmem *dmem,
					struct hmmgpu_dpage *dp)
{
	return &dmem->blocks[(dp - dmem->dpages) / HMMGPU_BLOCK_PAGES];
}

/* Makes @blk the most recently used block. */
static void block_touch(struct hmmgpu_dmem *dmem, struct hmmgpu_block *blk)
{
	lockdep_assert_held(&dmem->lock);
	list_move_tail(&blk->lru, &dmem->lru);
}

/*
 * Forgets the LRU state of a device folio's last data.  A migration copies
 * its source's PG_active or PG_unevictable, PG_referenced, PG_workingset
 * and PG_dirty to the device folio (folio_migrate_flags()), and the
 * migration back copies them on and clears the first two.  A folio freed
 * while on the device keeps them: neither the core's free path nor
 * zone_device_page_init() (which clears nothing before 6.19, and then the
 * low byte of the flags only) clears them.  Its next data would get the
 * state of its last one: a page never accessed coming back active, or,
 * given PG_unevictable by one source and PG_active by the next, a CPU
 * fault hitting VM_BUG_ON_FOLIO() in folio_migrate_flags().  Reads first:
 * a clean folio costs no atomic operation.
 */
static void device_folio_clean(struct folio *folio)
{
	if (folio_test_active(folio))
		folio_clear_active(folio);
	if (folio_test_unevictable(folio))
		folio_clear_unevictable(folio);
	if (folio_test_mlocked(folio))
		folio_clear_mlocked(folio);
	if (folio_test_referenced(folio))
		folio_clear_referenced(folio);
	if (folio_test_workingset(folio))
		folio_clear_workingset(folio);
	if (folio_test_dirty(folio))
		folio_clear_dirty(folio);
}

/**
 * hmmgpu_dmem_alloc() - take free device pages.
 * @dmem: the device memory.
 * @pages: filled with up to @n pages, each initialized with
 *	   hmmgpu_device_page_init() (one reference, locked) and
 *	   without the LRU state of their last data.
 * @n: pages wanted.
 * @epoch: the migration taking them (see evict_next()).
 *
 * Does not evict: a caller that got fewer pages than it wanted may call
 * hmmgpu_dmem_alloc_evicting() for the rest.
 *
 * Return: the number of pages taken, 0 once the device is being removed.
 */
unsigned long hmmgpu_dmem_alloc(struct hmmgpu_dmem *dmem, struct page **pages,
				unsigned long n, u64 epoch)
{
	unsigned long got = 0, i;

	spin_lock(&dmem->lock);
	while (got < n && !dmem->dying && !list_empty(&dmem->avail)) {
		struct hmmgpu_block *blk;

		blk = list_first_entry(&dmem->avail, struct hmmgpu_block,
				       avail);
		if (blk->nr_free == HMMGPU_BLOCK_PAGES)
			list_add_tail(&blk->lru, &dmem->lru);
		else
			block_touch(dmem, blk);
		blk->epoch = epoch;
		while (got < n && blk->free) {
			struct hmmgpu_dpage *dp = blk->free;

			blk->free = dp->next_free;
			dp->next_free = NULL;
			blk->nr_free--;
			pages[got++] = dpage_to_page(dmem, dp);
		}
		if (!blk->nr_free)
			list_del_init(&blk->avail);
	}
	dmem->nr_free -= got;
	spin_unlock(&dmem->lock);

	for (i = 0; i < got; i++) {
		hmmgpu_device_page_init(pages[i], &dmem->pgmap);
		device_folio_clean(page_folio(pages[i]));
	}
	return got;
}

/**
 * hmmgpu_dmem_alloc_folio() - take a whole free block as one 2 MiB folio.
 * @dmem: the device memory.
 * @epoch: the migration taking it (see evict_next()).
 *
 * Only where the kernel has device THP (HMMGPU_HAVE_DEVICE_THP). Wholly free
 * blocks are the tail of the avail list (order-0 allocations take partly
 * used blocks first), so the last block of the list tells. Does not
 * evict.
 *
 * Return: the folio's first page (one reference, locked), or NULL when no
 * block is entirely free or the device is being removed.
 */
struct page *hmmgpu_dmem_alloc_folio(struct hmmgpu_dmem *dmem, u64 epoch)
{
	struct hmmgpu_block *found = NULL;
	struct page *page;
	unsigned int i;

	spin_lock(&dmem->lock);
	/* wholly free blocks are the tail of the list: the last one tells */
	if (!dmem->dying && !list_empty(&dmem->avail)) {
		found = list_last_entry(&dmem->avail, struct hmmgpu_block,
					avail);
		if (found->nr_free != HMMGPU_BLOCK_PAGES)
			found = NULL;
	}
	if (found) {
		found->free = NULL;
		found->nr_free = 0;
		found->epoch = epoch;
		list_del_init(&found->avail);
		list_add_tail(&found->lru, &dmem->lru);
		dmem->nr_free -= HMMGPU_BLOCK_PAGES;
	}
	spin_unlock(&dmem->lock);
	if (!found)
		return NULL;

	for (i = 0; i < HMMGPU_BLOCK_PAGES; i++)
		dmem->dpages[found->first + i].next_free = NULL;
	page = dpage_to_page(dmem, &dmem->dpages[found->first]);
	hmmgpu_device_folio_init(page, &dmem->pgmap);
	device_folio_clean(page_folio(page));
	return page;
}

/**
 * hmmgpu_dmem_claim() - a migration finds one of its pages here already.
 * @dmem: the device memory.
 * @page: a device page of @dmem that a migration to it counts as there.
 * @epoch: that migration's epoch.
 *
 * The page's block becomes the most recently used and the migration's,
 * so that the rest of the migration does not evict what it found: data
 * of the range it moves, like the data it brings.
 */
void hmmgpu_dmem_claim(struct hmmgpu_dmem *dmem, struct page *page, u64 epoch)
{
	struct hmmgpu_block *blk = dpage_block(dmem, hmmgpu_dpage(page));

	/* the other pages of a batch mostly share the first one's block */
	if (READ_ONCE(blk->epoch) == epoch)
		return;
	spin_lock(&dmem->lock);
	if (blk->epoch != epoch) {
		blk->epoch = epoch;
		/* a block with no page in use is on no LRU list */
		if (!list_empty(&blk->lru))
			block_touch(dmem, blk);
	}
	spin_unlock(&dmem->lock);
}

/**
 * hmmgpu_dmem_set_preferred() - mark device pages as preferred data.
 * @dmem: the device memory.
 * @page: the first page, taken from @dmem for a migration.
 * @nr: pages from @page on (all in one block).
 *
 * See DOC: Device memory: their block is evicted last.
 */
void hmmgpu_dmem_set_preferred(struct hmmgpu_dmem *dmem, struct page *page,
			       unsigned long nr)
{
	struct hmmgpu_dpage *dp = hmmgpu_dpage(page);
	struct hmmgpu_block *blk = dpage_block(dmem, dp);
	unsigned long i;

	spin_lock(&dmem->lock);
	for (i = 0; i < nr; i++, dp++) {
		if (dp->preferred)
			continue;
		dp->preferred = true;
		blk->nr_preferred++;
	}
	spin_unlock(&dmem->lock);
}

/**
 * hmmgpu_dmem_forget_preferred() - unmark the preferred pages of a range.
 * @dmem: the device memory.
 * @tgid: the process of the range.
 * @start: start of the range.
 * @end: its end.
 *
 * By the address each page came for (&hmmgpu_dpage.addr), block by block:
 * a page that mremap() moved since keeps its mark until it leaves.
 */
void hmmgpu_dmem_forget_preferred(struct hmmgpu_dmem *dmem, pid_t tgid,
				  unsigned long start, unsigned long end)
{
	unsigned int b, i;

	for (b = 0; b < dmem->nblocks; b++) {
		struct hmmgpu_block *blk = &dmem->blocks[b];

		if (!READ_ONCE(blk->nr_preferred))
			continue;
		spin_lock(&dmem->lock);
		for (i = 0; i < HMMGPU_BLOCK_PAGES && blk->nr_preferred; i++) {
			struct hmmgpu_dpage *dp = &dmem->dpages[blk->first + i];

			if (dp->preferred && dp->tgid == tgid &&
			    dp->addr >= start && dp->addr < end) {
				dp->preferred = false;
				blk->nr_preferred--;
			}
		}
		spin_unlock(&dmem->lock);
		cond_resched();
	}
}

/**
 * hmmgpu_dmem_resident() - device pages in use that a file's migrations took.
 * @dmem: the device memory.
 * @client: the file's &hmmgpu_file.client_id (a page shared with a child
 *	    after fork() stays the file's that moved it).
 *
 * A walk of every page, for fdinfo: cheap next to a read of /proc.
 */
unsigned long hmmgpu_dmem_resident(struct hmmgpu_dmem *dmem, u64 client)
{
	unsigned long i, n = 0;

	for (i = 0; i < dmem->npages; i++) {
		if (READ_ONCE(dmem->dpages[i].client) == client &&
		    page_ref_count(dpage_to_page(dmem, &dmem->dpages[i])))
			n++;
		if (!(i & 4095))
			cond_resched();
	}
	return n;
}

/*
 * The pagemap's free callback: the last reference to a device folio of
 * @nr pages (1, or a whole block) starting at @page went. A block that
 * gets its first free page goes to the head of the avail list, one that
 * becomes entirely free to its tail (see hmmgpu_dmem_alloc_folio()).
 */
static void hmmgpu_page_free(struct page *page, unsigned long nr)
{
	struct hmmgpu_dmem *dmem = hmmgpu_page_dmem(page);
	struct hmmgpu_dpage *dp = hmmgpu_dpage(page);
	struct hmmgpu_block *blk = dpage_block(dmem, dp);
	unsigned long i;

	/*
	 * A page table entry holds a reference: the last one cannot go while
	 * an entry still maps the folio. If it does, someone put a reference
	 * they did not own, and this stack is the first place it shows.
	 */
	VM_WARN_ON_ONCE_FOLIO(folio_mapped(page_folio(page)), page_folio(page));

	spin_lock(&dmem->lock);
	for (i = 0; i < nr; i++, dp++) {
		dp->next_free = blk->free;
		blk->free = dp;
		WRITE_ONCE(dp->tgid, 0);	/* see block_holds_range() */
		if (dp->preferred) {
			dp->preferred = false;
			blk->nr_preferred--;
		}
	}
	if (!blk->nr_free)
		list_add(&blk->avail, &dmem->avail);
	blk->nr_free += nr;
	if (blk->nr_free == HMMGPU_BLOCK_PAGES) {
		list_del_init(&blk->lru);
		list_move_tail(&blk->avail, &dmem->avail);
	}
	dmem->nr_free += nr;
	spin_unlock(&dmem->lock);
}

HMMGPU_DEFINE_PAGEMAP_FREE(hmmgpu_pagemap_free, hmmgpu_page_free)

const struct dev_pagemap_ops hmmgpu_devmem_ops = {
	HMMGPU_PAGEMAP_FREE_OP(hmmgpu_pagemap_free),
	.migrate_to_ram = hmmgpu_migrate_to_ram,
};

u64 hmmgpu_dmem_free_bytes(struct hmmgpu_dmem *dmem)
{
	u64 bytes;

	spin_lock(&dmem->lock);
	bytes = (u64)dmem->nr_free << PAGE_SHIFT;
	spin_unlock(&dmem->lock);
	return bytes;
}

/*
 * Does @blk hold a page that came from @who's range? A page says which
 * process and address it came for; page_free forgets the process. An
 * address that mremap() moved since no longer counts, which costs at
 * worst one block that the migration brings back.
 */
static bool block_holds_range(struct hmmgpu_dmem *dmem,
			      struct hmmgpu_block *blk,
			      const struct hmmgpu_evict_for *who)
{
	struct hmmgpu_dpage *dp = &dmem->dpages[blk->first];
	unsigned int i;

	if (!who->tgid)
		return false;
	for (i = 0; i < HMMGPU_BLOCK_PAGES; i++, dp++) {
		unsigned long addr = READ_ONCE(dp->addr);

		if (READ_ONCE(dp->tgid) == who->tgid &&
		    addr >= who->start && addr < who->end)
			return true;
	}
	return false;
}

/*
 * Evicts the next block that may go for @who, least recently used first;
 * blocks with preferred pages only in a second round, for preferred data.
 * Pages locked by a migration in flight are skipped, and so are the
 * blocks of the asking migration (DOC: Device memory): those it took
 * pages of, found its pages in, or holding pages of its range that it
 * has not reached yet. @tries counts the blocks the caller's pass tried.
 * Return: the pages freed, 0 once every block was tried.
 */
static unsigned long evict_next(struct hmmgpu_dmem *dmem,
				struct hmmgpu_file *hfile,
				const struct hmmgpu_evict_for *who,
				unsigned int *tries)
{
	unsigned int rounds = who->preferred ? 2 : 1;

	lockdep_assert_held(&dmem->evict_lock);
	while (*tries < rounds * dmem->nblocks) {
		struct hmmgpu_block *blk;
		unsigned long freed;
		unsigned int first;
		bool skip;
		int n;

		spin_lock(&dmem->lock);
		if (list_empty(&dmem->lru)) {
			spin_unlock(&dmem->lock);
			return 0;
		}
		blk = list_first_entry(&dmem->lru, struct hmmgpu_block, lru);
		/* Tried once: goes to the back whatever happens. */
		block_touch(dmem, blk);
		first = blk->first;
		skip = blk->epoch == who->epoch ||
		       (blk->nr_preferred && *tries < dmem->nblocks);
		spin_unlock(&dmem->lock);
		(*tries)++;
		if (skip || block_holds_range(dmem, blk, who))
			continue;

		/* clean copies first: dropping them costs nothing */
		freed = hmmgpu_dup_drop_range(dmem, first, HMMGPU_BLOCK_PAGES);
		n = hmmgpu_evict_range(dmem, first, HMMGPU_BLOCK_PAGES,
				       HMMGPU_CAUSE_EVICTION, hfile);
		if (n > 0)
			freed += n;
		if (freed)
			return freed;
	}
	return 0;
}

/**
 * hmmgpu_dmem_alloc_evicting() - take device pages, evicting for them.
 * @dmem: the device memory.
 * @pages: filled as by hmmgpu_dmem_alloc().
 * @n: pages wanted.
 * @hfile: the file whose migration needs the room (for its counters),
 *	   or NULL.
 * @who: that migration: its blocks stay, and so do blocks holding pages
 *	 of its range (evict_next()).
 *
 * For a caller that hmmgpu_dmem_alloc() gave too few pages. Under
 * &hmmgpu_dmem.evict_lock it takes what is free, then evicts one block
 * at a time and takes what that freed, until it has @n pages or nothing
 * more may go. Taking the pages under the lock that orders evictions is
 * what keeps concurrent migrations (the units of one MIGRATE) from each
 * evicting a block when the first block was room enough for both: the
 * second one finds the room and takes it.
 *
 * Context: may sleep; takes &hmmgpu_dmem.evict_lock.
 * Return: the number of pages taken.
 */
unsigned long hmmgpu_dmem_alloc_evicting(struct hmmgpu_dmem *dmem,
					 struct page **pages, unsigned long n,
					 struct hmmgpu_file *hfile,
					 const struct hmmgpu_evict_for *who)
{
	unsigned int tries = 0;
	unsigned long got;

	mutex_lock(&dmem->evict_lock);
	got = hmmgpu_dmem_alloc(dmem, pages, n, who->epoch);
	while (got < n && evict_next(dmem, hfile, who, &tries))
		got += hmmgpu_dmem_alloc(dmem, pages + got, n - got,
					 who->epoch);
	mutex_unlock(&dmem->evict_lock);
	return got;
}

/**
 * hmmgpu_dmem_alloc_folio_evicting() - a 2 MiB device folio, evicting for it.
 * @dmem: the device memory.
 * @hfile: as for hmmgpu_dmem_alloc_evicting().
 * @who: as for hmmgpu_dmem_alloc_evicting().
 *
 * As hmmgpu_dmem_alloc_evicting(), for a wholly free block; it gives up
 * once it has freed a block's worth of pages without getting one (the
 * caller then moves the range as 4 KiB pages).
 *
 * Context: may sleep; takes &hmmgpu_dmem.evict_lock.
 * Return: the folio's first page, or NULL.
 */
struct page *hmmgpu_dmem_alloc_folio_evicting(struct hmmgpu_dmem *dmem,
					      struct hmmgpu_file *hfile,
					      const struct hmmgpu_evict_for *who)
{
	unsigned long freed = 0, n;
	unsigned int tries = 0;
	struct page *page;

	mutex_lock(&dmem->evict_lock);
	page = hmmgpu_dmem_alloc_folio(dmem, who->epoch);
	while (!page && freed < HMMGPU_BLOCK_PAGES &&
	       (n = evict_next(dmem, hfile, who, &tries))) {
		freed += n;
		page = hmmgpu_dmem_alloc_folio(dmem, who->epoch);
	}
	mutex_unlock(&dmem->evict_lock);
	return page;
}

static void dmem_free_backing(struct hmmgpu_dmem *dmem, unsigned long n)
{
	if (dmem->in_bar) {
		/* n is 0 (nothing mapped yet) or every page */
		if (n)
			memunmap_pages(&dmem->bar_pgmap);
		return;
	}
	while (n--)
		__free_page(dmem->dpages[n].backing);
}

/*
 * The backing store in a PCI memory BAR: the first @dmem->npages pages of
 * @dmem->bar become MEMORY_DEVICE_GENERIC pages, which memremap_pages()
 * gives struct pages and a write-back kernel mapping (the BAR is
 * prefetchable memory), so that the copy engine and the view use them as
 * they use RAM pages.  Their references stay at one: nothing but this
 * driver ever takes them, and the view maps them as PFNs.
 */
static int dmem_map_bar(struct hmmgpu_dmem *dmem)
{
	unsigned long i, pfn;
	void *addr;

	dmem->bar_pgmap.type = MEMORY_DEVICE_GENERIC;
	dmem->bar_pgmap.range.start = dmem->bar.start;
	dmem->bar_pgmap.range.end = dmem->bar.start +
				    (dmem->npages << PAGE_SHIFT) - 1;
	dmem->bar_pgmap.nr_range = 1;
	addr = memremap_pages(&dmem->bar_pgmap,
			      dev_to_node(dmem->hdev->drm.dev));
	if (IS_ERR(addr))
		return PTR_ERR(addr);
	pfn = PHYS_PFN(dmem->bar.start);
	for (i = 0; i < dmem->npages; i++)
		dmem->dpages[i].backing = pfn_to_page(pfn + i);
	return 0;
}

/**
 * hmmgpu_dmem_init() - create a device's memory.
 * @hdev: the device.
 * @size: bytes of device memory, rounded up to a whole block.
 * @bar: where the backing store lives: a PCI memory BAR at least @size
 *	 long (rounded), or NULL for system RAM.
 *
 * Reserves a free physical address range, creates its device-private
 * struct pages with memremap_pages() and allocates every backing page
 * from RAM, or maps them in @bar.
 *
 * Return: 0, -ENOMEM, or the error of request_free_mem_region() or
 * memremap_pages().
 */
int hmmgpu_dmem_init(struct hmmgpu_device *hdev, u64 size,
		     const struct range *bar)
{
	struct hmmgpu_dmem *dmem = &hdev->dmem;
	unsigned long i;
	void *addr;
	int ret;

	size = ALIGN(size, (u64)HMMGPU_BLOCK_PAGES << PAGE_SHIFT);
	dmem->hdev = hdev;
	dmem->npages = size >> PAGE_SHIFT;
	dmem->nblocks = dmem->npages / HMMGPU_BLOCK_PAGES;
	spin_lock_init(&dmem->lock);
	mutex_init(&dmem->evict_lock);
	INIT_LIST_HEAD(&dmem->avail);
	INIT_LIST_HEAD(&dmem->lru);

	dmem->dpages = kvcalloc(dmem->npages, sizeof(*dmem->dpages),
				GFP_KERNEL);
	if (!dmem->dpages)
		return -ENOMEM;
	dmem->blocks = kvcalloc(dmem->nblocks, sizeof(*dmem->blocks),
				GFP_KERNEL);
	if (!dmem->blocks) {
		ret = -ENOMEM;
		goto err_free_dpages;
	}

	i = 0;
	if (bar) {
		dmem->in_bar = true;
		dmem->bar = *bar;
		ret = dmem_map_bar(dmem);
		if (ret) {
			drm_err(&hdev->drm, "cannot map %llu MiB of the memory BAR as backing store: %d\n",
				size >> 20, ret);
			goto err_free_blocks;
		}
		i = dmem->npages;
	}
	for (; i < dmem->npages; i++) {
		dmem->dpages[i].backing = alloc_page(GFP_HIGHUSER |
						     __GFP_NOWARN);
		if (!dmem->dpages[i].backing) {
			drm_err(&hdev->drm, "cannot reserve %llu MiB of backing store for device memory\n",
				size >> 20);
			ret = -ENOMEM;
			goto err_free_backing;
		}
		cond_resched();
	}

	dmem->res = request_free_mem_region(&iomem_resource, size,
					    "hmmgpu device memory");
	if (IS_ERR(dmem->res)) {
		ret = PTR_ERR(dmem->res);
		goto err_free_backing;
	}
	dmem->pgmap.type = MEMORY_DEVICE_PRIVATE;
	dmem->pgmap.range.start = dmem->res->start;
	dmem->pgmap.range.end = dmem->res->end;
	dmem->pgmap.nr_range = 1;
	dmem->pgmap.ops = &hmmgpu_devmem_ops;
	dmem->pgmap.owner = &hmmgpu_owner;
	addr = memremap_pages(&dmem->pgmap, dev_to_node(hdev->drm.dev));
	if (IS_ERR(addr)) {
		ret = PTR_ERR(addr);
		goto err_release_region;
	}
	dmem->pfn_first = dmem->res->start >> PAGE_SHIFT;

	/* Every page starts free, on its block's stack. */
	for (i = 0; i < dmem->nblocks; i++) {
		struct hmmgpu_block *blk = &dmem->blocks[i];
		unsigned int j;

		blk->first = i * HMMGPU_BLOCK_PAGES;
		blk->nr_free = HMMGPU_BLOCK_PAGES;
		INIT_LIST_HEAD(&blk->lru);
		for (j = HMMGPU_BLOCK_PAGES; j-- > 0;) {
			struct hmmgpu_dpage *dp = &dmem->dpages[blk->first + j];

			dp->next_free = blk->free;
			blk->free = dp;
		}
		list_add_tail(&blk->avail, &dmem->avail);
	}
	dmem->nr_free = dmem->npages;
	return 0;

err_release_region:
	release_mem_region(dmem->res->start, resource_size(dmem->res));
err_free_backing:
	dmem_free_backing(dmem, i);
err_free_blocks:
	kvfree(dmem->blocks);
err_free_dpages:
	kvfree(dmem->dpages);
	return ret;
}

/**
 * hmmgpu_dmem_fini() - bring every device page back to RAM and free all.
 * @hdev: the device, already unplugged (no new ioctl can start).
 *
 * Processes keep their data: every page in use is migrated to system
 * memory (cause: removal). Pages that a migration in flight holds locked
 * are retried until that migration finished.
 */
void hmmgpu_dmem_fini(struct hmmgpu_device *hdev)
{
	struct hmmgpu_dmem *dmem = &hdev->dmem;
	unsigned int pass;

	spin_lock(&dmem->lock);
	dmem->dying = true;
	spin_unlock(&dmem->lock);

	mutex_lock(&dmem->evict_lock);
	for (pass = 0;; pass++) {
		unsigned long used;

		hmmgpu_dup_drop_range(dmem, 0, dmem->npages);
		hmmgpu_evict_range(dmem, 0, dmem->npages, HMMGPU_CAUSE_REMOVAL,
				   NULL);
		spin_lock(&dmem->lock);
		used = dmem->npages - dmem->nr_free;
		spin_unlock(&dmem->lock);
		if (!used)
			break;
		if (pass == 100)
			drm_warn(&hdev->drm, "%lu device pages still busy at removal, waiting\n",
				 used);
		msleep(pass < 100 ? 1 : 100);
	}
	mutex_unlock(&dmem->evict_lock);

	/* Waits for the last page reference: there is none left. */
	memunmap_pages(&dmem->pgmap);
	release_mem_region(dmem->res->start, resource_size(dmem->res));
	dmem_free_backing(dmem, dmem->npages);
	kvfree(dmem->blocks);
	kvfree(dmem->dpages);
}
