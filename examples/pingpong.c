// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * pingpong.c - message latency and bandwidth: one copy through an XPMEM
 * attachment against MPI_Send/MPI_Recv.
 *
 * Ranks pair up (0<->1, 2<->3, ...; an even number of ranks is needed), and
 * all pairs run at the same time. Each rank exports its address space,
 * publishes the address of its message buffer, and attaches its partner's
 * buffer once, for the whole run (a long-lived attachment, as an MPI
 * library's registration cache keeps them).
 *
 * One xpmem round trip, between the initiator A (even rank) and B:
 *   A writes the message into its OWN buffer and raises its flag;
 *   B copies the message out of A's memory, through the attachment, into
 *     its own buffer (the one copy of the ping), checks it, raises its flag;
 *   A copies the echo out of B's buffer into a private receive buffer (the
 *     one copy of the pong) and checks it.
 * The MPI round trip moves the same bytes between the same buffers with
 * MPI_Send/MPI_Recv, MPICH's own intra-node path. The memcpy "round trip"
 * is the limit of any single copy: A alone makes the same two copies in its
 * own memory (its buffer into a scratch buffer, the scratch buffer into its
 * receive buffer), with no partner, attachment or flag.
 *
 * The signal is a counter in the sender's own exported page, which the
 * receiver polls through the attachment it already has (ex_flag_wait), not a
 * tiny MPI message: a zero-byte MPI message costs about what an MPI
 * pingpong of a small message costs, so the xpmem path would measure MPI's
 * latency again. The flag is written with a release store after the data,
 * and read with an acquire load before it. Each flag also says "I am done
 * with your buffer": A writes its buffer again only after B's flag shows B
 * has copied the previous message out of it, and B likewise.
 *
 * Checking: every message carries, in the first word of each 4 KiB page and
 * in its last word, a stamp made of the round-trip number; both ends check
 * the stamps on every round trip, so a page that was not copied, or came
 * from an older message, is caught at once. The rest of the message is a
 * pattern that differs per size and per method, checked in full after the
 * last round trip of each size.
 *
 * Reported: latency is half the round trip, taking for each round trip the
 * slowest pair's time and then the median over the round trips; MB/s is
 * bytes per latency; MPI/xpmem is the ratio of the latencies (above 1: the
 * attachment is faster), and xpmem/memcpy the ratio of the rates (1: the
 * attachment copies as fast as a local memcpy).
 *
 * Run:   mpiexec -n 2 examples/pingpong           (default: 8 B to 256 KiB)
 *        mpiexec -n 4 examples/pingpong --max 64M --step 2 --iters 100
 * Under QEMU's TCG (the test VM), glibc's memcpy copies blocks from 2 KiB
 * to about 1 MiB with `rep movsb`, which TCG runs at some 20-40 MB/s, as
 * slow locally as through an attachment. For meaningful rates there, run
 * with GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=1073741824 in the
 * environment (mpiexec passes it on); MPI's own copies get it too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xpmem_mpi.h"
#include "example_util.h"

#define STAMP_EVERY 4096	/* bytes between stamps: one per page */

enum method { VIA_XPMEM, VIA_MPI, VIA_MEMCPY };

struct pair {
	MPI_Comm comm;
	int rank, partner;
	int initiator;			/* A, the even rank, times the round trips */
	struct ex_region own;		/* the message buffer others read from */
	struct ex_peer peer;		/* the partner's buffer, attached once */
	uint64_t *recv;			/* A's private receive buffer */
	uint64_t *scratch;		/* A's stand-in for B's buffer (memcpy) */
	uint64_t seq;			/* flag value of the last message sent */
	unsigned long long bad;		/* wrong words seen on this rank */
};

/* The message body: different for every size, method and pair. */
static uint64_t body_key(size_t size, enum method m, int initiator_rank)
{
	return ex_mix64(((uint64_t)size << 16) ^ ((uint64_t)m << 8) ^ (uint64_t)initiator_rank);
}

static int is_stamp(size_t word, size_t nwords)
{
	return word % (STAMP_EVERY / 8) == 0 || word == nwords - 1;
}

static uint64_t stamp(uint64_t key, uint64_t trip, size_t word)
{
	return ex_mix64(key ^ (trip << 32) ^ word);
}

static void fill_body(uint64_t *msg, size_t nwords, uint64_t key)
{
	for (size_t w = 0; w < nwords; w++)
		msg[w] = ex_mix64(key + w);
}

static void put_stamps(uint64_t *msg, size_t nwords, uint64_t key, uint64_t trip)
{
	for (size_t w = 0; w < nwords; w += STAMP_EVERY / 8)
		msg[w] = stamp(key, trip, w);
	msg[nwords - 1] = stamp(key, trip, nwords - 1);
}

static void report_bad(struct pair *p, const char *what, size_t word, uint64_t want, uint64_t got)
{
	if (p->bad++ < 5)
		fprintf(stderr, "rank %d: %s: word %zu is %#" PRIx64 ", expected %#" PRIx64 "\n",
			p->rank, what, word, got, want);
}

static void check_stamps(struct pair *p, const uint64_t *msg, size_t nwords, uint64_t key,
			 uint64_t trip)
{
	for (size_t w = 0; w < nwords; w += STAMP_EVERY / 8)
		if (msg[w] != stamp(key, trip, w))
			report_bad(p, "stamp", w, stamp(key, trip, w), msg[w]);
	if (msg[nwords - 1] != stamp(key, trip, nwords - 1))
		report_bad(p, "last stamp", nwords - 1, stamp(key, trip, nwords - 1),
			   msg[nwords - 1]);
}

/* After the last round trip: every word, body and stamps. */
static void check_all(struct pair *p, const uint64_t *msg, size_t nwords, uint64_t key,
		      uint64_t trip)
{
	for (size_t w = 0; w < nwords; w++) {
		uint64_t want = is_stamp(w, nwords) ? stamp(key, trip, w) : ex_mix64(key + w);

		if (msg[w] != want)
			report_bad(p, "message", w, want, msg[w]);
	}
}

/* One round trip. Returns A's round-trip time; B returns 0. */
static double round_trip(struct pair *p, enum method m, size_t size, uint64_t key, uint64_t trip)
{
	uint64_t *mine = p->own.data;
	size_t nwords = size / 8;
	double t0 = 0, t = 0;
	int count = (int)size;

	if (m == VIA_MEMCPY) {
		/* A alone, the same two copies in its own memory. */
		if (!p->initiator)
			return 0;
		put_stamps(mine, nwords, key, trip);
		t0 = MPI_Wtime();
		memcpy(p->scratch, mine, size);
		memcpy(p->recv, p->scratch, size);
		t = MPI_Wtime() - t0;
		check_stamps(p, p->recv, nwords, key, trip);
		return t;
	}
	p->seq++;
	if (p->initiator) {
		/* Outside the timing: producing the message is the application's work. */
		put_stamps(mine, nwords, key, trip);
		t0 = MPI_Wtime();
		if (m == VIA_XPMEM) {
			ex_flag_set(p->own.flag, p->seq);	  /* ping: "my buffer holds it" */
			ex_flag_wait(p->peer.flag, p->seq, p->partner);	/* pong */
			memcpy(p->recv, p->peer.data, size);	  /* the one copy */
		} else {
			MPI_Send(mine, count, MPI_BYTE, p->partner, 0, p->comm);
			MPI_Recv(p->recv, count, MPI_BYTE, p->partner, 0, p->comm,
				 MPI_STATUS_IGNORE);
		}
		t = MPI_Wtime() - t0;
		check_stamps(p, p->recv, nwords, key, trip);
	} else if (m == VIA_XPMEM) {
		ex_flag_wait(p->peer.flag, p->seq, p->partner);
		memcpy(mine, p->peer.data, size);		  /* the one copy */
		check_stamps(p, mine, nwords, key, trip);
		ex_flag_set(p->own.flag, p->seq);		  /* echo ready, and done with A's */
	} else {
		MPI_Recv(mine, count, MPI_BYTE, p->partner, 0, p->comm, MPI_STATUS_IGNORE);
		check_stamps(p, mine, nwords, key, trip);
		MPI_Send(mine, count, MPI_BYTE, p->partner, 0, p->comm);
	}
	return t;
}

/*
 * Round trips of one size with one method, after an untimed warm-up (the
 * first touch of new pages of an attachment faults them in). Returns the
 * latency in seconds: half the median round trip of the slowest pair.
 */
static double run(struct pair *p, enum method m, size_t size, int trips)
{
	uint64_t key = body_key(size, m, p->initiator ? p->rank : p->partner);
	size_t nwords = size / 8;
	double *t = calloc((size_t)trips, sizeof(*t));
	double latency;

	if (!t)
		xm_die("calloc");
	/*
	 * Wipe both destinations so that only this run's copies can make the
	 * final check pass. Writing the buffers here is safe: the previous run
	 * ended with a collective (ex_median_of_max) that the partner entered
	 * only after its last copy, and its next copy waits for our next flag.
	 */
	if (p->initiator) {
		fill_body(p->own.data, nwords, key);
		memset(p->recv, 0, size);
	} else if (m != VIA_MEMCPY) {
		memset(p->own.data, 0, size);
	}
	MPI_Barrier(MPI_COMM_WORLD);
	round_trip(p, m, size, key, 0);
	for (int i = 0; i < trips; i++)
		t[i] = round_trip(p, m, size, key, (uint64_t)i + 1);
	if (p->initiator || m != VIA_MEMCPY)
		check_all(p, p->initiator ? p->recv : p->own.data, nwords, key, (uint64_t)trips);
	latency = ex_median_of_max(MPI_COMM_WORLD, t, trips) / 2;
	free(t);
	return latency;
}

/* Fewer round trips for big messages: about iters MiB per size, at least 5. */
static int trips_for(size_t size, size_t iters)
{
	size_t by_volume = iters * (1u << 20) / size;
	size_t trips = by_volume < iters ? by_volume : iters;

	if (trips < 5)
		trips = iters < 5 ? iters : 5;
	return (int)trips;
}

int main(int argc, char **argv)
{
	struct ex_sweep sw = { .min = 8, .max = 256u << 10, .step = 4 };
	size_t iters = 10;
	const struct ex_opt opts[] = {
		EX_SWEEP_OPTS(sw),
		{ "iters", EX_COUNT, &iters, "round trips per size (fewer above 1 MiB)" },
	};
	struct xm_remote *all;
	struct pair p = { .comm = MPI_COMM_WORLD };
	int nranks, rc;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &p.rank);
	MPI_Comm_size(MPI_COMM_WORLD, &nranks);
	rc = ex_parse_opts(argc, argv, opts, sizeof(opts) / sizeof(opts[0]),
			   "pingpong: one copy through an XPMEM attachment vs MPI_Send/MPI_Recv");
	if (rc == 0 && !ex_sweep_ok(&sw))
		rc = -1;
	if (rc == 0 && nranks % 2) {
		if (p.rank == 0)
			fprintf(stderr, "pingpong: needs an even number of ranks\n");
		rc = -1;
	}
	if (rc != 0) {
		if (rc < 0 && p.rank == 0)
			fprintf(stderr, "pingpong: see --help\n");
		MPI_Finalize();
		return rc < 0 ? 2 : 0;
	}

	p.partner = p.rank ^ 1;
	p.initiator = p.rank % 2 == 0;
	all = calloc((size_t)nranks, sizeof(*all));
	if (!all)
		xm_die("calloc");
	p.own = ex_region_create(MPI_COMM_WORLD, sw.max, all);
	p.peer = ex_peer_attach(&all[p.partner], sw.max);
	if (p.initiator) {
		p.recv = malloc(sw.max);
		p.scratch = malloc(sw.max);
		if (!p.recv || !p.scratch)
			xm_die("malloc");
	}

	if (p.rank == 0) {
		printf("pingpong: %d pair(s) at once; latency = half a round trip (median of %zu, slowest pair)\n",
		       nranks / 2, iters);
		printf("xpmem: one memcpy from the partner's buffer per message, signalled by a flag in the sender's page\n");
		printf("memcpy: the same two copies made by one rank in its own memory\n");
		printf("%10s %10s %11s %10s %11s %11s %9s %12s\n", "bytes", "xpmem us", "xpmem MB/s",
		       "MPI us", "MPI MB/s", "memcpy MB/s", "MPI/xpmem", "xpmem/memcpy");
	}
	for (size_t size = sw.min; size; size = ex_next_size(size, &sw)) {
		int trips = trips_for(size, iters);
		double tx = run(&p, VIA_XPMEM, size, trips);
		double tm = run(&p, VIA_MPI, size, trips);
		double tc = run(&p, VIA_MEMCPY, size, trips);

		if (p.rank == 0) {
			printf("%10zu %10.2f %11.1f %10.2f %11.1f %11.1f %9.2f %12.2f\n", size,
			       tx * 1e6, size / tx / 1e6, tm * 1e6, size / tm / 1e6, size / tc / 1e6,
			       tm / tx, tc / tx);
			fflush(stdout);
		}
	}

	free(p.scratch);
	free(p.recv);
	free(all);
	return ex_finish(&p.own, &p.peer, 1, p.bad);
}
