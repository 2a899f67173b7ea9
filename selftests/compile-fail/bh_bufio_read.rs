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
    completion::{BhOutcome, CompletedBio, CompletionHandler},
    Bh, BlkStatus,
};

cf_target! {
    name: "cf_bh_bufio_read",
    kind: completion,
    type: Case,
}

struct Case {
    bufio: BufioClient,
    dev: dm::Device,
}

impl Case {
    fn new(_: &mut dm::Ctr<'_>, dev: dm::Device) -> Result<impl PinInit<Self, Error>> {
        let wq = dm::Workqueue::new(c_str!("cf_bh_bufio_read"), 0, 1)?;
        let bufio = BufioClient::new_no_sleep(&dev, 4096, 1, wq)?;
        Ok(Case { bufio, dev })
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
