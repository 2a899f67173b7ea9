// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0521\]: borrowed data escapes outside of method
// expect-output: .bio. escapes the method body here
// expect-output: requires that .'m. must outlive .'static.

//! The bio of a `map` call cannot be kept beyond the call as a `MapBio`
//! (here in a leaked, `'static` holder): its lifetime is the call's.

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
        keep_for_later(bio); //~ ERROR
        MapResult::submitted()
    }
}

/// Keeps a bio for a later call: in a holder that lives for ever (leaked).
fn keep_for_later(bio: MapBio<'static, Case>) {
    if let Ok(holder) = KBox::new(bio, GFP_ATOMIC) {
        KBox::leak(holder);
    }
}
