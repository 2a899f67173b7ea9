// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0624\]: associated function `new` is private
// allow-error: ^error\[E0133\]

//! Only the abstraction makes a `Sleepable` token, in a context that may
//! sleep: a target cannot make one in `end_io` (interrupt context) to wait
//! there.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");
use dm::{BlkStatus, EndIoBio, EndIoResult, Sleepable};

cf_target! {
    name: "cf_sleepable_forged",
    kind: sleepable,

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
