/* SPDX-License-Identifier: MIT */
/*
 * kt_common.h - helpers for the kernel tests, which run inside the test VM
 * (tools/vm/hmmvm) with hmmgpu.ko loaded.
 *
 * Helpers that cannot go wrong in a correct test fail the test themselves
 * (HMMT_FAIL); helpers whose failure is what a test checks return 0 or a
 * negative errno.
 */
#ifndef HMM_KT_COMMON_H
#define HMM_KT_COMMON_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../harness.h"
#include "drm_node.h"

#define KT_MAX_NODES 16

/* Reads /sys/module/hmmgpu/parameters/@name as an unsigned number. */
unsigned long long kt_module_param(const char *name);

/* Like kt_module_param(), but @def when hmmgpu has no parameter @name. */
unsigned long long kt_module_param_or(const char *name,
				      unsigned long long def);

/* hmmgpu's boolean parameter @name: 1 (Y), 0 (N), -1 when it has none. */
int kt_module_bool(const char *name);

/* Whether the running kernel has device-private THP (6.19 and later). */
bool kt_device_thp_kernel(void);

/*
 * For test programs that need the device_thp parameter one way while
 * they run: at file scope, KT_WITHOUT_DEVICE_THP() (expected counts that
 * assume 4 KiB device pages, a CPU fault bringing back fault_kib) or
 * KT_WITH_DEVICE_THP() (test_thp; on kernels without device THP the
 * parameter changes nothing).  It is set back when the program exits.
 */
void kt_device_thp_set(bool on);
void kt_device_thp_restore(void);
#define KT_DEVICE_THP_(on)                                                   \
	__attribute__((constructor)) static void kt_thp_set_(void)           \
	{                                                                    \
		kt_device_thp_set(on);                                       \
	}                                                                    \
	__attribute__((destructor)) static void kt_thp_restore_(void)        \
	{                                                                    \
		kt_device_thp_restore();                                     \
	}
#define KT_WITHOUT_DEVICE_THP() KT_DEVICE_THP_(false)
#define KT_WITH_DEVICE_THP() KT_DEVICE_THP_(true)

/* Writes @text to the sysfs file @path; 0 or -errno. */
int kt_sysfs_write(const char *path, const char *text);

/*
 * Opens hmmgpu device @index (SKIP when the module is not loaded, fails
 * the test when that device does not exist); returns the file descriptor.
 */
int kt_open_device(unsigned int index);

/* Number of hmmgpu render nodes found now (opened and closed again). */
int kt_count_devices(void);

/* Page size of the running kernel. */
size_t kt_page_size(void);

/* --- ioctl wrappers ------------------------------------------------------ */

/* GET_INFO on @fd; fails the test when it fails. */
void kt_get_info(int fd, struct drm_hmmgpu_get_info *info);

/* GET_INFO mem_total / mem_free of the device behind @fd. */
unsigned long long kt_mem_total(int fd);
unsigned long long kt_mem_free(int fd);

/*
 * Waits up to @timeout_ms for mem_free of @fd's device to reach @want;
 * returns the last value read (the caller asserts on it).
 */
unsigned long long kt_wait_mem_free(int fd, unsigned long long want,
				    unsigned int timeout_ms);

/*
 * MIGRATE [@p, @p + @size) to @target (HMMGPU_MIGRATE_TO_*).  The (out)
 * fields are poisoned before the call so that a driver that does not
 * write them is caught.  @res (may be NULL) receives the struct after the
 * call.  Returns 0 or -errno.
 */
int kt_migrate(int fd, const void *p, size_t size, unsigned int target,
	       struct drm_hmmgpu_migrate *res);

/*
 * RESIDENCY of @npages pages from @p into @loc (NULL: a buffer of the
 * helper's own) and the per-location sums into @count (may be NULL).
 * Returns 0 or -errno.
 */
int kt_residency(int fd, const void *p, size_t npages, uint8_t *loc,
		 uint64_t count[4]);

/*
 * Checks that every page of @npages pages from @p is at @want
 * (HMMGPU_RESIDENCY_*), and that the ioctl's sums agree with the bytes.
 * Returns -1 when so, else the index of the first page that is not (and
 * logs where it is).  Fails the test when the ioctl fails.
 */
long kt_residency_mismatch(int fd, const void *p, size_t npages,
			   unsigned int want);

/* Number of pages of @npages from @p that are at @where. */
size_t kt_residency_count(int fd, const void *p, size_t npages,
			  unsigned int where);

/*
 * Asserts, at the caller's line, that MIGRATE succeeds with exactly these
 * counts.
 */
#define KT_EXPECT_MIGRATE(fd, p, size, target, nmoved, nalready, nskipped)  \
	do {                                                                 \
		struct drm_hmmgpu_migrate kt_m_;                             \
		ASSERT_EQ(kt_migrate(fd, p, size, target, &kt_m_), 0);       \
		ASSERT_EQ(kt_m_.moved, nmoved);                              \
		ASSERT_EQ(kt_m_.already, nalready);                          \
		ASSERT_EQ(kt_m_.skipped, nskipped);                          \
	} while (0)

/* Asserts that every page of @npages from @p is at @where. */
#define KT_EXPECT_WHERE(fd, p, npages, where)                                \
	ASSERT_EQ(kt_residency_mismatch(fd, p, npages, where), -1)

/* Asserts that @size bytes at @p hold the pattern of @seed. */
#define KT_EXPECT_DATA(p, size, seed) ASSERT_EQ(kt_check(p, size, seed), -1)

/* STATS of @scope (HMMGPU_STATS_*) into @st; 0 or -errno. */
int kt_stats(int fd, unsigned int scope, struct drm_hmmgpu_stats *st);

/* Same, failing the test when the ioctl fails. */
void kt_get_stats(int fd, unsigned int scope, struct drm_hmmgpu_stats *st);

/* --- memory -------------------------------------------------------------- */

/* Anonymous private read-write mapping of @size bytes; fails the test. */
void *kt_map(size_t size);

/* The same, its start aligned to @align (a power of two). */
void *kt_map_aligned(size_t size, size_t align);

/* munmap() that fails the test when it fails. */
void kt_unmap(void *p, size_t size);

/*
 * Keeps khugepaged away from [@p, @p + @size) (MADV_NOHUGEPAGE; huge
 * pages already there stay).  For tests that count device faults
 * exactly: a collapse attempt invalidates the device's view of the range
 * whether or not it collapses anything, and the device faults once more.
 */
void kt_no_khugepaged(void *p, size_t size);

/*
 * Test data: a pseudo-random pattern that depends on @seed and on the
 * offset from the start of the buffer it was written to, so that a page
 * swapped with another, a stale page or a zeroed page are all caught.
 */
uint64_t kt_pattern(uint64_t seed, size_t word);
uint8_t kt_pattern_byte(uint64_t seed, size_t off);

/* Fills @size bytes at @p with the pattern of @seed. */
void kt_fill(void *p, size_t size, uint64_t seed);

/*
 * Fills @len bytes at @base + @off with what kt_fill(@base, ..., @seed)
 * writes there: the counterpart of kt_check_range().
 */
void kt_fill_range(void *base, size_t off, size_t len, uint64_t seed);

/*
 * Checks @size bytes at @p against the pattern of @seed; returns -1 when
 * they match, else the offset of the first bad byte (logged with what was
 * found and what was expected).
 */
ssize_t kt_check(const void *p, size_t size, uint64_t seed);

/*
 * Checks @len bytes at @base + @off against the pattern @base was filled
 * with; returns -1 or the offset (from @base) of the first bad byte.
 */
ssize_t kt_check_range(const void *base, size_t off, size_t len,
		       uint64_t seed);

/* Returns -1 when @size bytes at @p are all zero, else the first offset. */
ssize_t kt_check_zero(const void *p, size_t size);

/* --- device views --------------------------------------------------------- */

/* Only with a uapi header that has the device view (ABI version 3). */
#ifdef DRM_IOCTL_HMMGPU_VIEW_REGISTER

/*
 * VIEW_REGISTER [@p, @p + @size) on @fd.  The (out) fields are poisoned
 * before the call; @handle and @offset (may be NULL) receive them.
 * Returns 0 or -errno.
 */
int kt_view_register(int fd, const void *p, size_t size, uint32_t *handle,
		     uint64_t *offset);

/* VIEW_UNREGISTER @handle; 0 or -errno. */
int kt_view_unregister(int fd, uint32_t handle);

/* VIEW_ADVISE @handle (HMMGPU_ADVICE_*, @value); 0 or -errno. */
int kt_view_advise(int fd, uint32_t handle, uint32_t advice, uint64_t value);

/*
 * mmap(MAP_SHARED, read-write) of @size bytes of @fd at @offset; the
 * address, or NULL with errno set.
 */
void *kt_view_mmap(int fd, uint64_t offset, size_t size);

/*
 * A view of [@cpu, @cpu + @size) registered on @fd and mapped in full:
 * kt_view_open() fails the test when that does not work;
 * kt_view_close() unmaps and unregisters it (failing the test when
 * either fails).
 */
struct kt_view {
	int fd;
	void *cpu;    /* the CPU range */
	char *dev;    /* the mapped view: dev + off is cpu + off to the device */
	size_t size;
	uint32_t handle;
	uint64_t offset;
};

void kt_view_open(struct kt_view *v, int fd, void *cpu, size_t size);
void kt_view_close(struct kt_view *v);

#endif /* DRM_IOCTL_HMMGPU_VIEW_REGISTER */

/* --- threads and fatal faults --------------------------------------------- */

/*
 * Runs @fn(@arg) on a new thread of the process (failing the test when it
 * cannot be created); kt_join() waits for it.
 */
struct kt_thread {
	pthread_t id;
	void (*fn)(void *);
	void *arg;
};
void kt_start(struct kt_thread *t, void (*fn)(void *), void *arg);
void kt_join(struct kt_thread *t);

/*
 * Reads (@write false) or writes @*val to the 8 bytes at @p in the calling
 * thread, catching SIGBUS and SIGSEGV.  Returns 0 when the access
 * completed (a read stores what it read in @*val), else the signal
 * number; the signal must name @p as the faulting address, else the test
 * fails.  A SIGBUS or SIGSEGV outside kt_probe() kills the process as
 * usual.
 */
int kt_probe(void *p, bool write, uint64_t *val);

/* --- device execution ----------------------------------------------------- */

/*
 * "The device" of a test process: one thread, started at the first job
 * (again in a forked child, which has none of its parent's threads), that
 * runs one job at a time and touches memory only through the view or
 * device pointers it is given.  One long-lived thread rather than one per
 * job, so that no thread stack is mapped where a test just unmapped its
 * memory.  Each call below runs one job on it and waits.
 */

/* Checks [@off, @off + @len) of @base against @seed: -1 or the first bad
 * offset (from @base). */
ssize_t kt_dev_check(char *base, size_t off, size_t len, uint64_t seed);

/* Checks [@off, @off + @len) of @base is zero: -1 or the first bad offset
 * (from @base). */
ssize_t kt_dev_check_zero(char *base, size_t off, size_t len);

/* Writes the pattern of @seed to [@off, @off + @len) of @base. */
void kt_dev_fill(char *base, size_t off, size_t len, uint64_t seed);

/* kt_probe() of @base + @off on the device thread: 0 or the signal. */
int kt_dev_probe(char *base, size_t off, bool write, uint64_t *val);

/* --- processes ----------------------------------------------------------- */

/*
 * Waits for child @pid; returns 0 when it exited 0, else logs how it
 * ended and returns its exit status, or 128 + signal.
 */
int kt_wait_child(pid_t pid);

/* Writes / reads one byte on a pipe; fail the test on error (EOF too). */
void kt_pipe_signal(int fd);
void kt_pipe_wait(int fd);

/*
 * The path of @rel ("samples/vecadd") in the build tree this test program
 * was built in (the programs run from there, in the VM as on a host), in
 * @path; SKIP when that program was not built.
 */
void kt_build_path(const char *rel, char *path, size_t len);

/* What a program run by kt_run() did. */
struct kt_output {
	int status; /* exit status, or 128 + signal when killed */
	char *out;  /* its standard output, NUL-terminated */
	char *err;  /* its standard error, NUL-terminated */
};

/*
 * Runs @argv (NULL-terminated; argv[0] a path) with no standard input,
 * waits for it and captures its output into @r (free with
 * kt_output_free()); logs both as TAP comments, so that a failing test
 * shows what the program said.
 */
void kt_run(char *const argv[], struct kt_output *r);
void kt_output_free(struct kt_output *r);

/* --- module and devices -------------------------------------------------- */

/*
 * Unloads hmmgpu (delete_module, retried while something still holds it
 * for up to a few seconds); 0 or -errno.  The first call of a test
 * process remembers the module's parameters, and they are restored when
 * the process exits (see kt_restore_hmmgpu()).  SKIP when HMMGPU_KO does
 * not name the module file.
 */
int kt_unload_hmmgpu(void);

/* finit_module() of HMMGPU_KO with @params; 0 or -errno. */
int kt_load_hmmgpu(const char *params);

/*
 * Reloads hmmgpu with its current parameters overridden by @params
 * ("mem_mib=16"); fails the test when that does not work.  Every hmmgpu
 * file of the process must be closed.
 */
void kt_reload_hmmgpu(const char *params);

/*
 * Brings hmmgpu back as it was before the test's first unload or reload
 * (nothing to do when no unload happened); fails the test when that does
 * not work.  Also runs at exit, after closing every file descriptor above
 * 2, so that a failing test does not leave the next one a changed module.
 */
void kt_restore_hmmgpu(void);

/*
 * The bus device of hmmgpu device @index, "subsystem:name" from sysfs
 * ("platform:hmmgpu.1", "pci:0000:00:04.0"); 0 or -errno (-ENODEV when
 * there is no such device).
 */
int kt_device_bus(unsigned int index, char *bus, size_t len);

/*
 * hmmgpu's pci parameter as the module had it loaded when first asked
 * ("all", a list of addresses, or ""), for loads that keep the
 * personality.
 */
const char *kt_pci_param(void);

/*
 * The first hmmgpu device that is a PCI device (PCI personality): its
 * index, and its PCI address in @name; -ENODEV when there is none.
 */
int kt_pci_device(char *name, size_t len);

/*
 * Unbinds / binds hmmgpu device @index from the hmmgpu driver of its bus
 * (platform or PCI); 0 or -errno.  An unbound device is bound again at
 * exit.  kt_bind_device() binds the bus device its kt_unbind_device()
 * unbound, or platform device hmmgpu.@index.
 */
int kt_unbind_device(unsigned int index);
int kt_bind_device(unsigned int index);

#endif /* HMM_KT_COMMON_H */
