// SPDX-License-Identifier: GPL-2.0

//! persistent-data: the kernel's library for transactional on-disk metadata
//! (block manager, transaction manager with its space map, bitsets, arrays,
//! btrees), as used by dm-thin, dm-cache, dm-era and dm-clone. Its headers
//! live in `drivers/md/persistent-data/` of the kernel tree; the code is the
//! `dm-persistent-data` module. One file here per header:
//! [`block_manager`], [`transaction_manager`], [`space_map`] (the metadata
//! space map, owned by the transaction manager), [`bitset`], [`array`],
//! [`btree`]; and [`superblock`], the superblock header the persistent-data
//! targets share (pure code, no C behind it).
//!
//! Persistent-data is not thread-safe: the types here are `Send` but not
//! `Sync`, so a target keeps its metadata behind a lock. Bitsets, arrays and
//! btrees keep no reference to the transaction manager: each operation
//! borrows it.
//!
//! # Borrowing rules
//!
//! Locks of blocks are no-ops in persistent-data unless the kernel has
//! `CONFIG_DM_DEBUG_BLOCK_MANAGER_LOCKING`, so the borrow checker does their
//! job. Everything that hands out a view of a block's bytes or may change
//! the metadata borrows its manager mutably (`&mut BlockManager` or
//! `&mut TransactionManager`): locking a block, read or write, shadowing,
//! every btree, array or bitset operation that may write, the commit, the
//! space map's reference counts. A [`Block`] keeps that borrow while it
//! lives. So safe code never holds two views of one block of which one is
//! mutable, and never runs an operation that could rewrite a block while a
//! `Block` view of it is alive.
//!
//! Read locks borrow mutably too: dm-bufio writes dirty buffers back, held
//! or not, whenever fetching any buffer crosses its dirty watermark, and the
//! block manager's write callback lets the block's validator seal it (write
//! its checksum) first. A block read-locked after a change in the same
//! transaction could thus change under its `&[u8]` while another block is
//! locked. Only calls that neither lock a block for the caller nor change
//! the metadata (btree lookups, array reads, space map counters) take `&`.
//!
//! # Context
//!
//! Every operation may sleep (metadata I/O, dm-bufio's locks, `GFP_KERNEL`
//! allocations): process context, no spinlock held. Those that call into
//! persistent-data check it with `might_sleep()` on entry.

pub mod array;
pub mod bitset;
pub mod block_manager;
pub mod btree;
pub mod space_map;
pub mod superblock;
pub mod transaction_manager;

pub use array::Array;
pub use bitset::DiskBitset;
pub use block_manager::{
    checksum, Block, BlockManager, BlockValidator, NoValidator, SuperblockFormat,
    SuperblockValidator, Validator,
};
pub use btree::{Btree, BtreeValue, ValueContext};
pub use transaction_manager::{CommitBlock, TransactionManager};

use super::{bindings, context::might_sleep};
use core::ffi::c_int;
use kernel::{error::to_result, prelude::*};

/// The block number of a metadata block.
pub type BlockNr = u64;

// --- Errors: persistent-data's errnos beyond `kernel::error::code` --------

/// `-EILSEQ`: what a [`BlockValidator`] returns for a corrupt block (bad
/// magic or checksum), as persistent-data's own validators do.
///
/// # Context
///
/// Any.
pub fn eilseq() -> Error {
    Error::from_errno(-(bindings::EILSEQ as c_int))
}

/// `-ENODATA`: what btree lookups return when there is no such key.
const ENODATA: c_int = -(bindings::ENODATA as c_int);

/// The result of a lookup: `Ok(true)` found, `Ok(false)` for no such key
/// (`-ENODATA`), or the error.
fn found(r: c_int) -> Result<bool> {
    if r == ENODATA {
        return Ok(false);
    }
    to_result(r)?;
    Ok(true)
}

/// Runs `op`, a persistent-data call that stores the new root of its
/// structure through the pointer it is given, and returns that root.
///
/// The callee may leave the root untouched (e.g. a bitset flush with
/// nothing to flush), so it starts as `root`.
fn new_root(root: BlockNr, op: impl FnOnce(&mut BlockNr) -> c_int) -> Result<BlockNr> {
    let mut r = root;
    to_result(op(&mut r))?;
    Ok(r)
}
