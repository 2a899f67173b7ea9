// SPDX-License-Identifier: GPL-2.0

//! Bounded output of status and message results (C's `DMEMIT`).
//!
//! Pure code with no kernel dependency; compiled into every module and into the
//! host unit tests.

use core::fmt;

/// Writes formatted text into the result buffer dm core hands to a target's
/// `status` and `message` hooks.
///
/// Behaves like C's `DMEMIT` (`scnprintf` into `result` of `maxlen` bytes):
/// output past the end is dropped, and the buffer always holds a
/// NUL-terminated string. When the output did not fit, the string fills the
/// buffer exactly (`strlen + 1 == maxlen`), which is how dm-ioctl detects a
/// full buffer and retries with a larger one.
///
/// # Invariants
///
/// `pos < buf.len()` whenever `buf` is not empty, and `buf[pos] == 0`.
pub struct StatusWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> StatusWriter<'a> {
    /// Creates a writer over `buf` and makes it hold the empty string.
    pub fn new(buf: &'a mut [u8]) -> Self {
        if let Some(first) = buf.first_mut() {
            *first = 0;
        }
        Self { buf, pos: 0 }
    }

    /// Number of bytes written so far, without the terminating NUL.
    pub fn len(&self) -> usize {
        self.pos
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// The text written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.pos]
    }

    /// Appends raw bytes, truncating at the end of the buffer.
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        let Some(room) = self.buf.len().checked_sub(self.pos + 1) else {
            return;
        };
        let n = bytes.len().min(room);
        self.buf[self.pos..self.pos + n].copy_from_slice(&bytes[..n]);
        self.pos += n;
        self.buf[self.pos] = 0;
    }
}

impl fmt::Write for StatusWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Truncation is not an error: like DMEMIT, keep what fits.
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}
