// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * consumer.c - compiled against an installed xpmem the way MPI stacks'
 * configure scripts probe it: include <xpmem.h>, link -lxpmem, call
 * xpmem_version(). Built and run by tests/install/check-install.
 */
#include <stdio.h>
#include <xpmem.h>

int main(void)
{
	int v = xpmem_version();

	/* Without the module the call must fail cleanly, not crash. */
	printf("xpmem_version() = %d\n", v);
	return v == -1 || v > 0 ? 0 : 1;
}
