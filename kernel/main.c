// SPDX-License-Identifier: GPL-2.0
/*
 * main.c - the xpmem module: /dev/xpmem and its ioctl dispatcher.
 *
 * Each open binds the file to the opener's mm (struct xpmem_file); every
 * command but XPMEM_IOC_INFO must come from a process with that mm.
 *
 * Locking: this file takes no locks of its own. Each command handler
 * documents the locks it takes.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "xpmem_internal.h"

/*
 * Bounds: segments per process (mm), over all its descriptors, and segments
 * of one process over any one page, because each one is called on every
 * invalidation of what it covers (segment.c); permits per descriptor. The
 * device is 0666: these, the descriptor limit and the memcg that pays for
 * every object keep one user from filling the kernel's memory or slowing
 * everyone's reclaim. MPI libraries make one segment per process each and
 * get one permit per peer.
 */
unsigned int xpmem_max_segments = 65536;
module_param_named(max_segments, xpmem_max_segments, uint, 0644);
MODULE_PARM_DESC(max_segments, "segments one process may export at once, over all its descriptors (ENOSPC beyond)");

unsigned int xpmem_max_overlap = 64;
module_param_named(max_overlap, xpmem_max_overlap, uint, 0644);
MODULE_PARM_DESC(max_overlap, "segments of one process that may cover any one page (ENOSPC beyond)");

unsigned int xpmem_max_permits = 65536;
module_param_named(max_permits, xpmem_max_permits, uint, 0644);
MODULE_PARM_DESC(max_permits, "permits one descriptor may hold at once (ENOSPC beyond)");

/* Layout checks: the ABI is the same for 32- and 64-bit callers. */
static_assert(sizeof(struct xpmem_ioc_info) == 64);
static_assert(sizeof(struct xpmem_ioc_make) == 64);
static_assert(sizeof(struct xpmem_ioc_remove) == 32);
static_assert(sizeof(struct xpmem_ioc_get) == 56);
static_assert(sizeof(struct xpmem_ioc_release) == 32);
static_assert(sizeof(struct xpmem_ioc_attach) == 64);
static_assert(sizeof(struct xpmem_ioc_detach) == 32);

static int xpmem_ioc_info(struct xpmem_file *xf, void *data)
{
	struct xpmem_ioc_info *info = data;

	if (info->flags || info->__pad ||
	    memchr_inv(info->reserved, 0, sizeof(info->reserved)))
		return -EINVAL;

	info->abi_version = XPMEM_ABI_VERSION;
	info->driver_version = XPMEM_DRIVER_VERSION;
	info->features = XPMEM_FEATURES_ALL;
	info->task_size = TASK_SIZE;
	return 0;
}

struct xpmem_ioctl_desc {
	unsigned int cmd;
	bool any_process;	/* may come from a process other than the opener */
	int (*handler)(struct xpmem_file *xf, void *data);
};

#define XPMEM_IOCTL(_cmd, _handler, _any) \
	[_IOC_NR(_cmd)] = { .cmd = _cmd, .handler = _handler, .any_process = _any }

/* Indexed by _IOC_NR(); a hole in the table is an unknown command. */
static const struct xpmem_ioctl_desc xpmem_ioctls[] = {
	XPMEM_IOCTL(XPMEM_IOC_INFO, xpmem_ioc_info, true),
	XPMEM_IOCTL(XPMEM_IOC_MAKE, xpmem_ioc_make, false),
	XPMEM_IOCTL(XPMEM_IOC_REMOVE, xpmem_ioc_remove, false),
	XPMEM_IOCTL(XPMEM_IOC_GET, xpmem_ioc_get, false),
	XPMEM_IOCTL(XPMEM_IOC_RELEASE, xpmem_ioc_release, false),
	XPMEM_IOCTL(XPMEM_IOC_ATTACH, xpmem_ioc_attach, false),
	XPMEM_IOCTL(XPMEM_IOC_DETACH, xpmem_ioc_detach, false),
};

/* Big enough for the argument of every command in xpmem_ioctls[]. */
union xpmem_ioctl_arg {
	struct xpmem_ioc_info info;
	struct xpmem_ioc_make make;
	struct xpmem_ioc_remove remove;
	struct xpmem_ioc_get get;
	struct xpmem_ioc_release release;
	struct xpmem_ioc_attach attach;
	struct xpmem_ioc_detach detach;
};

/*
 * Copy the whole argument in, let the handler validate and fill it, and copy
 * it back out only if the handler succeeded.
 */
static long xpmem_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct xpmem_file *xf = file->private_data;
	void __user *uarg = (void __user *)arg;
	const struct xpmem_ioctl_desc *desc;
	union xpmem_ioctl_arg data;
	unsigned int nr = _IOC_NR(cmd);
	int ret;

	if (_IOC_TYPE(cmd) != XPMEM_IOC_MAGIC || nr >= ARRAY_SIZE(xpmem_ioctls))
		return -ENOTTY;
	desc = &xpmem_ioctls[nr];
	if (!desc->handler)
		return -ENOTTY;
	/* Ours, but built against another layout or direction. */
	if (cmd != desc->cmd)
		return -EINVAL;
	if (WARN_ON_ONCE(_IOC_SIZE(cmd) > sizeof(data)))
		return -EINVAL;
	if (!desc->any_process && current->mm != xf->mm)
		return -XPMEM_ERRNO_NOPROC;

	if (copy_from_user(&data, uarg, _IOC_SIZE(cmd)))
		return -EFAULT;
	ret = desc->handler(xf, &data);
	if (ret)
		return ret;
	if (copy_to_user(uarg, &data, _IOC_SIZE(cmd)))
		return -EFAULT;
	return 0;
}

/* Every open xpmem_file, for debugfs's xpmem/processes (debugfs.c). */
LIST_HEAD(xpmem_files);
/* Protects xpmem_files; taken outside xpmem_file.lock (xpmem_internal.h). */
DEFINE_MUTEX(xpmem_files_lock);

static int xpmem_open(struct inode *inode, struct file *file)
{
	struct xpmem_file *xf;

	if (!current->mm)
		return -EINVAL;
	xf = kzalloc(sizeof(*xf), GFP_KERNEL_ACCOUNT);
	if (!xf)
		return -ENOMEM;
	xf->mm = current->mm;
	mmgrab(xf->mm);
	mutex_init(&xf->lock);
	INIT_LIST_HEAD(&xf->segments);
	xa_init_flags(&xf->permits, XA_FLAGS_ALLOC1 | XA_FLAGS_ACCOUNT);
	xf->pid = get_pid(task_tgid(current));
	get_task_comm(xf->comm, current);
	mutex_lock(&xpmem_files_lock);
	list_add_tail(&xf->node, &xpmem_files);
	mutex_unlock(&xpmem_files_lock);
	file->private_data = xf;
	xpmem_stat_inc(XPMEM_STAT_FILES_ALIVE);
	return 0;
}

/* The last reference to the file is gone: no ioctl can be running on it. */
static int xpmem_release(struct inode *inode, struct file *file)
{
	struct xpmem_file *xf = file->private_data;

	mutex_lock(&xpmem_files_lock);
	list_del(&xf->node);
	mutex_unlock(&xpmem_files_lock);
	xpmem_file_release_permits(xf);
	xpmem_file_remove_segments(xf);
	mutex_destroy(&xf->lock);
	put_pid(xf->pid);
	mmdrop(xf->mm);
	kfree(xf);
	xpmem_stat_dec(XPMEM_STAT_FILES_ALIVE);
	return 0;
}

static const struct file_operations xpmem_fops = {
	.owner = THIS_MODULE,
	.open = xpmem_open,
	.release = xpmem_release,
	.unlocked_ioctl = xpmem_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

/*
 * Mode 0666, like every XPMEM: access control is per segment (the permit
 * mode given to xpmem_make), not per device.
 */
static struct miscdevice xpmem_miscdev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "xpmem",
	.fops = &xpmem_fops,
	.mode = 0666,
};

static int __init xpmem_init(void)
{
	int ret;

	/* This kernel's page table checker counts our PTEs: see compat.h. */
	if (xpmem_ptcheck_on() && XPMEM_PTCHECK_COUNTS_SPECIAL_PTES) {
		pr_err("not loading: the page table checker is on (page_table_check=on), and on this kernel (without the fix for CVE-2026-74600) it BUG()s on a writable attachment of anonymous memory\n");
		return -EOPNOTSUPP;
	}
	ret = xpmem_segments_init();
	if (ret)
		return ret;
	ret = xpmem_notifier_init();
	if (ret)
		goto err_segments;
	ret = xpmem_fs_init();
	if (ret) {
		pr_err("cannot mount the segment filesystem: %d\n", ret);
		goto err_notifier;
	}
	xpmem_debugfs_init();
	ret = misc_register(&xpmem_miscdev);
	if (ret) {
		pr_err("cannot register /dev/xpmem: %d\n", ret);
		goto err_debugfs;
	}
	pr_info("version %s loaded, ABI %d\n", XPMEM_VERSION_STRING,
		XPMEM_ABI_VERSION);
	return 0;

err_debugfs:
	xpmem_debugfs_exit();
	xpmem_fs_exit();
err_notifier:
	xpmem_notifier_exit();
err_segments:
	xpmem_segments_exit();
	return ret;
}

static void __exit xpmem_exit(void)
{
	misc_deregister(&xpmem_miscdev);
	xpmem_debugfs_exit();
	/* Segments are freed with kfree_rcu(); let that finish first. */
	rcu_barrier();
	xpmem_fs_exit();
	xpmem_notifier_exit();
	xpmem_segments_exit();
}

module_init(xpmem_init);
module_exit(xpmem_exit);

MODULE_DESCRIPTION("Cross-process memory attach (XPMEM) over sleepable mmu notifiers");
MODULE_LICENSE("GPL");
MODULE_VERSION(XPMEM_VERSION_STRING);
