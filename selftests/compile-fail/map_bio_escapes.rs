// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0521\]: borrowed data escapes outside of method
// expect-output: .bio. escapes the method body here
// expect-output: requires that .'m. must outlive .'static.

//! The bio of a `map` call cannot be kept beyond the call as a `MapBio`
//! (here in a leaked, `'static` holder): its lifetime is the call's.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");

cf_target! {
    name: "cf_map_bio_escapes",

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        keep_for_later(bio); //~ ERROR
        MapResult::submitted()
    }
}

/// Keeps a bio for a later call: in a holder that lives for ever (leaked).
fn keep_for_later(bio: MapBio<'static, Case>) {
    if let Ok(holder) = KBox::new(bio, GFP_ATOMIC) {
        KBox::leak(holder);
    }
}
