#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the guest (see tools/vm-run.sh): runs CMD, then checks the kernel
# log for reports, and prints the verdict line the host looks for.
top=$(cd "$(dirname "$0")/.." && pwd)
dmesg -n 7 2>/dev/null || true
"$@"
rc=$?
if dmesg | grep -qE "$(cat "$top/tools/kernel-report-patterns")"; then
	echo "guest-wrap: kernel log has a report:" >&2
	dmesg | grep -E -A20 "$(cat "$top/tools/kernel-report-patterns")" | head -n 60 >&2
	rc=97
fi
sync
echo "GUEST-WRAP rc=$rc"
exit "$rc"
