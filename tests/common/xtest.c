// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * xtest.c - see xtest.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

	printf("%s: %d passed, %d failed\n", name, run - failed, failed);
	summary_append(name, run - failed, failed, 0);
	return failed || run == 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
