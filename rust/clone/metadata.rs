// SPDX-License-Identifier: GPL-2.0

//! dm-clone's metadata (C: `drivers/md/dm-clone-metadata.c`): which regions
//! of the destination are hydrated, on disk as a persistent-data bitset
//! behind the superblock of `superblock.rs`, and in core as a bitmap the
//! I/O path reads without locking.
//!
//! Regions hydrated since the last commit are also recorded in a dirty map
//! (dirty regions + dirty words, as C), so a commit writes only what
//! changed. There are two dirty maps: `pre_commit` swaps them, so regions
//! can be marked (from any context, bio completion included) while the
//! other map is committed. The caller flushes the destination between
//! `pre_commit` and `commit`: a region is committed as hydrated only after
//! its data is on stable storage.
//!
//! Locks, outermost first: `disk` (C's `lock` rw_semaphore: the persistent
//! data) then `bitmaps` (C's `bitmap_lock`, taken with interrupts off).

use crate::dm::{
    self,
    pdata::{
        superblock, BlockManager, DiskBitset, SuperblockFormat, SuperblockValidator,
        TransactionManager, Validator,
    },
    sync::IrqSpinLock,
};
use crate::superblock::{self as sb, Regions, Superblock};
use crate::{dm_err, new_irq_spinlock};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel::{alloc::KVVec, error::code::*, new_mutex, prelude::*, sync::Mutex};

/// Blocks the block manager lets one thread hold
/// (`DM_CLONE_MAX_CONCURRENT_LOCKS`).
const MAX_CONCURRENT_LOCKS: u32 = 5;

/// The clone superblock, for its validator (C's `sb_validator`).
enum CloneSuperblock {}

impl SuperblockFormat for CloneSuperblock {
    const FORMAT: superblock::Format = sb::FORMAT;

    fn check_failed(e: superblock::CheckError, location: u64) {
        match e {
            superblock::CheckError::WrongLocation(found) => {
                dm_err!(
                    "Superblock check failed: blocknr {}, expected {}",
                    found,
                    location
                );
            }
            superblock::CheckError::Magic(found) => {
                dm_err!(
                    "Superblock check failed: magic {}, expected {}",
                    found,
                    sb::FORMAT.magic
                );
            }
            superblock::CheckError::Checksum(computed, stored) => {
                dm_err!(
                    "Superblock check failed: checksum {}, expected {}",
                    computed,
                    stored
                );
            }
            superblock::CheckError::Version(v) => {
                dm_err!(
                    "Clone metadata version {} found, but only versions between {} and {} supported.",
                    v,
                    sb::FORMAT.version,
                    sb::FORMAT.version
                );
            }
        }
    }
}

static SB_VALIDATOR: Validator<SuperblockValidator<CloneSuperblock>> = Validator::new();

/// Regions hydrated in one transaction (C's `struct dirty_map`).
struct DirtyMap {
    /// One bit per word of `regions` that has a bit set.
    words: KVVec<u64>,
    /// One bit per region.
    regions: KVVec<u64>,
}

impl DirtyMap {
    fn new(nr_words: usize) -> Result<Self> {
        Ok(Self {
            words: KVVec::from_elem(0, nr_words.div_ceil(64), GFP_KERNEL)?,
            regions: KVVec::from_elem(0, nr_words, GFP_KERNEL)?,
        })
    }

    fn set(&mut self, region: u64) {
        let word = (region / 64) as usize;
        if let (Some(r), Some(w)) = (self.regions.get_mut(word), self.words.get_mut(word / 64)) {
            *r |= 1 << (region % 64);
            *w |= 1 << (word % 64);
        }
    }
}

/// The persistent-data side, absent once it failed for good (C's
/// `fail_io`).
struct PersistentData {
    tm: TransactionManager,
    bitset: DiskBitset,
    root: u64,
}

impl PersistentData {
    /// Opens the metadata on `dev`, formatting it if its superblock is all
    /// zeroes and `may_format` (C's `__create_persistent_data_structures`).
    fn open(dev: &dm::Device, regions: &Regions, may_format: bool) -> Result<Self> {
        let mut bm = BlockManager::new(dev, sb::METADATA_BLOCK_SIZE, MAX_CONCURRENT_LOCKS)
            .inspect_err(|_| dm_err!("Failed to create block manager"))?;
        let zeroed = bm
            .is_zeroed(sb::LOCATION)
            .inspect_err(|_| dm_err!("Failed to read_lock superblock"))?;
        if zeroed {
            if !may_format {
                return Err(EPERM);
            }
            return Self::format(bm, regions);
        }
        let disk = {
            let blk = bm
                .read_lock(sb::LOCATION, Some(&SB_VALIDATOR))
                .inspect_err(|_| dm_err!("Failed to read_lock superblock"))?;
            Superblock::decode(blk.data())
        };
        if disk.region_size != regions.size() || disk.target_size != regions.len {
            dm_err!("Region and/or target size don't match the ones in metadata");
            return Err(EINVAL);
        }
        let tm = TransactionManager::open(bm, sb::LOCATION, &disk.sm_root)
            .inspect_err(|_| dm_err!("dm_tm_open_with_sm failed"))?;
        Ok(Self {
            bitset: DiskBitset::new(&tm),
            tm,
            root: disk.bitset_root,
        })
    }

    fn format(bm: BlockManager, regions: &Regions) -> Result<Self> {
        let mut tm = TransactionManager::create(bm, sb::LOCATION)
            .inspect_err(|_| dm_err!("Failed to create transaction manager"))?;
        let mut bitset = DiskBitset::new(&tm);
        let root = bitset
            .empty(&mut tm)
            .inspect_err(|_| dm_err!("Failed to create empty on-disk bitset"))?;
        // The constructor keeps the number of regions below 2^31.
        let root = bitset
            .resize(&mut tm, root, 0, regions.nr as u32, false)
            .inspect_err(|_| {
                dm_err!("Failed to resize on-disk bitset to {} entries", regions.nr)
            })?;
        let mut pd = Self { tm, bitset, root };
        pd.write_superblock(regions)?;
        Ok(pd)
    }

    /// The second phase of a commit: space map, then the superblock
    /// (`__metadata_commit` after the bitset flush).
    fn write_superblock(&mut self, regions: &Regions) -> Result {
        self.tm
            .pre_commit()
            .inspect_err(|_| dm_err!("dm_tm_pre_commit failed"))?;
        let mut sm_root = [0u8; sb::SPACE_MAP_ROOT_SIZE];
        self.tm
            .copy_sm_root(&mut sm_root)
            .inspect_err(|_| dm_err!("__copy_sm_root failed"))?;
        let disk = Superblock {
            sm_root,
            region_size: regions.size(),
            target_size: regions.len,
            bitset_root: self.root,
        };
        let mut blk = self
            .tm
            .lock_superblock_zero(sb::LOCATION, &SB_VALIDATOR)
            .inspect_err(|_| dm_err!("Failed to write_lock superblock"))?;
        disk.encode(blk.data_mut());
        blk.commit()
            .inspect_err(|_| dm_err!("Failed to commit superblock"))
    }

    /// Reads the committed bitset into `map` (`__load_bitset_in_core`).
    fn load(&mut self, regions: &Regions, map: &[AtomicU64]) -> Result {
        self.root = self.bitset.flush(&mut self.tm, self.root)?;
        let mut word = 0u64;
        let n = regions.nr as u32;
        self.bitset.walk(&mut self.tm, self.root, n, |i, bit| {
            word |= u64::from(bit) << (i % 64);
            if i % 64 == 63 || i + 1 == n {
                if let Some(w) = map.get((i / 64) as usize) {
                    w.store(word, Ordering::SeqCst);
                }
                word = 0;
            }
        })
    }
}

/// What the `disk` lock protects.
struct DiskState {
    /// `None` after a failed abort (C's `fail_io`).
    pd: Option<PersistentData>,
    /// The clean dirty map that `pre_commit` swaps in.
    spare: Option<DirtyMap>,
    /// The dirty map being committed (C's `committing_dmap`).
    committing: Option<DirtyMap>,
}

/// What the `bitmaps` lock protects.
struct Bitmaps {
    /// The dirty map regions are marked in (C's `current_dmap`).
    current: DirtyMap,
    read_only: bool,
}

/// The metadata of one clone device.
#[pin_data]
pub(crate) struct Metadata {
    #[pin]
    disk: Mutex<DiskState>,
    #[pin]
    bitmaps: IrqSpinLock<Bitmaps>,
    /// In-core copy of the on-disk bitset (plus what is marked and not yet
    /// committed): set under `bitmaps`, read without a lock.
    region_map: KVVec<AtomicU64>,
    /// The current dirty map has marks (C's `dmap->changed`).
    changed_current: AtomicBool,
    /// The dirty map being committed has marks.
    changed_committing: AtomicBool,
    /// Every region is hydrated and committed.
    hydration_done: AtomicBool,
    regions: Regions,
}

impl Metadata {
    /// Opens (or formats) the metadata on `dev` for `regions` and loads the
    /// hydrated set (C's `dm_clone_metadata_open`).
    pub(crate) fn open(dev: &dm::Device, regions: Regions) -> Result<impl PinInit<Self, Error>> {
        let nr_words = regions.nr.div_ceil(64) as usize;
        let mut region_map = KVVec::with_capacity(nr_words, GFP_KERNEL).inspect_err(|_| {
            dm_err!("Failed to allocate memory for region bitmap");
        })?;
        for _ in 0..nr_words {
            region_map.push(AtomicU64::new(0), GFP_KERNEL)?;
        }
        let mut pd = PersistentData::open(dev, &regions, true)?;
        pd.load(&regions, &region_map)
            .inspect_err(|_| dm_err!("Failed to load on-disk region map"))?;
        let current = DirtyMap::new(nr_words).inspect_err(|_| {
            dm_err!("Failed to allocate dirty bitmap");
        })?;
        let spare = DirtyMap::new(nr_words).inspect_err(|_| {
            dm_err!("Failed to allocate dirty bitmap");
        })?;
        let done = first_with(&region_map, &regions, 0, false) >= regions.nr;
        Ok(try_pin_init!(Self {
            disk <- new_mutex!(DiskState {
                pd: Some(pd),
                spare: Some(spare),
                committing: None,
            }),
            bitmaps <- new_irq_spinlock!(Bitmaps {
                current,
                read_only: false,
            }),
            region_map,
            changed_current: AtomicBool::new(false),
            changed_committing: AtomicBool::new(false),
            hydration_done: AtomicBool::new(done),
            regions,
        }? Error))
    }

    /// Every region is hydrated and that is committed.
    pub(crate) fn is_hydration_done(&self) -> bool {
        self.hydration_done.load(Ordering::Acquire)
    }

    fn test(&self, region: u64) -> bool {
        self.region_map
            .get((region / 64) as usize)
            .is_some_and(|w| w.load(Ordering::Acquire) & (1 << (region % 64)) != 0)
    }

    /// Whether `region` is hydrated (its data is on the destination).
    pub(crate) fn is_region_hydrated(&self, region: u64) -> bool {
        self.is_hydration_done() || self.test(region)
    }

    /// Whether the `n` regions from `start` are all hydrated.
    pub(crate) fn is_range_hydrated(&self, start: u64, n: u64) -> bool {
        self.is_hydration_done() || self.find_next_unhydrated(start) >= start + n
    }

    /// The first unhydrated region from `start`, or the number of regions.
    pub(crate) fn find_next_unhydrated(&self, start: u64) -> u64 {
        first_with(&self.region_map, &self.regions, start, false)
    }

    /// The first hydrated region from `start`, or the number of regions.
    pub(crate) fn find_next_hydrated(&self, start: u64) -> u64 {
        if self.is_hydration_done() {
            return start.min(self.regions.nr);
        }
        first_with(&self.region_map, &self.regions, start, true)
    }

    /// Number of hydrated regions (in core: committed or about to be).
    pub(crate) fn nr_hydrated(&self) -> u64 {
        self.region_map
            .iter()
            .map(|w| u64::from(w.load(Ordering::Relaxed).count_ones()))
            .sum()
    }

    /// Marks the `n` regions from `start` hydrated in the current
    /// transaction (C's `dm_clone_set_region_hydrated` for each, under one
    /// hold of the lock: one copy's regions). Never sleeps: called from bio
    /// completion and kcopyd callbacks.
    pub(crate) fn set_regions_hydrated(&self, start: u64, n: u64) -> Result {
        let end = start.saturating_add(n);
        if n == 0 {
            return Ok(());
        }
        if end > self.regions.nr {
            dm_err!(
                "Region {} out of range (total number of regions {})",
                end - 1,
                self.regions.nr
            );
            return Err(ERANGE);
        }
        self.bitmaps.with(|b| {
            if b.read_only {
                return Err(EPERM);
            }
            for region in start..end {
                b.current.set(region);
                self.set_in_core(region);
            }
            self.changed_current.store(true, Ordering::SeqCst);
            Ok(())
        })
    }

    fn set_in_core(&self, region: u64) {
        if let Some(w) = self.region_map.get((region / 64) as usize) {
            w.fetch_or(1 << (region % 64), Ordering::AcqRel);
        }
    }

    /// Marks the unhydrated regions of `n` from `start` hydrated (discards:
    /// C's `dm_clone_cond_set_range`).
    pub(crate) fn cond_set_range(&self, start: u64, n: u64) -> Result {
        if start >= self.regions.nr || start + n > self.regions.nr {
            dm_err!(
                "Invalid region range: start {}, nr_regions {} (total number of regions {})",
                start,
                n,
                self.regions.nr
            );
            return Err(ERANGE);
        }
        self.bitmaps.with(|b| {
            if b.read_only {
                return Err(EPERM);
            }
            for region in start..start + n {
                if !self.test(region) {
                    b.current.set(region);
                    self.set_in_core(region);
                    self.changed_current.store(true, Ordering::SeqCst);
                }
            }
            Ok(())
        })
    }

    /// Whether regions were marked since the last commit.
    pub(crate) fn changed_this_transaction(&self) -> bool {
        self.changed_current.load(Ordering::SeqCst)
            || self.changed_committing.load(Ordering::SeqCst)
    }

    fn writable(d: &DiskState) -> Result<&PersistentData> {
        match &d.pd {
            Some(pd) if !pd.tm.bm().is_read_only() => Ok(pd),
            _ => Err(EPERM),
        }
    }

    /// First phase of a commit: new marks go to the other dirty map from
    /// now on; the current one is what [`Metadata::commit`] writes.
    pub(crate) fn pre_commit(&self) -> Result {
        let mut d = self.disk.lock();
        Self::writable(&d)?;
        if d.committing.is_some() {
            return Err(EINVAL);
        }
        let spare = d.spare.take().ok_or(EINVAL)?;
        let dirty = self.bitmaps.with(|b| {
            let dirty = core::mem::replace(&mut b.current, spare);
            // Hand the flag over without a moment where both read false: a
            // flush bio checking in between would skip the commit it needs.
            let changed = self.changed_current.load(Ordering::SeqCst);
            self.changed_committing.store(changed, Ordering::SeqCst);
            self.changed_current.store(false, Ordering::SeqCst);
            dirty
        });
        d.committing = Some(dirty);
        Ok(())
    }

    /// Second phase: writes the regions of the dirty map swapped out by
    /// [`Metadata::pre_commit`] to the on-disk bitset and commits it.
    pub(crate) fn commit(&self) -> Result {
        let mut guard = self.disk.lock();
        let d = &mut *guard;
        Self::writable(d)?;
        let (Some(pd), Some(dmap)) = (d.pd.as_mut(), d.committing.as_mut()) else {
            return Err(EINVAL);
        };
        for wi in 0..dmap.words.len() {
            let mut wbits = dmap.words[wi];
            while wbits != 0 {
                let bit = wbits.trailing_zeros() as usize;
                let word = wi * 64 + bit;
                let mut rbits = dmap.regions.get(word).copied().unwrap_or(0);
                while rbits != 0 {
                    let b = rbits.trailing_zeros();
                    let region = (word * 64) as u32 + b;
                    pd.root = pd
                        .bitset
                        .set_bit(&mut pd.tm, pd.root, region)
                        .inspect_err(|_| dm_err!("dm_bitset_set_bit failed"))?;
                    rbits &= rbits - 1;
                    if let Some(r) = dmap.regions.get_mut(word) {
                        *r = rbits;
                    }
                }
                wbits &= wbits - 1;
                dmap.words[wi] = wbits;
            }
        }
        pd.root = pd
            .bitset
            .flush(&mut pd.tm, pd.root)
            .inspect_err(|_| dm_err!("dm_bitset_flush failed"))?;
        pd.write_superblock(&self.regions)?;
        if first_with(&self.region_map, &self.regions, 0, false) >= self.regions.nr {
            self.hydration_done.store(true, Ordering::Release);
        }
        self.changed_committing.store(false, Ordering::SeqCst);
        d.spare = d.committing.take();
        Ok(())
    }

    /// Reloads the in-core bitmap from the committed bitset (after a failed
    /// commit: forget what was marked and not committed).
    pub(crate) fn reload_in_core_bitset(&self) -> Result {
        let mut d = self.disk.lock();
        let pd = d.pd.as_mut().ok_or(EINVAL)?;
        pd.load(&self.regions, &self.region_map)
    }

    /// Reads the metadata again from disk, with a new block manager (a
    /// cache of its own), before this instance served any I/O: the table
    /// this one replaces (`dmsetup reload`) went on hydrating and writing
    /// until its postsuspend committed, after this constructor had loaded
    /// the hydrated set. Nothing is marked in this instance yet.
    pub(crate) fn reopen(&self, dev: &dm::Device) -> Result {
        let mut d = self.disk.lock();
        Self::writable(&d)?;
        let mut pd = PersistentData::open(dev, &self.regions, false)?;
        pd.load(&self.regions, &self.region_map)?;
        d.pd = Some(pd);
        let done = first_with(&self.region_map, &self.regions, 0, false) >= self.regions.nr;
        self.hydration_done.store(done, Ordering::Release);
        Ok(())
    }

    /// Drops the uncommitted transaction by reopening the metadata from disk
    /// (C's `dm_clone_metadata_abort`); if that fails, metadata I/O fails
    /// from now on.
    pub(crate) fn abort(&self, dev: &dm::Device) -> Result {
        let mut d = self.disk.lock();
        Self::writable(&d)?;
        d.pd = None;
        d.pd = Some(PersistentData::open(dev, &self.regions, false)?);
        Ok(())
    }

    /// No more metadata changes (read-only or fail mode).
    pub(crate) fn set_read_only(&self) {
        let d = self.disk.lock();
        self.bitmaps.with(|b| b.read_only = true);
        if let Some(pd) = &d.pd {
            pd.tm.bm().set_read_only();
        }
    }

    /// Metadata blocks (used, total), for the status line.
    pub(crate) fn block_usage(&self) -> Result<(u64, u64)> {
        let d = self.disk.lock();
        let pd = d.pd.as_ref().ok_or(EINVAL)?;
        let free = pd.tm.nr_free()?;
        let total = pd.tm.nr_blocks()?;
        Ok((total.saturating_sub(free), total))
    }
}

/// The first region from `start` whose bit in `map` is `set`, or `nr`.
fn first_with(map: &[AtomicU64], regions: &Regions, start: u64, set: bool) -> u64 {
    let mut i = start;
    while i < regions.nr {
        let Some(w) = map.get((i / 64) as usize) else {
            break;
        };
        let w = w.load(Ordering::Acquire);
        let bits = if set { w } else { !w } >> (i % 64);
        if bits != 0 {
            let r = i + u64::from(bits.trailing_zeros());
            return r.min(regions.nr);
        }
        i = (i / 64 + 1) * 64;
    }
    regions.nr
}
