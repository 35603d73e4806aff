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
	ASSERT_EQ(sizeof(struct hmm_device_info), 200);
	ASSERT_EQ(offsetof(struct hmm_device_info, name), 0);
	ASSERT_EQ(offsetof(struct hmm_device_info, render_node), 64);
	ASSERT_EQ(offsetof(struct hmm_device_info, mem_total), 128);
	ASSERT_EQ(offsetof(struct hmm_device_info, mem_free), 136);
	ASSERT_EQ(offsetof(struct hmm_device_info, page_size), 144);
	ASSERT_EQ(offsetof(struct hmm_device_info, index), 152);
	ASSERT_EQ(offsetof(struct hmm_device_info, abi_version), 156);
	ASSERT_EQ(offsetof(struct hmm_device_info, copy_engine), 160);
	ASSERT_EQ(offsetof(struct hmm_device_info, copy_channels), 164);
	ASSERT_EQ(offsetof(struct hmm_device_info, reserved), 168);
}

TEST_MAIN()
