// SPDX-License-Identifier: GPL-2.0
/*
 * hmmgpu_drv.c - module init/exit, DRM device, per-open context, ioctls.
 */

#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/platform_device.h>
#include <linux/slab.h>

#include <drm/drm_drv.h>
#include <drm/drm_file.h>
#include <drm/drm_ioctl.h>
#include <drm/drm_print.h>

#include "hmmgpu_drv.h"
#include "hmmgpu_drm.h"

/**
 * DOC: Overview
 *
 * hmmgpu is a virtual GPU whose memory is real device-private ZONE_DEVICE
 * memory.  The module creates @num_devices platform devices named
 * "hmmgpu"; each one probes into a DRM device with a render node
 * (/dev/dri/renderD*), so that discovery and permissions follow the GPU
 * conventions: the udev "drm" subsystem, the "render" group, libdrm.
 *
 * Userspace finds a device by enumerating render nodes and checking that
 * drmGetVersion() names the driver "hmmgpu", then talks to it with the
 * DRM_IOCTL_HMMGPU_* ioctls of include/uapi/drm/hmmgpu_drm.h.  All of them
 * are allowed on render nodes.
 *
 * Removing a device (module unload, unbind through sysfs) unplugs the DRM
 * device: open files stay valid, and every later ioctl on them fails with
 * -ENODEV (drm_ioctl() checks drm_dev_is_unplugged()).
 */

#define HMMGPU_MAX_DEVICES 8

static unsigned int num_devices = 1;
module_param(num_devices, uint, 0444);
MODULE_PARM_DESC(num_devices, "Number of virtual GPUs to create (1-"
		 __stringify(HMMGPU_MAX_DEVICES) ", default 1)");

static unsigned int mem_mib = 256;
module_param(mem_mib, uint, 0444);
MODULE_PARM_DESC(mem_mib, "Device memory per GPU in MiB (default 256)");

static struct platform_device *hmmgpu_pdevs[HMMGPU_MAX_DEVICES];

/**
 * struct hmmgpu_file - per-open context of a render or primary node.
 * @hdev: the device this file was opened on.
 */
struct hmmgpu_file {
	struct hmmgpu_device *hdev;
};

static int hmmgpu_open(struct drm_device *drm, struct drm_file *file)
{
	struct hmmgpu_file *hfile;

	hfile = kzalloc(sizeof(*hfile), GFP_KERNEL);
	if (!hfile)
		return -ENOMEM;
	hfile->hdev = to_hmmgpu(drm);
	file->driver_priv = hfile;
	return 0;
}

static void hmmgpu_postclose(struct drm_device *drm, struct drm_file *file)
{
	kfree(file->driver_priv);
	file->driver_priv = NULL;
}

/**
 * hmmgpu_ioctl_get_info() - DRM_IOCTL_HMMGPU_GET_INFO.
 * @drm: the device.
 * @data: a &struct drm_hmmgpu_get_info, already copied in by drm_ioctl().
 * @file: the caller's file.
 *
 * Return: 0, or -EINVAL when @flags, @pad or @extensions is not zero.
 */
static int hmmgpu_ioctl_get_info(struct drm_device *drm, void *data,
				 struct drm_file *file)
{
	struct hmmgpu_device *hdev = to_hmmgpu(drm);
	struct drm_hmmgpu_get_info *args = data;

	if (args->flags || args->pad || args->extensions)
		return -EINVAL;

	memset(&args->abi_version, 0,
	       sizeof(*args) - offsetof(struct drm_hmmgpu_get_info, abi_version));
	args->abi_version = HMMGPU_ABI_VERSION;
	args->device_index = hdev->index;
	args->page_size = PAGE_SIZE;
	args->mem_total = hdev->mem_total;
	/* No device page can be allocated yet: all of it is free. */
	args->mem_free = hdev->mem_total;
	args->copy_engine = HMMGPU_COPY_ENGINE_SOFTWARE;
	args->copy_channels = 0;
	return 0;
}

static const struct drm_ioctl_desc hmmgpu_ioctls[] = {
	DRM_IOCTL_DEF_DRV(HMMGPU_GET_INFO, hmmgpu_ioctl_get_info,
			  DRM_RENDER_ALLOW),
};

static const struct file_operations hmmgpu_fops = {
	.owner = THIS_MODULE,
	.open = drm_open,
	.release = drm_release,
	.unlocked_ioctl = drm_ioctl,
	.compat_ioctl = drm_compat_ioctl,
	.poll = drm_poll,
	.read = drm_read,
	.llseek = noop_llseek,
#ifdef FOP_UNSIGNED_OFFSET
	/* mmap offsets of views are above 2^63 on purpose: no sign games */
	.fop_flags = FOP_UNSIGNED_OFFSET,
#endif
};

static const struct drm_driver hmmgpu_drm_driver = {
	.driver_features = DRIVER_RENDER,
	.open = hmmgpu_open,
	.postclose = hmmgpu_postclose,
	.ioctls = hmmgpu_ioctls,
	.num_ioctls = ARRAY_SIZE(hmmgpu_ioctls),
	.fops = &hmmgpu_fops,
	.name = HMMGPU_DRIVER_NAME,
	.desc = HMMGPU_DRIVER_DESC,
	.major = HMMGPU_DRIVER_MAJOR,
	.minor = HMMGPU_DRIVER_MINOR,
};

static int hmmgpu_probe(struct platform_device *pdev)
{
	struct hmmgpu_device *hdev;
	int ret;

	hdev = devm_drm_dev_alloc(&pdev->dev, &hmmgpu_drm_driver,
				  struct hmmgpu_device, drm);
	if (IS_ERR(hdev))
		return PTR_ERR(hdev);

	hdev->index = pdev->id;
	hdev->mem_total = (u64)mem_mib << 20;
	platform_set_drvdata(pdev, hdev);

	ret = drm_dev_register(&hdev->drm, 0);
	if (ret)
		return ret;

	drm_info(&hdev->drm, "hmmgpu%u: %llu MiB device memory\n",
		 hdev->index, hdev->mem_total >> 20);
	return 0;
}

static void hmmgpu_remove(struct platform_device *pdev)
{
	struct hmmgpu_device *hdev = platform_get_drvdata(pdev);

	drm_dev_unplug(&hdev->drm);
}

static struct platform_driver hmmgpu_platform_driver = {
	.probe = hmmgpu_probe,
	.remove = hmmgpu_remove,
	.driver = {
		.name = HMMGPU_DRIVER_NAME,
	},
};

static void hmmgpu_destroy_devices(void)
{
	int i;

	for (i = HMMGPU_MAX_DEVICES - 1; i >= 0; i--) {
		if (!hmmgpu_pdevs[i])
			continue;
		platform_device_unregister(hmmgpu_pdevs[i]);
		hmmgpu_pdevs[i] = NULL;
	}
}

static int __init hmmgpu_init(void)
{
	unsigned int i;
	int ret;

	if (!IS_ENABLED(CONFIG_DEVICE_PRIVATE)) {
		pr_err("hmmgpu: this kernel lacks CONFIG_DEVICE_PRIVATE, so it cannot host device-private memory; boot a kernel built with it (tools/vm/hmmvm does)\n");
		return -ENODEV;
	}
	if (num_devices < 1 || num_devices > HMMGPU_MAX_DEVICES) {
		pr_err("hmmgpu: num_devices=%u is out of range 1-%d\n",
		       num_devices, HMMGPU_MAX_DEVICES);
		return -EINVAL;
	}
	if (mem_mib < 1) {
		pr_err("hmmgpu: mem_mib must be at least 1\n");
		return -EINVAL;
	}

	ret = platform_driver_register(&hmmgpu_platform_driver);
	if (ret)
		return ret;

	for (i = 0; i < num_devices; i++) {
		struct platform_device *pdev;

		pdev = platform_device_register_simple(HMMGPU_DRIVER_NAME, i,
						       NULL, 0);
		if (IS_ERR(pdev)) {
			ret = PTR_ERR(pdev);
			goto err_destroy_devices;
		}
		hmmgpu_pdevs[i] = pdev;
		if (!platform_get_drvdata(pdev)) {
			/* Probe failed: its error is in the log already. */
			ret = -ENODEV;
			goto err_destroy_devices;
		}
	}
	return 0;

err_destroy_devices:
	hmmgpu_destroy_devices();
	platform_driver_unregister(&hmmgpu_platform_driver);
	return ret;
}

static void __exit hmmgpu_exit(void)
{
	hmmgpu_destroy_devices();
	platform_driver_unregister(&hmmgpu_platform_driver);
}

module_init(hmmgpu_init);
module_exit(hmmgpu_exit);

MODULE_DESCRIPTION(HMMGPU_DRIVER_DESC);
MODULE_LICENSE("GPL");
