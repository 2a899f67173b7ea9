// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error: declaration of a .no_mangle. function

//! `#[no_mangle]` (a symbol that may clash with a C one: unsafe) is denied
//! in a target too.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");

cf_target! {
    name: "cf_no_mangle_in_target",
}

/// A function exported under its own name.
#[no_mangle] //~ ERROR
pub extern "C" fn cf_exported() {}
