// SPDX-License-Identifier: MIT
/*
 * test_uapi.c - pins the layout of every uapi struct and the value of
 * every ioctl number.  A failure here means the ABI changed: that needs a
 * new ioctl or a new struct, never an edit of an old one.
 */
#include "harness.h"
#include "hmmgpu_drm.h"

#include <stddef.h>

#define PIN_SIZE(type, size) ASSERT_EQ(sizeof(type), size)
#define PIN_OFF(type, field, off) ASSERT_EQ(offsetof(type, field), off)

TEST(get_info_layout)
{
	PIN_SIZE(struct drm_hmmgpu_get_info, 88);
	PIN_OFF(struct drm_hmmgpu_get_info, flags, 0);
	PIN_OFF(struct drm_hmmgpu_get_info, pad, 4);
	PIN_OFF(struct drm_hmmgpu_get_info, extensions, 8);
	PIN_OFF(struct drm_hmmgpu_get_info, abi_version, 16);
	PIN_OFF(struct drm_hmmgpu_get_info, device_index, 20);
	PIN_OFF(struct drm_hmmgpu_get_info, page_size, 24);
	PIN_OFF(struct drm_hmmgpu_get_info, mem_total, 32);
	PIN_OFF(struct drm_hmmgpu_get_info, mem_free, 40);
	PIN_OFF(struct drm_hmmgpu_get_info, copy_engine, 48);
	PIN_OFF(struct drm_hmmgpu_get_info, copy_channels, 52);
	PIN_OFF(struct drm_hmmgpu_get_info, reserved, 56);
}

TEST(structs_are_multiples_of_8_bytes)
{
	ASSERT_EQ(sizeof(struct drm_hmmgpu_get_info) % 8, 0);
}

TEST(ioctl_numbers)
{
	ASSERT_EQ(DRM_HMMGPU_GET_INFO, 0x00);
	/* _IOWR('d', 0x40, 88 bytes) */
	ASSERT_EQ(DRM_IOCTL_HMMGPU_GET_INFO, 0xc0586440UL);
	ASSERT_EQ(HMMGPU_ABI_VERSION, 1);
	ASSERT_EQ(HMMGPU_COPY_ENGINE_SOFTWARE, 0);
	ASSERT_EQ(HMMGPU_COPY_ENGINE_DMAENGINE, 1);
}

TEST_MAIN()
