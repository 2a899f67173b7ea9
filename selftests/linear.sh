#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Selftests of the Rust linear target (`linear_rs`, module dm-linear-rs),
# compared with the built-in C `linear` target on the same devices.
. "$(dirname "$0")/lib/suite.sh"
suite_init

T=linear_rs

setup() {
	impl_load linear rust
	LOOP=$(new_loop lin0 64)               # 131072 sectors
	LOOPB=$(new_loop lin1 16)
	LOOPN=$(devnum "$LOOP")
	SIZE=$(blockdev --getsz "$LOOP")
}

teardown() {
	dm_remove_all_test_devices
	free_loop "$LOOP"
	free_loop "$LOOPB"
}

t_registered() {
	impl_assert_registered
}

t_write_through_read_raw() {
	dmsetup create rdmt-a --table "0 2048 $T $LOOP 1024"
	impl_assert_served rdmt-a
	assert_eq 2048 "$(blockdev --getsz /dev/mapper/rdmt-a)" "size in sectors"
	pattern "$SCRATCH/p1" 2048 one
	write_file /dev/mapper/rdmt-a 0 "$SCRATCH/p1"
	read_sectors "$LOOP" 1024 2048 | cmp - "$SCRATCH/p1"
	# Nothing written outside the mapped range.
	[ "$(read_sectors "$LOOP" 0 1024 | tr -d '\0' | wc -c)" = 0 ] || fail "data before the range"
	[ "$(read_sectors "$LOOP" 3072 1024 | tr -d '\0' | wc -c)" = 0 ] || fail "data after the range"
	dmsetup remove rdmt-a
}

t_write_raw_read_through() {
	pattern "$SCRATCH/p2" 4096 two
	write_file "$LOOP" 8192 "$SCRATCH/p2"
	dmsetup create rdmt-b --table "0 4096 $T $LOOP 8192"
	impl_assert_served rdmt-b
	read_sectors /dev/mapper/rdmt-b 0 4096 | cmp - "$SCRATCH/p2"
	# Unaligned small reads map to the right sectors too.
	read_sectors /dev/mapper/rdmt-b 7 3 | cmp - <(dd if="$SCRATCH/p2" bs=512 skip=7 count=3 status=none)
	dmsetup remove rdmt-b
}

# Two targets in one table: the second starts at sector 1000 of the mapped
# device (exercises dm_target_offset), mapped from two different devices.
t_multi_target_table() {
	pattern "$SCRATCH/p3" 3000 three
	printf '0 1000 %s %s 0\n1000 2000 %s %s 500\n' $T "$LOOP" $T "$LOOPB" |
		dmsetup create rdmt-m
	impl_assert_served rdmt-m
	write_file /dev/mapper/rdmt-m 0 "$SCRATCH/p3"
	read_sectors "$LOOP" 0 1000 | cmp - <(head -c $((1000 * 512)) "$SCRATCH/p3")
	read_sectors "$LOOPB" 500 2000 | cmp - <(tail -c +$((1000 * 512 + 1)) "$SCRATCH/p3")
	dmsetup remove rdmt-m
}

# Table and status lines are the C target's, but for the name.
t_table_status_match_c() {
	dmsetup create rdmt-r --table "0 2048 $T $LOOP 4096"
	dmsetup create rdmt-c --table "0 2048 linear $LOOP 4096"
	assert_eq "0 2048 $T $LOOPN 4096" "$(dmsetup table rdmt-r)" "table"
	assert_eq "$(dmsetup table rdmt-c | sed "s/ linear / $T /")" "$(dmsetup table rdmt-r)" "table vs C"
	assert_eq "$(dmsetup status rdmt-c | sed "s/ linear / $T /")" "$(dmsetup status rdmt-r)" "status vs C"
	assert_eq "0 2048 $T " "$(dmsetup status rdmt-r)" "status"
	dmsetup remove rdmt-r
	dmsetup remove rdmt-c
}

# fio writes with verification through the target on both vCPUs.
t_fio_verify() {
	dmsetup create rdmt-f --table "0 65536 $T $LOOP 2048"
	impl_assert_served rdmt-f
	fio --name=verify --filename=/dev/mapper/rdmt-f --direct=1 --ioengine=libaio \
		--rw=randwrite --bs=4k --bssplit=4k/50:16k/30:64k/20 --iodepth=16 --numjobs=1 \
		--size=32M --verify=crc32c --verify_state_save=0 --verify_fatal=1 --do_verify=1 --randrepeat=1 \
		--output-format=terse >"$SCRATCH/fio.out" 2>&1 || { cat "$SCRATCH/fio.out"; fail "fio"; }
	dmsetup remove rdmt-f
}

# Limits of the underlying device are stacked through iterate_devices: a
# 4096-byte-sector device gives a 4096-byte-sector mapped device.
t_iterate_devices_stacks_limits() {
	local big
	big=$(new_loop lin4k 8 --sector-size 4096)
	dmsetup create rdmt-l --table "0 8192 $T $big 0"
	assert_eq 4096 "$(blockdev --getss /dev/mapper/rdmt-l)" "logical block size"
	dmsetup remove rdmt-l
	free_loop "$big"
}

flushes() { awk '{print $16}' "/sys/block/$(basename "$1")/stat"; }
discards() { awk '{print $12}' "/sys/block/$(basename "$1")/stat"; }

# Flushes reach the device both when dm core bypasses map (all targets of
# the table allow it) and when they go through our map (a table that also
# has a target without the bypass: here the C `zero` target).
t_flush_passthrough() {
	local before after
	dmsetup create rdmt-fl --table "0 2048 $T $LOOP 0"
	before=$(flushes "$LOOP")
	dd if=/dev/zero of=/dev/mapper/rdmt-fl bs=4k count=1 oflag=direct conv=fsync status=none
	after=$(flushes "$LOOP")
	[ "$after" -gt "$before" ] || fail "no flush reached $LOOP ($before -> $after)"
	dmsetup remove rdmt-fl
	modprobe dm-zero 2>/dev/null || true
	printf '0 2048 %s %s 0\n2048 2048 zero\n' $T "$LOOP" | dmsetup create rdmt-fz
	before=$(flushes "$LOOP")
	dd if=/dev/zero of=/dev/mapper/rdmt-fz bs=4k count=1 oflag=direct conv=fsync status=none
	after=$(flushes "$LOOP")
	[ "$after" -gt "$before" ] || fail "no flush through map reached $LOOP ($before -> $after)"
	dmsetup remove rdmt-fz
}

t_discard_passthrough() {
	local before after
	pattern "$SCRATCH/p5" 2048 five
	write_file "$LOOP" 20480 "$SCRATCH/p5"
	dmsetup create rdmt-d --table "0 2048 $T $LOOP 20480"
	before=$(discards "$LOOP")
	blkdiscard -o 0 -l $((1024 * 512)) /dev/mapper/rdmt-d
	after=$(discards "$LOOP")
	[ "$after" -gt "$before" ] || fail "no discard reached $LOOP"
	# The loop device punches a hole: the first half reads as zeroes, the
	# second half still holds the pattern.
	[ "$(read_sectors "$LOOP" 20480 1024 | tr -d '\0' | wc -c)" = 0 ] || fail "discarded range not zero"
	read_sectors "$LOOP" 21504 1024 | cmp - <(tail -c +$((1024 * 512 + 1)) "$SCRATCH/p5")
	dmsetup remove rdmt-d
}

t_suspend_resume_reload() {
	pattern "$SCRATCH/p6" 1024 six
	write_file "$LOOP" 30000 "$SCRATCH/p6"
	dmsetup create rdmt-s --table "0 1024 $T $LOOP 0"
	dmsetup suspend rdmt-s
	dmsetup info rdmt-s | has 'State: *SUSPENDED' || fail "not suspended"
	dmsetup resume rdmt-s
	dmsetup info rdmt-s | has 'State: *ACTIVE' || fail "not active"
	# Swap the table for one at another offset: data follows.
	dmsetup reload rdmt-s --table "0 1024 $T $LOOP 30000"
	dmsetup resume rdmt-s
	assert_eq "0 1024 $T $LOOPN 30000" "$(dmsetup table rdmt-s)" "reloaded table"
	read_sectors /dev/mapper/rdmt-s 0 1024 | cmp - "$SCRATCH/p6"
	dmsetup remove rdmt-s
}

t_module_pinned_while_in_use() {
	dmsetup create rdmt-p --table "0 1024 $T $LOOP 0"
	assert_fails "rmmod while a table uses the target" rmmod dm_linear_rs
	dmsetup remove rdmt-p
	rmmod dm_linear_rs
	if mod_loaded dm_linear_rs; then fail "still loaded"; fi
	# And it comes back.
	impl_load linear rust
	dmsetup create rdmt-p --table "0 1024 $T $LOOP 0"
	impl_assert_served rdmt-p
	dmsetup remove rdmt-p
}

# Refused tables (refuse_tables, selftests/lib/refuse.sh): dmsetup create
# fails, leaves no device, the kernel log has the reason; the built-in C
# linear refuses the same lines with the same reasons.
t_bad_input() {
	local rows
	rows=$(cat <<-EOF
		$T: Invalid argument count   | 0 8 $T $LOOP
		$T: Invalid argument count   | 0 8 $T $LOOP 0 extra
		$T: Invalid argument count   | 0 8 $T
		$T: Invalid device sector    | 0 8 $T $LOOP abc
		$T: Invalid device sector    | 0 8 $T $LOOP 12abc
		$T: Invalid device sector    | 0 8 $T $LOOP -1
		$T: Invalid device sector    | 0 8 $T $LOOP 0x10
		$T: Device lookup failed     | 0 8 $T /dev/does-not-exist 0
		$T: Device lookup failed     | 0 8 $T 4095:4095 0
		# Past the end of the device: refused by dm core (iterate_devices).
		too small for target         | 0 $((SIZE + 8)) $T $LOOP 0
		too small for target         | 0 8 $T $LOOP $SIZE
	EOF
	)
	refuse_tables <<<"$rows"
	refuse_tables <<<"${rows//$T/linear}"
	# Overflow: the C target's sscanf wraps 2^64 to 0 and accepts it; ours
	# refuses it (the one place we are stricter than C).
	refuse_tables <<<"$T: Invalid device sector | 0 8 $T $LOOP 18446744073709551616"
	refusals_check
	# Nothing leaked: the module is unused and unloads.
	impl_assert_idle
	rmmod dm_linear_rs
	impl_load linear rust
}

suite_tests() {
	run_test registered t_registered
	run_test write_through_read_raw t_write_through_read_raw
	run_test write_raw_read_through t_write_raw_read_through
	run_test multi_target_table t_multi_target_table
	run_test table_status_match_c t_table_status_match_c
	run_test fio_verify t_fio_verify
	run_test iterate_devices_stacks_limits t_iterate_devices_stacks_limits
	run_test flush_passthrough t_flush_passthrough
	run_test discard_passthrough t_discard_passthrough
	run_test suspend_resume_reload t_suspend_resume_reload
	run_test module_pinned_while_in_use t_module_pinned_while_in_use
	run_test bad_input t_bad_input
}

setup
ktap_suite linear suite_tests
teardown
