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

use dm::{
    sync::IrqSpinLock, BioList, BlkStatus, EndIoBio, EndIoResult, MapBio, MapResult, Op,
    Operations, Target,
};
use kernel::{c_str, prelude::*};

module_dm_target! {
    type: Control,
    name: "cf_control_ok",
    description: "compile-fail control: a correct target",
}

#[pin_data]
struct Control {
    dev: dm::Device,
    #[pin]
    kept: IrqSpinLock<BioList<Control>>,
}

#[vtable]
impl Operations for Control {
    const NAME: &'static CStr = c_str!("cf_control_ok");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = u32;

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        Ok(try_pin_init!(Control {
            dev,
            kept <- new_irq_spinlock!(BioList::new()),
        }))
    }

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
