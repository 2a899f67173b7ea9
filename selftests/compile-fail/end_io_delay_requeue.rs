// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0599\]: no .* named .DelayRequeue. found for enum .(dm::)?EndIoResult

//! Bio-based dm core BUG()s on `DM_ENDIO_DELAY_REQUEUE`: `EndIoResult` has
//! only `Done` and `Requeue`.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{BlkStatus, EndIoBio, EndIoResult, MapBio, MapResult, Operations, Target};
use kernel::{c_str, prelude::*};

module_dm_target! {
    type: Case,
    name: "cf_end_io_delay_requeue",
    description: "compile-fail case",
}

struct Case {
    dev: dm::Device,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_end_io_delay_requeue");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = ();

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        Ok(Case { dev })
    }

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        bio.remap()
    }

    fn end_io(&self, _bio: EndIoBio<'_, Self>, _status: &mut BlkStatus) -> EndIoResult {
        EndIoResult::DelayRequeue //~ ERROR
    }
}
