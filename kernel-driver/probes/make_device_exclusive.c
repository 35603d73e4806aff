// SPDX-License-Identifier: GPL-2.0
/*
 * Linux 6.15 replaced make_device_exclusive_range(mm, start, end, pages,
 * owner) with make_device_exclusive(mm, addr, owner, &folio), one page
 * at a time, returning the page or an error pointer.
 */
#include <linux/mm.h>
#include <linux/rmap.h>

struct page *hmmgpu_probe(struct mm_struct *mm, unsigned long addr,
			  void *owner, struct folio **foliop);
struct page *hmmgpu_probe(struct mm_struct *mm, unsigned long addr,
			  void *owner, struct folio **foliop)
{
	return make_device_exclusive(mm, addr, owner, foliop);
}
