// SPDX-License-Identifier: GPL-2.0

//! The worker of `CloneCore` (the state the target shares with it, in the
//! crate root): deferred bios, discards, flushes, the metadata commit and
//! the metadata modes (C: `do_worker`, `commit_metadata`,
//! `process_deferred_*`, `__set_clone_mode` in `dm-clone-target.c`).
//!
//! The commit is the reason this target exists in this form: the
//! destination is flushed AFTER the dirty map is swapped out and BEFORE the
//! regions in it are committed as hydrated, so a committed region always
//! has its data on stable storage. A flush bio that arrives while regions
//! are dirty waits for that commit, and an empty flush is then completed
//! without a second flush of the destination.

use crate::dm::{self, periodic, workqueue::Running, BioList, BlkStatus, DmBio, Sleepable};
use crate::{dm_err, dm_info, CloneCore, DmClone};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use kernel::{
    prelude::*,
    sync::{Arc, ArcBorrow},
    workqueue::{impl_has_work, WorkItem},
};

/// What may happen to the metadata (C's `enum clone_metadata_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Mode {
    /// Metadata may be changed.
    Write = 0,
    /// Metadata may not be changed.
    ReadOnly = 1,
    /// All metadata I/O fails.
    Fail = 2,
}

impl Mode {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Mode::Write,
            1 => Mode::ReadOnly,
            _ => Mode::Fail,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Mode::Write => "read-write",
            Mode::ReadOnly => "read-only",
            Mode::Fail => "fail",
        }
    }
}

/// Bios for the worker (C's `deferred_*` lists under `clone->lock`).
#[derive(Default)]
pub(crate) struct Deferred {
    pub(crate) bios: BioList<DmClone>,
    pub(crate) discards: BioList<DmClone>,
    pub(crate) flush_bios: BioList<DmClone>,
}

/// Tunables and switches, changed by messages (C's `clone->flags` and
/// core arguments).
pub(crate) struct Settings {
    pub(crate) hydration_enabled: AtomicBool,
    pub(crate) discard_passdown: AtomicBool,
    pub(crate) hydration_threshold: AtomicU32,
    pub(crate) hydration_batch_size: AtomicU32,
    /// Percent of the load's completions background copies may cost while
    /// user I/O goes on, 0 to 100 (an extension, core argument and message
    /// `hydration_share_under_io`; 100: copy regardless of the load). 0,
    /// the default, is C's policy: no background copy starts while a bio is
    /// in flight.
    pub(crate) hydration_share_under_io: AtomicU32,
}

impl_has_work! {
    impl HasWork<Self> for CloneCore { self.work }
}

impl WorkItem for CloneCore {
    type Pointer = Running<CloneCore>;

    fn run(this: Running<CloneCore>) {
        let ctx = this.sleepable();
        this.process_deferred_bios();
        this.process_deferred_discards();
        this.process_deferred_flush_bios(&ctx);
        this.do_hydration(&ctx);
    }
}

impl periodic::Tick for CloneCore {
    /// C's `do_waker`: a commit at least every second.
    fn tick(this: ArcBorrow<'_, Self>, _ctx: &Sleepable<'_>) {
        Arc::from(this).wake();
    }
}

impl CloneCore {
    /// Waits until neither a kcopyd job nor a work item holds a reference
    /// to the core: every copy's callback has returned and its job (with its
    /// `Arc`) has been dropped, and the worker, which those callbacks may
    /// queue, has run. For the destructor, with the waker stopped and no
    /// hydration starting (suspended): the worker starts no copy then, so
    /// one round suffices; the loop is there should it ever start one.
    ///
    /// Process context; sleeps. Not from the worker or a kcopyd callback.
    pub(crate) fn quiesce(&self, ctx: &Sleepable<'_>) {
        loop {
            self.kcopyd.wait_idle(ctx);
            self.wq.flush(ctx);
            if self.kcopyd.jobs_in_flight() == 0 {
                break;
            }
        }
    }

    /// Queues the worker (C's `wake_worker`). Callable from any context.
    pub(crate) fn wake(self: &Arc<Self>) {
        // Already queued is fine: the worker will see the new work.
        let _ = self.wq.enqueue(self.clone());
    }

    pub(crate) fn mode(&self) -> Mode {
        Mode::from_u8(self.mode.load(Ordering::Acquire))
    }

    /// C's `__set_clone_mode`: fail mode is final.
    pub(crate) fn set_mode(&self, ctx: &Sleepable<'_>, new: Mode) {
        let old = self.mode();
        let new = if old == Mode::Fail { Mode::Fail } else { new };
        if new != Mode::Write {
            self.md.set_read_only();
        }
        self.mode.store(new as u8, Ordering::Release);
        if new != old {
            self.handle.table_event(ctx);
            dm_info!(
                "{}: Switching to {} mode",
                self.handle.device_name(),
                new.describe()
            );
        }
    }

    /// C's `__metadata_operation_failed`: abort the transaction, go
    /// read-only, and forget in core what was not committed.
    fn metadata_operation_failed(&self, ctx: &Sleepable<'_>, op: &str, e: Error) {
        let name = self.handle.device_name();
        dm_err!(
            "{}: Metadata operation `{}' failed: error = {}",
            name,
            op,
            e.to_errno()
        );
        if self.mode() < Mode::ReadOnly {
            dm_err!("{}: Aborting current metadata transaction", name);
            if self.md.abort(&self.metadata_dev).is_err() {
                dm_err!("{}: Failed to abort metadata transaction", name);
                self.set_mode(ctx, Mode::Fail);
            }
        }
        self.set_mode(ctx, Mode::ReadOnly);
        if self.mode() != Mode::Fail {
            dm_info!("{}: Reloading on-disk bitmap", name);
            if self.md.reload_in_core_bitset().is_err() {
                dm_err!("{}: Failed to reload on-disk bitmap", name);
                self.set_mode(ctx, Mode::Fail);
            }
        }
    }

    /// Commits the hydrated regions if any changed: swap the dirty map,
    /// flush the destination, commit (C's `commit_metadata`). Returns
    /// whether the destination was flushed.
    pub(crate) fn commit_metadata(&self, ctx: &Sleepable<'_>) -> Result<bool> {
        let _guard = self.commit_lock.lock();
        if !self.md.changed_this_transaction() {
            return Ok(false);
        }
        if self.mode() >= Mode::ReadOnly {
            return Err(EPERM);
        }
        self.md.pre_commit().inspect_err(|&e| {
            self.metadata_operation_failed(ctx, "dm_clone_metadata_pre_commit", e)
        })?;
        // The order this target exists for: data first, then the record of
        // it. A test build (`clone_commit_before_flush`) swaps the two to
        // show that the crash-consistency test catches the difference.
        #[cfg(not(clone_commit_before_flush))]
        self.flush_dest(ctx)?;
        self.md
            .commit()
            .inspect_err(|&e| self.metadata_operation_failed(ctx, "dm_clone_metadata_commit", e))?;
        #[cfg(clone_commit_before_flush)]
        self.flush_dest(ctx)?;
        if self.md.is_hydration_done() {
            self.handle.table_event(ctx);
        }
        Ok(true)
    }

    fn flush_dest(&self, ctx: &Sleepable<'_>) -> Result {
        self.dest
            .issue_flush(ctx)
            .inspect_err(|&e| self.metadata_operation_failed(ctx, "flush destination device", e))
    }

    /// Whether `bio` must wait for a commit: a flush or FUA while regions
    /// are marked but not committed (C's `bio_triggers_commit`).
    pub(crate) fn triggers_commit(&self, bio: &DmBio<DmClone>) -> bool {
        (bio.is_preflush() || bio.is_fua()) && self.md.changed_this_transaction()
    }

    /// Sends a bio remapped to the destination, after a commit if it needs
    /// one (C's `issue_bio`).
    pub(crate) fn issue_bio(self: &Arc<Self>, bio: DmBio<DmClone>) {
        if !self.triggers_commit(&bio) {
            bio.submit();
            return;
        }
        if self.mode() >= Mode::ReadOnly {
            bio.end(BlkStatus::IOERR);
            return;
        }
        self.deferred.with(|d| d.flush_bios.push(bio));
        self.wake();
    }

    /// Hands bios that waited for a hydration to the worker (C's
    /// `issue_deferred_bios`). Callable from any context.
    pub(crate) fn issue_deferred_bios(self: &Arc<Self>, mut bios: BioList<DmClone>) {
        if bios.is_empty() {
            return;
        }
        let mut flush = BioList::new();
        let mut normal = BioList::new();
        while let Some(bio) = bios.pop() {
            if self.triggers_commit(&bio) {
                flush.push(bio);
            } else {
                normal.push(bio);
            }
        }
        self.deferred.with(|d| {
            while let Some(bio) = normal.pop() {
                d.bios.push(bio);
            }
            while let Some(bio) = flush.pop() {
                d.flush_bios.push(bio);
            }
        });
        self.wake();
    }

    fn process_deferred_bios(&self) {
        let bios = self.deferred.with(|d| d.bios.take());
        // No plug for nothing: most passes of the worker have no bio.
        if !bios.is_empty() {
            bios.submit_all();
        }
    }

    /// A discard that covers whole regions goes down to the destination if
    /// allowed; otherwise it just completes (C's `complete_discard_bio`).
    pub(crate) fn complete_discard_bio(&self, mut bio: DmBio<DmClone>, success: bool) {
        if self.settings.discard_passdown.load(Ordering::Relaxed) && success {
            let (first, n) = self.regions.covered(bio.sector(), u64::from(bio.sectors()));
            bio.set_dev(&self.dest);
            let trimmed = u32::try_from(n << self.regions.shift)
                .map_err(|_| EINVAL)
                .and_then(|sectors| bio.trim_discard(self.regions.start(first), sectors));
            match trimmed {
                Ok(()) => bio.submit(),
                // Never: whole regions covered by the discard lie within it.
                Err(_) => bio.end(BlkStatus::IOERR),
            }
        } else {
            bio.end(BlkStatus::OK);
        }
    }

    /// Discarded regions count as hydrated (there is nothing to copy): C's
    /// `process_deferred_discards`.
    fn process_deferred_discards(&self) {
        let mut discards = self.deferred.with(|d| d.discards.take());
        if discards.is_empty() {
            return;
        }
        let mut ok = self.mode() < Mode::ReadOnly;
        let mut done = BioList::new();
        while let Some(bio) = discards.pop() {
            if ok {
                let (first, n) = self.regions.covered(bio.sector(), u64::from(bio.sectors()));
                ok = self.md.cond_set_range(first, n).is_ok();
            }
            done.push(bio);
        }
        dm::with_plug(|| {
            while let Some(bio) = done.pop() {
                self.complete_discard_bio(bio, ok);
            }
        });
    }

    fn need_commit_due_to_time(&self) -> bool {
        let since = periodic::jiffies().wrapping_sub(self.last_commit.load(Ordering::Relaxed));
        // C: !time_in_range(jiffies, last, last + COMMIT_PERIOD).
        since as i64 > periodic::HZ as i64 || (since as i64) < 0
    }

    /// Commits for the flushes and FUA writes waiting, or because a second
    /// passed (C's `process_deferred_flush_bios`).
    fn process_deferred_flush_bios(&self, ctx: &Sleepable<'_>) {
        let mut bios = self.deferred.with(|d| d.flush_bios.take());
        if bios.is_empty()
            && !(self.md.changed_this_transaction() && self.need_commit_due_to_time())
        {
            return;
        }
        let dest_flushed = match self.commit_metadata(ctx) {
            Ok(f) => f,
            Err(_) => {
                while let Some(bio) = bios.pop() {
                    bio.end(BlkStatus::IOERR);
                }
                return;
            }
        };
        self.last_commit
            .store(periodic::jiffies(), Ordering::Relaxed);
        while let Some(bio) = bios.pop() {
            // An empty flush is covered by the destination flush the commit
            // just did.
            if bio.is_preflush() && dest_flushed {
                bio.end(BlkStatus::OK);
            } else {
                bio.submit();
            }
        }
    }
}
