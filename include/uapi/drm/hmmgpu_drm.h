/* SPDX-License-Identifier: MIT */
/*
 * hmmgpu_drm.h - ioctl ABI of the hmmgpu virtual GPU.
 *
 * Shared by the kernel driver (kernel-driver/), the runtime (runtime/), the
 * tools and the tests.  Rules (Documentation/process/botching-up-ioctls.rst):
 *
 *  - only __u32/__u64 fields, pointers passed as __u64;
 *  - every struct is a multiple of 8 bytes with explicit padding;
 *  - every @flags, @pad and @extensions field marked "must be zero" is
 *    checked by the driver, which answers -EINVAL when it is not zero;
 *  - fields are documented (in) or (out); (out) fields are written by the
 *    driver whatever the caller put there;
 *  - ioctl numbers are dense and never reused.
 */
#ifndef _UAPI_HMMGPU_DRM_H_
#define _UAPI_HMMGPU_DRM_H_

#include "drm.h"

#if defined(__cplusplus)
extern "C" {
#endif

/**
 * HMMGPU_ABI_VERSION - version of this ABI reported by GET_INFO.
 *
 * Bumped when an ioctl is added; existing ioctls never change layout.
 */
#define HMMGPU_ABI_VERSION 1

#define DRM_HMMGPU_GET_INFO 0x00

#define DRM_IOCTL_HMMGPU_GET_INFO \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_HMMGPU_GET_INFO, struct drm_hmmgpu_get_info)

/* Values of &drm_hmmgpu_get_info.copy_engine. */
#define HMMGPU_COPY_ENGINE_SOFTWARE 0 /* the device's own copy threads */
#define HMMGPU_COPY_ENGINE_DMAENGINE 1 /* a dmaengine DMA_MEMCPY channel */

/**
 * struct drm_hmmgpu_get_info - describe the device behind this file.
 *
 * Input fields must be zero; the driver fills every (out) field.
 */
struct drm_hmmgpu_get_info {
	/** @flags: (in) must be zero. */
	__u32 flags;
	/** @pad: (in) must be zero. */
	__u32 pad;
	/** @extensions: (in) must be zero; room for chained extensions. */
	__u64 extensions;

	/** @abi_version: (out) HMMGPU_ABI_VERSION of the running driver. */
	__u32 abi_version;
	/** @device_index: (out) index of this device among hmmgpu devices. */
	__u32 device_index;
	/** @page_size: (out) size in bytes of a device page. */
	__u64 page_size;
	/** @mem_total: (out) device memory in bytes. */
	__u64 mem_total;
	/** @mem_free: (out) device memory not holding any page, in bytes. */
	__u64 mem_free;
	/** @copy_engine: (out) HMMGPU_COPY_ENGINE_* in use. */
	__u32 copy_engine;
	/** @copy_channels: (out) number of copy-engine channels. */
	__u32 copy_channels;
	/** @reserved: (out) zero; room to grow without a new ioctl. */
	__u64 reserved[4];
};

#if defined(__cplusplus)
}
#endif

#endif /* _UAPI_HMMGPU_DRM_H_ */
