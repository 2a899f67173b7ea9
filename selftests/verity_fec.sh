#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Selftests of the `verity` target's forward error correction (FEC): images
# made by `veritysetup format --fec-device`, corrupted within and beyond
# what the Reed-Solomon code corrects, in the three layouts (data, hash and
# parity on three devices; data and hash on one, parity apart; all on one),
# plus regressions of upstream bugs. Runs against either implementation:
#
#   VERITY_IMPL=rust (default)  modprobe dm-bufio reed_solomon; insmod
#                               dm-verity-rs.ko (VERITY_KO: another path)
#   VERITY_IMPL=c               modprobe dm-verity
#
#   tools/vm-run.sh -- selftests/run.sh verity_fec
#   tools/vm-run.sh -- env VERITY_IMPL=c selftests/run.sh verity_fec
#
# As in verity.sh, every test checks that its devices are served by the
# selected module while the other one is not loaded. Expected table lines
# and messages are those of the C target of Linux 6.12 (dm-verity-fec.c).
# The helpers shared with verity.sh are in selftests/lib/verity.sh, the
# kernel log marks in selftests/lib/klog.sh.
. "$(dirname "$0")/lib/suite.sh"
. "$(dirname "$0")/lib/verity.sh"
suite_init

# ==== the implementation under test, per-test scratch ========================
# selftests/lib/verity.sh: need_module, assert_served, vt, vloop, vcreate, ...
verity_init "$SCRATCH/verity_fec"

# count_klog REGEX: prints how many lines since the mark match.
count_klog() {
	local line n=0
	klog
	while IFS= read -r line; do [[ $line =~ $1 ]] && n=$((n + 1)); done <<<"$KLOG"
	echo $n
}

# ==== images ======================================================================
POOL=$SCRATCH/verity-fec-pool
POOL_BYTES=$((2 * 1024 * 1024))
SALT=5a175a17b0b0cafe

# tree_blocks NBLOCKS BS: hash blocks of a sha256 tree (format 1, hash
# block size = data block size), as verity.sh's hash_levels.
tree_blocks() {
	local nb=$1 bits levels=0 total=0 i
	bits=$(log2 $(($2 / 32)))
	while [ $((bits * levels)) -lt 64 ] && [ $(((nb - 1) >> (bits * levels))) -gt 0 ]; do
		levels=$((levels + 1))
	done
	for ((i = levels - 1; i >= 0; i--)); do
		total=$((total + ((nb + (1 << ((i + 1) * bits)) - 1) >> ((i + 1) * bits))))
	done
	echo $total
}

# fec_image LAYOUT BS ROOTS NBLOCKS [losetup options]: an image with FEC made
# by veritysetup format (no superblock, sha256, format 1, data block size =
# hash block size = BS as FEC requires), over loop devices. LAYOUT:
#   three  data, hash tree, parity: three files and loop devices
#   two    data then hash tree on one device, parity apart
#   one    data, hash tree and parity on one device
# Sets DFILE HFILE FFILE (files), D H F (devices), DN HN FN (their
# major:minor), NB BS ROOTS RSN ROUNDS HSTART FBLOCKS FSTART ROOT SECTORS,
# VOPTS (veritysetup options for the files), TAIL (the table from the
# algorithm on, without options) and FEC_OPTS (the FEC options as the
# target echoes them).
fec_image() {
	local layout=$1 x
	BS=$2 ROOTS=$3 NB=$4
	shift 4
	local t bytes=$((NB * BS)) fopts=()
	t=$(tree_blocks "$NB" "$BS")
	RSN=$((255 - ROOTS)) FBLOCKS=$((NB + t))
	ROUNDS=$(((FBLOCKS + RSN - 1) / RSN))
	local pbytes=$((ROUNDS * ROOTS * BS))
	SECTORS=$((bytes / 512))
	DFILE=$W/data HFILE=$W/hash FFILE=$W/fec
	head -c "$bytes" "$POOL" >"$DFILE"
	VOPTS=(--no-superblock --salt=$SALT --data-block-size="$BS" --hash-block-size="$BS" --fec-roots="$ROOTS")
	case "$layout" in
	three)
		truncate -s $((t * BS)) "$HFILE"
		truncate -s "$pbytes" "$FFILE"
		HSTART=0 FSTART=0
		VOPTS=("$DFILE" "$HFILE" --fec-device="$FFILE" "${VOPTS[@]}")
		;;
	two)
		truncate -s $((bytes + t * BS)) "$DFILE"
		truncate -s "$pbytes" "$FFILE"
		HFILE=$DFILE HSTART=$NB FSTART=0
		VOPTS=("$DFILE" "$DFILE" --fec-device="$FFILE" --hash-offset="$bytes" --data-blocks="$NB" "${VOPTS[@]}")
		;;
	one)
		truncate -s $((bytes + t * BS + pbytes)) "$DFILE"
		HFILE=$DFILE FFILE=$DFILE HSTART=$NB FSTART=$((NB + t))
		VOPTS=("$DFILE" "$DFILE" --fec-device="$DFILE" --hash-offset="$bytes" --data-blocks="$NB"
			--fec-offset=$((FSTART * BS)) "${VOPTS[@]}")
		;;
	*) die "layout $layout" ;;
	esac
	veritysetup format "${VOPTS[@]}" >"$W/format.out" 2>&1 ||
		{ cat "$W/format.out" >&2; die "veritysetup format ${VOPTS[*]}"; }
	ROOT=$(sed -n 's/^Root hash:[[:space:]]*//p' "$W/format.out")
	[ -n "$ROOT" ] || { cat "$W/format.out" >&2; die "no root hash from veritysetup format"; }
	vloop "$DFILE" "$@"
	D=$LOOP H=$LOOP F=$LOOP
	if [ "$HFILE" != "$DFILE" ]; then vloop "$HFILE" "$@"; H=$LOOP; fi
	if [ "$FFILE" != "$DFILE" ]; then vloop "$FFILE" "$@"; F=$LOOP; fi
	dn "$D"; DN=$DN_OUT
	dn "$H"; HN=$DN_OUT
	dn "$F"; FN=$DN_OUT
	TAIL="sha256 $ROOT $SALT"
	FEC_OPTS="use_fec_from_device $FN fec_blocks $FBLOCKS fec_start $FSTART fec_roots $ROOTS"
	x=$(cat "$W/format.out")
	[[ $x == *"FEC RS roots:"*"$ROOTS"* ]] || { echo "$x" >&2; die "veritysetup made no FEC"; }
}

# fec_table [OPTS...]: the table line of the image with FEC, OPTS (flags)
# before the FEC options; fec_echo [OPTS...]: what the target echoes.
fec_table() {
	local o=("$@")
	echo "0 $SECTORS verity 1 $D $H $BS $BS $NB $HSTART $TAIL $((${#o[@]} + 8))${o[*]:+ ${o[*]}} use_fec_from_device $F fec_roots $ROOTS fec_blocks $FBLOCKS fec_start $FSTART"
}
fec_echo() {
	local o=("$@")
	echo "0 $SECTORS verity 1 $DN $HN $BS $BS $NB $HSTART $TAIL $((${#o[@]} + 8))${o[*]:+ ${o[*]}} $FEC_OPTS"
}

# smash BLOCK [BYTES [OFFSET]]: flips every bit of BYTES (default: all)
# bytes from OFFSET of data block BLOCK in the data file. The target's reads
# go through the loop driver to the file and see the change at once; start
# devices after smashing (the FEC data cache would keep what it read
# before).
smash() {
	flip_bytes "$DFILE" $(($1 * BS + ${3:-0})) "${2:-$BS}"
}

flip_bytes() { # FILE OFFSET COUNT
	perl -e 'open(my $f, "+<:raw", $ARGV[0]) or die "$ARGV[0]: $!";
		seek($f, $ARGV[1], 0); read($f, my $b, $ARGV[2]) == $ARGV[2] or die "short read";
		$b ^= "\xff" x length($b); seek($f, $ARGV[1], 0); print $f $b; close($f) or die;' "$@" ||
		die "flip $2+$3 of $1"
}

# zero_at OFFSET COUNT: COUNT zero bytes at byte OFFSET of the data file.
zero_at() {
	dd if=/dev/zero of="$DFILE" bs=1 seek="$1" count="$2" conv=notrunc status=none
}

# assert_reads_back DEV: the whole device reads back (direct I/O, without
# error) as the source data.
assert_reads_back() {
	dd if="$1" bs=64K iflag=direct status=none of="$W/readback" || die "reading $1 failed"
	cmp -s -n $((NB * BS)) "$W/readback" "$POOL" || die "$1 does not read back as the source"
}

assert_block_reads_back() { # DEV BLOCK
	dd if="$1" bs="$BS" skip="$2" count=1 iflag=direct status=none of="$W/block" ||
		die "reading block $2 of $1 failed"
	cmp -s -n "$BS" "$W/block" "$POOL" 0 $(($2 * BS)) || die "block $2 of $1 does not read back as the source"
}

assert_read_fails() { # DEV BLOCK: reading that block fails with EIO
	if dd if="$1" bs="$BS" skip="$2" count=1 iflag=direct status=none of=/dev/null 2>"$W/read.err"; then
		die "reading block $2 of $1 succeeded"
	fi
	grep -q 'Input/output error' "$W/read.err" || { cat "$W/read.err" >&2; die "block $2 of $1: not EIO"; }
}

# ==== tests ==========================================================================

# t_capacity LAYOUT BS ROOTS NBLOCKS: an image reads back; ROOTS data blocks
# of one interleaving group (one byte in each codeword of the group) with
# 16 bad bytes each are corrected (erasures located by their hashes: twice
# what correction without erasures can do), logged with C's message, and
# the status stays V; with half of them veritysetup verify (which repairs
# in userspace, without erasures) agrees; one more bad block in the group
# is beyond the code: EIO, status C, and veritysetup verify fails.
t_capacity() {
	local layout=$1 i last
	fec_image "$@"
	[ $((1 + ROOTS * ROUNDS)) -lt "$NB" ] || die "image too small for the test"
	vcreate rdmt-fec "$(fec_table)"
	assert_served rdmt-fec "$(fec_echo)"
	assert_reads_back /dev/mapper/rdmt-fec
	assert_eq V "$(status_of rdmt-fec)" "status of the clean image"
	dmsetup remove rdmt-fec
	# Blocks 1, 1 + ROUNDS, ...: the same codewords. ROOTS / 2 of them:
	# what veritysetup verify repairs (its repair locates no erasures).
	for ((i = 0; i < ROOTS / 2; i++)); do smash $((1 + i * ROUNDS)) 16 100; done
	veritysetup verify "${VOPTS[@]}" "$ROOT" >"$W/verify.out" 2>&1 ||
		{ cat "$W/verify.out" >&2; die "veritysetup verify of a correctable image failed"; }
	# All ROOTS: the target corrects them as erasures.
	for ((; i < ROOTS; i++)); do smash $((1 + i * ROUNDS)) 16 100; done
	vcreate rdmt-fec "$(fec_table)"
	assert_served rdmt-fec
	kmark
	assert_reads_back /dev/mapper/rdmt-fec
	assert_klog "verity-fec: $DN: FEC [0-9]+: corrected [0-9]+ errors"
	assert_eq V "$(status_of rdmt-fec)" "status after correcting"
	dmsetup remove rdmt-fec
	# One more: beyond capacity.
	last=$((1 + ROOTS * ROUNDS))
	smash "$last" 16 100
	# (With 2 roots, veritysetup verify was seen to report the image
	# repaired: a decoder that corrects 1 error turns 3 into a wrong
	# codeword, which its repair does not hash again. The target does.)
	if [ "$ROOTS" -gt 2 ] && veritysetup verify "${VOPTS[@]}" "$ROOT" >/dev/null 2>&1; then
		die "veritysetup verify of a broken image succeeded"
	fi
	vcreate rdmt-fec "$(fec_table)"
	assert_served rdmt-fec
	kmark
	assert_read_fails /dev/mapper/rdmt-fec 1
	assert_klog "verity-fec: $DN: FEC [0-9]+: failed to correct"
	assert_klog "verity: $DN: data block 1 is corrupted"
	assert_eq C "$(status_of rdmt-fec)" "status after failing to correct"
	# Blocks of other groups still read.
	assert_block_reads_back /dev/mapper/rdmt-fec 2
}

# A few bad bytes (one per codeword): corrected without erasures.
t_few_errors() {
	fec_image three 4096 2 300
	smash 5 100 2000
	vcreate rdmt-fec "$(fec_table)"
	assert_served rdmt-fec "$(fec_echo)"
	kmark
	assert_block_reads_back /dev/mapper/rdmt-fec 5
	assert_klog "verity-fec: $DN: FEC [0-9]+: corrected 100 errors"
	assert_no_kernel_report
	assert_eq V "$(status_of rdmt-fec)" "status"
}

# A corrupted hash block is corrected too (C: metadata FEC).
t_hash_block() {
	fec_image two 4096 2 300
	# Hash block 1 of level 0 (data blocks 128..255), at block NB + 1 + 1
	# of the device (the root level's block comes first).
	flip_bytes "$DFILE" $(((NB + 2) * BS + 64)) 8
	vcreate rdmt-fec "$(fec_table)"
	assert_served rdmt-fec
	kmark
	assert_reads_back /dev/mapper/rdmt-fec
	assert_klog "verity-fec: $DN: FEC [0-9]+: corrected 8 errors"
	# Correcting it reads data blocks of its codewords whose digests it
	# holds: that lookup finds it corrupted and does not correct it again
	# (no recursive FEC), which reports it, in both implementations.
	assert_klog "verity: $DN: metadata block $((NB + 2)) is corrupted"
}

# The table line of Android's avbtool (restart_on_corruption
# ignore_zero_blocks and FEC) is accepted and echoed in C's order; the same
# line with ignore_corruption (a restart would reboot the guest if
# correction failed) corrects.
t_avb_table() {
	local t
	fec_image one 4096 2 300
	t="0 $SECTORS verity 1 $D $H $BS $BS $NB $HSTART $TAIL 10 restart_on_corruption ignore_zero_blocks use_fec_from_device $F fec_roots 2 fec_blocks $FBLOCKS fec_start $FSTART"
	vcreate rdmt-avb "$t"
	assert_served rdmt-avb "$(fec_echo restart_on_corruption ignore_zero_blocks)"
	assert_reads_back /dev/mapper/rdmt-avb
	dmsetup remove rdmt-avb
	smash 3 64 4000
	vcreate rdmt-avb "${t/restart_on_corruption/ignore_corruption}"
	assert_served rdmt-avb "$(fec_echo ignore_corruption ignore_zero_blocks)"
	kmark
	assert_reads_back /dev/mapper/rdmt-avb
	assert_klog "verity-fec: $DN: FEC [0-9]+: corrected 64 errors"
	assert_eq V "$(status_of rdmt-avb)" "status"
	# The IMA record has no FEC fields in C 6.12; the table echo has.
	[[ $(dmsetup table rdmt-avb) == *" $FEC_OPTS" ]] || die "FEC options not echoed"
}

# Upstream bug (fixed in 6.12, "dm-verity FEC: Fix RS FEC repair for roots
# unaligned to block size"): with 13 roots a codeword's parity can span two
# parity blocks. 8 data blocks, 8 zero bytes at offset 4088 (across blocks
# 0 and 1): both read back.
t_roots_unaligned() {
	fec_image three 4096 13 8
	zero_at 4088 8
	vcreate rdmt-fec "$(fec_table)"
	assert_served rdmt-fec
	assert_reads_back /dev/mapper/rdmt-fec
	assert_eq V "$(status_of rdmt-fec)" "status"
}

# Upstream bug (fixed in 6.12): parity was read in blocks of roots sectors,
# which a device with 4 KiB logical blocks refuses. All three devices with
# 4 KiB sectors, roots 2: a corrupted block is corrected, no EIO.
t_4k_sectors() {
	fec_image three 4096 2 300 --sector-size 4096
	local x
	read -r x <"/sys/class/block/${F##*/}/queue/logical_block_size"
	assert_eq 4096 "$x" "logical block size of the FEC device"
	smash 7 32 0
	vcreate rdmt-fec "$(fec_table)"
	assert_served rdmt-fec
	assert_reads_back /dev/mapper/rdmt-fec
	assert_eq V "$(status_of rdmt-fec)" "status"
}

# A corrupted hash block met while correcting a data block is not corrected
# in turn (no recursive FEC): no hang, the data block is still corrected,
# the bad hash block is reported.
t_no_recursion() {
	fec_image two 4096 2 300
	# ROUNDS is 2: block 1's group is the odd blocks; those from 129 on
	# take their digests from level-0 hash block 1 (block NB + 2).
	smash 1 8 0
	flip_bytes "$DFILE" $(((NB + 2) * BS + 64)) 8
	vcreate rdmt-fec "$(fec_table)"
	assert_served rdmt-fec
	kmark
	assert_block_reads_back /dev/mapper/rdmt-fec 1
	assert_klog "verity: $DN: metadata block $((NB + 2)) is corrupted"
	assert_klog "verity-fec: $DN: FEC [0-9]+: corrected 8 errors"
	assert_eq C "$(status_of rdmt-fec)" "status"
	# The hash block's own correction (not nested) makes its blocks read.
	assert_block_reads_back /dev/mapper/rdmt-fec 129
}

# check_at_most_once: a block verified once is not verified again, but a
# failed read of it still goes through FEC (dm-dust fails the read).
t_at_most_once_io_error() {
	local dsz
	modprobe dm-dust || die "modprobe dm-dust"
	fec_image three 4096 2 300
	dsz=$((NB * BS / 512))
	dmsetup create rdmt-dust --table "0 $dsz dust $D 0 $BS" || die "dust device"
	local dd_=/dev/mapper/rdmt-dust
	local t="0 $SECTORS verity 1 $dd_ $H $BS $BS $NB 0 $TAIL 9 check_at_most_once use_fec_from_device $F fec_roots 2 fec_blocks $FBLOCKS fec_start 0"
	vcreate rdmt-fec "$t"
	assert_served rdmt-fec
	assert_reads_back /dev/mapper/rdmt-fec
	dmsetup message rdmt-dust 0 addbadblock 9 || die "addbadblock"
	dmsetup message rdmt-dust 0 enable || die "enable dust"
	kmark
	assert_block_reads_back /dev/mapper/rdmt-fec 9
	assert_klog "verity-fec: .*: FEC [0-9]+: corrected [0-9]+ errors"
	assert_eq V "$(status_of rdmt-fec)" "status"
}

# The FEC messages are rate-limited (DMWARN_LIMIT): 40 corrections in a row
# log fewer than 40 lines.
t_rate_limited() {
	local i n
	fec_image three 512 2 600
	# A different byte in each block: one error per codeword.
	for ((i = 0; i < 40; i++)); do smash $((i * 5 + 2)) 1 "$i"; done
	vcreate rdmt-fec "$(fec_table)"
	assert_served rdmt-fec
	kmark
	assert_reads_back /dev/mapper/rdmt-fec
	# (Correcting a block corrects the other bad bytes of its codewords.)
	n=$(count_klog "verity-fec: $DN: FEC [0-9]+: corrected [0-9]+ errors")
	[ "$n" -ge 1 ] && [ "$n" -lt 40 ] || die "$n 'corrected' messages for 40 corrections"
	assert_eq V "$(status_of rdmt-fec)" "status"
}

# Bad FEC options are refused with C's reasons. Without FEC, as C without
# CONFIG_DM_VERITY_FEC: the FEC options are unrecognized and a table has at
# most 7 optional arguments; the image without them reads back.
t_bad_options() {
	local b
	fec_image three 4096 2 300
	b="0 $SECTORS verity 1 $D $H 4096 4096 $NB 0 $TAIL"
	if [ "$HAS_FEC" = 0 ]; then
		refuse_tables --readonly <<-EOF
			verity: Unrecognized verity feature request   | $b 2 use_fec_from_device $F
			verity: Unrecognized verity feature request   | $b 5 ignore_zero_blocks fec_roots 2 fec_blocks $FBLOCKS
			verity: Invalid number of feature args        | $(fec_table)
		EOF
		refusals_check
		vcreate rdmt-nofec "$b"
		assert_served rdmt-nofec "0 $SECTORS verity 1 $DN $HN 4096 4096 $NB 0 $TAIL"
		assert_reads_back /dev/mapper/rdmt-nofec
		return 0
	fi
	refuse_tables --readonly <<-EOF
		verity: FEC feature arguments require a value      | $b 1 fec_roots
		verity: Invalid fec_roots                          | $b 2 fec_roots 1
		verity: Invalid fec_roots                          | $b 2 fec_roots 25
		verity: Invalid fec_blocks                         | $b 2 fec_blocks x
		verity: Invalid fec_start                          | $b 2 fec_start -1
		verity: FEC device already specified               | $b 4 use_fec_from_device $F use_fec_from_device $F
		verity: FEC device lookup failed                   | $b 2 use_fec_from_device /dev/rdmt-none
		verity: Missing fec_roots                          | $b 4 use_fec_from_device $F fec_blocks $FBLOCKS
		verity: Missing fec_blocks                         | $b 4 use_fec_from_device $F fec_roots 2
		verity: Invalid fec_blocks                         | $b 6 use_fec_from_device $F fec_roots 2 fec_blocks $NB
		verity: Hash device is too small for fec_blocks    | $b 6 use_fec_from_device $F fec_roots 2 fec_blocks $((FBLOCKS + 1))
		verity: FEC device is too small                    | $b 8 use_fec_from_device $F fec_roots 2 fec_blocks $FBLOCKS fec_start 1
		verity: Block sizes must match to use FEC          | 0 $SECTORS verity 1 $D $H 4096 1024 $NB 0 $TAIL 6 use_fec_from_device $F fec_roots 2 fec_blocks $FBLOCKS
		verity: Invalid number of feature args             | $b 16 $(printf 'x %.0s' {1..16})
	EOF
	refusals_check
	# Without a device the other FEC options are ignored, and not echoed.
	vcreate rdmt-nofec "$b 6 fec_roots 2 fec_blocks $FBLOCKS fec_start 0"
	assert_served rdmt-nofec "0 $SECTORS verity 1 $DN $HN 4096 4096 $NB 0 $TAIL"
}

# ==== the suite ==========================================================================
mkdir -p "$W"
[ -s "$POOL" ] || pattern "$POOL" $((POOL_BYTES / 512)) verity-fec

CAPACITY=(
	# layout bs roots data-blocks
	"three 4096 2 300"
	"two 1024 7 300"
	"one 512 13 300"
	"three 512 24 300"
	"two 4096 13 300"
)
kmark
SUITE_MARK=$KMARK
t_no_kernel_report() {
	KMARK=$SUITE_MARK
	assert_no_kernel_report
}
# fec_test NAME FUNC...: run_test, or a skip where the target has no FEC.
fec_test() {
	if [ "$HAS_FEC" = 1 ]; then
		run_test "$@"
	else
		skip_test "$1" "no FEC in $VERITY_MOD (kernel without CONFIG_REED_SOLOMON_DEC8 / DM_VERITY_FEC)"
	fi
}

suite_tests() {
	for i in "${CAPACITY[@]}"; do
		# shellcheck disable=SC2086
		set -- $i
		fec_test "capacity_${1}_bs${2}_roots${3}" vt t_capacity $i
	done
	fec_test few_errors vt t_few_errors
	fec_test hash_block vt t_hash_block
	fec_test avb_table vt t_avb_table
	fec_test roots_unaligned_to_block_size vt t_roots_unaligned
	fec_test parity_on_4k_sector_device vt t_4k_sectors
	fec_test no_recursive_fec vt t_no_recursion
	fec_test check_at_most_once_io_error vt t_at_most_once_io_error
	fec_test messages_rate_limited vt t_rate_limited
	run_test bad_options vt t_bad_options
	run_test no_kernel_report vt t_no_kernel_report
}

ktap_suite verity_fec suite_tests
rm -rf "$W" "$POOL"
