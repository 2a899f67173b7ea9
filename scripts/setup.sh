#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Idempotent host set-up for building and testing the Rust device-mapper
# targets on Debian bookworm (as root). Installs Debian packages by name,
# bindgen (crates.io) and virtme-ng (PyPI) into the project cache, and
# unpacks the kernel source. Safe to run again: each step is skipped when
# its result is already present.
set -euo pipefail

# has [GREP-OPTION...] PATTERN: whether standard input has a line matching
# PATTERN. Reads all of it: grep -q reading a pipe under pipefail fails at
# random, when grep exits at the first match and the producer gets SIGPIPE.
has() { local n; n=$(grep -c "$@") || true; [ "${n:-0}" -gt 0 ]; }

here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"

log() { printf '[setup] %s\n' "$*" >&2; }

packages=(
	linux-source-6.12 rustc-web rust-web-src rust-web-clippy rustfmt-web cargo-web
	clang-19 lld-19 llvm-19 libclang-19-dev
	flex bison bc libelf-dev libssl-dev cpio kmod xz-utils python3-venv
	qemu-system-x86 busybox-static
	dmsetup cryptsetup-bin fio thin-provisioning-tools e2fsprogs squashfs-tools
	util-linux openssl keyutils
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | has '^install ok installed$' ||
		missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$RDM_CACHE"

# bindgen: Debian's is too old for 6.12; the kernel documents 0.65+.
if [ ! -x "$BINDGEN" ]; then
	log "installing bindgen-cli $BINDGEN_VERSION into $RDM_CACHE/bindgen"
	cargo install --locked --quiet bindgen-cli --version "$BINDGEN_VERSION" \
		--root "$RDM_CACHE/bindgen"
fi

# virtme-ng: the kernel community's VM runner, pinned, in a private venv.
if [ ! -x "$VNG" ]; then
	log "installing virtme-ng $VNG_VERSION into $RDM_CACHE/venv"
	python3 -m venv "$RDM_CACHE/venv"
	"$RDM_CACHE/venv/bin/pip" install -q "virtme-ng==$VNG_VERSION"
fi

# Kernel source, unpacked once per source version.
if [ ! -f "$KSRC/Makefile" ]; then
	log "unpacking $KSRC_TARBALL"
	rm -rf "$KSRC.tmp"
	mkdir -p "$KSRC.tmp"
	tar -C "$KSRC.tmp" -xf "$KSRC_TARBALL"
	mv "$KSRC.tmp"/linux-source-6.12 "$KSRC"
	rmdir "$KSRC.tmp"
fi
log "ok"
