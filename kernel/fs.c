// SPDX-License-Identifier: GPL-2.0
/*
 * fs.c - a private pseudo filesystem that gives each segment an inode.
 *
 * Each attachment maps a pseudo file of its own on its segment's inode
 * (read-write or read-only). The kernel links every attacher's VMA into
 * that inode's address_space, so one unmap_mapping_range() over the
 * segment's mapping zaps the PTEs of every attacher, in every process,
 * under i_mmap_rwsem (a sleeping lock), without touching the attachers'
 * mmap_locks. The file holds its attachment, which holds the segment: the
 * kernel may call ->mmap on a file whose VMA it has just unmapped
 * (remap_file_pages()), and what the file points at must still be there.
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

/*
 * SB_I_NOEXEC: mmap() adds PROT_EXEC to every readable mapping of a
 * process with READ_IMPLIES_EXEC (personality(2), or an ia32 binary
 * without PT_GNU_STACK) unless the file's filesystem is noexec, and our
 * vm_mmap() of an attachment is such a mapping. Newer kernels'
 * init_pseudo() sets both flags itself (7.3's does; 6.1's and 6.12's do not).
 */
static int xpmem_fs_init_fs_context(struct fs_context *fc)
{
	if (!init_pseudo(fc, XPMEM_FS_MAGIC))
		return -ENOMEM;
	fc->s_iflags |= SB_I_NOEXEC | SB_I_NODEV;
	return 0;
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
 * An attachment's file: reached only through its VMAs, never in a
 * descriptor table. No read, write, seek or open.
 */
static int xpmem_attachment_release(struct inode *inode, struct file *file)
{
	xpmem_attachment_put(file->private_data);
	return 0;
}

static const struct file_operations xpmem_attachment_fops = {
	.owner = THIS_MODULE,
	.mmap = xpmem_attachment_mmap,
	.get_unmapped_area = xpmem_attachment_get_unmapped_area,
	.release = xpmem_attachment_release,
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

/* The segment's inode: every attacher's VMA is in its i_mmap. */
int xpmem_segment_inode(struct xpmem_segment *seg)
{
	struct inode *inode = alloc_anon_inode(xpmem_mnt->mnt_sb);

	if (IS_ERR(inode))
		return PTR_ERR(inode);
	inode->i_fop = &xpmem_segment_inode_fops;
	seg->inode = inode;
	return 0;
}

/*
 * A new file on the segment's inode for attachment @att, holding a
 * reference to it; read-write only if @writable (a read-only file gives
 * its VMAs no VM_MAYWRITE, so mprotect() cannot make them writable). The
 * file also holds a module reference, which its final fput() drops
 * (alloc_file_pseudo() does not take one itself). Called from our ioctl,
 * so the module is pinned. Errors: ENOMEM, ENFILE (the system's file
 * table is full).
 */
struct file *xpmem_attachment_file(struct xpmem_attachment *att, bool writable)
{
	struct inode *inode = att->seg->inode;
	struct file *file;

	ihold(inode);
	__module_get(THIS_MODULE);
	file = alloc_file_pseudo(inode, xpmem_mnt, "[xpmem]",
				 writable ? O_RDWR : O_RDONLY, &xpmem_attachment_fops);
	if (IS_ERR(file)) {
		module_put(THIS_MODULE);
		iput(inode);
		return file;
	}
	kref_get(&att->ref);
	file->private_data = att;
	return file;
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
