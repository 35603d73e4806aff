// SPDX-License-Identifier: MIT
/*
 * log.c - HMM_LOG, and the clock every part of libhmm uses.
 *
 * The library prints nothing unless HMM_LOG is set (hmm.h):
 *   HMM_LOG=error|warn|info|debug   that level and the ones above it
 *   HMM_LOG=1                       info
 *   HMM_LOG= or HMM_LOG=0           nothing
 * Any other value means info, so that a misspelt level still shows the
 * messages that were asked for rather than hiding them; the value is
 * matched without regard to case ("warning" is accepted for warn).
 * HMM_LOG is read once, at the first message.
 *
 * Each message is one line, written with a single write(2) so that lines
 * of concurrent threads do not interleave.
 */
#define _GNU_SOURCE
#include "hmm_private.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 512
#define LOG_SILENT (-1)

static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static int log_level = LOG_SILENT; /* written once, under log_once */

static int parse_level(const char *v)
{
	static const struct {
		const char *name;
		int level;
	} names[] = {
		{ "error", HMM_LOG_ERROR }, { "warn", HMM_LOG_WARN },
		{ "warning", HMM_LOG_WARN }, { "info", HMM_LOG_INFO },
		{ "debug", HMM_LOG_DEBUG }, { "1", HMM_LOG_INFO },
		{ "0", LOG_SILENT },
	};

	if (!v || !*v)
		return LOG_SILENT;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcasecmp(v, names[i].name))
			return names[i].level;
	return HMM_LOG_INFO;
}

static void log_init(void)
{
	log_level = parse_level(getenv("HMM_LOG"));
}

void hmm__log(enum hmm_log_level level, const char *fmt, ...)
{
	static const char *const tag[] = {
		[HMM_LOG_ERROR] = "error: ",
		[HMM_LOG_WARN] = "warning: ",
		[HMM_LOG_INFO] = "",
		[HMM_LOG_DEBUG] = "debug: ",
	};
	char line[LOG_LINE_MAX];
	int saved = errno;
	va_list ap;
	int n, m;

	pthread_once(&log_once, log_init);
	if ((int)level > log_level)
		goto out;

	n = snprintf(line, sizeof(line), "libhmm: %s",
		     (unsigned int)level < sizeof(tag) / sizeof(tag[0]) ?
			     tag[level] : "");
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof(line) - 2) /* truncated: keep room for '\n' */
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* nothing sensible to do when stderr is gone */
	if (write(STDERR_FILENO, line, n) < 0)
		goto out;
out:
	errno = saved;
}

uint64_t hmm__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
