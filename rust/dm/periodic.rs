// SPDX-License-Identifier: GPL-2.0

//! Periodic work: a delayed work item that calls back every `period`
//! jiffies until cancelled (C's self-rearming `delayed_work`, like
//! dm-clone's and dm-thin's "waker"). 6.12's `kernel::workqueue` has no
//! delayed work, so the timer side is a small C helper.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h)

use super::{bindings, Sleepable};
use core::ptr::NonNull;
use kernel::{
    error::code::ENOMEM,
    ffi::c_void,
    prelude::*,
    sync::{Arc, ArcBorrow},
};

/// Clock ticks per second (`HZ`).
pub const HZ: u64 = bindings::HZ as u64;

/// The current time in jiffies.
pub fn jiffies() -> u64 {
    // SAFETY: Reads a global counter.
    unsafe { bindings::rdm_jiffies() as u64 }
}

/// What runs periodically.
pub trait Tick: Send + Sync + 'static {
    /// Called from a system workqueue (process context, may sleep: `ctx` is
    /// the proof) every period, and from [`PeriodicWork::start`].
    fn tick(this: ArcBorrow<'_, Self>, ctx: &Sleepable<'_>);
}

/// A periodic call of `T::tick` on a shared `T`. Nothing runs until
/// [`PeriodicWork::start`]; dropping it cancels and waits for a running call.
///
/// # Invariants
///
/// `p` was allocated by `rdm_periodic_alloc` with `ctx` = `owner`, a pointer
/// from [`Arc::into_raw`] whose reference this value owns; both are freed
/// only by drop, the work cancelled first.
pub struct PeriodicWork<T: Tick> {
    p: NonNull<bindings::rdm_periodic>,
    owner: *const T,
}

// SAFETY: The C work item may be scheduled and cancelled from any thread;
// `T` is `Send + Sync`.
unsafe impl<T: Tick> Send for PeriodicWork<T> {}
// SAFETY: As above: every method is thread-safe.
unsafe impl<T: Tick> Sync for PeriodicWork<T> {}

impl<T: Tick> PeriodicWork<T> {
    /// Prepares calls of `T::tick(owner)` every `period` jiffies.
    ///
    /// # Context
    ///
    /// Process context (allocates with `GFP_KERNEL`).
    pub fn new(owner: Arc<T>, period: u64) -> Result<Self> {
        let owner = Arc::into_raw(owner);
        // SAFETY: `run::<T>` matches the callback type; `ctx` stays valid
        // while the work exists, since the reference is kept with it.
        let p = unsafe {
            bindings::rdm_periodic_alloc(
                Some(Self::run),
                owner.cast_mut().cast::<c_void>(),
                period as _,
            )
        };
        let Some(p) = NonNull::new(p) else {
            // SAFETY: From `Arc::into_raw` above, given back once.
            drop(unsafe { Arc::from_raw(owner) });
            return Err(ENOMEM);
        };
        // INVARIANT: just allocated with `ctx` = `owner`, from `into_raw`.
        Ok(Self { p, owner })
    }

    fn owner(&self) -> ArcBorrow<'_, T> {
        // SAFETY: `owner` came from `Arc::into_raw` and its reference is held
        // by `self` (invariant), so it outlives the borrow.
        unsafe { ArcBorrow::from_raw(self.owner) }
    }

    /// Calls `tick` now, then every period (C's `do_waker()` from `resume`).
    ///
    /// # Context
    ///
    /// Process context (the first tick runs here): `ctx` is the proof.
    pub fn start(&self, ctx: &Sleepable<'_>) {
        T::tick(self.owner(), ctx);
        // SAFETY: `p` is live (invariant).
        unsafe { bindings::rdm_periodic_schedule(self.p.as_ptr()) };
    }

    /// Stops the calls and waits for one that is running.
    ///
    /// # Context
    ///
    /// Process context (sleeps: `_ctx` is the proof); not from `tick` itself.
    pub fn stop(&self, _ctx: &Sleepable<'_>) {
        super::might_sleep();
        // SAFETY: `p` is live (invariant).
        unsafe { bindings::rdm_periodic_cancel_sync(self.p.as_ptr()) };
    }

    /// # Safety
    ///
    /// Called by the C work item with the `ctx` given at allocation, from a
    /// system workqueue (`rdm_periodic_*` in `helpers.c`: process context,
    /// no lock held).
    unsafe extern "C" fn run(ctx: *mut c_void) {
        // SAFETY: `ctx` came from `Arc::into_raw`, and its reference is held
        // by the `PeriodicWork`, which cancels the work before dropping it.
        let this = unsafe { ArcBorrow::from_raw(ctx.cast::<T>().cast_const()) };
        // SAFETY: A work item of a system workqueue (not the BH one), with
        // no lock held; the token lives for this call only.
        let sleepable = unsafe { Sleepable::new() };
        T::tick(this, &sleepable);
    }
}

impl<T: Tick> Drop for PeriodicWork<T> {
    fn drop(&mut self) {
        // SAFETY: `p` is live and owned (invariant); this cancels and waits
        // before freeing, so `owner` outlives every call.
        unsafe { bindings::rdm_periodic_free(self.p.as_ptr()) };
        // SAFETY: From `Arc::into_raw` (invariant), given back once, after the
        // last call.
        drop(unsafe { Arc::from_raw(self.owner) });
    }
}
