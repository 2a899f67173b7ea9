// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0599\]: no .* named .DelayRequeue. found for struct .(dm::)?MapResult

//! Bio-based dm core BUG()s on `DM_MAPIO_DELAY_REQUEUE`: `MapResult` has no
//! delayed requeue.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");

cf_target! {
    name: "cf_map_delay_requeue",

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        MapResult::DelayRequeue(bio) //~ ERROR
    }
}
