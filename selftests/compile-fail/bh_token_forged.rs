// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0624\]: associated function `new` is private
// allow-error: ^error\[E0133\]

//! Only the abstraction makes a `Bh` token, for the length of a callback it
//! runs in the BH workqueue: a target cannot make one to call what takes
//! it elsewhere (e.g. `BufioClient::get_bh` while holding a sleeping lock).

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{Bh, MapBio, MapResult, Operations, Target};
use kernel::{c_str, prelude::*};

module_dm_target! {
    type: Case,
    name: "cf_bh_token_forged",
    description: "compile-fail case",
}

struct Case {
    dev: dm::Device,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_bh_token_forged");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = ();

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        Ok(Case { dev })
    }

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        let _bh = Bh::new(); //~ ERROR
        bio.set_dev(&self.dev);
        bio.remap()
    }
}
