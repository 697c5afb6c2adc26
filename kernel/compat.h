/* SPDX-License-Identifier: GPL-2.0 */
/*
 * compat.h - every difference between the kernels we support.
 *
 * We build against Linux 5.10 (Debian 11) to 7.3 (the newest mainline that
 * Debian publishes); tests/run-tests boots 5.10, 6.1, 6.12, 6.1-RT and a
 * 7.x lockdep/KASAN kernel. Any API that differs between them gets a small
 * wrapper here, keyed on LINUX_VERSION_CODE, and the rest of the driver
 * calls the wrapper. No other file in kernel/ may test the kernel version.
 *
 * Where a newer kernel only added a name that an older one lacks, the
 * older one gets that name here (vma_lookup(), VM_FAULT_COMPLETED, ...),
 * so the driver reads as current kernel code. Where the meaning differs,
 * the driver calls an xpmem_ wrapper instead.
 */
#ifndef XPMEM_COMPAT_H
#define XPMEM_COMPAT_H

#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/version.h>
#if __has_include("linux/pfn_t.h")
#include <linux/pfn_t.h>
#endif

#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 10, 0)
#error "xpmem needs Linux 5.10 or newer"
#endif

/* vma_lookup() came in 5.14: the VMA that contains @addr, or NULL. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 14, 0)
static inline struct vm_area_struct *vma_lookup(struct mm_struct *mm, unsigned long addr)
{
	struct vm_area_struct *vma = find_vma(mm, addr);

	return vma && addr >= vma->vm_start ? vma : NULL;
}
#endif

/*
 * memfd_secret() came in 5.14. Before it no file system has this magic, so
 * the test that refuses secret memory (attach.c) is then always false.
 * Macros are tested by name, not version: enterprise kernels backport them.
 */
#ifndef SECRETMEM_MAGIC
#define SECRETMEM_MAGIC 0x5345434d
#endif

/* User shadow stacks (x86 CET) came in 6.6: before, no VMA is one. */
#ifndef VM_SHADOW_STACK
#define VM_SHADOW_STACK VM_NONE
#endif

/*
 * make_device_exclusive() and its invalidation event came in 5.14. Before,
 * the event's slot in the notifier's statistics table (notifier.c) is one
 * that no invalidation reports.
 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 14, 0)
#define MMU_NOTIFY_EXCLUSIVE (MMU_NOTIFY_MIGRATE + 1)
#endif

/*
 * From 5.19 handle_mm_fault() can finish a fault and drop the mmap_lock
 * (VM_FAULT_COMPLETED); before, a dropped lock is always VM_FAULT_RETRY.
 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 19, 0)
#define VM_FAULT_COMPLETED 0
#endif

/* Dirty an exporter's page that a writable attacher PTE will map. */
static inline void xpmem_page_mark_dirty(struct page *page)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 16, 0)
	folio_mark_dirty(page_folio(page));
#else
	set_page_dirty(page);
#endif
}

/*
 * Walk an mm's VMAs from an address on, under its mmap_lock: the maple
 * tree's iterator replaced the VMA list in 6.1.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 1, 0)
#define xpmem_vma_iter vma_iterator

static inline void xpmem_vma_iter_init(struct vma_iterator *vmi, struct mm_struct *mm,
				       unsigned long addr)
{
	vma_iter_init(vmi, mm, addr);
}

static inline struct vm_area_struct *xpmem_vma_iter_next(struct vma_iterator *vmi)
{
	return vma_next(vmi);
}
#else
struct xpmem_vma_iter {
	struct vm_area_struct *next;
};

static inline void xpmem_vma_iter_init(struct xpmem_vma_iter *vmi, struct mm_struct *mm,
				       unsigned long addr)
{
	vmi->next = find_vma(mm, addr);
}

static inline struct vm_area_struct *xpmem_vma_iter_next(struct xpmem_vma_iter *vmi)
{
	struct vm_area_struct *vma = vmi->next;

	if (vma)
		vmi->next = vma->vm_next;
	return vma;
}
#endif

/*
 * Clear the PTEs of a VM_PFNMAP range: zap_vma_ptes() was renamed
 * zap_special_vma_range() in 7.1.
 */
static inline void xpmem_zap_pfn_range(struct vm_area_struct *vma, unsigned long addr,
				       unsigned long size)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(7, 1, 0)
	zap_special_vma_range(vma, addr, size);
#else
	zap_vma_ptes(vma, addr, size);
#endif
}

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

/*
 * Map a 2 MiB page with one PMD from ->fault (attach.c). Like our PTEs,
 * the PMD must not let GUP-fast take a reference to the exporter's page
 * (our PTEs are special, and slow GUP refuses our VM_PFNMAP VMA):
 *  - from 6.12 (CONFIG_ARCH_SUPPORTS_PMD_PFNMAP) a PMD that maps a raw
 *    PFN is special (pmd_special());
 *  - before, we install it as a devmap PMD, on which GUP-fast gives up
 *    (the page has no ZONE_DEVICE pagemap) and falls back to slow GUP;
 *  - pfn_t (and devmap) went in 6.17, and the call takes a plain PFN.
 * Tested by name, not version: enterprise kernels backport these.
 * vmf_insert_pfn_pmd() maps with vm_page_prot, which write notification
 * keeps read-only; @write makes the PMD writable and dirty.
 * Kernels without THP (Debian's PREEMPT_RT 6.1) have no PMD insert:
 * XPMEM_HAVE_PMD_MAP is false there and attachments map with PTEs only.
 */
#ifdef CONFIG_TRANSPARENT_HUGEPAGE
#define XPMEM_HAVE_PMD_MAP true

static inline vm_fault_t xpmem_insert_pfn_pmd(struct vm_fault *vmf, unsigned long pfn,
					      bool write)
{
#if !__has_include("linux/pfn_t.h")
	return vmf_insert_pfn_pmd(vmf, pfn, write);
#elif defined(CONFIG_ARCH_SUPPORTS_PMD_PFNMAP)
	return vmf_insert_pfn_pmd(vmf, __pfn_to_pfn_t(pfn, 0), write);
#else
	return vmf_insert_pfn_pmd(vmf, __pfn_to_pfn_t(pfn, PFN_DEV | PFN_MAP), write);
#endif
}
#else
#define XPMEM_HAVE_PMD_MAP false

static inline vm_fault_t xpmem_insert_pfn_pmd(struct vm_fault *vmf, unsigned long pfn,
					      bool write)
{
	return VM_FAULT_FALLBACK;
}
#endif

/*
 * The page table checker (CONFIG_PAGE_TABLE_CHECK; on with
 * page_table_check=on, or by default with CONFIG_PAGE_TABLE_CHECK_ENFORCED,
 * as hardened kernel configs build it) counts the user mappings of each
 * page, and BUG()s when a writable one is added for an anonymous page that
 * is mapped already (mm/page_table_check.c, page_table_check_set()). A
 * writable attachment of anonymous memory is exactly that.
 *  - Kernels with the fix for CVE-2026-74600 ("mm/page_table_check: skip
 *    special zero mappings": "&& !pte_special(pte)") do not count special
 *    PTEs, so ours are not counted. Our PMDs are, special or devmap: under
 *    the checker, windows over anonymous 2 MiB pages map with PTEs
 *    (xpmem_ptcheck_forbids_pmd(), attach.c).
 *  - Without the fix the checker counts our PTEs as well, and a writable
 *    mapping of the exporter's anonymous memory cannot be made without a
 *    BUG: the module refuses to load under the checker (xpmem_init()).
 * The fix has no name to test, so this is keyed on the versions that we
 * have read it in: mainline 7.3, stable 6.1.191 and 6.12.114 (Debian's
 * linux-source-6.1 and the changelog of its 6.12). A stable kernel of
 * another series that has it too is taken for one without it: there the
 * module refuses to load, which is safe.
 */
#ifdef CONFIG_PAGE_TABLE_CHECK
#include <linux/page_table_check.h>

static inline bool xpmem_ptcheck_on(void)
{
	return !static_branch_likely(&page_table_check_disabled);
}
#else
static inline bool xpmem_ptcheck_on(void)
{
	return false;
}
#endif
#define XPMEM_STABLE_AT_LEAST(a, b, c) \
	(LINUX_VERSION_CODE >= KERNEL_VERSION(a, b, c) && \
	 LINUX_VERSION_CODE < KERNEL_VERSION(a, (b) + 1, 0))
#define XPMEM_PTCHECK_COUNTS_SPECIAL_PTES                                   \
	(!(LINUX_VERSION_CODE >= KERNEL_VERSION(7, 3, 0) ||                  \
	   XPMEM_STABLE_AT_LEAST(6, 12, 114) || XPMEM_STABLE_AT_LEAST(6, 1, 191)))

/*
 * The address the mm would choose for a mapping (our file's
 * ->get_unmapped_area pads and aligns it): the mm's method became a flag
 * and mm_get_unmapped_area() in 6.10, which lost its mm argument in 6.19.
 */
static inline unsigned long
xpmem_mm_get_unmapped_area(struct file *file, unsigned long addr, unsigned long len,
			   unsigned long pgoff, unsigned long flags)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 19, 0)
	return mm_get_unmapped_area(file, addr, len, pgoff, flags);
#elif LINUX_VERSION_CODE >= KERNEL_VERSION(6, 10, 0)
	return mm_get_unmapped_area(current->mm, file, addr, len, pgoff, flags);
#else
	return current->mm->get_unmapped_area(file, addr, len, pgoff, flags);
#endif
}

#endif /* XPMEM_COMPAT_H */
