// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * sc_demo.c - a two-rank single-copy transfer, the placeholder demo.
 *
 * Every rank checks that the xpmem driver answers (xpmem_version()). Rank 0
 * then publishes a buffer's address; rank 1 copies it straight out of rank
 * 0's memory with one copy and verifies every byte. Until the driver's
 * attach path lands, the single copy uses Linux's cross-memory attach
 * (process_vm_readv), which is also the baseline that XPMEM attachments are
 * measured against later. The table compares it with MPI_Send/MPI_Recv.
 *
 * Run: mpiexec -n 2 examples/sc_demo
 */
#include <errno.h>
#include <inttypes.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "xpmem.h"

#define MAX_SIZE (16u << 20)
#define REPS 5

static unsigned char pattern(size_t i)
{
	return (unsigned char)(i * 131 + 7);
}

/* Bytes per second of the best of REPS runs of one transfer. */
static double best_rate(double *times, size_t size)
{
	double best = times[0];

	for (int i = 1; i < REPS; i++)
		if (times[i] < best)
			best = times[i];
	return size / best;
}

int main(int argc, char **argv)
{
	int rank, nranks, version, bad = 0, all_bad;
	unsigned char *buf;
	uint64_t remote_addr;
	pid_t peer;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &nranks);
	if (nranks != 2) {
		if (rank == 0)
			fprintf(stderr, "sc_demo: run with exactly 2 ranks\n");
		MPI_Abort(MPI_COMM_WORLD, 2);
	}

	version = xpmem_version();
	if (version < 0) {
		fprintf(stderr, "rank %d: xpmem_version: %s\n", rank, strerror(errno));
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
	if (rank == 0)
		printf("xpmem driver version %d.%d.%d on %s\n", version >> 16,
		       (version >> 8) & 0xff, version & 0xff, XPMEM_DEV_PATH);

	buf = malloc(MAX_SIZE);
	if (!buf)
		MPI_Abort(MPI_COMM_WORLD, 1);
	if (rank == 0)
		for (size_t i = 0; i < MAX_SIZE; i++)
			buf[i] = pattern(i);

	/* Exchange what rank 1 needs to read rank 0's memory directly. */
	remote_addr = (uintptr_t)buf;
	peer = getpid();
	MPI_Bcast(&remote_addr, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
	MPI_Bcast(&peer, sizeof(peer), MPI_BYTE, 0, MPI_COMM_WORLD);

	if (rank == 1)
		printf("%10s %14s %14s %8s\n", "bytes", "single-copy", "send/recv", "ratio");
	for (size_t size = 4096; size <= MAX_SIZE; size *= 4) {
		double t_sc[REPS], t_mpi[REPS];

		for (int r = 0; r < REPS; r++) {
			MPI_Barrier(MPI_COMM_WORLD);
			if (rank == 1) {
				struct iovec local = { buf, size };
				struct iovec remote = { (void *)(uintptr_t)remote_addr, size };
				double t0 = MPI_Wtime();
				ssize_t n = process_vm_readv(peer, &local, 1, &remote, 1, 0);

				t_sc[r] = MPI_Wtime() - t0;
				if (n != (ssize_t)size) {
					fprintf(stderr, "process_vm_readv: %zd: %s\n", n, strerror(errno));
					MPI_Abort(MPI_COMM_WORLD, 1);
				}
				for (size_t i = 0; i < size; i++)
					bad += buf[i] != pattern(i);
				memset(buf, 0, size);
			}
			MPI_Barrier(MPI_COMM_WORLD);
			if (rank == 0) {
				MPI_Send(buf, (int)size, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
			} else {
				double t0 = MPI_Wtime();

				MPI_Recv(buf, (int)size, MPI_BYTE, 0, 0, MPI_COMM_WORLD,
					 MPI_STATUS_IGNORE);
				t_mpi[r] = MPI_Wtime() - t0;
				for (size_t i = 0; i < size; i++)
					bad += buf[i] != pattern(i);
				memset(buf, 0, size);
			}
		}
		if (rank == 1) {
			double sc = best_rate(t_sc, size), mpi = best_rate(t_mpi, size);

			printf("%10zu %9.1f MB/s %9.1f MB/s %8.2f\n", size, sc / 1e6,
			       mpi / 1e6, sc / mpi);
		}
	}

	MPI_Allreduce(&bad, &all_bad, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
	if (rank == 0)
		printf("verification: %s (%d bad bytes)\n", all_bad ? "FAILED" : "ok", all_bad);
	free(buf);
	MPI_Finalize();
	return all_bad ? 1 : 0;
}
