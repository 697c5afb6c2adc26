/* SPDX-License-Identifier: GPL-2.0 */
/*
 * xpmem_internal.h - objects of the xpmem module and their rules.
 *
 * Objects and lifetimes:
 *  - struct xpmem_file: one per open of /dev/xpmem, bound to the opener's
 *    mm. Freed when the file is released. It owns the segments made and the
 *    permits got through it.
 *  - struct xpmem_segment: an exported range. Reference counted (kref); the
 *    global segment table holds one reference until the segment is removed,
 *    each permit holds one. Looked up under RCU with kref_get_unless_zero()
 *    and freed after a grace period.
 *  - struct xpmem_permit: an access permit, in its xpmem_file's table only.
 *
 * Lock ordering (outermost first):
 *   xpmem_file.lock  ->  xa_lock of xpmem_segments / xpmem_file.permits
 * No lock here is held across anything that can take mmap_lock.
 */
#ifndef XPMEM_INTERNAL_H
#define XPMEM_INTERNAL_H

#include <linux/cred.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/random.h>
#include <linux/rcupdate.h>
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

struct xpmem_file {
	struct mm_struct *mm;		/* the opener's; mmgrab()ed */
	struct mutex lock;		/* segments list, and teardown */
	struct list_head segments;	/* made through this file */
	struct xarray permits;		/* apid -> struct xpmem_permit */
};

struct xpmem_segment {
	struct kref ref;
	u64 segid;
	struct xpmem_file *owner;	/* NULL once removed */
	struct list_head owner_node;	/* in owner->segments */
	unsigned long start;
	unsigned long size;
	/* Credentials of the creator, for XPMEM_IOC_GET. */
	kuid_t uid;
	kgid_t gid;
	umode_t mode;
	struct user_namespace *user_ns;
	struct rcu_head rcu;
};

struct xpmem_permit {
	u64 apid;
	u32 access;			/* XPMEM_RDONLY or XPMEM_RDWR */
	struct xpmem_segment *seg;	/* holds a reference */
};

/* segment.c */
int xpmem_ioc_make(struct xpmem_file *xf, void *data);
int xpmem_ioc_remove(struct xpmem_file *xf, void *data);
struct xpmem_segment *xpmem_segment_lookup(u64 segid);
void xpmem_segment_put(struct xpmem_segment *seg);
void xpmem_file_remove_segments(struct xpmem_file *xf);
int xpmem_segment_permits(struct xpmem_segment *seg, u32 access);

/* permit.c */
int xpmem_ioc_get(struct xpmem_file *xf, void *data);
int xpmem_ioc_release(struct xpmem_file *xf, void *data);
void xpmem_file_release_permits(struct xpmem_file *xf);

/*
 * Segment and permit ids: random, positive (63 bits), never 0 or -1, so they
 * cannot be guessed from a pid as with older XPMEMs.
 */
static inline u64 xpmem_random_id(void)
{
	u64 id;

	do {
		id = get_random_u64() & S64_MAX;
	} while (!id);
	return id;
}

/* debugfs.c: counters of objects alive, for tests and xpmem-stat. */
enum xpmem_stat {
	XPMEM_STAT_FILES_ALIVE,
	XPMEM_STAT_SEGMENTS_ALIVE,
	XPMEM_STAT_PERMITS_ALIVE,
	XPMEM_STAT_SEGMENTS_MADE,
	XPMEM_STAT_PERMITS_GOT,
	XPMEM_NR_STATS
};

void xpmem_stat_inc(enum xpmem_stat stat);
void xpmem_stat_dec(enum xpmem_stat stat);
void xpmem_debugfs_init(void);
void xpmem_debugfs_exit(void);

/* Reserved fields of an ioctl argument must be zero. */
#define xpmem_reserved_zero(arr) (!memchr_inv((arr), 0, sizeof(arr)))

#endif /* XPMEM_INTERNAL_H */
