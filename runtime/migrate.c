// SPDX-License-Identifier: MIT
/*
 * migrate.c - prefetch, advice, attributes, residency.
 *
 * Design
 * ------
 * The public functions here check their arguments and then either talk
 * to the driver directly (MIGRATE, RESIDENCY) or ask memory.c, which owns
 * the managed ranges and their advice (hmm__mem_*()).
 *
 * Prefetch: the range must be managed in every byte (it may span several
 * adjacent ranges); memory.c checks that under its map lock, which is
 * then dropped: the MIGRATE ioctl, which can take long, runs with no
 * library lock held.  One ioctl covers the whole page-rounded range.  To
 * a device: HMMGPU_MIGRATE_TO_DEVICE on that device's file (pages on
 * another device move device to device).  To HMM_CPU:
 * HMMGPU_MIGRATE_TO_SYSTEM on the file of any device, since that moves the
 * pages of every hmmgpu device; with no device nothing can be elsewhere
 * and there is nothing to do.  On success the last prefetch location of
 * the ranges touched is recorded, and the runtime counters of stats.c.
 *
 * Residency: any private anonymous memory, managed or not.  mincore()
 * first checks that the range is mapped (and writes into the caller's
 * array, which also checks it is writable); with a device, RESIDENCY of
 * the first usable device says SYSTEM, NONE, THIS_DEVICE or OTHER_DEVICE
 * per page, and the pages on another device are looked up on the other
 * devices.  With no device, mincore()'s answer is the result: resident
 * means HMM_CPU, otherwise HMM_LOC_NONE (a page swapped out reads as
 * HMM_LOC_NONE there).  The answer is a snapshot: pages may move while it
 * is taken.
 */
#define _GNU_SOURCE
#include "hmm_private.h"

#include "hmmgpu_drm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xf86drm.h>


#define HMM_RESIDENCY_CHUNK (1UL << 24) /* pages per RESIDENCY ioctl */
/* hmm_residency(): a page on a device other than the one asked first */
#define LOC_PENDING INT8_MIN

/* (glibc answers from memory: no cache needed, and none to race on) */
static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* The file of device @dev, or -ENODEV (also for numbers out of range). */
static int device_fd(int dev)
{
	if (dev < 0 || dev >= HMM_MAX_DEVICES)
		return -ENODEV;
	return hmm__device_fd(dev);
}

/* The number of device numbers in use, capped at HMM_MAX_DEVICES. */
static int device_numbers(void)
{
	int n = hmm__device_count();

	if (n < 0)
		return 0;
	return n > HMM_MAX_DEVICES ? HMM_MAX_DEVICES : n;
}

/* The device number of the first device not removed, or -ENODEV. */
static int first_device(void)
{
	int n = device_numbers();

	for (int d = 0; d < n; d++) {
		if (hmm__device_fd(d) >= 0)
			return d;
	}
	return -ENODEV;
}

/* Whether every page of [@start, @start + @len) is mapped. */
static bool range_mapped(uintptr_t start, size_t len)
{
	size_t ps = page_size();
	unsigned char vec;

	/* one page at a time: mincore() wants a vector entry per page */
	for (size_t off = 0; off < len; off += ps) {
		if (mincore((void *)(start + off), ps, &vec) &&
		    errno == ENOMEM)
			return false;
	}
	return true;
}

/**
 * hmm__migrate_raw() - MIGRATE [@start, @start + @len) to @dst.
 * @start: page-aligned
 * @len: a non-zero page multiple
 * @dst: a device, or HMM_CPU
 *
 * No check that the range is managed (memory.c calls it for ranges it has
 * just taken out of its map).
 *
 * Return: 0 (also for HMM_CPU when there is no device: nothing can be on
 * one, but the range must be mapped); -ENODEV; -EFAULT for an unmapped
 * part (checked with mincore() when there is no device, as the driver
 * does); the driver's error (-ENOMEM when device memory is full even
 * after eviction).
 */
int hmm__migrate_raw(uintptr_t start, size_t len, int dst)
{
	struct drm_hmmgpu_migrate m = {
		.start = start,
		.size = len,
	};
	int fd, dev = dst;

	if (dst == HMM_CPU) {
		dev = first_device();
		if (dev < 0)
			return range_mapped(start, len) ? 0 : -EFAULT;
		m.target = HMMGPU_MIGRATE_TO_SYSTEM;
	} else {
		m.target = HMMGPU_MIGRATE_TO_DEVICE;
	}
	fd = device_fd(dev);
	if (fd < 0)
		return -ENODEV;
	if (drmIoctl(fd, DRM_IOCTL_HMMGPU_MIGRATE, &m)) {
		int ret = -errno;

		hmm__log(HMM_LOG_INFO, "MIGRATE %#" PRIxPTR "+%zu to %d: %s",
			 start, len, dst, strerror(-ret));
		return ret;
	}
	hmm__log(m.skipped && dst != HMM_CPU ? HMM_LOG_INFO : HMM_LOG_DEBUG,
		 "MIGRATE %#" PRIxPTR "+%zu to %d: moved %llu already %llu "
		 "skipped %llu%s", start, len, dst,
		 (unsigned long long)m.moved, (unsigned long long)m.already,
		 (unsigned long long)m.skipped,
		 m.skipped && dst != HMM_CPU ?
			 " (device full of other data, or pages that cannot "
			 "move: hmm_residency() tells where each is)" : "");
	return 0;
}

int hmm__prefetch_check(const void *ptr, size_t size, int dst)
{
	if (!ptr || !size)
		return -EINVAL;
	if (dst != HMM_CPU && device_fd(dst) < 0)
		return -ENODEV;
	return hmm__mem_check("hmm_prefetch", ptr, size);
}

int hmm__prefetch(const void *ptr, size_t size, int dst)
{
	uint64_t t0 = hmm__now_ns();
	size_t ps = page_size();
	uintptr_t start, end;
	int ret;
	HMM_MARK_PREFETCH(ptr, size, dst);

	ret = hmm__prefetch_check(ptr, size, dst);
	if (ret)
		return ret;
	/* managed ranges are whole pages: the rounded range is managed too */
	start = (uintptr_t)ptr & ~(uintptr_t)(ps - 1);
	end = ((uintptr_t)ptr + size + ps - 1) & ~(uintptr_t)(ps - 1);
	if (dst != HMM_CPU)
		hmm__mem_ensure_views(ptr, size, dst);
	ret = hmm__migrate_raw(start, end - start, dst);
	if (ret)
		return ret;
	hmm__mem_set_last_prefetch(ptr, size, dst);
	hmm__stats_prefetch(dst, size, hmm__now_ns() - t0);
	return 0;
}

HMM_EXPORT int hmm_prefetch(const void *ptr, size_t size, int dst)
{
	HMM_KEEP_ERRNO();

	return hmm__prefetch(ptr, size, dst);
}

/* Whether @v is a fault granularity a device accepts. */
static bool granularity_ok(uint64_t v)
{
	return v >= 4096 && v >= page_size() && v <= (2ULL << 20) &&
	       !(v & (v - 1));
}

HMM_EXPORT int hmm_advise(const void *ptr, size_t size,
			  enum hmm_advice advice, int dev, uint64_t value)
{
	HMM_KEEP_ERRNO();

	if (!ptr || !size)
		return -EINVAL;
	switch (advice) {
	case HMM_ADVISE_SET_PREFERRED_LOCATION:
		if (value)
			return -EINVAL;
		if (dev != HMM_CPU && device_fd(dev) < 0)
			return -ENODEV;
		break;
	case HMM_ADVISE_UNSET_PREFERRED_LOCATION:
		if (value)
			return -EINVAL;
		break;
	case HMM_ADVISE_SET_REMOTE_ACCESS:
	case HMM_ADVISE_UNSET_REMOTE_ACCESS:
	case HMM_ADVISE_SET_ACCESSED_BY:
	case HMM_ADVISE_UNSET_ACCESSED_BY:
		if (value || dev == HMM_CPU)
			return -EINVAL;
		/* forgetting advice for a removed device is fine */
		if (advice == HMM_ADVISE_SET_REMOTE_ACCESS ||
		    advice == HMM_ADVISE_SET_ACCESSED_BY ?
			    device_fd(dev) < 0 :
			    dev < 0 || dev >= device_numbers())
			return -ENODEV;
		break;
	case HMM_ADVISE_FAULT_GRANULARITY:
		if (value && !granularity_ok(value))
			return -EINVAL;
		break;
	case HMM_ADVISE_ATOMIC_POLICY:
		if (value > HMM_ATOMIC_CPU)
			return -EINVAL;
		break;
	case HMM_ADVISE_SET_READ_MOSTLY:
	case HMM_ADVISE_UNSET_READ_MOSTLY:
		/* for every device, as CUDA's: @dev is not used */
		if (value)
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	return hmm__mem_advise(ptr, size, advice, dev, value);
}

/* The advice of a range, as hmm__mem_get_attrs() reads it. */
struct range_attrs {
	int preferred, last;
	uint64_t gran;
	uint32_t remote, accessed, atomic;
	bool read_mostly;
};

/* Whether @len bytes at @out can hold attribute @attr. */
static bool attr_ok(enum hmm_attr attr, const void *out, size_t len)
{
	if (!out)
		return false;
	switch (attr) {
	case HMM_ATTR_PREFERRED_LOCATION:
	case HMM_ATTR_LAST_PREFETCH_LOCATION:
	case HMM_ATTR_READ_MOSTLY:
		return len == sizeof(int);
	case HMM_ATTR_REMOTE_ACCESS:
	case HMM_ATTR_ACCESSED_BY:
		return len && !(len % sizeof(int));
	case HMM_ATTR_FAULT_GRANULARITY:
		return len == sizeof(uint64_t);
	case HMM_ATTR_ATOMIC_POLICY:
		return len == sizeof(uint32_t);
	}
	return false;
}

/* Writes attribute @attr of @ra to @out (checked by attr_ok()). */
static void attr_put(const struct range_attrs *ra, enum hmm_attr attr,
		     void *out, size_t len)
{
	switch (attr) {
	case HMM_ATTR_PREFERRED_LOCATION:
		memcpy(out, &ra->preferred, sizeof(int));
		break;
	case HMM_ATTR_LAST_PREFETCH_LOCATION:
		memcpy(out, &ra->last, sizeof(int));
		break;
	case HMM_ATTR_FAULT_GRANULARITY:
		memcpy(out, &ra->gran, sizeof(ra->gran));
		break;
	case HMM_ATTR_ATOMIC_POLICY:
		memcpy(out, &ra->atomic, sizeof(ra->atomic));
		break;
	case HMM_ATTR_READ_MOSTLY: {
		int rm = ra->read_mostly;

		memcpy(out, &rm, sizeof(rm));
		break;
	}
	case HMM_ATTR_REMOTE_ACCESS:
	case HMM_ATTR_ACCESSED_BY: {
		uint32_t mask = attr == HMM_ATTR_REMOTE_ACCESS ? ra->remote :
							       ra->accessed;
		size_t n = len / sizeof(int), k = 0;
		int *o = out;

		/* ascending device numbers; more than fit are left out */
		for (int d = 0; d < HMM_MAX_DEVICES && k < n; d++) {
			if (mask & (1U << d))
				o[k++] = d;
		}
		while (k < n)
			o[k++] = HMM_LOC_NONE;
		break;
	}
	}
}

HMM_EXPORT int hmm_range_get_attr(const void *ptr, size_t size,
				  enum hmm_attr attr, void *out, size_t len)
{
	HMM_KEEP_ERRNO();
	struct range_attrs ra;
	int ret;

	if (!ptr || !size || !attr_ok(attr, out, len))
		return -EINVAL;
	ret = hmm__mem_get_attrs(ptr, size, &ra.preferred, &ra.remote,
				 &ra.accessed, &ra.atomic, &ra.read_mostly,
				 &ra.last, &ra.gran);
	if (ret)
		return ret;
	attr_put(&ra, attr, out, len);
	return 0;
}

HMM_EXPORT int hmm_range_get_attrs(const void *ptr, size_t size,
				   const enum hmm_attr *attrs, void *const *outs,
				   const size_t *lens, size_t count)
{
	HMM_KEEP_ERRNO();
	struct range_attrs ra;
	int ret;

	if (!ptr || !size || !attrs || !outs || !lens || !count)
		return -EINVAL;
	for (size_t i = 0; i < count; i++)
		if (!attr_ok(attrs[i], outs[i], lens[i]))
			return -EINVAL;
	/* one reading for all: the attributes agree with each other */
	ret = hmm__mem_get_attrs(ptr, size, &ra.preferred, &ra.remote,
				 &ra.accessed, &ra.atomic, &ra.read_mostly,
				 &ra.last, &ra.gran);
	if (ret)
		return ret;
	for (size_t i = 0; i < count; i++)
		attr_put(&ra, attrs[i], outs[i], lens[i]);
	return 0;
}

/*
 * RESIDENCY of @npages pages from @start on @fd into @loc, in chunks the
 * driver accepts; *@other (may be NULL) counts OTHER_DEVICE pages.
 */
static int residency_ioctl(int fd, uintptr_t start, size_t npages,
			   uint8_t *loc, uint64_t *other)
{
	size_t ps = page_size();

	if (other)
		*other = 0;
	for (size_t done = 0; done < npages;) {
		size_t n = npages - done;
		struct drm_hmmgpu_residency r = { 0 };

		if (n > HMM_RESIDENCY_CHUNK)
			n = HMM_RESIDENCY_CHUNK;
		r.start = start + done * ps;
		r.npages = n;
		r.locations = (uintptr_t)(loc + done);
		if (drmIoctl(fd, DRM_IOCTL_HMMGPU_RESIDENCY, &r))
			return -errno;
		if (other)
			*other += r.count[HMMGPU_RESIDENCY_OTHER_DEVICE];
		done += n;
	}
	return 0;
}

/*
 * The pages of @loc marked LOC_PENDING are on a device other than
 * @first: ask the others.  Pages no device claims moved meanwhile (a CPU
 * fault, most likely): HMM_CPU.
 */
static int residency_others(int first, uintptr_t start, int8_t *loc,
			    size_t npages)
{
	size_t lo = 0, hi = npages, pending = 0, ps = page_size();
	int n = device_numbers(), ret = 0;
	uint8_t *tmp;

	while (lo < hi && loc[lo] != LOC_PENDING)
		lo++;
	while (hi > lo && loc[hi - 1] != LOC_PENDING)
		hi--;
	for (size_t i = lo; i < hi; i++)
		pending += loc[i] == LOC_PENDING;
	if (!pending)
		return 0;
	tmp = malloc(hi - lo);
	if (!tmp)
		return -ENOMEM;
	for (int d = 0; d < n && pending; d++) {
		int fd = d == first ? -1 : hmm__device_fd(d);

		if (fd < 0)
			continue;
		ret = residency_ioctl(fd, start + lo * ps, hi - lo, tmp, NULL);
		if (ret == -ENODEV) {
			ret = 0;
			continue;
		}
		if (ret)
			break;
		for (size_t i = lo; i < hi; i++) {
			if (loc[i] == LOC_PENDING &&
			    tmp[i - lo] == HMMGPU_RESIDENCY_THIS_DEVICE) {
				loc[i] = (int8_t)d;
				pending--;
			}
		}
	}
	free(tmp);
	for (size_t i = lo; i < hi; i++) {
		if (loc[i] == LOC_PENDING)
			loc[i] = HMM_CPU;
	}
	return ret;
}

/*
 * [*@start, *@end): [@ptr, @ptr + @size) rounded out to pages, for
 * hmm_residency() and hmm_snapshot(). Return: 0, or -EINVAL for NULL,
 * size 0, a range that wraps, more pages than @npages or INT32_MAX.
 */
static int page_range(const void *ptr, size_t size, size_t npages,
		      uintptr_t *start, uintptr_t *end)
{
	size_t ps = page_size(), n;

	if (!ptr || !size || (uintptr_t)ptr > UINTPTR_MAX - size ||
	    (uintptr_t)ptr + size > UINTPTR_MAX - ps)
		return -EINVAL;
	*start = (uintptr_t)ptr & ~(uintptr_t)(ps - 1);
	*end = ((uintptr_t)ptr + size + ps - 1) & ~(uintptr_t)(ps - 1);
	n = (*end - *start) / ps;
	return npages < n || n > INT32_MAX ? -EINVAL : 0;
}

HMM_EXPORT int hmm_residency(const void *ptr, size_t size, int8_t *loc,
			     size_t npages)
{
	HMM_KEEP_ERRNO();
	uintptr_t start, end;
	uint64_t other;
	int dev, ret;
	size_t n;

	if (!loc || page_range(ptr, size, npages, &start, &end))
		return -EINVAL;
	n = (end - start) / page_size();

	/* mapped?  (ENOMEM: a hole; EFAULT: @loc is not writable) */
	if (mincore((void *)start, end - start, (unsigned char *)loc))
		return errno == ENOMEM ? -EINVAL : -errno;

	ret = -ENODEV;
	for (dev = 0; dev < device_numbers(); dev++) {
		int fd = hmm__device_fd(dev);

		if (fd < 0)
			continue;
		ret = residency_ioctl(fd, start, n, (uint8_t *)loc, &other);
		if (ret != -ENODEV)
			break;
	}
	if (ret == -ENODEV) {
		/* no device (left): what mincore() says */
		if (mincore((void *)start, end - start, (unsigned char *)loc))
			return errno == ENOMEM ? -EINVAL : -errno;
		for (size_t i = 0; i < n; i++)
			loc[i] = (loc[i] & 1) ? HMM_CPU : HMM_LOC_NONE;
		return (int)n;
	}
	if (ret)
		return ret;
	for (size_t i = 0; i < n; i++) {
		switch ((uint8_t)loc[i]) {
		case HMMGPU_RESIDENCY_SYSTEM:
			loc[i] = HMM_CPU;
			break;
		case HMMGPU_RESIDENCY_THIS_DEVICE:
			loc[i] = (int8_t)dev;
			break;
		case HMMGPU_RESIDENCY_OTHER_DEVICE:
			loc[i] = LOC_PENDING;
			break;
		default:
			loc[i] = HMM_LOC_NONE;
			break;
		}
	}
	if (other) {
		ret = residency_others(dev, start, loc, n);
		if (ret)
			return ret;
	}
	return (int)n;
}

/*
 * Runtime device numbers by driver device index (GET_INFO's
 * device_index), -1 where none; *@fd the file of the first device found
 * and *@abi its ABI version.  Return: 0 or -ENODEV (no device).
 */
static int device_map(int8_t map[256], int *fd, uint32_t *abi)
{
	memset(map, -1, 256);
	*fd = -ENODEV;
	for (int d = 0; d < device_numbers(); d++) {
		struct drm_hmmgpu_get_info gi = { 0 };
		int f = hmm__device_fd(d);

		if (f < 0 || drmIoctl(f, DRM_IOCTL_HMMGPU_GET_INFO, &gi))
			continue;
		if (gi.device_index < 256)
			map[gi.device_index] = (int8_t)d;
		if (*fd < 0) {
			*fd = f;
			*abi = gi.abi_version;
		}
	}
	return *fd < 0 ? -ENODEV : 0;
}

/* One SNAPSHOT word as the library reports it. */
static struct hmm_page_info page_info(uint32_t w, const int8_t map[256])
{
	static const struct {
		uint32_t snap;
		uint8_t page;
	} bits[] = {
		{ HMMGPU_SNAP_READ, HMM_PAGE_READ },
		{ HMMGPU_SNAP_WRITE, HMM_PAGE_WRITE },
		{ HMMGPU_SNAP_MAPPED, HMM_PAGE_MAPPED },
		{ HMMGPU_SNAP_ZERO, HMM_PAGE_ZERO },
		{ HMMGPU_SNAP_PMD, HMM_PAGE_HUGE_PMD },
		{ HMMGPU_SNAP_PUD, HMM_PAGE_HUGE_PUD },
		{ HMMGPU_SNAP_EXCLUSIVE, HMM_PAGE_EXCLUSIVE },
		{ HMMGPU_SNAP_SWAP, HMM_PAGE_SWAP },
	};
	struct hmm_page_info pi = { .loc = HMM_LOC_NONE, .flags = 0 };
	uint32_t dev = (w & HMMGPU_SNAP_DEVICE_MASK) >> HMMGPU_SNAP_DEVICE_SHIFT;

	switch (w & HMMGPU_SNAP_WHERE_MASK) {
	case HMMGPU_RESIDENCY_SYSTEM:
		pi.loc = HMM_CPU;
		break;
	case HMMGPU_RESIDENCY_THIS_DEVICE:
	case HMMGPU_RESIDENCY_OTHER_DEVICE:
		/* another driver's device: to us, as hmm_residency() says */
		pi.loc = map[dev & 0xff] >= 0 ? map[dev & 0xff] : HMM_CPU;
		break;
	}
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		if (w & bits[i].snap)
			pi.flags |= bits[i].page;
	return pi;
}

HMM_EXPORT int hmm_snapshot(const void *ptr, size_t size,
			    struct hmm_page_info *pages, size_t npages)
{
	HMM_KEEP_ERRNO();
	size_t ps = page_size(), n, chunk;
	uintptr_t start, end;
	int8_t map[256];
	uint32_t abi = 0, *w;
	int fd, ret;

	if (!pages || page_range(ptr, size, npages, &start, &end))
		return -EINVAL;
	n = (end - start) / ps;
	ret = device_map(map, &fd, &abi);
	if (ret)
		return ret;
	if (abi < 7)
		return -EOPNOTSUPP;
	chunk = n < HMM_RESIDENCY_CHUNK ? n : HMM_RESIDENCY_CHUNK;
	w = malloc(chunk * sizeof(*w));
	if (!w)
		return -ENOMEM;
	for (size_t done = 0; done < n;) {
		size_t k = n - done < chunk ? n - done : chunk;
		struct drm_hmmgpu_snapshot s = {
			.start = start + done * ps,
			.npages = k,
			.pages = (uintptr_t)w,
		};

		if (drmIoctl(fd, DRM_IOCTL_HMMGPU_SNAPSHOT, &s)) {
			ret = -errno;
			break;
		}
		for (size_t i = 0; i < k; i++)
			pages[done + i] = page_info(w[i], map);
		done += k;
	}
	free(w);
	return ret ? ret : (int)n;
}
