// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0608\]: cannot index into a value of type

//! `CompletedBio::next_block` hands over a bio's data as a `BioData`, not a
//! `&mut [u8]`: the pages may be user memory written concurrently, which a
//! Rust slice must never see; the data is read and written by copies only.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{
    completion::{CompletedBio, CompletionHandler, CompletionHook},
    BlkStatus, MapBio, MapResult, Operations, Target,
};
use kernel::{c_str, prelude::*};

module_dm_target! {
    type: Case,
    name: "cf_next_block_slice_write",
    description: "compile-fail case",
}

struct Case {
    dev: dm::Device,
    wq: dm::Workqueue,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_next_block_slice_write");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = CompletionHook;

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        let wq = dm::Workqueue::new(c_str!("cf_next_block"), 0, 1)?;
        Ok(Case { dev, wq })
    }

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        bio.submit_intercepted()
    }
}

impl CompletionHandler for Case {
    fn completion_queue(&self) -> &dm::Workqueue {
        &self.wq
    }

    fn bio_completed(
        &self,
        _target: &Target,
        _ctx: &dm::Sleepable<'_>,
        bio: &mut CompletedBio<'_>,
    ) -> BlkStatus {
        match bio.next_block(512, |data| {
            data[0] = 1; //~ ERROR
        }) {
            Ok(()) => BlkStatus::OK,
            Err(_) => BlkStatus::IOERR,
        }
    }
}
