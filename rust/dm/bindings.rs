// SPDX-License-Identifier: GPL-2.0

//! Raw device-mapper bindings.
//!
//! `bindings_generated.rs` is written by Kbuild: bindgen runs on
//! `bindings_helper.h` with the kernel's own C flags and generates only the
//! device-mapper items and our C helpers (`rdm_*`); every other C type comes
//! from `kernel::bindings`, imported below, so both agree on one Rust type per
//! C type. Only the abstraction (this `dm` module) uses these.

#![allow(
    dead_code,
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    improper_ctypes,
    unreachable_pub,
    unsafe_op_in_unsafe_fn,
    unknown_lints,
    unnecessary_transmutes,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]

#[allow(unused_imports)]
pub(crate) use kernel::bindings::*;

include!("bindings_generated.rs");
