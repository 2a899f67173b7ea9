// SPDX-License-Identifier: GPL-2.0

//! `clone`: dm-clone in Rust.
//!
//! A drop-in for the C target of Linux 6.12 (`drivers/md/dm-clone-target.c`,
//! `dm-clone-metadata.c`): same target name and version, table line,
//! status, messages and on-disk metadata, so either implementation reopens
//! the other's device. It presents a copy of a read-only source device,
//! served from the source until a region has been copied ("hydrated") to
//! the destination, and hydrates in the background.
//!
//! The destination is flushed before every metadata commit, so a region
//! recorded as hydrated always has its data on stable storage.
//!
//! Split like the C twin: the superblock format and region arithmetic
//! (`superblock.rs`), the metadata (`metadata.rs`), region hydration
//! (`hydration.rs`, `hydration_table.rs`), the worker and commits
//! (`worker.rs`), and this file: the target type and its hooks (table
//! line, the I/O path, suspend and resume, status, messages, queue limits)
//! and the state it shares with the worker.
//!
//! Built twice (`Kbuild`): `dm-clone-rs`, and with `--cfg
//! clone_commit_before_flush` the TEST BUILD `dm-clone-rs-unordered`, which
//! commits the metadata BEFORE the destination is flushed (see
//! `worker.rs`), so that the crash-consistency selftest can show its check
//! fails on exactly the bug the real module avoids. Never load that one on
//! data you care about.

// No `unsafe` in a target: only the abstraction (`mod dm`) has any.
#![deny(unsafe_code)]
// `CloneCore` has more fields than `pin_init!` expands within the default limit.
#![recursion_limit = "256"]

#[path = "../dm/mod.rs"]
pub mod dm;
mod hydration;
mod hydration_table;
mod metadata;
pub mod superblock;
mod worker;

use core::{
    fmt::Write,
    sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering},
};
use dm::{
    kcopyd::KcopydClient, parse, periodic, periodic::PeriodicWork, sync::IrqSpinLock, BlkStatus,
    DmBio, EndIoBio, EndIoResult, MapBio, MapResult, Op, Operations, Sleepable, StatusType,
    StatusWriter, Target, TargetHandle,
};
use hydration::Copy;
use hydration_table::{HydrationPool, HydrationTable, MIN_HYDRATIONS};
use kernel::{
    c_str,
    prelude::*,
    sync::{Arc, Mutex},
    workqueue::Work,
};
use metadata::Metadata;
use superblock::{Regions, METADATA_BLOCK_SIZE};
use worker::{Deferred, Mode, Settings};

const DM_MSG_PREFIX: &str = "clone";

#[cfg(not(clone_commit_before_flush))]
module_dm_target! {
    type: DmClone,
    name: "dm_clone_rs",
    description: "device-mapper clone target, in Rust",
}

#[cfg(clone_commit_before_flush)]
module_dm_target! {
    type: DmClone,
    name: "dm_clone_rs_unordered",
    description: "TEST ONLY: dm-clone-rs that commits metadata before flushing the destination",
}

/// Smallest region: 4 KiB (`MIN_REGION_SIZE`, sectors).
const MIN_REGION_SIZE: u64 = 1 << 3;
/// Largest region: 1 GiB (`MAX_REGION_SIZE`, sectors).
const MAX_REGION_SIZE: u64 = 1 << 21;
/// Regions are counted in 31 bits on disk and in core.
const MAX_REGIONS: u64 = 1 << 31;
/// `DEFAULT_HYDRATION_THRESHOLD` and `DEFAULT_HYDRATION_BATCH_SIZE`.
const DEFAULT_HYDRATION_THRESHOLD: u32 = 1;
const DEFAULT_HYDRATION_BATCH_SIZE: u32 = 1;
/// Metadata space the space map can address (`DM_SM_METADATA_MAX_SECTORS`):
/// 255 * (1 << 14) * 8 sectors.
const METADATA_MAX_SECTORS: u64 = 255 * (1 << 14) * 8;
/// Above this size the excess metadata space is reported unused
/// (`DM_CLONE_METADATA_MAX_SECTORS_WARNING`, 16 GiB).
const METADATA_MAX_SECTORS_WARNING: u64 = 16 * (1 << 21);

/// Where `map` sends a bio.
enum Route {
    /// Hydrated regions: the destination.
    Dest,
    /// A read of unhydrated regions: the source.
    Source,
    /// A write to an unhydrated region: the destination once the region is
    /// hydrated.
    Hydrate,
}

/// One clone target. Field order is drop order (see `Operations::dtr`).
struct DmClone {
    waker: PeriodicWork<CloneCore>,
    wq: Arc<dm::Workqueue>,
    core: Arc<CloneCore>,
    /// No resume yet: the first one reads the metadata again.
    fresh: AtomicBool,
    /// The table arguments after the three devices, as given, for the table
    /// echo (C's `ctr_args`).
    table_args: KVec<u8>,
}

/// The state of one clone device shared by the I/O path, the worker, the
/// kcopyd callbacks and bio completions.
///
/// Field order is drop order: the kcopyd client and the metadata go before
/// the devices they use. The core is dropped by the target's destructor
/// only (see `DmClone`'s `dtr`), after `quiesce`: no copy is in flight
/// and no work item is queued by then.
#[pin_data]
pub(crate) struct CloneCore {
    #[pin]
    pub(crate) md: Metadata,
    /// Regions being hydrated, with the bios waiting for each (C's hash
    /// table of `dm_clone_region_hydration`).
    #[pin]
    pub(crate) hydrating: IrqSpinLock<HydrationTable>,
    /// Entries of `hydrating` (C's `hydration_pool`).
    pub(crate) hydration_pool: HydrationPool,
    #[pin]
    pub(crate) deferred: IrqSpinLock<Deferred>,
    #[pin]
    commit_lock: Mutex<()>,
    #[pin]
    work: Work<CloneCore>,
    pub(crate) kcopyd: KcopydClient<Copy>,
    pub(crate) metadata_dev: dm::Device,
    pub(crate) dest: dm::Device,
    pub(crate) source: dm::Device,
    pub(crate) wq: Arc<dm::Workqueue>,
    pub(crate) handle: TargetHandle,
    pub(crate) regions: Regions,
    pub(crate) settings: Settings,
    mode: AtomicU8,
    /// Not resumed (C's `DM_CLONE_HYDRATION_SUSPENDED`).
    pub(crate) suspended: AtomicBool,
    /// Where background hydration goes on (worker only).
    pub(crate) hydration_offset: AtomicU64,
    /// Bios mapped and not completed; background hydration waits for none
    /// (unless `hydration_share_under_io` allows some copies).
    pub(crate) ios_in_flight: AtomicI64,
    /// Background hydration stopped because bios were in flight: the bio
    /// whose completion leaves none in flight queues the worker (C waits
    /// for its 1 s timer or a copy that completes while none is).
    pub(crate) hydration_stalled: AtomicBool,
    /// A bio was mapped since background hydration last looked: with
    /// `hydration_share_under_io`, the device counts as under load even in
    /// the instants between its bios.
    pub(crate) io_seen: AtomicBool,
    /// With `hydration_share_under_io`: under load, no copy starts before
    /// this time (ns, `ktime_get`); set when a copy completes, from how
    /// long it took.
    pub(crate) hydration_resume_ns: AtomicI64,
    /// Background hydration waits for `hydration_resume_ns`: the first
    /// `end_io` after it queues the worker.
    pub(crate) hydration_paced: AtomicBool,
    /// Bios mapped and completed while `hydration_share_under_io` is set
    /// (wraps): the load's rate, for the extension's pacing.
    pub(crate) ios_completed: AtomicU64,
    /// With `hydration_share_under_io`: when the last pause began (ns,
    /// `ktime_get`; 0: none yet) and `ios_completed` then.
    pub(crate) pause_start_ns: AtomicI64,
    pub(crate) pause_start_ios: AtomicU64,
    /// With `hydration_share_under_io`: the load's completions per second
    /// while no copy ran (a moving average over the pauses; 0: not known).
    pub(crate) load_rate_alone: AtomicU64,
    /// Regions being hydrated (plus one while the worker starts more).
    pub(crate) hydrations_in_flight: dm::sync::WaitCount,
    last_commit: AtomicU64,
}

impl CloneCore {
    /// Initialiser: `md` is the opened metadata's initialiser.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        md: impl PinInit<Metadata, Error>,
        hydrating: HydrationTable,
        hydration_pool: HydrationPool,
        kcopyd: KcopydClient<Copy>,
        metadata_dev: dm::Device,
        dest: dm::Device,
        source: dm::Device,
        wq: Arc<dm::Workqueue>,
        handle: TargetHandle,
        regions: Regions,
        settings: Settings,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            md <- md,
            hydrating <- new_irq_spinlock!(hydrating),
            hydration_pool,
            deferred <- new_irq_spinlock!(Deferred::default()),
            commit_lock <- kernel::new_mutex!(()),
            work <- kernel::new_work!("CloneCore::work"),
            kcopyd,
            metadata_dev,
            dest,
            source,
            wq,
            handle,
            regions,
            settings,
            mode: AtomicU8::new(Mode::Write as u8),
            suspended: AtomicBool::new(true),
            hydration_offset: AtomicU64::new(0),
            ios_in_flight: AtomicI64::new(0),
            hydration_stalled: AtomicBool::new(false),
            io_seen: AtomicBool::new(false),
            hydration_resume_ns: AtomicI64::new(0),
            hydration_paced: AtomicBool::new(false),
            ios_completed: AtomicU64::new(0),
            pause_start_ns: AtomicI64::new(0),
            pause_start_ios: AtomicU64::new(0),
            load_rate_alone: AtomicU64::new(0),
            hydrations_in_flight: dm::sync::WaitCount::new(),
            last_commit: AtomicU64::new(periodic::jiffies()),
        }? Error)
    }
}

/// Reads the count of an argument group: at most `max` and no more than the
/// arguments left (C's `dm_read_arg_group`).
fn read_group(args: &mut dm::Args<'_>, max: u32, reason: &'static CStr) -> Result<u32> {
    let n = args.next_u32(reason)?;
    if n > max || n as usize > args.remaining() {
        return Err(args.fail(reason, EINVAL));
    }
    Ok(n)
}

/// A value as C's `kstrtouint(s, 10, ...)` reads it: decimal, an optional
/// leading `+`, at most 32 bits.
fn kstrtouint(s: &CStr) -> Option<u32> {
    let b = s.as_bytes();
    let b = b.strip_prefix(b"+").unwrap_or(b);
    parse::parse_u32(b).ok()
}

/// The next argument as a `kstrtouint` value; fails with `reason`.
fn next_kstrtouint(args: &mut dm::Args<'_>, reason: &'static CStr) -> Result<u32> {
    let s = args.next_str(reason)?;
    kstrtouint(s).ok_or_else(|| args.fail(reason, EINVAL))
}

fn is(arg: &CStr, name: &str) -> bool {
    arg.as_bytes().eq_ignore_ascii_case(name.as_bytes())
}

impl DmClone {
    /// Shortens `bio` (being mapped, its sector already the target's) to end
    /// where region `stop`, one of the regions it covers, starts.
    fn cut_before(&self, bio: &mut MapBio<'_, Self>, stop: u64) -> Result {
        let keep = self.core.regions.start(stop) - bio.sector();
        let keep = u32::try_from(keep).map_err(|_| EINVAL)?;
        bio.accept_partial(keep).inspect_err(|_| {
            dm_err_limit!(
                "{}: cannot split a bio at region {} ({} + {})",
                self.core.handle.device_name(),
                stop,
                bio.sector(),
                bio.sectors()
            );
        })
    }

    /// A discard: whole regions it covers count as hydrated and the discard
    /// goes down to the destination (C's `process_discard_bio`).
    fn process_discard_bio(&self, bio: DmBio<Self>) {
        let core = &self.core;
        let (first, n) = core.regions.covered(bio.sector(), u64::from(bio.sectors()));
        if n == 0 {
            bio.end(BlkStatus::OK);
            return;
        }
        if first >= core.regions.nr || first + n > core.regions.nr {
            dm_err!(
                "{}: Invalid range ({} + {}, total regions {}) for discard ({} + {})",
                core.handle.device_name(),
                first,
                n,
                core.regions.nr,
                bio.sector(),
                bio.sectors()
            );
            bio.end(BlkStatus::OK);
            return;
        }
        if core.md.is_range_hydrated(first, n) {
            core.complete_discard_bio(bio, true);
            return;
        }
        if core.mode() >= Mode::ReadOnly {
            bio.end(BlkStatus::OK);
            return;
        }
        core.deferred.with(|d| d.discards.push(bio));
        core.wake();
    }
}

#[vtable]
impl Operations for DmClone {
    const NAME: &'static CStr = c_str!("clone");
    // The version of the C target this one matches.
    const VERSION: [u32; 3] = [1, 0, 0];

    /// The region of an overwrite: a write covering a whole unhydrated
    /// region, which hydrates it when it completes. Regions are counted in
    /// 31 bits (`MAX_REGIONS`), so it fits `bi_private` (see `dm::target`).
    type PerBio = Option<u32>;

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        if args.count() < 4 {
            return Err(args.fail(c_str!("Invalid number of arguments"), EINVAL));
        }
        let len = target.len();
        let path = args.next_str(c_str!("Invalid number of arguments"))?;
        let metadata_dev =
            target.get_device_read_write(path, c_str!("Error opening metadata device"))?;
        if metadata_dev.size_sectors() > METADATA_MAX_SECTORS_WARNING {
            dm_warn!(
                "Metadata device {} is larger than {} sectors: excess space will not be used.",
                metadata_dev.name(),
                METADATA_MAX_SECTORS
            );
        }
        let path = args.next_str(c_str!("Invalid number of arguments"))?;
        let dest =
            target.get_device_read_write(path, c_str!("Error opening destination device"))?;
        if dest.size_sectors() < len {
            return Err(args.fail(c_str!("Device size larger than destination device"), EINVAL));
        }
        let path = args.next_str(c_str!("Invalid number of arguments"))?;
        let source = target.get_device_read_only(path, c_str!("Error opening source device"))?;
        if source.size_sectors() < len {
            return Err(args.fail(c_str!("Device size larger than source device"), EINVAL));
        }

        let region_size = args.next_u64_in(
            MIN_REGION_SIZE,
            MAX_REGION_SIZE,
            c_str!("Invalid region size"),
        )?;
        if !region_size.is_power_of_two() {
            return Err(args.fail(c_str!("Region size is not a power of 2"), EINVAL));
        }
        let lbs_mask = |d: &dm::Device| u64::from(d.logical_block_size() >> 9).max(1) - 1;
        if region_size & lbs_mask(&source) != 0 || region_size & lbs_mask(&dest) != 0 {
            return Err(args.fail(
                c_str!("Region size is not a multiple of device logical block size"),
                EINVAL,
            ));
        }
        let regions = Regions::new(region_size.trailing_zeros(), len);
        if regions.nr > MAX_REGIONS {
            return Err(args.fail(
                c_str!("Too many regions. Consider increasing the region size"),
                EINVAL,
            ));
        }
        // No `max_io_len`: C has dm core split every bio at region
        // boundaries; `map` here takes a run of regions in one state whole
        // (see there).

        let settings = Settings {
            hydration_enabled: AtomicBool::new(true),
            discard_passdown: AtomicBool::new(true),
            hydration_threshold: AtomicU32::new(DEFAULT_HYDRATION_THRESHOLD),
            hydration_batch_size: AtomicU32::new(DEFAULT_HYDRATION_BATCH_SIZE),
            hydration_share_under_io: AtomicU32::new(0),
        };
        // Feature arguments.
        if args.remaining() > 0 {
            let reason = c_str!("Invalid number of feature arguments");
            for _ in 0..read_group(args, 2, reason)? {
                let f = args.next_str(reason)?;
                if is(f, "no_hydration") {
                    settings.hydration_enabled.store(false, Ordering::Relaxed);
                } else if is(f, "no_discard_passdown") {
                    settings.discard_passdown.store(false, Ordering::Relaxed);
                } else {
                    return Err(args.fail(c_str!("Invalid feature argument"), EINVAL));
                }
            }
        }
        // Core arguments (C takes at most 4: `hydration_share_under_io` is
        // an extension).
        if args.remaining() > 0 {
            let reason = c_str!("Invalid number of core arguments");
            let n = read_group(args, 6, reason)?;
            if n % 2 != 0 {
                return Err(args.fail(c_str!("Number of core arguments must be even"), EINVAL));
            }
            let mut extension = false;
            for _ in 0..n / 2 {
                let name = args.next_str(reason)?;
                if is(name, "hydration_threshold") {
                    let v = next_kstrtouint(
                        args,
                        c_str!("Invalid value for argument `hydration_threshold'"),
                    )?;
                    settings.hydration_threshold.store(v, Ordering::Relaxed);
                } else if is(name, "hydration_batch_size") {
                    let v = next_kstrtouint(
                        args,
                        c_str!("Invalid value for argument `hydration_batch_size'"),
                    )?;
                    settings.hydration_batch_size.store(v, Ordering::Relaxed);
                } else if is(name, "hydration_share_under_io") {
                    extension = true;
                    let reason = c_str!("Invalid value for argument `hydration_share_under_io'");
                    let v = next_kstrtouint(args, reason)?;
                    if v > 100 {
                        return Err(args.fail(reason, EINVAL));
                    }
                    settings
                        .hydration_share_under_io
                        .store(v, Ordering::Relaxed);
                } else {
                    return Err(args.fail(c_str!("Invalid core argument"), EINVAL));
                }
            }
            // More than C's four only with the extension among them.
            if n > 4 && !extension {
                return Err(args.fail(reason, EINVAL));
            }
        }
        // C ignores anything after the core arguments (and echoes it back);
        // a typo there would go unnoticed.
        args.expect_end(c_str!("Too many arguments"))?;

        let mut table_args = KVec::new();
        for i in 3..args.count() {
            if let Some(a) = args.get(i) {
                table_args.push(b' ', GFP_KERNEL)?;
                table_args.extend_from_slice(a.as_bytes(), GFP_KERNEL)?;
            }
        }

        let md = Metadata::open(&metadata_dev, regions)
            .map_err(|e| args.fail(c_str!("Failed to load metadata"), e))?;
        // Unbound with more than one CPU online (C's is per-CPU): the worker
        // is also queued from `end_io` (a pause or a stall ended), on the CPU
        // that completed the user's bio; unbound, it and the kcopyd jobs it
        // starts (queued on its CPU) may run on another CPU of the pod than
        // the user's I/O. With one CPU there is no other to run on, and a
        // second worker pool only costs a kworker wake-up per completed copy
        // that the per-CPU pool saves (kcopyd's kworker runs the worker next).
        let wq_flags = if dm::num_online_cpus() > 1 {
            dm::WQ_MEM_RECLAIM | dm::WQ_UNBOUND
        } else {
            dm::WQ_MEM_RECLAIM
        };
        let wq = Arc::new(
            dm::Workqueue::new(c_str!("dm-clone"), wq_flags, 0)
                .map_err(|e| args.fail(c_str!("Failed to allocate workqueue"), e))?,
            GFP_KERNEL,
        )?;
        let hydrating = HydrationTable::new()
            .map_err(|e| args.fail(c_str!("Failed to allocate hydration hash table"), e))?;
        let hydration_pool = HydrationPool::new(MIN_HYDRATIONS).map_err(|e| {
            args.fail(
                c_str!("Failed to create dm_clone_region_hydration memory pool"),
                e,
            )
        })?;
        let kcopyd = KcopydClient::new()
            .map_err(|e| args.fail(c_str!("Failed to create kcopyd client"), e))?;
        let handle = target.handle();
        let core = Arc::pin_init(
            CloneCore::new(
                md,
                hydrating,
                hydration_pool,
                kcopyd,
                metadata_dev,
                dest,
                source,
                wq.clone(),
                handle,
                regions,
                settings,
            ),
            GFP_KERNEL,
        )
        .map_err(|e| args.fail(c_str!("Failed to load metadata"), e))?;
        let waker = PeriodicWork::new(core.clone(), periodic::HZ)
            .map_err(|e| args.fail(c_str!("Failed to allocate workqueue"), e))?;

        target.set_num_flush_bios(1);
        target.set_flush_supported(true);
        target.set_discards_supported(true);
        target.set_num_discard_bios(1);
        Ok(DmClone {
            waker,
            wq,
            core,
            fresh: AtomicBool::new(true),
            table_args,
        })
    }

    /// C's `clone_dtr` order: first nothing may still run that holds a
    /// reference to the core (C: destroy the kcopyd client, which waits for
    /// every copy; cancel the waker; destroy the workqueue), then the rest
    /// goes. dm core suspended the target (or never resumed it), so no bio
    /// is in flight and no hydration starts; copies may still be
    /// completing. The waker is stopped, every kcopyd job is done and
    /// dropped and the workqueue drained (`CloneCore::quiesce`): the core's
    /// last reference is then the target's (the waker's goes with it), and
    /// it drops right after this, in the destructor, never in a kcopyd
    /// callback (where the kcopyd client's destroy would wait for itself)
    /// or on the target's own workqueue (where its destroy would). (If the
    /// constructor fails, the value is dropped without this: nothing was
    /// started then.)
    fn dtr(&self, _target: &Target, ctx: &Sleepable<'_>) {
        self.core.suspended.store(true, Ordering::SeqCst);
        self.waker.stop(ctx);
        self.core.quiesce(ctx);
    }

    fn map<'m>(&self, target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        let core = &self.core;
        core.ios_in_flight.fetch_add(1, Ordering::SeqCst);
        core.io_mapped();
        if core.mode() == Mode::Fail {
            // dm core does not call `end_io` for killed bios.
            core.ios_in_flight.fetch_sub(1, Ordering::SeqCst);
            return bio.kill();
        }
        // dm core sends flushes as empty bios.
        if bio.is_preflush() {
            bio.set_dev(&core.dest);
            core.issue_bio(bio.keep());
            return MapResult::submitted();
        }
        let sector = target.offset(bio.sector());
        bio.set_sector(sector);
        if bio.op() == Op::Discard {
            self.process_discard_bio(bio.keep());
            return MapResult::submitted();
        }
        // C sets `max_io_len` to the region size, so dm core cuts a 1 MiB
        // read of 64 KiB regions into 16 bios, each mapped alone. Here a bio
        // goes whole while its regions are all in the state of its first
        // one; it is cut (`accept_partial`, dm core sends the rest next) at
        // the first region in another state, and a write to an unhydrated
        // region at that region's end, as it hydrates one region.
        let region = core.regions.of(sector);
        let last = core
            .regions
            .of(sector + u64::from(bio.sectors()).max(1) - 1);
        // Where the bio goes, and the first region it must not reach.
        let (route, stop) = if core.md.is_region_hydrated(region) {
            // Hydrated regions stay hydrated.
            let stop = if last > region {
                core.md.find_next_unhydrated(region + 1)
            } else {
                last + 1
            };
            (Route::Dest, stop)
        } else if !bio.is_write() {
            // A region hydrated after this look can only have been written
            // by a write that had not completed when this read was issued:
            // the source's data is still an answer.
            let stop = if last > region {
                core.md.find_next_hydrated(region + 1)
            } else {
                last + 1
            };
            (Route::Source, stop)
        } else {
            (Route::Hydrate, region + 1)
        };
        if stop <= last && self.cut_before(&mut bio, stop).is_err() {
            // Never for the reads and writes dm core maps here; the bio
            // fails rather than reach regions in another state.
            core.ios_in_flight.fetch_sub(1, Ordering::SeqCst);
            return bio.kill();
        }
        match route {
            Route::Dest => {
                bio.set_dev(&core.dest);
                core.issue_bio(bio.keep());
                MapResult::submitted()
            }
            Route::Source => {
                bio.set_dev(&core.source);
                bio.remap()
            }
            Route::Hydrate => {
                bio.set_dev(&core.dest);
                // May wait for a hydration entry (`GFP_NOIO`), as C.
                let ctx = bio.sleepable();
                core.hydrate_bio_region(&ctx, bio.keep());
                MapResult::submitted()
            }
        }
    }

    fn end_io(&self, mut bio: EndIoBio<'_, Self>, status: &mut BlkStatus) -> EndIoResult {
        let core = &self.core;
        if let Some(region) = bio.data().take().map(u64::from) {
            // An overwrite: the region is hydrated (or not) now; the waiting
            // bios go on before this one completes.
            let s = core.hydration_complete(region, 1, *status);
            if !s.is_ok() {
                *status = s;
            }
        }
        core.io_completed();
        EndIoResult::Done
    }

    fn postsuspend(&self, _target: &Target, ctx: &Sleepable<'_>) {
        let core = &self.core;
        self.waker.stop(ctx);
        core.suspended.store(true, Ordering::SeqCst);
        core.hydrations_in_flight.wait_zero(ctx);
        // The copies' callbacks count their regions done before the job and
        // its core reference go, and queue the worker: wait for that too.
        core.kcopyd.wait_idle(ctx);
        self.wq.flush(ctx);
        let _ = core.commit_metadata(ctx);
    }

    fn preresume(&self, _target: &Target, _ctx: &Sleepable<'_>) -> Result {
        if self.fresh.swap(false, Ordering::SeqCst) {
            // When this table replaces another clone table (`dmsetup
            // reload`), the old one went on hydrating and taking writes
            // until its postsuspend, which has committed by now: read the
            // hydrated set again, or a region hydrated between the reload
            // and the resume would read the source again and lose the
            // writes made to it. (C reads the metadata only in the
            // constructor, and loses them.)
            let core = &self.core;
            core.md.reopen(&core.metadata_dev).inspect_err(|e| {
                dm_err!(
                    "{}: Failed to reload metadata on resume ({})",
                    core.handle.device_name(),
                    e.to_errno()
                );
            })?;
        }
        Ok(())
    }

    fn resume(&self, _target: &Target, ctx: &Sleepable<'_>) {
        self.core.suspended.store(false, Ordering::SeqCst);
        self.waker.start(ctx);
    }

    fn status(
        &self,
        target: &Target,
        ctx: &Sleepable<'_>,
        kind: StatusType,
        flags: u32,
        out: &mut StatusWriter<'_>,
    ) {
        let core = &self.core;
        // Writes into the bounded buffer cannot fail: they truncate.
        let _ = match kind {
            StatusType::Info => {
                if core.mode() == Mode::Fail {
                    let _ = out.write_str("Fail");
                    return;
                }
                if flags & dm::STATUS_NOFLUSH == 0 && !target.is_suspended() {
                    let _ = core.commit_metadata(ctx);
                }
                let (used, total) = match core.md.block_usage() {
                    Ok(u) => u,
                    Err(e) => {
                        dm_err!(
                            "{}: dm_clone_get_free_metadata_block_count returned {}",
                            core.handle.device_name(),
                            e.to_errno()
                        );
                        let _ = out.write_str("Error");
                        return;
                    }
                };
                let s = &core.settings;
                let no_hydration = !s.hydration_enabled.load(Ordering::Relaxed);
                let no_passdown = !s.discard_passdown.load(Ordering::Relaxed);
                let _ = write!(
                    out,
                    "{} {}/{} {} {}/{} {} {} ",
                    METADATA_BLOCK_SIZE >> 9,
                    used,
                    total,
                    core.regions.size(),
                    core.md.nr_hydrated(),
                    core.regions.nr,
                    core.hydrations_in_flight.get(),
                    u32::from(no_hydration) + u32::from(no_passdown)
                );
                if no_hydration {
                    let _ = out.write_str("no_hydration ");
                }
                if no_passdown {
                    let _ = out.write_str("no_discard_passdown ");
                }
                // The extension only when set: C's four otherwise.
                let share = s.hydration_share_under_io.load(Ordering::Relaxed);
                let _ = write!(
                    out,
                    "{} hydration_threshold {} hydration_batch_size {} ",
                    if share > 0 { 6 } else { 4 },
                    s.hydration_threshold.load(Ordering::Relaxed),
                    s.hydration_batch_size.load(Ordering::Relaxed)
                );
                if share > 0 {
                    let _ = write!(out, "hydration_share_under_io {} ", share);
                }
                out.write_str(match core.mode() {
                    Mode::Write => "rw",
                    Mode::ReadOnly => "ro",
                    Mode::Fail => "Fail",
                })
            }
            StatusType::Table => {
                let _ = write!(
                    out,
                    "{} {} {}",
                    core.metadata_dev.name(),
                    core.dest.name(),
                    core.source.name()
                );
                out.write_bytes(&self.table_args);
                Ok(())
            }
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
        let core = &self.core;
        let name = core.handle.device_name();
        let Some(msg) = args.get(0) else {
            dm_err!("{}: Empty message", name);
            return Err(EINVAL);
        };
        let s = &core.settings;
        if is(msg, "enable_hydration") {
            if !s.hydration_enabled.swap(true, Ordering::SeqCst) {
                core.wake();
            }
            return Ok(());
        }
        if is(msg, "disable_hydration") {
            s.hydration_enabled.store(false, Ordering::SeqCst);
            return Ok(());
        }
        let setting = if is(msg, "hydration_threshold") {
            &s.hydration_threshold
        } else if is(msg, "hydration_batch_size") {
            &s.hydration_batch_size
        } else if is(msg, "hydration_share_under_io") {
            &s.hydration_share_under_io
        } else {
            dm_err!("{}: Unsupported message `{}'", name, msg);
            return Err(EINVAL);
        };
        if args.count() != 2 {
            dm_err!("{}: Message `{}' takes exactly one value", name, msg);
            return Err(EINVAL);
        }
        let value = args
            .get(1)
            .and_then(kstrtouint)
            .filter(|&v| v <= 100 || !is(msg, "hydration_share_under_io"))
            .ok_or_else(|| {
                dm_err!("{}: Invalid value for message `{}'", name, msg);
                EINVAL
            })?;
        setting.store(value, Ordering::SeqCst);
        if is(msg, "hydration_threshold") || is(msg, "hydration_share_under_io") {
            core.wake();
        }
        Ok(())
    }

    fn iterate_devices(&self, target: &Target, callout: &mut dm::DeviceCallout<'_>) -> i32 {
        let core = &self.core;
        match callout.visit(&core.source, 0, target.len()) {
            0 => callout.visit(&core.dest, 0, target.len()),
            r => r,
        }
    }

    fn io_hints(&self, _target: &Target, limits: &mut dm::QueueLimits) {
        let core = &self.core;
        let region = core.regions.size();
        let io_opt = u64::from(limits.io_opt() >> 9);
        if io_opt < region || io_opt & (region - 1) != 0 {
            limits.set_io_min((region << 9) as u32);
            limits.set_io_opt((region << 9) as u32);
        }
        let passdown = &core.settings.discard_passdown;
        let dl = core.dest.discard_limits();
        if passdown.load(Ordering::Relaxed) {
            let reason = if dl.max_discard_sectors == 0 {
                Some("discard unsupported")
            } else if u64::from(dl.max_discard_sectors) < region {
                Some("max discard sectors smaller than a region")
            } else {
                None
            };
            if let Some(reason) = reason {
                dm_warn!(
                    "Destination device ({}) {}: Disabling discard passdown.",
                    core.dest.name(),
                    reason
                );
                passdown.store(false, Ordering::Relaxed);
            }
        }
        if !passdown.load(Ordering::Relaxed) {
            limits.set_discard_granularity((region << 9) as u32);
            let max = u64::from(u32::MAX >> 9) & !(region - 1);
            limits.set_max_hw_discard_sectors(max as u32);
            return;
        }
        limits.set_max_hw_discard_sectors(dl.max_hw_discard_sectors);
        limits.set_discard_granularity(dl.granularity);
        limits.set_discard_alignment(dl.alignment);
        limits.set_max_discard_segments(dl.max_segments);
    }
}
