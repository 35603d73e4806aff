// SPDX-License-Identifier: MIT
/*
 * memops.c - hmm_memcpy(), hmm_memset(), hmm_discard(),
 * hmm_prefetch_batch(), hmm_discard_batch(), and their forms queued on a
 * stream.
 *
 * Design
 * ------
 * Copies and fills run on the CPU, on whatever memory the caller names:
 * managed, registered or plain.  Before touching a byte they check with
 * the VMAs of the process (memory.c's hmm__mem_accessible(): one
 * PROCMAP_QUERY per mapping) that the source is readable and the
 * destination writable, so a bad pointer is -EFAULT, not a SIGSEGV of the
 * application.  A side that lies in one managed range and is wholly on a
 * device with a view is reached through the view instead
 * (hmm__mem_device_alias()): that is the device's own access, so its
 * pages stay on the device, as a GPU's copy engine leaves them; a copy
 * between two ranges on one device never bounces through system memory,
 * and a copy from device-resident data to the host does not bring it
 * home.  Any other side (partly on a device, plain memory) is accessed
 * by the CPU, and its device pages come back by CPU faults as the copy
 * touches them, as any CPU access would.
 *
 * Queued forms check their arguments when called, and again when they
 * run (the memory may have been unmapped in between: then the stream's
 * error is -EFAULT, never a crash).
 *
 * hmm_discard() is MADV_DONTNEED on the whole pages of a managed range:
 * the kernel drops the pages wherever they are, and a device page is
 * freed by the driver without being copied back.  The next access of a
 * discarded page reads zeros, on the CPU or through a device view.
 */
#define _GNU_SOURCE
#include "hmm_private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Whether [@a, @a + @n) and [@b, @b + @n) share a byte. */
static bool overlap(const void *a, const void *b, size_t n)
{
	uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;

	return x < y + n && y < x + n;
}

/* Arguments of a copy: 0 or -EINVAL (NULL, wrapping or overlapping). */
static int copy_args(void *dst, const void *src, size_t size)
{
	if (!dst || !src)
		return -EINVAL;
	if ((uintptr_t)dst > UINTPTR_MAX - size ||
	    (uintptr_t)src > UINTPTR_MAX - size)
		return -EINVAL;
	if (size && overlap(dst, src, size))
		return -EINVAL;
	return 0;
}

static int set_args(void *dst, size_t size)
{
	if (!dst || (uintptr_t)dst > UINTPTR_MAX - size)
		return -EINVAL;
	return 0;
}

int hmm__memop_run(const struct hmm__memop *op)
{
	int ret = 0;
	HMM_MARK_MEMOP(op);

	switch (op->kind) {
	case HMM__MEMOP_COPY:
		if (!op->size)
			break;
		ret = hmm__mem_accessible(op->src, op->size, PROT_READ);
		if (!ret)
			ret = hmm__mem_accessible(op->dst, op->size,
						  PROT_WRITE);
		if (!ret) {
			int sd, dd;
			void *s = hmm__mem_device_alias(op->src, op->size, &sd);
			void *d = hmm__mem_device_alias(op->dst, op->size, &dd);

			memcpy(d ? d : op->dst, s ? s : op->src, op->size);
		}
		break;
	case HMM__MEMOP_SET:
		if (!op->size)
			break;
		ret = hmm__mem_accessible(op->dst, op->size, PROT_WRITE);
		if (!ret) {
			int dd;
			void *d = hmm__mem_device_alias(op->dst, op->size, &dd);

			memset(d ? d : op->dst, op->value, op->size);
		}
		break;
	case HMM__MEMOP_PREFETCH_BATCH:
		/* in order; the first error ends the batch */
		for (size_t i = 0; i < op->count && !ret; i++)
			ret = hmm__prefetch(op->ptrs[i], op->sizes[i],
					    op->loc);
		break;
	case HMM__MEMOP_DISCARD_BATCH:
		for (size_t i = 0; i < op->count && !ret; i++)
			ret = hmm__mem_discard(op->ptrs[i], op->sizes[i]);
		break;
	}
	return ret;
}

void hmm__memop_release(struct hmm__memop *op)
{
	free(op->ptrs);
	free(op->sizes);
	op->ptrs = NULL;
	op->sizes = NULL;
}

/* Runs @op now (@s NULL) or queues it on @s; releases it either way. */
static int run_or_queue(struct hmm__memop *op, struct hmm_stream *s)
{
	int ret;

	if (s)
		return hmm__stream_memop(s, op);
	ret = hmm__memop_run(op);
	hmm__memop_release(op);
	return ret;
}

HMM_EXPORT int hmm_memcpy(void *dst, const void *src, size_t size)
{
	HMM_KEEP_ERRNO();
	struct hmm__memop op = {
		.kind = HMM__MEMOP_COPY, .dst = dst, .src = src, .size = size,
	};
	int ret = copy_args(dst, src, size);

	return ret ? ret : hmm__memop_run(&op);
}

HMM_EXPORT int hmm_memcpy_async(void *dst, const void *src, size_t size,
				struct hmm_stream *s)
{
	HMM_KEEP_ERRNO();
	HMM_MARK_CALL("hmm_memcpy_async", s, NULL);
	struct hmm__memop op = {
		.kind = HMM__MEMOP_COPY, .dst = dst, .src = src, .size = size,
	};
	int ret = copy_args(dst, src, size);

	if (!ret && size) {
		ret = hmm__mem_accessible(src, size, PROT_READ);
		if (!ret)
			ret = hmm__mem_accessible(dst, size, PROT_WRITE);
	}
	return ret ? ret : run_or_queue(&op, s);
}

HMM_EXPORT int hmm_memset(void *dst, int value, size_t size)
{
	HMM_KEEP_ERRNO();
	struct hmm__memop op = {
		.kind = HMM__MEMOP_SET, .dst = dst, .value = value, .size = size,
	};
	int ret = set_args(dst, size);

	return ret ? ret : hmm__memop_run(&op);
}

HMM_EXPORT int hmm_memset_async(void *dst, int value, size_t size,
				struct hmm_stream *s)
{
	HMM_KEEP_ERRNO();
	HMM_MARK_CALL("hmm_memset_async", s, NULL);
	struct hmm__memop op = {
		.kind = HMM__MEMOP_SET, .dst = dst, .value = value, .size = size,
	};
	int ret = set_args(dst, size);

	if (!ret && size)
		ret = hmm__mem_accessible(dst, size, PROT_WRITE);
	return ret ? ret : run_or_queue(&op, s);
}

HMM_EXPORT int hmm_discard(void *ptr, size_t size)
{
	HMM_KEEP_ERRNO();

	return hmm__mem_discard(ptr, size);
}

/*
 * Runs batch @op over copies of @ptrs and @sizes (op->count entries), now
 * or queued on @s.
 */
static int run_batch(struct hmm__memop *op, const void *const *ptrs,
		     const size_t *sizes, struct hmm_stream *s)
{
	size_t count = op->count;

	if (count > SIZE_MAX / sizeof(*sizes))
		return -ENOMEM;
	op->ptrs = malloc(count * sizeof(*op->ptrs));
	op->sizes = malloc(count * sizeof(*op->sizes));
	if (!op->ptrs || !op->sizes) {
		hmm__memop_release(op);
		return -ENOMEM;
	}
	memcpy(op->ptrs, ptrs, count * sizeof(*op->ptrs));
	memcpy(op->sizes, sizes, count * sizeof(*op->sizes));
	return run_or_queue(op, s);
}

HMM_EXPORT int hmm_prefetch_batch(const void *const *ptrs,
				  const size_t *sizes, size_t count, int dst,
				  struct hmm_stream *s)
{
	HMM_KEEP_ERRNO();
	struct hmm__memop op = {
		.kind = HMM__MEMOP_PREFETCH_BATCH, .count = count, .loc = dst,
	};
	int ret;

	if (!ptrs || !sizes || !count)
		return -EINVAL;
	/* all or nothing: every range is checked before any moves */
	for (size_t i = 0; i < count; i++) {
		ret = hmm__prefetch_check(ptrs[i], sizes[i], dst);
		if (ret)
			return ret;
	}
	return run_batch(&op, ptrs, sizes, s);
}

HMM_EXPORT int hmm_discard_batch(void *const *ptrs, const size_t *sizes,
				 size_t count, struct hmm_stream *s)
{
	HMM_KEEP_ERRNO();
	struct hmm__memop op = {
		.kind = HMM__MEMOP_DISCARD_BATCH, .count = count,
	};
	int ret;

	if (!ptrs || !sizes || !count)
		return -EINVAL;
	/* all or nothing: every range is checked before any is dropped */
	for (size_t i = 0; i < count; i++) {
		ret = hmm__mem_check("hmm_discard_batch", ptrs[i], sizes[i]);
		if (ret)
			return ret;
	}
	return run_batch(&op, (const void *const *)ptrs, sizes, s);
}
