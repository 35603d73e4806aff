/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hmmgpu_drv.h - private declarations shared by the hmmgpu driver files.
 */
#ifndef HMMGPU_DRV_H
#define HMMGPU_DRV_H

#include <linux/platform_device.h>
#include <linux/types.h>

#include <drm/drm_device.h>

#define HMMGPU_DRIVER_NAME "hmmgpu"
#define HMMGPU_DRIVER_DESC "hmm virtual GPU with device-private memory"
#define HMMGPU_DRIVER_MAJOR 0
#define HMMGPU_DRIVER_MINOR 1

/**
 * struct hmmgpu_device - one virtual GPU.
 * @drm: the DRM device; its lifetime is the lifetime of this structure.
 * @index: index among hmmgpu devices, also the platform device id.
 * @mem_total: device memory in bytes, fixed at probe.
 */
struct hmmgpu_device {
	struct drm_device drm;
	unsigned int index;
	u64 mem_total;
};

static inline struct hmmgpu_device *to_hmmgpu(struct drm_device *drm)
{
	return container_of(drm, struct hmmgpu_device, drm);
}

#endif /* HMMGPU_DRV_H */
