// SPDX-License-Identifier: GPL-2.0

// The skeleton of the compile-fail cases' targets. Every case pulls it in
// after its `mod dm`, with `include!("common/skeleton.rs")`, so that the
// case itself holds only what it is about. It gives the case the imports
// every case uses and `cf_target!`, which declares the module and its
// target `Case` around the case's hooks:
//
//     cf_target! {
//         name: "cf_NAME",     // the module's and the target's name
//         kind: kept,          // optional: what `Case` holds, below
//         type: Case,          // optional: the case's own target type
//         per_bio: u32,        // optional: `Operations::PerBio`
//         features: dm::features::NOWAIT,   // optional: `Operations::FEATURES`
//
//         fn map<'m>(...) -> MapResult<'m> { ... }   // optional: the case's
//         fn end_io(...) -> EndIoResult { ... }      // `Operations` hooks
//     }
//
// `Case` holds the device of its table line (`dev`) and, by kind:
//   (none)      nothing more; `PerBio` is `()`
//   kept        a list of kept bios, `kept: IrqSpinLock<BioList<Case>>`,
//               made in the constructor; `PerBio` is `()`
//   completion  a workqueue `wq`, and the `CompletionHandler` on it, whose
//               `bio_completed` calls the case's `Case::completed(&self,
//               bio: &mut CompletedBio<'_>) -> BlkStatus`; `PerBio` is
//               `CompletionHook`
//   sleepable   what waits, and so takes a `Sleepable` token: a pool
//               `pool: Mempool<u64>` (`alloc`) and `in_flight: WaitCount`
//               (`wait_zero`); and `state: IrqSpinLock<u64>`, under which
//               nothing may wait; `PerBio` is `()`
//   worker      `core: Arc<Core>`, a work item: `Core` holds only its
//               `work: Work<Core>`, and the case implements `WorkItem` for
//               it (`Pointer = Running<Core>`); `PerBio` is `()`
// A case whose point is its target's shape or its constructor gives
// `type: Case` (any name; after the kind, before `per_bio`) and declares
// the type itself, with `Case::new(target: &mut dm::Ctr<'_>, dev:
// dm::Device) -> Result<impl PinInit<Self, Error>>`, which the constructor
// calls once it has `dev` (as it calls a kind's `Case::new`); a kind given
// too then gives only `PerBio` and the default `map` (which needs a `dev`
// field). An error about the type (e.g. that it is not `Send`) then points
// at the case's `type:` line.
// Without hooks, `map` sends every bio to `dev`: remapped, or for kind
// completion, intercepted (`submit_intercepted`). With hooks, the case
// gives `map` and they start with `fn` (no attribute or doc comment first).
//
// The hooks are the case's own tokens, passed through: rustc reports an error
// in them at the case's line, where scripts/compile-fail.sh looks for it.
// `mod dm` stays in the case: declared in an included file, it would be
// macro-expanded, and `module_dm_target!` could not name itself by
// `$crate::` (rustc denies it).

use dm::{MapBio, MapResult, Operations, Target};
use kernel::{c_str, prelude::*};

macro_rules! cf_target {
    // `Case` and its constructor, by kind.
    (@case $name:tt,) => {
        struct Case {
            dev: dm::Device,
        }

        impl Case {
            fn new(_: &mut dm::Ctr<'_>, dev: dm::Device) -> Result<impl PinInit<Self, Error>> {
                Ok(Case { dev })
            }
        }
    };
    (@case $name:tt, kept) => {
        #[pin_data]
        struct Case {
            dev: dm::Device,
            #[pin]
            kept: dm::sync::IrqSpinLock<dm::BioList<Case>>,
        }

        impl Case {
            fn new(_: &mut dm::Ctr<'_>, dev: dm::Device) -> Result<impl PinInit<Self, Error>> {
                Ok(try_pin_init!(Case {
                    dev,
                    kept <- new_irq_spinlock!(dm::BioList::new()),
                }))
            }
        }
    };
    (@case $name:tt, completion) => {
        struct Case {
            dev: dm::Device,
            wq: dm::Workqueue,
        }

        impl Case {
            fn new(_: &mut dm::Ctr<'_>, dev: dm::Device) -> Result<impl PinInit<Self, Error>> {
                let wq = dm::Workqueue::new(c_str!($name), 0, 1)?;
                Ok(Case { dev, wq })
            }
        }

        impl dm::completion::CompletionHandler for Case {
            fn completion_queue(&self) -> &dm::Workqueue {
                &self.wq
            }

            fn bio_completed(
                &self,
                _: &Target,
                _: &dm::Sleepable<'_>,
                bio: &mut dm::completion::CompletedBio<'_>,
            ) -> dm::BlkStatus {
                self.completed(bio)
            }
        }
    };
    (@case $name:tt, sleepable) => {
        #[pin_data]
        struct Case {
            dev: dm::Device,
            pool: dm::mempool::Mempool<u64>,
            in_flight: dm::sync::WaitCount,
            #[pin]
            state: dm::sync::IrqSpinLock<u64>,
        }

        impl Case {
            fn new(_: &mut dm::Ctr<'_>, dev: dm::Device) -> Result<impl PinInit<Self, Error>> {
                Ok(try_pin_init!(Case {
                    dev,
                    pool: dm::mempool::Mempool::new(4)?,
                    in_flight: dm::sync::WaitCount::new(),
                    state <- new_irq_spinlock!(0),
                }? Error))
            }
        }
    };
    (@case $name:tt, worker) => {
        struct Case {
            dev: dm::Device,
            core: kernel::sync::Arc<Core>,
        }

        #[pin_data]
        struct Core {
            #[pin]
            work: kernel::workqueue::Work<Core>,
        }

        kernel::impl_has_work! {
            impl HasWork<Self> for Core { self.work }
        }

        impl Case {
            fn new(_: &mut dm::Ctr<'_>, dev: dm::Device) -> Result<impl PinInit<Self, Error>> {
                let core = pin_init!(Core {
                    work <- kernel::new_work!("Core::work"),
                });
                let core = kernel::sync::Arc::pin_init(core, GFP_KERNEL)?;
                Ok(Case { dev, core })
            }
        }
    };

    // `Operations::PerBio`: the case's, or the kind's.
    (@per_bio $($kind:ident)?; $per_bio:ty) => { $per_bio };
    (@per_bio completion;) => { dm::completion::CompletionHook };
    (@per_bio $($kind:ident)?;) => { () };

    // What the default `map` does with the bio, by kind.
    (@send completion, $bio:ident) => { $bio.submit_intercepted() };
    (@send $($kind:ident)?, $bio:ident) => { $bio.remap() };

    // The module and the `Operations` of target `$ty`, around the hooks, or
    // without hooks around the default `map`.
    (@target $name:tt, $ty:ident, ($($kind:ident)?), ($($per_bio:ty)?), ($($features:expr)?),) => {
        cf_target!(@target $name, $ty, ($($kind)?), ($($per_bio)?), ($($features)?),
            fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
                bio.set_dev(&self.dev);
                cf_target!(@send $($kind)?, bio)
            }
        );
    };
    (@target $name:tt, $ty:ident, ($($kind:ident)?), ($($per_bio:ty)?), ($($features:expr)?), fn $($hook:tt)*) => {
        module_dm_target! {
            type: $ty,
            name: $name,
            description: "compile-fail case",
        }

        #[vtable]
        impl Operations for $ty {
            const NAME: &'static CStr = c_str!($name);
            const VERSION: [u32; 3] = [1, 0, 0];

            type PerBio = cf_target!(@per_bio $($kind)?; $($per_bio)?);
            $(const FEATURES: u64 = $features;)?

            fn ctr(
                target: &mut dm::Ctr<'_>,
                args: &mut dm::Args<'_>,
            ) -> Result<impl PinInit<Self, Error>> {
                let path = args.next_str(c_str!("Invalid argument count"))?;
                let dev = target.get_device(path, c_str!("Device lookup failed"))?;
                $ty::new(target, dev)
            }

            fn $($hook)*
        }
    };

    // A case: its own target type, or a kind's `Case`.
    (
        name: $name:tt,
        $(kind: $kind:ident,)?
        type: $ty:ident,
        $(per_bio: $per_bio:ty,)?
        $(features: $features:expr,)?
        $(fn $($hook:tt)*)?
    ) => {
        cf_target!(@target $name, $ty, ($($kind)?), ($($per_bio)?), ($($features)?), $(fn $($hook)*)?);
    };
    (
        name: $name:tt,
        $(kind: $kind:ident,)?
        $(per_bio: $per_bio:ty,)?
        $(features: $features:expr,)?
        $(fn $($hook:tt)*)?
    ) => {
        cf_target!(@case $name, $($kind)?);
        cf_target!(@target $name, Case, ($($kind)?), ($($per_bio)?), ($($features)?), $(fn $($hook)*)?);
    };
}
