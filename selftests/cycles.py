# SPDX-License-Identifier: GPL-2.0
"""DM ioctls without a process per command (as dmsetup makes them), a
module load/unload loop, and an O_DIRECT reader checking every byte."""
import ctypes, json, mmap, os, random, signal, struct, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
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
