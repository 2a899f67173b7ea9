#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# clone after hydration, C against Rust in one guest boot, with a perf
# profile of 1M sequential writes: a check of the per-I/O CPU cost that
# does not depend on the host's load when the guest clock counts
# instructions:
#
#   RDM_QEMU_OPTS="-icount shift=0" tools/vm-run.sh --log /tmp/p.log -- tools/clone-profile.sh
#
# brd RAM disks (128 MiB: source ram0 random, destination ram1, metadata
# ram2), 64 KiB regions, fully hydrated (threshold 64, batch 16) before
# fio runs 1M write/read (iodepth 4) and 4k randwrite/randread (iodepth
# 16), 4 s each, direct I/O, libaio. C and Rust alternate, CLONE_PROF_REPS
# (2) times each. Prints "RES impl profile read_iops N write_iops N" lines,
# each with the table, status and module that served it, and perf's top
# symbols (cpu-clock) per implementation. First, unless CLONE_PROF_DURING=0,
# 4k random writes on a new clone while it hydrates (see `during`);
# CLONE_PROF_AFTER=0: only that. CLONE_PROF_PERF=0: no perf profile;
# CLONE_PROF_PERF_RW: its fio workload, "write 1M 4" (rw, bs, iodepth).
# CLONE_PROF_IMPLS: what to compare, "c rust" by default; NAME=PATH.ko is a
# Rust build of another tree, reported as NAME (one module at a time).
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
export DM_DISABLE_UDEV=1
modprobe brd rd_nr=4 rd_size=131072
dd if=/dev/urandom of=/dev/ram0 bs=1M count=128 status=none
for d in ram1 ram2; do dd if=/dev/zero of=/dev/$d bs=1M count=128 status=none; done
modprobe dm-persistent-data
S=$((128*2048))
# during IMPL: a new clone (no_hydration, default threshold and batch)
# under 4k random writes (qd 16, CLONE_PROF_DURING_SECONDS, 4 s); once
# they run, hydration is enabled (as bench-guest's "during" runs). Counts
# the device's completed writes (/sys/block/dm-N/stat) from then until the
# whole device is hydrated: the write IOPS during hydration, and its time.
during() {
	local impl=$1 k w0 w1 t0 t1 st pid
	dd if=/dev/zero of=/dev/ram2 bs=1M count=4 status=none
	dmsetup create pc --table "0 $S clone /dev/ram2 /dev/ram1 /dev/ram0 128 1 no_hydration" || return 1
	echo "# $impl during: $(dmsetup table pc) | $(grep -E '^dm_clone' /proc/modules | cut -d' ' -f1,3)"
	k=$(dmsetup info -c --noheadings -o blkdevname pc)
	fio --name=p --filename=/dev/mapper/pc --rw=randwrite --bs=4k --iodepth=16 --direct=1 --ioengine=libaio \
		--time_based --runtime="${CLONE_PROF_DURING_SECONDS:-4}" --output-format=terse >/dev/null 2>&1 &
	pid=$!
	while read -r -a st </sys/block/$k/stat && [ "${st[4]}" -lt 100 ]; do sleep 0.01; done
	w0=${st[4]} t0=$EPOCHREALTIME
	dmsetup message pc 0 enable_hydration
	while :; do
		st=$(dmsetup status pc | awk '{print $7}')
		[ "${st%/*}" = "${st#*/}" ] && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.05
	done
	read -r -a w1 </sys/block/$k/stat
	t1=$EPOCHREALTIME
	wait $pid
	echo "RES $impl randwrite-4k-during hydrated $st in_s $(echo "$t1 - $t0" | bc) write_iops $(echo "(${w1[4]} - $w0) / ($t1 - $t0)" | bc)"
	dmsetup remove pc
}
run() { # impl|name=path.ko
	local impl=${1%%=*} mod ko=$TOP/dm-clone-rs.ko
	[ "$impl" = "$1" ] || ko=${1#*=}
	if [ $impl = c ]; then modprobe dm-clone; mod=dm_clone; else insmod "$ko" || return 1; mod=dm_clone_rs; fi
	[ "${CLONE_PROF_DURING:-1}" = 0 ] || during $impl
	if [ "${CLONE_PROF_AFTER:-1}" = 0 ]; then rmmod $mod; return; fi
	dd if=/dev/zero of=/dev/ram2 bs=1M count=4 status=none
	dmsetup create pc --table "0 $S clone /dev/ram2 /dev/ram1 /dev/ram0 128 1 no_hydration 4 hydration_threshold 64 hydration_batch_size 16"
	dmsetup message pc 0 enable_hydration
	while :; do st=$(dmsetup status pc | awk '{print $7}'); [ "${st%/*}" = "${st#*/}" ] && break; sleep 0.2; done
	echo "# $impl: $(dmsetup table pc) | $(dmsetup status pc) | $(grep -E '^dm_clone' /proc/modules | cut -d' ' -f1,3)"
	for prof in "write 1M 4" "read 1M 4" "randwrite 4k 16" "randread 4k 16"; do
		set -- $prof
		fio --name=p --filename=/dev/mapper/pc --rw=$1 --bs=$2 --iodepth=$3 --direct=1 --ioengine=libaio --time_based --runtime=4 --output-format=terse 2>/dev/null |
			awk -F';' -v i=$impl -v p="$1-$2" '{printf "RES %s %s read_iops %s write_iops %s\n", i, p, $8, $49}'
	done
	if [ "${CLONE_PROF_PERF:-1}" = 0 ]; then dmsetup remove pc; rmmod $mod; return; fi
	set -- ${CLONE_PROF_PERF_RW:-write 1M 4}
	perf record -q -a -e cpu-clock -c 250000 -o /tmp/perf-$impl.data -- fio --name=p --filename=/dev/mapper/pc --rw=$1 --bs=$2 --iodepth=$3 --direct=1 --ioengine=libaio --time_based --runtime=4 --output-format=terse >/tmp/fio-$impl.txt 2>/dev/null
	echo "PERF $impl $1-$2 ios=$(awk -F';' '{print $8 + $49}' /tmp/fio-$impl.txt)"
	perf report -q -i /tmp/perf-$impl.data --sort dso -n 2>/dev/null | head -12
	perf report -q -i /tmp/perf-$impl.data --sort sym --percent-limit 1.5 2>/dev/null | head -25
	perf report -q -i /tmp/perf-$impl.data --sort sym -n --dsos "[$mod]" 2>/dev/null | head -15
	dmsetup remove pc
	rmmod $mod
}
read -r -a impls <<<"${CLONE_PROF_IMPLS:-c rust}"
for ((r = 1; r <= ${CLONE_PROF_REPS:-2}; r++)); do
	# Alternate the order between repetitions.
	if [ $((r % 2)) = 1 ]; then order=("${impls[@]}"); else order=(); for i in "${impls[@]}"; do order=("$i" "${order[@]}"); done; fi
	for i in "${order[@]}"; do run "$i"; done
done
