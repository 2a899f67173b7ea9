// SPDX-License-Identifier: GPL-2.0

//! Copies between block devices with dm-kcopyd (part of dm-mod): the
//! kernel's own engine for region copies, as dm-clone, dm-cache, dm-thin and
//! dm-snapshot use it.
//!
//! A job value travels with each copy and is given back to
//! [`CopyJob::done`]; it often holds a reference to the target's state. The
//! client counts its jobs until each one's `done` has returned and the job
//! value has been dropped, so a target can wait for that
//! ([`KcopydClient::wait_idle`]) before it drops its own reference, as C
//! targets destroy their kcopyd client first in their destructor: the last
//! reference then never goes in a kcopyd callback, where dropping the
//! client would wait for the very job that drops it.
//!
//! C header: [`include/linux/dm-kcopyd.h`](srctree/include/linux/dm-kcopyd.h)

use super::{
    bindings,
    error::from_err_ptr,
    mempool::{Mempool, PoolBox},
    sync::WaitCount,
    Device, Sleepable,
};
use core::{
    ptr::NonNull,
    sync::atomic::{AtomicPtr, Ordering},
};
use kernel::{
    error::code::ENOMEM,
    ffi::{c_int, c_ulong, c_void},
    prelude::*,
};

/// What to do when a copy finished. The job value travels with the copy and
/// comes back to [`CopyJob::done`]; it is dropped right after that returns.
pub trait CopyJob: Send + Sized + 'static {
    /// Called once per copy from kcopyd's worker (process context, may
    /// sleep: `ctx` is the proof): whether reading the source or writing
    /// the destination failed. [`KcopydClient::wait_idle`] returns only once this has
    /// returned and the job has been dropped.
    ///
    /// Must not drop the last reference to the [`KcopydClient`] that runs
    /// it: the client would have to wait for this very call. If it does,
    /// the client is leaked with a warning rather than deadlock.
    fn done(&self, ctx: &Sleepable<'_>, read_failed: bool, write_failed: bool);
}

/// A range of sectors of a device.
pub struct Region<'a> {
    /// The device.
    pub dev: &'a Device,
    /// First sector.
    pub sector: u64,
    /// Number of sectors.
    pub count: u64,
}

/// What a client shares with the completions of its copies. Allocated apart
/// from the [`KcopydClient`] (which moves), freed after the C client is
/// destroyed (when no completion runs any more), or leaked with it.
struct Shared {
    /// Copies issued whose job has not yet been done and dropped.
    jobs: WaitCount,
    /// The task running a completion of this client (`J::done` and the job's
    /// drop), or null. dm-kcopyd runs a client's completions one at a time,
    /// from the client's single work item, so one slot suffices.
    in_callback: AtomicPtr<bindings::task_struct>,
}

/// A copy's job and the client's shared state, given to dm-kcopyd as the
/// callback's context, with the two devices: they stay open until the copy
/// has completed, whatever the job's owner does meanwhile. Taken from the
/// client's pool of envelopes, to which the callback gives it back.
struct Envelope<J> {
    shared: NonNull<Shared>,
    job: J,
    _devs: [Device; 2],
    pool: Mempool<Envelope<J>>,
}

// SAFETY: `shared` points to atomics only, valid for as long as any envelope
// of the client exists (`KcopydClient`'s invariant); the job and devices are
// `Send`.
unsafe impl<J: Send> Send for Envelope<J> {}

/// How many copies can always be issued when memory is short: C's kcopyd
/// keeps `MIN_JOBS` (8) jobs in reserve; our envelopes match.
const MIN_ENVELOPES: usize = 8;

/// A dm-kcopyd client (`dm_kcopyd_client_create()`) whose copies carry jobs
/// of type `J`; dropping it waits for the copies in flight and destroys it
/// (C targets' destructors call `dm_kcopyd_client_destroy()` first, for the
/// same reason).
///
/// # Invariants
///
/// `kc` is a live client owned by this value. `shared` points to a [`Shared`]
/// allocated by `KBox` and owned by this value, freed only after `kc` has
/// been destroyed (or never).
pub struct KcopydClient<J: CopyJob> {
    kc: NonNull<bindings::dm_kcopyd_client>,
    shared: NonNull<Shared>,
    envelopes: Mempool<Envelope<J>>,
}

// SAFETY: kcopyd clients are used from any thread (their jobs run on kcopyd's
// own workqueue); `Shared` holds atomics only.
unsafe impl<J: CopyJob> Send for KcopydClient<J> {}
// SAFETY: `dm_kcopyd_copy()` is thread-safe; `Shared` holds atomics only.
unsafe impl<J: CopyJob> Sync for KcopydClient<J> {}

/// The running task (`current`).
fn current_task() -> *mut bindings::task_struct {
    // SAFETY: Always valid in process context, where every caller is.
    unsafe { bindings::get_current() }
}

impl<J: CopyJob> KcopydClient<J> {
    /// A client without throttling.
    ///
    /// # Context
    ///
    /// Process context; may sleep.
    pub fn new() -> Result<Self> {
        let shared = KBox::new(
            Shared {
                jobs: WaitCount::new(),
                in_callback: AtomicPtr::new(core::ptr::null_mut()),
            },
            GFP_KERNEL,
        )?;
        let envelopes = Mempool::new(MIN_ENVELOPES)?;
        // SAFETY: A NULL throttle means "not throttled".
        let kc = from_err_ptr(unsafe { bindings::dm_kcopyd_client_create(core::ptr::null_mut()) })?;
        let kc = NonNull::new(kc).ok_or(ENOMEM)?;
        // INVARIANT: `kc` was just created and `shared` allocated by `KBox`,
        // both owned here.
        Ok(Self {
            kc,
            shared: NonNull::from(KBox::leak(shared)),
            envelopes,
        })
    }

    fn shared(&self) -> &Shared {
        // SAFETY: `shared` lives at least as long as `self` (invariant).
        unsafe { self.shared.as_ref() }
    }

    /// Copies `from` to `to` (`to.count` is ignored: the same number of
    /// sectors is written) and calls `job.done(...)` when done. The copy
    /// keeps a handle of each device until then. Never fails: when memory
    /// is short it waits for an earlier copy to complete (the job comes
    /// from a mempool, as dm-kcopyd's own jobs do).
    ///
    /// # Context
    ///
    /// Process context; may sleep (`GFP_NOIO`: never waits for I/O other
    /// than copies in flight): `ctx` is the proof.
    pub fn copy(&self, ctx: &Sleepable<'_>, from: &Region<'_>, to: &Region<'_>, job: J) {
        let env = self.envelopes.alloc(
            ctx,
            Envelope {
                shared: self.shared,
                job,
                _devs: [from.dev.clone(), to.dev.clone()],
                pool: self.envelopes.clone(),
            },
        );
        let mut src = bindings::dm_io_region {
            bdev: from.dev.bdev(),
            sector: from.sector,
            count: from.count,
        };
        let mut dst = bindings::dm_io_region {
            bdev: to.dev.bdev(),
            sector: to.sector,
            count: from.count,
        };
        // Counted before kcopyd may complete it.
        self.shared().jobs.add(1);
        let ctx = PoolBox::into_raw(env).as_ptr().cast::<c_void>();
        // SAFETY: `kc` is live (invariant); the regions are read during the
        // call only; `ctx` is an owned envelope that `notify::<J>` takes
        // back, exactly once, while `shared` is still allocated: `shared`
        // is freed only after `dm_kcopyd_client_destroy()`, which waits for
        // every callback to return.
        unsafe {
            bindings::dm_kcopyd_copy(
                self.kc.as_ptr(),
                &mut src,
                1,
                &mut dst,
                0,
                Some(notify::<J>),
                ctx,
            )
        };
    }

    /// The number of copies whose job has not yet been done and dropped.
    pub fn jobs_in_flight(&self) -> i32 {
        self.shared().jobs.get()
    }

    /// Waits until every copy issued so far has completed: its
    /// [`CopyJob::done`] has returned and its job value has been dropped.
    /// Copies issued meanwhile are waited for too. Afterwards no job of this
    /// client holds anything, so the owner can tear down what the jobs
    /// referred to (C: the first step of a destructor,
    /// `dm_kcopyd_client_destroy()`).
    ///
    /// # Context
    ///
    /// Process context; sleeps (`ctx` is the proof). Never from a completion
    /// of this client (it would wait for itself): that warns once and
    /// returns without waiting.
    pub fn wait_idle(&self, ctx: &Sleepable<'_>) {
        let shared = self.shared();
        if shared.in_callback.load(Ordering::SeqCst) == current_task() {
            // SAFETY: Prints a warning; no precondition.
            unsafe { bindings::rdm_kcopyd_warn_wait_in_callback() };
            return;
        }
        shared.jobs.wait_zero(ctx);
    }
}

/// # Safety
///
/// Called by dm-kcopyd once per copy, from the client's work item (process
/// context, no lock held: `run_complete_job()` from kcopyd's `do_work()`),
/// with the `ctx` given to `dm_kcopyd_copy()` by `copy::<J>`.
unsafe extern "C" fn notify<J: CopyJob>(read_err: c_int, write_err: c_ulong, ctx: *mut c_void) {
    let ctx = ctx.cast::<Envelope<J>>();
    // SAFETY: `ctx` came from `PoolBox::into_raw` in `copy` and is not
    // freed before `from_raw` below: the pool handle is cloned out first.
    let pool = unsafe { (*ctx).pool.clone() };
    // SAFETY: `ctx` is non-null (it came from a `NonNull`), an element of
    // `pool` given away by `into_raw` in `copy`, taken back once.
    let env = unsafe { PoolBox::from_raw(NonNull::new_unchecked(ctx), &pool) };
    // SAFETY: The client's `Shared` is freed only after
    // `dm_kcopyd_client_destroy()`, which waits for this callback to return;
    // or never (leaked by a drop from this very callback).
    let shared = unsafe { env.shared.as_ref() };
    let task = current_task();
    shared.in_callback.store(task, Ordering::SeqCst);
    // SAFETY: kcopyd runs completions from its work item: process context,
    // no lock held; the token lives for this call only.
    let sleepable = unsafe { Sleepable::new() };
    env.job.done(&sleepable, read_err != 0, write_err != 0);
    // The job's drop is part of the completion: it may release the last
    // reference to the client's owner.
    drop(env);
    shared
        .in_callback
        .store(core::ptr::null_mut(), Ordering::SeqCst);
    // Last: a waiter in `wait_idle` may go on and drop the client, whose
    // destroy still waits for this function to return.
    shared.jobs.dec();
}

impl<J: CopyJob> Drop for KcopydClient<J> {
    /// Waits for the copies in flight, then destroys the client.
    ///
    /// # Context
    ///
    /// Process context; sleeps. From a completion of this client (which
    /// destroy would wait for forever) it warns once and leaks the client
    /// instead.
    fn drop(&mut self) {
        if self.shared().in_callback.load(Ordering::SeqCst) == current_task() {
            // SAFETY: Prints a warning; no precondition.
            unsafe { bindings::rdm_kcopyd_warn_drop_in_callback() };
            // Leaked: the C client (its work queue, pools and this job) and
            // `shared`, which the running callback still uses.
            return;
        }
        // SAFETY: `kc` is live and owned (invariant); the callee waits for
        // the jobs in flight (every callback has returned) before freeing.
        unsafe { bindings::dm_kcopyd_client_destroy(self.kc.as_ptr()) };
        // SAFETY: `shared` came from `KBox::leak` in `new` and no callback
        // can use it any more: the client is destroyed.
        drop(unsafe { KBox::from_raw(self.shared.as_ptr()) });
    }
}
