// SPDX-License-Identifier: GPL-2.0

//! Table-line and message arguments.

use super::{parse, Target};
use kernel::{error::code::EINVAL, prelude::*, str::CStr};

/// Where a rejected argument is reported.
enum Report<'a> {
    /// A constructor: the reason goes to `ti->error`, which dm core logs and
    /// returns to `dmsetup`.
    Ctr(&'a Target),
    /// A message: the reason is logged, the message fails with `-EINVAL`.
    Message(&'static CStr),
}

/// The arguments of a table line (after the target name) or of a message,
/// consumed front to back.
///
/// Every accessor that can fail takes the reason to report, a static string
/// like C's `ti->error = "Invalid device sector"`, and returns `EINVAL`.
pub struct Args<'a> {
    argv: &'a [*mut kernel::ffi::c_char],
    next: usize,
    report: Report<'a>,
}

impl<'a> Args<'a> {
    /// # Safety
    ///
    /// Every pointer in `argv` must be a NUL-terminated string valid for `'a`.
    pub(super) unsafe fn for_ctr(argv: &'a [*mut kernel::ffi::c_char], target: &'a Target) -> Self {
        Self {
            argv,
            next: 0,
            report: Report::Ctr(target),
        }
    }

    /// # Safety
    ///
    /// Every pointer in `argv` must be a NUL-terminated string valid for `'a`.
    pub(super) unsafe fn for_message(
        argv: &'a [*mut kernel::ffi::c_char],
        target_name: &'static CStr,
    ) -> Self {
        Self {
            argv,
            next: 0,
            report: Report::Message(target_name),
        }
    }

    /// Total number of arguments.
    pub fn count(&self) -> usize {
        self.argv.len()
    }

    /// Number of arguments not consumed yet.
    pub fn remaining(&self) -> usize {
        self.argv.len() - self.next
    }

    /// Argument `i` (0-based), whether consumed or not.
    pub fn get(&self, i: usize) -> Option<&'a CStr> {
        let p = *self.argv.get(i)?;
        // SAFETY: Every pointer in `argv` is a valid string for `'a` (type
        // construction requirement).
        Some(unsafe { CStr::from_char_ptr(p) })
    }

    /// Reports `reason` and returns `err`, for checks the target makes itself.
    pub fn fail(&self, reason: &'static CStr, err: Error) -> Error {
        match self.report {
            Report::Ctr(target) => target.set_error(reason),
            Report::Message(name) => {
                kernel::pr_warn!("device-mapper: {}: {}\n", name, reason);
            }
        }
        err
    }

    /// Fails with `reason` unless exactly `n` arguments were given.
    pub fn expect_count(&self, n: usize, reason: &'static CStr) -> Result {
        if self.count() != n {
            return Err(self.fail(reason, EINVAL));
        }
        Ok(())
    }

    /// The next argument, if any.
    pub fn next_opt(&mut self) -> Option<&'a CStr> {
        let p = *self.argv.get(self.next)?;
        self.next += 1;
        // SAFETY: Every pointer in `argv` is a valid string for `'a` (type
        // construction requirement).
        Some(unsafe { CStr::from_char_ptr(p) })
    }

    /// The next argument; fails with `reason` if there is none.
    pub fn next_str(&mut self, reason: &'static CStr) -> Result<&'a CStr> {
        self.next_opt().ok_or_else(|| self.fail(reason, EINVAL))
    }

    /// The next argument as an unsigned decimal number.
    pub fn next_u64(&mut self, reason: &'static CStr) -> Result<u64> {
        let s = self.next_str(reason)?;
        parse::parse_u64(s.as_bytes()).map_err(|_| self.fail(reason, EINVAL))
    }

    /// The next argument as an unsigned decimal number that fits 32 bits.
    pub fn next_u32(&mut self, reason: &'static CStr) -> Result<u32> {
        let s = self.next_str(reason)?;
        parse::parse_u32(s.as_bytes()).map_err(|_| self.fail(reason, EINVAL))
    }

    /// The next argument as an unsigned decimal number in `min..=max`.
    pub fn next_u64_in(&mut self, min: u64, max: u64, reason: &'static CStr) -> Result<u64> {
        let s = self.next_str(reason)?;
        parse::parse_u64_in(s.as_bytes(), min, max).map_err(|_| self.fail(reason, EINVAL))
    }

    /// Fails with `reason` if any argument is left.
    pub fn expect_end(&self, reason: &'static CStr) -> Result {
        if self.remaining() != 0 {
            return Err(self.fail(reason, EINVAL));
        }
        Ok(())
    }
}
