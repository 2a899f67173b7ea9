// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error: lifetime may not live long enough
// expect-output: the struct .MapResult<'m>. is invariant over the parameter .'m.

//! The bio of one `map` call cannot make the result of another: `MapBio<'a>`
//! only gives a `MapResult<'a>` (the brand is invariant).

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{MapBio, MapResult, Operations, Target};
use kernel::{c_str, prelude::*};

module_dm_target! {
    type: Case,
    name: "cf_map_result_of_other_call",
    description: "compile-fail case",
}

struct Case {
    dev: dm::Device,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_map_result_of_other_call");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = ();

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        Ok(Case { dev })
    }

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        forward(bio)
    }
}

/// Gives back the bio of call `'a` as the result of call `'b`.
fn forward<'a, 'b>(bio: MapBio<'a, Case>) -> MapResult<'b> {
    bio.remap() //~ ERROR
}
