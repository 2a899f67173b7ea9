# SPDX-License-Identifier: GPL-2.0
#
# What a guest suite (selftests/<suite>.sh) sources: the libraries of this
# folder. Sourcing defines functions and variables only; the suite then
# calls suite_init, which sets up the guest for it.
#
#   ktap.sh   KTAP output, run_test/skip_test/ktap_suite, assertions, has
#   dm.sh     modules, loop devices, dm devices, data patterns, wait_for
#   klog.sh   kernel log marks (kmark, klog, assert_klog, ...)
#   impl.sh   which implementation serves a target (ours or the C twin)
#   refuse.sh refused tables, messages and commands, reasons in the log
#   era.sh    era metadata through era_invalidate

SELFTESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOP=$(cd "$SELFTESTS_DIR/.." && pwd)
. "$SELFTESTS_DIR/lib/ktap.sh"
. "$SELFTESTS_DIR/lib/dm.sh"
. "$SELFTESTS_DIR/lib/klog.sh"
. "$SELFTESTS_DIR/lib/impl.sh"
. "$SELFTESTS_DIR/lib/refuse.sh"
. "$SELFTESTS_DIR/lib/era.sh"

# suite_init: runs in the guest as root, once at the start of a suite.
# - no udev runs in the guest: libdevmapper (dmsetup, veritysetup) creates
#   and removes the /dev/mapper nodes itself (DM_DISABLE_UDEV=1), so a
#   node exists when dmsetup returns;
# - the tests' marks in the kernel log must not be rate-limited away
#   (printk_devkmsg=ratelimit allows 10 writes to /dev/kmsg per 5 s);
# - SCRATCH (/tmp/rdm-scratch) is a tmpfs for images and copies of modules;
# - SCALE (exported, for the suites' Python helpers too): deadlines are
#   multiplied by it (RDM_SCALE, else 4 on the debug
#   kernel -- KASAN, lockdep, kmemleak make each step 3-10x slower under
#   TCG -- detected by kmemleak in debugfs, else 1);
# - fd 3 is the suite's output (note), every test's devices (rdmt-*) are
#   removed after it (KTAP_CLEANUP).
suite_init() {
	set -u
	export DM_DISABLE_UDEV=1
	echo on >/proc/sys/kernel/printk_devkmsg 2>/dev/null || true
	SCRATCH=${SCRATCH:-/tmp/rdm-scratch}
	mkdir -p "$SCRATCH"
	mountpoint -q "$SCRATCH" || mount -t tmpfs -o size=1500M tmpfs "$SCRATCH"
	[ -e /sys/kernel/debug/kmemleak ] || mountpoint -q /sys/kernel/debug ||
		mount -t debugfs none /sys/kernel/debug 2>/dev/null || true
	if [ -n "${RDM_SCALE:-}" ]; then
		SCALE=$RDM_SCALE
	elif [ -e /sys/kernel/debug/kmemleak ]; then
		SCALE=4
	else
		SCALE=1
	fi
	export SCALE
	klog_report_re
	exec 3>&1
	KTAP_CLEANUP=dm_remove_all_test_devices
}
