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
	PIN_OFF(struct drm_hmmgpu_get_info, caps, 56);
	PIN_OFF(struct drm_hmmgpu_get_info, reserved, 64);
}

TEST(migrate_layout)
{
	PIN_SIZE(struct drm_hmmgpu_migrate, 64);
	PIN_OFF(struct drm_hmmgpu_migrate, start, 0);
	PIN_OFF(struct drm_hmmgpu_migrate, size, 8);
	PIN_OFF(struct drm_hmmgpu_migrate, target, 16);
	PIN_OFF(struct drm_hmmgpu_migrate, flags, 20);
	PIN_OFF(struct drm_hmmgpu_migrate, extensions, 24);
	PIN_OFF(struct drm_hmmgpu_migrate, moved, 32);
	PIN_OFF(struct drm_hmmgpu_migrate, already, 40);
	PIN_OFF(struct drm_hmmgpu_migrate, skipped, 48);
	PIN_OFF(struct drm_hmmgpu_migrate, pad, 56);
}

TEST(residency_layout)
{
	PIN_SIZE(struct drm_hmmgpu_residency, 64);
	PIN_OFF(struct drm_hmmgpu_residency, start, 0);
	PIN_OFF(struct drm_hmmgpu_residency, npages, 8);
	PIN_OFF(struct drm_hmmgpu_residency, locations, 16);
	PIN_OFF(struct drm_hmmgpu_residency, flags, 24);
	PIN_OFF(struct drm_hmmgpu_residency, pad, 28);
	PIN_OFF(struct drm_hmmgpu_residency, count, 32);
	PIN_SIZE(((struct drm_hmmgpu_residency *)0)->count, 4 * 8);
}

TEST(stats_layout)
{
	PIN_SIZE(struct drm_hmmgpu_stats, 768);
	PIN_OFF(struct drm_hmmgpu_stats, scope, 0);
	PIN_OFF(struct drm_hmmgpu_stats, flags, 4);
	PIN_OFF(struct drm_hmmgpu_stats, extensions, 8);
	PIN_OFF(struct drm_hmmgpu_stats, pages, 16);
	PIN_SIZE(((struct drm_hmmgpu_stats *)0)->pages, 2 * 8 * 8);
	PIN_OFF(struct drm_hmmgpu_stats, bytes, 144);
	PIN_SIZE(((struct drm_hmmgpu_stats *)0)->bytes, 2 * 8 * 8);
	PIN_OFF(struct drm_hmmgpu_stats, cpu_faults, 272);
	PIN_OFF(struct drm_hmmgpu_stats, device_faults, 280);
	PIN_OFF(struct drm_hmmgpu_stats, evictions, 288);
	PIN_OFF(struct drm_hmmgpu_stats, batches, 296);
	PIN_OFF(struct drm_hmmgpu_stats, copy_errors, 304);
	PIN_OFF(struct drm_hmmgpu_stats, copy_busy_ns, 312);
	PIN_OFF(struct drm_hmmgpu_stats, migrate_latency, 320);
	PIN_SIZE(((struct drm_hmmgpu_stats *)0)->migrate_latency, 24 * 8);
	PIN_OFF(struct drm_hmmgpu_stats, fault_latency, 512);
	PIN_SIZE(((struct drm_hmmgpu_stats *)0)->fault_latency, 24 * 8);
	PIN_OFF(struct drm_hmmgpu_stats, thrash_pins, 704);
	PIN_OFF(struct drm_hmmgpu_stats, thrash_remote, 712);
	PIN_OFF(struct drm_hmmgpu_stats, remaps, 720);
	PIN_OFF(struct drm_hmmgpu_stats, dup_pages, 728);
	PIN_OFF(struct drm_hmmgpu_stats, dup_drops, 736);
	PIN_OFF(struct drm_hmmgpu_stats, reserved, 744);
	PIN_SIZE(((struct drm_hmmgpu_stats *)0)->reserved, 3 * 8);
}

TEST(snapshot_layout)
{
	PIN_SIZE(struct drm_hmmgpu_snapshot, 72);
	PIN_OFF(struct drm_hmmgpu_snapshot, start, 0);
	PIN_OFF(struct drm_hmmgpu_snapshot, npages, 8);
	PIN_OFF(struct drm_hmmgpu_snapshot, pages, 16);
	PIN_OFF(struct drm_hmmgpu_snapshot, flags, 24);
	PIN_OFF(struct drm_hmmgpu_snapshot, pad, 28);
	PIN_OFF(struct drm_hmmgpu_snapshot, extensions, 32);
	PIN_OFF(struct drm_hmmgpu_snapshot, count, 40);
	PIN_SIZE(((struct drm_hmmgpu_snapshot *)0)->count, 4 * 8);
	/* the word: location, device, then the bits */
	ASSERT_EQ(HMMGPU_SNAP_WHERE_MASK, 0xffu);
	ASSERT_EQ(HMMGPU_SNAP_DEVICE_MASK, 0xff00u);
	ASSERT_EQ(HMMGPU_SNAP_READ, 1u << 16);
	ASSERT_EQ(HMMGPU_SNAP_SWAP, 1u << 23);
}

TEST(view_register_layout)
{
	PIN_SIZE(struct drm_hmmgpu_view_register, 40);
	PIN_OFF(struct drm_hmmgpu_view_register, start, 0);
	PIN_OFF(struct drm_hmmgpu_view_register, size, 8);
	PIN_OFF(struct drm_hmmgpu_view_register, flags, 16);
	PIN_OFF(struct drm_hmmgpu_view_register, handle, 20);
	PIN_OFF(struct drm_hmmgpu_view_register, offset, 24);
	PIN_OFF(struct drm_hmmgpu_view_register, extensions, 32);
}

TEST(view_unregister_layout)
{
	PIN_SIZE(struct drm_hmmgpu_view_unregister, 8);
	PIN_OFF(struct drm_hmmgpu_view_unregister, handle, 0);
	PIN_OFF(struct drm_hmmgpu_view_unregister, pad, 4);
}

TEST(view_advise_layout)
{
	PIN_SIZE(struct drm_hmmgpu_view_advise, 16);
	PIN_OFF(struct drm_hmmgpu_view_advise, handle, 0);
	PIN_OFF(struct drm_hmmgpu_view_advise, advice, 4);
	PIN_OFF(struct drm_hmmgpu_view_advise, value, 8);
}

TEST(structs_are_multiples_of_8_bytes)
{
	ASSERT_EQ(sizeof(struct drm_hmmgpu_get_info) % 8, 0);
	ASSERT_EQ(sizeof(struct drm_hmmgpu_migrate) % 8, 0);
	ASSERT_EQ(sizeof(struct drm_hmmgpu_residency) % 8, 0);
	ASSERT_EQ(sizeof(struct drm_hmmgpu_stats) % 8, 0);
	ASSERT_EQ(sizeof(struct drm_hmmgpu_view_register) % 8, 0);
	ASSERT_EQ(sizeof(struct drm_hmmgpu_view_unregister) % 8, 0);
	ASSERT_EQ(sizeof(struct drm_hmmgpu_view_advise) % 8, 0);
	ASSERT_EQ(sizeof(struct drm_hmmgpu_snapshot) % 8, 0);
}

TEST(ioctl_numbers)
{
	ASSERT_EQ(HMMGPU_ABI_VERSION, 8);
	/* dense, in the order they were added */
	ASSERT_EQ(DRM_HMMGPU_GET_INFO, 0x00);
	ASSERT_EQ(DRM_HMMGPU_MIGRATE, 0x01);
	ASSERT_EQ(DRM_HMMGPU_RESIDENCY, 0x02);
	ASSERT_EQ(DRM_HMMGPU_STATS, 0x03);
	ASSERT_EQ(DRM_HMMGPU_VIEW_REGISTER, 0x04);
	ASSERT_EQ(DRM_HMMGPU_VIEW_UNREGISTER, 0x05);
	ASSERT_EQ(DRM_HMMGPU_VIEW_ADVISE, 0x06);
	/* _IOWR('d', 0x40 + nr, size) */
	ASSERT_EQ(DRM_IOCTL_HMMGPU_GET_INFO, 0xc0586440UL);  /* 88 bytes */
	ASSERT_EQ(DRM_IOCTL_HMMGPU_MIGRATE, 0xc0406441UL);   /* 64 bytes */
	ASSERT_EQ(DRM_IOCTL_HMMGPU_RESIDENCY, 0xc0406442UL); /* 64 bytes */
	ASSERT_EQ(DRM_IOCTL_HMMGPU_STATS, 0xc3006443UL);     /* 768 bytes */
	ASSERT_EQ(DRM_IOCTL_HMMGPU_VIEW_REGISTER, 0xc0286444UL); /* 40 bytes */
	/* _IOW('d', 0x40 + nr, size): the driver writes nothing back */
	ASSERT_EQ(DRM_IOCTL_HMMGPU_VIEW_UNREGISTER, 0x40086445UL); /* 8 */
	ASSERT_EQ(DRM_IOCTL_HMMGPU_VIEW_ADVISE, 0x40106446UL);     /* 16 */
}

TEST(constants)
{
	ASSERT_EQ(HMMGPU_COPY_ENGINE_SOFTWARE, 0);
	ASSERT_EQ(HMMGPU_COPY_ENGINE_DMAENGINE, 1);

	ASSERT_EQ(HMMGPU_MIGRATE_TO_DEVICE, 0);
	ASSERT_EQ(HMMGPU_MIGRATE_TO_SYSTEM, 1);

	ASSERT_EQ(HMMGPU_RESIDENCY_NONE, 0);
	ASSERT_EQ(HMMGPU_RESIDENCY_SYSTEM, 1);
	ASSERT_EQ(HMMGPU_RESIDENCY_THIS_DEVICE, 2);
	ASSERT_EQ(HMMGPU_RESIDENCY_OTHER_DEVICE, 3);

	ASSERT_EQ(HMMGPU_CAUSE_EXPLICIT, 0);
	ASSERT_EQ(HMMGPU_CAUSE_CPU_FAULT, 1);
	ASSERT_EQ(HMMGPU_CAUSE_EVICTION, 2);
	ASSERT_EQ(HMMGPU_CAUSE_PEER, 3);
	ASSERT_EQ(HMMGPU_CAUSE_DEVICE_FAULT, 4);
	ASSERT_EQ(HMMGPU_CAUSE_REMOVAL, 5);
	ASSERT_EQ(HMMGPU_CAUSE_PREFETCH, 6);
	ASSERT_EQ(HMMGPU_CAUSE_COUNT, 8);

	ASSERT_EQ(HMMGPU_DIR_TO_DEVICE, 0);
	ASSERT_EQ(HMMGPU_DIR_TO_SYSTEM, 1);
	ASSERT_EQ(HMMGPU_LATENCY_BUCKETS, 24);

	ASSERT_EQ(HMMGPU_STATS_FILE, 0);
	ASSERT_EQ(HMMGPU_STATS_DEVICE, 1);

	ASSERT_EQ(HMMGPU_ADVICE_GRANULARITY, 1);
	ASSERT_EQ(HMMGPU_ADVICE_REMOTE, 2);
	ASSERT_EQ(HMMGPU_ADVICE_PREFERRED, 3);
}

TEST_MAIN()
