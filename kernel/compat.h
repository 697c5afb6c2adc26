/* SPDX-License-Identifier: GPL-2.0 */
/*
 * compat.h - every difference between the kernels we support.
 *
 * We build against Linux 6.1 and 6.12 (the two Debian 12 LTS kernels). Any
 * API that differs between them gets a small wrapper here, keyed on
 * LINUX_VERSION_CODE, and the rest of the driver calls the wrapper. No other
 * file in kernel/ may test the kernel version.
 *
 * Still to come with their first users: the get_user_pages_remote()
 * signature at 6.5 and the PMD insert (vmf_insert_pfn_pmd_prot() in 6.1,
 * vmf_insert_pfn_pmd() in 6.12).
 */
#ifndef XPMEM_COMPAT_H
#define XPMEM_COMPAT_H

#include <linux/mm.h>
#include <linux/version.h>

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 1, 0)
#error "xpmem needs Linux 6.1 or newer"
#endif

/* vm_flags became read-only outside the helpers in 6.3. */
static inline void xpmem_vm_flags_set(struct vm_area_struct *vma, unsigned long flags)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_set(vma, flags);
#else
	vma->vm_flags |= flags;
#endif
}

static inline void xpmem_vm_flags_clear(struct vm_area_struct *vma, unsigned long flags)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_clear(vma, flags);
#else
	vma->vm_flags &= ~flags;
#endif
}

/*
 * From 6.4 a fault may run under the VMA's own lock (FAULT_FLAG_VMA_LOCK)
 * instead of mmap_lock. These say which lock the fault holds and drop it
 * for VM_FAULT_RETRY.
 */
static inline bool xpmem_fault_holds_mmap_lock(const struct vm_fault *vmf)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	return !(vmf->flags & FAULT_FLAG_VMA_LOCK);
#else
	return true;
#endif
}

static inline void xpmem_release_fault_lock(struct vm_fault *vmf)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	if (vmf->flags & FAULT_FLAG_VMA_LOCK) {
		vma_end_read(vmf->vma);
		return;
	}
#endif
	mmap_read_unlock(vmf->vma->vm_mm);
}

#endif /* XPMEM_COMPAT_H */
