// SPDX-License-Identifier: GPL-2.0

//! Host unit tests: the kernel modules' pure files, compiled with std.

#[path = "../../../rust/dm/parse.rs"]
pub mod parse;

#[path = "../../../rust/dm/emit.rs"]
pub mod emit;

#[path = "../../../rust/linear/mapping.rs"]
pub mod linear_mapping;

#[cfg(test)]
mod tests;
