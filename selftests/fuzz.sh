#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Fuzzing of table lines and messages: tools/dm-fuzz.py sends FUZZ_COUNT
# (default 10000) malformed, random and valid table lines per target, and
# messages to the tables that were accepted, through the DM ioctls, then a
# sample of them (FUZZ_DMSETUP, default 20) through `dmsetup create` and
# `dmsetup message`, which must agree. One test per target:
#
#   fuzz_linear   linear_rs   dm-linear-rs.ko
#   fuzz_verity   verity      dm-verity-rs.ko  (modprobe dm-bufio reed_solomon)
#   fuzz_era      era         dm-era-rs.ko     (modprobe dm-persistent-data)
#   fuzz_clone    clone       dm-clone-rs.ko   (modprobe dm-persistent-data)
#
# Each test passes when: the kernel logs no oops/BUG/WARNING (dm-fuzz stops
# at the first one and prints the input); every rejected table line and
# message has its reason in the kernel log; valid table lines are accepted,
# answer status queries and reload from their own table echo; each table of
# ours raises our module's reference count by one while it is loaded, and
# every input gives it back; the C twin is never loaded; the dmsetup path
# gets the outcomes and reasons of the ioctl path; no device is left behind;
# the module then unloads; and, in a kernel with kmemleak (the debug
# flavour), a scan after the unload finds no leak in device-mapper code.
#
# Environment:
#   FUZZ_SEED     the seed (printed as `# seed: N`; default: random). The
#                 same seed replays the same inputs, per target.
#   FUZZ_COUNT    table lines per target (default 10000)
#   FUZZ_DMSETUP  inputs also sent through dmsetup, per target (default 20;
#                 each costs ~0.4 s under TCG)
#   FUZZ_TARGETS  the targets (default "linear verity era clone")
#   FUZZ_IMPL     rust (default) or c: the kernel's targets instead (the
#                 built-in linear, dm-verity, dm-era, dm-clone), to compare
#   FUZZ_KO_DIR   where our .ko files are (default: the project directory)
#   FUZZ_RESULTS  a directory: keep each input's outcome there
#   FUZZ_TIMEOUT  seconds one target's run may take before it counts as
#                 hung (default 300 + FUZZ_COUNT / 5: 2,300 s for 10,000
#                 inputs; the base kernel needs ~100-400 s, the debug
#                 kernel up to ~1,000 s for clone)
#                 (<target>.<impl>), for `tools/dm-fuzz.py compare A B`
#
#   tools/vm-run.sh -- selftests/run.sh fuzz
#   tools/vm-run.sh -- env FUZZ_SEED=123 FUZZ_TARGETS=era selftests/run.sh fuzz
#
# A single input is replayed in a guest with its module loaded:
#   FUZZ_SEED=N tools/dm-fuzz.py run era --replay 1234
. "$(dirname "$0")/lib/suite.sh"
suite_init

impl_from_env fuzz
FUZZ_TARGETS=${FUZZ_TARGETS:-linear verity era clone}
FUZZ_COUNT=${FUZZ_COUNT:-10000}
FUZZ_DMSETUP=${FUZZ_DMSETUP:-20}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-$(((300 + FUZZ_COUNT / 5) * SCALE))}
if [ -z "${FUZZ_SEED:-}" ]; then
	read -r FUZZ_SEED < <(od -An -N4 -tu4 /dev/urandom)
fi
FUZZ_RESULTS=${FUZZ_RESULTS:-}
IMPL_KO_DIR=${FUZZ_KO_DIR:-$TOP}
FUZZ=$TOP/tools/dm-fuzz.py

fz_devices() { # the fuzzer's devices that exist
	local f n
	FZ_DEVS=()
	for f in /sys/block/dm-*/dm/name; do
		[ -e "$f" ] || continue
		read -r n <"$f"
		case $n in rdmt-fz-*) FZ_DEVS+=("$n") ;; esac
	done
}

# kmemleak_check: with kmemleak in the kernel, scan (objects unreferenced
# for 5 s are reported; a scan takes minutes under TCG) and fail on a leak
# whose trace goes through device-mapper code. Without it, say so. The
# verdict goes to the summary printed after the test.
KMEMLEAK=/sys/kernel/debug/kmemleak
kmemleak_prepare() {
	[ -e $KMEMLEAK ] || mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug 2>/dev/null || true
	[ -e $KMEMLEAK ] && echo clear >$KMEMLEAK 2>/dev/null || true
}
kmemleak_check() {
	local out=$SCRATCH/kmemleak.out
	if [ ! -e $KMEMLEAK ]; then
		echo "# kmemleak: not in this kernel, not checked" | tee -a "$SCRATCH/fuzz-summary"
		return 0
	fi
	sleep 6
	echo scan >$KMEMLEAK
	cat $KMEMLEAK >"$out"
	if [ ! -s "$out" ]; then
		echo "# kmemleak: no leak after the fuzzing of $1 and the unload" | tee -a "$SCRATCH/fuzz-summary"
		return 0
	fi
	echo "# kmemleak reports $(grep -c '^unreferenced object' "$out") unreferenced objects" | tee -a "$SCRATCH/fuzz-summary"
	sed 's/^/# kmemleak: /' "$out" | head -n 60
	if grep -qE '\b(dm_|dm-|verity|era_|clone|linear|bufio|pdata|persistent|_rs\b)' "$out"; then
		die "kmemleak: leak in device-mapper code after the fuzzing of $1"
	fi
}

t_fuzz() {
	local t=$1 rc=0 res=() j m
	impl_load "$t" "$FUZZ_IMPL"
	if [ -n "$IMPL_MOD" ]; then
		assert_eq 0 "$(mod_refcount "$IMPL_MOD")" "refcount of $IMPL_MOD before fuzzing"
	fi
	impl_assert_registered
	kmemleak_prepare
	[ -z "$FUZZ_RESULTS" ] || { mkdir -p "$FUZZ_RESULTS"; res=(--results "$FUZZ_RESULTS/$t.$FUZZ_IMPL"); }
	# No module autoloading while fuzzing: the kernel asks modprobe for
	# every block major and crypto algorithm a table names that it does
	# not have (~1 s each under TCG); with no modprobe path it gets ENOENT
	# at once, the same refusal. It also keeps the C twin from being
	# autoloaded (and dm-fuzz checks that it is not loaded).
	MODPROBE=$(cat /proc/sys/kernel/modprobe)
	echo >/proc/sys/kernel/modprobe
	timeout -k 10 "$FUZZ_TIMEOUT" python3 "$FUZZ" run "$t" --impl "$FUZZ_IMPL" --seed "$FUZZ_SEED" \
		--count "$FUZZ_COUNT" --dmsetup "$FUZZ_DMSETUP" --scratch "$SCRATCH/fuzz-$t" "${res[@]}" \
		>"$SCRATCH/fuzz-$t.out" 2>&1 || rc=$?
	echo "$MODPROBE" >/proc/sys/kernel/modprobe
	cat "$SCRATCH/fuzz-$t.out"
	grep -E '^# [a-z]+ (\((rust|c)\):|time:|rejected loads, most time:) ' "$SCRATCH/fuzz-$t.out" >"$SCRATCH/fuzz-summary" || true
	if [ $rc -ge 124 ] || [ $rc = 3 ]; then
		# killed, timed out or a kernel report: the input in flight
		j=$SCRATCH/fuzz-$t/journal
		[ -s "$j" ] && sed 's/^/# in flight: /' "$j"
		for j in $(losetup -a 2>/dev/null | sed -n "s|^\(/dev/loop[0-9]*\):.*$SCRATCH/fuzz-$t/.*|\1|p"); do
			losetup -d "$j" 2>/dev/null || true
		done
	fi
	fz_devices
	if [ ${#FZ_DEVS[@]} != 0 ]; then
		timeout $((60 * SCALE)) dmsetup remove --retry "${FZ_DEVS[@]}" >/dev/null 2>&1 || true
		die "devices left behind: ${FZ_DEVS[*]}"
	fi
	for m in $IMPL_OTHERS; do
		if mod_loaded "$m"; then die "$m got loaded during the fuzzing"; fi
	done
	if [ -n "$IMPL_MOD" ]; then
		assert_eq 0 "$(mod_refcount "$IMPL_MOD")" "refcount of $IMPL_MOD after fuzzing"
		timeout $((60 * SCALE)) rmmod "$IMPL_MOD" || die "rmmod $IMPL_MOD failed after fuzzing"
		if mod_loaded "$IMPL_MOD"; then die "$IMPL_MOD still loaded after rmmod"; fi
	fi
	kmemleak_check "$t"
	[ $rc = 0 ] || die "dm-fuzz $t failed (exit status $rc)"
}

setup() {
	# dm-fuzz writes a record to /dev/kmsg when a reason seems missing
	# (to flush a record the kernel left open): not rate-limited away
	DEVKMSG=$(cat /proc/sys/kernel/printk_devkmsg 2>/dev/null || echo)
	[ -z "$DEVKMSG" ] || echo on >/proc/sys/kernel/printk_devkmsg
}

teardown() {
	[ -z "$DEVKMSG" ] || echo "$DEVKMSG" >/proc/sys/kernel/printk_devkmsg
}

suite_tests() {
	local t
	echo "# seed: $FUZZ_SEED"
	echo "# FUZZ_IMPL=$FUZZ_IMPL FUZZ_COUNT=$FUZZ_COUNT FUZZ_DMSETUP=$FUZZ_DMSETUP"
	for t in $FUZZ_TARGETS; do
		rm -f "$SCRATCH/fuzz-summary"
		run_test "fuzz_$t" t_fuzz "$t"
		[ ! -s "$SCRATCH/fuzz-summary" ] || cat "$SCRATCH/fuzz-summary"
	done
}

setup
ktap_suite fuzz suite_tests
teardown
