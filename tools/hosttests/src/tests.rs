// SPDX-License-Identifier: GPL-2.0

use crate::emit::StatusWriter;
use crate::linear_mapping::map_sector;
use crate::parse::{parse_hex, parse_u32, parse_u64, parse_u64_in, ParseError};
use core::fmt::Write;

#[test]
fn u64_accepts_plain_decimal() {
    assert_eq!(parse_u64(b"0"), Ok(0));
    assert_eq!(parse_u64(b"007"), Ok(7));
    assert_eq!(parse_u64(b"18446744073709551615"), Ok(u64::MAX));
}

#[test]
fn u64_rejects_what_sscanf_would_misread() {
    assert_eq!(parse_u64(b""), Err(ParseError::Empty));
    assert_eq!(parse_u64(b"-1"), Err(ParseError::Invalid));
    assert_eq!(parse_u64(b"+1"), Err(ParseError::Invalid));
    assert_eq!(parse_u64(b" 1"), Err(ParseError::Invalid));
    assert_eq!(parse_u64(b"1 "), Err(ParseError::Invalid));
    assert_eq!(parse_u64(b"12abc"), Err(ParseError::Invalid));
    assert_eq!(parse_u64(b"0x10"), Err(ParseError::Invalid));
    assert_eq!(parse_u64(b"1.5"), Err(ParseError::Invalid));
    assert_eq!(parse_u64("٣".as_bytes()), Err(ParseError::Invalid));
}

#[test]
fn u64_rejects_overflow() {
    assert_eq!(
        parse_u64(b"18446744073709551616"),
        Err(ParseError::Overflow)
    );
    assert_eq!(
        parse_u64(b"99999999999999999999999"),
        Err(ParseError::Overflow)
    );
}

#[test]
fn u32_and_ranges() {
    assert_eq!(parse_u32(b"4294967295"), Ok(u32::MAX));
    assert_eq!(parse_u32(b"4294967296"), Err(ParseError::Overflow));
    assert_eq!(parse_u64_in(b"8", 8, 16), Ok(8));
    assert_eq!(parse_u64_in(b"16", 8, 16), Ok(16));
    assert_eq!(parse_u64_in(b"7", 8, 16), Err(ParseError::Overflow));
    assert_eq!(parse_u64_in(b"17", 8, 16), Err(ParseError::Overflow));
}

#[test]
fn hex_decoding() {
    let mut out = [0u8; 4];
    assert_eq!(parse_hex(b"00fFa5", &mut out), Ok(3));
    assert_eq!(&out[..3], &[0x00, 0xff, 0xa5]);
    assert_eq!(parse_hex(b"abc", &mut out), Err(ParseError::Invalid));
    assert_eq!(parse_hex(b"zz", &mut out), Err(ParseError::Invalid));
    assert_eq!(
        parse_hex(b"0011223344", &mut out),
        Err(ParseError::Overflow)
    );
    assert_eq!(parse_hex(b"", &mut out), Err(ParseError::Empty));
}

#[test]
fn status_writer_formats_and_terminates() {
    let mut buf = [0xffu8; 32];
    let mut w = StatusWriter::new(&mut buf);
    write!(w, "{} {}", "7:0", 1024).unwrap();
    assert_eq!(w.as_bytes(), b"7:0 1024");
    assert_eq!(w.len(), 8);
    assert_eq!(buf[8], 0);
}

#[test]
fn status_writer_truncates_like_dmemit() {
    // dm-ioctl detects a full buffer by strlen + 1 == maxlen.
    let mut buf = [0xffu8; 8];
    let mut w = StatusWriter::new(&mut buf);
    write!(w, "0123456789").unwrap();
    write!(w, "more").unwrap();
    assert_eq!(w.as_bytes(), b"0123456");
    assert_eq!(buf[7], 0);
}

#[test]
fn status_writer_empty_and_zero_sized() {
    let mut buf = [0xffu8; 4];
    let w = StatusWriter::new(&mut buf);
    assert!(w.is_empty());
    assert_eq!(buf[0], 0);
    let mut none: [u8; 0] = [];
    let mut w = StatusWriter::new(&mut none);
    write!(w, "x").unwrap();
    assert!(w.is_empty());
}

#[test]
fn linear_map_sector() {
    assert_eq!(map_sector(1024, 0, 0), 1024);
    assert_eq!(map_sector(1024, 0, 7), 1031);
    // Second target of a table, starting at sector 1000 of the mapped device.
    assert_eq!(map_sector(500, 1000, 1000), 500);
    assert_eq!(map_sector(500, 1000, 2999), 2499);
    // Never panics, even outside the target.
    assert_eq!(map_sector(0, 1, 0), u64::MAX);
    assert_eq!(map_sector(u64::MAX, 0, 1), 0);
}
