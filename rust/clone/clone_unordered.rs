// SPDX-License-Identifier: GPL-2.0

//! TEST BUILD ONLY: dm-clone-rs with the metadata committed BEFORE the
//! destination is flushed (`--cfg clone_commit_before_flush`, see
//! `worker.rs`). Exists so that the crash-consistency selftest can show
//! its check fails on exactly the bug the real module avoids. Never load it
//! on data you care about.

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
    name: "dm_clone_rs_unordered",
    description: "TEST ONLY: dm-clone-rs that commits metadata before flushing the destination",
}
