// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_huge.c - 2 MiB pages of the exporter mapped with one PMD in the
 * attacher (issue 14).
 *
 * Where the exporter's page is a 2 MiB THP or hugetlb page and the
 * attachment address is congruent to the exporter's modulo 2 MiB (attach
 * picks such an address by default), the driver maps the window with one
 * PMD. The debugfs counter pmds_mapped proves which path a test took. Each
 * test checks data, permissions and what follows the exporter's changes
 * to a PMD-mapped huge page.
 *
 * Needs the module and root (hugetlb pages are reserved through
 * /proc/sys/vm/nr_hugepages); tests/guest-suite runs it in the root pass.
 * Kernels without THP (PREEMPT_RT 6.1) skip it whole, with the reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "xpmem.h"
#include "xtest.h"

#define MIB (1UL << 20)
#define HUGE (2 * MIB)
#define PAGE 4096UL

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26)
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 4U
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21U << 26)
#endif
#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE (1 << 1)
#endif

/* THP exists in this kernel and is not turned off ("[never]"). */
static bool have_thp(void)
{
	char mode[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");

	if (!f)
		return false;
	if (!fgets(mode, sizeof(mode), f))
		mode[0] = 0;
	fclose(f);
	return mode[0] && !strstr(mode, "[never]");
}

/* @len bytes at a 2 MiB boundary (the rest of the reservation is left). */
static unsigned char *map_aligned(size_t len)
{
	unsigned char *p = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert(p != MAP_FAILED);
	return (unsigned char *)(((uintptr_t)p + HUGE - 1) & ~(HUGE - 1));
}

/* The byte that the pattern of @seed has at offset @i. */
static unsigned char pat(unsigned int seed, size_t i)
{
	return (unsigned char)(seed + i / PAGE * 13 + i % 251);
}

static void fill(unsigned char *p, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = pat(seed, i);
}

/* Does [p, p + len) hold the pattern of @seed, from offset @off on? */
static bool holds(const volatile unsigned char *p, size_t len, unsigned int seed, size_t off)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] != pat(seed, off + i))
			return false;
	}
	return true;
}

/* @len bytes on transparent huge pages, filled with the pattern of @seed. */
static unsigned char *thp_buf(size_t len, unsigned int seed)
{
	unsigned char *buf = map_aligned(len);

	ck_assert_int_eq(madvise(buf, len, MADV_HUGEPAGE), 0);
	fill(buf, len, seed);
	ck_assert_msg(xtest_smaps_kb(buf, "AnonHugePages:") >= (long)(len >> 10),
		      "not on huge pages: AnonHugePages %ld kB", xtest_smaps_kb(buf, "AnonHugePages:"));
	return buf;
}

/* @len bytes of private 2 MiB hugetlb pages, filled with the pattern of @seed. */
static unsigned char *hugetlb_buf(size_t len, unsigned int seed)
{
	unsigned char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);

	ck_assert_msg(buf != MAP_FAILED, "mmap MAP_HUGETLB: %s", strerror(errno));
	fill(buf, len, seed);
	return buf;
}

/* A segment of this whole process, and a permit for it. */
static xpmem_apid_t self_permit(int access)
{
	xpmem_segid_t segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE,
					 (void *)0600);
	xpmem_apid_t apid;

	ck_assert_int_gt(segid, 0);
	apid = xpmem_get(segid, access, XPMEM_PERMIT_MODE, NULL);
	ck_assert_int_gt(apid, 0);
	return apid;
}

/* Attach [buf, buf + len) of this process at @vaddr (NULL: anywhere). */
static unsigned char *attach_at(xpmem_apid_t apid, void *buf, size_t len, void *vaddr,
				unsigned int flags)
{
	struct xpmem_addr addr = { .apid = apid, .offset = (off_t)(uintptr_t)buf };
	unsigned char *a = xpmem_ext_attach(addr, len, vaddr, flags);

	ck_assert_msg(a != (void *)-1, "attach: %s", strerror(errno));
	return a;
}

static unsigned char *attach_self(void *buf, size_t len, int access)
{
	unsigned char *a = attach_at(self_permit(access), buf, len, NULL, 0);

	/* The default address can hold the exporter's huge pages. */
	ck_assert_msg(((uintptr_t)a - (uintptr_t)buf) % HUGE == 0,
		      "attachment at %p is not congruent to %p modulo 2 MiB", (void *)a, buf);
	return a;
}

static sigjmp_buf access_jump;
static volatile sig_atomic_t access_caught;

static void access_fault(int sig)
{
	access_caught = sig;
	siglongjmp(access_jump, 1);
}

/*
 * The signal (SIGSEGV or SIGBUS) that one access to @p raises, or 0 if it
 * works (a write stores @v). In this process: a child would not have the
 * attachment (attachments are not inherited).
 */
static int access_signal(volatile unsigned char *p, bool write, unsigned char v)
{
	struct sigaction sa = { .sa_handler = access_fault }, old_segv, old_bus;

	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGSEGV, &sa, &old_segv), 0);
	ck_assert_int_eq(sigaction(SIGBUS, &sa, &old_bus), 0);
	access_caught = 0;
	if (!sigsetjmp(access_jump, 1)) {
		if (write)
			*p = v;
		else
			(void)*p;
	}
	ck_assert_int_eq(sigaction(SIGSEGV, &old_segv, NULL), 0);
	ck_assert_int_eq(sigaction(SIGBUS, &old_bus, NULL), 0);
	return access_caught;
}

/*
 * Reading a THP-backed range maps each 2 MiB page with one PMD: one fault
 * per 2 MiB, and the bytes are the exporter's.
 */
START_TEST(read_maps_one_pmd_per_huge_page)
{
	const size_t len = 8 * MIB;
	unsigned char *buf = thp_buf(len, 1), *a = attach_self(buf, len, XPMEM_RDWR);
	long pmds = xtest_stat("pmds_mapped"), faults = xtest_stat("faults");

	ck_assert(holds(a, len, 1, 0));
	ck_assert_int_eq(xtest_stat("pmds_mapped") - pmds, len / HUGE);
	ck_assert_int_le(xtest_stat("faults") - faults, len / HUGE);
	/* Mapped now: reading again takes no fault. */
	faults = xtest_stat("faults");
	ck_assert(holds(a, len, 1, 0));
	ck_assert_int_eq(xtest_stat("faults"), faults);
}
END_TEST

/*
 * A write maps the huge page writable and lands in the exporter's page; a
 * write to a PMD mapped read-only (by a read first) maps it again,
 * writable, through ->fault (not ->pfn_mkwrite, which is for PTEs).
 */
START_TEST(writes_through_a_pmd_reach_the_exporter)
{
	const size_t len = 4 * MIB;
	unsigned char *buf = thp_buf(len, 2), *a = attach_self(buf, len, XPMEM_RDWR);
	long pmds = xtest_stat("pmds_mapped"), upgrades = xtest_stat("write_upgrades");

	memset(a, 0x5a, HUGE);			/* first access: a write */
	ck_assert(xtest_all_bytes_are(buf, HUGE, 0x5a));
	ck_assert(holds(a + HUGE, HUGE, 2, HUGE));	/* a read: read-only */
	ck_assert_int_eq(xtest_stat("pmds_mapped") - pmds, 2);
	memset(a + HUGE, 0x5b, HUGE);		/* a write to it */
	ck_assert(xtest_all_bytes_are(buf + HUGE, HUGE, 0x5b));
	ck_assert_int_eq(xtest_stat("pmds_mapped") - pmds, 3);
	ck_assert_int_eq(xtest_stat("write_upgrades"), upgrades);
	ck_assert_int_gt(xtest_smaps_kb(buf, "AnonHugePages:"), 0);
}
END_TEST

/* An XPMEM_RDONLY attachment reads through a PMD and refuses writes. */
START_TEST(rdonly_attachment_pmd_refuses_writes)
{
	unsigned char *buf = thp_buf(HUGE, 3), *a = attach_self(buf, HUGE, XPMEM_RDONLY);
	long pmds = xtest_stat("pmds_mapped");

	ck_assert(holds(a, HUGE, 3, 0));
	ck_assert_int_eq(xtest_stat("pmds_mapped") - pmds, 1);
	ck_assert_int_eq(access_signal(a + 12345, true, 0), SIGSEGV);
	ck_assert(holds(buf, HUGE, 3, 0));
}
END_TEST

/* A read-only exporter page: read through a PMD, a write is SIGBUS. */
START_TEST(readonly_source_pmd_write_is_sigbus)
{
	unsigned char *buf = thp_buf(HUGE, 4), *a;
	long pmds;

	ck_assert_int_eq(mprotect(buf, HUGE, PROT_READ), 0);
	a = attach_self(buf, HUGE, XPMEM_RDWR);
	pmds = xtest_stat("pmds_mapped");
	ck_assert(holds(a, HUGE, 4, 0));
	ck_assert_int_eq(xtest_stat("pmds_mapped") - pmds, 1);
	ck_assert_int_eq(access_signal(a + 777, true, 0), SIGBUS);
	ck_assert(holds(buf, HUGE, 4, 0));
}
END_TEST

/*
 * The exporter's huge page is shared copy-on-write with its child. A write
 * through the attachment breaks COW in the exporter, as its own write
 * would: the exporter sees it, the child keeps the old bytes.
 */
START_TEST(cow_huge_page_write_breaks_cow_in_the_exporter)
{
	unsigned char *buf = thp_buf(HUGE, 5), *a;
	long pmds;
	int go[2], status;
	char c = 0;
	pid_t child;

	ck_assert_int_eq(pipe(go), 0);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		_exit(holds(buf, HUGE, 5, 0) ? 0 : 1);
	}
	a = attach_self(buf, HUGE, XPMEM_RDWR);
	pmds = xtest_stat("pmds_mapped");
	ck_assert(holds(a, HUGE, 5, 0));
	ck_assert_int_eq(xtest_stat("pmds_mapped") - pmds, 1);
	memset(a + 3 * PAGE, 0x77, PAGE);
	ck_assert(xtest_all_bytes_are(buf + 3 * PAGE, PAGE, 0x77));
	ck_assert(xtest_all_bytes_are(a + 3 * PAGE, PAGE, 0x77));
	ck_assert(holds(a, 3 * PAGE, 5, 0));
	ck_assert(holds(a + 4 * PAGE, HUGE - 4 * PAGE, 5, 4 * PAGE));
	ck_assert_int_eq(write(go[1], &c, 1), 1);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the child's copy changed (status %#x)", status);
}
END_TEST

/*
 * One 4 KiB subpage dropped from a PMD-mapped THP splits it in the
 * exporter: the invalidation zaps the whole PMD, and the next faults map
 * what is there.
 */
START_TEST(thp_split_under_a_pmd)
{
	unsigned char *buf = thp_buf(HUGE, 6), *a = attach_self(buf, HUGE, XPMEM_RDWR);
	long pmds = xtest_stat("pmds_mapped"), zapped;

	ck_assert(holds(a, HUGE, 6, 0));
	ck_assert_int_eq(xtest_stat("pmds_mapped") - pmds, 1);
	zapped = xtest_stat("inv_zapped");
	ck_assert_int_eq(madvise(buf + 5 * PAGE, PAGE, MADV_DONTNEED), 0);
	ck_assert_int_gt(xtest_stat("inv_zapped"), zapped);
	ck_assert(xtest_all_bytes_are(a + 5 * PAGE, PAGE, 0));
	ck_assert(holds(a, 5 * PAGE, 6, 0));
	ck_assert(holds(a + 6 * PAGE, HUGE - 6 * PAGE, 6, 6 * PAGE));
	memset(a + 5 * PAGE, 0x4f, PAGE);
	ck_assert(xtest_all_bytes_are(buf + 5 * PAGE, PAGE, 0x4f));
	memset(a + HUGE - PAGE, 0x50, PAGE);
	ck_assert(xtest_all_bytes_are(buf + HUGE - PAGE, PAGE, 0x50));
}
END_TEST

/* munmap of half a PMD-mapped huge page: that half is SIGBUS, the rest reads. */
START_TEST(partial_munmap_under_a_pmd)
{
	unsigned char *buf = thp_buf(HUGE, 7), *a = attach_self(buf, HUGE, XPMEM_RDWR);
	long pmds = xtest_stat("pmds_mapped");

	ck_assert(holds(a, HUGE, 7, 0));
	ck_assert_int_eq(xtest_stat("pmds_mapped") - pmds, 1);
	ck_assert_int_eq(munmap(buf + MIB, MIB), 0);
	ck_assert_int_eq(access_signal(a + MIB, false, 0), SIGBUS);
	ck_assert_int_eq(access_signal(a + HUGE - 1, false, 0), SIGBUS);
	ck_assert(holds(a, MIB, 7, 0));
	memset(a, 0x31, MIB);
	ck_assert(xtest_all_bytes_are(buf, MIB, 0x31));
}
END_TEST

/*
 * mprotect(PROT_READ) of half a PMD-mapped huge page: reads work
 * everywhere, writes only to the half that stayed writable.
 */
START_TEST(mprotect_half_under_a_pmd)
{
	unsigned char *buf = thp_buf(HUGE, 8), *a = attach_self(buf, HUGE, XPMEM_RDWR);
	long pmds = xtest_stat("pmds_mapped");

	memset(a, 0x61, HUGE);
	ck_assert_int_eq(xtest_stat("pmds_mapped") - pmds, 1);
	ck_assert_int_eq(mprotect(buf + MIB, MIB, PROT_READ), 0);
	ck_assert(xtest_all_bytes_are(a, HUGE, 0x61));
	ck_assert_int_eq(access_signal(a + MIB + PAGE, true, 0x62), SIGBUS);
	memset(a, 0x63, MIB);
	ck_assert(xtest_all_bytes_are(buf, MIB, 0x63));
	ck_assert(xtest_all_bytes_are(buf + MIB, MIB, 0x61));
}
END_TEST

/*
 * Small pages mapped with PTEs, then collapsed into a huge page
 * (MADV_COLLAPSE): the attachment follows, and a new attachment maps the
 * collapsed page with one PMD.
 */
START_TEST(collapse_then_pmd)
{
	unsigned char *buf = map_aligned(HUGE), *a, *b;
	long pmds;

	ck_assert_int_eq(madvise(buf, HUGE, MADV_NOHUGEPAGE), 0);
	fill(buf, HUGE, 9);
	ck_assert_int_eq(xtest_smaps_kb(buf, "AnonHugePages:"), 0);
	a = attach_self(buf, HUGE, XPMEM_RDWR);
	pmds = xtest_stat("pmds_mapped");
	ck_assert(holds(a, HUGE, 9, 0));
	ck_assert_int_eq(xtest_stat("pmds_mapped"), pmds);	/* small pages: PTEs */
	ck_assert_int_eq(madvise(buf, HUGE, MADV_HUGEPAGE), 0);
	ck_assert_msg(madvise(buf, HUGE, MADV_COLLAPSE) == 0, "MADV_COLLAPSE: %s", strerror(errno));
	ck_assert_int_gt(xtest_smaps_kb(buf, "AnonHugePages:"), 0);
	ck_assert(holds(a, HUGE, 9, 0));
	memset(a, 0x91, HUGE);
	ck_assert(xtest_all_bytes_are(buf, HUGE, 0x91));
	b = attach_self(buf, HUGE, XPMEM_RDWR);
	ck_assert(xtest_all_bytes_are(b, HUGE, 0x91));
	ck_assert_int_eq(xtest_stat("pmds_mapped") - pmds, 1);
}
END_TEST

/* The NUMA node of the page at @p, or -1. */
static int node_of(void *p)
{
	int status = -1;

	ck_assert_int_eq(syscall(SYS_move_pages, 0, 1UL, &p, NULL, &status, 0), 0);
	return status;
}

/*
 * A PMD-mapped THP migrated to the other NUMA node: the invalidation zaps
 * the PMD, the attachment reads the bytes from the new page, and writes
 * reach it.
 */
START_TEST(thp_migration_under_a_pmd)
{
	unsigned char *buf = thp_buf(HUGE, 10), *a = attach_self(buf, HUGE, XPMEM_RDWR);
	long pmds = xtest_stat("pmds_mapped"), zapped;
	void *pages[HUGE / PAGE];
	int nodes[HUGE / PAGE], status[HUGE / PAGE], from, to;

	ck_assert(holds(a, HUGE, 10, 0));
	ck_assert_int_eq(xtest_stat("pmds_mapped") - pmds, 1);
	from = node_of(buf);
	ck_assert_int_ge(from, 0);
	to = from == 0 ? 1 : 0;
	for (size_t i = 0; i < HUGE / PAGE; i++) {
		pages[i] = buf + i * PAGE;
		nodes[i] = to;
	}
	zapped = xtest_stat("inv_zapped");
	ck_assert_int_ge(syscall(SYS_move_pages, 0, HUGE / PAGE, pages, nodes, status,
				 MPOL_MF_MOVE), 0);
	ck_assert_int_eq(node_of(buf), to);
	/* A THP migrates under MMU_NOTIFY_CLEAR, not MMU_NOTIFY_MIGRATE. */
	ck_assert_int_gt(xtest_stat("inv_zapped"), zapped);
	ck_assert(holds(a, HUGE, 10, 0));
	memset(a + PAGE, 0xa1, PAGE);
	ck_assert(xtest_all_bytes_are(buf + PAGE, PAGE, 0xa1));
}
END_TEST

/*
 * GUP-fast cannot take the exporter's page through our PMD (nor through
 * our PTEs): vmsplice() of an attachment fails with EFAULT. Had it
 * succeeded, the attacher would hold a reference the driver never sees,
 * pinning the exporter's memory past any invalidation.
 */
START_TEST(gup_fast_refuses_a_pmd)
{
	unsigned char *buf = thp_buf(HUGE, 11), *a = attach_self(buf, HUGE, XPMEM_RDWR);
	long pmds = xtest_stat("pmds_mapped");
	struct iovec iov = { .iov_base = a + PAGE, .iov_len = PAGE };
	int p[2];

	ck_assert(holds(a, HUGE, 11, 0));
	ck_assert_int_eq(xtest_stat("pmds_mapped") - pmds, 1);
	ck_assert_int_eq(pipe(p), 0);
	errno = 0;
	ck_assert_int_eq(vmsplice(p[1], &iov, 1, 0), -1);
	ck_assert_int_eq(errno, EFAULT);
	close(p[0]);
	close(p[1]);
}
END_TEST

/*
 * The attacher splits its own VMA inside a PMD (mprotect of part of it,
 * munmap of a page): the PMD is split, which clears it, and what is left
 * maps again with PTEs.
 */
START_TEST(attacher_splits_its_pmd)
{
	unsigned char *buf = thp_buf(HUGE, 12), *a = attach_self(buf, HUGE, XPMEM_RDWR);
	long pmds = xtest_stat("pmds_mapped");

	ck_assert(holds(a, HUGE, 12, 0));
	ck_assert_int_eq(xtest_stat("pmds_mapped") - pmds, 1);
	ck_assert_int_eq(mprotect(a, MIB, PROT_READ), 0);
	ck_assert(holds(a, HUGE, 12, 0));
	ck_assert_int_eq(access_signal(a + PAGE, true, 1), SIGSEGV);
	memset(a + MIB, 0xc1, MIB);
	ck_assert(xtest_all_bytes_are(buf + MIB, MIB, 0xc1));
	ck_assert_int_eq(munmap(a + MIB + PAGE, PAGE), 0);
	ck_assert_int_eq(access_signal(a + MIB + PAGE, false, 0), SIGSEGV);
	ck_assert(xtest_all_bytes_are(a + MIB + 2 * PAGE, MIB - 2 * PAGE, 0xc1));
	ck_assert_int_eq(xpmem_detach(a), 0);
}
END_TEST

/* An attachment not congruent modulo 2 MiB maps with PTEs, correctly. */
START_TEST(incongruent_attachment_uses_ptes)
{
	unsigned char *buf = thp_buf(HUGE, 13), *a;
	unsigned char *hole = map_aligned(2 * HUGE);
	long pmds;

	ck_assert_int_eq(munmap(hole, 2 * HUGE), 0);
	a = attach_at(self_permit(XPMEM_RDWR), buf, HUGE, hole + PAGE, 0);
	ck_assert_ptr_eq(a, hole + PAGE);
	pmds = xtest_stat("pmds_mapped");
	ck_assert(holds(a, HUGE, 13, 0));
	memset(a, 0xd1, PAGE);
	ck_assert(xtest_all_bytes_are(buf, PAGE, 0xd1));
	ck_assert_int_eq(xtest_stat("pmds_mapped"), pmds);
}
END_TEST

/*
 * THP-eligible memory the exporter never wrote reads as the huge zero page.
 * It is mapped with PTEs, never a PMD (a huge zero PMD is taken for one
 * with a deposited page table by 7.x's zap), through a fault and through
 * populate; detaching it and the exporter's write after it are safe.
 */
START_TEST(huge_zero_page_maps_with_ptes)
{
	unsigned char *buf = map_aligned(2 * HUGE), *a, *b;
	volatile unsigned char *v = buf;
	long pmds = xtest_stat("pmds_mapped");
	unsigned long sum = 0;

	ck_assert_int_eq(madvise(buf, 2 * HUGE, MADV_HUGEPAGE), 0);
	for (size_t i = 0; i < 2 * HUGE; i += PAGE)
		sum += v[i];
	ck_assert_int_eq(sum, 0);
	a = attach_self(buf, HUGE, XPMEM_RDWR);
	b = attach_at(self_permit(XPMEM_RDWR), buf + HUGE, HUGE, NULL, XPMEM_ATTACH_POPULATE);
	ck_assert(xtest_all_bytes_are(a, HUGE, 0));
	ck_assert(xtest_all_bytes_are(b, HUGE, 0));
	ck_assert_int_eq(xtest_stat("pmds_mapped"), pmds);
	ck_assert_int_eq(xpmem_detach(b), 0);
	memset(buf, 0x3e, HUGE);		/* replaces the zero page: a zap */
	ck_assert(xtest_all_bytes_are(a, HUGE, 0x3e));
	ck_assert_int_eq(xpmem_detach(a), 0);
}
END_TEST

/*
 * XPMEM_ATTACH_POPULATE maps a THP-backed range with PMDs up front; reading
 * it then takes no fault.
 */
START_TEST(populate_maps_pmds)
{
	const size_t len = 8 * MIB;
	unsigned char *buf = thp_buf(len, 14), *a;
	long pmds = xtest_stat("pmds_mapped"), faults;

	a = attach_at(self_permit(XPMEM_RDWR), buf, len, NULL, XPMEM_ATTACH_POPULATE);
	ck_assert_int_eq(((uintptr_t)a - (uintptr_t)buf) % HUGE, 0);
	ck_assert_int_eq(xtest_stat("pmds_mapped") - pmds, len / HUGE);
	faults = xtest_stat("faults");
	ck_assert(holds(a, len, 14, 0));
	ck_assert_int_eq(xtest_stat("faults"), faults);
}
END_TEST

/*
 * 2 MiB hugetlb pages map with one PMD each, for reading and writing. The
 * attacher's /proc/self/smaps and pagemap read over the mapping, which
 * they skip (a PFN mapping): a walker that followed our PMD would count
 * the exporter's page as the attacher's.
 */
START_TEST(hugetlb_pages_map_with_pmds)
{
	const size_t len = 2 * HUGE;
	unsigned char *buf = hugetlb_buf(len, 15), *a;
	long pmds;
	uint64_t entry;
	int fd;

	a = attach_self(buf, len, XPMEM_RDWR);
	pmds = xtest_stat("pmds_mapped");
	ck_assert(holds(a, len, 15, 0));
	ck_assert_int_eq(xtest_stat("pmds_mapped") - pmds, 2);
	memset(a + HUGE + PAGE, 0xe1, PAGE);
	ck_assert(xtest_all_bytes_are(buf + HUGE + PAGE, PAGE, 0xe1));
	/* Page walkers skip PFN mappings: no Rss, nothing present. */
	ck_assert_int_eq(xtest_smaps_kb(a, "Rss:"), 0);
	fd = open("/proc/self/pagemap", O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &entry, sizeof(entry), (off_t)((uintptr_t)a / PAGE * 8)),
			 sizeof(entry));
	ck_assert_msg(!(entry >> 63), "pagemap shows the attachment's page present: %#llx",
		      (unsigned long long)entry);
	close(fd);
	ck_assert_int_eq(munmap(buf, len), 0);
	ck_assert_int_eq(access_signal(a, false, 0), SIGBUS);
}
END_TEST

/*
 * Concurrency: threads fault, write and re-attach two huge pages through
 * attachments while others split, collapse, drop and migrate them in the
 * exporter and split the attacher's VMA inside a PMD. Word i of the buffer
 * only ever holds 0 (a dropped page) or i in its low half, so a reader
 * that sees anything else saw a wrong page. Afterwards the attachment must
 * show exactly what the exporter has. Run on the lockdep/KASAN kernel by
 * the suite, whose log scan catches what the data cannot.
 */
#define RACE_LEN (2 * HUGE)
/* Changes made, at most; and seconds (the debug kernel is 10x slower). */
#define RACE_ROUNDS 400
#define RACE_SECONDS 20

struct race {
	uint64_t *buf, *a;		/* the exporter's buffer, an attachment */
	xpmem_apid_t apid;
	_Atomic bool stop;
	_Atomic unsigned long bad, reads, writes, changes, reattaches;
};

static uint64_t race_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Reads of window 0 and 1, writes of window 0 only (window 1 may be RO). */
static void *race_access(void *arg)
{
	struct race *r = arg;
	uint64_t x = (uintptr_t)&x | 1;

	while (!r->stop) {
		size_t i = race_rand(&x) % (RACE_LEN / 8);
		uint64_t v = ((volatile uint64_t *)r->a)[i];

		if (v && (uint32_t)v != (uint32_t)i)
			r->bad++;
		r->reads++;
		i = race_rand(&x) % (HUGE / 8);
		((volatile uint64_t *)r->a)[i] = (race_rand(&x) << 32) | (uint32_t)i;
		r->writes++;
	}
	return NULL;
}

/* The exporter's side: drop a page, refill, collapse, migrate. */
static void *race_exporter(void *arg)
{
	struct race *r = arg;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	bool collapse = xtest_kernel_at_least(6, 1);
	bool numa = access("/sys/devices/system/node/node1", F_OK) == 0;
	time_t end = time(NULL) + RACE_SECONDS;

	for (int round = 0; round < RACE_ROUNDS && !r->stop && time(NULL) < end; round++) {
		uint8_t *win = (uint8_t *)r->buf + (race_rand(&x) % 2) * HUGE;
		size_t page = race_rand(&x) % (HUGE / PAGE);

		switch (race_rand(&x) % 4) {
		case 0:
			(void)madvise(win + page * PAGE, PAGE, MADV_DONTNEED);
			break;
		case 1:
			for (size_t i = 0; i < HUGE / 8; i += 64) {
				size_t w = (size_t)(win - (uint8_t *)r->buf) / 8 + i;

				((volatile uint64_t *)r->buf)[w] = (uint64_t)round << 32 | (uint32_t)w;
			}
			break;
		case 2:
			if (collapse)
				(void)madvise(win, HUGE, MADV_COLLAPSE);
			break;
		case 3:
			if (numa) {
				void *pages[1] = { win };
				int node = (int)(race_rand(&x) % 2), status;

				(void)syscall(SYS_move_pages, 0, 1UL, pages, &node, &status,
					      MPOL_MF_MOVE);
			}
			break;
		}
		r->changes++;
	}
	r->stop = true;
	return NULL;
}

/* The attacher's side: split its VMA inside window 1, and re-attach. */
static void *race_attacher(void *arg)
{
	struct race *r = arg;
	uint64_t x = 0x2545f4914f6cdd1dull;

	while (!r->stop) {
		uint8_t *half = (uint8_t *)r->a + HUGE + MIB;
		struct xpmem_addr addr = { .apid = r->apid, .offset = (off_t)(uintptr_t)r->buf };
		uint64_t *b;
		size_t i = race_rand(&x) % (RACE_LEN / 8);
		uint64_t v;

		ck_assert_int_eq(mprotect(half, MIB, PROT_READ), 0);
		ck_assert_int_eq(mprotect(half, MIB, PROT_READ | PROT_WRITE), 0);
		b = xpmem_ext_attach(addr, RACE_LEN, NULL,
				     race_rand(&x) % 2 ? XPMEM_ATTACH_POPULATE : 0);
		ck_assert(b != (void *)-1);
		v = ((volatile uint64_t *)b)[i];
		if (v && (uint32_t)v != (uint32_t)i)
			r->bad++;
		ck_assert_int_eq(xpmem_detach(b), 0);
		r->reattaches++;
	}
	return NULL;
}

START_TEST(concurrent_changes_under_pmds)
{
	struct race r = { .buf = (uint64_t *)thp_buf(RACE_LEN, 0) };
	pthread_t t[4];
	long pmds = xtest_stat("pmds_mapped");

	for (size_t i = 0; i < RACE_LEN / 8; i++)
		r.buf[i] = (uint32_t)i;
	r.apid = self_permit(XPMEM_RDWR);
	r.a = (uint64_t *)attach_at(r.apid, r.buf, RACE_LEN, NULL, 0);
	for (size_t i = 0; i < RACE_LEN / 8; i += PAGE / 8)
		ck_assert_uint_eq(r.a[i], (uint32_t)i);
	ck_assert_int_eq(xtest_stat("pmds_mapped") - pmds, 2);
	ck_assert_int_eq(pthread_create(&t[0], NULL, race_access, &r), 0);
	ck_assert_int_eq(pthread_create(&t[1], NULL, race_access, &r), 0);
	ck_assert_int_eq(pthread_create(&t[2], NULL, race_attacher, &r), 0);
	ck_assert_int_eq(pthread_create(&t[3], NULL, race_exporter, &r), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	ck_assert_msg(r.bad == 0, "%lu reads saw a word of another page", (unsigned long)r.bad);
	/* Quiet now: the attachment shows what the exporter has, word by word. */
	for (size_t i = 0; i < RACE_LEN / 8; i++)
		ck_assert_msg(r.a[i] == r.buf[i], "word %zu: %#llx through the attachment, %#llx",
			      i, (unsigned long long)r.a[i], (unsigned long long)r.buf[i]);
	ck_assert_int_gt(xtest_stat("pmds_mapped"), pmds);
	printf("concurrent_changes_under_pmds: %lu reads, %lu writes, %lu changes, %lu "
	       "re-attaches, %ld PMDs\n", (unsigned long)r.reads, (unsigned long)r.writes,
	       (unsigned long)r.changes, (unsigned long)r.reattaches,
	       xtest_stat("pmds_mapped") - pmds);
}
END_TEST

#define HUGETLB_2M "/sys/kernel/mm/hugepages/hugepages-2048kB/"

/*
 * A kernel built without THP (Debian's PREEMPT_RT 6.1) has no PMD insert:
 * everything maps with PTEs there, 2 MiB hugetlb pages included (when the
 * pool has them), and pmds_mapped stays where it was.
 */
static bool hugetlb_ok;

START_TEST(without_thp_everything_maps_with_ptes)
{
	unsigned char *buf = map_aligned(2 * HUGE), *a;
	long pmds = xtest_stat("pmds_mapped");

	ck_assert_int_ge(pmds, 0);
	fill(buf, 2 * HUGE, 16);
	a = attach_at(self_permit(XPMEM_RDWR), buf, 2 * HUGE, NULL, 0);
	ck_assert(holds(a, 2 * HUGE, 16, 0));
	memset(a + HUGE, 0x71, PAGE);
	ck_assert(xtest_all_bytes_are(buf + HUGE, PAGE, 0x71));
	if (hugetlb_ok) {
		unsigned char *h = hugetlb_buf(HUGE, 17);

		a = attach_at(self_permit(XPMEM_RDWR), h, HUGE, NULL, 0);
		ck_assert(holds(a, HUGE, 17, 0));
		memset(a + PAGE, 0x72, PAGE);
		ck_assert(xtest_all_bytes_are(h + PAGE, PAGE, 0x72));
	}
	ck_assert_int_eq(xtest_stat("pmds_mapped"), pmds);
}
END_TEST

/*
 * Under the kernel's page table checker (page_table_check=on), which BUG()s
 * when a writable mapping is added for an anonymous page that is mapped
 * already, the driver maps anonymous 2 MiB pages with PTEs (a checker that
 * counts special PTEs too makes the module refuse to load) and file-backed
 * ones with PMDs still. tests/run-tests boots the debug kernel with the
 * checker and runs these alone (XPMEM_PTCHECK=1). Without the driver's care, the first write below is a
 * kernel BUG in page_table_check_set().
 */
#define PTCHECK_FILE "/sys/kernel/debug/xpmem/page_table_check"

/* The driver's view: is the checker on? */
static bool ptcheck_on(void)
{
	char v = 'N';
	FILE *f = fopen(PTCHECK_FILE, "r");

	if (f) {
		if (fread(&v, 1, 1, f) != 1)
			v = 'N';
		fclose(f);
	}
	return v == 'Y';
}

START_TEST(ptcheck_is_on)
{
	ck_assert_msg(access(PTCHECK_FILE, R_OK) == 0, PTCHECK_FILE ": %s", strerror(errno));
	ck_assert_msg(ptcheck_on(), "XPMEM_PTCHECK=1, but the driver sees the page table checker off");
	ck_assert_msg(have_thp(), "the page table checker's tests need THP");
	ck_assert_int_ge(xtest_stat("pmds_ptcheck_ptes"), 0);
}
END_TEST

/*
 * Two writable attachments and a read-only one of THP-backed memory: every
 * window maps with PTEs, once counted in pmds_ptcheck_ptes, and the data
 * goes both ways.
 */
START_TEST(anon_huge_pages_map_with_ptes_under_ptcheck)
{
	const size_t len = 4 * MIB;
	unsigned char *buf = thp_buf(len, 18), *a, *b, *r;
	long pmds = xtest_stat("pmds_mapped"), ptes = xtest_stat("pmds_ptcheck_ptes");

	a = attach_self(buf, len, XPMEM_RDWR);
	memset(a, 0x81, HUGE);			/* first access: a write */
	ck_assert(xtest_all_bytes_are(buf, HUGE, 0x81));
	ck_assert(holds(a + HUGE, HUGE, 18, HUGE));	/* a read, then a write */
	memset(a + HUGE, 0x82, HUGE);
	ck_assert(xtest_all_bytes_are(buf + HUGE, HUGE, 0x82));
	ck_assert_int_eq(xtest_stat("pmds_ptcheck_ptes") - ptes, 2);

	b = attach_self(buf, len, XPMEM_RDWR);
	memset(b + HUGE / 2, 0x83, HUGE);
	ck_assert(xtest_all_bytes_are(a + HUGE / 2, HUGE, 0x83));
	r = attach_self(buf, len, XPMEM_RDONLY);
	ck_assert(xtest_all_bytes_are(r + HUGE / 2, HUGE, 0x83));
	memset(buf, 0x84, len);
	ck_assert(xtest_all_bytes_are(b, len, 0x84));
	ck_assert(xtest_all_bytes_are(r, len, 0x84));

	ck_assert_int_eq(xtest_stat("pmds_mapped"), pmds);
	ck_assert_int_eq(xtest_stat("pmds_ptcheck_ptes") - ptes, 6);
	ck_assert_int_gt(xtest_smaps_kb(buf, "AnonHugePages:"), 0);
}
END_TEST

/* A private hugetlb page is anonymous too. */
START_TEST(private_hugetlb_maps_with_ptes_under_ptcheck)
{
	unsigned char *h = hugetlb_buf(HUGE, 19), *a;
	long pmds = xtest_stat("pmds_mapped"), ptes = xtest_stat("pmds_ptcheck_ptes");

	a = attach_self(h, HUGE, XPMEM_RDWR);
	memset(a + PAGE, 0x85, PAGE);
	ck_assert(xtest_all_bytes_are(h + PAGE, PAGE, 0x85));
	ck_assert(holds(a + 2 * PAGE, HUGE - 2 * PAGE, 19, 2 * PAGE));
	ck_assert_int_eq(xtest_stat("pmds_mapped"), pmds);
	ck_assert_int_eq(xtest_stat("pmds_ptcheck_ptes") - ptes, 1);
}
END_TEST

/*
 * A shared hugetlb page is a file page: the checker allows any number of
 * writable mappings of those, and it still maps with one PMD.
 */
START_TEST(shared_hugetlb_keeps_pmds_under_ptcheck)
{
	int fd = (int)syscall(SYS_memfd_create, "ptcheck", MFD_HUGETLB | MFD_HUGE_2MB);
	unsigned char *h, *a;
	long pmds, ptes = xtest_stat("pmds_ptcheck_ptes");

	ck_assert_int_ge(ptes, 0);
	ck_assert_msg(fd >= 0, "memfd_create(MFD_HUGETLB): %s", strerror(errno));
	ck_assert_int_eq(ftruncate(fd, 2 * HUGE), 0);
	h = mmap(NULL, 2 * HUGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_msg(h != MAP_FAILED, "mmap of a hugetlb memfd: %s", strerror(errno));
	close(fd);
	fill(h, 2 * HUGE, 20);
	a = attach_self(h, 2 * HUGE, XPMEM_RDWR);
	pmds = xtest_stat("pmds_mapped");
	memset(a, 0x86, PAGE);
	ck_assert(xtest_all_bytes_are(h, PAGE, 0x86));
	ck_assert(holds(a + HUGE, HUGE, 20, HUGE));
	ck_assert_int_eq(xtest_stat("pmds_mapped") - pmds, 2);
	ck_assert_int_eq(xtest_stat("pmds_ptcheck_ptes"), ptes);
}
END_TEST

/*
 * Make @n 2 MiB hugetlb pages free; false if the kernel cannot. Returns in
 * *@saved the pool size to restore afterwards (-1: unchanged).
 */
static bool reserve_hugetlb(long n, long *saved)
{
	long total = xtest_read_long(HUGETLB_2M "nr_hugepages");
	long free_now = xtest_read_long(HUGETLB_2M "free_hugepages");
	char text[32];

	*saved = -1;
	if (total < 0 || free_now < 0)
		return false;
	if (free_now < n) {
		*saved = total;
		snprintf(text, sizeof(text), "%ld", total + n - free_now);
		(void)xtest_write_file(HUGETLB_2M "nr_hugepages", text);
	}
	return xtest_read_long(HUGETLB_2M "free_hugepages") >= n;
}

int main(void)
{
	Suite *s = suite_create("huge");
	TCase *tc = xtest_tcase(s, "kernel");
	long saved_hugetlb = -1;
	char text[32];
	int ret;
	const struct {
		const char *name;
		const TTest *test;
	} thp_tests[] = {
		{ "read_maps_one_pmd_per_huge_page", read_maps_one_pmd_per_huge_page },
		{ "writes_through_a_pmd_reach_the_exporter",
		  writes_through_a_pmd_reach_the_exporter },
		{ "rdonly_attachment_pmd_refuses_writes", rdonly_attachment_pmd_refuses_writes },
		{ "readonly_source_pmd_write_is_sigbus", readonly_source_pmd_write_is_sigbus },
		{ "cow_huge_page_write_breaks_cow_in_the_exporter",
		  cow_huge_page_write_breaks_cow_in_the_exporter },
		{ "thp_split_under_a_pmd", thp_split_under_a_pmd },
		{ "partial_munmap_under_a_pmd", partial_munmap_under_a_pmd },
		{ "mprotect_half_under_a_pmd", mprotect_half_under_a_pmd },
		{ "gup_fast_refuses_a_pmd", gup_fast_refuses_a_pmd },
		{ "attacher_splits_its_pmd", attacher_splits_its_pmd },
		{ "incongruent_attachment_uses_ptes", incongruent_attachment_uses_ptes },
		{ "populate_maps_pmds", populate_maps_pmds },
		{ "huge_zero_page_maps_with_ptes", huge_zero_page_maps_with_ptes },
	};
	const char *no_thp = "this kernel has no transparent huge pages";

	/*
	 * Under the page table checker only its own tests run: the others
	 * count PMDs where anonymous pages now get PTEs.
	 */
	if (getenv("XPMEM_PTCHECK")) {
		TCase *pt = xtest_tcase(s, "ptcheck");

		tcase_add_test(pt, ptcheck_is_on);
		tcase_add_test(pt, anon_huge_pages_map_with_ptes_under_ptcheck);
		tcase_add_test(pt, shared_hugetlb_keeps_pmds_under_ptcheck);
		tcase_add_test(pt, private_hugetlb_maps_with_ptes_under_ptcheck);
		/* Three pages: the shared test's two and the private one. */
		if (!reserve_hugetlb(3, &saved_hugetlb))
			fprintf(stderr, "huge: no three free 2 MiB hugetlb pages; the hugetlb tests will fail\n");
		goto run;
	}
	if (ptcheck_on()) {
		fprintf(stderr, "huge: the page table checker is on; run with XPMEM_PTCHECK=1\n");
		return 1;
	}
	for (size_t i = 0; i < sizeof(thp_tests) / sizeof(thp_tests[0]); i++) {
		if (have_thp())
			tcase_add_test(tc, thp_tests[i].test);
		else
			xtest_skip(thp_tests[i].name, no_thp);
	}
	if (have_thp()) {
		/* RACE_SECONDS of changes, then a check of every word. */
		TCase *race = xtest_tcase(s, "race");

		tcase_set_timeout(race, 180);
		tcase_add_test(race, concurrent_changes_under_pmds);
	} else {
		xtest_skip("concurrent_changes_under_pmds", no_thp);
	}
	if (have_thp() && xtest_kernel_at_least(6, 1))
		tcase_add_test(tc, collapse_then_pmd);
	else
		xtest_skip("collapse_then_pmd", have_thp() ? "madvise(MADV_COLLAPSE) came in Linux 6.1" :
			   no_thp);
	if (have_thp() && access("/sys/devices/system/node/node1", F_OK) == 0)
		tcase_add_test(tc, thp_migration_under_a_pmd);
	else
		xtest_skip("thp_migration_under_a_pmd", have_thp() ?
			   "one NUMA node: nowhere to migrate to (the VM needs --numa 2)" : no_thp);
	/* Without THP the kernel has no PMD insert: hugetlb maps with PTEs. */
	/* No THP in the kernel at all: PTEs everywhere (THP "never" is not that). */
	if (access("/sys/kernel/mm/transparent_hugepage", F_OK) != 0) {
		hugetlb_ok = reserve_hugetlb(1, &saved_hugetlb);
		tcase_add_test(tc, without_thp_everything_maps_with_ptes);
	}
	if (have_thp() && reserve_hugetlb(2, &saved_hugetlb))
		tcase_add_test(tc, hugetlb_pages_map_with_pmds);
	else
		xtest_skip("hugetlb_pages_map_with_pmds", have_thp() ?
			   "no two free 2 MiB hugetlb pages could be reserved" : no_thp);

run:
	ret = xtest_main("huge", s, XTEST_NEEDS_DEVICE);
	if (saved_hugetlb >= 0) {
		snprintf(text, sizeof(text), "%ld", saved_hugetlb);
		(void)xtest_write_file(HUGETLB_2M "nr_hugepages", text);
	}
	return ret;
}
