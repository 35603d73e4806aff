// SPDX-License-Identifier: MIT
/*
 * marker.c - API markers for profilers, and hmm_set_name().
 *
 * When a profiler runs the program, it names a tracefs trace_marker file
 * in the environment, HMM_TRACE_MARKER (hmmprof names the one of its own
 * tracefs instance).  libhmm opens it once, when it is loaded, and then
 * writes one line per API event there: allocations and frees, names,
 * launches with the kernel's symbol, prefetches, memcpy/memset,
 * synchronisations, and the API calls that queue work on a stream.  The
 * ring buffer timestamps each line when it is written, with the clock of
 * the driver's tracepoints in the same buffer, so that API calls,
 * kernels and migrations land on one time axis.  The format is
 * documented in docs/hmmprof.md ("API markers").
 *
 * Without HMM_TRACE_MARKER nothing is opened, and each hook costs a test
 * of hmm__marker_fd (and HMM__MARK() the stores that fill its struct on
 * the stack): no call, no clock read, no formatting, no system call.
 *
 * A marker is written with a single write(2) (the kernel takes it whole,
 * so lines of concurrent threads do not interleave), and its failure is
 * ignored: profiling never changes what the library returns, nor errno.
 */
#define _GNU_SOURCE
#include "hmm_private.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MARK_LINE_MAX 1024
#define MARK_NAME_MAX 128

int hmm__marker_fd = -1;

/* The stream whose worker runs the calling thread (0: none). */
static __thread uintptr_t mark_stream;

__attribute__((constructor)) static void marker_init(void)
{
	const char *path = getenv("HMM_TRACE_MARKER");
	int saved = errno;

	if (!path || !*path)
		return;
	hmm__marker_fd = open(path, O_WRONLY | O_CLOEXEC);
	if (hmm__marker_fd < 0)
		hmm__log(HMM_LOG_INFO, "HMM_TRACE_MARKER=%s: %s; no API "
			 "markers", path, strerror(errno));
	errno = saved;
}

/*
 * Appends @s to @buf at *@off, with space, '%', '=' and control
 * characters as %XX, so that a value is one token of the line.
 */
static void put_escaped(char *buf, size_t len, size_t *off, const char *s,
			size_t max)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; s[i] && i < max && *off + 4 < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c == '%' || c == '=' || c == 0x7f) {
			buf[(*off)++] = '%';
			buf[(*off)++] = hex[c >> 4];
			buf[(*off)++] = hex[c & 15];
		} else {
			buf[(*off)++] = (char)c;
		}
	}
	buf[*off] = '\0';
}

static void put(char *buf, size_t len, size_t *off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void put(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*off >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off = *off + (size_t)n < len ? *off + (size_t)n : len - 1;
}

/*
 * " KEY=0xADDR" and where the code at @addr is: " KEY_sym=NAME" when the
 * dynamic symbol table names it, else " KEY_obj=FILE KEY_off=0xOFFSET"
 * (the offset from the object's load address, which a profiler resolves
 * with the file's own symbol table: static functions are not dynamic
 * symbols).
 */
static void put_code(char *buf, size_t len, size_t *off, const char *key,
		     const void *addr)
{
	Dl_info info;

	put(buf, len, off, " %s=%p", key, addr);
	if (!addr || !dladdr(addr, &info))
		return;
	if (info.dli_sname && info.dli_saddr == addr) {
		put(buf, len, off, " %s_sym=", key);
		put_escaped(buf, len, off, info.dli_sname, MARK_NAME_MAX);
		return;
	}
	if (!info.dli_fname || !info.dli_fbase)
		return;
	put(buf, len, off, " %s_obj=", key);
	put_escaped(buf, len, off, info.dli_fname, 4 * MARK_NAME_MAX);
	put(buf, len, off, " %s_off=0x%lx", key,
	    (unsigned long)((uintptr_t)addr - (uintptr_t)info.dli_fbase));
}

/* Writes @line; a full or closed buffer loses it, unseen. */
static void emit(const char *line, size_t n)
{
	ssize_t w = write(hmm__marker_fd, line, n);

	(void)w;
}

void hmm__mark_end(struct hmm__mark *m)
{
	char line[MARK_LINE_MAX];
	size_t off = 0, len = sizeof(line);
	int saved = errno;
	uint64_t ns;

	if (!m->t0 || hmm__marker_fd < 0)
		return;
	ns = hmm__now_ns() - m->t0;
	switch (m->kind) {
	case HMM__MARK_LAUNCH:
		put(line, len, &off, "hmm: launch dev=%d stream=%lu ns=%llu "
		    "grid=%ux%ux%u", m->dev, (unsigned long)mark_stream,
		    (unsigned long long)ns, m->grid.x, m->grid.y, m->grid.z);
		put_code(line, len, &off, "kernel", m->fn);
		break;
	case HMM__MARK_PREFETCH:
		put(line, len, &off, "hmm: prefetch dev=%d stream=%lu ns=%llu "
		    "ptr=0x%lx size=%llu", m->dev, (unsigned long)mark_stream,
		    (unsigned long long)ns, (unsigned long)m->a,
		    (unsigned long long)m->size);
		break;
	case HMM__MARK_MEMOP:
		if (m->memop == HMM__MEMOP_COPY)
			put(line, len, &off, "hmm: memcpy stream=%lu ns=%llu "
			    "ptr=0x%lx src=0x%lx size=%llu",
			    (unsigned long)mark_stream, (unsigned long long)ns,
			    (unsigned long)m->a, (unsigned long)m->b,
			    (unsigned long long)m->size);
		else if (m->memop == HMM__MEMOP_SET)
			put(line, len, &off, "hmm: memset stream=%lu ns=%llu "
			    "ptr=0x%lx size=%llu", (unsigned long)mark_stream,
			    (unsigned long long)ns, (unsigned long)m->a,
			    (unsigned long long)m->size);
		else
			return; /* a prefetch batch: its prefetches say it */
		break;
	case HMM__MARK_CALL:
	case HMM__MARK_SYNC:
		put(line, len, &off, "hmm: %s fn=%s stream=%lu ns=%llu",
		    m->kind == HMM__MARK_SYNC ? "sync" : "call", m->name,
		    (unsigned long)m->stream, (unsigned long long)ns);
		if (m->kind == HMM__MARK_SYNC && m->dev != HMM__MARK_NO_DEV)
			put(line, len, &off, " dev=%d", m->dev);
		if (m->fn)
			put_code(line, len, &off, "kernel", m->fn);
		put_code(line, len, &off, "caller", m->caller);
		break;
	case HMM__MARK_FREE:
		put(line, len, &off, "hmm: free ptr=0x%lx ns=%llu",
		    (unsigned long)m->a, (unsigned long long)ns);
		put_code(line, len, &off, "caller", m->caller);
		break;
	}
	put(line, len, &off, "\n");
	emit(line, off);
	errno = saved;
}

void hmm__mark_alloc(const void *ptr, size_t size, const void *caller)
{
	char line[MARK_LINE_MAX];
	size_t off = 0;

	if (hmm__marker_fd < 0)
		return;
	put(line, sizeof(line), &off, "hmm: alloc ptr=%p size=%zu", ptr, size);
	put_code(line, sizeof(line), &off, "caller", caller);
	put(line, sizeof(line), &off, "\n");
	emit(line, off);
}

void hmm__mark_stream(uintptr_t stream, int dev)
{
	char line[128];
	size_t off = 0;

	if (mark_stream == stream)
		return; /* said already */
	mark_stream = stream;
	if (hmm__marker_fd < 0)
		return;
	put(line, sizeof(line), &off, "hmm: stream stream=%lu dev=%d\n",
	    (unsigned long)stream, dev);
	emit(line, off);
}

HMM_EXPORT int hmm_set_name(const void *ptr, const char *name)
{
	HMM_KEEP_ERRNO();
	char line[MARK_LINE_MAX];
	size_t off = 0;
	int ret;

	if (!ptr || !name || !*name)
		return -EINVAL;
	ret = hmm__mem_check("hmm_set_name", ptr, 1);
	if (ret || hmm__marker_fd < 0)
		return ret;
	put(line, sizeof(line), &off, "hmm: name ptr=%p name=", ptr);
	put_escaped(line, sizeof(line), &off, name, MARK_NAME_MAX);
	put(line, sizeof(line), &off, "\n");
	emit(line, off);
	return 0;
}
