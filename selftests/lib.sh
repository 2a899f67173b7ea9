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
	echo "# totals: $TESTS_PASSED passed, $TESTS_FAILED failed"
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

dm_remove_all_test_devices() {
	local d
	for d in $(dmsetup ls 2>/dev/null | awk '/^rdmt-/ {print $1}'); do
		dmsetup remove --retry "$d" >/dev/null 2>&1 || true
	done
}
