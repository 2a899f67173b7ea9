#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Host-side test (it boots its own QEMU guests, so it runs on the host, not
# in tools/vm-run.sh's guest): our targets BUILT INTO the kernel
# (scripts/install-builtin.sh, the "builtin" kernel flavour of
# scripts/build-kernel.sh), and a verity root that the kernel's dm-init
# creates from dm-mod.create= with NO initramfs: the kernel mounts the
# verity device as its root itself. See Documentation/boot.md.
#
#   selftests/host/boot-builtin.sh
#
# Builds (or updates: the install script again and an incremental make) the
# builtin kernel first. Environment: RDM_BOOT_TIMEOUT (seconds per boot,
# default 120: the builtin kernel is the base one plus our targets),
# RDM_BOOT_KEEP=1 keeps the work folder (kept anyway when a test fails).
#
# Output is KTAP (selftests/lib/ktap.sh), ending with "# totals: P passed,
# F failed, S skipped"; the exit status is non-zero if any test failed.
set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$top/selftests/lib/ktap.sh"
. "$top/selftests/lib/boot.sh"
boot_timeout=${RDM_BOOT_TIMEOUT:-120}
work=$(mktemp -d /tmp/rdm-boot-builtin.XXXXXX)
kdir="" bzimage=""

# Diagnostics ("# ...") of a test are printed whatever the outcome.
KTAP_DIAG=1

# ---- 1: the kernel -----------------------------------------------------------
# Built (or updated) with our four targets =y, the C twins =m; one rdm_*
# helper of each name in vmlinux (rdm-helpers.o), our initcalls in it, the
# C verity not in it.
test_kernel() {
	local t0 m s
	t0=$(date +%s)
	# The build's progress lines go to the console as well (fd 3: this
	# script's stderr), a first build takes a while.
	RDM_KERNEL_FLAVOUR=builtin "$top/scripts/build-kernel.sh" 2>&1 >"$work/kdir" |
		tee "$work/kernel.err" | sed -u 's/^/# boot-builtin: /' >&3 ||
		{ cat "$work/kernel.err"; return 1; }
	kdir=$(cat "$work/kdir")
	[ -d "$kdir" ] || { echo "no kernel folder: '$kdir'"; return 1; }
	sed -n 's/^\[kernel\] \(built in\|updated in\|cached\)/# kernel: \1/p' "$work/kernel.err"
	diag "builtin kernel $kdir ready in $(($(date +%s) - t0)) s"
	for s in CONFIG_DM_LINEAR_RS=y CONFIG_DM_VERITY_RS=y CONFIG_DM_ERA_RS=y CONFIG_DM_CLONE_RS=y \
		CONFIG_DM_INIT=y CONFIG_DM_BUFIO=y CONFIG_REED_SOLOMON=y; do
		grep -qxF "$s" "$kdir/.config" || { echo "$kdir/.config: no $s"; return 1; }
	done
	for s in DM_VERITY DM_ERA DM_CLONE; do
		! grep -qx "CONFIG_$s=y" "$kdir/.config" || { echo "the C twin CONFIG_$s=y"; return 1; }
	done
	m=$kdir/System.map
	for s in __dm_linear_rs_init __dm_verity_rs_init __dm_era_rs_init __dm_clone_rs_init dm_init_init; do
		awk -v s="$s" '$3 == s {n++} END {exit n == 1 ? 0 : 1}' "$m" || { echo "$m: not one $s"; return 1; }
	done
	# The C verity's constructor is not in the kernel.
	! awk '$3 == "verity_ctr" {f = 1} END {exit !f}' "$m" || { echo "$m: the C verity_ctr is built in"; return 1; }
	# The abstraction's helpers: once each (the link would fail on a
	# duplicate, the check says which object they come from).
	awk '$3 ~ /^rdm_/ {print $3}' "$m" | sort | uniq -d >"$work/dups"
	[ ! -s "$work/dups" ] || { echo "duplicate helpers:"; cat "$work/dups"; return 1; }
	grep -q ' rdm_bio_set_dev$' "$m" || { echo "no rdm_bio_set_dev in $m"; return 1; }
	grep -q ' rdm_rs_pool_create$' "$m" || { echo "no rdm_rs_pool_create (verity's FEC) in $m"; return 1; }
	[ -f "$kdir/drivers/md/rust-dm/rust/dm/helpers.o" ] || { echo "no rust/dm/helpers.o (rdm-helpers)"; return 1; }
	diag "$(awk '$3 ~ /^rdm_/' "$m" | wc -l) rdm_* symbols, each once, from drivers/md/rust-dm/rust/dm/helpers.o (rdm-helpers)"
	bzimage=$kdir/arch/x86/boot/bzImage
	declare -p kdir bzimage >"$work/kvars"
}

# ---- images ----------------------------------------------------------------
# The root file system (lib/boot.sh build_rootfs) and its /sbin/init,
# which prints a sentinel block and powers off.
rootfs() {
	# No /lib/modules: nothing can be loaded, what serves the root is in
	# the kernel. The device is read twice (the page cache dropped between):
	# with try_verify_in_tasklet, our target verifies the second read in
	# BH and counts it (verified_in_bh, a parameter the C target lacks).
	build_rootfs <<'EOF'
dmsetup targets | sed 's/^/target: /'
sed 's/^/module: /' /proc/modules
for m in dm_verity_rs dm_verity; do
	[ -d /sys/module/$m ] && echo "sysmodule: $m"
done
echo "marker: $(cat /marker)"
echo "dm-name: $(cat /sys/block/dm-0/dm/name)"
echo "dm-dev: $(cat /sys/block/dm-0/dev)"
echo "root: $(grep ' / ' /proc/mounts | cut -d' ' -f1-4)"
cat /dev/dm-0 >/dev/null
echo 3 >/proc/sys/vm/drop_caches
cat /dev/dm-0 >/dev/null
echo "verified-in-bh: $(cat /sys/module/dm_verity_rs/parameters/verified_in_bh 2>&1)"
dmesg | grep -E 'calling  (__dm_[a-z_]*_rs_init|dm_init_init)\+' | sed 's/^/initcall: /'
EOF
}

test_images() {
	rootfs
	local size
	verity_images
	diag "rootfs: squashfs $size bytes, $blocks blocks; root hash $roothash"
	declare -p token roothash salt blocks sectors >"$work/vars"
}

# ---- booting (lib/boot.sh: boot LOG APPEND [QEMU ARGS...]) ----------------
# A verity table over DATA and HASH; try_verify_in_tasklet makes our target
# count what it verifies (verified_in_bh).
table() { echo "0 $sectors verity 1 $1 $2 4096 4096 $blocks 1 sha256 $roothash $salt 1 try_verify_in_tasklet"; }

# The kernel mounts the root itself: root=, its type, read-only.
root_args="root=/dev/dm-0 rootfstype=squashfs ro"

# The kernel mounted the verity root, without an initramfs, and OUR
# built-in target served it.
check_booted() { # LOG DATADEVNUM HASHDEVNUM
	local log=$1 l n
	l=$(tr -d '\r' <"$log")
	echo "$l" | has '^RDM-BOOT-END$' || {
		echo "no sentinel block from the verity root's /sbin/init; console tail:"
		echo "$l" | tail -n 30
		return 1
	}
	! echo "$l" | has -E 'Run /init|Unpacking initramfs|Trying to unpack rootfs' || { echo "an initramfs ran?"; return 1; }
	echo "$l" | has "VFS: Mounted root (squashfs filesystem) readonly on device $(sentinel "$log" dm-dev)\.\$" ||
		{ echo "the kernel did not mount dm-0 ($(sentinel "$log" dm-dev)) as root"; return 1; }
	[ "$(sentinel "$log" table)" = "vroot: $(table "$2" "$3")" ] ||
		{ echo "table: $(sentinel "$log" table)"; echo "expected: vroot: $(table "$2" "$3")"; return 1; }
	[ "$(sentinel "$log" root | cut -d, -f1)" = "/dev/root / squashfs ro" ] || { echo "root mount: $(sentinel "$log" root)"; return 1; }
	[ "$(sentinel "$log" marker)" = "$token" ] || { echo "marker mismatch: $(sentinel "$log" marker) != $token"; return 1; }
	[ "$(sentinel "$log" dm-name)" = vroot ] || { echo "dm name: $(sentinel "$log" dm-name)"; return 1; }
	# Ours is in the kernel, not a module; the C one is nowhere.
	[ -z "$(sentinel "$log" module)" ] || { echo "modules loaded: $(sentinel "$log" module)"; return 1; }
	[ "$(sentinel "$log" sysmodule)" = dm_verity_rs ] || { echo "/sys/module: $(sentinel "$log" sysmodule | tr '\n' ' ')"; return 1; }
	for t in verity era clone linear_rs; do
		sentinel "$log" target | has "^$t " || { echo "target $t not registered"; return 1; }
	done
	# ... and it is what verified the root's blocks.
	n=$(sentinel "$log" verified-in-bh)
	[[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -gt 0 ] || { echo "verified_in_bh: '$n'"; return 1; }
	echo "$l" | has 'device-mapper: ioctl: dm-0 (vroot) is ready' || { echo "dm-init did not report vroot ready"; return 1; }
	no_kernel_reports "$log"
	diag "root served by dm_verity_rs (built in): verified_in_bh $n, no module loaded, /sys/module: $(sentinel "$log" sysmodule)"
}

timing() { # LOG WHAT
	diag "$2: $(head -n1 "$1.time") s wall (TCG); kernel: vroot ready $(ktime "$1" 'is ready') s, root mounted $(ktime "$1" 'VFS: Mounted root') s, /sbin/init at $(sentinel "$1" uptime) s uptime"
}

usb_disk() { echo -device qemu-xhci,id=xhci -drive "if=none,id=usbdisk,file=$work/usb.img,format=raw,readonly=on" \
	-device usb-storage,bus=xhci.0,drive=usbdisk; }

# 3: virtio disks (probed before late_initcall): the verity root mounts
# with no initramfs, served by our built-in target, whose initcall ran
# before dm-init's (initcall_debug; log_buf_len keeps the early lines).
test_virtio() {
	. "$work/kvars"
	. "$work/vars"
	local log="$work/virtio.log" calls ours dminit
	boot "$log" "dm-mod.create=\"vroot,,,ro,$(table /dev/vda /dev/vdb)\" $root_args initcall_debug log_buf_len=4M" \
		-drive "file=$work/data.img,if=virtio,format=raw,readonly=on" \
		-drive "file=$work/hash.img,if=virtio,format=raw,readonly=on"
	check_booted "$log" 254:0 254:16
	calls=$(sentinel "$log" initcall)
	echo "$calls" | sed 's/^/# initcall order: /'
	ours=$(echo "$calls" | grep -n 'calling  __dm_verity_rs_init+' | cut -d: -f1)
	dminit=$(echo "$calls" | grep -n 'calling  dm_init_init+' | cut -d: -f1)
	[ -n "$ours" ] && [ -n "$dminit" ] || { echo "initcalls not in the log: $calls"; return 1; }
	[ "$ours" -lt "$dminit" ] || { echo "__dm_verity_rs_init ran after dm_init_init"; return 1; }
	timing "$log" "virtio, no initramfs"
}

# 4: the late USB disk (usb-storage probes asynchronously, after delay_use):
# without dm-mod.waitfor dm-init runs before the disk exists, the table
# cannot be built, and the kernel has no root to mount (rootwait=10: it
# waits 10 s for /dev/dm-0, which never comes, then panics).
test_usb_no_waitfor() {
	. "$work/kvars"
	. "$work/vars"
	local log="$work/usb-nowait.log" l
	# shellcheck disable=SC2046
	boot "$log" "usb-storage.delay_use=3 dm-mod.create=\"vroot,,,ro,$(table /dev/sda1 /dev/sda2)\" $root_args rootwait=10" \
		$(usb_disk)
	expect_lines "$log" 'verity: Data device lookup failed' \
		'Kernel panic - not syncing: VFS: Unable to mount root fs' \
		! 'RDM-BOOT-BEGIN' 'dm-0 \(vroot\) is ready' || return 1
	l=$(tr -d '\r' <"$log")
	no_kernel_reports "$log" 'Kernel panic - not syncing: VFS: Unable to mount root fs'
	echo "$l" | grep -E 'device-mapper: (table|ioctl|init)' | sed 's/^/# dm-init said: /'
	diag "usb without waitfor: dm-init failed at $(ktime "$log" 'Data device lookup failed') s, sda partitions at $(ktime "$log" 'sda: sda1 sda2') s, panic at $(ktime "$log" 'Kernel panic') s"
}

# 5 and 6: with dm-mod.waitfor=DATA,HASH dm-init waits for the late disk;
# 5 names its partitions by /dev path, 6 by PARTLABEL= (early_lookup_bdev()),
# in waitfor and in the table.
usb_waitfor_boot() { # NAME DATA HASH
	. "$work/kvars"
	. "$work/vars"
	local log="$work/usb-$1.log"
	# shellcheck disable=SC2046
	boot "$log" "usb-storage.delay_use=3 dm-mod.waitfor=$2,$3 dm-mod.create=\"vroot,,,ro,$(table "$2" "$3")\" $root_args" \
		$(usb_disk)
	check_booted "$log" 8:1 8:2
	tr -d '\r' <"$log" | has "device-mapper: init: waiting for device $2" || { echo "no 'waiting for device'"; return 1; }
	timing "$log" "usb, waitfor=$2,$3"
}
test_usb_waitfor() { usb_waitfor_boot wait /dev/sda1 /dev/sda2; }
test_usb_partlabel() { usb_waitfor_boot partlabel PARTLABEL=vdata PARTLABEL=vhash; }

# 7: a corrupted block of the verity root: the device is created (verity
# checks on read), our target refuses the block, the kernel cannot mount it.
test_corrupt() {
	. "$work/kvars"
	. "$work/vars"
	local log="$work/corrupt.log" l
	cp "$work/data.img" "$work/data-bad.img"
	# The first byte of the squashfs superblock.
	printf '\x00' | dd of="$work/data-bad.img" bs=1 seek=0 conv=notrunc status=none
	boot "$log" "dm-mod.create=\"vroot,,,ro,$(table /dev/vda /dev/vdb)\" $root_args" \
		-drive "file=$work/data-bad.img,if=virtio,format=raw,readonly=on" \
		-drive "file=$work/hash.img,if=virtio,format=raw,readonly=on"
	expect_lines "$log" 'dm-0 \(vroot\) is ready' \
		'verity: [0-9]+:[0-9]+: data block 0 is corrupted' \
		'Kernel panic - not syncing: VFS: Unable to mount root fs' \
		! 'RDM-BOOT-BEGIN' || return 1
	l=$(tr -d '\r' <"$log")
	no_kernel_reports "$log" 'Kernel panic - not syncing: VFS: Unable to mount root fs'
	echo "$l" | grep -m2 -E 'verity.*corrupted|VFS: Cannot open root' | sed 's/^/# kernel: /'
}

no_images() { echo "no kernel or no images (an earlier test failed)"; return 1; }

suite_tests() {
	diag "work $work, boot deadline ${boot_timeout}s"
	run_test builtin-kernel test_kernel
	run_test images test_images
	local -a rest=(virtio-dm-mod-create-no-initramfs test_virtio
		usb-late-without-waitfor-fails test_usb_no_waitfor usb-waitfor-devname test_usb_waitfor
		usb-waitfor-partlabel test_usb_partlabel corrupted-root-refused test_corrupt)
	local i
	for ((i = 0; i < ${#rest[@]}; i += 2)); do
		if ktap_counting || { [ -f "$work/kvars" ] && [ -f "$work/vars" ]; }; then
			run_test "${rest[i]}" "${rest[i + 1]}"
		else
			run_test "${rest[i]}" no_images
		fi
	done
}

# The kernel build's progress goes to fd 3 (test_kernel): the console.
exec 3>&2
boot_suite boot-builtin
