// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error: lifetime may not live long enough

//! A `Sleepable` token lives for the call that got it (its lifetime): it
//! cannot be made to outlive the constructor, e.g. to be used once the
//! target serves I/O.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");
use dm::Sleepable;

cf_target! {
    name: "cf_sleepable_outlives_call",
    type: Case,
}

struct Case {
    dev: dm::Device,
}

impl Case {
    fn new(target: &mut dm::Ctr<'_>, dev: dm::Device) -> Result<impl PinInit<Self, Error>> {
        let _ctx: Sleepable<'static> = target.sleepable(); //~ ERROR
        Ok(Case { dev })
    }
}
