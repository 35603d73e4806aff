// SPDX-License-Identifier: GPL-2.0
/*
 * Linux 6.11 made platform_driver.remove return void (6.3 to 6.10 had the
 * void remove_new beside the int remove).
 */
#include <linux/platform_device.h>

void hmmgpu_probe_remove(struct platform_device *pdev);
struct platform_driver hmmgpu_probe = {
	.remove = hmmgpu_probe_remove,
};
