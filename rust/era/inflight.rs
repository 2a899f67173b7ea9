// SPDX-License-Identifier: GPL-2.0

//! Writes in flight, and the in-core writesets `map` checks.
//!
//! The C target lets a write to a block already marked in the current era
//! through without any record; if a checkpoint happens before that write
//! reaches the disk, the new era does not know the block changed (review
//! point 1 of the 2014 dm-era review). Here every write let through holds a
//! slot naming its block from before `map` reads the writeset until it
//! completes, and a checkpoint, after switching writesets, marks every block
//! still in flight in the new era.
//!
//! A slot names a range of blocks (a discard may cover several): the first
//! block in its high 32 bits, the count in its low 32 bits.
//!
//! Everything is atomic: `end_io` may run in interrupt context.
//! Ordering argument (all `SeqCst`): a writer registers its slot, then reads
//! the current writeset; a checkpoint switches the writeset, then scans the
//! slots. Either the scan sees the slot (the block is marked in the new era),
//! or the switch happened before the writer read the writeset (the writer
//! checks the new era's bits, and an unmarked block is deferred and marked).

use crate::metadata::Metadata;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use kernel::prelude::*;

const FREE: u64 = u64::MAX;

/// Number of in-flight slots per target; a write that finds none free goes
/// through the worker (slow path) instead.
pub(crate) const SLOTS: usize = 16384;

/// One in-core writeset: a bit per era block.
pub(crate) struct Bits(KVVec<AtomicU64>);

impl Bits {
    pub(crate) fn new(nr_bits: u64) -> Result<Self> {
        let words = nr_bits.div_ceil(64) as usize;
        let mut v = KVVec::with_capacity(words, GFP_KERNEL)?;
        for _ in 0..words {
            v.push(AtomicU64::new(0), GFP_KERNEL)?;
        }
        Ok(Self(v))
    }

    #[inline]
    pub(crate) fn test(&self, b: u32) -> bool {
        self.0
            .get((b / 64) as usize)
            .is_some_and(|w| w.load(SeqCst) & (1 << (b % 64)) != 0)
    }

    pub(crate) fn set(&self, b: u32) {
        if let Some(w) = self.0.get((b / 64) as usize) {
            w.fetch_or(1 << (b % 64), SeqCst);
        }
    }

    pub(crate) fn clear_all(&self) {
        for w in self.0.iter() {
            w.store(0, SeqCst);
        }
    }
}

/// The in-core writesets and the in-flight slots of one era target.
pub(crate) struct Tracker {
    bits: [Bits; 2],
    current: AtomicUsize,
    slots: KVVec<AtomicU64>,
    hint: AtomicUsize,
    /// The ranges in flight at the last switch, copied out of `slots` (the
    /// first ones): a checkpoint allocates nothing, so a checkpoint under
    /// memory pressure cannot lose a write in flight. Written by
    /// [`Tracker::switch_to`] only, which the metadata lock serialises.
    snapshot: KVVec<AtomicU64>,
}

/// The writes in flight when the writesets were switched
/// ([`Tracker::switch_to`]).
pub(crate) struct InFlight<'a> {
    ranges: &'a [AtomicU64],
}

impl InFlight<'_> {
    /// Every block of every write in flight at the switch.
    pub(crate) fn blocks(&self) -> impl Iterator<Item = u32> + '_ {
        self.ranges.iter().flat_map(|r| {
            let range = r.load(SeqCst);
            let first = (range >> 32) as u32;
            first..first.saturating_add(range as u32)
        })
    }
}

impl Tracker {
    pub(crate) fn new(nr_blocks: u64) -> Result<Self> {
        let mut slots = KVVec::with_capacity(SLOTS, GFP_KERNEL)?;
        let mut snapshot = KVVec::with_capacity(SLOTS, GFP_KERNEL)?;
        for _ in 0..SLOTS {
            slots.push(AtomicU64::new(FREE), GFP_KERNEL)?;
            snapshot.push(AtomicU64::new(FREE), GFP_KERNEL)?;
        }
        Ok(Self {
            bits: [Bits::new(nr_blocks)?, Bits::new(nr_blocks)?],
            current: AtomicUsize::new(0),
            slots,
            hint: AtomicUsize::new(0),
            snapshot,
        })
    }

    /// Takes a slot for a write to the `count` blocks from `first`; `None`
    /// if all are busy.
    #[inline]
    pub(crate) fn register(&self, first: u32, count: u32) -> Option<u32> {
        // `first` is below 2^31, so no range encodes as `FREE`.
        let range = (u64::from(first) << 32) | u64::from(count);
        let start = self.hint.fetch_add(1, SeqCst);
        for i in 0..SLOTS {
            let s = (start + i) % SLOTS;
            if self.slots[s]
                .compare_exchange(FREE, range, SeqCst, SeqCst)
                .is_ok()
            {
                return Some(s as u32);
            }
        }
        None
    }

    /// Frees a slot when its write completes.
    #[inline]
    pub(crate) fn release(&self, slot: u32) {
        if let Some(s) = self.slots.get(slot as usize) {
            s.store(FREE, SeqCst);
        }
    }

    /// `map`'s fast path: registers the write to the `count` blocks from
    /// `first` and lets it through (returns its slot) if they are all marked
    /// in the current era; `None` if it must be deferred to the worker to be
    /// marked first.
    #[inline]
    pub(crate) fn try_let_through(&self, first: u32, count: u32) -> Option<u32> {
        // The look comes after the slot is taken (see the ordering argument
        // above). No look before it: a write to an unmarked block takes and
        // gives back a slot on its way to the worker (little beside the
        // worker's mark and commit), and a rewrite, the common case here,
        // looks once.
        let slot = self.register(first, count)?;
        let bits = &self.bits[self.current.load(SeqCst) & 1];
        if (first..first.saturating_add(count)).all(|b| bits.test(b)) {
            Some(slot)
        } else {
            self.release(slot);
            None
        }
    }

    /// Marks `block` in the in-core writeset `index` (after it was committed
    /// on disk).
    pub(crate) fn set(&self, index: usize, block: u32) {
        self.bits[index & 1].set(block);
    }

    /// Whether `block` is marked in the current in-core writeset.
    pub(crate) fn is_marked(&self, block: u32) -> bool {
        self.bits[self.current.load(SeqCst) & 1].test(block)
    }

    /// Switches `map` to the (cleared) writeset `index` and returns the
    /// writes in flight at that point. Allocates nothing. `_serialised` is
    /// the metadata, locked by the caller: two switches never run at once,
    /// so the snapshot the result reads is this switch's.
    pub(crate) fn switch_to(&self, index: usize, _serialised: &mut Metadata) -> InFlight<'_> {
        self.bits[index & 1].clear_all();
        self.current.store(index & 1, SeqCst);
        let mut n = 0;
        for s in self.slots.iter() {
            let range = s.load(SeqCst);
            if range != FREE {
                if let Some(copy) = self.snapshot.get(n) {
                    copy.store(range, SeqCst);
                    n += 1;
                }
            }
        }
        InFlight {
            ranges: self.snapshot.get(..n).unwrap_or(&[]),
        }
    }
}
