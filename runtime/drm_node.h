/* SPDX-License-Identifier: MIT */
/*
 * drm_node.h - discovery of hmmgpu render nodes (internal to libhmm, and
 * used by the tools and the kernel tests so that all of them find devices
 * the same way).
 */
#ifndef HMM_DRM_NODE_H
#define HMM_DRM_NODE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hmmgpu_drm.h"

#define HMM_NODE_PATH_MAX 64

/** One open hmmgpu render node. */
struct hmm_node {
	int fd;                       /**< O_RDWR | O_CLOEXEC */
	unsigned int index;           /**< device index reported by GET_INFO */
	char path[HMM_NODE_PATH_MAX]; /**< /dev/dri/renderD* */
	/** the bus device behind the node, "platform:hmmgpu.0" (see
	 *  hmm_node_bus()); "" when it could not be found */
	char bus[HMM_NODE_PATH_MAX];
};

/**
 * Finds the render nodes of hmmgpu devices: the PCI DRM devices that
 * libdrm's drmGetDevices2() lists (hmmgpu's PCI personality), then the
 * other render nodes of the drm subsystem (libudev enumeration, which
 * also sees platform devices that drmGetDevices2() skips); opens each one
 * and keeps those whose drmGetVersion() driver name is "hmmgpu".
 *
 * @nodes: array of @max entries, filled in device-index order.
 * Returns the number of hmmgpu nodes opened (0 when there is none), or a
 * negative errno when enumeration itself failed.  Nodes that cannot be
 * opened (permissions) are left out; *@denied counts them when not NULL.
 */
int hmm_node_scan(struct hmm_node *nodes, int max, int *denied);

/**
 * Opens the render node @path into @node when it is an hmmgpu device
 * (drmGetVersion() and GET_INFO), filling every field.
 *
 * Returns 0, -ENODEV when @path is not an hmmgpu node (also a file that
 * is no DRM node at all), or the errno of open() (-ENOENT, -EACCES...).
 */
int hmm_node_open(const char *path, struct hmm_node *node);

/** Closes the @n nodes that hmm_node_scan() opened. */
void hmm_node_close_all(struct hmm_node *nodes, int n);

/** DRM_IOCTL_HMMGPU_GET_INFO on @fd; 0 or a negative errno. */
int hmm_node_get_info(int fd, struct drm_hmmgpu_get_info *info);

/**
 * Names the bus device behind the DRM node open as @fd, "subsystem:name"
 * into @buf (@len bytes): from libdrm's drmGetDevices2() when it lists the
 * node and its bus information names the device (PCI: "pci:0000:01:00.0",
 * USB: "usb:001:002"), else from udev (or sysfs) as the parent device's
 * subsystem and sysname ("platform:hmmgpu.0").  drmGetDevices2() leaves
 * out platform devices without a device-tree node, which is every virtual
 * device on x86, so for hmmgpu the second way is the one that runs.
 *
 * Returns 0; -ENODEV when @fd is no character device or has no parent
 * bus device; -ENAMETOOLONG when @len is too small; -errno of fstat().
 */
int hmm_node_bus(int fd, char *buf, size_t len);

/** The same for the character device numbered @rdev. */
int hmm_node_bus_devnum(dev_t rdev, char *buf, size_t len);

/** The PCI identity of a device, from libpciaccess (node_pci.c). */
struct hmm_node_pci {
	uint32_t domain;
	uint8_t bus, dev, func;
	uint8_t bar;           /**< the largest memory BAR, the driver's */
	uint16_t vendor_id, device_id;
	uint64_t bar_size;     /**< bytes */
};

/**
 * Describes the PCI device named by @bus, "pci:DDDD:BB:DD.F" (struct
 * hmm_node's bus name), with libpciaccess: pci_system_init(), a slot
 * match, pci_device_probe(), pci_system_cleanup().
 *
 * Returns 0; -ENODEV when @bus is no PCI name or libpciaccess finds
 * neither the device nor a memory BAR; -ENOTSUP when built without
 * libpciaccess; the errno of pci_system_init() or pci_device_probe().
 * Not thread-safe: libpciaccess has one global state per process.
 */
int hmm_node_pci_identify(const char *bus, struct hmm_node_pci *id);

/*
 * Hotplug: a netlink monitor of the drm subsystem.  Nothing here blocks:
 * hmm_node_monitor_next() returns what has arrived, if anything.
 */
struct hmm_node_monitor;

enum hmm_node_action {
	HMM_NODE_ADDED = 1,
	HMM_NODE_REMOVED = 2,
};

/** A render node that appeared or went away. */
struct hmm_node_event {
	enum hmm_node_action action;
	dev_t devnum;                 /**< its device number */
	char path[HMM_NODE_PATH_MAX]; /**< its device node, "" when unknown */
};

/**
 * Starts listening for drm render nodes added and removed: the udev
 * daemon's events when one runs (so that a node is reported once udev
 * has set its permissions), else the kernel's own uevents.
 *
 * Returns the monitor, or NULL with errno set (ENOTSUP when built
 * without libudev, ENOMEM, or what creating the netlink socket gave).
 */
struct hmm_node_monitor *hmm_node_monitor_new(void);

/**
 * Takes the next render-node event that has arrived, without waiting.
 * Returns 1 and *@ev, 0 when there is none, or a negative errno.
 */
int hmm_node_monitor_next(struct hmm_node_monitor *m,
			  struct hmm_node_event *ev);

/** The file descriptor to poll() for events. */
int hmm_node_monitor_fd(struct hmm_node_monitor *m);

/** Stops listening; NULL is accepted. */
void hmm_node_monitor_free(struct hmm_node_monitor *m);

#endif /* HMM_DRM_NODE_H */
