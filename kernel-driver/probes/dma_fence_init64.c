// SPDX-License-Identifier: GPL-2.0
/*
 * Linux 6.17 replaced dma_fence_ops.use_64bit_seqno with a fence flag set
 * by dma_fence_init64().
 */
#include <linux/dma-fence.h>

void hmmgpu_probe(struct dma_fence *fence, const struct dma_fence_ops *ops,
		  spinlock_t *lock);
void hmmgpu_probe(struct dma_fence *fence, const struct dma_fence_ops *ops,
		  spinlock_t *lock)
{
	dma_fence_init64(fence, ops, lock, 1, 1);
}
