// SPDX-License-Identifier: MIT
/*
 * top.c - `hmmprof top`: a live view of every hmmgpu device.
 *
 * Every interval, GET_INFO (memory) and the device-scope STATS of each
 * device are read and the differences with the previous reading turned
 * into rates.  On a terminal the screen is redrawn (like intel_gpu_top);
 * otherwise one plain line per device and interval is appended, so that
 * the output can be logged or piped.  Ctrl-C ends it with status 0.
 */
#define _GNU_SOURCE
#include "hmmprof.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static void top_usage(FILE *f)
{
	fprintf(f,
"usage: hmmprof top [OPTIONS]\n"
"\n"
"Live view of every hmmgpu device: memory in use, migration rates host to\n"
"device and device to host (with their causes), CPU and device faults,\n"
"evictions and copy-engine load, from the device counters.  Redraws on a\n"
"terminal; prints one plain line per device and interval otherwise.\n"
"\n"
"Options:\n"
"  -i, --interval SECONDS  time between refreshes (default 1)\n"
"  -n, --iterations N      stop after N refreshes (default: until Ctrl-C)\n"
"  -h, --help              this text\n");
}

struct rates {
	double bytes[2];           /* per direction */
	double cause[2][HP_CAUSES]; /* bytes/s per cause */
	double cpu_faults, device_faults, evictions, busy_pct;
	uint64_t used, total;
};

static void compute(const struct hp_device *d,
		    const struct drm_hmmgpu_stats *prev, double dt,
		    uint64_t ps, struct rates *r)
{
	struct hp_counts c;

	memset(r, 0, sizeof(*r));
	hp_stats_delta(&d->stats, prev, &c);
	for (int dir = 0; dir < 2; dir++) {
		for (int k = 0; k < HP_CAUSES; k++) {
			r->cause[dir][k] = (double)c.pages[dir][k] *
					   (double)ps / dt;
			r->bytes[dir] += r->cause[dir][k];
		}
	}
	r->cpu_faults = (double)c.cpu_faults / dt;
	r->device_faults = (double)c.device_faults / dt;
	r->evictions = (double)c.evictions / dt;
	r->busy_pct = (double)c.copy_busy_ns / (dt * 1e9) * 100.0;
	r->total = d->info.mem_total;
	r->used = d->info.mem_total - d->info.mem_free;
}

static void draw_tty(const struct hp_devices *devs, const struct rates *r,
		     double interval)
{
	char now[32], a[32], b[32], c2[32], d[32];
	time_t t = time(NULL);

	strftime(now, sizeof(now), "%H:%M:%S", localtime(&t));
	/* home, clear screen */
	printf("\033[H\033[2J");
	printf("hmmprof top - %s - every %.1f s - Ctrl-C to quit\n\n", now,
	       interval);
	printf("%-4s %-20s %23s %12s %12s %9s %9s %8s %6s\n", "DEV", "NODE",
	       "MEMORY USED", "H->D", "D->H", "CPU FLT/s", "DEV FLT/s",
	       "EVICT/s", "COPY");
	for (int i = 0; i < devs->n; i++) {
		const struct hp_device *dev = &devs->dev[i];
		char mem[48];

		if (dev->gone) {
			printf("%-4u %-20s removed\n", dev->node.index,
			       dev->node.path);
			continue;
		}
		snprintf(mem, sizeof(mem), "%s / %s",
			 hp_fmt_bytes(a, sizeof(a), r[i].used),
			 hp_fmt_bytes(b, sizeof(b), r[i].total));
		printf("%-4u %-20s %23s %12s %12s %9.0f %9.0f %8.0f %5.0f%%\n",
		       dev->node.index, dev->node.path, mem,
		       hp_fmt_rate(c2, sizeof(c2), r[i].bytes[HP_TO_DEVICE]),
		       hp_fmt_rate(d, sizeof(d), r[i].bytes[HP_TO_HOST]),
		       r[i].cpu_faults, r[i].device_faults, r[i].evictions,
		       r[i].busy_pct);
	}
	printf("\nMigration rates by cause\n");
	for (int i = 0; i < devs->n; i++) {
		for (int dir = 0; dir < 2; dir++) {
			bool any = false;

			if (devs->dev[i].gone)
				continue;
			printf("  %u %-15s", devs->dev[i].node.index,
			       hp_dir_label(dir));
			for (int j = 0; j < hp_ncause_order; j++) {
				int k = hp_cause_order[j];

				if (r[i].cause[dir][k] <= 0)
					continue;
				printf("  %s %s", hp_cause_label(k),
				       hp_fmt_rate(a, sizeof(a),
						   r[i].cause[dir][k]));
				any = true;
			}
			printf("%s\n", any ? "" : "  -");
		}
	}
	fflush(stdout);
}

static void draw_plain(const struct hp_devices *devs, const struct rates *r)
{
	char now[32], a[32], b[32], c2[32], d[32];
	time_t t = time(NULL);

	strftime(now, sizeof(now), "%H:%M:%S", localtime(&t));
	for (int i = 0; i < devs->n; i++) {
		const struct hp_device *dev = &devs->dev[i];

		if (dev->gone) {
			printf("%s dev %u removed\n", now, dev->node.index);
			continue;
		}
		printf("%s dev %u mem %s/%s h2d %s d2h %s cpu_faults %.0f/s "
		       "device_faults %.0f/s evictions %.0f/s copy %.0f%%\n",
		       now, dev->node.index,
		       hp_fmt_bytes(a, sizeof(a), r[i].used),
		       hp_fmt_bytes(b, sizeof(b), r[i].total),
		       hp_fmt_rate(c2, sizeof(c2), r[i].bytes[HP_TO_DEVICE]),
		       hp_fmt_rate(d, sizeof(d), r[i].bytes[HP_TO_HOST]),
		       r[i].cpu_faults, r[i].device_faults, r[i].evictions,
		       r[i].busy_pct);
	}
	fflush(stdout);
}

/* Sleeps @ns unless a signal ends the wait. */
static void nap(uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / 1000000000ull),
		.tv_nsec = (long)(ns % 1000000000ull),
	};

	while (!stop && nanosleep(&ts, &ts) && errno == EINTR)
		;
}

int hp_cmd_top(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "interval", required_argument, NULL, 'i' },
		{ "iterations", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct drm_hmmgpu_stats prev[HP_MAX_DEVICES];
	struct rates r[HP_MAX_DEVICES];
	struct hp_devices devs;
	double interval = 1.0;
	long iterations = -1;
	struct sigaction sa;
	uint64_t last, now;
	bool tty;
	char *end;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+i:n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			interval = strtod(optarg, &end);
			if (*end || !(interval >= 0.05 && interval <= 3600)) {
				hp_err("--interval wants 0.05 to 3600 seconds, "
				       "not '%s'", optarg);
				return 2;
			}
			break;
		case 'n':
			iterations = strtol(optarg, &end, 10);
			if (*end || iterations < 1) {
				hp_err("--iterations wants a positive number, "
				       "not '%s'", optarg);
				return 2;
			}
			break;
		case 'h': top_usage(stdout); return 0;
		default: top_usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		hp_err("top: unexpected argument '%s'", argv[optind]);
		return 2;
	}
	if (hp_devices_open(&devs, false))
		return 1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	tty = isatty(STDOUT_FILENO);
	if (tty)
		printf("\033[?25l"); /* hide the cursor */
	else
		printf("# hmmprof top: every %.2f s; rates over the last "
		       "interval, memory now\n", interval);
	fflush(stdout);
	for (int i = 0; i < devs.n; i++)
		prev[i] = devs.dev[i].stats;
	last = hp_now_ns();
	while (!stop && iterations != 0) {
		double dt;

		nap((uint64_t)(interval * 1e9));
		if (stop)
			break;
		hp_devices_sample(&devs);
		now = hp_now_ns();
		dt = (double)(now - last) / 1e9;
		last = now;
		for (int i = 0; i < devs.n; i++) {
			compute(&devs.dev[i], &prev[i], dt > 0 ? dt : 1,
				devs.dev[i].info.page_size ?
				devs.dev[i].info.page_size : 4096, &r[i]);
			prev[i] = devs.dev[i].stats;
		}
		if (tty)
			draw_tty(&devs, r, interval);
		else
			draw_plain(&devs, r);
		if (ferror(stdout))
			break;
		if (iterations > 0)
			iterations--;
	}
	if (tty)
		printf("\033[?25h\n"); /* the cursor back */
	fflush(stdout);
	hp_devices_close(&devs);
	return 0;
}
