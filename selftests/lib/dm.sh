# SPDX-License-Identifier: GPL-2.0
#
# Device-mapper, module and block device helpers for the guest suites.
# From sysfs and shell builtins where they can (a process costs 0.1-0.4 s
# under TCG). Sourcing this file defines functions only; scratch files live
# in $SCRATCH (a tmpfs that suite_init mounts).

# mod_loaded MOD, mod_refcount MOD (-1 when not loaded): from sysfs. MOD
# with - or _ (dm-era-rs, dm_era_rs).
mod_loaded() { [ -e "/sys/module/${1//-/_}/refcnt" ]; }
mod_refcount() {
	local n=
	[ -e "/sys/module/${1//-/_}/refcnt" ] && read -r n <"/sys/module/${1//-/_}/refcnt"
	echo "${n:--1}"
}

# new_loop NAME SIZE_MIB [losetup options...]: prints the path of a loop
# device over a new file $SCRATCH/NAME.img.
new_loop() {
	local name=$1 size=$2
	shift 2
	truncate -s "${size}M" "$SCRATCH/$name.img"
	losetup --find --show "$@" "$SCRATCH/$name.img"
}

free_loop() { losetup -d "$1" 2>/dev/null || true; }

devnum() { # DEV: prints major:minor (from sysfs for a block device)
	local d
	if [ -r "/sys/class/block/${1##*/}/dev" ] && read -r d <"/sys/class/block/${1##*/}/dev"; then
		echo "$d"
		return 0
	fi
	printf '%d:%d\n' "0x$(stat -L -c %t "$1")" "0x$(stat -L -c %T "$1")"
}

# pattern FILE SECTORS SEED: writes deterministic pseudo-random data (the
# AES-CTR key stream of SEED; safe under pipefail: nothing is cut short).
pattern() {
	head -c $(($2 * 512)) /dev/zero |
		openssl enc -aes-128-ctr -pass "pass:$3" -nosalt -pbkdf2 -iter 1 >"$1" 2>/dev/null
}

# flip_byte FILE OFFSET: flips every bit of one byte of FILE.
flip_byte() {
	local b o
	b=$(od -An -tu1 -j "$2" -N1 "$1")
	printf -v o '%03o' $((${b// /} ^ 255))
	# shellcheck disable=SC2059
	printf "\\$o" | dd of="$1" bs=1 seek="$2" count=1 conv=notrunc status=none
}

# read_sectors DEV START COUNT: prints COUNT sectors of DEV from START.
read_sectors() {
	dd if="$1" bs=512 skip="$2" count="$3" iflag=direct status=none
}

# write_file DEV START FILE: writes FILE at sector START of DEV.
write_file() {
	dd if="$3" of="$1" bs=512 seek="$2" oflag=direct conv=notrunc status=none
}

# dm_kname NAME: sets KNAME to the dm-N kernel name of device NAME (empty,
# and false, if there is none); dm_exists NAME: whether it exists.
dm_kname() {
	local f n
	KNAME=
	for f in /sys/block/dm-*/dm/name; do
		[ -e "$f" ] || continue
		read -r n <"$f"
		if [ "$n" = "$1" ]; then f=${f#/sys/block/}; KNAME=${f%%/*}; return 0; fi
	done
	return 1
}
dm_exists() { dm_kname "$1"; }

# dm_names [PREFIX]: sets DM_NAMES to the dm devices whose names start with
# PREFIX (rdmt-).
dm_names() {
	local f n
	DM_NAMES=()
	for f in /sys/block/dm-*/dm/name; do
		[ -e "$f" ] || continue
		read -r n <"$f"
		[[ $n == "${1:-rdmt-}"* ]] && DM_NAMES+=("$n")
	done
	return 0
}

# dm_remove_all_test_devices [TIMEOUT]: removes every test device (rdmt-*),
# uppers first: each pass removes, with one dmsetup call limited to TIMEOUT
# seconds (60 x SCALE), the devices nothing sits on.
dm_remove_all_test_devices() {
	local f d n pass h free before after
	for pass in 1 2 3 4 5; do
		free=() before=0
		for f in /sys/block/dm-*/dm/name; do
			[ -e "$f" ] || continue
			read -r n <"$f"
			[[ $n == rdmt-* ]] || continue
			before=$((before + 1))
			d=${f%/dm/name}
			h=("$d"/holders/*)
			[ -e "${h[0]}" ] || free+=("$n")
		done
		[ ${#free[@]} != 0 ] || break
		timeout "${1:-$((60 * ${SCALE:-1}))}" dmsetup remove --retry "${free[@]}" >/dev/null 2>&1
		dm_names rdmt-
		after=${#DM_NAMES[@]}
		[ "$after" != 0 ] && [ "$after" -lt "$before" ] || break
	done
	# A device whose table load failed (dmsetup creates the device, then
	# loads the table) has no sysfs entry if dmsetup could not remove it:
	# only dm's own list shows it.
	for n in $(dmsetup ls 2>/dev/null | awk '/^rdmt-/ {print $1}'); do
		timeout "${1:-$((60 * ${SCALE:-1}))}" dmsetup remove --retry "$n" >/dev/null 2>&1 || true
	done
}

# nap SECONDS: sleeps without starting a process (a read with a timeout on a
# pipe nobody writes to). For pacing a workload, never to wait for an event.
nap() {
	[ -n "${NAP_FD:-}" ] || exec {NAP_FD}<> <(:)
	read -r -t "$1" -u "$NAP_FD" _ || true
}

# wait_for SECONDS WHAT CMD...: polls CMD every 0.2 s until it succeeds;
# dies after SECONDS x SCALE (suite_init: the kernel flavour's slowness).
# For a state that has no event to wait on. CMD returns 0 (there), 1 (not
# yet) or 2 (never: it said why on standard error; wait_for dies at once).
wait_for() {
	local limit=$(($1 * ${SCALE:-1})) what=$2 t0=$SECONDS rc
	shift 2
	while :; do
		rc=0
		"$@" || rc=$?
		[ $rc != 0 ] || return 0
		[ $rc = 1 ] || die "$what: gave up"
		[ $((SECONDS - t0)) -lt "$limit" ] || die "$what: not within $limit s"
		nap 0.2
	done
}

# must_fail_eio WHAT CMD...: CMD (under the suite's TO prefix, if any) fails
# with "Input/output error", and in time.
must_fail_eio() {
	local what=$1 rc=0
	shift
	${TO[@]+"${TO[@]}"} "$@" 2>"$SCRATCH/eio.err" || rc=$?
	[ $rc -ne 124 ] && [ $rc -ne 137 ] || die "$what: hung"
	[ $rc -ne 0 ] || die "$what: succeeded"
	[[ "$(<"$SCRATCH/eio.err")" == *"Input/output error"* ]] || die "$what: not EIO: $(<"$SCRATCH/eio.err")"
}
