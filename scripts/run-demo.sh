#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make run`: installs what is missing (scripts/setup.sh), builds the test
# kernel (once: it is cached) and the modules, and runs tools/demo.sh in one
# fresh QEMU guest: verity, era, clone and linear_rs, each proving that our
# module served its device. Exits non-zero if any proof fails.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup.sh"
kdir=$("$top/scripts/build-kernel.sh")
echo "[demo] building the modules against $kdir" >&2
make -s -C "$top" KDIR="$kdir" modules
echo "[demo] booting a QEMU guest for the demo" >&2
exec "$top/tools/vm-run.sh" --kernel "$kdir" --timeout 900 -- "$top/tools/demo.sh"
