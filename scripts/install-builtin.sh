#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Install the Rust device-mapper targets into a Linux 6.12 source tree, so
# that they can be built into the kernel (=y) or as its modules (=m) like
# any driver of the tree (as ZFS's copy-builtin does for ZFS):
#
#   scripts/install-builtin.sh /path/to/linux-6.12
#   make -C /path/to/linux-6.12 menuconfig   # Device Drivers > Multiple devices
#                                            # > Device-mapper targets in Rust
#
# What it installs (see Documentation/boot.md, "Built into the kernel"):
#   drivers/md/rust-dm/rust/{dm,linear,verity,era,clone}/  copies of this
#       repository's sources (the same files the out-of-tree build compiles);
#   drivers/md/rust-dm/Kconfig    DM_LINEAR_RS, DM_VERITY_RS, DM_ERA_RS,
#       DM_CLONE_RS (tristate, depending on RUST and BLK_DEV_DM, selecting
#       what each needs); ours and the C twin of the same target name cannot
#       both be =y;
#   drivers/md/rust-dm/Makefile   the objects (the module names are those of
#       the out-of-tree build: dm-verity-rs, ...), the per-crate --cfg lines
#       of ./Kbuild, and the bindings rule of rust/dm/Kbuild.include; the
#       abstraction's C helpers (rust/dm/helpers.c) are compiled ONCE into
#       the kernel when any target is =y (a module =m keeps its own copy);
#   one line in drivers/md/Kconfig (source "drivers/md/rust-dm/Kconfig") and
#       one in drivers/md/Makefile (obj-$(CONFIG_BLK_DEV_DM) += rust-dm/).
#
# Run it again after changing the sources: it replaces the files that
# differ (a new file, renamed over the old one: safe in a tree whose files
# are hard links to another tree's), removes the ones no longer shipped,
# leaves the others untouched (so an incremental `make` rebuilds only what
# changed) and says what it changed. It refuses a tree that is not a 6.12
# tree with Rust support.
#
# The tree is built in place (make -C TREE); with O=, Kbuild writes the
# generated dm bindings into the build folder where rustc does not look for
# them (rust/dm/bindings.rs includes them from its own folder), so O= builds
# are not supported.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)

die() { echo "install-builtin: $*" >&2; exit 1; }
say() { echo "install-builtin: $*"; }

[ $# -eq 1 ] || { echo "usage: install-builtin.sh KERNEL-SOURCE-TREE" >&2; exit 2; }
tree=$(cd "$1" 2>/dev/null && pwd) || die "$1: no such directory"

# ---- is it a Rust-enabled 6.12 tree? ---------------------------------------
mkvar() { sed -n "s/^$1 *= *\([0-9]*\)$/\1/p" "$tree/Makefile" | head -n1; }
[ -f "$tree/Makefile" ] && [ -f "$tree/drivers/md/Kconfig" ] || die "$tree is not a kernel source tree"
[ "$(mkvar VERSION).$(mkvar PATCHLEVEL)" = 6.12 ] ||
	die "$tree is Linux $(mkvar VERSION).$(mkvar PATCHLEVEL), not 6.12"
grep -q '^config RUST$' "$tree/init/Kconfig" && [ -f "$tree/rust/kernel/lib.rs" ] ||
	die "$tree has no Rust support (init/Kconfig: config RUST, rust/kernel)"
for f in drivers/md/dm-init.c drivers/md/dm-bufio.c drivers/md/persistent-data/dm-space-map.h \
	lib/reed_solomon/reed_solomon.c; do
	[ -f "$tree/$f" ] || die "$tree has no $f"
done
[ -f "$tree/drivers/md/rust-dm/.rdm-files" ] || [ ! -e "$tree/drivers/md/rust-dm" ] ||
	die "$tree/drivers/md/rust-dm exists and was not installed by this script"
if [ -f "$tree/.config" ] && ! grep -qx 'CONFIG_RUST=y' "$tree/.config"; then
	say "note: $tree/.config has no CONFIG_RUST=y: the targets are offered once RUST is enabled"
fi

dest=$tree/drivers/md/rust-dm
changes=0
stage=$(mktemp -d "${TMPDIR:-/tmp}/rdm-install.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# put SRC REL: install SRC as $dest/REL unless it is already the same.
put() {
	local src=$1 rel=$2 d=$dest/$2
	if [ -f "$d" ] && [ ! -L "$d" ] && cmp -s "$src" "$d"; then
		return 0
	fi
	mkdir -p "$(dirname "$d")"
	if [ -e "$d" ] || [ -L "$d" ]; then say "updated $rel"; else say "added $rel"; fi
	cp "$src" "$d.rdm-tmp.$$"
	mv -f "$d.rdm-tmp.$$" "$d"
	changes=$((changes + 1))
}

# ---- the sources ------------------------------------------------------------
# The crates of the four targets and the abstraction they compile in; not
# the test builds (hold, clone's unordered variant), not generated files.
crates=(linear verity era clone)
(cd "$top" && find rust/dm "${crates[@]/#/rust/}" -type f \
	\( -name '*.rs' -o -name '*.c' -o -name '*.h' -o -name Kbuild.include \) \
	! -name '*_generated.rs' ! -name '*.mod.c' | LC_ALL=C sort) >"$stage/files"
while read -r f; do
	put "$top/$f" "$f"
done <"$stage/files"
# Files a previous run installed that are no longer shipped.
if [ -f "$dest/.rdm-files" ]; then
	while read -r f; do
		grep -qxF "$f" "$stage/files" && continue
		[ -e "$dest/$f" ] || continue
		rm -f "$dest/$f"
		say "removed $f"
		changes=$((changes + 1))
	done <"$dest/.rdm-files"
fi

# ---- Kconfig ----------------------------------------------------------------
cat >"$stage/Kconfig" <<'EOF'
# SPDX-License-Identifier: GPL-2.0
#
# The Rust device-mapper targets of rust-dm, installed by its
# scripts/install-builtin.sh: do not edit here, run the script again.

menu "Device-mapper targets in Rust (rust-dm)"
	depends on BLK_DEV_DM && RUST

config DM_LINEAR_RS
	tristate "linear_rs: the linear target in Rust (example)"
	help
	  The example target of rust-dm: maps a range of a device like the
	  linear target, under its own name "linear_rs". Module dm-linear-rs.

	  If unsure, say N.

config DM_VERITY_RS
	tristate "verity: dm-verity in Rust"
	depends on DM_VERITY != y || m
	select DM_BUFIO
	select REED_SOLOMON
	select REED_SOLOMON_DEC8
	select CRYPTO
	select CRYPTO_HASH
	select SYSTEM_DATA_VERIFICATION
	help
	  A drop-in for the C target DM_VERITY (the same target name "verity",
	  table, status and behaviour, forward error correction and root hash
	  signatures included), written in Rust. Module dm-verity-rs (alias
	  dm-verity).

	  Built in (Y), it serves a verity root device that dm-init creates
	  from the kernel command line (dm-mod.create=) without an initramfs.

	  Both register the target type "verity", so only one of them can be
	  built into the kernel: with DM_VERITY=y this can only be a module
	  (and one of the two modules loads). Root hash signatures use the
	  keyrings DM_VERITY_VERIFY_ROOTHASH_SIG_SECONDARY_KEYRING and
	  _PLATFORM_KEYRING select.

	  If unsure, say N.

config DM_ERA_RS
	tristate "era: dm-era in Rust"
	depends on DM_ERA != y || m
	select DM_PERSISTENT_DATA
	help
	  A drop-in for the C target DM_ERA (the same target name "era",
	  metadata format, table, status and messages), written in Rust.
	  Module dm-era-rs.

	  Both register the target type "era": with DM_ERA=y this can only be
	  a module.

	  If unsure, say N.

config DM_CLONE_RS
	tristate "clone: dm-clone in Rust"
	depends on DM_CLONE != y || m
	select DM_PERSISTENT_DATA
	help
	  A drop-in for the C target DM_CLONE (the same target name "clone",
	  metadata format, table, status and messages), written in Rust.
	  Module dm-clone-rs.

	  Both register the target type "clone": with DM_CLONE=y this can
	  only be a module.

	  If unsure, say N.

endmenu
EOF
put "$stage/Kconfig" Kconfig

# ---- Makefile ---------------------------------------------------------------
# The per-crate flags are ./Kbuild's (the lines of the four crates).
rustflags=$(grep -E '^RUSTFLAGS_rust/(linear/linear|verity/verity|era/era|clone/clone)\.o ' "$top/Kbuild") ||
	die "no RUSTFLAGS_ lines in $top/Kbuild"
{
	cat <<'EOF'
# SPDX-License-Identifier: GPL-2.0
#
# The Rust device-mapper targets of rust-dm, installed by its
# scripts/install-builtin.sh: do not edit here, run the script again.
# The objects and flags are those of rust-dm's out-of-tree ./Kbuild.

obj-$(CONFIG_DM_LINEAR_RS) += dm-linear-rs.o
dm-linear-rs-y := rust/linear/linear.o rust/linear/linear_helpers.o

obj-$(CONFIG_DM_VERITY_RS) += dm-verity-rs.o
dm-verity-rs-y := rust/verity/verity.o rust/verity/verity_helpers.o

obj-$(CONFIG_DM_ERA_RS) += dm-era-rs.o
dm-era-rs-y := rust/era/era.o rust/era/era_helpers.o

obj-$(CONFIG_DM_CLONE_RS) += dm-clone-rs.o
dm-clone-rs-y := rust/clone/clone.o rust/clone/clone_helpers.o

rust-crate-roots := rust/linear/linear.o rust/verity/verity.o rust/era/era.o \
	rust/clone/clone.o

# The abstraction's C helpers (rust/dm/helpers.c): a module (=m) compiles its
# own copy into itself (rust/<target>/<target>_helpers.c includes it); the
# targets built in (=y) share one copy in the kernel, rdm-helpers.o, and
# their <target>_helpers.c keep only their own parts (module parameters).
# The shared copy has the Reed-Solomon wrappers only if verity is built in
# (which then selects REED_SOLOMON=y): built-in code cannot call a module.
rdm-builtin := $(filter y,$(CONFIG_DM_LINEAR_RS) $(CONFIG_DM_VERITY_RS) \
	$(CONFIG_DM_ERA_RS) $(CONFIG_DM_CLONE_RS))
ifneq ($(rdm-builtin),)
obj-y += rdm-helpers.o
rdm-helpers-y := rust/dm/helpers.o
ifeq ($(CONFIG_DM_VERITY_RS),y)
CFLAGS_rust/dm/helpers.o += -DRDM_REED_SOLOMON
endif
endif
# verity's FEC: its Kconfig option selects REED_SOLOMON_DEC8 (./Kbuild adds
# this only for a kernel that has it).
CFLAGS_rust/verity/verity_helpers.o += -DRDM_REED_SOLOMON
CFLAGS_rust/linear/linear_helpers.o += $(if $(filter y,$(CONFIG_DM_LINEAR_RS)),-DRDM_HELPERS_BUILTIN)
CFLAGS_rust/verity/verity_helpers.o += $(if $(filter y,$(CONFIG_DM_VERITY_RS)),-DRDM_HELPERS_BUILTIN)
CFLAGS_rust/era/era_helpers.o += $(if $(filter y,$(CONFIG_DM_ERA_RS)),-DRDM_HELPERS_BUILTIN)
CFLAGS_rust/clone/clone_helpers.o += $(if $(filter y,$(CONFIG_DM_CLONE_RS)),-DRDM_HELPERS_BUILTIN)

# Parts of rust/dm/ compiled only into the crates that use them (./Kbuild).
EOF
	echo "$rustflags"
	cat <<'EOF'

# rust/dm/'s include paths and bindings rule, as in the out-of-tree build.
include $(src)/rust/dm/Kbuild.include
EOF
} >"$stage/Makefile"
put "$stage/Makefile" Makefile

printf '%s\n' "$(cat "$stage/files")" >"$stage/manifest"
put "$stage/manifest" .rdm-files
changes_before_hooks=$changes

# ---- the hooks in drivers/md ------------------------------------------------
# replace_with FILE NEWCONTENT-FILE: replace FILE (a new inode, renamed over).
replace_with() {
	cp "$2" "$1.rdm-tmp.$$"
	chmod --reference="$1" "$1.rdm-tmp.$$"
	mv -f "$1.rdm-tmp.$$" "$1"
	changes=$((changes + 1))
}
kc=$tree/drivers/md/Kconfig
if ! grep -qxF 'source "drivers/md/rust-dm/Kconfig"' "$kc"; then
	# Before the last line "endif # MD".
	[ "$(grep -n '^endif # MD$' "$kc" | tail -n1 | cut -d: -f1)" = "$(wc -l <"$kc")" ] ||
		die "drivers/md/Kconfig does not end with 'endif # MD'"
	{ sed '$d' "$kc"; printf '%s\n\n%s\n' 'source "drivers/md/rust-dm/Kconfig"' 'endif # MD'; } >"$stage/md-Kconfig"
	replace_with "$kc" "$stage/md-Kconfig"
	say "drivers/md/Kconfig: added source \"drivers/md/rust-dm/Kconfig\""
fi
mf=$tree/drivers/md/Makefile
if ! grep -qxF 'obj-$(CONFIG_BLK_DEV_DM)	+= rust-dm/' "$mf"; then
	{ cat "$mf"; printf '\n%s\n%s\n' '# rust-dm (scripts/install-builtin.sh): the device-mapper targets in Rust' \
		'obj-$(CONFIG_BLK_DEV_DM)	+= rust-dm/'; } >"$stage/md-Makefile"
	replace_with "$mf" "$stage/md-Makefile"
	say "drivers/md/Makefile: added obj-\$(CONFIG_BLK_DEV_DM) += rust-dm/"
fi

if [ "$changes" -eq 0 ]; then
	say "$tree: up to date (nothing changed)"
else
	say "$tree: $changes change(s) ($changes_before_hooks in drivers/md/rust-dm)"
fi
