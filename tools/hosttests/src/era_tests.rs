// SPDX-License-Identifier: GPL-2.0

use crate::era_superblock::*;
use crate::pdata_superblock::CheckError;
use crate::pdata_tests::sum;

fn sample() -> Superblock {
    let mut sm_root = [0u8; SPACE_MAP_ROOT_SIZE];
    for (i, b) in sm_root.iter_mut().enumerate() {
        *b = i as u8;
    }
    Superblock {
        sm_root,
        data_block_size: 128,
        nr_blocks: 1024,
        current_era: 7,
        current_writeset: WritesetMetadata { nr_bits: 1024, root: 42 },
        writeset_tree_root: 5,
        era_array_root: 6,
        metadata_snap: 0,
    }
}

#[test]
fn layout_matches_c_struct() {
    // struct superblock_disk is packed: 4+4+8+16+8+4+128+4*5+12+8*3 bytes.
    assert_eq!(SIZE, 224);
    let mut b = vec![0u8; 4096];
    sample().encode(&mut b);
    assert_eq!(&b[32..40], &FORMAT.magic.to_le_bytes());
    assert_eq!(&b[40..44], &1u32.to_le_bytes());
    assert_eq!(b[44], 0);
    assert_eq!(b[44 + 127], 127);
    assert_eq!(&b[172..176], &128u32.to_le_bytes()); // data_block_size
    assert_eq!(&b[176..180], &8u32.to_le_bytes()); // metadata_block_size (sectors)
    assert_eq!(&b[180..184], &1024u32.to_le_bytes()); // nr_blocks
    assert_eq!(&b[184..188], &7u32.to_le_bytes()); // current_era
    assert_eq!(&b[188..192], &1024u32.to_le_bytes()); // current_writeset.nr_bits
    assert_eq!(&b[192..200], &42u64.to_le_bytes()); // current_writeset.root
    assert_eq!(&b[200..208], &5u64.to_le_bytes());
    assert_eq!(&b[208..216], &6u64.to_le_bytes());
    assert_eq!(&b[216..224], &0u64.to_le_bytes());
}

#[test]
fn encode_decode_round_trip() {
    let mut b = vec![0u8; 4096];
    let s = sample();
    s.encode(&mut b);
    assert_eq!(Superblock::decode(&b), s);
}

#[test]
fn seal_and_check() {
    let mut b = vec![0u8; 4096];
    sample().encode(&mut b);
    FORMAT.seal(&mut b, 0, sum);
    assert_eq!(FORMAT.check(&b, 0, sum), Ok(()));
    assert_eq!(FORMAT.check(&b, 3, sum), Err(CheckError::WrongLocation(0)));
    let mut c = b.clone();
    c[300] ^= 1;
    assert!(matches!(FORMAT.check(&c, 0, sum), Err(CheckError::Checksum(_, _))));
    let mut c = b.clone();
    c[32] ^= 1;
    FORMAT.seal(&mut c, 0, sum);
    assert_eq!(FORMAT.check(&c, 0, sum), Err(CheckError::Magic(FORMAT.magic ^ 1)));
    let mut c = b.clone();
    c[40] = 2;
    FORMAT.seal(&mut c, 0, sum);
    assert_eq!(FORMAT.check(&c, 0, sum), Err(CheckError::Version(2)));
}

#[test]
fn writeset_pack() {
    let w = WritesetMetadata { nr_bits: 0x01020304, root: 0x1112131415161718 };
    let p = w.pack();
    assert_eq!(p, [4, 3, 2, 1, 0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11]);
    assert_eq!(WritesetMetadata::unpack(&p), w);
}
