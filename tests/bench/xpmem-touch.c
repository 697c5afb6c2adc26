// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * xpmem-touch.c - what the first touch of an attachment costs, with the
 * exporter's memory on 2 MiB THPs or on 4 KiB pages, and with the
 * attachment mapped by huge (PMD) or small (PTE) entries (issue 14).
 *
 * A forked child exports two buffers of --size bytes (default 64 MiB):
 * one on transparent huge pages, one on 4 KiB pages (MADV_NOHUGEPAGE),
 * both filled. The parent attaches them four ways:
 *
 *   thp/pmd   THP memory, attachment at the address the driver picks
 *             (congruent modulo 2 MiB: one PMD per huge page);
 *   thp/pte   THP memory, attachment at a fixed address 4 KiB off that
 *             congruence (the same pages, mapped with PTEs, as before);
 *   4k/pte    4 KiB memory, default address;
 *   thp/pop   THP memory, XPMEM_ATTACH_POPULATE (mapped in the attach).
 *
 * and reports, each a median of --reps runs in this one process:
 *
 *   attach    xpmem_get + xpmem_attach (us)
 *   touch     first read of one word per 4 KiB page (us), and the faults
 *             the driver took for it (debugfs "faults", if readable)
 *   cold      attach + copy of the whole range + detach + release (MB/s)
 *   warm      copy out of an attachment already faulted in (MB/s)
 *   detach    xpmem_detach + xpmem_release of a faulted attachment (us)
 *   det0      the same of an attachment never touched (us): the part of
 *             detach that does not depend on what was mapped
 *
 * and the ratios the issue sets targets for: cold/warm, faults per 2 MiB,
 * detach/attach, and thp/pmd against thp/pte. Every copy is checked
 * against the exporter's pattern; a mismatch makes the exit status 1.
 *
 * It also times the kernel's own unmap of the same shape, as a floor for
 * detach: an anonymous range of --size read through the huge zero page
 * (one PMD per 2 MiB and no page to free), copied out like the warm copy
 * above, then munmap()ed. Its minor faults per 2 MiB show whether the
 * kernel used PMDs (1) or not (512: THP is off); with
 * transparent_hugepage/use_zero_page at 0 they are real huge pages, which
 * the unmap also frees, and the line says so. Under TCG both unmaps are
 * often dominated by the TLB flush, which QEMU turns into a flush of its
 * whole software TLB (docs/performance.md).
 *
 * Usage: xpmem-touch [--size SIZE] [--reps N]   (SIZE: bytes, K/M/G suffix)
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"
#include "xpmem.h"

#define MiB (1024ul * 1024)
#define HUGE (2 * MiB)
#define PAGE 4096ul
#define MAX_REPS 64

enum way { THP_PMD, THP_PTE, SMALL_PTE, THP_POPULATE, NR_WAYS };

static const char *const way_name[NR_WAYS] = { "thp/pmd", "thp/pte", "4k/pte", "thp/pop" };

struct result {
	double attach_us, touch_us, faults, cold_mbps, warm_mbps, detach_us, detach0_us;
};

static size_t size = 64 * MiB;
static int reps = 5;
static unsigned long failures;

static void die(const char *what)
{
	fprintf(stderr, "xpmem-touch: %s: %s\n", what, strerror(errno));
	exit(2);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A counter of the driver's debugfs stats, or -1 (not readable). */
static long stat_read(const char *name)
{
	char key[64];
	long v, found = -1;
	FILE *f = fopen("/sys/kernel/debug/xpmem/stats", "r");

	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld", key, &v) == 2) {
		if (!strcmp(key, name)) {
			found = v;
			break;
		}
	}
	fclose(f);
	return found;
}

static uint64_t pattern(size_t word, unsigned int which)
{
	return (word * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)which << 56);
}

/*
 * A private anonymous mapping of @len + 2 MiB with @prot, whose start is
 * *@base; returns its first 2 MiB boundary.
 */
static uint64_t *map_huge_aligned(size_t len, int prot, uint8_t **base)
{
	*base = mmap(NULL, len + HUGE, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (*base == MAP_FAILED)
		die("mmap");
	return (uint64_t *)(((uintptr_t)*base + HUGE - 1) & ~(HUGE - 1));
}

/* @len bytes at a 2 MiB boundary, on THPs or (@thp false) on 4 KiB pages. */
static uint64_t *exporter_buffer(size_t len, bool thp, unsigned int which)
{
	uint8_t *base;
	uint64_t *buf = map_huge_aligned(len, PROT_READ | PROT_WRITE, &base);

	if (madvise(buf, len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE))
		die("madvise");
	for (size_t i = 0; i < len / 8; i++)
		buf[i] = pattern(i, which);
	return buf;
}

static bool verify(const uint64_t *dst, unsigned int which)
{
	for (size_t i = 0; i < size / 8; i += 509) {
		if (dst[i] != pattern(i, which)) {
			fprintf(stderr, "VERIFY FAILED: word %zu\n", i);
			failures++;
			return false;
		}
	}
	return true;
}

struct target {
	xpmem_segid_t segid;
	uintptr_t thp, small;
};

static void *attach_way(const struct target *t, enum way w, xpmem_apid_t *apid)
{
	struct xpmem_addr addr;
	void *vaddr = NULL, *p;
	unsigned int flags = w == THP_POPULATE ? XPMEM_ATTACH_POPULATE : 0;

	*apid = xpmem_get(t->segid, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL);
	if (*apid < 0)
		die("xpmem_get");
	addr.apid = *apid;
	addr.offset = (off_t)(w == SMALL_PTE ? t->small : t->thp);
	if (w == THP_PTE) {
		/* A free range, 4 KiB past a 2 MiB boundary: never congruent. */
		uint8_t *r = mmap(NULL, size + 2 * HUGE, PROT_NONE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (r == MAP_FAILED)
			die("mmap");
		munmap(r, size + 2 * HUGE);
		vaddr = (void *)((((uintptr_t)r + HUGE - 1) & ~(HUGE - 1)) + PAGE);
	}
	p = xpmem_ext_attach(addr, size, vaddr, flags);
	if (p == (void *)-1)
		die("xpmem_attach");
	return p;
}

static void detach_way(void *p, xpmem_apid_t apid)
{
	if (xpmem_detach(p) || xpmem_release(apid))
		die("xpmem_detach/release");
}

static void measure(const struct target *t, enum way w, uint64_t *dst, struct result *r)
{
	double att[MAX_REPS], touch[MAX_REPS], faults[MAX_REPS], cold[MAX_REPS];
	double warm[MAX_REPS], det[MAX_REPS], det0[MAX_REPS];
	unsigned int which = w == SMALL_PTE ? 2 : 1;

	for (int rep = 0; rep < reps; rep++) {
		xpmem_apid_t apid;
		volatile uint64_t sum = 0;
		uint64_t *a;
		long f0;
		double t0;

		/* attach, first touch, warm copy, detach of the faulted one */
		t0 = now();
		a = attach_way(t, w, &apid);
		att[rep] = (now() - t0) * 1e6;
		f0 = stat_read("faults");
		t0 = now();
		for (size_t i = 0; i < size / 8; i += PAGE / 8)
			sum += a[i];
		touch[rep] = (now() - t0) * 1e6;
		faults[rep] = f0 < 0 ? -1 : (double)(stat_read("faults") - f0);
		memset(dst, 0, size);
		t0 = now();
		memcpy(dst, a, size);
		warm[rep] = (double)size / (now() - t0) / 1e6;
		verify(dst, which);
		t0 = now();
		detach_way(a, apid);
		det[rep] = (now() - t0) * 1e6;

		/* detach of an attachment never touched (populate maps it all) */
		a = attach_way(t, w == THP_POPULATE ? THP_PMD : w, &apid);
		t0 = now();
		detach_way(a, apid);
		det0[rep] = (now() - t0) * 1e6;

		/* cold: the whole life of an attachment per transfer */
		memset(dst, 0, size);
		t0 = now();
		a = attach_way(t, w, &apid);
		memcpy(dst, a, size);
		detach_way(a, apid);
		cold[rep] = (double)size / (now() - t0) / 1e6;
		verify(dst, which);
	}
	r->attach_us = median(att, reps);
	r->touch_us = median(touch, reps);
	r->faults = median(faults, reps);
	r->cold_mbps = median(cold, reps);
	r->warm_mbps = median(warm, reps);
	r->detach_us = median(det, reps);
	r->detach0_us = median(det0, reps);
}

static long minor_faults(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		die("getrusage");
	return ru.ru_minflt;
}

/* transparent_hugepage/use_zero_page reads 0 (unreadable counts as on). */
static bool huge_zero_page_off(void)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/use_zero_page", "r");
	int on = 1;

	if (f) {
		if (fscanf(f, "%d", &on) != 1)
			on = 1;
		fclose(f);
	}
	return !on;
}

/* The kernel's unmap of --size bytes of huge zero page PMDs (see the top). */
static void measure_floor(uint64_t *dst, double *unmap_us, double *faults_per_2m)
{
	double us[MAX_REPS], faults[MAX_REPS];

	for (int rep = 0; rep < reps; rep++) {
		uint8_t *p;
		uint64_t *a = map_huge_aligned(size, PROT_READ, &p);
		volatile uint64_t sum = 0;
		long f0;
		double t0;

		/* All of it: one VMA, as an attachment is. */
		if (madvise(p, size + HUGE, MADV_HUGEPAGE))
			die("madvise");
		f0 = minor_faults();
		for (size_t i = 0; i < size / 8; i += PAGE / 8)
			sum += a[i];
		faults[rep] = (double)(minor_faults() - f0) / (double)(size / HUGE);
		memcpy(dst, a, size);
		t0 = now();
		if (munmap(p, size + HUGE))
			die("munmap");
		us[rep] = (now() - t0) * 1e6;
	}
	*unmap_us = median(us, reps);
	*faults_per_2m = median(faults, reps);
}

static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (*end == 'K')
		v *= 1024;
	else if (*end == 'M')
		v *= MiB;
	else if (*end == 'G')
		v *= 1024 * MiB;
	return (size_t)v;
}

int main(int argc, char **argv)
{
	struct result res[NR_WAYS];
	double floor_us, floor_faults;
	struct target t;
	int to_parent[2], to_child[2];
	uint64_t *dst;
	pid_t child;
	char c = 0;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--size"))
			size = parse_size(argv[i + 1]);
		else if (!strcmp(argv[i], "--reps"))
			reps = atoi(argv[i + 1]);
	}
	if (!size || size % HUGE || reps < 1 || reps > MAX_REPS) {
		fprintf(stderr, "usage: xpmem-touch [--size SIZE (a multiple of 2M)] [--reps 1..%d]\n",
			MAX_REPS);
		return 2;
	}
	if (pipe(to_parent) || pipe(to_child))
		die("pipe");
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		close(to_parent[0]);
		close(to_child[1]);
		t.thp = (uintptr_t)exporter_buffer(size, true, 1);
		t.small = (uintptr_t)exporter_buffer(size, false, 2);
		t.segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
		if (t.segid < 0)
			die("xpmem_make");
		if (write(to_parent[1], &t, sizeof(t)) != sizeof(t))
			die("write");
		(void)read(to_child[0], &c, 1);	/* until the parent is done */
		_exit(0);
	}
	/* Only our ends: a child that dies is EOF here, not a hang. */
	close(to_parent[1]);
	close(to_child[0]);
	if (read(to_parent[0], &t, sizeof(t)) != sizeof(t)) {
		fprintf(stderr, "xpmem-touch: the exporter ended without a segment\n");
		return 2;
	}
	dst = exporter_buffer(size, true, 0);

	for (int w = 0; w < NR_WAYS; w++)
		measure(&t, w, dst, &res[w]);
	measure_floor(dst, &floor_us, &floor_faults);
	if (write(to_child[1], &c, 1) != 1 || waitpid(child, NULL, 0) != child)
		die("exporter");

	printf("xpmem-touch: %zu MiB, median of %d runs\n", size / MiB, reps);
	printf("%-8s %10s %12s %9s %10s %10s %10s %10s %9s %9s\n", "way", "attach_us",
	       "touch_us", "faults", "faults/2M", "cold_MBs", "warm_MBs", "cold/warm", "detach_us",
	       "det0_us");
	for (int w = 0; w < NR_WAYS; w++) {
		const struct result *r = &res[w];

		printf("%-8s %10.1f %12.1f %9.0f %10.2f %10.1f %10.1f %10.2f %9.1f %9.1f\n",
		       way_name[w], r->attach_us, r->touch_us, r->faults,
		       r->faults < 0 ? -1 : r->faults / (double)(size / HUGE), r->cold_mbps,
		       r->warm_mbps, r->cold_mbps / r->warm_mbps, r->detach_us, r->detach0_us);
	}
	printf("ratio first touch thp/pte over thp/pmd: %.2f\n",
	       res[THP_PTE].touch_us / res[THP_PMD].touch_us);
	printf("ratio cold thp/pmd over thp/pte: %.2f\n",
	       res[THP_PMD].cold_mbps / res[THP_PTE].cold_mbps);
	printf("ratio detach of a faulted attachment over attach (thp/pmd): %.2f\n",
	       res[THP_PMD].detach_us / res[THP_PMD].attach_us);
	printf("ratio detach of a faulted attachment over attach (4k/pte): %.2f\n",
	       res[SMALL_PTE].detach_us / res[SMALL_PTE].attach_us);
	printf("ratio detach of a faulted attachment over an untouched one (thp/pmd): %.2f\n",
	       res[THP_PMD].detach_us / res[THP_PMD].detach0_us);
	printf("floor: munmap of %zu MiB of huge zero page PMDs, copied out: %.1f us, minor faults per 2 MiB %.2f%s%s\n",
	       size / MiB, floor_us, floor_faults,
	       floor_faults > 1.5 ? " (not PMDs: THP is off)" : "",
	       huge_zero_page_off() ? " (use_zero_page is 0: real huge pages, freed too)" : "");
	printf("ratio detach of a faulted attachment over the kernel's unmap of as many PMDs (thp/pmd): %.2f\n",
	       res[THP_PMD].detach_us / floor_us);
	if (failures)
		printf("VERIFY FAILED: %lu mismatches\n", failures);
	return failures ? 1 : 0;
}
