// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error: usage of an .unsafe. block

//! A target crate denies `unsafe` (`#![deny(unsafe_code)]`, lifted for the
//! abstraction `mod dm` alone): here inside a `#[vtable]` impl.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{MapBio, MapResult, Operations, Target};
use kernel::{c_str, prelude::*};

module_dm_target! {
    type: Case,
    name: "cf_unsafe_in_target",
    description: "compile-fail case",
}

struct Case {
    dev: dm::Device,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_unsafe_in_target");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = ();

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        Ok(Case { dev })
    }

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        let sector = bio.sector();
        // SAFETY: none: a target may not say so.
        let sector = unsafe { core::ptr::read(&sector) }; //~ ERROR
        bio.set_sector(sector);
        bio.remap()
    }
}
