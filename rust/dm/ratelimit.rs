// SPDX-License-Identifier: GPL-2.0

//! Rate-limited kernel log messages: C's `DMERR_LIMIT` / `pr_err_ratelimited`.
//!
//! An error that a failing device can raise once per bio (a failed region
//! copy, a corrupted block) must not flood the kernel log: C prints it
//! through a per-call-site `struct ratelimit_state` with the kernel's
//! defaults, at most [`BURST`] messages every [`INTERVAL`] jiffies, and
//! reports how many it suppressed when the next interval begins. 6.12's Rust
//! has no `pr_err_ratelimited!`; [`RateLimit`] is the same policy with
//! atomics, so a `static` of it per call site needs no initialisation and no
//! lock. [`dm_err_limit!`](crate::dm_err_limit) is the macro the targets use.
//!
//! C header: [`include/linux/ratelimit.h`](srctree/include/linux/ratelimit.h)

use super::periodic::{jiffies, HZ};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Length of an interval: C's `DEFAULT_RATELIMIT_INTERVAL` (5 s).
pub const INTERVAL: u64 = 5 * HZ;
/// Messages allowed per interval: C's `DEFAULT_RATELIMIT_BURST`.
pub const BURST: u32 = 10;

/// The state of one rate-limited call site.
///
/// # Invariants
///
/// `begin` is 0 before the first message, else the jiffies (never 0) at which
/// the current interval began; `printed` counts the messages let through in
/// that interval (saturating), `missed` the ones suppressed since the last
/// report of them.
pub struct RateLimit {
    begin: AtomicU64,
    printed: AtomicU32,
    missed: AtomicU32,
}

impl RateLimit {
    /// A call site that has printed nothing yet.
    pub const fn new() -> Self {
        Self {
            begin: AtomicU64::new(0),
            printed: AtomicU32::new(0),
            missed: AtomicU32::new(0),
        }
    }

    /// Whether a message may be printed now. `Some(n)`: yes, and `n`
    /// messages were suppressed before it (to be reported once); `None`: no,
    /// it is counted as suppressed.
    ///
    /// Racing callers at an interval's end may let a message or two more
    /// through than the burst, never fewer: a log policy, not an invariant.
    pub fn check(&self) -> Option<u32> {
        let now = jiffies().max(1);
        let begin = self.begin.load(Ordering::Relaxed);
        let mut missed = 0;
        if (begin == 0 || now.wrapping_sub(begin) >= INTERVAL)
            && self
                .begin
                .compare_exchange(begin, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.printed.store(0, Ordering::Relaxed);
            missed = self.missed.swap(0, Ordering::Relaxed);
        }
        let allowed = self
            .printed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < BURST).then_some(n + 1)
            })
            .is_ok();
        if allowed {
            Some(missed)
        } else {
            // Give back what the reset above took, so it is reported later.
            let _ = self
                .missed
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_add(missed).saturating_add(1))
                });
            None
        }
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

/// Logs an error with dm's prefix, rate-limited per call site as C's
/// `DMERR_LIMIT`: at most [`BURST`] messages every 5 s; the number
/// suppressed is logged before the next message that gets through.
#[macro_export]
macro_rules! dm_err_limit {
    ($($arg:tt)*) => {
        $crate::dm_log_limit!(pr_err, $crate::DM_MSG_PREFIX, $($arg)*)
    };
}

/// Logs a warning with dm's prefix, rate-limited per call site as C's
/// `DMWARN_LIMIT` (see [`dm_err_limit!`](crate::dm_err_limit)).
#[macro_export]
macro_rules! dm_warn_limit {
    ($($arg:tt)*) => {
        $crate::dm_log_limit!(pr_warn, $crate::DM_MSG_PREFIX, $($arg)*)
    };
}

/// Logs with `kernel::$pr!` and the dm prefix `device-mapper: $prefix:`,
/// rate-limited per call site: what [`dm_err_limit!`](crate::dm_err_limit)
/// and [`dm_warn_limit!`](crate::dm_warn_limit) expand to, for a part of a
/// target with its own prefix (C's `DM_MSG_PREFIX` of a second file).
#[macro_export]
macro_rules! dm_log_limit {
    ($pr:ident, $prefix:expr, $($arg:tt)*) => {{
        static LIMIT: $crate::dm::ratelimit::RateLimit = $crate::dm::ratelimit::RateLimit::new();
        if let Some(missed) = LIMIT.check() {
            if missed != 0 {
                ::kernel::pr_warn!("device-mapper: {}: {} messages suppressed\n", $prefix, missed);
            }
            ::kernel::$pr!("device-mapper: {}: {}\n", $prefix, format_args!($($arg)*));
        }
    }};
}
