// SPDX-License-Identifier: MIT
/*
 * run.c - `hmmprof run -- PROGRAM ARGS`: run a program and profile its
 * migrations.
 *
 * Two sources, reported side by side:
 *
 *  - process: the driver's tracepoints, recorded for the program, its
 *    threads and its children only (trace.c), give exact per-process
 *    counts, latencies, the timeline and the residency map;
 *  - device: the device-scope STATS counters of every device, read before
 *    and after, give what happened on the devices during the run, by
 *    anyone.  They are all there is when tracing is not possible (no
 *    tracefs, no permission): hmmprof then says so and goes on.
 *
 * The program is forked first and waits on a pipe until the trace follows
 * its pid and the counters are read, so that nothing it does is missed.
 */
#define _GNU_SOURCE
#include "hmmprof.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_BUFFER_KIB 4096

static volatile sig_atomic_t forward_sig;
static volatile pid_t child_pid;

static void on_signal(int sig)
{
	/*
	 * Ctrl-C reaches the program too (same process group): hmmprof
	 * stays to report.  Other termination signals are passed on.
	 */
	if (sig != SIGINT && child_pid > 0)
		kill(child_pid, sig);
	forward_sig = sig;
}

static void run_usage(FILE *f)
{
	fprintf(f,
"usage: hmmprof run [OPTIONS] [--] PROGRAM [ARGS...]\n"
"\n"
"Runs PROGRAM and prints a unified-memory profile of it on stderr: pages\n"
"and bytes migrated host to device and device to host per cause, CPU and\n"
"device faults with latency percentiles, evictions, time spent migrating.\n"
"\n"
"Two columns: 'process' counts the program, its threads and children,\n"
"from the hmmgpu tracepoints (needs tracefs: root); 'device' is everything\n"
"every hmmgpu device did during the run, from its counters.\n"
"\n"
"Options:\n"
"  --json FILE|-      the profile as JSON\n"
"  --csv FILE|-       one row per event: migration batch, fault, eviction,\n"
"                     API marker, with the allocation it hit\n"
"  --svg FILE|-       plots: bytes migrated over time, residency maps\n"
"  --html FILE|-      the summary and the plots in one self-contained page\n"
"  --perfetto FILE|-  the timeline (kernels, API calls, migrations, faults\n"
"                     per allocation) as Chrome trace-event JSON, for\n"
"                     ui.perfetto.dev or chrome://tracing\n"
"  -o, --output FILE|-  write the summary to FILE instead of stderr\n"
"  (at most one of these may be '-', standard output; a FILE is replaced\n"
"  only when the profile is complete: a failed run leaves it as it was)\n"
"  -q, --quiet        no summary\n"
"  --no-trace         counters only (whole device), no tracepoints\n"
"  --buffer-kib N     trace buffer per CPU in KiB (default %d)\n"
"  -h, --help         this text\n"
"\n"
"Exit status: the program's (128 + N when killed by signal N); 127 when\n"
"it was not found, 126 when it could not be run; 1 when hmmprof itself\n"
"failed (no device, no permission, bad output file), 2 for bad usage.\n"
"See docs/hmmprof.md for what every number means.\n", DEFAULT_BUFFER_KIB);
}

/*
 * Output files are written under a temporary name in the same directory
 * and renamed over FILE only when the profile was written whole: a run
 * that fails (no device, a program that cannot start, a write error)
 * leaves an existing FILE as it was, instead of truncated.
 */
struct outputs {
	const char *json, *csv, *svg, *html, *summary, *perfetto;
	FILE *json_f, *csv_f, *svg_f, *html_f, *summary_f, *perfetto_f;
	/* the temporary names, NULL for stdout or when not asked for */
	char *json_tmp, *csv_tmp, *svg_tmp, *html_tmp, *summary_tmp;
	char *perfetto_tmp;
	bool quiet;
	bool csv_at_end; /* to stdout: after the program, not amid its output */
	bool complete;   /* the profile was written: rename the files */
};

static FILE *open_out(const char *path, const char *what, char **tmp)
{
	mode_t mask;
	FILE *f;
	int fd;

	*tmp = NULL;
	if (!path)
		return NULL;
	if (!strcmp(path, "-"))
		return stdout;
	if (asprintf(tmp, "%s.XXXXXX", path) < 0) {
		*tmp = NULL;
		hp_err("cannot write the %s to '%s': out of memory", what,
		       path);
		return NULL;
	}
	fd = mkostemp(*tmp, O_CLOEXEC);
	if (fd < 0) {
		hp_err("cannot write the %s to '%s': %s", what, path,
		       strerror(errno));
		free(*tmp);
		*tmp = NULL;
		return NULL;
	}
	/* the mode fopen() would have given, not mkostemp()'s 0600 */
	mask = umask(0);
	umask(mask);
	if (fchmod(fd, 0666 & ~mask))
		hp_warn("'%s': %s", *tmp, strerror(errno));
	f = fdopen(fd, "w");
	if (!f) {
		hp_err("cannot write the %s to '%s': %s", what, path,
		       strerror(errno));
		close(fd);
		unlink(*tmp);
		free(*tmp);
		*tmp = NULL;
	}
	return f;
}

static int open_outputs(struct outputs *o)
{
	int dashes = 0;

	dashes += o->json && !strcmp(o->json, "-");
	dashes += o->csv && !strcmp(o->csv, "-");
	dashes += o->svg && !strcmp(o->svg, "-");
	dashes += o->html && !strcmp(o->html, "-");
	dashes += o->summary && !strcmp(o->summary, "-");
	dashes += o->perfetto && !strcmp(o->perfetto, "-");
	if (dashes > 1) {
		hp_err("only one output can go to stdout ('-')");
		return -EINVAL;
	}
	if ((o->json &&
	     !(o->json_f = open_out(o->json, "JSON", &o->json_tmp))) ||
	    (o->csv && !(o->csv_f = open_out(o->csv, "CSV", &o->csv_tmp))) ||
	    (o->svg && !(o->svg_f = open_out(o->svg, "SVG", &o->svg_tmp))) ||
	    (o->html &&
	     !(o->html_f = open_out(o->html, "HTML", &o->html_tmp))) ||
	    (o->summary && !(o->summary_f = open_out(o->summary, "summary",
						      &o->summary_tmp))) ||
	    (o->perfetto && !(o->perfetto_f = open_out(o->perfetto, "timeline",
							&o->perfetto_tmp))))
		return -EIO;
	o->csv_at_end = o->csv_f == stdout;
	return 0;
}

/*
 * Closes @f; its temporary file @tmp (freed) becomes @path when @keep
 * and everything was written, else goes.
 */
static int close_out(FILE *f, const char *path, char *tmp, bool keep)
{
	int ret = 0;

	if (f && (fflush(f) || ferror(f))) {
		hp_err("writing '%s' failed: %s", path, strerror(errno));
		ret = -EIO;
	}
	if (f && f != stdout && f != stderr && fclose(f) && !ret) {
		hp_err("writing '%s' failed: %s", path, strerror(errno));
		ret = -EIO;
	}
	if (tmp) {
		if (keep && !ret && rename(tmp, path)) {
			hp_err("cannot write '%s' (renaming '%s'): %s", path,
			       tmp, strerror(errno));
			ret = -EIO;
		}
		if (!keep || ret)
			unlink(tmp);
		free(tmp);
	}
	return ret;
}

static void on_event(const struct hp_event *ev, void *arg)
{
	struct hp_profile *p = arg;
	struct hp_event rel = *ev;

	rel.t_ns = ev->t_ns > p->t0_ns ? ev->t_ns - p->t0_ns : 0;
	hp_profile_add(p, &rel);
}

static void on_marker(const struct hp_marker *m, void *arg)
{
	struct hp_profile *p = arg;
	struct hp_marker rel = *m;

	rel.t_ns = m->t_ns > p->t0_ns ? m->t_ns - p->t0_ns : 0;
	hp_profile_add_marker(p, &rel);
}

/* The CSV, after the program: events and markers in time order. */
static void csv_rows(FILE *f, const struct hp_profile *p)
{
	size_t i = 0, k = 0;

	while (i < p->nev || k < p->nmarks) {
		if (k == p->nmarks ||
		    (i < p->nev && p->ev[i].t_ns <= p->marks[k].t_ns))
			hp_csv_row(f, p, &p->ev[i++]);
		else
			hp_csv_mark_row(f, p, &p->marks[k++]);
	}
}

/* In the child: waits for the go, then becomes the program. */
static void __attribute__((noreturn))
child(char **argv, int go_fd, int err_fd, const char *marker)
{
	char c;
	int err;

	/* libhmm writes its API markers there (runtime/marker.c) */
	if (marker)
		setenv("HMM_TRACE_MARKER", marker, 1);
	else
		unsetenv("HMM_TRACE_MARKER");

	while (read(go_fd, &c, 1) < 0 && errno == EINTR)
		;
	close(go_fd);
	if (c != 'g')
		_exit(127);
	execvp(argv[0], argv);
	err = errno;
	if (write(err_fd, &err, sizeof(err)) < 0)
		_exit(127);
	_exit(127);
}

static int exec_error(const char *prog, int err)
{
	if (err == ENOENT && !strchr(prog, '/'))
		hp_err("cannot run '%s': command not found", prog);
	else
		hp_err("cannot run '%s': %s", prog, strerror(err));
	return err == ENOENT ? 127 : 126;
}

/* Waits for the program, reading the trace meanwhile. */
static void wait_program(struct hp_profile *p, struct hp_trace *trace)
{
	for (unsigned int round = 0;; round++) {
		pid_t r;

		/* a reloaded module comes back with its events off */
		if (trace && round % 10 == 9 && hp_trace_keep_enabled(trace))
			p->module_reloaded = true;
		if (trace)
			hp_trace_drain(trace, on_event, on_marker, p);
		r = waitpid(p->pid, &p->status, trace ? WNOHANG : 0);
		if (r == p->pid)
			return;
		if (r < 0 && errno != EINTR) {
			p->status = 0;
			return;
		}
		if (trace)
			poll(NULL, 0, 20);
	}
}

int hp_cmd_run(int argc, char **argv)
{
	enum { OPT_JSON = 256, OPT_CSV, OPT_SVG, OPT_HTML, OPT_NO_TRACE,
	       OPT_BUFFER, OPT_PERFETTO };
	static const struct option opts[] = {
		{ "json", required_argument, NULL, OPT_JSON },
		{ "csv", required_argument, NULL, OPT_CSV },
		{ "svg", required_argument, NULL, OPT_SVG },
		{ "html", required_argument, NULL, OPT_HTML },
		{ "perfetto", required_argument, NULL, OPT_PERFETTO },
		{ "output", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "no-trace", no_argument, NULL, OPT_NO_TRACE },
		{ "buffer-kib", required_argument, NULL, OPT_BUFFER },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct outputs out = { 0 };
	struct hp_devices devs;
	struct hp_profile prof;
	static const struct drm_hmmgpu_stats zero;
	struct hp_trace *trace = NULL;
	unsigned long buffer_kib = DEFAULT_BUFFER_KIB;
	bool no_trace = false;
	int go[2], errp[2], c, err, n, ret = 1;
	struct sigaction sa;
	char why[256] = "", marker[400];
	char *end;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+o:qh", opts, NULL)) != -1) {
		switch (c) {
		case OPT_JSON: out.json = optarg; break;
		case OPT_CSV: out.csv = optarg; break;
		case OPT_SVG: out.svg = optarg; break;
		case OPT_HTML: out.html = optarg; break;
		case OPT_PERFETTO: out.perfetto = optarg; break;
		case 'o': out.summary = optarg; break;
		case 'q': out.quiet = true; break;
		case OPT_NO_TRACE: no_trace = true; break;
		case OPT_BUFFER:
			buffer_kib = strtoul(optarg, &end, 10);
			if (*end || buffer_kib < 64 || buffer_kib > (1ul << 20)) {
				hp_err("--buffer-kib wants 64 to 1048576, not '%s'",
				       optarg);
				return 2;
			}
			break;
		case 'h': run_usage(stdout); return 0;
		default: run_usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		hp_err("run: no program given (hmmprof run -- PROGRAM ARGS)");
		return 2;
	}
	argv += optind;

	ret = open_outputs(&out);
	if (ret) {
		/* two outputs on stdout is bad usage; a file we cannot write is not */
		ret = ret == -EINVAL ? 2 : 1;
		goto out_files;
	}
	ret = 1;
	if (hp_devices_open(&devs, false))
		goto out_files;

	hp_profile_init(&prof);
	prof.argv = argv;
	prof.devs = &devs;
	prof.page_size = devs.dev[0].info.page_size ?
			 devs.dev[0].info.page_size :
			 (uint64_t)sysconf(_SC_PAGESIZE);
	if (out.csv_f) {
		hp_csv_header(out.csv_f);
		if (!out.csv_at_end)
			prof.csv = out.csv_f;
	}

	if (no_trace) {
		snprintf(prof.trace_note, sizeof(prof.trace_note),
			 "--no-trace");
	} else {
		trace = hp_trace_open((unsigned int)buffer_kib, why,
				      sizeof(why));
		if (!trace) {
			hp_warn("cannot trace: %s; reporting whole-device "
				"counters only", why);
			snprintf(prof.trace_note, sizeof(prof.trace_note),
				 "%s", why);
		}
	}

	if (pipe2(go, O_CLOEXEC) || pipe2(errp, O_CLOEXEC)) {
		hp_err("pipe: %s", strerror(errno));
		goto out_trace;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);

	fflush(NULL);
	prof.pid = fork();
	if (prof.pid < 0) {
		hp_err("fork: %s", strerror(errno));
		goto out_trace;
	}
	if (prof.pid == 0) {
		close(go[1]);
		close(errp[0]);
		child(argv, go[0], errp[1], trace ?
		      hp_trace_marker_path(trace, marker, sizeof(marker)) :
		      NULL);
	}
	child_pid = prof.pid;
	close(go[0]);
	close(errp[1]);

	if (trace && hp_trace_follow(trace, prof.pid, why, sizeof(why))) {
		hp_warn("cannot trace: %s; reporting whole-device counters "
			"only", why);
		snprintf(prof.trace_note, sizeof(prof.trace_note), "%s", why);
		hp_trace_close(trace);
		trace = NULL;
	}
	prof.traced = trace != NULL;
	prof.have_device_fault_event = trace && hp_trace_has_device_fault(trace);

	/*
	 * The counters before; then the render nodes are closed, so that
	 * hmmprof does not keep the module from unloading while the program
	 * runs (tests and tools do that).
	 */
	hp_devices_sample(&devs);
	for (int i = 0; i < devs.n; i++) {
		prof.before[i] = devs.dev[i].stats;
		prof.info_before[i] = devs.dev[i].info;
	}
	hp_devices_release(&devs);
	prof.t0_ns = hp_now_ns();
	if (write(go[1], "g", 1) != 1) {
		hp_err("cannot start the program: %s", strerror(errno));
		goto out_trace;
	}
	close(go[1]);

	/* the error pipe closes on exec, or brings exec's errno */
	do {
		n = (int)read(errp[0], &err, sizeof(err));
	} while (n < 0 && errno == EINTR);
	close(errp[0]);
	if (n == (int)sizeof(err)) {
		while (waitpid(prof.pid, NULL, 0) < 0 && errno == EINTR)
			;
		ret = exec_error(argv[0], err);
		goto out_trace;
	}

	wait_program(&prof, trace);
	prof.wall_ns = hp_now_ns() - prof.t0_ns;
	child_pid = 0;
	if (trace) {
		/* what the program's last moments left in the buffer */
		hp_trace_drain(trace, on_event, on_marker, &prof);
		prof.lost = hp_trace_lost(trace);
		hp_trace_close(trace);
		trace = NULL;
		if (prof.lost)
			hp_warn("%llu trace events were lost; the process "
				"numbers are incomplete (try --buffer-kib)",
				(unsigned long long)prof.lost);
	}
	hp_devices_resample(&devs);
	for (int i = 0; i < devs.n; i++) {
		struct hp_counts d;

		if (devs.dev[i].gone)
			continue;
		hp_stats_delta(&devs.dev[i].stats,
			       devs.dev[i].reset ? &zero : &prof.before[i], &d);
		hp_counts_add(&prof.device, &d);
	}
	hp_profile_finish(&prof);

	if (!out.quiet)
		hp_report_text(out.summary_f ? out.summary_f : stderr, &prof);
	if (out.json_f)
		hp_report_json(out.json_f, &prof);
	if (out.csv_at_end)
		csv_rows(out.csv_f, &prof);
	if (out.perfetto_f)
		hp_perfetto(out.perfetto_f, &prof);
	if (out.svg_f)
		hp_plot_svg(out.svg_f, &prof, true);
	if (out.html_f)
		hp_plot_html(out.html_f, &prof);
	out.complete = true;

	if (WIFEXITED(prof.status))
		ret = WEXITSTATUS(prof.status);
	else if (WIFSIGNALED(prof.status))
		ret = 128 + WTERMSIG(prof.status);
	else
		ret = 1;

out_trace:
	hp_trace_close(trace);
	hp_profile_free(&prof);
	hp_devices_close(&devs);
out_files:
	if (close_out(out.json_f, out.json, out.json_tmp, out.complete) |
	    close_out(out.csv_f, out.csv, out.csv_tmp, out.complete) |
	    close_out(out.svg_f, out.svg, out.svg_tmp, out.complete) |
	    close_out(out.html_f, out.html, out.html_tmp, out.complete) |
	    close_out(out.summary_f, out.summary, out.summary_tmp,
		      out.complete) |
	    close_out(out.perfetto_f, out.perfetto, out.perfetto_tmp,
		      out.complete))
		if (!ret)
			ret = 1;
	return ret;
}
