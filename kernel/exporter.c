// SPDX-License-Identifier: GPL-2.0
/*
 * exporter.c - one context per exporting mm, with a classic mmu notifier.
 *
 * mmu_notifier_get() gives every mm that makes segments exactly one
 * struct xpmem_exporter, however many descriptors it opens. Its ->release
 * runs when the mm is torn down (exit, or exec) and marks every segment of
 * that mm dead at once: from then on XPMEM_IOC_GET and XPMEM_IOC_ATTACH on
 * them fail with ENOENT and attachments raise SIGBUS, even while the
 * segment's descriptor is still open elsewhere (inherited by a child, or
 * passed over a socket). The exit's unmapping then reaches the segments'
 * interval notifiers, which zap the attachers' PTEs.
 *
 * The context is freed through free_notifier after an SRCU grace period;
 * module exit waits for that with mmu_notifier_synchronize().
 *
 * Locking: xpmem_exporter.lock (mutex) protects its segments list and is
 * taken before seg->lock. ->release may sleep (notifiers run under SRCU).
 */

#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/slab.h>

#include "xpmem_internal.h"

struct xpmem_exporter {
	struct mmu_notifier mn;
	struct mutex lock;		/* protects segments */
	struct list_head segments;	/* struct xpmem_segment.exporter_node */
};

static void xpmem_exporter_release(struct mmu_notifier *mn, struct mm_struct *mm)
{
	struct xpmem_exporter *exp = container_of(mn, struct xpmem_exporter, mn);
	struct xpmem_segment *seg;

	mutex_lock(&exp->lock);
	list_for_each_entry(seg, &exp->segments, exporter_node) {
		mutex_lock(&seg->lock);
		seg->dead = true;
		mutex_unlock(&seg->lock);
	}
	mutex_unlock(&exp->lock);
}

static struct mmu_notifier *xpmem_exporter_alloc(struct mm_struct *mm)
{
	struct xpmem_exporter *exp = kzalloc(sizeof(*exp), GFP_KERNEL_ACCOUNT);

	if (!exp)
		return ERR_PTR(-ENOMEM);
	mutex_init(&exp->lock);
	INIT_LIST_HEAD(&exp->segments);
	return &exp->mn;
}

static void xpmem_exporter_free(struct mmu_notifier *mn)
{
	kfree(container_of(mn, struct xpmem_exporter, mn));
}

static const struct mmu_notifier_ops xpmem_exporter_ops = {
	.release = xpmem_exporter_release,
	.alloc_notifier = xpmem_exporter_alloc,
	.free_notifier = xpmem_exporter_free,
};

/* Register @seg with the current mm's exporter context. */
int xpmem_exporter_add(struct xpmem_segment *seg)
{
	struct mmu_notifier *mn = mmu_notifier_get(&xpmem_exporter_ops, seg->mm);
	struct xpmem_exporter *exp;

	if (IS_ERR(mn))
		return PTR_ERR(mn);
	exp = container_of(mn, struct xpmem_exporter, mn);
	mutex_lock(&exp->lock);
	list_add(&seg->exporter_node, &exp->segments);
	mutex_unlock(&exp->lock);
	seg->exporter = exp;
	return 0;
}

/* Undo xpmem_exporter_add(). */
void xpmem_exporter_del(struct xpmem_segment *seg)
{
	struct xpmem_exporter *exp = seg->exporter;

	if (!exp)
		return;
	mutex_lock(&exp->lock);
	list_del(&seg->exporter_node);
	mutex_unlock(&exp->lock);
	seg->exporter = NULL;
	mmu_notifier_put(&exp->mn);
}

void xpmem_exporter_exit(void)
{
	mmu_notifier_synchronize();
}
