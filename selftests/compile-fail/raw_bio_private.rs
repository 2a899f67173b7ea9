// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0624\]: method .as_raw. is private

//! The raw `struct bio` pointer of a `MapBio` is the abstraction's alone
//! (`pub(super)`, as every internal item of rust/dm): a target gets none.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");

cf_target! {
    name: "cf_raw_bio_private",

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        let _raw = bio.as_raw(); //~ ERROR
        bio.set_dev(&self.dev);
        bio.remap()
    }
}
