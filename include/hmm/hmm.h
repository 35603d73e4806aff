/* SPDX-License-Identifier: MIT */
/**
 * @file hmm.h
 * @brief libhmm: managed memory for the hmmgpu virtual GPU.
 *
 * Conventions: functions return 0 (or a count) on success and a negative
 * errno on failure; functions returning a pointer return NULL and set
 * errno.  The library never exits and never prints.  Every function is
 * thread-safe.
 *
 * This release covers device discovery.  Managed allocation, prefetch,
 * advice, streams and launches follow (see docs/).
 */
#ifndef HMM_HMM_H
#define HMM_HMM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Length of the string fields of struct hmm_device_info, with the NUL. */
#define HMM_DEVICE_NAME_MAX 64

/** Copy engines a device may use (hmm_device_info::copy_engine). */
enum hmm_copy_engine {
	HMM_COPY_ENGINE_SOFTWARE = 0,  /**< the device's own copy threads */
	HMM_COPY_ENGINE_DMAENGINE = 1, /**< a dmaengine DMA_MEMCPY channel */
};

/** What hmm_device_get_info() reports of a device. */
struct hmm_device_info {
	char name[HMM_DEVICE_NAME_MAX];        /**< "hmmgpu0", "hmmgpu1", ... */
	char render_node[HMM_DEVICE_NAME_MAX]; /**< "/dev/dri/renderD128" */
	uint64_t mem_total;      /**< device memory in bytes */
	uint64_t mem_free;       /**< device memory holding no page, bytes */
	uint64_t page_size;      /**< bytes in a device page */
	uint32_t index;          /**< the device number used by every call */
	uint32_t abi_version;    /**< ioctl ABI version of the driver */
	uint32_t copy_engine;    /**< enum hmm_copy_engine */
	uint32_t copy_channels;  /**< copy-engine channels */
	uint64_t reserved[4];    /**< zero */
};

/**
 * Number of hmmgpu devices this process can use.
 *
 * Devices are found once, at the first call of any function, by
 * enumerating DRM render nodes and keeping those whose driver is hmmgpu.
 *
 * @return the count (0 when there is none), or a negative errno when
 *         enumeration failed.  Nodes the process may not open (not in the
 *         "render" group) are not counted.
 */
int hmm_device_count(void);

/**
 * Describes device @p dev.
 *
 * @param dev   device number, 0 to hmm_device_count() - 1
 * @param info  filled on success
 * @return 0, -EINVAL when @p info is NULL, -ENODEV when @p dev does not
 *         exist or was removed.
 *
 * @code
 * struct hmm_device_info info;
 * if (hmm_device_get_info(0, &info) == 0)
 *         printf("%s: %llu MiB\n", info.name,
 *                (unsigned long long)(info.mem_total >> 20));
 * @endcode
 */
int hmm_device_get_info(int dev, struct hmm_device_info *info);

/**
 * A message for @p err, a negative errno returned by libhmm (a positive
 * errno is accepted too).  The string is static or thread-local: valid
 * until the next call in the same thread.
 */
const char *hmm_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* HMM_HMM_H */
