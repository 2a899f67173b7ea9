#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Selftests of tools/dm-swap.sh: attaching our targets (era, clone) to a device
# in use by a live table swap, under a fio verify workload on a mounted ext4.
. "$(dirname "$0")/lib/suite.sh"
suite_init

SWAP="$TOP/tools/dm-swap.sh"
N_SWAPS=${N_SWAPS:-50}
MNT=$SCRATCH/mnt

setup() {
	impl_load era rust
	impl_load clone rust
	modprobe dm-flakey
	DISK=$(new_loop attach-disk 256)
	META=$(new_loop attach-meta 8)
	CLONE_META=$(new_loop attach-clone-meta 8)
	DISKN=$(devnum "$DISK")
	SIZE=$(blockdev --getsz "$DISK")
	LINEAR="0 $SIZE linear $DISKN 0"
	mkdir -p "$MNT"
}

teardown() {
	umount "$MNT" 2>/dev/null
	dm_remove_all_test_devices
	free_loop "$DISK"
	free_loop "$META"
	free_loop "$CLONE_META"
}

fio_started() { # PID
	kill -0 "$1" 2>/dev/null || { cat "$SCRATCH/fio-swap.out" >&2; echo "fio ended" >&2; return 2; }
	[ -s "$MNT/verify.0.3" ]
}

live_type() { dmsetup table "$1" | awk '{print $3}'; }

# A mounted filesystem on a linear device over the disk, from the start.
mount_fs() {
	# Whatever an earlier failed test left behind.
	umount "$MNT" 2>/dev/null || true
	dm_remove_all_test_devices
	dmsetup create rdmt-fs --table "$LINEAR"
	mkfs.ext4 -q -F /dev/mapper/rdmt-fs
	mount /dev/mapper/rdmt-fs "$MNT"
}

umount_fs_and_check() {
	umount "$MNT"
	fsck.ext4 -n -f /dev/mapper/rdmt-fs >"$SCRATCH/fsck.out" 2>&1 || { cat "$SCRATCH/fsck.out"; fail "fsck"; }
}

t_refuses_mismatched_tables() {
	mount_fs
	# Another size, another device, another offset, an unknown target.
	assert_fails "size" "$SWAP" rdmt-fs "0 $((SIZE - 8)) era $META $DISK 128"
	assert_fails "device" "$SWAP" rdmt-fs "0 $SIZE era $DISK $META 128"
	assert_fails "offset" "$SWAP" rdmt-fs "0 $SIZE linear $DISKN 8"
	assert_fails "target" "$SWAP" rdmt-fs "0 $SIZE zero"
	assert_eq linear "$(live_type rdmt-fs)" "live table"
	umount_fs_and_check
}

# N_SWAPS swaps linear -> TABLE -> linear while fio writes and verifies files
# on the mounted filesystem; MODULE must serve TABLE (and TYPE be live).
swaps_under_fio_verify() { # TABLE TYPE
	local i table=$1 type=$2
	mount_fs
	fio --name=verify --directory="$MNT" --size=48M --nrfiles=4 --rw=randwrite --bs=4k \
		--ioengine=libaio --iodepth=8 --direct=1 --verify=crc32c --verify_backlog=256 \
		--verify_fatal=1 --verify_state_save=0 --invalidate=0 --time_based --runtime=3600 \
		--output="$SCRATCH/fio-swap.out" &
	local fio=$!
	# The swaps start once fio has laid out its files and writes.
	wait_for 60 "fio laid out its files" fio_started $fio
	for i in $(seq "$N_SWAPS"); do
		"$SWAP" rdmt-fs "$table" 2>>"$SCRATCH/swap.log" || { kill $fio; fail "swap $i to $type"; }
		[ "$(live_type rdmt-fs)" = "$type" ] || { kill $fio; fail "swap $i: $type not live"; }
		# Our module serves the table.
		impl_assert_served rdmt-fs "$type" rust || { kill $fio; fail "$type: not served by ours"; }
		"$SWAP" rdmt-fs "$LINEAR" 2>>"$SCRATCH/swap.log" || { kill $fio; fail "swap $i to linear"; }
		[ "$(live_type rdmt-fs)" = linear ] || { kill $fio; fail "swap $i: linear not live"; }
	done
	kill -0 $fio 2>/dev/null || { cat "$SCRATCH/fio-swap.out"; fail "fio ended during the swaps"; }
	kill -INT $fio
	local rc=0
	wait $fio || rc=$?
	# fio exits 0 (or 130 on SIGINT) when no I/O or verify error happened.
	grep -qE "err= *0" "$SCRATCH/fio-swap.out" || { cat "$SCRATCH/fio-swap.out"; fail "fio error (rc $rc)"; }
	grep -qiE "verify failed|bad magic|bad header|checksum mismatch" "$SCRATCH/fio-swap.out" &&
		{ cat "$SCRATCH/fio-swap.out"; fail "verify mismatch"; }
	umount_fs_and_check
}

t_swaps_era_under_fio_verify() {
	swaps_under_fio_verify "0 $SIZE era $META $DISKN 128" era
	# The era metadata saw every swap as a new era.
	era_check "$META" >/dev/null
}

# clone(no_hydration) with the disk as both destination and source: reads
# of regions not written since the attach come from the disk as before,
# writes land on the disk too, and the clone metadata records which regions
# were written (a partial write first copies its region onto itself). Back
# on linear, nothing was lost.
t_swaps_clone_under_fio_verify() {
	dd if=/dev/zero of="$CLONE_META" bs=1M count=8 status=none
	swaps_under_fio_verify "0 $SIZE clone $CLONE_META $DISKN $DISKN 128 1 no_hydration" \
		clone
	if mod_loaded dm_clone; then fail "the C dm-clone module got loaded"; fi
	# The clone metadata counted the regions fio wrote as hydrated.
	dmsetup create rdmt-cl --table "0 $SIZE clone $CLONE_META $DISKN $DISKN 128 1 no_hydration"
	local hydrated
	hydrated=$(dmsetup status rdmt-cl | awk '{split($7, h, "/"); print h[1]}')
	dmsetup remove rdmt-cl
	[ "$hydrated" -gt 0 ] || fail "no region recorded as written"
}

# A table whose constructor fails: nothing changes.
t_failed_constructor_keeps_old_table() {
	mount_fs
	echo data >"$MNT/file"; sync
	local sum; sum=$(md5sum <"$MNT/file")
	# A metadata device that is too small to format fails era's constructor.
	local tiny; tiny=$(new_loop attach-tiny 0)
	truncate -s 4096 "$SCRATCH/attach-tiny.img"; losetup -c "$tiny"
	kmark
	assert_fails "swap with a failing constructor" "$SWAP" rdmt-fs "0 $SIZE era $tiny $DISKN 128"
	assert_klog "era: Error reading metadata|era: Error opening metadata"
	assert_eq linear "$(live_type rdmt-fs)" "live table"
	assert_eq "$sum" "$(md5sum <"$MNT/file")" "file contents"
	echo more >>"$MNT/file"; sync
	free_loop "$tiny"
	umount_fs_and_check
}

# A table whose preresume fails (era's first commit, on a metadata device
# that now fails writes): dm has already dropped the old table, so the tool
# must rebuild it.
t_failed_preresume_rolls_back() {
	mount_fs
	local msize; msize=$(blockdev --getsz "$META")
	dmsetup create rdmt-meta --table "0 $msize linear $(devnum "$META") 0"
	echo data >"$MNT/file"; sync
	local sum; sum=$(md5sum <"$MNT/file")
	local era="0 $SIZE era /dev/mapper/rdmt-meta $DISKN 128"
	# Format the metadata with one good round trip.
	"$SWAP" rdmt-fs "$era"
	"$SWAP" rdmt-fs "$LINEAR"
	# Now make the metadata device fail every write (reads still work, so
	# the constructor succeeds).
	dmsetup load rdmt-meta --table "0 $msize flakey $(devnum "$META") 0 0 1000 1 error_writes"
	dmsetup resume rdmt-meta
	kmark
	local rc=0
	"$SWAP" rdmt-fs "$era" || rc=$?
	assert_eq 1 "$rc" "dm-swap exit status (failed, rolled back)"
	assert_klog "preresume failed"
	assert_eq linear "$(live_type rdmt-fs)" "live table after rollback"
	dmsetup info rdmt-fs | has 'State: *ACTIVE' || fail "device not active"
	assert_eq "$sum" "$(md5sum <"$MNT/file")" "file contents"
	echo more >>"$MNT/file"; sync
	umount_fs_and_check
}

suite_tests() {
	run_test refuses_mismatched_tables t_refuses_mismatched_tables
	run_test swaps_era_under_fio_verify t_swaps_era_under_fio_verify
	run_test swaps_clone_under_fio_verify t_swaps_clone_under_fio_verify
	run_test failed_constructor_keeps_old_table t_failed_constructor_keeps_old_table
	run_test failed_preresume_rolls_back t_failed_preresume_rolls_back
}

setup
ktap_suite attach suite_tests
teardown
