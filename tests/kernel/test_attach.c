// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_attach.c - attachments: data, coherence, protection and lifetime.
 *
 * Most tests run an exporter in a child process (a "peer") that changes its
 * memory on command, while the test reads and writes it through an
 * attachment. Needs the module: run in the VM (tests/run-tests).
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "xpmem.h"
#include "xtest.h"

#define LEN (64 * 4096UL)

enum peer_cmd {
	CMD_FILL = 1,	/* memset(buf, arg) */
	CMD_REMAP,	/* munmap + mmap the same address, then fill with arg */
	CMD_DONTNEED,	/* madvise(MADV_DONTNEED) */
	CMD_PROTECT_RO,	/* mprotect(PROT_READ) */
	CMD_CHECK,	/* answer 1 if every byte is arg */
	CMD_FORK,	/* fork a child that keeps the pages COW-shared */
	CMD_REMOVE,	/* xpmem_remove() */
};

struct peer {
	pid_t pid;
	int cmd_fd, ack_fd;
	xpmem_segid_t segid;
	unsigned char *buf;	/* in the peer's address space */
};

static void peer_loop(int cmd_fd, int ack_fd, unsigned char *buf, xpmem_segid_t segid)
{
	int msg[2];

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
		case CMD_FORK:
			/* The grandchild keeps the pages until its parent goes away. */
			if (fork() == 0) {
				close(cmd_fd);
				close(ack_fd);
				prctl(PR_SET_PDEATHSIG, SIGKILL);
				for (;;)
					pause();
			}
			break;
		case CMD_REMOVE:
			ret = xpmem_remove(segid);
			break;
		}
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
		unsigned char *buf = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		xpmem_segid_t segid;

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

/* Ends the peer and waits for it. */
static void peer_stop(struct peer *p)
{
	int status;

	close(p->cmd_fd);
	close(p->ack_fd);
	ck_assert_int_eq(waitpid(p->pid, &status, 0), p->pid);
}

/* Attach the peer's whole buffer through a new permit with @access. */
static unsigned char *peer_attach(struct peer *p, int access, xpmem_apid_t *apidp)
{
	struct xpmem_addr addr;
	void *a;

	addr.apid = xpmem_get(p->segid, access, XPMEM_PERMIT_MODE, NULL);
	ck_assert_msg(addr.apid > 0, "xpmem_get: %s", strerror(errno));
	addr.offset = (off_t)(uintptr_t)p->buf;
	a = xpmem_attach(addr, LEN, NULL);
	ck_assert_msg(a != (void *)-1, "xpmem_attach: %s", strerror(errno));
	if (apidp)
		*apidp = addr.apid;
	return a;
}

static int all_bytes_are(const unsigned char *a, size_t len, unsigned char v)
{
	for (size_t i = 0; i < len; i++)
		if (a[i] != v)
			return 0;
	return 1;
}

static long stat_value(const char *name)
{
	char key[64];
	long value;
	FILE *f = fopen("/sys/kernel/debug/xpmem/stats", "r");

	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld", key, &value) == 2) {
		if (strcmp(key, name) == 0) {
			fclose(f);
			return value;
		}
	}
	fclose(f);
	return -1;
}

/* ---- data */

START_TEST(attachment_reads_exporter_data)
{
	struct peer p;
	unsigned char *a;

	peer_start(&p, 0x11, 0600);
	a = peer_attach(&p, XPMEM_RDWR, NULL);
	ck_assert(all_bytes_are(a, LEN, 0x11));
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
	ck_assert(all_bytes_are(a, 10, 0x37));
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
	ck_assert(all_bytes_are(a, LEN, 0x42));
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

START_TEST(exporter_writes_are_seen)
{
	struct peer p;
	unsigned char *a;

	peer_start(&p, 0x11, 0600);
	a = peer_attach(&p, XPMEM_RDONLY, NULL);
	ck_assert(all_bytes_are(a, LEN, 0x11));
	ck_assert_int_eq(peer_cmd(&p, CMD_FILL, 0x33), 0);
	ck_assert(all_bytes_are(a, LEN, 0x33));
	peer_stop(&p);
}
END_TEST

/* free + new memory at the same address: the attachment shows the new pages. */
START_TEST(munmap_and_mmap_are_followed)
{
	long before = stat_value("inv_unmap");
	struct peer p;
	unsigned char *a;

	peer_start(&p, 0x11, 0600);
	a = peer_attach(&p, XPMEM_RDWR, NULL);
	ck_assert(all_bytes_are(a, LEN, 0x11));
	ck_assert_int_eq(peer_cmd(&p, CMD_REMAP, 0x44), 0);
	ck_assert(all_bytes_are(a, LEN, 0x44));
	/* And writes land in the new pages. */
	memset(a, 0x45, LEN);
	ck_assert_int_eq(peer_cmd(&p, CMD_CHECK, 0x45), 1);
	if (before >= 0)
		ck_assert_int_gt(stat_value("inv_unmap"), before);
	peer_stop(&p);
}
END_TEST

START_TEST(madv_dontneed_is_followed)
{
	struct peer p;
	unsigned char *a;

	peer_start(&p, 0x55, 0600);
	a = peer_attach(&p, XPMEM_RDONLY, NULL);
	ck_assert(all_bytes_are(a, LEN, 0x55));
	ck_assert_int_eq(peer_cmd(&p, CMD_DONTNEED, 0), 0);
	ck_assert(all_bytes_are(a, LEN, 0));
	peer_stop(&p);
}
END_TEST

/* A write through the attachment breaks COW in the exporter. */
START_TEST(write_breaks_cow_in_the_exporter)
{
	struct peer p;
	unsigned char *a;

	peer_start(&p, 0x11, 0600);
	a = peer_attach(&p, XPMEM_RDWR, NULL);
	ck_assert(all_bytes_are(a, LEN, 0x11));
	ck_assert_int_eq(peer_cmd(&p, CMD_FORK, 0), 0);
	memset(a, 0x66, LEN);
	ck_assert_int_eq(peer_cmd(&p, CMD_CHECK, 0x66), 1);
	/* The exporter's own write after that is seen too. */
	ck_assert_int_eq(peer_cmd(&p, CMD_FILL, 0x67), 0);
	ck_assert(all_bytes_are(a, LEN, 0x67));
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
	ck_assert(all_bytes_are(a, LEN, 0x21));
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
	unsigned char *buf = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	xpmem_segid_t segid;
	struct xpmem_addr addr;
	volatile unsigned char *a;

	ck_assert(buf != MAP_FAILED);
	memset(buf, 7, 4 * page);
	ck_assert_int_eq(munmap(buf + 2 * page, page), 0);
	segid = xpmem_make(buf, 4 * page, XPMEM_PERMIT_MODE, (void *)0600);
	addr.apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	addr.offset = 0;
	a = xpmem_attach(addr, 4 * page, NULL);
	ck_assert(a != (void *)-1);
	ck_assert_uint_eq(a[0], 7);
	ck_assert_uint_eq(a[3 * page], 7);
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
	ck_assert(all_bytes_are(a, LEN, 0x71));
	memset(a, 0x72, LEN);
	ck_assert(all_bytes_are(buf, LEN, 0x72));
	ck_assert_int_eq(xpmem_detach(a), 0);
	ck_assert_int_eq(xpmem_remove(segid), 0);
	free(buf);
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
			ck_assert(all_bytes_are(a + k * (LEN / N), LEN / N, 0x80 + k));
	}
	peer_stop(&p);
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

	tc = xtest_tcase(s, "coherence");
	tcase_add_test(tc, exporter_writes_are_seen);
	tcase_add_test(tc, munmap_and_mmap_are_followed);
	tcase_add_test(tc, madv_dontneed_is_followed);
	tcase_add_test(tc, write_breaks_cow_in_the_exporter);

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
	tcase_add_test(tc, attachments_are_not_inherited);

	return xtest_main("attach", s, XTEST_NEEDS_DEVICE);
}
