// SPDX-License-Identifier: GPL-2.0

//! Synchronisation that bio completion needs: a spinlock that disables
//! interrupts (6.12's `kernel::sync::SpinLock` does not, so it must not be
//! taken from `end_io`, which may run in hard or soft interrupt context), and
//! a counter one can wait on until it drops to zero.
//!
//! C header: [`include/linux/spinlock.h`](srctree/include/linux/spinlock.h),
//! [`include/linux/wait_bit.h`](srctree/include/linux/wait_bit.h)

use super::{bindings, Sleepable};
use core::sync::atomic::{AtomicI32, Ordering};
use kernel::{ffi::c_ulong, prelude::*, sync::lock::Backend};

/// A `spinlock_t` taken with `spin_lock_irqsave()`: usable from process,
/// softirq and hardirq context alike (C's `spin_lock_irqsave` pattern).
///
/// It is taken only for the length of a closure ([`IrqSpinLock::with`]), so
/// nested locks are always released in the reverse order they were taken:
/// with guards, dropping an outer guard first would restore the interrupt
/// flags (enable interrupts) while the inner lock is still held, and an
/// interrupt handler taking that lock on this CPU would deadlock.
///
/// Create one with [`new_irq_spinlock!`](crate::new_irq_spinlock).
///
/// # Context
///
/// Any context; the closure must not sleep.
#[pin_data]
pub struct IrqSpinLock<T> {
    #[pin]
    inner: kernel::sync::lock::Lock<T, IrqSaveBackend>,
}

impl<T: Send> IrqSpinLock<T> {
    /// The initialiser of a lock protecting `t` (use
    /// [`new_irq_spinlock!`](crate::new_irq_spinlock)).
    pub fn new(
        t: T,
        name: &'static CStr,
        key: &'static kernel::sync::LockClassKey,
    ) -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- kernel::sync::lock::Lock::new(t, name, key),
        })
    }

    /// Runs `f` on the protected data with the lock held and local
    /// interrupts disabled.
    ///
    /// `f` must be `Send`, and so can the data (`T: Send`): neither can hold
    /// a [`Sleepable`] token, which is neither `Send` nor `Sync`, so nothing
    /// that takes one (what may sleep) can be called under the lock.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R + Send) -> R {
        let mut guard = self.inner.lock();
        f(&mut guard)
    }
}

/// The lock backend of [`IrqSpinLock`].
pub struct IrqSaveBackend;

// SAFETY: The kernel's `spinlock_t` ensures mutual exclusion; `lock` disables
// local interrupts and returns the saved flags, which `unlock` restores, so
// the lock is never taken again by an interrupt on the CPU that holds it.
unsafe impl Backend for IrqSaveBackend {
    type State = bindings::spinlock_t;
    type GuardState = c_ulong;

    unsafe fn init(
        ptr: *mut Self::State,
        name: *const kernel::ffi::c_char,
        key: *mut bindings::lock_class_key,
    ) {
        // SAFETY: The caller guarantees `ptr` is valid for writes and `name`,
        // `key` valid for reads indefinitely.
        unsafe { bindings::__spin_lock_init(ptr, name, key) }
    }

    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        // SAFETY: The caller guarantees `ptr` is an initialised lock.
        unsafe { bindings::rdm_spin_lock_irqsave(ptr) }
    }

    unsafe fn unlock(ptr: *mut Self::State, flags: &Self::GuardState) {
        // SAFETY: The caller owns the lock; `flags` are the ones its `lock`
        // saved.
        unsafe { bindings::rdm_spin_unlock_irqrestore(ptr, *flags) }
    }
}

/// Initialiser of an [`IrqSpinLock`] protecting `$inner`, with a lock class
/// of its own (as `kernel::new_spinlock!`).
#[macro_export]
macro_rules! new_irq_spinlock {
    ($inner:expr $(, $name:literal)? $(,)?) => {
        $crate::dm::sync::IrqSpinLock::new(
            $inner,
            ::kernel::optional_name!($($name)?),
            ::kernel::static_lock_class!(),
        )
    };
}

/// A count of operations in flight that one can wait to drain (C's
/// `atomic_t` + `wait_event(..., !atomic_read(...))` + `wake_up`). Changing
/// it never sleeps, so it works from any context.
pub struct WaitCount(AtomicI32);

impl WaitCount {
    /// A count of zero.
    pub const fn new() -> Self {
        Self(AtomicI32::new(0))
    }

    /// The current count.
    pub fn get(&self) -> i32 {
        self.0.load(Ordering::SeqCst)
    }

    /// Adds `n`.
    pub fn add(&self, n: i32) {
        self.0.fetch_add(n, Ordering::SeqCst);
    }

    /// Subtracts one and wakes the waiters when that reaches zero.
    pub fn dec(&self) {
        // SAFETY: `self` is live for the call.
        unsafe { Self::sub_raw(self, 1) };
    }

    /// Subtracts `n` and wakes the waiters when that reaches zero.
    pub fn sub(&self, n: i32) {
        // SAFETY: `self` is live for the call.
        unsafe { Self::sub_raw(self, n) };
    }

    /// [`WaitCount::dec`] on a count that a waiter may free as soon as it
    /// reaches zero: nothing is read through `this` after the decrement.
    ///
    /// # Safety
    ///
    /// `this` must be live until the decrement.
    pub(super) unsafe fn dec_raw(this: *const Self) {
        // SAFETY: Live until the decrement (caller's guarantee).
        unsafe { Self::sub_raw(this, 1) };
    }

    /// Subtracts `n` from the count at `this` and wakes the waiters when
    /// that reaches zero; nothing is read through `this` after it.
    ///
    /// # Safety
    ///
    /// `this` must be live until the subtraction.
    unsafe fn sub_raw(this: *const Self, n: i32) {
        // SAFETY: Live until the subtraction (caller's guarantee).
        let count = unsafe { &(*this).0 };
        let key = count.as_ptr().cast::<core::ffi::c_void>();
        if n != 0 && count.fetch_sub(n, Ordering::SeqCst) == n {
            // SAFETY: The address only identifies the wait queue (a hash
            // key): it is not dereferenced, so it may be freed by now.
            unsafe { bindings::rdm_wake_up_var(key) };
        }
    }

    /// Sleeps until the count is zero.
    ///
    /// # Context
    ///
    /// Process context (sleeps): `_ctx` is the proof.
    pub fn wait_zero(&self, _ctx: &Sleepable<'_>) {
        super::might_sleep();
        // SAFETY: The pointer is valid while `self` is borrowed; the callee
        // only reads it (atomically, with `READ_ONCE`) and uses it as a key.
        unsafe { bindings::rdm_wait_var_zero(self.0.as_ptr()) };
    }
}

impl Default for WaitCount {
    fn default() -> Self {
        Self::new()
    }
}
