#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs the selftest suites in the guest (selftests/<suite>.sh, or the ones
# named on the command line) and prints KTAP with each suite as a subtest,
# then `selftests: N passed, N failed` counting test cases.
dir=$(cd "$(dirname "$0")" && pwd)
if [ $# -gt 0 ]; then
	suites=("$@")
else
	suites=()
	for f in "$dir"/*.sh; do
		case "$(basename "$f")" in lib.sh | run.sh) ;; *) suites+=("$(basename "$f" .sh)") ;; esac
	done
fi

echo "KTAP version 1"
echo "1..${#suites[@]}"
passed=0 failed=0 nr=0
for s in "${suites[@]}"; do
	nr=$((nr + 1))
	out=$(mktemp)
	bash "$dir/$s.sh" 2>&1 | tee "$out" | sed -u 's/^/    /'
	totals=$(grep -a '^# totals:' "$out" | tail -n1)
	p=$(echo "$totals" | sed -n 's/.* \([0-9]*\) passed.*/\1/p')
	f=$(echo "$totals" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
	if [ -z "$p" ]; then
		# The suite died before its end: count it as one failure.
		p=$(grep -ac '^ok ' "$out")
		f=$(($(grep -ac '^not ok ' "$out") + 1))
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$f" -eq 0 ]; then echo "ok $nr $s"; else echo "not ok $nr $s"; fi
	rm -f "$out"
done
echo "selftests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
