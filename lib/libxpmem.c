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
 * for a pipe or a socket. So before the library uses or closes dev_fd, it
 * checks with fstat() that the number still names the file it opened (the
 * same device and inode); if not, it forgets the number without closing it,
 * and opens the device again. Another open of /dev/xpmem by the program
 * itself that lands on the same number cannot be told apart: its segments
 * are the program's either way. dev_gen counts our opens, so that a thread
 * whose call failed on an old descriptor forgets only that one, not the one
 * another thread has opened since under the same number.
 *
 * Locking: dev_lock protects dev_fd, dev_id and dev_gen. It is held across
 * fork() (prepare/parent/child handlers), so a child never sees it held by
 * a thread that does not exist in the child. The handlers are registered
 * when the library is loaded, before those of any library that links it,
 * so that one of those may call us from its own fork handlers: glibc runs
 * prepare handlers in the reverse order of registration, and the parent and
 * child ones in that order, so ours hold the lock only while no other
 * handler runs.
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
static unsigned long dev_gen;	/* opens so far */

/* Is dev_fd still the file we opened? Async-signal-safe (fork child). */
static bool dev_still_ours(void)
{
	struct stat st;

	return fstat(dev_fd, &st) == 0 && st.st_dev == dev_id.st_dev &&
	       st.st_ino == dev_id.st_ino && st.st_rdev == dev_id.st_rdev;
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
	if (dev_fd >= 0 && dev_still_ours())
		close(dev_fd);
	dev_fd = -1;
	pthread_mutex_unlock(&dev_lock);
}

__attribute__((constructor)) static void dev_register_atfork(void)
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
 * Returns the process's descriptor for the device, opening it on first use
 * and after the program closed it; *@gen is the open it belongs to.
 */
static int dev_get(unsigned long *gen)
{
	int fd, err = 0;

	pthread_mutex_lock(&dev_lock);
	if (dev_fd >= 0 && !dev_still_ours())
		dev_fd = -1;	/* closed by the program: the number is not ours */
	if (dev_fd < 0) {
		fd = open(dev_path(), O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			err = errno;
		} else if (dev_check_abi(fd) < 0 || fstat(fd, &dev_id) < 0) {
			err = errno;
			close(fd);
			fd = -1;
		} else {
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
 * Forget open @gen, if it is still the process's descriptor, so that the
 * next dev_get() opens the device again.
 */
static void dev_forget(unsigned long gen)
{
	pthread_mutex_lock(&dev_lock);
	if (dev_fd >= 0 && dev_gen == gen) {
		if (dev_still_ours())
			close(dev_fd);
		dev_fd = -1;
	}
	pthread_mutex_unlock(&dev_lock);
}

/*
 * Issue @cmd. A descriptor inherited without our fork handler (a raw clone,
 * or one passed in) answers XPMEM_ERRNO_NOPROC: open our own and retry once.
 */
static int dev_ioctl(unsigned long cmd, void *arg)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		unsigned long gen;
		int fd = dev_get(&gen);

		if (fd < 0)
			return -1;
		if (ioctl(fd, cmd, arg) == 0)
			return 0;
		if (errno != XPMEM_ERRNO_NOPROC)
			return -1;
		dev_forget(gen);
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
	unsigned long gen;
	int fd;

	if (!info) {
		errno = EFAULT;
		return -1;
	}
	fd = dev_get(&gen);
	if (fd < 0)
		return -1;
	memset(info, 0, sizeof(*info));
	return ioctl(fd, XPMEM_IOC_INFO, info) < 0 ? -1 : 0;
}

XPMEM_EXPORT int xpmem_version(void)
{
	struct xpmem_ioc_info info;

	if (xpmem_ext_get_info(&info) < 0)
		return -1;
	return (int)info.driver_version;
}
