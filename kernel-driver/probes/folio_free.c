// SPDX-License-Identifier: GPL-2.0
/*
 * Linux 6.19 (device-private THP) replaced dev_pagemap_ops.page_free(page)
 * with folio_free(folio): the last reference to a device folio of any
 * order went.
 */
#include <linux/memremap.h>

void hmmgpu_probe_free(struct folio *folio);
const struct dev_pagemap_ops hmmgpu_probe = {
	.folio_free = hmmgpu_probe_free,
};
