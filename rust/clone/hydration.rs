// SPDX-License-Identifier: GPL-2.0

//! Region hydration (C: `hydrate_bio_region`, `hydration_copy`,
//! `do_hydration` and friends in `dm-clone-target.c`).
//!
//! A region is hydrated by a kcopyd copy from the source, or, for a write
//! that covers the whole region, by that write itself (an "overwrite"). While
//! a region is being hydrated it has an entry in `CloneCore::hydrating` and
//! every bio for it waits there; when the hydration ends, the region is
//! marked in the metadata first and only then are the waiting bios let go,
//! so no bio sees a half-copied region. Background hydration copies the
//! unhydrated regions in order, at most `hydration_threshold` regions in
//! flight, in batches of up to `hydration_batch_size` contiguous regions,
//! and only while no bio is in flight (C's policy), or, with the extension
//! `hydration_threshold_under_io N`, with up to N regions in flight while
//! user I/O goes on (a bio in flight, or one mapped since the worker last
//! looked) and `hydration_threshold` only once the device is idle; the
//! completion of each copy then queues the worker, so the copy never
//! waits for an idle instant.
//!
//! Wake-ups (where C's worker looks for regions to copy: its 1 s waker, and
//! a copy that completes while no bio is in flight): here also the
//! completion of the bio that leaves none in flight, when the worker last
//! stopped because bios were (`hydration_stalled`). Under a steady load C
//! starts copies only in the instants its timer or a completing copy finds
//! the device idle; here any idle instant restarts them.

use crate::dm::{
    self,
    kcopyd::{CopyJob, Region},
    BioList, BlkStatus, DmBio,
};
use crate::dm_err_limit;
use crate::target::DmClone;
use crate::worker::{CloneCore, Mode};
use core::sync::atomic::Ordering;
use kernel::{prelude::*, rbtree::RBTreeNodeReservation, sync::Arc};

/// A kcopyd copy of `count` regions from `first`.
struct Copy {
    core: Arc<CloneCore>,
    first: u64,
    count: u64,
}

impl CopyJob for Copy {
    /// C's `hydration_kcopyd_callback`. The job (and its reference to the
    /// core) is dropped by kcopyd right after this returns; only then does
    /// the client count it done (`KcopydClient::wait_idle`).
    fn done(&self, read_failed: bool, write_failed: bool) {
        let core = &self.core;
        let status = if read_failed || write_failed {
            dm_err_limit!("{}: hydration failed", core.handle.device_name());
            BlkStatus::IOERR
        } else {
            BlkStatus::OK
        };
        for region in self.first..self.first + self.count {
            core.hydration_complete(region, status);
        }
        if core.settings.hydration_enabled.load(Ordering::Relaxed) {
            core.continue_hydration();
        }
    }
}

/// Contiguous regions waiting to be copied together (C's `batch_info`).
#[derive(Default)]
struct Batch {
    head: Option<u64>,
    count: u64,
}

impl CloneCore {
    /// A hydration ended with `status`: mark the region, then let its
    /// waiting bios go, or fail them (C's `hydration_complete`). Returns
    /// the status for an overwrite bio. Never sleeps (bio completion).
    pub(crate) fn hydration_complete(
        self: &Arc<Self>,
        region: u64,
        status: BlkStatus,
    ) -> BlkStatus {
        let r = if self.mode() >= Mode::ReadOnly {
            Err(EPERM)
        } else if status.is_ok() {
            self.md.set_region_hydrated(region)
        } else {
            Ok(())
        };
        let waiting = self
            .hydrating
            .with(|h| h.remove(&region))
            .unwrap_or_default();
        let result = match r {
            Ok(()) if status.is_ok() => {
                self.issue_deferred_bios(waiting);
                BlkStatus::OK
            }
            _ => {
                let s = if r.is_err() { BlkStatus::IOERR } else { status };
                let mut waiting = waiting;
                while let Some(bio) = waiting.pop() {
                    bio.end(s);
                }
                s
            }
        };
        self.hydrations_in_flight.dec();
        result
    }

    /// Copies `count` regions from `first` from the source to the
    /// destination (C's `hydration_copy`).
    fn hydration_copy(self: &Arc<Self>, first: u64, count: u64) {
        if count == 0 {
            return;
        }
        let sector = self.regions.start(first);
        let len = self.regions.copy_len(first, count);
        // Fewer than `MAX_REGIONS` = 2^31 regions (checked by the
        // constructor): the count fits.
        self.hydrations_in_flight
            .add(i32::try_from(count).unwrap_or(i32::MAX));
        let job = Copy {
            core: self.clone(),
            first,
            count,
        };
        let r = self.kcopyd.copy(
            &Region {
                dev: &self.source,
                sector,
                count: len,
            },
            &Region {
                dev: &self.dest,
                sector,
                count: len,
            },
            job,
        );
        if r.is_err() {
            dm_err_limit!(
                "{}: hydration failed: out of memory",
                self.handle.device_name()
            );
            for region in first..first + count {
                self.hydration_complete(region, BlkStatus::IOERR);
            }
        }
    }

    /// A write (remapped to the destination) to an unhydrated region: wait
    /// for the region's hydration, or start it (C's `hydrate_bio_region`).
    pub(crate) fn hydrate_bio_region(self: &Arc<Self>, bio: DmBio<DmClone>) {
        let region = self.regions.of(bio.sector());
        // What to do with the bio once the look under the lock is done: the
        // lock is held only for the closure (`IrqSpinLock`).
        enum Next {
            Waiting,
            Issue(DmBio<DmClone>),
            Reserve(DmBio<DmClone>),
        }
        let next = self.hydrating.with(|h| {
            if let Some(waiting) = h.get_mut(&region) {
                waiting.push(bio);
                return Next::Waiting;
            }
            if self.md.is_region_hydrated(region) {
                return Next::Issue(bio);
            }
            Next::Reserve(bio)
        });
        let bio = match next {
            Next::Waiting => return,
            Next::Issue(bio) => return self.issue_bio(bio),
            Next::Reserve(bio) => bio,
        };
        let Ok(node) = dm::noio(|| RBTreeNodeReservation::new(GFP_KERNEL)) else {
            bio.end(BlkStatus::RESOURCE);
            return;
        };
        enum Then {
            Waiting,
            Issue(DmBio<DmClone>),
            Fail(DmBio<DmClone>),
            Overwrite(DmBio<DmClone>),
            Copy,
        }
        let whole = u64::from(bio.sectors()) == self.regions.size() && !bio.is_fua();
        let then = self.hydrating.with(|h| {
            if self.md.is_region_hydrated(region) {
                return Then::Issue(bio);
            }
            if let Some(waiting) = h.get_mut(&region) {
                waiting.push(bio);
                return Then::Waiting;
            }
            if self.mode() >= Mode::ReadOnly {
                return Then::Fail(bio);
            }
            // A write of the whole region hydrates it by itself. Not a FUA
            // one: its completion would have to wait for the commit that
            // records the region; it takes the copy path and waits in
            // `issue_bio` instead.
            if whole {
                h.insert(node.into_node(region, BioList::new()));
                Then::Overwrite(bio)
            } else {
                let mut waiting = BioList::new();
                waiting.push(bio);
                h.insert(node.into_node(region, waiting));
                Then::Copy
            }
        });
        match then {
            Then::Waiting => {}
            Then::Issue(bio) => self.issue_bio(bio),
            Then::Fail(bio) => bio.end(BlkStatus::IOERR),
            Then::Overwrite(mut bio) => {
                self.hydrations_in_flight.add(1);
                // `region` < `MAX_REGIONS` = 2^31 (checked by the constructor).
                bio.data().set(Some(region as u32));
                bio.submit();
            }
            Then::Copy => self.hydration_copy(region, 1),
        }
    }

    /// Adds `region` (just registered as hydrating) to `batch`, copying
    /// the batch when it is full or `region` does not follow it (C's
    /// `__batch_hydration`).
    fn batch_hydration(self: &Arc<Self>, batch: &mut Batch, region: u64) {
        let max = u64::from(self.settings.hydration_batch_size.load(Ordering::Relaxed));
        let mut pending = Some(region);
        if let Some(head) = batch.head {
            if batch.count < max && head + batch.count == region {
                batch.count += 1;
                pending = None;
            }
            if batch.count >= max || pending.is_some() {
                self.hydration_copy(head, batch.count);
                *batch = Batch::default();
            }
        }
        let Some(region) = pending else {
            return;
        };
        if max <= 1 {
            self.hydration_copy(region, 1);
            return;
        }
        *batch = Batch {
            head: Some(region),
            count: 1,
        };
    }

    /// Registers the next unhydrated region from `offset` that is not being
    /// hydrated, and batches it; returns where to go on (C's
    /// `__start_next_hydration`).
    fn start_next_hydration(self: &Arc<Self>, mut offset: u64, batch: &mut Batch) -> u64 {
        let nr = self.regions.nr;
        let Ok(node) = dm::noio(|| RBTreeNodeReservation::new(GFP_KERNEL)) else {
            return nr;
        };
        let mut node = Some(node);
        while offset < nr {
            offset = self.md.find_next_unhydrated(offset);
            if offset >= nr {
                break;
            }
            let taken = self.hydrating.with(|h| {
                if !self.md.is_region_hydrated(offset) && h.get(&offset).is_none() {
                    if let Some(n) = node.take() {
                        h.insert(n.into_node(offset, BioList::new()));
                        return true;
                    }
                }
                false
            });
            if taken {
                self.batch_hydration(batch, offset);
                return offset + 1;
            }
            offset += 1;
        }
        offset
    }

    /// A copy completed with hydration enabled: queue the worker to start
    /// more if it may now (C: when no bio is in flight), or have the next
    /// bio completion that leaves none in flight queue it.
    fn continue_hydration(self: &Arc<Self>) {
        if self.ios_in_flight.load(Ordering::SeqCst) == 0
            || self
                .settings
                .hydration_threshold_under_io
                .load(Ordering::Relaxed)
                > 0
        {
            self.wake();
        } else {
            self.hydration_stall();
        }
    }

    /// Background hydration stopped because bios are in flight: the
    /// completion that leaves none queues the worker (`io_completed`).
    fn hydration_stall(self: &Arc<Self>) {
        self.hydration_stalled.store(true, Ordering::SeqCst);
        // The last bio may have completed before the flag was set.
        if self.ios_in_flight.load(Ordering::SeqCst) == 0
            && self.hydration_stalled.swap(false, Ordering::SeqCst)
        {
            self.wake();
        }
    }

    /// `map` took a bio (counted in `ios_in_flight`). Callable from any
    /// context.
    #[inline]
    pub(crate) fn io_mapped(&self) {
        // Looked at first: the flag's cache line is written once per pass
        // of the worker, not once per bio.
        if !self.io_seen.load(Ordering::Relaxed) {
            self.io_seen.store(true, Ordering::Relaxed);
        }
    }

    /// A bio mapped by `map` completed (`end_io`). Callable from any
    /// context (bio completion).
    #[inline]
    pub(crate) fn io_completed(self: &Arc<Self>) {
        if self.ios_in_flight.fetch_sub(1, Ordering::SeqCst) == 1
            && self.hydration_stalled.load(Ordering::Relaxed)
            && self.hydration_stalled.swap(false, Ordering::SeqCst)
        {
            self.wake();
        }
    }

    /// Background hydration (C's `do_hydration`), from the worker. With no
    /// bio in flight, up to `hydration_threshold` regions hydrating (C);
    /// with bios in flight (or, with the extension, mapped since the last
    /// pass), up to `hydration_threshold_under_io` (0, as C, unless set);
    /// when that stops it, the worker is queued again once no bio is in
    /// flight.
    pub(crate) fn do_hydration(self: &Arc<Self>) {
        if self.mode() >= Mode::ReadOnly || self.md.is_hydration_done() {
            return;
        }
        // Held while starting copies, so a suspend waits for this loop.
        self.hydrations_in_flight.add(1);
        let nr = self.regions.nr;
        let mut offset = self.hydration_offset.load(Ordering::Relaxed);
        let mut batch = Batch::default();
        let mut stalled = false;
        let s = &self.settings;
        let under_io = u64::from(s.hydration_threshold_under_io.load(Ordering::Relaxed));
        // With the extension, a bio mapped since the last pass counts as
        // load too: with a fast device the instants between bios, when
        // none is in flight, would otherwise let the copies take over.
        let load_seen = self.io_seen.swap(false, Ordering::SeqCst) && under_io > 0;
        while !self.suspended.load(Ordering::SeqCst)
            && s.hydration_enabled.load(Ordering::SeqCst)
            && offset < nr
        {
            let threshold = u64::from(s.hydration_threshold.load(Ordering::Relaxed));
            let limit = if !load_seen && self.ios_in_flight.load(Ordering::SeqCst) == 0 {
                threshold
            } else {
                threshold.min(under_io)
            };
            // The loop's own count (1) is part of the volume, as in C: at
            // most `limit` regions hydrating.
            let volume = self.hydrations_in_flight.get() as u64 + batch.count;
            if volume > limit {
                // Stopped by bios in flight with C's policy: wait for the
                // device to be idle. (With the extension at least one copy
                // is in flight, and its completion queues the worker.)
                stalled = limit == 0 && threshold > 0;
                break;
            }
            offset = self.start_next_hydration(offset, &mut batch);
        }
        if let Some(head) = batch.head {
            self.hydration_copy(head, batch.count);
        }
        if offset >= nr {
            offset = 0;
        }
        self.hydration_offset.store(offset, Ordering::Relaxed);
        self.hydrations_in_flight.dec();
        if stalled {
            self.hydration_stall();
        }
    }
}
