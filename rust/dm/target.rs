// SPDX-License-Identifier: GPL-2.0

//! Target types: the [`Operations`] a target implements, its registration with
//! dm core, and the C trampolines between them.
//!
//! C header: [`include/linux/device-mapper.h`](srctree/include/linux/device-mapper.h)

use super::{bindings, Args, BlkStatus, Device, DmBio, QueueLimits, StatusWriter};
use core::{marker::PhantomData, mem::ManuallyDrop, ptr::NonNull};
use kernel::{
    error::{from_result, to_result},
    ffi::{c_char, c_int, c_uint, c_void},
    prelude::*,
    str::CStr,
    types::{ForeignOwnable, Opaque},
};

/// What `map` did with a bio.
pub enum MapResult<T: Operations> {
    /// The bio was remapped (device and sector set): dm core submits it.
    Remapped(DmBio<T>),
    /// The target kept the bio and will submit or end it itself.
    Submitted,
    /// Fail the bio with an I/O error.
    Kill(DmBio<T>),
    /// Push the bio back to dm core to be mapped again (only while suspending
    /// with `noflush`).
    Requeue(DmBio<T>),
    /// Like [`MapResult::Requeue`], after a delay.
    DelayRequeue(DmBio<T>),
}

/// What `end_io` decided about a completed bio.
pub enum EndIoResult {
    /// Completion goes on to the submitter.
    Done,
    /// Push the bio back to be mapped again.
    Requeue,
    /// Like [`EndIoResult::Requeue`], after a delay.
    DelayRequeue,
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
/// `map` and `end_io` run concurrently on many CPUs and in atomic context:
/// they get `&self`, and shared mutable state goes behind the kernel's
/// synchronisation types.
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

    /// Constructs a target from its table arguments. On failure, report the
    /// reason with [`Args::fail`] (or an `Args` accessor); every resource
    /// acquired so far is released by dropping it.
    fn ctr(target: &mut Ctr<'_>, args: &mut Args<'_>) -> Result<Pin<KBox<Self>>>;

    /// Maps a bio. `target` dereferences to the [`Target`] and can shorten
    /// `bio` ([`Mapping::accept_partial`]).
    fn map(&self, target: &Mapping<'_>, bio: DmBio<Self>) -> MapResult<Self>;

    /// Sees a mapped bio complete; may change its status.
    fn end_io(
        &self,
        _target: &Target,
        _bio: &mut DmBio<Self>,
        _status: &mut BlkStatus,
    ) -> EndIoResult {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called before the device is suspended.
    fn presuspend(&self, _target: &Target) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Undoes `presuspend` when the suspend is cancelled.
    fn presuspend_undo(&self, _target: &Target) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called once the device is suspended and I/O has drained.
    fn postsuspend(&self, _target: &Target) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called before the table becomes live; an error cancels the resume.
    fn preresume(&self, _target: &Target) -> Result {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called once the table is live.
    fn resume(&self, _target: &Target) {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Writes the status or the table line. `flags` may hold [`STATUS_NOFLUSH`].
    fn status(
        &self,
        _target: &Target,
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

/// The target as `map` sees it: the [`Target`] (it dereferences to it), and
/// what only `map` may do to the bio it maps.
///
/// # Invariants
///
/// `bio` is the clone that dm core is mapping in the `map` call this value
/// was made for (so `dm_accept_partial_bio()` may shorten it), and the value
/// does not outlive that call (it is only lent to [`Operations::map`]).
/// [`Mapping::accept_partial`] recognises that bio by its address: a target
/// that ends the bio it maps and, in the same call, obtains another bio that
/// happens to reuse the address, must not pass it (none of ours ends a bio
/// and takes another in one `map`).
pub struct Mapping<'a> {
    target: &'a Target,
    bio: *mut bindings::bio,
}

impl Mapping<'_> {
    /// Accepts only the first `sectors` of `bio`, the bio being mapped; dm
    /// core sends the rest to the target in another bio, after this one
    /// (`dm_accept_partial_bio()`). `EINVAL`, and `bio` unchanged, for any
    /// other bio, for an operation other than a read or a write, for a zoned
    /// device, and for no sectors or more than the bio has.
    pub fn accept_partial<T: Operations>(&self, bio: &mut DmBio<T>, sectors: u32) -> Result {
        if bio.as_raw() != self.bio {
            return Err(EINVAL);
        }
        // SAFETY: `bio` is the clone being mapped in this `map` call
        // (invariants, and checked above), so dm core's length for it is
        // live; the helper checks the rest of `dm_accept_partial_bio()`'s
        // conditions.
        to_result(unsafe { bindings::rdm_accept_partial_bio(bio.as_raw(), sectors) })
    }
}

impl core::ops::Deref for Mapping<'_> {
    type Target = Target;

    fn deref(&self) -> &Target {
        self.target
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
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::dm_target) -> &'a Self {
        // SAFETY: `Target` is `repr(transparent)` over `Opaque<dm_target>`;
        // the caller guarantees liveness.
        unsafe { &*ptr.cast() }
    }

    pub(crate) fn as_raw(&self) -> *mut bindings::dm_target {
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
    pub fn table_event(&self) {
        // SAFETY: `table` is live with the target.
        unsafe { bindings::dm_table_event((*self.as_raw()).table) };
    }

    /// A handle for table events and the device name from contexts that have
    /// no `&Target` (workers, completion callbacks).
    pub fn handle(&self) -> TargetHandle {
        // INVARIANT: see `TargetHandle`: handed to the target instance, which
        // dm core destroys before the `dm_target`.
        TargetHandle {
            ti: NonNull::from(&self.0).cast(),
        }
    }

    /// Sets the reason reported for a failing constructor.
    pub(crate) fn set_error(&self, reason: &'static CStr) {
        // SAFETY: Only constructors report errors, and dm core does not read
        // `error` concurrently with the ctr. dm core never writes through it.
        unsafe { (*self.as_raw()).error = reason.as_char_ptr().cast_mut() };
    }
}

/// A target's handle for its own workers: table events and the device name.
///
/// # Invariants
///
/// `ti` is the `dm_target` of a target instance that keeps this handle: the
/// instance (and whatever it shares the handle with) must be gone or idle
/// before its destructor returns, as for [`Device`]; dm core frees the
/// `dm_target` only after that.
#[derive(Clone, Copy)]
pub struct TargetHandle {
    ti: NonNull<bindings::dm_target>,
}

// SAFETY: `dm_table_event()` and `dm_table_device_name()` may be called from
// any thread.
unsafe impl Send for TargetHandle {}
// SAFETY: As above.
unsafe impl Sync for TargetHandle {}

impl TargetHandle {
    fn target(&self) -> &Target {
        // SAFETY: `ti` is live while the handle is used (invariant).
        unsafe { Target::from_raw(self.ti.as_ptr()) }
    }

    /// Name of the mapped device (`dm_table_device_name()`, `major:minor`).
    pub fn device_name(&self) -> &CStr {
        self.target().device_name()
    }

    /// Signals a table event to userspace (`dm_table_event()`).
    pub fn table_event(&self) {
        self.target().table_event()
    }
}

/// The target being constructed: configuration that only the constructor
/// may change, and the devices it opens.
pub struct Ctr<'a> {
    target: &'a Target,
}

impl core::ops::Deref for Ctr<'_> {
    type Target = Target;
    fn deref(&self) -> &Target {
        self.target
    }
}

impl Ctr<'_> {
    fn raw(&mut self) -> &mut bindings::dm_target {
        // SAFETY: dm core gives the constructor exclusive use of the
        // `dm_target` until it returns; `&mut self` is that exclusivity.
        unsafe { &mut *self.target.as_raw() }
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
        match (NonNull::new(ti), NonNull::new(dev)) {
            // SAFETY: `dev` was just returned by `dm_get_device(ti)`, and the
            // only place a `Device` can be kept is the target instance, which
            // dies before `ti` (see `Device`'s invariants).
            (Some(ti), Some(dev)) => Ok(unsafe { Device::from_raw(ti, dev) }),
            _ => {
                self.target.set_error(reason);
                Err(EINVAL)
            }
        }
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
pub(crate) unsafe fn instance<'a, T: Operations>(ti: *mut bindings::dm_target) -> Pin<&'a T> {
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
pub(crate) const fn per_bio_in_private<T: Operations>() -> bool {
    let size = core::mem::size_of::<T::PerBio>();
    size != 0
        && size <= core::mem::size_of::<*mut c_void>()
        && core::mem::align_of::<T::PerBio>() <= core::mem::align_of::<*mut c_void>()
}

/// Pointer to `T`'s per-bio data of `bio`.
pub(crate) fn per_bio_data<T: Operations>(bio: *mut bindings::bio) -> *mut T::PerBio {
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

/// The C entry points of target type `T`.
struct Vtable<T: Operations>(PhantomData<T>);

impl<T: Operations> Vtable<T> {
    /// # Safety
    ///
    /// `ti` must be a live target of type `T` whose constructor succeeded.
    unsafe fn this<'a>(ti: *mut bindings::dm_target) -> Pin<&'a T> {
        // SAFETY: The ctr trampoline stored a `Pin<KBox<T>>` in `private`; it
        // stays there until the dtr trampoline takes it back.
        unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow((*ti).private) }
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
        // SAFETY: The strings live in the table line for the whole ctr.
        let mut args = unsafe { Args::for_ctr(argv, target) };
        let mut ctr = Ctr { target };
        ctr.raw().per_io_data_size = per_bio_size::<T>() as c_uint;
        from_result(|| {
            let this = T::ctr(&mut ctr, &mut args)?;
            ctr.raw().private = this.into_foreign().cast_mut();
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by dm core for a target whose ctr succeeded.
    unsafe extern "C" fn dtr(ti: *mut bindings::dm_target) {
        // SAFETY: `private` holds the `Pin<KBox<T>>` stored by `ctr`, taken
        // back exactly once here.
        drop(unsafe { <Pin<KBox<T>> as ForeignOwnable>::from_foreign((*ti).private) });
    }

    /// # Safety
    ///
    /// Called by dm core with a clone bio for target `ti`.
    unsafe extern "C" fn map(ti: *mut bindings::dm_target, bio: *mut bindings::bio) -> c_int {
        // SAFETY: Per-bio data of a new clone is ours to initialise.
        unsafe { per_bio_data::<T>(bio).write(T::PerBio::default()) };
        // SAFETY: `bio` is a clone for a target of type `T`, now with
        // initialised per-bio data, handed to the target.
        let bio = unsafe { DmBio::<T>::from_raw(bio) };
        // SAFETY: `ti` is live and constructed.
        let (this, target) = unsafe { (Self::this(ti), Target::from_raw(ti)) };
        // INVARIANT: `bio` is the clone being mapped; the value is only lent
        // to this call of `map`.
        let mapping = Mapping {
            target,
            bio: bio.as_raw(),
        };
        let (code, bio) = match this.map(&mapping, bio) {
            MapResult::Remapped(b) => (bindings::DM_MAPIO_REMAPPED, Some(b)),
            MapResult::Submitted => (bindings::DM_MAPIO_SUBMITTED, None),
            MapResult::Kill(b) => (bindings::DM_MAPIO_KILL, Some(b)),
            MapResult::Requeue(b) => (bindings::DM_MAPIO_REQUEUE, Some(b)),
            MapResult::DelayRequeue(b) => (bindings::DM_MAPIO_DELAY_REQUEUE, Some(b)),
        };
        if let Some(b) = bio {
            // dm core takes the bio back.
            b.into_raw();
        }
        code as c_int
    }

    /// # Safety
    ///
    /// Called by dm core when a bio mapped by `ti` completes.
    unsafe extern "C" fn end_io(
        ti: *mut bindings::dm_target,
        bio: *mut bindings::bio,
        error: *mut bindings::blk_status_t,
    ) -> c_int {
        // SAFETY: The bio was mapped by `map` (so its per-bio data is set);
        // dm core keeps ownership, hence `ManuallyDrop`.
        let mut bio = ManuallyDrop::new(unsafe { DmBio::<T>::from_raw(bio) });
        // SAFETY: `error` is valid for reads and writes during the call.
        let mut status = BlkStatus::from_raw(unsafe { *error });
        // SAFETY: `ti` is live and constructed.
        let (this, target) = unsafe { (Self::this(ti), Target::from_raw(ti)) };
        let r = this.end_io(target, &mut bio, &mut status);
        // SAFETY: As above.
        unsafe { *error = status.raw() };
        (match r {
            EndIoResult::Done => bindings::DM_ENDIO_DONE,
            EndIoResult::Requeue => bindings::DM_ENDIO_REQUEUE,
            EndIoResult::DelayRequeue => bindings::DM_ENDIO_DELAY_REQUEUE,
        }) as c_int
    }

    /// # Safety
    ///
    /// Called by dm core for a constructed target.
    unsafe extern "C" fn presuspend(ti: *mut bindings::dm_target) {
        // SAFETY: `ti` is live and constructed.
        unsafe { Self::this(ti).presuspend(Target::from_raw(ti)) }
    }

    /// # Safety
    ///
    /// Called by dm core for a constructed target.
    unsafe extern "C" fn presuspend_undo(ti: *mut bindings::dm_target) {
        // SAFETY: `ti` is live and constructed.
        unsafe { Self::this(ti).presuspend_undo(Target::from_raw(ti)) }
    }

    /// # Safety
    ///
    /// Called by dm core for a constructed target.
    unsafe extern "C" fn postsuspend(ti: *mut bindings::dm_target) {
        // SAFETY: `ti` is live and constructed.
        unsafe { Self::this(ti).postsuspend(Target::from_raw(ti)) }
    }

    /// # Safety
    ///
    /// Called by dm core for a constructed target.
    unsafe extern "C" fn preresume(ti: *mut bindings::dm_target) -> c_int {
        // SAFETY: `ti` is live and constructed.
        let (this, target) = unsafe { (Self::this(ti), Target::from_raw(ti)) };
        from_result(|| this.preresume(target).map(|()| 0))
    }

    /// # Safety
    ///
    /// Called by dm core for a constructed target.
    unsafe extern "C" fn resume(ti: *mut bindings::dm_target) {
        // SAFETY: `ti` is live and constructed.
        unsafe { Self::this(ti).resume(Target::from_raw(ti)) }
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
        this.status(target, kind, flags, &mut out);
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
        from_result(|| {
            this.message(target, &mut args, &mut out)?;
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
