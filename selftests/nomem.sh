#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Allocation failures in the I/O paths of our four targets (issue #16): a
# device-mapper target sits in the writeback path, so it must never fail a
# bio, a hydration or a checkpoint because an allocation failed (the C
# targets allocate from mempools with GFP_NOIO, which wait for the reserve
# rather than fail). The kernel's fault injection (failslab and
# fail_page_alloc, Documentation/fault-injection/fault-injection.rst) makes
# allocations fail; its stack-trace filter restricts the failures to
# allocations made with the target module's code on the stack (see "The
# filter" below). What must hold, for each target:
#
#   io_<target>        fio with crc32c verification through the target
#                      (randwrite + verify for linear_rs, era, clone; for the
#                      read-only verity: random reads under fio and whole
#                      reads compared byte for byte with the image) while
#                      failures are injected: 0 I/O errors, 0 verify
#                      mismatches, no hang, no kernel report.
#   hydrate_clone      `enable_hydration` copies the whole source under
#                      injection: all regions hydrated, the destination equals
#                      the source, no I/O error on the clone meanwhile.
#   checkpoint_era     writes and `checkpoint` messages under injection,
#                      then one checkpoint with every filtered allocation
#                      failing (50 at most): a message may fail only with an
#                      error returned (dmsetup exits non-zero) and the era
#                      unchanged; era_invalidate then lists exactly the
#                      blocks written, the device still works. A failed
#                      checkpoint among the 10 % ones fails the test.
#   ctor_<target>      failures inside `dmsetup create` (constructor and
#                      resume): the N-th filtered allocation of the dmsetup
#                      task fails (/proc/self/fail-nth), for N = 1, 2, 3, ...
#                      (every N up to 8, then about a third apart) until an N
#                      beyond the last allocation. Each create whose
#                      allocation failed either exits non-zero with a
#                      device-mapper error in the kernel log and no device
#                      left, or succeeds with a working device (the failure
#                      was tolerated); at the end the module unloads (rmmod:
#                      nothing leaked a reference).
#
# Every test fails if no failure was injected (a test that injects nothing
# proves nothing), and prints how many were (failslab, fail_page_alloc) on a
# `# injected:` line. One exception: linear's map only remaps, so nothing
# is allocated with its text on the stack during the I/O; io_linear then
# proves that the filter works (a create under it must fail at its first
# allocation) and passes: its I/O path allocates nothing. Every test proves which module served the device (live
# table's target type, the module pinned by it, the twin not loaded).
#
#   tools/vm-run.sh --kernel $KDIR -- selftests/run.sh nomem
#   tools/vm-run.sh --kernel $KDIR -- env NOMEM_IMPL=c selftests/run.sh nomem
#
# Knobs: NOMEM_IMPL=rust|c (all targets), or per target LINEAR_IMPL,
# VERITY_IMPL, ERA_IMPL, CLONE_IMPL (rust: our dm-*-rs.ko; c: the C twin:
# `linear` of dm-mod, built into the kernel, dm-verity, dm-era, dm-clone);
# NOMEM_ONLY (a regex: only the tests whose names match run, the others are
# skipped); NOMEM_PROB (percent of filtered allocations failed, 10),
# NOMEM_TIMES (at most this many failures per test and kind, 400),
# NOMEM_VERBOSE (the fail*/verbose value, 0: the count comes from the
# `times` countdown, not from the log), NOMEM_SCALE (deadline factor: 1, or
# 4 on the debug kernel, detected by kmemleak in debugfs),
# NOMEM_CTOR_N=A-B (the constructor tests fail only the A-th to B-th
# allocation, then check that N = 1000000 injects nothing),
# NOMEM_ATTRS (which of "failslab fail_page_alloc" inject: both),
# NOMEM_FILTER_MODS (extra modules whose text the filter range must span:
# e.g. "dm_persistent_data"; the range then runs from the lowest to the
# highest of the modules' text and includes whatever lies between them).
#
# The filter. fault_attr's require-start/require-end admit a failure only
# if an address in the allocation's stack trace (stacktrace-depth entries,
# 32 at most) lies in [start, end). The suite sets the range to the text of
# the module under test: from /proc/kallsyms, start = the lowest address of
# a text symbol (t/T) tagged [module], end = the next address of any symbol
# above its highest text symbol (at most 64 KiB above it); on x86 the
# module's text is its own allocation, so nothing else lies in the range.
# For the C linear (built into vmlinux) the range is that of the symbols
# linear_* of dm-linear.o. So failures hit allocations made by the target's
# own code and by what it calls synchronously: dm-bufio reads, dm-persistent-
# data's btrees and space maps, dm-kcopyd job submission, crypto. They do
# not hit what runs without the target's code on the stack: dm core's clone
# bios, kcopyd's and bufio's own workers, the loop devices below. The test
# kernel's unwinder is UNWINDER_GUESS: it reports every text address found
# on the stack, so a stale return address into the module can admit an
# allocation the module did not make (rare; the log then shows whose it was
# with NOMEM_VERBOSE=2). Both fail*/ignore-gfp-wait are N (sleeping
# allocations are failed too: GFP_NOIO mempool allocations must fall back to
# their reserve), fail_page_alloc/min-order is 0, task-filter N, space 0,
# interval 1.
. "$(dirname "$0")/lib/suite.sh"
suite_init

NOMEM_IMPL=${NOMEM_IMPL:-rust}
NOMEM_PROB=${NOMEM_PROB:-10}
NOMEM_TIMES=${NOMEM_TIMES:-400}
NOMEM_VERBOSE=${NOMEM_VERBOSE:-0}
DBG=/sys/kernel/debug
read -r -a ATTRS <<<"${NOMEM_ATTRS:-failslab fail_page_alloc}"

# note TEXT: a line on the suite's output, also from a test that passes.
note() { echo "# $*" >&3; }

# impl_of TARGET: rust or c, for that target.
impl_of() {
	local v=${1^^}_IMPL
	echo "${!v:-$NOMEM_IMPL}"
}

# use_target TARGET: its implementation (<TARGET>_IMPL, else NOMEM_IMPL)
# loaded, the other not (selftests/lib/impl.sh); sets TT (target type), MOD
# (the module serving it, "" for the built-in C linear) and RANGE_RE (for
# the built-in linear: the kallsyms names of its text).
use_target() {
	impl_load "$1" "$(impl_of "$1")"
	TT=$IMPL_TYPE MOD=$IMPL_MOD RANGE_RE=
	[ "$1/$IMPL" != linear/c ] ||
		RANGE_RE='^linear_(ctr|dtr|map|map_sector|status|prepare_ioctl|report_zones|iterate_devices|dax_[a-z_]*)$'
}

# ==== fault injection ===========================================================
# text_range: sets RANGE_START, RANGE_END (hex) to the text of MOD (and of
# NOMEM_FILTER_MODS), or of the kallsyms names matching RANGE_RE in vmlinux.
text_range() {
	local mods="${MOD:+$MOD }${NOMEM_FILTER_MODS:-}" lo hi next
	read -r lo hi < <(awk -v mods=" $mods " -v re="$RANGE_RE" '
		$2 !~ /^[tT]$/ { next }
		(re != "" && NF == 3 && $3 ~ re) ||
		(re == "" && NF >= 4 && index(mods, " " substr($4, 2, length($4) - 2) " ")) {
			a = $1 ""
			if (lo == "" || a < lo) lo = a
			if (hi == "" || a > hi) hi = a
		}
		END { print lo, hi }' /proc/kallsyms)
	[ -n "$lo" ] && [ -n "$hi" ] || die "no text symbols for '${mods}${RANGE_RE}' in /proc/kallsyms"
	[ "$lo" != 0000000000000000 ] || die "kallsyms addresses are hidden (kptr_restrict?)"
	next=$(awk -v hi="$hi" '{ a = $1 "" } a > hi && (n == "" || a < n) { n = a } END { print n }' /proc/kallsyms)
	RANGE_START=0x$lo
	(( 0x$hi - 0x$lo < 16 * 1024 * 1024 )) || die "text range 0x$lo-0x$hi is too wide"
	if [ -n "$next" ] && (( 0x$next - 0x$hi < 65536 )); then
		RANGE_END=0x$next
	else
		RANGE_END=$(printf '0x%x' $((0x$hi + 65536)))
	fi
}

dbg_mount() {
	[ -d $DBG/failslab ] || mount -t debugfs none $DBG 2>/dev/null || true
	[ -d $DBG/failslab ] && [ -d $DBG/fail_page_alloc ] ||
		die "no $DBG/failslab or fail_page_alloc: kernel without FAILSLAB/FAIL_PAGE_ALLOC/FAULT_INJECTION_DEBUG_FS"
	[ -e $DBG/failslab/require-start ] || die "kernel without FAULT_INJECTION_STACKTRACE_FILTER"
}

# inject_on PROBABILITY: failslab and fail_page_alloc fail PROBABILITY % of
# the allocations admitted by the filter (the range of text_range), at most
# NOMEM_TIMES each. PROBABILITY 0: only /proc/<pid>/fail-nth injects.
inject_on() {
	local a
	text_range
	for a in "${ATTRS[@]}"; do
		echo 0 >$DBG/$a/probability
		echo "$RANGE_START" >$DBG/$a/require-start
		echo "$RANGE_END" >$DBG/$a/require-end
		echo 0 >$DBG/$a/reject-start
		echo 0 >$DBG/$a/reject-end
		echo 32 >$DBG/$a/stacktrace-depth
		echo N >$DBG/$a/task-filter
		echo N >$DBG/$a/ignore-gfp-wait
		echo 1 >$DBG/$a/interval
		echo 0 >$DBG/$a/space
		echo "$NOMEM_VERBOSE" >$DBG/$a/verbose
		echo "$NOMEM_TIMES" >$DBG/$a/times
	done
	echo 0 >$DBG/fail_page_alloc/min-order
	for a in "${ATTRS[@]}"; do echo "$1" >$DBG/$a/probability; done
	INJ_SLAB=0 INJ_PAGE=0
}

# inject_count: adds the failures injected since inject_on (or the last
# inject_count) to INJ_SLAB, INJ_PAGE, and restarts the countdowns.
inject_count() {
	local a n
	for a in "${ATTRS[@]}"; do
		read -r n <$DBG/$a/times
		case $a in
		failslab) INJ_SLAB=$((INJ_SLAB + NOMEM_TIMES - n)) ;;
		fail_page_alloc) INJ_PAGE=$((INJ_PAGE + NOMEM_TIMES - n)) ;;
		esac
		echo "$NOMEM_TIMES" >$DBG/$a/times
	done
}

# inject_off: no more failures; counts them (inject_count).
inject_off() {
	local a
	for a in "${ATTRS[@]}"; do echo 0 >$DBG/$a/probability; done
	inject_count
}

# inject_reset: the defaults of the kernel (nothing injected).
inject_reset() {
	local a
	for a in failslab fail_page_alloc; do
		[ -d $DBG/$a ] || continue
		echo 0 >$DBG/$a/probability
		echo 0 >$DBG/$a/require-start
		echo 18446744073709551615 >$DBG/$a/require-end
		echo Y >$DBG/$a/ignore-gfp-wait
		echo 1 >$DBG/$a/times
		echo 2 >$DBG/$a/verbose
	done
	[ ! -d $DBG/fail_page_alloc ] || echo 1 >$DBG/fail_page_alloc/min-order
}

# assert_injected: at least one failure was injected; says how many.
assert_injected() {
	note "injected: failslab $INJ_SLAB, fail_page_alloc $INJ_PAGE (probability $NOMEM_PROB %, filter $RANGE_START-$RANGE_END)"
	[ $((INJ_SLAB + INJ_PAGE)) -gt 0 ] || die "no failure was injected: the test proves nothing"
}

# ==== common steps ================================================================
SCALE=${NOMEM_SCALE:-$SCALE}
TO=(timeout $((180 * SCALE)))
FIO=$SCRATCH/nomem-fio.out
BUFIO_CACHE=/sys/module/dm_bufio/parameters/max_cache_size_bytes

# begin TARGET: start of every test: no leftovers, no injection, the
# target's implementation loaded, a kernel log mark.
begin() {
	inject_reset
	dm_remove_all_test_devices
	dbg_mount
	use_target "$1"
	kmark
}

# end_test: the kernel logged no report (oops, WARNING, hung task...).
end_test() {
	inject_reset
	assert_no_kernel_report
}

# fio_verify DEV MIB: random writes of 4-64 KiB, crc32c in every block,
# verified after the writes; fio must report no error.
fio_verify() {
	"${TO[@]}" fio --name=nomem --filename="$1" --direct=1 --ioengine=libaio \
		--rw=randwrite --bssplit=4k/50:16k/30:64k/20 --iodepth=16 --size="$2M" \
		--verify=crc32c --verify_state_save=0 --verify_fatal=1 --do_verify=1 \
		--randrepeat=1 >"$FIO" 2>&1 || { cat "$FIO" >&2; die "fio (write + verify) on $1 failed"; }
	grep -q "err= 0" "$FIO" || { cat "$FIO" >&2; die "fio reported errors"; }
}

# vformat_out: ROOT and SALT from veritysetup format's report.
vformat_out() {
	local k v
	ROOT= SALT=
	while IFS=: read -r k v; do
		v=${v//[[:space:]]/}
		case "$k" in "Root hash") ROOT=$v ;; Salt) SALT=$v ;; esac
	done <"$SCRATCH/nomem-vformat.out"
	[ -n "$ROOT" ] && [ -n "$SALT" ] || { cat "$SCRATCH/nomem-vformat.out" >&2; die "no root hash or salt from veritysetup format"; }
}

# ==== I/O under injection ==============================================================
t_io_linear() {
	begin linear
	local lo
	lo=$(new_loop nomem-lin 64)
	echo "$lo" >>"$SCRATCH/nomem-loops"
	"${TO[@]}" dmsetup create rdmt-a-lin --table "0 131072 $TT $lo 0" || die "dmsetup create"
	impl_assert_served rdmt-a-lin
	inject_on "$NOMEM_PROB"
	fio_verify /dev/mapper/rdmt-a-lin 24
	inject_off
	note "injected during the I/O: failslab $INJ_SLAB, fail_page_alloc $INJ_PAGE"
	if [ $((INJ_SLAB + INJ_PAGE)) = 0 ]; then
		# linear's map only remaps: no allocation with its text on the
		# stack. That is a finding only if the filter works: a create
		# under the same filter must see its first allocation fail.
		local a n c=0 rc=0
		for a in "${ATTRS[@]}"; do echo 1 >$DBG/$a/times; echo 100 >$DBG/$a/probability; done
		"${TO[@]}" dmsetup create rdmt-a-lin2 --table "0 2048 $TT $lo 0" 2>/dev/null || rc=$?
		for a in "${ATTRS[@]}"; do
			echo 0 >$DBG/$a/probability
			read -r n <$DBG/$a/times
			c=$((c + 1 - n))
		done
		[ "$rc" != 0 ] && [ "$c" -gt 0 ] ||
			die "nothing injected during the I/O, and a create under the same filter did not fail (rc $rc, $c injected): filter broken?"
		note "no allocation with the module's text on the stack during the I/O; the filter works (a create under it failed, $c injected)"
		dmsetup remove rdmt-a-lin
		end_test
		return 0
	fi
	assert_injected
	dmsetup remove rdmt-a-lin
	end_test
}

# fio_under_injection NAME: fio write+verify through device NAME under
# injection (no I/O error, no mismatch), something injected; NAME removed.
fio_under_injection() {
	inject_on "$NOMEM_PROB"
	fio_verify "/dev/mapper/$1" 24
	inject_off
	assert_injected
	"${TO[@]}" dmsetup status "$1" >&2
	dmsetup remove "$1"
	end_test
}

# era_setup ORIGIN-MIB: rdmt-a-era over zeroed metadata (4 MiB) and an
# origin of ORIGIN-MIB MiB, in blocks of 64 KiB, served by the module under
# test; EMD is the metadata device.
era_setup() {
	local or
	EMD=$(new_loop nomem-era-md 4)
	or=$(new_loop nomem-era-or "$1")
	echo "$EMD $or" >>"$SCRATCH/nomem-loops"
	dd if=/dev/zero of="$EMD" bs=64k count=1 oflag=direct status=none
	"${TO[@]}" dmsetup create rdmt-a-era --table "0 $(($1 * 2048)) era $EMD $or 128" || die "dmsetup create"
	impl_assert_served rdmt-a-era
}

t_io_era() {
	begin era
	era_setup 64
	fio_under_injection rdmt-a-era
}

# clone_setup: metadata (zeroed), a 64 MiB source of known content, a
# destination full of garbage (loop devices); sets CMD, CSRC, CDST, CTAB.
clone_setup() {
	CMD=$(new_loop nomem-cl-md 4)
	pattern "$SCRATCH/nomem-cl-src.img" $((64 * 2048)) nomem-source
	pattern "$SCRATCH/nomem-cl-dst.img" $((64 * 2048)) nomem-garbage
	CSRC=$(losetup --find --show "$SCRATCH/nomem-cl-src.img")
	CDST=$(losetup --find --show "$SCRATCH/nomem-cl-dst.img")
	echo "$CMD $CSRC $CDST" >>"$SCRATCH/nomem-loops"
	dd if=/dev/zero of="$CMD" bs=64k count=1 oflag=direct status=none
	CTAB="0 131072 clone $CMD $CDST $CSRC 128"
}

# Writes through a clone that does not hydrate in the background: a write
# of less than a region to an unhydrated region copies the region from the
# source first (a hydration record, a kcopyd job); a whole-region write
# overwrites it.
t_io_clone() {
	begin clone
	clone_setup
	"${TO[@]}" dmsetup create rdmt-a-clone --table "$CTAB 1 no_hydration" || die "dmsetup create"
	impl_assert_served rdmt-a-clone
	fio_under_injection rdmt-a-clone
}

# verity: the data device holds what fio wrote (crc32c in every block);
# under injection fio reads it back at random through verity (checking every
# block), then whole reads are compared with the image, with dm-bufio's
# cache shrunk so that hash blocks are read (and allocated) again.
t_io_verity() {
	begin verity
	local img=$SCRATCH/nomem-vdata.img hash=$SCRATCH/nomem-vhash.img data hdev i st
	truncate -s 32M "$img"
	"${TO[@]}" fio --name=nomem --filename="$img" --rw=write --bs=64k --size=32M \
		--verify=crc32c --do_verify=0 --verify_state_save=0 >"$FIO" 2>&1 ||
		{ cat "$FIO" >&2; die "fio writing the data image"; }
	veritysetup format "$img" "$hash" >"$SCRATCH/nomem-vformat.out" 2>&1 ||
		{ cat "$SCRATCH/nomem-vformat.out" >&2; die "veritysetup format"; }
	vformat_out
	data=$(losetup --find --show --read-only "$img")
	hdev=$(losetup --find --show --read-only "$hash")
	echo "$data $hdev" >>"$SCRATCH/nomem-loops"
	# A small dm-bufio cache (the clients' share is computed when a client
	# is created): hash blocks are read, and allocated, again and again.
	if [ -w $BUFIO_CACHE ]; then
		cp $BUFIO_CACHE "$SCRATCH/nomem-bufio-cache"
		echo $((256 * 1024)) >$BUFIO_CACHE
	fi
	"${TO[@]}" dmsetup create rdmt-a-verity --readonly \
		--table "0 65536 verity 1 $data $hdev 4096 4096 8192 1 sha256 $ROOT $SALT" || die "dmsetup create"
	impl_assert_served rdmt-a-verity
	inject_on "$NOMEM_PROB"
	for i in 1 2; do
		"${TO[@]}" fio --name=nomem --filename=/dev/mapper/rdmt-a-verity --readonly --direct=1 \
			--ioengine=libaio --rw=randread --randrepeat=1 --bs=64k --iodepth=8 --size=32M \
			--verify=crc32c --verify_state_save=0 --verify_fatal=1 >"$FIO" 2>&1 ||
			{ cat "$FIO" >&2; die "fio (read + verify) through verity failed (pass $i)"; }
		grep -q "err= 0" "$FIO" || { cat "$FIO" >&2; die "fio reported errors"; }
		"${TO[@]}" dd if=/dev/mapper/rdmt-a-verity bs=64k iflag=direct status=none | cmp - "$img" >&2 ||
			die "the verity device does not read the image (pass $i)"
		inject_count
	done
	inject_off
	assert_injected
	st=$(dmsetup status rdmt-a-verity)
	[[ $st == *" V" ]] || die "verity status: $st"
	dmsetup remove rdmt-a-verity
	end_test
}

# ==== background work and messages under injection ================================
# Hydration of the whole source: created without hydration, started with the
# message, under injection (reads through the clone meanwhile must return
# the source). Afterwards the destination holds the source.
t_hydrate_clone() {
	begin clone
	clone_setup
	local st hyd end=$((SECONDS + 240 * SCALE))
	"${TO[@]}" dmsetup create rdmt-a-clone --table "$CTAB 1 no_hydration" || die "dmsetup create"
	impl_assert_served rdmt-a-clone
	inject_on "$NOMEM_PROB"
	"${TO[@]}" dmsetup message rdmt-a-clone 0 enable_hydration || die "enable_hydration failed"
	# One read of everything through the clone while it hydrates.
	"${TO[@]}" dd if=/dev/mapper/rdmt-a-clone bs=64k iflag=direct status=none |
		cmp - "$SCRATCH/nomem-cl-src.img" >&2 || die "the clone does not read the source while hydrating"
	while :; do
		st=$("${TO[@]}" dmsetup status rdmt-a-clone) || die "dmsetup status"
		set -- $st
		[ "${4:-}" != Fail ] || die "clone in Fail mode: $st"
		hyd=${7:-}
		[ "$hyd" != 1024/1024 ] || [ "${8:-}" != 0 ] || break
		[ $SECONDS -lt $end ] || { echo "status: $st" >&2; die "hydration not finished after $((240 * SCALE)) s"; }
		sleep 0.5
		inject_count
	done
	inject_off
	assert_injected
	note "status after hydration: $st"
	dmsetup remove rdmt-a-clone
	cmp "$SCRATCH/nomem-cl-dst.img" "$SCRATCH/nomem-cl-src.img" >&2 ||
		die "the destination does not hold the source after hydration"
	end_test
}

# checkpoint_all_failing NAME: every filtered allocation of one checkpoint
# of era device NAME fails (the first 50): it must succeed anyway or fail
# with an error, the era unchanged. Adds what it injected to INJ_SLAB and
# INJ_PAGE.
checkpoint_all_failing() {
	local a n rc=0 before after
	read -r _ _ _ _ _ before _ < <(dmsetup status "$1")
	for a in "${ATTRS[@]}"; do echo 50 >$DBG/$a/times; echo 100 >$DBG/$a/probability; done
	"${TO[@]}" dmsetup message "$1" 0 checkpoint 2>>"$SCRATCH/nomem-msg.err" || rc=$?
	for a in "${ATTRS[@]}"; do
		echo 0 >$DBG/$a/probability
		read -r n <$DBG/$a/times
		case $a in
		failslab) INJ_SLAB=$((INJ_SLAB + 50 - n)) ;;
		fail_page_alloc) INJ_PAGE=$((INJ_PAGE + 50 - n)) ;;
		esac
		echo "$NOMEM_TIMES" >$DBG/$a/times
	done
	read -r _ _ _ _ _ after _ < <(dmsetup status "$1")
	if [ "$rc" = 0 ]; then
		note "checkpoint with every allocation failing: succeeded (era $before -> $after)"
	else
		note "checkpoint with every allocation failing: failed with an error (era $before -> $after): $(tail -n 1 "$SCRATCH/nomem-msg.err")"
		[ "$before" = "$after" ] || die "a failed checkpoint changed the era ($before -> $after)"
	fi
}

# Era: writes to known blocks and checkpoints under injection. A checkpoint
# may fail only with an error (dmsetup exits non-zero, the era unchanged);
# afterwards (no injection: a checkpoint, take_metadata_snap)
# era_invalidate --written-since 1 lists exactly the blocks written.
t_checkpoint_era() {
	begin era
	local i b blocks=() want list out line e s failed=0 ok=0 st before after
	era_setup 16
	inject_on "$NOMEM_PROB"
	for ((i = 0; i < 40; i++)); do
		b=$(((i * 37 + 11) % 256))
		blocks+=("$b")
		"${TO[@]}" dd if=/dev/zero of=/dev/mapper/rdmt-a-era bs=64k seek="$b" count=1 \
			oflag=direct conv=notrunc status=none || die "write of block $b failed"
		if ((i % 2)); then
			read -r _ _ _ _ _ before _ < <(dmsetup status rdmt-a-era)
			if "${TO[@]}" dmsetup message rdmt-a-era 0 checkpoint 2>>"$SCRATCH/nomem-msg.err"; then
				ok=$((ok + 1))
			else
				failed=$((failed + 1))
				read -r _ _ _ _ _ after _ < <(dmsetup status rdmt-a-era)
				note "checkpoint failed (era $before before, $after after)"
			fi
		fi
	done
	checkpoint_all_failing rdmt-a-era
	inject_off
	assert_injected
	note "checkpoints under injection: $ok succeeded, $failed failed"
	[ "$failed" = 0 ] || { sed 's/^/  dmsetup: /' "$SCRATCH/nomem-msg.err" >&2; klog; grep -E "era|device-mapper" <<<"$KLOG" | tail -n 5 >&2 || true; }
	"${TO[@]}" dmsetup message rdmt-a-era 0 checkpoint || die "checkpoint without injection failed"
	"${TO[@]}" dmsetup message rdmt-a-era 0 take_metadata_snap || die "take_metadata_snap failed"
	era_written_since 1 "$EMD"
	"${TO[@]}" dmsetup message rdmt-a-era 0 drop_metadata_snap || die "drop_metadata_snap failed"
	list=("${ERA_SINCE[@]}")
	want=$(printf '%s\n' "${blocks[@]}" | sort -n -u | tr '\n' ' ')
	assert_eq "$want" "$(printf '%s\n' "${list[@]}" | sort -n -u | tr '\n' ' ')" "blocks era_invalidate lists"
	st=$(dmsetup status rdmt-a-era)
	note "era status: $st"
	"${TO[@]}" dd if=/dev/zero of=/dev/mapper/rdmt-a-era bs=64k seek=255 count=1 oflag=direct conv=notrunc status=none ||
		die "write after the test failed"
	dmsetup remove rdmt-a-era
	[ "$failed" = 0 ] || die "$failed of $((ok + failed)) checkpoints failed under injection (with an error returned; no block lost)"
	end_test
}

# ==== constructors ===================================================================
# ctor_table TARGET: sets TABLE (and RO) for a device of TARGET over fresh
# loop devices.
ctor_table() {
	local lo md or
	RO=()
	case "$1" in
	linear)
		lo=$(new_loop nomem-lin 16)
		echo "$lo" >>"$SCRATCH/nomem-loops"
		TABLE="0 32768 $TT $lo 0" ;;
	era)
		md=$(new_loop nomem-era-md 4)
		or=$(new_loop nomem-era-or 16)
		echo "$md $or" >>"$SCRATCH/nomem-loops"
		CTOR_MD=$md
		TABLE="0 32768 era $md $or 128" ;;
	clone)
		clone_setup
		CTOR_MD=$CMD
		TABLE="$CTAB 0" ;;
	verity)
		local img=$SCRATCH/nomem-vdata.img hash=$SCRATCH/nomem-vhash.img data hdev
		pattern "$img" 16384 nomem-verity
		veritysetup format "$img" "$hash" >"$SCRATCH/nomem-vformat.out" 2>&1 || die "veritysetup format"
		vformat_out
		data=$(losetup --find --show --read-only "$img")
		hdev=$(losetup --find --show --read-only "$hash")
		echo "$data $hdev" >>"$SCRATCH/nomem-loops"
		RO=(--readonly)
		TABLE="0 16384 verity 1 $data $hdev 4096 4096 2048 1 sha256 $ROOT $SALT" ;;
	esac
}

# ctor_once N: dmsetup create with the N-th filtered allocation of its task
# failing; sets CRC (dmsetup's status) and counts what was injected.
ctor_once() {
	[ -z "${CTOR_MD:-}" ] || dd if=/dev/zero of="$CTOR_MD" bs=64k count=1 oflag=direct status=none
	kmark
	CRC=0
	# No `timeout` in between: fail-nth is the task's own (a child starts
	# with 0), and exec keeps it.
	(echo "$1" >/proc/self/fail-nth && exec dmsetup create rdmt-a-ctor "${RO[@]}" --table "$TABLE") \
		>"$SCRATCH/nomem-ctor.out" 2>&1 || CRC=$?
	inject_count
}

# The create whose N-th filtered allocation failed (CRC: dmsetup's exit
# status), judged: a clean failure (no device, a device-mapper reason in
# the kernel log) or a tolerated one (the device was made and reads).
# Counts in the caller's clean and tolerated.
ctor_judge() { # N
	local n=$1
	if [ "$CRC" != 0 ]; then
		clean=$((clean + 1))
		if dm_exists rdmt-a-ctor || [[ $'\n'"$(dmsetup ls 2>/dev/null)" == *$'\n'rdmt-a-ctor[[:space:]]* ]]; then
			die "n=$n: dmsetup create failed but the device exists"
		fi
		klog
		[[ "$KLOG" =~ device-mapper:\ (table|ioctl|$TT)|$TT: ]] ||
			{ cat "$SCRATCH/nomem-ctor.out" >&2; echo "$KLOG" | tail -n 5 >&2; die "n=$n: no device-mapper error in the kernel log"; }
		[ "$clean" -gt 3 ] || note "n=$n: $(grep -E 'device-mapper|'"$TT" <<<"$KLOG" | head -n 2 | tr '\n' ' ')"
	else
		tolerated=$((tolerated + 1))
		note "n=$n: create succeeded although an allocation failed"
		impl_assert_served rdmt-a-ctor
		"${TO[@]}" dd if=/dev/mapper/rdmt-a-ctor of=/dev/null bs=64k count=16 iflag=direct status=none ||
			die "n=$n: reading the device created after a tolerated failure"
		dmsetup remove rdmt-a-ctor || die "remove after n=$n"
	fi
}

# The N after N: every N up to 8, then a third more each time (or, with
# NOMEM_CTOR_N=A-B, every N of that range, then one beyond all).
ctor_next() { # N
	local n=$1 step
	if [ -n "${NOMEM_CTOR_N:-}" ]; then
		if [ "$n" -lt "${NOMEM_CTOR_N#*-}" ]; then step=1; else step=1000000; fi
	elif [ "$n" -lt 8 ]; then step=1; else step=$((n / 3)); fi
	echo $((n + step))
}

# Target T's constructor with its N-th filtered allocation failing, for
# N = 1, 2, 3, ... until a create makes no filtered allocation that late.
t_ctor() {
	local t=$1 n last=0 clean=0 tolerated=0 inj
	n=${NOMEM_CTOR_N:-1}
	n=${n%-*}
	begin "$t"
	local mark0=$KMARK
	ctor_table "$t"
	inject_on 0
	while :; do
		inj=$((INJ_SLAB + INJ_PAGE))
		ctor_once "$n"
		klog
		if [[ "$KLOG" =~ $REPORT_RE ]]; then
			echo "$KLOG" | grep -E -B2 -A30 "$REPORT_RE" | head -n 60 >&2
			die "n=$n: kernel report during dmsetup create"
		fi
		if [ $((INJ_SLAB + INJ_PAGE)) = "$inj" ]; then
			# Nothing failed: beyond the last filtered allocation.
			[ "$CRC" = 0 ] || { cat "$SCRATCH/nomem-ctor.out" >&2; die "dmsetup create failed with nothing injected (n=$n)"; }
			impl_assert_served rdmt-a-ctor
			dmsetup remove rdmt-a-ctor || die "remove after n=$n"
			break
		fi
		last=$n
		ctor_judge "$n"
		n=$(ctor_next "$n")
		# A bound on the walk; the debug kernel makes more filtered
		# allocations per create (a clone's passed 2000 there).
		[ "$n" -le $((2000 * SCALE)) ] || [ -n "${NOMEM_CTOR_N:-}" ] ||
			die "more than $((2000 * SCALE)) filtered allocations in dmsetup create"
	done
	inject_off
	note "ctor: failing allocation n=1..$last: $clean clean failures, $tolerated tolerated"
	assert_injected
	if [ -n "$MOD" ]; then
		rmmod "$MOD" || die "rmmod $MOD after the constructor failures (refcount $(mod_refcount "$MOD"))"
	fi
	KMARK=$mark0
	end_test
}

# ==== the suite ======================================================================
TESTS=(io_linear io_verity io_era io_clone hydrate_clone checkpoint_era
	ctor_linear ctor_verity ctor_clone ctor_era)

setup() {
	: >"$SCRATCH/nomem-loops"
}

cleanup_test() {
	local loops
	inject_reset 2>/dev/null
	if [ -f "$SCRATCH/nomem-bufio-cache" ]; then
		cp "$SCRATCH/nomem-bufio-cache" $BUFIO_CACHE 2>/dev/null || true
		rm -f "$SCRATCH/nomem-bufio-cache"
	fi
	dm_remove_all_test_devices
	if [ -s "$SCRATCH/nomem-loops" ]; then
		loops=$(tr ' ' '\n' <"$SCRATCH/nomem-loops" | grep . || true)
		[ -z "$loops" ] || losetup -d $loops 2>/dev/null || true
	fi
	: >"$SCRATCH/nomem-loops"
	rm -f "$SCRATCH"/nomem-*.img
}

suite_tests() {
	local t
	echo "# impl: linear $(impl_of linear), verity $(impl_of verity), era $(impl_of era), clone $(impl_of clone); probability $NOMEM_PROB %, times $NOMEM_TIMES"
	for t in "${TESTS[@]}"; do
		case $t in
		ctor_*) run_test "$t" t_ctor "${t#ctor_}" ;;
		*) run_test "$t" "t_$t" ;;
		esac
	done
}

# After every test (run_test): injection off, no device, no loop left.
KTAP_CLEANUP=cleanup_test
setup
ktap_suite nomem suite_tests
