// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * allreduce.c - an allreduce done by loads and stores in a shared address
 * space, against MPI_Allreduce.
 *
 * Every rank exports its input vector and a result buffer, and attaches
 * every other rank's once. A call then runs in two steps:
 *   reduce-scatter: rank p sums slice p of the vector (1/P of it) by reading
 *     slice p of every rank's input through the attachments, and writes the
 *     sum into slice p of its own result buffer;
 *   allgather: rank p copies every slice q from rank q's result buffer into
 *     its output vector.
 * In each step a rank reads (P-1)/P of a vector's bytes, 1/P from each
 * peer, and every rank's memory is read as much as any other's. The peers
 * are visited starting after one's own rank, so that the ranks do not all
 * read the same peer at the same moment.
 *
 * Synchronisation: a barrier made of the flags in every rank's exported
 * page (each rank raises its own to the barrier's number, then waits for
 * every peer's to get there), at two points of each call:
 *   1. before the reduce-scatter: every input is written, and every rank
 *      has finished the previous call's allgather, so result buffers may
 *      be overwritten;
 *   2. before the allgather: every slice is summed, and nobody reads the
 *      inputs any more, so the caller may change its input as soon as the
 *      call returns.
 * The output vector is private, so it is free when the call returns too:
 * the call has MPI_Allreduce's semantics. (Reading the peers' outputs
 * directly would save the result buffer but need a third barrier at the
 * end, before the caller may touch its output.)
 *
 * The data are int64 and the operation MPI_SUM: integer addition is
 * associative, so the sum is the same whatever order MPI_Allreduce's
 * algorithm adds in, and the two results must be equal bit for bit. Values
 * are below 2^40, so nothing overflows for up to 2^23 ranks. (Doubles
 * would round differently in another summation order, and MPICH picks its
 * algorithm by size and rank count.)
 *
 * Each round has new inputs, made from (round, rank, index), and the output
 * is poisoned before each call, so a stale or missing slice is caught. Each
 * round's results are checked against MPI_Allreduce's, and against the sum
 * computed directly from the formula. Times are the median over rounds of
 * the slowest rank's call.
 *
 * Run:   mpiexec -n 4 examples/allreduce                  (1 KiB to 256 KiB)
 *        mpiexec -n 4 examples/allreduce --max 16M --rounds 20
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xpmem_mpi.h"
#include "example_util.h"

struct team {
	int rank, nranks;
	struct ex_region own;		/* input vector, then result buffer */
	struct ex_peer *peer;		/* peer[q]: rank q's region (unused for q == rank) */
	size_t max_elems;		/* capacity of each vector */
	uint64_t epoch;			/* barriers passed */
};

/* First element of rank q's slice of an n-element vector. */
static size_t slice_lo(size_t n, int nranks, int q)
{
	return n * (size_t)q / (size_t)nranks;
}

/* Rank q's input and result buffers, as this rank sees them. */
static const int64_t *input_of(const struct team *t, int q)
{
	return q == t->rank ? t->own.data : t->peer[q].data;
}

static const int64_t *result_of(const struct team *t, int q)
{
	return input_of(t, q) + t->max_elems;
}

static void flag_barrier(struct team *t)
{
	t->epoch++;
	ex_flag_set(t->own.flag, t->epoch);
	for (int k = 1; k < t->nranks; k++) {
		int q = (t->rank + k) % t->nranks;

		ex_flag_wait(t->peer[q].flag, t->epoch, q);
	}
}

/* out[0..n) = sum over ranks of their input[0..n); input is t->own.data. */
static void xpmem_allreduce(struct team *t, size_t n, int64_t *out)
{
	size_t lo = slice_lo(n, t->nranks, t->rank), hi = slice_lo(n, t->nranks, t->rank + 1);
	int64_t *sum = (int64_t *)t->own.data + t->max_elems;

	/* Inputs written; the previous call's readers of `sum` are done. */
	flag_barrier(t);
	memcpy(sum + lo, input_of(t, t->rank) + lo, (hi - lo) * sizeof(*sum));
	for (int k = 1; k < t->nranks; k++) {
		const int64_t *in = input_of(t, (t->rank + k) % t->nranks);

		for (size_t i = lo; i < hi; i++)
			sum[i] += in[i];
	}
	/* Every slice summed; nobody reads the inputs any more. */
	flag_barrier(t);
	for (int k = 0; k < t->nranks; k++) {
		int q = (t->rank + k) % t->nranks;
		size_t qlo = slice_lo(n, t->nranks, q), qhi = slice_lo(n, t->nranks, q + 1);

		memcpy(out + qlo, result_of(t, q) + qlo, (qhi - qlo) * sizeof(*out));
	}
}

/* Input element i of rank q in round r: below 2^40. */
static int64_t value(uint64_t r, int q, size_t i)
{
	return (int64_t)(ex_mix64((r << 40) ^ ((uint64_t)q << 32) ^ i) >> 24);
}

static unsigned long long check(const struct team *t, uint64_t r, size_t n, const int64_t *out,
				const int64_t *mpi_out)
{
	unsigned long long bad = 0;

	for (size_t i = 0; i < n; i++) {
		int64_t want = 0;

		for (int q = 0; q < t->nranks; q++)
			want += value(r, q, i);
		if (out[i] != want || mpi_out[i] != want) {
			if (bad++ < 5)
				fprintf(stderr, "rank %d round %" PRIu64 " element %zu of %zu: xpmem %" PRId64
					", MPI_Allreduce %" PRId64 ", expected %" PRId64 "\n",
					t->rank, r, i, n, out[i], mpi_out[i], want);
		}
	}
	return bad;
}

int main(int argc, char **argv)
{
	struct ex_sweep sw = { .min = 1u << 10, .max = 256u << 10, .step = 4 };
	size_t rounds = 6;
	const struct ex_opt opts[] = {
		EX_SWEEP_OPTS(sw),
		{ "rounds", EX_COUNT, &rounds, "timed calls per size, each with new data" },
	};
	struct team t = { 0 };
	struct xm_remote *all;
	int64_t *out, *mpi_out;
	double *tx, *tm;
	unsigned long long bad = 0;
	uint64_t data_round = 0;
	int rc;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &t.rank);
	MPI_Comm_size(MPI_COMM_WORLD, &t.nranks);
	rc = ex_parse_opts(argc, argv, opts, sizeof(opts) / sizeof(opts[0]),
			   "allreduce: reduce-scatter + allgather through XPMEM attachments vs MPI_Allreduce");
	if (rc == 0 && !ex_sweep_ok(&sw))
		rc = -1;
	if (rc != 0) {
		MPI_Finalize();
		return rc < 0 ? 2 : 0;
	}

	t.max_elems = sw.max / sizeof(int64_t);
	all = calloc((size_t)t.nranks, sizeof(*all));
	t.peer = calloc((size_t)t.nranks, sizeof(*t.peer));
	out = malloc(sw.max);
	mpi_out = malloc(sw.max);
	tx = calloc(rounds, sizeof(*tx));
	tm = calloc(rounds, sizeof(*tm));
	if (!all || !t.peer || !out || !mpi_out || !tx || !tm)
		xm_die("malloc");
	t.own = ex_region_create(MPI_COMM_WORLD, 2 * sw.max, all);
	for (int q = 0; q < t.nranks; q++)
		if (q != t.rank)
			t.peer[q] = ex_peer_attach(&all[q], 2 * sw.max);

	if (t.rank == 0) {
		printf("allreduce: %d rank(s), int64 MPI_SUM, median of %zu rounds of new data, slowest rank\n",
		       t.nranks, rounds);
		printf("%10s %10s %10s %9s\n", "bytes", "xpmem us", "MPI us", "MPI/xpmem");
	}
	for (size_t size = sw.min; size; size = ex_next_size(size, &sw)) {
		size_t n = size / sizeof(int64_t);
		double x, m;

		/* Round 0 is a warm-up: its first touches fault the attachments in. */
		for (size_t r = 0; r <= rounds; r++, data_round++) {
			int64_t *in = t.own.data;
			double t0;

			for (size_t i = 0; i < n; i++)
				in[i] = value(data_round, t.rank, i);
			memset(out, 0xa5, size);
			memset(mpi_out, 0x5a, size);

			MPI_Barrier(MPI_COMM_WORLD);
			t0 = MPI_Wtime();
			xpmem_allreduce(&t, n, out);
			if (r)
				tx[r - 1] = MPI_Wtime() - t0;
			MPI_Barrier(MPI_COMM_WORLD);
			t0 = MPI_Wtime();
			MPI_Allreduce(in, mpi_out, (int)n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
			if (r)
				tm[r - 1] = MPI_Wtime() - t0;
			bad += check(&t, data_round, n, out, mpi_out);
		}
		x = ex_median_of_max(MPI_COMM_WORLD, tx, (int)rounds);
		m = ex_median_of_max(MPI_COMM_WORLD, tm, (int)rounds);
		if (t.rank == 0) {
			printf("%10zu %10.1f %10.1f %9.2f\n", size, x * 1e6, m * 1e6, m / x);
			fflush(stdout);
		}
	}

	rc = ex_finish(&t.own, t.peer, t.nranks, bad);
	free(all);
	free(t.peer);
	free(out);
	free(mpi_out);
	free(tx);
	free(tm);
	return rc;
}
