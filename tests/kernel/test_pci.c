// SPDX-License-Identifier: MIT
/*
 * test_pci.c - the PCI personality: hmmgpu bound to a PCI device (QEMU's
 * ivshmem-plain in the test VM) whose memory BAR holds the device memory.
 * Its identity in sysfs and drmGetDevices2(), the data of device pages
 * really in the BAR, PCI remove and rescan with data on the device, and
 * the pci parameter.
 *
 * Runs inside the test VM with hmmgpu.ko loaded with pci=all
 * (tools/vm/hmmvm --personality pci, the default); skips otherwise.
 */
#define _GNU_SOURCE
#include "kt_common.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xf86drm.h>

#define IVSHMEM_VENDOR 0x1af4
#define IVSHMEM_DEVICE 0x1110
#define IVSHMEM_BAR 2

/* The PCI hmmgpu device: SKIP when there is none. */
static int need_pci(char *name, size_t len)
{
	int index = kt_pci_device(name, len);

	if (index < 0)
		SKIP("no hmmgpu PCI device (load hmmgpu with pci=all in a VM with ivshmem-plain)");
	return index;
}

static unsigned long sysfs_hex(const char *dev, const char *file)
{
	char path[128], buf[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", dev, file);
	f = fopen(path, "r");
	if (!f)
		HMMT_FAIL("%s: %s", path, strerror(errno));
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	return strtoul(buf, NULL, 16);
}

/* Size of BAR @bar from the device's resource file. */
static unsigned long long bar_size(const char *dev, int bar)
{
	char path[128];
	unsigned long long start = 0, end = 0, flags;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource", dev);
	f = fopen(path, "r");
	if (!f)
		HMMT_FAIL("%s: %s", path, strerror(errno));
	for (int i = 0; i <= bar; i++) {
		if (fscanf(f, "%llx %llx %llx", &start, &end, &flags) != 3)
			HMMT_FAIL("%s: no line for BAR %d", path, bar);
	}
	fclose(f);
	return end ? end - start + 1 : 0;
}

TEST(pci_device_is_bound)
{
	char dev[32], path[128], target[256];
	int index = need_pci(dev, sizeof(dev));
	unsigned long long mem = kt_module_param("mem_mib") << 20;
	unsigned long long bar;
	ssize_t n;
	int fd;

	ASSERT_EQ(sysfs_hex(dev, "vendor"), IVSHMEM_VENDOR);
	ASSERT_EQ(sysfs_hex(dev, "device"), IVSHMEM_DEVICE);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", dev);
	n = readlink(path, target, sizeof(target) - 1);
	ASSERT_GT(n, 0);
	target[n] = '\0';
	ASSERT_STREQ(strrchr(target, '/'), "/hmmgpu");

	/* the device memory is the BAR's start: mem_mib of it at most */
	bar = bar_size(dev, IVSHMEM_BAR);
	ASSERT_GE(bar, 2ULL << 20);
	fd = kt_open_device(index);
	ASSERT_EQ(kt_mem_total(fd), mem < bar ? mem : bar & ~((2ULL << 20) - 1));
	close(fd);
}

TEST(drm_get_devices2_lists_it)
{
	drmDevicePtr devs[32];
	char dev[32], want[32];
	int index = need_pci(dev, sizeof(dev));
	int n = drmGetDevices2(0, devs, 32), found = 0;

	ASSERT_GT(n, 0);
	for (int i = 0; i < n; i++) {
		struct drm_hmmgpu_get_info info;
		drmPciBusInfoPtr b;
		int fd;

		if (devs[i]->bustype != DRM_BUS_PCI)
			continue;
		b = devs[i]->businfo.pci;
		snprintf(want, sizeof(want), "%04x:%02x:%02x.%u", b->domain,
			 b->bus, b->dev, b->func);
		if (strcmp(want, dev))
			continue;
		found++;
		ASSERT_EQ(devs[i]->deviceinfo.pci->vendor_id, IVSHMEM_VENDOR);
		ASSERT_EQ(devs[i]->deviceinfo.pci->device_id, IVSHMEM_DEVICE);
		ASSERT_TRUE(devs[i]->available_nodes & (1 << DRM_NODE_RENDER));
		fd = open(devs[i]->nodes[DRM_NODE_RENDER], O_RDWR | O_CLOEXEC);
		ASSERT_GE(fd, 0);
		kt_get_info(fd, &info);
		ASSERT_EQ(info.device_index, index);
		close(fd);
	}
	drmFreeDevices(devs, n);
	ASSERT_EQ(found, 1);
}

/*
 * Device pages' data is in the BAR: after a migration the pattern is found
 * there, read through the PCI core's mapping of the BAR (resource2), and
 * it comes back intact.
 */
TEST(device_memory_is_in_the_bar)
{
	const size_t npages = 64, ps = kt_page_size(), size = npages * ps;
	const uint64_t seed = 0x5ca1ab1e0badf00dULL;
	char dev[32], path[128];
	int index = need_pci(dev, sizeof(dev));
	int fd = kt_open_device(index), rfd;
	unsigned long long total = kt_mem_total(fd);
	char *p = kt_map(size), *bar;
	size_t found = 0;

	kt_fill(p, size, seed);
	KT_EXPECT_MIGRATE(fd, p, size, HMMGPU_MIGRATE_TO_DEVICE, npages, 0, 0);
	KT_EXPECT_WHERE(fd, p, npages, HMMGPU_RESIDENCY_THIS_DEVICE);

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource%d",
		 dev, IVSHMEM_BAR);
	rfd = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT_GE(rfd, 0);
	bar = mmap(NULL, total, PROT_READ, MAP_SHARED, rfd, 0);
	ASSERT_TRUE(bar != MAP_FAILED);
	for (size_t off = 0; off < total; off += ps) {
		for (size_t pg = 0; pg < npages; pg++) {
			if (*(uint64_t *)(bar + off) !=
			    kt_pattern(seed, pg * ps / 8))
				continue;
			if (kt_check_range(bar + off - pg * ps, pg * ps, ps,
					   seed) == -1)
				found++;
			break;
		}
	}
	munmap(bar, total);
	close(rfd);
	TH_LOG("%zu of %zu pages found in BAR %d of %s", found, npages,
	       IVSHMEM_BAR, dev);
	ASSERT_EQ(found, npages);

	/* a CPU access brings them back */
	ASSERT_EQ(kt_check(p, size, seed), -1);
	KT_EXPECT_WHERE(fd, p, npages, HMMGPU_RESIDENCY_SYSTEM);
	kt_unmap(p, size);
	close(fd);
}

static int count_nodes_wait(int want)
{
	int n = -1;

	for (int i = 0; i < 500; i++) {
		n = kt_count_devices();
		if (n == want)
			break;
		usleep(10000);
	}
	return n;
}

/*
 * PCI hot removal through sysfs while a process has data on the device:
 * the data comes back to RAM intact, the open file says -ENODEV; a rescan
 * binds the device again, and it works.
 */
TEST(pci_remove_and_rescan_keep_data)
{
	const size_t npages = 1024, ps = kt_page_size(), size = npages * ps;
	const uint64_t seed = 0xfeedfacecafe1234ULL;
	struct drm_hmmgpu_get_info info = { 0 };
	char dev[32], path[128];
	int index = need_pci(dev, sizeof(dev));
	int ndev = kt_count_devices();
	int fd = kt_open_device(index);
	char *p = kt_map(size);

	kt_fill(p, size, seed);
	KT_EXPECT_MIGRATE(fd, p, size, HMMGPU_MIGRATE_TO_DEVICE, npages, 0, 0);
	KT_EXPECT_WHERE(fd, p, npages, HMMGPU_RESIDENCY_THIS_DEVICE);

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove", dev);
	ASSERT_EQ(kt_sysfs_write(path, "1"), 0);
	ASSERT_EQ(count_nodes_wait(ndev - 1), ndev - 1);
	ASSERT_EQ(access(path, F_OK), -1);
	ASSERT_ERRNO(drmIoctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, &info), ENODEV);
	close(fd);

	/* every page is back in RAM, as it was: checked without faults */
	fd = kt_open_device(index == 0 ? 1 : 0);
	KT_EXPECT_WHERE(fd, p, npages, HMMGPU_RESIDENCY_SYSTEM);
	close(fd);
	ASSERT_EQ(kt_check(p, size, seed), -1);

	ASSERT_EQ(kt_sysfs_write("/sys/bus/pci/rescan", "1"), 0);
	ASSERT_EQ(count_nodes_wait(ndev), ndev);
	ASSERT_EQ(kt_pci_device(path, sizeof(path)), index);
	ASSERT_STREQ(path, dev);

	/* the new device works */
	fd = kt_open_device(index);
	kt_fill(p, size, seed + 1);
	KT_EXPECT_MIGRATE(fd, p, size, HMMGPU_MIGRATE_TO_DEVICE, npages, 0, 0);
	KT_EXPECT_WHERE(fd, p, npages, HMMGPU_RESIDENCY_THIS_DEVICE);
	KT_EXPECT_MIGRATE(fd, p, size, HMMGPU_MIGRATE_TO_SYSTEM, npages, 0, 0);
	ASSERT_EQ(kt_check(p, size, seed + 1), -1);
	kt_unmap(p, size);
	close(fd);
}

/* The pci parameter: a list of addresses, and what it rejects. */
TEST(pci_parameter)
{
	char dev[32], params[128];
	int index = need_pci(dev, sizeof(dev));
	unsigned int ndev = kt_module_param("num_devices");

	ASSERT_EQ(kt_unload_hmmgpu(), 0);
	ASSERT_EQ(kt_load_hmmgpu("pci=ivshmem"), -EINVAL);
	ASSERT_EQ(kt_load_hmmgpu("pci=0000:00:04"), -EINVAL);
	ASSERT_EQ(kt_load_hmmgpu("pci=0000:00:04.0,"), -EINVAL);
	ASSERT_EQ(kt_load_hmmgpu("pci=0000:00:20.0"), -EINVAL);

	/* by address: the same device, at the same index */
	snprintf(params, sizeof(params), "num_devices=%u pci=0000:00:1f.7,%s",
		 ndev, dev);
	ASSERT_EQ(kt_load_hmmgpu(params), 0);
	ASSERT_EQ(kt_count_devices(), (int)ndev);
	ASSERT_EQ(kt_pci_device(params, sizeof(params)), index);
	ASSERT_STREQ(params, dev);

	/* another address: platform devices only */
	ASSERT_EQ(kt_unload_hmmgpu(), 0);
	snprintf(params, sizeof(params), "num_devices=%u pci=0000:00:1f.7",
		 ndev);
	ASSERT_EQ(kt_load_hmmgpu(params), 0);
	ASSERT_EQ(kt_count_devices(), (int)ndev);
	ASSERT_EQ(kt_pci_device(params, sizeof(params)), -ENODEV);
	kt_restore_hmmgpu();
}

TEST_MAIN()
