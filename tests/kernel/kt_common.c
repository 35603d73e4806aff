// SPDX-License-Identifier: MIT
/*
 * kt_common.c - helpers for the kernel tests.
 */
#define _GNU_SOURCE
#include "kt_common.h"

#include <fcntl.h>
#include <unistd.h>

unsigned long long kt_module_param(const char *name)
{
	char path[256], buf[64];
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), "/sys/module/hmmgpu/parameters/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			SKIP("hmmgpu is not loaded (%s missing)", path);
		HMMT_FAIL("open %s: %s", path, strerror(errno));
	}
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		HMMT_FAIL("read %s failed", path);
	buf[len] = '\0';
	return strtoull(buf, NULL, 0);
}

int kt_sysfs_write(const char *path, const char *text)
{
	size_t len = strlen(text);
	int fd, ret = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len)
		ret = -errno;
	close(fd);
	return ret;
}

int kt_open_device(unsigned int index)
{
	struct hmm_node nodes[KT_MAX_NODES];
	int n, fd = -1;

	(void)kt_module_param("num_devices"); /* skips when not loaded */
	n = hmm_node_scan(nodes, KT_MAX_NODES, NULL);
	if (n < 0)
		HMMT_FAIL("hmm_node_scan: %s", strerror(-n));
	for (int i = 0; i < n; i++) {
		if (nodes[i].index == index) {
			fd = nodes[i].fd;
			nodes[i].fd = -1;
		}
	}
	hmm_node_close_all(nodes, n);
	if (fd < 0)
		HMMT_FAIL("no hmmgpu device with index %u among %d", index, n);
	return fd;
}
