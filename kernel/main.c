// SPDX-License-Identifier: GPL-2.0
/*
 * main.c - the xpmem module: /dev/xpmem and its ioctl dispatcher.
 *
 * Locking: this file takes no locks of its own. Each command handler
 * documents the locks it takes.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "xpmem_internal.h"

/* Layout checks: the ABI is the same for 32- and 64-bit callers. */
static_assert(sizeof(struct xpmem_ioc_info) == 64);

static int xpmem_ioc_info(struct file *file, void *data)
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
	int (*handler)(struct file *file, void *data);
};

#define XPMEM_IOCTL(_cmd, _handler) \
	[_IOC_NR(_cmd)] = { .cmd = _cmd, .handler = _handler }

/* Indexed by _IOC_NR(); a hole in the table is an unknown command. */
static const struct xpmem_ioctl_desc xpmem_ioctls[] = {
	XPMEM_IOCTL(XPMEM_IOC_INFO, xpmem_ioc_info),
};

/* Big enough for the argument of every command in xpmem_ioctls[]. */
union xpmem_ioctl_arg {
	struct xpmem_ioc_info info;
};

/*
 * Copy the whole argument in, let the handler validate and fill it, and copy
 * it back out only if the handler succeeded.
 */
static long xpmem_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
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

	if (copy_from_user(&data, uarg, _IOC_SIZE(cmd)))
		return -EFAULT;
	ret = desc->handler(file, &data);
	if (ret)
		return ret;
	if (copy_to_user(uarg, &data, _IOC_SIZE(cmd)))
		return -EFAULT;
	return 0;
}

static const struct file_operations xpmem_fops = {
	.owner = THIS_MODULE,
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

	ret = misc_register(&xpmem_miscdev);
	if (ret) {
		pr_err("cannot register /dev/xpmem: %d\n", ret);
		return ret;
	}
	pr_info("version %s loaded, ABI %d\n", XPMEM_VERSION_STRING,
		XPMEM_ABI_VERSION);
	return 0;
}

static void __exit xpmem_exit(void)
{
	misc_deregister(&xpmem_miscdev);
}

module_init(xpmem_init);
module_exit(xpmem_exit);

MODULE_DESCRIPTION("Cross-process memory attach (XPMEM) over sleepable mmu notifiers");
MODULE_LICENSE("GPL");
MODULE_VERSION(XPMEM_VERSION_STRING);
