// SPDX-License-Identifier: MIT
/*
 * trace.c - the driver's tracepoints, read through a tracefs instance.
 *
 * hmmprof never touches the global trace buffer (perf, trace-cmd or
 * another hmmprof may be using it): it creates an instance of its own,
 * instances/hmmprof-PID, with its own ring buffer, clock and event
 * switches, and removes it when done.  In that instance:
 *
 *  - trace_clock is "mono", so that event times are CLOCK_MONOTONIC and
 *    line up with the program's start;
 *  - set_event_pid holds the program's pid and options/event-fork adds
 *    every thread and child it creates, so only the program's own events
 *    are recorded (an eviction is recorded in the task whose migration
 *    needed the room);
 *  - options/record-tgid makes each line name the thread group, so that
 *    events of threads are charged to their process.
 *
 * Lines of trace_pipe are parsed as the events' TP_printk() formats in
 * kernel-driver/hmmgpu_trace.h print them.
 *
 * libhmm writes API markers ("hmm: launch ...", docs/hmmprof.md) into the
 * instance's trace_marker when HMM_TRACE_MARKER names it: they come out
 * of trace_pipe as tracing_mark_write lines, timestamped by the same ring
 * buffer and clock as the driver's events.
 */
#define _GNU_SOURCE
#include "hmmprof.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define TRACE_LINE_MAX 4096

#define TGID_CACHE 1024 /* threads remembered, a power of two */

struct hp_trace {
	char root[256];      /* the tracefs mount */
	char inst[320];      /* our instance */
	int pipe_fd;
	bool have_device_fault;
	char buf[65536];
	size_t len;          /* bytes of an incomplete line in @buf */
	/* thread -> process, for lines that name no process (see tgid_of) */
	struct { int32_t tid, tgid; } tgid[TGID_CACHE];
};

static int write_file(const char *dir, const char *name, const char *text)
{
	char path[768];
	size_t len = strlen(text);
	ssize_t w;
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	w = write(fd, text, len);
	if (w < 0)
		ret = -errno;
	else if ((size_t)w != len)
		ret = -EIO;
	close(fd);
	return ret;
}

static bool exists(const char *dir, const char *name)
{
	char path[768];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return !access(path, F_OK);
}

/* Finds where tracefs is mounted; mounts it when we may.  0 or -errno. */
static int find_tracefs(char *root, size_t len, char *why, size_t whylen)
{
	static const char *const candidates[] = {
		"/sys/kernel/tracing", "/sys/kernel/debug/tracing",
	};
	FILE *m;
	char line[512], dir[256], type[64];

	m = fopen("/proc/self/mounts", "re");
	if (m) {
		while (fgets(line, sizeof(line), m)) {
			if (sscanf(line, "%*s %255s %63s", dir, type) == 2 &&
			    !strcmp(type, "tracefs")) {
				snprintf(root, len, "%s", dir);
				fclose(m);
				return 0;
			}
		}
		fclose(m);
	}
	for (size_t i = 0; i < sizeof(candidates) / sizeof(*candidates); i++) {
		if (exists(candidates[i], "instances")) {
			snprintf(root, len, "%s", candidates[i]);
			return 0;
		}
	}
	if (geteuid() == 0 &&
	    !mount("tracefs", candidates[0], "tracefs", 0, NULL)) {
		snprintf(root, len, "%s", candidates[0]);
		return 0;
	}
	snprintf(why, whylen, "tracefs is not mounted%s",
		 geteuid() ? " (mount it on /sys/kernel/tracing, or run as "
			     "root)" : "");
	return -ENOENT;
}

struct hp_trace *hp_trace_open(unsigned int buffer_kib, char *why,
			       size_t whylen)
{
	char num[32], inst_events[400];
	struct hp_trace *t;
	int ret;

	t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	t->pipe_fd = -1;
	if (find_tracefs(t->root, sizeof(t->root), why, whylen))
		goto err_free;
	if (!exists(t->root, "events/hmmgpu/hmmgpu_migrate_batch")) {
		if (access(t->root, R_OK | X_OK) && errno == EACCES)
			snprintf(why, whylen, "no permission to use tracefs "
				 "at %s (run as root)", t->root);
		else
			snprintf(why, whylen, "%s has no hmmgpu tracepoints "
				 "(is hmmgpu.ko loaded?)", t->root);
		goto err_free;
	}
	snprintf(t->inst, sizeof(t->inst), "%s/instances/hmmprof-%d",
		 t->root, (int)getpid());
	if (mkdir(t->inst, 0700)) {
		ret = errno;
		if (ret == EACCES || ret == EPERM)
			snprintf(why, whylen, "no permission to create a trace "
				 "instance in %s/instances (run as root)",
				 t->root);
		else
			snprintf(why, whylen, "cannot create %s: %s", t->inst,
				 strerror(ret));
		goto err_free;
	}
	/*
	 * The clock matters (event times against the program's start); the
	 * options only make lines easier to read, so their failure is
	 * tolerated: the parser copes with both forms.
	 */
	ret = write_file(t->inst, "trace_clock", "mono");
	if (ret) {
		snprintf(why, whylen, "cannot set the trace clock of %s: %s",
			 t->inst, strerror(-ret));
		goto err_rmdir;
	}
	write_file(t->inst, "options/irq-info", "0");
	write_file(t->inst, "options/record-tgid", "1");
	write_file(t->inst, "options/overwrite", "0");
	snprintf(num, sizeof(num), "%u", buffer_kib);
	write_file(t->inst, "buffer_size_kb", num);
	snprintf(inst_events, sizeof(inst_events), "%s/events/hmmgpu",
		 t->inst);
	t->have_device_fault = exists(inst_events, "hmmgpu_device_fault");
	return t;

err_rmdir:
	rmdir(t->inst);
err_free:
	free(t);
	return NULL;
}

int hp_trace_follow(struct hp_trace *t, pid_t pid, char *why, size_t whylen)
{
	char path[768], num[32];
	int ret;

	ret = write_file(t->inst, "options/event-fork", "1");
	if (!ret) {
		snprintf(num, sizeof(num), "%d", (int)pid);
		ret = write_file(t->inst, "set_event_pid", num);
	}
	if (ret) {
		snprintf(why, whylen, "cannot follow pid %d in %s: %s",
			 (int)pid, t->inst, strerror(-ret));
		return ret;
	}
	ret = write_file(t->inst, "events/hmmgpu/enable", "1");
	if (ret) {
		snprintf(why, whylen, "cannot enable the hmmgpu events in %s: %s",
			 t->inst, strerror(-ret));
		return ret;
	}
	snprintf(path, sizeof(path), "%s/trace_pipe", t->inst);
	t->pipe_fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (t->pipe_fd < 0) {
		ret = -errno;
		snprintf(why, whylen, "cannot open %s: %s", path,
			 strerror(errno));
		return ret;
	}
	return 0;
}

bool hp_trace_has_device_fault(const struct hp_trace *t)
{
	return t->have_device_fault;
}

bool hp_trace_keep_enabled(struct hp_trace *t)
{
	char path[768], c = '0';
	int fd;

	snprintf(path, sizeof(path), "%s/events/hmmgpu/enable", t->inst);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false; /* unloaded: nothing to enable yet */
	if (read(fd, &c, 1) != 1)
		c = '0';
	close(fd);
	/* "0" (all off) or "X" (mixed): the module came back */
	if (c == '1')
		return false;
	write_file(t->inst, "events/hmmgpu/enable", "1");
	return true;
}

/* Skips spaces backwards from @p (exclusive) down to @begin. */
static const char *back_spaces(const char *begin, const char *p)
{
	while (p > begin && p[-1] == ' ')
		p--;
	return p;
}

/* "SSSS.FFFFFF" (any number of fraction digits) in ns. */
static uint64_t parse_ts(const char *s, const char *end)
{
	uint64_t sec = 0, frac = 0, scale = 1000000000ull;

	while (s < end && *s >= '0' && *s <= '9')
		sec = sec * 10 + (uint64_t)(*s++ - '0');
	if (s < end && *s == '.') {
		s++;
		while (s < end && *s >= '0' && *s <= '9' && scale > 1) {
			scale /= 10;
			frac += (uint64_t)(*s++ - '0') * scale;
		}
	}
	return sec * 1000000000ull + frac;
}

/*
 * The context before the event name: "COMM-TID (TGID) [CPU] FLAGS TS",
 * where "(TGID)" comes with options/record-tgid and FLAGS with
 * options/irq-info.  COMM may hold spaces and dashes, so it is read from
 * the right.  Returns false when the line does not look like that.
 */
static bool parse_context(const char *line, const char *end,
			  struct hp_event *ev)
{
	const char *p = back_spaces(line, end), *q;

	/* the timestamp */
	q = p;
	while (q > line && ((q[-1] >= '0' && q[-1] <= '9') || q[-1] == '.'))
		q--;
	if (q == p)
		return false;
	ev->t_ns = parse_ts(q, p);
	p = back_spaces(line, q);
	/* irq flags, when present */
	if (p > line && p[-1] != ']') {
		while (p > line && p[-1] != ' ')
			p--;
		p = back_spaces(line, p);
	}
	/* [CPU] */
	if (p == line || p[-1] != ']')
		return false;
	while (p > line && p[-1] != '[')
		p--;
	if (p == line)
		return false;
	p = back_spaces(line, p - 1);
	/* (TGID), when present: a number or dashes */
	ev->pid = 0;
	if (p > line && p[-1] == ')') {
		q = p - 1;
		while (q > line && q[-1] != '(')
			q--;
		if (q == line)
			return false;
		ev->pid = (int32_t)strtol(q + strspn(q, " "), NULL, 10);
		ev->pid_known = ev->pid > 0;
		p = back_spaces(line, q - 1);
	}
	/* COMM-TID */
	q = p;
	while (q > line && q[-1] >= '0' && q[-1] <= '9')
		q--;
	if (q == p || q == line || q[-1] != '-')
		return false;
	ev->tid = (int32_t)strtol(q, NULL, 10);
	if (ev->pid <= 0)
		ev->pid = ev->tid;
	return true;
}

static int cause_of(const char *v)
{
	static const char *const names[] = {
		[HMMGPU_CAUSE_EXPLICIT] = "explicit",
		[HMMGPU_CAUSE_CPU_FAULT] = "cpu_fault",
		[HMMGPU_CAUSE_EVICTION] = "eviction",
		[HMMGPU_CAUSE_PEER] = "peer",
		[HMMGPU_CAUSE_DEVICE_FAULT] = "device_fault",
		[HMMGPU_CAUSE_REMOVAL] = "removal",
		[HMMGPU_CAUSE_PREFETCH] = "prefetch",
	};
	unsigned long n;
	char *end;

	for (int k = 0; k < (int)(sizeof(names) / sizeof(*names)); k++)
		if (names[k] && !strcmp(v, names[k]))
			return k;
	/* __print_symbolic() prints unknown values in hex */
	n = strtoul(v, &end, 0);
	return end != v && n < HP_CAUSES ? (int)n : HMMGPU_CAUSE_COUNT - 1;
}

bool hp_trace_parse_line(const char *line, struct hp_event *ev)
{
	const char *m = strstr(line, ": hmmgpu_"), *name, *payload;
	char tok[128];
	size_t nlen;

	if (!m)
		return false;
	memset(ev, 0, sizeof(*ev));
	if (!parse_context(line, m, ev))
		return false;
	name = m + 2;
	payload = strchr(name, ':');
	if (!payload)
		return false;
	nlen = (size_t)(payload - name);
	if (nlen == strlen("hmmgpu_migrate_batch") &&
	    !strncmp(name, "hmmgpu_migrate_batch", nlen))
		ev->type = HP_EV_BATCH;
	else if (nlen == strlen("hmmgpu_cpu_fault") &&
		 !strncmp(name, "hmmgpu_cpu_fault", nlen))
		ev->type = HP_EV_CPU_FAULT;
	else if (nlen == strlen("hmmgpu_device_fault") &&
		 !strncmp(name, "hmmgpu_device_fault", nlen))
		ev->type = HP_EV_DEVICE_FAULT;
	else if (nlen == strlen("hmmgpu_evicted") &&
		 !strncmp(name, "hmmgpu_evicted", nlen))
		ev->type = HP_EV_EVICTED;
	else
		return false;
	if (ev->type == HP_EV_CPU_FAULT) {
		ev->dir = HP_TO_HOST;
		ev->cause = HMMGPU_CAUSE_CPU_FAULT;
	} else if (ev->type == HP_EV_DEVICE_FAULT) {
		ev->dir = HP_TO_DEVICE;
		ev->cause = HMMGPU_CAUSE_DEVICE_FAULT;
	} else if (ev->type == HP_EV_EVICTED) {
		ev->dir = HP_TO_HOST;
	}

	for (const char *p = payload + 1; *p;) {
		size_t n;
		char *eq, *v;

		p += strspn(p, " \n");
		n = strcspn(p, " \n");
		if (!n)
			break;
		if (n >= sizeof(tok))
			n = sizeof(tok) - 1;
		memcpy(tok, p, n);
		tok[n] = '\0';
		p += strcspn(p, " \n");
		eq = strchr(tok, '=');
		if (!eq) {
			if (!strcmp(tok, "to_device"))
				ev->dir = HP_TO_DEVICE;
			else if (!strcmp(tok, "to_system"))
				ev->dir = HP_TO_HOST;
			else if (!strcmp(tok, "remote"))
				ev->remote = 1;
			continue;
		}
		*eq = '\0';
		v = eq + 1;
		if (!strcmp(tok, "dev"))
			ev->dev = (uint8_t)strtoul(v, NULL, 10);
		else if (!strcmp(tok, "cause"))
			ev->cause = (uint8_t)cause_of(v);
		else if (!strcmp(tok, "start"))
			ev->start = strtoull(v, NULL, 0);
		else if (!strcmp(tok, "addr"))
			ev->addr = strtoull(v, NULL, 0);
		else if (!strcmp(tok, "npages"))
			ev->npages = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(tok, "moved"))
			ev->moved = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(tok, "failed"))
			ev->failed = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(tok, "peer"))
			ev->peer = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(tok, "ns"))
			ev->ns = strtoull(v, NULL, 10);
		else if (!strcmp(tok, "tgid"))
			ev->owner = (int32_t)strtol(v, NULL, 10);
	}
	/* every page of an hmmgpu_evicted run moved */
	if (ev->type == HP_EV_EVICTED)
		ev->moved = ev->npages;
	if (ev->dev >= HP_MAX_DEVICES)
		ev->dev = HP_MAX_DEVICES - 1;
	/* a driver whose cpu_fault event has no start: the faulting page */
	if (ev->type == HP_EV_CPU_FAULT && !ev->start)
		ev->start = ev->addr, ev->npages = ev->npages ? 1 : 0;
	return true;
}

/*
 * The process of thread @tid.  With record-tgid a line names its process,
 * but only once the kernel has saved the thread's, which it does at the
 * thread's first context switch: a new execution thread's first events
 * show "(-------)".  The answer comes from earlier lines of the thread,
 * else from /proc while the thread lives, else it is the thread itself.
 */
static int32_t tgid_of(struct hp_trace *t, const struct hp_event *ev)
{
	unsigned int slot = (unsigned int)ev->tid & (TGID_CACHE - 1);
	char path[64], line[128];
	int32_t tgid = 0;
	FILE *f;

	if (ev->pid_known) {
		t->tgid[slot].tid = ev->tid;
		t->tgid[slot].tgid = ev->pid;
		return ev->pid;
	}
	if (t->tgid[slot].tid == ev->tid && t->tgid[slot].tgid > 0)
		return t->tgid[slot].tgid;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)ev->tid);
	f = fopen(path, "re");
	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "Tgid: %d", &tgid) == 1)
				break;
		fclose(f);
	}
	if (tgid <= 0)
		return ev->tid;
	t->tgid[slot].tid = ev->tid;
	t->tgid[slot].tgid = tgid;
	return tgid;
}

const char *hp_trace_marker_path(const struct hp_trace *t, char *buf,
				 size_t len)
{
	snprintf(buf, len, "%s/trace_marker", t->inst);
	return buf;
}

/* "%XX" escapes of a marker value, decoded into @out (@len bytes). */
static void unescape(char *out, size_t len, const char *s, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 1 < len; i++) {
		unsigned int c;

		if (s[i] == '%' && i + 2 < n &&
		    sscanf(s + i + 1, "%2x", &c) == 1) {
			out[o++] = (char)c;
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
}

/* The kind whose key (hp_mark_kind_key()) is the @n bytes at @s, or -1. */
static int marker_kind(const char *s, size_t n)
{
	for (int k = 0; k < HP_MK_KINDS; k++) {
		const char *name = hp_mark_kind_key(k);

		if (strlen(name) == n && !strncmp(s, name, n))
			return k;
	}
	return -1;
}

bool hp_trace_parse_marker(const char *line, struct hp_marker *m)
{
	static const char tag[] = ": tracing_mark_write: hmm: ";
	const char *at = strstr(line, tag), *p;
	struct hp_event ctx;
	size_t n;
	int kind;

	if (!at)
		return false;
	memset(&ctx, 0, sizeof(ctx));
	if (!parse_context(line, at, &ctx))
		return false;
	p = at + sizeof(tag) - 1;
	n = strcspn(p, " \n");
	kind = marker_kind(p, n);
	if (kind < 0)
		return false;
	memset(m, 0, sizeof(*m));
	m->kind = (uint8_t)kind;
	m->t_ns = ctx.t_ns;
	m->pid = ctx.pid;
	m->tid = ctx.tid;
	m->pid_known = ctx.pid_known;
	m->dev = HP_MK_NO_DEV;
	for (p += n; *p;) {
		const char *key, *eq, *v;
		size_t klen, vlen;

		p += strspn(p, " \n");
		n = strcspn(p, " \n");
		if (!n)
			break;
		key = p;
		p += n;
		eq = memchr(key, '=', n);
		if (!eq)
			continue;
		klen = (size_t)(eq - key);
		v = eq + 1;
		vlen = n - klen - 1;
#define KEY(s) (klen == sizeof(s) - 1 && !strncmp(key, s, klen))
		if (KEY("dev"))
			m->dev = (int32_t)strtol(v, NULL, 10);
		else if (KEY("stream"))
			m->stream = strtoull(v, NULL, 10);
		else if (KEY("ns"))
			m->ns = strtoull(v, NULL, 10);
		else if (KEY("ptr"))
			m->ptr = strtoull(v, NULL, 16);
		else if (KEY("src"))
			m->src = strtoull(v, NULL, 16);
		else if (KEY("size"))
			m->size = strtoull(v, NULL, 10);
		else if (KEY("grid"))
			sscanf(v, "%ux%ux%u", &m->grid[0], &m->grid[1],
			       &m->grid[2]);
		else if (KEY("fn"))
			unescape(m->what, sizeof(m->what), v, vlen);
		else if (KEY("name"))
			unescape(m->name, sizeof(m->name), v, vlen);
		else if (KEY("kernel"))
			m->code[0].addr = strtoull(v, NULL, 16);
		else if (KEY("kernel_sym"))
			unescape(m->code[0].sym, sizeof(m->code[0].sym), v, vlen);
		else if (KEY("kernel_obj"))
			unescape(m->code[0].obj, sizeof(m->code[0].obj), v, vlen);
		else if (KEY("kernel_off"))
			m->code[0].off = strtoull(v, NULL, 16);
		else if (KEY("caller"))
			m->code[1].addr = strtoull(v, NULL, 16);
		else if (KEY("caller_sym"))
			unescape(m->code[1].sym, sizeof(m->code[1].sym), v, vlen);
		else if (KEY("caller_obj"))
			unescape(m->code[1].obj, sizeof(m->code[1].obj), v, vlen);
		else if (KEY("caller_off"))
			m->code[1].off = strtoull(v, NULL, 16);
#undef KEY
	}
	return true;
}

int hp_trace_drain(struct hp_trace *t,
		   void (*fn)(const struct hp_event *ev, void *arg),
		   void (*mfn)(const struct hp_marker *m, void *arg),
		   void *arg)
{
	struct hp_marker mk;
	struct hp_event ev;
	int count = 0;

	if (t->pipe_fd < 0)
		return 0;
	for (;;) {
		ssize_t r = read(t->pipe_fd, t->buf + t->len,
				 sizeof(t->buf) - 1 - t->len);
		char *line, *nl;

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -errno;
		}
		if (r == 0)
			break;
		t->len += (size_t)r;
		t->buf[t->len] = '\0';
		line = t->buf;
		while ((nl = strchr(line, '\n'))) {
			*nl = '\0';
			if (hp_trace_parse_line(line, &ev)) {
				ev.pid = tgid_of(t, &ev);
				fn(&ev, arg);
				count++;
			} else if (mfn && hp_trace_parse_marker(line, &mk)) {
				ev.tid = mk.tid;
				ev.pid = mk.pid;
				ev.pid_known = mk.pid_known;
				mk.pid = tgid_of(t, &ev);
				mfn(&mk, arg);
				count++;
			}
			line = nl + 1;
		}
		t->len -= (size_t)(line - t->buf);
		memmove(t->buf, line, t->len);
		/* a line longer than the buffer: drop it */
		if (t->len >= sizeof(t->buf) - 1)
			t->len = 0;
	}
	return count;
}

uint64_t hp_trace_lost(struct hp_trace *t)
{
	char dir[400], path[700], line[256];
	unsigned long long v;
	uint64_t lost = 0;
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/per_cpu", t->inst);
	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		FILE *f;

		if (strncmp(de->d_name, "cpu", 3))
			continue;
		snprintf(path, sizeof(path), "%s/%s/stats", dir, de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, "overrun: %llu", &v) == 1 ||
			    sscanf(line, "dropped events: %llu", &v) == 1)
				lost += v;
		}
		fclose(f);
	}
	closedir(d);
	return lost;
}

void hp_trace_close(struct hp_trace *t)
{
	if (!t)
		return;
	write_file(t->inst, "events/hmmgpu/enable", "0");
	if (t->pipe_fd >= 0)
		close(t->pipe_fd);
	/* the instance goes away with its buffer once nothing holds it */
	for (int tries = 0; tries < 50 && rmdir(t->inst) && errno == EBUSY;
	     tries++)
		usleep(10000);
	free(t);
}
