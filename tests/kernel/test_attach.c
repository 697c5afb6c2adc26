// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_attach.c - attachments: data, coherence, protection and lifetime.
 *
 * Most tests run an exporter in a child process (a "peer") that changes its
 * memory on command, while the test reads and writes it through an
 * attachment. Needs the module: run in the VM (tests/run-tests).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/mempolicy.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "xpmem.h"
#include "xtest.h"
#include "exporter32.h"

#define PAGE 4096UL
#define LEN (64 * PAGE)

enum peer_cmd {
	CMD_FILL = 1,	/* memset(buf, arg) */
	CMD_REMAP,	/* munmap + mmap the same address, then fill with arg */
	CMD_DONTNEED,	/* madvise(MADV_DONTNEED) */
	CMD_PROTECT_RO,	/* mprotect(PROT_READ) */
	CMD_CHECK,	/* answer 1 if every byte is arg */
	CMD_FORK,	/* fork a child that keeps the pages COW-shared */
	CMD_REMOVE,	/* xpmem_remove() */
	CMD_MREMAP,	/* move the pages away, map new ones filled with arg */
	CMD_EXIT,	/* exit (EOF does too, once every writer is gone) */
	CMD_MIGRATE,	/* move_pages() to the other NUMA node; answer how many failed */
	CMD_CHECK_FORKED,	/* answer 1 if every byte of CMD_FORK's child's copy is arg */
};

/* The NUMA node of each page of @buf afterwards in @status. */
static long move_buf(unsigned char *buf, const int *nodes, int *status)
{
	void *pages[LEN / 4096];

	for (size_t i = 0; i < LEN / 4096; i++)
		pages[i] = buf + i * 4096;
	return syscall(SYS_move_pages, 0, LEN / 4096, pages, nodes, status, MPOL_MF_MOVE);
}

static int migrate_to_other_node(unsigned char *buf)
{
	int nodes[LEN / 4096], status[LEN / 4096], failed = 0;

	if (move_buf(buf, NULL, status) != 0)	/* where are they now? */
		return -1;
	for (size_t i = 0; i < LEN / 4096; i++)
		nodes[i] = status[0] == 0 ? 1 : 0;
	if (move_buf(buf, nodes, status) < 0)
		return -1;
	for (size_t i = 0; i < LEN / 4096; i++)
		failed += status[i] != nodes[i];
	return failed;
}

struct peer {
	pid_t pid;
	int cmd_fd, ack_fd;
	xpmem_segid_t segid;
	unsigned char *buf;	/* in the peer's address space */
};

/* The forked child of CMD_FORK: answers CMD_CHECK_FORKED for its copy. */
static void forked_loop(int cmd_fd, int ack_fd, const unsigned char *buf)
{
	int v;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while (read(cmd_fd, &v, sizeof(v)) == sizeof(v)) {
		int same = 1;

		for (size_t i = 0; i < LEN; i++)
			same &= buf[i] == (unsigned char)v;
		if (write(ack_fd, &same, sizeof(same)) != sizeof(same))
			break;
	}
	_exit(0);
}

static void peer_loop(int cmd_fd, int ack_fd, unsigned char *buf, xpmem_segid_t segid)
{
	int msg[2], kid_cmd = -1, kid_ack = -1;

	while (read(cmd_fd, msg, sizeof(msg)) == sizeof(msg)) {
		int ret = 0;

		switch (msg[0]) {
		case CMD_FILL:
			memset(buf, msg[1], LEN);
			break;
		case CMD_REMAP:
			ret = munmap(buf, LEN) ||
			      mmap(buf, LEN, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != buf;
			if (!ret)
				memset(buf, msg[1], LEN);
			break;
		case CMD_DONTNEED:
			ret = madvise(buf, LEN, MADV_DONTNEED);
			break;
		case CMD_PROTECT_RO:
			ret = mprotect(buf, LEN, PROT_READ);
			break;
		case CMD_CHECK:
			ret = 1;
			for (size_t i = 0; i < LEN; i++)
				ret &= buf[i] == (unsigned char)msg[1];
			break;
		case CMD_FORK: {
			/* The grandchild keeps the pages until its parent goes away. */
			int kc[2], ka[2];

			if (kid_cmd >= 0 || pipe(kc) || pipe(ka)) {
				ret = -1;
				break;
			}
			if (fork() == 0) {
				close(cmd_fd);
				close(ack_fd);
				close(kc[1]);
				close(ka[0]);
				forked_loop(kc[0], ka[1], buf);
			}
			close(kc[0]);
			close(ka[1]);
			kid_cmd = kc[1];
			kid_ack = ka[0];
			break;
		}
		case CMD_CHECK_FORKED:
			if (kid_cmd < 0 || write(kid_cmd, &msg[1], sizeof(msg[1])) != sizeof(msg[1]) ||
			    read(kid_ack, &ret, sizeof(ret)) != sizeof(ret))
				ret = -1;
			break;
		case CMD_REMOVE:
			ret = xpmem_remove(segid);
			break;
		case CMD_MIGRATE:
			ret = migrate_to_other_node(buf);
			break;
		case CMD_MREMAP: {
			void *dst = mmap(NULL, LEN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			void *away = mremap(buf, LEN, LEN, MREMAP_MAYMOVE | MREMAP_FIXED, dst);

			ret = dst == MAP_FAILED || away != dst ||
			      mmap(buf, LEN, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != buf;
			if (!ret)
				memset(buf, msg[1], LEN);
			break;
		}
		}
		if (msg[0] == CMD_EXIT)
			break;
		if (write(ack_fd, &ret, sizeof(ret)) != sizeof(ret))
			break;
	}
	_exit(0);
}

/* Start an exporter of LEN bytes filled with @fill, exported with @mode. */
static void peer_start(struct peer *p, int fill, int mode)
{
	int cmd[2], ack[2];

	ck_assert_int_eq(pipe(cmd), 0);
	ck_assert_int_eq(pipe(ack), 0);
	p->pid = fork();
	ck_assert_int_ge(p->pid, 0);
	if (p->pid == 0) {
		unsigned char *buf;
		xpmem_segid_t segid;

		/*
		 * Keep automatic NUMA balancing off the peer's pages: its
		 * hinting changes are real invalidations, and on the slow
		 * debug kernel they spoiled all 10 tries of the batching
		 * test. A local policy (no MPOL_F_MOF) is not scanned; it
		 * is no error if the kernel has no NUMA.
		 */
		(void)syscall(SYS_set_mempolicy, MPOL_LOCAL, NULL, 0);
		buf = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		close(cmd[1]);
		close(ack[0]);
		if (buf == MAP_FAILED)
			_exit(1);
		memset(buf, fill, LEN);
		segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE,
				   (void *)(uintptr_t)mode);
		if (write(ack[1], &segid, sizeof(segid)) != sizeof(segid) ||
		    write(ack[1], &buf, sizeof(buf)) != sizeof(buf))
			_exit(1);
		peer_loop(cmd[0], ack[1], buf, segid);
	}
	close(cmd[0]);
	close(ack[1]);
	p->cmd_fd = cmd[1];
	p->ack_fd = ack[0];
	ck_assert_int_eq(read(p->ack_fd, &p->segid, sizeof(p->segid)), sizeof(p->segid));
	ck_assert_int_eq(read(p->ack_fd, &p->buf, sizeof(p->buf)), sizeof(p->buf));
	ck_assert_int_gt(p->segid, 0);
}

static int peer_cmd(struct peer *p, int cmd, int arg)
{
	int msg[2] = { cmd, arg }, ret = -1;

	ck_assert_int_eq(write(p->cmd_fd, msg, sizeof(msg)), sizeof(msg));
	ck_assert_int_eq(read(p->ack_fd, &ret, sizeof(ret)), sizeof(ret));
	return ret;
}

/*
 * Ends the peer and waits for it. An explicit command, because peers forked
 * later hold copies of this one's pipe and it would never see EOF.
 */
static void peer_stop(struct peer *p)
{
	int msg[2] = { CMD_EXIT, 0 }, status;

	ck_assert_int_eq(write(p->cmd_fd, msg, sizeof(msg)), sizeof(msg));
	close(p->cmd_fd);
	close(p->ack_fd);
	ck_assert_int_eq(waitpid(p->pid, &status, 0), p->pid);
}

/*
 * Attach the peer's whole buffer through a new permit with @access, at
 * @vaddr (NULL: anywhere).
 */
static unsigned char *peer_attach_at(struct peer *p, int access, void *vaddr,
				     xpmem_apid_t *apidp)
{
	struct xpmem_addr addr;
	void *a;

	addr.apid = xpmem_get(p->segid, access, XPMEM_PERMIT_MODE, NULL);
	ck_assert_msg(addr.apid > 0, "xpmem_get: %s", strerror(errno));
	addr.offset = (off_t)(uintptr_t)p->buf;
	a = xpmem_attach(addr, LEN, vaddr);
	ck_assert_msg(a != (void *)-1, "xpmem_attach: %s", strerror(errno));
	if (apidp)
		*apidp = addr.apid;
	return a;
}

/* The same, anywhere. */
static unsigned char *peer_attach(struct peer *p, int access, xpmem_apid_t *apidp)
{
	return peer_attach_at(p, access, NULL, apidp);
}

/* ---- data */

START_TEST(attachment_reads_exporter_data)
{
	struct peer p;
	unsigned char *a;

	peer_start(&p, 0x11, 0600);
	a = peer_attach(&p, XPMEM_RDWR, NULL);
	ck_assert(xtest_all_bytes_are(a, LEN, 0x11));
	peer_stop(&p);
}
END_TEST

START_TEST(attachment_writes_reach_exporter)
{
	struct peer p;
	unsigned char *a;

	peer_start(&p, 0x11, 0600);
	a = peer_attach(&p, XPMEM_RDWR, NULL);
	memset(a, 0x22, LEN);
	ck_assert_int_eq(peer_cmd(&p, CMD_CHECK, 0x22), 1);
	peer_stop(&p);
}
END_TEST

START_TEST(unaligned_offset_points_at_that_byte)
{
	struct peer p;
	struct xpmem_addr addr;
	unsigned char *a;

	peer_start(&p, 0x5a, 0600);
	ck_assert_int_eq(peer_cmd(&p, CMD_FILL, 0x37), 0);
	addr.apid = xpmem_get(p.segid, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL);
	addr.offset = (off_t)(uintptr_t)p.buf + 4096 + 123;
	a = xpmem_attach(addr, 10, NULL);
	ck_assert(a != (void *)-1);
	ck_assert_uint_eq((uintptr_t)a & 4095, 123);
	ck_assert(xtest_all_bytes_are(a, 10, 0x37));
	peer_stop(&p);
}
END_TEST

START_TEST(attach_at_a_fixed_address)
{
	struct peer p;
	struct xpmem_addr addr;
	void *want = mmap(NULL, LEN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *a;

	ck_assert(want != MAP_FAILED);
	peer_start(&p, 0x42, 0600);
	addr.apid = xpmem_get(p.segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	addr.offset = (off_t)(uintptr_t)p.buf;
	a = xpmem_attach(addr, LEN, want);
	ck_assert_ptr_eq(a, want);
	ck_assert(xtest_all_bytes_are(a, LEN, 0x42));
	peer_stop(&p);
}
END_TEST

START_TEST(attach_rejects_bad_requests)
{
	struct peer p;
	struct xpmem_addr addr;

	peer_start(&p, 0, 0600);
	addr.apid = xpmem_get(p.segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	addr.offset = (off_t)(uintptr_t)p.buf;

	errno = 0;
	ck_assert(xpmem_attach(addr, 0, NULL) == (void *)-1 && errno == EINVAL);
	errno = 0;
	ck_assert(xpmem_attach(addr, LEN, (void *)(uintptr_t)4097) == (void *)-1 &&
		  errno == EINVAL);
	addr.offset = (off_t)0x7ffffffff000LL + 4096;	/* beyond the segment */
	errno = 0;
	ck_assert(xpmem_attach(addr, 4096, NULL) == (void *)-1 && errno == EINVAL);
	addr.offset = 0x7ffffffff000LL;
	errno = 0;
	ck_assert(xpmem_attach(addr, 8192, NULL) == (void *)-1 && errno == EINVAL);
	addr.offset = -4096;
	errno = 0;
	ck_assert(xpmem_attach(addr, 4096, NULL) == (void *)-1 && errno == EINVAL);
	addr.apid ^= 1;
	addr.offset = 0;
	errno = 0;
	ck_assert(xpmem_attach(addr, 4096, NULL) == (void *)-1 && errno == ENOENT);
	peer_stop(&p);
}
END_TEST

/* ---- coherence: the attachment follows the exporter's page tables */

/* A change the exporter makes, and what the attacher must see afterwards. */
static const struct {
	const char *what;
	int cmd, arg, expect;
} followed[] = {
	{ "exporter writes", CMD_FILL, 0x33, 0x33 },
	{ "MADV_DONTNEED", CMD_DONTNEED, 0, 0 },
	{ "mremap away + new pages", CMD_MREMAP, 0x24, 0x24 },
	{ "munmap + mmap", CMD_REMAP, 0x25, 0x25 },
};

START_TEST(exporter_change_is_followed)
{
	struct peer p;
	unsigned char *a;

	peer_start(&p, 0x11, 0600);
	a = peer_attach(&p, XPMEM_RDONLY, NULL);
	ck_assert(xtest_all_bytes_are(a, LEN, 0x11));
	ck_assert_int_eq(peer_cmd(&p, followed[_i].cmd, followed[_i].arg), 0);
	ck_assert_msg(xtest_all_bytes_are(a, LEN, followed[_i].expect),
		      "stale data after %s", followed[_i].what);
	peer_stop(&p);
}
END_TEST

/* free + new memory at the same address: the attachment shows the new pages. */
START_TEST(munmap_and_mmap_are_followed)
{
	long before = xtest_stat("inv_unmap");
	struct peer p;
	unsigned char *a;

	peer_start(&p, 0x11, 0600);
	a = peer_attach(&p, XPMEM_RDWR, NULL);
	ck_assert(xtest_all_bytes_are(a, LEN, 0x11));
	ck_assert_int_eq(peer_cmd(&p, CMD_REMAP, 0x44), 0);
	ck_assert(xtest_all_bytes_are(a, LEN, 0x44));
	/* And writes land in the new pages. */
	memset(a, 0x45, LEN);
	ck_assert_int_eq(peer_cmd(&p, CMD_CHECK, 0x45), 1);
	ck_assert_int_gt(xtest_stat("inv_unmap"), before);
	peer_stop(&p);
}
END_TEST

/*
 * The callback zaps attachers only where an attachment covers the changed
 * range. A change elsewhere in the exporter (which MPI ranks, exporting
 * their whole address space, make all the time) is counted in
 * inv_unattached and waits for no zap; one inside, or across an edge, is
 * zapped and followed. A detached range is "elsewhere" again.
 */
START_TEST(only_attached_ranges_are_zapped)
{
	const size_t n = 64, first = 16, count = 32;	/* pages 16..47 attached */
	unsigned char *buf = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	xpmem_segid_t segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	struct xpmem_addr addr;
	long unattached, zapped;
	unsigned char *a;

	ck_assert(buf != MAP_FAILED);
	ck_assert_int_gt(segid, 0);
	memset(buf, 0x51, n * PAGE);
	addr.apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert_int_gt(addr.apid, 0);
	addr.offset = (off_t)(uintptr_t)(buf + first * PAGE);
	a = xpmem_attach(addr, count * PAGE, NULL);
	ck_assert(a != (void *)-1);
	ck_assert(xtest_all_bytes_are(a, count * PAGE, 0x51));

	/* Below and above the attachment: no zap. */
	unattached = xtest_stat("inv_unattached");
	ck_assert_int_eq(madvise(buf, 8 * PAGE, MADV_DONTNEED), 0);
	ck_assert_int_eq(madvise(buf + 56 * PAGE, 8 * PAGE, MADV_DONTNEED), 0);
	ck_assert_int_ge(xtest_stat("inv_unattached") - unattached, 2);
	ck_assert(xtest_all_bytes_are(a, count * PAGE, 0x51));

	/* Inside, and across the upper edge (pages 44..51): zapped, followed. */
	zapped = xtest_stat("inv_zapped");
	ck_assert_int_eq(madvise(buf + 20 * PAGE, 4 * PAGE, MADV_DONTNEED), 0);
	ck_assert_int_eq(madvise(buf + 44 * PAGE, 8 * PAGE, MADV_DONTNEED), 0);
	ck_assert_int_ge(xtest_stat("inv_zapped") - zapped, 2);
	ck_assert(xtest_all_bytes_are(a, 4 * PAGE, 0x51));
	ck_assert(xtest_all_bytes_are(a + 4 * PAGE, 4 * PAGE, 0));
	ck_assert(xtest_all_bytes_are(a + 8 * PAGE, 20 * PAGE, 0x51));
	ck_assert(xtest_all_bytes_are(a + 28 * PAGE, 4 * PAGE, 0));

	/* Detached: the same range is elsewhere now. */
	ck_assert_int_eq(xpmem_detach(a), 0);
	unattached = xtest_stat("inv_unattached");
	ck_assert_int_eq(madvise(buf + first * PAGE, count * PAGE, MADV_DONTNEED), 0);
	ck_assert_int_ge(xtest_stat("inv_unattached") - unattached, 1);

	ck_assert_int_eq(xpmem_release(addr.apid), 0);
	ck_assert_int_eq(xpmem_remove(segid), 0);
	ck_assert_int_eq(munmap(buf, n * PAGE), 0);
}
END_TEST

/*
 * A write through the attachment breaks COW in the exporter, page by page:
 * the forked child keeps its copy. The write comes first after the fork,
 * so one fault maps the window, whose other pages are still COW-shared
 * with the child: they must stay read-only until written (a fault that
 * mapped them writable would write into the child's copy).
 */
START_TEST(write_breaks_cow_in_the_exporter)
{
	struct peer p;
	unsigned char *a;

	peer_start(&p, 0x11, 0600);
	a = peer_attach(&p, XPMEM_RDWR, NULL);
	ck_assert(xtest_all_bytes_are(a, LEN, 0x11));
	ck_assert_int_eq(peer_cmd(&p, CMD_FORK, 0), 0);
	memset(a, 0x66, LEN);
	ck_assert_int_eq(peer_cmd(&p, CMD_CHECK, 0x66), 1);
	ck_assert_msg(peer_cmd(&p, CMD_CHECK_FORKED, 0x11) == 1,
		      "a write through the attachment reached the forked child's copy");
	/* The exporter's own write after that is seen too. */
	ck_assert_int_eq(peer_cmd(&p, CMD_FILL, 0x67), 0);
	ck_assert(xtest_all_bytes_are(a, LEN, 0x67));
	peer_stop(&p);
}
END_TEST

/* The exporter forks (its pages become COW), then writes: we see its new pages. */
START_TEST(exporter_fork_then_write_is_followed)
{
	struct peer p;
	unsigned char *a;

	peer_start(&p, 0x11, 0600);
	a = peer_attach(&p, XPMEM_RDWR, NULL);
	ck_assert(xtest_all_bytes_are(a, LEN, 0x11));
	ck_assert_int_eq(peer_cmd(&p, CMD_FORK, 0), 0);
	ck_assert_int_eq(peer_cmd(&p, CMD_FILL, 0x22), 0);
	ck_assert(xtest_all_bytes_are(a, LEN, 0x22));
	memset(a, 0x23, LEN);
	ck_assert_int_eq(peer_cmd(&p, CMD_CHECK, 0x23), 1);
	ck_assert_int_eq(peer_cmd(&p, CMD_CHECK_FORKED, 0x11), 1);
	peer_stop(&p);
}
END_TEST

/*
 * Nothing is pinned: pages mapped through an attachment still migrate, and
 * the attachment follows them to the new node.
 */
START_TEST(migrated_pages_are_followed)
{
	/* Migration of mapped pages invalidates them as MMU_NOTIFY_CLEAR. */
	long before = xtest_stat("inv_clear");
	struct peer p;
	unsigned char *a;

	ck_assert_msg(access("/sys/devices/system/node/node1", F_OK) == 0,
		      "needs 2 NUMA nodes: tests/run-tests boots the guest with --numa 2");
	peer_start(&p, 0x11, 0600);
	a = peer_attach(&p, XPMEM_RDWR, NULL);
	ck_assert(xtest_all_bytes_are(a, LEN, 0x11));
	/* Every page moves, although the attachment maps every one of them. */
	ck_assert_int_eq(peer_cmd(&p, CMD_MIGRATE, 0), 0);
	ck_assert(xtest_all_bytes_are(a, LEN, 0x11));
	memset(a, 0x12, LEN);
	ck_assert_int_eq(peer_cmd(&p, CMD_CHECK, 0x12), 1);
	ck_assert_int_gt(xtest_stat("inv_clear"), before);
	/* And back again. */
	ck_assert_int_eq(peer_cmd(&p, CMD_MIGRATE, 0), 0);
	ck_assert(xtest_all_bytes_are(a, LEN, 0x12));
	peer_stop(&p);
}
END_TEST

#define WINDOW (2UL << 20)	/* what one fault maps at most: a page table's span */

/*
 * Reserve three windows of address space and return the address @before
 * bytes below the second window boundary in it: an attachment there has
 * its first @before bytes in one window, with room on both sides. *@area
 * is what to unmap at the end (3 * WINDOW).
 */
static unsigned char *reserve_below_window_end(size_t before, unsigned char **area)
{
	*area = mmap(NULL, 3 * WINDOW, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(*area != MAP_FAILED);
	return (unsigned char *)(((uintptr_t)*area / WINDOW + 2) * WINDOW) - before;
}

/* After a detach: keep [at, at + LEN) reserved for the next try (and check it is free). */
static void reserve_again(unsigned char *at)
{
	ck_assert(mmap(at, LEN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		       -1, 0) == at);
}

/*
 * One fault maps the pages that the exporter has present in the faulting
 * address's 2 MiB window (one page table of ours), so reading the 64-page
 * buffer costs one fault per window it spans. Loop 0 attaches it so that
 * it ends at a 2 MiB boundary (one window), loop 1 so that it starts eight
 * pages below one (two windows: the first fault maps 8 pages). NUMA
 * balancing (the guest has two nodes) can make some exporter pages briefly
 * not present at any moment, which is correct but spoils the count:
 * measure on a fresh attachment up to 10 times and require one clean
 * measurement. A driver that does not batch never gets one.
 */
START_TEST(faults_are_batched)
{
	const long first = _i == 0 ? (long)(LEN / PAGE) : 8, windows = _i == 0 ? 1 : 2;
	long faults = 0, mapped = 0, rest = 0;
	unsigned char *area, *at;
	int clean = 0;
	struct peer p;

	at = reserve_below_window_end(first * PAGE, &area);
	peer_start(&p, 0x11, 0600);
	for (int attempt = 0; attempt < 10 && !clean; attempt++) {
		volatile unsigned char *a = peer_attach_at(&p, XPMEM_RDONLY, at, NULL);
		long f0 = xtest_stat("faults"), m0 = xtest_stat("pages_mapped");

		ck_assert_msg(f0 >= 0, "debugfs stats not readable");
		ck_assert_ptr_eq((void *)a, at);
		ck_assert_uint_eq(a[0], 0x11);
		faults = xtest_stat("faults") - f0;
		mapped = xtest_stat("pages_mapped") - m0;
		ck_assert(xtest_all_bytes_are(a, LEN, 0x11));
		rest = xtest_stat("faults") - f0 - faults;
		clean = faults == 1 && mapped == first && faults + rest == windows;
		ck_assert_int_eq(xpmem_detach((void *)a), 0);
		reserve_again(at);
	}
	ck_assert_msg(clean, "last try: %ld fault(s) mapped %ld of %ld pages, then %ld more "
		      "fault(s) over %ld window(s)", faults, mapped, first, rest, windows);
	peer_stop(&p);
	ck_assert_int_eq(munmap(area, 3 * WINDOW), 0);
}
END_TEST

/*
 * A write fault maps writable every page of its window whose exporter PTE
 * is writable (here: written by the exporter), so writing a fresh
 * attachment costs one fault per window and no ->pfn_mkwrite upgrade:
 * libfabric's RMA write keeps re-attaching, and paid an upgrade per 4 KiB
 * page. The buffer ends at a 2 MiB boundary (one window), and
 * NUMA balancing may spoil a try, as in faults_are_batched.
 */
START_TEST(writes_are_batched)
{
	long faults = 0, upgrades = 0;
	unsigned char *area, *at;
	int clean = 0;
	struct peer p;

	at = reserve_below_window_end(LEN, &area);
	peer_start(&p, 0x21, 0600);
	for (int attempt = 0; attempt < 10 && !clean; attempt++) {
		unsigned char *a;
		long f0, u0;

		/* Written by the exporter: its PTEs are writable and dirty. */
		ck_assert_int_eq(peer_cmd(&p, CMD_FILL, 0x22), 0);
		a = peer_attach_at(&p, XPMEM_RDWR, at, NULL);
		ck_assert_ptr_eq(a, at);
		f0 = xtest_stat("faults");
		u0 = xtest_stat("write_upgrades");
		ck_assert_msg(f0 >= 0 && u0 >= 0, "debugfs stats not readable");
		memset(a, 0x23, LEN);
		faults = xtest_stat("faults") - f0;
		upgrades = xtest_stat("write_upgrades") - u0;
		ck_assert_int_eq(peer_cmd(&p, CMD_CHECK, 0x23), 1);
		clean = faults == 1 && upgrades == 0;
		ck_assert_int_eq(xpmem_detach(a), 0);
		reserve_again(at);
	}
	ck_assert_msg(clean, "last try: writing %ld pages took %ld fault(s) and %ld upgrade(s)",
		      (long)(LEN / PAGE), faults, upgrades);
	peer_stop(&p);
	ck_assert_int_eq(munmap(area, 3 * WINDOW), 0);
}
END_TEST

/*
 * XPMEM_ATTACH_POPULATE maps everything up front, read-only: reading the
 * buffer afterwards costs no fault, and writing it one upgrade per page
 * (a page is writable only once a write has dirtied it). As in
 * faults_are_batched, NUMA balancing may zap a page at any moment, so up
 * to 10 tries must give one clean measurement.
 */
START_TEST(populate_maps_everything_at_attach)
{
	struct xpmem_ioc_info info;
	struct xpmem_addr addr;
	long faults = 0, mapped = 0, upgrades = 0;
	int clean = 0;
	struct peer p;

	ck_assert_int_eq(xpmem_ext_get_info(&info), 0);
	ck_assert(info.features & XPMEM_FEATURE_ATTACH_POPULATE);
	peer_start(&p, 0x19, 0600);
	addr.apid = xpmem_get(p.segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	addr.offset = (off_t)(uintptr_t)p.buf;
	for (int attempt = 0; attempt < 10 && !clean; attempt++) {
		long m0 = xtest_stat("pages_mapped"), f0, u0;
		unsigned char *a;

		/* Fresh pages in the exporter, written (so writable) by it. */
		ck_assert_int_eq(peer_cmd(&p, CMD_DONTNEED, 0), 0);
		ck_assert_int_eq(peer_cmd(&p, CMD_FILL, 0x1a), 0);
		a = xpmem_ext_attach(addr, LEN, NULL, XPMEM_ATTACH_POPULATE);
		ck_assert(a != (void *)-1);
		mapped = xtest_stat("pages_mapped") - m0;
		f0 = xtest_stat("faults");
		ck_assert(xtest_all_bytes_are(a, LEN, 0x1a));
		faults = xtest_stat("faults") - f0;
		u0 = xtest_stat("write_upgrades");
		memset(a, 0x1b, LEN);
		upgrades = xtest_stat("write_upgrades") - u0;
		ck_assert_int_eq(peer_cmd(&p, CMD_CHECK, 0x1b), 1);
		clean = mapped >= (long)(LEN / 4096) && faults == 0 &&
			upgrades == (long)(LEN / 4096);
		ck_assert_int_eq(xpmem_detach(a), 0);
	}
	ck_assert_msg(clean, "last try: populate mapped %ld pages, then %ld fault(s) "
		      "reading and %ld upgrade(s) writing", mapped, faults, upgrades);
	peer_stop(&p);
}
END_TEST

/*
 * Export @npages of fresh memory of our own, filled with 9, with page @hole
 * unmapped, and attach all of it with @flags.
 */
static volatile unsigned char *attach_own_with_hole(size_t npages, size_t hole,
						    unsigned int flags)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned char *buf = mmap(NULL, npages * page, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct xpmem_addr addr;
	xpmem_segid_t segid;
	void *a;

	ck_assert(buf != MAP_FAILED);
	memset(buf, 9, npages * page);
	ck_assert_int_eq(munmap(buf + hole * page, page), 0);
	segid = xpmem_make(buf, npages * page, XPMEM_PERMIT_MODE, (void *)0600);
	addr.apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	addr.offset = 0;
	a = xpmem_ext_attach(addr, npages * page, NULL, flags);
	ck_assert(a != (void *)-1);
	return a;
}

/* Populate skips holes; they still raise SIGBUS when touched. */
START_TEST(populate_skips_holes)
{
	long page = sysconf(_SC_PAGESIZE);
	volatile unsigned char *a = attach_own_with_hole(8, 3, XPMEM_ATTACH_POPULATE);

	ck_assert_uint_eq(a[7 * page], 9);
	(void)a[3 * page];	/* dies here */
}
END_TEST

/*
 * Map one page of ours in the 2 MiB-aligned block that holds @task_size's
 * last page: the lowest free one, so that it stays clear of a stack that
 * may end at the top (no address randomization) and grow down.
 */
static unsigned char *map_top_page(unsigned long task_size)
{
	unsigned long block = (task_size - 1) & ~((2UL << 20) - 1);

	for (unsigned long at = block; at < task_size; at += PAGE) {
		void *p = mmap((void *)at, PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

		if (p != MAP_FAILED)
			return p;
		ck_assert_msg(errno == EEXIST, "mmap at %#lx: %s", at, strerror(errno));
	}
	ck_abort_msg("no free page in [%#lx, %#lx)", block, task_size);
	return NULL;
}

/*
 * Open MPI 4.1's vader rounds an attachment out to 2 MiB on both sides
 * (the end plus one byte) and clamps it only to the highest address in
 * /proc/self/maps, which on x86_64 is [vsyscall]: for a buffer in the top
 * 2 MiB below TASK_SIZE (its stack, in about one process of 8000) it asks
 * a whole segment for a range past TASK_SIZE. HPE's XPMEM refuses it, as
 * we did, and vader's receive path then uses a pointer it never got. We
 * map it; only the pages past the segment's end raise SIGBUS.
 */
struct over_the_top {
	unsigned long task_size;
	unsigned char *top;		/* our page, in the top 2 MiB */
	struct xpmem_addr addr;		/* of vader's range for it */
	uintptr_t base, bound;
	volatile unsigned char *a;	/* attached at base */
};

static void attach_over_the_top(struct over_the_top *t)
{
	const uintptr_t align = 2UL << 20;
	struct xpmem_ioc_info info = { 0 };
	xpmem_segid_t segid;

	ck_assert_int_eq(xpmem_ext_get_info(&info), 0);
	t->task_size = info.task_size;
	t->top = map_top_page(t->task_size);
	memset(t->top, 0x6b, PAGE);
	segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	ck_assert(segid > 0);
	t->addr.apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert(t->addr.apid > 0);
	t->base = (uintptr_t)t->top & ~(align - 1);
	t->bound = (((uintptr_t)t->top + PAGE - 1 + align - 1) & ~(align - 1)) + 1;
	ck_assert(t->bound > t->task_size);
	t->addr.offset = t->base;
	t->a = xpmem_attach(t->addr, t->bound - t->base, NULL);
	ck_assert_msg(t->a != (void *)-1, "attach [%#lx, %#lx): %s", (unsigned long)t->base,
		      (unsigned long)t->bound, strerror(errno));
}

/*
 * The exporter's pages read and write through such a range, also
 * populated, and a segment made with a size keeps refusing a range past
 * its end.
 */
START_TEST(attach_may_run_past_a_whole_segments_end)
{
	struct over_the_top t;
	volatile unsigned char *at;
	xpmem_segid_t sized;
	unsigned char *p;

	attach_over_the_top(&t);
	at = t.a + ((uintptr_t)t.top - t.base);
	ck_assert(xtest_all_bytes_are(at, PAGE, 0x6b));
	at[5] = 0x11;
	ck_assert_uint_eq(t.top[5], 0x11);

	p = xpmem_ext_attach(t.addr, t.bound - t.base, NULL, XPMEM_ATTACH_POPULATE);
	ck_assert_msg(p != (void *)-1, "populate: %s", strerror(errno));
	ck_assert_uint_eq(p[(uintptr_t)t.top - t.base + 5], 0x11);
	ck_assert_int_eq(xpmem_detach(p), 0);

	/* As far as this process could map, no further: mmap(2)'s ENOMEM. */
	errno = 0;
	ck_assert(xpmem_attach(t.addr, t.task_size + PAGE, NULL) == (void *)-1);
	ck_assert_int_eq(errno, ENOMEM);

	sized = xpmem_make(t.top, PAGE, XPMEM_PERMIT_MODE, (void *)0600);
	ck_assert(sized > 0);
	t.addr.apid = xpmem_get(sized, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert(t.addr.apid > 0);
	t.addr.offset = 0;
	errno = 0;
	ck_assert(xpmem_attach(t.addr, PAGE + 1, NULL) == (void *)-1);
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(past_a_whole_segments_end_is_sigbus)
{
	struct over_the_top t;

	attach_over_the_top(&t);
	(void)t.a[t.task_size - t.base];	/* dies here */
}
END_TEST

#ifdef EXPORTER32
/*
 * Start tests/kernel/exporter32 with @in as its stdin and @out as its
 * stdout; it exits at EOF on stdin. The caller opens its descriptors
 * O_CLOEXEC, so that the exporter holds no other end of its pipes.
 * Returns its pid; it exits 127 if the kernel cannot run it.
 */
static pid_t start_exporter32(int in, int out)
{
	pid_t pid = fork();

	if (pid == 0) {
		if (dup2(in, 0) < 0 || dup2(out, 1) < 0)
			_exit(126);
		execl(EXPORTER32, EXPORTER32, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static sigjmp_buf sigbus_jmp;

static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(sigbus_jmp, 1);
}

/*
 * An i386 exporter with the ADDR_LIMIT_3GB personality (tests/kernel/
 * exporter32.c, through the compat ioctl path) makes a whole segment,
 * which ends at 3 GiB; its stack stays above. A range that runs past the
 * end reaches that stack's addresses, but they are outside the segment
 * and its interval notifier: a page mapped from there would stay mapped
 * after the exporter freed it. So it raises SIGBUS, as every page past the
 * end does.
 */
START_TEST(past_a_compat_segments_end_is_not_mapped)
{
	struct sigaction bus = { .sa_handler = on_sigbus };
	struct exporter32_report r = { 0 };
	struct xpmem_addr addr;
	volatile unsigned char *a;
	int to[2], from[2], status;
	pid_t pid;

	ck_assert_int_eq(pipe2(to, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(from, O_CLOEXEC), 0);
	pid = start_exporter32(to[0], from[1]);
	ck_assert_int_ge(pid, 0);
	close(to[0]);
	close(from[1]);
	ck_assert_msg(read(from[0], &r, sizeof(r)) == sizeof(r),
		      "%s did not report: can this kernel run i386 programs?", EXPORTER32);
	ck_assert_msg(r.segid > 0, "exporter32: %s", strerror((int)-r.segid));
	ck_assert_uint_gt(r.marked, EXPORTER32_TASK_SIZE);

	addr.apid = xpmem_get(r.segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert(addr.apid > 0);
	addr.offset = EXPORTER32_TASK_SIZE - PAGE;
	a = xpmem_attach(addr, r.marked + PAGE - addr.offset, NULL);
	ck_assert_msg(a != (void *)-1, "attach: %s", strerror(errno));
	ck_assert_int_eq(sigaction(SIGBUS, &bus, NULL), 0);
	if (!sigsetjmp(sigbus_jmp, 1)) {
		unsigned char v = a[r.marked - addr.offset];

		ck_abort_msg("read %#x from the exporter's stack at %#x, past its segment's end",
			     v, r.marked);
	}
	close(to[1]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

/*
 * Can this kernel run i386 programs? Not without CONFIG_IA32_EMULATION,
 * or with ia32_emulation=false: then no 32-bit exporter exists either.
 * exporter32 with stdin at EOF exits 0 at once; a failed exec, 127.
 */
static int kernel_runs_i386(void)
{
	int status, null = open("/dev/null", O_RDWR | O_CLOEXEC);
	pid_t pid;

	if (null < 0)
		return 0;
	pid = start_exporter32(null, null);
	close(null);
	return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	       WEXITSTATUS(status) == 0;
}
#endif

/*
 * A fault brings in the one page that faulted, in the exporter: the pages
 * around it that the exporter never touched stay unallocated. (The fault
 * maps a whole window, but only of pages that already exist.)
 */
START_TEST(fault_allocates_only_the_faulting_page)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t npages = 1024, resident = 0;
	unsigned char *buf = mmap(NULL, npages * page, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char vec[1024];
	struct xpmem_addr addr;
	xpmem_segid_t segid;
	volatile unsigned char *a;

	ck_assert(buf != MAP_FAILED);
	/* Huge pages would make one touch allocate 2 MiB by design. Kernels
	 * without THP (PREEMPT_RT) reject the advice, and have none. */
	if (madvise(buf, npages * page, MADV_NOHUGEPAGE) != 0)
		ck_assert_int_eq(errno, EINVAL);
	segid = xpmem_make(buf, npages * page, XPMEM_PERMIT_MODE, (void *)0600);
	ck_assert(segid >= 0);
	addr.apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	addr.offset = 0;
	a = xpmem_attach(addr, npages * page, NULL);
	ck_assert(a != (void *)-1);

	a[700 * page + 5] = 0x5a;	/* a write fault */
	ck_assert_uint_eq(a[300 * page], 0);	/* a read fault */
	ck_assert_uint_eq(buf[700 * page + 5], 0x5a);
	ck_assert_int_eq(mincore(buf, npages * page, vec), 0);
	for (size_t i = 0; i < npages; i++)
		resident += vec[i] & 1;
	/* Pages 700 and 300 (a mapped zero page counts as resident). */
	ck_assert_msg(resident == 2, "%zu of %zu exporter pages resident, 2 expected",
		      resident, npages);
	ck_assert_int_eq(xpmem_detach((void *)a), 0);
	ck_assert_int_eq(xpmem_remove(segid), 0);
	ck_assert_int_eq(munmap(buf, npages * page), 0);
}
END_TEST

START_TEST(attach_rejects_unknown_flags)
{
	struct peer p;
	struct xpmem_addr addr;

	peer_start(&p, 0, 0600);
	addr.apid = xpmem_get(p.segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	addr.offset = (off_t)(uintptr_t)p.buf;
	for (unsigned int bit = 1; bit < 32; bit++) {
		errno = 0;
		ck_assert(xpmem_ext_attach(addr, LEN, NULL, 1u << bit) == (void *)-1);
		ck_assert_int_eq(errno, EINVAL);
	}
	peer_stop(&p);
}
END_TEST

/* ---- protection */

START_TEST(rdonly_attachment_reads)
{
	struct peer p;
	unsigned char *a;

	peer_start(&p, 0x21, 0644);
	a = peer_attach(&p, XPMEM_RDONLY, NULL);
	ck_assert(xtest_all_bytes_are(a, LEN, 0x21));
	peer_stop(&p);
}
END_TEST

START_TEST(rdonly_attachment_write_is_sigsegv)
{
	struct peer p;
	volatile unsigned char *a;

	peer_start(&p, 0x21, 0644);
	a = peer_attach(&p, XPMEM_RDONLY, NULL);
	ck_assert_uint_eq(a[0], 0x21);
	a[0] = 1;	/* dies here */
}
END_TEST

START_TEST(rdonly_attachment_cannot_be_made_writable)
{
	struct peer p;
	unsigned char *a;

	peer_start(&p, 0x21, 0644);
	a = peer_attach(&p, XPMEM_RDONLY, NULL);
	errno = 0;
	ck_assert_int_eq(mprotect(a, LEN, PROT_READ | PROT_WRITE), -1);
	ck_assert_int_eq(errno, EACCES);
	peer_stop(&p);
}
END_TEST

/* The exporter's read-only pages stay read-only through a RDWR attachment. */
START_TEST(readonly_source_write_is_sigbus)
{
	struct peer p;
	volatile unsigned char *a;

	peer_start(&p, 0x31, 0600);
	a = peer_attach(&p, XPMEM_RDWR, NULL);
	ck_assert_int_eq(peer_cmd(&p, CMD_PROTECT_RO, 0), 0);
	ck_assert_uint_eq(a[4096], 0x31);	/* reading is fine */
	a[4096] = 1;	/* dies here */
}
END_TEST

/* ---- lifetime */

START_TEST(touching_a_hole_is_sigbus)
{
	long page = sysconf(_SC_PAGESIZE);
	volatile unsigned char *a = attach_own_with_hole(4, 2, 0);

	ck_assert_uint_eq(a[0], 9);
	ck_assert_uint_eq(a[3 * page], 9);
	(void)a[2 * page];	/* dies here */
}
END_TEST

START_TEST(removed_segment_is_sigbus)
{
	struct peer p;
	volatile unsigned char *a;

	peer_start(&p, 0x11, 0600);
	a = peer_attach(&p, XPMEM_RDWR, NULL);
	ck_assert_uint_eq(a[0], 0x11);
	ck_assert_int_eq(peer_cmd(&p, CMD_REMOVE, 0), 0);
	(void)a[0];	/* dies here */
}
END_TEST

START_TEST(exporter_exit_is_sigbus)
{
	struct peer p;
	volatile unsigned char *a;

	peer_start(&p, 0x11, 0600);
	a = peer_attach(&p, XPMEM_RDWR, NULL);
	ck_assert_uint_eq(a[LEN - 1], 0x11);
	peer_stop(&p);
	(void)a[0];	/* dies here */
}
END_TEST

START_TEST(detach_unmaps_from_any_inner_address)
{
	struct peer p;
	volatile unsigned char *a;

	peer_start(&p, 0x11, 0600);
	a = peer_attach(&p, XPMEM_RDWR, NULL);
	ck_assert_uint_eq(a[0], 0x11);
	ck_assert_int_eq(xpmem_detach((void *)(a + 5000)), 0);
	peer_stop(&p);
	(void)a[0];	/* unmapped: dies here */
}
END_TEST

START_TEST(detach_of_other_addresses_is_einval)
{
	int on_stack;
	void *anon = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	errno = 0;
	ck_assert_int_eq(xpmem_detach(&on_stack), -1);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(xpmem_detach(anon), -1);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(xpmem_detach(NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

#ifndef SYS_mseal
#define SYS_mseal 462
#endif

/*
 * mseal(2) (6.10) makes munmap() of a VMA fail with EPERM, and an unmap is
 * all that DETACH and RELEASE have: both fail with EPERM, as the header
 * says, and the sealed attachment keeps working. (The descriptor's close at
 * exit drops the permit: the harness's leak check sees to that.)
 */
START_TEST(sealed_attachment_detach_and_release_are_eperm)
{
	struct peer p;
	xpmem_apid_t apid;
	volatile unsigned char *a;

	peer_start(&p, 0x11, 0600);
	a = peer_attach(&p, XPMEM_RDWR, &apid);
	ck_assert_int_eq(syscall(SYS_mseal, (void *)a, LEN, 0UL), 0);
	errno = 0;
	ck_assert_int_eq(xpmem_detach((void *)a), -1);
	ck_assert_int_eq(errno, EPERM);
	errno = 0;
	ck_assert_int_eq(xpmem_release(apid), -1);
	ck_assert_int_eq(errno, EPERM);
	a[1] = 0x12;
	ck_assert_uint_eq(a[0], 0x11);
	ck_assert_uint_eq(a[1], 0x12);
	peer_stop(&p);
}
END_TEST

START_TEST(release_detaches_its_attachments)
{
	struct peer p;
	xpmem_apid_t apid;
	volatile unsigned char *a;

	peer_start(&p, 0x11, 0600);
	a = peer_attach(&p, XPMEM_RDWR, &apid);
	ck_assert_uint_eq(a[0], 0x11);
	ck_assert_int_eq(xpmem_release(apid), 0);
	peer_stop(&p);
	(void)a[0];	/* unmapped: dies here */
}
END_TEST

/*
 * A child that attaches the peer (attachments are not inherited) and reads
 * it until something stops it. Returns once the child has read it all once.
 */
static pid_t start_reader(struct peer *p)
{
	int ready[2];
	pid_t pid;
	char c;

	ck_assert_int_eq(pipe(ready), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		volatile unsigned char *a = peer_attach(p, XPMEM_RDONLY, NULL);
		unsigned long sum = 0;

		for (int first = 1;; first = 0) {
			for (size_t i = 0; i < LEN; i += 64)
				sum += a[i];
			if (first && write(ready[1], "r", 1) != 1)
				_exit(1);
		}
	}
	close(ready[1]);
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	close(ready[0]);
	return pid;
}

/* kill -9 of the exporter while an attacher reads: the reader gets SIGBUS. */
START_TEST(exporter_killed_while_attacher_reads)
{
	struct peer p;
	int status;
	pid_t reader;

	peer_start(&p, 0x11, 0600);
	reader = start_reader(&p);
	ck_assert_int_eq(kill(p.pid, SIGKILL), 0);
	ck_assert_int_eq(waitpid(p.pid, &status, 0), p.pid);
	ck_assert_int_eq(waitpid(reader, &status, 0), reader);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
		      "reader status %#x", status);
	close(p.cmd_fd);
	close(p.ack_fd);
}
END_TEST

/* kill -9 of an attacher while the exporter keeps changing its memory. */
START_TEST(attacher_killed_while_exporter_churns)
{
	struct peer p;
	unsigned char *a;
	int status;
	pid_t reader;

	peer_start(&p, 0x11, 0600);
	a = peer_attach(&p, XPMEM_RDWR, NULL);
	reader = start_reader(&p);
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(peer_cmd(&p, CMD_DONTNEED, 0), 0);
		ck_assert_int_eq(peer_cmd(&p, CMD_FILL, i), 0);
		if (i == 10)
			ck_assert_int_eq(kill(reader, SIGKILL), 0);
	}
	ck_assert_int_eq(waitpid(reader, &status, 0), reader);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	ck_assert(xtest_all_bytes_are(a, LEN, 19));
	peer_stop(&p);
}
END_TEST

START_TEST(attachments_are_not_inherited)
{
	struct peer p;
	volatile unsigned char *a;
	int status;
	pid_t child;

	peer_start(&p, 0x11, 0600);
	a = peer_attach(&p, XPMEM_RDWR, NULL);
	ck_assert_uint_eq(a[0], 0x11);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		(void)a[0];
		_exit(0);
	}
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
		      "child status %#x", status);
	ck_assert_uint_eq(a[0], 0x11);	/* still fine in the parent */
	peer_stop(&p);
}
END_TEST

START_TEST(a_process_can_attach_its_own_segment)
{
	unsigned char *buf = malloc(LEN);
	xpmem_segid_t segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	struct xpmem_addr addr;
	unsigned char *a;

	ck_assert_ptr_nonnull(buf);
	memset(buf, 0x71, LEN);
	addr.apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	addr.offset = (off_t)(uintptr_t)buf;
	a = xpmem_attach(addr, LEN, NULL);
	ck_assert(a != (void *)-1);
	ck_assert(xtest_all_bytes_are(a, LEN, 0x71));
	memset(a, 0x72, LEN);
	ck_assert(xtest_all_bytes_are(buf, LEN, 0x72));
	ck_assert_int_eq(xpmem_detach(a), 0);
	ck_assert_int_eq(xpmem_remove(segid), 0);
	free(buf);
}
END_TEST

/*
 * An MPI registration cache that attaches until the process reaches
 * vm.max_map_count must get ENOMEM (xpmem_attach(3)), leave nothing behind
 * for the failed call, and keep every attachment it made. The limit is
 * lowered to a little above what the worker maps already; the parent puts
 * it back whatever the worker does. Root only (the sysctl).
 */
#define MAP_COUNT "/proc/sys/vm/max_map_count"

static int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int c, n = 0;

	if (!f)
		return -1;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* The worker: exit 0 if the limit gave ENOMEM cleanly, else a code. */
static int attach_until_the_limit(void)
{
	unsigned char *buf = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	xpmem_segid_t segid = xpmem_make(buf, PAGE, XPMEM_PERMIT_MODE, (void *)0600);
	struct xpmem_addr addr = { .offset = 0 };
	long alive, n = 0;
	void *a;
	char lim[32];

	if (buf == MAP_FAILED || segid < 0)
		return 10;
	buf[0] = 0x3c;
	addr.apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	if (addr.apid < 0)
		return 11;
	snprintf(lim, sizeof(lim), "%d", count_maps() + 64);
	if (xtest_write_file(MAP_COUNT, lim))
		return 12;
	alive = xtest_stat("attachments_alive");
	for (;;) {
		a = xpmem_attach(addr, PAGE, NULL);
		if (a == (void *)-1)
			break;
		/* Each is a VMA of its own: each maps a file of its own. */
		if (((volatile unsigned char *)a)[0] != 0x3c)
			return 14;
		if (++n > 200)
			return 15;	/* the limit did not stop us */
	}
	if (errno != ENOMEM)
		return 16;
	if (n < 10)
		return 17;	/* stopped too early: not the limit */
	/* The failed call left no attachment; the others all live. */
	if (xtest_stat("attachments_alive") != alive + n)
		return 18;
	return 0;
}

START_TEST(attach_at_vm_max_map_count_is_enomem)
{
	long old = xtest_read_long(MAP_COUNT);
	char buf[32];
	int status;
	pid_t pid;

	ck_assert_int_gt(old, 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(attach_until_the_limit());
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	snprintf(buf, sizeof(buf), "%ld", old);
	ck_assert_int_eq(xtest_write_file(MAP_COUNT, buf), 0);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "worker status %#x (exit codes: see attach_until_the_limit)", status);
}
END_TEST

/* One exporter, eight attachers, each writing its own slice. */
START_TEST(many_attachers_share_one_exporter)
{
	enum { N = 8 };
	struct peer p;
	pid_t kids[N];

	peer_start(&p, 0, 0666);
	for (int k = 0; k < N; k++) {
		kids[k] = fork();
		ck_assert_int_ge(kids[k], 0);
		if (kids[k] == 0) {
			unsigned char *a = peer_attach(&p, XPMEM_RDWR, NULL);
			size_t slice = LEN / N;

			memset(a + k * slice, 0x80 + k, slice);
			_exit(0);
		}
	}
	for (int k = 0; k < N; k++) {
		int status;

		ck_assert_int_eq(waitpid(kids[k], &status, 0), kids[k]);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	{
		unsigned char *a = peer_attach(&p, XPMEM_RDONLY, NULL);

		for (int k = 0; k < N; k++)
			ck_assert(xtest_all_bytes_are(a + k * (LEN / N), LEN / N, 0x80 + k));
	}
	peer_stop(&p);
}
END_TEST

/* One attacher, eight exporters. */
START_TEST(one_attacher_reads_many_exporters)
{
	enum { N = 8 };
	struct peer p[N];

	for (int k = 0; k < N; k++)
		peer_start(&p[k], 0x90 + k, 0600);
	for (int k = 0; k < N; k++) {
		unsigned char *a = peer_attach(&p[k], XPMEM_RDWR, NULL);

		ck_assert(xtest_all_bytes_are(a, LEN, 0x90 + k));
		memset(a, 0xa0 + k, LEN);
	}
	for (int k = 0; k < N; k++) {
		ck_assert_int_eq(peer_cmd(&p[k], CMD_CHECK, 0xa0 + k), 1);
		peer_stop(&p[k]);
	}
}
END_TEST

/*
 * Two processes attach each other's whole address space, and each keeps
 * changing the memory the other reads (MADV_DONTNEED + refill) while a
 * second thread in each hammers mmap/munmap. It must not deadlock, and
 * every byte read must be one the exporter could have had: 0 or its
 * pattern.
 */
struct mutual {
	unsigned char *own;
	volatile int stop;
};

static void *hammer(void *arg)
{
	struct mutual *m = arg;

	while (!m->stop) {
		void *x = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (x != MAP_FAILED) {
			memset(x, 1, 1 << 16);
			munmap(x, 1 << 16);
		}
		madvise(m->own, LEN, MADV_DONTNEED);
		memset(m->own, 0x5c, LEN);
	}
	return NULL;
}

static int mutual_side(int in_fd, int out_fd)
{
	struct mutual m = { 0 };
	struct xpmem_addr addr;
	xpmem_segid_t mine, theirs;
	unsigned char *other_buf, *a;
	pthread_t thread;
	time_t end;
	int bad = 0;

	m.own = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m.own == MAP_FAILED)
		return 1;
	memset(m.own, 0x5c, LEN);
	mine = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	if (mine < 0 || write(out_fd, &mine, sizeof(mine)) != sizeof(mine) ||
	    write(out_fd, &m.own, sizeof(m.own)) != sizeof(m.own) ||
	    read(in_fd, &theirs, sizeof(theirs)) != sizeof(theirs) ||
	    read(in_fd, &other_buf, sizeof(other_buf)) != sizeof(other_buf))
		return 2;
	addr.apid = xpmem_get(theirs, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	addr.offset = (off_t)(uintptr_t)other_buf;
	a = xpmem_attach(addr, LEN, NULL);
	if (addr.apid < 0 || a == (void *)-1)
		return 3;
	if (pthread_create(&thread, NULL, hammer, &m))
		return 4;
	end = time(NULL) + 3;
	while (time(NULL) < end)
		for (size_t i = 0; i < LEN; i += 512)
			bad += a[i] != 0 && a[i] != 0x5c;
	m.stop = 1;
	pthread_join(thread, NULL);
	/* Stay attached until the other side is done too. */
	if (write(out_fd, &bad, sizeof(bad)) != sizeof(bad) ||
	    read(in_fd, &bad, sizeof(bad)) != sizeof(bad))
		return 5;
	return bad ? 6 : 0;
}

START_TEST(mutual_attach_under_mmap_churn)
{
	int ab[2], ba[2], status;
	pid_t kids[2];

	ck_assert_int_eq(pipe(ab), 0);
	ck_assert_int_eq(pipe(ba), 0);
	kids[0] = fork();
	if (kids[0] == 0)
		_exit(mutual_side(ba[0], ab[1]));
	kids[1] = fork();
	if (kids[1] == 0)
		_exit(mutual_side(ab[0], ba[1]));
	for (int k = 0; k < 2; k++) {
		ck_assert_int_eq(waitpid(kids[k], &status, 0), kids[k]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "side %d: status %#x", k, status);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("attach");
	TCase *tc = xtest_tcase(s, "data");

	tcase_add_test(tc, attachment_reads_exporter_data);
	tcase_add_test(tc, attachment_writes_reach_exporter);
	tcase_add_test(tc, unaligned_offset_points_at_that_byte);
	tcase_add_test(tc, attach_at_a_fixed_address);
	tcase_add_test(tc, attach_rejects_bad_requests);
	tcase_add_test(tc, a_process_can_attach_its_own_segment);
	tcase_add_test(tc, many_attachers_share_one_exporter);
	tcase_add_test(tc, one_attacher_reads_many_exporters);
	tcase_add_loop_test(tc, faults_are_batched, 0, 2);
	tcase_add_test(tc, writes_are_batched);
	tcase_add_test(tc, populate_maps_everything_at_attach);
	tcase_add_test(tc, fault_allocates_only_the_faulting_page);
	tcase_add_test_raise_signal(tc, populate_skips_holes, SIGBUS);
	tcase_add_test(tc, attach_may_run_past_a_whole_segments_end);
	tcase_add_test_raise_signal(tc, past_a_whole_segments_end_is_sigbus, SIGBUS);
#ifdef EXPORTER32
	if (kernel_runs_i386())
		tcase_add_test(tc, past_a_compat_segments_end_is_not_mapped);
	else
		xtest_skip("past_a_compat_segments_end_is_not_mapped",
			   "this kernel runs no i386 programs (CONFIG_IA32_EMULATION)");
#else
	xtest_skip("past_a_compat_segments_end_is_not_mapped",
		   "the compiler builds no i386 programs (configure: xpmem_cv_cc_m32)");
#endif
	tcase_add_test(tc, attach_rejects_unknown_flags);
	if (geteuid() == 0)
		tcase_add_test(tc, attach_at_vm_max_map_count_is_enomem);
	else
		xtest_skip("attach_at_vm_max_map_count_is_enomem", "needs root (vm.max_map_count)");

	tc = xtest_tcase(s, "coherence");
	tcase_add_loop_test(tc, exporter_change_is_followed, 0,
			    sizeof(followed) / sizeof(followed[0]));
	tcase_add_test(tc, munmap_and_mmap_are_followed);
	tcase_add_test(tc, only_attached_ranges_are_zapped);
	tcase_add_test(tc, write_breaks_cow_in_the_exporter);
	tcase_add_test(tc, exporter_fork_then_write_is_followed);
	tcase_add_test(tc, migrated_pages_are_followed);

	tc = xtest_tcase(s, "concurrency");
	tcase_add_test(tc, mutual_attach_under_mmap_churn);

	tc = xtest_tcase(s, "protection");
	tcase_add_test(tc, rdonly_attachment_reads);
	tcase_add_test_raise_signal(tc, rdonly_attachment_write_is_sigsegv, SIGSEGV);
	tcase_add_test(tc, rdonly_attachment_cannot_be_made_writable);
	tcase_add_test_raise_signal(tc, readonly_source_write_is_sigbus, SIGBUS);

	tc = xtest_tcase(s, "lifetime");
	tcase_add_test_raise_signal(tc, touching_a_hole_is_sigbus, SIGBUS);
	tcase_add_test_raise_signal(tc, removed_segment_is_sigbus, SIGBUS);
	tcase_add_test_raise_signal(tc, exporter_exit_is_sigbus, SIGBUS);
	tcase_add_test_raise_signal(tc, detach_unmaps_from_any_inner_address, SIGSEGV);
	tcase_add_test(tc, detach_of_other_addresses_is_einval);
	tcase_add_test_raise_signal(tc, release_detaches_its_attachments, SIGSEGV);
	if (xtest_kernel_at_least(6, 10))
		tcase_add_test(tc, sealed_attachment_detach_and_release_are_eperm);
	else
		xtest_skip("sealed_attachment_detach_and_release_are_eperm",
			   "this kernel has no mseal() (it came in 6.10)");
	tcase_add_test(tc, attachments_are_not_inherited);
	tcase_add_test(tc, exporter_killed_while_attacher_reads);
	tcase_add_test(tc, attacher_killed_while_exporter_churns);

	return xtest_main("attach", s, XTEST_NEEDS_DEVICE);
}
