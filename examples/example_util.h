/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * example_util.h - what pingpong.c, halo.c and allreduce.c share beyond
 * xpmem_mpi.h: the exported region with its progress flag, waiting on a
 * peer's flag through an attachment, option parsing, reproducible test data,
 * median timing and the final verdict.
 *
 * Header-only (static functions), like xpmem_mpi.h, because each example is
 * one program built by one mpicc command.
 */
#ifndef EXAMPLE_UTIL_H
#define EXAMPLE_UTIL_H

#include <errno.h>
#include <inttypes.h>
#include <mpi.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "xpmem_mpi.h"

/* ------------------------------------------------------------ test data */

/*
 * A 64-bit mixing function (the splitmix64 finaliser): neighbouring inputs
 * give unrelated outputs, so data made from (round, rank, index) differs in
 * every word from one round to the next and a stale word cannot pass.
 */
static inline uint64_t ex_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* ------------------------------------------------------------ options */

enum ex_opt_kind {
	EX_BYTES,	/* a size: 4096, 64K, 16M, 1G (binary multiples) */
	EX_COUNT,	/* a plain positive number */
};

struct ex_opt {
	const char *name;	/* without the leading "--" */
	enum ex_opt_kind kind;
	size_t *value;		/* holds the default on entry */
	const char *help;
};

static inline int ex_parse_value(const char *s, enum ex_opt_kind kind, size_t *out)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	if (*s < '0' || *s > '9')
		return -1;
	v = strtoull(s, &end, 10);
	if (kind == EX_BYTES && *end) {
		switch (*end++) {
		case 'K': case 'k': shift = 10; break;
		case 'M': case 'm': shift = 20; break;
		case 'G': case 'g': shift = 30; break;
		default: return -1;
		}
		if (*end == 'i')	/* accept 64KiB, 64KB, 64K */
			end++;
		if (*end == 'B')
			end++;
	}
	if (*end || v == 0 || v > ((unsigned long long)SIZE_MAX >> shift))
		return -1;
	*out = (size_t)(v << shift);
	return 0;
}

/*
 * Parse --name VALUE and --name=VALUE. Every rank parses the same argv, so
 * every rank reaches the same answer without communicating; only rank 0
 * prints. Returns 0 to go on, 1 after --help, -1 on a bad command line.
 */
static inline int ex_parse_opts(int argc, char **argv, const struct ex_opt *opts, size_t nopts,
				const char *about)
{
	int rank;

	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *val = NULL;
		const struct ex_opt *o = NULL;

		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
			goto usage;
		for (size_t k = 0; k < nopts && !o; k++) {
			size_t len = strlen(opts[k].name);

			if (strncmp(arg, "--", 2) != 0 || strncmp(arg + 2, opts[k].name, len) != 0)
				continue;
			if (arg[2 + len] == '=')
				val = arg + 3 + len;
			else if (arg[2 + len] == '\0' && i + 1 < argc)
				val = argv[++i];
			else if (arg[2 + len] != '\0')
				continue;	/* a longer option with this prefix */
			o = &opts[k];
		}
		if (!o || !val || ex_parse_value(val, o->kind, o->value) != 0) {
			if (rank == 0)
				fprintf(stderr, "%s: bad option or value: %s\n", argv[0], arg);
			return -1;
		}
	}
	return 0;
usage:
	if (rank == 0) {
		int sizes = 0;

		printf("%s\nusage: mpiexec -n N %s [options]\n", about, argv[0]);
		for (size_t k = 0; k < nopts; k++) {
			sizes |= opts[k].kind == EX_BYTES;
			printf("  --%-8s %-5s %s (default %zu)\n", opts[k].name,
			       opts[k].kind == EX_BYTES ? "SIZE" : "N", opts[k].help,
			       *opts[k].value);
		}
		if (sizes)
			printf("SIZE takes K, M or G (binary): 64K, 16M.\n");
	}
	return 1;
}

/* A sweep over sizes: min, min*step, min*step^2, ... and max. */
struct ex_sweep {
	size_t min, max, step;
};

/* The sweep's three options, for an ex_opt table. */
#define EX_SWEEP_OPTS(sw)								\
	{ "min", EX_BYTES, &(sw).min, "smallest size, a multiple of 8" },		\
	{ "max", EX_BYTES, &(sw).max, "largest size, a multiple of 8, at most 1G" },	\
	{ "step", EX_COUNT, &(sw).step, "factor between sizes, 2 or more" }

/*
 * Whether the sweep can run: whole int64 words, and counts that fit MPI's
 * int. Rank 0 says what is wrong.
 */
static inline int ex_sweep_ok(const struct ex_sweep *sw)
{
	int rank;

	if (sw->min % 8 == 0 && sw->max % 8 == 0 && sw->min <= sw->max &&
	    sw->max <= ((size_t)1 << 30) && sw->step >= 2)
		return 1;
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	if (rank == 0)
		fprintf(stderr, "sizes must be multiples of 8, --min <= --max <= 1G, --step >= 2\n");
	return 0;
}

/* The size after `size`, or 0 after the last (max, even if the steps miss it). */
static inline size_t ex_next_size(size_t size, const struct ex_sweep *sw)
{
	if (size >= sw->max)
		return 0;
	return size <= sw->max / sw->step ? size * sw->step : sw->max;
}

/* ------------------------------------------------------------ timing */

static inline int ex_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * t[i] is this rank's time of repetition i. A collective operation is done
 * when its slowest rank is, so take the maximum over the ranks of each
 * repetition (ranks that did not time it pass 0), then the median over the
 * repetitions, which ignores the odd one disturbed by other work on the
 * machine. Sorts t; every rank gets the answer.
 */
static inline double ex_median_of_max(MPI_Comm comm, double *t, int n)
{
	MPI_Allreduce(MPI_IN_PLACE, t, n, MPI_DOUBLE, MPI_MAX, comm);
	qsort(t, (size_t)n, sizeof(*t), ex_cmp_double);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

/* ------------------------------------------------------------ progress flags */

/*
 * A counter that only its owner writes, in the owner's own exported memory,
 * and that peers poll through their attachment. It gets a cache line of its
 * own so that polling it does not disturb the data next to it.
 *
 * The owner publishes with a release store after writing its data; a peer
 * that sees the new value with an acquire load then also sees that data.
 * Both processes map the same physical page, and C11's lock-free atomics are
 * address-free, so this holds across the two mappings as it does within one
 * process.
 */
struct ex_flag {
	_Alignas(64) _Atomic uint64_t value;
};

static inline void ex_flag_set(struct ex_flag *f, uint64_t v)
{
	atomic_store_explicit(&f->value, v, memory_order_release);
}

/* Seconds a peer may take before we decide it is stuck (a lost signal). */
#define EX_FLAG_TIMEOUT 120.0

/*
 * Wait until the peer's flag reaches v. Spin briefly (lowest latency when
 * every rank has a CPU), then yield on every poll: with 4 ranks on the 2
 * CPUs of the test guest, the peer we wait for may need our CPU to get
 * there. A peer that never signals is a bug; report it and take the job
 * down instead of hanging.
 */
static inline void ex_flag_wait(const struct ex_flag *f, uint64_t v, int peer)
{
	double deadline = 0;

	for (unsigned long spins = 0;; spins++) {
		uint64_t now = atomic_load_explicit(&f->value, memory_order_acquire);

		if (now >= v)
			return;
		if (spins < 256)
			continue;
		sched_yield();
		if (spins % 4096 != 0)
			continue;
		if (deadline == 0) {
			deadline = MPI_Wtime() + EX_FLAG_TIMEOUT;
		} else if (MPI_Wtime() > deadline) {
			errno = ETIMEDOUT;
			fprintf(stderr, "flag of rank %d is %" PRIu64 ", waited for %" PRIu64 "\n",
				peer, now, v);
			xm_die("waiting for a peer");
		}
	}
}

/* ------------------------------------------------------------ shared regions */

/*
 * What each example exports: one page holding this rank's flag, then its
 * data (page aligned, zero filled). The flag and the data share one
 * attachment on the peer's side.
 */
struct ex_region {
	struct ex_flag *flag;
	void *data;
	size_t data_bytes;
	xpmem_segid_t segid;
};

static inline size_t ex_page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/*
 * Collective: map this rank's region, export the address space (once, as
 * MPI libraries do) and exchange (segid, address) with every rank of comm
 * into all[].
 */
static inline struct ex_region ex_region_create(MPI_Comm comm, size_t data_bytes,
						struct xm_remote *all)
{
	struct ex_region r;
	char *base;

	base = mmap(NULL, ex_page_size() + data_bytes, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		xm_die("mmap");
	r.flag = (struct ex_flag *)base;
	r.data = base + ex_page_size();
	r.data_bytes = data_bytes;
	r.segid = xm_export_all();
	xm_exchange(comm, r.segid, base, all);
	return r;
}

/* A peer's region, seen through a long-lived read-only attachment. */
struct ex_peer {
	struct xm_mapping map;
	const struct ex_flag *flag;
	const void *data;
};

static inline struct ex_peer ex_peer_attach(const struct xm_remote *remote, size_t data_bytes)
{
	struct ex_peer p;

	p.map = xm_attach(remote, ex_page_size() + data_bytes, XPMEM_RDONLY);
	p.flag = (const struct ex_flag *)p.map.ptr;
	p.data = (const char *)p.map.ptr + ex_page_size();
	return p;
}

/* ------------------------------------------------------------ verdict */

/*
 * Collective, the end of every example. Detach from the peers (entries
 * never attached, left zeroed, are skipped); once nobody can touch this
 * rank's memory any more, remove the segment and unmap the region. Then add
 * up every rank's count of wrong values, let rank 0 print the verdict and
 * finalise MPI. Returns the exit status, the same on every rank.
 */
static inline int ex_finish(struct ex_region *r, struct ex_peer *peers, int npeers,
			    unsigned long long bad)
{
	int rank;
	unsigned long long all = 0;

	for (int i = 0; i < npeers; i++)
		if (peers[i].map.base)
			xm_detach(&peers[i].map);
	MPI_Barrier(MPI_COMM_WORLD);
	if (xpmem_remove(r->segid) != 0)
		xm_die("xpmem_remove");
	munmap(r->flag, ex_page_size() + r->data_bytes);

	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Allreduce(&bad, &all, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
	if (rank == 0) {
		long attaches = xm_driver_stat("attaches"), faults = xm_driver_stat("faults");

		if (attaches >= 0)
			printf("driver counters since load: %ld attaches, %ld faults\n", attaches,
			       faults);
		if (all)
			printf("verification: FAILED (%llu wrong values)\n", all);
		else
			printf("verification: ok\n");
	}
	MPI_Finalize();
	return all ? 1 : 0;
}

#endif /* EXAMPLE_UTIL_H */
