#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check`: set-up, kernels (cached), modules built warning-free under
# clippy, rustfmt, host unit tests, the host boot tests, then the selftests
# (selftests/suites) in two fresh guests. RDM_CHECK_FULL=1 (`make
# check-full`): the stress loops at the suites' own counts.
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
# builds in the background while the modules and the host tests build and
# run. On a fresh machine it starts from the base kernel's objects
# (scripts/build-kernel.sh: the Rust crates, our targets and the link, a
# few minutes); on a warm one it is an incremental update of seconds.
# boot-builtin waits for it. Its output: $out/builtin-kernel.log.
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
# The compile-fail cases and their skeleton, through stdin: their `mod dm`
# points at ../dm/mod.rs of the build folder, which rustfmt would follow.
# (rustfmt leaves a case's `cf_target! { ... }` as written.)
for f in "$top"/selftests/compile-fail/*.rs "$top"/selftests/compile-fail/common/*.rs; do
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
# boot-builtin runs once its kernel is built (below).
# add_counts LABEL LOG STATUS PATTERN: adds the counts of LOG's last line
# matching PATTERN ("... N passed, N failed, N skipped") to the totals and
# prints them; no such line, or a non-zero STATUS with no failure counted
# (a crash, a kernel report), is one failure.
add_counts() {
	local line p f k
	line=$(grep -a "$4" "$2" | tail -n1)
	p=$(echo "$line" | sed -n 's/.* \([0-9]*\) passed.*/\1/p')
	f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
	k=$(echo "$line" | sed -n 's/.* \([0-9]*\) skipped.*/\1/p')
	[ -n "$p" ] || { p=0; f=1; }
	[ "$3" -ne 0 ] && [ "$f" -eq 0 ] && f=1
	echo "$1: $p passed, $f failed, ${k:-0} skipped"
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + ${k:-0}))
}
host_test() { # FILE
	local t=$1 name
	name=$(basename "$t" .sh)
	bash "$t" 2>&1 | tee "$out/host-$name.log" | sed -u 's/^/    /'
	add_counts "host $name" "$out/host-$name.log" "${PIPESTATUS[0]}" '^# totals:'
}
for t in "$top"/selftests/host/*.sh; do
	[ -e "$t" ] || continue
	[ "$(basename "$t")" = boot-builtin.sh ] && continue
	host_test "$t"
done

# --- the builtin kernel's boot tests, once its build is done (a failed
# build is reported by boot-builtin's own kernel test) ---
wait "$builtin_kernel"
echo "builtin kernel: $(grep -a '^\[kernel\] \(built\|updated\|cached\)' "$out/builtin-kernel.log" | tail -n1)"
host_test "$top/selftests/host/boot-builtin.sh"

# --- selftests in two guests ---
# The suites of selftests/suites run in RDM_GUEST_JOBS (2) fresh guests at
# once, one per host core: each suite goes to the guest with the least
# work so far, longest first, by the time selftests/suites gives it. A
# guest's deadline: its share takes ~30 min under TCG on the base kernel on
# a quiet host; KASAN and lockdep make the debug kernel ~3x slower.
#
# `make check` runs the stress loops shorter than the suites' own defaults
# (which `make check-full` keeps): 10 attach swaps per target instead of 50
# and 3,000 fuzzed table lines per target instead of 10,000; the 50 swaps
# and 10,000 lines alone take ~25 min of guest time.
jobs=${RDM_GUEST_JOBS:-2}
deadline=${RDM_GUEST_DEADLINE:-4800}
if [ -z "${RDM_CHECK_FULL:-}" ]; then
	: "${N_SWAPS:=10}" "${FUZZ_COUNT:=3000}"
else
	deadline=${RDM_GUEST_DEADLINE:-6000}
fi
# The suites' knobs (see Documentation/testing.md) reach the guest when set
# here. On the debug kernel every suite and every test runs, but the loops
# are shorter unless set (KASAN, lockdep and kmemleak make each step 3-10x
# slower under TCG): 25 suspend/resume and reload cycles instead of 100, 5
# module loads instead of 20, 2,500 fuzzed inputs per target, 10 attach
# swaps; and clone's per-test deadline is 40 min instead of 10.
if [ "${RDM_KERNEL_FLAVOUR:-base}" = debug ]; then
	deadline=${RDM_GUEST_DEADLINE:-10800}
	: "${N_CYCLES:=25}" "${N_LOADS:=5}" "${FUZZ_COUNT:=2500}"
	: "${CLONE_TEST_DEADLINE:=2400}"
fi
guest_env=()
for v in N_CYCLES N_LOADS FUZZ_COUNT FUZZ_SEED FUZZ_DMSETUP FUZZ_TIMEOUT N_SWAPS CLONE_TEST_DEADLINE N_TEARDOWN LEAK_MARGIN_KIB; do
	[ -z "${!v:-}" ] || guest_env+=("$v=${!v}")
done
# The suites, longest first, dealt to the guest with the least work so far.
declare -a share load
for ((g = 0; g < jobs; g++)); do share[g]="" load[g]=0; done
while read -r suite secs; do
	best=0
	for ((g = 1; g < jobs; g++)); do [ "${load[g]}" -lt "${load[best]}" ] && best=$g; done
	share[best]+=" $suite" load[best]=$((load[best] + secs))
done < <(grep -v '^#' "$top/selftests/suites" | awk 'NF {print $1, ($2 == "" ? 60 : $2)}' | sort -k2,2nr -k1,1)
pids=()
for ((g = 0; g < jobs; g++)); do
	[ -n "${share[g]}" ] || continue
	echo "guest $((g + 1)):${share[g]} (~$((load[g] / 60)) min)"
	"$top/tools/vm-run.sh" --kernel "$kdir" --timeout "$deadline" --log "$out/guest-$((g + 1))-console.log" -- \
		env "${guest_env[@]}" "$top/selftests/run.sh" ${share[g]} >"$out/selftests-$((g + 1)).log" 2>&1 &
	pids[g]=$!
done
for ((g = 0; g < jobs; g++)); do
	[ -n "${pids[g]:-}" ] || continue
	rc=0
	wait "${pids[g]}" || rc=$?
	cat "$out/selftests-$((g + 1)).log"
	add_counts "guest $((g + 1)) (${share[g]# }; vm-run exit $rc)" "$out/selftests-$((g + 1)).log" "$rc" '^selftests:'
done
finish
