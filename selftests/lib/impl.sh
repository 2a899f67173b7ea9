# SPDX-License-Identifier: GPL-2.0
#
# Which implementation serves a target's devices -- ours (Rust) or the C
# twin -- loading it, and proving that it served a device. One table for
# every suite, the bench (tools/bench-guest.sh) and the host boot tests.
# Sourcing this file defines functions and the table only.
#
# Our module and its C twin register the same target type (but linear_rs),
# so they are never loaded together: with no target of that type
# registered the kernel would auto-load the C module for the first table
# (dm_get_target_type() calls request_module("dm-<type>")). A device is
# served by an implementation when its live table has the target type, the
# implementation's module is loaded and pinned by the table (refcount >= 1)
# and no other implementation of the target is loaded.
#
#   impl_select TARGET IMPL   set the IMPL_* variables below (no loading)
#   impl_select_by TYPE MODULE
#                             the same for the row of target type TYPE in
#                             module MODULE ("built-in": in dm-mod)
#   impl_from_env TARGET      <TARGET>_IMPL (ERA_IMPL, ...): rust (the
#                             default) or c, the implementation under test
#   impl_load TARGET IMPL [PARAM=VALUE...]
#                             the implementation loaded (with these module
#                             parameters), the others not
#   impl_unload               rmmod the selected module (nothing if built in)
#   impl_deps, impl_ko_file   modprobe ours' dependencies; IMPL_KO_FILE: the
#                             .ko to insmod (for a suite that loads it itself)
#   impl_assert_served NAME   device NAME is served by the selected one
#   impl_assert_registered    `dmsetup targets` lists its type and version
#   impl_assert_idle          the selected one is loaded but not in use
#                             (refcount 0) and no other one is loaded: what
#                             a test whose tables were all refused proves
#   impl_check_modules        the same proof on a /proc/modules dump (stdin),
#                             for a guest whose console is all we have
#
# Variables impl_select sets: IMPL_TARGET, IMPL (rust, c, unordered),
# IMPL_TYPE (target type), IMPL_MOD (module name, "" when built in),
# IMPL_KO (our .ko's name, "" for C), IMPL_DEPS (modules to modprobe before
# insmod of ours), IMPL_VERSION (the registered version), IMPL_OTHERS (the
# modules of the other implementations with the same target type: none of
# them may be loaded).
#
# Our modules are loaded from a copy in $SCRATCH/ko (made at the first load:
# the project may be rebuilt while a suite runs) of $IMPL_KO_DIR/<ko>.ko
# (default: the project directory); <TARGET>_KO (VERITY_KO, CLONE_KO, ...)
# names another file for ours.

# target  impl       type       module                 ko                     deps                          version
IMPL_TABLE='
linear    rust       linear_rs  dm_linear_rs           dm-linear-rs           -                             v1.4.0
linear    c          linear     -                      -                      -                             v1.4.0
verity    rust       verity     dm_verity_rs           dm-verity-rs           dm-bufio,reed_solomon         v1.10.0
verity    c          verity     dm_verity              -                      -                             v1.10.0
era       rust       era        dm_era_rs              dm-era-rs              dm-persistent-data            v1.0.0
era       c          era        dm_era                 -                      -                             v1.0.0
clone     rust       clone      dm_clone_rs            dm-clone-rs            dm-persistent-data            v1.0.0
clone     c          clone      dm_clone               -                      -                             v1.0.0
clone     unordered  clone      dm_clone_rs_unordered  dm-clone-rs-unordered  dm-persistent-data            v1.0.0
hold      rust       hold_rs    dm_hold_rs             dm-hold-rs             -                             v1.0.0
'

_impl_fail() {
	echo "FAIL: $*" >&2
	TEST_FAILURE="$*"
	return 1
}

impl_select() { # TARGET IMPL
	local t i ty m k d v others=
	IMPL_TYPE=
	while read -r t i ty m k d v; do
		[ "$t" = "$1" ] || continue
		if [ "$i" = "$2" ]; then
			IMPL_TARGET=$t IMPL=$i IMPL_TYPE=$ty IMPL_VERSION=$v
			IMPL_MOD=${m#-} IMPL_KO=${k#-} IMPL_DEPS=${d#-}
			IMPL_DEPS=${IMPL_DEPS//,/ }
		elif [ "$m" != - ]; then
			others+="$ty:$m "
		fi
	done <<<"$IMPL_TABLE"
	[ -n "$IMPL_TYPE" ] || { _impl_fail "no implementation '$2' of target '$1' (selftests/lib/impl.sh)"; return 1; }
	# Only the modules that register the same target type exclude each
	# other (linear_rs lives beside the built-in linear).
	IMPL_OTHERS=
	for m in $others; do
		[ "${m%%:*}" != "$IMPL_TYPE" ] || IMPL_OTHERS+="${m#*:} "
	done
}

impl_select_by() { # TYPE MODULE
	local t i ty m k d v want=${2//-/_}
	[ "$want" != built_in ] || want=-
	while read -r t i ty m k d v; do
		[ -n "$t" ] && [ "$ty" = "$1" ] && [ "$m" = "$want" ] || continue
		impl_select "$t" "$i"
		return
	done <<<"$IMPL_TABLE"
	_impl_fail "no implementation of target type '$1' in module '$2' (selftests/lib/impl.sh)"
}

# impl_from_env TARGET: sets <TARGET>_IMPL to rust if it is empty; exits
# the suite (status 2) if it is neither rust nor c.
impl_from_env() {
	local v=${1^^}_IMPL
	printf -v "$v" %s "${!v:-rust}"
	case "${!v}" in
	rust | c) ;;
	*) echo "$v must be rust or c, not '${!v}'" >&2; exit 2 ;;
	esac
}

# impl_ko_file: sets IMPL_KO_FILE to the copy of our .ko that is loaded
# (made now if there is none).
impl_ko_file() {
	local v=${IMPL_TARGET^^}_KO src=${IMPL_KO_DIR:-$TOP}/$IMPL_KO.ko
	[ "$IMPL" != rust ] || [ -z "${!v:-}" ] || src=${!v}
	IMPL_KO_FILE=$SCRATCH/ko/$IMPL_KO.ko
	[ -f "$IMPL_KO_FILE" ] && return 0
	[ -f "$src" ] || { _impl_fail "$src does not exist (module not built)"; return 1; }
	mkdir -p "$SCRATCH/ko" && cp "$src" "$IMPL_KO_FILE"
}

# impl_deps: the modules ours needs are loaded (insmod does not load them):
# those of the table's deps that the .ko depends on (dm-verity-rs built
# against a kernel without REED_SOLOMON_DEC8 has no FEC and does not need
# reed_solomon).
impl_deps() {
	local d needs
	impl_ko_file || return 1
	needs=,$(modinfo -F depends "$IMPL_KO_FILE" 2>/dev/null | tr - _),
	for d in $IMPL_DEPS; do
		[[ $needs == *,${d//-/_},* ]] || continue
		mod_loaded "$d" || modprobe "$d" || { _impl_fail "modprobe $d failed"; return 1; }
	done
}

impl_load() { # TARGET IMPL [PARAM=VALUE...]
	local m d
	impl_select "$1" "$2" || return 1
	shift 2
	for m in $IMPL_OTHERS; do
		if mod_loaded "$m"; then
			rmmod "$m" || { _impl_fail "$m is loaded and cannot be unloaded (refcount $(mod_refcount "$m"))"; return 1; }
		fi
	done
	[ -n "$IMPL_MOD" ] || return 0
	if ! mod_loaded "$IMPL_MOD"; then
		if [ -n "$IMPL_KO" ]; then
			impl_deps || return 1
			impl_ko_file || return 1
			insmod "$IMPL_KO_FILE" "$@" || { _impl_fail "insmod $IMPL_KO_FILE $* failed"; return 1; }
		else
			modprobe "${IMPL_MOD//_/-}" "$@" || { _impl_fail "modprobe ${IMPL_MOD//_/-} $* failed"; return 1; }
		fi
	fi
	mod_loaded "$IMPL_MOD" || { _impl_fail "$IMPL_MOD not loaded"; return 1; }
	for m in $IMPL_OTHERS; do
		if mod_loaded "$m"; then _impl_fail "$m still loaded"; return 1; fi
	done
}

impl_unload() {
	[ -z "$IMPL_MOD" ] || ! mod_loaded "$IMPL_MOD" || rmmod "$IMPL_MOD" ||
		{ _impl_fail "rmmod $IMPL_MOD failed (refcount $(mod_refcount "$IMPL_MOD"))"; return 1; }
}

# impl_assert_served NAME [TARGET IMPL]: NAME's live table has the target
# type, the module is loaded and pinned, no other implementation is loaded.
# TARGET IMPL select first (default: the selection in force).
impl_assert_served() {
	local name=$1 t n m
	if [ $# -ge 3 ]; then impl_select "$2" "$3" || return 1; fi
	t=$(dmsetup table "$name") || { _impl_fail "no device $name"; return 1; }
	set -- $t
	[ "${3:-}" = "$IMPL_TYPE" ] || { _impl_fail "target type of $name is '${3:-}', not $IMPL_TYPE"; return 1; }
	if [ -n "$IMPL_MOD" ]; then
		mod_loaded "$IMPL_MOD" || { _impl_fail "$IMPL_MOD not loaded"; return 1; }
		n=$(mod_refcount "$IMPL_MOD")
		[ "$n" -ge 1 ] || { _impl_fail "$IMPL_MOD not in use by $name (refcount $n)"; return 1; }
	fi
	for m in $IMPL_OTHERS; do
		if mod_loaded "$m"; then _impl_fail "$m is loaded too ($name must be served by $IMPL's ${IMPL_MOD:-built-in})"; return 1; fi
	done
}

impl_assert_idle() {
	local m n
	if [ -n "$IMPL_MOD" ]; then
		mod_loaded "$IMPL_MOD" || { _impl_fail "$IMPL_MOD not loaded"; return 1; }
		n=$(mod_refcount "$IMPL_MOD")
		[ "$n" = 0 ] || { _impl_fail "$IMPL_MOD refcount $n with no device (leaked?)"; return 1; }
	fi
	for m in $IMPL_OTHERS; do
		if mod_loaded "$m"; then _impl_fail "$m is loaded too"; return 1; fi
	done
}

impl_assert_registered() {
	local t
	t=$(dmsetup targets) || { _impl_fail "dmsetup targets failed"; return 1; }
	[[ "$t" =~ (^|$'\n')$IMPL_TYPE\ +${IMPL_VERSION//./\\.}($'\n'|$) ]] ||
		{ _impl_fail "$IMPL_TYPE $IMPL_VERSION not registered: $(echo $t)"; return 1; }
}

# impl_check_modules TARGET IMPL: standard input is a copy of /proc/modules
# (from a guest's console): the implementation's module is there, pinned,
# and no other implementation's module is.
impl_check_modules() {
	local name size refs rest seen=0
	impl_select "$1" "$2" || return 1
	while read -r name size refs rest; do
		if [ "$name" = "$IMPL_MOD" ]; then
			seen=1
			[ "$refs" -ge 1 ] || { _impl_fail "$name not in use (refcount $refs)"; return 1; }
		elif [[ " $IMPL_OTHERS " == *" $name "* ]]; then
			_impl_fail "$name is loaded too"
			return 1
		fi
	done
	[ -z "$IMPL_MOD" ] || [ $seen = 1 ] || { _impl_fail "$IMPL_MOD not in /proc/modules"; return 1; }
}
