// SPDX-License-Identifier: GPL-2.0
/*
 * Linux 7.x renamed pte_uffd_wp()/pmd_uffd_wp() to pte_uffd()/pmd_uffd()
 * when userfaultfd gained read-write protection, which marks entries with
 * the same bit.  Before: pte_uffd_wp() and pmd_uffd_wp().
 */
#include <linux/mm.h>
#include <linux/pgtable.h>

int hmmgpu_probe(pte_t pte, pmd_t pmd);
int hmmgpu_probe(pte_t pte, pmd_t pmd)
{
	return pte_uffd(pte) + pmd_uffd(pmd);
}
