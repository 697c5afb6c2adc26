// SPDX-License-Identifier: GPL-2.0
/*
 * warn_on_load.c - a module that WARNs once when loaded.
 *
 * tests/run-tests boots it under the VM harness and expects the run to fail
 * with the "kernel report" status. That proves, on every run, that the
 * harness's dmesg scan still catches kernel warnings.
 */
#include <linux/bug.h>
#include <linux/module.h>

static int __init warn_on_load_init(void)
{
	WARN(1, "xpmem harness self-test: deliberate warning\n");
	return 0;
}

static void __exit warn_on_load_exit(void)
{
}

module_init(warn_on_load_init);
module_exit(warn_on_load_exit);
MODULE_DESCRIPTION("VM harness self-test: WARN on load");
MODULE_LICENSE("GPL");
