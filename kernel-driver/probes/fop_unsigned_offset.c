// SPDX-License-Identifier: GPL-2.0
/*
 * Linux 6.12 added file_operations.fop_flags; with FOP_UNSIGNED_OFFSET a
 * file takes offsets above LONG_MAX, and drm_open() refuses files without
 * it from then on.
 */
#include <linux/fs.h>

const struct file_operations hmmgpu_probe = {
	.fop_flags = FOP_UNSIGNED_OFFSET,
};
