// SPDX-License-Identifier: GPL-2.0

use crate::pdata_superblock::*;

/// A stand-in checksum for the layout tests (the kernel uses crc32c).
pub(crate) fn sum(d: &[u8], xor: u32) -> u32 {
    d.iter().fold(xor, |a, &b| a.rotate_left(5) ^ u32::from(b))
}

const F: Format = Format {
    magic: 0x0123_4567_89ab_cdef,
    csum_xor: 42,
    version: 3,
};

#[test]
fn header_layout_matches_c_struct() {
    // __le32 csum, flags; __le64 blocknr; __u8 uuid[16]; __le64 magic;
    // __le32 version; __u8 metadata_space_map_root[128].
    assert_eq!(FIELDS, 4 + 4 + 8 + 16 + 8 + 4 + 128);
    let mut root = [0u8; SPACE_MAP_ROOT_SIZE];
    for (i, b) in root.iter_mut().enumerate() {
        *b = !(i as u8);
    }
    let mut b = vec![0xffu8; 512];
    F.encode_header(&mut b, &root);
    assert_eq!(&b[0..4], &[0xff; 4]); // csum: the validator's
    assert_eq!(&b[4..8], &[0; 4]); // flags
    assert_eq!(&b[8..16], &[0xff; 8]); // blocknr: the validator's
    assert_eq!(&b[16..32], &[0; 16]); // uuid
    assert_eq!(&b[32..40], &F.magic.to_le_bytes());
    assert_eq!(&b[40..44], &3u32.to_le_bytes());
    assert_eq!(sm_root(&b), root);
    assert_eq!(b[FIELDS], 0xff); // the target's fields: untouched
}

#[test]
fn seal_then_check_in_c_order() {
    let mut b = vec![0u8; 512];
    F.encode_header(&mut b, &[7; SPACE_MAP_ROOT_SIZE]);
    F.seal(&mut b, 9, sum);
    assert_eq!(le64(&b, BLOCKNR), 9);
    assert_eq!(le32(&b, CSUM), sum(&b[FLAGS..], 42));
    assert_eq!(F.check(&b, 9, sum), Ok(()));
    // The checksum's xor is the format's: another format's does not match.
    let other = Format { csum_xor: 43, ..F };
    assert!(matches!(
        other.check(&b, 9, sum),
        Err(CheckError::Checksum(_, _))
    ));
    // Location first, then magic, then checksum, then version.
    assert_eq!(F.check(&b, 8, sum), Err(CheckError::WrongLocation(9)));
    let mut c = b.clone();
    c[MAGIC] ^= 1;
    c[300] ^= 1;
    assert_eq!(F.check(&c, 9, sum), Err(CheckError::Magic(F.magic ^ 1)));
    let mut c = b.clone();
    c[300] ^= 1;
    let stored = le32(&c, CSUM);
    assert_eq!(
        F.check(&c, 9, sum),
        Err(CheckError::Checksum(sum(&c[FLAGS..], 42), stored))
    );
    let mut c = b.clone();
    put32(&mut c, VERSION, 4);
    F.seal(&mut c, 9, sum);
    assert_eq!(F.check(&c, 9, sum), Err(CheckError::Version(4)));
}

#[test]
fn byte_helpers_are_little_endian() {
    let mut b = [0u8; 12];
    put32(&mut b, 0, 0x0102_0304);
    put64(&mut b, 4, 0x1112_1314_1516_1718);
    assert_eq!(
        b,
        [4, 3, 2, 1, 0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11]
    );
    assert_eq!(le32(&b, 0), 0x0102_0304);
    assert_eq!(le64(&b, 4), 0x1112_1314_1516_1718);
}
