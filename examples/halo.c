// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * halo.c - a 2-D Jacobi stencil whose ghost cells are read straight out of
 * the neighbouring ranks' memory.
 *
 * The global N x N grid (plus a fixed boundary ring) is cut into blocks,
 * one per rank, on the process grid that MPI_Dims_create picks (2 x 2 for
 * 4 ranks, 2 x 1 for 2). Each rank keeps its block in two buffers with a
 * one-cell ghost frame, exports them, and attaches the buffers of its (up
 * to four) neighbours once. Every iteration it copies the neighbours' edge
 * rows and columns into its ghost frame through those attachments, then
 * does the 5-point update
 *     v[y][x] = 0.25 * (u[y-1][x] + u[y+1][x] + u[y][x-1] + u[y][x+1]).
 * No data moves through MPI during the iterations; MPI starts the run,
 * gathers the result and takes the final verdict.
 *
 * Synchronisation: each rank has a flag in its own exported page, "I have
 * finished k iterations", which its neighbours poll through their
 * attachment (ex_flag_wait). Iteration k reads buffer k % 2 (neighbours'
 * included) and writes buffer (k + 1) % 2. Before its iteration k a rank
 * waits until every neighbour's flag is at least k. That one wait orders
 * both hazards of sharing buffers:
 *  - read after write: the neighbour's buffer k % 2 is complete (it was the
 *    neighbour's output of iteration k - 1);
 *  - write after read: the neighbour writes buffer k % 2 again only in its
 *    iteration k + 1, which it starts after seeing OUR flag at k + 1, which
 *    we raise only after our iteration k has finished reading that buffer.
 * Reading the neighbours' old buffer, never the one they are writing, is
 * what lets one wait per iteration do: with a single buffer per rank, a
 * second wait ("my neighbours have read my edges") would have to come
 * before each write.
 *
 * Checking: rank 0 also runs the same iterations on the whole grid alone,
 * and the gathered result must equal it exactly. It can: both use the same
 * sweep() on the same initial values, each cell's new value is the same
 * three IEEE additions in the same order and one multiplication by 0.25,
 * and -std=c11 keeps GCC from contracting them into fused multiply-adds. The
 * initial interior is pseudo-random, so a ghost cell that is missed, stale
 * or from the wrong iteration changes the result.
 *
 * Run:   mpiexec -n 4 examples/halo                  (256 x 256, 100 iterations)
 *        mpiexec -n 4 examples/halo --n 2048 --iters 500
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xpmem_mpi.h"
#include "example_util.h"

/* A block of the grid: global interior rows y0+1 .. y0+ny, columns x0+1 .. x0+nx. */
struct block {
	size_t y0, x0, ny, nx;
};

enum side { NORTH, SOUTH, WEST, EAST, SIDES };

/* Cells of one buffer of a block: the block and its ghost frame. */
static size_t cells(const struct block *b)
{
	return (b->ny + 2) * (b->nx + 2);
}

/* Rank r's block: rows of ranks split the rows as evenly as they can, likewise columns. */
static struct block block_of(size_t n, const int dims[2], int r)
{
	size_t cy = (size_t)(r / dims[1]), cx = (size_t)(r % dims[1]);
	size_t py = (size_t)dims[0], px = (size_t)dims[1];
	struct block b;

	b.y0 = n * cy / py;
	b.ny = n * (cy + 1) / py - b.y0;
	b.x0 = n * cx / px;
	b.nx = n * (cx + 1) / px - b.x0;
	return b;
}

/*
 * Starting values of global cell (gy, gx), 0 .. n+1 each way: the boundary
 * ring is fixed (a ramp), the interior is pseudo-random in [0, 1).
 */
static double initial(size_t n, size_t gy, size_t gx)
{
	if (gy == 0 || gx == 0 || gy == n + 1 || gx == n + 1)
		return (double)(gy + 2 * gx) / (double)(3 * (n + 1));
	return (double)(ex_mix64(gy * (n + 2) + gx) >> 11) * 0x1p-53;
}

/* Both buffers get the starting values, ghost frame included. */
static void init_block(double *u, size_t n, const struct block *b)
{
	for (size_t y = 0; y < b->ny + 2; y++)
		for (size_t x = 0; x < b->nx + 2; x++)
			u[y * (b->nx + 2) + x] = initial(n, b->y0 + y, b->x0 + x);
	memcpy(u + cells(b), u, cells(b) * sizeof(*u));
}

/* One Jacobi step over a block's interior: used for the blocks and for the reference. */
static void sweep(const double *restrict u, double *restrict v, size_t ny, size_t nx)
{
	size_t s = nx + 2;

	for (size_t y = 1; y <= ny; y++)
		for (size_t x = 1; x <= nx; x++)
			v[y * s + x] = 0.25 * (u[(y - 1) * s + x] + u[(y + 1) * s + x] +
					       u[y * s + x - 1] + u[y * s + x + 1]);
}

struct neighbour {
	int rank;			/* MPI_PROC_NULL at the edge of the grid */
	struct block b;
	struct ex_peer peer;		/* its two buffers, attached once */
};

/* Buffer `which` of a neighbour, as mapped here. */
static const double *peer_grid(const struct neighbour *nb, int which)
{
	return (const double *)nb->peer.data + (size_t)which * cells(&nb->b);
}

/*
 * Copy the neighbours' edges of buffer `which` into our ghost frame of the
 * same buffer. North and south edges are rows (one memcpy each; the
 * neighbour has our column range, so its rows are as long as ours), west
 * and east are columns (strided, one cell per row).
 */
static void fill_ghosts(double *u, const struct block *b, const struct neighbour nb[SIDES],
			int which)
{
	size_t s = b->nx + 2, row = b->nx * sizeof(double);

	if (nb[NORTH].rank != MPI_PROC_NULL)
		memcpy(&u[1], peer_grid(&nb[NORTH], which) + nb[NORTH].b.ny * s + 1, row);
	if (nb[SOUTH].rank != MPI_PROC_NULL)
		memcpy(&u[(b->ny + 1) * s + 1], peer_grid(&nb[SOUTH], which) + s + 1, row);
	if (nb[WEST].rank != MPI_PROC_NULL) {
		const double *w = peer_grid(&nb[WEST], which);
		size_t ws = nb[WEST].b.nx + 2;

		for (size_t y = 1; y <= b->ny; y++)
			u[y * s] = w[y * ws + nb[WEST].b.nx];
	}
	if (nb[EAST].rank != MPI_PROC_NULL) {
		const double *e = peer_grid(&nb[EAST], which);
		size_t es = nb[EAST].b.nx + 2;

		for (size_t y = 1; y <= b->ny; y++)
			u[y * s + b->nx + 1] = e[y * es + 1];
	}
}

/* The grid's neighbours of rank r, by side; MPI_PROC_NULL past the edges. */
static void find_neighbours(size_t n, const int dims[2], int r, struct neighbour nb[SIDES])
{
	int cy = r / dims[1], cx = r % dims[1];

	nb[NORTH].rank = cy > 0 ? r - dims[1] : MPI_PROC_NULL;
	nb[SOUTH].rank = cy < dims[0] - 1 ? r + dims[1] : MPI_PROC_NULL;
	nb[WEST].rank = cx > 0 ? r - 1 : MPI_PROC_NULL;
	nb[EAST].rank = cx < dims[1] - 1 ? r + 1 : MPI_PROC_NULL;
	for (int i = 0; i < SIDES; i++)
		if (nb[i].rank != MPI_PROC_NULL)
			nb[i].b = block_of(n, dims, nb[i].rank);
}

/*
 * Rank 0: gather every block's interior (MPI, independent of the attachments),
 * compare with the one-rank reference, count the cells that differ and
 * return the largest difference.
 */
static double gather_and_compare(size_t n, const int dims[2], int rank, int nranks,
				 const double *mine, const struct block *b, const double *ref,
				 unsigned long long *bad)
{
	double *packed = malloc(b->ny * b->nx * sizeof(double)), *all = NULL, maxerr = 0;
	int *counts = NULL, *displs = NULL;

	if (!packed)
		xm_die("malloc");
	for (size_t y = 0; y < b->ny; y++)
		memcpy(&packed[y * b->nx], &mine[(y + 1) * (b->nx + 2) + 1], b->nx * sizeof(double));
	if (rank == 0) {
		all = malloc(n * n * sizeof(double));
		counts = malloc((size_t)nranks * sizeof(int));
		displs = malloc((size_t)nranks * sizeof(int));
		if (!all || !counts || !displs)
			xm_die("malloc");
		for (int r = 0, at = 0; r < nranks; r++) {
			struct block rb = block_of(n, dims, r);

			counts[r] = (int)(rb.ny * rb.nx);
			displs[r] = at;
			at += counts[r];
		}
	}
	MPI_Gatherv(packed, (int)(b->ny * b->nx), MPI_DOUBLE, all, counts, displs, MPI_DOUBLE, 0,
		    MPI_COMM_WORLD);
	for (int r = 0; rank == 0 && r < nranks; r++) {
		struct block rb = block_of(n, dims, r);
		const double *got = all + displs[r];

		for (size_t y = 0; y < rb.ny; y++)
			for (size_t x = 0; x < rb.nx; x++) {
				double want = ref[(rb.y0 + y + 1) * (n + 2) + rb.x0 + x + 1];
				double g = got[y * rb.nx + x];

				if (g != want) {
					if ((*bad)++ < 5)
						fprintf(stderr, "cell (%zu, %zu) of rank %d: %.17g, reference %.17g\n",
							rb.y0 + y + 1, rb.x0 + x + 1, r, g, want);
					double d = isnan(g) ? INFINITY : fabs(g - want);

					maxerr = d > maxerr ? d : maxerr;
				}
			}
	}
	free(packed);
	free(all);
	free(counts);
	free(displs);
	return maxerr;
}

int main(int argc, char **argv)
{
	size_t n = 256, iters = 100;
	const struct ex_opt opts[] = {
		{ "n", EX_COUNT, &n, "interior grid points per side" },
		{ "iters", EX_COUNT, &iters, "Jacobi iterations" },
	};
	int rank, nranks, rc, dims[2] = { 0, 0 };
	struct neighbour nb[SIDES];
	struct xm_remote *all;
	struct ex_region own;
	struct ex_peer peers[SIDES];
	struct block b, whole;
	double *grid, *ref = NULL, t_loop, t_ref = 0, maxerr;
	unsigned long long bad = 0;
	int npeers = 0;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &nranks);
	rc = ex_parse_opts(argc, argv, opts, sizeof(opts) / sizeof(opts[0]),
			   "halo: Jacobi stencil with ghost cells read through XPMEM attachments");
	MPI_Dims_create(nranks, 2, dims);
	if (rc == 0 && (n < (size_t)dims[0] || n < (size_t)dims[1] || n > 32768)) {
		if (rank == 0)
			fprintf(stderr, "halo: --n must be between %d and 32768\n",
				dims[0] > dims[1] ? dims[0] : dims[1]);
		rc = -1;
	}
	if (rc != 0) {
		MPI_Finalize();
		return rc < 0 ? 2 : 0;
	}

	/* Our block in two buffers, exported; the neighbours' attached once. */
	b = block_of(n, dims, rank);
	whole = (struct block){ 0, 0, n, n };
	all = calloc((size_t)nranks, sizeof(*all));
	if (!all)
		xm_die("calloc");
	own = ex_region_create(MPI_COMM_WORLD, 2 * cells(&b) * sizeof(double), all);
	grid = own.data;
	init_block(grid, n, &b);
	find_neighbours(n, dims, rank, nb);
	for (int i = 0; i < SIDES; i++)
		if (nb[i].rank != MPI_PROC_NULL)
			nb[i].peer = peers[npeers++] = ex_peer_attach(
				&all[nb[i].rank], 2 * cells(&nb[i].b) * sizeof(double));
	/* Every block is initialised before anyone reads a neighbour's (flags start at 0). */
	MPI_Barrier(MPI_COMM_WORLD);

	t_loop = MPI_Wtime();
	for (size_t k = 0; k < iters; k++) {
		int cur = (int)(k % 2);

		for (int i = 0; i < SIDES; i++)
			if (nb[i].rank != MPI_PROC_NULL)
				ex_flag_wait(nb[i].peer.flag, k, nb[i].rank);
		fill_ghosts(grid + cur * cells(&b), &b, nb, cur);
		sweep(grid + cur * cells(&b), grid + (1 - cur) * cells(&b), b.ny, b.nx);
		ex_flag_set(own.flag, k + 1);
	}
	t_loop = MPI_Wtime() - t_loop;
	MPI_Allreduce(MPI_IN_PLACE, &t_loop, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);

	if (rank == 0) {
		ref = malloc(2 * cells(&whole) * sizeof(double));
		if (!ref)
			xm_die("malloc");
		init_block(ref, n, &whole);
		t_ref = MPI_Wtime();
		for (size_t k = 0; k < iters; k++)
			sweep(ref + (k % 2) * cells(&whole), ref + (1 - k % 2) * cells(&whole), n, n);
		t_ref = MPI_Wtime() - t_ref;
	}
	maxerr = gather_and_compare(n, dims, rank, nranks, grid + (iters % 2) * cells(&b), &b,
				    ref ? ref + (iters % 2) * cells(&whole) : NULL, &bad);
	if (rank == 0) {
		printf("halo: %zu x %zu grid, %d rank(s) as %d x %d blocks, %zu Jacobi iterations\n",
		       n, n, nranks, dims[0], dims[1], iters);
		printf("ghost cells read from the neighbours' buffers through attachments, neighbour flags in their pages\n");
		printf("time: %.3f s on %d rank(s) (%.1f Mcell/s); one-rank reference: %.3f s\n",
		       t_loop, nranks, (double)n * n * iters / t_loop / 1e6, t_ref);
		printf("max |difference| from the reference: %g (%llu cells differ; must be 0)\n",
		       maxerr, bad);
	}

	free(ref);
	free(all);
	return ex_finish(&own, peers, npeers, bad);
}
