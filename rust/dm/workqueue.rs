// SPDX-License-Identifier: GPL-2.0

//! A target's own workqueue.

use super::{bindings, error::from_err_ptr};
use core::ptr::NonNull;
use kernel::{error::code::ENOMEM, prelude::*};

/// `WQ_MEM_RECLAIM`: guaranteed forward progress under memory pressure, as
/// needed on the I/O path.
pub const WQ_MEM_RECLAIM: u32 = bindings::WQ_MEM_RECLAIM;
/// `WQ_HIGHPRI`: run work on the high-priority worker pool.
pub const WQ_HIGHPRI: u32 = bindings::WQ_HIGHPRI;

/// A workqueue allocated with `alloc_workqueue()` or
/// `alloc_ordered_workqueue()`; destroyed, after running
/// all pending work, on drop.
///
/// # Invariants
///
/// `wq` is a live workqueue owned by this value.
pub struct Workqueue {
    wq: NonNull<bindings::workqueue_struct>,
}

// SAFETY: Workqueues may be used and destroyed from any thread.
unsafe impl Send for Workqueue {}
// SAFETY: Queueing and flushing are thread-safe.
unsafe impl Sync for Workqueue {}

impl Workqueue {
    /// Allocates a workqueue named `name` (copied) with `WQ_*` `flags`.
    pub fn new(name: &CStr, flags: u32, max_active: i32) -> Result<Self> {
        // SAFETY: `name` is a valid string; the callee copies it.
        Self::adopt(unsafe { bindings::rdm_alloc_workqueue(name.as_char_ptr(), flags, max_active) })
    }

    /// Allocates an ordered workqueue (`alloc_ordered_workqueue()`: unbound,
    /// one work item at a time, in queueing order) named `name` (copied)
    /// with `WQ_*` `flags`. Its worker runs on whichever CPU is free rather
    /// than on the one that queued the work.
    pub fn new_ordered(name: &CStr, flags: u32) -> Result<Self> {
        // SAFETY: `name` is a valid string; the callee copies it.
        Self::adopt(unsafe { bindings::rdm_alloc_ordered_workqueue(name.as_char_ptr(), flags) })
    }

    /// Takes ownership of what an allocator returned: a new workqueue, an
    /// error pointer or NULL.
    fn adopt(wq: *mut bindings::workqueue_struct) -> Result<Self> {
        let wq = NonNull::new(from_err_ptr(wq)?).ok_or(ENOMEM)?;
        // INVARIANT: the allocators return a new workqueue that nothing else
        // owns.
        Ok(Self { wq })
    }

    pub(super) fn as_raw(&self) -> *mut bindings::workqueue_struct {
        self.wq.as_ptr()
    }

    /// The queue, for the kernel's safe work items (`kernel::workqueue`).
    pub fn queue(&self) -> &kernel::workqueue::Queue {
        // SAFETY: `wq` is live for as long as `self` (invariant).
        unsafe { kernel::workqueue::Queue::from_raw(self.wq.as_ptr()) }
    }

    /// Waits until all work queued so far has run.
    pub fn flush(&self) {
        // SAFETY: `wq` is live (invariant).
        unsafe { bindings::rdm_flush_workqueue(self.wq.as_ptr()) };
    }
}

impl Drop for Workqueue {
    fn drop(&mut self) {
        // SAFETY: `wq` is live and owned (invariant); this drains it first.
        unsafe { bindings::destroy_workqueue(self.wq.as_ptr()) };
    }
}
