// SPDX-License-Identifier: MIT
/*
 * saxpy - y = a * x + y on the device, run two ways:
 *
 *   with prefetch     the CPU fills x and y, hmm_prefetch() moves both to
 *                     the device, then the kernel runs on resident data;
 *   without prefetch  the kernel starts at once and device faults migrate
 *                     x and y block by block as it reaches them.
 *
 * y is read and written in place: the CPU check afterwards reads it back
 * (CPU faults), while x stays on the device until it is freed.
 *
 *   $ saxpy [--size MIB] [--mode both|prefetch|fault]
 */
#include "sample_common.h"

#include <stdio.h>

#define A 3.0f

struct saxpy_args {
	float a;
	const float *x; /* device pointers, from hmm_devptr() */
	float *y;
};

static void saxpy_kernel(struct hmm_dim3 idx, struct hmm_dim3 grid,
			 void *args)
{
	struct saxpy_args *s = args;

	s->y[idx.x] = s->a * s->x[idx.x] + s->y[idx.x];
}

/* Small integers: a * x + y is exact in float, the check compares for
 * equality. */
static float x_value(size_t i)
{
	return (float)(i % 1024);
}

static float y_value(size_t i)
{
	return (float)(i % 77);
}

static int run_once(struct sample *s, size_t n, bool prefetch,
		    struct sample_way *w)
{
	size_t bytes = n * sizeof(float);
	float *x, *y;

	/* Fresh managed memory, filled on the CPU: in system memory. */
	x = sample_malloc(s, bytes, "x");
	y = sample_malloc(s, bytes, "y");
	for (size_t i = 0; i < n; i++) {
		x[i] = x_value(i);
		y[i] = y_value(i);
	}

	sample_way_begin(s, w, prefetch);
	if (prefetch && sample_on_device(s)) {
		sample_check(s, hmm_prefetch(x, bytes, s->dev), "hmm_prefetch(x)",
			     "is the device memory large enough? try a smaller --size");
		sample_check(s, hmm_prefetch(y, bytes, s->dev), "hmm_prefetch(y)",
			     "is the device memory large enough? try a smaller --size");
	}
	sample_way_end_phase(s, w, SAMPLE_PHASE_PREFETCH);

	struct saxpy_args args = {
		.a = A,
		.x = sample_devptr(s, x),
		.y = sample_devptr(s, y),
	};
	sample_launch_sync(s, saxpy_kernel, (struct hmm_dim3){ (uint32_t)n, 1, 1 },
			   &args);
	sample_way_end_phase(s, w, SAMPLE_PHASE_KERNEL);

	/* The CPU reads y back and checks every element. */
	if (s->inject_error)
		y[n / 3] = -y[n / 3] - 1.0f;
	for (size_t i = 0; i < n; i++) {
		float want = A * x_value(i) + y_value(i);

		if (y[i] != want)
			return sample_mismatch(s, "y", i, y[i], want);
	}
	sample_way_end_phase(s, w, SAMPLE_PHASE_CHECK);

	hmm_free(x);
	hmm_free(y);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long size_mib = 16;
	const char *mode = sample_modes[0];
	const struct sample_opt opts[] = {
		{ "size", SAMPLE_OPT_UINT, &size_mib, "MIB",
		  "MiB in each of the arrays x and y", .min = 1, .max = 4096 },
		{ "mode", SAMPLE_OPT_CHOICE, &mode, "WAY",
		  "run with a prefetch first, without (device faults only), or both",
		  .choices = sample_modes },
		{ NULL },
	};
	struct sample s;
	size_t n;

	sample_init(&s, "saxpy", "y = a * x + y on the device, with and without hmm_prefetch() first.",
		    opts, argc, argv);
	n = size_mib * MIB / sizeof(float);
	printf("saxpy: %zu floats, %lu MiB per array, a = %g\n", n, size_mib,
	       A);

	if (sample_run_ways(&s, mode, n, run_once))
		return 1;
	return sample_finish(&s);
}
