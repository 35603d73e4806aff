// SPDX-License-Identifier: MIT
/*
 * kt_common.c - helpers for the kernel tests.
 */
#define _GNU_SOURCE
#include "kt_common.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <xf86drm.h>

static int kt_read_param(const char *name, char *buf, size_t len)
{
	char path[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/module/hmmgpu/parameters/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	return 0;
}

unsigned long long kt_module_param(const char *name)
{
	char buf[64];
	int ret;

	ret = kt_read_param(name, buf, sizeof(buf));
	if (ret == -ENOENT)
		SKIP("hmmgpu is not loaded (parameter %s missing)", name);
	if (ret)
		HMMT_FAIL("read hmmgpu parameter %s: %s", name, strerror(-ret));
	return strtoull(buf, NULL, 0);
}

unsigned long long kt_module_param_or(const char *name,
				      unsigned long long def)
{
	char buf[64];
	int ret;

	if (access("/sys/module/hmmgpu", F_OK))
		SKIP("hmmgpu is not loaded");
	ret = kt_read_param(name, buf, sizeof(buf));
	if (ret == -ENOENT)
		return def;
	if (ret)
		HMMT_FAIL("read hmmgpu parameter %s: %s", name, strerror(-ret));
	return strtoull(buf, NULL, 0);
}

int kt_module_bool(const char *name)
{
	char buf[64];

	if (kt_read_param(name, buf, sizeof(buf)))
		return -1;
	return buf[0] == 'Y' || buf[0] == 'y' || buf[0] == '1';
}

bool kt_device_thp_kernel(void)
{
	unsigned int major = 0, minor = 0;
	struct utsname u;

	if (uname(&u) || sscanf(u.release, "%u.%u", &major, &minor) != 2)
		return false;
	return major > 6 || (major == 6 && minor >= 19);
}

static int kt_thp_saved = -1;

void kt_device_thp_set(bool on)
{
	kt_thp_saved = kt_module_bool("device_thp");
	if (kt_thp_saved >= 0 && kt_thp_saved != on)
		kt_sysfs_write("/sys/module/hmmgpu/parameters/device_thp",
			       on ? "1" : "0");
}

void kt_device_thp_restore(void)
{
	if (kt_thp_saved >= 0)
		kt_sysfs_write("/sys/module/hmmgpu/parameters/device_thp",
			       kt_thp_saved ? "1" : "0");
}

int kt_sysfs_write(const char *path, const char *text)
{
	size_t len = strlen(text);
	int fd, ret = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len)
		ret = -errno;
	close(fd);
	return ret;
}

int kt_open_device(unsigned int index)
{
	struct hmm_node nodes[KT_MAX_NODES];
	int n, fd = -1;

	(void)kt_module_param("num_devices"); /* skips when not loaded */
	n = hmm_node_scan(nodes, KT_MAX_NODES, NULL);
	if (n < 0)
		HMMT_FAIL("hmm_node_scan: %s", strerror(-n));
	for (int i = 0; i < n; i++) {
		if (nodes[i].index == index) {
			fd = nodes[i].fd;
			nodes[i].fd = -1;
		}
	}
	hmm_node_close_all(nodes, n);
	if (fd < 0)
		HMMT_FAIL("no hmmgpu device with index %u among %d", index, n);
	return fd;
}

int kt_count_devices(void)
{
	struct hmm_node nodes[KT_MAX_NODES];
	int n = hmm_node_scan(nodes, KT_MAX_NODES, NULL);

	if (n < 0)
		HMMT_FAIL("hmm_node_scan: %s", strerror(-n));
	hmm_node_close_all(nodes, n);
	return n;
}

size_t kt_page_size(void)
{
	static size_t ps;

	if (!ps)
		ps = (size_t)sysconf(_SC_PAGESIZE);
	return ps;
}

/* --- ioctl wrappers ------------------------------------------------------ */

void kt_get_info(int fd, struct drm_hmmgpu_get_info *info)
{
	memset(info, 0, sizeof(*info));
	if (drmIoctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, info))
		HMMT_FAIL("GET_INFO: %s", strerror(errno));
}

unsigned long long kt_mem_total(int fd)
{
	struct drm_hmmgpu_get_info info;

	kt_get_info(fd, &info);
	return info.mem_total;
}

unsigned long long kt_mem_free(int fd)
{
	struct drm_hmmgpu_get_info info;

	kt_get_info(fd, &info);
	return info.mem_free;
}

unsigned long long kt_wait_mem_free(int fd, unsigned long long want,
				    unsigned int timeout_ms)
{
	unsigned long long got = kt_mem_free(fd);

	for (unsigned int waited = 0; got != want && waited < timeout_ms;
	     waited += 10) {
		usleep(10000);
		got = kt_mem_free(fd);
	}
	return got;
}

#define KT_POISON 0xa5a5a5a5a5a5a5a5ULL

int kt_migrate(int fd, const void *p, size_t size, unsigned int target,
	       struct drm_hmmgpu_migrate *res)
{
	struct drm_hmmgpu_migrate m = {
		.start = (uintptr_t)p,
		.size = size,
		.target = target,
		.moved = KT_POISON,
		.already = KT_POISON,
		.skipped = KT_POISON,
	};
	int ret = 0;

	if (drmIoctl(fd, DRM_IOCTL_HMMGPU_MIGRATE, &m))
		ret = -errno;
	if (res)
		*res = m;
	return ret;
}

int kt_residency(int fd, const void *p, size_t npages, uint8_t *loc,
		 uint64_t count[4])
{
	struct drm_hmmgpu_residency r = {
		.start = (uintptr_t)p,
		.npages = npages,
		.count = { KT_POISON, KT_POISON, KT_POISON, KT_POISON },
	};
	uint8_t *own = NULL;
	int ret = 0;

	if (!loc) {
		own = malloc(npages);
		if (!own)
			HMMT_FAIL("out of memory for %zu residency bytes",
				  npages);
		loc = own;
	}
	r.locations = (uintptr_t)loc;
	if (drmIoctl(fd, DRM_IOCTL_HMMGPU_RESIDENCY, &r))
		ret = -errno;
	if (count)
		memcpy(count, r.count, sizeof(r.count));
	free(own);
	return ret;
}

static const char *kt_where_name(unsigned int where)
{
	static const char *const names[] = { "NONE", "SYSTEM", "THIS_DEVICE",
					     "OTHER_DEVICE" };

	return where < 4 ? names[where] : "(invalid)";
}

/* Residency of @npages pages into a new buffer, sums checked. */
static uint8_t *kt_residency_checked(int fd, const void *p, size_t npages)
{
	uint64_t count[4], sums[4] = { 0 };
	uint8_t *loc = malloc(npages);
	int ret;

	if (!loc)
		HMMT_FAIL("out of memory for %zu residency bytes", npages);
	ret = kt_residency(fd, p, npages, loc, count);
	if (ret)
		HMMT_FAIL("RESIDENCY of %zu pages at %p: %s", npages, p,
			  strerror(-ret));
	for (size_t i = 0; i < npages; i++) {
		if (loc[i] > HMMGPU_RESIDENCY_OTHER_DEVICE)
			HMMT_FAIL("RESIDENCY: page %zu has invalid value %u",
				  i, loc[i]);
		sums[loc[i]]++;
	}
	for (int i = 0; i < 4; i++)
		if (sums[i] != count[i])
			HMMT_FAIL("RESIDENCY: count[%s] is %llu but %llu "
				  "bytes say so", kt_where_name(i),
				  (unsigned long long)count[i],
				  (unsigned long long)sums[i]);
	return loc;
}

long kt_residency_mismatch(int fd, const void *p, size_t npages,
			   unsigned int want)
{
	uint8_t *loc = kt_residency_checked(fd, p, npages);
	long bad = -1;

	for (size_t i = 0; i < npages; i++) {
		if (loc[i] != want) {
			size_t nbad = 0;

			for (size_t j = i; j < npages; j++)
				nbad += loc[j] != want;
			TH_LOG("residency: page %zu of %zu is %s, expected "
			       "%s (%zu pages are not)", i, npages,
			       kt_where_name(loc[i]), kt_where_name(want),
			       nbad);
			bad = (long)i;
			break;
		}
	}
	free(loc);
	return bad;
}

size_t kt_residency_count(int fd, const void *p, size_t npages,
			  unsigned int where)
{
	uint8_t *loc = kt_residency_checked(fd, p, npages);
	size_t n = 0;

	for (size_t i = 0; i < npages; i++)
		n += loc[i] == where;
	free(loc);
	return n;
}

int kt_stats(int fd, unsigned int scope, struct drm_hmmgpu_stats *st)
{
	memset(st, 0xa5, sizeof(*st));
	st->scope = scope;
	st->flags = 0;
	st->extensions = 0;
	if (drmIoctl(fd, DRM_IOCTL_HMMGPU_STATS, st))
		return -errno;
	return 0;
}

void kt_get_stats(int fd, unsigned int scope, struct drm_hmmgpu_stats *st)
{
	int ret = kt_stats(fd, scope, st);

	if (ret)
		HMMT_FAIL("STATS scope %u: %s", scope, strerror(-ret));
}

/* --- memory -------------------------------------------------------------- */

void *kt_map(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		HMMT_FAIL("mmap %zu bytes: %s", size, strerror(errno));
	return p;
}

void kt_no_khugepaged(void *p, size_t size)
{
	if (madvise(p, size, MADV_NOHUGEPAGE))
		HMMT_FAIL("madvise(MADV_NOHUGEPAGE) of %zu bytes: %s", size,
			  strerror(errno));
}

void *kt_map_aligned(size_t size, size_t align)
{
	size_t span = size + align;
	uintptr_t raw, start;
	void *p;

	if (align <= kt_page_size())
		return kt_map(size);
	p = mmap(NULL, span, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		HMMT_FAIL("mmap %zu bytes: %s", span, strerror(errno));
	raw = (uintptr_t)p;
	start = (raw + align - 1) & ~(uintptr_t)(align - 1);
	if (start > raw)
		kt_unmap(p, start - raw);
	if (raw + span > start + size)
		kt_unmap((void *)(start + size), raw + span - (start + size));
	return (void *)start;
}

void kt_unmap(void *p, size_t size)
{
	if (munmap(p, size))
		HMMT_FAIL("munmap %p + %zu: %s", p, size, strerror(errno));
}

uint64_t kt_pattern(uint64_t seed, size_t word)
{
	/* splitmix64 of (seed, word) */
	uint64_t z = seed * 0x9e3779b97f4a7c15ULL + word + 1;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint8_t kt_pattern_byte(uint64_t seed, size_t off)
{
	uint64_t w = kt_pattern(seed, off / 8);
	uint8_t bytes[8];

	memcpy(bytes, &w, sizeof(bytes));
	return bytes[off % 8];
}

void kt_fill(void *p, size_t size, uint64_t seed)
{
	uint8_t *b = p;
	size_t words = size / 8;

	for (size_t i = 0; i < words; i++) {
		uint64_t w = kt_pattern(seed, i);

		memcpy(b + i * 8, &w, 8);
	}
	for (size_t off = words * 8; off < size; off++)
		b[off] = kt_pattern_byte(seed, off);
}

void kt_fill_range(void *base, size_t off, size_t len, uint64_t seed)
{
	uint8_t *b = base;
	size_t end = off + len;
	size_t pos = off;

	while (pos < end) {
		if (pos % 8 == 0 && end - pos >= 8) {
			uint64_t w = kt_pattern(seed, pos / 8);

			memcpy(b + pos, &w, 8);
			pos += 8;
			continue;
		}
		b[pos] = kt_pattern_byte(seed, pos);
		pos++;
	}
}

ssize_t kt_check_range(const void *base, size_t off, size_t len,
		       uint64_t seed)
{
	const uint8_t *b = base;
	size_t end = off + len;
	size_t pos = off;

	/* byte by byte up to a word boundary, then word by word */
	while (pos < end) {
		if (pos % 8 == 0 && end - pos >= 8) {
			uint64_t w;

			memcpy(&w, b + pos, 8);
			if (w == kt_pattern(seed, pos / 8)) {
				pos += 8;
				continue;
			}
		}
		if (b[pos] != kt_pattern_byte(seed, pos)) {
			size_t nbad = 0;

			for (size_t i = pos; i < end; i++)
				nbad += b[i] != kt_pattern_byte(seed, i);
			TH_LOG("data: byte %zu (page %zu) is 0x%02x, expected "
			       "0x%02x; %zu of %zu bytes checked are wrong",
			       pos, pos / kt_page_size(), b[pos],
			       kt_pattern_byte(seed, pos), nbad, len);
			return (ssize_t)pos;
		}
		pos++;
	}
	return -1;
}

ssize_t kt_check(const void *p, size_t size, uint64_t seed)
{
	return kt_check_range(p, 0, size, seed);
}

ssize_t kt_check_zero(const void *p, size_t size)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < size; i++) {
		if (b[i]) {
			TH_LOG("data: byte %zu (page %zu) is 0x%02x, expected "
			       "zero", i, i / kt_page_size(), b[i]);
			return (ssize_t)i;
		}
	}
	return -1;
}

/* --- device views --------------------------------------------------------- */

#ifdef DRM_IOCTL_HMMGPU_VIEW_REGISTER

int kt_view_register(int fd, const void *p, size_t size, uint32_t *handle,
		     uint64_t *offset)
{
	struct drm_hmmgpu_view_register r = {
		.start = (uintptr_t)p,
		.size = size,
		.handle = (uint32_t)KT_POISON,
		.offset = KT_POISON,
	};
	int ret = 0;

	if (drmIoctl(fd, DRM_IOCTL_HMMGPU_VIEW_REGISTER, &r))
		ret = -errno;
	if (handle)
		*handle = r.handle;
	if (offset)
		*offset = r.offset;
	return ret;
}

int kt_view_unregister(int fd, uint32_t handle)
{
	struct drm_hmmgpu_view_unregister u = { .handle = handle };

	return drmIoctl(fd, DRM_IOCTL_HMMGPU_VIEW_UNREGISTER, &u) ? -errno : 0;
}

int kt_view_advise(int fd, uint32_t handle, uint32_t advice, uint64_t value)
{
	struct drm_hmmgpu_view_advise a = {
		.handle = handle,
		.advice = advice,
		.value = value,
	};

	return drmIoctl(fd, DRM_IOCTL_HMMGPU_VIEW_ADVISE, &a) ? -errno : 0;
}

void *kt_view_mmap(int fd, uint64_t offset, size_t size)
{
	void *v = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		       (off_t)offset);

	return v == MAP_FAILED ? NULL : v;
}

void kt_view_open(struct kt_view *v, int fd, void *cpu, size_t size)
{
	int ret;

	memset(v, 0, sizeof(*v));
	v->fd = fd;
	v->cpu = cpu;
	v->size = size;
	ret = kt_view_register(fd, cpu, size, &v->handle, &v->offset);
	if (ret == -EOPNOTSUPP) {
		struct drm_hmmgpu_get_info info;

		kt_get_info(fd, &info);
		if (!(info.caps & HMMGPU_CAP_VIEW))
			SKIP("no device view on this kernel and CPU (GET_INFO caps lacks HMMGPU_CAP_VIEW)");
	}
	if (ret)
		HMMT_FAIL("VIEW_REGISTER %p + %zu: %s", cpu, size,
			  strerror(-ret));
	if (!v->handle)
		HMMT_FAIL("VIEW_REGISTER returned handle 0");
	if (v->offset % kt_page_size())
		HMMT_FAIL("VIEW_REGISTER returned unaligned offset 0x%llx",
			  (unsigned long long)v->offset);
	v->dev = kt_view_mmap(fd, v->offset, size);
	if (!v->dev)
		HMMT_FAIL("mmap of view %u (offset 0x%llx, %zu bytes): %s",
			  v->handle, (unsigned long long)v->offset, size,
			  strerror(errno));
}

void kt_view_close(struct kt_view *v)
{
	int ret;

	if (v->dev)
		kt_unmap(v->dev, v->size);
	v->dev = NULL;
	ret = kt_view_unregister(v->fd, v->handle);
	if (ret)
		HMMT_FAIL("VIEW_UNREGISTER %u: %s", v->handle, strerror(-ret));
}

#endif /* DRM_IOCTL_HMMGPU_VIEW_REGISTER */

/* --- device execution and fatal faults ------------------------------------ */

static void *kt_thread_main(void *arg)
{
	struct kt_thread *t = arg;

	t->fn(t->arg);
	return NULL;
}

void kt_start(struct kt_thread *t, void (*fn)(void *), void *arg)
{
	int ret;

	t->fn = fn;
	t->arg = arg;
	ret = pthread_create(&t->id, NULL, kt_thread_main, t);
	if (ret)
		HMMT_FAIL("pthread_create: %s", strerror(ret));
}

void kt_join(struct kt_thread *t)
{
	int ret = pthread_join(t->id, NULL);

	if (ret)
		HMMT_FAIL("pthread_join: %s", strerror(ret));
}

static __thread sigjmp_buf kt_probe_env;
static __thread volatile sig_atomic_t kt_probe_armed;
static __thread void *volatile kt_probe_addr;

static void kt_probe_handler(int sig, siginfo_t *si, void *uctx)
{
	(void)uctx;
	if (!kt_probe_armed) {
		/* not ours: the access runs again and kills as usual */
		signal(sig, SIG_DFL);
		return;
	}
	kt_probe_armed = 0;
	kt_probe_addr = si->si_addr;
	siglongjmp(kt_probe_env, sig);
}

static void kt_probe_install_once(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = kt_probe_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL) || sigaction(SIGSEGV, &sa, NULL))
		HMMT_FAIL("sigaction: %s", strerror(errno));
}

static void kt_probe_install(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, kt_probe_install_once);
}

int kt_probe(void *p, bool write, uint64_t *val)
{
	volatile uint64_t *w = p;
	int sig;

	kt_probe_install();
	sig = sigsetjmp(kt_probe_env, 1);
	if (sig) {
		if (kt_probe_addr != p)
			HMMT_FAIL("%s at %p while probing %p",
				  strsignal(sig), kt_probe_addr, p);
		return sig;
	}
	kt_probe_armed = 1;
	if (write)
		*w = *val;
	else
		*val = *w;
	kt_probe_armed = 0;
	return 0;
}

/* --- processes ----------------------------------------------------------- */

int kt_wait_child(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			HMMT_FAIL("waitpid %d: %s", (int)pid, strerror(errno));
	}
	if (WIFEXITED(status)) {
		if (WEXITSTATUS(status))
			TH_LOG("child %d exited with status %d", (int)pid,
			       WEXITSTATUS(status));
		return WEXITSTATUS(status);
	}
	TH_LOG("child %d killed by signal %d (%s)", (int)pid,
	       WTERMSIG(status), strsignal(WTERMSIG(status)));
	return 128 + WTERMSIG(status);
}

void kt_pipe_signal(int fd)
{
	char c = 'x';

	if (write(fd, &c, 1) != 1)
		HMMT_FAIL("pipe write: %s", strerror(errno));
}

void kt_pipe_wait(int fd)
{
	ssize_t n;
	char c;

	do {
		n = read(fd, &c, 1);
	} while (n < 0 && errno == EINTR);
	if (n != 1)
		HMMT_FAIL("pipe read: %s", n ? strerror(errno) : "EOF");
}

void kt_build_path(const char *rel, char *path, size_t len)
{
	char self[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		HMMT_FAIL("readlink /proc/self/exe: %s", strerror(errno));
	self[n] = '\0';
	/* BUILD/tests/kernel/test_x -> BUILD */
	for (int i = 0; i < 3; i++) {
		slash = strrchr(self, '/');
		if (!slash)
			HMMT_FAIL("%s is not in a build tree", self);
		*slash = '\0';
	}
	if (snprintf(path, len, "%s/%s", self, rel) >= (int)len)
		HMMT_FAIL("path of %s too long", rel);
	if (access(path, X_OK))
		SKIP("%s was not built", rel);
}

/* Reads what is left in @fd (from its start) into a new string. */
static char *kt_slurp_fd(int fd)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	ssize_t r;

	if (!buf || lseek(fd, 0, SEEK_SET) < 0)
		HMMT_FAIL("reading a program's output: %s", strerror(errno));
	while ((r = read(fd, buf + n, cap - 1 - n)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			HMMT_FAIL("reading a program's output: %s",
				  strerror(errno));
		}
		n += (size_t)r;
		if (n + 1 == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			if (!buf)
				HMMT_FAIL("out of memory");
		}
	}
	buf[n] = '\0';
	close(fd);
	return buf;
}

/* Logs each line of @text as "# @tag| line". */
static void kt_log_lines(const char *tag, const char *text)
{
	while (*text) {
		int len = (int)strcspn(text, "\n");

		TH_LOG("%s| %.*s", tag, len, text);
		text += len;
		if (*text)
			text++;
	}
}

void kt_run(char *const argv[], struct kt_output *r)
{
	char opath[] = "/tmp/kt-run-out-XXXXXX";
	char epath[] = "/tmp/kt-run-err-XXXXXX";
	int ofd = mkostemp(opath, O_CLOEXEC), efd = mkostemp(epath, O_CLOEXEC);
	pid_t pid;

	if (ofd < 0 || efd < 0)
		HMMT_FAIL("a file in /tmp for a program's output: %s",
			  strerror(errno));
	unlink(opath);
	unlink(epath);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		HMMT_FAIL("fork: %s", strerror(errno));
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		if (null >= 0)
			dup2(null, 0);
		dup2(ofd, 1);
		dup2(efd, 2);
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	r->status = kt_wait_child(pid);
	r->out = kt_slurp_fd(ofd);
	r->err = kt_slurp_fd(efd);
	kt_log_lines("out", r->out);
	kt_log_lines("err", r->err);
}

void kt_output_free(struct kt_output *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

/* --- module and devices -------------------------------------------------- */

static char kt_orig_params[1024];
static bool kt_have_orig;
static pid_t kt_owner;
static unsigned long kt_unbound; /* bit i: hmmgpu.i unbound by us */

/* "name=value ..." of every readable parameter of the loaded module. */
static int kt_current_params(char *buf, size_t len)
{
	DIR *dir = opendir("/sys/module/hmmgpu/parameters");
	struct dirent *de;
	size_t used = 0;

	if (!dir)
		return -errno;
	buf[0] = '\0';
	while ((de = readdir(dir))) {
		char val[256];
		int n;

		if (de->d_name[0] == '.')
			continue;
		if (kt_read_param(de->d_name, val, sizeof(val)))
			continue;
		if (!val[0] || !strcmp(val, "(null)"))
			continue;
		n = snprintf(buf + used, len - used, "%s%s=%s",
			     used ? " " : "", de->d_name, val);
		if (n < 0 || (size_t)n >= len - used) {
			closedir(dir);
			return -E2BIG;
		}
		used += n;
	}
	closedir(dir);
	return 0;
}

static void kt_at_exit(void)
{
	if (getpid() != kt_owner)
		return;
	/* whatever the test left open must not hold the module */
	close_range(3, ~0U, 0);
	for (unsigned int i = 0; i < 8 * sizeof(kt_unbound); i++) {
		if (kt_unbound & (1UL << i))
			kt_bind_device(i);
	}
	if (kt_have_orig) {
		char cur[sizeof(kt_orig_params)];
		int ret = 0;

		if (!access("/sys/module/hmmgpu", F_OK) &&
		    !kt_current_params(cur, sizeof(cur)) &&
		    !strcmp(cur, kt_orig_params))
			return;
		if (!access("/sys/module/hmmgpu", F_OK))
			ret = kt_unload_hmmgpu();
		if (!ret)
			ret = kt_load_hmmgpu(kt_orig_params);
		if (ret)
			printf("# kt: could not restore hmmgpu (%s): %s\n",
			       kt_orig_params, strerror(-ret));
	}
	fflush(stdout);
}

static void kt_arm_exit(void)
{
	if (kt_owner == getpid())
		return;
	kt_owner = getpid();
	atexit(kt_at_exit);
}

static const char *kt_module_file(void)
{
	const char *ko = getenv("HMMGPU_KO");

	if (!ko || access(ko, R_OK))
		SKIP("HMMGPU_KO does not name the module file");
	return ko;
}

static void kt_remember_params(void)
{
	int ret;

	if (kt_have_orig)
		return;
	ret = kt_current_params(kt_orig_params, sizeof(kt_orig_params));
	if (ret == -ENOENT)
		SKIP("hmmgpu is not loaded");
	if (ret)
		HMMT_FAIL("reading hmmgpu parameters: %s", strerror(-ret));
	kt_have_orig = true;
	kt_arm_exit();
}

int kt_unload_hmmgpu(void)
{
	if (getpid() != kt_owner || !kt_have_orig) {
		(void)kt_module_file();
		kt_remember_params();
	}
	for (int tries = 0;; tries++) {
		if (!syscall(SYS_delete_module, "hmmgpu", O_NONBLOCK))
			return 0;
		if ((errno != EWOULDBLOCK && errno != EAGAIN) || tries >= 500)
			return -errno;
		usleep(20000);
	}
}

int kt_load_hmmgpu(const char *params)
{
	const char *ko = getenv("HMMGPU_KO");
	int fd, ret;

	if (!ko)
		return -ENOENT;
	fd = open(ko, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, params, 0) ? -errno : 0;
	close(fd);
	return ret;
}

void kt_reload_hmmgpu(const char *params)
{
	char cur[sizeof(kt_orig_params)], all[sizeof(cur) + 256];
	int ret;

	(void)kt_module_file();
	kt_remember_params();
	ret = kt_current_params(cur, sizeof(cur));
	if (ret)
		HMMT_FAIL("reading hmmgpu parameters: %s", strerror(-ret));
	/* a later name=value wins over an earlier one */
	snprintf(all, sizeof(all), "%s %s", cur, params);
	ret = kt_unload_hmmgpu();
	if (ret)
		HMMT_FAIL("unloading hmmgpu: %s", strerror(-ret));
	ret = kt_load_hmmgpu(all);
	if (ret)
		HMMT_FAIL("loading hmmgpu with \"%s\": %s", all,
			  strerror(-ret));
}

void kt_restore_hmmgpu(void)
{
	char cur[sizeof(kt_orig_params)];
	int ret;

	if (!kt_have_orig)
		return;
	if (!access("/sys/module/hmmgpu", F_OK)) {
		if (!kt_current_params(cur, sizeof(cur)) &&
		    !strcmp(cur, kt_orig_params))
			return;
		ret = kt_unload_hmmgpu();
		if (ret)
			HMMT_FAIL("unloading hmmgpu: %s", strerror(-ret));
	}
	ret = kt_load_hmmgpu(kt_orig_params);
	if (ret)
		HMMT_FAIL("loading hmmgpu with \"%s\": %s", kt_orig_params,
			  strerror(-ret));
	ret = kt_current_params(cur, sizeof(cur));
	if (ret || strcmp(cur, kt_orig_params))
		HMMT_FAIL("hmmgpu reloaded with \"%s\" reports \"%s\"",
			  kt_orig_params, ret ? strerror(-ret) : cur);
}

/* bus device names of the devices kt_unbind_device() unbound, by index */
static char kt_unbound_bus[8 * sizeof(unsigned long)][64];

int kt_device_bus(unsigned int index, char *bus, size_t len)
{
	char path[PATH_MAX + 16], dev[PATH_MAX], sub[PATH_MAX];
	struct dirent *e;
	int ret = -ENODEV;
	DIR *d = opendir("/sys/class/drm");

	if (!d)
		return -errno;
	while (ret == -ENODEV && (e = readdir(d))) {
		struct drm_hmmgpu_get_info info;
		int fd;

		if (strncmp(e->d_name, "renderD", 7))
			continue;
		snprintf(path, sizeof(path), "/dev/dri/%s", e->d_name);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		memset(&info, 0, sizeof(info));
		if (drmIoctl(fd, DRM_IOCTL_HMMGPU_GET_INFO, &info) ||
		    info.device_index != index) {
			close(fd);
			continue;
		}
		close(fd);
		snprintf(path, sizeof(path), "/sys/class/drm/%s/device",
			 e->d_name);
		if (!realpath(path, dev))
			break;
		snprintf(path, sizeof(path), "%s/subsystem", dev);
		if (!realpath(path, sub))
			break;
		ret = snprintf(bus, len, "%s:%s", strrchr(sub, '/') + 1,
			       strrchr(dev, '/') + 1) < (int)len ? 0 :
			      -ENAMETOOLONG;
	}
	closedir(d);
	return ret;
}

/* @op ("bind", "unbind") of bus device @bus ("pci:0000:00:04.0") */
static int kt_bind_op(const char *op, const char *bus)
{
	char path[160];
	const char *name = strchr(bus, ':');

	if (!name)
		return -EINVAL;
	snprintf(path, sizeof(path), "/sys/bus/%.*s/drivers/hmmgpu/%s",
		 (int)(name - bus), bus, op);
	return kt_sysfs_write(path, name + 1);
}

int kt_unbind_device(unsigned int index)
{
	char bus[64];
	int ret;

	kt_arm_exit();
	ret = kt_device_bus(index, bus, sizeof(bus));
	if (!ret)
		ret = kt_bind_op("unbind", bus);
	if (!ret && index < 8 * sizeof(kt_unbound)) {
		kt_unbound |= 1UL << index;
		snprintf(kt_unbound_bus[index], sizeof(kt_unbound_bus[index]),
			 "%s", bus);
	}
	return ret;
}

int kt_bind_device(unsigned int index)
{
	char bus[64];
	int ret;

	if (index < 8 * sizeof(kt_unbound) && kt_unbound_bus[index][0])
		snprintf(bus, sizeof(bus), "%s", kt_unbound_bus[index]);
	else
		snprintf(bus, sizeof(bus), "platform:hmmgpu.%u", index);
	ret = kt_bind_op("bind", bus);
	if (!ret && index < 8 * sizeof(kt_unbound)) {
		kt_unbound &= ~(1UL << index);
		kt_unbound_bus[index][0] = '\0';
	}
	return ret;
}

const char *kt_pci_param(void)
{
	static char value[256];
	static bool known;
	FILE *f;

	if (known)
		return value;
	f = fopen("/sys/module/hmmgpu/parameters/pci", "r");
	if (!f)
		return "";
	if (!fgets(value, sizeof(value), f))
		value[0] = '\0';
	fclose(f);
	value[strcspn(value, "\n")] = '\0';
	known = true;
	return value;
}

int kt_pci_device(char *name, size_t len)
{
	char bus[64];
	int n = kt_count_devices();

	for (int i = 0; i < n; i++) {
		if (!kt_device_bus(i, bus, sizeof(bus)) &&
		    !strncmp(bus, "pci:", 4)) {
			snprintf(name, len, "%s", bus + 4);
			return i;
		}
	}
	return -ENODEV;
}

/* --- device execution ----------------------------------------------------- */

enum dev_op { DEV_CHECK, DEV_CHECK_ZERO, DEV_FILL, DEV_PROBE };

struct dev_job {
	enum dev_op op;
	char *base;
	size_t off, len;
	uint64_t seed;
	bool write;     /* DEV_PROBE */
	uint64_t val;   /* DEV_PROBE: written, or read back */
	ssize_t bad;    /* DEV_CHECK*: -1 or the first bad offset */
	int sig;        /* DEV_PROBE: 0 or the signal the access got */
};

static struct {
	pid_t owner;
	pthread_t thread;
	sem_t go, done;
	struct dev_job *job;
} dev;

static void dev_job_run(struct dev_job *j)
{
	switch (j->op) {
	case DEV_CHECK:
		j->bad = kt_check_range(j->base, j->off, j->len, j->seed);
		break;
	case DEV_CHECK_ZERO:
		j->bad = kt_check_zero(j->base + j->off, j->len);
		if (j->bad >= 0)
			j->bad += j->off;
		break;
	case DEV_FILL:
		kt_fill_range(j->base, j->off, j->len, j->seed);
		break;
	case DEV_PROBE:
		j->sig = kt_probe(j->base + j->off, j->write, &j->val);
		break;
	}
}

static void *dev_main(void *arg)
{
	(void)arg;
	for (;;) {
		while (sem_wait(&dev.go))
			;
		dev_job_run(dev.job);
		sem_post(&dev.done);
	}
	return NULL;
}

static void dev_submit(struct dev_job *j)
{
	if (dev.owner != getpid()) {
		int ret;

		if (sem_init(&dev.go, 0, 0) || sem_init(&dev.done, 0, 0))
			HMMT_FAIL("sem_init: %s", strerror(errno));
		ret = pthread_create(&dev.thread, NULL, dev_main, NULL);
		if (ret)
			HMMT_FAIL("pthread_create: %s", strerror(ret));
		dev.owner = getpid();
	}
	dev.job = j;
	sem_post(&dev.go);
	while (sem_wait(&dev.done))
		;
}

ssize_t kt_dev_check(char *base, size_t off, size_t len, uint64_t seed)
{
	struct dev_job j = { .op = DEV_CHECK, .base = base, .off = off,
			     .len = len, .seed = seed };

	dev_submit(&j);
	return j.bad;
}

ssize_t kt_dev_check_zero(char *base, size_t off, size_t len)
{
	struct dev_job j = { .op = DEV_CHECK_ZERO, .base = base, .off = off,
			     .len = len };

	dev_submit(&j);
	return j.bad;
}

void kt_dev_fill(char *base, size_t off, size_t len, uint64_t seed)
{
	struct dev_job j = { .op = DEV_FILL, .base = base, .off = off,
			     .len = len, .seed = seed };

	dev_submit(&j);
}

int kt_dev_probe(char *base, size_t off, bool write, uint64_t *val)
{
	struct dev_job j = { .op = DEV_PROBE, .base = base, .off = off,
			     .write = write, .val = *val };

	dev_submit(&j);
	*val = j.val;
	return j.sig;
}
