// SPDX-License-Identifier: GPL-2.0

//! The verity table line: its grammar and the checks that need no device.
//!
//! Pure code, also compiled into the host unit tests. Reasons are the C
//! target's `ti->error` strings (or clearer ones where C has none).
//!
//! ```text
//! <version> <data dev> <hash dev> <data block size> <hash block size>
//! <#data blocks> <hash start block> <algorithm> <root digest> <salt|->
//! [<#opt args> <opt args>...]
//! ```

use crate::dm::parse;
use core::ffi::CStr;

/// Number of mandatory arguments.
pub const MANDATORY_ARGS: usize = 10;

/// At most this many optional arguments (`DM_VERITY_OPTS_MAX`): 5 flags, 8
/// for FEC (four options with a value each) if the build has it (`fec`, C's
/// `CONFIG_DM_VERITY_FEC`) and 2 for the signature.
pub const fn max_opt_args(fec: bool) -> u32 {
    5 + if fec { FEC_OPT_ARGS } else { 0 } + 2
}

/// Optional arguments FEC takes in the table echo (`DM_VERITY_OPTS_FEC`).
pub const FEC_OPT_ARGS: u32 = 8;

/// Reed-Solomon codeword length `M` of RS(M, N) (`DM_VERITY_FEC_RSM`).
pub const FEC_RSM: u32 = 255;
/// Smallest `fec_roots` (`M - DM_VERITY_FEC_MAX_RSN`).
pub const FEC_MIN_ROOTS: u32 = FEC_RSM - 253;
/// Largest `fec_roots` (`M - DM_VERITY_FEC_MIN_RSN`, ~10% overhead).
pub const FEC_MAX_ROOTS: u32 = FEC_RSM - 231;

/// What to do about a corrupted block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CorruptionMode {
    /// Fail the read with EIO (the default).
    #[default]
    Eio,
    /// Log and return the data anyway (`ignore_corruption`).
    Logging,
    /// Restart the machine (`restart_on_corruption`).
    Restart,
    /// Panic (`panic_on_corruption`).
    Panic,
}

impl CorruptionMode {
    /// The option that selects this mode, `None` for the default.
    pub fn option(self) -> Option<&'static str> {
        match self {
            Self::Eio => None,
            Self::Logging => Some("ignore_corruption"),
            Self::Restart => Some("restart_on_corruption"),
            Self::Panic => Some("panic_on_corruption"),
        }
    }
}

/// What to do about an I/O error of the data device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorMode {
    /// Pass the error on (the default).
    #[default]
    Eio,
    /// Restart the machine (`restart_on_error`).
    Restart,
    /// Panic (`panic_on_error`).
    Panic,
}

impl ErrorMode {
    /// The option that selects this mode, `None` for the default.
    pub fn option(self) -> Option<&'static str> {
        match self {
            Self::Eio => None,
            Self::Restart => Some("restart_on_error"),
            Self::Panic => Some("panic_on_error"),
        }
    }
}

/// The optional arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options<'a> {
    /// Reaction to corruption.
    pub mode: CorruptionMode,
    /// Reaction to I/O errors.
    pub error_mode: ErrorMode,
    /// `ignore_zero_blocks`.
    pub ignore_zero_blocks: bool,
    /// `check_at_most_once`.
    pub check_at_most_once: bool,
    /// `try_verify_in_tasklet`.
    pub try_verify_in_tasklet: bool,
    /// `root_hash_sig_key_desc <key description>`.
    pub sig_key_desc: Option<&'a [u8]>,
    /// The FEC options.
    pub fec: FecOptions<'a>,
}

/// The forward error correction options. FEC is enabled by
/// `use_fec_from_device` alone: without it the other three are parsed and
/// checked, then ignored (as in C).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FecOptions<'a> {
    /// `use_fec_from_device <dev>`: the device holding the parity.
    pub dev: Option<&'a [u8]>,
    /// `fec_roots <n>`: parity bytes per RS(255, 255 - n) codeword; 0 when
    /// not given.
    pub roots: u32,
    /// `fec_blocks <n>`: data blocks covered (data, hash tree and optional
    /// metadata after it); 0 when not given.
    pub blocks: u64,
    /// `fec_start <n>`: first block of the parity on its device.
    pub start: u64,
}

/// Reason strings of the signature option (`DM_VERITY_VERIFY_ERR()` in C).
pub const SIG_KEY_MISSING: &CStr = c"DM Verity Sig Verification Signature key not specified";
/// See [`SIG_KEY_MISSING`].
pub const SIG_KEY_DUPLICATE: &CStr =
    c"DM Verity Sig Verification root_hash_sig_key_desc already specified";
/// See [`SIG_KEY_MISSING`].
pub const SIG_KEY_INVALID: &CStr = c"DM Verity Sig Verification Invalid key specified";

fn eq_ignore_case(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// Whether `a` is one of the FEC options (`verity_is_fec_opt_arg()`).
fn is_fec_opt(a: &[u8]) -> bool {
    [
        "use_fec_from_device",
        "fec_roots",
        "fec_blocks",
        "fec_start",
    ]
    .iter()
    .any(|f| eq_ignore_case(a, f))
}

/// Parses the value of FEC option `name` (`verity_fec_parse_opt_args()`),
/// with C's reasons. `data_block_bits` bounds `fec_blocks` and `fec_start`:
/// their size in sectors must fit 64 bits.
fn parse_fec_opt<'a>(
    fec: &mut FecOptions<'a>,
    name: &[u8],
    value: Option<&'a [u8]>,
    data_block_bits: u32,
) -> Result<(), &'static CStr> {
    let value = value.ok_or(c"FEC feature arguments require a value")?;
    if eq_ignore_case(name, "use_fec_from_device") {
        if fec.dev.is_some() {
            return Err(c"FEC device already specified");
        }
        fec.dev = Some(value);
    } else if eq_ignore_case(name, "fec_blocks") {
        fec.blocks = parse_blocks(value, data_block_bits, c"Invalid fec_blocks")?;
    } else if eq_ignore_case(name, "fec_start") {
        fec.start = parse_blocks(value, data_block_bits, c"Invalid fec_start")?;
    } else {
        // C reads the value as `%hhu`, so that 258 wraps to 2; ours refuses
        // anything out of range.
        fec.roots = match parse::parse_u32(value) {
            Ok(n) if (FEC_MIN_ROOTS..=FEC_MAX_ROOTS).contains(&n) => n,
            _ => return Err(c"Invalid fec_roots"),
        };
    }
    Ok(())
}

/// Checks the option group's count (`<#opt args>`) against what follows, as
/// C's `dm_read_arg_group()`; `opt` is everything after the mandatory args,
/// `fec` as in [`max_opt_args`].
pub fn check_opt_count(opt: &[&[u8]], fec: bool) -> Result<usize, &'static CStr> {
    let Some((count, rest)) = opt.split_first() else {
        return Ok(0);
    };
    match parse::parse_u32(count) {
        Ok(n) if n <= max_opt_args(fec) && n as usize == rest.len() => Ok(n as usize),
        _ => Err(c"Invalid number of feature args"),
    }
}

/// Parses the optional arguments (`opt` as in [`check_opt_count`]) of a
/// table whose data blocks are `1 << data_block_bits` bytes. Without `fec`
/// (a build without FEC), the FEC options are unrecognized, as in C built
/// without `CONFIG_DM_VERITY_FEC`.
///
/// Unlike C, a duplicated flag or a count smaller than the arguments given is
/// an error rather than silently accepted. A repeated `fec_roots`,
/// `fec_blocks` or `fec_start` replaces the earlier value, as in C.
pub fn parse_options<'a>(
    opt: &[&'a [u8]],
    data_block_bits: u32,
    fec: bool,
) -> Result<Options<'a>, &'static CStr> {
    let n = check_opt_count(opt, fec)?;
    let mut o = Options::default();
    let mut args = opt.iter().skip(1).take(n).copied();
    while let Some(a) = args.next() {
        let mode = if eq_ignore_case(a, "ignore_corruption") {
            Some(CorruptionMode::Logging)
        } else if eq_ignore_case(a, "restart_on_corruption") {
            Some(CorruptionMode::Restart)
        } else if eq_ignore_case(a, "panic_on_corruption") {
            Some(CorruptionMode::Panic)
        } else {
            None
        };
        if let Some(m) = mode {
            if o.mode != CorruptionMode::Eio {
                return Err(c"Conflicting error handling parameters");
            }
            o.mode = m;
            continue;
        }
        let error_mode = if eq_ignore_case(a, "restart_on_error") {
            Some(ErrorMode::Restart)
        } else if eq_ignore_case(a, "panic_on_error") {
            Some(ErrorMode::Panic)
        } else {
            None
        };
        if let Some(m) = error_mode {
            if o.error_mode != ErrorMode::Eio {
                return Err(c"Conflicting error handling parameters");
            }
            o.error_mode = m;
            continue;
        }
        let flag = if eq_ignore_case(a, "ignore_zero_blocks") {
            &mut o.ignore_zero_blocks
        } else if eq_ignore_case(a, "check_at_most_once") {
            &mut o.check_at_most_once
        } else if eq_ignore_case(a, "try_verify_in_tasklet") {
            &mut o.try_verify_in_tasklet
        } else if eq_ignore_case(a, "root_hash_sig_key_desc") {
            if o.sig_key_desc.is_some() {
                return Err(SIG_KEY_DUPLICATE);
            }
            o.sig_key_desc = Some(args.next().ok_or(SIG_KEY_MISSING)?);
            continue;
        } else if fec && is_fec_opt(a) {
            parse_fec_opt(&mut o.fec, a, args.next(), data_block_bits)?;
            continue;
        } else {
            return Err(c"Unrecognized verity feature request");
        };
        if *flag {
            return Err(c"Duplicate verity feature request");
        }
        *flag = true;
    }
    Ok(o)
}

/// `<version>`: 0 or 1.
pub fn parse_version(s: &[u8]) -> Result<u32, &'static CStr> {
    match parse::parse_u32(s) {
        Ok(v) if v <= 1 => Ok(v),
        _ => Err(c"Invalid version"),
    }
}

/// A block size: a power of two in `min..=max`; returns its log2.
pub fn parse_block_size(
    s: &[u8],
    min: u32,
    max: u32,
    reason: &'static CStr,
) -> Result<u32, &'static CStr> {
    match parse::parse_u32(s) {
        Ok(n) if n.is_power_of_two() && n >= min && n <= max => Ok(n.trailing_zeros()),
        _ => Err(reason),
    }
}

/// A count of blocks of `1 << block_bits` bytes whose size in sectors must
/// fit 64 bits.
pub fn parse_blocks(
    s: &[u8],
    block_bits: u32,
    reason: &'static CStr,
) -> Result<u64, &'static CStr> {
    let n = parse::parse_u64(s).map_err(|_| reason)?;
    let shift = block_bits - 9;
    if (n << shift) >> shift != n {
        return Err(reason);
    }
    Ok(n)
}

/// `<root digest>`: exactly `digest_size` bytes in hex.
pub fn parse_digest(s: &[u8], digest_size: usize, out: &mut [u8]) -> Result<(), &'static CStr> {
    if s.len() != digest_size * 2 || digest_size > out.len() {
        return Err(c"Invalid root digest");
    }
    parse::parse_hex(s, &mut out[..digest_size]).map_err(|_| c"Invalid root digest")?;
    Ok(())
}

/// `<salt>`: `-` for none, else hex; returns the salt's length in bytes
/// (the bytes go to `out`, which must hold `s.len() / 2` bytes).
pub fn parse_salt(s: &[u8], out: &mut [u8]) -> Result<usize, &'static CStr> {
    if s == b"-" {
        return Ok(0);
    }
    parse::parse_hex(s, out).map_err(|_| c"Invalid salt")
}
