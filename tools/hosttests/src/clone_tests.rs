// SPDX-License-Identifier: GPL-2.0

use crate::clone_superblock::*;
use crate::pdata_superblock::CheckError;
use crate::pdata_tests::sum;

fn sample() -> Superblock {
    let mut sm_root = [0u8; SPACE_MAP_ROOT_SIZE];
    for (i, b) in sm_root.iter_mut().enumerate() {
        *b = i as u8;
    }
    Superblock {
        sm_root,
        region_size: 128,
        target_size: 131072,
        bitset_root: 77,
    }
}

#[test]
fn layout_matches_c_struct() {
    // struct superblock_disk is packed: 4+4+8+16+8+4+128+8+8+8 bytes.
    assert_eq!(SIZE, 196);
    let mut b = vec![0xffu8; 4096];
    sample().encode(&mut b);
    assert_eq!(&b[4..8], &[0; 4]); // flags
    assert_eq!(&b[16..32], &[0; 16]); // uuid
    assert_eq!(&b[32..40], &0x8af27f64u64.to_le_bytes());
    assert_eq!(&b[40..44], &1u32.to_le_bytes());
    assert_eq!(b[44], 0);
    assert_eq!(b[44 + 127], 127);
    assert_eq!(&b[172..180], &128u64.to_le_bytes());
    assert_eq!(&b[180..188], &131072u64.to_le_bytes());
    assert_eq!(&b[188..196], &77u64.to_le_bytes());
    // Past the struct: untouched (the block manager zeroes the block).
    assert_eq!(b[196], 0xff);
}

#[test]
fn seal_check_round_trip_and_errors() {
    let mut b = vec![0u8; 4096];
    sample().encode(&mut b);
    FORMAT.seal(&mut b, LOCATION, sum);
    assert_eq!(FORMAT.check(&b, LOCATION, sum), Ok(()));
    assert_eq!(Superblock::decode(&b), sample());
    assert_eq!(FORMAT.check(&b, 1, sum), Err(CheckError::WrongLocation(0)));
    let mut bad = b.clone();
    bad[300] ^= 1;
    assert!(matches!(FORMAT.check(&bad, LOCATION, sum), Err(CheckError::Checksum(_, _))));
    let mut bad = b.clone();
    bad[32] ^= 1;
    assert!(matches!(FORMAT.check(&bad, LOCATION, sum), Err(CheckError::Magic(_))));
    let mut v2 = b.clone();
    v2[40] = 2;
    FORMAT.seal(&mut v2, LOCATION, sum);
    assert_eq!(FORMAT.check(&v2, LOCATION, sum), Err(CheckError::Version(2)));
}

#[test]
fn regions_count_and_short_tail() {
    let r = Regions::new(3, 64);
    assert_eq!((r.size(), r.nr), (8, 8));
    assert_eq!(r.copy_len(0, 8), 64);
    let r = Regions::new(7, 1000); // 7 full regions of 128 + 104
    assert_eq!(r.nr, 8);
    assert_eq!(r.copy_len(7, 1), 104);
    assert_eq!(r.copy_len(6, 2), 128 + 104);
    assert_eq!(r.copy_len(0, 1), 128);
    assert_eq!(r.copy_len(3, 0), 0);
    assert_eq!(r.of(127), 0);
    assert_eq!(r.of(128), 1);
    assert_eq!(r.start(3), 384);
    // Largest region, longest device the constructor allows.
    let r = Regions::new(21, (1u64 << 31) << 21);
    assert_eq!(r.nr, 1 << 31);
}

#[test]
fn discards_cover_whole_regions_only() {
    let r = Regions::new(3, 80); // 10 regions of 8 sectors
    assert_eq!(r.covered(0, 8), (0, 1));
    assert_eq!(r.covered(0, 7), (0, 0));
    assert_eq!(r.covered(1, 8), (1, 0));
    assert_eq!(r.covered(1, 16), (1, 1));
    assert_eq!(r.covered(4, 40), (1, 4));
    assert_eq!(r.covered(8, 72), (1, 9));
    // The C arithmetic: first = ceil(start / size), end = floor(end / size).
    for start in 0..40u64 {
        for len in 0..40u64 {
            let (first, n) = r.covered(start, len);
            let c_first = start.div_ceil(8);
            let c_end = (start + len) / 8;
            assert_eq!(first, c_first);
            assert_eq!(n, c_end.saturating_sub(c_first));
        }
    }
}
