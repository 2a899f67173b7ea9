# SPDX-License-Identifier: GPL-2.0
"""Device-mapper ioctls from Python, made as dmsetup makes them, for the
suites' helpers that must not start a process per command (one dmsetup
call costs 0.3 to 1 s under TCG): selftests/cycles.py, faults.py,
clone_crash.py. They import it from the lib folder beside them."""
import fcntl
import os
import struct

DM_SIZE, SPEC = 312, 40
CREATE, REMOVE, SUSPEND, DEVSTATUS, LOAD, TSTATUS, VERSIONS, MSG = 3, 4, 6, 7, 9, 12, 13, 14
F_RO, F_SUSPEND, F_TABLE, F_ACTIVE, F_INACTIVE = 1, 2, 16, 32, 64


def ioctl(fd, nr, name, flags=0, data=b"", count=0, room=64):
    """DM ioctl NR on device NAME through FD (/dev/mapper/control), with
    DATA after the header and ROOM bytes for the answer; returns the
    buffer, raises OSError."""
    size = DM_SIZE + len(data) + room
    b = bytearray(size)
    struct.pack_into("=3IIIIiIII", b, 0, 4, 0, 0, size, DM_SIZE, count, 0, flags, 0, 0)
    n = name.encode()
    b[48:48 + len(n)] = n
    b[DM_SIZE:DM_SIZE + len(data)] = data
    fcntl.ioctl(fd, (3 << 30) | (DM_SIZE << 16) | (0xFD << 8) | nr, b, True)
    return b


def table(targets):
    """DM_TABLE_LOAD's data for TARGETS, a list of (start, length, type,
    params): (data, count)."""
    blobs = []
    for i, (start, length, ttype, params) in enumerate(targets):
        p = params.encode() + b"\0"
        size = (SPEC + len(p) + 7) & ~7
        blob = bytearray(size)
        struct.pack_into("=QQiI16s", blob, 0, start, length, 0,
                         size if i + 1 < len(targets) else 0, ttype.encode())
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
