// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * consumer.c - compiled against an installed xpmem the way MPI stacks'
 * configure scripts probe it: include <xpmem.h>, link -lxpmem, reference
 * the whole XPMEM API (so a missing symbol fails the link) and call
 * xpmem_version(). Built and run by tests/install/check-install.
 */
#include <stdio.h>
#include <xpmem.h>

int main(void)
{
	/* Every call of the XPMEM API, with its exact type. */
	int (*version)(void) = xpmem_version;
	int (*init)(void) = xpmem_init;
	xpmem_segid_t (*make)(void *, size_t, int, void *) = xpmem_make;
	int (*remove)(xpmem_segid_t) = xpmem_remove;
	xpmem_apid_t (*get)(xpmem_segid_t, int, int, void *) = xpmem_get;
	int (*release)(xpmem_apid_t) = xpmem_release;
	void *(*attach)(struct xpmem_addr, size_t, void *) = xpmem_attach;
	int (*detach)(void *) = xpmem_detach;
	int v = version();

	printf("xpmem_version() = %d; API: %p %p %p %p %p %p %p\n", v, (void *)init,
	       (void *)make, (void *)remove, (void *)get, (void *)release,
	       (void *)attach, (void *)detach);
	/* Without the module the call must fail cleanly, not crash. */
	return v == -1 || v > 0 ? 0 : 1;
}
