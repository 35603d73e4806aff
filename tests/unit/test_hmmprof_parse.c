// SPDX-License-Identifier: MIT
/*
 * test_hmmprof_parse.c - hmmprof without a device: trace records decoded
 * by the events' formats, what a profile makes of events (counts,
 * residency after evictions) and the scaling of units.  The VM test
 * (tests/kernel/test_hmmprof) checks the same against a real driver;
 * this one pins the formats down.
 */
#include "harness.h"

#include "fake_trace.h"
#include "hmmprof.h"

#define PS 4096ull
#define T_NS 1234000005678ull

/* enum values of the events' dir and cause fields */
#define TO_DEVICE "dir=0"
#define TO_SYSTEM "dir=1"
#define EXPLICIT "cause=0"
#define EVICTION "cause=2"

/* The event that thread @tid records at T_NS for @what (fake_record()). */
static struct hp_event event(int tid, const char *what)
{
	struct fake_trace ft;
	struct hp_marker m;
	struct hp_event ev;

	fake_trace_init(&ft);
	if (fake_record(&ft, tid, T_NS, what, &ev, &m) != HP_REC_EVENT)
		HMMT_FAIL("not an event: %s", what);
	fake_trace_free(&ft);
	return ev;
}

TEST(batch_record_gives_every_field)
{
	struct hp_event ev = event(184,
		"hmmgpu_migrate_batch: dev=1 " TO_DEVICE " " EXPLICIT " "
		"start=0x7f0000200000 npages=512 moved=500 failed=2 "
		"peer=7 ns=12345");

	ASSERT_EQ(ev.type, HP_EV_BATCH);
	ASSERT_EQ(ev.t_ns, T_NS);
	ASSERT_EQ(ev.pid, 184);
	ASSERT_EQ(ev.tid, 184);
	ASSERT_EQ(ev.dev, 1);
	ASSERT_EQ(ev.dir, HP_TO_DEVICE);
	ASSERT_EQ(ev.cause, HMMGPU_CAUSE_EXPLICIT);
	ASSERT_EQ(ev.start, 0x7f0000200000ull);
	ASSERT_EQ(ev.npages, 512);
	ASSERT_EQ(ev.moved, 500);
	ASSERT_EQ(ev.failed, 2);
	ASSERT_EQ(ev.peer, 7);
	ASSERT_EQ(ev.ns, 12345);
}

/*
 * A record names its thread only: the decoder gives the thread as the
 * process too (hp_trace_drain() finds the real one).  A cause or device
 * hmmprof does not know is kept in range.
 */
TEST(record_names_its_thread_and_odd_values_stay_in_range)
{
	struct hp_event ev = event(186,
		"hmmgpu_migrate_batch: dev=0 " TO_SYSTEM " " EVICTION " "
		"start=0x0 npages=512 moved=512 failed=0 peer=0 ns=1");

	ASSERT_EQ(ev.tid, 186);
	ASSERT_EQ(ev.pid, 186);
	ASSERT_EQ(ev.dir, HP_TO_HOST);
	ASSERT_EQ(ev.cause, HMMGPU_CAUSE_EVICTION);

	ev = event(1, "hmmgpu_migrate_batch: dev=99 dir=5 cause=-1 npages=1");
	ASSERT_EQ(ev.dev, HP_MAX_DEVICES - 1);
	ASSERT_EQ(ev.dir, HP_TO_HOST);
	ASSERT_EQ(ev.cause, HMMGPU_CAUSE_COUNT - 1);
}

TEST(fault_records)
{
	struct hp_event ev = event(90,
		"hmmgpu_cpu_fault: dev=0 addr=0x7f0000005000 "
		"start=0x7f0000000000 npages=16 moved=16 ns=900");

	ASSERT_EQ(ev.type, HP_EV_CPU_FAULT);
	ASSERT_EQ(ev.dir, HP_TO_HOST);
	ASSERT_EQ(ev.cause, HMMGPU_CAUSE_CPU_FAULT);
	ASSERT_EQ(ev.addr, 0x7f0000005000ull);
	ASSERT_EQ(ev.start, 0x7f0000000000ull);
	ASSERT_EQ(ev.moved, 16);

	ev = event(91, "hmmgpu_device_fault: dev=0 addr=0x7f0000005000 "
		   "start=0x7f0000000000 npages=16 moved=0 remote=1 ns=700");
	ASSERT_EQ(ev.type, HP_EV_DEVICE_FAULT);
	ASSERT_EQ(ev.tid, 91);
	ASSERT_EQ(ev.dir, HP_TO_DEVICE);
	ASSERT_EQ(ev.cause, HMMGPU_CAUSE_DEVICE_FAULT);
	ASSERT_EQ(ev.remote, 1);
	ASSERT_EQ(ev.ns, 700);
}

TEST(evicted_record_names_the_owner_and_its_pages)
{
	struct hp_event ev = event(57,
		"hmmgpu_evicted: dev=0 " EVICTION " tgid=57 "
		"start=0x7f0000400000 npages=48");

	ASSERT_EQ(ev.type, HP_EV_EVICTED);
	ASSERT_EQ(ev.dir, HP_TO_HOST);
	ASSERT_EQ(ev.cause, HMMGPU_CAUSE_EVICTION);
	ASSERT_EQ(ev.owner, 57);
	ASSERT_EQ(ev.start, 0x7f0000400000ull);
	ASSERT_EQ(ev.npages, 48);
	ASSERT_EQ(ev.moved, 48);
	ASSERT_FALSE(hp_event_is_batch(&ev));
}

TEST(other_records_are_not_events)
{
	struct fake_trace ft;
	struct hp_marker m;
	struct hp_event ev;

	fake_trace_init(&ft);
	ASSERT_EQ(fake_record(&ft, 1, T_NS, "sched_switch: prev_pid=1",
			      &ev, &m), HP_REC_OTHER);
	ASSERT_EQ(fake_record(&ft, 1, T_NS, "hmmgpu_something_new: dev=0",
			      &ev, &m), HP_REC_OTHER);
	ASSERT_EQ(fake_record(&ft, 1, T_NS, "tracing_mark_write: hello",
			      &ev, &m), HP_REC_OTHER);
	ASSERT_EQ(fake_record(&ft, 1, T_NS, "tracing_mark_write: hmm: x y=1",
			      &ev, &m), HP_REC_OTHER);
	ASSERT_EQ(fake_record(&ft, 1, T_NS,
			      "tracing_mark_write: hmm: free ptr=0x1000 ns=5",
			      &ev, &m), HP_REC_MARKER);
	ASSERT_EQ(m.kind, HP_MK_FREE);
	ASSERT_EQ(m.ptr, 0x1000);
	ASSERT_EQ(m.ns, 5);
	ASSERT_EQ(m.t_ns, T_NS);
	ASSERT_EQ(m.tid, 1);
	fake_trace_free(&ft);
}

/*
 * A driver whose event lacks a field hmmprof reads is refused with one
 * line naming the event and the field; a driver without the optional
 * events is not.
 */
TEST(formats_without_a_field_are_refused_by_name)
{
	static const char batch[] =
		"name: hmmgpu_migrate_batch\n"
		"ID: 600\n"
		"format:\n"
		"\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
		"\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n"
		"\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n"
		"\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n"
		"\n"
		"\tfield:unsigned int dev;\toffset:8;\tsize:4;\tsigned:0;\n"
		"\tfield:int dir;\toffset:12;\tsize:4;\tsigned:1;\n"
		"\tfield:int cause;\toffset:16;\tsize:4;\tsigned:1;\n"
		"\tfield:unsigned long start;\toffset:24;\tsize:8;\tsigned:0;\n"
		"\tfield:unsigned long npages;\toffset:32;\tsize:8;\tsigned:0;\n"
		"\tfield:unsigned long failed;\toffset:40;\tsize:8;\tsigned:0;\n"
		"\tfield:unsigned long peer;\toffset:48;\tsize:8;\tsigned:0;\n"
		"\tfield:u64 ns;\toffset:56;\tsize:8;\tsigned:0;\n"
		"\n"
		"print fmt: \"dev=%u\", REC->dev\n";
	/* the print event, as fake_trace.h has it */
	const char *print = fake_formats[sizeof(fake_formats) /
					 sizeof(*fake_formats) - 1].format;
	struct tep_handle *tep = tep_alloc();
	struct hp_formats *f;
	char why[256] = "";

	ASSERT_TRUE(tep != NULL);
	ASSERT_EQ(tep_parse_event(tep, print, strlen(print), "ftrace"), 0);
	/* no hmmgpu_migrate_batch at all */
	ASSERT_TRUE(hp_formats_new(tep, why, sizeof(why)) == NULL);
	TH_LOG("%s", why);
	ASSERT_TRUE(strstr(why, "hmmgpu:hmmgpu_migrate_batch") != NULL);
	/* one without "moved" */
	ASSERT_EQ(tep_parse_event(tep, batch, strlen(batch), "hmmgpu"), 0);
	f = hp_formats_new(tep, why, sizeof(why));
	ASSERT_TRUE(f == NULL);
	TH_LOG("%s", why);
	ASSERT_TRUE(strstr(why, "hmmgpu_migrate_batch") != NULL);
	ASSERT_TRUE(strstr(why, "'moved'") != NULL);
	ASSERT_TRUE(strchr(why, '\n') == NULL);
	tep_free(tep);
}

/* --- a profile from events ----------------------------------------------- */

static void add(struct hp_profile *p, const char *what)
{
	struct hp_event ev = event(10, what);

	hp_profile_add(p, &ev);
}

static void profile_start(struct hp_profile *p)
{
	hp_profile_init(p);
	p->page_size = PS;
	p->traced = true;
	p->ev_limit = 1024;
}

/*
 * 8 MiB prefetched to the device, then one 2 MiB block of it evicted:
 * the counts say so, and the residency map puts those pages home only
 * when the hmmgpu_evicted event is the program's own.
 */
static void evict_profile(struct hp_profile *p, int owner)
{
	char what[256];

	profile_start(p);
	for (int i = 0; i < 4; i++) {
		snprintf(what, sizeof(what),
			 "hmmgpu_migrate_batch: dev=0 " TO_DEVICE " " EXPLICIT
			 " start=0x%llx npages=512 moved=512 failed=0 peer=0 "
			 "ns=100",
			 0x7f0000000000ull + (unsigned long long)i * (2 << 20));
		add(p, what);
	}
	snprintf(what, sizeof(what),
		 "hmmgpu_evicted: dev=0 " EVICTION " tgid=%d "
		 "start=0x7f0000200000 npages=512", owner);
	add(p, what);
	add(p, "hmmgpu_migrate_batch: dev=0 " TO_SYSTEM " " EVICTION " "
	       "start=0x0 npages=512 moved=512 failed=0 peer=0 ns=100");
	hp_profile_finish(p);
}

TEST(evicted_pages_go_home_in_the_map)
{
	struct hp_profile p;

	evict_profile(&p, 10);
	ASSERT_EQ(p.proc.pages[HP_TO_DEVICE][HMMGPU_CAUSE_EXPLICIT], 2048);
	ASSERT_EQ(p.proc.pages[HP_TO_HOST][HMMGPU_CAUSE_EVICTION], 512);
	ASSERT_EQ(p.proc.evictions, 1);
	ASSERT_EQ(p.proc.batches, 5); /* the evicted event is no batch */
	ASSERT_EQ(p.evicted_pages_unplaced, 0);
	ASSERT_EQ(p.nranges, 1);
	ASSERT_EQ(p.ranges[0].start, 0x7f0000000000ull);
	ASSERT_EQ(p.ranges[0].end, 0x7f0000800000ull);
	ASSERT_EQ(p.ranges[0].final[HP_RES_DEVICE + 0], 1536);
	ASSERT_EQ(p.ranges[0].final[HP_RES_SYSTEM], 512);
	/* the evicted block is the second one */
	for (uint64_t i = 0; i < 2048; i++)
		ASSERT_EQ(p.ranges[0].state[i],
			  i / 512 == 1 ? HP_RES_SYSTEM : HP_RES_DEVICE + 0);
	hp_profile_free(&p);
}

TEST(another_process_evicted_pages_are_not_placed)
{
	struct hp_profile p;

	evict_profile(&p, 11);
	ASSERT_EQ(p.proc.pages[HP_TO_HOST][HMMGPU_CAUSE_EVICTION], 512);
	ASSERT_EQ(p.evicted_pages_unplaced, 512);
	ASSERT_EQ(p.ranges[0].final[HP_RES_DEVICE + 0], 2048);
	hp_profile_free(&p);
}

/* --- units ------------------------------------------------------------- */

TEST(bytes_scale_to_three_digits)
{
	char b[32];

	ASSERT_STREQ(hp_fmt_bytes(b, sizeof(b), 0), "0 B");
	ASSERT_STREQ(hp_fmt_bytes(b, sizeof(b), 1023), "1023 B");
	ASSERT_STREQ(hp_fmt_bytes(b, sizeof(b), 1024), "1.00 KiB");
	ASSERT_STREQ(hp_fmt_bytes(b, sizeof(b), 960 << 10), "960 KiB");
	ASSERT_STREQ(hp_fmt_bytes(b, sizeof(b), 10ull << 20), "10.0 MiB");
	ASSERT_STREQ(hp_fmt_bytes(b, sizeof(b), 1536ull << 20), "1.50 GiB");
	ASSERT_STREQ(hp_fmt_bytes(b, sizeof(b), 3ull << 40), "3.00 TiB");
}

TEST(durations_scale_from_ns_to_s)
{
	char b[32];

	ASSERT_STREQ(hp_fmt_ns(b, sizeof(b), 999), "999 ns");
	ASSERT_STREQ(hp_fmt_ns(b, sizeof(b), 41200), "41.2 µs");
	ASSERT_STREQ(hp_fmt_ns(b, sizeof(b), 2580000), "2.58 ms");
	ASSERT_STREQ(hp_fmt_ns(b, sizeof(b), 2260000000ull), "2.26 s");
}

TEST_MAIN()
