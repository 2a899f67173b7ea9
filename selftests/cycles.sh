#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Life-cycle stress of our four targets (hardening): linear_rs
# (dm-linear-rs.ko), verity (dm-verity-rs.ko), era (dm-era-rs.ko), clone
# (dm-clone-rs.ko).
#
#   cycles_<target>     under a verifying workload, N_CYCLES (100) cycles of
#                       suspend + resume, then N_CYCLES table reloads (load
#                       of the same table, suspend, resume: the new table is
#                       constructed while the old one serves I/O; for era and
#                       clone it opens the metadata again). Zero I/O errors,
#                       zero verify mismatches, I/O completes after every
#                       resume, the target's own state is intact afterwards.
#                       Workload: fio randwrite with crc32c verification
#                       (linear_rs, era, clone); for the read-only verity, a
#                       reader comparing every byte read (O_DIRECT, random
#                       offsets and lengths) with the image veritysetup
#                       formatted.
#   modloop_<target>    N_LOADS times: insmod, create a device, I/O checked
#                       byte for byte, remove, rmmod. The module unloads every
#                       time; the kernel's unreclaimable slab, vmalloc and
#                       per-CPU memory do not grow over the loop (beyond a
#                       generous margin); on the debug kernel (kmemleak),
#                       kmemleak finds no leak that mentions our modules.
#
#   tools/vm-run.sh -- selftests/run.sh cycles
#
# Knobs (environment): N_CYCLES (100), N_LOADS (20), LEAK_MARGIN_KIB (2048),
# CYCLES_ONLY (a regex: run only the tests whose names match),
# CYCLES_DMSETUP=1 (cycles through dmsetup, see below).
#
# Process start-up is what costs time in the TCG guest: one dmsetup call
# takes 0.3 to 1 s, so the 800 suspends, 800 resumes and 400 loads would take
# 15 to 30 minutes through dmsetup. The cycles and the module loop therefore
# make the same DM ioctls dmsetup makes (DM_TABLE_LOAD, DM_DEV_SUSPEND with
# and without DM_SUSPEND_FLAG, DM_DEV_CREATE, DM_DEV_REMOVE) from one Python
# process each (selftests/cycles.py), and check the device's state flags and
# live table after each step. CYCLES_DMSETUP=1 runs the cycles through
# dmsetup instead (slow; for comparison).
#
# Every test proves that our module served the device: the live table's
# target type, our module loaded and pinned, the C twin (dm_verity, dm_era,
# dm_clone) not loaded; no kernel report (oops, WARNING, ...) in the log.
. "$(dirname "$0")/lib/suite.sh"
suite_init

N_CYCLES=${N_CYCLES:-100}
N_LOADS=${N_LOADS:-20}
PY=(python3 -I -S)
[ -x /usr/bin/python3 ] && PY=(/usr/bin/python3 -I -S)
DMIO=$SELFTESTS_DIR/cycles.py

# cleanup: removes every test device, uppers (rdmt-a-*) first.
cleanup() {
	dm_remove_all_test_devices
}

# The helper (DM ioctls, the module load loop, an O_DIRECT reader) is
# selftests/cycles.py.

# ==== the cycles ==============================================================
DEVNAME=rdmt-a-cyc

# run_cycles TABLE [ro] [HELPER-OPTIONS...]: N_CYCLES cycles of suspend +
# resume, then N_CYCLES of load (TABLE) + suspend + resume, of $DEVNAME
# (served by our module) while workload $WPID runs; dies if any fails.
run_cycles() {
	local table=$1 ro=${2:-} kind i out rc=0
	shift 2 || shift
	local n=$N_CYCLES
	if [ "${CYCLES_DMSETUP:-0}" = 1 ]; then
		for kind in suspend reload; do
			local t0=$SECONDS
			for ((i = 1; i <= N_CYCLES; i++)); do
				if [ "$kind" = reload ]; then
					timeout $((120 * SCALE)) dmsetup load ${ro:+--readonly} $DEVNAME --table "$table" ||
						die "$kind cycle $i: load failed"
				fi
				timeout $((120 * SCALE)) dmsetup suspend $DEVNAME || die "$kind cycle $i: suspend failed"
				timeout $((120 * SCALE)) dmsetup resume $DEVNAME || die "$kind cycle $i: resume failed"
				kill -0 "$WPID" 2>/dev/null || die "$kind cycle $i: the workload ended"
			done
			note "$N_CYCLES $kind cycles through dmsetup in $((SECONDS - t0)) s"
		done
		n=0 # the helper only checks the device and makes the checks after
	fi
	out=$("${PY[@]}" "$DMIO" cycles --name $DEVNAME --kinds suspend,reload \
		--count "$n" --table "$table" ${ro:+--ro} --pid "$WPID" "$@") || rc=$?
	[ $rc -eq 0 ] || die "cycles (rc $rc): $out"
	note "${out//$'\n'/$'\n'# }"
	impl_assert_served $DEVNAME
}

# fio_start DEV SIZE: fio writes DEV's first SIZE bytes at random, 4 to 64
# KiB at a time, each block with a crc32c header, and reads back and checks
# what it wrote (verify_backlog) as it goes; it stops at the first I/O error
# or mismatch. Runs until stopped (fio_stop_check).
fio_start() {
	fio --name=cycles --filename="$1" --size="$2" --direct=1 --ioengine=libaio \
		--rw=randwrite --bssplit=4k/60:16k/30:64k/10 --iodepth=4 --verify=crc32c \
		--verify_backlog=64 --verify_fatal=1 --verify_state_save=0 --time_based --runtime=1800 \
		--output="$SCRATCH/fio.out" >/dev/null 2>&1 &
	WPID=$!
	# A test that fails leaves no workload holding its device open.
	trap 'kill -KILL $WPID 2>/dev/null || true' EXIT
	# Under way before the cycles start.
	wait_for 60 "fio writing to $3" io_started "$3" 4 "$SCRATCH/fio.out"
}

# io_started KNAME FIELD OUT: the workload $WPID completed more than 16 I/Os
# of that kind (/sys/block/KNAME/stat field FIELD, from 0: 0 reads, 4
# writes); gives up (showing OUT) if the workload ended.
io_started() {
	local a
	read -r -a a <"/sys/block/$1/stat"
	[ "${a[$2]}" -gt 16 ] && return 0
	kill -0 $WPID 2>/dev/null || { cat "$3" >&2; echo "the workload ended at once" >&2; return 2; }
	return 1
}

# wait_pid PID: waits (300 s at most: fio can take minutes to wind down on
# the debug kernel) for PID to end; sets WRC to its status.
wait_pid() {
	local t0=$SECONDS
	while kill -0 "$1" 2>/dev/null && [ $((SECONDS - t0)) -lt $((300 * SCALE)) ]; do nap 0.1; done
	kill -0 "$1" 2>/dev/null && die "pid $1 did not end within 300 s of SIGINT"
	[ $((SECONDS - t0)) -lt 10 ] || note "the workload took $((SECONDS - t0)) s to end"
	WRC=0
	wait "$1" || WRC=$?
}

# fio_stop_check: stops fio; it must have run to the end without an I/O
# error or a verify mismatch, having written and verified data.
fio_stop_check() {
	local alive=1
	kill -0 $WPID 2>/dev/null || alive=0
	kill -INT $WPID 2>/dev/null || true
	wait_pid $WPID
	local out
	out=$(<"$SCRATCH/fio.out")
	[ $alive = 1 ] || { echo "$out" >&2; die "fio had ended before it was stopped (rc $WRC)"; }
	[[ "$out" =~ err=\ *0 ]] || { echo "$out" >&2; die "fio reports an error (rc $WRC)"; }
	if [[ "$out" =~ err=\ *[1-9] ]] || [[ "$out" =~ (verify:|bad magic|bad header|verify failed|mismatch) ]]; then
		echo "$out" >&2
		die "fio reports a verify failure or an error"
	fi
	[[ "$out" =~ issued\ rwts:\ total=([0-9]+),([0-9]+) ]] || { echo "$out" >&2; die "no fio totals"; }
	local r=${BASH_REMATCH[1]} w=${BASH_REMATCH[2]}
	[ "$r" -gt 0 ] && [ "$w" -gt 0 ] || die "fio read $r and wrote $w blocks: nothing verified"
	note "fio: $w writes, $r verify reads, err=0"
}

# reader_start DEV IMAGE: the verity workload (see the helper's reader).
reader_start() {
	"${PY[@]}" "$DMIO" reader --dev "$1" --image "$2" >"$SCRATCH/reader.out" 2>&1 &
	WPID=$!
	trap 'kill -KILL $WPID 2>/dev/null || true' EXIT
	wait_for 60 "the reader reading from $3" io_started "$3" 0 "$SCRATCH/reader.out"
}

reader_stop_check() {
	local alive=1 out
	kill -0 $WPID 2>/dev/null || alive=0
	kill -INT $WPID 2>/dev/null || true
	wait_pid $WPID
	out=$(<"$SCRATCH/reader.out")
	[ $alive = 1 ] && [ $WRC = 0 ] || die "reader (rc $WRC): $out"
	[[ "$out" =~ reader:\ ([0-9]+)\ reads.*all\ correct ]] && [ "${BASH_REMATCH[1]}" -gt 0 ] ||
		die "reader: $out"
	note "$out"
}

# Shared images, made once (making pseudo-random data and hashing it is slow
# under TCG): an 8 MiB verity data image (VIMG), formatted by veritysetup
# (4 KiB blocks, sha256) into VHIMG, with VTABLE_ARGS the table arguments
# after the two devices; a 16 MiB clone source (CSRC).
suite_setup() {
	VIMG=$SCRATCH/cyc-vdata.img VHIMG=$SCRATCH/cyc-vhash.img CSRC=$SCRATCH/cyc-csrc.img
	pattern "$VIMG" 16384 cycles-verity
	pattern "$CSRC" 32768 cycles-clone
	truncate -s 1M "$VHIMG"
	local k v root= salt=
	veritysetup format "$VIMG" "$VHIMG" >"$SCRATCH/format.out" 2>&1 ||
		{ cat "$SCRATCH/format.out" >&2; echo "# veritysetup format failed"; }
	while IFS=: read -r k v; do
		v=${v//[[:space:]]/}
		case "$k" in "Root hash") root=$v ;; Salt) salt=$v ;; esac
	done <"$SCRATCH/format.out"
	VTABLE_ARGS="4096 4096 2048 1 sha256 $root $salt"
}

# verity_loops: read-only loop devices over the verity images; sets
# VTABLE.
verity_loops() {
	VDATA=$(losetup --find --show --read-only "$VIMG")
	VHASH=$(losetup --find --show --read-only "$VHIMG")
	VTABLE="0 16384 verity 1 $(devnum "$VDATA") $(devnum "$VHASH") $VTABLE_ARGS"
}

t_cycles_linear() {
	cleanup
	impl_load linear rust
	kmark
	local lo table
	lo=$(new_loop cyc-lin 16)
	table="0 32768 linear_rs $(devnum "$lo") 0"
	dmsetup create $DEVNAME --table "$table"
	impl_assert_served $DEVNAME
	dm_kname $DEVNAME || die "no dm device named $DEVNAME"
	note "set-up: $((SECONDS - TEST_T0)) s"
	fio_start /dev/mapper/$DEVNAME 12M "$KNAME"
	run_cycles "$table"
	fio_stop_check
	dmsetup remove $DEVNAME
	free_loop "$lo"
	rm -f "$SCRATCH/cyc-lin.img"
	assert_no_kernel_report
}

# verity: the reader compares every byte with the image; afterwards the
# status is still V (no corruption seen).
t_cycles_verity() {
	cleanup
	impl_load verity rust
	kmark
	verity_loops
	dmsetup create $DEVNAME --readonly --table "$VTABLE"
	impl_assert_served $DEVNAME
	dm_kname $DEVNAME || die "no dm device named $DEVNAME"
	note "set-up: $((SECONDS - TEST_T0)) s"
	reader_start /dev/mapper/$DEVNAME "$VIMG" "$KNAME"
	run_cycles "$VTABLE" ro
	reader_stop_check
	assert_eq "0 16384 verity V" "$(dmsetup status $DEVNAME)" "status after the cycles"
	dmsetup remove $DEVNAME
	free_loop "$VDATA"
	free_loop "$VHASH"
	assert_no_kernel_report
}

# era: every resume starts a new era, so the era has moved on by at least
# 2 * N_CYCLES afterwards; the metadata passes era_check after the remove.
# (The C dm-era of 6.12 failed this once when tried: era_check found a
# damaged writeset, "missing bits".)
t_cycles_era() {
	cleanup
	impl_load era rust
	kmark
	local md or table s e0 e1
	md=$(new_loop cyc-era-md 4)
	or=$(new_loop cyc-era-or 16)
	table="0 32768 era $(devnum "$md") $(devnum "$or") 128"
	dmsetup create $DEVNAME --table "$table"
	impl_assert_served $DEVNAME
	s=$(dmsetup status $DEVNAME); set -- $s; e0=$6
	dm_kname $DEVNAME || die "no dm device named $DEVNAME"
	note "set-up: $((SECONDS - TEST_T0)) s"
	fio_start /dev/mapper/$DEVNAME 12M "$KNAME"
	run_cycles "$table"
	fio_stop_check
	s=$(dmsetup status $DEVNAME); set -- $s; e1=$6
	[ "$e1" -ge $((e0 + 2 * N_CYCLES)) ] || die "era went from $e0 to $e1 over $((2 * N_CYCLES)) resumes"
	note "era $e0 -> $e1"
	dmsetup remove $DEVNAME
	era_check "$md" >"$SCRATCH/era_check.out" 2>&1 || { cat "$SCRATCH/era_check.out" >&2; die "era_check failed"; }
	free_loop "$md"
	free_loop "$or"
	rm -f "$SCRATCH/cyc-era-md.img" "$SCRATCH/cyc-era-or.img"
	assert_no_kernel_report
}

# clone: hydration running (one region at a time) during the cycles, fio
# on the first 12 MiB. Afterwards (fio still writing) the clone finishes
# hydrating (status rw, not Fail) and its last 4 MiB, never written, read
# the source.
t_cycles_clone() {
	cleanup
	impl_load clone rust
	kmark
	local md dst src table
	md=$(new_loop cyc-cl-md 4)
	dst=$(new_loop cyc-cl-dst 16)
	src=$(losetup --find --show --read-only "$CSRC")
	table="0 32768 clone $(devnum "$md") $(devnum "$dst") $(devnum "$src") 128"
	dmsetup create $DEVNAME --table "$table"
	impl_assert_served $DEVNAME
	dm_kname $DEVNAME || die "no dm device named $DEVNAME"
	note "set-up: $((SECONDS - TEST_T0)) s"
	fio_start /dev/mapper/$DEVNAME 12M "$KNAME"
	run_cycles "$table" "" --hydrated --compare "$CSRC" --from $((12 << 20))
	fio_stop_check
	dmsetup remove $DEVNAME
	free_loop "$md"
	free_loop "$dst"
	free_loop "$src"
	rm -f "$SCRATCH"/cyc-cl-*.img
	assert_no_kernel_report
}

# ==== module load/unload loop =================================================
# Growth allowed over the measured part of the loop (after the warm-up
# iterations), per counter, in KiB. Generous: the noise measured over the
# loop is below 100 KiB; a leak of a table, a bio_set or a bufio or kcopyd
# client per iteration exceeds it. On the debug kernel (KASAN's quarantine
# holds freed memory) the growth is only shown, kmemleak is the check.
LEAK_MARGIN_KIB=${LEAK_MARGIN_KIB:-2048}
WARM=3

kmemleak_file() {
	local f=/sys/kernel/debug/kmemleak
	if [ ! -e $f ] && [ -d /sys/kernel/debug ] && ! mountpoint -q /sys/kernel/debug; then
		mount -t debugfs none /sys/kernel/debug 2>/dev/null || true
	fi
	[ -e $f ] && echo $f
}

# modloop TARGET TABLE [ro] [IMAGE] [WIPE-DEV]: our module is not loaded;
# the helper loads and unloads it N_LOADS times (device, I/O, remove each
# time).
modloop() {
	local target=$1 table=$2 ro=${3:-} image=${4:-} wipe=${5:-} out rc=0 kml twin
	impl_select "$target" rust
	twin=${IMPL_OTHERS%% *}
	MOD=$IMPL_MOD
	impl_deps
	impl_ko_file
	KO=$IMPL_KO_FILE
	# Nothing of ours stays loaded (no device of ours may exist).
	if mod_loaded "$MOD"; then rmmod "$MOD" || die "rmmod $MOD before the loop"; fi
	kml=$(kmemleak_file) || true
	[ -z "$kml" ] || echo clear >"$kml"
	out=$("${PY[@]}" "$DMIO" modloop --ko "$KO" --mod "$MOD" --twin "${twin:-none}" \
		--target "$IMPL_TYPE" --name rdmt-a-load --table "$table" ${ro:+--ro} ${image:+--image "$image"} \
		${wipe:+--wipe "$wipe"} --iters "$N_LOADS" --warm $WARM) || rc=$?
	[ $rc -eq 0 ] || die "module loop (rc $rc): $out"
	mod_loaded "$MOD" && die "$MOD loaded after the loop"
	if [ -n "$twin" ] && mod_loaded "$twin"; then die "the C $twin got loaded"; fi
	# Memory: {"warm": {...}, "end": {...}, "seconds": S}, in KiB.
	local k w e grew=() grew_all=()
	for k in SUnreclaim VmallocUsed Percpu; do
		[[ "$out" =~ \"warm\":\ \{[^}]*\"$k\":\ ([0-9]+) ]] || die "no warm $k in: $out"
		w=${BASH_REMATCH[1]}
		[[ "$out" =~ \"end\":\ \{[^}]*\"$k\":\ ([0-9]+) ]] || die "no end $k in: $out"
		e=${BASH_REMATCH[1]}
		[ $((e - w)) -le "$LEAK_MARGIN_KIB" ] || grew+=("$k +$((e - w)) KiB")
		grew_all+=("$k $w -> $e KiB")
	done
	[[ "$out" =~ \"seconds\":\ ([0-9.]+) ]]
	note "$N_LOADS loads and unloads in ${BASH_REMATCH[1]} s; over the last $((N_LOADS - WARM)): ${grew_all[*]}"
	if [ -z "$kml" ]; then
		[ ${#grew[@]} = 0 ] || die "kernel memory grew over the loop: ${grew[*]}"
	else
		kmemleak_check "$kml" "$table" "$ro"
	fi
}

# kmemleak_check FILE TABLE [ro]: once more with the module left loaded
# (so that its symbols resolve in the backtraces), then a kmemleak scan: no
# unreferenced object allocated from our module or from an unresolved
# module address.
kmemleak_check() {
	local kml=$1 leaks
	insmod "$KO" || die "insmod $KO"
	dmsetup create rdmt-a-load ${3:+--readonly} --table "$2" || die "create after the loop"
	dd if=/dev/mapper/rdmt-a-load of=/dev/null bs=64k count=4 iflag=direct status=none
	dmsetup remove rdmt-a-load
	# kmemleak reports objects at least 5 s old; scan twice.
	sleep 6
	echo scan >"$kml"
	echo scan >"$kml"
	leaks=$(awk -v RS='unreferenced object' -v mod="[$MOD]" \
		'NR > 1 && (index($0, mod) || $0 ~ /\] 0xffffffffc/) { print "unreferenced object" $0 }' "$kml")
	rmmod "$MOD" || die "rmmod $MOD after the kmemleak scan"
	if [ -n "$leaks" ]; then
		echo "$leaks" | head -n 80 >&2
		die "kmemleak: leaks from $MOD"
	fi
	note "kmemleak: no leak from $MOD"
}

t_modloop_linear() {
	cleanup
	kmark
	local lo
	lo=$(new_loop cyc-ml-lin 8)
	modloop linear "0 16384 linear_rs $(devnum "$lo") 0"
	free_loop "$lo"
	assert_no_kernel_report
}

t_modloop_verity() {
	cleanup
	kmark
	verity_loops
	modloop verity "$VTABLE" ro "$VIMG"
	free_loop "$VDATA"
	free_loop "$VHASH"
	assert_no_kernel_report
}

# era: the first device formats the metadata, the others open it.
t_modloop_era() {
	cleanup
	kmark
	local md or
	md=$(new_loop cyc-ml-md 4)
	or=$(new_loop cyc-ml-or 8)
	modloop era "0 16384 era $(devnum "$md") $(devnum "$or") 128"
	era_check "$md" >"$SCRATCH/era_check.out" 2>&1 || { cat "$SCRATCH/era_check.out" >&2; die "era_check failed"; }
	free_loop "$md"
	free_loop "$or"
	assert_no_kernel_report
}

# clone: fresh metadata each time, hydration running when the device is
# removed (8 KiB regions: 1024 of them, not all copied in one iteration).
t_modloop_clone() {
	cleanup
	kmark
	local md dst src
	md=$(new_loop cyc-ml-md 4)
	dst=$(new_loop cyc-ml-dst 8)
	src=$(losetup --find --show --read-only "$CSRC")
	modloop clone "0 16384 clone $(devnum "$md") $(devnum "$dst") $(devnum "$src") 16" "" "" "$md"
	free_loop "$md"
	free_loop "$dst"
	free_loop "$src"
	assert_no_kernel_report
}

# ==== main ====================================================================
T0=$SECONDS
suite_setup
suite_tests() {
	echo "# N_CYCLES=$N_CYCLES N_LOADS=$N_LOADS; set-up $((SECONDS - T0)) s"
	run_test cycles_linear t_cycles_linear
	run_test cycles_verity t_cycles_verity
	run_test cycles_era t_cycles_era
	run_test cycles_clone t_cycles_clone
	run_test modloop_linear t_modloop_linear
	run_test modloop_verity t_modloop_verity
	run_test modloop_era t_modloop_era
	run_test modloop_clone t_modloop_clone
}

ktap_suite cycles suite_tests
cleanup
rm -f "$SCRATCH"/cyc-*.img "$SCRATCH"/format.out
echo "# suite time: $((SECONDS - T0)) s"
