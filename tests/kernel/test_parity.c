// SPDX-License-Identifier: MIT
/*
 * test_parity.c - what the kernel's own HMM selftests check
 * (tools/testing/selftests/mm/hmm-tests.c, run against lib/test_hmm.c),
 * checked on hmmgpu, for every upstream test whose capability hmmgpu has
 * and that no other test of this suite covers already.
 * docs/hmm-tests-parity.md maps each upstream test to its counterpart here
 * or elsewhere, or says why hmmgpu has none.
 *
 * test_hmm's device reads or writes a whole range with one ioctl. Here the
 * device touches memory the way a GPU kernel does, through a view
 * (kt_dev_*() on the test's device thread): each access is a device fault
 * that migrates a block, or maps the system page itself where the page
 * cannot move or the view has remote-access advice. Every test checks the
 * data (a pattern per offset and seed, or zeros) and the residency of
 * every page, not only return codes, and that device memory is free again
 * once the memory is gone.
 *
 * Beyond the upstream list: the kernel paths that pin user pages
 * (O_DIRECT, vmsplice, access to another process's memory, io_uring fixed
 * buffers, the GUP_TEST debugfs file). A device-private page cannot be
 * pinned, so each of them must bring the pages home first, move the right
 * data, and keep pinned pages off the device until they are released.
 *
 * Runs inside the test VM with hmmgpu.ko loaded (tools/vm/hmmvm test).
 */
#define _GNU_SOURCE
#include "kt_common.h"

#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xf86drm.h>

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define KIB (1UL << 10)
#define MIB (1UL << 20)
#define HUGE (2 * MIB) /* a PMD-sized transparent huge page on x86-64 */

/* Seconds a test may take (TCG, debug kernel). */
#define PARITY_TIMEOUT 60

#define TO_DEVICE HMMGPU_MIGRATE_TO_DEVICE
#define TO_SYSTEM HMMGPU_MIGRATE_TO_SYSTEM
#define AT_NONE HMMGPU_RESIDENCY_NONE
#define AT_SYSTEM HMMGPU_RESIDENCY_SYSTEM
#define AT_DEVICE HMMGPU_RESIDENCY_THIS_DEVICE
#define AT_OTHER HMMGPU_RESIDENCY_OTHER_DEVICE

#define EXPECT_DEV_DATA(base, off, len, seed)                                \
	ASSERT_EQ(kt_dev_check(base, off, len, seed), -1)
#define EXPECT_CPU_DATA(base, off, len, seed)                                \
	ASSERT_EQ(kt_check_range(base, off, len, seed), -1)
/* Every page of the device behind @fd is free (again). */
#define EXPECT_ALL_FREE(fd)                                                  \
	ASSERT_EQ(kt_wait_mem_free(fd, kt_mem_total(fd), 2000),              \
		  kt_mem_total(fd))

/* Bytes a CPU fault on a device page brings back (fault_kib). */
static size_t fault_block(void)
{
	size_t fb = kt_module_param_or("fault_kib", 64) * 1024;

	return fb < kt_page_size() ? kt_page_size() : fb;
}

static uint8_t cpu_read(const void *p, size_t off)
{
	return *(const volatile uint8_t *)((const uint8_t *)p + off);
}

/* Touches every page of [p, p + size) with a read (maps the zero page). */
static void read_every_page(const void *p, size_t size)
{
	for (size_t off = 0; off < size; off += kt_page_size())
		(void)cpu_read(p, off);
}

/* Pages moved to the device for any reason between two snapshots. */
static uint64_t moved_to_device(const struct drm_hmmgpu_stats *a,
				const struct drm_hmmgpu_stats *b)
{
	uint64_t n = 0;

	for (int c = 0; c < HMMGPU_CAUSE_COUNT; c++)
		n += b->pages[HMMGPU_DIR_TO_DEVICE][c] -
		     a->pages[HMMGPU_DIR_TO_DEVICE][c];
	return n;
}

/* Device 1, or SKIP when hmmgpu has one device only. */
static int open_second_device(void)
{
	if (kt_module_param("num_devices") < 2)
		SKIP("needs two hmmgpu devices");
	return kt_open_device(1);
}

/*
 * Starts the test's device thread (kt_common.h) now: started by the first
 * device access after a munmap(), its stack could be mapped where the
 * memory was, and a device access there would read the stack instead of
 * getting SIGBUS.
 */
static void device_thread_start(void)
{
	static char zero;

	ASSERT_EQ(kt_dev_check_zero(&zero, 0, 1), -1);
}

/* Checks RESIDENCY of @n pages at @p against @want, page by page. */
static void expect_locations(int fd, const void *p, size_t n,
			     const uint8_t *want)
{
	uint64_t count[4], sum[4] = { 0 };
	uint8_t *loc = malloc(n);

	ASSERT_TRUE(loc != NULL);
	ASSERT_EQ(kt_residency(fd, p, n, loc, count), 0);
	for (size_t i = 0; i < n; i++) {
		if (loc[i] != want[i])
			TH_LOG("page %zu: at %u, expected %u", i, loc[i],
			       want[i]);
		ASSERT_EQ(loc[i], want[i]);
		sum[want[i]]++;
	}
	for (int w = 0; w < 4; w++)
		ASSERT_EQ(count[w], sum[w]);
	free(loc);
}

/* Linux version of the running kernel as major * 1000 + minor. */
static unsigned int kernel_version(void)
{
	unsigned int major = 0, minor = 0;
	struct utsname u;

	ASSERT_EQ(uname(&u), 0);
	ASSERT_EQ(sscanf(u.release, "%u.%u", &major, &minor), 2);
	return major * 1000 + minor;
}

/* --- what the CPU's page tables say --------------------------------------- */

#define PM_PRESENT (1ULL << 63)
#define PM_SWAP (1ULL << 62)
#define PM_EXCLUSIVE (1ULL << 56) /* mapped by this process only */
#define PM_PFN ((1ULL << 55) - 1)
#define KPF_THP 22

/* The /proc/self/pagemap entry of the page at @p. */
static uint64_t pagemap_entry(const void *p)
{
	size_t ps = kt_page_size();
	int f = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t e;

	ASSERT_GE(f, 0);
	ASSERT_EQ(pread(f, &e, sizeof(e), (off_t)((uintptr_t)p / ps * 8)),
		  (ssize_t)sizeof(e));
	close(f);
	return e;
}

/*
 * 1 when the page at @p is part of a transparent huge page, 0 when it is
 * not (or not present), -1 when the kernel does not tell (no PFNs without
 * CAP_SYS_ADMIN, no /proc/kpageflags).
 */
static int page_in_thp(const void *p)
{
	uint64_t e = pagemap_entry(p), flags;
	int f, ret = -1;

	if (!(e & PM_PRESENT))
		return 0;
	if (!(e & PM_PFN))
		return -1;
	f = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -1;
	if (pread(f, &flags, sizeof(flags), (off_t)((e & PM_PFN) * 8)) ==
	    (ssize_t)sizeof(flags))
		ret = !!(flags & (1ULL << KPF_THP));
	close(f);
	return ret;
}

/*
 * What page @i of @p holds: 1 the pattern of @seed (as kt_fill(@p) wrote
 * it), 0 zeros, -1 anything else. Each word is read once.
 */
static int page_state(const char *p, size_t i, uint64_t seed)
{
	size_t ps = kt_page_size(), first = i * ps / 8;
	const volatile uint64_t *w = (const volatile uint64_t *)(p + i * ps);
	bool data = true, zero = true;

	for (size_t k = 0; k < ps / 8; k++) {
		uint64_t x = w[k];

		data = data && x == kt_pattern(seed, first + k);
		zero = zero && !x;
	}
	return data ? 1 : zero ? 0 : -1;
}

/* --- a device access racing munmap (upstream anon_teardown) --------------- */

#define TEARDOWN_ROUNDS 64

/*
 * One round: the device thread reads one word of every page of a 1 MiB
 * view while one thread unmaps half of the CPU range and another migrates
 * the whole range to the device again and again.
 */
struct teardown {
	int fd;
	char *p;
	size_t size;
	size_t cut;		/* the half unmapped: offset 0 or size / 2 */
	unsigned int delay;	/* sched_yield()s before the munmap */
	pthread_barrier_t go;
	atomic_bool stop;
	atomic_ulong migrations;
	int err;		/* first MIGRATE error other than -EFAULT */
};

static void teardown_unmap(void *arg)
{
	struct teardown *t = arg;

	pthread_barrier_wait(&t->go);
	for (unsigned int i = 0; i < t->delay; i++)
		sched_yield();
	kt_unmap(t->p + t->cut, t->size / 2);
}

static void teardown_migrate(void *arg)
{
	struct teardown *t = arg;

	pthread_barrier_wait(&t->go);
	do {
		int ret = kt_migrate(t->fd, t->p, t->size, TO_DEVICE, NULL);

		/* -EFAULT once half is gone: nothing moved */
		if (ret && ret != -EFAULT && !t->err)
			t->err = ret;
		atomic_fetch_add(&t->migrations, 1);
	} while (!atomic_load(&t->stop));
}

/*
 * Device reads (device faults that migrate blocks) and MIGRATE to the
 * device race munmap() of half the range (the tail, or every third round
 * the head), many times, starting from system memory and from device
 * memory, reading from either end: a read either completes with the
 * right data or, in the unmapped half only, gets SIGBUS. Afterwards the
 * unmapped half is gone for the device too, the other half has its data
 * on both sides, and once it is unmapped the device memory is all free.
 */
TEST_TIMEOUT(device_access_racing_munmap, 120)
{
	size_t ps = kt_page_size(), size = MIB, half = size / 2;
	size_t npages = size / ps;
	unsigned long reads = 0, sigbus = 0, migrations = 0;
	int fd = kt_open_device(0);
	unsigned long long total = kt_mem_total(fd);

	device_thread_start();
	for (unsigned int round = 0; round < TEARDOWN_ROUNDS; round++) {
		struct teardown t = { .fd = fd, .size = size };
		uint64_t seed = 1000 + round, x;
		size_t keep;
		struct drm_hmmgpu_migrate m;
		struct kt_thread ut, mt;
		struct kt_view v;

		t.p = kt_map_aligned(size, 64 * KIB);
		kt_fill(t.p, size, seed);
		if (round % 2)
			KT_EXPECT_MIGRATE(fd, t.p, size, TO_DEVICE, npages, 0,
					  0);
		kt_view_open(&v, fd, t.p, size);
		t.delay = (1U << (round % 8)) - 1;
		t.cut = round % 3 == 2 ? 0 : half;
		keep = half - t.cut;
		ASSERT_EQ(pthread_barrier_init(&t.go, NULL, 3), 0);
		kt_start(&ut, teardown_unmap, &t);
		kt_start(&mt, teardown_migrate, &t);
		pthread_barrier_wait(&t.go);

		/* one word of every page; every other round from the end */
		for (size_t k = 0; k < npages; k++) {
			size_t i = (round / 2) % 2 ? npages - 1 - k : k;
			size_t off = i * ps + i % (ps / 8) * 8;
			int sig;

			x = 0;
			sig = kt_dev_probe(v.dev, off, false, &x);
			reads++;
			if (sig) {
				if (sig != SIGBUS || off < t.cut ||
				    off >= t.cut + half)
					HMMT_FAIL("round %u: %s reading page %zu, which stays mapped",
						  round, strsignal(sig), i);
				sigbus++;
				continue;
			}
			if (x != kt_pattern(seed, off / 8))
				HMMT_FAIL("round %u: the device read 0x%llx at page %zu, expected 0x%llx",
					  round, (unsigned long long)x, i,
					  (unsigned long long)kt_pattern(seed, off / 8));
		}
		kt_join(&ut);
		atomic_store(&t.stop, true);
		kt_join(&mt);
		pthread_barrier_destroy(&t.go);
		ASSERT_EQ(t.err, 0);
		migrations += atomic_load(&t.migrations);

		/* the unmapped half is gone for the device as for the CPU */
		ASSERT_EQ(kt_dev_probe(v.dev, t.cut, false, &x), SIGBUS);
		ASSERT_EQ(kt_dev_probe(v.dev, t.cut + half - 8, false, &x),
			  SIGBUS);
		KT_EXPECT_WHERE(fd, t.p + t.cut, npages / 2, AT_NONE);
		/*
		 * The other half: every page on the device or in RAM (a block
		 * the racing MIGRATE held may have been mapped where it was),
		 * and one MIGRATE puts the rest there, with the data.
		 */
		ASSERT_EQ(kt_residency_count(fd, t.p + keep, npages / 2,
					     AT_DEVICE) +
			  kt_residency_count(fd, t.p + keep, npages / 2,
					     AT_SYSTEM), npages / 2);
		ASSERT_EQ(kt_migrate(fd, t.p + keep, half, TO_DEVICE, &m), 0);
		ASSERT_EQ(m.moved + m.already, npages / 2);
		KT_EXPECT_WHERE(fd, t.p + keep, npages / 2, AT_DEVICE);
		EXPECT_DEV_DATA(v.dev, keep, half, seed);
		EXPECT_CPU_DATA(t.p, keep, half, seed);
		KT_EXPECT_WHERE(fd, t.p + keep, npages / 2, AT_SYSTEM);

		kt_view_close(&v);
		kt_unmap(t.p + keep, half);
		ASSERT_EQ(kt_wait_mem_free(fd, total, 2000), total);
	}
	TH_LOG("%u rounds: %lu device reads, %lu of them SIGBUS, %lu migrations",
	       TEARDOWN_ROUNDS, reads, sigbus, migrations);
	close(fd);
}

/* --- pins: GUP of device-resident pages (upstream hmm_gup_test) ----------- */

#define RAM_DISK "/dev/ram0" /* a brd RAM disk (CONFIG_BLK_DEV_RAM) */

/* @RAM_DISK opened for O_DIRECT, at least @need bytes; SKIP without. */
static int open_ram_disk(size_t need)
{
	int rd = open(RAM_DISK, O_RDWR | O_DIRECT | O_CLOEXEC);
	off_t size;

	if (rd < 0)
		SKIP("%s: %s", RAM_DISK, strerror(errno));
	size = lseek(rd, 0, SEEK_END);
	if (size < (off_t)need)
		SKIP("%s has %lld bytes, %zu needed", RAM_DISK,
		     (long long)size, need);
	return rd;
}

/* Migrates blocks 0, 2, 4... of @fb bytes of [@p, @p + @size). */
static void migrate_even_blocks(int fd, char *p, size_t size, size_t fb)
{
	for (size_t off = 0; off < size; off += 2 * fb)
		KT_EXPECT_MIGRATE(fd, p + off, fb, TO_DEVICE,
				  fb / kt_page_size(), 0, 0);
}

/*
 * O_DIRECT I/O pins the user pages and hands them to the block device:
 * device pages come home first. A write from a device-resident buffer
 * puts its data on the disk; a read into a buffer half on the device
 * fills all of it; what the device wrote through a view reaches the disk,
 * and the device reads the pages it lost to the I/O again.
 */
TEST_TIMEOUT(o_direct_to_and_from_device_pages, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), fb = fault_block(), size = 8 * fb;
	size_t npages = size / ps, half = size / 2;
	int fd = kt_open_device(0), rd = open_ram_disk(2 * size);
	unsigned long long total = kt_mem_total(fd);
	char *buf = kt_map_aligned(size, fb), *out = kt_map_aligned(size, fb);
	struct kt_view v;

	/* a write from device pages: they come home, the disk gets them */
	kt_fill(buf, size, 2001);
	KT_EXPECT_MIGRATE(fd, buf, size, TO_DEVICE, npages, 0, 0);
	ASSERT_EQ(pwrite(rd, buf, size, 0), (ssize_t)size);
	KT_EXPECT_WHERE(fd, buf, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), total);
	ASSERT_EQ(pread(rd, out, size, 0), (ssize_t)size);
	EXPECT_CPU_DATA(out, 0, size, 2001);
	EXPECT_CPU_DATA(buf, 0, size, 2001);

	/* a read into a buffer half on the device: the disk's data, all home */
	kt_fill(buf, size, 2002);
	migrate_even_blocks(fd, buf, size, fb);
	ASSERT_EQ(kt_residency_count(fd, buf, npages, AT_DEVICE), npages / 2);
	ASSERT_EQ(pread(rd, buf, size, 0), (ssize_t)size);
	KT_EXPECT_WHERE(fd, buf, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), total);
	EXPECT_CPU_DATA(buf, 0, size, 2001);

	/* the device's own writes go to the disk, from where it left them */
	kt_view_open(&v, fd, buf, size);
	EXPECT_DEV_DATA(v.dev, 0, size, 2001);
	KT_EXPECT_WHERE(fd, buf, npages, AT_DEVICE);
	kt_dev_fill(v.dev, 0, half, 2003);
	ASSERT_EQ(pwrite(rd, buf, size, (off_t)size), (ssize_t)size);
	KT_EXPECT_WHERE(fd, buf, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), total);
	ASSERT_EQ(pread(rd, out, size, (off_t)size), (ssize_t)size);
	EXPECT_CPU_DATA(out, 0, half, 2003);
	EXPECT_CPU_DATA(out, half, half, 2001);
	/* the view lost its entries to the I/O and faults the pages back */
	EXPECT_DEV_DATA(v.dev, 0, half, 2003);
	EXPECT_DEV_DATA(v.dev, half, half, 2001);
	KT_EXPECT_WHERE(fd, buf, npages, AT_DEVICE);

	kt_view_close(&v);
	kt_unmap(buf, size);
	kt_unmap(out, size);
	EXPECT_ALL_FREE(fd);
	close(rd);
	close(fd);
}

/* read() of exactly @len bytes, or fails the test. */
static void read_full(int f, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(f, (char *)buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			HMMT_FAIL("read: %s", n ? strerror(errno) : "EOF");
		got += (size_t)n;
	}
}

/*
 * vmsplice() to a pipe takes references to the user pages themselves:
 * device pages come home, and while the pipe holds them MIGRATE cannot
 * take them to the device. The reader gets the data; afterwards they move
 * again. vmsplice() from a pipe copies into user memory, device pages
 * included (through CPU faults).
 */
TEST_TIMEOUT(vmsplice_of_device_pages, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), fb = fault_block(), size = 4 * fb;
	size_t npages = size / ps;
	int fd = kt_open_device(0), pfd[2];
	unsigned long long total = kt_mem_total(fd);
	char *buf = kt_map_aligned(size, fb), *out = kt_map(size);
	struct iovec iov = { .iov_base = buf, .iov_len = size };

	kt_fill(buf, size, 2101);
	KT_EXPECT_MIGRATE(fd, buf, size, TO_DEVICE, npages, 0, 0);
	ASSERT_EQ(pipe(pfd), 0);
	ASSERT_GE(fcntl(pfd[1], F_SETPIPE_SZ, (int)size), (int)size);
	ASSERT_EQ(vmsplice(pfd[1], &iov, 1, 0), (ssize_t)size);
	KT_EXPECT_WHERE(fd, buf, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), total);
	/* the pipe's references make every page unmovable */
	KT_EXPECT_MIGRATE(fd, buf, size, TO_DEVICE, 0, 0, npages);
	KT_EXPECT_WHERE(fd, buf, npages, AT_SYSTEM);
	read_full(pfd[0], out, size);
	EXPECT_CPU_DATA(out, 0, size, 2101);
	/* read, the pipe let them go */
	KT_EXPECT_MIGRATE(fd, buf, size, TO_DEVICE, npages, 0, 0);

	/* from a pipe: a copy into the device pages, through CPU faults */
	kt_fill(out, size, 2102);
	ASSERT_EQ(write(pfd[1], out, size), (ssize_t)size);
	iov = (struct iovec){ .iov_base = buf, .iov_len = size };
	ASSERT_EQ(vmsplice(pfd[0], &iov, 1, 0), (ssize_t)size);
	KT_EXPECT_WHERE(fd, buf, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), total);
	EXPECT_CPU_DATA(buf, 0, size, 2102);

	close(pfd[0]);
	close(pfd[1]);
	kt_unmap(buf, size);
	close(fd);
}

/* Reads (@write false) or writes @len bytes at @remote in process @pid. */
typedef ssize_t (*remote_rw_fn)(pid_t pid, void *local, uintptr_t remote,
				size_t len, bool write);

static ssize_t rw_process_vm(pid_t pid, void *local, uintptr_t remote,
			     size_t len, bool write)
{
	struct iovec l = { .iov_base = local, .iov_len = len };
	struct iovec r = { .iov_base = (void *)remote, .iov_len = len };

	return write ? process_vm_writev(pid, &l, 1, &r, 1, 0) :
		       process_vm_readv(pid, &l, 1, &r, 1, 0);
}

static ssize_t rw_proc_mem(pid_t pid, void *local, uintptr_t remote,
			   size_t len, bool write)
{
	char path[64];
	ssize_t n;
	int f, err;

	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	f = open(path, O_RDWR | O_CLOEXEC);
	if (f < 0)
		return -1;
	n = write ? pwrite(f, local, len, (off_t)remote) :
		    pread(f, local, len, (off_t)remote);
	err = errno;
	close(f);
	errno = err;
	return n;
}

/*
 * A child migrates a buffer to the device; the parent writes its second
 * half and then reads all of it through @rw, which pins the child's pages
 * from another process (get_user_pages_remote()). The child sees exactly
 * the blocks the write touched come home, then all of them, with the
 * parent's data in the second half and its own in the first.
 */
static void remote_access_of_device_pages(remote_rw_fn rw)
{
	size_t ps = kt_page_size(), fb = fault_block(), size = 8 * fb;
	size_t npages = size / ps, half = size / 2;
	int to_child[2], to_parent[2];
	char *local = kt_map(size);
	uintptr_t addr;
	pid_t pid;

	ASSERT_EQ(pipe(to_child), 0);
	ASSERT_EQ(pipe(to_parent), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		int cfd = kt_open_device(0);
		char *buf = kt_map_aligned(size, fb);

		close(to_child[1]);
		close(to_parent[0]);
		kt_fill(buf, size, 2201);
		KT_EXPECT_MIGRATE(cfd, buf, size, TO_DEVICE, npages, 0, 0);
		addr = (uintptr_t)buf;
		ASSERT_EQ(write(to_parent[1], &addr, sizeof(addr)),
			  (ssize_t)sizeof(addr));

		kt_pipe_wait(to_child[0]);
		KT_EXPECT_WHERE(cfd, buf, npages / 2, AT_DEVICE);
		KT_EXPECT_WHERE(cfd, buf + half, npages / 2, AT_SYSTEM);
		EXPECT_CPU_DATA(buf, half, half, 2202);
		kt_pipe_signal(to_parent[1]);

		kt_pipe_wait(to_child[0]);
		KT_EXPECT_WHERE(cfd, buf, npages, AT_SYSTEM);
		ASSERT_EQ(kt_mem_free(cfd), kt_mem_total(cfd));
		EXPECT_CPU_DATA(buf, 0, half, 2201);
		EXPECT_CPU_DATA(buf, half, half, 2202);
		_exit(0);
	}
	close(to_child[0]);
	close(to_parent[1]);
	read_full(to_parent[0], &addr, sizeof(addr));

	/* the second half first: only its blocks may come home */
	kt_fill(local, size, 2202);
	ASSERT_EQ(rw(pid, local + half, addr + half, half, true),
		  (ssize_t)half);
	kt_pipe_signal(to_child[1]);
	kt_pipe_wait(to_parent[0]);

	memset(local, 0, size);
	ASSERT_EQ(rw(pid, local, addr, size, false), (ssize_t)size);
	EXPECT_CPU_DATA(local, 0, half, 2201);
	EXPECT_CPU_DATA(local, half, half, 2202);
	kt_pipe_signal(to_child[1]);
	ASSERT_EQ(kt_wait_child(pid), 0);
	close(to_child[1]);
	close(to_parent[0]);
	kt_unmap(local, size);
}

TEST_TIMEOUT(process_vm_readv_writev_of_device_pages, PARITY_TIMEOUT)
{
	uint64_t a = 1, b = 0;

	if (rw_process_vm(getpid(), &b, (uintptr_t)&a, sizeof(a), false) < 0 &&
	    errno == ENOSYS)
		SKIP("process_vm_readv: ENOSYS (a kernel without CONFIG_CROSS_MEMORY_ATTACH; proc_pid_mem_of_device_pages checks remote GUP without it)");
	remote_access_of_device_pages(rw_process_vm);
}

/* /proc/PID/mem: access_remote_vm(), the remote GUP ptrace also uses. */
TEST_TIMEOUT(proc_pid_mem_of_device_pages, PARITY_TIMEOUT)
{
	remote_access_of_device_pages(rw_proc_mem);
}

/* An io_uring, set up and driven with raw system calls. */
struct uring {
	int fd;
	struct io_uring_params p;
	void *sq, *cq;
	size_t sq_len, cq_len;
	struct io_uring_sqe *sqes;
	size_t sqes_len;
};

static int uring_setup(struct uring *u, unsigned int entries)
{
	memset(u, 0, sizeof(*u));
	u->fd = (int)syscall(__NR_io_uring_setup, entries, &u->p);
	if (u->fd < 0)
		return -errno;
	u->sq_len = u->p.sq_off.array + u->p.sq_entries * sizeof(__u32);
	u->cq_len = u->p.cq_off.cqes +
		    u->p.cq_entries * sizeof(struct io_uring_cqe);
	if (u->p.features & IORING_FEAT_SINGLE_MMAP) {
		if (u->cq_len > u->sq_len)
			u->sq_len = u->cq_len;
		u->cq_len = u->sq_len;
	}
	u->sq = mmap(NULL, u->sq_len, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_POPULATE, u->fd, IORING_OFF_SQ_RING);
	ASSERT_TRUE(u->sq != MAP_FAILED);
	if (u->p.features & IORING_FEAT_SINGLE_MMAP) {
		u->cq = u->sq;
	} else {
		u->cq = mmap(NULL, u->cq_len, PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_POPULATE, u->fd,
			     IORING_OFF_CQ_RING);
		ASSERT_TRUE(u->cq != MAP_FAILED);
	}
	u->sqes_len = u->p.sq_entries * sizeof(struct io_uring_sqe);
	u->sqes = mmap(NULL, u->sqes_len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, u->fd, IORING_OFF_SQES);
	ASSERT_TRUE(u->sqes != MAP_FAILED);
	return 0;
}

static void uring_close(struct uring *u)
{
	kt_unmap(u->sqes, u->sqes_len);
	if (u->cq != u->sq)
		kt_unmap(u->cq, u->cq_len);
	kt_unmap(u->sq, u->sq_len);
	close(u->fd);
}

/* The ring field at offset @off of ring mapping @ring. */
static unsigned int *ring_field(void *ring, __u32 off)
{
	return (unsigned int *)((char *)ring + off);
}

/* Submits @sqe, waits for its completion and returns its result. */
static int uring_run(struct uring *u, const struct io_uring_sqe *sqe)
{
	unsigned int *sq_tail = ring_field(u->sq, u->p.sq_off.tail);
	unsigned int *sq_array = ring_field(u->sq, u->p.sq_off.array);
	unsigned int *cq_head = ring_field(u->cq, u->p.cq_off.head);
	unsigned int *cq_tail = ring_field(u->cq, u->p.cq_off.tail);
	unsigned int sq_mask = *ring_field(u->sq, u->p.sq_off.ring_mask);
	unsigned int cq_mask = *ring_field(u->cq, u->p.cq_off.ring_mask);
	struct io_uring_cqe *cqes =
		(struct io_uring_cqe *)((char *)u->cq + u->p.cq_off.cqes);
	unsigned int tail = *sq_tail, idx = tail & sq_mask, head;
	int res;

	u->sqes[idx] = *sqe;
	sq_array[idx] = idx;
	__atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);
	for (unsigned int submit = 1;; submit = 0) {
		head = __atomic_load_n(cq_head, __ATOMIC_RELAXED);
		if (!submit &&
		    head != __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE))
			break;
		if (syscall(__NR_io_uring_enter, u->fd, submit, 1,
			    IORING_ENTER_GETEVENTS, NULL, 0) < 0 &&
		    errno != EINTR)
			HMMT_FAIL("io_uring_enter: %s", strerror(errno));
	}
	res = cqes[head & cq_mask].res;
	__atomic_store_n(cq_head, head + 1, __ATOMIC_RELEASE);
	return res;
}

/* A READ_FIXED or WRITE_FIXED of @len bytes at @buf (buffer 0). */
static int uring_rw_fixed(struct uring *u, __u8 op, int file, void *buf,
			  size_t len)
{
	struct io_uring_sqe sqe;

	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = op;
	sqe.fd = file;
	sqe.off = 0;
	sqe.addr = (uintptr_t)buf;
	sqe.len = (__u32)len;
	sqe.buf_index = 0;
	return uring_run(u, &sqe);
}

/*
 * Registered io_uring buffers are pinned long-term (FOLL_LONGTERM): device
 * pages come home first, and stay while registered: MIGRATE skips them,
 * and a device access through a view maps the pinned pages themselves, so
 * the device and the kernel's fixed-buffer I/O see each other's writes
 * at once. Unregistered, the pages move to the device again.
 */
TEST_TIMEOUT(io_uring_fixed_buffers_on_device_pages, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), fb = fault_block(), size = 4 * fb;
	size_t npages = size / ps, half = size / 2;
	int fd = kt_open_device(0), mfd, ret;
	unsigned long long total = kt_mem_total(fd);
	char *buf = kt_map_aligned(size, fb), *out = kt_map(size);
	struct iovec iov = { .iov_base = buf, .iov_len = size };
	struct drm_hmmgpu_migrate m;
	struct kt_view v;
	struct uring u;

	ret = uring_setup(&u, 4);
	if (ret == -ENOSYS || ret == -EPERM)
		SKIP("io_uring_setup: %s", strerror(-ret));
	ASSERT_EQ(ret, 0);
	mfd = memfd_create("hmm-parity-uring", MFD_CLOEXEC);
	ASSERT_GE(mfd, 0);
	ASSERT_EQ(ftruncate(mfd, (off_t)size), 0);

	kt_fill(buf, size, 2301);
	KT_EXPECT_MIGRATE(fd, buf, size, TO_DEVICE, npages, 0, 0);
	ASSERT_EQ(syscall(__NR_io_uring_register, u.fd,
			  IORING_REGISTER_BUFFERS, &iov, 1), 0);
	KT_EXPECT_WHERE(fd, buf, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), total);
	EXPECT_CPU_DATA(buf, 0, size, 2301);
	/* pinned: never on the device */
	KT_EXPECT_MIGRATE(fd, buf, size, TO_DEVICE, 0, 0, npages);

	/* the device reaches the pinned pages themselves */
	kt_view_open(&v, fd, buf, size);
	EXPECT_DEV_DATA(v.dev, 0, size, 2301);
	kt_dev_fill(v.dev, 0, half, 2302);
	KT_EXPECT_WHERE(fd, buf, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), total);

	/* the kernel's I/O reads what the device wrote... */
	ASSERT_EQ(uring_rw_fixed(&u, IORING_OP_WRITE_FIXED, mfd, buf, size),
		  (int)size);
	ASSERT_EQ(pread(mfd, out, size, 0), (ssize_t)size);
	EXPECT_CPU_DATA(out, 0, half, 2302);
	EXPECT_CPU_DATA(out, half, half, 2301);

	/* ...and the device reads what the kernel's I/O wrote */
	kt_fill(out, size, 2303);
	ASSERT_EQ(pwrite(mfd, out, size, 0), (ssize_t)size);
	ASSERT_EQ(uring_rw_fixed(&u, IORING_OP_READ_FIXED, mfd, buf, size),
		  (int)size);
	EXPECT_DEV_DATA(v.dev, 0, size, 2303);
	EXPECT_CPU_DATA(buf, 0, size, 2303);
	KT_EXPECT_WHERE(fd, buf, npages, AT_SYSTEM);

	/* unpinned, they move */
	ASSERT_EQ(syscall(__NR_io_uring_register, u.fd,
			  IORING_UNREGISTER_BUFFERS, NULL, 0), 0);
	ASSERT_EQ(kt_migrate(fd, buf, size, TO_DEVICE, &m), 0);
	ASSERT_EQ(m.moved, npages);
	KT_EXPECT_WHERE(fd, buf, npages, AT_DEVICE);
	EXPECT_DEV_DATA(v.dev, 0, size, 2303);

	kt_view_close(&v);
	uring_close(&u);
	EXPECT_CPU_DATA(buf, 0, size, 2303);
	kt_unmap(buf, size);
	EXPECT_ALL_FREE(fd);
	close(mfd);
	close(fd);
}

/* The GUP_TEST debugfs interface (mm/gup_test.h of the kernel). */
struct parity_gup_test {
	__u64 get_delta_usec;
	__u64 put_delta_usec;
	__u64 addr;
	__u64 size;
	__u32 nr_pages_per_call;
	__u32 gup_flags;
	__u32 test_flags;
	__u32 which_pages[8];
};

struct parity_pin_longterm_test {
	__u64 addr;
	__u64 size;
	__u32 flags;
};

#define GUP_FAST_BENCHMARK _IOWR('g', 1, struct parity_gup_test)
#define PIN_FAST_BENCHMARK _IOWR('g', 2, struct parity_gup_test)
#define PIN_LONGTERM_BENCHMARK _IOWR('g', 3, struct parity_gup_test)
#define GUP_BASIC_TEST _IOWR('g', 4, struct parity_gup_test)
#define PIN_LONGTERM_TEST_START _IOW('g', 7, struct parity_pin_longterm_test)
#define PIN_LONGTERM_TEST_STOP _IO('g', 8)
#define PIN_LONGTERM_TEST_READ _IOW('g', 9, __u64)
#define PIN_LONGTERM_TEST_FLAG_USE_WRITE 1

#define GUP_TEST_PATH "/sys/kernel/debug/gup_test"
#define PARITY_FOLL_WRITE 0x01

/* FOLL_LONGTERM: gup flags were renumbered in Linux 6.2. */
static unsigned int foll_longterm(void)
{
	return kernel_version() >= 6002 ? 0x100 : 0x10000;
}

static int gup_test_open(void)
{
	int g = open(GUP_TEST_PATH, O_RDWR | O_CLOEXEC);

	if (g < 0)
		SKIP("%s: %s (a kernel without CONFIG_GUP_TEST?)",
		     GUP_TEST_PATH, strerror(errno));
	return g;
}

/* GUP_TEST @cmd of [@p, @p + @size), @per_call pages a call. */
static void gup_test_run(int g, unsigned long cmd, const void *p,
			 size_t size, unsigned int per_call,
			 unsigned int flags)
{
	struct parity_gup_test gt = {
		.addr = (uintptr_t)p,
		.size = size,
		.nr_pages_per_call = per_call,
		.gup_flags = PARITY_FOLL_WRITE | flags,
	};

	ASSERT_EQ(ioctl(g, cmd, &gt), 0);
	/* it reports how much it got: all of it */
	ASSERT_EQ(gt.size, size);
}

/*
 * The four ways of upstream's hmm_gup_test, each on one page of its own
 * fault block: get_user_pages(), get_user_pages_fast(),
 * pin_user_pages_fast(FOLL_LONGTERM) and pin_user_pages(FOLL_LONGTERM).
 * Each brings the block of its page home and leaves the others on the
 * device (gup_test itself warns when a page it pinned is not pinned or
 * not long-term pinnable). Then one long-term pin of the whole range.
 */
TEST_TIMEOUT(gup_test_brings_device_pages_home, PARITY_TIMEOUT)
{
	static const struct {
		unsigned long cmd;
		bool longterm;
	} ways[] = {
		{ GUP_BASIC_TEST, false },
		{ GUP_FAST_BENCHMARK, false },
		{ PIN_FAST_BENCHMARK, true },
		{ PIN_LONGTERM_BENCHMARK, false },
	};
	size_t ps = kt_page_size(), fb = fault_block(), bp = fb / ps;
	size_t size = 4 * fb, npages = size / ps;
	int g = gup_test_open(), fd = kt_open_device(0);
	unsigned long long total = kt_mem_total(fd);
	char *p = kt_map_aligned(size, fb);

	kt_fill(p, size, 2401);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	for (size_t k = 0; k < 4; k++) {
		gup_test_run(g, ways[k].cmd, p + k * fb + bp / 2 * ps, ps, 1,
			     ways[k].longterm ? foll_longterm() : 0);
		KT_EXPECT_WHERE(fd, p, (k + 1) * bp, AT_SYSTEM);
		if (k < 3)
			KT_EXPECT_WHERE(fd, p + (k + 1) * fb, (3 - k) * bp,
					AT_DEVICE);
		ASSERT_EQ(kt_mem_free(fd), total - (3 - k) * fb);
	}
	KT_EXPECT_DATA(p, size, 2401);

	/* all of it in one call */
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	gup_test_run(g, PIN_LONGTERM_BENCHMARK, p, size, (unsigned int)npages,
		     0);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), total);
	KT_EXPECT_DATA(p, size, 2401);
	kt_unmap(p, size);
	close(g);
	close(fd);
}

/*
 * A long-term pin that lasts (gup_test's PIN_LONGTERM_TEST_START, which
 * 6.12 has and 6.1 has not): the pinned pages come home and cannot go back to the
 * device while pinned; the device reaches the pinned pages themselves,
 * so what it writes is what the pin holder reads. Unpinned, they move.
 */
TEST_TIMEOUT(long_term_pin_keeps_pages_off_the_device, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), fb = fault_block(), size = 2 * fb;
	size_t npages = size / ps;
	int g = gup_test_open(), fd = kt_open_device(0);
	unsigned long long total = kt_mem_total(fd);
	char *p = kt_map_aligned(size, fb), *out = kt_map(size);
	struct parity_pin_longterm_test pin = {
		.addr = (uintptr_t)p,
		.size = size,
		.flags = PIN_LONGTERM_TEST_FLAG_USE_WRITE,
	};
	__u64 dst = (uintptr_t)out;
	struct kt_view v;

	kt_fill(p, size, 2501);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	if (ioctl(g, PIN_LONGTERM_TEST_START, &pin)) {
		if (errno == EINVAL && kernel_version() < 6012)
			SKIP("gup_test of this kernel has no PIN_LONGTERM_TEST_START");
		HMMT_FAIL("PIN_LONGTERM_TEST_START: %s", strerror(errno));
	}
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), total);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, 0, 0, npages);

	/* device faults cannot move them either: they map them */
	kt_view_open(&v, fd, p, size);
	EXPECT_DEV_DATA(v.dev, 0, size, 2501);
	kt_dev_fill(v.dev, 0, size, 2502);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), total);
	/* what the pin holds, read by the kernel: the device's writes */
	ASSERT_EQ(ioctl(g, PIN_LONGTERM_TEST_READ, &dst), 0);
	EXPECT_CPU_DATA(out, 0, size, 2502);

	ASSERT_EQ(ioctl(g, PIN_LONGTERM_TEST_STOP), 0);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	EXPECT_DEV_DATA(v.dev, 0, size, 2502);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	kt_view_close(&v);
	EXPECT_CPU_DATA(p, 0, size, 2502);
	kt_unmap(p, size);
	close(g);
	close(fd);
}

/* --- device reads and writes (upstream anon_read/_prot, anon_write/_prot) */

/*
 * A read-only range whose first page was never touched and whose second
 * is the zero page: the device reads zeros there and the data elsewhere,
 * all of it moving to the device (the zero page and the hole as zeroed
 * device pages); the CPU reads the same back. With remote advice the same,
 * from the system pages.
 */
TEST_TIMEOUT(device_reads_read_only_range_with_hole_and_zero_page,
	     PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), size = 512 * KIB, npages = size / ps;
	int fd = kt_open_device(0);
	char *p = kt_map_aligned(size, 64 * KIB);
	uint8_t *want = malloc(npages);
	struct kt_view v;

	ASSERT_TRUE(want != NULL);
	kt_fill_range(p, 2 * ps, size - 2 * ps, 2601);
	ASSERT_EQ(mprotect(p, size, PROT_READ), 0);
	(void)cpu_read(p, ps);
	memset(want, AT_SYSTEM, npages);
	want[0] = AT_NONE;
	expect_locations(fd, p, npages, want);

	/* migrating: the hole and the zero page become zeroed device pages */
	kt_view_open(&v, fd, p, size);
	ASSERT_EQ(kt_dev_check_zero(v.dev, 0, 2 * ps), -1);
	EXPECT_DEV_DATA(v.dev, 2 * ps, size - 2 * ps, 2601);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	ASSERT_EQ(kt_check_zero(p, 2 * ps), -1);
	EXPECT_CPU_DATA(p, 2 * ps, size - 2 * ps, 2601);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	EXPECT_ALL_FREE(fd);

	/* remote: the system pages themselves, zero page included */
	ASSERT_EQ(kt_view_advise(fd, v.handle, HMMGPU_ADVICE_REMOTE, 1), 0);
	ASSERT_EQ(kt_dev_check_zero(v.dev, 0, 2 * ps), -1);
	EXPECT_DEV_DATA(v.dev, 2 * ps, size - 2 * ps, 2601);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	EXPECT_ALL_FREE(fd);
	kt_view_close(&v);
	kt_unmap(p, size);
	free(want);
	close(fd);
}

/*
 * mprotect(PROT_NONE) of a registered range: device reads and writes get
 * SIGBUS, pages on the device (and mapped in the view) and pages in RAM
 * alike, with or without remote advice; nothing moves, nothing is lost.
 * With the protection back, the device and the CPU read the data.
 */
TEST_TIMEOUT(device_access_to_prot_none_range_gets_sigbus, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), size = 256 * KIB, half = size / 2;
	size_t npages = size / ps;
	static const size_t probes[] = { 0, 1, 2, 3 };
	int fd = kt_open_device(0);
	unsigned long long total = kt_mem_total(fd);
	char *p = kt_map_aligned(size, 64 * KIB);
	struct kt_view v;
	uint64_t x;

	kt_fill(p, size, 2701);
	kt_view_open(&v, fd, p, size);
	/* the first half on the device and in the view, the second not */
	KT_EXPECT_MIGRATE(fd, p, half, TO_DEVICE, npages / 2, 0, 0);
	EXPECT_DEV_DATA(v.dev, 0, half, 2701);

	for (int remote = 0; remote < 2; remote++) {
		ASSERT_EQ(kt_view_advise(fd, v.handle, HMMGPU_ADVICE_REMOTE,
					 remote), 0);
		ASSERT_EQ(mprotect(p, size, PROT_NONE), 0);
		for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]);
		     i++) {
			size_t off = probes[i] * (size / 4) + i * 8;

			x = 0;
			ASSERT_EQ(kt_dev_probe(v.dev, off, false, &x), SIGBUS);
			x = 0x5a5a;
			ASSERT_EQ(kt_dev_probe(v.dev, off + 8, true, &x),
				  SIGBUS);
		}
		/* nothing moved, and MIGRATE will not move it either */
		KT_EXPECT_WHERE(fd, p, npages / 2, AT_DEVICE);
		KT_EXPECT_WHERE(fd, p + half, npages / 2, AT_SYSTEM);
		ASSERT_EQ(kt_mem_free(fd), total - half);
		KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, 0, 0, npages);
		ASSERT_EQ(mprotect(p, size, PROT_READ | PROT_WRITE), 0);

		/* readable again: the data, the second half faulted in */

		EXPECT_DEV_DATA(v.dev, 0, size, 2701);
		KT_EXPECT_WHERE(fd, p, npages / 2, AT_DEVICE);
		KT_EXPECT_WHERE(fd, p + half, npages / 2,
				remote ? AT_SYSTEM : AT_DEVICE);
		/* as it was, for the remote round */
		if (!remote)
			KT_EXPECT_MIGRATE(fd, p + half, half, TO_SYSTEM,
					  npages / 2, 0, 0);
	}
	kt_view_close(&v);
	KT_EXPECT_DATA(p, size, 2701);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	kt_unmap(p, size);
	EXPECT_ALL_FREE(fd);
	close(fd);
}

/*
 * The device writes memory nobody touched: three quarters in full, and
 * one word of each page of the last quarter. Every page it touched is a
 * device page holding what it wrote and zeros around it, for the device
 * and for the CPU.
 */
TEST_TIMEOUT(first_device_write_to_untouched_memory, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), size = 512 * KIB, npages = size / ps;
	size_t q = size / 4 * 3;
	int fd = kt_open_device(0);
	char *p = kt_map_aligned(size, 64 * KIB);
	struct kt_view v;

	kt_view_open(&v, fd, p, size);
	KT_EXPECT_WHERE(fd, p, npages, AT_NONE);
	/* holes become zeroed device pages, then the device writes */
	kt_dev_fill(v.dev, 0, q, 2801);
	for (size_t i = q / ps; i < npages; i++) {
		size_t off = i * ps + i % (ps / 8) * 8;
		uint64_t x = kt_pattern(2802, off / 8);

		ASSERT_EQ(kt_dev_probe(v.dev, off, true, &x), 0);
	}
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);

	EXPECT_DEV_DATA(v.dev, 0, q, 2801);
	for (size_t i = q / ps; i < npages; i++) {
		size_t off = i * ps + i % (ps / 8) * 8;
		uint64_t x = 0;

		ASSERT_EQ(kt_dev_probe(v.dev, off, false, &x), 0);
		ASSERT_EQ(x, kt_pattern(2802, off / 8));
		ASSERT_EQ(kt_dev_check_zero(v.dev, i * ps, off - i * ps), -1);
		ASSERT_EQ(kt_dev_check_zero(v.dev, off + 8,
					    (i + 1) * ps - off - 8), -1);
	}
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);

	EXPECT_CPU_DATA(p, 0, q, 2801);
	for (size_t i = q / ps; i < npages; i++) {
		size_t off = i * ps + i % (ps / 8) * 8;

		ASSERT_EQ(((volatile uint64_t *)p)[off / 8],
			  kt_pattern(2802, off / 8));
		ASSERT_EQ(kt_check_zero(p + i * ps, off - i * ps), -1);
		ASSERT_EQ(kt_check_zero(p + off + 8, (i + 1) * ps - off - 8),
			  -1);
	}
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	EXPECT_ALL_FREE(fd);
	kt_view_close(&v);
	kt_unmap(p, size);
	close(fd);
}

/*
 * A read-only range the CPU has read (the zero page everywhere): the
 * device reads zeros; its writes get SIGBUS and change nothing, on the
 * device and on the CPU. Made writable, the device's writes replace the
 * zero pages. Migrating and remote.
 */
TEST_TIMEOUT(device_write_to_read_only_zero_pages, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), size = 256 * KIB, npages = size / ps;
	int fd = kt_open_device(0);

	for (int remote = 0; remote < 2; remote++) {
		char *p = kt_map_aligned(size, 64 * KIB);
		struct kt_view v;
		uint64_t x;

		ASSERT_EQ(mprotect(p, size, PROT_READ), 0);
		read_every_page(p, size);
		KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
		kt_view_open(&v, fd, p, size);
		ASSERT_EQ(kt_view_advise(fd, v.handle, HMMGPU_ADVICE_REMOTE,
					 remote), 0);

		ASSERT_EQ(kt_dev_check_zero(v.dev, 0, ps), -1);
		/* pages mapped in the view or not: refused, nothing written */
		for (size_t off = 8; off < size; off += size / 4 + 8) {
			x = 0x77;
			ASSERT_EQ(kt_dev_probe(v.dev, off, true, &x), SIGBUS);
		}
		ASSERT_EQ(kt_dev_check_zero(v.dev, 0, size), -1);
		KT_EXPECT_WHERE(fd, p, npages, remote ? AT_SYSTEM : AT_DEVICE);
		ASSERT_EQ(kt_check_zero(p, size), -1);
		KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);

		/* writable: the device's writes replace the zero pages */
		ASSERT_EQ(mprotect(p, size, PROT_READ | PROT_WRITE), 0);
		kt_dev_fill(v.dev, 0, size, 2901 + remote);
		KT_EXPECT_WHERE(fd, p, npages, remote ? AT_SYSTEM : AT_DEVICE);
		EXPECT_DEV_DATA(v.dev, 0, size, 2901 + remote);
		KT_EXPECT_DATA(p, size, 2901 + remote);
		KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
		kt_view_close(&v);
		kt_unmap(p, size);
		EXPECT_ALL_FREE(fd);
	}
	close(fd);
}

/* --- mm operations on device-resident memory ------------------------------ */

/* Counts of what page_state() found, by residency. */
struct free_census {
	size_t data, zero;
};

/*
 * After MADV_FREE (and reclaim), per page of [@p, @p + @npages): where
 * RESIDENCY says it is and what the CPU then reads must agree. A device
 * page is never freed lazily behind its owner's back: while it is there,
 * it holds the data; a page that is gone reads zeros; a page in RAM reads
 * the data or, if reclaim discarded it, zeros; never a mix.
 */
static void check_after_free(int fd, char *p, size_t npages, uint64_t seed,
			     struct free_census c[4])
{
	uint8_t *loc = malloc(npages);

	ASSERT_TRUE(loc != NULL);
	memset(c, 0, 4 * sizeof(*c));
	ASSERT_EQ(kt_residency(fd, p, npages, loc, NULL), 0);
	for (size_t i = 0; i < npages; i++) {
		int st = page_state(p, i, seed);

		if (st < 0 || (loc[i] == AT_DEVICE && st != 1) ||
		    (loc[i] == AT_NONE && st != 0) || loc[i] == AT_OTHER)
			HMMT_FAIL("page %zu after MADV_FREE: at %u, reads %s",
				  i, loc[i], st < 0 ? "neither data nor zeros" :
				  st ? "the data" : "zeros");
		if (st)
			c[loc[i]].data++;
		else
			c[loc[i]].zero++;
	}
	free(loc);
}

/*
 * MADV_FREE of a transparent huge page, half of it on the device (the
 * upstream test frees a whole device-resident huge page), then reclaim:
 * each page reads consistently with where it is. A write after
 * MADV_FREE keeps the page, through reclaim and migrations; MADV_FREE of
 * a range all on the device is consistent too.
 */
TEST_TIMEOUT(madv_free_of_device_pages, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), size = HUGE, npages = size / ps;
	struct free_census c[4];
	int fd = kt_open_device(0);
	char *p = kt_map_aligned(size, HUGE);

	madvise(p, size, MADV_HUGEPAGE); /* best effort */
	kt_fill(p, size, 3001);
	KT_EXPECT_MIGRATE(fd, p, size / 2, TO_DEVICE, npages / 2, 0, 0);
	ASSERT_EQ(madvise(p, size, MADV_FREE), 0);
	ASSERT_EQ(madvise(p, size, MADV_PAGEOUT), 0);
	check_after_free(fd, p, npages, 3001, c);
	TH_LOG("after MADV_FREE: on the device %zu with data, %zu zero; in RAM %zu with data, %zu zero; gone %zu",
	       c[AT_DEVICE].data, c[AT_DEVICE].zero, c[AT_SYSTEM].data,
	       c[AT_SYSTEM].zero, c[AT_NONE].zero);
	EXPECT_ALL_FREE(fd);

	/* written after MADV_FREE: dirty, kept through reclaim */
	kt_fill(p, size, 3002);
	ASSERT_EQ(madvise(p, size, MADV_PAGEOUT), 0);
	KT_EXPECT_DATA(p, size, 3002);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	KT_EXPECT_MIGRATE(fd, p, size, TO_SYSTEM, npages, 0, 0);
	KT_EXPECT_DATA(p, size, 3002);

	/* all of it on the device */
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	ASSERT_EQ(madvise(p, size, MADV_FREE), 0);
	ASSERT_EQ(madvise(p, size, MADV_PAGEOUT), 0);
	check_after_free(fd, p, npages, 3002, c);
	TH_LOG("all on the device, after MADV_FREE: %zu with data, %zu gone",
	       c[AT_DEVICE].data, c[AT_NONE].zero);
	EXPECT_ALL_FREE(fd);
	kt_unmap(p, size);
	close(fd);
}

/*
 * munmap() of the head, the middle or the tail half of a 2 MiB range on
 * the device, with and without a huge page behind it (upstream
 * migrate_partial_unmap_fault): the unmapped part's device memory is
 * freed and the device gets SIGBUS there; the rest stays on the device
 * with its data, read by the device without moving, then by the CPU.
 */
TEST_TIMEOUT(munmap_of_part_of_device_range, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), size = HUGE, cut = size / 2;
	size_t npages = size / ps;
	const size_t offsets[] = { 0, size / 4, size / 2 };
	int fd = kt_open_device(0);
	unsigned long long total = kt_mem_total(fd);
	struct drm_hmmgpu_get_info info;

	kt_get_info(fd, &info);
	device_thread_start();
	for (int thp = 0; thp < 2; thp++) {
		for (size_t j = 0; j < 3; j++) {
			/*
			 * A 2 MiB device folio (device THP) keeps its memory
			 * until its last page goes or it is split, like a
			 * huge page in RAM (DOC: Migration flow); 4 KiB
			 * device pages go with their mapping.
			 */
			size_t held = thp && (info.caps & HMMGPU_CAP_DEVICE_THP) ?
				      size : size - cut;
			size_t off = offsets[j];
			size_t keep[2][2] = { { 0, off },
					      { off + cut, size - off - cut } };
			uint64_t seed = 3100 + thp * 10 + j, x = 0;
			char *p = kt_map_aligned(size, HUGE);
			struct kt_view v;

			madvise(p, size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
			kt_fill(p, size, seed);
			kt_view_open(&v, fd, p, size);
			KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
			ASSERT_EQ(kt_mem_free(fd), total - size);

			kt_unmap(p + off, cut);
			ASSERT_EQ(kt_wait_mem_free(fd, total - held, 2000),
				  total - held);
			KT_EXPECT_WHERE(fd, p + off, cut / ps, AT_NONE);
			ASSERT_EQ(kt_dev_probe(v.dev, off, false, &x), SIGBUS);
			ASSERT_EQ(kt_dev_probe(v.dev, off + cut - 8, false, &x),
				  SIGBUS);
			for (int k = 0; k < 2; k++) {
				size_t a = keep[k][0], len = keep[k][1];

				if (!len)
					continue;
				KT_EXPECT_WHERE(fd, p + a, len / ps, AT_DEVICE);
				EXPECT_DEV_DATA(v.dev, a, len, seed);
				KT_EXPECT_WHERE(fd, p + a, len / ps, AT_DEVICE);
			}
			ASSERT_EQ(kt_mem_free(fd), total - held);
			for (int k = 0; k < 2; k++) {
				size_t a = keep[k][0], len = keep[k][1];

				if (!len)
					continue;
				EXPECT_CPU_DATA(p, a, len, seed);
				KT_EXPECT_WHERE(fd, p + a, len / ps, AT_SYSTEM);
			}
			ASSERT_EQ(kt_mem_free(fd), total);
			kt_view_close(&v);
			for (int k = 0; k < 2; k++)
				if (keep[k][1])
					kt_unmap(p + keep[k][0], keep[k][1]);
		}
	}
	close(fd);
}

/*
 * mremap() of a 2 MiB range to another address (aligned, a quarter or a
 * half of 2 MiB off), before or after migrating it to the device, with
 * and without MREMAP_DONTUNMAP, with and without a huge page (upstream
 * migrate_remap_fault): the device pages move with the mapping and are
 * not copied; the old range is gone, or with MREMAP_DONTUNMAP left empty
 * (zeros); the CPU reads the data at the new address.
 *
 * A huge page moved to an address that is not 2 MiB aligned is mapped
 * with 4 KiB entries. Before Linux 6.19 the core's migrate_vma_setup()
 * refuses such a page (migrate_vma_check_page() turns every large folio
 * down); later kernels split it. There MIGRATE may only skip it, page by
 * page, leaving the data in RAM.
 */
static void remap_case(int fd, bool before, bool dont, bool thp, size_t off)
{
	size_t ps = kt_page_size(), size = HUGE, npages = size / ps;
	int flags = MREMAP_MAYMOVE | MREMAP_FIXED | (dont ? MREMAP_DONTUNMAP : 0);
	uint64_t seed = 3200 + before * 100 + dont * 10 + thp * 3 + off / ps;
	unsigned long long total = kt_mem_total(fd);
	char *src = kt_map_aligned(size, HUGE);
	char *dst = kt_map_aligned(2 * size, HUGE); /* room to move to */
	struct drm_hmmgpu_migrate m = { .moved = npages };
	char *q;

	madvise(src, size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	kt_fill(src, size, seed);
	if (!before)
		KT_EXPECT_MIGRATE(fd, src, size, TO_DEVICE, npages, 0, 0);
	q = mremap(src, size, size, flags, dst + off);
	if (q != dst + off)
		HMMT_FAIL("mremap (%s migration, dontunmap %d, huge page %d, offset %zu): %s",
			  before ? "before" : "after", dont, thp, off,
			  q == MAP_FAILED ? strerror(errno) : "moved elsewhere");
	if (before) {
		ASSERT_EQ(kt_migrate(fd, q, size, TO_DEVICE, &m), 0);
		ASSERT_EQ(m.already, 0);
		ASSERT_EQ(m.moved + m.skipped, npages);
		if (m.skipped) {
			TH_LOG("mremap before migration, huge page %d, offset %zu: %llu pages skipped",
			       thp, off, (unsigned long long)m.skipped);
			if (!thp || !(off % HUGE) || kernel_version() >= 6019)
				HMMT_FAIL("MIGRATE skipped pages it can move");
		}
	}
	ASSERT_EQ(kt_residency_count(fd, q, npages, AT_DEVICE), m.moved);
	ASSERT_EQ(kt_residency_count(fd, q, npages, AT_SYSTEM), npages - m.moved);
	ASSERT_EQ(kt_mem_free(fd), total - m.moved * ps);
	KT_EXPECT_WHERE(fd, src, npages, AT_NONE);
	if (dont)
		ASSERT_EQ(kt_check_zero(src, size), -1);
	KT_EXPECT_DATA(q, size, seed);
	KT_EXPECT_WHERE(fd, q, npages, AT_SYSTEM);
	ASSERT_EQ(kt_mem_free(fd), total);
	kt_unmap(dst, 2 * size);
	if (dont)
		kt_unmap(src, size);
}

TEST_TIMEOUT(mremap_of_device_range, 120)
{
	const size_t offsets[] = { 0, HUGE / 4, HUGE / 2 };
	int fd = kt_open_device(0);

	for (int before = 0; before < 2; before++)
		for (int dont = 0; dont < 2; dont++)
			for (int thp = 0; thp < 2; thp++)
				for (size_t j = 0; j < 3; j++)
					remap_case(fd, before, dont, thp,
						   offsets[j]);
	close(fd);
}

/*
 * One range of six segments of different VMAs (upstream migrate_mixed and
 * snapshot): PROT_NONE, a hole, the zero page read-only, data read-only,
 * data read-write twice. RESIDENCY tells each apart without touching
 * them. MIGRATE of the whole range fails with -EFAULT before anything
 * moves; the PROT_NONE part alone is skipped; the four others move in one
 * call; from device 1 to device 0 device to device; and the data comes
 * back exactly, zeros where the zero page was.
 */
TEST_TIMEOUT(migrate_over_vmas_of_mixed_protections, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), k = 4, n = 6 * k, seg = k * ps;
	int fd0 = kt_open_device(0), fd1 = open_second_device();
	unsigned long long total0 = kt_mem_total(fd0), total1 = kt_mem_total(fd1);
	uint8_t want[6 * 4];
	char *p;
	pid_t pid;

	p = mmap(NULL, n * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(p != MAP_FAILED);
	kt_unmap(p + seg, seg);
	ASSERT_EQ(mprotect(p + 2 * seg, seg, PROT_READ), 0);
	read_every_page(p + 2 * seg, seg);
	ASSERT_EQ(mprotect(p + 3 * seg, seg, PROT_READ | PROT_WRITE), 0);
	kt_fill_range(p, 3 * seg, seg, 3301);
	ASSERT_EQ(mprotect(p + 3 * seg, seg, PROT_READ), 0);
	ASSERT_EQ(mprotect(p + 4 * seg, 2 * seg, PROT_READ | PROT_WRITE), 0);
	kt_fill_range(p, 4 * seg, 2 * seg, 3301);

	for (size_t i = 0; i < n; i++)
		want[i] = i < 2 * k ? AT_NONE : AT_SYSTEM;
	expect_locations(fd0, p, n, want);

	/* a hole: -EFAULT before anything moves */
	ASSERT_EQ(kt_migrate(fd1, p, n * ps, TO_DEVICE, NULL), -EFAULT);
	expect_locations(fd1, p, n, want);
	ASSERT_EQ(kt_mem_free(fd1), total1);
	/* PROT_NONE: skipped */
	KT_EXPECT_MIGRATE(fd1, p, seg, TO_DEVICE, 0, 0, k);

	/* zero page, read-only and read-write VMAs: one call moves all */
	KT_EXPECT_MIGRATE(fd1, p + 2 * seg, 4 * seg, TO_DEVICE, 4 * k, 0, 0);
	KT_EXPECT_WHERE(fd1, p + 2 * seg, 4 * k, AT_DEVICE);
	KT_EXPECT_WHERE(fd0, p + 2 * seg, 4 * k, AT_OTHER);
	KT_EXPECT_WHERE(fd1, p, 2 * k, AT_NONE);
	ASSERT_EQ(kt_mem_free(fd1), total1 - 4 * seg);

	/* from device 1 to device 0, a segment, then all four */
	KT_EXPECT_MIGRATE(fd0, p + 5 * seg, seg, TO_DEVICE, k, 0, 0);
	KT_EXPECT_WHERE(fd0, p + 5 * seg, k, AT_DEVICE);
	KT_EXPECT_WHERE(fd0, p + 2 * seg, 3 * k, AT_OTHER);
	KT_EXPECT_MIGRATE(fd0, p + 2 * seg, 4 * seg, TO_DEVICE, 3 * k, k, 0);
	ASSERT_EQ(kt_mem_free(fd1), total1);
	ASSERT_EQ(kt_mem_free(fd0), total0 - 4 * seg);
	for (size_t i = 0; i < n; i++)
		want[i] = i < 2 * k ? AT_NONE : AT_OTHER;
	expect_locations(fd1, p, n, want);

	/* read-only stayed read-only on the device */
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		*(volatile char *)(p + 3 * seg + 5) = 1;
		_exit(0);
	}
	ASSERT_EQ(kt_wait_child(pid), 128 + SIGSEGV);

	/* home by CPU faults: zeros where the zero page was, the data */
	ASSERT_EQ(kt_check_zero(p + 2 * seg, seg), -1);
	EXPECT_CPU_DATA(p, 3 * seg, 3 * seg, 3301);
	for (size_t i = 0; i < n; i++)
		want[i] = i < 2 * k ? AT_NONE : AT_SYSTEM;
	expect_locations(fd0, p, n, want);
	ASSERT_EQ(kt_mem_free(fd0), total0);
	kt_unmap(p, n * ps);
	close(fd0);
	close(fd1);
}

/* --- processes ------------------------------------------------------------ */

/*
 * fork() with the memory in RAM or on the device, in 4 KiB pages or a
 * huge page (upstream anon_write_child): the child registers a view of
 * its own (on the inherited file or on one it opens), reads the data as
 * of fork through the device, writes its own through the device, and
 * reads that back on the CPU. The parent keeps its data: none of its
 * pages is lost, its device reads its data, so does its CPU, and the
 * child's device memory is freed when it exits.
 */
static void child_device_write(int fd, bool on_device, bool thp, bool own_fd)
{
	size_t ps = kt_page_size(), size = thp ? HUGE : 512 * KIB;
	size_t npages = size / ps;
	uint64_t seed = 3400 + on_device * 2 + thp;
	char *p = kt_map_aligned(size, HUGE);
	struct kt_view v;
	pid_t pid;

	TH_LOG("memory %s at fork, %s, the child's view on %s file",
	       on_device ? "on the device" : "in RAM",
	       thp ? "a huge page" : "4 KiB pages",
	       own_fd ? "its own" : "the inherited");
	madvise(p, size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	kt_fill(p, size, seed);
	if (on_device)
		KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		int cfd = own_fd ? kt_open_device(0) : fd;

		/* the data as of fork, then the child's own */
		kt_view_open(&v, cfd, p, size);
		EXPECT_DEV_DATA(v.dev, 0, size, seed);
		kt_dev_fill(v.dev, 0, size, seed + 50);
		KT_EXPECT_WHERE(cfd, p, npages, AT_DEVICE);
		EXPECT_DEV_DATA(v.dev, 0, size, seed + 50);
		EXPECT_CPU_DATA(p, 0, size, seed + 50);
		KT_EXPECT_WHERE(cfd, p, npages, AT_SYSTEM);
		kt_view_close(&v);
		_exit(0);
	}
	ASSERT_EQ(kt_wait_child(pid), 0);

	/*
	 * Where the child's device work left the pages it shared with us
	 * (its faults migrate shared pages too, for both of us), none is
	 * lost, and they hold our data for our device and our CPU.
	 */
	ASSERT_EQ(kt_residency_count(fd, p, npages, AT_SYSTEM) +
		  kt_residency_count(fd, p, npages, AT_DEVICE), npages);
	kt_view_open(&v, fd, p, size);
	EXPECT_DEV_DATA(v.dev, 0, size, seed);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	kt_view_close(&v);
	EXPECT_CPU_DATA(p, 0, size, seed);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	kt_unmap(p, size);
	EXPECT_ALL_FREE(fd);
}

TEST_TIMEOUT(child_device_write_keeps_parent_data, 120)
{
	int fd = kt_open_device(0);

	for (int on_device = 0; on_device < 2; on_device++)
		for (int thp = 0; thp < 2; thp++)
			child_device_write(fd, on_device, thp, on_device ^ thp);
	close(fd);
}

/*
 * A MAP_SHARED anonymous mapping inherited by a child (upstream
 * anon_write_child_shared). The child moves it (mremap) into a range it
 * registered: shared memory never migrates, so the device reads and
 * writes the shared pages in place, and the parent sees the child's
 * device writes.
 */
TEST_TIMEOUT(child_device_write_to_shared_memory, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), size = 256 * KIB, npages = size / ps;
	int fd = kt_open_device(0);
	char *s;
	pid_t pid;

	s = mmap(NULL, size, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(s != MAP_FAILED);
	kt_fill(s, size, 3501);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		int cfd = kt_open_device(0);
		char *p = kt_map_aligned(size, 64 * KIB), *q;
		struct kt_view v;

		/* a registered range may hold any mapping later */
		kt_view_open(&v, cfd, p, size);
		q = mremap(s, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, p);
		ASSERT_TRUE(q == p);
		EXPECT_DEV_DATA(v.dev, 0, size, 3501);
		kt_dev_fill(v.dev, 0, size, 3502);
		KT_EXPECT_WHERE(cfd, p, npages, AT_SYSTEM);
		KT_EXPECT_MIGRATE(cfd, p, size, TO_DEVICE, 0, 0, npages);
		EXPECT_CPU_DATA(p, 0, size, 3502);
		ASSERT_EQ(kt_mem_free(cfd), kt_mem_total(cfd));
		kt_view_close(&v);
		_exit(0);
	}
	ASSERT_EQ(kt_wait_child(pid), 0);
	EXPECT_CPU_DATA(s, 0, size, 3502);
	KT_EXPECT_WHERE(fd, s, npages, AT_SYSTEM);
	kt_unmap(s, size);
	close(fd);
}

/*
 * fork() with the memory on the device, then the parent writes every
 * page without reading it first (upstream hmm_cow_in_device): each write
 * brings its block home and breaks copy-on-write, so that the parent's
 * pages are in RAM, present, its own (exclusively mapped) and hold its
 * writes, and no device page is left once both copies are home; the
 * child still reads the data as of fork.
 */
TEST_TIMEOUT(cow_write_brings_device_pages_home, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), npages = 64, size = npages * ps;
	int fd = kt_open_device(0), go[2];
	char *p = kt_map_aligned(size, 64 * KIB);
	pid_t pid;

	kt_fill(p, size, 3601);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
	ASSERT_EQ(pipe(go), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		close(go[1]);
		kt_pipe_wait(go[0]);
		EXPECT_CPU_DATA(p, 0, size, 3601);
		_exit(0);
	}
	close(go[0]);

	/* writes only, no read first */
	kt_fill(p, size, 3602);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	for (size_t i = 0; i < npages; i++) {
		uint64_t e = pagemap_entry(p + i * ps);

		if (!(e & PM_PRESENT) || !(e & PM_EXCLUSIVE))
			HMMT_FAIL("page %zu after the write: pagemap 0x%llx, expected present and exclusive",
				  i, (unsigned long long)e);
	}
	ASSERT_EQ(kt_mem_free(fd), kt_mem_total(fd));
	EXPECT_CPU_DATA(p, 0, size, 3602);
	kt_pipe_signal(go[1]);
	ASSERT_EQ(kt_wait_child(pid), 0);
	close(go[1]);
	kt_unmap(p, size);
	close(fd);
}

/* --- huge pages ----------------------------------------------------------- */

/*
 * Device writes into a 2 MiB range with MADV_HUGEPAGE (upstream
 * anon_write_huge): a huge page the CPU filled (migrated, split into the
 * device's 4 KiB pages), the same range untouched (holes become zeroed
 * device pages), and untouched with remote advice, where the device's
 * write faults the memory in and writes it in place without splitting a
 * huge page. The data is what the device wrote, for both sides.
 */
TEST_TIMEOUT(device_writes_to_huge_pages, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), npages = HUGE / ps;
	struct drm_hmmgpu_stats st0, st1;
	int fd = kt_open_device(0);

	for (int kind = 0; kind < 3; kind++) {
		bool filled = kind == 0, remote = kind == 2;
		char *p = kt_map_aligned(HUGE, HUGE);
		uint64_t seed = 3701 + kind;
		struct kt_view v;
		int thp = -1;

		madvise(p, HUGE, MADV_HUGEPAGE); /* best effort */
		if (filled) {
			kt_fill(p, HUGE, 3700);
			thp = page_in_thp(p + HUGE / 2);
		}
		kt_view_open(&v, fd, p, HUGE);
		ASSERT_EQ(kt_view_advise(fd, v.handle, HMMGPU_ADVICE_REMOTE,
					 remote), 0);
		kt_get_stats(fd, HMMGPU_STATS_FILE, &st0);
		kt_dev_fill(v.dev, 0, HUGE, seed);
		kt_get_stats(fd, HMMGPU_STATS_FILE, &st1);
		if (remote) {
			thp = page_in_thp(p + HUGE / 2);
			KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
			ASSERT_EQ(moved_to_device(&st0, &st1), 0);
		} else {
			KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
			ASSERT_EQ(moved_to_device(&st0, &st1), npages);
		}
		TH_LOG("%s: %s", filled ? "filled by the CPU" :
		       remote ? "untouched, remote" : "untouched",
		       thp < 0 ? "the kernel does not say whether it was a huge page" :
		       thp ? "a huge page" : "not a huge page");
		EXPECT_DEV_DATA(v.dev, 0, HUGE, seed);
		EXPECT_CPU_DATA(p, 0, HUGE, seed);
		KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
		if (remote) {
			/* CPU writes under the remote view, seen at once */
			kt_fill(p, HUGE, seed + 10);
			EXPECT_DEV_DATA(v.dev, 0, HUGE, seed + 10);
			/* nothing split the huge page the device faulted in */
			if (thp == 1)
				ASSERT_EQ(page_in_thp(p + HUGE - ps), 1);
		}
		kt_view_close(&v);
		kt_unmap(p, HUGE);
		EXPECT_ALL_FREE(fd);
	}
	close(fd);
}

/* /proc/meminfo's value for @tag, or -1. */
static long meminfo(const char *tag)
{
	char line[256];
	long val = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, tag, strlen(tag))) {
			val = strtol(line + strlen(tag), NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"

static long hugetlb_restore = -1;

static void hugetlb_restore_count(void)
{
	char buf[32];

	if (hugetlb_restore < 0)
		return;
	snprintf(buf, sizeof(buf), "%ld", hugetlb_restore);
	kt_sysfs_write(NR_HUGEPAGES, buf);
	hugetlb_restore = -1;
}

/* Makes sure one default-size hugetlb page is free; SKIP where not. */
static void hugetlb_reserve_one(void)
{
	long nr = -1, free_pages = meminfo("HugePages_Free:");
	char buf[32];
	FILE *f;

	if (free_pages >= 1)
		return;
	f = fopen(NR_HUGEPAGES, "r");
	if (!f || fscanf(f, "%ld", &nr) != 1)
		SKIP("%s: %s", NR_HUGEPAGES, strerror(errno));
	fclose(f);
	hugetlb_restore = nr;
	atexit(hugetlb_restore_count);
	snprintf(buf, sizeof(buf), "%ld", nr + 1);
	if (kt_sysfs_write(NR_HUGEPAGES, buf) || meminfo("HugePages_Free:") < 1)
		SKIP("no free hugetlb page could be had");
}

/*
 * A hugetlb page mapped over the second half of a registered range
 * (upstream anon_write_hugetlbfs): hugetlb memory never migrates, so the
 * device writes it in place, remotely, while the private first half
 * migrates; RESIDENCY reports the huge page in RAM (also read-only,
 * where device writes get SIGBUS); each side reads the other's writes.
 */
TEST_TIMEOUT(device_writes_to_hugetlb_pages, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), hsize, hn;
	long kib = meminfo("Hugepagesize:");
	int fd = kt_open_device(0);
	struct kt_view v;
	char *p, *h;
	uint64_t x = 0x1234;

	if (kib <= 0)
		SKIP("no hugetlb page size in /proc/meminfo");
	hsize = (size_t)kib * KIB;
	hn = hsize / ps;
	hugetlb_reserve_one();
	p = kt_map_aligned(2 * hsize, hsize);
	kt_fill(p, hsize, 3800);
	kt_view_open(&v, fd, p, 2 * hsize);
	h = mmap(p + hsize, hsize, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_FIXED, -1, 0);
	if (h == MAP_FAILED)
		SKIP("MAP_HUGETLB: %s", strerror(errno));
	KT_EXPECT_WHERE(fd, h, hn, AT_NONE);
	KT_EXPECT_MIGRATE(fd, h, hsize, TO_DEVICE, 0, 0, hn);

	/* the private half migrates, the huge page is written in place */
	kt_dev_fill(v.dev, 0, 2 * hsize, 3801);
	KT_EXPECT_WHERE(fd, p, hn, AT_DEVICE);
	KT_EXPECT_WHERE(fd, h, hn, AT_SYSTEM);
	EXPECT_DEV_DATA(v.dev, 0, 2 * hsize, 3801);
	EXPECT_CPU_DATA(p, 0, 2 * hsize, 3801);
	KT_EXPECT_WHERE(fd, p, 2 * hn, AT_SYSTEM);

	kt_fill_range(p, hsize, hsize, 3802);
	EXPECT_DEV_DATA(v.dev, hsize, hsize, 3802);
	/* read-only: still in RAM for RESIDENCY, refused to device writes */
	ASSERT_EQ(mprotect(h, hsize, PROT_READ), 0);
	KT_EXPECT_WHERE(fd, h, hn, AT_SYSTEM);
	ASSERT_EQ(kt_dev_probe(v.dev, hsize + 8, true, &x), SIGBUS);
	EXPECT_DEV_DATA(v.dev, hsize, hsize, 3802);
	EXPECT_CPU_DATA(p, hsize, hsize, 3802);

	kt_view_close(&v);
	kt_unmap(p, 2 * hsize);
	EXPECT_ALL_FREE(fd);
	hugetlb_restore_count();
	close(fd);
}

/*
 * MIGRATE of a 2 MiB read-only range with MADV_HUGEPAGE, never touched
 * and then with the huge zero page mapped (upstream
 * migrate_anon_huge_empty and _zero): every page becomes a zeroed device
 * page; the device and the CPU read zeros.
 */
TEST_TIMEOUT(migrate_huge_empty_and_zero_pages, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), npages = HUGE / ps;
	int fd = kt_open_device(0);
	unsigned long long total = kt_mem_total(fd);

	for (int zero = 0; zero < 2; zero++) {
		char *p = kt_map_aligned(HUGE, HUGE);
		struct kt_view v;

		ASSERT_EQ(mprotect(p, HUGE, PROT_READ), 0);
		madvise(p, HUGE, MADV_HUGEPAGE); /* best effort */
		if (zero)
			read_every_page(p, HUGE);
		KT_EXPECT_WHERE(fd, p, npages, zero ? AT_SYSTEM : AT_NONE);
		KT_EXPECT_MIGRATE(fd, p, HUGE, TO_DEVICE, npages, 0, 0);
		KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
		ASSERT_EQ(kt_mem_free(fd), total - HUGE);
		kt_view_open(&v, fd, p, HUGE);
		ASSERT_EQ(kt_dev_check_zero(v.dev, 0, HUGE), -1);
		KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
		kt_view_close(&v);
		ASSERT_EQ(kt_check_zero(p, HUGE), -1);
		KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
		ASSERT_EQ(kt_mem_free(fd), total);
		kt_unmap(p, HUGE);
	}
	close(fd);
}

/*
 * A huge page made by MADV_COLLAPSE, migrated whole (upstream
 * migrate_anon_huge_fault; hmmgpu has 4 KiB device pages only, so it is
 * split on the way): every CPU page table entry is then a device-private
 * swap entry (pagemap: swapped, not present), and CPU faults bring the
 * data back.
 */
TEST_TIMEOUT(migrate_collapsed_huge_page_and_fault_back, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), npages = HUGE / ps;
	int fd = kt_open_device(0);
	char *p = kt_map_aligned(HUGE, HUGE);

	kt_fill(p, HUGE, 3901);
	if (madvise(p, HUGE, MADV_COLLAPSE)) {
		/* kernels before 6.1 lack it; a busy one may fail it */
		TH_LOG("MADV_COLLAPSE: %s", strerror(errno));
		ASSERT_TRUE(errno == EINVAL || errno == EAGAIN ||
			    errno == ENOMEM);
	} else {
		ASSERT_NE(page_in_thp(p + HUGE / 2), 0);
	}
	KT_EXPECT_MIGRATE(fd, p, HUGE, TO_DEVICE, npages, 0, 0);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	for (size_t i = 0; i < npages; i++) {
		uint64_t e = pagemap_entry(p + i * ps);

		if ((e & PM_PRESENT) || !(e & PM_SWAP))
			HMMT_FAIL("page %zu on the device: pagemap 0x%llx, expected a swap entry",
				  i, (unsigned long long)e);
	}
	KT_EXPECT_DATA(p, HUGE, 3901);
	KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
	EXPECT_ALL_FREE(fd);
	kt_unmap(p, HUGE);
	close(fd);
}

/* --- two devices (upstream double_map) ------------------------------------ */

/*
 * Two devices map the same system pages at once, with remote advice: both
 * read the range (read-only first, as upstream), each sees the other's
 * writes at once, word by word too, and nothing migrates. Then the pages
 * move to device 1, and device 0 still reads and writes the same data:
 * what either device wrote is what the other and the CPU read, and once
 * the CPU has taken the pages back, neither view reaches device 1's
 * freed pages any more.
 */
TEST_TIMEOUT(two_devices_map_the_same_pages, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), size = 256 * KIB, half = size / 2;
	size_t npages = size / ps;
	int fd0 = kt_open_device(0), fd1 = open_second_device();
	struct drm_hmmgpu_stats s0[2], s1[2];
	char *p = kt_map_aligned(size, 64 * KIB);
	size_t on0, on1, home;
	struct kt_view v0, v1;

	kt_fill(p, size, 4601);
	kt_view_open(&v0, fd0, p, size);
	kt_view_open(&v1, fd1, p, size);
	ASSERT_EQ(kt_view_advise(fd0, v0.handle, HMMGPU_ADVICE_REMOTE, 1), 0);
	ASSERT_EQ(kt_view_advise(fd1, v1.handle, HMMGPU_ADVICE_REMOTE, 1), 0);
	kt_get_stats(fd0, HMMGPU_STATS_DEVICE, &s0[0]);
	kt_get_stats(fd1, HMMGPU_STATS_DEVICE, &s1[0]);

	ASSERT_EQ(mprotect(p, size, PROT_READ), 0);
	EXPECT_DEV_DATA(v0.dev, 0, size, 4601);
	EXPECT_DEV_DATA(v1.dev, 0, size, 4601);
	KT_EXPECT_WHERE(fd0, p, npages, AT_SYSTEM);
	KT_EXPECT_WHERE(fd1, p, npages, AT_SYSTEM);
	ASSERT_EQ(mprotect(p, size, PROT_READ | PROT_WRITE), 0);

	kt_dev_fill(v0.dev, 0, half, 4602);
	EXPECT_DEV_DATA(v1.dev, 0, half, 4602);
	kt_dev_fill(v1.dev, half, half, 4603);
	EXPECT_DEV_DATA(v0.dev, half, half, 4603);
	EXPECT_CPU_DATA(p, 0, half, 4602);
	EXPECT_CPU_DATA(p, half, half, 4603);
	for (size_t off = 0; off < size; off += ps + 24) {
		uint64_t x = off * 7 + 1, y = 0;

		ASSERT_EQ(kt_dev_probe(v0.dev, off, true, &x), 0);
		ASSERT_EQ(kt_dev_probe(v1.dev, off, false, &y), 0);
		ASSERT_EQ(y, off * 7 + 1);
		x = off * 11 + 2;
		ASSERT_EQ(kt_dev_probe(v1.dev, off, true, &x), 0);
		ASSERT_EQ(kt_dev_probe(v0.dev, off, false, &y), 0);
		ASSERT_EQ(y, off * 11 + 2);
		ASSERT_EQ(((volatile uint64_t *)p)[off / 8], off * 11 + 2);
	}
	kt_get_stats(fd0, HMMGPU_STATS_DEVICE, &s0[1]);
	kt_get_stats(fd1, HMMGPU_STATS_DEVICE, &s1[1]);
	ASSERT_EQ(moved_to_device(&s0[0], &s0[1]), 0);
	ASSERT_EQ(moved_to_device(&s1[0], &s1[1]), 0);
	KT_EXPECT_WHERE(fd0, p, npages, AT_SYSTEM);
	KT_EXPECT_WHERE(fd1, p, npages, AT_SYSTEM);
	EXPECT_ALL_FREE(fd0);
	EXPECT_ALL_FREE(fd1);

	/*
	 * On device 1: device 0 reaches them there or brings them over;
	 * either way no page is lost and both read the same.
	 */
	kt_fill(p, size, 4604);
	KT_EXPECT_MIGRATE(fd1, p, size, TO_DEVICE, npages, 0, 0);
	EXPECT_DEV_DATA(v0.dev, 0, size, 4604);
	EXPECT_DEV_DATA(v1.dev, 0, size, 4604);
	on1 = kt_residency_count(fd1, p, npages, AT_DEVICE);
	home = kt_residency_count(fd1, p, npages, AT_SYSTEM);
	on0 = kt_residency_count(fd1, p, npages, AT_OTHER);
	TH_LOG("after device 0 read pages of device 1: %zu still there, %zu in RAM, %zu on device 0",
	       on1, home, on0);
	ASSERT_EQ(on1 + home + on0, npages);
	kt_dev_fill(v0.dev, 0, size, 4605);
	EXPECT_DEV_DATA(v1.dev, 0, size, 4605);
	EXPECT_CPU_DATA(p, 0, size, 4605);
	KT_EXPECT_WHERE(fd1, p, npages, AT_SYSTEM);
	/* no entry of either view kept device 1's freed pages */
	kt_fill(p, size, 4606);
	EXPECT_DEV_DATA(v0.dev, 0, size, 4606);
	EXPECT_DEV_DATA(v1.dev, 0, size, 4606);

	kt_view_close(&v0);
	kt_view_close(&v1);
	kt_unmap(p, size);
	EXPECT_ALL_FREE(fd0);
	EXPECT_ALL_FREE(fd1);
	close(fd0);
	close(fd1);
}

/* --- files ---------------------------------------------------------------- */

/* An unnamed file of @size bytes in /tmp, or a memfd. */
static int scratch_file(size_t size)
{
	int f = open("/tmp", O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);

	if (f < 0)
		f = memfd_create("hmm-parity", MFD_CLOEXEC);
	ASSERT_GE(f, 0);
	ASSERT_EQ(ftruncate(f, (off_t)size), 0);
	return f;
}

/*
 * A shared file mapping over the middle of a registered range (upstream
 * file_read and file_write): the device reads the file's pages in place
 * (they never migrate) and migrates the private memory around them; its
 * writes are the file's contents, and the file's writes are what it
 * reads. A read-only file mapping refuses device writes.
 */
TEST_TIMEOUT(device_reads_and_writes_a_shared_file, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), fs = 128 * KIB, size = 3 * fs;
	size_t fn = fs / ps;
	int fd = kt_open_device(0), file = scratch_file(fs);
	char *img = kt_map(size), *p = kt_map_aligned(size, 64 * KIB), *m;
	struct kt_view v;
	uint64_t x = 9;

	/* the file holds what the pattern has at [fs, 2 fs) */
	kt_fill(img, size, 4001);
	ASSERT_EQ(pwrite(file, img + fs, fs, 0), (ssize_t)fs);
	kt_fill(p, size, 4001);
	kt_view_open(&v, fd, p, size);
	m = mmap(p + fs, fs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 file, 0);
	ASSERT_TRUE(m == p + fs);

	/* file pages in place, private pages migrated */
	EXPECT_DEV_DATA(v.dev, 0, size, 4001);
	KT_EXPECT_WHERE(fd, p, fn, AT_DEVICE);
	KT_EXPECT_WHERE(fd, m, fn, AT_SYSTEM);
	KT_EXPECT_WHERE(fd, p + 2 * fs, fn, AT_DEVICE);
	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, 0, 2 * fn, fn);

	/* the device's writes are the file's contents */
	kt_dev_fill(v.dev, fs, fs, 4002);
	memset(img, 0, size);
	ASSERT_EQ(pread(file, img + fs, fs, 0), (ssize_t)fs);
	EXPECT_CPU_DATA(img, fs, fs, 4002);
	EXPECT_CPU_DATA(p, fs, fs, 4002);

	/* and the file's writes, not through the mapping, the device's */
	kt_fill(img, size, 4003);
	ASSERT_EQ(pwrite(file, img + fs, fs, 0), (ssize_t)fs);
	EXPECT_DEV_DATA(v.dev, fs, fs, 4003);
	KT_EXPECT_WHERE(fd, m, fn, AT_SYSTEM);

	ASSERT_EQ(mprotect(m, fs, PROT_READ), 0);
	ASSERT_EQ(kt_dev_probe(v.dev, fs + 16, true, &x), SIGBUS);
	EXPECT_DEV_DATA(v.dev, fs, fs, 4003);
	EXPECT_DEV_DATA(v.dev, 0, fs, 4001);
	EXPECT_CPU_DATA(p, 0, fs, 4001);
	EXPECT_CPU_DATA(p, fs, fs, 4003);
	EXPECT_CPU_DATA(p, 2 * fs, fs, 4001);

	kt_view_close(&v);
	kt_unmap(p, size);
	kt_unmap(img, size);
	EXPECT_ALL_FREE(fd);
	close(file);
	close(fd);
}

/*
 * A private file mapping with half its pages written (anonymous
 * copy-on-write pages) and half only the file's (upstream
 * migrate_file_private): the written half migrates, the file's pages and
 * holes are skipped, the data comes back and the file stays as it was.
 */
TEST_TIMEOUT(migrate_file_private, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), npages = 64, size = npages * ps;
	size_t half = size / 2;
	int fd = kt_open_device(0), file = scratch_file(size);
	char *img = kt_map(size), *p;
	uint8_t want[64];

	kt_fill(img, size, 4101);
	ASSERT_EQ(pwrite(file, img, size, 0), (ssize_t)size);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, file, 0);
	ASSERT_TRUE(p != MAP_FAILED);
	kt_fill_range(p, 0, half, 4102);
	for (size_t i = 0; i < npages; i++)
		want[i] = i < npages / 2 ? AT_SYSTEM : AT_NONE;
	expect_locations(fd, p, npages, want);

	KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages / 2, 0, npages / 2);
	for (size_t i = 0; i < npages / 2; i++)
		want[i] = AT_DEVICE;
	expect_locations(fd, p, npages, want);
	ASSERT_EQ(kt_mem_free(fd), kt_mem_total(fd) - half);
	EXPECT_CPU_DATA(p, 0, half, 4102);
	EXPECT_CPU_DATA(p, half, half, 4101);
	memset(img, 0, size);
	ASSERT_EQ(pread(file, img, size, 0), (ssize_t)size);
	KT_EXPECT_DATA(img, size, 4101);
	kt_unmap(p, size);
	kt_unmap(img, size);
	EXPECT_ALL_FREE(fd);
	close(file);
	close(fd);
}

/* --- repetition ----------------------------------------------------------- */

#define REPEAT_ROUNDS 10

/*
 * Fresh memory migrated and faulted back by the CPU ten times (upstream
 * migrate_multiple): the device memory is reused each time, never with
 * the previous round's data.
 */
TEST_TIMEOUT(migrate_and_fault_back_repeatedly, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), size = MIB, npages = size / ps;
	int fd = kt_open_device(0);

	for (unsigned int c = 0; c < REPEAT_ROUNDS; c++) {
		char *p = kt_map(size);

		kt_fill(p, size, 4200 + c);
		KT_EXPECT_MIGRATE(fd, p, size, TO_DEVICE, npages, 0, 0);
		KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
		KT_EXPECT_DATA(p, size, 4200 + c);
		KT_EXPECT_WHERE(fd, p, npages, AT_SYSTEM);
		ASSERT_EQ(kt_mem_free(fd), kt_mem_total(fd));
		kt_unmap(p, size);
	}
	close(fd);
}

/*
 * Fresh memory read by the device through a fresh view ten times
 * (upstream anon_read_multiple).
 */
TEST_TIMEOUT(device_reads_fresh_memory_repeatedly, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), size = MIB, npages = size / ps;
	int fd = kt_open_device(0);

	for (unsigned int c = 0; c < REPEAT_ROUNDS; c++) {
		char *p = kt_map_aligned(size, 64 * KIB);
		struct kt_view v;

		kt_fill(p, size, 4300 + c);
		kt_view_open(&v, fd, p, size);
		EXPECT_DEV_DATA(v.dev, 0, size, 4300 + c);
		KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
		kt_view_close(&v);
		kt_unmap(p, size);
		EXPECT_ALL_FREE(fd);
	}
	close(fd);
}

/* --- a driver's own mapping (upstream mixedmap) --------------------------- */

/*
 * The view itself is a PFN mapping of the render node, like test_hmm's
 * mixed map of its device file: it holds no memory of the process, so
 * RESIDENCY reports nothing there, MIGRATE moves nothing from it, and it
 * cannot be registered; the memory behind it is unaffected.
 */
TEST_TIMEOUT(residency_and_migrate_of_a_view_mapping, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), npages = 32, size = npages * ps;
	int fd = kt_open_device(0);
	char *p = kt_map_aligned(size, 64 * KIB);
	struct kt_view v;

	kt_fill(p, size, 4401);
	kt_view_open(&v, fd, p, size);
	EXPECT_DEV_DATA(v.dev, 0, size, 4401);
	KT_EXPECT_WHERE(fd, v.dev, npages, AT_NONE);
	KT_EXPECT_MIGRATE(fd, v.dev, size, TO_DEVICE, 0, 0, npages);
	KT_EXPECT_MIGRATE(fd, v.dev, size, TO_SYSTEM, 0, npages, 0);
	ASSERT_EQ(kt_view_register(fd, v.dev, size, NULL, NULL), -EINVAL);
	KT_EXPECT_WHERE(fd, p, npages, AT_DEVICE);
	EXPECT_DEV_DATA(v.dev, 0, size, 4401);
	kt_view_close(&v);
	KT_EXPECT_DATA(p, size, 4401);
	kt_unmap(p, size);
	close(fd);
}

/* --- userfaultfd (upstream userfaultfd_read) ------------------------------ */

/* Resolves the missing-page faults of a range with the pattern of @seed. */
struct uffd_server {
	int uffd;
	int stop;	/* read end of a pipe: readable means stop */
	char *base;
	uint64_t seed;
	atomic_ulong faults;
};

static void uffd_serve(void *arg)
{
	struct uffd_server *s = arg;
	size_t ps = kt_page_size();
	char *page = kt_map(ps);

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = s->uffd, .events = POLLIN },
			{ .fd = s->stop, .events = POLLIN },
		};
		struct uffdio_copy copy;
		struct uffd_msg msg;
		size_t off;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			HMMT_FAIL("poll: %s", strerror(errno));
		}
		if (pfd[1].revents)
			break;
		if (read(s->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			HMMT_FAIL("userfaultfd event %u", msg.event);
		off = (msg.arg.pagefault.address - (uintptr_t)s->base) &
		      ~(ps - 1);
		for (size_t w = 0; w < ps / 8; w++)
			((uint64_t *)page)[w] = kt_pattern(s->seed,
							   off / 8 + w);
		copy = (struct uffdio_copy){
			.dst = (uintptr_t)s->base + off,
			.src = (uintptr_t)page,
			.len = ps,
		};
		/* counted first: the copy wakes the faulting thread */
		atomic_fetch_add(&s->faults, 1);
		if (ioctl(s->uffd, UFFDIO_COPY, &copy) && errno != EEXIST)
			HMMT_FAIL("UFFDIO_COPY: %s", strerror(errno));
	}
	kt_unmap(page, ps);
}

/*
 * Memory whose missing pages a userfaultfd handler provides. MIGRATE does
 * not deliver userfaults (the core backs off): missing pages stay
 * missing. Pages the handler provided (for CPU faults) are ordinary
 * memory to the device. A device access to a page still missing cannot
 * wait for the handler (the device fault runs under the mmap lock, with
 * no way to drop it), so it must fail cleanly, SIGBUS to the device
 * thread, and leave the page missing for the CPU to fault in as usual.
 * The VM runner's check of the kernel log is part of "cleanly".
 */
TEST_TIMEOUT(device_access_to_userfaultfd_missing_pages, PARITY_TIMEOUT)
{
	size_t ps = kt_page_size(), size = 256 * KIB, half = size / 2;
	size_t npages = size / ps;
	struct uffd_server s = { .seed = 4501 };
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg;
	int fd = kt_open_device(0), stop[2];
	struct kt_thread t;
	struct kt_view v;
	uint64_t x = 0;
	int sig;

	s.uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (s.uffd < 0)
		SKIP("userfaultfd: %s", strerror(errno));
	ASSERT_EQ(ioctl(s.uffd, UFFDIO_API, &api), 0);
	s.base = kt_map_aligned(size, 64 * KIB);
	reg = (struct uffdio_register){
		.range = { .start = (uintptr_t)s.base, .len = size },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	ASSERT_EQ(ioctl(s.uffd, UFFDIO_REGISTER, &reg), 0);
	ASSERT_EQ(pipe(stop), 0);
	s.stop = stop[0];
	kt_start(&t, uffd_serve, &s);

	/* MIGRATE backs off from missing pages, and tells no handler */
	KT_EXPECT_MIGRATE(fd, s.base, size, TO_DEVICE, 0, 0, npages);
	KT_EXPECT_WHERE(fd, s.base, npages, AT_NONE);
	ASSERT_EQ(atomic_load(&s.faults), 0);

	/* the first half provided for CPU faults, then read by the device */
	EXPECT_CPU_DATA(s.base, 0, half, s.seed);
	ASSERT_EQ(atomic_load(&s.faults), npages / 2);
	/* one page a device fault, so that no fault reaches past the half */
	kt_view_open(&v, fd, s.base, size);
	ASSERT_EQ(kt_view_advise(fd, v.handle, HMMGPU_ADVICE_GRANULARITY,
				 ps), 0);
	EXPECT_DEV_DATA(v.dev, 0, half, s.seed);
	KT_EXPECT_WHERE(fd, s.base, npages / 2, AT_DEVICE);

	/*
	 * A missing page: SIGBUS (a driver that could let the handler run
	 * would read its data), and the pages after it stay missing.
	 */
	sig = kt_dev_probe(v.dev, half + 8, false, &x);
	if (sig == 0)
		ASSERT_EQ(x, kt_pattern(s.seed, (half + 8) / 8));
	else
		ASSERT_EQ(sig, SIGBUS);
	TH_LOG("a device read of a missing page: %s",
	       sig ? "SIGBUS" : "the handler's data");
	KT_EXPECT_WHERE(fd, s.base + half + ps, npages / 2 - 1, AT_NONE);

	/* still missing for the CPU, which gets it from the handler */
	EXPECT_CPU_DATA(s.base, half, half, s.seed);
	EXPECT_DEV_DATA(v.dev, 0, size, s.seed);
	kt_pipe_signal(stop[1]);
	kt_join(&t);
	kt_view_close(&v);
	kt_unmap(s.base, size);
	EXPECT_ALL_FREE(fd);
	close(s.uffd);
	close(fd);
}

TEST_MAIN()
