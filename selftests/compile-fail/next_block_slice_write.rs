// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0608\]: cannot index into a value of type

//! `CompletedBio::next_block` hands over a bio's data as a `BioData`, not a
//! `&mut [u8]`: the pages may be user memory written concurrently, which a
//! Rust slice must never see; the data is read and written by copies only.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");
use dm::{completion::CompletedBio, BlkStatus};

cf_target! {
    name: "cf_next_block_slice_write",
    kind: completion,
}

impl Case {
    fn completed(&self, bio: &mut CompletedBio<'_>) -> BlkStatus {
        match bio.next_block(512, |data| {
            data[0] = 1; //~ ERROR
        }) {
            Ok(()) => BlkStatus::OK,
            Err(_) => BlkStatus::IOERR,
        }
    }
}
