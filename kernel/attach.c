// SPDX-License-Identifier: GPL-2.0
/*
 * attach.c - attachments: windows onto an exporter's address space.
 *
 * XPMEM_IOC_ATTACH maps one of the segment's pseudo files (fs.c) with
 * vm_mmap(); the VMA's pgoff is the page offset into the segment. Nothing
 * is mapped at attach time. A fault mirrors the exporter's page tables the
 * way an HMM secondary MMU does:
 *
 *   1. seq = mmu_interval_read_begin(&seg->notifier)
 *   2. hmm_range_fault() on the exporter's mm: first the faulting page
 *      alone, which faults it in, then a snapshot of the window around it,
 *      which faults nothing (see xpmem_fault_page())
 *   3. seg->lock; if mmu_interval_read_retry(seq): unlock and go to 1
 *   4. insert the PFNs into the attacher's page tables; unlock
 *
 * hmm_range_fault() takes no page references, so nothing is pinned: the
 * notifier (notifier.c) zaps our PTEs before the exporter's pages change.
 *
 * Locking:
 *  - The fault runs under the attacher's mmap_lock (read). Taking the
 *    exporter's mmap_lock as well could deadlock two processes that attach
 *    each other while a writer waits on each lock, so we only trylock it;
 *    when that fails we drop the attacher's lock, wait for the exporter's,
 *    and return VM_FAULT_RETRY (the fault-retry protocol). When the exporter
 *    is the attacher itself, its lock is already held.
 *  - seg->lock is taken last and is never held while allocating: page
 *    tables for the window are allocated (apply_to_page_range) before it is
 *    taken, because an allocation can enter reclaim, and reclaim can call
 *    our invalidate callback, which takes seg->lock.
 *  - Our ->mmap and the release of an attachment (its last VMA piece
 *    closed) take seg->lock, without allocating, to add and remove the
 *    attachment's range in seg->attached; the attacher's mmap_lock may be
 *    held then, as in a fault.
 *  - vm_mmap()/vm_munmap() are called with no driver lock held. The attach
 *    ioctl hands its permit to our ->mmap through seg->pending (a spinlock
 *    protected list keyed by task), since ->mmap runs inside vm_mmap().
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/hmm.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>

#include "xpmem_internal.h"

/* Pages mapped per fault, at most: one PMD's worth, aligned like one. */
#define XPMEM_FAULT_WINDOW	PMD_SIZE

/* An attach between XPMEM_IOC_ATTACH and ->mmap. */
struct xpmem_pending {
	struct list_head node;
	struct task_struct *task;
	struct xpmem_file *xf;
	u64 apid;
};

static const struct vm_operations_struct xpmem_vm_ops;

static void xpmem_attachment_free(struct kref *ref)
{
	struct xpmem_attachment *att = container_of(ref, struct xpmem_attachment, ref);
	struct xpmem_segment *seg = att->seg;

	/* The last VMA piece is closed: no PTE of ours maps this range. */
	mutex_lock(&seg->lock);
	interval_tree_remove(&att->it, &seg->attached);
	mutex_unlock(&seg->lock);
	xpmem_segment_put(seg);
	kfree(att);
	xpmem_stat_dec(XPMEM_STAT_ATTACHMENTS_ALIVE);
}

/* A VMA piece is added by split or mremap. */
static void xpmem_vm_open(struct vm_area_struct *vma)
{
	struct xpmem_attachment *att = vma->vm_private_data;

	kref_get(&att->ref);
}

static void xpmem_vm_close(struct vm_area_struct *vma)
{
	struct xpmem_attachment *att = vma->vm_private_data;

	kref_put(&att->ref, xpmem_attachment_free);
}

static int xpmem_prepopulate_pte(pte_t *pte, unsigned long addr, void *data)
{
	return 0;
}

/*
 * Lock the exporter's mm for reading, or tell the caller to retry the fault.
 * Returns 1 if we took the lock, 0 if it was already held (self-attach), or
 * a VM_FAULT_ code (negated) to return.
 */
static int xpmem_lock_source(struct vm_fault *vmf, struct mm_struct *src)
{
	if (src == vmf->vma->vm_mm && xpmem_fault_holds_mmap_lock(vmf))
		return 0;
	if (mmap_read_trylock(src))
		return 1;
	if (!(vmf->flags & FAULT_FLAG_ALLOW_RETRY)) {
		/* No retry possible: block, as a plain fault would. */
		if (mmap_read_lock_killable(src))
			return -VM_FAULT_SIGBUS;
		return 1;
	}
	if (!(vmf->flags & FAULT_FLAG_RETRY_NOWAIT)) {
		xpmem_release_fault_lock(vmf);
		/* Wait for the exporter's lock without holding ours. */
		if (!mmap_read_lock_killable(src))
			mmap_read_unlock(src);
	}
	return -VM_FAULT_RETRY;
}

/*
 * Insert the window's PFNs. Called under seg->lock with a fresh sequence;
 * page tables are already allocated.
 */
static vm_fault_t xpmem_insert_window(struct vm_area_struct *vma, unsigned long start,
				      const unsigned long *pfns, unsigned long npages,
				      unsigned long fault_idx)
{
	/*
	 * Not vma->vm_page_prot: having pfn_mkwrite makes the kernel keep that
	 * write-protected (write notification), and we want writable pages
	 * mapped writable.
	 */
	pgprot_t prot_rw = vm_get_page_prot(vma->vm_flags);
	pgprot_t prot_ro = vm_get_page_prot(vma->vm_flags & ~VM_WRITE);
	unsigned long i, mapped = 0;
	vm_fault_t ret = VM_FAULT_NOPAGE;

	for (i = 0; i < npages; i++) {
		unsigned long hpfn = pfns[i];
		bool writable;
		vm_fault_t r;

		if (!(hpfn & HMM_PFN_VALID))
			continue;
		writable = (hpfn & HMM_PFN_WRITE) && (vma->vm_flags & VM_WRITE);
		r = vmf_insert_pfn_prot(vma, start + i * PAGE_SIZE,
					page_to_pfn(hmm_pfn_to_page(hpfn)),
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
 * Fault in the exporter's page at @addr, alone. Asked for one page of a
 * window, hmm_range_fault() would fault in every page of the hole around it
 * (its walk faults holes whole), so one read would map zero pages, and one
 * write allocate memory, across the exporter's whole window: memory that
 * the exporter never touched. The caller then snapshots the window without
 * faulting, under the same notifier sequence.
 */
static int xpmem_fault_page(const struct hmm_range *window, unsigned long addr, bool write)
{
	unsigned long pfn = 0;
	struct hmm_range one = {
		.notifier = window->notifier,
		.notifier_seq = window->notifier_seq,
		.start = addr,
		.end = addr + PAGE_SIZE,
		.hmm_pfns = &pfn,
		.default_flags = HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0),
	};

	return hmm_range_fault(&one);
}

/*
 * Map the fault window around vmf->address. @write: the faulting page is
 * written. @fault_all: fault in every page of the window in the exporter
 * (populate), not only the faulting one; then a hole anywhere in the window
 * fails it.
 */
static vm_fault_t xpmem_fault_common(struct vm_fault *vmf, bool write, bool fault_all)
{
	struct vm_area_struct *vma = vmf->vma;
	struct xpmem_attachment *att = vma->vm_private_data;
	struct xpmem_segment *seg = att->seg;
	unsigned long addr = vmf->address & PAGE_MASK;
	unsigned long start, end, npages, fault_idx, src_start, timeout;
	struct hmm_range range = {};
	unsigned long *pfns;
	vm_fault_t ret;
	int locked, err;

	xpmem_stat_inc(XPMEM_STAT_FAULTS);
	if (READ_ONCE(seg->dead))
		goto sigbus;

	start = max(vma->vm_start, ALIGN_DOWN(addr, XPMEM_FAULT_WINDOW));
	end = min(vma->vm_end, ALIGN_DOWN(addr, XPMEM_FAULT_WINDOW) + XPMEM_FAULT_WINDOW);
	npages = (end - start) >> PAGE_SHIFT;
	fault_idx = (addr - start) >> PAGE_SHIFT;
	src_start = seg->start + ((vma->vm_pgoff << PAGE_SHIFT) + (start - vma->vm_start));

	pfns = kvmalloc_array(npages, sizeof(*pfns), GFP_KERNEL);
	if (!pfns)
		return VM_FAULT_OOM;
	/* Allocate the window's page tables now, not under seg->lock. */
	if (apply_to_page_range(vma->vm_mm, start, end - start,
				xpmem_prepopulate_pte, NULL)) {
		ret = VM_FAULT_OOM;
		goto out_free;
	}

	if (!mmget_not_zero(seg->mm)) {
		kvfree(pfns);
		goto sigbus;
	}
	locked = xpmem_lock_source(vmf, seg->mm);
	if (locked < 0) {
		ret = -locked;
		goto out_mmput;
	}

	range.notifier = &seg->notifier;
	range.start = src_start;
	range.end = src_start + (npages << PAGE_SHIFT);
	range.hmm_pfns = pfns;
	range.pfn_flags_mask = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE;
	range.default_flags = fault_all ? HMM_PFN_REQ_FAULT : 0;
	timeout = jiffies + msecs_to_jiffies(HMM_RANGE_DEFAULT_TIMEOUT);
	for (;;) {
		if (time_after(jiffies, timeout) || fatal_signal_pending(current)) {
			/* Let the CPU fault again. */
			ret = VM_FAULT_NOPAGE;
			break;
		}
		memset(pfns, 0, npages * sizeof(*pfns));
		range.notifier_seq = mmu_interval_read_begin(range.notifier);
		if (fault_all) {
			pfns[fault_idx] = HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0);
			err = 0;
		} else {
			err = xpmem_fault_page(&range, src_start + (fault_idx << PAGE_SHIFT),
					       write);
		}
		if (!err)
			err = hmm_range_fault(&range);
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

		mutex_lock(&seg->lock);
		if (seg->dead) {
			mutex_unlock(&seg->lock);
			xpmem_stat_inc(XPMEM_STAT_FAULT_SIGBUS);
			ret = VM_FAULT_SIGBUS;
			break;
		}
		if (mmu_interval_read_retry(range.notifier, range.notifier_seq)) {
			mutex_unlock(&seg->lock);
			xpmem_stat_inc(XPMEM_STAT_FAULT_RETRIES);
			continue;
		}
		ret = xpmem_insert_window(vma, start, pfns, npages, fault_idx);
		mutex_unlock(&seg->lock);
		break;
	}

	if (locked)
		mmap_read_unlock(seg->mm);
out_mmput:
	/* The last user may be gone: do not tear its mm down in our fault. */
	mmput_async(seg->mm);
out_free:
	kvfree(pfns);
	return ret;

sigbus:
	xpmem_stat_inc(XPMEM_STAT_FAULT_SIGBUS);
	return VM_FAULT_SIGBUS;
}

static vm_fault_t xpmem_vm_fault(struct vm_fault *vmf)
{
	return xpmem_fault_common(vmf, vmf->flags & FAULT_FLAG_WRITE, false);
}

/*
 * A write to a page we mapped read-only (it was read-faulted, or the
 * exporter could not write it then). Without this hook the kernel would just
 * make our PTE writable, writing behind the exporter's COW or read-only
 * protection. Drop the PTE and fault it again for writing instead.
 */
static vm_fault_t xpmem_vm_pfn_mkwrite(struct vm_fault *vmf)
{
	struct xpmem_zapper z;

	xpmem_zap_begin(&z);
	zap_vma_ptes(vmf->vma, vmf->address & PAGE_MASK, PAGE_SIZE);
	xpmem_zap_end(&z);
	return xpmem_fault_common(vmf, true, false);
}

static const struct vm_operations_struct xpmem_vm_ops = {
	.open = xpmem_vm_open,
	.close = xpmem_vm_close,
	.fault = xpmem_vm_fault,
	.pfn_mkwrite = xpmem_vm_pfn_mkwrite,
};

/* ->mmap of the segment files: reached only from xpmem_ioc_attach(). */
int xpmem_segment_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct xpmem_segment *seg = file->private_data;
	struct xpmem_pending *pending, *found = NULL;
	struct xpmem_attachment *att;

	spin_lock(&seg->pending_lock);
	list_for_each_entry(pending, &seg->pending, node) {
		if (pending->task == current) {
			list_del_init(&pending->node);
			found = pending;
			break;
		}
	}
	spin_unlock(&seg->pending_lock);
	if (!found)
		return -EPERM;

	att = kzalloc(sizeof(*att), GFP_KERNEL);
	if (!att)
		return -ENOMEM;
	kref_init(&att->ref);
	kref_get(&seg->ref);
	att->seg = seg;
	att->xf = found->xf;
	att->apid = found->apid;
	/*
	 * Into seg->attached before the VMA exists, so before any fault can
	 * map a page: an invalidation that finds no overlap there may skip
	 * the zap.
	 */
	att->it.start = vma->vm_pgoff << PAGE_SHIFT;
	att->it.last = att->it.start + (vma->vm_end - vma->vm_start) - 1;
	mutex_lock(&seg->lock);
	interval_tree_insert(&att->it, &seg->attached);
	mutex_unlock(&seg->lock);
	xpmem_stat_inc(XPMEM_STAT_ATTACHMENTS_ALIVE);

	/*
	 * PFN mappings, never copied into a child, never grown, not dumped.
	 * (VM_MAYWRITE is already off for the read-only file.)
	 */
	xpmem_vm_flags_set(vma, VM_PFNMAP | VM_DONTCOPY | VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_ops = &xpmem_vm_ops;
	vma->vm_private_data = att;
	return 0;
}

/*
 * Fault in one window (or, after a hole, one page) at @addr of the current
 * mm's attachment @att, as a fault with retry allowed would. Returns the
 * fault result; VM_FAULT_RETRY means the lock was dropped.
 */
static vm_fault_t xpmem_populate_one(struct xpmem_attachment *att, unsigned long addr,
				     bool fault_all)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	vm_fault_t ret;

	if (mmap_read_lock_killable(mm))
		return VM_FAULT_SIGBUS;
	vma = vma_lookup(mm, addr);
	if (!vma || vma->vm_ops != &xpmem_vm_ops || vma->vm_private_data != att) {
		/* Unmapped under us by another thread: nothing to populate. */
		mmap_read_unlock(mm);
		return VM_FAULT_NOPAGE;
	}
	{
		struct vm_fault vmf = {
			.vma = vma,
			.address = addr,
			.flags = FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE,
			.pgoff = vma->vm_pgoff + ((addr - vma->vm_start) >> PAGE_SHIFT),
		};

		ret = xpmem_fault_common(&vmf, false, fault_all);
	}
	if (!(ret & VM_FAULT_RETRY))
		mmap_read_unlock(mm);
	return ret;
}

/*
 * XPMEM_ATTACH_POPULATE: map [start, end) of a new attachment now. Each
 * window is faulted in whole; a window with a hole is done page by page,
 * skipping the holes.
 */
static int xpmem_populate(struct xpmem_attachment *att, unsigned long start,
			  unsigned long end)
{
	unsigned long addr = start, next;
	vm_fault_t ret;

	while (addr < end) {
		if (fatal_signal_pending(current))
			return -EINTR;
		next = min(end, ALIGN_DOWN(addr, XPMEM_FAULT_WINDOW) + XPMEM_FAULT_WINDOW);
		ret = xpmem_populate_one(att, addr, true);
		if (ret & VM_FAULT_RETRY)
			continue;
		if (ret & VM_FAULT_OOM)
			return -ENOMEM;
		if (ret & VM_FAULT_SIGBUS) {
			for (; addr < next; addr += PAGE_SIZE) {
				if (READ_ONCE(att->seg->dead))
					return -ENOENT;
				do {
					if (fatal_signal_pending(current))
						return -EINTR;
					ret = xpmem_populate_one(att, addr, false);
				} while (ret & VM_FAULT_RETRY);
				if (ret & VM_FAULT_OOM)
					return -ENOMEM;
			}
		}
		addr = next;
	}
	return 0;
}

/* The attachment just mapped at @addr by the current task, referenced. */
static struct xpmem_attachment *xpmem_attachment_at(unsigned long addr)
{
	struct mm_struct *mm = current->mm;
	struct xpmem_attachment *att = NULL;
	struct vm_area_struct *vma;

	mmap_read_lock(mm);
	vma = vma_lookup(mm, addr);
	if (vma && vma->vm_ops == &xpmem_vm_ops) {
		att = vma->vm_private_data;
		kref_get(&att->ref);
	}
	mmap_read_unlock(mm);
	return att;
}

/* Check an attach request and work out the pages it covers. */
static int xpmem_attach_range(const struct xpmem_ioc_attach *arg, u64 seg_size,
			      u64 *pg_offset, u64 *len)
{
	u64 in_page = arg->offset & ~PAGE_MASK;

	if (arg->flags & ~XPMEM_ATTACH_FLAGS || arg->__pad ||
	    !xpmem_reserved_zero(arg->reserved))
		return -EINVAL;
	if (!arg->size || arg->vaddr & ~PAGE_MASK)
		return -EINVAL;
	if (arg->offset >= seg_size || arg->size > seg_size - arg->offset)
		return -EINVAL;
	*pg_offset = arg->offset - in_page;
	*len = PAGE_ALIGN(in_page + arg->size);
	return 0;
}

int xpmem_ioc_attach(struct xpmem_file *xf, void *data)
{
	struct xpmem_ioc_attach *arg = data;
	struct xpmem_pending pending = { .task = current, .xf = xf, .apid = arg->apid };
	struct xpmem_segment *seg = NULL;
	struct xpmem_permit *permit;
	unsigned long addr, prot;
	struct file *file;
	u64 pg_offset, len;
	u32 access = 0;
	int ret;

	if (arg->apid <= 0)
		return -ENOENT;
	xa_lock(&xf->permits);
	permit = xa_load(&xf->permits, arg->apid);
	if (permit) {
		seg = permit->seg;
		access = permit->access;
		kref_get(&seg->ref);
	}
	xa_unlock(&xf->permits);
	if (!seg)
		return -ENOENT;

	ret = xpmem_attach_range(arg, seg->size, &pg_offset, &len);
	if (ret)
		goto out_put;
	if (READ_ONCE(seg->dead)) {
		ret = -ENOENT;
		goto out_put;
	}

	if (access == XPMEM_RDWR) {
		file = seg->file_rw;
		prot = PROT_READ | PROT_WRITE;
	} else {
		file = seg->file_ro;
		prot = PROT_READ;
	}

	spin_lock(&seg->pending_lock);
	list_add(&pending.node, &seg->pending);
	spin_unlock(&seg->pending_lock);

	addr = vm_mmap(file, arg->vaddr, len, prot,
		       MAP_SHARED | (arg->vaddr ? MAP_FIXED : 0), pg_offset);

	/* ->mmap took it off the list, unless mmap failed before calling it. */
	spin_lock(&seg->pending_lock);
	list_del(&pending.node);
	spin_unlock(&seg->pending_lock);

	if (IS_ERR_VALUE(addr)) {
		ret = (int)addr;
		goto out_put;
	}
	xpmem_stat_inc(XPMEM_STAT_ATTACHES);
	ret = 0;
	if (arg->flags & XPMEM_ATTACH_POPULATE) {
		struct xpmem_attachment *att = xpmem_attachment_at(addr);

		if (att) {
			ret = xpmem_populate(att, addr, addr + len);
			kref_put(&att->ref, xpmem_attachment_free);
		}
		if (ret)
			goto out_put;
	}
	arg->vaddr = addr + (arg->offset & ~PAGE_MASK);
out_put:
	xpmem_segment_put(seg);
	return ret;
}

/*
 * Unmap the VMAs of the current mm that match: each piece of attachment
 * @att, or (att NULL) each piece of every attachment made through @xf's
 * permit @apid. The ranges are collected under mmap_read_lock and unmapped
 * after it is dropped, because vm_munmap() takes the lock itself.
 */
static void xpmem_unmap_matching(struct xpmem_file *xf, struct xpmem_attachment *att,
				 u64 apid)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	unsigned long *ranges = NULL;
	unsigned int n = 0, cap = 0, i;

	for (;;) {
		VMA_ITERATOR(vmi, mm, 0);

		n = 0;
		mmap_read_lock(mm);
		for_each_vma(vmi, vma) {
			struct xpmem_attachment *a = vma->vm_private_data;

			if (vma->vm_ops != &xpmem_vm_ops)
				continue;
			if (att ? a != att : (a->xf != xf || a->apid != apid))
				continue;
			if (n < cap) {
				ranges[2 * n] = vma->vm_start;
				ranges[2 * n + 1] = vma->vm_end - vma->vm_start;
			}
			n++;
		}
		mmap_read_unlock(mm);
		if (n <= cap)
			break;
		/* More pieces than room: grow and look again. */
		kfree(ranges);
		cap = n + 4;
		ranges = kmalloc_array(2 * cap, sizeof(*ranges), GFP_KERNEL);
		if (!ranges)
			return;
	}
	for (i = 0; i < n; i++)
		vm_munmap(ranges[2 * i], ranges[2 * i + 1]);
	kfree(ranges);
}

void xpmem_detach_permit(struct xpmem_file *xf, u64 apid)
{
	xpmem_unmap_matching(xf, NULL, apid);
}

int xpmem_ioc_detach(struct xpmem_file *xf, void *data)
{
	struct xpmem_ioc_detach *arg = data;
	struct mm_struct *mm = current->mm;
	struct xpmem_attachment *att = NULL;
	struct vm_area_struct *vma;

	if (arg->flags || arg->__pad || !xpmem_reserved_zero(arg->reserved))
		return -EINVAL;

	mmap_read_lock(mm);
	vma = vma_lookup(mm, arg->vaddr);
	if (vma && vma->vm_ops == &xpmem_vm_ops) {
		att = vma->vm_private_data;
		kref_get(&att->ref);
	}
	mmap_read_unlock(mm);
	if (!att)
		return -EINVAL;

	xpmem_unmap_matching(xf, att, 0);
	kref_put(&att->ref, xpmem_attachment_free);
	return 0;
}
