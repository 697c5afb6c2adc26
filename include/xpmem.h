/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xpmem.h - the public interface of libxpmem.
 *
 * The types, constants and functions below keep the names, values and
 * calling conventions of the XPMEM interface that MPICH, Open MPI, UCX and
 * libfabric are built against, so that those consumers compile against this
 * header and link against libxpmem.so.0 unchanged.
 *
 * Functions report errors by returning -1 (or (void *)-1 for pointers) and
 * setting errno. Calls whose names start with xpmem_ext_ are extensions of
 * this implementation; portable consumers should not depend on them.
 */
#ifndef XPMEM_H
#define XPMEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "xpmem_ioctl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Segment and access-permit identifiers. -1 means failure. */
typedef int64_t xpmem_segid_t;
typedef int64_t xpmem_apid_t;

/* An address inside a segment, as seen through an access permit. */
struct xpmem_addr {
	xpmem_apid_t apid;	/* access permit from xpmem_get() */
	off_t offset;		/* byte offset from the start of the segment */
};

/* "Up to the end of the address space"; the driver clamps it. */
#define XPMEM_MAXADDR_SIZE	((size_t)-1)

/* Access flags of xpmem_get(): exactly one of them. */
#define XPMEM_RDONLY		0x1
#define XPMEM_RDWR		0x2

/* Permit types of xpmem_make() and xpmem_get(). */
#define XPMEM_PERMIT_MODE	0x1

/* The device that the library opens. */
#define XPMEM_DEV_PATH		XPMEM_DEVICE_PATH

/* errno value meaning "this descriptor belongs to another process". */
#define XPMEM_ERRNO_NOPROC	2004

/**
 * xpmem_version() - version of the loaded driver.
 *
 * Opens the device on first use. Returns a positive XPMEM_VERSION_CODE(), or
 * -1 with errno set:
 *   ENOENT   /dev/xpmem does not exist (the module is not loaded);
 *   EACCES   the device cannot be opened by this user;
 *   EPROTO   the driver speaks another XPMEM_ABI_VERSION than this library;
 *   others   from open(2) or ioctl(2) (ENOTTY: not an xpmem device).
 */
int xpmem_version(void);

/**
 * xpmem_ext_get_info() - the driver's XPMEM_IOC_INFO answer.
 * @info: filled in on success.
 *
 * Returns 0, or -1 with errno set as for xpmem_version() (EFAULT if @info is
 * NULL).
 */
int xpmem_ext_get_info(struct xpmem_ioc_info *info);

#ifdef __cplusplus
}
#endif

#endif /* XPMEM_H */
