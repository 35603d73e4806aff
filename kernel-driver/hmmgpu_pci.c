// SPDX-License-Identifier: GPL-2.0
/*
 * hmmgpu_pci.c - the PCI personality: binding, a memory BAR as device
 * memory.
 */

#include <linux/atomic.h>
#include <linux/moduleparam.h>
#include <linux/pci.h>
#include <linux/sizes.h>
#include <linux/string.h>

#include "hmmgpu_drv.h"

/**
 * DOC: PCI personality
 *
 * Besides its platform devices, hmmgpu drives PCI devices whose memory
 * BAR becomes the device memory, as a GPU's VRAM sits behind its BAR. The
 * device of that kind that every machine can have is QEMU's ivshmem-plain
 * (1af4:1110) with a memory backend: a 64-bit prefetchable memory BAR
 * (BAR 2) backed by host memory. On real hosts ivshmem devices belong to
 * others (shared memory between VMs), so hmmgpu takes none unless the
 * pci parameter asks: "all" for every device its ID table matches, or a
 * list of PCI addresses. Without it the PCI driver is not even
 * registered, and the module has no PCI alias: it is never loaded for a
 * device. Other devices can be offered through the PCI core's new_id,
 * still subject to the parameter.
 *
 * A bound device is an hmmgpu device like the platform ones, with two
 * differences:
 *
 * - the DRM device's parent is the PCI device, so drmGetDevices2() lists
 *   it with its PCI bus information, and sysfs, lspci and libpciaccess
 *   show its identity and BAR;
 * - the backing store of its device pages is the start of its largest
 *   memory BAR (mem_mib of it, all of it when smaller) instead of reserved
 *   RAM. memremap_pages() gives that part of the BAR struct pages as
 *   MEMORY_DEVICE_GENERIC, the way drivers hand BAR memory to the mm
 *   (device DAX; amdgpu maps its VRAM as MEMORY_DEVICE_COHERENT), with a
 *   write-back kernel mapping since the BAR is prefetchable memory; the
 *   copy engine and the views then use those pages as they use RAM ones.
 *
 * The device-private pages themselves still stand for a free physical
 * range (request_free_mem_region()), as on the platform devices.
 * Removal (PCI remove through sysfs, unbind, module unload) is the
 * platform devices' removal: every device page's data goes back to RAM
 * before the BAR is unmapped and released. A rescan binds the device
 * again, as a new DRM device with the lowest free index.
 */

static char *hmmgpu_pci = "";
module_param_named(pci, hmmgpu_pci, charp, 0444);
MODULE_PARM_DESC(pci, "PCI devices whose memory BAR becomes device memory: all (every ivshmem-plain device) or a comma-separated list of PCI addresses (default: none)");

/* Devices bound now. */
static atomic_t hmmgpu_pci_bound = ATOMIC_INIT(0);
static bool hmmgpu_pci_registered;

/* Is @name, a PCI address, in the comma-separated list @list? */
static bool name_in_list(const char *list, const char *name)
{
	size_t len = strlen(name);

	while (*list) {
		const char *end = strchrnul(list, ',');

		if (end - list == len && !strncmp(list, name, len))
			return true;
		list = *end ? end + 1 : end;
	}
	return false;
}

static bool hmmgpu_pci_wanted(struct pci_dev *pdev)
{
	return sysfs_streq(hmmgpu_pci, "all") ||
	       name_in_list(hmmgpu_pci, pci_name(pdev));
}

/*
 * The BAR to hold device memory: the largest memory BAR of at least one
 * 2 MiB block, or -ENODEV.
 */
static int hmmgpu_pci_mem_bar(struct pci_dev *pdev)
{
	resource_size_t best = 0;
	int bar, found = -ENODEV;

	for (bar = 0; bar < PCI_STD_NUM_BARS; bar++) {
		resource_size_t len = pci_resource_len(pdev, bar);

		if (!(pci_resource_flags(pdev, bar) & IORESOURCE_MEM) ||
		    len < SZ_2M || len <= best)
			continue;
		best = len;
		found = bar;
	}
	return found;
}

static int hmmgpu_pci_probe(struct pci_dev *pdev,
			    const struct pci_device_id *id)
{
	struct hmmgpu_device *hdev;
	struct range range;
	int bar, index, ret;
	u64 size;

	if (!hmmgpu_pci_wanted(pdev))
		return -ENODEV;
	bar = hmmgpu_pci_mem_bar(pdev);
	if (bar < 0) {
		pci_err(pdev, "hmmgpu: no memory BAR of 2 MiB or more\n");
		return bar;
	}
	ret = pci_enable_device_mem(pdev);
	if (ret)
		return ret;
	ret = pci_request_region(pdev, bar, HMMGPU_DRIVER_NAME);
	if (ret)
		goto err_disable;
	index = hmmgpu_index_get();
	if (index < 0) {
		ret = index;
		goto err_release;
	}

	size = min_t(u64, ALIGN((u64)hmmgpu_mem_mib << 20, SZ_2M),
		     ALIGN_DOWN((u64)pci_resource_len(pdev, bar), SZ_2M));
	range.start = pci_resource_start(pdev, bar);
	range.end = range.start + size - 1;
	hdev = hmmgpu_device_create(&pdev->dev, index, &range);
	if (IS_ERR(hdev)) {
		ret = PTR_ERR(hdev);
		goto err_put_index;
	}
	pci_set_drvdata(pdev, hdev);
	atomic_inc(&hmmgpu_pci_bound);
	pci_info(pdev, "hmmgpu%u: device memory in BAR %d (%llu of %llu MiB)\n",
		 index, bar, size >> 20,
		 (u64)pci_resource_len(pdev, bar) >> 20);
	return 0;

err_put_index:
	hmmgpu_index_put(index);
err_release:
	pci_release_region(pdev, bar);
err_disable:
	pci_disable_device(pdev);
	return ret;
}

/*
 * Unbind, PCI removal, module unload: the device's data goes back to RAM
 * (hmmgpu_device_remove()) before its BAR is given up.
 */
static void hmmgpu_pci_remove(struct pci_dev *pdev)
{
	struct hmmgpu_device *hdev = pci_get_drvdata(pdev);
	unsigned int index = hdev->index;

	hmmgpu_device_remove(hdev);
	hmmgpu_index_put(index);
	pci_release_region(pdev, hmmgpu_pci_mem_bar(pdev));
	pci_disable_device(pdev);
	atomic_dec(&hmmgpu_pci_bound);
}

/* QEMU's ivshmem-plain: BAR 2 is the shared memory. No MODULE_DEVICE_TABLE. */
static const struct pci_device_id hmmgpu_pci_ids[] = {
	{ PCI_DEVICE(PCI_VENDOR_ID_REDHAT_QUMRANET, 0x1110) },
	{ }
};

static struct pci_driver hmmgpu_pci_driver = {
	.name = HMMGPU_DRIVER_NAME,
	.id_table = hmmgpu_pci_ids,
	.probe = hmmgpu_pci_probe,
	.remove = hmmgpu_pci_remove,
};

/* Is @list a comma-separated list of PCI addresses, DDDD:BB:DD.F? */
static bool pci_list_valid(const char *list)
{
	for (;;) {
		const char *end = strchrnul(list, ',');
		unsigned int dom, bus, dev, fn;
		char buf[16];
		int n = 0;

		if (end - list >= sizeof(buf))
			return false;
		memcpy(buf, list, end - list);
		buf[end - list] = '\0';
		if (sscanf(buf, "%4x:%2x:%2x.%1u%n", &dom, &bus, &dev, &fn,
			   &n) != 4 || n != strlen(buf) || n != 12 ||
		    dev > 31 || fn > 7)
			return false;
		if (!*end)
			return true;
		list = end + 1;
	}
}

/**
 * hmmgpu_pci_init() - bind the PCI devices the pci parameter names.
 *
 * Registers the PCI driver when the parameter is set; the devices present
 * are probed before this returns.
 *
 * Return: the number of PCI devices bound (0 when the parameter is empty),
 * -EINVAL for a malformed parameter, or the error of
 * pci_register_driver().
 */
int hmmgpu_pci_init(void)
{
	int ret;

	if (!*hmmgpu_pci)
		return 0;
	if (!sysfs_streq(hmmgpu_pci, "all") && !pci_list_valid(hmmgpu_pci)) {
		pr_err("hmmgpu: pci=%s is neither 'all' nor a comma-separated list of PCI addresses (0000:00:04.0)\n",
		       hmmgpu_pci);
		return -EINVAL;
	}
	ret = pci_register_driver(&hmmgpu_pci_driver);
	if (ret)
		return ret;
	hmmgpu_pci_registered = true;
	return atomic_read(&hmmgpu_pci_bound);
}

/* Unbinds every PCI device: their data goes back to RAM. */
void hmmgpu_pci_exit(void)
{
	if (!hmmgpu_pci_registered)
		return;
	pci_unregister_driver(&hmmgpu_pci_driver);
	hmmgpu_pci_registered = false;
}
