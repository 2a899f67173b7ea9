// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0599\]: no method named .remap. found for struct .(dm::)?DmBio

//! A bio kept by an earlier `map` call cannot be given back to dm core as
//! the bio of this call: a kept `DmBio` has no `remap`.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");

cf_target! {
    name: "cf_map_returns_kept_bio",
    kind: kept,

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        match self.kept.with(|list| list.pop()) {
            Some(old) => {
                let new = bio.keep();
                self.kept.with(|list| list.push(new));
                old.remap() //~ ERROR
            }
            None => bio.remap(),
        }
    }
}
