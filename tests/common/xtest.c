// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * xtest.c - see xtest.h.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "xpmem.h"
#include "xtest.h"

/* Seconds per test, before CK_TIMEOUT_MULTIPLIER. */
#define XTEST_TIMEOUT 30

static int env_is_set(const char *name)
{
	const char *v = getenv(name);

	return v && *v && strcmp(v, "0") != 0;
}

static void summary_append(const char *suite, int passed, int failed, int skipped)
{
	const char *path = getenv("XTEST_SUMMARY");
	FILE *f;

	if (!path || !*path)
		return;
	f = fopen(path, "a");
	if (!f) {
		perror(path);
		return;
	}
	fprintf(f, "%s %d %d %d\n", suite, passed, failed, skipped);
	fclose(f);
}

static int xtest_skipped;

void xtest_skip(const char *test, const char *why)
{
	printf("SKIP %s: %s\n", test, why);
	xtest_skipped++;
}

TCase *xtest_tcase(Suite *suite, const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_set_timeout(tc, XTEST_TIMEOUT);
	suite_add_tcase(suite, tc);
	return tc;
}

int xtest_main(const char *name, Suite *suite, enum xtest_needs needs)
{
	SRunner *sr;
	int run, failed;

	if (needs == XTEST_NEEDS_DEVICE && access(XPMEM_DEV_PATH, F_OK) != 0 &&
	    !env_is_set("XPMEM_REQUIRE_DEVICE") && !env_is_set("CI")) {
		printf("%s: SKIPPED: %s is missing (the xpmem module is not loaded). "
		       "Run the suite in a VM with tests/run-tests.\n",
		       name, XPMEM_DEV_PATH);
		printf("%s: 0 passed, 0 failed, 1 skipped\n", name);
		summary_append(name, 0, 0, 1);
		return 77;
	}

	sr = srunner_create(suite);
	srunner_run_all(sr, CK_ENV);
	run = srunner_ntests_run(sr);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);

	if (xtest_skipped)
		printf("%s: %d passed, %d failed, %d skipped\n", name, run - failed, failed,
		       xtest_skipped);
	else
		printf("%s: %d passed, %d failed\n", name, run - failed, failed);
	summary_append(name, run - failed, failed, xtest_skipped);
	return failed || run == 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

int xtest_all_bytes_are(const volatile void *buf, size_t len, unsigned char v)
{
	const volatile unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

long xtest_stat(const char *name)
{
	char key[64];
	long value, found = -1;
	FILE *f = fopen("/sys/kernel/debug/xpmem/stats", "r");

	if (!f)
		return -1;
	while (found < 0 && fscanf(f, "%63s %ld", key, &value) == 2)
		if (strcmp(key, name) == 0)
			found = value;
	fclose(f);
	return found;
}

int xtest_write_file(const char *path, const char *text)
{
	size_t len = strlen(text);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

long xtest_read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

long xtest_read_key(const char *path, const char *key)
{
	FILE *f = fopen(path, "r");
	char name[64];
	long v, found = -1;

	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld", name, &v) == 2) {
		if (strcmp(name, key) == 0) {
			found = v;
			break;
		}
	}
	fclose(f);
	return found;
}

long xtest_smaps_kb(const void *addr, const char *key)
{
	char line[256];
	unsigned long start, end;
	long kb = -1;
	int in = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2)
			in = (uintptr_t)addr >= start && (uintptr_t)addr < end;
		else if (in && strncmp(line, key, strlen(key)) == 0 &&
			 sscanf(line + strlen(key), "%ld", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

int xtest_kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return 0;
	return ma > major || (ma == major && mi >= minor);
}
