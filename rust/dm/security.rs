// SPDX-License-Identifier: GPL-2.0

//! Integrity facts for security modules, signatures and keys, and the
//! system's last resorts (restart, panic) for targets that must not serve
//! bad data.

use super::{bindings, error::from_err_ptr, Target};
use kernel::{
    error::{code::*, to_result},
    prelude::*,
};

/// The digest algorithm and root digest of a dm-verity device
/// (`struct dm_verity_digest`), as IPE and other LSMs see it.
pub struct VerityRootHash<'a> {
    /// Algorithm name, e.g. `sha256`.
    pub alg: &'a CStr,
    /// The root digest.
    pub digest: &'a [u8],
}

impl Target {
    /// Tells the security modules the root hash of the mapped device
    /// (`security_bdev_setintegrity(LSM_INT_DMVERITY_ROOTHASH)`); `None`
    /// withdraws it.
    pub fn set_verity_root_hash(&self, root: Option<&VerityRootHash<'_>>) -> Result {
        let d;
        let (ptr, size) = match root {
            Some(r) => {
                d = bindings::dm_verity_digest {
                    alg: r.alg.as_char_ptr(),
                    digest: r.digest.as_ptr(),
                    digest_len: r.digest.len(),
                };
                (
                    (&d as *const bindings::dm_verity_digest).cast(),
                    core::mem::size_of::<bindings::dm_verity_digest>(),
                )
            }
            None => (core::ptr::null(), 0),
        };
        // SAFETY: The target is live; the block device of its mapped device
        // exists while the table does; `ptr` is valid for `size` bytes for
        // the call (the LSM copies what it keeps).
        to_result(unsafe {
            bindings::security_bdev_setintegrity(
                bindings::rdm_dm_target_bdev(self.as_raw()),
                bindings::lsm_integrity_type_LSM_INT_DMVERITY_ROOTHASH,
                ptr,
                size,
            )
        })
    }

    /// Tells the security modules whether the root hash was signed:
    /// `Some(signature)` that was verified, or `None` for an unsigned device
    /// (`LSM_INT_DMVERITY_SIG_VALID`).
    pub fn set_verity_signature(&self, sig: Option<&[u8]>) -> Result {
        let (ptr, size) = match sig {
            Some(s) => (s.as_ptr().cast(), s.len()),
            None => (core::ptr::null(), 0),
        };
        // SAFETY: As in `set_verity_root_hash`.
        to_result(unsafe {
            bindings::security_bdev_setintegrity(
                bindings::rdm_dm_target_bdev(self.as_raw()),
                bindings::lsm_integrity_type_LSM_INT_DMVERITY_SIG_VALID,
                ptr,
                size,
            )
        })
    }

    /// Sends a change uevent for the mapped device with one `NAME=value`
    /// environment variable.
    ///
    /// # Context
    ///
    /// Process context (allocates with `GFP_KERNEL`).
    pub fn send_change_uevent(&self, env: &CStr) {
        super::might_sleep();
        // SAFETY: The target and its mapped device are live; `env` is a valid
        // string the callee only reads (the C signature lacks `const`).
        unsafe { bindings::rdm_dm_target_uevent(self.as_raw(), env.as_char_ptr().cast_mut()) };
    }
}

/// The payload of the `user` key `desc` in the caller's keyrings.
pub fn read_user_key(desc: &CStr) -> Result<KVec<u8>> {
    let mut len: usize = 0;
    // SAFETY: `desc` is a valid string, `len` a valid out-pointer.
    let p = from_err_ptr(unsafe { bindings::rdm_read_user_key(desc.as_char_ptr(), &mut len) })?;
    if p.is_null() {
        return Err(EINVAL);
    }
    // SAFETY: On success the helper returns a kmalloc'ed copy of `len` bytes.
    let bytes = unsafe { core::slice::from_raw_parts(p.cast::<u8>(), len) };
    let mut v = KVec::new();
    let r = v.extend_from_slice(bytes, GFP_KERNEL);
    // SAFETY: The copy is ours to free, and `bytes` is not used after this.
    unsafe { bindings::rdm_kfree(p) };
    r?;
    Ok(v)
}

/// The keys a signature may be made with: where [`verify_pkcs7_signature`]
/// looks for the signer (the `trusted_keys` argument of C's
/// `verify_pkcs7_signature()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustedKeys {
    /// The keys built into the kernel, `.builtin_trusted_keys` (C: `NULL`).
    Builtin,
    /// The builtin keys and `.secondary_trusted_keys`: keys added at run
    /// time whose certificate a builtin or secondary key signed
    /// (`VERIFY_USE_SECONDARY_KEYRING`).
    Secondary,
    /// `.platform`: the firmware's keys (UEFI db, ...), loaded at boot
    /// (`VERIFY_USE_PLATFORM_KEYRING`).
    Platform,
}

impl TrustedKeys {
    fn as_raw(self) -> *mut bindings::key {
        // The special values of `include/linux/verification.h`, which are
        // never dereferenced as pointers.
        let special: usize = match self {
            Self::Builtin => return core::ptr::null_mut(),
            Self::Secondary => 1,
            Self::Platform => 2,
        };
        special as *mut bindings::key
    }
}

/// The module's own keyring: C dm-verity's `.dm-verity` of kernels after
/// 6.12, for keys that userspace (systemd) adds at boot. Made when the
/// module loads, it is sealed (`keyring_restrict()` with no key type: no
/// key may be added or linked) at once, unless the module parameter
/// `keyring_unsealed` leaves it open, for userspace to add its keys and
/// then seal it (`keyctl restrict_keyring`). Signatures are checked against
/// it only once it holds keys and is sealed ([`ModuleKeyring::verify`]).
///
/// The keyring and its parameter are declared in the module's C side
/// (`rust/<target>/<target>_helpers.c`); this type is the module's hold on
/// the keyring, kept in its [`super::ModuleState`], which outlives every
/// instance of its target.
///
/// # Invariants
///
/// While a value exists, the module's keyring exists and no other value
/// does: the C side makes at most one keyring at a time (a second
/// [`ModuleState::new`] fails with `EBUSY`), so dropping this value drops
/// the keyring it made.
///
/// [`ModuleState::new`]: super::ModuleState::new
#[cfg(dm_module_keyring)]
pub struct ModuleKeyring(());

#[cfg(dm_module_keyring)]
impl super::ModuleState for ModuleKeyring {
    fn new() -> Result<Self> {
        // SAFETY: No precondition: the callee makes the keyring unless one
        // exists (EBUSY), under its lock.
        to_result(unsafe { bindings::rdm_module_keyring_init() })?;
        // INVARIANT: The keyring was made, and it is the only one.
        Ok(Self(()))
    }
}

#[cfg(dm_module_keyring)]
impl Drop for ModuleKeyring {
    fn drop(&mut self) {
        // SAFETY: No precondition: the callee drops the keyring under its
        // lock; a verification running meanwhile holds its own reference.
        unsafe { bindings::rdm_module_keyring_exit() };
    }
}

#[cfg(dm_module_keyring)]
impl ModuleKeyring {
    /// Verifies the PKCS#7 `signature` of `data` against the module's
    /// keyring if there is one and it holds keys and is sealed, else `None`
    /// (C's last step of `verity_verify_root_hash()`). Errors as
    /// [`verify_pkcs7_signature`].
    ///
    /// It takes no `&self`: the keyring is the module's state, which a
    /// target's constructor cannot reach; the C side holds a reference to
    /// the keyring for the check, whatever else runs.
    ///
    /// # Context
    ///
    /// Process context: the crypto API may sleep.
    pub fn verify(data: &[u8], signature: &[u8]) -> Option<Result> {
        super::might_sleep();
        // SAFETY: Both buffers are valid for their lengths; the callee
        // takes (and puts) its own reference to the keyring, if any.
        let r = unsafe {
            bindings::rdm_module_keyring_verify(
                data.as_ptr().cast(),
                data.len(),
                signature.as_ptr().cast(),
                signature.len(),
            )
        };
        if r > 0 {
            return None;
        }
        Some(to_result(r))
    }
}

/// Verifies the PKCS#7 `signature` of `data` against the keys `keys`
/// (`verify_pkcs7_signature()`).
///
/// Fails with `ENOKEY` when the signer is not among them, `EKEYREJECTED`
/// when the signature does not match (see [`is_untrusted`]), other errors
/// for a malformed signature.
///
/// # Context
///
/// Process context: the crypto API may sleep.
pub fn verify_pkcs7_signature(data: &[u8], signature: &[u8], keys: TrustedKeys) -> Result {
    super::might_sleep();
    // SAFETY: Both buffers are valid for their lengths; `keys` is one of the
    // special keyring values the callee decodes; no content callback.
    to_result(unsafe {
        bindings::verify_pkcs7_signature(
            data.as_ptr().cast(),
            data.len(),
            signature.as_ptr().cast(),
            signature.len(),
            keys.as_raw(),
            bindings::key_being_used_for_VERIFYING_UNSPECIFIED_SIGNATURE,
            None,
            core::ptr::null_mut(),
        )
    })
}

/// Whether `e`, from [`verify_pkcs7_signature`], says that the keys asked
/// did not vouch for the signature (`ENOKEY`: signer unknown,
/// `EKEYREJECTED`: signature wrong), so that other keys may be tried.
pub fn is_untrusted(e: Error) -> bool {
    e == no_key() || e.to_errno() == -(bindings::EKEYREJECTED as i32)
}

/// `ENOKEY`: a required key (e.g. a signature) is missing.
pub fn no_key() -> Error {
    Error::from_errno(-(bindings::ENOKEY as i32))
}

/// Restarts the machine (`kernel_restart()`), for targets configured to do so
/// rather than serve corrupt data.
///
/// # Context
///
/// Process context (sleeps): C dm-verity defers it to a work item when it
/// finds corruption in a bio's completion.
pub fn restart(reason: &CStr) {
    super::might_sleep();
    // SAFETY: `reason` is a valid string the callee only reads.
    unsafe { bindings::kernel_restart(reason.as_char_ptr().cast_mut()) };
}

/// Panics the kernel with `reason`, for targets configured to do so.
pub fn panic(reason: &CStr) -> ! {
    // SAFETY: `reason` is a valid string.
    unsafe { bindings::rdm_panic(reason.as_char_ptr()) }
}
