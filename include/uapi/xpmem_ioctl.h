/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR LGPL-2.1-or-later */
/*
 * xpmem_ioctl.h - the ioctl ABI of /dev/xpmem.
 *
 * This header is shared by the kernel module (kernel/) and by libxpmem. Most
 * programs should use <xpmem.h> and the library instead of issuing these
 * ioctls themselves.
 *
 * Rules that hold for every command:
 *  - Every command is _IOWR() and carries exactly one struct. Fields are
 *    fixed-width and naturally aligned, so 32-bit and 64-bit callers share one
 *    layout (the driver's compat_ioctl is compat_ptr_ioctl()).
 *  - Fields are marked (in) or (out). The driver copies the whole struct in,
 *    validates it, and copies it back out only when the command succeeds.
 *  - Unknown flag bits and non-zero reserved fields are refused with EINVAL,
 *    so that later versions can give them a meaning.
 *  - Errors common to all commands:
 *      ENOTTY  the ioctl type or number is not one of ours;
 *      EINVAL  the number is ours but the size or direction encoded in the
 *              command does not match this header (a caller built against a
 *              different ABI), or a flag/reserved field is invalid;
 *      EFAULT  the argument pointer cannot be read or written.
 */
#ifndef _UAPI_XPMEM_IOCTL_H
#define _UAPI_XPMEM_IOCTL_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* The device node, created by the module (and the udev rule) with mode 0666. */
#define XPMEM_DEVICE_PATH	"/dev/xpmem"

/*
 * ioctl type 'x', numbers 0x00-0x1f. Unused by any in-tree driver in 6.1
 * (Documentation/userspace-api/ioctl/ioctl-number.rst).
 */
#define XPMEM_IOC_MAGIC		'x'

/*
 * XPMEM_ABI_VERSION counts incompatible changes to this header. A library
 * refuses to talk to a driver whose abi_version differs from the one it was
 * built with. Compatible additions (new commands, new feature bits) do not
 * change it; they are announced through xpmem_ioc_info.features.
 */
#define XPMEM_ABI_VERSION	1

/*
 * Driver version, as returned by xpmem_version(): major << 16 | minor << 8 |
 * patch. It is always positive.
 */
#define XPMEM_VERSION_CODE(major, minor, patch) \
	(((major) << 16) | ((minor) << 8) | (patch))

/*
 * Feature bits in xpmem_ioc_info.features. A bit is set only when the loaded
 * driver implements the feature.
 */
/* XPMEM_IOC_MAKE, _REMOVE, _GET and _RELEASE. */
#define XPMEM_FEATURE_SEGMENTS	(1ULL << 0)
/* XPMEM_IOC_ATTACH and _DETACH: coherent mappings, no pinned pages. */
#define XPMEM_FEATURE_ATTACH	(1ULL << 1)
/* XPMEM_ATTACH_POPULATE. */
#define XPMEM_FEATURE_ATTACH_POPULATE	(1ULL << 2)
#define XPMEM_FEATURES_ALL	(XPMEM_FEATURE_SEGMENTS | XPMEM_FEATURE_ATTACH | \
				 XPMEM_FEATURE_ATTACH_POPULATE)

/*
 * xpmem_ioc_attach.flags: map every page of the attachment (up to its
 * segment's end) before returning (faulting in the exporter's pages that
 * are not present),
 * read-only, so that the first reads cost no faults; the first write to a
 * page still does. Holes are skipped, not an error.
 */
#define XPMEM_ATTACH_POPULATE	(1U << 0)
#define XPMEM_ATTACH_FLAGS	XPMEM_ATTACH_POPULATE

/*
 * errno of every command but XPMEM_IOC_INFO issued on a descriptor by a
 * process other than the one that opened it (a child after fork, or a
 * process that received the descriptor). The driver binds each open to the
 * opener's address space; libxpmem reacts by opening the device again.
 */
#define XPMEM_ERRNO_NOPROC	2004

/* The only permit type: permit_value is a file mode (bits 0777). */
#define XPMEM_PERMIT_MODE	0x1

/* Access requested by XPMEM_IOC_GET: exactly one of them. */
#define XPMEM_RDONLY		0x1
#define XPMEM_RDWR		0x2

/* xpmem_ioc_make.size meaning "up to the end of the address space". */
#define XPMEM_MAXADDR_SIZE_U64	(~0ULL)

/**
 * struct xpmem_ioc_info - argument of XPMEM_IOC_INFO
 * @flags:          (in)  must be 0.
 * @abi_version:    (out) XPMEM_ABI_VERSION of the loaded driver.
 * @driver_version: (out) XPMEM_VERSION_CODE() of the loaded driver.
 * @features:       (out) XPMEM_FEATURE_* bits the driver supports.
 * @task_size:      (out) the top of the caller's user address space
 *                  (TASK_SIZE). XPMEM_MAXADDR_SIZE is clamped to it.
 * @reserved:       (in) must be 0; (out) 0.
 *
 * Errors: only the common ones (ENOTTY, EINVAL, EFAULT).
 */
struct xpmem_ioc_info {
	__u32 flags;
	__u32 abi_version;
	__u32 driver_version;
	__u32 __pad;		/* (in) must be 0 */
	__u64 features;
	__u64 task_size;
	__u64 reserved[4];
};

#define XPMEM_IOC_INFO		_IOWR(XPMEM_IOC_MAGIC, 0x00, struct xpmem_ioc_info)

/**
 * struct xpmem_ioc_make - argument of XPMEM_IOC_MAKE: export a range of the
 * caller's address space as a segment.
 * @vaddr:        (in)  start of the range; page-aligned. 0 is allowed.
 * @size:         (in)  length; page-aligned and non-zero, or
 *                      XPMEM_MAXADDR_SIZE_U64 for "up to task_size".
 * @permit_type:  (in)  XPMEM_PERMIT_MODE.
 * @flags:        (in)  must be 0.
 * @permit_value: (in)  who may XPMEM_IOC_GET it: a mode, checked like a
 *                      System V IPC object's against the creator's uid,
 *                      gid and user namespace. Only bits 0777.
 * @segid:        (out) the segment id: positive, random, never reused
 *                      while the segment exists.
 * @reserved:     (in)  must be 0.
 *
 * The range may contain holes; it is not checked against the caller's
 * mappings. The segment lives until XPMEM_IOC_REMOVE, until the descriptor
 * it was made on is closed, or until its creator's address space goes away.
 *
 * Errors: EINVAL (alignment, zero size, vaddr + size beyond task_size or
 * overflowing, unknown permit_type, mode bits outside 0777, flags or
 * reserved non-zero), ENOSPC (the calling process already has max_segments
 * segments, over all its descriptors, or max_overlap over some page of the
 * range: module parameters, 65536 and 64 by default), ENOMEM,
 * XPMEM_ERRNO_NOPROC. The segment's memory is charged to the caller's
 * memory cgroup.
 */
struct xpmem_ioc_make {
	__u64 vaddr;
	__u64 size;
	__u32 permit_type;
	__u32 flags;
	__u64 permit_value;
	__s64 segid;
	__u64 reserved[3];
};

/**
 * struct xpmem_ioc_remove - argument of XPMEM_IOC_REMOVE: remove a segment.
 * @segid:    (in) a segment made on this descriptor.
 * @flags:    (in) must be 0.
 * @__pad:    (in) must be 0.
 * @reserved: (in) must be 0.
 *
 * No new access permit can be got for it afterwards. Permits already got
 * stay until released, but every attachment of the segment, in every
 * process, raises SIGBUS when touched from then on.
 *
 * Errors: ENOENT (no such segment), EPERM (the segment was made by another
 * process or on another descriptor), EINVAL, XPMEM_ERRNO_NOPROC.
 */
struct xpmem_ioc_remove {
	__s64 segid;
	__u32 flags;
	__u32 __pad;
	__u64 reserved[2];
};

/**
 * struct xpmem_ioc_get - argument of XPMEM_IOC_GET: get an access permit.
 * @segid:        (in)  the segment.
 * @access:       (in)  XPMEM_RDONLY or XPMEM_RDWR.
 * @permit_type:  (in)  XPMEM_PERMIT_MODE.
 * @permit_value: (in)  ignored: the segment's own mode decides. Consumers
 *                      pass their mode or NULL here.
 * @flags:        (in)  must be 0.
 * @__pad:        (in)  must be 0.
 * @apid:         (out) the access permit id: positive and random. It is
 *                      valid only on this descriptor, in this process.
 * @reserved:     (in)  must be 0.
 *
 * Errors: ENOENT (no such segment, or it was removed), EACCES (the segment's
 * mode does not grant @access to the caller, who lacks CAP_IPC_OWNER in the
 * creator's user namespace), EINVAL, ENOSPC (the descriptor already holds
 * max_permits permits, a module parameter, 65536 by default), ENOMEM,
 * XPMEM_ERRNO_NOPROC. The permit's memory is charged to the caller's memory
 * cgroup.
 */
struct xpmem_ioc_get {
	__s64 segid;
	__u32 access;
	__u32 permit_type;
	__u64 permit_value;
	__u32 flags;
	__u32 __pad;
	__s64 apid;
	__u64 reserved[2];
};

/**
 * struct xpmem_ioc_release - argument of XPMEM_IOC_RELEASE: drop a permit.
 * @apid:     (in) a permit got on this descriptor.
 * @flags:    (in) must be 0.
 * @__pad:    (in) must be 0.
 * @reserved: (in) must be 0.
 *
 * Unmaps the caller's attachments made through the permit, as
 * XPMEM_IOC_DETACH does, and only then drops the permit. Attachments still
 * mapped when the descriptor is closed stay valid until unmapped or until
 * their segment goes away.
 *
 * Errors: ENOENT (no such permit on this descriptor), EINVAL, the errors of
 * munmap(2) (ENOMEM, EINTR, EPERM for an attachment sealed with mseal(2):
 * the permit is kept), XPMEM_ERRNO_NOPROC. An attachment that another
 * thread makes through the permit while it is released, and that cannot
 * be unmapped, stays mapped after the release succeeds.
 */
struct xpmem_ioc_release {
	__s64 apid;
	__u32 flags;
	__u32 __pad;
	__u64 reserved[2];
};

/**
 * struct xpmem_ioc_attach - argument of XPMEM_IOC_ATTACH: map part of a
 * segment into the caller's address space.
 * @apid:     (in)  a permit got on this descriptor.
 * @offset:   (in)  byte offset into the segment of the first byte wanted.
 *                  It need not be page-aligned.
 * @size:     (in)  bytes wanted, non-zero. The mapping covers whole pages:
 *                  from @offset rounded down to [@offset + @size) rounded up.
 *                  In a segment made with XPMEM_MAXADDR_SIZE_U64 (which
 *                  ends at its creator's task_size) the range may run past
 *                  the segment's end, as Open MPI's vader asks for it near
 *                  the top of the address space; the pages past the end
 *                  raise SIGBUS when touched.
 * @vaddr:    (in)  0 to let the kernel choose, or a page-aligned address
 *                  for a fixed mapping (which replaces what was there, as
 *                  MAP_FIXED does). The kernel's choice is congruent to
 *                  the exporter's address modulo 2 MiB when the range can
 *                  hold a 2 MiB page: the exporter's huge pages then map
 *                  with one PMD each. (out) the address of the byte at
 *                  @offset.
 * @flags:    (in)  XPMEM_ATTACH_* bits.
 * @__pad:    (in)  must be 0.
 * @reserved: (in)  must be 0.
 *
 * The mapping is MAP_SHARED, readable, writable only for an XPMEM_RDWR
 * permit, and never executable (not even for a READ_IMPLIES_EXEC
 * personality; mprotect(PROT_EXEC) fails with EACCES). It is never
 * inherited by fork() (VM_DONTCOPY, and madvise(MADV_DOFORK) on it fails
 * with EINVAL). Loads and stores reach
 * whatever the exporter's page tables map at the same place *now*: when the
 * exporter's mapping changes (munmap, mremap, MADV_DONTNEED, mprotect, COW,
 * migration, reclaim, ...), the attachment follows. Nothing stays pinned.
 * A store through the attachment dirties the exporter's page, as the
 * exporter's own store would, so reclaim and writeback keep it.
 * A touch of a page the exporter has no mapping for, a write to a page the
 * exporter may not write, or any touch after the segment is removed or its
 * exporter's address space is gone, raises SIGBUS. So does a touch of
 * memory that get_user_pages() refuses to the same process (what
 * process_vm_readv() and /proc/PID/mem would refuse): memfd_secret memory,
 * VM_IO and VM_PFNMAP mappings (another attachment among them), mappings
 * without PROT_READ. remap_file_pages() on an attachment fails with EPERM,
 * after the kernel has unmapped the range.
 *
 * Errors: ENOENT (no such permit on this descriptor, or its segment was
 * removed, also while XPMEM_ATTACH_POPULATE ran; a malformed request is
 * EINVAL first), EINVAL (size 0, @offset
 * outside the segment, a range past the end of a segment made with an
 * explicit size, or one whose exporter addresses would overflow, unaligned
 * @vaddr, unknown flags, reserved non-zero),
 * ENOMEM (also at vm.max_map_count, and for a @size larger than the
 * caller's task_size in a whole segment), ENFILE (the
 * system's file table is full: each attachment is a file), EINTR (a fatal
 * signal during XPMEM_ATTACH_POPULATE), and the errors of mmap(2),
 * XPMEM_ERRNO_NOPROC. When XPMEM_ATTACH_POPULATE fails, the mapping is
 * removed again and nothing is returned.
 */
struct xpmem_ioc_attach {
	__s64 apid;
	__u64 offset;
	__u64 size;
	__u64 vaddr;
	__u32 flags;
	__u32 __pad;
	__u64 reserved[3];
};

/**
 * struct xpmem_ioc_detach - argument of XPMEM_IOC_DETACH: unmap an
 * attachment.
 * @vaddr:    (in) any address inside an attachment of the caller.
 * @flags:    (in) must be 0.
 * @__pad:    (in) must be 0.
 * @reserved: (in) must be 0.
 *
 * Unmaps every part of that attachment that is still mapped where it was
 * attached. Releasing a permit (XPMEM_IOC_RELEASE) does the same for all
 * attachments made through it.
 *
 * Errors: EINVAL (@vaddr is not inside an attachment, flags or reserved
 * non-zero), the errors of munmap(2) (ENOMEM, EINTR, EPERM for an
 * attachment sealed with mseal(2)), XPMEM_ERRNO_NOPROC.
 * After a munmap error, other parts of the attachment may be unmapped
 * already, but the part at @vaddr is not: the same call can be repeated.
 */
struct xpmem_ioc_detach {
	__u64 vaddr;
	__u32 flags;
	__u32 __pad;
	__u64 reserved[2];
};

#define XPMEM_IOC_MAKE		_IOWR(XPMEM_IOC_MAGIC, 0x01, struct xpmem_ioc_make)
#define XPMEM_IOC_REMOVE	_IOWR(XPMEM_IOC_MAGIC, 0x02, struct xpmem_ioc_remove)
#define XPMEM_IOC_GET		_IOWR(XPMEM_IOC_MAGIC, 0x03, struct xpmem_ioc_get)
#define XPMEM_IOC_RELEASE	_IOWR(XPMEM_IOC_MAGIC, 0x04, struct xpmem_ioc_release)
#define XPMEM_IOC_ATTACH	_IOWR(XPMEM_IOC_MAGIC, 0x05, struct xpmem_ioc_attach)
#define XPMEM_IOC_DETACH	_IOWR(XPMEM_IOC_MAGIC, 0x06, struct xpmem_ioc_detach)

#endif /* _UAPI_XPMEM_IOCTL_H */
