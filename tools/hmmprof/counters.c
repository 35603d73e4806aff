// SPDX-License-Identifier: MIT
/*
 * counters.c - device discovery and the STATS ioctl (device scope).
 */
#define _GNU_SOURCE
#include "hmmprof.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <xf86drm.h>

uint64_t hp_counts_pages(const struct hp_counts *c, int dir)
{
	uint64_t n = 0;

	for (int k = 0; k < HP_CAUSES; k++)
		n += c->pages[dir][k];
	return n;
}

int hp_devices_open(struct hp_devices *d, bool quiet)
{
	struct hmm_node nodes[HP_MAX_DEVICES];
	int denied = 0, n;

	memset(d, 0, sizeof(*d));
	n = hmm_node_scan(nodes, HP_MAX_DEVICES, &denied);
	if (n < 0) {
		if (!quiet)
			hp_err("cannot list DRM devices: %s", strerror(-n));
		return n;
	}
	if (n == 0 && denied) {
		if (!quiet)
			hp_err("no permission to open the hmmgpu render "
			       "nodes in /dev/dri (add your user to the "
			       "'render' group, or run as root)");
		return -EACCES;
	}
	if (n == 0) {
		if (!quiet)
			hp_err("no hmmgpu device found (is hmmgpu.ko "
			       "loaded?)");
		return -ENODEV;
	}
	d->n = n;
	for (int i = 0; i < n; i++)
		d->dev[i].node = nodes[i];
	hp_devices_sample(d);
	return 0;
}

void hp_devices_close(struct hp_devices *d)
{
	for (int i = 0; i < d->n; i++) {
		if (d->dev[i].node.fd >= 0)
			close(d->dev[i].node.fd);
		d->dev[i].node.fd = -1;
	}
	d->n = 0;
}

void hp_devices_release(struct hp_devices *d)
{
	for (int i = 0; i < d->n; i++) {
		if (d->dev[i].node.fd >= 0)
			close(d->dev[i].node.fd);
		d->dev[i].node.fd = -1;
	}
}

/* Whether any counter of @after is below the same one of @before. */
static bool went_back(const struct drm_hmmgpu_stats *after,
		      const struct drm_hmmgpu_stats *before)
{
	for (int dir = 0; dir < 2; dir++)
		for (int k = 0; k < HP_CAUSES; k++)
			if (after->pages[dir][k] < before->pages[dir][k])
				return true;
	return after->cpu_faults < before->cpu_faults ||
	       after->device_faults < before->device_faults ||
	       after->batches < before->batches ||
	       after->copy_busy_ns < before->copy_busy_ns;
}

void hp_devices_resample(struct hp_devices *d)
{
	struct hp_devices now;

	if (hp_devices_open(&now, true)) {
		for (int i = 0; i < d->n; i++)
			d->dev[i].gone = true;
		return;
	}
	for (int i = 0; i < d->n; i++) {
		struct hp_device *dev = &d->dev[i];
		int j;

		for (j = 0; j < now.n; j++)
			if (now.dev[j].node.index == dev->node.index &&
			    !now.dev[j].gone)
				break;
		if (j == now.n) {
			dev->gone = true;
			continue;
		}
		dev->reset = went_back(&now.dev[j].stats, &dev->stats);
		dev->gone = false;
		dev->info = now.dev[j].info;
		dev->stats = now.dev[j].stats;
		memcpy(dev->node.path, now.dev[j].node.path,
		       sizeof(dev->node.path));
	}
	hp_devices_close(&now);
}

void hp_devices_sample(struct hp_devices *d)
{
	for (int i = 0; i < d->n; i++) {
		struct hp_device *dev = &d->dev[i];
		struct drm_hmmgpu_stats st = { .scope = HMMGPU_STATS_DEVICE };
		struct drm_hmmgpu_get_info info;

		if (dev->gone || dev->node.fd < 0)
			continue;
		if (hmm_node_get_info(dev->node.fd, &info) ||
		    drmIoctl(dev->node.fd, DRM_IOCTL_HMMGPU_STATS, &st)) {
			/* removed (-ENODEV); keep the last values */
			dev->gone = true;
			continue;
		}
		dev->info = info;
		dev->stats = st;
	}
}

static uint64_t sub(uint64_t a, uint64_t b)
{
	return a >= b ? a - b : 0;
}

void hp_stats_delta(const struct drm_hmmgpu_stats *after,
		    const struct drm_hmmgpu_stats *before,
		    struct hp_counts *out)
{
	memset(out, 0, sizeof(*out));
	for (int d = 0; d < 2; d++)
		for (int k = 0; k < HP_CAUSES; k++)
			out->pages[d][k] = sub(after->pages[d][k],
					       before->pages[d][k]);
	out->cpu_faults = sub(after->cpu_faults, before->cpu_faults);
	out->device_faults = sub(after->device_faults, before->device_faults);
	out->evictions = sub(after->evictions, before->evictions);
	out->batches = sub(after->batches, before->batches);
	out->copy_errors = sub(after->copy_errors, before->copy_errors);
	out->copy_busy_ns = sub(after->copy_busy_ns, before->copy_busy_ns);
	for (int i = 0; i < HMMGPU_LATENCY_BUCKETS; i++) {
		out->migrate_latency[i] = sub(after->migrate_latency[i],
					      before->migrate_latency[i]);
		out->fault_latency[i] = sub(after->fault_latency[i],
					    before->fault_latency[i]);
	}
}

void hp_counts_add(struct hp_counts *sum, const struct hp_counts *c)
{
	for (int d = 0; d < 2; d++) {
		for (int k = 0; k < HP_CAUSES; k++) {
			sum->pages[d][k] += c->pages[d][k];
			sum->batches_by[d][k] += c->batches_by[d][k];
		}
	}
	sum->cpu_faults += c->cpu_faults;
	sum->device_faults += c->device_faults;
	sum->evictions += c->evictions;
	sum->batches += c->batches;
	sum->copy_errors += c->copy_errors;
	sum->copy_busy_ns += c->copy_busy_ns;
	for (int i = 0; i < HMMGPU_LATENCY_BUCKETS; i++) {
		sum->migrate_latency[i] += c->migrate_latency[i];
		sum->fault_latency[i] += c->fault_latency[i];
	}
}

/*
 * Bucket i holds [2^i, 2^(i+1)) us (bucket 0 also below 1 us, the last
 * one everything longer); the bound reported is 2^(i+1) us.
 */
uint64_t hp_hist_percentile(const uint64_t *hist, int pct)
{
	uint64_t total = 0, rank, seen = 0;

	for (int i = 0; i < HMMGPU_LATENCY_BUCKETS; i++)
		total += hist[i];
	if (!total)
		return 0;
	rank = (total * (uint64_t)pct + 99) / 100;
	if (!rank)
		rank = 1;
	for (int i = 0; i < HMMGPU_LATENCY_BUCKETS; i++) {
		seen += hist[i];
		if (seen >= rank)
			return (2ull << i) * 1000;
	}
	return (2ull << (HMMGPU_LATENCY_BUCKETS - 1)) * 1000;
}
