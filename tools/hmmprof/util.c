// SPDX-License-Identifier: MIT
/*
 * util.c - messages, clocks, unit scaling and names for hmmprof.
 */
#define _GNU_SOURCE
#include "hmmprof.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *hp_prog = "hmmprof";

/* "hmmprof: @kind@message" on one line of stderr. */
static void message(const char *kind, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: %s", hp_prog, kind);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void hp_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	message("", fmt, ap);
	va_end(ap);
}

void hp_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	message("warning: ", fmt, ap);
	va_end(ap);
}

uint64_t hp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Three significant digits: 1.23, 12.3, 123. */
static char *fmt_scaled(char *buf, size_t len, double v, const char *unit)
{
	if (v < 10)
		snprintf(buf, len, "%.2f %s", v, unit);
	else if (v < 100)
		snprintf(buf, len, "%.1f %s", v, unit);
	else
		snprintf(buf, len, "%.0f %s", v, unit);
	return buf;
}

char *hp_fmt_bytes(char *buf, size_t len, uint64_t bytes)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
		return buf;
	}
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	return fmt_scaled(buf, len, v, units[u]);
}

char *hp_fmt_ns(char *buf, size_t len, uint64_t ns)
{
	if (ns < 1000) {
		snprintf(buf, len, "%llu ns", (unsigned long long)ns);
		return buf;
	}
	if (ns < 1000000)
		return fmt_scaled(buf, len, ns / 1e3, "µs");
	if (ns < 1000000000)
		return fmt_scaled(buf, len, ns / 1e6, "ms");
	return fmt_scaled(buf, len, ns / 1e9, "s");
}

char *hp_fmt_rate(char *buf, size_t len, double bytes_per_s)
{
	char b[32];

	if (bytes_per_s < 0)
		bytes_per_s = 0;
	hp_fmt_bytes(b, sizeof(b), (uint64_t)(bytes_per_s + 0.5));
	snprintf(buf, len, "%s/s", b);
	return buf;
}

char *hp_fmt_count(char *buf, size_t len, uint64_t n)
{
	snprintf(buf, len, "%llu", (unsigned long long)n);
	return buf;
}

/*
 * The driver's causes, named as libhmm names them (enum hmm_cause):
 * HMMGPU_CAUSE_EXPLICIT is a prefetch (hmm_prefetch, the MIGRATE ioctl),
 * HMMGPU_CAUSE_PREFETCH the density prefetch after a device fault.
 */
const char *hp_cause_label(int cause)
{
	switch (cause) {
	case HMMGPU_CAUSE_EXPLICIT: return "prefetch";
	case HMMGPU_CAUSE_CPU_FAULT: return "CPU fault";
	case HMMGPU_CAUSE_EVICTION: return "eviction";
	case HMMGPU_CAUSE_PEER: return "peer";
	case HMMGPU_CAUSE_DEVICE_FAULT: return "device fault";
	case HMMGPU_CAUSE_REMOVAL: return "removal";
	case HMMGPU_CAUSE_PREFETCH: return "density prefetch";
	default: return "other";
	}
}

const char *hp_cause_key(int cause)
{
	switch (cause) {
	case HMMGPU_CAUSE_EXPLICIT: return "prefetch";
	case HMMGPU_CAUSE_CPU_FAULT: return "cpu_fault";
	case HMMGPU_CAUSE_EVICTION: return "eviction";
	case HMMGPU_CAUSE_PEER: return "peer";
	case HMMGPU_CAUSE_DEVICE_FAULT: return "device_fault";
	case HMMGPU_CAUSE_REMOVAL: return "removal";
	case HMMGPU_CAUSE_PREFETCH: return "density";
	default: return "other";
	}
}

const int hp_cause_order[] = {
	HMMGPU_CAUSE_EXPLICIT, HMMGPU_CAUSE_DEVICE_FAULT,
	HMMGPU_CAUSE_PREFETCH, HMMGPU_CAUSE_CPU_FAULT,
	HMMGPU_CAUSE_EVICTION, HMMGPU_CAUSE_PEER, HMMGPU_CAUSE_REMOVAL,
};
const int hp_ncause_order = sizeof(hp_cause_order) / sizeof(hp_cause_order[0]);

const char *hp_dir_label(int dir)
{
	return dir == HP_TO_DEVICE ? "host to device" : "device to host";
}

const char *hp_dir_key(int dir)
{
	return dir == HP_TO_DEVICE ? "to_device" : "to_host";
}

int hp_grow(void *p, size_t *cap, size_t n, size_t size)
{
	void **pp = p;
	size_t ncap;
	void *q;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 256;
	q = realloc(*pp, ncap * size);
	if (!q)
		return -ENOMEM;
	*pp = q;
	*cap = ncap;
	return 0;
}
