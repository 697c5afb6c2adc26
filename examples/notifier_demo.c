// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * notifier_demo.c - long-lived attachments that keep up with an exporter
 * whose memory keeps changing underneath them.
 *
 * Every rank allocates a buffer, exports its whole address space once (as
 * MPI libraries do) and attaches the buffer of its right neighbour,
 * (rank + 1) % size, once, read-only. The attachments are never remade.
 * Then, round after round, every rank changes the memory behind its own
 * buffer in five ways, and after each change writes a pattern that is new
 * for that rank, round and phase:
 *
 *   a. free() and malloc() again: glibc returns a large block to the kernel
 *      (munmap) and maps a new one, usually at the same address;
 *   b. munmap() and mmap(MAP_FIXED) at the same address;
 *   c. madvise(MADV_DONTNEED): the pages are dropped and read back as zeros
 *      (checked), then rewritten;
 *   d. fork(): a child keeps the old pages (copy-on-write) while the parent
 *      writes, so the parent gets new copies of every page;
 *   e. move_pages(2) to the other NUMA node (skipped on a single node).
 *
 * After each change the exporter signals its reader with an MPI message;
 * the reader reads the whole buffer through its attachment and checks every
 * byte against what the exporter just wrote. A byte that does not match is
 * stale. MPI only carries these signals and the results; the data itself
 * is only ever read through the attachments.
 *
 * Why a ring: it is what an MPI library does (every process exports and
 * every process reads a peer), so each process is at the same time an
 * exporter whose pages change and an attacher whose attachment PTEs the
 * driver zaps. Zapping those PTEs is itself a change to the attacher's page
 * tables, inside the attacher's own whole-address-space segment: the
 * driver's nested-invalidation path runs all the time here (the
 * inv_nested_skipped counter). With -n 2 the two ranks read each other.
 *
 * None of this works without invalidation: the attacher's page tables point
 * at the physical pages the exporter had when the attacher last read them.
 * After each change those pages are freed (a, b, c), still owned by the
 * child (d) or freed after copying (e); an attachment that was not told
 * would go on showing the old bytes. The driver is told by an
 * mmu_interval_notifier on the exporter's range and zaps the attachers' PTEs
 * before the change completes; the next read faults and finds the new page.
 * That zap takes i_mmap_rwsem, a sleeping lock, and may wait for a fault in
 * progress, so the notifier must be allowed to sleep, which it was not
 * when mmu notifiers ran under spinlocks and rcu_read_lock.
 * docs/notifiers.md explains which kernel path each phase takes, which
 * notifier event it raises, and what the driver does in the callback.
 *
 * At the end rank 0 prints a table per phase: bytes checked, stale bytes,
 * and the change in the driver's debugfs counters across the phase. The
 * counters are module-wide, so they add up all ranks (and whatever MPI
 * itself maps and unmaps meanwhile); "n/a" when they cannot be read. The
 * data check does not depend on them. Exit status 1 if any byte was stale,
 * if the fork child lost its old data, or if pages did not move.
 *
 * Run: mpiexec -n 4 examples/notifier_demo [-r ROUNDS] [-k BUFFER_KIB] [-b]
 * (defaults: 3 rounds, 4096 KiB; -b: see numa_balancing_off()).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/mempolicy.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "xpmem_mpi.h"

enum phase { PH_REALLOC, PH_REMAP, PH_DONTNEED, PH_FORK, PH_MIGRATE, NPHASES };

static const char *const phase_names[NPHASES] = {
	[PH_REALLOC] = "a free+malloc",
	[PH_REMAP] = "b munmap+mmap FIXED",
	[PH_DONTNEED] = "c MADV_DONTNEED",
	[PH_FORK] = "d fork, COW",
	[PH_MIGRATE] = "e move_pages",
};

/*
 * The driver counters sampled around each phase. The first TABLE_COUNTERS
 * are table columns, the rest appear only in the totals.
 */
static const char *const counter_names[] = {
	"invalidations", "inv_unmap", "inv_clear", "inv_protection_page",
	"inv_migrate", "inv_nested_skipped", "faults",
	"inv_protection_vma", "inv_other", "inv_nonblock_refused",
	"inv_zapped", "inv_unattached",
	"fault_retries", "pages_mapped",
};
#define NCOUNTERS (sizeof(counter_names) / sizeof(counter_names[0]))
#define TABLE_COUNTERS 7
static const char *const counter_heads[TABLE_COUNTERS] = {
	"inval", "unmap", "clear", "prot_pg", "migrate", "nested", "faults",
};

/*
 * What one rank observed in one phase of one round; summed over ranks
 * (MPI_UINT64_T) and then over rounds. Only uint64_t fields.
 */
struct result {
	uint64_t checked;	/* bytes read through an attachment and compared */
	uint64_t stale;		/* of those, bytes that were not the current data */
	uint64_t stale_prev;	/* of those, bytes still holding the previous data */
	uint64_t same_addr;	/* (a) malloc gave the buffer's address back */
	uint64_t moved_addr;	/* (a) it did not; we mapped the old address */
	uint64_t pages;		/* (e) pages asked to move */
	uint64_t moved;		/* (e) pages found on their target node afterwards */
	uint64_t child_bad;	/* (d) bytes of the child's copy that lost the old data */
	uint64_t errors;	/* anything else that went wrong (see stderr) */
};
#define RESULT_WORDS (sizeof(struct result) / sizeof(uint64_t))

/* What a buffer should hold: zeros, or the pattern with a seed. */
struct content {
	bool zero;
	unsigned int seed;
};

/* The exporter's signal: "my buffer now holds this, read it". */
struct signal_msg {
	int32_t round, phase, step, zero;
	uint32_t seed, pad;
	uint64_t addr;		/* where the buffer is: it must not have moved */
};

/* This rank's exported buffer. Its address never changes. */
struct buffer {
	unsigned char *data;	/* page aligned, published to the reader */
	size_t len;		/* page multiple */
	void *block;		/* what malloc() returned, or NULL: we mmap()ed data */
};

static int rank, nranks;
static size_t page_size;

/*
 * The pattern: consecutive seeds differ in every byte (the difference is
 * the same for all bytes), so a page left over from the previous step
 * cannot pass for the current one.
 */
static unsigned char pattern(size_t i, unsigned int seed)
{
	return (unsigned char)(i * 131u + (i >> 12) * 29u + seed);
}

static unsigned char expected(struct content c, size_t i)
{
	return c.zero ? 0 : pattern(i, c.seed);
}

/*
 * The seed of data step @seq of rank @r: 37 is odd, so any 256 consecutive
 * steps of one rank have different seeds modulo 256.
 */
static unsigned int seed_of(unsigned int seq, int r)
{
	return (seq * 37u + (unsigned int)r * 101u + 1u) & 0xffu;
}

static void fill(unsigned char *p, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = pattern(i, seed);
}

/* Bytes of p that are not c. Async-signal-safe (the fork child uses it). */
static uint64_t count_bad(const unsigned char *p, size_t len, struct content c)
{
	uint64_t bad = 0;

	for (size_t i = 0; i < len; i++)
		bad += p[i] != expected(c, i);
	return bad;
}

/*
 * The reader's check: every byte of the peer's buffer, read through the
 * attachment. Stale bytes are counted, and those that still hold what the
 * previous step wrote are counted separately: that is what an attachment
 * whose PTEs were not zapped would show.
 */
static void verify(const unsigned char *view, size_t len, struct content cur,
		   struct content prev, int peer, const char *what, struct result *r)
{
	size_t first = len;
	uint64_t bad = 0, old = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char got = view[i];

		if (got == expected(cur, i))
			continue;
		if (first == len)
			first = i;
		bad++;
		old += got == expected(prev, i);
	}
	r->checked += len;
	r->stale += bad;
	r->stale_prev += old;
	if (bad)
		fprintf(stderr,
			"rank %d: %s: %" PRIu64 " stale bytes in rank %d's buffer (%" PRIu64
			" still the previous data); first at offset %zu: 0x%02x, expected 0x%02x\n",
			rank, what, bad, peer, old, first, view[first], expected(cur, first));
}

static unsigned char *page_align_up(void *p)
{
	return (unsigned char *)(((uintptr_t)p + page_size - 1) & ~(uintptr_t)(page_size - 1));
}

/*
 * Allocate the buffer with malloc(): one page more than needed, so that a
 * page-aligned span of len bytes lies inside the block, after glibc's
 * chunk header. The block is above the mmap threshold (fixed in main()),
 * so glibc maps it on its own and unmaps it on free().
 */
static void buffer_alloc(struct buffer *b)
{
	b->block = malloc(b->len + page_size);
	if (!b->block)
		xm_die("malloc");
	b->data = page_align_up(b->block);
}

static void buffer_release(struct buffer *b)
{
	if (b->block)
		free(b->block);
	else if (munmap(b->data, b->len) != 0)
		xm_die("munmap");
	b->block = NULL;
}

/*
 * a. free() and malloc(). glibc unmaps the freed block and maps a new one:
 * new, empty pages. The kernel's top-down search finds the hole just left,
 * so the address is usually the same. If not, the new block is given back
 * and the old address is mapped directly, because the reader's attachment
 * is a window onto that address and is never remade; the output counts
 * both cases.
 */
static void phase_realloc(struct buffer *b, struct result *r)
{
	unsigned char *old = b->data;

	buffer_release(b);
	buffer_alloc(b);
	if (b->data == old) {
		r->same_addr++;
		return;
	}
	fprintf(stderr, "rank %d: malloc returned %p, the buffer was at %p: mapping the old one\n",
		rank, (void *)b->data, (void *)old);
	free(b->block);
	b->block = NULL;
	b->data = old;
	if (mmap(old, b->len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != old)
		xm_die("mmap at the buffer's address");
	r->moved_addr++;
}

/*
 * b. munmap() and mmap(MAP_FIXED) over the buffer. When the buffer is a
 * malloc() block this punches a new mapping into glibc's: glibc's header
 * (in the page before) is untouched, and the free() of phase a unmaps the
 * whole block, our mapping included.
 */
static void phase_remap(struct buffer *b)
{
	if (munmap(b->data, b->len) != 0)
		xm_die("munmap");
	if (mmap(b->data, b->len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != b->data)
		xm_die("mmap(MAP_FIXED)");
}

/* c. Drop the pages: they read as zeros until written again. */
static void phase_dontneed(struct buffer *b)
{
	if (madvise(b->data, b->len, MADV_DONTNEED) != 0)
		xm_die("madvise(MADV_DONTNEED)");
}

/* d. A child that holds the old pages until told to check them and exit. */
struct child {
	pid_t pid;
	int go_fd;		/* write a byte: check your copy and exit */
	int result_fd;		/* the child's answer: uint64_t bad bytes */
};

static void child_start(struct buffer *b, struct content old, struct child *c)
{
	int go[2], res[2];

	if (pipe2(go, O_CLOEXEC) != 0 || pipe2(res, O_CLOEXEC) != 0)
		xm_die("pipe2");
	fflush(stdout);
	fflush(stderr);
	c->pid = fork();
	if (c->pid < 0)
		xm_die("fork");
	if (c->pid == 0) {
		/*
		 * The child of a multithreaded MPI process: only
		 * async-signal-safe calls, no MPI, and _exit(). When the
		 * parent dies, read() sees end of file and we exit too.
		 */
		char x;
		uint64_t bad;

		close(go[1]);
		close(res[0]);
		while (read(go[0], &x, 1) < 0 && errno == EINTR)
			;
		bad = count_bad(b->data, b->len, old);
		if (write(res[1], &bad, sizeof(bad)) != sizeof(bad))
			_exit(1);
		_exit(0);
	}
	close(go[0]);
	close(res[1]);
	c->go_fd = go[1];
	c->result_fd = res[0];
}

/* The child's copy must still hold the old data: it was never written. */
static void child_finish(struct child *c, size_t len, struct result *r)
{
	uint64_t bad = len;
	ssize_t n;
	int status;

	if (write(c->go_fd, "x", 1) != 1)
		xm_die("write to the child");
	do {
		n = read(c->result_fd, &bad, sizeof(bad));
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(bad)) {
		fprintf(stderr, "rank %d: the fork child did not answer\n", rank);
		r->errors++;
		bad = 0;
	}
	close(c->go_fd);
	close(c->result_fd);
	if (waitpid(c->pid, &status, 0) != c->pid)
		xm_die("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "rank %d: the fork child failed (status 0x%x)\n", rank, status);
		r->errors++;
	}
	if (bad)
		fprintf(stderr, "rank %d: the fork child's copy lost %" PRIu64
			" bytes of the old data\n", rank, bad);
	r->child_bad += bad;
}

/* e. NUMA nodes with memory, from sysfs ("0-1", "0,2-3"). */
static int memory_nodes(int *nodes, int max)
{
	FILE *f = fopen("/sys/devices/system/node/has_memory", "r");
	char line[256], *p;
	int n = 0;

	if (!f)
		return 1;	/* no NUMA information: one node */
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return 1;
	}
	fclose(f);
	p = line;
	while (*p && *p != '\n' && n < max) {
		long lo = strtol(p, &p, 10), hi = lo;

		if (*p == '-')
			hi = strtol(p + 1, &p, 10);
		for (long v = lo; v <= hi && n < max; v++)
			nodes[n++] = (int)v;
		if (*p == ',')
			p++;
		else
			break;
	}
	return n ? n : 1;
}

/*
 * Read one byte of every page; this matters only with -b. With two nodes
 * the kernel's automatic NUMA balancing keeps turning our PTEs into
 * PROT_NONE hinting entries, and 6.1's move_pages() cannot see a page
 * behind one: it looks the page up with follow_page(), which does not
 * follow NUMA-hinting PTEs, and answers -ENOENT, for the query as for the
 * move. A read takes the hinting fault, which makes the PTE normal again.
 * (The scanner's change is an invalidation too: inv_protection_vma.)
 */
static void touch_pages(const struct buffer *b)
{
	const volatile unsigned char *p = b->data;

	for (size_t off = 0; off < b->len; off += page_size)
		(void)p[off];
}

/* move_pages(2) on ourselves; nodes NULL only asks where the pages are. */
static long move_pages_self(unsigned long count, void **pages, const int *nodes, int *status)
{
	return syscall(SYS_move_pages, 0, count, pages, nodes, status, MPOL_MF_MOVE);
}

#define MAX_NODES 64

/* Say why move_pages() left pages behind: the status it gave them. */
static void describe_failures(long ret, const int *status, const int *target,
			      unsigned long npages)
{
	unsigned long shown = 0;

	fprintf(stderr, "rank %d: move_pages left %ld pages behind:", rank, ret);
	for (unsigned long i = 0; i < npages && shown < 8; i++) {
		if (status[i] == target[i])
			continue;
		fprintf(stderr, " page %lu: %d (%s)", i, status[i],
			status[i] < 0 ? strerror(-status[i]) : "node");
		shown++;
	}
	fprintf(stderr, "\n");
}

/*
 * e. Move every page of the buffer to another node: each page goes to the
 * node after the one it is on. Then ask where the pages are, and move
 * again (a page can be briefly busy) until all are on their target.
 */
static void phase_migrate(struct buffer *b, const int *nodes, int nnodes, struct result *r)
{
	unsigned long npages = b->len / page_size, on_target = 0;
	void **pages = calloc(npages, sizeof(*pages));
	int *target = calloc(npages, sizeof(*target));
	int *status = calloc(npages, sizeof(*status));

	if (!pages || !target || !status)
		xm_die("calloc");
	for (unsigned long i = 0; i < npages; i++)
		pages[i] = b->data + i * page_size;
	touch_pages(b);
	if (move_pages_self(npages, pages, NULL, status) != 0)
		xm_die("move_pages (query)");
	for (unsigned long i = 0; i < npages; i++) {
		int k = 0;

		while (k < nnodes && nodes[k] != status[i])
			k++;
		/* A page not on a listed node (status < 0) goes to the first. */
		target[i] = k < nnodes ? nodes[(k + 1) % nnodes] : nodes[0];
	}
	for (int attempt = 0; attempt < 5 && on_target < npages; attempt++) {
		long ret;

		touch_pages(b);
		ret = move_pages_self(npages, pages, target, status);
		if (ret < 0)
			xm_die("move_pages");
		if (ret > 0)
			describe_failures(ret, status, target, npages);
		touch_pages(b);
		if (move_pages_self(npages, pages, NULL, status) != 0)
			xm_die("move_pages (query)");
		on_target = 0;
		for (unsigned long i = 0; i < npages; i++)
			on_target += status[i] == target[i];
	}
	if (on_target < npages) {
		fprintf(stderr, "rank %d: only %lu of %lu pages moved to their target node\n",
			rank, on_target, npages);
		r->errors++;
	}
	r->pages += npages;
	r->moved += on_target;
	free(pages);
	free(target);
	free(status);
}

/*
 * Opt this process out of automatic NUMA balancing, so that the counters
 * measure what the phases do. The balancer only scans a process whose
 * memory policy allows migrate-on-fault (MPOL_F_MOF, which the default
 * policy has); MPOL_LOCAL set by set_mempolicy() allocates as the default
 * does but has no such flag. Left on (-b), the balancer write-protects our
 * pages every scan period and migrates the misplaced ones on the next
 * touch: invalidations that no phase asked for, spread over all of them.
 */
static void numa_balancing_off(void)
{
	if (syscall(SYS_set_mempolicy, MPOL_LOCAL, NULL, 0UL) != 0)
		xm_die("set_mempolicy(MPOL_LOCAL)");
}

/* Everything one rank keeps across the run. */
struct demo {
	struct buffer buf;		/* ours, exported */
	struct xm_mapping peer;		/* the right neighbour's buffer, attached once */
	uint64_t peer_addr;		/* that buffer's address in the neighbour */
	int left, right;		/* our reader, the rank we read */
	struct content mine;		/* what our buffer holds now */
	struct content theirs;		/* what the neighbour's buffer holds now */
	unsigned int seq;		/* data steps so far: picks the seeds */
	int nodes[MAX_NODES], nnodes;	/* NUMA nodes with memory */
};

/*
 * One step of the protocol, for this rank in both roles. As exporter: our
 * buffer holds d->mine; tell our reader (the left neighbour). As reader:
 * wait for the right neighbour's signal, check its buffer through the
 * attachment against d->theirs (@prev: what it held before this step),
 * acknowledge. Then, as exporter, wait for our reader's acknowledgement:
 * only after it may our buffer change again. Sending before receiving
 * (non-blocking) keeps the ring from deadlocking.
 */
static void exchange_step(struct demo *d, struct content prev, int round, enum phase ph,
			  int step, struct result *r)
{
	struct signal_msg out = {
		.round = round, .phase = ph, .step = step, .zero = d->mine.zero,
		.seed = d->mine.seed, .addr = (uint64_t)(uintptr_t)d->buf.data,
	};
	struct signal_msg in;
	MPI_Request req[2];
	MPI_Status statuses[2];
	char what[96];
	int ack = 1, ack_in;

	MPI_Isend(&out, sizeof(out), MPI_BYTE, d->left, 1, MPI_COMM_WORLD, &req[0]);
	MPI_Recv(&in, sizeof(in), MPI_BYTE, d->right, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	if (in.round != round || in.phase != (int)ph || in.step != step ||
	    in.zero != d->theirs.zero || (!in.zero && in.seed != d->theirs.seed)) {
		fprintf(stderr, "rank %d: out of step with rank %d\n", rank, d->right);
		r->errors++;
	}
	/* The attachment is a window onto one address: the buffer must be there. */
	if (in.addr != d->peer_addr) {
		fprintf(stderr, "rank %d: rank %d's buffer moved from 0x%" PRIx64 " to 0x%" PRIx64
			"\n", rank, d->right, d->peer_addr, in.addr);
		r->errors++;
	}
	snprintf(what, sizeof(what), "round %d, %s%s", round, phase_names[ph],
		 d->theirs.zero ? " (zeros)" : "");
	verify(d->peer.ptr, d->buf.len, d->theirs, prev, d->right, what, r);
	MPI_Isend(&ack, 1, MPI_INT, d->right, 2, MPI_COMM_WORLD, &req[1]);
	MPI_Recv(&ack_in, 1, MPI_INT, d->left, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	MPI_Waitall(2, req, statuses);
}

/* Fresh data in our buffer, then the exchange: the neighbour's is checked. */
static void data_step(struct demo *d, int round, enum phase ph, int step, struct result *r)
{
	struct content prev = d->theirs;

	d->seq++;
	d->mine = (struct content){ false, seed_of(d->seq, rank) };
	d->theirs = (struct content){ false, seed_of(d->seq, d->right) };
	fill(d->buf.data, d->buf.len, d->mine.seed);
	exchange_step(d, prev, round, ph, step, r);
}

/* One phase of one round: change our memory, write, check the neighbour's. */
static void run_phase(struct demo *d, int round, enum phase ph, struct result *r)
{
	struct content prev = d->theirs;
	struct child child;

	switch (ph) {
	case PH_REALLOC:
		phase_realloc(&d->buf, r);
		break;
	case PH_REMAP:
		phase_remap(&d->buf);
		break;
	case PH_DONTNEED:
		phase_dontneed(&d->buf);
		/* First the zeros, read through the same attachment. */
		d->mine = d->theirs = (struct content){ true, 0 };
		exchange_step(d, prev, round, ph, 0, r);
		data_step(d, round, ph, 1, r);
		return;
	case PH_FORK:
		child_start(&d->buf, d->mine, &child);
		data_step(d, round, ph, 0, r);
		/* Our reader is done: only now may the child let go of the old pages. */
		child_finish(&child, d->buf.len, r);
		return;
	case PH_MIGRATE:
		if (d->nnodes > 1)
			phase_migrate(&d->buf, d->nodes, d->nnodes, r);
		break;
	case NPHASES:
		break;
	}
	data_step(d, round, ph, 0, r);
}

/*
 * Rank 0's bookkeeping of the driver counters: the change across each
 * phase, summed over rounds; -1 once a sample could not be read.
 */
struct counters {
	long before[NCOUNTERS];
	long delta[NPHASES][NCOUNTERS];
};

/* The driver counters now; -1 for those that cannot be read. */
static void counters_sample(long *v)
{
	for (size_t k = 0; k < NCOUNTERS; k++)
		v[k] = xm_driver_stat(counter_names[k]);
}

/* Add the phase's change; returns the change in "invalidations", or -1. */
static long counters_phase_end(struct counters *c, enum phase ph)
{
	long after[NCOUNTERS];

	counters_sample(after);
	for (size_t k = 0; k < NCOUNTERS; k++) {
		if (c->before[k] < 0 || after[k] < 0 || c->delta[ph][k] < 0)
			c->delta[ph][k] = -1;
		else
			c->delta[ph][k] += after[k] - c->before[k];
	}
	return c->before[0] < 0 || after[0] < 0 ? -1 : after[0] - c->before[0];
}

static void print_counter(long v)
{
	if (v >= 0)
		printf(" %8ld", v);
	else
		printf(" %8s", "n/a");
}

/* The per-phase table (rank 0). Returns true if anything failed. */
static bool print_table(const struct result *total, const struct counters *c, int nnodes)
{
	uint64_t checked = 0, stale = 0, stale_prev = 0;
	bool failed = false;

	printf("\n%-22s %9s %9s", "phase", "MiB read", "stale");
	for (size_t k = 0; k < TABLE_COUNTERS; k++)
		printf(" %8s", counter_heads[k]);
	printf("  notes\n");
	for (int p = 0; p < NPHASES; p++) {
		const struct result *t = &total[p];

		printf("%-22s %9.1f %9" PRIu64, phase_names[p], t->checked / 1048576.0, t->stale);
		for (size_t k = 0; k < TABLE_COUNTERS; k++)
			print_counter(c->delta[p][k]);
		printf("  ");
		switch ((enum phase)p) {
		case PH_REALLOC:
			printf("same address %" PRIu64 "/%" PRIu64,
			       t->same_addr, t->same_addr + t->moved_addr);
			break;
		case PH_DONTNEED:
			printf("zeros checked, then data");
			break;
		case PH_FORK:
			printf("child kept the old data: %s", t->child_bad ? "NO" : "yes");
			break;
		case PH_MIGRATE:
			if (nnodes > 1)
				printf("moved %" PRIu64 "/%" PRIu64 " pages", t->moved, t->pages);
			else
				printf("skipped: one node");
			break;
		default:
			break;
		}
		printf("\n");
		checked += t->checked;
		stale += t->stale;
		stale_prev += t->stale_prev;
		failed |= t->stale || t->child_bad || t->errors;
	}

	printf("\ndriver counters over all phases:");
	for (size_t k = 0; k < NCOUNTERS; k++) {
		long sum = 0;

		for (int p = 0; p < NPHASES && sum >= 0; p++)
			sum = c->delta[p][k] < 0 ? -1 : sum + c->delta[p][k];
		if (sum >= 0)
			printf(" %s %ld", counter_names[k], sum);
		else
			printf(" %s n/a", counter_names[k]);
	}
	printf("\nverification: %s (%" PRIu64 " bytes checked, %" PRIu64 " stale, %" PRIu64
	       " of them still the previous data)\n", failed ? "FAILED" : "ok", checked, stale,
	       stale_prev);
	fflush(stdout);
	return failed;
}

static void usage(void)
{
	if (rank == 0)
		fprintf(stderr, "usage: notifier_demo [-r ROUNDS] [-k BUFFER_KIB] [-b]\n"
			"  -b  leave the kernel's automatic NUMA balancing on for these ranks\n");
	MPI_Finalize();
	exit(2);
}

int main(int argc, char **argv)
{
	static struct demo d;
	static struct counters counters;
	struct result total[NPHASES] = { 0 };
	struct xm_remote *all;
	xpmem_segid_t segid;
	int version, rounds = 3, opt, failed = 0, any_failed;
	size_t kib = 4096;
	bool balancing = false;

	page_size = (size_t)sysconf(_SC_PAGESIZE);

	/* Options first: the buffer is allocated before MPI_Init. */
	while ((opt = getopt(argc, argv, "r:k:b")) != -1) {
		switch (opt) {
		case 'b':
			balancing = true;
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 'k':
			kib = strtoul(optarg, NULL, 10);
			break;
		default:
			rounds = -1;
		}
	}
	if (!balancing)
		numa_balancing_off();	/* before any thread exists: threads inherit it */

	/*
	 * A fixed mmap threshold: glibc then maps every block at least this
	 * big on its own and unmaps it on free(). (By default the threshold
	 * grows to the size of the last freed block, and the next malloc()
	 * of that size would come from the heap.) The buffer is allocated
	 * before MPI_Init, while the address space is still nearly empty, so
	 * that no hole above it is ever large enough to take the block when
	 * it is malloc()ed again.
	 */
	d.buf.len = kib * 1024;
	if (rounds >= 1 && d.buf.len >= page_size && d.buf.len % page_size == 0) {
		size_t threshold = d.buf.len < (32u << 20) ? d.buf.len : (32u << 20);

		mallopt(M_MMAP_THRESHOLD, (int)threshold);
		buffer_alloc(&d.buf);
	}

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &nranks);
	if (!d.buf.block)
		usage();
	d.left = (rank + nranks - 1) % nranks;
	d.right = (rank + 1) % nranks;

	version = xpmem_version();
	if (version < 0)
		xm_die("xpmem_version");
	d.nnodes = memory_nodes(d.nodes, MAX_NODES);
	if (rank == 0) {
		printf("xpmem driver %d.%d.%d; %d ranks in a ring, rank r reads rank (r+1)%%%d\n",
		       version >> 16, (version >> 8) & 0xff, version & 0xff, nranks, nranks);
		printf("buffer %zu KiB per rank, %d rounds, %d NUMA node%s with memory\n",
		       kib, rounds, d.nnodes, d.nnodes == 1 ? "" : "s");
		printf("automatic NUMA balancing %s; each rank attaches once, never again\n",
		       balancing ? "left on" : "off for these ranks");
	}

	/* The starting data, then export, publish and attach: once. */
	d.mine = (struct content){ false, seed_of(0, rank) };
	d.theirs = (struct content){ false, seed_of(0, d.right) };
	fill(d.buf.data, d.buf.len, d.mine.seed);
	segid = xm_export_all();
	all = calloc((size_t)nranks, sizeof(*all));
	if (!all)
		xm_die("calloc");
	xm_exchange(MPI_COMM_WORLD, segid, d.buf.data, all);
	d.peer_addr = all[d.right].addr;
	d.peer = xm_attach(&all[d.right], d.buf.len, XPMEM_RDONLY);
	{
		struct result first = { 0 };

		/* The first read fills the attachment's page tables. */
		exchange_step(&d, (struct content){ true, 0 }, 0, PH_REALLOC, -1, &first);
		if (first.stale || first.errors)
			MPI_Abort(MPI_COMM_WORLD, 1);
	}

	for (int round = 1; round <= rounds; round++) {
		for (int p = 0; p < NPHASES; p++) {
			struct result r = { 0 }, sum;
			long inval = -1;

			/* Nobody changes anything until rank 0 has sampled. */
			MPI_Barrier(MPI_COMM_WORLD);
			if (rank == 0)
				counters_sample(counters.before);
			MPI_Barrier(MPI_COMM_WORLD);

			run_phase(&d, round, (enum phase)p, &r);

			MPI_Barrier(MPI_COMM_WORLD);
			if (rank == 0)
				inval = counters_phase_end(&counters, (enum phase)p);
			MPI_Reduce(&r, &sum, (int)RESULT_WORDS, MPI_UINT64_T, MPI_SUM, 0,
				   MPI_COMM_WORLD);
			if (rank != 0)
				continue;
			for (size_t w = 0; w < RESULT_WORDS; w++)
				((uint64_t *)&total[p])[w] += ((const uint64_t *)&sum)[w];
			printf("round %d  %-22s %10" PRIu64 " bytes checked, %" PRIu64 " stale, ",
			       round, phase_names[p], sum.checked, sum.stale);
			if (inval >= 0)
				printf("%ld invalidations\n", inval);
			else
				printf("invalidations n/a\n");
			fflush(stdout);
		}
	}

	if (rank == 0)
		failed = print_table(total, &counters, d.nnodes);
	MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);

	/* Everyone detaches before anyone removes or frees what is attached. */
	xm_detach(&d.peer);
	MPI_Barrier(MPI_COMM_WORLD);
	if (xpmem_remove(segid) != 0)
		xm_die("xpmem_remove");
	buffer_release(&d.buf);
	free(all);
	MPI_Finalize();
	return any_failed ? 1 : 0;
}
