# SPDX-License-Identifier: GPL-2.0
# Workload and checker of selftests/clone_crash.sh (see there).
import argparse, hashlib, importlib.machinery, importlib.util, json, mmap, os
import random, stat, struct, sys, threading, time

BS = 4096
HDR = struct.Struct("<8sQQQ")
SRC_MAGIC = b"CCSRC\0\0\0"
WRK_MAGIC = b"CCWRK\0\0\0"


def _filler(tag):
    d = hashlib.blake2b(tag, digest_size=64).digest()
    return (d * (BS // 64))[:BS - HDR.size]


def src_block(b):
    return HDR.pack(SRC_MAGIC, b, 0, 0) + _filler(b"s%d" % b)


def wrk_block(b, g):
    return HDR.pack(WRK_MAGIC, b, g, 0) + _filler(b"w%d:%d" % (b, g))


# ---- device-mapper ioctls (no process per call: marks are cheap) ----
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import dmio  # noqa: E402

SPEC = struct.Struct("<QQiI16s")
DEV_CREATE, DEV_REMOVE, DEV_SUSPEND, TABLE_LOAD, TABLE_STATUS, TARGET_MSG = 3, 4, 6, 9, 12, 14
NOFLUSH_FLAG, BUFFER_FULL_FLAG = 1 << 11, 1 << 8


class DM:
    def __init__(self):
        self.fd = os.open("/dev/mapper/control", os.O_RDWR)

    def call(self, nr, name, payload=b"", flags=0, count=0, size=0):
        room = max(0, size - dmio.DM_SIZE - len(payload))
        return dmio.ioctl(self.fd, nr, name, flags, payload, count, room)

    def message(self, name, msg):
        self.call(TARGET_MSG, name, dmio.message_data(msg))

    def create(self, name, length, ttype, params):
        buf = self.call(DEV_CREATE, name)
        spec, count = dmio.table([(0, length, ttype, params)])
        try:
            self.call(TABLE_LOAD, name, spec, count=count)
            buf = self.call(DEV_SUSPEND, name)  # no SUSPEND flag: resume
        except OSError:
            self.remove(name)
            raise
        return struct.unpack_from("<Q", buf, 40)[0]

    def remove(self, name):
        self.call(DEV_REMOVE, name)

    def status(self, name):
        """(target type, status line) of a one-target device, without the
        commit a status normally triggers in dm-clone."""
        buf = self.call(TABLE_STATUS, name, flags=NOFLUSH_FLAG, size=1024)
        flags, start = struct.unpack_from("<I", buf, 28)[0], struct.unpack_from("<I", buf, 16)[0]
        if flags & BUFFER_FULL_FLAG:
            raise OSError("status of %s too long" % name)
        ttype = SPEC.unpack_from(buf, start)[4].rstrip(b"\0").decode()
        line = bytes(buf[start + SPEC.size:]).split(b"\0")[0].decode()
        return ttype, line


def hydration(dm, name):
    f = dm.status(name)[1].split()
    h, t = f[3].split("/")
    return int(h), int(t)


# ---- source ----
def cmd_source(a):
    with open(a.img, "wb") as f:
        for b in range(a.blocks):
            f.write(src_block(b))


# ---- workload ----
def cmd_workload(a):
    dm, dm_marks = DM(), DM()
    fd = os.open(a.dev, os.O_RDWR | os.O_DIRECT)
    size = os.lseek(fd, 0, os.SEEK_END)
    nblocks = size // BS
    ttype, line = dm.status(a.clone)
    region_blocks = int(line.split()[2]) * 512 // BS
    nregions = nblocks // region_blocks
    buf = mmap.mmap(-1, region_blocks * BS)
    rng = random.Random(a.seed)
    # [block, gen] before a write is submitted; "F" after fdatasync returned
    # (the writes before it are durable); ["S", block, gen] after a
    # RWF_DSYNC write returned (that write is durable).
    journal = []
    marks = []          # [name, journal length before the meta mark, after the dest mark, kind]
    lock = threading.Lock()
    t0 = time.monotonic()

    def mark_pair(kind):
        with lock:
            n = "m%d" % len(marks)
            pre = len(journal)
            dm_marks.message(a.lw_meta, "mark " + n)   # metadata first,
            dm_marks.message(a.lw_dest, "mark " + n)   # then the destination
            marks.append([n, pre, len(journal), kind])

    stop = threading.Event()
    err = []

    def marker():
        try:
            while not stop.wait(a.mark_ms / 1000.0):
                mark_pair("t")
        except Exception as e:  # reported by the main thread
            err.append(e)

    mark_pair("start")
    th = threading.Thread(target=marker)
    th.start()
    gen = batches = writes = whole = synced = 0
    hyd_at_end = done_at = None
    sync_times = []
    try:
        dm.message(a.clone, "enable_hydration")
        while not err and batches < a.batches:
            for _ in range(rng.randint(2, 6)):
                k = rng.random()
                if k < 0.2:       # a whole region: no copy
                    first = rng.randrange(nregions) * region_blocks
                    n = region_blocks
                    whole += 1
                elif k < 0.35:    # two blocks in one region
                    first = rng.randrange(nregions) * region_blocks + rng.randrange(region_blocks - 1)
                    n = 2
                else:
                    first = rng.randrange(nblocks)
                    n = 1
                # One write in ten is RWF_DSYNC (FUA, or write + flush):
                # durable when it returns.
                dsync = rng.random() < 0.1
                gen += 1
                for i in range(n):
                    buf[i * BS:(i + 1) * BS] = wrk_block(first + i, gen)
                    journal.append([first + i, gen])
                if os.pwritev(fd, [memoryview(buf)[:n * BS]], first * BS,
                              os.RWF_DSYNC if dsync else 0) != n * BS:
                    raise OSError("short write")
                if dsync:
                    for i in range(n):
                        journal.append(["S", first + i, gen])
                    synced += 1
                writes += 1
            t1 = time.monotonic()
            os.fdatasync(fd)
            journal.append("F")
            sync_times.append(time.monotonic() - t1)
            mark_pair("batch")
            batches += 1
            time.sleep(rng.uniform(0.1, 0.4))
        # No more writes: marks go on while hydration completes, and for two
        # seconds after it (its last commit).
        hyd_writes = hydration(dm, a.clone)
        while not err:
            h, t = hydration(dm, a.clone)
            el = time.monotonic() - t0
            if h == t and done_at is None:
                done_at = el
            if (done_at is not None and el > done_at + 2) or el > a.max_seconds:
                hyd_at_end = (h, t)
                break
            time.sleep(0.1)
    finally:
        stop.set()
        th.join()
    if err:
        raise err[0]
    os.fdatasync(fd)
    journal.append("F")
    mark_pair("end")
    os.close(fd)
    with open(a.journal, "w") as f:
        json.dump({"journal": journal, "marks": marks}, f)
    print("# workload: %.1f s, %d batches, %d writes (%d whole regions, %d dsync), "
          "fdatasync %.2f s on average (max %.2f), %d mark pairs, hydrated %d/%d regions "
          "after the writes, %d/%d at the end (%s)"
          % (time.monotonic() - t0, batches, writes, whole, synced,
             sum(sync_times) / max(1, len(sync_times)), max(sync_times + [0]), len(marks),
             hyd_writes[0],
             hyd_writes[1], hyd_at_end[0], hyd_at_end[1],
             "complete at %.1f s" % done_at if done_at is not None else "NOT complete"))


# ---- checker ----
def load_replay_tool(path):
    loader = importlib.machinery.SourceFileLoader("log_writes_replay", path)
    spec = importlib.util.spec_from_loader("log_writes_replay", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def describe(b, blk):
    if blk.count(0) == BS:
        return "zeroes"
    magic, bb, g, _ = HDR.unpack_from(blk)
    if magic == SRC_MAGIC:
        if bb != b:
            return "source data of block %d" % bb
        return "corrupt source block"
    if magic == WRK_MAGIC:
        if bb != b:
            return "workload data of block %d gen %d" % (bb, g)
        return "torn/corrupt workload block (header gen %d)" % g
    return "unknown data %s..." % blk[:16].hex()


_wrk_cache = {}


def classify(b, blk):
    """("W", gen) for a valid workload version of block b, else ("X", why)."""
    magic, bb, g, _ = HDR.unpack_from(blk)
    if magic == WRK_MAGIC and bb == b:
        exp = _wrk_cache.get((b, g))
        if exp is None:
            exp = _wrk_cache[(b, g)] = wrk_block(b, g)
        if blk == exp:
            return ("W", g)
    return ("X", describe(b, blk))


def copy_file(src_fd, dst_fd, n):
    off = 0
    while off < n:
        k = os.copy_file_range(src_fd, dst_fd, n - off, off, off)
        if k <= 0:
            raise OSError("copy_file_range returned %d" % k)
        off += k


def loop_sectors_written(dev):
    with open("/sys/block/%s/stat" % os.path.basename(dev)) as f:
        return int(f.read().split()[6])


def cmd_check(a):
    t0 = time.monotonic()
    lw = load_replay_tool(a.replay_tool)
    with open(a.journal) as f:
        j = json.load(f)
    journal, marks = j["journal"], j["marks"]
    mlog, dlog = lw.WriteLog(a.meta_log), lw.WriteLog(a.dest_log)
    names = [m[0] for m in marks]
    for log in (mlog, dlog):
        lm = [n for _, n in log.marks()]
        if lm != names + ["dm-log-writes-end"]:
            print("ERROR: marks of %s differ from the journal's (%d vs %d)"
                  % (log.path, len(lm), len(names) + 1))
            return 2
    nblocks = a.sectors * 512 // BS
    rblocks = a.region * 512 // BS
    rbytes = rblocks * BS
    nregions = nblocks // rblocks
    size = nblocks * BS
    src = b"".join(src_block(b) for b in range(nblocks))
    with open(a.src_img, "rb") as f:
        if f.read() != src:
            print("ERROR: the source image is not the expected pattern")
            return 2
    src_regions = [src[r * rbytes:(r + 1) * rbytes] for r in range(nregions)]
    src_blocks = [src[b * BS:(b + 1) * BS] for b in range(nblocks)]
    rtmp, btmp = bytearray(rbytes), bytearray(BS)
    # The replay goes to state files and, alike, to the check images under
    # the check clone; if a check clone writes to its devices, the check
    # images are restored from the state files.
    meta_size = os.path.getsize(a.chk_meta_img)
    fds = {}
    for which, n in (("meta", meta_size), ("dest", size)):
        p = os.path.join(a.state_dir, "state-%s.img" % which)
        with open(p, "wb") as f:
            f.truncate(n)
        fds[which] = os.open(p, os.O_RDWR)
    fds["chk-meta"] = os.open(a.chk_meta_img, os.O_RDWR)
    fds["chk-dest"] = os.open(a.chk_dest_img, os.O_RDWR)
    mrep = lw.Replayer(mlog, [fds["meta"], fds["chk-meta"]])
    drep = lw.Replayer(dlog, [fds["dest"], fds["chk-dest"]])
    dm = DM()
    rbuf = mmap.mmap(-1, size)
    mv = memoryview(rbuf)
    mv_regions = [mv[r * rbytes:(r + 1) * rbytes] for r in range(nregions)]
    mv_blocks = [mv[b * BS:(b + 1) * BS] for b in range(nblocks)]
    checks = [(m[0], m[1], m[2]) for m in marks]
    checks.append(("dm-log-writes-end", len(journal), len(journal)))
    if a.dest_lag:
        # The negative control: metadata at the last mark, the destination at
        # the first one.
        drep.replay_to_mark(names[0])
        mrep.replay_to_mark(names[-1])
        checks = [checks[-2]]

    L, pending, seen = {}, {}, {}
    jpre = jpost = 0
    served_checked = False
    state_id = -1
    mism = None
    opened = restored = 0
    failing = []        # (mark, [(block, why)])
    open_failures = 0
    shown = 0
    t_open = t_read = t_cmp = 0.0
    for name, pre, post in checks:
        # Journal bounds at this mark: L[b] the last generation of block b
        # flushed before the metadata mark, seen[b] those submitted before the
        # destination mark.
        while jpre < pre:
            e = journal[jpre]
            if e == "F":
                for b, g in pending.items():
                    L[b] = max(L.get(b, 0), g)
                pending.clear()
            elif e[0] == "S":
                L[e[1]] = max(L.get(e[1], 0), e[2])
            else:
                pending[e[0]] = e[1]
            jpre += 1
        while jpost < post:
            e = journal[jpost]
            if e != "F" and e[0] != "S":
                seen.setdefault(e[0], set()).add(e[1])
            jpost += 1
        # Replay both logs to this mark.
        if a.dest_lag:
            changed = True
        elif name == "dm-log-writes-end":
            changed = (mrep.replay_all() + drep.replay_all()) > 0 or state_id < 0
        else:
            changed = (mrep.replay_to_mark(name) + drep.replay_to_mark(name)) > 0 or state_id < 0
        if changed:
            state_id += 1
            mism = None
            t1 = time.monotonic()
            written = (loop_sectors_written(a.chk_meta), loop_sectors_written(a.chk_dest))
            try:
                dev = dm.create(a.name, a.sectors, "clone", "%s %s %s %d 1 no_hydration"
                                % (a.chk_meta, a.chk_dest, a.src, a.region))
            except OSError as e:
                mism = e
            t_open += time.monotonic() - t1
            if not isinstance(mism, OSError):
                opened += 1
                try:
                    if not served_checked:
                        ttype = dm.status(a.name)[0]
                        if ttype != "clone":
                            print("ERROR: check device has target %r" % ttype)
                            return 2
                        with open("/sys/module/%s/refcnt" % a.module) as f:
                            if int(f.read()) < 1:
                                print("ERROR: %s not in use by the check clone" % a.module)
                                return 2
                        for m in a.not_modules.split():
                            if os.path.exists("/sys/module/%s" % m):
                                print("ERROR: %s loaded during the check" % m)
                                return 2
                        served_checked = True
                    t1 = time.monotonic()
                    if os.path.exists(a.node):
                        os.unlink(a.node)
                    os.mknod(a.node, stat.S_IFBLK | 0o600, os.makedev(os.major(dev), os.minor(dev)))
                    rfd = os.open(a.node, os.O_RDONLY | os.O_DIRECT)
                    off = 0
                    while off < size:
                        k = os.preadv(rfd, [mv[off:off + (4 << 20)]], off)
                        if k <= 0:
                            raise OSError("short read at %d" % off)
                        off += k
                    os.close(rfd)
                    t_read += time.monotonic() - t1
                finally:
                    if os.path.exists(a.node):
                        os.unlink(a.node)
                    t1 = time.monotonic()
                    dm.remove(a.name)
                    t_open += time.monotonic() - t1
                if written != (loop_sectors_written(a.chk_meta), loop_sectors_written(a.chk_dest)):
                    restored += 1
                    copy_file(fds["meta"], fds["chk-meta"], meta_size)
                    copy_file(fds["dest"], fds["chk-dest"], size)
                t1 = time.monotonic()
                # Region by region, then block by block, into preallocated
                # buffers (allocations and page faults are what costs under
                # TCG).
                mism = {}
                for r in range(nregions):
                    rtmp[:] = mv_regions[r]
                    if rtmp == src_regions[r]:
                        continue
                    for b in range(r * rblocks, (r + 1) * rblocks):
                        btmp[:] = mv_blocks[b]
                        if btmp != src_blocks[b]:
                            mism[b] = classify(b, bytes(btmp))
                t_cmp += time.monotonic() - t1
        # The rule, at this mark.
        bad = []
        if isinstance(mism, OSError):
            open_failures += 1
            bad.append((-1, "the clone could not be created: %s" % mism))
        else:
            for b, c in mism.items():
                if c[0] == "W":
                    g = c[1]
                    if g not in seen.get(b, ()):
                        bad.append((b, "gen %d not written before the mark" % g))
                    elif g < L.get(b, 0):
                        bad.append((b, "stale gen %d, gen %d was flushed" % (g, L[b])))
                else:
                    bad.append((b, c[1]))
            for b, g in L.items():
                if b not in mism:
                    bad.append((b, "source data, but gen %d was flushed" % g))
        if bad:
            failing.append((name, bad))
            if shown < 3:
                shown += 1
                bad.sort()
                print("# FAIL at mark %s (state %d): %d bad blocks, e.g. %s"
                      % (name, state_id, len(bad),
                         "; ".join("block %d (region %d): %s" % (b, b // rblocks, w)
                                   for b, w in bad[:4])))
    nb = len(failing)
    print("# marks checked: %d (%d distinct replayed states, %d clone opens), "
          "meta log %d entries, dest log %d entries, %.1f s (open/remove %.1f, read %.1f, "
          "compare %.1f)%s"
          % (len(checks), state_id + 1, opened, len(mlog.entries), len(dlog.entries),
             time.monotonic() - t0, t_open, t_read, t_cmp,
             ", the check clone wrote to its devices %d times" % restored if restored else ""))
    print("# failing marks: %d%s" % (nb, " (%d: the clone could not be created)" % open_failures
                                     if open_failures else ""))
    if nb:
        print("# first failing marks: %s" % " ".join(n for n, _ in failing[:10]))
    if nb and open_failures == nb:
        return 3   # only open failures: not the data failure the tests look for
    return 1 if nb else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("source")
    s.add_argument("img")
    s.add_argument("blocks", type=int)
    w = sub.add_parser("workload")
    for o in ("--dev", "--clone", "--lw-meta", "--lw-dest", "--journal"):
        w.add_argument(o, required=True)
    for o in ("--seed", "--mark-ms", "--batches", "--max-seconds"):
        w.add_argument(o, type=int, required=True)
    c = sub.add_parser("check")
    for o in ("--replay-tool", "--meta-log", "--dest-log", "--journal", "--state-dir",
              "--chk-meta", "--chk-meta-img", "--chk-dest", "--chk-dest-img", "--src",
              "--src-img", "--name", "--module", "--node"):
        c.add_argument(o, required=True)
    c.add_argument("--not-modules", default="")
    c.add_argument("--sectors", type=int, required=True)
    c.add_argument("--region", type=int, required=True)
    c.add_argument("--dest-lag", action="store_true")
    a = ap.parse_args()
    return {"source": cmd_source, "workload": cmd_workload, "check": cmd_check}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
