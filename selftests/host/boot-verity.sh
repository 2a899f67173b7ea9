#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Host-side test (it boots its own QEMU guests, so it runs on the host, not
# in tools/vm-run.sh's guest): a verity root device created at boot by the
# kernel's dm-init (dm-mod.create=) and served by OUR module, loaded through
# /sbin/modprobe in an initramfs (scripts/build-initramfs.sh). See
# Documentation/boot.md.
#
#   selftests/host/boot-verity.sh
#
# Environment: RDM_BOOT_TIMEOUT (seconds per boot, default 120; 480 on the
# debug kernel, RDM_KERNEL_FLAVOUR=debug, which boots ~4x slower),
# RDM_BOOT_KEEP=1 keeps the work folder (kept anyway when a test fails),
# RDM_BOOT_MODULE (default: the project's dm-verity-rs.ko).
#
# Output is KTAP (selftests/lib/ktap.sh), ending with "# totals: P passed,
# F failed, S skipped"; the exit status is non-zero if any test failed.
set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TOP=$top
. "$top/selftests/lib/ktap.sh"
. "$top/selftests/lib/impl.sh"
. "$top/selftests/lib/boot.sh"
if [ "${RDM_KERNEL_FLAVOUR:-base}" = debug ]; then
	boot_timeout=${RDM_BOOT_TIMEOUT:-480}
else
	boot_timeout=${RDM_BOOT_TIMEOUT:-120}
fi
# The boot that must hang (test 8) is given this much to show it waits.
hang_timeout=$(((boot_timeout * 3 + 7) / 8))
module=${RDM_BOOT_MODULE:-$top/dm-verity-rs.ko}
kdir=$("$top/scripts/build-kernel.sh" --print-dir)
bzimage=$kdir/arch/x86/boot/bzImage
work=$(mktemp -d /tmp/rdm-boot-verity.XXXXXX)

# Diagnostics ("# ...") of a test are printed whatever the outcome.
KTAP_DIAG=1
exec 3>&1

# ---- images ----------------------------------------------------------------
# The root file system (lib/boot.sh build_rootfs) and its /sbin/init,
# which prints a sentinel block and powers off.
rootfs() {
	build_rootfs <<'EOF'
sed 's/^/module: /' /proc/modules
echo "marker: $(cat /marker)"
echo "dm-name: $(cat /sys/block/dm-0/dm/name)"
echo "root-ro: $(grep ' / ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1)"
# rdm.probe=1: is PARTLABEL= accepted in a table after boot too?
if grep -qw rdm.probe=1 /proc/cmdline; then
	t=$(dmsetup table vroot | sed 's/^vroot: //')
	for pair in "/dev/sda1 /dev/sda2" "PARTLABEL=vdata PARTLABEL=vhash"; do
		pt=$(echo "$t" | sed "s| 8:1 8:2 | $pair |")
		if err=$(dmsetup create rdmprobe --readonly --table "$pt" 2>&1); then
			echo "probe: ${pair%% *}: created"
			dmsetup remove rdmprobe
		else
			echo "probe: ${pair%% *}: failed: $(echo $err)"
		fi
	done
	dmesg | grep 'rdmprobe\|253:1' | sed 's/^/probe-dmesg: /'
fi
EOF
}

test_images() {
	rootfs
	local size
	verity_images
	"$top/scripts/build-initramfs.sh" --kernel "$kdir" --module "$module" "$work/initramfs.gz" 2>&1
	# The initramfs has our module, dm-bufio and reed_solomon, not the C
	# dm-verity, and the alias resolves to ours.
	local list m
	list=$(zcat "$work/initramfs.gz" | cpio -it --quiet | grep '\.ko$' | sort | tr '\n' ' ')
	m=lib/modules/$(cat "$kdir/include/config/kernel.release")
	[ "$list" = "$m/extra/dm-verity-rs.ko $m/kernel/drivers/md/dm-bufio.ko $m/kernel/lib/reed_solomon/reed_solomon.ko " ] ||
		{ echo "unexpected modules in the initramfs: $list"; return 1; }
	diag "rootfs: squashfs $size bytes, $blocks blocks; root hash $roothash"
	# Export for the later tests (they run in subshells).
	declare -p token roothash salt blocks sectors >"$work/vars"
}

# ---- booting (lib/boot.sh: boot LOG APPEND [QEMU ARGS...]) ----------------
# A verity table over DATA and HASH.
table() { echo "0 $sectors verity 1 $1 $2 4096 4096 $blocks 1 sha256 $roothash $salt"; }

# The boot reached the verity root and it is ours.
check_booted() { # LOG DATADEVNUM HASHDEVNUM
	local log=$1 tab
	tr -d '\r' <"$log" | has '^RDM-BOOT-END$' || {
		echo "no sentinel block from the verity root's /sbin/init; console tail:"
		tr -d '\r' <"$log" | tail -n 30
		return 1
	}
	tab=$(sentinel "$log" table)
	[ "$tab" = "vroot: $(table "$2" "$3")" ] || { echo "table: $tab"; echo "expected: vroot: $(table "$2" "$3")"; return 1; }
	# Served by ours: pinned, the C dm_verity not loaded (selftests/lib/impl.sh).
	sentinel "$log" module | impl_check_modules verity rust
	[ "$(sentinel "$log" marker)" = "$token" ] || { echo "marker mismatch: $(sentinel "$log" marker) != $token"; return 1; }
	[ "$(sentinel "$log" dm-name)" = vroot ] || { echo "dm name: $(sentinel "$log" dm-name)"; return 1; }
	[ "$(sentinel "$log" root-ro)" = ro ] || { echo "root not read-only"; return 1; }
	tr -d '\r' <"$log" | has 'device-mapper: ioctl: dm-0 (vroot) is ready' || { echo "dm-init did not report vroot ready"; return 1; }
	no_kernel_reports "$log"
}

timing() { # LOG WHAT
	diag "$2: $(head -n1 "$1.time") s wall (TCG), kernel: dm-init start $(ktime "$1" 'device-mapper: init: waiting for all') s, vroot ready $(ktime "$1" 'is ready') s, /init $(ktime "$1" 'Run /init') s, root /sbin/init at $(sentinel "$1" uptime) s uptime"
}

usb_disk=(-device qemu-xhci,id=xhci -drive "if=none,id=usbdisk,file=$work/usb.img,format=raw,readonly=on"
	-device usb-storage,bus=xhci.0,drive=usbdisk)

# 2: the plain case: virtio disks are probed before late_initcall.
test_virtio() {
	. "$work/vars"
	local log="$work/virtio.log"
	boot "$log" "dm-mod.create=\"vroot,,,ro,$(table /dev/vda /dev/vdb)\" root=/dev/dm-0" \
		-initrd "$work/initramfs.gz" \
		-drive "file=$work/data.img,if=virtio,format=raw,readonly=on" \
		-drive "file=$work/hash.img,if=virtio,format=raw,readonly=on"
	check_booted "$log" 254:0 254:16
	timing "$log" virtio
}

# 3: without an initramfs, request_module() at late_initcall finds no
# /sbin/modprobe (the root file system is mounted only after the initcalls):
# the target type is unknown and the kernel cannot mount root=/dev/dm-0.
test_no_initramfs() {
	. "$work/vars"
	local log="$work/no-initramfs.log"
	boot "$log" "dm-mod.create=\"vroot,,,ro,$(table /dev/vda /dev/vdb)\" root=/dev/dm-0" \
		-drive "file=$work/data.img,if=virtio,format=raw,readonly=on" \
		-drive "file=$work/hash.img,if=virtio,format=raw,readonly=on"
	local l
	# Not booted, and our module not loaded.
	expect_lines "$log" 'device-mapper: table: [0-9]+:[0-9]+: verity: unknown target type' \
		'Kernel panic - not syncing: VFS: Unable to mount root fs' \
		! 'RDM-BOOT-BEGIN' 'dm_verity_rs' || return 1
	l=$(tr -d '\r' <"$log")
	no_kernel_reports "$log" 'Kernel panic - not syncing: VFS: Unable to mount root fs'
	echo "$l" | grep -E 'device-mapper: (table|ioctl|init)' | sed 's/^/# dm-init said: /'
	diag "no-initramfs: $(head -n1 "$log.time") s wall, panic at $(ktime "$log" 'Kernel panic') s"
}

# 4: the race: the USB disk is probed asynchronously (delay_use), after
# dm-init ran; without dm-mod.waitfor the table cannot be built.
test_usb_no_waitfor() {
	. "$work/vars"
	local log="$work/usb-nowait.log" l
	boot "$log" "usb-storage.delay_use=3 dm-mod.create=\"vroot,,,ro,$(table /dev/sda1 /dev/sda2)\" root=/dev/dm-0 rdm.rootwait=15" \
		-initrd "$work/initramfs.gz" "${usb_disk[@]}"
	# The module itself was found and loaded (only the device was missing),
	# and the disk did come, later.
	expect_lines "$log" 'verity: Data device lookup failed' \
		'^RDM-INITRAMFS: FAIL: /dev/dm-0 did not appear within 15s' \
		'^RDM-INITRAMFS: modules: .*dm_verity_rs' 'sda: sda1 sda2' \
		! 'RDM-BOOT-BEGIN' 'dm-0 \(vroot\) is ready' || return 1
	l=$(tr -d '\r' <"$log")
	no_kernel_reports "$log"
	echo "$l" | grep -E 'device-mapper: (table|ioctl|init)' | sed 's/^/# dm-init said: /'
	diag "usb without waitfor: dm-init failed at $(ktime "$log" 'Data device lookup failed') s, sda partitions at $(ktime "$log" 'sda: sda1 sda2') s, $(head -n1 "$log.time") s wall"
}

# 5: the same with dm-mod.waitfor: dm-init waits for the partitions.
test_usb_waitfor() {
	. "$work/vars"
	local log="$work/usb-wait.log"
	boot "$log" "usb-storage.delay_use=3 dm-mod.waitfor=/dev/sda1,/dev/sda2 dm-mod.create=\"vroot,,,ro,$(table /dev/sda1 /dev/sda2)\" root=/dev/dm-0" \
		-initrd "$work/initramfs.gz" "${usb_disk[@]}"
	check_booted "$log" 8:1 8:2
	tr -d '\r' <"$log" | has 'device-mapper: init: waiting for device /dev/sda1' || { echo "no 'waiting for device'"; return 1; }
	timing "$log" "usb, waitfor=/dev/sda1,/dev/sda2"
}

# 6: PARTLABEL= in waitfor and in the table itself (early_lookup_bdev()).
test_usb_partlabel() {
	. "$work/vars"
	local log="$work/usb-partlabel.log"
	boot "$log" "usb-storage.delay_use=3 dm-mod.waitfor=PARTLABEL=vdata,PARTLABEL=vhash dm-mod.create=\"vroot,,,ro,$(table PARTLABEL=vdata PARTLABEL=vhash)\" root=/dev/dm-0 rdm.probe=1" \
		-initrd "$work/initramfs.gz" "${usb_disk[@]}"
	# dmsetup table shows the devices as major:minor.
	local tab
	tab=$(sentinel "$log" table)
	[ "$tab" = "vroot: $(table 8:1 8:2)" ] || { echo "table: $tab"; tr -d '\r' <"$log" | tail -n 30; return 1; }
	check_booted "$log" 8:1 8:2
	timing "$log" "usb, waitfor=PARTLABEL=vdata,PARTLABEL=vhash"
	sentinel "$log" probe | sed 's/^/# after boot, dmsetup create with /'
	# After boot (SYSTEM_RUNNING) only paths and major:minor are accepted.
	sentinel "$log" probe | has '^/dev/sda1: created$' || { echo "probe with /dev/sda1 failed"; return 1; }
	sentinel "$log" probe | has '^PARTLABEL=vdata: failed' || { echo "PARTLABEL accepted after boot?"; return 1; }
}

# 7: a corrupted data block on the verity root is refused by our target
# (the table still loads: verity checks on read).
test_corrupt() {
	. "$work/vars"
	local log="$work/corrupt.log"
	cp "$work/data.img" "$work/data-bad.img"
	# Flip the first byte of the squashfs superblock: mount must fail with EIO.
	printf '\x00' | dd of="$work/data-bad.img" bs=1 seek=0 conv=notrunc status=none
	boot "$log" "dm-mod.create=\"vroot,,,ro,$(table /dev/vda /dev/vdb)\" root=/dev/dm-0 rdm.rootwait=15" \
		-initrd "$work/initramfs.gz" \
		-drive "file=$work/data-bad.img,if=virtio,format=raw,readonly=on" \
		-drive "file=$work/hash.img,if=virtio,format=raw,readonly=on"
	local l
	expect_lines "$log" 'dm-0 \(vroot\) is ready' \
		'verity: [0-9]+:[0-9]+: data block 0 is corrupted' \
		'^RDM-INITRAMFS: FAIL: mount' \
		! 'RDM-BOOT-BEGIN' || return 1
	l=$(tr -d '\r' <"$log")
	no_kernel_reports "$log"
	echo "$l" | grep -m2 -E 'verity.*corrupted' | sed 's/^/# kernel: /'
}

# 8: dm-init waits for a waitfor device without a deadline: a device that
# never comes blocks the boot before /init (dm-init.c: the fsleep() loop).
test_waitfor_missing() {
	. "$work/vars"
	local log="$work/waitfor-missing.log" l
	boot_timeout=$hang_timeout boot "$log" "dm-mod.waitfor=PARTLABEL=nosuch dm-mod.create=\"vroot,,,ro,$(table /dev/vda /dev/vdb)\" root=/dev/dm-0" \
		-initrd "$work/initramfs.gz" \
		-drive "file=$work/data.img,if=virtio,format=raw,readonly=on" \
		-drive "file=$work/hash.img,if=virtio,format=raw,readonly=on" && { echo "the guest did not hang"; return 1; }
	l=$(tr -d '\r' <"$log")
	echo "$l" | has 'device-mapper: init: waiting for device PARTLABEL=nosuch' ||
		{ echo "no 'waiting for device'"; echo "$l" | tail -n 20; return 1; }
	! echo "$l" | has -E 'Run /init|is ready|RDM-' || { echo "the boot went on"; return 1; }
	no_kernel_reports "$log"
	diag "waitfor=PARTLABEL=nosuch: still waiting after 45 s wall (killed by the test's deadline), last line: $(echo "$l" | grep -a '^\[' | tail -n1)"
}

no_images() { echo "no images (the first test failed)"; return 1; }

suite_tests() {
	diag "kernel $bzimage, module $module, work $work"
	run_test images test_images
	local -a rest=(virtio-dm-mod-create test_virtio no-initramfs-unknown-target test_no_initramfs
		usb-late-without-waitfor-fails test_usb_no_waitfor usb-waitfor-devname test_usb_waitfor
		usb-waitfor-partlabel test_usb_partlabel corrupted-root-refused test_corrupt
		waitfor-missing-device-blocks-boot test_waitfor_missing)
	local i
	for ((i = 0; i < ${#rest[@]}; i += 2)); do
		if ktap_counting || [ -f "$work/vars" ]; then
			run_test "${rest[i]}" "${rest[i + 1]}"
		else
			run_test "${rest[i]}" no_images
		fi
	done
}

boot_suite boot-verity
