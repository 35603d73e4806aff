// SPDX-License-Identifier: GPL-2.0
/*
 * Linux 6.15 ("mm: remove the page->pgmap field" series) moved the pagemap
 * pointer out of struct page into the folio; page_pgmap() reads it.
 * Before: page->pgmap.
 */
#include <linux/mm.h>
#include <linux/memremap.h>

struct dev_pagemap *hmmgpu_probe(const struct page *page);
struct dev_pagemap *hmmgpu_probe(const struct page *page)
{
	return page_pgmap(page);
}
