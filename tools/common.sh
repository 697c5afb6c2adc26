# shellcheck shell=bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# common.sh - shell functions shared by tests/run-tests and tools/xpmem-demo.
# Source it; it defines functions and the variables TOP, STAGES and
# COPY_BENCH_CPU only.

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STAGES=()
# The guest CPU for runs that time copies: under TCG `rep movsb` runs a byte
# per step, so glibc's memcpy and the kernel's copy_to_user would measure
# QEMU instead of the transfer while ERMS/FSRM are advertised
# (docs/performance.md). Used by tools/xpmem-demo and tools/xpmem-bench.
# shellcheck disable=SC2034 # used by the scripts that source this file
COPY_BENCH_CPU=max,la57=off,erms=off,fsrm=off

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
		# Background stages overlapped the others: not in the total.
		[[ $name == *"(background)" ]] || total=$((total + secs))
		printf '%-56s %8d  %s\n' "$name" "$secs" "$([ "$rc" -eq 0 ] && echo ok || echo "failed ($rc)")"
	done
	printf '%-56s %8d\n' "total" "$total"
}

# The release a Debian metapackage (linux-image-amd64, linux-image-rt-amd64)
# points at, if that kernel is in /boot.
metapackage_kernel() {
	local dep rel
	dep=$(dpkg-query -W -f='${Depends}' "$1" 2>/dev/null || true)
	rel=$(sed -n 's/^linux-image-\([^ ,]*\).*/\1/p' <<<"$dep")
	[ -n "$rel" ] && [ -e "/boot/vmlinuz-$rel" ] && echo "$rel"
}

# The release that Debian's linux-image-amd64 metapackage points at, else the
# newest kernel in /boot that has its modules and build directory.
default_kernel() {
	local rel
	metapackage_kernel linux-image-amd64 && return
	for rel in $(find /boot -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sed 's/^vmlinuz-//' | sort -rV); do
		if [ -d "/lib/modules/$rel/kernel" ] && [ -e "/lib/modules/$rel/build/Makefile" ]; then
			echo "$rel"
			return
		fi
	done
	return 1
}

# newest_boot_kernel ERE: the newest release in /boot that ERE matches
# whole (vmlinuz-<release>) and that has its headers.
newest_boot_kernel() {
	local rel
	rel=$(find /boot -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' |
		sed 's/^vmlinuz-//' | { grep -xE "$1" || true; } | sort -V | tail -n 1)
	[ -n "$rel" ] && [ -e "/lib/modules/$rel/build/Makefile" ] && echo "$rel"
}

# matrix_kernels: the kernels of the full matrix, one per line: Debian's 6.1,
# the newest installed 6.12, 6.1 PREEMPT_RT, Debian 11's 5.10, and the
# debug kernel. Fails if one of the installed ones is missing
# (tools/install-deps --all-kernels).
matrix_kernels() {
	metapackage_kernel linux-image-amd64 || return 1
	newest_boot_kernel '6\.12\.[0-9]+\+deb12-amd64' || return 1
	metapackage_kernel linux-image-rt-amd64 || return 1
	newest_boot_kernel '5\.10\.0-[0-9]+-amd64' || return 1
	echo debug
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

# A kernel is named by its release in /boot, or "debug" for the lockdep/KASAN
# kernel that tools/build-debug-kernel builds (and caches) from the newest
# mainline source, or "debug-6.1" for the one it builds from Debian 12's 6.1.

# is_debug_kernel NAME: true for the kernels of tools/build-debug-kernel.
is_debug_kernel() {
	[ "$1" = debug ] || [ "$1" = debug-6.1 ]
}

# kernel_build_dir NAME: the build directory to compile modules against.
# A debug kernel is looked up (and built) once per run: tests/run-tests
# exports what it found as XPMEM_DEBUG_BUILD / XPMEM_DEBUG_61_BUILD, so a
# new Debian source that appears during a run cannot switch kernels under
# it, and the scripts it starts see the same one.
kernel_build_dir() {
	case $1 in
	debug) if [ -n "${XPMEM_DEBUG_BUILD:-}" ]; then echo "$XPMEM_DEBUG_BUILD"; else "$TOP/tools/build-debug-kernel"; fi ;;
	debug-6.1) if [ -n "${XPMEM_DEBUG_61_BUILD:-}" ]; then echo "$XPMEM_DEBUG_61_BUILD"; else "$TOP/tools/build-debug-kernel" --source 6.1; fi ;;
	*) echo "/lib/modules/$1/build" ;;
	esac
}

# kernel_boot_arg NAME: what tests/vm/xpmem-vm --kernel takes for it.
kernel_boot_arg() {
	if is_debug_kernel "$1"; then
		echo "$(kernel_build_dir "$1" 2>/dev/null)/arch/x86/boot/bzImage"
	else
		echo "$1"
	fi
}

# build_for_kernel NAME: configure and build everything for kernel NAME in
# $TOP/_build/NAME (a VPATH build), so several kernels can coexist.
build_for_kernel() {
	local dir=$TOP/_build/$1 kdir key
	kdir=$(kernel_build_dir "$1") || return 1
	# The kernels' builds share configure's cache (only the kernel directory
	# differs between them): 12 s instead of 21 s each. It is keyed by
	# configure itself and the variables configure refuses to see change
	# under a cache.
	key=$({ cat "$TOP/configure"
		echo "${CC:-}|${CFLAGS:-}|${CPPFLAGS:-}|${LDFLAGS:-}|${LIBS:-}|${CPP:-}"
		echo "${PKG_CONFIG:-}|${PKG_CONFIG_PATH:-}|${PKG_CONFIG_LIBDIR:-}|${CHECK_CFLAGS:-}|${CHECK_LIBS:-}"
	} | sha256sum | cut -c1-16)
	mkdir -p "$dir"
	(
		# One build of a tree at a time: run-tests builds trees in the
		# background while check-dkms or xpmem-bench may want the same.
		exec 8>"$dir/.build-lock" && flock 8 &&
		cd "$dir" &&
		# Reconfigure when configure changed or the kernel tree moved (a
		# new debug kernel lives in a new cache directory).
		if [ ! -f config.status ] || [ "$TOP/configure" -nt config.status ] ||
		   [ "$(cat .kernel-dir 2>/dev/null)" != "$kdir" ]; then
			"$TOP/configure" -q --with-linux="$kdir" \
				--cache-file="$TOP/_build/config.cache-$key" &&
				echo "$kdir" >.kernel-dir
		fi &&
		make -s -j"$(nproc)"
	) && build_harness_module "$1" "$kdir"
}

# build_harness_module NAME KDIR: the harness self-test module
# (tests/harness/), built by Kbuild in $TOP/_build/NAME/harness.
build_harness_module() {
	local dir=$TOP/_build/$1/harness f
	mkdir -p "$dir"
	for f in Kbuild warn_on_load.c; do
		ln -sf "$TOP/tests/harness/$f" "$dir/$f"
	done
	make -s -C "$2" M="$dir" modules
}
