// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_segment.c - xpmem_make/remove/get/release, as any user.
 *
 * Needs the module: run in the VM (tests/run-tests). Permission checks
 * across users are in test_permissions.c (root).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "xpmem.h"
#include "xtest.h"

#define MODE(m) ((void *)(uintptr_t)(m))

static long page_size(void)
{
	return sysconf(_SC_PAGESIZE);
}

static uint64_t task_size(void)
{
	struct xpmem_ioc_info info;

	ck_assert_int_eq(xpmem_ext_get_info(&info), 0);
	return info.task_size;
}

/* Call @expr, which must fail with -1 and errno @err. */
#define assert_fails(expr, err)							\
	do {									\
		errno = 0;							\
		long long _r = (long long)(expr);				\
		int _e = errno;							\
		ck_assert_msg(_r == -1 && _e == (err),				\
			      "%s: returned %lld, errno %s; expected -1, %s",	\
			      #expr, _r, strerror(_e), strerror(err));		\
	} while (0)

static xpmem_segid_t make_all(int mode)
{
	xpmem_segid_t segid = xpmem_make(0, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, MODE(mode));

	ck_assert_msg(segid > 0, "xpmem_make: %s", strerror(errno));
	return segid;
}

/* Run @fn in a forked child and return its exit status (or 128 + signal). */
static int in_child(int (*fn)(int64_t), int64_t arg)
{
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(fn(arg));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- make */

START_TEST(make_whole_address_space)
{
	xpmem_segid_t segid = make_all(0600);

	ck_assert_int_eq(xpmem_remove(segid), 0);
}
END_TEST

START_TEST(make_ids_are_positive_distinct_and_spread)
{
	enum { N = 64 };
	long page = page_size();
	char *buf = mmap(NULL, N * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	xpmem_segid_t ids[N];
	int high = 0;

	/* A page each: more than max_overlap (64) of one page are refused. */
	ck_assert(buf != MAP_FAILED);
	for (int i = 0; i < N; i++) {
		ids[i] = xpmem_make(buf + i * page, page, XPMEM_PERMIT_MODE, MODE(0600));
		ck_assert_msg(ids[i] > 0, "xpmem_make: %s", strerror(errno));
		high += ids[i] > (INT64_C(1) << 40);
		for (int j = 0; j < i; j++)
			ck_assert(ids[i] != ids[j]);
	}
	/* Random 63-bit ids: all 64 below 2^40 has probability 2^-1472. */
	ck_assert_int_gt(high, 0);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(xpmem_remove(ids[i]), 0);
}
END_TEST

START_TEST(make_range_with_holes)
{
	long page = page_size();
	char *p = mmap(NULL, 8 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	xpmem_segid_t segid;

	ck_assert(p != MAP_FAILED);
	ck_assert_int_eq(munmap(p + 2 * page, 3 * page), 0);
	segid = xpmem_make(p, 8 * page, XPMEM_PERMIT_MODE, MODE(0600));
	ck_assert_int_gt(segid, 0);
	/* Even an entirely unmapped range. */
	ck_assert_int_eq(munmap(p, 8 * page), 0);
	ck_assert_int_gt(xpmem_make(p, 8 * page, XPMEM_PERMIT_MODE, MODE(0600)), 0);
}
END_TEST

START_TEST(make_maxaddr_from_nonzero_start_is_clamped)
{
	long page = page_size();
	uint64_t top = task_size();

	ck_assert_int_gt(xpmem_make((void *)(uintptr_t)(1 << 20), XPMEM_MAXADDR_SIZE,
				    XPMEM_PERMIT_MODE, MODE(0600)), 0);
	/* The last page of the address space on its own. */
	ck_assert_int_gt(xpmem_make((void *)(uintptr_t)(top - page), XPMEM_MAXADDR_SIZE,
				    XPMEM_PERMIT_MODE, MODE(0600)), 0);
	ck_assert_int_gt(xpmem_make((void *)(uintptr_t)(top - page), page,
				    XPMEM_PERMIT_MODE, MODE(0600)), 0);
}
END_TEST

START_TEST(make_rejects_bad_ranges)
{
	long page = page_size();
	uint64_t top = task_size();
	void *top_page = (void *)(uintptr_t)(top - page);

	assert_fails(xpmem_make((void *)(uintptr_t)1, page, XPMEM_PERMIT_MODE, MODE(0600)), EINVAL);
	assert_fails(xpmem_make((void *)(uintptr_t)(page + 8), page, XPMEM_PERMIT_MODE, MODE(0600)), EINVAL);
	assert_fails(xpmem_make(NULL, 0, XPMEM_PERMIT_MODE, MODE(0600)), EINVAL);
	assert_fails(xpmem_make(NULL, page + 1, XPMEM_PERMIT_MODE, MODE(0600)), EINVAL);
	assert_fails(xpmem_make(NULL, 100, XPMEM_PERMIT_MODE, MODE(0600)), EINVAL);
	/* Past the end of the address space, and wrapping around. */
	assert_fails(xpmem_make(top_page, 2 * page, XPMEM_PERMIT_MODE, MODE(0600)), EINVAL);
	assert_fails(xpmem_make((void *)(uintptr_t)top, page, XPMEM_PERMIT_MODE, MODE(0600)), EINVAL);
	assert_fails(xpmem_make((void *)(uintptr_t)top, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, MODE(0600)), EINVAL);
	assert_fails(xpmem_make(top_page, (size_t)-page, XPMEM_PERMIT_MODE, MODE(0600)), EINVAL);
	assert_fails(xpmem_make(NULL, top + page, XPMEM_PERMIT_MODE, MODE(0600)), EINVAL);
}
END_TEST

START_TEST(make_rejects_mode_bits_outside_0777)
{
	const uintptr_t modes[] = { 01000, 02000, 04000, 010000, 0100777, (uintptr_t)1 << 40, (uintptr_t)-1 };

	assert_fails(xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, MODE(modes[_i])), EINVAL);
}
END_TEST

START_TEST(make_accepts_every_mode_within_0777)
{
	for (unsigned int mode = 0; mode <= 0777; mode += 0111)
		ck_assert_int_eq(xpmem_remove(make_all(mode)), 0);
}
END_TEST

START_TEST(make_rejects_other_permit_types)
{
	const int types[] = { 0, 2, 0x100, -1 };

	assert_fails(xpmem_make(NULL, XPMEM_MAXADDR_SIZE, types[_i], MODE(0600)), EINVAL);
}
END_TEST

/*
 * A process's first segment registers its mm's notifiers, which takes
 * every lock of the address space in turn (mm_take_all_locks()) and gives
 * up with -EINTR when any signal is pending. A signal that is not fatal
 * must neither fail the make (an MPI job with a profiling timer would die
 * in MPI_Init) nor make it start over and over (a timer faster than the
 * walk would never let it finish): the driver blocks it for the walk.
 *
 * Each child holds 8192 VMAs (from its parent), so that the walk takes a
 * while, and a second thread signals it back to back, from before the make
 * starts (the child waits for the first signal) until it returns, at most
 * 20000 times. Every make must succeed, and make exactly one segment.
 * Before the fix, 4 of 4 such children failed with EINTR (6.1 guest).
 * Forking a process with 8192 VMAs is slow under KASAN (thirty children
 * took more than a minute), so four, with a timeout of their own.
 */
#define SIGNAL_VMAS 8192
#define SIGNAL_CHILDREN 4

static pthread_t signal_target;
static atomic_int signal_made, signals_seen;

static void on_signal(int sig)
{
	(void)sig;
	atomic_fetch_add(&signals_seen, 1);
}

static void *send_signals(void *unused)
{
	(void)unused;
	for (int i = 0; i < 20000 && !atomic_load(&signal_made); i++)
		pthread_kill(signal_target, SIGUSR1);
	return NULL;
}

/* 0: made; 1: EINTR; 2: another errno; 3: could not set up. */
static int make_under_signals(int64_t unused)
{
	struct sigaction sa = { .sa_handler = on_signal };	/* no SA_RESTART */
	xpmem_segid_t segid;
	pthread_t thread;
	int err;

	(void)unused;
	if (sigaction(SIGUSR1, &sa, NULL))
		return 3;
	signal_target = pthread_self();
	if (pthread_create(&thread, NULL, send_signals, NULL))
		return 3;
	while (!atomic_load(&signals_seen))
		;	/* the storm has begun */
	segid = xpmem_make(0, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, MODE(0600));
	err = errno;
	atomic_store(&signal_made, 1);
	pthread_join(thread, NULL);
	return segid > 0 ? 0 : err == EINTR ? 1 : 2;
}

START_TEST(make_is_not_interrupted_by_signals)
{
	long page = page_size(), made = xtest_stat("segments_made");
	int status[5] = { 0 };
	unsigned char *area;

	ck_assert_msg(made >= 0, "debugfs stats not readable");
	/*
	 * Alternate protections, so that no two neighbours merge. Nothing is
	 * written: an anon_vma per VMA would make the walk longer, but lockdep
	 * counts the nested acquisitions of one lock class in 12 bits, and
	 * mm_take_all_locks() of 4096 of them overflows it (a WARNING on the
	 * debug kernel that switches lockdep off; any notifier user hits it).
	 */
	area = mmap(NULL, SIGNAL_VMAS * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(area != MAP_FAILED);
	for (long i = 0; i < SIGNAL_VMAS; i += 2)
		ck_assert_int_eq(mprotect(area + i * page, page, PROT_READ | PROT_WRITE), 0);
	for (int child = 0; child < SIGNAL_CHILDREN; child++) {
		int rc = in_child(make_under_signals, 0);

		status[rc >= 0 && rc <= 3 ? rc : 4]++;
	}
	ck_assert_int_eq(munmap(area, SIGNAL_VMAS * page), 0);
	ck_assert_msg(status[0] == SIGNAL_CHILDREN, "of %d makes under signals: %d EINTR, "
		      "%d other errors, %d could not set up, %d died", SIGNAL_CHILDREN,
		      status[1], status[2], status[3], status[4]);
	ck_assert_int_eq(xtest_stat("segments_made") - made, SIGNAL_CHILDREN);
}
END_TEST

/* Raw ioctls: flags and reserved fields must be zero. */
START_TEST(make_rejects_flags_and_reserved)
{
	int fd = open(XPMEM_DEV_PATH, O_RDWR | O_CLOEXEC);
	struct xpmem_ioc_make arg;

	ck_assert_int_ge(fd, 0);
	for (int i = 0; i < 4; i++) {
		memset(&arg, 0, sizeof(arg));
		arg.size = XPMEM_MAXADDR_SIZE_U64;
		arg.permit_type = XPMEM_PERMIT_MODE;
		arg.permit_value = 0600;
		if (i == 0)
			arg.flags = 1;
		else
			arg.reserved[i - 1] = 1;
		arg.segid = 12345;
		assert_fails(ioctl(fd, XPMEM_IOC_MAKE, &arg), EINVAL);
		ck_assert_int_eq(arg.segid, 12345);	/* not written back */
	}
	close(fd);
}
END_TEST

/* ---- remove */

START_TEST(remove_twice_is_enoent)
{
	xpmem_segid_t segid = make_all(0600);

	ck_assert_int_eq(xpmem_remove(segid), 0);
	assert_fails(xpmem_remove(segid), ENOENT);
}
END_TEST

START_TEST(remove_unknown_ids_is_enoent)
{
	const xpmem_segid_t ids[] = { 0, -1, INT64_MIN, 1, INT64_MAX, 0x123456789abcdefLL };

	assert_fails(xpmem_remove(ids[_i]), ENOENT);
}
END_TEST

static int remove_in_child(int64_t segid)
{
	return xpmem_remove(segid) == -1 && errno == EPERM ? 0 : 1;
}

START_TEST(only_the_creator_may_remove)
{
	xpmem_segid_t segid = make_all(0666);

	ck_assert_int_eq(in_child(remove_in_child, segid), 0);
	ck_assert_int_eq(xpmem_remove(segid), 0);
}
END_TEST

START_TEST(remove_rejects_flags_and_reserved)
{
	int fd = open(XPMEM_DEV_PATH, O_RDWR | O_CLOEXEC);
	struct xpmem_ioc_make make;
	struct xpmem_ioc_remove arg;

	ck_assert_int_ge(fd, 0);
	memset(&make, 0, sizeof(make));
	make.size = XPMEM_MAXADDR_SIZE_U64;
	make.permit_type = XPMEM_PERMIT_MODE;
	ck_assert_int_eq(ioctl(fd, XPMEM_IOC_MAKE, &make), 0);
	for (int i = 0; i < 4; i++) {
		memset(&arg, 0, sizeof(arg));
		arg.segid = make.segid;
		if (i == 0)
			arg.flags = 1;
		else if (i == 1)
			arg.__pad = 1;
		else
			arg.reserved[i - 2] = 1;
		assert_fails(ioctl(fd, XPMEM_IOC_REMOVE, &arg), EINVAL);
	}
	/* Still there. */
	memset(&arg, 0, sizeof(arg));
	arg.segid = make.segid;
	ck_assert_int_eq(ioctl(fd, XPMEM_IOC_REMOVE, &arg), 0);
	close(fd);
}
END_TEST

/* ---- get and release */

START_TEST(get_rdwr_and_rdonly_of_own_segment)
{
	xpmem_segid_t segid = make_all(0600);
	xpmem_apid_t rw = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	xpmem_apid_t ro = xpmem_get(segid, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL);

	ck_assert_int_gt(rw, 0);
	ck_assert_int_gt(ro, 0);
	ck_assert(rw != ro && rw != segid && ro != segid);
	ck_assert_int_eq(xpmem_release(rw), 0);
	ck_assert_int_eq(xpmem_release(ro), 0);
	ck_assert_int_eq(xpmem_remove(segid), 0);
}
END_TEST

START_TEST(get_rejects_bad_access_flags)
{
	const int flags[] = { 0, XPMEM_RDONLY | XPMEM_RDWR, 4, 0x100, -1 };
	xpmem_segid_t segid = make_all(0666);

	assert_fails(xpmem_get(segid, flags[_i], XPMEM_PERMIT_MODE, NULL), EINVAL);
}
END_TEST

START_TEST(get_rejects_other_permit_types)
{
	xpmem_segid_t segid = make_all(0666);

	assert_fails(xpmem_get(segid, XPMEM_RDWR, 0, NULL), EINVAL);
	assert_fails(xpmem_get(segid, XPMEM_RDWR, 2, NULL), EINVAL);
	assert_fails(xpmem_get(segid, XPMEM_RDWR, -1, NULL), EINVAL);
}
END_TEST

/* MPICH and Open MPI pass their mode, UCX passes NULL: all are accepted. */
START_TEST(get_ignores_permit_value)
{
	xpmem_segid_t segid = make_all(0600);
	void *values[] = { NULL, MODE(0600), MODE(0666), MODE(0777777), (void *)-1 };

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		ck_assert_int_gt(xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, values[i]), 0);
}
END_TEST

START_TEST(get_unknown_or_removed_segment_is_enoent)
{
	xpmem_segid_t segid = make_all(0666);

	assert_fails(xpmem_get(-1, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL), ENOENT);
	assert_fails(xpmem_get(0, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL), ENOENT);
	assert_fails(xpmem_get(segid ^ 1, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL), ENOENT);
	ck_assert_int_eq(xpmem_remove(segid), 0);
	assert_fails(xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL), ENOENT);
}
END_TEST

START_TEST(release_twice_or_unknown_is_enoent)
{
	xpmem_segid_t segid = make_all(0600);
	xpmem_apid_t apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);

	ck_assert_int_gt(apid, 0);
	ck_assert_int_eq(xpmem_release(apid), 0);
	assert_fails(xpmem_release(apid), ENOENT);
	assert_fails(xpmem_release(0), ENOENT);
	assert_fails(xpmem_release(-1), ENOENT);
	assert_fails(xpmem_release(segid), ENOENT);	/* a segid is not an apid */
}
END_TEST

/* A permit outlives the removal of its segment until it is released. */
START_TEST(permit_outlives_segment_removal)
{
	xpmem_segid_t segid = make_all(0600);
	xpmem_apid_t apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);

	ck_assert_int_gt(apid, 0);
	ck_assert_int_eq(xpmem_remove(segid), 0);
	ck_assert_int_eq(xpmem_release(apid), 0);
}
END_TEST

static int release_in_child(int64_t apid)
{
	return xpmem_release(apid) == -1 && errno == ENOENT ? 0 : 1;
}

START_TEST(apid_belongs_to_the_process_that_got_it)
{
	xpmem_segid_t segid = make_all(0666);
	xpmem_apid_t apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);

	ck_assert_int_gt(apid, 0);
	ck_assert_int_eq(in_child(release_in_child, apid), 0);
	ck_assert_int_eq(xpmem_release(apid), 0);
}
END_TEST

static int get_in_child(int64_t segid)
{
	xpmem_apid_t apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);

	return apid > 0 && xpmem_release(apid) == 0 ? 0 : 1;
}

START_TEST(another_process_gets_a_0666_segment)
{
	xpmem_segid_t segid = make_all(0666);

	ck_assert_int_eq(in_child(get_in_child, segid), 0);
}
END_TEST

START_TEST(get_rejects_flags_and_reserved)
{
	int fd = open(XPMEM_DEV_PATH, O_RDWR | O_CLOEXEC);
	xpmem_segid_t segid = make_all(0666);
	struct xpmem_ioc_get arg;

	ck_assert_int_ge(fd, 0);
	for (int i = 0; i < 4; i++) {
		memset(&arg, 0, sizeof(arg));
		arg.segid = segid;
		arg.access = XPMEM_RDWR;
		arg.permit_type = XPMEM_PERMIT_MODE;
		if (i == 0)
			arg.flags = 1;
		else if (i == 1)
			arg.__pad = 1;
		else
			arg.reserved[i - 2] = 1;
		assert_fails(ioctl(fd, XPMEM_IOC_GET, &arg), EINVAL);
	}
	close(fd);
}
END_TEST

/*
 * A new permit takes the index in its descriptor's table that a released
 * one had (apids are dense underneath: see docs/design.md), but never its
 * apid: the old apid finds nothing.
 */
START_TEST(released_apid_finds_nothing_when_its_index_is_reused)
{
	xpmem_segid_t segid = make_all(0600);
	xpmem_apid_t old, cur;
	struct xpmem_addr addr;

	old = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert_int_gt(old, 0);
	ck_assert_int_eq(xpmem_release(old), 0);
	cur = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert_int_gt(cur, 0);
	ck_assert_int_ne(cur, old);
	addr.apid = old;
	addr.offset = 0;
	assert_fails(xpmem_attach(addr, 4096, NULL), ENOENT);
	assert_fails(xpmem_release(old), ENOENT);
	ck_assert_int_eq(xpmem_release(cur), 0);
	ck_assert_int_eq(xpmem_remove(segid), 0);
}
END_TEST

/*
 * ATTACH refuses a malformed request with EINVAL before it looks the permit
 * up, as every other command does: a caller learns it built the struct
 * wrong, not that its permit is missing. Case 5 is size 0, case 6 an
 * unaligned vaddr.
 */
START_TEST(attach_rejects_flags_and_reserved_before_the_permit)
{
	int fd = open(XPMEM_DEV_PATH, O_RDWR | O_CLOEXEC);
	static const int64_t apids[] = { 0, -1, 0x1234567 };
	struct xpmem_ioc_attach arg;

	ck_assert_int_ge(fd, 0);
	for (size_t a = 0; a < sizeof(apids) / sizeof(apids[0]); a++) {
		memset(&arg, 0, sizeof(arg));
		arg.apid = apids[a];
		arg.size = 4096;
		if (_i == 0)
			arg.flags = 1u << 31;
		else if (_i == 1)
			arg.__pad = 1;
		else if (_i < 5)
			arg.reserved[_i - 2] = 1;
		else if (_i == 5)
			arg.size = 0;
		else
			arg.vaddr = 4097;
		assert_fails(ioctl(fd, XPMEM_IOC_ATTACH, &arg), EINVAL);
	}
	close(fd);
}
END_TEST

/* ---- descriptors and processes */

static int make_on_inherited_fd(int64_t fd)
{
	struct xpmem_ioc_make arg;
	struct xpmem_ioc_info info;

	memset(&arg, 0, sizeof(arg));
	arg.size = XPMEM_MAXADDR_SIZE_U64;
	arg.permit_type = XPMEM_PERMIT_MODE;
	if (ioctl((int)fd, XPMEM_IOC_MAKE, &arg) != -1 || errno != XPMEM_ERRNO_NOPROC)
		return 1;
	/* INFO is the one command any process may issue. */
	memset(&info, 0, sizeof(info));
	return ioctl((int)fd, XPMEM_IOC_INFO, &info) == 0 ? 0 : 2;
}

START_TEST(inherited_descriptor_answers_noproc)
{
	int fd = open(XPMEM_DEV_PATH, O_RDWR);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(in_child(make_on_inherited_fd, fd), 0);
	close(fd);
}
END_TEST

START_TEST(closing_the_descriptor_removes_its_segments)
{
	int fd = open(XPMEM_DEV_PATH, O_RDWR | O_CLOEXEC);
	struct xpmem_ioc_make arg;

	ck_assert_int_ge(fd, 0);
	memset(&arg, 0, sizeof(arg));
	arg.size = XPMEM_MAXADDR_SIZE_U64;
	arg.permit_type = XPMEM_PERMIT_MODE;
	arg.permit_value = 0666;
	ck_assert_int_eq(ioctl(fd, XPMEM_IOC_MAKE, &arg), 0);
	ck_assert_int_gt(xpmem_get(arg.segid, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL), 0);
	close(fd);
	assert_fails(xpmem_get(arg.segid, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL), ENOENT);
}
END_TEST

START_TEST(exit_of_the_creator_removes_its_segments)
{
	int pipefd[2], status;
	xpmem_segid_t segid = 0;
	pid_t pid;

	ck_assert_int_eq(pipe(pipefd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, MODE(0666));
		_exit(write(pipefd[1], &segid, sizeof(segid)) == sizeof(segid) ? 0 : 1);
	}
	ck_assert_int_eq(read(pipefd[0], &segid, sizeof(segid)), sizeof(segid));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_gt(segid, 0);
	assert_fails(xpmem_get(segid, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL), ENOENT);
}
END_TEST

/*
 * The exporter exits while a child it forked still holds its descriptor:
 * the segment dies with the exporter's address space all the same.
 */
START_TEST(exporter_exit_kills_segments_whose_descriptor_lives_on)
{
	int seg_pipe[2], hold_pipe[2], status;
	xpmem_segid_t segid = 0;
	pid_t pid;

	ck_assert_int_eq(pipe(seg_pipe), 0);
	ck_assert_int_eq(pipe(hold_pipe), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(XPMEM_DEV_PATH, O_RDWR);	/* inherited below */
		struct xpmem_ioc_make arg;
		char c;

		memset(&arg, 0, sizeof(arg));
		arg.size = XPMEM_MAXADDR_SIZE_U64;
		arg.permit_type = XPMEM_PERMIT_MODE;
		arg.permit_value = 0666;
		if (fd < 0 || ioctl(fd, XPMEM_IOC_MAKE, &arg) != 0)
			_exit(1);
		close(hold_pipe[1]);
		if (fork() == 0) {
			/* Keeps the descriptor open until the test closes the pipe. */
			while (read(hold_pipe[0], &c, 1) > 0)
				;
			_exit(0);
		}
		_exit(write(seg_pipe[1], &arg.segid, sizeof(arg.segid)) == sizeof(arg.segid) ? 0 : 1);
	}
	close(hold_pipe[0]);
	ck_assert_int_eq(read(seg_pipe[0], &segid, sizeof(segid)), sizeof(segid));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_fails(xpmem_get(segid, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL), ENOENT);
	close(hold_pipe[1]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("segment");
	TCase *tc = xtest_tcase(s, "make");

	tcase_add_test(tc, make_whole_address_space);
	tcase_add_test(tc, make_ids_are_positive_distinct_and_spread);
	tcase_add_test(tc, make_range_with_holes);
	tcase_add_test(tc, make_maxaddr_from_nonzero_start_is_clamped);
	tcase_add_test(tc, make_rejects_bad_ranges);
	tcase_add_loop_test(tc, make_rejects_mode_bits_outside_0777, 0, 7);
	tcase_add_test(tc, make_accepts_every_mode_within_0777);
	tcase_add_loop_test(tc, make_rejects_other_permit_types, 0, 4);
	tcase_add_test(tc, make_rejects_flags_and_reserved);

	tc = xtest_tcase(s, "signals");
	tcase_set_timeout(tc, 120);	/* see make_is_not_interrupted_by_signals */
	tcase_add_test(tc, make_is_not_interrupted_by_signals);

	tc = xtest_tcase(s, "remove");
	tcase_add_test(tc, remove_twice_is_enoent);
	tcase_add_loop_test(tc, remove_unknown_ids_is_enoent, 0, 6);
	tcase_add_test(tc, only_the_creator_may_remove);
	tcase_add_test(tc, remove_rejects_flags_and_reserved);

	tc = xtest_tcase(s, "get");
	tcase_add_test(tc, get_rdwr_and_rdonly_of_own_segment);
	tcase_add_loop_test(tc, get_rejects_bad_access_flags, 0, 5);
	tcase_add_test(tc, get_rejects_other_permit_types);
	tcase_add_test(tc, get_ignores_permit_value);
	tcase_add_test(tc, get_unknown_or_removed_segment_is_enoent);
	tcase_add_test(tc, release_twice_or_unknown_is_enoent);
	tcase_add_test(tc, permit_outlives_segment_removal);
	tcase_add_test(tc, apid_belongs_to_the_process_that_got_it);
	tcase_add_loop_test(tc, attach_rejects_flags_and_reserved_before_the_permit, 0, 7);
	tcase_add_test(tc, released_apid_finds_nothing_when_its_index_is_reused);
	tcase_add_test(tc, another_process_gets_a_0666_segment);
	tcase_add_test(tc, get_rejects_flags_and_reserved);

	tc = xtest_tcase(s, "lifetime");
	tcase_add_test(tc, inherited_descriptor_answers_noproc);
	tcase_add_test(tc, closing_the_descriptor_removes_its_segments);
	tcase_add_test(tc, exit_of_the_creator_removes_its_segments);
	tcase_add_test(tc, exporter_exit_kills_segments_whose_descriptor_lives_on);

	return xtest_main("segment", s, XTEST_NEEDS_DEVICE);
}
