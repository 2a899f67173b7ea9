// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0061\]: this method takes 2 arguments but 1 argument was supplied

//! `end_io` may run in interrupt context: a waiting allocation
//! (`Mempool::alloc`, `GFP_NOIO`) needs a `Sleepable` token, and `end_io`
//! gets none (only `try_alloc`, which never waits, works there).

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");
use dm::{BlkStatus, EndIoBio, EndIoResult};

cf_target! {
    name: "cf_sleepable_alloc_in_end_io",
    kind: sleepable,

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        bio.remap()
    }

    fn end_io(&self, _bio: EndIoBio<'_, Self>, _status: &mut BlkStatus) -> EndIoResult {
        let _n = self.pool.alloc(1); //~ ERROR
        EndIoResult::Done
    }
}
