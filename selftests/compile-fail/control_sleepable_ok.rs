// SPDX-License-Identifier: GPL-2.0
// expect-build

//! Compile-fail control for the `Sleepable` cases: a correct target that
//! sleeps only where the abstraction hands it the token. The constructor
//! (`Ctr::sleepable`), `map` of a target without `NOWAIT`
//! (`MapBio::sleepable`), the hooks, a worker (`Running`), a kcopyd
//! completion and a periodic tick take waiting allocations and wait; under
//! an `IrqSpinLock` only what never waits (`try_alloc`). It must build:
//! otherwise a case failing to build shows nothing.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");
use dm::{
    kcopyd::{CopyJob, KcopydClient, Region},
    mempool::{BufferPool, Mempool},
    periodic::{PeriodicWork, Tick},
    sync::{IrqSpinLock, WaitCount},
    workqueue::Running,
    Sleepable,
};
use kernel::{
    new_work,
    sync::{Arc, ArcBorrow},
    workqueue::{impl_has_work, Work, WorkItem},
};

/// What the worker, the copies and the ticks share.
#[pin_data]
struct Core {
    dev: dm::Device,
    pool: Mempool<u64>,
    buffers: BufferPool,
    in_flight: WaitCount,
    #[pin]
    counts: IrqSpinLock<KVec<u64>>,
    wq: dm::Workqueue,
    #[pin]
    work: Work<Core>,
}

impl_has_work! {
    impl HasWork<Self> for Core { self.work }
}

impl WorkItem for Core {
    type Pointer = Running<Core>;

    fn run(this: Running<Core>) {
        let ctx = this.sleepable();
        let n = this.pool.alloc(&ctx, 1);
        let _buf = this.buffers.alloc(&ctx);
        this.in_flight.wait_zero(&ctx);
        // Under the lock, only what never waits; the closure is `Send`, so
        // it borrows the value, not the `Running` (which holds the token).
        let core: &Core = &this;
        core.counts.with(|c| {
            if let Ok(m) = core.pool.try_alloc(*n) {
                let _ = c.push(*m, GFP_ATOMIC);
            }
        });
    }
}

impl Tick for Core {
    fn tick(this: ArcBorrow<'_, Self>, ctx: &Sleepable<'_>) {
        let _n = this.pool.alloc(ctx, 2);
        let _ = this.wq.enqueue(Arc::from(this));
    }
}

/// A copy's job.
struct Job(Arc<Core>);

impl CopyJob for Job {
    fn done(&self, ctx: &Sleepable<'_>, _read_failed: bool, _write_failed: bool) {
        let _n = self.0.pool.alloc(ctx, 3);
        let _ = dm::workqueue::enqueue_system(self.0.clone());
    }
}

cf_target! {
    name: "cf_control_sleepable_ok",
    type: Control,

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        // Not `NOWAIT`: `map` may wait for a pool's element (`GFP_NOIO`).
        let ctx = bio.sleepable();
        let _n = self.core.pool.alloc(&ctx, bio.sector());
        bio.set_dev(&self.core.dev);
        bio.remap()
    }

    fn dtr(&self, _target: &Target, ctx: &Sleepable<'_>) {
        self.ticks.stop(ctx);
        self.kcopyd.wait_idle(ctx);
    }

    fn postsuspend(&self, _target: &Target, ctx: &Sleepable<'_>) {
        self.core.in_flight.wait_zero(ctx);
        self.kcopyd.wait_idle(ctx);
    }

    fn resume(&self, _target: &Target, ctx: &Sleepable<'_>) {
        let dev = &self.core.dev;
        let from = Region {
            dev,
            sector: 0,
            count: 8,
        };
        let to = Region {
            dev,
            sector: 8,
            count: 8,
        };
        self.kcopyd.copy(ctx, &from, &to, Job(self.core.clone()));
        self.ticks.start(ctx);
        let _ = self.core.wq.enqueue(self.core.clone());
    }
}

struct Control {
    core: Arc<Core>,
    kcopyd: KcopydClient<Job>,
    ticks: PeriodicWork<Core>,
}

impl Control {
    fn new(target: &mut dm::Ctr<'_>, dev: dm::Device) -> Result<impl PinInit<Self, Error>> {
        let ctx = target.sleepable();
        let pool = Mempool::new(4)?;
        let _first = pool.alloc(&ctx, 0);
        let core = Arc::pin_init(
            try_pin_init!(Core {
                dev,
                pool,
                buffers: BufferPool::new(1, 512)?,
                in_flight: WaitCount::new(),
                counts <- crate::new_irq_spinlock!(KVec::new()),
                wq: dm::Workqueue::new(c_str!("cf_control_sleepable_ok"), 0, 1)?,
                work <- new_work!("Core::work"),
            }? Error),
            GFP_KERNEL,
        )?;
        let ticks = PeriodicWork::new(core.clone(), 100)?;
        Ok(Control {
            core,
            kcopyd: KcopydClient::new()?,
            ticks,
        })
    }
}
