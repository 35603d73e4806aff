// SPDX-License-Identifier: MIT
/*
 * top.c - `hmmprof top`: a live view of every hmmgpu device.
 *
 * Every interval, GET_INFO (memory) and the device-scope STATS of each
 * device are read and the differences with the previous reading turned
 * into rates.  On a terminal the screen is redrawn (like intel_gpu_top);
 * otherwise one plain line per device and interval is appended, so that
 * the output can be logged or piped.  Ctrl-C ends it with status 0.
 *
 * Processes: every render-node file of hmmgpu shows its usage in
 * /proc/PID/fdinfo/FD (the DRM client keys: drm-client-id,
 * drm-resident-vram, and the driver's hmmgpu-* counters).  Each interval
 * the fds of every process are read, a file shared by several fds or
 * processes counted once (by its client id), and a row per process and
 * device shows the device memory its files hold and its fault and
 * migration rates.  /proc shows other users' fds to root only.
 */
#define _GNU_SOURCE
#include "hmmprof.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

/* One hmmgpu render-node file, as /proc/PID/fdinfo/FD tells. */
struct client {
	long long id;
	int pid;
	unsigned int dev;
	char comm[32];
	long long resident_kib, to_dev, to_sys, cpu_faults, device_faults,
		  pins;
};

#define MAX_CLIENTS 1024

struct clients {
	int n;
	struct client c[MAX_CLIENTS];
};

/* A row: one process on one device, its files summed, as rates. */
struct proc_row {
	int pid;
	unsigned int dev;
	char comm[32];
	long long resident_kib, pins;
	double cpu_faults, device_faults, to_dev, to_sys; /* per second */
};

static long long key_value(const char *text, const char *key)
{
	size_t n = strlen(key);

	for (const char *l = text; l && *l; l = strchr(l, '\n')) {
		if (*l == '\n')
			l++;
		if (!strncmp(l, key, n) && l[n] == ':')
			return strtoll(l + n + 1, NULL, 10);
	}
	return 0;
}

/* Reads the fdinfo of an hmmgpu file into @c; false for anything else. */
static bool read_client(int pid, const char *fd, struct client *c)
{
	char path[320], text[1024];
	size_t len;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", pid, fd);
	f = fopen(path, "re");
	if (!f)
		return false;
	len = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[len] = '\0';
	if (!strstr(text, "drm-driver:\thmmgpu\n"))
		return false;
	c->id = key_value(text, "drm-client-id");
	c->pid = pid;
	c->dev = (unsigned int)key_value(text, "hmmgpu-device");
	c->resident_kib = key_value(text, "drm-resident-vram");
	c->to_dev = key_value(text, "hmmgpu-pages-to-device");
	c->to_sys = key_value(text, "hmmgpu-pages-to-system");
	c->cpu_faults = key_value(text, "hmmgpu-cpu-faults");
	c->device_faults = key_value(text, "hmmgpu-device-faults");
	c->pins = key_value(text, "hmmgpu-thrash-pins");
	return c->id > 0;
}

/*
 * Every hmmgpu file of every process but this one (whose own files are
 * hmmprof's), each once: the first fd found for a client id names it.
 */
static void scan_clients(struct clients *cs)
{
	DIR *proc = opendir("/proc");
	struct dirent *p;

	cs->n = 0;
	if (!proc)
		return;
	while ((p = readdir(proc)) && cs->n < MAX_CLIENTS) {
		char path[96], link[64], comm[32] = "";
		struct dirent *d;
		DIR *fds;
		FILE *f;
		int pid;

		if (!isdigit((unsigned char)p->d_name[0]))
			continue;
		pid = atoi(p->d_name);
		if (pid == getpid())
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd", pid);
		fds = opendir(path);
		if (!fds)
			continue;
		while ((d = readdir(fds)) && cs->n < MAX_CLIENTS) {
			struct client c = { 0 };
			char fdpath[400];
			ssize_t n;
			bool seen = false;

			if (!isdigit((unsigned char)d->d_name[0]))
				continue;
			/* only render nodes are worth an fdinfo read */
			snprintf(fdpath, sizeof(fdpath), "%s/%s", path,
				 d->d_name);
			n = readlink(fdpath, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = '\0';
			if (strncmp(link, "/dev/dri/", 9) ||
			    !read_client(pid, d->d_name, &c))
				continue;
			for (int i = 0; i < cs->n && !seen; i++)
				seen = cs->c[i].id == c.id;
			if (seen)
				continue;
			if (!comm[0]) {
				snprintf(fdpath, sizeof(fdpath),
					 "/proc/%d/comm", pid);
				f = fopen(fdpath, "re");
				if (f) {
					if (!fgets(comm, sizeof(comm), f))
						comm[0] = '\0';
					comm[strcspn(comm, "\n")] = '\0';
					fclose(f);
				}
			}
			snprintf(c.comm, sizeof(c.comm), "%s", comm);
			cs->c[cs->n++] = c;
		}
		closedir(fds);
	}
	closedir(proc);
}

static int cmp_rows(const void *a, const void *b)
{
	const struct proc_row *x = a, *y = b;

	if (x->resident_kib != y->resident_kib)
		return x->resident_kib < y->resident_kib ? 1 : -1;
	return x->pid - y->pid;
}

/*
 * Rows of @now, one per process and device, with rates against @prev
 * (files not in @prev count from zero: opened during the interval).
 * Returns the number of rows, most device memory first.
 */
static int make_rows(const struct clients *now, const struct clients *prev,
		     double dt, uint64_t ps, struct proc_row *rows)
{
	int n = 0;

	for (int i = 0; i < now->n; i++) {
		const struct client *c = &now->c[i];
		struct client zero = { 0 };
		const struct client *p = &zero;
		struct proc_row *r = NULL;

		for (int j = 0; j < prev->n; j++)
			if (prev->c[j].id == c->id)
				p = &prev->c[j];
		for (int k = 0; k < n && !r; k++)
			if (rows[k].pid == c->pid && rows[k].dev == c->dev)
				r = &rows[k];
		if (!r) {
			r = &rows[n++];
			memset(r, 0, sizeof(*r));
			r->pid = c->pid;
			r->dev = c->dev;
			snprintf(r->comm, sizeof(r->comm), "%s", c->comm);
		}
		r->resident_kib += c->resident_kib;
		r->pins += c->pins;
		r->cpu_faults += (double)(c->cpu_faults - p->cpu_faults) / dt;
		r->device_faults += (double)(c->device_faults -
					     p->device_faults) / dt;
		r->to_dev += (double)(c->to_dev - p->to_dev) * ps / dt;
		r->to_sys += (double)(c->to_sys - p->to_sys) * ps / dt;
	}
	qsort(rows, n, sizeof(rows[0]), cmp_rows);
	return n;
}

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
"evictions and copy-engine load, from the device counters; then one row\n"
"per process and device: the device memory its files hold, its fault and\n"
"migration rates and thrashing pins, from /proc/PID/fdinfo (other users'\n"
"processes are shown to root only).  Redraws on a terminal; prints one\n"
"plain line per device, and per process, and interval otherwise.\n"
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

/*
 * What the device is: its bus device, and for a PCI device (hmmgpu's PCI
 * personality) its IDs and memory BAR from libpciaccess.
 */
static void describe(const struct hp_device *dev, char *buf, size_t len)
{
	struct hmm_node_pci pci;
	char size[32];

	if (!strncmp(dev->node.bus, "pci:", 4) &&
	    !hmm_node_pci_identify(dev->node.bus, &pci))
		snprintf(buf, len, "%s [%04x:%04x], memory in BAR %u of %s",
			 dev->node.bus, pci.vendor_id, pci.device_id, pci.bar,
			 hp_fmt_bytes(size, sizeof(size), pci.bar_size));
	else
		snprintf(buf, len, "%s, memory in system RAM",
			 dev->node.bus[0] ? dev->node.bus : "bus unknown");
}

static void draw_tty(const struct hp_devices *devs, const struct rates *r,
		     double interval, const struct proc_row *rows, int nrows,
		     const char (*what)[160])
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
	for (int i = 0; i < devs->n; i++)
		printf("     %u: %s\n", devs->dev[i].node.index, what[i]);
	printf("\n%-7s %-16s %-4s %12s %9s %9s %12s %12s %6s\n", "PID",
	       "COMMAND", "DEV", "DEVICE MEM", "CPU FLT/s", "DEV FLT/s",
	       "H->D", "D->H", "PINS");
	for (int i = 0; i < nrows && i < 15; i++) {
		const struct proc_row *p = &rows[i];

		printf("%-7d %-16s %-4u %12s %9.0f %9.0f %12s %12s %6lld\n",
		       p->pid, p->comm, p->dev,
		       hp_fmt_bytes(a, sizeof(a),
				    (uint64_t)p->resident_kib << 10),
		       p->cpu_faults, p->device_faults,
		       hp_fmt_rate(c2, sizeof(c2), p->to_dev),
		       hp_fmt_rate(d, sizeof(d), p->to_sys), p->pins);
	}
	if (!nrows)
		printf("(no process has an hmmgpu file open%s)\n",
		       geteuid() ? " that /proc shows this user" : "");
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

static void draw_plain(const struct hp_devices *devs, const struct rates *r,
		       const struct proc_row *rows, int nrows)
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
	for (int i = 0; i < nrows; i++) {
		const struct proc_row *p = &rows[i];

		printf("%s proc %d %s dev %u mem %s cpu_faults %.0f/s "
		       "device_faults %.0f/s h2d %s d2h %s pins %lld\n", now,
		       p->pid, p->comm[0] ? p->comm : "?", p->dev,
		       hp_fmt_bytes(a, sizeof(a),
				    (uint64_t)p->resident_kib << 10),
		       p->cpu_faults, p->device_faults,
		       hp_fmt_rate(c2, sizeof(c2), p->to_dev),
		       hp_fmt_rate(d, sizeof(d), p->to_sys), p->pins);
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
	struct clients *cl = calloc(2, sizeof(*cl));
	struct proc_row *rows = calloc(MAX_CLIENTS, sizeof(*rows));
	int cur = 0, nrows = 0;
	struct hp_devices devs;
	char what[HP_MAX_DEVICES][160];
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
	if (!cl || !rows) {
		hp_err("top: out of memory");
		free(cl);
		free(rows);
		return 1;
	}
	if (hp_devices_open(&devs, false)) {
		free(cl);
		free(rows);
		return 1;
	}

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
	for (int i = 0; i < devs.n; i++) {
		describe(&devs.dev[i], what[i], sizeof(what[i]));
		if (!tty)
			printf("# dev %u: %s\n", devs.dev[i].node.index,
			       what[i]);
	}
	fflush(stdout);
	for (int i = 0; i < devs.n; i++)
		prev[i] = devs.dev[i].stats;
	scan_clients(&cl[cur]);
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
		scan_clients(&cl[!cur]);
		nrows = make_rows(&cl[!cur], &cl[cur], dt > 0 ? dt : 1,
				  devs.n && devs.dev[0].info.page_size ?
				  devs.dev[0].info.page_size : 4096, rows);
		cur = !cur;
		if (tty)
			draw_tty(&devs, r, interval, rows, nrows,
				 (const char (*)[160])what);
		else
			draw_plain(&devs, r, rows, nrows);
		if (ferror(stdout))
			break;
		if (iterations > 0)
			iterations--;
	}
	if (tty)
		printf("\033[?25h\n"); /* the cursor back */
	fflush(stdout);
	hp_devices_close(&devs);
	free(cl);
	free(rows);
	return 0;
}
