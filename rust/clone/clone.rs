// SPDX-License-Identifier: GPL-2.0

//! `clone`: dm-clone in Rust.
//!
//! A drop-in for the C target of Linux 6.12 (`drivers/md/dm-clone-target.c`,
//! `dm-clone-metadata.c`): same target name and version, table line,
//! status, messages and on-disk metadata, so either implementation reopens
//! the other's device. It presents a copy of a read-only source device,
//! served from the source until a region has been copied ("hydrated") to
//! the destination, and hydrates in the background.
//!
//! The destination is flushed before every metadata commit, so a region
//! recorded as hydrated always has its data on stable storage.
//!
//! Split like the C twin: the superblock format and region arithmetic
//! (`superblock.rs`), the metadata (`metadata.rs`), region hydration
//! (`hydration.rs`), the worker and commits (`worker.rs`), and the target
//! hooks (`target.rs`).

// No `unsafe` in a target: only the abstraction (`mod dm`) has any.
#![deny(unsafe_code)]
// `CloneCore` has more fields than `pin_init!` expands within the default limit.
#![recursion_limit = "256"]

#[path = "../dm/mod.rs"]
pub mod dm;
mod hydration;
mod hydration_table;
mod metadata;
pub mod superblock;
mod target;
mod worker;

const DM_MSG_PREFIX: &str = "clone";

module_dm_target! {
    type: target::DmClone,
    name: "dm_clone_rs",
    description: "device-mapper clone target, in Rust",
}
