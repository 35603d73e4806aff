// SPDX-License-Identifier: MIT
/*
 * test_hmmprof_parse.c - hmmprof without a device: the trace line parser,
 * what a profile makes of events (counts, residency after evictions) and
 * the scaling of units.  The VM test (tests/kernel/test_hmmprof) checks
 * the same against a real driver; this one pins the formats down.
 */
#include "harness.h"

#include "hmmprof.h"

#define PS 4096ull

/* A trace_pipe line as hmmprof's instance prints it (irq-info off). */
#define LINE(ctx, ev) "       " ctx " [001]  1234.000005678: " ev

TEST(batch_line_gives_every_field)
{
	struct hp_event ev;

	ASSERT_TRUE(hp_trace_parse_line(
		LINE("vecadd-184     (    184)",
		     "hmmgpu_migrate_batch: dev=1 to_device cause=explicit "
		     "start=0x7f0000200000 npages=512 moved=500 failed=2 "
		     "peer=7 ns=12345"), &ev));
	ASSERT_EQ(ev.type, HP_EV_BATCH);
	ASSERT_EQ(ev.t_ns, 1234000005678ull);
	ASSERT_EQ(ev.pid, 184);
	ASSERT_EQ(ev.tid, 184);
	ASSERT_TRUE(ev.pid_known);
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

/* A command name with spaces and dashes, and a thread the trace has not
 * put in its process yet: the thread stands for its process. */
TEST(unknown_thread_group_falls_back_to_the_thread)
{
	struct hp_event ev;

	ASSERT_TRUE(hp_trace_parse_line(
		LINE("hmm exec-0/1-186 (-------)",
		     "hmmgpu_migrate_batch: dev=0 to_system cause=eviction "
		     "start=0x0 npages=512 moved=512 failed=0 peer=0 ns=1"),
		&ev));
	ASSERT_EQ(ev.tid, 186);
	ASSERT_EQ(ev.pid, 186);
	ASSERT_FALSE(ev.pid_known);
	ASSERT_EQ(ev.dir, HP_TO_HOST);
	ASSERT_EQ(ev.cause, HMMGPU_CAUSE_EVICTION);
}

TEST(fault_lines)
{
	struct hp_event ev;

	ASSERT_TRUE(hp_trace_parse_line(
		LINE("a.out-90 (     90)",
		     "hmmgpu_cpu_fault: dev=0 addr=0x7f0000005000 "
		     "start=0x7f0000000000 npages=16 moved=16 ns=900"), &ev));
	ASSERT_EQ(ev.type, HP_EV_CPU_FAULT);
	ASSERT_EQ(ev.dir, HP_TO_HOST);
	ASSERT_EQ(ev.cause, HMMGPU_CAUSE_CPU_FAULT);
	ASSERT_EQ(ev.addr, 0x7f0000005000ull);
	ASSERT_EQ(ev.start, 0x7f0000000000ull);
	ASSERT_EQ(ev.moved, 16);

	ASSERT_TRUE(hp_trace_parse_line(
		LINE("a.out-91 (     90)",
		     "hmmgpu_device_fault: dev=0 addr=0x7f0000005000 "
		     "start=0x7f0000000000 npages=16 moved=0 remote ns=700"),
		&ev));
	ASSERT_EQ(ev.type, HP_EV_DEVICE_FAULT);
	ASSERT_EQ(ev.pid, 90);
	ASSERT_EQ(ev.tid, 91);
	ASSERT_EQ(ev.remote, 1);
	ASSERT_EQ(ev.ns, 700);
}

TEST(evicted_line_names_the_owner_and_its_pages)
{
	struct hp_event ev;

	ASSERT_TRUE(hp_trace_parse_line(
		LINE("gather-57 (     57)",
		     "hmmgpu_evicted: dev=0 cause=eviction tgid=57 "
		     "start=0x7f0000400000 npages=48"), &ev));
	ASSERT_EQ(ev.type, HP_EV_EVICTED);
	ASSERT_EQ(ev.dir, HP_TO_HOST);
	ASSERT_EQ(ev.cause, HMMGPU_CAUSE_EVICTION);
	ASSERT_EQ(ev.owner, 57);
	ASSERT_EQ(ev.start, 0x7f0000400000ull);
	ASSERT_EQ(ev.npages, 48);
	ASSERT_EQ(ev.moved, 48);
	ASSERT_FALSE(hp_event_is_batch(&ev));
}

TEST(other_lines_are_not_events)
{
	struct hp_event ev;

	ASSERT_FALSE(hp_trace_parse_line("", &ev));
	ASSERT_FALSE(hp_trace_parse_line("# tracer: nop", &ev));
	ASSERT_FALSE(hp_trace_parse_line(
		LINE("a-1 (      1)", "sched_switch: prev_comm=a"), &ev));
	ASSERT_FALSE(hp_trace_parse_line(
		LINE("a-1 (      1)", "hmmgpu_something_new: dev=0"), &ev));
	ASSERT_FALSE(hp_trace_parse_line("garbage: hmmgpu_migrate_batch: x",
					 &ev));
}

/* --- a profile from events ----------------------------------------------- */

static void add(struct hp_profile *p, const char *line)
{
	struct hp_event ev;

	if (!hp_trace_parse_line(line, &ev))
		HMMT_FAIL("does not parse: %s", line);
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
	char line[256];

	profile_start(p);
	for (int i = 0; i < 4; i++) {
		snprintf(line, sizeof(line),
			 LINE("prog-10 (     10)",
			      "hmmgpu_migrate_batch: dev=0 to_device "
			      "cause=explicit start=0x%llx npages=512 moved=512 "
			      "failed=0 peer=0 ns=100"),
			 0x7f0000000000ull + (unsigned long long)i * (2 << 20));
		add(p, line);
	}
	snprintf(line, sizeof(line),
		 LINE("prog-10 (     10)",
		      "hmmgpu_evicted: dev=0 cause=eviction tgid=%d "
		      "start=0x7f0000200000 npages=512"), owner);
	add(p, line);
	add(p, LINE("prog-10 (     10)",
		    "hmmgpu_migrate_batch: dev=0 to_system cause=eviction "
		    "start=0x0 npages=512 moved=512 failed=0 peer=0 ns=100"));
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
