// SPDX-License-Identifier: MIT
/*
 * test_device.c - the hmmgpu DRM device: discovery, GET_INFO, its caps and
 * its rejections, unplug through unbind, module unload and reload.
 *
 * Runs inside the test VM with hmmgpu.ko loaded (tools/vm/hmmvm test).
 */
#define _GNU_SOURCE
#include "kt_common.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <xf86drm.h>

static void fill(void *p, size_t n)
{
	memset(p, 0xa5, n);
}

TEST(discovery_finds_every_device)
{
	unsigned int want = kt_module_param("num_devices");
	struct hmm_node nodes[KT_MAX_NODES];
	int n = hmm_node_scan(nodes, KT_MAX_NODES, NULL);

	ASSERT_EQ(n, want);
	for (int i = 0; i < n; i++) {
		drmVersionPtr v = drmGetVersion(nodes[i].fd);
		struct stat st;

		/* sorted by index, indices dense from 0 */
		ASSERT_EQ(nodes[i].index, i);
		ASSERT_EQ(strncmp(nodes[i].path, "/dev/dri/renderD", 16), 0);
		ASSERT_EQ(fstat(nodes[i].fd, &st), 0);
		ASSERT_TRUE(S_ISCHR(st.st_mode));
		/* render node minors start at 128 */
		ASSERT_GE(minor(st.st_rdev), 128);
		ASSERT_TRUE(v != NULL);
		ASSERT_STREQ(v->name, "hmmgpu");
		drmFreeVersion(v);
	}
	hmm_node_close_all(nodes, n);
}

TEST(get_info_reports_the_device)
{
	unsigned int ndev = kt_module_param("num_devices");
	unsigned long long mem = kt_module_param("mem_mib") << 20;

	for (unsigned int i = 0; i < ndev; i++) {
		struct drm_hmmgpu_get_info info;
		int fd = kt_open_device(i);

		/* out fields must be written whatever the caller left there */
		fill(&info, sizeof(info));
		info.flags = 0;
		info.pad = 0;
		info.extensions = 0;
		ASSERT_EQ(drmIoctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, &info), 0);
		ASSERT_EQ(info.abi_version, HMMGPU_ABI_VERSION);
		ASSERT_EQ(info.device_index, i);
		ASSERT_EQ(info.page_size, sysconf(_SC_PAGESIZE));
		ASSERT_EQ(info.mem_total, mem);
		ASSERT_EQ(info.mem_free, mem); /* nothing resident yet */
		ASSERT_TRUE(info.copy_engine == HMMGPU_COPY_ENGINE_SOFTWARE ||
			    info.copy_engine == HMMGPU_COPY_ENGINE_DMAENGINE);
		/* only bits the header names */
		ASSERT_EQ(info.caps & ~(HMMGPU_CAP_VIEW | HMMGPU_CAP_DEVICE_THP),
			  0);
		/* device THP exactly where the driver has it and it is on */
		ASSERT_EQ(!!(info.caps & HMMGPU_CAP_DEVICE_THP),
			  kt_module_bool("device_thp") == 1 &&
			  kt_device_thp_kernel());
		for (unsigned int r = 0; r < 3; r++)
			ASSERT_EQ(info.reserved[r], 0);
		ASSERT_EQ(info.flags, 0);
		close(fd);
	}
}

static void expect_get_info_einval(void (*spoil)(struct drm_hmmgpu_get_info *))
{
	struct drm_hmmgpu_get_info info;
	int fd = kt_open_device(0);

	memset(&info, 0, sizeof(info));
	spoil(&info);
	ASSERT_ERRNO(drmIoctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, &info), EINVAL);
	/* the file stays usable after a rejection */
	memset(&info, 0, sizeof(info));
	ASSERT_EQ(drmIoctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, &info), 0);
	close(fd);
}

static void spoil_flags(struct drm_hmmgpu_get_info *i) { i->flags = 1; }
static void spoil_high_flag(struct drm_hmmgpu_get_info *i) { i->flags = 1u << 31; }
static void spoil_pad(struct drm_hmmgpu_get_info *i) { i->pad = 1; }
static void spoil_extensions(struct drm_hmmgpu_get_info *i) { i->extensions = 0x1000; }

/*
 * HMMGPU_CAP_VIEW says whether VIEW_REGISTER works on this kernel and CPU
 * (hmmgpu_compat.h): the bit and the ioctl must agree.
 */
TEST(view_capability_matches_view_register)
{
	struct drm_hmmgpu_get_info info = { 0 };
	struct drm_hmmgpu_view_register reg = { 0 };
	size_t size = 64 * 1024;
	int fd = kt_open_device(0);
	char *p = kt_map(size);
	int ret;

	ASSERT_EQ(drmIoctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, &info), 0);
	reg.start = (uintptr_t)p;
	reg.size = size;
	ret = drmIoctl(fd, DRM_IOCTL_HMMGPU_VIEW_REGISTER, &reg) ? -errno : 0;
	if (info.caps & HMMGPU_CAP_VIEW) {
		struct drm_hmmgpu_view_unregister unreg = {
			.handle = reg.handle,
		};

		ASSERT_EQ(ret, 0);
		ASSERT_EQ(drmIoctl(fd, DRM_IOCTL_HMMGPU_VIEW_UNREGISTER, &unreg),
			  0);
	} else {
		ASSERT_EQ(ret, -EOPNOTSUPP);
		printf("# this kernel and CPU give no device view\n");
	}
	kt_unmap(p, size);
	close(fd);
}

TEST(get_info_rejects_flags)
{
	expect_get_info_einval(spoil_flags);
	expect_get_info_einval(spoil_high_flag);
}

TEST(get_info_rejects_pad)
{
	expect_get_info_einval(spoil_pad);
}

TEST(get_info_rejects_extensions)
{
	expect_get_info_einval(spoil_extensions);
}

TEST(unknown_ioctl_is_rejected)
{
	int fd = kt_open_device(0);
	struct drm_hmmgpu_get_info info = { 0 };
	/* the first driver ioctl number past the table */
	unsigned long req = DRM_IOWR(DRM_COMMAND_BASE + 0x3f,
				     struct drm_hmmgpu_get_info);

	ASSERT_ERRNO(ioctl(fd, req, &info), EINVAL);
	close(fd);
}

static int count_hmmgpu_nodes(void)
{
	struct hmm_node nodes[KT_MAX_NODES];
	int n = hmm_node_scan(nodes, KT_MAX_NODES, NULL);

	hmm_node_close_all(nodes, n > 0 ? n : 0);
	return n;
}

/* The value of @key in /proc/@pid/fdinfo/@fd, or -1 (text: 0 if equal). */
static long long fdinfo_value(pid_t pid, int fd, const char *key)
{
	char path[64], line[256];
	long long v = -1;
	size_t n = strlen(key);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, fd);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':')
			v = strtoll(line + n + 1, NULL, 10);
	fclose(f);
	return v;
}

static bool fdinfo_has(int fd, const char *line_start)
{
	char path[64], line[256];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		found |= !strncmp(line, line_start, strlen(line_start));
	fclose(f);
	return found;
}

/*
 * /proc/PID/fdinfo of a render-node file has the DRM client keys and the
 * file's own counters: what this file moved to the device, not what
 * another file of the process, or another process, moved.
 */
TEST(fdinfo_reports_each_files_usage)
{
	size_t ps = kt_page_size(), size = 1UL << 20, npages = size / ps;
	int fd = kt_open_device(0), other = kt_open_device(0);
	char *p = kt_map(size), *q = kt_map(size / 4);
	long long id, id2;
	int ready[2], done[2];
	pid_t pid;

	ASSERT_TRUE(fdinfo_has(fd, "drm-driver:\thmmgpu\n"));
	id = fdinfo_value(getpid(), fd, "drm-client-id");
	id2 = fdinfo_value(getpid(), other, "drm-client-id");
	ASSERT_GT(id, 0);
	ASSERT_GT(id2, 0);
	ASSERT_NE(id, id2);
	ASSERT_EQ(fdinfo_value(getpid(), fd, "drm-resident-vram"), 0);

	kt_fill(p, size, 71);
	kt_fill(q, size / 4, 72);
	KT_EXPECT_MIGRATE(fd, p, size, HMMGPU_MIGRATE_TO_DEVICE, npages, 0, 0);
	KT_EXPECT_MIGRATE(other, q, size / 4, HMMGPU_MIGRATE_TO_DEVICE,
			  npages / 4, 0, 0);
	ASSERT_EQ(fdinfo_value(getpid(), fd, "drm-resident-vram"),
		  (long long)(size >> 10));
	ASSERT_EQ(fdinfo_value(getpid(), other, "drm-resident-vram"),
		  (long long)(size >> 12));
	ASSERT_EQ(fdinfo_value(getpid(), fd, "hmmgpu-pages-to-device"),
		  (long long)npages);
	ASSERT_EQ(fdinfo_value(getpid(), fd, "hmmgpu-device"), 0);

	/* another process: its own file, its own numbers, ours unchanged */
	ASSERT_EQ(pipe(ready), 0);
	ASSERT_EQ(pipe(done), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		int cfd = kt_open_device(0);
		char *c = kt_map(size / 2);

		kt_fill(c, size / 2, 73);
		KT_EXPECT_MIGRATE(cfd, c, size / 2, HMMGPU_MIGRATE_TO_DEVICE,
				  npages / 2, 0, 0);
		ASSERT_EQ(fdinfo_value(getpid(), cfd, "drm-resident-vram"),
			  (long long)(size >> 11));
		/* the inherited file is still the parent's */
		ASSERT_EQ(fdinfo_value(getpid(), fd, "drm-resident-vram"),
			  (long long)(size >> 10));
		kt_pipe_signal(ready[1]);
		kt_pipe_wait(done[0]);
		_exit(0);
	}
	kt_pipe_wait(ready[0]);
	ASSERT_EQ(fdinfo_value(getpid(), fd, "drm-resident-vram"),
		  (long long)(size >> 10));
	ASSERT_EQ(fdinfo_value(getpid(), fd, "hmmgpu-pages-to-device"),
		  (long long)npages);
	kt_pipe_signal(done[1]);
	ASSERT_EQ(kt_wait_child(pid), 0);

	/* a CPU fault brings 64 KiB home: the file's counts follow */
	KT_EXPECT_DATA(p, ps, 71);
	ASSERT_EQ(fdinfo_value(getpid(), fd, "hmmgpu-cpu-faults"), 1);
	ASSERT_LT(fdinfo_value(getpid(), fd, "drm-resident-vram"),
		  (long long)(size >> 10));
	kt_unmap(p, size);
	kt_unmap(q, size / 4);
	ASSERT_EQ(fdinfo_value(getpid(), fd, "drm-resident-vram"), 0);
	ASSERT_EQ(fdinfo_value(getpid(), other, "drm-resident-vram"), 0);
	close(other);
	close(fd);
}

TEST(unbind_makes_open_files_enodev)
{
	unsigned int ndev = kt_module_param("num_devices");
	struct drm_hmmgpu_get_info info = { 0 };
	int fd = kt_open_device(0);

	/* through the driver of its bus: platform, or PCI */
	ASSERT_EQ(kt_unbind_device(0), 0);
	ASSERT_EQ(count_hmmgpu_nodes(), ndev - 1);

	/* the open file survives, its ioctls report the removal */
	ASSERT_ERRNO(drmIoctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, &info), ENODEV);
	close(fd);

	ASSERT_EQ(kt_bind_device(0), 0);
	ASSERT_EQ(count_hmmgpu_nodes(), ndev);
	fd = kt_open_device(0);
	ASSERT_EQ(drmIoctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, &info), 0);
	ASSERT_EQ(info.device_index, 0);
	close(fd);
}

/*
 * GET_INFO racing device removal: threads issue GET_INFO in a loop on
 * files of device 0 while the main thread unbinds and binds it again,
 * several times.  drm_ioctl() refuses ioctls of an unplugged device, but
 * one that got past that check before the unplug still runs; GET_INFO
 * read the copy engine and device memory that removal frees unless it
 * enters the device (drm_dev_enter()), which removal waits for.  Every
 * call must answer 0 with a sane reply or -ENODEV, every file must see
 * the removal, and the kernel log must stay clean (the VM runner checks
 * it; a use-after-free shows under --kasan).  The race window is narrow:
 * this test finds the bug only sometimes.
 */
#define RACE_WORKERS 4
#define RACE_CYCLES 8

struct race_worker {
	atomic_int slot;   /* a file handed over by the main thread, or -1 */
	atomic_bool busy;  /* has a file that has not seen -ENODEV yet */
	atomic_bool *stop;
	unsigned long long mem_total;
	unsigned long ok, enodev, bad_errno, bad_reply;
	int last_errno;
	struct kt_thread t;
};

static void race_worker_fn(void *arg)
{
	struct race_worker *w = arg;
	int fd = -1;

	while (!atomic_load(w->stop)) {
		struct drm_hmmgpu_get_info info;

		if (fd < 0) {
			fd = atomic_exchange(&w->slot, -1);
			if (fd < 0) {
				sched_yield();
				continue;
			}
		}
		memset(&info, 0, sizeof(info));
		if (ioctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, &info) == 0) {
			w->ok++;
			if (info.abi_version != HMMGPU_ABI_VERSION ||
			    info.device_index != 0 ||
			    info.mem_total != w->mem_total ||
			    info.mem_free > info.mem_total ||
			    !info.copy_channels ||
			    (info.copy_engine != HMMGPU_COPY_ENGINE_SOFTWARE &&
			     info.copy_engine != HMMGPU_COPY_ENGINE_DMAENGINE))
				w->bad_reply++;
		} else if (errno == ENODEV) {
			w->enodev++;
			close(fd);
			fd = -1;
			atomic_store(&w->busy, false);
		} else {
			w->bad_errno++;
			w->last_errno = errno;
		}
	}
	if (fd >= 0)
		close(fd);
}

TEST_TIMEOUT(get_info_races_unbind, 300)
{
	unsigned long long mem = kt_module_param("mem_mib") << 20;
	unsigned long handed = 0, ok = 0, enodev = 0, bad_errno = 0;
	unsigned long bad_reply = 0;
	struct race_worker w[RACE_WORKERS];
	struct drm_hmmgpu_get_info info = { 0 };
	atomic_bool stop = false;
	int fd;

	for (int i = 0; i < RACE_WORKERS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		atomic_init(&w[i].slot, -1);
		atomic_init(&w[i].busy, false);
		w[i].stop = &stop;
		w[i].mem_total = mem;
		kt_start(&w[i].t, race_worker_fn, &w[i]);
	}
	for (int cycle = 0; cycle < RACE_CYCLES; cycle++) {
		int waited = 0;
		bool busy;

		for (int i = 0; i < RACE_WORKERS; i++) {
			atomic_store(&w[i].busy, true);
			atomic_store(&w[i].slot, kt_open_device(0));
			handed++;
		}
		/* unbind at a different point of the workers' loops each time */
		usleep(20000 + cycle * 7000);
		ASSERT_EQ(kt_unbind_device(0), 0);
		/* each file sees the removal, then the device comes back */
		do {
			busy = false;
			for (int i = 0; i < RACE_WORKERS; i++)
				busy |= atomic_load(&w[i].busy);
			if (busy)
				usleep(1000);
		} while (busy && ++waited < 10000);
		ASSERT_FALSE(busy);
		ASSERT_EQ(kt_bind_device(0), 0);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < RACE_WORKERS; i++) {
		kt_join(&w[i].t);
		ok += w[i].ok;
		enodev += w[i].enodev;
		bad_errno += w[i].bad_errno;
		bad_reply += w[i].bad_reply;
		if (w[i].bad_errno)
			TH_LOG("worker %d: last unexpected errno %d (%s)", i,
			       w[i].last_errno, strerror(w[i].last_errno));
	}
	TH_LOG("%d cycles: %lu GET_INFO answered, %lu -ENODEV, %lu files",
	       RACE_CYCLES, ok, enodev, handed);
	ASSERT_EQ(bad_errno, 0);
	ASSERT_EQ(bad_reply, 0);
	/* exactly one -ENODEV per file: after it the file is closed */
	ASSERT_EQ(enodev, handed);
	ASSERT_GT(ok, 0);

	/* and the device that came back is whole */
	fd = kt_open_device(0);
	ASSERT_EQ(drmIoctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, &info), 0);
	ASSERT_EQ(info.device_index, 0);
	ASSERT_EQ(info.mem_total, mem);
	ASSERT_EQ(info.mem_free, mem);
	close(fd);
}

TEST(module_unload_and_reload)
{
	const char *ko = getenv("HMMGPU_KO");
	unsigned int ndev = kt_module_param("num_devices");
	unsigned int mib = kt_module_param("mem_mib");
	const char *pci = kt_pci_param(); /* read before the unload */
	struct drm_hmmgpu_get_info info = { 0 };
	char params[128];
	int fd;

	if (!ko)
		SKIP("HMMGPU_KO does not name the module file");

	/* an open file holds the module */
	fd = kt_open_device(0);
	ASSERT_ERRNO(syscall(SYS_delete_module, "hmmgpu", O_NONBLOCK),
		     EWOULDBLOCK);
	ASSERT_EQ(drmIoctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, &info), 0);
	close(fd);

	ASSERT_EQ(syscall(SYS_delete_module, "hmmgpu", O_NONBLOCK), 0);
	ASSERT_EQ(access("/sys/module/hmmgpu", F_OK), -1);
	ASSERT_EQ(count_hmmgpu_nodes(), 0);

	snprintf(params, sizeof(params), "num_devices=%u mem_mib=%u pci=%s",
		 ndev, mib, pci);
	ASSERT_EQ(kt_load_hmmgpu(params), 0);
	ASSERT_EQ(count_hmmgpu_nodes(), ndev);
}

TEST(module_rejects_bad_parameters)
{
	const char *ko = getenv("HMMGPU_KO");
	unsigned int ndev = kt_module_param("num_devices");
	unsigned int mib = kt_module_param("mem_mib");
	const char *pci = kt_pci_param(); /* read before the unload */
	char params[128];

	if (!ko)
		SKIP("HMMGPU_KO does not name the module file");
	ASSERT_EQ(kt_load_hmmgpu(""), -EEXIST);

	ASSERT_EQ(syscall(SYS_delete_module, "hmmgpu", O_NONBLOCK), 0);
	ASSERT_EQ(kt_load_hmmgpu("num_devices=0"), -EINVAL);
	ASSERT_EQ(kt_load_hmmgpu("num_devices=9"), -EINVAL);
	ASSERT_EQ(kt_load_hmmgpu("mem_mib=0"), -EINVAL);
	ASSERT_EQ(access("/sys/module/hmmgpu", F_OK), -1);
	ASSERT_EQ(count_hmmgpu_nodes(), 0);

	snprintf(params, sizeof(params), "num_devices=%u mem_mib=%u pci=%s",
		 ndev, mib, pci);
	ASSERT_EQ(kt_load_hmmgpu(params), 0);
	ASSERT_EQ(count_hmmgpu_nodes(), ndev);
}

/* A counter of /proc/vmstat, or -1. */
static long long vmstat(const char *name)
{
	char key[64];
	long long v, found = -1;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return -1;
	while (fscanf(f, "%63s %lld", key, &v) == 2)
		if (!strcmp(key, name))
			found = v;
	fclose(f);
	return found;
}

/* MemTotal of /proc/meminfo, in MiB. */
static unsigned long long mem_total_mib(void)
{
	char key[64];
	unsigned long long kib = 0, v;
	FILE *f = fopen("/proc/meminfo", "r");

	ASSERT_TRUE(f != NULL);
	while (fscanf(f, "%63s %llu kB ", key, &v) == 2)
		if (!strcmp(key, "MemTotal:"))
			kib = v;
	fclose(f);
	ASSERT_GT(kib, 0);
	return kib >> 10;
}

/*
 * Device memory is backed by system RAM reserved at load: asking for more
 * than the machine has fails the load with ENOMEM at once, and the OOM
 * killer never runs (it used to, against the machine's processes, before
 * the allocation failed).
 */
TEST(module_rejects_more_memory_than_ram)
{
	const char *ko = getenv("HMMGPU_KO");
	unsigned int ndev = kt_module_param("num_devices");
	unsigned int mib = kt_module_param("mem_mib");
	const char *pci = kt_pci_param(); /* read before the unload */
	unsigned long long ram = mem_total_mib();
	long long ooms = vmstat("oom_kill");
	char params[128];

	if (!ko)
		SKIP("HMMGPU_KO does not name the module file");
	ASSERT_EQ(syscall(SYS_delete_module, "hmmgpu", O_NONBLOCK), 0);
	snprintf(params, sizeof(params), "num_devices=1 mem_mib=%llu",
		 ram + 64);
	ASSERT_EQ(kt_load_hmmgpu(params), -ENOMEM);
	/* each fits, together they do not */
	snprintf(params, sizeof(params), "num_devices=2 mem_mib=%llu",
		 ram * 3 / 4);
	ASSERT_EQ(kt_load_hmmgpu(params), -ENOMEM);
	ASSERT_EQ(access("/sys/module/hmmgpu", F_OK), -1);
	ASSERT_EQ(count_hmmgpu_nodes(), 0);
	ASSERT_EQ(vmstat("oom_kill"), ooms);

	snprintf(params, sizeof(params), "num_devices=%u mem_mib=%u pci=%s",
		 ndev, mib, pci);
	ASSERT_EQ(kt_load_hmmgpu(params), 0);
	ASSERT_EQ(count_hmmgpu_nodes(), ndev);
}

TEST_MAIN()
