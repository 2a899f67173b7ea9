// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0624\]: method .as_raw. is private

//! The raw `struct bio` pointer of a `MapBio` is the abstraction's alone
//! (`pub(super)`, as every internal item of rust/dm): a target gets none.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{MapBio, MapResult, Operations, Target};
use kernel::{c_str, prelude::*};

module_dm_target! {
    type: Case,
    name: "cf_raw_bio_private",
    description: "compile-fail case",
}

struct Case {
    dev: dm::Device,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_raw_bio_private");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = ();

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        Ok(Case { dev })
    }

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        let _raw = bio.as_raw(); //~ ERROR
        bio.set_dev(&self.dev);
        bio.remap()
    }
}
