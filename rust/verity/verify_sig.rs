// SPDX-License-Identifier: GPL-2.0

//! Root hash signatures, as C's `dm-verity-verify-sig.c`.
//!
//! A table may name, with `root_hash_sig_key_desc`, a `user` key holding a
//! PKCS#7 signature of its root digest as written in the table (hex text).
//! The signer is looked up in the kernel's keyrings in the C target's order
//! for the kernel's configuration: the builtin trusted keys, with the
//! secondary trusted keys when
//! `CONFIG_DM_VERITY_VERIFY_ROOTHASH_SIG_SECONDARY_KEYRING`, then, if they
//! do not vouch for it and `..._PLATFORM_KEYRING`, the platform (firmware)
//! keys; then, beyond C 6.12, the module's `.dm-verity` keyring once it
//! holds keys and is sealed ([`ModuleKeyring`]). With the module parameter
//! `require_signatures`, a table without a signature is refused.

use crate::dm::{
    params, security,
    security::{ModuleKeyring, TrustedKeys},
};
use kernel::prelude::*;

/// Checks the root hash `root_hash` (the table's hex text) against its
/// signature `sig`, or, without one, whether signatures are required
/// (C's `verity_verify_root_hash()`; `ENOKEY` then).
pub(crate) fn verify_root_hash(root_hash: &[u8], sig: Option<&[u8]>) -> Result {
    if root_hash.is_empty() {
        return Err(EINVAL);
    }
    let Some(sig) = sig.filter(|s| !s.is_empty()) else {
        return if params::require_signatures() {
            Err(security::no_key())
        } else {
            Ok(())
        };
    };
    let first = if cfg!(CONFIG_DM_VERITY_VERIFY_ROOTHASH_SIG_SECONDARY_KEYRING) {
        TrustedKeys::Secondary
    } else {
        TrustedKeys::Builtin
    };
    let r = match security::verify_pkcs7_signature(root_hash, sig, first) {
        Err(e)
            if cfg!(CONFIG_DM_VERITY_VERIFY_ROOTHASH_SIG_PLATFORM_KEYRING)
                && security::is_untrusted(e) =>
        {
            security::verify_pkcs7_signature(root_hash, sig, TrustedKeys::Platform)
        }
        r => r,
    };
    // Beyond C 6.12: then the module's `.dm-verity` keyring.
    match r {
        Err(e) if security::is_untrusted(e) => {
            ModuleKeyring::verify(root_hash, sig).unwrap_or(Err(e))
        }
        r => r,
    }
}
