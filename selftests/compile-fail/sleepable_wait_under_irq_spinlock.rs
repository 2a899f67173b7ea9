// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0277\]: .\*mut \(\). cannot be shared between threads safely
// expect-output: Sleepable

//! An `IrqSpinLock` is held with interrupts off, where nothing may sleep:
//! its closure must be `Send`, so it cannot borrow the hook's `Sleepable`
//! token, and so cannot wait (`WaitCount::wait_zero`) under the lock.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");
use dm::Sleepable;

cf_target! {
    name: "cf_sleepable_wait_under_irq_spinlock",
    kind: sleepable,

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
