#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Life-cycle stress of our four targets (hardening): linear_rs
# (dm-linear-rs.ko), verity (dm-verity-rs.ko), era (dm-era-rs.ko), clone
# (dm-clone-rs.ko).
#
#   cycles_<target>     under a verifying workload, N_CYCLES (100) cycles of
#                       suspend + resume, then N_CYCLES table reloads (load
#                       of the same table, suspend, resume: the new table is
#                       constructed while the old one serves I/O; for era and
#                       clone it opens the metadata again). Zero I/O errors,
#                       zero verify mismatches, I/O completes after every
#                       resume, the target's own state is intact afterwards.
#                       Workload: fio randwrite with crc32c verification
#                       (linear_rs, era, clone); for the read-only verity, a
#                       reader comparing every byte read (O_DIRECT, random
#                       offsets and lengths) with the image veritysetup
#                       formatted.
#   modloop_<target>    N_LOADS times: insmod, create a device, I/O checked
#                       byte for byte, remove, rmmod. The module unloads every
#                       time; the kernel's unreclaimable slab, vmalloc and
#                       per-CPU memory do not grow over the loop (beyond a
#                       generous margin); on the debug kernel (kmemleak),
#                       kmemleak finds no leak that mentions our modules.
#
#   tools/vm-run.sh -- selftests/run.sh cycles
#
# Knobs (environment): N_CYCLES (100), N_LOADS (20), LEAK_MARGIN_KIB (2048),
# CYCLES_ONLY (a regex: run only the tests whose names match),
# CYCLES_DMSETUP=1 (cycles through dmsetup, see below).
#
# Process start-up is what costs time in the TCG guest: one dmsetup call
# takes 0.3 to 1 s, so the 800 suspends, 800 resumes and 400 loads would take
# 15 to 30 minutes through dmsetup. The cycles and the module loop therefore
# make the same DM ioctls dmsetup makes (DM_TABLE_LOAD, DM_DEV_SUSPEND with
# and without DM_SUSPEND_FLAG, DM_DEV_CREATE, DM_DEV_REMOVE) from one Python
# process each (the helper below), and check the device's state flags and
# live table after each step. CYCLES_DMSETUP=1 runs the cycles through
# dmsetup instead (slow; for comparison).
#
# Every test proves that our module served the device: the live table's
# target type, our module loaded and pinned, the C twin (dm_verity, dm_era,
# dm_clone) not loaded; no kernel report (oops, WARNING, ...) in the log.
. "$(dirname "$0")/lib/suite.sh"
suite_init

N_CYCLES=${N_CYCLES:-100}
N_LOADS=${N_LOADS:-20}
PY=(python3 -I -S)
[ -x /usr/bin/python3 ] && PY=(/usr/bin/python3 -I -S)
DMIO=$SCRATCH/cycles-dmio.py

# cleanup: removes every test device, uppers (rdmt-a-*) first.
cleanup() {
	dm_remove_all_test_devices
}

# ==== the helper: DM ioctls, module load loop, O_DIRECT reader ===============
write_helper() {
	cat >"$DMIO" <<'EOF'
# SPDX-License-Identifier: GPL-2.0
"""DM ioctls without a process per command (as dmsetup makes them), a
module load/unload loop, and an O_DIRECT reader checking every byte."""
import ctypes, json, mmap, os, random, signal, struct, sys, time

sys.path.insert(0, os.environ["SELFTESTS_LIB"])
import dmio  # noqa: E402
from dmio import CREATE, REMOVE, SUSPEND, DEVSTATUS, LOAD, TSTATUS, VERSIONS  # noqa: E402
from dmio import F_RO, F_SUSPEND, F_TABLE, F_ACTIVE, F_INACTIVE  # noqa: E402,F401

# Deadlines scale with the kernel flavour (selftests/lib/suite.sh: SCALE).
SCALE = int(os.environ.get("SCALE", "1"))
OPS = {3: "create", 4: "remove", 6: "suspend/resume", 7: "status", 9: "load", 12: "table", 13: "targets"}


class Fail(Exception):
    pass


class Dm:
    def __init__(self):
        self.fd = os.open("/dev/mapper/control", os.O_RDWR | os.O_CLOEXEC)

    def call(self, nr, name, flags=0, data=b"", count=0, room=64):
        try:
            return dmio.ioctl(self.fd, nr, name, flags, data, count, room)
        except OSError as e:
            raise Fail(f"DM ioctl {OPS[nr]} of {name or '-'} failed: {os.strerror(e.errno)}")

    def flags(self, name):
        return struct.unpack_from("=I", self.call(DEVSTATUS, name), 28)[0]

    def load(self, name, specs, ro):
        data, count = dmio.table(specs)
        self.call(LOAD, name, F_RO if ro else 0, data, count)

    def status(self, name):
        """Status words of the live table's one target."""
        return dmio.targets(self.call(TSTATUS, name, room=16384))[0][1]

    def types(self, name):
        """Target types of the live table."""
        return [t for t, _ in dmio.targets(self.call(TSTATUS, name, F_TABLE, room=16384))]

    def targets(self):
        b = self.call(VERSIONS, "", room=16384)
        off = struct.unpack_from("=I", b, 16)[0]
        res = set()
        while off + 16 <= len(b):
            nxt = struct.unpack_from("=I", b, off)[0]
            res.add(bytes(b[off + 16:off + 48]).split(b"\0")[0].decode())
            if not nxt:
                break
            off += nxt
        return res


def parse_table(text):
    specs = []
    for line in text.strip().split("\n"):
        w = line.split()
        specs.append((int(w[0]), int(w[1]), w[2], " ".join(w[3:])))
    return specs


def kname(name):
    for d in os.listdir("/sys/block"):
        try:
            with open(f"/sys/block/{d}/dm/name") as f:
                if f.read().strip() == name:
                    return d
        except OSError:
            pass
    raise Fail(f"no dm device named {name}")


def ios(k):
    with open(f"/sys/block/{k}/stat") as f:
        w = f.read().split()
    return int(w[0]) + int(w[4])


def check_active(dm, name, types, what):
    fl = dm.flags(name)
    if fl & F_SUSPEND or not fl & F_ACTIVE or fl & F_INACTIVE:
        raise Fail(f"{what}: device flags {fl:#x} (suspended {fl & F_SUSPEND}, "
                   f"active table {fl & F_ACTIVE}, inactive table {fl & F_INACTIVE})")
    live = dm.types(name)
    if live != types:
        raise Fail(f"{what}: live table types {live}, expected {types}")


def cycles(a):
    """--name N --kinds suspend,reload --count C --table T [--ro] [--pid P]
    [--hydrated] [--compare FILE --from BYTE]: for each kind, C cycles;
    then (clone) waits until every region is hydrated, the mode rw; then
    the device from BYTE on reads as FILE from BYTE on."""
    for kind in a["kinds"].split(","):
        cycles1(a, kind)
    dm = Dm()
    t0 = time.monotonic()
    while "hydrated" in a:
        p = dm.status(a["name"]).split()
        if p[-1] != "rw":
            raise Fail(f"clone status after the cycles: {' '.join(p)}")
        if p[4] == "0" and p[3].split("/")[0] == p[3].split("/")[1]:
            print(f"hydrated {time.monotonic() - t0:.1f} s after the cycles, mode rw")
            break
        if time.monotonic() - t0 > 120:
            raise Fail(f"not hydrated 120 s after the cycles: {' '.join(p)}")
        time.sleep(0.2)
    if "compare" in a:
        start = int(a["from"])
        want = open(a["compare"], "rb").read()[start:]
        fd = os.open(f"/dev/{kname(a['name'])}", os.O_RDONLY | os.O_DIRECT)
        buf = mmap.mmap(-1, len(want))
        got = os.preadv(fd, [buf], start)
        os.close(fd)
        if got != len(want) or buf[:] != want:
            raise Fail(f"the device from byte {start} on does not read {a['compare']}")
        print(f"the {len(want) >> 20} MiB from byte {start} on read {os.path.basename(a['compare'])}")


def cycles1(a, kind):
    dm = Dm()
    specs = parse_table(a["table"])
    types = [s[2] for s in specs]
    k = kname(a["name"])
    pid = int(a.get("pid", 0))
    deadline = float(a.get("io-deadline", 120 * SCALE))
    check_active(dm, a["name"], types, "before the cycles")
    t0, maxwait = time.monotonic(), 0.0
    for i in range(1, int(a["count"]) + 1):
        what = f"{kind} cycle {i}"
        if kind == "reload":
            dm.load(a["name"], specs, "ro" in a)
            if not dm.flags(a["name"]) & F_INACTIVE:
                raise Fail(f"{what}: no inactive table after the load")
        dm.call(SUSPEND, a["name"], F_SUSPEND)
        if not dm.flags(a["name"]) & F_SUSPEND:
            raise Fail(f"{what}: not suspended after suspend")
        dm.call(SUSPEND, a["name"])
        check_active(dm, a["name"], types, what)
        if pid:
            # The workload is still running (fio stops at the first
            # verify mismatch, the reader at the first wrong byte or error).
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                raise Fail(f"{what}: the workload (pid {pid}) ended")
            # I/O completes after the resume before the next suspend.
            n0, w0 = ios(k), time.monotonic()
            while ios(k) == n0:
                if time.monotonic() - w0 > deadline:
                    raise Fail(f"{what}: no I/O completed within {deadline:.0f} s of the resume")
                time.sleep(0.002)
            maxwait = max(maxwait, time.monotonic() - w0)
    print(f"{a['count']} {kind} cycles in {time.monotonic() - t0:.1f} s, "
          f"I/O completed after every resume (longest wait {maxwait * 1000:.0f} ms)", flush=True)


libc = ctypes.CDLL(None, use_errno=True)


def meminfo():
    m = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":")
            m[k] = int(v.split()[0])
    return {k: m.get(k, 0) for k in ("SUnreclaim", "VmallocUsed", "Percpu")}


def settle():
    # Let RCU callbacks and deferred frees run before a memory sample.
    time.sleep(1)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")
    time.sleep(0.5)


def modloop(a):
    """--ko F --mod M --twin T --target TT --name N --table T [--ro]
    --iters I --warm W [--image F] [--wipe DEV]: I times insmod, create,
    I/O, remove,
    rmmod; prints JSON with memory samples after iteration W and at the end."""
    dm = Dm()
    mod, twin, name = a["mod"], a.get("twin", ""), a["name"]
    specs = parse_table(a["table"])
    image = open(a["image"], "rb").read() if "image" in a else None
    size = specs[-1][0] + specs[-1][1]
    buf = mmap.mmap(-1, 65536)
    rnd = random.Random(1)
    samples = {}
    t0 = time.monotonic()
    for i in range(1, int(a["iters"]) + 1):
        what = f"iteration {i}"
        if "wipe" in a:
            # Fresh metadata: the device starts from nothing again.
            fd = os.open(a["wipe"], os.O_WRONLY | os.O_DIRECT)
            buf[:] = bytes(65536)
            os.pwritev(fd, [buf], 0)
            os.close(fd)
        fd = os.open(a["ko"], os.O_RDONLY)
        if libc.syscall(313, fd, b"", 0) != 0:  # finit_module
            raise Fail(f"{what}: finit_module: {os.strerror(ctypes.get_errno())}")
        os.close(fd)
        if a["target"] not in dm.targets():
            raise Fail(f"{what}: target {a['target']} not registered after insmod")
        dm.call(CREATE, name)
        dm.load(name, specs, "ro" in a)
        dm.call(SUSPEND, name)
        check_active(dm, name, [s[2] for s in specs], what)
        with open(f"/sys/module/{mod}/refcnt") as f:
            if int(f.read()) < 1:
                raise Fail(f"{what}: {mod} not pinned by the device")
        if twin and os.path.exists(f"/sys/module/{twin}"):
            raise Fail(f"{what}: the C {twin} is loaded")
        dev = os.open(f"/dev/{kname(name)}", (os.O_RDONLY if image else os.O_RDWR) | os.O_DIRECT)
        off = rnd.randrange(0, size * 512 - 65536, 4096)
        if image is None:
            data = rnd.randbytes(65536)
            buf[:] = data
            if os.pwritev(dev, [buf], off) != 65536:
                raise Fail(f"{what}: short write")
            buf[:] = bytes(65536)
        else:
            data = image[off:off + 65536]
        if os.preadv(dev, [buf], off) != 65536 or buf[:] != data:
            raise Fail(f"{what}: read at byte {off} does not return the expected data")
        os.close(dev)
        dm.call(REMOVE, name)
        with open(f"/sys/module/{mod}/refcnt") as f:
            if int(f.read()) != 0:
                raise Fail(f"{what}: {mod} still in use after the remove")
        if libc.syscall(176, mod.encode(), os.O_NONBLOCK) != 0:  # delete_module
            raise Fail(f"{what}: rmmod {mod}: {os.strerror(ctypes.get_errno())}")
        if os.path.exists(f"/sys/module/{mod}"):
            raise Fail(f"{what}: {mod} still loaded after rmmod")
        if i == int(a["warm"]):
            settle()
            samples["warm"] = meminfo()
    settle()
    samples["end"] = meminfo()
    samples["seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps(samples))


def reader(a):
    """--dev D --image F [--seconds S]: random O_DIRECT reads (4 KiB to
    64 KiB at 4 KiB-aligned offsets) compared with the image, until SIGINT
    or SIGTERM; exits 1 at the first error or wrong byte."""
    image = open(a["image"], "rb").read()
    fd = os.open(a["dev"], os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, 65536)
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    rnd = random.Random()
    nblk = len(image) // 4096
    reads = nbytes = 0
    while not stop:
        n = rnd.choice((1, 1, 2, 4, 16))
        off = rnd.randrange(0, nblk - n + 1) * 4096
        mv = memoryview(buf)[:n * 4096]
        try:
            got = os.preadv(fd, [mv], off)
        except InterruptedError:
            continue
        except OSError as e:
            print(f"reader: read of {n * 4096} bytes at {off} failed: {os.strerror(e.errno)}")
            sys.exit(1)
        if got != n * 4096 or mv != image[off:off + n * 4096]:
            bad = next((j for j in range(got) if mv[j] != image[off + j]), got)
            print(f"reader: wrong data: {got} bytes read at {off}, first bad byte at {off + bad}")
            sys.exit(1)
        reads += 1
        nbytes += got
    print(f"reader: {reads} reads, {nbytes} bytes, all correct")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    a, i = {}, 0
    while i < len(args):
        key = args[i][2:]
        if i + 1 < len(args) and not args[i + 1].startswith("--"):
            a[key] = args[i + 1]
            i += 2
        else:
            a[key] = True
            i += 1
    # A deadline for the whole command (SIGALRM ends the process unless it
    # is stuck in the kernel, which vm-run's deadline and the hung-task
    # check catch).
    signal.alarm(int(a.get("deadline", 1200 * SCALE)))
    try:
        {"cycles": cycles, "modloop": modloop, "reader": reader}[cmd](a)
    except Fail as e:
        print(f"FAIL: {e}")
        sys.exit(1)


main()
EOF
}

# ==== the cycles ==============================================================
DEVNAME=rdmt-a-cyc

# run_cycles TABLE [ro] [HELPER-OPTIONS...]: N_CYCLES cycles of suspend +
# resume, then N_CYCLES of load (TABLE) + suspend + resume, of $DEVNAME
# (served by our module) while workload $WPID runs; dies if any fails.
run_cycles() {
	local table=$1 ro=${2:-} kind i out rc=0
	shift 2 || shift
	local n=$N_CYCLES
	if [ "${CYCLES_DMSETUP:-0}" = 1 ]; then
		for kind in suspend reload; do
			local t0=$SECONDS
			for ((i = 1; i <= N_CYCLES; i++)); do
				if [ "$kind" = reload ]; then
					timeout $((120 * SCALE)) dmsetup load ${ro:+--readonly} $DEVNAME --table "$table" ||
						die "$kind cycle $i: load failed"
				fi
				timeout $((120 * SCALE)) dmsetup suspend $DEVNAME || die "$kind cycle $i: suspend failed"
				timeout $((120 * SCALE)) dmsetup resume $DEVNAME || die "$kind cycle $i: resume failed"
				kill -0 "$WPID" 2>/dev/null || die "$kind cycle $i: the workload ended"
			done
			note "$N_CYCLES $kind cycles through dmsetup in $((SECONDS - t0)) s"
		done
		n=0 # the helper only checks the device and makes the checks after
	fi
	out=$("${PY[@]}" "$DMIO" cycles --name $DEVNAME --kinds suspend,reload \
		--count "$n" --table "$table" ${ro:+--ro} --pid "$WPID" "$@") || rc=$?
	[ $rc -eq 0 ] || die "cycles (rc $rc): $out"
	note "${out//$'\n'/$'\n'# }"
	impl_assert_served $DEVNAME
}

# fio_start DEV SIZE: fio writes DEV's first SIZE bytes at random, 4 to 64
# KiB at a time, each block with a crc32c header, and reads back and checks
# what it wrote (verify_backlog) as it goes; it stops at the first I/O error
# or mismatch. Runs until stopped (fio_stop_check).
fio_start() {
	fio --name=cycles --filename="$1" --size="$2" --direct=1 --ioengine=libaio \
		--rw=randwrite --bssplit=4k/60:16k/30:64k/10 --iodepth=4 --verify=crc32c \
		--verify_backlog=64 --verify_fatal=1 --verify_state_save=0 --time_based --runtime=1800 \
		--output="$SCRATCH/fio.out" >/dev/null 2>&1 &
	WPID=$!
	# A test that fails leaves no workload holding its device open.
	trap 'kill -KILL $WPID 2>/dev/null || true' EXIT
	# Under way before the cycles start.
	wait_for 60 "fio writing to $3" io_started "$3" 4 "$SCRATCH/fio.out"
}

# io_started KNAME FIELD OUT: the workload $WPID completed more than 16 I/Os
# of that kind (/sys/block/KNAME/stat field FIELD, from 0: 0 reads, 4
# writes); dies with OUT if it ended.
io_started() {
	local a
	read -r -a a <"/sys/block/$1/stat"
	[ "${a[$2]}" -gt 16 ] && return 0
	kill -0 $WPID 2>/dev/null || { cat "$3" >&2; die "the workload ended at once"; }
	return 1
}

# wait_pid PID: waits (300 s at most: fio can take minutes to wind down on
# the debug kernel) for PID to end; sets WRC to its status.
wait_pid() {
	local t0=$SECONDS
	while kill -0 "$1" 2>/dev/null && [ $((SECONDS - t0)) -lt $((300 * SCALE)) ]; do nap 0.1; done
	kill -0 "$1" 2>/dev/null && die "pid $1 did not end within 300 s of SIGINT"
	[ $((SECONDS - t0)) -lt 10 ] || note "the workload took $((SECONDS - t0)) s to end"
	WRC=0
	wait "$1" || WRC=$?
}

# fio_stop_check: stops fio; it must have run to the end without an I/O
# error or a verify mismatch, having written and verified data.
fio_stop_check() {
	local alive=1
	kill -0 $WPID 2>/dev/null || alive=0
	kill -INT $WPID 2>/dev/null || true
	wait_pid $WPID
	local out
	out=$(<"$SCRATCH/fio.out")
	[ $alive = 1 ] || { echo "$out" >&2; die "fio had ended before it was stopped (rc $WRC)"; }
	[[ "$out" =~ err=\ *0 ]] || { echo "$out" >&2; die "fio reports an error (rc $WRC)"; }
	if [[ "$out" =~ err=\ *[1-9] ]] || [[ "$out" =~ (verify:|bad magic|bad header|verify failed|mismatch) ]]; then
		echo "$out" >&2
		die "fio reports a verify failure or an error"
	fi
	[[ "$out" =~ issued\ rwts:\ total=([0-9]+),([0-9]+) ]] || { echo "$out" >&2; die "no fio totals"; }
	local r=${BASH_REMATCH[1]} w=${BASH_REMATCH[2]}
	[ "$r" -gt 0 ] && [ "$w" -gt 0 ] || die "fio read $r and wrote $w blocks: nothing verified"
	note "fio: $w writes, $r verify reads, err=0"
}

# reader_start DEV IMAGE: the verity workload (see the helper's reader).
reader_start() {
	"${PY[@]}" "$DMIO" reader --dev "$1" --image "$2" >"$SCRATCH/reader.out" 2>&1 &
	WPID=$!
	trap 'kill -KILL $WPID 2>/dev/null || true' EXIT
	wait_for 60 "the reader reading from $3" io_started "$3" 0 "$SCRATCH/reader.out"
}

reader_stop_check() {
	local alive=1 out
	kill -0 $WPID 2>/dev/null || alive=0
	kill -INT $WPID 2>/dev/null || true
	wait_pid $WPID
	out=$(<"$SCRATCH/reader.out")
	[ $alive = 1 ] && [ $WRC = 0 ] || die "reader (rc $WRC): $out"
	[[ "$out" =~ reader:\ ([0-9]+)\ reads.*all\ correct ]] && [ "${BASH_REMATCH[1]}" -gt 0 ] ||
		die "reader: $out"
	note "$out"
}

# Shared images, made once (making pseudo-random data and hashing it is slow
# under TCG): an 8 MiB verity data image (VIMG), formatted by veritysetup
# (4 KiB blocks, sha256) into VHIMG, with VTABLE_ARGS the table arguments
# after the two devices; a 16 MiB clone source (CSRC).
suite_setup() {
	VIMG=$SCRATCH/cyc-vdata.img VHIMG=$SCRATCH/cyc-vhash.img CSRC=$SCRATCH/cyc-csrc.img
	pattern "$VIMG" 16384 cycles-verity
	pattern "$CSRC" 32768 cycles-clone
	truncate -s 1M "$VHIMG"
	local k v root= salt=
	veritysetup format "$VIMG" "$VHIMG" >"$SCRATCH/format.out" 2>&1 ||
		{ cat "$SCRATCH/format.out" >&2; echo "# veritysetup format failed"; }
	while IFS=: read -r k v; do
		v=${v//[[:space:]]/}
		case "$k" in "Root hash") root=$v ;; Salt) salt=$v ;; esac
	done <"$SCRATCH/format.out"
	VTABLE_ARGS="4096 4096 2048 1 sha256 $root $salt"
}

# verity_loops: read-only loop devices over the verity images; sets
# VTABLE.
verity_loops() {
	VDATA=$(losetup --find --show --read-only "$VIMG")
	VHASH=$(losetup --find --show --read-only "$VHIMG")
	VTABLE="0 16384 verity 1 $(devnum "$VDATA") $(devnum "$VHASH") $VTABLE_ARGS"
}

t_cycles_linear() {
	cleanup
	impl_load linear rust
	kmark
	local lo table
	lo=$(new_loop cyc-lin 16)
	table="0 32768 linear_rs $(devnum "$lo") 0"
	dmsetup create $DEVNAME --table "$table"
	impl_assert_served $DEVNAME
	dm_kname $DEVNAME || die "no dm device named $DEVNAME"
	note "set-up: $((SECONDS - TEST_T0)) s"
	fio_start /dev/mapper/$DEVNAME 12M "$KNAME"
	run_cycles "$table"
	fio_stop_check
	dmsetup remove $DEVNAME
	free_loop "$lo"
	rm -f "$SCRATCH/cyc-lin.img"
	assert_no_kernel_report
}

# verity: the reader compares every byte with the image; afterwards the
# status is still V (no corruption seen).
t_cycles_verity() {
	cleanup
	impl_load verity rust
	kmark
	verity_loops
	dmsetup create $DEVNAME --readonly --table "$VTABLE"
	impl_assert_served $DEVNAME
	dm_kname $DEVNAME || die "no dm device named $DEVNAME"
	note "set-up: $((SECONDS - TEST_T0)) s"
	reader_start /dev/mapper/$DEVNAME "$VIMG" "$KNAME"
	run_cycles "$VTABLE" ro
	reader_stop_check
	assert_eq "0 16384 verity V" "$(dmsetup status $DEVNAME)" "status after the cycles"
	dmsetup remove $DEVNAME
	free_loop "$VDATA"
	free_loop "$VHASH"
	assert_no_kernel_report
}

# era: every resume starts a new era, so the era has moved on by at least
# 2 * N_CYCLES afterwards; the metadata passes era_check after the remove.
# (The C dm-era of 6.12 failed this once when tried: era_check found a
# damaged writeset, "missing bits".)
t_cycles_era() {
	cleanup
	impl_load era rust
	kmark
	local md or table s e0 e1
	md=$(new_loop cyc-era-md 4)
	or=$(new_loop cyc-era-or 16)
	table="0 32768 era $(devnum "$md") $(devnum "$or") 128"
	dmsetup create $DEVNAME --table "$table"
	impl_assert_served $DEVNAME
	s=$(dmsetup status $DEVNAME); set -- $s; e0=$6
	dm_kname $DEVNAME || die "no dm device named $DEVNAME"
	note "set-up: $((SECONDS - TEST_T0)) s"
	fio_start /dev/mapper/$DEVNAME 12M "$KNAME"
	run_cycles "$table"
	fio_stop_check
	s=$(dmsetup status $DEVNAME); set -- $s; e1=$6
	[ "$e1" -ge $((e0 + 2 * N_CYCLES)) ] || die "era went from $e0 to $e1 over $((2 * N_CYCLES)) resumes"
	note "era $e0 -> $e1"
	dmsetup remove $DEVNAME
	era_check "$md" >"$SCRATCH/era_check.out" 2>&1 || { cat "$SCRATCH/era_check.out" >&2; die "era_check failed"; }
	free_loop "$md"
	free_loop "$or"
	rm -f "$SCRATCH/cyc-era-md.img" "$SCRATCH/cyc-era-or.img"
	assert_no_kernel_report
}

# clone: hydration running (one region at a time) during the cycles, fio
# on the first 12 MiB. Afterwards (fio still writing) the clone finishes
# hydrating (status rw, not Fail) and its last 4 MiB, never written, read
# the source.
t_cycles_clone() {
	cleanup
	impl_load clone rust
	kmark
	local md dst src table
	md=$(new_loop cyc-cl-md 4)
	dst=$(new_loop cyc-cl-dst 16)
	src=$(losetup --find --show --read-only "$CSRC")
	table="0 32768 clone $(devnum "$md") $(devnum "$dst") $(devnum "$src") 128"
	dmsetup create $DEVNAME --table "$table"
	impl_assert_served $DEVNAME
	dm_kname $DEVNAME || die "no dm device named $DEVNAME"
	note "set-up: $((SECONDS - TEST_T0)) s"
	fio_start /dev/mapper/$DEVNAME 12M "$KNAME"
	run_cycles "$table" "" --hydrated --compare "$CSRC" --from $((12 << 20))
	fio_stop_check
	dmsetup remove $DEVNAME
	free_loop "$md"
	free_loop "$dst"
	free_loop "$src"
	rm -f "$SCRATCH"/cyc-cl-*.img
	assert_no_kernel_report
}

# ==== module load/unload loop =================================================
# Growth allowed over the measured part of the loop (after the warm-up
# iterations), per counter, in KiB. Generous: the noise measured over the
# loop is below 100 KiB; a leak of a table, a bio_set or a bufio or kcopyd
# client per iteration exceeds it. On the debug kernel (KASAN's quarantine
# holds freed memory) the growth is only shown, kmemleak is the check.
LEAK_MARGIN_KIB=${LEAK_MARGIN_KIB:-2048}
WARM=3

kmemleak_file() {
	local f=/sys/kernel/debug/kmemleak
	if [ ! -e $f ] && [ -d /sys/kernel/debug ] && ! mountpoint -q /sys/kernel/debug; then
		mount -t debugfs none /sys/kernel/debug 2>/dev/null || true
	fi
	[ -e $f ] && echo $f
}

# modloop TARGET TABLE [ro] [IMAGE] [WIPE-DEV]: our module is not loaded;
# the helper loads and unloads it N_LOADS times (device, I/O, remove each
# time).
modloop() {
	local target=$1 table=$2 ro=${3:-} image=${4:-} wipe=${5:-} out rc=0 kml twin
	impl_select "$target" rust
	twin=${IMPL_OTHERS%% *}
	MOD=$IMPL_MOD
	impl_deps
	impl_ko_file
	KO=$IMPL_KO_FILE
	# Nothing of ours stays loaded (no device of ours may exist).
	if mod_loaded "$MOD"; then rmmod "$MOD" || die "rmmod $MOD before the loop"; fi
	kml=$(kmemleak_file) || true
	[ -z "$kml" ] || echo clear >"$kml"
	out=$("${PY[@]}" "$DMIO" modloop --ko "$KO" --mod "$MOD" --twin "${twin:-none}" \
		--target "$IMPL_TYPE" --name rdmt-a-load --table "$table" ${ro:+--ro} ${image:+--image "$image"} \
		${wipe:+--wipe "$wipe"} --iters "$N_LOADS" --warm $WARM) || rc=$?
	[ $rc -eq 0 ] || die "module loop (rc $rc): $out"
	mod_loaded "$MOD" && die "$MOD loaded after the loop"
	if [ -n "$twin" ] && mod_loaded "$twin"; then die "the C $twin got loaded"; fi
	# Memory: {"warm": {...}, "end": {...}, "seconds": S}, in KiB.
	local k w e grew=() grew_all=()
	for k in SUnreclaim VmallocUsed Percpu; do
		[[ "$out" =~ \"warm\":\ \{[^}]*\"$k\":\ ([0-9]+) ]] || die "no warm $k in: $out"
		w=${BASH_REMATCH[1]}
		[[ "$out" =~ \"end\":\ \{[^}]*\"$k\":\ ([0-9]+) ]] || die "no end $k in: $out"
		e=${BASH_REMATCH[1]}
		[ $((e - w)) -le "$LEAK_MARGIN_KIB" ] || grew+=("$k +$((e - w)) KiB")
		grew_all+=("$k $w -> $e KiB")
	done
	[[ "$out" =~ \"seconds\":\ ([0-9.]+) ]]
	note "$N_LOADS loads and unloads in ${BASH_REMATCH[1]} s; over the last $((N_LOADS - WARM)): ${grew_all[*]}"
	if [ -z "$kml" ]; then
		[ ${#grew[@]} = 0 ] || die "kernel memory grew over the loop: ${grew[*]}"
	else
		kmemleak_check "$kml" "$table" "$ro"
	fi
}

# kmemleak_check FILE TABLE [ro]: once more with the module left loaded
# (so that its symbols resolve in the backtraces), then a kmemleak scan: no
# unreferenced object allocated from our module or from an unresolved
# module address.
kmemleak_check() {
	local kml=$1 leaks
	insmod "$KO" || die "insmod $KO"
	dmsetup create rdmt-a-load ${3:+--readonly} --table "$2" || die "create after the loop"
	dd if=/dev/mapper/rdmt-a-load of=/dev/null bs=64k count=4 iflag=direct status=none
	dmsetup remove rdmt-a-load
	# kmemleak reports objects at least 5 s old; scan twice.
	sleep 6
	echo scan >"$kml"
	echo scan >"$kml"
	leaks=$(awk -v RS='unreferenced object' -v mod="[$MOD]" \
		'NR > 1 && (index($0, mod) || $0 ~ /\] 0xffffffffc/) { print "unreferenced object" $0 }' "$kml")
	rmmod "$MOD" || die "rmmod $MOD after the kmemleak scan"
	if [ -n "$leaks" ]; then
		echo "$leaks" | head -n 80 >&2
		die "kmemleak: leaks from $MOD"
	fi
	note "kmemleak: no leak from $MOD"
}

t_modloop_linear() {
	cleanup
	kmark
	local lo
	lo=$(new_loop cyc-ml-lin 8)
	modloop linear "0 16384 linear_rs $(devnum "$lo") 0"
	free_loop "$lo"
	assert_no_kernel_report
}

t_modloop_verity() {
	cleanup
	kmark
	verity_loops
	modloop verity "$VTABLE" ro "$VIMG"
	free_loop "$VDATA"
	free_loop "$VHASH"
	assert_no_kernel_report
}

# era: the first device formats the metadata, the others open it.
t_modloop_era() {
	cleanup
	kmark
	local md or
	md=$(new_loop cyc-ml-md 4)
	or=$(new_loop cyc-ml-or 8)
	modloop era "0 16384 era $(devnum "$md") $(devnum "$or") 128"
	era_check "$md" >"$SCRATCH/era_check.out" 2>&1 || { cat "$SCRATCH/era_check.out" >&2; die "era_check failed"; }
	free_loop "$md"
	free_loop "$or"
	assert_no_kernel_report
}

# clone: fresh metadata each time, hydration running when the device is
# removed (8 KiB regions: 1024 of them, not all copied in one iteration).
t_modloop_clone() {
	cleanup
	kmark
	local md dst src
	md=$(new_loop cyc-ml-md 4)
	dst=$(new_loop cyc-ml-dst 8)
	src=$(losetup --find --show --read-only "$CSRC")
	modloop clone "0 16384 clone $(devnum "$md") $(devnum "$dst") $(devnum "$src") 16" "" "" "$md"
	free_loop "$md"
	free_loop "$dst"
	free_loop "$src"
	assert_no_kernel_report
}

# ==== main ====================================================================
T0=$SECONDS
write_helper
suite_setup
suite_tests() {
	echo "# N_CYCLES=$N_CYCLES N_LOADS=$N_LOADS; set-up $((SECONDS - T0)) s"
	run_test cycles_linear t_cycles_linear
	run_test cycles_verity t_cycles_verity
	run_test cycles_era t_cycles_era
	run_test cycles_clone t_cycles_clone
	run_test modloop_linear t_modloop_linear
	run_test modloop_verity t_modloop_verity
	run_test modloop_era t_modloop_era
	run_test modloop_clone t_modloop_clone
}

ktap_suite cycles suite_tests
cleanup
rm -f "$SCRATCH"/cyc-*.img "$DMIO" "$SCRATCH"/format.out
echo "# suite time: $((SECONDS - T0)) s"
