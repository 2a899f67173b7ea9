// SPDX-License-Identifier: GPL-2.0

//! On-disk arrays of fixed-size values: a btree of array blocks.
//!
//! C header: [`drivers/md/persistent-data/dm-array.h`](srctree/drivers/md/persistent-data/dm-array.h)

use super::{bindings, might_sleep, new_root, BlockNr, TransactionManager};
use kernel::{
    error::{code::*, to_result},
    prelude::*,
};

/// `sizeof(struct array_block)`, the header of an array block in
/// `dm-array.c` (packed: `__le32 csum, max_entries, nr_entries, value_size;
/// __le64 blocknr;`).
const ARRAY_BLOCK_HEADER: usize = 24;

/// Whether values of `value_size` bytes fit an array block of `block_size`
/// bytes: dm-array's `calc_max_entries()`, `(block_size - header) /
/// value_size`, is then at least one, so neither it nor the divisions by
/// `max_entries` that follow divide by zero.
fn fits(value_size: u32, block_size: usize) -> bool {
    value_size != 0 && value_size as usize <= block_size.saturating_sub(ARRAY_BLOCK_HEADER)
}

/// An on-disk array of fixed-size values without references
/// (`struct dm_array_info`), identified by its root. Every operation names
/// the transaction manager it works in: the one it was created for
/// (`EINVAL` for another).
///
/// # Context
///
/// Every operation may sleep; [`Array::new`] does not.
///
/// # Invariants
///
/// `info` was initialised by `dm_array_info_init()` for the transaction
/// manager `info.btree_info.tm`, with values of `info.value_type.size`
/// bytes, which fit a block of that transaction manager (see `fits`).
pub struct Array {
    info: bindings::dm_array_info,
}

// SAFETY: Plain data, as `DiskBitset`.
unsafe impl Send for Array {}

impl Array {
    /// Array operations on `tm`'s metadata, for values of `size` bytes;
    /// `EINVAL` if such a value does not fit a metadata block.
    ///
    /// # Context
    ///
    /// Any.
    pub fn new(tm: &TransactionManager, size: u32) -> Result<Self> {
        if !fits(size, tm.block_size()) {
            return Err(EINVAL);
        }
        let mut vt = bindings::dm_btree_value_type {
            context: core::ptr::null_mut(),
            size,
            inc: None,
            dec: None,
            equal: None,
        };
        let mut info = bindings::dm_array_info::default();
        // SAFETY: `tm` is live; `vt` is copied by the callee.
        unsafe { bindings::dm_array_info_init(&mut info, tm.as_raw(), &mut vt) };
        // INVARIANT: initialised for `tm`, with a size checked above.
        Ok(Self { info })
    }

    /// The C info for a call on `tm`, which the caller borrows (mutably if
    /// the call may write) for the whole call.
    fn info(&mut self, tm: &TransactionManager) -> Result<*mut bindings::dm_array_info> {
        // The same transaction manager, hence the block size checked in
        // `new` (checked again: a new one may have the old one's address).
        // (`dm_array_info_init()` sets only the btree's `tm`; dm-array uses
        // that one.)
        if self.info.btree_info.tm != tm.as_raw()
            || !fits(self.info.value_type.size, tm.block_size())
        {
            return Err(EINVAL);
        }
        // `dm_array_info_init()` points the btree callbacks at the info
        // itself; `self` may have moved since.
        self.info.btree_info.value_type.context = core::ptr::addr_of_mut!(self.info).cast();
        Ok(&mut self.info)
    }

    fn check_size(&self, n: usize) -> Result {
        if n != self.info.value_type.size as usize {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// A new, empty array; returns its root.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn empty(&mut self, tm: &mut TransactionManager) -> Result<BlockNr> {
        might_sleep();
        let info = self.info(tm)?;
        // SAFETY: `info` is initialised for `tm`, borrowed mutably.
        new_root(0, |r| unsafe { bindings::dm_array_empty(info, r) })
    }

    /// Resizes from `old` to `new` entries, new ones set to `value`; returns
    /// the new root.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn resize(
        &mut self,
        tm: &mut TransactionManager,
        root: BlockNr,
        old: u32,
        new: u32,
        value: &[u8],
    ) -> Result<BlockNr> {
        might_sleep();
        self.check_size(value.len())?;
        let info = self.info(tm)?;
        // SAFETY: As in `empty`; `value` has the value size (only read).
        new_root(root, |r| unsafe {
            bindings::dm_array_resize(info, root, old, new, value.as_ptr().cast_mut().cast(), r)
        })
    }

    /// Sets entry `i` to `value`; returns the new root.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn set(
        &mut self,
        tm: &mut TransactionManager,
        root: BlockNr,
        i: u32,
        value: &[u8],
    ) -> Result<BlockNr> {
        might_sleep();
        self.check_size(value.len())?;
        let info = self.info(tm)?;
        // SAFETY: As in `empty`; `value` has the value size (only read).
        new_root(root, |r| unsafe {
            bindings::dm_array_set_value(info, root, i, value.as_ptr().cast_mut().cast(), r)
        })
    }

    /// Reads entry `i` into `out`.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn get(
        &mut self,
        tm: &TransactionManager,
        root: BlockNr,
        i: u32,
        out: &mut [u8],
    ) -> Result {
        might_sleep();
        self.check_size(out.len())?;
        let info = self.info(tm)?;
        // SAFETY: `info` is initialised for `tm`, borrowed for the call,
        // which only reads; `out` has the value size.
        to_result(unsafe { bindings::dm_array_get_value(info, root, i, out.as_mut_ptr().cast()) })
    }

    /// Deletes the array at `root`.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn del(&mut self, tm: &mut TransactionManager, root: BlockNr) -> Result {
        might_sleep();
        let info = self.info(tm)?;
        // SAFETY: As in `empty`.
        to_result(unsafe { bindings::dm_array_del(info, root) })
    }
}
