// SPDX-License-Identifier: GPL-2.0
/*
 * hmmgpu_testdma.c - a test-only dmaengine provider with DMA_MEMCPY
 * channels, so that hmmgpu's dmaengine copy path runs in the test VM.
 */

#include <linux/atomic.h>
#include <linux/delay.h>
#include <linux/dma-mapping.h>
#include <linux/dmaengine.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/list.h>
#include <linux/minmax.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/overflow.h>
#include <linux/platform_device.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/workqueue.h>

#include "hmmgpu_compat.h"

/**
 * DOC: Test DMA engine
 *
 * QEMU emulates no DMA engine that can copy memory to memory, so this
 * module provides one for the tests of hmmgpu's dmaengine copy path.  It
 * registers a platform device "hmmgpu_testdma" and, bound to it, a
 * &struct dma_device with @channels channels of the %DMA_MEMCPY capability
 * (they show in /sys/class/dma/).  A channel's descriptors are copied in
 * submission order by a work item; completion advances the channel's
 * completed cookie and calls the descriptor's callback with a
 * &struct dmaengine_result.
 *
 * The "engine" copies with the CPU: a bus address is the physical address
 * of the page, since the test VM has no IOMMU (probe checks that mapping a
 * page gives its physical address, and refuses to bind otherwise).
 *
 * Module parameters, in /sys/module/hmmgpu_testdma/parameters/:
 *
 * - channels (read-only): number of channels, 1-8, 2 by default;
 * - fail_every (writable): when N > 0, every Nth descriptor completed
 *   (counted over all channels) copies nothing and completes with
 *   %DMA_TRANS_WRITE_FAILED, so tests can check that copy errors reach
 *   the client;
 * - stall (writable): when 1, the channels stop completing descriptors:
 *   issued ones wait, as on hardware that hung, until stall is 0 again or
 *   dmaengine_terminate_*() drops them, so tests can check that a client
 *   does not wait forever;
 * - copies, failed (read-only): descriptors copied, and failed on purpose.
 *
 * **Locking.**  Each channel's &hmmgpu_testdma_chan.lock protects its
 * descriptor lists and its cookies; it is taken with interrupts off, since
 * clients may prepare and submit from any context, and never held across
 * a copy or a callback.  Callbacks run in the work item, in process
 * context, with no lock held.
 */

#define HMMGPU_TESTDMA_NAME "hmmgpu_testdma"
#define HMMGPU_TESTDMA_MAX_CHANNELS 8

static unsigned int channels = 2;
module_param(channels, uint, 0444);
MODULE_PARM_DESC(channels, "Number of DMA_MEMCPY channels (1-"
		 __stringify(HMMGPU_TESTDMA_MAX_CHANNELS) ", default 2)");

static unsigned int fail_every;
module_param(fail_every, uint, 0644);
MODULE_PARM_DESC(fail_every,
		 "Fail every Nth descriptor with DMA_TRANS_WRITE_FAILED (0: never)");

static bool stall;
module_param(stall, bool, 0644);
MODULE_PARM_DESC(stall, "Stop completing descriptors, as a hung engine (default 0)");

static atomic_long_t hmmgpu_testdma_copies = ATOMIC_LONG_INIT(0);
static atomic_long_t hmmgpu_testdma_failed = ATOMIC_LONG_INIT(0);
/* descriptors completed, copied or failed: fail_every counts these */
static atomic_long_t hmmgpu_testdma_done = ATOMIC_LONG_INIT(0);

static int hmmgpu_testdma_counter_set(const char *val,
				      const struct kernel_param *kp)
{
	return -EPERM;
}

static int hmmgpu_testdma_counter_get(char *buf, const struct kernel_param *kp)
{
	return scnprintf(buf, PAGE_SIZE, "%ld\n", atomic_long_read(kp->arg));
}

static const struct kernel_param_ops hmmgpu_testdma_counter_ops = {
	.set = hmmgpu_testdma_counter_set,
	.get = hmmgpu_testdma_counter_get,
};

module_param_cb(copies, &hmmgpu_testdma_counter_ops, &hmmgpu_testdma_copies,
		0444);
MODULE_PARM_DESC(copies, "Descriptors copied (read-only)");
module_param_cb(failed, &hmmgpu_testdma_counter_ops, &hmmgpu_testdma_failed,
		0444);
MODULE_PARM_DESC(failed, "Descriptors failed on purpose (read-only)");

/**
 * struct hmmgpu_testdma_desc - one memcpy descriptor.
 * @tx: what the client sees.
 * @node: entry in one of the lists of its channel.
 * @dst: destination bus address.
 * @src: source bus address.
 * @len: bytes to copy.
 */
struct hmmgpu_testdma_desc {
	struct dma_async_tx_descriptor tx;
	struct list_head node;
	dma_addr_t dst;
	dma_addr_t src;
	size_t len;
};

/**
 * struct hmmgpu_testdma_chan - one channel.
 * @chan: the dmaengine channel; its cookie and completed_cookie are
 *	  protected by @lock.
 * @lock: protects the lists and the cookies.
 * @prepared: descriptors prepared but not submitted.
 * @submitted: descriptors submitted, waiting for issue_pending.
 * @issued: descriptors issued, waiting for @work.
 * @work: copies @issued in order.
 * @wq: the workqueue @work runs on.
 */
struct hmmgpu_testdma_chan {
	struct dma_chan chan;
	spinlock_t lock;
	struct list_head prepared;
	struct list_head submitted;
	struct list_head issued;
	struct work_struct work;
	struct workqueue_struct *wq;
};

/**
 * struct hmmgpu_testdma - the DMA device.
 * @dma: the dmaengine device.
 * @wq: workqueue of the channels' work items.
 * @nr_chans: number of channels in @chans.
 * @chans: the channels.
 */
struct hmmgpu_testdma {
	struct dma_device dma;
	struct workqueue_struct *wq;
	unsigned int nr_chans;
	struct hmmgpu_testdma_chan chans[] __counted_by(nr_chans);
};

static struct platform_device *hmmgpu_testdma_pdev;

static struct hmmgpu_testdma_chan *to_testdma_chan(struct dma_chan *chan)
{
	return container_of(chan, struct hmmgpu_testdma_chan, chan);
}

static struct hmmgpu_testdma_desc *
to_testdma_desc(struct dma_async_tx_descriptor *tx)
{
	return container_of(tx, struct hmmgpu_testdma_desc, tx);
}

/* --- descriptors ---------------------------------------------------------- */

/**
 * hmmgpu_testdma_tx_submit() - &dma_async_tx_descriptor.tx_submit.
 * @tx: a prepared descriptor.
 *
 * Gives @tx the channel's next cookie and queues it until the next
 * issue_pending.  Any context.
 *
 * Return: the cookie.
 */
static dma_cookie_t hmmgpu_testdma_tx_submit(struct dma_async_tx_descriptor *tx)
{
	struct hmmgpu_testdma_chan *tc = to_testdma_chan(tx->chan);
	struct hmmgpu_testdma_desc *desc = to_testdma_desc(tx);
	dma_cookie_t cookie;
	unsigned long flags;

	spin_lock_irqsave(&tc->lock, flags);
	cookie = tc->chan.cookie + 1;
	if (cookie < DMA_MIN_COOKIE)
		cookie = DMA_MIN_COOKIE;
	tc->chan.cookie = cookie;
	tx->cookie = cookie;
	list_move_tail(&desc->node, &tc->submitted);
	spin_unlock_irqrestore(&tc->lock, flags);
	return cookie;
}

/**
 * hmmgpu_testdma_prep_memcpy() - &dma_device.device_prep_dma_memcpy.
 * @chan: the channel.
 * @dst: destination bus address.
 * @src: source bus address.
 * @len: bytes to copy.
 * @flags: DMA_PREP_* and DMA_CTRL_* flags.
 *
 * Any context: allocates without sleeping.
 *
 * Return: the descriptor, or NULL when it cannot be allocated.
 */
static struct dma_async_tx_descriptor *
hmmgpu_testdma_prep_memcpy(struct dma_chan *chan, dma_addr_t dst,
			   dma_addr_t src, size_t len, unsigned long flags)
{
	struct hmmgpu_testdma_chan *tc = to_testdma_chan(chan);
	struct hmmgpu_testdma_desc *desc;
	unsigned long irqflags;

	desc = kzalloc(sizeof(*desc), GFP_NOWAIT | __GFP_NOWARN);
	if (!desc)
		return NULL;
	dma_async_tx_descriptor_init(&desc->tx, chan);
	desc->tx.tx_submit = hmmgpu_testdma_tx_submit;
	desc->tx.flags = flags;
	desc->dst = dst;
	desc->src = src;
	desc->len = len;

	spin_lock_irqsave(&tc->lock, irqflags);
	list_add_tail(&desc->node, &tc->prepared);
	spin_unlock_irqrestore(&tc->lock, irqflags);
	return &desc->tx;
}

/* Copies @len bytes between bus addresses, which are physical here. */
static void hmmgpu_testdma_copy(dma_addr_t dst, dma_addr_t src, size_t len)
{
	while (len) {
		size_t soff = offset_in_page(src), doff = offset_in_page(dst);
		size_t n = min3(len, PAGE_SIZE - soff, PAGE_SIZE - doff);
		void *s = kmap_local_pfn(PHYS_PFN(src));
		void *d = kmap_local_pfn(PHYS_PFN(dst));

		memcpy(d + doff, s + soff, n);
		kunmap_local(d);
		kunmap_local(s);
		dst += n;
		src += n;
		len -= n;
	}
}

/* Whether the descriptor completing now fails, as fail_every asks. */
static bool hmmgpu_testdma_should_fail(void)
{
	unsigned int every = READ_ONCE(fail_every);
	long n = atomic_long_inc_return(&hmmgpu_testdma_done);

	return every && n % every == 0;
}

/**
 * hmmgpu_testdma_work() - the engine of one channel.
 * @work: &hmmgpu_testdma_chan.work.
 *
 * Completes the issued descriptors in cookie order: copies (or fails on
 * purpose), marks the cookie complete, calls the client's callback, frees
 * the descriptor.
 */
static void hmmgpu_testdma_work(struct work_struct *work)
{
	struct hmmgpu_testdma_chan *tc =
		container_of(work, struct hmmgpu_testdma_chan, work);

	for (;;) {
		struct dmaengine_result res = { .result = DMA_TRANS_NOERROR };
		struct hmmgpu_testdma_desc *desc;
		struct dma_async_tx_descriptor *tx;
		unsigned long flags;

		bool stalled = READ_ONCE(stall);

		spin_lock_irqsave(&tc->lock, flags);
		desc = list_first_entry_or_null(&tc->issued,
						struct hmmgpu_testdma_desc, node);
		if (desc && !stalled)
			list_del(&desc->node);
		spin_unlock_irqrestore(&tc->lock, flags);
		if (!desc)
			break;
		if (stalled) {
			/* hung: look again later, holding nothing */
			msleep(5);
			continue;
		}
		tx = &desc->tx;

		if (hmmgpu_testdma_should_fail()) {
			res.result = DMA_TRANS_WRITE_FAILED;
			res.residue = desc->len;
			atomic_long_inc(&hmmgpu_testdma_failed);
		} else {
			hmmgpu_testdma_copy(desc->dst, desc->src, desc->len);
			atomic_long_inc(&hmmgpu_testdma_copies);
		}

		spin_lock_irqsave(&tc->lock, flags);
		tc->chan.completed_cookie = tx->cookie;
		spin_unlock_irqrestore(&tc->lock, flags);

		if (tx->callback_result)
			tx->callback_result(tx->callback_param, &res);
		else if (tx->callback)
			tx->callback(tx->callback_param);
		kfree(desc);
		cond_resched();
	}
}

/* --- channel operations --------------------------------------------------- */

static void hmmgpu_testdma_issue_pending(struct dma_chan *chan)
{
	struct hmmgpu_testdma_chan *tc = to_testdma_chan(chan);
	unsigned long flags;
	bool queued;

	spin_lock_irqsave(&tc->lock, flags);
	list_splice_tail_init(&tc->submitted, &tc->issued);
	queued = !list_empty(&tc->issued);
	spin_unlock_irqrestore(&tc->lock, flags);
	if (queued)
		queue_work(tc->wq, &tc->work);
}

static enum dma_status hmmgpu_testdma_tx_status(struct dma_chan *chan,
						dma_cookie_t cookie,
						struct dma_tx_state *state)
{
	struct hmmgpu_testdma_chan *tc = to_testdma_chan(chan);
	dma_cookie_t used, complete;
	unsigned long flags;

	spin_lock_irqsave(&tc->lock, flags);
	used = chan->cookie;
	complete = chan->completed_cookie;
	spin_unlock_irqrestore(&tc->lock, flags);

	dma_set_tx_state(state, complete, used, 0);
	return dma_async_is_complete(cookie, complete, used);
}

/* Frees the descriptors of @list, which nobody else sees any more. */
static void hmmgpu_testdma_free_list(struct list_head *list)
{
	struct hmmgpu_testdma_desc *desc, *tmp;

	list_for_each_entry_safe(desc, tmp, list, node) {
		list_del(&desc->node);
		kfree(desc);
	}
}

/*
 * Drops the submitted and issued descriptors without completing them, as
 * dmaengine_terminate_*() asks; one being copied right now still
 * completes.
 */
static int hmmgpu_testdma_terminate_all(struct dma_chan *chan)
{
	struct hmmgpu_testdma_chan *tc = to_testdma_chan(chan);
	unsigned long flags;
	LIST_HEAD(dropped);

	spin_lock_irqsave(&tc->lock, flags);
	list_splice_tail_init(&tc->submitted, &dropped);
	list_splice_tail_init(&tc->issued, &dropped);
	spin_unlock_irqrestore(&tc->lock, flags);
	hmmgpu_testdma_free_list(&dropped);
	return 0;
}

/* Waits until no callback of @chan runs any more. */
static void hmmgpu_testdma_synchronize(struct dma_chan *chan)
{
	flush_work(&to_testdma_chan(chan)->work);
}

static int hmmgpu_testdma_alloc_chan_resources(struct dma_chan *chan)
{
	struct hmmgpu_testdma_chan *tc = to_testdma_chan(chan);
	unsigned long flags;

	spin_lock_irqsave(&tc->lock, flags);
	chan->cookie = DMA_MIN_COOKIE;
	chan->completed_cookie = DMA_MIN_COOKIE;
	spin_unlock_irqrestore(&tc->lock, flags);
	return 0;
}

static void hmmgpu_testdma_free_chan_resources(struct dma_chan *chan)
{
	struct hmmgpu_testdma_chan *tc = to_testdma_chan(chan);
	unsigned long flags;
	LIST_HEAD(unused);

	hmmgpu_testdma_terminate_all(chan);
	hmmgpu_testdma_synchronize(chan);

	spin_lock_irqsave(&tc->lock, flags);
	list_splice_init(&tc->prepared, &unused);
	spin_unlock_irqrestore(&tc->lock, flags);
	hmmgpu_testdma_free_list(&unused);
}

/* --- device --------------------------------------------------------------- */

/*
 * The copy treats bus addresses as physical addresses: check that the DMA
 * mapping of this device is the identity (no IOMMU, no offset).
 */
static int hmmgpu_testdma_check_identity(struct device *dev)
{
	struct page *page;
	dma_addr_t addr;
	int ret = 0;

	page = alloc_page(GFP_KERNEL);
	if (!page)
		return -ENOMEM;
	addr = dma_map_page(dev, page, 0, PAGE_SIZE, DMA_BIDIRECTIONAL);
	if (dma_mapping_error(dev, addr)) {
		ret = -EIO;
	} else {
		if (addr != page_to_phys(page))
			ret = -ENODEV;
		dma_unmap_page(dev, addr, PAGE_SIZE, DMA_BIDIRECTIONAL);
	}
	__free_page(page);
	if (ret)
		dev_err(dev, "DMA addresses are not physical addresses here (%d)\n",
			ret);
	return ret;
}

static int hmmgpu_testdma_probe(struct platform_device *pdev)
{
	struct device *dev = &pdev->dev;
	struct hmmgpu_testdma *tdma;
	struct dma_device *dma;
	unsigned int i;
	int ret;

	ret = dma_coerce_mask_and_coherent(dev, DMA_BIT_MASK(64));
	if (ret)
		return ret;
	ret = hmmgpu_testdma_check_identity(dev);
	if (ret)
		return ret;

	tdma = devm_kzalloc(dev, struct_size(tdma, chans, channels),
			    GFP_KERNEL);
	if (!tdma)
		return -ENOMEM;
	tdma->nr_chans = channels;
	tdma->wq = alloc_workqueue(HMMGPU_TESTDMA_NAME,
				   WQ_UNBOUND | WQ_MEM_RECLAIM, 0);
	if (!tdma->wq)
		return -ENOMEM;

	dma = &tdma->dma;
	dma->dev = dev;
	dma_cap_set(DMA_MEMCPY, dma->cap_mask);
	dma->copy_align = DMAENGINE_ALIGN_1_BYTE;
	dma->directions = BIT(DMA_MEM_TO_MEM);
	dma->device_alloc_chan_resources = hmmgpu_testdma_alloc_chan_resources;
	dma->device_free_chan_resources = hmmgpu_testdma_free_chan_resources;
	dma->device_prep_dma_memcpy = hmmgpu_testdma_prep_memcpy;
	dma->device_issue_pending = hmmgpu_testdma_issue_pending;
	dma->device_tx_status = hmmgpu_testdma_tx_status;
	dma->device_terminate_all = hmmgpu_testdma_terminate_all;
	dma->device_synchronize = hmmgpu_testdma_synchronize;
	INIT_LIST_HEAD(&dma->channels);
	for (i = 0; i < tdma->nr_chans; i++) {
		struct hmmgpu_testdma_chan *tc = &tdma->chans[i];

		spin_lock_init(&tc->lock);
		INIT_LIST_HEAD(&tc->prepared);
		INIT_LIST_HEAD(&tc->submitted);
		INIT_LIST_HEAD(&tc->issued);
		INIT_WORK(&tc->work, hmmgpu_testdma_work);
		tc->wq = tdma->wq;
		tc->chan.device = dma;
		list_add_tail(&tc->chan.device_node, &dma->channels);
	}

	ret = dma_async_device_register(dma);
	if (ret)
		goto err_destroy_wq;
	platform_set_drvdata(pdev, tdma);
	dev_info(dev, "%u DMA_MEMCPY channel%s, fail_every=%u\n",
		 tdma->nr_chans, tdma->nr_chans == 1 ? "" : "s",
		 READ_ONCE(fail_every));
	return 0;

err_destroy_wq:
	destroy_workqueue(tdma->wq);
	return ret;
}

/*
 * Runs at module unload only (no sysfs unbind): a client holding a channel
 * holds a reference on this module, so no channel is in use here.
 */
static void hmmgpu_testdma_remove(struct platform_device *pdev)
{
	struct hmmgpu_testdma *tdma = platform_get_drvdata(pdev);

	dma_async_device_unregister(&tdma->dma);
	destroy_workqueue(tdma->wq);
}

HMMGPU_DEFINE_PLATFORM_REMOVE(hmmgpu_testdma_platform_remove,
			       hmmgpu_testdma_remove)

static struct platform_driver hmmgpu_testdma_driver = {
	.probe = hmmgpu_testdma_probe,
	.remove = hmmgpu_testdma_platform_remove,
	.driver = {
		.name = HMMGPU_TESTDMA_NAME,
		.suppress_bind_attrs = true,
	},
};

static int __init hmmgpu_testdma_init(void)
{
	struct platform_device *pdev;
	int ret;

	if (channels < 1 || channels > HMMGPU_TESTDMA_MAX_CHANNELS) {
		pr_err(HMMGPU_TESTDMA_NAME ": channels=%u is out of range 1-%d\n",
		       channels, HMMGPU_TESTDMA_MAX_CHANNELS);
		return -EINVAL;
	}

	ret = platform_driver_register(&hmmgpu_testdma_driver);
	if (ret)
		return ret;

	pdev = platform_device_register_simple(HMMGPU_TESTDMA_NAME,
					       PLATFORM_DEVID_NONE, NULL, 0);
	if (IS_ERR(pdev)) {
		ret = PTR_ERR(pdev);
		goto err_unregister_driver;
	}
	if (!platform_get_drvdata(pdev)) {
		/* Probe failed: its error is in the log already. */
		ret = -ENODEV;
		goto err_unregister_device;
	}
	hmmgpu_testdma_pdev = pdev;
	return 0;

err_unregister_device:
	platform_device_unregister(pdev);
err_unregister_driver:
	platform_driver_unregister(&hmmgpu_testdma_driver);
	return ret;
}

static void __exit hmmgpu_testdma_exit(void)
{
	platform_device_unregister(hmmgpu_testdma_pdev);
	platform_driver_unregister(&hmmgpu_testdma_driver);
}

module_init(hmmgpu_testdma_init);
module_exit(hmmgpu_testdma_exit);

MODULE_DESCRIPTION("Test-only DMA_MEMCPY dmaengine provider for hmmgpu");
MODULE_LICENSE("GPL");
