// SPDX-License-Identifier: GPL-2.0

//! The regions being hydrated, each with the bios waiting for it (C's hash
//! table of `struct dm_clone_region_hydration`).
//!
//! An entry is allocated from a mempool before the table's lock is taken,
//! exactly as C's `alloc_hydration()` does with `GFP_NOIO`: when memory is
//! short the caller waits for a hydration to end instead of failing the
//! bio. The table itself never allocates: it is a fixed array of buckets
//! (made by the constructor), each a chain of entries linked through the
//! entries themselves.

use crate::dm::{
    mempool::{Mempool, PoolBox},
    BioList, Sleepable,
};
use crate::DmClone;
use kernel::prelude::*;

/// Entries kept in reserve (C's `MIN_HYDRATIONS`).
pub(crate) const MIN_HYDRATIONS: usize = 256;

/// log2 of the number of buckets (C's `HASH_TABLE_BITS`).
const HASH_TABLE_BITS: u32 = 15;

/// A region being hydrated and the bios waiting for it.
pub(crate) struct Hydration {
    region: u64,
    waiting: BioList<DmClone>,
    next: Option<PoolBox<Hydration>>,
}

impl Hydration {
    /// The bios waiting for the region.
    pub(crate) fn waiting_mut(&mut self) -> &mut BioList<DmClone> {
        &mut self.waiting
    }

    /// Makes this (not yet inserted) entry stand for `region`.
    pub(crate) fn set_region(&mut self, region: u64) {
        self.region = region;
    }
}

/// A pool of table entries.
pub(crate) type HydrationPool = Mempool<Hydration>;

/// Takes an entry for `region` with `waiting` from `pool`; waits for one if
/// memory is short, never fails.
///
/// # Context
///
/// Process context; may sleep (`GFP_NOIO`): `ctx` is the proof.
pub(crate) fn new_hydration(
    pool: &HydrationPool,
    ctx: &Sleepable<'_>,
    region: u64,
    waiting: BioList<DmClone>,
) -> PoolBox<Hydration> {
    pool.alloc(
        ctx,
        Hydration {
            region,
            waiting,
            next: None,
        },
    )
}

/// The table: buckets of chained entries, keyed by region.
pub(crate) struct HydrationTable {
    buckets: KVVec<Option<PoolBox<Hydration>>>,
}

impl HydrationTable {
    /// An empty table.
    ///
    /// # Context
    ///
    /// Process context; may sleep.
    pub(crate) fn new() -> Result<Self> {
        let n = 1usize << HASH_TABLE_BITS;
        let mut buckets = KVVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            buckets.push(None, GFP_KERNEL)?;
        }
        Ok(Self { buckets })
    }

    /// The bucket of `region` (the kernel's `hash_64()`).
    fn bucket(&mut self, region: u64) -> Option<&mut Option<PoolBox<Hydration>>> {
        let i = region.wrapping_mul(0x61c8_8646_80b5_83eb) >> (64 - HASH_TABLE_BITS);
        self.buckets.get_mut(i as usize)
    }

    /// The link that holds `region`'s entry, or the empty link at the end of
    /// its chain.
    fn find(&mut self, region: u64) -> Option<&mut Option<PoolBox<Hydration>>> {
        let mut link = self.bucket(region)?;
        while link.as_ref().is_some_and(|h| h.region != region) {
            link = match link {
                Some(h) => &mut h.next,
                None => return None,
            };
        }
        Some(link)
    }

    /// Whether `region` is being hydrated.
    pub(crate) fn contains(&mut self, region: u64) -> bool {
        self.find(region).is_some_and(|l| l.is_some())
    }

    /// The bios waiting for `region`, if it is being hydrated.
    pub(crate) fn waiting(&mut self, region: u64) -> Option<&mut BioList<DmClone>> {
        match self.find(region) {
            Some(Some(h)) => Some(&mut h.waiting),
            _ => None,
        }
    }

    /// Adds `entry` and returns true; if its region is already in the table
    /// (the caller looks first, under the same lock, so only as a safety
    /// net), its bios join the waiting ones instead and it returns false.
    pub(crate) fn insert(&mut self, mut entry: PoolBox<Hydration>) -> bool {
        if let Some(waiting) = self.waiting(entry.region) {
            while let Some(bio) = entry.waiting.pop() {
                waiting.push(bio);
            }
            return false;
        }
        let Some(head) = self.bucket(entry.region) else {
            return false;
        };
        entry.next = head.take();
        *head = Some(entry);
        true
    }

    /// Removes `region`'s entry and returns its waiting bios; the entry
    /// joins `removed`, to go back to its pool once the table's lock is
    /// released.
    pub(crate) fn remove(
        &mut self,
        region: u64,
        removed: &mut RemovedEntries,
    ) -> Option<BioList<DmClone>> {
        let link = self.find(region)?;
        let mut entry = link.take()?;
        *link = entry.next.take();
        let waiting = core::mem::take(&mut entry.waiting);
        entry.next = removed.0.take();
        removed.0 = Some(entry);
        Some(waiting)
    }
}

/// Entries taken out of the table, chained through themselves: dropped
/// after the table's lock, so that giving them back to their pool (a
/// `kfree` when the pool is full) runs with interrupts on, as C's
/// `free_hydration()` runs after `clone->lock`.
#[derive(Default)]
pub(crate) struct RemovedEntries(Option<PoolBox<Hydration>>);

impl Drop for RemovedEntries {
    /// One entry at a time (a recursive drop of a long chain could
    /// overflow the stack).
    fn drop(&mut self) {
        let mut next = self.0.take();
        while let Some(mut entry) = next {
            next = entry.next.take();
        }
    }
}

impl Drop for HydrationTable {
    /// Unlinks the chains one entry at a time, as [`RemovedEntries`] does.
    /// The table is empty when a clone is destroyed; this is for the
    /// failure paths.
    fn drop(&mut self) {
        for bucket in self.buckets.iter_mut() {
            drop(RemovedEntries(bucket.take()));
        }
    }
}
