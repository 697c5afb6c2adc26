// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_memkinds.c - the memory-kind matrix.
 *
 * Rows are kinds of exporter memory (anonymous, THP, MADV_FREE, shmem,
 * memfd, tmpfs files, hugetlbfs, the zero page, mlocked, KSM, userfaultfd,
 * memfd_secret, another attachment, PROT_NONE, sealed memfds, the vDSO...).
 * Cells are the ways of touching that memory through an attachment (read,
 * write, read then write, through a read-only permit) and the events that
 * change it under the attachment (reclaim, migration, compaction, mprotect,
 * fork, munmap, truncate, hole punching, soft-dirty tracking), plus the
 * write-upgrade count and a fault next to the row's memory. One Check test
 * per applicable row x cell (TCase = row), so that a failure names its
 * cell; rows[] and cols[] below are the whole matrix.
 *
 * The rule every cell checks: an attacher gets what the exporter's own
 * access would give, the same bytes and the same permission, or a clean
 * refusal with the documented signal: SIGBUS where the driver refuses (a
 * page GUP would refuse, a page the exporter may not write), SIGSEGV for a
 * write through a read-only permit. Writes must land in the exporter's
 * memory (and its file) and stay there through reclaim. A refusal must leak
 * nothing: no byte of a secret or PROT_NONE page may be read.
 *
 * The exporter is this process: each cell exports its own memory and
 * attaches it (a process may). For the rows whose point is that nothing
 * leaks to someone else (secret, PROT_NONE, PFN maps, userfaultfd), the
 * attacher is a forked child instead. Cells that need root (swap on zram,
 * KSM, compaction) are skipped, with the reason, in the unprivileged pass.
 * main() prints the outcome of every cell as a table at the end.
 *
 * Needs the module: run in the VM (tests/run-tests), as root and as nobody.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/mempolicy.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "xpmem.h"
#include "xtest.h"

#define PAGE 4096UL
#define HUGE (2UL << 20)
#define SMALL (4 * PAGE)

#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

/* /proc/self/pagemap bits, /proc/kpageflags bits. */
#define PM_PRESENT	(1ULL << 63)
#define PM_SWAP		(1ULL << 62)
#define PM_SOFT_DIRTY	(1ULL << 55)
#define PM_PFN		((1ULL << 55) - 1)
#define KPF_KSM		21

/* Contents: the exporter's data, the attacher's writes, and so on. */
enum seed {
	SEED_DATA = 1, SEED_W, SEED_W2, SEED_SECRET, SEED_NEIGHBOUR, SEED_NEW, SEED_COW,
};

/* What touching memory gives. */
enum expect { X_NA, X_DATA, X_SIGBUS, X_SIGSEGV };

/* ---- the cells: columns, then events */

enum cell_id {
	C_READ, C_WRITE, C_RW, C_RDONLY,
	C_PAGEOUT, C_MIGRATE, C_COMPACT, C_MPROTECT, C_FORK, C_MUNMAP, C_TRUNCATE,
	C_PUNCH, C_SOFTDIRTY, C_UPGRADE, C_NEIGHBOUR,
	NCELLS
};
#define E(c) (1u << (c))
#define COLUMNS (E(C_READ) | E(C_WRITE) | E(C_RW) | E(C_RDONLY))

/* ---- the rows */

struct mem {
	unsigned char *buf;	/* the row's memory, in this (the exporter) process */
	size_t len;
	unsigned char *want;	/* what the exporter's own reads give */
	int fd;			/* the file behind it, or -1 */
	unsigned char *file0;	/* MAP_PRIVATE files: the content, never to change */
	int uffd;		/* userfaultfd rows, or -1 */
	/* the pfnmap row: the segment and permit behind the re-exported attachment */
	xpmem_segid_t inner_seg;
	xpmem_apid_t inner_apid;
};

/* Row flags. */
#define R_ROOT		(1u << 0)	/* only root can set it up */
#define R_CHILD		(1u << 1)	/* the attacher is another process */
#define R_SHARED	(1u << 2)	/* MAP_SHARED: a forked child shares it */
#define R_FILE		(1u << 3)	/* a MAP_SHARED file: the file follows */
#define R_PRIVFILE	(1u << 4)	/* a MAP_PRIVATE file: the file never changes */
#define R_NOREAD	(1u << 5)	/* PROT_NONE: the exporter reads it after mprotect */
#define R_UFFD		(1u << 6)	/* missing pages: the exporter's check is "none appeared" */
#define R_VOLATILE	(1u << 7)	/* the content changes by itself ([vvar]) */
#define R_KEEP		(1u << 8)	/* not ours to unmap ([vdso], [vvar]) */
#define R_SWAP		(1u << 9)	/* needs swap */

struct row {
	const char *name;
	const char *what;
	unsigned int flags;
	size_t len;			/* 0: setup decides */
	const char *(*probe)(void);	/* why it cannot be set up here, or NULL */
	void (*setup)(struct mem *m, unsigned char *at);
	void (*teardown)(struct mem *m);
	enum expect read, write;	/* the attacher's, as the exporter's own would be */
	unsigned int events;		/* E(C_*) beyond the columns */
	unsigned int swap_events;	/* of those, the ones that mean nothing without swap */
};

struct result {
	char status;		/* 0: not applicable, 'S' skipped, 'F' failed (or running), 'P' */
	char brief[24];		/* the outcome, for the table */
	char text[232];		/* what happened, step by step */
};

/* The cell running now, in this (forked) test process. */
struct cell {
	const struct row *row;
	int id;
	char label[64];
	struct mem m;
	unsigned char *base;	/* the exported range */
	size_t span;
	size_t at;		/* offset of m.buf in it */
	xpmem_segid_t segid;
	int nattach;
	void *atts[8];
	xpmem_apid_t apids[8];
	struct result *res;
};

static struct cell the_cell;
static struct cell *const cur = &the_cell;
static struct result (*results)[NCELLS];	/* shared with the test processes */
static char failure[512];

#define SHMEM_ENABLED "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
#define HUGE_FREE_ALL "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"

/* Decided in main() before the suite runs; the test processes inherit them. */
static bool is_root, have_swap, have_numa, have_softdirty;
static int uffd_flags;		/* UFFD_USER_MODE_ONLY when kernel faults are not ours to catch */
static long huge_free[2];	/* free 2 MiB huge pages per node */
static const char *tmpfs_dir;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* With $MEMKINDS_VERBOSE: how long each step of the environment's setup took. */
static void trace(const char *what)
{
	static double last;
	double t = now();

	if (getenv("MEMKINDS_VERBOSE") && last)
		printf("memkinds: %s: %.2f s\n", what, t - last);
	last = t;
}

/* ---- recording and asserting */

static void record(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void record(const char *fmt, ...)
{
	char *t = cur->res->text;
	size_t n = strlen(t);
	va_list ap;

	if (n && n + 2 < sizeof(cur->res->text)) {
		strcpy(t + n, "; ");
		n += 2;
	}
	va_start(ap, fmt);
	vsnprintf(t + n, sizeof(cur->res->text) - n, fmt, ap);
	va_end(ap);
}

static void brief(const char *s)
{
	snprintf(cur->res->brief, sizeof(cur->res->brief), "%s", s);
}

static const char *fail_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *fail_text(const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(failure, sizeof(failure), "%s: ", cur->label);

	va_start(ap, fmt);
	vsnprintf(failure + n, sizeof(failure) - n, fmt, ap);
	va_end(ap);
	record("FAIL: %s", failure + n);
	return failure;
}

/* Check @cond; if false, fail the cell with a message that names it. */
#define CK(cond, ...) \
	do { \
		if (!(cond)) \
			ck_abort_msg("%s", fail_text(__VA_ARGS__)); \
	} while (0)

/* ---- touching memory, catching SIGBUS and SIGSEGV */

enum op { OP_READ, OP_WRITE };
#define NO_OFF ((size_t)-1)

/* The result of one access: the signal that stopped it, and where. */
struct acc {
	int sig;
	size_t off;		/* where the signal hit, or the first wrong byte; NO_OFF */
	unsigned char got, want;
};

static sigjmp_buf acc_jmp;
static volatile sig_atomic_t acc_armed;
static volatile size_t acc_pos;
static struct acc acc_res;
static enum op acc_op;
static volatile uint64_t *acc_mem;
static const unsigned char *acc_pat;
static size_t acc_words;

static void acc_handler(int sig)
{
	if (acc_armed) {
		acc_armed = 0;
		siglongjmp(acc_jmp, sig);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void acc_loop(void)
{
	for (; acc_pos < acc_words; acc_pos++) {
		size_t i = acc_pos;
		uint64_t v, got;

		memcpy(&v, acc_pat + i * 8, 8);
		if (acc_op == OP_WRITE) {
			acc_mem[i] = v;
			continue;
		}
		got = acc_mem[i];
		if (got != v && acc_res.off == NO_OFF) {
			unsigned char g[8];

			memcpy(g, &got, 8);
			for (int b = 0; b < 8; b++) {
				if (g[b] != acc_pat[i * 8 + b]) {
					acc_res.off = i * 8 + b;
					acc_res.got = g[b];
					acc_res.want = acc_pat[i * 8 + b];
					break;
				}
			}
		}
	}
}

/*
 * Read [p, p + len) comparing it with @pat, or write @pat there, in 8-byte
 * words. A SIGBUS or SIGSEGV stops it and is reported, not raised.
 */
static struct acc touch(enum op op, unsigned char *p, size_t len, const unsigned char *pat)
{
	struct sigaction sa, old_bus, old_segv;
	int sig;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = acc_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old_bus);
	sigaction(SIGSEGV, &sa, &old_segv);
	acc_res = (struct acc){ .off = NO_OFF };
	acc_op = op;
	acc_mem = (volatile uint64_t *)(void *)p;
	acc_pat = pat;
	acc_words = len / 8;
	acc_pos = 0;
	sig = sigsetjmp(acc_jmp, 1);
	if (sig == 0) {
		acc_armed = 1;
		acc_loop();
		acc_armed = 0;
	} else {
		acc_res.sig = sig;
		acc_res.off = acc_pos * 8;
	}
	sigaction(SIGBUS, &old_bus, NULL);
	sigaction(SIGSEGV, &old_segv, NULL);
	return acc_res;
}

static const char *acc_token(struct acc r)
{
	if (r.sig == SIGBUS)
		return "SIGBUS";
	if (r.sig == SIGSEGV)
		return "SIGSEGV";
	if (r.sig)
		return "signal";
	return r.off == NO_OFF ? "data" : "wrong data";
}

static const char *const expect_name[] = { "-", "data", "SIGBUS", "SIGSEGV" };

/* Assert that access @r (a step called @what) gave @x. */
static void expect_acc(const char *what, enum op op, struct acc r, enum expect x)
{
	int want_sig = x == X_SIGBUS ? SIGBUS : x == X_SIGSEGV ? SIGSEGV : 0;

	record("%s: %s", what, acc_token(r));
	if (x == X_DATA) {
		CK(r.sig == 0, "%s: %s at offset %#zx; the exporter's own %s works",
		   what, acc_token(r), r.off, op == OP_READ ? "read" : "write");
		CK(r.off == NO_OFF, "%s: byte %#zx is 0x%02x, the exporter's is 0x%02x",
		   what, r.off, r.got, r.want);
		return;
	}
	if (r.sig == 0 && op == OP_READ)
		CK(0, "%s: no signal, expected %s: %s", what, expect_name[x],
		   r.off == NO_OFF ? "LEAK: every byte of the exporter's data was read" :
				     "it read bytes other than the exporter's");
	CK(r.sig != 0, "%s: the write went through, expected %s", what, expect_name[x]);
	CK(r.sig == want_sig, "%s: %s, expected %s", what, acc_token(r), expect_name[x]);
	CK(r.off == 0, "%s: %s only at offset %#zx: the bytes before it were %s", what,
	   acc_token(r), r.off, op == OP_READ ? "readable" : "written");
}

/* ---- small helpers */

static unsigned char *new_pattern(unsigned int seed, size_t len, bool same_pages)
{
	unsigned char *p = malloc(len);

	CK(p != NULL, "malloc");
	for (size_t i = 0; i < len; i++) {
		size_t pg = same_pages ? 0 : i / PAGE;

		p[i] = (unsigned char)(1 + (seed * 131 + pg * 29 + (i % PAGE) * 7) % 255);
	}
	return p;
}

static unsigned char *zeros(size_t len)
{
	unsigned char *p = calloc(1, len);

	CK(p != NULL, "calloc");
	return p;
}

static unsigned char *map_at(unsigned char *at, size_t len, int prot, int flags, int fd)
{
	void *p = mmap(at, len, prot, flags | (at ? MAP_FIXED : 0), fd, 0);

	CK(p != MAP_FAILED, "setup: mmap: %s", strerror(errno));
	return p;
}

/* @len bytes aligned to 2 MiB, so that THP can back them. */
static unsigned char *map_aligned(size_t len)
{
	unsigned char *p = map_at(NULL, len + HUGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1);
	unsigned char *a = (unsigned char *)(((uintptr_t)p + HUGE - 1) & ~(HUGE - 1));

	if (a > p)
		munmap(p, a - p);
	munmap(a + len, p + HUGE - a);
	return a;
}

static void no_thp(void *p, size_t len)
{
	/* Kernels without THP (PREEMPT_RT) reject the advice; they have none. */
	if (madvise(p, len, MADV_NOHUGEPAGE) != 0)
		CK(errno == EINVAL, "setup: MADV_NOHUGEPAGE: %s", strerror(errno));
}

static uint64_t pagemap(const void *addr)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	CK(fd >= 0, "open pagemap: %s", strerror(errno));
	CK(pread(fd, &e, sizeof(e), (off_t)((uintptr_t)addr / PAGE * 8)) == sizeof(e),
	   "read pagemap: %s", strerror(errno));
	close(fd);
	return e;
}

static size_t resident_pages(const void *p, size_t len)
{
	unsigned char vec[512];
	size_t n = 0;

	CK(len / PAGE <= sizeof(vec), "resident_pages: too long");
	CK(mincore((void *)p, len, vec) == 0, "mincore: %s", strerror(errno));
	for (size_t i = 0; i < len / PAGE; i++)
		n += vec[i] & 1;
	return n;
}

/* Does the VmFlags line in smaps of the mapping at @addr list @flag ("pf")? */
static bool smaps_has_vmflag(uintptr_t addr, const char *flag)
{
	char line[512], *tok, *save;
	unsigned long start, end;
	bool in = false, found = false;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			in = addr >= start && addr < end;
			continue;
		}
		if (!in || strncmp(line, "VmFlags:", 8) != 0)
			continue;
		for (tok = strtok_r(line + 8, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save))
			found |= strcmp(tok, flag) == 0;
		break;
	}
	fclose(f);
	return found;
}

/* The first difference of @a and @b, or NO_OFF. */
static size_t first_diff(const unsigned char *a, const unsigned char *b, size_t len)
{
	if (memcmp(a, b, len) == 0)
		return NO_OFF;
	for (size_t i = 0; i < len; i++)
		if (a[i] != b[i])
			return i;
	return NO_OFF;
}

/* The address range of the mapping named @name in /proc/self/maps. */
static bool find_mapping(const char *name, uintptr_t *start, uintptr_t *end)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (strstr(line, name) && sscanf(line, "%lx-%lx", &s, &e) == 2) {
			*start = s;
			*end = e;
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* A new unlinked file on tmpfs, open read-write, @len long (holes). */
static int tmpfs_file(size_t len)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/memkinds-XXXXXX", tmpfs_dir);
	fd = mkstemp(path);
	CK(fd >= 0, "setup: mkstemp in %s: %s", tmpfs_dir, strerror(errno));
	unlink(path);
	CK(ftruncate(fd, (off_t)len) == 0, "setup: ftruncate: %s", strerror(errno));
	return fd;
}

static void pwrite_all(int fd, const unsigned char *p, size_t len, off_t off)
{
	CK(pwrite(fd, p, len, off) == (ssize_t)len, "setup: pwrite: %s", strerror(errno));
}

/* The same open file, read-only (through /proc, which works for unlinked files). */
static int reopen_rdonly(int fd)
{
	char path[64];
	int ro;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	CK(ro >= 0, "setup: reopen O_RDONLY: %s", strerror(errno));
	return ro;
}

/* ---- the exporter's view */

/* What a wrong byte @got, where a write of @expect was due, says. */
static const char *lost_write_note(unsigned char got, unsigned char expect, unsigned char old)
{
	if (expect == old)
		return "";
	if (got == old)
		return " (a lost write: the exporter has its old data)";
	if (got == 0)
		return " (a lost write: the page was dropped, the exporter reads zeros)";
	return "";
}

/*
 * Assert that the exporter now sees @expect in its memory (and in its file,
 * for MAP_SHARED files), as its own reads give it.
 */
static void expect_exporter(const char *when, const unsigned char *expect)
{
	const struct row *row = cur->row;
	struct mem *m = &cur->m;
	unsigned char got;
	size_t off;

	if (m->uffd >= 0) {
		struct uffd_msg msg;

		errno = 0;
		CK(read(m->uffd, &msg, sizeof(msg)) < 0 && errno == EAGAIN,
		   "%s: the exporter's userfaultfd got an event (the attacher's fault reached it)",
		   when);
	}
	if (row->flags & R_UFFD) {
		CK(resident_pages(m->buf, m->len) == 0,
		   "%s: a page of the exporter's userfaultfd range was populated behind its back",
		   when);
		return;
	}
	if (row->flags & R_VOLATILE)
		return;
	if (row->flags & R_NOREAD)
		CK(mprotect(m->buf, m->len, PROT_READ) == 0, "mprotect: %s", strerror(errno));
	off = first_diff(m->buf, expect, m->len);
	got = off == NO_OFF ? 0 : m->buf[off];
	if (row->flags & R_NOREAD)
		CK(mprotect(m->buf, m->len, PROT_NONE) == 0, "mprotect: %s", strerror(errno));
	CK(off == NO_OFF, "%s: the exporter reads 0x%02x at offset %#zx, expected 0x%02x%s", when,
	   got, off, expect[off], lost_write_note(got, expect[off], m->want[off]));
	if (row->flags & (R_FILE | R_PRIVFILE)) {
		unsigned char *f = malloc(m->len);
		const unsigned char *fexp = row->flags & R_FILE ? expect : m->file0;

		/* As for a file on disk: what msync() writes back is in the file. */
		CK(msync(m->buf, m->len, MS_SYNC) == 0, "msync: %s", strerror(errno));
		CK(f != NULL, "malloc");
		CK(pread(m->fd, f, m->len, 0) == (ssize_t)m->len, "pread: %s", strerror(errno));
		off = first_diff(f, fexp, m->len);
		CK(off == NO_OFF, "%s: the file holds 0x%02x at offset %#zx, expected 0x%02x%s",
		   when, f[off], off, fexp[off],
		   row->flags & R_PRIVFILE ? " (a write reached the file behind MAP_PRIVATE)" :
		   lost_write_note(f[off], fexp[off], m->want[off]));
		free(f);
	}
}

/* The exporter writes @p into its memory itself. */
static void exporter_writes(const unsigned char *p, size_t off, size_t len)
{
	memcpy(cur->m.buf + off, p + off, len);
}

/* ---- attaching */

static unsigned char *cell_attach(int access)
{
	struct xpmem_addr addr;
	void *a;

	CK(cur->nattach < 8, "too many attachments");
	addr.apid = xpmem_get(cur->segid, access, XPMEM_PERMIT_MODE, NULL);
	CK(addr.apid > 0, "xpmem_get: %s", strerror(errno));
	addr.offset = 0;
	a = xpmem_attach(addr, cur->span, NULL);
	CK(a != (void *)-1, "xpmem_attach: %s", strerror(errno));
	cur->atts[cur->nattach] = a;
	cur->apids[cur->nattach++] = addr.apid;
	return a;
}

/* One access through an attachment: offset from the start of the exported range. */
struct step {
	enum op op;
	size_t off, len;
	const unsigned char *pat;
};

/*
 * Attach with @access and run @steps, each to its end even after a signal.
 * For R_CHILD rows a forked child attaches and runs them: another process,
 * which must get nothing that the exporter's memory holds.
 */
static void attacher_run(int access, const struct step *s, int n, struct acc *res)
{
	size_t size = n * sizeof(*res);
	int pipefd[2], status, err;
	pid_t pid;

	if (!(cur->row->flags & R_CHILD)) {
		unsigned char *a = cell_attach(access);

		for (int i = 0; i < n; i++)
			res[i] = touch(s[i].op, a + s[i].off, s[i].len, s[i].pat);
		return;
	}
	CK(pipe(pipefd) == 0, "pipe: %s", strerror(errno));
	pid = fork();
	CK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		struct xpmem_addr addr;
		unsigned char *a = (void *)-1;

		err = 0;
		addr.apid = xpmem_get(cur->segid, access, XPMEM_PERMIT_MODE, NULL);
		addr.offset = 0;
		if (addr.apid > 0)
			a = xpmem_attach(addr, cur->span, NULL);
		if (addr.apid <= 0 || a == (void *)-1)
			err = errno ? errno : EINVAL;
		for (int i = 0; !err && i < n; i++)
			res[i] = touch(s[i].op, a + s[i].off, s[i].len, s[i].pat);
		if (write(pipefd[1], &err, sizeof(err)) != sizeof(err) ||
		    (!err && write(pipefd[1], res, size) != (ssize_t)size))
			_exit(1);
		_exit(0);
	}
	close(pipefd[1]);
	CK(read(pipefd[0], &err, sizeof(err)) == sizeof(err), "the attacher process died");
	CK(err == 0, "the attacher process could not attach: %s", strerror(err));
	CK(read(pipefd[0], res, size) == (ssize_t)size, "the attacher process died");
	close(pipefd[0]);
	CK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "the attacher process: status %#x", status);
}

/* In-process read/write through @a, asserting the outcome. */
static void att_read(const char *what, unsigned char *a, size_t off, size_t len,
		     const unsigned char *pat, enum expect x)
{
	expect_acc(what, OP_READ, touch(OP_READ, a + cur->at + off, len, pat + off), x);
}

static void att_write(const char *what, unsigned char *a, size_t off, size_t len,
		      const unsigned char *pat, enum expect x)
{
	expect_acc(what, OP_WRITE, touch(OP_WRITE, a + cur->at + off, len, pat + off), x);
}

/* ---- the rows' setups */

static void setup_anon(struct mem *m, unsigned char *at)
{
	m->buf = map_at(at, m->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	no_thp(m->buf, m->len);
	m->want = new_pattern(SEED_DATA, m->len, false);
	memcpy(m->buf, m->want, m->len);
}

static void setup_anon_swapped(struct mem *m, unsigned char *at)
{
	size_t swapped = 0;

	setup_anon(m, at);
	CK(madvise(m->buf, m->len, MADV_PAGEOUT) == 0, "setup: MADV_PAGEOUT: %s", strerror(errno));
	for (size_t i = 0; i < m->len; i += PAGE)
		swapped += (pagemap(m->buf + i) & PM_SWAP) != 0;
	CK(swapped == m->len / PAGE, "setup: only %zu of %zu pages swapped out", swapped,
	   m->len / PAGE);
}

static void setup_thp(struct mem *m, unsigned char *at)
{
	(void)at;
	m->buf = map_aligned(m->len);
	CK(madvise(m->buf, m->len, MADV_HUGEPAGE) == 0, "setup: MADV_HUGEPAGE: %s",
	   strerror(errno));
	m->want = new_pattern(SEED_DATA, m->len, false);
	memcpy(m->buf, m->want, m->len);
	CK(xtest_smaps_kb(m->buf, "AnonHugePages:") >= (long)(m->len >> 10),
	   "setup: not backed by a huge page (AnonHugePages %ld kB)",
	   xtest_smaps_kb(m->buf, "AnonHugePages:"));
}

/* Untouched THP-eligible memory, read by the exporter: the huge zero page. */
static void setup_thp_zero(struct mem *m, unsigned char *at)
{
	volatile unsigned char *v;
	unsigned long sum = 0;

	(void)at;
	m->buf = map_aligned(m->len);
	CK(madvise(m->buf, m->len, MADV_HUGEPAGE) == 0, "setup: MADV_HUGEPAGE: %s",
	   strerror(errno));
	v = m->buf;
	for (size_t i = 0; i < m->len; i += PAGE)
		sum += v[i];
	CK(sum == 0, "setup: untouched memory is not zero");
	m->want = zeros(m->len);
	if (is_root) {
		uint64_t p0 = pagemap(m->buf) & PM_PFN, p1 = pagemap(m->buf + PAGE) & PM_PFN;

		/* The small zero page would show one PFN for both pages. */
		CK(p0 && p1 == p0 + 1, "setup: not the huge zero page (PFNs %#llx, %#llx)",
		   (unsigned long long)p0, (unsigned long long)p1);
	}
}

static void setup_madv_free(struct mem *m, unsigned char *at)
{
	setup_anon(m, at);
	CK(madvise(m->buf, m->len, MADV_FREE) == 0, "setup: MADV_FREE: %s", strerror(errno));
}

static void setup_thp_madv_free(struct mem *m, unsigned char *at)
{
	setup_thp(m, at);
	CK(madvise(m->buf, m->len, MADV_FREE) == 0, "setup: MADV_FREE: %s", strerror(errno));
}

static void setup_shmem(struct mem *m, unsigned char *at)
{
	m->buf = map_at(at, m->len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	m->want = new_pattern(SEED_DATA, m->len, false);
	memcpy(m->buf, m->want, m->len);
}

/*
 * Shared anonymous memory on a huge page (shmem THP, MADV_HUGEPAGE). A
 * huge page can be missing after a long suite has fragmented memory: then
 * compact and try once more.
 */
static void setup_shmem_thp(struct mem *m, unsigned char *at)
{
	(void)at;
	m->want = new_pattern(SEED_DATA, m->len, false);
	for (int attempt = 0; attempt < 2; attempt++) {
		m->buf = map_at(map_aligned(m->len), m->len, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1);
		CK(madvise(m->buf, m->len, MADV_HUGEPAGE) == 0, "setup: MADV_HUGEPAGE: %s",
		   strerror(errno));
		memcpy(m->buf, m->want, m->len);
		if (attempt || xtest_smaps_kb(m->buf, "ShmemPmdMapped:") >= (long)(m->len >> 10))
			break;
		munmap(m->buf, m->len);
		(void)xtest_write_file("/proc/sys/vm/compact_memory", "1");
	}
	CK(xtest_smaps_kb(m->buf, "ShmemPmdMapped:") >= (long)(m->len >> 10),
	   "setup: not mapped by a huge page (ShmemPmdMapped %ld kB)",
	   xtest_smaps_kb(m->buf, "ShmemPmdMapped:"));
}

/* Never written: its pages are made by the first (read) fault, clean. */
static void setup_shmem_holes(struct mem *m, unsigned char *at)
{
	m->buf = map_at(at, m->len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	m->want = zeros(m->len);
}

static void setup_memfd(struct mem *m, unsigned char *at)
{
	m->fd = memfd_create("memkinds", MFD_CLOEXEC);
	CK(m->fd >= 0, "setup: memfd_create: %s", strerror(errno));
	CK(ftruncate(m->fd, (off_t)m->len) == 0, "setup: ftruncate: %s", strerror(errno));
	m->buf = map_at(at, m->len, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd);
	m->want = zeros(m->len);
}

/* Even pages written with write(2) (dirty), odd pages holes. */
static void setup_tmpfs_file(struct mem *m, unsigned char *at)
{
	unsigned char *data = new_pattern(SEED_DATA, m->len, false);

	m->fd = tmpfs_file(m->len);
	m->want = zeros(m->len);
	for (size_t i = 0; i < m->len; i += 2 * PAGE) {
		pwrite_all(m->fd, data + i, PAGE, (off_t)i);
		memcpy(m->want + i, data + i, PAGE);
	}
	free(data);
	m->buf = map_at(at, m->len, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd);
}

static void setup_tmpfs_file_ro(struct mem *m, unsigned char *at)
{
	int rw = tmpfs_file(m->len);

	m->want = new_pattern(SEED_DATA, m->len, false);
	pwrite_all(rw, m->want, m->len, 0);
	m->fd = reopen_rdonly(rw);
	close(rw);
	m->buf = map_at(at, m->len, PROT_READ, MAP_SHARED, m->fd);
	errno = 0;
	CK(mprotect(m->buf, m->len, PROT_READ | PROT_WRITE) != 0 && errno == EACCES,
	   "setup: the exporter could make its mapping of an O_RDONLY file writable");
}

static void setup_private_file(struct mem *m, unsigned char *at)
{
	int rw = tmpfs_file(m->len);

	m->file0 = new_pattern(SEED_DATA, m->len, false);
	pwrite_all(rw, m->file0, m->len, 0);
	m->fd = reopen_rdonly(rw);
	close(rw);
	m->buf = map_at(at, m->len, PROT_READ | PROT_WRITE, MAP_PRIVATE, m->fd);
	m->want = malloc(m->len);
	CK(m->want != NULL, "malloc");
	memcpy(m->want, m->file0, m->len);
}

static void setup_private_file_cow(struct mem *m, unsigned char *at)
{
	setup_private_file(m, at);
	free(m->want);
	m->want = new_pattern(SEED_COW, m->len, false);
	memcpy(m->buf, m->want, m->len);	/* COW: anonymous pages now */
}

static void setup_hugetlb(struct mem *m, unsigned char *at)
{
	(void)at;
	m->buf = mmap(NULL, m->len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	CK(m->buf != MAP_FAILED, "setup: mmap MAP_HUGETLB: %s", strerror(errno));
	m->want = new_pattern(SEED_DATA, m->len, false);
	memcpy(m->buf, m->want, m->len);
}

static void setup_hugetlb_shared(struct mem *m, unsigned char *at)
{
	(void)at;
	m->fd = memfd_create("memkinds-huge", MFD_CLOEXEC | MFD_HUGETLB);
	CK(m->fd >= 0, "setup: memfd_create(MFD_HUGETLB): %s", strerror(errno));
	CK(ftruncate(m->fd, (off_t)m->len) == 0, "setup: ftruncate: %s", strerror(errno));
	m->buf = map_at(NULL, m->len, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd);
	m->want = new_pattern(SEED_DATA, m->len, false);
	memcpy(m->buf, m->want, m->len);
}

static void setup_zero(struct mem *m, unsigned char *at)
{
	volatile unsigned char *v;
	unsigned long sum = 0;

	m->buf = map_at(at, m->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	no_thp(m->buf, m->len);
	v = m->buf;
	for (size_t i = 0; i < m->len; i += PAGE)
		sum += v[i];
	CK(sum == 0, "setup: untouched memory is not zero");
	m->want = zeros(m->len);
	if (is_root) {
		uint64_t p0 = pagemap(m->buf) & PM_PFN;

		for (size_t i = PAGE; i < m->len; i += PAGE)
			CK(p0 && (pagemap(m->buf + i) & PM_PFN) == p0,
			   "setup: page %zu is not the zero page", i / PAGE);
	}
}

static void setup_mlock(struct mem *m, unsigned char *at)
{
	setup_anon(m, at);
	CK(mlock(m->buf, m->len) == 0, "setup: mlock: %s", strerror(errno));
}

/* Identical pages, merged by ksmd (main() started it). */
static void setup_ksm(struct mem *m, unsigned char *at)
{
	int fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	size_t merged = 0;

	m->buf = map_at(at, m->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	no_thp(m->buf, m->len);
	m->want = new_pattern(SEED_DATA, m->len, true);
	memcpy(m->buf, m->want, m->len);
	CK(fd >= 0, "setup: open /proc/kpageflags: %s", strerror(errno));
	CK(madvise(m->buf, m->len, MADV_MERGEABLE) == 0, "setup: MADV_MERGEABLE: %s",
	   strerror(errno));
	for (int tries = 0; tries < 1000 && merged < m->len / PAGE; tries++) {
		usleep(20000);
		merged = 0;
		for (size_t i = 0; i < m->len; i += PAGE) {
			uint64_t e = pagemap(m->buf + i), flags = 0;

			if ((e & PM_PRESENT) &&
			    pread(fd, &flags, sizeof(flags), (off_t)((e & PM_PFN) * 8)) == 8)
				merged += (flags >> KPF_KSM) & 1;
		}
	}
	close(fd);
	CK(merged == m->len / PAGE, "setup: KSM merged %zu of %zu pages in 20 s", merged,
	   m->len / PAGE);
}

static int new_uffd(unsigned long long features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | uffd_flags);

	if (fd < 0)
		return -1;
	if (ioctl(fd, UFFDIO_API, &api) != 0 || (api.features & features) != features) {
		close(fd);
		errno = EOPNOTSUPP;
		return -1;
	}
	return fd;
}

static void uffd_register(struct mem *m, unsigned long long mode)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)m->buf, .len = m->len },
		.mode = mode,
	};

	CK(ioctl(m->uffd, UFFDIO_REGISTER, &reg) == 0, "setup: UFFDIO_REGISTER: %s",
	   strerror(errno));
}

/* Registered for missing pages, none populated, nobody handling them. */
static void setup_uffd_missing(struct mem *m, unsigned char *at)
{
	m->buf = map_at(at, m->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	no_thp(m->buf, m->len);
	m->want = zeros(m->len);
	m->uffd = new_uffd(0);
	CK(m->uffd >= 0, "setup: userfaultfd: %s", strerror(errno));
	uffd_register(m, UFFDIO_REGISTER_MODE_MISSING);
}

/* Populated, registered for write protection and write-protected. */
static void setup_uffd_wp(struct mem *m, unsigned char *at)
{
	struct uffdio_writeprotect wp;

	setup_anon(m, at);
	m->uffd = new_uffd(UFFD_FEATURE_PAGEFAULT_FLAG_WP);
	CK(m->uffd >= 0, "setup: userfaultfd (WP): %s", strerror(errno));
	uffd_register(m, UFFDIO_REGISTER_MODE_WP);
	wp.range.start = (uintptr_t)m->buf;
	wp.range.len = m->len;
	wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
	CK(ioctl(m->uffd, UFFDIO_WRITEPROTECT, &wp) == 0, "setup: UFFDIO_WRITEPROTECT: %s",
	   strerror(errno));
}

static void setup_secret(struct mem *m, unsigned char *at)
{
	m->fd = (int)syscall(SYS_memfd_secret, O_CLOEXEC);
	CK(m->fd >= 0, "setup: memfd_secret: %s", strerror(errno));
	CK(ftruncate(m->fd, (off_t)m->len) == 0, "setup: ftruncate: %s", strerror(errno));
	m->buf = map_at(at, m->len, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd);
	m->want = new_pattern(SEED_SECRET, m->len, false);
	memcpy(m->buf, m->want, m->len);
}

/* An attachment of our own anonymous memory, mapped (VM_PFNMAP), re-exported. */
static void setup_pfnmap(struct mem *m, unsigned char *at)
{
	unsigned char *src = map_at(NULL, m->len, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1);
	struct xpmem_addr addr;
	void *a;

	no_thp(src, m->len);
	m->want = new_pattern(SEED_DATA, m->len, false);
	memcpy(src, m->want, m->len);
	m->inner_seg = xpmem_make(src, m->len, XPMEM_PERMIT_MODE, (void *)0600);
	CK(m->inner_seg > 0, "setup: xpmem_make: %s", strerror(errno));
	m->inner_apid = xpmem_get(m->inner_seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	CK(m->inner_apid > 0, "setup: xpmem_get: %s", strerror(errno));
	addr.apid = m->inner_apid;
	addr.offset = 0;
	a = xpmem_attach(addr, m->len, at);
	CK(a != (void *)-1 && (!at || a == at), "setup: xpmem_attach: %s", strerror(errno));
	m->buf = a;
	/* Mapped in the exporter: its PTEs are there to be found. */
	expect_acc("setup: the exporter reads its attachment", OP_READ,
		   touch(OP_READ, m->buf, m->len, m->want), X_DATA);
}

static void teardown_pfnmap(struct mem *m)
{
	xpmem_detach(m->buf);
	xpmem_release(m->inner_apid);
	xpmem_remove(m->inner_seg);
}

/* Data written, then mprotect(PROT_NONE): present pages nobody may touch. */
static void setup_prot_none(struct mem *m, unsigned char *at)
{
	m->buf = map_at(at, m->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	no_thp(m->buf, m->len);
	m->want = new_pattern(SEED_SECRET, m->len, false);
	memcpy(m->buf, m->want, m->len);
	CK(mprotect(m->buf, m->len, PROT_NONE) == 0, "setup: mprotect: %s", strerror(errno));
}

static void setup_sealed(struct mem *m, unsigned int seal)
{
	m->fd = memfd_create("memkinds-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CK(m->fd >= 0, "setup: memfd_create: %s", strerror(errno));
	CK(ftruncate(m->fd, (off_t)m->len) == 0, "setup: ftruncate: %s", strerror(errno));
	m->want = new_pattern(SEED_DATA, m->len, false);
	pwrite_all(m->fd, m->want, m->len, 0);
	CK(fcntl(m->fd, F_ADD_SEALS, seal) == 0, "setup: F_ADD_SEALS: %s", strerror(errno));
	/* The exporter itself cannot map it writable any more. */
	errno = 0;
	CK(mmap(NULL, m->len, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0) == MAP_FAILED &&
	   errno == EPERM, "setup: a writable MAP_SHARED of the sealed memfd was allowed");
	m->buf = map_at(NULL, m->len, PROT_READ, MAP_SHARED, m->fd);
}

static void setup_sealed_write(struct mem *m, unsigned char *at)
{
	(void)at;
	setup_sealed(m, F_SEAL_WRITE);
}

static void setup_sealed_future_write(struct mem *m, unsigned char *at)
{
	(void)at;
	setup_sealed(m, F_SEAL_FUTURE_WRITE);
}

static void setup_vdso(struct mem *m, unsigned char *at)
{
	uintptr_t s, e;

	(void)at;
	CK(find_mapping("[vdso]", &s, &e), "setup: no [vdso]");
	m->buf = (unsigned char *)s;
	m->len = e - s;
	m->want = malloc(m->len);
	CK(m->want != NULL, "malloc");
	memcpy(m->want, m->buf, m->len);
}

static void setup_vvar(struct mem *m, unsigned char *at)
{
	uintptr_t s, e;

	(void)at;
	CK(find_mapping("[vvar]", &s, &e), "setup: no [vvar]");
	m->buf = (unsigned char *)s;
	m->want = malloc(m->len);
	CK(m->want != NULL, "malloc");
	memcpy(m->want, m->buf, m->len);
}

/* ---- probes: why a row cannot be set up here (run in main) */

static const char *probe_thp(void)
{
	char mode[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");

	if (!f)
		return "this kernel has no transparent huge pages";
	if (!fgets(mode, sizeof(mode), f))
		mode[0] = 0;
	fclose(f);
	if (strstr(mode, "[never]"))
		return "transparent huge pages are disabled ([never])";
	return NULL;
}

static const char *probe_shmem_thp(void)
{
	char mode[128] = "";
	const char *why = probe_thp();
	FILE *f;

	if (why)
		return why;
	f = fopen(SHMEM_ENABLED, "r");
	if (!f)
		return "this kernel has no shmem THP";
	if (!fgets(mode, sizeof(mode), f))
		mode[0] = 0;
	fclose(f);
	if (strstr(mode, "[never]") || strstr(mode, "[deny]"))
		return "shmem THP is disabled (shmem_enabled: never); root turns it on";
	return NULL;
}

static const char *probe_hugetlb(void)
{
	if (huge_free[0] + huge_free[1] < 1)
		return is_root ? "no 2 MiB huge page could be reserved (nr_hugepages)" :
				 "no free 2 MiB huge pages (only root can reserve them)";
	return NULL;
}

static const char *probe_mlock(void)
{
	struct rlimit rl;

	if (!is_root && getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur < SMALL)
		return "RLIMIT_MEMLOCK is below 16 KiB";
	return NULL;
}

static const char *probe_ksm(void)
{
	if (access("/sys/kernel/mm/ksm/run", F_OK) != 0)
		return "this kernel has no KSM";
	return NULL;
}

static const char *probe_uffd(void)
{
	static char why[128];
	int fd = new_uffd(0);

	if (fd < 0) {
		snprintf(why, sizeof(why), "userfaultfd: %s", strerror(errno));
		return why;
	}
	close(fd);
	return NULL;
}

static const char *probe_uffd_wp(void)
{
	static char why[128];
	int fd = new_uffd(UFFD_FEATURE_PAGEFAULT_FLAG_WP);

	if (fd < 0) {
		snprintf(why, sizeof(why), "userfaultfd write protection: %s", strerror(errno));
		return why;
	}
	close(fd);
	return NULL;
}

static const char *probe_secret(void)
{
	static char why[160];
	int fd = (int)syscall(SYS_memfd_secret, O_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		return NULL;
	}
	if (errno == ENOSYS)
		return "memfd_secret is not enabled (Linux 6.1 needs secretmem.enable=1)";
	snprintf(why, sizeof(why), "memfd_secret: %s", strerror(errno));
	return why;
}

static const char *probe_vdso(void)
{
	uintptr_t s, e;

	return find_mapping("[vdso]", &s, &e) ? NULL : "no [vdso] mapping";
}

static const char *probe_vvar(void)
{
	uintptr_t s, e;

	if (!find_mapping("[vvar]", &s, &e))
		return "no [vvar] mapping";
	/*
	 * In 7.3 (since the generic vDSO data store; 6.12 still has the old
	 * kind) [vvar] holds ordinary pages in a VM_MIXEDMAP special mapping. get_user_pages() then reads the
	 * pages the owner has faulted in (a remote fault gets SIGBUS), and so
	 * does an attachment. What it reads is the clock, which changes by
	 * itself, so there is nothing to compare it with.
	 */
	if (!smaps_has_vmflag(s, "pf") && !smaps_has_vmflag(s, "io"))
		return "[vvar] is not VM_IO|VM_PFNMAP on this kernel (a VM_MIXEDMAP special mapping, "
		       "whose present pages get_user_pages() reads too)";
	return NULL;
}

/* ---- the table of rows */

#define ANON_EVENTS (E(C_PAGEOUT) | E(C_MIGRATE) | E(C_COMPACT) | E(C_MPROTECT) | \
		     E(C_FORK) | E(C_MUNMAP) | E(C_SOFTDIRTY) | E(C_UPGRADE))

static const struct row rows[] = {
	{ "anon", "anonymous (MAP_PRIVATE), written", 0, SMALL, NULL,
	  setup_anon, NULL, X_DATA, X_DATA, ANON_EVENTS, E(C_PAGEOUT) },
	{ "anon_swapped", "anonymous, swapped out (zram)", R_ROOT | R_SWAP, SMALL, NULL,
	  setup_anon_swapped, NULL, X_DATA, X_DATA, E(C_PAGEOUT), E(C_PAGEOUT) },
	{ "thp", "anonymous THP (2 MiB, MADV_HUGEPAGE)", 0, HUGE, probe_thp,
	  setup_thp, NULL, X_DATA, X_DATA,
	  E(C_PAGEOUT) | E(C_MIGRATE) | E(C_MPROTECT) | E(C_FORK) | E(C_MUNMAP) | E(C_UPGRADE),
	  E(C_PAGEOUT) },
	{ "thp_zero", "huge zero page (THP-eligible, only read)", 0, HUGE, probe_thp,
	  setup_thp_zero, NULL, X_DATA, X_DATA, E(C_FORK), 0 },
	{ "madv_free", "anonymous after MADV_FREE", 0, SMALL, NULL,
	  setup_madv_free, NULL, X_DATA, X_DATA, E(C_PAGEOUT) | E(C_FORK), 0 },
	{ "thp_madv_free", "anonymous THP after MADV_FREE", 0, HUGE, probe_thp,
	  setup_thp_madv_free, NULL, X_DATA, X_DATA, E(C_PAGEOUT), 0 },
	{ "shmem", "shmem (MAP_SHARED|MAP_ANONYMOUS), written", R_SHARED, SMALL, NULL,
	  setup_shmem, NULL, X_DATA, X_DATA,
	  E(C_PAGEOUT) | E(C_MIGRATE) | E(C_COMPACT) | E(C_MPROTECT) | E(C_FORK) | E(C_MUNMAP) |
	  E(C_SOFTDIRTY), E(C_PAGEOUT) },
	{ "shmem_thp", "shmem on a huge page (shmem_enabled advise, MADV_HUGEPAGE)", R_SHARED,
	  HUGE, probe_shmem_thp, setup_shmem_thp, NULL, X_DATA, X_DATA,
	  E(C_PAGEOUT) | E(C_MIGRATE) | E(C_UPGRADE), E(C_PAGEOUT) },
	{ "shmem_holes", "shmem, never written (pages made by read faults)", R_SHARED, SMALL, NULL,
	  setup_shmem_holes, NULL, X_DATA, X_DATA, E(C_PAGEOUT) | E(C_UPGRADE), 0 },
	{ "memfd", "memfd, MAP_SHARED, holes", R_SHARED | R_FILE, SMALL, NULL,
	  setup_memfd, NULL, X_DATA, X_DATA,
	  E(C_PAGEOUT) | E(C_MIGRATE) | E(C_MPROTECT) | E(C_MUNMAP) | E(C_TRUNCATE) | E(C_PUNCH),
	  0 },
	{ "tmpfs_file", "tmpfs file, MAP_SHARED: written pages and holes", R_SHARED | R_FILE, SMALL,
	  NULL, setup_tmpfs_file, NULL, X_DATA, X_DATA,
	  E(C_PAGEOUT) | E(C_MUNMAP) | E(C_TRUNCATE) | E(C_PUNCH) | E(C_FORK), 0 },
	{ "tmpfs_file_ro", "tmpfs file opened O_RDONLY, MAP_SHARED PROT_READ", R_SHARED | R_FILE,
	  SMALL, NULL, setup_tmpfs_file_ro, NULL, X_DATA, X_SIGBUS, 0, 0 },
	{ "private_file", "tmpfs file (O_RDONLY), MAP_PRIVATE, before COW", R_PRIVFILE, SMALL,
	  NULL, setup_private_file, NULL, X_DATA, X_DATA, E(C_MIGRATE) | E(C_FORK), 0 },
	{ "private_file_cow", "tmpfs file (O_RDONLY), MAP_PRIVATE, after COW", R_PRIVFILE, SMALL,
	  NULL, setup_private_file_cow, NULL, X_DATA, X_DATA, E(C_PAGEOUT) | E(C_FORK),
	  E(C_PAGEOUT) },
	{ "hugetlb", "hugetlbfs MAP_PRIVATE (MAP_HUGETLB, 2 MiB)", 0, HUGE, probe_hugetlb,
	  setup_hugetlb, NULL, X_DATA, X_DATA,
	  E(C_MIGRATE) | E(C_MPROTECT) | E(C_FORK) | E(C_MUNMAP) | E(C_UPGRADE), 0 },
	{ "hugetlb_shared", "hugetlbfs MAP_SHARED (memfd MFD_HUGETLB, 2 MiB)", R_SHARED | R_FILE,
	  HUGE, probe_hugetlb, setup_hugetlb_shared, NULL, X_DATA, X_DATA,
	  E(C_MUNMAP) | E(C_TRUNCATE), 0 },
	{ "zero_page", "the zero page (untouched anonymous, read)", 0, SMALL, NULL,
	  setup_zero, NULL, X_DATA, X_DATA, E(C_FORK), 0 },
	{ "mlock", "mlocked anonymous", 0, SMALL, probe_mlock,
	  setup_mlock, NULL, X_DATA, X_DATA,
	  E(C_MIGRATE) | E(C_MPROTECT) | E(C_FORK) | E(C_MUNMAP), 0 },
	{ "ksm", "KSM-merged anonymous", R_ROOT, SMALL, probe_ksm,
	  setup_ksm, NULL, X_DATA, X_DATA, E(C_FORK), 0 },
	{ "uffd_missing", "userfaultfd MISSING range, unpopulated, unhandled",
	  R_CHILD | R_UFFD, SMALL, probe_uffd,
	  setup_uffd_missing, NULL, X_SIGBUS, X_SIGBUS, E(C_NEIGHBOUR), 0 },
	{ "uffd_wp", "userfaultfd WP range, write-protected", 0, SMALL, probe_uffd_wp,
	  setup_uffd_wp, NULL, X_DATA, X_SIGBUS, 0, 0 },
	{ "secret", "memfd_secret", R_CHILD, SMALL, probe_secret,
	  setup_secret, NULL, X_SIGBUS, X_SIGBUS, E(C_NEIGHBOUR), 0 },
	{ "pfnmap", "another attachment, re-exported (VM_PFNMAP)", R_CHILD, SMALL,
	  NULL, setup_pfnmap, teardown_pfnmap, X_SIGBUS, X_SIGBUS, E(C_NEIGHBOUR), 0 },
	{ "prot_none", "PROT_NONE (written, then mprotect)", R_CHILD | R_NOREAD,
	  SMALL, NULL, setup_prot_none, NULL, X_SIGBUS, X_SIGBUS, E(C_NEIGHBOUR), 0 },
	{ "sealed_write", "memfd with F_SEAL_WRITE, MAP_SHARED PROT_READ", R_SHARED | R_FILE,
	  SMALL, NULL, setup_sealed_write, NULL, X_DATA, X_SIGBUS, 0, 0 },
	{ "sealed_future_write", "memfd with F_SEAL_FUTURE_WRITE, MAP_SHARED PROT_READ",
	  R_SHARED | R_FILE, SMALL, NULL, setup_sealed_future_write, NULL, X_DATA, X_SIGBUS, 0, 0 },
	{ "vdso", "[vdso] (special mapping, read-only)", R_KEEP, 0, probe_vdso,
	  setup_vdso, NULL, X_DATA, X_SIGBUS, 0, 0 },
	{ "vvar", "[vvar] (VM_IO|VM_PFNMAP)", R_CHILD | R_KEEP | R_VOLATILE, PAGE, probe_vvar,
	  setup_vvar, NULL, X_SIGBUS, X_SIGBUS, 0, 0 },
};
#define NROWS ((int)(sizeof(rows) / sizeof(rows[0])))

/* ---- the columns */

static void col_read(void)
{
	struct mem *m = &cur->m;
	struct step s = { OP_READ, cur->at, m->len, m->want };
	struct acc r;

	attacher_run(XPMEM_RDWR, &s, 1, &r);
	expect_acc("read", OP_READ, r, cur->row->read);
	expect_exporter("after the read", m->want);
	brief(acc_token(r));
}

static void col_write(void)
{
	struct mem *m = &cur->m;
	unsigned char *w = new_pattern(SEED_W, m->len, false);
	struct step s = { OP_WRITE, cur->at, m->len, w };
	struct acc r;

	attacher_run(XPMEM_RDWR, &s, 1, &r);
	expect_acc("write", OP_WRITE, r, cur->row->write);
	expect_exporter("after the write", cur->row->write == X_DATA ? w : m->want);
	brief(acc_token(r));
}

static void col_rw(void)
{
	struct mem *m = &cur->m;
	unsigned char *w = new_pattern(SEED_W, m->len, false);
	struct step s[2] = { { OP_READ, cur->at, m->len, m->want },
			     { OP_WRITE, cur->at, m->len, w } };
	struct acc r[2];
	char b[24];

	attacher_run(XPMEM_RDWR, s, 2, r);
	expect_acc("read", OP_READ, r[0], cur->row->read);
	expect_acc("then write", OP_WRITE, r[1], cur->row->write);
	expect_exporter("after the write", cur->row->write == X_DATA ? w : m->want);
	snprintf(b, sizeof(b), "%s, %s", acc_token(r[0]), acc_token(r[1]));
	brief(b);
}

/* A read-only permit: reads as the exporter's, writes are SIGSEGV. */
static void col_rdonly(void)
{
	struct mem *m = &cur->m;
	unsigned char *w = new_pattern(SEED_W, m->len, false);
	struct step s[2] = { { OP_READ, cur->at, m->len, m->want },
			     { OP_WRITE, cur->at, m->len, w } };
	struct acc r[2];
	char b[24];

	attacher_run(XPMEM_RDONLY, s, 2, r);
	expect_acc("read", OP_READ, r[0], cur->row->read);
	expect_acc("write", OP_WRITE, r[1], X_SIGSEGV);
	expect_exporter("after the write", m->want);
	snprintf(b, sizeof(b), "%s, %s", acc_token(r[0]), acc_token(r[1]));
	brief(b);
}

/* ---- the events */

/*
 * Both directions after an event: the attacher's write reaches the
 * exporter, and the exporter's next write reaches the attacher. (Reading
 * the old data alone would not show a stale mapping of a freed page.)
 */
static void both_ways(unsigned char *a, const char *after)
{
	struct mem *m = &cur->m;
	unsigned char *w = new_pattern(SEED_W, m->len, false);
	unsigned char *w2 = new_pattern(SEED_W2, m->len, false);
	char what[96];

	snprintf(what, sizeof(what), "write after %s", after);
	att_write(what, a, 0, m->len, w, X_DATA);
	expect_exporter(what, w);
	exporter_writes(w2, 0, m->len);
	snprintf(what, sizeof(what), "the exporter's write after %s", after);
	att_read(what, a, 0, m->len, w2, X_DATA);
	free(w);
	free(w2);
}

/*
 * Reclaim: the attacher reads, then writes; MADV_PAGEOUT; the write must
 * still be there (lost-write bug: a page the attachment made dirty that the
 * exporter's page tables call clean is dropped, or its stale swap copy
 * kept).
 */
static void ev_pageout(void)
{
	struct mem *m = &cur->m;
	unsigned char *w = new_pattern(SEED_W, m->len, false);
	unsigned char *a = cell_attach(XPMEM_RDWR);
	size_t before, gone;

	att_read("read", a, 0, m->len, m->want, X_DATA);
	att_write("write", a, 0, m->len, w, X_DATA);
	expect_exporter("before MADV_PAGEOUT", w);
	before = resident_pages(m->buf, m->len);
	CK(madvise(m->buf, m->len, MADV_PAGEOUT) == 0, "MADV_PAGEOUT: %s", strerror(errno));
	gone = before - resident_pages(m->buf, m->len);
	record("%zu of %zu pages reclaimed", gone, m->len / PAGE);
	expect_exporter("after MADV_PAGEOUT", w);
	att_read("read after MADV_PAGEOUT", a, 0, m->len, w, X_DATA);
	if (cur->row->swap_events & E(C_PAGEOUT))
		CK(gone > 0, "MADV_PAGEOUT reclaimed none of the %zu pages: nothing was tested",
		   m->len / PAGE);
	brief("kept");
}

/* Move every page to the other NUMA node; returns that node. */
static int migrate_other_node(unsigned char *buf, size_t len)
{
	size_t n = len / PAGE;
	void **pages = calloc(n, sizeof(*pages));
	int *nodes = calloc(n, sizeof(*nodes)), *status = calloc(n, sizeof(*status));
	int target;
	size_t bad = 0;

	CK(pages && nodes && status, "calloc");
	for (size_t i = 0; i < n; i++)
		pages[i] = buf + i * PAGE;
	CK(syscall(SYS_move_pages, 0, n, pages, NULL, status, 0) == 0, "move_pages (query): %s",
	   strerror(errno));
	CK(status[0] >= 0, "move_pages: page 0: %s", strerror(-status[0]));
	target = status[0] == 0 ? 1 : 0;
	for (size_t i = 0; i < n; i++)
		nodes[i] = target;
	CK(syscall(SYS_move_pages, 0, n, pages, nodes, status, MPOL_MF_MOVE) >= 0,
	   "move_pages: %s", strerror(errno));
	CK(syscall(SYS_move_pages, 0, n, pages, NULL, status, 0) == 0, "move_pages (query): %s",
	   strerror(errno));
	for (size_t i = 0; i < n; i++)
		bad += status[i] != target;
	CK(bad == 0, "move_pages: %zu of %zu pages not on node %d (page 0: %d)", bad, n, target,
	   status[0]);
	free(pages);
	free(nodes);
	free(status);
	return target;
}

static void ev_migrate(void)
{
	struct mem *m = &cur->m;
	unsigned char *a = cell_attach(XPMEM_RDWR);
	int node;

	att_read("read", a, 0, m->len, m->want, X_DATA);
	node = migrate_other_node(m->buf, m->len);
	record("moved to node %d", node);
	att_read("read after migration", a, 0, m->len, m->want, X_DATA);
	both_ways(a, "migration");
	brief("followed");
}

static void ev_compact(void)
{
	struct mem *m = &cur->m;
	unsigned char *a = cell_attach(XPMEM_RDWR);

	att_read("read", a, 0, m->len, m->want, X_DATA);
	CK(xtest_write_file("/proc/sys/vm/compact_memory", "1") == 0, "compact_memory: %s",
	   strerror(errno));
	att_read("read after compaction", a, 0, m->len, m->want, X_DATA);
	both_ways(a, "compaction");
	brief("followed");
}

/* mprotect(PROT_READ) in the exporter: reads go on, writes are SIGBUS; and back. */
static void ev_mprotect(void)
{
	struct mem *m = &cur->m;
	unsigned char *w = new_pattern(SEED_W, m->len, false);
	unsigned char *w2 = new_pattern(SEED_W2, m->len, false);
	unsigned char *a = cell_attach(XPMEM_RDWR);

	att_write("write", a, 0, m->len, w, X_DATA);
	expect_exporter("after the write", w);
	CK(mprotect(m->buf, m->len, PROT_READ) == 0, "mprotect: %s", strerror(errno));
	att_read("read after mprotect(PROT_READ)", a, 0, m->len, w, X_DATA);
	att_write("write after mprotect(PROT_READ)", a, 0, m->len, w2, X_SIGBUS);
	expect_exporter("after the refused write", w);
	CK(mprotect(m->buf, m->len, PROT_READ | PROT_WRITE) == 0, "mprotect: %s",
	   strerror(errno));
	att_write("write after mprotect(PROT_READ|PROT_WRITE)", a, 0, m->len, w2, X_DATA);
	expect_exporter("after the write", w2);
	brief("RO: SIGBUS, RW: data");
}

/*
 * fork() in the exporter, with the attachment mapped: the exporter's write
 * (a COW break) is seen through the attachment, the attachment's write
 * lands in the exporter, and the child's copy keeps what it had (private)
 * or shares both writes (MAP_SHARED).
 */
static void ev_fork(void)
{
	struct mem *m = &cur->m;
	size_t half = m->len / PAGE / 2 * PAGE;
	unsigned char *w1 = new_pattern(SEED_W, m->len, false);
	unsigned char *w2 = new_pattern(SEED_W2, m->len, false);
	unsigned char *both = malloc(m->len);
	const unsigned char *child_expect;
	unsigned char *a = cell_attach(XPMEM_RDWR);
	int go[2], back[2], status;
	size_t child_off;
	pid_t child;

	CK(both != NULL, "malloc");
	memcpy(both, w1, half);
	memcpy(both + half, w2 + half, m->len - half);
	child_expect = cur->row->flags & R_SHARED ? both : m->want;
	att_read("read", a, 0, m->len, m->want, X_DATA);
	CK(pipe(go) == 0 && pipe(back) == 0, "pipe: %s", strerror(errno));
	child = fork();
	CK(child >= 0, "fork: %s", strerror(errno));
	if (child == 0) {
		char c;

		child_off = NO_OFF;
		if (read(go[0], &c, 1) == 1)
			child_off = first_diff(m->buf, child_expect, m->len);
		if (write(back[1], &child_off, sizeof(child_off)) != sizeof(child_off))
			_exit(1);
		_exit(0);
	}
	exporter_writes(w1, 0, half);
	att_read("read of the exporter's write after fork", a, 0, half, w1, X_DATA);
	att_read("read of the rest after fork", a, half, m->len - half, m->want, X_DATA);
	att_write("write after fork", a, half, m->len - half, w2, X_DATA);
	expect_exporter("after the writes", both);
	CK(write(go[1], "g", 1) == 1, "pipe: %s", strerror(errno));
	CK(read(back[0], &child_off, sizeof(child_off)) == sizeof(child_off),
	   "the forked child died");
	CK(waitpid(child, &status, 0) == child, "waitpid: %s", strerror(errno));
	CK(child_off == NO_OFF, "the forked child reads 0x%02x at offset %#zx, expected 0x%02x%s",
	   m->buf[child_off], child_off, child_expect[child_off],
	   cur->row->flags & R_SHARED ? "" : " (a write reached the child's COW copy)");
	record("child: %s", cur->row->flags & R_SHARED ? "shares both writes" : "keeps its copy");
	brief(cur->row->flags & R_SHARED ? "shared" : "COW kept");
	free(both);
}

/* munmap in the exporter: the attachment raises SIGBUS, then follows a new mapping. */
static void ev_munmap(void)
{
	struct mem *m = &cur->m;
	unsigned char *fresh = new_pattern(SEED_NEW, m->len, false);
	unsigned char *w = new_pattern(SEED_W, m->len, false);
	unsigned char *a = cell_attach(XPMEM_RDWR);
	size_t off;
	void *p;

	att_read("read", a, 0, m->len, m->want, X_DATA);
	CK(munmap(m->buf, m->len) == 0, "munmap: %s", strerror(errno));
	att_read("read after munmap", a, 0, m->len, m->want, X_SIGBUS);
	p = mmap(m->buf, m->len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	CK(p == m->buf, "mmap at the same address: %s", strerror(errno));
	memcpy(m->buf, fresh, m->len);
	att_read("read of the new mapping", a, 0, m->len, fresh, X_DATA);
	att_write("write to the new mapping", a, 0, m->len, w, X_DATA);
	off = first_diff(m->buf, w, m->len);
	CK(off == NO_OFF, "the exporter's new mapping reads 0x%02x at offset %#zx, expected 0x%02x",
	   m->buf[off], off, w[off]);
	brief("SIGBUS, then new");
}

/* ftruncate(0) of the file: SIGBUS for the exporter and the attacher alike; then holes. */
static void ev_truncate(void)
{
	struct mem *m = &cur->m;
	unsigned char *z = zeros(m->len);
	unsigned char *a = cell_attach(XPMEM_RDWR);

	att_read("read", a, 0, m->len, m->want, X_DATA);
	CK(ftruncate(m->fd, 0) == 0, "ftruncate: %s", strerror(errno));
	expect_acc("the exporter's own read after truncate", OP_READ,
		   touch(OP_READ, m->buf, m->len, m->want), X_SIGBUS);
	att_read("read after truncate", a, 0, m->len, m->want, X_SIGBUS);
	CK(ftruncate(m->fd, (off_t)m->len) == 0, "ftruncate: %s", strerror(errno));
	att_read("read after re-extending", a, 0, m->len, z, X_DATA);
	expect_exporter("after re-extending", z);
	both_ways(a, "re-extending");
	free(z);
	brief("SIGBUS, then 0");
}

/*
 * fallocate(PUNCH_HOLE) of the file's second half: the attacher reads the
 * hole as the exporter does (zeros, not the freed pages), and writes into
 * the new pages reach the file.
 */
static void ev_punch(void)
{
	struct mem *m = &cur->m;
	size_t half = m->len / PAGE / 2 * PAGE;
	unsigned char *expect = malloc(m->len);
	unsigned char *a = cell_attach(XPMEM_RDWR);

	CK(expect != NULL, "malloc");
	att_read("read", a, 0, m->len, m->want, X_DATA);
	CK(fallocate(m->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)half,
		     (off_t)(m->len - half)) == 0, "fallocate(PUNCH_HOLE): %s", strerror(errno));
	memcpy(expect, m->want, half);
	memset(expect + half, 0, m->len - half);
	att_read("read after the punch", a, 0, m->len, expect, X_DATA);
	expect_exporter("after the punch", expect);
	both_ways(a, "the punch");
	free(expect);
	brief("holes: 0");
}

/*
 * clear_refs soft-dirty tracking (CRIU's pre-dump): a write through the
 * attachment must show as soft-dirty in the exporter's pagemap, on the
 * written page only.
 */
static void ev_softdirty(void)
{
	struct mem *m = &cur->m;
	unsigned char *w = new_pattern(SEED_W, m->len, false);
	unsigned char *expect = malloc(m->len);
	unsigned char *a = cell_attach(XPMEM_RDWR);

	CK(expect != NULL, "malloc");
	att_read("read", a, 0, m->len, m->want, X_DATA);
	CK(xtest_write_file("/proc/self/clear_refs", "4") == 0, "clear_refs: %s",
	   strerror(errno));
	for (size_t i = 0; i < m->len; i += PAGE)
		CK(!(pagemap(m->buf + i) & PM_SOFT_DIRTY), "page %zu soft-dirty after clear_refs",
		   i / PAGE);
	att_write("write of page 1", a, PAGE, PAGE, w, X_DATA);
	for (size_t i = 0; i < m->len; i += PAGE) {
		bool sd = pagemap(m->buf + i) & PM_SOFT_DIRTY;

		if (i == PAGE)
			CK(sd, "the page written through the attachment is not soft-dirty in the "
			       "exporter's pagemap (a dump would miss the write)");
		else
			CK(!sd, "page %zu, not written, became soft-dirty", i / PAGE);
	}
	memcpy(expect, m->want, m->len);
	memcpy(expect + PAGE, w + PAGE, PAGE);
	expect_exporter("after the write", expect);
	free(expect);
	brief("marked");
}

/*
 * A write after a read upgrades that one page: the debugfs counter
 * write_upgrades goes up by one per page written, never more. Where the
 * read mapped the exporter's huge pages with PMDs (pmds_mapped), a write
 * makes the whole huge page writable instead, through a fault: no upgrade,
 * and one PMD mapped again per huge page written.
 */
static void ev_upgrade_pmd(unsigned char *a, const unsigned char *w, long pmds_read)
{
	struct mem *m = &cur->m;
	long u0 = xtest_stat("write_upgrades"), p0 = xtest_stat("pmds_mapped");

	att_write("write of one page", a, 0, PAGE, w, X_DATA);
	CK(xtest_stat("pmds_mapped") - p0 == 1 && xtest_stat("write_upgrades") == u0,
	   "a write to a read-mapped PMD: pmds_mapped went up by %ld (want 1), "
	   "write_upgrades by %ld (want 0)", xtest_stat("pmds_mapped") - p0,
	   xtest_stat("write_upgrades") - u0);
	att_write("write of the rest", a, PAGE, m->len - PAGE, w, X_DATA);
	CK(xtest_stat("pmds_mapped") - p0 == pmds_read && xtest_stat("write_upgrades") == u0,
	   "after writing all %ld read-mapped PMDs, pmds_mapped went up by %ld, "
	   "write_upgrades by %ld", pmds_read, xtest_stat("pmds_mapped") - p0,
	   xtest_stat("write_upgrades") - u0);
	expect_exporter("after the writes", w);
	brief("1 PMD per huge page");
}

static void ev_upgrade(void)
{
	struct mem *m = &cur->m;
	size_t n = m->len / PAGE, first = n < 4 ? n : 4;
	unsigned char *w = new_pattern(SEED_W, m->len, false);
	unsigned char *a = cell_attach(XPMEM_RDWR);
	long u0, d, p0 = xtest_stat("pmds_mapped");

	att_read("read", a, 0, m->len, m->want, X_DATA);
	if (xtest_stat("pmds_mapped") > p0) {
		ev_upgrade_pmd(a, w, xtest_stat("pmds_mapped") - p0);
		return;
	}
	u0 = xtest_stat("write_upgrades");
	CK(u0 >= 0, "no write_upgrades counter in /sys/kernel/debug/xpmem/stats");
	for (size_t k = 0; k < first; k++) {
		att_write("write of one page", a, k * PAGE, PAGE, w, X_DATA);
		d = xtest_stat("write_upgrades") - u0;
		CK(d == (long)k + 1, "after writing %zu of the %zu read-mapped pages, "
		   "write_upgrades went up by %ld", k + 1, n, d);
	}
	if (first < n)
		att_write("write of the rest", a, first * PAGE, m->len - first * PAGE, w, X_DATA);
	d = xtest_stat("write_upgrades") - u0;
	CK(d == (long)n, "after writing all %zu read-mapped pages, write_upgrades went up by %ld",
	   n, d);
	expect_exporter("after the writes", w);
	brief("1 per page");
}

/*
 * The row's memory right after an ordinary anonymous page: a fault on that
 * page maps a window around it, which must not bring the row's pages in.
 */
static void ev_neighbour(void)
{
	struct mem *m = &cur->m;
	unsigned char *n = new_pattern(SEED_NEIGHBOUR, PAGE, false);
	struct step s[2] = { { OP_READ, 0, PAGE, n }, { OP_READ, PAGE, m->len, m->want } };
	struct acc r[2];

	attacher_run(XPMEM_RDWR, s, 2, r);
	expect_acc("read of the neighbour page", OP_READ, r[0], X_DATA);
	expect_acc("then read", OP_READ, r[1], cur->row->read);
	expect_exporter("after the reads", m->want);
	brief(acc_token(r[1]));
}

static const struct col {
	const char *name;	/* for test names */
	const char *title;	/* for the table */
	void (*run)(void);
} cols[NCELLS] = {
	[C_READ] = { "read", "read", col_read },
	[C_WRITE] = { "write", "write", col_write },
	[C_RW] = { "rw", "read, write", col_rw },
	[C_RDONLY] = { "rdonly", "RDONLY permit", col_rdonly },
	[C_PAGEOUT] = { "pageout", "pageout", ev_pageout },
	[C_MIGRATE] = { "migrate", "migrate", ev_migrate },
	[C_COMPACT] = { "compact", "compact", ev_compact },
	[C_MPROTECT] = { "mprotect", "mprotect", ev_mprotect },
	[C_FORK] = { "fork", "fork", ev_fork },
	[C_MUNMAP] = { "munmap", "munmap", ev_munmap },
	[C_TRUNCATE] = { "truncate", "truncate", ev_truncate },
	[C_PUNCH] = { "punch", "punch hole", ev_punch },
	[C_SOFTDIRTY] = { "softdirty", "soft-dirty", ev_softdirty },
	[C_UPGRADE] = { "upgrade", "upgrade", ev_upgrade },
	[C_NEIGHBOUR] = { "neighbour", "neighbour", ev_neighbour },
};

/* ---- one cell */

static void cell_begin(int idx)
{
	const struct row *row = &rows[idx / NCELLS];
	struct mem *m = &cur->m;

	memset(cur, 0, sizeof(*cur));
	cur->row = row;
	cur->id = idx % NCELLS;
	snprintf(cur->label, sizeof(cur->label), "%s x %s", row->name, cols[cur->id].name);
	cur->res = &results[idx / NCELLS][cur->id];
	cur->res->status = 'F';
	cur->res->text[0] = 0;
	m->fd = -1;
	m->uffd = -1;
	m->len = row->len;
	if (cur->id == C_NEIGHBOUR) {
		/* [anonymous page][the row's memory], one exported range. */
		unsigned char *region = map_at(NULL, PAGE + m->len, PROT_NONE,
					       MAP_PRIVATE | MAP_ANONYMOUS, -1);
		unsigned char *n = new_pattern(SEED_NEIGHBOUR, PAGE, false);

		map_at(region, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
		memcpy(region, n, PAGE);
		free(n);
		row->setup(m, region + PAGE);
		cur->base = region;
		cur->span = PAGE + m->len;
		cur->at = PAGE;
	} else {
		row->setup(m, NULL);
		cur->base = m->buf;
		cur->span = m->len;
		cur->at = 0;
	}
	cur->segid = xpmem_make(cur->base, cur->span, XPMEM_PERMIT_MODE, (void *)0600);
	CK(cur->segid > 0, "xpmem_make: %s", strerror(errno));
}

static void cell_end(void)
{
	const struct row *row = cur->row;
	struct mem *m = &cur->m;

	for (int i = 0; i < cur->nattach; i++) {
		CK(xpmem_detach(cur->atts[i]) == 0, "xpmem_detach: %s", strerror(errno));
		CK(xpmem_release(cur->apids[i]) == 0, "xpmem_release: %s", strerror(errno));
	}
	CK(xpmem_remove(cur->segid) == 0, "xpmem_remove: %s", strerror(errno));
	if (row->teardown)
		row->teardown(m);
	if (!(row->flags & R_KEEP))
		munmap(cur->base, cur->span);
	if (m->fd >= 0)
		close(m->fd);
	if (m->uffd >= 0)
		close(m->uffd);
	free(m->want);
	free(m->file0);
	cur->res->status = 'P';
}

START_TEST(cell)
{
	cell_begin(_i);
	cols[cur->id].run();
	cell_end();
}
END_TEST

/* ---- the environment: swap, huge pages, KSM (root), and what the kernel has */

static long ksm_saved[3] = { -1, -1, -1 };
static const char *const ksm_files[3] = {
	"/sys/kernel/mm/ksm/run", "/sys/kernel/mm/ksm/pages_to_scan",
	"/sys/kernel/mm/ksm/sleep_millisecs",
};
static long hugepages_saved = -1;
static char shmem_thp_saved[32];
static bool swap_ours;
static char swap_why[160] = "needs swap, which only root can set up";

static bool swap_active(void)
{
	char line[256];
	bool on = false;
	FILE *f = fopen("/proc/swaps", "r");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		on |= strncmp(line, "/dev/", 5) == 0;
	fclose(f);
	return on;
}

/* Swap on zram, as test_events sets it up; kept if another program did. */
static void setup_swap(void)
{
	if (swap_active()) {
		have_swap = true;
		return;
	}
	if (access("/sys/block/zram0", F_OK) != 0 &&
	    system("modprobe zram num_devices=1 2>/dev/null") != 0) {
		snprintf(swap_why, sizeof(swap_why), "no swap: zram cannot be loaded");
		return;
	}
	if (xtest_read_long("/sys/block/zram0/disksize") <= 0 &&
	    xtest_write_file("/sys/block/zram0/disksize", "64M") != 0) {
		snprintf(swap_why, sizeof(swap_why), "no swap: zram0 disksize: %s",
			 strerror(errno));
		return;
	}
	if (system("mkswap -q /dev/zram0 && swapon /dev/zram0") != 0) {
		snprintf(swap_why, sizeof(swap_why), "no swap: mkswap/swapon on zram0 failed");
		return;
	}
	swap_ours = true;
	have_swap = true;
}

static long node_free_huge(int node)
{
	char path[128];

	snprintf(path, sizeof(path),
		 "/sys/devices/system/node/node%d/hugepages/hugepages-2048kB/free_hugepages", node);
	return xtest_read_long(path);
}

static void read_huge_free(void)
{
	for (int n = 0; n < 2; n++)
		huge_free[n] = node_free_huge(n) > 0 ? node_free_huge(n) : 0;
	if (!have_numa) {
		long f = xtest_read_long(HUGE_FREE_ALL);

		huge_free[0] = f > 0 ? f : 0;
		huge_free[1] = 0;
	}
}

static void env_setup(void)
{
	char text[32];
	long nr;

	trace("start");
	have_numa = access("/sys/devices/system/node/node1", F_OK) == 0;
	if (access("/dev/shm", W_OK) == 0) {
		struct statfs st;

		if (statfs("/dev/shm", &st) == 0 && st.f_type == TMPFS_MAGIC)
			tmpfs_dir = "/dev/shm";
	}
	if (!tmpfs_dir)
		tmpfs_dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	if (!is_root && xtest_read_long("/proc/sys/vm/unprivileged_userfaultfd") != 1)
		uffd_flags = UFFD_USER_MODE_ONLY;

	/* Soft-dirty tracking: a fresh write must be soft-dirty, clear_refs must clear it. */
	{
		unsigned char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		uint64_t e1 = 0, e2 = PM_SOFT_DIRTY;

		if (p != MAP_FAILED && fd >= 0) {
			p[0] = 1;
			if (pread(fd, &e1, 8, (off_t)((uintptr_t)p / PAGE * 8)) == 8 &&
			    xtest_write_file("/proc/self/clear_refs", "4") == 0 &&
			    pread(fd, &e2, 8, (off_t)((uintptr_t)p / PAGE * 8)) == 8)
				have_softdirty = (e1 & PM_SOFT_DIRTY) && !(e2 & PM_SOFT_DIRTY);
		}
		if (fd >= 0)
			close(fd);
		if (p != MAP_FAILED)
			munmap(p, PAGE);
	}

	trace("probes");
	if (!is_root) {
		read_huge_free();
		return;
	}
	setup_swap();
	trace("swap");
	/* Huge pages: 4 in all (fork COW needs 2; migration one free on the other node). */
	read_huge_free();
	nr = xtest_read_long("/proc/sys/vm/nr_hugepages");
	if (nr >= 0 && huge_free[0] + huge_free[1] < 4) {
		hugepages_saved = nr;
		snprintf(text, sizeof(text), "%ld", nr + 4 - (huge_free[0] + huge_free[1]));
		(void)xtest_write_file("/proc/sys/vm/nr_hugepages", text);
		read_huge_free();
	}
	trace("huge pages");
	/* shmem THP for the shmem_thp row ("advise": only where MADV_HUGEPAGE asks). */
	{
		char mode[128] = "";
		FILE *f = fopen(SHMEM_ENABLED, "r");

		if (f) {
			if (fgets(mode, sizeof(mode), f) && strstr(mode, "[never]") &&
			    xtest_write_file(SHMEM_ENABLED, "advise") == 0)
				strcpy(shmem_thp_saved, "never");
			fclose(f);
		}
	}
	/* KSM: scan fast while the ksm row runs. */
	if (access(ksm_files[0], F_OK) == 0) {
		static const char *const fast[3] = { "1", "10000", "0" };

		for (int i = 0; i < 3; i++) {
			ksm_saved[i] = xtest_read_long(ksm_files[i]);
			(void)xtest_write_file(ksm_files[i], fast[i]);
		}
	}
	trace("KSM and shmem THP");
}

static void env_restore(void)
{
	char text[32];

	for (int i = 2; i >= 0; i--) {
		if (ksm_saved[i] < 0)
			continue;
		snprintf(text, sizeof(text), "%ld", ksm_saved[i]);
		(void)xtest_write_file(ksm_files[i], text);
	}
	if (shmem_thp_saved[0])
		(void)xtest_write_file(SHMEM_ENABLED, shmem_thp_saved);
	if (hugepages_saved >= 0) {
		snprintf(text, sizeof(text), "%ld", hugepages_saved);
		(void)xtest_write_file("/proc/sys/vm/nr_hugepages", text);
	}
	if (swap_ours &&
	    system("swapoff /dev/zram0 && echo 1 > /sys/block/zram0/reset") != 0)
		fprintf(stderr, "memkinds: could not take the zram swap down\n");
}

/* Why cell @c of row @r cannot run here, or NULL. */
static const char *cell_skip_reason(const struct row *r, int c)
{
	bool hugetlb = r->setup == setup_hugetlb || r->setup == setup_hugetlb_shared;

	if ((r->swap_events & E(c)) && !have_swap)
		return swap_why;
	switch (c) {
	case C_COMPACT:
		return is_root ? NULL : "compaction (compact_memory) needs root";
	case C_MIGRATE:
		if (!have_numa)
			return "one NUMA node: nowhere to migrate to (the VM needs --numa 2)";
		if (hugetlb && (huge_free[0] < 1 || huge_free[1] < 1 ||
				huge_free[0] + huge_free[1] < 2))
			return "needs a free huge page on each node";
		return NULL;
	case C_SOFTDIRTY:
		return have_softdirty ? NULL : "this kernel has no soft-dirty tracking";
	case C_FORK:
		if (hugetlb && huge_free[0] + huge_free[1] < 2)
			return "needs 2 free huge pages (COW after fork)";
		return NULL;
	}
	return NULL;
}

static const char *row_skip_reason(const struct row *r)
{
	if ((r->flags & R_ROOT) && !is_root)
		return "needs root";
	if ((r->flags & R_SWAP) && !have_swap)
		return swap_why;
	return r->probe ? r->probe() : NULL;
}

/* The outcome table (markdown), then what happened in each failed cell. */
static void print_table(void)
{
	bool any = false;

	for (int r = 0; r < NROWS; r++)
		for (int c = 0; c < NCELLS; c++)
			any |= results[r][c].status == 'P' || results[r][c].status == 'F';
	if (!any)
		return;
	printf("\nmemkinds: outcome of each cell (FAIL: see below; skip: see SKIP lines; "
	       "-: does not apply)\n\n| row |");
	for (int c = 0; c < NCELLS; c++)
		printf(" %s |", cols[c].title);
	printf("\n|---|");
	for (int c = 0; c < NCELLS; c++)
		printf("---|");
	printf("\n");
	for (int r = 0; r < NROWS; r++) {
		printf("| %s |", rows[r].name);
		for (int c = 0; c < NCELLS; c++) {
			const struct result *res = &results[r][c];

			printf(" %s |", res->status == 'P' ? res->brief :
					res->status == 'F' ? "FAIL" :
					res->status == 'S' ? "skip" : "-");
		}
		printf("\n");
	}
	printf("\n");
	for (int r = 0; r < NROWS; r++)
		printf("%s: %s\n", rows[r].name, rows[r].what);
	for (int r = 0; r < NROWS; r++)
		for (int c = 0; c < NCELLS; c++)
			if (results[r][c].status == 'F')
				printf("FAILED %s x %s: %s\n", rows[r].name, cols[c].name,
				       results[r][c].text);
	if (getenv("MEMKINDS_VERBOSE"))
		for (int r = 0; r < NROWS; r++)
			for (int c = 0; c < NCELLS; c++)
				if (results[r][c].status == 'P')
					printf("passed %s x %s: %s\n", rows[r].name,
					       cols[c].name, results[r][c].text);
}


int main(void)
{
	Suite *s = suite_create("memkinds");
	double t0 = now(), t1, t2;
	cpu_set_t one;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	is_root = geteuid() == 0;
	results = mmap(NULL, sizeof(*results) * NROWS, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (results == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	/*
	 * Keep automatic NUMA balancing off our pages: its hinting faults are
	 * invalidations that would make the write_upgrades counts noisy.
	 * A local policy is not scanned; no NUMA is no error.
	 */
	(void)syscall(SYS_set_mempolicy, MPOL_LOCAL, NULL, 0);
	/*
	 * One CPU for every process of the test: pages just faulted in wait in
	 * that CPU's LRU batch, which MADV_PAGEOUT drains (only there) before
	 * it isolates them. On another CPU they would not be reclaimed, and a
	 * lost write would go unseen.
	 */
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
	(void)sched_setaffinity(0, sizeof(one), &one);
	/* Without the device nothing runs: leave swap, huge pages and KSM alone. */
	if (access(XPMEM_DEV_PATH, F_OK) != 0)
		is_root = false;
	env_setup();

	for (int r = 0; r < NROWS; r++) {
		const char *why = row_skip_reason(&rows[r]);
		unsigned int cells = COLUMNS | rows[r].events;
		TCase *tc = NULL;

		for (int c = 0; c < NCELLS; c++) {
			const char *cwhy = why;
			char name[96];

			if (!(cells & E(c)))
				continue;
			if (!cwhy)
				cwhy = cell_skip_reason(&rows[r], c);
			if (cwhy) {
				snprintf(name, sizeof(name), "%s x %s", rows[r].name, cols[c].name);
				xtest_skip(name, cwhy);
				results[r][c].status = 'S';
				snprintf(results[r][c].text, sizeof(results[r][c].text), "%s",
					 cwhy);
				continue;
			}
			if (!tc)
				tc = xtest_tcase(s, rows[r].name);
			tcase_add_loop_test(tc, cell, r * NCELLS + c, r * NCELLS + c + 1);
		}
	}

	trace("the rows' probes");
	t1 = now();
	rc = xtest_main("memkinds", s, XTEST_NEEDS_DEVICE);
	t2 = now();
	print_table();
	if (is_root)
		env_restore();
	printf("memkinds: %.1f s: %.1f s setting up swap, huge pages and KSM, %.1f s of cells, "
	       "%.1f s restoring\n", now() - t0, t1 - t0, t2 - t1, now() - t2);
	return rc;
}
