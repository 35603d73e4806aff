/* SPDX-License-Identifier: MIT */
/*
 * sample_common.h - what every sample shares: option parsing, picking the
 * device, timing, per-phase counters, checking results, and the summary
 * line.  The interesting code is in the samples themselves; this file
 * only keeps them short.
 *
 * Every sample:
 *   - runs on device 0, or on the host (HMM_CPU) when there is no device,
 *     and says which in its first line;
 *   - checks its own result exactly and exits 1 at the first mismatch,
 *     with a line on stderr "NAME: MISMATCH: ..." naming the element;
 *   - exits 2 on a bad option, 1 when a libhmm call fails (one line on
 *     stderr naming the call, the error and what to do), 0 otherwise;
 *   - takes --inject-error, which corrupts one element of the result just
 *     before the check, to show that the check catches it (exit 1);
 *   - ends its output with exactly one summary line (the last line of
 *     stdout).
 *
 * The summary line
 * ----------------
 * The counters of hmm_get_stats() for the sample's device, as differences
 * between the start and the end of the run, on one line (tests and the
 * documentation parse it, so this format is fixed):
 *
 *   summary: cpu_faults=N device_faults=N to_device=X MiB (prefetch X,
 *   fault X, density X, peer X) to_host=X MiB (prefetch X, cpu_fault X,
 *   eviction X) evictions=N
 *
 * (one line, wrapped here), where
 *   - N is a decimal integer (a count of faults, or of evicted blocks);
 *   - X is a number of MiB (bytes / 2^20) printed with "%.2f";
 *   - cpu_faults, device_faults, evictions: the struct hmm_stats fields;
 *   - to_device: bytes[HMM_DIR_TO_DEVICE][*] summed over every cause,
 *     then the causes HMM_CAUSE_PREFETCH, _DEVICE_FAULT, _DENSITY and
 *     _PEER;
 *   - to_host: bytes[HMM_DIR_TO_HOST][*] summed over every cause, then the
 *     causes HMM_CAUSE_PREFETCH, _CPU_FAULT and _EVICTION.
 * Causes not named (device removal) are in the totals only.  On the host
 * (no device) every number is 0.
 *
 * As a scanf format (the literal text between the numbers is exact):
 *
 *   "summary: cpu_faults=%llu device_faults=%llu to_device=%lf MiB
 *   (prefetch %lf, fault %lf, density %lf, peer %lf) to_host=%lf MiB
 *   (prefetch %lf, cpu_fault %lf, eviction %lf) evictions=%llu"
 */
#ifndef HMM_SAMPLE_COMMON_H
#define HMM_SAMPLE_COMMON_H

#include <hmm/hmm.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIB (1UL << 20)

/* --- options ------------------------------------------------------------ */

enum sample_opt_type {
	SAMPLE_OPT_FLAG,   /* bool *: set to true when given */
	SAMPLE_OPT_UINT,   /* unsigned long *: a number from min to max */
	SAMPLE_OPT_CHOICE, /* const char **: one of the words in choices */
};

/* One command-line option of a sample, "--name VALUE" or "--name". */
struct sample_opt {
	const char *name;    /* without the dashes: "size" */
	enum sample_opt_type type;
	void *value;         /* where it goes; holds the default beforehand */
	const char *arg;     /* what the value is, for --help: "MIB" */
	const char *help;
	unsigned long min, max;  /* SAMPLE_OPT_UINT */
	const char *const *choices; /* SAMPLE_OPT_CHOICE: NULL-terminated */
};

/* --- the run ----------------------------------------------------------- */

struct sample {
	const char *name;            /* for messages: "vecadd" */
	int dev;                     /* device 0, or HMM_CPU without one */
	struct hmm_device_info info; /* dev's description (zero on the host) */
	struct hmm_stream *stream;   /* a stream on dev, for the launches */
	struct hmm_stats start;      /* the counters when the run began */
	bool inject_error;           /* --inject-error */
};

/*
 * Parses the command line against @opts (terminated by an entry whose
 * name is NULL; --help and --inject-error are added), picks the device,
 * prints which, creates a stream on it, starts the device's execution
 * threads (so the first timed launch does not pay for that) and takes the
 * counters the summary starts from.  @about is the one-line description
 * --help prints.  Exits on a bad option (2) or a failure (1).
 */
void sample_init(struct sample *s, const char *name, const char *about,
		 const struct sample_opt *opts, int argc, char **argv);

/*
 * Prints the summary line (the counters since sample_init()), destroys
 * the stream, and returns 0: main() ends with "return sample_finish(&s);".
 */
int sample_finish(struct sample *s);

/* Whether the sample runs on a device (false: on the host). */
static inline bool sample_on_device(const struct sample *s)
{
	return s->dev != HMM_CPU;
}

/* --- failures ----------------------------------------------------------- */

/*
 * Exits 1 after printing "NAME: @what: <the error of @err>; @hint" on
 * stderr, when @err (a libhmm return value) is negative; does nothing
 * otherwise.
 */
void sample_check(const struct sample *s, int err, const char *what,
		  const char *hint);

/* hmm_malloc() of @size bytes, exiting 1 with a clear line when it fails. */
void *sample_malloc(const struct sample *s, size_t size, const char *what);

/* hmm_devptr() of @ptr on the sample's device, exiting 1 if it fails. */
void *sample_devptr(const struct sample *s, const void *ptr);

/* Launches @kernel over @grid on the sample's stream and waits for it. */
void sample_launch_sync(const struct sample *s, hmm_kernel_fn kernel,
			struct hmm_dim3 grid, void *args);

/*
 * Reports a wrong result: prints "NAME: MISMATCH: @what[@index] is @got,
 * expected @want" on stderr and returns 1 (the exit status).
 */
int sample_mismatch(const struct sample *s, const char *what, size_t index,
		    double got, double want);

/* --- timing and counters ------------------------------------------------ */

/* Milliseconds on a monotonic clock. */
double sample_now_ms(void);

/* The sample device's counters now (exits 1 if they cannot be read). */
void sample_stats(const struct sample *s, struct hmm_stats *st);

/* @d = @b - @a, field by field (the counters only grow). */
void sample_stats_sub(struct hmm_stats *d, const struct hmm_stats *b,
		      const struct hmm_stats *a);

/* Bytes moved in direction @dir for @cause, in MiB. */
double sample_mib(const struct hmm_stats *st, enum hmm_dir dir,
		  enum hmm_cause cause);

/* Bytes moved in direction @dir for every cause. */
uint64_t sample_total_bytes(const struct hmm_stats *st, enum hmm_dir dir);

/* Bytes moved in direction @dir for every cause, in MiB. */
double sample_total_mib(const struct hmm_stats *st, enum hmm_dir dir);

/* The summary line of @d (no newline), as documented above. */
void sample_format_summary(char *buf, size_t len, const struct hmm_stats *d);

/* --- "two ways": with a prefetch first, and on device faults alone ------ */

/* Which ways --mode asks for (vecadd, saxpy). */
extern const char *const sample_modes[]; /* "both", "prefetch", "fault" */

/* What one way of running a kernel cost. */
struct sample_way {
	const char *name;       /* "with prefetch" */
	double prefetch_ms;     /* hmm_prefetch() of the data; 0 when none */
	double kernel_ms;       /* the launch, until it completed */
	double check_ms;        /* reading and checking the result on the CPU */
	struct hmm_stats delta; /* the counters over the whole way */
	/* while it runs: */
	struct hmm_stats start; /* the counters when it began */
	double mark_ms;         /* when the current phase began */
};

/* The phases of a way, in order. */
enum sample_phase {
	SAMPLE_PHASE_PREFETCH,
	SAMPLE_PHASE_KERNEL,
	SAMPLE_PHASE_CHECK,
};

/*
 * Starts a way (@prefetch: with a prefetch first): names it, takes the
 * counters and starts the clock of its prefetch phase.
 */
void sample_way_begin(const struct sample *s, struct sample_way *w,
		      bool prefetch);

/*
 * Ends @phase of @w and starts the next one's clock; at the end of the
 * check, takes the counters' difference and prints the way's line
 * (sample_print_way()).
 */
void sample_way_end_phase(const struct sample *s, struct sample_way *w,
			  enum sample_phase phase);

/*
 * Prints @w on one line: times, then device_faults, what went to the
 * device by prefetch and by fault (density included), and the CPU faults
 * of the check.
 */
void sample_print_way(const struct sample_way *w);

/* Prints how the way with a prefetch compares with the one without. */
void sample_compare_ways(const struct sample_way *with,
			 const struct sample_way *without);

/* One way of a sample over @n elements: 0, or 1 on a wrong result. */
typedef int sample_way_fn(struct sample *s, size_t n, bool prefetch,
			  struct sample_way *w);

/*
 * Runs @run the ways @mode (--mode: sample_modes) asks for, the one with
 * a prefetch first, and compares them when both ran.  Returns 0, or 1
 * when a way found a wrong result.
 */
int sample_run_ways(struct sample *s, const char *mode, size_t n,
		    sample_way_fn *run);

#endif /* HMM_SAMPLE_COMMON_H */
