// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * xpmem-bench.c - what a single copy through XPMEM costs, next to the other
 * ways two processes on one node can move the same bytes.
 *
 * Two processes, no MPI: the parent is the reader, the forked child the
 * exporter. They talk over a socketpair with small fixed-size messages; the
 * reader drives, the exporter answers. For every size from --min to --max
 * (x4 steps, default 4 KiB to 256 MiB) the reader measures, each figure
 * being the median of --reps runs (default 7; --big-reps, default 5, from
 * 64 MiB up, where one run moves a quarter of a gigabyte several times):
 *
 *   attach   xpmem_get + xpmem_attach of the range (latency, us), and
 *            detach   xpmem_detach + xpmem_release, timed separately;
 *   cold     get + attach + first touch + copy of the whole range into a
 *            local buffer + detach + release: a transfer with no
 *            registration cache;
 *   warm     a copy out of an attachment that was made and faulted in once
 *            at start-up: a transfer that hits a registration cache;
 *   CMA      process_vm_readv() of the same range: one copy, made by the
 *            kernel, a system call per transfer;
 *   shm      the classic double copy: the exporter copies into a POSIX
 *            shared-memory mapping (shm_open), the reader copies out. Both
 *            copies and both hand-offs are counted. The hand-offs are flags
 *            in the shared mapping that the other side polls, as MPI's
 *            shared-memory transports do (no system call, no sleep); the
 *            copy is not split into pipelined chunks;
 *   memcpy   a local copy of the same size, the limit of any single copy.
 *
 * Every buffer (the exporter's, the reader's source and destination, the
 * shared mapping) is allocated the same way: mmap'ed, 2 MiB aligned and
 * faulted in before timing. Alignment matters more than it should: under
 * QEMU's TCG a malloc'd source ran at a very different speed than a
 * page-aligned one, so a local memcpy from a different kind of buffer would
 * not be the limit of the attachment copy.
 *
 * The two processes are pinned to different CPUs when there are two, so
 * the polling side never takes the CPU from the copying side. The control
 * messages (fill the buffer, time an madvise) go over a socketpair, outside
 * the timed regions; the round trip of both kinds of hand-off is printed.
 *
 * Small copies are too short to time one by one (the clock read itself
 * costs microseconds under TCG), so each run times a batch of back-to-back
 * operations, enough to move about BATCH_BYTES, and divides. Attach and
 * detach are timed over ATTACH_BATCH attachments; only the last one is
 * touched (one word, to check it), so the detaches have nearly nothing to
 * unmap.
 *
 * Under QEMU's TCG, `rep movsb` runs one byte per emulated step, and both
 * glibc's memcpy (for mid sizes) and the kernel's copy_to_user use it when
 * the CPU reports ERMS/FSRM. tools/xpmem-bench therefore boots a guest CPU
 * without them; see docs/performance.md.
 *
 * Invalidation cost: the driver's mmu-notifier callback hands the zap of the
 * attachers' page tables to a workqueue worker and waits for it
 * (kernel/notifier.c). To see what that costs, the exporter times
 * madvise(MADV_DONTNEED) on N pages of a separate buffer:
 *   plain     the range is in no segment (the process does export another
 *             range, so its mm has notifiers);
 *   exported  the range is in a segment nobody has attached (the callback
 *             runs but has nothing to zap: no hand-off);
 *   elsewhere the segment is twice as long, and a reader has attached and
 *             read its other half only: nothing of the range is mapped,
 *             but the driver decides whether to hand off by asking whether
 *             anything of the segment is mapped (as it would be for MPI,
 *             which exports the whole address space);
 *   attached  a reader has attached the range but not touched it (the
 *             hand-off runs, the zap finds no page-table entries);
 *   faulted   a reader has attached the range and read every page (the
 *             hand-off runs and the zap removes N entries).
 * If the driver's debugfs counters are readable, the number of invalidation
 * callbacks per madvise is shown as a cross-check.
 *
 * Verification: each run fills the source with a pattern derived from a
 * fresh seed, so data left over from an earlier run cannot pass. After every
 * timed copy, outside the timed region, the destination is checked: every
 * byte on the first run of each size and method (the destination is
 * poisoned with the inverted pattern before), three words per page on the
 * other runs (those words are poisoned before). The invalidation runs check
 * every word the reader sees through the attachment before each madvise
 * (the exporter's new pages, not the ones the previous madvise dropped),
 * and zeroes after the last one, and that the driver's callback ran once per
 * madvise of an exported range and never for the plain one. Any mismatch
 * is reported and makes the exit status 1.
 *
 * Usage: xpmem-bench [--min SIZE] [--max SIZE] [--reps N] [--big-reps N]
 *                    [--inv-reps N] [--inv-max-pages N] [--no-thp]
 *                    [--csv FILE] [--inv-csv FILE]
 * SIZE takes a K, M or G suffix (powers of 1024).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "xpmem.h"

#define KiB			1024ul
#define MiB			(1024ul * KiB)
#define ALIGN_2M		(2 * MiB)
/* A timed batch moves at least this many bytes (see the top). */
#define BATCH_BYTES		MiB
/* Attachments made back to back in one timed attach-latency batch. */
#define ATTACH_BATCH		16
/* Sizes from this one up use --big-reps runs (they take seconds under TCG). */
#define BIG_SIZE		(64 * MiB)
/* Hand-off messages timed per run for the socket round-trip figure. */
#define PING_BATCH		64
#define STATS_PATH		"/sys/kernel/debug/xpmem/stats"
/* Invalidation rows: 1, 16, 256, ... pages, up to --inv-max-pages. */
#define INV_MAX_ROWS		8

/* -------------------------------------------------------------- options */

struct config {
	size_t min, max;
	int reps, big_reps, inv_reps;
	size_t inv_max_pages;
	bool no_thp;
	const char *csv, *inv_csv;
};

static long page_size;
static bool no_thp;	/* --no-thp: every buffer in 4 KiB pages */

static void die(const char *what)
{
	fprintf(stderr, "xpmem-bench[%d]: %s: %s\n", (int)getpid(), what, strerror(errno));
	exit(1);
}

static void usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, "xpmem-bench: %s: %s\n", msg, arg);
	fprintf(stderr, "usage: xpmem-bench [--min SIZE] [--max SIZE] [--reps N] [--big-reps N]\n"
			"                   [--inv-reps N] [--inv-max-pages N] [--no-thp]\n"
			"                   [--csv FILE] [--inv-csv FILE]\n");
	exit(2);
}

static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		usage_error("bad size", s);
	switch (*end) {
	case 'k': case 'K': v *= KiB; end++; break;
	case 'm': case 'M': v *= MiB; end++; break;
	case 'g': case 'G': v *= 1024 * MiB; end++; break;
	default: break;
	}
	if (*end == 'i' && end[1] == 'B')	/* accept "4KiB" too */
		end += 2;
	if (*end || v == 0 || v > SIZE_MAX / 4)
		usage_error("bad size", s);
	return (size_t)v;
}

static int parse_count(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 100000)
		usage_error("bad count", s);
	return (int)v;
}

static void parse_args(int argc, char **argv, struct config *cfg)
{
	*cfg = (struct config){
		.min = 4 * KiB, .max = 256 * MiB, .reps = 7, .big_reps = 5, .inv_reps = 21,
		.inv_max_pages = 4096,
	};
	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i];

		if (!strcmp(opt, "--no-thp")) {
			cfg->no_thp = true;
			continue;
		}
		if (i + 1 >= argc)
			usage_error("missing value or unknown option", opt);
		if (!strcmp(opt, "--min"))
			cfg->min = parse_size(argv[++i]);
		else if (!strcmp(opt, "--max"))
			cfg->max = parse_size(argv[++i]);
		else if (!strcmp(opt, "--reps"))
			cfg->reps = parse_count(argv[++i]);
		else if (!strcmp(opt, "--big-reps"))
			cfg->big_reps = parse_count(argv[++i]);
		else if (!strcmp(opt, "--inv-reps"))
			cfg->inv_reps = parse_count(argv[++i]);
		else if (!strcmp(opt, "--inv-max-pages"))
			cfg->inv_max_pages = (size_t)parse_count(argv[++i]);
		else if (!strcmp(opt, "--csv"))
			cfg->csv = argv[++i];
		else if (!strcmp(opt, "--inv-csv"))
			cfg->inv_csv = argv[++i];
		else
			usage_error("unknown option", opt);
	}
	if (cfg->min % (size_t)page_size || cfg->max % (size_t)page_size)
		usage_error("sizes must be multiples of the page size", "--min/--max");
	if (cfg->min > cfg->max)
		usage_error("--min is larger than --max", "--min");
}

/* -------------------------------------------------------------- helpers */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The median of n samples (sorts them). */
static double median(double *t, int n)
{
	qsort(t, (size_t)n, sizeof(*t), cmp_double);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

/*
 * An anonymous private buffer aligned to 2 MiB, so that every buffer gets
 * the same treatment from transparent huge pages, and so the same alignment
 * as every other one (see the top). With --no-thp it is kept in 4 KiB
 * pages (CMA's speed under TCG depends on it, see docs/performance.md).
 */
static void *alloc_buf(size_t size)
{
	size_t len = size + ALIGN_2M;
	uintptr_t p, a;

	p = (uintptr_t)mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if ((void *)p == MAP_FAILED)
		die("mmap");
	a = (p + ALIGN_2M - 1) & ~(uintptr_t)(ALIGN_2M - 1);
	if (a > p && munmap((void *)p, a - p))
		die("munmap");
	if (p + len > a + size && munmap((void *)(a + size), p + len - (a + size)))
		die("munmap");
	if (no_thp && madvise((void *)a, size, MADV_NOHUGEPAGE))
		die("madvise(MADV_NOHUGEPAGE)");
	return (void *)a;
}

/*
 * The data pattern: 64-bit words that differ from word to word, page to
 * page and seed to seed, so a copy from the wrong offset, a stale page or a
 * previous run's data is caught. Word i of a buffer filled with seed s is
 * pat(s, i); the buffers are always compared from their start.
 */
#define PAT_STEP 0x9E3779B97F4A7C15ull

static inline uint64_t pat_mix(uint64_t x)
{
	return x ^ (x >> 29);
}

static inline uint64_t pat(uint64_t seed, size_t i)
{
	return pat_mix(seed + (uint64_t)i * PAT_STEP);
}

/* Fill size bytes with the pattern, or (invert) with its complement, which
 * differs from the pattern in every word: the poison. */
static void fill(void *buf, size_t size, uint64_t seed, bool invert)
{
	uint64_t *w = buf, x = seed, mask = invert ? ~0ull : 0;

	for (size_t i = 0; i < size / 8; i++, x += PAT_STEP)
		w[i] = pat_mix(x) ^ mask;
}

/* Verification bookkeeping: words checked and words wrong, per program. */
static unsigned long long checks, failures;

static void report_bad(const char *what, size_t size, size_t word, uint64_t got, uint64_t want)
{
	if (failures < 20)
		fprintf(stderr, "VERIFY FAILED: %s, size %zu: word %zu is %#" PRIx64 ", expected %#" PRIx64 "\n",
			what, size, word, got, want);
	failures++;
}

/* Check every word; buf holds words first.. of a buffer filled with seed. */
static void check_full_from(const char *what, const void *buf, size_t size, uint64_t seed,
			    size_t first)
{
	const uint64_t *w = buf;
	uint64_t x = seed + (uint64_t)first * PAT_STEP;

	for (size_t i = 0; i < size / 8; i++, x += PAT_STEP) {
		if (w[i] != pat_mix(x))
			report_bad(what, size, first + i, w[i], pat_mix(x));
	}
	checks += size / 8;
}

static void check_full(const char *what, const void *buf, size_t size, uint64_t seed)
{
	check_full_from(what, buf, size, seed, 0);
}

/* The three words per page that a sampled check looks at. */
static size_t sample_word(size_t page, int k, uint64_t seed)
{
	size_t wpp = (size_t)page_size / 8;

	switch (k) {
	case 0: return page * wpp;
	case 1: return page * wpp + wpp - 1;
	default: return page * wpp + (size_t)((seed >> 7) + page * 37) % wpp;
	}
}

static void poison_sampled(void *buf, size_t size, uint64_t seed)
{
	uint64_t *w = buf;

	for (size_t p = 0; p < size / (size_t)page_size; p++) {
		for (int k = 0; k < 3; k++) {
			size_t i = sample_word(p, k, seed);

			w[i] = ~pat(seed, i);
		}
	}
}

static void check_sampled(const char *what, const void *buf, size_t size, uint64_t seed)
{
	const uint64_t *w = buf;

	for (size_t p = 0; p < size / (size_t)page_size; p++) {
		for (int k = 0; k < 3; k++) {
			size_t i = sample_word(p, k, seed);

			if (w[i] != pat(seed, i))
				report_bad(what, size, i, w[i], pat(seed, i));
			checks++;
		}
	}
}

/* Poison the destination before a timed copy; full on the first run. */
static void poison(void *dst, size_t size, uint64_t seed, bool full)
{
	if (full)
		fill(dst, size, seed, true);
	else
		poison_sampled(dst, size, seed);
}

static void check(const char *what, const void *dst, size_t size, uint64_t seed, bool full)
{
	if (full)
		check_full(what, dst, size, seed);
	else
		check_sampled(what, dst, size, seed);
}

static void check_zero(const char *what, const void *buf, size_t size)
{
	const uint64_t *w = buf;

	for (size_t i = 0; i < size / 8; i++) {
		if (w[i])
			report_bad(what, size, i, w[i], 0);
	}
	checks += size / 8;
}

/* The driver's count of invalidation callbacks, or -1 if unreadable. */
static long read_invalidations(void)
{
	char name[64];
	long v, found = -1;
	FILE *f = fopen(STATS_PATH, "r");

	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld", name, &v) == 2) {
		if (!strcmp(name, "invalidations")) {
			found = v;
			break;
		}
	}
	fclose(f);
	return found;
}

/*
 * The first page of the shared-memory object: the shm method's hand-off
 * flags. The data area starts on the next page. The reader raises
 * "request" to n for the n-th copy since the start, the exporter copies and
 * raises "done" to n. Each side polls the other's flag. The numbers only
 * grow: resetting them after a batch would race with the reader's last
 * look at "done".
 */
struct shm_ctl {
	_Atomic uint64_t request;
	char pad[64 - sizeof(uint64_t)];	/* separate cache lines */
	_Atomic uint64_t done;
};

/* Wait until *flag reaches want: spin, giving the CPU away now and then in
 * case both processes ended up on one CPU. */
static void wait_flag(_Atomic uint64_t *flag, uint64_t want)
{
	for (unsigned int spins = 1; atomic_load_explicit(flag, memory_order_acquire) < want;
	     spins++) {
		if (spins % 4096 == 0)
			sched_yield();
	}
}

/* ------------------------------------------------------------ messages */

enum op {
	OP_HELLO = 1,	/* exporter -> reader: segid and address of its buffer */
	OP_FILL,	/* fill [0, a) of the buffer with seed b */
	OP_SHM,		/* serve copy-ins number seq+1..seq+a of b bytes */
	OP_PING,	/* answer at once (socket round trip) */
	OP_INV_FILL,	/* fill a pages of the invalidation buffer with seed b */
	OP_INV_MAKE,	/* export 2a pages of the invalidation buffer */
	OP_INV_REMOVE,	/* remove that segment */
	OP_INV_ZAP,	/* time madvise(MADV_DONTNEED) of a pages */
	OP_QUIT,
};

struct msg {
	uint32_t op;
	int32_t err;		/* reply: 0, or an errno */
	uint64_t a, b;
	uint64_t seq;		/* OP_SHM: the last request number already served */
	int64_t segid;		/* reply: a segment id */
	uint64_t addr;		/* reply: a buffer address */
	double t;		/* reply: seconds measured by the exporter */
	long count;		/* reply: invalidation callbacks counted, or -1 */
};

static void send_msg(int fd, const struct msg *m)
{
	const char *p = (const char *)m;
	size_t left = sizeof(*m);

	while (left) {
		ssize_t n = write(fd, p, left);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write to peer");
		p += n;
		left -= (size_t)n;
	}
}

static void recv_msg(int fd, struct msg *m)
{
	char *p = (char *)m;
	size_t left = sizeof(*m);

	while (left) {
		ssize_t n = read(fd, p, left);

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			fprintf(stderr, "xpmem-bench[%d]: peer exited\n", (int)getpid());
			exit(1);
		}
		if (n < 0)
			die("read from peer");
		p += n;
		left -= (size_t)n;
	}
}

/* Reader side: send a request and wait for its answer. */
static struct msg call(int fd, enum op op, uint64_t a, uint64_t b)
{
	struct msg m = { .op = op, .a = a, .b = b };

	send_msg(fd, &m);
	recv_msg(fd, &m);
	if (m.err) {
		errno = m.err;
		die("exporter request");
	}
	return m;
}

/* ------------------------------------------------------------ exporter */

static int exporter_main(int sock, int shm_fd, const struct config *cfg)
{
	/* Twice the largest range: the segment's far half is the "elsewhere". */
	size_t inv_bytes = 2 * cfg->inv_max_pages * (size_t)page_size;
	unsigned char *buf, *shm, *inv;
	struct shm_ctl *ctl;
	xpmem_segid_t segid, inv_segid = -1;
	struct msg m;

	buf = alloc_buf(cfg->max);
	fill(buf, cfg->max, 0, false);		/* fault it in */
	segid = xpmem_make(buf, cfg->max, XPMEM_PERMIT_MODE, (void *)0600);
	if (segid < 0)
		die("xpmem_make");

	ctl = mmap(NULL, cfg->max + (size_t)page_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   shm_fd, 0);
	if (ctl == MAP_FAILED)
		die("mmap shm");
	close(shm_fd);
	shm = (unsigned char *)ctl + page_size;
	memset(shm, 0, cfg->max);		/* fault it in */

	/*
	 * 4 KiB pages only here: a MADV_DONTNEED of part of a huge page would
	 * split it first, and we want to time the zap of N small pages.
	 */
	inv = alloc_buf(inv_bytes);
	if (madvise(inv, inv_bytes, MADV_NOHUGEPAGE))
		die("madvise(MADV_NOHUGEPAGE)");

	m = (struct msg){ .op = OP_HELLO, .segid = segid, .addr = (uintptr_t)buf };
	send_msg(sock, &m);

	for (;;) {
		double t0;
		long c0, c1;

		recv_msg(sock, &m);
		m.err = 0;
		switch (m.op) {
		case OP_FILL:
			fill(buf, m.a, m.b, false);
			break;
		case OP_SHM:
			/* The reply to this message ends the batch. */
			for (uint64_t n = m.seq + 1; n <= m.seq + m.a; n++) {
				wait_flag(&ctl->request, n);
				memcpy(shm, buf, m.b);
				atomic_store_explicit(&ctl->done, n, memory_order_release);
			}
			break;
		case OP_PING:
			break;
		case OP_INV_FILL:
			fill(inv, m.a * (size_t)page_size, m.b, false);
			break;
		case OP_INV_MAKE:
			inv_segid = xpmem_make(inv, 2 * m.a * (size_t)page_size, XPMEM_PERMIT_MODE,
					       (void *)0600);
			if (inv_segid < 0)
				m.err = errno;
			m.segid = inv_segid;
			break;
		case OP_INV_REMOVE:
			if (xpmem_remove(inv_segid))
				m.err = errno;
			inv_segid = -1;
			break;
		case OP_INV_ZAP:
			c0 = read_invalidations();
			t0 = now();
			if (madvise(inv, m.a * (size_t)page_size, MADV_DONTNEED))
				m.err = errno;
			m.t = now() - t0;
			c1 = read_invalidations();
			m.count = c0 < 0 || c1 < 0 ? -1 : c1 - c0;
			break;
		case OP_QUIT:
			if (xpmem_remove(segid))
				die("xpmem_remove");
			send_msg(sock, &m);
			return 0;
		default:
			fprintf(stderr, "xpmem-bench: exporter: unknown request %u\n", m.op);
			return 1;
		}
		send_msg(sock, &m);
	}
}

/* ------------------------------------------------------------ reader */

struct reader {
	const struct config *cfg;
	int sock;
	pid_t exporter;
	xpmem_segid_t segid;
	uintptr_t buf_addr;		/* the exporter's buffer, for CMA */
	unsigned char *dst, *lsrc, *shm, *warm;
	struct shm_ctl *ctl;
	uint64_t shm_seq;		/* the last shm request number used */
	uint64_t seed_base;
};

/* One row of the bandwidth table. */
struct row {
	size_t size;
	int reps, batch;
	double attach_us, detach_us;
	double cold, warm, cma, shm, memcpy_bw;	/* MB/s, from the median time */
	double best[5];		/* MB/s from the fastest run, same order */
};

static xpmem_apid_t get_permit(xpmem_segid_t segid)
{
	xpmem_apid_t apid = xpmem_get(segid, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL);

	if (apid < 0)
		die("xpmem_get");
	return apid;
}

static void *attach(xpmem_apid_t apid, uint64_t offset, size_t size)
{
	struct xpmem_addr addr = { .apid = apid, .offset = (off_t)offset };
	void *p = xpmem_attach(addr, size, NULL);

	if (p == (void *)-1)
		die("xpmem_attach");
	return p;
}

static void detach(void *p, xpmem_apid_t apid)
{
	if (xpmem_detach(p))
		die("xpmem_detach");
	if (xpmem_release(apid))
		die("xpmem_release");
}

static double mbps(size_t size, double seconds)
{
	return (double)size / seconds / 1e6;
}

/*
 * shm hand-offs: start the exporter's polling loop for n copies of size
 * bytes (untimed), then raise the request flag and wait for the done flag n
 * times, copying size bytes out after each (timed). Returns seconds per
 * copy; the loop's end is acknowledged over the socket, untimed.
 */
static double shm_batch(struct reader *r, int n, size_t size)
{
	struct msg m = { .op = OP_SHM, .a = (uint64_t)n, .b = size, .seq = r->shm_seq };
	double t;

	send_msg(r->sock, &m);
	t = now();
	for (int i = 0; i < n; i++) {
		r->shm_seq++;
		atomic_store_explicit(&r->ctl->request, r->shm_seq, memory_order_release);
		wait_flag(&r->ctl->done, r->shm_seq);
		if (size)
			memcpy(r->dst, r->shm, size);
	}
	t = (now() - t) / n;
	recv_msg(r->sock, &m);
	if (m.err) {
		errno = m.err;
		die("exporter shm loop");
	}
	return t;
}

/*
 * The median round trip of one hand-off, in seconds: a socket message that
 * the exporter answers (it sleeps in read() in between), or (flags) the shm
 * method's polled flags with a zero-byte copy.
 */
static double measure_handoff(struct reader *r, bool flags)
{
	double t[64];
	int reps = r->cfg->reps < 64 ? r->cfg->reps : 64;

	for (int rep = 0; rep < reps; rep++) {
		double t0;

		if (flags) {
			t[rep] = shm_batch(r, PING_BATCH, 0);
		} else {
			t0 = now();
			for (int i = 0; i < PING_BATCH; i++)
				call(r->sock, OP_PING, 0, 0);
			t[rep] = (now() - t0) / PING_BATCH;
		}
	}
	return median(t, reps);
}

/* All the figures for one size. */
static void measure_size(struct reader *r, size_t size, int size_idx, struct row *row)
{
	const struct config *cfg = r->cfg;
	int reps = size >= BIG_SIZE && cfg->big_reps < cfg->reps ? cfg->big_reps : cfg->reps;
	int batch = size >= BATCH_BYTES ? 1 : (int)(BATCH_BYTES / size);
	double *t_att, *t_det, *t_cold, *t_warm, *t_cma, *t_shm, *t_mem;

	t_att = calloc((size_t)reps * 7, sizeof(double));
	if (!t_att)
		die("calloc");
	t_det = t_att + reps;
	t_cold = t_det + reps;
	t_warm = t_cold + reps;
	t_cma = t_warm + reps;
	t_shm = t_cma + reps;
	t_mem = t_shm + reps;

	for (int rep = 0; rep < reps; rep++) {
		/* A fresh seed per run: data of an earlier run cannot pass. */
		uint64_t seed = r->seed_base ^ ((uint64_t)size_idx << 40) ^ ((uint64_t)rep << 20);
		bool full = rep == 0;
		struct iovec local = { r->dst, size };
		struct iovec remote = { (void *)r->buf_addr, size };
		void *att[ATTACH_BATCH];
		xpmem_apid_t apids[ATTACH_BATCH];
		double t0;

		call(r->sock, OP_FILL, size, seed);
		fill(r->lsrc, size, seed, false);

		/* memcpy: the local limit, same alignment as the others. */
		poison(r->dst, size, seed, full);
		t0 = now();
		for (int i = 0; i < batch; i++)
			memcpy(r->dst, r->lsrc, size);
		t_mem[rep] = (now() - t0) / batch;
		check("memcpy", r->dst, size, seed, full);

		/* warm: out of the attachment made and faulted in at start. */
		poison(r->dst, size, seed, full);
		t0 = now();
		for (int i = 0; i < batch; i++)
			memcpy(r->dst, r->warm, size);
		t_warm[rep] = (now() - t0) / batch;
		check("xpmem warm", r->dst, size, seed, full);

		/* CMA: the same bytes, read by the kernel. */
		poison(r->dst, size, seed, full);
		t0 = now();
		for (int i = 0; i < batch; i++) {
			if (process_vm_readv(r->exporter, &local, 1, &remote, 1, 0) != (ssize_t)size)
				die("process_vm_readv");
		}
		t_cma[rep] = (now() - t0) / batch;
		check("CMA", r->dst, size, seed, full);

		/*
		 * shm: raise the request flag, the exporter copies in and raises
		 * its flag, the reader copies out. The OP_SHM message that starts
		 * the exporter's polling loop and its reply are not timed.
		 */
		poison(r->dst, size, seed, full);
		t_shm[rep] = shm_batch(r, batch, size);
		check("shm", r->dst, size, seed, full);

		/* cold: the whole life of an attachment per transfer. */
		poison(r->dst, size, seed, full);
		t0 = now();
		for (int i = 0; i < batch; i++) {
			xpmem_apid_t apid = get_permit(r->segid);
			void *p = attach(apid, 0, size);

			memcpy(r->dst, p, size);
			detach(p, apid);
		}
		t_cold[rep] = (now() - t0) / batch;
		check("xpmem cold", r->dst, size, seed, full);

		/*
		 * Attach latency: ATTACH_BATCH get+attach back to back, then
		 * as many detach+release. Only the last attachment is read
		 * (one word), so the detach of the others zaps nothing.
		 */
		t0 = now();
		for (int i = 0; i < ATTACH_BATCH; i++) {
			apids[i] = get_permit(r->segid);
			att[i] = attach(apids[i], 0, size);
		}
		t_att[rep] = (now() - t0) / ATTACH_BATCH;
		for (int i = 0; i < ATTACH_BATCH; i++) {
			for (int j = 0; j < i; j++) {
				if (att[j] == att[i] || apids[j] == apids[i]) {
					fprintf(stderr, "VERIFY FAILED: attach returned a duplicate\n");
					failures++;
				}
			}
		}
		if (*(uint64_t *)att[ATTACH_BATCH - 1] != pat(seed, 0))
			report_bad("attach", size, 0, *(uint64_t *)att[ATTACH_BATCH - 1], pat(seed, 0));
		checks++;
		t0 = now();
		for (int i = 0; i < ATTACH_BATCH; i++)
			detach(att[i], apids[i]);
		t_det[rep] = (now() - t0) / ATTACH_BATCH;
	}

	/* median() sorts, so the fastest run is first afterwards. */
	*row = (struct row){
		.size = size, .reps = reps, .batch = batch,
		.attach_us = median(t_att, reps) * 1e6,
		.detach_us = median(t_det, reps) * 1e6,
		.cold = mbps(size, median(t_cold, reps)),
		.warm = mbps(size, median(t_warm, reps)),
		.cma = mbps(size, median(t_cma, reps)),
		.shm = mbps(size, median(t_shm, reps)),
		.memcpy_bw = mbps(size, median(t_mem, reps)),
		.best = { mbps(size, t_cold[0]), mbps(size, t_warm[0]), mbps(size, t_cma[0]),
			  mbps(size, t_shm[0]), mbps(size, t_mem[0]) },
	};
	free(t_att);
}

static const char *fmt_size(size_t size, char *out, size_t len)
{
	if (size >= MiB && size % MiB == 0)
		snprintf(out, len, "%zuM", size / MiB);
	else if (size >= KiB && size % KiB == 0)
		snprintf(out, len, "%zuK", size / KiB);
	else
		snprintf(out, len, "%zu", size);
	return out;
}

static void print_row(FILE *out, const struct row *w)
{
	char s[32];

	fprintf(out, "%6s %4d %5d %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %7.2f %7.2f %7.2f %7.2f\n",
		fmt_size(w->size, s, sizeof(s)), w->reps, w->batch, w->attach_us, w->detach_us,
		w->cold, w->warm, w->cma, w->shm, w->memcpy_bw,
		w->warm / w->memcpy_bw, w->warm / w->cma, w->cold / w->cma, w->shm / w->cma);
	fflush(out);
}

static void csv_row(FILE *csv, const struct row *w)
{
	fprintf(csv, "%zu,%d,%d,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.4f,%.4f,%.4f,%.4f,"
		"%.3f,%.3f,%.3f,%.3f,%.3f\n",
		w->size, w->reps, w->batch, w->attach_us, w->detach_us,
		w->cold, w->warm, w->cma, w->shm, w->memcpy_bw,
		w->warm / w->memcpy_bw, w->warm / w->cma, w->cold / w->cma, w->shm / w->cma,
		w->best[0], w->best[1], w->best[2], w->best[3], w->best[4]);
	fflush(csv);
}

/* ------------------------------------------------------ invalidation */

enum inv_mode {
	INV_PLAIN, INV_EXPORTED, INV_ELSEWHERE, INV_ATTACHED, INV_FAULTED, INV_NR_MODES
};

static const char *const inv_mode_name[INV_NR_MODES] = {
	"plain", "exported", "elsewhere", "attached", "faulted",
};

struct inv_row {
	size_t pages;
	double us[INV_NR_MODES];	/* median */
	double us_min[INV_NR_MODES];	/* fastest run */
	long calls[INV_NR_MODES];	/* callbacks per madvise, -1 unknown */
};

/*
 * The median madvise time (us) of reps runs in one mode; the fastest run's
 * in *fastest. The fastest run matters here: a hand-off wakes a worker on
 * another CPU, and in a guest that CPU is a host thread that the host may
 * be slow to run, which only ever adds time. view is the reader's
 * attachment of the range, used (read) in INV_FAULTED mode only.
 */
static double inv_runs(struct reader *r, size_t pages, enum inv_mode mode,
		       const uint64_t *view, long *calls, double *fastest)
{
	size_t bytes = pages * (size_t)page_size;
	int reps = r->cfg->inv_reps;
	double *t = calloc((size_t)reps, sizeof(double)), med;

	if (!t)
		die("calloc");
	*calls = -1;
	for (int rep = 0; rep < reps; rep++) {
		uint64_t seed = r->seed_base ^ (pages << 32) ^ ((uint64_t)mode << 28) ^
				((uint64_t)rep << 8) ^ 0x5a5a;
		struct msg m;

		call(r->sock, OP_INV_FILL, pages, seed);
		/*
		 * Read every page: faults them in, and proves that the
		 * attachment shows the new pages the exporter got after the
		 * previous run's zap (a stale entry would show the old data).
		 */
		if (mode == INV_FAULTED)
			check_full("invalidation: data before the zap", view, bytes, seed);
		m = call(r->sock, OP_INV_ZAP, pages, 0);
		t[rep] = m.t;
		/* A callback must run once whenever a segment covers the range. */
		if (m.count >= 0 && m.count != (mode == INV_PLAIN ? 0 : 1)) {
			fprintf(stderr, "VERIFY FAILED: %ld invalidation callbacks for a madvise "
				"of %zu pages (%s), expected %d\n", m.count, pages,
				inv_mode_name[mode], mode == INV_PLAIN ? 0 : 1);
			failures++;
		}
		*calls = m.count;
		/*
		 * After the last zap the exporter has no pages there: the
		 * attachment must read zeroes. Not after every run: reading
		 * maps the zero page, and the next fill would then replace
		 * it page by page, one invalidation (and hand-off) each.
		 */
		if (mode == INV_FAULTED && rep == reps - 1)
			check_zero("invalidation: data after the zap", view, bytes);
	}
	med = median(t, reps) * 1e6;
	*fastest = t[0] * 1e6;		/* sorted by median() */
	free(t);
	return med;
}

static void measure_invalidation(struct reader *r, size_t pages, struct inv_row *row)
{
	size_t bytes = pages * (size_t)page_size;
	xpmem_apid_t apid;
	uint64_t *view, *far;
	struct msg m;
	uint64_t seed;

	row->pages = pages;
	row->us[INV_PLAIN] = inv_runs(r, pages, INV_PLAIN, NULL, &row->calls[INV_PLAIN],
				      &row->us_min[INV_PLAIN]);

	m = call(r->sock, OP_INV_MAKE, pages, 0);	/* 2 * pages long */
	row->us[INV_EXPORTED] = inv_runs(r, pages, INV_EXPORTED, NULL, &row->calls[INV_EXPORTED],
					 &row->us_min[INV_EXPORTED]);

	/* Elsewhere: the far half attached and mapped, the near half zapped. */
	apid = get_permit(m.segid);
	seed = r->seed_base ^ 0xfa4 ^ pages;
	call(r->sock, OP_INV_FILL, 2 * pages, seed);
	far = attach(apid, bytes, bytes);
	check_full_from("invalidation: far half", far, bytes, seed, bytes / 8);
	row->us[INV_ELSEWHERE] = inv_runs(r, pages, INV_ELSEWHERE, NULL,
					  &row->calls[INV_ELSEWHERE], &row->us_min[INV_ELSEWHERE]);
	/* Zapping the near half must have left the far half alone. */
	check_full_from("invalidation: far half after zaps", far, bytes, seed, bytes / 8);
	if (xpmem_detach(far))
		die("xpmem_detach");

	view = attach(apid, 0, bytes);
	row->us[INV_ATTACHED] = inv_runs(r, pages, INV_ATTACHED, view, &row->calls[INV_ATTACHED],
					 &row->us_min[INV_ATTACHED]);
	/* The untouched attachment still shows the exporter's current data. */
	seed = r->seed_base ^ 0xa77ac4ed ^ pages;
	call(r->sock, OP_INV_FILL, pages, seed);
	check_full("invalidation: idle attachment", view, bytes, seed);

	row->us[INV_FAULTED] = inv_runs(r, pages, INV_FAULTED, view, &row->calls[INV_FAULTED],
					&row->us_min[INV_FAULTED]);
	detach(view, apid);
	call(r->sock, OP_INV_REMOVE, 0, 0);
}

/* Hand-off and zap cost per page, from medians or minimums. */
static double inv_handoff(const double *us)
{
	return us[INV_ATTACHED] - us[INV_EXPORTED];
}

static double inv_zap_per_page(const double *us, size_t pages)
{
	return (us[INV_FAULTED] - us[INV_ATTACHED]) / (double)pages;
}

static void print_inv_header(FILE *out)
{
	fprintf(out, "%6s %9s %9s %9s %9s %9s %9s %9s  %s\n", "pages", "plain", "exported",
		"elsewhere", "attached", "faulted", "hand-off", "zap/page", "calls");
}

static void print_inv_row(FILE *out, const struct inv_row *v, bool fastest)
{
	const double *us = fastest ? v->us_min : v->us;

	fprintf(out, "%6zu %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.3f  %ld/%ld/%ld/%ld/%ld\n",
		v->pages, us[INV_PLAIN], us[INV_EXPORTED], us[INV_ELSEWHERE], us[INV_ATTACHED],
		us[INV_FAULTED], inv_handoff(us), inv_zap_per_page(us, v->pages),
		v->calls[INV_PLAIN], v->calls[INV_EXPORTED], v->calls[INV_ELSEWHERE],
		v->calls[INV_ATTACHED], v->calls[INV_FAULTED]);
}

static void inv_csv_header(FILE *csv)
{
	fprintf(csv, "pages,reps");
	for (int k = 0; k < 2; k++) {
		const char *sfx = k ? "_min" : "";

		for (int mode = 0; mode < INV_NR_MODES; mode++)
			fprintf(csv, ",%s%s_us", inv_mode_name[mode], sfx);
		fprintf(csv, ",handoff%s_us,zap%s_us_per_page", sfx, sfx);
	}
	for (int mode = 0; mode < INV_NR_MODES; mode++)
		fprintf(csv, ",calls_%s", inv_mode_name[mode]);
	fprintf(csv, "\n");
}

static void inv_csv_row(FILE *csv, const struct inv_row *v, int reps)
{
	fprintf(csv, "%zu,%d", v->pages, reps);
	for (int k = 0; k < 2; k++) {
		const double *us = k ? v->us_min : v->us;

		for (int mode = 0; mode < INV_NR_MODES; mode++)
			fprintf(csv, ",%.3f", us[mode]);
		fprintf(csv, ",%.3f,%.4f", inv_handoff(us), inv_zap_per_page(us, v->pages));
	}
	for (int mode = 0; mode < INV_NR_MODES; mode++)
		fprintf(csv, ",%ld", v->calls[mode]);
	fprintf(csv, "\n");
	fflush(csv);
}

/* ------------------------------------------------------------ main */

/* The first two CPUs this process may run on; false if there are fewer. */
static bool pick_cpus(int cpus[2])
{
	cpu_set_t set;
	int n = 0;

	if (sched_getaffinity(0, sizeof(set), &set))
		die("sched_getaffinity");
	for (int c = 0; c < CPU_SETSIZE && n < 2; c++) {
		if (CPU_ISSET(c, &set))
			cpus[n++] = c;
	}
	return n == 2;
}

static void pin_to(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("sched_setaffinity");
}

static FILE *open_csv(const char *path)
{
	FILE *f;

	if (!path)
		return NULL;
	f = fopen(path, "w");
	if (!f)
		die(path);
	return f;
}

static void print_environment(void)
{
	char thp[128] = "unknown";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");

	if (f) {
		if (!fgets(thp, sizeof(thp), f))
			strcpy(thp, "unknown");
		thp[strcspn(thp, "\n")] = 0;
		fclose(f);
	}
	printf("page size %ld, %ld online CPUs, transparent huge pages: %s%s\n",
	       page_size, sysconf(_SC_NPROCESSORS_ONLN), thp,
	       no_thp ? " (not used: --no-thp)" : "");
}

static int reader_main(struct reader *r)
{
	const struct config *cfg = r->cfg;
	FILE *csv = open_csv(cfg->csv), *inv_csv = open_csv(cfg->inv_csv);
	xpmem_apid_t warm_apid;
	struct row row;
	struct inv_row inv[INV_MAX_ROWS];
	int size_idx = 0, nrows = 0;
	double rtt_socket, rtt_flags;

	/* The warm attachment: whole buffer, made once, every page faulted in. */
	warm_apid = get_permit(r->segid);
	r->warm = attach(warm_apid, 0, cfg->max);
	check_full("warm attachment at start", r->warm, cfg->max, 0);

	rtt_socket = measure_handoff(r, false);
	rtt_flags = measure_handoff(r, true);
	printf("hand-off round trip: %.1f us through a socketpair (the peer sleeps), "
	       "%.1f us through polled shm flags\n\n", rtt_socket * 1e6, rtt_flags * 1e6);
	printf("Bandwidth in MB/s (10^6 bytes/s), attach/detach latency in us; medians of\n"
	       "'reps' runs, each timing 'batch' operations back to back.\n");
	printf("%6s %4s %5s %9s %9s %9s %9s %9s %9s %9s %7s %7s %7s %7s\n",
	       "size", "reps", "batch", "attach", "detach", "cold", "warm", "CMA", "shm",
	       "memcpy", "w/mcpy", "w/CMA", "c/CMA", "shm/CMA");
	if (csv)
		fprintf(csv, "bytes,reps,batch,attach_us,detach_us,cold_MBps,warm_MBps,cma_MBps,"
			     "shm_MBps,memcpy_MBps,warm_over_memcpy,warm_over_cma,cold_over_cma,"
			     "shm_over_cma,cold_best_MBps,warm_best_MBps,cma_best_MBps,shm_best_MBps,"
			     "memcpy_best_MBps\n");
	for (size_t size = cfg->min; size <= cfg->max; size *= 4, size_idx++) {
		measure_size(r, size, size_idx, &row);
		print_row(stdout, &row);
		if (csv)
			csv_row(csv, &row);
		if (size > cfg->max / 4)
			break;
	}
	if (xpmem_detach(r->warm) || xpmem_release(warm_apid))
		die("detach of the warm attachment");

	printf("\nInvalidation: exporter's madvise(MADV_DONTNEED) of N 4 KiB pages, us\n"
	       "  plain: range in no segment; exported: in a segment, nothing attached;\n"
	       "  elsewhere: the segment's other half attached and read, nothing of the range;\n"
	       "  attached: the range attached, never touched (hand-off, nothing to zap);\n"
	       "  faulted: the range attached and every page read (hand-off + zap of N PTEs).\n"
	       "  hand-off = attached - exported; zap/page = (faulted - attached) / N.\n"
	       "  calls: driver invalidation callbacks per madvise, by mode (-1: no debugfs).\n");
	if (inv_csv)
		inv_csv_header(inv_csv);
	for (size_t pages = 1; pages <= cfg->inv_max_pages && nrows < INV_MAX_ROWS; pages *= 16) {
		measure_invalidation(r, pages, &inv[nrows]);
		if (inv_csv)
			inv_csv_row(inv_csv, &inv[nrows], cfg->inv_reps);
		nrows++;
	}
	/* Both tables at the end: the rows take a while, and belong together. */
	printf("median of %d runs:\n", cfg->inv_reps);
	print_inv_header(stdout);
	for (int i = 0; i < nrows; i++)
		print_inv_row(stdout, &inv[i], false);
	printf("fastest of %d runs:\n", cfg->inv_reps);
	print_inv_header(stdout);
	for (int i = 0; i < nrows; i++)
		print_inv_row(stdout, &inv[i], true);

	if (csv && fclose(csv))
		die("close csv");
	if (inv_csv && fclose(inv_csv))
		die("close invalidation csv");
	return 0;
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct reader r = { .cfg = &cfg };
	char shm_name[64];
	int sv[2], shm_fd, status, version, cpus[2];
	bool pinned;
	pid_t pid;
	struct msg m;

	page_size = sysconf(_SC_PAGESIZE);
	parse_args(argc, argv, &cfg);
	no_thp = cfg.no_thp;
	if (cfg.inv_max_pages * (size_t)page_size > cfg.max)
		cfg.inv_max_pages = cfg.max / (size_t)page_size;

	version = xpmem_version();
	if (version < 0) {
		fprintf(stderr, "xpmem-bench: no usable XPMEM driver (%s); load the module first\n",
			strerror(errno));
		return 1;
	}
	printf("xpmem-bench: driver %d.%d.%d, sizes %zu..%zu bytes, %d runs (%d from %lu MiB), "
	       "%d invalidation runs\n", version >> 16, (version >> 8) & 0xff, version & 0xff,
	       cfg.min, cfg.max, cfg.reps, cfg.big_reps < cfg.reps ? cfg.big_reps : cfg.reps,
	       BIG_SIZE / MiB, cfg.inv_reps);
	print_environment();

	/* The shared mapping: created here, mapped by each side itself. */
	snprintf(shm_name, sizeof(shm_name), "/xpmem-bench-%d", (int)getpid());
	shm_fd = shm_open(shm_name, O_CREAT | O_EXCL | O_RDWR, 0600);
	if (shm_fd < 0)
		die("shm_open");
	if (ftruncate(shm_fd, (off_t)(cfg.max + (size_t)page_size)))
		die("ftruncate shm");
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		die("socketpair");

	pinned = pick_cpus(cpus);
	if (pinned)
		printf("exporter pinned to CPU %d, reader to CPU %d\n", cpus[0], cpus[1]);
	else
		printf("fewer than 2 CPUs allowed: processes not pinned\n");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		close(sv[0]);
		if (pinned)
			pin_to(cpus[0]);
		_exit(exporter_main(sv[1], shm_fd, &cfg));
	}
	if (pinned)
		pin_to(cpus[1]);
	close(sv[1]);
	r.sock = sv[0];
	r.exporter = pid;

	recv_msg(r.sock, &m);
	if (m.op != OP_HELLO) {
		fprintf(stderr, "xpmem-bench: unexpected first message %u\n", m.op);
		return 1;
	}
	r.segid = m.segid;
	r.buf_addr = (uintptr_t)m.addr;
	/* Both sides have the object open now; its name is no longer needed. */
	if (shm_unlink(shm_name))
		die("shm_unlink");

	r.ctl = mmap(NULL, cfg.max + (size_t)page_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		     shm_fd, 0);
	if (r.ctl == MAP_FAILED)
		die("mmap shm");
	close(shm_fd);
	r.shm = (unsigned char *)r.ctl + page_size;
	r.dst = alloc_buf(cfg.max);
	r.lsrc = alloc_buf(cfg.max);
	/* Fault everything in now: page faults are not what we time. */
	memset(r.dst, 0, cfg.max);
	memset(r.lsrc, 0, cfg.max);
	for (size_t i = 0; i < cfg.max; i += (size_t)page_size)
		(void)*(volatile unsigned char *)(r.shm + i);
	r.seed_base = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid() << 16 ^ 1;

	reader_main(&r);

	call(r.sock, OP_QUIT, 0, 0);
	if (waitpid(pid, &status, 0) != pid)
		die("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "xpmem-bench: the exporter failed (status %#x)\n", status);
		failures++;
	}
	printf("\nverification: %s (%llu words checked, %llu wrong)\n",
	       failures ? "FAILED" : "ok", checks, failures);
	return failures ? 1 : 0;
}
