/* SPDX-License-Identifier: GPL-2.0 */
/*
 * compat.h - every difference between the kernels we support.
 *
 * We build against Linux 6.1 and 6.12 (the two Debian 12 LTS kernels). Any
 * API that differs between them gets a small wrapper here, keyed on
 * LINUX_VERSION_CODE, and the rest of the driver calls the wrapper. No other
 * file in kernel/ may test the kernel version.
 *
 * Known items for the coming code (add each wrapper together with its first
 * user): vm_flags_set() from 6.3, the get_user_pages_remote() signature at
 * 6.5, the PMD insert (vmf_insert_pfn_pmd_prot() in 6.1,
 * vmf_insert_pfn_pmd() in 6.12) and per-VMA locking.
 */
#ifndef XPMEM_COMPAT_H
#define XPMEM_COMPAT_H

#include <linux/version.h>

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 1, 0)
#error "xpmem needs Linux 6.1 or newer"
#endif

#endif /* XPMEM_COMPAT_H */
