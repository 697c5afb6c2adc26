// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * exporter32.c - a 32-bit (i386) exporter for test_attach, whose segment
 * ends below mappings it has: with the ADDR_LIMIT_3GB personality its
 * TASK_SIZE is 3 GiB, so a whole segment stops there, while its stack and
 * vDSO stay above 3 GiB, where the kernel put them at exec.
 *
 * It makes that segment through the compat ioctl path, fills a page on its
 * stack with 0x5e, writes a struct exporter32_report to stdout and waits
 * for stdin to close. Built with -m32 and without a C library (the machine
 * need not have 32-bit libraries); only the kernel must run i386 binaries
 * (CONFIG_IA32_EMULATION, on in Debian's kernels).
 */
#include "xpmem_ioctl.h"
#include "exporter32.h"

#define NR_exit		1
#define NR_read		3
#define NR_write	4
#define NR_open		5
#define NR_ioctl	54
#define NR_personality	136
#define ADDR_LIMIT_3GB	0x8000000
#define O_RDWR		2

static long sys3(long nr, long a, long b, long c)
{
	long ret;

	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
	return ret;
}

/* gcc may call these for the struct copies and the page fill. */
void *memset(void *s, int c, unsigned long n);
void *memset(void *s, int c, unsigned long n)
{
	volatile unsigned char *p = s;

	while (n--)
		*p++ = (unsigned char)c;
	return s;
}

void *memcpy(void *d, const void *s, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n)
{
	volatile unsigned char *dp = d;
	const unsigned char *sp = s;

	while (n--)
		*dp++ = *sp++;
	return d;
}

static void run(void)
{
	unsigned char page[2 * EXPORTER32_PAGE];
	struct xpmem_ioc_make make = {
		.size = XPMEM_MAXADDR_SIZE_U64,
		.permit_type = XPMEM_PERMIT_MODE,
		.permit_value = 0600,
	};
	struct exporter32_report report = { 0 };
	unsigned long marked = ((unsigned long)page + EXPORTER32_PAGE - 1) &
			       ~(unsigned long)(EXPORTER32_PAGE - 1);
	long fd, ret;
	char c;

	memset((void *)marked, EXPORTER32_FILL, EXPORTER32_PAGE);
	report.marked = marked;
	ret = sys3(NR_personality, ADDR_LIMIT_3GB, 0, 0);
	fd = ret < 0 ? ret : sys3(NR_open, (long)"/dev/xpmem", O_RDWR, 0);
	ret = fd < 0 ? fd : sys3(NR_ioctl, fd, XPMEM_IOC_MAKE, (long)&make);
	report.segid = ret < 0 ? ret : make.segid;
	sys3(NR_write, 1, (long)&report, sizeof(report));
	/* The page stays on the stack while we wait, in this frame. */
	while (sys3(NR_read, 0, (long)&c, 1) > 0)
		;
}

/* Entered with no return address on the stack: realign it for gcc. */
__attribute__((force_align_arg_pointer, noreturn)) void _start(void);
__attribute__((force_align_arg_pointer, noreturn)) void _start(void)
{
	run();
	for (;;)
		sys3(NR_exit, 0, 0, 0);
}
