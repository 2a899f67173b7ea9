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
        completion::{BhOutcome, CompletedBio},
        hash::MAX_DIGEST_SIZE,
        Bh,
    },
    verify::{set_bit, test_bit},
    Verity,
};
use core::sync::atomic::Ordering;

/// The BH verification of `bio`: [`BhOutcome::Done`] when every block
/// verified, else [`BhOutcome::Defer`] to `kverityd`.
pub(crate) fn bio_completed_bh(v: &Verity, bh: &Bh<'_>, bio: &mut CompletedBio<'_>) -> BhOutcome {
    if bio.status().is_ok() && verify_io(v, bh, bio).is_some() {
        BhOutcome::Done
    } else {
        BhOutcome::Defer
    }
}

/// `verity_verify_io()` with `in_bh`: `None` for anything that must be
/// left to `kverityd`.
fn verify_io(v: &Verity, bh: &Bh<'_>, bio: &mut CompletedBio<'_>) -> Option<()> {
    let bs = v.geo.data_block_size();
    let first = bio.sector() >> (v.geo.data_block_bits - 9);
    let n = bio.remaining() >> v.geo.data_block_bits;
    let ds = v.digest_size();
    for b in 0..u64::from(n) {
        let cur = first + b;
        if let Some(bits) = &v.validated {
            if test_bit(bits, cur) {
                bio.skip(bs);
                continue;
            }
        }
        let mut want = [0u8; MAX_DIGEST_SIZE];
        hash_for_block(v, bh, cur, &mut want)?;
        let is_zero = v
            .zero_digest
            .as_ref()
            .is_some_and(|z| z[..ds] == want[..ds]);
        let verified = bio
            .next_block(bs, |data| {
                if is_zero {
                    // An expected zero block is returned as zeroes, unverified.
                    data.fill(0);
                    return true;
                }
                let mut real = [0u8; MAX_DIGEST_SIZE];
                if v.hash_block(&*data, &mut real).is_err() || real[..ds] != want[..ds] {
                    return false;
                }
                if let Some(bits) = &v.validated {
                    set_bit(bits, cur);
                }
                true
            })
            .ok()?;
        if !verified {
            return None;
        }
    }
    Some(())
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
