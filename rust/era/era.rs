// SPDX-License-Identifier: GPL-2.0

//! `era`: dm-era in Rust.
//!
//! A drop-in for the C target of Linux 6.12 (`drivers/md/dm-era-target.c`):
//! same target name and version, table line, status, messages and on-disk
//! metadata (so `era_check`, `era_dump` and `era_invalidate` read it, and
//! either implementation reopens the other's device). It keeps track of
//! which blocks were written in which era; a backup tool asks for the blocks
//! written since a given era.
//!
//! Unlike the C target it does not lose writes in flight across a
//! checkpoint (`inflight.rs`), validates its block size, checks the device
//! fits the 32-bit on-disk block count, and answers messages and status
//! while suspended.
//!
//! Split like the C twin: the superblock format (`superblock.rs`), the
//! metadata (`metadata.rs`), the in-flight tracking (`inflight.rs`), and
//! this file: construction, the I/O path, the worker, messages and status.

// No `unsafe` in a target: only the abstraction (`mod dm`) has any.
#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
mod inflight;
mod metadata;
pub mod superblock;

use core::{
    fmt::Write,
    num::NonZeroU64,
    sync::atomic::{AtomicBool, Ordering},
};
use dm::{
    workqueue::Running, BioList, BlkStatus, EndIoBio, EndIoResult, MapBio, MapResult, Operations,
    Sleepable, StatusType, StatusWriter, Target,
};
use inflight::Tracker;
use kernel::{
    c_str, new_mutex, new_spinlock,
    prelude::*,
    sync::{Arc, Mutex, SpinLock},
    workqueue::{impl_has_work, new_work, Work, WorkItem},
};
use metadata::Metadata;

const DM_MSG_PREFIX: &str = "era";

/// Era blocks are multiples of 4 KiB (`MIN_BLOCK_SIZE`, in sectors).
const MIN_BLOCK_SIZE: u32 = 8;
/// The on-disk block count is 32-bit; like C, stay below 2^31.
const MAX_BLOCKS: u64 = (1 << 31) - 1;

module_dm_target! {
    type: Era,
    name: "dm_era_rs",
    description: "device-mapper era target, in Rust",
}

/// One era device. Field order is drop order (see `Operations::dtr`).
struct Era {
    wq: Arc<dm::Workqueue>,
    core: Arc<EraCore>,
    metadata_dev: dm::Device,
    origin_dev: dm::Device,
    sectors_per_block: u32,
    /// Not resumed yet: the metadata read by the constructor may be stale.
    fresh: AtomicBool,
}

/// What the worker shares with the target.
#[pin_data]
struct EraCore {
    #[pin]
    md: Mutex<Metadata>,
    #[pin]
    deferred: SpinLock<BioList<Era>>,
    tracker: Tracker,
    sectors_per_block: NonZeroU64,
    /// log2 of the block size when it is a power of two (C's
    /// `sectors_per_block_shift`): a shift instead of a division per bio.
    block_shift: Option<u32>,
    suspended: AtomicBool,
    wq: Arc<dm::Workqueue>,
    #[pin]
    work: Work<EraCore>,
}

impl_has_work! {
    impl HasWork<Self> for EraCore { self.work }
}

impl WorkItem for EraCore {
    type Pointer = Running<EraCore>;

    fn run(this: Running<EraCore>) {
        this.do_work();
    }
}

impl EraCore {
    fn wake(self: &Arc<Self>) {
        if !self.suspended.load(Ordering::SeqCst) {
            // Already queued is fine: it will see the new work.
            let _ = self.wq.enqueue(self.clone());
        }
    }

    /// The era blocks a bio covers: first block and count (bios are not
    /// split at block boundaries: a bio may cover several blocks).
    #[inline]
    fn blocks_of(&self, sector: u64, sectors: u32) -> (u32, u32) {
        let end = sector + u64::from(sectors.max(1)) - 1;
        let (first, last) = match self.block_shift {
            Some(shift) => (sector >> shift, end >> shift),
            None => (
                sector / self.sectors_per_block,
                end / self.sectors_per_block,
            ),
        };
        // Blocks are below 2^31 (checked by the constructor).
        let (first, last) = (first as u32, last as u32);
        (first, last - first + 1)
    }

    /// The worker: background digest, then deferred writes (C's `do_work`;
    /// C's RPCs become direct calls under the metadata lock).
    fn do_work(self: &Arc<Self>) {
        let mut md = self.md.lock();
        md.kick_off_digest();
        if md.digest_step() {
            self.wake();
        }
        self.process_deferred(&mut md);
    }

    /// Marks the blocks of deferred writes in the current era, commits, and
    /// only then lets the writes go (C's `process_deferred_bios`).
    fn process_deferred(self: &Arc<Self>, md: &mut Metadata) {
        let mut bios = self.deferred.lock().take();
        if bios.is_empty() {
            return;
        }
        let mut marked = BioList::new();
        let mut commit_needed = false;
        let mut failed = false;
        while let Some(bio) = bios.pop() {
            let (first, count) = self.blocks_of(bio.sector(), bio.sectors());
            for b in first..first + count {
                if !self.tracker.is_marked(b) {
                    if md.mark(b).is_err() {
                        failed = true;
                    }
                    commit_needed = true;
                }
            }
            marked.push(bio);
        }
        if commit_needed && !failed && md.commit().is_err() {
            failed = true;
        }
        let index = md.current_index();
        let mut retry = BioList::new();
        // As C, the writes go down under one plug.
        dm::with_plug(|| {
            while let Some(mut bio) = marked.pop() {
                if failed {
                    bio.end(BlkStatus::IOERR);
                    continue;
                }
                let (first, count) = self.blocks_of(bio.sector(), bio.sectors());
                // Only mark in core what is committed on disk.
                for b in first..first + count {
                    self.tracker.set(index, b);
                }
                match self.tracker.register(first, count) {
                    Some(slot) => {
                        bio.data().set(Some(slot));
                        bio.submit();
                    }
                    // Every slot busy: try again once writes completed.
                    None => retry.push(bio),
                }
            }
        });
        if !retry.is_empty() {
            let mut d = self.deferred.lock();
            while let Some(bio) = retry.pop() {
                d.push(bio);
            }
            drop(d);
            self.wake();
        }
    }

    /// A new era: archive the current writeset, start the next one, and
    /// record in it every write still in flight; then commit.
    fn rollover(&self, md: &mut Metadata) -> Result {
        md.rollover()?;
        let index = md.current_index();
        let in_flight = self.tracker.switch_to(index, md);
        for b in in_flight.blocks() {
            md.mark(b)?;
        }
        md.commit()?;
        for b in in_flight.blocks() {
            self.tracker.set(index, b);
        }
        Ok(())
    }
}

#[vtable]
impl Operations for Era {
    const NAME: &'static CStr = c_str!("era");
    // The version of the C target this one matches.
    const VERSION: [u32; 3] = [1, 0, 0];

    /// The in-flight slot of a write let through.
    type PerBio = Option<u32>;

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        args.expect_count(3, c_str!("Invalid argument count"))?;
        let metadata_path = args.next_str(c_str!("Invalid argument count"))?;
        let origin_path = args.next_str(c_str!("Invalid argument count"))?;
        let metadata_dev =
            target.get_device_read_write(metadata_path, c_str!("Error opening metadata device"))?;
        let origin_dev =
            target.get_device_read_write(origin_path, c_str!("Error opening data device"))?;
        let spb = args.next_u32(c_str!("Error parsing block size"))?;
        let Some(spb_nz) = NonZeroU64::new(u64::from(spb)).filter(|_| spb % MIN_BLOCK_SIZE == 0)
        else {
            return Err(args.fail(c_str!("Invalid block size"), EINVAL));
        };
        if u64::from(spb) > origin_dev.size_sectors() {
            return Err(args.fail(
                c_str!("Invalid block size: larger than the data device"),
                EINVAL,
            ));
        }
        // Unlike C, no `max_io_len`: C's `get_block` reads a bio's first
        // sector only, so C has dm core split every bio at block boundaries
        // (a 1 MiB write becomes 256 clones with 4 KiB blocks). Here a bio
        // covers a range of blocks (`blocks_of`) that is checked, marked and
        // tracked in flight as a whole.
        let nr_blocks = target.len().div_ceil(spb_nz.get());
        if nr_blocks > MAX_BLOCKS {
            return Err(args.fail(
                c_str!("Too many blocks: the era metadata counts at most 2^31 - 1"),
                EINVAL,
            ));
        }
        let md = Metadata::open(&metadata_dev, spb)
            .map_err(|e| args.fail(c_str!("Error reading metadata"), e))?;
        let wq = Arc::new(
            // Ordered and unbound, as C: the worker (mark, commit, submit)
            // runs beside the submitter instead of queueing behind it on
            // its CPU.
            dm::Workqueue::new_ordered(c_str!("dm-era"), dm::WQ_MEM_RECLAIM).map_err(|e| {
                args.fail(c_str!("could not create workqueue for metadata object"), e)
            })?,
            GFP_KERNEL,
        )?;
        let tracker = Tracker::new(nr_blocks)
            .map_err(|e| args.fail(c_str!("Error allocating era structure"), e))?;
        let core_wq = wq.clone();
        let core = Arc::pin_init(
            pin_init!(EraCore {
                md <- new_mutex!(md),
                deferred <- new_spinlock!(BioList::new()),
                tracker,
                sectors_per_block: spb_nz,
                block_shift: spb.is_power_of_two().then(|| spb.trailing_zeros()),
                suspended: AtomicBool::new(true),
                wq: core_wq,
                work <- new_work!("EraCore::work"),
            }),
            GFP_KERNEL,
        )?;

        target.set_num_flush_bios(1);
        target.set_flush_supported(true);
        target.set_num_discard_bios(1);
        Ok(Era {
            wq,
            core,
            metadata_dev,
            origin_dev,
            sectors_per_block: spb,
            fresh: AtomicBool::new(true),
        })
    }

    // Inlined into dm's map trampoline, with `blocks_of` and the tracker's
    // fast path: one call per bio, as C's `era_map` (with the single look in
    // `try_let_through`: 0.5% more 4k rewrites under `-icount`).
    #[inline]
    /// No work may run once the devices are gone: stop and drain the worker
    /// before the fields are dropped. (If the constructor fails, the worker
    /// was never queued: the target is not resumed.)
    fn dtr(&self, _target: &Target, ctx: &Sleepable<'_>) {
        self.core.suspended.store(true, Ordering::SeqCst);
        self.wq.flush(ctx);
    }

    fn map<'m>(&self, target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.origin_dev);
        // Flushes carry no data and no sector: pass them straight through.
        if bio.sectors() == 0 {
            return bio.remap();
        }
        let sector = target.offset(bio.sector());
        bio.set_sector(sector);
        if !bio.is_write() {
            return bio.remap();
        }
        let (first, count) = self.core.blocks_of(bio.sector(), bio.sectors());
        if let Some(slot) = self.core.tracker.try_let_through(first, count) {
            bio.data().set(Some(slot));
            return bio.remap();
        }
        let mut deferred = self.core.deferred.lock();
        let was_empty = deferred.is_empty();
        deferred.push(bio.keep());
        drop(deferred);
        // Only the first write of a batch queues the worker: until the worker
        // takes the list, that wake-up covers every write added to it. (A
        // wake-up per write cost a quarter of the submitter's time on 1 MiB
        // writes split into 256 blocks.)
        if was_empty {
            self.core.wake();
        }
        MapResult::submitted()
    }

    fn end_io(&self, mut bio: EndIoBio<'_, Self>, _status: &mut BlkStatus) -> EndIoResult {
        if let Some(slot) = bio.data().take() {
            self.core.tracker.release(slot);
        }
        EndIoResult::Done
    }

    fn postsuspend(&self, _target: &Target, ctx: &Sleepable<'_>) {
        // Deferred writes were drained by dm core before this point.
        let mut md = self.core.md.lock();
        if md.archive().is_err() {
            dm_err!("era_postsuspend: couldn't archive current era");
        }
        self.core.suspended.store(true, Ordering::SeqCst);
        drop(md);
        self.wq.flush(ctx);
        if self.core.md.lock().commit().is_err() {
            dm_err!("era_postsuspend: metadata_commit failed");
        }
    }

    fn preresume(&self, target: &Target, _ctx: &Sleepable<'_>) -> Result {
        let spb = self.core.sectors_per_block;
        let new_size = (target.len().div_ceil(spb.get())) as u32;
        let mut md = self.core.md.lock();
        if self.fresh.swap(false, Ordering::SeqCst) {
            // When this table replaces another era table (`dmsetup reload`),
            // the old one went on writing until its postsuspend, which has
            // committed by now: read the metadata again, or the writes made
            // between the reload and the resume would be lost. (C reads it
            // only in the constructor, and loses them.)
            *md = Metadata::open(&self.metadata_dev, spb.get() as u32).inspect_err(|_| {
                dm_err!("era_preresume: couldn't reopen the metadata");
            })?;
        }
        if md.nr_blocks() != new_size {
            md.resize(new_size)?;
            md.commit().inspect_err(|_| {
                dm_err!("era_preresume: metadata_commit failed");
            })?;
        }
        self.core.suspended.store(false, Ordering::SeqCst);
        self.core.rollover(&mut md).inspect_err(|_| {
            dm_err!("era_preresume: metadata_era_rollover failed");
        })?;
        drop(md);
        // Digest the writesets archived so far.
        self.core.wake();
        Ok(())
    }

    fn status(
        &self,
        _target: &Target,
        _ctx: &Sleepable<'_>,
        kind: StatusType,
        _flags: u32,
        out: &mut StatusWriter<'_>,
    ) {
        // Writes into the bounded buffer cannot fail: they truncate.
        let _ = match kind {
            StatusType::Info => match self.core.md.lock().stats() {
                Ok(s) => {
                    let _ = write!(
                        out,
                        "{} {}/{} {}",
                        superblock::METADATA_BLOCK_SIZE >> 9,
                        s.used,
                        s.total,
                        s.era
                    );
                    if s.snap != superblock::LOCATION {
                        write!(out, " {}", s.snap)
                    } else {
                        out.write_str(" -")
                    }
                }
                Err(_) => out.write_str("Error"),
            },
            StatusType::Table => write!(
                out,
                "{} {} {}",
                self.metadata_dev.name(),
                self.origin_dev.name(),
                self.sectors_per_block
            ),
            StatusType::Ima => Ok(()),
        };
    }

    fn message(
        &self,
        _target: &Target,
        _ctx: &Sleepable<'_>,
        args: &mut dm::Args<'_>,
        _out: &mut StatusWriter<'_>,
    ) -> Result {
        if args.count() != 1 {
            dm_err!("incorrect number of message arguments");
            return Err(EINVAL);
        }
        let msg = args.next_str(c_str!("incorrect number of message arguments"))?;
        let is = |m: &str| msg.as_bytes().eq_ignore_ascii_case(m.as_bytes());
        let mut md = self.core.md.lock();
        let r = if is("checkpoint") {
            self.core.rollover(&mut md)
        } else if is("take_metadata_snap") {
            // Check first: a refused snapshot must not start a new era.
            md.check_no_snap()
                .and_then(|()| self.core.rollover(&mut md))
                .and_then(|()| md.take_snap())
        } else if is("drop_metadata_snap") {
            md.drop_snap()
        } else {
            dm_err!("unsupported message '{}'", msg);
            return Err(EINVAL);
        };
        // As C: every message ends with a commit.
        let c = md.commit();
        drop(md);
        // The digest of the newly archived writeset runs in the worker.
        self.core.wake();
        r.and(c)
    }

    fn iterate_devices(&self, target: &Target, callout: &mut dm::DeviceCallout<'_>) -> i32 {
        // The area the target maps (C reports the whole origin, and so
        // accepts a table longer than the origin).
        callout.visit(&self.origin_dev, 0, target.len())
    }

    fn io_hints(&self, _target: &Target, limits: &mut dm::QueueLimits) {
        let io_opt = u64::from(limits.io_opt() >> 9);
        let spb = self.core.sectors_per_block;
        // Keep stacked limits compatible with the block size.
        if io_opt < spb.get() || io_opt % spb != 0 {
            limits.set_io_min(0);
            limits.set_io_opt(self.sectors_per_block << 9);
        }
    }
}
