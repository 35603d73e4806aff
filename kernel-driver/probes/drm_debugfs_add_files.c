// SPDX-License-Identifier: GPL-2.0
/*
 * Linux 6.3 added device-centred debugfs files: drm_debugfs_add_files()
 * with struct drm_debugfs_info, whose show() gets a drm_debugfs_entry.
 * Before: drm_debugfs_create_files() on a minor's debugfs_root.
 */
#include <drm/drm_debugfs.h>
#include <drm/drm_device.h>

void hmmgpu_probe(struct drm_device *drm, const struct drm_debugfs_info *files);
void hmmgpu_probe(struct drm_device *drm, const struct drm_debugfs_info *files)
{
	drm_debugfs_add_files(drm, files, 1);
}
