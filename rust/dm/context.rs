// SPDX-License-Identifier: GPL-2.0

//! Checks of the execution context.
//!
//! C header: [`include/linux/kernel.h`](srctree/include/linux/kernel.h)

/// Annotates a function that may sleep, as C's `might_sleep()`.
///
/// On a kernel with `CONFIG_DEBUG_ATOMIC_SLEEP` a call from atomic context
/// (spinlock held, interrupts off, RCU read side, ...) is reported ("BUG:
/// sleeping function called from invalid context") even when this call
/// would not have slept. Elsewhere it does nothing.
///
/// # Context
///
/// Any: this is the check.
#[inline]
pub(in crate::dm) fn might_sleep() {
    #[cfg(CONFIG_DEBUG_ATOMIC_SLEEP)]
    // SAFETY: `might_sleep()` has no precondition: it only checks the
    // context it is called in.
    unsafe {
        super::bindings::rdm_might_sleep()
    };
}

/// Proof that the code runs in the BH workqueue (`system_bh_wq`: softirq
/// context, which must never sleep).
///
/// Only the abstraction makes one, for the length of a callback it runs
/// there ([`super::completion::CompletionHandler::bio_completed_bh`]); it
/// cannot be cloned, sent to or shared with another thread, or kept past the
/// callback (the lifetime).
///
/// What may run in BH takes a `&Bh`: the hash block cache's lookups that
/// never sleep ([`super::bufio::BufioClient::get_bh`], which hand out buffers
/// whose release never sleeps either). What may sleep does not accept one,
/// and needs instead a `&Target`, which the abstraction gives only to hooks
/// running in process context and never to a BH callback: the hash block
/// cache's reads ([`super::bufio::BufioClient::read`]), synchronous I/O
/// ([`super::io::IoClient::read_sync`]), table events and uevents.
///
/// # Invariants
///
/// Exists only on the stack of a callback that runs in the BH workqueue.
pub struct Bh<'a> {
    _p: core::marker::PhantomData<(&'a (), *mut ())>,
}

impl Bh<'_> {
    /// # Safety
    ///
    /// The caller must run in the BH workqueue, and the token must not
    /// outlive that call.
    pub(in crate::dm) unsafe fn new() -> Self {
        // INVARIANT: the caller's promise.
        Self {
            _p: core::marker::PhantomData,
        }
    }
}

/// Proof that the code runs in process context, with no spinlock held,
/// interrupts and preemption enabled and outside any RCU read side (an SRCU
/// one, which may sleep, is fine): it may sleep (C's `might_sleep()`
/// holds).
///
/// Only the abstraction makes one, for the length of a call it makes in such
/// a context: the target hooks that may sleep (`Ctr::sleepable` in the
/// constructor, the `ctx` argument of [`super::Operations::dtr`],
/// `presuspend`, `presuspend_undo`, `postsuspend`, `preresume`, `resume`,
/// `status` and `message`), `map` of a target that does not declare
/// [`super::features::NOWAIT`] ([`super::MapBio::sleepable`]), the
/// completion work ([`super::completion::CompletionHandler::bio_completed`]),
/// kcopyd callbacks ([`super::kcopyd::CopyJob::done`]), periodic calls
/// ([`super::periodic::Tick::tick`]) and work items the abstraction runs
/// ([`super::workqueue::Running`]). It is never given to `end_io`, to a BH
/// callback (which gets a [`Bh`]) or into an
/// [`super::sync::IrqSpinLock::with`] closure (which must be `Send`, and a
/// `&Sleepable` is not), and it cannot be cloned, sent to or shared with
/// another thread, or kept past the call (the lifetime).
///
/// What sleeps takes a `&Sleepable`: the waiting allocations of the pools
/// ([`super::mempool::Mempool::alloc`], [`super::mempool::BufferPool::alloc`],
/// `RsPool::alloc`), [`super::sync::WaitCount::wait_zero`], kcopyd's
/// [`super::kcopyd::KcopydClient::copy`] and `wait_idle`,
/// [`super::periodic::PeriodicWork::start`] (which runs a tick) and `stop`,
/// [`super::Workqueue::flush`], [`super::Device::issue_flush`] and
/// [`super::TargetHandle::table_event`].
///
/// # Invariants
///
/// Exists only on the stack of a call that runs in process context, with no
/// spinlock held and outside any RCU (not SRCU) read side, for at most the
/// length of that call (`'a`); the code holding it may sleep.
pub struct Sleepable<'a> {
    _p: core::marker::PhantomData<(&'a (), *mut ())>,
}

impl Sleepable<'_> {
    /// # Safety
    ///
    /// The caller must run in process context with no spinlock held, not in
    /// an RCU (SRCU is fine) read-side critical section, where sleeping is
    /// allowed; the token must not outlive the call it is made for.
    pub(in crate::dm) unsafe fn new() -> Self {
        // INVARIANT: the caller's promise.
        Self {
            _p: core::marker::PhantomData,
        }
    }
}
