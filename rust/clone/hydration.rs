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
//! and only while no bio is in flight (C's policy). With the extension
//! `hydration_share_under_io P` (percent), while user I/O goes on (a bio
//! in flight, or one mapped since the worker last looked) one copy of up to
//! `hydration_threshold` contiguous regions is made at a time (one kcopyd
//! job instead of threshold / batch size of them), each followed by a pause
//! that holds the copies' cost to the load at P% of its completions (a copy
//! that took t while the load completed a fraction 1 - L of its rate alone
//! waits t * (100 L - P) / P, at least t / 8), and at the device's first
//! idle moment the usual `hydration_threshold` applies: the copy always
//! makes progress, at a bounded cost to the load.
//!
//! Wake-ups (where C's worker looks for regions to copy: its 1 s waker, and
//! a copy that completes while no bio is in flight): here also the
//! completion of the bio that leaves none in flight, when the worker last
//! stopped because bios were (`hydration_stalled`). Under a steady load C
//! starts copies only in the instants its timer or a completing copy finds
//! the device idle; here any idle instant restarts them. With the
//! extension, each completing copy queues the worker, and a pause ends at
//! the first bio completion after it (`hydration_paced`), or at the 1 s
//! waker if none comes.

use crate::dm::{
    kcopyd::{CopyJob, Region},
    BioList, BlkStatus, DmBio, Sleepable,
};
use crate::dm_err_limit;
use crate::hydration_table::{new_hydration, RemovedEntries};
use crate::worker::Mode;
use crate::{CloneCore, DmClone};
use core::sync::atomic::Ordering;
use kernel::{prelude::*, sync::Arc, time::Ktime};

/// Nanoseconds in a second.
const NSEC_PER_SEC: u64 = 1_000_000_000;

/// The monotonic clock, ns.
fn now_ns() -> i64 {
    Ktime::ktime_get().to_ns()
}

/// A kcopyd copy of `count` regions from `first`, started at `start_ns`.
pub(crate) struct Copy {
    core: Arc<CloneCore>,
    first: u64,
    count: u64,
    start_ns: i64,
    /// `ios_completed` when the copy started (with `start_ns`).
    start_ios: u64,
}

impl CopyJob for Copy {
    /// C's `hydration_kcopyd_callback`. The job (and its reference to the
    /// core) is dropped by kcopyd right after this returns; only then does
    /// the client count it done (`KcopydClient::wait_idle`).
    fn done(&self, _ctx: &Sleepable<'_>, read_failed: bool, write_failed: bool) {
        let core = &self.core;
        let status = if read_failed || write_failed {
            dm_err_limit!("{}: hydration failed", core.handle.device_name());
            BlkStatus::IOERR
        } else {
            BlkStatus::OK
        };
        core.hydration_complete(self.first, self.count, status);
        if core.settings.hydration_enabled.load(Ordering::Relaxed) {
            core.continue_hydration(self.start_ns, self.start_ios);
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
    /// The hydration of the `count` regions from `first` (one copy, or one
    /// overwrite) ended with `status`: mark them, then let their waiting
    /// bios go, or fail them (C's `hydration_complete` for each region;
    /// here each lock is taken once for the copy). Returns the status for
    /// an overwrite bio. Never sleeps (bio completion).
    pub(crate) fn hydration_complete(
        self: &Arc<Self>,
        first: u64,
        count: u64,
        status: BlkStatus,
    ) -> BlkStatus {
        let r = if self.mode() >= Mode::ReadOnly {
            Err(EPERM)
        } else if status.is_ok() {
            self.md.set_regions_hydrated(first, count)
        } else {
            Ok(())
        };
        let mut waiting = BioList::new();
        let mut removed = RemovedEntries::default();
        self.hydrating.with(|h| {
            for region in first..first.saturating_add(count) {
                if let Some(mut bios) = h.remove(region, &mut removed) {
                    while let Some(bio) = bios.pop() {
                        waiting.push(bio);
                    }
                }
            }
        });
        // Back to the pool with interrupts on.
        drop(removed);
        let result = match r {
            Ok(()) if status.is_ok() => {
                self.issue_deferred_bios(waiting);
                BlkStatus::OK
            }
            _ => {
                let s = if r.is_err() { BlkStatus::IOERR } else { status };
                while let Some(bio) = waiting.pop() {
                    bio.end(s);
                }
                s
            }
        };
        // Fewer than `MAX_REGIONS` = 2^31 regions (checked by the
        // constructor): the count fits.
        self.hydrations_in_flight
            .sub(i32::try_from(count).unwrap_or(i32::MAX));
        result
    }

    /// Copies `count` regions from `first` from the source to the
    /// destination (C's `hydration_copy`).
    fn hydration_copy(self: &Arc<Self>, ctx: &Sleepable<'_>, first: u64, count: u64) {
        if count == 0 {
            return;
        }
        let sector = self.regions.start(first);
        let len = self.regions.copy_len(first, count);
        // Fewer than `MAX_REGIONS` = 2^31 regions (checked by the
        // constructor): the count fits.
        self.hydrations_in_flight
            .add(i32::try_from(count).unwrap_or(i32::MAX));
        // The clock is read only for the extension's pacing.
        let paced = self
            .settings
            .hydration_share_under_io
            .load(Ordering::Relaxed)
            != 0;
        let job = Copy {
            core: self.clone(),
            first,
            count,
            start_ns: if paced { now_ns() } else { 0 },
            start_ios: self.ios_completed.load(Ordering::Relaxed),
        };
        // Never fails: the job waits for an earlier copy when memory is short.
        self.kcopyd.copy(
            ctx,
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
    }

    /// A write (remapped to the destination) to an unhydrated region: wait
    /// for the region's hydration, or start it (C's `hydrate_bio_region`).
    /// From `map` (`ctx`: the target is not `NOWAIT`), as C.
    pub(crate) fn hydrate_bio_region(self: &Arc<Self>, ctx: &Sleepable<'_>, bio: DmBio<DmClone>) {
        let region = self.regions.of(bio.sector());
        // What to do with the bio once the look under the lock is done: the
        // lock is held only for the closure (`IrqSpinLock`).
        enum Next {
            Waiting,
            Issue(DmBio<DmClone>),
            Reserve(DmBio<DmClone>),
        }
        let next = self.hydrating.with(|h| {
            if let Some(waiting) = h.waiting(region) {
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
        // The table's entry, taken before the lock as C's `alloc_hydration()`
        // (`GFP_NOIO`: waits for a hydration to end if memory is short).
        let mut entry = new_hydration(&self.hydration_pool, ctx, region, BioList::new());
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
            if let Some(waiting) = h.waiting(region) {
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
            // (`insert` cannot find the region: looked for just above.)
            if whole {
                h.insert(entry);
                Then::Overwrite(bio)
            } else {
                entry.waiting_mut().push(bio);
                h.insert(entry);
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
            Then::Copy => self.hydration_copy(ctx, region, 1),
        }
    }

    /// Adds `region` (just registered as hydrating) to `batch`, copying
    /// the batch when it has `max` regions or `region` does not follow it
    /// (C's `__batch_hydration`, whose `max` is `hydration_batch_size`).
    fn batch_hydration(
        self: &Arc<Self>,
        ctx: &Sleepable<'_>,
        batch: &mut Batch,
        region: u64,
        max: u64,
    ) {
        let mut pending = Some(region);
        if let Some(head) = batch.head {
            if batch.count < max && head + batch.count == region {
                batch.count += 1;
                pending = None;
            }
            if batch.count >= max || pending.is_some() {
                self.hydration_copy(ctx, head, batch.count);
                *batch = Batch::default();
            }
        }
        let Some(region) = pending else {
            return;
        };
        if max <= 1 {
            self.hydration_copy(ctx, region, 1);
            return;
        }
        *batch = Batch {
            head: Some(region),
            count: 1,
        };
    }

    /// Registers the next unhydrated region from `offset` that is not being
    /// hydrated, and batches it in batches of up to `max`; returns where to
    /// go on (C's `__start_next_hydration`).
    fn start_next_hydration(
        self: &Arc<Self>,
        ctx: &Sleepable<'_>,
        mut offset: u64,
        batch: &mut Batch,
        max: u64,
    ) -> u64 {
        let nr = self.regions.nr;
        let mut entry = None;
        while offset < nr {
            offset = self.md.find_next_unhydrated(offset);
            if offset >= nr {
                break;
            }
            // Taken before the lock, once (`GFP_NOIO`, never fails).
            let e = entry.get_or_insert_with(|| {
                new_hydration(&self.hydration_pool, ctx, offset, BioList::new())
            });
            e.set_region(offset);
            let taken = self.hydrating.with(|h| {
                if !self.md.is_region_hydrated(offset) && !h.contains(offset) {
                    if let Some(e) = entry.take() {
                        return h.insert(e);
                    }
                }
                false
            });
            if taken {
                self.batch_hydration(ctx, batch, offset, max);
                return offset + 1;
            }
            offset += 1;
        }
        offset
    }

    /// A copy started at `start_ns` (0: not timed), when `start_ios` bios
    /// had completed, completed with hydration enabled. C's policy: queue
    /// the worker to start more if it may now (no bio in flight), or have
    /// the next bio completion that leaves none in flight queue it. With
    /// `hydration_share_under_io P`: set the pause that holds the copies'
    /// cost to the load at P% of its completions (the worker keeps it only
    /// under load; `load_pause_ns`), and queue the worker.
    fn continue_hydration(self: &Arc<Self>, start_ns: i64, start_ios: u64) {
        let share = i64::from(
            self.settings
                .hydration_share_under_io
                .load(Ordering::Relaxed),
        );
        if share > 0 {
            if share < 100 {
                let now = now_ns();
                // 0: started before the extension was set (not timed).
                let took = if start_ns > 0 {
                    now.saturating_sub(start_ns).max(0)
                } else {
                    0
                };
                let ios = self.ios_completed.load(Ordering::Relaxed);
                let pause = self.load_pause_ns(share, took, ios.wrapping_sub(start_ios));
                self.pause_start_ios.store(ios, Ordering::Relaxed);
                self.pause_start_ns.store(now, Ordering::Relaxed);
                self.hydration_resume_ns
                    .store(now.saturating_add(pause), Ordering::Relaxed);
            }
            self.wake();
        } else if self.ios_in_flight.load(Ordering::SeqCst) == 0 {
            self.wake();
        } else {
            self.hydration_stall();
        }
    }

    /// The pause after a copy that took `took` ns while `ios` bios of the
    /// load completed, so that copies cost the load at most `share`
    /// percent of its completions (`hydration_share_under_io`). The copy's
    /// cost is how much fewer bios completed during it than at the load's
    /// rate alone (`load_rate_alone`, measured in the pauses; unknown: the
    /// whole load, as if the copy had stopped it). Copying a fraction f of
    /// the time at a loss of L costs the load f * L: the pause is
    /// `took * (100 * L - share) / share`, at least an eighth of `took`
    /// (a pause to measure the load alone in).
    fn load_pause_ns(&self, share: i64, took: i64, ios: u64) -> i64 {
        let alone = self.load_rate_alone.load(Ordering::Relaxed);
        let loss = if took > 0 && alone > 0 {
            // Completions per second during the copy; `took` > 0.
            let during = ios.saturating_mul(NSEC_PER_SEC) / took as u64;
            100 - (during.saturating_mul(100) / alone).min(100) as i64
        } else {
            100
        };
        (took.saturating_mul(loss - share) / share).max(took / 8)
    }

    /// Under load, a copy is about to start after a pause: the load's rate
    /// in that pause (no copy running) goes into `load_rate_alone` (a
    /// moving average, a quarter for the new pause).
    fn pause_ended(&self, now: i64) {
        let from = self.pause_start_ns.load(Ordering::Relaxed);
        let took = now.saturating_sub(from);
        if from <= 0 || took <= 0 {
            return;
        }
        let ios = self
            .ios_completed
            .load(Ordering::Relaxed)
            .wrapping_sub(self.pause_start_ios.load(Ordering::Relaxed));
        let rate = ios.saturating_mul(NSEC_PER_SEC) / took as u64;
        let old = self.load_rate_alone.load(Ordering::Relaxed);
        let avg = if old == 0 {
            rate
        } else {
            (old.saturating_mul(3).saturating_add(rate)) / 4
        };
        self.load_rate_alone.store(avg, Ordering::Relaxed);
        self.pause_start_ns.store(0, Ordering::Relaxed);
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
        // Counted for the extension's pacing only: C's policy keeps one
        // atomic write per bio.
        if self
            .settings
            .hydration_share_under_io
            .load(Ordering::Relaxed)
            != 0
        {
            self.ios_completed.fetch_add(1, Ordering::Relaxed);
        }
        if self.ios_in_flight.fetch_sub(1, Ordering::SeqCst) == 1
            && self.hydration_stalled.load(Ordering::Relaxed)
            && self.hydration_stalled.swap(false, Ordering::SeqCst)
        {
            self.wake();
        }
        if self.hydration_paced.load(Ordering::Relaxed)
            && now_ns() >= self.hydration_resume_ns.load(Ordering::Relaxed)
            && self.hydration_paced.swap(false, Ordering::SeqCst)
        {
            self.wake();
        }
    }

    /// Background hydration (C's `do_hydration`), from the worker: up to
    /// `hydration_threshold` regions hydrating. C's policy: none starts
    /// while a bio is in flight; stopped by one, the worker is queued again
    /// once none is. With `hydration_share_under_io P` (0 < P < 100), while
    /// bios are in flight or were mapped since the last pass: one copy of
    /// up to `hydration_threshold` contiguous regions at a time, after the
    /// pause the last copy set (P = 100: as if idle).
    pub(crate) fn do_hydration(self: &Arc<Self>, ctx: &Sleepable<'_>) {
        if self.mode() >= Mode::ReadOnly || self.md.is_hydration_done() {
            return;
        }
        // Held while starting copies, so a suspend waits for this loop.
        self.hydrations_in_flight.add(1);
        let nr = self.regions.nr;
        let mut offset = self.hydration_offset.load(Ordering::Relaxed);
        let mut batch = Batch::default();
        let (mut stalled, mut paced) = (false, false);
        let s = &self.settings;
        let share = s.hydration_share_under_io.load(Ordering::Relaxed);
        // With the extension, a bio mapped since the last pass counts as
        // load too: with a fast device the instants between bios, when
        // none is in flight, would otherwise let the copies take over.
        let load_seen = share > 0 && self.io_seen.swap(false, Ordering::SeqCst);
        while !self.suspended.load(Ordering::SeqCst)
            && s.hydration_enabled.load(Ordering::SeqCst)
            && offset < nr
        {
            // The loop's own count (1) is part of the volume, as in C: at
            // most `hydration_threshold` regions hydrating.
            let volume = self.hydrations_in_flight.get() as u64 + batch.count;
            if volume > u64::from(s.hydration_threshold.load(Ordering::Relaxed)) {
                break;
            }
            let mut max = u64::from(s.hydration_batch_size.load(Ordering::Relaxed));
            if load_seen || self.ios_in_flight.load(Ordering::SeqCst) != 0 {
                if share == 0 {
                    // C's policy: wait for the device to be idle.
                    stalled = true;
                    break;
                }
                if share < 100 {
                    // One copy at a time: a copy in flight queues the
                    // worker when it completes.
                    if self.hydrations_in_flight.get() > 1 {
                        break;
                    }
                    if batch.count == 0 {
                        let now = now_ns();
                        if now < self.hydration_resume_ns.load(Ordering::Relaxed) {
                            paced = true;
                            break;
                        }
                        self.pause_ended(now);
                    }
                    // Of up to `hydration_threshold` contiguous regions
                    // (what an idle device has in flight): one kcopyd job,
                    // one wake-up and one pause for all of them.
                    max = max.max(u64::from(s.hydration_threshold.load(Ordering::Relaxed)));
                }
            }
            offset = self.start_next_hydration(ctx, offset, &mut batch, max);
        }
        if let Some(head) = batch.head {
            self.hydration_copy(ctx, head, batch.count);
        }
        if offset >= nr {
            offset = 0;
        }
        self.hydration_offset.store(offset, Ordering::Relaxed);
        self.hydrations_in_flight.dec();
        if stalled {
            self.hydration_stall();
        }
        if paced {
            self.hydration_paced.store(true, Ordering::SeqCst);
        }
    }
}
