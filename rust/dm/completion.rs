// SPDX-License-Identifier: GPL-2.0

//! Taking over a bio's completion: post-processing of read data in process
//! context before dm core sees the bio complete (what dm-verity does to
//! verify data), optionally tried first in the BH workqueue (dm-verity's
//! `try_verify_in_tasklet`).

use super::{
    bindings, hash::HashInput, Bh, BlkStatus, MapBio, MapResult, Operations, Sleepable, Target,
    Workqueue,
};
use core::{marker::PhantomData, pin::Pin, ptr::NonNull};
use kernel::{error::code::EIO, prelude::*, types::Opaque};

/// Per-bio state of a target that takes over completions: its
/// `Operations::PerBio`.
///
/// # Invariants
///
/// While a bio is intercepted (between [`DmBio::submit_intercepted`] and the
/// end of the completion work), `bio`, `ti`, `orig_end_io`, `orig_private`
/// and `iter` describe it, and `work` is initialised.
#[repr(C)]
pub struct CompletionHook {
    work: Opaque<bindings::work_struct>,
    bio: *mut bindings::bio,
    ti: *mut bindings::dm_target,
    orig_end_io: bindings::bio_end_io_t,
    orig_private: *mut core::ffi::c_void,
    iter: bindings::bvec_iter,
}

impl Default for CompletionHook {
    fn default() -> Self {
        Self {
            work: Opaque::uninit(),
            bio: core::ptr::null_mut(),
            ti: core::ptr::null_mut(),
            orig_end_io: None,
            orig_private: core::ptr::null_mut(),
            iter: bindings::bvec_iter::default(),
        }
    }
}

// SAFETY: The hook moves between the submitting CPU, the completion
// interrupt and a worker, strictly one after the other.
unsafe impl Send for CompletionHook {}

/// A target that verifies or transforms the data of its bios after the
/// underlying device completed them.
pub trait CompletionHandler: Operations<PerBio = CompletionHook> {
    /// The workqueue the completion work runs on.
    fn completion_queue(&self) -> &Workqueue;

    /// Runs in process context (may sleep: `ctx` is the proof) once the
    /// underlying device has completed `bio`; returns the status the bio
    /// completes with.
    fn bio_completed(
        &self,
        target: &Target,
        ctx: &Sleepable<'_>,
        bio: &mut CompletedBio<'_>,
    ) -> BlkStatus;

    /// Whether completions are tried in the BH workqueue first
    /// ([`CompletionHandler::bio_completed_bh`]). Asked in the bio's
    /// `bi_end_io`, which may run in interrupt context.
    fn try_bh(&self) -> bool {
        false
    }

    /// Runs in the BH workqueue (softirq: must not sleep) once the
    /// underlying device has completed `bio`, if [`CompletionHandler::try_bh`]
    /// said so. [`BhOutcome::Done`] completes the bio successfully at once;
    /// [`BhOutcome::Defer`] (whatever needs to sleep: I/O, error handling,
    /// or failing the bio) runs [`CompletionHandler::bio_completed`] on the
    /// completion queue instead, with the bio's data walked again from its
    /// start.
    ///
    /// Gets no [`Target`] but a [`Bh`] token: what may sleep is out of reach
    /// (see [`Bh`]).
    fn bio_completed_bh(&self, _bh: &Bh<'_>, _bio: &mut CompletedBio<'_>) -> BhOutcome {
        BhOutcome::Defer
    }
}

/// What [`CompletionHandler::bio_completed_bh`] made of a bio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BhOutcome {
    /// All done: the bio completes successfully, now.
    Done,
    /// Not possible without sleeping: try again in process context.
    Defer,
}

impl<'m, T: CompletionHandler> MapBio<'m, T> {
    /// Submits the remapped bio to its device, and has
    /// [`CompletionHandler::bio_completed`] run before it completes; returns
    /// `map`'s result. The target the completion is handed to is the one
    /// this bio is being mapped for (a `T`), so the type is known.
    ///
    /// # Context
    ///
    /// `map`.
    pub fn submit_intercepted(mut self) -> MapResult<'m> {
        const {
            assert!(
                !super::target::per_bio_in_private::<T>(),
                "the hook must not live in bi_private, which it saves and replaces"
            )
        };
        let bio = self.as_raw();
        let ti = self.target_raw();
        let hook: *mut CompletionHook = {
            // SAFETY: Only the pinned address is taken; nothing is moved.
            unsafe { Pin::get_unchecked_mut(self.data()) }
        };
        // SAFETY: We own the live bio (`MapBio` invariants) and its hook; the
        // bio is not yet submitted, so nothing else looks at these fields.
        // `ti` is the constructed target of type `T` the bio is mapped for.
        unsafe {
            (*hook).bio = bio;
            (*hook).ti = ti;
            (*hook).orig_end_io = (*bio).bi_end_io;
            (*hook).orig_private = (*bio).bi_private;
            (*hook).iter = (*bio).bi_iter;
            (*bio).bi_end_io = Some(intercepted_end_io::<T>);
            (*bio).bi_private = hook.cast();
        }
        self.keep().submit();
        MapResult::submitted()
    }
}

/// `bi_end_io` of an intercepted bio: may run in interrupt context, so it
/// only queues the completion work.
///
/// # Safety
///
/// `bio` must be a bio submitted by [`DmBio::submit_intercepted`] for a
/// target of type `T`, completing now.
unsafe extern "C" fn intercepted_end_io<T: CompletionHandler>(bio: *mut bindings::bio) {
    // SAFETY: `bi_private` was set to the hook by `submit_intercepted`.
    let hook = unsafe { (*bio).bi_private.cast::<CompletionHook>() };
    // SAFETY: The hook is valid while the bio is intercepted; the target is
    // constructed and cannot be destroyed while one of its bios is in flight.
    // The work item is idle: it is queued at most once per completion.
    unsafe {
        let work = Opaque::raw_get(core::ptr::addr_of!((*hook).work));
        let this = super::target::instance::<T>((*hook).ti);
        if this.try_bh() {
            // Its own lockdep class: see `rdm_init_work_bh`.
            bindings::rdm_init_work_bh(work, Some(bh_completion_work::<T>));
            bindings::rdm_queue_work_bh(work);
        } else {
            bindings::rdm_init_work(work, Some(completion_work::<T>));
            bindings::rdm_queue_work(this.completion_queue().as_raw(), work);
        }
    }
}

/// The completion work in the BH workqueue: completes the bio if the target
/// can do without sleeping, else queues the process-context completion
/// work.
///
/// # Safety
///
/// `work` must be the `work` of the hook of an intercepted bio of a target
/// of type `T`, queued on the BH workqueue by `intercepted_end_io`.
unsafe extern "C" fn bh_completion_work<T: CompletionHandler>(work: *mut bindings::work_struct) {
    // `work` is the first field of the `repr(C)` hook.
    let hook = work.cast::<CompletionHook>();
    // SAFETY: The hook describes the intercepted bio (invariants), whose
    // target is alive until the bio completes. The work item is not pending
    // any more once its function runs, and the workqueue does not touch it
    // after that, so it may be set up and queued again. We run in the BH
    // workqueue, for the `Bh` token.
    unsafe {
        let bio = (*hook).bio;
        let this = super::target::instance::<T>((*hook).ti);
        // A copy of the iterator: a deferred completion walks the data again.
        let mut completed = CompletedBio {
            bio,
            iter: (*hook).iter,
            _p: PhantomData,
        };
        let bh = Bh::new();
        match this.bio_completed_bh(&bh, &mut completed) {
            BhOutcome::Done => {
                bindings::rdm_bh_completion_count();
                end_intercepted(hook, BlkStatus::OK);
            }
            BhOutcome::Defer => {
                bindings::rdm_init_work(work, Some(completion_work::<T>));
                bindings::rdm_queue_work(this.completion_queue().as_raw(), work);
            }
        }
    }
}

/// Gives the bio back its completion and completes it with `status`.
///
/// # Safety
///
/// `hook` must be the hook of an intercepted bio whose completion work is
/// running, and the bio must not be used after this.
unsafe fn end_intercepted(hook: *mut CompletionHook, status: BlkStatus) {
    // SAFETY: The hook describes the live bio (caller).
    unsafe {
        let bio = (*hook).bio;
        (*bio).bi_end_io = (*hook).orig_end_io;
        (*bio).bi_private = (*hook).orig_private;
        (*bio).bi_status = status.raw();
        bindings::bio_endio(bio);
    }
}

/// The completion work: lets the target see the data, then completes the bio.
///
/// # Safety
///
/// `work` must be the `work` of the hook of an intercepted bio of a target
/// of type `T`, queued by `intercepted_end_io` or `bh_completion_work` on the
/// target's completion queue (a [`Workqueue`]: never `WQ_BH`, so this runs
/// in process context with no lock held).
unsafe extern "C" fn completion_work<T: CompletionHandler>(work: *mut bindings::work_struct) {
    // `work` is the first field of the `repr(C)` hook.
    let hook = work.cast::<CompletionHook>();
    // SAFETY: The hook describes the intercepted bio (invariants), whose
    // target is alive until the bio completes, which happens below.
    unsafe {
        let bio = (*hook).bio;
        let ti = (*hook).ti;
        let mut completed = CompletedBio {
            bio,
            iter: (*hook).iter,
            _p: PhantomData,
        };
        // The completion queue runs work in process context (above); the
        // token lives for this call.
        let ctx = Sleepable::new();
        let status = super::target::instance::<T>(ti).bio_completed(
            Target::from_raw(ti),
            &ctx,
            &mut completed,
        );
        end_intercepted(hook, status);
    }
}

/// A bio whose I/O on the underlying device has completed, seen by
/// [`CompletionHandler::bio_completed`]. Its data can be read and changed
/// one block at a time, from the start of the bio as submitted.
///
/// # Invariants
///
/// `bio` is an intercepted, completed bio not yet ended; `iter` walks its
/// data as it was at submission.
pub struct CompletedBio<'a> {
    bio: *mut bindings::bio,
    iter: bindings::bvec_iter,
    _p: PhantomData<&'a mut bindings::bio>,
}

impl CompletedBio<'_> {
    /// The status the underlying device completed the bio with.
    pub fn status(&self) -> BlkStatus {
        // SAFETY: `bio` is live (invariant).
        BlkStatus::from_raw(unsafe { (*self.bio).bi_status })
    }

    /// Whether this is a readahead (failures are expected and not errors).
    pub fn is_readahead(&self) -> bool {
        // SAFETY: `bio` is live (invariant).
        unsafe { (*self.bio).bi_opf & bindings::REQ_RAHEAD != 0 }
    }

    /// Sector of the underlying device the data not yet walked starts at.
    pub fn sector(&self) -> u64 {
        self.iter.bi_sector
    }

    /// Bytes of data not yet walked.
    pub fn remaining(&self) -> u32 {
        self.iter.bi_size
    }

    /// Runs `f` on the next `block_size` bytes of data, then moves past them.
    /// Fails with `EIO` if they are not contiguous in memory (a block that
    /// spans pages; targets prevent it with their DMA alignment).
    pub fn next_block<R>(
        &mut self,
        block_size: u32,
        f: impl FnOnce(&mut BioData<'_>) -> R,
    ) -> Result<R> {
        if block_size == 0 || self.iter.bi_size < block_size {
            return Err(EIO);
        }
        let mut len: u32 = 0;
        // SAFETY: `bio` is live and `iter` within its data (invariant).
        let p = unsafe { bindings::rdm_bio_iter_map(self.bio, &mut self.iter, &mut len) };
        let r = match NonNull::new(p.cast::<u8>()) {
            Some(ptr) if len >= block_size => {
                // INVARIANT: the segment is mapped for `len >= block_size`
                // bytes until it is unmapped below, after `f`.
                let mut data = BioData {
                    ptr,
                    len: block_size as usize,
                    _p: PhantomData,
                };
                Ok(f(&mut data))
            }
            _ => Err(EIO),
        };
        // SAFETY: Unmaps what `rdm_bio_iter_map` mapped, in order.
        unsafe { bindings::rdm_unmap_local(p) };
        // SAFETY: `block_size <= bi_size` was checked.
        unsafe { bindings::rdm_bio_advance_iter(self.bio, &mut self.iter, block_size) };
        r
    }

    /// Skips the next `bytes` of data.
    pub fn skip(&mut self, bytes: u32) {
        let bytes = bytes.min(self.iter.bi_size);
        // SAFETY: `bytes <= bi_size`.
        unsafe { bindings::rdm_bio_advance_iter(self.bio, &mut self.iter, bytes) };
    }
}

/// One block of a bio's data, mapped for the length of a
/// [`CompletedBio::next_block`] call.
///
/// Not a `&mut [u8]`: the pages of a bio may be user memory (`O_DIRECT`)
/// that another thread writes while the device reads into it, which a Rust
/// slice must never see. The data is read and written only by C (`memcpy`,
/// `memset`, the crypto API), as C dm-verity does.
///
/// # Invariants
///
/// `ptr` is mapped and valid for `len` bytes for `'a`.
pub struct BioData<'a> {
    ptr: NonNull<u8>,
    len: usize,
    _p: PhantomData<&'a mut u8>,
}

impl BioData<'_> {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the block is empty (never: blocks have a size).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets every byte to `byte`.
    pub fn fill(&mut self, byte: u8) {
        // SAFETY: Valid for `len` bytes (invariant).
        unsafe { bindings::rdm_memset(self.ptr.as_ptr().cast(), byte.into(), self.len) };
    }

    /// Replaces the data with `src`; `EINVAL` if the lengths differ.
    pub fn copy_from_slice(&mut self, src: &[u8]) -> Result {
        if src.len() != self.len {
            return Err(EINVAL);
        }
        // SAFETY: Both are valid for `len` bytes and do not overlap (`src`
        // is a Rust slice, which bio pages never are).
        unsafe { bindings::rdm_memcpy(self.ptr.as_ptr().cast(), src.as_ptr().cast(), self.len) };
        Ok(())
    }

    /// Copies the data into `dst`; `EINVAL` if the lengths differ.
    pub fn copy_to_slice(&self, dst: &mut [u8]) -> Result {
        if dst.len() != self.len {
            return Err(EINVAL);
        }
        // SAFETY: As in `copy_from_slice`.
        unsafe {
            bindings::rdm_memcpy(dst.as_mut_ptr().cast(), self.ptr.as_ptr().cast(), self.len)
        };
        Ok(())
    }
}

// SAFETY: Valid for `len` bytes while borrowed (invariant); the crypto API
// reads it from C.
unsafe impl HashInput for BioData<'_> {
    fn raw_parts(&self) -> (*const u8, usize) {
        (self.ptr.as_ptr(), self.len)
    }
}
