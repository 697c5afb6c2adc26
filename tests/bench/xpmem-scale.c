// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * xpmem-scale - how attach, detach and exit scale with the number of live
 * attachments in one process: the pattern of an MPI registration cache,
 * which keeps one attachment per buffer it has seen.
 *
 * For each count N (--counts, default 1000,10000,100000) an attacher
 * process makes N one-page attachments of one exporter page (each its own
 * VMA), touches each, detaches them all, attaches N again and exits with
 * them live. It prints, per N, the time per attach, per detach, and of the
 * exit, and each one's growth against the smallest N divided by the growth
 * of N log N: a column that stays at or below about 1 grows no faster than
 * O(N log N) (issue 14). Only ratios of one run mean anything under TCG.
 *
 * Each attachment is a VMA, so N needs vm.max_map_count above N: as root
 * the limit is raised for the run and put back; otherwise larger counts
 * are skipped, and the program says so.
 *
 * Usage: xpmem-scale [--counts N,N,...]
 * Exit status: 0 if every attachment read the exporter's data, 1 otherwise.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "xpmem.h"

#define MAP_COUNT "/proc/sys/vm/max_map_count"
#define MAX_COUNTS 8

struct result {
	double attach, detach, exit_s;	/* seconds in all */
	long n;
	int ok;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static int write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	int ok;

	if (!f)
		return -1;
	ok = fprintf(f, "%ld\n", v) > 0;
	return fclose(f) == 0 && ok ? 0 : -1;
}

/*
 * The attacher, in a child: its timings go to @fd; it writes its exit time
 * stamp last and exits with its N attachments live, so the parent times
 * the exit.
 */
static void attacher(xpmem_segid_t segid, long n, int fd, long page)
{
	struct result r = { .n = n, .ok = 1 };
	struct xpmem_addr addr = { .offset = 0 };
	void **at = calloc((size_t)n, sizeof(*at));
	double t, stamp;
	long i;

	addr.apid = xpmem_get(segid, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL);
	if (!at || addr.apid < 0)
		_exit(2);
	t = now();
	for (i = 0; i < n; i++) {
		at[i] = xpmem_attach(addr, (size_t)page, NULL);
		if (at[i] == (void *)-1)
			_exit(3);
		if (*(volatile unsigned char *)at[i] != 0xa5)
			r.ok = 0;
	}
	r.attach = now() - t;
	t = now();
	for (i = 0; i < n; i++)
		if (xpmem_detach(at[i]) != 0)
			_exit(4);
	r.detach = now() - t;
	for (i = 0; i < n; i++) {
		at[i] = xpmem_attach(addr, (size_t)page, NULL);
		if (at[i] == (void *)-1)
			_exit(5);
		if (*(volatile unsigned char *)at[i] != 0xa5)
			r.ok = 0;
	}
	if (write(fd, &r, sizeof(r)) != sizeof(r))
		_exit(6);
	stamp = now();
	if (write(fd, &stamp, sizeof(stamp)) != sizeof(stamp))
		_exit(6);
	_exit(0);
}

static int run_one(xpmem_segid_t segid, long n, long page, struct result *r)
{
	int p[2], status;
	double stamp;
	pid_t pid;

	if (pipe(p))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(p[0]);
		attacher(segid, n, p[1], page);
	}
	close(p[1]);
	if (read(p[0], r, sizeof(*r)) != sizeof(*r) ||
	    read(p[0], &stamp, sizeof(stamp)) != sizeof(stamp)) {
		close(p[0]);
		waitpid(pid, &status, 0);
		fprintf(stderr, "xpmem-scale: attacher of %ld failed (status %#x)\n", n, status);
		return -1;
	}
	close(p[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		return -1;
	r->exit_s = now() - stamp;
	return 0;
}

static double nlogn(long n)
{
	return (double)n * log2((double)n);
}

int main(int argc, char **argv)
{
	long counts[MAX_COUNTS] = { 1000, 10000, 100000 }, ncounts = 3;
	long page = sysconf(_SC_PAGESIZE), old_limit, maps_needed = 0;
	struct result res[MAX_COUNTS];
	int nres = 0, failed = 0, raised = 0;
	unsigned char *buf;
	xpmem_segid_t segid;

	if (argc == 3 && !strcmp(argv[1], "--counts")) {
		char *s = argv[2], *end;

		for (ncounts = 0; *s && ncounts < MAX_COUNTS; ncounts++) {
			counts[ncounts] = strtol(s, &end, 10);
			if (end == s || counts[ncounts] < 2 || (*end && *end != ','))
				goto usage;
			s = *end ? end + 1 : end;
		}
	} else if (argc != 1) {
usage:
		fprintf(stderr, "usage: xpmem-scale [--counts N,N,...] (each at least 2)\n");
		return 2;
	}
	for (long i = 0; i < ncounts; i++)
		if (counts[i] > maps_needed)
			maps_needed = counts[i];
	maps_needed += 1000;	/* the program's own mappings, with room */
	old_limit = read_long(MAP_COUNT);
	if (old_limit > 0 && old_limit < maps_needed) {
		if (write_long(MAP_COUNT, maps_needed) == 0)
			raised = 1;
		else
			fprintf(stderr, "xpmem-scale: vm.max_map_count is %ld and cannot be raised "
				"(not root): counts above %ld are skipped\n", old_limit, old_limit - 1000);
	}

	buf = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return 1;
	memset(buf, 0xa5, (size_t)page);
	segid = xpmem_make(buf, (size_t)page, XPMEM_PERMIT_MODE, (void *)0600);
	if (segid < 0) {
		perror("xpmem_make");
		return 1;
	}
	for (long i = 0; i < ncounts; i++) {
		if (!raised && old_limit > 0 && counts[i] > old_limit - 1000)
			continue;
		if (run_one(segid, counts[i], page, &res[nres]) != 0) {
			failed = 1;
			break;
		}
		failed |= !res[nres].ok;
		nres++;
	}
	xpmem_remove(segid);
	if (raised)
		write_long(MAP_COUNT, old_limit);

	printf("%10s %12s %12s %12s %14s %14s %12s\n", "attachments", "attach us", "detach us",
	       "exit ms", "attach growth", "detach growth", "exit growth");
	for (int i = 0; i < nres; i++) {
		struct result *r = &res[i], *b = &res[0];
		double g = nlogn(r->n) / nlogn(b->n);

		printf("%10ld %12.2f %12.2f %12.1f %14.2f %14.2f %12.2f\n", r->n,
		       r->attach / r->n * 1e6, r->detach / r->n * 1e6, r->exit_s * 1e3,
		       r->attach / b->attach / g, r->detach / b->detach / g, r->exit_s / b->exit_s / g);
	}
	printf("growth: the time's growth over the first row, divided by N log N's; "
	       "at or below about 1 is O(N log N) or better\n");
	if (failed)
		fprintf(stderr, "xpmem-scale: FAILED (an attacher failed or read wrong data)\n");
	return failed;
}
