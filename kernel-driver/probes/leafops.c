// SPDX-License-Identifier: GPL-2.0
/*
 * Linux 6.19 (the "leaf entry" series, include/linux/leafops.h) replaced
 * the swp_entry_t tests of swapops.h that read a non-present page table
 * entry (pte_to_swp_entry(), non_swap_entry(), is_migration_entry(),
 * is_device_private_entry(), ...) with softleaf_t ones.  Some 6.12 trees
 * carry a transitional softleaf_from_pte() macro in swapops.h, so the
 * probe asks for the header and a test only it has.
 */
#include <linux/mm.h>
#include <linux/leafops.h>

bool hmmgpu_probe(pte_t pte);
bool hmmgpu_probe(pte_t pte)
{
	softleaf_t entry = softleaf_from_pte(pte);

	return softleaf_is_swap(entry) || softleaf_is_device_private(entry);
}
