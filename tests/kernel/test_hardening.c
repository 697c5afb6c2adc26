// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_hardening.c - the defects of issue 11 and those found since, each
 * written as an attacker (or an unlucky MPI job) would trigger it. Every test here failed, hung or
 * made the kernel report on the driver before the fix it is named after;
 * docs/security.md lists which invariant each one holds.
 *
 * Needs the module. Tests that need root (a memory cgroup, module
 * parameters) are skipped, with the reason, in the unprivileged pass.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "xpmem.h"
#include "xtest.h"

#define PAGE 4096UL

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

/* Export the whole address space and attach [buf, buf + len) of it. */
static unsigned char *attach_self_mode(void *buf, size_t len, int access)
{
	xpmem_segid_t segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	struct xpmem_addr addr;
	unsigned char *a;

	ck_assert_int_gt(segid, 0);
	addr.apid = xpmem_get(segid, access, XPMEM_PERMIT_MODE, NULL);
	ck_assert_int_gt(addr.apid, 0);
	addr.offset = (off_t)(uintptr_t)buf;
	a = xpmem_attach(addr, len, NULL);
	ck_assert(a != (void *)-1);
	return a;
}

static unsigned char *attach_self(void *buf, size_t len)
{
	return attach_self_mode(buf, len, XPMEM_RDWR);
}

static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert(p != MAP_FAILED);
	return p;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * A segment of the whole address space, a permit to it, and where in it
 * @len bytes have nothing mapped (the address is the returned offset).
 */
static struct xpmem_addr hole_source(size_t len, xpmem_segid_t *segid)
{
	void *hole = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct xpmem_addr addr;

	ck_assert(hole != MAP_FAILED);
	ck_assert_int_eq(munmap(hole, len), 0);
	*segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	ck_assert_int_gt(*segid, 0);
	addr.apid = xpmem_get(*segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert_int_gt(addr.apid, 0);
	addr.offset = (off_t)(uintptr_t)hole;
	return addr;
}

#define PARAMS "/sys/module/xpmem/parameters/"

/* The value of the module parameter @name. */
static long param_get(const char *name)
{
	char path[128];
	long value;

	snprintf(path, sizeof(path), PARAMS "%s", name);
	value = xtest_read_long(path);
	ck_assert_msg(value > 0, "no %s parameter", name);
	return value;
}

/* Set the module parameter @name to @value. */
static void param_set(const char *name, long value)
{
	char path[128], text[32];

	snprintf(path, sizeof(path), PARAMS "%s", name);
	snprintf(text, sizeof(text), "%ld", value);
	ck_assert_int_eq(xtest_write_file(path, text), 0);
}

/*
 * The limits that the d7 tests lower, and their values before the first
 * test. Each test starts from those values and the last one leaves them,
 * so that a test that fails half-way does not leave a limit of 2 to the
 * tests after it.
 */
static const char *const limit_params[] = { "max_permits", "max_segments", "max_overlap" };
#define NR_LIMITS (sizeof(limit_params) / sizeof(limit_params[0]))
static long limit_defaults[NR_LIMITS];

static void limits_save(void)
{
	for (size_t i = 0; i < NR_LIMITS; i++)
		limit_defaults[i] = param_get(limit_params[i]);
}

static void limits_restore(void)
{
	for (size_t i = 0; i < NR_LIMITS; i++)
		param_set(limit_params[i], limit_defaults[i]);
}

/* ------------------------------------------------------------------------
 * Defect 1: ->pfn_mkwrite returned VM_FAULT_RETRY when the exporter's
 * mmap_lock was busy. The core mm then unlocked a lock it no longer held
 * (WARNING in kernel/locking/rwsem.c) and the attacher hung.
 */

struct churn {
	unsigned char *buf;
	size_t len;
	atomic_int stop;
};

/* Keep the exporter's mmap_lock busy for writing, and drop its pages. */
static void *churn_thread(void *arg)
{
	struct churn *c = arg;

	while (!atomic_load(&c->stop)) {
		void *x = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (x != MAP_FAILED)
			munmap(x, 1 << 16);
		madvise(c->buf, c->len, MADV_DONTNEED);
	}
	return NULL;
}

/* An exporter child that churns until its stdin closes. */
static pid_t churning_exporter(int *segid_fd, int *stop_fd, size_t len)
{
	int out[2], in[2];
	pid_t pid;

	ck_assert_int_eq(pipe(out), 0);
	ck_assert_int_eq(pipe(in), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct churn c = { .len = len };
		pthread_t t[2];
		xpmem_segid_t segid;
		char byte;

		c.buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
		if (c.buf == MAP_FAILED || segid < 0 ||
		    write(out[1], &segid, sizeof(segid)) != sizeof(segid) ||
		    write(out[1], &c.buf, sizeof(c.buf)) != sizeof(c.buf))
			_exit(1);
		for (int i = 0; i < 2; i++)
			if (pthread_create(&t[i], NULL, churn_thread, &c))
				_exit(2);
		(void)!read(in[0], &byte, 1);
		atomic_store(&c.stop, 1);
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		_exit(0);
	}
	close(out[1]);
	close(in[0]);
	*segid_fd = out[0];
	*stop_fd = in[1];
	return pid;
}

START_TEST(read_then_write_under_exporter_mmap_churn)
{
	const size_t len = 16 * PAGE;
	long upgrades = xtest_stat("write_upgrades");
	long busy = xtest_stat("fault_source_busy");
	int segid_fd, stop_fd, status;
	unsigned char *remote, *a;
	xpmem_segid_t segid;
	struct xpmem_addr addr;
	pid_t pid;
	time_t end;
	long rounds = 0;

	pid = churning_exporter(&segid_fd, &stop_fd, len);
	ck_assert_int_eq(read(segid_fd, &segid, sizeof(segid)), sizeof(segid));
	ck_assert_int_eq(read(segid_fd, &remote, sizeof(remote)), sizeof(remote));
	addr.apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert_int_gt(addr.apid, 0);
	addr.offset = (off_t)(uintptr_t)remote;
	a = xpmem_attach(addr, len, NULL);
	ck_assert(a != (void *)-1);

	/*
	 * A read maps the page read-only (often the zero page, after the
	 * exporter's DONTNEED); the write after it goes through ->pfn_mkwrite
	 * while the exporter's threads hold its mmap_lock for writing.
	 */
	end = time(NULL) + 8;
	while (time(NULL) < end) {
		for (size_t i = 0; i < len; i += PAGE) {
			volatile unsigned char *p = a + i;

			(void)*p;
			*p = 0x77;
		}
		rounds++;
	}
	ck_assert_int_eq(write(stop_fd, "x", 1), 1);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(status, 0);
	ck_assert_int_gt(rounds, 0);
	/* The path under test was taken, and under contention. */
	ck_assert_int_gt(xtest_stat("write_upgrades"), upgrades);
	ck_assert_int_gt(xtest_stat("fault_source_busy"), busy);
}
END_TEST

/* ------------------------------------------------------------------------
 * Defect 2: after the retry path dropped the attacher's mmap_lock and slept
 * on the exporter's, it read the segment again, which the attacher's other
 * thread may have freed meanwhile (detach, release, remove, an RCU grace
 * period). KASAN on the debug kernel reports the use; elsewhere the test
 * shows the race is survived.
 */

struct busy {
	unsigned char *hog;
	size_t len;
	atomic_int stop;
};

/* Hold this mm's mmap_lock for writing, for long stretches. */
static void *mprotect_loop(void *arg)
{
	struct busy *b = arg;

	while (!atomic_load(&b->stop)) {
		mprotect(b->hog, b->len, PROT_READ);
		mprotect(b->hog, b->len, PROT_READ | PROT_WRITE);
	}
	return NULL;
}

struct toucher {
	unsigned char *a;
	size_t len;
	atomic_int stop;
};

/*
 * Touch the attachment from inside the kernel (copy_from_user() of a pipe
 * write): those faults take the retry path too, and once the attachment
 * is gone they fail with EFAULT instead of killing us.
 */
static void *touch_loop(void *arg)
{
	struct toucher *t = arg;
	int p[2];
	char c;

	if (pipe(p))
		return NULL;
	while (!atomic_load(&t->stop))
		for (size_t i = 0; i < t->len; i += PAGE)
			if (write(p[1], t->a + i, 1) == 1)
				(void)!read(p[0], &c, 1);
	close(p[0]);
	close(p[1]);
	return NULL;
}

/*
 * One round, in a child of the test: it exports and keeps its own
 * mmap_lock busy (mprotect() of 256 MiB, over and over); its child
 * attaches, faults (and sleeps on that lock in the retry path) in one
 * thread, while its main thread detaches and releases and the exporter
 * removes the segment: the last reference goes while the fault sleeps.
 */
static int retry_teardown_round(void)
{
	const size_t len = 64 * PAGE;
	struct busy b = { .len = 256UL << 20 };
	int to_child[2], to_parent[2], status;
	struct xpmem_addr addr;
	xpmem_segid_t segid;
	pthread_t busy_thread;
	unsigned char *buf;
	pid_t child;
	char c;

	/*
	 * The attached buffer is the start of the mprotect()ed range, so that
	 * each mprotect() also invalidates the child's PTEs: its next touch
	 * faults, while our lock is held.
	 */
	b.hog = mmap(NULL, b.len, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	buf = b.hog;
	if (b.hog == MAP_FAILED || pipe(to_child) || pipe(to_parent))
		return 10;
	memset(buf, 1, len);
	segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	if (segid < 0)
		return 11;
	addr.offset = (off_t)(uintptr_t)buf;

	child = fork();
	if (child < 0)
		return 12;
	if (child == 0) {
		struct toucher t = { .len = len };
		pthread_t touch_thread;

		addr.apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
		t.a = xpmem_attach(addr, len, NULL);
		if (addr.apid < 0 || t.a == (void *)-1)
			_exit(13);
		if (read(to_child[0], &c, 1) != 1 ||
		    pthread_create(&touch_thread, NULL, touch_loop, &t))
			_exit(14);
		usleep(20000);
		if (xpmem_detach(t.a) || xpmem_release(addr.apid))
			_exit(15);
		if (write(to_parent[1], "r", 1) != 1 || read(to_child[0], &c, 1) != 1)
			_exit(16);
		atomic_store(&t.stop, 1);
		pthread_join(touch_thread, NULL);
		_exit(0);
	}
	if (pthread_create(&busy_thread, NULL, mprotect_loop, &b))
		return 17;
	if (write(to_child[1], "g", 1) != 1 || read(to_parent[0], &c, 1) != 1)
		return 18;
	/* The last reference: freed after a grace period, while the
	 * child's fault may still sleep on our lock. */
	if (xpmem_remove(segid))
		return 19;
	usleep(100000);
	atomic_store(&b.stop, 1);
	pthread_join(busy_thread, NULL);
	if (write(to_child[1], "s", 1) != 1 || waitpid(child, &status, 0) != child)
		return 20;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 30 + WTERMSIG(status);
}

START_TEST(teardown_while_a_fault_waits_for_the_exporter)
{
	for (int round = 0; round < 4; round++) {
		pid_t pid = fork();
		int status;

		ck_assert_int_ge(pid, 0);
		if (pid == 0)
			_exit(retry_teardown_round());
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "round %d: status %#x", round, status);
	}
}
END_TEST

/* ------------------------------------------------------------------------
 * Defect 3: remap_file_pages() on a read-write attachment reached our
 * ->mmap after the kernel had dropped what the file pointed at.
 */
START_TEST(remap_file_pages_on_an_attachment_is_refused)
{
	const size_t len = 8 * PAGE;
	unsigned char *buf = map_anon(len), *a;
	int fd;

	memset(buf, 0x31, len);
	/* Own descriptor, closed below: only the mapping holds the segment. */
	fd = open("/dev/xpmem", O_RDWR);
	ck_assert_int_ge(fd, 0);
	a = attach_self(buf, len);
	ck_assert(xtest_all_bytes_are(a, len, 0x31));
	ck_assert_int_eq(syscall(SYS_remap_file_pages, a, len, 0, 1, 0), -1);
	ck_assert_int_eq(errno, EPERM);
	close(fd);
	/* The kernel unmapped the range before asking us. */
	ck_assert_int_eq(msync(a, len, MS_ASYNC), -1);
	ck_assert_int_eq(errno, ENOMEM);
}
END_TEST

/* ------------------------------------------------------------------------
 * Defect 4: a page was mapped writable on a read fault, and a store through
 * the attachment set only our PTE's dirty bit, which a zap throws away.
 * Reclaim then dropped the page as clean.
 */
START_TEST(write_after_madv_free_survives_pageout)
{
	const size_t len = 16 * PAGE;
	unsigned char *buf = map_anon(len), *a;

	memset(buf, 'a', len);
	ck_assert_int_eq(madvise(buf, len, MADV_FREE), 0);
	a = attach_self(buf, len);
	memset(a, 'B', len);
	ck_assert_int_eq(madvise(buf, len, MADV_PAGEOUT), 0);
	ck_assert_msg(xtest_all_bytes_are(buf, len, 'B'),
		      "the exporter reads %#x: a write through the attachment was lost", buf[0]);
}
END_TEST

/*
 * A write fault maps its window's neighbours writable and dirties them.
 * A shmem page the exporter has only read is writable and clean: a store
 * through the attachment that reached it without a fault of its own must
 * survive reclaim. No upgrade may be counted, or the neighbours were not
 * mapped writable and this tests nothing.
 */
START_TEST(write_first_to_read_shmem_survives_pageout)
{
	const size_t len = 16 * PAGE;
	int fd = memfd_create("xpmem-test", 0);
	unsigned char *buf, *a;
	long upgrades;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, len), 0);
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert(buf != MAP_FAILED);
	ck_assert(xtest_all_bytes_are(buf, len, 0));	/* the exporter reads */
	a = attach_self(buf, len);
	upgrades = xtest_stat("write_upgrades");
	memset(a, 'D', len);
	ck_assert_int_eq(xtest_stat("write_upgrades"), upgrades);
	ck_assert_int_eq(madvise(buf, len, MADV_PAGEOUT), 0);
	ck_assert_msg(xtest_all_bytes_are(buf, len, 'D'),
		      "the exporter reads %#x: a write through the attachment was lost", buf[0]);
	close(fd);
}
END_TEST

START_TEST(write_after_read_of_shmem_survives_pageout)
{
	const size_t len = 16 * PAGE;
	int fd = memfd_create("xpmem-test", 0);
	unsigned char *buf, *a;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, len), 0);
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert(buf != MAP_FAILED);
	a = attach_self(buf, len);
	/* The read maps the page (read-only, now); then the write. */
	ck_assert(xtest_all_bytes_are(a, len, 0));
	memset(a, 'C', len);
	ck_assert_int_eq(madvise(buf, len, MADV_PAGEOUT), 0);
	ck_assert_msg(xtest_all_bytes_are(buf, len, 'C'),
		      "the exporter reads %#x: a write through the attachment was lost", buf[0]);
	close(fd);
}
END_TEST

/* A read fault maps read-only, even where the exporter may write. */
START_TEST(read_fault_maps_read_only)
{
	const size_t len = 4 * PAGE;
	unsigned char *buf = map_anon(len), *a;
	long upgrades;

	memset(buf, 0x11, len);
	a = attach_self(buf, len);
	ck_assert(xtest_all_bytes_are(a, len, 0x11));
	upgrades = xtest_stat("write_upgrades");
	a[0] = 0x12;
	ck_assert_int_eq(xtest_stat("write_upgrades"), upgrades + 1);
	ck_assert_int_eq(buf[0], 0x12);
}
END_TEST

/* ------------------------------------------------------------------------
 * Defect 5: hmm_range_fault() does not refuse secret memory, and an
 * attachment gave another process what GUP refuses it.
 */
static int secret_fd(void)
{
#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447
#endif
	return (int)syscall(SYS_memfd_secret, 0);
}

START_TEST(secret_memory_is_not_readable_through_an_attachment)
{
	const size_t len = 2 * PAGE;
	int fd = secret_fd(), status;
	unsigned char *secret;
	xpmem_segid_t segid;
	pid_t pid;

	ck_assert_msg(fd >= 0, "memfd_secret: %s (boot with secretmem.enable=1)", strerror(errno));
	ck_assert_int_eq(ftruncate(fd, len), 0);
	secret = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert(secret != MAP_FAILED);
	memset(secret, 0x5e, len);
	segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	ck_assert_int_gt(segid, 0);

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct xpmem_addr addr = {
			.apid = xpmem_get(segid, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL),
			.offset = (off_t)(uintptr_t)secret,
		};
		volatile unsigned char *a = xpmem_attach(addr, len, NULL);

		if (addr.apid < 0 || a == (void *)-1)
			_exit(2);
		_exit(a[0] == 0x5e ? 1 : 3);	/* SIGBUS expected before this */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
		      "status %#x (exit 1: the secret was read)", status);
}
END_TEST

/* Another attachment (a PFN mapping) and PROT_NONE are refused too. */
START_TEST(pfn_and_prot_none_ranges_are_sigbus)
{
	const size_t len = 2 * PAGE;
	unsigned char *buf = map_anon(len), *none, *a;
	int status;
	pid_t pid;

	memset(buf, 0x21, len);
	none = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(none != MAP_FAILED);
	a = attach_self(buf, len);		/* a VM_PFNMAP range of ours */
	ck_assert(xtest_all_bytes_are(a, len, 0x21));
	for (int which = 0; which < 2; which++) {
		unsigned char *target = which ? none : a;

		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			/* An attachment of the attachment, or of PROT_NONE. */
			volatile unsigned char *b = attach_self(target, len);

			_exit(b[0] == 0x21 ? 1 : 2);
		}
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
			      "%s: status %#x", which ? "PROT_NONE" : "attachment", status);
	}
}
END_TEST

/* ------------------------------------------------------------------------
 * Defect 6: MADV_DOFORK cleared VM_DONTCOPY, and a child inherited the
 * attachment.
 */
START_TEST(madv_dofork_is_refused)
{
	const size_t len = 4 * PAGE;
	unsigned char *buf = map_anon(len), *a;
	int status;
	pid_t pid;

	memset(buf, 0x41, len);
	a = attach_self(buf, len);
	ck_assert(xtest_all_bytes_are(a, len, 0x41));
	ck_assert_int_eq(madvise(a, len, MADV_DOFORK), -1);
	ck_assert_int_eq(errno, EINVAL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		volatile unsigned char *p = a;

		_exit(p[0] == 0x41 ? 1 : 2);	/* SIGSEGV expected: not mapped */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "status %#x", status);
}
END_TEST

/* ------------------------------------------------------------------------
 * Defect 7: segments and permits were charged to no memory cgroup and had
 * no bound.
 */
#define CG "/sys/fs/cgroup"
#define CG_TEST CG "/xpmem-test"

/* What the child in a memory cgroup reports, every 1024 permits and at the end. */
struct permit_report {
	long n;
	int done, err;
};

/*
 * Make permits until the driver refuses for another reason than a full
 * descriptor (ENOSPC: then on a new one); report how many, and why.
 */
static void make_permits(int report_fd, long cap)
{
	xpmem_segid_t segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	struct permit_report r = { 0 };
	struct xpmem_ioc_get get;
	int fd = -1;

	if (segid < 0)
		_exit(20);
	while (r.n < cap) {
		if (fd < 0 && (fd = open(XPMEM_DEV_PATH, O_RDWR)) < 0) {
			r.err = errno;
			break;
		}
		memset(&get, 0, sizeof(get));
		get.segid = segid;
		get.access = XPMEM_RDONLY;
		get.permit_type = XPMEM_PERMIT_MODE;
		if (ioctl(fd, XPMEM_IOC_GET, &get) != 0) {
			if (errno == ENOSPC) {
				fd = -1;	/* kept open: its permits stay */
				continue;
			}
			r.err = errno;
			break;
		}
		if (++r.n % 1024 == 0 && write(report_fd, &r, sizeof(r)) != sizeof(r))
			_exit(22);
	}
	r.done = 1;
	_exit(write(report_fd, &r, sizeof(r)) == sizeof(r) ? 0 : 23);
}

START_TEST(permits_are_charged_to_the_memcg_and_bounded)
{
	const long cap = 2000000;	/* about 80 MB of permits, if not charged */
	struct permit_report r = { .err = -1 }, got;
	char pidbuf[32];
	long over_max;
	int pipefd[2], status;
	pid_t pid;

	if (access(CG "/cgroup.controllers", F_OK) != 0)
		ck_assert_int_eq(system("mount -t cgroup2 none " CG), 0);
	(void)!xtest_write_file(CG "/cgroup.subtree_control", "+memory");
	rmdir(CG_TEST);
	ck_assert_int_eq(mkdir(CG_TEST, 0755), 0);
	ck_assert_int_eq(xtest_write_file(CG_TEST "/memory.max", "16M"), 0);
	ck_assert_int_eq(xtest_write_file(CG_TEST "/memory.swap.max", "0"), 0);
	ck_assert_int_eq(pipe(pipefd), 0);

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(pipefd[0]);
		snprintf(pidbuf, sizeof(pidbuf), "%d", getpid());
		if (xtest_write_file(CG_TEST "/cgroup.procs", pidbuf))
			_exit(21);
		make_permits(pipefd[1], cap);
	}
	close(pipefd[1]);
	/* The last report before the child stopped, by error or by a kill. */
	while (read(pipefd[0], &got, sizeof(got)) == sizeof(got))
		r = got;
	close(pipefd[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	/* memory.events, not memory.peak: that came in 5.19. */
	over_max = xtest_read_key(CG_TEST "/memory.events", "max");
	rmdir(CG_TEST);
	/*
	 * Charged: the cgroup stopped the child well before the cap, with
	 * ENOMEM or its OOM killer, and the permits took its usage to
	 * memory.max (the child's other memory is far below 16 MiB).
	 */
	ck_assert_msg(r.n < cap, "%ld permits under a 16 MiB memory.max: not charged", r.n);
	ck_assert_msg((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
		      (WIFEXITED(status) && WEXITSTATUS(status) == 0 && r.done && r.err == ENOMEM),
		      "status %#x, errno %d after %ld permits", status, r.err, r.n);
	ck_assert_msg(over_max > 0, "memory.events max %ld after %ld permits", over_max, r.n);
}
END_TEST

/* Bytes of the slab cache @name in use: active objects times their size. */
static long slab_bytes(const char *name)
{
	FILE *f = fopen("/proc/slabinfo", "r");
	long active, total, size, bytes = -1;
	char line[512], n[64];

	ck_assert(f != NULL);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %ld %ld %ld", n, &active, &total, &size) == 4 &&
		    !strcmp(n, name))
			bytes = active * size;
	fclose(f);
	ck_assert_msg(bytes >= 0, "no slab cache %s in /proc/slabinfo", name);
	return bytes;
}

/*
 * What a permit costs in xarray nodes. Random 63-bit apids cost a chain of
 * about eight nodes each, 3.7-4.9 KB per permit (300 MB for the 65536 one
 * descriptor may hold); dense ones about ten bytes. The bound allows for
 * other users of the node cache meanwhile.
 */
START_TEST(permits_cost_little_kernel_memory)
{
	enum { N = 16384 };
	xpmem_segid_t segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	long before, per_permit;

	ck_assert_int_gt(segid, 0);
	before = slab_bytes("radix_tree_node");
	for (int i = 0; i < N; i++)
		ck_assert_int_gt(xpmem_get(segid, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL), 0);
	per_permit = (slab_bytes("radix_tree_node") - before) / N;
	ck_assert_msg(per_permit < 256, "%d permits took %ld bytes of xarray nodes each", N,
		      per_permit);
}
END_TEST

/*
 * What a segment costs in xarray nodes: nothing now, the segment table is a
 * hash table. Random segids in an xarray cost about 4.5 KB each.
 */
START_TEST(segments_cost_no_xarray_nodes)
{
	enum { N = 4096 };
	unsigned char *buf = map_anon(N * PAGE);
	long before, per_segment;

	/* One page each: no page may have more than max_overlap segments over it. */
	before = slab_bytes("radix_tree_node");
	for (int i = 0; i < N; i++)
		ck_assert_int_gt(xpmem_make(buf + i * PAGE, PAGE, XPMEM_PERMIT_MODE, (void *)0600), 0);
	per_segment = (slab_bytes("radix_tree_node") - before) / N;
	ck_assert_msg(per_segment < 256, "%d segments took %ld bytes of xarray nodes each", N,
		      per_segment);
}
END_TEST

START_TEST(limits_give_enospc)
{
	xpmem_segid_t segid;
	int i;

	param_set("max_permits", 3);
	param_set("max_segments", 2);
	segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	ck_assert_int_gt(segid, 0);
	ck_assert_int_gt(xpmem_make(NULL, PAGE, XPMEM_PERMIT_MODE, (void *)0600), 0);
	ck_assert_int_eq(xpmem_make(NULL, PAGE, XPMEM_PERMIT_MODE, (void *)0600), -1);
	ck_assert_int_eq(errno, ENOSPC);
	for (i = 0; i < 3; i++)
		ck_assert_int_gt(xpmem_get(segid, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL), 0);
	ck_assert_int_eq(xpmem_get(segid, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL), -1);
	ck_assert_int_eq(errno, ENOSPC);
	/* A removed segment frees its place. */
	ck_assert_int_eq(xpmem_remove(segid), 0);
	ck_assert_int_gt(xpmem_make(NULL, PAGE, XPMEM_PERMIT_MODE, (void *)0600), 0);
}
END_TEST

/* A segment of [@at, @at + @len) on descriptor @fd: its segid, or -1 with errno. */
static long long make_range_on(int fd, const void *at, size_t len)
{
	struct xpmem_ioc_make make;

	memset(&make, 0, sizeof(make));
	make.vaddr = (uintptr_t)at;
	make.size = len;
	make.permit_type = XPMEM_PERMIT_MODE;
	make.permit_value = 0600;
	return ioctl(fd, XPMEM_IOC_MAKE, &make) ? -1 : make.segid;
}

/* A segment of one page on descriptor @fd. */
static long long make_on(int fd)
{
	static unsigned char page[PAGE] __attribute__((aligned(PAGE)));

	return make_range_on(fd, page, PAGE);
}

/*
 * Defect 15: max_segments bounded a descriptor, and a process may open as
 * many as its descriptor limit allows. Every segment is called on every
 * invalidation of what it covers, from whoever invalidates (reclaim for
 * another process included), so segments over one page must be bounded per
 * process: 131072 of them made one invalidation take 77 ms in a TCG guest.
 * Another process has a bound of its own.
 */
START_TEST(segment_limit_is_per_process)
{
	int fd[2], status, i;
	pid_t pid;

	param_set("max_segments", 4);
	for (i = 0; i < 2; i++)
		ck_assert_int_ge(fd[i] = open(XPMEM_DEV_PATH, O_RDWR), 0);
	for (i = 0; i < 4; i++)
		ck_assert_int_gt(make_on(fd[i % 2]), 0);
	errno = 0;
	ck_assert_msg(make_on(fd[0]) == -1 && errno == ENOSPC,
		      "a fifth segment of this process, on its first descriptor: %s", strerror(errno));
	errno = 0;
	ck_assert_msg(make_on(fd[1]) == -1 && errno == ENOSPC,
		      "a fifth segment of this process, on its second descriptor: %s", strerror(errno));
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int own = open(XPMEM_DEV_PATH, O_RDWR);

		for (i = 0; i < 4; i++)
			if (make_on(own) <= 0)
				_exit(1);
		_exit(make_on(own) == -1 && errno == ENOSPC ? 0 : 2);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "another process could not make its own 4 segments: status %#x", status);
	/* Closing a descriptor frees the places of its segments. */
	ck_assert_int_eq(close(fd[0]), 0);
	ck_assert_int_gt(make_on(fd[1]), 0);
	ck_assert_int_gt(make_on(fd[1]), 0);
	errno = 0;
	ck_assert_int_eq(make_on(fd[1]), -1);
	ck_assert_int_eq(errno, ENOSPC);
	ck_assert_int_eq(close(fd[1]), 0);
}
END_TEST

/*
 * What bounds the work of one invalidation is how many segments of a
 * process cover one page: max_overlap (here 3). Segments elsewhere do not
 * count, and the page where the most overlap need not be the first.
 */
START_TEST(segments_over_one_page_are_bounded)
{
	unsigned char *buf = map_anon(16 * PAGE);
	struct xpmem_ioc_remove rm = { 0 };
	long long whole, mid;
	int fd[2], i;

	param_set("max_overlap", 3);
	for (i = 0; i < 2; i++)
		ck_assert_int_ge(fd[i] = open(XPMEM_DEV_PATH, O_RDWR), 0);
	/* Two of the whole address space, on two descriptors. */
	whole = make_range_on(fd[0], NULL, XPMEM_MAXADDR_SIZE);
	ck_assert_int_gt(whole, 0);
	ck_assert_int_gt(make_range_on(fd[1], NULL, XPMEM_MAXADDR_SIZE), 0);
	/* A third over each of 8 pages: 3 over each page, the most. */
	for (i = 0; i < 8; i++)
		ck_assert_int_gt(make_range_on(fd[i % 2], buf + i * PAGE, PAGE), 0);
	mid = make_range_on(fd[0], buf + 9 * PAGE, PAGE);
	ck_assert_int_gt(mid, 0);
	/* A fourth over page 9, which is not the first page of the new one. */
	errno = 0;
	ck_assert_msg(make_range_on(fd[1], buf + 8 * PAGE, 2 * PAGE) == -1 && errno == ENOSPC,
		      "a fourth segment over one page: %s", strerror(errno));
	errno = 0;
	ck_assert_int_eq(make_range_on(fd[1], NULL, XPMEM_MAXADDR_SIZE), -1);
	ck_assert_int_eq(errno, ENOSPC);
	/* Page 8 alone has room, and a removed segment frees its place. */
	ck_assert_int_gt(make_range_on(fd[1], buf + 8 * PAGE, PAGE), 0);
	rm.segid = mid;
	ck_assert_int_eq(ioctl(fd[0], XPMEM_IOC_REMOVE, &rm), 0);
	ck_assert_int_gt(make_range_on(fd[1], buf + 9 * PAGE, 2 * PAGE), 0);
	rm.segid = whole;
	ck_assert_int_eq(ioctl(fd[0], XPMEM_IOC_REMOVE, &rm), 0);
	ck_assert_int_gt(make_range_on(fd[0], NULL, XPMEM_MAXADDR_SIZE), 0);
}
END_TEST

struct scanner {
	int fd;
	atomic_int *stop;
	long makes;
	double busy;
};

/* MAKE of the whole address space, refused after the longest check. */
static void *scan_again(void *arg)
{
	struct scanner *sc = arg;

	while (!atomic_load(sc->stop)) {
		double t0 = now_s();

		if (make_range_on(sc->fd, NULL, XPMEM_MAXADDR_SIZE) != -1 || errno != ENOSPC)
			_exit(3);
		sc->busy += now_s() - t0;
		sc->makes++;
	}
	return NULL;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* What the other process saw. */
struct bystander_report {
	double median;		/* of its MAKE + REMOVE pairs */
	double close;		/* closing the walker's descriptor of K segments */
};

/*
 * The overlap check of a MAKE walks the segments of its process: a process
 * that has many makes its own MAKEs slow. It must not make anyone else
 * wait. The check ran under one lock for all processes, so another
 * process's MAKE and REMOVE waited for it; and a segment's death waits for
 * its own process's lock, and may run in another process: the last close
 * of a descriptor passed to it, which waited for a walk per segment. Here
 * the walker has 32767 one-page segments and a page with max_overlap (2)
 * at their end, and two threads that MAKE again and again; the other
 * process makes and removes its own, then closes a descriptor of the
 * walker's with K segments that it inherited.
 */
START_TEST(overlap_check_delays_only_its_own_process)
{
	enum { N = 32767, K = 200, THREADS = 2, PAIRS = 40 };
	unsigned char *buf = map_anon((N + K + 1) * PAGE);
	struct bystander_report r;
	struct scanner sc[THREADS];
	pthread_t thread[THREADS];
	int go[2], done[2], status, passed, fd;
	double scan, busy = 0;
	atomic_int stop = 0;
	long makes = 0;
	pid_t pid;
	char c;

	param_set("max_overlap", 2);
	ck_assert_int_ge(fd = open(XPMEM_DEV_PATH, O_RDWR), 0);
	ck_assert_int_ge(passed = open(XPMEM_DEV_PATH, O_RDWR), 0);
	for (int i = 0; i < N; i++)
		ck_assert_int_gt(make_range_on(fd, buf + i * PAGE, PAGE), 0);
	for (int i = 0; i < K; i++)
		ck_assert_int_gt(make_range_on(passed, buf + (N + i) * PAGE, PAGE), 0);
	ck_assert_int_gt(make_range_on(fd, buf + (N + K) * PAGE, PAGE), 0);
	ck_assert_int_gt(make_range_on(fd, buf + (N + K) * PAGE, PAGE), 0);
	ck_assert_int_eq(pipe(go), 0);
	ck_assert_int_eq(pipe(done), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int own = open(XPMEM_DEV_PATH, O_RDWR);
		double took[PAIRS], t0;

		close(go[1]);
		close(done[0]);
		close(fd);
		if (own < 0 || read(go[0], &c, 1) != 1)
			_exit(1);
		for (int i = 0; i < PAIRS; i++) {
			struct xpmem_ioc_remove rm;

			t0 = now_s();
			rm = (struct xpmem_ioc_remove){ .segid = make_on(own) };
			if (rm.segid <= 0 || ioctl(own, XPMEM_IOC_REMOVE, &rm))
				_exit(2);
			took[i] = now_s() - t0;
			usleep(5000);
		}
		qsort(took, PAIRS, sizeof(took[0]), by_value);
		r.median = took[PAIRS / 2];
		t0 = now_s();
		close(passed);		/* the last reference: its K segments die here */
		r.close = now_s() - t0;
		_exit(write(done[1], &r, sizeof(r)) == sizeof(r) ? 0 : 4);
	}
	close(go[0]);
	close(done[1]);
	close(passed);
	for (int i = 0; i < THREADS; i++) {
		sc[i] = (struct scanner){ .fd = fd, .stop = &stop };
		ck_assert_int_eq(pthread_create(&thread[i], NULL, scan_again, &sc[i]), 0);
	}
	usleep(100000);
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_int_eq(read(done[0], &r, sizeof(r)), sizeof(r));
	atomic_store(&stop, 1);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(thread[i], NULL);
		busy += sc[i].busy;
		makes += sc[i].makes;
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(status, 0);
	ck_assert_int_gt(makes, 0);
	scan = busy / (double)makes;
	ck_assert_msg(scan >= 0.01, "a refused MAKE took only %.4f s: too short to tell", scan);
	ck_assert_msg(r.median < scan / 2,
		      "another process's MAKE and REMOVE took %.3f s (median); a refused MAKE %.3f s",
		      r.median, scan);
	/* Before, the deaths waited for 15 walks between them (0.45 s). */
	ck_assert_msg(r.close < 2 * scan,
		      "closing a descriptor of %d of the walker's segments took %.3f s; a walk %.3f s",
		      K, r.close, scan);
}
END_TEST

/* ------------------------------------------------------------------------
 * Defect 8: a fault with no FAULT_FLAG_ALLOW_RETRY (fixup_user_fault(), as
 * for a private FUTEX_WAKE_OP) slept on the exporter's mmap_lock while
 * holding the attacher's. Two processes attached to each other, with
 * writers queued on both locks, deadlocked.
 */
static int futex_side_run(int in_fd, int out_fd)
{
	struct churn s = { .len = 4 * PAGE };
	struct xpmem_addr addr;
	xpmem_segid_t mine, theirs;
	unsigned char *other, *a;
	pthread_t thread;
	uint32_t word = 0;
	long ops = 0;
	time_t end;
	int done;

	s.buf = mmap(NULL, s.len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mine = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	if (s.buf == MAP_FAILED || mine < 0 ||
	    write(out_fd, &mine, sizeof(mine)) != sizeof(mine) ||
	    write(out_fd, &s.buf, sizeof(s.buf)) != sizeof(s.buf) ||
	    read(in_fd, &theirs, sizeof(theirs)) != sizeof(theirs) ||
	    read(in_fd, &other, sizeof(other)) != sizeof(other))
		return 2;
	addr.apid = xpmem_get(theirs, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	addr.offset = (off_t)(uintptr_t)other;
	a = xpmem_attach(addr, s.len, NULL);
	if (addr.apid < 0 || a == (void *)-1)
		return 3;
	/* Our pages go, so the peer's next futex op faults again. */
	if (pthread_create(&thread, NULL, churn_thread, &s))
		return 4;
	end = time(NULL) + 6;
	while (time(NULL) < end) {
		/*
		 * FUTEX_WAKE_OP writes *uaddr2 with page faults disabled and,
		 * when that fails, faults it in with fixup_user_fault().
		 */
		syscall(SYS_futex, &word, FUTEX_WAKE_OP_PRIVATE, 1, NULL,
			(uint32_t *)(a + (ops % 4) * PAGE), FUTEX_OP(FUTEX_OP_ADD, 1, FUTEX_OP_CMP_EQ, 0));
		ops++;
	}
	atomic_store(&s.stop, 1);
	pthread_join(thread, NULL);
	if (write(out_fd, &ops, sizeof(ops)) != sizeof(ops) ||
	    read(in_fd, &done, sizeof(done)) <= 0)
		return 5;
	return ops > 0 ? 0 : 6;
}

START_TEST(futex_on_mutual_attachments_under_churn)
{
	int ab[2], ba[2], status;
	pid_t kids[2];

	ck_assert_int_eq(pipe(ab), 0);
	ck_assert_int_eq(pipe(ba), 0);
	kids[0] = fork();
	if (kids[0] == 0)
		_exit(futex_side_run(ba[0], ab[1]));
	kids[1] = fork();
	if (kids[1] == 0)
		_exit(futex_side_run(ab[0], ba[1]));
	for (int k = 0; k < 2; k++) {
		ck_assert_int_eq(waitpid(kids[k], &status, 0), kids[k]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "side %d: status %#x", k, status);
	}
}
END_TEST

/* ------------------------------------------------------------------------
 * Defect 9: each write upgrade re-ran the whole window fault and mapped
 * about 500 pages to upgrade one.
 */
START_TEST(write_upgrade_maps_one_page)
{
	const size_t pages = 256, len = pages * PAGE;
	unsigned char *buf = map_anon(len), *a;
	long mapped, upgrades;

	memset(buf, 0x61, len);
	a = attach_self(buf, len);
	ck_assert(xtest_all_bytes_are(a, len, 0x61));	/* maps read-only */
	mapped = xtest_stat("pages_mapped");
	upgrades = xtest_stat("write_upgrades");
	ck_assert_int_ge(upgrades, 0);
	for (size_t i = 0; i < len; i += PAGE)
		a[i] = 0x62;
	ck_assert_int_eq(xtest_stat("write_upgrades") - upgrades, (long)pages);
	ck_assert_msg(xtest_stat("pages_mapped") - mapped <= (long)pages + 8,
		      "%ld pages mapped to upgrade %zu", xtest_stat("pages_mapped") - mapped, pages);
	for (size_t i = 0; i < len; i += PAGE)
		ck_assert_int_eq(buf[i], 0x62);
}
END_TEST

/* ------------------------------------------------------------------------
 * Defect 10: API gaps.
 */

/* Is any part of [p, p + len) mapped? */
static int mapped(void *p, size_t len)
{
	unsigned char vec[64];

	ck_assert_uint_le(len / PAGE, sizeof(vec));
	return mincore(p, len, vec) == 0;
}

struct remover {
	xpmem_segid_t segid;
	int ret;
};

static void *remove_soon(void *arg)
{
	struct remover *r = arg;

	usleep(20000);
	r->ret = xpmem_remove(r->segid);
	return NULL;
}

/*
 * A failed XPMEM_ATTACH_POPULATE leaves nothing mapped: the caller never
 * learns the address, so it could never unmap it. Populating 256 MiB of
 * holes goes page by page and takes long enough for another thread to
 * remove the segment under it (ENOENT).
 */
START_TEST(failed_populate_leaves_nothing_mapped)
{
	const size_t len = 256UL << 20;
	struct remover r;
	struct xpmem_addr addr = hole_source(len, &r.segid);
	void *hole = (void *)(uintptr_t)addr.offset;
	pthread_t thread;
	long alive;
	void *a;
	int err;

	alive = xtest_stat("attachments_alive");
	ck_assert_int_eq(pthread_create(&thread, NULL, remove_soon, &r), 0);
	a = xpmem_ext_attach(addr, len, NULL, XPMEM_ATTACH_POPULATE);
	err = errno;
	pthread_join(thread, NULL);
	ck_assert_int_eq(r.ret, 0);
	ck_assert_msg(a == (void *)-1, "populating finished before the removal");
	ck_assert_int_eq(err, ENOENT);
	/* Nothing of it is left, in the driver or in our address space. */
	ck_assert_int_eq(xtest_stat("attachments_alive"), alive);
	ck_assert_int_eq(msync(hole, PAGE, MS_ASYNC), -1);
}
END_TEST

/* RELEASE detaches first, and keeps the permit when it cannot. */
START_TEST(release_detaches_before_it_drops_the_permit)
{
	const size_t len = 4 * PAGE;
	unsigned char *buf = map_anon(len);
	xpmem_segid_t segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	struct xpmem_addr addr;
	unsigned char *a[3];

	memset(buf, 0x71, len);
	addr.apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	addr.offset = (off_t)(uintptr_t)buf;
	for (int i = 0; i < 3; i++) {
		a[i] = xpmem_attach(addr, len, NULL);
		ck_assert(a[i] != (void *)-1);
		ck_assert(xtest_all_bytes_are(a[i], len, 0x71));
	}
	/* Split one attachment in three pieces: all go. */
	ck_assert_int_eq(mprotect(a[1] + PAGE, PAGE, PROT_READ), 0);
	ck_assert_int_eq(xpmem_release(addr.apid), 0);
	for (int i = 0; i < 3; i++)
		ck_assert(!mapped(a[i], len));
	ck_assert_int_eq(xpmem_release(addr.apid), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

/* ------------------------------------------------------------------------
 * Review of issue 11: a fault of the exporter's memory was made with the
 * attacher's mmap_lock held, so an exporter could make it wait as long as
 * it liked (a frozen file system here; a FUSE server would do as well),
 * and every mmap() and munmap() of the attacher with it, unkillably.
 */
#define FRZ_IMG "/dev/shm/xpmem-freeze.img"
#define FRZ_DIR "/dev/shm/xpmem-freeze"
#define FRZ_FILE FRZ_DIR "/f"
#define FRZ_HOLD_MS 3000

/* Can this kernel mount an ext4 image from a loop device? (root only) */
static bool can_mount_ext4(void)
{
	if (geteuid() != 0)
		return false;
	(void)!system("modprobe -q loop 2>/dev/null; modprobe -q ext4 2>/dev/null");
	return system("grep -qw ext4 /proc/filesystems && test -e /dev/loop-control") == 0;
}

struct frz {
	int dirfd;
	volatile unsigned char *att;
	double wrote_at;
};

static void *frz_writer(void *arg)
{
	struct frz *f = arg;

	f->att[0] = 'B';
	f->wrote_at = now_s();
	return NULL;
}

static void *frz_thaw(void *arg)
{
	struct frz *f = arg;

	usleep(FRZ_HOLD_MS * 1000);
	(void)!ioctl(f->dirfd, FITHAW, 0);
	return NULL;
}

/*
 * _i = 0: the exporter is idle. _i = 1: an exporter thread keeps its
 * mmap_lock busy, so that the first try of the fault finds it taken and
 * waits for it (without ours), and the fault is made again as a retried
 * one: that too must not wait with our lock held.
 */
START_TEST(exporter_fault_waits_without_the_attacher_lock)
{
	unsigned char page[PAGE], *buf;
	int fd, out[2], in[2], status;
	struct frz f = { .dirfd = -1 };
	pthread_t writer, thaw;
	double t0, t_mmap, frozen_at;
	long unlocked0, busy0;
	struct xpmem_addr addr;
	xpmem_segid_t segid;
	pid_t pid;
	void *x;

	(void)!system("umount " FRZ_DIR " 2>/dev/null");
	mkdir(FRZ_DIR, 0755);
	ck_assert_int_eq(system("rm -f " FRZ_IMG " && truncate -s 32M " FRZ_IMG " && "
				"mkfs.ext4 -q -F " FRZ_IMG " && mount -o loop " FRZ_IMG " " FRZ_DIR), 0);
	fd = open(FRZ_FILE, O_RDWR | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	memset(page, 'a', sizeof(page));
	ck_assert_int_eq(pwrite(fd, page, sizeof(page), 0), (ssize_t)sizeof(page));
	ck_assert_int_eq(fsync(fd), 0);

	/*
	 * The exporter maps the file shared and reads it: its PTE is clean and
	 * read-only, so a write through an attachment must fault the page in
	 * for writing, in ->page_mkwrite, which waits while the file system
	 * is frozen.
	 */
	ck_assert_int_eq(pipe(out), 0);
	ck_assert_int_eq(pipe(in), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		volatile unsigned char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		struct churn c = { .buf = map_anon(1 << 16), .len = 1 << 16 };
		pthread_t t;
		char byte;

		if (p == MAP_FAILED || p[0] != 'a')
			_exit(1);
		if (_i == 1 && pthread_create(&t, NULL, churn_thread, &c))
			_exit(4);
		segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
		if (segid < 0 || write(out[1], &segid, sizeof(segid)) != sizeof(segid) ||
		    write(out[1], &p, sizeof(p)) != sizeof(p))
			_exit(2);
		(void)!read(in[0], &byte, 1);
		_exit(p[0] == 'B' ? 0 : 3);
	}
	close(out[1]);
	close(in[0]);
	ck_assert_int_eq(read(out[0], &segid, sizeof(segid)), (ssize_t)sizeof(segid));
	ck_assert_int_eq(read(out[0], &buf, sizeof(buf)), (ssize_t)sizeof(buf));
	addr.apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert_int_gt(addr.apid, 0);
	addr.offset = (off_t)(uintptr_t)buf;
	f.att = xpmem_attach(addr, PAGE, NULL);
	ck_assert(f.att != (void *)-1);
	ck_assert_int_eq(f.att[0], 'a');
	unlocked0 = xtest_stat("fault_in_unlocked");
	busy0 = xtest_stat("fault_source_busy");

	f.dirfd = open(FRZ_DIR, O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(f.dirfd, 0);
	ck_assert_int_eq(ioctl(f.dirfd, FIFREEZE, 0), 0);
	frozen_at = now_s();
	/* Nothing below may stop the test before the file system is thawed. */
	ck_assert_int_eq(pthread_create(&thaw, NULL, frz_thaw, &f), 0);
	ck_assert_int_eq(pthread_create(&writer, NULL, frz_writer, &f), 0);
	usleep(300 * 1000);
	/* The writer waits for the thaw. Our own mmap() must not. */
	t0 = now_s();
	x = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	t_mmap = now_s() - t0;
	pthread_join(writer, NULL);
	pthread_join(thaw, NULL);
	close(f.dirfd);

	ck_assert(x != MAP_FAILED);
	munmap(x, PAGE);
	ck_assert_msg(f.wrote_at - frozen_at > FRZ_HOLD_MS / 1000.0 * 0.8,
		      "the write did not wait for the thaw (%.2f s): nothing was tested",
		      f.wrote_at - frozen_at);
	ck_assert_msg(t_mmap < FRZ_HOLD_MS / 1000.0 / 3,
		      "mmap() waited %.2f s for the exporter's fault (frozen %.1f s)",
		      t_mmap, FRZ_HOLD_MS / 1000.0);
	/* Faulted in without our lock: after a snapshot, or a busy lock. */
	ck_assert(xtest_stat("fault_in_unlocked") > unlocked0 ||
		  (_i == 1 && xtest_stat("fault_source_busy") > busy0));
	/* The write landed, and the exporter sees it. */
	ck_assert_int_eq(pread(fd, page, 1, 0), 1);
	ck_assert_int_eq(page[0], 'B');
	ck_assert_int_eq(write(in[1], "s", 1), 1);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exporter status %#x", status);
	ck_assert_int_eq(xpmem_detach((void *)f.att), 0);
	close(fd);
	ck_assert_int_eq(system("umount " FRZ_DIR " && rm -f " FRZ_IMG), 0);
}
END_TEST

/* ------------------------------------------------------------------------
 * Defect 12: mmap() gives a process with READ_IMPLIES_EXEC (personality(2),
 * or any ia32 binary without PT_GNU_STACK) PROT_EXEC on every readable
 * mapping of a file on an exec-capable filesystem, and our pseudo
 * filesystem was one where init_pseudo() does not make it noexec (6.1):
 * the attacher could execute the exporter's bytes, whatever the
 * exporter's own mapping allows.
 */

/* The permissions that /proc/self/maps shows for the mapping at @addr. */
static void maps_perms(const void *addr, char perms[5])
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long lo, hi;
	char line[512];

	ck_assert(f != NULL);
	strcpy(perms, "????");
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 &&
		    (uintptr_t)addr >= lo && (uintptr_t)addr < hi)
			break;
	fclose(f);
}

START_TEST(attachments_are_never_executable)
{
	unsigned char *buf, *rw, *ro;
	char perms[5];

	ck_assert_int_ne(personality(PER_LINUX | READ_IMPLIES_EXEC), -1);
	ck_assert(personality(0xffffffff) & READ_IMPLIES_EXEC);
	/* The kernel does give this process's other mappings PROT_EXEC. */
	buf = map_anon(PAGE);
	maps_perms(buf, perms);
	ck_assert_str_eq(perms, "rwxp");
	memset(buf, 0xc3, PAGE);		/* "ret", were it executed */
	rw = attach_self_mode(buf, PAGE, XPMEM_RDWR);
	ro = attach_self_mode(buf, PAGE, XPMEM_RDONLY);
	maps_perms(rw, perms);
	ck_assert_msg(!strcmp(perms, "rw-s"), "RDWR attachment is %s, not rw-s", perms);
	maps_perms(ro, perms);
	ck_assert_msg(!strcmp(perms, "r--s"), "RDONLY attachment is %s, not r--s", perms);
	ck_assert(xtest_all_bytes_are(ro, PAGE, 0xc3));
	errno = 0;
	ck_assert_int_eq(mprotect(ro, PAGE, PROT_READ | PROT_EXEC), -1);
	ck_assert_int_eq(errno, EACCES);
}
END_TEST

/* ------------------------------------------------------------------------
 * Defect 14: XPMEM_ATTACH_POPULATE never offered the CPU. Over holes it
 * goes page by page, and it went on page by page through whatever another
 * thread unmapped under it. On a kernel that does not preempt kernel code
 * (preempt=none, as many HPC kernels run), any user held a CPU for as long
 * as the range lasted, and everything else queued on that CPU waited.
 */

#define PREEMPT_CTL "/sys/kernel/debug/sched/preempt"

/* The preemption mode before the tests, restored after them (by Check's parent). */
static char saved_preempt[32];

/* The current mode is the one in parentheses: "none (voluntary) full". */
static bool read_preempt_mode(char *mode, size_t size)
{
	char line[128], *open, *close;
	FILE *f = fopen(PREEMPT_CTL, "r");
	bool ok;

	if (!f)
		return false;
	ok = fgets(line, sizeof(line), f) && (open = strchr(line, '(')) &&
	     (close = strchr(open, ')')) && (size_t)(close - open - 1) < size;
	fclose(f);
	if (ok)
		snprintf(mode, size, "%.*s", (int)(close - open - 1), open + 1);
	return ok;
}

static bool can_run_without_preemption(void)
{
	char line[128] = "";
	FILE *f;

	if (geteuid() != 0 || !(f = fopen(PREEMPT_CTL, "r")))
		return false;
	(void)!fgets(line, sizeof(line), f);
	fclose(f);
	return strstr(line, "none") != NULL;
}

static void preempt_save(void)
{
	if (!read_preempt_mode(saved_preempt, sizeof(saved_preempt)))
		saved_preempt[0] = '\0';
}

static void preempt_restore(void)
{
	if (saved_preempt[0])
		(void)!xtest_write_file(PREEMPT_CTL, saved_preempt);
}

/* This thread, and the threads it makes from now on, run on CPU 0 only. */
static void pin_to_cpu0(void)
{
	cpu_set_t cpu0;

	CPU_ZERO(&cpu0);
	CPU_SET(0, &cpu0);
	ck_assert_int_eq(sched_setaffinity(0, sizeof(cpu0), &cpu0), 0);
}

/* Spins, and records the longest time it did not get the CPU. */
struct sampler {
	atomic_int stop;
	double longest_wait;
};

static void *sample_cpu(void *arg)
{
	struct sampler *s = arg;
	double last = now_s(), t;

	while (!atomic_load(&s->stop)) {
		t = now_s();
		if (t - last > s->longest_wait)
			s->longest_wait = t - last;
		last = t;
	}
	return NULL;
}

/*
 * Run @op(@arg) with kernel preemption off, on CPU 0, beside a thread that
 * wants the same CPU. Returns how long @op took; *@waited is the longest
 * the other thread went without the CPU meanwhile.
 */
static double time_beside_a_spinner(void (*op)(void *), void *arg, double *waited)
{
	struct sampler s = { .longest_wait = 0 };
	pthread_t thread;
	double t0, took;

	ck_assert_int_eq(xtest_write_file(PREEMPT_CTL, "none"), 0);
	pin_to_cpu0();
	ck_assert_int_eq(pthread_create(&thread, NULL, sample_cpu, &s), 0);
	usleep(50000);
	t0 = now_s();
	op(arg);
	took = now_s() - t0;
	atomic_store(&s.stop, 1);
	pthread_join(thread, NULL);
	*waited = s.longest_wait;
	return took;
}

/* Before the fixes, the other thread waited for all of it. */
static void assert_cpu_offered(const char *what, double took, double waited)
{
	ck_assert_msg(took >= 0.3, "%s took only %.2f s: too short to tell", what, took);
	ck_assert_msg(waited < took / 4, "a thread on the same CPU waited %.2f s of the %.2f s %s took",
		      waited, took, what);
}

struct populate_op {
	struct xpmem_addr addr;
	size_t len;
	void *a;
};

static void do_populate(void *arg)
{
	struct populate_op *p = arg;

	p->a = xpmem_ext_attach(p->addr, p->len, NULL, XPMEM_ATTACH_POPULATE);
}

/*
 * Populating 1 GiB of holes, without kernel preemption, while another
 * thread of ours wants the same CPU: that thread must get it within a
 * fraction of the time populating takes. Before the fix it waited for all
 * of it.
 */
START_TEST(populate_over_holes_gives_up_the_cpu)
{
	const size_t len = 1UL << 30;
	xpmem_segid_t segid;
	struct populate_op p = { .addr = hole_source(len, &segid), .len = len };
	double took, waited;

	took = time_beside_a_spinner(do_populate, &p, &waited);
	ck_assert(p.a != (void *)-1);
	ck_assert_int_eq(xpmem_detach(p.a), 0);
	ck_assert_int_eq(xpmem_remove(segid), 0);
	assert_cpu_offered("populating 1 GiB of holes", took, waited);
}
END_TEST

static void do_detach(void *arg)
{
	ck_assert_int_eq(xpmem_detach(arg), 0);
}

/*
 * DETACH unmaps an attachment piece by piece, one vm_munmap() each, and its
 * caller may have split it into vm.max_map_count pieces.
 */
START_TEST(detach_of_many_pieces_gives_up_the_cpu)
{
	enum { PIECES = 16384 };
	unsigned char *buf = map_anon(PIECES * PAGE), *a;
	double took, waited;

	a = attach_self(buf, PIECES * PAGE);
	/* Every other page read-only: that many VMAs, none faulted in. */
	for (int i = 1; i < PIECES; i += 2)
		ck_assert_int_eq(mprotect(a + i * PAGE, PAGE, PROT_READ), 0);
	took = time_beside_a_spinner(do_detach, a, &waited);
	assert_cpu_offered("detaching 16384 pieces", took, waited);
}
END_TEST

static void do_close(void *arg)
{
	ck_assert_int_eq(close(*(int *)arg), 0);
}

/* Closing a descriptor removes each of its segments, up to max_segments. */
START_TEST(closing_many_segments_gives_up_the_cpu)
{
	enum { N = 65536 };
	unsigned char *buf = map_anon(N * PAGE);
	int fd = open(XPMEM_DEV_PATH, O_RDWR);
	double took, waited;

	ck_assert_int_ge(fd, 0);
	for (int i = 0; i < N; i++)
		ck_assert_int_gt(make_range_on(fd, buf + i * PAGE, PAGE), 0);
	took = time_beside_a_spinner(do_close, &fd, &waited);
	assert_cpu_offered("closing a descriptor of 65536 segments", took, waited);
}
END_TEST

struct unmapper {
	void *at;
	size_t len;
	double unmapped_at;
};

static void *unmap_soon(void *arg)
{
	struct unmapper *u = arg;

	usleep(300000);
	u->unmapped_at = now_s();
	(void)!munmap(u->at, u->len);
	return NULL;
}

/*
 * Another thread unmaps the 64 GiB attachment that ATTACH is populating (it
 * knows the address: ATTACH was given it). Populating stops there, rather
 * than going on through the rest of the range page by page.
 */
START_TEST(populate_stops_where_the_attachment_is_unmapped)
{
	const size_t len = 64UL << 30;
	xpmem_segid_t segid;
	struct xpmem_addr addr = hole_source(len, &segid);
	struct unmapper u = { .len = len };
	pthread_t thread;
	double t0, done;
	void *a;

	u.at = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(u.at != MAP_FAILED);
	ck_assert_int_eq(pthread_create(&thread, NULL, unmap_soon, &u), 0);
	t0 = now_s();
	a = xpmem_ext_attach(addr, len, u.at, XPMEM_ATTACH_POPULATE);
	done = now_s();
	pthread_join(thread, NULL);
	ck_assert_int_eq(xpmem_remove(segid), 0);
	ck_assert(a == u.at);
	ck_assert_msg(done > u.unmapped_at, "populating finished in %.2f s, before the unmap",
		      done - t0);
	ck_assert_msg(done - u.unmapped_at < 0.25,
		      "populating went on for %.2f s after its attachment was unmapped",
		      done - u.unmapped_at);
}
END_TEST

/*
 * One test case per defect, named after it, so that
 * CK_RUN_CASE=<name> runs one alone (a defect that hangs the driver before
 * its fix would otherwise hide the cases after it).
 */
int main(void)
{
	Suite *s = suite_create("hardening");
	TCase *tc;

	tc = xtest_tcase(s, "d1_pfn_mkwrite_retry");
	tcase_add_test(tc, read_then_write_under_exporter_mmap_churn);
	tc = xtest_tcase(s, "d2_retry_use_after_free");
	tcase_add_test(tc, teardown_while_a_fault_waits_for_the_exporter);
	tc = xtest_tcase(s, "d3_remap_file_pages");
	tcase_add_test(tc, remap_file_pages_on_an_attachment_is_refused);
	tc = xtest_tcase(s, "d4_lost_writes");
	tcase_add_test(tc, read_fault_maps_read_only);
	tcase_add_test(tc, write_first_to_read_shmem_survives_pageout);
	tcase_add_test(tc, write_after_madv_free_survives_pageout);
	tcase_add_test(tc, write_after_read_of_shmem_survives_pageout);
	tc = xtest_tcase(s, "d5_gup_refused_memory");
	if (xtest_kernel_at_least(5, 14))
		tcase_add_test(tc, secret_memory_is_not_readable_through_an_attachment);
	else
		xtest_skip("secret_memory_is_not_readable_through_an_attachment",
			   "this kernel has no secret memory (memfd_secret() came in 5.14)");
	tcase_add_test(tc, pfn_and_prot_none_ranges_are_sigbus);
	tc = xtest_tcase(s, "d6_madv_dofork");
	tcase_add_test(tc, madv_dofork_is_refused);
	tc = xtest_tcase(s, "d7_memcg_and_limits");
	/* Thousands of permits until the cgroup stops them: slow under KASAN. */
	tcase_set_timeout(tc, 300);
	if (geteuid() == 0) {
		tcase_add_unchecked_fixture(tc, limits_save, limits_restore);
		tcase_add_checked_fixture(tc, limits_restore, NULL);
		tcase_add_test(tc, permits_are_charged_to_the_memcg_and_bounded);
		tcase_add_test(tc, limits_give_enospc);
		tcase_add_test(tc, permits_cost_little_kernel_memory);
		tcase_add_test(tc, segments_cost_no_xarray_nodes);
		tcase_add_test(tc, segment_limit_is_per_process);
		tcase_add_test(tc, segments_over_one_page_are_bounded);
		tcase_add_test(tc, overlap_check_delays_only_its_own_process);
	} else {
		xtest_skip("permits_are_charged_to_the_memcg_and_bounded", "needs root (a memory cgroup)");
		xtest_skip("limits_give_enospc", "needs root (module parameters)");
		xtest_skip("permits_cost_little_kernel_memory", "needs root (/proc/slabinfo)");
		xtest_skip("segments_cost_no_xarray_nodes", "needs root (/proc/slabinfo)");
		xtest_skip("segment_limit_is_per_process", "needs root (module parameters)");
		xtest_skip("segments_over_one_page_are_bounded", "needs root (module parameters)");
		xtest_skip("overlap_check_delays_only_its_own_process", "needs root (module parameters)");
	}
	tc = xtest_tcase(s, "d8_lock_order");
	tcase_add_test(tc, futex_on_mutual_attachments_under_churn);
	tc = xtest_tcase(s, "d9_upgrade_cost");
	tcase_add_test(tc, write_upgrade_maps_one_page);
	tc = xtest_tcase(s, "d10_api");
	tcase_add_test(tc, failed_populate_leaves_nothing_mapped);
	tcase_add_test(tc, release_detaches_before_it_drops_the_permit);
	tc = xtest_tcase(s, "d11_fault_in_without_our_lock");
	if (can_mount_ext4())
		tcase_add_loop_test(tc, exporter_fault_waits_without_the_attacher_lock, 0, 2);
	else
		xtest_skip("exporter_fault_waits_without_the_attacher_lock",
			   geteuid() ? "needs root (mount, fsfreeze)" :
				       "this kernel cannot mount ext4 from a loop device");
	tc = xtest_tcase(s, "d12_exec");
	tcase_add_test(tc, attachments_are_never_executable);
	tc = xtest_tcase(s, "d14_long_commands_yield");
	/* Before the fix, populating went on through 64 GiB page by page. */
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, populate_stops_where_the_attachment_is_unmapped);
	if (can_run_without_preemption()) {
		tcase_add_unchecked_fixture(tc, preempt_save, preempt_restore);
		tcase_add_test(tc, populate_over_holes_gives_up_the_cpu);
		tcase_add_test(tc, detach_of_many_pieces_gives_up_the_cpu);
		tcase_add_test(tc, closing_many_segments_gives_up_the_cpu);
	} else {
		const char *why = geteuid() ? "needs root (" PREEMPT_CTL ")" :
			"this kernel cannot turn kernel preemption off (no PREEMPT_DYNAMIC)";

		xtest_skip("populate_over_holes_gives_up_the_cpu", why);
		xtest_skip("detach_of_many_pieces_gives_up_the_cpu", why);
		xtest_skip("closing_many_segments_gives_up_the_cpu", why);
	}
	return xtest_main("hardening", s, XTEST_NEEDS_DEVICE);
}
