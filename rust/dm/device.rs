// SPDX-License-Identifier: GPL-2.0

//! Underlying devices of a target (`struct dm_dev`), and how long they and
//! the target's other handles live.
//!
//! Every target has an [`Anchor`]: the `dm_target` and a count of the
//! handles ([`Device`], [`super::TargetHandle`], and what holds them) that
//! name it. The devices a constructor opens are put only by the destructor
//! trampoline, after the target value is dropped AND the count has reached
//! zero: a handle may be moved anywhere (a work item, a kcopyd job, an
//! `Arc` shared with a worker) and the `dm_target` and the block devices
//! stay valid for as long as it exists. The destructor waits for the last
//! one, as C targets wait for their workers before returning from `dtr`.

use super::{bindings, sync::WaitCount};
use core::ptr::NonNull;
use kernel::{prelude::*, str::CStr};

/// What the handles of one target share: its `dm_target` and their count.
///
/// # Invariants
///
/// `ti` is the `dm_target` the anchor was made for; dm core frees it only
/// after the destructor trampoline, which frees the anchor after `users`
/// reached zero, has returned.
pub(super) struct Anchor {
    ti: NonNull<bindings::dm_target>,
    users: WaitCount,
}

impl Anchor {
    /// A new anchor for `ti`, with no user, on the heap (its address is
    /// shared by the handles).
    pub(super) fn new(ti: NonNull<bindings::dm_target>) -> Result<NonNull<Anchor>> {
        let a = KBox::new(
            Anchor {
                ti,
                users: WaitCount::new(),
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `KBox::into_raw` never returns NULL.
        Ok(unsafe { NonNull::new_unchecked(KBox::into_raw(a)) })
    }

    /// Waits until no handle names the target any more, puts `devs` and
    /// frees the anchor.
    ///
    /// # Safety
    ///
    /// `anchor` came from [`Anchor::new`] and is freed only here; `devs` were
    /// opened by `dm_get_device()` for its target, and are not put elsewhere.
    ///
    /// # Context
    ///
    /// Process context (sleeps): `ctx` is the proof.
    pub(super) unsafe fn finish(
        anchor: NonNull<Anchor>,
        devs: KVec<NonNull<bindings::dm_dev>>,
        ctx: &super::Sleepable<'_>,
    ) {
        // SAFETY: Live until freed below (caller's guarantee).
        let a = unsafe { anchor.as_ref() };
        let n = a.users.get();
        if n != 0 {
            kernel::pr_warn!(
                "device-mapper: waiting for {} handle(s) of a destroyed target\n",
                n
            );
            a.users.wait_zero(ctx);
        }
        for dev in devs {
            // SAFETY: Opened for `ti` and put once, here (caller's
            // guarantee); no handle can use it any more (no user left).
            unsafe { bindings::dm_put_device(a.ti.as_ptr(), dev.as_ptr()) };
        }
        // SAFETY: From `KBox::into_raw` in `new`, freed once; no user left.
        drop(unsafe { KBox::from_raw(anchor.as_ptr()) });
    }
}

/// One counted reference to a target's [`Anchor`]: while it exists, the
/// target's `dm_target` and the devices it opened stay valid.
///
/// # Invariants
///
/// `anchor` is live and this value is counted in its `users`.
pub(super) struct TargetRef {
    anchor: NonNull<Anchor>,
}

// SAFETY: The anchor's fields are read-only or atomic; its count may be
// changed from any thread.
unsafe impl Send for TargetRef {}
// SAFETY: As above.
unsafe impl Sync for TargetRef {}

impl TargetRef {
    /// A new reference to `anchor`.
    ///
    /// # Safety
    ///
    /// `anchor` must be live and not yet finished: its target's destructor
    /// has not started waiting (true during the constructor).
    pub(super) unsafe fn new(anchor: NonNull<Anchor>) -> Self {
        // SAFETY: Live (caller's guarantee).
        unsafe { anchor.as_ref() }.users.add(1);
        // INVARIANT: counted above.
        Self { anchor }
    }

    /// The target's `dm_target`, valid while `self` exists.
    pub(super) fn ti(&self) -> *mut bindings::dm_target {
        // SAFETY: Live while counted (invariant).
        unsafe { self.anchor.as_ref() }.ti.as_ptr()
    }
}

impl Clone for TargetRef {
    fn clone(&self) -> Self {
        // SAFETY: `self` keeps the anchor live and unfinished (its count is
        // not zero).
        unsafe { Self::new(self.anchor) }
    }
}

impl Drop for TargetRef {
    fn drop(&mut self) {
        // SAFETY: Live while counted (invariant); the anchor may be freed as
        // soon as the count drops, which `dec_raw` allows for.
        unsafe { WaitCount::dec_raw(core::ptr::addr_of!((*self.anchor.as_ptr()).users)) };
    }
}

/// An underlying block device opened for a target with `dm_get_device()`.
///
/// Cloning it is cheap (a count). The device stays open until the
/// destructor of the target that opened it has seen the last clone dropped
/// (see the module documentation), so a `Device` may be kept anywhere,
/// e.g. in an `Arc` shared with a worker.
///
/// # Invariants
///
/// `dev` was returned by `dm_get_device(target.ti(), ...)` and is put only by
/// the destructor of that target, after every `Device` and `TargetRef` of it
/// is gone.
#[derive(Clone)]
pub struct Device {
    target: TargetRef,
    dev: NonNull<bindings::dm_dev>,
}

// SAFETY: `dm_dev` is shared by dm core between tables and CPUs; reading it
// from any thread is allowed, and the count (`TargetRef`) is atomic.
unsafe impl Send for Device {}
// SAFETY: All methods taking `&self` only read fields of `dm_dev` that do not
// change while it is held.
unsafe impl Sync for Device {}

impl Device {
    /// Wraps a device returned by `dm_get_device()`.
    ///
    /// # Safety
    ///
    /// `dev` must come from `dm_get_device(target.ti(), ...)`, and be put only
    /// by [`Anchor::finish`] (see the type invariants).
    pub(super) unsafe fn from_raw(target: TargetRef, dev: NonNull<bindings::dm_dev>) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self { target, dev }
    }

    pub(super) fn as_raw(&self) -> *mut bindings::dm_dev {
        self.dev.as_ptr()
    }

    pub(super) fn bdev(&self) -> *mut bindings::block_device {
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
    ///
    /// # Context
    ///
    /// Process context (sleeps): `_ctx` is the proof.
    pub fn issue_flush(&self, _ctx: &super::Sleepable<'_>) -> Result {
        super::might_sleep();
        // SAFETY: `bdev()` is a live block device while `self` is held.
        to_result(unsafe { bindings::blkdev_issue_flush(self.bdev()) })
    }

    /// The device's discard limits (zero `max_discard_sectors`: no discard).
    pub fn discard_limits(&self) -> DiscardLimits {
        let mut l = bindings::rdm_discard_limits::default();
        // SAFETY: `bdev()` is a live block device while `self` is held; the
        // helper copies the fields (in C, as the block layer reads them)
        // into `l`, which is valid for writes.
        unsafe { bindings::rdm_bdev_discard_limits(self.bdev(), &mut l) };
        DiscardLimits {
            max_discard_sectors: l.max_discard_sectors,
            max_hw_discard_sectors: l.max_hw_discard_sectors,
            granularity: l.granularity,
            alignment: l.alignment,
            max_segments: l.max_segments,
        }
    }

    /// Whether `other` is the same underlying block device.
    pub fn same_as(&self, other: &Device) -> bool {
        self.bdev() == other.bdev()
    }
}

use kernel::error::to_result;

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
