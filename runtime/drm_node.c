// SPDX-License-Identifier: MIT
/*
 * drm_node.c - discovery of hmmgpu render nodes, their bus devices, and
 * the hotplug monitor.
 *
 * Everything that talks to udev lives here, so that libhmm, the tools and
 * the tests find devices the same way.  Built without libudev, discovery
 * scans the render-node minors in /dev/dri, bus names come from sysfs and
 * there is no monitor.
 */
#define _GNU_SOURCE
#include "config.h"
#include "drm_node.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <xf86drm.h>
/* config.h defines HAVE_LIBUDEV to 1, or leaves it undefined */
#if defined(HAVE_LIBUDEV) && HAVE_LIBUDEV
#define WITH_UDEV 1
#include <libudev.h>
#else
#define WITH_UDEV 0
#endif

/* drmGetDevices2() fills at most this many; more DRM devices is unheard of. */
#define DRM_DEVICES_MAX 64

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

/* "subsystem:name" into @buf; 0 or -ENAMETOOLONG. */
static int put_bus(char *buf, size_t len, const char *subsystem,
		   const char *name)
{
	int n = snprintf(buf, len, "%s:%s", subsystem, name);

	if (n < 0 || (size_t)n >= len) {
		if (len)
			buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	return 0;
}

/*
 * The bus name of the node with device number @rdev as libdrm sees it:
 * 0, or -ENOENT when drmGetDevices2() does not list it or its bus
 * information does not name the device (platform and host1x devices carry
 * their device-tree path, not the name the bus knows them by).
 */
static int bus_from_libdrm(dev_t rdev, char *buf, size_t len)
{
	drmDevicePtr devs[DRM_DEVICES_MAX], d = NULL;
	int n = drmGetDevices2(0, devs, DRM_DEVICES_MAX);
	int ret = -ENOENT;
	char name[32];

	for (int i = 0; i < n && !d; i++) {
		struct stat st;

		for (int t = 0; t < DRM_NODE_MAX; t++) {
			if ((devs[i]->available_nodes & (1 << t)) &&
			    !stat(devs[i]->nodes[t], &st) &&
			    S_ISCHR(st.st_mode) && st.st_rdev == rdev)
				d = devs[i];
		}
	}
	if (d && d->bustype == DRM_BUS_PCI) {
		snprintf(name, sizeof(name), "%04x:%02x:%02x.%u",
			 d->businfo.pci->domain, d->businfo.pci->bus,
			 d->businfo.pci->dev, d->businfo.pci->func);
		ret = put_bus(buf, len, "pci", name);
	} else if (d && d->bustype == DRM_BUS_USB) {
		snprintf(name, sizeof(name), "%03u:%03u", d->businfo.usb->bus,
			 d->businfo.usb->dev);
		ret = put_bus(buf, len, "usb", name);
	}
	if (n > 0)
		drmFreeDevices(devs, n);
	return ret;
}

#if WITH_UDEV
/* The parent device of character device @rdev as udev sees it. */
static int bus_from_udev(dev_t rdev, char *buf, size_t len)
{
	struct udev_device *d, *parent;
	const char *subsystem, *name;
	struct udev *udev;
	int ret = -ENODEV;

	udev = udev_new();
	if (!udev)
		return -ENOMEM;
	d = udev_device_new_from_devnum(udev, 'c', rdev);
	if (!d)
		goto out;
	/* the parent is not referenced separately: it lives with @d */
	parent = udev_device_get_parent(d);
	subsystem = parent ? udev_device_get_subsystem(parent) : NULL;
	name = parent ? udev_device_get_sysname(parent) : NULL;
	if (subsystem && name)
		ret = put_bus(buf, len, subsystem, name);
	udev_device_unref(d);
out:
	udev_unref(udev);
	return ret;
}
#else
/* The same from sysfs: /sys/dev/char/M:m/device and its subsystem link. */
static int bus_from_udev(dev_t rdev, char *buf, size_t len)
{
	char path[PATH_MAX + 16], dev[PATH_MAX], sub[PATH_MAX];
	const char *name, *subsystem;

	snprintf(path, sizeof(path), "/sys/dev/char/%u:%u/device",
		 major(rdev), minor(rdev));
	if (!realpath(path, dev))
		return -ENODEV;
	snprintf(path, sizeof(path), "%s/subsystem", dev);
	if (!realpath(path, sub))
		return -ENODEV;
	name = strrchr(dev, '/');
	subsystem = strrchr(sub, '/');
	if (!name || !subsystem)
		return -ENODEV;
	return put_bus(buf, len, subsystem + 1, name + 1);
}
#endif

int hmm_node_bus_devnum(dev_t rdev, char *buf, size_t len)
{
	int ret;

	if (len)
		buf[0] = '\0';
	ret = bus_from_libdrm(rdev, buf, len);
	if (ret == -ENOENT)
		ret = bus_from_udev(rdev, buf, len);
	return ret;
}

int hmm_node_bus(int fd, char *buf, size_t len)
{
	struct stat st;

	if (len)
		buf[0] = '\0';
	if (fstat(fd, &st))
		return -errno;
	if (!S_ISCHR(st.st_mode))
		return -ENODEV;
	return hmm_node_bus_devnum(st.st_rdev, buf, len);
}

int hmm_node_open(const char *path, struct hmm_node *node)
{
	struct drm_hmmgpu_get_info info;
	int fd, ret;

	if (strlen(path) >= sizeof(node->path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (!is_hmmgpu(fd) || hmm_node_get_info(fd, &info)) {
		close(fd);
		return -ENODEV;
	}
	node->fd = fd;
	node->index = info.device_index;
	snprintf(node->path, sizeof(node->path), "%s", path);
	/* a node without a bus name is still a device: bus stays "" */
	ret = hmm_node_bus(fd, node->bus, sizeof(node->bus));
	if (ret)
		node->bus[0] = '\0';
	return 0;
}

/*
 * Opens @node and keeps it in @nodes[*n] when it is an hmmgpu device that
 * is not in @nodes already.
 */
static void try_node(const char *node, struct hmm_node *nodes, int *n,
		     int *denied)
{
	int ret;

	for (int i = 0; i < *n; i++) {
		if (!strcmp(nodes[i].path, node))
			return;
	}
	ret = hmm_node_open(node, &nodes[*n]);

	if ((ret == -EACCES || ret == -EPERM) && denied)
		(*denied)++;
	if (!ret)
		(*n)++;
}

#if WITH_UDEV
/*
 * Render nodes of the drm subsystem, as udev (here: sysfs) lists them,
 * after the @n already in @nodes.
 */
static int scan(struct hmm_node *nodes, int n, int max, int *denied)
{
	struct udev_enumerate *en = NULL;
	struct udev_list_entry *e;
	struct udev *udev;
	int ret;

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
static int scan(struct hmm_node *nodes, int n, int max, int *denied)
{
	char node[HMM_NODE_PATH_MAX];

	for (int minor = 128; minor < 192 && n < max; minor++) {
		snprintf(node, sizeof(node), "%s/renderD%d", DRM_DIR_NAME,
			 minor);
		try_node(node, nodes, &n, denied);
	}
	return n;
}
#endif

/*
 * The PCI DRM devices libdrm lists (drmGetDevices2()), by their render
 * nodes: hmmgpu's PCI personality.  Returns how many are hmmgpu devices.
 */
static int scan_pci(struct hmm_node *nodes, int max, int *denied)
{
	drmDevicePtr devs[DRM_DEVICES_MAX];
	int ndev = drmGetDevices2(0, devs, DRM_DEVICES_MAX), n = 0;

	for (int i = 0; i < ndev && n < max; i++) {
		if (devs[i]->bustype == DRM_BUS_PCI &&
		    (devs[i]->available_nodes & (1 << DRM_NODE_RENDER)))
			try_node(devs[i]->nodes[DRM_NODE_RENDER], nodes, &n,
				 denied);
	}
	if (ndev > 0)
		drmFreeDevices(devs, ndev);
	return n;
}

int hmm_node_scan(struct hmm_node *nodes, int max, int *denied)
{
	int n;

	if (denied)
		*denied = 0;
	/* PCI devices through libdrm, the platform ones through udev */
	n = scan(nodes, scan_pci(nodes, max, denied), max, denied);
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

/* --- hotplug ----------------------------------------------------------- */

#if WITH_UDEV
struct hmm_node_monitor {
	struct udev *udev;
	struct udev_monitor *mon;
};

struct hmm_node_monitor *hmm_node_monitor_new(void)
{
	struct hmm_node_monitor *m = calloc(1, sizeof(*m));
	const char *source;
	int ret;

	if (!m)
		return NULL;
	m->udev = udev_new();
	if (!m->udev) {
		ret = -ENOMEM;
		goto err_free;
	}
	/*
	 * libudev's "udev" source gets nothing at all when no udev daemon
	 * runs (a container, or the test VM with its busybox userspace):
	 * listen to the kernel then.  devtmpfs has created the node by the
	 * time the kernel sends its uevent.
	 */
	source = access("/run/udev/control", F_OK) ? "kernel" : "udev";
	m->mon = udev_monitor_new_from_netlink(m->udev, source);
	if (!m->mon) {
		ret = errno ? -errno : -ENOMEM;
		goto err_udev;
	}
	ret = udev_monitor_filter_add_match_subsystem_devtype(m->mon, "drm",
							      NULL);
	if (!ret)
		ret = udev_monitor_enable_receiving(m->mon);
	if (ret < 0)
		goto err_mon;
	return m;

err_mon:
	udev_monitor_unref(m->mon);
err_udev:
	udev_unref(m->udev);
err_free:
	free(m);
	errno = -ret;
	return NULL;
}

int hmm_node_monitor_next(struct hmm_node_monitor *m,
			  struct hmm_node_event *ev)
{
	for (;;) {
		struct udev_device *d;
		const char *action, *sysname, *node;
		bool keep = false;

		errno = 0;
		d = udev_monitor_receive_device(m->mon);
		if (!d) {
			if (!errno || errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
				return 0;
			return -errno;
		}
		action = udev_device_get_action(d);
		sysname = udev_device_get_sysname(d);
		node = udev_device_get_devnode(d);
		if (action && sysname && !strncmp(sysname, "renderD", 7)) {
			memset(ev, 0, sizeof(*ev));
			if (!strcmp(action, "add")) {
				ev->action = HMM_NODE_ADDED;
				keep = true;
			} else if (!strcmp(action, "remove")) {
				ev->action = HMM_NODE_REMOVED;
				keep = true;
			}
			ev->devnum = udev_device_get_devnum(d);
			if (node && strlen(node) < sizeof(ev->path))
				snprintf(ev->path, sizeof(ev->path), "%s",
					 node);
		}
		udev_device_unref(d);
		if (keep)
			return 1;
	}
}

int hmm_node_monitor_fd(struct hmm_node_monitor *m)
{
	return udev_monitor_get_fd(m->mon);
}

void hmm_node_monitor_free(struct hmm_node_monitor *m)
{
	if (!m)
		return;
	udev_monitor_unref(m->mon);
	udev_unref(m->udev);
	free(m);
}
#else
struct hmm_node_monitor *hmm_node_monitor_new(void)
{
	errno = ENOTSUP;
	return NULL;
}

int hmm_node_monitor_next(struct hmm_node_monitor *m,
			  struct hmm_node_event *ev)
{
	return 0;
}

int hmm_node_monitor_fd(struct hmm_node_monitor *m)
{
	return -1;
}

void hmm_node_monitor_free(struct hmm_node_monitor *m)
{
}
#endif
