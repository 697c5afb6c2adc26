// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * xpmem-stress.c - seeded concurrency stress of the driver, with a data
 * oracle that can tell a wrong value from a merely racy one.
 *
 * Processes. A supervisor forks --procs exporters and --procs attachers,
 * each with --threads worker threads, and restarts any of them that is
 * killed or exits on purpose. Every worker draws its operations from its
 * own generator, seeded from (--seed, role, index, incarnation, thread), so
 * a seed replays the same choices (not the same thread timing). Each thread
 * has a quota of --ops (an attacher thread ATT_SHARE times an exporter
 * thread's: its operations are mostly loads and stores), and threads pace
 * one another so that cheap operations and dear ones (mmap, fork) overlap
 * for the whole run.
 *
 * Exporters own two buffers of NPAGES pages (the first at the start of a
 * 2 MiB-aligned 2 MiB mapping, so that THP and MADV_COLLAPSE can act on it)
 * and export them as up to four segments: each buffer whole, and a random
 * sub-range of it. They change pages at random: rewrite, mmap over, munmap,
 * mremap a new page in or the page out, MADV_DONTNEED, MADV_FREE,
 * MADV_PAGEOUT, MADV_(NO)HUGEPAGE, MADV_COLLAPSE, mprotect to read-only,
 * PROT_NONE or back, move_pages to another NUMA node; they make and remove
 * segments, fork children that touch the buffers and exit, verify their own
 * pages, exit, and SIGKILL peers. Attachers get and release permits
 * (RDONLY or RDWR), attach (plain, XPMEM_ATTACH_POPULATE, or at a fixed
 * address over one of their attachments) and detach, read and write through
 * attachments, and munmap, mremap, mprotect and madvise them; they fork
 * children that must not see the attachments, exit, and kill peers.
 *
 * The oracle. Everything the processes must agree on lives in one
 * MAP_SHARED anonymous region made before the first fork:
 *  - Each exporter page has a state word: (generation, kind, changing).
 *    The kind says what the page is now: filled, lazily freed (MADV_FREE),
 *    zero (after MADV_DONTNEED), read-only, PROT_NONE or unmapped. Every
 *    change of a page is a transition under an exporter-local page lock:
 *    the state is set to "changing, generation G+1", the memory is changed
 *    (and, where it holds data, filled with generation G+1), and only then
 *    is the new stable state stored. The store is the confirmation.
 *  - Word w < SLOT_BASE of a page holds pat(exporter, buffer, page, w, G):
 *    the generation in the high half and a hash in the low half, so any
 *    value read names its generation and garbage is recognised. Words from
 *    SLOT_BASE on are one slot per attacher thread ("writer"), which only
 *    that thread writes, with (writer, sequence number).
 *  - Each segment slot has a sequence count (odd while being made or
 *    removed), and each process slot a life word (incarnation, starting /
 *    alive / dying / dead). A kill or an exit first moves the victim from
 *    alive to dying; the supervisor marks it dead and retires its segments
 *    only after it has reaped it.
 * An attacher samples the life word, the segment count and the page state
 * before an access and again after it (with a full fence in between):
 *  - all unchanged and the page stable: the access must give exactly what
 *    the kind says (pat(G) for filled pages, pat(G) or 0 for lazily freed
 *    ones, 0 for zero pages, and SIGBUS for PROT_NONE and unmapped ones; a
 *    write must succeed on writable kinds and raise SIGBUS on the others).
 *    A value of an older generation here is a stale read: the exporter had
 *    confirmed the change before the read began.
 *  - the page changed meanwhile: SIGBUS is allowed, and a value must be 0
 *    or of a generation between the two samples ("changing to G+1" still
 *    shows G until it is replaced; anything older is stale).
 *  - the segment was removed, or the exporter reaped, before the access
 *    began: the access must raise SIGBUS. Only after an exporter's death is
 *    a short grace (GRACE_S) allowed: its address space may still be torn
 *    down asynchronously by the last fault that held it; reads then are
 *    counted as late_reads, and must still be the exporter's data.
 *  - any other overlap with a remove, death or restart: anything valid.
 * A write that succeeds on a stable writable page is read back at once and
 * published as (generation, sequence) for that writer and page. When the
 * exporter verifies the page, and whenever an attacher reads its own slot,
 * a slot that holds less than a sequence published for the current
 * generation is a lost write (e.g. MADV_FREE + an attachment write +
 * MADV_PAGEOUT dropping the data). SIGSEGV is expected only for an access
 * the attachment's own protection forbids (RDONLY permit, mprotect by the
 * attacher) or in a fork child touching an attachment (attachments are not
 * inherited). SIGBUS or SIGSEGV anywhere else, in any process, is a failure,
 * as is an unexpected error from a call, a fork child that fails, and a
 * process that dies without having been told to.
 *
 * The supervisor is the watchdog: with no progress for --watchdog seconds it
 * reports a hang (with each thread's operation, wchan and, as root, kernel
 * stack), kills everything and fails; alarm() backs it up should the
 * supervisor itself get stuck. It is a child subreaper, so it also reaps
 * the workers' orphans: when it returns, all its processes are gone and,
 * with them, every xpmem object they made (after a hang, the ones stuck in
 * the kernel are named instead). The kernel's taint flags and lockdep state
 * are compared before and after the run.
 *
 * Output: "xpmem-stress: seed N" first; each failure as it happens (every
 * kind at least once), with the seed; at the end one line of counts (per
 * operation, expected signals, what the oracle checked, failures), the time
 * spent per operation kind, the failure kinds, the driver's counters, and
 * PASS or FAIL with the command line that replays the run. --without drops
 * operations from the mix, to narrow a failure down.
 *
 * --inject stale|lost-write|hole makes exporters break the protocol on
 * purpose (confirm a generation without writing it, drop attacher writes,
 * confirm an munmap that did not happen): the oracle must then fail, which
 * is how it was validated.
 *
 * Exit status: 0 passed, 1 failed, 2 usage, 3 hang, 77 no /dev/xpmem (only
 * when neither XPMEM_REQUIRE_DEVICE nor CI is set).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/mempolicy.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
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

#ifndef MADV_FREE
#define MADV_FREE 8
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define PAGE_SZ		4096UL
#define WORDS		(PAGE_SZ / 8)
#define SLOT_BASE	448			/* words [SLOT_BASE, WORDS): writer slots */
#define MAX_WRITERS	((int)(WORDS - SLOT_BASE))	/* 64 = MAX_PROCS * MAX_THREADS */
#define NBUF		2
#define NPAGES		16
#define NSEG		(2 * NBUF)		/* segment 2b: buffer b; 2b+1: part of it */
#define MAX_PROCS	8			/* per role */
#define MAX_THREADS	8
#define MAX_SLOTS	(2 * MAX_PROCS)
#define HUGE_SZ		(2UL << 20)
#define MAX_PERMITS	8
#define MAX_ATTS	16
#define ATT_MAX_PAGES	8
#define GRACE_S		10
#define MAX_PRINTED	20
#define EXIT_SIGNAL	86			/* a child took an unexpected signal */
#define CHILD_MARK	0xc4c4c4c4ULL		/* high half of a fork child's writes */
#define SLOT_MARK	0x5a5aULL

/* Page kinds; the state word is gen << 8 | kind << 1 | changing. */
enum kind { K_FILLED, K_LAZY, K_ZERO, K_RDONLY, K_PROTNONE, K_HOLE };
static const char *const kind_name[] = {
	"filled", "lazily freed", "zero", "read-only", "PROT_NONE", "unmapped",
};
#define ST(gen, kind, changing)	(((uint64_t)(gen) << 8) | ((uint64_t)(kind) << 1) | (changing))
#define ST_GEN(st)		((uint32_t)((st) >> 8))
#define ST_KIND(st)		((int)(((st) >> 1) & 0x7f))
#define ST_CHANGING(st)		((st) & 1)
#define KIND_WRITABLE(k)	((k) == K_FILLED || (k) == K_LAZY || (k) == K_ZERO)
#define KIND_NO_ACCESS(k)	((k) == K_PROTNONE || (k) == K_HOLE)

/* Life word of a process slot: incarnation * 4 + state. */
enum { L_STARTING, L_ALIVE, L_DYING, L_DEAD };
#define LIFE(inc, s)	((uint64_t)(inc) * 4 + (s))

enum role { EXPORTER, ATTACHER };

/* Operation kinds, counted in the final line. */
enum op {
	OP_IDLE,
	/* exporter */
	E_REFILL, E_REMAP, E_MUNMAP, E_MREMAP_IN, E_MREMAP_OUT, E_DONTNEED, E_FREE,
	E_PAGEOUT, E_HUGEPAGE, E_COLLAPSE, E_PROT_RO, E_PROT_NONE, E_PROT_RW,
	E_MIGRATE, E_VERIFY, E_MAKE, E_REMOVE, E_FORK,
	/* attacher */
	A_GET, A_RELEASE, A_ATTACH, A_ATTACH_POPULATE, A_ATTACH_FIXED, A_DETACH,
	A_READ, A_WRITE, A_MUNMAP, A_MREMAP, A_MPROTECT, A_MADVISE, A_FORK,
	/* both */
	X_EXIT, X_KILL,
	OP_NR,
	/* weight-table aliases, resolved when chosen */
	E_SEG = OP_NR, A_ATTACH_ANY,
};
static const char *const op_name[OP_NR] = {
	[OP_IDLE] = "idle",
	[E_REFILL] = "refill", [E_REMAP] = "remap", [E_MUNMAP] = "munmap",
	[E_MREMAP_IN] = "mremap_in", [E_MREMAP_OUT] = "mremap_out",
	[E_DONTNEED] = "dontneed", [E_FREE] = "free", [E_PAGEOUT] = "pageout",
	[E_HUGEPAGE] = "hugepage", [E_COLLAPSE] = "collapse", [E_PROT_RO] = "prot_ro",
	[E_PROT_NONE] = "prot_none", [E_PROT_RW] = "prot_rw", [E_MIGRATE] = "migrate",
	[E_VERIFY] = "verify", [E_MAKE] = "make", [E_REMOVE] = "remove",
	[E_FORK] = "exp_fork",
	[A_GET] = "get", [A_RELEASE] = "release", [A_ATTACH] = "attach",
	[A_ATTACH_POPULATE] = "attach_populate", [A_ATTACH_FIXED] = "attach_fixed",
	[A_DETACH] = "detach", [A_READ] = "read", [A_WRITE] = "write",
	[A_MUNMAP] = "att_munmap", [A_MREMAP] = "att_mremap", [A_MPROTECT] = "att_mprotect",
	[A_MADVISE] = "att_madvise", [A_FORK] = "att_fork",
	[X_EXIT] = "exit", [X_KILL] = "kill",
};

/* Weights per 10000 operations of a role. */
struct weight {
	int op, w;
};
static const struct weight ex_weights[] = {
	{ E_REFILL, 1300 }, { E_REMAP, 700 }, { E_MUNMAP, 500 }, { E_MREMAP_IN, 500 },
	{ E_MREMAP_OUT, 350 }, { E_DONTNEED, 600 }, { E_FREE, 600 }, { E_PAGEOUT, 400 },
	{ E_HUGEPAGE, 60 }, { E_COLLAPSE, 60 }, { E_PROT_RO, 400 }, { E_PROT_NONE, 400 },
	{ E_PROT_RW, 500 }, { E_MIGRATE, 200 }, { E_VERIFY, 1500 }, { E_SEG, 400 },
	{ E_FORK, 20 }, { X_EXIT, 3 }, { X_KILL, 3 },
};
static const struct weight at_weights[] = {
	{ A_GET, 300 }, { A_RELEASE, 150 }, { A_ATTACH_ANY, 400 }, { A_DETACH, 250 },
	{ A_READ, 4000 }, { A_WRITE, 2500 }, { A_MUNMAP, 150 }, { A_MREMAP, 150 },
	{ A_MPROTECT, 200 }, { A_MADVISE, 150 }, { A_FORK, 10 }, { X_EXIT, 3 },
	{ X_KILL, 3 },
};

/* What the oracle checked and what it accepted; printed at the end. */
enum sstat {
	S_STRICT_READS, S_STRICT_WRITES, S_REQUIRED_SIGBUS, S_RACE_READS,
	S_RACE_SIGBUS, S_LENIENT_ACCESSES, S_LATE_READS, S_EXPECTED_SIGSEGV,
	S_OWN_SLOT_CHECKS, S_LOST_WRITE_CHECKS, S_VERIFIED_PAGES, S_BUSY,
	S_RESTARTS, S_FORK_CHILDREN, S_ATT_MADV_REFUSED, S_ATT_MREMAP_REFUSED,
	S_COLLAPSE_OK, S_COLLAPSE_FAILED, S_MIGRATE_OK, S_MIGRATE_FAILED,
	S_ATTACH_ENOENT, S_GET_ENOENT, S_ORPHANS,
	S_NR
};
static const char *const stat_name[S_NR] = {
	[S_STRICT_READS] = "strict_reads", [S_STRICT_WRITES] = "strict_writes",
	[S_REQUIRED_SIGBUS] = "required_sigbus", [S_RACE_READS] = "race_accesses",
	[S_RACE_SIGBUS] = "race_sigbus", [S_LENIENT_ACCESSES] = "lenient_accesses",
	[S_LATE_READS] = "late_reads", [S_EXPECTED_SIGSEGV] = "expected_sigsegv",
	[S_OWN_SLOT_CHECKS] = "own_slot_checks", [S_LOST_WRITE_CHECKS] = "lost_write_checks",
	[S_VERIFIED_PAGES] = "verified_pages", [S_BUSY] = "busy",
	[S_RESTARTS] = "restarts", [S_FORK_CHILDREN] = "fork_children",
	[S_ATT_MADV_REFUSED] = "att_madvise_refused", [S_ATT_MREMAP_REFUSED] = "att_mremap_refused",
	[S_COLLAPSE_OK] = "collapse_ok", [S_COLLAPSE_FAILED] = "collapse_failed",
	[S_MIGRATE_OK] = "migrate_ok", [S_MIGRATE_FAILED] = "migrate_failed",
	[S_ATTACH_ENOENT] = "attach_enoent", [S_GET_ENOENT] = "get_enoent",
	[S_ORPHANS] = "orphans_reaped",
};

enum inject { INJ_NONE, INJ_STALE, INJ_LOST_WRITE, INJ_HOLE };

/* ------------------------------------------------------------ shared state */

struct tstat {
	_Atomic uint64_t done;		/* operations started */
	_Atomic int op;			/* current operation */
	_Atomic uint64_t op_ns;		/* since when */
	_Atomic int tid;
};

struct pslot {
	_Atomic uint64_t life;
	_Atomic int pid;		/* written by the process itself */
	_Atomic uint64_t reap_ns;	/* when the supervisor last reaped it */
	struct tstat t[MAX_THREADS];
};

struct segslot {
	_Atomic uint64_t seq;		/* even: stable; odd: being made/removed */
	_Atomic int64_t segid;		/* 0: none */
	_Atomic uint32_t start, npages;	/* in pages of the buffer */
};

struct pagerec {
	_Atomic uint64_t st;
	_Atomic uint64_t lastw[MAX_WRITERS];	/* gen << 32 | seq, published writes */
};

struct exshared {
	struct segslot seg[NSEG];
	struct pagerec page[NBUF][NPAGES];
};

struct shared {
	_Atomic int stop;
	_Atomic uint64_t failures;
	_Atomic uint64_t unexpected;	/* unexpected signals and exits */
	_Atomic int first_set;
	char first[800];
	atomic_flag kinds_lock;
	int nkinds;
	struct {
		char key[56];
		uint64_t n;
	} kinds[32];
	_Atomic uint64_t count[OP_NR];
	_Atomic uint64_t op_time[OP_NR];	/* ns spent, by the kind set last */
	_Atomic uint64_t stat[S_NR];
	_Atomic uint64_t wseq[MAX_WRITERS];
	struct pslot slot[MAX_SLOTS];
	struct exshared ex[MAX_PROCS];
};

static struct shared *sh;

static struct config {
	uint64_t seed, ops;
	int procs, threads, numa_nodes;
	unsigned int duration, watchdog;
	bool soak, keep_going, populate;
	bool off[OP_NR + 2];		/* --without: operations never chosen */
	enum inject inject;
} cfg = {
	.ops = 100000, .procs = 2, .threads = 2, .watchdog = 120,
};

static pid_t supervisor_pid;
static bool no_populate;		/* --without populate */

/* Per-thread context. */
struct ctx {
	int slot, idx, t, writer;
	enum role role;
	uint32_t inc;
	uint64_t rng[4];
	uint64_t opno;
};

static int nslots(void)
{
	return 2 * cfg.procs;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void stat_inc(enum sstat s)
{
	atomic_fetch_add(&sh->stat[s], 1);
}

/* Operations this thread actually performed (a choice may find nothing to do). */
static _Thread_local uint64_t tl_did;

static void count_op(enum op op)
{
	tl_did++;
	atomic_fetch_add(&sh->count[op], 1);
}

/* ------------------------------------------------------------ randomness */

static uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
static uint64_t rnd64(struct ctx *c)
{
	uint64_t *s = c->rng, r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

static uint32_t rnd(struct ctx *c, uint32_t n)
{
	return n ? (uint32_t)(rnd64(c) % n) : 0;
}

static void rng_seed(struct ctx *c, uint64_t a, uint64_t b, uint64_t d)
{
	uint64_t x = mix64(cfg.seed ^ mix64(a ^ mix64(b ^ mix64(d))));

	for (int i = 0; i < 4; i++)
		c->rng[i] = x = mix64(x + (uint64_t)i);
}

static int weight_of(const struct weight *w)
{
	return cfg.off[w->op] ? 0 : w->w;
}

static int pick(struct ctx *c, const struct weight *w, size_t n)
{
	int total = 0, r;

	for (size_t i = 0; i < n; i++)
		total += weight_of(&w[i]);
	r = (int)rnd(c, (uint32_t)total);
	for (size_t i = 0; i < n; i++) {
		if (r < weight_of(&w[i]))
			return w[i].op;
		r -= weight_of(&w[i]);
	}
	return w[n - 1].op;
}

/* ------------------------------------------------------------ patterns */

static uint64_t pat(int e, int b, int p, int w, uint32_t gen)
{
	uint64_t h = mix64(((uint64_t)e << 56) ^ ((uint64_t)b << 48) ^ ((uint64_t)p << 40) ^
			   ((uint64_t)w << 24) ^ ((uint64_t)gen * 0x100000001b3ULL));

	return ((uint64_t)gen << 32) | (uint32_t)h;
}

static bool pat_valid(int e, int b, int p, int w, uint64_t v)
{
	uint32_t g = (uint32_t)(v >> 32);

	return g && v == pat(e, b, p, w, g);
}

static uint64_t slotval(int k, uint32_t seq)
{
	return (SLOT_MARK << 48) | ((uint64_t)k << 40) | seq;
}

/* A value in writer @k's slot: 0 or one of its writes, none from the future. */
static bool slot_valid(int k, uint64_t v)
{
	if (!v)
		return true;
	return (v >> 48) == SLOT_MARK && ((v >> 40) & 0xff) == (uint64_t)k &&
	       (uint32_t)v <= atomic_load(&sh->wseq[k]) && !((v >> 32) & 0xff);
}

static void fill_page(uint64_t *pg, int e, int b, int p, uint32_t gen)
{
	for (int w = 0; w < SLOT_BASE; w++)
		pg[w] = pat(e, b, p, w, gen);
	for (int w = SLOT_BASE; w < (int)WORDS; w++)
		pg[w] = 0;
}

static const char *describe(char *buf, size_t n, int e, int b, int p, int w, uint64_t v)
{
	if (!v)
		snprintf(buf, n, "0");
	else if (w < SLOT_BASE && pat_valid(e, b, p, w, v))
		snprintf(buf, n, "%#" PRIx64 " (generation %u)", v, (uint32_t)(v >> 32));
	else if ((v >> 32) == CHILD_MARK)
		snprintf(buf, n, "%#" PRIx64 " (written by an exporter's fork child into its COW copy)", v);
	else if ((v >> 48) == SLOT_MARK)
		snprintf(buf, n, "%#" PRIx64 " (writer %u seq %u)", v, (unsigned int)((v >> 40) & 0xff),
			 (uint32_t)v);
	else
		snprintf(buf, n, "%#" PRIx64 " (not this page's data)", v);
	return buf;
}

static const char *describe_st(char *buf, size_t n, uint64_t st)
{
	if (ST_CHANGING(st))
		snprintf(buf, n, "changing to gen %u (was %s)", ST_GEN(st), kind_name[ST_KIND(st) % 6]);
	else
		snprintf(buf, n, "%s gen %u", kind_name[ST_KIND(st) % 6], ST_GEN(st));
	return buf;
}

/* ------------------------------------------------------------ failures */

static const char *role_name(enum role r)
{
	return r == EXPORTER ? "exporter" : "attacher";
}

static void record_failure(const char *msg, size_t n)
{
	int zero = 0;

	if (atomic_compare_exchange_strong(&sh->first_set, &zero, 1)) {
		size_t m = n < sizeof(sh->first) - 1 ? n : sizeof(sh->first) - 1;

		memcpy(sh->first, msg, m);
		if (m && sh->first[m - 1] == '\n')
			m--;
		sh->first[m] = 0;
	}
	if (write(2, msg, n) < 0)
		return;
}

/*
 * Count a failure under its kind: the message up to its first ':' or ';',
 * digits folded. Returns true the first time a kind is seen.
 */
static bool failure_kind(const char *text)
{
	char key[56];
	size_t i;
	bool first = false;
	int k;

	for (i = 0; i < sizeof(key) - 1 && text[i] && text[i] != ':' && text[i] != ';'; i++)
		key[i] = text[i] >= '0' && text[i] <= '9' ? '#' : text[i];
	key[i] = 0;
	/*
	 * A process can be SIGKILLed while it holds this lock: do not wait
	 * for ever. Not counted then, but printed.
	 */
	for (long spins = 0; atomic_flag_test_and_set(&sh->kinds_lock); spins++)
		if (spins > 100000000L)
			return true;
	for (k = 0; k < sh->nkinds && strcmp(sh->kinds[k].key, key); k++)
		;
	if (k == sh->nkinds && k < (int)(sizeof(sh->kinds) / sizeof(sh->kinds[0]))) {
		memcpy(sh->kinds[k].key, key, sizeof(key));
		sh->nkinds++;
		first = true;
	}
	if (k < sh->nkinds)
		sh->kinds[k].n++;
	atomic_flag_clear(&sh->kinds_lock);
	return first;
}

__attribute__((format(printf, 2, 3)))
static void failf(const struct ctx *c, const char *fmt, ...)
{
	char msg[1024], who[96];
	uint64_t nth = atomic_fetch_add(&sh->failures, 1);
	va_list ap;
	int n, h;

	if (!cfg.keep_going)
		atomic_store(&sh->stop, 1);
	if (c && c->t < 0)
		snprintf(who, sizeof(who), "%s %d main thread inc %u", role_name(c->role), c->idx, c->inc);
	else if (c)
		snprintf(who, sizeof(who), "%s %d thread %d inc %u op %" PRIu64, role_name(c->role),
			 c->idx, c->t, c->inc, c->opno);
	h = n = snprintf(msg, sizeof(msg), "xpmem-stress: FAIL (seed %" PRIu64 ")%s%s%s: ", cfg.seed,
			 c ? " [" : "", c ? who : "", c ? "]" : "");
	va_start(ap, fmt);
	n += vsnprintf(msg + n, sizeof(msg) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	/* Every kind is printed once at least; the rest up to MAX_PRINTED. */
	if (!failure_kind(msg + h) && nth >= MAX_PRINTED)
		return;
	if (n > (int)sizeof(msg) - 2)
		n = (int)sizeof(msg) - 2;
	msg[n++] = '\n';
	record_failure(msg, (size_t)n);
}

/* ------------------------------------------------------------ guarded access */

/*
 * SIGBUS and SIGSEGV are expected only inside these accessors, which arm a
 * per-thread jump buffer. SA_NODEFER keeps the signal unblocked, so the
 * jump needs no signal mask restore (no system call per access).
 */
static _Thread_local sigjmp_buf *tl_jmp;
static _Thread_local volatile sig_atomic_t tl_armed;
static _Thread_local void *volatile tl_fault_addr;
static _Thread_local volatile int tl_fault_code;
static _Thread_local const struct ctx *tl_ctx;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	char msg[256];
	int n;

	(void)uc;
	if (tl_armed) {
		tl_armed = 0;
		tl_fault_addr = si->si_addr;
		tl_fault_code = si->si_code;
		siglongjmp(*tl_jmp, sig);
	}
	atomic_fetch_add(&sh->unexpected, 1);
	n = snprintf(msg, sizeof(msg),
		     "xpmem-stress: FAIL (seed %" PRIu64 ") [%s %d thread %d]: unexpected %s at %p outside any guarded access\n",
		     cfg.seed, tl_ctx ? role_name(tl_ctx->role) : "process", tl_ctx ? tl_ctx->idx : -1,
		     tl_ctx ? tl_ctx->t : -1, sig == SIGBUS ? "SIGBUS" : "SIGSEGV", si->si_addr);
	atomic_fetch_add(&sh->failures, 1);
	record_failure(msg, (size_t)n);
	_exit(EXIT_SIGNAL);
}

static void install_fault_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}

static const char *segv_code(int code)
{
	return code == SEGV_MAPERR ? "SEGV_MAPERR" : code == SEGV_ACCERR ? "SEGV_ACCERR" : "other si_code";
}

/* The /proc/self/maps line that holds @addr, for a failure report. */
static char *describe_mapping(char *buf, size_t len, const void *addr)
{
	uintptr_t a = (uintptr_t)addr;
	char line[256];
	FILE *f = fopen("/proc/self/maps", "re");

	snprintf(buf, len, "in no mapping");
	if (!f)
		return buf;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi) {
			line[strcspn(line, "\n")] = 0;
			snprintf(buf, len, "%.200s", line);
			break;
		}
	}
	fclose(f);
	return buf;
}

/* Load @n words pg[widx[i]] into out[]; returns 0 or the signal taken. */
static int g_read(const volatile uint64_t *pg, const int *widx, int n, volatile uint64_t *out,
		  int *done)
{
	sigjmp_buf jb;
	volatile int i = 0;
	int sig;

	tl_jmp = &jb;
	sig = sigsetjmp(jb, 0);
	if (!sig) {
		tl_armed = 1;
		for (; i < n; i++)
			out[i] = pg[widx[i]];
		tl_armed = 0;
	}
	*done = i;
	return sig;
}

/* Store @v at @p and load it back. *stage: 0 nothing done, 1 stored, 2 both. */
static int g_write(volatile uint64_t *p, uint64_t v, volatile uint64_t *back, int *stage)
{
	sigjmp_buf jb;
	volatile int st = 0;
	int sig;

	tl_jmp = &jb;
	sig = sigsetjmp(jb, 0);
	if (!sig) {
		tl_armed = 1;
		*p = v;
		st = 1;
		*back = *p;
		st = 2;
		tl_armed = 0;
	}
	*stage = st;
	return sig;
}

/* ------------------------------------------------------------ processes */

static struct pslot *my_slot(const struct ctx *c)
{
	return &sh->slot[c->slot];
}

static void set_op(const struct ctx *c, enum op op)
{
	struct tstat *ts;

	if (c->t < 0)
		return;		/* the process's main thread: set-up and final check */
	ts = &my_slot(c)->t[c->t];
	atomic_store(&ts->op_ns, now_ns());
	atomic_store(&ts->op, (int)op);
}

/* Exit on purpose: announce it (alive -> dying) so that it is expected. */
static void op_exit(struct ctx *c)
{
	struct pslot *ps = my_slot(c);
	uint64_t l = atomic_load(&ps->life);

	if ((l & 3) != L_ALIVE || !atomic_compare_exchange_strong(&ps->life, &l, l + 1))
		return;		/* someone is killing us already */
	count_op(X_EXIT);
	_exit(0);
}

/* SIGKILL a random peer (the supervisor restarts it). */
static void op_kill(struct ctx *c)
{
	int v = (int)rnd(c, (uint32_t)nslots() - 1);
	struct pslot *ps;
	uint64_t l;
	pid_t pid;

	if (v >= c->slot)
		v++;
	ps = &sh->slot[v];
	l = atomic_load(&ps->life);
	if ((l & 3) != L_ALIVE)
		return;
	pid = atomic_load(&ps->pid);
	if (pid <= 0 || !atomic_compare_exchange_strong(&ps->life, &l, l + 1))
		return;
	count_op(X_KILL);
	if (kill(pid, SIGKILL))
		failf(c, "kill(%d, SIGKILL) of %s %d: %s", (int)pid,
		      v < cfg.procs ? "exporter" : "attacher", v % cfg.procs, strerror(errno));
}

/* Wait for a fork child; it must exit with status 0. */
static void reap_fork_child(struct ctx *c, pid_t pid, const char *what)
{
	int status;

	stat_inc(S_FORK_CHILDREN);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			failf(c, "waitpid for the %s fork child: %s", what, strerror(errno));
			return;
		}
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 10)
		failf(c, "%s fork child read data through an attachment of its parent: attachments must not be inherited by fork", what);
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 11)
		failf(c, "%s fork child took SIGBUS touching an attachment of its parent: the attachment was inherited by fork (expected SIGSEGV)", what);
	else if (WIFEXITED(status))
		failf(c, "%s fork child exited with status %d", what, WEXITSTATUS(status));
	else
		failf(c, "%s fork child killed by signal %d", what, WTERMSIG(status));
}

/* ------------------------------------------------------------ exporter */

static struct {
	char *buf[NBUF];
	char *stage;			/* one page per thread, normally PROT_NONE */
	atomic_flag plock[NBUF][NPAGES];
	atomic_flag slock[NSEG];
} ex;

static struct exshared *X(const struct ctx *c)
{
	return &sh->ex[c->idx];
}

static char *page_addr(int b, int p)
{
	return ex.buf[b] + (size_t)p * PAGE_SZ;
}

static void ex_verify_page(struct ctx *c, int b, int p, bool final)
{
	struct pagerec *pr = &X(c)->page[b][p];
	uint64_t st = atomic_load(&pr->st);
	int k = ST_KIND(st), e = c->idx;
	uint32_t g = ST_GEN(st);
	uint64_t *pg = (uint64_t *)page_addr(b, p);
	char d1[160];

	if (ST_CHANGING(st)) {
		failf(c, "page %d/%d is changing while its lock is held", b, p);
		return;
	}
	if (KIND_NO_ACCESS(k))
		return;
	stat_inc(S_VERIFIED_PAGES);
	if (cfg.inject == INJ_LOST_WRITE && KIND_WRITABLE(k) && !final && !rnd(c, 3))
		memset(pg + SLOT_BASE, 0, (WORDS - SLOT_BASE) * 8);
	for (int w = 0; w < SLOT_BASE; w++) {
		uint64_t v = ((volatile uint64_t *)pg)[w], want = pat(e, b, p, w, g);
		bool ok = k == K_ZERO ? v == 0 : k == K_LAZY ? (v == want || v == 0) : v == want;

		if (!ok) {
			failf(c, "exporter's own %s page %d/%d (gen %u) word %d holds %s, expected %s",
			      kind_name[k], b, p, g, w, describe(d1, sizeof(d1), e, b, p, w, v),
			      k == K_ZERO ? "0" : "its generation's pattern");
			break;
		}
	}
	for (int k2 = 0; k2 < MAX_WRITERS; k2++) {
		uint64_t lw = atomic_load(&pr->lastw[k2]);
		uint64_t v = ((volatile uint64_t *)pg)[SLOT_BASE + k2];

		if (!slot_valid(k2, v)) {
			failf(c, "exporter's page %d/%d (%s gen %u) slot of writer %d holds %s", b, p,
			      kind_name[k], g, k2,
			      describe(d1, sizeof(d1), e, b, p, SLOT_BASE + k2, v));
			continue;
		}
		if ((uint32_t)(lw >> 32) != g)
			continue;
		stat_inc(S_LOST_WRITE_CHECKS);
		if ((uint32_t)v < (uint32_t)lw)
			failf(c, "lost write: writer %d wrote seq %u through an attachment into %s page %d/%d at gen %u (read back and published), the exporter's page now holds %s",
			      k2, (uint32_t)lw, kind_name[k], b, p, g,
			      describe(d1, sizeof(d1), e, b, p, SLOT_BASE + k2, v));
	}
}

/* Something failed half-way: make the page a plain filled one again. */
static uint64_t ex_recover(struct ctx *c, int b, int p, uint32_t g)
{
	char *a = page_addr(b, p);

	if (mmap(a, PAGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != a) {
		failf(c, "cannot recover page %d/%d: mmap: %s", b, p, strerror(errno));
		atomic_store(&sh->stop, 1);
		return ST(g, K_HOLE, 1);
	}
	fill_page((uint64_t *)a, c->idx, b, p, g);
	return ST(g, K_FILLED, 0);
}

/* A page transition: state "changing, G+1", change, confirm. Page lock held. */
static void ex_page_change(struct ctx *c, int op, int b, int p)
{
	struct pagerec *pr = &X(c)->page[b][p];
	uint64_t st = atomic_load(&pr->st), nst = 0;
	int k = ST_KIND(st), e = c->idx;
	uint32_t g = ST_GEN(st) + 1;
	char *a = page_addr(b, p), *s = ex.stage + (size_t)c->t * PAGE_SZ;
	const char *what = NULL;
	bool rw = KIND_WRITABLE(k);

	/* Turn the wish into something this page's state allows. */
	switch (op) {
	case E_MUNMAP:
	case E_MREMAP_OUT:
	case E_PROT_NONE:
		if (k == K_HOLE)
			op = E_REMAP;
		break;
	case E_DONTNEED:
	case E_FREE:
	case E_PROT_RO:
		if (k == K_HOLE)
			op = E_MREMAP_IN;
		else if (!rw)
			op = E_PROT_RW;
		break;
	case E_PROT_RW:
	case E_REFILL:
		if (k == K_HOLE)
			op = E_REMAP;
		else if (rw)
			op = E_REFILL;
		else
			op = E_PROT_RW;
		break;
	}
	count_op((enum op)op);
	set_op(c, (enum op)op);
	atomic_store(&pr->st, ST(g, k, 1));

	switch (op) {
	case E_REFILL:
		if (cfg.inject != INJ_STALE || rnd(c, 2))
			fill_page((uint64_t *)a, e, b, p, g);
		nst = ST(g, K_FILLED, 0);
		break;
	case E_REMAP:
		if (mmap(a, PAGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			 -1, 0) != a) {
			what = "mmap";
			break;
		}
		fill_page((uint64_t *)a, e, b, p, g);
		nst = ST(g, K_FILLED, 0);
		break;
	case E_MUNMAP:
		if ((cfg.inject != INJ_HOLE || rnd(c, 2)) && munmap(a, PAGE_SZ)) {
			what = "munmap";
			break;
		}
		nst = ST(g, K_HOLE, 0);
		break;
	case E_MREMAP_IN:
		if (mmap(s, PAGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			 -1, 0) != s) {
			what = "mmap (staging page)";
			break;
		}
		fill_page((uint64_t *)s, e, b, p, g);
		if (mremap(s, PAGE_SZ, PAGE_SZ, MREMAP_MAYMOVE | MREMAP_FIXED, a) != a) {
			what = "mremap (into the buffer)";
			break;
		}
		if (mmap(s, PAGE_SZ, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != s) {
			what = "mmap (staging page back to PROT_NONE)";
			break;
		}
		nst = ST(g, K_FILLED, 0);
		break;
	case E_MREMAP_OUT:
		if (mremap(a, PAGE_SZ, PAGE_SZ, MREMAP_MAYMOVE | MREMAP_FIXED, s) != s) {
			what = "mremap (out of the buffer)";
			break;
		}
		if (mmap(s, PAGE_SZ, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != s) {
			what = "mmap (staging page back to PROT_NONE)";
			break;
		}
		nst = ST(g, K_HOLE, 0);
		break;
	case E_DONTNEED:
		if (madvise(a, PAGE_SZ, MADV_DONTNEED)) {
			what = "madvise(MADV_DONTNEED)";
			break;
		}
		nst = ST(g, K_ZERO, 0);
		break;
	case E_FREE:
		/* Written first, so that the page is dirty and its data known. */
		fill_page((uint64_t *)a, e, b, p, g);
		if (madvise(a, PAGE_SZ, MADV_FREE)) {
			what = "madvise(MADV_FREE)";
			break;
		}
		nst = ST(g, K_LAZY, 0);
		break;
	case E_PROT_RO:
		fill_page((uint64_t *)a, e, b, p, g);
		if (mprotect(a, PAGE_SZ, PROT_READ)) {
			what = "mprotect(PROT_READ)";
			break;
		}
		nst = ST(g, K_RDONLY, 0);
		break;
	case E_PROT_NONE:
		/*
		 * Filled first, so that what hides behind PROT_NONE is of this
		 * generation: a later PROT_RW shows it until it is refilled.
		 */
		if (!rw && mprotect(a, PAGE_SZ, PROT_READ | PROT_WRITE)) {
			what = "mprotect(PROT_READ|PROT_WRITE)";
			break;
		}
		fill_page((uint64_t *)a, e, b, p, g);
		if (mprotect(a, PAGE_SZ, PROT_NONE)) {
			what = "mprotect(PROT_NONE)";
			break;
		}
		nst = ST(g, K_PROTNONE, 0);
		break;
	case E_PROT_RW:
		if (mprotect(a, PAGE_SZ, PROT_READ | PROT_WRITE)) {
			what = "mprotect(PROT_READ|PROT_WRITE)";
			break;
		}
		fill_page((uint64_t *)a, e, b, p, g);
		nst = ST(g, K_FILLED, 0);
		break;
	default:
		what = "unknown page operation";
		break;
	}
	if (what) {
		failf(c, "%s of page %d/%d (%s): %s", what, b, p, kind_name[k], strerror(errno));
		nst = ex_recover(c, b, p, g);
	}
	atomic_store(&pr->st, nst);
}

static bool page_trylock(int b, int p)
{
	return !atomic_flag_test_and_set(&ex.plock[b][p]);
}

static void page_unlock(int b, int p)
{
	atomic_flag_clear(&ex.plock[b][p]);
}

static void ex_page_op(struct ctx *c, int op)
{
	for (int tries = 0; tries < 4; tries++) {
		int b = (int)rnd(c, NBUF), p = (int)rnd(c, NPAGES);

		if (!page_trylock(b, p))
			continue;
		if (op == E_VERIFY) {
			count_op(E_VERIFY);
			set_op(c, E_VERIFY);
			ex_verify_page(c, b, p, false);
		} else {
			ex_page_change(c, op, b, p);
		}
		page_unlock(b, p);
		return;
	}
}

/*
 * Map buffer 0's 2 MiB afresh, as one VMA of small pages (every page a
 * transition), so that the MADV_COLLAPSE after it has something to
 * collapse: by then page operations have usually split the range into
 * VMAs that cannot be collapsed. Only if no page of it is busy.
 */
static void ex_renew_huge(struct ctx *c)
{
	uint32_t g[NPAGES];
	int p;

	for (p = 0; p < NPAGES; p++)
		if (!page_trylock(0, p))
			break;
	if (p < NPAGES) {
		while (p--)
			page_unlock(0, p);
		return;
	}
	for (p = 0; p < NPAGES; p++) {
		uint64_t st = atomic_load(&X(c)->page[0][p].st);

		g[p] = ST_GEN(st) + 1;
		atomic_store(&X(c)->page[0][p].st, ST(g[p], ST_KIND(st), 1));
	}
	if (mmap(ex.buf[0], HUGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0) != ex.buf[0]) {
		failf(c, "mmap of buffer 0 afresh: %s", strerror(errno));
		for (p = 0; p < NPAGES; p++)
			atomic_store(&X(c)->page[0][p].st, ex_recover(c, 0, p, g[p]));
	} else {
		(void)madvise(ex.buf[0], HUGE_SZ, MADV_NOHUGEPAGE);
		for (p = 0; p < NPAGES; p++)
			fill_page((uint64_t *)page_addr(0, p), c->idx, 0, p, g[p]);
		(void)madvise(ex.buf[0], HUGE_SZ, MADV_HUGEPAGE);
		for (p = 0; p < NPAGES; p++)
			atomic_store(&X(c)->page[0][p].st, ST(g[p], K_FILLED, 0));
	}
	for (p = 0; p < NPAGES; p++)
		page_unlock(0, p);
}

static void ex_seg_make(struct ctx *c, int j)
{
	struct segslot *s = &X(c)->seg[j];
	uint64_t q = atomic_load(&s->seq);
	uint32_t start = 0, n = NPAGES;
	xpmem_segid_t id;
	int b = j / 2;

	if (j & 1) {
		start = rnd(c, NPAGES);
		n = 1 + rnd(c, NPAGES - start);
	}
	count_op(E_MAKE);
	set_op(c, E_MAKE);
	atomic_store(&s->seq, q + 1);
	id = xpmem_make(page_addr(b, (int)start), n * PAGE_SZ, XPMEM_PERMIT_MODE, (void *)0600);
	if (id == -1) {
		failf(c, "xpmem_make of buffer %d pages %u+%u: %s", b, start, n, strerror(errno));
		id = 0;
	}
	atomic_store(&s->segid, id);
	atomic_store(&s->start, start);
	atomic_store(&s->npages, n);
	atomic_store(&s->seq, q + 2);
}

static void ex_seg_remove(struct ctx *c, int j)
{
	struct segslot *s = &X(c)->seg[j];
	uint64_t q = atomic_load(&s->seq);
	int64_t id = atomic_load(&s->segid);

	count_op(E_REMOVE);
	set_op(c, E_REMOVE);
	atomic_store(&s->seq, q + 1);
	if (xpmem_remove(id))
		failf(c, "xpmem_remove(%" PRId64 ") of a live segment: %s", id, strerror(errno));
	atomic_store(&s->segid, 0);
	atomic_store(&s->seq, q + 2);
}

static void ex_seg_op(struct ctx *c)
{
	int j = (int)rnd(c, NSEG);

	if (atomic_flag_test_and_set(&ex.slock[j]))
		return;
	if (atomic_load(&X(c)->seg[j].segid))
		ex_seg_remove(c, j);
	else
		ex_seg_make(c, j);
	atomic_flag_clear(&ex.slock[j]);
}

/* The child touches the buffers (reads, and writes into its COW copies). */
static void ex_fork(struct ctx *c)
{
	pid_t pid;

	count_op(E_FORK);
	set_op(c, E_FORK);
	pid = fork();
	if (pid < 0) {
		failf(c, "fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (int i = 0; i < 8; i++) {
			int b = (int)rnd(c, NBUF), p = (int)rnd(c, NPAGES), w = (int)rnd(c, SLOT_BASE);
			volatile uint64_t *pg = (volatile uint64_t *)page_addr(b, p);
			volatile uint64_t out, back;
			int done, stage;

			/* Any page may be in any state: faults are fine here. */
			g_read(pg, &w, 1, &out, &done);
			g_write(pg + w, (CHILD_MARK << 32) | ((uint64_t)p << 16) | (uint64_t)w, &back, &stage);
		}
		_exit(0);
	}
	reap_fork_child(c, pid, "exporter's");
}

static void ex_op(struct ctx *c)
{
	int op = pick(c, ex_weights, sizeof(ex_weights) / sizeof(ex_weights[0]));
	uint64_t did = tl_did;

	if (op == E_MIGRATE && cfg.numa_nodes < 2)
		op = E_PAGEOUT;
	switch (op) {
	case E_PAGEOUT: {
		int b = (int)rnd(c, NBUF);

		count_op(E_PAGEOUT);
		set_op(c, E_PAGEOUT);
		/* Content-preserving: no lock, the pages may be in any state. */
		(void)madvise(ex.buf[b], NPAGES * PAGE_SZ, MADV_PAGEOUT);
		break;
	}
	case E_HUGEPAGE:
		count_op(E_HUGEPAGE);
		set_op(c, E_HUGEPAGE);
		(void)madvise(ex.buf[0], HUGE_SZ, rnd(c, 2) ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
		break;
	case E_COLLAPSE:
		count_op(E_COLLAPSE);
		set_op(c, E_COLLAPSE);
		if (rnd(c, 2))
			ex_renew_huge(c);
		stat_inc(madvise(ex.buf[0], HUGE_SZ, MADV_COLLAPSE) ? S_COLLAPSE_FAILED : S_COLLAPSE_OK);
		break;
	case E_MIGRATE: {
		int b = (int)rnd(c, NBUF), p = (int)rnd(c, NPAGES);
		int node = (int)rnd(c, (uint32_t)cfg.numa_nodes), status = -1;
		void *addr = page_addr(b, p);

		count_op(E_MIGRATE);
		set_op(c, E_MIGRATE);
		if (syscall(SYS_move_pages, 0, 1UL, &addr, &node, &status, MPOL_MF_MOVE) == 0 &&
		    status >= 0)
			stat_inc(S_MIGRATE_OK);
		else
			stat_inc(S_MIGRATE_FAILED);
		break;
	}
	case E_SEG:
		ex_seg_op(c);
		break;
	case E_FORK:
		ex_fork(c);
		break;
	case X_EXIT:
		set_op(c, X_EXIT);
		op_exit(c);
		break;
	case X_KILL:
		set_op(c, X_KILL);
		op_kill(c);
		break;
	default:
		ex_page_op(c, op);
		break;
	}
	if (tl_did == did && !cfg.off[E_VERIFY])
		ex_page_op(c, E_VERIFY);
	if (tl_did == did)
		stat_inc(S_BUSY);
}

static void ex_setup(struct ctx *c)
{
	char *r = mmap(NULL, 4 * HUGE_SZ, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *h;

	if (r == MAP_FAILED) {
		failf(c, "mmap of the reservation: %s", strerror(errno));
		_exit(1);
	}
	/*
	 * Everything stays inside this reservation, so MAP_FIXED never hits
	 * anything else, and nothing but us maps here. The exporter calls no
	 * mmap(NULL) after this (threads are created below, before any hole).
	 */
	h = (char *)(((uintptr_t)r + HUGE_SZ - 1) & ~(HUGE_SZ - 1));
	ex.buf[0] = h;
	ex.buf[1] = h + HUGE_SZ;
	ex.stage = h + HUGE_SZ + 64 * PAGE_SZ;
	if (mmap(ex.buf[0], HUGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0) != ex.buf[0] ||
	    mmap(ex.buf[1], NPAGES * PAGE_SZ, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != ex.buf[1]) {
		failf(c, "mmap of the buffers: %s", strerror(errno));
		_exit(1);
	}
	if (rnd(c, 2))
		(void)madvise(ex.buf[0], HUGE_SZ, MADV_HUGEPAGE);
	for (int b = 0; b < NBUF; b++) {
		for (int p = 0; p < NPAGES; p++) {
			struct pagerec *pr = &X(c)->page[b][p];
			uint32_t g = ST_GEN(atomic_load(&pr->st)) + 1;

			atomic_flag_clear(&ex.plock[b][p]);
			atomic_store(&pr->st, ST(g, K_FILLED, 1));
			fill_page((uint64_t *)page_addr(b, p), c->idx, b, p, g);
			atomic_store(&pr->st, ST(g, K_FILLED, 0));
		}
	}
	for (int j = 0; j < NSEG; j++) {
		atomic_flag_clear(&ex.slock[j]);
		if (!(j & 1) || rnd(c, 2))
			ex_seg_make(c, j);
	}
}

static void ex_final(struct ctx *c)
{
	for (int b = 0; b < NBUF; b++)
		for (int p = 0; p < NPAGES; p++)
			ex_verify_page(c, b, p, true);
}

/* ------------------------------------------------------------ attacher */

struct permit {
	pthread_rwlock_t lock;
	bool used, rdwr;
	int e, j, b;
	xpmem_apid_t apid;
	uint64_t life, seq;		/* of the exporter and segment when got */
	uint32_t start, npages;		/* segment, in buffer pages */
};

struct att {
	pthread_rwlock_t lock;
	bool used, rdwr;
	int pi, e, j, b, prot;
	uint64_t life, seq;
	char *base;
	uint32_t npages, page0;		/* page0: buffer page of base */
	uint32_t mapped;		/* bit i: page i still mapped here */
};

static struct permit permits[MAX_PERMITS];
static struct att atts[MAX_ATTS];

struct snap {
	uint64_t life, seq, st;
};

static void snap_take(struct snap *s, int e, int j, int b, int p)
{
	atomic_thread_fence(memory_order_seq_cst);
	s->life = atomic_load(&sh->slot[e].life);
	s->seq = atomic_load(&sh->ex[e].seg[j].seq);
	s->st = atomic_load(&sh->ex[e].page[b][p].st);
	atomic_thread_fence(memory_order_seq_cst);
}

enum cls {
	C_STRICT,	/* all stable: exact answer */
	C_RANGE,	/* exporter alive at the start, something changed */
	C_LENIENT,	/* exporter dying, or dead within the grace */
	C_GONE,		/* segment removed or exporter reaped before: SIGBUS */
};

static enum cls classify(const struct att *A, const struct snap *s1, const struct snap *s2,
			 bool *late)
{
	*late = false;
	if (s1->life == A->life && s1->seq == A->seq) {
		if (s2->life == A->life && s2->seq == A->seq && s1->st == s2->st &&
		    !ST_CHANGING(s1->st))
			return C_STRICT;
		return C_RANGE;
	}
	if (s1->life == A->life)
		return s1->seq >= A->seq + 2 ? C_GONE : C_RANGE;
	if (s1->life == A->life + 1)
		return C_LENIENT;
	if (now_ns() - atomic_load(&sh->slot[A->e].reap_ns) > GRACE_S * 1000000000ULL)
		return C_GONE;
	*late = true;
	return C_LENIENT;
}

static const char *cls_name(enum cls c)
{
	static const char *const n[] = { "stable", "changing", "exporter dying", "removed/dead" };

	return n[c];
}

/*
 * Check one word read at buffer page (b, p) word w. @stable: the page state
 * did not change over the access; then its kind decides.
 */
static void check_word(struct ctx *c, const struct att *A, enum cls cl, const struct snap *s1,
		       const struct snap *s2, int p, int w, uint64_t v)
{
	int e = A->e, b = A->b, k = ST_KIND(s1->st);
	uint32_t g1 = ST_GEN(s1->st), g2 = ST_GEN(s2->st);
	bool stable = s1->st == s2->st && !ST_CHANGING(s1->st);
	char d1[160], d2[64], d3[64];
	const char *bad = NULL;

	describe_st(d2, sizeof(d2), s1->st);
	describe_st(d3, sizeof(d3), s2->st);
	if (w >= SLOT_BASE) {
		int k2 = w - SLOT_BASE;

		if (!slot_valid(k2, v)) {
			bad = "a writer slot holds a value that writer never wrote";
		} else if (stable && k2 == c->writer && cl != C_LENIENT) {
			uint64_t lw = atomic_load(&sh->ex[e].page[b][p].lastw[k2]);

			if ((uint32_t)(lw >> 32) == g1) {
				stat_inc(S_OWN_SLOT_CHECKS);
				if ((uint32_t)v < (uint32_t)lw)
					bad = "lost write: this thread's own earlier write (published) is gone";
			}
		}
	} else if (cl == C_LENIENT) {
		if (v && !pat_valid(e, b, p, w, v))
			bad = "not this page's data (exporter dying or dead)";
	} else if (stable) {
		uint64_t want = pat(e, b, p, w, g1);

		switch (k) {
		case K_FILLED:
		case K_RDONLY:
			if (v != want)
				bad = v && pat_valid(e, b, p, w, v) && (uint32_t)(v >> 32) < g1 ?
				      "stale read: an older generation of a stable page" :
				      "wrong value on a stable page";
			break;
		case K_LAZY:
			if (v != want && v)
				bad = pat_valid(e, b, p, w, v) && (uint32_t)(v >> 32) < g1 ?
				      "stale read: an older generation of a lazily freed page" :
				      "wrong value on a lazily freed page";
			break;
		case K_ZERO:
			if (v)
				bad = "stale read: data on a page the exporter zapped (MADV_DONTNEED)";
			break;
		default:
			bad = k == K_HOLE ?
			      "read succeeded on a page the exporter has unmapped (stale PTE)" :
			      "read succeeded on a page the exporter has made PROT_NONE";
			break;
		}
	} else if (v) {
		uint32_t g = (uint32_t)(v >> 32);

		/* "changing to G+1" still shows generation G until it is replaced. */
		if (!pat_valid(e, b, p, w, v))
			bad = "not this page's data (page changing)";
		else if (g < g1 - ST_CHANGING(s1->st))
			bad = "stale read: a generation older than the one confirmed before the read";
		else if (g > g2)
			bad = "a generation newer than the page's latest";
	}
	if (cl == C_GONE)
		bad = "read succeeded through an attachment of a removed segment or reaped exporter";
	if (bad)
		failf(c, "%s: exporter %d buffer %d page %d word %d read %s; page before the read: %s, after: %s; segment %s (attachment: permit %s, prot %d, life %" PRIu64 "/%" PRIu64 "->%" PRIu64 ", seq %" PRIu64 "/%" PRIu64 "->%" PRIu64 ")",
		      bad, e, b, p, w, describe(d1, sizeof(d1), e, b, p, w, v), d2, d3, cls_name(cl),
		      A->rdwr ? "RDWR" : "RDONLY", A->prot, A->life, s1->life, s2->life, A->seq,
		      s1->seq, s2->seq);
}

/* A SIGBUS on an access (read or write) of buffer page p; allowed? */
static void check_sigbus(struct ctx *c, const struct att *A, enum cls cl, const struct snap *s1,
			 const struct snap *s2, int p, bool write, const void *page)
{
	int k = ST_KIND(s1->st);
	bool stable = s1->st == s2->st && !ST_CHANGING(s1->st);
	char d2[64];

	if ((const char *)tl_fault_addr < (const char *)page ||
	    (const char *)tl_fault_addr >= (const char *)page + PAGE_SZ) {
		failf(c, "SIGBUS at %p, outside the page %p accessed", tl_fault_addr, page);
		return;
	}
	switch (cl) {
	case C_GONE:
		stat_inc(S_REQUIRED_SIGBUS);
		return;
	case C_LENIENT:
		stat_inc(S_RACE_SIGBUS);
		return;
	case C_RANGE:
		if (!stable) {
			stat_inc(S_RACE_SIGBUS);
			return;
		}
		break;
	case C_STRICT:
		break;
	}
	/* The page was stable throughout: its kind decides. */
	if (KIND_NO_ACCESS(k) || (write && k == K_RDONLY)) {
		stat_inc(S_REQUIRED_SIGBUS);
		return;
	}
	if (cl == C_RANGE) {
		/* The segment is going away meanwhile. */
		stat_inc(S_RACE_SIGBUS);
		return;
	}
	failf(c, "unexpected SIGBUS %s exporter %d buffer %d page %d: page %s throughout, segment live, exporter alive (permit %s, attachment prot %d)",
	      write ? "writing" : "reading", A->e, A->b, p, describe_st(d2, sizeof(d2), s1->st),
	      A->rdwr ? "RDWR" : "RDONLY", A->prot);
}

/* Attachment @A (read-locked), a random mapped page of it. */
static int att_pick_page(struct ctx *c, const struct att *A)
{
	int i, n = 0, want;

	for (i = 0; i < (int)A->npages; i++)
		n += (A->mapped >> i) & 1;
	if (!n)
		return -1;
	want = (int)rnd(c, (uint32_t)n);
	for (i = 0; i < (int)A->npages; i++)
		if (((A->mapped >> i) & 1) && want-- == 0)
			return i;
	return -1;
}

/* A used attachment, locked (read or write), preferring one whose prot has @prefer. */
static struct att *att_lock_random(struct ctx *c, bool wr, int prefer, bool need_mapped)
{
	int start = (int)rnd(c, MAX_ATTS);
	struct att *fallback = NULL;

	for (int n = 0; n < MAX_ATTS; n++) {
		struct att *A = &atts[(start + n) % MAX_ATTS];

		if ((wr ? pthread_rwlock_trywrlock(&A->lock) : pthread_rwlock_tryrdlock(&A->lock)))
			continue;
		if (A->used && (!need_mapped || A->mapped)) {
			if (prefer < 0 || (A->prot & prefer) == prefer)
				goto found;
			if (!fallback) {
				fallback = A;
				continue;
			}
		}
		pthread_rwlock_unlock(&A->lock);
		continue;
found:
		if (fallback)
			pthread_rwlock_unlock(&fallback->lock);
		return A;
	}
	return fallback;
}

static void at_read(struct ctx *c)
{
	struct att *A = att_lock_random(c, false, PROT_READ, true);
	volatile uint64_t out[8];
	int widx[8], i, p, n, sig;
	struct snap s1, s2;
	const volatile uint64_t *pg;
	enum cls cl;
	bool late;

	if (!A)
		return;
	count_op(A_READ);
	set_op(c, A_READ);
	i = att_pick_page(c, A);
	p = (int)A->page0 + i;
	pg = (const volatile uint64_t *)(A->base + (size_t)i * PAGE_SZ);
	for (int k = 0; k < 6; k++)
		widx[k] = (int)rnd(c, SLOT_BASE);
	widx[6] = SLOT_BASE + c->writer;
	widx[7] = SLOT_BASE + (int)rnd(c, MAX_WRITERS);
	if (A->prot == PROT_NONE) {
		sig = g_read(pg, widx, 1, out, &n);
		if (sig == SIGSEGV)
			stat_inc(S_EXPECTED_SIGSEGV);
		else
			failf(c, "read of a PROT_NONE attachment %s", sig ? "raised SIGBUS, expected SIGSEGV" : "succeeded");
		pthread_rwlock_unlock(&A->lock);
		return;
	}
	snap_take(&s1, A->e, A->j, A->b, p);
	sig = g_read(pg, widx, 8, out, &n);
	snap_take(&s2, A->e, A->j, A->b, p);
	cl = classify(A, &s1, &s2, &late);
	stat_inc(cl == C_STRICT ? S_STRICT_READS : cl == C_LENIENT ? S_LENIENT_ACCESSES : S_RACE_READS);
	if (late && n > 0)
		stat_inc(S_LATE_READS);
	for (int k = 0; k < n; k++)
		check_word(c, A, cl, &s1, &s2, p, widx[k], out[k]);
	if (sig == SIGBUS)
		check_sigbus(c, A, cl, &s1, &s2, p, false, (const void *)pg);
	else if (sig) {
		char where[256];

		failf(c, "SIGSEGV (%s) reading a readable attachment (exporter %d buffer %d page %d) at %p, page %p of %p+%u pages (mapped %#x); the address now: %s",
		      segv_code(tl_fault_code), A->e, A->b, p, tl_fault_addr, (const void *)pg,
		      (void *)A->base, A->npages, A->mapped,
		      describe_mapping(where, sizeof(where), tl_fault_addr));
	}
	pthread_rwlock_unlock(&A->lock);
}

static void at_write(struct ctx *c)
{
	struct att *A = att_lock_random(c, false, PROT_WRITE, true);
	struct snap s1, s2;
	volatile uint64_t *slot, back;
	int i, p, sig, stage, k = c->writer;
	uint32_t seq;
	uint64_t v;
	enum cls cl;
	bool late;
	char d1[160], d2[64];

	if (!A)
		return;
	count_op(A_WRITE);
	set_op(c, A_WRITE);
	i = att_pick_page(c, A);
	p = (int)A->page0 + i;
	slot = (volatile uint64_t *)(A->base + (size_t)i * PAGE_SZ) + SLOT_BASE + k;
	/* Counted before the store: no value in memory is ever above wseq. */
	seq = (uint32_t)atomic_fetch_add(&sh->wseq[k], 1) + 1;
	v = slotval(k, seq);
	if (A->prot != (PROT_READ | PROT_WRITE)) {
		/* The attachment's own protection forbids it: SIGSEGV, always. */
		sig = g_write(slot, v, &back, &stage);
		if (sig == SIGSEGV)
			stat_inc(S_EXPECTED_SIGSEGV);
		else
			failf(c, "write through a %s attachment (permit %s) %s", A->prot == PROT_NONE ? "PROT_NONE" : "read-only",
			      A->rdwr ? "RDWR" : "RDONLY", sig ? "raised SIGBUS, expected SIGSEGV" : "succeeded");
		pthread_rwlock_unlock(&A->lock);
		return;
	}
	snap_take(&s1, A->e, A->j, A->b, p);
	sig = g_write(slot, v, &back, &stage);
	snap_take(&s2, A->e, A->j, A->b, p);
	cl = classify(A, &s1, &s2, &late);
	if (sig == SIGBUS) {
		check_sigbus(c, A, cl, &s1, &s2, p, true, (const void *)((uintptr_t)slot & ~(PAGE_SZ - 1)));
	} else if (sig) {
		failf(c, "SIGSEGV writing a writable attachment (exporter %d buffer %d page %d)", A->e, A->b, p);
	} else {
		int kind = ST_KIND(s1.st);
		bool stable = s1.st == s2.st && !ST_CHANGING(s1.st);

		if (cl == C_GONE)
			failf(c, "write succeeded through an attachment of a removed segment or reaped exporter (exporter %d buffer %d page %d)",
			      A->e, A->b, p);
		else if ((cl == C_STRICT || cl == C_RANGE) && stable && !KIND_WRITABLE(kind))
			failf(c, "write succeeded through an attachment on exporter %d buffer %d page %d, which is %s",
			      A->e, A->b, p, describe_st(d2, sizeof(d2), s1.st));
		else if (cl == C_STRICT) {
			stat_inc(S_STRICT_WRITES);
			if (back != v)
				failf(c, "write through an attachment not seen by a read right after it: exporter %d buffer %d page %d (%s) slot %d wrote %#" PRIx64 ", read %s",
				      A->e, A->b, p, describe_st(d2, sizeof(d2), s1.st), k, v,
				      describe(d1, sizeof(d1), A->e, A->b, p, SLOT_BASE + k, back));
			else
				atomic_store(&sh->ex[A->e].page[A->b][p].lastw[k],
					     ((uint64_t)ST_GEN(s1.st) << 32) | seq);
		} else {
			stat_inc(cl == C_LENIENT ? S_LENIENT_ACCESSES : S_RACE_READS);
		}
	}
	pthread_rwlock_unlock(&A->lock);
}

static void at_get(struct ctx *c)
{
	uint32_t nseg = (uint32_t)cfg.procs * NSEG, first = rnd(c, nseg), x;
	struct permit *P = NULL;
	uint64_t life = 0, seq = 0, life2, seq2;
	uint32_t start = 0, npages = 0;
	int64_t segid = 0;
	struct segslot *s = NULL;
	xpmem_apid_t apid;
	int e = 0, j = 0;
	bool rdwr;

	/* The first live segment from a random place on. */
	for (x = 0; x < nseg; x++) {
		e = (int)((first + x) % nseg / NSEG);
		j = (int)((first + x) % NSEG);
		s = &sh->ex[e].seg[j];
		life = atomic_load(&sh->slot[e].life);
		seq = atomic_load(&s->seq);
		segid = atomic_load(&s->segid);
		start = atomic_load(&s->start);
		npages = atomic_load(&s->npages);
		if ((life & 3) == L_ALIVE && !(seq & 1) && segid && atomic_load(&s->seq) == seq)
			break;
	}
	if (x == nseg)
		return;
	for (int n = 0, i = (int)rnd(c, MAX_PERMITS); n < MAX_PERMITS; n++, i = (i + 1) % MAX_PERMITS) {
		if (pthread_rwlock_trywrlock(&permits[i].lock))
			continue;
		if (!permits[i].used) {
			P = &permits[i];
			break;
		}
		pthread_rwlock_unlock(&permits[i].lock);
	}
	if (!P)
		return;
	count_op(A_GET);
	set_op(c, A_GET);
	rdwr = rnd(c, 4) != 0;
	apid = xpmem_get(segid, rdwr ? XPMEM_RDWR : XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL);
	life2 = atomic_load(&sh->slot[e].life);
	seq2 = atomic_load(&s->seq);
	if (apid == -1) {
		if (errno == ENOENT && (life2 != life || seq2 != seq))
			stat_inc(S_GET_ENOENT);
		else
			failf(c, "xpmem_get(%" PRId64 ") of exporter %d segment %d, live throughout: %s",
			      segid, e, j, strerror(errno));
	} else {
		P->used = true;
		P->rdwr = rdwr;
		P->e = e;
		P->j = j;
		P->b = j / 2;
		P->apid = apid;
		P->life = life;
		P->seq = seq;
		P->start = start;
		P->npages = npages;
	}
	pthread_rwlock_unlock(&P->lock);
}

static void at_release_idx(struct ctx *c, int i)
{
	int locked[MAX_ATTS], nl = 0;
	struct permit *P = &permits[i];

	if (pthread_rwlock_trywrlock(&P->lock))
		return;
	if (!P->used)
		goto out;
	/* Releasing detaches its attachments: they must be ours to drop. */
	for (int a = 0; a < MAX_ATTS; a++) {
		if (pthread_rwlock_trywrlock(&atts[a].lock))
			goto busy;
		if (atts[a].used && atts[a].pi == i)
			locked[nl++] = a;
		else
			pthread_rwlock_unlock(&atts[a].lock);
		continue;
busy:
		for (int x = 0; x < nl; x++)
			pthread_rwlock_unlock(&atts[locked[x]].lock);
		goto out;
	}
	count_op(A_RELEASE);
	set_op(c, A_RELEASE);
	if (xpmem_release(P->apid))
		failf(c, "xpmem_release(%" PRId64 "): %s", P->apid, strerror(errno));
	P->used = false;
	for (int x = 0; x < nl; x++) {
		atts[locked[x]].used = false;
		pthread_rwlock_unlock(&atts[locked[x]].lock);
	}
out:
	pthread_rwlock_unlock(&P->lock);
}

static void at_release(struct ctx *c)
{
	at_release_idx(c, (int)rnd(c, MAX_PERMITS));
}

/* Has the permit's segment been removed, or its exporter reaped, for sure? */
static bool permit_dead(const struct permit *P)
{
	return atomic_load(&sh->slot[P->e].life) >= P->life + 2 ||
	       atomic_load(&sh->ex[P->e].seg[P->j].seq) >= P->seq + 2;
}

static void at_attach(struct ctx *c)
{
	int pi = (int)rnd(c, MAX_PERMITS), how = (int)rnd(c, 4), x;
	struct permit *P = NULL;
	struct att *A = NULL, *over = NULL;
	uint32_t page0, n, in_page, size, flags = 0;
	uint64_t l1, q1, l2, q2;
	struct xpmem_addr addr;
	enum op op = A_ATTACH;
	char *ret, *want = NULL;
	bool changed, gone;

	for (x = 0; x < MAX_PERMITS; x++, pi = (pi + 1) % MAX_PERMITS) {
		P = &permits[pi];
		if (pthread_rwlock_tryrdlock(&P->lock))
			continue;
		if (P->used)
			break;
		pthread_rwlock_unlock(&P->lock);
	}
	if (x == MAX_PERMITS) {
		if (!cfg.off[A_GET])
			at_get(c);
		return;
	}
	/* Mostly drop permits of dead segments rather than attach them. */
	if (permit_dead(P) && rnd(c, 4) && !cfg.off[A_RELEASE]) {
		pthread_rwlock_unlock(&P->lock);
		at_release_idx(c, pi);
		return;
	}
	if (how == 1 && cfg.populate) {
		op = A_ATTACH_POPULATE;
		flags = XPMEM_ATTACH_POPULATE;
	} else if (how == 2) {
		/* Over one of ours, at its address (MAP_FIXED replaces it). */
		over = att_lock_random(c, true, -1, true);
		if (over && over->mapped != (1U << over->npages) - 1) {
			pthread_rwlock_unlock(&over->lock);
			over = NULL;
		}
		if (over)
			op = A_ATTACH_FIXED;
	}
	for (int k = 0, s = (int)rnd(c, MAX_ATTS); k < MAX_ATTS; k++, s = (s + 1) % MAX_ATTS) {
		if (&atts[s] == over || pthread_rwlock_trywrlock(&atts[s].lock))
			continue;
		if (!atts[s].used) {
			A = &atts[s];
			break;
		}
		pthread_rwlock_unlock(&atts[s].lock);
	}
	if (!A)
		goto out;
	page0 = rnd(c, P->npages);
	n = 1 + rnd(c, P->npages - page0 < ATT_MAX_PAGES ? P->npages - page0 : ATT_MAX_PAGES);
	if (over) {
		if (n > over->npages)
			n = over->npages;
		want = over->base;
	}
	in_page = rnd(c, PAGE_SZ / 8) * 8;
	/* Any size that ends inside the n-th page. */
	size = n * PAGE_SZ - in_page - rnd(c, n == 1 ? PAGE_SZ - in_page : PAGE_SZ);
	addr.apid = P->apid;
	addr.offset = (off_t)page0 * (off_t)PAGE_SZ + in_page;
	count_op(op);
	set_op(c, op);
	l1 = atomic_load(&sh->slot[P->e].life);
	q1 = atomic_load(&sh->ex[P->e].seg[P->j].seq);
	ret = xpmem_ext_attach(addr, size, want, flags);
	l2 = atomic_load(&sh->slot[P->e].life);
	q2 = atomic_load(&sh->ex[P->e].seg[P->j].seq);
	changed = l1 != P->life || q1 != P->seq || l2 != P->life || q2 != P->seq;
	gone = l1 == P->life && q1 >= P->seq + 2;
	if (over) {
		/* Replaced or not, those pages are no longer known to be @over's. */
		over->mapped &= ~((1U << n) - 1);
	}
	if (ret == (char *)-1) {
		if (errno == ENOENT && changed)
			stat_inc(S_ATTACH_ENOENT);
		else
			failf(c, "xpmem_ext_attach(offset %#lx, size %u, %s, flags %#x) of exporter %d segment %d (live throughout): %s",
			      (unsigned long)addr.offset, size, want ? "fixed" : "anywhere", flags, P->e,
			      P->j, strerror(errno));
		pthread_rwlock_unlock(&A->lock);
		goto out;
	}
	if (gone)
		failf(c, "xpmem_ext_attach succeeded on a segment removed before the call (exporter %d segment %d)",
		      P->e, P->j);
	if (((uintptr_t)ret & (PAGE_SZ - 1)) != in_page || (want && ret != want + in_page))
		failf(c, "xpmem_ext_attach returned %p for offset %#lx%s%p", (void *)ret,
		      (unsigned long)addr.offset, want ? ", fixed at " : "", (void *)want);
	A->used = true;
	A->rdwr = P->rdwr;
	A->pi = pi;
	A->e = P->e;
	A->j = P->j;
	A->b = P->b;
	A->prot = P->rdwr ? PROT_READ | PROT_WRITE : PROT_READ;
	A->life = P->life;
	A->seq = P->seq;
	A->base = (char *)((uintptr_t)ret & ~(PAGE_SZ - 1));
	A->npages = n;
	A->page0 = P->start + page0;
	A->mapped = (1U << n) - 1;
	pthread_rwlock_unlock(&A->lock);
out:
	if (over)
		pthread_rwlock_unlock(&over->lock);
	pthread_rwlock_unlock(&P->lock);
}

static void at_detach(struct ctx *c)
{
	struct att *A = att_lock_random(c, true, -1, false);
	int i;

	if (!A)
		return;
	count_op(A_DETACH);
	set_op(c, A_DETACH);
	for (i = 0; i < (int)A->npages; i++)
		if ((A->mapped >> i) & 1)
			break;
	/* With nothing left mapped the driver has already dropped it. */
	if (i < (int)A->npages) {
		char *where = A->base + (size_t)i * PAGE_SZ + rnd(c, PAGE_SZ);

		if (xpmem_detach(where))
			failf(c, "xpmem_detach(%p) of a mapped attachment: %s", (void *)where, strerror(errno));
	}
	A->used = false;
	pthread_rwlock_unlock(&A->lock);
}

static void at_munmap(struct ctx *c)
{
	struct att *A = att_lock_random(c, true, -1, true);
	int i, m = 1;

	if (!A)
		return;
	count_op(A_MUNMAP);
	set_op(c, A_MUNMAP);
	i = att_pick_page(c, A);
	while (i + m < (int)A->npages && ((A->mapped >> (i + m)) & 1) && rnd(c, 2))
		m++;
	if (munmap(A->base + (size_t)i * PAGE_SZ, (size_t)m * PAGE_SZ))
		failf(c, "munmap of %d pages of an attachment: %s", m, strerror(errno));
	A->mapped &= ~(((1U << m) - 1) << i);
	pthread_rwlock_unlock(&A->lock);
}

static void at_mremap(struct ctx *c)
{
	struct att *A = att_lock_random(c, true, -1, true);
	size_t len;
	char *r, *dst;
	int how = (int)rnd(c, 3);

	if (!A)
		return;
	if (A->mapped != (1U << A->npages) - 1)
		goto out;
	count_op(A_MREMAP);
	set_op(c, A_MREMAP);
	len = A->npages * PAGE_SZ;
	if (how == 0 && A->npages > 1) {
		/* Shrink: the tail goes away, as with munmap. */
		r = mremap(A->base, len, len - PAGE_SZ, 0);
		if (r != A->base)
			failf(c, "mremap shrinking an attachment: %s", strerror(errno));
		A->mapped &= ~(1U << (A->npages - 1));
	} else if (how == 1) {
		/* Grow: VM_DONTEXPAND must refuse. */
		r = mremap(A->base, len, len + PAGE_SZ, MREMAP_MAYMOVE);
		if (r != MAP_FAILED) {
			failf(c, "mremap grew an attachment from %zu to %zu bytes", len, len + PAGE_SZ);
			A->base = r;
		} else {
			stat_inc(S_ATT_MREMAP_REFUSED);
		}
	} else {
		/* Move it whole to a new place. */
		dst = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (dst == MAP_FAILED) {
			failf(c, "mmap: %s", strerror(errno));
			goto out;
		}
		r = mremap(A->base, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
		if (r == dst) {
			A->base = dst;
		} else {
			stat_inc(S_ATT_MREMAP_REFUSED);
			/*
			 * A refused move may have unmapped dst already (the
			 * kernel clears the target before it checks the source:
			 * an attachment split into several VMAs is refused after
			 * that), and another thread's attach may have been
			 * placed in the hole since. So munmap(dst) could unmap
			 * that. If all of dst is free, take it back without
			 * replacing anything and unmap it; if any of it is
			 * mapped (our placeholder, still there, or someone
			 * else's mapping), leave it: a placeholder left costs
			 * only address space.
			 */
			if (mmap(dst, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
				 -1, 0) == dst)
				munmap(dst, len);
		}
	}
out:
	pthread_rwlock_unlock(&A->lock);
}

static void at_mprotect(struct ctx *c)
{
	struct att *A = att_lock_random(c, true, -1, true);
	static const int prots[] = { PROT_READ, PROT_READ | PROT_WRITE, PROT_NONE };
	int prot, i, r, err = 0;

	if (!A)
		return;
	count_op(A_MPROTECT);
	set_op(c, A_MPROTECT);
	prot = prots[rnd(c, 3)];
	/* Whole runs of mapped pages: attachment VMAs never merge back. */
	for (i = 0; i < (int)A->npages; i++) {
		int m = 0;

		while (i + m < (int)A->npages && ((A->mapped >> (i + m)) & 1))
			m++;
		if (!m)
			continue;
		r = mprotect(A->base + (size_t)i * PAGE_SZ, (size_t)m * PAGE_SZ, prot);
		if (r && !err)
			err = errno;
		if (!r && (prot & PROT_WRITE) && !A->rdwr)
			failf(c, "mprotect made an attachment of an RDONLY permit writable");
		i += m;
	}
	if ((prot & PROT_WRITE) && !A->rdwr) {
		if (err != EACCES)
			failf(c, "mprotect(PROT_WRITE) of an RDONLY permit's attachment: %s, expected EACCES",
			      err ? strerror(err) : "succeeded");
	} else if (err) {
		failf(c, "mprotect(%d) of an attachment: %s", prot, strerror(err));
	} else {
		A->prot = prot;
	}
	pthread_rwlock_unlock(&A->lock);
}

static void at_madvise(struct ctx *c)
{
	static const int advice[] = {
		MADV_DONTNEED, MADV_FREE, MADV_PAGEOUT, MADV_HUGEPAGE, MADV_COLLAPSE, MADV_DOFORK,
	};
	struct att *A = att_lock_random(c, false, -1, true);
	int i, adv;

	if (!A)
		return;
	count_op(A_MADVISE);
	set_op(c, A_MADVISE);
	i = att_pick_page(c, A);
	adv = advice[rnd(c, sizeof(advice) / sizeof(advice[0]))];
	if (madvise(A->base + (size_t)i * PAGE_SZ, PAGE_SZ, adv) == 0) {
		if (adv == MADV_DOFORK) {
			failf(c, "madvise(MADV_DOFORK) on an attachment succeeded; expected EINVAL");
			(void)madvise(A->base + (size_t)i * PAGE_SZ, PAGE_SZ, MADV_DONTFORK);
		}
	} else {
		stat_inc(S_ATT_MADV_REFUSED);
	}
	pthread_rwlock_unlock(&A->lock);
}

/* The child must find no attachment where its parent has one: SIGSEGV. */
static void at_fork(struct ctx *c)
{
	struct att *A = att_lock_random(c, false, -1, true);
	const volatile uint64_t *pg;
	pid_t pid;

	if (!A)
		return;
	count_op(A_FORK);
	set_op(c, A_FORK);
	pg = (const volatile uint64_t *)(A->base + (size_t)att_pick_page(c, A) * PAGE_SZ);
	pid = fork();
	if (pid == 0) {
		volatile uint64_t out;
		int w = 0, n, sig;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		sig = g_read(pg, &w, 1, &out, &n);
		_exit(sig == SIGSEGV ? 0 : sig == SIGBUS ? 11 : 10);
	}
	pthread_rwlock_unlock(&A->lock);
	if (pid < 0) {
		failf(c, "fork: %s", strerror(errno));
		return;
	}
	reap_fork_child(c, pid, "attacher's");
}

static void at_op(struct ctx *c)
{
	int op = pick(c, at_weights, sizeof(at_weights) / sizeof(at_weights[0]));
	uint64_t did = tl_did;

	switch (op) {
	case A_GET:
		at_get(c);
		break;
	case A_RELEASE:
		at_release(c);
		break;
	case A_ATTACH_ANY:
		at_attach(c);
		break;
	case A_DETACH:
		at_detach(c);
		break;
	case A_READ:
		at_read(c);
		break;
	case A_WRITE:
		at_write(c);
		break;
	case A_MUNMAP:
		at_munmap(c);
		break;
	case A_MREMAP:
		at_mremap(c);
		break;
	case A_MPROTECT:
		at_mprotect(c);
		break;
	case A_MADVISE:
		at_madvise(c);
		break;
	case A_FORK:
		at_fork(c);
		break;
	case X_EXIT:
		set_op(c, X_EXIT);
		op_exit(c);
		break;
	case X_KILL:
		set_op(c, X_KILL);
		op_kill(c);
		break;
	}
	/* Nothing to do it on: make something to work on next time. */
	if (tl_did == did && !cfg.off[A_ATTACH_ANY])
		at_attach(c);
	if (tl_did == did && !cfg.off[A_GET])
		at_get(c);
	if (tl_did == did)
		stat_inc(S_BUSY);
}

static void at_setup(void)
{
	for (int i = 0; i < MAX_PERMITS; i++)
		pthread_rwlock_init(&permits[i].lock, NULL);
	for (int i = 0; i < MAX_ATTS; i++)
		pthread_rwlock_init(&atts[i].lock, NULL);
}

/* ------------------------------------------------------------ workers */

/*
 * Shares of the operations: an attacher thread does ATT_SHARE times as
 * many as an exporter thread. Exporter operations are system calls that
 * invalidate attachments (about a millisecond under TCG); attacher
 * operations are mostly loads and stores, with a fault now and then.
 */
#define ATT_SHARE	3

static uint64_t share(int slot)
{
	return slot < cfg.procs ? 1 : ATT_SHARE;
}

static uint64_t total_shares(void)
{
	return (uint64_t)cfg.procs * (1 + ATT_SHARE) * (uint64_t)cfg.threads;
}

/* This thread's operations: --ops split by shares, the remainder spread. */
static uint64_t quota(int slot, int t)
{
	uint64_t unit = cfg.ops / total_shares(), rest = cfg.ops % total_shares(), before = 0;

	if (cfg.soak)
		return UINT64_MAX;
	for (int s = 0; s < slot; s++)
		before += share(s) * (uint64_t)cfg.threads;
	before += share(slot) * (uint64_t)t;
	/* The remainder's units go to the first shares. */
	return unit * share(slot) + (before < rest ? (rest - before < share(slot) ? rest - before : share(slot)) : 0);
}

/*
 * Keep every thread's progress, in its shares, within a few percent of
 * the average, so that cheap operations do not run out long before dear
 * ones and leave them to run alone.
 */
static void pace(const struct ctx *c, uint64_t mine)
{
	uint64_t w = share(c->slot);
	uint64_t slack = cfg.soak ? 500 : cfg.ops / total_shares() / 20 + 20;

	while (!atomic_load(&sh->stop)) {
		uint64_t sum = 0;

		for (int s = 0; s < nslots(); s++)
			for (int t = 0; t < cfg.threads; t++)
				sum += atomic_load(&sh->slot[s].t[t].done);
		if (mine <= w * (sum / total_shares() + slack))
			return;
		nanosleep(&(struct timespec){ .tv_nsec = 200000 }, NULL);
	}
}

static void *worker(void *arg)
{
	struct ctx *c = arg;
	struct tstat *ts = &my_slot(c)->t[c->t];
	uint64_t q = quota(c->slot, c->t), t0;
	int op;

	tl_ctx = c;
	atomic_store(&ts->tid, (int)syscall(SYS_gettid));
	while (!atomic_load(&sh->stop)) {
		uint64_t d = atomic_load(&ts->done);

		if (d >= q)
			break;
		if (!(d & 15))
			pace(c, d);
		atomic_store(&ts->done, d + 1);
		c->opno = d;
		t0 = now_ns();
		if (c->role == EXPORTER)
			ex_op(c);
		else
			at_op(c);
		op = atomic_load(&ts->op);
		atomic_fetch_add(&sh->op_time[op >= 0 && op < OP_NR ? op : OP_IDLE], now_ns() - t0);
		set_op(c, OP_IDLE);
	}
	return NULL;
}

static void child_main(int slot)
{
	struct pslot *ps = &sh->slot[slot];
	uint64_t life = atomic_load(&ps->life);
	struct ctx main_ctx, ctx[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	enum role role = slot < cfg.procs ? EXPORTER : ATTACHER;
	int idx = slot % cfg.procs;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != supervisor_pid)
		_exit(1);
	install_fault_handlers();
	memset(&main_ctx, 0, sizeof(main_ctx));
	main_ctx.slot = slot;
	main_ctx.idx = idx;
	main_ctx.role = role;
	main_ctx.inc = (uint32_t)(life >> 2);
	main_ctx.t = -1;
	main_ctx.writer = -1;
	tl_ctx = &main_ctx;
	rng_seed(&main_ctx, (uint64_t)slot, main_ctx.inc, 0xffff);
	atomic_store(&ps->pid, (int)getpid());
	if (role == EXPORTER)
		ex_setup(&main_ctx);
	else
		at_setup();
	for (int t = 0; t < cfg.threads; t++) {
		ctx[t] = main_ctx;
		ctx[t].t = t;
		ctx[t].writer = role == ATTACHER ? idx * cfg.threads + t : -1;
		rng_seed(&ctx[t], (uint64_t)slot, main_ctx.inc, (uint64_t)t);
		atomic_store(&ps->t[t].op, OP_IDLE);
	}
	/* Threads first: the exporter must not mmap(NULL) once it has holes. */
	for (int t = 0; t < cfg.threads; t++) {
		int err = pthread_create(&th[t], NULL, worker, &ctx[t]);

		if (err) {
			failf(&main_ctx, "pthread_create: %s", strerror(err));
			_exit(1);
		}
	}
	atomic_store(&ps->life, LIFE(main_ctx.inc, L_ALIVE));
	for (int t = 0; t < cfg.threads; t++)
		pthread_join(th[t], NULL);
	if (role == EXPORTER)
		ex_final(&main_ctx);
	life = LIFE(main_ctx.inc, L_ALIVE);
	if (!atomic_compare_exchange_strong(&ps->life, &life, life + 1)) {
		/*
		 * A peer has announced our kill: let it come. Its killer may
		 * itself die before sending it, so do not wait forever (dying
		 * and exit status 0 is an expected end as well).
		 */
		for (int i = 0; i < 100; i++)
			nanosleep(&(struct timespec){ .tv_nsec = 100000000 }, NULL);
	}
	_exit(0);
}

/* ------------------------------------------------------------ supervisor */

static pid_t spid[MAX_SLOTS];
static bool sup_hang;		/* the watchdog fired and killed everything */

static void start_child(int slot)
{
	pid_t pid = fork();

	if (pid < 0) {
		failf(NULL, "fork of %s %d: %s", slot < cfg.procs ? "exporter" : "attacher",
		      slot % cfg.procs, strerror(errno));
		atomic_store(&sh->stop, 1);
		return;
	}
	if (pid == 0) {
		setpgid(0, 0);
		child_main(slot);
	}
	setpgid(pid, pid);	/* either may run first */
	spid[slot] = pid;
}

/* A child is gone: was that expected? Retire it and restart it. */
static void child_gone(int slot, int status)
{
	struct pslot *ps = &sh->slot[slot];
	uint64_t life = atomic_load(&ps->life);
	uint32_t inc = (uint32_t)(life >> 2);
	bool expected;

	expected = sup_hang || (life & 3) == L_DYING ||
		   ((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
		    (WIFEXITED(status) && WEXITSTATUS(status) == 0));
	if (!expected) {
		atomic_fetch_add(&sh->unexpected, 1);
		if (WIFSIGNALED(status))
			failf(NULL, "%s %d (pid %d, incarnation %u) was killed by signal %d (%s) without being asked to",
			      slot < cfg.procs ? "exporter" : "attacher", slot % cfg.procs, (int)spid[slot],
			      inc, WTERMSIG(status), strsignal(WTERMSIG(status)));
		else
			failf(NULL, "%s %d (pid %d, incarnation %u) exited with status %d%s",
			      slot < cfg.procs ? "exporter" : "attacher", slot % cfg.procs, (int)spid[slot],
			      inc, WEXITSTATUS(status),
			      WEXITSTATUS(status) == EXIT_SIGNAL ? " (an unexpected SIGBUS/SIGSEGV)" :
			      (life & 3) != L_DYING ? " without announcing it" : "");
	}
	spid[slot] = 0;
	atomic_store(&ps->reap_ns, now_ns());
	atomic_store(&ps->life, LIFE(inc, L_DEAD));
	if (slot < cfg.procs) {
		/* Its segments died with it: retire them. */
		for (int j = 0; j < NSEG; j++) {
			struct segslot *s = &sh->ex[slot].seg[j];

			atomic_store(&s->segid, 0);
			atomic_store(&s->seq, (atomic_load(&s->seq) | 1) + 1);
		}
	}
	if (!atomic_load(&sh->stop)) {
		stat_inc(S_RESTARTS);
		atomic_store(&ps->life, LIFE(inc + 1, L_STARTING));
		start_child(slot);
	}
}

static void read_small(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r = -1;

	buf[0] = 0;
	if (fd >= 0) {
		r = read(fd, buf, n - 1);
		close(fd);
	}
	buf[r > 0 ? r : 0] = 0;
	if (r > 0 && buf[r - 1] == '\n')
		buf[r - 1] = 0;
}

/* One task of a hung process: state, what it was doing, where it sleeps. */
static void report_task(int slot, int pid, int tid, uint64_t now)
{
	struct pslot *ps = &sh->slot[slot];
	char path[128], wchan[128], stat[512], stack[4096], what[96] = "main thread";
	const char *st = NULL;

	for (int t = 0; t < cfg.threads; t++) {
		int op = atomic_load(&ps->t[t].op);

		if (atomic_load(&ps->t[t].tid) == tid)
			snprintf(what, sizeof(what), "thread %d in %s for %.1f s", t,
				 op >= 0 && op < OP_NR ? op_name[op] : "?",
				 (double)(now - atomic_load(&ps->t[t].op_ns)) / 1e9);
	}
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	read_small(path, stat, sizeof(stat));
	st = strrchr(stat, ')');
	snprintf(path, sizeof(path), "/proc/%d/task/%d/wchan", pid, tid);
	read_small(path, wchan, sizeof(wchan));
	fprintf(stderr, "xpmem-stress:     tid %d (%s): state %c, wchan %s\n", tid, what,
		st && st[1] && st[2] ? st[2] : '?', wchan[0] ? wchan : "?");
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stack", pid, tid);
	read_small(path, stack, sizeof(stack));
	if (stack[0])
		fprintf(stderr, "%s\n", stack);
}

static void report_hang(unsigned int secs)
{
	uint64_t now = now_ns();
	char path[64];

	failf(NULL, "no progress for %u s: hang (watchdog)", secs);
	for (int s = 0; s < nslots(); s++) {
		uint64_t life = atomic_load(&sh->slot[s].life);
		struct dirent *de;
		DIR *d;

		if (!spid[s])
			continue;
		fprintf(stderr, "xpmem-stress:   %s %d pid %d incarnation %" PRIu64 " state %s\n",
			s < cfg.procs ? "exporter" : "attacher", s % cfg.procs, (int)spid[s], life >> 2,
			(const char *[]){ "starting", "alive", "dying", "dead" }[life & 3]);
		snprintf(path, sizeof(path), "/proc/%d/task", (int)spid[s]);
		d = opendir(path);
		if (!d)
			continue;
		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				report_task(s, (int)spid[s], atoi(de->d_name), now);
		closedir(d);
	}
}

/* Each worker process leads its own group, with its fork children. */
static void kill_all(void)
{
	for (int s = 0; s < MAX_SLOTS; s++) {
		if (spid[s] > 0) {
			kill(-spid[s], SIGKILL);
			kill(spid[s], SIGKILL);
		}
	}
}

static void on_alarm(int sig)
{
	static const char msg[] = "xpmem-stress: FAIL: the supervisor itself made no progress (alarm); see the seed above\n";

	(void)sig;
	kill_all();
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	_exit(3);
}

static unsigned long kernel_taint(void)
{
	char buf[64];

	read_small("/proc/sys/kernel/tainted", buf, sizeof(buf));
	return strtoul(buf, NULL, 10);
}

static int lockdep_on(void)
{
	char buf[4096], *p;

	read_small("/proc/lockdep_stats", buf, sizeof(buf));
	p = strstr(buf, "debug_locks:");
	return p ? atoi(p + strlen("debug_locks:")) : -1;
}

static int numa_nodes(void)
{
	char buf[64], *dash;

	read_small("/sys/devices/system/node/online", buf, sizeof(buf));
	dash = strchr(buf, '-');
	return dash ? atoi(dash + 1) + 1 : 1;
}

static uint64_t progress(void)
{
	uint64_t sum = 0;

	for (int s = 0; s < nslots(); s++)
		for (int t = 0; t < cfg.threads; t++)
			sum += atomic_load(&sh->slot[s].t[t].done);
	return sum;
}

static void print_summary(double secs)
{
	char line[8192];
	size_t n = 0;
	uint64_t sigbus = atomic_load(&sh->stat[S_REQUIRED_SIGBUS]) +
			  atomic_load(&sh->stat[S_RACE_SIGBUS]);

	n += (size_t)snprintf(line + n, sizeof(line) - n,
			      "xpmem-stress: seed %" PRIu64 ": %" PRIu64 " ops in %.1f s (%d+%d processes x %d threads):",
			      cfg.seed, progress(), secs, cfg.procs, cfg.procs, cfg.threads);
	for (int op = 1; op < OP_NR && n < sizeof(line); op++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, " %s=%" PRIu64, op_name[op],
				      atomic_load(&sh->count[op]));
	if (n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n,
				      "; expected signals: SIGBUS=%" PRIu64 " SIGSEGV=%" PRIu64 ";",
				      sigbus, atomic_load(&sh->stat[S_EXPECTED_SIGSEGV]));
	for (int s = 0; s < S_NR && n < sizeof(line); s++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, " %s=%" PRIu64, stat_name[s],
				      atomic_load(&sh->stat[s]));
	if (n < sizeof(line))
		snprintf(line + n, sizeof(line) - n, "; failures=%" PRIu64 " unexpected=%" PRIu64,
			 atomic_load(&sh->failures), atomic_load(&sh->unexpected));
	printf("%s\n", line);
}

/* Where the threads' time went: total seconds and mean per operation kind. */
static void print_op_times(void)
{
	char line[4096];
	size_t n = 0;

	n += (size_t)snprintf(line, sizeof(line), "xpmem-stress: thread time by operation (s total/ms mean):");
	for (int op = 0; op < OP_NR && n < sizeof(line); op++) {
		uint64_t t = atomic_load(&sh->op_time[op]), k = atomic_load(&sh->count[op]);

		if (t >= 10000000ULL)
			n += (size_t)snprintf(line + n, sizeof(line) - n, " %s=%.1f/%.2f", op_name[op],
					      (double)t / 1e9, k ? (double)t / 1e6 / (double)k : 0.0);
	}
	printf("%s\n", line);
}

static void print_driver_counters(void)
{
	char buf[4096];

	read_small("/sys/kernel/debug/xpmem/stats", buf, sizeof(buf));
	if (!buf[0])
		return;
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = ' ';
	printf("xpmem-stress: driver counters: %s\n", buf);
}

static int supervise(void)
{
	char without_arg[600];

	uint64_t start = now_ns(), last = 0, last_ns = start, hang_ns = 0;
	unsigned long taint0 = kernel_taint();
	int lockdep0 = lockdep_on(), rc;
	bool children = true;

	supervisor_pid = getpid();
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGALRM, on_alarm);
	alarm(cfg.watchdog + 60);
	for (int s = 0; s < nslots(); s++) {
		atomic_store(&sh->slot[s].life, LIFE(0, L_STARTING));
		start_child(s);
	}
	while (children) {
		uint64_t now = now_ns(), prog;
		int status;
		pid_t pid;

		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			int s;

			for (s = 0; s < nslots(); s++)
				if (spid[s] == pid)
					break;
			if (s == nslots()) {
				stat_inc(S_ORPHANS);	/* a fork child whose parent died */
				continue;
			}
			child_gone(s, status);
			last_ns = now;
			alarm(cfg.watchdog + 60);
		}
		if (pid < 0 && errno == ECHILD)
			children = false;
		prog = progress();
		if (prog != last) {
			last = prog;
			last_ns = now;
			alarm(cfg.watchdog + 60);
		}
		if (!cfg.soak && prog >= cfg.ops)
			atomic_store(&sh->stop, 1);
		if (cfg.duration && now - start >= (uint64_t)cfg.duration * 1000000000ULL)
			atomic_store(&sh->stop, 1);
		if (children && !hang_ns && now - last_ns >= (uint64_t)cfg.watchdog * 1000000000ULL) {
			report_hang(cfg.watchdog);
			atomic_store(&sh->stop, 1);
			hang_ns = now;
			sup_hang = true;
			kill_all();
		}
		if (children && hang_ns && now - hang_ns >= 10000000000ULL) {
			fprintf(stderr, "xpmem-stress: processes still alive 10 s after SIGKILL (stuck in the kernel):");
			for (int s = 0; s < nslots(); s++)
				if (spid[s])
					fprintf(stderr, " %d", (int)spid[s]);
			fprintf(stderr, "\n");
			break;
		}
		if (children)
			nanosleep(&(struct timespec){ .tv_nsec = 20000000 }, NULL);
	}
	alarm(0);

	if (lockdep0 == 1 && lockdep_on() == 0)
		failf(NULL, "lockdep switched itself off during the run: a lockdep report is in the kernel log");
	{
		unsigned long taint1 = kernel_taint(), bad = (1UL << 5) | (1UL << 7) | (1UL << 9) | (1UL << 14);

		if ((taint1 & ~taint0) & bad)
			failf(NULL, "the kernel reported a problem during the run: taint %#lx -> %#lx (bits 5 bad page/KASAN, 7 oops, 9 WARN, 14 soft lockup): see dmesg",
			      taint0, taint1);
		else if (taint0 & bad)
			printf("xpmem-stress: note: the kernel was already tainted %#lx before the run; new WARNs cannot be told apart\n",
			       taint0);
	}
	print_summary((double)(now_ns() - start) / 1e9);
	print_op_times();
	for (int k = 0; k < sh->nkinds; k++)
		printf("xpmem-stress: failure kind x%" PRIu64 ": %s\n", sh->kinds[k].n, sh->kinds[k].key);
	print_driver_counters();
	rc = hang_ns ? 3 : atomic_load(&sh->failures) ? 1 : 0;
	without_arg[0] = 0;
	for (int op = 1; op < OP_NR + 2; op++) {
		size_t l = strlen(without_arg);

		if (cfg.off[op])
			snprintf(without_arg + l, sizeof(without_arg) - l, "%s%s",
				 l ? "," : " --without ",
				 op == E_SEG ? "seg" : op == A_ATTACH_ANY ? "attach" : op_name[op]);
	}
	if (no_populate) {
		size_t l = strlen(without_arg);

		snprintf(without_arg + l, sizeof(without_arg) - l, "%spopulate",
			 l ? "," : " --without ");
	}
	if (rc)
		printf("xpmem-stress: FAIL (seed %" PRIu64 "): %" PRIu64 " failure(s); first: %s; replay: xpmem-stress --seed %" PRIu64 " --ops %" PRIu64 " --procs %d --threads %d%s%s\n",
		       cfg.seed, atomic_load(&sh->failures), sh->first, cfg.seed, cfg.ops, cfg.procs,
		       cfg.threads, cfg.soak ? " --soak" : "", without_arg);
	else
		printf("xpmem-stress: PASS (seed %" PRIu64 ")\n", cfg.seed);
	return rc;
}

/* ------------------------------------------------------------ main */

/*
 * Under tests/run-suite: append "xpmem-stress passed failed skipped" to
 * $XTEST_SUMMARY, as the Check programs do (tests/common/xtest.c).
 */
static void summary_append(int passed, int failed, int skipped)
{
	const char *path = getenv("XTEST_SUMMARY");
	FILE *f;

	if (!path || !*path)
		return;
	f = fopen(path, "a");
	if (!f)
		return;
	fprintf(f, "xpmem-stress %d %d %d\n", passed, failed, skipped);
	fclose(f);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: xpmem-stress [options]\n"
		"  --seed N        master seed (default: from the clock); printed first\n"
		"  --ops N         total operations over all threads (default 100000)\n"
		"  --procs N       exporters, and as many attachers (1-%d, default 2)\n"
		"  --threads N     worker threads per process (1-%d, default 2)\n"
		"  --duration S    stop after S seconds even if operations remain\n"
		"  --soak          no operation limit: run for --duration (default 3600 s)\n"
		"  --watchdog S    fail as a hang after S seconds without progress (default 120)\n"
		"  --keep-going    do not stop at the first failure\n"
		"  --no-kill       no exit or kill -9 operations (--without exit,kill)\n"
		"  --without LIST  never choose these operations (comma-separated names, as in\n"
		"                  the final line; \"seg\" = make and remove, \"attach\" = all\n"
		"                  attaches, \"populate\" = no XPMEM_ATTACH_POPULATE)\n"
		"  --inject KIND   break the protocol on purpose to test the oracle: stale, lost-write, hole\n",
		MAX_PROCS, MAX_THREADS);
}

/* --without a,b,c: names of operations (the weight tables' entries). */
static int parse_without(const char *list)
{
	char buf[512], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", list);
	for (char *n = strtok_r(buf, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
		int op;

		if (!strcmp(n, "populate")) {
			no_populate = true;
			continue;
		}
		if (!strcmp(n, "seg") || !strcmp(n, "make") || !strcmp(n, "remove")) {
			op = E_SEG;
		} else if (!strncmp(n, "attach", 6)) {
			op = A_ATTACH_ANY;
		} else {
			for (op = 1; op < OP_NR && strcmp(op_name[op], n); op++)
				;
			if (op == OP_NR) {
				fprintf(stderr, "xpmem-stress: --without: unknown operation %s\n", n);
				return -1;
			}
		}
		cfg.off[op] = true;
	}
	return 0;
}

static bool role_has_ops(const struct weight *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (weight_of(&w[i]))
			return true;
	return false;
}

static uint64_t parse_u64(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || !*s || *end) {
		fprintf(stderr, "xpmem-stress: bad %s: %s\n", what, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seed", required_argument, NULL, 's' },
		{ "ops", required_argument, NULL, 'o' },
		{ "procs", required_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },
		{ "duration", required_argument, NULL, 'd' },
		{ "soak", no_argument, NULL, 'S' },
		{ "watchdog", required_argument, NULL, 'w' },
		{ "keep-going", no_argument, NULL, 'k' },
		{ "no-kill", no_argument, NULL, 'n' },
		{ "without", required_argument, NULL, 'W' },
		{ "inject", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct xpmem_ioc_info info;
	bool have_seed = false;
	int o, rc;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			cfg.seed = parse_u64(optarg, "seed");
			have_seed = true;
			break;
		case 'o':
			cfg.ops = parse_u64(optarg, "ops");
			break;
		case 'p':
			cfg.procs = (int)parse_u64(optarg, "procs");
			break;
		case 't':
			cfg.threads = (int)parse_u64(optarg, "threads");
			break;
		case 'd':
			cfg.duration = (unsigned int)parse_u64(optarg, "duration");
			break;
		case 'S':
			cfg.soak = true;
			break;
		case 'w':
			cfg.watchdog = (unsigned int)parse_u64(optarg, "watchdog");
			break;
		case 'k':
			cfg.keep_going = true;
			break;
		case 'n':
			cfg.off[X_EXIT] = cfg.off[X_KILL] = true;
			break;
		case 'W':
			if (parse_without(optarg))
				return 2;
			break;
		case 'i':
			if (!strcmp(optarg, "stale"))
				cfg.inject = INJ_STALE;
			else if (!strcmp(optarg, "lost-write"))
				cfg.inject = INJ_LOST_WRITE;
			else if (!strcmp(optarg, "hole"))
				cfg.inject = INJ_HOLE;
			else {
				usage(stderr);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || cfg.procs < 1 || cfg.procs > MAX_PROCS || cfg.threads < 1 ||
	    cfg.threads > MAX_THREADS || !cfg.watchdog || (!cfg.soak && !cfg.ops)) {
		usage(stderr);
		return 2;
	}
	if (!role_has_ops(ex_weights, sizeof(ex_weights) / sizeof(ex_weights[0])) ||
	    !role_has_ops(at_weights, sizeof(at_weights) / sizeof(at_weights[0]))) {
		fprintf(stderr, "xpmem-stress: --without leaves a role nothing to do\n");
		return 2;
	}
	if (cfg.soak && !cfg.duration)
		cfg.duration = 3600;
	if (!have_seed) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		cfg.seed = mix64((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec) % 1000000000000ULL;
	}
	/* First line, always: what to pass to --seed to replay this run. */
	printf("xpmem-stress: seed %" PRIu64 "\n", cfg.seed);
	fflush(stdout);

	if (xpmem_ext_get_info(&info)) {
		const char *req = getenv("XPMEM_REQUIRE_DEVICE"), *ci = getenv("CI");

		if ((req && *req && strcmp(req, "0")) || (ci && *ci)) {
			printf("xpmem-stress: FAIL (seed %" PRIu64 "): %s: %s\n", cfg.seed, XPMEM_DEV_PATH,
			       strerror(errno));
			summary_append(0, 1, 0);
			return 1;
		}
		printf("xpmem-stress: skipped: %s: %s\n", XPMEM_DEV_PATH, strerror(errno));
		summary_append(0, 0, 1);
		return 77;
	}
	cfg.populate = (info.features & XPMEM_FEATURE_ATTACH_POPULATE) && !no_populate;
	cfg.numa_nodes = numa_nodes();
	printf("xpmem-stress: %" PRIu64 " ops%s, %d exporters + %d attachers x %d threads, %d NUMA node(s), populate %s%s%s\n",
	       cfg.soak ? 0 : cfg.ops, cfg.soak ? " (soak: no limit)" : "", cfg.procs, cfg.procs, cfg.threads,
	       cfg.numa_nodes, cfg.populate ? "yes" : "no (driver lacks it)",
	       cfg.duration ? ", duration limit set" : "",
	       cfg.inject ? ", INJECTING FAULTS (the run must fail)" : "");
	fflush(stdout);

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("xpmem-stress: mmap");
		return 1;
	}
	rc = supervise();
	summary_append(!rc, !!rc, 0);
	return rc;
}
