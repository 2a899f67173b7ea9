// SPDX-License-Identifier: GPL-2.0

//! On-disk btrees with 64-bit keys and fixed-size values.
//!
//! C header: [`drivers/md/persistent-data/dm-btree.h`](srctree/drivers/md/persistent-data/dm-btree.h)

use super::{bindings, found, might_sleep, new_root, BlockNr, DiskBitset, TransactionManager};
use core::marker::PhantomData;
use kernel::{
    error::{code::*, to_result},
    prelude::*,
};

/// The largest value a [`Btree`] may hold, in bytes: values are copied out
/// of their node into a buffer of this size for [`BtreeValue::inc`] and
/// [`BtreeValue::dec`].
pub const MAX_VALUE_SIZE: usize = 64;

/// The values of a [`Btree`]: their size and what a value owns on disk.
///
/// # Context
///
/// `inc` and `dec` are called by persistent-data during an operation of the
/// btree, in its context (process context, may sleep).
pub trait BtreeValue: 'static {
    /// Size of a value in bytes, at most [`MAX_VALUE_SIZE`].
    const SIZE: u32;
    /// The btree copied `value` (e.g. take a reference on what it points at).
    fn inc(ctx: &mut ValueContext<'_>, value: &[u8]);
    /// The btree deleted `value` (e.g. free what it points at).
    fn dec(ctx: &mut ValueContext<'_>, value: &[u8]);
}

/// What [`BtreeValue::inc`] and [`BtreeValue::dec`] may do to the metadata
/// while persistent-data is in the middle of an operation of the btree:
/// change reference counts, delete what a value owns.
///
/// Not a `&mut TransactionManager`: with one, the callback could swap the
/// transaction manager out (`core::mem::replace`) and drop it under the
/// operation in progress, or lock blocks the operation holds.
///
/// # Context
///
/// May sleep, as the operation it is called from.
pub struct ValueContext<'a> {
    tm: &'a mut TransactionManager,
}

impl ValueContext<'_> {
    /// Takes a reference on block `b` through the transaction manager
    /// (`dm_tm_inc()`).
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn tm_inc(&mut self, b: BlockNr) {
        self.tm.inc(b);
    }

    /// Takes a reference on block `b` in the space map.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn sm_inc(&mut self, b: BlockNr) -> Result {
        self.tm.sm_inc(b)
    }

    /// Drops a reference on block `b` in the space map.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn sm_dec(&mut self, b: BlockNr) -> Result {
        self.tm.sm_dec(b)
    }

    /// Deletes the on-disk bitset at `root` (`dm_bitset_del()`).
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn del_bitset(&mut self, root: BlockNr) -> Result {
        DiskBitset::new(self.tm).del(self.tm, root)
    }
}

/// A single-level on-disk btree with `u64` keys (`struct dm_btree_info`),
/// identified by its root. Every operation names the transaction manager it
/// works in: the one it was created for (`EINVAL` for another).
///
/// # Context
///
/// Every operation may sleep; [`Btree::new`] does not.
///
/// # Invariants
///
/// - `info.tm` is the transaction manager the btree was created for;
///   values are `V::SIZE` bytes, at most [`MAX_VALUE_SIZE`].
/// - During an operation that may write, the value type's context points at
///   the `&mut TransactionManager` the operation borrows for the whole call;
///   during the others it is null (they call neither `inc` nor `dec`).
pub struct Btree<V: BtreeValue> {
    info: bindings::dm_btree_info,
    _v: PhantomData<V>,
}

// SAFETY: Plain data, as `DiskBitset`.
unsafe impl<V: BtreeValue> Send for Btree<V> {}

impl<V: BtreeValue> Btree<V> {
    /// Refuses, at build time, values larger than [`MAX_VALUE_SIZE`].
    const SIZE_OK: () = assert!(
        V::SIZE as usize <= MAX_VALUE_SIZE,
        "btree values are at most MAX_VALUE_SIZE bytes"
    );

    /// Btree operations on `tm`'s metadata.
    ///
    /// # Context
    ///
    /// Any.
    pub fn new(tm: &TransactionManager) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::SIZE_OK;
        let info = bindings::dm_btree_info {
            tm: tm.as_raw(),
            levels: 1,
            value_type: bindings::dm_btree_value_type {
                context: core::ptr::null_mut(),
                size: V::SIZE,
                inc: Some(Self::inc_values),
                dec: Some(Self::dec_values),
                equal: Some(Self::equal_values),
            },
        };
        // INVARIANT: for `tm`; the size is checked above; the context null.
        Self {
            info,
            _v: PhantomData,
        }
    }

    /// The C info for an operation that may write, on `tm`, which the
    /// caller borrows mutably for the whole call.
    fn info_mut(&mut self, tm: &mut TransactionManager) -> Result<*mut bindings::dm_btree_info> {
        if self.info.tm != tm.as_raw() {
            return Err(EINVAL);
        }
        // INVARIANT: `tm` is borrowed mutably for the whole call; the
        // caller does not use it until the call returns.
        self.info.value_type.context = core::ptr::from_mut(tm).cast();
        Ok(&mut self.info)
    }

    /// The C info for a lookup (no `inc` or `dec`), on `tm`, which the caller
    /// borrows for the whole call.
    fn info(&mut self, tm: &TransactionManager) -> Result<*mut bindings::dm_btree_info> {
        if self.info.tm != tm.as_raw() {
            return Err(EINVAL);
        }
        // INVARIANT: no context for calls that must not change anything.
        self.info.value_type.context = core::ptr::null_mut();
        Ok(&mut self.info)
    }

    /// Calls `f` on each of `count` values at `values`, with the
    /// transaction manager of the operation in progress.
    ///
    /// # Safety
    ///
    /// `ctx` must be the context of an operation in progress (see
    /// invariants) and `values` hold `count` values of `V::SIZE` bytes.
    unsafe fn each(
        ctx: *mut core::ffi::c_void,
        values: *const core::ffi::c_void,
        count: u32,
        f: fn(&mut ValueContext<'_>, &[u8]),
    ) {
        if ctx.is_null() {
            return;
        }
        // SAFETY: The context is the `&mut TransactionManager` that the
        // operation in progress borrows and does not use until the call
        // returns (invariant): this is a reborrow of it, the only live one.
        // No `Block` is alive (it would borrow the same manager). The
        // callback only gets a `ValueContext`, which cannot move it.
        let tm = unsafe { &mut *ctx.cast::<TransactionManager>() };
        let mut vc = ValueContext { tm };
        let size = V::SIZE as usize;
        let mut value = [0u8; MAX_VALUE_SIZE];
        for i in 0..count as usize {
            // SAFETY: `values` holds `count` values of `size` bytes, and
            // `value` has room for one (`SIZE_OK`). They live in a block
            // persistent-data holds, which `f` may lock and change: it gets
            // a copy, so no reference into the block outlives this read.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    values.cast::<u8>().add(i * size),
                    value.as_mut_ptr(),
                    size,
                )
            };
            f(&mut vc, &value[..size]);
        }
    }

    /// # Safety
    ///
    /// Called by persistent-data during an operation of this btree.
    unsafe extern "C" fn inc_values(
        ctx: *mut core::ffi::c_void,
        values: *const core::ffi::c_void,
        count: core::ffi::c_uint,
    ) {
        // SAFETY: Guaranteed by the caller.
        unsafe { Self::each(ctx, values, count, V::inc) };
    }

    /// # Safety
    ///
    /// Called by persistent-data during an operation of this btree.
    unsafe extern "C" fn dec_values(
        ctx: *mut core::ffi::c_void,
        values: *const core::ffi::c_void,
        count: core::ffi::c_uint,
    ) {
        // SAFETY: Guaranteed by the caller.
        unsafe { Self::each(ctx, values, count, V::dec) };
    }

    /// # Safety
    ///
    /// Called by persistent-data with two values of `V::SIZE` bytes.
    unsafe extern "C" fn equal_values(
        _ctx: *mut core::ffi::c_void,
        a: *const core::ffi::c_void,
        b: *const core::ffi::c_void,
    ) -> core::ffi::c_int {
        // SAFETY: Both point at `V::SIZE` bytes, which nothing writes during
        // this comparison (no Rust code runs in between).
        let (a, b) = unsafe {
            (
                core::slice::from_raw_parts(a.cast::<u8>(), V::SIZE as usize),
                core::slice::from_raw_parts(b.cast::<u8>(), V::SIZE as usize),
            )
        };
        core::ffi::c_int::from(a == b)
    }

    /// A new, empty btree; returns its root.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn empty(&mut self, tm: &mut TransactionManager) -> Result<BlockNr> {
        might_sleep();
        let info = self.info_mut(tm)?;
        // SAFETY: `info` is set up for `tm`, borrowed mutably (invariant).
        new_root(0, |r| unsafe { bindings::dm_btree_empty(info, r) })
    }

    /// Inserts (or replaces) `key` -> `value`; returns the new root.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn insert(
        &mut self,
        tm: &mut TransactionManager,
        root: BlockNr,
        key: u64,
        value: &[u8],
    ) -> Result<BlockNr> {
        might_sleep();
        if value.len() != V::SIZE as usize {
            return Err(EINVAL);
        }
        let mut k = key;
        let info = self.info_mut(tm)?;
        // SAFETY: As in `empty`; `value` has the value size (copied).
        new_root(root, |r| unsafe {
            bindings::dm_btree_insert(info, root, &mut k, value.as_ptr().cast_mut().cast(), r)
        })
    }

    /// Removes `key`; returns the new root.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn remove(
        &mut self,
        tm: &mut TransactionManager,
        root: BlockNr,
        key: u64,
    ) -> Result<BlockNr> {
        might_sleep();
        let mut k = key;
        let info = self.info_mut(tm)?;
        // SAFETY: As in `empty`.
        new_root(root, |r| unsafe {
            bindings::dm_btree_remove(info, root, &mut k, r)
        })
    }

    /// Looks `key` up into `out`; `Ok(false)` if absent.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn lookup(
        &mut self,
        tm: &TransactionManager,
        root: BlockNr,
        key: u64,
        out: &mut [u8],
    ) -> Result<bool> {
        might_sleep();
        if out.len() != V::SIZE as usize {
            return Err(EINVAL);
        }
        let mut k = key;
        let info = self.info(tm)?;
        // SAFETY: `info` is set up for `tm`, borrowed for the call, which
        // only reads; `out` has the value size.
        found(unsafe { bindings::dm_btree_lookup(info, root, &mut k, out.as_mut_ptr().cast()) })
    }

    /// The lowest key, or `None` for an empty tree.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn lowest_key(&mut self, tm: &TransactionManager, root: BlockNr) -> Result<Option<u64>> {
        might_sleep();
        let mut k = 0;
        let info = self.info(tm)?;
        // SAFETY: As in `lookup`.
        let r = unsafe { bindings::dm_btree_find_lowest_key(info, root, &mut k) };
        Ok(found(r)?.then_some(k))
    }

    /// Deletes the whole tree at `root`.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn del(&mut self, tm: &mut TransactionManager, root: BlockNr) -> Result {
        might_sleep();
        let info = self.info_mut(tm)?;
        // SAFETY: As in `empty`.
        to_result(unsafe { bindings::dm_btree_del(info, root) })
    }
}
