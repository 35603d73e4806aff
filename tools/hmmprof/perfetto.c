// SPDX-License-Identifier: MIT
/*
 * perfetto.c - the profile as a timeline in the Chrome trace-event JSON
 * format, which ui.perfetto.dev and chrome://tracing open.
 *
 * Tracks (docs/hmmprof.md, "Timeline"):
 *
 *  - the program's process, a track per thread: the API markers of
 *    libhmm (kernel launches on their stream's worker thread, named by
 *    the kernel function; prefetches, memcpy/memset, synchronisations and
 *    the calls that queue work on the threads that made them) and the CPU
 *    faults on the threads that took them;
 *  - a process per device ("hmmgpu N"): migration batches and device
 *    faults, each on as many lanes as were busy at once (slices on one
 *    track must nest), and two counters: the bytes of the program on the
 *    device, and the bytes of batches in flight.
 *
 * Every time is the trace buffer's, relative to the program's start, so
 * API calls, kernels and migrations share one axis.  Slices of one track
 * are written in time order and properly nested: a slice that would
 * overlap the end of the one it starts in (times are rounded to the
 * microsecond by the trace) is cut at that end.
 */
#define _GNU_SOURCE
#include "hmmprof.h"

#include <stdlib.h>
#include <string.h>

/* Pseudo process ids of the devices: above any kernel pid (pid_max). */
#define DEV_PID_BASE 0x40000000
/* Device track thread ids: migration lanes, then device fault lanes. */
#define TID_MIGRATION 1
#define TID_FAULT 1001
#define LANES_MAX 64

struct slice {
	uint64_t ts, dur;     /* ns since the program started */
	int32_t pid, tid;
	const char *name;
	const char *cat;
	char args[320];       /* JSON members, without braces */
};

struct slices {
	struct slice *v;
	size_t n, cap;
};

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* @s as the inside of a JSON string, into @buf. */
static const char *json_escape(char *buf, size_t len, const char *s)
{
	size_t o = 0;

	for (; s && *s && o + 7 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)snprintf(buf + o, len - o, "\\u%04x", c);
		} else {
			buf[o++] = (char)c;
		}
	}
	buf[o] = '\0';
	return buf;
}

static struct slice *slice_add(struct slices *s)
{
	if (hp_grow(&s->v, &s->cap, s->n, sizeof(*s->v)))
		return NULL;
	memset(&s->v[s->n], 0, sizeof(s->v[0]));
	return &s->v[s->n++];
}

static void ts_out(FILE *f, const char *key, uint64_t ns)
{
	fprintf(f, "\"%s\":%llu.%03llu", key, (unsigned long long)(ns / 1000),
		(unsigned long long)(ns % 1000));
}

static int cmp_slice(const void *x, const void *y)
{
	const struct slice *a = x, *b = y;

	if (a->pid != b->pid)
		return a->pid < b->pid ? -1 : 1;
	if (a->tid != b->tid)
		return a->tid < b->tid ? -1 : 1;
	if (a->ts != b->ts)
		return a->ts < b->ts ? -1 : 1;
	return (a->dur < b->dur) - (a->dur > b->dur); /* outer first */
}

/* Cuts slices that overlap the end of their parent, track by track. */
static void nest(struct slices *s)
{
	uint64_t stack[128];
	size_t depth = 0;

	qsort(s->v, s->n, sizeof(*s->v), cmp_slice);
	for (size_t i = 0; i < s->n; i++) {
		struct slice *sl = &s->v[i];

		if (i && (sl->pid != s->v[i - 1].pid ||
			  sl->tid != s->v[i - 1].tid))
			depth = 0;
		while (depth && stack[depth - 1] <= sl->ts)
			depth--;
		if (depth && sl->ts + sl->dur > stack[depth - 1])
			sl->dur = stack[depth - 1] - sl->ts;
		if (depth < sizeof(stack) / sizeof(*stack))
			stack[depth++] = sl->ts + sl->dur;
	}
}

/* The lane of a slice [@ts, @end) among @lanes (their ends): first free. */
static int32_t lane_of(uint64_t *lanes, int *nlanes, uint64_t ts,
		       uint64_t end)
{
	int i;

	for (i = 0; i < *nlanes; i++)
		if (lanes[i] <= ts)
			break;
	if (i == *nlanes) {
		if (*nlanes == LANES_MAX)
			i = LANES_MAX - 1; /* nest() cuts what overlaps */
		else
			(*nlanes)++;
	}
	lanes[i] = end;
	return i;
}

static const char *alloc_name(const struct hp_profile *p, uint32_t alloc,
			      char *buf, size_t len)
{
	char lb[32], esc[200];

	if (!alloc || alloc > p->nallocs)
		return "";
	snprintf(buf, len, ",\"allocation\":\"%s\",\"allocation_id\":%u",
		 json_escape(esc, sizeof(esc),
			     hp_alloc_label(&p->allocs[alloc - 1], lb,
					    sizeof(lb))), alloc - 1);
	return buf;
}

static uint64_t start_of(uint64_t end, uint64_t ns)
{
	return end > ns ? end - ns : 0;
}

static void add_marks(struct slices *s, const struct hp_profile *p)
{
	char an[256], esc[200], esc2[200];

	for (size_t i = 0; i < p->nmarks; i++) {
		const struct hp_mark *m = &p->marks[i];
		struct slice *sl;

		if (m->kind == HP_MK_STREAM || m->kind == HP_MK_NAME ||
		    m->kind == HP_MK_ALLOC)
			continue;
		sl = slice_add(s);
		if (!sl)
			return;
		sl->ts = start_of(m->t_ns, m->ns);
		sl->dur = m->ns;
		sl->pid = m->pid;
		sl->tid = m->tid;
		sl->cat = "api";
		alloc_name(p, m->alloc, an, sizeof(an));
		switch (m->kind) {
		case HP_MK_LAUNCH:
			sl->cat = "kernel";
			sl->name = m->kernel ? m->kernel : "kernel";
			snprintf(sl->args, sizeof(sl->args),
				 "\"device\":%d,\"stream\":%llu,"
				 "\"grid\":\"%ux%ux%u\"", m->dev,
				 (unsigned long long)m->stream, m->grid[0],
				 m->grid[1], m->grid[2]);
			break;
		case HP_MK_PREFETCH:
			sl->name = m->dev >= 0 ? "prefetch to device" :
						 "prefetch to host";
			snprintf(sl->args, sizeof(sl->args),
				 "\"device\":%d,\"stream\":%llu,\"ptr\":"
				 "\"0x%llx\",\"bytes\":%llu%s", m->dev,
				 (unsigned long long)m->stream,
				 (unsigned long long)m->ptr,
				 (unsigned long long)m->size, an);
			break;
		case HP_MK_MEMCPY:
		case HP_MK_MEMSET:
			sl->name = m->kind == HP_MK_MEMCPY ? "hmm_memcpy" :
							     "hmm_memset";
			snprintf(sl->args, sizeof(sl->args),
				 "\"stream\":%llu,\"ptr\":\"0x%llx\","
				 "\"bytes\":%llu%s",
				 (unsigned long long)m->stream,
				 (unsigned long long)m->ptr,
				 (unsigned long long)m->size, an);
			break;
		case HP_MK_FREE:
			sl->name = "hmm_free";
			snprintf(sl->args, sizeof(sl->args),
				 "\"ptr\":\"0x%llx\",\"site\":\"%s\"%s",
				 (unsigned long long)m->ptr,
				 json_escape(esc, sizeof(esc), m->site), an);
			break;
		default: /* call, sync */
			sl->name = m->what ? m->what : hp_mark_kind_key(m->kind);
			snprintf(sl->args, sizeof(sl->args),
				 "\"stream\":%llu,\"site\":\"%s\"%s%s%s",
				 (unsigned long long)m->stream,
				 json_escape(esc, sizeof(esc), m->site),
				 m->kernel ? ",\"kernel\":\"" : "",
				 m->kernel ? json_escape(esc2, sizeof(esc2),
							 m->kernel) : "",
				 m->kernel ? "\"" : "");
			break;
		}
	}
}

/* Per device: lanes, and the counter steps. */
struct dev_state {
	uint64_t mig_lanes[LANES_MAX], flt_lanes[LANES_MAX];
	int nmig, nflt;
	bool used;
};

struct step {
	uint64_t ts;
	int64_t delta;
	int32_t dev;
	uint8_t which; /* 0: on the device, 1: in flight */
};

static int cmp_step(const void *x, const void *y)
{
	const struct step *a = x, *b = y;

	if (a->dev != b->dev)
		return a->dev < b->dev ? -1 : 1;
	if (a->which != b->which)
		return a->which < b->which ? -1 : 1;
	return (a->ts > b->ts) - (a->ts < b->ts);
}

static void add_events(struct slices *s, const struct hp_profile *p,
		       struct dev_state *ds, struct step **steps,
		       size_t *nsteps)
{
	uint64_t ps = p->page_size;
	size_t cap = 0;
	char an[256];

	for (size_t i = 0; i < p->nev; i++) {
		const struct hp_event *ev = &p->ev[i];
		uint64_t ts = start_of(ev->t_ns, ev->ns);
		struct dev_state *d = &ds[ev->dev];
		struct slice *sl;
		int64_t bytes = (int64_t)((uint64_t)ev->moved * ps);

		if (ev->type == HP_EV_EVICTED)
			continue;
		if (ev->type == HP_EV_BATCH && !ev->moved && !ev->failed)
			continue;
		sl = slice_add(s);
		if (!sl)
			return;
		sl->ts = ts;
		sl->dur = ev->ns;
		alloc_name(p, ev->alloc, an, sizeof(an));
		switch (ev->type) {
		case HP_EV_CPU_FAULT:
			/* on the thread that took it */
			sl->pid = ev->pid;
			sl->tid = ev->tid;
			sl->cat = "fault";
			sl->name = "CPU fault";
			snprintf(sl->args, sizeof(sl->args),
				 "\"device\":%u,\"addr\":\"0x%llx\","
				 "\"bytes\":%llu%s", ev->dev,
				 (unsigned long long)ev->addr,
				 (unsigned long long)bytes, an);
			break;
		case HP_EV_DEVICE_FAULT:
			d->used = true;
			sl->pid = DEV_PID_BASE + ev->dev;
			sl->tid = TID_FAULT + lane_of(d->flt_lanes, &d->nflt,
						      ts, ev->t_ns);
			sl->cat = "fault";
			sl->name = "device fault";
			snprintf(sl->args, sizeof(sl->args),
				 "\"addr\":\"0x%llx\",\"tid\":%d,"
				 "\"remote\":%s%s",
				 (unsigned long long)ev->addr, ev->tid,
				 ev->remote ? "true" : "false", an);
			break;
		default:
			d->used = true;
			sl->pid = DEV_PID_BASE + ev->dev;
			sl->tid = TID_MIGRATION + lane_of(d->mig_lanes, &d->nmig,
							  ts, ev->t_ns);
			sl->cat = "migration";
			sl->name = ev->dir == HP_TO_DEVICE ?
					   "to device" : "to host";
			snprintf(sl->args, sizeof(sl->args),
				 "\"cause\":\"%s\",\"start\":\"0x%llx\","
				 "\"bytes\":%llu,\"pages\":%u,\"failed\":%u,"
				 "\"tid\":%d%s", hp_cause_key(ev->cause),
				 (unsigned long long)ev->start,
				 (unsigned long long)bytes, ev->moved,
				 ev->failed, ev->tid, an);
			break;
		}
		if (ev->type == HP_EV_DEVICE_FAULT || !bytes)
			continue;
		/* the counters: bytes on the device, bytes in flight */
		if (hp_grow(steps, &cap, *nsteps + 2, sizeof(**steps)))
			continue;
		(*steps)[(*nsteps)++] = (struct step){
			.ts = ev->t_ns, .dev = ev->dev, .which = 0,
			.delta = ev->dir == HP_TO_DEVICE ? bytes : -bytes,
		};
		(*steps)[(*nsteps)++] = (struct step){
			.ts = ts, .dev = ev->dev, .which = 1, .delta = bytes,
		};
		if (hp_grow(steps, &cap, *nsteps + 1, sizeof(**steps)))
			continue;
		(*steps)[(*nsteps)++] = (struct step){
			.ts = ev->t_ns, .dev = ev->dev, .which = 1,
			.delta = -bytes,
		};
	}
}

static void meta(FILE *f, bool *first, const char *what, int32_t pid,
		 int32_t tid, const char *key, const char *value, long num)
{
	fprintf(f, "%s\n{\"ph\":\"M\",\"name\":\"%s\",\"pid\":%d,\"tid\":%d,"
		"\"args\":{\"%s\":", *first ? "" : ",", what, pid, tid, key);
	if (value)
		json_str(f, value);
	else
		fprintf(f, "%ld", num);
	fputs("}}", f);
	*first = false;
}

/* Names of the program's processes and threads, and the device tracks. */
static void metadata(FILE *f, bool *first, const struct hp_profile *p,
		     const struct slices *s, const struct dev_state *ds)
{
	const char *prog = p->argv && p->argv[0] ? p->argv[0] : "program";
	char name[96];

	if (strrchr(prog, '/'))
		prog = strrchr(prog, '/') + 1;
	meta(f, first, "process_name", p->pid, p->pid, "name", prog, 0);
	meta(f, first, "process_sort_index", p->pid, p->pid, "sort_index",
	     NULL, 0);
	meta(f, first, "thread_name", p->pid, p->pid, "name", "main", 0);
	/* its children: the slices are sorted by pid */
	for (size_t i = 0; i < s->n; i++) {
		int32_t pid = s->v[i].pid;

		if (pid == p->pid || pid >= DEV_PID_BASE ||
		    (i && s->v[i - 1].pid == pid))
			continue;
		snprintf(name, sizeof(name), "%s (child %d)", prog, pid);
		meta(f, first, "process_name", pid, pid, "name", name, 0);
	}
	for (size_t i = 0; i < p->nmarks; i++) {
		const struct hp_mark *m = &p->marks[i];

		if (m->kind != HP_MK_STREAM)
			continue;
		snprintf(name, sizeof(name), "stream %llu (device %d)",
			 (unsigned long long)m->stream, m->dev);
		meta(f, first, "thread_name", m->pid, m->tid, "name", name, 0);
	}
	for (int d = 0; d < HP_MAX_DEVICES; d++) {
		if (!ds[d].used)
			continue;
		snprintf(name, sizeof(name), "hmmgpu %d", d);
		meta(f, first, "process_name", DEV_PID_BASE + d, 0, "name",
		     name, 0);
		meta(f, first, "process_sort_index", DEV_PID_BASE + d, 0,
		     "sort_index", NULL, 1 + d);
		for (int l = 0; l < ds[d].nmig; l++) {
			snprintf(name, sizeof(name), "migrations %d", l);
			meta(f, first, "thread_name", DEV_PID_BASE + d,
			     TID_MIGRATION + l, "name", name, 0);
		}
		for (int l = 0; l < ds[d].nflt; l++) {
			snprintf(name, sizeof(name), "device faults %d", l);
			meta(f, first, "thread_name", DEV_PID_BASE + d,
			     TID_FAULT + l, "name", name, 0);
		}
	}
}

void hp_perfetto(FILE *f, struct hp_profile *p)
{
	struct dev_state ds[HP_MAX_DEVICES];
	struct slices s = { 0 };
	struct step *steps = NULL;
	size_t nsteps = 0;
	bool first = true;

	memset(ds, 0, sizeof(ds));
	/* the events are in time order (hp_profile_finish()): lanes need it */
	add_events(&s, p, ds, &steps, &nsteps);
	add_marks(&s, p);
	nest(&s);

	fputs("{\"displayTimeUnit\":\"ns\",\"otherData\":{\"tool\":"
	      "\"hmmprof\",\"clock\":\"CLOCK_MONOTONIC, 0 = program start\"},"
	      "\n\"traceEvents\":[", f);
	metadata(f, &first, p, &s, ds);
	for (size_t i = 0; i < s.n; i++) {
		const struct slice *sl = &s.v[i];

		fprintf(f, ",\n{\"ph\":\"X\",\"cat\":\"%s\",\"name\":", sl->cat);
		json_str(f, sl->name);
		fprintf(f, ",\"pid\":%d,\"tid\":%d,", sl->pid, sl->tid);
		ts_out(f, "ts", sl->ts);
		fputc(',', f);
		ts_out(f, "dur", sl->dur);
		fprintf(f, ",\"args\":{%s}}", sl->args);
	}
	for (size_t i = 0; i < p->nmarks; i++) {
		const struct hp_mark *m = &p->marks[i];
		char an[256], lb[32];

		if (m->kind != HP_MK_ALLOC && m->kind != HP_MK_NAME)
			continue;
		fprintf(f, ",\n{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"api\","
			"\"name\":\"%s\",\"pid\":%d,\"tid\":%d,",
			m->kind == HP_MK_ALLOC ? "hmm_malloc" : "hmm_set_name",
			m->pid, m->tid);
		ts_out(f, "ts", m->t_ns);
		fprintf(f, ",\"args\":{\"ptr\":\"0x%llx\",\"size\":%llu",
			(unsigned long long)m->ptr, (unsigned long long)m->size);
		if (m->alloc && m->alloc <= p->nallocs) {
			json_escape(an, sizeof(an),
				    hp_alloc_label(&p->allocs[m->alloc - 1], lb,
						   sizeof(lb)));
			fprintf(f, ",\"allocation\":\"%s\"", an);
		}
		if (m->site) {
			fputs(",\"site\":", f);
			json_str(f, m->site);
		}
		fputs("}}", f);
	}
	/* counters, per device, in time order */
	qsort(steps, nsteps, sizeof(*steps), cmp_step);
	for (size_t i = 0; i < nsteps;) {
		size_t j = i;
		int64_t value = 0;

		for (; j < nsteps && steps[j].dev == steps[i].dev &&
		       steps[j].which == steps[i].which; j++) {
			value += steps[j].delta;
			/* one sample per time stamp, after all its steps */
			if (j + 1 < nsteps && steps[j + 1].dev == steps[i].dev &&
			    steps[j + 1].which == steps[i].which &&
			    steps[j + 1].ts == steps[j].ts)
				continue;
			fprintf(f, ",\n{\"ph\":\"C\",\"name\":\"%s\",\"pid\":%d,"
				"\"tid\":0,", steps[i].which ?
				"bytes in flight" : "program's bytes on device",
				DEV_PID_BASE + steps[i].dev);
			ts_out(f, "ts", steps[j].ts);
			fprintf(f, ",\"args\":{\"bytes\":%lld}}",
				(long long)(value > 0 ? value : 0));
		}
		i = j;
	}
	fputs("\n]}\n", f);
	free(steps);
	free(s.v);
}
