// SPDX-License-Identifier: GPL-2.0
/*
 * attach.c - attachments: windows onto an exporter's address space.
 *
 * XPMEM_IOC_ATTACH creates a struct xpmem_attachment and a pseudo file for
 * it on the segment's inode (fs.c), and maps that file with vm_mmap(); the
 * VMA's pgoff is the page offset into the segment. Nothing is mapped at
 * attach time. A fault mirrors the exporter's page tables the way an HMM
 * secondary MMU does:
 *
 *   1. seq = mmu_interval_read_begin(&seg->notifier)
 *   2. fault the faulting page in, in the exporter's mm
 *      (xpmem_fault_in_place()), then snapshot the window around it with
 *      hmm_range_fault(), which faults nothing
 *   3. seg->lock; if mmu_interval_read_retry(seq): unlock and go to 1
 *   4. insert the PFNs into the attacher's page tables; unlock
 *
 * On a first try, a fault-in that could wait on the exporter's terms (a
 * file's I/O, its ->page_mkwrite) is made instead with the attacher's lock
 * dropped, and the fault is made again (xpmem_fault_in_dropped()); see
 * xpmem_fault_locked().
 *
 * hmm_range_fault() takes no page references, so nothing is pinned: the
 * notifier (notifier.c) zaps our PTEs before the exporter's pages change.
 *
 * What an attachment may map (the rules the tests in test_memkinds hold):
 *  - Never more than get_user_pages() gives the same process through
 *    process_vm_readv() or /proc/PID/mem: no secret memory, no I/O or PFN
 *    mappings (another attachment among them), nothing the exporter's VMA
 *    does not allow (xpmem_vma_mirrorable()). hmm_range_fault() refuses
 *    some of these itself; it does not refuse memfd_secret.
 *  - A page is mapped writable only by a write fault in its window, and
 *    only once the exporter's PTE is writable and its page dirty, as the
 *    exporter's own store would leave them: a write fault in the
 *    exporter's mm has made them so, or (a PTE already writable: shmem's,
 *    or the faulting page's neighbours) the folio is marked dirty when we
 *    map it.
 *    The store then lands in a page that reclaim and writeback know to
 *    keep: our PTE is a PFN mapping, its dirty bit is seen by nobody, and a
 *    zap throws it away. Whatever cleans the page again (writeback's
 *    folio_mkclean(), MADV_FREE, swap-out) first write-protects or clears
 *    the exporter's PTE, and that invalidation zaps ours, so the next store
 *    faults and dirties it again.
 *  - A write to a page mapped read-only reaches ->pfn_mkwrite, which
 *    replaces that one PTE and returns VM_FAULT_NOPAGE (see there).
 *
 * Locking:
 *  - The fault runs under the attacher's mmap_lock (read) or, from 6.4,
 *    its VMA lock. While we hold it we never wait on the exporter's terms:
 *    not for its mmap_lock, and not in a fault of its memory that can wait
 *    for as long as the exporter likes (a FUSE server, a frozen file
 *    system); the attacher's own mmap() and munmap() would wait as long,
 *    unkillably. Such fault-ins are made after dropping the attacher's
 *    lock, as above. A fault made again after that, or one that may not
 *    drop its lock, faults in place and may wait, as the kernel's own
 *    fault of a file does then (killably where it can): the attacher
 *    never holds its lock longer than it would mapping the exporter's
 *    memory itself.
 *  - Two processes that attach each other, with a writer queued on each
 *    mmap_lock, would deadlock if either waited for the other's lock with
 *    its own held. We trylock the exporter's; when that fails
 *    and the fault may be retried, we drop the attacher's lock, wait for
 *    the exporter's, fault the page in there, and return VM_FAULT_RETRY
 *    (xpmem_lock_source()). ->pfn_mkwrite, which may
 *    not retry, returns VM_FAULT_NOPAGE with its PTE emptied, so that the
 *    access faults again through ->fault. A fault that may not be retried
 *    at all (no FAULT_FLAG_ALLOW_RETRY: fixup_user_fault()) fails with
 *    SIGBUS. When the exporter is the attacher itself, its lock is already
 *    held.
 *  - A fault never returns VM_FAULT_NOPAGE without having mapped the page
 *    unless the access can make progress when made again: a fault taken
 *    by a kernel user copy is simply repeated, and a task with a fatal
 *    signal would repeat it forever. So a fatal signal ends the fault with
 *    VM_FAULT_RETRY (lock dropped) or SIGBUS, and a faulting page that is
 *    still not there after it was faulted in a few times is faulted in
 *    without the lock and the fault made again (VM_FAULT_RETRY), or, for
 *    a fault that may not drop its lock, SIGBUS.
 *  - After the attacher's lock is dropped, the VMA, and with it the
 *    attachment and the segment, may be gone: the fault touches only the
 *    exporter's mm (mmget()ed), its own locals, and an attachment it took
 *    a reference on before dropping the lock (xpmem_fault_in_dropped()).
 *  - seg->lock is taken last and is never held while allocating: page
 *    tables for the window are allocated (apply_to_page_range) before it is
 *    taken, because an allocation can enter reclaim, and reclaim can call
 *    our invalidate callback, which takes seg->lock.
 *  - Our ->mmap and the release of an attachment take seg->lock, without
 *    allocating, to add and remove the attachment's range in
 *    seg->attached; the attacher's mmap_lock may be held then, as in a
 *    fault.
 *  - vm_mmap()/vm_munmap() are called with no driver lock held.
 *
 * Lifetimes: the attachment's file holds a reference to the attachment,
 * and every VMA piece holds one (vm_ops open/close); the attachment holds
 * its segment. A VMA holds its file, so while anything is mapped, or the
 * kernel holds the file (remap_file_pages() calling ->mmap again), the
 * attachment and its segment stay.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/file.h>
#include <linux/hmm.h>
#include <linux/magic.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/userfaultfd_k.h>

#include "xpmem_internal.h"

/* Pages mapped per fault, at most: one PMD's worth, aligned like one. */
#define XPMEM_FAULT_WINDOW	PMD_SIZE
/* Fault-ins whose page is still not there before a fault gives up. */
#define XPMEM_FAULT_IN_TRIES	4

/* What a fault maps. */
enum xpmem_fault_mode {
	XPMEM_FAULT_READ,	/* the window, read-only */
	XPMEM_FAULT_WRITE,	/* the window, writable where the exporter's PTE is */
	XPMEM_FAULT_UPGRADE,	/* the faulting page alone, writable (pfn_mkwrite) */
	XPMEM_FAULT_POPULATE,	/* the window, faulted in whole, read-only */
};

static const struct vm_operations_struct xpmem_vm_ops;

static void xpmem_attachment_free(struct kref *ref)
{
	struct xpmem_attachment *att = container_of(ref, struct xpmem_attachment, ref);
	struct xpmem_segment *seg = att->seg;

	/*
	 * The file is released, so every VMA piece is closed: no PTE of ours
	 * maps this range any more.
	 */
	if (test_bit(XPMEM_ATT_MAPPED, &att->flags)) {
		mutex_lock(&seg->lock);
		interval_tree_remove(&att->it, &seg->attached);
		WRITE_ONCE(seg->nr_attached, seg->nr_attached - 1);
		mutex_unlock(&seg->lock);
	}
	xpmem_segment_put(seg);
	kfree(att);
	xpmem_stat_dec(XPMEM_STAT_ATTACHMENTS_ALIVE);
}

void xpmem_attachment_put(struct xpmem_attachment *att)
{
	kref_put(&att->ref, xpmem_attachment_free);
}

/* A VMA piece is added by split or mremap. */
static void xpmem_vm_open(struct vm_area_struct *vma)
{
	struct xpmem_attachment *att = vma->vm_private_data;

	kref_get(&att->ref);
	atomic_inc(&att->nr_vmas);
}

static void xpmem_vm_close(struct vm_area_struct *vma)
{
	struct xpmem_attachment *att = vma->vm_private_data;

	atomic_dec(&att->nr_vmas);
	xpmem_attachment_put(att);
}

static int xpmem_prepopulate_pte(pte_t *pte, unsigned long addr, void *data)
{
	return 0;
}

/*
 * Is the exporter's mmap_lock taken by someone else? Takes it for reading
 * if not. Fault injection makes it busy, which sends faults down their
 * retry paths.
 */
static bool xpmem_source_busy(struct mm_struct *src)
{
	return xpmem_should_fail() || !mmap_read_trylock(src);
}

/*
 * May an attachment map pages of this exporter VMA, for writing if @write?
 * Only what get_user_pages() would give (check_vma_flags() in mm/gup.c):
 * no I/O or PFN mappings, no secret memory, no writes to a shadow stack,
 * and the VMA's own protection.
 * Under the exporter's mmap_lock.
 */
static bool xpmem_vma_mirrorable(struct vm_area_struct *vma, bool write)
{
	if (vma->vm_flags & (VM_IO | VM_PFNMAP))
		return false;
	/* memfd_secret(): vma_is_secretmem() is not exported. */
	if (vma->vm_file && file_inode(vma->vm_file)->i_sb->s_magic == SECRETMEM_MAGIC)
		return false;
	if (!(vma->vm_flags & VM_READ))
		return false;
	/*
	 * A shadow stack is VM_WRITE, but only CALL and the shadow-stack
	 * instructions may write it; GUP refuses FOLL_WRITE there, and a
	 * writable PTE of ours would let plain stores forge return addresses.
	 */
	return !write || ((vma->vm_flags & VM_WRITE) && !(vma->vm_flags & VM_SHADOW_STACK));
}

/* The exporter's address behind attacher address @addr of @vma. */
static unsigned long xpmem_source_addr(struct vm_area_struct *vma, unsigned long addr)
{
	struct xpmem_attachment *att = vma->vm_private_data;

	return att->seg->start + (vma->vm_pgoff << PAGE_SHIFT) + (addr - vma->vm_start);
}

/*
 * How many pages of the segment there are from attacher address @addr of
 * @vma on; 0 past its end, where an attachment of a whole segment may run
 * (xpmem_attach_range()). In page offsets, which cannot wrap, rather than
 * in exporter addresses.
 */
static unsigned long xpmem_segment_pages_left(struct vm_area_struct *vma, unsigned long addr)
{
	struct xpmem_attachment *att = vma->vm_private_data;
	unsigned long pgoff = vma->vm_pgoff + ((addr - vma->vm_start) >> PAGE_SHIFT);
	unsigned long seg_pages = att->seg->size >> PAGE_SHIFT;

	return pgoff < seg_pages ? seg_pages - pgoff : 0;
}

/* hmm_range_fault(); fault injection makes it see a racing invalidation. */
static int xpmem_hmm_range_fault(struct hmm_range *range)
{
	if (xpmem_should_fail())
		return -EBUSY;
	return hmm_range_fault(range);
}

/*
 * Insert the window's PFNs. Called under seg->lock with a fresh sequence;
 * page tables are already allocated. A read maps the window read-only. A
 * write maps writable every page of it whose exporter PTE is writable, as
 * a PMD window maps its whole 2 MiB writable, and dirties those pages: a
 * consumer that writes a fresh attachment (libfabric's RMA write) then
 * takes one fault per window, not a ->pfn_mkwrite per page.
 */
static vm_fault_t xpmem_insert_window(struct vm_area_struct *vma, unsigned long start,
				      const unsigned long *pfns, unsigned long npages,
				      unsigned long fault_idx, bool write)
{
	/*
	 * Not vma->vm_page_prot: having pfn_mkwrite makes the kernel keep that
	 * write-protected (write notification).
	 */
	pgprot_t prot_rw = vm_get_page_prot(vma->vm_flags);
	pgprot_t prot_ro = vm_get_page_prot(vma->vm_flags & ~VM_WRITE);
	unsigned long i, mapped = 0;
	struct page *dirtied = NULL;
	vm_fault_t ret = VM_FAULT_NOPAGE;

	for (i = 0; i < npages; i++) {
		unsigned long hpfn = pfns[i];
		struct page *page;
		bool writable;
		vm_fault_t r;

		if (!(hpfn & HMM_PFN_VALID))
			continue;
		page = hmm_pfn_to_page(hpfn);
		/*
		 * The faulting page of a write was faulted in for writing,
		 * which dirties the exporter's PTE - unless another fault had
		 * just mapped it (finish_fault() then skips the dirtying), or
		 * it lies in a userfaultfd range that we do not fault. The
		 * others were only found writable, which a clean page can be
		 * (after MADV_FREE, swapped in, or a shmem page read). So dirty
		 * each folio we map writable, once, as get_user_pages() does
		 * for FOLL_WRITE: without its lock, because the exporter still
		 * maps it (an invalidation would wait for seg->lock, which we
		 * hold), so it cannot be truncated or freed under us.
		 */
		writable = write && (hpfn & HMM_PFN_WRITE) && (vma->vm_flags & VM_WRITE);
		if (writable && compound_head(page) != dirtied) {
			xpmem_page_mark_dirty(page);
			dirtied = compound_head(page);
		}
		r = vmf_insert_pfn_prot(vma, start + i * PAGE_SIZE, page_to_pfn(page),
					writable ? prot_rw : prot_ro);
		if (r & VM_FAULT_ERROR) {
			if (i == fault_idx)
				ret = r;
			continue;
		}
		mapped++;
	}
	xpmem_stat_add(XPMEM_STAT_PAGES_MAPPED, mapped);
	return ret;
}

/*
 * Huge mappings. Where the exporter maps a 2 MiB page (a THP, or a 2 MiB
 * hugetlb page) with one PMD, and the attacher's window is a whole
 * aligned 2 MiB of the VMA at an address congruent to the exporter's
 * modulo PMD_SIZE, the window is mapped with one PMD (compat.h says how,
 * per kernel), writable by the same rules as a PTE. 1 GiB pages are mapped
 * with PTEs: a PMD into the middle of one is a tail page, which parts of
 * mm/ do not expect under a PMD, and mremap() of a PUD mapping clears it as
 * a bad entry, without a TLB flush (docs/design.md, "Known limits").
 *
 * The kernel calls our ->fault with vmf->pmd empty (no huge_fault: mm/
 * does not offer PMD faults to a VM_PFNMAP VMA on every kernel we run),
 * and a write to a read-only PMD splits it (that clears it, our VMA being
 * a special one: __split_huge_pmd_locked()) and comes to ->fault as a
 * write. Invalidations zap the whole PMD, even of part of it: zapping part
 * of a huge PMD clears it (zap_pmd_range()); the next fault maps what the
 * exporter has then.
 *
 * A PMD entry of such a window is empty, a huge PMD or a PTE table, and a
 * PTE insert on a huge PMD or a PMD insert on a table would be memory
 * corruption or a warning. Huge PMDs are inserted, and PTE tables
 * allocated, only under att->pt_lock and after looking at the entry; the
 * tables are allocated on demand (not before the fault, as for other
 * windows), with the attacher's lock, the exporter's (unless it was
 * dropped) and pt_lock held; pt_lock is waited for killably. Nothing else
 * fills the entry while we hold the attacher's fault lock: munmap frees
 * tables, khugepaged and MADV_COLLAPSE skip VM_PFNMAP VMAs. A table stays
 * until the VMA goes, so a window once mapped with PTEs keeps being mapped
 * with PTEs.
 */

/* Can the window at @win of @vma be mapped with one PMD? */
static bool xpmem_window_pmd_capable(struct vm_area_struct *vma, unsigned long win)
{
	return XPMEM_HAVE_PMD_MAP && IS_ALIGNED(win, PMD_SIZE) && win >= vma->vm_start &&
	       win + PMD_SIZE <= vma->vm_end && IS_ALIGNED(xpmem_source_addr(vma, win), PMD_SIZE) &&
	       xpmem_segment_pages_left(vma, win) >= PTRS_PER_PMD;
}

/*
 * Does the snapshot of a whole window show one 2 MiB exporter page, with
 * write permission if @write, that we may map with a PMD? Not:
 *  - the huge zero page, which has no mapping (anonymous, file and
 *    hugetlb folios have one while the exporter maps them, and it does:
 *    the sequence is fresh): from 7.x zap_huge_pmd() takes a huge zero
 *    PMD for one with a deposited page table, which ours has not. Its
 *    PTEs are as good: nothing is ever written there.
 *  - a ZONE_DEVICE page (DAX): a devmap PMD (before 6.12) over one would
 *    let GUP-fast take it, its pagemap being real.
 */
static bool xpmem_snapshot_is_pmd(const unsigned long *pfns, unsigned long npages, bool write)
{
	unsigned long hpfn = pfns[0];
	struct page *page;

	if (npages != PTRS_PER_PMD || !(hpfn & HMM_PFN_VALID) ||
	    hmm_pfn_to_map_order(hpfn) != PMD_SHIFT - PAGE_SHIFT ||
	    (write && !(hpfn & HMM_PFN_WRITE)))
		return false;
	page = hmm_pfn_to_page(hpfn);
	return IS_ALIGNED(page_to_pfn(page), PTRS_PER_PMD) && !is_zone_device_page(page) &&
	       READ_ONCE(compound_head(page)->mapping);
}

/*
 * Under the kernel's page table checker, a PMD of ours over an anonymous
 * 2 MiB page (a THP, or a private hugetlb page) is a second mapping of it
 * that the checker counts, and BUG()s on if it is writable (compat.h); so
 * would it on the exporter's next writable entry while ours is there. Our
 * PTEs it does not count: the window gets those.
 */
static bool xpmem_ptcheck_forbids_pmd(unsigned long hpfn)
{
	return xpmem_ptcheck_on() && PageAnon(compound_head(hmm_pfn_to_page(hpfn)));
}

/*
 * Map the window of @vmf with one PMD for the exporter's 2 MiB page
 * @hpfn. Under att->pt_lock and seg->lock, with a fresh sequence, and
 * vmf->pmd empty or already this mapping (another fault made it; a write
 * makes it writable).
 */
static vm_fault_t xpmem_insert_pmd(struct vm_fault *vmf, unsigned long hpfn, bool write)
{
	struct page *page = hmm_pfn_to_page(hpfn);
	pmd_t cur = READ_ONCE(*vmf->pmd);
	vm_fault_t ret;

	/* Never seen with a fresh sequence; insert_pfn_pmd() would warn. */
	if (!pmd_none(cur) && pmd_pfn(cur) != page_to_pfn(page))
		return VM_FAULT_NOPAGE;
	write = write && (vmf->vma->vm_flags & VM_WRITE);
	/* The whole 2 MiB page is writable now: dirty it, see the top. */
	if (write)
		xpmem_page_mark_dirty(page);
	ret = xpmem_insert_pfn_pmd(vmf, page_to_pfn(page), write);
	if (!(ret & VM_FAULT_ERROR) && pmd_none(cur)) {
		xpmem_stat_inc(XPMEM_STAT_PMDS_MAPPED);
		xpmem_stat_add(XPMEM_STAT_PAGES_MAPPED, PTRS_PER_PMD);
	}
	return ret;
}

/* What the PMD entry of a window that may be one PMD holds. */
enum xpmem_pmd_state {
	XPMEM_PMD_NONE,
	XPMEM_PMD_HUGE,
	XPMEM_PMD_TABLE,
};

static enum xpmem_pmd_state xpmem_pmd_state(pmd_t *pmd)
{
	pmd_t val = READ_ONCE(*pmd);

	if (pmd_none(val))
		return XPMEM_PMD_NONE;
	return pmd_leaf(val) ? XPMEM_PMD_HUGE : XPMEM_PMD_TABLE;
}

/*
 * The PMD entry of @addr in @mm, if the tables above it exist; under the
 * mm's mmap_lock, which keeps them. For populate, which has no vmf->pmd.
 */
static pmd_t *xpmem_find_pmd(struct mm_struct *mm, unsigned long addr)
{
	pgd_t *pgd = pgd_offset(mm, addr);
	p4d_t *p4d;
	pud_t *pud;

	if (pgd_none(READ_ONCE(*pgd)) || pgd_bad(READ_ONCE(*pgd)))
		return NULL;
	p4d = p4d_offset(pgd, addr);
	if (p4d_none(READ_ONCE(*p4d)) || p4d_bad(READ_ONCE(*p4d)))
		return NULL;
	pud = pud_offset(p4d, addr);
	if (pud_none(READ_ONCE(*pud)) || pud_bad(READ_ONCE(*pud)))
		return NULL;
	return pmd_offset(pud, addr);
}

/*
 * The locks a fault inserts under; see the top. pt_lock is held across a
 * page-table allocation, which can enter reclaim: wait for it killably.
 * Returns 0, or -EINTR (nothing taken).
 */
static int xpmem_insert_lock(struct xpmem_attachment *att, bool pmd_win)
{
	if (pmd_win && mutex_lock_killable(&att->pt_lock))
		return -EINTR;
	mutex_lock(&att->seg->lock);
	return 0;
}

static void xpmem_insert_unlock(struct xpmem_attachment *att, bool pmd_win)
{
	mutex_unlock(&att->seg->lock);
	if (pmd_win)
		mutex_unlock(&att->pt_lock);
}

/*
 * Populate's fault has no vmf->pmd. Find the PMD entry of the window at
 * @win; where the tables above it do not exist even after the real fault
 * that xpmem_populate_one() took, allocate them, with a PTE table, under
 * pt_lock, as a PTE fault in such a window does. Returns 0 or -ENOMEM.
 */
static int xpmem_populate_find_pmd(struct vm_fault *vmf, unsigned long win)
{
	struct xpmem_attachment *att = vmf->vma->vm_private_data;
	struct mm_struct *mm = vmf->vma->vm_mm;
	int ret = 0;

	mutex_lock(&att->pt_lock);
	vmf->pmd = xpmem_find_pmd(mm, win);
	if (!vmf->pmd) {
		/* No PMD table, so no huge PMD in the way of the PTE table. */
		ret = apply_to_page_range(mm, win, PMD_SIZE, xpmem_prepopulate_pte, NULL);
		vmf->pmd = ret ? NULL : xpmem_find_pmd(mm, win);
		if (!vmf->pmd)
			ret = -ENOMEM;
	}
	mutex_unlock(&att->pt_lock);
	return ret;
}

/* How a fault-in in place may wait (xpmem_fault_in_place()). */
enum xpmem_fault_wait {
	XPMEM_NOWAIT,		/* not at all (FAULT_FLAG_RETRY_NOWAIT) */
	XPMEM_WAIT_KILLABLE,	/* killably, as a fault made again */
	XPMEM_WAIT,		/* as a fault that may not drop its lock */
};

/*
 * Fault in the exporter's page at @addr in place, under both mmap_locks,
 * as the exporter's own access would: a write dirties the exporter's PTE
 * (see the top). Not hmm_range_fault(): asked for one page of a window it
 * faults in every page of the hole around it, memory the exporter never
 * touched; it turns every fault error, running out of memory too, into
 * -EFAULT; and it cannot be told not to wait.
 *
 * @how: XPMEM_NOWAIT has handle_mm_fault() return VM_FAULT_RETRY, the lock
 * still held, where it would wait for a page lock or I/O; used for
 * anonymous memory only, whose faults then wait for nothing the exporter
 * controls but for the kernel's own work (swap-in from a synchronous
 * device, migration, compaction, reclaim). A file's fault can wait in
 * ->page_mkwrite (a frozen file system, a FUSE server's writeback)
 * whatever the flags. XPMEM_WAIT_KILLABLE faults as the kernel's own fault
 * made again does (FAULT_FLAG_TRIED): it waits killably where it can, and
 * drops the exporter's lock when killed.
 *
 * Returns 0; -EAGAIN: it would wait (XPMEM_NOWAIT); -EINTR: the exporter's
 * lock was dropped (XPMEM_WAIT_KILLABLE); -ENOMEM; or -EFAULT (SIGBUS).
 */
static int xpmem_fault_in_place(struct vm_area_struct *evma, unsigned long addr, bool write,
				enum xpmem_fault_wait how)
{
	unsigned int flags = write ? FAULT_FLAG_WRITE : 0;
	vm_fault_t ret;

	if (xpmem_should_fail())
		return how == XPMEM_NOWAIT ? -EAGAIN : -ENOMEM;
	if (evma->vm_mm != current->mm)
		flags |= FAULT_FLAG_REMOTE;
	if (how == XPMEM_WAIT)
		return fixup_user_fault(evma->vm_mm, addr, flags, NULL);
	flags |= FAULT_FLAG_ALLOW_RETRY;
	flags |= how == XPMEM_NOWAIT ? FAULT_FLAG_RETRY_NOWAIT :
				       FAULT_FLAG_KILLABLE | FAULT_FLAG_TRIED;
	ret = handle_mm_fault(evma, addr, flags, NULL);
	if (ret & (VM_FAULT_RETRY | VM_FAULT_COMPLETED)) {
		/* A NOWAIT fault never drops the lock (see faultin_page()). */
		if (how == XPMEM_NOWAIT && !WARN_ON_ONCE(ret & VM_FAULT_COMPLETED))
			return -EAGAIN;
		return -EINTR;
	}
	if (ret & VM_FAULT_OOM)
		return -ENOMEM;
	return ret & VM_FAULT_ERROR ? -EFAULT : 0;
}

/*
 * Fault in the exporter's pages [@start, @end) with the exporter's lock
 * alone (held on entry and on return): the attacher's has been dropped, so
 * this may wait as long as the exporter's own access would, killably where
 * the fault allows it, and the fault may drop the lock for I/O. A page that
 * fails is skipped. Returns 0, or what failed: -ENOMEM before anything
 * else, then -EINTR (which ends it), then -EFAULT.
 */
static int xpmem_fault_in_range(struct mm_struct *src, unsigned long start,
				unsigned long end, bool write)
{
	unsigned int flags = write ? FAULT_FLAG_WRITE : 0;
	struct vm_area_struct *evma;
	unsigned long addr;
	/* Whether the fault dropped the lock: we look the VMA up each time. */
	bool unlocked = false;
	int ret = 0, err;

	if (src != current->mm)
		flags |= FAULT_FLAG_REMOTE;
	for (addr = start; addr < end; addr += PAGE_SIZE) {
		if (fatal_signal_pending(current))
			return -EINTR;
		/* Vetted again: neither lock was held since the last look. */
		evma = vma_lookup(src, addr);
		if (!evma || !xpmem_vma_mirrorable(evma, write) || userfaultfd_armed(evma))
			err = -EFAULT;
		else if (xpmem_should_fail())
			err = -ENOMEM;
		else
			err = fixup_user_fault(src, addr, flags, &unlocked);
		if (err == -ENOMEM || err == -EINTR)
			return err;
		if (err && !ret)
			ret = err;
	}
	return ret;
}

/* Does snapshot entry @hpfn give the access asked for? */
static bool xpmem_pfn_usable(unsigned long hpfn, bool write)
{
	return (hpfn & HMM_PFN_VALID) && (!write || (hpfn & HMM_PFN_WRITE));
}

/* What a fault tells XPMEM_ATTACH_POPULATE besides its result. */
struct xpmem_populate_step {
	unsigned long mapped_end;	/* the end of the window mapped, or of the gap skipped */
	bool faulted_in;		/* faulted in without the lock (RETRY) */
	int err;			/* and what that fault-in returned */
};

/*
 * The mapping half of a fault, under the exporter's mmap_lock: vet the
 * exporter's VMA, snapshot [*startp, *endp) of the attachment (clipped to
 * that VMA) and insert it. On return *startp and *endp say what was mapped.
 *
 * How the exporter's memory is faulted in, so that the attacher never
 * holds its lock for longer than it would hold it mapping the exporter's
 * memory itself (see Locking at the top):
 *  - may_drop: a first try of a fault that may drop its lock and be made
 *    again. Anonymous memory is faulted in here without waiting; other
 *    memory is snapshotted first. What is missing then, or would wait, is
 *    faulted in by our caller after dropping the attacher's lock: *fault_in
 *    is set, *startp and *endp are the exporter range, nothing is mapped.
 *  - otherwise (a fault made again, or one that may not drop its lock)
 *    the page is faulted in here and may wait, as the kernel's own fault
 *    of a file does when it is made again after dropping its lock for I/O
 *    (filemap_fault()): killably (XPMEM_WAIT_KILLABLE) if the fault may
 *    be retried, else as a fault that may not be. ->pfn_mkwrite and a
 *    FAULT_FLAG_RETRY_NOWAIT fault never wait: what they cannot do without
 *    waiting they leave to a fault made again.
 *  - populate faults anonymous windows in whole (hmm_range_fault(), which
 *    waits as a fault without FAULT_FLAG_ALLOW_RETRY); file windows once
 *    without the lock, then maps what is there.
 *
 * @pmd_win: the window may be mapped with one PMD at vmf->pmd (see
 * "Huge mappings"); it has no page tables allocated yet.
 */
static vm_fault_t xpmem_fault_locked(struct vm_fault *vmf, struct mm_struct *src,
				     enum xpmem_fault_mode mode, bool pmd_win, unsigned long *pfns,
				     unsigned long *startp, unsigned long *endp, bool *fault_in,
				     bool *src_dropped)
{
	struct vm_area_struct *vma = vmf->vma;
	struct xpmem_attachment *att = vma->vm_private_data;
	struct xpmem_segment *seg = att->seg;
	bool write = mode == XPMEM_FAULT_WRITE || mode == XPMEM_FAULT_UPGRADE;
	unsigned long addr = vmf->address & PAGE_MASK;
	unsigned long start = *startp, end = *endp;
	unsigned long src_addr = xpmem_source_addr(vma, addr);
	unsigned long src_start, src_end, npages, fault_idx, timeout, i;
	bool may_fault, anon, may_drop, may_wait, fault_first;
	enum xpmem_fault_wait how;
	struct hmm_range range = {};
	struct vm_area_struct *evma;
	unsigned int unusable = 0;
	vm_fault_t ret;
	int err;

	evma = vma_lookup(src, src_addr);
	if (!evma || !xpmem_vma_mirrorable(evma, write)) {
		xpmem_stat_inc(XPMEM_STAT_FAULT_SIGBUS);
		return VM_FAULT_SIGBUS;
	}
	/* A window never spans two exporter VMAs: all of it was vetted. */
	src_start = max(src_addr - (addr - start), evma->vm_start);
	src_end = min(src_addr + (end - addr), evma->vm_end);
	start = addr - (src_addr - src_start);
	end = addr + (src_end - src_addr);
	npages = (end - start) >> PAGE_SHIFT;
	fault_idx = (addr - start) >> PAGE_SHIFT;

	range.notifier = &seg->notifier;
	range.start = src_start;
	range.end = src_start + (npages << PAGE_SHIFT);
	range.hmm_pfns = pfns;
	range.pfn_flags_mask = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE;
	/*
	 * A userfaultfd range is faulted in by its monitor, for which a fault
	 * must be able to drop the lock and wait (FAULT_FLAG_ALLOW_RETRY). We
	 * may not wait there with the attacher's lock held, so we only map
	 * what is present and refuse the rest, without calling into
	 * handle_userfault().
	 */
	may_fault = !userfaultfd_armed(evma);
	anon = vma_is_anonymous(evma);
	may_drop = mode != XPMEM_FAULT_UPGRADE && (vmf->flags & FAULT_FLAG_ALLOW_RETRY) &&
		   !(vmf->flags & (FAULT_FLAG_RETRY_NOWAIT | FAULT_FLAG_TRIED));
	may_wait = mode != XPMEM_FAULT_UPGRADE && !may_drop &&
		   !(vmf->flags & FAULT_FLAG_RETRY_NOWAIT);
	fault_first = may_fault && mode != XPMEM_FAULT_POPULATE && (anon || may_wait);
	if (!may_wait)
		how = XPMEM_NOWAIT;
	else if (vmf->flags & FAULT_FLAG_ALLOW_RETRY)
		how = XPMEM_WAIT_KILLABLE;
	else
		how = XPMEM_WAIT;
	range.default_flags = mode == XPMEM_FAULT_POPULATE && may_fault && anon ?
			      HMM_PFN_REQ_FAULT : 0;
	timeout = jiffies + msecs_to_jiffies(HMM_RANGE_DEFAULT_TIMEOUT);
	for (;;) {
		if (time_after(jiffies, timeout) || fatal_signal_pending(current)) {
			/* Let the CPU fault again. */
			ret = VM_FAULT_NOPAGE;
			break;
		}
		memset(pfns, 0, npages * sizeof(*pfns));
		range.notifier_seq = mmu_interval_read_begin(range.notifier);
		/*
		 * Fault in the faulting page, then snapshot the window without
		 * faulting; populate faults anonymous windows in one walk.
		 */
		err = 0;
		if (fault_first)
			err = xpmem_fault_in_place(evma, src_addr, write, how);
		if (err == -EINTR) {
			/* Killed, and the exporter's lock is gone. */
			*src_dropped = true;
			ret = VM_FAULT_RETRY;
			break;
		}
		if (err == -EAGAIN) {
			/* It would wait: not with the attacher's lock held. */
			goto fault_in_page;
		}
		if (!err)
			err = xpmem_hmm_range_fault(&range);
		if (err == -EBUSY) {
			xpmem_stat_inc(XPMEM_STAT_FAULT_RETRIES);
			continue;
		}
		if (err) {
			/* A hole, a page we may not write, or no memory. */
			ret = err == -ENOMEM ? VM_FAULT_OOM : VM_FAULT_SIGBUS;
			if (ret == VM_FAULT_SIGBUS)
				xpmem_stat_inc(XPMEM_STAT_FAULT_SIGBUS);
			break;
		}
		/* Populating file memory: fault in what is missing first. */
		if (mode == XPMEM_FAULT_POPULATE && may_fault && !anon && may_drop) {
			for (i = 0; i < npages; i++) {
				if (!(pfns[i] & (HMM_PFN_VALID | HMM_PFN_ERROR)))
					break;
			}
			if (i < npages)
				goto fault_in_window;
		}

		if (xpmem_insert_lock(att, pmd_win)) {
			/* Killed: the caller sees the signal. */
			ret = VM_FAULT_NOPAGE;
			break;
		}
		if (seg->dead) {
			xpmem_insert_unlock(att, pmd_win);
			xpmem_stat_inc(XPMEM_STAT_FAULT_SIGBUS);
			ret = VM_FAULT_SIGBUS;
			break;
		}
		if (mmu_interval_read_retry(range.notifier, range.notifier_seq)) {
			xpmem_insert_unlock(att, pmd_win);
			xpmem_stat_inc(XPMEM_STAT_FAULT_RETRIES);
			continue;
		}
		/*
		 * The snapshot is current. The faulting page must be in it, as
		 * asked for, unless we populate.
		 */
		if (mode != XPMEM_FAULT_POPULATE && !xpmem_pfn_usable(pfns[fault_idx], write)) {
			xpmem_insert_unlock(att, pmd_win);
			if (may_fault && !fault_first && !(pfns[fault_idx] & HMM_PFN_ERROR)) {
				/* Not faulted in here: see above. */
				goto fault_in_page;
			}
			/*
			 * handle_mm_fault() may return without having faulted:
			 * it waited for a migration entry to go, or fixed a NUMA
			 * hinting entry and left the write for another fault,
			 * and the exporter's THPs and NUMA balancing can keep
			 * that up for a while. So try again, a few times; then,
			 * if the fault may drop its lock, fault in without it
			 * and have the fault made again: a page the exporter can
			 * access never ends in SIGBUS. What can never be mapped
			 * (a special PTE of a mixed map, a userfaultfd range we
			 * do not fault) is SIGBUS, rather than a fault that maps
			 * nothing and is made again forever.
			 */
			xpmem_stat_inc(XPMEM_STAT_FAULT_RETRIES);
			if (++unusable < XPMEM_FAULT_IN_TRIES)
				continue;
			if (may_fault && !(pfns[fault_idx] & HMM_PFN_ERROR) &&
			    (mode == XPMEM_FAULT_UPGRADE ||
			     (vmf->flags & FAULT_FLAG_ALLOW_RETRY)))
				goto fault_in_page;
			xpmem_stat_inc(XPMEM_STAT_FAULT_SIGBUS);
			ret = VM_FAULT_SIGBUS;
			break;
		}
		if (pmd_win) {
			enum xpmem_pmd_state state = xpmem_pmd_state(vmf->pmd);
			bool huge = xpmem_snapshot_is_pmd(pfns, npages, write);
			bool ptcheck = huge && state == XPMEM_PMD_NONE &&
				       xpmem_ptcheck_forbids_pmd(pfns[0]);

			if (huge && !ptcheck && state != XPMEM_PMD_TABLE) {
				ret = xpmem_insert_pmd(vmf, pfns[0], write);
				xpmem_insert_unlock(att, pmd_win);
				break;
			}
			if (state == XPMEM_PMD_HUGE) {
				/*
				 * Never seen with a fresh sequence: a PMD of
				 * ours maps what the exporter maps with a PMD.
				 * Let the access fault again.
				 */
				xpmem_insert_unlock(att, pmd_win);
				ret = VM_FAULT_NOPAGE;
				break;
			}
			if (state == XPMEM_PMD_NONE) {
				/* PTEs, so a table: allocated without seg->lock. */
				mutex_unlock(&seg->lock);
				err = apply_to_page_range(vma->vm_mm, start, end - start,
							  xpmem_prepopulate_pte, NULL);
				mutex_unlock(&att->pt_lock);
				if (err) {
					ret = VM_FAULT_OOM;
					break;
				}
				if (ptcheck)
					xpmem_stat_inc(XPMEM_STAT_PMDS_PTCHECK);
				continue;
			}
		}
		ret = xpmem_insert_window(vma, start, pfns, npages, fault_idx, write);
		xpmem_insert_unlock(att, pmd_win);
		break;
	}
	*startp = start;
	*endp = end;
	return ret;

fault_in_page:
	src_start = src_addr;
	src_end = src_addr + PAGE_SIZE;
fault_in_window:
	/* Nothing mapped: the caller faults in the exporter's range. */
	*fault_in = true;
	*startp = src_start;
	*endp = src_end;
	return 0;
}

/*
 * Lock the exporter's mm for reading, or tell the caller what to return.
 * Returns 1 if we took the lock, 0 if it was already held (self-attach), or
 * a VM_FAULT_ code (negated): VM_FAULT_RETRY when the fault lock has been
 * dropped (unless FAULT_FLAG_RETRY_NOWAIT); in ->pfn_mkwrite (@may_retry
 * false), which must not return VM_FAULT_RETRY, VM_FAULT_NOPAGE: it has
 * emptied the PTE, and the access faults again through ->fault, which may
 * wait. A fault that may not be retried at all (fixup_user_fault(), as for
 * futexes) gets VM_FAULT_SIGBUS, its caller -EFAULT: answering
 * VM_FAULT_NOPAGE would have such a caller (futex_wake_op()) fault again
 * and again, in the kernel, for as long as the exporter holds its lock.
 *
 * Having waited for the exporter's lock without ours, the fault faults in
 * the exporter's page at @src_addr there and then: the fault made again
 * is a retried one (FAULT_FLAG_TRIED), which faults in place and may wait.
 */
static int xpmem_lock_source(struct vm_fault *vmf, struct mm_struct *src, bool may_retry,
			     unsigned long src_addr, bool write)
{
	if (src == vmf->vma->vm_mm && xpmem_fault_holds_mmap_lock(vmf))
		return 0;
	if (!xpmem_source_busy(src))
		return 1;
	xpmem_stat_inc(XPMEM_STAT_FAULT_SOURCE_BUSY);
	if (!may_retry)
		return -VM_FAULT_NOPAGE;
	if (!(vmf->flags & FAULT_FLAG_ALLOW_RETRY))
		return -VM_FAULT_SIGBUS;
	if (!(vmf->flags & FAULT_FLAG_RETRY_NOWAIT)) {
		xpmem_release_fault_lock(vmf);
		/* Wait for the exporter's lock without holding ours. */
		if (!mmap_read_lock_killable(src)) {
			xpmem_fault_in_range(src, src_addr, src_addr + PAGE_SIZE, write);
			mmap_read_unlock(src);
		}
	}
	return -VM_FAULT_RETRY;
}

/*
 * The exporter's memory [@src_start, @src_end) must be faulted in, and that
 * could wait for as long as the exporter likes: not with the attacher's
 * lock held (see Locking at the top). Drop it, fault in with the
 * exporter's lock alone, and have the fault made again (VM_FAULT_RETRY);
 * the fault made again faults in place, and reports what fails (see
 * xpmem_fault_locked()). ->pfn_mkwrite, which may not drop its lock, gets
 * VM_FAULT_NOPAGE with its PTE empty, so that the write faults again
 * through ->fault; a FAULT_FLAG_RETRY_NOWAIT fault VM_FAULT_RETRY with its
 * lock kept.
 */
static vm_fault_t xpmem_fault_in_dropped(struct vm_fault *vmf, enum xpmem_fault_mode mode,
					 struct mm_struct *src, unsigned long src_start,
					 unsigned long src_end, struct xpmem_populate_step *step)
{
	int err = -EINTR;

	if (mode == XPMEM_FAULT_UPGRADE)
		return VM_FAULT_NOPAGE;
	if (vmf->flags & FAULT_FLAG_RETRY_NOWAIT)
		return VM_FAULT_RETRY;
	/* Only a fault that may be retried comes here. */
	if (WARN_ON_ONCE(!(vmf->flags & FAULT_FLAG_ALLOW_RETRY)))
		return VM_FAULT_SIGBUS;
	xpmem_release_fault_lock(vmf);
	/* No VMA, attachment or segment from here on: src is held. */
	xpmem_stat_inc(XPMEM_STAT_FAULT_IN_UNLOCKED);
	if (!mmap_read_lock_killable(src)) {
		err = xpmem_fault_in_range(src, src_start, src_end, mode == XPMEM_FAULT_WRITE);
		mmap_read_unlock(src);
	}
	if (step) {
		step->faulted_in = true;
		step->err = err;
	}
	return VM_FAULT_RETRY;
}

/*
 * A fault on an attachment at vmf->address. @mode: see enum
 * xpmem_fault_mode. @step, for populate, learns how the fault went.
 */
static vm_fault_t xpmem_fault_common(struct vm_fault *vmf, enum xpmem_fault_mode mode,
				     struct xpmem_populate_step *step)
{
	struct vm_area_struct *vma = vmf->vma;
	struct xpmem_attachment *att = vma->vm_private_data;
	struct xpmem_segment *seg = att->seg;
	unsigned long addr = vmf->address & PAGE_MASK;
	unsigned long left = xpmem_segment_pages_left(vma, addr);
	bool fault_in = false, src_dropped = false;
	unsigned long start, end, src_addr;
	struct mm_struct *src;
	unsigned long *pfns;
	bool pmd_win = false;
	vm_fault_t ret;
	int locked;

	xpmem_stat_inc(XPMEM_STAT_FAULTS);
	/*
	 * Past the end of a whole segment, outside its interval notifier:
	 * never mapped (see xpmem_attach_range()).
	 */
	if (READ_ONCE(seg->dead) || !left)
		goto sigbus;
	src_addr = xpmem_source_addr(vma, addr);

	if (mode == XPMEM_FAULT_UPGRADE) {
		start = addr;
		end = addr + PAGE_SIZE;
	} else {
		start = max(vma->vm_start, ALIGN_DOWN(addr, XPMEM_FAULT_WINDOW));
		end = min(vma->vm_end, ALIGN_DOWN(addr, XPMEM_FAULT_WINDOW) + XPMEM_FAULT_WINDOW);
		if ((end - addr) >> PAGE_SHIFT > left)
			end = addr + (left << PAGE_SHIFT);
		pmd_win = xpmem_window_pmd_capable(vma, start);
	}

	pfns = kvmalloc_array((end - start) >> PAGE_SHIFT, sizeof(*pfns), GFP_KERNEL_ACCOUNT);
	if (!pfns)
		return VM_FAULT_OOM;
	/*
	 * Allocate the window's page tables now, not under seg->lock; a
	 * window that may be one PMD gets them only if it needs them.
	 */
	if (pmd_win && !vmf->pmd && xpmem_populate_find_pmd(vmf, start)) {
		ret = VM_FAULT_OOM;
		goto out_free;
	}
	if (!pmd_win && apply_to_page_range(vma->vm_mm, start, end - start,
					    xpmem_prepopulate_pte, NULL)) {
		ret = VM_FAULT_OOM;
		goto out_free;
	}

	src = seg->mm;
	if (!mmget_not_zero(src)) {
		kvfree(pfns);
		goto sigbus;
	}
	locked = xpmem_lock_source(vmf, src, mode != XPMEM_FAULT_UPGRADE, src_addr,
				   mode == XPMEM_FAULT_WRITE);
	if (locked < 0) {
		/* Our lock may be gone: no VMA, attachment or segment now. */
		ret = -locked;
		goto out_mmput;
	}
	ret = xpmem_fault_locked(vmf, src, mode, pmd_win, pfns, &start, &end, &fault_in,
				 &src_dropped);
	if (src_dropped) {
		/*
		 * The fault-in in place was killed and dropped the exporter's
		 * lock: ours too, if that was ours (self-attach).
		 */
		if (locked)
			xpmem_release_fault_lock(vmf);
		goto out_mmput;
	}
	if (locked)
		mmap_read_unlock(src);
	if (fault_in) {
		ret = xpmem_fault_in_dropped(vmf, mode, src, start, end, step);
		goto out_mmput;
	}
	if (step)
		step->mapped_end = end;
	if (!(ret & VM_FAULT_ERROR) && fatal_signal_pending(current)) {
		/* Not NOPAGE: a kernel user copy would fault again forever. */
		if (mode != XPMEM_FAULT_UPGRADE && (vmf->flags & FAULT_FLAG_ALLOW_RETRY) &&
		    !(vmf->flags & FAULT_FLAG_RETRY_NOWAIT)) {
			xpmem_release_fault_lock(vmf);
			ret = VM_FAULT_RETRY;
		} else {
			ret = VM_FAULT_SIGBUS;
		}
	}
out_mmput:
	/* The last user may be gone: do not tear its mm down in our fault. */
	mmput_async(src);
out_free:
	kvfree(pfns);
	return ret;

sigbus:
	xpmem_stat_inc(XPMEM_STAT_FAULT_SIGBUS);
	return VM_FAULT_SIGBUS;
}

static vm_fault_t xpmem_vm_fault(struct vm_fault *vmf)
{
	return xpmem_fault_common(vmf, vmf->flags & FAULT_FLAG_WRITE ?
				  XPMEM_FAULT_WRITE : XPMEM_FAULT_READ, NULL);
}

/*
 * A write to a page we mapped read-only. Its caller, wp_pfn_shared() in
 * mm/memory.c, has dropped the PTE lock and accepts from us only an error
 * or VM_FAULT_NOPAGE: anything else, VM_FAULT_RETRY included, goes on to
 * finish_mkwrite_fault(), which makes the PTE writable if it still looks
 * the same - with the fault lock we would have dropped, and over a page
 * whose exporter PTE may since have been write-protected and the same PFN
 * mapped read-only again. So we never let it: we drop our PTE, map the one
 * page again for writing ourselves (dirtying it, see the top), and return
 * VM_FAULT_NOPAGE. If the exporter's lock is busy, or the page could only
 * be faulted in by waiting, the PTE is simply left empty and the write
 * faults again through ->fault, which may drop the lock and wait.
 */
static vm_fault_t xpmem_vm_pfn_mkwrite(struct vm_fault *vmf)
{
	struct xpmem_zapper z;
	vm_fault_t ret;

	xpmem_stat_inc(XPMEM_STAT_WRITE_UPGRADES);
	xpmem_zap_begin(&z);
	xpmem_zap_pfn_range(vmf->vma, vmf->address & PAGE_MASK, PAGE_SIZE);
	xpmem_zap_end(&z);
	ret = xpmem_fault_common(vmf, XPMEM_FAULT_UPGRADE, NULL);
	/* xpmem_lock_source() does not drop the lock in this mode. */
	if (WARN_ON_ONCE(ret & VM_FAULT_RETRY))
		ret = VM_FAULT_SIGBUS;
	return ret;
}

static const struct vm_operations_struct xpmem_vm_ops = {
	.open = xpmem_vm_open,
	.close = xpmem_vm_close,
	.fault = xpmem_vm_fault,
	.pfn_mkwrite = xpmem_vm_pfn_mkwrite,
};

/*
 * ->mmap of an attachment's file. Only the vm_mmap() of XPMEM_IOC_ATTACH
 * may map it, once. The one other way here is remap_file_pages() on the
 * attachment's VMA, which has by then unmapped it: refused. The file holds
 * the attachment, so @att is valid whichever way we came.
 */
int xpmem_attachment_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct xpmem_attachment *att = file->private_data;
	struct xpmem_segment *seg = att->seg;

	/* Never executable (below); fs.c keeps mmap() from adding it. */
	if (vma->vm_flags & VM_EXEC)
		return -EPERM;
	if (test_and_set_bit(XPMEM_ATT_MAPPED, &att->flags))
		return -EPERM;
	/*
	 * Into seg->attached before the VMA exists, so before any fault can
	 * map a page: an invalidation that finds no overlap there may skip
	 * the zap.
	 */
	att->it.start = vma->vm_pgoff << PAGE_SHIFT;
	att->it.last = att->it.start + (vma->vm_end - vma->vm_start) - 1;
	mutex_lock(&seg->lock);
	interval_tree_insert(&att->it, &seg->attached);
	WRITE_ONCE(seg->nr_attached, seg->nr_attached + 1);
	mutex_unlock(&seg->lock);

	/*
	 * PFN mappings, never copied into a child, never grown, not dumped.
	 * VM_IO because madvise(MADV_DOFORK) refuses to clear VM_DONTCOPY
	 * only there. Never executable: mprotect(PROT_EXEC) would run the
	 * exporter's bytes, which its own mapping may forbid (a noexec
	 * mount). (VM_MAYWRITE is already off for a read-only file.)
	 */
	xpmem_vm_flags_set(vma, VM_PFNMAP | VM_IO | VM_DONTCOPY | VM_DONTEXPAND | VM_DONTDUMP);
	xpmem_vm_flags_clear(vma, VM_MAYEXEC);
	vma->vm_ops = &xpmem_vm_ops;
	vma->vm_private_data = att;
	kref_get(&att->ref);
	atomic_inc(&att->nr_vmas);
	return 0;
}

/*
 * ->get_unmapped_area of an attachment's file. An attachment that can hold
 * a 2 MiB page of the exporter goes where a PMD can map it (see "Huge
 * mappings"): at an address congruent to its exporter address modulo
 * PMD_SIZE. The mm picks a range 2 MiB longer than asked, and we take the
 * congruent address in it. A fixed address, or a hint, is the caller's
 * (and so is mremap()'s: only a move to a fixed address is allowed for
 * our VMAs; it keeps PMDs where it stays congruent).
 */
unsigned long xpmem_attachment_get_unmapped_area(struct file *file, unsigned long addr,
						 unsigned long len, unsigned long pgoff,
						 unsigned long flags)
{
	struct xpmem_attachment *att = file->private_data;
	unsigned long src = att->seg->start + (pgoff << PAGE_SHIFT);
	unsigned long padded;

	if (!XPMEM_HAVE_PMD_MAP || addr || (flags & MAP_FIXED) || len > TASK_SIZE - PMD_SIZE ||
	    ALIGN(src, PMD_SIZE) + PMD_SIZE > src + len)
		return xpmem_mm_get_unmapped_area(file, addr, len, pgoff, flags);
	padded = xpmem_mm_get_unmapped_area(file, 0, len + PMD_SIZE, pgoff, flags);
	if (IS_ERR_VALUE(padded))
		return xpmem_mm_get_unmapped_area(file, addr, len, pgoff, flags);
	return padded + ((src - padded) & (PMD_SIZE - 1));
}

/*
 * Fault in one window (or, after a hole, one page) at @addr of the current
 * mm's attachment @att, as a fault with retry allowed would (@tried: made
 * again after faulting in without the lock). Returns the fault result;
 * VM_FAULT_RETRY means the lock was dropped. @step says where the mapped
 * window ended, and whether the fault faulted in without the lock.
 */
static vm_fault_t xpmem_populate_one(struct xpmem_attachment *att, unsigned long addr,
				     enum xpmem_fault_mode mode, bool tried,
				     struct xpmem_populate_step *step)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	bool unlocked = false;
	vm_fault_t ret;
	pmd_t *pmd;

	*step = (struct xpmem_populate_step){ .mapped_end = addr + PAGE_SIZE };
	if (mmap_read_lock_killable(mm))
		return VM_FAULT_SIGBUS;
again:
	vma = find_vma(mm, addr);
	if (!vma || vma->vm_start > addr || vma->vm_ops != &xpmem_vm_ops ||
	    vma->vm_private_data != att) {
		/*
		 * Unmapped or replaced under us by another thread: nothing to
		 * populate here. Go on at the next mapping, which may be a
		 * piece of ours, rather than page by page through the gap.
		 */
		step->mapped_end = !vma ? ULONG_MAX :
				   vma->vm_start > addr ? vma->vm_start : vma->vm_end;
		mmap_read_unlock(mm);
		return VM_FAULT_NOPAGE;
	}
	pmd = xpmem_find_pmd(mm, addr);
	if (!pmd && !unlocked &&
	    xpmem_window_pmd_capable(vma, ALIGN_DOWN(addr, XPMEM_FAULT_WINDOW))) {
		/*
		 * No table above the PMD yet, and only a fault allocates one
		 * without a PTE table below (which would keep the window off
		 * a PMD): take a real read fault, which maps the window as
		 * usual, then populate it. Once per 1 GiB, at most. If that
		 * fails, xpmem_populate_find_pmd() allocates the tables.
		 */
		fixup_user_fault(mm, addr, 0, &unlocked);
		unlocked = true;
		goto again;
	}
	{
		struct vm_fault vmf = {
			.vma = vma,
			.address = addr,
			.flags = FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE |
				 (tried ? FAULT_FLAG_TRIED : 0),
			.pgoff = vma->vm_pgoff + ((addr - vma->vm_start) >> PAGE_SHIFT),
			.pmd = pmd,
		};

		ret = xpmem_fault_common(&vmf, mode, step);
	}
	if (!(ret & VM_FAULT_RETRY))
		mmap_read_unlock(mm);
	return ret;
}

/*
 * Populate the one page at @addr as a read fault would, made again after
 * VM_FAULT_RETRY: as a retried fault if it faulted in without the lock,
 * else (a busy exporter lock) as a first try. Returns the fault result,
 * never VM_FAULT_RETRY (a fatal signal ends it with VM_FAULT_SIGBUS; the
 * caller checks for one).
 */
static vm_fault_t xpmem_populate_page(struct xpmem_attachment *att, unsigned long addr)
{
	struct xpmem_populate_step step;
	bool tried = false;
	vm_fault_t ret;

	do {
		if (fatal_signal_pending(current))
			return VM_FAULT_SIGBUS;
		ret = xpmem_populate_one(att, addr, XPMEM_FAULT_READ, tried, &step);
		tried = step.faulted_in;
	} while (ret & VM_FAULT_RETRY);
	return ret;
}

/*
 * XPMEM_ATTACH_POPULATE: map [start, end) of a new attachment now, read-
 * only (writes upgrade page by page). Each window is faulted in whole; a
 * window with a hole is done page by page, skipping the holes.
 */
static int xpmem_populate(struct xpmem_attachment *att, unsigned long start,
			  unsigned long end)
{
	struct xpmem_populate_step step;
	unsigned long addr = start, win_end;
	bool tried = false;
	vm_fault_t ret;

	while (addr < end) {
		/*
		 * The range may be terabytes: offer the CPU on kernels that do
		 * not preempt kernel code (preempt=none).
		 */
		cond_resched();
		if (fatal_signal_pending(current))
			return -EINTR;
		if (READ_ONCE(att->seg->dead))
			return -ENOENT;
		ret = xpmem_populate_one(att, addr, XPMEM_FAULT_POPULATE, tried, &step);
		if (ret & VM_FAULT_RETRY) {
			/*
			 * Faulted in without the lock: map what is there now.
			 * (Or the exporter's lock was busy, or a fatal signal.)
			 */
			if (step.err == -ENOMEM)
				return -ENOMEM;
			tried = step.faulted_in;
			continue;
		}
		tried = false;
		if (ret & VM_FAULT_OOM)
			return -ENOMEM;
		if (!(ret & VM_FAULT_SIGBUS)) {
			addr = max(step.mapped_end, addr + PAGE_SIZE);
			continue;
		}
		win_end = min(end, ALIGN_DOWN(addr, XPMEM_FAULT_WINDOW) + XPMEM_FAULT_WINDOW);
		for (; addr < win_end; addr += PAGE_SIZE) {
			cond_resched();
			if (fatal_signal_pending(current))
				return -EINTR;
			if (READ_ONCE(att->seg->dead))
				return -ENOENT;
			if (xpmem_populate_page(att, addr) & VM_FAULT_OOM)
				return -ENOMEM;
		}
	}
	return 0;
}

/*
 * What ATTACH can refuse without its permit, before looking it up, as every
 * command does: a malformed request is EINVAL, not ENOENT.
 */
static int xpmem_attach_args_valid(const struct xpmem_ioc_attach *arg)
{
	if (arg->flags & ~XPMEM_ATTACH_FLAGS || arg->__pad ||
	    !xpmem_reserved_zero(arg->reserved))
		return -EINVAL;
	if (!arg->size || arg->vaddr & ~PAGE_MASK)
		return -EINVAL;
	return 0;
}

/*
 * Check an attach request against its segment and work out the pages it
 * covers.
 *
 * The range starts inside the segment. It ends inside it too, except in a
 * whole segment (XPMEM_MAXADDR_SIZE, cut at the exporter's TASK_SIZE):
 * there it may run on, as far as this process could map. Open MPI's vader
 * needs that. It rounds its attachments out to 2 MiB and clamps them only
 * to the highest mapping in /proc/self/maps, meant to be TASK_SIZE, but on
 * x86_64 that is [vsyscall]; and TASK_SIZE is not 2 MiB-aligned there. So
 * a buffer in the top 2 MiB (the stack's, in about one process of 8000)
 * asks for a range past TASK_SIZE, which HPE's XPMEM refuses as we did,
 * and vader's receive path then uses a pointer it never got. Nothing maps
 * the pages past the end: touching them raises SIGBUS
 * (xpmem_fault_common()).
 */
static int xpmem_attach_range(const struct xpmem_ioc_attach *arg,
			      const struct xpmem_segment *seg, u64 *pg_offset, u64 *len)
{
	u64 in_page = arg->offset & ~PAGE_MASK;

	if (arg->offset >= seg->size)
		return -EINVAL;
	if (!seg->whole && arg->size > seg->size - arg->offset)
		return -EINVAL;
	/* mmap(2)'s answer to a length it could never map. */
	if (arg->size > TASK_SIZE)
		return -ENOMEM;
	*pg_offset = arg->offset - in_page;
	*len = PAGE_ALIGN(in_page + arg->size);
	/* Nor may an exporter address past the end wrap (32-bit). */
	if (*len - 1 > ULONG_MAX - seg->start - *pg_offset)
		return -EINVAL;
	return 0;
}

static int xpmem_unmap_matching(struct xpmem_file *xf, struct xpmem_attachment *att,
				u64 apid, unsigned long keep);

int xpmem_ioc_attach(struct xpmem_file *xf, void *data)
{
	struct xpmem_ioc_attach *arg = data;
	struct xpmem_attachment *att;
	struct xpmem_segment *seg = NULL;
	struct xpmem_permit *permit;
	unsigned long addr, prot;
	struct file *file;
	u64 pg_offset, len;
	u32 access = 0;
	int ret;

	ret = xpmem_attach_args_valid(arg);
	if (ret)
		return ret;
	if (arg->apid <= 0)
		return -ENOENT;
	xa_lock(&xf->permits);
	permit = xpmem_permit_load(xf, arg->apid);
	if (permit) {
		seg = permit->seg;
		access = permit->access;
		kref_get(&seg->ref);
	}
	xa_unlock(&xf->permits);
	if (!seg)
		return -ENOENT;

	ret = xpmem_attach_range(arg, seg, &pg_offset, &len);
	if (!ret && READ_ONCE(seg->dead))
		ret = -ENOENT;
	if (ret) {
		xpmem_segment_put(seg);
		return ret;
	}

	att = kzalloc(sizeof(*att), GFP_KERNEL_ACCOUNT);
	if (!att) {
		xpmem_segment_put(seg);
		return -ENOMEM;
	}
	kref_init(&att->ref);
	mutex_init(&att->pt_lock);
	att->seg = seg;			/* takes over our reference */
	att->xf = xf;
	att->apid = arg->apid;
	xpmem_stat_inc(XPMEM_STAT_ATTACHMENTS_ALIVE);

	file = xpmem_attachment_file(att, access == XPMEM_RDWR);
	if (IS_ERR(file)) {
		ret = PTR_ERR(file);
		goto out_put;
	}
	prot = access == XPMEM_RDWR ? PROT_READ | PROT_WRITE : PROT_READ;
	addr = vm_mmap(file, arg->vaddr, len, prot,
		       MAP_SHARED | (arg->vaddr ? MAP_FIXED : 0), pg_offset);
	/* The VMA holds the file now, if there is one. */
	fput(file);
	if (IS_ERR_VALUE(addr)) {
		ret = (int)addr;
		goto out_put;
	}
	xpmem_stat_inc(XPMEM_STAT_ATTACHES);
	/*
	 * A RELEASE of the permit may have looked for its attachments before
	 * this one was mapped. It drops the permit and then looks again, so
	 * either it finds this mapping or we find the permit gone.
	 */
	xa_lock(&xf->permits);
	if (xpmem_permit_load(xf, arg->apid) != permit)
		ret = -ENOENT;
	xa_unlock(&xf->permits);
	if (ret) {
		xpmem_unmap_matching(xf, att, 0, 0);
		goto out_put;
	}
	if (arg->flags & XPMEM_ATTACH_POPULATE) {
		/* Not past the segment's end: nothing is there. */
		ret = xpmem_populate(att, addr, addr + min(len, seg->size - pg_offset));
		if (ret) {
			/* Fail whole: the caller never learns the address. */
			xpmem_unmap_matching(xf, att, 0, 0);
			goto out_put;
		}
	}
	arg->vaddr = addr + (arg->offset & ~PAGE_MASK);
out_put:
	xpmem_attachment_put(att);
	return ret;
}

static bool xpmem_vma_matches(struct vm_area_struct *vma, struct xpmem_file *xf,
			      struct xpmem_attachment *att, u64 apid)
{
	struct xpmem_attachment *a = vma->vm_private_data;

	if (vma->vm_ops != &xpmem_vm_ops)
		return false;
	return att ? a == att : a->xf == xf && a->apid == apid;
}

/*
 * Unmap the VMAs of the current mm that match: each piece of attachment
 * @att, or (att NULL) each piece of every attachment made through @xf's
 * permit @apid. The piece that contains @keep (if any) goes last, so that
 * when an unmap fails, the caller's address still finds what is left and
 * the same call can be made again. One piece at a time: found under
 * mmap_read_lock, unmapped after it is dropped (vm_munmap() takes the lock
 * itself), so nothing is allocated and there is nothing to fail but the
 * unmap.
 *
 * Between the look-up and the unmap another thread of the caller can unmap
 * that piece itself and map something else in its place, which we would
 * then unmap. Closing that window needs the check and the unmap under one
 * hold of mmap_lock, and the kernel exports no unmap that runs under a
 * held lock. It takes the caller's own racing munmap() of its attachment,
 * a double unmap that the caller could as well make with two munmap()s.
 */
static int xpmem_unmap_matching(struct xpmem_file *xf, struct xpmem_attachment *att,
				u64 apid, unsigned long keep)
{
	struct mm_struct *mm = current->mm;
	unsigned long from = 0, start = 0, len;
	struct xpmem_vma_iter vmi;
	struct vm_area_struct *vma;
	int ret;

	for (;;) {
		len = 0;
		if (mmap_read_lock_killable(mm))
			return -EINTR;
		xpmem_vma_iter_init(&vmi, mm, from);
		while ((vma = xpmem_vma_iter_next(&vmi))) {
			if (!xpmem_vma_matches(vma, xf, att, apid) ||
			    (keep >= vma->vm_start && keep < vma->vm_end))
				continue;
			start = vma->vm_start;
			len = vma->vm_end - vma->vm_start;
			break;
		}
		if (!len && keep) {
			/* Only the piece at @keep is left, if it matches. */
			vma = vma_lookup(mm, keep);
			if (vma && xpmem_vma_matches(vma, xf, att, apid)) {
				start = vma->vm_start;
				len = vma->vm_end - vma->vm_start;
			}
			keep = 0;
		}
		mmap_read_unlock(mm);
		if (!len)
			return 0;
		ret = vm_munmap(start, len);
		if (ret)
			return ret;
		from = start + len;
	}
}

/*
 * Detach the common case, an attachment in one piece, without walking the
 * mm (a registration cache can hold 10^5 attachments, and the walk made
 * each detach cost time linear in them: issue 14): unmap the VMA at @vaddr
 * if it is @att's only piece. Returns 0 when nothing of @att is left, 1
 * when the caller must walk (more pieces, or another thread split or moved
 * it meanwhile), or the unmap's error.
 */
static int xpmem_unmap_single_piece(struct xpmem_attachment *att, unsigned long vaddr)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	unsigned long start = 0, len = 0;
	int ret;

	if (mmap_read_lock_killable(mm))
		return -EINTR;
	vma = vma_lookup(mm, vaddr);
	if (vma && vma->vm_ops == &xpmem_vm_ops && vma->vm_private_data == att &&
	    atomic_read(&att->nr_vmas) == 1) {
		start = vma->vm_start;
		len = vma->vm_end - vma->vm_start;
	}
	mmap_read_unlock(mm);
	if (!len)
		return 1;
	ret = vm_munmap(start, len);
	if (ret)
		return ret;
	/* Our reference keeps @att; ->close ran in the unmap. */
	return atomic_read(&att->nr_vmas) ? 1 : 0;
}

int xpmem_detach_permit(struct xpmem_file *xf, u64 apid)
{
	return xpmem_unmap_matching(xf, NULL, apid, 0);
}

int xpmem_ioc_detach(struct xpmem_file *xf, void *data)
{
	struct xpmem_ioc_detach *arg = data;
	struct mm_struct *mm = current->mm;
	struct xpmem_attachment *att = NULL;
	struct vm_area_struct *vma;
	int ret;

	if (arg->flags || arg->__pad || !xpmem_reserved_zero(arg->reserved))
		return -EINVAL;

	if (mmap_read_lock_killable(mm))
		return -EINTR;
	vma = vma_lookup(mm, arg->vaddr);
	if (vma && vma->vm_ops == &xpmem_vm_ops) {
		att = vma->vm_private_data;
		kref_get(&att->ref);
	}
	mmap_read_unlock(mm);
	if (!att)
		return -EINVAL;

	ret = xpmem_unmap_single_piece(att, arg->vaddr);
	if (ret == 1)
		ret = xpmem_unmap_matching(xf, att, 0, arg->vaddr);
	xpmem_attachment_put(att);
	return ret;
}
