// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * mpi_bw.c - a plain MPI pingpong that never calls XPMEM itself: whatever
 * attaches during it, the MPI library (or the UCX under it) did.
 *
 * Rank 0 sends a buffer of SIZE bytes to rank 1, which sends it back,
 * ITERS times, timed, with neither side touching the buffer in between:
 * the bandwidth is the transport's, not that of a loop over the bytes
 * (which under TCG would cost more than the copy). Around the timed loop,
 * a checked round trip before and after it: rank 0 fills the buffer with a
 * pattern of that round, rank 1 checks every byte and sends back a changed
 * copy, which rank 0 checks. The round after the timed loop sends new
 * contents from the same buffers, so a transport that kept a stale view
 * of them (an attachment cache that missed a change) fails it.
 *
 * Usage: mpiexec -n 2 mpi_bw SIZE ITERS
 * Prints the bandwidth seen by rank 0; exits 1 on a wrong byte.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static unsigned char pat(size_t i, int round, int side)
{
	return (unsigned char)(i * 131 + (size_t)round * 7 + (size_t)side * 29);
}

/* One checked round trip; returns the number of wrong bytes seen here. */
static int checked_round(unsigned char *buf, size_t size, int rank, int round)
{
	int bad = 0;
	size_t i;

	if (rank == 0) {
		for (i = 0; i < size; i++)
			buf[i] = pat(i, round, 0);
		MPI_Send(buf, (int)size, MPI_BYTE, 1, round, MPI_COMM_WORLD);
		MPI_Recv(buf, (int)size, MPI_BYTE, 1, round, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		for (i = 0; i < size; i++)
			bad += buf[i] != pat(i, round, 1);
	} else {
		MPI_Recv(buf, (int)size, MPI_BYTE, 0, round, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		for (i = 0; i < size; i++) {
			bad += buf[i] != pat(i, round, 0);
			buf[i] = pat(i, round, 1);
		}
		MPI_Send(buf, (int)size, MPI_BYTE, 0, round, MPI_COMM_WORLD);
	}
	return bad;
}

int main(int argc, char **argv)
{
	int rank, n, iters, it, bad, any_bad;
	unsigned char *buf;
	double t0, t;
	size_t size;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &n);
	if (argc != 3 || n != 2) {
		if (rank == 0)
			fprintf(stderr, "usage: mpiexec -n 2 mpi_bw SIZE ITERS\n");
		MPI_Finalize();
		return 2;
	}
	size = strtoul(argv[1], NULL, 0);
	iters = atoi(argv[2]);
	buf = malloc(size);
	if (!buf || !size || size > (size_t)2147483647 || iters < 1)
		MPI_Abort(MPI_COMM_WORLD, 2);

	bad = checked_round(buf, size, rank, 1);
	MPI_Barrier(MPI_COMM_WORLD);
	t0 = MPI_Wtime();
	for (it = 0; it < iters; it++) {
		if (rank == 0) {
			MPI_Send(buf, (int)size, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
			MPI_Recv(buf, (int)size, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		} else {
			MPI_Recv(buf, (int)size, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			MPI_Send(buf, (int)size, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
		}
	}
	t = MPI_Wtime() - t0;
	bad += checked_round(buf, size, rank, 2);
	MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
	if (rank == 0)
		printf("mpi_bw: %zu bytes x %d round trips: %.1f MB/s, %d wrong bytes\n", size, iters,
		       2.0 * (double)size * iters / t / 1e6, any_bad);
	free(buf);
	MPI_Finalize();
	return any_bad ? 1 : 0;
}
