// SPDX-License-Identifier: GPL-2.0

//! Conversions of C error conventions.

use kernel::prelude::*;

/// Turns a pointer that may be an `ERR_PTR()` into a `Result`.
pub(super) fn from_err_ptr<T>(ptr: *mut T) -> Result<*mut T> {
    const MAX_ERRNO: usize = 4095;
    let v = ptr as usize;
    if v >= MAX_ERRNO.wrapping_neg() {
        // The value is `-errno` in `[-MAX_ERRNO, -1]`, so it fits an `i32`.
        return Err(Error::from_errno(v as isize as i32));
    }
    Ok(ptr)
}

/// A reason string of the pure (host-tested) code as the kernel's `CStr`.
pub fn reason(r: &'static core::ffi::CStr) -> &'static CStr {
    // SAFETY: `r` is a NUL-terminated string with static lifetime.
    unsafe { CStr::from_char_ptr(r.as_ptr().cast()) }
}
