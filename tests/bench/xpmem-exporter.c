// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * xpmem-exporter.c - what exporting costs the exporter (issue 14; MPICH
 * issue 7333: a malloc-heavy benchmark ran 25-100% slower in a process
 * that exported its whole address space).
 *
 * The exporter runs a malloc/free loop whose sizes make glibc mmap and
 * munmap (above its mmap threshold, fixed at 128 KiB so that glibc does
 * not raise it) and trim its heap (below it), touching one page in 16 of
 * each block (page faults would otherwise be all that is timed under
 * TCG), so that
 * nearly every free reaches the kernel and, in an exporting process, its
 * mmu notifier. It runs the same loop, with the
 * same sizes, in four ways:
 *
 *   none     no segment (the module loaded, not used);
 *   peers=0  a segment of its whole address space (XPMEM_MAXADDR_SIZE, as
 *            MPICH, Open MPI and UCX make), nobody attached;
 *   peers=1  and one peer process holding 16 small attachments (4 KiB) of
 *            a buffer of the exporter's that the loop never frees;
 *   peers=8  and eight such peers.
 *
 * Each way runs --reps times, the ways interleaved so that a drift of the
 * host hits them alike. Reported: the median run time of each way, its
 * spread (fastest and slowest), and the median's overhead over "none".
 *
 * Usage: xpmem-exporter [--iters N] [--reps N]
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"
#include "xpmem.h"

#define MAX_REPS 64
#define MAX_PEERS 8
#define PEER_ATTACHMENTS 16
#define PAGE 4096ul

enum way { NONE, PEERS0, PEERS1, PEERS8, NR_WAYS };

static const char *const way_name[NR_WAYS] = { "none", "peers=0", "peers=1", "peers=8" };
static const int way_peers[NR_WAYS] = { 0, 0, 1, 8 };

static void die(const char *what)
{
	fprintf(stderr, "xpmem-exporter: %s: %s\n", what, strerror(errno));
	exit(2);
}

/*
 * The loop: sizes from a fixed sequence, 64 KiB to 1 MiB (glibc's default
 * mmap threshold is 128 KiB: the large ones are mmap'ed and munmap'ed, the
 * small ones come from the heap, which free() trims), each block touched
 * page by page, a few kept alive at a time.
 */
static double malloc_loop(int iters)
{
	void *live[8] = { 0 };
	uint64_t x = 0x2545f4914f6cdd1dull;
	double t0 = now();

	for (int i = 0; i < iters; i++) {
		size_t size, slot = (size_t)i % 8;
		unsigned char *p;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		size = (64 + x % 960) * 1024;
		free(live[slot]);
		p = malloc(size);
		if (!p)
			die("malloc");
		for (size_t off = 0; off < size; off += 16 * PAGE)
			p[off] = (unsigned char)i;
		live[slot] = p;
	}
	for (int i = 0; i < 8; i++)
		free(live[i]);
	return now() - t0;
}

/*
 * The peers come from a factory process forked once at start-up: forking
 * them from the exporter would make its private memory copy-on-write, and
 * the loop would time COW faults that have nothing to do with XPMEM.
 * Commands over a pipe: start @n peers attached through @segid (they
 * answer once all are attached), or stop them.
 */
struct factory {
	pid_t pid;
	int cmd, ack;
};

struct peer_cmd {
	int n;			/* peers to start; 0: stop those running */
	xpmem_segid_t segid;
	unsigned char *stable;
};

static void peer_main(const struct peer_cmd *c, int ready)
{
	xpmem_apid_t apid = xpmem_get(c->segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);

	if (apid < 0)
		die("xpmem_get");
	for (int k = 0; k < PEER_ATTACHMENTS; k++) {
		struct xpmem_addr addr = {
			.apid = apid,
			.offset = (off_t)(uintptr_t)(c->stable + (size_t)k * PAGE),
		};
		volatile unsigned char *a = xpmem_attach(addr, PAGE, NULL);

		if (a == (void *)-1)
			die("xpmem_attach");
		(void)a[0];
	}
	if (write(ready, "r", 1) != 1)
		die("write");
	pause();
	_exit(0);
}

static void factory_main(int cmd, int ack)
{
	pid_t pids[MAX_PEERS];
	struct peer_cmd c;
	int n = 0;

	while (read(cmd, &c, sizeof(c)) == sizeof(c)) {
		if (c.n == 0) {
			for (int i = 0; i < n; i++) {
				kill(pids[i], SIGKILL);
				waitpid(pids[i], NULL, 0);
			}
			n = 0;
			if (write(ack, "s", 1) != 1)
				die("write");
			continue;
		}
		for (n = 0; n < c.n; n++) {
			pids[n] = fork();
			if (pids[n] < 0)
				die("fork");
			if (pids[n] == 0)
				peer_main(&c, ack);
		}
	}
	_exit(0);
}

static struct factory start_factory(void)
{
	int cmd[2], ack[2];
	struct factory f;

	if (pipe(cmd) || pipe(ack))
		die("pipe");
	f.pid = fork();
	if (f.pid < 0)
		die("fork");
	if (f.pid == 0) {
		close(cmd[1]);
		close(ack[0]);
		factory_main(cmd[0], ack[1]);
	}
	close(cmd[0]);
	close(ack[1]);
	f.cmd = cmd[1];
	f.ack = ack[0];
	return f;
}

/* Start @n peers (0: stop them) and wait until they are attached (gone). */
static void peers(struct factory *f, int n, xpmem_segid_t segid, unsigned char *stable)
{
	struct peer_cmd c = { .n = n, .segid = segid, .stable = stable };
	char b;

	if (write(f->cmd, &c, sizeof(c)) != sizeof(c))
		die("write");
	for (int i = 0; i < (n ? n : 1); i++) {
		if (read(f->ack, &b, 1) != 1)
			die("read");
	}
}

int main(int argc, char **argv)
{
	static double t[NR_WAYS][MAX_REPS];
	int iters = 4000, reps = 11;
	unsigned char *stable;
	struct factory f;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--iters"))
			iters = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--reps"))
			reps = atoi(argv[i + 1]);
	}
	if (iters < 1 || reps < 1 || reps > MAX_REPS) {
		fprintf(stderr, "usage: xpmem-exporter [--iters N] [--reps 1..%d]\n", MAX_REPS);
		return 2;
	}
	if (!mallopt(M_MMAP_THRESHOLD, 128 * 1024) || !mallopt(M_TRIM_THRESHOLD, 128 * 1024))
		die("mallopt");
	stable = aligned_alloc(PAGE, PEER_ATTACHMENTS * PAGE);
	if (!stable)
		die("aligned_alloc");
	memset(stable, 1, PEER_ATTACHMENTS * PAGE);
	f = start_factory();
	/* Warm up the heap, and break COW of what the fork shared. */
	malloc_loop(iters / 4 + 1);

	for (int rep = 0; rep < reps; rep++) {
		for (int w = 0; w < NR_WAYS; w++) {
			xpmem_segid_t segid = -1;

			if (w != NONE) {
				segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE,
						   (void *)0600);
				if (segid < 0)
					die("xpmem_make");
				if (way_peers[w])
					peers(&f, way_peers[w], segid, stable);
			}
			t[w][rep] = malloc_loop(iters);
			if (w != NONE) {
				if (way_peers[w])
					peers(&f, 0, -1, NULL);
				if (xpmem_remove(segid))
					die("xpmem_remove");
			}
		}
	}

	printf("xpmem-exporter: %d malloc/free of 64 KiB-1 MiB, one page in 16 touched; %d runs "
	       "per way, interleaved\n", iters, reps);
	printf("%-8s %10s %10s %10s %10s\n", "way", "median_ms", "min_ms", "max_ms", "overhead");
	for (int w = 0; w < NR_WAYS; w++)
		qsort(t[w], (size_t)reps, sizeof(double), cmp_double);
	for (int w = 0; w < NR_WAYS; w++) {
		double med = t[w][reps / 2], base = t[NONE][reps / 2];

		printf("%-8s %10.1f %10.1f %10.1f %+9.1f%%\n", way_name[w], med * 1e3,
		       t[w][0] * 1e3, t[w][reps - 1] * 1e3, (med / base - 1) * 100);
	}
	printf("ratio peers=8 over none (medians): %.3f\n", t[PEERS8][reps / 2] / t[NONE][reps / 2]);
	close(f.cmd);
	waitpid(f.pid, NULL, 0);
	return 0;
}
