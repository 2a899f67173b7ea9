// SPDX-License-Identifier: GPL-2.0

//! A target's own workqueue, and work items that the abstraction runs with
//! a [`Sleepable`] token ([`Running`]).
//!
//! A target's worker is a `kernel::workqueue` work item (a [`Work`] field,
//! `impl_has_work!`) whose [`WorkItem::Pointer`] is [`Running<Self>`]: its
//! `run` gets the `Arc` of the value and the proof that it runs in process
//! context ([`Running::sleepable`]). It is queued with
//! [`Workqueue::enqueue`] or [`enqueue_system`], which run work only in
//! process context (never the BH workqueue).
//!
//! ```ignore
//! impl_has_work! { impl HasWork<Self> for Core { self.work } }
//! impl WorkItem for Core {
//!     type Pointer = dm::workqueue::Running<Self>;
//!     fn run(this: dm::workqueue::Running<Self>) {
//!         let ctx = this.sleepable();
//!         this.pool.alloc(&ctx, ...);
//!     }
//! }
//! ```

use super::{bindings, error::from_err_ptr, Sleepable};
use core::{marker::PhantomData, ops::Deref, ptr::NonNull};
use kernel::{
    error::code::{EINVAL, ENOMEM},
    prelude::*,
    sync::Arc,
    workqueue::{HasWork, RawWorkItem, Work, WorkItem, WorkItemPointer},
};

/// `WQ_MEM_RECLAIM`: guaranteed forward progress under memory pressure, as
/// needed on the I/O path.
pub const WQ_MEM_RECLAIM: u32 = bindings::WQ_MEM_RECLAIM;
/// `WQ_HIGHPRI`: run work on the high-priority worker pool.
pub const WQ_HIGHPRI: u32 = bindings::WQ_HIGHPRI;
/// `WQ_UNBOUND`: run work on a worker of the queueing CPU's affinity pod
/// (by default the CPUs sharing its last-level cache) that the scheduler
/// may place on any CPU of it, rather than on the queueing CPU itself.
pub const WQ_UNBOUND: u32 = bindings::WQ_UNBOUND;

/// The number of CPUs online now (`num_online_cpus()`): how many an unbound
/// workqueue may spread its work over.
pub fn num_online_cpus() -> u32 {
    // SAFETY: Reads a counter; no precondition.
    unsafe { bindings::rdm_num_online_cpus() }
}

/// The flags a [`Workqueue`] may have: none that would run its work
/// outside process context (`WQ_BH`).
fn check_flags(flags: u32) -> Result {
    if flags & !(WQ_MEM_RECLAIM | WQ_HIGHPRI | WQ_UNBOUND) != 0 {
        return Err(EINVAL);
    }
    Ok(())
}

/// A workqueue allocated with `alloc_workqueue()` or
/// `alloc_ordered_workqueue()`; destroyed, after running
/// all pending work, on drop.
///
/// # Invariants
///
/// `wq` is a live workqueue owned by this value.
pub struct Workqueue {
    wq: NonNull<bindings::workqueue_struct>,
}

// SAFETY: Workqueues may be used and destroyed from any thread.
unsafe impl Send for Workqueue {}
// SAFETY: Queueing and flushing are thread-safe.
unsafe impl Sync for Workqueue {}

impl Workqueue {
    /// Allocates a workqueue named `name` (copied) with `WQ_*` `flags`:
    /// [`WQ_MEM_RECLAIM`], [`WQ_HIGHPRI`] and [`WQ_UNBOUND`], nothing else
    /// (`EINVAL`): its work must run in process context (never `WQ_BH`), as
    /// [`Running`] and the completion work promise.
    pub fn new(name: &CStr, flags: u32, max_active: i32) -> Result<Self> {
        check_flags(flags)?;
        // SAFETY: `name` is a valid string; the callee copies it.
        Self::adopt(unsafe { bindings::rdm_alloc_workqueue(name.as_char_ptr(), flags, max_active) })
    }

    /// Allocates an ordered workqueue (`alloc_ordered_workqueue()`: unbound,
    /// one work item at a time, in queueing order) named `name` (copied)
    /// with `WQ_*` `flags` (as [`Workqueue::new`]). Its worker runs on
    /// whichever CPU is free rather than on the one that queued the work.
    pub fn new_ordered(name: &CStr, flags: u32) -> Result<Self> {
        check_flags(flags)?;
        // SAFETY: `name` is a valid string; the callee copies it.
        Self::adopt(unsafe { bindings::rdm_alloc_ordered_workqueue(name.as_char_ptr(), flags) })
    }

    /// Takes ownership of what an allocator returned: a new workqueue, an
    /// error pointer or NULL.
    fn adopt(wq: *mut bindings::workqueue_struct) -> Result<Self> {
        let wq = NonNull::new(from_err_ptr(wq)?).ok_or(ENOMEM)?;
        // INVARIANT: the allocators return a new workqueue that nothing else
        // owns; its flags were checked (no `WQ_BH`).
        Ok(Self { wq })
    }

    pub(super) fn as_raw(&self) -> *mut bindings::workqueue_struct {
        self.wq.as_ptr()
    }

    /// The queue, for the kernel's safe work items (`kernel::workqueue`).
    pub fn queue(&self) -> &kernel::workqueue::Queue {
        // SAFETY: `wq` is live for as long as `self` (invariant).
        unsafe { kernel::workqueue::Queue::from_raw(self.wq.as_ptr()) }
    }

    /// Queues `this`'s work item (see [`Running`]); gives `this` back if it
    /// is queued already.
    pub fn enqueue<T: DmWork>(&self, this: Arc<T>) -> core::result::Result<(), Arc<T>> {
        self.queue().enqueue(Queued(this))
    }

    /// Waits until all work queued so far has run.
    ///
    /// # Context
    ///
    /// Process context (sleeps): `_ctx` is the proof. Not from work of this
    /// queue (it would wait for itself).
    pub fn flush(&self, _ctx: &Sleepable<'_>) {
        self.drain();
    }

    /// [`Workqueue::flush`] for the abstraction's own callers that prove
    /// process context otherwise (a `&Target`, `Drop`).
    pub(super) fn drain(&self) {
        super::might_sleep();
        // SAFETY: `wq` is live (invariant).
        unsafe { bindings::rdm_flush_workqueue(self.wq.as_ptr()) };
    }
}

impl Drop for Workqueue {
    fn drop(&mut self) {
        // SAFETY: `wq` is live and owned (invariant); this drains it first.
        unsafe { bindings::destroy_workqueue(self.wq.as_ptr()) };
    }
}

/// A work item the abstraction runs with a [`Sleepable`] token: a type with a
/// [`Work`] field (`impl_has_work!`) whose [`WorkItem::Pointer`] is
/// [`Running<Self>`]. Implemented for every such type.
pub trait DmWork:
    Sized + WorkItem<0, Pointer = Running<Self>> + HasWork<Self, 0> + Send + Sync + 'static
{
}

impl<T> DmWork for T where
    T: WorkItem<0, Pointer = Running<T>> + HasWork<T, 0> + Send + Sync + 'static
{
}

/// Queues `this`'s work item on the system workqueue (`system_wq`); gives
/// `this` back if it is queued already.
pub fn enqueue_system<T: DmWork>(this: Arc<T>) -> core::result::Result<(), Arc<T>> {
    kernel::workqueue::system().enqueue(Queued(this))
}

/// A run of a work item `T` (what its [`WorkItem::run`] gets): the `Arc`
/// that was queued, and the proof that the run is in process context with
/// no lock held ([`Running::sleepable`]).
///
/// Only the abstraction makes one, when a worker thread of a workqueue that
/// is not the BH one ([`Workqueue`], or a system workqueue) runs the item.
/// It is neither `Send` nor `Sync`, so it stays on that thread and, with no
/// place there to keep it, goes with the run.
///
/// # Invariants
///
/// Exists only during a call of `T::run` from [`WorkItemPointer::run`], made
/// by a worker thread of a workqueue without `WQ_BH`.
pub struct Running<T> {
    this: Arc<T>,
    _not_send: PhantomData<*mut ()>,
}

impl<T> Running<T> {
    /// The proof that the run may sleep, for as long as it is borrowed.
    pub fn sleepable(&self) -> Sleepable<'_> {
        // SAFETY: A work item run by a kworker of a workqueue without
        // `WQ_BH` (invariant): process context, no lock held. The token
        // borrows `self`, which stays within this run.
        unsafe { Sleepable::new() }
    }

    /// The `Arc` that was queued (the token goes).
    pub fn into_arc(self) -> Arc<T> {
        self.this
    }
}

impl<T> Deref for Running<T> {
    type Target = Arc<T>;

    fn deref(&self) -> &Arc<T> {
        &self.this
    }
}

/// Gives `this` to the workqueue: its `Work` field's `work_struct` goes to
/// `queue_work_on`, and the reference with it until `Running::<T>::run`
/// takes it back.
///
/// # Safety
///
/// As [`RawWorkItem::__enqueue`]: `queue_work_on` returns false only if the
/// work item is queued already.
unsafe fn enqueue_arc<T, F>(this: Arc<T>, queue_work_on: F) -> core::result::Result<(), Arc<T>>
where
    T: DmWork,
    F: FnOnce(*mut bindings::work_struct) -> bool,
{
    let ptr = Arc::into_raw(this).cast_mut();
    // SAFETY: Pointers into an `Arc` point at a valid value.
    let work_ptr = unsafe { <T as HasWork<T, 0>>::raw_get_work(ptr) };
    // SAFETY: `raw_get_work` returns a pointer to a valid `Work`.
    let work_ptr = unsafe { Work::raw_get(work_ptr) };
    if queue_work_on(work_ptr) {
        Ok(())
    } else {
        // SAFETY: The workqueue did not take the reference.
        Err(unsafe { Arc::from_raw(ptr) })
    }
}

/// An `Arc<T>` being queued (what [`Workqueue::enqueue`] gives the kernel's
/// `Queue::enqueue`).
struct Queued<T>(Arc<T>);

// SAFETY: `__enqueue` gives the `work_struct` of the `Work<T>` field of the
// `Arc`'s value, whose reference it leaks until the work function, which
// `Work::new` set to `Running::<T>::run` (`T::Pointer` is `Running<T>`),
// takes it back: the pointer stays valid until then.
unsafe impl<T: DmWork> RawWorkItem<0> for Queued<T> {
    type EnqueueOutput = core::result::Result<(), Arc<T>>;

    unsafe fn __enqueue<F>(self, queue_work_on: F) -> Self::EnqueueOutput
    where
        F: FnOnce(*mut bindings::work_struct) -> bool,
    {
        // SAFETY: The caller's guarantee.
        unsafe { enqueue_arc(self.0, queue_work_on) }
    }
}

// SAFETY: As for `Queued`: the same `Arc`, the same work function.
unsafe impl<T: DmWork> RawWorkItem<0> for Running<T> {
    type EnqueueOutput = core::result::Result<(), Arc<T>>;

    unsafe fn __enqueue<F>(self, queue_work_on: F) -> Self::EnqueueOutput
    where
        F: FnOnce(*mut bindings::work_struct) -> bool,
    {
        // SAFETY: The caller's guarantee.
        unsafe { enqueue_arc(self.this, queue_work_on) }
    }
}

// SAFETY: `Work::new` of a `T` whose `WorkItem::Pointer` is `Running<T>`
// installs this `run`, and every way to queue such a work item
// (`enqueue_arc`) gives it the `work_struct` of the `Work` field of an
// `Arc<T>`'s value, as `run` expects.
unsafe impl<T: DmWork> WorkItemPointer<0> for Running<T> {
    unsafe extern "C" fn run(ptr: *mut bindings::work_struct) {
        // The `work_struct` is that of a `Work<T>` field (`enqueue_arc`).
        let ptr = ptr.cast::<Work<T, 0>>();
        // SAFETY: The `Work<T>` field of a `T`: its container is the value
        // `enqueue_arc` got from `Arc::into_raw`.
        let ptr = unsafe { <T as HasWork<T, 0>>::work_container_of(ptr) };
        // SAFETY: From `Arc::into_raw`; the workqueue gives the reference
        // back, once.
        let this = unsafe { Arc::from_raw(ptr) };
        // INVARIANT: `enqueue_arc` is reached only through `Queued` (queued
        // on a `Workqueue`, whose flags exclude `WQ_BH`, or on `system_wq`)
        // and through `Running`, which is not `Send` and so cannot be given
        // to `Queue::enqueue`: this runs on a kworker in process context,
        // with no lock held.
        T::run(Running {
            this,
            _not_send: PhantomData,
        })
    }
}
