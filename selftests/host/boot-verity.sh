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
report_patterns=$(cat "$top/tools/kernel-report-patterns")
work=$(mktemp -d /tmp/rdm-boot-verity.XXXXXX)

# Diagnostics ("# ...") of a test are printed whatever the outcome.
KTAP_DIAG=1
exec 3>&1
diag() { echo "# $*"; }

# ---- images ----------------------------------------------------------------
# The root file system: busybox, /sbin/init, a marker with a random token,
# dmsetup and its libraries. /sbin/init prints a sentinel block and powers off.
build_rootfs() {
	local r="$work/rootfs" a
	rm -rf "$r"
	mkdir -p "$r"/{bin,sbin,proc,sys,dev,etc,tmp}
	cp /bin/busybox "$r/bin/busybox"
	for a in sh cat echo mount umount poweroff sync sed cut tr ls grep sleep dmesg; do
		ln -s busybox "$r/bin/$a"
	done
	cp "$(command -v dmsetup)" "$r/sbin/dmsetup"
	# The libraries at the paths the dynamic linker looks at (bookworm is
	# merged-/usr: /lib -> usr/lib, so copy the files, not the links).
	ldd "$(command -v dmsetup)" | grep -o '/[^ ]*' | sort -u | while read -r a; do
		mkdir -p "$r$(dirname "$a")"
		cp -L "$a" "$r$a"
	done
	token=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
	echo "$token" >"$r/marker"
	cat >"$r/sbin/init" <<'EOF'
#!/bin/sh
export PATH=/bin:/sbin DM_DISABLE_UDEV=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
[ -c /dev/console ] || mount -t devtmpfs devtmpfs /dev
echo "RDM-BOOT-BEGIN"
echo "uptime: $(cut -d' ' -f1 /proc/uptime)"
dmsetup table | sed 's/^/table: /'
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
echo "RDM-BOOT-END"
sync
poweroff -f
EOF
	chmod 755 "$r/sbin/init"
}

# GPT disk with the data (partition 1, "vdata") and the hash (partition 2,
# "vhash") image: written here because the usual tools (sfdisk, sgdisk) are
# not installed; the layout is what sfdisk would make (1 MiB alignment).
make_gpt_disk() { # OUT DATA HASH
	python3 - "$@" <<'EOF'
import struct, sys, uuid, zlib
out, data, hashimg = sys.argv[1:4]
blobs = [open(data, 'rb').read(), open(hashimg, 'rb').read()]
names = ['vdata', 'vhash']
linux_fs = uuid.UUID('0fc63daf-8483-4772-8e79-3d69d8477de4')
S = 512
parts, lba = [], 2048
for b in blobs:
    n = (len(b) + S - 1) // S
    parts.append((lba, lba + n - 1))
    lba = (lba + n + 2047) // 2048 * 2048
total = lba + 2048
entries = bytearray(128 * 128)
for i, ((first, last), name) in enumerate(zip(parts, names)):
    entries[i * 128:(i + 1) * 128] = struct.pack('<16s16sQQQ72s', linux_fs.bytes_le,
        uuid.uuid4().bytes_le, first, last, 0, name.encode('utf-16-le'))
ecrc = zlib.crc32(entries)
disk_guid = uuid.uuid4().bytes_le
def header(cur, backup, entries_lba):
    h = struct.pack('<8sIIIIQQQQ16sQIII', b'EFI PART', 0x10000, 92, 0, 0, cur, backup,
                    34, total - 34, disk_guid, entries_lba, 128, 128, ecrc)
    h = h[:16] + struct.pack('<I', zlib.crc32(h)) + h[20:]
    return h + bytes(S - len(h))
img = bytearray(total * S)
mbr = bytearray(S)
mbr[446:462] = struct.pack('<B3sB3sII', 0, b'\x00\x02\x00', 0xee, b'\xff\xff\xff', 1,
                           min(total - 1, 0xffffffff))
mbr[510:512] = b'\x55\xaa'
img[0:S] = mbr
img[S:2 * S] = header(1, total - 1, 2)
img[2 * S:2 * S + len(entries)] = entries
img[(total - 33) * S:(total - 1) * S] = entries
img[(total - 1) * S:] = header(total - 1, 1, total - 33)
for (first, _), b in zip(parts, blobs):
    img[first * S:first * S + len(b)] = b
open(out, 'wb').write(img)
EOF
}

test_images() {
	build_rootfs
	mksquashfs "$work/rootfs" "$work/data.img" -noappend -comp gzip -all-root -quiet >/dev/null
	local size
	size=$(stat -c %s "$work/data.img")
	[ $((size % 4096)) -eq 0 ] || { echo "squashfs size $size is not a multiple of 4096"; return 1; }
	rm -f "$work/hash.img"
	veritysetup format --data-block-size 4096 --hash-block-size 4096 --hash sha256 \
		"$work/data.img" "$work/hash.img" >"$work/format.txt"
	roothash=$(awk '/^Root hash:/ {print $3}' "$work/format.txt")
	salt=$(awk '/^Salt:/ {print $2}' "$work/format.txt")
	blocks=$(awk '/^Data blocks:/ {print $3}' "$work/format.txt")
	if [ -z "$roothash" ] || [ -z "$salt" ] || [ "$blocks" != $((size / 4096)) ]; then
		echo "unexpected veritysetup output:"; cat "$work/format.txt"; return 1
	fi
	sectors=$((blocks * 8))
	make_gpt_disk "$work/usb.img" "$work/data.img" "$work/hash.img"
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

# ---- booting ---------------------------------------------------------------
# boot LOG APPEND [QEMU ARGS...]: boots the test kernel under TCG with a
# deadline; prints the wall time to $LOG.time. The machine is q35 (as
# tools/vm-run.sh's guests): the default i440fx machine's ACPI _PRT method
# loops, and on the debug kernel under TCG that loop passes ACPI's 30 s
# limit, the PCI devices get no interrupt and the boot hangs.
boot() {
	local log=$1 append=$2 t0 t1 rc=0
	shift 2
	t0=$(date +%s.%N)
	timeout --kill-after=10 "$boot_timeout" qemu-system-x86_64 -accel tcg -machine q35 -m 1G -smp 2 \
		-nographic -no-reboot -monitor none -serial stdio -display none \
		-kernel "$bzimage" "$@" -append "console=ttyS0 panic=-1 $append" \
		</dev/null >"$log" 2>&1 || rc=$?
	t1=$(date +%s.%N)
	echo "$t0 $t1" | awk '{printf "%.1f\n", $2 - $1}' >"$log.time"
	echo "qemu exit $rc" >>"$log.time"
	[ $rc -ne 124 ] && [ $rc -ne 137 ] || { echo "boot timed out after ${boot_timeout}s (log $log)"; return 1; }
}

# A verity table over DATA and HASH.
table() { echo "0 $sectors verity 1 $1 $2 4096 4096 $blocks 1 sha256 $roothash $salt"; }

# no_kernel_reports LOG [ALLOWED-REGEX]: no oops, BUG, WARNING, panic...
no_kernel_reports() {
	local hits
	hits=$(tr -d '\r' <"$1" | grep -aE "$report_patterns" | { if [ -n "${2:-}" ]; then grep -avE "$2"; else cat; fi; } || true)
	[ -z "$hits" ] || { echo "kernel reported a problem:"; echo "$hits" | head -n 20; return 1; }
}

sentinel() { # LOG KEY: the value printed by the root's /sbin/init
	tr -d '\r' <"$1" | sed -n '/^RDM-BOOT-BEGIN$/,/^RDM-BOOT-END$/p' | sed -n "s/^$2: //p"
}

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

# Kernel timestamp of the first console line matching REGEX.
ktime() { tr -d '\r' <"$1" | grep -a -m1 -E "$2" | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p'; }

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
	l=$(tr -d '\r' <"$log")
	echo "$l" | has -E 'device-mapper: table: [0-9]+:[0-9]+: verity: unknown target type' ||
		{ echo "no 'unknown target type'"; echo "$l" | tail -n 30; return 1; }
	echo "$l" | has 'Kernel panic - not syncing: VFS: Unable to mount root fs' ||
		{ echo "no VFS panic"; echo "$l" | tail -n 30; return 1; }
	! echo "$l" | has 'RDM-BOOT-BEGIN' || { echo "booted without the module?"; return 1; }
	! echo "$l" | has 'dm_verity_rs' || { echo "our module was loaded"; return 1; }
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
	l=$(tr -d '\r' <"$log")
	echo "$l" | has 'verity: Data device lookup failed' ||
		{ echo "no 'Data device lookup failed'"; echo "$l" | tail -n 30; return 1; }
	echo "$l" | has '^RDM-INITRAMFS: FAIL: /dev/dm-0 did not appear within 15s' ||
		{ echo "no FAIL line from the initramfs"; echo "$l" | tail -n 30; return 1; }
	! echo "$l" | has 'RDM-BOOT-BEGIN' || { echo "booted?"; return 1; }
	! echo "$l" | has 'dm-0 (vroot) is ready' || { echo "vroot created?"; return 1; }
	# The module itself was found and loaded: only the device was missing.
	echo "$l" | has '^RDM-INITRAMFS: modules: .*dm_verity_rs' || { echo "dm_verity_rs not loaded"; return 1; }
	# ... and the disk did come, later.
	echo "$l" | has 'sda: sda1 sda2' || { echo "the USB disk never appeared"; return 1; }
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
	l=$(tr -d '\r' <"$log")
	echo "$l" | has 'dm-0 (vroot) is ready' || { echo "vroot not created"; return 1; }
	echo "$l" | has -E 'verity: [0-9]+:[0-9]+: data block 0 is corrupted' ||
		{ echo "no corruption report"; echo "$l" | tail -n 30; return 1; }
	echo "$l" | has '^RDM-INITRAMFS: FAIL: mount' || { echo "no mount FAIL"; echo "$l" | tail -n 20; return 1; }
	! echo "$l" | has 'RDM-BOOT-BEGIN' || { echo "booted a corrupted root"; return 1; }
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

ktap_suite boot-verity suite_tests
if [ "$TESTS_FAILED" -eq 0 ] && [ "${RDM_BOOT_KEEP:-0}" != 1 ]; then
	rm -rf "$work"
else
	echo "# logs kept in $work"
fi
[ "$TESTS_FAILED" -eq 0 ]
