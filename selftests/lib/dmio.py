# SPDX-License-Identifier: GPL-2.0
"""Device-mapper ioctls from Python, made as dmsetup makes them, for the
suites' helpers and the bench, which must not start a process per command
(one dmsetup call costs 0.3 to 1 s under TCG): selftests/cycles.py,
faults.py, clone_crash.py import it from the lib folder beside them;
tools/bench-guest.sh's Python (PYTHONPATH) too.

struct dm_ioctl (linux/dm-ioctl.h) is 312 bytes: version[3], data_size,
data_start, target_count, open_count, flags, event_nr, padding, dev,
name[128] (offset 48), uuid[129], data[7]; a command's data (a table, a
struct dm_target_msg: a u64 sector, then the message) follows at
data_start."""
import fcntl
import os
import struct

DM_SIZE, SPEC = 312, 40
VERSION, CREATE, REMOVE, SUSPEND, DEVSTATUS, LOAD, TSTATUS, VERSIONS, MSG = 0, 3, 4, 6, 7, 9, 12, 13, 14
F_RO, F_SUSPEND, F_TABLE, F_ACTIVE, F_INACTIVE = 1, 2, 16, 32, 64
F_BUFFER_FULL, F_NOFLUSH = 1 << 8, 1 << 11


def request(nr, name, flags=0, data=b"", count=0, room=64):
    """(request code, buffer) of DM ioctl NR on device NAME, with DATA
    after the header and ROOM bytes for the answer: what ioctl() sends,
    for a caller that times the ioctl alone."""
    size = DM_SIZE + len(data) + room
    b = bytearray(size)
    struct.pack_into("=3IIIIiIII", b, 0, 4, 0, 0, size, DM_SIZE, count, 0, flags, 0, 0)
    n = name.encode()
    b[48:48 + len(n)] = n
    b[DM_SIZE:DM_SIZE + len(data)] = data
    return (3 << 30) | (DM_SIZE << 16) | (0xFD << 8) | nr, b


def ioctl(fd, nr, name, flags=0, data=b"", count=0, room=64):
    """DM ioctl NR on device NAME through FD (/dev/mapper/control), with
    DATA after the header and ROOM bytes for the answer; returns the
    buffer, raises OSError."""
    code, b = request(nr, name, flags, data, count, room)
    fcntl.ioctl(fd, code, b, True)
    return b


def message_data(text, sector=0):
    """DM_TARGET_MSG's data: struct dm_target_msg for TEXT (str, or bytes
    as they are) at SECTOR (modulo 2^64)."""
    return struct.pack("=Q", sector & U64) + _bytes(text) + b"\0"


def message(fd, name, text, room=4096):
    """Sends message TEXT to device NAME (sector 0); raises OSError."""
    return ioctl(fd, MSG, name, data=message_data(text), room=room)


def header(b):
    """(data_start, target_count, open_count, flags, event_nr) of the
    answer B."""
    return struct.unpack_from("=IIiII", b, 16)


U64 = (1 << 64) - 1


def _bytes(s):
    return s if isinstance(s, (bytes, bytearray)) else s.encode()


def table(targets):
    """DM_TABLE_LOAD's data for TARGETS, a list of (start, length, type,
    params) (type and params: str, or bytes as they are; start and length
    taken modulo 2^64): (data, count)."""
    blobs = []
    for i, (start, length, ttype, params) in enumerate(targets):
        p = _bytes(params) + b"\0"
        size = (SPEC + len(p) + 7) & ~7
        blob = bytearray(size)
        struct.pack_into("=QQiI16s", blob, 0, start & U64, length & U64, 0,
                         size if i + 1 < len(targets) else 0, _bytes(ttype))
        blob[SPEC:SPEC + len(p)] = p
        blobs.append(blob)
    return b"".join(blobs), len(targets)


def targets(b):
    """(type, params) of each target in the answer B of DM_TABLE_STATUS."""
    off, count = struct.unpack_from("=II", b, 16)
    out = []
    for _ in range(count):
        out.append((bytes(b[off + 24:off + 40]).split(b"\0")[0].decode(),
                    bytes(b[off + 40:]).split(b"\0")[0].decode()))
        off += struct.unpack_from("=I", b, off + 20)[0]
    return out
