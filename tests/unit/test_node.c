// SPDX-License-Identifier: MIT
/*
 * test_node.c - device discovery on a machine that may have no hmmgpu:
 * every node it returns is an open hmmgpu render node, in index order, and
 * GET_INFO on something that is not an hmmgpu node fails cleanly; bus
 * names agree with sysfs for whatever character devices the machine has;
 * the hotplug monitor starts and never blocks.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "drm_node.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <xf86drm.h>

TEST(scan_returns_only_hmmgpu_nodes)
{
	struct hmm_node nodes[16];
	int denied = -1;
	int n = hmm_node_scan(nodes, 16, &denied);

	ASSERT_GE(n, 0);
	ASSERT_GE(denied, 0);
	for (int i = 0; i < n; i++) {
		drmVersionPtr v = drmGetVersion(nodes[i].fd);

		ASSERT_TRUE(v != NULL);
		ASSERT_STREQ(v->name, "hmmgpu");
		drmFreeVersion(v);
		/* a platform device: "platform:hmmgpu.<n>" */
		ASSERT_EQ(strncmp(nodes[i].bus, "platform:hmmgpu.", 16), 0);
		if (i)
			ASSERT_LT(nodes[i - 1].index, nodes[i].index);
	}
	hmm_node_close_all(nodes, n);
	for (int i = 0; i < n; i++)
		ASSERT_EQ(nodes[i].fd, -1);
}

TEST(scan_respects_max)
{
	struct hmm_node nodes[1];

	ASSERT_EQ(hmm_node_scan(nodes, 0, NULL), 0);
}

TEST(get_info_on_a_non_drm_file_fails)
{
	struct drm_hmmgpu_get_info info;
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	ASSERT_GE(fd, 0);
	ASSERT_EQ(hmm_node_get_info(fd, &info), -ENOTTY);
	close(fd);
	ASSERT_EQ(hmm_node_get_info(fd, &info), -EBADF);
}

TEST(open_rejects_what_is_not_an_hmmgpu_node)
{
	struct hmm_node node;
	char longpath[HMM_NODE_PATH_MAX + 8];

	memset(&node, 0x5a, sizeof(node));
	/* a character device that is no DRM node */
	ASSERT_EQ(hmm_node_open("/dev/null", &node), -ENODEV);
	/* a regular file */
	ASSERT_EQ(hmm_node_open("/proc/self/status", &node), -ENODEV);
	ASSERT_EQ(hmm_node_open("/nonexistent/renderD128", &node), -ENOENT);
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	ASSERT_EQ(hmm_node_open(longpath, &node), -ENAMETOOLONG);
	/* no file descriptor leaked by the failures: the next is the lowest */
	{
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		int fd2 = dup(fd);

		ASSERT_EQ(fd2, fd + 1);
		close(fd2);
		close(fd);
	}
}

TEST(bus_of_a_file_without_a_bus_device)
{
	char bus[HMM_NODE_PATH_MAX];
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	ASSERT_GE(fd, 0);
	memset(bus, 'x', sizeof(bus));
	/* /dev/null is a virtual device: no parent on any bus */
	ASSERT_EQ(hmm_node_bus(fd, bus, sizeof(bus)), -ENODEV);
	ASSERT_STREQ(bus, "");
	close(fd);

	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(hmm_node_bus(fd, bus, sizeof(bus)), -ENODEV);
	close(fd);
	ASSERT_EQ(hmm_node_bus(fd, bus, sizeof(bus)), -EBADF);
}

/* basename of the target of @dir/@link, into @out; false when none */
static bool link_name(const char *dir, const char *link, char *out,
		      size_t len)
{
	char path[2 * PATH_MAX], target[PATH_MAX];
	const char *slash;

	snprintf(path, sizeof(path), "%s/%s", dir, link);
	if (!realpath(path, target))
		return false;
	slash = strrchr(target, '/');
	snprintf(out, len, "%s", slash ? slash + 1 : target);
	return true;
}

/*
 * Every character device with a parent device in sysfs: hmm_node_bus_devnum()
 * names the parent as sysfs does ("subsystem:sysname").
 */
TEST(bus_names_agree_with_sysfs)
{
	DIR *d = opendir("/sys/dev/char");
	struct dirent *de;
	int checked = 0;

	if (!d)
		SKIP("no /sys/dev/char");
	while ((de = readdir(d))) {
		char dir[PATH_MAX], sub[PATH_MAX], name[PATH_MAX];
		char want[2 * PATH_MAX + 2];
		char got[HMM_NODE_PATH_MAX], small[4];
		unsigned int maj, min;

		if (sscanf(de->d_name, "%u:%u", &maj, &min) != 2)
			continue;
		snprintf(dir, sizeof(dir), "/sys/dev/char/%s/device",
			 de->d_name);
		/* the parent device's subsystem and name, not the node's */
		if (!link_name(dir, "subsystem", sub, sizeof(sub)) ||
		    !link_name(dir, ".", name, sizeof(name)))
			continue;
		snprintf(want, sizeof(want), "%s:%s", sub, name);
		if (strlen(want) >= sizeof(got))
			continue;
		ASSERT_EQ(hmm_node_bus_devnum(makedev(maj, min), got,
					      sizeof(got)), 0);
		ASSERT_STREQ(got, want);
		/* too small a buffer: an error and an empty string */
		ASSERT_EQ(hmm_node_bus_devnum(makedev(maj, min), small,
					      sizeof(small)), -ENAMETOOLONG);
		ASSERT_STREQ(small, "");
		checked++;
	}
	closedir(d);
	if (!checked)
		SKIP("no character device with a parent device here");
	TH_LOG("%d devices checked", checked);
}

TEST(monitor_starts_and_never_blocks)
{
	struct hmm_node_monitor *m = hmm_node_monitor_new();
	struct hmm_node_event ev;
	struct pollfd pfd;

	if (!m && errno == ENOTSUP)
		SKIP("built without libudev");
	if (!m)
		SKIP("no netlink socket here: %s", strerror(errno));
	pfd.fd = hmm_node_monitor_fd(m);
	pfd.events = POLLIN;
	ASSERT_GE(pfd.fd, 0);
	/* nothing happens to render nodes here: no event, and no waiting */
	if (poll(&pfd, 1, 0) == 0)
		ASSERT_EQ(hmm_node_monitor_next(m, &ev), 0);
	hmm_node_monitor_free(m);
	hmm_node_monitor_free(NULL);
}

TEST_MAIN()
