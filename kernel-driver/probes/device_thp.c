// SPDX-License-Identifier: GPL-2.0
/*
 * Linux 6.19: device-private THP.  migrate_vma_*() collect and install
 * 2 MiB folios whole (MIGRATE_VMA_SELECT_COMPOUND, MIGRATE_PFN_COMPOUND),
 * zone_device_folio_init() makes a large device folio, and device-private
 * entries exist at the PMD level.
 */
#include <linux/memremap.h>
#include <linux/migrate.h>

unsigned long hmmgpu_probe_flags = MIGRATE_VMA_SELECT_COMPOUND;
unsigned long hmmgpu_probe_pfn = MIGRATE_PFN_COMPOUND;

void hmmgpu_probe(struct folio *folio, struct dev_pagemap *pgmap);
void hmmgpu_probe(struct folio *folio, struct dev_pagemap *pgmap)
{
	zone_device_folio_init(folio, pgmap, HPAGE_PMD_ORDER);
}
