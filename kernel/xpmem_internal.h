/* SPDX-License-Identifier: GPL-2.0 */
/*
 * xpmem_internal.h - objects of the xpmem module and their rules.
 *
 * Objects and lifetimes:
 *  - struct xpmem_file: one per open of /dev/xpmem, bound to the opener's
 *    mm. Freed when the file is released. It owns the segments made and the
 *    permits got through it: at most xpmem_max_permits permits, and at
 *    most xpmem_max_segments segments for its whole mm, over all of the
 *    mm's descriptors (module parameters; ENOSPC beyond; segment.c says
 *    why per mm).
 *    Everything a user can make us allocate is charged to the user's memcg
 *    (GFP_KERNEL_ACCOUNT, XA_FLAGS_ACCOUNT; the pseudo files, dentries and
 *    inodes come from accounted caches).
 *  - struct xpmem_segment: an exported range. Reference counted (kref); the
 *    global segment table holds one reference until the segment is removed,
 *    each permit holds one. Looked up under RCU with kref_get_unless_zero()
 *    and freed after a grace period.
 *  - struct xpmem_permit: an access permit, in its xpmem_file's table only.
 *  - struct xpmem_attachment: one per XPMEM_IOC_ATTACH (kref). Its pseudo
 *    file (fs.c) holds a reference, and so does each VMA piece it is split
 *    into (vm_ops open/close); it holds a segment reference. The file is
 *    on the segment's inode, so the segment's address_space (i_mmap) finds
 *    every attacher's VMA.
 *
 *
 * Lock ordering (outermost first):
 *   attacher's mmap_lock -> exporter's mmap_lock (trylock only, or after the
 *                           attacher's is dropped: see attach.c)
 *   exporter's mmap_lock -> xpmem_segment.lock -> page table locks
 *   attacher's mmap_lock -> xpmem_segment.lock (fault; ->mmap and the last
 *                           close, which add and remove seg->attached)
 *   attacher's mmap_lock -> xpmem_attachment.pt_lock -> xpmem_segment.lock
 *                           (a fault in a window that may be one PMD)
 *   xpmem_files_lock     -> xpmem_file.lock (the debugfs listing only)
 *   xpmem_file.lock      -> the segment table's bucket locks (rhashtable) /
 *                           xa_lock of xpmem_file.permits
 *   xpmem_exporters_lock, xpmem_exporter.lock (segment.c): each taken
 *                           under no other driver lock, nor one under
 *                           the other
 *   xpmem_zappers_lock (spinlock): innermost, nothing is taken inside it
 * xpmem_segment.lock is never held while allocating memory, taking an
 * mmap_lock or zapping (the invalidate callback can run from reclaim), and
 * no driver lock is held across vm_mmap() or vm_munmap().
 * xpmem_attachment.pt_lock may be held while allocating page tables: no
 * invalidation or zap takes it.
 */
#ifndef XPMEM_INTERNAL_H
#define XPMEM_INTERNAL_H

#include <linux/cred.h>
#include <linux/interval_tree.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mmu_notifier.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/random.h>
#include <linux/rcupdate.h>
#include <linux/rhashtable.h>
#include <linux/sched.h>
#include <linux/string.h>
#include <linux/types.h>
#include <linux/xarray.h>

#include "compat.h"
#include "xpmem_ioctl.h"

/* Set from the VERSION file by Kbuild. */
#define XPMEM_DRIVER_VERSION \
	XPMEM_VERSION_CODE(XPMEM_VERSION_MAJOR, XPMEM_VERSION_MINOR, \
			   XPMEM_VERSION_PATCH)

struct mm_struct;
struct user_namespace;
struct xpmem_exporter;

struct xpmem_file {
	struct mm_struct *mm;		/* the opener's; mmgrab()ed */
	/* For the listing in debugfs (xpmem/processes) only. */
	struct list_head node;		/* in xpmem_files, under xpmem_files_lock */
	struct pid *pid;		/* the opener's thread group; get_pid()ed */
	char comm[TASK_COMM_LEN];	/* the opener's name at open */
	struct mutex lock;		/* segments list, and teardown */
	struct list_head segments;	/* made through this file */
	unsigned int nr_segments;	/* on @segments, under @lock */
	struct xarray permits;		/* apid -> struct xpmem_permit */
	atomic_t nr_permits;		/* in @permits, or being added */
};

/* main.c: every open xpmem_file, for the debugfs listing. */
extern struct list_head xpmem_files;
extern struct mutex xpmem_files_lock;

/* main.c: module parameters: segments per mm, permits per xpmem_file. */
extern unsigned int xpmem_max_segments;
extern unsigned int xpmem_max_overlap;
extern unsigned int xpmem_max_permits;

struct xpmem_segment {
	struct kref ref;
	u64 segid;
	struct rhash_head node;		/* in the segment table (segment.c) */
	struct xpmem_file *owner;	/* NULL once removed */
	struct list_head owner_node;	/* in owner->segments */
	unsigned long start;
	unsigned long size;
	/*
	 * Made with XPMEM_MAXADDR_SIZE: @size stops at the exporter's
	 * TASK_SIZE, but an attachment may run past it (xpmem_attach_range()).
	 */
	bool whole;
	struct mm_struct *mm;		/* the exporter's; mmgrab()ed */
	/* Counted by its mm's exporter, in its tree of spans (segment.c). */
	struct xpmem_exporter *exporter;
	struct interval_tree_node span;
	/* Follows the exporter's page tables over [start, start + size). */
	struct mmu_interval_notifier notifier;
	/*
	 * Orders page-table updates of the attachers against invalidations:
	 * mmu_interval_set_seq() and the fault's read_retry + insert run under
	 * it, and @dead is set under it.
	 */
	struct mutex lock;
	bool dead;			/* removed, or its mm is being torn down */
	unsigned int nr_attached;	/* in @attached; read locklessly by debugfs */
	/*
	 * xpmem_attachment.it of every live attachment, under @lock: the
	 * parts of the segment that some attacher may have PTEs for. The
	 * invalidate callback zaps only when its range overlaps one.
	 */
	struct rb_root_cached attached;
	/* Attachments map pseudo files on this inode (fs.c). */
	struct inode *inode;
	/* Credentials of the creator, for XPMEM_IOC_GET. */
	kuid_t uid;
	kgid_t gid;
	umode_t mode;
	struct user_namespace *user_ns;
	struct rcu_head rcu;
};

struct xpmem_permit {
	u64 apid;			/* see xpmem_permit_load() */
	u32 access;			/* XPMEM_RDONLY or XPMEM_RDWR */
	struct xpmem_segment *seg;	/* holds a reference */
};

/* xpmem_attachment.flags */
#define XPMEM_ATT_MAPPED	0	/* its one ->mmap ran: in seg->attached */

struct xpmem_attachment {
	struct kref ref;
	unsigned long flags;
	struct xpmem_segment *seg;	/* holds a reference */
	struct xpmem_file *xf;		/* identity only: never dereferenced */
	u64 apid;			/* the permit it was made through */
	/*
	 * Its VMA pieces (->mmap and ->open add one, ->close removes one):
	 * when it is 1, detach unmaps the piece at its address without
	 * walking the mm. A kernel that fails a mapping after our ->mmap
	 * without calling ->close leaves it too high, which costs only that.
	 */
	atomic_t nr_vmas;
	/*
	 * Orders the two ways a fault can fill a PMD entry of a window that
	 * may be one PMD (attach.c): with a huge PMD, or with a PTE table
	 * (allocated, so not under seg->lock). Each checks the entry under
	 * it, so neither ever finds the other's in place.
	 */
	struct mutex pt_lock;
	/*
	 * Segment offsets [start, last] (bytes) that the attach mapped: every
	 * VMA piece of it maps inside them. In seg->attached from our ->mmap
	 * until the attachment is freed, after its last piece and its file
	 * are gone, so after its PTEs.
	 */
	struct interval_tree_node it;
};

/* segment.c */
int xpmem_ioc_make(struct xpmem_file *xf, void *data);
int xpmem_ioc_remove(struct xpmem_file *xf, void *data);
struct xpmem_segment *xpmem_segment_lookup(u64 segid);
int xpmem_segments_init(void);
void xpmem_segments_exit(void);
void xpmem_segment_put(struct xpmem_segment *seg);
void xpmem_file_remove_segments(struct xpmem_file *xf);
int xpmem_segment_permits(struct xpmem_segment *seg, u32 access);

/* fs.c: the pseudo filesystem that gives each segment an address_space */
int xpmem_fs_init(void);
void xpmem_fs_exit(void);
int xpmem_segment_inode(struct xpmem_segment *seg);
struct file *xpmem_attachment_file(struct xpmem_attachment *att, bool writable);

/* notifier.c */
extern const struct mmu_interval_notifier_ops xpmem_segment_notifier_ops;
int xpmem_notifier_init(void);
void xpmem_notifier_exit(void);
void xpmem_segment_zap(struct xpmem_segment *seg, unsigned long offset,
		       unsigned long len);
struct xpmem_zapper {
	struct list_head node;
	struct task_struct *task;
};

void xpmem_zap_begin(struct xpmem_zapper *z);
void xpmem_zap_end(struct xpmem_zapper *z);

/* attach.c */
int xpmem_ioc_attach(struct xpmem_file *xf, void *data);
int xpmem_ioc_detach(struct xpmem_file *xf, void *data);
int xpmem_attachment_mmap(struct file *file, struct vm_area_struct *vma);
unsigned long xpmem_attachment_get_unmapped_area(struct file *file, unsigned long addr,
						 unsigned long len, unsigned long pgoff,
						 unsigned long flags);
void xpmem_attachment_put(struct xpmem_attachment *att);
int xpmem_detach_permit(struct xpmem_file *xf, u64 apid);

/* permit.c */
int xpmem_ioc_get(struct xpmem_file *xf, void *data);
int xpmem_ioc_release(struct xpmem_file *xf, void *data);
void xpmem_file_release_permits(struct xpmem_file *xf);

/*
 * Segment ids: random, positive (63 bits), never 0 or -1, so they cannot be
 * guessed from a pid as with older XPMEMs. (Permit ids: see
 * xpmem_apid_index().)
 */
static inline u64 xpmem_random_id(void)
{
	u64 id;

	do {
		id = get_random_u64() & S64_MAX;
	} while (!id);
	return id;
}

/*
 * Permit ids (apids) are not random as a whole: the permit's index in its
 * descriptor's xarray, dense (the lowest free, from 1), in the low 32 bits,
 * under 31 random bits (never all zero). A sparse 63-bit key costs an
 * xarray a chain of about eight 576-byte nodes: 3.7-4.9 KB of kernel memory
 * per permit (measured on 6.1), for a struct of 24 bytes, so one descriptor
 * could hold 300 MB through 65536 permits of one segment. Dense, they cost
 * about 10 bytes each. The random bits make the apid of a released permit,
 * whose index a later permit takes, find nothing. An apid means nothing
 * outside the descriptor that got it, so it need not be unguessable as a
 * segid must. Look permits up only with xpmem_permit_load().
 */
static inline unsigned long xpmem_apid_index(u64 apid)
{
	return lower_32_bits(apid);
}

/* The permit @apid of @xf, or NULL; under xa_lock(&xf->permits). */
static inline struct xpmem_permit *xpmem_permit_load(struct xpmem_file *xf, u64 apid)
{
	struct xpmem_permit *permit;

	/* Permits are freed without RCU: only the lock keeps this one. */
	lockdep_assert_held(&xf->permits.xa_lock);
	permit = xa_load(&xf->permits, xpmem_apid_index(apid));
	return permit && permit->apid == apid ? permit : NULL;
}

/* debugfs.c: counters of objects alive, for tests and xpmem-stat. */
enum xpmem_stat {
	XPMEM_STAT_FILES_ALIVE,
	XPMEM_STAT_SEGMENTS_ALIVE,
	XPMEM_STAT_PERMITS_ALIVE,
	XPMEM_STAT_ATTACHMENTS_ALIVE,
	XPMEM_STAT_SEGMENTS_MADE,
	XPMEM_STAT_PERMITS_GOT,
	XPMEM_STAT_ATTACHES,
	XPMEM_STAT_FAULTS,
	XPMEM_STAT_FAULT_RETRIES,
	XPMEM_STAT_FAULT_SIGBUS,
	XPMEM_STAT_FAULT_SOURCE_BUSY,
	XPMEM_STAT_WRITE_UPGRADES,
	XPMEM_STAT_FAULT_IN_UNLOCKED,
	XPMEM_STAT_PAGES_MAPPED,
	XPMEM_STAT_PMDS_MAPPED,
	XPMEM_STAT_PMDS_PTCHECK,
	XPMEM_STAT_INVALIDATIONS,
	XPMEM_STAT_INV_UNMAP,
	XPMEM_STAT_INV_CLEAR,
	XPMEM_STAT_INV_PROTECTION_VMA,
	XPMEM_STAT_INV_PROTECTION_PAGE,
	XPMEM_STAT_INV_SOFT_DIRTY,
	XPMEM_STAT_INV_RELEASE,
	XPMEM_STAT_INV_MIGRATE,
	XPMEM_STAT_INV_EXCLUSIVE,
	XPMEM_STAT_INV_OTHER,
	XPMEM_STAT_INV_NESTED,
	XPMEM_STAT_INV_NONBLOCK_REFUSED,
	XPMEM_STAT_INV_ZAPPED,
	XPMEM_STAT_INV_UNATTACHED,
	XPMEM_NR_STATS
};

void xpmem_stat_inc(enum xpmem_stat stat);
void xpmem_stat_dec(enum xpmem_stat stat);
void xpmem_stat_add(enum xpmem_stat stat, long n);
void xpmem_debugfs_init(void);
void xpmem_debugfs_exit(void);

/*
 * Should this failure point fail now? Only on kernels with
 * CONFIG_FAULT_INJECTION, when asked to (debugfs.c).
 */
#ifdef CONFIG_FAULT_INJECTION
bool xpmem_should_fail(void);
#else
static inline bool xpmem_should_fail(void)
{
	return false;
}
#endif

/* Reserved fields of an ioctl argument must be zero. */
#define xpmem_reserved_zero(arr) (!memchr_inv((arr), 0, sizeof(arr)))

#endif /* XPMEM_INTERNAL_H */
