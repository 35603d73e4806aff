/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hmmgpu_trace.h - tracepoints of hmmgpu (events/hmmgpu/ in tracefs), for
 * perf, trace-cmd and bpftrace.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM hmmgpu

#if !defined(HMMGPU_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define HMMGPU_TRACE_H

#include <linux/tracepoint.h>

/**
 * hmmgpu_migrate_batch - one migration batch finished.
 * @dev: device index.
 * @dir: HMMGPU_DIR_TO_DEVICE or HMMGPU_DIR_TO_SYSTEM.
 * @cause: HMMGPU_CAUSE_*.
 * @start: first CPU address of the batch (0 for eviction and removal,
 *	which work on device pages and know no CPU address).
 * @npages: pages in the batch's range.
 * @moved: pages that moved, @peer included.
 * @failed: pages whose copy failed.
 * @peer: pages of @moved that came from another hmmgpu device (counted
 *	as HMMGPU_CAUSE_PEER rather than @cause); 0 to system.
 * @ns: time from setup to finalize.
 *
 * Emitted in the context of the task whose work started the batch: the
 * MIGRATE caller, the task whose device fault or migration needed the
 * room for an eviction.  A CPU fault's batch is reported by
 * hmmgpu_cpu_fault instead.
 */
TRACE_EVENT(hmmgpu_migrate_batch,
	TP_PROTO(unsigned int dev, int dir, int cause, unsigned long start,
		 unsigned long npages, unsigned long moved,
		 unsigned long failed, unsigned long peer, u64 ns),
	TP_ARGS(dev, dir, cause, start, npages, moved, failed, peer, ns),
	TP_STRUCT__entry(
		__field(unsigned int, dev)
		__field(int, dir)
		__field(int, cause)
		__field(unsigned long, start)
		__field(unsigned long, npages)
		__field(unsigned long, moved)
		__field(unsigned long, failed)
		__field(unsigned long, peer)
		__field(u64, ns)
	),
	TP_fast_assign(
		__entry->dev = dev;
		__entry->dir = dir;
		__entry->cause = cause;
		__entry->start = start;
		__entry->npages = npages;
		__entry->moved = moved;
		__entry->failed = failed;
		__entry->peer = peer;
		__entry->ns = ns;
	),
	TP_printk("dev=%u %s cause=%s start=0x%lx npages=%lu moved=%lu failed=%lu peer=%lu ns=%llu",
		  __entry->dev,
		  __entry->dir ? "to_system" : "to_device",
		  __print_symbolic(__entry->cause,
				   { 0, "explicit" }, { 1, "cpu_fault" },
				   { 2, "eviction" }, { 3, "peer" },
				   { 4, "device_fault" }, { 5, "removal" },
				   { 6, "prefetch" }),
		  __entry->start, __entry->npages, __entry->moved,
		  __entry->failed, __entry->peer, __entry->ns)
);

/**
 * hmmgpu_cpu_fault - a CPU access to a device page was handled.
 * @dev: device index of the faulting page.
 * @addr: faulting address.
 * @start: first CPU address of the fault-back block.
 * @npages: pages in the fault-back block.
 * @moved: pages brought back.
 * @ns: time spent in migrate_to_ram.
 */
TRACE_EVENT(hmmgpu_cpu_fault,
	TP_PROTO(unsigned int dev, unsigned long addr, unsigned long start,
		 unsigned long npages, unsigned long moved, u64 ns),
	TP_ARGS(dev, addr, start, npages, moved, ns),
	TP_STRUCT__entry(
		__field(unsigned int, dev)
		__field(unsigned long, addr)
		__field(unsigned long, start)
		__field(unsigned long, npages)
		__field(unsigned long, moved)
		__field(u64, ns)
	),
	TP_fast_assign(
		__entry->dev = dev;
		__entry->addr = addr;
		__entry->start = start;
		__entry->npages = npages;
		__entry->moved = moved;
		__entry->ns = ns;
	),
	TP_printk("dev=%u addr=0x%lx start=0x%lx npages=%lu moved=%lu ns=%llu",
		  __entry->dev, __entry->addr, __entry->start,
		  __entry->npages, __entry->moved, __entry->ns)
);

/**
 * hmmgpu_device_fault - a device access through a view was handled.
 * @dev: device index.
 * @addr: CPU address of the faulting view address.
 * @start: first CPU address of the block entered in the view (the
 *	fault's block, or the 2 MiB region after a density prefetch).
 * @npages: pages in that block.
 * @moved: pages migrated to the device for this fault, density
 *	prefetch included (their hmmgpu_migrate_batch events tell how).
 * @remote: 1 when the view mapped system pages instead of migrating
 *	(remote-access advice, or memory that cannot migrate).
 * @ns: time spent handling the fault.
 *
 * One event per fault that DRM_IOCTL_HMMGPU_STATS counts in
 * device_faults; fatal faults (SIGBUS) are not reported.
 */
TRACE_EVENT(hmmgpu_device_fault,
	TP_PROTO(unsigned int dev, unsigned long addr, unsigned long start,
		 unsigned long npages, unsigned long moved, int remote,
		 u64 ns),
	TP_ARGS(dev, addr, start, npages, moved, remote, ns),
	TP_STRUCT__entry(
		__field(unsigned int, dev)
		__field(unsigned long, addr)
		__field(unsigned long, start)
		__field(unsigned long, npages)
		__field(unsigned long, moved)
		__field(int, remote)
		__field(u64, ns)
	),
	TP_fast_assign(
		__entry->dev = dev;
		__entry->addr = addr;
		__entry->start = start;
		__entry->npages = npages;
		__entry->moved = moved;
		__entry->remote = remote;
		__entry->ns = ns;
	),
	TP_printk("dev=%u addr=0x%lx start=0x%lx npages=%lu moved=%lu %s ns=%llu",
		  __entry->dev, __entry->addr, __entry->start,
		  __entry->npages, __entry->moved,
		  __entry->remote ? "remote" : "migrate", __entry->ns)
);

/**
 * hmmgpu_evicted - pages an eviction or a removal brought back to RAM.
 * @dev: device index.
 * @cause: HMMGPU_CAUSE_EVICTION or HMMGPU_CAUSE_REMOVAL.
 * @tgid: process whose pages they are (the one that moved them to the
 *	device; not always the task the event is emitted in).
 * @start: first CPU address of the run, in @tgid's address space.
 * @npages: pages in the run.
 *
 * hmmgpu_migrate_batch reports an eviction batch with no CPU address,
 * since eviction works on device pages; this event follows it with the
 * CPU addresses of the pages that moved, one event per run of one
 * process's consecutive pages, so that tools can tell where a program's
 * data went. The address is where the page was migrated to the device
 * (stale after an mremap() of the range).
 */
TRACE_EVENT(hmmgpu_evicted,
	TP_PROTO(unsigned int dev, int cause, pid_t tgid, unsigned long start,
		 unsigned long npages),
	TP_ARGS(dev, cause, tgid, start, npages),
	TP_STRUCT__entry(
		__field(unsigned int, dev)
		__field(int, cause)
		__field(pid_t, tgid)
		__field(unsigned long, start)
		__field(unsigned long, npages)
	),
	TP_fast_assign(
		__entry->dev = dev;
		__entry->cause = cause;
		__entry->tgid = tgid;
		__entry->start = start;
		__entry->npages = npages;
	),
	TP_printk("dev=%u cause=%s tgid=%d start=0x%lx npages=%lu",
		  __entry->dev,
		  __print_symbolic(__entry->cause,
				   { 2, "eviction" }, { 5, "removal" }),
		  __entry->tgid, __entry->start, __entry->npages)
);

/**
 * hmmgpu_thrash_pin - a block bounced between CPU and device and is pinned.
 * @dev: device index.
 * @tgid: process of the block.
 * @start: CPU address of the 64 KiB block.
 * @ms: how long the pin lasts (DOC: Thrashing).
 */
TRACE_EVENT(hmmgpu_thrash_pin,
	TP_PROTO(unsigned int dev, pid_t tgid, unsigned long start,
		 unsigned int ms),
	TP_ARGS(dev, tgid, start, ms),
	TP_STRUCT__entry(
		__field(unsigned int, dev)
		__field(pid_t, tgid)
		__field(unsigned long, start)
		__field(unsigned int, ms)
	),
	TP_fast_assign(
		__entry->dev = dev;
		__entry->tgid = tgid;
		__entry->start = start;
		__entry->ms = ms;
	),
	TP_printk("dev=%u tgid=%d start=0x%lx ms=%u", __entry->dev,
		  __entry->tgid, __entry->start, __entry->ms)
);

#endif /* HMMGPU_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE hmmgpu_trace
#include <trace/define_trace.h>
