// SPDX-License-Identifier: GPL-2.0

//! Target types: the [`Operations`] a target implements, its registration with
//! dm core, and the C trampolines between them.
//!
//! C header: [`include/linux/device-mapper.h`](srctree/include/linux/device-mapper.h)

use super::{
    bindings,
    device::{Anchor, TargetRef},
    Args, BlkStatus, Device, EndIoBio, MapBio, MapResult, QueueLimits, Sleepable, StatusWriter,
};
use core::{marker::PhantomData, ptr::NonNull};
use kernel::{
    c_str,
    error::{from_result, to_result},
    ffi::{c_char, c_int, c_uint, c_void},
    prelude::*,
    str::CStr,
    types::{ForeignOwnable, Opaque},
};

/// What `end_io` decided about a completed bio. (Bio-based dm core has no
/// delayed requeue: it `BUG()`s on `DM_ENDIO_DELAY_REQUEUE`, so there is
/// none here.)
pub enum EndIoResult {
    /// Completion goes on to the submitter.
    Done,
    /// Push the bio back to be mapped again (dm core requeues it while
    /// suspending with `noflush`, and fails it otherwise).
    Requeue,
}

/// Which text `status` should produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusType {
    /// `dmsetup status`: the target's run-time state.
    Info,
    /// `dmsetup table`: the table line as it would be loaded again.
    Table,
    /// The measurement record for IMA (`key=value,...;`).
    Ima,
}

/// `DM_STATUS_NOFLUSH_FLAG` (private to dm core, `drivers/md/dm.h`): the
/// status must not cause I/O.
pub const STATUS_NOFLUSH: u32 = 1 << 0;

/// Target feature flags (`DM_TARGET_*`).
pub mod features {
    use super::bindings;
    /// Only one target of this type in a table, and no other target.
    pub const SINGLETON: u64 = bindings::DM_TARGET_SINGLETON as u64;
    /// The target is always writable.
    pub const ALWAYS_WRITEABLE: u64 = bindings::DM_TARGET_ALWAYS_WRITEABLE as u64;
    /// A table with this target cannot be replaced by one of another type.
    pub const IMMUTABLE: u64 = bindings::DM_TARGET_IMMUTABLE as u64;
    /// Integrity data passes through.
    pub const PASSES_INTEGRITY: u64 = bindings::DM_TARGET_PASSES_INTEGRITY as u64;
    /// `REQ_NOWAIT` bios are supported.
    pub const NOWAIT: u64 = bindings::DM_TARGET_NOWAIT as u64;
    /// Inline encryption contexts pass through.
    pub const PASSES_CRYPTO: u64 = bindings::DM_TARGET_PASSES_CRYPTO as u64;
}

/// The hooks of a device-mapper target type (C's `struct target_type`).
///
/// One value of the implementing type is created by [`Operations::ctr`] for
/// each target (one line of a table) and dropped by dm core's destructor.
/// Hooks that are not implemented are left NULL in the C vtable, exactly as
/// a C target leaves them out.
///
/// `map` and `end_io` run concurrently on many CPUs: they get `&self`, and
/// shared mutable state goes behind the kernel's synchronisation types.
///
/// # Context
///
/// - `ctr`, `dtr`, `presuspend`, `presuspend_undo`, `postsuspend`,
///   `preresume`, `resume`, `message`, `status`: process context, may sleep
///   (dm core holds the device's suspend or table mutex, or an SRCU read
///   lock of the table), which the [`Sleepable`] they get proves
///   (`ctr`: [`Ctr::sleepable`]). `status` with [`STATUS_NOFLUSH`] must not
///   cause I/O.
/// - `map`: the submitter's context, where dm core has just allocated the
///   clone with `GFP_NOIO`; may sleep only to allocate with `GFP_NOIO`
///   semantics ([`super::noio`], mempools), never to wait for I/O. A target
///   that does not declare [`features::NOWAIT`] gets a [`Sleepable`] there
///   ([`MapBio::sleepable`]); one that does may be mapping a `REQ_NOWAIT`
///   bio, whose submitter must not be blocked, and gets none.
/// - `end_io`: bio completion, which may run in hard or soft interrupt
///   context: must not sleep. It gets no [`Target`] (whose table events
///   sleep) and no [`Sleepable`]; locks shared with it must be
///   [`super::sync::IrqSpinLock`]s.
/// - `iterate_devices`, `io_hints`: process context; they get no
///   [`Sleepable`] (they have nothing to wait for).
/// - Dropping the value (after `dtr`): process context, but `Drop` gets no
///   token.
#[vtable]
pub trait Operations: Sized + Send + Sync + 'static {
    /// Target name, as in table lines (`dmsetup create ... --table "0 8 NAME ..."`).
    const NAME: &'static CStr;
    /// Target version reported to userspace (`dmsetup targets`).
    const VERSION: [u32; 3];
    /// `DM_TARGET_*` feature flags, see [`features`].
    const FEATURES: u64 = 0;

    /// Per-bio data: kept in the bio's `bi_private` when it fits a pointer,
    /// else dm core reserves room for one in front of every bio it maps to
    /// this target. It is set to `Default::default()` before `map` and never
    /// dropped, so it must not need dropping (checked at build time).
    type PerBio: Default + Send;

    /// Constructs a target from its table arguments: returns the
    /// initialiser of the target value, which the trampoline places in the
    /// target's allocation. On failure, report the reason with
    /// [`Args::fail`] (or an `Args` accessor); every resource acquired so far
    /// is released by dropping it.
    fn ctr(target: &mut Ctr<'_>, args: &mut Args<'_>) -> Result<impl PinInit<Self, Error>>;

    /// Maps `bio`, the bio of this call: gives it back remapped
    /// ([`MapBio::remap`]), failed or requeued, or keeps it
    /// ([`MapBio::keep`], then [`MapResult::submitted`]).
    fn map<'m>(&self, target: &Target, bio: MapBio<'m, Self>) -> MapResult<'m>;

    /// Sees a mapped bio complete; may change its status. Must not sleep.
    fn end_io(&self, _bio: EndIoBio<'_, Self>, _status: &mut BlkStatus) -> EndIoResult {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// The destructor (C's `dtr`): called once, in process context, before
    /// the value is dropped, for a target whose constructor succeeded
    /// (not if construction fails: the value is only dropped then). What
    /// must wait before the value goes (workers, copies) waits here, with
    /// the token; `Drop` gets none.
    fn dtr(&self, _target: &Target, _ctx: &Sleepable<'_>) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called before the device is suspended.
    fn presuspend(&self, _target: &Target, _ctx: &Sleepable<'_>) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Undoes `presuspend` when the suspend is cancelled.
    fn presuspend_undo(&self, _target: &Target, _ctx: &Sleepable<'_>) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called once the device is suspended and I/O has drained.
    fn postsuspend(&self, _target: &Target, _ctx: &Sleepable<'_>) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called before the table becomes live; an error cancels the resume.
    fn preresume(&self, _target: &Target, _ctx: &Sleepable<'_>) -> Result {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called once the table is live.
    fn resume(&self, _target: &Target, _ctx: &Sleepable<'_>) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Writes the status or the table line. `flags` may hold [`STATUS_NOFLUSH`].
    fn status(
        &self,
        _target: &Target,
        _ctx: &Sleepable<'_>,
        _kind: StatusType,
        _flags: u32,
        _out: &mut StatusWriter<'_>,
    ) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Handles `dmsetup message`. Text written to `out` is returned to the
    /// caller.
    fn message(
        &self,
        _target: &Target,
        _ctx: &Sleepable<'_>,
        _args: &mut Args<'_>,
        _out: &mut StatusWriter<'_>,
    ) -> Result {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Calls `callout.visit()` for each underlying device area the target
    /// maps, and returns the first non-zero result.
    fn iterate_devices(&self, _target: &Target, _callout: &mut DeviceCallout<'_>) -> i32 {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Adjusts the queue limits of the mapped device.
    fn io_hints(&self, _target: &Target, _limits: &mut QueueLimits) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }
}

/// One target of a table (C's `struct dm_target`), as the hooks see it.
///
/// # Invariants
///
/// Wraps a `dm_target` that dm core keeps alive for the lifetime of the
/// reference; its configuration fields are only written through [`Ctr`].
#[repr(transparent)]
pub struct Target(Opaque<bindings::dm_target>);

impl Target {
    /// # Safety
    ///
    /// `ptr` must be a live `dm_target` for `'a`.
    pub(super) unsafe fn from_raw<'a>(ptr: *mut bindings::dm_target) -> &'a Self {
        // SAFETY: `Target` is `repr(transparent)` over `Opaque<dm_target>`;
        // the caller guarantees liveness.
        unsafe { &*ptr.cast() }
    }

    pub(super) fn as_raw(&self) -> *mut bindings::dm_target {
        self.0.get()
    }

    /// First sector of the mapped device covered by this target.
    #[inline]
    pub fn begin(&self) -> u64 {
        // SAFETY: `ti` is live (invariant); `begin` is set before the ctr and
        // never changes.
        unsafe { (*self.as_raw()).begin }
    }

    /// Number of sectors covered by this target.
    #[inline]
    pub fn len(&self) -> u64 {
        // SAFETY: As for `begin`.
        unsafe { (*self.as_raw()).len }
    }

    /// Whether the target covers no sectors (never, for a loaded table).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Offset of `sector` of the mapped device from this target's start
    /// (`dm_target_offset()`).
    #[inline]
    pub fn offset(&self, sector: u64) -> u64 {
        sector.wrapping_sub(self.begin())
    }

    /// Whether the table was loaded read-write.
    pub fn is_writable(&self) -> bool {
        // SAFETY: `table` is set before the ctr and outlives the target.
        let mode = unsafe { bindings::dm_table_get_mode((*self.as_raw()).table) };
        mode & bindings::BLK_OPEN_WRITE != 0
    }

    /// Whether the mapped device is suspended (`dm_suspended()`).
    pub fn is_suspended(&self) -> bool {
        // SAFETY: `ti` is live (invariant).
        unsafe { bindings::dm_suspended(self.as_raw()) != 0 }
    }

    /// Whether the device is being suspended with `noflush`.
    pub fn is_noflush_suspending(&self) -> bool {
        // SAFETY: `ti` is live (invariant).
        unsafe { bindings::dm_noflush_suspending(self.as_raw()) != 0 }
    }

    /// Name of the mapped device (`dm-N`).
    pub fn device_name(&self) -> &CStr {
        // SAFETY: `table` is live with the target; the name lives as long as
        // the mapped device, which outlives its tables.
        unsafe { CStr::from_char_ptr(bindings::dm_table_device_name((*self.as_raw()).table)) }
    }

    /// Signals a table event to userspace (`dm_table_event()`).
    ///
    /// # Context
    ///
    /// Process context (takes a mutex).
    pub fn table_event(&self) {
        super::might_sleep();
        // SAFETY: `table` is live with the target.
        unsafe { bindings::dm_table_event((*self.as_raw()).table) };
    }

    /// Sets the reason reported for a failing constructor. Only [`Ctr`] and
    /// [`Args`] call it, during the constructor.
    pub(super) fn set_error(&self, reason: &'static CStr) {
        // SAFETY: Only constructors report errors, and dm core does not read
        // `error` concurrently with the ctr. dm core never writes through it.
        unsafe { (*self.as_raw()).error = reason.as_char_ptr().cast_mut() };
    }
}

/// A target's handle for its own workers: table events and the device name,
/// from contexts that have no `&Target` (workers, completion callbacks).
/// Made by [`Ctr::handle`].
///
/// Like a [`Device`], it keeps the `dm_target` valid while it exists: the
/// destructor waits for the last handle before dm core frees the target.
///
/// # Invariants
///
/// `target` keeps the `dm_target` live.
#[derive(Clone)]
pub struct TargetHandle {
    target: TargetRef,
}

impl TargetHandle {
    fn target(&self) -> &Target {
        // SAFETY: `ti` is live while the handle is (invariant).
        unsafe { Target::from_raw(self.target.ti()) }
    }

    /// Name of the mapped device (`dm_table_device_name()`, `major:minor`).
    pub fn device_name(&self) -> &CStr {
        self.target().device_name()
    }

    /// Signals a table event to userspace (`dm_table_event()`).
    ///
    /// # Context
    ///
    /// Process context (takes a mutex): `_ctx` is the proof.
    pub fn table_event(&self, _ctx: &Sleepable<'_>) {
        self.target().table_event()
    }
}

/// The target being constructed: configuration that only the constructor
/// may change, and the devices it opens.
pub struct Ctr<'a> {
    target: &'a Target,
    anchor: NonNull<Anchor>,
    devs: &'a mut KVec<NonNull<bindings::dm_dev>>,
}

impl core::ops::Deref for Ctr<'_> {
    type Target = Target;
    fn deref(&self) -> &Target {
        self.target
    }
}

impl<'a> Ctr<'a> {
    fn raw(&mut self) -> &mut bindings::dm_target {
        // SAFETY: dm core gives the constructor exclusive use of the
        // `dm_target` until it returns; `&mut self` is that exclusivity.
        unsafe { &mut *self.target.as_raw() }
    }

    fn target_ref(&self) -> TargetRef {
        // SAFETY: The anchor is live and unfinished during the constructor.
        unsafe { TargetRef::new(self.anchor) }
    }

    /// The proof that the constructor runs in process context with no lock
    /// held and may sleep, for the length of the constructor call (`'a`).
    pub fn sleepable(&self) -> Sleepable<'a> {
        // SAFETY: dm core calls the constructor from the table load ioctl:
        // process context, no spinlock held. The token lives for `'a`, the
        // constructor call that got this `Ctr`.
        unsafe { Sleepable::new() }
    }

    /// A handle for the target's workers (see [`TargetHandle`]).
    pub fn handle(&self) -> TargetHandle {
        TargetHandle {
            target: self.target_ref(),
        }
    }

    /// Opens the underlying device `path` (`major:minor` or a `/dev` path)
    /// with the table's mode. On failure reports `reason`.
    pub fn get_device(&mut self, path: &CStr, reason: &'static CStr) -> Result<Device> {
        // SAFETY: `table` is live during the ctr.
        let mode = unsafe { bindings::dm_table_get_mode(self.raw().table) };
        self.get_device_mode(path, mode, reason)
    }

    /// Opens `path` read-write, whatever the table's mode (for metadata).
    pub fn get_device_read_write(&mut self, path: &CStr, reason: &'static CStr) -> Result<Device> {
        self.get_device_mode(
            path,
            bindings::BLK_OPEN_READ | bindings::BLK_OPEN_WRITE,
            reason,
        )
    }

    /// Opens `path` read-only, whatever the table's mode.
    pub fn get_device_read_only(&mut self, path: &CStr, reason: &'static CStr) -> Result<Device> {
        self.get_device_mode(path, bindings::BLK_OPEN_READ, reason)
    }

    fn get_device_mode(
        &mut self,
        path: &CStr,
        mode: bindings::blk_mode_t,
        reason: &'static CStr,
    ) -> Result<Device> {
        let ti = self.target.as_raw();
        let mut dev: *mut bindings::dm_dev = core::ptr::null_mut();
        // SAFETY: `ti` is the live target being constructed, `path` a valid
        // string, `dev` a valid out-pointer.
        let r = unsafe { bindings::dm_get_device(ti, path.as_char_ptr(), mode, &mut dev) };
        if let Err(e) = to_result(r) {
            self.target.set_error(reason);
            return Err(e);
        }
        let Some(dev) = NonNull::new(dev) else {
            self.target.set_error(reason);
            return Err(EINVAL);
        };
        if let Err(e) = self.devs.push(dev, GFP_KERNEL) {
            // SAFETY: Just opened for `ti`, not recorded anywhere: put once.
            unsafe { bindings::dm_put_device(ti, dev.as_ptr()) };
            self.target.set_error(c_str!("Cannot allocate memory"));
            return Err(e.into());
        }
        // SAFETY: `dev` was just returned by `dm_get_device(ti)` and is now
        // recorded in `devs`, which only the destructor trampoline (or the
        // constructor trampoline, if the constructor fails) puts, through
        // `Anchor::finish`.
        Ok(unsafe { Device::from_raw(self.target_ref(), dev) })
    }

    /// Number of empty flush bios dm core sends to the target per flush.
    pub fn set_num_flush_bios(&mut self, n: u32) {
        self.raw().num_flush_bios = n;
    }

    /// Number of bios per discard.
    pub fn set_num_discard_bios(&mut self, n: u32) {
        self.raw().num_discard_bios = n;
    }

    /// Number of bios per secure erase.
    pub fn set_num_secure_erase_bios(&mut self, n: u32) {
        self.raw().num_secure_erase_bios = n;
    }

    /// Number of bios per write-zeroes.
    pub fn set_num_write_zeroes_bios(&mut self, n: u32) {
        self.raw().num_write_zeroes_bios = n;
    }

    /// Let dm core send flushes straight to the devices, bypassing `map`, when
    /// every target of the table allows it.
    pub fn set_flush_bypasses_map(&mut self, on: bool) {
        self.raw().set_flush_bypasses_map(on);
    }

    /// Receive flushes even if no underlying device has a volatile cache.
    pub fn set_flush_supported(&mut self, on: bool) {
        self.raw().set_flush_supported(on);
    }

    /// Receive discards even if the underlying devices do not support them.
    pub fn set_discards_supported(&mut self, on: bool) {
        self.raw().set_discards_supported(on);
    }

    /// Splits bios so that none crosses a multiple of `sectors`.
    pub fn set_max_io_len(&mut self, sectors: u64) -> Result {
        // SAFETY: `ti` is the live target being constructed.
        to_result(unsafe { bindings::dm_set_target_max_io_len(self.target.as_raw(), sectors) })
    }
}

/// The callback of `iterate_devices` (C's `iterate_devices_callout_fn` with
/// its `data`).
pub struct DeviceCallout<'a> {
    ti: *mut bindings::dm_target,
    callout: unsafe extern "C" fn(
        *mut bindings::dm_target,
        *mut bindings::dm_dev,
        bindings::sector_t,
        bindings::sector_t,
        *mut c_void,
    ) -> c_int,
    data: *mut c_void,
    _p: PhantomData<&'a mut c_void>,
}

impl DeviceCallout<'_> {
    /// Reports `len` sectors of `dev` from `start` as used by the target.
    /// Returns the callout's result; non-zero means stop iterating.
    pub fn visit(&mut self, dev: &Device, start: u64, len: u64) -> i32 {
        // SAFETY: `callout` and `data` come from dm core for this call of
        // `iterate_devices` on the live `ti`; `dev` is one of `ti`'s devices.
        unsafe { (self.callout)(self.ti, dev.as_raw(), start, len, self.data) }
    }
}

/// The target instance of a constructed target `ti` of type `T`.
///
/// # Safety
///
/// `ti` must be a live target of type `T` whose constructor succeeded and
/// whose destructor has not run; the result must not outlive that.
pub(super) unsafe fn instance<'a, T: Operations>(ti: *mut bindings::dm_target) -> Pin<&'a T> {
    // SAFETY: Guaranteed by the caller.
    unsafe { Vtable::<T>::this(ti) }
}

/// Whether `T::PerBio` is kept in the clone's `bi_private` instead of room
/// that dm core reserves in front of every clone: it fits a pointer.
///
/// dm core leaves a clone's `bi_private` to the target (it is NULL when the
/// clone reaches `map`; C dm-clone and dm-cache use it the same way), and the
/// layers below never write the field of a bio they are given. This costs
/// nothing per bio, where per-bio room makes every clone of the device
/// larger and takes a call to `dm_per_bio_data()` for each access: 2-3% of
/// 4 KiB I/O by instruction count for clone (Documentation/bench.md). The
/// one other user of the field, [`super::completion`], saves and restores it,
/// and its `CompletionHook` is too large to be kept here (checked there).
pub(super) const fn per_bio_in_private<T: Operations>() -> bool {
    let size = core::mem::size_of::<T::PerBio>();
    size != 0
        && size <= core::mem::size_of::<*mut c_void>()
        && core::mem::align_of::<T::PerBio>() <= core::mem::align_of::<*mut c_void>()
}

/// Pointer to `T`'s per-bio data of `bio`.
pub(super) fn per_bio_data<T: Operations>(bio: *mut bindings::bio) -> *mut T::PerBio {
    if core::mem::size_of::<T::PerBio>() == 0 {
        return NonNull::dangling().as_ptr();
    }
    if per_bio_in_private::<T>() {
        // SAFETY: `bio` is a live dm clone of a target of type `T`; only the
        // field's address is taken. It fits `T::PerBio` (size and alignment
        // checked by `per_bio_in_private`).
        return unsafe { core::ptr::addr_of_mut!((*bio).bi_private) }.cast();
    }
    // SAFETY: `bio` is a dm clone of a target of type `T`, whose per-bio size
    // is `per_bio_size::<T>()` (set by the ctr trampoline).
    unsafe { bindings::dm_per_bio_data(bio, per_bio_size::<T>()).cast() }
}

/// Size dm core reserves for `T::PerBio`: none when it is kept in
/// `bi_private`, else rounded up so that the data, which dm places right
/// before 8-byte aligned structures, is itself aligned.
const fn per_bio_size<T: Operations>() -> usize {
    if per_bio_in_private::<T>() {
        return 0;
    }
    let size = core::mem::size_of::<T::PerBio>();
    (size + 7) & !7
}

/// The registration of target type `T` with dm core; unregisters on drop.
///
/// # Invariants
///
/// `tt` was registered with `dm_register_target()` and stays registered, at a
/// fixed address, until `self` is dropped.
pub struct Registration<T: Operations> {
    tt: Pin<KBox<Opaque<bindings::target_type>>>,
    _p: PhantomData<T>,
}

// SAFETY: After registration only dm core accesses the `target_type`, under its
// own lock; dropping the registration from another thread is fine.
unsafe impl<T: Operations> Send for Registration<T> {}
// SAFETY: `&Registration` gives no access to the `target_type`.
unsafe impl<T: Operations> Sync for Registration<T> {}

impl<T: Operations> Registration<T> {
    /// Registers `T` as target type `T::NAME` of `module`.
    pub fn new(module: &'static ThisModule) -> Result<Self> {
        const {
            assert!(
                !core::mem::needs_drop::<T::PerBio>(),
                "Operations::PerBio must not need dropping"
            );
            assert!(
                core::mem::align_of::<T::PerBio>() <= 8,
                "Operations::PerBio must not need more than 8-byte alignment"
            );
        };
        let tt = bindings::target_type {
            features: T::FEATURES,
            name: T::NAME.as_char_ptr(),
            module: module.as_ptr(),
            version: T::VERSION,
            ctr: Some(Vtable::<T>::ctr),
            dtr: Some(Vtable::<T>::dtr),
            map: Some(Vtable::<T>::map),
            end_io: if T::HAS_END_IO {
                Some(Vtable::<T>::end_io)
            } else {
                None
            },
            presuspend: if T::HAS_PRESUSPEND {
                Some(Vtable::<T>::presuspend)
            } else {
                None
            },
            presuspend_undo: if T::HAS_PRESUSPEND_UNDO {
                Some(Vtable::<T>::presuspend_undo)
            } else {
                None
            },
            postsuspend: if T::HAS_POSTSUSPEND {
                Some(Vtable::<T>::postsuspend)
            } else {
                None
            },
            preresume: if T::HAS_PRERESUME {
                Some(Vtable::<T>::preresume)
            } else {
                None
            },
            resume: if T::HAS_RESUME {
                Some(Vtable::<T>::resume)
            } else {
                None
            },
            status: if T::HAS_STATUS {
                Some(Vtable::<T>::status)
            } else {
                None
            },
            message: if T::HAS_MESSAGE {
                Some(Vtable::<T>::message)
            } else {
                None
            },
            iterate_devices: if T::HAS_ITERATE_DEVICES {
                Some(Vtable::<T>::iterate_devices)
            } else {
                None
            },
            io_hints: if T::HAS_IO_HINTS {
                Some(Vtable::<T>::io_hints)
            } else {
                None
            },
            ..Default::default()
        };
        let tt = KBox::pin(Opaque::new(tt), GFP_KERNEL)?;
        // SAFETY: `tt` is a fully initialised `target_type` at a fixed heap
        // address, kept until `drop` unregisters it.
        to_result(unsafe { bindings::dm_register_target(tt.get()) })?;
        // INVARIANT: registered just above.
        Ok(Self {
            tt,
            _p: PhantomData,
        })
    }
}

impl<T: Operations> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: Registered (type invariant). dm core refuses to unload a
        // module while a table uses its targets, so no target of this type
        // exists any more.
        unsafe { bindings::dm_unregister_target(self.tt.get()) };
    }
}

/// What the constructor trampoline stores in `ti->private`: the target
/// value, and what its destructor trampoline needs besides.
///
/// # Invariants
///
/// `anchor` is the target's anchor (from [`Anchor::new`]), finished only by
/// the destructor trampoline; `devs` are the devices the constructor opened.
#[pin_data]
struct Instance<T: Operations> {
    anchor: NonNull<Anchor>,
    devs: KVec<NonNull<bindings::dm_dev>>,
    #[pin]
    target: T,
}

// SAFETY: `anchor` and `devs` are only used by the destructor trampoline; the
// rest is `T`, which is `Send + Sync`.
unsafe impl<T: Operations> Send for Instance<T> {}
// SAFETY: As above.
unsafe impl<T: Operations> Sync for Instance<T> {}

/// The C entry points of target type `T`.
struct Vtable<T: Operations>(PhantomData<T>);

impl<T: Operations> Vtable<T> {
    /// # Safety
    ///
    /// `ti` must be a live target of type `T` whose constructor succeeded.
    #[inline]
    unsafe fn this<'a>(ti: *mut bindings::dm_target) -> Pin<&'a T> {
        // SAFETY: The ctr trampoline stored a `Pin<KBox<Instance<T>>>` in
        // `private`; it stays there until the dtr trampoline takes it back.
        let inst = unsafe { <Pin<KBox<Instance<T>>> as ForeignOwnable>::borrow((*ti).private) };
        // SAFETY: A field of a pinned value, never moved out.
        unsafe { inst.map_unchecked(|i| &i.target) }
    }

    /// # Safety
    ///
    /// Called by dm core: `argv` holds `argc` valid strings.
    unsafe extern "C" fn ctr(
        ti: *mut bindings::dm_target,
        argc: c_uint,
        argv: *mut *mut c_char,
    ) -> c_int {
        // SAFETY: dm core passes a live target being constructed.
        let target = unsafe { Target::from_raw(ti) };
        let argv: &[*mut c_char] = if argc == 0 || argv.is_null() {
            &[]
        } else {
            // SAFETY: dm core passes `argc` string pointers in `argv`.
            unsafe { core::slice::from_raw_parts(argv, argc as usize) }
        };
        let Some(ti_nn) = NonNull::new(ti) else {
            return EINVAL.to_errno();
        };
        let anchor = match Anchor::new(ti_nn) {
            Ok(a) => a,
            Err(e) => {
                target.set_error(c_str!("Cannot allocate memory"));
                return e.to_errno();
            }
        };
        let mut devs = KVec::new();
        let made = {
            // SAFETY: The strings live in the table line for the whole ctr.
            let mut args = unsafe { Args::for_ctr(argv, target) };
            let mut ctr = Ctr {
                target,
                anchor,
                devs: &mut devs,
            };
            ctr.raw().per_io_data_size = per_bio_size::<T>() as c_uint;
            T::ctr(&mut ctr, &mut args).and_then(|init| {
                KBox::pin_init(
                    try_pin_init!(Instance::<T> {
                        anchor,
                        devs: KVec::new(),
                        target <- init,
                    }? Error),
                    GFP_KERNEL,
                )
                .inspect_err(|_| target.set_error(c_str!("Cannot allocate memory")))
            })
        };
        match made {
            Ok(mut inst) => {
                // SAFETY: `devs` is not structurally pinned; nothing moves.
                unsafe { inst.as_mut().get_unchecked_mut() }.devs = devs;
                // INVARIANT: the anchor and devices of this target.
                // SAFETY: `ti` is ours to set up during the ctr.
                unsafe { (*ti).private = inst.into_foreign().cast_mut() };
                0
            }
            Err(e) => {
                // SAFETY: dm core constructs in process context (the table
                // load ioctl), no spinlock held; the token lives for this
                // call.
                let ctx = unsafe { Sleepable::new() };
                // SAFETY: The anchor and devices of this target, not stored
                // anywhere else; everything the constructor made is dropped.
                unsafe { Anchor::finish(anchor, devs, &ctx) };
                e.to_errno()
            }
        }
    }

    /// # Safety
    ///
    /// Called by dm core for a target whose ctr succeeded.
    unsafe extern "C" fn dtr(ti: *mut bindings::dm_target) {
        // SAFETY: `private` holds the `Pin<KBox<Instance<T>>>` stored by
        // `ctr`, taken back exactly once here.
        let mut inst =
            unsafe { <Pin<KBox<Instance<T>>> as ForeignOwnable>::from_foreign((*ti).private) };
        let anchor = inst.anchor;
        // SAFETY: dm core destroys a table in process context, with no lock
        // held but its own mutexes; the token lives for this call.
        let ctx = unsafe { Sleepable::new() };
        if T::HAS_DTR {
            // SAFETY: `ti` is live and constructed until this returns.
            inst.target.dtr(unsafe { Target::from_raw(ti) }, &ctx);
        }
        // SAFETY: `devs` is not structurally pinned; it is taken, not moved
        // out of the pinned value.
        let devs = core::mem::take(&mut unsafe { inst.as_mut().get_unchecked_mut() }.devs);
        // The target value first: its devices and handles go with it, or,
        // where it gave them to workers, when those are done.
        drop(inst);
        // SAFETY: The anchor and devices of this target, finished once.
        unsafe { Anchor::finish(anchor, devs, &ctx) };
    }

    /// # Safety
    ///
    /// Called by dm core with a clone bio for target `ti`.
    #[inline]
    unsafe extern "C" fn map(ti: *mut bindings::dm_target, bio: *mut bindings::bio) -> c_int {
        // SAFETY: Per-bio data of a new clone is ours to initialise.
        unsafe { per_bio_data::<T>(bio).write(T::PerBio::default()) };
        // SAFETY: `bio` is the clone being mapped for the constructed target
        // `ti` of type `T`, with initialised per-bio data; the `MapBio` is
        // only lent to this call of `map` (its brand is local to it).
        let bio = unsafe { MapBio::<T>::from_raw(bio, ti) };
        // SAFETY: `ti` is live and constructed.
        let (this, target) = unsafe { (Self::this(ti), Target::from_raw(ti)) };
        // Only `bio` could make a result other than "submitted", and dm core
        // acts on its own clone, which is `bio`.
        this.map(target, bio).code() as c_int
    }

    /// # Safety
    ///
    /// Called by dm core when a bio mapped by `ti` completes.
    unsafe extern "C" fn end_io(
        ti: *mut bindings::dm_target,
        bio: *mut bindings::bio,
        error: *mut bindings::blk_status_t,
    ) -> c_int {
        // SAFETY: The bio was mapped by `map` (so its per-bio data is set) and
        // is completing; the view lives for this call only.
        let bio = unsafe { EndIoBio::<T>::from_raw(bio) };
        // SAFETY: `error` is valid for reads and writes during the call.
        let mut status = BlkStatus::from_raw(unsafe { *error });
        // SAFETY: `ti` is live and constructed.
        let this = unsafe { Self::this(ti) };
        let r = this.end_io(bio, &mut status);
        // SAFETY: As above.
        unsafe { *error = status.raw() };
        (match r {
            EndIoResult::Done => bindings::DM_ENDIO_DONE,
            EndIoResult::Requeue => bindings::DM_ENDIO_REQUEUE,
        }) as c_int
    }

    /// # Safety
    ///
    /// Called by dm core for a constructed target.
    unsafe extern "C" fn presuspend(ti: *mut bindings::dm_target) {
        // SAFETY: dm core suspends and resumes in process context, under
        // its suspend mutex; the token lives for this call.
        let ctx = unsafe { Sleepable::new() };
        // SAFETY: `ti` is live and constructed.
        unsafe { Self::this(ti).presuspend(Target::from_raw(ti), &ctx) }
    }

    /// # Safety
    ///
    /// Called by dm core for a constructed target.
    unsafe extern "C" fn presuspend_undo(ti: *mut bindings::dm_target) {
        // SAFETY: dm core suspends and resumes in process context, under
        // its suspend mutex; the token lives for this call.
        let ctx = unsafe { Sleepable::new() };
        // SAFETY: `ti` is live and constructed.
        unsafe { Self::this(ti).presuspend_undo(Target::from_raw(ti), &ctx) }
    }

    /// # Safety
    ///
    /// Called by dm core for a constructed target.
    unsafe extern "C" fn postsuspend(ti: *mut bindings::dm_target) {
        // SAFETY: dm core suspends and resumes in process context, under
        // its suspend mutex; the token lives for this call.
        let ctx = unsafe { Sleepable::new() };
        // SAFETY: `ti` is live and constructed.
        unsafe { Self::this(ti).postsuspend(Target::from_raw(ti), &ctx) }
    }

    /// # Safety
    ///
    /// Called by dm core for a constructed target.
    unsafe extern "C" fn preresume(ti: *mut bindings::dm_target) -> c_int {
        // SAFETY: `ti` is live and constructed.
        let (this, target) = unsafe { (Self::this(ti), Target::from_raw(ti)) };
        // SAFETY: dm core resumes in process context, under its suspend
        // mutex; the token lives for this call.
        let ctx = unsafe { Sleepable::new() };
        from_result(|| this.preresume(target, &ctx).map(|()| 0))
    }

    /// # Safety
    ///
    /// Called by dm core for a constructed target.
    unsafe extern "C" fn resume(ti: *mut bindings::dm_target) {
        // SAFETY: dm core suspends and resumes in process context, under
        // its suspend mutex; the token lives for this call.
        let ctx = unsafe { Sleepable::new() };
        // SAFETY: `ti` is live and constructed.
        unsafe { Self::this(ti).resume(Target::from_raw(ti), &ctx) }
    }

    /// # Safety
    ///
    /// Called by dm core: `result` has room for `maxlen` bytes.
    unsafe extern "C" fn status(
        ti: *mut bindings::dm_target,
        kind: bindings::status_type_t,
        flags: c_uint,
        result: *mut c_char,
        maxlen: c_uint,
    ) {
        // SAFETY: dm core hands us `maxlen` writable bytes at `result`.
        let buf = unsafe { core::slice::from_raw_parts_mut(result.cast::<u8>(), maxlen as usize) };
        let mut out = StatusWriter::new(buf);
        let kind = match kind {
            bindings::status_type_t_STATUSTYPE_INFO => StatusType::Info,
            bindings::status_type_t_STATUSTYPE_TABLE => StatusType::Table,
            _ => StatusType::Ima,
        };
        // SAFETY: `ti` is live and constructed.
        let (this, target) = unsafe { (Self::this(ti), Target::from_raw(ti)) };
        // SAFETY: dm core asks for the status from an ioctl or a table load
        // (IMA): process context, at most an SRCU read lock of the table
        // held; the token lives for this call.
        let ctx = unsafe { Sleepable::new() };
        this.status(target, &ctx, kind, flags, &mut out);
    }

    /// # Safety
    ///
    /// Called by dm core: `argv` holds `argc` strings, `result` has room for
    /// `maxlen` bytes.
    unsafe extern "C" fn message(
        ti: *mut bindings::dm_target,
        argc: c_uint,
        argv: *mut *mut c_char,
        result: *mut c_char,
        maxlen: c_uint,
    ) -> c_int {
        let argv: &[*mut c_char] = if argc == 0 || argv.is_null() {
            &[]
        } else {
            // SAFETY: dm core passes `argc` string pointers in `argv`.
            unsafe { core::slice::from_raw_parts(argv, argc as usize) }
        };
        // SAFETY: The strings live for the whole call.
        let mut args = unsafe { Args::for_message(argv, T::NAME) };
        // SAFETY: dm core hands us `maxlen` writable bytes at `result`.
        let buf = unsafe { core::slice::from_raw_parts_mut(result.cast::<u8>(), maxlen as usize) };
        let mut out = StatusWriter::new(buf);
        // SAFETY: `ti` is live and constructed.
        let (this, target) = unsafe { (Self::this(ti), Target::from_raw(ti)) };
        // SAFETY: dm core passes messages from an ioctl: process context, at
        // most an SRCU read lock of the table held; the token lives for
        // this call.
        let ctx = unsafe { Sleepable::new() };
        from_result(|| {
            this.message(target, &ctx, &mut args, &mut out)?;
            // 1 tells dm-ioctl that `result` holds output for the caller.
            Ok(if out.is_empty() { 0 } else { 1 })
        })
    }

    /// # Safety
    ///
    /// Called by dm core with its callout and data.
    unsafe extern "C" fn iterate_devices(
        ti: *mut bindings::dm_target,
        callout: bindings::iterate_devices_callout_fn,
        data: *mut c_void,
    ) -> c_int {
        let Some(callout) = callout else {
            return 0;
        };
        let mut callout = DeviceCallout {
            ti,
            callout,
            data,
            _p: PhantomData,
        };
        // SAFETY: `ti` is live and constructed.
        let (this, target) = unsafe { (Self::this(ti), Target::from_raw(ti)) };
        this.iterate_devices(target, &mut callout)
    }

    /// # Safety
    ///
    /// Called by dm core with the limits being assembled, exclusively ours
    /// during the call.
    unsafe extern "C" fn io_hints(
        ti: *mut bindings::dm_target,
        limits: *mut bindings::queue_limits,
    ) {
        // SAFETY: As above.
        let limits = unsafe { QueueLimits::from_raw(limits) };
        // SAFETY: `ti` is live and constructed.
        let (this, target) = unsafe { (Self::this(ti), Target::from_raw(ti)) };
        this.io_hints(target, limits);
    }
}
