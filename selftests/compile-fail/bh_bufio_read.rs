// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0308\]: mismatched types
// expect-output: expected `&Target`, found `&Bh<'_>`
// cfg: dm_bufio

//! A BH callback (`bio_completed_bh`, softirq) cannot read from the hash
//! block cache, which sleeps: `BufioClient::read` needs the `&Target` of a
//! hook running in process context, and the BH callback has only its `Bh`
//! token, which is no `Target`. (The cached lookup `get_bh` takes the token.)

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");
use dm::{
    bufio::BufioClient,
    completion::{BhOutcome, CompletedBio, CompletionHandler, CompletionHook},
    Bh, BlkStatus,
};

module_dm_target! {
    type: Case,
    name: "cf_bh_bufio_read",
    description: "compile-fail case",
}

struct Case {
    bufio: BufioClient,
    dev: dm::Device,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_bh_bufio_read");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = CompletionHook;

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        let wq = dm::Workqueue::new(c_str!("cf_bh_bufio_read"), 0, 1)?;
        let bufio = BufioClient::new_no_sleep(&dev, 4096, 1, wq)?;
        Ok(Case { bufio, dev })
    }

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        bio.submit_intercepted()
    }
}

impl CompletionHandler for Case {
    fn completion_queue(&self) -> &dm::Workqueue {
        self.bufio.workqueue()
    }

    fn bio_completed(
        &self,
        _target: &Target,
        _ctx: &dm::Sleepable<'_>,
        _bio: &mut CompletedBio<'_>,
    ) -> BlkStatus {
        BlkStatus::OK
    }

    fn try_bh(&self) -> bool {
        true
    }

    fn bio_completed_bh(&self, bh: &Bh<'_>, _bio: &mut CompletedBio<'_>) -> BhOutcome {
        let r = self.bufio.read(bh, 0); //~ ERROR
        match r {
            Ok(_) => BhOutcome::Done,
            Err(_) => BhOutcome::Defer,
        }
    }
}
