// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error: lifetime may not live long enough
// expect-output: the struct .MapResult<'m>. is invariant over the parameter .'m.

//! The bio of one `map` call cannot make the result of another: `MapBio<'a>`
//! only gives a `MapResult<'a>` (the brand is invariant).

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");

cf_target! {
    name: "cf_map_result_of_other_call",

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        forward(bio)
    }
}

/// Gives back the bio of call `'a` as the result of call `'b`.
fn forward<'a, 'b>(bio: MapBio<'a, Case>) -> MapResult<'b> {
    bio.remap() //~ ERROR
}
