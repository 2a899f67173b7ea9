// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0277\]: .\*mut \(\). cannot be (sent|shared) between threads safely
// allow-error: ^error(\[E[0-9]+\])?: (lifetime may not live long enough|borrowed data escapes)
// expect-output: Sleepable

//! A `Sleepable` token proves the context of one call: the target value,
//! which every hook and CPU shares (`Send + Sync`), cannot keep one for
//! `end_io` or a BH callback to use later.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{MapBio, MapResult, Operations, Sleepable, Target};
use kernel::{c_str, prelude::*};

module_dm_target! {
    type: Case,
    name: "cf_sleepable_stored",
    description: "compile-fail case",
}

struct Case {
    dev: dm::Device,
    ctx: Sleepable<'static>,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_sleepable_stored");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = ();

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        let ctx = target.sleepable();
        Ok(Case { dev, ctx })
    }

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        let _ctx = &self.ctx;
        bio.set_dev(&self.dev);
        bio.remap()
    }
}
