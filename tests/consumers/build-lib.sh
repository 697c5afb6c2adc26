# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# build-lib.sh - what tests/consumers/build-* share: the source from
# Debian, the cache key, our library staged as a user installs it, and the
# cache entry's bookkeeping. Sourced, not run.
#
# The cache lives outside the clone, where the guests can read it (the host
# root is theirs read-only; /root, /tmp and /var/tmp are not):
#   ${XPMEM_CONSUMER_CACHE:-/var/cache/xpmem-consumers}/<name>-<version>-<key>/
# keyed by the consumer's source version, its configure options, and our
# public headers (their code, not their comments) and library ABI
# (VERSION's libxpmem_so_version). A hit costs the source look-up only
# (apt, a few seconds). A miss keeps its build log there as build.log.

# consumer_begin NAME PACKAGE SUITE BUILD_DIR OPTION...
#   Fetches PACKAGE's source from SUITE and sets:
#     src      the unpacked tree
#     version  Debian's version, or upstream's plus "-upstream" when the
#              archive had only the upstream tarball (no Debian patches)
#     prefix   the cache entry, the consumer's install prefix
#     log      the build log in it
#     work     a scratch directory, removed on exit
#   If the entry is complete, prints it and exits 0: the caller is done.
#   Otherwise stages BUILD_DIR's "make install" and sets xpmem_prefix to
#   it, the directory a user would pass as --with-xpmem (their /usr/local).
consumer_begin() {
	local name=$1 package=$2 suite=$3 build abi key
	build=$(cd "$4" && pwd)
	shift 4
	consumer_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	consumer_name=$name
	local cache=${XPMEM_CONSUMER_CACHE:-/var/cache/xpmem-consumers}

	mkdir -p "$cache"
	work=$(mktemp -d "$cache/.work.XXXXXX")
	# shellcheck disable=SC2064 # $work is fixed from here on
	trap "rm -rf '$work'" EXIT

	src=$("$consumer_top/tools/consumer-source" "$package" "$suite" "$work/src")
	if [ -f "$src/debian/changelog" ]; then
		version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
	else
		version=${src##*/"$package"-}-upstream
	fi
	abi=$(sed -n 's/^libxpmem_so_version=//p' "$consumer_top/VERSION")
	# The headers without their comments: a reworded comment changes no
	# consumer's build.
	key=$( { printf '%s\n' "$version" "$@" "$abi"
		gcc -fpreprocessed -dD -E -P "$consumer_top/include/xpmem.h" \
			"$consumer_top/include/uapi/xpmem_ioctl.h"; } | sha256sum | cut -c1-12)
	prefix=$cache/$name-$version-$key
	log=$prefix/build.log
	if [ -f "$prefix/done" ]; then
		echo "build-$name: cached: $prefix" >&2
		echo "$prefix"
		exit 0
	fi

	echo "build-$name: building $package $version ($suite) into $prefix" >&2
	consumer_start=$(date +%s)
	rm -rf "$prefix"
	mkdir -p "$prefix"
	make -s -C "$build" install DESTDIR="$work/xpmem" >"$work/xpmem-install.log" 2>&1 ||
		{ cat "$work/xpmem-install.log" >&2; exit 1; }
	xpmem_prefix=$work/xpmem$(sed -n 's/^prefix = //p' "$build/Makefile")
	# A libtool archive names its final libdir, not this staging copy:
	# libtool would then link a consumer's programs against the wrong (or
	# no) libxpmem. Debian's packages drop .la files for the same reason.
	rm -f "$xpmem_prefix"/lib/*.la
}

# consumer_run DIR COMMAND...: one build step, in DIR, logged; a failure
# ends the build with the log's tail. (One call per step: "set -e" does not
# hold inside a subshell that is followed by "||".)
consumer_run() {
	local dir=$1
	shift
	mkdir -p "$dir"
	echo "+ (cd $dir && $*)" >>"$log"
	(cd "$dir" && "$@") >>"$log" 2>&1 && return
	tail -40 "$log" >&2
	echo "build-$consumer_name: failed: $*; the log is $log" >&2
	exit 1
}

# consumer_done: marks the entry complete and prints it.
consumer_done() {
	local seconds=$(($(date +%s) - consumer_start))
	echo "$version" >"$prefix/version"
	echo "$seconds" >"$prefix/build-seconds"
	touch "$prefix/done"
	echo "build-$consumer_name: built in $seconds s" >&2
	echo "$prefix"
}
