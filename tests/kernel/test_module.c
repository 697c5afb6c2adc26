// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_module.c - the module's lifetime as seen from user space.
 *
 * Needs the module and root (delete_module). tests/guest-suite runs it only
 * in the root pass of the VM run.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "xpmem.h"
#include "xtest.h"

START_TEST(module_version_is_the_package_version)
{
	char buf[64] = { 0 };
	FILE *f = fopen("/sys/module/xpmem/version", "r");

	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	ck_assert_str_eq(buf, PACKAGE_VERSION);
}
END_TEST

/* Each open file pins the module; closing it lets go. */
START_TEST(open_files_hold_a_module_reference)
{
	const char *refcnt = "/sys/module/xpmem/refcnt";
	long before = xtest_read_long(refcnt);
	int fd1 = open(XPMEM_DEV_PATH, O_RDWR), fd2 = open(XPMEM_DEV_PATH, O_RDWR);

	ck_assert_int_ge(before, 0);
	ck_assert(fd1 >= 0 && fd2 >= 0);
	ck_assert_int_eq(xtest_read_long(refcnt), before + 2);
	close(fd1);
	ck_assert_int_eq(xtest_read_long(refcnt), before + 1);
	close(fd2);
	ck_assert_int_eq(xtest_read_long(refcnt), before);
}
END_TEST

START_TEST(module_cannot_be_removed_while_open)
{
	int fd = open(XPMEM_DEV_PATH, O_RDWR);

	ck_assert_int_ge(fd, 0);
	errno = 0;
	ck_assert_int_eq(syscall(SYS_delete_module, "xpmem", O_NONBLOCK), -1);
	ck_assert_int_eq(errno, EWOULDBLOCK);
	/* Still fully working. */
	ck_assert_int_gt(xpmem_version(), 0);
	close(fd);
}
END_TEST

/* An attachment pins the module even after /dev/xpmem is closed. */
START_TEST(attachment_holds_the_module)
{
	char *buf = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct xpmem_addr addr;
	xpmem_segid_t segid;
	char *a;
	pid_t child;
	int status;

	ck_assert(buf != MAP_FAILED);
	buf[0] = 42;
	segid = xpmem_make(buf, 4096, XPMEM_PERMIT_MODE, (void *)0600);
	addr.apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	addr.offset = 0;
	a = xpmem_attach(addr, 4096, NULL);
	ck_assert(a != (void *)-1);
	ck_assert_int_eq(a[0], 42);
	/* A child, without our descriptor, tries to unload the module. */
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0)
		_exit(syscall(SYS_delete_module, "xpmem", O_NONBLOCK) == -1 &&
		      errno == EWOULDBLOCK ? 0 : 1);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_int_eq(a[0], 42);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("module");
	TCase *tc = xtest_tcase(s, "lifetime");

	tcase_add_test(tc, module_version_is_the_package_version);
	tcase_add_test(tc, open_files_hold_a_module_reference);
	tcase_add_test(tc, module_cannot_be_removed_while_open);
	tcase_add_test(tc, attachment_holds_the_module);

	return xtest_main("module", s, XTEST_NEEDS_DEVICE);
}
