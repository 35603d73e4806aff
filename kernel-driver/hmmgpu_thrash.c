// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * hmmgpu_thrash.c - thrashing detection and mitigation: blocks that
 * bounce between the CPU and the device are pinned in system memory for a
 * while, and the device maps them there instead of migrating them.
 */

/**
 * DOC: Thrashing
 *
 * A block that the device and the CPU take turns at touching (a flag both
 * poll, a buffer a kernel writes and the host reads back each round)
 * migrates both ways at every turn: each access pays a migration, and the
 * data spends its time in the copy engine. GPU drivers detect this and
 * stop moving such data; this is hmmgpu's version of it.
 *
 * The unit is the 64 KiB block of CPU addresses (HMMGPU_THRASH_SHIFT),
 * per open file: the file's device is the one the data bounces to. A
 * *bounce* is a CPU fault of the program (a user-mode access: not one the
 * kernel takes on its behalf, such as a device write breaking
 * copy-on-write) that brings back part of a block less than
 * thrash_lapse_us after a device fault migrated the block to the device.
 * thrash_threshold bounces in a row (a slower turn resets the count) pin
 * the block for thrash_pin_ms: a device fault in a pinned block migrates
 * nothing and maps the system pages where they are (as
 * HMMGPU_ADVICE_REMOTE does), so that from then on both sides reach the
 * same pages without a fault. A device fault after the pin has ended
 * migrates again (and detection starts over); the view's entries made
 * during the pin stay until something invalidates them, as any remote
 * entry does. Explicit migrations (MIGRATE, prefetches) are not affected.
 *
 * The lapse is a matter of the device's speed: NVIDIA's UVM takes 500 us
 * on GPUs that migrate 64 KiB in a few microseconds; hmmgpu's copy engine
 * in the test VM takes a few hundred, so its default, 20 ms, catches the
 * same turns (a ping-pong of a few MiB; tools/bench --pingpong).
 *
 * thrash_threshold=0 turns detection off. Pins are counted in the STATS
 * field @thrash_pins, device faults served remotely because of one in
 * @thrash_remote, and each pin is traced (hmmgpu_thrash_pin).
 *
 * State: one &struct hmmgpu_thrash per block that a device fault migrated,
 * in the file's xarray @thrash keyed by block number, created by the
 * device fault (process context, may allocate) and freed with the file.
 * Its fields are read and written locklessly (READ_ONCE()/WRITE_ONCE()):
 * the CPU fault path finds the file under &hmmgpu_device.files_lock
 * (hmmgpu_count_fault_back()) and cannot sleep; a lost update between a
 * CPU fault and a device fault of one block only delays detection by a
 * turn.
 */

#include <linux/ktime.h>
#include <linux/slab.h>
#include <linux/xarray.h>

#include "hmmgpu_drv.h"

unsigned int hmmgpu_thrash_threshold = 3;
unsigned int hmmgpu_thrash_lapse_us = 20000;
unsigned int hmmgpu_thrash_pin_ms = 150;

struct hmmgpu_thrash {
	u64 to_device_ns;	/* a device fault migrated the block */
	u64 pinned_until_ns;	/* 0: not pinned */
	unsigned int bounces;	/* in a row */
};

static unsigned long block_of(unsigned long addr)
{
	return addr >> HMMGPU_THRASH_SHIFT;
}

/**
 * hmmgpu_thrash_pinned() - is the block of @addr pinned in system memory?
 * @hfile: the file of the device that faults.
 * @addr: the faulting CPU address.
 *
 * Context: process context, the device fault path.
 * Return: true while a pin of the block lasts (see DOC: Thrashing).
 */
bool hmmgpu_thrash_pinned(struct hmmgpu_file *hfile, unsigned long addr)
{
	struct hmmgpu_thrash *t;

	if (!READ_ONCE(hmmgpu_thrash_threshold))
		return false;
	t = xa_load(&hfile->thrash, block_of(addr));
	return t && ktime_get_ns() < READ_ONCE(t->pinned_until_ns);
}

/**
 * hmmgpu_thrash_to_device() - a device fault migrated the block of @addr.
 * @hfile: the file of the device.
 * @addr: the faulting CPU address.
 *
 * Context: process context; may sleep (allocates the block's state).
 */
void hmmgpu_thrash_to_device(struct hmmgpu_file *hfile, unsigned long addr)
{
	struct hmmgpu_thrash *t, *old;

	if (!READ_ONCE(hmmgpu_thrash_threshold))
		return;
	t = xa_load(&hfile->thrash, block_of(addr));
	if (!t) {
		t = kzalloc(sizeof(*t), GFP_KERNEL_ACCOUNT);
		if (!t)
			return;	/* no detection for this block: no harm */
		old = xa_cmpxchg(&hfile->thrash, block_of(addr), NULL, t,
				 GFP_KERNEL_ACCOUNT);
		if (old) {
			kfree(t);
			if (xa_is_err(old))
				return;
			t = old;
		}
	}
	WRITE_ONCE(t->to_device_ns, ktime_get_ns());
}

/**
 * hmmgpu_thrash_bounce() - a CPU fault of the program brought back data of
 * @addr's block: a bounce if the block went to @hfile's device less than
 * thrash_lapse_us ago.
 * @hfile: a file of the faulting process on the device the data was on.
 * @addr: the faulting address.
 *
 * Context: under &hmmgpu_device.files_lock (hmmgpu_count_fault_back());
 * does not sleep.
 * Return: true when this bounce, the thrash_threshold-th in a row, pinned
 * the block.
 */
bool hmmgpu_thrash_bounce(struct hmmgpu_file *hfile, unsigned long addr)
{
	unsigned int threshold = READ_ONCE(hmmgpu_thrash_threshold), n;
	struct hmmgpu_thrash *t;
	u64 now;

	if (!threshold)
		return false;
	t = xa_load(&hfile->thrash, block_of(addr));
	if (!t)
		return false;
	now = ktime_get_ns();
	if (now - READ_ONCE(t->to_device_ns) >=
	    (u64)READ_ONCE(hmmgpu_thrash_lapse_us) * NSEC_PER_USEC) {
		WRITE_ONCE(t->bounces, 0);
		return false;
	}
	n = READ_ONCE(t->bounces) + 1;
	if (n < threshold) {
		WRITE_ONCE(t->bounces, n);
		return false;
	}
	WRITE_ONCE(t->bounces, 0);
	WRITE_ONCE(t->pinned_until_ns,
		   now + (u64)READ_ONCE(hmmgpu_thrash_pin_ms) * NSEC_PER_MSEC);
	return true;
}

/**
 * hmmgpu_thrash_fini() - free the thrashing state of a closing file.
 * @hfile: the file.
 */
void hmmgpu_thrash_fini(struct hmmgpu_file *hfile)
{
	struct hmmgpu_thrash *t;
	unsigned long idx;

	xa_for_each(&hfile->thrash, idx, t)
		kfree(t);
	xa_destroy(&hfile->thrash);
}
