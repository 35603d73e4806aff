// SPDX-License-Identifier: MIT
/*
 * test_node.c - device discovery on a machine that may have no hmmgpu:
 * every node it returns is an open hmmgpu render node, in index order, and
 * GET_INFO on something that is not an hmmgpu node fails cleanly.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "drm_node.h"

#include <fcntl.h>
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

TEST_MAIN()
