// SPDX-License-Identifier: GPL-2.0
/*
 * hmmgpu_copy.c - the copy engine: batched, asynchronous page copies with
 * one fence per batch, done by kernel threads or by a dmaengine channel.
 */

#include <linux/bitmap.h>
#include <linux/device.h>
#include <linux/dma-fence.h>
#include <linux/dma-mapping.h>
#include <linux/dmaengine.h>
#include <linux/err.h>
#include <linux/highmem.h>
#include <linux/kthread.h>
#include <linux/list.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <linux/wait.h>

#include "hmmgpu_compat.h"
#include "hmmgpu_copy.h"

/**
 * DOC: Copy engine
 *
 * Migration hands the copy engine a *batch*: an array of page copies
 * (&struct hmmgpu_copy_op, a source page to a destination page, or no
 * source to zero the destination) with one &struct dma_fence embedded in
 * the batch.  hmmgpu_copy_submit() starts the copies and returns without
 * waiting for them; the fence signals once every copy has completed or
 * failed, and hmmgpu_copy_wait() waits for it.  Migration submits each
 * migrate_vma batch whole, never page by page, and waits for the fence
 * before it decides, from the failed copies, which pages move.
 *
 * Each device has one engine, chosen when the device probes by the
 * copy_engine module parameter:
 *
 * - **software**: the device's own engine, @channels kernel threads named
 *   "hmmgpu-copy/N", each working a queue of descriptors.  A batch is cut
 *   into contiguous segments, one per channel, so that several threads
 *   copy one batch in parallel; a batch of fewer than
 *   2 * %HMMGPU_COPY_SEG_PAGES pages is one segment, since waking a thread
 *   costs more than copying a few pages.  A batch of fewer than
 *   %HMMGPU_COPY_INLINE_PAGES pages (a CPU fault's block, typically) is
 *   copied by the submitting thread itself before hmmgpu_copy_submit()
 *   returns: handing 16 pages to a thread and sleeping on the fence cost
 *   a wake-up and a scheduler tick or two, which put CPU faults' p90 at
 *   2-8 ms in the benchmark where the copy takes about 30 us.  Urgent
 *   batches (a device fault's block or prefetch, which the faulting
 *   thread waits for with nothing to overlap) are copied inline whatever
 *   their size, for the same reason.  Threads copy with
 *   copy_highpage() and clear_highpage().  The thread that finishes the
 *   last segment signals the fence.
 *
 * - **dmaengine**: a channel with the %DMA_MEMCPY capability from
 *   dma_request_chan_by_mask().  Every page is one descriptor: both pages
 *   are DMA-mapped on the channel's device (zeroing copies from the zero
 *   page, mapped once per engine), prepared with
 *   dmaengine_prep_dma_memcpy() and submitted; one
 *   dma_async_issue_pending() starts the batch.  Each descriptor's
 *   completion callback records its result and unmaps its pages; the last
 *   one signals the fence.  Nothing in a callback sleeps.
 *
 * "auto" (the default) takes a dmaengine channel where the platform has
 * one and the software engine otherwise; "dmaengine" makes the device
 * fail to probe with -ENODEV when there is no channel.
 *
 * **Failures.**  A copy that cannot be started (mapping or descriptor
 * preparation failed) or that the DMA engine reports failed
 * (&dmaengine_result.result is not %DMA_TRANS_NOERROR) sets its bit in
 * &hmmgpu_copy_batch.failed; its destination then holds no valid data and
 * the caller must leave that page where it is (or copy it again with the
 * CPU: the source is never written).  The fence still signals, with error
 * -EIO, and hmmgpu_copy_wait() returns -EIO.
 *
 * **Stalls.**  A DMA engine that stops completing descriptors must not
 * hang its waiters, which may hold a process's mmap_lock: a dmaengine
 * batch not done after copy_timeout_ms is cancelled.  The waiter
 * terminates the channel (dmaengine_terminate_sync(): the engine drops
 * what it has not done and no callback runs afterwards) and counts every
 * descriptor of its batch whose callback did not run as failed, claiming
 * each with &hmmgpu_copy_dma_op.claimed so that a callback racing the
 * cancel and the cancel do not both finish it.  Other batches on the
 * channel lose their descriptors too and are cancelled in turn when
 * their own wait times out.  When the engine cannot allocate its
 * per-batch bookkeeping, it copies the batch with the CPU in the caller's
 * context rather than failing it: slower, but no page is left behind.
 *
 * **Fence.**  Each engine has a fence context from dma_fence_context_alloc()
 * and numbers its batches in submission order.  The fences never leave the
 * driver (nobody else orders them), so batches that finish out of order,
 * as concurrent batches on different channels may, are harmless.  The
 * fence lives in the caller's batch: its &dma_fence_ops.release frees
 * nothing, and hmmgpu_copy_batch_fini() returns once the signalling
 * thread no longer touches the batch, after which the caller may free it.
 * &hmmgpu_copy_batch.busy_ns is the time from submission to the fence.
 *
 * **Locking.**  Each software channel's queue is protected by its
 * &hmmgpu_copy_channel.lock, taken in process context only and never
 * nested.  The fence lock, one per batch, is taken by dma_fence_signal()
 * and dma_fence_wait() only.  Batch completion is counted without locks in
 * &hmmgpu_copy_batch.pending: one count per segment or descriptor in
 * flight plus one held by hmmgpu_copy_submit() until everything is
 * queued, so the fence cannot signal while the batch is still being
 * submitted.  The code from dequeueing a segment to signalling its fence
 * is a dma_fence signalling critical section for lockdep: it allocates
 * nothing and takes no lock that a fence waiter may hold.
 */

/* Most channels of a software engine. */
#define HMMGPU_COPY_MAX_CHANNELS 16
/* Fewest pages worth giving to one more channel. */
#define HMMGPU_COPY_SEG_PAGES 16
/* Software engine: smaller batches are copied by the submitter. */
#define HMMGPU_COPY_INLINE_PAGES 64
/* Pages a software channel copies between two cond_resched(). */
#define HMMGPU_COPY_RESCHED_PAGES 64
/* The shortest copy_timeout_ms honoured. */
#define HMMGPU_COPY_MIN_TIMEOUT_MS 10

static unsigned int hmmgpu_copy_timeout_ms = 10000;
module_param_named(copy_timeout_ms, hmmgpu_copy_timeout_ms, uint, 0644);
MODULE_PARM_DESC(copy_timeout_ms,
		 "Cancel a DMA engine batch not done after this many ms (at least "
		 __stringify(HMMGPU_COPY_MIN_TIMEOUT_MS) ", default 10000)");

struct hmmgpu_copy_engine;

/**
 * struct hmmgpu_copy_channel - one thread of the software engine.
 * @ce: the engine.
 * @thread: the kernel thread working @queue.
 * @lock: protects @queue.
 * @queue: segments waiting for @thread, in submission order.
 * @wait: where @thread sleeps while @queue is empty.
 */
struct hmmgpu_copy_channel {
	struct hmmgpu_copy_engine *ce;
	struct task_struct *thread;
	spinlock_t lock;
	struct list_head queue;
	wait_queue_head_t wait;
};

/**
 * struct hmmgpu_copy_seg - a contiguous part of a batch for one channel.
 * @link: entry in &hmmgpu_copy_channel.queue.
 * @batch: the batch.
 * @first: index of the first op.
 * @count: number of ops.
 */
struct hmmgpu_copy_seg {
	struct list_head link;
	struct hmmgpu_copy_batch *batch;
	unsigned int first;
	unsigned int count;
};

/**
 * struct hmmgpu_copy_dma_op - one descriptor of the dmaengine provider.
 * @batch: the batch.
 * @src: bus address of the source page, or the engine's zero page.
 * @dst: bus address of the destination page.
 * @index: index of the op in @batch.
 * @claimed: set by whoever finishes the op: its callback, or a cancel.
 */
struct hmmgpu_copy_dma_op {
	struct hmmgpu_copy_batch *batch;
	dma_addr_t src;
	dma_addr_t dst;
	unsigned int index;
	atomic_t claimed;
};

/**
 * struct hmmgpu_copy_engine - a copy engine.
 * @dev: the device owning the engine, for messages.
 * @kind: the provider.
 * @nr_channels: channels working batches.
 * @fence_context: fence context of the batches.
 * @seqno: sequence number of the last batch submitted.
 * @next_channel: software: where the next batch starts, so that
 *		  concurrent small batches spread over the channels.
 * @channels: software: @nr_channels channels.
 * @chan: dmaengine: the channel.
 * @dma_dev: dmaengine: the device that maps pages for @chan.
 * @zero_dma: dmaengine: bus address of the zero page, the source of
 *	      zeroing copies.
 * @cancel_lock: dmaengine: one cancel of a stalled batch at a time.
 */
struct hmmgpu_copy_engine {
	struct device *dev;
	enum hmmgpu_copy_kind kind;
	unsigned int nr_channels;
	u64 fence_context;
	atomic64_t seqno;
	atomic_t next_channel;

	struct hmmgpu_copy_channel *channels;

	struct dma_chan *chan;
	struct device *dma_dev;
	dma_addr_t zero_dma;
	struct mutex cancel_lock;
};

/* --- fences ---------------------------------------------------------------- */

static const char *hmmgpu_copy_fence_driver_name(struct dma_fence *fence)
{
	return "hmmgpu";
}

static const char *hmmgpu_copy_fence_timeline_name(struct dma_fence *fence)
{
	return "hmmgpu-copy";
}

static void hmmgpu_copy_fence_release(struct dma_fence *fence)
{
	/* The fence is embedded in a batch that its caller owns and frees. */
}

static const struct dma_fence_ops hmmgpu_copy_fence_ops = {
	HMMGPU_FENCE_OPS_SEQNO64
	.get_driver_name = hmmgpu_copy_fence_driver_name,
	.get_timeline_name = hmmgpu_copy_fence_timeline_name,
	.release = hmmgpu_copy_fence_release,
};

/* Records that op @index of @batch failed; any context. */
static void hmmgpu_copy_mark_failed(struct hmmgpu_copy_batch *batch,
				    unsigned int index)
{
	if (!test_and_set_bit(index, batch->failed))
		atomic_inc(&batch->nr_failed);
}

/**
 * hmmgpu_copy_part_done() - one part of a batch has finished.
 * @batch: the batch.
 *
 * A part is a segment, a descriptor, or the submission itself.  The last
 * part signals the fence.  Once this returns, the caller must not touch
 * @batch again: its owner may already have freed it.  Any context.
 */
static void hmmgpu_copy_part_done(struct hmmgpu_copy_batch *batch)
{
	if (!atomic_dec_and_test(&batch->pending))
		return;

	batch->busy_ns = ktime_get_ns() - batch->submit_ns;
	if (atomic_read(&batch->nr_failed))
		dma_fence_set_error(&batch->fence, -EIO);
	dma_fence_signal(&batch->fence);
}

/* Copies or zeroes ops [@first, @first + @count) of @batch with the CPU. */
static void hmmgpu_copy_cpu(struct hmmgpu_copy_batch *batch,
			    unsigned int first, unsigned int count)
{
	unsigned int i;

	for (i = 0; i < count; i++) {
		struct hmmgpu_copy_op *op = &batch->ops[first + i];

		if (op->src)
			copy_highpage(op->dst, op->src);
		else
			clear_highpage(op->dst);
		if ((i + 1) % HMMGPU_COPY_RESCHED_PAGES == 0)
			cond_resched();
	}
}

/* --- software provider --------------------------------------------------- */

static bool hmmgpu_copy_channel_wake(struct hmmgpu_copy_channel *ch)
{
	return !list_empty_careful(&ch->queue) || kthread_should_stop();
}

/**
 * hmmgpu_copy_thread() - the loop of one software channel.
 * @data: the &struct hmmgpu_copy_channel.
 *
 * Takes segments off the channel's queue in order and copies them.  It
 * sleeps in TASK_IDLE while the queue is empty, so an idle engine is not
 * load and not a hung task.  It stops only once asked to and with its
 * queue empty, so no queued segment is ever dropped.
 *
 * Return: 0.
 */
static int hmmgpu_copy_thread(void *data)
{
	struct hmmgpu_copy_channel *ch = data;

	for (;;) {
		struct hmmgpu_copy_seg *seg;
		bool cookie;

		wait_event_idle(ch->wait, hmmgpu_copy_channel_wake(ch));

		spin_lock(&ch->lock);
		seg = list_first_entry_or_null(&ch->queue,
					       struct hmmgpu_copy_seg, link);
		if (seg)
			list_del(&seg->link);
		spin_unlock(&ch->lock);

		if (!seg) {
			if (kthread_should_stop())
				break;
			continue;
		}

		cookie = dma_fence_begin_signalling();
		hmmgpu_copy_cpu(seg->batch, seg->first, seg->count);
		/* @seg lives in the batch: last use before it may be freed */
		hmmgpu_copy_part_done(seg->batch);
		dma_fence_end_signalling(cookie);
		cond_resched();
	}
	return 0;
}

/**
 * hmmgpu_copy_sw_submit() - queue a batch on the software channels.
 * @ce: a software engine.
 * @batch: the batch, with @batch->nr > 0 and the submission's part held.
 *
 * Cuts the batch into one contiguous segment per channel, at least
 * %HMMGPU_COPY_SEG_PAGES pages each, and queues segment k on channel
 * (start + k) modulo the channels, start rotating from batch to batch.
 * May sleep (allocates the segments).
 */
static void hmmgpu_copy_sw_submit(struct hmmgpu_copy_engine *ce,
				  struct hmmgpu_copy_batch *batch)
{
	unsigned int nseg, k, first = 0, start;
	struct hmmgpu_copy_seg *segs;

	/*
	 * Small batches are copied here: a hand-off would cost more. So are
	 * urgent ones (a device fault's), whose submitter only waits.
	 */
	if (batch->nr < HMMGPU_COPY_INLINE_PAGES || batch->urgent) {
		hmmgpu_copy_cpu(batch, 0, batch->nr);
		return;
	}

	nseg = clamp(batch->nr / HMMGPU_COPY_SEG_PAGES, 1U, ce->nr_channels);
	segs = kvmalloc_array(nseg, sizeof(*segs), GFP_KERNEL);
	if (!segs) {
		hmmgpu_copy_cpu(batch, 0, batch->nr);
		return;
	}
	batch->work = segs;

	/* Every part counted before the first can finish. */
	atomic_add(nseg, &batch->pending);
	start = atomic_inc_return(&ce->next_channel);
	for (k = 0; k < nseg; k++) {
		struct hmmgpu_copy_channel *ch;
		struct hmmgpu_copy_seg *seg = &segs[k];

		seg->batch = batch;
		seg->first = first;
		seg->count = batch->nr / nseg + (k < batch->nr % nseg);
		first += seg->count;

		ch = &ce->channels[(start + k) % ce->nr_channels];
		spin_lock(&ch->lock);
		list_add_tail(&seg->link, &ch->queue);
		spin_unlock(&ch->lock);
		wake_up(&ch->wait);
	}
}

/* Stops the first @n threads of @ce; each finishes its queue first. */
static void hmmgpu_copy_sw_stop(struct hmmgpu_copy_engine *ce, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		kthread_stop(ce->channels[i].thread);
		WARN_ON(!list_empty(&ce->channels[i].queue));
	}
}

/**
 * hmmgpu_copy_sw_init() - start the software engine's threads.
 * @ce: the engine.
 * @channels: number of threads, already checked.
 *
 * Return: 0, -ENOMEM, or kthread_run()'s error.
 */
static int hmmgpu_copy_sw_init(struct hmmgpu_copy_engine *ce,
			       unsigned int channels)
{
	unsigned int i;
	int ret;

	ce->channels = kcalloc(channels, sizeof(*ce->channels), GFP_KERNEL);
	if (!ce->channels)
		return -ENOMEM;

	for (i = 0; i < channels; i++) {
		struct hmmgpu_copy_channel *ch = &ce->channels[i];

		ch->ce = ce;
		spin_lock_init(&ch->lock);
		INIT_LIST_HEAD(&ch->queue);
		init_waitqueue_head(&ch->wait);
		ch->thread = kthread_run(hmmgpu_copy_thread, ch,
					 "hmmgpu-copy/%u", i);
		if (IS_ERR(ch->thread)) {
			ret = PTR_ERR(ch->thread);
			goto err_stop_threads;
		}
	}
	ce->kind = HMMGPU_COPY_SOFTWARE;
	ce->nr_channels = channels;
	return 0;

err_stop_threads:
	hmmgpu_copy_sw_stop(ce, i);
	kfree(ce->channels);
	ce->channels = NULL;
	return ret;
}

/* --- dmaengine provider -------------------------------------------------- */

static void hmmgpu_copy_dma_unmap(struct hmmgpu_copy_engine *ce,
				  struct hmmgpu_copy_dma_op *dop)
{
	dma_unmap_page(ce->dma_dev, dop->dst, PAGE_SIZE, DMA_FROM_DEVICE);
	if (dop->src != ce->zero_dma)
		dma_unmap_page(ce->dma_dev, dop->src, PAGE_SIZE, DMA_TO_DEVICE);
}

/**
 * hmmgpu_copy_dma_done() - completion callback of one descriptor.
 * @param: the &struct hmmgpu_copy_dma_op.
 * @result: what the DMA engine reports, or NULL for success.
 *
 * Runs in whatever context the DMA driver completes descriptors in
 * (often a tasklet): records a failure, unmaps the pages, and signals the
 * fence when this was the batch's last part.  Never sleeps.
 */
static void hmmgpu_copy_dma_done(void *param,
				 const struct dmaengine_result *result)
{
	struct hmmgpu_copy_dma_op *dop = param;
	struct hmmgpu_copy_batch *batch = dop->batch;

	/* cancelled: the waiter finished it (and may have freed @batch) */
	if (atomic_xchg(&dop->claimed, 1))
		return;
	if (result && result->result != DMA_TRANS_NOERROR)
		hmmgpu_copy_mark_failed(batch, dop->index);
	hmmgpu_copy_dma_unmap(batch->engine, dop);
	/* @dop lives in the batch: last use before it may be freed */
	hmmgpu_copy_part_done(batch);
}

/**
 * hmmgpu_copy_dma_one() - map, prepare and submit one op.
 * @ce: a dmaengine engine.
 * @batch: the batch.
 * @dop: the op's descriptor state, in @batch->work.
 * @index: index of the op.
 *
 * On success the descriptor counts as one part of @batch, and its
 * callback unmaps the pages.  On failure nothing stays mapped and the
 * caller marks the op failed.
 *
 * Return: 0, -EIO when a page cannot be mapped or a descriptor cannot be
 * prepared or submitted.
 */
static int hmmgpu_copy_dma_one(struct hmmgpu_copy_engine *ce,
			       struct hmmgpu_copy_batch *batch,
			       struct hmmgpu_copy_dma_op *dop,
			       unsigned int index)
{
	struct hmmgpu_copy_op *op = &batch->ops[index];
	struct dma_async_tx_descriptor *tx;
	dma_cookie_t cookie;

	dop->batch = batch;
	dop->index = index;
	atomic_set(&dop->claimed, 0);
	dop->src = ce->zero_dma;
	if (op->src) {
		dop->src = dma_map_page(ce->dma_dev, op->src, 0, PAGE_SIZE,
					DMA_TO_DEVICE);
		if (dma_mapping_error(ce->dma_dev, dop->src))
			return -EIO;
	}
	dop->dst = dma_map_page(ce->dma_dev, op->dst, 0, PAGE_SIZE,
				DMA_FROM_DEVICE);
	if (dma_mapping_error(ce->dma_dev, dop->dst))
		goto err_unmap_src;

	tx = dmaengine_prep_dma_memcpy(ce->chan, dop->dst, dop->src, PAGE_SIZE,
				       DMA_PREP_INTERRUPT | DMA_CTRL_ACK);
	if (!tx)
		goto err_unmap_dst;
	tx->callback_result = hmmgpu_copy_dma_done;
	tx->callback_param = dop;

	/* The submission's own part keeps this above zero on failure. */
	atomic_inc(&batch->pending);
	cookie = dmaengine_submit(tx);
	if (dma_submit_error(cookie)) {
		atomic_dec(&batch->pending);
		goto err_unmap_dst;
	}
	return 0;

err_unmap_dst:
	dma_unmap_page(ce->dma_dev, dop->dst, PAGE_SIZE, DMA_FROM_DEVICE);
err_unmap_src:
	if (op->src)
		dma_unmap_page(ce->dma_dev, dop->src, PAGE_SIZE, DMA_TO_DEVICE);
	return -EIO;
}

/**
 * hmmgpu_copy_dma_submit() - submit a batch to the DMA channel.
 * @ce: a dmaengine engine.
 * @batch: the batch, with @batch->nr > 0 and the submission's part held.
 *
 * One descriptor per op, then one dma_async_issue_pending() for all of
 * them.  Ops that cannot be submitted are marked failed.  May sleep.
 */
static void hmmgpu_copy_dma_submit(struct hmmgpu_copy_engine *ce,
				   struct hmmgpu_copy_batch *batch)
{
	struct hmmgpu_copy_dma_op *dops;
	unsigned int i, submitted = 0;

	dops = kvmalloc_array(batch->nr, sizeof(*dops), GFP_KERNEL);
	if (!dops) {
		hmmgpu_copy_cpu(batch, 0, batch->nr);
		return;
	}
	batch->work = dops;

	for (i = 0; i < batch->nr; i++) {
		if (hmmgpu_copy_dma_one(ce, batch, &dops[i], i)) {
			/* finished now: nothing for a cancel to do */
			atomic_set(&dops[i].claimed, 1);
			hmmgpu_copy_mark_failed(batch, i);
		} else {
			submitted++;
		}
	}
	if (submitted)
		dma_async_issue_pending(ce->chan);
}

/**
 * hmmgpu_copy_dma_init() - take a DMA_MEMCPY channel.
 * @ce: the engine.
 *
 * Return: 0, -ENODEV when the platform has no free DMA_MEMCPY channel,
 * -ENOMEM when the zero page cannot be mapped for it, or the channel
 * allocation's error.
 */
static int hmmgpu_copy_dma_init(struct hmmgpu_copy_engine *ce)
{
	struct dma_chan *chan;
	dma_cap_mask_t mask;
	int ret;

	dma_cap_zero(mask);
	dma_cap_set(DMA_MEMCPY, mask);
	chan = dma_request_chan_by_mask(&mask);
	if (IS_ERR(chan)) {
		ret = PTR_ERR(chan);
		/* no DMA device registered at all: nothing to wait for */
		return ret == -EPROBE_DEFER ? -ENODEV : ret;
	}

	ce->chan = chan;
	ce->dma_dev = dmaengine_get_dma_device(chan);
	ce->zero_dma = dma_map_page(ce->dma_dev, ZERO_PAGE(0), 0, PAGE_SIZE,
				    DMA_TO_DEVICE);
	if (dma_mapping_error(ce->dma_dev, ce->zero_dma)) {
		ret = -ENOMEM;
		goto err_release_channel;
	}
	ce->kind = HMMGPU_COPY_DMAENGINE;
	ce->nr_channels = 1;
	return 0;

err_release_channel:
	dma_release_channel(chan);
	ce->chan = NULL;
	ce->dma_dev = NULL;
	return ret;
}

static void hmmgpu_copy_dma_fini(struct hmmgpu_copy_engine *ce)
{
	dma_unmap_page(ce->dma_dev, ce->zero_dma, PAGE_SIZE, DMA_TO_DEVICE);
	dma_release_channel(ce->chan);
}

/* --- interface ------------------------------------------------------------ */

/**
 * hmmgpu_copy_engine_create() - start a copy engine.
 * @dev: the device that owns the engine (for messages).
 * @want: "auto", "software" or "dmaengine".
 * @channels: software engine: number of kernel threads (1-16).
 *
 * Logs one line naming the engine chosen and its channels.
 *
 * Return: the engine, or an ERR_PTR(): -EINVAL for a bad @want or
 * @channels, -ENODEV when "dmaengine" was asked for and no channel exists,
 * -ENOMEM.
 */
struct hmmgpu_copy_engine *hmmgpu_copy_engine_create(struct device *dev,
						     const char *want,
						     unsigned int channels)
{
	struct hmmgpu_copy_engine *ce;
	bool try_dma, need_dma;
	int ret;

	if (!want || channels < 1 || channels > HMMGPU_COPY_MAX_CHANNELS)
		return ERR_PTR(-EINVAL);
	if (sysfs_streq(want, "auto")) {
		try_dma = true;
		need_dma = false;
	} else if (sysfs_streq(want, "dmaengine")) {
		try_dma = true;
		need_dma = true;
	} else if (sysfs_streq(want, "software")) {
		try_dma = false;
		need_dma = false;
	} else {
		return ERR_PTR(-EINVAL);
	}

	ce = kzalloc(sizeof(*ce), GFP_KERNEL);
	if (!ce)
		return ERR_PTR(-ENOMEM);
	ce->dev = dev;
	ce->fence_context = dma_fence_context_alloc(1);
	atomic64_set(&ce->seqno, 0);
	mutex_init(&ce->cancel_lock);

	if (try_dma) {
		ret = hmmgpu_copy_dma_init(ce);
		if (!ret) {
			dev_info(dev, "copy engine: dmaengine, 1 channel (%s on %s)\n",
				 dma_chan_name(ce->chan),
				 dev_name(ce->chan->device->dev));
			return ce;
		}
		if (need_dma) {
			dev_err(dev, "copy engine: no dmaengine DMA_MEMCPY channel (%d)\n",
				ret);
			goto err_free_engine;
		}
		if (ret != -ENODEV)
			dev_warn(dev, "copy engine: dmaengine channel unusable (%d), using software\n",
				 ret);
	}

	ret = hmmgpu_copy_sw_init(ce, channels);
	if (ret)
		goto err_free_engine;
	dev_info(dev, "copy engine: software, %u channel%s\n", channels,
		 channels == 1 ? "" : "s");
	return ce;

err_free_engine:
	kfree(ce);
	return ERR_PTR(ret);
}

/**
 * hmmgpu_copy_engine_destroy() - stop an engine; no batch may be in flight.
 * @ce: the engine, or NULL.
 *
 * Software threads finish their queues before they stop; the DMA channel
 * goes back to its provider.  May sleep.
 */
void hmmgpu_copy_engine_destroy(struct hmmgpu_copy_engine *ce)
{
	if (!ce)
		return;
	if (ce->kind == HMMGPU_COPY_DMAENGINE) {
		hmmgpu_copy_dma_fini(ce);
	} else {
		hmmgpu_copy_sw_stop(ce, ce->nr_channels);
		kfree(ce->channels);
	}
	kfree(ce);
}

enum hmmgpu_copy_kind hmmgpu_copy_engine_kind(struct hmmgpu_copy_engine *ce)
{
	return ce->kind;
}

unsigned int hmmgpu_copy_engine_channels(struct hmmgpu_copy_engine *ce)
{
	return ce->nr_channels;
}

/**
 * hmmgpu_copy_submit() - start copying a batch; never blocks on the copy.
 * @ce: the engine.
 * @batch: @ops, @nr and @failed set by the caller; the rest is set here.
 *
 * Initializes the batch's fence and bookkeeping and hands the ops to the
 * provider.  The fence signals exactly once, even when @nr is zero or no
 * copy could be started.  May sleep: it allocates with GFP_KERNEL and
 * maps pages, so the caller may hold mmap_lock but no spinlock.
 */
void hmmgpu_copy_submit(struct hmmgpu_copy_engine *ce,
			struct hmmgpu_copy_batch *batch)
{
	might_sleep();

	batch->engine = ce;
	batch->work = NULL;
	batch->busy_ns = 0;
	atomic_set(&batch->nr_failed, 0);
	bitmap_zero(batch->failed, batch->nr);
	/* the submission's own part, dropped once everything is queued */
	atomic_set(&batch->pending, 1);
	spin_lock_init(&batch->fence_lock);
	hmmgpu_fence_init64(&batch->fence, &hmmgpu_copy_fence_ops,
			    &batch->fence_lock, ce->fence_context,
			    atomic64_inc_return(&ce->seqno));
	batch->submit_ns = ktime_get_ns();

	if (batch->nr) {
		if (ce->kind == HMMGPU_COPY_DMAENGINE)
			hmmgpu_copy_dma_submit(ce, batch);
		else
			hmmgpu_copy_sw_submit(ce, batch);
	}
	hmmgpu_copy_part_done(batch);
}

/*
 * Returns once whoever signalled @batch's fence has left dma_fence_signal():
 * it signals with the fence lock held and touches nothing after dropping
 * it.  Taking the lock also orders the signaller's writes to @failed,
 * @nr_failed and @busy_ns before the caller's reads.
 */
static void hmmgpu_copy_batch_settle(struct hmmgpu_copy_batch *batch)
{
	spin_lock_irq(&batch->fence_lock);
	spin_unlock_irq(&batch->fence_lock);
}

/*
 * Cancels what remains of a dmaengine batch that did not finish in time
 * (see "Stalls" above). Its waiter, the batch's owner, calls this.
 */
static void hmmgpu_copy_dma_cancel(struct hmmgpu_copy_engine *ce,
				   struct hmmgpu_copy_batch *batch,
				   unsigned int timeout_ms)
{
	struct hmmgpu_copy_dma_op *dops = batch->work;
	unsigned int i, n = 0, nr = batch->nr;
	int ret;

	mutex_lock(&ce->cancel_lock);
	ret = dmaengine_terminate_sync(ce->chan);
	if (ret) {
		mutex_unlock(&ce->cancel_lock);
		dev_warn_once(ce->dev, "DMA channel %s cannot be terminated (%d): waiting for a stalled copy\n",
			      dma_chan_name(ce->chan), ret);
		return;
	}
	for (i = 0; i < nr; i++) {
		if (atomic_xchg(&dops[i].claimed, 1))
			continue;
		hmmgpu_copy_mark_failed(batch, i);
		hmmgpu_copy_dma_unmap(ce, &dops[i]);
		n++;
		/* the last one signals the fence; the batch stays ours */
		hmmgpu_copy_part_done(batch);
	}
	mutex_unlock(&ce->cancel_lock);
	dev_warn_ratelimited(ce->dev, "DMA channel %s: %u of %u copies not done after %u ms, cancelled\n",
			     dma_chan_name(ce->chan), n, nr, timeout_ms);
}

/**
 * hmmgpu_copy_wait() - wait for a batch's fence, uninterruptibly.
 * @batch: a submitted batch.
 *
 * May sleep; the caller may hold mmap_lock, which no copy needs.  A
 * dmaengine batch not done after copy_timeout_ms is cancelled: the
 * copies not done count as failed.  Software batches are copied by the
 * CPU and always finish.
 *
 * Return: 0 when every op succeeded, -EIO when some failed (see @failed).
 */
int hmmgpu_copy_wait(struct hmmgpu_copy_batch *batch)
{
	struct hmmgpu_copy_engine *ce = batch->engine;

	if (ce->kind == HMMGPU_COPY_DMAENGINE && batch->work) {
		unsigned int ms = max(READ_ONCE(hmmgpu_copy_timeout_ms),
				      HMMGPU_COPY_MIN_TIMEOUT_MS);

		if (!dma_fence_wait_timeout(&batch->fence, false,
					    msecs_to_jiffies(ms)))
			hmmgpu_copy_dma_cancel(ce, batch, ms);
	}
	dma_fence_wait(&batch->fence, false);
	hmmgpu_copy_batch_settle(batch);
	return atomic_read(&batch->nr_failed) ? -EIO : 0;
}

/**
 * hmmgpu_copy_batch_fini() - release what the engine keeps for a batch.
 * @batch: a batch whose fence has signalled.
 *
 * After this the caller may free or resubmit @batch.
 */
void hmmgpu_copy_batch_fini(struct hmmgpu_copy_batch *batch)
{
	WARN_ON(!dma_fence_is_signaled(&batch->fence));
	hmmgpu_copy_batch_settle(batch);
	kvfree(batch->work);
	batch->work = NULL;
	dma_fence_put(&batch->fence);
}
