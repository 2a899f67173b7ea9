// SPDX-License-Identifier: GPL-2.0
// expect-build

//! Compile-fail control: a correct target using, the right way, the API the
//! cases misuse (a map call's bio remapped, shortened, failed, requeued or
//! kept in a list under an `IrqSpinLock`; kept bios submitted or ended
//! later; `end_io`'s view of a completing bio). It must build: otherwise a
//! case failing to build shows nothing.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");
use dm::{BlkStatus, EndIoBio, EndIoResult, Op};

cf_target! {
    name: "cf_control_ok",
    kind: kept,
    per_bio: u32,

    fn map<'m>(&self, target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        bio.set_sector(target.offset(bio.sector()));
        let size = bio.size();
        bio.data().set(size);
        match bio.op() {
            Op::Write if bio.sectors() > 8 => match bio.accept_partial(8) {
                Ok(()) => bio.remap(),
                Err(_) => bio.kill(),
            },
            Op::Discard => bio.kill(),
            Op::Flush => {
                let kept = bio.keep();
                self.kept.with(|list| list.push(kept));
                MapResult::submitted()
            }
            _ if target.is_noflush_suspending() => bio.requeue(),
            _ => bio.remap(),
        }
    }

    fn end_io(&self, mut bio: EndIoBio<'_, Self>, status: &mut BlkStatus) -> EndIoResult {
        if *bio.data() == 0 && !status.is_ok() && bio.op() == Op::Read {
            return EndIoResult::Requeue;
        }
        EndIoResult::Done
    }

    fn presuspend(&self, _target: &Target, _ctx: &dm::Sleepable<'_>) {
        self.kept.with(|list| list.take()).submit_all();
    }

    fn postsuspend(&self, _target: &Target, _ctx: &dm::Sleepable<'_>) {
        while let Some(bio) = self.kept.with(|list| list.pop()) {
            bio.end(BlkStatus::IOERR);
        }
    }
}
