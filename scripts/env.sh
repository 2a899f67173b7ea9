# SPDX-License-Identifier: GPL-2.0
# Shared settings for the scripts; sourced, not run. Every value can be
# overridden from the environment.

# Outside the repo, and visible inside the virtme-ng guest (which hides
# /var/cache and /var/tmp behind tmpfs mounts).
RDM_CACHE=${RDM_CACHE:-/var/lib/rust-dm}
LLVM=${LLVM:--19}
RUSTC=${RUSTC:-/usr/bin/rustc}
BINDGEN_VERSION=0.69.5
BINDGEN=${BINDGEN:-$RDM_CACHE/bindgen/bin/bindgen}
VNG_VERSION=1.42
VNG=${VNG:-$RDM_CACHE/venv/bin/vng}
KSRC_TARBALL=${KSRC_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
KSRC=${KSRC:-$RDM_CACHE/linux-source-6.12}
CARGO=${CARGO:-/usr/bin/cargo}
CLIPPY_DRIVER=${CLIPPY_DRIVER:-/usr/bin/clippy-driver}
RUSTFMT=${RUSTFMT:-/usr/bin/rustfmt}
