// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0061\]: this method takes 2 arguments but 1 argument was supplied

//! `end_io` may run in interrupt context: a waiting allocation
//! (`Mempool::alloc`, `GFP_NOIO`) needs a `Sleepable` token, and `end_io`
//! gets none (only `try_alloc`, which never waits, works there).

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{
    mempool::Mempool, BlkStatus, EndIoBio, EndIoResult, MapBio, MapResult, Operations, Target,
};
use kernel::{c_str, prelude::*};

module_dm_target! {
    type: Case,
    name: "cf_sleepable_alloc_in_end_io",
    description: "compile-fail case",
}

struct Case {
    dev: dm::Device,
    pool: Mempool<u64>,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_sleepable_alloc_in_end_io");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = ();

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        Ok(Case {
            dev,
            pool: Mempool::new(4)?,
        })
    }

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        bio.remap()
    }

    fn end_io(&self, _bio: EndIoBio<'_, Self>, _status: &mut BlkStatus) -> EndIoResult {
        let _n = self.pool.alloc(1); //~ ERROR
        EndIoResult::Done
    }
}
