#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# Replays a dm-log-writes log (drivers/md/dm-log-writes.c of Linux 6.12) onto
# a device or image file, like josefbacik/log-writes' replay-log, in Python
# with no third-party package.
#
#   log-writes-replay --log LOG --list-marks
#   log-writes-replay --log LOG --dump
#   log-writes-replay --log LOG --replay DEV [--start-mark M] [--limit-mark M]
#                     [--fsync] [-v]
#
# --limit-mark M (alias --end-mark) replays every entry up to the mark M and
# stops there; --start-mark M replays from the entry after the mark M on (for
# an incremental replay onto a device that already holds the state at M).
# Without --limit-mark the whole log is replayed. A mark that is not in the
# log is an error (exit 1): nothing is replayed.
#
# Log format (all little endian; "sector" is the sector size of the logged
# device, recorded in the super block, 512 for loop devices):
#   sector 0: super   u64 magic 0x6a736677736872, u64 version 1,
#                     u64 nr_entries, u32 sectorsize
#   then nr_entries entries, each one sector of header
#                     u64 sector, u64 nr_sectors, u64 flags, u64 data_len
#             followed by nr_sectors sectors of data (not for discards;
#             a mark carries its text, data_len bytes, in the header sector
#             after the 32-byte header, and has nr_sectors 0).
#   flags: FLUSH 1, FUA 2, DISCARD 4, MARK 8, METADATA 16.
# The target logs a write only once it is stable: a non-FUA write when a
# later flush completes (the writes then the flush entry), a FUA write when it
# completes, a mark when it is sent. Replaying up to a mark therefore gives
# the device's durable contents as of the mark. The super block's
# nr_entries is updated at FUA writes and marks; removing the target logs the
# final mark "dm-log-writes-end".
#
# Replay: writes are written at sector * sectorsize; discards are replayed
# as zeroes (what a discard on the loop devices of the selftests reads back);
# flushes are fdatasync()ed with --fsync only (image files in a tmpfs do not
# need it).
#
# The module can also be imported (importlib, see selftests/clone_crash.sh):
# WriteLog(path) indexes a log, Replayer(log, fd or [fd, ...]) replays it
# incrementally onto one or more targets (replay_to_mark(name),
# replay_to(index), replay_all()).
import argparse
import os
import struct
import sys

MAGIC = 0x6A736677736872
VERSION = 1
FLUSH, FUA, DISCARD, MARK, METADATA = 1, 2, 4, 8, 16
FLAG_NAMES = ((FLUSH, "FLUSH"), (FUA, "FUA"), (DISCARD, "DISCARD"), (MARK, "MARK"),
              (METADATA, "METADATA"))
SUPER = struct.Struct("<QQQI")
ENTRY = struct.Struct("<QQQQ")


class LogError(Exception):
    pass


class Entry:
    __slots__ = ("index", "sector", "nr_sectors", "flags", "data_len", "data_off", "mark")

    def __init__(self, index, sector, nr_sectors, flags, data_len, data_off, mark):
        self.index = index            # position in the log, from 0
        self.sector = sector          # in units of the log's sectorsize
        self.nr_sectors = nr_sectors
        self.flags = flags
        self.data_len = data_len
        self.data_off = data_off      # byte offset of the data in the log
        self.mark = mark              # text of a mark, else None

    def flag_names(self):
        return "|".join(n for f, n in FLAG_NAMES if self.flags & f) or "WRITE"

    def __repr__(self):
        if self.mark is not None:
            return "%d MARK %r" % (self.index, self.mark)
        return "%d %s sector %d nr %d" % (self.index, self.flag_names(), self.sector,
                                          self.nr_sectors)


class WriteLog:
    """The entries of a dm-log-writes log (file or block device)."""

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        raw = os.pread(self.fd, 512, 0)
        if len(raw) < SUPER.size:
            raise LogError("%s: too short for a log super block" % path)
        magic, version, nr_entries, sectorsize = SUPER.unpack_from(raw)
        if magic != MAGIC:
            raise LogError("%s: bad magic %#x (not a dm-log-writes log)" % (path, magic))
        if version != VERSION:
            raise LogError("%s: unsupported log version %d" % (path, version))
        if sectorsize < 512 or sectorsize & (sectorsize - 1):
            raise LogError("%s: bad sector size %d" % (path, sectorsize))
        self.nr_entries = nr_entries
        self.sectorsize = sectorsize
        self.entries = []
        self._index()

    def _index(self):
        ss = self.sectorsize
        size = os.lseek(self.fd, 0, os.SEEK_END)
        off = ss  # the first entry follows the super block's sector
        for i in range(self.nr_entries):
            hdr = os.pread(self.fd, ss, off)
            if len(hdr) < ss:
                raise LogError("%s: entry %d at byte %d beyond the end of the log"
                               % (self.path, i, off))
            sector, nr, flags, data_len = ENTRY.unpack_from(hdr)
            if flags & ~(FLUSH | FUA | DISCARD | MARK | METADATA):
                raise LogError("%s: entry %d has unknown flags %#x" % (self.path, i, flags))
            mark = None
            if flags & MARK:
                if data_len > ss - ENTRY.size:
                    raise LogError("%s: mark entry %d too long" % (self.path, i))
                mark = hdr[ENTRY.size:ENTRY.size + data_len].decode("utf-8", "replace")
            data_off = off + ss
            off = data_off
            if not flags & DISCARD:
                off += nr * ss
            if off > size:
                raise LogError("%s: data of entry %d beyond the end of the log" % (self.path, i))
            self.entries.append(Entry(i, sector, nr, flags, data_len, data_off, mark))

    def marks(self):
        return [(e.index, e.mark) for e in self.entries if e.mark is not None]

    def mark_index(self, name, after=-1):
        """Index of the first mark NAME after entry AFTER."""
        for e in self.entries[after + 1:]:
            if e.mark == name:
                return e.index
        raise LogError("%s: no mark %r%s" % (self.path, name,
                                             " after entry %d" % after if after >= 0 else ""))

    def close(self):
        os.close(self.fd)


class Replayer:
    """Replays a WriteLog onto an open file descriptor, incrementally."""

    CHUNK = 1 << 20

    def __init__(self, log, fd, fsync=False):
        self.log = log
        # One target, or a list of targets replayed alike.
        self.fds = list(fd) if isinstance(fd, (list, tuple)) else [fd]
        self.fsync = fsync
        self.next = 0          # index of the next entry to replay
        self.applied = 0       # entries with data (writes, discards) replayed
        self._zeros = bytes(self.CHUNK)

    def _write(self, buf, off):
        for fd in self.fds:
            if os.pwrite(fd, buf, off) != len(buf):
                raise LogError("short write to the replay target at byte %d" % off)

    def _copy(self, src_off, dst_off, n):
        while n:
            k = min(n, self.CHUNK)
            buf = os.pread(self.log.fd, k, src_off)
            if len(buf) != k:
                raise LogError("short read of the log at byte %d" % src_off)
            self._write(buf, dst_off)
            src_off += k
            dst_off += k
            n -= k

    def _zero(self, dst_off, n):
        while n:
            k = min(n, self.CHUNK)
            self._write(self._zeros[:k], dst_off)
            dst_off += k
            n -= k

    def apply(self, e):
        ss = self.log.sectorsize
        if e.flags & MARK:
            return False
        changed = False
        if e.nr_sectors:
            if e.flags & DISCARD:
                self._zero(e.sector * ss, e.nr_sectors * ss)
            else:
                self._copy(e.data_off, e.sector * ss, e.nr_sectors * ss)
            self.applied += 1
            changed = True
        if e.flags & FLUSH and self.fsync:
            for fd in self.fds:
                os.fdatasync(fd)
        return changed

    def replay_to(self, index):
        """Replays the entries up to INDEX (included); returns the number of
        entries that changed the target."""
        n = 0
        while self.next <= index:
            if self.apply(self.log.entries[self.next]):
                n += 1
            self.next += 1
        return n

    def replay_to_mark(self, name):
        return self.replay_to(self.log.mark_index(name, self.next - 1))

    def replay_all(self):
        return self.replay_to(len(self.log.entries) - 1)


def main():
    ap = argparse.ArgumentParser(description="Replay a dm-log-writes log.")
    ap.add_argument("--log", required=True, help="the log device or image")
    ap.add_argument("--replay", help="the device or image to replay onto")
    ap.add_argument("--limit-mark", "--end-mark", dest="limit_mark",
                    help="stop at this mark (replay the entries before it)")
    ap.add_argument("--start-mark", help="start after this mark")
    ap.add_argument("--list-marks", action="store_true", help="print the marks")
    ap.add_argument("--dump", action="store_true", help="print every entry")
    ap.add_argument("--fsync", action="store_true", help="fdatasync the target at flushes")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    try:
        log = WriteLog(a.log)
        if a.list_marks or a.dump:
            for e in log.entries:
                if a.dump:
                    print(repr(e))
                elif e.mark is not None:
                    print("%d %s" % (e.index, e.mark))
            return 0
        if not a.replay:
            ap.error("--replay DEV, --list-marks or --dump is required")
        first = log.mark_index(a.start_mark) + 1 if a.start_mark else 0
        last = log.mark_index(a.limit_mark, first - 1) if a.limit_mark else len(log.entries) - 1
        fd = os.open(a.replay, os.O_WRONLY)
        r = Replayer(log, fd, fsync=a.fsync)
        r.next = first
        n = r.replay_to(last)
        os.fdatasync(fd)
        os.close(fd)
        if a.verbose:
            print("replayed entries %d..%d of %d (%d writes/discards) onto %s"
                  % (first, last, len(log.entries), n, a.replay), file=sys.stderr)
        return 0
    except (LogError, OSError) as err:
        print("log-writes-replay: %s" % err, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
