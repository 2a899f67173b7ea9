#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check`: set-up, kernel (cached), modules built warning-free under
# clippy, rustfmt, host unit tests, then the selftests (selftests/suites) in
# a fresh guest.
# Ends with `N passed, N failed, N skipped`; exits non-zero on any failure.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/env.sh"
out="$top/out/check"
passed=0 failed=0 skipped=0

result() { # NAME OK(0|1) [DETAIL-FILE]
	if [ "$2" = 0 ]; then
		passed=$((passed + 1))
		echo "ok - $1"
	else
		failed=$((failed + 1))
		echo "not ok - $1"
		[ -n "${3:-}" ] && sed 's/^/#   /' "$3" | tail -n 40
	fi
}

finish() {
	echo "$passed passed, $failed failed, $skipped skipped"
	[ "$failed" -eq 0 ]
	exit $?
}

"$top/scripts/setup.sh" || { echo "setup failed"; failed=1; finish; }
kdir=$("$top/scripts/build-kernel.sh") || { echo "kernel build failed"; failed=1; finish; }

make -s -C "$top" KDIR="$kdir" clean >/dev/null 2>&1
mkdir -p "$out"

# The builtin kernel flavour (our targets =y; selftests/host/boot-builtin.sh)
# is a second full kernel build on a fresh machine (~20 min on two cores):
# started now, in the background, it builds while the modules, the host
# tests and the guest suites run (niced: the guests come first), and
# boot-builtin, run last, waits for it
# (build-kernel.sh holds a lock on the build folder; boot-builtin's own call
# then finds it built). On a warm machine this is the incremental update of
# a few seconds. Its output: $out/builtin-kernel.log.
RDM_KERNEL_FLAVOUR=builtin nice -n 10 "$top/scripts/build-kernel.sh" >"$out/builtin-kernel.log" 2>&1 &
builtin_kernel=$!

# --- modules: a clean build under clippy, no warning of any kind ---
make -C "$top" KDIR="$kdir" modules CLIPPY=1 W=1 >"$out/build.log" 2>&1
rc=$?
grep -E -i 'warning|error' "$out/build.log" >"$out/build-warnings.log"
[ $rc -eq 0 ] && [ ! -s "$out/build-warnings.log" ]
result "modules build with clippy, no warnings" $? "$out/build.log"

# --- rustfmt, with the kernel's settings ---
find "$top/rust" -name '*.rs' ! -name '*_generated.rs' -print0 |
	xargs -0 "$RUSTFMT" --check --edition 2021 --config-path "$KSRC/.rustfmt.toml" \
		>"$out/rustfmt.log" 2>&1
rc=$?
# The compile-fail cases, through stdin: their `mod dm` points at
# ../dm/mod.rs of the build folder, which rustfmt would follow.
for f in "$top"/selftests/compile-fail/*.rs; do
	[ -e "$f" ] || continue
	"$RUSTFMT" --edition 2021 --config-path "$KSRC/.rustfmt.toml" --emit stdout <"$f" >"$out/rustfmt.case" 2>>"$out/rustfmt.log" &&
		cmp -s "$f" "$out/rustfmt.case" ||
		{ rc=1; diff -u "$f" "$out/rustfmt.case" >>"$out/rustfmt.log"; }
done
[ $rc -eq 0 ]
result "rustfmt clean" $? "$out/rustfmt.log"

# --- SPDX headers ---
grep -L 'SPDX-License-Identifier' $(git -C "$top" ls-files '*.rs' '*.c' '*.h' '*.sh' '*.py' '*.config' Kbuild Makefile 'selftests/suites' 'tools/*' 'scripts/*' '.ci/*' | grep -vE '(Cargo.lock|kernel-report-patterns)$' | sed "s|^|$top/|") \
	>"$out/spdx.log" 2>&1
[ ! -s "$out/spdx.log" ]
result "SPDX header in every source file" $? "$out/spdx.log"

# --- no unsafe code in a target ---
# The compiler enforces it (every target crate root has
# `#![deny(unsafe_code)]`, lifted in rust/dm alone; the compile-fail case
# unsafe_in_target shows it). A second line of defence: every crate root
# that ./Kbuild lists has the attribute, and no target source outside
# rust/dm says `unsafe`, allows unsafe_code, or uses the attributes that
# unsafe_code guards (comments aside).
{
	roots=$(sed -n '/^rust-crate-roots/,/[^\\]$/p' "$top/Kbuild" | grep -oE 'rust/[A-Za-z0-9_/]+\.o' | sed 's/\.o$/.rs/')
	[ -n "$roots" ] || echo "no rust-crate-roots in Kbuild"
	for r in $roots; do
		grep -q '^#!\[deny(unsafe_code)\]' "$top/$r" || echo "$r: no #![deny(unsafe_code)]"
	done
	find "$top/rust" -name '*.rs' ! -path "$top/rust/dm/*" -print0 | sort -z |
		xargs -0 grep -nE '\bunsafe\b|unsafe_code|no_mangle|export_name|link_section' /dev/null |
		grep -vE '^[^:]+:[0-9]+:[[:space:]]*//' | grep -v 'deny(unsafe_code)' | sed "s|^$top/||"
} >"$out/unsafe.log" 2>&1
[ ! -s "$out/unsafe.log" ]
result "no unsafe code in a target (deny(unsafe_code) at every crate root)" $? "$out/unsafe.log"

# --- compile-fail tests: API misuses that must not build, each for its
# reason (selftests/compile-fail, scripts/compile-fail.sh) ---
KDIR="$kdir" "$top/scripts/compile-fail.sh" >"$out/compile-fail.log" 2>&1
rc=$?
line=$(grep -a '^# totals:' "$out/compile-fail.log" | tail -n1)
p=$(echo "$line" | sed -n 's/.* \([0-9]*\) passed.*/\1/p')
f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
[ -n "$p" ] || { p=0; f=1; }
[ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
k=$(grep -a '^# skipped:' "$out/compile-fail.log" | sed -n 's/^# skipped: \([0-9]*\).*/\1/p' | tail -n1)
passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + ${k:-0}))
echo "compile-fail tests: $p passed, $f failed, ${k:-0} skipped ($(grep -a '^# time:' "$out/compile-fail.log" | sed 's/^# time: //'))"
[ "$f" -eq 0 ] || grep -a -B30 '^not ok' "$out/compile-fail.log" | sed 's/^/#   /' | tail -n 60

# --- no grep -q reading a pipe under pipefail ---
# grep -q exits at the first match; the producer then gets SIGPIPE and,
# under pipefail, the pipeline fails at random (busybox --list: 4 in 300 runs).
# Scripts use `has` (read all, then count) instead.
for f in $(git -C "$top" ls-files 'scripts/*' 'tools/*' 'selftests/*' '.ci/*'); do
	grep -qE 'set -[a-zA-Z]*o pipefail|set -o pipefail' "$top/$f" 2>/dev/null || continue
	grep -nE '(^|[^|])\|[[:space:]]*grep[[:space:]]+-[a-zA-Z]*q' "$top/$f" | grep -vE '^[0-9]+:[[:space:]]*#' | sed "s|^|$f:|"
done >"$out/pipefail-grep-q.log" 2>&1
[ ! -s "$out/pipefail-grep-q.log" ]
result "no grep -q reading a pipe under pipefail" $? "$out/pipefail-grep-q.log"

# --- host unit tests ---
(cd "$top/tools/hosttests" && "$CARGO" test --quiet) >"$out/hosttests.log" 2>&1
rc=$?
p=$(awk '/^test result:/ {s += $4} END {print s + 0}' "$out/hosttests.log")
f=$(awk '/^test result:/ {s += $6} END {print s + 0}' "$out/hosttests.log")
[ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
passed=$((passed + p)) failed=$((failed + f))
echo "host unit tests: $p passed, $f failed"
[ "$f" -eq 0 ] || sed 's/^/#   /' "$out/hosttests.log" | tail -n 40

# --- the bench report's own test: every ratio reads > 1 when Rust is better ---
"$top/tools/bench-report.py" --self-test >"$out/bench-report-self-test.log" 2>&1
result "bench-report self-test (every ratio: > 1 = Rust better)" $? "$out/bench-report-self-test.log"

# --- host-side VM tests (they boot their own QEMU: boot-time devices) ---
# boot-builtin runs last (below), once its kernel is built.
host_test() { # FILE
	local t=$1 name rc line p f k
	name=$(basename "$t" .sh)
	bash "$t" 2>&1 | tee "$out/host-$name.log" | sed -u 's/^/    /'
	rc=${PIPESTATUS[0]}
	line=$(grep -a '^# totals:' "$out/host-$name.log" | tail -n1)
	p=$(echo "$line" | sed -n 's/.* \([0-9]*\) passed.*/\1/p')
	f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
	k=$(echo "$line" | sed -n 's/.* \([0-9]*\) skipped.*/\1/p')
	[ -n "$p" ] || { p=0; f=1; }
	[ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
	echo "host $name: $p passed, $f failed, ${k:-0} skipped"
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + ${k:-0}))
}
for t in "$top"/selftests/host/*.sh; do
	[ -e "$t" ] || continue
	[ "$(basename "$t")" = boot-builtin.sh ] && continue
	host_test "$t"
done

# --- selftests in the guest ---
# The guest's deadline: the whole suite takes ~40 min under TCG on the
# base kernel on a quiet host (nomem and verity_fec added ~15 min), more
# beside another guest; KASAN and lockdep make the debug kernel ~3x slower.
deadline=${RDM_GUEST_DEADLINE:-4800}
# The suites' knobs (see Documentation/testing.md) reach the guest when set
# here. On the debug kernel every suite and every test runs, but the loops
# are shorter unless set (KASAN, lockdep and kmemleak make each step 3-10x
# slower under TCG): 25 suspend/resume and reload cycles instead of 100, 5
# module loads instead of 20, 2,500 fuzzed inputs per target instead of
# 10,000, 15 attach swaps instead of 50; and clone's per-test deadline is
# 40 min instead of 10.
guest_env=()
if [ "${RDM_KERNEL_FLAVOUR:-base}" = debug ]; then
	deadline=${RDM_GUEST_DEADLINE:-10800}
	: "${N_CYCLES:=25}" "${N_LOADS:=5}" "${FUZZ_COUNT:=2500}" "${N_SWAPS:=15}"
	: "${CLONE_TEST_DEADLINE:=2400}"
fi
for v in N_CYCLES N_LOADS FUZZ_COUNT FUZZ_SEED FUZZ_DMSETUP FUZZ_TIMEOUT N_SWAPS CLONE_TEST_DEADLINE N_TEARDOWN LEAK_MARGIN_KIB; do
	[ -z "${!v:-}" ] || guest_env+=("$v=${!v}")
done
"$top/tools/vm-run.sh" --kernel "$kdir" --timeout "$deadline" --log "$out/guest-console.log" -- \
	env "${guest_env[@]}" "$top/selftests/run.sh" $(grep -v '^#' "$top/selftests/suites") | tee "$out/selftests.log"
rc=${PIPESTATUS[0]}
line=$(grep -a '^selftests:' "$out/selftests.log" | tail -n1)
p=$(echo "$line" | sed -n 's/^selftests: \([0-9]*\) passed.*/\1/p')
f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
k=$(echo "$line" | sed -n 's/.* \([0-9]*\) skipped.*/\1/p')
[ -n "$p" ] || { p=0; f=1; }
skipped=$((skipped + ${k:-0}))
# The guest finished its tests but the run failed (kernel report, crash).
[ $rc -ne 0 ] && [ "$f" -eq 0 ] && { f=1; echo "not ok - guest run (vm-run exit $rc)"; }
passed=$((passed + p)) failed=$((failed + f))

# --- the builtin kernel's boot tests, once the background build is done
# (a failed build is reported by boot-builtin's own kernel test) ---
wait "$builtin_kernel"
echo "builtin kernel: $(grep -a '^\[kernel\] \(built\|updated\|cached\)' "$out/builtin-kernel.log" | tail -n1)"
host_test "$top/selftests/host/boot-builtin.sh"
finish
