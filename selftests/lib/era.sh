# SPDX-License-Identifier: GPL-2.0
#
# Era metadata, read with thin-provisioning-tools 0.9. Sourcing this file
# defines functions only. Commands run under the suite's TO prefix (e.g.
# `timeout 120`) when it has one.

# era_written_since N MD [live|removed]: sets ERA_SINCE (an array) to the era
# blocks era_invalidate lists as written since era N, on the metadata device
# MD of a live device (--metadata-snapshot: a snapshot must be held; the
# default) or of a removed one. era_invalidate prints single blocks and
# ranges (end exclusive).
era_written_since() {
	local out line b e
	local -a to=(${TO[@]+"${TO[@]}"})
	if [ "${3:-live}" = live ]; then
		out=$("${to[@]}" era_invalidate --written-since "$1" --metadata-snapshot "$2") ||
			die "era_invalidate --written-since $1 --metadata-snapshot $2 failed"
	else
		out=$("${to[@]}" era_invalidate --written-since "$1" "$2") ||
			die "era_invalidate --written-since $1 $2 failed"
	fi
	ERA_SINCE=()
	while IFS= read -r line; do
		if [[ "$line" =~ \<block\ block=\"([0-9]+)\" ]]; then
			ERA_SINCE+=("${BASH_REMATCH[1]}")
		elif [[ "$line" =~ \<range\ begin=\"([0-9]+)\"\ end\ =\ \"([0-9]+)\" ]]; then
			for ((b = BASH_REMATCH[1], e = BASH_REMATCH[2]; b < e; b++)); do ERA_SINCE+=("$b"); done
		fi
	done <<<"$out"
}
