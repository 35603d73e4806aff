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
 *  - options/record-tgid makes the kernel remember the thread group of
 *    each thread that runs (saved_tgids), so that events of threads that
 *    are gone can still be charged to their process (see tgid_of()).
 *
 * The events are read in binary, as perf and trace-cmd read them: the
 * formats of the hmmgpu events and of ftrace's print event are loaded
 * from tracefs into a libtraceevent handle (tracefs_local_events_system),
 * each CPU's ring buffer is read from its per_cpu/cpuN/trace_pipe_raw
 * without blocking (libtracefs' tracefs_cpu_read, one sub-buffer at a
 * time, partial ones included), the records are split with kbuffer and
 * merged across CPUs by time, and every field is read by its name
 * (tep_find_field, tep_read_number_field).  Nothing depends on the
 * events' TP_printk() text; an event that lacks a field hmmprof needs
 * stops tracing with one line naming it.
 *
 * libhmm writes API markers ("hmm: launch ...", docs/hmmprof.md) into the
 * instance's trace_marker when HMM_TRACE_MARKER names it: they are
 * ftrace print events (tracing_mark_write) whose "buf" field holds the
 * marker's text, timestamped by the same ring buffer and clock as the
 * driver's events.
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

#include <event-parse.h>
#include <kbuffer.h>
#include <tracefs.h>

#define TGID_CACHE 1024 /* threads remembered, a power of two */
#define MARKER_MAX 4096 /* longest marker text read (trace_marker's limit) */

#define ARRAY_SIZE(a) (sizeof(a) / sizeof(*(a)))

/* The fields hmmprof reads, by name. */
enum hp_field {
	F_DEV, F_DIR, F_CAUSE, F_TGID, F_ADDR, F_START, F_NPAGES, F_MOVED,
	F_FAILED, F_PEER, F_REMOTE, F_NS, F_COUNT,
};

static const char *const field_names[F_COUNT] = {
	[F_DEV] = "dev", [F_DIR] = "dir", [F_CAUSE] = "cause",
	[F_TGID] = "tgid", [F_ADDR] = "addr", [F_START] = "start",
	[F_NPAGES] = "npages", [F_MOVED] = "moved", [F_FAILED] = "failed",
	[F_PEER] = "peer", [F_REMOTE] = "remote", [F_NS] = "ns",
};

#define B(f) (1u << (f))

/*
 * The hmmgpu events hmmprof reads (kernel-driver/hmmgpu_trace.h) and the
 * fields each must have.  Only hmmgpu_migrate_batch must exist: a driver
 * without one of the others just never reports it.
 */
static const struct {
	const char *name;
	uint8_t type; /* enum hp_ev_type */
	uint32_t fields;
} tp_specs[] = {
	{ "hmmgpu_migrate_batch", HP_EV_BATCH,
	  B(F_DEV) | B(F_DIR) | B(F_CAUSE) | B(F_START) | B(F_NPAGES) |
	  B(F_MOVED) | B(F_FAILED) | B(F_PEER) | B(F_NS) },
	{ "hmmgpu_cpu_fault", HP_EV_CPU_FAULT,
	  B(F_DEV) | B(F_ADDR) | B(F_START) | B(F_NPAGES) | B(F_MOVED) |
	  B(F_NS) },
	{ "hmmgpu_device_fault", HP_EV_DEVICE_FAULT,
	  B(F_DEV) | B(F_ADDR) | B(F_START) | B(F_NPAGES) | B(F_MOVED) |
	  B(F_REMOTE) | B(F_NS) },
	{ "hmmgpu_evicted", HP_EV_EVICTED,
	  B(F_DEV) | B(F_CAUSE) | B(F_TGID) | B(F_START) | B(F_NPAGES) },
};

struct hp_tp {
	struct tep_event *event; /* NULL: the loaded driver has no such event */
	struct tep_format_field *f[F_COUNT]; /* NULL: not read for it */
};

struct hp_formats {
	struct tep_handle *tep;
	struct hp_tp tp[ARRAY_SIZE(tp_specs)];
	struct tep_event *print;      /* ftrace's print: trace_marker writes */
	struct tep_format_field *buf; /* its text */
};

/* One CPU's ring buffer. */
struct hp_cpu {
	struct tracefs_cpu *tcpu;
	struct kbuffer *kbuf;
	void *page;             /* the sub-buffer last read */
	bool loaded;            /* @kbuf walks @page */
	bool have;              /* @rec is this CPU's next record */
	struct tep_record rec;  /* its data points into @page */
};

struct hp_trace {
	char root[256];      /* the tracefs mount */
	char inst[400];      /* our instance */
	char name[64];       /* its name, hmmprof-PID */
	struct tracefs_instance *instance;
	struct tep_handle *tep;
	struct hp_formats *fmt;
	struct hp_cpu *cpu;  /* NULL until hp_trace_follow() */
	int ncpu;
	/* thread -> process (see tgid_of) */
	struct { int32_t tid, tgid; } tgid[TGID_CACHE];
};

/* --- the event formats ---------------------------------------------------- */

/* Whether @f is a number tep_read_number_field() reads. */
static bool is_number(const struct tep_format_field *f)
{
	return !(f->flags & (TEP_FIELD_IS_ARRAY | TEP_FIELD_IS_STRING |
			     TEP_FIELD_IS_DYNAMIC)) &&
	       (f->size == 1 || f->size == 2 || f->size == 4 || f->size == 8);
}

struct hp_formats *hp_formats_new(struct tep_handle *tep, char *why,
				  size_t whylen)
{
	struct hp_formats *f;

	f = calloc(1, sizeof(*f));
	if (!f) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	f->tep = tep;
	for (size_t i = 0; i < ARRAY_SIZE(tp_specs); i++) {
		struct hp_tp *tp = &f->tp[i];

		tp->event = tep_find_event_by_name(tep, "hmmgpu",
						   tp_specs[i].name);
		if (!tp->event) {
			if (tp_specs[i].type != HP_EV_BATCH)
				continue;
			snprintf(why, whylen, "the kernel has no format for "
				 "hmmgpu:%s (is hmmgpu.ko loaded?)",
				 tp_specs[i].name);
			goto err_free;
		}
		for (int k = 0; k < F_COUNT; k++) {
			if (!(tp_specs[i].fields & B(k)))
				continue;
			tp->f[k] = tep_find_field(tp->event, field_names[k]);
			if (!tp->f[k] || !is_number(tp->f[k])) {
				snprintf(why, whylen, "the event hmmgpu:%s of "
					 "the loaded hmmgpu.ko has no number "
					 "field '%s' (hmmprof and hmmgpu.ko do "
					 "not match; use the hmmprof built "
					 "with the module)", tp_specs[i].name,
					 field_names[k]);
				goto err_free;
			}
		}
	}
	f->print = tep_find_event_by_name(tep, "ftrace", "print");
	f->buf = f->print ? tep_find_field(f->print, "buf") : NULL;
	if (!f->buf) {
		snprintf(why, whylen, "the kernel's ftrace:print event (the "
			 "trace_marker writes) has no field 'buf'");
		goto err_free;
	}
	return f;

err_free:
	free(f);
	return NULL;
}

void hp_formats_free(struct hp_formats *f)
{
	free(f);
}

/* Field @k of @tp in @rec, 0 when @tp has none or @rec is too short. */
static uint64_t field(const struct hp_tp *tp, int k,
		      const struct tep_record *rec)
{
	struct tep_format_field *f = tp->f[k];
	unsigned long long v;

	if (!f || f->offset + f->size > rec->size ||
	    tep_read_number_field(f, rec->data, &v))
		return 0;
	return v;
}

/* A cause number of the trace as hmmprof counts it. */
static uint8_t cause_of(uint64_t v)
{
	/* an int field, read as its 32 bits */
	v &= 0xffffffffu;
	return (uint8_t)(v < HP_CAUSES ? v : HMMGPU_CAUSE_COUNT - 1);
}

static void decode_event(const struct hp_tp *tp, int type,
			 const struct tep_record *rec, struct hp_event *ev)
{
	uint64_t dev = field(tp, F_DEV, rec);

	ev->type = (uint8_t)type;
	ev->dev = (uint8_t)(dev < HP_MAX_DEVICES ? dev : HP_MAX_DEVICES - 1);
	ev->start = field(tp, F_START, rec);
	ev->addr = field(tp, F_ADDR, rec);
	ev->npages = (uint32_t)field(tp, F_NPAGES, rec);
	ev->moved = (uint32_t)field(tp, F_MOVED, rec);
	ev->failed = (uint32_t)field(tp, F_FAILED, rec);
	ev->peer = (uint32_t)field(tp, F_PEER, rec);
	ev->ns = field(tp, F_NS, rec);
	switch (type) {
	case HP_EV_BATCH:
		/* as TP_printk: nonzero is to_system */
		ev->dir = (field(tp, F_DIR, rec) & 0xffffffffu) ?
			  HP_TO_HOST : HP_TO_DEVICE;
		ev->cause = cause_of(field(tp, F_CAUSE, rec));
		break;
	case HP_EV_CPU_FAULT:
		ev->dir = HP_TO_HOST;
		ev->cause = HMMGPU_CAUSE_CPU_FAULT;
		break;
	case HP_EV_DEVICE_FAULT:
		ev->dir = HP_TO_DEVICE;
		ev->cause = HMMGPU_CAUSE_DEVICE_FAULT;
		ev->remote = (field(tp, F_REMOTE, rec) & 0xffffffffu) != 0;
		break;
	case HP_EV_EVICTED:
		ev->dir = HP_TO_HOST;
		ev->cause = cause_of(field(tp, F_CAUSE, rec));
		ev->owner = (int32_t)(uint32_t)field(tp, F_TGID, rec);
		/* every page of an hmmgpu_evicted run moved */
		ev->moved = ev->npages;
		break;
	}
}

/*
 * The text of a print event into @out (@len bytes), without its newline:
 * "buf" is a flexible array up to the record's end (or, should a kernel
 * make it one, a dynamic array).
 */
static void marker_text(const struct hp_formats *f, struct tep_record *rec,
			char *out, size_t len)
{
	const char *s = NULL;
	size_t n = 0;

	if (f->buf->flags & TEP_FIELD_IS_DYNAMIC) {
		int dlen = 0;

		s = tep_get_field_raw(NULL, f->print, "buf", rec, &dlen, 0);
		n = s && dlen > 0 ? (size_t)dlen : 0;
	} else if (f->buf->offset < rec->size) {
		s = (const char *)rec->data + f->buf->offset;
		n = (size_t)(rec->size - f->buf->offset);
	}
	n = s ? strnlen(s, n) : 0;
	if (n >= len)
		n = len - 1;
	while (n && s[n - 1] == '\n')
		n--;
	if (n)
		memcpy(out, s, n);
	out[n] = '\0';
}

enum hp_rec hp_trace_decode(const struct hp_formats *f,
			    struct tep_record *rec, struct hp_event *ev,
			    struct hp_marker *m)
{
	int id = tep_data_type(f->tep, rec);
	int tid = tep_data_pid(f->tep, rec);

	if (id == f->print->id) {
		char text[MARKER_MAX];

		marker_text(f, rec, text, sizeof(text));
		if (!hp_marker_parse(text, m))
			return HP_REC_OTHER;
		m->t_ns = rec->ts;
		m->pid = m->tid = tid;
		return HP_REC_MARKER;
	}
	for (size_t i = 0; i < ARRAY_SIZE(tp_specs); i++) {
		if (!f->tp[i].event || f->tp[i].event->id != id)
			continue;
		memset(ev, 0, sizeof(*ev));
		ev->t_ns = rec->ts;
		ev->pid = ev->tid = tid;
		decode_event(&f->tp[i], tp_specs[i].type, rec, ev);
		return HP_REC_EVENT;
	}
	return HP_REC_OTHER;
}

/* --- libhmm's API markers ------------------------------------------------ */

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

bool hp_marker_parse(const char *text, struct hp_marker *m)
{
	static const char tag[] = "hmm: ";
	const char *p;
	size_t n;
	int kind;

	if (strncmp(text, tag, sizeof(tag) - 1))
		return false;
	p = text + sizeof(tag) - 1;
	n = strcspn(p, " \n");
	kind = marker_kind(p, n);
	if (kind < 0)
		return false;
	memset(m, 0, sizeof(*m));
	m->kind = (uint8_t)kind;
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

/* --- the instance --------------------------------------------------------- */

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

/*
 * Loads the formats of the hmmgpu events and of ftrace's print event
 * into a new handle, replacing the current ones.  0 or -errno, with the
 * reason in @why.
 */
static int load_formats(struct hp_trace *t, char *why, size_t whylen)
{
	static const char *const systems[] = { "hmmgpu", "ftrace", NULL };
	struct hp_formats *fmt;
	struct tep_handle *tep;

	tep = tracefs_local_events_system(t->root, systems);
	if (!tep) {
		snprintf(why, whylen, "cannot read the event formats in "
			 "%s/events", t->root);
		return -EIO;
	}
	fmt = hp_formats_new(tep, why, whylen);
	if (!fmt) {
		tep_free(tep);
		return -EINVAL;
	}
	hp_formats_free(t->fmt);
	tep_free(t->tep);
	t->tep = tep;
	t->fmt = fmt;
	return 0;
}

struct hp_trace *hp_trace_open(unsigned int buffer_kib, char *why,
			       size_t whylen)
{
	char num[32];
	struct hp_trace *t;
	int ret;

	t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
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
	if (load_formats(t, why, whylen))
		goto err_free;
	snprintf(t->name, sizeof(t->name), "hmmprof-%d", (int)getpid());
	snprintf(t->inst, sizeof(t->inst), "%s/instances/%s", t->root,
		 t->name);
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
	t->instance = tracefs_instance_alloc(t->root, t->name);
	if (!t->instance) {
		snprintf(why, whylen, "cannot use the trace instance %s: %s",
			 t->inst, strerror(errno ? errno : ENOMEM));
		goto err_rmdir;
	}
	/*
	 * The clock matters (event times against the program's start); the
	 * other settings are tolerated to fail: record-tgid only helps to
	 * charge the events of threads that are gone (tgid_of()).
	 */
	ret = write_file(t->inst, "trace_clock", "mono");
	if (ret) {
		snprintf(why, whylen, "cannot set the trace clock of %s: %s",
			 t->inst, strerror(-ret));
		goto err_instance;
	}
	write_file(t->inst, "options/record-tgid", "1");
	write_file(t->inst, "options/overwrite", "0");
	snprintf(num, sizeof(num), "%u", buffer_kib);
	write_file(t->inst, "buffer_size_kb", num);
	return t;

err_instance:
	tracefs_instance_free(t->instance);
err_rmdir:
	rmdir(t->inst);
err_free:
	hp_formats_free(t->fmt);
	tep_free(t->tep);
	free(t);
	return NULL;
}

/* Opens the ring buffer of every CPU of the instance.  0 or -errno. */
static int open_cpus(struct hp_trace *t, char *why, size_t whylen)
{
	enum kbuffer_long_size lsize;
	enum kbuffer_endian endian;
	/* CPUs with a buffer in tracefs, as tracefs_local_events_system saw */
	int n = tep_get_cpus(t->tep);

	if (n <= 0)
		n = (int)sysconf(_SC_NPROCESSORS_CONF);
	lsize = tep_get_header_page_size(t->tep) == 8 ? KBUFFER_LSIZE_8 :
							KBUFFER_LSIZE_4;
	endian = tep_is_file_bigendian(t->tep) ? KBUFFER_ENDIAN_BIG :
						 KBUFFER_ENDIAN_LITTLE;
	t->cpu = calloc(n > 0 ? (size_t)n : 1, sizeof(*t->cpu));
	if (!t->cpu) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	t->ncpu = n;
	for (int i = 0; i < n; i++) {
		struct hp_cpu *c = &t->cpu[i];
		char dir[64];

		snprintf(dir, sizeof(dir), "per_cpu/cpu%d", i);
		if (!exists(t->inst, dir))
			continue; /* a possible CPU tracing has no buffer for */
		c->tcpu = tracefs_cpu_open(t->instance, i, true);
		c->kbuf = kbuffer_alloc(lsize, endian);
		if (c->tcpu)
			c->page = malloc((size_t)
					 tracefs_cpu_read_size(c->tcpu));
		if (!c->tcpu || !c->kbuf || !c->page) {
			int err = errno ? errno : ENOMEM;

			snprintf(why, whylen, "cannot open %s/%s/"
				 "trace_pipe_raw: %s", t->inst, dir,
				 strerror(err));
			return -err;
		}
		c->rec.cpu = i;
	}
	return 0;
}

int hp_trace_follow(struct hp_trace *t, pid_t pid, char *why, size_t whylen)
{
	char num[32];
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
	return open_cpus(t, why, whylen);
}

bool hp_trace_has_device_fault(const struct hp_trace *t)
{
	for (size_t i = 0; i < ARRAY_SIZE(tp_specs); i++)
		if (tp_specs[i].type == HP_EV_DEVICE_FAULT)
			return t->fmt->tp[i].event != NULL;
	return false;
}

bool hp_trace_keep_enabled(struct hp_trace *t)
{
	char path[768], c = '0', why[256];
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
	/* its events may have new ids: the old formats stay if this fails */
	load_formats(t, why, sizeof(why));
	write_file(t->inst, "events/hmmgpu/enable", "1");
	return true;
}

/*
 * The process of thread @tid: the ring buffer names only the thread.
 * The answer comes from /proc while the thread lives, else from the
 * kernel's saved_tgids (options/record-tgid: threads that have run since
 * tracing started), else it is the thread itself.  Answers are cached.
 */
static int32_t tgid_of(struct hp_trace *t, int32_t tid)
{
	unsigned int slot = (unsigned int)tid & (TGID_CACHE - 1);
	char path[320], line[128];
	int a, b;
	int32_t tgid = 0;
	FILE *f;

	if (t->tgid[slot].tid == tid && t->tgid[slot].tgid > 0)
		return t->tgid[slot].tgid;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	f = fopen(path, "re");
	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "Tgid: %d", &a) == 1) {
				tgid = a;
				break;
			}
		fclose(f);
	}
	if (tgid <= 0) {
		snprintf(path, sizeof(path), "%s/saved_tgids", t->root);
		f = fopen(path, "re");
		if (f) {
			while (fgets(line, sizeof(line), f))
				if (sscanf(line, "%d %d", &a, &b) == 2 &&
				    a == tid) {
					tgid = b;
					break;
				}
			fclose(f);
		}
	}
	if (tgid <= 0)
		return tid;
	t->tgid[slot].tid = tid;
	t->tgid[slot].tgid = tgid;
	return tgid;
}

const char *hp_trace_marker_path(const struct hp_trace *t, char *buf,
				 size_t len)
{
	snprintf(buf, len, "%s/trace_marker", t->inst);
	return buf;
}

/* --- reading the ring buffers --------------------------------------------- */

/*
 * Makes @c->rec the CPU's next record, reading its next sub-buffer when
 * the last one is used up.  False when the CPU has nothing more now;
 * then *@err is -errno if the read failed.
 */
static bool next_record(struct hp_cpu *c, int *err)
{
	unsigned long long ts;
	void *data;
	int r;

	c->have = false;
	if (!c->tcpu)
		return false;
	for (;;) {
		if (c->loaded) {
			data = kbuffer_read_event(c->kbuf, &ts);
			if (data) {
				c->rec.ts = ts;
				c->rec.size = kbuffer_event_size(c->kbuf);
				c->rec.data = data;
				kbuffer_next_event(c->kbuf, NULL);
				return c->have = true;
			}
			c->loaded = false;
		}
		/* without blocking; partial sub-buffers too */
		r = tracefs_cpu_read(c->tcpu, c->page, true);
		if (r <= 0) {
			if (r < 0 && errno != EAGAIN && errno != EINTR)
				*err = -errno;
			return false;
		}
		if (kbuffer_load_subbuffer(c->kbuf, c->page) < 0)
			continue;
		c->loaded = true;
	}
}

int hp_trace_drain(struct hp_trace *t,
		   void (*fn)(const struct hp_event *ev, void *arg),
		   void (*mfn)(const struct hp_marker *m, void *arg),
		   void *arg)
{
	struct hp_marker mk;
	struct hp_event ev;
	int count = 0, err = 0;

	if (!t->cpu)
		return 0;
	for (int i = 0; i < t->ncpu; i++)
		if (!t->cpu[i].have)
			next_record(&t->cpu[i], &err);
	/* the oldest record of all CPUs first, as trace_pipe merges them */
	for (;;) {
		struct hp_cpu *c = NULL;

		for (int i = 0; i < t->ncpu; i++)
			if (t->cpu[i].have &&
			    (!c || t->cpu[i].rec.ts < c->rec.ts))
				c = &t->cpu[i];
		if (!c)
			break;
		switch (hp_trace_decode(t->fmt, &c->rec, &ev, &mk)) {
		case HP_REC_EVENT:
			ev.pid = tgid_of(t, ev.tid);
			fn(&ev, arg);
			count++;
			break;
		case HP_REC_MARKER:
			if (!mfn)
				break;
			mk.pid = tgid_of(t, mk.tid);
			mfn(&mk, arg);
			count++;
			break;
		case HP_REC_OTHER:
			break;
		}
		next_record(c, &err);
	}
	return err ? err : count;
}

uint64_t hp_trace_lost(struct hp_trace *t)
{
	char dir[448], path[768], line[256];
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
	for (int i = 0; t->cpu && i < t->ncpu; i++) {
		tracefs_cpu_close(t->cpu[i].tcpu);
		kbuffer_free(t->cpu[i].kbuf);
		free(t->cpu[i].page);
	}
	free(t->cpu);
	tracefs_instance_free(t->instance);
	/* the instance goes away with its buffer once nothing holds it */
	for (int tries = 0; tries < 50 && rmdir(t->inst) && errno == EBUSY;
	     tries++)
		usleep(10000);
	hp_formats_free(t->fmt);
	tep_free(t->tep);
	free(t);
}
