// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_events.c - invalidations that the kernel starts on its own: KSM
 * merging, THP split and collapse, reclaim to swap.
 *
 * Needs the module and root (it turns KSM on and sets up zram swap).
 * tests/guest-suite runs it in the root pass only. Each test attaches its
 * own segment (a process may), so that one process both changes the
 * exporter's memory and reads it through the attachment.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "xpmem.h"
#include "xtest.h"

#define MIB (1UL << 20)
#define PAGE 4096UL

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

/* Transparent huge pages exist in this kernel (not in PREEMPT_RT 6.1). */
static int have_thp(void)
{
	return access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0;
}

/* @len bytes aligned to 2 MiB, so that THP can back them. */
static unsigned char *map_aligned(size_t len)
{
	unsigned char *p = mmap(NULL, len + 2 * MIB, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *aligned;

	ck_assert(p != MAP_FAILED);
	aligned = (unsigned char *)(((uintptr_t)p + 2 * MIB - 1) & ~(2 * MIB - 1));
	return aligned;
}

/* Attach [buf, buf + len) of this very process, read-write. */
static unsigned char *attach_self(unsigned char *buf, size_t len)
{
	xpmem_segid_t segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	struct xpmem_addr addr;
	unsigned char *a;

	ck_assert_int_gt(segid, 0);
	addr.apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert_int_gt(addr.apid, 0);
	addr.offset = (off_t)(uintptr_t)buf;
	a = xpmem_attach(addr, len, NULL);
	ck_assert(a != (void *)-1);
	return a;
}

/*
 * KSM merges the exporter's identical pages into one read-only page. The
 * attachment follows, and a write through it breaks COW in the exporter:
 * the other merged pages keep their old contents.
 */
START_TEST(ksm_merge_is_followed_and_a_write_unmerges)
{
	const size_t len = 64 * PAGE;
	unsigned char *buf = map_aligned(len), *a;
	long clear_before;

	memset(buf, 0x3c, len);
	a = attach_self(buf, len);
	ck_assert(xtest_all_bytes_are(a, len, 0x3c));	/* mapped before merging */
	clear_before = xtest_stat("inv_clear");

	ck_assert_int_eq(madvise(buf, len, MADV_MERGEABLE), 0);
	ck_assert_int_eq(xtest_write_file("/sys/kernel/mm/ksm/pages_to_scan", "10000"), 0);
	ck_assert_int_eq(xtest_write_file("/sys/kernel/mm/ksm/sleep_millisecs", "0"), 0);
	ck_assert_int_eq(xtest_write_file("/sys/kernel/mm/ksm/run", "1"), 0);
	for (int i = 0; i < 200 && xtest_read_long("/sys/kernel/mm/ksm/pages_sharing") < 32; i++)
		usleep(50000);
	ck_assert_int_ge(xtest_read_long("/sys/kernel/mm/ksm/pages_sharing"), 32);
	ck_assert_int_gt(xtest_stat("inv_clear"), clear_before);	/* write-protected */

	ck_assert(xtest_all_bytes_are(a, len, 0x3c));
	memset(a, 0x3d, PAGE);	/* the first page only */
	ck_assert(xtest_all_bytes_are(buf, PAGE, 0x3d));
	ck_assert(xtest_all_bytes_are(buf + PAGE, len - PAGE, 0x3c));
	ck_assert(xtest_all_bytes_are(a + PAGE, len - PAGE, 0x3c));
	ck_assert_int_eq(xtest_write_file("/sys/kernel/mm/ksm/run", "2"), 0);	/* unmerge all */
}
END_TEST

/* A THP split under the attachment: one subpage dropped, the rest intact. */
START_TEST(thp_split_is_followed)
{
	const size_t len = 4 * MIB;
	unsigned char *buf = map_aligned(len), *a;

	ck_assert_int_eq(madvise(buf, len, MADV_HUGEPAGE), 0);
	memset(buf, 0x4e, len);
	ck_assert_int_gt(xtest_smaps_kb(buf, "AnonHugePages:"), 0);
	a = attach_self(buf, len);
	ck_assert(xtest_all_bytes_are(a, len, 0x4e));
	/* Dropping one 4 KiB subpage splits the PMD mapping. */
	ck_assert_int_eq(madvise(buf + 5 * PAGE, PAGE, MADV_DONTNEED), 0);
	ck_assert(xtest_all_bytes_are(a + 5 * PAGE, PAGE, 0));
	ck_assert(xtest_all_bytes_are(a, 5 * PAGE, 0x4e));
	ck_assert(xtest_all_bytes_are(a + 6 * PAGE, len - 6 * PAGE, 0x4e));
	memset(a + 5 * PAGE, 0x4f, PAGE);
	ck_assert(xtest_all_bytes_are(buf + 5 * PAGE, PAGE, 0x4f));
}
END_TEST

/* Small pages collapsed into a huge one (MADV_COLLAPSE) under the attachment. */
START_TEST(thp_collapse_is_followed)
{
	const size_t len = 2 * MIB;
	unsigned char *buf = map_aligned(len), *a;

	ck_assert_int_eq(madvise(buf, len, MADV_NOHUGEPAGE), 0);
	memset(buf, 0x5e, len);
	ck_assert_int_eq(xtest_smaps_kb(buf, "AnonHugePages:"), 0);
	a = attach_self(buf, len);
	ck_assert(xtest_all_bytes_are(a, len, 0x5e));
	ck_assert_int_eq(madvise(buf, len, MADV_HUGEPAGE), 0);
	ck_assert_msg(madvise(buf, len, MADV_COLLAPSE) == 0, "MADV_COLLAPSE: %s", strerror(errno));
	ck_assert_int_gt(xtest_smaps_kb(buf, "AnonHugePages:"), 0);
	ck_assert(xtest_all_bytes_are(a, len, 0x5e));
	memset(a, 0x5f, len);
	ck_assert(xtest_all_bytes_are(buf, len, 0x5f));
}
END_TEST

/* Swap on zram, so that anonymous pages can really be reclaimed. */
static void setup_zram_swap(void)
{
	if (xtest_read_long("/sys/block/zram0/disksize") > 0)
		return;	/* an earlier test did it */
	/* A kernel may have zram built in; Debian's has it as a module. */
	if (access("/sys/block/zram0", F_OK) != 0)
		ck_assert_int_eq(system("modprobe zram num_devices=1"), 0);
	ck_assert_int_eq(xtest_write_file("/sys/block/zram0/disksize", "64M"), 0);
	ck_assert_int_eq(system("mkswap -q /dev/zram0 && swapon /dev/zram0"), 0);
}

/* Is the page at @addr swapped out (pagemap bit 62)? */
static int page_swapped(void *addr)
{
	uint64_t entry = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &entry, sizeof(entry), ((uintptr_t)addr / PAGE) * 8),
			 sizeof(entry));
	close(fd);
	return (entry >> 62) & 1;
}

/* Reclaim swaps the exporter's pages out; the attachment faults them back. */
START_TEST(reclaim_to_swap_is_followed)
{
	const size_t len = 64 * PAGE;
	unsigned char *buf = map_aligned(len), *a;
	long clear_before;
	int swapped = 0;

	setup_zram_swap();
	if (have_thp())
		ck_assert_int_eq(madvise(buf, len, MADV_NOHUGEPAGE), 0);
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 7);
	a = attach_self(buf, len);
	ck_assert_uint_eq(a[len - 1], (unsigned char)((len - 1) * 7));
	clear_before = xtest_stat("inv_clear");
	ck_assert_int_eq(madvise(buf, len, MADV_PAGEOUT), 0);
	for (size_t i = 0; i < len; i += PAGE)
		swapped += page_swapped(buf + i);
	ck_assert_msg(swapped > (int)(len / PAGE / 2), "only %d of %lu pages swapped out",
		      swapped, len / PAGE);
	ck_assert_int_gt(xtest_stat("inv_clear"), clear_before);
	/* Read through the attachment first: it swaps them in. */
	for (size_t i = 0; i < len; i++)
		ck_assert_uint_eq(a[i], (unsigned char)(i * 7));
}
END_TEST

/* mprotect in the exporter is an invalidation; writes then SIGBUS, reads work. */
START_TEST(mprotect_is_counted_and_followed)
{
	const size_t len = 16 * PAGE;
	unsigned char *buf = map_aligned(len), *a;
	long before;

	memset(buf, 0x6a, len);
	a = attach_self(buf, len);
	memset(a, 0x6b, len);
	before = xtest_stat("inv_protection_vma");
	ck_assert_int_eq(mprotect(buf, len, PROT_READ), 0);
	ck_assert_int_gt(xtest_stat("inv_protection_vma"), before);
	ck_assert(xtest_all_bytes_are(a, len, 0x6b));
	ck_assert_int_eq(mprotect(buf, len, PROT_READ | PROT_WRITE), 0);
	memset(a, 0x6c, len);
	ck_assert(xtest_all_bytes_are(buf, len, 0x6c));
}
END_TEST

/*
 * One try: start a victim that exports its whole address space, attach its
 * buffer, SIGKILL it, and run process_mrelease() on it at once. The buffer
 * is private memory (which the reaper frees), or with @shared shared memory
 * (which it leaves to exit). Returns the errno of process_mrelease()
 * (EAGAIN when the driver refused, ESRCH when the victim had already
 * released its mm, which is the race the caller retries).
 */
static int mrelease_attached_victim(bool shared)
{
	const size_t len = 16 * PAGE;
	int to_parent[2], status, pidfd, got, err;
	struct sched_param idle = { 0 };
	struct xpmem_addr addr;
	xpmem_segid_t segid;
	unsigned char *buf, *a;
	pid_t victim;

	ck_assert_int_eq(pipe(to_parent), 0);
	victim = fork();
	ck_assert_int_ge(victim, 0);
	if (victim == 0) {
		buf = shared ? mmap(NULL, len, PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS, -1, 0) : map_aligned(len);
		if (buf == MAP_FAILED)
			_exit(1);
		memset(buf, 0x7e, len);
		segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
		if (sched_setscheduler(0, SCHED_IDLE, &idle) != 0 ||
		    write(to_parent[1], &segid, sizeof(segid)) != sizeof(segid) ||
		    write(to_parent[1], &buf, sizeof(buf)) != sizeof(buf))
			_exit(1);
		for (;;)
			pause();
	}
	ck_assert_int_eq(read(to_parent[0], &segid, sizeof(segid)), sizeof(segid));
	ck_assert_int_eq(read(to_parent[0], &buf, sizeof(buf)), sizeof(buf));
	close(to_parent[0]);
	close(to_parent[1]);
	addr.apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	addr.offset = (off_t)(uintptr_t)buf;
	a = xpmem_attach(addr, len, NULL);
	ck_assert(a != (void *)-1);
	ck_assert(xtest_all_bytes_are(a, len, 0x7e));

	pidfd = syscall(SYS_pidfd_open, victim, 0);
	ck_assert_int_ge(pidfd, 0);
	ck_assert_int_eq(kill(victim, SIGKILL), 0);
	got = syscall(SYS_process_mrelease, pidfd, 0);
	err = got ? errno : 0;
	ck_assert_int_eq(waitpid(victim, &status, 0), victim);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	close(pidfd);
	ck_assert_int_eq(xpmem_detach(a), 0);
	ck_assert_int_eq(xpmem_release(addr.apid), 0);
	return err;
}

/*
 * Reap an attached victim as mrelease_attached_victim() does, from our
 * CPU: the victim runs at SCHED_IDLE there, so that we usually reach
 * process_mrelease() before it starts exiting. When it wins the race
 * (ESRCH), try again, up to 10 times. Returns the last errno (0: reaped).
 */
static int mrelease_attached_victim_retried(bool shared)
{
	int err = ESRCH;
	cpu_set_t cpu0;

	CPU_ZERO(&cpu0);
	CPU_SET(0, &cpu0);
	ck_assert_int_eq(sched_setaffinity(0, sizeof(cpu0), &cpu0), 0);
	for (int attempt = 0; attempt < 10 && err == ESRCH; attempt++)
		err = mrelease_attached_victim(shared);
	return err;
}

/*
 * The OOM reaper's path (here through process_mrelease(), which runs it on
 * a dying process on demand) invalidates without being allowed to sleep.
 * With an attachment mapped, the driver must refuse (the reap fails with
 * EAGAIN) instead of sleeping, and the victim must still exit cleanly.
 */
START_TEST(nonblocking_invalidation_is_refused)
{
	long refused = xtest_stat("inv_nonblock_refused");
	int err = mrelease_attached_victim_retried(false);

	ck_assert_msg(err == EAGAIN, "process_mrelease: %s; expected EAGAIN from the refusal",
		      err ? strerror(err) : "reaped");
	ck_assert_int_gt(xtest_stat("inv_nonblock_refused"), refused);
}
END_TEST

/*
 * The refusal is per range: with only shared memory attached (which the
 * reaper does not touch), every range it reaps has no attachment, the
 * driver lets each go on without a zap, and the reap succeeds.
 */
START_TEST(nonblocking_invalidation_outside_attachments_goes_on)
{
	long refused = xtest_stat("inv_nonblock_refused");
	int err = mrelease_attached_victim_retried(true);

	ck_assert_msg(err == 0, "process_mrelease: %s; expected the reap to succeed",
		      strerror(err));
	ck_assert_int_eq(xtest_stat("inv_nonblock_refused"), refused);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("events");
	TCase *tc = xtest_tcase(s, "kernel");

	tcase_add_test(tc, ksm_merge_is_followed_and_a_write_unmerges);
	if (have_thp()) {
		tcase_add_test(tc, thp_split_is_followed);
	} else {
		xtest_skip("thp_split_is_followed", "this kernel has no transparent huge pages");
	}
	if (have_thp() && xtest_kernel_at_least(6, 1))
		tcase_add_test(tc, thp_collapse_is_followed);
	else
		xtest_skip("thp_collapse_is_followed", have_thp() ?
			   "madvise(MADV_COLLAPSE) came in Linux 6.1" :
			   "this kernel has no transparent huge pages");
	tcase_add_test(tc, reclaim_to_swap_is_followed);
	tcase_add_test(tc, mprotect_is_counted_and_followed);
	/*
	 * process_mrelease() is how a test reaches the OOM reaper's
	 * non-blocking invalidation on purpose; before it, only a real OOM
	 * kill does.
	 */
	if (xtest_kernel_at_least(5, 15)) {
		tcase_add_test(tc, nonblocking_invalidation_is_refused);
		tcase_add_test(tc, nonblocking_invalidation_outside_attachments_goes_on);
	} else {
		xtest_skip("nonblocking_invalidation_is_refused",
			   "process_mrelease() came in Linux 5.15");
		xtest_skip("nonblocking_invalidation_outside_attachments_goes_on",
			   "process_mrelease() came in Linux 5.15");
	}

	return xtest_main("events", s, XTEST_NEEDS_DEVICE);
}
