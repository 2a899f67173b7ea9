// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0499\]: cannot borrow .\*tm. as mutable more than once at a time
// cfg: dm_persistent_data

//! A write-locked persistent-data block borrows its transaction manager
//! mutably: two write locks at once (of one block: a deadlock in C) do not
//! compile.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");
use dm::pdata::{BlockValidator, TransactionManager, Validator};

cf_target! {
    name: "cf_pdata_two_write_locks",
}

/// Write-locks block 1 twice at once.
pub fn misuse<V: BlockValidator>(tm: &mut TransactionManager, v: &'static Validator<V>) -> Result {
    let (first, _) = tm.shadow_block(1, v)?;
    let (second, _) = tm.shadow_block(1, v)?; //~ ERROR
    drop(second);
    drop(first);
    Ok(())
}
