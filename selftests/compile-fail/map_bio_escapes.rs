// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error: lifetime may not live long enough
// expect-output: requires that .'m. must outlive .'static.

//! The bio of a `map` call cannot be kept beyond the call as a `MapBio`
//! (here in a leaked, `'static` slot): its lifetime is the call's.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{MapBio, MapResult, Operations, Target};
use kernel::{c_str, prelude::*};

module_dm_target! {
    type: Case,
    name: "cf_map_bio_escapes",
    description: "compile-fail case",
}

struct Case {
    dev: dm::Device,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_map_bio_escapes");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = ();

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        Ok(Case { dev })
    }

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        let Some(slot) = leaked_slot() else {
            return bio.kill();
        };
        *slot = Some(bio); //~ ERROR
        MapResult::submitted()
    }
}

/// A slot that lives for ever (leaked).
fn leaked_slot() -> Option<&'static mut Option<MapBio<'static, Case>>> {
    KBox::new(None, GFP_ATOMIC).ok().map(KBox::leak)
}
