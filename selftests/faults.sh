#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Faults of the devices under our four targets (hardening): dm-flakey and
# dm-dust between each target and its loop devices, for read errors, write
# errors, dropped writes and intermittent failures. What must hold is what
# holds for the C targets of Linux 6.12: an error reaches the submitter as
# EIO (or the target goes to its fail mode, as C's would), a write that
# succeeded reads back once the device is healthy again, no read returns
# wrong data, nothing hangs (every step has a deadline), the devices can be
# removed, the kernel reports nothing (no oops, WARNING, hung task).
#
#   tools/vm-run.sh -- selftests/run.sh faults
#   (FAULTS_ONLY=REGEX: only the tests whose names match)
#
# The matrix, and where the other suites already test a cell:
#
#              read errors       write errors     dropped writes   intermittent
#   linear_rs  flakey, dust      flakey, dust     flakey           flakey (all I/O)
#   verity     data: dust,       (read-only)      (read-only)      flakey on data
#              flakey; hash: dust
#   era        origin: dust      origin: dust     origin, metadata flakey on origin
#              (era.sh: origin and metadata failing all I/O, a constructor
#              over failing metadata)
#   clone      dest: flakey      (clone.sh: dest, dest, metadata   flakey on source
#              (clone.sh: source metadata)                         and dest
#              dust, metadata)
#
# The intermittent tests run a checking workload (the helper's `rw`: random
# 4 KiB O_DIRECT reads and writes, each write of fresh random data; for each
# block it keeps what the block may hold: the last write that succeeded, or
# after a failed write either that or the failed one) until success and EIO
# have both been seen many times for writes and for reads; then the fault
# is healed and every block must read back what it may hold.
#
# Each test is a list of steps run by one Python process (selftests/faults.py):
# under TCG starting a process costs 0.3 to 1 s, and a test makes dozens of
# table swaps, reads and writes. The steps make the DM ioctls dmsetup makes
# (DM_DEV_CREATE, DM_TABLE_LOAD, DM_DEV_SUSPEND, DM_TARGET_MSG,
# DM_TABLE_STATUS, DM_DEV_REMOVE) and O_DIRECT I/O in 4 KiB blocks:
#
#   create[-ro] NAME TABLE      a device (read-only table), /dev/mapper/NAME
#   swap[-ro] NAME TABLE        load TABLE, suspend, resume
#   remove NAME                 msg NAME WORDS...  (a target message)
#   served NAME TYPE MOD [OTHERS]  the live table is TYPE, MOD is pinned,
#                               none of OTHERS (a,b,...) is loaded
#   read DEV BLK N = FILE FBLK  N blocks at BLK read as FILE's from FBLK
#   read DEV BLK N EIO          the read fails with EIO
#   read2 ...                   as read, one EIO first allowed
#   write DEV BLK N FILE FBLK [EIO]   writes FILE's blocks (must fail: EIO)
#   status NAME REGEX           the status line (type and words) matches
#   rw DEV FIRST N INIT [reads-fail] [ok=FILE] [ro=CLONE]  the checking
#                               workload (ro=: see t_clone_intermittent)
#   verify DEV                  after rw: every block holds what it may
#   reopen-if-ro NAME TABLE     clone NAME in read-only mode: re-created
#   reader DEV IMAGE            random reads: EIO or the image's data, both
#   wait-hydrated NAME          clone: every region hydrated (120 s at most)
#   no-writes NAME              nothing was ever written to device NAME
#   sleep SECONDS
#
# Every test proves that our module served the device (`served`).
. "$(dirname "$0")/lib/suite.sh"
suite_init

PY=(python3 -I -S)
[ -x /usr/bin/python3 ] && PY=(/usr/bin/python3 -I -S)
DMIO=$SELFTESTS_DIR/faults.py
# Deadline of the other commands touching a device under test.
TO=(timeout $((120 * SCALE)))

# served NAME: the helper's step that checks NAME is served by the module
# begin loaded (the proof of impl_assert_served, selftests/lib/impl.sh).
served() { local o=${IMPL_OTHERS% }; echo "served $1 $IMPL_TYPE $IMPL_MOD ${o// /,}"; }

# end_test [REGEX...]: the kernel logged no report since the mark (and a
# line matching each REGEX).
end_test() {
	local re
	assert_no_kernel_report
	for re in "$@"; do
		[[ "$KLOG" =~ $re ]] || { echo "$KLOG" | tail -n 8 >&2; die "kernel log has no line matching: $re"; }
	done
}

# cleanup: removes every test device, uppers (rdmt-a-*) first, the loop
# devices the tests made (listed in $LOOPS) and their images.
LOOPS=$SCRATCH/flt-loops
cleanup() {
	local f loops=()
	dm_remove_all_test_devices
	[ ! -s "$LOOPS" ] || mapfile -t loops <"$LOOPS"
	[ ${#loops[@]} = 0 ] || losetup -d "${loops[@]}" 2>/dev/null || true
	: >"$LOOPS"
	for f in "$SCRATCH"/flt-t-*; do
		[ ! -e "$f" ] || { rm -f "$SCRATCH"/flt-t-*; break; }
	done
}

# begin TARGET: start of every test: no leftovers, our module loaded, a
# kernel log mark.
begin() {
	cleanup
	impl_load "$1" rust
	kmark
}

# loop NAME MIB [COPY-OF]: a loop device over $SCRATCH/flt-t-NAME (a copy
# of COPY-OF, else zeroes), in LOOP; roloop FILE: a read-only one.
loop() {
	if [ -n "${3:-}" ]; then
		cp "$3" "$SCRATCH/flt-t-$1" || die "cp $3"
	else
		truncate -s "$2M" "$SCRATCH/flt-t-$1"
	fi
	LOOP=$(losetup --find --show "$SCRATCH/flt-t-$1") || die "losetup $1"
	echo "$LOOP" >>"$LOOPS"
}
roloop() {
	LOOP=$(losetup --find --show --read-only "$1") || die "losetup $1"
	echo "$LOOP" >>"$LOOPS"
}

# verity_loops: VD and VH, read-only loop devices over the data and the
# hash image; clone_loops: SRC (read-only, the data), DST (a copy of the
# garbage) and MD (4 MiB of zeroes).
verity_loops() {
	roloop "$DATA"
	VD=$LOOP
	roloop "$VHIMG"
	VH=$LOOP
}
clone_loops() {
	roloop "$DATA"
	SRC=$LOOP
	loop cl-dst 8 "$GARB"
	DST=$LOOP
	loop cl-md 4
	MD=$LOOP
}

# steps STEP...: runs the steps (see the top) in one helper process, with a
# deadline; dies with the helper's output if one fails, else notes what the
# workloads report.
steps() {
	local out rc=0
	out=$("${PY[@]}" "$DMIO" "$@" 2>&1) || rc=$?
	[ $rc -ne 142 ] || die "steps hung (no result in 600 s): $out"
	[ $rc -eq 0 ] || die "$out"
	[ -z "$out" ] || note "${out//$'\n'/$'\n'# }"
}

# The helper that runs the steps is selftests/faults.py.

# ==== shared images ===========================================================
# Made once (pseudo-random data is slow to make under TCG): DATA, 8 MiB of
# pseudo-random data (2048 blocks of 4 KiB; initial content of the linear
# and era devices, the clone source, the verity data); GARB, 8 MiB of other
# data (the clone destination's initial content: a region wrongly taken for
# hydrated reads it); PC, 64 KiB (16 blocks) of pieces to write; the verity
# hash of DATA (VHIMG), made by veritysetup: sha256, 128 hashes per 4 KiB
# block, so the hash device holds the superblock (block 0), level 1 (block
# 1), level 0 (blocks 2-17: the hash of data block B is in block 2 + B/128).
S=16384 # sectors in 8 MiB
suite_setup() {
	DATA=$SCRATCH/flt-data GARB=$SCRATCH/flt-garbage PC=$SCRATCH/flt-pieces VHIMG=$SCRATCH/flt-vhash
	pattern "$DATA" $S faults-data
	pattern "$GARB" $S faults-garbage
	pattern "$PC" 128 faults-pieces
	truncate -s 1M "$VHIMG"
	local k v
	veritysetup format "$DATA" "$VHIMG" >"$SCRATCH/flt-format" 2>&1 ||
		{ cat "$SCRATCH/flt-format"; echo "# veritysetup format failed"; }
	ROOT= SALT=
	while IFS=: read -r k v; do
		v=${v//[[:space:]]/}
		case "$k" in "Root hash") ROOT=$v ;; Salt) SALT=$v ;; esac
	done <"$SCRATCH/flt-format"
}

# ==== linear_rs ===============================================================
L=/dev/mapper/rdmt-a-lin

# flakey under linear_rs, switched between modes while the linear_rs device
# stays up: error_reads (reads EIO, writes land), error_writes (writes EIO,
# reads return what is there), drop_writes (writes succeed and never land,
# as for any target above flakey); healthy again, what landed is there.
t_linear_flakey_modes() {
	begin linear
	loop lin 8 "$DATA"
	local lo=$LOOP
	steps "create rdmt-z-low 0 $S flakey $lo 0 1 0" \
		"create rdmt-a-lin 0 $S linear_rs /dev/mapper/rdmt-z-low 0" \
		"$(served rdmt-a-lin)" \
		"read $L 7 1 = $DATA 7" \
		"swap rdmt-z-low 0 $S flakey $lo 0 0 1 1 error_reads" \
		"read $L 7 1 EIO" \
		"write $L 10 1 $PC 1" \
		"swap rdmt-z-low 0 $S flakey $lo 0 0 1 1 error_writes" \
		"write $L 10 1 $PC 2 EIO" \
		"read $L 10 1 = $PC 1" \
		"swap rdmt-z-low 0 $S flakey $lo 0 0 1 1 drop_writes" \
		"write $L 10 2 $PC 3" \
		"read $L 10 1 = $PC 1" \
		"read $L 11 1 = $DATA 11" \
		"swap rdmt-z-low 0 $S flakey $lo 0 1 0" \
		"read $L 7 3 = $DATA 7" \
		"read $L 10 1 = $PC 1" \
		"remove rdmt-a-lin" "remove rdmt-z-low"
	end_test
}

# dm-dust (4 KiB blocks) under linear_rs: a read of a bad block fails, its
# neighbours read; a bad block with a write-fail count of 2 fails two
# writes, the third clears it; a write clears a bad block.
t_linear_dust() {
	begin linear
	loop lin 8 "$DATA"
	local lo=$LOOP
	steps "create rdmt-z-dust 0 $S dust $lo 0 4096" \
		"create rdmt-a-lin 0 $S linear_rs /dev/mapper/rdmt-z-dust 0" \
		"$(served rdmt-a-lin)" \
		"msg rdmt-z-dust addbadblock 5" "msg rdmt-z-dust addbadblock 9 2" "msg rdmt-z-dust enable" \
		"read $L 5 1 EIO" \
		"read $L 4 1 = $DATA 4" \
		"read $L 6 1 = $DATA 6" \
		"write $L 9 1 $PC 1 EIO" \
		"write $L 9 1 $PC 2 EIO" \
		"write $L 9 1 $PC 3" \
		"read $L 9 1 = $PC 3" \
		"write $L 5 1 $PC 4" \
		"read $L 5 1 = $PC 4" \
		"remove rdmt-a-lin" "remove rdmt-z-dust"
	end_test
}

# flakey 1 s up, 1 s down (all I/O failing when down) under linear_rs: the
# checking workload; healthy again, every block holds what it may.
t_linear_intermittent() {
	begin linear
	loop lin 8 "$DATA"
	local lo=$LOOP
	steps "create rdmt-z-low 0 $S flakey $lo 0 1 1" \
		"create rdmt-a-lin 0 $S linear_rs /dev/mapper/rdmt-z-low 0" \
		"$(served rdmt-a-lin)" \
		"rw $L 0 2048 $DATA reads-fail" \
		"swap rdmt-z-low 0 $S flakey $lo 0 1 0" \
		"verify $L" \
		"remove rdmt-a-lin" "remove rdmt-z-low"
	end_test
}

# ==== verity ==================================================================
V=/dev/mapper/rdmt-a-ver
vtable() { echo "0 $S verity 1 $1 $2 4096 4096 2048 1 sha256 $ROOT $SALT"; }

# Data device under dm-dust, then flakey (error_reads): a read of a bad
# block fails with EIO, its neighbours read the image; with every data read
# failing, every read fails; an I/O error is no corruption (status V);
# healthy again, the whole device reads the image.
t_verity_data_read_errors() {
	begin verity
	verity_loops
	local vd=$VD vh=$VH
	steps "create-ro rdmt-z-vd 0 $S dust $vd 0 4096" \
		"create-ro rdmt-a-ver $(vtable /dev/mapper/rdmt-z-vd "$vh")" \
		"$(served rdmt-a-ver)" \
		"msg rdmt-z-vd addbadblock 100" "msg rdmt-z-vd enable" \
		"read $V 100 1 EIO" \
		"read $V 99 1 = $DATA 99" \
		"read $V 101 1 = $DATA 101" \
		"status rdmt-a-ver verity V" \
		"swap-ro rdmt-z-vd 0 $S flakey $vd 0 0 1 1 error_reads" \
		"read $V 1000 1 EIO" \
		"read $V 99 1 EIO" \
		"status rdmt-a-ver verity V" \
		"swap-ro rdmt-z-vd 0 $S flakey $vd 0 1 0" \
		"read $V 0 2048 = $DATA 0" \
		"status rdmt-a-ver verity V" \
		"remove rdmt-a-ver" "remove rdmt-z-vd"
	end_test
}

# Hash device under dm-dust: bad level-0 hash block 7 (hashes of data
# blocks 640-767): their reads fail with EIO, other data reads; no
# corruption reported (status V). Once the bad block is cleared, those data
# blocks read again. (dm-bufio, C, keeps a prefetched buffer whose read
# failed until a read finds it and frees it: one more EIO is upstream
# behaviour, a second read must succeed.)
t_verity_hash_read_errors() {
	begin verity
	verity_loops
	local vd=$VD vh=$VH
	steps "create-ro rdmt-z-vh 0 2048 dust $vh 0 4096" \
		"msg rdmt-z-vh addbadblock 7" "msg rdmt-z-vh enable" \
		"create-ro rdmt-a-ver $(vtable "$vd" /dev/mapper/rdmt-z-vh)" \
		"$(served rdmt-a-ver)" \
		"read $V 100 1 = $DATA 100" \
		"read $V 700 1 EIO" \
		"read $V 640 1 EIO" \
		"read $V 768 1 = $DATA 768" \
		"read $V 639 1 = $DATA 639" \
		"status rdmt-a-ver verity V" \
		"msg rdmt-z-vh clearbadblocks" \
		"read2 $V 700 1 = $DATA 700" \
		"read $V 0 2048 = $DATA 0" \
		"status rdmt-a-ver verity V" \
		"remove rdmt-a-ver" "remove rdmt-z-vh"
	end_test
}

# Data device under flakey 1 s up, 1 s down (error_reads): random reads
# either fail with EIO or return the image, both seen many times; status V;
# healthy again, the whole device reads the image.
t_verity_intermittent() {
	begin verity
	verity_loops
	local vd=$VD vh=$VH
	steps "create-ro rdmt-z-vd 0 $S flakey $vd 0 1 1 1 error_reads" \
		"create-ro rdmt-a-ver $(vtable /dev/mapper/rdmt-z-vd "$vh")" \
		"$(served rdmt-a-ver)" \
		"reader $V $DATA" \
		"status rdmt-a-ver verity V" \
		"swap-ro rdmt-z-vd 0 $S flakey $vd 0 1 0" \
		"read $V 0 2048 = $DATA 0" \
		"remove rdmt-a-ver" "remove rdmt-z-vd"
	end_test
}

# ==== era =====================================================================
E=/dev/mapper/rdmt-a-era
EBS=128 # era block: 64 KiB, 16 blocks of 4 KiB

# since_era N MD: sets SINCE to " B1 B2 ... " the era blocks era_invalidate
# lists as written since era N (live device: a metadata snapshot is held).
since_era() {
	era_written_since "$1" "$2"
	SINCE=" ${ERA_SINCE[*]} "
}

# era_end NAME MD WHAT: drops the snapshot, removes NAME and what is under
# it; the metadata passes era_check.
era_end() {
	local n
	"${TO[@]}" dmsetup message rdmt-a-era 0 drop_metadata_snap || die "drop_metadata_snap"
	"${TO[@]}" dmsetup remove rdmt-a-era "$1" || die "dmsetup remove"
	"${TO[@]}" era_check "$2" >"$SCRATCH/flt-t-era-check" 2>&1 ||
		{ cat "$SCRATCH/flt-t-era-check" >&2; die "era_check failed ($3)"; }
}

# Origin under dm-dust (4 KiB blocks): a read of a bad block fails; a write
# to a block failing one write fails, the next succeeds; then the origin
# drops writes (flakey drop_writes): a write succeeds and does not land.
# The era lists the blocks written (also the one whose write was dropped:
# era saw it), not those only read; the metadata passes era_check.
t_era_origin_dust_and_drops() {
	begin era
	loop era-md 4
	local md=$LOOP
	loop era-or 8 "$DATA"
	local or=$LOOP
	steps "create rdmt-z-or 0 $S dust $or 0 4096" \
		"create rdmt-a-era 0 $S era $md /dev/mapper/rdmt-z-or $EBS" \
		"$(served rdmt-a-era)" \
		"msg rdmt-z-or addbadblock $((3 * 16))" \
		"msg rdmt-z-or addbadblock $((5 * 16 + 1)) 1" \
		"msg rdmt-z-or enable" \
		"read $E $((3 * 16)) 1 EIO" \
		"read $E $((2 * 16)) 1 = $DATA $((2 * 16))" \
		"write $E $((5 * 16 + 1)) 1 $PC 1 EIO" \
		"write $E $((5 * 16 + 1)) 1 $PC 2" \
		"read $E $((5 * 16 + 1)) 1 = $PC 2" \
		"swap rdmt-z-or 0 $S flakey $or 0 0 1 1 drop_writes" \
		"write $E $((7 * 16)) 1 $PC 3" \
		"read $E $((7 * 16)) 1 = $DATA $((7 * 16))" \
		"swap rdmt-z-or 0 $S flakey $or 0 1 0" \
		"msg rdmt-a-era take_metadata_snap"
	since_era 1 "$md"
	assert_eq " 5 7 " "$SINCE" "era blocks written since era 1"
	era_end rdmt-z-or "$md" "after origin faults"
	end_test
}

# Origin under flakey 1 s up, 1 s down (all I/O failing when down): the
# checking workload on the 8 MiB (128 era blocks); healthy again, every
# block holds what it may; every era block with a write that succeeded is
# listed as written since era 1.
t_era_origin_intermittent() {
	begin era
	loop era-md 4
	local md=$LOOP
	loop era-or 8 "$DATA"
	local or=$LOOP b
	steps "create rdmt-z-or 0 $S flakey $or 0 1 1" \
		"create rdmt-a-era 0 $S era $md /dev/mapper/rdmt-z-or $EBS" \
		"$(served rdmt-a-era)" \
		"rw $E 0 2048 $DATA reads-fail ok=$SCRATCH/flt-t-ok" \
		"swap rdmt-z-or 0 $S flakey $or 0 1 0" \
		"verify $E" \
		"msg rdmt-a-era take_metadata_snap"
	since_era 1 "$md"
	for b in $(<"$SCRATCH/flt-t-ok"); do
		[[ "$SINCE" == *" $((b / 16)) "* ]] ||
			die "era block $((b / 16)) (4 KiB block $b written) not listed: $SINCE"
	done
	era_end rdmt-z-or "$md" "after intermittent origin faults"
	end_test
}

# Metadata under flakey, dropping every write after a checkpoint: writes,
# a checkpoint, a snapshot taken and dropped, the remove all succeed. The
# metadata on disk is then the last commit that landed (the checkpoint to
# era 2): a new device opens it (era 3), lists the block written before the
# drop and not those written after; era_check passes.
t_era_metadata_dropped_writes() {
	begin era
	loop era-md 4
	local md=$LOOP msz=8192
	loop era-or 8
	local or=$LOOP t
	t="0 $S era /dev/mapper/rdmt-z-md $or $EBS"
	steps "create rdmt-z-md 0 $msz flakey $md 0 1 0" \
		"create rdmt-a-era $t" \
		"$(served rdmt-a-era)" \
		"write $E $((3 * 16)) 16 $PC 0" \
		"msg rdmt-a-era checkpoint" \
		"swap rdmt-z-md 0 $msz flakey $md 0 0 1 1 drop_writes" \
		"write $E $((5 * 16)) 16 $PC 0" \
		"write $E $((6 * 16)) 16 $PC 0" \
		"msg rdmt-a-era checkpoint" \
		"msg rdmt-a-era take_metadata_snap" \
		"msg rdmt-a-era drop_metadata_snap" \
		"remove rdmt-a-era" \
		"swap rdmt-z-md 0 $msz flakey $md 0 1 0" \
		"create rdmt-a-era $t" \
		"$(served rdmt-a-era)" \
		"status rdmt-a-era era 8 [0-9]+/[0-9]+ 3 -" \
		"msg rdmt-a-era take_metadata_snap"
	since_era 1 /dev/mapper/rdmt-z-md
	assert_eq " 3 " "$SINCE" "era blocks written since era 1 (those after the drop lost)"
	era_end rdmt-z-md "$md" "after dropped metadata writes"
	end_test
}

# ==== clone ===================================================================
# (clone.sh tests the source under dm-dust, the destination failing writes,
# the metadata failing.) 8 MiB: 128 regions of 64 KiB (16 blocks of 4 KiB).
C=/dev/mapper/rdmt-a-clone
CR=128

# Destination under flakey. Reads failing (error_reads): reads of hydrated
# regions fail with EIO, reads of unhydrated ones come from the source; a
# partial write to an unhydrated region (copy, then write) succeeds. Writes
# dropped (drop_writes): a whole-region write and a partial write succeed,
# their regions count as hydrated, and read what the destination holds (the
# garbage: the data never landed, as with any target above flakey); the
# metadata stays read-write. Healthy again and re-created: the hydrated
# count is the same; the regions written while healthy or while reads failed
# hold their data.
t_clone_dest_read_errors_and_dropped_writes() {
	begin clone
	clone_loops
	local src=$SRC dst=$DST md=$MD t st="clone 8 [0-9]+/[0-9]+ $CR"
	t="0 $S clone $md /dev/mapper/rdmt-z-dst $src $CR 1 no_hydration"
	steps "create rdmt-z-dst 0 $S flakey $dst 0 1 0" \
		"create rdmt-a-clone $t" \
		"$(served rdmt-a-clone)" \
		"write $C $((3 * 16)) 16 $PC 0" \
		"write $C $((4 * 16 + 2)) 1 $PC 1" \
		"swap rdmt-z-dst 0 $S flakey $dst 0 0 1 1 error_reads" \
		"read $C $((3 * 16)) 1 EIO" \
		"read $C $((4 * 16 + 2)) 1 EIO" \
		"read $C $((10 * 16)) 16 = $DATA $((10 * 16))" \
		"write $C $((11 * 16 + 5)) 1 $PC 2" \
		"read $C $((11 * 16 + 5)) 1 EIO" \
		"status rdmt-a-clone $st 3/128 0 .* rw" \
		"swap rdmt-z-dst 0 $S flakey $dst 0 0 1 1 drop_writes" \
		"write $C $((12 * 16)) 16 $PC 0" \
		"write $C $((13 * 16 + 7)) 1 $PC 3" \
		"status rdmt-a-clone $st 5/128 0 .* rw" \
		"read $C $((12 * 16)) 16 = $GARB $((12 * 16))" \
		"read $C $((13 * 16)) 16 = $GARB $((13 * 16))" \
		"swap rdmt-z-dst 0 $S flakey $dst 0 1 0" \
		"remove rdmt-a-clone" \
		"create rdmt-a-clone $t" \
		"$(served rdmt-a-clone)" \
		"status rdmt-a-clone $st 5/128 0 .* rw" \
		"read $C $((3 * 16)) 16 = $PC 0" \
		"read $C $((4 * 16 + 2)) 1 = $PC 1" \
		"read $C $((4 * 16 + 3)) 13 = $DATA $((4 * 16 + 3))" \
		"read $C $((11 * 16 + 5)) 1 = $PC 2" \
		"read $C $((11 * 16)) 5 = $DATA $((11 * 16))" \
		"remove rdmt-a-clone" "remove rdmt-z-dst"
	end_test
}

# Metadata under flakey, dropping every write after a commit (a status
# query commits, as C's): writes hydrating two more regions and the remove
# succeed, the commits never land. The metadata on disk is then the last
# commit that landed: a new device opens it with the two regions hydrated
# before the drop, which read what was written; the two regions hydrated
# after it read the source again (the writes were never flushed).
t_clone_metadata_dropped_writes() {
	begin clone
	clone_loops
	local src=$SRC dst=$DST md=$MD msz=8192 t st="clone 8 [0-9]+/[0-9]+ $CR"
	t="0 $S clone /dev/mapper/rdmt-z-md $dst $src $CR 1 no_hydration"
	steps "create rdmt-z-md 0 $msz flakey $md 0 1 0" \
		"create rdmt-a-clone $t" \
		"$(served rdmt-a-clone)" \
		"write $C $((3 * 16)) 16 $PC 0" \
		"write $C $((4 * 16 + 2)) 1 $PC 1" \
		"status rdmt-a-clone $st 2/128 0 .* rw" \
		"swap rdmt-z-md 0 $msz flakey $md 0 0 1 1 drop_writes" \
		"write $C $((5 * 16)) 16 $PC 0" \
		"write $C $((6 * 16 + 3)) 1 $PC 2" \
		"status rdmt-a-clone $st 4/128 0 .* rw" \
		"read $C $((5 * 16)) 16 = $PC 0" \
		"remove rdmt-a-clone" \
		"swap rdmt-z-md 0 $msz flakey $md 0 1 0" \
		"create rdmt-a-clone $t" \
		"$(served rdmt-a-clone)" \
		"status rdmt-a-clone $st 2/128 0 .* rw" \
		"read $C $((3 * 16)) 16 = $PC 0" \
		"read $C $((4 * 16 + 2)) 1 = $PC 1" \
		"read $C $((4 * 16 + 3)) 1 = $DATA $((4 * 16 + 3))" \
		"read $C $((5 * 16)) 16 = $DATA $((5 * 16))" \
		"read $C $((6 * 16)) 16 = $DATA $((6 * 16))" \
		"remove rdmt-a-clone" "remove rdmt-z-md"
	end_test
}

# Source under flakey failing reads (1 s up, 1 s down), destination under
# flakey failing all I/O (2 s up, 1 s down), hydration disabled: the
# checking workload (its writes to unhydrated regions copy them first);
# then background hydration for 1 s, still failing. A commit whose flush of
# the destination fails switches the clone to read-only mode (as C:
# "Metadata operation `flush destination device' failed"); it then reloads
# the committed bitmap, so a region hydrated since the last commit reads
# the source again: the checking workload accepts the source's data then,
# and only then. Once both devices are healthy (the clone re-created if
# read-only: only a new table leaves that mode), hydration finishes (it
# retries the regions whose copy failed), every block holds what it may
# (the source's data where never written). Nothing was ever written to the
# source. The failed copies are logged rate-limited, as C does.
t_clone_intermittent() {
	begin clone
	clone_loops
	local src=$SRC dst=$DST md=$MD
	steps "create-ro rdmt-z-src 0 $S flakey $src 0 1 1 1 error_reads" \
		"create rdmt-z-dst 0 $S flakey $dst 0 2 1" \
		"create rdmt-a-clone 0 $S clone $md /dev/mapper/rdmt-z-dst /dev/mapper/rdmt-z-src $CR 1 no_hydration" \
		"$(served rdmt-a-clone)" \
		"rw $C 0 2048 $DATA reads-fail ro=rdmt-a-clone" \
		"msg rdmt-a-clone enable_hydration" \
		"sleep 1" \
		"swap-ro rdmt-z-src 0 $S flakey $src 0 1 0" \
		"swap rdmt-z-dst 0 $S flakey $dst 0 1 0" \
		"reopen-if-ro rdmt-a-clone 0 $S clone $md /dev/mapper/rdmt-z-dst /dev/mapper/rdmt-z-src $CR" \
		"$(served rdmt-a-clone)" \
		"wait-hydrated rdmt-a-clone" \
		"verify $C" \
		"no-writes rdmt-z-src" \
		"remove rdmt-a-clone" "remove rdmt-z-src" "remove rdmt-z-dst"
	end_test
	# A failed copy is logged rate-limited (C: DMERR_LIMIT, 10 per 5 s), so
	# a retrying hydration does not flood the log.
	local n
	n=$(grep -c "clone: [0-9]*:[0-9]*: hydration failed" <<<"$KLOG") || true
	[ "$KLOG_LOST" = 0 ] || die "kernel log flooded: the test's mark was pushed out ($n 'hydration failed' lines left)"
	[ "$n" -le 100 ] || die "'hydration failed' logged $n times (C rate-limits it: DMERR_LIMIT)"
	note "'hydration failed' logged $n times"
	if [[ "$KLOG" =~ Switching\ to\ read-only\ mode ]]; then
		[[ "$KLOG" =~ Metadata\ operation\ .flush\ destination\ device.\ failed ]] ||
			die "read-only mode without a failed flush of the destination"
	fi
}

# ==== main ====================================================================
T0=$SECONDS
modprobe dm-flakey && modprobe dm-dust || echo "# modprobe dm-flakey dm-dust failed"
suite_setup
suite_tests() {
	echo "# set-up $((SECONDS - T0)) s"
	run_test linear_flakey_modes t_linear_flakey_modes
	run_test linear_dust t_linear_dust
	run_test linear_intermittent t_linear_intermittent
	run_test verity_data_read_errors t_verity_data_read_errors
	run_test verity_hash_read_errors t_verity_hash_read_errors
	run_test verity_intermittent t_verity_intermittent
	run_test era_origin_dust_and_drops t_era_origin_dust_and_drops
	run_test era_origin_intermittent t_era_origin_intermittent
	run_test era_metadata_dropped_writes t_era_metadata_dropped_writes
	run_test clone_dest_read_errors_and_dropped_writes t_clone_dest_read_errors_and_dropped_writes
	run_test clone_metadata_dropped_writes t_clone_metadata_dropped_writes
	run_test clone_intermittent t_clone_intermittent
}

ktap_suite faults suite_tests
cleanup
rm -f "$SCRATCH"/flt-*
echo "# suite time: $((SECONDS - T0)) s"
