// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0624\]: method .set_error. is private

//! `Target::set_error` (the constructor's failure reason, which dm core reads
//! without a lock) is internal to the abstraction: a target reports through
//! `Args::fail`.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{MapBio, MapResult, Operations, Target};
use kernel::{c_str, prelude::*};

module_dm_target! {
    type: Case,
    name: "cf_set_error_from_map",
    description: "compile-fail case",
}

struct Case {
    dev: dm::Device,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_set_error_from_map");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = ();

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        Ok(Case { dev })
    }

    fn map<'m>(&self, target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        target.set_error(c_str!("no")); //~ ERROR
        bio.set_dev(&self.dev);
        bio.remap()
    }
}
