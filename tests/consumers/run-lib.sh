# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# run-lib.sh - what tests/consumers/run-* share: the arguments, the counts,
# our debugfs counters, the leak check and the summary. Sourced, not run.
#
# Every run-* script is called as
#   run-NAME [--summary FILE] [--full] [--bench SIZES] PREFIX BUILD_DIR
# (PREFIX: what build-NAME built; BUILD_DIR: our build, whose libxpmem the
# consumer loads at run time) and writes "passed failed skipped" to FILE.
# --bench runs only the bandwidth table, at SIZES (bytes, comma-separated;
# tools/xpmem-bench --consumers uses it); the default is the functional
# tests and the table at 64 KiB and 4 MiB. --full: what run-tests' full
# tier adds (more of the consumer's own tests; each script says which).

# consumer_args NAME "$@": sets summary, bench, sizes, prefix and build;
# checks that the driver's counters are readable (a run without the module
# fails).
consumer_args() {
	local name=$1
	shift
	summary=''
	# shellcheck disable=SC2034 # used by the scripts that source this
	bench=0 full=0 sizes=(65536 4194304)
	while [ $# -gt 0 ]; do
		case $1 in
		--summary) summary=${2:?--summary needs a file}; shift 2 ;;
		--full)
			# shellcheck disable=SC2034 # used by the scripts that source this
			full=1
			shift
			;;
		--bench)
			# shellcheck disable=SC2034 # used by the scripts that source this
			bench=1
			# shellcheck disable=SC2034
			IFS=, read -ra sizes <<<"${2:?--bench needs sizes}"
			shift 2
			;;
		*) break ;;
		esac
	done
	prefix=${1:?usage: run-$name [--summary FILE] PREFIX BUILD_DIR}
	build=$(cd "${2:?usage: run-$name [--summary FILE] PREFIX BUILD_DIR}" && pwd)
	consumer_name=$name
	top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	stats=/sys/kernel/debug/xpmem/stats
	# The time limit of one consumer program (seconds).
	# shellcheck disable=SC2034 # used by the scripts that source this
	limit=${XPMEM_CONSUMER_TIMEOUT:-300}
	passed=0 failed=0 skipped=0
	if [ ! -r "$stats" ]; then
		echo "run-$name: $stats is not readable: no module, no test" >&2
		exit 1
	fi
	export LD_LIBRARY_PATH=$prefix/lib:$build/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	export PATH=$prefix/bin:$PATH
	echo "== $name $(cat "$prefix/version" 2>/dev/null) from $prefix"
}

# iterations SIZE: how many transfers of SIZE bytes one bandwidth run
# makes: 256 MiB in all, at least 10 and at most 500.
iterations() {
	local n=$((268435456 / $1))
	[ "$n" -ge 10 ] || n=10
	[ "$n" -le 500 ] || n=500
	echo "$n"
}

# bw_row TEST SIZE XPMEM_MBS WITHOUT_MBS ATTACHES FAULTS: one row of a
# bandwidth table, with the ratio XPMEM / without.
bw_row() {
	awk -v t="$1" -v s="$2" -v x="$3" -v n="$4" -v a="$5" -v f="$6" \
		'BEGIN { printf "%-26s %9d %14.1f %14.1f %8.2f %9d %7d", t, s, x, n, (n > 0 ? x / n : 0), a, f }'
}

# bw_compare TEST SIZE NAME WITH WITHOUT COMMAND ARG...: one row of the
# bandwidth table, appended to table. Runs "COMMAND 1 ARG..." (XPMEM on)
# and "COMMAND 0 ARG..." (off); each prints its MB/s on stdout and fails
# if the run failed. WITH and WITHOUT name the two settings in the
# messages. The XPMEM run must attach through the driver and the other
# must not; the leak check follows each. $port moves on before each run
# (commands that listen on it run in $(...), where they cannot move it).
bw_compare() {
	local test=$1 size=$2 name=$3 with=$4 without=$5 a0 f0 bw_x bw_n dx=0 df=0
	shift 5
	a0=$(stat attaches) f0=$(stat faults)
	port=$((${port:-0} + 1))
	if bw_x=$("$1" 1 "${@:2}") && [ -n "$bw_x" ]; then
		dx=$(($(stat attaches) - a0)) df=$(($(stat faults) - f0))
		if [ "$dx" -gt 0 ]; then
			ok "$name, $with ($bw_x MB/s, $dx attaches, $df faults)"
		else
			bad "$name, $with" "no attach went through the driver"
		fi
	else
		bad "$name, $with" "the run failed"
		bw_x=0 dx=0 df=0
	fi
	leaks "$name, $with"
	a0=$(stat attaches)
	port=$((${port:-0} + 1))
	if bw_n=$("$1" 0 "${@:2}") && [ -n "$bw_n" ]; then
		if [ "$(($(stat attaches) - a0))" -eq 0 ]; then
			ok "$name, $without ($bw_n MB/s)"
		else
			bad "$name, $without" "it attached through the driver"
		fi
	else
		bad "$name, $without" "the run failed"
		bw_n=0
	fi
	leaks "$name, $without"
	table+=("$(bw_row "$test" "$size" "$bw_x" "$bw_n" "$dx" "$df")")
}

# bw_table TITLE ROW...: the table, for docs/performance.md.
bw_table() {
	echo
	echo "$1 bandwidth, XPMEM against without it (same guest, same run; TCG: only the ratio means anything):"
	shift
	printf '%-26s %9s %14s %14s %8s %9s %7s\n' test size "xpmem MB/s" "without MB/s" ratio attaches faults
	printf '%s\n' "$@"
}

ok() { echo "== $1: ok"; passed=$((passed + 1)); }
bad() { echo "== $1: FAILED${2:+ ($2)}" >&2; failed=$((failed + 1)); }
# stat NAME: one of the driver's counters.
stat() { awk -v k="$1" '$1 == k { print $2 }' "$stats"; }
# leaks WHAT: the driver's leak check after WHAT ran, counted as a test.
leaks() {
	if "$top/tests/check-leaks"; then
		passed=$((passed + 1))
	else
		bad "$1 + check-leaks"
	fi
}

# wait_listening PORT: until a TCP server listens there (at most 30 s;
# clients that do not retry need it under TCG).
wait_listening() {
	for _ in $(seq 300); do
		[ -z "$(ss -Hltn "sport = :$1" 2>/dev/null)" ] || return 0
		sleep 0.1
	done
	return 1
}

# consumer_finish: the counts, into the summary; the exit status.
consumer_finish() {
	echo "$consumer_name: $passed passed, $failed failed, $skipped skipped"
	if [ -n "$summary" ] && ! echo "$passed $failed $skipped" >"$summary"; then
		echo "run-$consumer_name: cannot write $summary" >&2
		exit 1
	fi
	[ "$failed" -eq 0 ]
}
