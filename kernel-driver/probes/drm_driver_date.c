// SPDX-License-Identifier: GPL-2.0
/*
 * Linux 6.14 removed drm_driver.date.  Before, the DRM core copied it into
 * every DRM_IOCTL_VERSION reply, warned when it was NULL, and libdrm's
 * drmGetVersion() crashed on the missing string.
 */
#include <drm/drm_drv.h>

const struct drm_driver hmmgpu_probe = {
	.date = "20260101",
};
