#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The demo that `make run` boots a guest for (scripts/run-demo.sh). Four
# steps, one per target, each on loop devices over files in a tmpfs:
#
#   verity     veritysetup format and open; the device reads back the data;
#              one corrupted data block then fails to read and the status
#              turns from V (verified) to C (corruption seen)
#   era        writes, a checkpoint, and era_invalidate (from
#              thin-provisioning-tools) lists the blocks written since an era
#   clone      the destination hydrates from the source in the background,
#              with a progress line, until it equals the source
#   linear_rs  the example target: a write through it lands at the mapped
#              offset of the disk
#
# Our verity, era and clone modules register the same target names as the
# kernel's C dm-verity, dm-era and dm-clone. Each step loads our module and
# proves that it served its device with the selftests' helpers
# (selftests/lib/impl.sh: impl_load, impl_assert_served): the device's table
# names the target, our module is loaded and pinned by it, and the C module
# is not loaded (with no target of that name registered, the kernel would
# have loaded the C one by itself).
#
# Each step ends with one line "ok: <what it proved>". The first check that
# does not hold ends the demo with "FAILED: ..." and a non-zero exit status.
# Runs as root in the guest; can be run again in `make shell`.
set -eEuo pipefail
export DM_DISABLE_UDEV=1	# no udev in the guest: dmsetup makes /dev/mapper nodes itself
top=$(cd "$(dirname "$0")/.." && pwd)
work=/tmp/rdm-demo
# The selftests' libraries (they define functions only): TOP is where our
# .ko files are, SCRATCH where impl_load copies them and new_loop makes its
# files.
TOP=$top SCRATCH=$work
for lib in ktap dm klog impl era; do . "$top/selftests/lib/$lib.sh"; done

# ==== helpers ====================================================================
bold='' green='' red='' plain=''
if [ -t 1 ]; then bold=$'\033[1m' green=$'\033[1;32m' red=$'\033[1;31m' plain=$'\033[0m'; fi
title() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
# show CMD...: prints the command (arguments with spaces in quotes), runs it.
show() {
	local a line=\$
	for a in "$@"; do
		if [[ $a == *' '* ]]; then line+=" '$a'"; else line+=" $a"; fi
	done
	echo "$line"
	"$@" || fail "${line#\$ } failed (exit $?)"
}
ok() { printf '%sok:%s %s\n' "$green" "$plain" "$*"; }
# fail WHY: the demo stops (the libraries' die and failed checks end here).
fail() {
	printf '%sFAILED:%s %s\n' "$red" "$plain" "$*" >&2
	exit 1
}
die() { fail "$@"; }
trap 'fail "line $LINENO: $BASH_COMMAND"' ERR

# load TARGET: our module for TARGET loaded (after modprobe of the kernel
# modules it uses: dm-bufio for verity, dm-persistent-data for era and
# clone), its C twin, which registers the same target name, not.
load() {
	impl_load "$1" rust || fail "loading our $1 module: $TEST_FAILURE"
	echo "loaded $IMPL_KO.ko (module $IMPL_MOD, target $IMPL_TYPE $IMPL_VERSION)"
}

# served DEVICE TARGET: DEVICE is served by our module for TARGET.
served() { impl_assert_served "$1" "$2" rust || fail "$TEST_FAILURE"; }

# status_word DEVICE N: the Nth word (from 1) of DEVICE's status line.
status_word() {
	local words
	read -r -a words < <(dmsetup status "$1")
	echo "${words[$(($2 - 1))]:-}"
}

# since ERA: the blocks of demo-era written since ERA (era_invalidate,
# through the held snapshot).
since() {
	era_written_since "$1" "$emeta"
	echo "${ERA_SINCE[*]}"
}

cleanup() {
	local d
	for d in demo-linear demo-clone demo-era demo-verity; do
		dmsetup remove --retry "$d" >/dev/null 2>&1 || true
	done
	for d in $(losetup -n -O NAME,BACK-FILE 2>/dev/null | awk -v w="$work/" 'index($2, w) == 1 {print $1}'); do
		losetup -d "$d" 2>/dev/null || true
	done
	umount "$work" 2>/dev/null || true
}
trap cleanup EXIT

cleanup
mkdir -p "$work"
mount -t tmpfs -o size=512M tmpfs "$work"
start=$SECONDS

# ==== verity: a read-only device whose every block is checked against a hash tree
title "verity (dm-verity-rs.ko)"
pattern "$work/verity-data.img" 2048 demo-verity	# 256 data blocks of 4 KiB
vdata=$(losetup --find --show "$work/verity-data.img")
vhash=$(new_loop verity-hash 1)
load verity
printf '$ veritysetup format %s %s\n' "$vdata" "$vhash"
veritysetup format "$vdata" "$vhash" >"$work/format.out"
root=$(awk -F: '/^Root hash/ {gsub(/[ \t]/, "", $2); print $2}' "$work/format.out")
[ -n "$root" ] || fail "no root hash in: $(cat "$work/format.out")"
echo "root hash: $root"
show veritysetup open "$vdata" demo-verity "$vhash" "$root"
served demo-verity verity
show dmsetup table demo-verity
cmp /dev/mapper/demo-verity "$work/verity-data.img" || fail "the verity device does not read back the data"
show dmsetup status demo-verity
[ "$(status_word demo-verity 4)" = V ] || fail "status is not V after reading the whole device"
echo "corrupting one byte of data block 5 on the data disk ..."
flip_byte "$work/verity-data.img" $((5 * 4096 + 100))
kmark
printf '$ dd if=/dev/mapper/demo-verity bs=4096 skip=5 count=1 iflag=direct of=/dev/null\n'
if dd if=/dev/mapper/demo-verity bs=4096 skip=5 count=1 iflag=direct of=/dev/null status=none; then
	fail "the corrupted block read without error"
fi
show dmsetup status demo-verity
[ "$(status_word demo-verity 4)" = C ] || fail "status is not C after reading a corrupted block"
assert_klog "verity: .*: data block 5 is corrupted"
echo "kernel log: $(grep -a "data block 5 is corrupted" <<<"$KLOG" | tail -n 1)"
served demo-verity verity
dmsetup remove demo-verity
ok "verity: our dm-verity-rs served the device (C dm_verity not loaded); it read back the data, then the corrupted block failed with EIO and the status turned V -> C"

# ==== era: which blocks were written since a given era
title "era (dm-era-rs.ko)"
emeta=$(new_loop era-meta 4)
eorig=$(new_loop era-origin 16)	# 256 era blocks of 64 KiB (128 sectors)
load era
show dmsetup create demo-era --table "0 $((16 * 2048)) era $emeta $eorig 128"
served demo-era era
write_blocks() { # BLOCK...: writes 64 KiB era blocks of demo-era
	local b
	for b in "$@"; do
		dd if=/dev/urandom of=/dev/mapper/demo-era bs=64K seek="$b" count=1 oflag=direct status=none
	done
	echo "wrote blocks $*"
}
show dmsetup status demo-era	# ... <current era> <held snapshot>
write_blocks 3 5
show dmsetup message demo-era 0 checkpoint	# era 1 -> 2
write_blocks 10 11
# era_invalidate reads live metadata through a snapshot (the target
# commits and rolls the era over when it takes it).
show dmsetup message demo-era 0 take_metadata_snap
show era_invalidate --written-since 2 --metadata-snapshot "$emeta"
since2=$(since 2)
since1=$(since 1)
echo "written since era 2: $since2; since era 1: $since1"
[ "$since2" = "10 11" ] || fail "era_invalidate --written-since 2: '$since2', not '10 11'"
[ "$since1" = "3 5 10 11" ] || fail "era_invalidate --written-since 1: '$since1', not '3 5 10 11'"
dmsetup message demo-era 0 drop_metadata_snap
served demo-era era
dmsetup remove demo-era
ok "era: our dm-era-rs served the device (C dm_era not loaded); era_invalidate lists exactly the blocks written since each era: 10 11 since era 2, 3 5 10 11 since era 1"

# ==== clone: a copy of a read-only source, usable while it is being copied
title "clone (dm-clone-rs.ko)"
pattern "$work/clone-source.img" $((32 * 2048)) demo-clone
csrc=$(losetup --find --show --read-only "$work/clone-source.img")
cdst=$(new_loop clone-dest 32)
cmeta=$(new_loop clone-meta 4)
load clone
# 4 KiB regions (8 sectors), created with hydration off so that the copy
# starts when we ask for it.
regions=$((32 * 2048 / 8))
show dmsetup create demo-clone --table "0 $((32 * 2048)) clone $cmeta $cdst $csrc 8 1 no_hydration"
served demo-clone clone
cmp /dev/mapper/demo-clone "$work/clone-source.img" || fail "the clone does not read as the source before hydration"
show dmsetup status demo-clone
[ "$(status_word demo-clone 7)" = "0/$regions" ] || fail "regions hydrated before hydration was enabled"
echo "the clone reads as the source, and nothing is copied yet (0/$regions regions hydrated)"
show dmsetup message demo-clone 0 enable_hydration
# Status: <metadata block size> <used>/<total> <region size>
# <hydrated>/<regions> <hydrating> ...
last=-1 deadline=$((SECONDS + 300))
while :; do
	read -r -a st < <(dmsetup status demo-clone)
	[ "${st[3]}" != Fail ] || fail "clone in Fail mode"
	hydrated=${st[6]%/*}
	pct=$((100 * hydrated / regions))
	if [ $((pct / 10)) -ne "$last" ]; then	# a line every 10 %
		printf 'hydrated %5d / %d regions (%3d %%)\n' "$hydrated" "$regions" "$pct"
		last=$((pct / 10))
	fi
	[ "${st[6]}" = "$regions/$regions" ] && [ "${st[7]}" = 0 ] && break
	[ $SECONDS -lt $deadline ] || fail "hydration not finished after 300 s: ${st[*]}"
	sleep 0.5
done
served demo-clone clone
dmsetup remove demo-clone
show cmp "$work/clone-dest.img" "$work/clone-source.img"
ok "clone: our dm-clone-rs served the device (C dm_clone not loaded); it read as the source from the start, hydrated all $regions regions, and the destination now equals the source"

# ==== linear_rs: the example target, the one to read first
title "linear_rs (dm-linear-rs.ko)"
ldisk=$(new_loop linear 64)
load linear
# 32 MiB of the disk, from sector 2048 (1 MiB) on.
show dmsetup create demo-linear --table "0 65536 linear_rs $ldisk 2048"
served demo-linear linear
show dmsetup table demo-linear
echo "writing 'hello from Rust' at offset 0 of /dev/mapper/demo-linear ..."
{ printf 'hello from Rust'; head -c 497 /dev/zero; } >"$work/msg"
dd if="$work/msg" of=/dev/mapper/demo-linear bs=512 oflag=direct status=none
dd if="$ldisk" of="$work/back" bs=512 skip=2048 count=1 iflag=direct status=none
echo "sector 2048 of $ldisk now reads: $(head -c 15 "$work/back")"
cmp "$work/back" "$work/msg" || fail "the write through linear_rs is not at sector 2048 of the disk"
served demo-linear linear
dmsetup remove demo-linear
ok "linear_rs: our dm-linear-rs served the device; a write through it landed at sector 2048 of the disk"

printf '\n%sdemo done: 4 of 4 proofs held in %d s%s\n' "$bold" $((SECONDS - start)) "$plain"
