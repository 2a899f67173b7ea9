// SPDX-License-Identifier: GPL-2.0

//! Memory pools: allocations on an I/O path that make progress when memory
//! is short.
//!
//! A device-mapper target sits in the writeback and swap path: the kernel
//! frees memory by writing pages out *through* it. So an allocation on its
//! I/O path must not fail a bio, and must not wait for I/O that may be queued
//! behind that very bio. C targets allocate from a `mempool_t` with
//! `GFP_NOIO`: the pool keeps a reserve of elements; when the allocator has
//! nothing, the caller takes one from the reserve, or waits until one is
//! given back (`mm/mempool.c`). The wait ends because the elements in use
//! belong to I/O in flight, which completes without needing this caller.
//!
//! [`Mempool<T>`] is that pool for values of one type, [`BufferPool`] for
//! byte buffers of one size (both `kmalloc`-backed, as
//! `mempool_create_kmalloc_pool()`). An element is a [`PoolBox`] /
//! [`PoolBuffer`]: it owns its value and gives the memory back to its pool
//! when dropped, from any context. Each element keeps its pool alive (a
//! reference count), so no element can outlive the pool it came from,
//! whatever the target does with it.
//!
//! C header: [`include/linux/mempool.h`](srctree/include/linux/mempool.h)

use super::{bindings, Sleepable};
use core::{
    marker::PhantomData,
    mem::{align_of, size_of},
    ops::{Deref, DerefMut},
    ptr::NonNull,
};
use kernel::{error::code::ENOMEM, prelude::*, sync::Arc};

/// The alignment `kmalloc()` guarantees for every size
/// (`ARCH_KMALLOC_MINALIGN` on the architectures the kernel's Rust supports);
/// larger power-of-two sizes are aligned to their size.
const KMALLOC_MIN_ALIGN: usize = 8;

/// A `kmalloc`-backed `mempool_t`.
///
/// # Invariants
///
/// `pool` is a live pool created by `mempool_create_kmalloc_pool()` of
/// elements of `size` bytes, at least `align`-aligned, owned by this value
/// and destroyed when it is dropped. Every element taken from it and not yet
/// freed is owned by a [`PoolBox`] or [`PoolBuffer`], which holds a reference
/// to this value: it is dropped only when all elements are back.
struct RawPool {
    pool: NonNull<bindings::mempool_s>,
    size: usize,
}

// SAFETY: `mempool_alloc()` and `mempool_free()` take the pool's own lock;
// the pool can be used and destroyed from any thread.
unsafe impl Send for RawPool {}
// SAFETY: As above: every operation on a shared pool is internally locked.
unsafe impl Sync for RawPool {}

impl RawPool {
    /// # Context
    ///
    /// Process context; may sleep.
    fn new(min_nr: usize, size: usize, align: usize) -> Result<Arc<Self>> {
        super::might_sleep();
        if size == 0 || !align.is_power_of_two() {
            return Err(EINVAL);
        }
        // As the kernel's `Kmalloc` allocator: a larger alignment than
        // kmalloc's minimum is had by a power-of-two size.
        let size = if align > KMALLOC_MIN_ALIGN {
            size.max(align).checked_next_power_of_two().ok_or(EINVAL)?
        } else {
            size
        };
        let min_nr = i32::try_from(min_nr).map_err(|_| EINVAL)?;
        // SAFETY: No precondition; returns NULL on failure.
        let pool = unsafe { bindings::rdm_mempool_create_kmalloc(min_nr, size) };
        let pool = NonNull::new(pool).ok_or(ENOMEM)?;
        // INVARIANT: just created, owned here. If the `Arc` cannot be
        // allocated, the value is dropped, which destroys the pool.
        Ok(Arc::new(Self { pool, size }, GFP_KERNEL)?)
    }

    /// An element of `size` bytes, or waits for one to come back.
    ///
    /// # Context
    ///
    /// Process context; may sleep (never to wait for I/O: `GFP_NOIO`): the
    /// token is the proof.
    fn alloc(&self, _ctx: &Sleepable<'_>) -> NonNull<u8> {
        super::might_sleep();
        // `mempool_alloc()` with `__GFP_DIRECT_RECLAIM` (part of
        // `GFP_NOIO`) never returns NULL: it waits for an element instead.
        // Should that ever change, asking again is still correct.
        loop {
            // SAFETY: `pool` is live (invariant).
            let p = unsafe { bindings::rdm_mempool_alloc_noio(self.pool.as_ptr()) };
            if let Some(p) = NonNull::new(p.cast::<u8>()) {
                return p;
            }
        }
    }

    /// An element, or `None` if none is free without waiting.
    ///
    /// # Context
    ///
    /// Any context.
    fn try_alloc(&self) -> Option<NonNull<u8>> {
        // SAFETY: `pool` is live (invariant).
        let p = unsafe { bindings::rdm_mempool_alloc_nowait(self.pool.as_ptr()) };
        NonNull::new(p.cast::<u8>())
    }

    /// # Safety
    ///
    /// `p` was allocated from this pool and is not used afterwards.
    unsafe fn free(&self, p: NonNull<u8>) {
        // SAFETY: `pool` is live (invariant); `p` is one of its elements
        // (caller), given back once.
        unsafe { bindings::rdm_mempool_free(p.as_ptr().cast(), self.pool.as_ptr()) }
    }
}

impl Drop for RawPool {
    fn drop(&mut self) {
        // SAFETY: `pool` is live and owned (invariant), and every element is
        // back: each holds a reference to this value.
        unsafe { bindings::rdm_mempool_destroy(self.pool.as_ptr()) }
    }
}

/// A pool of values of type `T` with a reserve of elements, as C's
/// `mempool_t` of a slab or kmalloc cache. Cloning it gives another handle
/// to the same pool.
pub struct Mempool<T> {
    raw: Arc<RawPool>,
    _type: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Mempool<T> {
    fn clone(&self) -> Self {
        Self {
            raw: self.raw.clone(),
            _type: PhantomData,
        }
    }
}

impl<T: Send> Mempool<T> {
    /// A pool keeping `min_nr` elements in reserve (allocated now).
    ///
    /// # Context
    ///
    /// Process context; may sleep.
    pub fn new(min_nr: usize) -> Result<Self> {
        Ok(Self {
            raw: RawPool::new(min_nr, size_of::<T>().max(1), align_of::<T>())?,
            _type: PhantomData,
        })
    }

    /// Moves `value` into an element of the pool. If the allocator has no
    /// memory, takes one from the reserve or waits until an element is
    /// dropped: never fails (C: `mempool_alloc(pool, GFP_NOIO)`).
    ///
    /// # Context
    ///
    /// Process context; may sleep, never to wait for I/O (`GFP_NOIO`): `ctx`
    /// is the proof. A caller must not hold all the pool's elements while it
    /// waits for another, as with C mempools.
    pub fn alloc(&self, ctx: &Sleepable<'_>, value: T) -> PoolBox<T> {
        let p = self.raw.alloc(ctx).cast::<T>();
        // SAFETY: `p` is a fresh element of at least `size_of::<T>()` bytes,
        // aligned for `T` (`RawPool::new`), owned here.
        unsafe { p.as_ptr().write(value) };
        // INVARIANT: `p` holds a `T` and belongs to `raw`.
        PoolBox {
            ptr: p,
            raw: self.raw.clone(),
        }
    }

    /// As [`Mempool::alloc`] without waiting (`GFP_NOWAIT`): gives `value`
    /// back if no element is free.
    ///
    /// # Context
    ///
    /// Any context.
    pub fn try_alloc(&self, value: T) -> core::result::Result<PoolBox<T>, T> {
        let Some(p) = self.raw.try_alloc() else {
            return Err(value);
        };
        let p = p.cast::<T>();
        // SAFETY: As in `alloc`.
        unsafe { p.as_ptr().write(value) };
        // INVARIANT: `p` holds a `T` and belongs to `raw`.
        Ok(PoolBox {
            ptr: p,
            raw: self.raw.clone(),
        })
    }
}

/// A value in an element of a [`Mempool`]; the element goes back to the
/// pool when this is dropped (the value is dropped first).
///
/// # Invariants
///
/// `ptr` points to an initialised `T` in an element of `raw`, owned by this
/// value.
pub struct PoolBox<T> {
    ptr: NonNull<T>,
    raw: Arc<RawPool>,
}

// SAFETY: A `PoolBox<T>` owns its `T` as a `KBox<T>` does; the pool is
// thread-safe (`RawPool`).
unsafe impl<T: Send> Send for PoolBox<T> {}
// SAFETY: Shared access gives `&T` only.
unsafe impl<T: Sync> Sync for PoolBox<T> {}

impl<T> PoolBox<T> {
    /// Takes the value out and gives the element back to the pool.
    pub fn into_inner(this: Self) -> T {
        let this = core::mem::ManuallyDrop::new(this);
        // SAFETY: `ptr` holds a `T` owned by `this` (invariant), read once;
        // `this` is not dropped, so the value is not dropped twice.
        let value = unsafe { this.ptr.as_ptr().read() };
        // SAFETY: `raw` is read once out of a value that is never dropped.
        let raw = unsafe { core::ptr::read(&this.raw) };
        // SAFETY: The element belongs to `raw` (invariant) and its value was
        // moved out above.
        unsafe { raw.free(this.ptr.cast()) };
        value
    }
}

impl<T> PoolBox<T> {
    /// Gives up ownership of the element (and the pool reference it holds)
    /// for a C callback's context; [`PoolBox::from_raw`] takes it back.
    pub(super) fn into_raw(this: Self) -> NonNull<T> {
        let this = core::mem::ManuallyDrop::new(this);
        // SAFETY: `raw` is read once out of a value that is never dropped;
        // its reference is leaked until `from_raw`.
        let raw = unsafe { core::ptr::read(&this.raw) };
        let _ = Arc::into_raw(raw);
        this.ptr
    }

    /// # Safety
    ///
    /// `ptr` came from [`PoolBox::into_raw`] of an element of `pool`, and is
    /// taken back once.
    pub(super) unsafe fn from_raw(ptr: NonNull<T>, pool: &Mempool<T>) -> Self {
        let leaked: *const RawPool = &*pool.raw;
        // SAFETY: `into_raw` leaked one reference to this very `RawPool`
        // (the caller guarantees the element is of `pool`), reclaimed here
        // once.
        let raw = unsafe { Arc::from_raw(leaked) };
        // INVARIANT: `ptr` still holds the `T` `into_raw` left there, in an
        // element of `raw`.
        Self { ptr, raw }
    }
}

impl<T> Deref for PoolBox<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: `ptr` holds a `T` owned by `self` (invariant).
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for PoolBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: `ptr` holds a `T` owned by `self` (invariant), borrowed
        // mutably through `self`.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for PoolBox<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` holds a `T` owned by `self` (invariant), dropped
        // once, here.
        unsafe { core::ptr::drop_in_place(self.ptr.as_ptr()) };
        // SAFETY: The element belongs to `raw` (invariant); its value was
        // dropped above and it is not used again.
        unsafe { self.raw.free(self.ptr.cast()) };
    }
}

/// A pool of byte buffers of one size with a reserve, as C's
/// `mempool_create_kmalloc_pool(min_nr, size)`.
#[derive(Clone)]
pub struct BufferPool {
    raw: Arc<RawPool>,
}

impl BufferPool {
    /// A pool of `size`-byte buffers keeping `min_nr` in reserve.
    ///
    /// # Context
    ///
    /// Process context; may sleep.
    pub fn new(min_nr: usize, size: usize) -> Result<Self> {
        Ok(Self {
            raw: RawPool::new(min_nr, size, 1)?,
        })
    }

    /// The size of every buffer.
    pub fn buffer_size(&self) -> usize {
        self.raw.size
    }

    fn wrap(&self, p: NonNull<u8>) -> PoolBuffer {
        // SAFETY: `p` is a fresh element of `size` bytes, owned here; zeroed
        // so that it is never read uninitialised.
        unsafe { core::ptr::write_bytes(p.as_ptr(), 0, self.raw.size) };
        // INVARIANT: `p` is an initialised element of `raw`.
        PoolBuffer {
            ptr: p,
            raw: self.raw.clone(),
        }
    }

    /// A zeroed buffer; waits for one if memory is short, never fails (C:
    /// `mempool_alloc(pool, GFP_NOIO)`).
    ///
    /// # Context
    ///
    /// Process context; may sleep, never to wait for I/O: `ctx` is the
    /// proof.
    pub fn alloc(&self, ctx: &Sleepable<'_>) -> PoolBuffer {
        self.wrap(self.raw.alloc(ctx))
    }

    /// A zeroed buffer, or `None` if none is free without waiting
    /// (`GFP_NOWAIT`).
    ///
    /// # Context
    ///
    /// Any context.
    pub fn try_alloc(&self) -> Option<PoolBuffer> {
        self.raw.try_alloc().map(|p| self.wrap(p))
    }
}

/// A byte buffer from a [`BufferPool`], given back when dropped.
///
/// # Invariants
///
/// `ptr` points to an initialised element of `raw.size` bytes of `raw`,
/// owned by this value.
pub struct PoolBuffer {
    ptr: NonNull<u8>,
    raw: Arc<RawPool>,
}

// SAFETY: Owns its bytes; the pool is thread-safe.
unsafe impl Send for PoolBuffer {}
// SAFETY: Shared access gives `&[u8]` only.
unsafe impl Sync for PoolBuffer {}

impl Deref for PoolBuffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is an initialised element of `raw.size` bytes owned
        // by `self` (invariant).
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.raw.size) }
    }
}

impl DerefMut for PoolBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: As in `deref`, borrowed mutably through `self`.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.raw.size) }
    }
}

impl Drop for PoolBuffer {
    fn drop(&mut self) {
        // SAFETY: The element belongs to `raw` (invariant) and is not used
        // again.
        unsafe { self.raw.free(self.ptr) };
    }
}
