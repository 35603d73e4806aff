// SPDX-License-Identifier: GPL-2.0
/*
 * Linux 6.19 (device-private THP) gave zone_device_page_init() the pagemap
 * and the order of the page to initialize.  Before: zone_device_page_init(page).
 */
#include <linux/mm.h>
#include <linux/memremap.h>

void hmmgpu_probe(struct page *page, struct dev_pagemap *pgmap);
void hmmgpu_probe(struct page *page, struct dev_pagemap *pgmap)
{
	zone_device_page_init(page, pgmap, 0);
}
