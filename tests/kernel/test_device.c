// SPDX-License-Identifier: MIT
/*
 * test_device.c - the hmmgpu DRM device: discovery, GET_INFO, its caps and
 * its rejections, unplug through unbind, module unload and reload.
 *
 * Runs inside the test VM with hmmgpu.ko loaded (tools/vm/hmmvm test).
 */
#define _GNU_SOURCE
#include "kt_common.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <xf86drm.h>

static void fill(void *p, size_t n)
{
	memset(p, 0xa5, n);
}

TEST(discovery_finds_every_device)
{
	unsigned int want = kt_module_param("num_devices");
	struct hmm_node nodes[KT_MAX_NODES];
	int n = hmm_node_scan(nodes, KT_MAX_NODES, NULL);

	ASSERT_EQ(n, want);
	for (int i = 0; i < n; i++) {
		drmVersionPtr v = drmGetVersion(nodes[i].fd);
		struct stat st;

		/* sorted by index, indices dense from 0 */
		ASSERT_EQ(nodes[i].index, i);
		ASSERT_EQ(strncmp(nodes[i].path, "/dev/dri/renderD", 16), 0);
		ASSERT_EQ(fstat(nodes[i].fd, &st), 0);
		ASSERT_TRUE(S_ISCHR(st.st_mode));
		/* render node minors start at 128 */
		ASSERT_GE(minor(st.st_rdev), 128);
		ASSERT_TRUE(v != NULL);
		ASSERT_STREQ(v->name, "hmmgpu");
		drmFreeVersion(v);
	}
	hmm_node_close_all(nodes, n);
}

TEST(get_info_reports_the_device)
{
	unsigned int ndev = kt_module_param("num_devices");
	unsigned long long mem = kt_module_param("mem_mib") << 20;

	for (unsigned int i = 0; i < ndev; i++) {
		struct drm_hmmgpu_get_info info;
		int fd = kt_open_device(i);

		/* out fields must be written whatever the caller left there */
		fill(&info, sizeof(info));
		info.flags = 0;
		info.pad = 0;
		info.extensions = 0;
		ASSERT_EQ(drmIoctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, &info), 0);
		ASSERT_EQ(info.abi_version, HMMGPU_ABI_VERSION);
		ASSERT_EQ(info.device_index, i);
		ASSERT_EQ(info.page_size, sysconf(_SC_PAGESIZE));
		ASSERT_EQ(info.mem_total, mem);
		ASSERT_EQ(info.mem_free, mem); /* nothing resident yet */
		ASSERT_TRUE(info.copy_engine == HMMGPU_COPY_ENGINE_SOFTWARE ||
			    info.copy_engine == HMMGPU_COPY_ENGINE_DMAENGINE);
		/* only bits the header names */
		ASSERT_EQ(info.caps & ~HMMGPU_CAP_VIEW, 0);
		for (unsigned int r = 0; r < 3; r++)
			ASSERT_EQ(info.reserved[r], 0);
		ASSERT_EQ(info.flags, 0);
		close(fd);
	}
}

static void expect_get_info_einval(void (*spoil)(struct drm_hmmgpu_get_info *))
{
	struct drm_hmmgpu_get_info info;
	int fd = kt_open_device(0);

	memset(&info, 0, sizeof(info));
	spoil(&info);
	ASSERT_ERRNO(drmIoctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, &info), EINVAL);
	/* the file stays usable after a rejection */
	memset(&info, 0, sizeof(info));
	ASSERT_EQ(drmIoctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, &info), 0);
	close(fd);
}

static void spoil_flags(struct drm_hmmgpu_get_info *i) { i->flags = 1; }
static void spoil_high_flag(struct drm_hmmgpu_get_info *i) { i->flags = 1u << 31; }
static void spoil_pad(struct drm_hmmgpu_get_info *i) { i->pad = 1; }
static void spoil_extensions(struct drm_hmmgpu_get_info *i) { i->extensions = 0x1000; }

/*
 * HMMGPU_CAP_VIEW says whether VIEW_REGISTER works on this kernel and CPU
 * (hmmgpu_compat.h): the bit and the ioctl must agree.
 */
TEST(view_capability_matches_view_register)
{
	struct drm_hmmgpu_get_info info = { 0 };
	struct drm_hmmgpu_view_register reg = { 0 };
	size_t size = 64 * 1024;
	int fd = kt_open_device(0);
	char *p = kt_map(size);
	int ret;

	ASSERT_EQ(drmIoctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, &info), 0);
	reg.start = (uintptr_t)p;
	reg.size = size;
	ret = drmIoctl(fd, DRM_IOCTL_HMMGPU_VIEW_REGISTER, &reg) ? -errno : 0;
	if (info.caps & HMMGPU_CAP_VIEW) {
		struct drm_hmmgpu_view_unregister unreg = {
			.handle = reg.handle,
		};

		ASSERT_EQ(ret, 0);
		ASSERT_EQ(drmIoctl(fd, DRM_IOCTL_HMMGPU_VIEW_UNREGISTER, &unreg),
			  0);
	} else {
		ASSERT_EQ(ret, -EOPNOTSUPP);
		printf("# this kernel and CPU give no device view\n");
	}
	kt_unmap(p, size);
	close(fd);
}

TEST(get_info_rejects_flags)
{
	expect_get_info_einval(spoil_flags);
	expect_get_info_einval(spoil_high_flag);
}

TEST(get_info_rejects_pad)
{
	expect_get_info_einval(spoil_pad);
}

TEST(get_info_rejects_extensions)
{
	expect_get_info_einval(spoil_extensions);
}

TEST(unknown_ioctl_is_rejected)
{
	int fd = kt_open_device(0);
	struct drm_hmmgpu_get_info info = { 0 };
	/* the first driver ioctl number past the table */
	unsigned long req = DRM_IOWR(DRM_COMMAND_BASE + 0x3f,
				     struct drm_hmmgpu_get_info);

	ASSERT_ERRNO(ioctl(fd, req, &info), EINVAL);
	close(fd);
}

static int count_hmmgpu_nodes(void)
{
	struct hmm_node nodes[KT_MAX_NODES];
	int n = hmm_node_scan(nodes, KT_MAX_NODES, NULL);

	hmm_node_close_all(nodes, n > 0 ? n : 0);
	return n;
}

TEST(unbind_makes_open_files_enodev)
{
	const char *drv = "/sys/bus/platform/drivers/hmmgpu";
	unsigned int ndev = kt_module_param("num_devices");
	struct drm_hmmgpu_get_info info = { 0 };
	char path[128];
	int fd = kt_open_device(0);

	snprintf(path, sizeof(path), "%s/unbind", drv);
	ASSERT_EQ(kt_sysfs_write(path, "hmmgpu.0"), 0);
	ASSERT_EQ(count_hmmgpu_nodes(), ndev - 1);

	/* the open file survives, its ioctls report the removal */
	ASSERT_ERRNO(drmIoctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, &info), ENODEV);
	close(fd);

	snprintf(path, sizeof(path), "%s/bind", drv);
	ASSERT_EQ(kt_sysfs_write(path, "hmmgpu.0"), 0);
	ASSERT_EQ(count_hmmgpu_nodes(), ndev);
	fd = kt_open_device(0);
	ASSERT_EQ(drmIoctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, &info), 0);
	ASSERT_EQ(info.device_index, 0);
	close(fd);
}

TEST(module_unload_and_reload)
{
	const char *ko = getenv("HMMGPU_KO");
	unsigned int ndev = kt_module_param("num_devices");
	unsigned int mib = kt_module_param("mem_mib");
	struct drm_hmmgpu_get_info info = { 0 };
	char params[128];
	int fd;

	if (!ko)
		SKIP("HMMGPU_KO does not name the module file");

	/* an open file holds the module */
	fd = kt_open_device(0);
	ASSERT_ERRNO(syscall(SYS_delete_module, "hmmgpu", O_NONBLOCK),
		     EWOULDBLOCK);
	ASSERT_EQ(drmIoctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, &info), 0);
	close(fd);

	ASSERT_EQ(syscall(SYS_delete_module, "hmmgpu", O_NONBLOCK), 0);
	ASSERT_EQ(access("/sys/module/hmmgpu", F_OK), -1);
	ASSERT_EQ(count_hmmgpu_nodes(), 0);

	snprintf(params, sizeof(params), "num_devices=%u mem_mib=%u", ndev,
		 mib);
	ASSERT_EQ(kt_load_hmmgpu(params), 0);
	ASSERT_EQ(count_hmmgpu_nodes(), ndev);
}

TEST(module_rejects_bad_parameters)
{
	const char *ko = getenv("HMMGPU_KO");
	unsigned int ndev = kt_module_param("num_devices");
	unsigned int mib = kt_module_param("mem_mib");
	char params[128];

	if (!ko)
		SKIP("HMMGPU_KO does not name the module file");
	ASSERT_EQ(kt_load_hmmgpu(""), -EEXIST);

	ASSERT_EQ(syscall(SYS_delete_module, "hmmgpu", O_NONBLOCK), 0);
	ASSERT_EQ(kt_load_hmmgpu("num_devices=0"), -EINVAL);
	ASSERT_EQ(kt_load_hmmgpu("num_devices=9"), -EINVAL);
	ASSERT_EQ(kt_load_hmmgpu("mem_mib=0"), -EINVAL);
	ASSERT_EQ(access("/sys/module/hmmgpu", F_OK), -1);
	ASSERT_EQ(count_hmmgpu_nodes(), 0);

	snprintf(params, sizeof(params), "num_devices=%u mem_mib=%u", ndev,
		 mib);
	ASSERT_EQ(kt_load_hmmgpu(params), 0);
	ASSERT_EQ(count_hmmgpu_nodes(), ndev);
}

TEST_MAIN()
