#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Replaces the table of a live device-mapper device, e.g. a mounted
# filesystem on `linear` over a disk, by one of our targets over the same
# disk (era to start tracking changed blocks for a backup) — and back —
# without unmounting.
#
#   dm-swap [--timeout SEC] [--dry-run] NAME 'START LEN TARGET ARGS...'
#
# Checks that the new table has the old one's size and maps the same
# underlying device region, loads it as the inactive table (the new target's
# constructor runs here; a failure changes nothing), suspends with a
# deadline, and resumes (dm core swaps the tables, then runs the new
# target's preresume). If anything fails after the suspend, the old table is
# loaded again and resumed: dm destroys the old table when it swaps, even if
# the new one then fails to resume, so it is rebuilt from its saved line.
#
# Exit status: 0 swapped; 1 refused or failed (old table live again);
# 2 usage; 3 failed AND the rollback failed (the device needs attention).
set -uo pipefail

# has [GREP-OPTION...] PATTERN: whether standard input has a line matching
# PATTERN. Reads all of it: grep -q reading a pipe under pipefail fails at
# random, when grep exits at the first match and the producer gets SIGPIPE.
has() { local n; n=$(grep -c "$@") || true; [ "${n:-0}" -gt 0 ]; }

timeout=30 dry=0
while [ $# -gt 0 ]; do
	case "$1" in
	--timeout) timeout=$2; shift 2 ;;
	--dry-run) dry=1; shift ;;
	--) shift; break ;;
	-*) echo "dm-swap: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -eq 2 ] || { echo "usage: dm-swap [--timeout SEC] [--dry-run] NAME 'START LEN TARGET ARGS...'" >&2; exit 2; }
name=$1 new=$2

say() { echo "dm-swap: $*" >&2; }

# major:minor of a path or major:minor.
devno() {
	case "$1" in
	*:*) echo "$1" ;;
	*) [ -b "$1" ] && printf '%d:%d\n' "0x$(stat -L -c %t "$1")" "0x$(stat -L -c %T "$1")" ;;
	esac
}

# The underlying device region a one-target table maps data to, as
# "major:minor start_sector" (start 0 for targets that map from the start).
data_region() {
	# shellcheck disable=SC2086
	set -- $1
	local type=$3
	shift 3
	case "$type" in
	linear | linear_rs) echo "$(devno "$1") $2" ;;
	era) echo "$(devno "$2") 0" ;;      # <metadata> <origin> <block size>
	clone) echo "$(devno "$2") 0" ;;    # <metadata> <destination> <source> ...
	verity) echo "$(devno "$2") 0" ;;   # <version> <data> <hash> ...
	*) return 1 ;;
	esac
}

old=$(dmsetup table "$name") || { say "no device '$name'"; exit 1; }
if [ "$(printf '%s\n' "$old" | wc -l)" -ne 1 ] || [ "$(printf '%s\n' "$new" | wc -l)" -ne 1 ]; then
	say "only single-target tables are supported"
	exit 1
fi
read -r _ old_len old_type _ <<<"$old"
read -r new_start new_len new_type _ <<<"$new"
if [ "$new_start" != 0 ] || [ "$new_len" != "$old_len" ]; then
	say "size mismatch: the live table covers 0+$old_len, the new one $new_start+$new_len"
	exit 1
fi
old_region=$(data_region "$old") || { say "cannot tell which device the live '$old_type' table maps"; exit 1; }
new_region=$(data_region "$new") || { say "unsupported target '$new_type'"; exit 1; }
if [ "$old_region" != "$new_region" ]; then
	say "device mismatch: the live table maps $old_region, the new one $new_region"
	exit 1
fi
say "$name: $old_type -> $new_type over $new_region, $new_len sectors"
[ "$dry" = 0 ] || exit 0

rollback() {
	say "rolling back to: $old"
	if dmsetup load "$name" --table "$old" && dmsetup resume "$name"; then
		say "old table live again"
		exit 1
	fi
	say "ROLLBACK FAILED: $name is left $(dmsetup info -c --noheadings -o attr "$name" 2>/dev/null)"
	exit 3
}

# 1. The new target's constructor runs now; on failure nothing changed.
if ! dmsetup load "$name" --table "$new"; then
	say "the new table was refused; nothing changed"
	exit 1
fi
# 2. Suspend (flushes and freezes the filesystem), with a deadline.
if ! timeout --kill-after=5 "$timeout" dmsetup suspend "$name"; then
	say "suspend failed or timed out after ${timeout}s"
	dmsetup clear "$name" >/dev/null 2>&1
	# Still the old table: just make sure the device runs again.
	if dmsetup info "$name" 2>/dev/null | has 'State: *SUSPENDED'; then
		dmsetup resume "$name" || rollback
	fi
	exit 1
fi
# 3. Resume: dm swaps in the new table (the old one is destroyed), then runs
# the new target's preresume.
if ! dmsetup resume "$name"; then
	say "resume with the new table failed"
	rollback
fi
live=$(dmsetup table "$name")
read -r _ _ live_type _ <<<"$live"
if [ "$live_type" != "$new_type" ]; then
	say "unexpected live table after resume: $live"
	exit 3
fi
say "$name: now $live"
exit 0
