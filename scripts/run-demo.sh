#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make run`: installs what is missing, builds the test kernel (cached) and
# the modules, and runs tools/demo in a fresh guest.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup.sh"
kdir=$("$top/scripts/build-kernel.sh")
make -s -C "$top" KDIR="$kdir" modules
exec "$top/tools/vm-run" --kernel "$kdir" -- "$top/tools/demo"
