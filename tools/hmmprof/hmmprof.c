// SPDX-License-Identifier: MIT
/*
 * hmmprof.c - entry point: `hmmprof run` and `hmmprof top`.
 */
#define _GNU_SOURCE
#include "config.h"
#include "hmmprof.h"

#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
"usage: hmmprof COMMAND [OPTIONS]\n"
"\n"
"Profiler of hmmgpu heterogeneous memory: migrations, faults, evictions.\n"
"\n"
"Commands:\n"
"  run [OPTIONS] [--] PROGRAM [ARGS...]\n"
"                 run PROGRAM and print its unified-memory profile\n"
"                 (--json, --csv, --svg, --html for more; run --help)\n"
"  top [-i SECONDS] [-n COUNT]\n"
"                 live view of every device (top --help)\n"
"  help           this text\n"
"  version        the version\n"
"\n"
"See docs/hmmprof.md for what every number means.\n");
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	if (!cmd) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(cmd, "run"))
		return hp_cmd_run(argc - 1, argv + 1);
	if (!strcmp(cmd, "top"))
		return hp_cmd_top(argc - 1, argv + 1);
	if (!strcmp(cmd, "help") || !strcmp(cmd, "-h") ||
	    !strcmp(cmd, "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("hmmprof %s\n", HMM_VERSION);
		return 0;
	}
	hp_err("unknown command '%s' (hmmprof help lists them)", cmd);
	return 2;
}
