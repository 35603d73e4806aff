// SPDX-License-Identifier: MIT
/*
 * plot.c - pictures of a profile: an SVG document, or a self-contained
 * HTML page holding the summary and the same SVG.
 *
 * Two kinds of plot share one time axis (0 to the end of the program):
 *
 *  - bytes migrated over time: one cumulative line per direction, from
 *    the batches' end times;
 *  - the residency map of each touched range (the largest four): address
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

static int map_height(size_t nrows)
{
	int rh = nrows ? MAP_H / (int)nrows : MAP_H;

	if (rh < 2)
		rh = 2;
	if (rh > 12)
		rh = 12;
	return rh;
}

/* The residency map of @r at @top; returns its height. */
static int residency_map(FILE *f, struct hp_profile *p,
			 const struct hp_range *r, int idx, int top)
{
	uint64_t ppr, ps = p->page_size;
	size_t nrows;
	uint8_t *grid;
	char sz[32], lab[32], cls[32];
	int rh, h;

	nrows = hp_profile_residency_grid(p, r, MAP_ROWS, PW, &grid, &ppr);
	if (!nrows)
		return 0;
	rh = map_height(nrows);
	h = rh * (int)nrows;
	fprintf(f, "<g class=\"residency\" id=\"residency-%d\">\n", idx);
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">Residency of "
		"0x%llx - 0x%llx (%s) over time</text>\n", ML, top - 12,
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

void hp_plot_svg(FILE *f, struct hp_profile *p, bool standalone)
{
	size_t nmaps = p->traced ? p->nranges : 0;
	char cmd[256], t1[32], t2[32], t3[32];
	int height, y;

	if (nmaps > MAX_MAPS)
		nmaps = MAX_MAPS;
	height = 70 + LINE_H + 60 + 40;
	for (size_t i = 0; i < nmaps; i++) {
		uint64_t npages = (p->ranges[i].end - p->ranges[i].start) /
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

	if (!p->traced) {
		/* nothing more to draw */
	} else if (!nmaps) {
		fprintf(f, "<text x=\"%d\" y=\"%d\">Residency: no migration "
			"named a CPU range.</text>\n", ML, y + 20);
	} else {
		y += legend_states(f, p, y) + 24;
		for (size_t i = 0; i < nmaps; i++)
			y += residency_map(f, p, &p->ranges[i], (int)i, y) + 70;
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
