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
include!("common/skeleton.rs");
use dm::Sleepable;

cf_target! {
    name: "cf_sleepable_stored",
    type: Case, //~ ERROR

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        let _ctx = &self.ctx;
        bio.set_dev(&self.dev);
        bio.remap()
    }
}

struct Case {
    dev: dm::Device,
    ctx: Sleepable<'static>,
}

impl Case {
    fn new(target: &mut dm::Ctr<'_>, dev: dm::Device) -> Result<impl PinInit<Self, Error>> {
        let ctx = target.sleepable();
        Ok(Case { dev, ctx })
    }
}
