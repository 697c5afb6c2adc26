// SPDX-License-Identifier: GPL-2.0
/*
 * segment.c - segments: ranges of an exporter's address space.
 *
 * Locking: xpmem_file.lock (of the owner) serialises making and removing the
 * owner's segments and protects its segments list and seg->owner. The
 * global table xpmem_segments has its own bucket locks, taken inside. Lookups by
 * other processes run under RCU only and take a reference with
 * kref_get_unless_zero(); segments are freed after a grace period.
 * Killing a removed segment (zap, notifier removal) happens after
 * xpmem_file.lock is dropped; it takes seg->lock only to set @dead.
 * xpmem_exporters_lock (mutex) guards the table of exporter mms and their
 * users; xpmem_exporter.lock, each mm's segment count and spans. Neither
 * is taken under any other driver lock, nor one under the other.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/file.h>
#include <linux/hashtable.h>
#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/signal.h>
#include <linux/slab.h>
#include <linux/user_namespace.h>

#include "xpmem_internal.h"

/*
 * segid -> struct xpmem_segment; holds one reference per entry. A hash
 * table, not an xarray: segids are random 63-bit keys, so that they cannot
 * be guessed, and an xarray spends a chain of about eight 576-byte nodes on
 * each sparse key (4.5 KB per segment, measured). The table costs about
 * 3 bucket pointers per segment at most, twice that during a resize. Its
 * bucket arrays are not charged to a memcg; the segment, its inode and its
 * notifier, which they index and which cost far more, are.
 */
static struct rhashtable xpmem_segments;
static const struct rhashtable_params xpmem_segment_params = {
	.key_len = sizeof(u64),
	.key_offset = offsetof(struct xpmem_segment, segid),
	.head_offset = offsetof(struct xpmem_segment, node),
	.automatic_shrinking = true,
};

/*
 * The segments of each exporter mm, over all of its descriptors. Each
 * segment's interval notifier is called for every invalidation of the part
 * of the mm it covers, whoever invalidates: reclaim on behalf of any
 * process, compaction, migration. And reclaim invalidates a page once per
 * VMA that maps it, and our zap invalidates an attacher's mm once per
 * attachment VMA it zaps (the attacher's own segments over that VMA then
 * return at once, but each is called). So what matters is how many
 * segments of one mm cover one page: that multiplies the kernel's own
 * per-mapping work. Segments may overlap, and with a bound per descriptor
 * only, a process that opened many descriptors could make it what it liked:
 * 131072 segments over a page made one MADV_DONTNEED of it take 77 ms in a
 * TCG guest, and 8192 attachments of a page by a process with 256
 * segments of its own address space made it take 1.3 s. So, per mm:
 * at most xpmem_max_segments segments, and at most xpmem_max_overlap of
 * them over any one page (MPI libraries make one segment of the whole
 * address space each; Open MPI's coll/acoll one per communicator).
 */
struct xpmem_exporter {
	struct hlist_node node;		/* in xpmem_exporters */
	/* Not a reference: each user holds one (the segment's mmgrab). */
	struct mm_struct *mm;
	/* Segments counted, and charges under way; under xpmem_exporters_lock. */
	unsigned int users;
	/*
	 * Our own lock, not the global one: the overlap check walks up to
	 * max_segments spans, and only this mm's own MAKEs and deaths may
	 * wait for that.
	 */
	struct mutex lock;
	/*
	 * Segment deaths waiting for @lock. A death may run in another
	 * process (the last close of a descriptor passed to it), so a check
	 * in progress gives way to it rather than make it wait.
	 */
	atomic_t dying;
	unsigned int nr_segments;	/* in @spans, under @lock */
	struct rb_root_cached spans;	/* xpmem_segment.span of each, under @lock */
};

/* mm -> its struct xpmem_exporter; the lock is held only to find, add, drop. */
static DEFINE_HASHTABLE(xpmem_exporters, 8);
static DEFINE_MUTEX(xpmem_exporters_lock);

int xpmem_segments_init(void)
{
	return rhashtable_init(&xpmem_segments, &xpmem_segment_params);
}

/* At module exit: every segment is gone (each one holds the module). */
void xpmem_segments_exit(void)
{
	WARN_ON(!hash_empty(xpmem_exporters));
	rhashtable_destroy(&xpmem_segments);
}

static void xpmem_segment_free(struct kref *ref)
{
	struct xpmem_segment *seg = container_of(ref, struct xpmem_segment, ref);

	/* No attachment is left: each one held a reference. */
	if (seg->inode)
		iput(seg->inode);
	mmdrop(seg->mm);
	put_user_ns(seg->user_ns);
	xpmem_stat_dec(XPMEM_STAT_SEGMENTS_ALIVE);
	kfree_rcu(seg, rcu);
}

void xpmem_segment_put(struct xpmem_segment *seg)
{
	kref_put(&seg->ref, xpmem_segment_free);
}

/* Returns the segment with a reference held, or NULL. */
struct xpmem_segment *xpmem_segment_lookup(u64 segid)
{
	struct xpmem_segment *seg;

	rcu_read_lock();
	seg = rhashtable_lookup(&xpmem_segments, &segid, xpmem_segment_params);
	if (seg && !kref_get_unless_zero(&seg->ref))
		seg = NULL;
	rcu_read_unlock();
	return seg;
}

/*
 * May the caller get @access to @seg? The System V IPC rule: the owner, group
 * or other bits of the creator's mode, by the caller's effective uid and
 * groups; CAP_IPC_OWNER in the creator's user namespace overrides.
 */
int xpmem_segment_permits(struct xpmem_segment *seg, u32 access)
{
	umode_t requested = access == XPMEM_RDWR ? 06 : 04;
	umode_t granted = seg->mode;

	if (uid_eq(current_euid(), seg->uid))
		granted >>= 6;
	else if (in_group_p(seg->gid))
		granted >>= 3;
	if ((requested & ~granted & 07) && !ns_capable(seg->user_ns, CAP_IPC_OWNER))
		return -EACCES;
	return 0;
}

static struct xpmem_exporter *xpmem_exporter_find(struct mm_struct *mm)
{
	struct xpmem_exporter *e;

	lockdep_assert_held(&xpmem_exporters_lock);
	hash_for_each_possible(xpmem_exporters, e, node, (unsigned long)mm)
		if (e->mm == mm)
			return e;
	return NULL;
}

/* How many segments of @e cover @addr, counted up to @limit. */
static unsigned int xpmem_exporter_depth(struct xpmem_exporter *e, unsigned long addr,
					 unsigned int limit)
{
	struct interval_tree_node *n;
	unsigned int depth = 0;

	for (n = interval_tree_iter_first(&e->spans, addr, addr); n && depth < limit;
	     n = interval_tree_iter_next(n, addr, addr))
		depth++;
	return depth;
}

/*
 * May one more segment of @e cover [@start, @last]: 0, or -ENOSPC if
 * @limit segments cover some page of it already? The most are over @start
 * or over the first page of one of them. The walk may be long (up to
 * max_segments spans), so it stops for a segment's death that waits for
 * the lock (-EAGAIN: take the lock again) and for a signal, the freezer's
 * included (-ERESTARTNOINTR). Under @e->lock.
 */
static int xpmem_exporter_check(struct xpmem_exporter *e, unsigned long start,
				unsigned long last, unsigned int limit)
{
	struct interval_tree_node *n;

	if (xpmem_exporter_depth(e, start, limit) >= limit)
		return -ENOSPC;
	for (n = interval_tree_iter_first(&e->spans, start, last); n;
	     n = interval_tree_iter_next(n, start, last)) {
		if (n->start > start && xpmem_exporter_depth(e, n->start, limit) >= limit)
			return -ENOSPC;
		if (atomic_read(&e->dying))
			return -EAGAIN;
		if (signal_pending(current))
			return -ERESTARTNOINTR;
		cond_resched();
	}
	return 0;
}

/* @mm's exporter, made if need be, with a user added; NULL without memory. */
static struct xpmem_exporter *xpmem_exporter_get(struct mm_struct *mm)
{
	/* Allocated outside the lock: reclaim may wait long in a small memcg. */
	struct xpmem_exporter *e, *spare = kzalloc(sizeof(*spare), GFP_KERNEL_ACCOUNT);

	mutex_lock(&xpmem_exporters_lock);
	e = xpmem_exporter_find(mm);
	if (!e && spare) {
		e = spare;
		spare = NULL;
		e->mm = mm;
		mutex_init(&e->lock);
		e->spans = RB_ROOT_CACHED;
		hash_add(xpmem_exporters, &e->node, (unsigned long)mm);
	}
	if (e)
		e->users++;
	mutex_unlock(&xpmem_exporters_lock);
	kfree(spare);
	return e;
}

static void xpmem_exporter_put(struct xpmem_exporter *e)
{
	mutex_lock(&xpmem_exporters_lock);
	if (!--e->users) {
		hash_del(&e->node);
		mutex_destroy(&e->lock);
		kfree(e);
	}
	mutex_unlock(&xpmem_exporters_lock);
}

/*
 * Count @seg among its mm's segments (the caller holds the mm: mmgrab).
 * -ENOSPC if the mm has xpmem_max_segments already, or xpmem_max_overlap
 * over some page of @seg; -ENOMEM; -ERESTARTNOINTR for a signal.
 */
static int xpmem_exporter_charge(struct xpmem_segment *seg)
{
	struct xpmem_exporter *e = xpmem_exporter_get(seg->mm);
	int ret;

	if (!e)
		return -ENOMEM;
	seg->span.start = seg->start;
	seg->span.last = seg->start + seg->size - 1;
	do {
		/* Not killable only: the freezer must be able to stop us. */
		if (mutex_lock_interruptible(&e->lock)) {
			ret = -ERESTARTNOINTR;
			break;
		}
		if (e->nr_segments >= READ_ONCE(xpmem_max_segments))
			ret = -ENOSPC;
		else
			ret = xpmem_exporter_check(e, seg->span.start, seg->span.last,
						   READ_ONCE(xpmem_max_overlap));
		if (!ret) {
			interval_tree_insert(&seg->span, &e->spans);
			e->nr_segments++;
		}
		mutex_unlock(&e->lock);
		/* A death waits for the lock: let it have it first. */
		if (ret == -EAGAIN && atomic_read(&e->dying))
			schedule_timeout_interruptible(1);
	} while (ret == -EAGAIN);
	if (ret)
		xpmem_exporter_put(e);
	else
		seg->exporter = e;
	return ret;
}

/* @seg, counted by xpmem_exporter_charge(), no longer follows its mm. */
static void xpmem_exporter_uncharge(struct xpmem_segment *seg)
{
	struct xpmem_exporter *e = seg->exporter;

	atomic_inc(&e->dying);
	mutex_lock(&e->lock);
	atomic_dec(&e->dying);
	interval_tree_remove(&seg->span, &e->spans);
	e->nr_segments--;
	mutex_unlock(&e->lock);
	xpmem_exporter_put(e);
}

/* Validate a make request; on success *sizep is the (clamped) size. */
static int xpmem_make_check(const struct xpmem_ioc_make *arg, u64 *sizep)
{
	u64 task_size = TASK_SIZE, size = arg->size;

	if (arg->flags || !xpmem_reserved_zero(arg->reserved))
		return -EINVAL;
	if (arg->permit_type != XPMEM_PERMIT_MODE || arg->permit_value & ~0777ULL)
		return -EINVAL;
	if (!PAGE_ALIGNED(arg->vaddr) || arg->vaddr >= task_size)
		return -EINVAL;
	if (size == XPMEM_MAXADDR_SIZE_U64)
		size = task_size - arg->vaddr;
	if (!size || !PAGE_ALIGNED(size) || size > task_size - arg->vaddr)
		return -EINVAL;
	*sizep = size;
	return 0;
}

/*
 * Start following the exporter. The first interval notifier of an mm
 * registers the mm's notifier subscriptions: mm_take_all_locks(), under
 * mmap_write_lock, which walks every VMA and gives up with -EINTR as soon as
 * any signal is pending. Later ones, of this or any descriptor, do not.
 *
 * A profiling timer whose period is shorter than that walk would make the
 * first make of a large process fail every time, and restarting the walk
 * would never end. So every signal but SIGKILL and SIGSTOP is blocked for
 * the walk (a few milliseconds at most) and delivered when the ioctl
 * returns. What can still interrupt it - a fatal signal, SIGSTOP, task work,
 * the freezer - restarts the call once it is handled: nothing has been
 * registered then, and the ioctl's argument is unchanged.
 */
static int xpmem_segment_insert_notifier(struct xpmem_segment *seg)
{
	sigset_t block, old;
	int ret;

	siginitsetinv(&block, sigmask(SIGKILL) | sigmask(SIGSTOP));
	sigprocmask(SIG_BLOCK, &block, &old);
	ret = mmu_interval_notifier_insert(&seg->notifier, seg->mm, seg->start,
					   seg->size, &xpmem_segment_notifier_ops);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return ret == -EINTR ? -ERESTARTNOINTR : ret;
}

/*
 * Into the table under a fresh random segid. The table refuses a second
 * entry with one key (-EEXIST: draw again). It says -EBUSY when the insert
 * needs a table that a resize in progress has not made yet (in practice an
 * atomic allocation failed): its worker finishes the resize, so draw again
 * after letting it run.
 */
static int xpmem_segment_insert(struct xpmem_segment *seg)
{
	int ret;

	for (;;) {
		seg->segid = xpmem_random_id();
		ret = rhashtable_lookup_insert_fast(&xpmem_segments, &seg->node,
						    xpmem_segment_params);
		if (ret == -EBUSY) {
			if (fatal_signal_pending(current))
				return -EINTR;
			cond_resched();
		} else if (ret != -EEXIST) {
			return ret == -E2BIG ? -ENOSPC : ret;
		}
	}
}

int xpmem_ioc_make(struct xpmem_file *xf, void *data)
{
	struct xpmem_ioc_make *arg = data;
	struct xpmem_segment *seg;
	u64 size, segid;
	int ret;

	ret = xpmem_make_check(arg, &size);
	if (ret)
		return ret;

	seg = kzalloc(sizeof(*seg), GFP_KERNEL_ACCOUNT);
	if (!seg)
		return -ENOMEM;
	kref_init(&seg->ref);
	seg->start = arg->vaddr;
	seg->size = size;
	seg->whole = arg->size == XPMEM_MAXADDR_SIZE_U64;
	seg->uid = current_euid();
	seg->gid = current_egid();
	seg->mode = arg->permit_value;
	seg->user_ns = get_user_ns(current_user_ns());
	seg->owner = xf;
	seg->mm = current->mm;
	mmgrab(seg->mm);
	mutex_init(&seg->lock);
	seg->attached = RB_ROOT_CACHED;
	xpmem_stat_inc(XPMEM_STAT_SEGMENTS_ALIVE);

	/* Our descriptor's mm is current's (main.c). */
	ret = xpmem_exporter_charge(seg);
	if (ret)
		goto out_put;
	ret = xpmem_segment_inode(seg);
	if (ret)
		goto out_uncharge;
	ret = xpmem_segment_insert_notifier(seg);
	if (ret)
		goto out_uncharge;

	mutex_lock(&xf->lock);
	ret = xpmem_segment_insert(seg);
	if (!ret) {
		segid = seg->segid;
		list_add(&seg->owner_node, &xf->segments);
		xf->nr_segments++;
	}
	mutex_unlock(&xf->lock);

	if (ret) {
		mmu_interval_notifier_remove(&seg->notifier);
		goto out_uncharge;
	}
	xpmem_stat_inc(XPMEM_STAT_SEGMENTS_MADE);
	arg->segid = segid;
	return 0;

out_uncharge:
	xpmem_exporter_uncharge(seg);
out_put:
	xpmem_segment_put(seg);
	return ret;
}

/* Caller holds seg->owner->lock. The table's reference passes to the caller. */
static void xpmem_segment_unlink(struct xpmem_segment *seg)
{
	lockdep_assert_held(&seg->owner->lock);
	rhashtable_remove_fast(&xpmem_segments, &seg->node, xpmem_segment_params);
	list_del(&seg->owner_node);
	seg->owner->nr_segments--;
	WRITE_ONCE(seg->owner, NULL);
}

/*
 * An unlinked segment dies: from now on its attachments raise SIGBUS and it
 * stops following the exporter. Drops the reference the table held. Sleeps;
 * the caller holds no xpmem lock.
 */
static void xpmem_segment_kill(struct xpmem_segment *seg)
{
	mutex_lock(&seg->lock);
	seg->dead = true;
	mutex_unlock(&seg->lock);
	/* A fault that checked @dead before we set it installed before this. */
	xpmem_segment_zap(seg, 0, seg->size);
	mmu_interval_notifier_remove(&seg->notifier);
	xpmem_exporter_uncharge(seg);
	xpmem_segment_put(seg);
}

int xpmem_ioc_remove(struct xpmem_file *xf, void *data)
{
	struct xpmem_ioc_remove *arg = data;
	struct xpmem_segment *seg;
	int ret = 0;

	if (arg->flags || arg->__pad || !xpmem_reserved_zero(arg->reserved))
		return -EINVAL;
	if (arg->segid <= 0)
		return -ENOENT;

	mutex_lock(&xf->lock);
	rcu_read_lock();
	seg = rhashtable_lookup(&xpmem_segments, &arg->segid, xpmem_segment_params);
	if (!seg)
		ret = -ENOENT;
	else if (READ_ONCE(seg->owner) != xf)
		ret = -EPERM;
	rcu_read_unlock();
	/* Ours: only we remove it, and we hold our lock. */
	if (!ret)
		xpmem_segment_unlink(seg);
	mutex_unlock(&xf->lock);
	if (!ret)
		xpmem_segment_kill(seg);
	return ret;
}

/* The file is going away: remove every segment made through it. */
void xpmem_file_remove_segments(struct xpmem_file *xf)
{
	struct xpmem_segment *seg, *next;
	LIST_HEAD(dying);

	mutex_lock(&xf->lock);
	list_for_each_entry_safe(seg, next, &xf->segments, owner_node) {
		xpmem_segment_unlink(seg);
		list_add(&seg->owner_node, &dying);
	}
	mutex_unlock(&xf->lock);

	/* max_segments of them: offer the CPU (preempt=none kernels). */
	list_for_each_entry_safe(seg, next, &dying, owner_node) {
		xpmem_segment_kill(seg);
		cond_resched();
	}
}
