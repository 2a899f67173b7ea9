#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Selftests of the `era` target: the Rust dm-era-rs.ko (module dm_era_rs), a
# drop-in for the kernel's C dm-era (module dm_era), which registers the same
# target name and version (era v1.0.0). The suite runs against either
# implementation, chosen by ERA_IMPL:
#
#   ERA_IMPL=rust (default)  modprobe dm-persistent-data; insmod dm-era-rs.ko
#   ERA_IMPL=c               modprobe dm-era
#
#   tools/vm-run.sh -- selftests/run.sh era
#   tools/vm-run.sh -- env ERA_IMPL=c selftests/run.sh era
#
# The two can never be loaded together. Every test checks that its device is
# served by the module it expects (loaded, pinned by the table) while the
# other one is not loaded: with no `era` target registered, the kernel would
# auto-load the C dm-era for the first `era` table. The interop tests switch
# modules in the middle (remove the devices, rmmod one, load the other).
#
# What is checked is recorded state, never timings: which blocks
# era_invalidate lists since which era, what era_dump shows, the status line,
# the kernel log. Expected values are those of the C target of Linux 6.12
# (dm-era-target.c), checked against it. Where the Rust target must do
# better than C ("C quirk"), the test asserts the Rust behaviour for
# ERA_IMPL=rust and asserts (documents) the C behaviour for ERA_IMPL=c.
#
# The era tools are thin-provisioning-tools 0.9:
#   era_invalidate --written-since N --metadata-snapshot DEV  (live device;
#       lists the blocks whose era is >= N, as ranges with end exclusive)
#   era_invalidate --written-since N DEV     (device not in use)
#   era_check DEV, era_dump [--logical] DEV  (device not in use: they open it
#       O_EXCL and refuse live metadata; a copy of live metadata works)
# Caveat: era_invalidate 0.9 --metadata-snapshot only checks that a snapshot
# is held, then reads the live committed superblock (its metadata(bm, snap)
# constructor ignores snap): archived writesets and the era array, not the
# current writeset. It shows the snapshot's view only until the next
# checkpoint, so the tests query right after take_metadata_snap.
#
# Era's own helpers are in this file, the shared ones in selftests/lib/.
# Under TCG every process costs ~0.4 s (era_invalidate ~1.5 s): the helpers
# use shell builtins and sysfs where they can.
. "$(dirname "$0")/lib/suite.sh"
suite_init

# ==== the implementation under test ===========================================
# (selftests/lib/impl.sh: impl_load era IMPL, impl_assert_served NAME)
impl_from_env era

# Devices. Upper devices are named rdmt-a-*, the devices under them rdmt-z-*.
ERA=rdmt-a-era
EDEV=/dev/mapper/$ERA
BS=128           # era block size in sectors (64 KiB)
BSB=$((BS * 512))
# Command prefix of the helpers: nothing, or `timeout 60` in the tests where
# a hang is a possible failure (faults, the in-flight race). A timeout costs
# a process (~0.4 s under TCG) per command, and cannot end a process stuck
# in an uninterruptible wait anyway (vm-run's own timeout and hung-task
# check catch those).
TO=()

setup() {
	MD=$(new_loop era-md 4)      # metadata: 1024 blocks of 4 KiB
	OR=$(new_loop era-or 16)     # origin: 256 era blocks of 64 KiB
	OSZ=$(blockdev --getsz "$OR")
	ORN=$(devnum "$OR")
	MDN=$(devnum "$MD")
	NBLOCKS=$((OSZ / BS))
}

teardown() {
	era_cleanup
	free_loop "$MD"
	free_loop "$OR"
}

# era_cleanup: removes every test device, uppers first.
era_cleanup() {
	dm_remove_all_test_devices 30
}

# begin [IMPL]: start of every test: no leftovers, the implementation loaded,
# fresh (all-zero: formatted by the first table) metadata, a kernel log mark.
begin() {
	era_cleanup
	impl_load era "${1:-$ERA_IMPL}"
	wipe_md
	kmark
}

wipe_md() { dd if=/dev/zero of="$MD" bs=64k count=1 oflag=direct status=none; }

# era_create NAME MD ORIGIN [BS]
era_create() {
	"${TO[@]}" dmsetup create "$1" --table "0 $OSZ era $2 $3 ${4:-$BS}" ||
		die "dmsetup create $1 (era $2 $3 ${4:-$BS}) failed"
}

msg() { # NAME MESSAGE...: must succeed
	local n=$1
	shift
	"${TO[@]}" dmsetup message "$n" 0 "$@" || die "message '$*' to $n failed"
}

# era_status NAME: sets ST_ERA (current era), ST_SNAP (held root or -),
# ST_USED, ST_TOTAL, ST_MBS (metadata block size).
era_status() {
	local s
	s=$("${TO[@]}" dmsetup status "$1") || die "dmsetup status $1"
	set -- $s
	[ $# -eq 7 ] || die "status of $1 has $# words: '$s'"
	ST_MBS=$4 ST_USED=${5%/*} ST_TOTAL=${5#*/} ST_ERA=$6 ST_SNAP=$7
}

# wblk DEV BLOCK [COUNT]: writes COUNT (1) whole era blocks at BLOCK, in one
# direct write (dm core splits it at block boundaries).
wblk() {
	"${TO[@]}" dd if=/dev/zero of="$1" bs=$((BSB * ${3:-1})) seek=$(($2 * BSB)) count=1 \
		oflag=direct,seek_bytes conv=notrunc status=none || die "write of block $2 to $1 failed"
}

# since N [live|removed]: sets SINCE to the blocks written since era N
# ("3 5 7"), with --metadata-snapshot on the live device (default) or from
# the metadata of a removed device (selftests/lib/era.sh).
since() {
	era_written_since "$1" "$MD" "${2:-live}"
	SINCE="${ERA_SINCE[*]}"
}

assert_since() { # N "EXPECTED BLOCKS" [live|removed]
	since "$1" "${3:-live}"
	assert_eq "$2" "$SINCE" "blocks written since era $1 (${3:-live})"
}

# dump_eras: `era_dump --logical` of the (removed) metadata: DUMP_ERAS is
# "block:era ..." for every block with a non-zero era, DUMP_ERA the
# superblock's current era.
dump_eras() {
	local out line list=()
	out=$("${TO[@]}" era_dump --logical "$MD") || die "era_dump --logical $MD failed"
	DUMP_ERA=
	while IFS= read -r line; do
		if [[ "$line" =~ \<era\ block=\"([0-9]+)\"\ era=\"([0-9]+)\" ]]; then
			[ "${BASH_REMATCH[2]}" = 0 ] || list+=("${BASH_REMATCH[1]}:${BASH_REMATCH[2]}")
		elif [[ "$line" =~ \<superblock\ .*current_era=\"([0-9]+)\" ]]; then
			DUMP_ERA=${BASH_REMATCH[1]}
		fi
	done <<<"$out"
	DUMP_ERAS="${list[*]}"
}

assert_era_check() { # WHAT
	"${TO[@]}" era_check "$MD" >"$SCRATCH/era_check.out" 2>&1 ||
		{ cat "$SCRATCH/era_check.out" >&2; die "era_check $MD failed ($1)"; }
}

# /sys/block/<dev>/stat fields (from 1): 7 sectors written, 12 discards,
# 16 flushes.
stat_field() { # KNAME FIELD
	local a
	read -r -a a <"/sys/block/$1/stat"
	STAT=${a[$(($2 - 1))]}
}
inflight_writes() { local r w; read -r r w <"/sys/block/$1/inflight"; INFLIGHT=$w; }

# wait_inflight_writes KNAME: polls until dm device KNAME has a write in
# flight (fails after 20 s x SCALE: the write never got there).
has_inflight_write() { inflight_writes "$1"; [ "$INFLIGHT" -ge 1 ]; }
wait_inflight_writes() { wait_for 20 "a write in flight on $1" has_inflight_write "$1"; }

# ==== 1. known blocks across checkpoints ======================================
# Specific blocks written in each era, checkpoints between; after
# take_metadata_snap era_invalidate lists exactly the blocks last written in
# eras >= N; era_check and era_dump agree after the device is removed; the
# status line has the expected era and held root.
t_known_blocks() {
	begin
	era_create $ERA "$MD" "$OR"
	impl_assert_served $ERA
	[[ "$(dmsetup targets)" =~ (^|$'\n')era\ +v1\.0\.0($'\n'|$) ]] || die "era v1.0.0 not registered"
	era_status $ERA
	assert_eq 8 "$ST_MBS" "metadata block size"
	assert_eq 1 "$ST_ERA" "era of freshly formatted metadata after the first resume"
	assert_eq - "$ST_SNAP" "held root"
	assert_eq "0 $OSZ era $MDN $ORN $BS" "$(dmsetup table $ERA)" "table line"
	# era 1: 3 5 10; a read marks nothing.
	wblk $EDEV 3; wblk $EDEV 5; wblk $EDEV 10
	dd if=$EDEV of=/dev/null bs=$BSB skip=70 count=1 iflag=direct status=none
	msg $ERA checkpoint
	era_status $ERA; assert_eq 2 "$ST_ERA" "era after one checkpoint"
	# era 2: 10 20 21 (20-21 in one write, split at the block boundary)
	wblk $EDEV 10; wblk $EDEV 20 2
	msg $ERA checkpoint
	# era 3: 30 3
	wblk $EDEV 30; wblk $EDEV 3
	msg $ERA checkpoint
	# era 4: 40, 4 KiB inside block 60, 50-51 in one write, the last block
	wblk $EDEV 40
	dd if=/dev/zero of=$EDEV bs=4k seek=$((60 * 16 + 5)) count=1 oflag=direct status=none
	wblk $EDEV 50 2
	wblk $EDEV $((NBLOCKS - 1))
	msg $ERA take_metadata_snap
	era_status $ERA
	assert_eq 5 "$ST_ERA" "era after 3 checkpoints and take_metadata_snap"
	[[ "$ST_SNAP" =~ ^[1-9][0-9]*$ ]] || die "held metadata root '$ST_SNAP' is not a block number"
	[ "$ST_SNAP" -lt "$ST_TOTAL" ] || die "held root $ST_SNAP beyond $ST_TOTAL blocks"
	local snap=$ST_SNAP last=$((NBLOCKS - 1))
	assert_sb_copy "$snap"
	assert_since 1 "3 5 10 20 21 30 40 50 51 60 $last"
	assert_since 2 "3 10 20 21 30 40 50 51 60 $last"
	assert_since 3 "3 30 40 50 51 60 $last"
	assert_since 4 "40 50 51 60 $last"
	assert_since 5 ""
	# era_check of a copy of the live metadata (the tool refuses the live
	# device itself: it opens it O_EXCL).
	assert_fails "era_check on the live metadata device" era_check "$MD"
	dd if="$MD" of="$SCRATCH/md-copy" bs=1M iflag=direct status=none
	"${TO[@]}" era_check "$SCRATCH/md-copy" >"$SCRATCH/era_check.out" 2>&1 ||
		{ cat "$SCRATCH/era_check.out" >&2; die "era_check of a copy of the live metadata"; }
	rm -f "$SCRATCH/md-copy"
	msg $ERA drop_metadata_snap
	"${TO[@]}" dmsetup remove $ERA
	assert_era_check "after remove"
	dump_eras
	assert_eq "3:3 5:1 10:2 20:2 21:2 30:3 40:4 50:4 51:4 60:4 $last:4" "$DUMP_ERAS" \
		"era_dump --logical era array"
	# From the metadata of the removed device, without snapshot.
	assert_since 4 "40 50 51 60 $last" removed
}

# take_metadata_snap while one is held fails and keeps the held one;
# drop_metadata_snap with none held fails; a snapshot taken again lists the
# write made in between.
t_metadata_snap_messages() {
	begin
	era_create $ERA "$MD" "$OR"
	impl_assert_served $ERA
	msg $ERA take_metadata_snap
	era_status $ERA
	assert_eq 2 "$ST_ERA" "era after take_metadata_snap"
	local snap=$ST_SNAP
	[[ "$snap" =~ ^[1-9][0-9]*$ ]] || die "held metadata root '$snap' is not a block number"
	wblk $EDEV 90                        # era 2
	kmark
	assert_fails "take_metadata_snap while one is held" "${TO[@]}" dmsetup message $ERA 0 take_metadata_snap
	assert_klog "era: [a-z_]*:? ?metadata snapshot already exists"
	era_status $ERA; assert_eq "$snap" "$ST_SNAP" "held root after the failed second snapshot"
	msg $ERA drop_metadata_snap
	era_status $ERA; assert_eq - "$ST_SNAP" "held root after drop_metadata_snap"
	kmark
	assert_fails "drop_metadata_snap with none held" "${TO[@]}" dmsetup message $ERA 0 drop_metadata_snap
	assert_klog "era: [a-z_]*:? ?no snap to drop"
	msg $ERA take_metadata_snap
	era_status $ERA; [ "$ST_SNAP" != - ] || die "no held root after the second take_metadata_snap"
	assert_since 2 "90"
	msg $ERA drop_metadata_snap
	impl_assert_served $ERA
	"${TO[@]}" dmsetup remove $ERA
	assert_era_check "after the snapshot messages"
}

# A take_metadata_snap that fails (a snapshot is already held) changes
# nothing: the C target checks for a held snapshot before it rolls the era
# over, so the era stays.
t_failed_take_snap_keeps_era() {
	begin
	era_create $ERA "$MD" "$OR"
	impl_assert_served $ERA
	msg $ERA take_metadata_snap
	era_status $ERA
	local era=$ST_ERA snap=$ST_SNAP
	assert_fails "second take_metadata_snap" "${TO[@]}" dmsetup message $ERA 0 take_metadata_snap
	era_status $ERA
	assert_eq "$snap" "$ST_SNAP" "held root after a failed take_metadata_snap"
	assert_eq "$era" "$ST_ERA" "era after a failed take_metadata_snap (C: unchanged)"
	msg $ERA drop_metadata_snap
	"${TO[@]}" dmsetup remove $ERA
}

# ==== 2. remove and re-create =================================================
# The device is rebuilt from the committed metadata: eras continue, blocks of
# earlier eras are still reported; suspend/resume starts a new era; another
# block size is refused and leaves the metadata intact.
t_recreate_continues() {
	begin
	era_create $ERA "$MD" "$OR"
	impl_assert_served $ERA
	wblk $EDEV 7
	msg $ERA checkpoint
	wblk $EDEV 8
	"${TO[@]}" dmsetup remove $ERA
	dump_eras
	assert_eq 2 "$DUMP_ERA" "era on disk after remove"
	assert_eq "7:1 8:2" "$DUMP_ERAS" "eras on disk after remove"
	era_create $ERA "$MD" "$OR"
	impl_assert_served $ERA
	era_status $ERA; assert_eq 3 "$ST_ERA" "era after re-create"
	wblk $EDEV 9
	# Every resume starts a new era.
	"${TO[@]}" dmsetup suspend $ERA
	"${TO[@]}" dmsetup resume $ERA
	era_status $ERA; assert_eq 4 "$ST_ERA" "era after suspend/resume"
	wblk $EDEV 11
	msg $ERA take_metadata_snap
	era_status $ERA; assert_eq 5 "$ST_ERA" "era after take_metadata_snap"
	assert_since 1 "7 8 9 11"
	assert_since 3 "9 11"
	assert_since 4 "11"
	msg $ERA drop_metadata_snap
	"${TO[@]}" dmsetup remove $ERA
	# Same metadata, another block size: refused, the metadata unharmed.
	kmark
	assert_fails "re-create with another block size" "${TO[@]}" dmsetup create $ERA \
		--table "0 $OSZ era $MD $OR $((BS * 2))"
	assert_klog "era: changing the data block size \(from $BS to $((BS * 2))\) is not supported"
	assert_klog "era: Error reading metadata"
	era_create $ERA "$MD" "$OR"
	era_status $ERA; assert_eq 6 "$ST_ERA" "era after the second re-create"
	"${TO[@]}" dmsetup remove $ERA
	assert_era_check "after re-creates"
	dump_eras
	assert_eq "7:1 8:2 9:3 11:4" "$DUMP_ERAS" "eras on disk at the end"
}

# ==== 3. the in-flight race ===================================================
# The origin sits behind dm-delay (writes held 3 s). Block B is written once
# (marked in era E, on disk before the write is let through). A second write
# to B is then let through at once (B is marked in E) and held by dm-delay;
# while it is in flight a checkpoint starts era E+1; then it completes. B
# changed in era E+1 (its data landed after the checkpoint), so a backup
# taken as of era E+1 must list B.
#
# Rust: the checkpoint marks every block with a write in flight in the new
# era, so `era_invalidate --written-since E+1` lists B.
# C quirk: dm-era-target.c lets the write through with no record; the new
# era's writeset never gets B, and --written-since E+1 lists nothing: the
# change is lost for a backup based on era E+1 (checked: that is what the C
# target of 6.12 does; asserted for ERA_IMPL=c).
t_inflight_write_across_checkpoint() {
	TO=(timeout $((60 * SCALE)))
	begin
	modprobe dm-delay || die "modprobe dm-delay"
	local delay
	# The held write must outlast the checkpoint; on a slow guest (the
	# debug kernel beside other guests) 3 s may not do: then the attempt
	# proves nothing and runs again with a longer hold. (Not called in a
	# condition: `set -e` must stay in force inside, or die would not end
	# the test.)
	for delay in 3000 10000 30000; do
		INCONCLUSIVE=0
		inflight_attempt "$delay"
		[ "$INCONCLUSIVE" = 1 ] || return 0
		echo "# the held write ($delay ms) completed before the checkpoint finished: again, held longer"
	done
	die "the write completed before the checkpoint finished, even held 30 s"
}

# inflight_attempt DELAY-MS: one run of the test above with writes held
# DELAY-MS; sets INCONCLUSIVE=1 when the write completed before the
# checkpoint did.
inflight_attempt() {
	local k pid E B=7 rc=0 ms=$1
	"${TO[@]}" dmsetup create rdmt-z-delay --table "0 $OSZ delay $OR 0 0 $OR 0 $ms" ||
		die "dmsetup create rdmt-z-delay failed"
	wipe_md
	era_create $ERA "$MD" /dev/mapper/rdmt-z-delay
	impl_assert_served $ERA
	dm_kname $ERA; k=$KNAME
	era_status $ERA; E=$ST_ERA
	wblk $EDEV $B                       # marked in era E; takes DELAY
	wblk $EDEV $B &                     # let through at once, held DELAY
	pid=$!
	# The era device counts the write in flight from its submission (dm-delay
	# does not show it in its own counter); then leave it time to pass map.
	wait_inflight_writes "$k"
	sleep 0.5
	msg $ERA checkpoint
	era_status $ERA; assert_eq $((E + 1)) "$ST_ERA" "era after the checkpoint"
	# Still in flight once the checkpoint is done, or the test proves nothing.
	inflight_writes "$k"
	if [ "$INFLIGHT" -lt 1 ]; then
		wait $pid || true
		"${TO[@]}" dmsetup remove $ERA || die "dmsetup remove $ERA failed"
		"${TO[@]}" dmsetup remove rdmt-z-delay || die "dmsetup remove rdmt-z-delay failed"
		INCONCLUSIVE=1
		return 0
	fi
	wait $pid || rc=$?
	[ $rc -eq 0 ] || die "the in-flight write failed ($rc)"
	msg $ERA take_metadata_snap
	assert_since "$E" "$B"
	if [ "$IMPL" = rust ]; then
		assert_since $((E + 1)) "$B"
	else
		# C quirk: the write in flight at the checkpoint is not recorded.
		assert_since $((E + 1)) ""
		echo "# C target: the write in flight across the checkpoint is not in era $((E + 1))"
	fi
	msg $ERA drop_metadata_snap
	"${TO[@]}" dmsetup remove $ERA
	"${TO[@]}" dmsetup remove rdmt-z-delay
}

# ==== 4. interop ==============================================================
# assert_sb_copy LOC: metadata block LOC holds a superblock written for LOC
# (its blocknr field, and the era superblock magic).
assert_sb_copy() {
	local w
	w=$(dd if="$MD" bs=4096 skip="$1" count=1 iflag=direct status=none | od -An -tu8 -j8 -N32)
	set -- "$1" $w
	assert_eq "$1" "${2:-}" "blocknr field of the held superblock copy"
	assert_eq 2126579579 "${5:-}" "magic of the held superblock copy"
}

# interop FROM TO: metadata formatted and written by FROM (blocks in three
# eras, a snapshot held), the device removed, reopened by TO: eras continue,
# TO drops FROM's snapshot (reading FROM's superblock copy), blocks from both
# are reported; then TO leaves a snapshot held and FROM reopens the device
# and drops it. era_check passes throughout.
interop() {
	local from=$1 to=$2 snap
	begin "$from"
	era_create $ERA "$MD" "$OR"
	impl_assert_served $ERA era "$from"
	wblk $EDEV 1; wblk $EDEV 2
	msg $ERA checkpoint
	wblk $EDEV 3; wblk $EDEV 1
	msg $ERA checkpoint
	wblk $EDEV 4
	msg $ERA take_metadata_snap          # era 4
	era_status $ERA; snap=$ST_SNAP
	assert_eq 4 "$ST_ERA" "era under $from"
	wblk $EDEV 5                         # era 4
	"${TO[@]}" dmsetup remove $ERA
	assert_era_check "written by $from"

	impl_load era "$to"
	era_create $ERA "$MD" "$OR"
	impl_assert_served $ERA era "$to"
	era_status $ERA
	assert_eq 5 "$ST_ERA" "era under $to after $from"
	assert_eq "$snap" "$ST_SNAP" "$from's held root seen by $to"
	msg $ERA drop_metadata_snap
	era_status $ERA; assert_eq - "$ST_SNAP" "held root after $to dropped $from's snapshot"
	wblk $EDEV 6; wblk $EDEV 2           # era 5
	msg $ERA take_metadata_snap          # era 6
	era_status $ERA; assert_eq 6 "$ST_ERA" "era under $to"
	snap=$ST_SNAP
	assert_since 3 "2 4 5 6"
	assert_since 5 "2 6"
	wblk $EDEV 7                         # era 6
	"${TO[@]}" dmsetup remove $ERA
	assert_era_check "written by $from then $to"
	assert_sb_copy "$snap"

	# And back: FROM reopens what TO wrote, and drops TO's snapshot.
	impl_load era "$from"
	era_create $ERA "$MD" "$OR"
	impl_assert_served $ERA era "$from"
	era_status $ERA
	assert_eq 7 "$ST_ERA" "era under $from again"
	assert_eq "$snap" "$ST_SNAP" "$to's held root seen by $from"
	msg $ERA drop_metadata_snap
	wblk $EDEV 8                         # era 7
	msg $ERA take_metadata_snap          # era 8
	assert_since 6 "7 8"
	msg $ERA drop_metadata_snap
	"${TO[@]}" dmsetup remove $ERA
	assert_era_check "written by $from, $to, $from"
	dump_eras
	assert_eq 8 "$DUMP_ERA" "era on disk at the end"
	assert_eq "1:2 2:5 3:2 4:3 5:4 6:5 7:6 8:7" "$DUMP_ERAS" "eras on disk at the end"
	impl_load era "$ERA_IMPL"
}

t_interop_c_to_rust() { interop c rust; }
t_interop_rust_to_c() { interop rust c; }

# ==== 5. faults ===============================================================
# flakey_set NAME DEV SECTORS UP DOWN: dm-flakey with "UP DOWN" intervals:
# "1 0" never fails, "0 1" fails every I/O (no features: reads and writes).
flakey_set() {
	"${TO[@]}" dmsetup suspend "$1"
	"${TO[@]}" dmsetup reload "$1" --table "0 $3 flakey $2 0 $4 $5"
	"${TO[@]}" dmsetup resume "$1"
}

# rmmod_and_reload: nothing pins the module any more.
rmmod_and_reload() {
	assert_eq 0 "$(mod_refcount $IMPL_MOD)" "$IMPL_MOD refcount"
	impl_unload
	impl_load era "$IMPL"
}

# Metadata device failing under a live device: a write that needs a
# metadata commit fails with EIO, a write to a block already marked in the
# current era still succeeds, a checkpoint fails, nothing hangs, the device
# can be removed, the module unloads. Failing from the start: the
# constructor fails.
t_metadata_faults() {
	TO=(timeout $((60 * SCALE)))
	begin
	modprobe dm-flakey || die "modprobe dm-flakey"
	local msz=$((4 * 2048)) rc
	"${TO[@]}" dmsetup create rdmt-z-fmd --table "0 $msz flakey $MD 0 1 0"
	era_create $ERA /dev/mapper/rdmt-z-fmd "$OR"
	impl_assert_served $ERA
	wblk $EDEV 1
	flakey_set rdmt-z-fmd "$MD" $msz 0 1
	must_fail_eio "write needing a metadata commit" \
		dd if=/dev/zero of=$EDEV bs=$BSB seek=2 count=1 oflag=direct status=none
	# Already marked in this era: no metadata I/O needed.
	wblk $EDEV 1
	rc=0; "${TO[@]}" dmsetup message $ERA 0 checkpoint || rc=$?
	[ $rc -ne 124 ] || die "checkpoint hung on failing metadata"
	[ $rc -ne 0 ] || die "checkpoint succeeded on failing metadata"
	rc=0; "${TO[@]}" dmsetup status $ERA >/dev/null || rc=$?
	[ $rc -ne 124 ] || die "status hung on failing metadata"
	# Reads are never deferred.
	"${TO[@]}" dd if=$EDEV of=/dev/null bs=$BSB count=4 iflag=direct status=none || die "read failed"
	"${TO[@]}" dmsetup remove $ERA || die "dmsetup remove of the era device failed"
	"${TO[@]}" dmsetup remove rdmt-z-fmd
	assert_no_kernel_report
	rmmod_and_reload

	# Failing from the start: the constructor fails cleanly.
	kmark
	"${TO[@]}" dmsetup create rdmt-z-fmd --table "0 $msz flakey $MD 0 0 1"
	rc=0; "${TO[@]}" dmsetup create $ERA --table "0 $OSZ era /dev/mapper/rdmt-z-fmd $OR $BS" || rc=$?
	[ $rc -ne 124 ] || die "create hung on failing metadata"
	[ $rc -ne 0 ] || die "create succeeded on unreadable metadata"
	assert_klog "era: Error reading metadata"
	if dm_exists $ERA; then die "device left behind"; fi
	"${TO[@]}" dmsetup remove rdmt-z-fmd
	assert_no_kernel_report
	rmmod_and_reload
}

# Origin failing: writes and reads fail with EIO (a new block is still
# marked: a failed write may have changed it), the device works again when
# the origin does, the metadata stays consistent.
t_origin_faults() {
	TO=(timeout $((60 * SCALE)))
	begin
	modprobe dm-flakey || die "modprobe dm-flakey"
	"${TO[@]}" dmsetup create rdmt-z-for --table "0 $OSZ flakey $OR 0 1 0"
	era_create $ERA "$MD" /dev/mapper/rdmt-z-for
	impl_assert_served $ERA
	wblk $EDEV 3
	flakey_set rdmt-z-for "$OR" "$OSZ" 0 1
	must_fail_eio "write of a new block to a failing origin" \
		dd if=/dev/zero of=$EDEV bs=$BSB seek=4 count=1 oflag=direct status=none
	must_fail_eio "write of a marked block to a failing origin" \
		dd if=/dev/zero of=$EDEV bs=$BSB seek=3 count=1 oflag=direct status=none
	must_fail_eio "read from a failing origin" \
		dd if=$EDEV of=/dev/null bs=$BSB skip=3 count=1 iflag=direct status=none
	msg $ERA checkpoint
	flakey_set rdmt-z-for "$OR" "$OSZ" 1 0
	wblk $EDEV 5
	msg $ERA take_metadata_snap
	assert_since 1 "3 4 5"
	assert_since 2 "5"
	msg $ERA drop_metadata_snap
	"${TO[@]}" dmsetup remove $ERA || die "dmsetup remove failed"
	"${TO[@]}" dmsetup remove rdmt-z-for
	assert_era_check "after origin faults"
	assert_no_kernel_report
	rmmod_and_reload
}

# ==== 6. bad input ============================================================
# Refused tables and messages, one table of (reason, table line) rows per
# kind (refuse_tables, refuse: selftests/lib/refuse.sh): they fail, leave
# no device, and the kernel log has C's reason. Each test ends with
# bad_input_end: every reason checked, the module loaded but not in use
# (nothing leaked), C's not loaded, and it unloads and loads again.

# c_quirk_accepted TABLE: the C target accepts TABLE (documented, not wanted).
c_quirk_accepted() { accept_table "$1"; wipe_md; }

bad_input_end() {
	refusals_check
	impl_assert_idle
	rmmod_and_reload
}

# Argument count and block size.
t_bad_input_args() {
	begin
	local t="0 $OSZ era"
	refuse_tables <<-EOF
		era: Invalid argument count      | $t $MD $OR
		era: Invalid argument count      | $t
		era: Invalid argument count      | $t $MD $OR $BS extra
		era: Invalid block size          | $t $MD $OR 0
		era: Invalid block size          | $t $MD $OR 12
		era: Error parsing block size    | $t $MD $OR abc
		era: Error parsing block size    | $t $MD $OR 8x
		era: Error parsing block size    | $t $MD $OR -8
	EOF
	if [ "$IMPL" = rust ]; then
		# C's sscanf("%u") wraps 2^32 to 0 (refused as a block size) and
		# 2^32 + 8 to 8 (accepted); ours refuses both while parsing; and a
		# block larger than the origin.
		refuse_tables <<-EOF
			era: Error parsing block size   | $t $MD $OR 4294967296
			era: Error parsing block size   | $t $MD $OR 4294967304
			era: Invalid block size         | $t $MD $OR $((OSZ * 2))
		EOF
	else
		refuse_tables <<<"era: Invalid block size | $t $MD $OR 4294967296"
		# C quirk: accepted (8-sector blocks for 2^32 + 8; one block larger
		# than the origin).
		c_quirk_accepted "$t $MD $OR 4294967304"
		c_quirk_accepted "$t $MD $OR $((OSZ * 2))"
	fi
	bad_input_end
}

# Devices that cannot be opened; 8 KiB of metadata (two blocks); 2^31
# blocks (8 TiB, sparse, in 4 KiB blocks): one more than the on-disk block
# count allows (both stay below 2^31, as C's test_bit). Ours refuses it in
# the constructor; C only when resume resizes the metadata (the table load
# succeeds, the resume fails).
t_bad_input_devices() {
	begin
	local t="0 $OSZ era" small huge
	truncate -s 8K "$SCRATCH/era-small.img"
	small=$(losetup --find --show "$SCRATCH/era-small.img")
	refuse_tables <<-EOF
		era: Error opening metadata device   | $t /dev/does-not-exist $OR $BS
		era: Error opening metadata device   | $t 4095:4095 $OR $BS
		era: Error opening data device       | $t $MD /dev/does-not-exist $BS
		era: Error reading metadata          | $t $small $OR $BS
	EOF
	free_loop "$small"
	rm -f "$SCRATCH/era-small.img"
	truncate -s 8T "$SCRATCH/era-huge.img"
	huge=$(losetup --find --show "$SCRATCH/era-huge.img")
	wipe_md
	if [ "$IMPL" = rust ]; then
		refuse_tables <<<"era: Too many blocks | 0 $((1 << 34)) era $MD $huge 8"
	else
		refuse_tables <<<"era: Invalid number of origin blocks 2147483648 | 0 $((1 << 34)) era $MD $huge 8"
	fi
	free_loop "$huge"
	rm -f "$SCRATCH/era-huge.img"
	bad_input_end
}

# Messages: refused ones change nothing; names are case-insensitive
# (strcasecmp).
t_bad_input_messages() {
	begin
	era_create $ERA "$MD" "$OR"
	impl_assert_served $ERA
	era_status $ERA
	local era=$ST_ERA
	refuse "era: unsupported message 'bogus'" "message bogus" dmsetup message $ERA 0 bogus
	refuse "era: incorrect number of message arguments" "message checkpoint now" \
		dmsetup message $ERA 0 checkpoint now
	refuse "era: incorrect number of message arguments" "message take_metadata_snap 1" \
		dmsetup message $ERA 0 take_metadata_snap 1
	refuse "era: incorrect number of message arguments" "message drop_metadata_snap x y" \
		dmsetup message $ERA 0 drop_metadata_snap x y
	era_status $ERA
	assert_eq "$era" "$ST_ERA" "era after rejected messages"
	assert_eq - "$ST_SNAP" "held root after rejected messages"
	msg $ERA CheckPoint
	era_status $ERA; assert_eq $((era + 1)) "$ST_ERA" "era after CheckPoint"
	"${TO[@]}" dmsetup remove $ERA
	bad_input_end
}

# A block size that is not a power of two (24 sectors): blocks are found by
# division. A 2-sector write across the 1/2 boundary (sectors 47-48) marks
# both blocks; one at sector 240 marks block 10. io_opt is the block size.
t_non_power_of_two_block_size() {
	begin
	era_create $ERA "$MD" "$OR" 24
	impl_assert_served $ERA
	dd if=/dev/zero of=$EDEV bs=512 seek=47 count=2 oflag=direct status=none
	dd if=/dev/zero of=$EDEV bs=512 seek=240 count=1 oflag=direct status=none
	# io_opt is the block size (io_hints).
	assert_eq $((24 * 512)) "$(blockdev --getioopt $EDEV)" "io_opt"
	msg $ERA take_metadata_snap
	assert_since 1 "1 2 10"
	msg $ERA drop_metadata_snap
	"${TO[@]}" dmsetup remove $ERA
}

# ==== 7. flushes and discards =================================================
# Flushes go straight to the origin: a write with fsync, and an empty flush
# (fsync of the device with nothing written).
t_flush_passthrough() {
	begin
	era_create $ERA "$MD" "$OR"
	impl_assert_served $ERA
	local o=${OR#/dev/} before
	stat_field "$o" 16; before=$STAT
	dd if=/dev/zero of=$EDEV bs=4k seek=16 count=1 oflag=direct conv=fsync status=none
	stat_field "$o" 16
	[ "$STAT" -gt "$before" ] || die "no flush reached $OR ($before -> $STAT)"
	before=$STAT
	"${TO[@]}" sync $EDEV
	stat_field "$o" 16
	[ "$STAT" -gt "$before" ] || die "no empty flush reached $OR ($before -> $STAT)"
	msg $ERA take_metadata_snap
	assert_since 1 "1"
	msg $ERA drop_metadata_snap
	"${TO[@]}" dmsetup remove $ERA
}

# discard_test FIRST COUNT: a discard of COUNT blocks from FIRST reaches the
# origin; sets SINCE to what era_invalidate lists for the discard's era.
discard_test() {
	local o=${OR#/dev/} before
	era_create $ERA "$MD" "$OR"
	impl_assert_served $ERA
	wblk $EDEV "$1" "$2"                 # era 1
	msg $ERA checkpoint
	stat_field "$o" 12; before=$STAT
	"${TO[@]}" blkdiscard -o $(($1 * BSB)) -l $(($2 * BSB)) $EDEV
	stat_field "$o" 12
	[ "$STAT" -gt "$before" ] || die "no discard reached $OR"
	msg $ERA take_metadata_snap
	since 2
	msg $ERA drop_metadata_snap
	"${TO[@]}" dmsetup remove $ERA
}

# A discard of one block is tracked like a write.
t_discard_tracked() {
	begin
	discard_test 12 1
	assert_eq "12" "$SINCE" "blocks written since era 2 (one block discarded)"
}

# A discard of several blocks changes all of them (a loop device punches a
# hole: they read as zeroes): all must be listed. dm core hands an era target
# the whole discard in one bio (dm-era does not set max_discard_granularity,
# so discards are not split at max_io_len), and the C target marks only the
# block of its first sector.
# C quirk: blocks 21 and 22 are not listed (asserted for ERA_IMPL=c).
t_discard_multi_block_tracked() {
	begin
	discard_test 20 3
	if [ "$IMPL" = rust ]; then
		assert_eq "20 21 22" "$SINCE" "blocks written since era 2 (blocks 20-22 discarded)"
	else
		assert_eq "20" "$SINCE" "C: blocks written since era 2 (blocks 20-22 discarded)"
		echo "# C target: a 3-block discard marks only its first block"
	fi
}

# ==== 7b. writes of many blocks ===============================================
# A write covering many blocks (1 MiB = 16 blocks of 64 KiB; one from the
# middle of block 3 touches 17) marks every block it covers, whether it
# finds them all unmarked or some marked (the worker) or all marked (let
# through by map); the data reaches the origin. The C target has dm core
# split bios at block boundaries; ours takes them whole (era.md).
t_large_writes_marked_whole() {
	begin
	era_create $ERA "$MD" "$OR"
	impl_assert_served $ERA
	local E f=$SCRATCH/era-large
	era_status $ERA; E=$ST_ERA
	head -c $((2 * 1024 * 1024)) /dev/urandom >"$f"
	# 1 MiB from the middle of block 3: blocks 3-19, all new.
	dd if="$f" of=$EDEV bs=1M count=1 seek=$((3 * BSB + BSB / 2)) \
		oflag=direct,seek_bytes conv=notrunc status=none
	# 3 blocks from block 19: 19 marked already, 20 and 21 new.
	dd if="$f" of=$EDEV bs=$((3 * BSB)) count=1 skip=$((1024 * 1024)) seek=$((19 * BSB)) \
		iflag=skip_bytes oflag=direct,seek_bytes conv=notrunc status=none
	msg $ERA checkpoint
	# Next era: 1 MiB over blocks 40-55, twice (the second finds them marked).
	dd if="$f" of=$EDEV bs=1M count=1 seek=$((40 * BSB)) oflag=direct,seek_bytes conv=notrunc status=none
	dd if="$f" of=$EDEV bs=1M count=1 seek=$((40 * BSB)) oflag=direct,seek_bytes conv=notrunc status=none
	msg $ERA take_metadata_snap
	assert_since $((E + 1)) "$(seq -s ' ' 40 55)"
	assert_since "$E" "$(seq -s ' ' 3 21) $(seq -s ' ' 40 55)"
	msg $ERA drop_metadata_snap
	cmp -s <(dd if="$OR" bs=1M count=1 skip=$((40 * BSB)) iflag=direct,skip_bytes status=none) \
		<(head -c $((1024 * 1024)) "$f") || die "the 1 MiB write at block 40 is not on the origin"
	# (up to block 19, which the 3-block write then overwrote)
	local n=$((19 * BSB - (3 * BSB + BSB / 2)))
	cmp -s <(dd if="$OR" bs=$n count=1 skip=$((3 * BSB + BSB / 2)) iflag=direct,skip_bytes status=none) \
		<(head -c $n "$f") || die "the 1 MiB write at block 3.5 is not on the origin"
	"${TO[@]}" dmsetup remove $ERA
	rm -f "$f"
}

# ==== 8. fio verify with checkpoints while it writes ==========================
# fio writes 4 MiB (capped at RATE IOPS) and verifies it; a checkpoint once
# it has written something, another one later. Every block is listed since
# the first era, some since the second. When fio wrote nearly everything
# before the first checkpoint finished (a slow kernel beside other guests),
# the run proves nothing: again at half the rate (40, 20, 10 IOPS).
t_fio_verify_with_checkpoint() {
	local rate
	for rate in 40 20 10; do
		INCONCLUSIVE=0
		fio_checkpoint_attempt $rate
		[ "$INCONCLUSIVE" = 1 ] || return 0
		echo "# fio wrote $FIO_BEFORE bytes before the checkpoint finished at $rate IOPS: again, slower"
	done
	die "fio wrote nearly everything before the checkpoint finished, even at 10 IOPS"
}

fio_wrote() { stat_field "$1" 7; [ "$STAT" -gt 0 ]; }

fio_checkpoint_attempt() { # RATE
	begin
	era_create $ERA "$MD" "$OR"
	impl_assert_served $ERA
	local k pid rc=0 i size=$((4 * 1024 * 1024)) e0 all
	dm_kname $ERA; k=$KNAME
	era_status $ERA; e0=$ST_ERA
	fio --name=eraverify --filename=$EDEV --direct=1 --ioengine=libaio \
		--rw=randwrite --bs=4k --bssplit=4k/60:16k/30:64k/10 --iodepth=16 --rate_iops=,"$1" \
		--size=$size --verify=crc32c --verify_state_save=0 --verify_fatal=1 --do_verify=1 \
		--randrepeat=1 --output-format=terse >"$SCRATCH/fio.out" 2>&1 &
	pid=$!
	wait_for 30 "a write from fio" fio_wrote "$k"
	msg $ERA checkpoint
	stat_field "$k" 7
	FIO_BEFORE=$((STAT * 512))
	# At least 1 MiB still to write after the checkpoint (else it proves
	# nothing): the new era gets writes.
	[ "$FIO_BEFORE" -lt $((size - 1024 * 1024)) ] || INCONCLUSIVE=1
	msg $ERA checkpoint
	wait $pid || rc=$?
	[ $rc -eq 0 ] || { cat "$SCRATCH/fio.out" >&2; die "fio failed ($rc)"; }
	msg $ERA take_metadata_snap
	# Every block fio wrote was written since the first era; some after
	# the first checkpoint.
	all=
	for ((i = 0; i < size / BSB; i++)); do all+="${all:+ }$i"; done
	assert_since "$e0" "$all"
	since $((e0 + 1))
	[ -n "$SINCE" ] || [ "$INCONCLUSIVE" = 1 ] || die "nothing written after the first checkpoint"
	msg $ERA drop_metadata_snap
	"${TO[@]}" dmsetup remove $ERA
	assert_era_check "after fio"
}

# Ours answers status and messages while suspended. The C target sends them
# to its stopped worker: they block until the next resume, so this is not
# run with C.
t_suspended_status_and_messages() {
	begin
	era_create $ERA "$MD" "$OR"
	impl_assert_served $ERA
	if [ "$IMPL" = c ]; then
		echo "# C target: status/messages while suspended block until resume; not run"
		"${TO[@]}" dmsetup remove $ERA
		return 0
	fi
	wblk $EDEV 4
	"${TO[@]}" dmsetup suspend $ERA
	era_status $ERA; assert_eq 1 "$ST_ERA" "era while suspended"
	msg $ERA take_metadata_snap
	era_status $ERA; assert_eq 2 "$ST_ERA" "era after take_metadata_snap while suspended"
	assert_since 1 "4"
	"${TO[@]}" dmsetup resume $ERA
	era_status $ERA; assert_eq 3 "$ST_ERA" "era after resume"
	msg $ERA drop_metadata_snap
	"${TO[@]}" dmsetup remove $ERA
	assert_era_check "after messages while suspended"
}

# ==== 9. beyond C ==========================================================
# `dmsetup reload` builds the new table (reading the metadata) while the old
# one still serves writes; the old table commits in its postsuspend. Ours
# reads the metadata again when the new table first resumes, so a write made
# between the reload and the resume is kept. The C target loses it.
t_write_between_reload_and_resume() {
	begin
	era_create $ERA "$MD" "$OR"
	impl_assert_served $ERA
	wblk $EDEV 3
	"${TO[@]}" dmsetup reload $ERA --table "0 $OSZ era $MD $OR $BS"
	wblk $EDEV 5
	"${TO[@]}" dmsetup resume $ERA
	msg $ERA take_metadata_snap
	# The writes were made in era 1 (the first resume).
	since 1
	if [ "$ERA_IMPL" = rust ]; then
		assert_eq "3 5" "$SINCE" "blocks written, one of them between reload and resume"
	else
		# C: the new table's metadata predates the write to block 5.
		assert_eq "3" "$SINCE" "C forgets the write between reload and resume"
	fi
	msg $ERA drop_metadata_snap
	"${TO[@]}" dmsetup remove $ERA
	assert_era_check "after a reload"
}

# A table longer than the origin device is refused (C accepts it: its
# iterate_devices reports the whole origin instead of the mapped length).
t_table_longer_than_origin() {
	begin
	kmark
	if [ "$ERA_IMPL" = rust ]; then
		assert_fails "era table longer than the origin" "${TO[@]}" dmsetup create $ERA \
			--table "0 $((OSZ + BS)) era $MD $OR $BS"
		assert_klog "too small for target"
	else
		"${TO[@]}" dmsetup create $ERA --table "0 $((OSZ + BS)) era $MD $OR $BS"
	fi
	"${TO[@]}" dmsetup remove $ERA 2>/dev/null || true
}

suite_tests() {
	echo "# ERA_IMPL=$ERA_IMPL"
	run_test known_blocks t_known_blocks
	run_test metadata_snap_messages t_metadata_snap_messages
	run_test failed_take_snap_keeps_era t_failed_take_snap_keeps_era
	run_test recreate_continues t_recreate_continues
	run_test inflight_write_across_checkpoint t_inflight_write_across_checkpoint
	run_test interop_c_to_rust t_interop_c_to_rust
	run_test interop_rust_to_c t_interop_rust_to_c
	run_test metadata_faults t_metadata_faults
	run_test origin_faults t_origin_faults
	run_test bad_input_args t_bad_input_args
	run_test bad_input_devices t_bad_input_devices
	run_test bad_input_messages t_bad_input_messages
	run_test non_power_of_two_block_size t_non_power_of_two_block_size
	run_test flush_passthrough t_flush_passthrough
	run_test discard_tracked t_discard_tracked
	run_test discard_multi_block_tracked t_discard_multi_block_tracked
	run_test large_writes_marked_whole t_large_writes_marked_whole
	run_test fio_verify_with_checkpoint t_fio_verify_with_checkpoint
	run_test suspended_status_and_messages t_suspended_status_and_messages
	run_test write_between_reload_and_resume t_write_between_reload_and_resume
	run_test table_longer_than_origin t_table_longer_than_origin
}

setup
ktap_suite era suite_tests
teardown
