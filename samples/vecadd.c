// SPDX-License-Identifier: MIT
/*
 * vecadd - c = a + b on the device, run two ways:
 *
 *   with prefetch     the CPU fills a, b and c, hmm_prefetch() moves them
 *                     to the device in three large batches, then the
 *                     kernel runs on data that is already there;
 *   without prefetch  the kernel starts at once: its first access to each
 *                     block of a, b and c is a device fault, and the
 *                     driver migrates the block while the kernel waits.
 *
 * Both ways end with the CPU reading c, which migrates it back (CPU
 * faults), and checking every element.  The line of each way shows what
 * it cost and what the counters saw.
 *
 *   $ vecadd [--size MIB] [--mode both|prefetch|fault]
 */
#include "sample_common.h"

#include <stdio.h>

/* The kernel's arguments: device pointers, from hmm_devptr(). */
struct vecadd_args {
	const float *a, *b;
	float *c;
};

/* One point of the grid: one element. */
static void vecadd_kernel(struct hmm_dim3 idx, struct hmm_dim3 grid,
			  void *args)
{
	struct vecadd_args *v = args;

	v->c[idx.x] = v->a[idx.x] + v->b[idx.x];
}

/*
 * Inputs with small integer values, so that every sum is exact in float
 * and the check can compare for equality.
 */
static float a_value(size_t i)
{
	return (float)(i % 4096);
}

static float b_value(size_t i)
{
	return (float)(2 * (i % 1000));
}

/* Runs vecadd once over @n elements, with or without a prefetch first. */
static int run_once(struct sample *s, size_t n, bool prefetch,
		    struct sample_way *w)
{
	size_t bytes = n * sizeof(float);
	float *a, *b, *c;

	/* Fresh managed memory for each way, filled on the CPU: every page
	 * starts in system memory. */
	a = sample_malloc(s, bytes, "a");
	b = sample_malloc(s, bytes, "b");
	c = sample_malloc(s, bytes, "c");
	for (size_t i = 0; i < n; i++) {
		a[i] = a_value(i);
		b[i] = b_value(i);
		c[i] = -1.0f; /* an element the kernel misses stays wrong */
	}

	sample_way_begin(s, w, prefetch);
	if (prefetch && sample_on_device(s)) {
		/* Move everything the kernel touches to the device now. */
		sample_check(s, hmm_prefetch(a, bytes, s->dev), "hmm_prefetch(a)",
			     "is the device memory large enough? try a smaller --size");
		sample_check(s, hmm_prefetch(b, bytes, s->dev), "hmm_prefetch(b)",
			     "is the device memory large enough? try a smaller --size");
		sample_check(s, hmm_prefetch(c, bytes, s->dev), "hmm_prefetch(c)",
			     "is the device memory large enough? try a smaller --size");
	}
	sample_way_end_phase(s, w, SAMPLE_PHASE_PREFETCH);

	/* The kernel sees the arrays through the device's view of them. */
	struct vecadd_args args = {
		.a = sample_devptr(s, a),
		.b = sample_devptr(s, b),
		.c = sample_devptr(s, c),
	};
	sample_launch_sync(s, vecadd_kernel, (struct hmm_dim3){ (uint32_t)n, 1, 1 },
			   &args);
	sample_way_end_phase(s, w, SAMPLE_PHASE_KERNEL);

	/* The CPU reads c: its pages fault back to system memory. */
	if (s->inject_error)
		c[n / 2] += 1.0f;
	for (size_t i = 0; i < n; i++) {
		if (c[i] != a_value(i) + b_value(i))
			return sample_mismatch(s, "c", i, c[i],
					       a_value(i) + b_value(i));
	}
	sample_way_end_phase(s, w, SAMPLE_PHASE_CHECK);

	hmm_free(a);
	hmm_free(b);
	hmm_free(c);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long size_mib = 8;
	const char *mode = sample_modes[0];
	const struct sample_opt opts[] = {
		{ "size", SAMPLE_OPT_UINT, &size_mib, "MIB",
		  "MiB in each of the arrays a, b and c", .min = 1,
		  .max = 4096 },
		{ "mode", SAMPLE_OPT_CHOICE, &mode, "WAY",
		  "run with a prefetch first, without (device faults only), or both",
		  .choices = sample_modes },
		{ NULL },
	};
	struct sample s;
	size_t n;

	sample_init(&s, "vecadd", "c = a + b on the device, with and without hmm_prefetch() first.",
		    opts, argc, argv);
	n = size_mib * MIB / sizeof(float);
	printf("vecadd: %zu floats, %lu MiB per array\n", n, size_mib);

	if (sample_run_ways(&s, mode, n, run_once))
		return 1;
	return sample_finish(&s);
}
