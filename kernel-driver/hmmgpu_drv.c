// SPDX-License-Identifier: GPL-2.0
/*
 * hmmgpu_drv.c - module init/exit, DRM device, per-open context, ioctls.
 */

#include <linux/idr.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/workqueue.h>
#include <linux/moduleparam.h>
#include <linux/platform_device.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>

#include <drm/drm_drv.h>
#include <drm/drm_file.h>
#include <drm/drm_ioctl.h>
#include <drm/drm_print.h>

#include "hmmgpu_copy.h"
#include "hmmgpu_drv.h"

/**
 * DOC: Overview
 *
 * hmmgpu is a virtual GPU whose memory is real device-private ZONE_DEVICE
 * memory.  The module creates @num_devices platform devices named
 * "hmmgpu", or binds PCI devices when asked (DOC: PCI personality, which
 * then come first); each one probes into a DRM device with a render node
 * (/dev/dri/renderD*), so that discovery and permissions follow the GPU
 * conventions: the udev "drm" subsystem, the "render" group, libdrm.
 *
 * Userspace finds a device by enumerating render nodes and checking that
 * drmGetVersion() names the driver "hmmgpu", then talks to it with the
 * DRM_IOCTL_HMMGPU_* ioctls of include/uapi/drm/hmmgpu_drm.h.  All of them
 * are allowed on render nodes.
 *
 * Removing a device (module unload, unbind through sysfs) unplugs the DRM
 * device: open files stay valid, and every later ioctl on them fails with
 * -ENODEV (drm_ioctl() checks drm_dev_is_unplugged()).  That check comes
 * before the handler runs, so an ioctl that was already past it when the
 * device went away still runs: every handler that reads device state torn
 * down at removal (device memory, copy engine) does so inside
 * drm_dev_enter()/drm_dev_exit(), which hmmgpu_remove() waits for.
 *
 * hmmgpu is a GEM driver without GEM objects (DRIVER_GEM, no object ever
 * created).  The DRM core lets its generic GEM and PRIME ioctls through on
 * every render node (DRM_IOCTL_GEM_CLOSE, DRM_IOCTL_PRIME_HANDLE_TO_FD,
 * DRM_IOCTL_PRIME_FD_TO_HANDLE, ...); the PRIME ones call the core's GEM
 * helpers whatever the driver is (Linux 6.12 and later; 6.1 refused them
 * to a driver without PRIME callbacks with -ENOSYS).  DRIVER_GEM makes the
 * core set up each file's handle table (drm_gem_open()), so those ioctls
 * look up an empty table and fail cleanly (-ENOENT, -EINVAL) instead of
 * touching a lock that was never initialized.  The other core ioctls a
 * render node accepts need DRIVER_SYNCOBJ (not set: -EOPNOTSUPP) or touch
 * no driver state.
 */

/**
 * DOC: Module parameters
 *
 * All but four are read-only once the module is loaded (see them in
 * /sys/module/hmmgpu/parameters/); a bad value fails the load with
 * -EINVAL and one line in the kernel log.
 *
 * - num_devices (1-8, default 1): virtual GPUs to have at load: the PCI
 *   devices that pci names first, then as many platform devices as make
 *   up the number (none when the PCI devices are that many or more).
 * - pci (default empty: none): PCI devices to drive, their memory BAR as
 *   device memory (DOC: PCI personality): "all" for every device of the
 *   driver's PCI ID table (QEMU's ivshmem-plain), or a comma-separated
 *   list of PCI addresses ("0000:00:04.0,0000:00:05.0"). A device named
 *   here that appears later (PCI rescan, hotplug) is bound when it does.
 * - mem_mib (default 256): device memory per GPU in MiB, rounded up to
 *   2 MiB; on a PCI device at most its BAR (rounded down to 2 MiB). The
 *   backing store of a platform device, as much system RAM, is reserved
 *   at load; more than the RAM available for num_devices devices fails
 *   the load with -ENOMEM before anything is allocated (whether some of
 *   them will be PCI devices is not known yet).
 * - copy_engine (auto, software, dmaengine; default auto): who copies
 *   pages. auto takes a dmaengine DMA_MEMCPY channel if the platform has
 *   one and the device's own software engine otherwise; dmaengine fails
 *   the load (-ENODEV) when there is no channel.
 * - copy_channels (0-16, default 0): kernel threads of the software
 *   engine per device, working each batch in parallel; 0 means one per
 *   online CPU, at most 4 (more threads than CPUs only add switching:
 *   measured with tools/bench on a 2-CPU guest, docs/performance.md).
 * - fault_kib (power of two, 4-2048, default 64): how much a CPU fault on
 *   a device page brings back: the aligned block of that size around the
 *   faulting address, clamped to the VMA.
 * - view_fault_kib (power of two, 4-2048, default 64): how much a device
 *   fault migrates, unless the view was advised otherwise.
 * - prefetch_pct (0-100, default 50, writable at run time): density
 *   prefetch after a device fault: when more than this share of the
 *   enclosing 2 MiB region is on the device, the rest follows. 0 turns
 *   it off.
 * - copy_timeout_ms (at least 10, default 10000, writable at run time):
 *   a DMA engine batch not done after this long is cancelled and its
 *   copies count as failed (hmmgpu_copy.c, "Stalls").
 * - device_thp (bool, default off, writable at run time): on a kernel
 *   with device-private THP, MIGRATE moves whole aligned 2 MiB ranges as
 *   2 MiB device folios ("Device THP"); off, every device page is 4 KiB.
 *   Folios made while it was on stay until they move or are split.
 *   Experimental, and opt-in because of a bug of the 7.3 core that a
 *   driver cannot work around: zap_huge_pmd() decides by the folio, not
 *   by the entry, whether a non-present PMD holds a mapping, so zapping a
 *   PMD *migration* entry of a device-private folio removes an rmap and
 *   drops a reference that only a device-private entry holds.  A device
 *   THP shared after fork() whose other process unmaps or exits while the
 *   folio migrates back (migration entries in both), or whose process
 *   exits while eviction moves it, loses a reference: the folio is freed
 *   inside the migration, and do_huge_pmd_device_private() then puts a
 *   freed folio (VM_BUG_ON_PAGE, refcount 0).  Traced with the fuzzer
 *   (docs/testing-vm.md): before the fault's migration the folio had 2
 *   mappings and 3 references, after migrate_vma_setup() 1 reference
 *   and a mapcount of -1, one more removal than it had mappings.  test_thp
 *   and the benchmark pass with it on.  (A second BUG the fuzzer hit
 *   with it on, a device page with both PG_active and PG_unevictable in
 *   folio_migrate_flags(), came from the LRU state that freed device
 *   pages kept; allocation clears it now, and test_migrate's
 *   device_pages_forget_the_state_of_their_last_data checks.)
 * - thrash_threshold (0-1000, default 3; 0 turns it off), thrash_lapse_us
 *   (default 20000) and thrash_pin_ms (default 150), writable at run time:
 *   thrashing detection and mitigation (DOC: Thrashing).
 * - migrate_workers (0-8, default 0, writable at run time): threads that
 *   share one MIGRATE of at least two 2 MiB blocks per thread, the caller
 *   included (hmmgpu_migrate_range()); 0 means one per online CPU, 1 the
 *   caller alone.  (Before, the default was 1: on a full device the
 *   threads could evict blocks holding pages of the migration's own
 *   range that no thread had reached yet, and move them back in; seen
 *   in test_oversub preferred_data_is_not_evicted_for_other_data, 7.3.
 *   Eviction now passes over such blocks: DOC: Device memory.)
 */

#define HMMGPU_MAX_DEVICES 8

static unsigned int num_devices = 1;
module_param(num_devices, uint, 0444);
MODULE_PARM_DESC(num_devices, "Number of virtual GPUs to create (1-"
		 __stringify(HMMGPU_MAX_DEVICES) ", default 1)");

unsigned int hmmgpu_mem_mib = 256;
module_param_named(mem_mib, hmmgpu_mem_mib, uint, 0444);
MODULE_PARM_DESC(mem_mib, "Device memory per GPU in MiB (default 256)");

static char *copy_engine = "auto";
module_param(copy_engine, charp, 0444);
MODULE_PARM_DESC(copy_engine, "Copy engine: auto (dmaengine if the platform has a DMA_MEMCPY channel), software or dmaengine");

static unsigned int copy_channels;
module_param(copy_channels, uint, 0444);
MODULE_PARM_DESC(copy_channels, "Software copy engine: kernel threads per device (1-16; default 0: one per online CPU, at most 4)");

unsigned int hmmgpu_fault_kib = 64;
module_param_named(fault_kib, hmmgpu_fault_kib, uint, 0444);
MODULE_PARM_DESC(fault_kib, "CPU fault-back granularity in KiB: a power of two from 4 to 2048 (default 64)");

unsigned int hmmgpu_view_fault_kib = 64;
module_param_named(view_fault_kib, hmmgpu_view_fault_kib, uint, 0444);
MODULE_PARM_DESC(view_fault_kib, "Device fault granularity in KiB, unless advised per view: a power of two from 4 to 2048 (default 64)");

static int migrate_workers_set(const char *val, const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, 0, 8);
}

static const struct kernel_param_ops migrate_workers_ops = {
	.set = migrate_workers_set,
	.get = param_get_uint,
};

unsigned int hmmgpu_migrate_workers;
struct workqueue_struct *hmmgpu_migrate_wq;
module_param_cb(migrate_workers, &migrate_workers_ops, &hmmgpu_migrate_workers,
		0644);
MODULE_PARM_DESC(migrate_workers, "Threads sharing one explicit migration of several 2 MiB blocks (0-8; default 0: one per online CPU; 1: the calling thread alone)");

static bool device_thp;
module_param(device_thp, bool, 0644);
MODULE_PARM_DESC(device_thp, "2 MiB device pages where the kernel has device-private THP (6.19 and later; experimental, default off, writable at run time)");

/**
 * hmmgpu_device_thp() - do migrations make 2 MiB device folios now?
 *
 * Return: true on a kernel with device-private THP while the device_thp
 * parameter is on.
 */
bool hmmgpu_device_thp(void)
{
	return HMMGPU_HAVE_DEVICE_THP && READ_ONCE(device_thp);
}

static int prefetch_pct_set(const char *val, const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, 0, 100);
}

static const struct kernel_param_ops prefetch_pct_ops = {
	.set = prefetch_pct_set,
	.get = param_get_uint,
};

unsigned int hmmgpu_prefetch_pct = 50;
module_param_cb(prefetch_pct, &prefetch_pct_ops, &hmmgpu_prefetch_pct, 0644);
MODULE_PARM_DESC(prefetch_pct, "Density prefetch: migrate the rest of a 2 MiB region once more than this percentage of it is on the device (0-100, 0 = off, default 50)");

/* Thrashing detection (hmmgpu_thrash.c, DOC: Thrashing). */
static int thrash_lapse_set(const char *val, const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, 1, 10 * USEC_PER_SEC);
}

static const struct kernel_param_ops thrash_lapse_ops = {
	.set = thrash_lapse_set,
	.get = param_get_uint,
};

static int thrash_pin_set(const char *val, const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, 1, 60 * MSEC_PER_SEC);
}

static const struct kernel_param_ops thrash_pin_ops = {
	.set = thrash_pin_set,
	.get = param_get_uint,
};

static int thrash_threshold_set(const char *val,
				const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, 0, 1000);
}

static const struct kernel_param_ops thrash_threshold_ops = {
	.set = thrash_threshold_set,
	.get = param_get_uint,
};

module_param_cb(thrash_threshold, &thrash_threshold_ops,
		&hmmgpu_thrash_threshold, 0644);
MODULE_PARM_DESC(thrash_threshold, "Thrashing: bounces of a 64 KiB block in a row (CPU faults back soon after a device fault brought it) that pin it in system memory, mapped remotely by the device (0-1000, 0 = off, default 3)");
module_param_cb(thrash_lapse_us, &thrash_lapse_ops, &hmmgpu_thrash_lapse_us,
		0644);
MODULE_PARM_DESC(thrash_lapse_us, "Thrashing: a CPU fault this soon after the device fault is a bounce, in microseconds (1-10000000, default 20000)");
module_param_cb(thrash_pin_ms, &thrash_pin_ops, &hmmgpu_thrash_pin_ms, 0644);
MODULE_PARM_DESC(thrash_pin_ms, "Thrashing: how long a pin lasts, in milliseconds (1-60000, default 150)");

static struct platform_device *hmmgpu_pdevs[HMMGPU_MAX_DEVICES];
/* Why the last probe failed, for the module load to report it. */
static int hmmgpu_probe_err;

/* fdinfo's drm-client-id: one number per open file, never reused. */
static atomic64_t hmmgpu_next_client_id = ATOMIC64_INIT(0);

static int hmmgpu_open(struct drm_device *drm, struct drm_file *file)
{
	struct hmmgpu_device *hdev = to_hmmgpu(drm);
	struct hmmgpu_file *hfile;

	hfile = kzalloc(sizeof(*hfile), GFP_KERNEL_ACCOUNT);
	if (!hfile)
		return -ENOMEM;
	hfile->hdev = hdev;
	hfile->client_id = atomic64_inc_return(&hmmgpu_next_client_id);
	mutex_init(&hfile->views_lock);
	INIT_LIST_HEAD(&hfile->views);
	xa_init_flags(&hfile->handles, XA_FLAGS_ALLOC1);
	spin_lock_init(&hfile->pref_lock);
	hfile->pref_tree = RB_ROOT_CACHED;
	xa_init(&hfile->thrash);
	hfile->mm = current->mm;
	if (hfile->mm)
		mmgrab(hfile->mm);
	spin_lock(&hdev->files_lock);
	list_add_tail(&hfile->node, &hdev->files);
	spin_unlock(&hdev->files_lock);
	file->driver_priv = hfile;
	return 0;
}

static void hmmgpu_postclose(struct drm_device *drm, struct drm_file *file)
{
	struct hmmgpu_device *hdev = to_hmmgpu(drm);
	struct hmmgpu_file *hfile = file->driver_priv;

	hmmgpu_view_release_all(hfile);
	spin_lock(&hdev->files_lock);
	list_del(&hfile->node);
	spin_unlock(&hdev->files_lock);
	xa_destroy(&hfile->handles);
	hmmgpu_thrash_fini(hfile);
	if (hfile->mm)
		mmdrop(hfile->mm);
	kfree(hfile);
	file->driver_priv = NULL;
}

/**
 * hmmgpu_ioctl_get_info() - DRM_IOCTL_HMMGPU_GET_INFO.
 * @drm: the device.
 * @data: a &struct drm_hmmgpu_get_info, already copied in by drm_ioctl().
 * @file: the caller's file.
 *
 * Reads the device memory and the copy engine, which removal frees, inside
 * drm_dev_enter().
 *
 * Return: 0; -EINVAL when @flags, @pad or @extensions is not zero;
 * -ENODEV when the device was removed.
 */
static int hmmgpu_ioctl_get_info(struct drm_device *drm, void *data,
				 struct drm_file *file)
{
	struct hmmgpu_device *hdev = to_hmmgpu(drm);
	struct drm_hmmgpu_get_info *args = data;
	int idx;

	if (args->flags || args->pad || args->extensions)
		return -EINVAL;
	if (!drm_dev_enter(drm, &idx))
		return -ENODEV;

	memset(&args->abi_version, 0,
	       sizeof(*args) - offsetof(struct drm_hmmgpu_get_info, abi_version));
	args->abi_version = HMMGPU_ABI_VERSION;
	args->device_index = hdev->index;
	args->page_size = PAGE_SIZE;
	args->mem_total = (u64)hdev->dmem.npages << PAGE_SHIFT;
	args->mem_free = hmmgpu_dmem_free_bytes(&hdev->dmem);
	args->copy_engine = hmmgpu_copy_engine_kind(hdev->copy);
	args->copy_channels = hmmgpu_copy_engine_channels(hdev->copy);
	if (hmmgpu_can_flush_tlb())
		args->caps |= HMMGPU_CAP_VIEW;
	if (hmmgpu_device_thp())
		args->caps |= HMMGPU_CAP_DEVICE_THP;
	drm_dev_exit(idx);
	return 0;
}

/* Checks a user range: page-aligned, non-empty, not wrapping, in TASK_SIZE. */
static bool range_ok(u64 start, u64 size)
{
	return size && PAGE_ALIGNED(start) && PAGE_ALIGNED(size) &&
	       start + size > start && start + size <= TASK_SIZE;
}

/**
 * hmmgpu_ioctl_migrate() - DRM_IOCTL_HMMGPU_MIGRATE.
 * @drm: the device.
 * @data: a &struct drm_hmmgpu_migrate.
 * @file: the caller's file.
 *
 * Return: 0 with the page counts filled; -EINVAL for bad input fields;
 * -EFAULT when part of the range is not mapped; -ENODEV after removal;
 * -EINTR or -ENOMEM.
 */
static int hmmgpu_ioctl_migrate(struct drm_device *drm, void *data,
				struct drm_file *file)
{
	struct drm_hmmgpu_migrate *args = data;
	struct hmmgpu_migrate_result res = { 0 };
	int idx, ret;

	if (args->flags || args->pad || args->extensions ||
	    (args->target != HMMGPU_MIGRATE_TO_DEVICE &&
	     args->target != HMMGPU_MIGRATE_TO_SYSTEM) ||
	    !range_ok(args->start, args->size))
		return -EINVAL;
	if (!drm_dev_enter(drm, &idx))
		return -ENODEV;
	ret = hmmgpu_migrate_range(file->driver_priv, args->start,
				   args->start + args->size, args->target,
				   &res);
	/* a prefetched range needs no device fault to be used */
	if (!ret && args->target == HMMGPU_MIGRATE_TO_DEVICE)
		hmmgpu_view_populate(file->driver_priv, args->start,
				     args->start + args->size);
	drm_dev_exit(idx);
	args->moved = res.moved;
	args->already = res.already;
	args->skipped = res.skipped;
	return ret;
}

#define HMMGPU_RESIDENCY_MAX_PAGES (1ULL << 24)

/*
 * RESIDENCY and SNAPSHOT: the same checks and walk; @words says which
 * answer goes to @out. @bad is true for a non-zero must-be-zero field.
 */
static int residency_common(struct drm_device *drm, struct drm_file *file,
			    bool bad, u64 start, u64 npages, u64 out,
			    bool words, u64 count_out[4])
{
	u64 count[4] = { 0 };
	int idx, ret;

	if (bad || !npages || npages > HMMGPU_RESIDENCY_MAX_PAGES ||
	    !range_ok(start, npages << PAGE_SHIFT))
		return -EINVAL;
	if (!drm_dev_enter(drm, &idx))
		return -ENODEV;
	ret = hmmgpu_residency(file->driver_priv, start, npages,
			       u64_to_user_ptr(out), words, count);
	drm_dev_exit(idx);
	memcpy(count_out, count, sizeof(count));
	return ret;
}

/**
 * hmmgpu_ioctl_residency() - DRM_IOCTL_HMMGPU_RESIDENCY.
 * @drm: the device.
 * @data: a &struct drm_hmmgpu_residency.
 * @file: the caller's file.
 *
 * Return: 0; -EINVAL for bad input fields; -EFAULT when the locations
 * buffer is not writable; -ENODEV after removal.
 */
static int hmmgpu_ioctl_residency(struct drm_device *drm, void *data,
				  struct drm_file *file)
{
	struct drm_hmmgpu_residency *args = data;

	return residency_common(drm, file, args->flags || args->pad,
				args->start, args->npages, args->locations,
				false, args->count);
}

/**
 * hmmgpu_ioctl_snapshot() - DRM_IOCTL_HMMGPU_SNAPSHOT.
 * @drm: the device.
 * @data: a &struct drm_hmmgpu_snapshot.
 * @file: the caller's file.
 *
 * Return: 0; -EINVAL for bad input fields; -EFAULT when the pages
 * buffer is not writable; -ENODEV after removal.
 */
static int hmmgpu_ioctl_snapshot(struct drm_device *drm, void *data,
				 struct drm_file *file)
{
	struct drm_hmmgpu_snapshot *args = data;

	return residency_common(drm, file,
				args->flags || args->pad || args->extensions,
				args->start, args->npages, args->pages, true,
				args->count);
}

/**
 * hmmgpu_ioctl_stats() - DRM_IOCTL_HMMGPU_STATS.
 * @drm: the device.
 * @data: a &struct drm_hmmgpu_stats.
 * @file: the caller's file.
 *
 * Return: 0, or -EINVAL for a bad scope, flags or extensions.
 */
static int hmmgpu_ioctl_stats(struct drm_device *drm, void *data,
			      struct drm_file *file)
{
	struct drm_hmmgpu_stats *args = data;
	struct hmmgpu_file *hfile = file->driver_priv;

	if (args->flags || args->extensions ||
	    (args->scope != HMMGPU_STATS_FILE &&
	     args->scope != HMMGPU_STATS_DEVICE))
		return -EINVAL;
	hmmgpu_stats_fill(args->scope == HMMGPU_STATS_FILE ? &hfile->stats :
			  &to_hmmgpu(drm)->stats, args);
	return 0;
}

static int hmmgpu_ioctl_view_register(struct drm_device *drm, void *data,
				      struct drm_file *file)
{
	int idx, ret;

	if (!drm_dev_enter(drm, &idx))
		return -ENODEV;
	ret = hmmgpu_view_register(file->driver_priv, data);
	drm_dev_exit(idx);
	return ret;
}

static int hmmgpu_ioctl_view_unregister(struct drm_device *drm, void *data,
					struct drm_file *file)
{
	struct drm_hmmgpu_view_unregister *args = data;

	if (args->pad)
		return -EINVAL;
	return hmmgpu_view_unregister(file->driver_priv, args->handle);
}

static int hmmgpu_ioctl_view_advise(struct drm_device *drm, void *data,
				    struct drm_file *file)
{
	return hmmgpu_view_advise(file->driver_priv, data);
}

static const struct drm_ioctl_desc hmmgpu_ioctls[] = {
	DRM_IOCTL_DEF_DRV(HMMGPU_GET_INFO, hmmgpu_ioctl_get_info,
			  DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(HMMGPU_MIGRATE, hmmgpu_ioctl_migrate,
			  DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(HMMGPU_RESIDENCY, hmmgpu_ioctl_residency,
			  DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(HMMGPU_STATS, hmmgpu_ioctl_stats,
			  DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(HMMGPU_VIEW_REGISTER, hmmgpu_ioctl_view_register,
			  DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(HMMGPU_VIEW_UNREGISTER, hmmgpu_ioctl_view_unregister,
			  DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(HMMGPU_VIEW_ADVISE, hmmgpu_ioctl_view_advise,
			  DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(HMMGPU_SNAPSHOT, hmmgpu_ioctl_snapshot,
			  DRM_RENDER_ALLOW),
};

/**
 * hmmgpu_show_fdinfo() - /proc/PID/fdinfo/FD of a render-node file.
 * @m: the fdinfo file.
 * @f: the render-node file.
 *
 * The DRM client usage keys (Documentation/gpu/drm-usage-stats.rst), which
 * gputop-style tools read: drm-driver, drm-client-id and drm-resident-vram
 * (the device pages this file's migrations moved there that are still
 * there), then
 * hmmgpu's own counters of the file, prefixed hmmgpu-. /proc shows them
 * only to the file's owner and to root, as for every fd. Written here for
 * every kernel rather than through drm_show_fdinfo() (6.5 and later).
 */
static void hmmgpu_show_fdinfo(struct seq_file *m, struct file *f)
{
	struct drm_file *file = f->private_data;
	struct hmmgpu_device *hdev = to_hmmgpu(file->minor->dev);
	struct hmmgpu_file *hfile = file->driver_priv;
	struct hmmgpu_counters *c;
	u64 to_dev = 0, to_sys = 0;
	int idx, k;

	if (!hfile || !drm_dev_enter(&hdev->drm, &idx))
		return;
	c = &hfile->stats;
	for (k = 0; k < HMMGPU_CAUSE_COUNT; k++) {
		to_dev += atomic64_read(&c->pages[HMMGPU_DIR_TO_DEVICE][k]);
		to_sys += atomic64_read(&c->pages[HMMGPU_DIR_TO_SYSTEM][k]);
	}
	seq_printf(m, "drm-driver:\t%s\n", HMMGPU_DRIVER_NAME);
	seq_printf(m, "drm-client-id:\t%llu\n", hfile->client_id);
	seq_printf(m, "drm-resident-vram:\t%lu KiB\n",
		   hmmgpu_dmem_resident(&hdev->dmem, hfile->client_id) <<
		   (PAGE_SHIFT - 10));
	seq_printf(m, "hmmgpu-device:\t%u\n", hdev->index);
	seq_printf(m, "hmmgpu-pages-to-device:\t%llu\n", to_dev);
	seq_printf(m, "hmmgpu-pages-to-system:\t%llu\n", to_sys);
	seq_printf(m, "hmmgpu-cpu-faults:\t%lld\n",
		   atomic64_read(&c->cpu_faults));
	seq_printf(m, "hmmgpu-device-faults:\t%lld\n",
		   atomic64_read(&c->device_faults));
	seq_printf(m, "hmmgpu-evictions:\t%lld\n",
		   atomic64_read(&c->evictions));
	seq_printf(m, "hmmgpu-thrash-pins:\t%lld\n",
		   atomic64_read(&c->thrash_pins));
	drm_dev_exit(idx);
}

static const struct file_operations hmmgpu_fops = {
	.owner = THIS_MODULE,
	.open = drm_open,
	.release = drm_release,
	.unlocked_ioctl = drm_ioctl,
	.compat_ioctl = drm_compat_ioctl,
	.poll = drm_poll,
	.read = drm_read,
	.llseek = noop_llseek,
	.mmap = hmmgpu_mmap,
	.show_fdinfo = hmmgpu_show_fdinfo,
	HMMGPU_FOP_UNSIGNED_OFFSET
};

static const struct drm_driver hmmgpu_drm_driver = {
	/* DRIVER_GEM: see DOC: Overview, the core's GEM and PRIME ioctls */
	.driver_features = DRIVER_GEM | DRIVER_RENDER,
	.open = hmmgpu_open,
	.postclose = hmmgpu_postclose,
	.ioctls = hmmgpu_ioctls,
	.num_ioctls = ARRAY_SIZE(hmmgpu_ioctls),
	.fops = &hmmgpu_fops,
	.name = HMMGPU_DRIVER_NAME,
	.desc = HMMGPU_DRIVER_DESC,
	HMMGPU_DRM_DRIVER_DATE(HMMGPU_DRIVER_DATE)
	.major = HMMGPU_DRIVER_MAJOR,
	.minor = HMMGPU_DRIVER_MINOR,
};

/**
 * hmmgpu_device_create() - make a bus device an hmmgpu device.
 * @parent: the platform or PCI device; parent of the DRM device, which
 *	    lives until both it is unbound and the last file is closed.
 * @index: the device's index, from hmmgpu_index_get().
 * @bar: the backing store's range in a PCI memory BAR, of the size wanted,
 *	 or NULL for mem_mib of system RAM.
 *
 * Creates the copy engine and the device memory and registers the DRM
 * device.
 *
 * Return: the device, or an ERR_PTR(): -ENOMEM, or the error of the copy
 * engine, of hmmgpu_dmem_init() or of drm_dev_register().
 */
struct hmmgpu_device *hmmgpu_device_create(struct device *parent,
					   unsigned int index,
					   const struct range *bar)
{
	struct hmmgpu_device *hdev;
	u64 size;
	int ret;

	hdev = devm_drm_dev_alloc(parent, &hmmgpu_drm_driver,
				  struct hmmgpu_device, drm);
	if (IS_ERR(hdev))
		return hdev;

	hdev->index = index;
	spin_lock_init(&hdev->files_lock);
	INIT_LIST_HEAD(&hdev->files);

	hdev->copy = hmmgpu_copy_engine_create(parent, copy_engine,
					       copy_channels ?:
					       min(num_online_cpus(), 4U));
	if (IS_ERR(hdev->copy)) {
		ret = PTR_ERR(hdev->copy);
		hdev->copy = NULL;
		goto err_out;
	}

	size = bar ? range_len(bar) : (u64)hmmgpu_mem_mib << 20;
	ret = hmmgpu_dmem_init(hdev, size, bar);
	if (ret)
		goto err_destroy_copy;

	hmmgpu_debugfs_register(hdev, false);
	ret = drm_dev_register(&hdev->drm, 0);
	if (ret)
		goto err_fini_dmem;
	hmmgpu_debugfs_register(hdev, true);

	drm_info(&hdev->drm, "hmmgpu%u: %lu MiB device memory in %s, pfns 0x%lx-0x%lx, device TLB flush: %s\n",
		 hdev->index, hdev->dmem.npages >> (20 - PAGE_SHIFT),
		 bar ? "the memory BAR" : "system RAM",
		 hdev->dmem.pfn_first,
		 hdev->dmem.pfn_first + hdev->dmem.npages - 1,
		 hmmgpu_tlb_flush_method());
	return hdev;

err_fini_dmem:
	hmmgpu_dmem_fini(hdev);
err_destroy_copy:
	hmmgpu_copy_engine_destroy(hdev->copy);
	hdev->copy = NULL;
err_out:
	return ERR_PTR(ret);
}

/**
 * hmmgpu_device_remove() - the bus device is going away.
 * @hdev: the device.
 *
 * Unbind, PCI removal or module unload: no new ioctl starts and the
 * running ones end (drm_dev_unplug() waits for their drm_dev_enter()
 * sections), then every device page goes back to RAM. Open files stay
 * valid: their ioctls fail with -ENODEV, and the structure lives until the
 * last one is closed.
 */
void hmmgpu_device_remove(struct hmmgpu_device *hdev)
{
	drm_dev_unplug(&hdev->drm);
	hmmgpu_dmem_fini(hdev);
	hmmgpu_copy_engine_destroy(hdev->copy);
	hdev->copy = NULL;
}

/* Device indices, shared by both personalities. */
static DEFINE_IDA(hmmgpu_ida);

/**
 * hmmgpu_index_get() - take the lowest free device index.
 *
 * Return: the index, or -ENOSPC when HMMGPU_MAX_DEVICES are in use.
 */
int hmmgpu_index_get(void)
{
	return ida_alloc_max(&hmmgpu_ida, HMMGPU_MAX_DEVICES - 1, GFP_KERNEL);
}

void hmmgpu_index_put(unsigned int index)
{
	ida_free(&hmmgpu_ida, index);
}

static int hmmgpu_probe(struct platform_device *pdev)
{
	struct hmmgpu_device *hdev;

	hdev = hmmgpu_device_create(&pdev->dev, pdev->id, NULL);
	if (IS_ERR(hdev)) {
		hmmgpu_probe_err = PTR_ERR(hdev);
		return PTR_ERR(hdev);
	}
	platform_set_drvdata(pdev, hdev);
	return 0;
}

static void hmmgpu_remove(struct platform_device *pdev)
{
	hmmgpu_device_remove(platform_get_drvdata(pdev));
}

HMMGPU_DEFINE_PLATFORM_REMOVE(hmmgpu_platform_remove, hmmgpu_remove)

static struct platform_driver hmmgpu_platform_driver = {
	.probe = hmmgpu_probe,
	.remove = hmmgpu_platform_remove,
	.driver = {
		.name = HMMGPU_DRIVER_NAME,
	},
};

static void hmmgpu_destroy_devices(void)
{
	int i, id;

	for (i = HMMGPU_MAX_DEVICES - 1; i >= 0; i--) {
		if (!hmmgpu_pdevs[i])
			continue;
		id = hmmgpu_pdevs[i]->id;
		platform_device_unregister(hmmgpu_pdevs[i]);
		hmmgpu_pdevs[i] = NULL;
		hmmgpu_index_put(id);
	}
}

static int __init hmmgpu_init(void)
{
	unsigned int i, nplatform;
	int npci, ret;

	if (num_devices < 1 || num_devices > HMMGPU_MAX_DEVICES) {
		pr_err("hmmgpu: num_devices=%u is out of range 1-%d\n",
		       num_devices, HMMGPU_MAX_DEVICES);
		return -EINVAL;
	}
	if (hmmgpu_mem_mib < 1 || hmmgpu_mem_mib > SZ_1M) {
		pr_err("hmmgpu: mem_mib=%u is out of range 1-%u\n",
		       hmmgpu_mem_mib, SZ_1M);
		return -EINVAL;
	}
	/*
	 * The backing store of every device is system RAM, allocated at
	 * probe: asking for more than is available would only run the OOM
	 * killer against the machine's processes before the load failed.
	 */
	if (((u64)num_devices * ALIGN(hmmgpu_mem_mib, 2) <<
	     (20 - PAGE_SHIFT)) > si_mem_available()) {
		pr_err("hmmgpu: num_devices=%u x mem_mib=%u needs %llu MiB of backing RAM, only %lu MiB is available\n",
		       num_devices, hmmgpu_mem_mib,
		       (u64)num_devices * ALIGN(hmmgpu_mem_mib, 2),
		       si_mem_available() >> (20 - PAGE_SHIFT));
		return -ENOMEM;
	}
	if (!sysfs_streq(copy_engine, "auto") &&
	    !sysfs_streq(copy_engine, "software") &&
	    !sysfs_streq(copy_engine, "dmaengine")) {
		pr_err("hmmgpu: copy_engine=%s is not one of auto, software, dmaengine\n",
		       copy_engine);
		return -EINVAL;
	}
	if (copy_channels > 16) {
		pr_err("hmmgpu: copy_channels=%u is out of range 0-16\n",
		       copy_channels);
		return -EINVAL;
	}
	if (hmmgpu_fault_kib < PAGE_SIZE / SZ_1K || hmmgpu_fault_kib > SZ_2K ||
	    !is_power_of_2(hmmgpu_fault_kib)) {
		pr_err("hmmgpu: fault_kib=%u must be a power of two from %lu to 2048\n",
		       hmmgpu_fault_kib, PAGE_SIZE / SZ_1K);
		return -EINVAL;
	}
	if (hmmgpu_view_fault_kib < PAGE_SIZE / SZ_1K ||
	    hmmgpu_view_fault_kib > SZ_2K ||
	    !is_power_of_2(hmmgpu_view_fault_kib)) {
		pr_err("hmmgpu: view_fault_kib=%u must be a power of two from %lu to 2048\n",
		       hmmgpu_view_fault_kib, PAGE_SIZE / SZ_1K);
		return -EINVAL;
	}
	if (hmmgpu_prefetch_pct > 100) {
		pr_err("hmmgpu: prefetch_pct=%u is above 100\n",
		       hmmgpu_prefetch_pct);
		return -EINVAL;
	}

	/* the helpers that share big migrations (hmmgpu_migrate_range()) */
	hmmgpu_migrate_wq = alloc_workqueue("hmmgpu-migrate", WQ_UNBOUND, 0);
	if (!hmmgpu_migrate_wq)
		return -ENOMEM;

	ret = platform_driver_register(&hmmgpu_platform_driver);
	if (ret)
		goto err_destroy_wq;

	/* PCI devices first, so that they take the lowest indices */
	npci = hmmgpu_pci_init();
	if (npci < 0) {
		ret = npci;
		goto err_unregister_platform;
	}

	nplatform = (unsigned int)npci < num_devices ? num_devices - npci : 0;
	for (i = 0; i < nplatform; i++) {
		struct platform_device *pdev;
		int index = hmmgpu_index_get();

		if (index < 0) {
			ret = index;
			goto err_destroy_devices;
		}
		pdev = platform_device_register_simple(HMMGPU_DRIVER_NAME,
						       index, NULL, 0);
		if (IS_ERR(pdev)) {
			hmmgpu_index_put(index);
			ret = PTR_ERR(pdev);
			goto err_destroy_devices;
		}
		hmmgpu_pdevs[i] = pdev;
		if (!platform_get_drvdata(pdev)) {
			/* Probe failed: its error is in the log already. */
			ret = hmmgpu_probe_err ?: -ENODEV;
			goto err_destroy_devices;
		}
	}
	return 0;

err_destroy_devices:
	hmmgpu_destroy_devices();
	hmmgpu_pci_exit();
err_unregister_platform:
	platform_driver_unregister(&hmmgpu_platform_driver);
err_destroy_wq:
	destroy_workqueue(hmmgpu_migrate_wq);
	return ret;
}

static void __exit hmmgpu_exit(void)
{
	hmmgpu_destroy_devices();
	hmmgpu_pci_exit();
	platform_driver_unregister(&hmmgpu_platform_driver);
	destroy_workqueue(hmmgpu_migrate_wq);
}

module_init(hmmgpu_init);
module_exit(hmmgpu_exit);

MODULE_DESCRIPTION(HMMGPU_DRIVER_DESC);
MODULE_LICENSE("GPL");
