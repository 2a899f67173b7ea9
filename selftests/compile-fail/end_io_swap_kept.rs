// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0308\]: mismatched types
// expect-output: expected .&mut EndIoBio<'_, Case>., found .&mut DmBio<Case>.

//! `end_io` sees the completing bio through a view (`EndIoBio`), which cannot
//! be swapped with a bio the target owns (`DmBio`): dm core would complete
//! the wrong bio.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{
    sync::IrqSpinLock, BioList, BlkStatus, EndIoBio, EndIoResult, MapBio, MapResult, Operations,
    Target,
};
use kernel::{c_str, prelude::*};

module_dm_target! {
    type: Case,
    name: "cf_end_io_swap_kept",
    description: "compile-fail case",
}

#[pin_data]
struct Case {
    dev: dm::Device,
    #[pin]
    kept: IrqSpinLock<BioList<Case>>,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_end_io_swap_kept");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = ();

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        Ok(try_pin_init!(Case {
            dev,
            kept <- new_irq_spinlock!(BioList::new()),
        }))
    }

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        let kept = bio.keep();
        self.kept.with(|list| list.push(kept));
        MapResult::submitted()
    }

    fn end_io(&self, mut bio: EndIoBio<'_, Self>, _status: &mut BlkStatus) -> EndIoResult {
        if let Some(mut kept) = self.kept.with(|list| list.pop()) {
            core::mem::swap(&mut bio, &mut kept); //~ ERROR
            kept.submit();
        }
        EndIoResult::Done
    }
}
