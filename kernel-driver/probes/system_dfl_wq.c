// SPDX-License-Identifier: GPL-2.0
/*
 * Linux 6.17 added system_dfl_wq, the unbound system workqueue under its
 * new name; 7.x warns once ("enqueued on deprecated workqueue") when work
 * is queued on system_unbound_wq.  Before: system_unbound_wq only.
 */
#include <linux/workqueue.h>

struct workqueue_struct *hmmgpu_probe(void);
struct workqueue_struct *hmmgpu_probe(void)
{
	return system_dfl_wq;
}
