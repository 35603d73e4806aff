// SPDX-License-Identifier: MIT
/*
 * device.c - the device table: discovery, hotplug, file descriptors.
 *
 * Discovery.  At the first call of any function that needs devices, the
 * render nodes of the drm subsystem are enumerated with libudev, opened,
 * and kept when drmGetVersion() names the hmmgpu driver (drm_node.c).
 * They are numbered 0, 1, ... in the order of the driver's device index,
 * and each stays open for the life of the process: views, migrations and
 * statistics of the process live on that one file (hmm__device_fd()).
 *
 * Hotplug.  A udev monitor of the drm subsystem is created before the
 * enumeration, so that nothing that happens in between is missed.  No
 * thread watches it: every call that consults the table (the public
 * device calls, and hmm__device_fd(), through which the other parts of
 * the library reach a device) first drains it without blocking, and
 *   - a render node that went away marks its device removed: the device
 *     keeps its number, hmm_device_get_info() and hmm__device_fd() say
 *     -ENODEV for it from then on, and its file stays open (so that a
 *     file descriptor the library handed out is never reused under it);
 *   - a render node that appeared and is an hmmgpu device gets the next
 *     number, hmm_device_count() grows by one.  A device that comes back
 *     (rebind, module reload) is a new device with a new number.
 * Numbers are never reused, so hmm_device_count() counts removed devices
 * too; up to HMM_MAX_DEVICES numbers are handed out, devices beyond that
 * are ignored (with a warning).  An ioctl answering -ENODEV also marks
 * the device removed, for when the monitor's event has not arrived yet
 * (no udev daemon events, or a full socket).
 *
 * Bus names ("platform:hmmgpu.0") come from drm_node.c: libdrm's
 * drmGetDevices2() when it lists the device by bus address (PCI, USB);
 * for platform devices like hmmgpu it never does on x86, and the udev
 * parent device's subsystem and sysname are used.  A PCI device (hmmgpu's
 * PCI personality) is described once, when it is added, through
 * libpciaccess (node_pci.c): IDs and the BAR of its device memory.
 *
 * Locking: devices.lock protects the table and the monitor after the
 * pthread_once() initialisation.  No other lock of the library is taken
 * under it; other parts (memory.c's map lock) may hold theirs when they
 * call hmm__device_fd(), so devices.lock comes last in every lock order.
 * Across fork() the lock is held (so that the child does not inherit it
 * taken).  Prepare handlers run in the reverse order of registration, so
 * device.c registers its handlers when the library is loaded, before any
 * other part can: they run last, after the others have taken the locks
 * that come before devices.lock.  The child replaces the monitor at its
 * next poll: the netlink socket it inherited is shared with the parent,
 * and the two would steal each other's events.  The device files are
 * reopened too, at the child's first use of the table: the driver keeps
 * views, migrations and statistics per open file, so a child on its
 * parent's files would count into the parent's statistics and leave its
 * views registered in the parent's files after it exits.
 */
#define _GNU_SOURCE
#include "hmm_private.h"
#include "drm_node.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

struct device {
	struct hmm_node node; /* fd, driver index, render node, bus */
	dev_t devnum;         /* of the render node */
	bool removed;
	bool pci;             /* @pci_id describes it */
	struct hmm_node_pci pci_id;
};

static struct {
	pthread_once_t once;
	pthread_mutex_t lock;
	int err;    /* negative errno when the first enumeration failed */
	int count;  /* numbers handed out; protected by lock */
	struct device dev[HMM_MAX_DEVICES];   /* protected by lock */
	struct hmm_node_monitor *mon;          /* protected by lock */
	bool forked; /* the monitor was inherited: replace it */
	bool reopen; /* the files were inherited: open our own */
} devices = {
	.once = PTHREAD_ONCE_INIT,
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

static void fork_prepare(void)
{
	pthread_mutex_lock(&devices.lock);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&devices.lock);
}

static void fork_child(void)
{
	devices.forked = devices.mon != NULL;
	devices.reopen = true;
	pthread_mutex_unlock(&devices.lock);
}

/* Only the handlers: nothing is discovered before the first call. */
__attribute__((constructor)) static void register_fork_handlers(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* Appends @node to the table; false when the table is full. */
static bool add_locked(const struct hmm_node *node)
{
	struct device *d;
	struct stat st;

	if (devices.count >= HMM_MAX_DEVICES) {
		hmm__log(HMM_LOG_WARN, "%s: more than %d devices, ignored",
			 node->path, HMM_MAX_DEVICES);
		return false;
	}
	d = &devices.dev[devices.count];
	d->node = *node;
	d->devnum = fstat(node->fd, &st) ? 0 : st.st_rdev;
	d->removed = false;
	d->pci = false;
	if (!strncmp(node->bus, "pci:", 4)) {
		int ret = hmm_node_pci_identify(node->bus, &d->pci_id);

		d->pci = !ret;
		if (ret)
			hmm__log(HMM_LOG_WARN, "%s: no PCI identity from libpciaccess: %s",
				 node->bus, hmm_strerror(-ret));
	}
	hmm__log(HMM_LOG_INFO, "device %d: hmmgpu%u at %s (%s)",
		 devices.count, node->index, node->path,
		 node->bus[0] ? node->bus : "bus unknown");
	devices.count++;
	return true;
}

static void mark_removed_locked(int dev)
{
	if (devices.dev[dev].removed)
		return;
	devices.dev[dev].removed = true;
	hmm__log(HMM_LOG_INFO, "device %d (%s) was removed", dev,
		 devices.dev[dev].node.path);
}

static void apply_locked(const struct hmm_node_event *ev)
{
	struct hmm_node node;
	int ret;

	for (int i = 0; i < devices.count; i++) {
		const struct device *d = &devices.dev[i];

		if (d->removed || d->devnum != ev->devnum)
			continue;
		if (ev->action == HMM_NODE_REMOVED)
			mark_removed_locked(i);
		return; /* an add of a node we have is the scan's, seen twice */
	}
	if (ev->action != HMM_NODE_ADDED || !ev->path[0])
		return;
	ret = hmm_node_open(ev->path, &node);
	if (ret) {
		if (ret != -ENODEV)
			hmm__log(HMM_LOG_DEBUG, "hotplug: %s: %s", ev->path,
				 hmm_strerror(-ret));
		return;
	}
	if (!add_locked(&node))
		hmm_node_close_all(&node, 1);
}

/*
 * Gives a forked child files of its own: the same render nodes, opened
 * again (checked to be the same device), replacing the inherited ones.
 */
static void reopen_locked(void)
{
	devices.reopen = false;
	for (int i = 0; i < devices.count; i++) {
		struct device *d = &devices.dev[i];
		struct stat st;
		int fd;

		if (d->removed)
			continue;
		fd = open(d->node.path, O_RDWR | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) || st.st_rdev != d->devnum) {
			hmm__log(HMM_LOG_WARN, "after fork: cannot reopen %s; "
				 "device %d is gone for this process",
				 d->node.path, i);
			if (fd >= 0)
				close(fd);
			close(d->node.fd);
			d->removed = true;
			continue;
		}
		close(d->node.fd);
		d->node.fd = fd;
	}
}

/* Drains the hotplug monitor: the table as it is now. */
static void poll_locked(void)
{
	struct hmm_node_event ev;
	int ret;

	if (devices.reopen)
		reopen_locked();
	if (devices.forked) {
		devices.forked = false;
		hmm_node_monitor_free(devices.mon);
		devices.mon = hmm_node_monitor_new();
	}
	if (!devices.mon)
		return;
	while ((ret = hmm_node_monitor_next(devices.mon, &ev)) > 0)
		apply_locked(&ev);
	if (ret < 0)
		hmm__log(HMM_LOG_DEBUG, "hotplug monitor: %s",
			 hmm_strerror(-ret));
}

static void discover(void)
{
	struct hmm_node nodes[HMM_MAX_DEVICES];
	int n, denied;

	/* the monitor first, so that no change after the scan is missed */
	devices.mon = hmm_node_monitor_new();
	if (!devices.mon)
		hmm__log(HMM_LOG_DEBUG, "no hotplug monitor: %s",
			 hmm_strerror(errno));
	n = hmm_node_scan(nodes, HMM_MAX_DEVICES, &denied);
	if (n < 0) {
		hmm__log(HMM_LOG_ERROR, "device enumeration failed: %s",
			 hmm_strerror(-n));
		devices.err = n;
		return;
	}
	if (denied)
		hmm__log(HMM_LOG_WARN,
			 "%d render node(s) could not be opened: is the user "
			 "in the render group?", denied);
	if (!n)
		hmm__log(HMM_LOG_INFO,
			 "no hmmgpu device (is hmmgpu.ko loaded?)");
	pthread_mutex_lock(&devices.lock);
	for (int i = 0; i < n; i++)
		add_locked(&nodes[i]);
	pthread_mutex_unlock(&devices.lock);
}

static void init(void)
{
	pthread_once(&devices.once, discover);
}

HMM_EXPORT int hmm_device_count(void)
{
	HMM_KEEP_ERRNO();
	int n;

	init();
	if (devices.err)
		return devices.err;
	pthread_mutex_lock(&devices.lock);
	poll_locked();
	n = devices.count;
	pthread_mutex_unlock(&devices.lock);
	return n;
}

int hmm__device_count(void)
{
	int n = hmm_device_count();

	return n > 0 ? n : 0;
}

int hmm__device_fd(int dev)
{
	int fd = -ENODEV;

	init();
	pthread_mutex_lock(&devices.lock);
	poll_locked();
	if (dev >= 0 && dev < devices.count && !devices.dev[dev].removed)
		fd = devices.dev[dev].node.fd;
	pthread_mutex_unlock(&devices.lock);
	return fd;
}

HMM_EXPORT int hmm_device_get_info(int dev, struct hmm_device_info *info)
{
	HMM_KEEP_ERRNO();
	struct drm_hmmgpu_get_info gi;
	struct hmm_node_pci pci;
	struct hmm_node node;
	bool is_pci;
	int ret;

	if (!info)
		return -EINVAL;
	init();
	pthread_mutex_lock(&devices.lock);
	poll_locked();
	if (dev < 0 || dev >= devices.count || devices.dev[dev].removed) {
		pthread_mutex_unlock(&devices.lock);
		return -ENODEV;
	}
	node = devices.dev[dev].node;
	is_pci = devices.dev[dev].pci;
	pci = devices.dev[dev].pci_id;
	pthread_mutex_unlock(&devices.lock);

	/* the file is never closed, so it can be used unlocked */
	ret = hmm_node_get_info(node.fd, &gi);
	if (ret == -ENODEV) {
		pthread_mutex_lock(&devices.lock);
		mark_removed_locked(dev);
		pthread_mutex_unlock(&devices.lock);
	}
	if (ret)
		return ret;

	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "hmmgpu%u", gi.device_index);
	snprintf(info->render_node, sizeof(info->render_node), "%s",
		 node.path);
	snprintf(info->bus, sizeof(info->bus), "%s", node.bus);
	info->mem_total = gi.mem_total;
	info->mem_free = gi.mem_free;
	info->page_size = gi.page_size;
	info->index = dev;
	info->abi_version = gi.abi_version;
	info->copy_engine = gi.copy_engine;
	info->copy_channels = gi.copy_channels;
	/* drivers before ABI 4 have no caps, and had every one of them */
	if (gi.abi_version < 4 || (gi.caps & HMMGPU_CAP_VIEW))
		info->caps |= HMM_DEVICE_CAP_VIEW;
	if (is_pci) {
		info->caps |= HMM_DEVICE_CAP_PCI;
		info->pci_domain = pci.domain;
		info->pci_bus = pci.bus;
		info->pci_dev = pci.dev;
		info->pci_func = pci.func;
		info->pci_bar = pci.bar;
		info->pci_vendor_id = pci.vendor_id;
		info->pci_device_id = pci.device_id;
		info->pci_bar_size = pci.bar_size;
	}
	return 0;
}
