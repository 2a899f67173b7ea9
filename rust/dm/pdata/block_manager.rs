// SPDX-License-Identifier: GPL-2.0

//! The block manager: cached, locked access to the blocks of a metadata
//! device (on dm-bufio), and the validators that check and seal blocks.
//!
//! C header: [`drivers/md/persistent-data/dm-block-manager.h`](srctree/drivers/md/persistent-data/dm-block-manager.h)

use super::{bindings, might_sleep, superblock, BlockNr};
use crate::dm::{error::from_err_ptr, Device};
use core::{marker::PhantomData, ptr::NonNull};
use kernel::{
    error::{code::*, to_result},
    prelude::*,
};

/// `dm_bm_checksum()`: the crc32c-based checksum of persistent-data blocks.
///
/// # Context
///
/// Any.
pub fn checksum(data: &[u8], init_xor: u32) -> u32 {
    // SAFETY: `data` is valid for its length.
    unsafe { bindings::dm_bm_checksum(data.as_ptr().cast(), data.len(), init_xor) }
}

/// Checks and seals metadata blocks of one kind (C's `struct
/// dm_block_validator`), e.g. a superblock with a magic and a checksum.
///
/// # Context
///
/// Both are called by persistent-data and dm-bufio in process context; they
/// must not lock blocks (they have no manager to do it with).
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
    ///
    /// # Context
    ///
    /// Any.
    pub const fn new() -> Self {
        // INVARIANT: built from `V`.
        Self {
            raw: bindings::dm_block_validator {
                name: V::NAME.as_char_ptr(),
                prepare_for_write: Some(Self::prepare_for_write),
                check: Some(Self::check),
            },
            _v: PhantomData,
        }
    }

    pub(super) fn as_raw(&'static self) -> *const bindings::dm_block_validator {
        &self.raw
    }

    /// # Safety
    ///
    /// Called by the block manager's dm-bufio write callback, before the
    /// buffer `b` of `block_size` bytes is written back.
    unsafe extern "C" fn prepare_for_write(
        _v: *const bindings::dm_block_validator,
        b: *mut bindings::dm_block,
        block_size: usize,
    ) {
        // SAFETY: `b` is a live buffer of `block_size` bytes (caller). No
        // other reference to them exists while this runs: Rust's only views
        // of block data are `Block`s (and slices borrowed from them), and a
        // `Block` borrows its block or transaction manager mutably for its
        // whole life, while every call that can get dm-bufio to write back
        // (locking any block, any persistent-data operation, a flush: each
        // fetch of a buffer may cross the dirty watermark) borrows that same
        // manager, shared or mutably. So when the writeback runs in the
        // thread using the manager, none of its `Block`s is alive. Other
        // threads cannot use the manager (`!Sync`); dm-bufio's own workers
        // (shrinker, cleanup) only write back buffers nobody holds, and an
        // unheld buffer has no `Block`. Persistent-data's C code may hold
        // the block, but does not touch it during this call.
        let data = unsafe {
            core::slice::from_raw_parts_mut(bindings::dm_block_data(b).cast(), block_size)
        };
        // SAFETY: `b` is a live block.
        V::prepare_for_write(data, unsafe { bindings::dm_block_location(b) });
    }

    /// # Safety
    ///
    /// Called by persistent-data with a block of `block_size` bytes it has
    /// just read, before handing it out.
    unsafe extern "C" fn check(
        _v: *const bindings::dm_block_validator,
        b: *mut bindings::dm_block,
        block_size: usize,
    ) -> core::ffi::c_int {
        // SAFETY: `b` is a live buffer of `block_size` bytes (caller). It is
        // checked inside a lock call, which borrows the manager, so no
        // `Block` (the only Rust view of block data) of it is alive, and
        // nothing writes it during the check.
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

/// No validation (for reading a block that may be unformatted).
pub enum NoValidator {}

impl BlockValidator for NoValidator {
    const NAME: &'static CStr = kernel::c_str!("none");
    fn prepare_for_write(_data: &mut [u8], _location: BlockNr) {}
    fn check(_data: &[u8], _location: BlockNr) -> Result {
        Ok(())
    }
}

/// A superblock in the persistent-data layout of [`superblock`] (dm-era's,
/// dm-clone's): its format, and the target's words for a failed check (the
/// C targets word them differently).
pub trait SuperblockFormat: 'static {
    /// Magic, checksum xor and version.
    const FORMAT: superblock::Format;

    /// Logs why the superblock at `location` failed its check.
    ///
    /// # Context
    ///
    /// Process context (from the block manager's read).
    fn check_failed(e: superblock::CheckError, location: BlockNr);
}

/// The validator of an `S` superblock (C's `sb_validator`): seals it with
/// its block number and checksum; checks block number (`-ENOTBLK`), magic
/// and checksum (`-EILSEQ`) and version (`-EINVAL`), and has
/// [`SuperblockFormat::check_failed`] say which failed. A type, never a
/// value: keep its [`Validator`] in a `static`.
pub struct SuperblockValidator<S: SuperblockFormat>(PhantomData<S>);

impl<S: SuperblockFormat> BlockValidator for SuperblockValidator<S> {
    const NAME: &'static CStr = kernel::c_str!("superblock");

    fn prepare_for_write(data: &mut [u8], location: BlockNr) {
        S::FORMAT.seal(data, location, checksum);
    }

    fn check(data: &[u8], location: BlockNr) -> Result {
        S::FORMAT.check(data, location, checksum).map_err(|e| {
            S::check_failed(e, location);
            match e {
                superblock::CheckError::WrongLocation(_) => ENOTBLK,
                superblock::CheckError::Magic(_) | superblock::CheckError::Checksum(..) => {
                    super::eilseq()
                }
                superblock::CheckError::Version(_) => EINVAL,
            }
        })
    }
}

/// A locked metadata block; unlocked on drop.
///
/// It borrows the manager that locked it mutably (see the borrowing rules in
/// [`super`]): while it lives, nothing else locks, writes back or changes a
/// block of that manager.
///
/// # Context
///
/// Dropping it may sleep (dm-bufio's locks).
///
/// # Invariants
///
/// - `b` is locked (write-locked when `write`), through `tm` or, when `tm`
///   is `None`, directly on its block manager, and holds `size` bytes.
/// - For `'a`, the manager that locked it is borrowed mutably, so no other
///   Rust reference to the block's data exists but those borrowed from
///   this value.
pub struct Block<'a> {
    b: NonNull<bindings::dm_block>,
    tm: Option<NonNull<bindings::dm_transaction_manager>>,
    write: bool,
    size: usize,
    _owner: PhantomData<&'a mut BlockManager>,
}

impl<'a> Block<'a> {
    /// Wraps a block just locked.
    ///
    /// # Safety
    ///
    /// `blk` must have been locked by a successful lock call (write-locked
    /// if `write`) through `tm`, or on the block manager when `tm` is
    /// `None`, with blocks of `size` bytes, and the caller must tie `'a` to
    /// a mutable borrow of the manager that locked it.
    pub(super) unsafe fn new(
        blk: *mut bindings::dm_block,
        tm: Option<NonNull<bindings::dm_transaction_manager>>,
        write: bool,
        size: usize,
    ) -> Result<Self> {
        // INVARIANT: guaranteed by the caller.
        Ok(Block {
            b: NonNull::new(blk).ok_or(EIO)?,
            tm,
            write,
            size,
            _owner: PhantomData,
        })
    }

    /// The block's number.
    ///
    /// # Context
    ///
    /// Any.
    pub fn location(&self) -> BlockNr {
        // SAFETY: `b` is locked (invariant).
        unsafe { bindings::dm_block_location(self.b.as_ptr()) }
    }

    /// The block's contents.
    ///
    /// # Context
    ///
    /// Any.
    pub fn data(&self) -> &[u8] {
        // SAFETY: The lock keeps `size` bytes valid; the mutable borrow of
        // the manager keeps anyone else from writing them (invariants).
        unsafe {
            core::slice::from_raw_parts(bindings::dm_block_data(self.b.as_ptr()).cast(), self.size)
        }
    }

    /// The block's contents, for a write-locked block (`EPERM` otherwise).
    ///
    /// # Context
    ///
    /// Any.
    pub fn data_mut(&mut self) -> Result<&mut [u8]> {
        if !self.write {
            return Err(EPERM);
        }
        // SAFETY: The write lock and the mutable borrow of the manager give
        // us exclusive access to `size` bytes (invariants); `&mut self`
        // makes the slice the only view.
        Ok(unsafe {
            core::slice::from_raw_parts_mut(
                bindings::dm_block_data(self.b.as_ptr()).cast(),
                self.size,
            )
        })
    }

    /// Gives the lock up to the caller, who unlocks it.
    pub(super) fn into_raw(self) -> *mut bindings::dm_block {
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
/// # Context
///
/// Every method may sleep unless it says otherwise; dropping it sleeps
/// (writes back and frees the cache).
///
/// # Invariants
///
/// `bm` is live and owned, with blocks of `block_size` bytes. Its block
/// device is `_dev`'s, held open while `_dev` exists: `_dev` is declared
/// after `bm`, and Rust drops it after [`Drop::drop`] destroyed `bm`.
pub struct BlockManager {
    bm: NonNull<bindings::dm_block_manager>,
    block_size: usize,
    _dev: Device,
}

// SAFETY: A block manager may be used from any thread (one at a time: !Sync).
unsafe impl Send for BlockManager {}

impl BlockManager {
    /// Creates a block manager over `dev` with blocks of `block_size` bytes,
    /// allowing `max_held` blocks locked at once by one thread.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn new(dev: &Device, block_size: u32, max_held: u32) -> Result<Self> {
        might_sleep();
        // SAFETY: The device's block device is open while `dev` (and the
        // clone kept below) exists.
        let bm = from_err_ptr(unsafe {
            bindings::dm_block_manager_create(dev.bdev(), block_size, max_held)
        })?;
        // INVARIANT: created with `block_size` and owned; the device kept.
        Ok(Self {
            bm: NonNull::new(bm).ok_or(ENOMEM)?,
            block_size: block_size as usize,
            _dev: dev.clone(),
        })
    }

    pub(super) fn as_raw(&self) -> *mut bindings::dm_block_manager {
        self.bm.as_ptr()
    }

    /// The size of a block in bytes.
    ///
    /// # Context
    ///
    /// Any.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Read-locks block `b`, checking it with `v` if given.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn read_lock<V: BlockValidator>(
        &mut self,
        b: BlockNr,
        v: Option<&'static Validator<V>>,
    ) -> Result<Block<'_>> {
        might_sleep();
        let mut blk = core::ptr::null_mut();
        // SAFETY: `bm` is live; `blk` is a valid out-pointer.
        to_result(unsafe {
            bindings::dm_bm_read_lock(self.bm.as_ptr(), b, validator_ptr(v), &mut blk)
        })?;
        // SAFETY: Just read-locked on `bm`; the result borrows `self`
        // mutably.
        unsafe { Block::new(blk, None, false, self.block_size) }
    }

    /// Write-locks block `b` with its contents zeroed (no read).
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn write_lock_zero<V: BlockValidator>(
        &mut self,
        b: BlockNr,
        v: &'static Validator<V>,
    ) -> Result<Block<'_>> {
        might_sleep();
        let mut blk = core::ptr::null_mut();
        // SAFETY: As in `read_lock`.
        to_result(unsafe {
            bindings::dm_bm_write_lock_zero(self.bm.as_ptr(), b, v.as_raw(), &mut blk)
        })?;
        // SAFETY: Just write-locked on `bm`; the result borrows `self`
        // mutably.
        unsafe { Block::new(blk, None, true, self.block_size) }
    }

    /// Write-locks block `b`, checking it with `v`.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn write_lock<V: BlockValidator>(
        &mut self,
        b: BlockNr,
        v: &'static Validator<V>,
    ) -> Result<Block<'_>> {
        might_sleep();
        let mut blk = core::ptr::null_mut();
        // SAFETY: As in `read_lock`.
        to_result(unsafe {
            bindings::dm_bm_write_lock(self.bm.as_ptr(), b, v.as_raw(), &mut blk)
        })?;
        // SAFETY: Just write-locked on `bm`; the result borrows `self`
        // mutably.
        unsafe { Block::new(blk, None, true, self.block_size) }
    }

    /// Whether block `b` holds only zeroes (an unformatted device).
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn is_zeroed(&mut self, b: BlockNr) -> Result<bool> {
        let blk = self.read_lock::<NoValidator>(b, None)?;
        Ok(blk.data().iter().all(|&x| x == 0))
    }

    /// Makes every later write fail (fail mode / read-only metadata).
    ///
    /// # Context
    ///
    /// Any (sets a flag).
    pub fn set_read_only(&self) {
        // SAFETY: `bm` is live.
        unsafe { bindings::dm_bm_set_read_only(self.bm.as_ptr()) };
    }

    /// Whether the block manager is read-only.
    ///
    /// # Context
    ///
    /// Any (reads a flag).
    pub fn is_read_only(&self) -> bool {
        // SAFETY: `bm` is live.
        unsafe { bindings::dm_bm_is_read_only(self.bm.as_ptr()) }
    }
}

impl Drop for BlockManager {
    fn drop(&mut self) {
        might_sleep();
        // SAFETY: Live and owned; every `Block` borrowed it and is gone.
        unsafe { bindings::dm_block_manager_destroy(self.bm.as_ptr()) };
    }
}
