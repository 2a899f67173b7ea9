// SPDX-License-Identifier: GPL-2.0

//! Device-mapper abstraction for Rust targets.
//!
//! The one place of the project with `unsafe` code: the targets build on the
//! safe types here. Out-of-tree Rust objects cannot share a crate, so every
//! module compiles this folder into its own crate with
//! `#[path = "../dm/mod.rs"] mod dm;`, and links its own copy of the C
//! helpers (`helpers.c`).
//!
//! A bio's way: dm core calls the C vtable built by [`Registration`] → the
//! trampoline wraps the raw pointers ([`Target`], [`MapBio`]) and borrows the
//! target instance → [`Operations::map`] remaps the bio and gives it back
//! ([`MapBio::remap`]), or keeps it ([`MapBio::keep`] → [`DmBio`], then
//! [`MapResult::submitted`]) → completion → [`Operations::end_io`]
//! ([`EndIoBio`]) → dm core.
//!
//! Visibility: each target crate compiles this folder in as its module
//! `dm`, so `pub(crate)` would reach the target's code. Everything internal
//! is `pub(super)` (visible in `dm` only); targets see `pub` items alone.
//!
//! C header: [`include/linux/device-mapper.h`](srctree/include/linux/device-mapper.h)

#![allow(dead_code)]
// The one module of a target crate that may use `unsafe`: every crate root
// denies it (`#![deny(unsafe_code)]`, checked by scripts/check.sh), and this
// lifts the deny for the abstraction alone.
#![allow(unsafe_code)]

mod args;
mod bindings;
mod bio;
#[cfg(dm_bufio)]
pub mod bufio;
pub mod completion;
mod context;
// Every method of the abstraction that may sleep calls it first.
use context::might_sleep;
pub use context::{Bh, Sleepable};
mod device;
pub mod emit;
mod error;
pub mod hash;
pub mod io;
pub mod kcopyd;
mod limits;
pub mod mempool;
mod noio;
pub mod params;
pub mod parse;
#[cfg(dm_persistent_data)]
pub mod pdata;
pub mod periodic;
pub mod ratelimit;
#[cfg(dm_reed_solomon)]
pub mod reed_solomon;
pub mod security;
pub mod sync;
mod target;
pub mod workqueue;

pub use args::Args;
pub use bio::{with_plug, BioList, BlkStatus, DmBio, EndIoBio, MapBio, MapResult, Op};
pub use device::{Device, DiscardLimits};
pub use emit::StatusWriter;
pub use error::reason;
pub use limits::QueueLimits;
pub use noio::noio;
pub use target::{
    features, Ctr, DeviceCallout, EndIoResult, Operations, Registration, StatusType, Target,
    TargetHandle, STATUS_NOFLUSH,
};
pub use workqueue::{num_online_cpus, Workqueue, WQ_HIGHPRI, WQ_MEM_RECLAIM, WQ_UNBOUND};

/// Logs an error with dm's prefix: `device-mapper: <DM_MSG_PREFIX>: ...`.
///
/// The crate root of each target defines `DM_MSG_PREFIX`, as C targets do.
#[macro_export]
macro_rules! dm_err {
    ($($arg:tt)*) => {
        ::kernel::pr_err!("device-mapper: {}: {}\n", $crate::DM_MSG_PREFIX, format_args!($($arg)*))
    };
}

/// Logs a warning with dm's prefix.
#[macro_export]
macro_rules! dm_warn {
    ($($arg:tt)*) => {
        ::kernel::pr_warn!("device-mapper: {}: {}\n", $crate::DM_MSG_PREFIX, format_args!($($arg)*))
    };
}

/// Logs information with dm's prefix.
#[macro_export]
macro_rules! dm_info {
    ($($arg:tt)*) => {
        ::kernel::pr_info!("device-mapper: {}: {}\n", $crate::DM_MSG_PREFIX, format_args!($($arg)*))
    };
}

/// What a target module holds from load to unload besides its target type
/// (`state:` of [`module_dm_target!`]): made before the target is
/// registered, dropped after it is unregistered, so that every instance of
/// the target lives within it.
pub trait ModuleState: Sized {
    /// Makes the state when the module loads; an error fails the load.
    fn new() -> kernel::error::Result<Self>;
}

impl ModuleState for () {
    fn new() -> kernel::error::Result<Self> {
        Ok(())
    }
}

/// Declares the module of a target type and registers it on load (C's
/// `module_dm()`):
///
/// ```ignore
/// module_dm_target! {
///     type: Verity,
///     name: "dm_verity_rs",
///     description: "...",
///     alias: ["dm-verity"],   // optional
///     state: SomeState,       // optional: a ModuleState
/// }
/// ```
#[macro_export]
macro_rules! module_dm_target {
    // The type of the module's state: `()` without `state:`.
    (@state) => { () };
    (@state $st:ty) => { $st };
    (type: $t:ty, name: $name:tt, description: $desc:tt $(, alias: [$($alias:tt),* $(,)?])?
     $(, state: $st:ty)? $(,)?) => {
        ::kernel::prelude::module! {
            type: DmTargetModule,
            name: $name,
            author: "rust-dm developers",
            description: $desc,
            license: "GPL",
            $(alias: [$($alias),*],)?
        }

        // Field order is drop order: the target is unregistered first.
        struct DmTargetModule {
            _target: $crate::dm::Registration<$t>,
            _state: $crate::module_dm_target!(@state $($st)?),
        }

        impl ::kernel::Module for DmTargetModule {
            fn init(module: &'static ::kernel::ThisModule) -> ::kernel::error::Result<Self> {
                let state =
                    <$crate::module_dm_target!(@state $($st)?) as $crate::dm::ModuleState>::new()?;
                Ok(Self {
                    _target: $crate::dm::Registration::new(module)?,
                    _state: state,
                })
            }
        }
    };
}
