// SPDX-License-Identifier: GPL-2.0
/*
 * Linux 6.3 made vma->vm_flags read-only for drivers: vm_flags_set()
 * changes them (with the per-VMA lock's checks).
 */
#include <linux/mm.h>

void hmmgpu_probe(struct vm_area_struct *vma);
void hmmgpu_probe(struct vm_area_struct *vma)
{
	vm_flags_set(vma, VM_IO);
}
