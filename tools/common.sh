# shellcheck shell=bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# common.sh - shell functions shared by tests/run-tests and tools/xpmem-demo.
# Source it; it defines functions and the variables TOP and STAGES only.

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STAGES=()

# stage NAME COMMAND...: run COMMAND, time it, and remember the result for
# stage_report. Returns COMMAND's status.
stage() {
	local name=$1 start rc
	shift
	echo "==> $name"
	start=$(date +%s)
	"$@"
	rc=$?
	STAGES+=("$name|$(($(date +%s) - start))|$rc")
	echo "<== $name: $([ $rc -eq 0 ] && echo ok || echo "FAILED ($rc)") in $(($(date +%s) - start)) s"
	return $rc
}

stage_report() {
	local s name secs rc total=0
	printf '\n%-56s %8s  %s\n' "stage" "seconds" "result"
	for s in "${STAGES[@]}"; do
		IFS='|' read -r name secs rc <<<"$s"
		total=$((total + secs))
		printf '%-56s %8d  %s\n' "$name" "$secs" "$([ "$rc" -eq 0 ] && echo ok || echo "failed ($rc)")"
	done
	printf '%-56s %8d\n' "total" "$total"
}

# The release that Debian's linux-image-amd64 metapackage points at, else the
# newest kernel in /boot that has its modules and build directory.
default_kernel() {
	local dep rel
	dep=$(dpkg-query -W -f='${Depends}' linux-image-amd64 2>/dev/null || true)
	rel=$(sed -n 's/^linux-image-\([^ ,]*\).*/\1/p' <<<"$dep")
	if [ -n "$rel" ] && [ -e "/boot/vmlinuz-$rel" ]; then
		echo "$rel"
		return
	fi
	for rel in $(find /boot -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sed 's/^vmlinuz-//' | sort -rV); do
		if [ -d "/lib/modules/$rel/kernel" ] && [ -e "/lib/modules/$rel/build/Makefile" ]; then
			echo "$rel"
			return
		fi
	done
	return 1
}

# ensure_configure: generate ./configure in the source tree when needed.
ensure_configure() {
	if [ -f "$TOP/config.status" ]; then
		echo "The source tree is configured in place; the harness builds in" >&2
		echo "_build/<kernel>. Run 'make distclean' in $TOP first." >&2
		return 1
	fi
	if [ ! -x "$TOP/configure" ] || [ "$TOP/configure.ac" -nt "$TOP/configure" ] ||
	   [ -n "$(find "$TOP" -name Makefile.am -newer "$TOP/configure" -print -quit)" ]; then
		(cd "$TOP" && ./autogen.sh)
	fi
}

# build_for_kernel REL: configure and build everything for kernel REL in
# $TOP/_build/REL (a VPATH build), so several kernels can coexist.
build_for_kernel() {
	local rel=$1 dir=$TOP/_build/$1
	mkdir -p "$dir"
	(
		cd "$dir" &&
		if [ ! -f config.status ] || [ "$TOP/configure" -nt config.status ]; then
			"$TOP/configure" -q --with-linux="/lib/modules/$rel/build"
		fi &&
		make -s -j"$(nproc)"
	) && build_harness_module "$rel"
}

# build_harness_module REL: the harness self-test module (tests/harness/),
# built by Kbuild in $TOP/_build/REL/harness.
build_harness_module() {
	local dir=$TOP/_build/$1/harness f
	mkdir -p "$dir"
	for f in Kbuild warn_on_load.c; do
		ln -sf "$TOP/tests/harness/$f" "$dir/$f"
	done
	make -s -C "/lib/modules/$1/build" M="$dir" modules
}
