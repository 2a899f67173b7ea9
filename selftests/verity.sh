#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Selftests of the `verity` target: the Rust dm-verity-rs.ko, a drop-in for
# the kernel's C dm-verity, which registers the same target name. The suite
# runs against either implementation, chosen by VERITY_IMPL:
#
#   VERITY_IMPL=rust (default)  modprobe dm-bufio reed_solomon; insmod dm-verity-rs.ko
#                               (VERITY_KO: another path for the .ko)
#   VERITY_IMPL=c               modprobe dm-verity
#
#   tools/vm-run.sh -- selftests/run.sh verity
#   tools/vm-run.sh -- env VERITY_IMPL=c selftests/run.sh verity
#
# The two can never be loaded together; every test checks that the devices
# it uses are served by the selected module (pinned by their tables) while
# the other one is not loaded. Expected table lines, status words and kernel
# messages are those of the C target of Linux 6.12 (dm-verity-target.c,
# target version 1.10.0), checked against it; the few places where the C
# target is sloppy and ours must be stricter are marked "C quirk".
#
# The helpers shared with verity_fec.sh are in selftests/lib/verity.sh.
# Starting a process is what costs time in the TCG guest (0.1 to 0.4 s
# each), so the helpers use shell builtins and sysfs where they can.
. "$(dirname "$0")/lib/suite.sh"
. "$(dirname "$0")/lib/verity.sh"
suite_init

# ==== the implementation under test, per-test scratch ========================
# selftests/lib/verity.sh: need_module, assert_served, vt, vloop, vcreate, ...
verity_init "$SCRATCH/verity"

# ==== kernel log ==================================================================
# kmark, assert_klog (selftests/lib/klog.sh): a line after the last mark
# matches. The C target reports corruption with pr_err_ratelimited (10
# messages per 5 s), so the suite makes few corrupted reads.
# refuse, refuse_tables, refusals_check (selftests/lib/refuse.sh): refused
# tables and their reasons; bad_table REGEX TABLE: a read-only table (it may
# have several lines) is refused; check_refusals: every reason is in the
# log and the other implementation is not loaded.
bad_table() {
	refuse "$1" "table '$2'" dmsetup create rdmt-bad --readonly --table "$2"
}

check_refusals() {
	refusals_check
	assert_other_not_loaded
}

# ==== hashes and tree geometry ================================================
digest_size() { # ALG
	case "$1" in sha1) echo 20 ;; sha256) echo 32 ;; sha512) echo 64 ;; *) die "alg $1" ;; esac
}

# hashes_per_block HBS ALG: digests per hash block, 2^floor(log2(HBS /
# digest size)) for both formats (format 1 pads every digest to a power of
# two; format 0 packs them, but a block still covers only that many).
hashes_per_block() { echo $((1 << $(log2 $(($1 / $(digest_size "$2")))))); }

# hash_levels NBLOCKS HBS ALG HASH_START: one line per tree level, root
# level first as stored: "LEVEL FIRST_HASH_BLOCK COUNT" (in blocks of the
# hash device).
hash_levels() {
	local nb=$1 bits levels=0 pos=$4 i s
	bits=$(log2 "$(hashes_per_block "$2" "$3")")
	while [ $((bits * levels)) -lt 64 ] && [ $(((nb - 1) >> (bits * levels))) -gt 0 ]; do
		levels=$((levels + 1))
	done
	for ((i = levels - 1; i >= 0; i--)); do
		s=$(((nb + (1 << ((i + 1) * bits)) - 1) >> ((i + 1) * bits)))
		echo "$i $pos $s"
		pos=$((pos + s))
	done
}

# hash_area_bytes NBLOCKS HBS ALG: what the superblock and the tree take.
hash_area_bytes() {
	local total=1 l first n
	while read -r l first n; do total=$((total + n)); done < <(hash_levels "$1" "$2" "$3" 0)
	echo $((total * $2))
}

# ==== images and I/O =============================================================
# Every image's data is a prefix of one pseudo-random pool file, made once.
POOL=$SCRATCH/verity-pool
POOL_BYTES=$((2 * 1024 * 1024))

# verity_format DATA HASH [options]: veritysetup format; sets ROOT and
# SALT_OUT from its report.
verity_format() {
	local k v
	veritysetup format "$@" >"$W/format.out" 2>&1 ||
		{ cat "$W/format.out" >&2; die "veritysetup format $*"; }
	ROOT= SALT_OUT=
	while IFS=: read -r k v; do
		v=${v//[[:space:]]/}
		case "$k" in "Root hash") ROOT=$v ;; Salt) SALT_OUT=$v ;; esac
	done <"$W/format.out"
	[ -n "$ROOT" ] || { cat "$W/format.out" >&2; die "no root hash from veritysetup format"; }
}

# assert_blocks_match DEV BS FIRST COUNT SRC: those blocks read back, all of
# them and without error, as the same blocks of SRC. Direct I/O (every read
# reaches the target, nothing is read ahead) in 64 KiB requests.
assert_blocks_match() {
	[ "$4" -gt 0 ] || return 0
	dd if="$1" bs=64K skip=$(($3 * $2)) count=$(($4 * $2)) iflag=direct,skip_bytes,count_bytes status=none |
		cmp -s -n $(($4 * $2)) - "$5" 0 $(($3 * $2)) ||
		die "blocks $3..$(($3 + $4 - 1)) of $1 do not read back as in $5"
}

# assert_read_fails DEV BS BLOCK: reading that one block fails with EIO.
assert_read_fails() {
	if dd if="$1" bs="$2" skip="$3" count=1 iflag=direct status=none of=/dev/null 2>"$W/read.err"; then
		die "reading block $3 of $1 succeeded"
	fi
	grep -q 'Input/output error' "$W/read.err" || { cat "$W/read.err" >&2; die "block $3 of $1: not EIO"; }
}

# flip_byte FILE OFFSET (selftests/lib/dm.sh) corrupts one byte. The files
# are under loop devices: the target's reads go through the loop driver to
# the file and see the change at once; userspace readers of the loop device
# (veritysetup verify) need `blockdev --flushbufs` first.

# The standard image: 1 MiB of data (256 blocks of 4 KiB) with its hash tree
# on a separate device: sha256, 1 KiB hash blocks (32 digests each: level 0
# is 8 blocks, level 1 the root block), a salt, format 1 and a superblock
# (so hash start 1). Sets SRC DFILE HFILE D H DN HN ROOT SALT NB SECTORS.
std_image() {
	NB=256 SECTORS=2048 SALT=5a175a17b0b0cafe
	SRC=$POOL DFILE=$W/std.data HFILE=$W/std.hash
	head -c 1M "$SRC" >"$DFILE"
	std_format "$DFILE" "$HFILE"
}

# std_format DATA-FILE HASH-FILE: loop devices D and H over them (a 1 MiB
# hash file), their numbers DN and HN, formatted as the standard image.
std_format() {
	truncate -s 1M "$2"
	vloop "$1"
	D=$LOOP
	vloop "$2"
	H=$LOOP
	dn "$D"
	DN=$DN_OUT
	dn "$H"
	HN=$DN_OUT
	verity_format "$D" "$H" --hash-block-size=1024 --salt=$SALT
}

# std_table [OPTS [ROOT]]: a table line for the standard image;
# std_echo [OPTS]: what `dmsetup table` must print for it.
std_table() { echo "0 $SECTORS verity 1 $D $H 4096 1024 $NB 1 sha256 ${2:-$ROOT} $SALT${1:+ $1}"; }
std_echo() { echo "0 $SECTORS verity 1 $DN $HN 4096 1024 $NB 1 sha256 $ROOT $SALT${1:+ $1}"; }

# ==== signatures, keys, IPE ========================================================
# cert_dir: the folder with the signing key whose certificate the running
# kernel trusts (built into its .builtin_trusted_keys). VERITY_CERT_DIR
# overrides; otherwise the cached kernels' test certificates are matched
# with the keys in /proc/keys by subject key id.
cert_dir() {
	local d skid
	if [ -n "${VERITY_CERT_DIR:-}" ]; then echo "$VERITY_CERT_DIR"; return 0; fi
	for d in "${RDM_CACHE:-/var/lib/rust-dm}"/kernel/*/certs-test; do
		[ -f "$d/verity-test.pem" ] && [ -f "$d/verity-test.key" ] || continue
		skid=$(openssl x509 -in "$d/verity-test.pem" -noout -ext subjectKeyIdentifier 2>/dev/null) || continue
		skid=${skid#*$'\n'} skid=${skid//[ :]/} skid=${skid,,}
		while read -r line; do
			if [[ $line == *": $skid: "* ]]; then echo "$d"; return 0; fi
		done </proc/keys
	done
	echo "no test certificate trusted by the running kernel (set VERITY_CERT_DIR)" >&2
	return 1
}

# sign_text TEXT KEY CERT OUT: detached PKCS#7 (DER, no certificates, no
# signed attributes) over TEXT without a newline. The kernel checks a root
# hash signature against the root hash *as the hex text of the table line*
# (verity_verify_root_hash(argv[8], strlen(argv[8]), ...)); veritysetup
# passes that text in lower case.
sign_text() {
	printf '%s' "$1" >"$W/sign.txt"
	openssl smime -sign -nocerts -noattr -binary -in "$W/sign.txt" \
		-inkey "$2" -signer "$3" -outform der -out "$4" 2>"$W/sign.err" ||
		{ cat "$W/sign.err" >&2; die "openssl smime -sign"; }
}

# with_user_key DESC FILE CMD...: runs CMD in a new session keyring holding a
# `user` key DESC with FILE's bytes, where root_hash_sig_key_desc looks (the
# kernel's request_key() searches the caller's keyrings). keyctl(1) is not
# installed, so perl makes the system calls (x86_64: keyctl 250 with
# KEYCTL_JOIN_SESSION_KEYRING 1, add_key 248 into KEY_SPEC_SESSION_KEYRING
# -3); a session keyring survives exec.
with_user_key() {
	perl -e '
		my ($desc, $file, @cmd) = @ARGV;
		open(my $fh, "<:raw", $file) or die "open $file: $!";
		local $/;
		my $data = <$fh>;
		my ($type, $null) = ("user", 0);
		syscall(250, 1, $null) >= 0 or die "keyctl(JOIN_SESSION_KEYRING): $!";
		syscall(248, $type, $desc, $data, length($data), -3) >= 0 or die "add_key: $!";
		exec { $cmd[0] } @cmd or die "exec $cmd[0]: $!";
	' "$@"
}

# IPE policies: this kernel takes only PKCS#7-signed policies through
# new_policy (security/ipe/fs.c hands the buffer to ipe_new_policy() as
# pkcs7), signed by a key of the trusted keyring: the test key.
IPE_FS=/sys/kernel/security/ipe
IPE_VERSION=0.0.1
ipe_load() { # NAME TEXT-FILE CERTDIR
	openssl smime -sign -in "$2" -signer "$3/verity-test.pem" -inkey "$3/verity-test.key" \
		-noattr -nodetach -nosmimecap -outform der -out "$2.p7s" 2>/dev/null || die "signing policy $1"
	cat "$2.p7s" >"$IPE_FS/new_policy" || die "loading policy $1"
	[ -d "$IPE_FS/policies/$1" ] || die "policy $1 not deployed"
}

# ipe_restore CERTDIR: IPE as good as without a policy. Once a policy was
# active IPE cannot go back to none, and the active policy cannot be
# deleted: so an allow-all policy (rdmt_allow_all, of the same version:
# one of a lower version cannot be activated) is made active and the test
# policy is deleted. rdmt_allow_all stays active for the rest of the boot.
ipe_restore() {
	if [ ! -d "$IPE_FS/policies/rdmt_allow_all" ]; then
		printf 'policy_name=rdmt_allow_all policy_version=%s\nDEFAULT action=ALLOW\n' $IPE_VERSION >"$W/allow.pol"
		ipe_load rdmt_allow_all "$W/allow.pol" "$1"
	fi
	if [ -d "$IPE_FS/policies/rdmt_verity" ]; then
		echo 1 >"$IPE_FS/policies/rdmt_allow_all/active"
		echo 1 >"$IPE_FS/policies/rdmt_verity/delete"
	fi
	[ ! -d "$IPE_FS/policies/rdmt_verity" ]
}

runs() { # X: busybox runs from mount point $W/mX
	"$W/m$1/busybox" true 2>"$W/exec.err" || { cat "$W/exec.err" >&2; die "busybox from $1 denied"; }
}

denied() { # X: executing busybox from $W/mX is refused with EACCES
	if "$W/m$1/busybox" true 2>"$W/exec.err"; then die "busybox from $1 ran"; fi
	grep -q 'Permission denied' "$W/exec.err" || { cat "$W/exec.err" >&2; die "busybox from $1: not EACCES"; }
}

# ==== tests ==========================================================================

t_registered() {
	local t
	t=$(dmsetup targets)
	[[ $t =~ (^|$'\n')verity\ +v1\.10\.0($'\n'|$) ]] || die "dmsetup targets: $t"
	assert_eq 0 "$(mod_refcount $VERITY_MOD)" "refcount with no device"
	assert_other_not_loaded
}

# t_image LAYOUT DBS HBS ALG SALT FORMAT NBLOCKS: an image made by veritysetup
# format, with the tree on a separate hash device (sep) or on the data device
# after the data (inline: --hash-offset, table hash_start). veritysetup open
# and a table line built here by hand both give a device that reads back
# exactly the source, with the C target's table line, status `V` and the
# data block size as logical block size; veritysetup verify agrees.
t_image() {
	local layout=$1 dbs=$2 hbs=$3 alg=$4 salt=$5 fmt=$6 nb=$7
	local bytes=$(($7 * $2)) hsize hstart d h expect fopts=() oopts=() ss x sectors=$(($7 * $2 / 512))
	hsize=$(($(hash_area_bytes "$nb" "$hbs" "$alg") + 65536))
	fopts=(--format="$fmt" --data-block-size="$dbs" --hash-block-size="$hbs" --hash="$alg" --salt="$salt")
	head -c "$bytes" "$POOL" >"$W/data"
	if [ "$layout" = sep ]; then
		truncate -s "$hsize" "$W/hash"
		vloop "$W/data"
		d=$LOOP
		vloop "$W/hash"
		h=$LOOP
		hstart=$(((512 + hbs - 1) / hbs))	# after the 512-byte superblock
	else
		truncate -s $((bytes + hsize)) "$W/data"
		vloop "$W/data"
		d=$LOOP h=$LOOP
		fopts+=(--hash-offset="$bytes" --data-blocks="$nb")
		oopts=(--hash-offset="$bytes")
		hstart=$(((bytes + 512 + hbs - 1) / hbs))
	fi
	verity_format "$d" "$h" "${fopts[@]}"
	assert_eq "$salt" "$SALT_OUT" "salt reported by veritysetup"
	dn "$d"
	expect="0 $sectors verity $fmt $DN_OUT"
	dn "$h"
	expect+=" $DN_OUT $dbs $hbs $nb $hstart $alg $ROOT $salt"
	ss=$((dbs > 512 ? dbs : 512))

	# veritysetup open (the parameters come from the superblock)
	veritysetup open "$d" rdmt-img "$h" "$ROOT" "${oopts[@]}" || die "veritysetup open"
	assert_served rdmt-img "$expect"
	dm_kname rdmt-img || die "no dm device for rdmt-img"
	read -r x <"/sys/block/$KNAME/queue/logical_block_size"
	assert_eq "$ss" "$x" "logical block size"
	read -r x <"/sys/block/$KNAME/queue/minimum_io_size"
	assert_eq "$ss" "$x" "minimum I/O size"
	cmp -n "$bytes" /dev/mapper/rdmt-img "$POOL" || die "veritysetup-opened device differs from the source"
	# plain dmsetup, the table line built by hand, on the same devices
	vcreate rdmt-hand "0 $sectors verity $fmt $d $h $dbs $hbs $nb $hstart $alg $ROOT $salt"
	assert_served rdmt-hand "$expect"
	assert_blocks_match /dev/mapper/rdmt-hand "$dbs" 0 "$nb" "$POOL"
	assert_eq "0 $sectors verity V" "$(dmsetup status rdmt-hand)" "status after reading everything"
	assert_eq V "$(status_of rdmt-img)" "status of the veritysetup device after reading everything"
	# veritysetup's own check of the raw devices agrees
	veritysetup verify "$d" "$h" "$ROOT" "${oopts[@]}" >/dev/null || die "veritysetup verify"
}

# One data block corrupted: only that block fails, with EIO; the corruption
# is logged and shows in the status.
t_corrupt_data_block() {
	std_image
	flip_byte "$DFILE" $((5 * 4096 + 100))
	blockdev --flushbufs "$D"
	assert_fails "veritysetup verify of a corrupted image" veritysetup verify "$D" "$H" "$ROOT"
	vcreate rdmt-cd "$(std_table)"
	assert_served rdmt-cd
	assert_eq V "$(status_of rdmt-cd)" "status before any read"
	kmark
	assert_read_fails /dev/mapper/rdmt-cd 4096 5
	assert_klog "verity: $DN: data block 5 is corrupted"
	assert_eq C "$(status_of rdmt-cd)" "status after the corrupted read"
	assert_blocks_match /dev/mapper/rdmt-cd 4096 0 5 "$SRC"
	assert_blocks_match /dev/mapper/rdmt-cd 4096 6 250 "$SRC"
	assert_served rdmt-cd
}

# ignore_corruption: the corrupted block reads (as it is on disk), the
# corruption is logged and the status says C.
t_ignore_corruption() {
	std_image
	flip_byte "$DFILE" $((9 * 4096))
	vcreate rdmt-ic "$(std_table "1 ignore_corruption")"
	assert_served rdmt-ic "$(std_echo "1 ignore_corruption")"
	kmark
	assert_blocks_match /dev/mapper/rdmt-ic 4096 9 1 "$DFILE"
	assert_klog "verity: $DN: data block 9 is corrupted"
	assert_eq C "$(status_of rdmt-ic)" "status"
	assert_blocks_match /dev/mapper/rdmt-ic 4096 0 9 "$SRC"
	assert_blocks_match /dev/mapper/rdmt-ic 4096 10 246 "$SRC"
}

# ignore_zero_blocks: a block whose expected digest is that of a zero block
# reads as zeros without being checked, even if the disk holds garbage there
# (veritysetup hashes zero blocks like any other).
t_ignore_zero_blocks() {
	local src=$W/zero.src
	NB=256 SECTORS=2048 SALT=2e5a
	# blocks 20..29 are zeros
	head -c 1M "$POOL" >"$src"
	dd if=/dev/zero of="$src" bs=4096 seek=20 count=10 conv=notrunc status=none
	cp "$src" "$W/zero.data"
	std_format "$W/zero.data" "$W/zero.hash"
	vcreate rdmt-iz "$(std_table "1 ignore_zero_blocks")"
	assert_served rdmt-iz "$(std_echo "1 ignore_zero_blocks")"
	assert_blocks_match /dev/mapper/rdmt-iz 4096 0 256 "$src"
	# garbage in zero block 23, and a corrupted (non-zero) block 40: a new
	# device over the changed data, with the option and without
	dd if="$POOL" of="$W/zero.data" bs=4096 seek=23 count=1 conv=notrunc status=none
	flip_byte "$W/zero.data" $((40 * 4096 + 7))
	vcreate rdmt-iz2 "$(std_table "1 ignore_zero_blocks")"
	vcreate rdmt-iz3 "$(std_table)"
	assert_served rdmt-iz2
	assert_blocks_match /dev/mapper/rdmt-iz2 4096 23 1 "$src"
	assert_blocks_match /dev/mapper/rdmt-iz2 4096 0 40 "$src"
	assert_eq V "$(status_of rdmt-iz2)" "status after reading the zero block"
	assert_read_fails /dev/mapper/rdmt-iz2 4096 40
	assert_eq C "$(status_of rdmt-iz2)" "status after reading block 40"
	assert_served rdmt-iz3
	assert_read_fails /dev/mapper/rdmt-iz3 4096 23
	assert_blocks_match /dev/mapper/rdmt-iz3 4096 24 16 "$src"
}

# t_corrupt_hash_block DBS HBS ALG FORMAT NBLOCKS K: one byte of level-0 hash
# block K corrupted: exactly the data blocks whose digests it holds fail.
t_corrupt_hash_block() {
	local dbs=$1 hbs=$2 alg=$3 fmt=$4 nb=$5 k=$6 sectors=$(($5 * $1 / 512))
	local d h dn hpb l0= hb lo hi lvl first n
	head -c $((nb * dbs)) "$POOL" >"$W/data"
	truncate -s $(($(hash_area_bytes "$nb" "$hbs" "$alg") + 65536)) "$W/hash"
	vloop "$W/data"
	d=$LOOP
	vloop "$W/hash"
	h=$LOOP
	dn "$d"
	dn=$DN_OUT
	verity_format "$d" "$h" --format="$fmt" --data-block-size="$dbs" --hash-block-size="$hbs" \
		--hash="$alg" --salt=00ff00ff
	while read -r lvl first n; do
		if [ "$lvl" = 0 ]; then l0=$first; fi
	done < <(hash_levels "$nb" "$hbs" "$alg" 1)
	hpb=$(hashes_per_block "$hbs" "$alg")
	hb=$((l0 + k)) lo=$((k * hpb)) hi=$((k * hpb + hpb - 1))
	[ $hi -lt "$nb" ] || hi=$((nb - 1))
	[ "$lo" -gt 0 ] && [ "$hi" -lt $((nb - 1)) ] || die "bad test geometry"
	flip_byte "$W/hash" $((hb * hbs + 3))
	blockdev --flushbufs "$h"
	assert_fails "veritysetup verify with a corrupted hash block" veritysetup verify "$d" "$h" "$ROOT"
	vcreate rdmt-ch "0 $sectors verity $fmt $d $h $dbs $hbs $nb 1 $alg $ROOT 00ff00ff"
	assert_served rdmt-ch
	assert_blocks_match /dev/mapper/rdmt-ch "$dbs" 0 "$lo" "$POOL"
	assert_blocks_match /dev/mapper/rdmt-ch "$dbs" $((hi + 1)) $((nb - hi - 1)) "$POOL"
	assert_eq V "$(status_of rdmt-ch)" "status before reading the range of hash block $hb"
	kmark
	assert_read_fails /dev/mapper/rdmt-ch "$dbs" "$lo"
	assert_klog "verity: $dn: metadata block $hb is corrupted"
	assert_read_fails /dev/mapper/rdmt-ch "$dbs" "$hi"
	assert_eq C "$(status_of rdmt-ch)" "status"
	assert_served rdmt-ch
}

# A wrong root hash: the device is created (the C target reads nothing in
# its constructor), the first read fails on the root hash block.
t_wrong_root_hash() {
	local bad
	std_image
	bad=${ROOT%?}$(printf '%x' $(((0x${ROOT: -1} + 1) % 16)))
	vcreate rdmt-wr "$(std_table "" "$bad")"
	assert_served rdmt-wr
	kmark
	assert_read_fails /dev/mapper/rdmt-wr 4096 0
	assert_klog "verity: $DN: metadata block 1 is corrupted"
	assert_eq C "$(status_of rdmt-wr)" "status"
	assert_fails "veritysetup verify with a wrong root hash" veritysetup verify "$D" "$H" "$bad"
}

# check_at_most_once: a block is checked only the first time it is read.
t_check_at_most_once() {
	std_image
	vcreate rdmt-mo "$(std_table "1 check_at_most_once")"
	assert_served rdmt-mo "$(std_echo "1 check_at_most_once")"
	assert_blocks_match /dev/mapper/rdmt-mo 4096 7 1 "$SRC"
	# change blocks 7 (checked already) and 8 (never read) under the target
	flip_byte "$DFILE" $((7 * 4096 + 1))
	flip_byte "$DFILE" $((8 * 4096 + 1))
	assert_blocks_match /dev/mapper/rdmt-mo 4096 7 1 "$DFILE"
	assert_eq V "$(status_of rdmt-mo)" "status after re-reading a checked block"
	assert_read_fails /dev/mapper/rdmt-mo 4096 8
	assert_eq C "$(status_of rdmt-mo)" "status"
	assert_blocks_match /dev/mapper/rdmt-mo 4096 9 247 "$SRC"
}

# try_verify_in_tasklet: the data verifies, corruption is caught. Ours
# counts the bios it verified in the BH workqueue (module parameter
# verified_in_bh, read-only; the C target has no such count): read once,
# the hash blocks come from disk and most bios are left to kverityd; read
# again, every hash block is cached and verified, and every bio is verified
# in BH. A corrupted block is never (it is left to kverityd, which fails
# it), and a device without the option never counts.
BH_COUNT=/sys/module/dm_verity_rs/parameters/verified_in_bh
bh_count() { # sets BH_N
	BH_N=0
	if [ "$VERITY_IMPL" = rust ]; then read -r BH_N <"$BH_COUNT" || die "no $BH_COUNT"; fi
}
t_try_verify_in_tasklet() {
	local c1 c2
	std_image
	flip_byte "$DFILE" $((11 * 4096 + 4095))
	vcreate rdmt-tv "$(std_table "1 try_verify_in_tasklet")"
	assert_served rdmt-tv "$(std_echo "1 try_verify_in_tasklet")"
	if [ "$VERITY_IMPL" = rust ]; then
		assert_eq 444 "$(stat -c %a "$BH_COUNT")" "permissions of $BH_COUNT"
		assert_fails "writing $BH_COUNT" sh -c "echo 0 >$BH_COUNT"
	fi
	# blocks 12..255: 976 KiB, in 16 direct reads of at most 64 KiB
	assert_blocks_match /dev/mapper/rdmt-tv 4096 12 244 "$SRC"
	bh_count
	c1=$BH_N
	assert_blocks_match /dev/mapper/rdmt-tv 4096 12 244 "$SRC"
	bh_count
	c2=$BH_N
	if [ "$VERITY_IMPL" = rust ] && [ $((c2 - c1)) -lt 16 ]; then
		die "$((c2 - c1)) of 16 cached reads verified in BH"
	fi
	assert_blocks_match /dev/mapper/rdmt-tv 4096 0 11 "$SRC"
	assert_eq V "$(status_of rdmt-tv)" "status"
	bh_count
	c1=$BH_N
	kmark
	assert_read_fails /dev/mapper/rdmt-tv 4096 11
	assert_klog "verity: $DN: data block 11 is corrupted"
	assert_eq C "$(status_of rdmt-tv)" "status"
	bh_count
	assert_eq "$c1" "$BH_N" "bios verified in BH by the corrupted read"
	# without the option: nothing in BH
	vcreate rdmt-tv0 "$(std_table)"
	assert_served rdmt-tv0 "$(std_echo)"
	bh_count
	c1=$BH_N
	assert_blocks_match /dev/mapper/rdmt-tv0 4096 12 244 "$SRC"
	assert_blocks_match /dev/mapper/rdmt-tv0 4096 12 244 "$SRC"
	bh_count
	assert_eq "$c1" "$BH_N" "bios verified in BH without try_verify_in_tasklet"
}

# Optional arguments: accepted in any order and letter case, echoed in the
# C target's order and spelling; repeated flags are refused (C collapses
# them). The
# restart/panic modes are only created, never triggered: no I/O at all on
# those devices (the only reads are on the first device, which has none).
t_options_echo() {
	local in out i=0 spec= line name want=() rc
	std_image
	# veritysetup's flags give the same options
	veritysetup open "$D" rdmt-op "$H" "$ROOT" --ignore-corruption --ignore-zero-blocks \
		--check-at-most-once --use-tasklets || die "veritysetup open with options"
	assert_served rdmt-op "$(std_echo "4 ignore_corruption ignore_zero_blocks check_at_most_once try_verify_in_tasklet")"
	assert_blocks_match /dev/mapper/rdmt-op 4096 0 256 "$SRC"
	assert_eq V "$(status_of rdmt-op)" "status"

	# all the others at once, on the same data and hash devices
	while IFS='|' read -r in out; do
		i=$((i + 1))
		spec+="${spec:+;}rdmt-op$i,,,ro,$(std_table "$in")"
		want[i]="$(std_echo "$out")"
	done <<-'EOF'
		0|
		1 ignore_corruption|1 ignore_corruption
		1 restart_on_corruption|1 restart_on_corruption
		1 panic_on_corruption|1 panic_on_corruption
		1 restart_on_error|1 restart_on_error
		1 panic_on_error|1 panic_on_error
		2 panic_on_error restart_on_corruption|2 restart_on_corruption panic_on_error
		2 restart_on_error ignore_corruption|2 ignore_corruption restart_on_error
		3 try_verify_in_tasklet check_at_most_once ignore_zero_blocks|3 ignore_zero_blocks check_at_most_once try_verify_in_tasklet
		5 TRY_VERIFY_IN_TASKLET Check_At_Most_Once ignore_zero_blocks Panic_On_Error IGNORE_CORRUPTION|5 ignore_corruption panic_on_error ignore_zero_blocks check_at_most_once try_verify_in_tasklet
	EOF
	dmsetup create --concise "$spec" || die "dmsetup create --concise '$spec'"
	assert_served rdmt-op1 "${want[1]}"
	rc=$(mod_refcount $VERITY_MOD)
	[ "$rc" -ge $((i + 1)) ] || die "refcount $rc with $((i + 1)) tables"
	while IFS= read -r line; do
		name=${line%%: *}
		[[ $name == rdmt-op?* ]] || continue
		assert_eq "${want[${name#rdmt-op}]}" "${line#*: }" "table of $name"
		want[${name#rdmt-op}]=seen
	done < <(dmsetup table)
	for ((rc = 1; rc <= i; rc++)); do assert_eq seen "${want[rc]}" "rdmt-op$rc listed"; done
	while IFS= read -r line; do
		[[ $line == rdmt-op* ]] || continue
		assert_eq "${line%%: *}: 0 $SECTORS verity V" "$line" "status"
	done < <(dmsetup status)

	# A flag given twice: the C target takes it (and prints it once); ours
	# refuses it, as the issue asks for duplicated options (no tool writes
	# one: veritysetup and systemd never repeat a flag).
	if [ "$VERITY_IMPL" = rust ]; then
		bad_table "verity: Duplicate verity feature request" \
			"$(std_table "2 check_at_most_once check_at_most_once")"
		bad_table "verity: Duplicate verity feature request" \
			"$(std_table "3 ignore_zero_blocks try_verify_in_tasklet ignore_zero_blocks")"
		check_refusals
	else
		dmsetup create rdmt-dup1 --readonly --table "$(std_table "2 check_at_most_once check_at_most_once")" ||
			die "C refuses a repeated flag (check_at_most_once twice)"
		assert_served rdmt-dup1 "$(std_echo "1 check_at_most_once")"
	fi
}

# Root hash signatures: a signature by the key the kernel trusts opens the
# device (veritysetup puts it in a keyring and passes its description in
# root_hash_sig_key_desc); one by another key, one over another hash and
# garbage are refused.
t_root_hash_signature() {
	local cdir other kind x
	cdir=$(cert_dir)
	std_image
	sign_text "$ROOT" "$cdir/verity-test.key" "$cdir/verity-test.pem" "$W/good.sig"

	veritysetup open "$D" rdmt-sg "$H" "$ROOT" --root-hash-signature="$W/good.sig" ||
		die "veritysetup open with a good signature"
	assert_served rdmt-sg
	x=$(dmsetup table rdmt-sg)
	[[ $x =~ ^"$(std_echo) 2 root_hash_sig_key_desc "[^\ ]+$ ]] || die "table: $x"
	assert_blocks_match /dev/mapper/rdmt-sg 4096 0 256 "$SRC"
	assert_eq V "$(status_of rdmt-sg)" "status"

	# the same by hand, with our own key description, alone and before
	# another option
	with_user_key rdmt:sig "$W/good.sig" dmsetup create rdmt-sg2 --readonly \
		--table "$(std_table "2 root_hash_sig_key_desc rdmt:sig")" || die "dmsetup create with a signature key"
	assert_served rdmt-sg2 "$(std_echo "2 root_hash_sig_key_desc rdmt:sig")"
	assert_blocks_match /dev/mapper/rdmt-sg2 4096 0 256 "$SRC"
	with_user_key rdmt:sig "$W/good.sig" dmsetup create rdmt-sg3 --readonly \
		--table "$(std_table "3 root_hash_sig_key_desc rdmt:sig check_at_most_once")" ||
		die "dmsetup create with a signature key and an option"
	assert_served rdmt-sg3 "$(std_echo "3 check_at_most_once root_hash_sig_key_desc rdmt:sig")"
	dmsetup remove rdmt-sg rdmt-sg2 rdmt-sg3

	# A key the kernel does not trust. The kernel looks the signer up in the
	# trusted keyring (by issuer and serial) before the key type matters,
	# so a P-256 key, made at once, is as untrusted as an RSA one (whose
	# generation takes 10 s and more under TCG).
	openssl req -new -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-subj "/CN=rdmt untrusted/" -keyout "$W/other.key" -out "$W/other.pem" 2>/dev/null || die "openssl req"
	sign_text "$ROOT" "$W/other.key" "$W/other.pem" "$W/untrusted.sig"
	# the trusted key, over another root hash
	other=${ROOT%?}$(printf '%x' $(((0x${ROOT: -1} + 1) % 16)))
	sign_text "$other" "$cdir/verity-test.key" "$cdir/verity-test.pem" "$W/otherhash.sig"
	head -c 300 "$POOL" >"$W/garbage.sig"
	for kind in untrusted otherhash garbage; do
		refuse "verity: Root hash verification failed" "veritysetup open with the $kind signature" \
			veritysetup open "$D" rdmt-bad "$H" "$ROOT" --root-hash-signature="$W/$kind.sig"
	done
	refuse "verity: Root hash verification failed" "dmsetup create with the otherhash signature" \
		with_user_key rdmt:sig "$W/otherhash.sig" \
		dmsetup create rdmt-bad --readonly --table "$(std_table "2 root_hash_sig_key_desc rdmt:sig")"
	check_refusals
}

# verity_unload: removes the test's devices and unloads the module.
verity_unload() {
	local f n names=()
	for f in /sys/block/dm-*/dm/name; do
		[ -e "$f" ] && read -r n <"$f" && [[ $n == rdmt-* ]] && names+=("$n")
	done
	if [ ${#names[@]} != 0 ]; then dmsetup remove --retry "${names[@]}"; fi
	rmmod $VERITY_MOD
}

# A signature must come from a key the kernel trusts: with
# CONFIG_DM_VERITY_VERIFY_ROOTHASH_SIG_SECONDARY_KEYRING, a key of the
# secondary trusted keyring does. The key's certificate is issued by the
# test CA (the builtin key), which is what lets root add it to
# .secondary_trusted_keys; until then its signatures are refused, and a
# certificate no trusted key issued cannot be added at all. (The platform
# keyring, tried last, is filled from firmware at boot and cannot be filled
# from userspace: not tested here.)
t_secondary_keyring() {
	local cdir id serial
	cdir=$(cert_dir)
	std_image
	# RSA (this kernel has no ECDSA); 1024 bits, which the kernel accepts,
	# since generating 2048-bit keys takes 10 s and more under TCG.
	serial=$(od -An -tx8 -N8 /dev/urandom) serial=${serial// /}
	openssl req -new -newkey rsa:1024 -nodes -subj "/CN=rdmt secondary $serial/" \
		-keyout "$W/sec.key" -out "$W/sec.csr" 2>/dev/null || die "openssl req"
	printf '%s\n' basicConstraints=critical,CA:FALSE keyUsage=digitalSignature \
		subjectKeyIdentifier=hash authorityKeyIdentifier=keyid >"$W/sec.ext"
	openssl x509 -req -in "$W/sec.csr" -CA "$cdir/verity-test.pem" -CAkey "$cdir/verity-test.key" \
		-set_serial "0x$serial" -days 2 -extfile "$W/sec.ext" -out "$W/sec.pem" 2>/dev/null ||
		die "openssl x509 -req"
	openssl x509 -in "$W/sec.pem" -outform der -out "$W/sec.der" || die "openssl x509 -outform der"
	sign_text "$ROOT" "$W/sec.key" "$W/sec.pem" "$W/sec.sig"

	# in no keyring yet: refused
	refuse "verity: Root hash verification failed" "a signature by a key in no keyring" \
		with_user_key rdmt:sig "$W/sec.sig" \
		dmsetup create rdmt-bad --readonly --table "$(std_table "2 root_hash_sig_key_desc rdmt:sig")"
	check_refusals

	id=$(keyctl padd asymmetric "" %:.secondary_trusted_keys <"$W/sec.der") ||
		die "keyctl padd into .secondary_trusted_keys"
	at_exit keyctl unlink "$id" %:.secondary_trusted_keys
	with_user_key rdmt:sig "$W/sec.sig" dmsetup create rdmt-sk --readonly \
		--table "$(std_table "2 root_hash_sig_key_desc rdmt:sig")" ||
		die "dmsetup create with a signature by a secondary key"
	assert_served rdmt-sk "$(std_echo "2 root_hash_sig_key_desc rdmt:sig")"
	assert_blocks_match /dev/mapper/rdmt-sk 4096 0 256 "$SRC"
	assert_eq V "$(status_of rdmt-sk)" "status"
	# (veritysetup wants the data device to itself)
	dmsetup remove rdmt-sk || die "dmsetup remove"
	veritysetup open "$D" rdmt-sk2 "$H" "$ROOT" --root-hash-signature="$W/sec.sig" ||
		die "veritysetup open with a signature by a secondary key"
	assert_served rdmt-sk2

	# gone from the keyring: refused again
	keyctl unlink "$id" %:.secondary_trusted_keys >/dev/null || die "keyctl unlink"
	refuse "verity: Root hash verification failed" "a signature by a key unlinked from the keyring" \
		with_user_key rdmt:sig "$W/sec.sig" \
		dmsetup create rdmt-bad --readonly --table "$(std_table "2 root_hash_sig_key_desc rdmt:sig")"
	check_refusals

	# a self-issued certificate is not let in
	openssl x509 -req -in "$W/sec.csr" -key "$W/sec.key" -set_serial 1 -days 2 \
		-outform der -out "$W/self.der" 2>/dev/null || die "openssl x509 -req (self-signed)"
	if keyctl padd asymmetric "" %:.secondary_trusted_keys <"$W/self.der" >/dev/null 2>&1; then
		die "a self-signed certificate entered .secondary_trusted_keys"
	fi
}

# The module parameter require_signatures (as C: bool, 0444, off by
# default): when on, a table without a root hash signature is refused
# (ENOKEY), one with a good signature is accepted; off, both are.
t_require_signatures() {
	local cdir p=/sys/module/$VERITY_MOD/parameters/require_signatures
	cdir=$(cert_dir)
	std_image
	sign_text "$ROOT" "$cdir/verity-test.key" "$cdir/verity-test.pem" "$W/good.sig"
	assert_eq N "$(<"$p")" "require_signatures by default"
	assert_eq 444 "$(stat -c %a "$p")" "permissions of $p"
	vcreate rdmt-rq0 "$(std_table)"
	assert_served rdmt-rq0
	dmsetup remove rdmt-rq0 || die "dmsetup remove"

	at_exit verity_unload
	verity_reload require_signatures=1
	assert_eq Y "$(<"$p")" "require_signatures after loading with it"
	refuse "verity: Root hash verification failed \((-ENOKEY|-126)\)" "an unsigned table" \
		dmsetup create rdmt-bad --readonly --table "$(std_table)"
	refuse "verity: Root hash verification failed \((-ENOKEY|-126)\)" "veritysetup open without a signature" \
		veritysetup open "$D" rdmt-bad "$H" "$ROOT"
	check_refusals
	with_user_key rdmt:sig "$W/good.sig" dmsetup create rdmt-rq1 --readonly \
		--table "$(std_table "2 root_hash_sig_key_desc rdmt:sig")" || die "dmsetup create, signed"
	assert_served rdmt-rq1 "$(std_echo "2 root_hash_sig_key_desc rdmt:sig")"
	assert_blocks_match /dev/mapper/rdmt-rq1 4096 0 256 "$SRC"
	# (veritysetup wants the data device to itself)
	dmsetup remove rdmt-rq1 || die "dmsetup remove"
	veritysetup open "$D" rdmt-rq2 "$H" "$ROOT" --root-hash-signature="$W/good.sig" ||
		die "veritysetup open, signed"
	assert_served rdmt-rq2
	dmsetup remove rdmt-rq2 || die "dmsetup remove"

	verity_reload require_signatures=0
	assert_eq N "$(<"$p")" "require_signatures after loading with =0"
	vcreate rdmt-rq3 "$(std_table)"
	assert_served rdmt-rq3 "$(std_echo)"
	assert_blocks_match /dev/mapper/rdmt-rq3 4096 0 256 "$SRC"
}

# Beyond C 6.12 (ours only): the `.dm-verity` keyring of later kernels. It
# is sealed when the module loads, so that no key can be added; with
# keyring_unsealed=1 root adds a key, which counts only once the keyring is
# sealed (keyctl restrict_keyring): then a signature by that key, which no
# system keyring trusts, is accepted, and no further key can be added.
dmv_keyring() { # prints the id of the live (not revoked) .dm-verity keyring
	local id flags _ type desc
	while read -r id flags _ _ _ _ _ type desc _; do
		if [ "$type" = keyring ] && [ "$desc" = .dm-verity: ] && [[ $flags != *R* ]]; then
			echo $((16#$id))
			return 0
		fi
	done </proc/keys
	return 1
}

t_dm_verity_keyring() {
	local id serial p=/sys/module/$VERITY_MOD/parameters/keyring_unsealed
	std_image
	serial=$(od -An -tx8 -N8 /dev/urandom) serial=${serial// /}
	# RSA (this kernel has no ECDSA), 1024 bits (fast enough under TCG).
	openssl req -new -x509 -newkey rsa:1024 -nodes -days 2 -subj "/CN=rdmt dm-verity $serial/" \
		-addext keyUsage=digitalSignature -keyout "$W/dmv.key" -out "$W/dmv.pem" 2>/dev/null ||
		die "openssl req"
	openssl x509 -in "$W/dmv.pem" -outform der -out "$W/dmv.der" || die "openssl x509 -outform der"
	sign_text "$ROOT" "$W/dmv.key" "$W/dmv.pem" "$W/dmv.sig"
	local table
	table=$(std_table "2 root_hash_sig_key_desc rdmt:sig")

	assert_eq N "$(<"$p")" "keyring_unsealed by default"
	id=$(dmv_keyring) || die "no .dm-verity keyring in /proc/keys"
	if keyctl padd asymmetric "" "$id" <"$W/dmv.der" >/dev/null 2>&1; then
		die "a key entered the .dm-verity keyring sealed at load"
	fi
	refuse "verity: Root hash verification failed" "a signature by a key in no keyring" \
		with_user_key rdmt:sig "$W/dmv.sig" dmsetup create rdmt-bad --readonly --table "$table"

	at_exit verity_unload
	verity_reload keyring_unsealed=1
	assert_eq Y "$(<"$p")" "keyring_unsealed after loading with it"
	id=$(dmv_keyring) || die "no .dm-verity keyring in /proc/keys"
	keyctl padd asymmetric "" "$id" <"$W/dmv.der" >/dev/null || die "keyctl padd into .dm-verity"
	refuse "verity: Root hash verification failed" "a signature by a key of the unsealed .dm-verity keyring" \
		with_user_key rdmt:sig "$W/dmv.sig" dmsetup create rdmt-bad --readonly --table "$table"
	check_refusals
	keyctl restrict_keyring "$id" || die "keyctl restrict_keyring .dm-verity"
	with_user_key rdmt:sig "$W/dmv.sig" dmsetup create rdmt-kr --readonly --table "$table" ||
		die "dmsetup create with a signature by a key of the sealed .dm-verity keyring"
	assert_served rdmt-kr "$(std_echo "2 root_hash_sig_key_desc rdmt:sig")"
	assert_blocks_match /dev/mapper/rdmt-kr 4096 0 256 "$SRC"
	if keyctl padd asymmetric "" "$id" <"$W/dmv.der" >/dev/null 2>&1; then
		die "a key entered the .dm-verity keyring after it was sealed"
	fi
}

# IPE end to end: the target hands the root hash and the signature state of
# its table to the LSM in preresume, and IPE decides execution on them.
#
# Three verity devices over the same squashfs image (holding busybox, a
# static binary), with different salts and so different root hashes: A and
# S opened with a root hash signature, U without. The policy:
#
#   DEFAULT action=ALLOW                                    (the harness)
#   op=EXECUTE dmverity_roothash=sha256:<A> action=ALLOW
#   op=EXECUTE dmverity_roothash=sha256:<U> action=DENY
#   op=EXECUTE dmverity_signature=TRUE action=DENY
#
# Everything the harness runs lives on 9p, overlayfs or tmpfs, which no rule
# matches (they have no root hash, and dmverity_signature=TRUE needs a
# signed verity device), so the shell keeps working: denying EXECUTE by
# default would stop it. Then A runs only because its root hash matched
# (being signed, the last rule would deny it), S is denied because its
# signature was recorded, U because its root hash was, and the same image
# mounted without verity runs. Reloading U with A's tree and S without its
# signature flips the decisions, and reloading them back flips them again:
# the properties are set on every resume, not only at creation.

# ipe_setup: one squashfs image with busybox, mounted plain (P) and through
# three verity devices with their own salts and trees: A (veritysetup open,
# signed; its root hash allowed by the policy), S (veritysetup open,
# signed), U (a table by hand, unsigned; its root hash denied); busybox runs
# from each; then the policy rdmt_verity is active (removed at the test's
# end). Sets CDIR, R, DL, HL, SALTS (per device), SECT, NBLK, TA (U's table
# up to the root hash).
ipe_setup() {
	local x size
	declare -gA R=() DL=() HL=() SALTS=([A]=aa01 [S]=bb02 [U]=cc03)
	CDIR=$(cert_dir)
	[ -d $IPE_FS ] || mount -t securityfs securityfs /sys/kernel/security || true
	[ -d $IPE_FS ] || die "no IPE in securityfs"
	mkdir "$W/root" "$W/mP" "$W/mA" "$W/mS" "$W/mU"
	cp /bin/busybox "$W/root/busybox"
	mksquashfs "$W/root" "$W/sq.img" -noappend -quiet -no-xattrs >/dev/null || die "mksquashfs"
	size=$(stat -c %s "$W/sq.img")
	[ $((size % 4096)) = 0 ] || die "squashfs image not padded to 4 KiB"
	SECT=$((size / 512)) NBLK=$((size / 4096))
	truncate -s 1M "$W/hashA" "$W/hashS" "$W/hashU"
	for x in A S U; do
		vloop "$W/sq.img" -r
		DL[$x]=$LOOP
		vloop "$W/hash$x"
		HL[$x]=$LOOP
		verity_format "${DL[$x]}" "${HL[$x]}" --salt="${SALTS[$x]}"
		R[$x]=$ROOT
	done
	for x in A S; do
		sign_text "${R[$x]}" "$CDIR/verity-test.key" "$CDIR/verity-test.pem" "$W/sig$x"
		veritysetup open "${DL[$x]}" rdmt-ipe$x "${HL[$x]}" "${R[$x]}" --root-hash-signature="$W/sig$x" ||
			die "veritysetup open $x"
	done
	TA="0 $SECT verity 1 ${DL[U]} ${HL[U]} 4096 4096 $NBLK 1 sha256"
	vcreate rdmt-ipeU "$TA ${R[U]} ${SALTS[U]}"
	vloop "$W/sq.img" -r
	mount -t squashfs -o ro "$LOOP" "$W/mP" || die "mount plain"
	at_exit umount "$W/mP"
	for x in A S U; do
		assert_served rdmt-ipe$x
		mount -t squashfs -o ro /dev/mapper/rdmt-ipe$x "$W/m$x" || die "mount $x"
		at_exit umount "$W/m$x"
	done
	for x in P A S U; do runs $x; done

	cat >"$W/policy" <<-EOF
		policy_name=rdmt_verity policy_version=$IPE_VERSION
		DEFAULT action=ALLOW
		op=EXECUTE dmverity_roothash=sha256:${R[A]} action=ALLOW
		op=EXECUTE dmverity_roothash=sha256:${R[U]} action=DENY
		op=EXECUTE dmverity_signature=TRUE action=DENY
	EOF
	at_exit ipe_restore "$CDIR"
	ipe_restore "$CDIR"	# a leftover of an earlier run in this boot
	ipe_load rdmt_verity "$W/policy" "$CDIR"
	echo 1 >$IPE_FS/policies/rdmt_verity/active || die "activating the policy"
}

# The policy decides by the root hash and the signature of the verity
# device a file is executed from; without the policy everything runs again.
t_ipe() {
	local x
	ipe_setup
	runs P
	runs A
	denied S
	denied U
	for x in A S U; do assert_served rdmt-ipe$x; done

	# without the policy everything runs again
	ipe_restore "$CDIR" || die "removing the IPE policy"
	runs S
	runs U
}

# A reloaded table changes what the policy sees: U with A's tree and root
# hash (unsigned) runs, with its own again is denied; S without its
# signature runs, with it again (by hand) is denied.
t_ipe_table_reload() {
	local x
	ipe_setup
	dmsetup reload --readonly rdmt-ipeU --table \
		"0 $SECT verity 1 ${DL[U]} ${HL[A]} 4096 4096 $NBLK 1 sha256 ${R[A]} ${SALTS[A]}" || die "reload U"
	dmsetup resume rdmt-ipeU || die "resume U"
	runs U
	dmsetup reload --readonly rdmt-ipeU --table "$TA ${R[U]} ${SALTS[U]}" || die "reload U"
	dmsetup resume rdmt-ipeU || die "resume U"
	denied U
	x="0 $SECT verity 1 ${DL[S]} ${HL[S]} 4096 4096 $NBLK 1 sha256 ${R[S]} ${SALTS[S]}"
	dmsetup reload --readonly rdmt-ipeS --table "$x" || die "reload S"
	dmsetup resume rdmt-ipeS || die "resume S"
	runs S
	with_user_key rdmt:sigS "$W/sigS" dmsetup reload --readonly rdmt-ipeS \
		--table "$x 2 root_hash_sig_key_desc rdmt:sigS" || die "reload S with its signature"
	dmsetup resume rdmt-ipeS || die "resume S"
	denied S
	runs A
	for x in A S U; do assert_served rdmt-ipe$x; done
}

# ==== bad input ==================================================================
# Refused tables, one table of (reason, table line) rows per kind
# (refuse_tables, selftests/lib/refuse.sh): `dmsetup create --readonly`
# fails, leaves no device, and the kernel log has C's reason. Each test
# ends with bad_input_end: every reason checked; once the devices C's
# quirks made are gone, the module is loaded but not in use (the refused
# tables leaked no reference) and the other implementation is not loaded.
bad_input_end() {
	check_refusals
	dm_remove_all_test_devices 60
	impl_assert_idle
}

# Argument count, version, devices; a table that is not read-only.
t_bad_input_args() {
	std_image
	local v="0 $SECTORS verity" tail="4096 1024 $NB 1 sha256 $ROOT $SALT"
	refuse_tables --readonly <<-EOF
		verity: Not enough arguments         | $v
		verity: Not enough arguments         | $v 1 $D $H 4096 1024 $NB 1 sha256 $ROOT
		verity: Invalid version              | $v 2 $D $H $tail
		verity: Invalid version              | $v 1x $D $H $tail
		verity: Data device lookup failed    | $v 1 /dev/rdmt-none $H $tail
		verity: Hash device lookup failed    | $v 1 $D /dev/rdmt-none $tail
	EOF
	refuse_tables <<<"verity: Device must be readonly | $(std_table)"
	bad_input_end
}

# Block sizes: data blocks are at most a page, hash blocks may be larger;
# neither below the device's logical block size (a 4 KiB-sector loop).
t_bad_input_block_sizes() {
	std_image
	local v="0 $SECTORS verity 1 $D $H" tail="$NB 1 sha256 $ROOT $SALT" t4
	truncate -s 1M "$W/4k"
	vloop "$W/4k" --sector-size 4096
	t4=$LOOP
	refuse_tables --readonly <<-EOF
		verity: Invalid data device block size   | $v 3000 1024 $tail
		verity: Invalid data device block size   | $v 8192 1024 $tail
		verity: Invalid data device block size   | $v 256 1024 $tail
		verity: Invalid data device block size   | $v 0 1024 $tail
		verity: Invalid data device block size   | $v abc 1024 $tail
		verity: Invalid hash device block size   | $v 4096 3000 $tail
		verity: Invalid hash device block size   | $v 4096 256 $tail
		verity: Invalid hash device block size   | $v 4096 0 $tail
		verity: Invalid hash device block size   | $v 4096 abc $tail
		verity: Invalid data device block size   | 0 $SECTORS verity 1 $t4 $H 1024 1024 $tail
		verity: Invalid hash device block size   | 0 $SECTORS verity 1 $D $t4 4096 1024 $tail
	EOF
	bad_input_end
}

# Data blocks and hash start: numbers, the table longer than the data
# (too few data blocks, or more than the device has: dm core checks the
# device through iterate_devices), the tree (9 blocks) past the end of the
# 1 MiB hash device (1024 blocks). 2^61 data blocks of 4 KiB are 2^64
# bytes.
t_bad_input_geometry() {
	std_image
	local v="0 $SECTORS verity 1 $D $H 4096 1024" tail="sha256 $ROOT $SALT" big=18446744073709551616
	refuse_tables --readonly <<-EOF
		verity: Invalid data blocks          | $v abc 1 $tail
		verity: Invalid data blocks          | $v -1 1 $tail
		verity: Invalid data blocks          | $v 2305843009213693952 1 $tail
		verity: Data device is too small     | $v $((NB - 1)) 1 $tail
		too small for target                 | 0 $((SECTORS * 2)) verity 1 $D $H 4096 1024 $((NB * 2)) 1 $tail
		verity: Invalid hash start           | $v $NB abc $tail
		verity: Hash device is too small     | $v $NB 1024 $tail
		verity: Hash device is too small     | $v $NB 1020 $tail
	EOF
	# Numbers that overflow 64 bits. C quirk: the kernel's sscanf wraps
	# 2^64 to 0, so the C target takes 0 data blocks (and then refuses the
	# table as longer than the data) and a hash start of 0 (accepting the
	# table). Ours refuses both as invalid numbers.
	if [ "$VERITY_IMPL" = c ]; then
		refuse_tables --readonly <<<"verity: Data device is too small | $v $big 1 $tail"
		vcreate rdmt-c1 "$v $NB $big $tail"
		assert_served rdmt-c1 "0 $SECTORS verity 1 $DN $HN 4096 1024 $NB 0 $tail"
	else
		refuse_tables --readonly <<-EOF
			verity: Invalid data blocks   | $v $big 1 $tail
			verity: Invalid hash start    | $v $NB $big $tail
		EOF
	fi
	bad_input_end
}

# Hash algorithm, root digest, salt.
t_bad_input_digest() {
	std_image
	local v="0 $SECTORS verity 1 $D $H 4096 1024 $NB 1"
	refuse_tables --readonly <<-EOF
		verity: Cannot initialize hash function   | $v nosuchhash $ROOT $SALT
		verity: Invalid root digest               | $v sha256 ${ROOT%??} $SALT
		verity: Invalid root digest               | $v sha256 ${ROOT}00 $SALT
		verity: Invalid root digest               | $v sha256 ${ROOT%?}g $SALT
		verity: Invalid root digest               | $v sha1 $ROOT $SALT
		verity: Invalid salt                      | $v sha256 $ROOT abc
		verity: Invalid salt                      | $v sha256 $ROOT zz
	EOF
	bad_input_end
}

# Optional arguments: unknown, miscounted, conflicting, the signature key,
# FEC (selftests/verity_fec.sh tests it: here not with these block sizes;
# without FEC -- C without CONFIG_DM_VERITY_FEC -- not at all).
t_bad_input_features() {
	std_image
	local v x fec="verity: Block sizes must match to use FEC"
	v=$(std_table)
	has_fec || fec="verity: Unrecognized verity feature request"
	refuse_tables --readonly <<-EOF
		verity: Unrecognized verity feature request       | $v 1 frobnicate
		verity: Invalid number of feature args            | $v 2 ignore_corruption
		verity: Invalid number of feature args            | $v 99 ignore_corruption
		verity: Invalid number of feature args            | $v x ignore_corruption
		verity: Conflicting error handling parameters     | $v 2 restart_on_corruption panic_on_corruption
		verity: Conflicting error handling parameters     | $v 2 ignore_corruption ignore_corruption
		verity: Conflicting error handling parameters     | $v 2 restart_on_error panic_on_error
		verity: DM Verity Sig Verification Signature key not specified   | $v 1 root_hash_sig_key_desc
		verity: DM Verity Sig Verification Invalid key specified         | $v 2 root_hash_sig_key_desc rdmt:no-such-key
		$fec   | $v 2 use_fec_from_device $H
		$fec   | $v 6 use_fec_from_device $H fec_roots 2 fec_blocks 300
	EOF
	x="$v 4 root_hash_sig_key_desc rdmt:k root_hash_sig_key_desc rdmt:k"
	head -c 256 "$POOL" >"$W/k.sig"
	refuse "verity: DM Verity Sig Verification root_hash_sig_key_desc already specified" "table '$x'" \
		with_user_key rdmt:k "$W/k.sig" dmsetup create rdmt-bad --readonly --table "$x"
	# More optional arguments than their count says. C quirk: the C target
	# parses as many as counted and ignores the rest. Ours refuses them.
	x="$v 1 check_at_most_once ignore_zero_blocks"
	if [ "$VERITY_IMPL" = c ]; then
		vcreate rdmt-c2 "$x"
		assert_served rdmt-c2 "$(std_echo "1 check_at_most_once")"
	else
		refuse_tables --readonly <<<"verity: .*([Aa]rgument|[Oo]ption|[Ff]eature) | $x"
	fi
	bad_input_end
}

# The module is pinned only while a table uses it, and unloads once none
# does; loaded again, it serves a device.
t_module_pinned_by_table() {
	std_image
	vcreate rdmt-pin "$(std_table)"
	assert_served rdmt-pin
	assert_fails "rmmod while a table uses the target" rmmod $VERITY_MOD
	dmsetup remove rdmt-pin
	impl_assert_idle
	rmmod $VERITY_MOD || die "rmmod $VERITY_MOD"
	if mod_loaded $VERITY_MOD; then die "still loaded after rmmod"; fi
	need_module
	vcreate rdmt-pin "$(std_table)"
	assert_served rdmt-pin
	assert_blocks_match /dev/mapper/rdmt-pin 4096 0 256 "$SRC"
}

# Writes are refused. dm core makes the disk of a read-only table
# read-only, so the block layer refuses writes (EPERM) before they reach
# the target: no userspace write reaches the target's map. The target itself
# must refuse a table that is not read-only.
t_writes_refused() {
	std_image
	vcreate rdmt-w "$(std_table)"
	assert_served rdmt-w
	assert_fails "direct write" dd if="$POOL" of=/dev/mapper/rdmt-w bs=4096 skip=1 count=1 oflag=direct conv=notrunc
	assert_fails "buffered write" dd if="$POOL" of=/dev/mapper/rdmt-w bs=4096 skip=1 seek=3 count=1 conv=notrunc,fsync
	assert_fails "discard" blkdiscard -o 0 -l 4096 /dev/mapper/rdmt-w
	blockdev --setrw /dev/mapper/rdmt-w 2>/dev/null || true
	assert_fails "direct write after setrw" dd if="$POOL" of=/dev/mapper/rdmt-w bs=4096 skip=1 count=1 oflag=direct conv=notrunc
	cmp -s -n 1048576 "$DFILE" "$SRC" || die "the data device changed"
	assert_blocks_match /dev/mapper/rdmt-w 4096 0 256 "$SRC"
	assert_eq V "$(status_of rdmt-w)" "status"
	assert_served rdmt-w
	# a verity table loaded read-write into a device is refused by the target
	dmsetup create rdmt-bad --notable || die "dmsetup create --notable"
	kmark
	assert_fails "read-write verity table" dmsetup load rdmt-bad --table "$(std_table)"
	assert_klog "verity: Device must be readonly"
}

# DM_TARGET_SINGLETON | DM_TARGET_IMMUTABLE: verity is alone in its table,
# and a verity device only ever gets verity tables (the LSM hooks rely on
# both).
t_singleton_immutable() {
	local v
	std_image
	v="verity 1 $D $H 4096 1024 $NB 1 sha256 $ROOT $SALT"
	bad_table "target type verity must appear alone in table" "0 $SECTORS $v
$SECTORS 8 linear $D 0"
	bad_table "verity: singleton target type must appear alone in table" "0 8 linear $D 0
8 $SECTORS $v"
	bad_table "target type verity must appear alone in table" "0 $SECTORS $v
$SECTORS $SECTORS $v"
	vcreate rdmt-si "$(std_table)"
	assert_served rdmt-si
	refuse "can't replace immutable target type verity" "reload with a linear table" \
		dmsetup reload rdmt-si --readonly --table "0 $SECTORS linear $D 0"
	check_refusals
	assert_served rdmt-si "$(std_echo)"
	assert_blocks_match /dev/mapper/rdmt-si 4096 0 256 "$SRC"
	# another verity table is fine
	dmsetup reload rdmt-si --readonly --table "$(std_table "1 check_at_most_once")" || die "reload with verity"
	dmsetup resume rdmt-si
	assert_served rdmt-si "$(std_echo "1 check_at_most_once")"
	assert_blocks_match /dev/mapper/rdmt-si 4096 0 256 "$SRC"
	assert_eq V "$(status_of rdmt-si)" "status"
}

# ==== the suite ==========================================================================
# Salts: 32 bytes, 5 bytes, 64 bytes, 2 bytes, none.
S32=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
S5=0a1b2c3d4e
S64=cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e
S2=abcd
IMAGES=(
	# layout dbs hbs alg salt format data-blocks
	"sep 4096 4096 sha256 $S32 1 300"	# 3 level-0 blocks, the last partial
	"inline 4096 4096 sha256 - 1 256"
	"sep 1024 1024 sha1 $S5 1 1500"	# 3 levels
	"inline 512 512 sha512 $S64 1 1200"	# 4 levels
	"sep 512 4096 sha256 $S2 1 1100"
	"inline 4096 1024 sha512 - 1 400"
	"sep 4096 4096 sha256 $S32 0 300"
	"inline 1024 512 sha1 $S5 0 1000"
	"sep 512 1024 sha512 - 0 1000"
	"sep 1024 4096 sha512 $S2 0 128"	# exactly one full hash block
	"sep 4096 4096 sha256 $S2 1 1"	# no tree: the root is the block's digest
)

mkdir -p "$W"
[ -s "$POOL" ] || pattern "$POOL" $((POOL_BYTES / 512)) verity

suite_tests() {
	run_test registered vt t_registered
	for i in "${IMAGES[@]}"; do
		# shellcheck disable=SC2086
		set -- $i
		run_test "image_${1}_${2}_${3}_${4}_$([ "$5" = - ] && echo nosalt || echo salt${#5})_v${6}_${7}" vt t_image $i
	done
	run_test corrupt_data_block vt t_corrupt_data_block
	run_test ignore_corruption vt t_ignore_corruption
	run_test corrupt_hash_block_v1_sha256 vt t_corrupt_hash_block 4096 1024 sha256 1 256 3
	run_test corrupt_hash_block_v0_sha1 vt t_corrupt_hash_block 512 512 sha1 0 2000 7
	run_test wrong_root_hash vt t_wrong_root_hash
	run_test ignore_zero_blocks vt t_ignore_zero_blocks
	run_test check_at_most_once vt t_check_at_most_once
	run_test try_verify_in_tasklet vt t_try_verify_in_tasklet
	run_test options_echo vt t_options_echo
	run_test root_hash_signature vt t_root_hash_signature
	if keyctl describe %:.secondary_trusted_keys >/dev/null 2>&1; then
		run_test secondary_keyring vt t_secondary_keyring
	else
		skip_test secondary_keyring "no .secondary_trusted_keys (kernel without CONFIG_SECONDARY_TRUSTED_KEYRING)"
	fi
	if [ "$VERITY_IMPL" = rust ]; then
		run_test dm_verity_keyring vt t_dm_verity_keyring
	else
		skip_test dm_verity_keyring "C dm-verity of 6.12 has no .dm-verity keyring"
	fi
	run_test require_signatures vt t_require_signatures
	run_test ipe_root_hash_binding vt t_ipe
	run_test ipe_table_reload vt t_ipe_table_reload
	run_test writes_refused vt t_writes_refused
	run_test singleton_immutable vt t_singleton_immutable
	run_test bad_input_args vt t_bad_input_args
	run_test bad_input_block_sizes vt t_bad_input_block_sizes
	run_test bad_input_geometry vt t_bad_input_geometry
	run_test bad_input_digest vt t_bad_input_digest
	run_test bad_input_features vt t_bad_input_features
	run_test module_pinned_by_table vt t_module_pinned_by_table
}

ktap_suite verity suite_tests
rm -rf "$W" "$POOL"
