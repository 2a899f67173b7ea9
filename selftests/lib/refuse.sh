# SPDX-License-Identifier: GPL-2.0
#
# Refused input: a table line (or a message, or any command) must fail, in
# time, leave no device behind and give its reason in the kernel log.
# Sourcing this file defines functions and variables only. Needs die
# (ktap.sh) and dm_exists (dm.sh).
#
# The reasons are checked together, with one dmesg run, by refusals_check
# (a dmesg costs ~0.6 s under TCG): each refusal first writes a line
# "<tag> case N:" to /dev/kmsg, and its reasons must be among the lines
# logged after it and before the next one.
#
#   refuse REGEX WHAT CMD...   CMD (under the suite's TO prefix, if any)
#                              fails, does not hang, leaves no REFUSE_DEV
#   refuse_rows CMD... <<-EOF
#           REGEX | ARG        a table of refusals, one a row: `CMD... ARG`
#           ...                must fail with a kernel log line matching
#           EOF                REGEX (several: REGEX && REGEX; none: an
#                              empty REGEX); blank lines and lines starting
#                              with # are skipped
#   refuse_tables [DMSETUP-OPTION...] <<-EOF
#           REGEX | TABLE      refuse_rows of `dmsetup create $REFUSE_DEV
#           EOF                [DMSETUP-OPTION...] --table TABLE`
#   refusals_check             every refusal's reasons are in the log
#   accept_table TABLE [DMSETUP-OPTION...]
#                              the counterpart (an edge value, a C quirk):
#                              the table is accepted; the device removed
#
# A row is split at its last " | ": a REGEX may hold " | ", an ARG not.

REFUSE_DEV=rdmt-bad
REFUSE_N=0
REFUSE_TAG=
REFUSE_RE=()
REFUSE_WHAT=()

refuse() {
	local re=$1 what=$2 rc=0
	shift 2
	[ -n "$REFUSE_TAG" ] || REFUSE_TAG="$(basename "$0" .sh)-selftest refusal $BASHPID-$RANDOM$RANDOM"
	REFUSE_N=$((REFUSE_N + 1))
	REFUSE_RE[REFUSE_N]=$re REFUSE_WHAT[REFUSE_N]=$what
	echo "$REFUSE_TAG case $REFUSE_N:" >/dev/kmsg
	${TO[@]+"${TO[@]}"} "$@" </dev/null >/dev/null 2>&1 || rc=$?
	if [ $rc -eq 0 ]; then
		! dm_exists "$REFUSE_DEV" || ${TO[@]+"${TO[@]}"} dmsetup remove "$REFUSE_DEV" >/dev/null 2>&1 || true
		die "accepted: $what"
	fi
	[ $rc -ne 124 ] && [ $rc -ne 137 ] || die "hung: $what"
	if dm_exists "$REFUSE_DEV"; then die "device left behind by: $what"; fi
}

refuse_rows() {
	local line re arg
	while IFS= read -r line; do
		[[ $line =~ ^[[:space:]]*(#|$) ]] && continue
		[[ $line == *" | "* ]] || die "refuse_rows: no ' | ' in row '$line'"
		re=${line% | *} arg=${line##* | }
		re=${re#"${re%%[![:space:]]*}"}
		re=${re%"${re##*[![:space:]]}"}
		refuse "$re" "$* '$arg'" "$@" "$arg"
	done
}

refuse_tables() {
	refuse_rows dmsetup create "$REFUSE_DEV" "$@" --table
}

refusals_check() {
	local i n line re one
	local -a seg=()
	[ "$REFUSE_N" -gt 0 ] || return 0
	# One awk pass (bash pattern removal on the whole log is quadratic):
	# "N<TAB>the lines logged after case N's line, joined by ' | '".
	while IFS=$'\t' read -r n line; do
		seg[n]=$line
	done < <(dmesg | awk -v tag="$REFUSE_TAG case " '
		(i = index($0, tag)) { n = substr($0, i + length(tag)); sub(/:.*/, "", n); seen[n] = 1; next }
		n != "" { s[n] = s[n] " | " $0 }
		END { for (k in seen) print k "\t" s[k] }')
	for ((i = 1; i <= REFUSE_N; i++)); do
		[ -n "${seg[i]+set}" ] || die "kernel log line of refusal $i lost (${REFUSE_WHAT[i]})"
		re=${REFUSE_RE[i]}
		while :; do
			one=${re%% && *}
			[ -z "$one" ] || [[ "${seg[i]}" =~ $one ]] ||
				die "refused ${REFUSE_WHAT[i]}: kernel log has no line matching: $one (log:${seg[i]})"
			[ "$one" != "$re" ] || break
			re=${re#* && }
		done
	done
	echo "# $REFUSE_N refusals, reasons checked"
	REFUSE_N=0 REFUSE_TAG= REFUSE_RE=() REFUSE_WHAT=()
}

accept_table() {
	local table=$1
	shift
	${TO[@]+"${TO[@]}"} dmsetup create "$REFUSE_DEV" "$@" --table "$table" || die "table refused: '$table'"
	${TO[@]+"${TO[@]}"} dmsetup remove "$REFUSE_DEV" || die "dmsetup remove $REFUSE_DEV failed"
}
