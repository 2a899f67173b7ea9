// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0624\]: associated function `new` is private
// allow-error: ^error\[E0133\]

//! Only the abstraction makes a `Sleepable` token, in a context that may
//! sleep: a target cannot make one in `end_io` (interrupt context) to wait
//! there.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{
    sync::WaitCount, BlkStatus, EndIoBio, EndIoResult, MapBio, MapResult, Operations, Sleepable,
    Target,
};
use kernel::{c_str, prelude::*};

module_dm_target! {
    type: Case,
    name: "cf_sleepable_forged",
    description: "compile-fail case",
}

struct Case {
    dev: dm::Device,
    in_flight: WaitCount,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_sleepable_forged");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = ();

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        Ok(Case {
            dev,
            in_flight: WaitCount::new(),
        })
    }

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        bio.remap()
    }

    fn end_io(&self, _bio: EndIoBio<'_, Self>, _status: &mut BlkStatus) -> EndIoResult {
        let ctx = Sleepable::new(); //~ ERROR
        self.in_flight.wait_zero(&ctx);
        EndIoResult::Done
    }
}
