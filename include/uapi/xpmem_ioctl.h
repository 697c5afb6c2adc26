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
 * driver implements the feature. None are defined yet: this ABI version
 * provides only XPMEM_IOC_INFO.
 */
#define XPMEM_FEATURES_ALL	0ULL

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

#endif /* _UAPI_XPMEM_IOCTL_H */
