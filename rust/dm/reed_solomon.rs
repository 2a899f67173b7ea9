// SPDX-License-Identifier: GPL-2.0

//! Reed-Solomon decoding (the kernel's `lib/reed_solomon`, in
//! `reed_solomon.ko`) with decoders from a pool, so that taking one on the
//! I/O path never fails: [`RsPool::alloc`] takes it from a `mempool`
//! (`GFP_NOIO`), which waits for one to be given back rather than fail, as
//! C dm-verity's FEC does (`rs_pool`). The pool's elements are made and
//! freed in C (`rdm_rs_pool_create()` in `helpers.c`, as C's
//! `fec_rs_alloc()`/`fec_rs_free()`); byte buffers come from
//! [`super::mempool::BufferPool`].
//!
//! The decoders are those of dm-verity FEC: RS(255, 255 - roots) over
//! GF(2^8) with the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11d), first
//! consecutive root 0 and primitive element 1. Compiled only into the
//! modules built with `--cfg dm_reed_solomon`, which depend on
//! `reed_solomon.ko`.
//!
//! C headers: [`include/linux/rslib.h`](srctree/include/linux/rslib.h),
//! [`include/linux/mempool.h`](srctree/include/linux/mempool.h)

use super::{bindings, context::might_sleep, Sleepable};
use core::ptr::NonNull;
use kernel::{error::code::*, prelude::*};

/// Length of a codeword: symbols of 8 bits, `2^8 - 1` of them.
pub const RS_CODEWORD: usize = 255;

/// The number of online CPUs: the reserve of a pool that each worker of an
/// unbound workqueue may draw from at once.
pub use super::workqueue::num_online_cpus;

/// A pool of Reed-Solomon decoders with `roots` parity symbols, each usable
/// by one thread at a time (a decoder has its own work buffers).
///
/// # Invariants
///
/// `pool` is a live mempool owned by this value whose elements are
/// `rs_control`s made by `init_rs_gfp(8, 0x11d, 0, 1, roots, ..)`, with
/// `roots` in `1..RS_CODEWORD`.
pub struct RsPool {
    pool: NonNull<bindings::mempool_s>,
    roots: usize,
}

// SAFETY: mempools are internally locked and usable from any thread.
unsafe impl Send for RsPool {}
// SAFETY: As above.
unsafe impl Sync for RsPool {}

impl RsPool {
    /// Creates a pool of decoders for codewords with `roots` parity symbols
    /// (`1..=254`), `reserve` of them made now and kept for when memory is
    /// short.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn new(roots: u32, reserve: u32) -> Result<Self> {
        might_sleep();
        if roots == 0 || roots as usize >= RS_CODEWORD {
            return Err(EINVAL);
        }
        // SAFETY: Creates a pool calling back into our helpers' allocator,
        // whose pool data is `roots`, a plain integer.
        let p = unsafe { bindings::rdm_rs_pool_create(reserve as i32, roots as i32) };
        let pool = NonNull::new(p).ok_or(ENOMEM)?;
        // INVARIANT: created above with `roots` in range.
        Ok(Self {
            pool,
            roots: roots as usize,
        })
    }

    /// Parity symbols per codeword.
    pub fn roots(&self) -> usize {
        self.roots
    }

    /// Takes a decoder, waiting for one to be given back if none can be
    /// allocated (`GFP_NOIO`): never fails.
    ///
    /// # Context
    ///
    /// May sleep (process context): `_ctx` is the proof.
    pub fn alloc(&self, _ctx: &Sleepable<'_>) -> RsDecoder<'_> {
        might_sleep();
        // `mempool_alloc()` with `__GFP_DIRECT_RECLAIM` (part of
        // `GFP_NOIO`) never returns NULL: it waits for an element instead.
        // Should that ever change, asking again is still correct.
        loop {
            // SAFETY: `pool` is live (invariant).
            let p = unsafe { bindings::rdm_mempool_alloc_noio(self.pool.as_ptr()) };
            if let Some(rs) = NonNull::new(p.cast::<bindings::rs_control>()) {
                // INVARIANT: an element of this pool, taken now.
                return RsDecoder { rs, pool: self };
            }
        }
    }
}

impl Drop for RsPool {
    fn drop(&mut self) {
        // SAFETY: `pool` is live and owned (invariant); every decoder taken
        // from it borrows `self` and so was given back already.
        unsafe { bindings::rdm_mempool_destroy(self.pool.as_ptr()) };
    }
}

/// A Reed-Solomon decoder taken from an [`RsPool`]; given back on drop.
///
/// # Invariants
///
/// `rs` is an element of `pool`'s mempool, taken by this value alone.
pub struct RsDecoder<'a> {
    rs: NonNull<bindings::rs_control>,
    pool: &'a RsPool,
}

impl RsDecoder<'_> {
    /// Decodes one codeword in place (`decode_rs8()`): `data` is its data
    /// part (shortened codes: at most `255 - roots` bytes; the rest counts as
    /// zeroes), `parity` its `roots` parity bytes, `erasures` the indexes in
    /// `data` of symbols known to be bad (at most `roots`).
    ///
    /// Returns the number of symbols corrected; `EBADMSG` when the codeword
    /// has more errors than the code can correct, `EINVAL` for arguments
    /// out of range.
    ///
    /// # Context
    ///
    /// Any (never sleeps).
    pub fn decode(&mut self, data: &mut [u8], parity: &[u8], erasures: &[u8]) -> Result<u32> {
        let roots = self.pool.roots;
        if parity.len() != roots
            || data.len() + roots > RS_CODEWORD
            || erasures.len() > roots
            || erasures.iter().any(|&e| e as usize >= data.len())
        {
            return Err(EINVAL);
        }
        let mut par = [0u16; RS_CODEWORD];
        for (d, &s) in par.iter_mut().zip(parity) {
            *d = u16::from(s);
        }
        // decode_rs8() writes the positions of the errors it found (at most
        // `roots`) over the erasure positions.
        let mut eras = [0i32; RS_CODEWORD];
        for (d, &s) in eras.iter_mut().zip(erasures) {
            *d = i32::from(s);
        }
        // SAFETY: `rs` is a decoder we hold alone (invariant) for `roots`
        // parity symbols; `data` has `data.len()` bytes, `par` at least
        // `roots` symbols below 2^8, `eras` room for `roots` positions, and
        // `erasures.len()` of them are valid indexes into `data`. With a
        // NULL `corr`, decode_rs8() corrects `data` and `par` in place.
        let r = unsafe {
            bindings::decode_rs8(
                self.rs.as_ptr(),
                data.as_mut_ptr(),
                par.as_mut_ptr(),
                data.len() as i32,
                core::ptr::null_mut(),
                erasures.len() as i32,
                eras.as_mut_ptr(),
                0,
                core::ptr::null_mut(),
            )
        };
        if r < 0 {
            Err(Error::from_errno(r))
        } else {
            Ok(r as u32)
        }
    }
}

impl Drop for RsDecoder<'_> {
    fn drop(&mut self) {
        // SAFETY: `rs` was taken from this pool and is given back once.
        unsafe { bindings::rdm_mempool_free(self.rs.as_ptr().cast(), self.pool.pool.as_ptr()) };
    }
}

// SAFETY: A decoder is used by one thread at a time (`&mut self`) and may
// move between threads.
unsafe impl Send for RsDecoder<'_> {}
