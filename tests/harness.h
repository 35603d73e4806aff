/* SPDX-License-Identifier: MIT */
/*
 * harness.h - a small kselftest-style test harness with TAP output.
 *
 *   TEST(name) { ASSERT_EQ(f(), 0); }
 *   TEST_MAIN()
 *
 * Every test runs in a child process of its own, so a crash, a signal or a
 * failed assertion ends that test only.  A test passes when its child exits
 * 0, is skipped when it calls SKIP() (exit status 77), and fails otherwise
 * or when it runs longer than its timeout (HMMT_TIMEOUT seconds by
 * default, TEST_TIMEOUT(name, seconds) to change it).
 *
 * The program prints TAP version 13 and exits 0 when no test failed, 1
 * otherwise, 77 when every test was skipped.  Arguments name the tests to
 * run (all when none); -l lists them.
 */
#ifndef HMM_TESTS_HARNESS_H
#define HMM_TESTS_HARNESS_H

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HMMT_TIMEOUT 120
#define HMMT_SKIP_STATUS 77

struct hmmt_test {
	const char *name;
	void (*fn)(void);
	unsigned int timeout;
	struct hmmt_test *next;
};

void hmmt_register(struct hmmt_test *t);
int hmmt_main(int argc, char **argv);

#define HMMT_DEFINE(tname, secs)                                             \
	static void hmmt_fn_##tname(void);                                   \
	static struct hmmt_test hmmt_t_##tname = {                           \
		.name = #tname, .fn = hmmt_fn_##tname, .timeout = (secs) };  \
	__attribute__((constructor)) static void hmmt_reg_##tname(void)      \
	{                                                                    \
		hmmt_register(&hmmt_t_##tname);                              \
	}                                                                    \
	static void hmmt_fn_##tname(void)

#define TEST(tname) HMMT_DEFINE(tname, HMMT_TIMEOUT)
#define TEST_TIMEOUT(tname, secs) HMMT_DEFINE(tname, secs)

#define TEST_MAIN()                                                          \
	int main(int argc, char **argv)                                      \
	{                                                                    \
		return hmmt_main(argc, argv);                                \
	}

/* Diagnostics are TAP comments; they go to stdout with the results. */
#define TH_LOG(...)                                                          \
	do {                                                                 \
		printf("# ");                                                \
		printf(__VA_ARGS__);                                         \
		printf("\n");                                                \
		fflush(stdout);                                              \
	} while (0)

#define SKIP(...)                                                            \
	do {                                                                 \
		printf("# SKIP: ");                                          \
		printf(__VA_ARGS__);                                         \
		printf("\n");                                                \
		fflush(stdout);                                              \
		exit(HMMT_SKIP_STATUS);                                      \
	} while (0)

#define HMMT_FAIL(...)                                                       \
	do {                                                                 \
		printf("# %s:%d: ", __FILE__, __LINE__);                     \
		printf(__VA_ARGS__);                                         \
		printf("\n");                                                \
		fflush(stdout);                                              \
		exit(1);                                                     \
	} while (0)

#define HMMT_CMP(a, op, b)                                                   \
	do {                                                                 \
		long long hmmt_a = (long long)(a);                           \
		long long hmmt_b = (long long)(b);                           \
		if (!(hmmt_a op hmmt_b))                                     \
			HMMT_FAIL("expected %s %s %s (%lld %s %lld)", #a,    \
				  #op, #b, hmmt_a, #op, hmmt_b);             \
	} while (0)

#define ASSERT_EQ(a, b) HMMT_CMP(a, ==, b)
#define ASSERT_NE(a, b) HMMT_CMP(a, !=, b)
#define ASSERT_LT(a, b) HMMT_CMP(a, <, b)
#define ASSERT_LE(a, b) HMMT_CMP(a, <=, b)
#define ASSERT_GT(a, b) HMMT_CMP(a, >, b)
#define ASSERT_GE(a, b) HMMT_CMP(a, >=, b)
#define ASSERT_TRUE(c) HMMT_CMP(!!(c), ==, 1)
#define ASSERT_FALSE(c) HMMT_CMP(!!(c), ==, 0)
#define ASSERT_STREQ(a, b)                                                   \
	do {                                                                 \
		const char *hmmt_sa = (a), *hmmt_sb = (b);                   \
		if (!hmmt_sa || !hmmt_sb || strcmp(hmmt_sa, hmmt_sb))         \
			HMMT_FAIL("expected %s == %s (\"%s\" vs \"%s\")",    \
				  #a, #b, hmmt_sa ? hmmt_sa : "(null)",      \
				  hmmt_sb ? hmmt_sb : "(null)");             \
	} while (0)
/* For calls returning -1 and setting errno. */
#define ASSERT_ERRNO(call, err)                                              \
	do {                                                                 \
		errno = 0;                                                   \
		long hmmt_r = (long)(call);                                  \
		if (hmmt_r != -1 || errno != (err))                          \
			HMMT_FAIL("expected %s to fail with %s, got %ld "    \
				  "errno %d (%s)", #call, #err, hmmt_r,      \
				  errno, strerror(errno));                   \
	} while (0)

#endif /* HMM_TESTS_HARNESS_H */
