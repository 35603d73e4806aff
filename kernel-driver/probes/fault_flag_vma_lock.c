// SPDX-License-Identifier: GPL-2.0
/*
 * Linux 6.4 added FAULT_FLAG_VMA_LOCK: a fault handled under the VMA's
 * own lock, without the mmap_lock.  Before: every fault holds the
 * mmap_lock.
 */
#include <linux/mm.h>

unsigned int hmmgpu_probe(void);
unsigned int hmmgpu_probe(void)
{
	return FAULT_FLAG_VMA_LOCK;
}
