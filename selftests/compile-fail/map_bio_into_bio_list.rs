// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0308\]: mismatched types
// expect-output: expected .DmBio<Case>., found .MapBio<'_, Case>.

//! A `BioList` holds kept bios (`DmBio`), not the bio of a `map` call: keep
//! it first (`MapBio::keep`).

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");

cf_target! {
    name: "cf_map_bio_into_bio_list",
    kind: kept,

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        self.kept.with(|list| list.push(bio)); //~ ERROR
        MapResult::submitted()
    }
}
