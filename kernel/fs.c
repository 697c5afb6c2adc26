// SPDX-License-Identifier: GPL-2.0
/*
 * fs.c - a private pseudo filesystem that gives each segment an inode.
 *
 * Attachments map one of their segment's two pseudo files (read-write or
 * read-only). The kernel links every attacher's VMA into that inode's
 * address_space, so one unmap_mapping_range() over the segment's mapping
 * zaps the PTEs of every attacher, in every process, under i_mmap_rwsem (a
 * sleeping lock), without touching the attachers' mmap_locks. The read-only
 * file is opened without FMODE_WRITE, so mmap() gives its VMAs no
 * VM_MAYWRITE and mprotect() cannot make them writable later.
 *
 * Locking: none of its own.
 */

#include <linux/file.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/pseudo_fs.h>

#include "xpmem_internal.h"

#define XPMEM_FS_MAGIC 0x78706d6d	/* "xpmm" */

static struct vfsmount *xpmem_mnt;

static int xpmem_fs_init_fs_context(struct fs_context *fc)
{
	return init_pseudo(fc, XPMEM_FS_MAGIC) ? 0 : -ENOMEM;
}

/*
 * No .owner: the mount lives from module init to exit, and a module
 * reference held by it would make the module impossible to unload. The
 * files pin the module instead (see xpmem_segment_file()).
 */
static struct file_system_type xpmem_fs_type = {
	.name = "xpmem",
	.init_fs_context = xpmem_fs_init_fs_context,
	.kill_sb = kill_anon_super,
};

/*
 * The files are reached only through attachments: no read, write, seek or
 * open. They are never in a descriptor table.
 */
static const struct file_operations xpmem_segment_fops = {
	.owner = THIS_MODULE,
	.mmap = xpmem_segment_mmap,
};

static int xpmem_no_open(struct inode *inode, struct file *file)
{
	return -ENXIO;
}

/* Reopening through /proc/<pid>/map_files would bypass the permit. */
static const struct file_operations xpmem_segment_inode_fops = {
	.owner = THIS_MODULE,
	.open = xpmem_no_open,
};

/*
 * A file on @inode, taking over one inode reference on success. The file
 * holds a module reference, which its final fput() drops (alloc_file_pseudo()
 * does not take one itself). Called from our ioctl, so the module is pinned.
 */
static struct file *xpmem_segment_file(struct inode *inode, int flags,
				       struct xpmem_segment *seg)
{
	struct file *file;

	__module_get(THIS_MODULE);
	file = alloc_file_pseudo(inode, xpmem_mnt, "[xpmem]", flags, &xpmem_segment_fops);
	if (IS_ERR(file)) {
		module_put(THIS_MODULE);
		return file;
	}
	file->private_data = seg;
	return file;
}

int xpmem_segment_files(struct xpmem_segment *seg)
{
	struct inode *inode;
	struct file *file;

	inode = alloc_anon_inode(xpmem_mnt->mnt_sb);
	if (IS_ERR(inode))
		return PTR_ERR(inode);
	inode->i_fop = &xpmem_segment_inode_fops;

	/* One reference for each file's dentry. */
	ihold(inode);
	file = xpmem_segment_file(inode, O_RDWR, seg);
	if (IS_ERR(file)) {
		iput(inode);
		iput(inode);
		return PTR_ERR(file);
	}
	seg->file_rw = file;

	file = xpmem_segment_file(inode, O_RDONLY, seg);
	if (IS_ERR(file)) {
		iput(inode);
		return PTR_ERR(file);	/* file_rw is put with the segment */
	}
	seg->file_ro = file;
	return 0;
}

int xpmem_fs_init(void)
{
	xpmem_mnt = kern_mount(&xpmem_fs_type);
	return PTR_ERR_OR_ZERO(xpmem_mnt);
}

void xpmem_fs_exit(void)
{
	kern_unmount(xpmem_mnt);
}
