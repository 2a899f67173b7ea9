// SPDX-License-Identifier: GPL-2.0

//! Bios handed to a target by dm core.

use super::{bindings, Device, Operations};
use core::{
    marker::PhantomData,
    mem::{ManuallyDrop, MaybeUninit},
    pin::Pin,
    ptr::NonNull,
};

/// The operation of a bio (`enum req_op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Read sectors.
    Read,
    /// Write sectors.
    Write,
    /// Flush the volatile write cache (an empty `REQ_PREFLUSH` bio has this op
    /// on some paths; data writes carry the flag instead, see
    /// [`DmBio::is_preflush`]).
    Flush,
    /// Discard sectors.
    Discard,
    /// Securely erase sectors.
    SecureErase,
    /// Write zeroes to sectors.
    WriteZeroes,
    /// Any other operation (zone management, driver private).
    Other(u32),
}

/// Completion status of a bio (`blk_status_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub struct BlkStatus(bindings::blk_status_t);

impl BlkStatus {
    /// Success.
    pub const OK: Self = Self(bindings::BLK_STS_OK);
    /// Generic I/O error.
    pub const IOERR: Self = Self(bindings::BLK_STS_IOERR);
    /// Operation not supported.
    pub const NOTSUPP: Self = Self(bindings::BLK_STS_NOTSUPP);
    /// Out of resources, retry later.
    pub const RESOURCE: Self = Self(bindings::BLK_STS_RESOURCE);
    /// Integrity (protection information) check failed.
    pub const PROTECTION: Self = Self(bindings::BLK_STS_PROTECTION);

    /// Whether this is success.
    pub fn is_ok(self) -> bool {
        self == Self::OK
    }

    pub(crate) fn raw(self) -> bindings::blk_status_t {
        self.0
    }

    pub(crate) fn from_raw(raw: bindings::blk_status_t) -> Self {
        Self(raw)
    }
}

/// A bio that dm core handed to target `T`: a clone of the mapped device's
/// bio, restricted to that target, with `T::PerBio` in front of it.
///
/// Owning a `DmBio` means owning the bio: the target gives it back to dm core
/// from `map` ([`super::MapResult`]), submits it, or ends it. Dropping one
/// that was never given back ends it with an I/O error so that nothing waits
/// forever on a lost bio.
///
/// # Invariants
///
/// - `bio` points to a live bio that dm core allocated for a target of type
///   `T` (so its per-bio data, in `bi_private` or in front of the bio, is
///   `T::PerBio`), and it has not been completed or resubmitted.
/// - Its `T::PerBio` was initialised by the `map` trampoline.
/// - Only this value accesses the bio and its per-bio data.
pub struct DmBio<T: Operations> {
    bio: NonNull<bindings::bio>,
    _target: PhantomData<T>,
}

// SAFETY: The bio may be completed, submitted or examined from any thread; the
// per-bio data moves with it and is `Send`.
unsafe impl<T: Operations> Send for DmBio<T> where T::PerBio: Send {}

impl<T: Operations> DmBio<T> {
    /// # Safety
    ///
    /// The type invariants must hold for `bio`, and the caller hands its
    /// ownership of the bio to the returned value.
    pub(crate) unsafe fn from_raw(bio: *mut bindings::bio) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            // SAFETY: A live bio is not NULL (caller's guarantee).
            bio: unsafe { NonNull::new_unchecked(bio) },
            _target: PhantomData,
        }
    }

    pub(crate) fn as_raw(&self) -> *mut bindings::bio {
        self.bio.as_ptr()
    }

    /// Gives up ownership without completing the bio.
    pub(crate) fn into_raw(self) -> *mut bindings::bio {
        ManuallyDrop::new(self).bio.as_ptr()
    }

    fn raw(&self) -> &bindings::bio {
        // SAFETY: `bio` is live and only accessed through `self` (invariants).
        unsafe { self.bio.as_ref() }
    }

    fn raw_mut(&mut self) -> &mut bindings::bio {
        // SAFETY: `bio` is live and only accessed through `self` (invariants).
        unsafe { self.bio.as_mut() }
    }

    /// First sector (512 bytes) of the bio, relative to the mapped device
    /// until the target remaps it.
    #[inline]
    pub fn sector(&self) -> u64 {
        self.raw().bi_iter.bi_sector
    }

    /// Points the bio at `sector` of its (new) device.
    #[inline]
    pub fn set_sector(&mut self, sector: u64) {
        self.raw_mut().bi_iter.bi_sector = sector;
    }

    /// Size of the bio's payload in bytes.
    #[inline]
    pub fn size(&self) -> u32 {
        self.raw().bi_iter.bi_size
    }

    /// Size of the bio's payload in sectors (`bio_sectors()`).
    #[inline]
    pub fn sectors(&self) -> u32 {
        self.size() >> 9
    }

    /// The bio's operation.
    #[inline]
    pub fn op(&self) -> Op {
        match self.raw().bi_opf & bindings::REQ_OP_MASK {
            bindings::req_op_REQ_OP_READ => Op::Read,
            bindings::req_op_REQ_OP_WRITE => Op::Write,
            bindings::req_op_REQ_OP_FLUSH => Op::Flush,
            bindings::req_op_REQ_OP_DISCARD => Op::Discard,
            bindings::req_op_REQ_OP_SECURE_ERASE => Op::SecureErase,
            bindings::req_op_REQ_OP_WRITE_ZEROES => Op::WriteZeroes,
            other => Op::Other(other),
        }
    }

    /// Whether the bio writes to the device (`op_is_write()`: writes,
    /// discards, write-zeroes, ...).
    #[inline]
    pub fn is_write(&self) -> bool {
        self.raw().bi_opf & 1 != 0
    }

    /// Whether the bio asks for a cache flush before its payload
    /// (`REQ_PREFLUSH`). An empty flush has this flag and no payload.
    #[inline]
    pub fn is_preflush(&self) -> bool {
        self.raw().bi_opf & bindings::REQ_PREFLUSH != 0
    }

    /// Whether the payload must be on stable storage on completion (`REQ_FUA`).
    #[inline]
    pub fn is_fua(&self) -> bool {
        self.raw().bi_opf & bindings::REQ_FUA != 0
    }

    /// Which of the target's `num_*_bios` copies this is, for flushes and
    /// discards sent to several underlying devices.
    #[inline]
    pub fn target_bio_nr(&self) -> u32 {
        // SAFETY: `bio` is a live dm clone (type invariants).
        unsafe { bindings::dm_bio_get_target_bio_nr(self.bio.as_ptr()) }
    }

    /// Sends the bio to `dev` (`bio_set_dev()`); the sector is unchanged.
    #[inline]
    pub fn set_dev(&mut self, dev: &Device) {
        // SAFETY: `bio` is live and owned (invariants); `dev` holds its block
        // device open for longer than the bio can be in flight, since dm core
        // drains I/O before destroying the table that owns `dev`.
        unsafe { bindings::rdm_bio_set_dev(self.bio.as_ptr(), dev.bdev()) };
    }

    /// The target's per-bio data.
    #[inline]
    pub fn data(&mut self) -> Pin<&mut T::PerBio> {
        let p = super::target::per_bio_data::<T>(self.bio.as_ptr());
        // SAFETY: The per-bio data was initialised by the map trampoline, lives
        // as long as the bio in memory that never moves, and only `self`
        // accesses it (invariants).
        unsafe { Pin::new_unchecked(&mut *p) }
    }

    /// Restricts the bio to `sectors` sectors from `sector` (C's
    /// `trim_bio()` in dm-clone: a discard that only covers whole regions).
    /// Only for bios without data pages (discards).
    pub fn trim_discard(&mut self, sector: u64, sectors: u32) {
        debug_assert!(self.op() == Op::Discard);
        let b = self.raw_mut();
        b.bi_iter.bi_sector = sector;
        b.bi_iter.bi_size = sectors.saturating_mul(512);
    }

    /// Completes the bio with `status` (`bio_endio()`).
    pub fn end(self, status: BlkStatus) {
        let bio = self.into_raw();
        // SAFETY: We owned the live bio and give it back to the block layer.
        unsafe {
            (*bio).bi_status = status.raw();
            bindings::bio_endio(bio);
        }
    }

    /// Submits the (remapped) bio to its device (`submit_bio_noacct()`), for
    /// a target that returned [`super::MapResult::Submitted`] and sends the bio
    /// later, e.g. from a worker.
    pub fn submit(self) {
        let bio = self.into_raw();
        // SAFETY: We owned the live bio; the block layer takes it over.
        unsafe { bindings::submit_bio_noacct(bio) };
    }
}

impl<T: Operations> Drop for DmBio<T> {
    fn drop(&mut self) {
        kernel::pr_warn!(
            "device-mapper: {}: bio dropped without completion\n",
            T::NAME
        );
        let bio = self.bio.as_ptr();
        // SAFETY: We own the live bio (invariants) and nobody else will end it.
        unsafe {
            (*bio).bi_status = bindings::BLK_STS_IOERR;
            bindings::bio_endio(bio);
        }
    }
}

/// A list of bios owned by a target (C's `struct bio_list`, linked through
/// the bios themselves, so adding never allocates). Bios left in the list
/// when it is dropped are ended with an I/O error.
pub struct BioList<T: Operations> {
    list: bindings::bio_list,
    _t: PhantomData<T>,
}

// SAFETY: The list owns its bios, which are `Send`.
unsafe impl<T: Operations> Send for BioList<T> where T::PerBio: Send {}

impl<T: Operations> Default for BioList<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Operations> BioList<T> {
    /// An empty list.
    pub const fn new() -> Self {
        Self {
            list: bindings::bio_list {
                head: core::ptr::null_mut(),
                tail: core::ptr::null_mut(),
            },
            _t: PhantomData,
        }
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.list.head.is_null()
    }

    /// Appends `bio`.
    pub fn push(&mut self, bio: DmBio<T>) {
        let b = bio.into_raw();
        // SAFETY: We own the bio (given up by `into_raw`) and the list.
        unsafe { bindings::rdm_bio_list_add(&mut self.list, b) };
    }

    /// Removes the first bio.
    pub fn pop(&mut self) -> Option<DmBio<T>> {
        // SAFETY: The list is valid and owns its bios.
        let b = unsafe { bindings::rdm_bio_list_pop(&mut self.list) };
        if b.is_null() {
            return None;
        }
        // SAFETY: Every bio in the list was a `DmBio<T>` given up by `push`.
        Some(unsafe { DmBio::from_raw(b) })
    }

    /// Moves all bios out into a new list, leaving this one empty.
    pub fn take(&mut self) -> Self {
        core::mem::take(self)
    }

    /// Submits every bio, in order, under one block plug (C's
    /// `submit_bios()` in dm-clone).
    pub fn submit_all(mut self) {
        with_plug(|| {
            while let Some(bio) = self.pop() {
                bio.submit();
            }
        });
    }
}

/// Runs `f` under a block plug (`blk_start_plug()` .. `blk_finish_plug()`),
/// as C's workers do around their submission loops: the bios `f` submits
/// share one time stamp and, to a request-based device, go down as a batch
/// when it ends. Nested plugs are no-ops (the outer one flushes). `f` may
/// sleep: the scheduler flushes the plug first.
pub fn with_plug<R>(f: impl FnOnce() -> R) -> R {
    let mut plug = MaybeUninit::<bindings::blk_plug>::uninit();
    // SAFETY: `blk_start_plug()` initialises the plug and, unless the task
    // already has one, makes it the task's; it stays in this frame, never
    // moved, until `blk_finish_plug()` below, on the same task (`f` runs
    // synchronously here and cannot keep it).
    unsafe { bindings::blk_start_plug(plug.as_mut_ptr()) };
    let r = f();
    // SAFETY: Started above on this task and still in place; this detaches
    // it from the task if it is the task's.
    unsafe { bindings::blk_finish_plug(plug.as_mut_ptr()) };
    r
}

impl<T: Operations> Drop for BioList<T> {
    fn drop(&mut self) {
        while let Some(bio) = self.pop() {
            bio.end(BlkStatus::IOERR);
        }
    }
}
