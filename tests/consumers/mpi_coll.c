// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * mpi_coll.c - point-to-point and collective MPI calls over large buffers,
 * every byte checked, from a program that never calls XPMEM itself:
 * whatever attaches during it, the MPI library did.
 *
 * For each size, in rounds, every rank allocates its buffers afresh, fills
 * them with a pattern of the round and its rank, and then:
 *  - ring:      MPI_Sendrecv to the right neighbour, from the left one;
 *  - all pairs: MPI_Isend/MPI_Irecv with every other rank at once;
 *  - vector:    a strided MPI_Type_vector send into a contiguous receive
 *               (the library packs, or copies piece by piece);
 *  - bcast:     MPI_Bcast from each root in turn;
 *  - allgather, alltoall: size / nranks bytes per rank;
 *  - allreduce: MPI_SUM over integers (exact);
 *  - stack:     a ring over a buffer on the stack, where the exporter's
 *               attachment ends near the top of the address space;
 *  - top:       a ring from a buffer in the top 2 MiB below TASK_SIZE,
 *               where a stack lands in about one process of 8000: Open
 *               MPI's vader rounds the attachment out to 2 MiB, past
 *               TASK_SIZE (x86_64's is not 2 MiB-aligned). vader clamps
 *               it to the highest mapping it saw at MPI_Init, so only
 *               where one lies above TASK_SIZE ([vsyscall], with the
 *               kernel's vsyscall=xonly, Ubuntu's and RHEL's default;
 *               Debian's is vsyscall=none) does the range pass TASK_SIZE,
 *               and only there is this ring made.
 * The buffers are freed between rounds: glibc unmaps large ones, and the
 * next round's may land at the same addresses with new pages. An MPI
 * library's attachment cache keeps addresses, not pages, so only the
 * driver's invalidation keeps the next round's data right.
 *
 * Usage: mpiexec -n N mpi_coll SIZE[,SIZE...] [ROUNDS]
 * Prints one line per size; exits 1 if any byte was wrong.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define STACK_BYTES (256 * 1024)
#define TOP_BYTES (256 * 1024)

static int rank, nranks;

static unsigned char pat(size_t i, int round, int who, int what)
{
	return (unsigned char)(i * 131 + (size_t)round * 7 + (size_t)who * 29 + (size_t)what * 61);
}

static void fill(unsigned char *buf, size_t n, int round, int who, int what)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = pat(i, round, who, what);
}

/* The number of bytes of buf that are not what "who" filled in. */
static long check(const unsigned char *buf, size_t n, int round, int who, int what)
{
	long bad = 0;

	for (size_t i = 0; i < n; i++)
		bad += buf[i] != pat(i, round, who, what);
	return bad;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		MPI_Abort(MPI_COMM_WORLD, 2);
	return p;
}

static long ring(unsigned char *send, unsigned char *recv, size_t n, int round, int what)
{
	int right = (rank + 1) % nranks, left = (rank + nranks - 1) % nranks;

	fill(send, n, round, rank, what);
	MPI_Sendrecv(send, (int)n, MPI_BYTE, right, what, recv, (int)n, MPI_BYTE, left, what,
		     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	return check(recv, n, round, left, what);
}

static long all_pairs(size_t n, int round)
{
	unsigned char *send = xmalloc(n), *recv = xmalloc(n * (size_t)nranks);
	MPI_Request *req = xmalloc(sizeof(*req) * 2 * (size_t)nranks);
	/* (Not MPI_STATUSES_IGNORE: gcc 12 reads its (MPI_Status *)1 as an
	 * array of size 0 and warns.) */
	MPI_Status *st = xmalloc(sizeof(*st) * 2 * (size_t)nranks);
	int nreq = 0;
	long bad = 0;

	fill(send, n, round, rank, 2);
	for (int p = 0; p < nranks; p++) {
		if (p == rank)
			continue;
		MPI_Irecv(recv + (size_t)p * n, (int)n, MPI_BYTE, p, 2, MPI_COMM_WORLD, &req[nreq++]);
		MPI_Isend(send, (int)n, MPI_BYTE, p, 2, MPI_COMM_WORLD, &req[nreq++]);
	}
	MPI_Waitall(nreq, req, st);
	for (int p = 0; p < nranks; p++)
		if (p != rank)
			bad += check(recv + (size_t)p * n, n, round, p, 2);
	free(st);
	free(req);
	free(recv);
	free(send);
	return bad;
}

/* Every other 4 KiB block of a 2n buffer, into n contiguous bytes. */
static long vector(size_t n, int round)
{
	const int block = 4096;
	int count = (int)(n / (size_t)block);
	int right = (rank + 1) % nranks, left = (rank + nranks - 1) % nranks;
	unsigned char *send = xmalloc(2 * n), *recv = xmalloc(n);
	MPI_Datatype strided;
	long bad = 0;

	if (count < 1) {
		free(recv);
		free(send);
		return 0;
	}
	fill(send, 2 * n, round, rank, 3);
	MPI_Type_vector(count, block, 2 * block, MPI_BYTE, &strided);
	MPI_Type_commit(&strided);
	MPI_Sendrecv(send, 1, strided, right, 3, recv, count * block, MPI_BYTE, left, 3,
		     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	MPI_Type_free(&strided);
	for (int b = 0; b < count; b++)
		for (int i = 0; i < block; i++) {
			size_t from = (size_t)b * 2 * block + (size_t)i;

			bad += recv[(size_t)b * block + (size_t)i] != pat(from, round, left, 3);
		}
	free(recv);
	free(send);
	return bad;
}

static long collectives(size_t n, int round)
{
	size_t part = n / (size_t)nranks, words = n / sizeof(int32_t);
	unsigned char *a = xmalloc(n), *b = xmalloc(part * (size_t)nranks);
	int32_t *x = xmalloc(words * sizeof(*x)), *sum = xmalloc(words * sizeof(*sum));
	long bad = 0;

	for (int root = 0; root < nranks; root++) {
		if (rank == root)
			fill(a, n, round, root, 4);
		MPI_Bcast(a, (int)n, MPI_BYTE, root, MPI_COMM_WORLD);
		bad += check(a, n, round, root, 4);
	}

	fill(a, part, round, rank, 5);
	MPI_Allgather(a, (int)part, MPI_BYTE, b, (int)part, MPI_BYTE, MPI_COMM_WORLD);
	for (int p = 0; p < nranks; p++)
		bad += check(b + (size_t)p * part, part, round, p, 5);

	/* Block p of rank r's send buffer is pattern (r, 6 + p). */
	for (int p = 0; p < nranks; p++)
		fill(a + (size_t)p * part, part, round, rank, 6 + p);
	MPI_Alltoall(a, (int)part, MPI_BYTE, b, (int)part, MPI_BYTE, MPI_COMM_WORLD);
	for (int p = 0; p < nranks; p++)
		bad += check(b + (size_t)p * part, part, round, p, 6 + rank);

	for (size_t i = 0; i < words; i++)
		x[i] = (int32_t)(i % 1000003) * (rank + 1) + round;
	MPI_Allreduce(x, sum, (int)words, MPI_INT32_T, MPI_SUM, MPI_COMM_WORLD);
	for (size_t i = 0; i < words; i++) {
		int32_t want = (int32_t)(i % 1000003) * (nranks * (nranks + 1) / 2) + round * nranks;

		bad += sum[i] != want;
	}
	free(sum);
	free(x);
	free(b);
	free(a);
	return bad;
}

static long stack_ring(int round)
{
	unsigned char send[STACK_BYTES], recv[STACK_BYTES];

	return ring(send, recv, sizeof(send), round, 7);
}

/* Can this process map the page at @at? (Something there already: yes.) */
static int mappable(uintptr_t at, size_t page)
{
	void *p = mmap((void *)at, page, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	if (p != MAP_FAILED) {
		munmap(p, page);
		return 1;
	}
	return errno == EEXIST;
}

/*
 * TOP_BYTES mapped as high as this process can map them. TASK_SIZE is
 * found as mmap(2) sees it: the lowest page it refuses (ENOMEM), by
 * bisection. Then the highest free range below it, in the top 2 MiB (the
 * stack or the vDSO may be in the way), and not where the stack grows.
 */
static unsigned char *map_top(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = (uintptr_t)1 << 32, hi = UINTPTR_MAX & ~(uintptr_t)(page - 1);
	uintptr_t sp = (uintptr_t)&page;

	if (!mappable(lo, page))
		return NULL;
	while (hi - lo > page) {
		uintptr_t mid = (lo + (hi - lo) / 2) & ~(uintptr_t)(page - 1);

		*(mappable(mid, page) ? &lo : &hi) = mid;
	}
	for (uintptr_t end = hi; end > hi - (2 << 20) + TOP_BYTES; end -= page) {
		void *p;

		if (end - TOP_BYTES <= sp && end > sp - (8 << 20))
			continue;
		p = mmap((void *)(end - TOP_BYTES), TOP_BYTES, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p != MAP_FAILED)
			return p;
	}
	return NULL;
}

/*
 * From the top: 16 KiB, which vader sends with XPMEM as one fragment that
 * the receiver attaches to (above 256 bytes, up to its 32 KiB eager
 * limit), and TOP_BYTES, which ob1 fetches with a get (RGET).
 */
/* Does a mapping end above @limit, as [vsyscall] does? */
static int mapped_above(uintptr_t limit)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	unsigned long lo, hi;
	int above = 0;

	while (maps && fscanf(maps, "%lx-%lx%*[^\n]", &lo, &hi) == 2)
		above |= hi > limit;
	if (maps)
		fclose(maps);
	return above;
}

static long top_ring(unsigned char *top, int round)
{
	unsigned char *recv = xmalloc(TOP_BYTES);
	long bad = ring(top + TOP_BYTES - 16384, recv, 16384, round, 8);

	bad += ring(top, recv, TOP_BYTES, round, 9);
	free(recv);
	return bad;
}

int main(int argc, char **argv)
{
	unsigned char *top;
	long bad_total = 0;
	int rounds = 3;
	char *tok;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &nranks);
	if (argc < 2 || argc > 3) {
		if (rank == 0)
			fprintf(stderr, "usage: mpiexec -n N mpi_coll SIZE[,SIZE...] [ROUNDS]\n");
		MPI_Finalize();
		return 2;
	}
	if (argc == 3)
		rounds = atoi(argv[2]);
	/* Without room there the stack is at the top: stack_ring covers it. */
	top = map_top();
	if (top && !mapped_above((uintptr_t)top + TOP_BYTES)) {
		if (rank == 0)
			printf("mpi_coll: no mapping above TASK_SIZE (vsyscall=none): no top ring\n");
		munmap(top, TOP_BYTES);
		top = NULL;
	}
	for (tok = strtok(argv[1], ","); tok; tok = strtok(NULL, ",")) {
		size_t n = strtoul(tok, NULL, 0);
		long bad = 0, all = 0;
		double t0 = MPI_Wtime();

		if (!n || n > (size_t)INT32_MAX / (size_t)nranks)
			MPI_Abort(MPI_COMM_WORLD, 2);
		for (int round = 1; round <= rounds; round++) {
			unsigned char *send = xmalloc(n), *recv = xmalloc(n);

			bad += ring(send, recv, n, round, 1);
			free(recv);
			free(send);
			bad += all_pairs(n, round);
			bad += vector(n, round);
			bad += collectives(n, round);
			bad += stack_ring(round);
			if (top)
				bad += top_ring(top, round);
		}
		MPI_Allreduce(&bad, &all, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
		if (rank == 0)
			printf("mpi_coll: %d ranks, %zu bytes x %d rounds: %ld wrong bytes (%.2f s)\n",
			       nranks, n, rounds, all, MPI_Wtime() - t0);
		bad_total += all;
	}
	MPI_Finalize();
	return bad_total ? 1 : 0;
}
