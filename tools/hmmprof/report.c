// SPDX-License-Identifier: MIT
/*
 * report.c - the profile as text (the summary), JSON and CSV.
 */
#define _GNU_SOURCE
#include "hmmprof.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

void hp_command_line(char *buf, size_t len, char **argv)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; argv && argv[i] && off + 1 < len; i++) {
		int n = snprintf(buf + off, len - off, "%s%s", i ? " " : "",
				 argv[i]);

		if (n < 0)
			break;
		off += (size_t)n;
	}
	if (off >= len && len > 4)
		strcpy(buf + len - 4, "...");
}

static void status_text(char *buf, size_t len, int status)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d",
			 WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)",
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "ended");
}

/* --- text ----------------------------------------------------------------- */

static void mig_line(FILE *f, const char *label, bool traced, uint64_t pp,
		     uint64_t dp, uint64_t ps)
{
	char b1[32], b2[32];

	if (traced)
		fprintf(f, "%-20s %11s %9llu", label,
			hp_fmt_bytes(b1, sizeof(b1), pp * ps),
			(unsigned long long)pp);
	else
		fprintf(f, "%-20s %11s %9s", label, "-", "-");
	fprintf(f, "   %11s %9llu\n", hp_fmt_bytes(b2, sizeof(b2), dp * ps),
		(unsigned long long)dp);
}

static void fault_line_exact(FILE *f, const char *label, uint64_t count,
			     struct hp_latency *l)
{
	char p50[32], p90[32], p99[32], mx[32];

	if (!count) {
		fprintf(f, "%-20s %9llu\n", label, 0ull);
		return;
	}
	if (!l->n) {
		fprintf(f, "%-20s %9llu %10s %10s %10s %10s\n", label,
			(unsigned long long)count, "-", "-", "-", "-");
		return;
	}
	fprintf(f, "%-20s %9llu %10s %10s %10s %10s\n", label,
		(unsigned long long)count,
		hp_fmt_ns(p50, sizeof(p50), hp_latency_percentile(l, 50)),
		hp_fmt_ns(p90, sizeof(p90), hp_latency_percentile(l, 90)),
		hp_fmt_ns(p99, sizeof(p99), hp_latency_percentile(l, 99)),
		hp_fmt_ns(mx, sizeof(mx), l->max));
}

static char *fmt_bound(char *buf, size_t len, uint64_t ns)
{
	char t[32];

	snprintf(buf, len, "< %s", hp_fmt_ns(t, sizeof(t), ns));
	return buf;
}

static void fault_line_hist(FILE *f, const char *label, uint64_t count,
			    const uint64_t *hist)
{
	char p50[32], p90[32], p99[32], mx[32];

	if (!count || !hist) {
		fprintf(f, "%-20s %9llu%s\n", label, (unsigned long long)count,
			count ? "          -          -          -          -" :
				"");
		return;
	}
	fprintf(f, "%-20s %9llu %10s %10s %10s %10s\n", label,
		(unsigned long long)count,
		fmt_bound(p50, sizeof(p50), hp_hist_percentile(hist, 50)),
		fmt_bound(p90, sizeof(p90), hp_hist_percentile(hist, 90)),
		fmt_bound(p99, sizeof(p99), hp_hist_percentile(hist, 99)),
		fmt_bound(mx, sizeof(mx), hp_hist_percentile(hist, 100)));
}

static double rate(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes * 1e9 / (double)ns : 0;
}

static void range_line(FILE *f, const struct hp_profile *p,
		       const struct hp_range *r)
{
	uint64_t npages = (r->end - r->start) / p->page_size;
	char sz[32];

	fprintf(f, "  0x%llx  %10s  ", (unsigned long long)r->start,
		hp_fmt_bytes(sz, sizeof(sz), r->end - r->start));
	for (int s = HP_RES_STATES - 1; s >= 0; s--) {
		double pct;

		if (!r->final[s])
			continue;
		pct = 100.0 * (double)r->final[s] / (double)npages;
		if (s >= HP_RES_DEVICE)
			fprintf(f, " %5.1f%% device %d", pct, s - HP_RES_DEVICE);
		else if (s == HP_RES_SYSTEM)
			fprintf(f, " %5.1f%% host", pct);
		else
			fprintf(f, " %5.1f%% untouched", pct);
	}
	fputc('\n', f);
}

#define ALLOC_ROWS 8

/* Short cause names for the allocation table's second line. */
static const char *short_cause(int cause)
{
	switch (cause) {
	case HMMGPU_CAUSE_DEVICE_FAULT: return "dev fault";
	case HMMGPU_CAUSE_PREFETCH: return "density";
	default: return hp_cause_label(cause);
	}
}

/* "prefetch 16.0 MiB, CPU fault 2.00 MiB" for one direction of @a. */
static void alloc_causes(FILE *f, const struct hp_alloc *a, int dir,
			 uint64_t ps)
{
	bool first = true;
	char b[32];

	for (int i = 0; i < hp_ncause_order; i++) {
		int k = hp_cause_order[i];

		if (!a->pages[dir][k])
			continue;
		fprintf(f, "%s%s %s", first ? "" : ", ", short_cause(k),
			hp_fmt_bytes(b, sizeof(b), a->pages[dir][k] * ps));
		first = false;
	}
}

static uint64_t alloc_dir_pages(const struct hp_alloc *a, int dir)
{
	uint64_t n = 0;

	for (int k = 0; k < HP_CAUSES; k++)
		n += a->pages[dir][k];
	return n;
}

/*
 * The allocations, costliest first: a row of totals and a line with the
 * bytes of each cause, each way.
 */
static void alloc_table(FILE *f, struct hp_profile *p)
{
	uint64_t ps = p->page_size;
	size_t *order = hp_allocs_by_cost(p), shown = 0;
	char lb[160], t1[32], t2[32], t3[32], t4[32];

	if (!order)
		return;
	fprintf(f, "\nAllocations, by time migrating (from libhmm's markers):\n");
	fprintf(f, "  %-18s %10s %10s %10s %8s %8s %8s %9s\n", "allocation",
		"size", "to device", "to host", "CPU flt", "dev flt",
		"bounced", "time");
	for (size_t i = 0; i < p->nallocs; i++) {
		const struct hp_alloc *a = &p->allocs[order[i]];
		uint64_t h2d = alloc_dir_pages(a, HP_TO_DEVICE);
		uint64_t d2h = alloc_dir_pages(a, HP_TO_HOST);

		if (!h2d && !d2h && !a->cpu_faults && !a->device_faults)
			continue;
		if (shown++ == ALLOC_ROWS)
			break;
		fprintf(f, "  %-18.18s %10s %10s %10s %8llu %8llu %8llu %9s\n",
			hp_alloc_display_name(p, order[i], lb, sizeof(lb)),
			hp_fmt_bytes(t1, sizeof(t1), a->size),
			hp_fmt_bytes(t2, sizeof(t2), h2d * ps),
			hp_fmt_bytes(t3, sizeof(t3), d2h * ps),
			(unsigned long long)a->cpu_faults,
			(unsigned long long)a->device_faults,
			(unsigned long long)a->bounces,
			hp_fmt_ns(t4, sizeof(t4), a->migrate_ns));
		fputs("   ", f);
		for (int dir = 0; dir < 2; dir++) {
			if (!(dir == HP_TO_DEVICE ? h2d : d2h))
				continue;
			fprintf(f, "%s %s ", dir == HP_TO_HOST && h2d ? ";" : "",
				dir == HP_TO_DEVICE ? "H->D" : "D->H");
			alloc_causes(f, a, dir, ps);
		}
		fputc('\n', f);
	}
	if (shown > ALLOC_ROWS)
		fprintf(f, "  ... and more (see --json)\n");
	if (!shown)
		fprintf(f, "  (no migration or fault hit any of the %zu "
			"allocations)\n", p->nallocs);
	if (p->unattributed_pages[0] || p->unattributed_pages[1])
		fprintf(f, "  outside every allocation: %s to device, %s to "
			"host\n",
			hp_fmt_bytes(t1, sizeof(t1),
				     p->unattributed_pages[HP_TO_DEVICE] * ps),
			hp_fmt_bytes(t2, sizeof(t2),
				     p->unattributed_pages[HP_TO_HOST] * ps));
	free(order);
}

void hp_report_text(FILE *f, struct hp_profile *p)
{
	const struct hp_counts *pc = &p->proc, *dc = &p->device;
	uint64_t ps = p->page_size;
	char cmd[256], st[96], t1[32], t2[32], t3[32];
	bool tr = p->traced;

	hp_command_line(cmd, sizeof(cmd), p->argv);
	status_text(st, sizeof(st), p->status);
	fprintf(f, "\n== hmmprof: %s (pid %d) %s after %s ==\n", cmd,
		(int)p->pid, st, hp_fmt_ns(t1, sizeof(t1), p->wall_ns));
	if (tr)
		fprintf(f, "process: pid %d, its threads and children "
			"(tracepoints)\n", (int)p->pid);
	else
		fprintf(f, "process: not traced (%s)\n",
			p->trace_note[0] ? p->trace_note : "--no-trace");
	fprintf(f, "device:  every process on");
	for (int i = 0; i < p->devs->n; i++)
		fprintf(f, "%s hmmgpu %u (%s)", i ? "," : "",
			p->devs->dev[i].node.index, p->devs->dev[i].node.path);
	fprintf(f, ", during the run (counters)\n");

	fprintf(f, "\n%-20s %21s   %21s\n", "Migrations", "process", "device");
	fprintf(f, "%-20s %11s %9s   %11s %9s\n", "", "bytes", "pages",
		"bytes", "pages");
	for (int dir = 0; dir < 2; dir++) {
		mig_line(f, hp_dir_label(dir), tr, hp_counts_pages(pc, dir),
			 hp_counts_pages(dc, dir), ps);
		for (int i = 0; i < hp_ncause_order; i++) {
			int k = hp_cause_order[i];
			char label[40];

			if (!pc->pages[dir][k] && !dc->pages[dir][k])
				continue;
			snprintf(label, sizeof(label), "  %s",
				 hp_cause_label(k));
			mig_line(f, label, tr, pc->pages[dir][k],
				 dc->pages[dir][k], ps);
		}
	}
	if (tr)
		fprintf(f, "%-20s %21llu   %21llu\n", "batches",
			(unsigned long long)pc->batches,
			(unsigned long long)dc->batches);
	else
		fprintf(f, "%-20s %21s   %21llu\n", "batches", "-",
			(unsigned long long)dc->batches);
	if (pc->copy_errors || dc->copy_errors)
		fprintf(f, "%-20s %21llu   %21llu\n", "copy failures",
			(unsigned long long)pc->copy_errors,
			(unsigned long long)dc->copy_errors);

	fprintf(f, "\n%-20s %9s %10s %10s %10s %10s\n", "Faults", "count",
		"p50", "p90", "p99", "max");
	if (tr)
		fault_line_exact(f, "CPU, process", pc->cpu_faults,
				 &p->cpu_lat);
	fault_line_hist(f, "CPU, device", dc->cpu_faults, dc->fault_latency);
	if (tr && p->have_device_fault_event)
		fault_line_exact(f, "device, process", pc->device_faults,
				 &p->dev_lat);
	fault_line_hist(f, "device, device", dc->device_faults, NULL);

	fprintf(f, "\n");
	if (tr)
		fprintf(f, "Evictions:        process %llu (%s), device %llu (%s)\n",
			(unsigned long long)pc->evictions,
			hp_fmt_bytes(t1, sizeof(t1),
				     pc->pages[HP_TO_HOST][HMMGPU_CAUSE_EVICTION] * ps),
			(unsigned long long)dc->evictions,
			hp_fmt_bytes(t2, sizeof(t2),
				     dc->pages[HP_TO_HOST][HMMGPU_CAUSE_EVICTION] * ps));
	else
		fprintf(f, "Evictions:        device %llu (%s)\n",
			(unsigned long long)dc->evictions,
			hp_fmt_bytes(t2, sizeof(t2),
				     dc->pages[HP_TO_HOST][HMMGPU_CAUSE_EVICTION] * ps));
	if (tr) {
		fprintf(f, "Time migrating:   ");
		for (int dir = 0; dir < 2; dir++) {
			uint64_t bytes = hp_counts_pages(pc, dir) * ps;

			fprintf(f, "%s %s", hp_dir_label(dir),
				hp_fmt_ns(t1, sizeof(t1), p->busy_ns[dir]));
			if (p->busy_ns[dir])
				fprintf(f, " at %s", hp_fmt_rate(t2, sizeof(t2),
					rate(bytes, p->busy_ns[dir])));
			fprintf(f, "; ");
		}
		fprintf(f, "%s in all (%.1f%% of the run)\n",
			hp_fmt_ns(t3, sizeof(t3), p->busy_ns[2]),
			p->wall_ns ? 100.0 * (double)p->busy_ns[2] /
					     (double)p->wall_ns : 0.0);
	}
	fprintf(f, "Copy engine busy: %s (device)\n",
		hp_fmt_ns(t1, sizeof(t1), dc->copy_busy_ns));
	for (int i = 0; i < p->devs->n; i++) {
		const struct hp_device *d = &p->devs->dev[i];

		fprintf(f, "Device memory:    hmmgpu %u: ", d->node.index);
		if (d->gone) {
			fprintf(f, "gone at exit (removed or unloaded); its "
				"counters are not in the device column\n");
			continue;
		}
		fprintf(f, "%s used of %s at exit (%s at start)%s\n",
			hp_fmt_bytes(t1, sizeof(t1), d->info.mem_total -
							      d->info.mem_free),
			hp_fmt_bytes(t2, sizeof(t2), d->info.mem_total),
			hp_fmt_bytes(t3, sizeof(t3),
				     p->info_before[i].mem_total -
					     p->info_before[i].mem_free),
			d->reset ? "; hmmgpu was reloaded: the device column "
				   "counts since then" : "");
	}
	if (p->module_reloaded)
		fprintf(f, "note: hmmgpu was reloaded during the run; events "
			"until hmmprof enabled them again were missed\n");

	if (tr && p->nallocs) {
		alloc_table(f, p);
	} else if (tr && p->nranges) {
		fprintf(f, "\nTouched ranges, residency at exit (from the "
			"events; largest first):\n");
		for (size_t i = 0; i < p->nranges && i < 8; i++)
			range_line(f, p, &p->ranges[i]);
		if (p->nranges > 8)
			fprintf(f, "  ... and %zu more (see --json)\n",
				p->nranges - 8);
		if (p->evicted_pages_unplaced)
			fprintf(f, "  (%s evicted with no hmmgpu_evicted "
				"event of this program naming where: the map "
				"still shows those pages on the device)\n",
				hp_fmt_bytes(t1, sizeof(t1),
					     p->evicted_pages_unplaced * ps));
	}
	if (tr && p->lost)
		fprintf(f, "\nwarning: %llu trace events were lost; the process "
			"numbers are incomplete (try --buffer-kib)\n",
			(unsigned long long)p->lost);
	if (tr && p->nev < p->nevents)
		fprintf(f, "\nnote: the plots use the first %zu of %llu events\n",
			p->nev, (unsigned long long)p->nevents);
	fprintf(f, "\n");
}

/* --- JSON ----------------------------------------------------------------- */

struct jw {
	FILE *f;
	int depth;
	bool first[32];
};

static void jw_str_raw(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void jw_key(struct jw *w, const char *key)
{
	if (w->depth > 0) {
		fputs(w->first[w->depth] ? "\n" : ",\n", w->f);
		w->first[w->depth] = false;
		fprintf(w->f, "%*s", 2 * w->depth, "");
	}
	if (key) {
		jw_str_raw(w->f, key);
		fputs(": ", w->f);
	}
}

static void jw_open(struct jw *w, const char *key, char c)
{
	jw_key(w, key);
	fputc(c, w->f);
	w->depth++;
	w->first[w->depth] = true;
}

static void jw_close(struct jw *w, char c)
{
	bool empty = w->first[w->depth];

	w->depth--;
	if (!empty)
		fprintf(w->f, "\n%*s", 2 * w->depth, "");
	fputc(c, w->f);
}

static void jw_u64(struct jw *w, const char *key, uint64_t v)
{
	jw_key(w, key);
	fprintf(w->f, "%llu", (unsigned long long)v);
}

static void jw_double(struct jw *w, const char *key, double v)
{
	jw_key(w, key);
	fprintf(w->f, "%.0f", v);
}

static void jw_str(struct jw *w, const char *key, const char *s)
{
	jw_key(w, key);
	jw_str_raw(w->f, s);
}

static void jw_hex(struct jw *w, const char *key, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)v);
	jw_str(w, key, buf);
}

static void jw_null(struct jw *w, const char *key)
{
	jw_key(w, key);
	fputs("null", w->f);
}

static void jw_bool(struct jw *w, const char *key, bool v)
{
	jw_key(w, key);
	fputs(v ? "true" : "false", w->f);
}

static void json_migrations(struct jw *w, const struct hp_counts *c,
			    uint64_t ps, bool batches)
{
	jw_open(w, "migrations", '{');
	for (int dir = 0; dir < 2; dir++) {
		uint64_t nb = 0;

		jw_open(w, hp_dir_key(dir), '{');
		for (int k = 0; k < HP_CAUSES; k++)
			nb += c->batches_by[dir][k];
		jw_open(w, "total", '{');
		jw_u64(w, "pages", hp_counts_pages(c, dir));
		jw_u64(w, "bytes", hp_counts_pages(c, dir) * ps);
		if (batches)
			jw_u64(w, "batches", nb);
		jw_close(w, '}');
		for (int i = 0; i < hp_ncause_order; i++) {
			int k = hp_cause_order[i];

			jw_open(w, hp_cause_key(k), '{');
			jw_u64(w, "pages", c->pages[dir][k]);
			jw_u64(w, "bytes", c->pages[dir][k] * ps);
			if (batches)
				jw_u64(w, "batches", c->batches_by[dir][k]);
			jw_close(w, '}');
		}
		jw_close(w, '}');
	}
	jw_close(w, '}');
}

static void json_latency(struct jw *w, const char *key, uint64_t count,
			 struct hp_latency *l)
{
	jw_open(w, key, '{');
	jw_u64(w, "count", count);
	if (l && l->n) {
		jw_u64(w, "p50_ns", hp_latency_percentile(l, 50));
		jw_u64(w, "p90_ns", hp_latency_percentile(l, 90));
		jw_u64(w, "p99_ns", hp_latency_percentile(l, 99));
		jw_u64(w, "max_ns", l->max);
		jw_u64(w, "mean_ns", l->sum / (l->n ? l->n : 1));
	}
	jw_close(w, '}');
}

static void json_hist(struct jw *w, const char *key, const uint64_t *h)
{
	jw_open(w, key, '[');
	for (int i = 0; i < HMMGPU_LATENCY_BUCKETS; i++)
		jw_u64(w, NULL, h[i]);
	jw_close(w, ']');
}

static void json_state_name(char *buf, size_t len, int s)
{
	if (s >= HP_RES_DEVICE)
		snprintf(buf, len, "device%d", s - HP_RES_DEVICE);
	else
		snprintf(buf, len, "%s", s == HP_RES_SYSTEM ? "host" :
							      "untouched");
}

static void json_range(struct jw *w, const struct hp_profile *p,
		       const struct hp_range *r)
{
	uint64_t npages = (r->end - r->start) / p->page_size, i = 0;
	char name[32];
	int runs = 0;

	jw_open(w, NULL, '{');
	jw_hex(w, "start", r->start);
	jw_u64(w, "bytes", r->end - r->start);
	jw_u64(w, "moved_bytes", r->moved_bytes);
	jw_open(w, "pages_at_exit", '{');
	for (int s = 0; s < HP_RES_STATES; s++) {
		if (!r->final[s] && s > HP_RES_SYSTEM)
			continue;
		json_state_name(name, sizeof(name), s);
		jw_u64(w, name, r->final[s]);
	}
	jw_close(w, '}');
	/* runs of pages in the same place, at most 4096 */
	jw_open(w, "map", '[');
	while (i < npages && runs < 4096) {
		uint64_t j = i;

		while (j < npages && r->state[j] == r->state[i])
			j++;
		json_state_name(name, sizeof(name), r->state[i]);
		jw_open(w, NULL, '{');
		jw_u64(w, "offset", i * p->page_size);
		jw_u64(w, "bytes", (j - i) * p->page_size);
		jw_str(w, "where", name);
		jw_close(w, '}');
		i = j;
		runs++;
	}
	jw_close(w, ']');
	jw_bool(w, "map_complete", i >= npages);
	jw_close(w, '}');
}

static void json_alloc_ref(struct jw *w, const char *key,
			   const struct hp_profile *p, uint32_t alloc)
{
	if (alloc && alloc <= p->nallocs)
		jw_u64(w, key, alloc - 1);
	else
		jw_null(w, key);
}

static void json_str_or_null(struct jw *w, const char *key, const char *s)
{
	if (s)
		jw_str(w, key, s);
	else
		jw_null(w, key);
}

static void json_allocations(struct jw *w, struct hp_profile *p)
{
	uint64_t ps = p->page_size;
	size_t *order = hp_allocs_by_cost(p);

	jw_open(w, "allocations", '[');
	for (size_t i = 0; order && i < p->nallocs; i++) {
		const struct hp_alloc *a = &p->allocs[i];

		jw_open(w, NULL, '{');
		jw_u64(w, "id", i);
		json_str_or_null(w, "name", a->name);
		jw_hex(w, "start", a->start);
		jw_u64(w, "size", a->size);
		jw_u64(w, "pid", (uint64_t)a->pid);
		json_str_or_null(w, "site", a->site);
		jw_u64(w, "alloc_ns", a->t_alloc);
		if (a->t_free == UINT64_MAX)
			jw_null(w, "free_ns");
		else
			jw_u64(w, "free_ns", a->t_free);
		jw_open(w, "migrations", '{');
		for (int dir = 0; dir < 2; dir++) {
			uint64_t total = 0;

			for (int k = 0; k < HP_CAUSES; k++)
				total += a->pages[dir][k];
			jw_open(w, hp_dir_key(dir), '{');
			jw_u64(w, "bytes", total * ps);
			for (int c = 0; c < hp_ncause_order; c++) {
				int k = hp_cause_order[c];

				jw_u64(w, hp_cause_key(k), a->pages[dir][k] * ps);
			}
			jw_close(w, '}');
		}
		jw_close(w, '}');
		jw_u64(w, "batches", a->batches);
		jw_u64(w, "cpu_faults", a->cpu_faults);
		jw_u64(w, "device_faults", a->device_faults);
		jw_u64(w, "evicted_bytes", a->evicted_pages * ps);
		jw_u64(w, "bounced_pages", a->bounces);
		jw_u64(w, "migrate_ns", a->migrate_ns);
		jw_u64(w, "device_fault_ns", a->device_fault_ns);
		jw_close(w, '}');
	}
	jw_close(w, ']');
	jw_open(w, "allocations_by_cost", '[');
	for (size_t i = 0; order && i < p->nallocs; i++)
		jw_u64(w, NULL, order[i]);
	jw_close(w, ']');
	jw_open(w, "unattributed_bytes", '{');
	jw_u64(w, "to_device", p->unattributed_pages[HP_TO_DEVICE] * ps);
	jw_u64(w, "to_host", p->unattributed_pages[HP_TO_HOST] * ps);
	jw_close(w, '}');
	free(order);
}

static void json_markers(struct jw *w, const struct hp_profile *p)
{
	jw_u64(w, "markers_seen", p->nmarkers);
	jw_open(w, "markers", '[');
	for (size_t i = 0; i < p->nmarks; i++) {
		const struct hp_mark *m = &p->marks[i];

		jw_open(w, NULL, '{');
		jw_str(w, "kind", hp_mark_kind_key(m->kind));
		jw_u64(w, "time_ns", m->t_ns);
		jw_u64(w, "ns", m->ns);
		jw_u64(w, "pid", (uint64_t)m->pid);
		jw_u64(w, "tid", (uint64_t)m->tid);
		if (m->dev == HP_MK_NO_DEV)
			jw_null(w, "dev");
		else {
			jw_key(w, "dev");
			fprintf(w->f, "%d", m->dev);
		}
		jw_u64(w, "stream", m->stream);
		jw_hex(w, "ptr", m->ptr);
		jw_u64(w, "size", m->size);
		if (m->kind == HP_MK_MEMCPY)
			jw_hex(w, "src", m->src);
		if (m->kind == HP_MK_LAUNCH) {
			jw_open(w, "grid", '[');
			for (int k = 0; k < 3; k++)
				jw_u64(w, NULL, m->grid[k]);
			jw_close(w, ']');
		}
		json_str_or_null(w, "function", m->what);
		json_str_or_null(w, "kernel", m->kernel);
		json_str_or_null(w, "site", m->site);
		json_alloc_ref(w, "allocation", p, m->alloc);
		jw_close(w, '}');
	}
	jw_close(w, ']');
}

void hp_report_json(FILE *f, struct hp_profile *p)
{
	const struct hp_counts *pc = &p->proc, *dc = &p->device;
	uint64_t ps = p->page_size;
	struct jw w = { .f = f };

	jw_open(&w, NULL, '{');
	jw_u64(&w, "version", 2);
	jw_open(&w, "command", '[');
	for (int i = 0; p->argv && p->argv[i]; i++)
		jw_str(&w, NULL, p->argv[i]);
	jw_close(&w, ']');
	jw_u64(&w, "pid", (uint64_t)p->pid);
	if (WIFEXITED(p->status))
		jw_u64(&w, "exit_status", (uint64_t)WEXITSTATUS(p->status));
	else
		jw_null(&w, "exit_status");
	if (WIFSIGNALED(p->status))
		jw_u64(&w, "signal", (uint64_t)WTERMSIG(p->status));
	else
		jw_null(&w, "signal");
	jw_u64(&w, "wall_ns", p->wall_ns);
	jw_u64(&w, "page_size", ps);

	jw_open(&w, "devices", '[');
	for (int i = 0; i < p->devs->n; i++) {
		const struct hp_device *d = &p->devs->dev[i];

		jw_open(&w, NULL, '{');
		jw_u64(&w, "index", d->node.index);
		jw_str(&w, "node", d->node.path);
		jw_u64(&w, "mem_total", d->info.mem_total);
		jw_u64(&w, "mem_used_start", p->info_before[i].mem_total -
						     p->info_before[i].mem_free);
		jw_u64(&w, "mem_used_end", d->info.mem_total - d->info.mem_free);
		jw_bool(&w, "removed", d->gone);
		jw_bool(&w, "counters_reset", d->reset);
		jw_close(&w, '}');
	}
	jw_close(&w, ']');

	jw_open(&w, "trace", '{');
	jw_bool(&w, "enabled", p->traced);
	jw_str(&w, "note", p->trace_note);
	jw_u64(&w, "events", p->nevents);
	jw_u64(&w, "events_kept", p->nev);
	jw_u64(&w, "lost_events", p->lost);
	jw_bool(&w, "module_reloaded", p->module_reloaded);
	jw_close(&w, '}');

	if (p->traced) {
		jw_open(&w, "process", '{');
		json_migrations(&w, pc, ps, true);
		jw_u64(&w, "batches", pc->batches);
		jw_u64(&w, "copy_failures", pc->copy_errors);
		json_latency(&w, "cpu_faults", pc->cpu_faults, &p->cpu_lat);
		if (p->have_device_fault_event)
			json_latency(&w, "device_faults", pc->device_faults,
				     &p->dev_lat);
		else
			jw_null(&w, "device_faults");
		jw_u64(&w, "evictions", pc->evictions);
		jw_open(&w, "migrate_ns", '{');
		jw_u64(&w, "to_device", p->busy_ns[HP_TO_DEVICE]);
		jw_u64(&w, "to_host", p->busy_ns[HP_TO_HOST]);
		jw_u64(&w, "total", p->busy_ns[2]);
		jw_close(&w, '}');
		jw_open(&w, "throughput_bytes_per_s", '{');
		for (int dir = 0; dir < 2; dir++)
			jw_double(&w, hp_dir_key(dir),
				  rate(hp_counts_pages(pc, dir) * ps,
				       p->busy_ns[dir]));
		jw_close(&w, '}');
		jw_close(&w, '}');
	} else {
		jw_null(&w, "process");
	}

	jw_open(&w, "device", '{');
	json_migrations(&w, dc, ps, false);
	jw_u64(&w, "batches", dc->batches);
	jw_u64(&w, "copy_errors", dc->copy_errors);
	jw_u64(&w, "copy_busy_ns", dc->copy_busy_ns);
	jw_open(&w, "cpu_faults", '{');
	jw_u64(&w, "count", dc->cpu_faults);
	if (dc->cpu_faults) {
		jw_u64(&w, "p50_ns_below", hp_hist_percentile(dc->fault_latency, 50));
		jw_u64(&w, "p90_ns_below", hp_hist_percentile(dc->fault_latency, 90));
		jw_u64(&w, "p99_ns_below", hp_hist_percentile(dc->fault_latency, 99));
	}
	jw_close(&w, '}');
	jw_open(&w, "device_faults", '{');
	jw_u64(&w, "count", dc->device_faults);
	jw_close(&w, '}');
	jw_u64(&w, "evictions", dc->evictions);
	json_hist(&w, "cpu_fault_latency_log2_us", dc->fault_latency);
	json_hist(&w, "batch_latency_log2_us", dc->migrate_latency);
	jw_close(&w, '}');

	jw_open(&w, "ranges", '[');
	for (size_t i = 0; p->traced && i < p->nranges; i++)
		json_range(&w, p, &p->ranges[i]);
	jw_close(&w, ']');
	jw_u64(&w, "evicted_bytes_not_in_map", p->evicted_pages_unplaced * ps);
	json_allocations(&w, p);
	json_markers(&w, p);
	jw_close(&w, '}');
	fputc('\n', f);
}

/* --- CSV ------------------------------------------------------------------ */

void hp_csv_header(FILE *f)
{
	fprintf(f, "time_ns,pid,tid,dev,direction,cause,start,npages,pages,"
		"bytes,peer_pages,failed,ns,event,allocation,detail\n");
}

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static void csv_field(FILE *f, const char *s)
{
	if (!s)
		return;
	if (!strpbrk(s, ",\"\r\n")) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static void csv_alloc(FILE *f, const struct hp_profile *p, uint32_t alloc)
{
	char buf[32];

	fputc(',', f);
	if (alloc && alloc <= p->nallocs)
		csv_field(f, hp_alloc_label(&p->allocs[alloc - 1], buf,
					    sizeof(buf)));
}

static const char *event_key(const struct hp_event *ev)
{
	switch (ev->type) {
	case HP_EV_BATCH: return "batch";
	case HP_EV_CPU_FAULT: return "cpu_fault";
	case HP_EV_DEVICE_FAULT: return "device_fault";
	default: return "evicted";
	}
}

void hp_csv_row(FILE *f, const struct hp_profile *p, const struct hp_event *ev)
{
	uint64_t start = ev->type == HP_EV_DEVICE_FAULT ? ev->addr : ev->start;

	fprintf(f, "%llu,%d,%d,%u,%s,%s,0x%llx,%u,%u,%llu,%u,%u,%llu,%s",
		(unsigned long long)ev->t_ns, ev->pid, ev->tid, ev->dev,
		hp_dir_key(ev->dir),
		ev->type == HP_EV_EVICTED ? "eviction" : hp_cause_key(ev->cause),
		(unsigned long long)start, ev->npages, ev->moved,
		(unsigned long long)ev->moved * p->page_size, ev->peer,
		ev->failed, (unsigned long long)ev->ns, event_key(ev));
	csv_alloc(f, p, ev->alloc);
	fputs(",\n", f);
}

void hp_csv_mark_row(FILE *f, const struct hp_profile *p,
		     const struct hp_mark *m)
{
	const char *dir = "", *detail = m->kernel ? m->kernel :
				   m->what ? m->what : m->site;
	uint64_t ps = p->page_size;
	char dev[16] = "";

	if (m->dev != HP_MK_NO_DEV)
		snprintf(dev, sizeof(dev), "%d", m->dev);
	if (m->kind == HP_MK_PREFETCH)
		dir = m->dev >= 0 ? "to_device" : "to_host";
	fprintf(f, "%llu,%d,%d,%s,%s,,0x%llx,%llu,0,%llu,0,0,%llu,%s",
		(unsigned long long)m->t_ns, m->pid, m->tid, dev, dir,
		(unsigned long long)m->ptr,
		(unsigned long long)((m->size + ps - 1) / ps),
		(unsigned long long)m->size, (unsigned long long)m->ns,
		hp_mark_kind_key(m->kind));
	csv_alloc(f, p, m->alloc);
	fputc(',', f);
	csv_field(f, detail);
	fputc('\n', f);
}
