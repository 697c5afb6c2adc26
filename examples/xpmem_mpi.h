/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xpmem_mpi.h - the few steps every MPI example repeats, written once.
 *
 * The pattern is the one MPI libraries use: each rank exports its whole
 * address space once (xpmem_make over XPMEM_MAXADDR_SIZE), the segids and
 * buffer addresses are exchanged over MPI, and a rank that wants to read a
 * peer's buffer gets the peer's segment and attaches the page range that
 * covers the buffer. The attachment is long-lived: it follows the peer's
 * page tables, so it stays valid while the peer frees, remaps or migrates
 * the memory behind it.
 *
 * Header-only (static functions), because each example is one program.
 */
#ifndef XPMEM_MPI_H
#define XPMEM_MPI_H

#include <errno.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xpmem.h"

/* Print what failed on which rank, then take the whole job down. */
static inline void xm_die(const char *what)
{
	int rank = -1, initialized = 0;

	MPI_Initialized(&initialized);
	if (initialized)
		MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	fprintf(stderr, "rank %d: %s: %s\n", rank, what, strerror(errno));
	if (initialized)
		MPI_Abort(MPI_COMM_WORLD, 1);
	exit(1);
}

/*
 * Export this process's whole address space, readable and writable by the
 * same user only. Collective-free: each rank calls it once.
 */
static inline xpmem_segid_t xm_export_all(void)
{
	xpmem_segid_t segid;

	segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	if (segid < 0)
		xm_die("xpmem_make");
	return segid;
}

/* What a rank publishes about one buffer of its own. */
struct xm_remote {
	xpmem_segid_t segid;	/* the rank's whole-address-space segment */
	uint64_t addr;		/* the buffer's address in the rank's space */
};

/*
 * Collective over comm: every rank publishes (segid, buf) and gets back the
 * table of all ranks' entries, indexed by rank in comm.
 */
static inline void xm_exchange(MPI_Comm comm, xpmem_segid_t segid, const void *buf,
			       struct xm_remote *all)
{
	struct xm_remote me = { segid, (uint64_t)(uintptr_t)buf };

	if (MPI_Allgather(&me, sizeof(me), MPI_BYTE, all, sizeof(me), MPI_BYTE, comm) !=
	    MPI_SUCCESS)
		xm_die("MPI_Allgather");
}

/* A peer's buffer, mapped into this process. */
struct xm_mapping {
	xpmem_apid_t apid;
	void *base;		/* what xpmem_attach returned (page aligned) */
	void *ptr;		/* the peer's buffer, inside base */
};

/*
 * Map len bytes of a peer's buffer. flags is XPMEM_RDWR or XPMEM_RDONLY.
 * Attachments are page-granular, so the page range that covers the buffer
 * is attached and ptr points at the buffer's first byte inside it.
 */
static inline struct xm_mapping xm_attach(const struct xm_remote *peer, size_t len, int flags)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t start = peer->addr & ~(page - 1);
	uint64_t end = (peer->addr + len + page - 1) & ~(page - 1);
	struct xm_mapping m;
	struct xpmem_addr addr;

	m.apid = xpmem_get(peer->segid, flags, XPMEM_PERMIT_MODE, NULL);
	if (m.apid < 0)
		xm_die("xpmem_get");
	addr.apid = m.apid;
	addr.offset = (off_t)start;
	m.base = xpmem_attach(addr, end - start, NULL);
	if (m.base == (void *)-1)
		xm_die("xpmem_attach");
	m.ptr = (char *)m.base + (peer->addr - start);
	return m;
}

static inline void xm_detach(struct xm_mapping *m)
{
	if (xpmem_detach(m->base) != 0)
		xm_die("xpmem_detach");
	if (xpmem_release(m->apid) != 0)
		xm_die("xpmem_release");
	m->base = m->ptr = NULL;
}

/*
 * One of the driver's counters from /sys/kernel/debug/xpmem/stats (the
 * test VM makes it readable), or -1 where debugfs is not available.
 */
static inline long xm_driver_stat(const char *name)
{
	FILE *f = fopen("/sys/kernel/debug/xpmem/stats", "r");
	char key[64];
	long value, found = -1;

	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld", key, &value) == 2) {
		if (strcmp(key, name) == 0) {
			found = value;
			break;
		}
	}
	fclose(f);
	return found;
}

#endif /* XPMEM_MPI_H */
