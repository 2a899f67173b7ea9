// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0277\]: .\*mut \(\). cannot be shared between threads safely
// expect-output: Sleepable

//! An `IrqSpinLock` is held with interrupts off, where nothing may sleep:
//! its closure must be `Send`, so it cannot borrow the hook's `Sleepable`
//! token, and so cannot wait (`WaitCount::wait_zero`) under the lock.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{
    sync::{IrqSpinLock, WaitCount},
    MapBio, MapResult, Operations, Sleepable, Target,
};
use kernel::{c_str, prelude::*};

module_dm_target! {
    type: Case,
    name: "cf_sleepable_wait_under_irq_spinlock",
    description: "compile-fail case",
}

#[pin_data]
struct Case {
    dev: dm::Device,
    in_flight: WaitCount,
    #[pin]
    state: IrqSpinLock<u64>,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_sleepable_wait_under_irq_spinlock");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = ();

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        Ok(try_pin_init!(Case {
            dev,
            in_flight: WaitCount::new(),
            state <- crate::new_irq_spinlock!(0),
        }? Error))
    }

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        bio.remap()
    }

    fn postsuspend(&self, _target: &Target, ctx: &Sleepable<'_>) {
        let wait = |n: &mut u64| {
            self.in_flight.wait_zero(ctx);
            *n = 0;
        };
        self.state.with(wait); //~ ERROR
    }
}
