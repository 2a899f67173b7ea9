#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs the selftest suites named on the command line (selftests/<suite>.sh)
# in the guest and prints KTAP with each suite as a subtest, then
#   selftests: N passed, N failed, N skipped
# counting test cases. The suites `make check` runs are listed in
# selftests/suites.
#
#   tools/vm-run.sh -- selftests/run.sh verity era
#   tools/vm-run.sh -- selftests/run.sh $(awk '!/^#/ {print $1}' selftests/suites)
dir=$(cd "$(dirname "$0")" && pwd)
if [ $# -eq 0 ]; then
	echo "usage: $0 SUITE... (the suites: $(awk '!/^#/ {print $1}' "$dir/suites" | tr '\n' ' '))" >&2
	exit 2
fi

echo "KTAP version 1"
echo "1..$#"
passed=0 failed=0 skipped=0 nr=0
for s in "$@"; do
	nr=$((nr + 1))
	out=$(mktemp)
	if [ -f "$dir/$s.sh" ]; then
		bash "$dir/$s.sh" 2>&1 | tee "$out" | sed -u 's/^/    /'
	else
		echo "# no suite $dir/$s.sh" | tee "$out"
	fi
	totals=$(grep -a '^# totals:' "$out" | tail -n1)
	p=$(echo "$totals" | sed -n 's/.* \([0-9]*\) passed.*/\1/p')
	f=$(echo "$totals" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
	k=$(echo "$totals" | sed -n 's/.* \([0-9]*\) skipped.*/\1/p')
	if [ -z "$p" ]; then
		# The suite died before its end: count it as one failure.
		k=$(grep -ac '^ok .* # SKIP' "$out")
		p=$(($(grep -ac '^ok ' "$out") - k))
		f=$(($(grep -ac '^not ok ' "$out") + 1))
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + ${k:-0}))
	if [ "$f" -eq 0 ]; then echo "ok $nr $s"; else echo "not ok $nr $s"; fi
	rm -f "$out"
done
echo "selftests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
