// SPDX-License-Identifier: GPL-2.0
/*
 * notifier.c - following the exporter's page tables.
 *
 * Each segment has an mmu_interval_notifier over its range of the
 * exporter's address space. Any change to the exporter's page tables there,
 * from any context (munmap, mremap, MADV_DONTNEED, mprotect, fork COW,
 * migration, compaction, KSM, THP split and collapse, reclaim, exit), calls
 * xpmem_segment_invalidate() before the old pages can be reused. It bumps
 * the segment's sequence under seg->lock, so that a racing fault in
 * attach.c retries instead of installing a stale PFN, and then zaps the
 * attachers' PTEs for that range through the segment's address_space.
 *
 * Only if some attachment covers part of the range: seg->attached holds the
 * offsets of every live attachment, added before its VMA exists and removed
 * after its last piece is unmapped, both under seg->lock. With none in the
 * range, no attacher can have a PTE there, and a fault that races with us
 * retries on the sequence, so there is nothing to zap. That matters because
 * MPI ranks export their whole address space while peers attach a few
 * buffers: every munmap, madvise, COW or migration elsewhere in the
 * exporter would otherwise wait for a zap of nothing (inv_unattached counts
 * those, inv_zapped the others).
 *
 * Notifiers have been allowed to sleep since they moved under SRCU, and
 * i_mmap_rwsem is a sleeping lock: when the caller says the range is
 * blockable we sleep for seg->lock and for the zap. When it is not (the OOM
 * reaper), we take seg->lock only by trylock and refuse (return false) if
 * an attachment covers the range, because zapping may sleep.
 *
 * The zap runs without seg->lock. That is safe: a fault either installed
 * its PTE before our mmu_interval_set_seq() (and the zap below removes it)
 * or checks the sequence after it (and retries).
 *
 * Nested invalidations: zapping an attacher's VMA invalidates that range of
 * the attacher's mm, which may itself be covered by a segment (MPI exports
 * whole address spaces). That nested call arrives in the same task, inside
 * our unmap_mapping_range(). The range is an attachment (a VM_PFNMAP
 * mapping), which no attachment can mirror, so there is nothing to do; we
 * return at once instead of taking a second segment's lock and i_mmap_rwsem
 * inside the first, which could deadlock two processes that attach each
 * other. xpmem_zappers lists the tasks inside a zap; the entries live on
 * their stacks, so no allocation happens here (the callback can run under
 * rmap locks and from reclaim).
 *
 * Why the callback hands its zap to a worker: zapping an attacher's PTEs
 * (zap_page_range_single()) starts an invalidation of the attacher's mm,
 * which lockdep models as taking the pseudo-lock
 * "mmu_notifier_invalidate_range_start" - the one the exporter's
 * invalidation already holds around our callback. Done in place, lockdep
 * reports that pseudo-lock taken recursively, and a cycle through
 * i_mmap_rwsem (debug kernel, seen here). The nesting is safe by
 * construction (the nested callbacks return at once, see above, and our
 * callback holds no lock while it waits), but lockdep cannot see that, and a
 * report would hide any real one behind it. So the callback queues the zap
 * on xpmem_zap_wq (WQ_MEM_RECLAIM: invalidations come from reclaim too) and
 * waits for it with a completion. A zap outside a callback (segment removal)
 * runs in place.
 *
 * Locking: seg->lock (mutex, or trylock when not blockable), released
 * before the zap. The zap takes the segment inode's i_mmap_rwsem (read) and
 * the attachers' page-table locks. xpmem_zappers_lock (spinlock) is
 * innermost and held only to add, remove or look up an entry.
 */

#include <linux/completion.h>
#include <linux/fs.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>

#include "xpmem_internal.h"

static struct workqueue_struct *xpmem_zap_wq;

struct xpmem_zap_work {
	struct work_struct work;
	struct xpmem_segment *seg;
	unsigned long offset, len;
	struct completion done;
};

/* Tasks currently zapping attachment PTEs (struct xpmem_zapper). */
static LIST_HEAD(xpmem_zappers);
static DEFINE_SPINLOCK(xpmem_zappers_lock);

static const enum xpmem_stat xpmem_event_stat[] = {
	[MMU_NOTIFY_UNMAP] = XPMEM_STAT_INV_UNMAP,
	[MMU_NOTIFY_CLEAR] = XPMEM_STAT_INV_CLEAR,
	[MMU_NOTIFY_PROTECTION_VMA] = XPMEM_STAT_INV_PROTECTION_VMA,
	[MMU_NOTIFY_PROTECTION_PAGE] = XPMEM_STAT_INV_PROTECTION_PAGE,
	[MMU_NOTIFY_SOFT_DIRTY] = XPMEM_STAT_INV_SOFT_DIRTY,
	[MMU_NOTIFY_RELEASE] = XPMEM_STAT_INV_RELEASE,
	[MMU_NOTIFY_MIGRATE] = XPMEM_STAT_INV_MIGRATE,
	[MMU_NOTIFY_EXCLUSIVE] = XPMEM_STAT_INV_EXCLUSIVE,
};

static void xpmem_count_event(enum mmu_notifier_event event)
{
	xpmem_stat_inc(XPMEM_STAT_INVALIDATIONS);
	if (event < ARRAY_SIZE(xpmem_event_stat) && xpmem_event_stat[event])
		xpmem_stat_inc(xpmem_event_stat[event]);
	else
		xpmem_stat_inc(XPMEM_STAT_INV_OTHER);
}

/*
 * Bracket a zap of attachment PTEs: invalidations that it causes in the
 * current task are nested ones. @z lives on the caller's stack.
 */
void xpmem_zap_begin(struct xpmem_zapper *z)
{
	z->task = current;
	spin_lock(&xpmem_zappers_lock);
	list_add(&z->node, &xpmem_zappers);
	spin_unlock(&xpmem_zappers_lock);
}

void xpmem_zap_end(struct xpmem_zapper *z)
{
	spin_lock(&xpmem_zappers_lock);
	list_del(&z->node);
	spin_unlock(&xpmem_zappers_lock);
}

static bool xpmem_zapping(void)
{
	struct xpmem_zapper *z;
	bool found = false;

	spin_lock(&xpmem_zappers_lock);
	list_for_each_entry(z, &xpmem_zappers, node) {
		if (z->task == current) {
			found = true;
			break;
		}
	}
	spin_unlock(&xpmem_zappers_lock);
	return found;
}

/*
 * Zap every attacher's PTEs for [offset, offset + len) of the segment.
 * Sleeps. The caller holds no xpmem lock.
 */
void xpmem_segment_zap(struct xpmem_segment *seg, unsigned long offset,
		       unsigned long len)
{
	struct address_space *mapping = seg->inode->i_mapping;
	struct xpmem_zapper z;

	if (!mapping_mapped(mapping))
		return;
	xpmem_zap_begin(&z);
	unmap_mapping_range(mapping, offset, len, 1);
	xpmem_zap_end(&z);
}

static void xpmem_zap_work_fn(struct work_struct *work)
{
	struct xpmem_zap_work *zw = container_of(work, struct xpmem_zap_work, work);

	xpmem_segment_zap(zw->seg, zw->offset, zw->len);
	complete(&zw->done);
}

/* The zap of an invalidation callback, done by a worker (see the top). */
static void xpmem_segment_zap_from_callback(struct xpmem_segment *seg,
					    unsigned long offset, unsigned long len)
{
	struct xpmem_zap_work zw = { .seg = seg, .offset = offset, .len = len };

	INIT_WORK_ONSTACK(&zw.work, xpmem_zap_work_fn);
	init_completion(&zw.done);
	queue_work(xpmem_zap_wq, &zw.work);
	wait_for_completion(&zw.done);
	destroy_work_on_stack(&zw.work);
}

/* Does an attachment cover part of [offset, offset + len)? Under seg->lock. */
static bool xpmem_range_attached(struct xpmem_segment *seg, unsigned long offset,
				 unsigned long len)
{
	lockdep_assert_held(&seg->lock);
	return interval_tree_iter_first(&seg->attached, offset, offset + len - 1);
}

static bool xpmem_segment_invalidate(struct mmu_interval_notifier *mni,
				     const struct mmu_notifier_range *range,
				     unsigned long cur_seq)
{
	struct xpmem_segment *seg = container_of(mni, struct xpmem_segment, notifier);
	unsigned long start = max(range->start, seg->start);
	unsigned long end = min(range->end, seg->start + seg->size);
	unsigned long offset = start - seg->start, len = end - start;
	bool blockable = mmu_notifier_range_blockable(range);
	bool attached;

	if (xpmem_zapping()) {
		xpmem_stat_inc(XPMEM_STAT_INV_NESTED);
		return true;
	}

	if (blockable)
		mutex_lock(&seg->lock);
	else if (!mutex_trylock(&seg->lock))
		goto refuse;
	/*
	 * The exporter's mm is being torn down (exit or exec): from now on
	 * the segment is dead, whatever descriptor still holds it. Set here,
	 * by the interval notifier itself, and not by a classic notifier of
	 * our own: registering one runs mm_take_all_locks() each time it is
	 * created, which a user could make us do again and again.
	 */
	if (range->event == MMU_NOTIFY_RELEASE)
		seg->dead = true;
	attached = start < end && xpmem_range_attached(seg, offset, len);
	if (attached && !blockable) {
		/* Zapping may sleep. */
		mutex_unlock(&seg->lock);
		goto refuse;
	}
	mmu_interval_set_seq(mni, cur_seq);
	mutex_unlock(&seg->lock);

	xpmem_count_event(range->event);
	if (attached) {
		xpmem_stat_inc(XPMEM_STAT_INV_ZAPPED);
		xpmem_segment_zap_from_callback(seg, offset, len);
	} else {
		xpmem_stat_inc(XPMEM_STAT_INV_UNATTACHED);
	}
	return true;

refuse:
	xpmem_stat_inc(XPMEM_STAT_INV_NONBLOCK_REFUSED);
	return false;
}

const struct mmu_interval_notifier_ops xpmem_segment_notifier_ops = {
	.invalidate = xpmem_segment_invalidate,
};

int xpmem_notifier_init(void)
{
	xpmem_zap_wq = alloc_workqueue("xpmem_zap", WQ_MEM_RECLAIM | WQ_UNBOUND, 0);
	return xpmem_zap_wq ? 0 : -ENOMEM;
}

void xpmem_notifier_exit(void)
{
	destroy_workqueue(xpmem_zap_wq);
}
