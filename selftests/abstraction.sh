#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Selftests of the dm abstraction's run-time contracts (rust/dm/, see
# Documentation/architecture.md, "The contracts"), with the test build
# dm-hold-rs.ko (target `hold_rs`, rust/hold/hold.rs): a linear mapping whose
# destructor hands its Device to a work item that keeps flushing it after
# the target value is gone. The type-level contracts are shown by the
# compile-fail tests (scripts/compile-fail.sh), which run on the host.
. "$(dirname "$0")/lib/suite.sh"
suite_init

T=hold_rs

setup() {
	impl_load hold rust
	modprobe dm-delay
	LOOP=$(new_loop hold0 16)
	SIZE=$(blockdev --getsz "$LOOP")
}

teardown() {
	dm_remove_all_test_devices
	free_loop "$LOOP"
	impl_unload
}

open_count() { dmsetup info -c --noheadings -o open "$1" | tr -d ' '; }

# A device handle kept past the target's destructor: dm core frees the
# dm_target and the table's devices right after the destructor returns, so
# the destructor trampoline must wait for the last handle, and only then put
# the device. Writes (and so flushes) to the device below are delayed by
# dm-delay: the work item's flushes take seconds, well after the target
# value was dropped. `dmsetup remove` may only return once the work item
# let go (its log line is there when remove returns), the device below is
# closed then, and nothing is reported (KASAN on the debug kernel would see
# a use after free of the dm_target or the dm_dev).
t_device_outlives_target() {
	dmsetup create rdmt-delay --table "0 $SIZE delay $LOOP 0 0 $LOOP 0 300"
	dmsetup create rdmt-hold --table "0 $SIZE $T /dev/mapper/rdmt-delay 0 10"
	impl_assert_served rdmt-hold
	assert_eq 1 "$(open_count rdmt-delay)" "opens of the device below while mapped"
	pattern "$SCRATCH/h1" 64 hold
	write_file /dev/mapper/rdmt-hold 8 "$SCRATCH/h1"
	read_sectors "$LOOP" 8 64 | cmp - "$SCRATCH/h1"
	kmark
	dmsetup remove rdmt-hold
	assert_klog "hold_rs: destructor: the device goes on in a work item"
	assert_klog "waiting for 1 handle\(s\) of a destroyed target"
	assert_klog "hold_rs: 10 flushes of [0-9]+:[0-9]+ after the destructor \(0 failed\); releasing it"
	assert_eq 0 "$(open_count rdmt-delay)" "opens of the device below after remove"
	dmsetup remove rdmt-delay
	assert_no_kernel_report
	# Nothing holds the module any more.
	assert_eq 0 "$(mod_refcount $IMPL_MOD)" "module refcount"
}

# The same with a constructor that fails after opening the device: the
# devices it opened are put, and the reason is the target's.
t_failed_ctr_puts_devices() {
	dmsetup create rdmt-delay --table "0 $SIZE delay $LOOP 0 0 $LOOP 0 0"
	kmark
	assert_fails "bad flush count" dmsetup create rdmt-hold --table "0 $SIZE $T /dev/mapper/rdmt-delay 0 x"
	assert_klog "hold_rs: Invalid flush count"
	assert_eq 0 "$(open_count rdmt-delay)" "opens of the device below"
	dmsetup remove rdmt-delay
	assert_no_kernel_report
}

suite_tests() {
	run_test device_outlives_target t_device_outlives_target
	run_test failed_ctr_puts_devices t_failed_ctr_puts_devices
}

setup
ktap_suite abstraction suite_tests
teardown
