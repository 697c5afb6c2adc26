/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * exporter32.h - what tests/kernel/exporter32 (a 32-bit program) tells
 * test_attach (a 64-bit one) through a pipe: the same layout in both.
 */
#ifndef EXPORTER32_H
#define EXPORTER32_H

#include <linux/types.h>

#define EXPORTER32_PAGE 4096
#define EXPORTER32_FILL 0x5e
/* Where the segment of a 3 GiB-limited i386 process ends. */
#define EXPORTER32_TASK_SIZE 0xc0000000UL

struct exporter32_report {
	__s64 segid;		/* or -errno of what failed */
	__u32 marked;		/* a page of its stack, filled with EXPORTER32_FILL */
	__u32 __pad;
};

#endif
