// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0599\]: no method named .accept_partial. found for struct .(dm::)?DmBio

//! Only the bio of the current `map` call can be shortened
//! (`dm_accept_partial_bio()`): a kept `DmBio` has no `accept_partial`.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");

cf_target! {
    name: "cf_accept_partial_kept",

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        let mut kept = bio.keep();
        let _ = kept.accept_partial(8); //~ ERROR
        kept.submit();
        MapResult::submitted()
    }
}
