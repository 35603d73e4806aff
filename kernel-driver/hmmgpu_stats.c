// SPDX-License-Identifier: GPL-2.0
/*
 * hmmgpu_stats.c - counters of devices and open files; tracepoints.
 */

#include <linux/atomic.h>
#include <linux/log2.h>
#include <linux/mm_types.h>
#include <linux/seq_file.h>
#include <linux/slab.h>

#include <drm/drm_debugfs.h>

#include "hmmgpu_drv.h"

#define CREATE_TRACE_POINTS
#include "hmmgpu_trace.h"

/* An accessed-by view's remap work ran (DOC: Accessed-by). */
void hmmgpu_count_remap(struct hmmgpu_device *hdev, struct hmmgpu_file *hfile)
{
	atomic64_inc(&hdev->stats.remaps);
	atomic64_inc(&hfile->stats.remaps);
}

/**
 * DOC: Counters
 *
 * Every device and every open file has a &struct hmmgpu_counters. A
 * migration is charged to the device whose memory it uses and to the file
 * that asked for it: the MIGRATE caller's file, the file whose migration
 * needed room for an eviction, and for a CPU fault the first open file of
 * that device belonging to the faulting process (none if it has closed
 * its files). DRM_IOCTL_HMMGPU_STATS reads either set; the
 * hmmgpu_migrate_batch and hmmgpu_cpu_fault tracepoints show each event,
 * and /sys/kernel/debug/dri/N/hmmgpu_stats prints the device's counters
 * (all but the latency histograms and bytes), one "name value" a line.
 *
 * Latencies go to histograms of log2 microseconds: bucket i counts events
 * that took [2^i, 2^(i+1)) us, bucket 0 also those under 1 us, the last
 * bucket everything longer.
 */

static unsigned int latency_bucket(u64 ns)
{
	u64 us = ns / NSEC_PER_USEC;

	if (!us)
		return 0;
	return min_t(unsigned int, ilog2(us), HMMGPU_LATENCY_BUCKETS - 1);
}

static void add_migration(struct hmmgpu_counters *c, int dir, int cause,
			  unsigned long pages)
{
	atomic64_add(pages, &c->pages[dir][cause]);
}

static void add_batch(struct hmmgpu_counters *c, u64 busy_ns, u64 total_ns,
		      unsigned long copy_errors)
{
	atomic64_inc(&c->batches);
	atomic64_add(busy_ns, &c->copy_busy_ns);
	atomic64_add(copy_errors, &c->copy_errors);
	atomic64_inc(&c->migrate_latency[latency_bucket(total_ns)]);
}

void hmmgpu_count_migration(struct hmmgpu_device *hdev,
			    struct hmmgpu_file *hfile, int dir, int cause,
			    unsigned long pages)
{
	if (!pages)
		return;
	add_migration(&hdev->stats, dir, cause, pages);
	if (hfile)
		add_migration(&hfile->stats, dir, cause, pages);
}

void hmmgpu_count_batch(struct hmmgpu_device *hdev, struct hmmgpu_file *hfile,
			u64 busy_ns, u64 total_ns, unsigned long copy_errors)
{
	add_batch(&hdev->stats, busy_ns, total_ns, copy_errors);
	if (hfile)
		add_batch(&hfile->stats, busy_ns, total_ns, copy_errors);
}

void hmmgpu_count_eviction(struct hmmgpu_device *hdev,
			   struct hmmgpu_file *hfile)
{
	atomic64_inc(&hdev->stats.evictions);
	if (hfile)
		atomic64_inc(&hfile->stats.evictions);
}

void hmmgpu_count_device_fault(struct hmmgpu_device *hdev,
			       struct hmmgpu_file *hfile)
{
	atomic64_inc(&hdev->stats.device_faults);
	atomic64_inc(&hfile->stats.device_faults);
}

/* A block pinned for thrashing (DOC: Thrashing); @hfile's too. */
void hmmgpu_count_thrash_pin(struct hmmgpu_device *hdev,
			     struct hmmgpu_file *hfile)
{
	atomic64_inc(&hdev->stats.thrash_pins);
	atomic64_inc(&hfile->stats.thrash_pins);
}

/* Read-mostly copies made (@made) or dropped (DOC: Read-mostly). */
void hmmgpu_count_dups(struct hmmgpu_device *hdev, struct hmmgpu_file *hfile,
		       unsigned long made, unsigned long dropped)
{
	if (made) {
		atomic64_add(made, &hdev->stats.dup_pages);
		atomic64_add(made, &hfile->stats.dup_pages);
	}
	if (dropped) {
		atomic64_add(dropped, &hdev->stats.dup_drops);
		atomic64_add(dropped, &hfile->stats.dup_drops);
	}
}

/* A device fault served remotely because its block is pinned. */
void hmmgpu_count_thrash_remote(struct hmmgpu_device *hdev,
				struct hmmgpu_file *hfile)
{
	atomic64_inc(&hdev->stats.thrash_remote);
	atomic64_inc(&hfile->stats.thrash_remote);
}

static void add_fault_back(struct hmmgpu_counters *c, unsigned long moved,
			   u64 busy_ns, unsigned long copy_errors, u64 ns)
{
	atomic64_inc(&c->cpu_faults);
	atomic64_inc(&c->fault_latency[latency_bucket(ns)]);
	add_migration(c, HMMGPU_DIR_TO_SYSTEM, HMMGPU_CAUSE_CPU_FAULT, moved);
	if (moved || copy_errors)
		add_batch(c, busy_ns, ns, copy_errors);
}

/**
 * hmmgpu_count_fault_back() - charge a handled CPU fault.
 * @hdev: device of the faulting page.
 * @mm: the faulting address space.
 * @moved: pages brought back.
 * @busy_ns: copy-engine time.
 * @copy_errors: pages whose copy failed.
 * @ns: time in migrate_to_ram.
 * @bounce: the faulting address when the fault, a program's own access,
 *	    brought data back (a possible bounce, DOC: Thrashing), else 0.
 *
 * The first file of @mm on the device is charged; with @bounce, every
 * file of @mm checks its thrashing state, in the same walk.
 */
void hmmgpu_count_fault_back(struct hmmgpu_device *hdev, struct mm_struct *mm,
			     unsigned long moved, u64 busy_ns,
			     unsigned long copy_errors, u64 ns,
			     unsigned long bounce)
{
	struct hmmgpu_file *hfile;
	bool charged = false, pinned = false;

	add_fault_back(&hdev->stats, moved, busy_ns, copy_errors, ns);
	spin_lock(&hdev->files_lock);
	list_for_each_entry(hfile, &hdev->files, node) {
		if (hfile->mm != mm)
			continue;
		if (!charged) {
			add_fault_back(&hfile->stats, moved, busy_ns,
				       copy_errors, ns);
			charged = true;
		}
		if (!bounce)
			break;
		if (hmmgpu_thrash_bounce(hfile, bounce)) {
			hmmgpu_count_thrash_pin(hdev, hfile);
			pinned = true;
		}
	}
	spin_unlock(&hdev->files_lock);
	if (pinned)
		trace_hmmgpu_thrash_pin(hdev->index, task_tgid_nr(current),
					ALIGN_DOWN(bounce,
						   1UL << HMMGPU_THRASH_SHIFT),
					READ_ONCE(hmmgpu_thrash_pin_ms));
}

/**
 * hmmgpu_stats_fill() - copy counters into an ioctl reply.
 * @c: the counters.
 * @out: the reply; its (out) fields are overwritten.
 */
void hmmgpu_stats_fill(const struct hmmgpu_counters *c,
		       struct drm_hmmgpu_stats *out)
{
	int d, k;

	for (d = 0; d < 2; d++) {
		for (k = 0; k < HMMGPU_CAUSE_COUNT; k++) {
			out->pages[d][k] = atomic64_read(&c->pages[d][k]);
			out->bytes[d][k] = out->pages[d][k] << PAGE_SHIFT;
		}
	}
	out->cpu_faults = atomic64_read(&c->cpu_faults);
	out->device_faults = atomic64_read(&c->device_faults);
	out->evictions = atomic64_read(&c->evictions);
	out->batches = atomic64_read(&c->batches);
	out->copy_errors = atomic64_read(&c->copy_errors);
	out->copy_busy_ns = atomic64_read(&c->copy_busy_ns);
	out->thrash_pins = atomic64_read(&c->thrash_pins);
	out->thrash_remote = atomic64_read(&c->thrash_remote);
	out->remaps = atomic64_read(&c->remaps);
	out->dup_pages = atomic64_read(&c->dup_pages);
	out->dup_drops = atomic64_read(&c->dup_drops);
	for (k = 0; k < HMMGPU_LATENCY_BUCKETS; k++) {
		out->migrate_latency[k] = atomic64_read(&c->migrate_latency[k]);
		out->fault_latency[k] = atomic64_read(&c->fault_latency[k]);
	}
	memset(out->reserved, 0, sizeof(out->reserved));
}

static int hmmgpu_debugfs_stats(struct seq_file *m, void *data)
{
	struct hmmgpu_device *hdev = to_hmmgpu(hmmgpu_debugfs_drm(m));
	static const char *const causes[HMMGPU_CAUSE_COUNT] = {
		"explicit", "cpu_fault", "eviction", "peer", "device_fault",
		"removal", "prefetch",
	};
	struct drm_hmmgpu_stats *st;
	int d, k;

	st = kzalloc(sizeof(*st), GFP_KERNEL);
	if (!st)
		return -ENOMEM;
	hmmgpu_stats_fill(&hdev->stats, st);
	seq_printf(m, "mem_total_bytes %llu\nmem_free_bytes %llu\n",
		   (u64)hdev->dmem.npages << PAGE_SHIFT,
		   hmmgpu_dmem_free_bytes(&hdev->dmem));
	for (d = 0; d < 2; d++)
		for (k = 0; k < HMMGPU_CAUSE_COUNT; k++)
			if (causes[k])
				seq_printf(m, "pages_%s_%s %llu\n",
					   d ? "to_system" : "to_device",
					   causes[k], st->pages[d][k]);
	seq_printf(m, "cpu_faults %llu\ndevice_faults %llu\nevictions %llu\n",
		   st->cpu_faults, st->device_faults, st->evictions);
	seq_printf(m, "batches %llu\ncopy_errors %llu\ncopy_busy_ns %llu\n",
		   st->batches, st->copy_errors, st->copy_busy_ns);
	seq_printf(m, "thrash_pins %llu\nthrash_remote %llu\nremaps %llu\n",
		   st->thrash_pins, st->thrash_remote, st->remaps);
	seq_printf(m, "dup_pages %llu\ndup_drops %llu\n", st->dup_pages,
		   st->dup_drops);
	kfree(st);
	return 0;
}

static const struct hmmgpu_debugfs_info hmmgpu_debugfs_files[] = {
	{ "hmmgpu_stats", hmmgpu_debugfs_stats, 0 },
};

/**
 * hmmgpu_debugfs_register() - add /sys/kernel/debug/dri/N/hmmgpu_stats.
 * @hdev: the device.
 * @registered: false before drm_dev_register(), true after it; the driver
 *	calls both (see hmmgpu_compat.h: kernels differ in which one adds).
 */
void hmmgpu_debugfs_register(struct hmmgpu_device *hdev, bool registered)
{
	if (registered)
		hmmgpu_debugfs_add_registered(&hdev->drm, hmmgpu_debugfs_files,
					      ARRAY_SIZE(hmmgpu_debugfs_files));
	else
		hmmgpu_debugfs_add(&hdev->drm, hmmgpu_debugfs_files,
				   ARRAY_SIZE(hmmgpu_debugfs_files));
}
