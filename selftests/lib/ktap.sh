# SPDX-License-Identifier: GPL-2.0
#
# KTAP output ($KSRC/Documentation/dev-tools/ktap.rst) for a suite: one
# shell function per test case, run by run_test; skips are KTAP skips
# (`ok N name # SKIP reason`) counted apart; the suite ends with
#   # totals: P passed, F failed, S skipped
# which selftests/run.sh adds up. Sourcing this file defines functions only.
#
# A suite lists its test cases in a function and hands it to ktap_suite,
# which runs the list twice: once to count (nothing runs), then for real
# after the header and plan. No count is written by hand:
#
#   suite_tests() {
#           run_test registered t_registered
#           run_test bad_input t_bad_input
#   }
#   ktap_suite linear suite_tests
#
# The list holds run_test/skip_test lines, loops and conditions over them
# and diagnostics (`echo "# ..."`); anything else in it runs twice (a
# wrapper around run_test may ask ktap_counting whether this is the first
# pass).
#
# <SUITE>_ONLY (a regex, e.g. CLONE_ONLY=interop or VERITY_ONLY='image|bad'):
# run only the tests whose names match; the others are skipped ("not in
# <SUITE>_ONLY"). A list of names separated by spaces works too.

# run_test NAME FUNC [ARGS...]: runs FUNC in a subshell with `set -e`, so
# the first failing command or assertion fails the test. The test's output
# is shown only when it fails, apart from lines it writes to fd 3 (`note`)
# and, with KTAP_DIAG=1, its own diagnostic lines ("# ...").
# After the test, the suite's KTAP_CLEANUP function (if set) runs, whatever
# the outcome. TEST_T0 is the test's start ($SECONDS).
run_test() {
	local name=$1 out rc
	shift
	if [ "${KTAP_COUNTING:-0}" = 1 ]; then
		KTAP_COUNT=$((KTAP_COUNT + 1))
		return 0
	fi
	if ! ktap_selected "$name"; then
		skip_test "$name" "not in ${KTAP_ONLY_VAR}"
		return 0
	fi
	TEST_NR=$((TEST_NR + 1))
	TEST_T0=$SECONDS
	out=$(mktemp)
	(
		set -eE
		trap 'echo "failed: line $LINENO: $BASH_COMMAND" >&2' ERR
		"$@"
	) >"$out" 2>&1
	rc=$?
	[ -z "${KTAP_CLEANUP:-}" ] || "$KTAP_CLEANUP"
	if [ $rc -eq 0 ]; then
		TESTS_PASSED=$((TESTS_PASSED + 1))
		[ "${KTAP_DIAG:-0}" = 0 ] || grep -a '^# ' "$out"
		echo "ok $TEST_NR $name"
	else
		TESTS_FAILED=$((TESTS_FAILED + 1))
		if [ "${KTAP_DIAG:-0}" = 0 ]; then
			sed 's/^/# /' "$out"
		else
			grep -a '^# ' "$out"
			grep -av '^# ' "$out" | sed 's/^/# /'
		fi
		echo "not ok $TEST_NR $name"
	fi
	echo "# $name: $((SECONDS - TEST_T0)) s"
	rm -f "$out"
}

# skip_test NAME REASON: a KTAP skip, counted as skipped (never as a pass).
skip_test() {
	if [ "${KTAP_COUNTING:-0}" = 1 ]; then
		KTAP_COUNT=$((KTAP_COUNT + 1))
		return 0
	fi
	TEST_NR=$((TEST_NR + 1))
	TESTS_SKIPPED=$((TESTS_SKIPPED + 1))
	echo "ok $TEST_NR $1 # SKIP $2"
}

ktap_counting() { [ "${KTAP_COUNTING:-0}" = 1 ]; }

# ktap_selected NAME: whether <SUITE>_ONLY (see above) selects NAME.
ktap_selected() {
	local re=${KTAP_ONLY:-}
	[ -n "$re" ] || return 0
	re=${re// /|}
	[[ $1 =~ $re ]]
}

# ktap_suite NAME LIST: the header, the plan (counted from LIST), the tests
# in LIST, the totals line.
ktap_suite() {
	local name=$1 list=$2 v
	v=${name^^}
	v=${v//[^A-Z0-9_]/_}_ONLY
	KTAP_ONLY_VAR=$v KTAP_ONLY=${!v:-}
	TESTS_PASSED=0 TESTS_FAILED=0 TESTS_SKIPPED=0 TEST_NR=0
	KTAP_COUNTING=1 KTAP_COUNT=0
	"$list" >/dev/null 2>&1 3>&1
	KTAP_COUNTING=0
	echo "KTAP version 1"
	echo "# Subtest: $name"
	echo "1..$KTAP_COUNT"
	"$list"
	ktap_totals
}

ktap_totals() {
	echo "# totals: ${TESTS_PASSED:-0} passed, ${TESTS_FAILED:-0} failed, ${TESTS_SKIPPED:-0} skipped"
}

# note TEXT: a diagnostic line on the suite's output, also from a test that
# passes (fd 3 is the suite's standard output: suite_init opens it).
note() { echo "# $*" >&3; }

# fail WHY: the test fails (the reason stays in TEST_FAILURE); die WHY: the
# same, and says why on standard error.
fail() {
	TEST_FAILURE="$*"
	return 1
}
die() {
	echo "FAIL: $*" >&2
	fail "$*"
}

# ---- assertions -------------------------------------------------------------
assert_eq() { # EXPECTED ACTUAL [WHAT]
	[ "$1" = "$2" ] || { echo "expected ${3:-value}: '$1'" >&2; echo "     got: '$2'" >&2; return 1; }
}

# assert_fails WHAT CMD...: CMD must exit non-zero.
assert_fails() {
	local what=$1
	shift
	if "$@" >/dev/null 2>&1; then
		echo "expected failure: $what ($*)" >&2
		return 1
	fi
}

# has [GREP-OPTION...] PATTERN: whether standard input has a line matching
# PATTERN. Reads all of it: `producer | grep -q` under pipefail fails at
# random (grep exits at the first match, the producer gets SIGPIPE).
has() { local n; n=$(grep -c "$@") || true; [ "${n:-0}" -gt 0 ]; }
