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
