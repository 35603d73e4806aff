// SPDX-License-Identifier: MIT
/*
 * alloc.c - the allocations that libhmm's markers announce (hmm_malloc,
 * hmm_free, hmm_set_name), and the charging of every migration, fault and
 * eviction to the allocation it hit.
 *
 * An event hits the allocation of its process whose pages hold the
 * event's address (a batch's or a CPU fault's range start, a device
 * fault's address, an hmmgpu_evicted run's start) and that was live at
 * the event's time: an address freed and allocated again names the
 * allocation of the moment.  A batch whose range spans several
 * allocations (small neighbours share a VMA, and a fault block or a
 * density prefetch covers them) is shared among them in proportion to
 * the pages of its range each holds; the event itself names the one its
 * address is in (a fault's faulting address, else the range's start).
 * Eviction batches name no CPU address: the hmmgpu_evicted events that
 * follow them do.
 *
 * The allocations not freed yet are indexed by process and address, so
 * that finding the allocation of an event is a binary search; an event
 * that arrives after the free of its allocation (the CPUs' buffers are
 * merged as they are read) is matched among the last ones freed.
 *
 * Bounces: each page of an allocation remembers whether it is on a
 * device, and whether it came home from one; a page that moves to a
 * device again after coming home is one bounce, the thrashing signal.
 */
#define _GNU_SOURCE
#include "hmmprof.h"

#include <stdlib.h>
#include <string.h>

/* Pages of an allocation whose bounces are tracked, at most. */
#define HP_ALLOC_PAGES_MAX (1ull << 26)
/* Freed allocations an event may still name, the latest first. */
#define HP_FREED_LOOKBACK 64

enum { PG_HOST = 0, PG_DEVICE = 1, PG_BACK = 2 };

const char *hp_mark_kind_key(int kind)
{
	static const char *const names[] = {
		[HP_MK_ALLOC] = "alloc", [HP_MK_FREE] = "free",
		[HP_MK_NAME] = "name", [HP_MK_LAUNCH] = "launch",
		[HP_MK_PREFETCH] = "prefetch", [HP_MK_MEMCPY] = "memcpy",
		[HP_MK_MEMSET] = "memset", [HP_MK_CALL] = "call",
		[HP_MK_SYNC] = "sync", [HP_MK_STREAM] = "stream",
	};

	return kind >= 0 && kind < HP_MK_KINDS ? names[kind] : "other";
}

/* Whether live entry @i comes before (@pid, @addr). */
static bool live_before(const struct hp_profile *p, size_t i, int32_t pid,
			uint64_t addr)
{
	const struct hp_alloc *a = &p->allocs[p->live[i]];

	return a->pid < pid || (a->pid == pid && a->start <= addr);
}

/* The number of live entries at or before (@pid, @addr). */
static size_t live_upper(const struct hp_profile *p, int32_t pid,
			 uint64_t addr)
{
	size_t lo = 0, hi = p->nlive;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (live_before(p, mid, pid, addr))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint32_t hp_alloc_find(const struct hp_profile *p, int32_t pid,
		       uint64_t addr, uint64_t t)
{
	size_t i = live_upper(p, pid, addr), n = 0;

	if (i) {
		const struct hp_alloc *a = &p->allocs[p->live[i - 1]];

		if (a->pid == pid && addr < a->start + a->bytes &&
		    t >= a->t_alloc)
			return (uint32_t)p->live[i - 1] + 1;
	}
	/* freed meanwhile: the latest allocations, newest first */
	for (size_t k = p->nallocs; k-- > 0 && n < HP_FREED_LOOKBACK;) {
		const struct hp_alloc *a = &p->allocs[k];

		if (a->t_free == UINT64_MAX)
			continue;
		n++;
		if (a->pid == pid && addr >= a->start &&
		    addr < a->start + a->bytes && t >= a->t_alloc &&
		    t <= a->t_free)
			return (uint32_t)k + 1;
	}
	return 0;
}

static void live_remove(struct hp_profile *p, size_t i)
{
	memmove(&p->live[i], &p->live[i + 1],
		(p->nlive - i - 1) * sizeof(*p->live));
	p->nlive--;
}

/*
 * Adds allocation @idx to the live index; a live one it overlaps (whose
 * free marker was lost) ends there.
 */
static void live_insert(struct hp_profile *p, size_t idx)
{
	const struct hp_alloc *a = &p->allocs[idx];
	struct hp_alloc *o;
	size_t i;

	for (;;) {
		i = live_upper(p, a->pid, a->start + a->bytes - 1);
		if (!i)
			break;
		o = &p->allocs[p->live[i - 1]];
		if (o->pid != a->pid || o->start + o->bytes <= a->start)
			break;
		o->t_free = a->t_alloc;
		live_remove(p, i - 1);
	}
	if (hp_grow(&p->live, &p->livecap, p->nlive, sizeof(*p->live)))
		return;
	i = live_upper(p, a->pid, a->start);
	memmove(&p->live[i + 1], &p->live[i],
		(p->nlive - i) * sizeof(*p->live));
	p->live[i] = idx;
	p->nlive++;
}

/* Marks the pages of @a in [@s, @e) as moved in direction @dir. */
static void move_pages(struct hp_alloc *a, uint64_t s, uint64_t e, int dir,
		       uint64_t ps)
{
	uint64_t first, last;

	if (!a->state)
		return;
	if (s < a->start)
		s = a->start;
	if (e > a->start + a->bytes)
		e = a->start + a->bytes;
	if (e <= s)
		return;
	first = (s - a->start) / ps;
	last = (e - a->start + ps - 1) / ps;
	for (uint64_t i = first; i < last; i++) {
		if (dir == HP_TO_DEVICE) {
			a->bounces += a->state[i] == PG_BACK;
			a->state[i] = PG_DEVICE;
		} else if (a->state[i] == PG_DEVICE) {
			a->state[i] = PG_BACK;
		}
	}
}

/*
 * Shares the pages a batch (or a CPU fault's fault-back) moved among the
 * allocations its range overlaps.  Returns the pages no allocation took.
 */
static uint64_t charge_range(struct hp_profile *p, const struct hp_event *ev)
{
	uint64_t ps = p->page_size, s = ev->start;
	uint64_t e = s + (uint64_t)ev->npages * ps, left = ev->moved;
	uint64_t ns_left = ev->ns, total = 0, peer_left = ev->peer;
	bool moved_any = ev->moved || ev->failed;
	struct hp_alloc *single = NULL;
	size_t first;
	int cause = ev->type == HP_EV_CPU_FAULT ? HMMGPU_CAUSE_CPU_FAULT :
						  ev->cause;

	if (!s)
		return 0; /* eviction, removal: hmmgpu_evicted places them */
	if (e <= s)
		return ev->moved;
	/* the live allocations of the process from the one holding @s on */
	first = live_upper(p, ev->pid, s);
	if (first)
		first--;
	for (size_t i = first; i < p->nlive; i++) {
		const struct hp_alloc *a = &p->allocs[p->live[i]];

		if (a->pid > ev->pid || (a->pid == ev->pid && a->start >= e))
			break;
		if (a->pid == ev->pid && a->start + a->bytes > s &&
		    ev->t_ns >= a->t_alloc)
			total += (a->start + a->bytes < e ? a->start + a->bytes : e) -
				 (a->start > s ? a->start : s);
	}
	if (!total) {
		/* freed meanwhile: all of it to the one holding @s, if any */
		uint32_t k = hp_alloc_find(p, ev->pid, s, ev->t_ns);

		if (!k)
			return ev->moved;
		first = p->nlive; /* none of the live ones */
		single = &p->allocs[k - 1];
		total = 1;
	}
	for (size_t i = first; total; i++) {
		struct hp_alloc *a;
		uint64_t over, share, ns;

		if (single) {
			a = single;
			over = total;
		} else {
			if (i >= p->nlive)
				break;
			a = &p->allocs[p->live[i]];
			if (a->pid > ev->pid || (a->pid == ev->pid && a->start >= e))
				break;
			if (a->pid != ev->pid || a->start + a->bytes <= s ||
			    ev->t_ns < a->t_alloc)
				continue;
			over = (a->start + a->bytes < e ? a->start + a->bytes : e) -
			       (a->start > s ? a->start : s);
		}
		/* the last one takes what rounding left */
		share = over == total ? left :
			(uint64_t)((double)ev->moved * (double)over / (double)total);
		ns = over == total ? ns_left :
		     (uint64_t)((double)ev->ns * (double)over / (double)total);
		if (share > left)
			share = left;
		if (ns > ns_left)
			ns = ns_left;
		total -= over;
		left -= share;
		ns_left -= ns;
		/* peer pages are counted for the batch, not per page: the
		 * first allocations take them */
		if (ev->type == HP_EV_BATCH && peer_left && share) {
			uint64_t peer = share < peer_left ? share : peer_left;

			a->pages[ev->dir][HMMGPU_CAUSE_PEER] += peer;
			share -= peer;
			peer_left -= peer;
		}
		a->pages[ev->dir][cause] += share;
		if (moved_any) {
			a->batches++;
			a->migrate_ns += ns;
		}
		if (ev->moved)
			move_pages(a, s, e, ev->dir, ps);
		if (single)
			break;
	}
	return left;
}

void hp_alloc_charge(struct hp_profile *p, struct hp_event *ev)
{
	uint64_t ps = p->page_size, at = ev->start;
	struct hp_alloc *a;

	if (ev->type == HP_EV_DEVICE_FAULT ||
	    (ev->type == HP_EV_CPU_FAULT && ev->addr))
		at = ev->addr;
	ev->alloc = at ? hp_alloc_find(p, ev->pid, at, ev->t_ns) : 0;
	if (hp_event_is_batch(ev))
		p->unattributed_pages[ev->dir] += charge_range(p, ev);
	if (!ev->alloc)
		return;
	a = &p->allocs[ev->alloc - 1];
	switch (ev->type) {
	case HP_EV_BATCH:
		break;
	case HP_EV_CPU_FAULT:
		a->cpu_faults++;
		break;
	case HP_EV_DEVICE_FAULT:
		a->device_faults++;
		a->device_fault_ns += ev->ns;
		break;
	case HP_EV_EVICTED:
		if (!ev->moved)
			break; /* another process's pages */
		a->evicted_pages += ev->npages;
		a->pages[HP_TO_HOST][HMMGPU_CAUSE_EVICTION] += ev->npages;
		move_pages(a, ev->start, ev->start + (uint64_t)ev->npages * ps,
			   HP_TO_HOST, ps);
		break;
	}
}

void hp_alloc_marker(struct hp_profile *p, struct hp_mark *m,
		     const struct hp_marker *raw)
{
	uint64_t ps = p->page_size;
	struct hp_alloc *a;

	switch (m->kind) {
	case HP_MK_ALLOC:
		if (!m->ptr || hp_grow(&p->allocs, &p->alloccap, p->nallocs,
				       sizeof(*p->allocs)))
			return;
		a = &p->allocs[p->nallocs++];
		memset(a, 0, sizeof(*a));
		a->start = m->ptr & ~(ps - 1);
		a->bytes = ((m->ptr + m->size + ps - 1) & ~(ps - 1)) - a->start;
		a->size = m->size;
		a->t_alloc = m->t_ns;
		a->t_free = UINT64_MAX;
		a->pid = m->pid;
		a->site = m->site;
		if (a->bytes / ps <= HP_ALLOC_PAGES_MAX)
			a->state = calloc(a->bytes / ps, 1);
		m->alloc = (uint32_t)p->nallocs;
		live_insert(p, p->nallocs - 1);
		break;
	case HP_MK_FREE: {
		size_t i = live_upper(p, m->pid, m->ptr);

		m->alloc = hp_alloc_find(p, m->pid, m->ptr, m->t_ns);
		if (!m->alloc || !i || p->live[i - 1] != m->alloc - 1)
			break; /* not a live one */
		p->allocs[m->alloc - 1].t_free = m->t_ns;
		live_remove(p, i - 1);
		break;
	}
	case HP_MK_NAME:
		m->alloc = hp_alloc_find(p, m->pid, m->ptr, m->t_ns);
		if (m->alloc)
			p->allocs[m->alloc - 1].name = hp_intern(p, raw->name);
		break;
	case HP_MK_PREFETCH:
	case HP_MK_MEMSET:
	case HP_MK_MEMCPY:
		m->alloc = hp_alloc_find(p, m->pid, m->ptr, m->t_ns);
		break;
	default:
		break;
	}
}

void hp_allocs_free(struct hp_profile *p)
{
	for (size_t i = 0; i < p->nallocs; i++)
		free(p->allocs[i].state);
	free(p->allocs);
	free(p->live);
	p->allocs = NULL;
	p->live = NULL;
	p->nallocs = p->alloccap = p->nlive = p->livecap = 0;
}

const char *hp_alloc_label(const struct hp_alloc *a, char *buf, size_t len)
{
	if (a->name)
		return a->name;
	snprintf(buf, len, "0x%llx", (unsigned long long)a->start);
	return buf;
}

/*
 * The label of allocation @i in the summary and the plots: its name, with "#N" when
 * several allocations have that name (the Nth of them, in allocation
 * order), else its address.
 */
const char *hp_alloc_display_name(const struct hp_profile *p, size_t i,
				  char *buf, size_t len)
{
	const struct hp_alloc *a = &p->allocs[i];
	size_t nth = 0, same = 0;

	if (!a->name)
		return hp_alloc_label(a, buf, len);
	for (size_t k = 0; k < p->nallocs; k++) {
		if (p->allocs[k].name != a->name)
			continue; /* interned: one pointer per name */
		same++;
		if (k <= i)
			nth++;
	}
	if (same < 2)
		return a->name;
	snprintf(buf, len, "%s#%zu", a->name, nth);
	return buf;
}

uint64_t hp_alloc_moved_pages(const struct hp_alloc *a)
{
	uint64_t n = 0;

	for (int dir = 0; dir < 2; dir++)
		for (int k = 0; k < HP_CAUSES; k++)
			n += a->pages[dir][k];
	return n;
}

static const struct hp_profile *sort_profile;

static int cmp_cost(const void *x, const void *y)
{
	const struct hp_alloc *a = &sort_profile->allocs[*(const size_t *)x];
	const struct hp_alloc *b = &sort_profile->allocs[*(const size_t *)y];
	uint64_t ca = a->migrate_ns, cb = b->migrate_ns;

	if (ca != cb)
		return ca < cb ? 1 : -1;
	if (hp_alloc_moved_pages(a) != hp_alloc_moved_pages(b))
		return hp_alloc_moved_pages(a) < hp_alloc_moved_pages(b) ? 1 : -1;
	return (*(const size_t *)x > *(const size_t *)y) -
	       (*(const size_t *)x < *(const size_t *)y);
}

size_t *hp_allocs_by_cost(const struct hp_profile *p)
{
	size_t *order = malloc((p->nallocs ? p->nallocs : 1) * sizeof(*order));

	if (!order)
		return NULL;
	for (size_t i = 0; i < p->nallocs; i++)
		order[i] = i;
	sort_profile = p;
	qsort(order, p->nallocs, sizeof(*order), cmp_cost);
	sort_profile = NULL;
	return order;
}
