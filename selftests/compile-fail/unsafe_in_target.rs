// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error: usage of an .unsafe. block

//! A target crate denies `unsafe` (`#![deny(unsafe_code)]`, lifted for the
//! abstraction `mod dm` alone): here inside a `#[vtable]` impl.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");

cf_target! {
    name: "cf_unsafe_in_target",

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        let sector = bio.sector();
        // SAFETY: none: a target may not say so.
        let sector = unsafe { core::ptr::read(&sector) }; //~ ERROR
        bio.set_sector(sector);
        bio.remap()
    }
}
