// SPDX-License-Identifier: GPL-2.0
/*
 * permit.c - access permits (apids).
 *
 * A permit lives in the table of the xpmem_file it was got through, so it is
 * usable only by the process that got it. Locking: the table's own xa_lock;
 * no other lock is taken here.
 */

#include <linux/slab.h>

#include "xpmem_internal.h"

static void xpmem_permit_free(struct xpmem_file *xf, struct xpmem_permit *permit)
{
	xpmem_segment_put(permit->seg);
	kfree(permit);
	atomic_dec(&xf->nr_permits);
	xpmem_stat_dec(XPMEM_STAT_PERMITS_ALIVE);
}

int xpmem_ioc_get(struct xpmem_file *xf, void *data)
{
	struct xpmem_ioc_get *arg = data;
	struct xpmem_permit *permit;
	struct xpmem_segment *seg;
	u64 apid;
	u32 index;
	int ret;

	if (arg->flags || arg->__pad || !xpmem_reserved_zero(arg->reserved))
		return -EINVAL;
	if (arg->permit_type != XPMEM_PERMIT_MODE)
		return -EINVAL;
	if (arg->access != XPMEM_RDONLY && arg->access != XPMEM_RDWR)
		return -EINVAL;
	if (arg->segid <= 0)
		return -ENOENT;

	seg = xpmem_segment_lookup(arg->segid);
	if (!seg)
		return -ENOENT;
	/* Removed, or its exporter's address space is going (notifier.c). */
	if (READ_ONCE(seg->dead)) {
		ret = -ENOENT;
		goto out_put;
	}
	ret = xpmem_segment_permits(seg, arg->access);
	if (ret)
		goto out_put;

	if (atomic_inc_return(&xf->nr_permits) > xpmem_max_permits) {
		ret = -ENOSPC;
		goto out_uncount;
	}
	permit = kzalloc(sizeof(*permit), GFP_KERNEL_ACCOUNT);
	if (!permit) {
		ret = -ENOMEM;
		goto out_uncount;
	}
	permit->access = arg->access;
	permit->seg = seg;
	/* Reserve the index, so that the permit is whole when it is found. */
	ret = xa_alloc(&xf->permits, &index, NULL, xa_limit_32b, GFP_KERNEL_ACCOUNT);
	if (ret) {
		kfree(permit);
		goto out_uncount;
	}
	do {
		apid = (u64)(get_random_u32() >> 1) << 32 | index;
	} while (!upper_32_bits(apid));
	permit->apid = apid;
	/* Into a reserved slot: allocates nothing, cannot fail. */
	WARN_ON_ONCE(xa_is_err(xa_store(&xf->permits, index, permit, GFP_KERNEL_ACCOUNT)));
	xpmem_stat_inc(XPMEM_STAT_PERMITS_ALIVE);
	xpmem_stat_inc(XPMEM_STAT_PERMITS_GOT);
	arg->apid = apid;
	return 0;

out_uncount:
	atomic_dec(&xf->nr_permits);
out_put:
	xpmem_segment_put(seg);
	return ret;
}

int xpmem_ioc_release(struct xpmem_file *xf, void *data)
{
	struct xpmem_ioc_release *arg = data;
	struct xpmem_permit *permit;
	int ret;

	if (arg->flags || arg->__pad || !xpmem_reserved_zero(arg->reserved))
		return -EINVAL;
	if (arg->apid <= 0)
		return -ENOENT;

	xa_lock(&xf->permits);
	permit = xpmem_permit_load(xf, arg->apid);
	xa_unlock(&xf->permits);
	if (!permit)
		return -ENOENT;
	/*
	 * As in every XPMEM: releasing a permit detaches what it attached.
	 * First, so that a failed unmap leaves the permit for another try.
	 */
	ret = xpmem_detach_permit(xf, arg->apid);
	if (ret)
		return ret;
	xa_lock(&xf->permits);
	permit = xpmem_permit_load(xf, arg->apid);
	if (permit)
		__xa_erase(&xf->permits, xpmem_apid_index(arg->apid));
	xa_unlock(&xf->permits);
	if (!permit)
		return -ENOENT;		/* another thread released it */
	/*
	 * An attach through the permit that mapped after our first look,
	 * and found the permit still there: see xpmem_ioc_attach(). The
	 * permit is gone now, so the release has happened whatever this
	 * unmap returns. If it fails (the caller sealed that attachment, or
	 * a fatal signal), that one attachment stays mapped: a race of the
	 * caller's own threads, as a sealed ATTACH that fails is
	 * (docs/security.md).
	 */
	xpmem_detach_permit(xf, arg->apid);
	xpmem_permit_free(xf, permit);
	return 0;
}

/* The file is going away: release every permit got through it. */
void xpmem_file_release_permits(struct xpmem_file *xf)
{
	struct xpmem_permit *permit;
	unsigned long index;

	xa_for_each(&xf->permits, index, permit) {
		xa_erase(&xf->permits, index);
		xpmem_permit_free(xf, permit);
	}
	xa_destroy(&xf->permits);
}
