// SPDX-License-Identifier: GPL-2.0

//! persistent-data: the kernel's library for transactional on-disk metadata
//! (block manager, transaction manager with its space map, bitsets, arrays,
//! btrees), as used by dm-thin, dm-cache, dm-era and dm-clone. Its headers
//! live in `drivers/md/persistent-data/` of the kernel tree; the code is the
//! `dm-persistent-data` module.
//!
//! Persistent-data is not thread-safe: the types here are `Send` but not
//! `Sync`, so a target keeps its metadata behind a lock. Bitsets, arrays and
//! btrees keep no reference to the transaction manager: each operation
//! borrows it.

use super::{bindings, error::from_err_ptr, Device};
use core::{marker::PhantomData, ptr::NonNull};
use kernel::{
    error::{code::*, to_result},
    prelude::*,
};

/// The block number of a metadata block.
pub type BlockNr = u64;

/// `dm_bm_checksum()`: the crc32c-based checksum of persistent-data blocks.
pub fn checksum(data: &[u8], init_xor: u32) -> u32 {
    // SAFETY: `data` is valid for its length.
    unsafe { bindings::dm_bm_checksum(data.as_ptr().cast(), data.len(), init_xor) }
}

/// Checks and seals metadata blocks of one kind (C's `struct
/// dm_block_validator`), e.g. a superblock with a magic and a checksum.
pub trait BlockValidator: 'static {
    /// Name, for the kernel log.
    const NAME: &'static CStr;
    /// Seals `data` (the block at `location`) before it is written.
    fn prepare_for_write(data: &mut [u8], location: BlockNr);
    /// Checks `data` (the block at `location`) after it is read.
    fn check(data: &[u8], location: BlockNr) -> Result;
}

/// The C validator of a [`BlockValidator`]; keep it in a `static`.
///
/// # Invariants
///
/// `raw` holds `V::NAME` and the trampolines of `V`.
pub struct Validator<V: BlockValidator> {
    raw: bindings::dm_block_validator,
    _v: PhantomData<V>,
}

// SAFETY: The validator is immutable after construction and only read by C.
unsafe impl<V: BlockValidator> Sync for Validator<V> {}

impl<V: BlockValidator> Validator<V> {
    /// The validator of `V`.
    pub const fn new() -> Self {
        Self {
            raw: bindings::dm_block_validator {
                name: V::NAME.as_char_ptr(),
                prepare_for_write: Some(Self::prepare_for_write),
                check: Some(Self::check),
            },
            _v: PhantomData,
        }
    }

    fn as_raw(&'static self) -> *const bindings::dm_block_validator {
        &self.raw
    }

    /// # Safety
    ///
    /// Called by persistent-data with a locked block of `block_size` bytes.
    unsafe extern "C" fn prepare_for_write(
        _v: *const bindings::dm_block_validator,
        b: *mut bindings::dm_block,
        block_size: usize,
    ) {
        // SAFETY: The block is write-locked by the caller and `block_size`
        // bytes long.
        let data = unsafe {
            core::slice::from_raw_parts_mut(bindings::dm_block_data(b).cast(), block_size)
        };
        // SAFETY: `b` is a live block.
        V::prepare_for_write(data, unsafe { bindings::dm_block_location(b) });
    }

    /// # Safety
    ///
    /// Called by persistent-data with a locked block of `block_size` bytes.
    unsafe extern "C" fn check(
        _v: *const bindings::dm_block_validator,
        b: *mut bindings::dm_block,
        block_size: usize,
    ) -> core::ffi::c_int {
        // SAFETY: The block is locked by the caller and `block_size` bytes.
        let data =
            unsafe { core::slice::from_raw_parts(bindings::dm_block_data(b).cast(), block_size) };
        // SAFETY: `b` is a live block.
        match V::check(data, unsafe { bindings::dm_block_location(b) }) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }
}

impl<V: BlockValidator> Default for Validator<V> {
    fn default() -> Self {
        Self::new()
    }
}

fn validator_ptr<V: BlockValidator>(
    v: Option<&'static Validator<V>>,
) -> *const bindings::dm_block_validator {
    v.map_or(core::ptr::null(), |v| v.as_raw())
}

/// A locked metadata block; unlocked on drop.
///
/// # Invariants
///
/// `b` is locked (read or write, as `write` says) through `tm` (or the block
/// manager when `tm` is `None`), for the lifetime `'a` of its owner.
pub struct Block<'a> {
    b: NonNull<bindings::dm_block>,
    tm: Option<NonNull<bindings::dm_transaction_manager>>,
    write: bool,
    size: usize,
    _owner: PhantomData<&'a ()>,
}

impl Block<'_> {
    /// The block's number.
    pub fn location(&self) -> BlockNr {
        // SAFETY: `b` is locked (invariant).
        unsafe { bindings::dm_block_location(self.b.as_ptr()) }
    }

    /// The block's contents.
    pub fn data(&self) -> &[u8] {
        // SAFETY: The lock keeps `size` bytes valid and unchanged by others.
        unsafe {
            core::slice::from_raw_parts(bindings::dm_block_data(self.b.as_ptr()).cast(), self.size)
        }
    }

    /// The block's contents, for a write-locked block.
    pub fn data_mut(&mut self) -> Result<&mut [u8]> {
        if !self.write {
            return Err(EPERM);
        }
        // SAFETY: The write lock gives us exclusive access to `size` bytes.
        Ok(unsafe {
            core::slice::from_raw_parts_mut(
                bindings::dm_block_data(self.b.as_ptr()).cast(),
                self.size,
            )
        })
    }

    fn into_raw(self) -> *mut bindings::dm_block {
        core::mem::ManuallyDrop::new(self).b.as_ptr()
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        // SAFETY: Locked (invariant), unlocked once, by the lock's owner.
        unsafe {
            match self.tm {
                Some(tm) => bindings::dm_tm_unlock(tm.as_ptr(), self.b.as_ptr()),
                None => bindings::dm_bm_unlock(self.b.as_ptr()),
            }
        }
    }
}

/// A block manager: cached, locked access to the blocks of a metadata device.
///
/// # Invariants
///
/// `bm` is live and owned. Its block device is held open by a [`Device`]
/// that outlives it (the owner declares the metadata before its devices).
pub struct BlockManager {
    bm: NonNull<bindings::dm_block_manager>,
    block_size: usize,
}

// SAFETY: A block manager may be used from any thread (one at a time: !Sync).
unsafe impl Send for BlockManager {}

impl BlockManager {
    /// Creates a block manager over `dev` with blocks of `block_size` bytes,
    /// allowing `max_held` blocks locked at once by one thread.
    pub fn new(dev: &Device, block_size: u32, max_held: u32) -> Result<Self> {
        // SAFETY: The device's block device is open (see invariants).
        let bm = from_err_ptr(unsafe {
            bindings::dm_block_manager_create(dev.bdev(), block_size, max_held)
        })?;
        Ok(Self {
            bm: NonNull::new(bm).ok_or(ENOMEM)?,
            block_size: block_size as usize,
        })
    }

    /// Read-locks block `b`, checking it with `v` if given.
    pub fn read_lock<V: BlockValidator>(
        &self,
        b: BlockNr,
        v: Option<&'static Validator<V>>,
    ) -> Result<Block<'_>> {
        let mut blk = core::ptr::null_mut();
        // SAFETY: `bm` is live; `blk` is a valid out-pointer.
        to_result(unsafe {
            bindings::dm_bm_read_lock(self.bm.as_ptr(), b, validator_ptr(v), &mut blk)
        })?;
        self.block(blk, None, false)
    }

    /// Write-locks block `b` with its contents zeroed (no read).
    pub fn write_lock_zero<V: BlockValidator>(
        &self,
        b: BlockNr,
        v: &'static Validator<V>,
    ) -> Result<Block<'_>> {
        let mut blk = core::ptr::null_mut();
        // SAFETY: As in `read_lock`.
        to_result(unsafe {
            bindings::dm_bm_write_lock_zero(self.bm.as_ptr(), b, v.as_raw(), &mut blk)
        })?;
        self.block(blk, None, true)
    }

    /// Write-locks block `b`, checking it with `v`.
    pub fn write_lock<V: BlockValidator>(
        &self,
        b: BlockNr,
        v: &'static Validator<V>,
    ) -> Result<Block<'_>> {
        let mut blk = core::ptr::null_mut();
        // SAFETY: As in `read_lock`.
        to_result(unsafe {
            bindings::dm_bm_write_lock(self.bm.as_ptr(), b, v.as_raw(), &mut blk)
        })?;
        self.block(blk, None, true)
    }

    /// Whether block `b` holds only zeroes (an unformatted device).
    pub fn is_zeroed(&self, b: BlockNr) -> Result<bool> {
        let blk = self.read_lock::<NoValidator>(b, None)?;
        Ok(blk.data().iter().all(|&x| x == 0))
    }

    /// Makes every later write fail (fail mode / read-only metadata).
    pub fn set_read_only(&self) {
        // SAFETY: `bm` is live.
        unsafe { bindings::dm_bm_set_read_only(self.bm.as_ptr()) };
    }

    /// Whether the block manager is read-only.
    pub fn is_read_only(&self) -> bool {
        // SAFETY: `bm` is live.
        unsafe { bindings::dm_bm_is_read_only(self.bm.as_ptr()) }
    }

    fn block(
        &self,
        blk: *mut bindings::dm_block,
        tm: Option<NonNull<bindings::dm_transaction_manager>>,
        write: bool,
    ) -> Result<Block<'_>> {
        // INVARIANT: `blk` was just locked as `write` says.
        Ok(Block {
            b: NonNull::new(blk).ok_or(EIO)?,
            tm,
            write,
            size: self.block_size,
            _owner: PhantomData,
        })
    }
}

impl Drop for BlockManager {
    fn drop(&mut self) {
        // SAFETY: Live and owned; every `Block` borrowed it and is gone.
        unsafe { bindings::dm_block_manager_destroy(self.bm.as_ptr()) };
    }
}

/// No validation (for reading a block that may be unformatted).
pub enum NoValidator {}

impl BlockValidator for NoValidator {
    const NAME: &'static CStr = kernel::c_str!("none");
    fn prepare_for_write(_data: &mut [u8], _location: BlockNr) {}
    fn check(_data: &[u8], _location: BlockNr) -> Result {
        Ok(())
    }
}

/// A transaction manager with its metadata space map, owning its block
/// manager.
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
    pub fn create(bm: BlockManager, sb: BlockNr) -> Result<Self> {
        let (mut tm, mut sm) = (core::ptr::null_mut(), core::ptr::null_mut());
        // SAFETY: `bm` is live; the out-pointers are valid.
        to_result(unsafe { bindings::dm_tm_create_with_sm(bm.bm.as_ptr(), sb, &mut tm, &mut sm) })?;
        Self::wrap(bm, tm, sm)
    }

    /// Opens the committed transaction whose space map root (`sm_root`, as
    /// stored in the superblock at `sb`) is given.
    pub fn open(bm: BlockManager, sb: BlockNr, sm_root: &[u8]) -> Result<Self> {
        let (mut tm, mut sm) = (core::ptr::null_mut(), core::ptr::null_mut());
        // SAFETY: `bm` is live; `sm_root` is valid for its length (the callee
        // only reads it); the out-pointers are valid.
        to_result(unsafe {
            bindings::dm_tm_open_with_sm(
                bm.bm.as_ptr(),
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

    fn tm(&self) -> *mut bindings::dm_transaction_manager {
        self.tm.as_ptr()
    }

    fn sm(&self) -> *mut bindings::dm_space_map {
        self.sm.as_ptr()
    }

    /// The block manager.
    pub fn bm(&self) -> &BlockManager {
        &self.bm
    }

    /// First phase of a commit: writes out everything but the superblock.
    pub fn pre_commit(&self) -> Result {
        // SAFETY: `tm` is live.
        to_result(unsafe { bindings::dm_tm_pre_commit(self.tm()) })
    }

    /// Second phase: writes the (write-locked, filled in) superblock last and
    /// unlocks it.
    pub fn commit(&self, sb: Block<'_>) -> Result {
        let b = sb.into_raw();
        // SAFETY: `b` is a write-locked block of our block manager; the commit
        // unlocks it.
        to_result(unsafe { bindings::dm_tm_commit(self.tm(), b) })
    }

    /// Size of the space map root to store in the superblock.
    pub fn sm_root_size(&self) -> Result<usize> {
        let mut n = 0usize;
        // SAFETY: `sm` is live, `n` a valid out-pointer.
        to_result(unsafe { bindings::rdm_dm_sm_root_size(self.sm(), &mut n) })?;
        Ok(n)
    }

    /// Copies the space map root into `out` (at least [`Self::sm_root_size`]).
    pub fn copy_sm_root(&self, out: &mut [u8]) -> Result {
        let n = self.sm_root_size()?;
        if out.len() < n {
            return Err(EINVAL);
        }
        // SAFETY: `out` has room for `n` bytes.
        to_result(unsafe { bindings::rdm_dm_sm_copy_root(self.sm(), out.as_mut_ptr().cast(), n) })
    }

    /// Number of free blocks in the space map.
    pub fn nr_free(&self) -> Result<BlockNr> {
        let mut n = 0;
        // SAFETY: `sm` is live.
        to_result(unsafe { bindings::rdm_dm_sm_get_nr_free(self.sm(), &mut n) })?;
        Ok(n)
    }

    /// Number of blocks the space map covers.
    pub fn nr_blocks(&self) -> Result<BlockNr> {
        let mut n = 0;
        // SAFETY: `sm` is live.
        to_result(unsafe { bindings::rdm_dm_sm_get_nr_blocks(self.sm(), &mut n) })?;
        Ok(n)
    }

    /// Takes a reference on block `b` in the space map.
    pub fn sm_inc(&self, b: BlockNr) -> Result {
        // SAFETY: `sm` is live.
        to_result(unsafe { bindings::rdm_dm_sm_inc_block(self.sm(), b) })
    }

    /// Drops a reference on block `b` in the space map.
    pub fn sm_dec(&self, b: BlockNr) -> Result {
        // SAFETY: `sm` is live.
        to_result(unsafe { bindings::rdm_dm_sm_dec_block(self.sm(), b) })
    }

    /// Takes a reference on block `b` through the transaction manager.
    pub fn inc(&self, b: BlockNr) {
        // SAFETY: `tm` is live.
        unsafe { bindings::dm_tm_inc(self.tm(), b) };
    }

    /// Shadows (copy-on-write) block `b`: returns the write-locked copy and
    /// whether the children of the copy need their counts incremented.
    pub fn shadow_block<V: BlockValidator>(
        &self,
        b: BlockNr,
        v: &'static Validator<V>,
    ) -> Result<(Block<'_>, bool)> {
        let mut blk = core::ptr::null_mut();
        let mut inc = 0;
        // SAFETY: `tm` is live; out-pointers valid.
        to_result(unsafe {
            bindings::dm_tm_shadow_block(self.tm(), b, v.as_raw(), &mut blk, &mut inc)
        })?;
        let blk = self.bm.block(blk, Some(self.tm), true)?;
        Ok((blk, inc != 0))
    }

    /// Read-locks block `b` through the transaction manager.
    pub fn read_lock<V: BlockValidator>(
        &self,
        b: BlockNr,
        v: &'static Validator<V>,
    ) -> Result<Block<'_>> {
        let mut blk = core::ptr::null_mut();
        // SAFETY: `tm` is live; out-pointer valid.
        to_result(unsafe { bindings::dm_tm_read_lock(self.tm(), b, v.as_raw(), &mut blk) })?;
        self.bm.block(blk, Some(self.tm), false)
    }
}

/// An on-disk bitset (`struct dm_disk_bitset`), identified by its root,
/// with its cached word. Every operation names the transaction manager it
/// works in (always the same one).
///
/// The C struct refers to itself (and to the transaction manager); those
/// pointers are refreshed before every call, so the Rust value may move.
pub struct DiskBitset {
    info: bindings::dm_disk_bitset,
}

// SAFETY: Plain data (the cached word and C pointers only used during calls
// that borrow the transaction manager).
unsafe impl Send for DiskBitset {}

impl DiskBitset {
    /// Bitset operations on `tm`'s metadata.
    pub fn new(tm: &TransactionManager) -> Self {
        let mut info = bindings::dm_disk_bitset::default();
        // SAFETY: `tm` is live; `info` is ours to initialise.
        unsafe { bindings::dm_disk_bitset_init(tm.tm(), &mut info) };
        Self { info }
    }

    fn info(&mut self, tm: &TransactionManager) -> *mut bindings::dm_disk_bitset {
        self.info.array_info.tm = tm.tm();
        self.info.array_info.btree_info.tm = tm.tm();
        // `dm_array_info_init()` makes the array's btree callbacks point at
        // the array info itself; `self` may have moved since.
        self.info.array_info.btree_info.value_type.context =
            core::ptr::addr_of_mut!(self.info.array_info).cast();
        &mut self.info
    }

    /// A new, empty bitset; returns its root.
    pub fn empty(&mut self, tm: &TransactionManager) -> Result<BlockNr> {
        let mut root = 0;
        // SAFETY: `info` is initialised and points at the live `tm`.
        to_result(unsafe { bindings::dm_bitset_empty(self.info(tm), &mut root) })?;
        Ok(root)
    }

    /// Resizes the bitset at `root` from `old` to `new` bits, new bits set to
    /// `default`; returns the new root.
    pub fn resize(
        &mut self,
        tm: &TransactionManager,
        root: BlockNr,
        old: u32,
        new: u32,
        default: bool,
    ) -> Result<BlockNr> {
        // The callee may leave the root untouched (e.g. nothing to flush).
        let mut r = root;
        // SAFETY: As in `empty`.
        to_result(unsafe {
            bindings::dm_bitset_resize(self.info(tm), root, old, new, default, &mut r)
        })?;
        Ok(r)
    }

    /// Sets bit `i`; returns the new root.
    pub fn set_bit(&mut self, tm: &TransactionManager, root: BlockNr, i: u32) -> Result<BlockNr> {
        // The callee may leave the root untouched (e.g. nothing to flush).
        let mut r = root;
        // SAFETY: As in `empty`.
        to_result(unsafe { bindings::dm_bitset_set_bit(self.info(tm), root, i, &mut r) })?;
        Ok(r)
    }

    /// Clears bit `i`; returns the new root.
    pub fn clear_bit(&mut self, tm: &TransactionManager, root: BlockNr, i: u32) -> Result<BlockNr> {
        // The callee may leave the root untouched (e.g. nothing to flush).
        let mut r = root;
        // SAFETY: As in `empty`.
        to_result(unsafe { bindings::dm_bitset_clear_bit(self.info(tm), root, i, &mut r) })?;
        Ok(r)
    }

    /// Tests bit `i`; returns it and the (possibly new) root.
    pub fn test_bit(
        &mut self,
        tm: &TransactionManager,
        root: BlockNr,
        i: u32,
    ) -> Result<(bool, BlockNr)> {
        // The callee may leave the root untouched (e.g. nothing to flush).
        let mut r = root;
        let mut v = false;
        // SAFETY: As in `empty`.
        to_result(unsafe { bindings::dm_bitset_test_bit(self.info(tm), root, i, &mut r, &mut v) })?;
        Ok((v, r))
    }

    /// Writes out the cached word; returns the new root.
    pub fn flush(&mut self, tm: &TransactionManager, root: BlockNr) -> Result<BlockNr> {
        // The callee may leave the root untouched (e.g. nothing to flush).
        let mut r = root;
        // SAFETY: As in `empty`.
        to_result(unsafe { bindings::dm_bitset_flush(self.info(tm), root, &mut r) })?;
        Ok(r)
    }

    /// Deletes the bitset at `root`.
    pub fn del(&mut self, tm: &TransactionManager, root: BlockNr) -> Result {
        // SAFETY: As in `empty`.
        to_result(unsafe { bindings::dm_bitset_del(self.info(tm), root) })
    }

    /// Calls `f(i, bit)` for the bits `0..n` of the bitset at `root`, in
    /// order, walking its blocks with a cursor (`dm_bitset_cursor_*`).
    pub fn walk(
        &mut self,
        tm: &TransactionManager,
        root: BlockNr,
        n: u32,
        mut f: impl FnMut(u32, bool),
    ) -> Result {
        if n == 0 {
            return Ok(());
        }
        let info = self.info(tm);
        let mut c = bindings::dm_bitset_cursor::default();
        // SAFETY: `info` is initialised and points at the live `tm`; it is
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

/// An on-disk array of fixed-size values without references
/// (`struct dm_array_info`), identified by its root.
pub struct Array {
    info: bindings::dm_array_info,
}

// SAFETY: Plain data, as `DiskBitset`.
unsafe impl Send for Array {}

impl Array {
    /// Array operations on `tm`'s metadata, for values of `size` bytes.
    pub fn new(tm: &TransactionManager, size: u32) -> Self {
        let mut vt = bindings::dm_btree_value_type {
            context: core::ptr::null_mut(),
            size,
            inc: None,
            dec: None,
            equal: None,
        };
        let mut info = bindings::dm_array_info::default();
        // SAFETY: `tm` is live; `vt` is copied by the callee.
        unsafe { bindings::dm_array_info_init(&mut info, tm.tm(), &mut vt) };
        Self { info }
    }

    fn info(&mut self, tm: &TransactionManager) -> *mut bindings::dm_array_info {
        self.info.tm = tm.tm();
        self.info.btree_info.tm = tm.tm();
        // The btree callbacks point at the info itself (see `DiskBitset`).
        self.info.btree_info.value_type.context = core::ptr::addr_of_mut!(self.info).cast();
        &mut self.info
    }

    /// A new, empty array; returns its root.
    pub fn empty(&mut self, tm: &TransactionManager) -> Result<BlockNr> {
        let mut root = 0;
        // SAFETY: `info` is initialised and points at the live `tm`.
        to_result(unsafe { bindings::dm_array_empty(self.info(tm), &mut root) })?;
        Ok(root)
    }

    /// Resizes from `old` to `new` entries, new ones set to `value`.
    pub fn resize(
        &mut self,
        tm: &TransactionManager,
        root: BlockNr,
        old: u32,
        new: u32,
        value: &[u8],
    ) -> Result<BlockNr> {
        self.check_size(value.len())?;
        // The callee may leave the root untouched (e.g. nothing to flush).
        let mut r = root;
        // SAFETY: As in `empty`; `value` has the value size.
        to_result(unsafe {
            bindings::dm_array_resize(
                self.info(tm),
                root,
                old,
                new,
                value.as_ptr().cast_mut().cast(),
                &mut r,
            )
        })?;
        Ok(r)
    }

    /// Sets entry `i` to `value`; returns the new root.
    pub fn set(
        &mut self,
        tm: &TransactionManager,
        root: BlockNr,
        i: u32,
        value: &[u8],
    ) -> Result<BlockNr> {
        self.check_size(value.len())?;
        // The callee may leave the root untouched (e.g. nothing to flush).
        let mut r = root;
        // SAFETY: As in `empty`; `value` has the value size.
        to_result(unsafe {
            bindings::dm_array_set_value(
                self.info(tm),
                root,
                i,
                value.as_ptr().cast_mut().cast(),
                &mut r,
            )
        })?;
        Ok(r)
    }

    /// Reads entry `i` into `out`.
    pub fn get(
        &mut self,
        tm: &TransactionManager,
        root: BlockNr,
        i: u32,
        out: &mut [u8],
    ) -> Result {
        self.check_size(out.len())?;
        // SAFETY: As in `empty`; `out` has the value size.
        to_result(unsafe {
            bindings::dm_array_get_value(self.info(tm), root, i, out.as_mut_ptr().cast())
        })
    }

    /// Deletes the array at `root`.
    pub fn del(&mut self, tm: &TransactionManager, root: BlockNr) -> Result {
        // SAFETY: As in `empty`.
        to_result(unsafe { bindings::dm_array_del(self.info(tm), root) })
    }

    fn check_size(&self, n: usize) -> Result {
        if n != self.info.value_type.size as usize {
            return Err(EINVAL);
        }
        Ok(())
    }
}

/// The values of a [`Btree`]: their size and what a value owns on disk.
pub trait BtreeValue: 'static {
    /// Size of a value in bytes.
    const SIZE: u32;
    /// The btree copied `value` (e.g. take a reference on what it points at).
    fn inc(tm: &TransactionManager, value: &[u8]);
    /// The btree deleted `value` (e.g. free what it points at).
    fn dec(tm: &TransactionManager, value: &[u8]);
}

/// A single-level on-disk btree with `u64` keys (`struct dm_btree_info`),
/// identified by its root.
///
/// # Invariants
///
/// During each call into persistent-data, `info.tm` is the live transaction
/// manager of that call and the value type's context points at it.
pub struct Btree<V: BtreeValue> {
    info: bindings::dm_btree_info,
    _v: PhantomData<V>,
}

// SAFETY: Plain data, as `DiskBitset`.
unsafe impl<V: BtreeValue> Send for Btree<V> {}

impl<V: BtreeValue> Btree<V> {
    /// Btree operations on `tm`'s metadata.
    pub fn new(tm: &TransactionManager) -> Self {
        let info = bindings::dm_btree_info {
            tm: tm.tm(),
            levels: 1,
            value_type: bindings::dm_btree_value_type {
                context: core::ptr::null_mut(),
                size: V::SIZE,
                inc: Some(Self::inc_values),
                dec: Some(Self::dec_values),
                equal: Some(Self::equal_values),
            },
        };
        Self {
            info,
            _v: PhantomData,
        }
    }

    fn info(&mut self, tm: &TransactionManager) -> *mut bindings::dm_btree_info {
        // INVARIANT: `tm` is borrowed for the whole call that uses `info`.
        self.info.tm = tm.tm();
        self.info.value_type.context = (tm as *const TransactionManager).cast_mut().cast();
        &mut self.info
    }

    /// Calls `f` on each of `count` values at `values`.
    ///
    /// # Safety
    ///
    /// `ctx` must be the context of a call in progress (see invariants) and
    /// `values` hold `count` values of `V::SIZE` bytes.
    unsafe fn each(
        ctx: *mut core::ffi::c_void,
        values: *const core::ffi::c_void,
        count: u32,
        f: fn(&TransactionManager, &[u8]),
    ) {
        // SAFETY: The context is the `&TransactionManager` of the call in
        // progress.
        let tm = unsafe { &*ctx.cast::<TransactionManager>() };
        for i in 0..count as usize {
            // SAFETY: `values` holds `count` values of `V::SIZE` bytes.
            let v = unsafe {
                core::slice::from_raw_parts(
                    values.cast::<u8>().add(i * V::SIZE as usize),
                    V::SIZE as usize,
                )
            };
            f(tm, v);
        }
    }

    /// # Safety
    ///
    /// Called by persistent-data during a call of this btree.
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
    /// Called by persistent-data during a call of this btree.
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
        // SAFETY: Both point at `V::SIZE` bytes.
        let (a, b) = unsafe {
            (
                core::slice::from_raw_parts(a.cast::<u8>(), V::SIZE as usize),
                core::slice::from_raw_parts(b.cast::<u8>(), V::SIZE as usize),
            )
        };
        core::ffi::c_int::from(a == b)
    }

    /// A new, empty btree; returns its root.
    pub fn empty(&mut self, tm: &TransactionManager) -> Result<BlockNr> {
        let mut root = 0;
        // SAFETY: `info` is set up for the live `tm` (invariant).
        to_result(unsafe { bindings::dm_btree_empty(self.info(tm), &mut root) })?;
        Ok(root)
    }

    /// Inserts (or replaces) `key` -> `value`; returns the new root.
    pub fn insert(
        &mut self,
        tm: &TransactionManager,
        root: BlockNr,
        key: u64,
        value: &[u8],
    ) -> Result<BlockNr> {
        if value.len() != V::SIZE as usize {
            return Err(EINVAL);
        }
        let mut k = key;
        // The callee may leave the root untouched (e.g. nothing to flush).
        let mut r = root;
        // SAFETY: As in `empty`; `value` has the value size (copied).
        to_result(unsafe {
            bindings::dm_btree_insert(
                self.info(tm),
                root,
                &mut k,
                value.as_ptr().cast_mut().cast(),
                &mut r,
            )
        })?;
        Ok(r)
    }

    /// Removes `key`; returns the new root.
    pub fn remove(&mut self, tm: &TransactionManager, root: BlockNr, key: u64) -> Result<BlockNr> {
        let mut k = key;
        // The callee may leave the root untouched (e.g. nothing to flush).
        let mut r = root;
        // SAFETY: As in `empty`.
        to_result(unsafe { bindings::dm_btree_remove(self.info(tm), root, &mut k, &mut r) })?;
        Ok(r)
    }

    /// Looks `key` up into `out`; `Ok(false)` if absent.
    pub fn lookup(
        &mut self,
        tm: &TransactionManager,
        root: BlockNr,
        key: u64,
        out: &mut [u8],
    ) -> Result<bool> {
        if out.len() != V::SIZE as usize {
            return Err(EINVAL);
        }
        let mut k = key;
        // SAFETY: As in `empty`; `out` has the value size.
        let r = unsafe {
            bindings::dm_btree_lookup(self.info(tm), root, &mut k, out.as_mut_ptr().cast())
        };
        if r == -(bindings::ENODATA as i32) {
            return Ok(false);
        }
        to_result(r)?;
        Ok(true)
    }

    /// The lowest key, or `None` for an empty tree.
    pub fn lowest_key(&mut self, tm: &TransactionManager, root: BlockNr) -> Result<Option<u64>> {
        let mut k = 0;
        // SAFETY: As in `empty`.
        let r = unsafe { bindings::dm_btree_find_lowest_key(self.info(tm), root, &mut k) };
        if r == -(bindings::ENODATA as i32) {
            return Ok(None);
        }
        to_result(r)?;
        Ok(Some(k))
    }

    /// Deletes the whole tree at `root`.
    pub fn del(&mut self, tm: &TransactionManager, root: BlockNr) -> Result {
        // SAFETY: As in `empty`.
        to_result(unsafe { bindings::dm_btree_del(self.info(tm), root) })
    }
}
