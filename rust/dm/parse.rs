// SPDX-License-Identifier: GPL-2.0

//! Table-argument grammar shared by the targets.
//!
//! Pure functions on byte strings, with no kernel dependency, so that the same
//! file is compiled into every module and into the host unit tests
//! (`tools/hosttests`). They are stricter than the C targets' `sscanf("%llu%c")`:
//! a number that does not fit is an error, never a silently wrapped value.

/// Why a table argument was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The argument is empty.
    Empty,
    /// The argument has a character that is not allowed here.
    Invalid,
    /// The value does not fit the destination type, or is out of range.
    Overflow,
}

/// Parses an unsigned decimal number: ASCII digits only, no sign, no spaces.
pub fn parse_u64(s: &[u8]) -> Result<u64, ParseError> {
    if s.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut value: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return Err(ParseError::Invalid);
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or(ParseError::Overflow)?;
    }
    Ok(value)
}

/// Parses an unsigned decimal number that must fit in 32 bits.
pub fn parse_u32(s: &[u8]) -> Result<u32, ParseError> {
    u32::try_from(parse_u64(s)?).map_err(|_| ParseError::Overflow)
}

/// Parses an unsigned decimal number in `min..=max`.
pub fn parse_u64_in(s: &[u8], min: u64, max: u64) -> Result<u64, ParseError> {
    let v = parse_u64(s)?;
    if v < min || v > max {
        return Err(ParseError::Overflow);
    }
    Ok(v)
}

/// Decodes a string of hexadecimal digit pairs (either case) into `out`.
///
/// Returns the number of bytes written. The string must have an even length
/// of at most `2 * out.len()`.
pub fn parse_hex(s: &[u8], out: &mut [u8]) -> Result<usize, ParseError> {
    if s.is_empty() {
        return Err(ParseError::Empty);
    }
    if s.len() % 2 != 0 {
        return Err(ParseError::Invalid);
    }
    let n = s.len() / 2;
    if n > out.len() {
        return Err(ParseError::Overflow);
    }
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
    }
    Ok(n)
}

fn hex_digit(c: u8) -> Result<u8, ParseError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(ParseError::Invalid),
    }
}
