#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# era writes, C against Rust in one guest boot, with perf profiles: a check
# of the per-I/O CPU cost that does not depend on the host's load when the
# guest clock counts instructions:
#
#   RDM_QEMU_OPTS="-icount shift=0" tools/vm-run.sh --log /tmp/p.log -- tools/era-profile.sh
#
# With one vCPU (vm-run --cpus 1) the map-only profiles repeat to 0.1-0.2%;
# with two, a run lands anywhere in a band 2-3% wide (C as much as Rust:
# where fio, interrupts and the idle vCPU fall), too wide for small changes.
#
# brd RAM disks (ERA_PROF_MIB (256) MiB origin ram0, metadata ram1), a fresh era device
# (metadata zeroed) with 4 KiB era blocks per (implementation, repetition).
# fio, direct I/O, libaio, ERA_PROF_SECONDS (4) each:
#   randwrite-4k fresh     iodepth 16 over the first 128 MiB, random map
#                          (every write is the first to its block: worker)
#   seqwrite-1m fresh      iodepth 4 over the second 128 MiB (worker)
#   randwrite-4k rewrite   iodepth 16 over the first 32 MiB after a
#                          sequential pass marked it (map only)
#   seqwrite-1m rewrite    iodepth 4 over the same 32 MiB (map only)
#   randread-4k            iodepth 16 over the whole device
#   seqread-1m             iodepth 4 over the whole device
# C and Rust alternate, ERA_PROF_REPS (2) times each. Prints "RES impl
# profile iops N" lines, the table, status and module that served each
# device, and perf's top symbols (cpu-clock) of the fresh 1M and 4k
# profiles (on a new device) per implementation (ERA_PROF_PERF=0: none;
# ERA_PROF_PERIOD: the sampling period in ns of guest clock, 250000;
# ERA_PROF_PERF_RUNS: fresh 1M passes in the profile, 1).
# ERA_PROF_IMPLS: what to compare, "c rust" by default; NAME=PATH.ko is a
# Rust build of another tree, reported as NAME (one module at a time).
# ERA_PROF_QUICK=1: only the fresh-write profiles; ERA_PROF_QUICK=map: only
# the profiles that map alone serves (rewrites, reads).
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
export DM_DISABLE_UDEV=1
SECS=${ERA_PROF_SECONDS:-4}
MIB=${ERA_PROF_MIB:-256}
HALF=$((MIB / 2))M
modprobe brd rd_nr=2 rd_size=$((MIB * 1024))
dd if=/dev/zero of=/dev/ram0 bs=1M count="$MIB" status=none
modprobe dm-persistent-data
S=$((MIB * 2048))
fio_iops() { # name rw bs qd offset size [extra...]
	local name=$1 rw=$2 bs=$3 qd=$4 off=$5 size=$6
	shift 6
	fio --name="$name" --filename=/dev/mapper/pe --rw="$rw" --bs="$bs" --iodepth="$qd" \
		--direct=1 --ioengine=libaio --offset="$off" --size="$size" --runtime="$SECS" \
		--output-format=terse "$@" 2>/dev/null | awk -F';' '{print $8 + $49, "fio_usr", $88, "fio_sys", $89, "fio_ctx", $90}'
}
# md_io: metadata writes and flushes, and data writes, since the last call
# (the previous counts are kept in a file: it runs in command substitutions).
md_io() {
	local st w f dw w0=0 f0=0 dw0=0
	read -r -a st </sys/block/"$(dmsetup info -c --noheadings -o blkdevname pe-md)"/stat
	w=${st[4]} f=${st[14]:-0}
	read -r -a st </sys/block/"$(dmsetup info -c --noheadings -o blkdevname pe)"/stat
	dw=${st[4]}
	[ ! -s /tmp/era-prof.md_io ] || read -r w0 f0 dw0 </tmp/era-prof.md_io
	echo "$w $f $dw" >/tmp/era-prof.md_io
	echo "md_writes $((w - w0)) md_flushes $((f - f0)) writes $((dw - dw0))"
}
# sched_counts: context switches and rescheduling / function-call IPIs
# since the last call (state in a file, as md_io).
sched_counts() {
	local c r f c0=0 r0=0 f0=0
	c=$(awk '$1 == "ctxt" {print $2}' /proc/stat)
	r=$(awk '$1 == "RES:" {for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i} END {print s + 0}' /proc/interrupts)
	f=$(awk '$1 == "CAL:" {for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i} END {print s + 0}' /proc/interrupts)
	[ ! -s /tmp/era-prof.sched ] || read -r c0 r0 f0 </tmp/era-prof.sched
	echo "$c $r $f" >/tmp/era-prof.sched
	echo "ctxt $((c - c0)) res_ipi $((r - r0)) cal_ipi $((f - f0))"
}
# task_switches FILE: each task's voluntary and involuntary context switches.
task_switches() {
	local d
	for d in /proc/[0-9]*; do
		awk -v pid="${d#/proc/}" '$1 == "Name:" {n = $2} $1 == "voluntary_ctxt_switches:" {v = $2}
			$1 == "nonvoluntary_ctxt_switches:" {print pid, n, v, $2}' "$d/status" 2>/dev/null
	done >"$1"
}
# switch_diff BEFORE AFTER: context switches per task name (worker numbers
# dropped) between the two snapshots, the busiest first.
switch_diff() {
	awk 'NR == FNR {v[$1] = $3; n[$1] = $4; next}
		{k = $2; gsub(/[0-9]+/, "N", k); dv[k] += $3 - v[$1]; dn[k] += $4 - n[$1]}
		END {for (k in dv) if (dv[k] + dn[k] > 0) printf "  %-28s vol %6d invol %6d\n", k, dv[k], dn[k]}' "$1" "$2" |
		sort -k3,3nr | head -12
}
run() { # impl rep
	local impl=${1%%=*} rep=$2 mod ko=$TOP/dm-era-rs.ko
	[ "$impl" = "$1" ] || ko=${1#*=}
	if [ "$impl" = c ]; then modprobe dm-era; mod=dm_era; else insmod "$ko" || return 1; mod=dm_era_rs; fi
	dd if=/dev/zero of=/dev/ram1 bs=1M count=16 status=none
	# The metadata through a linear device: its I/O counts are the commits'.
	dmsetup create pe-md --table "0 $((MIB * 2048)) linear /dev/ram1 0" || return 1
	dmsetup create pe --table "0 $S era /dev/mapper/pe-md /dev/ram0 8" || return 1
	echo "# $impl rep $rep: $(dmsetup table pe) | $(dmsetup status pe) | $(grep -E '^dm_era' /proc/modules | cut -d' ' -f1,3)"
	rm -f /tmp/era-prof.md_io /tmp/era-prof.sched
	md_io >/dev/null
	sched_counts >/dev/null
	if [ "${ERA_PROF_QUICK:-0}" != map ]; then
		echo "RES $impl randwrite-4k-fresh iops $(fio_iops f4 randwrite 4k 16 0 $HALF) $(md_io) $(sched_counts)"
		task_switches /tmp/era-prof.ts0
		echo "RES $impl seqwrite-1m-fresh iops $(fio_iops f1 write 1M 4 $HALF $HALF) $(md_io) $(sched_counts)"
		task_switches /tmp/era-prof.ts1
		switch_diff /tmp/era-prof.ts0 /tmp/era-prof.ts1
	fi
	if [ "${ERA_PROF_QUICK:-0}" != 1 ]; then
		fio_iops mark write 1M 4 0 32M >/dev/null
		echo "RES $impl randwrite-4k-rewrite iops $(fio_iops r4 randwrite 4k 16 0 32M --time_based)"
		echo "RES $impl seqwrite-1m-rewrite iops $(fio_iops r1 write 1M 4 0 32M --time_based)"
		echo "RES $impl randread-4k iops $(fio_iops rr randread 4k 16 0 ${MIB}M --time_based)"
		echo "RES $impl seqread-1m iops $(fio_iops sr read 1M 4 0 ${MIB}M --time_based)"
	fi
	echo "# $impl rep $rep: status after: $(dmsetup status pe)"
	if [ "${ERA_PROF_PERF:-1}" = 1 ] && [ "$rep" = 1 ]; then
		# No throttling of the sampling rate (TCG makes each sample slow).
		sysctl -q -w kernel.perf_cpu_time_max_percent=0 kernel.perf_event_max_sample_rate=100000
		# A new device in era 1 (a checkpoint would make C digest the
		# archived writeset during the runs): every block unmarked again.
		dmsetup remove pe
		dd if=/dev/zero of=/dev/mapper/pe-md bs=1M count=16 status=none
		dmsetup create pe --table "0 $S era /dev/mapper/pe-md /dev/ram0 8" || return 1
		# ERA_PROF_PERF_RUNS (1) fresh passes, each on a new device.
		perf record -q -a -e cpu-clock -c "${ERA_PROF_PERIOD:-250000}" -o /tmp/perf-$impl-1m.data -- \
			bash -c 'for ((i = 0; i < $1; i++)); do
				[ $i = 0 ] || { dmsetup remove pe; dd if=/dev/zero of=/dev/mapper/pe-md bs=1M count=16 status=none
					dmsetup create pe --table "0 $2 era /dev/mapper/pe-md /dev/ram0 8"; } || exit 1
				fio --name=p --filename=/dev/mapper/pe --rw=write --bs=1M --iodepth=4 --direct=1 \
					--ioengine=libaio --offset=$3 --size=$3 --runtime="$4" --output-format=terse
			done' - "${ERA_PROF_PERF_RUNS:-1}" "$S" "$HALF" "$SECS" >/tmp/fio-$impl.txt 2>&1
		echo "PERF $impl seqwrite-1m-fresh ios=$(awk -F';' '{s += $49} END {print s}' /tmp/fio-$impl.txt)"
		perf report -q -n -i /tmp/perf-$impl-1m.data --sort comm,dso,sym --percent-limit "${ERA_PROF_LIMIT:-0.7}" 2>/dev/null | head -"${ERA_PROF_LINES:-40}"
		echo "PERF $impl seqwrite-1m-fresh by task, by object"
		perf report -q -n -i /tmp/perf-$impl-1m.data --sort comm 2>/dev/null | sed 's/[0-9]\+-/N-/' | head -12
		perf report -q -n -i /tmp/perf-$impl-1m.data --sort dso 2>/dev/null | head -12
		echo "PERF $impl seqwrite-1m-fresh in the module"
		perf report -q -n -i /tmp/perf-$impl-1m.data --dsos "$mod" --sort comm,sym 2>/dev/null | sed 's/[0-9]\+-/N-/' | head -20
		# The submitting thread alone: dm core's split and the target's map.
		echo "PERF $impl seqwrite-1m-fresh fio's own samples"
		perf report -q -n -i /tmp/perf-$impl-1m.data --comms fio --sort sym --percent-limit "${ERA_PROF_LIMIT:-0.7}" 2>/dev/null | head -"${ERA_PROF_LINES:-40}"
		perf record -q -a -e cpu-clock -c "${ERA_PROF_PERIOD:-250000}" -o /tmp/perf-$impl-4k.data -- \
			fio --name=p --filename=/dev/mapper/pe --rw=randwrite --bs=4k --iodepth=16 --direct=1 \
			--ioengine=libaio --size=$HALF --runtime="$SECS" --output-format=terse >/tmp/fio-$impl.txt 2>&1
		echo "PERF $impl randwrite-4k-fresh ios=$(awk -F';' '{print $49}' /tmp/fio-$impl.txt)"
		perf report -q -n -i /tmp/perf-$impl-4k.data --sort dso,sym --percent-limit "${ERA_PROF_LIMIT:-0.7}" 2>/dev/null | head -"${ERA_PROF_LINES:-40}"
	fi
	dmsetup remove pe pe-md
	rmmod $mod
}
read -r -a impls <<<"${ERA_PROF_IMPLS:-c rust}"
for ((r = 1; r <= ${ERA_PROF_REPS:-2}; r++)); do
	# Alternate the order between repetitions.
	if [ $((r % 2)) = 1 ]; then order=("${impls[@]}"); else order=(); for i in "${impls[@]}"; do order=("$i" "${order[@]}"); done; fi
	for i in "${order[@]}"; do run "$i" "$r"; done
done
