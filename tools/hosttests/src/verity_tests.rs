// SPDX-License-Identifier: GPL-2.0

use crate::verity_geometry::{FecGeometry, Geometry, MAX_LEVELS};
use crate::verity_table::*;

fn geo(version: u32, dbs: u32, hbs: u32, ds: u32, blocks: u64, start: u64) -> Geometry {
    Geometry::new(
        version,
        dbs.trailing_zeros(),
        hbs.trailing_zeros(),
        ds,
        blocks,
        start,
    )
    .unwrap()
}

#[test]
fn geometry_matches_veritysetup_layout() {
    // `veritysetup format` of 4 MiB, 4096-byte blocks, sha256: 9 hash blocks
    // after the superblock (hash_start = 1), top level first.
    let g = geo(1, 4096, 4096, 32, 1024, 1);
    assert_eq!(g.hash_per_block_bits, 7);
    assert_eq!(g.levels, 2);
    assert_eq!(g.level_start[1], 1);
    assert_eq!(g.level_start[0], 2);
    assert_eq!(g.hash_end, 10);
    assert_eq!(g.hash_at_level(0, 0), (2, 0));
    assert_eq!(g.hash_at_level(1023, 0), (9, 127 * 32));
    assert_eq!(g.hash_at_level(1023, 1), (1, 7 * 32));
    assert_eq!(g.hash_at_level(128, 0), (3, 0));
}

#[test]
fn geometry_version0_packs_digests() {
    // sha1 (20 bytes): 204 digests fit a 4096-byte block, the tree uses 128.
    let g = geo(0, 4096, 4096, 20, 1000, 0);
    assert_eq!(g.hash_per_block_bits, 7);
    assert_eq!(g.hash_at_level(5, 0).1, 5 * 20);
    // Version 1 pads each digest to a power of two (32 bytes).
    let g1 = geo(1, 4096, 4096, 20, 1000, 0);
    assert_eq!(g1.hash_at_level(5, 0).1, 5 * 32);
}

#[test]
fn geometry_small_and_empty_devices() {
    let g = geo(1, 4096, 4096, 32, 0, 3);
    assert_eq!((g.levels, g.hash_end), (0, 3));
    let g = geo(1, 4096, 4096, 32, 1, 3);
    assert_eq!((g.levels, g.hash_end), (0, 3));
    let g = geo(1, 4096, 4096, 32, 2, 3);
    assert_eq!((g.levels, g.hash_end), (1, 4));
    // Exactly one full hash block, and one more block.
    assert_eq!(geo(1, 4096, 4096, 32, 128, 0).levels, 1);
    assert_eq!(geo(1, 4096, 4096, 32, 129, 0).levels, 2);
}

#[test]
fn geometry_block_size_edges() {
    for (dbs, hbs) in [(512, 512), (1024, 4096), (4096, 512), (4096, 65536)] {
        for ds in [20u32, 32, 64] {
            if hbs < 2 * ds {
                continue;
            }
            let g = geo(1, dbs, hbs, ds, 100_000, 1);
            // Every block's level-0 hash lies inside level 0, levels are
            // contiguous, and the top level is one block.
            let top = g.levels - 1;
            assert_eq!(g.hash_at_level(99_999, top).0, g.level_start[top as usize]);
            for l in 0..g.levels {
                let (first, _) = g.hash_at_level(0, l);
                let (last, off) = g.hash_at_level(99_999, l);
                assert_eq!(first, g.level_start[l as usize]);
                let end = if l == 0 {
                    g.hash_end
                } else {
                    g.level_start[l as usize - 1]
                };
                assert!(last < end, "dbs {dbs} hbs {hbs} ds {ds} level {l}");
                assert!(off + ds as usize <= hbs as usize);
            }
        }
    }
}

#[test]
fn geometry_rejects_what_c_rejects() {
    assert_eq!(
        Geometry::new(1, 12, 5, 32, 10, 0).unwrap_err(),
        c"Digest size too big"
    );
    assert_eq!(
        Geometry::new(1, 12, 12, 32, 1000, u64::MAX - 2).unwrap_err(),
        c"Hash device offset overflow"
    );
    // Two digests per block: one tree level per bit of the block number.
    let r = Geometry::new(1, 9, 7, 64, u64::MAX, 0);
    assert_eq!(r.unwrap_err(), c"Too many tree levels");
    let g = Geometry::new(1, 9, 7, 64, 1 << (MAX_LEVELS - 1), 0)
        .map_err(|e| e.to_owned())
        .unwrap();
    assert_eq!(g.levels as usize, MAX_LEVELS - 1);
}

fn opts<'a>(a: &[&'a str]) -> Result<Options<'a>, &'static core::ffi::CStr> {
    let v: Vec<&'a [u8]> = a.iter().map(|s| s.as_bytes()).collect();
    // Tie the lifetime of the parsed options to the input strings.
    let leaked: &'a [&'a [u8]] = Box::leak(v.into_boxed_slice());
    parse_options(leaked, 12, true)
}

#[test]
fn options_parse() {
    assert_eq!(opts(&[]).unwrap(), Options::default());
    assert_eq!(opts(&["0"]).unwrap(), Options::default());
    let o = opts(&[
        "3",
        "IGNORE_CORRUPTION",
        "ignore_zero_blocks",
        "check_at_most_once",
    ])
    .unwrap();
    assert_eq!(o.mode, CorruptionMode::Logging);
    assert!(o.ignore_zero_blocks && o.check_at_most_once && !o.try_verify_in_tasklet);
    let o = opts(&["2", "panic_on_error", "restart_on_corruption"]).unwrap();
    assert_eq!(
        (o.mode, o.error_mode),
        (CorruptionMode::Restart, ErrorMode::Panic)
    );
    let o = opts(&["2", "root_hash_sig_key_desc", "mykey"]).unwrap();
    assert_eq!(o.sig_key_desc, Some(&b"mykey"[..]));
}

#[test]
fn options_reject() {
    let count = c"Invalid number of feature args";
    assert_eq!(opts(&["2", "ignore_corruption"]).unwrap_err(), count);
    assert_eq!(
        opts(&["1", "ignore_corruption", "check_at_most_once"]).unwrap_err(),
        count
    );
    assert_eq!(opts(&["x"]).unwrap_err(), count);
    assert_eq!(opts(&["-1"]).unwrap_err(), count);
    assert_eq!(opts(&["16"]).unwrap_err(), count);
    assert_eq!(
        opts(&["1", "bogus"]).unwrap_err(),
        c"Unrecognized verity feature request"
    );
    assert_eq!(
        opts(&["2", "ignore_corruption", "panic_on_corruption"]).unwrap_err(),
        c"Conflicting error handling parameters"
    );
    assert_eq!(
        opts(&["2", "restart_on_error", "restart_on_error"]).unwrap_err(),
        c"Conflicting error handling parameters"
    );
    assert_eq!(
        opts(&["2", "check_at_most_once", "check_at_most_once"]).unwrap_err(),
        c"Duplicate verity feature request"
    );
    assert_eq!(
        opts(&["1", "root_hash_sig_key_desc"]).unwrap_err(),
        SIG_KEY_MISSING
    );
    assert_eq!(
        opts(&[
            "4",
            "root_hash_sig_key_desc",
            "a",
            "root_hash_sig_key_desc",
            "b"
        ])
        .unwrap_err(),
        SIG_KEY_DUPLICATE
    );
    assert_eq!(
        opts(&["1", "use_fec_from_device"]).unwrap_err(),
        c"FEC feature arguments require a value"
    );
    assert_eq!(
        opts(&["4", "use_fec_from_device", "a", "USE_FEC_FROM_DEVICE", "b"]).unwrap_err(),
        c"FEC device already specified"
    );
    for bad in ["0", "1", "25", "258", "x", ""] {
        assert_eq!(
            opts(&["2", "fec_roots", bad]).unwrap_err(),
            c"Invalid fec_roots",
            "{bad}"
        );
    }
    // The size in sectors of 4 KiB blocks must fit 64 bits.
    assert_eq!(
        opts(&["2", "fec_blocks", "2305843009213693952"]).unwrap_err(),
        c"Invalid fec_blocks"
    );
    assert_eq!(
        opts(&["2", "fec_start", "1x"]).unwrap_err(),
        c"Invalid fec_start"
    );
    // Four FEC options, two flags and the signature: 15 arguments at most.
    assert_eq!(opts(&["16"]).unwrap_err(), count);
}

#[test]
fn options_fec() {
    let o = opts(&[
        "9",
        "restart_on_corruption",
        "use_fec_from_device",
        "/dev/x",
        "fec_roots",
        "2",
        "fec_blocks",
        "300",
        "FEC_START",
        "7",
    ])
    .unwrap();
    assert_eq!(o.mode, CorruptionMode::Restart);
    assert_eq!(
        o.fec,
        FecOptions {
            dev: Some(&b"/dev/x"[..]),
            roots: 2,
            blocks: 300,
            start: 7
        }
    );
    // As in C, a later value replaces an earlier one.
    let o = opts(&["4", "fec_roots", "24", "fec_roots", "13"]).unwrap();
    assert_eq!((o.fec.roots, o.fec.dev), (13, None));
}

#[test]
fn options_without_fec() {
    // A build without FEC (a kernel without REED_SOLOMON_DEC8), as C without
    // CONFIG_DM_VERITY_FEC: the options are unknown and at most 7 in all.
    let no_fec = |a: &[&'static str]| {
        let v: Vec<&'static [u8]> = a.iter().map(|s| s.as_bytes()).collect();
        parse_options(Box::leak(v.into_boxed_slice()), 12, false)
    };
    assert_eq!(
        no_fec(&["2", "use_fec_from_device", "/dev/x"]).unwrap_err(),
        c"Unrecognized verity feature request"
    );
    assert_eq!(
        no_fec(&["2", "fec_roots", "2"]).unwrap_err(),
        c"Unrecognized verity feature request"
    );
    assert_eq!(
        no_fec(&["8"]).unwrap_err(),
        c"Invalid number of feature args"
    );
    let o = no_fec(&["3", "ignore_zero_blocks", "root_hash_sig_key_desc", "k"]).unwrap();
    assert!(o.ignore_zero_blocks && o.fec == FecOptions::default());
}

#[test]
fn fec_geometry() {
    // 8 data blocks of 4 KiB, one hash block.
    let g = Geometry::new(1, 12, 12, 32, 8, 9).unwrap();
    assert_eq!(g.hash_end, 10);
    let f = FecGeometry::new(&g, 13, 9, 11).unwrap();
    assert_eq!((f.rsn, f.rounds, f.hash_blocks), (242, 1, 1));
    assert_eq!(f.parity_blocks(), 13);
    // One round: the codeword of byte k of the area's blocks is byte k of
    // every block.
    assert_eq!(f.rs_block(3), (0, 3 * 4096));
    assert_eq!(f.interleave(0), 0);
    assert_eq!(f.interleave(1), 4096);
    assert_eq!(f.interleave(242), 1);
    // Parity of 13 bytes: codeword 315 spans parity blocks 0 and 1.
    assert_eq!(f.parity_at(315), (0, 4095));
    assert_eq!(f.parity_at(316), (1, 12));
    assert_eq!(
        FecGeometry::new(&g, 13, 8, 0).unwrap_err(),
        c"Invalid fec_blocks"
    );
    assert_eq!(
        FecGeometry::new(&g, 0, 9, 0).unwrap_err(),
        c"Missing fec_roots"
    );
    assert_eq!(
        FecGeometry::new(&g, 2, 0, 0).unwrap_err(),
        c"Missing fec_blocks"
    );
    let g2 = Geometry::new(1, 12, 10, 32, 8, 9).unwrap();
    assert_eq!(
        FecGeometry::new(&g2, 2, 100, 0).unwrap_err(),
        c"Block sizes must match to use FEC"
    );
    // 1000 blocks with RS(255, 253): 4 rounds.
    let g = Geometry::new(1, 12, 12, 32, 1000, 0).unwrap();
    let f = FecGeometry::new(&g, 2, 1010, 0).unwrap();
    assert_eq!(f.rounds, 4);
    assert_eq!(f.interleave(253 * 5 + 2), 5 + 2 * 4 * 4096);
}

#[test]
fn mandatory_args() {
    assert_eq!(parse_version(b"0"), Ok(0));
    assert_eq!(parse_version(b"1"), Ok(1));
    assert_eq!(parse_version(b"2"), Err(c"Invalid version"));
    assert_eq!(parse_version(b"1x"), Err(c"Invalid version"));
    let r = c"bad";
    assert_eq!(parse_block_size(b"4096", 512, 4096, r), Ok(12));
    assert_eq!(parse_block_size(b"512", 512, 4096, r), Ok(9));
    for bad in [&b"3000"[..], b"256", b"8192", b"0", b"4096x", b"4294967296"] {
        assert_eq!(parse_block_size(bad, 512, 4096, r), Err(r), "{:?}", bad);
    }
    assert_eq!(parse_blocks(b"1024", 12, r), Ok(1024));
    // The size in sectors must fit 64 bits: 2^61 blocks of 4096 bytes do not.
    assert_eq!(parse_blocks(b"2305843009213693952", 12, r), Err(r));
    assert_eq!(
        parse_blocks(b"2305843009213693951", 12, r),
        Ok((1 << 61) - 1)
    );
    assert_eq!(parse_blocks(b"18446744073709551616", 9, r), Err(r));
    let mut d = [0u8; 64];
    assert_eq!(parse_digest(b"00ff", 2, &mut d), Ok(()));
    assert_eq!(&d[..2], &[0, 0xff]);
    assert_eq!(
        parse_digest(b"00ff", 3, &mut d),
        Err(c"Invalid root digest")
    );
    assert_eq!(
        parse_digest(b"00fg", 2, &mut d),
        Err(c"Invalid root digest")
    );
    let mut salt = [0u8; 4];
    assert_eq!(parse_salt(b"-", &mut salt), Ok(0));
    assert_eq!(parse_salt(b"0a0b", &mut salt), Ok(2));
    assert_eq!(parse_salt(b"0a0", &mut salt), Err(c"Invalid salt"));
    assert_eq!(parse_salt(b"zz", &mut salt), Err(c"Invalid salt"));
}
