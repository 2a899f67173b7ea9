// SPDX-License-Identifier: GPL-2.0

//! Copies between block devices with dm-kcopyd (part of dm-mod): the
//! kernel's own engine for region copies, as dm-clone, dm-cache, dm-thin and
//! dm-snapshot use it.
//!
//! C header: [`include/linux/dm-kcopyd.h`](srctree/include/linux/dm-kcopyd.h)

use super::{bindings, error::from_err_ptr, Device};
use core::ptr::NonNull;
use kernel::{
    error::code::ENOMEM,
    ffi::{c_int, c_ulong, c_void},
    prelude::*,
};

/// What to do when a copy finished. The job value travels with the copy and
/// comes back, owned, to [`CopyJob::done`].
pub trait CopyJob: Send + Sized + 'static {
    /// Called once per copy from kcopyd's worker (process context): whether
    /// reading the source or writing the destination failed.
    fn done(job: KBox<Self>, read_failed: bool, write_failed: bool);
}

/// A range of sectors of a device.
pub struct Region<'a> {
    /// The device.
    pub dev: &'a Device,
    /// First sector.
    pub sector: u64,
    /// Number of sectors.
    pub count: u64,
}

/// A dm-kcopyd client (`dm_kcopyd_client_create()`); dropping it waits for
/// the copies in flight and destroys it.
///
/// # Invariants
///
/// `kc` is a live client owned by this value.
pub struct KcopydClient {
    kc: NonNull<bindings::dm_kcopyd_client>,
}

// SAFETY: kcopyd clients are used from any thread (their jobs run on kcopyd's
// own workqueue).
unsafe impl Send for KcopydClient {}
// SAFETY: `dm_kcopyd_copy()` is thread-safe.
unsafe impl Sync for KcopydClient {}

impl KcopydClient {
    /// A client without throttling.
    pub fn new() -> Result<Self> {
        // SAFETY: A NULL throttle means "not throttled".
        let kc = from_err_ptr(unsafe { bindings::dm_kcopyd_client_create(core::ptr::null_mut()) })?;
        // INVARIANT: just created, owned here.
        Ok(Self {
            kc: NonNull::new(kc).ok_or(ENOMEM)?,
        })
    }

    /// Copies `from` to `to` (`to.count` is ignored: the same number of
    /// sectors is written) and calls `J::done(job, ...)` when done. The
    /// devices must stay open until then (the target keeps them while the
    /// client lives, and dropping the client waits for its copies).
    pub fn copy<J: CopyJob>(&self, from: &Region<'_>, to: &Region<'_>, job: KBox<J>) {
        let mut src = bindings::dm_io_region {
            bdev: from.dev.bdev(),
            sector: from.sector,
            count: from.count,
        };
        let mut dst = bindings::dm_io_region {
            bdev: to.dev.bdev(),
            sector: to.sector,
            count: from.count,
        };
        let ctx = KBox::into_raw(job).cast::<c_void>();
        // SAFETY: `kc` is live (invariant); the regions are read during the
        // call only; `ctx` is an owned job that `notify::<J>` takes back,
        // exactly once.
        unsafe {
            bindings::dm_kcopyd_copy(
                self.kc.as_ptr(),
                &mut src,
                1,
                &mut dst,
                0,
                Some(notify::<J>),
                ctx,
            )
        };
    }
}

/// # Safety
///
/// Called by dm-kcopyd once per copy with the `ctx` given to `copy::<J>`.
unsafe extern "C" fn notify<J: CopyJob>(read_err: c_int, write_err: c_ulong, ctx: *mut c_void) {
    // SAFETY: `ctx` came from `KBox::into_raw` in `copy::<J>` and is given
    // back once.
    let job = unsafe { KBox::from_raw(ctx.cast::<J>()) };
    J::done(job, read_err != 0, write_err != 0);
}

impl Drop for KcopydClient {
    fn drop(&mut self) {
        // SAFETY: `kc` is live and owned (invariant); the callee waits for
        // the jobs in flight.
        unsafe { bindings::dm_kcopyd_client_destroy(self.kc.as_ptr()) };
    }
}
