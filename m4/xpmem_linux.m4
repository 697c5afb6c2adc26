# SPDX-License-Identifier: LGPL-2.1-or-later
#
# XPMEM_LINUX: choose the kernel build directory that kernel/xpmem.ko is
# built against.
#
#   --with-linux=DIR   a kernel build directory (/lib/modules/REL/build, or a
#                      built kernel tree)
#   --without-linux    build only the library, tests and examples
#
# Default: the running kernel's build directory if it exists, otherwise the
# newest /lib/modules/*/build.
#
# Nothing here runs kernel headers through the user-space compiler: Debian
# splits them into an arch package and a -common package, and user-space
# probes on that layout give wrong answers. Kbuild knows the layout, so any
# kernel feature probe must be a test module built by Kbuild.
AC_DEFUN([XPMEM_LINUX], [
AC_ARG_WITH([linux],
	[AS_HELP_STRING([--with-linux=DIR],
		[kernel build directory to build the module against
		 (default: /lib/modules/`uname -r`/build, else the newest installed)])],
	[], [with_linux=check])

LINUX_DIR=
LINUX_RELEASE=
AS_CASE([$with_linux],
[no], [],
[yes|check], [
	xpmem_running=/lib/modules/`uname -r`/build
	AS_IF([test -f "$xpmem_running/Makefile"],
		[LINUX_DIR=$xpmem_running],
		[LINUX_DIR=`ls -d /lib/modules/*/build 2>/dev/null | sort -V | tail -n 1`])
	AS_IF([test -z "$LINUX_DIR" && test "x$with_linux" = xyes],
		[AC_MSG_ERROR([no kernel build directory found; install linux-headers-<release> or pass --with-linux=DIR])])
],
[LINUX_DIR=$with_linux])

AC_MSG_CHECKING([for the kernel build directory])
AS_IF([test -n "$LINUX_DIR"], [
	LINUX_DIR=`cd "$LINUX_DIR" 2>/dev/null && pwd -P` ||
		AC_MSG_ERROR([--with-linux: $with_linux is not a directory])
	AS_IF([test ! -f "$LINUX_DIR/Makefile"],
		[AC_MSG_ERROR([$LINUX_DIR has no Makefile: not a kernel build directory])])
	# The release modules are installed under. Debian's header packages
	# carry the upstream version in include/config/kernel.release
	# (6.1.192) but the real one (6.1.0-56-amd64) in utsrelease.h, which
	# is also what the module's vermagic is built from.
	LINUX_RELEASE=`sed -n 's/^#define UTS_RELEASE "\(.*\)"$/\1/p' \
		"$LINUX_DIR/include/generated/utsrelease.h" 2>/dev/null`
	AS_IF([test -z "$LINUX_RELEASE"],
		[AC_MSG_ERROR([$LINUX_DIR has no include/generated/utsrelease.h: is it a prepared kernel build directory?])])
	AC_MSG_RESULT([$LINUX_DIR ($LINUX_RELEASE)])
], [
	AC_MSG_RESULT([none, the kernel module will not be built])
])

AC_SUBST([LINUX_DIR])
AC_SUBST([LINUX_RELEASE])
AM_CONDITIONAL([BUILD_KMOD], [test -n "$LINUX_DIR"])
])
