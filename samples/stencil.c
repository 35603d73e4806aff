// SPDX-License-Identifier: MIT
/*
 * stencil - heat spreading over a square plate: a 2D Jacobi stencil run
 * for many iterations on the device.
 *
 * The plate is an N x N grid of temperatures.  Its top edge is held hot
 * and its other edges cold; at each iteration every inner cell becomes a
 * weighted average of itself and its four neighbours:
 *
 *     new = (4 * c + up + down + left + right) / 8
 *
 * in integers (fixed point), so that the device's result and a reference
 * computed on the CPU agree exactly.
 *
 * The two grids (ping-pong: each iteration reads one and writes the
 * other) are prefetched to the device once; the iterations then run
 * there without moving a page, which the counters of the iteration phase
 * show.  At the end the CPU reads the result, which migrates it back, and
 * compares it with the reference, computed on plain malloc() memory.
 *
 *   $ stencil [--size N] [--iterations N]
 */
#include "sample_common.h"

#include <stdio.h>
#include <stdlib.h>

#define HOT 1000000u /* the top edge; everything else starts at 0 */

struct stencil_args {
	const uint32_t *src; /* device pointers, from hmm_devptr() */
	uint32_t *dst;
	uint32_t n;          /* the grid is n x n */
};

/* The update of one cell (shared by the kernel and the reference). */
static inline uint32_t heat(const uint32_t *g, size_t n, size_t x, size_t y)
{
	size_t i = y * n + x;

	return (4 * g[i] + g[i - n] + g[i + n] + g[i - 1] + g[i + 1]) / 8;
}

/* One point of the launch grid: one inner cell (x + 1, y + 1). */
static void stencil_kernel(struct hmm_dim3 idx, struct hmm_dim3 grid,
			   void *args)
{
	struct stencil_args *a = args;
	size_t x = idx.x + 1, y = idx.y + 1;

	a->dst[y * a->n + x] = heat(a->src, a->n, x, y);
}

/* The starting plate: hot top edge, cold elsewhere. */
static void init_grid(uint32_t *g, size_t n)
{
	for (size_t i = 0; i < n * n; i++)
		g[i] = i < n ? HOT : 0;
}

/* The same iterations on the CPU; returns the grid holding the result. */
static uint32_t *reference(uint32_t *a, uint32_t *b, size_t n,
			   unsigned long iterations)
{
	for (unsigned long it = 0; it < iterations; it++) {
		for (size_t y = 1; y < n - 1; y++)
			for (size_t x = 1; x < n - 1; x++)
				b[y * n + x] = heat(a, n, x, y);
		uint32_t *t = a;
		a = b;
		b = t;
	}
	return a;
}

int main(int argc, char **argv)
{
	unsigned long n = 512, iterations = 100;
	const struct sample_opt opts[] = {
		{ "size", SAMPLE_OPT_UINT, &n, "N",
		  "cells on a side of the square grid", .min = 3,
		  .max = 32768 },
		{ "iterations", SAMPLE_OPT_UINT, &iterations, "N",
		  "stencil iterations on the device", .min = 1,
		  .max = 100000 },
		{ NULL },
	};
	struct hmm_stats t0, t1, t2, d;
	double ms_prefetch, ms_iter, ms_check, ms_ref, start;
	struct sample s;

	sample_init(&s, "stencil", "A 2D heat stencil iterated on the device, prefetched once, read on the CPU at the end.",
		    opts, argc, argv);
	size_t bytes = n * n * sizeof(uint32_t);
	printf("stencil: %lu x %lu grid (%.1f MiB per grid, 2 grids), %lu iterations\n",
	       n, n, (double)bytes / MIB, iterations);

	/* The two grids, managed, initialised on the CPU. */
	uint32_t *a = sample_malloc(&s, bytes, "grid a");
	uint32_t *b = sample_malloc(&s, bytes, "grid b");
	init_grid(a, n);
	init_grid(b, n); /* the edges of b too: the kernel never writes them */

	/* 1. Prefetch both grids to the device, once. */
	sample_stats(&s, &t0);
	start = sample_now_ms();
	if (sample_on_device(&s)) {
		sample_check(&s, hmm_prefetch(a, bytes, s.dev), "hmm_prefetch(a)",
			     "is the device memory large enough? try a smaller --size");
		sample_check(&s, hmm_prefetch(b, bytes, s.dev), "hmm_prefetch(b)",
			     "is the device memory large enough? try a smaller --size");
	}
	ms_prefetch = sample_now_ms() - start;
	sample_stats(&s, &t1);

	/*
	 * 2. Queue every iteration, then wait once.  The stream runs its
	 * launches in order, so iteration i + 1 reads what i wrote.  The two
	 * argument blocks (a to b, b to a) stay valid until the end.
	 */
	struct stencil_args a_to_b = { sample_devptr(&s, a), sample_devptr(&s, b),
				       (uint32_t)n };
	struct stencil_args b_to_a = { a_to_b.dst, (uint32_t *)a_to_b.src,
				       (uint32_t)n };
	struct hmm_dim3 inner = { (uint32_t)n - 2, (uint32_t)n - 2, 1 };

	start = sample_now_ms();
	for (unsigned long it = 0; it < iterations; it++)
		sample_check(&s, hmm_launch(s.stream, stencil_kernel, inner,
					    it % 2 ? &b_to_a : &a_to_b),
			     "hmm_launch", "out of memory?");
	sample_check(&s, hmm_stream_synchronize(s.stream),
		     "hmm_stream_synchronize", "was the device removed?");
	ms_iter = sample_now_ms() - start;
	sample_stats(&s, &t2);
	uint32_t *result = iterations % 2 ? b : a;

	/* 3. The reference, on plain memory that never leaves the CPU. */
	uint32_t *ra = malloc(bytes), *rb = malloc(bytes);
	if (!ra || !rb) {
		fprintf(stderr, "stencil: no memory for the CPU reference (%zu MiB); try a smaller --size\n",
			2 * bytes / MIB);
		return 1;
	}
	init_grid(ra, n);
	init_grid(rb, n);
	start = sample_now_ms();
	uint32_t *want = reference(ra, rb, n, iterations);
	ms_ref = sample_now_ms() - start;

	/* 4. The CPU reads the device's result (CPU faults) and compares. */
	start = sample_now_ms();
	if (s.inject_error)
		result[n * (n / 2) + n / 2] ^= 1;
	uint64_t total = 0;
	for (size_t i = 0; i < n * n; i++) {
		if (result[i] != want[i])
			return sample_mismatch(&s, "grid", i, result[i], want[i]);
		total += result[i];
	}
	ms_check = sample_now_ms() - start;

	/* How far down the middle column the heat got. */
	size_t warm = 0;
	while (warm + 1 < n && result[(warm + 1) * n + n / 2])
		warm++;

	sample_stats_sub(&d, &t1, &t0);
	printf("  prefetch   %8.1f ms | to device %.2f MiB\n", ms_prefetch,
	       sample_mib(&d, HMM_DIR_TO_DEVICE, HMM_CAUSE_PREFETCH));
	sample_stats_sub(&d, &t2, &t1);
	printf("  iterations %8.1f ms (%.2f ms each) | device_faults=%llu, %.2f MiB moved\n",
	       ms_iter, ms_iter / iterations,
	       (unsigned long long)d.device_faults,
	       sample_total_mib(&d, HMM_DIR_TO_DEVICE) +
		       sample_total_mib(&d, HMM_DIR_TO_HOST));
	printf("  CPU check  %8.1f ms | reference on the CPU %.1f ms; heat %llu, down to row %zu\n",
	       ms_check, ms_ref, (unsigned long long)total, warm);

	free(ra);
	free(rb);
	hmm_free(a);
	hmm_free(b);
	return sample_finish(&s);
}
