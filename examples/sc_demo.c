// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * sc_demo.c - two MPI ranks, one copy: read a peer's memory through XPMEM.
 *
 * Rank 0 exports its whole address space once, as MPI libraries do, and
 * publishes the segid and a buffer address. Rank 1 gets access, attaches
 * the buffer once (a long-lived attachment, like an MPI library's
 * registration cache), and then copies out of rank 0's memory with plain
 * memcpy: one copy, no kernel call per transfer. For comparison it also
 * moves the same bytes with Linux's cross-memory attach (process_vm_readv,
 * one copy but a system call per transfer) and with MPI_Send/MPI_Recv, and
 * times a local memcpy of the same size, the limit any single copy has.
 * Every transfer is verified. Under QEMU's TCG emulation only the ratios
 * mean anything, and memcpy itself is slow at some sizes there.
 *
 * At the end rank 0 replaces the pages under the buffer (munmap + mmap at
 * the same address) and rank 1 reads the new contents through the same
 * attachment: the driver followed rank 0's page tables.
 *
 * Run: mpiexec -n 2 examples/sc_demo
 */
#include <errno.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "xpmem.h"

#define MAX_SIZE (16u << 20)
#define REPS 5

static unsigned char pattern(size_t i, unsigned int seed)
{
	return (unsigned char)(i * 131 + seed);
}

static size_t count_bad(const unsigned char *buf, size_t size, unsigned int seed)
{
	size_t bad = 0;

	for (size_t i = 0; i < size; i++)
		bad += buf[i] != pattern(i, seed);
	return bad;
}

static double best(const double *t)
{
	double b = t[0];

	for (int i = 1; i < REPS; i++)
		b = t[i] < b ? t[i] : b;
	return b;
}

static void die(int rank, const char *what)
{
	fprintf(stderr, "rank %d: %s: %s\n", rank, what, strerror(errno));
	MPI_Abort(MPI_COMM_WORLD, 1);
}

int main(int argc, char **argv)
{
	int rank, nranks, version;
	unsigned long bad = 0, all_bad = 0;
	unsigned char *buf, *local_src = NULL, *remote = NULL;
	uint64_t remote_addr;
	xpmem_segid_t segid = -1;
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
	if (version < 0)
		die(rank, "xpmem_version");
	buf = mmap(NULL, MAX_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		die(rank, "mmap");

	if (rank == 0) {
		printf("xpmem driver %d.%d.%d; rank 0 exports its address space, rank 1 attaches it\n",
		       version >> 16, (version >> 8) & 0xff, version & 0xff);
		for (size_t i = 0; i < MAX_SIZE; i++)
			buf[i] = pattern(i, 7);
		segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
		if (segid < 0)
			die(rank, "xpmem_make");
	}
	remote_addr = (uintptr_t)buf;
	peer = getpid();
	MPI_Bcast(&segid, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
	MPI_Bcast(&remote_addr, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
	MPI_Bcast(&peer, sizeof(peer), MPI_BYTE, 0, MPI_COMM_WORLD);

	if (rank == 1) {
		struct xpmem_addr addr;

		addr.apid = xpmem_get(segid, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL);
		if (addr.apid < 0)
			die(rank, "xpmem_get");
		addr.offset = (off_t)remote_addr;
		remote = xpmem_attach(addr, MAX_SIZE, NULL);
		if (remote == (void *)-1)
			die(rank, "xpmem_attach");
		local_src = malloc(MAX_SIZE);
		if (!local_src)
			die(rank, "malloc");
		memset(local_src, 1, MAX_SIZE);
		printf("%10s %12s %12s %12s %12s %10s\n", "bytes", "memcpy MB/s", "xpmem MB/s",
		       "CMA MB/s", "MPI MB/s", "xpmem/MPI");
	}

	for (size_t size = 4096; size <= MAX_SIZE; size *= 4) {
		double t_local[REPS], t_x[REPS], t_cma[REPS], t_mpi[REPS];

		for (int r = 0; r < REPS; r++) {
			MPI_Barrier(MPI_COMM_WORLD);
			if (rank == 1) {
				struct iovec local = { buf, size };
				struct iovec rem = { (void *)(uintptr_t)remote_addr, size };
				double t0 = MPI_Wtime();

				memcpy(buf, local_src, size);	/* the local limit */
				t_local[r] = MPI_Wtime() - t0;

				t0 = MPI_Wtime();
				memcpy(buf, remote, size);	/* the single copy */
				t_x[r] = MPI_Wtime() - t0;
				bad += count_bad(buf, size, 7);
				memset(buf, 0, size);

				t0 = MPI_Wtime();
				if (process_vm_readv(peer, &local, 1, &rem, 1, 0) != (ssize_t)size)
					die(rank, "process_vm_readv");
				t_cma[r] = MPI_Wtime() - t0;
				bad += count_bad(buf, size, 7);
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
				bad += count_bad(buf, size, 7);
				memset(buf, 0, size);
			}
		}
		if (rank == 1)
			printf("%10zu %12.1f %12.1f %12.1f %12.1f %10.2f\n", size,
			       size / best(t_local) / 1e6, size / best(t_x) / 1e6,
			       size / best(t_cma) / 1e6,
			       size / best(t_mpi) / 1e6, best(t_mpi) / best(t_x));
	}

	/* Coherence: new pages at the same address show through the old attachment. */
	MPI_Barrier(MPI_COMM_WORLD);
	if (rank == 0) {
		if (munmap(buf, MAX_SIZE) != 0 ||
		    mmap(buf, MAX_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != buf)
			die(rank, "remap");
		for (size_t i = 0; i < MAX_SIZE; i++)
			buf[i] = pattern(i, 99);
	}
	MPI_Barrier(MPI_COMM_WORLD);
	if (rank == 1) {
		size_t stale = count_bad(remote, MAX_SIZE, 99);

		printf("after rank 0 replaced its pages: %zu stale bytes seen through the attachment\n",
		       stale);
		bad += stale;
		if (xpmem_detach(remote) != 0)
			die(rank, "xpmem_detach");
		free(local_src);
	}
	MPI_Barrier(MPI_COMM_WORLD);
	if (rank == 0 && xpmem_remove(segid) != 0)
		die(rank, "xpmem_remove");

	MPI_Allreduce(&bad, &all_bad, 1, MPI_UNSIGNED_LONG, MPI_SUM, MPI_COMM_WORLD);
	if (rank == 0)
		printf("verification: %s (%lu bad bytes)\n", all_bad ? "FAILED" : "ok", all_bad);
	MPI_Finalize();
	return all_bad ? 1 : 0;
}
