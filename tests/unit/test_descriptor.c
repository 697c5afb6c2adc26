// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_descriptor - the library's one descriptor for /dev/xpmem, against
 * programs that close descriptors, fork, and call it from several threads.
 *
 * Runs on the host, without the module: XPMEM_DEVICE points the library at
 * /dev/null, and this program's own open(), ioctl() and close(), which the
 * library's calls resolve to, note the library's descriptor and answer
 * XPMEM commands on /dev/null descriptors; every other call goes on to the
 * kernel.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "xpmem.h"
#include "xtest.h"

static bool is_fake_device(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3);
}

/* The descriptor the library opened last. */
static atomic_int library_fd = -1;

int open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	va_list ap;
	int fd;

	if (flags & O_CREAT) {
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	fd = (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
	if (fd >= 0 && !strcmp(path, "/dev/null") && (flags & O_CLOEXEC))
		atomic_store(&library_fd, fd);
	return fd;
}

/*
 * The fake device. A thread with noproc_once set gets XPMEM_ERRNO_NOPROC
 * for its next command, as a descriptor inherited from another process
 * does; before answering, it posts in_ioctl and waits for go_on if
 * hold_noproc is set.
 */
static _Thread_local bool noproc_once;
static _Thread_local bool hold_noproc;
static sem_t in_ioctl, go_on;
static atomic_long next_segid = 1000;

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (_IOC_TYPE(req) != _IOC_TYPE(XPMEM_IOC_INFO) || !is_fake_device(fd))
		return (int)syscall(SYS_ioctl, fd, req, arg);
	if (req == XPMEM_IOC_INFO) {
		struct xpmem_ioc_info *info = arg;

		info->abi_version = XPMEM_ABI_VERSION;
		info->driver_version = XPMEM_VERSION_CODE(1, 0, 0);
		return 0;
	}
	if (noproc_once) {
		noproc_once = false;
		if (hold_noproc) {
			sem_post(&in_ioctl);
			sem_wait(&go_on);
		}
		errno = XPMEM_ERRNO_NOPROC;
		return -1;
	}
	if (req == XPMEM_IOC_MAKE)
		((struct xpmem_ioc_make *)arg)->segid = atomic_fetch_add(&next_segid, 1);
	return 0;
}

/* Closes of fake-device descriptors, by descriptor number. */
static atomic_int device_closes[64];

int close(int fd)
{
	if (fd >= 0 && fd < 64 && is_fake_device(fd))
		atomic_fetch_add(&device_closes[fd], 1);
	return (int)syscall(SYS_close, fd);
}

static xpmem_segid_t make(void)
{
	return xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
}

/* Point the library at the fake device and have it open it: its number. */
static int library_opens_the_device(void)
{
	int fd;

	ck_assert_int_eq(setenv("XPMEM_DEVICE", "/dev/null", 1), 0);
	ck_assert_int_eq(sem_init(&in_ioctl, 0, 0), 0);
	ck_assert_int_eq(sem_init(&go_on, 0, 0), 0);
	ck_assert_int_gt(xpmem_version(), 0);
	fd = atomic_load(&library_fd);
	ck_assert_int_ge(fd, 0);
	return fd;
}

/*
 * The program closes the library's descriptor (as closefrom() and daemons
 * do) and a pipe takes its number. The library's fork handler leaves the
 * pipe open in the child, and the library opens the device again instead
 * of sending its commands to the pipe.
 */
START_TEST(closed_descriptor_is_opened_again_and_its_number_left_alone)
{
	int old, p[2], status;
	pid_t pid;

	old = library_opens_the_device();
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(dup2(p[0], old), old);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(fcntl(old, F_GETFD) < 0 ? 1 : 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the library's fork handler closed the program's pipe in the child");
	errno = 0;
	ck_assert_msg(make() > 0, "make after the program reused the descriptor: %s",
		      strerror(errno));
	ck_assert_int_ne(atomic_load(&library_fd), old);
	ck_assert_msg(fcntl(old, F_GETFD) >= 0, "the library closed the program's pipe");
}
END_TEST

/* The program closes the library's descriptor and leaves the number free. */
START_TEST(closed_descriptor_is_opened_again)
{
	int old;

	old = library_opens_the_device();
	ck_assert_int_eq(close(old), 0);
	errno = 0;
	ck_assert_msg(make() > 0, "make after the program closed the descriptor: %s",
		      strerror(errno));
	ck_assert_int_gt(xpmem_version(), 0);
}
END_TEST

static void *make_after_noproc(void *hold)
{
	noproc_once = true;
	hold_noproc = hold != NULL;
	return (void *)(intptr_t)make();
}

/*
 * Two threads are told by the same descriptor that it is not their
 * process's (a child made by a raw clone() inherits it). The first reopens
 * the device, under the same number, and makes a segment there; the second
 * must not then close that new descriptor, which would destroy the segment
 * the first has just returned.
 */
START_TEST(late_thread_does_not_close_the_descriptor_reopened_by_another)
{
	pthread_t late, early;
	void *segid;
	int fd;

	fd = library_opens_the_device();
	ck_assert_int_eq(pthread_create(&late, NULL, make_after_noproc, (void *)1), 0);
	sem_wait(&in_ioctl);
	ck_assert_int_eq(pthread_create(&early, NULL, make_after_noproc, NULL), 0);
	ck_assert_int_eq(pthread_join(early, &segid), 0);
	ck_assert_int_gt((intptr_t)segid, 0);
	/* The early thread closed it, and got the same number again. */
	ck_assert_int_eq(atomic_load(&device_closes[fd]), 1);
	ck_assert_int_eq(atomic_load(&library_fd), fd);
	sem_post(&go_on);
	ck_assert_int_eq(pthread_join(late, &segid), 0);
	ck_assert_int_gt((intptr_t)segid, 0);
	ck_assert_msg(atomic_load(&device_closes[fd]) == 1,
		      "the late thread closed the descriptor the early one had opened again");
}
END_TEST

static void child_makes_a_segment(void)
{
	make();
}

/*
 * The scenario of the test below, in a process of its own (this program,
 * executed again), whose library has not been called yet: a library that
 * links ours registers its fork handlers after ours, and may call us from
 * its child handler. Exit status 0 if the child of fork() got past the
 * handlers within 3 s.
 */
static int fork_handler_scenario(void)
{
	struct timespec pause = { .tv_nsec = 10000000 };
	int status = 0;
	pid_t pid;

	if (setenv("XPMEM_DEVICE", "/dev/null", 1) ||
	    pthread_atfork(NULL, NULL, child_makes_a_segment) || make() <= 0)
		return 2;
	pid = fork();
	if (pid < 0)
		return 2;
	if (pid == 0)
		_exit(0);
	for (int i = 0; i < 300 && waitpid(pid, &status, WNOHANG) == 0; i++)
		nanosleep(&pause, NULL);
	if (waitpid(pid, &status, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return 1;
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 2;
}

START_TEST(fork_handler_of_another_library_may_call_us)
{
	int status;
	pid_t pid;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		execl("/proc/self/exe", "test_descriptor", "--fork-handler-scenario", (char *)NULL);
		_exit(3);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status), "the scenario died: status %#x", status);
	ck_assert_msg(WEXITSTATUS(status) != 1,
		      "the child still blocked in a fork handler after 3 s");
	ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

int main(int argc, char **argv)
{
	Suite *s;
	TCase *tc;

	if (argc == 2 && !strcmp(argv[1], "--fork-handler-scenario"))
		return fork_handler_scenario();
	s = suite_create("descriptor");
	tc = xtest_tcase(s, "descriptor");

	tcase_add_test(tc, closed_descriptor_is_opened_again);
	tcase_add_test(tc, closed_descriptor_is_opened_again_and_its_number_left_alone);
	tcase_add_test(tc, late_thread_does_not_close_the_descriptor_reopened_by_another);
	tcase_add_test(tc, fork_handler_of_another_library_may_call_us);
	return xtest_main("descriptor", s, XTEST_NEEDS_NOTHING);
}
