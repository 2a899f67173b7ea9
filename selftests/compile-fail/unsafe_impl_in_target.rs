// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error: implementation of an .unsafe. trait

//! A target cannot declare its own types `Send` or `Sync` (`unsafe impl`):
//! `#![deny(unsafe_code)]` covers unsafe trait implementations too.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{MapBio, MapResult, Operations, Target};
use kernel::{c_str, prelude::*};

module_dm_target! {
    type: Case,
    name: "cf_unsafe_impl_in_target",
    description: "compile-fail case",
}

struct Case {
    dev: dm::Device,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_unsafe_impl_in_target");
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
}

/// A raw pointer that the target would like to share between CPUs.
pub struct Shared(*mut u8);

// SAFETY: none: a target may not say so.
unsafe impl Send for Shared {} //~ ERROR
