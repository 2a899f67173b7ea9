// SPDX-License-Identifier: GPL-2.0

//! Synchronous message digests of the kernel crypto API (`crypto_shash`).
//!
//! C header: [`include/crypto/hash.h`](srctree/include/crypto/hash.h)

use super::{bindings, error::from_err_ptr};
use core::ptr::NonNull;
use kernel::{
    error::{code::*, to_result},
    prelude::*,
};

/// Largest digest of any algorithm (`HASH_MAX_DIGESTSIZE`).
pub const MAX_DIGEST_SIZE: usize = bindings::HASH_MAX_DIGESTSIZE;
/// Largest exported hash state we accept (sha512's is 208 bytes).
pub const MAX_STATE_SIZE: usize = 512;

/// A hash transform, e.g. `sha256`, usable from many threads at once (each
/// computation has its own descriptor on the stack).
///
/// # Invariants
///
/// `tfm` is a live transform owned by this value, and its descriptor fits
/// `HASH_MAX_DESCSIZE` (checked in [`Shash::new`]); `digest_size` and
/// `state_size` are its sizes.
pub struct Shash {
    tfm: NonNull<bindings::crypto_shash>,
    // Kept here: they are checked on every digest, and asking the crypto API
    // is an out-of-line call each (these are static inlines in C).
    digest_size: usize,
    state_size: usize,
}

// SAFETY: A `crypto_shash` may be shared by threads; per-call state lives in
// descriptors.
unsafe impl Send for Shash {}
// SAFETY: As above.
unsafe impl Sync for Shash {}

/// `SHASH_DESC_ON_STACK()`: room for a descriptor of any algorithm.
#[repr(C, align(16))]
struct DescBuf([u8; bindings::HASH_MAX_DESCSIZE]);

impl Shash {
    /// Allocates the transform for algorithm `name` (`crypto_alloc_shash()`).
    pub fn new(name: &CStr) -> Result<Self> {
        // SAFETY: `name` is a valid string.
        let tfm = from_err_ptr(unsafe { bindings::crypto_alloc_shash(name.as_char_ptr(), 0, 0) })?;
        let tfm = NonNull::new(tfm).ok_or(ENOMEM)?;
        // SAFETY: `tfm` is live.
        let (digest_size, state_size) = unsafe {
            (
                bindings::rdm_crypto_shash_digestsize(tfm.as_ptr()) as usize,
                bindings::rdm_crypto_shash_statesize(tfm.as_ptr()) as usize,
            )
        };
        // Owned from here: dropped (freed) on the error paths below.
        let this = Self {
            tfm,
            digest_size,
            state_size,
        };
        let desc = core::mem::size_of::<bindings::shash_desc>();
        // SAFETY: `tfm` is live.
        let ctx = unsafe { bindings::rdm_crypto_shash_descsize(this.tfm.as_ptr()) } as usize;
        if desc + ctx > bindings::HASH_MAX_DESCSIZE
            || digest_size > MAX_DIGEST_SIZE
            || state_size > MAX_STATE_SIZE
        {
            return Err(EINVAL);
        }
        // INVARIANT: owned, descriptor size checked.
        Ok(this)
    }

    /// Digest size in bytes.
    pub fn digest_size(&self) -> usize {
        self.digest_size
    }

    /// Size of an exported state in bytes.
    pub fn state_size(&self) -> usize {
        self.state_size
    }

    /// The algorithm's name, e.g. `sha256`.
    pub fn alg_name(&self) -> &CStr {
        // SAFETY: `tfm` is live; the name lives as long as the algorithm.
        unsafe { CStr::from_char_ptr(bindings::rdm_crypto_shash_alg_name(self.tfm.as_ptr())) }
    }

    /// The implementation's name, e.g. `sha256-avx2`.
    pub fn driver_name(&self) -> &CStr {
        // SAFETY: As for `alg_name`.
        unsafe { CStr::from_char_ptr(bindings::rdm_crypto_shash_driver_name(self.tfm.as_ptr())) }
    }

    /// Runs `f` with a descriptor for this transform on the stack.
    fn with_desc<R>(&self, f: impl FnOnce(*mut bindings::shash_desc) -> Result<R>) -> Result<R> {
        let mut buf = core::mem::MaybeUninit::<DescBuf>::uninit();
        let desc = buf.as_mut_ptr().cast::<bindings::shash_desc>();
        // SAFETY: `buf` is large and aligned enough for the descriptor of this
        // transform (invariant); setting `tfm` is how C initialises it.
        unsafe { (*desc).tfm = self.tfm.as_ptr() };
        f(desc)
    }

    fn update<D: HashInput + ?Sized>(desc: *mut bindings::shash_desc, data: &D) -> Result {
        let (ptr, len) = data.raw_parts();
        let len = u32::try_from(len).map_err(|_| EINVAL)?;
        // SAFETY: `desc` is initialised for our transform; `ptr` is valid for
        // `len` bytes while `data` is borrowed (`HashInput`'s contract).
        to_result(unsafe { bindings::crypto_shash_update(desc, ptr, len) })
    }

    /// `out[..digest_size] = H(first || second)`.
    pub fn digest2<D: HashInput + ?Sized>(
        &self,
        first: &D,
        second: &[u8],
        out: &mut [u8],
    ) -> Result {
        if out.len() < self.digest_size() {
            return Err(EINVAL);
        }
        self.with_desc(|desc| {
            // SAFETY: `desc` is set up for our transform.
            to_result(unsafe { bindings::rdm_crypto_shash_init(desc) })?;
            Self::update(desc, first)?;
            Self::update(desc, second)?;
            // SAFETY: `out` has room for the digest (checked above).
            to_result(unsafe { bindings::crypto_shash_final(desc, out.as_mut_ptr()) })
        })
    }

    /// `out[..digest_size] = H(parts[0] || parts[1] || ...)`.
    pub fn digest(&self, parts: &[&[u8]], out: &mut [u8]) -> Result {
        if out.len() < self.digest_size() {
            return Err(EINVAL);
        }
        self.with_desc(|desc| {
            // SAFETY: `desc` is set up for our transform.
            to_result(unsafe { bindings::rdm_crypto_shash_init(desc) })?;
            for p in parts {
                Self::update(desc, *p)?;
            }
            // SAFETY: `out` has room for the digest (checked above).
            to_result(unsafe { bindings::crypto_shash_final(desc, out.as_mut_ptr()) })
        })
    }

    /// Exports into `state[..state_size]` the state after hashing `prefix`,
    /// for [`Shash::digest_from_state`].
    pub fn export_state(&self, prefix: &[u8], state: &mut [u8]) -> Result {
        if state.len() < self.state_size() {
            return Err(EINVAL);
        }
        self.with_desc(|desc| {
            // SAFETY: `desc` is set up for our transform.
            to_result(unsafe { bindings::rdm_crypto_shash_init(desc) })?;
            Self::update(desc, prefix)?;
            // SAFETY: `state` has room for the exported state.
            to_result(unsafe { bindings::crypto_shash_export(desc, state.as_mut_ptr().cast()) })
        })
    }

    /// `out = H(prefix || data)`, starting from the state [`Shash::export_state`]
    /// produced for `prefix`.
    pub fn digest_from_state<D: HashInput + ?Sized>(
        &self,
        state: &[u8],
        data: &D,
        out: &mut [u8],
    ) -> Result {
        if out.len() < self.digest_size() || state.len() < self.state_size() {
            return Err(EINVAL);
        }
        let (ptr, len) = data.raw_parts();
        let len = u32::try_from(len).map_err(|_| EINVAL)?;
        self.with_desc(|desc| {
            // SAFETY: `desc` is set up for our transform; `state` holds an
            // exported state of it.
            to_result(unsafe { bindings::crypto_shash_import(desc, state.as_ptr().cast()) })?;
            // SAFETY: `desc` holds the imported state; `out` has room for the
            // digest.
            to_result(unsafe { bindings::crypto_shash_finup(desc, ptr, len, out.as_mut_ptr()) })
        })
    }
}

/// Data a [`Shash`] can hash: byte slices, and views of bio data
/// ([`super::completion::BioData`]) that Rust must not read as a slice.
///
/// # Safety
///
/// `raw_parts` returns a pointer valid for reads of the returned length for
/// as long as `self` is borrowed.
pub unsafe trait HashInput {
    /// The data's address and length.
    fn raw_parts(&self) -> (*const u8, usize);
}

// SAFETY: A slice is valid for its length while borrowed.
unsafe impl HashInput for [u8] {
    fn raw_parts(&self) -> (*const u8, usize) {
        (self.as_ptr(), self.len())
    }
}

impl Drop for Shash {
    fn drop(&mut self) {
        // SAFETY: `tfm` is live and owned.
        unsafe { bindings::rdm_crypto_free_shash(self.tfm.as_ptr()) };
    }
}
