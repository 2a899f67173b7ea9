// SPDX-License-Identifier: GPL-2.0

//! Queue limits a target may adjust in its `io_hints` hook.

use super::bindings;
use kernel::types::Opaque;

/// The `struct queue_limits` of the mapped device being assembled.
///
/// # Invariants
///
/// Only handed out as `&mut` by the `io_hints` trampoline, which has exclusive
/// access to the limits for the duration of the call.
#[repr(transparent)]
pub struct QueueLimits(Opaque<bindings::queue_limits>);

impl QueueLimits {
    /// # Safety
    ///
    /// `ptr` must be valid and exclusively accessible for `'a`.
    pub(super) unsafe fn from_raw<'a>(ptr: *mut bindings::queue_limits) -> &'a mut Self {
        // SAFETY: `QueueLimits` is `repr(transparent)` over the C struct, and
        // the caller guarantees validity and exclusivity for `'a`.
        unsafe { &mut *ptr.cast() }
    }

    fn raw(&mut self) -> &mut bindings::queue_limits {
        // SAFETY: `&mut self` is exclusive (type invariant), the struct is
        // initialised by dm core.
        unsafe { &mut *self.0.get() }
    }

    /// Logical block size in bytes.
    pub fn logical_block_size(&mut self) -> u32 {
        self.raw().logical_block_size
    }

    /// Raises the logical block size to at least `bytes`.
    pub fn raise_logical_block_size(&mut self, bytes: u32) {
        let l = self.raw();
        l.logical_block_size = l.logical_block_size.max(bytes);
    }

    /// Raises the physical block size to at least `bytes`.
    pub fn raise_physical_block_size(&mut self, bytes: u32) {
        let l = self.raw();
        l.physical_block_size = l.physical_block_size.max(bytes);
    }

    /// Raises the minimum I/O size to at least `bytes`.
    pub fn raise_io_min(&mut self, bytes: u32) {
        let l = self.raw();
        l.io_min = l.io_min.max(bytes);
    }

    /// Optimal I/O size in bytes.
    pub fn io_opt(&mut self) -> u32 {
        self.raw().io_opt
    }

    /// Sets the minimum I/O size in bytes.
    pub fn set_io_min(&mut self, bytes: u32) {
        self.raw().io_min = bytes;
    }

    /// Sets the optimal I/O size in bytes.
    pub fn set_io_opt(&mut self, bytes: u32) {
        self.raw().io_opt = bytes;
    }

    /// Sets the DMA alignment mask.
    pub fn set_dma_alignment(&mut self, mask: u32) {
        self.raw().dma_alignment = mask;
    }

    /// Sets the discard granularity in bytes.
    pub fn set_discard_granularity(&mut self, bytes: u32) {
        self.raw().discard_granularity = bytes;
    }

    /// Sets the maximum discard size in sectors.
    pub fn set_max_hw_discard_sectors(&mut self, sectors: u32) {
        self.raw().max_hw_discard_sectors = sectors;
    }

    /// Sets the discard alignment in bytes.
    pub fn set_discard_alignment(&mut self, bytes: u32) {
        self.raw().discard_alignment = bytes;
    }

    /// Sets the maximum number of discard segments.
    pub fn set_max_discard_segments(&mut self, n: u16) {
        self.raw().max_discard_segments = n;
    }
}
