// SPDX-License-Identifier: GPL-2.0

//! Host unit tests: the kernel modules' pure files, compiled with std.

#[path = "../../../rust/dm/parse.rs"]
pub mod parse;

#[path = "../../../rust/dm/emit.rs"]
pub mod emit;

#[path = "../../../rust/linear/mapping.rs"]
pub mod linear_mapping;

#[path = "../../../rust/dm/pdata/superblock.rs"]
pub mod pdata_superblock;

/// The `dm` module as the target crates see it (only its pure parts).
pub mod dm {
    pub use crate::parse;

    /// persistent-data's pure part.
    pub mod pdata {
        pub use crate::pdata_superblock as superblock;
    }
}

#[path = "../../../rust/verity/geometry.rs"]
pub mod verity_geometry;

#[path = "../../../rust/verity/table.rs"]
pub mod verity_table;

#[path = "../../../rust/era/superblock.rs"]
pub mod era_superblock;

#[path = "../../../rust/clone/superblock.rs"]
pub mod clone_superblock;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod clone_tests;

#[cfg(test)]
mod verity_tests;

#[cfg(test)]
mod era_tests;

#[cfg(test)]
mod pdata_tests;
