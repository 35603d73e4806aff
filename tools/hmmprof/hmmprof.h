/* SPDX-License-Identifier: MIT */
/*
 * hmmprof.h - shared declarations of the hmmprof tool.
 *
 * hmmprof is split like intel_gpu_top: collection (counters.c: the STATS
 * ioctl of every device; trace.c: the driver's tracepoints in a tracefs
 * instance of our own; profile.c: what the events add up to) is separate
 * from rendering (report.c: text, JSON and CSV; plot.c: SVG and HTML;
 * perfetto.c: the timeline as Chrome trace-event JSON).  alloc.c charges
 * events to the allocations libhmm's API markers announce, symbols.c
 * names the code addresses of those markers.
 * run.c and top.c are the two commands.  docs/hmmprof.md explains every
 * number.
 */
#ifndef HMMPROF_H
#define HMMPROF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "drm_node.h"
#include "hmmgpu_drm.h"

#define HP_MAX_DEVICES 16
#define HP_CAUSES HMMGPU_CAUSE_COUNT
#define HP_TO_DEVICE HMMGPU_DIR_TO_DEVICE
#define HP_TO_HOST HMMGPU_DIR_TO_SYSTEM

/* --- util.c ------------------------------------------------------------- */

extern const char *hp_prog;

/** Prints "hmmprof: MESSAGE" on stderr. */
void hp_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/** Prints "hmmprof: warning: MESSAGE" on stderr. */
void hp_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t hp_now_ns(void);

/*
 * Human-readable values, scaled: bytes to B/KiB/MiB/GiB/TiB, durations to
 * ns/µs/ms/s, rates to .../s.  Each writes into @buf (@len bytes) and
 * returns it.
 */
char *hp_fmt_bytes(char *buf, size_t len, uint64_t bytes);
char *hp_fmt_ns(char *buf, size_t len, uint64_t ns);
char *hp_fmt_rate(char *buf, size_t len, double bytes_per_s);
char *hp_fmt_count(char *buf, size_t len, uint64_t n);

/* Names of causes and directions, in text and in JSON/CSV. */
const char *hp_cause_label(int cause);   /* "prefetch", "CPU fault", ... */
const char *hp_cause_key(int cause);     /* "prefetch", "cpu_fault", ... */
const char *hp_dir_label(int dir);       /* "host to device" ... */
const char *hp_dir_key(int dir);         /* "to_device", "to_host" */
/* Order in which causes are listed under each direction. */
extern const int hp_cause_order[];
extern const int hp_ncause_order;

/* A growable array: *@p holds *@n of *@cap elements of @size bytes. */
int hp_grow(void *p, size_t *cap, size_t n, size_t size);

/* --- counters.c: the STATS ioctl of every device ------------------------ */

/** What a set of counters (or the events) says happened. */
struct hp_counts {
	uint64_t pages[2][HP_CAUSES];
	uint64_t batches_by[2][HP_CAUSES]; /* from events only */
	uint64_t cpu_faults;
	uint64_t device_faults;
	uint64_t evictions;
	uint64_t batches;
	uint64_t copy_errors;
	uint64_t copy_busy_ns;       /* counters only */
	uint64_t migrate_latency[HMMGPU_LATENCY_BUCKETS]; /* counters only */
	uint64_t fault_latency[HMMGPU_LATENCY_BUCKETS];   /* counters only */
};

uint64_t hp_counts_pages(const struct hp_counts *c, int dir);

/** One device, as open by hmm_node_scan(). */
struct hp_device {
	struct hmm_node node;
	struct drm_hmmgpu_get_info info;
	struct drm_hmmgpu_stats stats;
	bool gone;  /* removed (an ioctl answered -ENODEV, or not found) */
	bool reset; /* counters went back: the module was reloaded */
};

struct hp_devices {
	int n;
	struct hp_device dev[HP_MAX_DEVICES];
};

/*
 * Opens every hmmgpu device and samples it.  Returns 0, or -ENODEV or
 * -EACCES when there is none, after printing why unless @quiet.
 */
int hp_devices_open(struct hp_devices *d, bool quiet);
void hp_devices_close(struct hp_devices *d);
/* Closes the render nodes but keeps what was read from them. */
void hp_devices_release(struct hp_devices *d);
/*
 * Opens the devices again and reads them, matching them by device index
 * to those of @d: one that is not found is marked gone, one whose
 * counters went back is marked reset (hmmgpu was reloaded).  Closes them.
 */
void hp_devices_resample(struct hp_devices *d);
/* Re-reads GET_INFO and device-scope STATS of every device still there. */
void hp_devices_sample(struct hp_devices *d);
/* @out = @after - @before, for one device's ioctl replies. */
void hp_stats_delta(const struct drm_hmmgpu_stats *after,
		    const struct drm_hmmgpu_stats *before,
		    struct hp_counts *out);
void hp_counts_add(struct hp_counts *sum, const struct hp_counts *c);
/*
 * Upper bound in ns of the bucket holding the @pct percentile of a log2
 * microsecond histogram; 0 when it is empty.
 */
uint64_t hp_hist_percentile(const uint64_t *hist, int pct);

/* --- trace.c: the tracepoints ------------------------------------------- */

enum hp_ev_type {
	HP_EV_BATCH,        /* hmmgpu_migrate_batch */
	HP_EV_CPU_FAULT,    /* hmmgpu_cpu_fault (a fault-back batch too) */
	HP_EV_DEVICE_FAULT, /* hmmgpu_device_fault */
	HP_EV_EVICTED,      /* hmmgpu_evicted: where an eviction's pages were */
};

/** One event, as read from the trace. */
struct hp_event {
	uint64_t t_ns;   /* when it ended, since the program started */
	uint64_t ns;     /* how long it took */
	uint64_t start;  /* first CPU address of its range (0: none) */
	uint64_t addr;   /* faulting address (faults) */
	uint32_t npages; /* pages in its range */
	uint32_t moved;  /* pages that moved */
	uint32_t failed; /* pages whose copy failed */
	uint32_t peer;   /* pages of @moved that came from another device */
	int32_t pid;     /* process (thread group) */
	int32_t tid;     /* thread */
	int32_t owner;   /* HP_EV_EVICTED: process whose pages they were */
	uint8_t type;    /* enum hp_ev_type */
	uint8_t dev;
	uint8_t dir;     /* HP_TO_DEVICE or HP_TO_HOST */
	uint8_t cause;   /* HMMGPU_CAUSE_* */
	uint8_t remote;  /* device fault mapped system pages */
	uint32_t alloc;  /* 1 + index of the allocation it hit; 0: none */
};

/* API markers of libhmm (runtime/marker.c; docs/hmmprof.md). */
enum hp_mk_kind {
	HP_MK_ALLOC,    /* hmm_malloc() returned an allocation */
	HP_MK_FREE,     /* hmm_free() */
	HP_MK_NAME,     /* hmm_set_name() */
	HP_MK_LAUNCH,   /* a kernel ran (on its stream's thread) */
	HP_MK_PREFETCH, /* a prefetch ran */
	HP_MK_MEMCPY,   /* an hmm_memcpy ran */
	HP_MK_MEMSET,   /* an hmm_memset ran */
	HP_MK_CALL,     /* an API call queued work on a stream */
	HP_MK_SYNC,     /* an API call waited for streams or events */
	HP_MK_STREAM,   /* the thread is the worker of a stream */
	HP_MK_KINDS,
};
#define HP_MK_NO_DEV INT32_MIN

/* A code address of a marker, as libhmm's dladdr() described it. */
struct hp_code {
	uint64_t addr;
	uint64_t off;     /* from the load address of @obj */
	char sym[136];    /* the dynamic symbol at exactly @addr, if any */
	char obj[512];    /* else the object file */
};

/** One marker, as read from the trace. */
struct hp_marker {
	uint64_t t_ns, ns, ptr, src, size, stream;
	int32_t pid, tid, dev;
	uint32_t grid[3];
	uint8_t kind;      /* enum hp_mk_kind */
	char what[64];     /* fn=: the API function of a call or sync */
	char name[136];    /* name=: an allocation's name */
	struct hp_code code[2]; /* kernel=, caller= */
};

/** A marker as the profile keeps it. */
struct hp_mark {
	uint64_t t_ns;     /* when it ended, since the program started */
	uint64_t ns, ptr, src, size, stream;
	int32_t pid, tid, dev;
	uint32_t alloc;    /* 1 + index of the allocation at @ptr; 0: none */
	uint32_t grid[3];
	uint8_t kind;
	const char *what;  /* interned: API function */
	const char *kernel; /* interned: the kernel's function name */
	const char *site;  /* interned: the caller, "function+0xoff" */
};

/* "alloc", "launch", ...: the marker kinds' names (JSON, CSV). */
const char *hp_mark_kind_key(int kind);

/** An allocation announced by the markers, and what hit it. */
struct hp_alloc {
	uint64_t start, bytes;    /* pages it spans */
	uint64_t size;            /* as asked for */
	uint64_t t_alloc, t_free; /* t_free: UINT64_MAX when never freed */
	int32_t pid;
	const char *name;         /* interned, NULL when not named */
	const char *site;         /* interned: where it was allocated */
	uint64_t pages[2][HP_CAUSES]; /* moved, per direction and cause */
	uint64_t batches;
	uint64_t cpu_faults, device_faults;
	uint64_t evicted_pages;   /* named by hmmgpu_evicted */
	uint64_t bounces;         /* pages moved to a device again after
				     they had left one */
	uint64_t migrate_ns;      /* batch and CPU fault time */
	uint64_t device_fault_ns;
	uint8_t *state;           /* per page, for the bounces */
};

/*
 * Whether @ev is a migration batch (a CPU fault's is one too): the events
 * that move bytes, which the totals, the timeline and the CSV count.
 * Device faults report their batches' sum again, and hmmgpu_evicted
 * the addresses of an eviction batch already reported.
 */
static inline bool hp_event_is_batch(const struct hp_event *ev)
{
	return ev->type == HP_EV_BATCH || ev->type == HP_EV_CPU_FAULT;
}

struct hp_trace;
struct hp_symtab;
struct hp_formats;
struct tep_handle;
struct tep_record;

/*
 * Prepares a tracefs instance of our own recording the hmmgpu events,
 * filtered later by hp_trace_follow(), and loads the events' formats.
 * @buffer_kib: ring buffer per CPU.  Returns NULL and a one-line reason
 * in @why when tracing cannot be used (no tracefs, no permission, no
 * hmmgpu events, an event without a field hmmprof needs).
 */
struct hp_trace *hp_trace_open(unsigned int buffer_kib, char *why,
			       size_t whylen);
/*
 * Restricts the instance to @pid, its threads and descendants (set_event_pid
 * with event-fork), enables the events and opens the per-CPU ring buffers.
 * Event times are CLOCK_MONOTONIC nanoseconds.  0 or -errno, with the
 * reason in @why.
 */
int hp_trace_follow(struct hp_trace *t, pid_t pid, char *why, size_t whylen);
/* Whether the running driver has the hmmgpu_device_fault event. */
bool hp_trace_has_device_fault(const struct hp_trace *t);
/*
 * Enables the events again if hmmgpu was unloaded and loaded since (its
 * events then come back disabled), and reloads their formats.  Returns
 * true when it had to.
 */
bool hp_trace_keep_enabled(struct hp_trace *t);
/*
 * Reads what the ring buffers hold now, without blocking, and calls @fn
 * for each event and @mfn (may be NULL) for each API marker, oldest
 * first.  Returns the number of both, or -errno.
 */
int hp_trace_drain(struct hp_trace *t,
		   void (*fn)(const struct hp_event *ev, void *arg),
		   void (*mfn)(const struct hp_marker *m, void *arg),
		   void *arg);
/* The instance's trace_marker file, for HMM_TRACE_MARKER. */
const char *hp_trace_marker_path(const struct hp_trace *t, char *buf,
				 size_t len);
/* Events the ring buffer lost (overruns and drops) so far. */
uint64_t hp_trace_lost(struct hp_trace *t);
/* Stops recording and removes the instance. */
void hp_trace_close(struct hp_trace *t);

/*
 * The formats of the events hmmprof reads, found by name in @tep (which
 * must outlive them): hmmgpu_migrate_batch, and hmmgpu_cpu_fault,
 * hmmgpu_device_fault, hmmgpu_evicted when the driver has them, with
 * the fields hmmprof reads; ftrace's print with its "buf" (the
 * trace_marker writes).  NULL, and a one-line reason in @why, when one
 * of them lacks a field.  Exposed for hp_trace_drain() and the tests.
 */
struct hp_formats *hp_formats_new(struct tep_handle *tep, char *why,
				  size_t whylen);
void hp_formats_free(struct hp_formats *f);

enum hp_rec {
	HP_REC_OTHER,  /* neither */
	HP_REC_EVENT,  /* an hmmgpu event, in the struct hp_event */
	HP_REC_MARKER, /* a libhmm marker, in the struct hp_marker */
};
/*
 * Decodes one ring-buffer record into @ev or @m: time absolute, in ns;
 * pid and tid both the thread that wrote it (the record names no thread
 * group: hp_trace_drain() finds it).
 */
enum hp_rec hp_trace_decode(const struct hp_formats *f,
			    struct tep_record *rec, struct hp_event *ev,
			    struct hp_marker *m);
/*
 * Parses the text of a libhmm marker, "hmm: KIND key=value ..." (time and
 * thread left 0).  False for other text and unknown kinds.
 */
bool hp_marker_parse(const char *text, struct hp_marker *m);

/* --- profile.c: what the events add up to ------------------------------- */

/* Residency states of a page in the map. */
enum {
	HP_RES_UNTOUCHED = 0, /* no event named it */
	HP_RES_SYSTEM = 1,    /* last moved to system memory */
	HP_RES_DEVICE = 2,    /* + device index: last moved to that device */
};
#define HP_RES_STATES (HP_RES_DEVICE + HP_MAX_DEVICES)

struct hp_latency {
	uint64_t *ns;
	size_t n, cap;
	uint64_t sum;
	uint64_t max;
	bool sorted;
	bool truncated; /* more than HP_LATENCY_MAX: percentiles of the first */
};
#define HP_LATENCY_MAX (16u << 20)

/** A touched range: 2 MiB-aligned CPU addresses that events named. */
struct hp_range {
	uint64_t start, end;
	uint64_t moved_bytes;    /* bytes the events moved inside it */
	uint8_t *state;          /* one HP_RES_* per page, at exit */
	uint64_t final[HP_RES_STATES];
};

struct hp_profile {
	/* the program */
	char **argv;
	pid_t pid;
	int status;          /* from waitpid() */
	uint64_t t0_ns;      /* CLOCK_MONOTONIC when it was started */
	uint64_t wall_ns;
	uint64_t page_size;

	/* counters of every device, before and after */
	struct hp_devices *devs;
	struct drm_hmmgpu_stats before[HP_MAX_DEVICES];
	struct drm_hmmgpu_get_info info_before[HP_MAX_DEVICES];
	struct hp_counts device; /* sum of the deltas */

	/* tracepoints */
	bool traced;
	bool have_device_fault_event;
	bool module_reloaded;    /* events were missed while it was away */
	char trace_note[256];
	uint64_t lost;
	uint64_t nevents;        /* events seen */
	struct hp_counts proc;   /* what the events add up to */
	uint64_t evicted_pages_unplaced; /* evicted, not named by hmmgpu_evicted */
	uint64_t evicted_pages_placed;   /* named by hmmgpu_evicted */
	struct hp_event *ev;     /* events kept, in arrival order */
	size_t nev, evcap;
	size_t ev_limit;
	struct hp_latency cpu_lat, dev_lat;
	uint64_t busy_ns[3];     /* union of batch intervals: per dir, all */

	/* touched ranges, largest first */
	struct hp_range *ranges;
	size_t nranges;

	/* the CSV timeline, written while events arrive (or NULL) */
	FILE *csv;

	/* libhmm's API markers and the allocations they announce */
	struct hp_mark *marks;
	size_t nmarks, markcap;
	uint64_t nmarkers;       /* seen (more than kept when too many) */
	struct hp_alloc *allocs; /* in allocation order */
	size_t nallocs, alloccap;
	size_t *live;            /* indexes of those not freed, by pid, start */
	size_t nlive, livecap;
	uint64_t unattributed_pages[2]; /* moved outside every allocation */

	/* strings (symbols.c): a hash table of @strcap slots */
	char **strs;
	size_t nstrs, strcap;
	struct hp_symtab *symtabs;
	size_t nsymtabs, symtabcap;
};

void hp_profile_init(struct hp_profile *p);
void hp_profile_free(struct hp_profile *p);
/* Adds one event; made relative to @p->t0_ns by the caller. */
void hp_profile_add(struct hp_profile *p, const struct hp_event *ev);
/* Adds one API marker; made relative to @p->t0_ns by the caller. */
void hp_profile_add_marker(struct hp_profile *p, const struct hp_marker *m);
/* Computes busy time and the touched ranges once every event is in. */
void hp_profile_finish(struct hp_profile *p);
/* Percentile @pct (0-100) of @l in ns, nearest rank; 0 when empty. */
uint64_t hp_latency_percentile(struct hp_latency *l, double pct);
/* The states of @r's rows at the end of each of @ncols time columns:
 * @grid[row * ncols + col]; returns the number of rows (<= @maxrows).
 * @alloc (1 + index): only the events that hit that allocation; 0: all. */
size_t hp_profile_residency_grid(const struct hp_profile *p,
				 const struct hp_range *r, uint32_t alloc,
				 size_t maxrows, size_t ncols, uint8_t **grid,
				 uint64_t *pages_per_row);

/* --- alloc.c: events charged to allocations ---------------------------- */

/*
 * The allocation of process @pid that holds @addr at time @t (relative):
 * 1 + its index, or 0.
 */
uint32_t hp_alloc_find(const struct hp_profile *p, int32_t pid,
		       uint64_t addr, uint64_t t);
/* Charges @ev (alloc set) to its allocation. */
void hp_alloc_charge(struct hp_profile *p, struct hp_event *ev);
/* Takes marker @m into the allocations (alloc, free, name). */
void hp_alloc_marker(struct hp_profile *p, struct hp_mark *m,
		     const struct hp_marker *raw);
void hp_allocs_free(struct hp_profile *p);
/* The allocation's label: its name, else its start address. */
const char *hp_alloc_label(const struct hp_alloc *a, char *buf, size_t len);
/* Allocation @i's label, "name#N" when N allocations share its name. */
const char *hp_alloc_display_name(const struct hp_profile *p, size_t i,
				  char *buf, size_t len);
/* Total bytes moved (both ways) and cost order: most time first. */
uint64_t hp_alloc_moved_pages(const struct hp_alloc *a);
/* Indexes of the allocations, costliest first; caller frees. */
size_t *hp_allocs_by_cost(const struct hp_profile *p);

/* --- symbols.c ----------------------------------------------------------- */

/* @s stored once in @p (NULL when out of memory). */
const char *hp_intern(struct hp_profile *p, const char *s);
/*
 * The name of code address @c (interned): its symbol, or the function of
 * its object file's symbol table (+0xOFFSET when @offset), or the
 * address.  @pid's /proc/PID/exe stands in for a file not found.
 */
const char *hp_code_name(struct hp_profile *p, const struct hp_code *c,
			 pid_t pid, bool offset);
void hp_symtabs_free(struct hp_profile *p);

/* --- perfetto.c ---------------------------------------------------------- */

/*
 * The timeline as Chrome trace-event JSON (ui.perfetto.dev,
 * chrome://tracing): docs/hmmprof.md, "Timeline".
 */
void hp_perfetto(FILE *f, struct hp_profile *p);

/* --- report.c ----------------------------------------------------------- */

void hp_report_text(FILE *f, struct hp_profile *p);
void hp_report_json(FILE *f, struct hp_profile *p);
void hp_csv_header(FILE *f);
void hp_csv_row(FILE *f, const struct hp_profile *p, const struct hp_event *ev);
void hp_csv_mark_row(FILE *f, const struct hp_profile *p,
		     const struct hp_mark *m);
/* "cmd arg arg" for titles, at most @len bytes. */
void hp_command_line(char *buf, size_t len, char **argv);

/* --- plot.c ------------------------------------------------------------- */

/* An SVG document (@standalone: with the XML prolog) of the plots. */
void hp_plot_svg(FILE *f, struct hp_profile *p, bool standalone);
/* A self-contained HTML page: the summary and the SVG. */
void hp_plot_html(FILE *f, struct hp_profile *p);

/* --- commands ------------------------------------------------------------ */

int hp_cmd_run(int argc, char **argv);
int hp_cmd_top(int argc, char **argv);

#endif /* HMMPROF_H */
