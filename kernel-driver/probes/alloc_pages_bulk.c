// SPDX-License-Identifier: GPL-2.0
/*
 * Linux 6.14 renamed alloc_pages_bulk_array(gfp, nr, pages) to
 * alloc_pages_bulk(gfp, nr, pages) (the list variant went away).
 */
#include <linux/gfp.h>

unsigned long hmmgpu_probe(struct page **pages);
unsigned long hmmgpu_probe(struct page **pages)
{
	return alloc_pages_bulk(GFP_KERNEL, 1, pages);
}
