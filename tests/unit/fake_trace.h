/* SPDX-License-Identifier: MIT */
/*
 * fake_trace.h - ring-buffer records of the hmmgpu events and of libhmm's
 * markers, made without a kernel, for hmmprof's unit tests.
 *
 * A libtraceevent handle holds the events' formats as the test VM's 7.3
 * kernel prints them in tracefs (copied below); a record is laid out by
 * those formats, its fields set by name, and handed to hp_trace_decode(),
 * which reads it as it reads a record of the real ring buffer.
 */
#ifndef FAKE_TRACE_H
#define FAKE_TRACE_H

#include "harness.h"

#include "hmmprof.h"

#include <stdlib.h>
#include <string.h>

#include <event-parse.h>

static const struct {
	const char *sys, *format;
} fake_formats[] = {
	/* events/hmmgpu/hmmgpu_migrate_batch/format */
	{ "hmmgpu",
	"name: hmmgpu_migrate_batch\n"
	"ID: 561\n"
	"format:\n"
	"\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
	"\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n"
	"\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n"
	"\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n"
	"\n"
	"\tfield:unsigned int dev;\toffset:8;\tsize:4;\tsigned:0;\n"
	"\tfield:int dir;\toffset:12;\tsize:4;\tsigned:1;\n"
	"\tfield:int cause;\toffset:16;\tsize:4;\tsigned:1;\n"
	"\tfield:unsigned long start;\toffset:24;\tsize:8;\tsigned:0;\n"
	"\tfield:unsigned long npages;\toffset:32;\tsize:8;\tsigned:0;\n"
	"\tfield:unsigned long moved;\toffset:40;\tsize:8;\tsigned:0;\n"
	"\tfield:unsigned long failed;\toffset:48;\tsize:8;\tsigned:0;\n"
	"\tfield:unsigned long peer;\toffset:56;\tsize:8;\tsigned:0;\n"
	"\tfield:u64 ns;\toffset:64;\tsize:8;\tsigned:0;\n"
	"\n"
	"print fmt: \"dev=%u %s cause=%s start=0x%lx npages=%lu moved=%lu failed=%lu peer=%lu ns=%llu\", REC->dev, REC->dir ? \"to_system\" : \"to_device\", __print_symbolic(REC->cause, { 0, \"explicit\" }, { 1, \"cpu_fault\" }, { 2, \"eviction\" }, { 3, \"peer\" }, { 4, \"device_fault\" }, { 5, \"removal\" }, { 6, \"prefetch\" }), REC->start, REC->npages, REC->moved, REC->failed, REC->peer, REC->ns\n" },
	/* events/hmmgpu/hmmgpu_cpu_fault/format */
	{ "hmmgpu",
	"name: hmmgpu_cpu_fault\n"
	"ID: 560\n"
	"format:\n"
	"\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
	"\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n"
	"\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n"
	"\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n"
	"\n"
	"\tfield:unsigned int dev;\toffset:8;\tsize:4;\tsigned:0;\n"
	"\tfield:unsigned long addr;\toffset:16;\tsize:8;\tsigned:0;\n"
	"\tfield:unsigned long start;\toffset:24;\tsize:8;\tsigned:0;\n"
	"\tfield:unsigned long npages;\toffset:32;\tsize:8;\tsigned:0;\n"
	"\tfield:unsigned long moved;\toffset:40;\tsize:8;\tsigned:0;\n"
	"\tfield:u64 ns;\toffset:48;\tsize:8;\tsigned:0;\n"
	"\n"
	"print fmt: \"dev=%u addr=0x%lx start=0x%lx npages=%lu moved=%lu ns=%llu\", REC->dev, REC->addr, REC->start, REC->npages, REC->moved, REC->ns\n" },
	/* events/hmmgpu/hmmgpu_device_fault/format */
	{ "hmmgpu",
	"name: hmmgpu_device_fault\n"
	"ID: 559\n"
	"format:\n"
	"\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
	"\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n"
	"\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n"
	"\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n"
	"\n"
	"\tfield:unsigned int dev;\toffset:8;\tsize:4;\tsigned:0;\n"
	"\tfield:unsigned long addr;\toffset:16;\tsize:8;\tsigned:0;\n"
	"\tfield:unsigned long start;\toffset:24;\tsize:8;\tsigned:0;\n"
	"\tfield:unsigned long npages;\toffset:32;\tsize:8;\tsigned:0;\n"
	"\tfield:unsigned long moved;\toffset:40;\tsize:8;\tsigned:0;\n"
	"\tfield:int remote;\toffset:48;\tsize:4;\tsigned:1;\n"
	"\tfield:u64 ns;\toffset:56;\tsize:8;\tsigned:0;\n"
	"\n"
	"print fmt: \"dev=%u addr=0x%lx start=0x%lx npages=%lu moved=%lu %s ns=%llu\", REC->dev, REC->addr, REC->start, REC->npages, REC->moved, REC->remote ? \"remote\" : \"migrate\", REC->ns\n" },
	/* events/hmmgpu/hmmgpu_evicted/format */
	{ "hmmgpu",
	"name: hmmgpu_evicted\n"
	"ID: 558\n"
	"format:\n"
	"\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
	"\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n"
	"\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n"
	"\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n"
	"\n"
	"\tfield:unsigned int dev;\toffset:8;\tsize:4;\tsigned:0;\n"
	"\tfield:int cause;\toffset:12;\tsize:4;\tsigned:1;\n"
	"\tfield:pid_t tgid;\toffset:16;\tsize:4;\tsigned:1;\n"
	"\tfield:unsigned long start;\toffset:24;\tsize:8;\tsigned:0;\n"
	"\tfield:unsigned long npages;\toffset:32;\tsize:8;\tsigned:0;\n"
	"\n"
	"print fmt: \"dev=%u cause=%s tgid=%d start=0x%lx npages=%lu\", REC->dev, __print_symbolic(REC->cause, { 2, \"eviction\" }, { 5, \"removal\" }), REC->tgid, REC->start, REC->npages\n" },
	/* events/ftrace/print/format */
	{ "ftrace",
	"name: print\n"
	"ID: 5\n"
	"format:\n"
	"\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
	"\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n"
	"\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n"
	"\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n"
	"\n"
	"\tfield:unsigned long ip;\toffset:8;\tsize:8;\tsigned:0;\n"
	"\tfield:char buf[];\toffset:16;\tsize:0;\tsigned:0;\n"
	"\n"
	"print fmt: \"%ps: %s\", (void *)REC->ip, REC->buf\n" },
};

struct fake_trace {
	struct tep_handle *tep;
	struct hp_formats *f;
};

/* Loads fake_formats[] into @ft and finds hmmprof's events in it. */
static inline void fake_trace_init(struct fake_trace *ft)
{
	char why[256];

	ft->tep = tep_alloc();
	if (!ft->tep)
		HMMT_FAIL("tep_alloc failed");
	for (size_t i = 0; i < sizeof(fake_formats) / sizeof(*fake_formats);
	     i++) {
		const char *s = fake_formats[i].format;

		if (tep_parse_event(ft->tep, s, strlen(s), fake_formats[i].sys))
			HMMT_FAIL("format %zu does not parse", i);
	}
	ft->f = hp_formats_new(ft->tep, why, sizeof(why));
	if (!ft->f)
		HMMT_FAIL("hp_formats_new: %s", why);
}

static inline void fake_trace_free(struct fake_trace *ft)
{
	hp_formats_free(ft->f);
	tep_free(ft->tep);
}

/* Writes @v into the @size bytes at @p (the host's byte order). */
static inline void fake_put(uint8_t *p, int size, uint64_t v)
{
	uint8_t b1 = (uint8_t)v;
	uint16_t b2 = (uint16_t)v;
	uint32_t b4 = (uint32_t)v;

	switch (size) {
	case 1: memcpy(p, &b1, 1); break;
	case 2: memcpy(p, &b2, 2); break;
	case 4: memcpy(p, &b4, 4); break;
	case 8: memcpy(p, &v, 8); break;
	default: HMMT_FAIL("field of %d bytes", size);
	}
}

/*
 * Decodes the record that thread @tid leaves at @t_ns for @what:
 * "EVENT: field=value ..." for an hmmgpu event (values as strtoull()
 * reads them; an event the formats lack gets a type no format has), or
 * "tracing_mark_write: TEXT" for a write of TEXT to trace_marker.
 */
static inline enum hp_rec fake_record(struct fake_trace *ft, int tid,
				      uint64_t t_ns, const char *what,
				      struct hp_event *ev, struct hp_marker *m)
{
	static const char mark[] = "tracing_mark_write: ";
	struct tep_format_field *type, *pid, *f;
	struct tep_event *event, *print;
	struct tep_record rec;
	uint8_t data[8192] __attribute__((aligned(8)));
	char name[128], key[64];
	const char *p = strchr(what, ':');
	bool is_mark;
	int size;

	if (!p || (size_t)(p - what) >= sizeof(name))
		HMMT_FAIL("no event name in '%s'", what);
	memcpy(name, what, (size_t)(p - what));
	name[p - what] = '\0';
	memset(data, 0, sizeof(data));
	print = tep_find_event_by_name(ft->tep, "ftrace", "print");
	is_mark = !strncmp(what, mark, sizeof(mark) - 1);
	event = is_mark ? print :
		tep_find_event_by_name(ft->tep, "hmmgpu", name);
	/* the common fields are the same in every format */
	type = tep_find_common_field(print, "common_type");
	pid = tep_find_common_field(print, "common_pid");
	fake_put(data + type->offset, type->size,
		 event ? (uint64_t)event->id : 0xfffe);
	fake_put(data + pid->offset, pid->size, (uint64_t)tid);
	size = pid->offset + pid->size;
	if (is_mark) {
		const char *text = what + sizeof(mark) - 1;

		f = tep_find_field(event, "buf");
		if (f->offset + strlen(text) + 2 > sizeof(data))
			HMMT_FAIL("marker too long");
		/* trace_marker adds the newline */
		memcpy(data + f->offset, text, strlen(text));
		data[f->offset + strlen(text)] = '\n';
		size = f->offset + (int)strlen(text) + 2;
	} else if (event) {
		for (f = event->format.fields; f; f = f->next)
			if (f->offset + f->size > size)
				size = f->offset + f->size;
		for (p++; *p;) {
			size_t n;
			const char *eq;

			p += strspn(p, " ");
			n = strcspn(p, " ");
			if (!n)
				break;
			eq = memchr(p, '=', n);
			if (!eq || (size_t)(eq - p) >= sizeof(key))
				HMMT_FAIL("not field=value: '%.*s'", (int)n, p);
			memcpy(key, p, (size_t)(eq - p));
			key[eq - p] = '\0';
			f = tep_find_field(event, key);
			if (!f)
				HMMT_FAIL("%s has no field %s", name, key);
			fake_put(data + f->offset, f->size,
				 strtoull(eq + 1, NULL, 0));
			p += n;
		}
	}
	memset(&rec, 0, sizeof(rec));
	rec.ts = t_ns;
	rec.size = size;
	rec.data = data;
	return hp_trace_decode(ft->f, &rec, ev, m);
}

#endif /* FAKE_TRACE_H */
