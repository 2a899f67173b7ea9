#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds a minimal initramfs (gzip'ed newc cpio) that lets the kernel's
# dm-init (dm-mod.create=) load OUR verity module, then switches to the
# verity root. See Documentation/boot.md.
#
#   scripts/build-initramfs.sh [--kernel DIR] [--module KO] OUTPUT
#
# Contents:
#   /bin/busybox (busybox-static) and links to the applets used below;
#   /sbin/modprobe -> busybox: dm-init's request_module("dm-verity") runs it
#       (as "/sbin/modprobe -q -- dm-verity", CONFIG_MODPROBE_PATH) before
#       /init starts; busybox's modprobe reads modules.dep and modules.alias;
#   /lib/modules/<release>/extra/dm-verity-rs.ko (ours, `alias dm-verity`)
#   /lib/modules/<release>/kernel/drivers/md/dm-bufio.ko and
#   /lib/modules/<release>/kernel/lib/reed_solomon/reed_solomon.ko (its
#       dependencies: the hash cache, and FEC's decoder) and the index files of `depmod -b <root> <release>`. The C
#       dm-verity.ko is deliberately NOT included: the alias must resolve to
#       dm_verity_rs and nothing else;
#   /dev/console, /init.
#
# /init mounts proc, sysfs and devtmpfs, waits for the root device (root=,
# default /dev/dm-0; the device dm-init created) for rdm.rootwait= seconds
# (default 15), mounts it read-only on /newroot (rootfstype= if given) and
# execs `switch_root /newroot /sbin/init` (rdm.init= overrides). On any
# failure it prints a line starting "RDM-INITRAMFS: FAIL:" and powers off.
#
# Idempotent: the archive is rebuilt from scratch and replaces OUTPUT
# atomically. No downloads: busybox-static, kmod (depmod) and cpio are
# Debian packages.
set -euo pipefail

# has [GREP-OPTION...] PATTERN: whether standard input has a line matching
# PATTERN. Reads all of it: grep -q reading a pipe under pipefail fails at
# random, when grep exits at the first match and the producer gets SIGPIPE.
has() { local n; n=$(grep -c "$@") || true; [ "${n:-0}" -gt 0 ]; }

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)

kernel="" module="$top/dm-verity-rs.ko"
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) kernel=$2; shift 2 ;;
	--module) module=$2; shift 2 ;;
	--) shift; break ;;
	-*) echo "build-initramfs: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -eq 1 ] || { echo "usage: build-initramfs.sh [--kernel DIR] [--module KO] OUTPUT" >&2; exit 2; }
out=$1
[ -n "$kernel" ] || kernel=$("$here/build-kernel.sh" --print-dir)

die() { echo "build-initramfs: $*" >&2; exit 1; }
busybox=/bin/busybox
[ -x "$busybox" ] && "$busybox" --list | has -x modprobe ||
	die "$busybox with a modprobe applet is missing (apt-get install busybox-static)"
file -L "$busybox" 2>/dev/null | has 'statically linked' ||
	ldd "$busybox" 2>&1 | has 'not a dynamic' || die "$busybox is not static (busybox-static)"
command -v depmod >/dev/null || die "depmod missing (kmod)"
command -v cpio >/dev/null || die "cpio missing"
release=$(cat "$kernel/include/config/kernel.release") || die "no kernel build in $kernel"
bufio="$kernel/drivers/md/dm-bufio.ko"
[ -f "$bufio" ] || die "$bufio missing (CONFIG_DM_BUFIO=m)"
rs="$kernel/lib/reed_solomon/reed_solomon.ko"
[ -f "$rs" ] || die "$rs missing (CONFIG_REED_SOLOMON=m)"
[ -f "$module" ] || die "$module missing (run make)"
vermagic=$(modinfo -F vermagic "$module" | awk '{print $1}')
[ "$vermagic" = "$release" ] || die "$module is built for $vermagic, kernel is $release"

stage=$(mktemp -d "${TMPDIR:-/tmp}/rdm-initramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT

mkdir -p "$stage"/{bin,sbin,dev,proc,sys,newroot,etc,lib/modules/"$release"/{extra,kernel/drivers/md,kernel/lib/reed_solomon}}
cp "$busybox" "$stage/bin/busybox"
for a in sh ash cat echo ls mkdir mount umount sleep usleep grep sed tail head \
	dmesg test [ switch_root poweroff reboot insmod lsmod uname; do
	ln -s busybox "$stage/bin/$a"
done
for a in modprobe depmod; do ln -s ../bin/busybox "$stage/sbin/$a"; done
mknod -m 600 "$stage/dev/console" c 5 1
mknod -m 666 "$stage/dev/null" c 1 3

cp "$module" "$stage/lib/modules/$release/extra/dm-verity-rs.ko"
cp "$bufio" "$stage/lib/modules/$release/kernel/drivers/md/dm-bufio.ko"
cp "$rs" "$stage/lib/modules/$release/kernel/lib/reed_solomon/reed_solomon.ko"
# depmod wants the built-in list (to tell built-in from missing modules) and
# an order file: ours lists just the three modules.
for f in modules.builtin modules.builtin.modinfo; do
	[ -f "$kernel/$f" ] && cp "$kernel/$f" "$stage/lib/modules/$release/" || true
done
printf '%s\n' kernel/drivers/md/dm-bufio.ko kernel/lib/reed_solomon/reed_solomon.ko extra/dm-verity-rs.ko \
	>"$stage/lib/modules/$release/modules.order"
depmod -b "$stage" "$release"
grep -qx 'alias dm-verity dm_verity_rs' "$stage/lib/modules/$release/modules.alias" ||
	die "depmod made no 'alias dm-verity dm_verity_rs'"
dep=$(grep '^extra/dm-verity-rs.ko:' "$stage/lib/modules/$release/modules.dep") || true
[[ " $dep " == *" kernel/drivers/md/dm-bufio.ko "* && " $dep " == *" kernel/lib/reed_solomon/reed_solomon.ko "* ]] ||
	die "depmod made no dependency dm-verity-rs -> dm-bufio, reed_solomon ($dep)"

cat >"$stage/init" <<'EOF'
#!/bin/sh
# rust-dm initramfs /init (scripts/build-initramfs.sh)
export PATH=/bin:/sbin
fail() {
	echo "RDM-INITRAMFS: FAIL: $*"
	echo "RDM-INITRAMFS: modules: $(cat /proc/modules 2>/dev/null | cut -d' ' -f1 | tr '\n' ' ')"
	echo "RDM-INITRAMFS: block devices: $(ls /sys/class/block 2>/dev/null | tr '\n' ' ')"
	sync
	poweroff -f
	sleep 5
	exit 1
}
mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys || fail "mount /sys"
mount -t devtmpfs devtmpfs /dev || fail "mount /dev"

root=/dev/dm-0 wait=15 fstype="" init=/sbin/init
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	root=*) root=${arg#root=} ;;
	rootfstype=*) fstype=${arg#rootfstype=} ;;
	rdm.rootwait=*) wait=${arg#rdm.rootwait=} ;;
	rdm.init=*) init=${arg#rdm.init=} ;;
	esac
done

echo "RDM-INITRAMFS: waiting up to ${wait}s for $root"
tenths=0
while [ ! -b "$root" ]; do
	[ $tenths -lt $((wait * 10)) ] || fail "$root did not appear within ${wait}s"
	usleep 100000
	tenths=$((tenths + 1))
done
echo "RDM-INITRAMFS: $root is there after $((tenths * 100)) ms; uptime $(cut -d' ' -f1 /proc/uptime) s"

if [ -n "$fstype" ]; then
	mount -t "$fstype" -o ro "$root" /newroot || fail "mount -t $fstype -o ro $root /newroot"
else
	mount -o ro "$root" /newroot || fail "mount -o ro $root /newroot"
fi
[ -x "/newroot$init" ] || fail "no $init on $root"

umount /proc
umount /sys
if [ -d /newroot/dev ]; then
	mount --move /dev /newroot/dev || fail "mount --move /dev"
else
	umount /dev
fi
echo "RDM-INITRAMFS: switch_root to $root"
exec switch_root /newroot "$init"
fail "switch_root failed"
EOF
chmod 755 "$stage/init"

# Same inputs, same bytes: fixed times, owners, inode numbers.
find "$stage" -mindepth 1 -exec touch -h -d @0 {} +
tmp="$out.tmp.$$"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -9 -n >"$tmp"
mv -f "$tmp" "$out"
echo "build-initramfs: $out ($(stat -c %s "$out") bytes, $release, $(basename "$module") + dm-bufio.ko + reed_solomon.ko)" >&2
