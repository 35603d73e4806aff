// SPDX-License-Identifier: MIT
/*
 * gather - random lookups into a table twice as large as the device
 * memory: oversubscription and eviction at work.
 *
 * The table (the working set) is 2 x the device's memory, filled on the
 * CPU.  The kernel does out[k] = table[idx[k]] for random indices through
 * device pointers.  Each lookup that lands on a block not on the device is
 * a device fault that migrates the block; once the device is full, the
 * driver evicts the least recently used blocks back to system memory to
 * make room.  Nothing is lost: the CPU then checks every lookup, and
 * reads the whole table back (CPU faults for what is still on the
 * device) to check that it survived the round trips.
 *
 * With --remote, the table is advised for remote access instead
 * (HMM_ADVISE_SET_REMOTE_ACCESS): the device maps its system pages and
 * reads them where they are, so the lookups migrate and evict nothing.
 *
 *   $ gather [--lookups N] [--max-mib MIB] [--seed N] [--remote]
 *
 * In the test VM, a small device keeps this quick:
 *   tools/vm/hmmvm --params "num_devices=1 mem_mib=32" run -- samples/gather
 */
#define _GNU_SOURCE
#include "sample_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct gather_args {
	const uint32_t *table; /* device pointers, from hmm_devptr() */
	const uint32_t *idx;
	uint32_t *out;
};

static void gather_kernel(struct hmm_dim3 k, struct hmm_dim3 grid,
			  void *args)
{
	struct gather_args *g = args;

	g->out[k.x] = g->table[g->idx[k.x]];
}

/* What the table holds at @i: a hash, so that a misplaced page shows. */
static uint32_t table_value(size_t i)
{
	return (uint32_t)(i * 2654435761u) ^ 0x5bd1e995u;
}

/* xorshift64*: a small reproducible random generator. */
static uint64_t next_random(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 0x2545f4914f6cdd1dULL;
}

int main(int argc, char **argv)
{
	unsigned long lookups = 1 << 16, max_mib = 1024, seed = 1;
	bool remote = false;
	const struct sample_opt opts[] = {
		{ "lookups", SAMPLE_OPT_UINT, &lookups, "N",
		  "random lookups into the table", .min = 1,
		  .max = 1UL << 28 },
		{ "max-mib", SAMPLE_OPT_UINT, &max_mib, "MIB",
		  "largest table, whatever the device memory", .min = 1,
		  .max = 16384 },
		{ "seed", SAMPLE_OPT_UINT, &seed, "N",
		  "seed of the random indices", .min = 1, .max = ~0UL },
		{ "remote", SAMPLE_OPT_FLAG, &remote, NULL,
		  "read the table remotely in system memory: no migration" },
		{ NULL },
	};
	struct hmm_stats before, after, d;
	double start, ms_kernel, ms_out, ms_table;
	struct sample s;

	sample_init(&s, "gather", "Random lookups into a table twice the device memory: eviction at work.",
		    opts, argc, argv);

	/* The working set: twice the device memory, within --max-mib. */
	size_t bytes = sample_on_device(&s) ? 2 * s.info.mem_total : 64 * MIB;
	if (bytes > max_mib * MIB)
		bytes = max_mib * MIB;
	size_t ram = (size_t)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE);
	if (bytes > ram / 2) {
		fprintf(stderr, "gather: a %zu MiB table does not fit in half the RAM (%zu MiB); use --max-mib, or a device with less memory\n",
			bytes / MIB, ram / MIB);
		return 1;
	}
	size_t n = bytes / sizeof(uint32_t);
	printf("gather: %lu random lookups into a %zu MiB table", lookups,
	       bytes / MIB);
	if (sample_on_device(&s))
		printf(" (%.1fx the device memory)",
		       (double)bytes / s.info.mem_total);
	printf("\n");
	if (sample_on_device(&s) && bytes <= s.info.mem_total)
		printf("gather: the table fits in the device: nothing to evict (--max-mib is below twice the device memory)\n");

	/* The table and the random indices, filled on the CPU. */
	uint32_t *table = sample_malloc(&s, bytes, "the table");
	uint32_t *idx = sample_malloc(&s, lookups * sizeof(uint32_t), "the indices");
	uint32_t *out = sample_malloc(&s, lookups * sizeof(uint32_t), "the results");
	uint64_t rng = seed;
	for (size_t i = 0; i < n; i++)
		table[i] = table_value(i);
	for (size_t k = 0; k < lookups; k++)
		idx[k] = (uint32_t)(next_random(&rng) % n);
	if (remote && sample_on_device(&s)) {
		sample_check(&s, hmm_advise(table, bytes,
					    HMM_ADVISE_SET_REMOTE_ACCESS, s.dev, 0),
			     "hmm_advise(remote access)", "was the device removed?");
		printf("gather: the table is read remotely, in system memory\n");
	}

	/* The gather: every block it touches faults over; a full device
	 * evicts. */
	struct gather_args args = {
		.table = sample_devptr(&s, table),
		.idx = sample_devptr(&s, idx),
		.out = sample_devptr(&s, out),
	};
	sample_stats(&s, &before);
	start = sample_now_ms();
	sample_launch_sync(&s, gather_kernel,
			   (struct hmm_dim3){ (uint32_t)lookups, 1, 1 }, &args);
	ms_kernel = sample_now_ms() - start;
	sample_stats(&s, &after);

	/* How much of the table is on the device now: never more than fits. */
	size_t npages = bytes / (size_t)sysconf(_SC_PAGESIZE), on_device = 0;
	int8_t *loc = malloc(npages);
	if (!loc) {
		fprintf(stderr, "gather: no memory for the residency map\n");
		return 1;
	}
	sample_check(&s, hmm_residency(table, bytes, loc, npages),
		     "hmm_residency", "is the table still mapped?");
	for (size_t p = 0; p < npages; p++)
		if (sample_on_device(&s) && loc[p] == s.dev)
			on_device++;
	free(loc);

	/* Check every lookup, without touching the table. */
	start = sample_now_ms();
	if (s.inject_error)
		out[lookups / 2] ^= 0x100;
	uint64_t sum = 0;
	for (size_t k = 0; k < lookups; k++) {
		if (out[k] != table_value(idx[k]))
			return sample_mismatch(&s, "out", k, out[k],
					       table_value(idx[k]));
		sum += out[k];
	}
	ms_out = sample_now_ms() - start;

	/* The table survived evictions and faults: read it all back. */
	start = sample_now_ms();
	for (size_t i = 0; i < n; i++) {
		if (table[i] != table_value(i))
			return sample_mismatch(&s, "table", i, table[i],
					       table_value(i));
	}
	ms_table = sample_now_ms() - start;

	sample_stats_sub(&d, &after, &before);
	printf("  gather      %8.1f ms | device_faults=%llu, to device %.2f MiB (%.1fx the table), evicted %.2f MiB in %llu evictions\n",
	       ms_kernel, (unsigned long long)d.device_faults,
	       sample_total_mib(&d, HMM_DIR_TO_DEVICE),
	       sample_total_mib(&d, HMM_DIR_TO_DEVICE) / ((double)bytes / MIB),
	       sample_mib(&d, HMM_DIR_TO_HOST, HMM_CAUSE_EVICTION),
	       (unsigned long long)d.evictions);
	printf("  afterwards  %.2f MiB of the table on the device (device memory %llu MiB)\n",
	       (double)on_device * sysconf(_SC_PAGESIZE) / MIB,
	       (unsigned long long)(s.info.mem_total / MIB));
	printf("  check       %8.1f ms | %lu lookups right, checksum %llu; table intact (%.1f ms)\n",
	       ms_out, lookups, (unsigned long long)sum, ms_table);

	hmm_free(table);
	hmm_free(idx);
	hmm_free(out);
	return sample_finish(&s);
}
