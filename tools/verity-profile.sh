#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Profiles reads on dm-verity (4k random by default), ours against C, in one guest boot:
#
#   tools/vm-run.sh --log /tmp/x.log -- tools/verity-profile.sh
#
# Same devices and table as tools/bench-guest.sh's verity part (brd RAM disks,
# `veritysetup format`, sha256, 4096-byte blocks). Per repetition, C and
# Rust alternate (C first on odd repetitions); each gets a fresh device and:
#   1. cold: fio randread 4k (1 job, iodepth 16), one pass capped at
#      PROF_RUNTIME s, no profiler (the IOPS of a cold cache);
#   2. warm: the same, time based, PROF_RUNTIME s, PROF_WARM_JOBS times in
#      one fio process (IOPS: their median), under `perf stat -a` (context
#      switches, migrations) with /proc/stat and /proc/interrupts before and
#      after: events per bio;
#   3. (first PROF_PERF_REPS repetitions) warm again under
#      `perf record -a -e cpu-clock` (a software event: TCG has no PMU),
#      then `perf report` by symbol, and by module. The sample counts are
#      per bio: divided by the bios fio completed while perf ran.
# Settings: PROF_REPS (4), PROF_RUNTIME (5), PROF_PERF_REPS (2),
# PROF_IMPLS ("c rust": c is the C module (so are c2..c9, for an A/A
# control: their ratio to c is the noise floor), rust is PROF_RS_KO, default
# dm-verity-rs.ko of this tree, any other name N is out/ko/N.ko, for
# comparing builds of ours in one boot),
# PROF_PERIOD (perf sampling period, 250000 ns of CPU time),
# PROF_RW, PROF_BS, PROF_QD (the I/O: randread, 4k, 16; e.g. read, 1M, 4
# for the bench's seqread-1m; "bios" below are then fio's I/Os).
set -uo pipefail
export DM_DISABLE_UDEV=1
top=$(cd "$(dirname "$0")/.." && pwd)
REPS=${PROF_REPS:-4}
RUNTIME=${PROF_RUNTIME:-5}
PERF_REPS=${PROF_PERF_REPS:-2}
WARM_JOBS=${PROF_WARM_JOBS:-1}
IMPLS=${PROF_IMPLS:-c rust}
RS_KO=${PROF_RS_KO:-$top/dm-verity-rs.ko}
PERIOD=${PROF_PERIOD:-250000}
RW=${PROF_RW:-randread} BS=${PROF_BS:-4k} QD=${PROF_QD:-16}
W=/tmp/vprof
data=/dev/ram1 hash=/dev/ram2

log() { printf "prof: [%4ds] %s\n" "$SECONDS" "$*"; }
dmesg -n 5 2>/dev/null || true
rm -rf "$W"
mkdir -p "$W"
mountpoint -q "$W" || mount -t tmpfs -o size=512M tmpfs "$W"
echo 0 >/proc/sys/kernel/kptr_restrict
echo -1 >/proc/sys/kernel/perf_event_paranoid

modprobe brd rd_nr=3 rd_size=$((128 * 1024)) || exit 1
modprobe dm-bufio || exit 1
modprobe reed_solomon || exit 1
fio --name=prefill --filename=$data --rw=write --bs=1M --direct=1 --ioengine=libaio \
	--iodepth=4 --output=/dev/null >/dev/null 2>&1 || exit 1
veritysetup format $data $hash --hash=sha256 --data-block-size=4096 \
	--hash-block-size=4096 >"$W/format.txt" 2>&1 || { cat "$W/format.txt"; exit 1; }
root=$(awk -F: '/^Root hash/ {gsub(/[ \t]/, "", $2); print $2}' "$W/format.txt")
salt=$(awk -F: '/^Salt/ {gsub(/[ \t]/, "", $2); print $2}' "$W/format.txt")
nblocks=$(($(blockdev --getsize64 $data) / 4096))
TABLE="0 $((nblocks * 8)) verity 1 $data $hash 4096 4096 $nblocks 1 sha256 $root $salt"
log "table: $TABLE"
log "fio: rw=$RW bs=$BS iodepth=$QD, runtime ${RUNTIME}s"
ko_of() { # IMPL: the Rust module to load for IMPL
	if [ "$1" = rust ]; then echo "$RS_KO"; else echo "$top/out/ko/$1.ko"; fi
}
is_c() { case $1 in c | c[0-9]) return 0 ;; *) return 1 ;; esac; }
load() { if is_c "$1"; then modprobe dm-verity; else insmod "$(ko_of "$1")"; fi; }
unload() { if is_c "$1"; then rmmod dm_verity; else rmmod dm_verity_rs; fi; }
for impl in $IMPLS; do
	is_c "$impl" || log "$impl: $(ko_of "$impl") sha256 $(sha256sum "$(ko_of "$impl")" | cut -c1-16)"
done

iops() { # JSON: median read IOPS of the jobs, their total ios, every job's IOPS
	python3 -c 'import json,sys,statistics as s; j=[x["read"] for x in json.load(open(sys.argv[1]))["jobs"]]; print("%.2f %d %s" % (s.median(x["iops"] for x in j), sum(x["total_ios"] for x in j), ",".join("%.0f" % x["iops"] for x in j)))' "$1"
}
# fio_rr NAME MODE OUT [PREFIX...]: reads (PROF_RW, PROF_BS, PROF_QD), fio
# run under PREFIX.
# MODE pass: one pass, capped at RUNTIME s; timed: WARM_JOBS jobs of
# RUNTIME s one after the other in one fio process (a fio start costs
# seconds under TCG).
fio_rr() {
	local jobs=() name=$1 mode=$2 out=$3 j
	shift 3
	if [ "$mode" = timed ]; then
		for j in $(seq 1 "$WARM_JOBS"); do jobs+=(--name="$name$j" --stonewall); done
	else
		jobs=(--name="$name")
	fi
	"$@" fio --filename=/dev/mapper/prof-verity --readonly --rw="$RW" --bs="$BS" \
		--iodepth="$QD" --numjobs=1 --direct=1 --ioengine=libaio --runtime="$RUNTIME" \
		$([ "$mode" = timed ] && echo --time_based) --output-format=json --output="$out" \
		"${jobs[@]}" >/dev/null 2>"$W/fio.err" ||
		{ log "fio failed: $(cat "$W/fio.err")"; return 1; }
}

# snap FILE: /proc/stat (per-CPU times, context switches) and
# /proc/interrupts, for per-bio counts of the warm run.
snap() { cat /proc/stat >"$1.stat"; cat /proc/interrupts >"$1.irq"; }
# counts PERF_STAT_CSV BIOS TAG: per-bio events of the warm run
counts() {
	python3 - "$W/before" "$W/after" "$1" "$2" "$3" <<'PY'
import sys
b, a, stat, ios, tag = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
def cpus(f):
    r = {}
    for l in open(f + ".stat"):
        w = l.split()
        if w[0].startswith("cpu"):
            v = list(map(int, w[1:]))
            r[w[0]] = (sum(v), v[3] + v[4], v[5] + v[6])  # total, idle+iowait, irq+softirq
        elif w[0] in ("ctxt", "intr"):
            r[w[0]] = int(w[1])
    return r
def irqs(f):
    r = {}
    for l in open(f + ".irq").readlines()[1:]:
        w = l.split()
        if not w:
            continue
        n = w[0].rstrip(":")
        v = [int(x) for x in w[1:3] if x.isdigit()]
        r[n] = sum(v)
    return r
B, A = cpus(b), cpus(a)
out = []
for c in ("cpu0", "cpu1"):
    t = A[c][0] - B[c][0]
    out.append("%s_busy=%.0f%%" % (c, 100 * (t - (A[c][1] - B[c][1])) / max(t, 1)))
out.append("ctxt/bio=%.2f" % ((A["ctxt"] - B["ctxt"]) / ios))
IB, IA = irqs(b), irqs(a)
for k in ("LOC", "RES", "CAL", "TLB", "NMI"):
    if k in IA:
        out.append("%s/bio=%.3f" % (k, (IA[k] - IB.get(k, 0)) / ios))
for l in open(stat):
    w = l.strip().split(",")
    if len(w) > 3 and w[0]:
        try:
            out.append("%s/bio=%.3f" % (w[2], float(w[0]) / ios))
        except ValueError:
            pass
print("COUNTS %s bios=%d %s" % (tag, ios, " ".join(out)))
PY
}

declare -A SUM
for rep in $(seq 1 "$REPS"); do
	# Odd repetitions in the given order, even ones reversed.
	if [ $((rep % 2)) = 1 ]; then order=$IMPLS; else order=$(echo "$IMPLS" | awk '{for (i = NF; i; i--) printf "%s ", $i}'); fi
	for impl in $order; do
		load "$impl" || { log "load $impl failed"; exit 1; }
		dd if=$data of=/dev/null iflag=nocache count=0 status=none
		dd if=$hash of=/dev/null iflag=nocache count=0 status=none
		dmsetup create prof-verity --readonly --table "$TABLE" || exit 1
		log "rep $rep $impl: $(dmsetup table prof-verity | cut -d' ' -f3) served by $(grep -E '^dm_verity(_rs)? ' /proc/modules | cut -d' ' -f1,3)"
		fio_rr cold pass "$W/$impl-$rep-cold.json" || exit 1
		snap "$W/before"
		fio_rr warm timed "$W/$impl-$rep-warm.json" perf stat -a -x, \
			-e cpu-clock,context-switches,cpu-migrations -o "$W/$impl-$rep.stat" -- || exit 1
		snap "$W/after"
		read -r ci _ < <(iops "$W/$impl-$rep-cold.json")
		read -r wi wios wall < <(iops "$W/$impl-$rep-warm.json")
		log "RESULT rep=$rep impl=$impl cold_iops=$ci warm_iops=$wi warm_jobs=$wall load=$(cut -d' ' -f1-3 /proc/loadavg)"
		echo "$rep $impl $ci $wi" >>"$W/results.txt"
		counts "$W/$impl-$rep.stat" "$wios" "$impl-$rep"
		SUM[$impl-cold]+="$ci " SUM[$impl-warm]+="$wi "
		if [ "$rep" -le "$PERF_REPS" ]; then
			perf record -a -e cpu-clock -c "$PERIOD" -o "$W/$impl-$rep.perf" -- \
				fio --name=perf --filename=/dev/mapper/prof-verity --readonly --rw="$RW" \
				--bs="$BS" --iodepth="$QD" --numjobs=1 --direct=1 --ioengine=libaio \
				--runtime="$RUNTIME" --time_based --output-format=json \
				--output="$W/$impl-$rep-perf.json" >/dev/null 2>"$W/perf.err" ||
				{ log "perf record failed: $(tail -n 5 "$W/perf.err")"; }
			read -r pi pios _ < <(iops "$W/$impl-$rep-perf.json")
			log "PERF rep=$rep impl=$impl iops=$pi ios=$pios"
			echo "$pios" >"$W/$impl-$rep.ios"
		fi
		st=$(dmsetup status prof-verity)
		case "$st" in *" V") ;; *) log "FAILED: status $st"; exit 1 ;; esac
		dmsetup remove prof-verity
		# perf report reads module symbols from /proc/kallsyms: report
		# before the module goes.
		if [ "$rep" -le "$PERF_REPS" ]; then
			ios=$(cat "$W/$impl-$rep.ios")
			echo "==== PROFILE rep=$rep impl=$impl bios=$ios (one sample per ${PERIOD} ns of CPU time, all CPUs)"
			perf report -i "$W/$impl-$rep.perf" --stdio --sort dso 2>/dev/null |
				grep -v '^#' | grep -v '^$' | head -n 12
			perf report -i "$W/$impl-$rep.perf" --stdio --sort sym -n 2>/dev/null |
				grep -v '^#' | grep -v '^$' | head -n 60
			# Samples per symbol per 1000 bios, for comparing C and Rust.
			perf report -i "$W/$impl-$rep.perf" --stdio --sort sym -n -F overhead,sample,sym \
				2>/dev/null | grep -v '^#' | grep -v '^$' |
				awk -v ios="$ios" -v tag="$impl-$rep" \
					'$2 ~ /^[0-9]+$/ { n=$2; $1=""; $2=""; sub(/^ +/, ""); printf "PERBIO %s %.2f %s\n", tag, n * 1000 / ios, $0 }' \
					>"$W/$impl-$rep.perbio"
			echo "==== PERBIO rep=$rep impl=$impl (samples per 1000 bios, top 40)"
			sort -k3 -g -r "$W/$impl-$rep.perbio" | head -n 40
			awk -v tag="$impl-$rep" '{ s += $3 } END { printf "TOTAL %s %.2f samples per 1000 bios\n", tag, s }' "$W/$impl-$rep.perbio"
		fi
		unload "$impl"
	done
done
for k in "${!SUM[@]}"; do echo "SUMMARY $k: ${SUM[$k]}"; done | sort
# Per repetition, each build of ours against C in the same repetition:
# the median ratio and its range.
python3 - "$W/results.txt" <<'PY'
import sys, statistics as st
r = {}
for l in open(sys.argv[1]):
    rep, impl, c, w = l.split()
    r.setdefault(impl, {})[int(rep)] = (float(c), float(w))
for impl in sorted(k for k in r if k != "c"):
    for i, kind in enumerate(("cold", "warm")):
        q = [r[impl][n][i] / r["c"][n][i] for n in r[impl] if n in r.get("c", {})]
        if q:
            print("RATIO %s/c %s: median %.3f, range %.3f-%.3f, n=%d" % (impl, kind, st.median(q), min(q), max(q), len(q)))
PY
