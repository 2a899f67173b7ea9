// SPDX-License-Identifier: GPL-2.0

//! On-disk bitsets: an array of 64-bit words, with one word cached in core.
//!
//! C header: [`drivers/md/persistent-data/dm-bitset.h`](srctree/drivers/md/persistent-data/dm-bitset.h)

use super::{bindings, might_sleep, new_root, BlockNr, TransactionManager};
use kernel::{
    error::{code::*, to_result},
    prelude::*,
};

/// An on-disk bitset (`struct dm_disk_bitset`), identified by its root,
/// with its cached word. Every operation names the transaction manager it
/// works in: the one it was created for (`EINVAL` for another).
///
/// The C struct refers to itself; that pointer is refreshed before every
/// call, so the Rust value may move.
///
/// # Context
///
/// Every operation may sleep; [`DiskBitset::new`] does not.
///
/// # Invariants
///
/// `info` was initialised by `dm_disk_bitset_init()` for the transaction
/// manager `info.array_info.btree_info.tm`.
pub struct DiskBitset {
    info: bindings::dm_disk_bitset,
}

// SAFETY: Plain data (the cached word and C pointers only used during calls
// that borrow the transaction manager).
unsafe impl Send for DiskBitset {}

impl DiskBitset {
    /// Bitset operations on `tm`'s metadata.
    ///
    /// # Context
    ///
    /// Any.
    pub fn new(tm: &TransactionManager) -> Self {
        let mut info = bindings::dm_disk_bitset::default();
        // SAFETY: `tm` is live; `info` is ours to initialise.
        unsafe { bindings::dm_disk_bitset_init(tm.as_raw(), &mut info) };
        // INVARIANT: initialised for `tm`.
        Self { info }
    }

    /// The C info for a call on `tm`, which the caller borrows (mutably if
    /// the call may write) for the whole call.
    fn info(&mut self, tm: &TransactionManager) -> Result<*mut bindings::dm_disk_bitset> {
        // (`dm_array_info_init()` sets only the btree's `tm`; dm-array uses
        // that one.)
        if self.info.array_info.btree_info.tm != tm.as_raw() {
            return Err(EINVAL);
        }
        // `dm_array_info_init()` makes the array's btree callbacks point at
        // the array info itself; `self` may have moved since.
        self.info.array_info.btree_info.value_type.context =
            core::ptr::addr_of_mut!(self.info.array_info).cast();
        Ok(&mut self.info)
    }

    /// A new, empty bitset; returns its root.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn empty(&mut self, tm: &mut TransactionManager) -> Result<BlockNr> {
        might_sleep();
        let info = self.info(tm)?;
        // SAFETY: `info` is initialised for `tm`, borrowed mutably.
        new_root(0, |r| unsafe { bindings::dm_bitset_empty(info, r) })
    }

    /// Resizes the bitset at `root` from `old` to `new` bits, new bits set to
    /// `default`; returns the new root.
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
        default: bool,
    ) -> Result<BlockNr> {
        might_sleep();
        let info = self.info(tm)?;
        // SAFETY: As in `empty`.
        new_root(root, |r| unsafe {
            bindings::dm_bitset_resize(info, root, old, new, default, r)
        })
    }

    /// Sets bit `i`; returns the new root.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn set_bit(
        &mut self,
        tm: &mut TransactionManager,
        root: BlockNr,
        i: u32,
    ) -> Result<BlockNr> {
        might_sleep();
        let info = self.info(tm)?;
        // SAFETY: As in `empty`.
        new_root(root, |r| unsafe {
            bindings::dm_bitset_set_bit(info, root, i, r)
        })
    }

    /// Clears bit `i`; returns the new root.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn clear_bit(
        &mut self,
        tm: &mut TransactionManager,
        root: BlockNr,
        i: u32,
    ) -> Result<BlockNr> {
        might_sleep();
        let info = self.info(tm)?;
        // SAFETY: As in `empty`.
        new_root(root, |r| unsafe {
            bindings::dm_bitset_clear_bit(info, root, i, r)
        })
    }

    /// Tests bit `i`; returns it and the (possibly new) root: moving the
    /// cached word writes the previous one back.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn test_bit(
        &mut self,
        tm: &mut TransactionManager,
        root: BlockNr,
        i: u32,
    ) -> Result<(bool, BlockNr)> {
        might_sleep();
        let info = self.info(tm)?;
        let mut v = false;
        // SAFETY: As in `empty`.
        let r = new_root(root, |r| unsafe {
            bindings::dm_bitset_test_bit(info, root, i, r, &mut v)
        })?;
        Ok((v, r))
    }

    /// Writes out the cached word; returns the new root.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn flush(&mut self, tm: &mut TransactionManager, root: BlockNr) -> Result<BlockNr> {
        might_sleep();
        let info = self.info(tm)?;
        // SAFETY: As in `empty`.
        new_root(root, |r| unsafe {
            bindings::dm_bitset_flush(info, root, r)
        })
    }

    /// Deletes the bitset at `root`.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn del(&mut self, tm: &mut TransactionManager, root: BlockNr) -> Result {
        might_sleep();
        let info = self.info(tm)?;
        // SAFETY: As in `empty`.
        to_result(unsafe { bindings::dm_bitset_del(info, root) })
    }

    /// Calls `f(i, bit)` for the bits `0..n` of the bitset at `root`, in
    /// order, walking its blocks with a cursor (`dm_bitset_cursor_*`).
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn walk(
        &mut self,
        tm: &mut TransactionManager,
        root: BlockNr,
        n: u32,
        mut f: impl FnMut(u32, bool),
    ) -> Result {
        might_sleep();
        if n == 0 {
            return Ok(());
        }
        let info = self.info(tm)?;
        let mut c = bindings::dm_bitset_cursor::default();
        // SAFETY: `info` is initialised for `tm`, borrowed mutably; it is
        // not moved while the cursor lives (`&mut self` is held).
        to_result(unsafe { bindings::dm_bitset_cursor_begin(info, root, n, &mut c) })?;
        let mut r = Ok(());
        for i in 0..n {
            // SAFETY: The cursor was begun and is not past its end.
            f(i, unsafe { bindings::dm_bitset_cursor_get_value(&mut c) });
            if i + 1 == n {
                break;
            }
            // SAFETY: As above.
            if let Err(e) = to_result(unsafe { bindings::dm_bitset_cursor_next(&mut c) }) {
                r = Err(e);
                break;
            }
        }
        // SAFETY: Ends the cursor begun above.
        unsafe { bindings::dm_bitset_cursor_end(&mut c) };
        r
    }
}
