// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0624\]: method .set_error. is private

//! `Target::set_error` (the constructor's failure reason, which dm core reads
//! without a lock) is internal to the abstraction: a target reports through
//! `Args::fail`.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");

cf_target! {
    name: "cf_set_error_from_map",

    fn map<'m>(&self, target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        target.set_error(c_str!("no")); //~ ERROR
        bio.set_dev(&self.dev);
        bio.remap()
    }
}
