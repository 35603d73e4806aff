// SPDX-License-Identifier: MIT
/*
 * harness_fixture.c - tests with known outcomes, run by test_harness to
 * check that the harness reports passes, failures, crashes, skips and
 * time-outs as such.  Not a test of its own.
 */
#include "harness.h"

#include <signal.h>
#include <unistd.h>

TEST(passes)
{
	ASSERT_EQ(1 + 1, 2);
	ASSERT_STREQ("a", "a");
}

TEST(fails_an_assertion)
{
	ASSERT_EQ(1 + 1, 3);
}

TEST(fails_errno_check)
{
	ASSERT_ERRNO(close(-1), ENOENT);
}

TEST(crashes)
{
	raise(SIGSEGV);
}

TEST(skips)
{
	SKIP("on purpose");
}

TEST_TIMEOUT(hangs, 1)
{
	sleep(30);
}

TEST_MAIN()
