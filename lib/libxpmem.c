// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libxpmem.c - user-space access to /dev/xpmem.
 *
 * The device is opened lazily, on the first call that needs it, and the
 * descriptor is shared by all threads of the process. The driver binds a
 * descriptor to the mm of the process that opened it, so a child created by
 * fork() must not use its parent's descriptor: a pthread_atfork() child
 * handler forgets it, and the child opens its own on its next call.
 *
 * The descriptor is the program's too: it may close it (closefrom(),
 * close_range() before a fork or as a daemon does) and get its number back
 * for a pipe or a socket. A command sent there fails with EBADF or ENOTTY;
 * then the library checks with fstat() whether the number still names the
 * file it opened (the same device and inode), and if not, forgets the
 * number without closing it, opens the device again and retries once. The
 * fork child handler makes the same check before it closes the number.
 * (The check is made on those failures only, so a call costs one system
 * call, as before.) Another open of /dev/xpmem by the program itself that
 * lands on the same number cannot be told apart: its segments are the
 * program's either way. dev_gen counts our opens, so that a thread whose
 * call failed on an old descriptor forgets only that one, not the one
 * another thread has opened since under the same number.
 *
 * Locking: dev_lock protects dev_fd, dev_id and dev_gen. It is held across
 * fork() (prepare/parent/child handlers), so a child never sees it held by
 * a thread that does not exist in the child. The handlers are registered
 * when the library is loaded, by a constructor of the first priority (so
 * also before the constructors of a static link), before those of any
 * library that links ours, so that one of those may call us from its own
 * fork handlers: glibc runs prepare handlers in the reverse order of
 * registration, and the parent and child ones in that order, so ours hold
 * the lock only while no other handler runs. (A library that dlopen()s
 * ours after registering its own handlers must not call us from them.)
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xpmem.h"

#define XPMEM_EXPORT __attribute__((visibility("default")))

static pthread_mutex_t dev_lock = PTHREAD_MUTEX_INITIALIZER;
static int dev_fd = -1;
static struct stat dev_id;	/* st_dev, st_ino, st_rdev of dev_fd at open */
static bool dev_id_known;	/* fstat() worked at open */
static unsigned long dev_gen;	/* opens so far */

/*
 * Is dev_fd still the file we opened? Only a descriptor that is closed, or
 * names another file, is not: if fstat() itself is refused (a sandbox), we
 * take it for ours, as the library did before it looked. Keeps errno;
 * async-signal-safe (the fork child handler).
 */
static bool dev_still_ours(void)
{
	int err = errno;
	struct stat st;
	bool ours;

	if (fstat(dev_fd, &st) == 0)
		ours = !dev_id_known || (st.st_dev == dev_id.st_dev &&
					 st.st_ino == dev_id.st_ino &&
					 st.st_rdev == dev_id.st_rdev);
	else
		ours = errno != EBADF;
	errno = err;
	return ours;
}

static void dev_atfork_prepare(void)
{
	pthread_mutex_lock(&dev_lock);
}

static void dev_atfork_parent(void)
{
	pthread_mutex_unlock(&dev_lock);
}

static void dev_atfork_child(void)
{
	int err = errno;

	if (dev_fd >= 0 && dev_still_ours())
		close(dev_fd);
	dev_fd = -1;
	errno = err;
	pthread_mutex_unlock(&dev_lock);
}

__attribute__((constructor(101))) static void dev_register_atfork(void)
{
	/* Can fail only with ENOMEM; then fork safety is lost, not correctness of the parent. */
	(void)pthread_atfork(dev_atfork_prepare, dev_atfork_parent, dev_atfork_child);
}

/*
 * The device path. XPMEM_DEVICE in the environment overrides it for tests and
 * containers; it is ignored in set-user-ID and set-group-ID programs.
 */
static const char *dev_path(void)
{
	const char *path = secure_getenv("XPMEM_DEVICE");

	return path && *path ? path : XPMEM_DEV_PATH;
}

static int dev_check_abi(int fd)
{
	struct xpmem_ioc_info info;

	memset(&info, 0, sizeof(info));
	if (ioctl(fd, XPMEM_IOC_INFO, &info) < 0)
		return -1;
	if (info.abi_version != XPMEM_ABI_VERSION) {
		errno = EPROTO;
		return -1;
	}
	return 0;
}

/*
 * Returns the process's descriptor for the device, opening it on first use;
 * *@gen is the open it belongs to.
 */
static int dev_get(unsigned long *gen)
{
	int fd, err = 0;

	pthread_mutex_lock(&dev_lock);
	if (dev_fd < 0) {
		fd = open(dev_path(), O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			err = errno;
		} else if (dev_check_abi(fd) < 0) {
			err = errno;
			close(fd);
			fd = -1;
		} else {
			dev_id_known = fstat(fd, &dev_id) == 0;
			dev_gen++;
		}
		dev_fd = fd;
	}
	fd = dev_fd;
	*gen = dev_gen;
	pthread_mutex_unlock(&dev_lock);

	if (fd < 0)
		errno = err;
	return fd;
}

/*
 * A command on open @gen failed with @err. Should the caller open the
 * device again and retry? Yes if that open is no longer the process's
 * descriptor: another thread forgot it already, or the program closed it
 * or reused its number (EBADF, ENOTTY), which we then forget without
 * closing, or the driver says it belongs to another process
 * (XPMEM_ERRNO_NOPROC: inherited without our fork handler, by a raw
 * clone(), or passed in), which we close.
 */
static bool dev_stale(unsigned long gen, int err)
{
	bool retry = false;

	if (err != XPMEM_ERRNO_NOPROC && err != EBADF && err != ENOTTY)
		return false;
	pthread_mutex_lock(&dev_lock);
	if (dev_fd < 0 || dev_gen != gen) {
		retry = true;
	} else if (!dev_still_ours()) {
		dev_fd = -1;	/* the program's number now: not ours to close */
		retry = true;
	} else if (err == XPMEM_ERRNO_NOPROC) {
		close(dev_fd);
		dev_fd = -1;
		retry = true;
	}
	pthread_mutex_unlock(&dev_lock);
	errno = err;
	return retry;
}

/* Issue @cmd, retrying once on a descriptor that dev_stale() let go. */
static int dev_ioctl(unsigned long cmd, void *arg)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		unsigned long gen;
		int fd = dev_get(&gen);

		if (fd < 0)
			return -1;
		if (ioctl(fd, cmd, arg) == 0)
			return 0;
		if (!dev_stale(gen, errno))
			return -1;
	}
	return -1;
}

XPMEM_EXPORT xpmem_segid_t xpmem_make(void *vaddr, size_t size, int permit_type,
				      void *permit_value)
{
	struct xpmem_ioc_make arg;

	memset(&arg, 0, sizeof(arg));
	arg.vaddr = (uintptr_t)vaddr;
	arg.size = size == XPMEM_MAXADDR_SIZE ? XPMEM_MAXADDR_SIZE_U64 : size;
	arg.permit_type = (uint32_t)permit_type;
	arg.permit_value = (uintptr_t)permit_value;
	if (dev_ioctl(XPMEM_IOC_MAKE, &arg) < 0)
		return -1;
	return arg.segid;
}

XPMEM_EXPORT int xpmem_remove(xpmem_segid_t segid)
{
	struct xpmem_ioc_remove arg;

	memset(&arg, 0, sizeof(arg));
	arg.segid = segid;
	return dev_ioctl(XPMEM_IOC_REMOVE, &arg);
}

XPMEM_EXPORT xpmem_apid_t xpmem_get(xpmem_segid_t segid, int flags, int permit_type,
				    void *permit_value)
{
	struct xpmem_ioc_get arg;

	/* Negative flags or types become large values, which the driver refuses. */
	memset(&arg, 0, sizeof(arg));
	arg.segid = segid;
	arg.access = (uint32_t)flags;
	arg.permit_type = (uint32_t)permit_type;
	arg.permit_value = (uintptr_t)permit_value;
	if (dev_ioctl(XPMEM_IOC_GET, &arg) < 0)
		return -1;
	return arg.apid;
}

XPMEM_EXPORT int xpmem_release(xpmem_apid_t apid)
{
	struct xpmem_ioc_release arg;

	memset(&arg, 0, sizeof(arg));
	arg.apid = apid;
	return dev_ioctl(XPMEM_IOC_RELEASE, &arg);
}

XPMEM_EXPORT void *xpmem_ext_attach(struct xpmem_addr addr, size_t size, void *vaddr,
				    unsigned int flags)
{
	struct xpmem_ioc_attach arg;

	if (addr.offset < 0) {
		errno = EINVAL;
		return (void *)-1;
	}
	memset(&arg, 0, sizeof(arg));
	arg.apid = addr.apid;
	arg.offset = (uint64_t)addr.offset;
	arg.size = size;
	arg.vaddr = (uintptr_t)vaddr;
	arg.flags = flags;
	if (dev_ioctl(XPMEM_IOC_ATTACH, &arg) < 0)
		return (void *)-1;
	return (void *)(uintptr_t)arg.vaddr;
}

XPMEM_EXPORT void *xpmem_attach(struct xpmem_addr addr, size_t size, void *vaddr)
{
	return xpmem_ext_attach(addr, size, vaddr, 0);
}

XPMEM_EXPORT int xpmem_detach(void *vaddr)
{
	struct xpmem_ioc_detach arg;

	memset(&arg, 0, sizeof(arg));
	arg.vaddr = (uintptr_t)vaddr;
	return dev_ioctl(XPMEM_IOC_DETACH, &arg);
}

/*
 * Older libxpmem exported this; some consumers' configure scripts probe the
 * library for it. The library never calls it itself, so a consumer that
 * defines its own xpmem_init (libfabric does) changes nothing here.
 */
XPMEM_EXPORT int xpmem_init(void)
{
	unsigned long gen;

	return dev_get(&gen) < 0 ? -1 : 0;
}

XPMEM_EXPORT int xpmem_ext_get_info(struct xpmem_ioc_info *info)
{
	if (!info) {
		errno = EFAULT;
		return -1;
	}
	memset(info, 0, sizeof(*info));
	return dev_ioctl(XPMEM_IOC_INFO, info);
}

XPMEM_EXPORT int xpmem_version(void)
{
	struct xpmem_ioc_info info;

	if (xpmem_ext_get_info(&info) < 0)
		return -1;
	return (int)info.driver_version;
}
