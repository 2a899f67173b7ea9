// SPDX-License-Identifier: GPL-2.0

//! Allocations on the I/O path. 6.12's `kernel::alloc` has no `GFP_NOIO`;
//! the kernel's preferred way is a scope instead: within
//! `memalloc_noio_save()` every allocation behaves as `GFP_NOIO` (may sleep,
//! never recurses into I/O, so it cannot deadlock on the device whose bio
//! is being mapped).
//!
//! C header: [`include/linux/sched/mm.h`](srctree/include/linux/sched/mm.h)

use super::bindings;

/// Runs `f` with every allocation in it done as `GFP_NOIO` (use
/// `GFP_KERNEL` inside).
///
/// # Context
///
/// Process context: allocations in `f` may sleep (never to wait for I/O).
pub fn noio<R>(f: impl FnOnce() -> R) -> R {
    super::might_sleep();
    // SAFETY: Saves and sets the task's allocation scope; restored below.
    let flags = unsafe { bindings::rdm_memalloc_noio_save() };
    let r = f();
    // SAFETY: Restores the scope saved above, on the same task.
    unsafe { bindings::rdm_memalloc_noio_restore(flags) };
    r
}
