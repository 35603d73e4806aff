/* SPDX-License-Identifier: MIT */
/*
 * kt_common.h - helpers for the kernel tests, which run inside the test VM
 * (tools/vm/hmmvm) with hmmgpu.ko loaded.
 */
#ifndef HMM_KT_COMMON_H
#define HMM_KT_COMMON_H

#include "../harness.h"
#include "drm_node.h"

#define KT_MAX_NODES 16

/* Reads /sys/module/hmmgpu/parameters/@name as an unsigned number. */
unsigned long long kt_module_param(const char *name);

/* Writes @text to the sysfs file @path; 0 or -errno. */
int kt_sysfs_write(const char *path, const char *text);

/*
 * Opens hmmgpu device @index (SKIP when the module is not loaded, fails
 * the test when that device does not exist); returns the file descriptor.
 */
int kt_open_device(unsigned int index);

#endif /* HMM_KT_COMMON_H */
