// SPDX-License-Identifier: GPL-2.0

//! dm-bufio: a cache of block-sized buffers of an underlying device.
//!
//! C header: [`include/linux/dm-bufio.h`](srctree/include/linux/dm-bufio.h)

use super::{
    bindings, context::might_sleep, error::from_err_ptr, workqueue::Workqueue, Bh, Device, Target,
};
use core::{
    ptr::NonNull,
    sync::atomic::{AtomicU8, AtomicUsize, Ordering},
};
use kernel::{
    error::code::{EBUSY, ENOMEM},
    prelude::*,
    types::Opaque,
};

/// The bit of [`BufioClient`]'s `gate` set while the cache is reset.
const RESETTING: usize = 1 << (usize::BITS - 1);

/// A dm-bufio client over one device.
///
/// Every buffer carries one byte of client state, [`Buffer::state`], zeroed
/// when dm-bufio (re)reads the buffer from disk — e.g. "this hash block has
/// been verified".
///
/// # Context
///
/// A client made by [`BufioClient::new`] (without `DM_BUFIO_CLIENT_NO_SLEEP`)
/// has dm-bufio take rw-semaphores and mutexes, so every method that calls
/// into it may sleep (process context, no spinlock held) and checks that
/// with `might_sleep()`; each method says which. Those that may sleep take
/// a `&Target`, which only hooks running in process context have.
///
/// A client made by [`BufioClient::new_no_sleep`] has dm-bufio use
/// spinlocks (taken with bottom halves off) instead: its lookups of cached
/// blocks ([`BufioClient::get_bh`]) and the release of what they return
/// may run in the BH workqueue; reading from disk still sleeps.
///
/// # Invariants
///
/// - `client` is a live dm-bufio client owned by this value.
/// - Its block device is `_dev`'s, held open while `_dev` exists: `_dev` is
///   dropped after [`Drop::drop`] destroyed the client.
/// - Prefetch work queued by [`BufioClient::prefetch_async`] only runs on
///   `wq`, which `drop` drains before destroying the client.
/// - `block_size` is the client's block size.
/// - `no_sleep`: the client was created with `DM_BUFIO_CLIENT_NO_SLEEP`.
/// - `gate` counts the held [`Buffer`]s and the queued prefetch work items,
///   plus [`RESETTING`] while [`BufioClient::reset`] runs; nothing takes a
///   buffer or queues a prefetch while that bit is set. It lives in its own
///   allocation (prefetch work refers to it) until after `wq` is drained.
pub struct BufioClient {
    client: NonNull<bindings::dm_bufio_client>,
    _dev: Device,
    wq: Workqueue,
    block_size: usize,
    no_sleep: bool,
    gate: KBox<AtomicUsize>,
}

// SAFETY: dm-bufio clients are internally locked and usable from any thread.
unsafe impl Send for BufioClient {}
// SAFETY: As above.
unsafe impl Sync for BufioClient {}

/// Called by dm-bufio for every buffer it (re)initialises.
///
/// # Safety
///
/// `b` must be a live buffer of a client created by [`BufioClient::new`].
unsafe extern "C" fn buffer_alloc_callback(b: *mut bindings::dm_buffer) {
    // SAFETY: `b` is a live buffer of a client created with one byte of aux
    // data, which we may initialise.
    unsafe { bindings::dm_bufio_get_aux_data(b).cast::<u8>().write(0) };
}

impl BufioClient {
    /// Creates a client for `dev` with buffers of `block_size` bytes, keeping
    /// at least `reserved` buffers in reserve.
    ///
    /// Prefetches ([`BufioClient::prefetch_async`]) run on `wq`, which the
    /// client owns from now on; the caller may queue its own work there too
    /// ([`BufioClient::workqueue`]). Sharing one queue is what C dm-verity
    /// does with its `kverityd`: a bio's prefetch and its verification then
    /// run in order on the same worker, with no second worker to wake and
    /// switch to for each bio.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn new(dev: &Device, block_size: u32, reserved: u32, wq: Workqueue) -> Result<Self> {
        Self::create(dev, block_size, reserved, wq, false)
    }

    /// As [`BufioClient::new`], for a client whose cached blocks may be
    /// looked up in the BH workqueue ([`BufioClient::get_bh`]):
    /// `DM_BUFIO_CLIENT_NO_SLEEP`, dm-bufio's locks are spinlocks.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn new_no_sleep(
        dev: &Device,
        block_size: u32,
        reserved: u32,
        wq: Workqueue,
    ) -> Result<Self> {
        Self::create(dev, block_size, reserved, wq, true)
    }

    fn create(
        dev: &Device,
        block_size: u32,
        reserved: u32,
        wq: Workqueue,
        no_sleep: bool,
    ) -> Result<Self> {
        might_sleep();
        let gate = KBox::new(AtomicUsize::new(0), GFP_KERNEL)?;
        // SAFETY: `dev.bdev()` is open while `dev` (and the clone kept
        // below) exists; the aux size matches `buffer_alloc_callback`.
        let c = unsafe {
            bindings::dm_bufio_client_create(
                dev.bdev(),
                block_size,
                reserved,
                core::mem::size_of::<AtomicU8>() as u32,
                Some(buffer_alloc_callback),
                None,
                if no_sleep {
                    bindings::DM_BUFIO_CLIENT_NO_SLEEP
                } else {
                    0
                },
            )
        };
        let client = NonNull::new(from_err_ptr(c)?).ok_or(ENOMEM)?;
        // INVARIANT: created above and owned; see the type's documentation.
        Ok(Self {
            client,
            _dev: dev.clone(),
            wq,
            block_size: block_size as usize,
            no_sleep,
            gate,
        })
    }

    /// Counts one more holder, unless a reset runs.
    ///
    /// # Context
    ///
    /// Any.
    fn hold(&self) -> bool {
        let prev = self.gate.fetch_add(1, Ordering::Acquire);
        if prev & RESETTING != 0 {
            self.gate.fetch_sub(1, Ordering::Release);
            return false;
        }
        true
    }

    /// The workqueue prefetches run on (given to [`BufioClient::new`]).
    ///
    /// # Context
    ///
    /// Any.
    pub fn workqueue(&self) -> &Workqueue {
        &self.wq
    }

    /// Makes block 0 of the client start at sector `start` of the device
    /// (`dm_bufio_set_sector_offset()`); [`BufioClient::device_size`]
    /// then counts the blocks from there.
    ///
    /// Takes `&mut self`: only before the client is shared, so no buffer is
    /// held or cached at another offset.
    ///
    /// # Context
    ///
    /// Any.
    pub fn set_sector_offset(&mut self, start: u64) {
        // SAFETY: `client` is live (invariant); `&mut self` means no buffer
        // is held (each borrows the client) and no other thread uses it.
        unsafe { bindings::dm_bufio_set_sector_offset(self.client.as_ptr(), start) };
    }

    /// Size of the device in blocks.
    ///
    /// # Context
    ///
    /// Any.
    pub fn device_size(&self) -> u64 {
        // SAFETY: `client` is live (invariant).
        unsafe { bindings::dm_bufio_get_device_size(self.client.as_ptr()) }
    }

    /// Reads block `block`, waiting for the I/O if it is not cached.
    ///
    /// `EBUSY` while [`BufioClient::reset`] runs.
    ///
    /// # Context
    ///
    /// May sleep: `_ctx`, the target of the calling hook, says it runs in
    /// process context (no BH callback has one).
    pub fn read(&self, _ctx: &Target, block: u64) -> Result<Buffer<'_>> {
        might_sleep();
        if !self.hold() {
            return Err(EBUSY);
        }
        let mut b: *mut bindings::dm_buffer = core::ptr::null_mut();
        // SAFETY: `client` is live; `b` is a valid out-pointer.
        let data = unsafe { bindings::dm_bufio_read(self.client.as_ptr(), block, &mut b) };
        // SAFETY: On success dm-bufio returned a held buffer and its data;
        // `hold` counted it.
        unsafe { self.buffer(b, from_err_ptr(data)) }
    }

    /// Block `block` if it is cached and uptodate, without waiting for I/O
    /// (`None` also while [`BufioClient::reset`] runs).
    ///
    /// # Context
    ///
    /// May sleep: dm-bufio takes a rw-semaphore (unless the client is
    /// `DM_BUFIO_CLIENT_NO_SLEEP`); `_ctx` as in [`BufioClient::read`].
    pub fn get_cached(&self, _ctx: &Target, block: u64) -> Option<Buffer<'_>> {
        might_sleep();
        if !self.hold() {
            return None;
        }
        let mut b: *mut bindings::dm_buffer = core::ptr::null_mut();
        // SAFETY: `client` is live; `b` is a valid out-pointer.
        let data = unsafe { bindings::dm_bufio_get(self.client.as_ptr(), block, &mut b) };
        // SAFETY: A non-null, non-error result is a held buffer and its data;
        // `hold` counted it.
        unsafe { self.buffer(b, from_err_ptr(data)) }.ok()
    }

    /// Block `block` if it is cached and uptodate (`dm_bufio_get()`), from
    /// the BH workqueue: never sleeps, nor does releasing the buffer.
    /// `None` when it is not cached, while [`BufioClient::reset`] runs, and
    /// always for a client made by [`BufioClient::new`] (whose locks sleep).
    ///
    /// # Context
    ///
    /// The BH workqueue (`_bh`), or any context where bottom halves may be
    /// disabled.
    pub fn get_bh(&self, _bh: &Bh<'_>, block: u64) -> Option<Buffer<'_>> {
        if !self.no_sleep || !self.hold() {
            return None;
        }
        let mut b: *mut bindings::dm_buffer = core::ptr::null_mut();
        // SAFETY: `client` is live; `b` is a valid out-pointer. The client
        // is `DM_BUFIO_CLIENT_NO_SLEEP` (checked above), so dm-bufio only
        // takes spinlocks, with bottom halves disabled.
        let data = unsafe { bindings::dm_bufio_get(self.client.as_ptr(), block, &mut b) };
        // SAFETY: A non-null, non-error result is a held buffer and its data;
        // `hold` counted it.
        unsafe { self.buffer(b, from_err_ptr(data)) }.ok()
    }

    /// Wraps the result of a dm-bufio call that holds a buffer, or gives
    /// the count taken by `hold` back.
    ///
    /// # Safety
    ///
    /// `hold` must have counted this call; on success (`data` a non-null
    /// pointer) `b` must be a buffer of this client just returned held by
    /// dm-bufio, with `data` its data.
    unsafe fn buffer(
        &self,
        b: *mut bindings::dm_buffer,
        data: Result<*mut core::ffi::c_void>,
    ) -> Result<Buffer<'_>> {
        match (NonNull::new(b), data.map(|d| NonNull::new(d.cast::<u8>()))) {
            // INVARIANT: a held buffer and its data, counted in the gate
            // (the caller).
            (Some(b), Ok(Some(data))) => Ok(Buffer {
                b,
                data,
                len: self.block_size,
                no_sleep: self.no_sleep,
                gate: &self.gate,
            }),
            (_, r) => {
                self.gate.fetch_sub(1, Ordering::Release);
                Err(r.err().unwrap_or(ENOMEM))
            }
        }
    }

    /// Starts reading the block ranges `(first block, count)` into the cache
    /// in the background, from a worker (one work item for up to
    /// [`PREFETCH_RANGES`] ranges): never sleeps, and silently does nothing
    /// when memory is short or [`BufioClient::reset`] runs (prefetching is
    /// only a hint).
    ///
    /// # Context
    ///
    /// Any (never sleeps).
    pub fn prefetch_async(&self, ranges: &[(u64, u32)]) {
        for chunk in ranges.chunks(PREFETCH_RANGES) {
            // Counted until the work item has run (`prefetch_work_fn`).
            if !self.hold() {
                return;
            }
            let mut r = [(0u64, 0u32); PREFETCH_RANGES];
            for (d, s) in r.iter_mut().zip(chunk) {
                *d = *s;
            }
            let Ok(work) = KBox::new(
                PrefetchWork {
                    work: Opaque::uninit(),
                    client: self.client.as_ptr(),
                    gate: &*self.gate,
                    ranges: r,
                    nr: chunk.len(),
                },
                GFP_NOWAIT | __GFP_NOWARN,
            ) else {
                self.gate.fetch_sub(1, Ordering::Release);
                return;
            };
            let work = KBox::into_raw(work);
            // SAFETY: `work` is a valid, exclusively owned allocation; the
            // work function takes ownership back. The client and its gate
            // outlive the work since `drop` drains `wq` first (invariant).
            unsafe {
                let w = Opaque::raw_get(core::ptr::addr_of!((*work).work));
                bindings::rdm_init_work(w, Some(prefetch_work_fn));
                bindings::rdm_queue_work(self.wq.as_raw(), w);
            }
        }
    }

    /// Waits for the work queued so far on the workqueue, then drops every
    /// cached buffer (`dm_bufio_client_reset()`).
    ///
    /// dm-bufio cannot drop a buffer someone holds (it warns of a leak), so
    /// this refuses with `EBUSY`, resetting nothing, while any [`Buffer`] is
    /// held or any prefetch is queued; while it runs, [`BufioClient::read`]
    /// fails with `EBUSY`, [`BufioClient::get_cached`] finds nothing and
    /// [`BufioClient::prefetch_async`] does nothing. Meant for a suspended
    /// target, whose I/O is over.
    ///
    /// # Context
    ///
    /// May sleep (`_ctx` as in [`BufioClient::read`]).
    pub fn reset(&self, _ctx: &Target) -> Result {
        might_sleep();
        self.wq.drain();
        self.gate
            .compare_exchange(0, RESETTING, Ordering::Acquire, Ordering::Relaxed)
            .map_err(|_| EBUSY)?;
        // SAFETY: `client` is live (invariant). No buffer is held and no
        // prefetch is queued or running (the gate was zero), and none can be
        // taken or queued until the gate opens again below.
        unsafe { bindings::dm_bufio_client_reset(self.client.as_ptr()) };
        // Whoever tried meanwhile has given its count back, or will.
        self.gate.fetch_and(!RESETTING, Ordering::Release);
        Ok(())
    }
}

impl Drop for BufioClient {
    fn drop(&mut self) {
        might_sleep();
        // No prefetch may run on the client once it is gone.
        self.wq.drain();
        // SAFETY: `client` is live and owned (invariant); no buffer is held,
        // since every `Buffer` borrows `self`.
        unsafe { bindings::dm_bufio_client_destroy(self.client.as_ptr()) };
    }
}

/// Ranges one prefetch work item carries.
pub const PREFETCH_RANGES: usize = 8;

#[repr(C)]
struct PrefetchWork {
    work: Opaque<bindings::work_struct>,
    client: *mut bindings::dm_bufio_client,
    /// The client's gate, which counted this work item.
    gate: *const AtomicUsize,
    ranges: [(u64, u32); PREFETCH_RANGES],
    nr: usize,
}

/// The work function of [`BufioClient::prefetch_async`].
///
/// # Safety
///
/// `w` must be the `work` of a `PrefetchWork` leaked by `prefetch_async`,
/// whose client and gate are still live; it is freed here.
unsafe extern "C" fn prefetch_work_fn(w: *mut bindings::work_struct) {
    // SAFETY: `w` is the first field of a `PrefetchWork` leaked by
    // `prefetch_async`, which we own again now.
    let work = unsafe { KBox::from_raw(w.cast::<PrefetchWork>()) };
    for &(block, n) in &work.ranges[..work.nr.min(PREFETCH_RANGES)] {
        // SAFETY: The client is live until its workqueue is drained.
        unsafe { bindings::dm_bufio_prefetch(work.client, block, n) };
    }
    // SAFETY: The gate lives as long as the client (see above); this work
    // item was counted in it by `prefetch_async`.
    unsafe { (*work.gate).fetch_sub(1, Ordering::Release) };
}

/// A held dm-bufio buffer; released on drop.
///
/// # Context
///
/// Its methods may run in any context; dropping it may sleep (dm-bufio
/// takes a rw-semaphore) unless its client is `DM_BUFIO_CLIENT_NO_SLEEP`
/// (the only kind [`BufioClient::get_bh`] returns buffers of).
///
/// # Invariants
///
/// `b` is held (not released) and `data` points at its `len` bytes; the
/// hold is counted in `gate`, its client's gate; `no_sleep` is the client's.
pub struct Buffer<'a> {
    b: NonNull<bindings::dm_buffer>,
    data: NonNull<u8>,
    len: usize,
    no_sleep: bool,
    gate: &'a AtomicUsize,
}

impl Buffer<'_> {
    /// The block's contents.
    pub fn data(&self) -> &[u8] {
        // SAFETY: The buffer is held, so its `len` bytes stay valid and are
        // not written by dm-bufio (clients here never mark buffers dirty).
        unsafe { core::slice::from_raw_parts(self.data.as_ptr(), self.len) }
    }

    /// The client's byte of state for this buffer, shared by all holders.
    pub fn state(&self) -> &AtomicU8 {
        // SAFETY: The aux area is one byte, initialised by
        // `buffer_alloc_callback`, living as long as the held buffer, and
        // only accessed atomically.
        unsafe { AtomicU8::from_ptr(bindings::dm_bufio_get_aux_data(self.b.as_ptr()).cast()) }
    }
}

impl Drop for Buffer<'_> {
    fn drop(&mut self) {
        if !self.no_sleep {
            might_sleep();
        }
        // SAFETY: Held (invariant), released exactly once.
        unsafe { bindings::dm_bufio_release(self.b.as_ptr()) };
        // Released: a reset may run now.
        self.gate.fetch_sub(1, Ordering::Release);
    }
}
