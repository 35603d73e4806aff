// SPDX-License-Identifier: MIT
/*
 * sample_common.c - the helpers every sample shares (sample_common.h).
 */
#define _GNU_SOURCE
#include "sample_common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const sample_modes[] = { "both", "prefetch", "fault", NULL };

/* --- options ------------------------------------------------------------ */

static void usage(const char *name, const char *about,
		  const struct sample_opt *opts)
{
	printf("usage: %s [OPTION]...\n%s\n\nOptions:\n", name, about);
	for (const struct sample_opt *o = opts; o->name; o++) {
		char left[48];

		snprintf(left, sizeof(left), "--%s%s%s", o->name,
			 o->arg ? " " : "", o->arg ? o->arg : "");
		printf("  %-22s %s", left, o->help);
		if (o->type == SAMPLE_OPT_UINT)
			printf(" (%lu to %lu, default %lu)", o->min, o->max,
			       *(unsigned long *)o->value);
		if (o->type == SAMPLE_OPT_CHOICE) {
			printf(" (");
			for (const char *const *c = o->choices; *c; c++)
				printf("%s%s", c == o->choices ? "" : ", ", *c);
			printf("; default %s)", *(const char **)o->value);
		}
		printf("\n");
	}
	printf("  %-22s %s\n", "--inject-error",
	       "corrupt one element of the result before the check, to show that the check catches it");
	printf("  %-22s %s\n", "--help", "this text");
	printf("\nExits 0 when the result is right, 1 when it is not or when something fails, 2 on a bad option.\n");
}

/* A bad command line: one line on stderr, exit status 2. */
__attribute__((format(printf, 2, 3), noreturn))
static void bad_option(const char *name, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "; see %s --help\n", name);
	exit(2);
}

/* Stores @text as the value of @o, or exits 2. */
static void set_value(const char *name, const struct sample_opt *o,
		      const char *text)
{
	char *end;
	unsigned long v;

	switch (o->type) {
	case SAMPLE_OPT_FLAG:
		*(bool *)o->value = true;
		return;
	case SAMPLE_OPT_UINT:
		errno = 0;
		v = strtoul(text, &end, 0);
		if (errno || end == text || *end || text[0] == '-' ||
		    v < o->min || v > o->max)
			bad_option(name, "--%s takes a number from %lu to %lu, not '%s'",
				   o->name, o->min, o->max, text);
		*(unsigned long *)o->value = v;
		return;
	case SAMPLE_OPT_CHOICE:
		for (const char *const *c = o->choices; *c; c++) {
			if (!strcmp(*c, text)) {
				*(const char **)o->value = *c;
				return;
			}
		}
		bad_option(name, "--%s does not take '%s'", o->name, text);
	}
}

static void parse_options(struct sample *s, const char *about,
			  const struct sample_opt *opts, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *value = NULL;
		const struct sample_opt *o;
		size_t len;

		if (strncmp(arg, "--", 2))
			bad_option(s->name, "unexpected argument '%s'", arg);
		arg += 2;
		if (!strcmp(arg, "help")) {
			usage(s->name, about, opts);
			exit(0);
		}
		if (!strcmp(arg, "inject-error")) {
			s->inject_error = true;
			continue;
		}
		len = strcspn(arg, "=");
		for (o = opts; o->name; o++)
			if (strlen(o->name) == len && !strncmp(o->name, arg, len))
				break;
		if (!o->name)
			bad_option(s->name, "unknown option '%s'", argv[i]);
		if (arg[len] == '=')
			value = arg + len + 1;
		if (o->type == SAMPLE_OPT_FLAG) {
			if (value)
				bad_option(s->name, "--%s takes no value", o->name);
		} else if (!value) {
			if (i + 1 == argc)
				bad_option(s->name, "--%s needs a value", o->name);
			value = argv[++i];
		}
		set_value(s->name, o, value);
	}
}

/* --- the run ----------------------------------------------------------- */

/* An empty kernel: launching it starts the device's execution threads. */
static void nop_kernel(struct hmm_dim3 idx, struct hmm_dim3 grid, void *args)
{
}

void sample_init(struct sample *s, const char *name, const char *about,
		 const struct sample_opt *opts, int argc, char **argv)
{
	int n;

	memset(s, 0, sizeof(*s));
	s->name = name;
	parse_options(s, about, opts, argc, argv);

	/* device 0 when there is one, otherwise the host */
	n = hmm_device_count();
	sample_check(s, n, "hmm_device_count",
		     "check that /dev/dri/renderD* can be opened");
	if (n > 0) {
		s->dev = 0;
		sample_check(s, hmm_device_get_info(0, &s->info),
			     "hmm_device_get_info(0)", "is hmmgpu loaded?");
		printf("%s: device 0 (%s, %llu MiB of device memory)\n", name,
		       s->info.name,
		       (unsigned long long)(s->info.mem_total / MIB));
	} else {
		s->dev = HMM_CPU;
		printf("%s: no hmmgpu device: running on the host (HMM_CPU), nothing migrates\n",
		       name);
	}

	sample_check(s, hmm_stream_create(&s->stream, s->dev),
		     "hmm_stream_create", "out of memory or threads?");
	sample_launch_sync(s, nop_kernel, (struct hmm_dim3){ 1, 1, 1 }, NULL);
	sample_stats(s, &s->start);
}

int sample_finish(struct sample *s)
{
	struct hmm_stats end, d;
	char line[512];

	sample_check(s, hmm_stream_destroy(s->stream), "hmm_stream_destroy",
		     "a launch failed");
	sample_stats(s, &end);
	sample_stats_sub(&d, &end, &s->start);
	sample_format_summary(line, sizeof(line), &d);
	printf("%s\n", line);
	return 0;
}

/* --- failures ----------------------------------------------------------- */

void sample_check(const struct sample *s, int err, const char *what,
		  const char *hint)
{
	if (err >= 0)
		return;
	fprintf(stderr, "%s: %s: %s; %s\n", s->name, what, hmm_strerror(err),
		hint);
	exit(1);
}

void *sample_malloc(const struct sample *s, size_t size, const char *what)
{
	void *p = hmm_malloc(size);

	if (!p) {
		fprintf(stderr, "%s: hmm_malloc of %zu MiB for %s: %s; try a smaller size\n",
			s->name, size / MIB, what, hmm_strerror(errno));
		exit(1);
	}
	hmm_set_name(p, what); /* for profilers: hmmprof's allocation table */
	return p;
}

void *sample_devptr(const struct sample *s, const void *ptr)
{
	void *d = hmm_devptr(ptr, s->dev);

	if (!d)
		sample_check(s, -errno, "hmm_devptr",
			     "was the device removed?");
	return d;
}

void sample_launch_sync(const struct sample *s, hmm_kernel_fn kernel,
			struct hmm_dim3 grid, void *args)
{
	sample_check(s, hmm_launch(s->stream, kernel, grid, args),
		     "hmm_launch", "out of memory?");
	sample_check(s, hmm_stream_synchronize(s->stream),
		     "hmm_stream_synchronize", "was the device removed?");
}

int sample_mismatch(const struct sample *s, const char *what, size_t index,
		    double got, double want)
{
	fprintf(stderr, "%s: MISMATCH: %s[%zu] is %.17g, expected %.17g\n",
		s->name, what, index, got, want);
	return 1;
}

/* --- timing and counters ------------------------------------------------ */

double sample_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void sample_stats(const struct sample *s, struct hmm_stats *st)
{
	sample_check(s, hmm_get_stats(s->dev, st), "hmm_get_stats",
		     "was the device removed?");
}

void sample_stats_sub(struct hmm_stats *d, const struct hmm_stats *b,
		      const struct hmm_stats *a)
{
	/* struct hmm_stats is all uint64_t: subtract it as an array */
	const uint64_t *pb = (const uint64_t *)b, *pa = (const uint64_t *)a;
	uint64_t *pd = (uint64_t *)d;

	_Static_assert(sizeof(struct hmm_stats) % sizeof(uint64_t) == 0,
		       "struct hmm_stats is made of uint64_t");
	for (size_t i = 0; i < sizeof(*d) / sizeof(uint64_t); i++)
		pd[i] = pb[i] - pa[i];
}

double sample_mib(const struct hmm_stats *st, enum hmm_dir dir,
		  enum hmm_cause cause)
{
	return (double)st->bytes[dir][cause] / MIB;
}

uint64_t sample_total_bytes(const struct hmm_stats *st, enum hmm_dir dir)
{
	uint64_t sum = 0;

	for (int c = 0; c < HMM_CAUSE_COUNT; c++)
		sum += st->bytes[dir][c];
	return sum;
}

double sample_total_mib(const struct hmm_stats *st, enum hmm_dir dir)
{
	return (double)sample_total_bytes(st, dir) / MIB;
}

void sample_format_summary(char *buf, size_t len, const struct hmm_stats *d)
{
	const enum hmm_dir dev = HMM_DIR_TO_DEVICE, host = HMM_DIR_TO_HOST;

	snprintf(buf, len,
		 "summary: cpu_faults=%llu device_faults=%llu to_device=%.2f MiB (prefetch %.2f, fault %.2f, density %.2f, peer %.2f) to_host=%.2f MiB (prefetch %.2f, cpu_fault %.2f, eviction %.2f) evictions=%llu",
		 (unsigned long long)d->cpu_faults,
		 (unsigned long long)d->device_faults,
		 sample_total_mib(d, dev),
		 sample_mib(d, dev, HMM_CAUSE_PREFETCH),
		 sample_mib(d, dev, HMM_CAUSE_DEVICE_FAULT),
		 sample_mib(d, dev, HMM_CAUSE_DENSITY),
		 sample_mib(d, dev, HMM_CAUSE_PEER),
		 sample_total_mib(d, host),
		 sample_mib(d, host, HMM_CAUSE_PREFETCH),
		 sample_mib(d, host, HMM_CAUSE_CPU_FAULT),
		 sample_mib(d, host, HMM_CAUSE_EVICTION),
		 (unsigned long long)d->evictions);
}

/* --- two ways ----------------------------------------------------------- */

void sample_print_way(const struct sample_way *w)
{
	const struct hmm_stats *d = &w->delta;
	const enum hmm_dir dev = HMM_DIR_TO_DEVICE;

	printf("  %-17s prefetch %8.1f ms  kernel %8.1f ms  check %8.1f ms | device_faults=%llu, to device %.2f MiB by prefetch + %.2f MiB on faults, cpu_faults=%llu\n",
	       w->name, w->prefetch_ms, w->kernel_ms, w->check_ms,
	       (unsigned long long)d->device_faults,
	       sample_mib(d, dev, HMM_CAUSE_PREFETCH),
	       sample_mib(d, dev, HMM_CAUSE_DEVICE_FAULT) +
		       sample_mib(d, dev, HMM_CAUSE_DENSITY),
	       (unsigned long long)d->cpu_faults);
}

void sample_way_begin(const struct sample *s, struct sample_way *w,
		      bool prefetch)
{
	w->name = prefetch ? "with prefetch" : "without prefetch";
	sample_stats(s, &w->start);
	w->mark_ms = sample_now_ms();
}

void sample_way_end_phase(const struct sample *s, struct sample_way *w,
			  enum sample_phase phase)
{
	double now = sample_now_ms(), ms = now - w->mark_ms;
	struct hmm_stats end;

	w->mark_ms = now;
	switch (phase) {
	case SAMPLE_PHASE_PREFETCH:
		w->prefetch_ms = ms;
		break;
	case SAMPLE_PHASE_KERNEL:
		w->kernel_ms = ms;
		break;
	case SAMPLE_PHASE_CHECK:
		w->check_ms = ms;
		sample_stats(s, &end);
		sample_stats_sub(&w->delta, &end, &w->start);
		sample_print_way(w);
		break;
	}
}

void sample_compare_ways(const struct sample_way *with,
			 const struct sample_way *without)
{
	double a = with->prefetch_ms + with->kernel_ms;
	double b = without->prefetch_ms + without->kernel_ms;

	printf("  prefetch + kernel: %.1f ms with prefetch, %.1f ms without (%.2fx); device faults: %llu with, %llu without\n",
	       a, b, a > 0 ? b / a : 0.0,
	       (unsigned long long)with->delta.device_faults,
	       (unsigned long long)without->delta.device_faults);
}

int sample_run_ways(struct sample *s, const char *mode, size_t n,
		    sample_way_fn *run)
{
	struct sample_way with = { 0 }, without = { 0 };

	if (strcmp(mode, "fault") && run(s, n, true, &with))
		return 1;
	if (strcmp(mode, "prefetch") && run(s, n, false, &without))
		return 1;
	if (!strcmp(mode, "both"))
		sample_compare_ways(&with, &without);
	return 0;
}
