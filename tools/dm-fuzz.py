#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Reproducible fuzzer of device-mapper table lines and messages.

    dm-fuzz run TARGET [--impl rust|c] [--seed N] [--count N] [--dmsetup N]
                       [--scratch DIR] [--results FILE] [--replay I[,I...]]
    dm-fuzz compare RESULTS-A RESULTS-B

TARGET is linear, verity, era or clone. Runs as root in the test guest, with
the module of the implementation under test loaded (selftests/fuzz.sh does
that): --impl rust fuzzes ours (linear_rs, and verity, era, clone of
dm-*-rs.ko), --impl c the kernel's (the built-in linear, dm-verity, dm-era,
dm-clone), for comparison. The other implementation must not be loaded.
Defaults from the environment: FUZZ_SEED (else random; printed as
`# seed: N`), FUZZ_COUNT (10000 table lines), FUZZ_DMSETUP (20), FUZZ_IMPL.

Inputs. A grammar of valid table lines per target (the C constructors of
Linux 6.12, Documentation/*.md), over loop devices made in the scratch
directory (verity: images made by `veritysetup format`), and of messages
(era: checkpoint, take_metadata_snap, drop_metadata_snap; clone:
enable_hydration, disable_hydration, hydration_threshold N,
hydration_batch_size N; linear and verity have none). Most lines are then
mutated: arguments dropped, truncated, duplicated, swapped, inserted,
replaced; numbers 0, -1, 2^31, 2^32, 2^63, 2^64, 2^64+1, huge, hex, with
'+' or leading zeroes; non-UTF-8 and control bytes, backslash escapes, odd
whitespace; wrong device paths and major:minor, devices in the wrong role,
the mapped device itself; target lengths past the device end, 0, 2^63;
empty, noise and very long lines (up to 64 KiB); a gap before the first
target; tables of two targets; read-only and read-write loads. 4% of the
lines (1.2% for era and clone) are left valid and must be accepted. Input i is
generated from its own random generator, seeded with (seed, target, i), so
it is replayed alone: FUZZ_SEED=N dm-fuzz run TARGET --replay i.

The ioctl path. The bulk goes through the DM ioctls on /dev/mapper/control
(DM_DEV_CREATE, DM_TABLE_LOAD, DM_DEV_SUSPEND to resume, DM_TABLE_CLEAR,
DM_TARGET_MSG, DM_TABLE_STATUS, DM_DEV_REMOVE), as libdevmapper sends them,
without a process per command. One device serves the inputs in turn: a table
that loads is resumed in place of the one before (whose destructor runs
then), and only now and then is the device removed and made anew (a removal
costs ~0.1 s under TCG). Some of the mutated lines that load are only
cleared, not resumed (era and clone: 85%, verity 50%, but not those whose
length was mutated): their constructor and destructor run, the resume-time
checks not. Before each input of era and
clone the live table is replaced by an `error` table and the metadata device
zeroed; some inputs first format the metadata with another valid table. Of
the accepted tables, valid ones and a share of the others get status, table
and IMA queries (also into buffers too small), a read and a write of their
first and last block (not for verity tables that may panic or restart), a
reload of their own table echo, and messages (valid, mutated, junk, empty,
dm core's @ messages, sectors outside the table).

The dmsetup path. Then --dmsetup N inputs (a quarter accepted, a quarter
with non-ASCII bytes, the rest rejected) go again through the ioctls and
through `dmsetup create` (a new device) and `dmsetup message`, which must
give the same outcome and the same first kernel reason (a size that does not
fit is refused at load in a new device, at resume in one that had a table:
the same). Lines with a backslash or a "#" are not sent that way:
libdevmapper doubles backslashes and dmsetup cuts a line at "#" (a
comment), so dmsetup cannot send what the ioctl path sends.

Checked for every input (a failure prints the seed, the input as a bash
$'...' string and the kernel lines):
  - a rejected table line or message has its reason in the kernel log: a
    device-mapper line (C: "device-mapper: ...", ours: "dm_x_rs:
    device-mapper: ...") of level warning or worse, logged by the rejecting
    ioctl, other than the generic "error adding target to table" and
    "preresume failed"; a constructor error "Unknown error" (ti->error never
    set) is no reason. (A record truncated at the kernel's record size has
    lost its newline and is only readable once the next record is written:
    a record of ours is written before a reason is declared missing.)
  - our module's reference count is exactly one per target of ours in the
    live and inactive tables: it goes up by one when a table of ours loads
    (the device is served by our module), and back after a rejected,
    cleared or replaced table and a removed device (nothing leaked); the
    other implementation is never loaded;
  - a table line left valid by the generator is accepted;
  - an accepted table answers its status queries, its echo loads again;
  - no "dm_put_device call missing" (a table leaked a device) in the log;
  - no oops, BUG, WARNING, ... (tools/kernel-report-patterns) in the log:
    the fuzzer stops at once (exit status 3) and prints the input. The
    input in flight is also in SCRATCH/journal, in case the fuzzer dies in
    the kernel. Generated inputs never contain these patterns.

--results FILE writes one line per input and message (index, outcome, first
kernel reason without device names, the input); `dm-fuzz compare A B` groups
the inputs whose outcome differs between two runs (--impl rust and --impl c
with the same seed) by reasons, says what the inputs of each group have (a
number >= 2^32, an escaped blank before a word, a leading +, other) and
shows examples.

Exit status: 0 no failure, 1 failures, 2 usage or set-up error, 3 the kernel
reported an oops or similar.
"""

import argparse
import collections
import errno
import fcntl
import mmap
import os
import random
import re
import stat
import struct
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---- DM ioctl interface (include/uapi/linux/dm-ioctl.h) --------------------
# The requests are built by selftests/lib/dmio.py (shared with the suites'
# helpers and the bench); this class keeps the errno and the answer.
sys.path.insert(0, os.path.join(TOP, "selftests", "lib"))
import dmio  # noqa: E402

DM_SIZE, SPEC_SIZE = dmio.DM_SIZE, dmio.SPEC
DM_DEV_CREATE, DM_DEV_REMOVE, DM_DEV_SUSPEND = 3, 4, 6
DM_TABLE_LOAD, DM_TABLE_CLEAR, DM_TABLE_STATUS = 9, 10, 12
DM_LIST_VERSIONS, DM_TARGET_MSG = 13, 14
DM_READONLY_FLAG = 1 << 0
DM_STATUS_TABLE_FLAG = 1 << 4
DM_BUFFER_FULL_FLAG = 1 << 8
DM_IMA_MEASUREMENT_FLAG = 1 << 19
U64 = dmio.U64
BLKSSZGET = 0x1268
BLKGETSIZE64 = 0x80081272


class Dm:
    """The DM ioctls, on /dev/mapper/control. Each call returns 0 or the
    errno; the buffer is kept in self.buf for the caller to read back."""

    def __init__(self):
        self.fd = os.open("/dev/mapper/control", os.O_RDWR | os.O_CLOEXEC)
        self.buf = None

    def _call(self, nr, name, flags=0, data=b"", count=0, room=64):
        code, self.buf = dmio.request(nr, name, flags, data, count, room)
        try:
            fcntl.ioctl(self.fd, code, self.buf, True)
            return 0
        except OSError as e:
            return e.errno

    def create(self, name):
        """Returns (errno, dev_t)."""
        r = self._call(DM_DEV_CREATE, name)
        dev = struct.unpack_from("=Q", self.buf, 40)[0] if r == 0 else 0
        return r, dev

    def remove(self, name):
        return self._call(DM_DEV_REMOVE, name)

    def resume(self, name):
        return self._call(DM_DEV_SUSPEND, name)

    def clear(self, name):
        return self._call(DM_TABLE_CLEAR, name)

    def load(self, name, specs, readonly):
        """specs: [(start, length, type bytes, params bytes)]."""
        data, count = dmio.table(specs)
        return self._call(DM_TABLE_LOAD, name, DM_READONLY_FLAG if readonly else 0, data, count, room=0)

    def message(self, name, sector, msg):
        return self._call(DM_TARGET_MSG, name, data=dmio.message_data(msg, sector), room=4096)

    def status(self, name, flags, room=16384):
        """DM_TABLE_STATUS; returns (errno, [params of each target],
        buffer full)."""
        r = self._call(DM_TABLE_STATUS, name, flags, room=room)
        if r:
            return r, [], False
        b = self.buf
        data_start, count = struct.unpack_from("=II", b, 16)
        fl = struct.unpack_from("=I", b, 28)[0]
        out, off = [], data_start
        if fl & DM_BUFFER_FULL_FLAG:
            return 0, [], True
        for _ in range(count):
            if off + SPEC_SIZE > len(b):
                break
            nxt = struct.unpack_from("=I", b, off + 20)[0]
            p = bytes(b[off + SPEC_SIZE:]).split(b"\0", 1)[0]
            out.append(p)
            off += nxt if nxt else len(b)
        return 0, out, False

    def targets(self):
        """{name: version} of the registered target types."""
        r = self._call(DM_LIST_VERSIONS, "", room=16384)
        res = {}
        if r:
            return res
        b = self.buf
        off = struct.unpack_from("=I", b, 16)[0]
        while off + 16 <= len(b):
            nxt = struct.unpack_from("=I", b, off)[0]
            ver = struct.unpack_from("=3I", b, off + 4)
            name = bytes(b[off + 16:]).split(b"\0", 1)[0]
            if name:
                res[name.decode(errors="replace")] = ver
            if not nxt:
                break
            off += nxt
        return res


# ---- kernel log ----------------------------------------------------------
class Kmsg:
    """Reads the kernel log records added since the last read (/dev/kmsg,
    non-blocking): [(level, text)]."""

    def __init__(self):
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        os.lseek(self.fd, 0, os.SEEK_END)
        pat = open(os.path.join(TOP, "tools", "kernel-report-patterns")).read().strip()
        self.report_re = re.compile(pat)
        self.report_re_b = re.compile(pat.encode())
        # a literal of each alternative, for a quick test of generated
        # bytes (the regex scans slowly)
        lits = [re.split(r"[\\\[\](){}.*+?^$]", alt)[0].encode() for alt in pat.split("|")]
        self.report_lits = None if not all(lits) else lits
        self.reports = []

    def may_report(self, b):
        """True if b may match a report pattern (then ask the regex)."""
        if self.report_lits is not None and not any(lit in b for lit in self.report_lits):
            return False
        return bool(self.report_re_b.search(b))

    def sync(self):
        """A record of ours: finalizes a record the kernel left open (one
        truncated at the record size loses its newline and stays invisible
        to readers until the next record)."""
        try:
            fd = os.open("/dev/kmsg", os.O_WRONLY | os.O_CLOEXEC)
            os.write(fd, b"dm-fuzz: sync\n")
            os.close(fd)
        except OSError:
            pass

    def read(self):
        out = []
        while True:
            try:
                rec = os.read(self.fd, 8192)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.EPIPE:  # records overwritten: go on
                    continue
                raise
            head, _, text = rec.partition(b";")
            text = text.split(b"\n", 1)[0].decode("utf-8", errors="replace")
            try:
                level = int(head.split(b",", 1)[0]) & 7
            except ValueError:
                level = 7
            out.append((level, text))
            if self.report_re.search(text):
                self.reports.append(text)
        return out


# generic lines that never explain a rejection by themselves
# C: "device-mapper: era: ...", Rust (pr_* adds the module name):
# "dm_era_rs: device-mapper: era: ..."
DM_LINE_RE = re.compile(r"([a-z0-9_]+: )?device-mapper: ")
GENERIC_RE = re.compile(r"error adding target to table|preresume failed, error =")
NO_REASON_RE = re.compile(r": Unknown error \(")
LEAK_RE = re.compile(r"dm_put_device call missing")
DEVNAME_RE = re.compile(r"\b(253|25[0-9]):[0-9]+\b|\bdm-[0-9]+\b|\brdmt-fz-[a-z0-9-]+")


def reasons(lines):
    """The device-mapper lines of warning level or worse, but the generic
    ones."""
    return [t for lvl, t in lines if lvl <= 4 and DM_LINE_RE.match(t)
            and not GENERIC_RE.search(t)]


def norm_reason(t):
    """A reason without the names that differ between runs and paths."""
    t = DEVNAME_RE.sub("DEV", t)
    return re.sub(r"\s+", " ", t).strip()


ESC_RE = re.compile(r"[^\x20-\x7e]|['\\\\]")


def esc(b):
    """bytes as a bash $'...' string."""
    def one(m):
        c = m.group(0)
        return "\\" + c if c in "'\\" else "\\x%02x" % ord(c)
    return "$'" + ESC_RE.sub(one, b.decode("latin-1")) + "'"


# ---- devices for the tables ----------------------------------------------
def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


class Env:
    """Loop devices over files in the scratch directory. Each has a path,
    its major:minor and its size in sectors."""

    def __init__(self, scratch):
        self.scratch = scratch
        os.makedirs(scratch, exist_ok=True)
        self.loops = []
        self.path = {}
        self.num = {}
        self.sectors = {}

    def loop(self, key, size, sector_size=None, fill=None):
        f = os.path.join(self.scratch, key + ".img")
        with open(f, "wb") as fh:
            if fill:
                fh.write(fill)
            fh.truncate(size)
        cmd = ["losetup", "--find", "--show"]
        if sector_size:
            cmd += ["--sector-size", str(sector_size)]
        dev = run(cmd + [f]).stdout.decode().strip()
        self.loops.append(dev)
        self.add(key, dev, size // 512)
        return dev

    def add(self, key, dev, sectors):
        st = os.stat(dev)
        self.path[key] = dev.encode()
        self.num[key] = b"%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
        self.sectors[key] = sectors

    def close(self):
        for d in self.loops:
            subprocess.run(["losetup", "-d", d], stderr=subprocess.DEVNULL)

    def wipe(self, key, nbytes=8192):
        """Zeroes the start of device KEY, in its backing file (the loop
        device reads through the file's page cache: bio readers such as
        dm-bufio see the zeroes)."""
        fd = os.open(os.path.join(self.scratch, key + ".img"), os.O_WRONLY)
        try:
            os.pwrite(fd, bytes(nbytes), 0)
        finally:
            os.close(fd)


_ABSENT = None


def absent_devnums():
    """major:minor strings that name no block device in this system."""
    global _ABSENT
    if _ABSENT is not None:
        return _ABSENT
    # each costs a request_module("block-major-M-m"): a modprobe run,
    # ~1 s under TCG; majors with a probe function (loop, brd) would
    # create devices
    cands = [b"4095:4095", b"0:0", b"4094:1"]
    _ABSENT = [c for c in cands if not os.path.exists("/sys/dev/block/" + c.decode())]
    return _ABSENT


BAD_DEVS = [
    b"/dev/rdmt-none", b"/dev/null", b"/dev/zero", b"/dev/mapper/control", b"/tmp",
    b"/", b".", b"..", b"loop0", b"/dev/loop", b"/dev/loop999", b"/dev/", b"/dev//loop0x",
    b"-1:-1", b"1048576:0", b"7:", b":7", b"7:0:0", b"a:b", b"7:-1", b"07:00x",
    b"99999999999999999999:1", b"7:99999999999999999999", b"0x7:0x0", b"+7:+0",
    b"/dev/mapper/rdmt-none", b"/sys/block", b"/proc/self/fd/0", b"x" * 300,
]


# ---- the grammar ---------------------------------------------------------
def special_numbers(v=None):
    n = [b"0", b"-1", b"1", b"-0", b"+0", b"2147483647", b"2147483648", b"4294967295",
         b"4294967296", b"4294967297", b"4294967304", b"9223372036854775807",
         b"9223372036854775808", b"18446744073709551615", b"18446744073709551616",
         b"18446744073709551617", b"36893488147419103232", b"340282366920938463463374607431768211456",
         b"1" + b"0" * 40, b"9" * 300, b"0x10", b"0X8", b"0x", b"010", b"08", b"0008", b"+8",
         b"-8", b"1e3", b"8.0", b"8x", b"x8", b"\xef\xbc\x98", b"\xd9\xa1", b"8\xff", b"8-",
         b"--8", b"++8", b"0b1000", b"65536", b"4096", b"512", b"3"]
    if v is not None:
        n += [b"%d" % (v + 1), b"%d" % max(v - 1, 0), b"%d" % (v * 2), b"%d" % (v << 32),
              b"%d" % (v + (1 << 32)), b"%d" % (v + (1 << 64)), b"+%d" % v, b"0%d" % v,
              b"%d " % v, b"%dk" % v, b"-%d" % v, b"%#x" % v]
    return n


JUNK_WORDS = [b"", b"-", b"--", b"x", b"junk", b"NULL", b"\\", b"\\\\", b"'", b'"', b"%s%n%p",
              b"${x}", b"$(reboot)", b";", b"#", b"\t", b"\x01", b"\x7f", b"\x80", b"\xff",
              b"\xc3\x28", b"\xa0", b"\xe2\x80\xa8", b"\xf0\x9f\x92\xa9", b"\xed\xa0\x80",
              b"on", b"off", b"true", b"yes", b"@", b"@cancel_deferred_remove", b"@stats_x"]


def is_number(tok):
    return tok.isdigit() and len(tok) <= 40


class Grammar:
    """Per target: NAME (the target type of the implementation), valid(rng)
    -> (length, [tokens]) and messages(rng) -> [bytes]."""

    writes = True      # the I/O probe may write to an accepted device
    valid_share = 0.04  # the inputs left valid
    resume_share = 1.0   # the inputs (but valid ones) resumed if they load
    handle_share = 0.25  # the accepted ones queried and messaged
    messages_ok = False  # the target takes messages
    multi_target = True  # tables of two targets
    md_keys = ()       # metadata devices to zero before each table load

    def __init__(self, env, impl):
        self.env = env
        self.impl = impl

    def dev(self, rng, key):
        return rng.choice([self.env.path[key], self.env.num[key]])

    def device_tokens(self):
        return list(self.env.path.values()) + list(self.env.num.values())

    def option_words(self):
        return []

    def random_token(self, rng):
        k = rng.random()
        if k < 0.3:
            return rng.choice(special_numbers())
        if k < 0.5:
            return rng.choice(self.device_tokens() + BAD_DEVS)
        if k < 0.65 and self.option_words():
            return rng.choice(self.option_words())
        if k < 0.85:
            return rng.choice(JUNK_WORDS) or b"x"
        return rng.randbytes(rng.randrange(1, 12)).replace(b"\0", b"\1")

    def messages(self, rng):
        return []

    def stale(self, rng):
        """A valid table of other parameters, to format the metadata with
        before a load (None: the target keeps no metadata)."""
        return None


class LinearG(Grammar):
    def __init__(self, env, impl):
        super().__init__(env, impl)
        self.name = b"linear_rs" if impl == "rust" else b"linear"
        env.loop("A", 8 << 20)
        env.loop("B4K", 1 << 20, sector_size=4096)
        env.loop("SMALL", 16 << 10)

    def valid(self, rng):
        size = self.env.sectors["A"]
        length = rng.choice([size, rng.randrange(1, size + 1), 8, 1])
        start = rng.randrange(0, size - length + 1)
        return length, [self.dev(rng, "A"), b"%d" % start]


class VerityG(Grammar):
    writes = False
    resume_share = 0.5

    def __init__(self, env, impl):
        super().__init__(env, impl)
        self.name = b"verity"
        sc = env.scratch
        data = os.path.join(sc, "vdata.img")
        hashf = os.path.join(sc, "vhash.img")
        with open(data, "wb") as f:
            f.write(random.Random(1).randbytes(1 << 20))
        open(hashf, "wb").close()
        self.salt = b"5a17" * 8
        out = run(["veritysetup", "format", "--data-block-size=4096", "--hash-block-size=4096",
                   "--salt=" + self.salt.decode(), data, hashf]).stdout.decode()
        m = re.search(r"Root hash:\s*([0-9a-f]+)", out)
        if not m:
            raise RuntimeError("veritysetup format: no root hash in: " + out)
        self.root = m.group(1).encode()
        os.truncate(hashf, 1 << 20)  # room for other geometries
        for key, f in (("DATA", data), ("HASH", hashf)):
            dev = run(["losetup", "--find", "--show", "--read-only", f]).stdout.decode().strip()
            env.loops.append(dev)
            env.add(key, dev, os.path.getsize(f) // 512)
        # data and hash tree in one device (format 0, sha1, no superblock)
        combo = os.path.join(sc, "vcombo.img")
        with open(combo, "wb") as f:
            f.write(random.Random(2).randbytes(512 << 10))
        out = run(["veritysetup", "format", "--format=0", "--hash=sha1", "--no-superblock",
                   "--data-block-size=1024", "--hash-block-size=1024",
                   "--hash-offset=%d" % (512 << 10), "--salt=" + self.salt.decode(),
                   combo, combo]).stdout.decode()
        self.combo_root = re.search(r"Root hash:\s*([0-9a-f]+)", out).group(1).encode()
        os.truncate(combo, 1 << 20)
        dev = run(["losetup", "--find", "--show", "--read-only", combo]).stdout.decode().strip()
        env.loops.append(dev)
        env.add("COMBO", dev, 2048)
        env.loop("B4K", 1 << 20, sector_size=4096)
        env.loop("SMALL", 16 << 10)

    OPTS = [b"ignore_corruption", b"restart_on_corruption", b"panic_on_corruption",
            b"restart_on_error", b"panic_on_error", b"ignore_zero_blocks", b"check_at_most_once",
            b"try_verify_in_tasklet", b"root_hash_sig_key_desc", b"use_fec_from_device",
            b"fec_roots", b"fec_blocks", b"fec_start"]
    DIGEST = {b"sha256": 32, b"sha1": 20, b"sha512": 64, b"crc32c": 4, b"blake2b-512": 64}

    def option_words(self):
        return self.OPTS + [b"IGNORE_CORRUPTION", b"Check_At_Most_Once"]

    def tree_blocks(self, nblocks, hbs, dsize):
        bits = (hbs // dsize).bit_length() - 1
        levels = 0
        while bits * levels < 64 and (nblocks - 1) >> (bits * levels):
            levels += 1
        return sum((nblocks + (1 << ((i + 1) * bits)) - 1) >> ((i + 1) * bits) for i in range(levels))

    def valid(self, rng):
        e = self.env
        if rng.random() < 0.4:
            # the real image, as veritysetup made it
            if rng.random() < 0.6:
                toks = [b"1", self.dev(rng, "DATA"), self.dev(rng, "HASH"), b"4096", b"4096",
                        b"256", b"1", b"sha256", self.root, self.salt]
                length = 2048
            else:
                toks = [b"0", self.dev(rng, "COMBO"), self.dev(rng, "COMBO"), b"1024", b"1024",
                        b"512", b"512", b"sha1", self.combo_root, self.salt]
                length = 1024
        else:
            # another geometry over the same devices (the constructor does
            # not read the tree: any digest of the right length passes)
            alg = rng.choice([b"sha256", b"sha1", b"sha512", b"crc32c"])
            ds = self.DIGEST[alg]
            dbs = rng.choice([512, 1024, 2048, 4096])
            hbs = rng.choice([h for h in (512, 1024, 2048, 4096, 8192) if h >= 2 * ds])
            maxnb = (1 << 20) // dbs
            nb = rng.choice([maxnb, rng.randrange(1, maxnb + 1), 1])
            hash_blocks = (1 << 20) // hbs
            tree = self.tree_blocks(nb, hbs, ds)
            hstart = rng.randrange(0, hash_blocks - tree + 1)
            salt = rng.choice([b"-", self.salt, rng.randbytes(rng.randrange(1, 65)).hex().encode()])
            root = rng.randbytes(ds).hex().encode()
            if rng.random() < 0.5:
                root = root.upper()
            toks = [rng.choice([b"0", b"1"]), self.dev(rng, "DATA"), self.dev(rng, "HASH"),
                    b"%d" % dbs, b"%d" % hbs, b"%d" % nb, b"%d" % hstart, alg, root, salt]
            # dm core: the length is a multiple of the logical block
            # size, which the target sets to the data block size
            length = rng.choice([nb, rng.randrange(1, nb + 1)]) * (dbs // 512)
        opts = []
        if rng.random() < 0.5:
            modes = [b"ignore_corruption", b"restart_on_corruption", b"panic_on_corruption"]
            errs = [b"restart_on_error", b"panic_on_error"]
            pool = [rng.choice(modes), rng.choice(errs), b"ignore_zero_blocks",
                    b"check_at_most_once", b"try_verify_in_tasklet"]
            opts = rng.sample(pool, rng.randrange(1, len(pool) + 1))
            opts = [rng.choice([o, o.upper()]) if rng.random() < 0.1 else o for o in opts]
            toks += [b"%d" % len(opts)] + opts
        return length, toks

    def mutate_special(self, rng, toks):
        """Verity-specific: option count off, options repeated or
        conflicting, FEC and signature options, a wrong-length digest."""
        k = rng.randrange(6)
        if k == 0 and len(toks) > 10:
            toks[10] = rng.choice([b"%d" % (len(toks) - 11 + rng.choice([-1, 1, 2, 100])), b"x", b"-1", b"4294967297"])
        elif k == 1:
            o = rng.choice(self.OPTS[:8])
            toks += [b"2", o, o] if len(toks) == 10 else [o]
        elif k == 2:
            toks += [b"2", b"root_hash_sig_key_desc", rng.choice([b"rdmt:none", b"", b"x" * 200])]
        elif k == 3:
            toks += rng.choice([[b"2", b"use_fec_from_device", self.env.path["HASH"]],
                                [b"6", b"use_fec_from_device", self.env.path["HASH"], b"fec_roots", b"2", b"fec_blocks", b"300"],
                                [b"2", b"fec_roots", b"2"]])
        elif k == 4 and len(toks) > 8:
            toks[8] = toks[8][:-rng.choice([1, 2])] if rng.random() < 0.5 else toks[8] + rng.choice([b"0", b"00", b"g"])
        elif k == 5 and len(toks) > 7:
            toks[7] = rng.choice([b"nosuchhash", b"md4", b"crc32", b"hmac(sha256)", b"cbc(aes)", b"sha3-256",
                                  b"xxhash64", b"sha256-generic", b"SHA256", b"", b"sha256\xff"])
        return toks

    def io_safe(self, toks):
        """No read of a table that could panic or reboot the guest."""
        low = b" ".join(toks).lower()
        return b"panic" not in low and b"restart" not in low


def devnum(tok):
    """(major, minor) of a device argument, "MAJ:MIN" or a block device
    path, as dm_get_device reads it; None if it is neither."""
    try:
        t = tok.decode()
        m = re.fullmatch(r"(\d+):(\d+)", t)
        if m:
            return int(m.group(1)), int(m.group(2))
        st = os.stat(t)
        if stat.S_ISBLK(st.st_mode):
            return os.major(st.st_rdev), os.minor(st.st_rdev)
    except (UnicodeDecodeError, OSError, ValueError):
        pass
    return None


def shares_device(toks, a, b):
    """Whether arguments a and b name the same block device."""
    if len(toks) <= max(a, b):
        return False
    x = devnum(toks[a])
    return x is not None and x == devnum(toks[b])


class MetadataG(Grammar):
    """A target with a metadata device, its first argument, before the
    device it maps (era, clone): the same shares of valid, resumed and
    handled inputs, messages, a stale table that is a valid one."""
    valid_share = 0.012
    resume_share = 0.15
    handle_share = 0.5
    messages_ok = True

    def io_safe(self, toks):
        """No writes through a table whose metadata device is the device it
        maps (era's origin, clone's destination): they overwrite the
        metadata (C and Rust alike), and the table's echo could then not
        load again. `toks`: each target's parameters."""
        return not any(shares_device(p.split(), 0, 1) for p in toks)

    def stale(self, rng):
        return self.valid(rng)


class EraG(MetadataG):
    # zeroed before each input: any of them may be the metadata device
    md_keys = ("MD", "OR", "SMALLMD", "B4K")

    def __init__(self, env, impl):
        super().__init__(env, impl)
        self.name = b"era"
        env.loop("MD", 4 << 20)
        env.loop("OR", 8 << 20)
        env.loop("SMALLMD", 8 << 10)
        env.loop("B4K", 1 << 20, sector_size=4096)

    def valid(self, rng):
        size = self.env.sectors["OR"]
        bs = rng.choice([8, 16, 64, 128, 1024, 24, 8 * rng.randrange(1, 257), size])
        length = rng.choice([size, rng.randrange(1, size + 1), bs])
        return length, [self.dev(rng, "MD"), self.dev(rng, "OR"), b"%d" % bs]

    def option_words(self):
        return [b"checkpoint", b"take_metadata_snap", b"drop_metadata_snap"]

    def messages(self, rng):
        ws = [b"checkpoint", b"take_metadata_snap", b"drop_metadata_snap"]
        out = []
        for _ in range(rng.randrange(1, 5)):
            k = rng.random()
            if k < 0.55:
                m = rng.choice(ws)
                if rng.random() < 0.1:
                    m = m.upper()
            elif k < 0.7:
                m = rng.choice(ws) + b" " + self.random_token(rng)
            else:
                m = None
            out.append(m)
        return out


class CloneG(MetadataG):
    md_keys = ("MD", "DEST", "SRC", "SRCSMALL", "SMALLMD", "B4K")

    def __init__(self, env, impl):
        super().__init__(env, impl)
        self.name = b"clone"
        env.loop("MD", 4 << 20)
        env.loop("DEST", 8 << 20)
        env.loop("SRC", 8 << 20, fill=random.Random(3).randbytes(64 << 10))
        env.loop("SRCSMALL", 1 << 20)
        env.loop("SMALLMD", 8 << 10)
        env.loop("B4K", 8 << 20, sector_size=4096)

    # No tables of two clone targets: a device opened read-only by the
    # first (its source) and read-write by the second has its dm_dev
    # replaced under the first (dm-table.c upgrade_mode()), whose destructor
    # then puts a freed dm_dev: "device  not in table devices list", "dm_put_device
    # call missing", a use-after-free in dm core whatever the target's
    # implementation (seen with the C dm-clone).
    multi_target = False
    CORE = [b"hydration_threshold", b"hydration_batch_size"]
    FEAT = [b"no_hydration", b"no_discard_passdown"]

    def option_words(self):
        return self.CORE + self.FEAT + [b"enable_hydration", b"disable_hydration"]

    def valid(self, rng):
        size = self.env.sectors["DEST"]
        region = 1 << rng.randrange(3, 22)
        length = rng.choice([size, rng.randrange(1, size + 1), min(region, size)])
        toks = [self.dev(rng, "MD"), self.dev(rng, "DEST"), self.dev(rng, "SRC"), b"%d" % region]
        if rng.random() < 0.7:
            feats = rng.sample(self.FEAT, rng.randrange(0, 3))
            if rng.random() < 0.5 and b"no_hydration" not in feats:
                feats.append(b"no_hydration")  # keep most devices quiet
            toks += [b"%d" % len(feats)] + feats
            if rng.random() < 0.6:
                core = []
                for c in rng.sample(self.CORE, rng.randrange(1, 3)):
                    core += [c, b"%d" % rng.randrange(1, 1025)]
                toks += [b"%d" % len(core)] + core
        return length, toks

    def messages(self, rng):
        out = []
        for _ in range(rng.randrange(1, 4)):
            k = rng.random()
            if k < 0.3:
                m = rng.choice([b"enable_hydration", b"disable_hydration"])
            elif k < 0.6:
                m = rng.choice(self.CORE) + b" " + rng.choice([b"%d" % rng.randrange(1, 2000)] + special_numbers())
            elif k < 0.7:
                m = rng.choice(self.CORE + [b"enable_hydration"]) + b" " + self.random_token(rng) + b" " + self.random_token(rng)
            else:
                m = None
            out.append(m)
        # hydration off before the device goes away: less background work
        out.append(b"disable_hydration")
        return out


GRAMMARS = {"linear": LinearG, "verity": VerityG, "era": EraG, "clone": CloneG}
MODULES = {  # target: (rust module, C module or None for built-in)
    "linear": ("dm_linear_rs", None),
    "verity": ("dm_verity_rs", "dm_verity"),
    "era": ("dm_era_rs", "dm_era"),
    "clone": ("dm_clone_rs", "dm_clone"),
}


# ---- inputs ----------------------------------------------------------------
class Input:
    def __init__(self, idx):
        self.idx = idx
        self.valid = False     # the generator left it valid: must be accepted
        self.specs = []        # [(start, length, type, params)]
        self.readonly = False
        self.msgs = None       # [(sector, bytes)], by extras()
        self.stale = None      # (length, tokens): format metadata first
        self.resume = True     # resume the table if it loads (else clear it)
        self.handle = True     # queries, I/O and messages if accepted
        self.remove = False    # remove the device after it
        self.self_ref = False  # refers to the device itself (ioctl path only)
        self.io = False
        self.roundtrip = False
        self.small_status = 0

    def nonascii(self):
        return any(NONASCII_RE.search(s[3]) for s in self.specs)

    def line(self):
        return b"\n".join(b"%d %d %s %s" % s for s in self.specs)

    def dmsetup_ok(self):
        """Expressible as one `dmsetup create --table` line with the same
        bytes for the kernel."""
        if len(self.specs) != 1 or self.self_ref:
            return False
        start, length, ttype, p = self.specs[0]
        # libdevmapper doubles every backslash of a table line (the kernel
        # takes "\\x" as "x"): no backslash can reach the kernel as such;
        # and dmsetup cuts a table line's parameters at the first "#" (a
        # comment)
        return (start == 0 and 0 < length < (1 << 63) and not re.search(rb"[\n\r\0;\\#]", p)
                and p.strip(b" \t\v\f") == p)


MAX_LINE = 66000
NONASCII_RE = re.compile(rb"[\x80-\xff]")
SEPS = [b" ", b"  ", b"\t", b" \t ", b"\v", b"\f", b"\r", b"\n", b"\xa0", b" \\\n", b"    "]


def join(rng, toks, odd):
    if not odd:
        return b" ".join(toks)
    out = b""
    for i, t in enumerate(toks):
        if i:
            out += rng.choice(SEPS) if rng.random() < 0.3 else b" "
        out += t
    if rng.random() < 0.3:
        out = rng.choice(SEPS) + out
    if rng.random() < 0.3:
        out += rng.choice(SEPS + [b"\\"])
    return out


def corrupt(rng, tok):
    """Byte-level damage of one token."""
    k = rng.randrange(7)
    pos = rng.randrange(len(tok) + 1)
    byte = bytes([rng.choice([rng.randrange(0x80, 0x100), rng.randrange(1, 0x20), 0x7F, 0x5C, 0x25])])
    if k == 0:
        return tok[:pos] + byte + tok[pos:]
    if k == 1 and tok:
        return tok[:pos] + byte + tok[pos + 1:]
    if k == 2:
        return tok[:pos]
    if k == 3:
        return tok + tok
    if k == 4:
        return tok.swapcase()
    if k == 5:
        return tok[:pos] + b"\\ " + tok[pos:]  # an escaped space joins words
    return tok + bytes(0x80 | c for c in rng.randbytes(rng.randrange(1, 4)))


# mutation kinds, by weight (13, the long lines, is the most expensive)
MUTATIONS = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 6, 7, 7, 7, 8, 8, 8, 9, 10, 11, 11, 11, 12, 12, 13]


def mutate(rng, g, toks, length):
    toks = list(toks)
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 5])):
        k = rng.choice(MUTATIONS)
        n = len(toks)
        i = rng.randrange(n) if n else 0
        if k == 0 and n:
            del toks[i]                                   # drop
        elif k == 1:
            toks = toks[:rng.randrange(n + 1)]            # truncate
        elif k == 2 and n:
            toks.insert(i, toks[i])                       # duplicate
        elif k == 3 and n > 1:
            j = rng.randrange(n)
            toks[i], toks[j] = toks[j], toks[i]           # swap
        elif k == 4:
            toks.insert(rng.randrange(n + 1), g.random_token(rng))  # insert
        elif k == 5 and n:
            toks[i] = g.random_token(rng)                 # replace
        elif k == 6:
            nums = [j for j, t in enumerate(toks[:64]) if is_number(t)]
            if nums:
                j = rng.choice(nums)
                toks[j] = rng.choice(special_numbers(int(toks[j])))
        elif k == 7 and n:
            toks[i] = corrupt(rng, toks[i])
        elif k == 8:
            devs = set(g.device_tokens())
            ds = [j for j, t in enumerate(toks[:64]) if t in devs]
            if ds:
                toks[rng.choice(ds)] = rng.choice(BAD_DEVS + g.device_tokens())
        elif k == 9:
            toks += [g.random_token(rng) for _ in range(rng.randrange(1, 4))]   # extra
        elif k == 10 and n:
            j = rng.randrange(i, n)
            toks[j + 1:j + 1] = toks[i:j + 1]             # duplicate a range
        elif k == 11 and hasattr(g, "mutate_special"):
            toks = g.mutate_special(rng, toks)
        elif k == 12:
            length = rng.choice(length_mutations(g, length))
        elif k == 13 and n:
            # a very long argument or line, up to and past a page
            want = rng.choice([4000, 4095, 4096, 4097, 8192, 65536, rng.randrange(1, 20000)])
            if rng.random() < 0.5:
                toks[i] = (toks[i] * (want // max(len(toks[i]), 1) + 1))[:want]
            else:
                toks += [toks[i]] * (want // (len(toks[i]) + 1) + 1)
    # at most 64 KiB of arguments
    if sum(map(len, toks)) + len(toks) > MAX_LINE:
        total, keep = 0, 0
        for t in toks:
            if total + len(t) + 1 > MAX_LINE:
                break
            total += len(t) + 1
            keep += 1
        toks = toks[:keep] + [toks[keep][:max(MAX_LINE - total - 1, 0)]]
    return toks, length


def length_mutations(g, length):
    sizes = list(g.env.sectors.values())
    return [0, 1, 7, length + 1, length + 8, length * 2, length + 4096, max(sizes) + 8,
            1 << 32, (1 << 32) + 8, 1 << 40, (1 << 54) - 1, 1 << 54, (1 << 63) - 1,
            1 << 63, (1 << 64) - 1, 3]


def generate(seed, target, idx, g, dmdev_num):
    """The table of input idx, from its own generator (the messages and
    the rest come from extras(), only for accepted tables)."""
    rng = random.Random("%d:%s:%d" % (seed, target, idx))
    inp = Input(idx)
    inp.seed = seed
    length, toks = g.valid(rng)
    orig_length = length
    k = rng.random()
    odd = False
    start = 0
    if k < g.valid_share:
        inp.valid = True
    elif k < g.valid_share + 0.01:
        toks = []                                              # empty line
    elif k < g.valid_share + 0.015:
        toks = [g.random_token(rng) for _ in range(rng.randrange(1, 30))]   # noise
    else:
        orig = (toks, length)
        for _ in range(8):
            toks, length = mutate(rng, g, orig[0], orig[1])
            if (toks, length) != orig:
                break  # not a no-op
        odd = rng.random() < 0.15 and len(toks) < 100
        if rng.random() < 0.002 and absent_devnums():
            # a major:minor of no device: rare, see absent_devnums()
            toks.insert(rng.randrange(len(toks) + 1), rng.choice(absent_devnums()))
        if rng.random() < 0.04:
            inp.self_ref = True
            toks.insert(rng.randrange(len(toks) + 1), dmdev_num)
    params = join(rng, toks, odd)
    if rng.random() < 0.01 and not inp.valid:
        params = params[:rng.randrange(len(params) + 1)] + b"\0" + params  # NUL inside
    if rng.random() < 0.01 and not inp.valid:
        start = rng.choice([1, 8, 1 << 40])                   # gap before the first target
    inp.specs = [(start, length, g.name, params)]
    if rng.random() < 0.03 and not inp.valid and g.multi_target:
        # two targets: this one twice, or a valid one after a mutated one
        l2, t2 = g.valid(rng)
        inp.specs.append((start + length, l2, g.name, join(rng, t2, False)))
    inp.readonly = isinstance(g, VerityG)
    if rng.random() < 0.03 and not inp.valid:
        inp.readonly = not inp.readonly
    # a table whose length was mutated is resumed: dm core checks the
    # length against the devices then (in a device that had a table)
    inp.resume = inp.valid or rng.random() < g.resume_share or length != orig_length
    inp.handle = inp.valid or rng.random() < g.handle_share
    inp.remove = rng.random() < 0.02
    if rng.random() < 0.03:
        inp.stale = g.stale(rng)
        if inp.stale:
            inp.valid = False
    if any(g.may_report(s[3]) for s in inp.specs):
        # never put a kernel report pattern (BUG:, Oops, ...) into the log
        return generate(seed, target + "'", idx, g, dmdev_num)
    return inp


def extras(inp, target, g):
    """The messages of an accepted input, and what else to do with it."""
    if inp.msgs is not None:
        return
    rng = random.Random("%d:%s:%d:accepted" % (inp.seed, target, inp.idx))
    inp.msgs = []
    sizes = sum(s[1] for s in inp.specs)
    for m in g.messages(rng) + [None] * rng.randrange(0, 2 if g.messages_ok else 3):
        while m is None or g.may_report(m):
            k = rng.random()
            if k < 0.4:
                m = b" ".join(g.random_token(rng) for _ in range(rng.randrange(1, 4)))
            elif k < 0.5:
                m = rng.choice([b"", b" ", b"\t\n", b"@cancel_deferred_remove", b"@junk x",
                                b"@cancel_deferred_remove x"])
            elif k < 0.6:
                m = b"x" * rng.choice([100, 4096, 5000])
            else:
                m = corrupt(rng, rng.choice(g.option_words() or [b"junk"]))
        sector = 0
        if rng.random() < 0.05:
            sector = rng.choice([sizes, sizes + 1, (1 << 64) - 1, max(sizes - 1, 0)])
        inp.msgs.append((sector, m))
    inp.io = rng.random() < 0.3
    inp.roundtrip = rng.random() < 0.1
    inp.small_status = rng.choice([0, 0, 0, 1, 8, 40, 41, 48, 60, 64, 100])


# ---- running ---------------------------------------------------------------
class Fuzzer:
    def __init__(self, args):
        self.a = args
        self.target = args.target
        self.dm = Dm()
        self.kmsg = Kmsg()
        self.env = Env(args.scratch)
        self.failures = 0
        self.printed = {}
        self.stats = {"accepted": 0, "rej_load": 0, "rej_resume": 0, "msg_ok": 0, "msg_rej": 0,
                      "valid": 0, "loaded": 0, "io": 0, "roundtrip": 0, "status": 0, "dmsetup": 0,
                      "dmsetup_same": 0, "dmsetup_nonutf8": 0, "nonutf8": 0}
        self.results = open(args.results, "w") if args.results else None
        self.journal = os.open(os.path.join(args.scratch, "journal"),
                               os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) \
            if os.path.isdir(args.scratch) else None
        ours, c = MODULES[self.target]
        self.mod, self.other = (ours, c) if args.impl == "rust" else (c, ours)
        self.dmname = "rdmt-fz-" + self.target
        self.tm = collections.defaultdict(float)
        self.tm_reason = collections.defaultdict(float)
        self.refcnt_fd = None
        self.dmdev = None
        self.live = 0

    # -- helpers
    def refcnt(self):
        if not self.mod:
            return 0
        try:
            if self.refcnt_fd is None:
                self.refcnt_fd = os.open("/sys/module/%s/refcnt" % self.mod, os.O_RDONLY)
            return int(os.pread(self.refcnt_fd, 32, 0))
        except (OSError, ValueError):
            return -1

    def other_loaded(self):
        return bool(self.other) and os.path.exists("/sys/module/" + self.other)

    def fail(self, inp, why, lines=(), what=None):
        self.failures += 1
        key = re.sub(r"[0-9]+", "N", why)[:60]
        self.printed[key] = self.printed.get(key, 0) + 1
        if self.printed[key] > 5:
            if self.printed[key] == 6:
                print("# (more failures like this one are not printed)")
            return
        print("# FAIL %s input %d: %s" % (self.target, inp.idx, why))
        print("#   replay: FUZZ_SEED=%d tools/dm-fuzz.py run %s --impl %s --replay %d" %
              (self.a.seed, self.target, self.a.impl, inp.idx))
        print("#   table: " + esc(inp.line()) + " (readonly=%d)" % inp.readonly)
        if what is not None:
            print("#   message: " + esc(what))
        for lvl, t in list(lines)[-6:]:
            print("#   kmsg<%d>: %s" % (lvl, t))
        sys.stdout.flush()

    def check_reports(self, inp, what=None):
        if self.kmsg.reports:
            print("# KERNEL REPORT while sending input %d of %s (seed %d):" %
                  (inp.idx, self.target, self.a.seed))
            print("#   table: " + esc(inp.line()))
            if what is not None:
                print("#   message: " + esc(what))
            for t in self.kmsg.reports[:20]:
                print("#   " + t)
            sys.stdout.flush()
            sys.exit(3)

    def kread(self, inp, what=None):
        lines = self.kmsg.read()
        self.check_reports(inp, what)
        for lvl, t in lines:
            if LEAK_RE.search(t):
                self.fail(inp, "a constructor leaked a device: " + t, lines, what)
        return lines

    def why(self, inp, lines, what=None):
        """The reasons among lines; if none, after a sync of the log."""
        rs = reasons(lines)
        if not rs:
            self.kmsg.sync()
            lines = lines + self.kread(inp, what)
            rs = reasons(lines)
        return rs, lines

    def record(self, key, outcome, reason, what=b""):
        if self.results:
            self.results.write("%s\t%s\t%s\t%s\n" % (key, outcome, norm_reason(reason), esc(what[:400])))

    def ensure_dev(self):
        if self.dmdev is None:
            r, dev = self.dm.create(self.dmname)
            if r:
                raise RuntimeError("DM_DEV_CREATE %s: %s" % (self.dmname, os.strerror(r)))
            self.dmdev = dev
            self.live = 0
        return b"%d:%d" % (os.major(self.dmdev), os.minor(self.dmdev))

    def drop_dev(self, inp):
        t = time.perf_counter()
        r = self.dm.remove(self.dmname)
        self.tm["remove"] += time.perf_counter() - t
        if r:
            self.fail(inp, "DM_DEV_REMOVE: " + os.strerror(r), self.kread(inp))
            # try again once things settle, else give up
            time.sleep(0.5)
            if self.dm.remove(self.dmname):
                raise RuntimeError("cannot remove " + self.dmname)
        self.dmdev = None
        self.live = 0

    def swap_out(self, inp):
        """Replaces a live table of ours by an `error` table (its
        destructor runs; the metadata it used is free again)."""
        if not self.live:
            return
        t = time.perf_counter()
        r = self.dm.load(self.dmname, [(0, 8, b"error", b"")], False) or self.dm.resume(self.dmname)
        self.tm["swap to error"] += time.perf_counter() - t
        lines = self.kread(inp)
        if r:
            self.fail(inp, "the error table does not replace ours: " + os.strerror(r), lines)
            self.drop_dev(inp)
        self.live = 0

    def wipe_md(self):
        for k in self.g.md_keys:
            self.env.wipe(k)

    def format_stale(self, inp):
        """Formats the metadata with another valid table."""
        length, toks = inp.stale
        self.ensure_dev()
        r = self.dm.load(self.dmname, [(0, length, self.g.name, b" ".join(toks))], False)
        if r == 0 and self.dm.resume(self.dmname) == 0:
            self.live = 1
        self.kread(inp)
        self.swap_out(inp)

    def journal_write(self, inp, what=None):
        if self.journal is None:
            return
        s = "input %d seed %d target %s impl %s\ntable %s\n" % (
            inp.idx, self.a.seed, self.target, self.a.impl, esc(inp.line()[:2000]))
        if what is not None:
            s += "message %s\n" % esc(what[:2000])
        os.lseek(self.journal, 0, os.SEEK_SET)
        os.write(self.journal, s.encode())
        os.ftruncate(self.journal, len(s))

    def check_refs(self, inp, want, when, lines=()):
        """Our module is held once per target of ours in the live and the
        inactive table, no more (a leak), no less (not served by it)."""
        if self.mod and self.refcnt() != want:
            self.fail(inp, "refcount of %s %d %s, expected %d" % (self.mod, self.refcnt(), when, want), lines)

    # -- one input through the ioctls
    #
    # One device serves all inputs: an input's table is loaded (the
    # constructor runs) and resumed (dm core checks the devices' sizes and
    # limits, the target's preresume runs) in place of the live table of the
    # input before (whose destructor runs then). Removing a device that had
    # a table costs ~0.1 s under TCG (del_gendisk), so the device is removed
    # only now and then (inp.remove). Targets with metadata get an `error`
    # table before each input, so that the metadata is free to be wiped.
    def run_input(self, inp, verbose=False, msg_log=None):
        g = self.g
        self.journal_write(inp)
        if g.md_keys:
            self.swap_out(inp)
        self.wipe_md()
        if inp.stale:
            self.format_stale(inp)
        devnum = self.ensure_dev()
        base = self.live
        specs = [(s, l, t, p.replace(b"\0SELF\0", devnum)) for s, l, t, p in inp.specs]
        self.kread(inp)
        t = time.perf_counter()
        r = self.dm.load(self.dmname, specs, inp.readonly)
        dt = time.perf_counter() - t
        self.tm["load-" + ("rejected" if r else "accepted")] += dt
        lines = self.kread(inp)
        if verbose:
            print("# load: %s" % (os.strerror(r) if r else "ok"))
            for lvl, t in lines:
                print("#   kmsg<%d>: %s" % (lvl, t))
        if inp.nonascii():
            self.stats["nonutf8"] += 1
        if r:
            self.stats["rej_load"] += 1
            rs, lines = self.why(inp, lines)
            self.record(inp.idx, "reject-load", rs[0] if rs else "", inp.line())
            self.tm_reason[norm_reason(rs[0])[:90] if rs else "-"] += dt
            if not rs or any(NO_REASON_RE.search(t) for _, t in lines):
                self.fail(inp, "table rejected (%s) without a reason in the kernel log" %
                          errno.errorcode.get(r, r), lines)
            if inp.valid:
                self.fail(inp, "valid table rejected at load (%s)" % errno.errorcode.get(r, r), lines)
            self.check_refs(inp, base, "after a rejected table", lines)
            return "reject-load", rs
        ours = sum(1 for s in inp.specs if s[2] == g.name)
        self.check_refs(inp, base + ours, "with the table loaded (not served by it?)", lines)
        if self.other_loaded():
            self.fail(inp, "%s got loaded" % self.other, lines)
        if not inp.resume:
            # only the constructor (and the destructor) of this one: the
            # table is dropped, not resumed (for era and clone a resume
            # and the next swap cost ~0.4 s under TCG)
            t = time.perf_counter()
            r = self.dm.clear(self.dmname)
            self.tm["clear"] += time.perf_counter() - t
            lines = self.kread(inp)
            if r:
                self.fail(inp, "DM_TABLE_CLEAR: " + os.strerror(r), lines)
            self.check_refs(inp, base, "after the table was cleared", lines)
            self.stats["loaded"] += 1
            self.record(inp.idx, "loaded", "", inp.line())
            return "loaded", []
        t = time.perf_counter()
        r = self.dm.resume(self.dmname)
        self.tm["resume"] += time.perf_counter() - t
        lines = self.kread(inp)
        if verbose:
            print("# resume: %s" % (os.strerror(r) if r else "ok"))
            for lvl, t in lines:
                print("#   kmsg<%d>: %s" % (lvl, t))
        if r:
            self.stats["rej_resume"] += 1
            rs, lines = self.why(inp, lines)
            self.record(inp.idx, "reject-resume", rs[0] if rs else "", inp.line())
            if not rs or any(NO_REASON_RE.search(t) for _, t in lines):
                self.fail(inp, "table rejected at resume (%s) without a reason in the kernel log" %
                          errno.errorcode.get(r, r), lines)
            if inp.valid:
                self.fail(inp, "valid table rejected at resume (%s)" % errno.errorcode.get(r, r), lines)
            # the table before stays (suspended)
            self.check_refs(inp, base, "after a table rejected at resume", lines)
            return "reject-resume", rs
        self.live = ours
        self.check_refs(inp, ours, "with the table live", lines)
        self.stats["accepted"] += 1
        self.stats["valid"] += inp.valid
        self.record(inp.idx, "accept", "", inp.line())
        if inp.handle:
            t = time.perf_counter()
            self.accepted(inp, verbose, msg_log)
            self.tm["accepted: queries, I/O, messages"] += time.perf_counter() - t
            self.check_refs(inp, ours, "after queries and messages")
        if inp.remove:
            self.drop_dev(inp)
            self.kread(inp)
            self.check_refs(inp, 0, "after the device was removed")
        return "accept", []

    def accepted(self, inp, verbose, msg_log):
        """Queries, I/O, a reload of the table echo, messages."""
        extras(inp, self.target, self.g)
        name = self.dmname
        echo = []
        for fl in (0, DM_STATUS_TABLE_FLAG, DM_IMA_MEASUREMENT_FLAG):
            # A long table (a salt of thousands of digits) echoes beyond
            # 16 KiB: a larger buffer, as libdevmapper does.
            room = 16384
            while True:
                r, out, full = self.dm.status(name, fl, room)
                if not full or room >= 1 << 22:
                    break
                room *= 4
            self.stats["status"] += 1
            if r or full:
                self.fail(inp, "DM_TABLE_STATUS flags %#x: %s" % (fl, os.strerror(r) if r else "buffer full"),
                          self.kread(inp))
            elif verbose:
                print("# status %#x: %s" % (fl, [esc(o) for o in out]))
            if fl == DM_STATUS_TABLE_FLAG:
                echo = out
        if inp.small_status:
            for fl in (0, DM_STATUS_TABLE_FLAG, DM_IMA_MEASUREMENT_FLAG):
                self.dm.status(name, fl, inp.small_status)
        self.kread(inp)
        if inp.io and (not hasattr(self.g, "io_safe") or self.g.io_safe([s[3] for s in inp.specs])):
            self.io_probe(inp)
        if inp.roundtrip and len(echo) == len(inp.specs):
            # the echo of the table loads again (as the inactive table)
            self.stats["roundtrip"] += 1
            specs = [(s[0], s[1], s[2], e) for s, e in zip(inp.specs, echo)]
            r = self.dm.load(name, specs, inp.readonly)
            lines = self.kread(inp)
            if r:
                self.fail(inp, "the table echo %s does not load again: %s" %
                          (esc(b" | ".join(echo)), os.strerror(r)), lines)
            else:
                self.dm.clear(name)
                self.kread(inp)
        for n, (sector, m) in enumerate(inp.msgs):
            self.journal_write(inp, m)
            self.kread(inp, m)
            r = self.dm.message(name, sector, m)
            lines = self.kread(inp, m)
            if verbose:
                print("# message %s at %d: %s" % (esc(m), sector, os.strerror(r) if r else "ok"))
                for lvl, t in lines:
                    print("#   kmsg<%d>: %s" % (lvl, t))
            key = "%d.%d" % (inp.idx, n)
            if r:
                self.stats["msg_rej"] += 1
                rs, lines = self.why(inp, lines, m)
                self.record(key, "msg-reject", rs[0] if rs else "", m)
                if msg_log is not None:
                    msg_log.append(("msg-reject", norm_reason(rs[0] if rs else "")))
                if not rs:
                    self.fail(inp, "message at sector %d rejected (%s) without a reason in the kernel log" %
                              (sector, errno.errorcode.get(r, r)), lines, m)
            else:
                self.stats["msg_ok"] += 1
                self.record(key, "msg-ok", "", m)
                if msg_log is not None:
                    msg_log.append(("msg-ok", ""))

    def io_probe(self, inp):
        """Reads the first and last block of the device, writes the first
        (the data on the loop devices is scratch), reads it back."""
        node = os.path.join(self.a.scratch, "fzdev")
        try:
            os.unlink(node)
        except FileNotFoundError:
            pass
        os.mknod(node, 0o600 | stat.S_IFBLK, self.dmdev)
        rw = self.g.writes and not inp.readonly
        try:
            fd = os.open(node, (os.O_RDWR if rw else os.O_RDONLY) | os.O_DIRECT)
        except OSError as e:
            self.fail(inp, "open of the accepted device: " + e.strerror, self.kread(inp))
            return
        try:
            self.stats["io"] += 1
            lbs = struct.unpack("i", fcntl.ioctl(fd, BLKSSZGET, b"\0" * 4))[0]
            size = struct.unpack("Q", fcntl.ioctl(fd, BLKGETSIZE64, b"\0" * 8))[0]
            n = max(lbs, 4096) if size >= 4096 else lbs
            buf = mmap.mmap(-1, n)
            if size < n:
                return
            for off in (0, (size - n) // lbs * lbs):
                try:
                    os.preadv(fd, [buf], off)
                except OSError:
                    pass  # corrupt verity blocks, errors of the device: fine
            if rw:
                buf.write(b"\xa5" * n)
                try:
                    os.pwritev(fd, [buf], 0)
                    os.fsync(fd)
                    os.preadv(fd, [buf], 0)
                except OSError:
                    pass
        finally:
            os.close(fd)
            os.unlink(node)
        self.kread(inp)

    # -- the same input through dmsetup
    def dmsetup_input(self, inp, ioctl_outcome, ioctl_reasons, msg_outcomes):
        name = "rdmt-fz-d-" + self.target
        self.stats["dmsetup"] += 1
        if inp.nonascii():
            self.stats["dmsetup_nonutf8"] += 1
        self.wipe_md()
        if inp.stale:
            self.format_stale(inp)
        self.journal_write(inp)
        self.kread(inp)
        start, length, ttype, p = inp.specs[0]
        line = b"%d %d %s %s" % (start, length, ttype, p)
        cmd = [b"dmsetup", b"create", name.encode()] + ([b"--readonly"] if inp.readonly else []) + [b"--table", line]
        pr = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        lines = self.kread(inp)
        if pr.returncode:
            _, lines = self.why(inp, lines)
        err = pr.stderr.decode(errors="replace")
        if pr.returncode == 0:
            outcome = "accept"
        elif "resume ioctl" in err:
            outcome = "reject-resume"
        elif "reload ioctl" in err or "load ioctl" in err:
            outcome = "reject-load"
        else:
            outcome = "dmsetup-error: " + err.strip().replace("\n", " | ")
        rs = reasons(lines)
        # a size or limit that does not fit is refused when the table is
        # loaded into a new device (dmsetup create), when it is resumed in
        # one that had a table (the ioctl path)
        same = outcome.split("-")[0] == ioctl_outcome.split("-")[0]
        if same and outcome != "accept":
            a = [norm_reason(x) for x in rs]
            b = [norm_reason(x) for x in ioctl_reasons]
            same = a[:1] == b[:1]
        if not same:
            self.fail(inp, "dmsetup create: %s (%s), the ioctls: %s (%s)" %
                      (outcome, rs[:1], ioctl_outcome, ioctl_reasons[:1]), lines)
        if outcome == "accept":
            extras(inp, self.target, self.g)
            for n, (sector, m) in enumerate(inp.msgs[:3]):
                cmdm = [b"dmsetup", b"message", name.encode(), b"%d" % sector, b"--", m]
                self.kread(inp, m)
                pm = subprocess.run(cmdm, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
                ml = self.kread(inp, m)
                if pm.returncode:
                    _, ml = self.why(inp, ml, m)
                got = ("msg-ok" if pm.returncode == 0 else "msg-reject", norm_reason((reasons(ml) or [""])[0]))
                want = msg_outcomes[n] if n < len(msg_outcomes) else None
                if want is not None and got != want:
                    if pm.returncode != 0 and not reasons(ml) and m.strip() == b"":
                        continue  # dmsetup refuses an empty message itself
                    self.fail(inp, "dmsetup message: %s, the ioctl: %s (dmsetup said: %s)" %
                              (got, want, pm.stderr.decode(errors="replace").strip()), ml, m)
            pr2 = subprocess.run(["dmsetup", "remove", "--retry", name], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, timeout=120)
            if pr2.returncode:
                self.fail(inp, "dmsetup remove: " + pr2.stderr.decode(errors="replace"))
        self.kread(inp)
        if same:
            self.stats["dmsetup_same"] += 1

    # -- the whole run
    def run(self):
        a = self.a
        self.g = GRAMMARS[self.target](self.env, a.impl)
        self.g.may_report = self.kmsg.may_report
        if self.mod and not os.path.exists("/sys/module/" + self.mod):
            print("# %s is not loaded" % self.mod)
            return 2
        if self.other_loaded():
            print("# %s is loaded: it must not be" % self.other)
            return 2
        tv = self.dm.targets()
        tname = self.g.name.decode()
        if tname not in tv:
            print("# target %s is not registered (targets: %s)" % (tname, " ".join(tv)))
            return 2
        print("# seed: %d" % a.seed)
        print("# %s: target %s v%s (%s), %s inputs, devices: %s" % (
            self.target, tname, ".".join(map(str, tv[tname])), self.mod or "built-in",
            a.replay or a.count, " ".join("%s=%s" % (k, v.decode()) for k, v in self.env.path.items())))
        sys.stdout.flush()
        if self.results:
            self.results.write("# %s %s seed %d devices %s\n" % (
                self.target, a.impl, a.seed, " ".join("%s=%s" % (k, v.decode()) for k, v in self.env.path.items())))
        t0 = time.time()
        placeholder = b"\0SELF\0"
        if a.replay:
            for i in [int(x) for x in a.replay.split(",")]:
                inp = generate(a.seed, self.target, i, self.g, placeholder)
                print("# input %d (valid=%d): %s readonly=%d" % (i, inp.valid, esc(inp.line()), inp.readonly))
                self.run_input(inp, verbose=True)
            self.finish(t0)
            return 1 if self.failures else 0
        out = {}
        for i in range(a.count):
            t = time.perf_counter()
            inp = generate(a.seed, self.target, i, self.g, placeholder)
            self.tm["generate"] += time.perf_counter() - t
            if inp.self_ref and placeholder not in inp.line():
                inp.self_ref = False
            oc, rs = self.run_input(inp)
            if inp.dmsetup_ok():
                out[i] = (oc, inp.nonascii())
            if (i + 1) % 2000 == 0:
                print("# %d inputs, %d accepted, %d s" % (i + 1, self.stats["accepted"], time.time() - t0))
                sys.stdout.flush()
        t1 = time.time()
        self.dmsetup_sample(out)
        self.stats["dmsetup_s"] = time.time() - t1
        if self.dmdev is not None:
            self.drop_dev(inp)
        self.kread(inp)
        self.check_refs(inp, 0, "at the end, the device removed")
        self.finish(t0)
        return 1 if self.failures else 0

    def dmsetup_sample(self, out):
        """Up to --dmsetup inputs again through dmsetup: a quarter
        accepted ones, a quarter with non-UTF-8 bytes, the rest rejected
        at load or resume."""
        n = self.a.dmsetup
        if not n:
            return
        rng = random.Random("%d:%s:dmsetup" % (self.a.seed, self.target))
        gen = lambda i: generate(self.a.seed, self.target, i, self.g, b"\0SELF\0")
        acc = [i for i, (o, _) in out.items() if o == "accept"]
        res = [i for i, (o, _) in out.items() if o == "reject-resume"]
        rej = [i for i, (o, _) in out.items() if o == "reject-load"]
        nonutf = [i for i, (_, na) in out.items() if na]
        pick = []
        for pool, k in ((acc, n // 4), (nonutf, n // 4), (res, n // 8), (rej, n)):
            pool = [i for i in pool if i not in pick]
            pick += rng.sample(pool, min(len(pool), k, n - len(pick)))
        for i in sorted(pick):
            inp = gen(i)
            inp.resume = inp.handle = True
            # again through the ioctls, for the outcome of each message
            log = []
            saved, self.results = self.results, None
            oc, rs = self.run_input(inp, msg_log=log)
            self.results = saved
            if self.g.md_keys:
                self.swap_out(inp)  # the metadata is dmsetup's now
            self.dmsetup_input(inp, oc, rs, log)

    def finish(self, t0):
        s = self.stats
        n = s["accepted"] + s["loaded"] + s["rej_load"] + s["rej_resume"]
        print("# %s (%s): %d table lines: %d accepted (%d of them valid by construction), "
              "%d more accepted by the constructor (not resumed), "
              "%d rejected at load, %d at resume; %d with non-ASCII bytes; %d messages: %d accepted, "
              "%d rejected; %d status queries, %d I/O probes, %d table echoes reloaded; "
              "dmsetup: %d inputs (%d non-UTF-8), %d the same as through the ioctls (%.0f s); "
              "%d failures; %.0f s" % (
                  self.target, self.a.impl, n, s["accepted"], s["valid"], s["loaded"], s["rej_load"], s["rej_resume"],
                  s["nonutf8"], s["msg_ok"] + s["msg_rej"], s["msg_ok"], s["msg_rej"], s["status"], s["io"],
                  s["roundtrip"], s["dmsetup"], s["dmsetup_nonutf8"], s["dmsetup_same"],
                  s.get("dmsetup_s", 0), self.failures, time.time() - t0))
        print("# %s time: %s" % (self.target, ", ".join("%s %.1f s" % kv for kv in sorted(self.tm.items()))))
        top = sorted(self.tm_reason.items(), key=lambda kv: -kv[1])[:6]
        print("# %s rejected loads, most time: %s" % (self.target, "; ".join("%.1f s %s" % (v, k) for k, v in top)))
        sys.stdout.flush()

    def close(self):
        if self.dmdev is not None:
            self.dm.remove(self.dmname)
        self.env.close()
        if self.results and hasattr(self.results, "close"):
            self.results.close()


# ---- comparing two runs ------------------------------------------------------
def compare(fa, fb, examples=4):
    def load(f):
        d, head = {}, ""
        for line in open(f, errors="replace"):
            if line.startswith("#"):
                head = line.strip()
                continue
            k, o, r, w = (line.rstrip("\n").split("\t") + ["", "", ""])[:4]
            d[k] = (o, r, w)
        return head, d
    ha, a = load(fa)
    hb, b = load(fb)
    print("# A: " + ha)
    print("# B: " + hb)
    def cls(o):
        # the stage of a refusal of sizes and limits depends on the device's
        # history (at load in a new device, at resume in one that had a
        # table): not a difference between implementations
        return "reject" if o.startswith("reject-") else o

    def num(r):
        return re.sub(r"[0-9]+", "N", r)
    groups = {}
    for k in a:
        if k in b and cls(a[k][0]) != cls(b[k][0]):
            g = (cls(a[k][0]), cls(b[k][0]))
            groups.setdefault(g, []).append(k)
    same = sum(1 for k in a if k in b and cls(a[k][0]) == cls(b[k][0]))
    print("# %d outcomes compared, %d the same, %d different" % (
        sum(1 for k in a if k in b), same, sum(len(v) for v in groups.values())))
    for (oa, ob), ks in sorted(groups.items(), key=lambda x: -len(x[1])):
        print("# A %s, B %s: %d" % (oa, ob, len(ks)))
        by_reason = {}
        for k in ks:
            by_reason.setdefault((num(a[k][1]), num(b[k][1])), []).append(k)
        for (ra, rb), kk in sorted(by_reason.items(), key=lambda x: -len(x[1])):
            kinds = collections.Counter(kind(a[k][2]) for k in kk)
            print("#   %5d  A: %s | B: %s   (%s)" % (len(kk), ra or "-", rb or "-", ", ".join(
                "%s %d" % kv for kv in kinds.most_common())))
            for k in kk[:examples]:
                print("#            input %s: %s" % (k, a[k][2][:240]))
    return 0


def kind(w):
    """What in an input (escaped) explains a different outcome, as far as
    a pattern can tell."""
    nums = [int(n) for n in re.findall(r"(?<![0-9a-fA-F:x])[0-9]{1,40}(?![0-9a-fA-F:])", w)]
    if any(n >= 1 << 32 for n in nums):
        return "a number >= 2^32"
    if re.search(r"\\\\(\\x0[9a-d]|\\xa0| )", w):
        return "an escaped blank before a word"
    if re.search(r"(^|[ '])\+[0-9]", w):
        return "a leading +"
    return "other"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("target", choices=sorted(GRAMMARS))
    r.add_argument("--impl", default=os.environ.get("FUZZ_IMPL", "rust"), choices=["rust", "c"])
    r.add_argument("--seed", type=int, default=None)
    r.add_argument("--count", type=int, default=int(os.environ.get("FUZZ_COUNT", "10000")))
    r.add_argument("--dmsetup", type=int, default=int(os.environ.get("FUZZ_DMSETUP", "20")))
    r.add_argument("--scratch", default=os.path.join(os.environ.get("SCRATCH", "/tmp/rdm-scratch"), "fuzz"))
    r.add_argument("--results", default=None)
    r.add_argument("--replay", default=None, help="input indexes to run alone, verbosely")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    args = ap.parse_args()
    if args.cmd == "compare":
        return compare(args.a, args.b)
    if args.seed is None:
        s = os.environ.get("FUZZ_SEED")
        args.seed = int(s) if s else int.from_bytes(os.urandom(4), "little")
    os.makedirs(args.scratch, exist_ok=True)
    fz = Fuzzer(args)
    try:
        if os.environ.get("FUZZ_PROFILE"):
            import cProfile
            import pstats
            prof = cProfile.Profile()
            r = prof.runcall(fz.run)
            pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(25)
            return r
        return fz.run()
    except RuntimeError as e:
        print("# dm-fuzz: %s" % e)
        return 2
    finally:
        fz.close()


if __name__ == "__main__":
    sys.exit(main())
