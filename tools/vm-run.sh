#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs a command as root in a fresh QEMU guest on the test kernel.
#
#   tools/vm-run.sh [--kernel DIR] [--timeout SEC] [--memory SIZE] [--cpus N]
#                [--log FILE] [--append ARG] [--] CMD [ARG...]
#
# The guest is booted with virtme-ng: the host's root filesystem is shared
# read-only (copy-on-write), so the project directory is visible at the same
# path and the host's dmsetup, veritysetup, fio, era_* tools run in the guest.
# QEMU runs under TCG: KVM hangs on these machines (no vmx/svm), so it is used
# only when a quick probe shows it works (RDM_KVM=1 forces it on, 0 off).
#
# RDM_QEMU_OPTS: extra QEMU options (vng --qemu-opts), e.g. "-icount
# shift=0" for a guest whose clock counts instructions (see
# Documentation/bench.md, "Profiling verity").
#
# Exit status: CMD's exit status, or
#   97  the guest kernel reported an oops, BUG, WARNING, KASAN, lockdep or
#       hung-task report (whatever CMD returned);
#   98  the guest did not report CMD's result (crash, hang, timeout).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/env.sh"

kernel="" timeout=1800 memory=2G cpus=2 log="" append=()
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) kernel=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--memory) memory=$2; shift 2 ;;
	--cpus) cpus=$2; shift 2 ;;
	--log) log=$2; shift 2 ;;
	--append) append+=(--append "$2"); shift 2 ;;
	--) shift; break ;;
	-*) echo "vm-run: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || { echo "usage: vm-run [options] [--] CMD [ARG...]" >&2; exit 2; }
[ -n "$kernel" ] || kernel=$("$top/scripts/build-kernel.sh" --print-dir)
[ -f "$kernel/arch/x86/boot/bzImage" ] || { echo "vm-run: no kernel in $kernel (run scripts/build-kernel.sh)" >&2; exit 2; }

kvm=(--disable-kvm)
case "${RDM_KVM:-probe}" in
1) kvm=() ;;
0) ;;
*) if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then kvm=(); fi ;;
esac

qopts=()
[ -z "${RDM_QEMU_OPTS:-}" ] || qopts=(--qemu-opts "$RDM_QEMU_OPTS")

export PATH="$(dirname "$VNG"):$PATH"
# virtme-ng fills $kernel/.virtme_mods (links to the kernel's modules, then
# depmod) when modules.order is newer than it; two guests started at once
# (make check) would both do it, each removing the other's links. Done
# here once, under a lock, so that virtme-ng finds it up to date.
(
	flock 9
	dep=$kernel/.virtme_mods/lib/modules/0.0.0/modules.dep
	if [ -f "$kernel/modules.order" ] && { [ ! -f "$dep" ] || [ "$kernel/modules.order" -nt "$dep" ]; }; then
		cd "$kernel" && virtme-prep-kdir-mods >/dev/null
	fi
) 9>"$kernel/.virtme_mods.lock"
[ -n "$log" ] || log=$(mktemp /tmp/vm-run.XXXXXX.log)
# The command line the guest runs: the wrapper, then CMD, shell-quoted;
# with the cache folder (RDM_CACHE: the kernels, their test certificates).
cmd=$(printf '%q ' env "RDM_CACHE=$RDM_CACHE" "$top/tools/guest-wrap.sh" "$@")

status=0
timeout --kill-after=10 "$timeout" \
	"$VNG" --run "$kernel" "${kvm[@]}" --user root --cpus "$cpus" --memory "$memory" \
	--cwd "$top" --force-9p --verbose "${append[@]}" "${qopts[@]}" --exec "$cmd" </dev/null 2>&1 |
	tee "$log" | sed -u -n '/^\[ *[0-9.]*\] /!p' || status=$?

# The guest wrapper prints its verdict; no verdict means the guest died.
verdict=$(grep -a -o 'GUEST-WRAP rc=[0-9]*' "$log" | tail -n1 | cut -d= -f2 || true)
# The host sees the whole kernel log on the console: check it too, in case the
# guest could not run its own check.
if grep -a -qE "$(cat "$top/tools/kernel-report-patterns")" "$log"; then
	echo "vm-run: the guest kernel reported a problem:" >&2
	grep -a -E -A20 "$(cat "$top/tools/kernel-report-patterns")" "$log" | head -n 60 >&2
	exit 97
fi
if [ -z "$verdict" ]; then
	echo "vm-run: the guest did not finish (status $status); console log: $log" >&2
	tail -n 40 "$log" >&2
	exit 98
fi
exit "$verdict"
