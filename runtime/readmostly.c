// SPDX-License-Identifier: MIT
/*
 * readmostly.c - lets the CPU write read-mostly memory while the devices
 * keep copies of it (docs/api.md, "Read-mostly").
 *
 * hmmgpu gives a device read of a read-mostly page a copy in device
 * memory only while no CPU write can reach the page without the driver
 * hearing of it first: in a mapping the CPU cannot write, or when
 * userfaultfd write-protects the page (DOC: Read-mostly in the driver).
 * The kernel tells a driver nothing of a CPU write through a writable
 * entry, so this file makes the entries of read-mostly memory
 * write-protected: it registers every read-mostly range of private
 * anonymous memory with one userfaultfd of the process, protects it, and
 * runs a thread that lifts the protection from a page when the CPU writes
 * there.  Lifting it invalidates the page, which makes the driver drop the
 * page's copies before the write goes on: nobody reads stale data.  A
 * lifted page is protected again once no write fault has come for
 * HMM_RM_QUIET_MS, so that the devices copy it again on their next read.
 *
 * Where userfaultfd cannot be had (no permission, an older kernel, the
 * range registered with another userfaultfd) nothing is armed: the advice
 * then gives copies of what the CPU may not write (mprotect(PROT_READ))
 * only, as before.  None of this is an error for the caller.
 *
 * fork(): the child's mappings are not registered (no UFFD_EVENT_FORK), and
 * it has no handler thread: hmm__rm_fork_child() forgets the parent's.
 */
#define _GNU_SOURCE
#include "hmm_private.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Linux 6.4: protection of pages not populated yet (markers) */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif

/* Quiet time after the last write fault before lifted pages are protected. */
#define HMM_RM_QUIET_MS 10
/* Lifted pages remembered; beyond, a page stays writable (and uncopied). */
#define HMM_RM_MAX_LIFTED 65536

static struct {
	pthread_mutex_t lock; /**< protects the fields below */
	bool tried;           /**< set up once, successfully or not */
	int uffd;             /**< -1: none */
	int stop[2];          /**< the thread stops when stop[0] is readable */
	pthread_t thread;
	/* the thread's own, unlocked */
	uintptr_t *lifted;
	size_t nlifted, cap;
} rm = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.uffd = -1,
	.stop = { -1, -1 },
};

/* A new userfaultfd with write protection, or -errno. */
static int uffd_open(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd, ret;

	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
#ifdef USERFAULTFD_IOC_NEW
	/* without the capability, /dev/userfaultfd may be open to us */
	if (fd < 0 && errno == EPERM) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev >= 0) {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW,
				   O_CLOEXEC | O_NONBLOCK);
			close(dev);
		}
	}
#endif
	if (fd < 0)
		return -errno;
	/*
	 * Where the kernel can, pages not populated yet are protected too:
	 * else the CPU's first write to one makes it writable without a
	 * fault, and it gets no copy until armed again.  A kernel without
	 * the feature refuses the request and takes another.
	 */
	api.features = UFFD_FEATURE_WP_UNPOPULATED;
	if (ioctl(fd, UFFDIO_API, &api)) {
		api = (struct uffdio_api){ .api = UFFD_API };
		if (ioctl(fd, UFFDIO_API, &api)) {
			ret = -errno;
			close(fd);
			return ret;
		}
	}
	if (!(api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		close(fd);
		return -EOPNOTSUPP;
	}
	return fd;
}

static int uffd_protect(int fd, uintptr_t start, size_t len, bool on)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = start, .len = len },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return ioctl(fd, UFFDIO_WRITEPROTECT, &wp) ? -errno : 0;
}

/* Remembers lifted page @page, to protect it again later. */
static void remember(uintptr_t page)
{
	if (rm.nlifted == rm.cap) {
		size_t cap = rm.cap ? rm.cap * 2 : 256;
		uintptr_t *v;

		if (cap > HMM_RM_MAX_LIFTED)
			return;
		v = realloc(rm.lifted, cap * sizeof(*v));
		if (!v)
			return;
		rm.lifted = v;
		rm.cap = cap;
	}
	rm.lifted[rm.nlifted++] = page;
}

/*
 * Protects the lifted pages again.  One that is gone or no longer
 * registered fails (ENOENT, EINVAL): there is nothing to protect.
 */
static void protect_lifted(int fd, size_t ps)
{
	for (size_t i = 0; i < rm.nlifted; i++)
		(void)uffd_protect(fd, rm.lifted[i], ps, true);
	rm.nlifted = 0;
}

/* The handler thread: lifts the protection where the CPU writes. */
static void *handler(void *arg)
{
	int fd = rm.uffd, stop = rm.stop[0];
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);

	(void)arg;
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = fd, .events = POLLIN },
			{ .fd = stop, .events = POLLIN },
		};
		struct uffd_msg msg;
		int n;

		n = poll(pfd, 2, rm.nlifted ? HMM_RM_QUIET_MS : -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || pfd[1].revents)
			break;
		if (!n) {
			protect_lifted(fd, ps);
			continue;
		}
		while (read(fd, &msg, sizeof(msg)) == (ssize_t)sizeof(msg)) {
			uintptr_t page;

			if (msg.event != UFFD_EVENT_PAGEFAULT)
				continue;
			page = msg.arg.pagefault.address & ~(uintptr_t)(ps - 1);
			/*
			 * Lifting wakes the writer; if that fails (the range
			 * went meanwhile), wake it anyway: its fault is
			 * retried and finds whatever is there now.
			 */
			if (uffd_protect(fd, page, ps, false)) {
				struct uffdio_range r = {
					.start = page,
					.len = ps,
				};

				(void)ioctl(fd, UFFDIO_WAKE, &r);
				continue;
			}
			remember(page);
		}
	}
	return NULL;
}

/* Opens the userfaultfd and starts the thread, once.  rm.lock held. */
static void setup(void)
{
	sigset_t all, old;
	int fd;

	rm.tried = true;
	fd = uffd_open();
	if (fd < 0) {
		hmm__log(HMM_LOG_DEBUG, "read-mostly: no userfaultfd write "
			 "protection (%s): copies only of read-only memory",
			 strerror(-fd));
		return;
	}
	if (pipe2(rm.stop, O_CLOEXEC)) {
		close(fd);
		return;
	}
	rm.uffd = fd;
	/* the application's signals are not for this thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&rm.thread, NULL, handler, NULL)) {
		hmm__log(HMM_LOG_WARN, "read-mostly: no handler thread: "
			 "copies only of read-only memory");
		close(rm.stop[0]);
		close(rm.stop[1]);
		close(fd);
		rm.uffd = -1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/**
 * hmm__rm_arm() - write-protects read-mostly range [@base, @base + @size).
 * @base: page aligned, private anonymous memory.
 * @size: page multiple.
 *
 * Return: 0, or -errno when the range is not armed (nothing changed).
 */
int hmm__rm_arm(uintptr_t base, size_t size)
{
	struct uffdio_register reg = {
		.range = { .start = base, .len = size },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	struct uffdio_range r = { .start = base, .len = size };
	int ret;

	pthread_mutex_lock(&rm.lock);
	if (!rm.tried)
		setup();
	if (rm.uffd < 0) {
		pthread_mutex_unlock(&rm.lock);
		return -EOPNOTSUPP;
	}
	if (ioctl(rm.uffd, UFFDIO_REGISTER, &reg)) {
		ret = -errno;
		goto out;
	}
	ret = uffd_protect(rm.uffd, base, size, true);
	if (ret)
		(void)ioctl(rm.uffd, UFFDIO_UNREGISTER, &r);
out:
	pthread_mutex_unlock(&rm.lock);
	if (ret)
		hmm__log(HMM_LOG_DEBUG, "read-mostly: %#" PRIxPTR "+%zu not "
			 "write-protected: %s", base, size, strerror(-ret));
	return ret;
}

/**
 * hmm__rm_disarm() - ends the write protection of an armed range.
 * @base: as armed.
 * @size: as armed.
 *
 * The kernel lifts the protection of every page (with an invalidation,
 * which drops their copies).
 */
void hmm__rm_disarm(uintptr_t base, size_t size)
{
	struct uffdio_range r = { .start = base, .len = size };

	pthread_mutex_lock(&rm.lock);
	if (rm.uffd >= 0 && ioctl(rm.uffd, UFFDIO_UNREGISTER, &r))
		hmm__log(HMM_LOG_DEBUG, "read-mostly: unregistering %#" PRIxPTR
			 "+%zu: %s", base, size, strerror(errno));
	pthread_mutex_unlock(&rm.lock);
}

/* In a fork() child: the parent's userfaultfd and thread are not ours. */
void hmm__rm_fork_child(void)
{
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;

	if (rm.uffd >= 0) {
		close(rm.uffd);
		close(rm.stop[0]);
		close(rm.stop[1]);
	}
	rm.uffd = -1;
	rm.stop[0] = rm.stop[1] = -1;
	rm.tried = false;
	rm.lifted = NULL;
	rm.nlifted = rm.cap = 0;
	rm.lock = fresh;
}

/*
 * At library shutdown: stops the thread and closes the userfaultfd, which
 * lifts the protection of every range still armed (none waits for a
 * handler that is gone).
 */
void hmm__rm_shutdown(void)
{
	pthread_mutex_lock(&rm.lock);
	if (rm.uffd >= 0) {
		if (write(rm.stop[1], "x", 1) == 1)
			pthread_join(rm.thread, NULL);
		close(rm.uffd);
		close(rm.stop[0]);
		close(rm.stop[1]);
		free(rm.lifted);
		rm.lifted = NULL;
		rm.nlifted = rm.cap = 0;
		rm.uffd = -1;
	}
	rm.tried = false;
	pthread_mutex_unlock(&rm.lock);
}
