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
 * @start: first CPU address of the batch (0 for eviction).
 * @npages: pages in the batch's range.
 * @moved: pages that moved.
 * @failed: pages whose copy failed.
 * @ns: time from setup to finalize.
 */
TRACE_EVENT(hmmgpu_migrate_batch,
	TP_PROTO(unsigned int dev, int dir, int cause, unsigned long start,
		 unsigned long npages, unsigned long moved,
		 unsigned long failed, u64 ns),
	TP_ARGS(dev, dir, cause, start, npages, moved, failed, ns),
	TP_STRUCT__entry(
		__field(unsigned int, dev)
		__field(int, dir)
		__field(int, cause)
		__field(unsigned long, start)
		__field(unsigned long, npages)
		__field(unsigned long, moved)
		__field(unsigned long, failed)
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
		__entry->ns = ns;
	),
	TP_printk("dev=%u %s cause=%s start=0x%lx npages=%lu moved=%lu failed=%lu ns=%llu",
		  __entry->dev,
		  __entry->dir ? "to_system" : "to_device",
		  __print_symbolic(__entry->cause,
				   { 0, "explicit" }, { 1, "cpu_fault" },
				   { 2, "eviction" }, { 3, "peer" },
				   { 4, "device_fault" }, { 5, "removal" },
				   { 6, "prefetch" }),
		  __entry->start, __entry->npages, __entry->moved,
		  __entry->failed, __entry->ns)
);

/**
 * hmmgpu_cpu_fault - a CPU access to a device page was handled.
 * @dev: device index of the faulting page.
 * @addr: faulting address.
 * @npages: pages in the fault-back block.
 * @moved: pages brought back.
 * @ns: time spent in migrate_to_ram.
 */
TRACE_EVENT(hmmgpu_cpu_fault,
	TP_PROTO(unsigned int dev, unsigned long addr, unsigned long npages,
		 unsigned long moved, u64 ns),
	TP_ARGS(dev, addr, npages, moved, ns),
	TP_STRUCT__entry(
		__field(unsigned int, dev)
		__field(unsigned long, addr)
		__field(unsigned long, npages)
		__field(unsigned long, moved)
		__field(u64, ns)
	),
	TP_fast_assign(
		__entry->dev = dev;
		__entry->addr = addr;
		__entry->npages = npages;
		__entry->moved = moved;
		__entry->ns = ns;
	),
	TP_printk("dev=%u addr=0x%lx npages=%lu moved=%lu ns=%llu",
		  __entry->dev, __entry->addr, __entry->npages,
		  __entry->moved, __entry->ns)
);

#endif /* HMMGPU_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE hmmgpu_trace
#include <trace/define_trace.h>
