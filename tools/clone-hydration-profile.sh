#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# clone's idle hydration, C against Rust in one guest boot: the time to
# copy a whole device with no other I/O, to the guest clock tick, and
# optionally a perf profile over several hydrations. With the guest clock
# counting instructions it measures the CPU cost of a copy:
#
#   RDM_QEMU_OPTS="-icount shift=0" tools/vm-run.sh --cpus 1 --log /tmp/h.log -- \
#       tools/clone-hydration-profile.sh
#
# brd RAM disks of 512 MiB (source ram0 random, destination ram1, metadata
# ram2), 8192 regions of 64 KiB. For each threshold/batch of
# CLONE_HYD_TB ("1/1 64/16"; 1/1 is C's default table line), the
# implementations alternate, CLONE_HYD_REPS (3) times each: a new clone
# with no_hydration, then one python3 process sends enable_hydration and
# polls the status every millisecond (as often as the guest's timer allows:
# 4 ms on the test kernel, HZ 250 without high-resolution timers) until
# every region is hydrated. Prints "HYD impl tb=T/B rep=N s=SECONDS
# polls=N" lines. CLONE_HYD_PERF=N (0: none) then records perf (cpu-clock,
# call graphs) over N whole-device hydrations per implementation at the
# first threshold/batch, and prints each one's symbols and modules with
# their sample counts, and the module's own symbols ("PERF impl" ...
# "ENDPERF"): on the test kernel
# perf samples at the tick (250 Hz), so take N of 8 or more.
# A module loaded by insmod has no symbols in the guest's perf: its lines
# read "[dm_clone_rs] [k] 0xOFFSET", the offset into the module's .text
# (resolve it on the host: nm -n dm-clone-rs.ko, objdump -d).
# CLONE_HYD_PERF_CALLERS: symbols (e.g. "new_slab alloc_pl") whose call
# chains are printed too, for each implementation.
# CLONE_HYD_IMPLS: what to compare, "c rust" by default; NAME=PATH.ko is a
# Rust build of another tree, reported as NAME (one module at a time).
# CLONE_HYD_SRC_DELAY=MS (0: none): the source is dm-delay over ram0 adding
# MS milliseconds to every read (a far source, as make bench's
# "clone src+1ms" rows), so that the time includes the copies' wake-ups
# from the source's completions, not only their CPU cost.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
export DM_DISABLE_UDEV=1 PYTHONPATH=$TOP/selftests/lib
modprobe brd rd_nr=3 rd_size=524288
dd if=/dev/urandom of=/dev/ram0 bs=1M count=512 status=none
dd if=/dev/zero of=/dev/ram1 bs=1M count=512 status=none
modprobe dm-persistent-data
S=$((512 * 2048))
SRC=/dev/ram0
if [ "${CLONE_HYD_SRC_DELAY:-0}" != 0 ]; then
	modprobe dm-delay &&
		dmsetup create pc-src --table "0 $S delay /dev/ram0 0 $CLONE_HYD_SRC_DELAY" ||
		{ echo "FAILED: dm-delay source" >&2; exit 1; }
	SRC=/dev/mapper/pc-src
	echo "SOURCE $SRC: /dev/ram0 with $CLONE_HYD_SRC_DELAY ms per I/O"
fi
# hydrate NAME: enable hydration, poll until done; prints "SECONDS POLLS".
hydrate() {
	python3 - "$1" <<'EOF'
import fcntl, os, struct, sys, time
import dmio
name = sys.argv[1]
ctl = os.open("/dev/mapper/control", os.O_RDWR)
# One request, copied afresh for each poll: a poll must cost little next to
# what it measures (a new request of 16 KiB per poll took ~1.5 ms of guest
# time under TCG).
code, template = dmio.request(dmio.TSTATUS, name, dmio.F_NOFLUSH, room=512)
b = bytearray(template)
def hydrated():
    b[:] = template
    fcntl.ioctl(ctl, code, b, True)
    off = struct.unpack_from("=I", b, 16)[0] + dmio.SPEC
    h, n = bytes(b[off:off + 128]).split(b" ", 4)[3].split(b"/")
    return h == n
t0 = time.monotonic()
dmio.message(ctl, name, "enable_hydration")
polls = 0
while not hydrated():
    polls += 1
    time.sleep(0.001)
print("%.4f %d" % (time.monotonic() - t0, polls))
EOF
}
# create TB: a new clone "pc" with threshold/batch TB, hydration off.
create() {
	dd if=/dev/zero of=/dev/ram2 bs=4k count=16 status=none
	dmsetup create pc --table "0 $S clone /dev/ram2 /dev/ram1 $SRC 128 1 no_hydration 4 hydration_threshold ${1%/*} hydration_batch_size ${1#*/}"
}
load() { # impl|name=path.ko; sets MOD
	local impl=${1%%=*} ko=$TOP/dm-clone-rs.ko
	[ "$impl" = "$1" ] || ko=${1#*=}
	if [ "$impl" = c ]; then modprobe dm-clone && MOD=dm_clone; else insmod "$ko" && MOD=dm_clone_rs; fi
}
one() { # impl tb rep
	local r
	load "$1" || return 1
	create "$2" || return 1
	grep -q "^$MOD " /proc/modules || return 1
	r=$(hydrate pc)
	echo "HYD ${1%%=*} tb=$2 rep=$3 s=${r% *} polls=${r#* }"
	dmsetup remove pc
	rmmod $MOD
}
read -r -a impls <<<"${CLONE_HYD_IMPLS:-c rust}"
read -r -a tbs <<<"${CLONE_HYD_TB:-1/1 64/16}"
for tb in "${tbs[@]}"; do
	for ((r = 1; r <= ${CLONE_HYD_REPS:-3}; r++)); do
		# Alternate the order between repetitions.
		if [ $((r % 2)) = 1 ]; then order=("${impls[@]}"); else order=(); for i in "${impls[@]}"; do order=("$i" "${order[@]}"); done; fi
		for i in "${order[@]}"; do one "$i" "$tb" "$r"; done
	done
done
n=${CLONE_HYD_PERF:-0}
[ "$n" -gt 0 ] || exit 0
for i in "${impls[@]}"; do
	load "$i" || exit 1
	perf record -q -a -g -o /tmp/hyd-$MOD.data -- bash -c "
		$(declare -f create hydrate)
		S=$S SRC=$SRC
		for ((k = 0; k < $n; k++)); do create ${tbs[0]} && hydrate pc && dmsetup remove pc; done" >/tmp/hyd-times 2>&1
	echo "PERF ${i%%=*} tb=${tbs[0]} hydrations: $(cut -d' ' -f1 /tmp/hyd-times | tr '\n' ' ')"
	perf report -q -i /tmp/hyd-$MOD.data --no-children -g none --sort dso -F sample,dso 2>/dev/null | head -8
	perf report -q -i /tmp/hyd-$MOD.data --no-children -g none --sort sym -F sample,sym 2>/dev/null | sort -rn | head -40
	echo "MODULE $MOD"
	perf report -q -i /tmp/hyd-$MOD.data --no-children -g none --sort dso,sym -F sample,dso,sym 2>/dev/null | grep -F "[$MOD]" | sort -rn | head -20
	for sym in ${CLONE_HYD_PERF_CALLERS:-}; do
		echo "CALLERS $sym"
		perf report -q -i /tmp/hyd-$MOD.data --no-children -S "$sym" -g caller,0.5,callee,function,percent --stdio 2>/dev/null | grep -v '^$' | head -60
	done
	echo "ENDPERF"
	rmmod $MOD
done
