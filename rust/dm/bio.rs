// SPDX-License-Identifier: GPL-2.0

//! Bios handed to a target by dm core, and who owns them when.
//!
//! - [`MapBio`]: the bio of one `map` call. Only it can be given back to dm
//!   core as that call's [`MapResult`].
//! - [`DmBio`]: a bio the target kept ([`MapBio::keep`]); the target must
//!   submit or end it (dropping it ends it with an error).
//! - [`EndIoBio`]: the bio of one `end_io` call, a view; dm core owns it.

use super::{bindings, features, Device, Operations, Sleepable};
use core::{
    marker::PhantomData,
    mem::{ManuallyDrop, MaybeUninit},
    pin::Pin,
    ptr::NonNull,
};
use kernel::{error::to_result, prelude::*, str::CStr};

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

    pub(super) fn raw(self) -> bindings::blk_status_t {
        self.0
    }

    pub(super) fn from_raw(raw: bindings::blk_status_t) -> Self {
        Self(raw)
    }
}

/// The read accessors shared by the bio handles ([`DmBio`], [`MapBio`],
/// [`EndIoBio`]): each has a `raw(&self) -> &bindings::bio`.
macro_rules! bio_accessors {
    () => {
        /// First sector (512 bytes) of the bio, relative to the mapped device
        /// until the target remaps it.
        #[inline]
        pub fn sector(&self) -> u64 {
            self.raw().bi_iter.bi_sector
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
            Op::of(self.raw().bi_opf)
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

        /// Whether the payload must be on stable storage on completion
        /// (`REQ_FUA`).
        #[inline]
        pub fn is_fua(&self) -> bool {
            self.raw().bi_opf & bindings::REQ_FUA != 0
        }

        /// Which of the target's `num_*_bios` copies this is, for flushes
        /// and discards sent to several underlying devices.
        #[inline]
        pub fn target_bio_nr(&self) -> u32 {
            // SAFETY: The bio is a live dm clone (the handle's invariants).
            unsafe { bindings::dm_bio_get_target_bio_nr(self.bio.as_ptr()) }
        }
    };
}

/// The accessors that change a bio the handle owns or maps ([`DmBio`],
/// [`MapBio`]): each has a `raw_mut(&mut self) -> &mut bindings::bio`.
macro_rules! bio_mutators {
    () => {
        /// Points the bio at `sector` of its (new) device.
        #[inline]
        pub fn set_sector(&mut self, sector: u64) {
            self.raw_mut().bi_iter.bi_sector = sector;
        }

        /// Sends the bio to `dev` (`bio_set_dev()`); the sector is unchanged.
        #[inline]
        pub fn set_dev(&mut self, dev: &Device) {
            // SAFETY: The bio is live and ours (the handle's invariants);
            // `dev`'s block device stays open until the destructor of the
            // target that opened it has returned (see `Device`), which dm
            // core calls only once every bio of its table has completed.
            unsafe { bindings::rdm_bio_set_dev(self.bio.as_ptr(), dev.bdev()) };
        }

        /// The target's per-bio data.
        #[inline]
        pub fn data(&mut self) -> Pin<&mut T::PerBio> {
            let p = super::target::per_bio_data::<T>(self.bio.as_ptr());
            // SAFETY: The per-bio data was initialised by the map trampoline,
            // lives as long as the bio in memory that never moves, and only
            // this handle accesses it (the handle's invariants).
            unsafe { Pin::new_unchecked(&mut *p) }
        }

        /// Restricts a discard to `sectors` sectors from `sector` (C's
        /// `trim_bio()` in dm-clone: a discard that only covers whole
        /// regions). `EINVAL`, and the bio unchanged, for a bio that is not
        /// a discard or a range that is not within the bio's.
        pub fn trim_discard(&mut self, sector: u64, sectors: u32) -> Result {
            let (start, len) = (self.sector(), u64::from(self.sectors()));
            let end = sector.checked_add(u64::from(sectors)).ok_or(EINVAL)?;
            if self.op() != Op::Discard || sector < start || end > start + len {
                return Err(EINVAL);
            }
            let b = self.raw_mut();
            b.bi_iter.bi_sector = sector;
            // Cannot overflow: no more sectors than the bio has.
            b.bi_iter.bi_size = sectors << 9;
            Ok(())
        }
    };
}

impl Op {
    #[inline]
    fn of(opf: u32) -> Self {
        match opf & bindings::REQ_OP_MASK {
            bindings::req_op_REQ_OP_READ => Op::Read,
            bindings::req_op_REQ_OP_WRITE => Op::Write,
            bindings::req_op_REQ_OP_FLUSH => Op::Flush,
            bindings::req_op_REQ_OP_DISCARD => Op::Discard,
            bindings::req_op_REQ_OP_SECURE_ERASE => Op::SecureErase,
            bindings::req_op_REQ_OP_WRITE_ZEROES => Op::WriteZeroes,
            other => Op::Other(other),
        }
    }
}

/// Ends `bio` with an I/O error: what dropping an owned bio handle does, so
/// that nothing waits forever on a lost bio.
///
/// # Safety
///
/// The caller owns the live bio and gives it up.
unsafe fn end_dropped(bio: *mut bindings::bio, name: &CStr) {
    kernel::pr_warn!("device-mapper: {}: bio dropped without completion\n", name);
    // SAFETY: The caller owns the live bio and nobody else will end it.
    unsafe {
        (*bio).bi_status = bindings::BLK_STS_IOERR;
        bindings::bio_endio(bio);
    }
}

/// A bio that dm core handed to target `T` and that the target owns: a
/// clone of the mapped device's bio, restricted to that target, with
/// `T::PerBio` beside it. [`MapBio::keep`] makes one in `map`.
///
/// Owning a `DmBio` means owning the bio: the target submits it or ends it.
/// Dropping one that was never given back ends it with an I/O error so that
/// nothing waits forever on a lost bio. A `DmBio` can never be given back to
/// dm core as the result of a `map` call: only that call's [`MapBio`] can.
///
/// # Invariants
///
/// - `bio` points to a live bio that dm core allocated for a target of type
///   `T` (so its per-bio data, in `bi_private` or beside the bio, is
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
    pub(super) unsafe fn from_raw(bio: *mut bindings::bio) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            // SAFETY: A live bio is not NULL (caller's guarantee).
            bio: unsafe { NonNull::new_unchecked(bio) },
            _target: PhantomData,
        }
    }

    /// Gives up ownership without completing the bio.
    pub(super) fn into_raw(self) -> *mut bindings::bio {
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

    bio_accessors!();
    bio_mutators!();

    /// Completes the bio with `status` (`bio_endio()`).
    ///
    /// # Context
    ///
    /// Any context.
    pub fn end(self, status: BlkStatus) {
        let bio = self.into_raw();
        // SAFETY: We owned the live bio and give it back to the block layer.
        unsafe {
            (*bio).bi_status = status.raw();
            bindings::bio_endio(bio);
        }
    }

    /// Submits the (remapped) bio to its device (`submit_bio_noacct()`), for
    /// a target that kept the bio in `map` ([`MapBio::keep`]) and sends it
    /// later, e.g. from a worker.
    ///
    /// # Context
    ///
    /// Process context (the block layer may sleep for a request tag).
    pub fn submit(self) {
        let bio = self.into_raw();
        // SAFETY: We owned the live bio; the block layer takes it over.
        unsafe { bindings::submit_bio_noacct(bio) };
    }
}

impl<T: Operations> Drop for DmBio<T> {
    fn drop(&mut self) {
        // SAFETY: We own the live bio (invariants) and give it up here.
        unsafe { end_dropped(self.bio.as_ptr(), T::NAME) };
    }
}

/// An invariant lifetime: the brand of one `map` call.
type Brand<'m> = PhantomData<fn(&'m ()) -> &'m ()>;

/// The bio of one [`Operations::map`] call, branded with that call's
/// lifetime `'m`.
///
/// The target remaps it and gives it back ([`MapBio::remap`]), fails it
/// ([`MapBio::kill`]), pushes it back to dm core ([`MapBio::requeue`]), or
/// keeps it ([`MapBio::keep`], then returns [`MapResult::submitted`]). The
/// [`MapResult<'m>`] that gives a bio back can only be made from this value,
/// so dm core is always told about the bio it is mapping and no other: a
/// target cannot return a bio it kept earlier, and cannot keep this handle
/// beyond the call (`'m` is invariant and local to the call). Dropping it
/// ends the bio with an I/O error.
///
/// # Invariants
///
/// - `bio` is the clone dm core is mapping in the `map` call `'m` brands, for
///   the constructed target `ti` of type `T`; its `T::PerBio` is initialised;
///   only this value accesses the bio and its per-bio data.
/// - The value does not outlive that call.
pub struct MapBio<'m, T: Operations> {
    bio: NonNull<bindings::bio>,
    ti: NonNull<bindings::dm_target>,
    _brand: Brand<'m>,
    _target: PhantomData<(T, *mut ())>,
}

impl<'m, T: Operations> MapBio<'m, T> {
    /// # Safety
    ///
    /// The type invariants must hold for `bio` and `ti`, for a lifetime `'m`
    /// that ends when the `map` call returns.
    pub(super) unsafe fn from_raw(bio: *mut bindings::bio, ti: *mut bindings::dm_target) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            // SAFETY: Live pointers are not NULL (caller's guarantee).
            bio: unsafe { NonNull::new_unchecked(bio) },
            // SAFETY: As above.
            ti: unsafe { NonNull::new_unchecked(ti) },
            _brand: PhantomData,
            _target: PhantomData,
        }
    }

    pub(super) fn as_raw(&self) -> *mut bindings::bio {
        self.bio.as_ptr()
    }

    pub(super) fn target_raw(&self) -> *mut bindings::dm_target {
        self.ti.as_ptr()
    }

    fn raw(&self) -> &bindings::bio {
        // SAFETY: `bio` is live and only accessed through `self` (invariants).
        unsafe { self.bio.as_ref() }
    }

    fn raw_mut(&mut self) -> &mut bindings::bio {
        // SAFETY: `bio` is live and only accessed through `self` (invariants).
        unsafe { self.bio.as_mut() }
    }

    bio_accessors!();
    bio_mutators!();

    /// The proof that this `map` call may sleep, for the length of the call
    /// (`'m`): to allocate with `GFP_NOIO` from a mempool
    /// ([`super::mempool::Mempool::alloc`]), as C targets do in `map`
    /// (dm-clone's `alloc_hydration()`). Never to wait for I/O: the bio
    /// being mapped may be what that I/O waits for (a deadlock, not a
    /// crash; the type does not tell waits apart).
    ///
    /// Only for a target that does not declare [`features::NOWAIT`]: a
    /// build error otherwise. The block layer refuses `REQ_NOWAIT` bios
    /// (whose submitter must not be blocked) on a device whose table has a
    /// target without `NOWAIT`, and dm core maps a `REQ_NOWAIT` read or
    /// write only to a `NOWAIT` target (it fails it before `map` for any
    /// other, `__split_and_process_bio()`). Every other bio it maps under an
    /// SRCU (sleepable) read lock of the table, having just allocated the
    /// clone (or, for discards and the like, its clones) with `GFP_NOIO`
    /// itself.
    pub fn sleepable(&self) -> Sleepable<'m> {
        const {
            assert!(
                T::FEATURES & features::NOWAIT == 0,
                "a NOWAIT target's map must not sleep: no Sleepable there"
            )
        };
        // SAFETY: `T` does not support `REQ_NOWAIT` (checked above), so dm
        // core maps this bio in a context that may sleep, as it just did
        // (`alloc_tio(GFP_NOIO)`), with only the table's SRCU read lock
        // held. The token lives for the `map` call `'m` brands.
        unsafe { Sleepable::new() }
    }

    /// Accepts only the first `sectors` of the bio; dm core sends the rest to
    /// the target in another bio, after this one (`dm_accept_partial_bio()`).
    /// `EINVAL`, and the bio unchanged, for an operation other than a read or
    /// a write, for a zoned device, and for no sectors or more than the bio
    /// has.
    pub fn accept_partial(&mut self, sectors: u32) -> Result {
        // SAFETY: The bio is the clone being mapped in this `map` call
        // (invariants), so dm core's length for it is live; the helper
        // checks the rest of `dm_accept_partial_bio()`'s conditions.
        to_result(unsafe { bindings::rdm_accept_partial_bio(self.bio.as_ptr(), sectors) })
    }

    fn into_raw(self) -> *mut bindings::bio {
        ManuallyDrop::new(self).bio.as_ptr()
    }

    fn give_back(self, code: u32) -> MapResult<'m> {
        // dm core takes the bio back with the code.
        self.into_raw();
        MapResult::new(code)
    }

    /// The bio was remapped (device and sector set): dm core submits it.
    #[inline]
    pub fn remap(self) -> MapResult<'m> {
        self.give_back(bindings::DM_MAPIO_REMAPPED)
    }

    /// Fails the bio with an I/O error.
    pub fn kill(self) -> MapResult<'m> {
        self.give_back(bindings::DM_MAPIO_KILL)
    }

    /// Pushes the bio back to dm core to be mapped again (only while
    /// suspending with `noflush`; otherwise dm core fails it).
    pub fn requeue(self) -> MapResult<'m> {
        self.give_back(bindings::DM_MAPIO_REQUEUE)
    }

    /// Keeps the bio: the target submits or ends it itself, now or later.
    /// Return [`MapResult::submitted`] from `map`.
    #[inline]
    pub fn keep(self) -> DmBio<T> {
        // SAFETY: The bio is a live clone of a `T` target with initialised
        // per-bio data, owned by `self` and handed over (invariants).
        unsafe { DmBio::from_raw(self.into_raw()) }
    }
}

impl<T: Operations> Drop for MapBio<'_, T> {
    fn drop(&mut self) {
        // SAFETY: We own the live bio (invariants) and give it up here; the
        // `map` trampoline then tells dm core it was submitted.
        unsafe { end_dropped(self.bio.as_ptr(), T::NAME) };
    }
}

/// What `map` did with its bio: made by [`MapBio`]'s consuming methods, or
/// [`MapResult::submitted`].
///
/// # Invariants
///
/// `code` is a `DM_MAPIO_*` value that bio-based dm core implements; a code
/// other than `DM_MAPIO_SUBMITTED` was made from the [`MapBio`] of the call
/// `'m` brands.
pub struct MapResult<'m> {
    code: u32,
    _brand: Brand<'m>,
}

impl MapResult<'_> {
    fn new(code: u32) -> Self {
        Self {
            code,
            _brand: PhantomData,
        }
    }

    /// The target kept the bio ([`MapBio::keep`]) or ended it: dm core leaves
    /// it alone.
    #[inline]
    pub fn submitted() -> Self {
        Self::new(bindings::DM_MAPIO_SUBMITTED)
    }

    pub(super) fn code(&self) -> u32 {
        self.code
    }
}

/// The bio of one [`Operations::end_io`] call: a view of a bio the target
/// mapped, completing now. dm core keeps ownership; the target reads the bio
/// and its per-bio data.
///
/// # Invariants
///
/// `bio` is a live clone mapped by a target of type `T` (its `T::PerBio`
/// initialised), completing in the `end_io` call `'e` spans; only this value
/// accesses its per-bio data during the call.
pub struct EndIoBio<'e, T: Operations> {
    bio: NonNull<bindings::bio>,
    _call: PhantomData<&'e mut T>,
}

impl<T: Operations> EndIoBio<'_, T> {
    /// # Safety
    ///
    /// The type invariants must hold for `bio` for the returned lifetime.
    pub(super) unsafe fn from_raw(bio: *mut bindings::bio) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            // SAFETY: A live bio is not NULL (caller's guarantee).
            bio: unsafe { NonNull::new_unchecked(bio) },
            _call: PhantomData,
        }
    }

    fn raw(&self) -> &bindings::bio {
        // SAFETY: `bio` is live during the call (invariants); dm core does not
        // change it while the target looks.
        unsafe { self.bio.as_ref() }
    }

    bio_accessors!();

    /// The target's per-bio data.
    #[inline]
    pub fn data(&mut self) -> Pin<&mut T::PerBio> {
        let p = super::target::per_bio_data::<T>(self.bio.as_ptr());
        // SAFETY: Initialised by the map trampoline, never moved, and only
        // this value accesses it during the call (invariants).
        unsafe { Pin::new_unchecked(&mut *p) }
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
