// SPDX-License-Identifier: GPL-2.0
/*
 * hmmgpu_unsupported.c - what hmmgpu.ko is on a kernel that cannot host
 * it: Kbuild builds this file alone when CONFIG_DEVICE_PRIVATE or
 * CONFIG_HMM_MIRROR is missing, so that loading fails with one clear line
 * instead of unresolved symbols.
 */

#include <linux/module.h>

static int __init hmmgpu_unsupported_init(void)
{
	pr_err("hmmgpu: this kernel lacks %s, so it cannot host device-private memory; boot a kernel built with CONFIG_DEVICE_PRIVATE=y and CONFIG_HMM_MIRROR=y (tools/vm/hmmvm builds one)\n",
	       !IS_ENABLED(CONFIG_DEVICE_PRIVATE) ? "CONFIG_DEVICE_PRIVATE" :
						     "CONFIG_HMM_MIRROR");
	return -ENODEV;
}
module_init(hmmgpu_unsupported_init);

MODULE_DESCRIPTION("hmm virtual GPU (unsupported on this kernel)");
MODULE_LICENSE("GPL");
