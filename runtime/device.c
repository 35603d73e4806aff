// SPDX-License-Identifier: MIT
/*
 * device.c - device discovery and description.
 */
#define _GNU_SOURCE
#include "hmm_private.h"
#include "drm_node.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define HMM_MAX_DEVICES 16

/* Filled once by discover(); read-only afterwards. */
static struct {
	pthread_once_t once;
	int count; /* devices, or a negative errno from the scan */
	struct hmm_node nodes[HMM_MAX_DEVICES];
} devices = { .once = PTHREAD_ONCE_INIT };

static void discover(void)
{
	devices.count = hmm_node_scan(devices.nodes, HMM_MAX_DEVICES, NULL);
}

HMM_EXPORT int hmm_device_count(void)
{
	pthread_once(&devices.once, discover);
	return devices.count;
}

HMM_EXPORT int hmm_device_get_info(int dev, struct hmm_device_info *info)
{
	struct drm_hmmgpu_get_info gi;
	int n = hmm_device_count();
	int ret;

	if (!info)
		return -EINVAL;
	if (n < 0)
		return n;
	if (dev < 0 || dev >= n)
		return -ENODEV;

	ret = hmm_node_get_info(devices.nodes[dev].fd, &gi);
	if (ret)
		return ret;

	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "hmmgpu%u", gi.device_index);
	snprintf(info->render_node, sizeof(info->render_node), "%s",
		 devices.nodes[dev].path);
	info->mem_total = gi.mem_total;
	info->mem_free = gi.mem_free;
	info->page_size = gi.page_size;
	info->index = dev;
	info->abi_version = gi.abi_version;
	info->copy_engine = gi.copy_engine;
	info->copy_channels = gi.copy_channels;
	return 0;
}
