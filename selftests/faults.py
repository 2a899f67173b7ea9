# SPDX-License-Identifier: GPL-2.0
"""Runs the steps given as arguments (see faults.sh)."""
import errno, mmap, os, random, re, signal, stat, struct, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import dmio  # noqa: E402
from dmio import CREATE, REMOVE, SUSPEND, DEVSTATUS, LOAD, TSTATUS, MSG  # noqa: E402
from dmio import F_RO, F_SUSPEND, F_TABLE, F_ACTIVE, F_INACTIVE  # noqa: E402,F401

# Deadlines scale with the kernel flavour (selftests/lib/suite.sh: SCALE).
SCALE = int(os.environ.get("SCALE", "1"))
BLK = 4096


class Fail(Exception):
    pass


def dm(nr, name, flags=0, data=b"", count=0, room=64):
    fd = os.open("/dev/mapper/control", os.O_RDWR | os.O_CLOEXEC)
    try:
        return dmio.ioctl(fd, nr, name, flags, data, count, room)
    except OSError as e:
        raise Fail(f"DM ioctl {nr} of {name}: {os.strerror(e.errno)}")
    finally:
        os.close(fd)


def load(name, w, ro):
    data, count = dmio.table([(int(w[0]), int(w[1]), w[2], " ".join(w[3:]))])
    dm(LOAD, name, F_RO if ro else 0, data, count)


def resume_check(name):
    dm(SUSPEND, name)
    fl = struct.unpack_from("=I", dm(DEVSTATUS, name), 28)[0]
    if fl & F_SUSPEND or fl & F_INACTIVE or not fl & F_ACTIVE:
        raise Fail(f"{name}: flags {fl:#x} after the resume")


def table_status(name, flags):
    """(type, params) of the one target of NAME's live table."""
    return dmio.targets(dm(TSTATUS, name, flags, room=16384))[0]


def s_create(w, ro=False):
    name = w[0]
    b = dm(CREATE, name)
    dev = struct.unpack_from("=Q", b, 40)[0]
    load(name, w[1:], ro)
    resume_check(name)
    path = f"/dev/mapper/{name}"
    if os.path.lexists(path):
        os.unlink(path)
    os.mknod(path, stat.S_IFBLK | 0o600, os.makedev((dev >> 8) & 0xfff, (dev & 0xff) | ((dev >> 12) & 0xfff00)))


def s_swap(w, ro=False):
    load(w[0], w[1:], ro)
    dm(SUSPEND, w[0], F_SUSPEND)
    resume_check(w[0])


def s_remove(w):
    dm(REMOVE, w[0])
    if os.path.lexists(f"/dev/mapper/{w[0]}"):
        os.unlink(f"/dev/mapper/{w[0]}")


def s_msg(w):
    dm(MSG, w[0], data=dmio.message_data(" ".join(w[1:])), room=4096)


def s_served(w):
    name, ttype, mod, others = (w + [""])[:4]
    t, _ = table_status(name, F_TABLE)
    if t != ttype:
        raise Fail(f"target type of {name} is {t}, not {ttype}")
    with open(f"/sys/module/{mod}/refcnt") as f:
        n = int(f.read())
    if n < 1:
        raise Fail(f"{mod} not in use (refcount {n})")
    for other in filter(None, others.split(",")):
        if os.path.exists(f"/sys/module/{other}"):
            raise Fail(f"{other} is loaded too")


def s_status(w):
    t, p = table_status(w[0], 0)
    line = f"{t} {p}".strip()
    if not re.fullmatch(" ".join(w[1:]), line):
        raise Fail(f"status of {w[0]}: '{line}', expected /{' '.join(w[1:])}/")


def file_blocks(path, first, n):
    with open(path, "rb") as f:
        f.seek(first * BLK)
        data = f.read(n * BLK)
    if len(data) != n * BLK:
        raise Fail(f"{path} has no blocks {first}+{n}")
    return data


def pread(dev, blk, n):
    """The data, or None for EIO."""
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, n * BLK)
    try:
        got = os.preadv(fd, [buf], blk * BLK)
    except OSError as e:
        if e.errno != errno.EIO:
            raise Fail(f"read: {os.strerror(e.errno)}, not EIO")
        return None
    finally:
        os.close(fd)
    if got != n * BLK:
        raise Fail(f"short read: {got} bytes")
    return buf[:]


def check_read(w, tries):
    dev, blk, n = w[0], int(w[1]), int(w[2])
    if w[3] == "EIO":
        if pread(dev, blk, n) is not None:
            raise Fail("the read succeeded")
        return
    want = file_blocks(w[4], int(w[5]), n)
    for t in range(tries):
        got = pread(dev, blk, n)
        if got is not None:
            break
        if t + 1 == tries:
            raise Fail("the read failed with EIO")
    if got != want:
        bad = next(i for i in range(len(want)) if got[i] != want[i])
        raise Fail(f"wrong data, first wrong byte in block {blk + bad // BLK}")


def s_write(w):
    dev, blk, n = w[0], int(w[1]), int(w[2])
    data = file_blocks(w[3], int(w[4]), n)
    fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, n * BLK)
    buf[:] = data
    try:
        got = os.pwritev(fd, [buf], blk * BLK)
    except OSError as e:
        if e.errno != errno.EIO:
            raise Fail(f"write: {os.strerror(e.errno)}, not EIO")
        if w[5:] != ["EIO"]:
            raise Fail("the write failed with EIO")
        return
    finally:
        os.close(fd)
    if w[5:] == ["EIO"]:
        raise Fail("the write succeeded")
    if got != n * BLK:
        raise Fail(f"short write: {got} bytes")


RW = {}


def s_rw(w, m=30, deadline=180 * SCALE):
    """The checking workload (see faults.sh)."""
    dev, first, n = w[0], int(w[1]), int(w[2])
    init = file_blocks(w[3], first, n)
    opts = w[4:]
    ro = next((o[3:] for o in opts if o.startswith("ro=")), None)
    RW["reverted"] = False
    may = {}  # block -> contents it may hold (absent: init)
    fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
    buf = mmap.mmap(-1, BLK)
    c = {"writes ok": 0, "writes EIO": 0, "reads ok": 0, "reads EIO": 0}
    rnd = random.Random()
    t0 = time.monotonic()
    ok_blocks = set()
    while True:
        done = c["writes ok"] >= m and c["writes EIO"] >= m
        if "reads-fail" in opts:
            done = done and c["reads ok"] >= m and c["reads EIO"] >= m
        if done:
            break
        if time.monotonic() - t0 > deadline:
            raise Fail(f"not every outcome seen {m} times in {deadline} s: {c}")
        b = rnd.randrange(n)
        off = (first + b) * BLK
        old = may.get(b, [init[b * BLK:(b + 1) * BLK]])
        if rnd.random() < 0.6:
            data = rnd.randbytes(BLK)
            buf[:] = data
            try:
                if os.pwritev(fd, [buf], off) != BLK:
                    raise Fail(f"short write at block {first + b}")
                may[b] = [data]
                c["writes ok"] += 1
                ok_blocks.add(first + b)
            except OSError as e:
                if e.errno != errno.EIO:
                    raise Fail(f"write of block {first + b}: {os.strerror(e.errno)}, not EIO")
                may[b] = old + [data]
                c["writes EIO"] += 1
        else:
            try:
                got = os.preadv(fd, [buf], off)
            except OSError as e:
                if e.errno != errno.EIO:
                    raise Fail(f"read of block {first + b}: {os.strerror(e.errno)}, not EIO")
                c["reads EIO"] += 1
                continue
            if got != BLK or buf[:] not in old:
                if not (ro and buf[:] == init[b * BLK:(b + 1) * BLK] and clone_mode(ro) == "ro"):
                    raise Fail(f"read of block {first + b} returned data it never held ({c})")
                # C semantics: the clone went read-only (a metadata
                # operation failed: the commit's flush of the destination)
                # and reloaded the committed bitmap: a region hydrated since
                # the last commit reads the source again.
                RW["reverted"] = True
            may[b] = [buf[:]]
            c["reads ok"] += 1
    os.close(fd)
    RW.update(dev=dev, first=first, n=n, init=init, may=may)
    for o in opts:
        if o.startswith("ok="):
            with open(o[3:], "w") as f:
                f.write(" ".join(map(str, sorted(ok_blocks))) + "\n")
    print(f"rw: {c} in {time.monotonic() - t0:.1f} s")


def clone_mode(name):
    return table_status(name, 0)[1].split()[-1]


def s_reopen_if_ro(w):
    """NAME TABLE: if clone NAME is in read-only mode, re-create it with
    TABLE (C: only a new table leaves read-only mode); what was hydrated
    since the last commit reads the source again."""
    if clone_mode(w[0]) != "ro":
        return
    s_remove(w[:1])
    s_create(w)
    RW["reverted"] = True
    print(f"{w[0]} was in read-only mode (a metadata operation failed), re-created")


def s_verify(w):
    first, n, init, may = RW["first"], RW["n"], RW["init"], RW["may"]
    data = pread(w[0], first, n)
    if data is None:
        raise Fail("the read failed with EIO")
    for b in range(n):
        ok = may.get(b, [init[b * BLK:(b + 1) * BLK]])
        if RW["reverted"]:
            ok = ok + [init[b * BLK:(b + 1) * BLK]]
        if data[b * BLK:(b + 1) * BLK] not in ok:
            raise Fail(f"block {first + b} does not hold what it may "
                       f"({'written' if b in may else 'never written'})")
    print(f"verify: {n} blocks, {len(may)} written, all hold what they may"
          f"{' (or the source: clone went read-only)' if RW['reverted'] else ''}")


def s_reader(w, m=30, deadline=180 * SCALE):
    image = open(w[1], "rb").read()
    fd = os.open(w[0], os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, BLK)
    rnd = random.Random()
    ok = eio = 0
    t0 = time.monotonic()
    while ok < m or eio < m:
        if time.monotonic() - t0 > deadline:
            raise Fail(f"{ok} correct reads and {eio} EIO in {deadline} s, wanted {m} of each")
        off = rnd.randrange(len(image) // BLK) * BLK
        try:
            got = os.preadv(fd, [buf], off)
        except OSError as e:
            if e.errno != errno.EIO:
                raise Fail(f"read at {off}: {os.strerror(e.errno)}, not EIO")
            eio += 1
            continue
        if got != BLK or buf[:] != image[off:off + BLK]:
            raise Fail(f"read at {off} returned wrong data")
        ok += 1
    os.close(fd)
    print(f"reader: {ok} correct, {eio} EIO in {time.monotonic() - t0:.1f} s")


def s_wait_hydrated(w, deadline=120 * SCALE):
    t0 = time.monotonic()
    while True:
        _, p = table_status(w[0], 0)
        v = p.split()
        if v[-1] != "rw":
            raise Fail(f"clone mode {v[-1]}: {p}")
        hyd, nreg = v[3].split("/")
        if hyd == nreg and v[4] == "0":
            return
        if time.monotonic() - t0 > deadline:
            raise Fail(f"hydration not finished in {deadline} s: {p}")
        time.sleep(0.2)


def s_no_writes(w):
    b = dm(DEVSTATUS, w[0])
    dev = struct.unpack_from("=Q", b, 40)[0]
    with open(f"/sys/dev/block/{(dev >> 8) & 0xfff}:{(dev & 0xff) | ((dev >> 12) & 0xfff00)}/stat") as f:
        n = int(f.read().split()[4])
    if n:
        raise Fail(f"{n} writes to {w[0]}")


STEPS = {
    "create": s_create, "create-ro": lambda w: s_create(w, True),
    "swap": s_swap, "swap-ro": lambda w: s_swap(w, True), "remove": s_remove,
    "msg": s_msg, "served": s_served, "status": s_status,
    "read": lambda w: check_read(w, 1), "read2": lambda w: check_read(w, 2),
    "write": s_write, "rw": s_rw, "verify": s_verify, "reader": s_reader,
    "wait-hydrated": s_wait_hydrated, "no-writes": s_no_writes,
    "sleep": lambda w: time.sleep(float(w[0])), "reopen-if-ro": s_reopen_if_ro,
}


def main():
    # A deadline (SIGALRM ends the process unless it is stuck in the kernel,
    # which vm-run's deadline and the hung-task check catch).
    signal.alarm(600 * SCALE)
    for i, step in enumerate(sys.argv[1:], 1):
        w = step.split()
        try:
            STEPS[w[0]](w[1:])
        except (Fail, OSError) as e:
            print(f"FAIL: step {i} `{step}`: {e}")
            sys.exit(1)


main()
