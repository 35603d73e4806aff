// SPDX-License-Identifier: MIT
/*
 * drm_node.c - discovery of hmmgpu render nodes.
 */
#define _GNU_SOURCE
#include "config.h"
#include "drm_node.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xf86drm.h>
#if HAVE_LIBUDEV
#include <libudev.h>
#endif

static bool is_hmmgpu(int fd)
{
	drmVersionPtr v = drmGetVersion(fd);
	bool ok;

	if (!v)
		return false;
	ok = v->name && !strcmp(v->name, "hmmgpu");
	drmFreeVersion(v);
	return ok;
}

static int cmp_index(const void *a, const void *b)
{
	const struct hmm_node *x = a, *y = b;

	return (x->index > y->index) - (x->index < y->index);
}

int hmm_node_get_info(int fd, struct drm_hmmgpu_get_info *info)
{
	memset(info, 0, sizeof(*info));
	if (drmIoctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, info))
		return -errno;
	return 0;
}

/* Opens @node and keeps it in @nodes[*n] when it is an hmmgpu device. */
static void try_node(const char *node, struct hmm_node *nodes, int *n,
		     int *denied)
{
	struct drm_hmmgpu_get_info info;
	int fd;

	fd = open(node, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		if ((errno == EACCES || errno == EPERM) && denied)
			(*denied)++;
		return;
	}
	if (!is_hmmgpu(fd) || hmm_node_get_info(fd, &info)) {
		close(fd);
		return;
	}
	nodes[*n].fd = fd;
	nodes[*n].index = info.device_index;
	snprintf(nodes[*n].path, sizeof(nodes[*n].path), "%s", node);
	(*n)++;
}

#if HAVE_LIBUDEV
/* Render nodes of the drm subsystem, as udev (here: sysfs) lists them. */
static int scan(struct hmm_node *nodes, int max, int *denied)
{
	struct udev_enumerate *en = NULL;
	struct udev_list_entry *e;
	struct udev *udev;
	int n = 0, ret;

	udev = udev_new();
	if (!udev)
		return -ENOMEM;
	en = udev_enumerate_new(udev);
	if (!en) {
		ret = -ENOMEM;
		goto out;
	}
	ret = udev_enumerate_add_match_subsystem(en, "drm");
	if (!ret)
		ret = udev_enumerate_add_match_sysname(en, "renderD*");
	if (!ret)
		ret = udev_enumerate_scan_devices(en);
	if (ret < 0)
		goto out;

	udev_list_entry_foreach(e, udev_enumerate_get_list_entry(en)) {
		struct udev_device *d;
		const char *node;

		if (n >= max)
			break;
		d = udev_device_new_from_syspath(udev,
						 udev_list_entry_get_name(e));
		if (!d)
			continue;
		node = udev_device_get_devnode(d);
		if (node)
			try_node(node, nodes, &n, denied);
		udev_device_unref(d);
	}
	ret = n;
out:
	udev_enumerate_unref(en);
	udev_unref(udev);
	return ret;
}
#else
/* Without libudev: the render node minors, 128 to 191, in /dev/dri. */
static int scan(struct hmm_node *nodes, int max, int *denied)
{
	char node[HMM_NODE_PATH_MAX];
	int n = 0;

	for (int minor = 128; minor < 192 && n < max; minor++) {
		snprintf(node, sizeof(node), "%s/renderD%d", DRM_DIR_NAME,
			 minor);
		try_node(node, nodes, &n, denied);
	}
	return n;
}
#endif

int hmm_node_scan(struct hmm_node *nodes, int max, int *denied)
{
	int n;

	if (denied)
		*denied = 0;
	n = scan(nodes, max, denied);
	if (n > 0)
		qsort(nodes, n, sizeof(*nodes), cmp_index);
	return n;
}

void hmm_node_close_all(struct hmm_node *nodes, int n)
{
	for (int i = 0; i < n; i++) {
		if (nodes[i].fd >= 0)
			close(nodes[i].fd);
		nodes[i].fd = -1;
	}
}
