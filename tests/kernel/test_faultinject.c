// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_faultinject.c - every failable call of the driver fails once.
 *
 * The kernel's fault injection (CONFIG_FAULT_INJECTION, in the debug
 * kernel's config) fails the Nth failable call that a task makes after N is
 * written to /proc/thread-self/fail-nth: a slab allocation (failslab), a
 * page allocation (fail_page_alloc), or one of the driver's own failure
 * points (debugfs xpmem/fail: the exporter's lock being busy, the fault in
 * the exporter, the snapshot). For each operation
 * we make N = 1, 2, 3, ... fail until the operation runs out of failable
 * calls before the Nth, so that every one of them has failed once, through
 * the ioctl or the fault, and check each time:
 *  - the operation either succeeded, or failed with an errno the header
 *    documents (a fault either completed or raised the documented signal);
 *  - what succeeded works, and what failed left nothing behind: the
 *    driver's alive counters are back where they were once the objects
 *    are closed (tests/check-leaks repeats that after the program);
 *  - the kernel did not complain (the harness scans the log).
 *
 * Root only (debugfs knobs), and only on a kernel with fault injection:
 * tests/guest-suite runs it when /proc/self/fail-nth exists, and the debug
 * kernel's run requires that it did.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "xpmem.h"
#include "xtest.h"

#define PAGE 4096UL
#define LEN (32 * PAGE)
/* More failable calls than any of our operations makes. */
#define MAX_NTH 400

#define DBG "/sys/kernel/debug"

static void setup_injection(void)
{
	static const char *const knobs[][2] = {
		/* Sleeping allocations fail too: they are most of ours. */
		{ DBG "/failslab/ignore-gfp-wait", "N" },
		{ DBG "/fail_page_alloc/ignore-gfp-wait", "N" },
		{ DBG "/fail_page_alloc/ignore-gfp-highmem", "N" },
		{ DBG "/fail_page_alloc/min-order", "0" },
		/*
		 * fail-nth alone decides; nothing is printed per failure.
		 * xpmem/fail is the driver's own: a busy exporter lock, a
		 * failed fault in the exporter, a snapshot that must retry.
		 */
		{ DBG "/failslab/verbose", "0" },
		{ DBG "/fail_page_alloc/verbose", "0" },
		{ DBG "/xpmem/fail/verbose", "0" },
		{ DBG "/failslab/probability", "0" },
		{ DBG "/fail_page_alloc/probability", "0" },
		{ DBG "/xpmem/fail/probability", "0" },
	};

	for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++)
		ck_assert_msg(xtest_write_file(knobs[i][0], knobs[i][1]) == 0,
			      "%s: %s", knobs[i][0], strerror(errno));
}

static int nth_fd = -1;

/* Fail the @n-th failable call this thread makes from now on. */
static void arm(int n)
{
	char text[16];
	int len = snprintf(text, sizeof(text), "%d", n);

	if (nth_fd < 0)
		nth_fd = open("/proc/thread-self/fail-nth", O_RDWR);
	ck_assert_int_ge(nth_fd, 0);
	ck_assert_int_eq(pwrite(nth_fd, text, len, 0), len);
}

/* Did the armed failure happen? Disarms it either way. */
static int fired(void)
{
	char text[16] = "";
	int left;

	ck_assert_int_gt(pread(nth_fd, text, sizeof(text) - 1, 0), 0);
	left = atoi(text);
	if (left)
		ck_assert_int_eq(pwrite(nth_fd, "0", 1, 0), 1);
	return left == 0;
}

struct alive {
	long segments, permits, attachments, files;
};

static struct alive alive_now(void)
{
	struct alive a = {
		xtest_stat("segments_alive"), xtest_stat("permits_alive"),
		xtest_stat("attachments_alive"), xtest_stat("files_alive"),
	};

	return a;
}

/* The child that held them has exited; its files may close a moment later. */
static void assert_alive(struct alive before, const char *op, int n)
{
	struct alive now = alive_now();

	for (int i = 0; i < 100 && memcmp(&now, &before, sizeof(now)); i++) {
		usleep(50000);
		now = alive_now();
	}
	ck_assert_msg(!memcmp(&now, &before, sizeof(now)),
		      "%s, failure %d: alive segments %ld permits %ld attachments %ld files %ld, "
		      "before %ld %ld %ld %ld", op, n, now.segments, now.permits,
		      now.attachments, now.files, before.segments, before.permits,
		      before.attachments, before.files);
}

/*
 * An operation under test. It sets up what it needs, arms failure @n right
 * before the call under test, reads fired() right after it (so that its
 * own checks and teardown do not count), checks the outcome and returns 0
 * or the call's errno. Its own checks failing exit with OP_CHECK.
 */
struct op {
	const char *name;
	int (*fn)(unsigned char *buf, int n, int *firedp);
	const int *errnos;	/* documented errnos, 0-terminated */
	int may_have_none;	/* no failable call at all is fine */
};

enum { OP_CHECK = 101, OP_SETUP, OP_PIPE };

#define op_check(cond) do { if (!(cond)) _exit(OP_CHECK); } while (0)
#define op_setup(cond) do { if (!(cond)) _exit(OP_SETUP); } while (0)

static int errno_in(int err, const int *allowed)
{
	for (; *allowed; allowed++)
		if (err == *allowed)
			return 1;
	return 0;
}

static const int enomem[] = { ENOMEM, 0 };
static const int enomem_eintr[] = { ENOMEM, EINTR, 0 };

static xpmem_segid_t make_whole(void)
{
	return xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
}

static struct xpmem_addr get_rdwr(unsigned char *buf)
{
	struct xpmem_addr addr = { .offset = (off_t)(uintptr_t)buf };
	xpmem_segid_t segid = make_whole();

	op_setup(segid > 0);
	addr.apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	op_setup(addr.apid > 0);
	return addr;
}

static unsigned char *attach_rdwr(unsigned char *buf)
{
	unsigned char *a = xpmem_attach(get_rdwr(buf), LEN, NULL);

	op_setup(a != (void *)-1);
	return a;
}

/* The first call opens /dev/xpmem, then makes the segment. */
static int op_make(unsigned char *buf, int n, int *firedp)
{
	xpmem_segid_t segid;

	(void)buf;
	arm(n);
	segid = make_whole();
	*firedp = fired();
	if (segid < 0)
		return errno;
	op_check(xpmem_remove(segid) == 0);
	return 0;
}

static int op_get(unsigned char *buf, int n, int *firedp)
{
	xpmem_segid_t segid = make_whole();
	xpmem_apid_t apid;

	(void)buf;
	op_setup(segid > 0);
	arm(n);
	apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	*firedp = fired();
	if (apid < 0)
		return errno;
	op_check(xpmem_release(apid) == 0);
	return 0;
}

static int attach_with(unsigned char *buf, int n, int *firedp, unsigned int flags)
{
	struct xpmem_addr addr = get_rdwr(buf);
	long alive = xtest_stat("attachments_alive");
	unsigned char *a;

	arm(n);
	a = xpmem_ext_attach(addr, LEN, NULL, flags);
	*firedp = fired();
	if (a == (void *)-1) {
		int err = errno;

		/* Nothing of it stays (a failed populate unmaps). */
		op_check(xtest_stat("attachments_alive") == alive);
		return err;
	}
	op_check(xtest_all_bytes_are(a, LEN, 0x5a));
	memset(a, 0x5b, LEN);
	op_check(xtest_all_bytes_are(buf, LEN, 0x5b));
	op_check(xpmem_detach(a) == 0);
	return 0;
}

static int op_attach(unsigned char *buf, int n, int *firedp)
{
	return attach_with(buf, n, firedp, 0);
}

static int op_attach_populate(unsigned char *buf, int n, int *firedp)
{
	return attach_with(buf, n, firedp, XPMEM_ATTACH_POPULATE);
}

/* Faults: the access completes; an injected failure costs a retry. */
static int op_read_fault(unsigned char *buf, int n, int *firedp)
{
	unsigned char *a = attach_rdwr(buf);
	int ok;

	arm(n);
	ok = xtest_all_bytes_are(a, LEN, 0x5a);
	*firedp = fired();
	op_check(ok);
	return 0;
}

static int op_write_fault(unsigned char *buf, int n, int *firedp)
{
	unsigned char *a = attach_rdwr(buf);

	arm(n);
	for (size_t i = 0; i < LEN; i += PAGE)
		a[i] = 0x5c;
	*firedp = fired();
	for (size_t i = 0; i < LEN; i += PAGE)
		op_check(buf[i] == 0x5c);
	return 0;
}

static int op_write_upgrade(unsigned char *buf, int n, int *firedp)
{
	unsigned char *a = attach_rdwr(buf);

	op_setup(xtest_all_bytes_are(a, LEN, 0x5a));	/* mapped read-only */
	arm(n);
	for (size_t i = 0; i < LEN; i += PAGE)
		a[i] = 0x5d;
	*firedp = fired();
	for (size_t i = 0; i < LEN; i += PAGE)
		op_check(buf[i] == 0x5d);
	return 0;
}

/*
 * A failed detach may have unmapped other pieces, but not the one at the
 * address given: the same call finishes the job.
 */
static int op_detach(unsigned char *buf, int n, int *firedp)
{
	unsigned char *a = attach_rdwr(buf);
	int ret;

	op_setup(xtest_all_bytes_are(a, LEN, 0x5a));
	/* Three pieces, so that the unmaps have something to split. */
	op_setup(mprotect(a + PAGE, PAGE, PROT_READ) == 0);
	arm(n);
	ret = xpmem_detach(a);
	*firedp = fired();
	if (ret) {
		int err = errno;

		op_check(xpmem_detach(a) == 0);
		return err;
	}
	for (size_t i = 0; i < LEN; i += PAGE)
		op_check(msync(a + i, PAGE, MS_ASYNC) == -1 && errno == ENOMEM);
	return 0;
}

/* A failed release keeps the permit, and a new attach through it works. */
static int op_release(unsigned char *buf, int n, int *firedp)
{
	struct xpmem_addr addr = get_rdwr(buf);
	unsigned char *a = xpmem_attach(addr, LEN, NULL);
	int ret;

	op_setup(a != (void *)-1 && xtest_all_bytes_are(a, LEN, 0x5a));
	arm(n);
	ret = xpmem_release(addr.apid);
	*firedp = fired();
	if (ret) {
		int err = errno;

		a = xpmem_attach(addr, LEN, NULL);
		op_check(a != (void *)-1 && xtest_all_bytes_are(a, LEN, 0x5a));
		op_check(xpmem_release(addr.apid) == 0);
		return err;
	}
	/* Released: the permit is gone, and so is what it attached. */
	op_check(msync(a, PAGE, MS_ASYNC) == -1 && errno == ENOMEM);
	op_check(xpmem_release(addr.apid) == -1 && errno == ENOENT);
	return 0;
}

static int op_remove(unsigned char *buf, int n, int *firedp)
{
	struct xpmem_addr addr = { .offset = (off_t)(uintptr_t)buf };
	xpmem_segid_t segid = make_whole();
	unsigned char *a;
	int ret;

	op_setup(segid > 0);
	addr.apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	a = xpmem_attach(addr, LEN, NULL);
	op_setup(addr.apid > 0 && a != (void *)-1 && xtest_all_bytes_are(a, LEN, 0x5a));
	arm(n);
	ret = xpmem_remove(segid);
	*firedp = fired();
	return ret ? errno : 0;
}

/* Runs @op at failure @n in a child; its wait status, and *firedp. */
static int run_at(const struct op *op, int n, int *firedp)
{
	int pfd[2], status;
	pid_t pid;

	ck_assert_int_eq(pipe(pfd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		unsigned char *buf = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		int ret, f = 0;

		close(pfd[0]);
		nth_fd = -1;	/* this thread's own */
		op_setup(buf != MAP_FAILED);
		memset(buf, 0x5a, LEN);
		ret = op->fn(buf, n, &f);
		if (write(pfd[1], &f, sizeof(f)) != sizeof(f))
			_exit(OP_PIPE);
		_exit(ret);
	}
	close(pfd[1]);
	*firedp = 0;
	(void)!read(pfd[0], firedp, sizeof(*firedp));
	close(pfd[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

static const struct op ops[] = {
	{ "make", op_make, enomem, 0 },
	{ "get", op_get, enomem, 0 },
	{ "attach", op_attach, enomem, 0 },
	{ "attach+populate", op_attach_populate, enomem_eintr, 0 },
	{ "read fault", op_read_fault, enomem, 0 },
	{ "write fault", op_write_fault, enomem, 0 },
	{ "write upgrade", op_write_upgrade, enomem, 0 },
	{ "detach", op_detach, enomem_eintr, 0 },
	{ "release", op_release, enomem_eintr, 0 },
	{ "remove", op_remove, enomem, 1 },
};

START_TEST(every_failure_point_is_survived)
{
	const struct op *op = &ops[_i];
	struct alive before;
	int n, points = 0, f = 0;

	setup_injection();
	before = alive_now();
	for (n = 1; n <= MAX_NTH; n++) {
		int status = run_at(op, n, &f), ret;

		ck_assert_msg(WIFEXITED(status), "%s, failure %d: killed by signal %d",
			      op->name, n, WTERMSIG(status));
		ret = WEXITSTATUS(status);
		ck_assert_msg(ret < 100, "%s, failure %d: %s", op->name, n,
			      ret == OP_CHECK ? "its outcome check failed" :
			      ret == OP_SETUP ? "its setup failed" : "lost its result");
		ck_assert_msg(ret == 0 || errno_in(ret, op->errnos),
			      "%s, failure %d: undocumented errno %d (%s)", op->name, n,
			      ret, strerror(ret));
		ck_assert_msg(ret == 0 || f, "%s failed (%s) with nothing injected",
			      op->name, strerror(ret));
		assert_alive(before, op->name, n);
		if (!f)
			break;		/* fewer than n failable calls: all were hit */
		points++;
	}
	ck_assert_msg(n <= MAX_NTH, "%s: still failing at call %d", op->name, MAX_NTH);
	ck_assert_msg(points > 0 || op->may_have_none, "%s: no failable call reached", op->name);
	printf("faultinject: %-16s %3d failure points, each survived\n", op->name, points);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("faultinject");
	TCase *tc = xtest_tcase(s, "ops");

	if (geteuid() != 0 || access("/proc/self/fail-nth", F_OK) != 0) {
		xtest_skip("every_failure_point_is_survived",
			   geteuid() ? "needs root" : "the kernel has no fault injection");
		return xtest_main("faultinject", s, XTEST_NEEDS_DEVICE);
	}
	/* Up to MAX_NTH forks per operation, under KASAN. */
	tcase_set_timeout(tc, 600);
	tcase_add_loop_test(tc, every_failure_point_is_survived, 0, sizeof(ops) / sizeof(ops[0]));
	return xtest_main("faultinject", s, XTEST_NEEDS_DEVICE);
}
