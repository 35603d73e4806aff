// SPDX-License-Identifier: MIT
/*
 * test_hmmprof_timeline.c - hmmprof without a device: libhmm's API
 * markers as records of the ring buffer, the allocations they announce, the
 * charging of migrations and faults to those allocations, and the
 * Perfetto timeline made of them.
 *
 * Run as `test_hmmprof_timeline --perfetto FILE`, it writes the timeline
 * of the same synthetic profile to FILE, for the format checker
 * (check_trace_events.py, the hmmprof-perfetto-valid test); with
 * `--html FILE`, the HTML report, for the browser test
 * (check_html_in_browser.py, hmmprof-html-in-browser).
 */
#include "harness.h"

#include "fake_trace.h"
#include "hmmprof.h"

#include <stdlib.h>
#include <string.h>

#define PS 4096ull
#define A 0x7f0000000000ull /* allocation "the weights", 2 MiB */
#define B 0x7f0000200000ull /* allocation "b", 2 MiB, right after */

/*
 * A record at @ts seconds (a string) of thread @tid of process 10: an
 * event or a trace_marker write, as fake_record() takes it.
 */
struct rec {
	int tid;
	const char *ts, *what;
};
#define AT(tid, ts, ev) { tid, ts, ev }

/* enum values of the events' dir and cause fields */
#define TO_DEVICE "dir=0"
#define TO_SYSTEM "dir=1"
#define EXPLICIT "cause=0"
#define DEVICE_FAULT "cause=4"

/* "SSS.FFFFFF" in ns */
static uint64_t seconds(const char *s)
{
	uint64_t ns = strtoull(s, NULL, 10) * 1000000000ull, scale = 100000000;

	for (s = strchr(s, '.'); s && *++s; scale /= 10)
		ns += (uint64_t)(*s - '0') * scale;
	return ns;
}

/* Decodes @r as hmmprof does, in process 10 (hp_trace_drain() finds it). */
static enum hp_rec decode(const struct rec *r, struct hp_event *ev,
			  struct hp_marker *m)
{
	static struct fake_trace ft;
	enum hp_rec k;

	if (!ft.tep)
		fake_trace_init(&ft);
	k = fake_record(&ft, r->tid, seconds(r->ts), r->what, ev, m);
	ev->pid = m->pid = 10;
	return k;
}

/* hmm_set_name()'s marker, as libhmm escapes a space. */
static const struct rec lines[] = {
	AT(10, "100.000010", "tracing_mark_write: hmm: alloc ptr=0x7f0000000000 "
	   "size=2097152 caller=0x55550000101b caller_obj=/nonexistent/prog "
	   "caller_off=0x101b"),
	AT(10, "100.000011", "tracing_mark_write: hmm: name ptr=0x7f0000000000 "
	   "name=the%20weights"),
	AT(10, "100.000012", "tracing_mark_write: hmm: alloc ptr=0x7f0000200000 "
	   "size=2097152 caller=0x55550000101b"),
	AT(10, "100.000013", "tracing_mark_write: hmm: name ptr=0x7f0000200000 name=b"),
	AT(11, "100.000020", "tracing_mark_write: hmm: stream stream=1 dev=0"),
	/* a prefetch of the weights, with its batch inside it */
	AT(10, "100.000400", "hmmgpu_migrate_batch: dev=0 " TO_DEVICE " "
	   EXPLICIT " start=0x7f0000000000 npages=512 "
	   "moved=512 failed=0 peer=0 ns=300000"),
	AT(10, "100.000500", "tracing_mark_write: hmm: prefetch dev=0 stream=0 "
	   "ns=450000 ptr=0x7f0000000000 size=2097152"),
	AT(10, "100.000510", "tracing_mark_write: hmm: call fn=hmm_launch stream=1 "
	   "ns=5000 kernel=0x555500001200 kernel_sym=my_kernel "
	   "caller=0x55550000101b"),
	/* the kernel faults on b: a device fault and its batch */
	AT(12, "100.000700", "hmmgpu_migrate_batch: dev=0 " TO_DEVICE " "
	   DEVICE_FAULT " start=0x7f0000210000 npages=16 moved=16 "
	   "failed=0 peer=0 ns=40000"),
	AT(12, "100.000710", "hmmgpu_device_fault: dev=0 addr=0x7f0000210040 "
	   "start=0x7f0000210000 npages=16 moved=16 ns=60000"),
	AT(11, "100.000900", "tracing_mark_write: hmm: launch dev=0 stream=1 "
	   "ns=380000 grid=4x1x1 kernel=0x555500001200 kernel_sym=my_kernel"),
	/* the CPU reads the weights back, then they go to the device again */
	AT(10, "100.001000", "hmmgpu_cpu_fault: dev=0 addr=0x7f0000005000 "
	   "start=0x7f0000000000 npages=16 moved=16 ns=900"),
	AT(10, "100.001100", "hmmgpu_migrate_batch: dev=0 " TO_DEVICE " "
	   EXPLICIT " start=0x7f0000000000 npages=512 "
	   "moved=16 failed=0 peer=0 ns=2000"),
	/* a batch across both allocations: half each */
	AT(10, "100.001200", "hmmgpu_migrate_batch: dev=0 " TO_SYSTEM " "
	   EXPLICIT " start=0x7f00001f0000 npages=32 "
	   "moved=32 failed=0 peer=0 ns=1000"),
	/* the weights freed; a new allocation at the same address */
	AT(10, "100.001300", "tracing_mark_write: hmm: free ptr=0x7f0000000000 "
	   "ns=10000 caller=0x55550000101b"),
	AT(10, "100.001310", "tracing_mark_write: hmm: alloc ptr=0x7f0000000000 "
	   "size=4096 caller=0x55550000101b"),
	AT(10, "100.001400", "hmmgpu_migrate_batch: dev=0 " TO_DEVICE " "
	   EXPLICIT " start=0x7f0000000000 npages=1 "
	   "moved=1 failed=0 peer=0 ns=100"),
	/* and a batch outside every allocation */
	AT(10, "100.001500", "hmmgpu_migrate_batch: dev=0 " TO_DEVICE " "
	   EXPLICIT " start=0x7e0000000000 npages=4 "
	   "moved=4 failed=0 peer=0 ns=100"),
};

/* One device, as the report's header names it. */
static struct hp_devices devices = {
	.n = 1,
	.dev = { { .node = { .fd = -1, .index = 0,
			     .path = "/dev/dri/renderD128" },
		   .info = { .mem_total = 256u << 20,
			     .mem_free = 256u << 20 } } },
};

static void build(struct hp_profile *p)
{
	static char *argv[] = { "prog", NULL };

	hp_profile_init(p);
	p->devs = &devices;
	p->page_size = PS;
	p->traced = true;
	p->pid = 10;
	p->argv = argv;
	p->t0_ns = 100000000000ull;
	for (size_t i = 0; i < sizeof(lines) / sizeof(*lines); i++) {
		struct hp_marker m;
		struct hp_event ev;

		switch (decode(&lines[i], &ev, &m)) {
		case HP_REC_EVENT:
			ev.t_ns -= p->t0_ns;
			hp_profile_add(p, &ev);
			break;
		case HP_REC_MARKER:
			m.t_ns -= p->t0_ns;
			hp_profile_add_marker(p, &m);
			break;
		case HP_REC_OTHER:
			HMMT_FAIL("does not decode: %s", lines[i].what);
		}
	}
	p->wall_ns = 2000000;
	hp_profile_finish(p);
}

TEST(marker_records_give_every_field)
{
	static const struct rec other[] = {
		AT(10, "1.0", "tracing_mark_write: hello"),
		AT(10, "1.0", "tracing_mark_write: hmm: unknown x=1"),
	};
	struct hp_marker m;
	struct hp_event ev;

	ASSERT_EQ(decode(&lines[0], &ev, &m), HP_REC_MARKER);
	ASSERT_EQ(m.kind, HP_MK_ALLOC);
	ASSERT_EQ(m.t_ns, 100000010000ull);
	ASSERT_EQ(m.pid, 10);
	ASSERT_EQ(m.tid, 10);
	ASSERT_EQ(m.ptr, A);
	ASSERT_EQ(m.size, 2u << 20);
	ASSERT_EQ(m.code[1].addr, 0x55550000101bull);
	ASSERT_STREQ(m.code[1].obj, "/nonexistent/prog");
	ASSERT_EQ(m.code[1].off, 0x101b);

	ASSERT_EQ(decode(&lines[1], &ev, &m), HP_REC_MARKER);
	ASSERT_EQ(m.kind, HP_MK_NAME);
	ASSERT_STREQ(m.name, "the weights");

	ASSERT_EQ(decode(&lines[10], &ev, &m), HP_REC_MARKER);
	ASSERT_EQ(m.kind, HP_MK_LAUNCH);
	ASSERT_EQ(m.tid, 11);
	ASSERT_EQ(m.dev, 0);
	ASSERT_EQ(m.stream, 1);
	ASSERT_EQ(m.ns, 380000);
	ASSERT_EQ(m.grid[0], 4);
	ASSERT_EQ(m.grid[1], 1);
	ASSERT_STREQ(m.code[0].sym, "my_kernel");

	/* driver events are not markers, nor other writers' markers */
	ASSERT_EQ(decode(&lines[5], &ev, &m), HP_REC_EVENT);
	ASSERT_EQ(decode(&other[0], &ev, &m), HP_REC_OTHER);
	ASSERT_EQ(decode(&other[1], &ev, &m), HP_REC_OTHER);
}

TEST(events_are_charged_to_the_allocation_they_hit)
{
	struct hp_profile p;
	const struct hp_alloc *a, *b, *c;

	build(&p);
	ASSERT_EQ(p.nallocs, 3);
	a = &p.allocs[0];
	b = &p.allocs[1];
	c = &p.allocs[2];
	ASSERT_STREQ(a->name, "the weights");
	ASSERT_STREQ(b->name, "b");
	ASSERT_TRUE(c->name == NULL);
	ASSERT_EQ(a->start, A);
	ASSERT_EQ(b->start, B);
	ASSERT_EQ(a->bytes, 2u << 20);
	/* the caller's object file is not there: file name and offset */
	ASSERT_STREQ(a->site, "prog+0x101b");
	ASSERT_EQ(a->t_free, 1300000);
	ASSERT_EQ(c->t_free, UINT64_MAX);

	/* the weights: 512 + 16 prefetched, 16 back by a CPU fault */
	ASSERT_EQ(a->pages[HP_TO_DEVICE][HMMGPU_CAUSE_EXPLICIT], 528);
	ASSERT_EQ(a->pages[HP_TO_HOST][HMMGPU_CAUSE_CPU_FAULT], 16);
	ASSERT_EQ(a->cpu_faults, 1);
	ASSERT_EQ(a->device_faults, 0);
	/* the 16 pages the CPU took went to the device again */
	ASSERT_EQ(a->bounces, 16);
	/* the batch across both: 16 pages each, time shared too */
	ASSERT_EQ(a->pages[HP_TO_HOST][HMMGPU_CAUSE_EXPLICIT], 16);
	ASSERT_EQ(b->pages[HP_TO_HOST][HMMGPU_CAUSE_EXPLICIT], 16);
	ASSERT_EQ(a->migrate_ns, 300000 + 900 + 2000 + 500);
	ASSERT_EQ(b->migrate_ns, 40000 + 500);

	/* b: the device fault and its block */
	ASSERT_EQ(b->device_faults, 1);
	ASSERT_EQ(b->device_fault_ns, 60000);
	ASSERT_EQ(b->pages[HP_TO_DEVICE][HMMGPU_CAUSE_DEVICE_FAULT], 16);
	ASSERT_EQ(b->cpu_faults, 0);

	/* the address reused: the new allocation, not the freed one */
	ASSERT_EQ(c->pages[HP_TO_DEVICE][HMMGPU_CAUSE_EXPLICIT], 1);
	ASSERT_EQ(p.unattributed_pages[HP_TO_DEVICE], 4);
	ASSERT_EQ(p.unattributed_pages[HP_TO_HOST], 0);

	/* every event names its allocation */
	for (size_t i = 0; i < p.nev; i++) {
		const struct hp_event *ev = &p.ev[i];
		uint32_t want = ev->start == 0x7e0000000000ull ? 0 :
				ev->t_ns > 1300000 ? 3 :
				(ev->type == HP_EV_DEVICE_FAULT ||
				 ev->start == 0x7f0000210000ull) ? 2 : 1;

		ASSERT_EQ(ev->alloc, want);
	}
	hp_profile_free(&p);
}

/*
 * hmmprof merges the CPUs' buffers as it reads them: a batch of an
 * allocation may arrive after the free marker of that allocation.  It
 * is still charged to it; and an allocation whose free marker was lost
 * ends where a new one takes its address.
 */
TEST(late_events_and_lost_frees)
{
	static const struct rec late[] = {
		AT(10, "1.000010", "tracing_mark_write: hmm: alloc "
		   "ptr=0x7f0000000000 size=65536"),
		AT(10, "1.000300", "tracing_mark_write: hmm: free "
		   "ptr=0x7f0000000000 ns=10"),
		/* from another CPU, read after the free */
		AT(11, "1.000200", "hmmgpu_migrate_batch: dev=0 " TO_SYSTEM " "
		   EXPLICIT " start=0x7f0000000000 npages=16 moved=16 "
		   "failed=0 peer=0 ns=100"),
		AT(10, "1.000400", "tracing_mark_write: hmm: alloc "
		   "ptr=0x7f0000100000 size=65536"),
		/* its free marker was lost: a new one at the same address */
		AT(10, "1.000500", "tracing_mark_write: hmm: alloc "
		   "ptr=0x7f0000100000 size=65536"),
		AT(10, "1.000600", "hmmgpu_migrate_batch: dev=0 " TO_DEVICE " "
		   EXPLICIT " start=0x7f0000100000 npages=16 moved=16 "
		   "failed=0 peer=0 ns=100"),
	};
	struct hp_profile p;

	hp_profile_init(&p);
	p.page_size = PS;
	p.traced = true;
	for (size_t i = 0; i < sizeof(late) / sizeof(*late); i++) {
		struct hp_marker m;
		struct hp_event ev;

		switch (decode(&late[i], &ev, &m)) {
		case HP_REC_EVENT:
			hp_profile_add(&p, &ev);
			break;
		case HP_REC_MARKER:
			hp_profile_add_marker(&p, &m);
			break;
		case HP_REC_OTHER:
			HMMT_FAIL("does not decode: %s", late[i].what);
		}
	}
	hp_profile_finish(&p);
	ASSERT_EQ(p.nallocs, 3);
	ASSERT_EQ(p.allocs[0].pages[HP_TO_HOST][HMMGPU_CAUSE_EXPLICIT], 16);
	ASSERT_EQ(p.allocs[1].t_free, p.allocs[2].t_alloc);
	ASSERT_EQ(p.allocs[1].pages[HP_TO_DEVICE][HMMGPU_CAUSE_EXPLICIT], 0);
	ASSERT_EQ(p.allocs[2].pages[HP_TO_DEVICE][HMMGPU_CAUSE_EXPLICIT], 16);
	ASSERT_EQ(p.unattributed_pages[HP_TO_DEVICE], 0);
	ASSERT_EQ(p.unattributed_pages[HP_TO_HOST], 0);
	hp_profile_free(&p);
}

TEST(markers_keep_kernels_and_their_allocations)
{
	struct hp_profile p;
	int launches = 0, prefetches = 0;

	build(&p);
	ASSERT_EQ(p.nmarkers, 10);
	ASSERT_EQ(p.nmarks, 10);
	for (size_t i = 0; i < p.nmarks; i++) {
		const struct hp_mark *m = &p.marks[i];

		if (i)
			ASSERT_LE(p.marks[i - 1].t_ns, m->t_ns);
		if (m->kind == HP_MK_LAUNCH) {
			ASSERT_STREQ(m->kernel, "my_kernel");
			ASSERT_EQ(m->tid, 11);
			launches++;
		}
		if (m->kind == HP_MK_PREFETCH) {
			ASSERT_EQ(m->alloc, 1);
			ASSERT_EQ(m->dev, 0);
			prefetches++;
		}
		if (m->kind == HP_MK_CALL) {
			ASSERT_STREQ(m->what, "hmm_launch");
			ASSERT_STREQ(m->kernel, "my_kernel");
		}
	}
	ASSERT_EQ(launches, 1);
	ASSERT_EQ(prefetches, 1);
	hp_profile_free(&p);
}

static unsigned int count(const char *s, const char *what)
{
	unsigned int n = 0;

	while ((s = strstr(s, what))) {
		n++;
		s += strlen(what);
	}
	return n;
}

/* What @fn writes for profile @p, in a malloc'd string (*@len long). */
static char *render(void (*fn)(FILE *, struct hp_profile *),
		    struct hp_profile *p, size_t *len)
{
	char *buf = NULL;
	FILE *f;

	f = open_memstream(&buf, len);
	ASSERT_TRUE(f != NULL);
	fn(f, p);
	ASSERT_EQ(fclose(f), 0);
	return buf;
}

TEST(perfetto_has_kernels_and_migrations_on_one_axis)
{
	struct hp_profile p;
	size_t len = 0;
	char *buf;

	build(&p);
	buf = render(hp_perfetto, &p, &len);
	ASSERT_EQ(strncmp(buf, "{\"displayTimeUnit\":\"ns\"", 23), 0);
	ASSERT_EQ(strcmp(buf + len - 4, "\n]}\n"), 0);
	/* the kernel on its stream's thread, at its start, for its length */
	ASSERT_EQ(count(buf, "\"cat\":\"kernel\",\"name\":\"my_kernel\",\"pid\":10,"
			     "\"tid\":11,\"ts\":520.000,\"dur\":380.000"), 1);
	ASSERT_EQ(count(buf, "\"name\":\"stream 1 (device 0)\""), 1);
	/* the prefetch's batch on the device track, inside the prefetch */
	ASSERT_EQ(count(buf, "\"cat\":\"migration\",\"name\":\"to device\","
			     "\"pid\":1073741824,\"tid\":1,\"ts\":100.000,"
			     "\"dur\":300.000"), 1);
	ASSERT_EQ(count(buf, "\"name\":\"prefetch to device\",\"pid\":10,"
			     "\"tid\":10,\"ts\":50.000,\"dur\":450.000"), 1);
	ASSERT_EQ(count(buf, "\"cat\":\"migration\""), 6);
	ASSERT_EQ(count(buf, "\"cat\":\"fault\",\"name\":\"device fault\""), 1);
	ASSERT_EQ(count(buf, "\"cat\":\"fault\",\"name\":\"CPU fault\",\"pid\":10,"
			     "\"tid\":10"), 1);
	ASSERT_EQ(count(buf, "\"allocation\":\"the weights\""), 8);
	ASSERT_GT(count(buf, "\"ph\":\"C\",\"name\":\"program's bytes on device\""), 0);
	ASSERT_GT(count(buf, "\"ph\":\"C\",\"name\":\"bytes in flight\""), 0);
	ASSERT_EQ(count(buf, "\"name\":\"hmmgpu 0\""), 1);
	free(buf);
	hp_profile_free(&p);
}

TEST(summary_table_names_each_allocation)
{
	struct hp_profile p;
	size_t len = 0;
	char *buf;

	build(&p);
	buf = render(hp_report_text, &p, &len);
	TH_LOG("%s", buf);
	ASSERT_EQ(count(buf, "Allocations, by time migrating"), 1);
	/* costliest first: the weights, then b, then the new allocation */
	ASSERT_TRUE(strstr(buf, "  the weights ") < strstr(buf, "  b "));
	ASSERT_EQ(count(buf, "  the weights          2.00 MiB   2.06 MiB    "
			     "128 KiB        1        0       16"), 1);
	ASSERT_EQ(count(buf, "H->D prefetch 2.06 MiB; D->H prefetch 64.0 KiB, "
			     "CPU fault 64.0 KiB"), 1);
	ASSERT_EQ(count(buf, "  b                    2.00 MiB   64.0 KiB   "
			     "64.0 KiB        0        1        0"), 1);
	ASSERT_EQ(count(buf, "outside every allocation: 16.0 KiB to device, "
			     "0 B to host"), 1);
	/* with markers, no touched ranges */
	ASSERT_EQ(count(buf, "Touched ranges"), 0);
	free(buf);
	hp_profile_free(&p);
}

int main(int argc, char **argv)
{
	if (argc == 3 && (!strcmp(argv[1], "--perfetto") ||
			  !strcmp(argv[1], "--html"))) {
		struct hp_profile p;
		FILE *f = fopen(argv[2], "w");

		if (!f)
			return 1;
		build(&p);
		if (!strcmp(argv[1], "--html"))
			hp_plot_html(f, &p);
		else
			hp_perfetto(f, &p);
		hp_profile_free(&p);
		return fclose(f) ? 1 : 0;
	}
	return hmmt_main(argc, argv);
}
