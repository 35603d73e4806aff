// SPDX-License-Identifier: MIT
/*
 * test_public.c - pins the layout of the public structs of hmm.h: a
 * change here breaks applications built against an older libhmm.
 */
#include "harness.h"

#include <hmm/hmm.h>
#include <stddef.h>

TEST(device_info_layout)
{
	ASSERT_EQ(sizeof(struct hmm_device_info), 264);
	ASSERT_EQ(offsetof(struct hmm_device_info, name), 0);
	ASSERT_EQ(offsetof(struct hmm_device_info, render_node), 64);
	ASSERT_EQ(offsetof(struct hmm_device_info, mem_total), 128);
	ASSERT_EQ(offsetof(struct hmm_device_info, mem_free), 136);
	ASSERT_EQ(offsetof(struct hmm_device_info, page_size), 144);
	ASSERT_EQ(offsetof(struct hmm_device_info, index), 152);
	ASSERT_EQ(offsetof(struct hmm_device_info, abi_version), 156);
	ASSERT_EQ(offsetof(struct hmm_device_info, copy_engine), 160);
	ASSERT_EQ(offsetof(struct hmm_device_info, copy_channels), 164);
	ASSERT_EQ(offsetof(struct hmm_device_info, bus), 168);
	ASSERT_EQ(offsetof(struct hmm_device_info, caps), 232);
	ASSERT_EQ(offsetof(struct hmm_device_info, pci_domain), 240);
	ASSERT_EQ(offsetof(struct hmm_device_info, pci_bus), 244);
	ASSERT_EQ(offsetof(struct hmm_device_info, pci_dev), 245);
	ASSERT_EQ(offsetof(struct hmm_device_info, pci_func), 246);
	ASSERT_EQ(offsetof(struct hmm_device_info, pci_bar), 247);
	ASSERT_EQ(offsetof(struct hmm_device_info, pci_vendor_id), 248);
	ASSERT_EQ(offsetof(struct hmm_device_info, pci_device_id), 250);
	ASSERT_EQ(offsetof(struct hmm_device_info, pci_pad), 252);
	ASSERT_EQ(offsetof(struct hmm_device_info, pci_bar_size), 256);
}

TEST(stats_layout)
{
	ASSERT_EQ(sizeof(struct hmm_stats), 392);
	ASSERT_EQ(offsetof(struct hmm_stats, pages), 0);
	ASSERT_EQ(offsetof(struct hmm_stats, bytes), 128);
	ASSERT_EQ(offsetof(struct hmm_stats, cpu_faults), 256);
	ASSERT_EQ(offsetof(struct hmm_stats, device_faults), 264);
	ASSERT_EQ(offsetof(struct hmm_stats, evictions), 272);
	ASSERT_EQ(offsetof(struct hmm_stats, copy_errors), 280);
	ASSERT_EQ(offsetof(struct hmm_stats, prefetch_bytes), 288);
	ASSERT_EQ(offsetof(struct hmm_stats, prefetch_calls), 296);
	ASSERT_EQ(offsetof(struct hmm_stats, prefetch_ns), 304);
	ASSERT_EQ(offsetof(struct hmm_stats, launches), 312);
	ASSERT_EQ(offsetof(struct hmm_stats, launch_ns), 320);
	ASSERT_EQ(offsetof(struct hmm_stats, launch_cpu_faults), 328);
	ASSERT_EQ(offsetof(struct hmm_stats, thrash_pins), 336);
	ASSERT_EQ(offsetof(struct hmm_stats, thrash_remote), 344);
	ASSERT_EQ(offsetof(struct hmm_stats, accessed_by_remaps), 352);
	ASSERT_EQ(offsetof(struct hmm_stats, read_mostly_copies), 360);
	ASSERT_EQ(offsetof(struct hmm_stats, read_mostly_drops), 368);
	ASSERT_EQ(offsetof(struct hmm_stats, reserved), 376);
	ASSERT_EQ(HMM_CAUSE_COUNT, 8);
}

TEST(dim3_layout)
{
	ASSERT_EQ(sizeof(struct hmm_dim3), 12);
	ASSERT_EQ(offsetof(struct hmm_dim3, x), 0);
	ASSERT_EQ(offsetof(struct hmm_dim3, y), 4);
	ASSERT_EQ(offsetof(struct hmm_dim3, z), 8);
}

TEST(pointer_attributes_layout)
{
	if (sizeof(void *) != 8)
		SKIP("layout pinned for 64-bit pointers");
	ASSERT_EQ(sizeof(struct hmm_pointer_attributes), 80);
	ASSERT_EQ(offsetof(struct hmm_pointer_attributes, type), 0);
	ASSERT_EQ(offsetof(struct hmm_pointer_attributes, device), 4);
	ASSERT_EQ(offsetof(struct hmm_pointer_attributes, base), 8);
	ASSERT_EQ(offsetof(struct hmm_pointer_attributes, size), 16);
	ASSERT_EQ(offsetof(struct hmm_pointer_attributes, range_base), 24);
	ASSERT_EQ(offsetof(struct hmm_pointer_attributes, range_size), 32);
	ASSERT_EQ(offsetof(struct hmm_pointer_attributes, devptr), 40);
	ASSERT_EQ(offsetof(struct hmm_pointer_attributes, reserved), 48);
	ASSERT_EQ(HMM_MEMORY_UNMANAGED, 0);
	ASSERT_EQ(HMM_MEMORY_MANAGED, 1);
	ASSERT_EQ(HMM_MEMORY_REGISTERED, 2);
}

TEST(locations)
{
	ASSERT_EQ(HMM_CPU, -1);
	ASSERT_EQ(HMM_LOC_NONE, -2);
}

TEST_MAIN()
