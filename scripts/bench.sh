#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make bench`: set-up, kernel (cached), modules, then one guest boot that
# runs tools/bench-guest.sh (every Rust target against its C twin on the same
# RAM disks). The guest prints its results folder on stdout between
# BENCH-DATA-BEGIN/END (the project is read-only in the guest); this script
# unpacks it into out/bench/ and runs tools/bench-report.py, which prints the
# table and writes out/bench/results.{json,md,svg}. See Documentation/bench.md.
#
# BENCH_* variables are passed to the guest (see tools/bench-guest.sh);
# BENCH_MEMORY sets the guest memory (default 2G), BENCH_CPUS its vCPUs (2;
# with -icount, 1 makes per-I/O figures repeat to ~0.2%); BENCH_NO_BUILD=1 measures
# the .ko files as they are, without `make modules` (recorded in the results);
# BENCH_README=1 puts the table in Documentation/bench.md (tools/bench-report.py --readme).
# RDM_QEMU_OPTS="-icount shift=0" (passed to QEMU by tools/vm-run.sh): the
# guest clock counts executed instructions, so throughput and ratios no
# longer depend on the host's load (recorded in the results). The guest
# then runs 2-3 times longer on a busy host than in real time: BENCH_TIMEOUT,
# the guest's deadline in seconds, is 1800 by default and 5400 with -icount.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/out/bench"
start=$(date +%s)

"$top/scripts/setup.sh"
kdir=$("$top/scripts/build-kernel.sh")
if [ "${BENCH_NO_BUILD:-0}" = 1 ]; then
	echo "bench: BENCH_NO_BUILD=1: measuring the .ko files as they are" >&2
elif ! make -s -C "$top" KDIR="$kdir" modules; then
	echo "bench: the module build failed; nothing measured (BENCH_NO_BUILD=1 measures the existing .ko files)" >&2
	exit 1
fi

rm -rf "$out"
mkdir -p "$out"

# What vm-run will use (same probe as tools/vm-run.sh).
accel=tcg
case "${RDM_KVM:-probe}" in
1) accel=kvm ;;
0) ;;
*) if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then accel=kvm; fi ;;
esac

# Provenance of what is measured.
{
	echo "accel=$accel"
	echo "qemu_opts=${RDM_QEMU_OPTS:-}"
	echo "host_load_before=$(cut -d' ' -f1 /proc/loadavg)"
	echo "no_build=${BENCH_NO_BUILD:-0}"
	echo "git=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$top" diff --quiet HEAD -- rust Kbuild 2>/dev/null || echo -dirty)"
	echo "host_cpus=$(nproc)"
	echo "host_cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
	for ko in "$top"/*.ko; do
		[ -f "$ko" ] && echo "ko_$(basename "$ko" .ko)=$(sha256sum "$ko" | cut -c1-16)"
	done
} >"$out/host-meta.txt"

envs=()
for v in ${!BENCH_@}; do
	case $v in BENCH_MEMORY | BENCH_CPUS | BENCH_NO_BUILD | BENCH_README | BENCH_TIMEOUT) ;; *) envs+=("$v=${!v}") ;; esac
done

echo "bench: one $accel guest boot; log: $out/guest.log"
set +e
deadline=1800
case "${RDM_QEMU_OPTS:-}" in *icount*) deadline=5400 ;; esac
"$top/tools/vm-run.sh" --kernel "$kdir" --memory "${BENCH_MEMORY:-2G}" --cpus "${BENCH_CPUS:-2}" --timeout "${BENCH_TIMEOUT:-$deadline}" \
	--log "$out/guest-console.log" -- env "${envs[@]}" "$top/tools/bench-guest.sh" |
	tee "$out/guest.log" | grep -a --line-buffered -v '^BENCH-B64 '
rc=${PIPESTATUS[0]}
set -e

# Unpack the guest's results folder.
sum=$(sed -n 's/^BENCH-DATA-BEGIN sha256=\([0-9a-f]*\).*/\1/p' "$out/guest.log" | tail -n1)
if [ -z "$sum" ] || ! grep -aq '^BENCH-DATA-END' "$out/guest.log"; then
	echo "bench: the guest printed no results (vm-run exit $rc); see $out/guest.log" >&2
	exit 1
fi
sed -n '/^BENCH-DATA-BEGIN/,/^BENCH-DATA-END/ s/^BENCH-B64 //p' "$out/guest.log" |
	tr -d '\r' | base64 -d >"$out/guest-results.tgz"
if [ "$(sha256sum <"$out/guest-results.tgz" | cut -d' ' -f1)" != "$sum" ]; then
	echo "bench: results corrupted on the console (checksum mismatch); see $out/guest.log" >&2
	exit 1
fi
tar -C "$out" -xzf "$out/guest-results.tgz"
rm -f "$out/guest-results.tgz"

echo "host_load_after=$(cut -d' ' -f1 /proc/loadavg)" >>"$out/host-meta.txt"
echo "wall_seconds=$(($(date +%s) - start))" >>"$out/host-meta.txt"
readme=()
[ "${BENCH_README:-0}" != 1 ] || readme=(--readme "$top/Documentation/bench.md")
"$top/tools/bench-report.py" "$out" --wall-seconds $(($(date +%s) - start)) "${readme[@]}"
[ "${BENCH_README:-0}" = 1 ] && echo "bench: the table in Documentation/bench.md is updated" ||
	echo "bench: to put this table in Documentation/bench.md: tools/bench-report.py $out --readme Documentation/bench.md"
echo "bench: total $(($(date +%s) - start)) s; results in $out/"
if [ "$rc" -ne 0 ]; then
	echo "bench: the guest run failed (vm-run exit $rc: failed fio runs or a kernel report)" >&2
	exit "$rc"
fi
