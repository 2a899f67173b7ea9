// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0599\]: no .* named .DelayRequeue. found for enum .(dm::)?EndIoResult

//! Bio-based dm core BUG()s on `DM_ENDIO_DELAY_REQUEUE`: `EndIoResult` has
//! only `Done` and `Requeue`.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");
use dm::{BlkStatus, EndIoBio, EndIoResult};

cf_target! {
    name: "cf_end_io_delay_requeue",

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        bio.remap()
    }

    fn end_io(&self, _bio: EndIoBio<'_, Self>, _status: &mut BlkStatus) -> EndIoResult {
        EndIoResult::DelayRequeue //~ ERROR
    }
}
