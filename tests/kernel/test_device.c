// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_device.c - /dev/xpmem and its INFO ioctl, through the real module.
 *
 * Needs the module: run in the VM (tests/run-tests). Runs as any user.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "xpmem.h"
#include "xtest.h"

/* The x86-64 TASK_SIZE with 4-level and with 5-level page tables. */
#define TASK_SIZE_4LEVEL 0x00007ffffffff000ULL
#define TASK_SIZE_5LEVEL 0x00fffffffffff000ULL

static int open_dev(int flags)
{
	int fd = open(XPMEM_DEV_PATH, flags | O_CLOEXEC);

	ck_assert_msg(fd >= 0, "open(%s): %s", XPMEM_DEV_PATH, strerror(errno));
	return fd;
}

/* Issue @cmd on a fresh descriptor; returns errno, or 0 on success. */
static int ioctl_errno(unsigned long cmd, void *arg)
{
	int fd = open_dev(O_RDWR);
	int ret = ioctl(fd, cmd, arg);
	int err = ret < 0 ? errno : 0;

	ck_assert_msg(ret == 0 || ret == -1, "ioctl returned %d", ret);
	close(fd);
	return err;
}

/* ioctl(@cmd, @arg) on a fresh descriptor must end with errno @expected (0: success). */
#define assert_ioctl_errno(cmd, arg, expected)					\
	do {									\
		int _err = ioctl_errno(cmd, arg);				\
		ck_assert_msg(_err == (expected),				\
			      "ioctl(%s, %s): %s, expected %s", #cmd, #arg,	\
			      _err ? strerror(_err) : "success",		\
			      (expected) ? strerror(expected) : "success");	\
	} while (0)

/* A page that is mapped but has no access, right after @len usable bytes. */
static void *map_before_guard(size_t len)
{
	long page = sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert(p != MAP_FAILED);
	ck_assert_int_eq(mprotect(p + page, page, PROT_NONE), 0);
	return p + page - len;
}

START_TEST(device_node_is_world_rw_misc_char_device)
{
	struct stat st;

	ck_assert_int_eq(stat(XPMEM_DEV_PATH, &st), 0);
	ck_assert(S_ISCHR(st.st_mode));
	ck_assert_uint_eq(major(st.st_rdev), 10);	/* MISC_MAJOR */
	ck_assert_uint_eq(st.st_mode & 07777, 0666);
}
END_TEST

START_TEST(info_reports_abi_version_and_features)
{
	struct xpmem_ioc_info info;

	memset(&info, 0, sizeof(info));
	assert_ioctl_errno(XPMEM_IOC_INFO, &info, 0);
	ck_assert_uint_eq(info.abi_version, XPMEM_ABI_VERSION);
	ck_assert_uint_eq(info.driver_version,
			  XPMEM_VERSION_CODE(XPMEM_PKG_MAJOR, XPMEM_PKG_MINOR,
					     XPMEM_PKG_PATCH));
	ck_assert_uint_eq(info.features, XPMEM_FEATURES_ALL);
	ck_assert_uint_eq(info.flags, 0);
	for (size_t i = 0; i < sizeof(info.reserved) / sizeof(info.reserved[0]); i++)
		ck_assert_uint_eq(info.reserved[i], 0);
}
END_TEST

START_TEST(info_task_size_is_the_address_space_limit)
{
	struct xpmem_ioc_info info;
	long page = sysconf(_SC_PAGESIZE);
	void *p;

	memset(&info, 0, sizeof(info));
	assert_ioctl_errno(XPMEM_IOC_INFO, &info, 0);
	ck_assert_msg(info.task_size == TASK_SIZE_4LEVEL ||
		      info.task_size == TASK_SIZE_5LEVEL,
		      "task_size %#llx", (unsigned long long)info.task_size);
	/* The last page below it is mappable; nothing at or above it is. */
	p = mmap((void *)(uintptr_t)(info.task_size - page), page, PROT_READ,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	ck_assert_msg(p != MAP_FAILED, "mmap below task_size: %s", strerror(errno));
	ck_assert_int_eq(munmap(p, page), 0);
	p = mmap((void *)(uintptr_t)info.task_size, page, PROT_READ,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ck_assert(p == MAP_FAILED);
}
END_TEST

START_TEST(info_rejects_nonzero_flags_and_leaves_struct_alone)
{
	struct xpmem_ioc_info info;

	memset(&info, 0, sizeof(info));
	info.flags = 1u << _i;
	info.abi_version = 0xdeadbeef;
	assert_ioctl_errno(XPMEM_IOC_INFO, &info, EINVAL);
	ck_assert_uint_eq(info.abi_version, 0xdeadbeef);	/* not copied back */
	ck_assert_uint_eq(info.flags, 1u << _i);
}
END_TEST

START_TEST(info_rejects_nonzero_padding)
{
	struct xpmem_ioc_info info;

	memset(&info, 0, sizeof(info));
	info.__pad = 1;
	assert_ioctl_errno(XPMEM_IOC_INFO, &info, EINVAL);
}
END_TEST

START_TEST(info_rejects_each_nonzero_reserved_word)
{
	struct xpmem_ioc_info info;

	memset(&info, 0, sizeof(info));
	info.reserved[_i] = 1ULL << 63;
	assert_ioctl_errno(XPMEM_IOC_INFO, &info, EINVAL);
}
END_TEST

/* Our ioctl number with another size or direction: an ABI mismatch. */
START_TEST(info_with_wrong_size_or_direction_is_einval)
{
	char buf[256];
	const unsigned long cmds[] = {
		_IOWR('x', 0, char[sizeof(struct xpmem_ioc_info) + 8]),
		_IOWR('x', 0, char[sizeof(struct xpmem_ioc_info) - 8]),
		_IOWR('x', 0, char[sizeof(struct xpmem_ioc_info) * 2]),
		_IOR('x', 0, struct xpmem_ioc_info),
		_IOW('x', 0, struct xpmem_ioc_info),
		_IO('x', 0),
	};

	memset(buf, 0, sizeof(buf));
	assert_ioctl_errno(cmds[_i], buf, EINVAL);
}
END_TEST

START_TEST(unknown_commands_are_enotty)
{
	struct xpmem_ioc_info info;
	const unsigned long cmds[] = {
		_IOWR('x', 0x1e, struct xpmem_ioc_info),
		_IOWR('x', 0x1f, struct xpmem_ioc_info),
		_IOWR('x', 0xff, struct xpmem_ioc_info),
		_IOWR('y', 0x00, struct xpmem_ioc_info),
		TCGETS,
	};

	memset(&info, 0, sizeof(info));
	assert_ioctl_errno(cmds[_i], &info, ENOTTY);
}
END_TEST

START_TEST(info_with_bad_pointer_is_efault)
{
	long page = sysconf(_SC_PAGESIZE);
	void *none = mmap(NULL, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert(none != MAP_FAILED);
	assert_ioctl_errno(XPMEM_IOC_INFO, NULL, EFAULT);
	assert_ioctl_errno(XPMEM_IOC_INFO, none, EFAULT);
	assert_ioctl_errno(XPMEM_IOC_INFO, (void *)-4096L, EFAULT);
}
END_TEST

/* The struct ends 8 bytes into an inaccessible page. */
START_TEST(info_straddling_a_guard_page_is_efault)
{
	char *p = map_before_guard(sizeof(struct xpmem_ioc_info) - 8);

	assert_ioctl_errno(XPMEM_IOC_INFO, p, EFAULT);
}
END_TEST

/* Readable but not writable: the copy back fails, and says so. */
START_TEST(info_into_readonly_memory_is_efault)
{
	long page = sysconf(_SC_PAGESIZE);
	struct xpmem_ioc_info *info = mmap(NULL, page, PROT_READ | PROT_WRITE,
					   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert(info != MAP_FAILED);
	memset(info, 0, sizeof(*info));
	ck_assert_int_eq(mprotect(info, page, PROT_READ), 0);
	assert_ioctl_errno(XPMEM_IOC_INFO, info, EFAULT);
	ck_assert_uint_eq(info->abi_version, 0);
}
END_TEST

START_TEST(info_works_on_a_readonly_open)
{
	struct xpmem_ioc_info info;
	int fd = open_dev(O_RDONLY);

	memset(&info, 0, sizeof(info));
	ck_assert_int_eq(ioctl(fd, XPMEM_IOC_INFO, &info), 0);
	ck_assert_uint_eq(info.abi_version, XPMEM_ABI_VERSION);
	close(fd);
}
END_TEST

START_TEST(read_and_write_are_refused)
{
	char buf[8] = { 0 };
	int fd = open_dev(O_RDWR);

	errno = 0;
	ck_assert_int_eq(read(fd, buf, sizeof(buf)), -1);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(write(fd, buf, sizeof(buf)), -1);
	ck_assert_int_eq(errno, EINVAL);
	close(fd);
}
END_TEST

START_TEST(library_version_matches_driver)
{
	struct xpmem_ioc_info info;

	ck_assert_int_eq(xpmem_ext_get_info(&info), 0);
	ck_assert_int_gt(xpmem_version(), 0);
	ck_assert_int_eq(xpmem_version(), (int)info.driver_version);
	ck_assert_int_eq(xpmem_version(),
			 XPMEM_VERSION_CODE(XPMEM_PKG_MAJOR, XPMEM_PKG_MINOR,
					    XPMEM_PKG_PATCH));
}
END_TEST

/* Descriptors of this process that are open on /dev/xpmem. */
static int count_dev_fds(int *last)
{
	struct stat dev, st;
	int n = 0;

	ck_assert_int_eq(stat(XPMEM_DEV_PATH, &dev), 0);
	for (int fd = 0; fd < 1024; fd++) {
		if (fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) &&
		    st.st_rdev == dev.st_rdev) {
			n++;
			if (last)
				*last = fd;
		}
	}
	return n;
}

static void *version_thread(void *arg)
{
	pthread_barrier_t *barrier = arg;

	pthread_barrier_wait(barrier);
	return (void *)(intptr_t)xpmem_version();
}

/* Many threads racing on the first call open the device exactly once. */
START_TEST(library_first_use_is_thread_safe)
{
	enum { NTHREADS = 16 };
	pthread_t threads[NTHREADS];
	pthread_barrier_t barrier;
	void *ret;
	int fd;

	ck_assert_int_eq(count_dev_fds(NULL), 0);
	pthread_barrier_init(&barrier, NULL, NTHREADS);
	for (int i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_create(&threads[i], NULL, version_thread, &barrier), 0);
	for (int i = 0; i < NTHREADS; i++) {
		ck_assert_int_eq(pthread_join(threads[i], &ret), 0);
		ck_assert_int_gt((intptr_t)ret, 0);
	}
	pthread_barrier_destroy(&barrier);
	ck_assert_int_eq(count_dev_fds(&fd), 1);
	ck_assert_int_eq(fcntl(fd, F_GETFD), FD_CLOEXEC);
}
END_TEST

/* After fork the child gets a descriptor of its own, not the parent's. */
START_TEST(library_child_opens_its_own_device)
{
	int parent_fd, status;
	pid_t parent = getpid(), child;

	ck_assert_int_gt(xpmem_version(), 0);
	ck_assert_int_eq(count_dev_fds(&parent_fd), 1);

	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		int fd;

		/* The inherited descriptor was dropped at fork. */
		if (count_dev_fds(NULL) != 0)
			_exit(2);
		if (xpmem_version() <= 0)
			_exit(3);
		if (count_dev_fds(&fd) != 1)
			_exit(4);
		/* kcmp: 0 means the same open file; we want a different one. */
		if (syscall(SYS_kcmp, getpid(), parent, KCMP_FILE, fd, parent_fd) == 0)
			_exit(5);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child status %#x", status);
	/* The parent's descriptor is untouched. */
	ck_assert_int_eq(count_dev_fds(NULL), 1);
	ck_assert_int_gt(xpmem_version(), 0);
}
END_TEST

/* Opening and closing many times leaves nothing behind. */
START_TEST(open_close_many_times)
{
	struct xpmem_ioc_info info;
	int fds[64];

	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < 64; i++)
			fds[i] = open_dev(O_RDWR);
		memset(&info, 0, sizeof(info));
		ck_assert_int_eq(ioctl(fds[round % 64], XPMEM_IOC_INFO, &info), 0);
		for (int i = 0; i < 64; i++)
			ck_assert_int_eq(close(fds[i]), 0);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("device");
	TCase *tc = xtest_tcase(s, "node");

	tcase_add_test(tc, device_node_is_world_rw_misc_char_device);
	tcase_add_test(tc, info_works_on_a_readonly_open);
	tcase_add_test(tc, read_and_write_are_refused);
	tcase_add_test(tc, open_close_many_times);

	tc = xtest_tcase(s, "info");
	tcase_add_test(tc, info_reports_abi_version_and_features);
	tcase_add_test(tc, info_task_size_is_the_address_space_limit);
	tcase_add_loop_test(tc, info_rejects_nonzero_flags_and_leaves_struct_alone, 0, 32);
	tcase_add_test(tc, info_rejects_nonzero_padding);
	tcase_add_loop_test(tc, info_rejects_each_nonzero_reserved_word, 0, 4);
	tcase_add_loop_test(tc, info_with_wrong_size_or_direction_is_einval, 0, 6);
	tcase_add_loop_test(tc, unknown_commands_are_enotty, 0, 5);
	tcase_add_test(tc, info_with_bad_pointer_is_efault);
	tcase_add_test(tc, info_straddling_a_guard_page_is_efault);
	tcase_add_test(tc, info_into_readonly_memory_is_efault);

	tc = xtest_tcase(s, "library");
	tcase_add_test(tc, library_version_matches_driver);
	tcase_add_test(tc, library_first_use_is_thread_safe);
	tcase_add_test(tc, library_child_opens_its_own_device);

	return xtest_main("device", s, XTEST_NEEDS_DEVICE);
}
