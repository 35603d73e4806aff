// SPDX-License-Identifier: MIT
/*
 * stats.c - hmm_get_stats() and the runtime's own counters.
 *
 * Design
 * ------
 * The driver counts migrations, faults and evictions per open file; the
 * library opens each device once (hmm__device_fd()), so the STATS ioctl
 * with scope HMMGPU_STATS_FILE on that file is "this process on that
 * device, since the library opened it".  Its per-cause and per-direction
 * arrays have the layout of struct hmm_stats (enum hmm_cause and enum
 * hmm_dir are the driver's HMMGPU_CAUSE_* and HMMGPU_DIR_* values), which
 * the static assertions below pin.
 *
 * The runtime's own counters (prefetches asked, launches run) are kept
 * here, per location: slot 0 is HMM_CPU, slot d + 1 device d.  They are
 * relaxed atomics: each counter is exact, but a reader may see a
 * prefetch's call counted before its bytes.  hmm_get_stats(HMM_CPU)
 * reports the HMM_CPU slot (prefetches to the CPU, launches on host
 * streams), with every driver counter zero; it works with no device.
 */
#define _GNU_SOURCE
#include "hmm_private.h"

#include "hmmgpu_drm.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include <xf86drm.h>

_Static_assert(HMM_CAUSE_PREFETCH == HMMGPU_CAUSE_EXPLICIT &&
	       HMM_CAUSE_CPU_FAULT == HMMGPU_CAUSE_CPU_FAULT &&
	       HMM_CAUSE_EVICTION == HMMGPU_CAUSE_EVICTION &&
	       HMM_CAUSE_PEER == HMMGPU_CAUSE_PEER &&
	       HMM_CAUSE_DEVICE_FAULT == HMMGPU_CAUSE_DEVICE_FAULT &&
	       HMM_CAUSE_REMOVAL == HMMGPU_CAUSE_REMOVAL &&
	       HMM_CAUSE_DENSITY == HMMGPU_CAUSE_PREFETCH &&
	       HMM_CAUSE_COUNT == HMMGPU_CAUSE_COUNT,
	       "enum hmm_cause is the driver's cause index");
_Static_assert(HMM_DIR_TO_DEVICE == HMMGPU_DIR_TO_DEVICE &&
	       HMM_DIR_TO_HOST == HMMGPU_DIR_TO_SYSTEM,
	       "enum hmm_dir is the driver's direction index");
_Static_assert(sizeof(((struct hmm_stats *)0)->pages) ==
		       sizeof(((struct drm_hmmgpu_stats *)0)->pages) &&
	       sizeof(((struct hmm_stats *)0)->bytes) ==
		       sizeof(((struct drm_hmmgpu_stats *)0)->bytes),
	       "struct hmm_stats has the driver's migration arrays");

/** The runtime's counters of one location. */
struct rt_counters {
	atomic_uint_least64_t prefetch_bytes;
	atomic_uint_least64_t prefetch_calls;
	atomic_uint_least64_t prefetch_ns;
	atomic_uint_least64_t launches;
	atomic_uint_least64_t launch_ns;
	atomic_uint_least64_t launch_cpu_faults;
};

/* [0]: HMM_CPU, [d + 1]: device d */
static struct rt_counters rt[HMM_MAX_DEVICES + 1];

/* The counters of @loc, or NULL for a location out of range. */
static struct rt_counters *counters(int loc)
{
	if (loc < HMM_CPU || loc >= HMM_MAX_DEVICES)
		return NULL;
	return &rt[loc + 1];
}

static void add(atomic_uint_least64_t *c, uint64_t v)
{
	atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static uint64_t get(atomic_uint_least64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

void hmm__stats_prefetch(int dst, uint64_t bytes, uint64_t ns)
{
	struct rt_counters *c = counters(dst);

	if (!c)
		return;
	add(&c->prefetch_bytes, bytes);
	add(&c->prefetch_calls, 1);
	add(&c->prefetch_ns, ns);
}

void hmm__stats_launch(int dev, uint64_t ns)
{
	struct rt_counters *c = counters(dev);

	if (!c)
		return;
	add(&c->launches, 1);
	add(&c->launch_ns, ns);
}

void hmm__stats_launch_cpu_faults(int dev, uint64_t n)
{
	struct rt_counters *c = counters(dev);

	if (c)
		add(&c->launch_cpu_faults, n);
}

HMM_EXPORT int hmm_get_stats(int dev, struct hmm_stats *st)
{
	HMM_KEEP_ERRNO();
	struct drm_hmmgpu_stats ds;
	struct rt_counters *c;

	if (!st)
		return -EINVAL;
	c = counters(dev);
	if (!c)
		return -ENODEV;
	memset(&ds, 0, sizeof(ds));
	if (dev != HMM_CPU) {
		int fd = hmm__device_fd(dev);

		if (fd < 0)
			return -ENODEV;
		ds.scope = HMMGPU_STATS_FILE;
		if (drmIoctl(fd, DRM_IOCTL_HMMGPU_STATS, &ds))
			return -errno;
	}
	memset(st, 0, sizeof(*st));
	memcpy(st->pages, ds.pages, sizeof(st->pages));
	memcpy(st->bytes, ds.bytes, sizeof(st->bytes));
	st->cpu_faults = ds.cpu_faults;
	st->device_faults = ds.device_faults;
	st->evictions = ds.evictions;
	st->copy_errors = ds.copy_errors;
	st->thrash_pins = ds.thrash_pins;
	st->thrash_remote = ds.thrash_remote;
	st->accessed_by_remaps = ds.remaps;
	st->read_mostly_copies = ds.dup_pages;
	st->read_mostly_drops = ds.dup_drops;
	st->prefetch_bytes = get(&c->prefetch_bytes);
	st->prefetch_calls = get(&c->prefetch_calls);
	st->prefetch_ns = get(&c->prefetch_ns);
	st->launches = get(&c->launches);
	st->launch_ns = get(&c->launch_ns);
	st->launch_cpu_faults = get(&c->launch_cpu_faults);
	return 0;
}
