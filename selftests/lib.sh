# SPDX-License-Identifier: GPL-2.0
#
# Helpers for the selftests, sourced by each selftests/*.sh. Runs in the guest
# as root. Each test is a shell function run by `run_test NAME FUNC`; it fails
# by calling `fail "why"` (or by any assertion helper below failing), which
# ends the test. Output is KTAP; the suite ends with a `# totals:` line that
# selftests/run.sh adds up.

set -u
# No udev runs in the guest: let libdevmapper (dmsetup, veritysetup) create
# and remove the /dev/mapper nodes itself.
export DM_DISABLE_UDEV=1
# The tests' marks in the kernel log (dmesg_mark) must not be rate-limited
# away (printk_devkmsg=ratelimit allows 10 writes to /dev/kmsg per 5 s).
echo on >/proc/sys/kernel/printk_devkmsg 2>/dev/null || true
SELFTESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$SELFTESTS_DIR/.." && pwd)
TESTS_PASSED=0
TESTS_FAILED=0
TESTS_SKIPPED=0
TEST_NR=0
TEST_FAILURE=""

# ---- KTAP ---------------------------------------------------------------
ktap_header() { # SUITE NTESTS
	echo "KTAP version 1"
	echo "# Subtest: $1"
	echo "1..$2"
}

fail() {
	TEST_FAILURE="$*"
	return 1
}

# die WHY: fail, and say why on stderr too (fail keeps the reason only in a
# variable of the test's subshell).
die() {
	echo "FAIL: $*" >&2
	fail "$*"
}

# mod_loaded MOD, mod_refcount MOD (-1 when not loaded): from sysfs, no
# process (a process start costs 0.1-0.4 s under TCG).
mod_loaded() { [ -e "/sys/module/$1/refcnt" ]; }
mod_refcount() {
	local n=
	[ -e "/sys/module/$1/refcnt" ] && read -r n <"/sys/module/$1/refcnt"
	echo "${n:--1}"
}

# run_test NAME FUNC [ARGS...]: runs FUNC in a subshell with `set -e`, so the
# first failing command or assertion fails the test.
run_test() {
	local name=$1 out rc
	shift
	TEST_NR=$((TEST_NR + 1))
	out=$(mktemp)
	(
		set -eE
		trap 'echo "failed: line $LINENO: $BASH_COMMAND" >&2' ERR
		"$@"
	) >"$out" 2>&1
	rc=$?
	# Whatever the outcome, leave no test device behind for the next test.
	dm_remove_all_test_devices
	if [ $rc -eq 0 ]; then
		TESTS_PASSED=$((TESTS_PASSED + 1))
		echo "ok $TEST_NR $name"
	else
		TESTS_FAILED=$((TESTS_FAILED + 1))
		sed 's/^/# /' "$out"
		echo "not ok $TEST_NR $name"
	fi
	rm -f "$out"
}

suite_end() {
	echo "# totals: $TESTS_PASSED passed, $TESTS_FAILED failed, $TESTS_SKIPPED skipped"
}

# ---- assertions -----------------------------------------------------------
assert_eq() { # EXPECTED ACTUAL [WHAT]
	[ "$1" = "$2" ] || { echo "expected ${3:-value}: '$1'" >&2; echo "     got: '$2'" >&2; return 1; }
}

# assert_fails WHAT CMD...: CMD must exit non-zero.
assert_fails() {
	local what=$1
	shift
	if "$@" >/dev/null 2>&1; then
		echo "expected failure: $what ($*)" >&2
		return 1
	fi
}

# dmesg_mark: write a unique mark into the kernel log; dmesg_since_mark
# prints what was logged after it. (A line count would break once the ring
# buffer is full, e.g. after the fuzz suite: old lines leave as new ones
# come.) Without the mark in the log any more, everything is printed.
dmesg_mark() {
	DMESG_MARK="rdm-selftest-mark-$BASHPID-$RANDOM$RANDOM"
	echo "$DMESG_MARK" >/dev/kmsg
}
dmesg_since_mark() {
	dmesg | awk -v m="$DMESG_MARK" 'seen { print; next } index($0, m) { seen = 1 } { all[NR] = $0 } END { if (!seen) for (i = 1; i <= NR; i++) print all[i] }'
}

# assert_dmesg REGEX: the kernel logged a line matching REGEX since the mark.
assert_dmesg() {
	dmesg_since_mark | grep -qE -- "$1" || {
		echo "kernel log has no line matching: $1" >&2
		dmesg_since_mark | tail -n 5 | sed 's/^/  dmesg: /' >&2
		return 1
	}
}

# Kernel log marks for the suites that check the log per test (no process
# needed: a process costs ~0.4 s under TCG). kmark writes a unique line to
# /dev/kmsg; klog sets KLOG to the log after the last mark. When the mark
# has left the ring buffer (a flood of messages since; the console log that
# vm-run checks still has everything), KLOG is the whole buffer and
# KLOG_LOST=1. A suite may add a hint to the lost-mark failure of
# assert_klog in KLOG_LOST_HINT (a function printing one line).
REPORT_RE=$(<"$TOP/tools/kernel-report-patterns")
KMARK=
KMARK_T=0
kmark() {
	KMARK="$(basename "$0" .sh)-selftest mark $BASHPID-$RANDOM$RANDOM"
	KMARK_T=$SECONDS
	echo "$KMARK" >/dev/kmsg
}
klog() {
	local -a lines
	local i IFS=$'\n'
	# Line by line from the end (${l##*"$KMARK"} on the whole log costs
	# O(log size x log since the mark): seconds on a big log under TCG).
	mapfile -t lines < <(dmesg)
	for ((i = ${#lines[@]} - 1; i >= 0; i--)); do
		[[ "${lines[i]}" != *"$KMARK"* ]] || break
	done
	KLOG_LOST=0
	[ "$i" -ge 0 ] || KLOG_LOST=1
	KLOG="${lines[*]:i+1}"
}
# assert_klog REGEX: a line since the mark matches REGEX (the mark must
# still be in the log).
assert_klog() {
	klog
	if [ "$KLOG_LOST" = 1 ]; then
		[ "$(type -t "${KLOG_LOST_HINT:-}")" != function ] || "$KLOG_LOST_HINT" >&2
		die "kernel log mark lost: $KMARK"
	fi
	[[ "$KLOG" =~ $1 ]] || { echo "$KLOG" | tail -n 8 >&2; die "kernel log has no line matching: $1"; }
}
# assert_no_kernel_report: no oops, BUG, WARNING, KASAN, lockdep, ... report
# (tools/kernel-report-patterns) since the mark (in the whole buffer if the
# mark was lost).
assert_no_kernel_report() {
	klog
	if [[ "$KLOG" =~ $REPORT_RE ]]; then
		echo "$KLOG" | grep -E -A20 "$REPORT_RE" | head -n 60 >&2
		die "kernel report in the log"
	fi
}

# ---- modules and devices ------------------------------------------------
# Modules are built in the project directory, visible in the guest.
module_path() { echo "$TOP/$1.ko"; }

load_module() { # NAME (file name without .ko, e.g. dm-linear-rs)
	local mod=${1//-/_}
	grep -q "^$mod " /proc/modules || insmod "$(module_path "$1")"
}

unload_module() {
	local mod=${1//-/_}
	! grep -q "^$mod " /proc/modules || rmmod "$mod"
}

module_loaded() { grep -q "^${1//-/_} " /proc/modules; }

module_refcount() { cat "/sys/module/${1//-/_}/refcnt"; }

# Scratch block devices: loop devices over files in a tmpfs.
SCRATCH=${SCRATCH:-/tmp/rdm-scratch}
mkdir -p "$SCRATCH"
mountpoint -q "$SCRATCH" || mount -t tmpfs -o size=1500M tmpfs "$SCRATCH"

# new_loop NAME SIZE_MIB [losetup options...]: prints the loop device path.
new_loop() {
	local name=$1 size=$2
	shift 2
	truncate -s "${size}M" "$SCRATCH/$name.img"
	losetup --find --show "$@" "$SCRATCH/$name.img"
}

free_loop() { losetup -d "$1" 2>/dev/null || true; }

devnum() { # DEV: prints major:minor
	printf '%d:%d\n' "0x$(stat -L -c %t "$1")" "0x$(stat -L -c %T "$1")"
}

# pattern FILE SECTORS SEED: writes deterministic pseudo-random data.
pattern() {
	openssl enc -aes-128-ctr -pass "pass:$3" -nosalt -pbkdf2 -iter 1 </dev/zero 2>/dev/null |
		head -c $(($2 * 512)) >"$1"
}

# read_sectors DEV START COUNT: prints COUNT sectors of DEV from START.
read_sectors() {
	dd if="$1" bs=512 skip="$2" count="$3" iflag=direct status=none
}

# write_file DEV START FILE: writes FILE at sector START of DEV.
write_file() {
	dd if="$3" of="$1" bs=512 seek="$2" oflag=direct conv=notrunc status=none
}

# dm_kname NAME: sets KNAME to the dm-N kernel name of device NAME (empty,
# and false, if there is none); dm_exists NAME: whether it exists. From
# sysfs, no process.
dm_kname() {
	local f n
	KNAME=
	for f in /sys/block/dm-*/dm/name; do
		[ -e "$f" ] || continue
		read -r n <"$f"
		if [ "$n" = "$1" ]; then f=${f#/sys/block/}; KNAME=${f%%/*}; return 0; fi
	done
	return 1
}
dm_exists() { dm_kname "$1"; }

# dm_remove_all_test_devices [TIMEOUT]: removes every test device (rdmt-*),
# each dmsetup call limited to TIMEOUT seconds (60).
dm_remove_all_test_devices() {
	local f d n pass busy removed h
	# Uppers first: a device another one sits on waits for a later pass.
	# Names from sysfs (no process per device: ~0.4 s each under TCG).
	for pass in 1 2 3 4 5; do
		busy=0 removed=0
		for f in /sys/block/dm-*/dm/name; do
			[ -e "$f" ] || continue
			read -r n <"$f"
			[[ $n == rdmt-* ]] || continue
			d=${f%/dm/name}
			h=("$d"/holders/*)
			if [ -e "${h[0]}" ]; then
				busy=1
				continue
			fi
			timeout "${1:-60}" dmsetup remove --retry "$n" >/dev/null 2>&1 && removed=1
		done
		[ "$busy" = 1 ] && [ "$removed" = 1 ] || break
	done
	# A device whose table load failed (dmsetup creates the device, then
	# loads the table) has no sysfs entry if dmsetup could not remove it:
	# only dm's own list shows it.
	for n in $(dmsetup ls 2>/dev/null | awk '/^rdmt-/ {print $1}'); do
		timeout "${1:-60}" dmsetup remove --retry "$n" >/dev/null 2>&1 || true
	done
}
