/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hmmgpu_copy.h - the copy engine: batched, asynchronous page copies with
 * one fence per batch.
 */
#ifndef HMMGPU_COPY_H
#define HMMGPU_COPY_H

#include <linux/dma-fence.h>
#include <linux/types.h>

struct device;
struct page;
struct hmmgpu_copy_engine;

/**
 * struct hmmgpu_copy_op - one page to copy.
 * @dst: destination page (system page, or a device page's backing page).
 * @src: source page, or NULL to zero @dst.
 */
struct hmmgpu_copy_op {
	struct page *dst;
	struct page *src;
};

/**
 * struct hmmgpu_copy_batch - a batch of page copies and its fence.
 * @ops: the copies, @nr of them; owned by the caller until the fence
 *	 signals.
 * @nr: number of copies.
 * @failed: bitmap of @nr bits, zeroed by hmmgpu_copy_submit(); bit i set
 *	    after the fence signalled means op i failed and its @dst holds
 *	    no valid data.  Owned by the caller.
 * @nr_failed: number of bits set in @failed once the fence signalled.
 * @fence: signalled once every op has completed or failed; its error is
 *	   -EIO when any op failed.
 * @busy_ns: time from submission to the fence, set when it signals.
 *
 * The engine keeps private state after @busy_ns; callers do not touch it.
 */
struct hmmgpu_copy_batch {
	struct hmmgpu_copy_op *ops;
	unsigned int nr;
	unsigned long *failed;
	atomic_t nr_failed;
	struct dma_fence fence;
	u64 busy_ns;
	bool urgent;	/* the submitter waits at once: software copies inline */

	/* private: owned by hmmgpu_copy.c */
	spinlock_t fence_lock;
	atomic_t pending;
	u64 submit_ns;
	struct hmmgpu_copy_engine *engine;
	void *work;
};

/* Values of the copy_engine module parameter and of GET_INFO. */
enum hmmgpu_copy_kind {
	HMMGPU_COPY_SOFTWARE = 0,
	HMMGPU_COPY_DMAENGINE = 1,
};

/**
 * hmmgpu_copy_engine_create() - start a copy engine.
 * @dev: the device that owns the engine (for messages).
 * @want: "auto", "software" or "dmaengine".
 * @channels: software engine: number of kernel threads (1-16).
 *
 * "auto" takes a dmaengine DMA_MEMCPY channel when the platform has one,
 * the software engine otherwise; "dmaengine" fails when there is none.
 *
 * Return: the engine, or an ERR_PTR(): -EINVAL for a bad @want or
 * @channels, -ENODEV when "dmaengine" was asked for and no channel exists,
 * -ENOMEM.
 */
struct hmmgpu_copy_engine *hmmgpu_copy_engine_create(struct device *dev,
						     const char *want,
						     unsigned int channels);

/**
 * hmmgpu_copy_engine_destroy() - stop an engine; no batch may be in flight.
 * @ce: the engine, or NULL.
 */
void hmmgpu_copy_engine_destroy(struct hmmgpu_copy_engine *ce);

/** hmmgpu_copy_engine_kind() - HMMGPU_COPY_SOFTWARE or _DMAENGINE. */
enum hmmgpu_copy_kind hmmgpu_copy_engine_kind(struct hmmgpu_copy_engine *ce);

/** hmmgpu_copy_engine_channels() - number of channels working batches. */
unsigned int hmmgpu_copy_engine_channels(struct hmmgpu_copy_engine *ce);

/**
 * hmmgpu_copy_submit() - start copying a batch; never blocks on the copy.
 * @ce: the engine.
 * @batch: @ops, @nr and @failed set by the caller; the rest is set here.
 *
 * Always consumes the batch: its fence signals exactly once, even when
 * the engine could not start some copies (those are marked failed).  The
 * caller waits with hmmgpu_copy_wait() and then calls
 * hmmgpu_copy_batch_fini().  May sleep (it may allocate and map pages).
 */
void hmmgpu_copy_submit(struct hmmgpu_copy_engine *ce,
			struct hmmgpu_copy_batch *batch);

/**
 * hmmgpu_copy_wait() - wait for a batch's fence, uninterruptibly.
 * @batch: a submitted batch.
 *
 * Return: 0 when every op succeeded, -EIO when some failed (see @failed).
 */
int hmmgpu_copy_wait(struct hmmgpu_copy_batch *batch);

/**
 * hmmgpu_copy_batch_fini() - release what the engine keeps for a batch.
 * @batch: a batch whose fence has signalled.
 */
void hmmgpu_copy_batch_fini(struct hmmgpu_copy_batch *batch);

#endif /* HMMGPU_COPY_H */
