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
 *
 * Every call opens /dev/xpmem on its first use in a process (again in a
 * child after fork()), so each can also fail with the errors listed under
 * xpmem_version(). Call xpmem_init() first to tell a missing or unusable
 * device from a call's own errors: ENOENT from xpmem_get() otherwise reads
 * as "no such segment".
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

/*
 * From xpmem_ioctl.h, with the values the XPMEM API has always had:
 * XPMEM_RDONLY (0x1) and XPMEM_RDWR (0x2), the access flags of xpmem_get();
 * XPMEM_PERMIT_MODE (0x1), the only permit type; XPMEM_ERRNO_NOPROC (2004).
 */

/* The device that the library opens. */
#define XPMEM_DEV_PATH		XPMEM_DEVICE_PATH

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
 * xpmem_init() - open the device now rather than on first use.
 *
 * Kept because older libxpmem exported it and configure scripts probe for
 * it. Returns 0, or -1 with errno as for xpmem_version().
 */
int xpmem_init(void);

/**
 * xpmem_make() - export [@vaddr, @vaddr + @size) of this process.
 * @vaddr:        page-aligned start; NULL (0) is allowed.
 * @size:         page-aligned length, or XPMEM_MAXADDR_SIZE for "to the end
 *                of the address space" (clamped by the driver).
 * @permit_type:  XPMEM_PERMIT_MODE.
 * @permit_value: a mode such as (void *)0600: who may xpmem_get() it,
 *                checked like a System V IPC object's mode.
 *
 * The range may contain unmapped holes. The segment lasts until
 * xpmem_remove(), or until this process closes the device or exits.
 * Returns a positive segid, or -1 with errno: EINVAL (alignment, size,
 * permit type, mode bits outside 0777), ENOSPC (this process already has
 * the driver's maximum of segments, module parameter max_segments, or of
 * segments over one page of the range, max_overlap), ENOMEM,
 * or as for xpmem_version().
 */
xpmem_segid_t xpmem_make(void *vaddr, size_t size, int permit_type, void *permit_value);

/**
 * xpmem_remove() - remove a segment that this process made.
 *
 * No new permits can be got for it, and every attachment of it, in every
 * process, raises SIGBUS when touched from then on. Returns 0, or -1 with
 * errno: ENOENT (no such segment), EPERM (another process made it).
 */
int xpmem_remove(xpmem_segid_t segid);

/**
 * xpmem_get() - get access to a segment.
 * @segid:        from the exporter (xpmem_make()).
 * @flags:        XPMEM_RDONLY or XPMEM_RDWR.
 * @permit_type:  XPMEM_PERMIT_MODE.
 * @permit_value: ignored (the segment's mode decides); NULL is fine.
 *
 * Returns a positive apid, usable only in this process, or -1 with errno:
 * ENOENT (no such segment), EACCES (the segment's mode does not grant
 * @flags to this user), EINVAL (flags or permit type), ENOSPC (this process
 * already holds the driver's maximum of permits, module parameter
 * max_permits), ENOMEM.
 */
xpmem_apid_t xpmem_get(xpmem_segid_t segid, int flags, int permit_type, void *permit_value);

/**
 * xpmem_release() - drop an access permit got by this process.
 *
 * Also detaches this process's attachments made through it. Returns 0, or
 * -1 with errno ENOENT (no such permit in this process), or an error of
 * munmap(2) (ENOMEM, EINTR, or EPERM for an attachment sealed with
 * mseal(2)), in which case the permit is kept.
 */
int xpmem_release(xpmem_apid_t apid);

/**
 * xpmem_attach() - map part of a segment into this process.
 * @addr:  the permit (apid, from xpmem_get()) and the byte offset into the
 *         segment. For a segment made at address 0, the offset is the
 *         exporter's virtual address. It need not be page-aligned.
 * @size:  bytes; the mapping covers the whole pages they touch.
 * @vaddr: NULL to let the kernel choose, or a page-aligned address for a
 *         fixed mapping (replacing what is there, as MAP_FIXED does). The
 *         kernel chooses an address congruent to the exporter's modulo
 *         2 MiB when the range can hold a 2 MiB page, so that the
 *         exporter's huge pages map with one PMD each.
 *
 * Returns the address of the byte at @addr.offset, or (void *)-1 with
 * errno: ENOENT (no such permit in this process, or the segment was
 * removed), EINVAL (size 0, offset outside the segment, a range past the
 * end of a segment made with a size other than XPMEM_MAXADDR_SIZE, or one
 * whose exporter addresses would overflow, unaligned @vaddr), ENFILE (the
 * system's file table is full), ENOMEM (also when vm.max_map_count is
 * reached, or for a @size larger than this process's address space in a
 * segment made with XPMEM_MAXADDR_SIZE), or an error of mmap(2).
 *
 * A segment made with XPMEM_MAXADDR_SIZE ends at its exporter's TASK_SIZE.
 * A range in it may run past that end (Open MPI's vader rounds its
 * attachments out to 2 MiB, past TASK_SIZE near the top), and touching
 * its pages there raises SIGBUS.
 *
 * Loads and stores through the mapping reach what the exporter maps at the
 * same place now, and follow every change the exporter makes. Writing needs
 * an XPMEM_RDWR permit (otherwise SIGSEGV) and a page the exporter may
 * write (otherwise SIGBUS). Touching a page the exporter has not mapped, or
 * any page after the segment is removed or its exporter exits, raises
 * SIGBUS. So does touching memory that the kernel would not let this
 * process read with process_vm_readv(2): memfd_secret(2) memory, I/O and
 * PFN mappings (another attachment among them), PROT_NONE ranges.
 * Attachments are not inherited by fork(), and madvise(MADV_DOFORK) on
 * them fails with EINVAL. remap_file_pages(2) on an attachment fails with
 * EPERM (the kernel has unmapped that range by then).
 */
void *xpmem_attach(struct xpmem_addr addr, size_t size, void *vaddr);

/**
 * xpmem_ext_attach() - xpmem_attach() with XPMEM_ATTACH_* @flags.
 *
 * XPMEM_ATTACH_POPULATE maps every page before returning (faulting in the
 * exporter's pages that are not present, skipping holes), read-only, so the
 * first reads cost no faults; the first write to each page still does.
 * Extra errors: EINVAL for unknown flags, EINTR if a fatal signal
 * interrupts populating, ENOENT if the segment is removed meanwhile. When
 * populating fails, nothing stays mapped. Check XPMEM_FEATURE_ATTACH_POPULATE
 * with xpmem_ext_get_info() first when running on other XPMEM drivers.
 */
void *xpmem_ext_attach(struct xpmem_addr addr, size_t size, void *vaddr, unsigned int flags);

/**
 * xpmem_detach() - unmap the attachment that contains @vaddr.
 *
 * Any address inside the attachment will do. Returns 0, or -1 with errno
 * EINVAL if @vaddr is not inside an attachment of this process, or an
 * error of munmap(2) (ENOMEM, EINTR, or EPERM if it is sealed with
 * mseal(2)); then the part at @vaddr is still mapped, and the call can be
 * repeated.
 */
int xpmem_detach(void *vaddr);

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
