// SPDX-License-Identifier: MIT
/*
 * error.c - hmm_strerror().
 */
#define _GNU_SOURCE
#include "hmm_private.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

HMM_EXPORT const char *hmm_strerror(int err)
{
	static __thread char buf[128];

	if (err < 0)
		err = -err;
	switch (err) {
	case 0:
		return "success";
	case ENODEV:
		return "no such hmmgpu device (is hmmgpu.ko loaded?)";
	default:
		/* GNU strerror_r returns a pointer, maybe not into buf */
		return strerror_r(err, buf, sizeof(buf));
	}
}
