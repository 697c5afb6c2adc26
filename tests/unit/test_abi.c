// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_abi.c - the public header and library, without the kernel module.
 *
 * Runs anywhere (host or guest). It pins the values and layouts that
 * existing XPMEM consumers are compiled against, the ioctl encoding, and the
 * library's error reporting when no usable device is present.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "xpmem.h"
#include "xtest.h"

#ifndef LIBXPMEM_PATH
#error "LIBXPMEM_PATH must name the built libxpmem.so.0"
#endif

START_TEST(constants_match_xpmem_api)
{
	ck_assert_int_eq(XPMEM_RDONLY, 0x1);
	ck_assert_int_eq(XPMEM_RDWR, 0x2);
	ck_assert_int_eq(XPMEM_PERMIT_MODE, 0x1);
	ck_assert_int_eq(XPMEM_ERRNO_NOPROC, 2004);
	ck_assert(XPMEM_MAXADDR_SIZE == (size_t)-1);
	ck_assert_str_eq(XPMEM_DEV_PATH, "/dev/xpmem");
}
END_TEST

START_TEST(types_match_xpmem_api)
{
	xpmem_segid_t segid = -1;
	xpmem_apid_t apid = -1;

	ck_assert_uint_eq(sizeof(xpmem_segid_t), 8);
	ck_assert_uint_eq(sizeof(xpmem_apid_t), 8);
	ck_assert(segid < 0 && apid < 0);	/* signed */
	ck_assert_uint_eq(offsetof(struct xpmem_addr, apid), 0);
	ck_assert_uint_eq(offsetof(struct xpmem_addr, offset), 8);
	ck_assert_uint_eq(sizeof(struct xpmem_addr), 16);
}
END_TEST

START_TEST(info_struct_layout_is_fixed)
{
	ck_assert_uint_eq(sizeof(struct xpmem_ioc_info), 64);
	ck_assert_uint_eq(offsetof(struct xpmem_ioc_info, flags), 0);
	ck_assert_uint_eq(offsetof(struct xpmem_ioc_info, abi_version), 4);
	ck_assert_uint_eq(offsetof(struct xpmem_ioc_info, driver_version), 8);
	ck_assert_uint_eq(offsetof(struct xpmem_ioc_info, features), 16);
	ck_assert_uint_eq(offsetof(struct xpmem_ioc_info, task_size), 24);
	ck_assert_uint_eq(offsetof(struct xpmem_ioc_info, reserved), 32);
}
END_TEST

START_TEST(segment_structs_layout_is_fixed)
{
	ck_assert_uint_eq(sizeof(struct xpmem_ioc_make), 64);
	ck_assert_uint_eq(offsetof(struct xpmem_ioc_make, size), 8);
	ck_assert_uint_eq(offsetof(struct xpmem_ioc_make, permit_type), 16);
	ck_assert_uint_eq(offsetof(struct xpmem_ioc_make, permit_value), 24);
	ck_assert_uint_eq(offsetof(struct xpmem_ioc_make, segid), 32);
	ck_assert_uint_eq(sizeof(struct xpmem_ioc_remove), 32);
	ck_assert_uint_eq(sizeof(struct xpmem_ioc_get), 56);
	ck_assert_uint_eq(offsetof(struct xpmem_ioc_get, permit_value), 16);
	ck_assert_uint_eq(offsetof(struct xpmem_ioc_get, apid), 32);
	ck_assert_uint_eq(sizeof(struct xpmem_ioc_release), 32);
	ck_assert_uint_eq(sizeof(struct xpmem_ioc_attach), 64);
	ck_assert_uint_eq(offsetof(struct xpmem_ioc_attach, vaddr), 24);
	ck_assert_uint_eq(offsetof(struct xpmem_ioc_attach, flags), 32);
	ck_assert_uint_eq(sizeof(struct xpmem_ioc_detach), 32);
}
END_TEST

/* Every command is _IOWR, type 'x', with its struct's size. */
START_TEST(ioctls_are_iowr_with_their_size)
{
	const struct {
		unsigned long cmd;
		unsigned int nr;
		size_t size;
	} cmds[] = {
		{ XPMEM_IOC_INFO, 0, sizeof(struct xpmem_ioc_info) },
		{ XPMEM_IOC_MAKE, 1, sizeof(struct xpmem_ioc_make) },
		{ XPMEM_IOC_REMOVE, 2, sizeof(struct xpmem_ioc_remove) },
		{ XPMEM_IOC_GET, 3, sizeof(struct xpmem_ioc_get) },
		{ XPMEM_IOC_RELEASE, 4, sizeof(struct xpmem_ioc_release) },
		{ XPMEM_IOC_ATTACH, 5, sizeof(struct xpmem_ioc_attach) },
		{ XPMEM_IOC_DETACH, 6, sizeof(struct xpmem_ioc_detach) },
	};

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		ck_assert_uint_eq(_IOC_DIR(cmds[i].cmd), _IOC_READ | _IOC_WRITE);
		ck_assert_uint_eq(_IOC_TYPE(cmds[i].cmd), 'x');
		ck_assert_uint_eq(_IOC_NR(cmds[i].cmd), cmds[i].nr);
		ck_assert_uint_eq(_IOC_SIZE(cmds[i].cmd), cmds[i].size);
	}
}
END_TEST

START_TEST(version_code_packs_three_fields)
{
	ck_assert_int_eq(XPMEM_VERSION_CODE(2, 6, 3), 0x020603);
	ck_assert_int_eq(XPMEM_VERSION_CODE(0, 1, 0), 0x000100);
}
END_TEST

START_TEST(version_without_device_is_enoent)
{
	setenv("XPMEM_DEVICE", "/nonexistent/xpmem", 1);
	errno = 0;
	ck_assert_int_eq(xpmem_version(), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(version_on_foreign_device_is_enotty)
{
	struct xpmem_ioc_info info;

	setenv("XPMEM_DEVICE", "/dev/null", 1);
	errno = 0;
	ck_assert_int_eq(xpmem_version(), -1);
	ck_assert_int_eq(errno, ENOTTY);
	errno = 0;
	ck_assert_int_eq(xpmem_ext_get_info(&info), -1);
	ck_assert_int_eq(errno, ENOTTY);
}
END_TEST

/* Without a device every call fails cleanly with the open's errno. */
START_TEST(api_without_device_is_enoent)
{
	setenv("XPMEM_DEVICE", "/nonexistent/xpmem", 1);
	errno = 0;
	ck_assert_int_eq(xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600), -1);
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_int_eq(xpmem_get(1, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL), -1);
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_int_eq(xpmem_remove(1), -1);
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_int_eq(xpmem_release(1), -1);
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_ptr_eq(xpmem_attach((struct xpmem_addr){ .apid = 1, .offset = 0 }, 4096, NULL),
			 (void *)-1);
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_int_eq(xpmem_detach((void *)4096), -1);
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_int_eq(xpmem_init(), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(get_info_null_is_efault)
{
	errno = 0;
	ck_assert_int_eq(xpmem_ext_get_info(NULL), -1);
	ck_assert_int_eq(errno, EFAULT);
}
END_TEST

/* The library exports its API under version XPMEM_1.0 and nothing else. */
START_TEST(library_exports_versioned_api_only)
{
	const char *api[] = { "xpmem_version", "xpmem_init", "xpmem_make", "xpmem_remove",
			      "xpmem_get", "xpmem_release", "xpmem_attach", "xpmem_detach",
			      "xpmem_ext_get_info", "xpmem_ext_attach" };
	void *lib = dlopen(LIBXPMEM_PATH, RTLD_NOW | RTLD_LOCAL);

	ck_assert_msg(lib, "dlopen(%s): %s", LIBXPMEM_PATH, dlerror());
	for (size_t i = 0; i < sizeof(api) / sizeof(api[0]); i++)
		ck_assert_msg(dlvsym(lib, api[i], "XPMEM_1.0"), "%s@XPMEM_1.0 missing", api[i]);
	/* An unversioned lookup, as old binaries do, finds the same symbol. */
	ck_assert_ptr_eq(dlsym(lib, "xpmem_version"),
			 dlvsym(lib, "xpmem_version", "XPMEM_1.0"));
	/* Internal helpers stay local. */
	ck_assert_ptr_null(dlsym(lib, "dev_get"));
	ck_assert_ptr_null(dlsym(lib, "dev_fd"));
	dlclose(lib);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("abi");
	TCase *tc = xtest_tcase(s, "header");

	tcase_add_test(tc, constants_match_xpmem_api);
	tcase_add_test(tc, types_match_xpmem_api);
	tcase_add_test(tc, info_struct_layout_is_fixed);
	tcase_add_test(tc, segment_structs_layout_is_fixed);
	tcase_add_test(tc, ioctls_are_iowr_with_their_size);
	tcase_add_test(tc, version_code_packs_three_fields);

	tc = xtest_tcase(s, "library");
	tcase_add_test(tc, version_without_device_is_enoent);
	tcase_add_test(tc, version_on_foreign_device_is_enotty);
	tcase_add_test(tc, api_without_device_is_enoent);
	tcase_add_test(tc, get_info_null_is_efault);
	tcase_add_test(tc, library_exports_versioned_api_only);

	return xtest_main("abi", s, XTEST_NEEDS_NOTHING);
}
