// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * hier_allreduce.c - a two-level allreduce: XPMEM inside a node, MPI between
 * nodes.
 *
 * This is how MPI libraries build collectives on clusters of multi-core
 * nodes: the ranks of one node combine their data through shared memory,
 * one leader per node takes part in the network step, and the result is
 * handed back inside the node. Here the shared memory is XPMEM: each rank
 * exports its address space once, and its node peers attach its buffers
 * once, up front, and then read and write them with plain loads and stores
 * for every round (no copy into a bounce buffer, no system call per round).
 *
 * One round, for a vector of int64 (exact, so results compare bit for bit):
 *   1. reduce-scatter in the node: the node's ranks split the vector into
 *      slices; each rank sums its slice over all node peers' send buffers
 *      (attached read-only) and stores it into the leader's result buffer
 *      (attached read-write);
 *   2. the leaders combine the node sums with MPI_Allreduce over a
 *      communicator of leaders only;
 *   3. broadcast in the node: each non-leader copies the result out of the
 *      leader's buffer through its attachment.
 * MPI_Barrier on the node communicator orders the steps. The node layout
 * comes from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED), so the program runs
 * unchanged on one node (then it is purely intra-node) or on many.
 *
 * Every round uses different data and a different length, and its result is
 * compared element by element with a flat MPI_Allreduce over MPI_COMM_WORLD.
 * The exit status is 1 if any element of any round differs.
 *
 * For failure tests, --kill-rank R --kill-round K makes rank R SIGKILL
 * itself in round K, right after step 1, while it holds attachments to its
 * peers' buffers and its peers hold attachments to its own: the job must
 * then fail, and the driver must clean up everything it held.
 *
 * Run: mpiexec -n 4 examples/hier_allreduce [--rounds N] [--count N]
 */
#include <errno.h>
#include <getopt.h>
#include <mpi.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "xpmem_mpi.h"
#include "example_util.h"

struct options {
	int rounds;		/* how many allreduces to run and check */
	size_t count;		/* int64 elements in the longest round */
	int kill_rank;		/* rank that SIGKILLs itself, -1 for none */
	int kill_round;		/* ... in this round */
};

/* Input element i of a rank in a round: scrambled, different every round. */
static int64_t input_value(int rank, size_t i, int round)
{
	uint64_t x = ex_mix64(((uint64_t)rank << 40) ^ ((uint64_t)round << 56) ^ i);

	/* Within +-2^40, so that sums over any realistic job cannot overflow. */
	return (int64_t)(x & ((1ull << 41) - 1)) - ((int64_t)1 << 40);
}

/*
 * The length of a round: the first round uses the full count, later ones
 * are shorter by an odd step, so slices and the vector end move around
 * within pages from round to round.
 */
static size_t round_count(const struct options *o, int round)
{
	size_t step = o->count / (2 * (size_t)o->rounds) + 1;
	size_t cut = step * (size_t)round;

	return cut < o->count ? o->count - cut : 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: hier_allreduce [--rounds N] [--count ELEMENTS] "
		   "[--kill-rank R --kill-round K]\n");
}

static long parse_long(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "hier_allreduce: bad number: %s\n", s);
		usage(stderr);
		exit(2);
	}
	return v;
}

static struct options parse_options(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "rounds", required_argument, NULL, 'r' },
		{ "count", required_argument, NULL, 'c' },
		{ "kill-rank", required_argument, NULL, 'R' },
		{ "kill-round", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct options o = { .rounds = 8, .count = 65536, .kill_rank = -1, .kill_round = -1 };
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			o.rounds = (int)parse_long(optarg, 1, 100000);
			break;
		case 'c':
			o.count = (size_t)parse_long(optarg, 1, 1L << 27);
			break;
		case 'R':
			o.kill_rank = (int)parse_long(optarg, 0, 1 << 30);
			break;
		case 'K':
			o.kill_round = (int)parse_long(optarg, 0, 100000);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind != argc || (o.kill_rank >= 0) != (o.kill_round >= 0)) {
		usage(stderr);
		exit(2);
	}
	return o;
}

/* Anonymous, page-aligned memory: attachments are page-granular. */
static int64_t *alloc_vector(size_t count)
{
	void *p = mmap(NULL, count * sizeof(int64_t), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		xm_die("mmap");
	return p;
}

/* Rank 0 says which ranks share which node. */
static void report_layout(int rank, int nranks, int node_id, int nnodes,
			  const struct options *o)
{
	char name[MPI_MAX_PROCESSOR_NAME] = "";
	char *names = NULL;
	int *ids = NULL, len;

	MPI_Get_processor_name(name, &len);
	if (rank == 0) {
		names = malloc((size_t)nranks * MPI_MAX_PROCESSOR_NAME);
		ids = malloc((size_t)nranks * sizeof(*ids));
		if (!names || !ids)
			xm_die("malloc");
	}
	MPI_Gather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, names, MPI_MAX_PROCESSOR_NAME,
		   MPI_CHAR, 0, MPI_COMM_WORLD);
	MPI_Gather(&node_id, 1, MPI_INT, ids, 1, MPI_INT, 0, MPI_COMM_WORLD);
	if (rank != 0)
		return;
	printf("hier_allreduce: %d rank%s on %d node%s, %d rounds of up to %zu int64\n",
	       nranks, nranks == 1 ? "" : "s", nnodes, nnodes == 1 ? "" : "s", o->rounds,
	       o->count);
	for (int n = 0; n < nnodes; n++) {
		int first = 1;

		for (int r = 0; r < nranks; r++) {
			if (ids[r] != n)
				continue;
			if (first)
				printf("  node %d (%s): ranks", n,
				       names + (size_t)r * MPI_MAX_PROCESSOR_NAME);
			printf(" %d", r);
			first = 0;
		}
		printf("\n");
	}
	printf("%6s %9s %10s %10s %11s\n", "round", "count", "hier ms", "flat ms", "mismatches");
	fflush(stdout);
	free(names);
	free(ids);
}

int main(int argc, char **argv)
{
	MPI_Comm node, leaders = MPI_COMM_NULL;
	int rank, nranks, node_rank, node_size, node_id = 0, nnodes = 0;
	unsigned long long total_bad = 0;
	struct options o;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &nranks);
	o = parse_options(argc, argv);
	if (o.kill_rank >= nranks) {
		if (rank == 0)
			fprintf(stderr, "hier_allreduce: --kill-rank %d, but there are %d ranks\n",
				o.kill_rank, nranks);
		MPI_Finalize();
		return 2;
	}

	/* The ranks that share memory with this one, and one leader per node. */
	MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
	MPI_Comm_rank(node, &node_rank);
	MPI_Comm_size(node, &node_size);
	MPI_Comm_split(MPI_COMM_WORLD, node_rank == 0 ? 0 : MPI_UNDEFINED, rank, &leaders);
	if (node_rank == 0) {
		MPI_Comm_rank(leaders, &node_id);
		MPI_Comm_size(leaders, &nnodes);
	}
	MPI_Bcast(&node_id, 1, MPI_INT, 0, node);
	MPI_Bcast(&nnodes, 1, MPI_INT, 0, node);
	report_layout(rank, nranks, node_id, nnodes, &o);

	int64_t *send = alloc_vector(o.count);
	int64_t *result = alloc_vector(o.count);
	int64_t *expect = alloc_vector(o.count);

	/*
	 * Set up the node's attachments once, as an MPI library's registration
	 * cache would: every peer's send buffer read-only, and the leader's
	 * result buffer read-write (every rank writes its slice into it).
	 */
	xpmem_segid_t segid = xm_export_all();
	struct xm_remote *sends = calloc((size_t)node_size, sizeof(*sends));
	struct xm_remote *results = calloc((size_t)node_size, sizeof(*results));
	struct xm_mapping *maps = calloc((size_t)node_size, sizeof(*maps));
	const int64_t **peer_send = calloc((size_t)node_size, sizeof(*peer_send));
	struct xm_mapping leader_map = { 0 };
	int64_t *leader_result = result;
	size_t bytes = o.count * sizeof(int64_t);

	if (!sends || !results || !maps || !peer_send)
		xm_die("calloc");
	xm_exchange(node, segid, send, sends);
	xm_exchange(node, segid, result, results);
	for (int j = 0; j < node_size; j++) {
		if (j == node_rank) {
			peer_send[j] = send;
			continue;
		}
		maps[j] = xm_attach(&sends[j], bytes, XPMEM_RDONLY);
		peer_send[j] = maps[j].ptr;
	}
	if (node_rank != 0) {
		leader_map = xm_attach(&results[0], bytes, XPMEM_RDWR);
		leader_result = leader_map.ptr;
	}

	for (int r = 0; r < o.rounds; r++) {
		size_t count = round_count(&o, r);
		size_t lo = count * (size_t)node_rank / (size_t)node_size;
		size_t hi = count * (size_t)(node_rank + 1) / (size_t)node_size;
		unsigned long long bad = 0, round_bad = 0;
		double t0, t_hier, t_flat, max_hier, max_flat;

		for (size_t i = 0; i < count; i++)
			send[i] = input_value(rank, i, r);
		/* A non-leader's copy that did not happen must not look right. */
		if (node_rank != 0)
			for (size_t i = 0; i < count; i++)
				result[i] = INT64_MIN;
		/*
		 * Inputs are ready, and every peer has finished reading the
		 * leader's result of the previous round.
		 */
		MPI_Barrier(node);

		t0 = MPI_Wtime();
		/* 1. Reduce-scatter inside the node, through the attachments. */
		for (size_t i = lo; i < hi; i++) {
			int64_t sum = 0;

			for (int j = 0; j < node_size; j++)
				sum += peer_send[j][i];
			leader_result[i] = sum;
		}
		if (rank == o.kill_rank && r == o.kill_round) {
			fprintf(stderr, "hier_allreduce: rank %d raises SIGKILL in round %d\n",
				rank, r);
			fflush(NULL);
			raise(SIGKILL);
		}
		MPI_Barrier(node);
		/* 2. Between nodes: the leaders combine the node sums. */
		if (node_rank == 0 &&
		    MPI_Allreduce(MPI_IN_PLACE, result, (int)count, MPI_INT64_T, MPI_SUM,
				  leaders) != MPI_SUCCESS)
			xm_die("MPI_Allreduce (leaders)");
		MPI_Barrier(node);
		/* 3. Broadcast inside the node: copy out of the leader's buffer. */
		if (node_rank != 0)
			memcpy(result, leader_result, count * sizeof(int64_t));
		t_hier = MPI_Wtime() - t0;

		/* The reference: a flat allreduce over all ranks. */
		MPI_Barrier(MPI_COMM_WORLD);
		t0 = MPI_Wtime();
		if (MPI_Allreduce(send, expect, (int)count, MPI_INT64_T, MPI_SUM,
				  MPI_COMM_WORLD) != MPI_SUCCESS)
			xm_die("MPI_Allreduce (flat)");
		t_flat = MPI_Wtime() - t0;

		for (size_t i = 0; i < count; i++) {
			if (result[i] == expect[i])
				continue;
			if (bad++ < 3)
				fprintf(stderr, "rank %d round %d: element %zu is %lld, expected %lld\n",
					rank, r, i, (long long)result[i], (long long)expect[i]);
		}
		MPI_Reduce(&bad, &round_bad, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
		MPI_Reduce(&t_hier, &max_hier, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
		MPI_Reduce(&t_flat, &max_flat, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
		if (rank == 0) {
			printf("%6d %9zu %10.2f %10.2f %11llu\n", r, count, max_hier * 1e3,
			       max_flat * 1e3, round_bad);
			fflush(stdout);
		}
		total_bad += round_bad;
	}

	/* Detach, then remove the segment once no peer is attached to it. */
	for (int j = 0; j < node_size; j++)
		if (j != node_rank)
			xm_detach(&maps[j]);
	if (node_rank != 0)
		xm_detach(&leader_map);
	MPI_Barrier(node);
	if (xpmem_remove(segid) != 0)
		xm_die("xpmem_remove");

	MPI_Bcast(&total_bad, 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
	if (rank == 0)
		printf("hier_allreduce: verification %s (%llu mismatched elements in %d rounds)\n",
		       total_bad ? "FAILED" : "ok", total_bad, o.rounds);
	free(sends);
	free(results);
	free(maps);
	free(peer_send);
	if (leaders != MPI_COMM_NULL)
		MPI_Comm_free(&leaders);
	MPI_Comm_free(&node);
	MPI_Finalize();
	return total_bad ? 1 : 0;
}
