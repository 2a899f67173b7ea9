# SPDX-License-Identifier: GPL-2.0
#
# Helpers of the verity suites (verity.sh, verity_fec.sh). Sourcing defines
# functions only; a suite calls verity_init first.
#
# Every test runs through vt: files in $W, loop devices made by vloop, and
# clean-up steps registered with at_exit (run last-registered first); all
# are undone when the test's subshell exits, whatever the outcome.

# verity_init WORKDIR: the implementation under test (VERITY_IMPL: rust, the
# default, or c) and the per-test scratch folder W.
verity_init() {
	impl_from_env verity
	impl_select verity "$VERITY_IMPL"
	VERITY_MOD=$IMPL_MOD
	W=$1
	AT_EXIT=()
	mkdir -p "$W"
	HAS_FEC=1
	has_fec || HAS_FEC=0
}

# has_fec: whether the module under test has FEC. Ours is built without it
# against a kernel without CONFIG_REED_SOLOMON_DEC8, C's dm-verity without
# CONFIG_DM_VERITY_FEC; either then refuses the FEC options as C does
# without FEC and needs no reed_solomon.ko. (A missing .ko counts as with
# FEC: its tests then run, and fail on loading it.)
has_fec() {
	local f=dm-verity
	if [ "$VERITY_IMPL" != c ]; then
		f=${VERITY_KO:-${IMPL_KO_DIR:-$TOP}/dm-verity-rs.ko}
		[ -e "$f" ] || return 0
	fi
	[[ ,$(modinfo -F depends "$f" 2>/dev/null | tr - _), == *,reed_solomon,* ]]
}

# need_module: the selected implementation is loaded, the other one is not.
# Run at the start of every test, so that each test fails on its own and at
# once when the module is missing, rather than the kernel auto-loading the
# C dm-verity for the first `verity` table.
need_module() { impl_load verity "$VERITY_IMPL"; }

# verity_reload [PARAM=VALUE...]: the module under test loaded again with
# these parameters (no device may use it).
verity_reload() {
	rmmod $VERITY_MOD || die "rmmod $VERITY_MOD"
	impl_load verity "$VERITY_IMPL" "$@"
}

assert_other_not_loaded() {
	local m
	for m in $IMPL_OTHERS; do
		if mod_loaded "$m"; then die "$m is loaded"; fi
	done
}

# assert_served NAME [EXPECTED-TABLE]: NAME's live table is a `verity`
# table (exactly EXPECTED-TABLE if given) served by the selected module.
assert_served() {
	[ $# -lt 2 ] || assert_eq "$2" "$(dmsetup table "$1")" "table of $1"
	impl_assert_served "$1" verity "$VERITY_IMPL"
}

# dn DEV: sets DN_OUT to DEV's major:minor, the name the target prints.
dn() { read -r DN_OUT <"/sys/class/block/${1##*/}/dev"; }

status_of() { # NAME: the target's status word (V or C)
	local s
	s=$(dmsetup status "$1") || die "no device $1"
	set -- $s
	echo "${4:-}"
}

at_exit() { AT_EXIT+=("$*"); }

vt_cleanup() {
	local i loops=()
	for ((i = ${#AT_EXIT[@]} - 1; i >= 0; i--)); do
		eval "${AT_EXIT[i]}" >/dev/null 2>&1 || true
	done
	dm_remove_all_test_devices 60
	if [ -f "$W/loops" ]; then mapfile -t loops <"$W/loops"; fi
	if [ ${#loops[@]} != 0 ]; then losetup -d "${loops[@]}" 2>/dev/null || true; fi
	rm -rf "${W:?}"/* || true
}

vt() {
	trap vt_cleanup EXIT
	need_module
	"$@"
}

# vloop FILE [losetup options]: sets LOOP to a loop device over FILE (and
# records it for the clean-up).
vloop() {
	local f=$1
	shift
	LOOP=$(losetup --find --show "$@" "$f") || die "losetup $f"
	echo "$LOOP" >>"$W/loops"
}

vcreate() { # NAME TABLE [dmsetup options]: a read-only device
	local name=$1 table=$2
	shift 2
	dmsetup create "$name" --readonly "$@" --table "$table" || die "dmsetup create $name --table '$table'"
}

log2() { # floor(log2(N))
	local n=$1 b=0
	while [ "$n" -gt 1 ]; do n=$((n >> 1)) b=$((b + 1)); done
	echo $b
}
