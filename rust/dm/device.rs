// SPDX-License-Identifier: GPL-2.0

//! Underlying devices of a target (`struct dm_dev`).

use super::bindings;
use core::ptr::NonNull;
use kernel::{error::to_result, prelude::*, str::CStr};

/// An underlying block device opened for a target with `dm_get_device()`.
///
/// Dropping it calls `dm_put_device()`.
///
/// # Invariants
///
/// - `dev` was returned by `dm_get_device(ti, ...)` and has not been put.
/// - `ti` is the target that opened it. A `Device` is created only in the
///   constructor ([`super::Ctr::get_device`]) and owned by the target instance
///   the constructor returns (or dropped when the constructor fails). dm core
///   destroys that instance in the destructor, before it frees the
///   `dm_target`, so `ti` outlives every `Device` it opened.
pub struct Device {
    ti: NonNull<bindings::dm_target>,
    dev: NonNull<bindings::dm_dev>,
}

// SAFETY: `dm_dev` is shared by dm core between tables and CPUs; reading it and
// calling `dm_put_device()` from any thread is allowed.
unsafe impl Send for Device {}
// SAFETY: All methods taking `&self` only read immutable fields of `dm_dev`.
unsafe impl Sync for Device {}

impl Device {
    /// Wraps a device returned by `dm_get_device()`.
    ///
    /// # Safety
    ///
    /// `dev` must come from `dm_get_device(ti, ...)`, not yet put, and `ti` must
    /// outlive the returned value (see the type invariants).
    pub(crate) unsafe fn from_raw(
        ti: NonNull<bindings::dm_target>,
        dev: NonNull<bindings::dm_dev>,
    ) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self { ti, dev }
    }

    pub(crate) fn as_raw(&self) -> *mut bindings::dm_dev {
        self.dev.as_ptr()
    }

    pub(crate) fn bdev(&self) -> *mut bindings::block_device {
        // SAFETY: `dev` is a live `dm_dev` (type invariant); `bdev` is set by
        // `dm_get_device()` and never changes while the device is held.
        unsafe { (*self.dev.as_ptr()).bdev }
    }

    /// The device's name as dm prints it in tables: `major:minor`.
    pub fn name(&self) -> &CStr {
        // SAFETY: `name` is a NUL-terminated array filled by dm core when the
        // device was opened, immutable while it is held (type invariant).
        unsafe { CStr::from_char_ptr((*self.dev.as_ptr()).name.as_ptr()) }
    }

    /// Size of the whole underlying device in 512-byte sectors.
    pub fn size_sectors(&self) -> u64 {
        // SAFETY: `bdev()` is a live block device while `self` is held.
        unsafe { bindings::rdm_bdev_nr_sectors(self.bdev()) }
    }

    /// Logical block size of the underlying device in bytes.
    pub fn logical_block_size(&self) -> u32 {
        // SAFETY: `bdev()` is a live block device while `self` is held.
        unsafe { bindings::rdm_bdev_logical_block_size(self.bdev()) }
    }

    /// Flushes the device's volatile write cache and waits
    /// (`blkdev_issue_flush()`).
    pub fn issue_flush(&self) -> Result {
        // SAFETY: `bdev()` is a live block device while `self` is held.
        to_result(unsafe { bindings::blkdev_issue_flush(self.bdev()) })
    }

    /// The device's discard limits (zero `max_discard_sectors`: no discard).
    pub fn discard_limits(&self) -> DiscardLimits {
        // SAFETY: `bdev()` is a live block device while `self` is held; its
        // queue and limits live as long as the device is open.
        unsafe {
            let l = &*bindings::rdm_bdev_limits(self.bdev());
            DiscardLimits {
                max_discard_sectors: bindings::rdm_bdev_max_discard_sectors(self.bdev()),
                max_hw_discard_sectors: l.max_hw_discard_sectors,
                granularity: l.discard_granularity,
                alignment: l.discard_alignment,
                max_segments: l.max_discard_segments,
            }
        }
    }

    /// Whether `other` is the same underlying block device.
    pub fn same_as(&self, other: &Device) -> bool {
        self.bdev() == other.bdev()
    }
}

/// The discard limits of an underlying device (from its `queue_limits`).
#[derive(Debug, Clone, Copy)]
pub struct DiscardLimits {
    /// Largest discard the device takes now, in sectors (0: none).
    pub max_discard_sectors: u32,
    /// Largest discard of the hardware, in sectors.
    pub max_hw_discard_sectors: u32,
    /// Discard granularity in bytes.
    pub granularity: u32,
    /// Discard alignment in bytes.
    pub alignment: u32,
    /// Maximum number of discard segments.
    pub max_segments: u16,
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: By the type invariants `dev` was obtained from
        // `dm_get_device(ti)`, is put only here, and `ti` is still alive.
        unsafe { bindings::dm_put_device(self.ti.as_ptr(), self.dev.as_ptr()) };
    }
}
