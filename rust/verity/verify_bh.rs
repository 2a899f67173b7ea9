// SPDX-License-Identifier: GPL-2.0

//! `try_verify_in_tasklet`: verifying a read in the BH workqueue, as C's
//! `verity_bh_work()`.
//!
//! When the data device completes a read, the bio's blocks are verified
//! right there in softirq context, with no switch to `kverityd`, if every
//! hash block they need is in the cache. Whatever needs to sleep is left
//! to `kverityd` ([`crate::verify::bio_completed`]), which then verifies
//! the whole bio again (C: `-EAGAIN`): a hash block to read from disk, a
//! block whose hash does not match (the recheck and the error handling do
//! I/O and send uevents), a bio the device failed, any other error.
//!
//! The hash block cache is then a `DM_BUFIO_CLIENT_NO_SLEEP` client, as in
//! C, whose lookups ([`crate::dm::bufio::BufioClient::get_bh`]) take the BH
//! token the abstraction hands to this code; nothing here can reach the
//! methods that sleep, which need a `Target` this code does not get.

use crate::{
    dm::{
        completion::{BhOutcome, BioData, CompletedBio},
        hash::MAX_DIGEST_SIZE,
        Bh,
    },
    verify::{verify_blocks, BlockChecks},
    Verity,
};
use core::sync::atomic::Ordering;
use kernel::error::Error;

/// The BH verification of `bio`: [`BhOutcome::Done`] when every block
/// verified, else [`BhOutcome::Defer`] to `kverityd`.
pub(crate) fn bio_completed_bh(v: &Verity, bh: &Bh<'_>, bio: &mut CompletedBio<'_>) -> BhOutcome {
    if bio.status().is_ok() && verify_blocks(v, bio, &mut InBh { v, bh }).is_ok() {
        BhOutcome::Done
    } else {
        BhOutcome::Defer
    }
}

/// Why BH verification stopped: the bio is left to `kverityd` (C's
/// `-EAGAIN`).
struct Defer;

impl From<Error> for Defer {
    fn from(_: Error) -> Self {
        Defer
    }
}

/// `verity_verify_io()` with `in_bh`: cached hash blocks only, and a
/// mismatch left to `kverityd`, whose recheck and error handling may sleep.
struct InBh<'a, 'b> {
    v: &'a Verity,
    bh: &'a Bh<'b>,
}

impl BlockChecks for InBh<'_, '_> {
    type Error = Defer;

    fn skip_validated(&self) -> bool {
        true
    }

    fn hash_for_block(
        &mut self,
        block: u64,
        want: &mut [u8; MAX_DIGEST_SIZE],
    ) -> Result<(), Defer> {
        hash_for_block(self.v, self.bh, block, want).ok_or(Defer)
    }

    fn mismatch(
        &mut self,
        _block: u64,
        _want: &[u8; MAX_DIGEST_SIZE],
        _data: &mut BioData<'_>,
    ) -> Result<(), Defer> {
        Err(Defer)
    }
}

/// `verity_hash_for_block()` from cached hash blocks only.
fn hash_for_block(
    v: &Verity,
    bh: &Bh<'_>,
    block: u64,
    want: &mut [u8; MAX_DIGEST_SIZE],
) -> Option<()> {
    let ds = v.digest_size();
    if v.geo.levels != 0 && verify_level(v, bh, block, 0, true, want)? {
        return Some(());
    }
    want[..ds].copy_from_slice(v.root_digest());
    for level in (0..v.geo.levels).rev() {
        verify_level(v, bh, block, level, false, want)?;
    }
    Some(())
}

/// `verity_verify_level()` with `in_bh`: the hash block must be cached
/// (`None` if not), and a mismatch is left to `kverityd` (`None`), whose
/// error handling may sleep. Otherwise as [`crate::verify`]'s.
fn verify_level(
    v: &Verity,
    bh: &Bh<'_>,
    block: u64,
    level: u32,
    skip_unverified: bool,
    want: &mut [u8; MAX_DIGEST_SIZE],
) -> Option<bool> {
    let ds = v.digest_size();
    let (hash_block, offset) = v.geo.hash_at_level(block, level);
    let buf = v.bufio.get_bh(bh, hash_block)?;
    if buf.state().load(Ordering::Acquire) == 0 {
        if skip_unverified {
            return Some(false);
        }
        let mut real = [0u8; MAX_DIGEST_SIZE];
        v.hash_block(buf.data(), &mut real).ok()?;
        if real[..ds] != want[..ds] {
            return None;
        }
        buf.state().store(1, Ordering::Release);
    }
    want[..ds].copy_from_slice(buf.data().get(offset..offset + ds)?);
    Some(true)
}
