// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error: implementation of an .unsafe. trait

//! A target cannot declare its own types `Send` or `Sync` (`unsafe impl`):
//! `#![deny(unsafe_code)]` covers unsafe trait implementations too.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");

cf_target! {
    name: "cf_unsafe_impl_in_target",
}

/// A raw pointer that the target would like to share between CPUs.
pub struct Shared(*mut u8);

// SAFETY: none: a target may not say so.
unsafe impl Send for Shared {} //~ ERROR
