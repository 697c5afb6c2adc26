/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xtest.h - glue between our test programs and the Check framework.
 *
 * Each test program builds one Check Suite and hands it, with its name, to
 * xtest_main(), which runs it (every test in its own forked process), prints
 * "<name>: N passed, N failed" and appends the counts to the file named by
 * $XTEST_SUMMARY, where tests/run-suite adds them up.
 */
#ifndef XTEST_H
#define XTEST_H

#include <check.h>
#include <stddef.h>

enum xtest_needs {
	XTEST_NEEDS_NOTHING = 1,
	/*
	 * The suite talks to /dev/xpmem. Without it the suite is skipped, with
	 * the reason printed, when run by hand; when $XPMEM_REQUIRE_DEVICE=1 or
	 * $CI is set (the VM harness and CI), it runs anyway and fails.
	 */
	XTEST_NEEDS_DEVICE,
};

int xtest_main(const char *name, Suite *suite, enum xtest_needs needs);

/*
 * Record that test @test is not added to the suite because the running
 * kernel lacks what it exercises (@why). It is printed and counted as
 * skipped. Call it while building the suite, before xtest_main().
 */
void xtest_skip(const char *test, const char *why);

/* A TCase with a timeout that suits TCG guests (Check's default is 4 s). */
TCase *xtest_tcase(Suite *suite, const char *name);

/* Helpers shared by the test programs. */

/* Is every byte of [buf, buf + len) equal to @v? */
int xtest_all_bytes_are(const volatile void *buf, size_t len, unsigned char v);

/* A counter of /sys/kernel/debug/xpmem/stats, or -1 if it cannot be read. */
long xtest_stat(const char *name);

/* Write @text to the file @path (sysfs, procfs): 0, or -1 with errno. */
int xtest_write_file(const char *path, const char *text);

/* The number at the start of the file @path, or -1. */
long xtest_read_long(const char *path);

/* The number after @key (a "key value" line) in @path, or -1. */
long xtest_read_key(const char *path, const char *key);

/*
 * The number of kB that /proc/self/smaps gives under @key ("Rss:",
 * "AnonHugePages:") for the mapping that contains @addr, or -1.
 */
long xtest_smaps_kb(const void *addr, const char *key);

/* Is the running kernel's release at least @major.@minor? */
int xtest_kernel_at_least(int major, int minor);

#endif /* XTEST_H */
