// SPDX-License-Identifier: MIT
/*
 * profile.c - what the traced events of a program add up to: counts per
 * direction and cause, fault latencies, time spent migrating, and the
 * residency of the ranges it touched, reconstructed from where each
 * batch moved pages.
 */
#define _GNU_SOURCE
#include "hmmprof.h"

#include <stdlib.h>
#include <string.h>

#define SZ_2M (2ull << 20)
/* Events kept for the plots (about 64 bytes each); counts never stop. */
#define HP_EVENTS_MAX (4u << 20)
/* Touched ranges mapped, and pages per range at most (1 byte each). */
#define HP_RANGES_MAX 64
#define HP_RANGE_PAGES_MAX (1ull << 26)

void hp_profile_init(struct hp_profile *p)
{
	memset(p, 0, sizeof(*p));
	p->ev_limit = HP_EVENTS_MAX;
}

void hp_profile_free(struct hp_profile *p)
{
	hp_allocs_free(p);
	free(p->marks);
	hp_symtabs_free(p);
	for (size_t i = 0; i < p->strcap; i++)
		free(p->strs[i]);
	free(p->strs);
	for (size_t i = 0; i < p->nranges; i++)
		free(p->ranges[i].state);
	free(p->ranges);
	free(p->ev);
	free(p->cpu_lat.ns);
	free(p->dev_lat.ns);
}

static void latency_add(struct hp_latency *l, uint64_t ns)
{
	l->sum += ns;
	if (ns > l->max)
		l->max = ns;
	if (l->n >= HP_LATENCY_MAX || hp_grow(&l->ns, &l->cap, l->n,
					      sizeof(*l->ns))) {
		l->truncated = true;
		return;
	}
	l->ns[l->n++] = ns;
	l->sorted = false;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

uint64_t hp_latency_percentile(struct hp_latency *l, double pct)
{
	size_t rank;

	if (!l->n)
		return 0;
	if (!l->sorted) {
		qsort(l->ns, l->n, sizeof(*l->ns), cmp_u64);
		l->sorted = true;
	}
	rank = (size_t)(pct / 100.0 * (double)l->n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > l->n)
		rank = l->n;
	return l->ns[rank - 1];
}

void hp_profile_add(struct hp_profile *p, const struct hp_event *event)
{
	struct hp_counts *c = &p->proc;
	struct hp_event e = *event, *ev = &e;

	p->nevents++;
	switch (ev->type) {
	case HP_EV_BATCH:
		c->pages[ev->dir][ev->cause] += ev->moved - ev->peer;
		c->pages[ev->dir][HMMGPU_CAUSE_PEER] += ev->peer;
		c->copy_errors += ev->failed;
		/* the driver counts a batch when it copied something */
		if (ev->moved || ev->failed) {
			c->batches++;
			c->batches_by[ev->dir][ev->cause]++;
		}
		/*
		 * An eviction pass works one 2 MiB block per batch, and the
		 * driver counts an eviction per block that moved pages.
		 */
		if (ev->cause == HMMGPU_CAUSE_EVICTION && ev->moved) {
			c->evictions++;
			p->evicted_pages_unplaced += ev->moved;
		}
		break;
	case HP_EV_CPU_FAULT:
		c->cpu_faults++;
		c->pages[HP_TO_HOST][HMMGPU_CAUSE_CPU_FAULT] += ev->moved;
		if (ev->moved) {
			c->batches++;
			c->batches_by[HP_TO_HOST][HMMGPU_CAUSE_CPU_FAULT]++;
		}
		latency_add(&p->cpu_lat, ev->ns);
		break;
	case HP_EV_DEVICE_FAULT:
		c->device_faults++;
		latency_add(&p->dev_lat, ev->ns);
		break;
	case HP_EV_EVICTED:
		/*
		 * The addresses of pages an eviction took from the device.
		 * Only those of the process that triggered it are ours to
		 * place: another's addresses mean nothing in our ranges.
		 */
		if (ev->owner == ev->pid)
			p->evicted_pages_placed += ev->npages;
		else
			ev->moved = 0;
		break;
	}
	hp_alloc_charge(p, ev);
	if (p->csv)
		hp_csv_row(p->csv, p, ev);
	if (p->nev < p->ev_limit &&
	    !hp_grow(&p->ev, &p->evcap, p->nev, sizeof(*p->ev)))
		p->ev[p->nev++] = *ev;
}

/* Markers kept for the timeline, at most (about 100 bytes each). */
#define HP_MARKS_MAX (1u << 20)

void hp_profile_add_marker(struct hp_profile *p, const struct hp_marker *raw)
{
	struct hp_mark m = {
		.t_ns = raw->t_ns, .ns = raw->ns, .ptr = raw->ptr,
		.src = raw->src, .size = raw->size, .stream = raw->stream,
		.pid = raw->pid, .tid = raw->tid, .dev = raw->dev,
		.grid = { raw->grid[0], raw->grid[1], raw->grid[2] },
		.kind = raw->kind,
	};

	p->nmarkers++;
	if (raw->what[0])
		m.what = hp_intern(p, raw->what);
	if (raw->code[0].addr || raw->code[0].sym[0])
		m.kernel = hp_code_name(p, &raw->code[0], raw->pid, false);
	if (raw->code[1].addr || raw->code[1].sym[0])
		m.site = hp_code_name(p, &raw->code[1], raw->pid, true);
	hp_alloc_marker(p, &m, raw);
	if (p->csv)
		hp_csv_mark_row(p->csv, p, &m);
	if (p->nmarks < HP_MARKS_MAX &&
	    !hp_grow(&p->marks, &p->markcap, p->nmarks, sizeof(*p->marks)))
		p->marks[p->nmarks++] = m;
}

/* --- time spent migrating --------------------------------------------- */

struct interval {
	uint64_t a, b;
};

static int cmp_interval(const void *x, const void *y)
{
	const struct interval *i = x, *j = y;

	return (i->a > j->a) - (i->a < j->a);
}

/* Total length of the union of @n intervals (sorted here). */
static uint64_t union_length(struct interval *iv, size_t n)
{
	uint64_t total = 0, a = 0, b = 0;
	bool open = false;

	qsort(iv, n, sizeof(*iv), cmp_interval);
	for (size_t i = 0; i < n; i++) {
		if (open && iv[i].a <= b) {
			if (iv[i].b > b)
				b = iv[i].b;
			continue;
		}
		if (open)
			total += b - a;
		a = iv[i].a;
		b = iv[i].b;
		open = true;
	}
	if (open)
		total += b - a;
	return total;
}

static bool is_migration(const struct hp_event *ev)
{
	return (ev->type == HP_EV_BATCH && (ev->moved || ev->failed)) ||
	       (ev->type == HP_EV_CPU_FAULT && ev->moved);
}

static void busy_time(struct hp_profile *p)
{
	struct interval *iv = malloc((p->nev ? p->nev : 1) * sizeof(*iv));
	size_t n;

	if (!iv)
		return;
	for (int dir = 0; dir <= 2; dir++) {
		n = 0;
		for (size_t i = 0; i < p->nev; i++) {
			const struct hp_event *ev = &p->ev[i];

			if (!is_migration(ev) || (dir < 2 && ev->dir != dir))
				continue;
			iv[n].b = ev->t_ns;
			iv[n].a = ev->t_ns > ev->ns ? ev->t_ns - ev->ns : 0;
			n++;
		}
		p->busy_ns[dir] = union_length(iv, n);
	}
	free(iv);
}

/* --- residency ---------------------------------------------------------- */

/* Stable sort of the events by time (the trace gives them nearly so). */
static void sort_events(struct hp_event *ev, size_t n)
{
	struct hp_event *tmp;
	bool sorted = true;

	for (size_t i = 1; i < n && sorted; i++)
		sorted = ev[i - 1].t_ns <= ev[i].t_ns;
	if (sorted)
		return;
	tmp = malloc(n * sizeof(*tmp));
	if (!tmp)
		return;
	for (size_t w = 1; w < n; w *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * w) {
			size_t mid = lo + w < n ? lo + w : n;
			size_t hi = lo + 2 * w < n ? lo + 2 * w : n;
			size_t i = lo, j = mid, k = lo;

			while (i < mid && j < hi)
				tmp[k++] = ev[j].t_ns < ev[i].t_ns ? ev[j++] :
								     ev[i++];
			while (i < mid)
				tmp[k++] = ev[i++];
			while (j < hi)
				tmp[k++] = ev[j++];
		}
		memcpy(ev, tmp, n * sizeof(*ev));
	}
	free(tmp);
}

/* The CPU range an event names, if it changes where pages are. */
static bool event_range(const struct hp_event *ev, uint64_t ps,
			uint64_t *a, uint64_t *b)
{
	if (!ev->start || !ev->npages || !ev->moved)
		return false;
	if (ev->type == HP_EV_DEVICE_FAULT)
		return false; /* its batches say what moved */
	*a = ev->start;
	*b = ev->start + (uint64_t)ev->npages * ps;
	return *b > *a;
}

/*
 * Where @ev leaves the pages of @r: a batch to a device puts its whole
 * range there (pages that were there already stay; pages that could not
 * move are not told apart); a batch to the host and a CPU fault bring
 * the range's device pages home.  @rows (may be NULL) follow the counts
 * per row of @ppr pages.
 */
static void apply_event(const struct hp_range *r, uint8_t *state,
			const struct hp_event *ev, uint64_t ps,
			uint64_t *rows, uint64_t ppr)
{
	uint64_t a, b, first, last;

	if (!event_range(ev, ps, &a, &b) || b <= r->start || a >= r->end)
		return;
	if (a < r->start)
		a = r->start;
	if (b > r->end)
		b = r->end;
	first = (a - r->start) / ps;
	last = (b - r->start) / ps;
	for (uint64_t i = first; i < last; i++) {
		uint8_t old = state[i], now;

		if (ev->dir == HP_TO_DEVICE)
			now = (uint8_t)(HP_RES_DEVICE + ev->dev);
		else if (old >= HP_RES_DEVICE)
			now = HP_RES_SYSTEM;
		else
			continue;
		if (now == old)
			continue;
		state[i] = now;
		if (rows) {
			rows[(i / ppr) * HP_RES_STATES + old]--;
			rows[(i / ppr) * HP_RES_STATES + now]++;
		}
	}
}

static int cmp_range_size(const void *x, const void *y)
{
	const struct hp_range *a = x, *b = y;

	if (a->moved_bytes != b->moved_bytes)
		return a->moved_bytes < b->moved_bytes ? 1 : -1;
	return (a->start > b->start) - (a->start < b->start);
}

static void find_ranges(struct hp_profile *p)
{
	uint64_t ps = p->page_size;
	struct interval *iv;
	size_t n = 0, nr = 0;

	iv = malloc((p->nev ? p->nev : 1) * sizeof(*iv));
	if (!iv)
		return;
	for (size_t i = 0; i < p->nev; i++) {
		uint64_t a, b;

		if (!event_range(&p->ev[i], ps, &a, &b))
			continue;
		iv[n].a = a & ~(SZ_2M - 1);
		iv[n].b = (b + SZ_2M - 1) & ~(SZ_2M - 1);
		n++;
	}
	qsort(iv, n, sizeof(*iv), cmp_interval);
	/* merge overlapping and adjacent blocks, in place */
	for (size_t i = 0; i < n; i++) {
		if (nr && iv[i].a <= iv[nr - 1].b) {
			if (iv[i].b > iv[nr - 1].b)
				iv[nr - 1].b = iv[i].b;
			continue;
		}
		iv[nr++] = iv[i];
	}
	p->ranges = calloc(nr ? nr : 1, sizeof(*p->ranges));
	if (!p->ranges) {
		free(iv);
		return;
	}
	for (size_t i = 0; i < nr; i++) {
		struct hp_range *r = &p->ranges[p->nranges];
		uint64_t npages = (iv[i].b - iv[i].a) / ps;

		if (npages > HP_RANGE_PAGES_MAX)
			continue;
		r->start = iv[i].a;
		r->end = iv[i].b;
		r->state = calloc(npages, 1);
		if (!r->state)
			continue;
		p->nranges++;
	}
	free(iv);

	for (size_t i = 0; i < p->nev; i++) {
		const struct hp_event *ev = &p->ev[i];
		uint64_t a, b;

		if (!event_range(ev, ps, &a, &b))
			continue;
		for (size_t k = 0; k < p->nranges; k++) {
			struct hp_range *r = &p->ranges[k];

			if (a >= r->end || b <= r->start)
				continue;
			r->moved_bytes += (uint64_t)ev->moved * ps;
			apply_event(r, r->state, ev, ps, NULL, 1);
		}
	}
	for (size_t k = 0; k < p->nranges; k++) {
		struct hp_range *r = &p->ranges[k];
		uint64_t npages = (r->end - r->start) / ps;

		for (uint64_t i = 0; i < npages; i++)
			r->final[r->state[i]]++;
	}
	qsort(p->ranges, p->nranges, sizeof(*p->ranges), cmp_range_size);
	/* keep the largest */
	while (p->nranges > HP_RANGES_MAX)
		free(p->ranges[--p->nranges].state);
}

void hp_profile_finish(struct hp_profile *p)
{
	if (!p->traced)
		return;
	/* a driver with hmmgpu_evicted names where evicted pages were */
	p->evicted_pages_unplaced -= p->evicted_pages_placed <
					     p->evicted_pages_unplaced ?
				     p->evicted_pages_placed :
				     p->evicted_pages_unplaced;
	sort_events(p->ev, p->nev);
	/* markers arrive nearly in order: an insertion sort, stable */
	for (size_t i = 1; i < p->nmarks; i++) {
		struct hp_mark m = p->marks[i];
		size_t j = i;

		for (; j > 0 && p->marks[j - 1].t_ns > m.t_ns; j--)
			p->marks[j] = p->marks[j - 1];
		p->marks[j] = m;
	}
	busy_time(p);
	find_ranges(p);
}

/* The state most pages of a row are in; untouched only if all are. */
static uint8_t dominant(const uint64_t *counts)
{
	uint8_t best = HP_RES_UNTOUCHED;
	uint64_t most = 0;

	for (int s = HP_RES_SYSTEM; s < HP_RES_STATES; s++) {
		if (counts[s] > most) {
			most = counts[s];
			best = (uint8_t)s;
		}
	}
	return best;
}

size_t hp_profile_residency_grid(const struct hp_profile *p,
				 const struct hp_range *r, uint32_t alloc,
				 size_t maxrows, size_t ncols, uint8_t **grid,
				 uint64_t *pages_per_row)
{
	uint64_t ps = p->page_size, npages = (r->end - r->start) / ps;
	uint64_t ppr = (npages + maxrows - 1) / maxrows, wall;
	size_t nrows, e = 0;
	uint64_t *rows;
	uint8_t *state, *g;

	if (!ppr)
		ppr = 1;
	nrows = (size_t)((npages + ppr - 1) / ppr);
	state = calloc(npages, 1);
	rows = calloc(nrows * HP_RES_STATES, sizeof(*rows));
	g = calloc(nrows * ncols, 1);
	if (!state || !rows || !g) {
		free(state);
		free(rows);
		free(g);
		*grid = NULL;
		return 0;
	}
	for (uint64_t i = 0; i < npages; i++)
		rows[(i / ppr) * HP_RES_STATES + HP_RES_UNTOUCHED]++;
	wall = p->wall_ns ? p->wall_ns : 1;
	for (size_t c = 0; c < ncols; c++) {
		uint64_t end = (uint64_t)((double)wall * (double)(c + 1) /
					  (double)ncols);

		if (c == ncols - 1)
			end = UINT64_MAX;
		for (; e < p->nev && p->ev[e].t_ns <= end; e++)
			if (!alloc || p->ev[e].alloc == alloc)
				apply_event(r, state, &p->ev[e], ps, rows, ppr);
		for (size_t row = 0; row < nrows; row++)
			g[row * ncols + c] = dominant(rows + row * HP_RES_STATES);
	}
	free(state);
	free(rows);
	*grid = g;
	*pages_per_row = ppr;
	return nrows;
}
