#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""gpt_disk.py OUT DATA HASH: a GPT disk image with DATA in partition 1
("vdata") and HASH in partition 2 ("vhash"), laid out as sfdisk would (1 MiB
alignment); written here because sfdisk and sgdisk are not installed. Used
by the host boot tests (selftests/host/)."""
import struct, sys, uuid, zlib
out, data, hashimg = sys.argv[1:4]
blobs = [open(data, 'rb').read(), open(hashimg, 'rb').read()]
names = ['vdata', 'vhash']
linux_fs = uuid.UUID('0fc63daf-8483-4772-8e79-3d69d8477de4')
S = 512
parts, lba = [], 2048
for b in blobs:
    n = (len(b) + S - 1) // S
    parts.append((lba, lba + n - 1))
    lba = (lba + n + 2047) // 2048 * 2048
total = lba + 2048
entries = bytearray(128 * 128)
for i, ((first, last), name) in enumerate(zip(parts, names)):
    entries[i * 128:(i + 1) * 128] = struct.pack('<16s16sQQQ72s', linux_fs.bytes_le,
        uuid.uuid4().bytes_le, first, last, 0, name.encode('utf-16-le'))
ecrc = zlib.crc32(entries)
disk_guid = uuid.uuid4().bytes_le
def header(cur, backup, entries_lba):
    h = struct.pack('<8sIIIIQQQQ16sQIII', b'EFI PART', 0x10000, 92, 0, 0, cur, backup,
                    34, total - 34, disk_guid, entries_lba, 128, 128, ecrc)
    h = h[:16] + struct.pack('<I', zlib.crc32(h)) + h[20:]
    return h + bytes(S - len(h))
img = bytearray(total * S)
mbr = bytearray(S)
mbr[446:462] = struct.pack('<B3sB3sII', 0, b'\x00\x02\x00', 0xee, b'\xff\xff\xff', 1,
                           min(total - 1, 0xffffffff))
mbr[510:512] = b'\x55\xaa'
img[0:S] = mbr
img[S:2 * S] = header(1, total - 1, 2)
img[2 * S:2 * S + len(entries)] = entries
img[(total - 33) * S:(total - 1) * S] = entries
img[(total - 1) * S:] = header(total - 1, 1, total - 33)
for (first, _), b in zip(parts, blobs):
    img[first * S:first * S + len(b)] = b
open(out, 'wb').write(img)
