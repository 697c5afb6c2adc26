/* SPDX-License-Identifier: GPL-2.0 */
/*
 * xpmem_internal.h - declarations shared by the files of the xpmem module.
 */
#ifndef XPMEM_INTERNAL_H
#define XPMEM_INTERNAL_H

#include "compat.h"
#include "xpmem_ioctl.h"

/* Set from the VERSION file by Kbuild. */
#define XPMEM_DRIVER_VERSION \
	XPMEM_VERSION_CODE(XPMEM_VERSION_MAJOR, XPMEM_VERSION_MINOR, \
			   XPMEM_VERSION_PATCH)

#endif /* XPMEM_INTERNAL_H */
