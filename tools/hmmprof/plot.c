// SPDX-License-Identifier: MIT
/*
 * plot.c - pictures of a profile: an SVG document, or a self-contained
 * HTML page holding the summary and the same SVG.
 *
 * Three kinds of plot share one time axis (0 to the end of the program):
 *
 *  - bytes migrated over time: one cumulative line per direction, from
 *    the batches' end times;
 *  - the timeline: a lane per stream with its kernels (and the prefetches
 *    and copies it ran), from libhmm's markers, and a lane per device
 *    with its device faults and its batches each way, from the events;
 *  - the fault latency histogram: CPU and device faults of the process
 *    per log2 microsecond bucket (no time axis);
 *  - the residency map of each of the four costliest allocations (of the
 *    largest touched ranges when libhmm announced none): address
 *    downwards, time rightwards, each cell coloured by where most pages
 *    of its row were at that time (host, device N; blank: no event has
 *    named them yet).
 *
 * No scripts, fonts or external files: the output opens in any browser
 * or SVG viewer as is.
 */
#define _GNU_SOURCE
#include "hmmprof.h"

#include <stdlib.h>
#include <string.h>

#define W 960        /* document width */
#define ML 96        /* left margin (axis labels) */
#define MR 24        /* right margin */
#define PW (W - ML - MR)
#define LINE_H 240   /* height of the migration plot */
#define MAP_ROWS 64  /* rows of a residency map at most */
#define MAP_H 192    /* its height at most */
#define MAX_MAPS 4
#define LANE_H 18    /* height of a timeline lane */
#define MAX_LANES 16
#define KERNEL_COLOR "#2ca02c"
#define STREAM_OP_COLOR "#8c9fb1"
#define FAULT_COLOR "#d62728"

static const char *const dir_color[2] = { "#1f77b4", "#ff7f0e" };
static const char *const dev_color[] = {
	"#1f77b4", "#2ca02c", "#9467bd", "#d62728",
	"#8c564b", "#e377c2", "#17becf", "#bcbd22",
};
#define HOST_COLOR "#b8b8b8"

static const char *state_color(int s)
{
	if (s == HP_RES_SYSTEM)
		return HOST_COLOR;
	return dev_color[(s - HP_RES_DEVICE) % 8];
}

static void state_class(char *buf, size_t len, int s)
{
	if (s == HP_RES_SYSTEM)
		snprintf(buf, len, "res-host");
	else
		snprintf(buf, len, "res-dev%d", s - HP_RES_DEVICE);
}

static void xml_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		default: fputc(*s, f);
		}
	}
}

/* A "nice" step (1, 2, 5 times a power of ten) for about @n ticks. */
static uint64_t nice_step(uint64_t max, int n)
{
	uint64_t step = 1;

	while (step * 10 * (uint64_t)n <= max)
		step *= 10;
	if (step * 1 * (uint64_t)n >= max)
		return step;
	if (step * 2 * (uint64_t)n >= max)
		return step * 2;
	if (step * 5 * (uint64_t)n >= max)
		return step * 5;
	return step * 10;
}

/* A power of two for byte axes, so labels read 2 MiB, 4 MiB... */
static uint64_t pow2_step(uint64_t max, int n)
{
	uint64_t step = 1;

	while (step * (uint64_t)n < max)
		step *= 2;
	return step;
}

static double xpos(uint64_t t, uint64_t wall)
{
	return ML + (wall ? (double)PW * (double)t / (double)wall : 0);
}

/* The time axis under a plot whose bottom is at @y. */
static void time_axis(FILE *f, int y, uint64_t wall)
{
	uint64_t step = nice_step(wall ? wall : 1, 8);
	char lab[32];

	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
		"stroke=\"#444\"/>\n", ML, y, ML + PW, y);
	for (uint64_t t = 0; t <= wall; t += step) {
		double x = xpos(t, wall);

		fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" "
			"stroke=\"#444\"/>", x, y, x, y + 4);
		fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">"
			"%s</text>\n", x, y + 16,
			t ? hp_fmt_ns(lab, sizeof(lab), t) : "0");
		if (step == 0)
			break;
	}
	fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" "
		"fill=\"#666\">time since start</text>\n", ML + PW, y + 32);
}

static void migration_plot(FILE *f, struct hp_profile *p, int top)
{
	uint64_t total[2] = { 0, 0 }, ymax, ystep, ps = p->page_size;
	int bottom = top + LINE_H;
	char lab[32];

	fprintf(f, "<g id=\"migrations\">\n");
	fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"title\" "
		"font-weight=\"bold\">Bytes migrated over time (cumulative, "
		"this process)</text>\n", ML, top - 12);
	for (size_t i = 0; i < p->nev; i++)
		if (hp_event_is_batch(&p->ev[i]))
			total[p->ev[i].dir] += (uint64_t)p->ev[i].moved * ps;
	ymax = total[0] > total[1] ? total[0] : total[1];
	ystep = pow2_step(ymax ? ymax : 1, 5);
	ymax = ystep * ((ymax + ystep - 1) / ystep);
	if (!ymax)
		ymax = ystep;

	/* grid and y labels */
	for (uint64_t v = 0; v <= ymax; v += ystep) {
		double y = bottom - (double)LINE_H * (double)v / (double)ymax;

		fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" "
			"stroke=\"#e4e4e4\"/>", ML, y, ML + PW, y);
		fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s"
			"</text>\n", ML - 6, y + 4,
			hp_fmt_bytes(lab, sizeof(lab), v));
	}
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
		"stroke=\"#444\"/>\n", ML, top, ML, bottom);
	time_axis(f, bottom, p->wall_ns);

	/* one polyline per direction, sampled at each pixel column */
	for (int dir = 0; dir < 2; dir++) {
		uint64_t cum = 0;
		size_t e = 0;

		fprintf(f, "<polyline id=\"%s\" class=\"series %s\" "
			"fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
			"points=\"", hp_dir_key(dir), hp_dir_key(dir),
			dir_color[dir]);
		for (int c = 0; c <= PW; c++) {
			uint64_t t = c == PW ? UINT64_MAX :
				     (uint64_t)((double)p->wall_ns * c / PW);

			for (; e < p->nev && p->ev[e].t_ns <= t; e++)
				if (hp_event_is_batch(&p->ev[e]) &&
				    p->ev[e].dir == dir)
					cum += (uint64_t)p->ev[e].moved * ps;
			fprintf(f, "%s%d,%.1f", c ? " " : "", ML + c,
				bottom - (double)LINE_H * (double)cum /
						 (double)ymax);
		}
		fprintf(f, "\"><title>%s: %s</title></polyline>\n",
			hp_dir_label(dir),
			hp_fmt_bytes(lab, sizeof(lab), total[dir]));
	}

	/* legend */
	for (int dir = 0; dir < 2; dir++) {
		int x = ML + 12 + dir * 260, y = top + 14;

		fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
			"stroke=\"%s\" stroke-width=\"3\"/>", x, y - 4, x + 24,
			y - 4, dir_color[dir]);
		fprintf(f, "<text x=\"%d\" y=\"%d\">%s: %s</text>\n", x + 30,
			y, hp_dir_label(dir),
			hp_fmt_bytes(lab, sizeof(lab), total[dir]));
	}
	fprintf(f, "</g>\n");
}

/* What a pixel column of a timeline lane holds. */
enum {
	COL_KERNEL = 1, COL_STREAM_OP = 2, COL_FAULT = 4, COL_TO_DEVICE = 8,
	COL_TO_HOST = 16,
};

struct lane {
	char label[40];
	int32_t pid, dev;  /* a stream's process, or a device (pid 0) */
	uint64_t stream;
	uint8_t col[PW];
};

/* Marks the columns of [@end - @ns, @end] with @bit. */
static void lane_fill(struct lane *l, uint64_t end, uint64_t ns,
		      uint64_t wall, uint8_t bit)
{
	uint64_t start = end > ns ? end - ns : 0;
	int a, b;

	if (!wall)
		return;
	a = (int)((double)PW * (double)start / (double)wall);
	b = (int)((double)PW * (double)end / (double)wall);
	if (a >= PW)
		a = PW - 1;
	if (b >= PW)
		b = PW - 1;
	for (int c = a < 0 ? 0 : a; c <= b; c++)
		l->col[c] |= bit;
}

static struct lane *lane_get(struct lane *lanes, int *n, int32_t pid,
			     uint64_t stream, int32_t dev)
{
	for (int i = 0; i < *n; i++)
		if (lanes[i].pid == pid && lanes[i].stream == stream &&
		    lanes[i].dev == dev)
			return &lanes[i];
	if (*n == MAX_LANES)
		return NULL;
	memset(&lanes[*n], 0, sizeof(lanes[0]));
	lanes[*n].pid = pid;
	lanes[*n].stream = stream;
	lanes[*n].dev = dev;
	if (pid)
		snprintf(lanes[*n].label, sizeof(lanes[0].label),
			 "stream %llu", (unsigned long long)stream);
	else
		snprintf(lanes[*n].label, sizeof(lanes[0].label), "hmmgpu %d",
			 dev);
	return &lanes[(*n)++];
}

/* Runs of columns of @l holding @bit, as rects of @cls in @row. */
static void lane_rects(FILE *f, const struct lane *l, uint8_t bit,
		       const char *cls, const char *color, int y, int h)
{
	for (int c = 0; c < PW;) {
		int e = c;

		if (!(l->col[c] & bit)) {
			c++;
			continue;
		}
		while (e < PW && (l->col[e] & bit))
			e++;
		fprintf(f, "<rect class=\"%s\" x=\"%d\" y=\"%d\" "
			"width=\"%d\" height=\"%d\" fill=\"%s\"/>\n", cls,
			ML + c, y, e - c, h, color);
		c = e;
	}
}

static int timeline_lanes(struct hp_profile *p, struct lane *lanes)
{
	int n = 0;

	/* streams first, in the order their work appears */
	for (size_t i = 0; i < p->nmarks; i++) {
		const struct hp_mark *m = &p->marks[i];
		struct lane *l;

		if (!m->stream || (m->kind != HP_MK_LAUNCH &&
				   m->kind != HP_MK_PREFETCH &&
				   m->kind != HP_MK_MEMCPY &&
				   m->kind != HP_MK_MEMSET))
			continue;
		l = lane_get(lanes, &n, m->pid, m->stream, -1);
		if (l)
			lane_fill(l, m->t_ns, m->ns, p->wall_ns,
				  m->kind == HP_MK_LAUNCH ? COL_KERNEL :
							    COL_STREAM_OP);
	}
	for (size_t i = 0; i < p->nev; i++) {
		const struct hp_event *ev = &p->ev[i];
		struct lane *l;

		if (ev->type == HP_EV_EVICTED ||
		    (ev->type == HP_EV_BATCH && !ev->moved))
			continue;
		l = lane_get(lanes, &n, 0, 0, ev->dev);
		if (!l)
			continue;
		if (ev->type == HP_EV_DEVICE_FAULT)
			lane_fill(l, ev->t_ns, ev->ns, p->wall_ns, COL_FAULT);
		else if (ev->type == HP_EV_CPU_FAULT ? ev->moved : 1)
			lane_fill(l, ev->t_ns, ev->ns, p->wall_ns,
				  ev->dir == HP_TO_DEVICE ? COL_TO_DEVICE :
							    COL_TO_HOST);
	}
	return n;
}

static int timeline_height(int nlanes)
{
	return nlanes ? 40 + nlanes * (LANE_H + 6) + 40 : 0;
}

/* The timeline at @top: a lane per stream and per device. */
static void timeline_plot(FILE *f, struct hp_profile *p, struct lane *lanes,
			  int nlanes, int top)
{
	static const struct {
		const char *label, *color;
	} legend[] = {
		{ "kernel", KERNEL_COLOR }, { "stream prefetch/copy",
					      STREAM_OP_COLOR },
		{ "device fault", FAULT_COLOR }, { "to device", "#1f77b4" },
		{ "to host", "#ff7f0e" },
	};
	int y = top;

	fprintf(f, "<g id=\"timeline\">\n");
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">Timeline: "
		"kernels per stream, device faults and migrations per device"
		"</text>\n", ML, top - 12);
	for (int i = 0; i < (int)(sizeof(legend) / sizeof(*legend)); i++)
		fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" "
			"height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">"
			"%s</text>\n", ML + i * 150, top, legend[i].color,
			ML + i * 150 + 18, top + 9, legend[i].label);
	y += 22;
	for (int i = 0; i < nlanes; i++, y += LANE_H + 6) {
		const struct lane *l = &lanes[i];

		fprintf(f, "<g class=\"lane\" id=\"lane-%s-%llu\">\n",
			l->pid ? "stream" : "device", l->pid ?
			(unsigned long long)l->stream :
			(unsigned long long)l->dev);
		fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" "
			"height=\"%d\" fill=\"#f4f4f4\"/>\n", ML, y, PW,
			LANE_H);
		fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s"
			"</text>\n", ML - 6, y + 13, l->label);
		if (l->pid) {
			lane_rects(f, l, COL_STREAM_OP, "stream_op",
				   STREAM_OP_COLOR, y, LANE_H);
			lane_rects(f, l, COL_KERNEL, "kernel", KERNEL_COLOR,
				   y, LANE_H);
		} else {
			lane_rects(f, l, COL_FAULT, "device_fault",
				   FAULT_COLOR, y, LANE_H / 3);
			lane_rects(f, l, COL_TO_DEVICE, "to_device",
				   dir_color[HP_TO_DEVICE], y + LANE_H / 3,
				   LANE_H / 3);
			lane_rects(f, l, COL_TO_HOST, "to_host",
				   dir_color[HP_TO_HOST], y + 2 * LANE_H / 3,
				   LANE_H / 3);
		}
		fprintf(f, "</g>\n");
	}
	time_axis(f, y, p->wall_ns);
	fprintf(f, "</g>\n");
}

#define HIST_H 160
#define HIST_BUCKETS 24
#define CPU_LAT_COLOR "#9467bd"

static void lat_hist(const struct hp_latency *l, uint64_t *b)
{
	for (size_t i = 0; i < l->n; i++) {
		uint64_t us = l->ns[i] / 1000;
		int k = 0;

		while (us >= 2 && k < HIST_BUCKETS - 1) {
			us >>= 1;
			k++;
		}
		b[k]++;
	}
}

static int hist_height(const struct hp_profile *p)
{
	return p->traced && (p->cpu_lat.n || p->dev_lat.n) ? HIST_H + 90 : 0;
}

/*
 * The fault latency histogram at @top: per log2 µs bucket, a bar for
 * the CPU faults and one for the device faults of the process.
 */
static void latency_plot(FILE *f, struct hp_profile *p, int top)
{
	uint64_t b[2][HIST_BUCKETS] = { { 0 } }, max = 0;
	int lo = HIST_BUCKETS, hi = -1, bottom = top + HIST_H, nb, bw;
	static const char *const cls[2] = { "lat-cpu", "lat-device" };
	static const char *const col[2] = { CPU_LAT_COLOR, FAULT_COLOR };
	char lab[32];

	lat_hist(&p->cpu_lat, b[0]);
	lat_hist(&p->dev_lat, b[1]);
	for (int k = 0; k < HIST_BUCKETS; k++) {
		for (int s = 0; s < 2; s++) {
			if (!b[s][k])
				continue;
			lo = k < lo ? k : lo;
			hi = k > hi ? k : hi;
			max = b[s][k] > max ? b[s][k] : max;
		}
	}
	if (hi < 0)
		return;
	nb = hi - lo + 1;
	bw = PW / nb;
	fprintf(f, "<g id=\"fault-latency\">\n");
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">Fault "
		"latency (this process): faults per duration</text>\n", ML,
		top - 12);
	for (int s = 0; s < 2; s++)
		fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" "
			"height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">"
			"%s faults: %zu</text>\n", ML + 420 + s * 180, top - 21,
			col[s], ML + 438 + s * 180, top - 12,
			s ? "device" : "CPU", s ? p->dev_lat.n : p->cpu_lat.n);
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
		"stroke=\"#444\"/>\n", ML, bottom, ML + PW, bottom);
	fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%llu</text>"
		"\n", ML - 6, top + 10, (unsigned long long)max);
	fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">0</text>\n",
		ML - 6, bottom);
	for (int k = lo; k <= hi; k++) {
		int x = ML + (k - lo) * bw;

		for (int s = 0; s < 2; s++) {
			int h = (int)((double)HIST_H * (double)b[s][k] /
				      (double)max + 0.5);

			if (!b[s][k])
				continue;
			if (h < 1)
				h = 1;
			fprintf(f, "<rect class=\"%s\" x=\"%d\" y=\"%d\" "
				"width=\"%d\" height=\"%d\" fill=\"%s\">"
				"<title>%llu</title></rect>\n", cls[s],
				x + 2 + s * (bw - 4) / 2, bottom - h,
				(bw - 4) / 2, h, col[s],
				(unsigned long long)b[s][k]);
		}
		fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">"
			"%s</text>\n", x + bw / 2, bottom + 16,
			k ? hp_fmt_ns(lab, sizeof(lab), 1000ull << k) : "0");
	}
	fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" "
		"fill=\"#666\">duration, from (log2 buckets)</text>\n",
		ML + PW, bottom + 32);
	fprintf(f, "</g>\n");
}

static int map_height(size_t nrows)
{
	int rh = nrows ? MAP_H / (int)nrows : MAP_H;

	if (rh < 2)
		rh = 2;
	if (rh > 12)
		rh = 12;
	return rh;
}

/*
 * The residency map of @r at @top (of the events of allocation @alloc,
 * 1 + index, when not 0); returns its height.
 */
static int residency_map(FILE *f, struct hp_profile *p,
			 const struct hp_range *r, uint32_t alloc, int idx,
			 int top)
{
	uint64_t ppr, ps = p->page_size;
	size_t nrows;
	uint8_t *grid;
	char sz[32], lab[32], cls[32];
	int rh, h;

	nrows = hp_profile_residency_grid(p, r, alloc, MAP_ROWS, PW, &grid,
					  &ppr);
	if (!nrows)
		return 0;
	rh = map_height(nrows);
	h = rh * (int)nrows;
	fprintf(f, "<g class=\"residency\" id=\"residency-%d\">\n", idx);
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">Residency of ",
		ML, top - 12);
	if (alloc && p->allocs[alloc - 1].name) {
		char name[160];

		xml_text(f, hp_alloc_display_name(p, alloc - 1, name,
						  sizeof(name)));
		fputc(' ', f);
	}
	fprintf(f, "0x%llx - 0x%llx (%s) over time</text>\n",
		(unsigned long long)r->start, (unsigned long long)r->end,
		hp_fmt_bytes(sz, sizeof(sz), r->end - r->start));
	fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
		"fill=\"#ffffff\" stroke=\"#444\"/>\n", ML, top, PW, h);
	for (size_t row = 0; row < nrows; row++) {
		size_t c = 0;

		while (c < (size_t)PW) {
			uint8_t s = grid[row * PW + c];
			size_t e = c;

			while (e < (size_t)PW && grid[row * PW + e] == s)
				e++;
			if (s != HP_RES_UNTOUCHED) {
				state_class(cls, sizeof(cls), s);
				fprintf(f, "<rect class=\"%s\" x=\"%zu\" "
					"y=\"%d\" width=\"%zu\" height=\"%d\" "
					"fill=\"%s\"/>\n", cls, ML + c,
					top + (int)row * rh, e - c, rh,
					state_color(s));
			}
			c = e;
		}
	}
	free(grid);
	/* address labels: offsets into the range */
	fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">+0</text>\n",
		ML - 6, top + 10);
	fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">+%s</text>\n",
		ML - 6, top + h,
		hp_fmt_bytes(lab, sizeof(lab), r->end - r->start));
	fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" fill=\"#666\">"
		"%s/row</text>\n", ML - 6, top + h / 2 + 4,
		hp_fmt_bytes(lab, sizeof(lab), ppr * ps));
	time_axis(f, top + h, p->wall_ns);
	fprintf(f, "</g>\n");
	return h;
}

static int legend_states(FILE *f, struct hp_profile *p, int y)
{
	int x = ML;
	char cls[32];

	fprintf(f, "<g id=\"residency-legend\">\n");
	fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"10\" "
		"fill=\"#ffffff\" stroke=\"#444\"/><text x=\"%d\" y=\"%d\">"
		"no event yet</text>\n", x, y - 9, x + 18, y);
	x += 120;
	for (int s = HP_RES_SYSTEM; s < HP_RES_DEVICE + p->devs->n &&
				    s < HP_RES_STATES; s++) {
		state_class(cls, sizeof(cls), s);
		fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"10\" "
			"fill=\"%s\"/><text x=\"%d\" y=\"%d\">", x, y - 9,
			state_color(s), x + 18, y);
		if (s == HP_RES_SYSTEM)
			fprintf(f, "host memory</text>\n");
		else
			fprintf(f, "device %d</text>\n", s - HP_RES_DEVICE);
		x += 110;
	}
	fprintf(f, "</g>\n");
	return 16;
}

/*
 * What the residency maps show: the costliest allocations that moved
 * pages (@alloc[i], 1 + index), else the largest touched ranges (@alloc
 * 0).  Returns how many.
 */
static size_t map_subjects(struct hp_profile *p, struct hp_range *r,
			   uint32_t *alloc)
{
	size_t n = 0, *order;

	if (!p->traced)
		return 0;
	if (!p->nallocs) {
		for (; n < p->nranges && n < MAX_MAPS; n++) {
			r[n] = p->ranges[n];
			alloc[n] = 0;
		}
		return n;
	}
	order = hp_allocs_by_cost(p);
	for (size_t i = 0; order && i < p->nallocs && n < MAX_MAPS; i++) {
		const struct hp_alloc *a = &p->allocs[order[i]];

		if (!hp_alloc_moved_pages(a) ||
		    a->bytes / p->page_size > (1ull << 26))
			continue;
		memset(&r[n], 0, sizeof(r[n]));
		r[n].start = a->start;
		r[n].end = a->start + a->bytes;
		alloc[n++] = (uint32_t)order[i] + 1;
	}
	free(order);
	return n;
}

void hp_plot_svg(FILE *f, struct hp_profile *p, bool standalone)
{
	struct hp_range maps[MAX_MAPS];
	uint32_t map_alloc[MAX_MAPS];
	size_t nmaps = map_subjects(p, maps, map_alloc);
	char cmd[256], t1[32], t2[32], t3[32];
	struct lane *lanes = calloc(MAX_LANES, sizeof(*lanes));
	int height, y, nlanes = 0;

	if (p->traced && lanes)
		nlanes = timeline_lanes(p, lanes);
	height = 70 + LINE_H + 60 + 40 + timeline_height(nlanes) +
		 hist_height(p);
	for (size_t i = 0; i < nmaps; i++) {
		uint64_t npages = (maps[i].end - maps[i].start) /
				  p->page_size;
		uint64_t ppr = (npages + MAP_ROWS - 1) / MAP_ROWS;
		size_t nrows = (size_t)((npages + ppr - 1) / ppr);

		height += map_height(nrows) * (int)nrows + 70;
	}
	height += 40;

	hp_command_line(cmd, sizeof(cmd), p->argv);
	if (standalone)
		fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
		"height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" "
		"font-size=\"12\">\n", W, height, W, height);
	fprintf(f, "<title>hmmprof: ");
	xml_text(f, cmd);
	fprintf(f, "</title>\n<rect width=\"100%%\" height=\"100%%\" "
		"fill=\"#ffffff\"/>\n");
	fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"16\" "
		"font-weight=\"bold\">hmmprof: ", ML);
	xml_text(f, cmd);
	fprintf(f, "</text>\n<text x=\"%d\" y=\"44\" fill=\"#444\">pid %d, "
		"ran %s; ", ML, (int)p->pid,
		hp_fmt_ns(t1, sizeof(t1), p->wall_ns));
	if (p->traced)
		fprintf(f, "host to device %s, device to host %s "
			"(this process)</text>\n",
			hp_fmt_bytes(t2, sizeof(t2),
				     hp_counts_pages(&p->proc, HP_TO_DEVICE) *
					     p->page_size),
			hp_fmt_bytes(t3, sizeof(t3),
				     hp_counts_pages(&p->proc, HP_TO_HOST) *
					     p->page_size));
	else
		fprintf(f, "host to device %s, device to host %s "
			"(whole device)</text>\n",
			hp_fmt_bytes(t2, sizeof(t2),
				     hp_counts_pages(&p->device, HP_TO_DEVICE) *
					     p->page_size),
			hp_fmt_bytes(t3, sizeof(t3),
				     hp_counts_pages(&p->device, HP_TO_HOST) *
					     p->page_size));
	y = 90;
	if (p->traced) {
		migration_plot(f, p, y);
	} else {
		fprintf(f, "<text x=\"%d\" y=\"%d\">No timeline: the program "
			"was not traced (", ML, y + 20);
		xml_text(f, p->trace_note[0] ? p->trace_note : "--no-trace");
		fprintf(f, ").</text>\n");
	}
	y += LINE_H + 60;
	if (nlanes) {
		y += 20;
		timeline_plot(f, p, lanes, nlanes, y);
		y += timeline_height(nlanes);
	}
	free(lanes);
	if (hist_height(p)) {
		y += 30;
		latency_plot(f, p, y);
		y += hist_height(p) - 30;
	}

	if (!p->traced) {
		/* nothing more to draw */
	} else if (!nmaps) {
		fprintf(f, "<text x=\"%d\" y=\"%d\">Residency: no migration "
			"named a CPU range.</text>\n", ML, y + 20);
	} else {
		y += legend_states(f, p, y) + 24;
		for (size_t i = 0; i < nmaps; i++)
			y += residency_map(f, p, &maps[i], map_alloc[i], (int)i,
					   y) + 70;
		if (p->evicted_pages_unplaced)
			fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"#a00\">%s "
				"evicted with no hmmgpu_evicted event of this "
				"program naming where: these maps still show "
				"those pages on the device.</text>\n", ML, y - 30,
				hp_fmt_bytes(t1, sizeof(t1),
					     p->evicted_pages_unplaced *
						     p->page_size));
	}
	fprintf(f, "</svg>\n");
}

void hp_plot_html(FILE *f, struct hp_profile *p)
{
	char cmd[256], *text = NULL;
	size_t len = 0;
	FILE *m;

	hp_command_line(cmd, sizeof(cmd), p->argv);
	fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
		"<meta charset=\"utf-8\"/>\n<title>hmmprof: ");
	xml_text(f, cmd);
	fprintf(f, "</title>\n<style>\nbody { font-family: sans-serif; "
		"margin: 2em; color: #222; }\npre { background: #f6f6f6; "
		"padding: 1em; overflow-x: auto; }\n</style>\n</head>\n"
		"<body>\n<h1>hmmprof: ");
	xml_text(f, cmd);
	fprintf(f, "</h1>\n<pre id=\"summary\">");
	m = open_memstream(&text, &len);
	if (m) {
		hp_report_text(m, p);
		fclose(m);
		xml_text(f, text);
		free(text);
	}
	fprintf(f, "</pre>\n<figure>\n");
	hp_plot_svg(f, p, false);
	fprintf(f, "<figcaption>Above: bytes migrated by this process over "
		"time, per direction. Below: for the largest ranges it "
		"touched, where most pages of each row were over time, "
		"reconstructed from the migration events.</figcaption>\n"
		"</figure>\n</body>\n</html>\n");
}
