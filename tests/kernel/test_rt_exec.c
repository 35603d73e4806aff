// SPDX-License-Identifier: MIT
/*
 * test_rt_exec.c - libhmm end to end on real hmmgpu devices: device
 * discovery and description, kernels launched through device pointers
 * (saxpy) with and without a prefetch first, asynchronous prefetches on
 * two streams ordered by an event, device synchronize, and a device
 * removed (unbind) and added again (bind) while the process runs.
 *
 * Every test checks the data on the CPU afterwards (which faults the
 * pages back) and the counters that the work implies.  Each test is a
 * process of its own, so the library opens the devices afresh and the
 * driver's per-file counters start at zero.
 *
 * Runs inside the test VM with hmmgpu.ko loaded, two devices
 * (tools/vm/hmmvm test).
 */
#define _GNU_SOURCE
#include "kt_common.h"
#include "hmm/hmm.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIB (1UL << 20)
/* TCG and a debug kernel: device faults are slow */
#define EXEC_TIMEOUT 120

/* --- helpers ----------------------------------------------------------- */

static int need_devices(int want)
{
	int n = hmm_device_count();

	if (n < 0)
		HMMT_FAIL("hmm_device_count: %s", hmm_strerror(n));
	if (n < want)
		SKIP("%d hmmgpu device(s), the test needs %d", n, want);
	return n;
}

static struct hmm_stream *stream_on(int dev)
{
	struct hmm_stream *s = NULL;
	int ret = hmm_stream_create(&s, dev);

	if (ret)
		HMMT_FAIL("hmm_stream_create(%d): %s", dev, hmm_strerror(ret));
	return s;
}

static void get_stats(int dev, struct hmm_stats *st)
{
	int ret = hmm_get_stats(dev, st);

	if (ret)
		HMMT_FAIL("hmm_get_stats(%d): %s", dev, hmm_strerror(ret));
}

/* y = a * x + y, through device pointers. */
struct saxpy {
	float a;
	const float *x; /* device pointers */
	float *y;
};

static void saxpy_kernel(struct hmm_dim3 idx, struct hmm_dim3 grid, void *arg)
{
	struct saxpy *s = arg;

	s->y[idx.x] = s->a * s->x[idx.x] + s->y[idx.x];
}

/* Queues saxpy over @n elements on @s. */
static int launch_saxpy(struct hmm_stream *s, size_t n, struct saxpy *args)
{
	struct hmm_dim3 grid = { (uint32_t)n, 1, 1 };

	return hmm_launch(s, saxpy_kernel, grid, args);
}

/* Values that keep every result exact in float. */
static float x_at(size_t i) { return (float)(i % 1000); }
static float y_at(size_t i) { return (float)(2 * (i % 7)); }

static void fill_xy(float *x, float *y, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		x[i] = x_at(i);
		y[i] = y_at(i);
	}
}

/* Index of the first wrong y after @rounds saxpy launches, or -1. */
static long check_y(const float *x, const float *y, size_t n, float a,
		    int rounds)
{
	for (size_t i = 0; i < n; i++) {
		float want = y_at(i);

		for (int r = 0; r < rounds; r++)
			want = a * x_at(i) + want;
		if (y[i] != want || x[i] != x_at(i)) {
			printf("# y[%zu] = %g, x = %g (want %g, %g)\n", i,
			       y[i], x[i], want, x_at(i));
			return (long)i;
		}
	}
	return -1;
}

/* Every page of [p, p + size) is at @where. */
static void expect_residency(const void *p, size_t size, int where)
{
	size_t ps = kt_page_size(), npages = (size + ps - 1) / ps;
	int8_t *loc = malloc(npages);

	ASSERT_TRUE(loc != NULL);
	ASSERT_EQ(hmm_residency(p, size, loc, npages), npages);
	for (size_t i = 0; i < npages; i++)
		if (loc[i] != where)
			HMMT_FAIL("page %zu of %p is at %d, not %d", i, p,
				  loc[i], where);
	free(loc);
}

static void status_cb(struct hmm_stream *s, int status, void *arg)
{
	*(int *)arg = status;
}

static void nop_kernel(struct hmm_dim3 idx, struct hmm_dim3 grid, void *arg)
{
}

/* --- devices ----------------------------------------------------------- */

/* A hexadecimal sysfs attribute of PCI device @dev ("vendor"). */
static unsigned long pci_sysfs_hex(const char *dev, const char *attr)
{
	char path[128], buf[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", dev, attr);
	f = fopen(path, "r");
	if (!f)
		HMMT_FAIL("%s: %s", path, strerror(errno));
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	return strtoul(buf, NULL, 16);
}

TEST(device_count_and_info)
{
	int want = kt_module_param("num_devices");
	unsigned long long mem = kt_module_param("mem_mib") << 20;
	int n = need_devices(1);

	ASSERT_EQ(n, want);
	for (int d = 0; d < n; d++) {
		struct hmm_device_info info;
		char name[32], bus[64];

		memset(&info, 0xa5, sizeof(info));
		ASSERT_EQ(hmm_device_get_info(d, &info), 0);
		snprintf(name, sizeof(name), "hmmgpu%d", d);
		ASSERT_EQ(kt_device_bus(d, bus, sizeof(bus)), 0);
		TH_LOG("%d: %s %s %s %llu MiB, copy engine %u x%u", d,
		       info.name, info.render_node, info.bus,
		       (unsigned long long)info.mem_total >> 20,
		       info.copy_engine, info.copy_channels);
		ASSERT_STREQ(info.name, name);
		ASSERT_EQ(strncmp(info.render_node, "/dev/dri/renderD", 16), 0);
		ASSERT_EQ(access(info.render_node, F_OK), 0);
		ASSERT_STREQ(info.bus, bus);
		ASSERT_EQ(info.mem_total, mem);
		ASSERT_LE(info.mem_free, info.mem_total);
		ASSERT_EQ(info.page_size, kt_page_size());
		ASSERT_EQ(info.index, d);
		ASSERT_EQ(info.abi_version, HMMGPU_ABI_VERSION);
		ASSERT_TRUE(info.copy_engine == HMM_COPY_ENGINE_SOFTWARE ||
			    info.copy_engine == HMM_COPY_ENGINE_DMAENGINE);
		ASSERT_GE(info.copy_channels, 1);
		ASSERT_EQ(info.caps & ~(HMM_DEVICE_CAP_VIEW | HMM_DEVICE_CAP_PCI),
			  0);
		ASSERT_EQ(info.pci_pad, 0);
		if (!strncmp(bus, "pci:", 4)) {
			/* the PCI identity, as sysfs has it */
			char addr[32];

			ASSERT_TRUE(info.caps & HMM_DEVICE_CAP_PCI);
			snprintf(addr, sizeof(addr), "pci:%04x:%02x:%02x.%u",
				 info.pci_domain, info.pci_bus, info.pci_dev,
				 info.pci_func);
			ASSERT_STREQ(addr, bus);
			ASSERT_EQ(info.pci_vendor_id,
				  pci_sysfs_hex(bus + 4, "vendor"));
			ASSERT_EQ(info.pci_device_id,
				  pci_sysfs_hex(bus + 4, "device"));
			ASSERT_GE(info.pci_bar_size, info.mem_total);
			ASSERT_LT(info.pci_bar, 6);
		} else {
			ASSERT_FALSE(info.caps & HMM_DEVICE_CAP_PCI);
			ASSERT_EQ(info.pci_domain | info.pci_bus | info.pci_dev |
				  info.pci_func | info.pci_bar |
				  info.pci_vendor_id | info.pci_device_id, 0);
			ASSERT_EQ(info.pci_bar_size, 0);
		}
	}
	/* render nodes differ */
	if (n >= 2) {
		struct hmm_device_info a, b;

		ASSERT_EQ(hmm_device_get_info(0, &a), 0);
		ASSERT_EQ(hmm_device_get_info(1, &b), 0);
		ASSERT_TRUE(strcmp(a.render_node, b.render_node) != 0);
	}
	ASSERT_EQ(hmm_device_get_info(n, NULL), -EINVAL);
	{
		struct hmm_device_info info;

		ASSERT_EQ(hmm_device_get_info(n, &info), -ENODEV);
		ASSERT_EQ(hmm_device_get_info(HMM_CPU, &info), -ENODEV);
	}
	ASSERT_EQ(hmm_device_count(), n);
}

/* --- saxpy ------------------------------------------------------------- */

/*
 * saxpy on device 0 over @size bytes of x and y; with @prefetch, both are
 * prefetched to the device first.  Returns the stats of device 0.
 */
static void run_saxpy(size_t size, bool prefetch, struct hmm_stats *st)
{
	size_t n = size / sizeof(float);
	float *x = hmm_malloc(size), *y = hmm_malloc(size);
	struct saxpy args = { .a = 3.0f };
	struct hmm_dim3 grid = { (uint32_t)n, 1, 1 };
	struct hmm_stream *s = stream_on(0);

	ASSERT_TRUE(x && y);
	fill_xy(x, y, n);
	if (prefetch) {
		ASSERT_EQ(hmm_prefetch(x, size, 0), 0);
		ASSERT_EQ(hmm_prefetch(y, size, 0), 0);
		expect_residency(x, size, 0);
		expect_residency(y, size, 0);
	}
	args.x = hmm_devptr(x, 0);
	args.y = hmm_devptr(y, 0);
	ASSERT_TRUE(args.x && args.y);
	ASSERT_TRUE((const void *)args.x != (const void *)x);
	ASSERT_EQ(hmm_launch(s, saxpy_kernel, grid, &args), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	/* the kernel's writes are on the device until the CPU looks */
	expect_residency(y, size, 0);
	get_stats(0, st);
	ASSERT_EQ(check_y(x, y, n, 3.0f, 1), -1);
	expect_residency(y, size, HMM_CPU);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	ASSERT_EQ(hmm_free(x), 0);
	ASSERT_EQ(hmm_free(y), 0);
}

TEST_TIMEOUT(saxpy_after_prefetch, EXEC_TIMEOUT)
{
	size_t size = 1 * MIB, npages = size / kt_page_size();
	struct hmm_stats st, after;
	const uint64_t *to_dev = st.pages[HMM_DIR_TO_DEVICE];

	need_devices(1);
	run_saxpy(size, true, &st);
	TH_LOG("device faults %" PRIu64 ", pages to device: prefetch %" PRIu64
	       ", device fault %" PRIu64, st.device_faults,
	       to_dev[HMM_CAUSE_PREFETCH], to_dev[HMM_CAUSE_DEVICE_FAULT]);
	ASSERT_EQ(st.launches, 1);
	ASSERT_GT(st.launch_ns, 0);
	ASSERT_EQ(st.prefetch_calls, 2);
	ASSERT_EQ(st.prefetch_bytes, 2 * size);
	ASSERT_EQ(st.pages[HMM_DIR_TO_DEVICE][HMM_CAUSE_PREFETCH], 2 * npages);
	/*
	 * Everything was there, and mapped in the views by the prefetch: no
	 * device fault at all, no page moved for one.
	 */
	ASSERT_EQ(st.pages[HMM_DIR_TO_DEVICE][HMM_CAUSE_DEVICE_FAULT], 0);
	ASSERT_EQ(st.pages[HMM_DIR_TO_DEVICE][HMM_CAUSE_DENSITY], 0);
	ASSERT_EQ(st.device_faults, 0);
	ASSERT_EQ(st.launch_cpu_faults, 0);
	/* the CPU's read brought y back (x may stay: it was only read) */
	get_stats(0, &after);
	ASSERT_GT(after.cpu_faults, 0);
	ASSERT_GE(after.pages[HMM_DIR_TO_HOST][HMM_CAUSE_CPU_FAULT], npages);
}

/*
 * A kernel handed host pointers instead of hmm_devptr() addresses: the
 * results are right, but every page comes home by a CPU fault of the
 * device's threads; launch_cpu_faults counts them (and HMM_LOG=warn says
 * so once).
 */
TEST_TIMEOUT(a_kernel_on_host_pointers_is_counted, EXEC_TIMEOUT)
{
	size_t size = 1 * MIB, n = size / sizeof(float);
	size_t npages = size / kt_page_size();
	struct saxpy args = { .a = 3.0f };
	struct hmm_stats st0, st1;
	struct hmm_stream *s;
	float *x, *y;

	need_devices(1);
	s = stream_on(0);
	x = hmm_malloc(size);
	y = hmm_malloc(size);
	ASSERT_TRUE(x && y);
	fill_xy(x, y, n);
	ASSERT_EQ(hmm_prefetch(x, size, 0), 0);
	ASSERT_EQ(hmm_prefetch(y, size, 0), 0);
	get_stats(0, &st0);
	args.x = x;
	args.y = y;
	ASSERT_EQ(launch_saxpy(s, n, &args), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	get_stats(0, &st1);
	TH_LOG("CPU faults by the kernel: %" PRIu64 " (all CPU faults %" PRIu64
	       ")", st1.launch_cpu_faults - st0.launch_cpu_faults,
	       st1.cpu_faults - st0.cpu_faults);
	/* at least one per fault_kib block of each array, at most one a page */
	ASSERT_GT(st1.launch_cpu_faults - st0.launch_cpu_faults, 0);
	ASSERT_LE(st1.launch_cpu_faults - st0.launch_cpu_faults,
		  st1.cpu_faults - st0.cpu_faults);
	ASSERT_LE(st1.cpu_faults - st0.cpu_faults, 2 * npages);
	/* the kernel's pages came home: the device holds none of y */
	expect_residency(y, size, HMM_CPU);
	ASSERT_EQ(check_y(x, y, n, 3.0f, 1), -1);

	/* the same launch through device pointers takes none */
	ASSERT_EQ(hmm_prefetch(y, size, 0), 0);
	get_stats(0, &st0);
	args.x = hmm_devptr(x, 0);
	args.y = hmm_devptr(y, 0);
	ASSERT_EQ(launch_saxpy(s, n, &args), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	get_stats(0, &st1);
	ASSERT_EQ(st1.launch_cpu_faults, st0.launch_cpu_faults);
	expect_residency(y, size, 0);
	ASSERT_EQ(check_y(x, y, n, 3.0f, 2), -1);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	ASSERT_EQ(hmm_free(x), 0);
	ASSERT_EQ(hmm_free(y), 0);
}

TEST_TIMEOUT(saxpy_by_device_faults, EXEC_TIMEOUT)
{
	size_t size = 1 * MIB, npages = size / kt_page_size();
	struct hmm_stats st;
	const uint64_t *to_dev = st.pages[HMM_DIR_TO_DEVICE];

	need_devices(1);
	run_saxpy(size, false, &st);
	TH_LOG("device faults %" PRIu64 ", pages to device: device fault %"
	       PRIu64 ", density %" PRIu64, st.device_faults,
	       to_dev[HMM_CAUSE_DEVICE_FAULT], to_dev[HMM_CAUSE_DENSITY]);
	ASSERT_EQ(st.launches, 1);
	ASSERT_EQ(st.prefetch_calls, 0);
	ASSERT_EQ(st.pages[HMM_DIR_TO_DEVICE][HMM_CAUSE_PREFETCH], 0);
	ASSERT_GT(st.device_faults, 0);
	ASSERT_GT(st.pages[HMM_DIR_TO_DEVICE][HMM_CAUSE_DEVICE_FAULT], 0);
	/* every page of x and y went over, by fault or density prefetch */
	ASSERT_EQ(st.pages[HMM_DIR_TO_DEVICE][HMM_CAUSE_DEVICE_FAULT] +
		  st.pages[HMM_DIR_TO_DEVICE][HMM_CAUSE_DENSITY], 2 * npages);
}

/*
 * A kernel through the device pointer of freed memory (its view is gone):
 * the launch and its stream fail with -EFAULT, the process and the
 * stream go on, and the next launch on the device computes right.
 */
TEST_TIMEOUT(a_kernel_on_a_stale_device_pointer_is_efault, EXEC_TIMEOUT)
{
	size_t size = 256 * 1024, n = size / sizeof(float);
	struct saxpy stale = { .a = 2.0f }, args = { .a = 3.0f };
	struct hmm_stream *s;
	float *x, *y;
	int status = 1;

	need_devices(1);
	s = stream_on(0);
	/*
	 * The device's threads first, so that their stacks cannot take the
	 * place of the freed view (the pointer would then be valid memory).
	 */
	ASSERT_EQ(hmm_launch(s, nop_kernel, (struct hmm_dim3){ 1, 1, 1 },
			     NULL), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	x = hmm_malloc(size);
	ASSERT_TRUE(x != NULL);
	stale.x = stale.y = hmm_devptr(x, 0);
	ASSERT_TRUE(stale.x != NULL);
	ASSERT_EQ(hmm_free(x), 0);
	ASSERT_EQ(launch_saxpy(s, n, &stale), 0);
	ASSERT_EQ(hmm_stream_add_callback(s, status_cb, &status), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), -EFAULT);
	ASSERT_EQ(status, -EFAULT);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);

	x = hmm_malloc(size);
	y = hmm_malloc(size);
	ASSERT_TRUE(x && y);
	fill_xy(x, y, n);
	args.x = hmm_devptr(x, 0);
	args.y = hmm_devptr(y, 0);
	ASSERT_TRUE(args.x && args.y);
	ASSERT_EQ(launch_saxpy(s, n, &args), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(check_y(x, y, n, 3.0f, 1), -1);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	ASSERT_EQ(hmm_free(x), 0);
	ASSERT_EQ(hmm_free(y), 0);
}

TEST_TIMEOUT(saxpy_on_the_second_device, EXEC_TIMEOUT)
{
	size_t size = 256 * 1024, n = size / sizeof(float);
	float *x, *y;
	struct saxpy args = { .a = -2.0f };
	struct hmm_stats st0, st1;
	struct hmm_stream *s;

	need_devices(2);
	x = hmm_malloc(size);
	y = hmm_malloc(size);
	ASSERT_TRUE(x && y);
	fill_xy(x, y, n);
	/* x starts on device 0: device 1 takes it from there */
	ASSERT_EQ(hmm_prefetch(x, size, 0), 0);
	s = stream_on(1);
	args.x = hmm_devptr(x, 1);
	args.y = hmm_devptr(y, 1);
	ASSERT_TRUE(args.x && args.y);
	ASSERT_EQ(launch_saxpy(s, n, &args), 0);
	ASSERT_EQ(launch_saxpy(s, n, &args), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	expect_residency(y, size, 1);
	get_stats(0, &st0);
	get_stats(1, &st1);
	ASSERT_EQ(check_y(x, y, n, -2.0f, 2), -1);
	ASSERT_EQ(st0.launches, 0);
	ASSERT_EQ(st1.launches, 2);
	ASSERT_GT(st1.device_faults, 0);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	ASSERT_EQ(hmm_free(x), 0);
	ASSERT_EQ(hmm_free(y), 0);
}

/* --- streams and events ------------------------------------------------ */

struct gate {
	sem_t sem;
};

static void gate_cb(struct hmm_stream *s, int status, void *arg)
{
	struct gate *g = arg;

	while (sem_wait(&g->sem))
		;
}

/* What stream B sees when its wait for A's event is over. */
struct seen {
	const void *buf;
	size_t size;
	int8_t *loc;
	size_t npages;
	int on_device; /* pages of buf on device 0 */
	atomic_int order;
	int a_prefetched; /* order numbers */
	int b_launched;
};

static void a_done_cb(struct hmm_stream *s, int status, void *arg)
{
	struct seen *w = arg;

	w->a_prefetched = atomic_fetch_add(&w->order, 1);
}

static void b_look_cb(struct hmm_stream *s, int status, void *arg)
{
	struct seen *w = arg;

	w->b_launched = atomic_fetch_add(&w->order, 1);
	w->on_device = 0;
	if (hmm_residency(w->buf, w->size, w->loc, w->npages) ==
	    (int)w->npages)
		for (size_t i = 0; i < w->npages; i++)
			w->on_device += w->loc[i] == 0;
}

TEST_TIMEOUT(async_prefetch_ordered_by_an_event, EXEC_TIMEOUT)
{
	size_t size = 1 * MIB, n = size / sizeof(float);
	size_t npages = size / kt_page_size();
	struct hmm_stream *a, *b;
	struct hmm_event *e, *t0, *t1;
	struct saxpy args = { .a = 5.0f };
	struct seen w = { .a_prefetched = -1, .b_launched = -1 };
	struct hmm_stats st;
	struct gate g;
	float *x, *y, ms;

	need_devices(1);
	x = hmm_malloc(size);
	y = hmm_malloc(size);
	ASSERT_TRUE(x && y);
	fill_xy(x, y, n);
	w.buf = y;
	w.size = size;
	w.npages = npages;
	w.loc = malloc(npages);
	ASSERT_TRUE(w.loc != NULL);
	atomic_init(&w.order, 0);
	ASSERT_EQ(sem_init(&g.sem, 0, 0), 0);
	a = stream_on(0);
	b = stream_on(0);
	ASSERT_EQ(hmm_event_create(&e), 0);
	ASSERT_EQ(hmm_event_create(&t0), 0);
	ASSERT_EQ(hmm_event_create(&t1), 0);
	args.x = hmm_devptr(x, 0);
	args.y = hmm_devptr(y, 0);
	ASSERT_TRUE(args.x && args.y);

	/* A: held back, then prefetches x and y, then records e */
	ASSERT_EQ(hmm_stream_add_callback(a, gate_cb, &g), 0);
	ASSERT_EQ(hmm_event_record(t0, a), 0);
	ASSERT_EQ(hmm_prefetch_async(x, size, 0, a), 0);
	ASSERT_EQ(hmm_prefetch_async(y, size, 0, a), 0);
	ASSERT_EQ(hmm_stream_add_callback(a, a_done_cb, &w), 0);
	ASSERT_EQ(hmm_event_record(e, a), 0);
	ASSERT_EQ(hmm_event_record(t1, a), 0);
	/* B: waits for e, looks, launches on what A prefetched */
	ASSERT_EQ(hmm_stream_wait_event(b, e), 0);
	ASSERT_EQ(hmm_stream_add_callback(b, b_look_cb, &w), 0);
	ASSERT_EQ(launch_saxpy(b, n, &args), 0);

	/* nothing has moved while A is held: B waits too */
	usleep(50 * 1000);
	ASSERT_EQ(hmm_stream_query(b), -EBUSY);
	ASSERT_EQ(hmm_event_query(e), -EBUSY);
	ASSERT_EQ(w.b_launched, -1);
	expect_residency(y, size, HMM_CPU);

	ASSERT_EQ(sem_post(&g.sem), 0);
	ASSERT_EQ(hmm_stream_synchronize(b), 0);
	ASSERT_EQ(hmm_stream_synchronize(a), 0);
	ASSERT_EQ(w.a_prefetched, 0);
	ASSERT_EQ(w.b_launched, 1);
	/* when B went on, A's prefetch had put all of y on the device */
	ASSERT_EQ(w.on_device, npages);
	ASSERT_EQ(hmm_event_elapsed_ms(&ms, t0, t1), 0);
	TH_LOG("two 1 MiB prefetches on stream A: %.3f ms", ms);
	ASSERT_GE(ms, 0.0f);

	get_stats(0, &st);
	ASSERT_EQ(st.launches, 1);
	ASSERT_EQ(st.prefetch_calls, 2);
	ASSERT_EQ(st.pages[HMM_DIR_TO_DEVICE][HMM_CAUSE_PREFETCH], 2 * npages);
	ASSERT_EQ(st.pages[HMM_DIR_TO_DEVICE][HMM_CAUSE_DEVICE_FAULT], 0);
	ASSERT_EQ(check_y(x, y, n, 5.0f, 1), -1);

	ASSERT_EQ(hmm_event_destroy(e), 0);
	ASSERT_EQ(hmm_event_destroy(t0), 0);
	ASSERT_EQ(hmm_event_destroy(t1), 0);
	ASSERT_EQ(hmm_stream_destroy(a), 0);
	ASSERT_EQ(hmm_stream_destroy(b), 0);
	ASSERT_EQ(hmm_free(x), 0);
	ASSERT_EQ(hmm_free(y), 0);
	free(w.loc);
}

/*
 * A stream error from the device: a prefetch that cannot be done, of
 * registered memory the application unmapped without hmm_unregister()
 * (the driver's MIGRATE finds no mapping: -EFAULT).
 */
TEST_TIMEOUT(a_failed_async_prefetch_is_the_streams_error, EXEC_TIMEOUT)
{
	size_t size = 64 * 1024;
	struct hmm_stream *s;
	struct gate g;
	char *p;

	need_devices(1);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(p != MAP_FAILED);
	memset(p, 0x11, size);
	ASSERT_EQ(hmm_register(p, size), 0);
	s = stream_on(0);
	ASSERT_EQ(sem_init(&g.sem, 0, 0), 0);
	ASSERT_EQ(hmm_stream_add_callback(s, gate_cb, &g), 0);
	ASSERT_EQ(hmm_prefetch_async(p, size, 0, s), 0);
	/* gone before the stream gets to it */
	ASSERT_EQ(munmap(p, size), 0);
	ASSERT_EQ(sem_post(&g.sem), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), -EFAULT);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	/* unmapped: forgotten, nothing touched there */
	ASSERT_EQ(hmm_unregister(p), -ESTALE);
}

/*
 * cudaFree semantics on a device: hmm_free() of memory a queued launch
 * and a queued prefetch use waits for them (it used to unmap the memory
 * under the kernel: SIGSEGV in the execution thread).
 */
static void *open_gate_later(void *arg)
{
	struct gate *g = arg;

	usleep(100 * 1000);
	sem_post(&g->sem);
	return NULL;
}

TEST_TIMEOUT(free_waits_for_queued_device_work, EXEC_TIMEOUT)
{
	size_t size = 256 * 1024, n = size / sizeof(float);
	struct saxpy args = { .a = 3.0f };
	struct hmm_stream *s;
	struct gate g;
	pthread_t t;
	float *x, *y;

	need_devices(1);
	x = hmm_malloc(size);
	y = hmm_malloc(size);
	ASSERT_TRUE(x && y);
	fill_xy(x, y, n);
	args.x = hmm_devptr(x, 0);
	args.y = hmm_devptr(y, 0);
	ASSERT_TRUE(args.x && args.y);
	s = stream_on(0);
	ASSERT_EQ(sem_init(&g.sem, 0, 0), 0);
	ASSERT_EQ(hmm_stream_add_callback(s, gate_cb, &g), 0);
	ASSERT_EQ(hmm_prefetch_async(x, size, 0, s), 0);
	ASSERT_EQ(launch_saxpy(s, n, &args), 0);
	ASSERT_EQ(hmm_prefetch_async(y, size, HMM_CPU, s), 0);
	/* the gate opens while hmm_free() waits */
	ASSERT_EQ(pthread_create(&t, NULL, open_gate_later, &g), 0);
	ASSERT_EQ(hmm_free(x), 0);
	ASSERT_EQ(hmm_stream_query(s), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	pthread_join(t, NULL);
	for (size_t i = 0; i < n; i++)
		if (y[i] != 3.0f * x_at(i) + y_at(i))
			HMMT_FAIL("y[%zu] = %g", i, y[i]);
	ASSERT_EQ(hmm_stream_destroy(s), 0);
	ASSERT_EQ(hmm_free(y), 0);
}

/* hmm_device_synchronize(d) waits for d's streams, not for the others. */
struct slow {
	atomic_int done;
};

static void slow_cb(struct hmm_stream *s, int status, void *arg)
{
	struct slow *w = arg;

	usleep(30 * 1000);
	atomic_fetch_add(&w->done, 1);
}

TEST_TIMEOUT(device_synchronize_waits_for_that_device, EXEC_TIMEOUT)
{
	size_t size = 256 * 1024, n = size / sizeof(float);
	struct hmm_stream *s0a, *s0b, *s1;
	struct saxpy args = { .a = 2.0f };
	struct slow w;
	struct gate g;
	float *x, *y;

	need_devices(2);
	x = hmm_malloc(size);
	y = hmm_malloc(size);
	ASSERT_TRUE(x && y);
	fill_xy(x, y, n);
	args.x = hmm_devptr(x, 0);
	args.y = hmm_devptr(y, 0);
	ASSERT_TRUE(args.x && args.y);
	atomic_init(&w.done, 0);
	ASSERT_EQ(sem_init(&g.sem, 0, 0), 0);
	s0a = stream_on(0);
	s0b = stream_on(0);
	s1 = stream_on(1);

	/* device 1's stream is held: synchronizing device 0 ignores it */
	ASSERT_EQ(hmm_stream_add_callback(s1, gate_cb, &g), 0);
	ASSERT_EQ(hmm_stream_add_callback(s0a, slow_cb, &w), 0);
	ASSERT_EQ(launch_saxpy(s0a, n, &args), 0);
	ASSERT_EQ(hmm_stream_add_callback(s0b, slow_cb, &w), 0);
	ASSERT_EQ(hmm_stream_add_callback(s0b, slow_cb, &w), 0);
	ASSERT_EQ(hmm_device_synchronize(0), 0);
	ASSERT_EQ(atomic_load(&w.done), 3);
	ASSERT_EQ(hmm_stream_query(s0a), 0);
	ASSERT_EQ(hmm_stream_query(s0b), 0);
	ASSERT_EQ(hmm_stream_query(s1), -EBUSY);
	ASSERT_EQ(sem_post(&g.sem), 0);
	ASSERT_EQ(hmm_device_synchronize(1), 0);
	ASSERT_EQ(hmm_stream_query(s1), 0);
	ASSERT_EQ(hmm_device_synchronize(HMM_CPU), 0);
	ASSERT_EQ(check_y(x, y, n, 2.0f, 1), -1);

	ASSERT_EQ(hmm_stream_destroy(s0a), 0);
	ASSERT_EQ(hmm_stream_destroy(s0b), 0);
	ASSERT_EQ(hmm_stream_destroy(s1), 0);
	ASSERT_EQ(hmm_free(x), 0);
	ASSERT_EQ(hmm_free(y), 0);
}

/* --- hotplug ----------------------------------------------------------- */

TEST_TIMEOUT(a_removed_device_keeps_its_number, EXEC_TIMEOUT)
{
	size_t size = 256 * 1024, n = size / sizeof(float);
	struct hmm_device_info info;
	struct saxpy args = { .a = 7.0f };
	struct hmm_stream *s0, *s1, *s;
	char bus0[64];
	float *x, *y;
	int count, ret;

	count = need_devices(2);
	ASSERT_EQ(count, 2);
	ASSERT_EQ(kt_device_bus(0, bus0, sizeof(bus0)), 0);
	ASSERT_EQ(hmm_device_get_info(0, &info), 0);
	s0 = stream_on(0);
	s1 = stream_on(1);

	ret = kt_unbind_device(0);
	if (ret)
		SKIP("cannot unbind hmmgpu.0: %s", strerror(-ret));

	/* the monitor's event: no ioctl needed to know it is gone */
	ASSERT_EQ(hmm_stream_create(&s, 0), -ENODEV);
	ASSERT_EQ(hmm_device_get_info(0, &info), -ENODEV);
	ASSERT_EQ(hmm_device_count(), 2);
	x = hmm_malloc(size);
	ASSERT_TRUE(x != NULL);
	ASSERT_EQ(hmm_prefetch(x, size, 0), -ENODEV);
	ASSERT_TRUE(hmm_devptr(x, 0) == NULL);
	ASSERT_EQ(errno, ENODEV);

	/* a stream of the removed device runs no kernel: its error */
	args.x = (float *)x;
	args.y = (float *)x;
	ASSERT_EQ(hmm_launch(s0, saxpy_kernel, (struct hmm_dim3){ 1, 1, 1 },
			     &args), 0);
	ASSERT_EQ(hmm_stream_synchronize(s0), -ENODEV);
	ASSERT_EQ(hmm_stream_destroy(s0), 0);

	/* device 1 and its stream go on */
	ASSERT_EQ(hmm_device_get_info(1, &info), 0);
	ASSERT_STREQ(info.name, "hmmgpu1");
	y = hmm_malloc(size);
	ASSERT_TRUE(y != NULL);
	fill_xy(x, y, n);
	args.x = hmm_devptr(x, 1);
	args.y = hmm_devptr(y, 1);
	ASSERT_TRUE(args.x && args.y);
	ASSERT_EQ(launch_saxpy(s1, n, &args), 0);
	ASSERT_EQ(hmm_stream_synchronize(s1), 0);
	ASSERT_EQ(check_y(x, y, n, 7.0f, 1), -1);
	ASSERT_EQ(hmm_device_synchronize(0), 0); /* no stream there */

	/* bound again: a new device, with the next number */
	ASSERT_EQ(kt_bind_device(0), 0);
	ASSERT_EQ(hmm_device_count(), 3);
	ASSERT_EQ(hmm_device_get_info(0, &info), -ENODEV);
	ASSERT_EQ(hmm_device_get_info(2, &info), 0);
	ASSERT_STREQ(info.name, "hmmgpu0");
	ASSERT_STREQ(info.bus, bus0);
	ASSERT_EQ(info.index, 2);
	s = stream_on(2);
	fill_xy(x, y, n);
	args.x = hmm_devptr(x, 2);
	args.y = hmm_devptr(y, 2);
	ASSERT_TRUE(args.x && args.y);
	ASSERT_EQ(launch_saxpy(s, n, &args), 0);
	ASSERT_EQ(hmm_stream_synchronize(s), 0);
	ASSERT_EQ(check_y(x, y, n, 7.0f, 1), -1);

	ASSERT_EQ(hmm_stream_destroy(s), 0);
	ASSERT_EQ(hmm_stream_destroy(s1), 0);
	ASSERT_EQ(hmm_free(x), 0);
	ASSERT_EQ(hmm_free(y), 0);
}

TEST_MAIN()
