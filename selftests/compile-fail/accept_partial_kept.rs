// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0599\]: no method named .accept_partial. found for struct .(dm::)?DmBio

//! Only the bio of the current `map` call can be shortened
//! (`dm_accept_partial_bio()`): a kept `DmBio` has no `accept_partial`.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{MapBio, MapResult, Operations, Target};
use kernel::{c_str, prelude::*};

module_dm_target! {
    type: Case,
    name: "cf_accept_partial_kept",
    description: "compile-fail case",
}

struct Case {
    dev: dm::Device,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_accept_partial_kept");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = ();

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        Ok(Case { dev })
    }

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        let mut kept = bio.keep();
        let _ = kept.accept_partial(8); //~ ERROR
        kept.submit();
        MapResult::submitted()
    }
}
