// SPDX-License-Identifier: GPL-2.0

//! The transaction manager: copy-on-write (shadowing) of metadata blocks and
//! the two-phase commit, with its metadata space map.
//!
//! C header: [`drivers/md/persistent-data/dm-transaction-manager.h`](srctree/drivers/md/persistent-data/dm-transaction-manager.h)

use super::{bindings, might_sleep, Block, BlockManager, BlockNr, BlockValidator, Validator};
use core::ptr::NonNull;
use kernel::{
    error::{code::*, to_result},
    prelude::*,
};

/// A transaction manager with its metadata space map, owning its block
/// manager.
///
/// Everything that changes the metadata or locks a block takes `&mut self`
/// (see the borrowing rules in [`super`]).
///
/// # Context
///
/// Every method may sleep unless it says otherwise; so does dropping it.
///
/// # Invariants
///
/// `tm` and `sm` are live, created together over `bm`, and owned.
pub struct TransactionManager {
    tm: NonNull<bindings::dm_transaction_manager>,
    sm: NonNull<bindings::dm_space_map>,
    // Dropped after `tm` and `sm` (see `drop`).
    bm: BlockManager,
}

// SAFETY: May move between threads; it is not `Sync`, so one thread at a time
// uses it (persistent-data is not thread-safe).
unsafe impl Send for TransactionManager {}

impl Drop for TransactionManager {
    fn drop(&mut self) {
        might_sleep();
        // SAFETY: Both are live and owned (invariant); every lock and
        // operation borrowed `self` and is over.
        unsafe {
            bindings::rdm_dm_sm_destroy(self.sm.as_ptr());
            bindings::dm_tm_destroy(self.tm.as_ptr());
        }
    }
}

impl TransactionManager {
    /// Formats: a new, empty transaction with a fresh space map, whose
    /// superblock will be at `sb`.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn create(bm: BlockManager, sb: BlockNr) -> Result<Self> {
        might_sleep();
        let (mut tm, mut sm) = (core::ptr::null_mut(), core::ptr::null_mut());
        // SAFETY: `bm` is live; the out-pointers are valid.
        to_result(unsafe { bindings::dm_tm_create_with_sm(bm.as_raw(), sb, &mut tm, &mut sm) })?;
        Self::wrap(bm, tm, sm)
    }

    /// Opens the committed transaction whose space map root (`sm_root`, as
    /// stored in the superblock at `sb`) is given.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn open(bm: BlockManager, sb: BlockNr, sm_root: &[u8]) -> Result<Self> {
        might_sleep();
        let (mut tm, mut sm) = (core::ptr::null_mut(), core::ptr::null_mut());
        // SAFETY: `bm` is live; `sm_root` is valid for its length (the callee
        // only reads it); the out-pointers are valid.
        to_result(unsafe {
            bindings::dm_tm_open_with_sm(
                bm.as_raw(),
                sb,
                sm_root.as_ptr().cast_mut().cast(),
                sm_root.len(),
                &mut tm,
                &mut sm,
            )
        })?;
        Self::wrap(bm, tm, sm)
    }

    fn wrap(
        bm: BlockManager,
        tm: *mut bindings::dm_transaction_manager,
        sm: *mut bindings::dm_space_map,
    ) -> Result<Self> {
        match (NonNull::new(tm), NonNull::new(sm)) {
            // INVARIANT: just created over `bm`.
            (Some(tm), Some(sm)) => Ok(Self { tm, sm, bm }),
            _ => Err(EINVAL),
        }
    }

    pub(super) fn as_raw(&self) -> *mut bindings::dm_transaction_manager {
        self.tm.as_ptr()
    }

    pub(super) fn sm_raw(&self) -> *mut bindings::dm_space_map {
        self.sm.as_ptr()
    }

    /// The block manager, for its flags (locking goes through `self`).
    ///
    /// # Context
    ///
    /// Any.
    pub fn bm(&self) -> &BlockManager {
        &self.bm
    }

    /// The size of a metadata block in bytes.
    ///
    /// # Context
    ///
    /// Any.
    pub fn block_size(&self) -> usize {
        self.bm.block_size()
    }

    /// First phase of a commit: writes out everything but the superblock.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn pre_commit(&mut self) -> Result {
        might_sleep();
        // SAFETY: `tm` is live; `&mut self`: no `Block` is alive.
        to_result(unsafe { bindings::dm_tm_pre_commit(self.as_raw()) })
    }

    /// Second phase of a commit, step one: write-locks the superblock at `b`
    /// (checked with `v`), for the caller to fill in and
    /// [`CommitBlock::commit`].
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn lock_superblock<V: BlockValidator>(
        &mut self,
        b: BlockNr,
        v: &'static Validator<V>,
    ) -> Result<CommitBlock<'_>> {
        let tm = self.tm;
        let block = self.bm.write_lock(b, v)?;
        Ok(CommitBlock { block, tm })
    }

    /// As [`Self::lock_superblock`], with the block zeroed instead of read
    /// (formatting).
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn lock_superblock_zero<V: BlockValidator>(
        &mut self,
        b: BlockNr,
        v: &'static Validator<V>,
    ) -> Result<CommitBlock<'_>> {
        let tm = self.tm;
        let block = self.bm.write_lock_zero(b, v)?;
        Ok(CommitBlock { block, tm })
    }

    /// Takes a reference on block `b` through the transaction manager.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn inc(&mut self, b: BlockNr) {
        might_sleep();
        // SAFETY: `tm` is live.
        unsafe { bindings::dm_tm_inc(self.as_raw(), b) };
    }

    /// Shadows (copy-on-write) block `b`: returns the write-locked copy and
    /// whether the children of the copy need their counts incremented.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn shadow_block<V: BlockValidator>(
        &mut self,
        b: BlockNr,
        v: &'static Validator<V>,
    ) -> Result<(Block<'_>, bool)> {
        might_sleep();
        let mut blk = core::ptr::null_mut();
        let mut inc = 0;
        // SAFETY: `tm` is live; out-pointers valid.
        to_result(unsafe {
            bindings::dm_tm_shadow_block(self.as_raw(), b, v.as_raw(), &mut blk, &mut inc)
        })?;
        // SAFETY: Just write-locked through `tm`; the result borrows `self`
        // mutably.
        let blk = unsafe { Block::new(blk, Some(self.tm), true, self.block_size())? };
        Ok((blk, inc != 0))
    }

    /// Read-locks block `b` through the transaction manager.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn read_lock<V: BlockValidator>(
        &mut self,
        b: BlockNr,
        v: &'static Validator<V>,
    ) -> Result<Block<'_>> {
        might_sleep();
        let mut blk = core::ptr::null_mut();
        // SAFETY: `tm` is live; out-pointer valid.
        to_result(unsafe { bindings::dm_tm_read_lock(self.as_raw(), b, v.as_raw(), &mut blk) })?;
        // SAFETY: Just read-locked through `tm`; the result borrows `self`
        // mutably.
        unsafe { Block::new(blk, Some(self.tm), false, self.block_size()) }
    }
}

/// The superblock of a transaction, write-locked for the second phase of
/// its commit (from [`TransactionManager::lock_superblock`]); unlocked
/// without a commit when dropped.
///
/// # Context
///
/// Its methods and its drop may sleep.
///
/// # Invariants
///
/// `block` is write-locked on the block manager of `tm`, which is live and
/// borrowed mutably for `'a`.
pub struct CommitBlock<'a> {
    block: Block<'a>,
    tm: NonNull<bindings::dm_transaction_manager>,
}

impl CommitBlock<'_> {
    /// The block's number.
    ///
    /// # Context
    ///
    /// Any.
    pub fn location(&self) -> BlockNr {
        self.block.location()
    }

    /// The superblock's contents, to fill in.
    ///
    /// # Context
    ///
    /// Any.
    pub fn data_mut(&mut self) -> &mut [u8] {
        // `block` is write-locked (invariant): this never falls back.
        self.block.data_mut().unwrap_or_default()
    }

    /// Writes the superblock last, after everything else of the transaction
    /// (`dm_tm_commit()`), and unlocks it.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn commit(self) -> Result {
        might_sleep();
        let tm = self.tm;
        let b = self.block.into_raw();
        // SAFETY: `tm` is live and `b` a write-locked block of its block
        // manager (invariant), which the commit unlocks; no other `Block`
        // is alive (the mutable borrow).
        to_result(unsafe { bindings::dm_tm_commit(tm.as_ptr(), b) })
    }
}
