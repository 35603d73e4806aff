/* SPDX-License-Identifier: MIT */
/*
 * drm_node.h - discovery of hmmgpu render nodes (internal to libhmm, and
 * used by the tools and the kernel tests so that all of them find devices
 * the same way).
 */
#ifndef HMM_DRM_NODE_H
#define HMM_DRM_NODE_H

#include <stddef.h>

#include "hmmgpu_drm.h"

#define HMM_NODE_PATH_MAX 64

/** One open hmmgpu render node. */
struct hmm_node {
	int fd;                       /**< O_RDWR | O_CLOEXEC */
	unsigned int index;           /**< device index reported by GET_INFO */
	char path[HMM_NODE_PATH_MAX]; /**< /dev/dri/renderD* */
};

/**
 * Finds the render nodes of the drm subsystem (libudev enumeration, which
 * also sees platform devices that drmGetDevices2() skips), opens each one
 * and keeps those whose drmGetVersion() driver name is "hmmgpu".
 *
 * @nodes: array of @max entries, filled in device-index order.
 * Returns the number of hmmgpu nodes opened (0 when there is none), or a
 * negative errno when enumeration itself failed.  Nodes that cannot be
 * opened (permissions) are left out; *@denied counts them when not NULL.
 */
int hmm_node_scan(struct hmm_node *nodes, int max, int *denied);

/** Closes the @n nodes that hmm_node_scan() opened. */
void hmm_node_close_all(struct hmm_node *nodes, int n);

/** DRM_IOCTL_HMMGPU_GET_INFO on @fd; 0 or a negative errno. */
int hmm_node_get_info(int fd, struct drm_hmmgpu_get_info *info);

#endif /* HMM_DRM_NODE_H */
