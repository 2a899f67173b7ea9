// SPDX-License-Identifier: GPL-2.0

//! The era metadata on the kernel's persistent-data library, in the C
//! target's on-disk format: a superblock, the current writeset (an on-disk
//! bitset), a btree of archived writesets keyed by era, and the era array
//! (the era in which each block was last written). Archived writesets are
//! "digested" into the era array in the background, a few bits at a time.
//!
//! Not thread-safe: the target keeps it behind a mutex. The in-core copies
//! of the writesets, which `map` reads, live in the target (`era.rs`).

use crate::dm::{
    self,
    pdata::{
        superblock, Array, BlockManager, Btree, BtreeValue, DiskBitset, SuperblockFormat,
        SuperblockValidator, TransactionManager, Validator, ValueContext,
    },
};
use crate::dm_err;
use crate::superblock::{self as sb, Superblock, WritesetMetadata, INVALID_WRITESET_ROOT};
use kernel::{error::code::*, prelude::*};

/// Blocks the block manager lets one thread hold (`ERA_MAX_CONCURRENT_LOCKS`).
const MAX_CONCURRENT_LOCKS: u32 = 5;
/// Bits digested into the era array per step (`INSERTS_PER_STEP`).
const INSERTS_PER_STEP: u32 = 100;

/// The era superblock, for its validator (C's `sb_validator`).
pub(crate) enum EraSuperblock {}

impl SuperblockFormat for EraSuperblock {
    const FORMAT: superblock::Format = sb::FORMAT;

    fn check_failed(e: superblock::CheckError, location: u64) {
        match e {
            superblock::CheckError::WrongLocation(_) => {
                dm_err!("sb_check failed: blocknr: wanted {}", location);
            }
            superblock::CheckError::Magic(_) | superblock::CheckError::Checksum(..) => {
                dm_err!("sb_check failed: bad magic or checksum");
            }
            superblock::CheckError::Version(v) => {
                dm_err!(
                    "Era metadata version {} found, but only versions between {} and {} supported.",
                    v,
                    sb::FORMAT.version,
                    sb::FORMAT.version
                );
            }
        }
    }
}

pub(crate) static SB_VALIDATOR: Validator<SuperblockValidator<EraSuperblock>> = Validator::new();

/// Values of the writeset btree: a `writeset_disk`, which owns an on-disk
/// bitset (C's `ws_inc` / `ws_dec`).
pub(crate) enum WritesetValue {}

impl BtreeValue for WritesetValue {
    const SIZE: u32 = sb::WRITESET_DISK_SIZE as u32;

    fn inc(ctx: &mut ValueContext<'_>, value: &[u8]) {
        ctx.tm_inc(WritesetMetadata::unpack(value).root);
    }

    fn dec(ctx: &mut ValueContext<'_>, value: &[u8]) {
        let _ = ctx.del_bitset(WritesetMetadata::unpack(value).root);
    }
}

/// Where the background digest of archived writesets is (C's `struct
/// digest`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum DigestStep {
    Lookup,
    Transcribe,
    Remove,
}

struct Digest {
    step: Option<DigestStep>,
    era: u32,
    nr_bits: u32,
    current_bit: u32,
    writeset: WritesetMetadata,
    bitset: DiskBitset,
}

/// Statistics for the status line.
pub(crate) struct Stats {
    pub(crate) used: u64,
    pub(crate) total: u64,
    pub(crate) snap: u64,
    pub(crate) era: u32,
}

pub(crate) struct Metadata {
    tm: TransactionManager,
    bitset: DiskBitset,
    writeset_tree: Btree<WritesetValue>,
    era_array: Array,
    block_size: u32,
    nr_blocks: u32,
    current_era: u32,
    /// The two writesets; `current` is being written.
    writesets: [WritesetMetadata; 2],
    current: usize,
    writeset_tree_root: u64,
    era_array_root: u64,
    metadata_snap: u64,
    archived_writesets: bool,
    sm_root: [u8; sb::SPACE_MAP_ROOT_SIZE],
    digest: Digest,
}

impl Metadata {
    /// Opens the metadata on `dev`, formatting it if its superblock is all
    /// zeroes (C's `metadata_open(..., may_format = true)`).
    pub(crate) fn open(dev: &dm::Device, block_size: u32) -> Result<Self> {
        let mut bm = BlockManager::new(dev, sb::METADATA_BLOCK_SIZE, MAX_CONCURRENT_LOCKS)
            .inspect_err(|_| {
                dm_err!("could not create block manager");
            })?;
        if bm.is_zeroed(sb::LOCATION)? {
            return Self::format(bm, block_size);
        }
        let disk = {
            let blk = bm
                .read_lock(sb::LOCATION, Some(&SB_VALIDATOR))
                .inspect_err(|_| {
                    dm_err!("couldn't read_lock superblock");
                })?;
            Superblock::decode(blk.data())
        };
        if disk.data_block_size != block_size {
            dm_err!(
                "changing the data block size (from {} to {}) is not supported",
                disk.data_block_size,
                block_size
            );
            return Err(EINVAL);
        }
        let tm = TransactionManager::open(bm, sb::LOCATION, &disk.sm_root).inspect_err(|_| {
            dm_err!("dm_tm_open_with_sm failed");
        })?;
        let mut md = Self::new(tm, block_size)?;
        md.nr_blocks = disk.nr_blocks;
        md.current_era = disk.current_era;
        md.writesets[0] = disk.current_writeset;
        md.writeset_tree_root = disk.writeset_tree_root;
        md.era_array_root = disk.era_array_root;
        md.metadata_snap = disk.metadata_snap;
        md.archived_writesets = true;
        Ok(md)
    }

    fn new(tm: TransactionManager, block_size: u32) -> Result<Self> {
        Ok(Self {
            bitset: DiskBitset::new(&tm),
            writeset_tree: Btree::new(&tm),
            era_array: Array::new(&tm, 4)?,
            digest: Digest {
                step: None,
                era: 0,
                nr_bits: 0,
                current_bit: 0,
                writeset: WritesetMetadata::default(),
                bitset: DiskBitset::new(&tm),
            },
            tm,
            block_size,
            nr_blocks: 0,
            current_era: 0,
            writesets: [WritesetMetadata::default(); 2],
            current: 0,
            writeset_tree_root: 0,
            era_array_root: 0,
            metadata_snap: sb::LOCATION,
            archived_writesets: false,
            sm_root: [0; sb::SPACE_MAP_ROOT_SIZE],
        })
    }

    fn format(bm: BlockManager, block_size: u32) -> Result<Self> {
        let tm = TransactionManager::create(bm, sb::LOCATION).inspect_err(|_| {
            dm_err!("dm_tm_create_with_sm failed");
        })?;
        let mut md = Self::new(tm, block_size)?;
        md.writeset_tree_root = md.writeset_tree.empty(&mut md.tm).inspect_err(|_| {
            dm_err!("couldn't create new writeset tree");
        })?;
        md.era_array_root = md.era_array.empty(&mut md.tm).inspect_err(|_| {
            dm_err!("couldn't create era array");
        })?;
        md.save_sm_root()?;
        let disk = md.superblock();
        let mut blk = md.tm.lock_superblock_zero(sb::LOCATION, &SB_VALIDATOR)?;
        disk.encode(blk.data_mut());
        blk.commit()?;
        Ok(md)
    }

    fn superblock(&self) -> Superblock {
        Superblock {
            sm_root: self.sm_root,
            data_block_size: self.block_size,
            nr_blocks: self.nr_blocks,
            current_era: self.current_era,
            current_writeset: self.writesets[self.current],
            writeset_tree_root: self.writeset_tree_root,
            era_array_root: self.era_array_root,
            metadata_snap: self.metadata_snap,
        }
    }

    fn save_sm_root(&mut self) -> Result {
        self.tm.copy_sm_root(&mut self.sm_root).inspect_err(|_| {
            dm_err!("save_sm_root failed");
        })
    }

    /// Number of blocks the metadata tracks.
    pub(crate) fn nr_blocks(&self) -> u32 {
        self.nr_blocks
    }

    /// Which of the two writesets is current (the target's in-core copy
    /// of the same index is what `map` reads).
    pub(crate) fn current_index(&self) -> usize {
        self.current
    }

    /// Resizes the era array to `new` blocks (C's `metadata_resize`).
    pub(crate) fn resize(&mut self, new: u32) -> Result {
        let zero = 0u32.to_le_bytes();
        self.era_array_root = self
            .era_array
            .resize(
                &mut self.tm,
                self.era_array_root,
                self.nr_blocks,
                new,
                &zero,
            )
            .inspect_err(|_| {
                dm_err!("metadata_resize: dm_array_resize failed");
            })?;
        self.nr_blocks = new;
        Ok(())
    }

    /// Marks `block` in the current writeset on disk (not yet committed).
    pub(crate) fn mark(&mut self, block: u32) -> Result {
        let ws = &mut self.writesets[self.current];
        ws.root = self.bitset.set_bit(&mut self.tm, ws.root, block)?;
        Ok(())
    }

    /// Commits (two-phase: everything, then the superblock).
    pub(crate) fn commit(&mut self) -> Result {
        let ws = &mut self.writesets[self.current];
        if ws.root != INVALID_WRITESET_ROOT {
            ws.root = self.bitset.flush(&mut self.tm, ws.root).inspect_err(|_| {
                dm_err!("metadata_commit: bitset flush failed");
            })?;
        }
        self.tm.pre_commit().inspect_err(|_| {
            dm_err!("metadata_commit: pre commit failed");
        })?;
        self.save_sm_root()?;
        let disk = self.superblock();
        let mut blk = self
            .tm
            .lock_superblock(sb::LOCATION, &SB_VALIDATOR)
            .inspect_err(|_| {
                dm_err!("metadata_commit: superblock lock failed");
            })?;
        disk.encode(blk.data_mut());
        blk.commit()
    }

    /// Moves the current writeset into the btree of archived writesets.
    pub(crate) fn archive(&mut self) -> Result {
        let i = self.current;
        if self.writesets[i].root == INVALID_WRITESET_ROOT {
            return Ok(());
        }
        self.writesets[i].root = self
            .bitset
            .flush(&mut self.tm, self.writesets[i].root)
            .inspect_err(|_| {
                dm_err!("metadata_era_archive: dm_bitset_flush failed");
            })?;
        let value = self.writesets[i].pack();
        self.writeset_tree_root = self
            .writeset_tree
            .insert(
                &mut self.tm,
                self.writeset_tree_root,
                u64::from(self.current_era),
                &value,
            )
            .inspect_err(|_| {
                dm_err!("metadata_era_archive: couldn't insert writeset into btree");
            })?;
        self.writesets[i].root = INVALID_WRITESET_ROOT;
        self.archived_writesets = true;
        Ok(())
    }

    /// Starts a new era with a fresh writeset (archiving the current one
    /// first): C's `metadata_era_rollover`. The caller switches its in-core
    /// writeset to [`Self::current_index`] afterwards.
    pub(crate) fn rollover(&mut self) -> Result {
        self.archive()?;
        let next = 1 - self.current;
        let mut root = self.bitset.empty(&mut self.tm)?;
        root = self
            .bitset
            .resize(&mut self.tm, root, 0, self.nr_blocks, false)
            .inspect_err(|_| {
                dm_err!("metadata_new_era: writeset_init failed");
            })?;
        self.writesets[next] = WritesetMetadata {
            nr_bits: self.nr_blocks,
            root,
        };
        self.current = next;
        self.current_era = self.current_era.wrapping_add(1);
        Ok(())
    }

    /// Fails if a metadata snapshot is held.
    pub(crate) fn check_no_snap(&self) -> Result {
        if self.metadata_snap != sb::LOCATION {
            dm_err!("metadata_take_snap: metadata snapshot already exists");
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Takes the metadata snapshot (C's `metadata_take_snap`), after a
    /// rollover and commit done by the caller.
    pub(crate) fn take_snap(&mut self) -> Result {
        self.check_no_snap()?;
        self.tm.sm_inc(sb::LOCATION).inspect_err(|_| {
            dm_err!("metadata_take_snap: couldn't increment superblock");
        })?;
        // The shadow's lock is dropped at once: only its location is kept.
        let shadow = self
            .tm
            .shadow_block(sb::LOCATION, &SB_VALIDATOR)
            .map(|(clone, inc)| (clone.location(), inc));
        let (location, inc) = match shadow {
            Ok(shadow) => shadow,
            Err(e) => {
                dm_err!("metadata_take_snap: couldn't shadow superblock");
                let _ = self.tm.sm_dec(sb::LOCATION);
                return Err(e);
            }
        };
        if !inc {
            dm_err!("metadata_take_snap: shadow of the superblock was not shared");
        }
        if let Err(e) = self.tm.sm_inc(self.writeset_tree_root) {
            dm_err!("metadata_take_snap: couldn't inc writeset tree root");
            let _ = self.tm.sm_dec(location);
            return Err(e);
        }
        if let Err(e) = self.tm.sm_inc(self.era_array_root) {
            dm_err!("metadata_take_snap: couldn't inc era tree root");
            let _ = self.tm.sm_dec(self.writeset_tree_root);
            let _ = self.tm.sm_dec(location);
            return Err(e);
        }
        self.metadata_snap = location;
        Ok(())
    }

    /// Drops the metadata snapshot (C's `metadata_drop_snap`).
    pub(crate) fn drop_snap(&mut self) -> Result {
        if self.metadata_snap == sb::LOCATION {
            dm_err!("metadata_drop_snap: no snap to drop");
            return Err(EINVAL);
        }
        let snap = self.metadata_snap;
        let disk = {
            let clone = self.tm.read_lock(snap, &SB_VALIDATOR).inspect_err(|_| {
                dm_err!("metadata_drop_snap: couldn't read lock superblock clone");
            })?;
            Superblock::decode(clone.data())
        };
        // Whatever happens now we commit with no record of the snapshot.
        self.metadata_snap = sb::LOCATION;
        self.writeset_tree
            .del(&mut self.tm, disk.writeset_tree_root)
            .inspect_err(|_| {
                dm_err!("metadata_drop_snap: error deleting writeset tree clone");
            })?;
        self.era_array
            .del(&mut self.tm, disk.era_array_root)
            .inspect_err(|_| {
                dm_err!("metadata_drop_snap: error deleting era array clone");
            })?;
        self.tm.sm_dec(snap)
    }

    /// Metadata usage for the status line.
    pub(crate) fn stats(&self) -> Result<Stats> {
        let free = self.tm.nr_free()?;
        let total = self.tm.nr_blocks()?;
        Ok(Stats {
            used: total - free,
            total,
            snap: self.metadata_snap,
            era: self.current_era,
        })
    }

    /// Starts digesting archived writesets if there are new ones.
    pub(crate) fn kick_off_digest(&mut self) {
        if self.archived_writesets {
            self.archived_writesets = false;
            if self.digest.step.is_none() {
                self.digest.step = Some(DigestStep::Lookup);
            }
        }
    }

    /// Runs one step of the digest; returns whether more steps remain.
    pub(crate) fn digest_step(&mut self) -> bool {
        let Some(step) = self.digest.step else {
            return false;
        };
        if let Err(e) = self.run_digest_step(step) {
            dm_err!(
                "process_old_eras: digest step failed, stopping digestion ({:?})",
                e
            );
            self.digest.step = None;
        }
        self.digest.step.is_some()
    }

    fn run_digest_step(&mut self, step: DigestStep) -> Result {
        match step {
            DigestStep::Lookup => {
                let Some(key) = self
                    .writeset_tree
                    .lowest_key(&self.tm, self.writeset_tree_root)?
                else {
                    self.digest.step = None;
                    return Ok(());
                };
                let mut value = [0u8; sb::WRITESET_DISK_SIZE];
                if !self
                    .writeset_tree
                    .lookup(&self.tm, self.writeset_tree_root, key, &mut value)?
                {
                    self.digest.step = None;
                    return Ok(());
                }
                let d = &mut self.digest;
                d.era = key as u32;
                d.writeset = WritesetMetadata::unpack(&value);
                // A fresh bitset cache, as C, to avoid stale cached words.
                d.bitset = DiskBitset::new(&self.tm);
                d.nr_bits = d.writeset.nr_bits.min(self.nr_blocks);
                d.current_bit = 0;
                d.step = Some(DigestStep::Transcribe);
            }
            DigestStep::Transcribe => {
                let end = self
                    .digest
                    .nr_bits
                    .min(self.digest.current_bit.saturating_add(INSERTS_PER_STEP));
                let value = self.digest.era.to_le_bytes();
                let mut b = self.digest.current_bit;
                while b < end {
                    let (marked, _) =
                        self.digest
                            .bitset
                            .test_bit(&mut self.tm, self.digest.writeset.root, b)?;
                    if marked {
                        self.era_array_root =
                            self.era_array
                                .set(&mut self.tm, self.era_array_root, b, &value)?;
                    }
                    b += 1;
                }
                if b == self.digest.nr_bits {
                    self.digest.step = Some(DigestStep::Remove);
                } else {
                    self.digest.current_bit = b;
                }
            }
            DigestStep::Remove => {
                self.writeset_tree_root = self.writeset_tree.remove(
                    &mut self.tm,
                    self.writeset_tree_root,
                    u64::from(self.digest.era),
                )?;
                self.digest.step = Some(DigestStep::Lookup);
            }
        }
        Ok(())
    }
}
