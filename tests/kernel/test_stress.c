// SPDX-License-Identifier: MIT
/*
 * test_stress.c - a seeded, time-bounded stress test that checks every
 * word it reads.  hmmgpu is reloaded with small devices (mem_mib=8, both
 * devices of the VM), and several threads work for a bounded time on
 * 48 MiB of memory, six times what one device holds, doing at random:
 * prefetches (MIGRATE to device 0, to device 1, to system) of ranges of
 * any size, CPU reads and writes, device reads and writes through views
 * of the memory on either device, fork() (the child checks a snapshot,
 * writes its own copy and migrates it), replacement of chunks by fresh
 * memory (munmap + mmap, mmap over, MADV_DONTNEED), mprotect and mlock,
 * view advice (granularity, remote access), prefetch_pct, renewal of a
 * view, and RESIDENCY queries.
 *
 * Bookkeeping: the memory is split in chunks of 256 KiB, each with a
 * read-write lock and a version number.  A writer holds the chunk's lock
 * for writing, takes the next version, writes pages of the chunk with
 * the CPU or through a view, and records that version for each page it
 * wrote.  A word's value encodes its chunk, its index in the chunk and
 * the version of its page (zero: a page that holds nothing yet), so the
 * expected value of every word is known exactly at any time, and a wrong
 * one says what it is: a lost write (an older version of the same word),
 * a page of another place, zeroes, or the data of a forked child.
 * Readers hold the lock for reading, so that a CPU reader and device
 * readers of the same pages run at once.  Migrations, advice and
 * RESIDENCY take no chunk lock: they never change data, and racing them
 * with the accesses is the point.
 *
 * It passes when every word read during the run and at the end (through
 * a view, then with the CPU) holds what its last writer wrote, every
 * ioctl succeeded (MIGRATE with moved + already + skipped = the pages
 * asked for; EFAULT only while a chunk was unmapped for a moment), every
 * child found its snapshot intact and exited 0, the device memory in use
 * at the end is exactly the pages RESIDENCY reports there, and, once
 * everything is unmapped and the views unregistered, each device's
 * memory is all free.  The VM runner adds its kernel-log check.
 *
 * Environment: HMM_STRESS_SECONDS (default 30), HMM_STRESS_SEED (default
 * from the clock; printed first as "# seed N").  A seed gives every
 * thread the same sequence of operations; how the threads interleave is
 * up to the scheduler.  The test's time limit follows HMM_STRESS_SECONDS.
 *
 * Device execution: a worker doing a device access touches the memory
 * only through a view mapping, as the device's execution unit for that
 * operation.  Not kt_dev_*(): they run one job at a time on one thread,
 * and the point here is several device accesses at once.
 *
 * Runs inside the test VM with hmmgpu.ko loaded (tools/vm/hmmvm test).
 */
#define _GNU_SOURCE
#include "kt_common.h"
#include "kt_rng.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KIB (1UL << 10)
#define MIB (1UL << 20)

#define MEM_MIB 8		/* per device, after the reload */
#define MAX_DEV 2
#define NBUF 2
#define BUF_SIZE (24 * MIB)	/* NBUF of them: 6x one device */
#define CHUNK (256 * KIB)
#define CPB (BUF_SIZE / CHUNK)	/* chunks per buffer */
#define NCHUNKS (NBUF * CPB)
#define GROUP (2 * MIB / CHUNK)	/* chunks per 2 MiB */
#define CHUNK_PAGES_MAX (CHUNK / 4096)
/* Buffer 1 starts this far past a 2 MiB boundary: blocks straddle it. */
#define BUF1_SKEW (68 * KIB)
#define NWORKERS 4
#define FORK_MAX 4		/* chunks a forked child checks */
#define RES_MAX 1024		/* pages of one RESIDENCY query */
#define MAX_REPORTS 12

#define DEFAULT_SECONDS 30
/*
 * The test's time limit: the run, then reload, set-up and final checks
 * (48 MiB through views and the CPU, slow under KASAN), with margin.
 */
#define TIMEOUT_MARGIN 240

#define TO_DEVICE HMMGPU_MIGRATE_TO_DEVICE
#define TO_SYSTEM HMMGPU_MIGRATE_TO_SYSTEM

/* --- seeded random numbers ------------------------------------------------ */


/* --- the memory and what it must hold ------------------------------------- */

/*
 * Word @w of chunk @c, written as version @ver: chunk in bits 63-48, word
 * in bits 46-32, version in bits 31-0.  Version 0 is a page with no data
 * yet, all zero.  A forked child writes the same with CHILD_BIT set, so
 * that its data showing in the parent is recognised.
 */
#define CHILD_BIT (1ULL << 47)

static uint64_t word_value(size_t c, size_t w, uint32_t ver)
{
	if (!ver)
		return 0;
	return (uint64_t)c << 48 | (uint64_t)w << 32 | ver;
}

/* Who wrote a page last, for reports. */
enum writer { W_NONE, W_CPU, W_DEV0, W_DEV1, W_REMAP };

static const char *const writer_names[] = {
	"nobody", "the CPU", "device 0", "device 1", "a remap (fresh memory)",
};

struct chunk {
	/*
	 * Read: the data and the fields below are stable (data checks,
	 * fork).  Write: the data, the mapping or the fields change.
	 */
	pthread_rwlock_t lock;
	uint32_t ver;				/* last version taken */
	uint32_t pagever[CHUNK_PAGES_MAX];	/* version each page holds */
	uint8_t writer[CHUNK_PAGES_MAX];	/* enum writer */
};

struct view {
	/* read: accesses through it and advice; write: its renewal */
	pthread_rwlock_t lock;
	struct kt_view kv;	/* on fds[d], over the whole buffer */
	/* the last advice given, for reports */
	atomic_uint remote;
	atomic_ulong gran;	/* 0: the module's default */
};

struct buffer {
	char *cpu;
	char *map;		/* the whole mapping, with what is around cpu */
	size_t map_size;
	struct view views[MAX_DEV];
};

static size_t ps, cpages;	/* page size, pages per chunk */
static int ndev;
static int fds[MAX_DEV];
static bool have_views;
static struct buffer bufs[NBUF];
static struct chunk chunks[NCHUNKS];
static unsigned long long orig_prefetch_pct;
static atomic_bool stop;

static char *chunk_cpu(size_t c)
{
	return bufs[c / CPB].cpu + (c % CPB) * CHUNK;
}

static struct view *chunk_view(size_t c, int d)
{
	return &bufs[c / CPB].views[d];
}

/*
 * Holes: a chunk is unmapped for a moment (munmap, then mmap) while
 * other threads run, and MIGRATE or VIEW_REGISTER over it may then fail
 * (EFAULT, EINVAL).  They may only when a hole was open at some time
 * during the call: one open when it began, or one opened since.
 */
static atomic_ulong holes_open, holes_gen;

struct holes {
	unsigned long gen;
	bool open;
};

static void holes_before(struct holes *h)
{
	h->gen = holes_gen;
	h->open = holes_open != 0;
}

static bool holes_since(const struct holes *h)
{
	return h->open || holes_gen != h->gen;
}

/* --- counts and failures -------------------------------------------------- */

enum kind {
	K_CPU_READ, K_CPU_WRITE, K_DEV_READ, K_DEV_WRITE, K_TO_DEVICE,
	K_TO_SYSTEM, K_REMAP, K_PROTECT, K_ADVISE, K_VIEW_RENEW, K_FORK,
	K_RESIDENCY, K_COUNT
};

static atomic_ulong n_ops[K_COUNT];
static atomic_ulong n_dev_ops[MAX_DEV][3];	/* reads, writes, prefetches */
static atomic_ulong n_words_checked, n_words_written;
static atomic_ulong n_moved, n_already, n_skipped, n_efault_hole;
static atomic_ulong n_remap_kind[3], n_remap_group, n_refill;
static atomic_ulong n_mprotect, n_mlock;
static atomic_ulong n_adv_gran, n_adv_remote[2], n_adv_pct;
static atomic_ulong n_child_chunks, n_register_retries;

static atomic_ulong n_bad;
static atomic_uint n_reports;
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * A failure: logged (the first MAX_REPORTS), counted, and the run stops;
 * the test fails at its end, after the final checks have said what they
 * see too.
 */
static void __attribute__((format(printf, 1, 2))) bad(const char *fmt, ...)
{
	va_list ap;

	n_bad++;
	stop = true;
	if (n_reports++ >= MAX_REPORTS)
		return;
	pthread_mutex_lock(&report_lock);
	printf("# FAIL: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	pthread_mutex_unlock(&report_lock);
}

/*
 * What the thread is doing, for the report of a fatal signal: a view
 * access that gets SIGBUS (or a CPU access SIGSEGV) is a failure, and
 * the process dies of it, but not before saying where.
 */
static __thread const char *cur_what;
static __thread size_t cur_chunk;

static void fatal_signal(int sig, siginfo_t *si, void *uctx)
{
	char msg[256];
	int n;

	(void)uctx;
	n = snprintf(msg, sizeof(msg), "# FAIL: %s at %p during %s of chunk "
		     "%zu\n", sig == SIGBUS ? "SIGBUS" : "SIGSEGV", si->si_addr,
		     cur_what ? cur_what : "(none)", cur_chunk);
	if (n > 0 && write(STDOUT_FILENO, msg, n) < 0)
		n = 0;
	/* SA_RESETHAND: the access runs again and kills the process */
}

static void doing(const char *what, size_t c)
{
	cur_what = what;
	cur_chunk = c;
}

/* Where page @p of chunk @c is now, as text. */
static const char *where_now(size_t c, size_t p)
{
	uint8_t loc = 0;

	if (kt_residency(fds[0], chunk_cpu(c) + p * ps, 1, &loc, NULL))
		return "(RESIDENCY failed)";
	switch (loc) {
	case HMMGPU_RESIDENCY_NONE:
		return "nowhere (no data)";
	case HMMGPU_RESIDENCY_SYSTEM:
		return "system memory";
	case HMMGPU_RESIDENCY_THIS_DEVICE:
		return "device 0";
	case HMMGPU_RESIDENCY_OTHER_DEVICE:
		return ndev > 1 ? "device 1" : "another device";
	default:
		return "(invalid residency)";
	}
}

/*
 * Reports word @w of chunk @c, read as @got through @via, and what the
 * pages [@p0, @p1) around it hold now, word by word: how many are wrong,
 * and what they are instead.
 */
static void report_mismatch(size_t c, const volatile uint64_t *mem,
			    size_t p0, size_t p1, size_t w, uint64_t got,
			    const char *via)
{
	const struct chunk *ch = &chunks[c];
	size_t wpp = ps / 8, p = w / wpp;
	size_t nbad = 0, nzero = 0, nold = 0, nnew = 0, nchild = 0;
	size_t nforeign = 0;
	uint32_t ver = ch->pagever[p];
	uint64_t again = mem[w];
	char views[128] = "";
	int n = 0;

	for (size_t q = p0; q < p1; q++) {
		for (size_t i = q * wpp; i < (q + 1) * wpp; i++) {
			uint64_t x = mem[i];

			if (x == word_value(c, i, ch->pagever[q]))
				continue;
			nbad++;
			if (!x)
				nzero++;
			else if (x & CHILD_BIT)
				nchild++;
			else if (x >> 48 != c || ((x >> 32) & 0x7fff) != i)
				nforeign++;
			else if ((uint32_t)x < ch->pagever[q])
				nold++;	/* a write lost */
			else
				nnew++;
		}
	}
	for (int d = 0; d < ndev && have_views; d++) {
		const struct view *v = chunk_view(c, d);

		n += snprintf(views + n, sizeof(views) - n,
			      "%sview %d: remote %u granularity %lu",
			      d ? ", " : "", d, v->remote,
			      (unsigned long)v->gran);
	}
	bad("chunk %zu (buffer %zu + 0x%zx) word %zu (page %zu) read through "
	    "%s is 0x%016llx, expected 0x%016llx (version %u written by %s); "
	    "it is chunk %llu word %llu version %u%s; read again: 0x%016llx; "
	    "pages %zu-%zu now: %zu of %zu words wrong (%zu zero, %zu older "
	    "versions, %zu newer, %zu of a child, %zu of another place); the "
	    "page is in %s; %s; prefetch_pct %llu",
	    c, c / CPB, (c % CPB) * CHUNK + w * 8, w, p, via,
	    (unsigned long long)got,
	    (unsigned long long)word_value(c, w, ver), ver,
	    writer_names[ch->writer[p]], (unsigned long long)(got >> 48),
	    (unsigned long long)((got >> 32) & 0x7fff), (uint32_t)got,
	    got & CHILD_BIT ? " of a child" : "", (unsigned long long)again,
	    p0, p1 - 1, nbad, (p1 - p0) * wpp, nzero, nold, nnew, nchild,
	    nforeign, where_now(c, p), views,
	    kt_module_param_or("prefetch_pct", ~0ULL));
}

/* --- data: check and write ----------------------------------------------- */

/*
 * Checks pages [@p0, @p1) of chunk @c read through @mem (the chunk's CPU
 * range or its place in a view) against their versions, every word.
 * The caller holds the chunk's lock.  Returns false (reported) when a
 * word is wrong.
 */
static bool check_pages(size_t c, const volatile uint64_t *mem, size_t p0,
			size_t p1, const char *via)
{
	const struct chunk *ch = &chunks[c];
	size_t wpp = ps / 8;

	for (size_t p = p0; p < p1; p++) {
		uint32_t ver = ch->pagever[p];

		for (size_t w = p * wpp; w < (p + 1) * wpp; w++) {
			uint64_t got = mem[w];

			if (got != word_value(c, w, ver)) {
				report_mismatch(c, mem, p0, p1, w, got, via);
				return false;
			}
		}
	}
	n_words_checked += (p1 - p0) * wpp;
	return true;
}

/*
 * Writes pages [@p0, @p1) of chunk @c through @mem as a new version, in
 * either direction (a migration then meets a page half written from
 * either end).  The caller holds the chunk's lock for writing.
 */
static void write_pages(struct rng *r, size_t c, volatile uint64_t *mem,
			size_t p0, size_t p1, enum writer who)
{
	struct chunk *ch = &chunks[c];
	uint32_t ver = ++ch->ver;
	size_t wpp = ps / 8;

	if (chance(r, 50)) {
		for (size_t w = p0 * wpp; w < p1 * wpp; w++)
			mem[w] = word_value(c, w, ver);
	} else {
		for (size_t w = p1 * wpp; w-- > p0 * wpp;)
			mem[w] = word_value(c, w, ver);
	}
	for (size_t p = p0; p < p1; p++) {
		ch->pagever[p] = ver;
		ch->writer[p] = who;
	}
	n_words_written += (p1 - p0) * wpp;
}

/* The place of chunk @c in the view of device @d, read-locked. */
static volatile uint64_t *view_get(size_t c, int d)
{
	struct view *v = chunk_view(c, d);

	pthread_rwlock_rdlock(&v->lock);
	return (volatile uint64_t *)(v->kv.dev + (c % CPB) * CHUNK);
}

static void view_put(size_t c, int d)
{
	pthread_rwlock_unlock(&chunk_view(c, d)->lock);
}

static const char *const dev_read_names[] = { "view of device 0",
					      "view of device 1" };

/*
 * Checks pages [@p0, @p1) of chunk @c, with the CPU (@d < 0) or through
 * the view of device @d.  Chunk lock held.
 */
static bool check_via(size_t c, int d, size_t p0, size_t p1)
{
	bool ok;

	if (d < 0)
		return check_pages(c, (volatile uint64_t *)chunk_cpu(c), p0,
				   p1, "the CPU");
	ok = check_pages(c, view_get(c, d), p0, p1, dev_read_names[d]);
	view_put(c, d);
	return ok;
}

/* Writes pages [@p0, @p1) of chunk @c like check_via() reads them. */
static void write_via(struct rng *r, size_t c, int d, size_t p0, size_t p1)
{
	if (d < 0) {
		write_pages(r, c, (volatile uint64_t *)chunk_cpu(c), p0, p1,
			    W_CPU);
		return;
	}
	write_pages(r, c, view_get(c, d), p0, p1, W_DEV0 + d);
	view_put(c, d);
}

/* A random agent: the CPU (-1) or a device, when there are views. */
static int any_agent(struct rng *r)
{
	if (!have_views || chance(r, 40))
		return -1;
	return below(r, ndev);
}

/* A random page range of a chunk: the whole chunk half of the time. */
static void any_pages(struct rng *r, size_t *p0, size_t *p1)
{
	if (chance(r, 50)) {
		*p0 = 0;
		*p1 = cpages;
		return;
	}
	*p0 = below(r, cpages);
	*p1 = *p0 + 1 + below(r, cpages - *p0);
}

/* --- operations ----------------------------------------------------------- */

struct worker {
	struct kt_thread t;
	struct rng r;
	uint8_t loc[RES_MAX];
};

static void op_read(struct worker *wk, bool dev)
{
	struct rng *r = &wk->r;
	size_t c = below(r, NCHUNKS), p0, p1;
	int d = dev && have_views ? (int)below(r, ndev) : -1;

	any_pages(r, &p0, &p1);
	doing(d < 0 ? "a CPU read" : "a device read", c);
	pthread_rwlock_rdlock(&chunks[c].lock);
	check_via(c, d, p0, p1);
	pthread_rwlock_unlock(&chunks[c].lock);
	if (d < 0) {
		n_ops[K_CPU_READ]++;
	} else {
		n_dev_ops[d][0]++;
		n_ops[K_DEV_READ]++;
	}
}

static void op_write(struct worker *wk, bool dev)
{
	struct rng *r = &wk->r;
	size_t c = below(r, NCHUNKS), p0, p1;
	int d = dev && have_views ? (int)below(r, ndev) : -1;

	any_pages(r, &p0, &p1);
	doing(d < 0 ? "a CPU write" : "a device write", c);
	pthread_rwlock_wrlock(&chunks[c].lock);
	write_via(r, c, d, p0, p1);
	/* sometimes read back at once by another agent: a ping-pong */
	if (chance(r, 25))
		check_via(c, any_agent(r), p0, p1);
	pthread_rwlock_unlock(&chunks[c].lock);
	if (d < 0) {
		n_ops[K_CPU_WRITE]++;
	} else {
		n_dev_ops[d][1]++;
		n_ops[K_DEV_WRITE]++;
	}
}

/*
 * MIGRATE of any range of a buffer: a few pages up to the whole buffer
 * (three times a device), not aligned to chunks.  No lock: data stays.
 */
static void op_prefetch(struct worker *wk)
{
	struct rng *r = &wk->r;
	struct buffer *b = &bufs[below(r, NBUF)];
	size_t npg = BUF_SIZE / ps, n, first;
	unsigned int k = below(r, 100), target;
	struct drm_hmmgpu_migrate m;
	struct holes h;
	int d = below(r, ndev + 1), ret;

	if (k < 35)
		n = 1 + below(r, 16);
	else if (k < 65)
		n = 1 + below(r, CHUNK / ps);
	else if (k < 88)
		n = 1 + below(r, 2 * MIB / ps);
	else if (k < 97)
		n = 1 + below(r, 16 * MIB / ps);
	else
		n = npg;
	first = below(r, npg - n + 1);
	/* d == ndev: to system, through either file */
	target = d < ndev ? TO_DEVICE : TO_SYSTEM;
	if (d == ndev)
		d = below(r, ndev);
	doing(target == TO_DEVICE ? "a prefetch to a device" :
				    "a prefetch to system", SIZE_MAX);

	holes_before(&h);
	ret = kt_migrate(fds[d], b->cpu + first * ps, n * ps, target, &m);
	if (ret == -EFAULT && holes_since(&h)) {
		n_efault_hole++;
	} else if (ret) {
		bad("MIGRATE %s of %zu pages at buffer %zu + 0x%zx on device "
		    "%d: %s", target == TO_DEVICE ? "to device" : "to system",
		    n, (size_t)(b - bufs), first * ps, d, strerror(-ret));
		return;
	} else if (m.moved + m.already + m.skipped != n) {
		bad("MIGRATE %s of %zu pages on device %d: moved %llu + "
		    "already %llu + skipped %llu",
		    target == TO_DEVICE ? "to device" : "to system", n, d,
		    (unsigned long long)m.moved,
		    (unsigned long long)m.already,
		    (unsigned long long)m.skipped);
		return;
	} else {
		n_moved += m.moved;
		n_already += m.already;
		n_skipped += m.skipped;
	}
	if (target == TO_DEVICE) {
		n_dev_ops[d][2]++;
		n_ops[K_TO_DEVICE]++;
	} else {
		n_ops[K_TO_SYSTEM]++;
	}
}

/*
 * A chunk, or the 2 MiB of chunks around it, replaced by fresh memory:
 * munmap then mmap (a hole for a moment), mmap over it, or
 * MADV_DONTNEED.  Every page then reads zero, until the refill (half of
 * the time) writes it, with the CPU or a device.
 */
static void op_remap(struct worker *wk)
{
	struct rng *r = &wk->r;
	bool group = chance(r, 15);
	size_t c0 = below(r, NCHUNKS), nc = 1, b;
	unsigned int kind = below(r, 100);
	char *addr;
	size_t len;

	if (group) {
		c0 -= (c0 % CPB) % GROUP;
		nc = GROUP;
	}
	b = c0 / CPB;
	addr = chunk_cpu(c0);
	len = nc * CHUNK;
	kind = kind < 40 ? 0 : kind < 75 ? 1 : 2;
	doing("a remap", c0);
	for (size_t i = 0; i < nc; i++)
		pthread_rwlock_wrlock(&chunks[c0 + i].lock);

	if (kind == 0) {
		char *p;

		holes_open++;
		holes_gen++;
		if (munmap(addr, len))
			bad("munmap of chunk %zu: %s", c0, strerror(errno));
		/*
		 * Nothing else of the process maps memory during the run
		 * (its threads exist before it starts, they allocate
		 * nothing large, and a hole of at most 2 MiB is too small
		 * for a new malloc arena), so the hole is still there.
		 */
		p = mmap(addr, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			 -1, 0);
		holes_open--;
		if (p != addr) {
			bad("mmap of chunk %zu back: %s (something else "
			    "mapped the hole?)", c0,
			    p == MAP_FAILED ? strerror(errno) : "moved");
			goto out;
		}
	} else if (kind == 1) {
		if (mmap(addr, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
			 0) != addr) {
			bad("mmap over chunk %zu: %s", c0, strerror(errno));
			goto out;
		}
	} else if (madvise(addr, len, MADV_DONTNEED)) {
		bad("MADV_DONTNEED of chunk %zu: %s", c0, strerror(errno));
		goto out;
	}
	/* buffer 0 wants huge pages: fresh 2 MiB can be one again */
	if (kind != 2 && b == 0)
		madvise(addr, len, MADV_HUGEPAGE);
	n_remap_kind[kind]++;
	n_remap_group += group;

	for (size_t i = 0; i < nc; i++) {
		struct chunk *ch = &chunks[c0 + i];

		memset(ch->pagever, 0, sizeof(ch->pagever));
		memset(ch->writer, W_REMAP, sizeof(ch->writer));
	}
	if (chance(r, 50)) {
		int d = any_agent(r);

		for (size_t i = 0; i < nc; i++)
			write_via(r, c0 + i, d, 0, cpages);
		n_refill++;
	}
out:
	for (size_t i = nc; i-- > 0;)
		pthread_rwlock_unlock(&chunks[c0 + i].lock);
	n_ops[K_REMAP]++;
}

/*
 * A chunk made read-only, or locked in RAM, for a check, then back.  The
 * data must not change; MIGRATE to a device must skip a locked chunk
 * whole.  Under the write lock: a fork meanwhile would give the child a
 * read-only chunk to write.
 */
static void op_protect(struct worker *wk)
{
	struct rng *r = &wk->r;
	size_t c = below(r, NCHUNKS);
	char *addr = chunk_cpu(c);

	doing("an mprotect or mlock", c);
	pthread_rwlock_wrlock(&chunks[c].lock);
	if (chance(r, 50)) {
		if (mprotect(addr, CHUNK, PROT_READ)) {
			bad("mprotect of chunk %zu: %s", c, strerror(errno));
			goto out;
		}
		check_via(c, any_agent(r), 0, cpages);
		if (mprotect(addr, CHUNK, PROT_READ | PROT_WRITE))
			bad("mprotect of chunk %zu back: %s", c,
			    strerror(errno));
		n_mprotect++;
	} else {
		struct drm_hmmgpu_migrate m;
		int d = below(r, ndev), ret;

		/*
		 * As root (the VM), mlock() of 256 KiB fails only when it
		 * cannot fault a page in: one that cannot leave a device.
		 */
		if (mlock(addr, CHUNK)) {
			bad("mlock of chunk %zu: %s", c, strerror(errno));
			goto out;
		}
		ret = kt_migrate(fds[d], addr, CHUNK, TO_DEVICE, &m);
		if (ret || m.moved || m.skipped != cpages)
			bad("MIGRATE to device %d of mlocked chunk %zu: %s, "
			    "moved %llu, already %llu, skipped %llu of %zu",
			    d, c, strerror(-ret), (unsigned long long)m.moved,
			    (unsigned long long)m.already,
			    (unsigned long long)m.skipped, cpages);
		check_via(c, any_agent(r), 0, cpages);
		if (munlock(addr, CHUNK))
			bad("munlock of chunk %zu: %s", c, strerror(errno));
		n_mlock++;
	}
out:
	pthread_rwlock_unlock(&chunks[c].lock);
	n_ops[K_PROTECT]++;
}

/* Granularity or remote access of a view, or prefetch_pct. */
static void op_advise(struct worker *wk)
{
	static const char *const pcts[] = { "0", "10", "50", "90", "100" };
	struct rng *r = &wk->r;
	unsigned int k = below(r, 100);
	struct view *v;
	int d, ret;

	doing("advice", SIZE_MAX);
	if (k < 20 || !have_views) {
		ret = kt_sysfs_write("/sys/module/hmmgpu/parameters/prefetch_pct",
				     pcts[below(r, 5)]);
		if (ret)
			bad("writing prefetch_pct: %s", strerror(-ret));
		n_adv_pct++;
		goto out;
	}
	d = below(r, ndev);
	v = &bufs[below(r, NBUF)].views[d];
	pthread_rwlock_rdlock(&v->lock);
	if (k < 65) {
		uint64_t gran = ps << below(r, 10);	/* 4 KiB to 2 MiB */

		ret = kt_view_advise(fds[d], v->kv.handle,
				     HMMGPU_ADVICE_GRANULARITY, gran);
		if (!ret)
			v->gran = gran;
		n_adv_gran++;
	} else {
		unsigned int remote = chance(r, 40);

		ret = kt_view_advise(fds[d], v->kv.handle,
				     HMMGPU_ADVICE_REMOTE, remote);
		if (!ret)
			v->remote = remote;
		n_adv_remote[remote]++;
	}
	if (ret)
		bad("VIEW_ADVISE of view %u on device %d: %s", v->kv.handle, d,
		    strerror(-ret));
	pthread_rwlock_unlock(&v->lock);
out:
	n_ops[K_ADVISE]++;
}

/*
 * Registers buffer @b's view on device @d and maps it.  The range may
 * have a hole for a moment (op_remap()): EINVAL then is retried.
 */
static int view_open(int b, int d)
{
	struct view *v = &bufs[b].views[d];
	struct holes h;
	int ret;

	for (unsigned int tries = 0;; tries++) {
		holes_before(&h);
		ret = kt_view_register(fds[d], bufs[b].cpu, BUF_SIZE,
				       &v->kv.handle, &v->kv.offset);
		if (ret != -EINVAL || !holes_since(&h) || tries > 10000)
			break;
		n_register_retries++;
		usleep(1000);
	}
	if (ret)
		return ret;
	v->kv.fd = fds[d];
	v->kv.cpu = bufs[b].cpu;
	v->kv.size = BUF_SIZE;
	v->kv.dev = kt_view_mmap(fds[d], v->kv.offset, BUF_SIZE);
	if (!v->kv.dev)
		return -errno;
	v->remote = 0;
	v->gran = 0;
	return 0;
}

/*
 * A view unmapped, unregistered (with pages on the device and entries
 * mapped), registered again and mapped: its advice is the default again.
 */
static void op_view_renew(struct worker *wk)
{
	struct rng *r = &wk->r;
	int b = below(r, NBUF), d = below(r, ndev), ret;
	struct view *v = &bufs[b].views[d];

	if (!have_views)
		return;
	doing("a view renewal", SIZE_MAX);
	pthread_rwlock_wrlock(&v->lock);
	if (munmap(v->kv.dev, BUF_SIZE))
		bad("munmap of view %u: %s", v->kv.handle, strerror(errno));
	ret = kt_view_unregister(fds[d], v->kv.handle);
	if (ret)
		bad("VIEW_UNREGISTER %u: %s", v->kv.handle, strerror(-ret));
	ret = view_open(b, d);
	if (ret) {
		/* nothing may use it again: end the run here */
		bad("view of buffer %d on device %d again: %s", b, d,
		    strerror(-ret));
		abort();
	}
	pthread_rwlock_unlock(&v->lock);
	n_ops[K_VIEW_RENEW]++;
}

/* --- fork ----------------------------------------------------------------- */

/* In a child: a line on stdout without stdio, whose locks may be held. */
static void __attribute__((format(printf, 1, 2))) child_say(const char *fmt,
							    ...)
{
	char msg[512];
	va_list ap;
	int n;

	n = snprintf(msg, sizeof(msg), "# child %d: ", (int)getpid());
	va_start(ap, fmt);
	n += vsnprintf(msg + n, sizeof(msg) - n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(msg) - 2)
		n = sizeof(msg) - 2;
	msg[n++] = '\n';
	if (write(STDOUT_FILENO, msg, n) < 0)
		n = 0;
}

/*
 * In a child: chunk @c holds the parent's data as of the fork
 * (@childver 0) or the child's own version @childver.
 */
static bool child_check(size_t c, uint32_t childver, const char *when)
{
	const volatile uint64_t *mem = (const volatile uint64_t *)chunk_cpu(c);
	const struct chunk *ch = &chunks[c];
	size_t wpp = ps / 8;

	for (size_t p = 0; p < cpages; p++) {
		for (size_t w = p * wpp; w < (p + 1) * wpp; w++) {
			uint64_t want = childver ?
				word_value(c, w, childver) | CHILD_BIT :
				word_value(c, w, ch->pagever[p]);
			uint64_t got = mem[w];

			if (got == want)
				continue;
			child_say("chunk %zu word %zu (page %zu) %s is "
				  "0x%016llx, expected 0x%016llx", c, w, p,
				  when, (unsigned long long)got,
				  (unsigned long long)want);
			return false;
		}
	}
	return true;
}

/* In a child: MIGRATE chunk @c; false (said) when it fails. */
static bool child_migrate(size_t c, int d, unsigned int target)
{
	struct drm_hmmgpu_migrate m;
	int ret = kt_migrate(fds[d], chunk_cpu(c), CHUNK, target, &m);

	if (!ret && m.moved + m.already + m.skipped == cpages)
		return true;
	child_say("MIGRATE %s of chunk %zu on device %d: %s, moved %llu "
		  "already %llu skipped %llu", target == TO_DEVICE ?
		  "to device" : "to system", c, d, strerror(-ret),
		  (unsigned long long)m.moved, (unsigned long long)m.already,
		  (unsigned long long)m.skipped);
	return false;
}

/*
 * The child of a fork: the chunks @set, which the parent held locked
 * across the fork, hold their data as of then, after a migration in the
 * child too; the child then writes its own copy, migrates it and checks
 * it.  No locks, no stdio, no allocation: other threads of the parent
 * may have held any of them at the fork.  Exit 0 when all is well.
 */
static void __attribute__((noreturn)) child_run(const size_t *set, int n,
						uint64_t seed)
{
	struct rng r = { seed };

	for (int i = 0; i < n; i++) {
		size_t c = set[i];

		if (chance(&r, 50) &&
		    !child_migrate(c, below(&r, ndev), TO_DEVICE))
			_exit(2);
		if (!child_check(c, 0, "in the child"))
			_exit(1);
	}
	for (int i = 0; i < n; i++) {
		size_t c = set[i], wpp = ps / 8;
		uint32_t ver = chunks[c].ver + 1;
		volatile uint64_t *mem = (volatile uint64_t *)chunk_cpu(c);

		for (size_t w = 0; w < cpages * wpp; w++)
			mem[w] = word_value(c, w, ver) | CHILD_BIT;
		if (chance(&r, 70) &&
		    !child_migrate(c, below(&r, ndev), TO_DEVICE))
			_exit(2);
		if (!child_check(c, ver, "after the child wrote it"))
			_exit(1);
		if (chance(&r, 50) &&
		    !child_migrate(c, below(&r, ndev), TO_SYSTEM))
			_exit(2);
		if (!child_check(c, ver, "in the child, back in system"))
			_exit(1);
	}
	_exit(0);
}

/*
 * fork() with a few chunks read-locked, so that their data and versions
 * are stable in the child's copy; the parent lets them go at once (its
 * writes race the child's copy-on-write), waits for the child, and
 * checks that the child's writes did not reach it.
 */
static void op_fork(struct worker *wk)
{
	struct rng *r = &wk->r;
	size_t set[FORK_MAX];
	int n = 1 + below(r, FORK_MAX), i, j, status;
	uint64_t cseed = rnd(r);
	pid_t pid;

	/* distinct chunks, ascending: the lock order */
	for (i = 0; i < n; i++) {
		size_t c;

		do {
			c = below(r, NCHUNKS);
			for (j = 0; j < i && set[j] != c; j++)
				;
		} while (j < i);
		for (j = i; j > 0 && set[j - 1] > c; j--)
			set[j] = set[j - 1];
		set[j] = c;
	}
	doing("a fork", set[0]);
	for (i = 0; i < n; i++)
		pthread_rwlock_rdlock(&chunks[set[i]].lock);
	pid = fork();
	if (pid == 0)
		child_run(set, n, cseed);
	for (i = n; i-- > 0;)
		pthread_rwlock_unlock(&chunks[set[i]].lock);
	if (pid < 0) {
		bad("fork: %s", strerror(errno));
		return;
	}
	status = kt_wait_child(pid);
	if (status)
		bad("a forked child checking chunks %zu.. ended with %d (1: "
		    "data, 2: MIGRATE, 128+: signal)", set[0], status);
	for (i = 0; i < n; i++) {
		pthread_rwlock_rdlock(&chunks[set[i]].lock);
		check_via(set[i], any_agent(r), 0, cpages);
		pthread_rwlock_unlock(&chunks[set[i]].lock);
	}
	n_child_chunks += n;
	n_ops[K_FORK]++;
}

/* RESIDENCY of any range: each byte a valid location, sums that agree. */
static void op_residency(struct worker *wk)
{
	struct rng *r = &wk->r;
	struct buffer *b = &bufs[below(r, NBUF)];
	size_t n = 1 + below(r, RES_MAX), first;
	uint64_t count[4], sums[4] = { 0 };
	int d = below(r, ndev), ret;

	first = below(r, BUF_SIZE / ps - n + 1);
	doing("a RESIDENCY query", SIZE_MAX);
	ret = kt_residency(fds[d], b->cpu + first * ps, n, wk->loc, count);
	if (ret) {
		bad("RESIDENCY of %zu pages on device %d: %s", n, d,
		    strerror(-ret));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (wk->loc[i] > HMMGPU_RESIDENCY_OTHER_DEVICE) {
			bad("RESIDENCY: page %zu is %u", i, wk->loc[i]);
			return;
		}
		sums[wk->loc[i]]++;
	}
	for (int i = 0; i < 4; i++)
		if (sums[i] != count[i])
			bad("RESIDENCY: count[%d] is %llu, the bytes say %llu",
			    i, (unsigned long long)count[i],
			    (unsigned long long)sums[i]);
	n_ops[K_RESIDENCY]++;
}

static void worker_main(void *arg)
{
	struct worker *wk = arg;

	while (!stop) {
		unsigned int k = below(&wk->r, 100);

		if (k < 16)
			op_read(wk, false);
		else if (k < 28)
			op_write(wk, false);
		else if (k < 44)
			op_read(wk, true);
		else if (k < 56)
			op_write(wk, true);
		else if (k < 78)
			op_prefetch(wk);
		else if (k < 83)
			op_remap(wk);
		else if (k < 86)
			op_protect(wk);
		else if (k < 91)
			op_advise(wk);
		else if (k < 92)
			op_view_renew(wk);
		else if (k < 94)
			op_fork(wk);
		else
			op_residency(wk);
	}
}

/* --- set-up, results, final checks ---------------------------------------- */

static unsigned long env_ulong(const char *name, unsigned long def)
{
	const char *v = getenv(name);
	char *end;
	unsigned long n;

	if (!v || !*v)
		return def;
	errno = 0;
	n = strtoul(v, &end, 0);
	if (errno || *end)
		HMMT_FAIL("%s=%s: not a number", name, v);
	return n;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned long total_ops(void)
{
	unsigned long n = 0;

	for (int k = 0; k < K_COUNT; k++)
		n += n_ops[k];
	return n;
}

/*
 * Small devices, open files, the buffers (one 2 MiB aligned with huge
 * pages, one skewed inside a larger mapping whose rest is a guard
 * pattern), views on both devices, and a first content: a quarter of
 * the chunks untouched, the rest written by the CPU or a device.  Then
 * each buffer is prefetched to a device whole: oversubscribed from the
 * start.
 */
static void setup(struct rng *r)
{
	struct drm_hmmgpu_get_info info;
	struct sigaction sa;

	ps = kt_page_size();
	ASSERT_EQ(CHUNK % ps, 0);
	cpages = CHUNK / ps;
	ASSERT_LE(cpages, CHUNK_PAGES_MAX);

	ndev = kt_count_devices();
	if (ndev > MAX_DEV)
		ndev = MAX_DEV;
	kt_reload_hmmgpu("mem_mib=8"); /* MEM_MIB */
	for (int d = 0; d < ndev; d++) {
		fds[d] = kt_open_device(d);
		ASSERT_EQ(kt_mem_total(fds[d]), MEM_MIB * MIB);
		ASSERT_EQ(kt_mem_free(fds[d]), MEM_MIB * MIB);
	}
	kt_get_info(fds[0], &info);
	have_views = info.caps & HMMGPU_CAP_VIEW;
	orig_prefetch_pct = kt_module_param("prefetch_pct");

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fatal_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	ASSERT_EQ(sigaction(SIGBUS, &sa, NULL), 0);
	ASSERT_EQ(sigaction(SIGSEGV, &sa, NULL), 0);

	bufs[0].map_size = BUF_SIZE;
	bufs[0].map = kt_map_aligned(BUF_SIZE, 2 * MIB);
	bufs[0].cpu = bufs[0].map;
	madvise(bufs[0].cpu, BUF_SIZE, MADV_HUGEPAGE);
	bufs[1].map_size = BUF_SIZE + 2 * MIB;
	bufs[1].map = kt_map_aligned(bufs[1].map_size, 2 * MIB);
	bufs[1].cpu = bufs[1].map + BUF1_SKEW;
	/* around buffer 1: nothing may change it */
	kt_fill(bufs[1].map, BUF1_SKEW, 7001);
	kt_fill(bufs[1].cpu + BUF_SIZE, 2 * MIB - BUF1_SKEW, 7002);

	for (int b = 0; b < NBUF; b++) {
		for (int d = 0; d < ndev && have_views; d++) {
			pthread_rwlockattr_t a;

			pthread_rwlockattr_init(&a);
			pthread_rwlock_init(&bufs[b].views[d].lock, &a);
			ASSERT_EQ(view_open(b, d), 0);
		}
	}
	for (size_t c = 0; c < NCHUNKS; c++) {
		pthread_rwlockattr_t a;

		/*
		 * Writers first, or a stream of readers could keep a
		 * writer out; the lock order (ascending chunks, then a
		 * view) keeps that free of deadlock.
		 */
		pthread_rwlockattr_init(&a);
		pthread_rwlockattr_setkind_np(&a,
			PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&chunks[c].lock, &a);
		if (chance(r, 25))
			continue;
		write_via(r, c, any_agent(r), 0, cpages);
	}
	for (int b = 0; b < NBUF; b++) {
		struct drm_hmmgpu_migrate m;
		int d = b % ndev;

		ASSERT_EQ(kt_migrate(fds[d], bufs[b].cpu, BUF_SIZE, TO_DEVICE,
				     &m), 0);
		TH_LOG("buffer %d to device %d: moved %llu, already %llu, "
		       "skipped %llu pages", b, d,
		       (unsigned long long)m.moved,
		       (unsigned long long)m.already,
		       (unsigned long long)m.skipped);
	}
}

static void print_counts(void)
{
	TH_LOG("CPU: %lu reads, %lu writes", (unsigned long)n_ops[K_CPU_READ],
	       (unsigned long)n_ops[K_CPU_WRITE]);
	for (int d = 0; d < ndev; d++)
		TH_LOG("device %d: %lu reads, %lu writes through views, %lu "
		       "prefetches to it", d, (unsigned long)n_dev_ops[d][0],
		       (unsigned long)n_dev_ops[d][1],
		       (unsigned long)n_dev_ops[d][2]);
	TH_LOG("prefetches: %lu to a device, %lu to system; pages moved %lu, "
	       "already %lu, skipped %lu; EFAULT over a hole %lu",
	       (unsigned long)n_ops[K_TO_DEVICE],
	       (unsigned long)n_ops[K_TO_SYSTEM], (unsigned long)n_moved,
	       (unsigned long)n_already, (unsigned long)n_skipped,
	       (unsigned long)n_efault_hole);
	TH_LOG("remaps: %lu (munmap+mmap %lu, mmap over %lu, MADV_DONTNEED "
	       "%lu; 2 MiB at once %lu; refilled %lu)",
	       (unsigned long)n_ops[K_REMAP], (unsigned long)n_remap_kind[0],
	       (unsigned long)n_remap_kind[1], (unsigned long)n_remap_kind[2],
	       (unsigned long)n_remap_group, (unsigned long)n_refill);
	TH_LOG("protection: %lu (mprotect %lu, mlock %lu)",
	       (unsigned long)n_ops[K_PROTECT], (unsigned long)n_mprotect,
	       (unsigned long)n_mlock);
	TH_LOG("advice: %lu (granularity %lu, remote on %lu, off %lu, "
	       "prefetch_pct %lu); view renewals %lu (register retried over "
	       "a hole %lu)", (unsigned long)n_ops[K_ADVISE],
	       (unsigned long)n_adv_gran, (unsigned long)n_adv_remote[1],
	       (unsigned long)n_adv_remote[0], (unsigned long)n_adv_pct,
	       (unsigned long)n_ops[K_VIEW_RENEW],
	       (unsigned long)n_register_retries);
	TH_LOG("forks: %lu (chunks checked in children %lu); RESIDENCY "
	       "queries %lu", (unsigned long)n_ops[K_FORK],
	       (unsigned long)n_child_chunks,
	       (unsigned long)n_ops[K_RESIDENCY]);
	TH_LOG("words checked %lu, written %lu; operations %lu",
	       (unsigned long)n_words_checked,
	       (unsigned long)n_words_written, total_ops());
}

static void print_device_stats(void)
{
	for (int d = 0; d < ndev; d++) {
		struct drm_hmmgpu_stats st;
		const __u64 *to_dev, *to_sys;

		kt_get_stats(fds[d], HMMGPU_STATS_DEVICE, &st);
		to_dev = st.pages[HMMGPU_DIR_TO_DEVICE];
		to_sys = st.pages[HMMGPU_DIR_TO_SYSTEM];
		TH_LOG("device %d: %llu device faults, %llu CPU faults, %llu "
		       "evictions; pages in: explicit %llu, device fault "
		       "%llu, prefetch %llu, peer %llu; out: explicit %llu, "
		       "CPU fault %llu, eviction %llu; copy errors %llu", d,
		       (unsigned long long)st.device_faults,
		       (unsigned long long)st.cpu_faults,
		       (unsigned long long)st.evictions,
		       (unsigned long long)to_dev[HMMGPU_CAUSE_EXPLICIT],
		       (unsigned long long)to_dev[HMMGPU_CAUSE_DEVICE_FAULT],
		       (unsigned long long)to_dev[HMMGPU_CAUSE_PREFETCH],
		       (unsigned long long)to_dev[HMMGPU_CAUSE_PEER],
		       (unsigned long long)to_sys[HMMGPU_CAUSE_EXPLICIT],
		       (unsigned long long)to_sys[HMMGPU_CAUSE_CPU_FAULT],
		       (unsigned long long)to_sys[HMMGPU_CAUSE_EVICTION],
		       (unsigned long long)st.copy_errors);
	}
}

/*
 * With the workers stopped and every child gone, the device memory in
 * use is exactly the pages RESIDENCY finds there: no page lost, none
 * leaked.  Freeing may trail a little, so this waits for it a while.
 */
static void check_device_accounting(void)
{
	for (int d = 0; d < ndev; d++) {
		unsigned long long total = kt_mem_total(fds[d]), used = 0;
		size_t on = 0;

		for (int tries = 0; tries < 500; tries++) {
			on = 0;
			for (int b = 0; b < NBUF; b++)
				on += kt_residency_count(fds[d], bufs[b].map,
					bufs[b].map_size / ps,
					HMMGPU_RESIDENCY_THIS_DEVICE);
			used = total - kt_mem_free(fds[d]);
			if (used == on * ps)
				break;
			usleep(20000);
		}
		TH_LOG("device %d: %zu pages of the buffers there, %llu KiB "
		       "in use of %llu", d, on, used >> 10, total >> 10);
		if (used != on * ps)
			bad("device %d has %llu KiB in use but holds %zu pages "
			    "of ours", d, used >> 10, on);
	}
}

TEST_TIMEOUT(stress_keeps_every_word, DEFAULT_SECONDS + TIMEOUT_MARGIN)
{
	uint64_t seed = env_ulong("HMM_STRESS_SEED", 0);
	unsigned long seconds = env_ulong("HMM_STRESS_SECONDS",
					  DEFAULT_SECONDS);
	struct worker wk[NWORKERS];
	struct timespec ts;
	struct rng sr;
	double t0, t1, t2;
	char pct[32];

	if (!getenv("HMM_STRESS_SEED")) {
		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_sec * 1000000007ULL ^ ts.tv_nsec ^
		       getpid();
	}
	TH_LOG("seed %llu", (unsigned long long)seed);
	TH_LOG("replay: HMM_STRESS_SEED=%llu HMM_STRESS_SECONDS=%lu",
	       (unsigned long long)seed, seconds);
	sr.s = seed;
	setup(&sr);
	TH_LOG("%d threads, %d devices of %lu MiB, %lu MiB in %lu chunks of "
	       "%lu KiB (%lux one device)%s", NWORKERS, ndev,
	       (unsigned long)MEM_MIB, NBUF * BUF_SIZE / MIB,
	       (unsigned long)NCHUNKS, CHUNK / KIB,
	       NBUF * BUF_SIZE / (MEM_MIB * MIB),
	       have_views ? "" : "; no device view on this kernel: CPU only");

	for (int i = 0; i < NWORKERS; i++)
		wk[i].r.s = rnd(&sr);
	t0 = now();
	for (int i = 0; i < NWORKERS; i++)
		kt_start(&wk[i].t, worker_main, &wk[i]);
	for (unsigned long s = 1; s <= seconds && !stop; s++) {
		sleep(1);
		if (s % 60 == 0)
			TH_LOG("%lu s: %lu operations", s, total_ops());
	}
	stop = true;
	for (int i = 0; i < NWORKERS; i++)
		kt_join(&wk[i].t);
	t1 = now();
	TH_LOG("ran %.1f s", t1 - t0);
	print_counts();

	/* every word: through the views (faulting it all in), then the CPU */
	for (size_t c = 0; c < NCHUNKS && n_reports < MAX_REPORTS; c++) {
		doing("the final device check", c);
		check_via(c, have_views ? (int)(c % ndev) : -1, 0, cpages);
	}
	check_device_accounting();
	for (size_t c = 0; c < NCHUNKS && n_reports < MAX_REPORTS; c++) {
		doing("the final CPU check", c);
		check_via(c, -1, 0, cpages);
	}
	doing("the final checks", SIZE_MAX);
	if (kt_check(bufs[1].map, BUF1_SKEW, 7001) >= 0 ||
	    kt_check(bufs[1].cpu + BUF_SIZE, 2 * MIB - BUF1_SKEW, 7002) >= 0)
		bad("the memory around buffer 1 changed");
	print_device_stats();
	t2 = now();
	TH_LOG("final checks %.1f s", t2 - t1);

	/* all gone: the devices' memory is all free */
	for (int b = 0; b < NBUF; b++) {
		for (int d = 0; d < ndev && have_views; d++)
			kt_view_close(&bufs[b].views[d].kv);
		kt_unmap(bufs[b].map, bufs[b].map_size);
	}
	for (int d = 0; d < ndev; d++) {
		unsigned long long total = kt_mem_total(fds[d]);
		unsigned long long got = kt_wait_mem_free(fds[d], total, 10000);

		if (got != total)
			bad("device %d: %llu KiB of %llu free after everything "
			    "was unmapped", d, got >> 10, total >> 10);
	}
	if (n_bad)
		TH_LOG("%lu failures", (unsigned long)n_bad);
	ASSERT_EQ(n_bad, 0);

	snprintf(pct, sizeof(pct), "%llu", orig_prefetch_pct);
	ASSERT_EQ(kt_sysfs_write("/sys/module/hmmgpu/parameters/prefetch_pct",
				 pct), 0);
	for (int d = 0; d < ndev; d++)
		close(fds[d]);
	kt_restore_hmmgpu();
}

/*
 * The time limit follows HMM_STRESS_SECONDS (the harness reads it from
 * this struct when the test starts).
 */
__attribute__((constructor(200))) static void stress_timeout(void)
{
	const char *v = getenv("HMM_STRESS_SECONDS");
	unsigned long s = v ? strtoul(v, NULL, 0) : DEFAULT_SECONDS;

	hmmt_t_stress_keeps_every_word.timeout = s + TIMEOUT_MARGIN;
}

TEST_MAIN()
