// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * mpi_bw.c - a plain MPI pingpong that never calls XPMEM itself: whatever
 * attaches during it, the MPI library (or the UCX under it) did. Rank 0
 * sends a buffer of SIZE bytes to rank 1, which checks every byte and
 * sends back a changed copy, ITERS times; both sides verify.
 *
 * Usage: mpiexec -n 2 mpi_bw SIZE ITERS
 * Prints the bandwidth seen by rank 0; exits 1 on a wrong byte.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static unsigned char pat(size_t i, int iter, int side)
{
	return (unsigned char)(i * 131 + (size_t)iter * 7 + (size_t)side * 29);
}

int main(int argc, char **argv)
{
	size_t size, i;
	unsigned char *buf;
	int rank, n, iters, it, bad = 0, any_bad;
	double t0, t;

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
	if (!buf || !size || iters < 1)
		MPI_Abort(MPI_COMM_WORLD, 2);

	MPI_Barrier(MPI_COMM_WORLD);
	t0 = MPI_Wtime();
	for (it = 0; it < iters; it++) {
		if (rank == 0) {
			for (i = 0; i < size; i++)
				buf[i] = pat(i, it, 0);
			MPI_Send(buf, (int)size, MPI_BYTE, 1, it, MPI_COMM_WORLD);
			MPI_Recv(buf, (int)size, MPI_BYTE, 1, it, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			for (i = 0; i < size; i++)
				bad += buf[i] != pat(i, it, 1);
		} else {
			MPI_Recv(buf, (int)size, MPI_BYTE, 0, it, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			for (i = 0; i < size; i++) {
				bad += buf[i] != pat(i, it, 0);
				buf[i] = pat(i, it, 1);
			}
			MPI_Send(buf, (int)size, MPI_BYTE, 0, it, MPI_COMM_WORLD);
		}
	}
	t = MPI_Wtime() - t0;
	MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
	if (rank == 0)
		printf("mpi_bw: %zu bytes x %d round trips: %.1f MB/s, %d wrong bytes\n", size, iters,
		       2.0 * (double)size * iters / t / 1e6, any_bad);
	free(buf);
	MPI_Finalize();
	return any_bad ? 1 : 0;
}
