// SPDX-License-Identifier: MIT
/*
 * error.c - hmm_strerror().
 *
 * The C library's message, except for the errnos whose generic text
 * would mislead about what libhmm meant by them.  A code the C library
 * does not know is "Unknown error N" with N as given, sign included.
 */
#define _GNU_SOURCE
#include "hmm_private.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

HMM_EXPORT const char *hmm_strerror(int err)
{
	HMM_KEEP_ERRNO();
	static __thread char buf[128];
	long e = err < 0 ? -(long)err : err; /* INT_MIN too */
	const char *msg;

	switch (e) {
	case 0:
		return "success";
	case ENODEV:
		return "no such hmmgpu device (is hmmgpu.ko loaded?)";
	case EEXIST:
		return "range overlaps memory that is already managed";
	case ENODATA:
		return "event was never recorded";
	case EBUSY:
		return "work has not completed yet";
	case EDEADLK:
		return "would wait for itself (called from its own stream's "
		       "work)";
	case EACCES:
		return "permission denied (is the user in the render group?)";
	case ENOMEM:
		return "out of memory (host memory, or device memory even "
		       "after eviction)";
	case EAGAIN:
		return "could not start a thread of the library; try again";
	case ESTALE:
		return "range moved by mremap() or unmapped: the library "
		       "forgot it and touched nothing at its old address";
	case ECHILD:
		return "stream or event of the parent process (not usable "
		       "after fork())";
	default:
		if (e > INT_MAX)
			break;
		/* GNU strerror_r returns a pointer, maybe not into buf */
		msg = strerror_r((int)e, buf, sizeof(buf));
		if (strncmp(msg, "Unknown error", 13))
			return msg;
		break;
	}
	snprintf(buf, sizeof(buf), "Unknown error %d", err);
	return buf;
}
