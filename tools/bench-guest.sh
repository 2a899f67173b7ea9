#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The benchmark, run in the guest by scripts/bench.sh (`make bench`): each
# Rust target against its C twin, in this one boot, on the same RAM-backed
# devices (brd), plus the raw device. Runs fio with JSON output into a work
# folder, then prints that folder (a tar.gz, base64) on stdout between the
# lines BENCH-DATA-BEGIN and BENCH-DATA-END, since the project directory is
# read-only in the guest; the host unpacks it into out/bench/.
#
# Every run is logged with what served it: the live dm table (target name)
# and the module that owns the target with its reference count.
#
# Settings (environment, passed through by scripts/bench.sh):
#   BENCH_TARGETS    targets to run, in order (default: "linear verity era
#                    clone");
#                    each is a function bench_<target> below
#   BENCH_REPS       repetitions; C and Rust alternate within each (3)
#   BENCH_RUNTIME    seconds per timed fio run (3)
#   BENCH_RAMP       fio ramp_time of timed runs, seconds (1)
#   BENCH_NUMJOBS    fio numjobs of every profile (1)
#   BENCH_QD_4K      iodepth of the 4k profiles (16)
#   BENCH_QD_1M      iodepth of the 1M profiles (4)
#   BENCH_DEV_MIB    size of each brd device, MiB (128)
#   BENCH_ERA_CHECKPOINTS
#                    era: checkpoint messages timed per (repetition,
#                    implementation) while a 4k random write load runs,
#                    with dmsetup and again as bare ioctls (10 + 10)
#   BENCH_CLONE_REGION
#                    clone: region size, sectors (128 = 64 KiB)
#   BENCH_CLONE_TUNED
#                    clone: hydration_threshold and hydration_batch_size of
#                    the tuned hydration profile and of the "during" runs
#                    ("64 16"); the default profile uses the target's
#                    defaults (1 1)
#   BENCH_CLONE_HYDRATIONS
#                    clone: whole-device hydrations timed per profile,
#                    repetition and implementation (2)
#   BENCH_CLONE_UNHYDRATED
#                    clone: "1" adds runs on unhydrated devices with
#                    background hydration off (0)
#   BENCH_CLONE_ROWS clone: "all" (default) or "load": only the idle
#                    hydration and the hydration-under-load windows below
#   BENCH_CLONE_LOAD_QDS
#                    clone: iodepths of the hydration-under-load windows
#                    ("1 16")
#   BENCH_CLONE_LOAD_BASE, BENCH_CLONE_LOAD_WINDOW
#                    clone: seconds of load measured before hydration is
#                    enabled (1), and at most with it (4)
#   BENCH_CLONE_SHARE
#                    clone: hydration_share_under_io of our policy windows,
#                    a list ("15 20" percent; an extension, C has no such
#                    argument; 0: no policy windows)
#   BENCH_CLONE_SRC_DELAY
#                    clone: the sources of the hydration-under-load
#                    windows, a list of milliseconds dm-delay adds to
#                    every I/O of the source ("0 1"; 0: the RAM disk
#                    itself, rows of target "clone"; D: rows of target
#                    "clone src+Dms"); a source that is far away
#                    (network, slow disk) is clone's real use: its copies
#                    wait on latency, not on the CPU
#   BENCH_VERITY_RUNS
#                    verity: the runs, in order, each PROFILE[:KIND]
#                    (randread-4k or seqread-1m; KIND: none = cold pass
#                    then warm timed run; bh: the same with
#                    try_verify_in_tasklet; fec: a timed run with the FEC
#                    options; fec-corrupt: the same over the first MiB, in
#                    which every 8th block is corrupt); default: all seven
#                    ("randread-4k seqread-1m randread-4k:bh randread-4k:fec
#                    seqread-1m:fec randread-4k:fec-corrupt
#                    seqread-1m:fec-corrupt")
#   BENCH_VERITY_FEC_ROOTS
#                    verity: fec_roots of the image (2, avbtool's default)
#   BENCH_VERITY_FEC_RUNTIME
#                    verity: seconds of the fec-corrupt runs (3 x
#                    BENCH_RUNTIME: a 1 MiB read corrects 32 blocks)
# For a short development run: BENCH_REPS=1 BENCH_RUNTIME=1 BENCH_RAMP=0
# BENCH_DEV_MIB=32 BENCH_CLONE_HYDRATIONS=1 BENCH_ERA_CHECKPOINTS=2.
#   BENCH_SELFTEST_C_AS_RUST
#                    "1": a target whose Rust module is not built is measured
#                    with its C module in the Rust slot too (an A/A run that
#                    proves the plumbing and shows the noise floor); or a list
#                    of targets ("verity", "linear verity") to do so even if
#                    the Rust module is built. Marked in every output.
set -uo pipefail
export DM_DISABLE_UDEV=1
top=$(cd "$(dirname "$0")/.." && pwd)

TARGETS=${BENCH_TARGETS:-linear verity era clone}
REPS=${BENCH_REPS:-3}
RUNTIME=${BENCH_RUNTIME:-3}
RAMP=${BENCH_RAMP:-1}
NUMJOBS=${BENCH_NUMJOBS:-1}
QD_4K=${BENCH_QD_4K:-16}
QD_1M=${BENCH_QD_1M:-4}
DEV_MIB=${BENCH_DEV_MIB:-128}
ERA_CHECKPOINTS=${BENCH_ERA_CHECKPOINTS:-10}
C_AS_RUST=${BENCH_SELFTEST_C_AS_RUST:-}
CLONE_REGION=${BENCH_CLONE_REGION:-128}
CLONE_TUNED=${BENCH_CLONE_TUNED:-64 16}
CLONE_HYDRATIONS=${BENCH_CLONE_HYDRATIONS:-2}
CLONE_UNHYDRATED=${BENCH_CLONE_UNHYDRATED:-0}
CLONE_ROWS=${BENCH_CLONE_ROWS:-all}
CLONE_LOAD_QDS=${BENCH_CLONE_LOAD_QDS:-1 16}
CLONE_LOAD_BASE=${BENCH_CLONE_LOAD_BASE:-1}
CLONE_LOAD_WINDOW=${BENCH_CLONE_LOAD_WINDOW:-4}
CLONE_SHARE=${BENCH_CLONE_SHARE:-15 20}
CLONE_SRC_DELAY=${BENCH_CLONE_SRC_DELAY:-0 1}
VERITY_RUNS=${BENCH_VERITY_RUNS:-randread-4k seqread-1m randread-4k:bh randread-4k:fec seqread-1m:fec randread-4k:fec-corrupt seqread-1m:fec-corrupt}
VERITY_FEC_ROOTS=${BENCH_VERITY_FEC_ROOTS:-2}
VERITY_FEC_RUNTIME=${BENCH_VERITY_FEC_RUNTIME:-$((3 * RUNTIME))}

W=/tmp/bench
rm -rf "$W"
mkdir -p "$W/raw"
# Which module serves a slot, loading it: selftests/lib/impl.sh (our
# modules are loaded from a copy in $SCRATCH/ko).
SCRATCH=$W TOP=$top
. "$top/selftests/lib/dm.sh"
. "$top/selftests/lib/impl.sh"
# The DM ioctls of the Python parts (DM_MSG_PY, CLONE_PY): dmio.py.
export PYTHONPATH=$top/selftests/lib${PYTHONPATH:+:$PYTHONPATH}
MANIFEST=$W/runs.tsv
FAILED=0

log() { printf "bench: [%4ds] %s\n" "$SECONDS" "$*"; }

# Kernel messages share the console with our stdout (and so with the data we
# print at the end): keep only warnings and worse there. The kernel log
# itself is still checked for reports by tools/guest-wrap.
dmesg -n 5 2>/dev/null || true

# ---- what served a run ------------------------------------------------------
# Process start-ups cost up to a second each under TCG on a busy host: these
# helpers use shell built-ins where they can.
module_line() { # MODULE: "name refcnt=N" from /proc/modules, or nothing
	local name size refs rest
	while read -r name size refs rest; do
		[ "$name" = "${1//-/_}" ] && { echo "$name refcnt=$refs"; return; }
	done </proc/modules
}

loaded_modules() { # REGEX: "name(refs) ..." of the loaded modules matching REGEX
	local name size refs rest out=""
	while read -r name size refs rest; do
		[[ $name =~ $1 ]] && out+="$name($refs) "
	done </proc/modules
	echo "$out"
}

# served_by DM_NAME MODULE|built-in: the live table line, the module that
# owns its target (dm-linear is part of dm-mod, built in here) with its
# reference count, the target's registered version, and the proof that
# MODULE served it (selftests/lib/impl.sh: impl_assert_served; a failed
# proof is also added to $W/proof-failures, a failed run at the end).
served_by() {
	local table type mod t v proof=ok
	table=$(dmsetup table "$1")
	table=${table%%$'\n'*}
	read -r _ _ type _ <<<"$table"
	if [ "$2" = built-in ]; then
		mod="built-in (not in /proc/modules)"
	else
		mod=$(module_line "$2")
		[ -n "$mod" ] || mod="$2 NOT LOADED"
	fi
	while read -r t v; do
		[ "$t" = "$type" ] && break
	done < <(dmsetup targets)
	if ! { impl_select_by "$type" "$2" && impl_assert_served "$1"; } 2>/dev/null; then
		proof="FAILED: $TEST_FAILURE"
		echo "$1: $TEST_FAILURE" >>"$W/proof-failures"
	fi
	echo "table '$table'; module $mod; target $type $v; proof $proof"
}

# slot_select TARGET c|rust RS_MOD: selects the implementation serving that
# slot: C's for the c slot, and for the rust slot when RS_MOD is the C
# module (c_as_rust below); slot_load: selects and loads it.
slot_select() {
	if [ "$2" = c ] || [ "$3" = "dm-$1" ]; then impl_select "$1" c; else impl_select "$1" rust; fi
}
slot_load() {
	if [ "$2" = c ] || [ "$3" = "dm-$1" ]; then impl_load "$1" c; else impl_load "$1" rust; fi
}

# c_as_rust TARGET: true if the C module stands in for the Rust one.
c_as_rust() { # TARGET RUST_KO
	case " $C_AS_RUST " in
	*" $1 "*) return 0 ;;
	" 1 ") [ ! -f "$top/$2.ko" ] ;;
	*) return 1 ;;
	esac
}

# rs_slot TARGET LIBRARY: sets RS_MOD, the module of TARGET's Rust slot:
# dm-TARGET-rs, or C's dm-TARGET under the c_as_rust self-test; then loads
# the kernel LIBRARY both use (dm-bufio, dm-persistent-data). Returns 1,
# with a skip line, when the target cannot be measured.
rs_slot() {
	RS_MOD=dm-$1-rs
	if c_as_rust "$1" "dm-$1-rs"; then
		log "$1: SELFTEST: the C module dm-$1 is in the Rust slot"
		RS_MOD=dm-$1
		printf '%s\n' "$1" >>"$W/c_as_rust.txt"
	elif [ ! -f "$top/dm-$1-rs.ko" ]; then
		skip "$1" "dm-$1-rs.ko not built"
		return 1
	fi
	modprobe "$2" || { skip "$1" "modprobe $2 failed"; return 1; }
}

# ---- fio ------------------------------------------------------------------
# Measurements are queued with fio_job and run by fio_batch: one fio process
# runs the queued jobs one after the other (`stonewall`), in queue order,
# each with its own ramp and report, which saves a fio start-up (seconds
# under TCG) per measurement. The JSON of a batch holds one entry per job.
#
# fio_job TARGET PROFILE CACHE IMPL REP DEV MODE SERVED
#   PROFILE  randread-4k | seqread-1m | randwrite-4k | seqwrite-1m
#   CACHE    "-" (n/a), cold or warm
#   IMPL     raw | c | rust
#   MODE     timed: time_based, BENCH_RUNTIME after BENCH_RAMP;
#            pass:  one pass over the device (each block read or written
#                   once), capped at BENCH_RUNTIME, no ramp: what a cold
#                   cache (or a fresh era) sees
#            load:  time_based, no ramp, until fio_batch_wait stops it
#                   (capped at 300 s): a background load (fio_batch_start)
#            run:   time_based, BENCH_RUNTIME, no ramp: a state that the
#                   run itself changes (clone's "during hydration")
#   SERVED   what serves DEV (table, module), for the log and the results
# JOB_EXTRA (array): further fio options of the next queued job only (a
# region: --offset=, --size=); fio_job empties it.
BATCH_ARGS=() BATCH_LINES=() BATCH_NAME="" BATCH_RO=1 JOB_EXTRA=()
fio_job() {
	local target=$1 profile=$2 cache=$3 impl=$4 rep=$5 dev=$6 mode=$7 served=$8
	local rw bs qd name
	case $profile in
	randread-4k) rw=randread bs=4k qd=$QD_4K ;;
	seqread-1m) rw=read bs=1M qd=$QD_1M ;;
	randwrite-4k) rw=randwrite bs=4k qd=$QD_4K ;;
	seqwrite-1m) rw=write bs=1M qd=$QD_1M ;;
	*) log "unknown profile $profile"; return 1 ;;
	esac
	name=$target-$profile
	[ "$cache" = - ] || name=$name-$cache
	[ -n "$BATCH_NAME" ] || BATCH_NAME=$name-r$rep
	BATCH_ARGS+=(--name="$name-$impl" --stonewall --filename="$dev" --rw="$rw" --bs="$bs"
		--iodepth="$qd" --numjobs="$NUMJOBS")
	case $rw in *read) ;; *) BATCH_RO=0 ;; esac
	case $mode in
	timed) BATCH_ARGS+=(--time_based --runtime="$RUNTIME" --ramp_time="$RAMP") ;;
	load) BATCH_ARGS+=(--time_based --runtime=300) ;;
	run) BATCH_ARGS+=(--time_based --runtime="$RUNTIME") ;;
	*) BATCH_ARGS+=(--runtime="$RUNTIME") ;;
	esac
	BATCH_ARGS+=("${JOB_EXTRA[@]}")
	log "job $name impl=$impl rep=$rep dev=$dev rw=$rw bs=$bs numjobs=$NUMJOBS iodepth=$qd mode=$mode ${JOB_EXTRA[*]}"
	JOB_EXTRA=()
	log "    served by: $served"
	BATCH_LINES+=("$(printf '%s\t' "$target" "$profile" "$cache" "$impl" "$rep" "@FILE@" \
		"$rw" "$bs" "$NUMJOBS" "$qd" "$mode" "@RC@" "$served" "$name-$impl")")
}

# fio_batch: runs the queued jobs and waits for them. fio_batch_start runs
# them in the background (FIO_PID) and returns at once; fio_batch_wait
# [stop] waits for them, after SIGTERM with "stop" (a `load` job: fio then
# writes its JSON for the time run so far and exits with 128, which counts
# as success if the JSON was written).
FIO_PID="" PEND_FILE="" PEND_LINES=()
fio_batch_start() {
	local ro=()
	[ ${#BATCH_ARGS[@]} -gt 0 ] || return 0
	# fio's --readonly guard is global: only for batches without writes.
	[ "$BATCH_RO" = 0 ] || ro=(--readonly)
	PEND_FILE=raw/$BATCH_NAME.json
	PEND_LINES=("${BATCH_LINES[@]}")
	local a n=0
	for a in "${BATCH_ARGS[@]}"; do [[ $a != --name=* ]] || n=$((n + 1)); done
	log "fio: $n job(s) -> $PEND_FILE"
	# In $W: fio writes the output of an exec_prerun there (the project
	# directory, the guest's working directory, is read-only).
	(cd "$W" && exec fio "${ro[@]}" --direct=1 --ioengine=libaio --group_reporting \
		--output-format=json --output="$W/$PEND_FILE" "${BATCH_ARGS[@]}" >"$W/fio.stderr" 2>&1) &
	FIO_PID=$!
	BATCH_ARGS=() BATCH_LINES=() BATCH_NAME="" BATCH_RO=1
}

fio_batch_wait() { # [stop]
	local rc l
	[ -n "$FIO_PID" ] || return 0
	[ "${1:-}" != stop ] || kill -TERM "$FIO_PID" 2>/dev/null
	wait "$FIO_PID"
	rc=$?
	if [ "${1:-}" = stop ] && [ $rc -eq 128 ] && grep -q '"jobs"' "$W/$PEND_FILE" 2>/dev/null; then
		rc=0
	fi
	if [ $rc -ne 0 ]; then
		FAILED=$((FAILED + 1))
		log "    FAILED: fio exit $rc: $(tail -n 3 "$W/fio.stderr" | tr '\n' ' ')"
	fi
	for l in "${PEND_LINES[@]}"; do
		l=${l//@FILE@/$PEND_FILE}
		echo "${l//@RC@/$rc}" | sed 's/\t$//' >>"$MANIFEST"
	done
	FIO_PID="" PEND_FILE="" PEND_LINES=()
}

fio_batch() {
	[ ${#BATCH_ARGS[@]} -gt 0 ] || return 0
	fio_batch_start
	fio_batch_wait
}

# order REP: the two implementations in the order of this repetition,
# C first on odd repetitions and Rust first on even ones, so that drift
# during the run does not favour either.
order() { if [ $(($1 % 2)) = 1 ]; then echo "c rust"; else echo "rust c"; fi; }

prefill() { # DEV: write the whole device once, so no run pays brd's page allocation
	fio --name=prefill --filename="$1" --rw=write --bs=1M --direct=1 \
		--ioengine=libaio --iodepth=4 --output=/dev/null >/dev/null 2>&1 ||
		log "prefill of $1 failed"
}

skip() { # TARGET REASON
	log "skipped: $2"
	printf '%s\t%s\n' "$1" "$2" >>"$W/skipped.tsv"
}

# ---- targets ----------------------------------------------------------------
# One function per target: bench_<target>. Each sets up its devices, queues
# fio_job for raw, c and rust with the right served_by proof, alternating C
# and Rust (see order), runs fio_batch, and removes what it created. The
# measurements of one (profile, repetition) share a fio batch where the
# devices allow it. To add a target (clone, era): write bench_<target> on
# this model (c_as_rust and skip handle a missing Rust module) and add it to
# the default BENCH_TARGETS; tools/bench-report.py needs no change (a target
# that times something other than fio, as era's checkpoint messages, appends
# to messages.tsv, which the report reads too).

bench_linear() {
	local rs_ko=dm-linear-rs rs_target=linear_rs rs_mod=dm-linear-rs
	local dev=/dev/ram0 sectors rep profile impl
	if c_as_rust linear $rs_ko; then
		log "linear: SELFTEST: the C target 'linear' is in the Rust slot"
		rs_target=linear rs_mod=built-in
		printf 'linear\n' >>"$W/c_as_rust.txt"
	elif [ ! -f "$top/$rs_ko.ko" ]; then
		skip linear "$rs_ko.ko not built"
		return 0
	else
		impl_load linear rust || { skip linear "insmod $rs_ko.ko failed"; return 0; }
	fi
	prefill $dev
	sectors=$(blockdev --getsz $dev)
	dmsetup create bench-linear-c --table "0 $sectors linear $dev 0" &&
		dmsetup create bench-linear-rust --table "0 $sectors $rs_target $dev 0" ||
		{ skip linear "dmsetup create failed"; dmsetup remove bench-linear-c 2>/dev/null; return 0; }
	log "linear: devices"
	dmsetup table | sed 's/^/    /'
	lsmod | sed 's/^/    /'
	local served_c served_rust
	served_c=$(served_by bench-linear-c built-in)
	served_rust=$(served_by bench-linear-rust $rs_mod)
	for rep in $(seq 1 "$REPS"); do
		for profile in randread-4k seqread-1m randwrite-4k seqwrite-1m; do
			fio_job linear $profile - raw "$rep" $dev timed "raw $dev"
			for impl in $(order "$rep"); do
				if [ "$impl" = c ]; then
					fio_job linear $profile - c "$rep" /dev/mapper/bench-linear-c timed "$served_c"
				else
					fio_job linear $profile - rust "$rep" /dev/mapper/bench-linear-rust timed "$served_rust"
				fi
			done
			fio_batch
		done
	done
	dmsetup remove bench-linear-c
	dmsetup remove bench-linear-rust
	[ "$rs_mod" = built-in ] || { impl_select linear rust && impl_unload; }
}

# verity: the C module and ours register the same target name, so only one
# is loaded at a time: each (repetition, profile) loads C, measures, unloads,
# loads Rust, measures, unloads (or the other way round). Each measurement is
# on a fresh device: a cold pass (dm-bufio holds no hash block: every hash
# block is read and verified when first needed), then a warm timed run on
# the same device (hash blocks cached and verified). 4k random reads are
# measured a second time with the table option try_verify_in_tasklet
# (verification in the BH workqueue when the hash blocks are cached): cache
# states cold-bh and warm-bh. The image has FEC parity on /dev/ram3 (roots
# BENCH_VERITY_FEC_ROOTS); the FEC runs use veritysetup's table with
# use_fec_from_device: "fec", a timed run on the clean image (what the FEC
# options cost when nothing is corrected); "fec-corrupt", a timed run over
# the first MiB after every 8th block of it was corrupted (4k: random reads
# of those blocks only, fio's blockalign=32k, so each read is corrected; 1M:
# 32 blocks corrected per read); the MiB must then read back as it was, and
# is restored after both implementations ran.
#
# The hash cache that matters is dm-bufio's, which belongs to the device and
# goes with it (and the module is reloaded). Before each fresh device the
# page cache of the data and hash devices is dropped as well, with
# POSIX_FADV_DONTNEED on those two devices only: a global drop_caches would
# also evict the guest's programs, which live on 9p here, and every fio and
# dmsetup start after it would pay for reading them again (seconds under TCG;
# 30 s for the first fio after one drop_caches on a busy host).
drop_dev_cache() { # DEV...
	local d
	for d in "$@"; do dd if="$d" of=/dev/null iflag=nocache count=0 status=none; done
}
VERITY_TABLE=""
verity_load() { slot_load verity "$1" "$VERITY_RS_MOD"; } # c|rust
verity_unload() { slot_select verity "$1" "$VERITY_RS_MOD" && impl_unload; }

bench_verity() {
	local data=/dev/ram1 hash=/dev/ram2 fec=/dev/ram3 nblocks root salt rep run profile kind impl mod served table sfx
	local st fec_ok=0
	rs_slot verity dm-bufio || return 0
	VERITY_RS_MOD=$RS_MOD
	# Neither may be loaded when we start.
	! module_loaded_any || { rmmod dm_verity dm_verity_rs 2>/dev/null || true; }
	prefill $data
	# With FEC parity on $fec (roots 2, avbtool's default): the hash tree
	# is the same with or without it; the tables without FEC options do
	# not use it.
	veritysetup format "$data" "$hash" --hash=sha256 --data-block-size=4096 \
		--hash-block-size=4096 --fec-device="$fec" --fec-roots="$VERITY_FEC_ROOTS" \
		>"$W/verity-format.txt" 2>&1 ||
		{ skip verity "veritysetup format failed: $(tail -n1 "$W/verity-format.txt")"; return 0; }
	root=$(awk -F: '/^Root hash/ {gsub(/[ \t]/, "", $2); print $2}' "$W/verity-format.txt")
	salt=$(awk -F: '/^Salt/ {gsub(/[ \t]/, "", $2); print $2}' "$W/verity-format.txt")
	nblocks=$(($(blockdev --getsize64 $data) / 4096))
	# Hash area after the superblock (block 0 of the hash device).
	VERITY_TABLE="0 $((nblocks * 8)) verity 1 $data $hash 4096 4096 $nblocks 1 sha256 $root $salt"
	log "verity: table: $VERITY_TABLE"
	verity_fec_setup "$data" "$hash" "$fec" "$root" && fec_ok=1
	for rep in $(seq 1 "$REPS"); do
		for run in $VERITY_RUNS; do
			profile=${run%%:*} kind=${run#*:}
			[ "$run" != "$profile" ] || kind=plain
			case $kind in
			plain) table=$VERITY_TABLE sfx= ;;
			bh) table="$VERITY_TABLE 1 try_verify_in_tasklet" sfx=-bh ;;
			fec | fec-corrupt)
				[ $fec_ok = 1 ] || continue
				table=$VERITY_FEC_TABLE sfx=
				;;
			*) log "FAILED: unknown verity run $run (BENCH_VERITY_RUNS)"; FAILED=$((FAILED + 1)); continue ;;
			esac
			if [ $kind = plain ]; then
				fio_job verity $profile - raw "$rep" $data timed "raw $data"
				fio_batch
			fi
			[ $kind != fec-corrupt ] || verity_fec_corrupt "$data"
			for impl in $(order "$rep"); do
				if [ "$impl" = c ]; then mod=dm-verity; else mod=$VERITY_RS_MOD; fi
				verity_load "$impl" || { log "FAILED: loading $mod"; FAILED=$((FAILED + 1)); continue; }
				drop_dev_cache $data $hash $fec
				if ! dmsetup create bench-verity --readonly --table "$table"; then
					log "FAILED: dmsetup create bench-verity ($mod)"
					FAILED=$((FAILED + 1))
					verity_unload "$impl"
					continue
				fi
				served=$(served_by bench-verity $mod)
				log "verity: loaded: $(loaded_modules 'verity|bufio|reed')"
				case $kind in
				plain | bh)
					fio_job verity $profile cold$sfx "$impl" "$rep" /dev/mapper/bench-verity pass "$served"
					fio_job verity $profile warm$sfx "$impl" "$rep" /dev/mapper/bench-verity timed "$served"
					;;
				fec) fio_job verity $profile fec "$impl" "$rep" /dev/mapper/bench-verity timed "$served" ;;
				fec-corrupt)
					# Only the first MiB: in it every 8th block is corrupt.
					JOB_EXTRA=(--offset=0 --size=1M --runtime="$VERITY_FEC_RUNTIME")
					[ $profile != randread-4k ] || JOB_EXTRA+=(--blockalign=32k)
					fio_job verity $profile fec-corrupt "$impl" "$rep" /dev/mapper/bench-verity timed "$served"
					;;
				esac
				BATCH_NAME=verity-$profile-$kind-$impl-r$rep
				fio_batch
				st=$(dmsetup status bench-verity)
				log "    status: $st"
				[ $kind != bh ] || [ "$impl" = c ] || [ "$VERITY_RS_MOD" = dm-verity ] ||
					log "    verified_in_bh: $(cat /sys/module/dm_verity_rs/parameters/verified_in_bh)"
				case "$st" in *" V") ;; *) log "FAILED: verity status is not V (verified)"; FAILED=$((FAILED + 1)) ;; esac
				[ $kind != fec-corrupt ] || verity_fec_check "$impl" "$rep" $profile
				dmsetup remove bench-verity
				verity_unload "$impl"
			done
			[ $kind != fec-corrupt ] || verity_fec_restore "$data"
		done
	done
}

# verity_fec_setup DATA HASH FEC ROOT: VERITY_FEC_TABLE, the table line
# with the FEC options as veritysetup makes it (C's dm-verity loaded for
# `veritysetup open`, then unloaded), and VERITY_FEC_BLOCKS (the corrupt
# blocks of the fec-corrupt runs: every 8th block of the first MiB, each
# in an interleaving group of its own, so that each codeword has one bad
# byte: within what RS(255, 253) corrects without erasures).
verity_fec_setup() {
	local t n roots fblocks rounds b g used=" " f
	modprobe dm-verity && veritysetup open "$1" bench-verity-fec "$2" "$4" --fec-device="$3" \
		--fec-roots="$VERITY_FEC_ROOTS" >"$W/verity-open.txt" 2>&1 ||
		{ skip verity-fec "veritysetup open with FEC failed: $(tail -n1 "$W/verity-open.txt")"; rmmod dm_verity; return 1; }
	t=$(dmsetup table bench-verity-fec)
	veritysetup close bench-verity-fec
	rmmod dm_verity
	read -r -a f <<<"$t"
	VERITY_FEC_TABLE="$t"
	for ((n = 0; n < ${#f[@]}; n++)); do
		case ${f[n]} in
		fec_roots) roots=${f[n + 1]} ;;
		fec_blocks) fblocks=${f[n + 1]} ;;
		esac
	done
	[ -n "${roots:-}" ] && [ -n "${fblocks:-}" ] ||
		{ skip verity-fec "no FEC options in veritysetup's table: $t"; return 1; }
	rounds=$(((fblocks + 255 - roots - 1) / (255 - roots)))
	VERITY_FEC_BLOCKS=""
	for ((b = 0; b < 256; b += 8)); do
		g=$((b % rounds))
		[[ $used != *" $g "* ]] ||
			{ skip verity-fec "fec-corrupt: blocks 0, 8, ... of the first MiB share an RS group ($rounds rounds): device too small"; return 1; }
		used+="$g "
		VERITY_FEC_BLOCKS+="$b "
	done
	log "verity: FEC table: $VERITY_FEC_TABLE ($rounds rounds)"
}

# verity_fec_corrupt DATA: keeps the first MiB of DATA, then flips every
# bit of VERITY_FEC_BLOCKS (direct I/O: the targets read brd, not the page
# cache). verity_fec_restore DATA writes the kept MiB back.
verity_fec_corrupt() {
	dd if="$1" of="$W/fec-orig" bs=1M count=1 iflag=direct status=none &&
		perl -e 'local $/; my $d = <STDIN>; for my $b (@ARGV) { substr($d, $b * 4096, 4096) ^= "\xff" x 4096 } print $d' \
			$VERITY_FEC_BLOCKS <"$W/fec-orig" >"$W/fec-bad" &&
		dd if="$W/fec-bad" of="$1" bs=1M count=1 oflag=direct conv=notrunc status=none ||
		{ log "FAILED: corrupting $1"; FAILED=$((FAILED + 1)); }
	log "verity: corrupt blocks (every bit flipped): $VERITY_FEC_BLOCKS"
}
verity_fec_restore() {
	dd if="$W/fec-orig" of="$1" bs=1M count=1 oflag=direct conv=notrunc status=none ||
		{ log "FAILED: restoring $1"; FAILED=$((FAILED + 1)); }
	rm -f "$W/fec-orig" "$W/fec-bad"
}
# verity_fec_check IMPL REP PROFILE: the device reads the first MiB back as
# it was before the corruption (every corrupt block corrected).
verity_fec_check() {
	local what="fec-corrupt $3: the first MiB reads back corrected"
	if dd if=/dev/mapper/bench-verity of="$W/fec-read" bs=1M count=1 iflag=direct status=none &&
		cmp -s "$W/fec-read" "$W/fec-orig"; then
		check_line verity "$1" "$2" "$what" ok "$VERITY_FEC_BLOCKS"
	else
		check_line verity "$1" "$2" "$what" FAILED "$VERITY_FEC_BLOCKS"
		log "FAILED: $what ($1, rep $2)"
		FAILED=$((FAILED + 1))
	fi
	rm -f "$W/fec-read"
}

module_loaded_any() { grep -qE '^dm_verity(_rs)? ' /proc/modules; }

# era: the C module (dm_era) and ours (dm_era_rs) register the same target
# name, so only one is loaded at a time: each repetition loads C, measures,
# removes the device and unloads, then the same with Rust (or the other way
# round, see order). Both need dm-persistent-data.
#
# The origin is /dev/ram4 and /dev/ram5 end to end (a C dm-linear device,
# bench-era-origin: 2 x BENCH_DEV_MIB, so that each "fresh" pass has a region
# of its own that a 3 s pass does not exhaust); the metadata is /dev/ram3.
# Each (repetition, implementation) gets a fresh era device: the first 4 KiB
# of the metadata are zeroed, so the target formats it and starts in era 1
# with no block marked. The era block size is 8 sectors (4 KiB): every
# aligned 4k write is exactly one era block. One fio process then runs, one
# job after the other:
#   randwrite-4k fresh   one random pass over the first half of the device
#                        (fio's random map: every block at most once),
#                        capped at BENCH_RUNTIME: every write is the first
#                        to its block in the era, so each one goes through
#                        the worker (mark on disk, commit, then submit)
#   seqwrite-1m fresh    one sequential pass over the second half, capped
#                        likewise: each 1M write is 256 new era blocks
#   (not measured)       a sequential 1M pass over region R (the first
#                        BENCH_DEV_MIB/8 of the second half): the first
#                        write of "write the same region twice"
#   randwrite-4k rewrite a timed 4k random run over R: every block is
#                        already marked in this era: the fast path (map only)
#   randread-4k, seqread-1m
#                        timed runs over the whole device (reads are passed
#                        through: nothing to mark)
#   randwrite-4k ckpt-load
#                        a 4k random write load over the whole device,
#                        during which, once it writes (its exec_prerun
#                        marker and 500 writes seen), checkpoints are sent
#                        and timed: BENCH_ERA_CHECKPOINTS `dmsetup message
#                        bench-era 0 checkpoint`, one after the other (each
#                        dmsetup start, ~0.2 s under TCG, is the gap), each
#                        timed in the shell ($EPOCHREALTIME, a bash
#                        built-in: `date +%s%N` would add its own process
#                        start to the interval), and 2 timed `dmsetup
#                        version` (the floor: a dmsetup process and an
#                        ioctl that reaches no target); then
#                        BENCH_ERA_CHECKPOINTS more, ERA_GAP apart, as bare
#                        DM_TARGET_MSG ioctls from one python3 process,
#                        each timed around the ioctl (DM_MSG_PY), and 3
#                        DM_VERSION ioctls; then fio is stopped.
# The raw origin (the four profiles, timed) runs once, in the first round. Afterwards the era number in `dmsetup status` must be 1 + the number
# of checkpoints (every message took effect).
ERA_RS_MOD=dm-era-rs ERA_ORIGIN=/dev/mapper/bench-era-origin ERA_MD=/dev/ram3 ERA_SIZE=0
era_mod() { slot_select era "$1" "$ERA_RS_MOD" && echo "$IMPL_MOD"; }
era_load() { slot_load era "$1" "$ERA_RS_MOD"; } # c|rust
era_unload() { slot_select era "$1" "$ERA_RS_MOD" && impl_unload; }

# A sleep without a process: read with a timeout on a pipe nobody writes.
exec {SNOOZE_FD}<> <(:)
snooze() { read -r -t "$1" -u "$SNOOZE_FD" _ || true; }

# us_since START: microseconds from START ($EPOCHREALTIME) to now.
us_since() {
	local now=$EPOCHREALTIME s=${1/[.,]/} n
	n=${now/[.,]/}
	echo $((10#$n - 10#$s))
}

# dm_writes NAME: writes completed on dm device NAME (/sys/block/dm-N/stat).
dm_writes() {
	local f n st
	for f in /sys/block/dm-*/dm/name; do
		read -r n <"$f"
		if [ "$n" = "$1" ]; then
			read -r -a st <"${f%/dm/name}/stat"
			echo "${st[4]}"
			return
		fi
	done
	echo 0
}

# tsv_line FILE FIELD...: one line of tab-separated FIELDs in $W/FILE, for
# tools/bench-report; the *_line writers (msg_line, timing_line...) name
# each file's fields.
tsv_line() {
	local IFS=$'\t' f=$1
	shift
	echo "$*" >>"$W/$f"
}

# msg_line TARGET MESSAGE VIA IMPL REP I US RC SERVED: one timed message in
# messages.tsv. VIA: dmsetup (wall clock around the dmsetup process) or
# ioctl (around the DM_TARGET_MSG ioctl alone); MESSAGE "floor": the same
# without a target (`dmsetup version`, DM_VERSION ioctl).
msg_line() { tsv_line messages.tsv "$@"; }

# DM_MSG_PY NAME MESSAGE N GAP: sends MESSAGE to device NAME N times, GAP
# seconds apart, each as one DM_TARGET_MSG ioctl on /dev/mapper/control,
# timed around the ioctl (what the target and dm core take, without starting
# a process: dmsetup's start costs ~0.2 s under TCG, far more than the
# message); then 3 DM_VERSION ioctls (the floor). Prints "msg|floor I US
# ERRNO" lines. The ioctls are built by selftests/lib/dmio.py.
DM_MSG_PY='
import fcntl, os, sys, time
import dmio
name, msg, n, gap = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
fd = os.open("/dev/mapper/control", os.O_RDWR)
def call(nr, payload=b""):
    code, buf = dmio.request(nr, name, data=payload, room=8)
    err = 0
    t = time.perf_counter_ns()
    try:
        fcntl.ioctl(fd, code, buf, True)
    except OSError as e:
        err = e.errno
    return (time.perf_counter_ns() - t) // 1000, err
out = []
for i in range(1, n + 1):
    out.append(("msg", i) + call(dmio.MSG, dmio.message_data(msg)))
    time.sleep(gap)
for i in range(1, 4):
    out.append(("floor", i) + call(dmio.VERSION))
for o in out:
    print(*o)
'
ERA_GAP=0.1

era_round() { # IMPL REP WITH_RAW
	local impl=$1 rep=$2 with_raw=$3 mod served dev=/dev/mapper/bench-era
	local size half r i t0 us rc st era w0 n lat="" floor="" ilat="" ifloor="" marker what ioctl_out
	mod=$(era_mod "$impl")
	if grep -qE '^dm_era(_rs)? ' /proc/modules; then
		log "FAILED: an era module is still loaded: $(loaded_modules '^dm_era')"
		FAILED=$((FAILED + 1))
		return 1
	fi
	era_load "$impl" || { log "FAILED: loading $mod"; FAILED=$((FAILED + 1)); return 1; }
	dd if=/dev/zero of=$ERA_MD bs=4096 count=1 oflag=direct status=none
	size=$ERA_SIZE
	if ! dmsetup create bench-era --table "0 $((size / 512)) era $ERA_MD $ERA_ORIGIN 8"; then
		log "FAILED: dmsetup create bench-era ($mod)"
		FAILED=$((FAILED + 1))
		era_unload "$impl"
		return 1
	fi
	served=$(served_by bench-era $mod)
	log "era: $impl rep $rep: loaded: $(loaded_modules 'era|persistent|bufio'); status: $(dmsetup status bench-era)"
	half=$((size / 2)) r=$((size / 16))
	if [ "$with_raw" = 1 ]; then
		for what in randread-4k seqread-1m randwrite-4k seqwrite-1m; do
			fio_job era $what - raw "$rep" $ERA_ORIGIN timed "raw $ERA_ORIGIN (linear: ram4, ram5)"
		done
	fi
	JOB_EXTRA=(--offset=0 --size=$half)
	fio_job era randwrite-4k fresh "$impl" "$rep" $dev pass "$served"
	JOB_EXTRA=(--offset=$half --size=$half)
	fio_job era seqwrite-1m fresh "$impl" "$rep" $dev pass "$served"
	# The first pass over R (not measured, not in runs.tsv), then the second.
	BATCH_ARGS+=(--name=era-rewrite-first-pass-$impl --stonewall --filename=$dev
		--rw=write --bs=1M --iodepth="$QD_1M" --numjobs=1 --offset=$half --size=$r)
	JOB_EXTRA=(--offset=$half --size=$r)
	fio_job era randwrite-4k rewrite "$impl" "$rep" $dev timed "$served"
	# Reads (era passes them through, nothing to mark): timed runs.
	fio_job era randread-4k - "$impl" "$rep" $dev timed "$served"
	fio_job era seqread-1m - "$impl" "$rep" $dev timed "$served"
	# fio runs exec_prerun through a shell, output to JOB.prerun.txt in its
	# working directory ($W, see fio_batch_start).
	marker=$W/era-load-started
	rm -f "$marker"
	JOB_EXTRA=("--exec_prerun=touch $marker")
	fio_job era randwrite-4k ckpt-load "$impl" "$rep" $dev load "$served"
	BATCH_NAME=era-$impl-r$rep
	fio_batch_start
	# Wait for the load job (fio starts slowly under TCG, and the jobs
	# before it run first), then until its writes reach the device.
	while [ ! -e "$marker" ] && kill -0 "$FIO_PID" 2>/dev/null; do snooze 0.2; done
	w0=$(dm_writes bench-era) n=$w0
	for i in $(seq 1 100); do
		n=$(dm_writes bench-era)
		[ $((n - w0)) -lt 500 ] || break
		kill -0 "$FIO_PID" 2>/dev/null || break
		snooze 0.1
	done
	log "era: load running ($((n - w0)) writes seen); $ERA_CHECKPOINTS + $ERA_CHECKPOINTS checkpoints"
	for i in $(seq 1 "$ERA_CHECKPOINTS"); do
		t0=$EPOCHREALTIME
		dmsetup message bench-era 0 checkpoint
		rc=$?
		us=$(us_since "$t0")
		msg_line era checkpoint dmsetup "$impl" "$rep" "$i" "$us" "$rc" "$served"
		lat+="$us "
		[ $rc -eq 0 ] || { log "FAILED: dmsetup message checkpoint ($mod): exit $rc"; FAILED=$((FAILED + 1)); }
	done
	for i in 1 2; do
		t0=$EPOCHREALTIME
		dmsetup version >/dev/null
		rc=$?
		us=$(us_since "$t0")
		msg_line era floor dmsetup "$impl" "$rep" "$i" "$us" "$rc" "$served"
		floor+="$us "
	done
	# The same message as one ioctl each, timed around the ioctl alone.
	ioctl_out=$(python3 -c "$DM_MSG_PY" bench-era checkpoint "$ERA_CHECKPOINTS" "$ERA_GAP" 2>&1)
	rc=$?
	[ $rc -eq 0 ] || { log "FAILED: ioctl checkpoints ($mod): $ioctl_out"; FAILED=$((FAILED + 1)); }
	while read -r what i us rc; do
		case $what in
		msg) msg_line era checkpoint ioctl "$impl" "$rep" "$i" "$us" "$rc" "$served"; ilat+="$us " ;;
		floor) msg_line era floor ioctl "$impl" "$rep" "$i" "$us" "$rc" "$served"; ifloor+="$us " ;;
		esac
		[ "$rc" = 0 ] || { log "FAILED: ioctl checkpoint $i ($mod): errno $rc"; FAILED=$((FAILED + 1)); }
	done <<<"$ioctl_out"
	fio_batch_wait stop
	rm -f "$marker" "$W"/*.prerun.txt
	log "era: checkpoint latencies (us), dmsetup: $lat; dmsetup version: $floor"
	log "era: checkpoint latencies (us), ioctl: $ilat; DM_VERSION ioctl: $ifloor"
	st=$(dmsetup status bench-era)
	log "    status: $st; $(loaded_modules '^dm_era')"
	read -r _ _ _ _ _ era _ <<<"$st"
	if [ "$era" != $((2 * ERA_CHECKPOINTS + 1)) ]; then
		log "FAILED: era $era after $((2 * ERA_CHECKPOINTS)) checkpoints (expected $((2 * ERA_CHECKPOINTS + 1)))"
		FAILED=$((FAILED + 1))
	fi
	dmsetup remove bench-era
	era_unload "$impl"
}

bench_era() {
	local rep impl raw=1 sz
	rs_slot era dm-persistent-data || return 0
	ERA_RS_MOD=$RS_MOD
	# Neither may be loaded when we start.
	! grep -qE '^dm_era(_rs)? ' /proc/modules || rmmod dm_era dm_era_rs 2>/dev/null
	sz=$(blockdev --getsz /dev/ram4)
	dmsetup create bench-era-origin --table "0 $sz linear /dev/ram4 0
$sz $sz linear /dev/ram5 0" || { skip era "dmsetup create bench-era-origin failed"; return 0; }
	ERA_SIZE=$(blockdev --getsize64 $ERA_ORIGIN)
	# Write the origin and the metadata device end to end (brd pages).
	fio --name=prefill-origin --filename=$ERA_ORIGIN --rw=write --bs=1M --direct=1 \
		--ioengine=libaio --iodepth=4 --name=prefill-md --filename=$ERA_MD --rw=write \
		--bs=1M --direct=1 --ioengine=libaio --iodepth=4 --output=/dev/null >/dev/null 2>&1 ||
		log "prefill of $ERA_ORIGIN, $ERA_MD failed"
	for rep in $(seq 1 "$REPS"); do
		for impl in $(order "$rep"); do
			era_round "$impl" "$rep" $raw
			raw=0
		done
	done
	dmsetup remove bench-era-origin
}

# clone: the C module (dm_clone) and ours (dm_clone_rs) register the same
# target name, so only one is loaded at a time: each repetition loads C,
# measures, removes its devices and unloads, then the same with Rust (or the
# other way round, see order). Both need dm-persistent-data.
#
# Devices (brd, BENCH_DEV_MIB each): source /dev/ram0, written once with
# random data (fio refill_buffers: every 4 KiB block differs); destinations
# /dev/ram1 and /dev/ram2; metadata /dev/ram3 and /dev/ram4. Every clone
# device is created fresh (clone_create): the first 4 MiB of its metadata
# device are zeroed (both implementations format a device whose superblock
# is zeroes) and, before every checked run, its destination is zeroed end
# to end (so no data of an earlier run can pass a check); region size BENCH_CLONE_REGION (128 sectors = 64 KiB)
# and the feature no_hydration: nothing is copied until the bench sends
# `enable_hydration`. Per (repetition, implementation), in this order:
#   hydration <T>/<B>  time to hydrate the whole device with no other I/O:
#                      a device with hydration_threshold T and
#                      hydration_batch_size B (BENCH_CLONE_TUNED, "64 16");
#                      one python3 process (CLONE_PY) sends enable_hydration
#                      as an ioctl and polls the status every 5 ms, as a
#                      DM_TABLE_STATUS ioctl with DM_NOFLUSH_FLAG (a status
#                      without it commits the metadata and flushes the
#                      destination, which would slow the hydration it
#                      measures): seconds until every region is hydrated,
#                      and ("committed") until the table event of the commit
#                      that records the last ones (either target commits
#                      from a 1 s timer once more than a second has passed
#                      since its last commit: 0-2 s later).
#   hydration 1/1      the same with the target's defaults (no core
#                      arguments: hydration_threshold 1, batch 1).
#                      BENCH_CLONE_HYDRATIONS (2) of each, alternating,
#                      each on a fresh device (fresh metadata); the first
#                      of each starts from a zeroed destination, and then
#                      the whole destination must equal the source (the
#                      later ones keep the destination: the same copies and
#                      writes). The last device (1/1) is fully hydrated
#                      and stays for:
#   randread-4k, seqread-1m, randwrite-4k, seqwrite-1m after
#                      timed fio runs (ramp, BENCH_RUNTIME) on it (checked
#                      to be hydrated), with the raw jobs on /dev/ram2
#                      (first implementation of each repetition only)
#   randread-4k during, randwrite-4k during, hydration under <profile> load
#                      two fresh devices (threshold and batch as the tuned
#                      profile), one after the other: a fio load (time_based,
#                      stopped by the bench) runs on the device; CLONE_PY
#                      (started before fio) enables hydration once the
#                      first I/O of the load completed, polls the status
#                      until every region is hydrated, and reads the I/O
#                      the device completed in that window from
#                      /sys/block/dm-N/stat (windows.tsv: the "during"
#                      rows); the window is the hydration time under that
#                      load (timings.tsv). Both targets start background
#                      copies only while no bio is in flight (C: the
#                      ios_in_flight check in do_hydration), so the load
#                      and the copies compete; unhydrated regions are read
#                      from the source, and a 4k write to an unhydrated
#                      region waits for the copy of its region.
#                      The write load writes a fixed pattern
#                      (CLONE_PATTERN) below the last 8 MiB only. Then
#                      hydration is enabled on both until they are fully
#                      hydrated, and: the read device's destination must
#                      equal the source; the write device's must equal the
#                      source block for block, except blocks below the
#                      last 8 MiB that hold the pattern (and at least one
#                      must).
#   hydration rate under load (loads.tsv; the only clone rows with
#   BENCH_CLONE_ROWS=load)
#                      first an idle hydration (the tuned profile, no
#                      load, until done); then per load profile
#                      (randread-4k, randwrite-4k), iodepth
#                      (BENCH_CLONE_LOAD_QDS, "1 16") and policy, a new
#                      device (tuned threshold and batch; the destination
#                      kept, not checked) under a fio load over the whole
#                      device: once its first I/O completed, the load is
#                      measured alone for BENCH_CLONE_LOAD_BASE (1) s
#                      (hydration off; the status polled every 10 ms, as
#                      next), then hydration is enabled and the
#                      status polled every 10 ms until every region is
#                      hydrated or BENCH_CLONE_LOAD_WINDOW (4) s passed:
#                      regions hydrated per second of load, and the
#                      device's own IOPS in both windows (its
#                      /sys/block/dm-N/stat). Policies: "idle-only" (both
#                      implementations' default, C's: no background copy
#                      starts while a bio is in flight) and, ours only,
#                      "share=P" (the extension core argument
#                      hydration_share_under_io P, BENCH_CLONE_SHARE, "15 20";
#                      measured until done, up to 120 s). The write
#                      load writes the first 8 MiB only: a 4k write to an
#                      unhydrated region hydrates its region itself, and
#                      those 128 regions are hydrated by the writes within
#                      the base window; the background copies the rest
#                      while the writes go on (to hydrated regions).
#   randread-4k unhydrated, randwrite-4k unhydrated
#                      only with BENCH_CLONE_UNHYDRATED=1: runs (mode run)
#                      on two fresh devices (fresh metadata) whose
#                      background hydration stays off: reads of
#                      unhydrated regions and first writes (copy, then
#                      write) alone; the regions hydrated (by the writes)
#                      go to counts.tsv. Not checked.
# Every data check goes to checks.tsv; a failed one counts as a failed run.
CLONE_RS_MOD=dm-clone-rs CLONE_SRC=/dev/ram0 CLONE_SECTORS=0 CLONE_BYTES=0
CLONE_PATTERN=0x72757374646d2d62 # "rustdm-b"
clone_mod() { slot_select clone "$1" "$CLONE_RS_MOD" && echo "$IMPL_MOD"; }
clone_load() { slot_load clone "$1" "$CLONE_RS_MOD"; } # c|rust

# CLONE_PY CMD ARGS: what the clone bench does in one process, with ioctls
# on /dev/mapper/control (see the comment above bench_clone):
#   hydrate NAME DEADLINE       enable hydration, time it (status polls)
#   during DEADLINE READY DONE (NAME TAG)...
#                               per NAME in turn: once TAG-go exists (fio's
#                               job on NAME started) and an I/O completed,
#                               enable hydration and time it; the I/O done
#                               in that window; then creates TAG-hydrated
#                               (creates READY when set up; gives up when
#                               DONE exists)
#   load READY DONE (NAME TAG BASE CAP)...
#                               per NAME in turn: once TAG-go exists (and,
#                               with BASE >= 0, an I/O of the load
#                               completed and BASE seconds of load were
#                               counted), enable hydration until every
#                               region is hydrated or CAP seconds passed;
#                               the regions hydrated and the device's I/O
#                               in both windows; then creates TAG-hydrated
#   wait-hydrated DEADLINE NAME...
#                               enable hydration, wait until all hydrated
#   compare DEV SRC             every 4 KiB block of DEV equals SRC's
#   compare-written DEV SRC WLEN PATTERN
#                               the same, except blocks below WLEN that hold
#                               PATTERN (and at least one must)
# Several commands separated by "--" run in one process, in order.
# Devices are read with O_DIRECT (the page cache of a brd device would not
# see what dm wrote underneath).
CLONE_PY='
import fcntl, mmap, os, sys, time
import dmio
BLK, CHUNK = 4096, 1 << 20
ctl = os.open("/dev/mapper/control", os.O_RDWR)
now = time.monotonic

STATUS_REQ = {}

def status(name):
    """(event_nr, hydrated, total, line); DM_NOFLUSH_FLAG: no commit.
    One request per device, built once and copied afresh for each poll: a
    poll must cost little next to what it measures (a new 16 KiB request
    per poll took about 1.5 ms of guest time under TCG)."""
    if name not in STATUS_REQ:
        STATUS_REQ[name] = dmio.request(dmio.TSTATUS, name, dmio.F_NOFLUSH, room=1024)
    code, template = STATUS_REQ[name]
    b = bytearray(template)
    fcntl.ioctl(ctl, code, b, True)
    start, count, opens, flags, event = dmio.header(b)
    if flags & dmio.F_BUFFER_FULL or count != 1:
        raise OSError("status of %s: %d targets, flags %#x" % (name, count, flags))
    line = dmio.targets(b)[0][1]
    h, n = line.split()[3].split("/")
    return event, int(h), int(n), line

def message(name, *words):
    dmio.message(ctl, name, " ".join(words), room=16384)

def stat_path(name):
    for d in os.listdir("/sys/block"):
        try:
            with open("/sys/block/%s/dm/name" % d) as f:
                if f.read().strip() == name:
                    return "/sys/block/%s/stat" % d
        except OSError:
            pass
    raise OSError("no dm device %s" % name)

def hydrate(name, deadline, poll=0.005):
    ev0, h0, n, line = status(name)
    t0 = now()
    message(name, "enable_hydration")
    th = te = None
    polls = 0
    while now() - t0 < deadline and (th is None or te is None):
        ev, h, n, line = status(name)
        polls += 1
        t = now()
        if th is None and h == n:
            th = t - t0
        if te is None and ev != ev0:
            te = t - t0
        time.sleep(poll)
    ok = th is not None and te is not None and h0 == 0
    print("hydrate", name, h0, n, "%.6f" % (th or -1), "%.6f" % (te or -1), polls,
          "ok" if ok else "FAILED", line.replace(" ", ","))
    return 0 if ok else 1

def stats(path):
    """/sys/block/dm-N/stat: ios, sectors and ms spent, reads and writes."""
    with open(path) as f:
        v = [int(x) for x in f.read().split()]
    return v[0], v[2], v[3], v[4], v[6], v[7]

def during(deadline, ready, done, pairs):
    """For each (NAME, TAG) in turn: wait until fio writes MARKER (TAG
    file "go"), then for its first completed I/O on NAME; enable hydration,
    poll until every region is hydrated, disable it, create the TAG file
    "hydrated" (the shell then stops fio). Prints the I/O completed on NAME
    in that window (the counters of the dm device)."""
    rc = 0
    open(ready, "w").close()
    for name, tag in pairs:
        path = stat_path(name)
        t = now()
        while not os.path.exists(tag + "-go") and now() - t < deadline and not os.path.exists(done):
            time.sleep(0.002)
        c0 = stats(path)
        while stats(path)[0] + stats(path)[3] == c0[0] + c0[3] and now() - t < deadline \
                and not os.path.exists(done):
            time.sleep(0.001)
        if os.path.exists(done) or now() - t >= deadline:
            print("during-failed", name, "no I/O seen before fio ended or the deadline")
            open(tag + "-hydrated", "w").close()
            return 1
        _, h0, n, line = status(name)
        s0, t0 = stats(path), now()
        message(name, "enable_hydration")
        h, polls = h0, 0
        while h != n and now() - t0 < deadline and not os.path.exists(done):
            time.sleep(0.005)
            _, h, n, line = status(name)
            polls += 1
        t1, s1 = now(), stats(path)
        message(name, "disable_hydration")
        open(tag + "-hydrated", "w").close()
        d = [b - a for a, b in zip(s0, s1)]
        ok = h == n
        # reads, read sectors, read ms, writes, write sectors, write ms
        print("during", name, h0, h, n, "%.6f" % (t1 - t0), polls, *d, "ok" if ok else "FAILED",
              line.replace(" ", ","))
        sys.stdout.flush()
        rc |= 0 if ok else 1
    return rc

def load(ready, done, items):
    """For each (NAME, TAG, BASE, CAP): wait for TAG-go; with BASE >= 0,
    for the first completed I/O of the load on NAME, then count BASE
    seconds of that load alone (polling the status every 10 ms, as the
    window with hydration does); enable hydration and poll every 10 ms until
    every region is hydrated or CAP seconds passed; disable it; create
    TAG-hydrated. Prints regions and I/O counters of both windows."""
    rc = 0
    open(ready, "w").close()
    for name, tag, base, cap in items:
        base, cap = float(base), float(cap)
        t = now()
        while not os.path.exists(tag + "-go") and not os.path.exists(done):
            time.sleep(0.002)
        path = stat_path(name)
        if base >= 0:
            c0 = stats(path)
            while stats(path)[0] + stats(path)[3] == c0[0] + c0[3] and now() - t < 600 \
                    and not os.path.exists(done):
                time.sleep(0.001)
        if os.path.exists(done):
            print("load-failed", name, "no I/O seen before fio ended")
            open(tag + "-hydrated", "w").close()
            return 1
        _, hb0, n, line = status(name)
        sb0, tb0 = stats(path), now()
        # The load alone, observed as the window with hydration on is: the
        # same status polls, so that their cost is in both windows.
        while now() - tb0 < base:
            time.sleep(0.01)
            status(name)
        sb1, tb1 = stats(path), now()
        _, h0, n, line = status(name)
        t0 = now()
        message(name, "enable_hydration")
        h = h0
        while h != n and now() - t0 < cap and not os.path.exists(done):
            time.sleep(0.01)
            _, h, n, line = status(name)
        t1, s1 = now(), stats(path)
        message(name, "disable_hydration")
        open(tag + "-hydrated", "w").close()
        db = [b - a for a, b in zip(sb0, sb1)]
        dw = [b - a for a, b in zip(sb1, s1)]
        # base: seconds, regions at start, reads, writes; window: seconds,
        # regions at start and end, total, reads, writes; done or partial
        print("load", name, "%.6f" % (tb1 - tb0), hb0, db[0], db[3],
              "%.6f" % (t1 - t0), h0, h, n, dw[0], dw[3], "done" if h == n else "partial",
              line.replace(" ", ","))
        sys.stdout.flush()
    return rc

def wait_hydrated(deadline, names):
    t0 = now()
    for name in names:
        message(name, "enable_hydration")
    for name in names:
        while True:
            _, h, n, line = status(name)
            if h == n or now() - t0 > deadline:
                break
            time.sleep(0.01)
        print("hydrated", name, h, n, "%.3f" % (now() - t0), line.replace(" ", ","))
        if h != n:
            return 1
    return 0

class Reader:
    def __init__(self, path):
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        self.buf = mmap.mmap(-1, CHUNK)
        self.size = os.lseek(self.fd, 0, os.SEEK_END)
    def chunk(self, off):
        if os.preadv(self.fd, [self.buf], off) != CHUNK:
            raise OSError("short read at %d" % off)
        return self.buf[:]

def compare(dev, src, wlen=0, pattern=None):
    d, s = Reader(dev), Reader(src)
    pat = None
    if pattern:
        p = bytes.fromhex(pattern[2:] if pattern.startswith("0x") else pattern)
        pat = (p * (BLK // len(p) + 1))[:BLK]
    same = written = bad = 0
    first_bad = None
    for off in range(0, min(d.size, s.size), CHUNK):
        a, b = d.chunk(off), s.chunk(off)
        if a == b:
            same += CHUNK // BLK
            continue
        for i in range(0, CHUNK, BLK):
            x = a[i:i + BLK]
            if x == b[i:i + BLK]:
                same += 1
            elif pat is not None and off + i < wlen and x == pat:
                written += 1
            else:
                bad += 1
                if first_bad is None:
                    first_bad = off + i
    ok = not bad and (pat is None or written) and d.size == s.size
    print("compare", dev, src, "blocks_same=%d" % same, "blocks_written=%d" % written,
          "blocks_bad=%d" % bad, "first_bad_byte=%s" % first_bad, "ok" if ok else "FAILED")
    return 0 if ok else 1

def run(a):
    if a[0] == "hydrate":
        return hydrate(a[1], float(a[2]))
    if a[0] == "during":
        return during(float(a[1]), a[2], a[3], list(zip(a[4::2], a[5::2])))
    if a[0] == "load":
        return load(a[1], a[2], list(zip(a[3::4], a[4::4], a[5::4], a[6::4])))
    if a[0] == "wait-hydrated":
        return wait_hydrated(float(a[1]), a[2:])
    if a[0] == "compare":
        return compare(a[1], a[2])
    if a[0] == "compare-written":
        return compare(a[1], a[2], int(a[3]), a[4])
    raise SystemExit("unknown command " + a[0])

# Commands separated by "--" run one after the other in this process (a
# python3 start costs seconds under TCG on a busy host); the exit status
# is 1 if any failed.
rc, cmd = 0, []
for w in sys.argv[1:] + ["--"]:
    if w != "--":
        cmd.append(w)
    elif cmd:
        sys.stdout.flush()
        rc |= run(cmd)
        cmd = []
sys.exit(rc)
'

# timing_line TARGET METRIC IMPL REP SECONDS BYTES RC SERVED: one timed
# operation (not fio's) in timings.tsv.
timing_line() { tsv_line timings.tsv "$@"; }

# window_line TARGET PROFILE CACHE IMPL REP SECONDS READS RSECT RMS WRITES
#   WSECT WMS NUMJOBS IODEPTH RC SERVED: what a dm device completed in a
#   window (its /sys/block/dm-N/stat), for a measurement that fio's own
#   report cannot delimit (windows.tsv), e.g. clone's I/O during hydration.
window_line() { tsv_line windows.tsv "$@"; }

# load_line TARGET PROFILE IODEPTH POLICY IMPL REP BASE_S BASE_IOS
#   BASE_REGIONS WIN_S WIN_IOS WIN_REGIONS TOTAL_REGIONS DONE RC SERVED:
#   hydration under a load (loads.tsv): regions hydrated in a window of
#   load alone (hydration off) and in one with hydration on, and the I/O
#   the device completed in each. PROFILE "idle": no load.
load_line() { tsv_line loads.tsv "$@"; }

# count_line TARGET PROFILE CACHE IMPL REP WHAT VALUE OF: a count observed
# during a fio run (counts.tsv), e.g. regions hydrated during it.
count_line() { tsv_line counts.tsv "$@"; }

# check_line TARGET IMPL REP WHAT OK|FAILED DETAIL: a data check (checks.tsv).
check_line() { tsv_line checks.tsv "$@"; }

# clone_checks IMPL REP OUT WHAT...: records the "compare" lines of
# CLONE_PY's output OUT, in order, as the data checks WHAT...; a check
# whose line says FAILED or is missing fails.
clone_checks() {
	local impl=$1 rep=$2 out=$3 line what
	local -a lines=()
	shift 3
	while read -r line; do
		[ "${line%% *}" = compare ] && lines+=("$line")
	done <<<"$out"
	for what in "$@"; do
		line=${lines[0]:-"no compare line (CLONE_PY failed?): $(echo "$out" | tail -n 2 | tr '\n' ' ')"}
		lines=("${lines[@]:1}")
		log "    check $what: $line"
		if [ "${line##* }" = ok ]; then
			check_line clone "$impl" "$rep" "$what" ok "$line"
		else
			check_line clone "$impl" "$rep" "$what" FAILED "$line"
			log "FAILED: data check $what ($impl, rep $rep)"
			FAILED=$((FAILED + 1))
		fi
	done
}

# clone_create NAME DEST MD CORE_ARGS [keep]: a fresh clone device (fresh
# metadata), hydration off; the destination is zeroed first unless "keep".
clone_create() {
	local st
	if [ "${5:-}" != keep ]; then
		dd if=/dev/zero of="$2" bs=1M count=$((CLONE_BYTES >> 20)) oflag=direct status=none ||
			{ log "FAILED: zeroing $2"; return 1; }
	fi
	dd if=/dev/zero of="$3" bs=1M count=4 oflag=direct status=none ||
		{ log "FAILED: zeroing $3"; return 1; }
	dmsetup create "$1" --table "0 $CLONE_SECTORS clone $3 $2 ${6:-$CLONE_SRC} $CLONE_REGION 1 no_hydration $4" ||
		{ log "FAILED: dmsetup create $1"; return 1; }
	st=$(dmsetup status --noflush "$1")
	log "    $1: $st"
	read -r _ _ _ _ _ _ st _ <<<"$st"
	[ "${st%%/*}" = 0 ] || { log "FAILED: $1 starts with $st regions hydrated"; return 1; }
}

# clone_rw_create IMPL CORE_ARGS [keep]: the read and the write devices of
# a round (bench-clone-r on ram1/ram3, bench-clone-w on ram2/ram4); on a
# failure, counted, neither is left and IMPL is unloaded.
clone_rw_create() {
	if ! clone_create bench-clone-r /dev/ram1 /dev/ram3 "$2" ${3:+"$3"} ||
		! clone_create bench-clone-w /dev/ram2 /dev/ram4 "$2" ${3:+"$3"}; then
		FAILED=$((FAILED + 1))
		dmsetup remove bench-clone-r 2>/dev/null
		dmsetup remove bench-clone-w 2>/dev/null
		clone_unload "$1"
		return 1
	fi
}

# clone_load_rows IMPL REP MOD DELAY: the idle hydration and the
# hydration-under-load windows (see above; loads.tsv), from the RAM disk
# (DELAY 0) or from dm-delay over it (DELAY ms per I/O).
clone_load_rows() {
	local impl=$1 rep=$2 mod=$3 delay=$4 target=clone tuned_t tuned_b core ext prof qd pol cap i pid rc out
	local -a items=() runs=()
	read -r tuned_t tuned_b <<<"$CLONE_TUNED"
	core="4 hydration_threshold $tuned_t hydration_batch_size $tuned_b"
	local share
	# NAME TAG BASE CAP per window, and what the shell does for each:
	# "profile iodepth policy".
	i=0
	items+=(bench-clone-l "$W/clone-load-$i" -1 120) runs+=("idle 0 idle-only")
	for prof in randread-4k randwrite-4k; do
		for qd in $CLONE_LOAD_QDS; do
			for pol in idle-only $(for share in $CLONE_SHARE; do echo "share=$share"; done); do
				# The extension is ours: not with C (nor C in the Rust slot).
				[ "$pol" = idle-only ] ||
					{ [ "$(clone_mod "$impl")" = dm_clone_rs ] && [ "$CLONE_SHARE" != 0 ] || continue; }
				i=$((i + 1))
				cap=$CLONE_LOAD_WINDOW
				[ "$pol" = idle-only ] || cap=120
				items+=(bench-clone-l "$W/clone-load-$i" "$CLONE_LOAD_BASE" "$cap")
				runs+=("$prof $qd $pol")
			done
		done
	done
	rm -f "$W"/clone-load*
	# The source of these windows: the RAM disk, or dm-delay over it.
	local src=$CLONE_SRC
	if [ "$delay" != 0 ]; then
		target="clone src+${delay}ms"
		modprobe dm-delay || { log "FAILED: modprobe dm-delay"; FAILED=$((FAILED + 1)); return 1; }
		dmsetup create bench-clone-src \
			--table "0 $CLONE_SECTORS delay $CLONE_SRC 0 $delay" ||
			{ log "FAILED: dm-delay over $CLONE_SRC"; FAILED=$((FAILED + 1)); return 1; }
		src=/dev/mapper/bench-clone-src
		log "    source: $src, $CLONE_SRC with $delay ms per I/O (dm-delay)"
	fi
	timeout 1800 python3 -c "$CLONE_PY" load "$W/clone-load-ready" "$W/clone-load-done" \
		"${items[@]}" >"$W/clone-load.out" 2>&1 &
	pid=$!
	for i in $(seq 1 600); do
		[ ! -e "$W/clone-load-ready" ] && kill -0 $pid 2>/dev/null || break
		snooze 0.1
	done
	local served tag
	for i in "${!runs[@]}"; do
		read -r prof qd pol <<<"${runs[$i]}"
		tag=$W/clone-load-$i
		ext="6 hydration_threshold $tuned_t hydration_batch_size $tuned_b hydration_share_under_io ${pol#share=}"
		if ! clone_create bench-clone-l /dev/ram1 /dev/ram3 "$([ "$pol" = idle-only ] && echo "$core" || echo "$ext")" keep "$src"; then
			FAILED=$((FAILED + 1))
			break
		fi
		served=$(served_by bench-clone-l "$mod")
		log "    load window $i ($target): $prof qd $qd policy $pol; served by: $served"
		if [ "$prof" = idle ]; then
			touch "$tag-go"
		else
			BATCH_ARGS=(--name=clone-$prof-load-$impl --filename=/dev/mapper/bench-clone-l
				--rw=${prof%-4k} --bs=4k --iodepth="$qd" --numjobs="$NUMJOBS" --time_based --runtime=300
				"--exec_prerun=touch $tag-go")
			# Writes over the first 8 MiB only: they hydrate those regions
			# themselves within the base window, and the load then goes on
			# while the background copies the other regions.
			[ "$prof" = randwrite-4k ] && BATCH_RO=0 BATCH_ARGS+=(--offset=0 --size=8M)
			BATCH_NAME=clone-$prof-qd$qd-load-$impl-r$rep-$i
			fio_batch_start
		fi
		while [ ! -e "$tag-hydrated" ] && kill -0 $pid 2>/dev/null &&
			{ [ "$prof" = idle ] || kill -0 "$FIO_PID" 2>/dev/null; }; do
			snooze 0.05
		done
		[ "$prof" = idle ] || fio_batch_wait stop
		dmsetup remove bench-clone-l
		echo "$i $prof $qd $pol $served" >>"$W/clone-load.runs"
	done
	touch "$W/clone-load-done"
	wait $pid
	rc=$?
	out=$(cat "$W/clone-load.out")
	log "    load control: $(echo "$out" | tr '\n' ' ')"
	[ $rc -eq 0 ] || { log "FAILED: hydration-under-load control ($impl, rep $rep)"; FAILED=$((FAILED + 1)); }
	local what name bs hb0 br bw ws h0 h n wr ww state line k=0 ok
	while read -r what name bs hb0 br bw ws h0 h n wr ww state line; do
		[ "$what" = load ] || continue
		read -r _ prof qd pol served < <(sed -n "$((k + 1))p" "$W/clone-load.runs")
		k=$((k + 1))
		ok=0
		# Idle and policy windows must finish; C's policy is measured over
		# a capped window.
		if [ "$pol" != idle-only ] || [ "$prof" = idle ]; then
			[ "$state" = done ] || { ok=1; log "FAILED: $target $prof qd $qd $pol: not hydrated in the window ($impl, rep $rep)"; FAILED=$((FAILED + 1)); }
		fi
		log "    load ($target): $prof qd $qd $pol: base ${bs}s $((br + bw)) I/Os; hydration ${ws}s $h0 -> $h of $n ($state), $((wr + ww)) I/Os"
		load_line "$target" "$prof" "$qd" "$pol" "$impl" "$rep" "$bs" "$((br + bw))" "$((h0 - hb0))" \
			"$ws" "$((wr + ww))" "$((h - h0))" "$n" "$state" "$ok" "$served"
	done <<<"$out"
	rm -f "$W"/clone-load* "$W"/*.prerun.txt
	[ "$src" = "$CLONE_SRC" ] || dmsetup remove bench-clone-src
}

clone_round() { # IMPL REP WITH_RAW
	local impl=$1 rep=$2 with_raw=$3 mod served served_r served_w out rc
	local tuned_t tuned_b metric h0 h n th te polls ok name what wlen pid i core profile delay
	mod=$(clone_mod "$impl")
	read -r tuned_t tuned_b <<<"$CLONE_TUNED"
	if grep -qE '^dm_clone(_rs)?(_unordered)? ' /proc/modules; then
		log "FAILED: a clone module is still loaded: $(loaded_modules '^dm_clone')"
		FAILED=$((FAILED + 1))
		return 1
	fi
	clone_load "$impl" || { log "FAILED: loading $mod"; FAILED=$((FAILED + 1)); return 1; }
	log "clone: $impl rep $rep: loaded: $(loaded_modules 'clone|persistent|bufio')"
	if [ "$CLONE_ROWS" = load ]; then
		for delay in $CLONE_SRC_DELAY; do clone_load_rows "$impl" "$rep" "$mod" "$delay"; done
		log "    end: $(loaded_modules 'clone|persistent|bufio')"
		clone_unload "$impl"
		return 0
	fi

	# Hydration time: BENCH_CLONE_HYDRATIONS times the tuned profile and
	# the defaults, alternating. The first of each starts from a zeroed
	# destination and is checked (destination = source); the others keep
	# the destination (the same copies and writes either way). The last
	# device (defaults) stays for the "after" runs.
	local k keep core
	for k in $(seq 1 "$CLONE_HYDRATIONS"); do
		for metric in "hydration $tuned_t/$tuned_b" "hydration 1/1"; do
			core="4 hydration_threshold $tuned_t hydration_batch_size $tuned_b"
			[ "$metric" = "hydration 1/1" ] && core=""
			keep=keep
			[ "$k" != 1 ] || keep=""
			clone_create bench-clone /dev/ram1 /dev/ram3 "$core" $keep ||
				{ FAILED=$((FAILED + 1)); dmsetup remove bench-clone 2>/dev/null; clone_unload "$impl"; return 1; }
			served=$(served_by bench-clone "$mod")
			log "    served by: $served"
			if [ "$k" = 1 ]; then
				out=$(timeout 900 python3 -c "$CLONE_PY" hydrate bench-clone 600 -- \
					compare /dev/ram1 $CLONE_SRC 2>&1)
				clone_checks "$impl" "$rep" "$out" "$metric: destination = source"
			else
				out=$(timeout 900 python3 -c "$CLONE_PY" hydrate bench-clone 600 2>&1)
			fi
			out=$(grep '^hydrate ' <<<"$out")
			log "    $metric (#$k): $out"
			ok="" rc=0
			read -r _ _ h0 n th te polls ok _ <<<"$out"
			if [ "$ok" != ok ]; then
				log "FAILED: $metric ($impl, rep $rep, #$k)"
				FAILED=$((FAILED + 1))
				rc=1
			fi
			timing_line clone "$metric" "$impl" "$rep" "${th:--1}" "$CLONE_BYTES" "$rc" "$served"
			timing_line clone "$metric committed" "$impl" "$rep" "${te:--1}" "$CLONE_BYTES" "$rc" "$served"
			[ "$metric" = "hydration 1/1" ] && [ "$k" = "$CLONE_HYDRATIONS" ] || dmsetup remove bench-clone
		done
	done

	# After hydration: timed runs on the hydrated device, the four
	# profiles; the raw destination device first (first implementation of
	# each repetition). Only on a device that is hydrated.
	out=$(dmsetup status --noflush bench-clone)
	read -r _ _ _ _ _ _ h _ <<<"$out"
	if [ "${h%%/*}" != "${h##*/}" ] || [ -z "$h" ]; then
		log "FAILED: bench-clone is not hydrated ($out): no \"after\" runs ($impl, rep $rep)"
		FAILED=$((FAILED + 1))
		dmsetup remove bench-clone
		clone_unload "$impl"
		return 1
	fi
	for profile in randread-4k seqread-1m randwrite-4k seqwrite-1m; do
		[ "$with_raw" = 1 ] && fio_job clone $profile - raw "$rep" /dev/ram2 timed "raw /dev/ram2"
		fio_job clone $profile after "$impl" "$rep" /dev/mapper/bench-clone timed "$served"
	done
	BATCH_NAME=clone-after-$impl-r$rep
	fio_batch
	log "    after: $(dmsetup status --noflush bench-clone)"
	dmsetup remove bench-clone

	# During hydration: two fresh devices (tuned threshold/batch), one
	# after the other: a fio load starts; once its first I/O completed,
	# CLONE_PY enables hydration and polls until every region is
	# hydrated; what the dm device completed in that window (its own
	# counters, /sys/block/dm-N/stat) is the "during" measurement
	# (windows.tsv), and the window the hydration time under that load
	# (timings.tsv). Then fio is stopped. The write load writes a fixed
	# pattern (CLONE_PATTERN) below the last 8 MiB only.
	core="4 hydration_threshold $tuned_t hydration_batch_size $tuned_b"
	clone_rw_create "$impl" "$core" || return 1
	served_r=$(served_by bench-clone-r "$mod")
	served_w=$(served_by bench-clone-w "$mod")
	wlen=$((CLONE_BYTES - 8 * 1024 * 1024))
	rm -f "$W"/clone-go*
	# The controller first (a python3 start takes seconds under TCG on a
	# busy host), then fio.
	timeout 900 python3 -c "$CLONE_PY" during 600 "$W/clone-go-ready" "$W/clone-go-done" \
		bench-clone-r "$W/clone-go-r" bench-clone-w "$W/clone-go-w" \
		>"$W/clone-during.out" 2>&1 &
	pid=$!
	for i in $(seq 1 600); do
		[ ! -e "$W/clone-go-ready" ] && kill -0 $pid 2>/dev/null || break
		snooze 0.1
	done
	local x dev prof qd
	for x in r w; do
		dev=/dev/mapper/bench-clone-$x
		if [ $x = r ]; then
			prof=randread-4k served=$served_r
			BATCH_ARGS=(--name=clone-randread-4k-during-$impl --filename=$dev --rw=randread)
		else
			prof=randwrite-4k served=$served_w
			BATCH_ARGS=(--name=clone-randwrite-4k-during-$impl --filename=$dev --rw=randwrite
				--offset=0 --size=$wlen --buffer_pattern=$CLONE_PATTERN --scramble_buffers=0)
			BATCH_RO=0
		fi
		BATCH_ARGS+=(--bs=4k --iodepth="$QD_4K" --numjobs="$NUMJOBS" --time_based --runtime=300
			"--exec_prerun=touch $W/clone-go-$x-go")
		BATCH_NAME=clone-$prof-during-$impl-r$rep
		log "job clone-$prof-during impl=$impl rep=$rep dev=$dev bs=4k numjobs=$NUMJOBS iodepth=$QD_4K: a load until the device is hydrated"
		log "    served by: $served"
		fio_batch_start
		while [ ! -e "$W/clone-go-$x-hydrated" ] && kill -0 $pid 2>/dev/null &&
			kill -0 "$FIO_PID" 2>/dev/null; do
			snooze 0.05
		done
		fio_batch_wait stop
	done
	touch "$W/clone-go-done"
	wait $pid
	rc=$?
	out=$(cat "$W/clone-during.out")
	rm -f "$W"/clone-go* "$W"/*.prerun.txt "$W/clone-during.out"
	log "    during control: $(echo "$out" | tr '\n' ' ')"
	[ $rc -eq 0 ] || { log "FAILED: during-hydration control ($impl, rep $rep)"; FAILED=$((FAILED + 1)); }
	local sec polls nr rs rms nw ws wms
	while read -r what name h0 h n sec polls nr rs rms nw ws wms ok _; do
		[ "$what" = during ] || continue
		case $name in
		bench-clone-r) prof=randread-4k served=$served_r ;;
		*) prof=randwrite-4k served=$served_w ;;
		esac
		rc=0
		[ "$ok" = ok ] || rc=1
		log "    during: $name: hydrated $h0 -> $h of $n regions in $sec s; $nr reads ($rs sectors, $rms ms), $nw writes ($ws sectors, $wms ms)"
		# The device started with none (clone_create checked); h0: when
		# hydration was enabled (a first write hydrates its region even
		# with background hydration off).
		window_line clone $prof during "$impl" "$rep" "$sec" "$nr" "$rs" "$rms" "$nw" "$ws" "$wms" \
			"$NUMJOBS" "$QD_4K" "$rc" "$served"
		timing_line clone "hydration under $prof load" "$impl" "$rep" "$sec" "$CLONE_BYTES" "$rc" "$served"
		count_line clone $prof during "$impl" "$rep" "regions hydrated before enabling" "$h0" "$n"
	done <<<"$out"
	out=$(timeout 900 python3 -c "$CLONE_PY" wait-hydrated 600 bench-clone-r bench-clone-w -- \
		compare /dev/ram1 $CLONE_SRC -- compare-written /dev/ram2 $CLONE_SRC "$wlen" "$CLONE_PATTERN" 2>&1)
	log "    $(grep '^hydrated ' <<<"$out" | tr '\n' ' ')"
	awk '/^hydrated / { n++; if ($3 != $4) bad = 1 } END { exit !(n == 2 && !bad) }' <<<"$out" ||
		{ log "FAILED: hydration after the during runs ($impl, rep $rep)"; FAILED=$((FAILED + 1)); }
	clone_checks "$impl" "$rep" "$out" \
		"randread-4k during, then hydrated: destination = source" \
		"randwrite-4k during, then hydrated: destination = source + fio's pattern blocks below $((wlen >> 20)) MiB"
	dmsetup remove bench-clone-r
	dmsetup remove bench-clone-w
	for delay in $CLONE_SRC_DELAY; do clone_load_rows "$impl" "$rep" "$mod" "$delay"; done
	if [ "$CLONE_UNHYDRATED" != 1 ]; then
		log "    end: $(loaded_modules 'clone|persistent|bufio')"
		clone_unload "$impl"
		return 0
	fi

	# Unhydrated, background hydration off: the same two runs on fresh
	# devices that stay with no_hydration (the destinations are kept: only
	# the metadata is fresh, and nothing reads the destination of an
	# unhydrated region): reads go to the source, a write to an unhydrated
	# region waits for the copy of its region. Without the background
	# copies (BENCH_CLONE_UNHYDRATED=1; not in the default run).
	clone_rw_create "$impl" "$core" keep || return 1
	served_r=$(served_by bench-clone-r "$mod")
	served_w=$(served_by bench-clone-w "$mod")
	fio_job clone randread-4k unhydrated "$impl" "$rep" /dev/mapper/bench-clone-r run "$served_r"
	JOB_EXTRA=(--offset=0 --size=$wlen)
	fio_job clone randwrite-4k unhydrated "$impl" "$rep" /dev/mapper/bench-clone-w run "$served_w"
	BATCH_NAME=clone-unhydrated-$impl-r$rep
	fio_batch
	for name in bench-clone-r bench-clone-w; do
		out=$(dmsetup status --noflush $name)
		log "    unhydrated: $name: $out"
		read -r _ _ _ _ _ _ h _ <<<"$out"
		case $name in
		bench-clone-r) count_line clone randread-4k unhydrated "$impl" "$rep" "regions hydrated" "${h%%/*}" "${h##*/}" ;;
		bench-clone-w) count_line clone randwrite-4k unhydrated "$impl" "$rep" "regions hydrated" "${h%%/*}" "${h##*/}" ;;
		esac
	done
	log "    end: $(loaded_modules 'clone|persistent|bufio')"
	dmsetup remove bench-clone-r
	dmsetup remove bench-clone-w
	clone_unload "$impl"
}

clone_unload() { slot_select clone "$1" "$CLONE_RS_MOD" && impl_unload; }

bench_clone() {
	local rep impl raw
	rs_slot clone dm-persistent-data || return 0
	CLONE_RS_MOD=$RS_MOD
	# Neither may be loaded when we start (nor the test-only build).
	! grep -qE '^dm_clone(_rs)?(_unordered)? ' /proc/modules ||
		rmmod dm_clone dm_clone_rs dm_clone_rs_unordered 2>/dev/null
	CLONE_SECTORS=$(blockdev --getsz $CLONE_SRC)
	CLONE_BYTES=$(blockdev --getsize64 $CLONE_SRC)
	# The source: random data, every 4 KiB block different; the metadata
	# devices written end to end once (brd pages).
	fio --name=source --filename=$CLONE_SRC --rw=write --bs=1M --direct=1 --ioengine=libaio \
		--iodepth=4 --refill_buffers --name=md1 --filename=/dev/ram3 --rw=write --bs=1M \
		--direct=1 --ioengine=libaio --iodepth=4 --name=md2 --filename=/dev/ram4 --rw=write \
		--bs=1M --direct=1 --ioengine=libaio --iodepth=4 --output=/dev/null >/dev/null 2>&1 ||
		{ skip clone "writing the source $CLONE_SRC failed"; return 0; }
	log "clone: source $CLONE_SRC ($CLONE_BYTES bytes), region $CLONE_REGION sectors, tuned threshold/batch: $CLONE_TUNED"
	for rep in $(seq 1 "$REPS"); do
		raw=1
		for impl in $(order "$rep"); do
			clone_round "$impl" "$rep" $raw
			raw=0
		done
	done
	if grep -qE '^dm_clone(_rs)?(_unordered)? ' /proc/modules; then
		log "FAILED: a clone module is still loaded at the end: $(loaded_modules '^dm_clone')"
		FAILED=$((FAILED + 1))
	fi
}

# ---- the guest's clock --------------------------------------------------------
# fio's rates and every time measured here come from the guest's clock. On
# a busy host the boot can mis-calibrate the TSC (seen once: "tsc: PIT
# calibration deviates from HPET", then "tsc: Detected 70.353 MHz
# processor" on a 2.1 GHz host, and no refinement): the guest's clock then
# runs 30x too fast, and every absolute number is off by that factor
# (ratios of runs in the same boot are not). The RTC (QEMU's CMOS clock,
# which follows the host's) is the reference: rtc_edge prints the RTC's
# seconds and $EPOCHREALTIME at the next tick of its seconds, and meta.txt
# gets guest_clock_rate = guest seconds per RTC second over the whole run.
rtc_edge() {
	local f=/sys/class/rtc/rtc0/since_epoch r0 r i
	[ -r $f ] && read -r r0 <$f || return 1
	for i in $(seq 1 20000); do
		read -r r <$f
		[ "$r" = "$r0" ] || { echo "$r $EPOCHREALTIME"; return 0; }
		snooze 0.002
	done
	return 1
}

# ---- main -------------------------------------------------------------------
start=$(date +%s)
clock0=$(rtc_edge)
modprobe brd rd_nr=6 rd_size=$((DEV_MIB * 1024)) || { log "modprobe brd failed"; exit 1; }
{
	echo "kernel=$(uname -r)"
	echo "cpus=$(nproc)"
	echo "mem_kib=$(awk '/^MemTotal/ {print $2}' /proc/meminfo)"
	echo "cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
	echo "fio=$(fio --version)"
	echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "reps=$REPS"
	echo "runtime=$RUNTIME"
	echo "ramp=$RAMP"
	echo "numjobs=$NUMJOBS"
	echo "qd_4k=$QD_4K"
	echo "qd_1m=$QD_1M"
	echo "dev_mib=$DEV_MIB"
	echo "era_checkpoints=$ERA_CHECKPOINTS"
	echo "clone_region_sectors=$CLONE_REGION"
	echo "clone_tuned=$CLONE_TUNED"
	echo "clone_hydrations=$CLONE_HYDRATIONS"
	echo "clone_unhydrated=$CLONE_UNHYDRATED"
	echo "clone_rows=$CLONE_ROWS"
	echo "clone_load_qds=$CLONE_LOAD_QDS"
	echo "clone_load_base=$CLONE_LOAD_BASE"
	echo "clone_load_window=$CLONE_LOAD_WINDOW"
	echo "clone_share=$CLONE_SHARE"
	echo "clone_src_delay_ms=$CLONE_SRC_DELAY"
	echo "verity_runs=$VERITY_RUNS"
	echo "verity_fec_roots=$VERITY_FEC_ROOTS"
	echo "verity_fec_runtime=$VERITY_FEC_RUNTIME"
	echo "device=brd"
	echo "targets=$TARGETS"
} >"$W/meta.txt"
touch "$W/skipped.tsv" "$W/c_as_rust.txt" "$W/messages.tsv" "$W/timings.tsv" "$W/counts.tsv" "$W/checks.tsv" "$W/windows.tsv"
log "guest: $(uname -r), $(nproc) CPUs, $(awk '/^MemTotal/ {print $2}' /proc/meminfo) KiB, $(fio --version)"
log "settings: reps=$REPS runtime=${RUNTIME}s ramp=${RAMP}s numjobs=$NUMJOBS iodepth 4k=$QD_4K 1M=$QD_1M brd=${DEV_MIB}MiB era checkpoints=$ERA_CHECKPOINTS clone region=$CLONE_REGION tuned=$CLONE_TUNED hydrations=$CLONE_HYDRATIONS"

for t in $TARGETS; do
	if declare -F "bench_$t" >/dev/null; then
		log "=== $t ==="
		"bench_$t"
	else
		skip "$t" "no benchmark for target $t (write bench_$t in tools/bench-guest.sh)"
	fi
done

echo "elapsed_s=$(($(date +%s) - start))" >>"$W/meta.txt"
clock1=$(rtc_edge)
{
	if [ -n "$clock0" ] && [ -n "$clock1" ]; then
		echo "$clock0 $clock1" | awk '$3 > $1 {printf "guest_clock_rate=%.3f\nrtc_seconds=%d\n", ($4 - $2) / ($3 - $1), $3 - $1}'
	fi
	echo "clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null)"
	echo "tsc_boot=$(dmesg | grep -E 'tsc: (Detected|Refined|PIT calibration|Marking)' | sed 's/^\[[^]]*\] //' | tr '\n' ';')"
} >>"$W/meta.txt"
log "guest clock: $(grep -E '^(guest_clock_rate|clocksource|tsc_boot)=' "$W/meta.txt" | tr '\n' ' ')"
if [ -s "$W/proof-failures" ]; then
	log "FAILED: not served by the module measured: $(tr '\n' ' ' <"$W/proof-failures")"
	FAILED=$((FAILED + $(wc -l <"$W/proof-failures")))
fi
echo "failed_runs=$FAILED" >>"$W/meta.txt"
log "done in $(($(date +%s) - start)) s, $FAILED failed run(s)"
lsmod >"$W/lsmod-end.txt"

# ---- hand the results to the host -----------------------------------------
rm -f "$W/fio.stderr"
tar -C "$W" -czf /tmp/bench.tgz .
echo "BENCH-DATA-BEGIN sha256=$(sha256sum </tmp/bench.tgz | cut -d' ' -f1)"
base64 -w 96 /tmp/bench.tgz | sed 's/^/BENCH-B64 /'
echo "BENCH-DATA-END"
[ "$FAILED" -eq 0 ]
