// SPDX-License-Identifier: GPL-2.0

//! The I/O path: mapping reads to the data device, prefetching their hash
//! blocks, and verifying the data when the reads complete.

use crate::{
    dm::{
        completion::{BioData, CompletedBio},
        hash::{HashInput, MAX_DIGEST_SIZE},
        security, BlkStatus, MapBio, MapResult, Sleepable, Target,
    },
    table::{CorruptionMode, ErrorMode},
    Verity,
};
use crate::{dm_err, dm_err_limit, fec, geometry};
use core::sync::atomic::Ordering;
use kernel::{c_str, error::code::*, prelude::*, str::CString};

/// Default hash prefetch cluster in bytes (`DM_VERITY_DEFAULT_PREFETCH_SIZE`).
const PREFETCH_CLUSTER: u64 = 262_144;
/// Corruptions logged at most (`DM_VERITY_MAX_CORRUPTED_ERRS`).
const MAX_CORRUPTED_ERRS: u32 = 100;

/// Which kind of block failed verification (`enum verity_block_type`).
#[derive(Clone, Copy)]
pub(crate) enum BlockType {
    Data = 0,
    Metadata = 1,
}

pub(crate) fn map<'m>(v: &Verity, target: &Target, mut bio: MapBio<'m, Verity>) -> MapResult<'m> {
    bio.set_dev(&v.data_dev);
    let sector = target.offset(bio.sector());
    bio.set_sector(sector);
    let spb = v.geo.sectors_per_block();
    if (sector | u64::from(bio.sectors())) & (spb - 1) != 0 {
        dm_err_limit!("unaligned io");
        return bio.kill();
    }
    let end = sector + u64::from(bio.sectors());
    if end >> (v.geo.data_block_bits - 9) > v.geo.data_blocks {
        dm_err_limit!("io out of range");
        return bio.kill();
    }
    if bio.is_write() {
        return bio.kill();
    }
    let block = sector >> (v.geo.data_block_bits - 9);
    let n_blocks = bio.size() >> v.geo.data_block_bits;
    prefetch(v, target, block, n_blocks);
    bio.submit_intercepted()
}

/// Hash blocks a bio may need, below the top level, for the prefetch to be
/// skipped when all of them are cached (see [`prefetch`]).
const PREFETCH_CHECK_MAX: u64 = 4;

/// Starts reading the hash blocks a read of `n` blocks from `block` needs,
/// below the top level (which stays cached), as C's `verity_submit_prefetch`:
/// at level 0 the aligned cluster of `PREFETCH_CLUSTER >> data_block_bits`
/// hash blocks around them, at the levels above the blocks themselves.
///
/// Unlike C, nothing is queued when the hash blocks the bio itself needs
/// (at most [`PREFETCH_CHECK_MAX`]) are all cached already: C queues a work
/// item that looks up every block of the cluster (64 lookups for 4 KiB
/// blocks) to find them cached, on every bio. The cluster's other blocks
/// are then read when a bio first needs one of them (it misses, and
/// prefetches its own cluster), instead of ahead of time.
fn prefetch(v: &Verity, target: &Target, mut block: u64, mut n: u32) {
    if let Some(bits) = &v.validated {
        while n != 0 && test_bit(bits, block) {
            block += 1;
            n -= 1;
        }
        while n != 0 && test_bit(bits, block + u64::from(n) - 1) {
            n -= 1;
        }
    }
    if n == 0 || v.geo.levels < 2 {
        return;
    }
    let mut ranges = [(0u64, 0u32); geometry::MAX_LEVELS];
    let mut nr = 0;
    // Lookups left before giving up on finding everything cached.
    let mut check = PREFETCH_CHECK_MAX;
    let mut all_cached = true;
    for level in (0..v.geo.levels - 1).rev() {
        let (mut start, _) = v.geo.hash_at_level(block, level);
        let (mut end, _) = v.geo.hash_at_level(block + u64::from(n) - 1, level);
        if all_cached {
            let count = end - start + 1;
            all_cached =
                count <= check && (start..=end).all(|b| v.bufio.get_cached(target, b).is_some());
            check = check.saturating_sub(count);
        }
        if level == 0 {
            let mut cluster = PREFETCH_CLUSTER >> v.geo.data_block_bits;
            if cluster != 0 {
                if !cluster.is_power_of_two() {
                    cluster = 1 << (63 - cluster.leading_zeros());
                }
                start &= !(cluster - 1);
                end |= cluster - 1;
                if end >= v.geo.hash_end {
                    end = v.geo.hash_end - 1;
                }
            }
        }
        ranges[nr] = (start, (end - start + 1) as u32);
        nr += 1;
    }
    if !all_cached {
        v.bufio.prefetch_async(&ranges[..nr]);
    }
}

fn test_bit(bits: &[core::sync::atomic::AtomicU64], n: u64) -> bool {
    bits.get((n / 64) as usize)
        .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (n % 64)) != 0)
}

fn set_bit(bits: &[core::sync::atomic::AtomicU64], n: u64) {
    if let Some(w) = bits.get((n / 64) as usize) {
        w.fetch_or(1 << (n % 64), Ordering::Relaxed);
    }
}

/// The state of one bio's verification (C's `struct dm_verity_io`, in part).
#[derive(Default)]
pub(crate) struct IoState {
    /// A block was found corrupted (not an I/O error).
    pub(crate) had_mismatch: bool,
    /// The read failed; the blocks are verified (and corrected) anyway when
    /// FEC is on.
    pub(crate) io_error: bool,
    /// A block is being corrected: FEC is not entered again.
    #[cfg(dm_reed_solomon)]
    pub(crate) in_fec: bool,
}

/// Runs in the verify workqueue once the data device completed a read.
pub(crate) fn bio_completed(
    v: &Verity,
    target: &Target,
    ctx: &Sleepable<'_>,
    bio: &mut CompletedBio<'_>,
) -> BlkStatus {
    let mut io = IoState {
        io_error: !bio.status().is_ok(),
        ..IoState::default()
    };
    // With FEC, a failed read is verified (and so corrected) block by block,
    // as C does; a readahead is not worth it.
    let status = if io.io_error && (v.fec.is_none() || bio.is_readahead()) {
        bio.status()
    } else {
        match verify_io(v, target, ctx, bio, &mut io) {
            Ok(()) => BlkStatus::OK,
            Err(e) if e == ENOMEM => BlkStatus::RESOURCE,
            Err(_) => BlkStatus::IOERR,
        }
    };
    if !status.is_ok() && !bio.is_readahead() && !io.had_mismatch {
        match v.error_mode {
            ErrorMode::Eio => {}
            ErrorMode::Panic => security::panic(c_str!("dm-verity device has I/O error")),
            ErrorMode::Restart => security::restart(c_str!("dm-verity device has I/O error")),
        }
    }
    status
}

fn verify_io(
    v: &Verity,
    target: &Target,
    ctx: &Sleepable<'_>,
    bio: &mut CompletedBio<'_>,
    io: &mut IoState,
) -> Result {
    verify_blocks(v, bio, &mut InWorker { v, target, ctx, io })
}

/// What verifying a read's blocks does where the two places it runs differ:
/// `kverityd` ([`InWorker`]), which may sleep, and the BH workqueue
/// (`verify_bh.rs`), which must not and leaves what it cannot do to
/// `kverityd`.
pub(crate) trait BlockChecks {
    /// Why verification stopped.
    type Error: From<Error>;
    /// Whether blocks already verified (`check_at_most_once`) are skipped.
    fn skip_validated(&self) -> bool;
    /// The wanted digest of data block `block` (`verity_hash_for_block()`).
    fn hash_for_block(
        &mut self,
        block: u64,
        want: &mut [u8; MAX_DIGEST_SIZE],
    ) -> core::result::Result<(), Self::Error>;
    /// Data block `block`, `data`, does not hash to `want`
    /// (`verity_handle_data_hash_mismatch()`).
    fn mismatch(
        &mut self,
        block: u64,
        want: &[u8; MAX_DIGEST_SIZE],
        data: &mut BioData<'_>,
    ) -> core::result::Result<(), Self::Error>;
}

/// Verifies the blocks of the completed read `bio` (`verity_verify_io()`):
/// each against its digest in the hash tree, an expected zero block
/// returned as zeroes, a verified one remembered for `check_at_most_once`.
pub(crate) fn verify_blocks<C: BlockChecks>(
    v: &Verity,
    bio: &mut CompletedBio<'_>,
    checks: &mut C,
) -> core::result::Result<(), C::Error> {
    let bs = v.geo.data_block_size();
    let first = bio.sector() >> (v.geo.data_block_bits - 9);
    let n = bio.remaining() >> v.geo.data_block_bits;
    let ds = v.digest_size();
    for b in 0..u64::from(n) {
        let cur = first + b;
        if let Some(bits) = &v.validated {
            if checks.skip_validated() && test_bit(bits, cur) {
                bio.skip(bs);
                continue;
            }
        }
        let mut want = [0u8; MAX_DIGEST_SIZE];
        checks.hash_for_block(cur, &mut want)?;
        let is_zero = v
            .zero_digest
            .as_ref()
            .is_some_and(|z| z[..ds] == want[..ds]);
        bio.next_block(bs, |data| -> core::result::Result<(), C::Error> {
            if is_zero {
                // An expected zero block is returned as zeroes, unverified.
                data.fill(0);
                return Ok(());
            }
            let mut real = [0u8; MAX_DIGEST_SIZE];
            v.hash_block(&*data, &mut real)?;
            if real[..ds] == want[..ds] {
                if let Some(bits) = &v.validated {
                    set_bit(bits, cur);
                }
                return Ok(());
            }
            checks.mismatch(cur, &want, data)
        })??;
    }
    Ok(())
}

/// Verification in `kverityd`: hash blocks are read if need be, and a
/// mismatch is read again, corrected by FEC or handled per the table's mode.
struct InWorker<'a, 'i> {
    v: &'a Verity,
    target: &'a Target,
    ctx: &'a Sleepable<'a>,
    io: &'i mut IoState,
}

impl BlockChecks for InWorker<'_, '_> {
    type Error = Error;

    fn skip_validated(&self) -> bool {
        // A failed read is verified (and corrected) again.
        !self.io.io_error
    }

    fn hash_for_block(&mut self, block: u64, want: &mut [u8; MAX_DIGEST_SIZE]) -> Result {
        hash_for_block(self.v, self.target, self.ctx, block, want, self.io)
    }

    fn mismatch(
        &mut self,
        block: u64,
        want: &[u8; MAX_DIGEST_SIZE],
        data: &mut BioData<'_>,
    ) -> Result {
        let (v, target) = (self.v, self.target);
        if recheck(v, target, block, want, data) {
            if let Some(bits) = &v.validated {
                set_bit(bits, block);
            }
            return Ok(());
        }
        if let Ok(fixed) = fec::decode(v, target, self.ctx, self.io, BlockType::Data, block, want) {
            return data.copy_from_slice(&fixed);
        }
        if self.io.io_error {
            // Correction failed: just return the error.
            return Err(EIO);
        }
        if handle_error(v, target, BlockType::Data, block) {
            self.io.had_mismatch = true;
            return Err(EIO);
        }
        Ok(())
    }
}

/// Reads data block `block` again from the device and, if that copy matches
/// `want`, puts it into `data` (C's `verity_recheck`).
fn recheck(
    v: &Verity,
    target: &Target,
    block: u64,
    want: &[u8; MAX_DIGEST_SIZE],
    data: &mut BioData<'_>,
) -> bool {
    let ds = v.digest_size();
    let mut buf = v.recheck_buf.lock();
    if v.recheck_io
        .read_sync(
            target,
            &v.data_dev,
            block << (v.geo.data_block_bits - 9),
            &mut buf,
        )
        .is_err()
    {
        return false;
    }
    let mut real = [0u8; MAX_DIGEST_SIZE];
    if v.hash_block(&buf[..], &mut real).is_err()
        || real[..ds] != want[..ds]
        || buf.len() != data.len()
    {
        return false;
    }
    data.copy_from_slice(&buf).is_ok()
}

/// Finds the expected digest of data block `block`, verifying the hash tree
/// blocks on the way that were not verified yet (C's `verity_hash_for_block`).
pub(crate) fn hash_for_block(
    v: &Verity,
    target: &Target,
    ctx: &Sleepable<'_>,
    block: u64,
    want: &mut [u8; MAX_DIGEST_SIZE],
    io: &mut IoState,
) -> Result {
    let ds = v.digest_size();
    if v.geo.levels != 0 && verify_level(v, target, ctx, block, 0, true, want, io)? {
        return Ok(());
    }
    want[..ds].copy_from_slice(v.root_digest());
    for level in (0..v.geo.levels).rev() {
        verify_level(v, target, ctx, block, level, false, want, io)?;
    }
    Ok(())
}

/// Reads the hash block of `block` at `level` and copies the digest it holds
/// into `want`. A hash block not verified yet is skipped (returns `false`)
/// when `skip_unverified`, else verified against `want` first.
#[allow(clippy::too_many_arguments)]
fn verify_level(
    v: &Verity,
    target: &Target,
    ctx: &Sleepable<'_>,
    block: u64,
    level: u32,
    skip_unverified: bool,
    want: &mut [u8; MAX_DIGEST_SIZE],
    io: &mut IoState,
) -> Result<bool> {
    let ds = v.digest_size();
    let (hash_block, offset) = v.geo.hash_at_level(block, level);
    let buf = v.bufio.read(target, hash_block)?;
    if buf.state().load(Ordering::Acquire) == 0 {
        // A hash block FEC corrected before: its corrected copy.
        if let Some(fec) = &v.fec {
            if fec.fixed_digest(hash_block, offset, &mut want[..ds]) {
                return Ok(true);
            }
        }
        if skip_unverified {
            return Ok(false);
        }
        let mut real = [0u8; MAX_DIGEST_SIZE];
        v.hash_block(buf.data(), &mut real)?;
        if real[..ds] == want[..ds] {
            buf.state().store(1, Ordering::Release);
        } else if let Ok(fixed) =
            fec::decode(v, target, ctx, io, BlockType::Metadata, hash_block, want)
        {
            // The cached block stays as read (it is shared, and not ours to
            // write): the digest comes from the corrected copy, which FEC
            // keeps for the next uses of the block.
            let digest = fixed.get(offset..offset + ds).ok_or(EIO)?;
            want[..ds].copy_from_slice(digest);
            if let Some(fec) = &v.fec {
                fec.remember_fixed(hash_block, &fixed);
            }
            return Ok(true);
        } else if handle_error(v, target, BlockType::Metadata, hash_block) {
            io.had_mismatch = true;
            return Err(EIO);
        }
    }
    let digest = buf.data().get(offset..offset + ds).ok_or(EIO)?;
    want[..ds].copy_from_slice(digest);
    Ok(true)
}

/// Reports a corrupted block; returns whether the I/O must fail
/// (C's `verity_handle_err`).
fn handle_error(v: &Verity, target: &Target, kind: BlockType, block: u64) -> bool {
    // Corruption shows in the status whatever the mode.
    v.hash_failed.store(true, Ordering::Relaxed);
    let counted = v
        .corrupted_errs
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < MAX_CORRUPTED_ERRS).then_some(n + 1)
        });
    // C logs this with DMERR_LIMIT as well; the per-device cap of
    // MAX_CORRUPTED_ERRS already bounds it, and a global rate limit would
    // hide one device's first corruption behind another's.
    if let Ok(prev) = counted {
        let name = match kind {
            BlockType::Data => "data",
            BlockType::Metadata => "metadata",
        };
        dm_err!(
            "{}: {} block {} is corrupted",
            v.data_dev.name(),
            name,
            block
        );
        if prev + 1 == MAX_CORRUPTED_ERRS {
            dm_err!("{}: reached maximum errors", v.data_dev.name());
        }
        if let Ok(env) = CString::try_from_fmt(kernel::fmt!(
            "DM_VERITY_ERR_BLOCK_NR={},{}",
            kind as u32,
            block
        )) {
            target.send_change_uevent(&env);
        }
    }
    match v.mode {
        CorruptionMode::Logging => false,
        CorruptionMode::Restart => {
            security::restart(c_str!("dm-verity device corrupted"));
            true
        }
        CorruptionMode::Panic => security::panic(c_str!("dm-verity device corrupted")),
        CorruptionMode::Eio => true,
    }
}

impl Verity {
    /// The salted digest of one block (data or hash): `H(salt || block)` for
    /// format 1, `H(block || salt)` for format 0.
    pub(crate) fn hash_block<D: HashInput + ?Sized>(
        &self,
        data: &D,
        out: &mut [u8; MAX_DIGEST_SIZE],
    ) -> Result {
        if self.geo.version >= 1 {
            self.hash.digest_from_state(&self.salted_state, data, out)
        } else {
            self.hash.digest2(data, &self.salt, out)
        }
    }
}
