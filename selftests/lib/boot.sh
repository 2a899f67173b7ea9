# SPDX-License-Identifier: GPL-2.0
#
# Helpers of the host boot tests (selftests/host/*.sh: each boots its own
# QEMU and reads the guest's console log). Sourcing this file defines
# functions only; they read $top (the project) and $work (the test's
# folder).
#
#   diag TEXT                 a diagnostic line ("# TEXT")
#   make_gpt_disk OUT DATA HASH
#                             a GPT disk image: DATA as partition 1 "vdata",
#                             HASH as partition 2 "vhash" (lib/gpt_disk.py)
#   no_kernel_reports LOG [ALLOWED-REGEX]
#                             no oops, BUG, WARNING, panic... in LOG
#                             (tools/kernel-report-patterns) but ALLOWED
#   sentinel LOG KEY          the value the root's /sbin/init printed for
#                             KEY between RDM-BOOT-BEGIN and RDM-BOOT-END
#   ktime LOG REGEX           the kernel timestamp of the first line
#                             matching REGEX
#   expect_lines LOG REGEX... [! REGEX...]
#                             each REGEX (grep -E) before the `!` matches a
#                             line of LOG, none after it does (a boot that
#                             failed with these lines, and not these);
#                             otherwise says which REGEX does not hold
#                             (with LOG's last 30 lines) and fails
#   build_rootfs <INIT        $work/rootfs: busybox, dmsetup and its
#                             libraries, /marker with a random $token, and
#                             /sbin/init read from standard input (it prints
#                             the sentinel block and powers off)
#   verity_images             $work/data.img (squashfs of $work/rootfs),
#                             its hash tree $work/hash.img (veritysetup:
#                             4 KiB blocks, sha256; sets roothash, salt,
#                             blocks, sectors, size) and $work/usb.img (the
#                             two as GPT partitions)
#   boot LOG APPEND [QEMU ARGS...]
#                             boots $bzimage under TCG with a deadline
#                             ($boot_timeout s); the wall time goes to
#                             LOG.time. The machine is q35 (as
#                             tools/vm-run.sh's guests): the default i440fx
#                             machine's ACPI _PRT method loops, and on the
#                             debug kernel under TCG that loop passes
#                             ACPI's 30 s limit, the PCI devices get no
#                             interrupt and the boot hangs.

diag() { echo "# $*"; }

make_gpt_disk() { # OUT DATA HASH
	python3 "$top/selftests/lib/gpt_disk.py" "$@"
}

no_kernel_reports() { # LOG [ALLOWED-REGEX]
	local hits patterns
	patterns=$(cat "$top/tools/kernel-report-patterns")
	hits=$(tr -d '\r' <"$1" | grep -aE "$patterns" | { if [ -n "${2:-}" ]; then grep -avE "$2"; else cat; fi; } || true)
	[ -z "$hits" ] || { echo "kernel reported a problem:"; echo "$hits" | head -n 20; return 1; }
}

sentinel() { # LOG KEY
	tr -d '\r' <"$1" | sed -n '/^RDM-BOOT-BEGIN$/,/^RDM-BOOT-END$/p' | sed -n "s/^$2: //p"
}

ktime() { tr -d '\r' <"$1" | grep -a -m1 -E "$2" | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p'; }

expect_lines() { # LOG REGEX... [! REGEX...]
	local l re absent=0
	l=$(tr -d '\r' <"$1")
	shift
	for re in "$@"; do
		if [ "$re" = '!' ]; then
			absent=1
		elif [ $absent -eq 0 ]; then
			has -E -- "$re" <<<"$l" || {
				echo "no line matches '$re'; console tail:"
				tail -n 30 <<<"$l"
				return 1
			}
		elif has -E -- "$re" <<<"$l"; then
			echo "a line matches '$re': $(grep -a -m1 -E -- "$re" <<<"$l")"
			return 1
		fi
	done
}

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
	# /sbin/init: the mounts, then between the sentinel lines the uptime,
	# the table and what the test's part (stdin) prints; then power off.
	{
		cat <<'EOF'
#!/bin/sh
export PATH=/bin:/sbin DM_DISABLE_UDEV=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
[ -c /dev/console ] || mount -t devtmpfs devtmpfs /dev
echo "RDM-BOOT-BEGIN"
echo "uptime: $(cut -d' ' -f1 /proc/uptime)"
dmsetup table | sed 's/^/table: /'
EOF
		cat
		cat <<'EOF'
echo "RDM-BOOT-END"
sync
poweroff -f
EOF
	} >"$r/sbin/init"
	chmod 755 "$r/sbin/init"
}

verity_images() {
	mksquashfs "$work/rootfs" "$work/data.img" -noappend -comp gzip -all-root -quiet >/dev/null
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
}

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

# boot_suite NAME: runs the suite's tests (ktap_suite NAME suite_tests), then
# removes the work folder $work unless a test failed or RDM_BOOT_KEEP=1;
# fails when a test did.
boot_suite() {
	ktap_suite "$1" suite_tests
	if [ "$TESTS_FAILED" -eq 0 ] && [ "${RDM_BOOT_KEEP:-0}" != 1 ]; then
		rm -rf "$work"
	else
		echo "# logs kept in $work"
	fi
	[ "$TESTS_FAILED" -eq 0 ]
}
