#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build (or reuse) the lean Rust-enabled test kernel.
#
# The kernel is built out of the unpacked, unpatched linux-source-6.12 tree
# into $RDM_CACHE/kernel/<key>, where <key> hashes everything that decides
# the result: the source package version, the config fragment, the
# toolchain versions and this recipe. A finished build leaves a `.done`
# stamp; a later run with the same key reuses it. Prints the build
# directory on stdout.
#
# The compiler's output goes to $build/build.log, not to the console: the
# console shows the stages and a progress line (objects compiled against
# the count of the last build of this flavour); a failure prints the log's
# tail.
#
# Usage: build-kernel.sh [--print-dir]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
. "$here/progress.sh"

log() { printf '[kernel] %s\n' "$*" >&2; }

# The flavour: "base" (the lean test kernel), "debug" (KASAN, lockdep, ...:
# scripts/kconfig/debug.config on top) or "builtin" (our targets built in:
# scripts/kconfig/builtin.config on top).
#
# Every flavour builds in place, in a copy of the tree (hard links to
# $KSRC's files: the build and the install script replace files, never write
# into them), so that the command lines Kbuild records name sources by
# relative paths (srctree ".") and an object is valid in any copy that has
# the same sources and the same config symbols.
#
# The builtin kernel contains OUR sources, so its key does not cover them:
# scripts/install-builtin.sh installs them into its copy of the tree. Its
# first build starts from the base kernel's objects (copied beside fresh
# hard links to the sources): only what the builtin options change is
# compiled again (the Rust crates, whose cfgs follow the config, our
# targets, drivers/md's archive, the link): minutes instead of a second full
# build. A build with the same key is updated on every use instead of
# rebuilt: the install script again (it replaces the changed files only)
# and an incremental make (our objects and the link).
flavour=${RDM_KERNEL_FLAVOUR:-base}
fragments=("$here/kconfig/rust-dm.config")
case "$flavour" in
base) ;;
debug) fragments+=("$here/kconfig/debug.config") ;;
builtin) fragments+=("$here/kconfig/builtin.config") ;;
*) log "unknown flavour '$flavour' (base, debug, builtin)"; exit 2 ;;
esac
recipe=2	# bump when this script changes what it builds

srcver=$(dpkg-query -W -f='${Version}' linux-source-6.12)
# kernel_key FRAGMENT...: the cache key of a build with these fragments.
kernel_key() {
	{
		echo "recipe=$recipe src=$srcver"
		"$RUSTC" --version
		"clang$LLVM" --version | head -n1
		"$BINDGEN" --version
		cat "$@"
	} | sha256sum | cut -c1-16
}
key=$(kernel_key "${fragments[@]}")
build="$RDM_CACHE/kernel/$key"

if [ "${1:-}" = "--print-dir" ]; then
	echo "$build"
	exit 0
fi

kmake() {
	make -C "$build" LLVM="$LLVM" RUSTC="$RUSTC" BINDGEN="$BINDGEN" "$@"
}
jobs=$(($(nproc) + 1))

# One build or update at a time in a build folder.
mkdir -p "$RDM_CACHE/kernel"
exec {lock}>"$build.lock"
flock "$lock"

if [ -f "$build/.done" ]; then
	if [ "$flavour" = builtin ]; then
		start=$(date +%s)
		PROGRESS_TAG=kernel PROGRESS_LOG=$build/build.log
		printf '==== %s: updating the builtin kernel\n' "$(date -u '+%F %T UTC')" >>"$PROGRESS_LOG"
		out=$("$here/install-builtin.sh" "$build" 2>&1) ||
			{ log "install-builtin.sh failed:"; printf '%s\n' "$out" >&2; exit 1; }
		printf '%s\n' "$out" >>"$PROGRESS_LOG"
		changed=$(printf '%s\n' "$out" | grep -c '^install-builtin: \(added\|updated\|removed\)') || true
		log "cached: $build; $changed file(s) of ours changed: incremental make"
		logged kmake -j"$jobs" bzImage modules
		log "updated in $(($(date +%s) - start)) s"
	else
		log "cached: $build"
	fi
	echo "$build"
	exit 0
fi

# The objects in the build folder, the measure of progress; the count of the
# last finished build of this flavour (recorded in its .objects) is the
# expected total, else the count of the 6.12 builds of 2026-12.
# (find fails on the build's temporary folders vanishing under it: not an error.)
count_objects() { { find "$build" -name '*.o' 2>/dev/null || true; } | wc -l; }
expected_objects() {
	local f n= flavour_of
	for f in $(ls -t "$RDM_CACHE"/kernel/*/.objects 2>/dev/null); do
		read -r flavour_of n <"$f" || continue
		[ "$flavour_of" = "$flavour" ] && [ -n "$n" ] && { echo "$n"; return; }
	done
	case "$flavour" in debug) echo 1810 ;; *) echo 1780 ;; esac
}

log "building the $flavour kernel in $build (key $key)"
start=$(date +%s)
seeded=
# A copy of the tree: hard links to the sources.
if [ ! -f "$build/.tree" ]; then
	log "copying $KSRC (hard links)"
	rm -rf "$build"
	mkdir -p "$build"
	cp -al "$KSRC/." "$build/"
	# The builtin flavour starts from the base kernel's objects: what
	# the base build created (files with one link, so not the tree's
	# sources; symbolic links), copied with their times, so that make
	# finds them up to date.
	base=$RDM_CACHE/kernel/$(kernel_key "$here/kconfig/rust-dm.config")
	if [ "$flavour" = builtin ] && [ -f "$base/.done" ]; then
		log "seeding from the base kernel's objects ($base)"
		(cd "$base" && find . \( -type f -links 1 -o -type l \) ! -name .done ! -name .objects \
			! -name build.log -print0 | cpio -p0dmu --quiet "$build")
		echo "$base" >"$build/.seeded"
	fi
	touch "$build/.tree"
fi
[ -f "$build/.seeded" ] && seeded=$(cat "$build/.seeded")
PROGRESS_TAG=kernel PROGRESS_LOG=$build/build.log
printf '==== %s: building the %s kernel (key %s)\n' "$(date -u '+%F %T UTC')" "$flavour" "$key" >>"$PROGRESS_LOG"
log "compiler output: $PROGRESS_LOG"

if [ "$flavour" = builtin ]; then
	log "installing our targets (scripts/install-builtin.sh)"
	logged "$here/install-builtin.sh" "$build"
fi
# A test signing key: the kernel trusts its certificate (built into the
# system keyring), and the verity tests sign root hashes with the key.
if [ ! -f "$build/certs-test/verity-test.pem" ]; then
	mkdir -p "$build/certs-test"
	openssl req -new -x509 -newkey rsa:2048 -nodes -days 36500 -sha256 \
		-subj "/CN=rust-dm verity test key/" \
		-keyout "$build/certs-test/verity-test.key" \
		-out "$build/certs-test/verity-test.pem" 2>/dev/null
fi
printf 'CONFIG_SYSTEM_TRUSTED_KEYS="%s"\n' "$build/certs-test/verity-test.pem" \
	>"$build/certs-test/trusted-keys.config"

log "configuring (tinyconfig + ${fragments[*]##*/})"
logged kmake rustavailable
logged kmake tinyconfig
KCONFIG_CONFIG="$build/.config" logged "$KSRC/scripts/kconfig/merge_config.sh" -m -O "$build" \
	"$build/.config" "${fragments[@]}" "$build/certs-test/trusted-keys.config"
logged kmake olddefconfig

# Every option the fragment asks for must have survived olddefconfig.
bad=0
while IFS= read -r line; do
	case "$line" in CONFIG_*=y|CONFIG_*=m|CONFIG_*=\"*\") ;; *) continue ;; esac
	if ! grep -qxF "$line" "$build/.config"; then
		log "config: wanted '$line', got '$(grep "^${line%%=*}=" "$build/.config" || echo unset)'"
		bad=1
	fi
done < <(cat "${fragments[@]}")
[ "$bad" = 0 ] || { log "config fragment not satisfied"; exit 1; }

if [ -n "$seeded" ]; then
	log "compiling what the $flavour options change (from the objects of $seeded)"
	logged kmake -j"$jobs" bzImage modules
else
	with_progress "compiling, objects" "$(expected_objects)" count_objects \
		kmake -j"$jobs" bzImage modules
fi
echo "$flavour $(count_objects)" >"$build/.objects"
touch "$build/.done"
log "built in $(($(date +%s) - start)) s"
echo "$build"
