// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0624\]: associated function `new` is private
// allow-error: ^error\[E0133\]

//! Only the abstraction makes a `Bh` token, for the length of a callback it
//! runs in the BH workqueue: a target cannot make one to call what takes
//! it elsewhere (e.g. `BufioClient::get_bh` while holding a sleeping lock).

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");
use dm::Bh;

cf_target! {
    name: "cf_bh_token_forged",

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        let _bh = Bh::new(); //~ ERROR
        bio.set_dev(&self.dev);
        bio.remap()
    }
}
