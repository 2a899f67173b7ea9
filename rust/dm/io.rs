// SPDX-License-Identifier: GPL-2.0

//! dm-io: synchronous and asynchronous I/O to regions of underlying devices.
//!
//! C header: [`include/linux/dm-io.h`](srctree/include/linux/dm-io.h)

use super::{bindings, error::from_err_ptr, Device};
use core::ptr::NonNull;
use kernel::{
    error::{code::*, to_result},
    prelude::*,
};

/// A dm-io client: the mempools dm-io needs to make progress under memory
/// pressure.
///
/// # Invariants
///
/// `client` is a live dm-io client owned by this value.
pub struct IoClient {
    client: NonNull<bindings::dm_io_client>,
}

// SAFETY: dm-io clients may be used from any thread.
unsafe impl Send for IoClient {}
// SAFETY: dm-io allocates per request from the client's mempools, which are
// thread-safe.
unsafe impl Sync for IoClient {}

impl IoClient {
    /// Creates a client (`dm_io_client_create()`).
    pub fn new() -> Result<Self> {
        // SAFETY: No preconditions.
        let c = from_err_ptr(unsafe { bindings::dm_io_client_create() })?;
        // INVARIANT: created and owned.
        Ok(Self {
            client: NonNull::new(c).ok_or(ENOMEM)?,
        })
    }

    /// Reads `buf.len()` bytes (a multiple of 512) from `sector` of `dev`
    /// into `buf`, waiting for the I/O. `buf` must be kmalloc'ed memory (a
    /// `KVec`), which dm-io addresses page by page.
    ///
    /// `EINVAL` for an empty buffer or a length that is not a multiple of 512.
    ///
    /// # Context
    ///
    /// Process context (sleeps): `_ctx`, the target of the calling hook,
    /// says so (no BH callback has one).
    pub fn read_sync(
        &self,
        _ctx: &super::Target,
        dev: &Device,
        sector: u64,
        buf: &mut KVec<u8>,
    ) -> Result {
        if buf.is_empty() || buf.len() % 512 != 0 {
            return Err(EINVAL);
        }
        super::might_sleep();
        let mut req = bindings::dm_io_request {
            bi_opf: bindings::req_op_REQ_OP_READ,
            mem: bindings::dm_io_memory {
                type_: bindings::dm_io_mem_type_DM_IO_KMEM,
                offset: 0,
                ptr: bindings::dm_io_memory__bindgen_ty_1 {
                    addr: buf.as_mut_ptr().cast(),
                },
            },
            notify: bindings::dm_io_notify {
                fn_: None,
                context: core::ptr::null_mut(),
            },
            client: self.client.as_ptr(),
        };
        let mut region = bindings::dm_io_region {
            bdev: dev.bdev(),
            sector,
            count: (buf.len() / 512) as u64,
        };
        // SAFETY: `req` describes `buf` (kmalloc'ed, valid for its length) and
        // a NULL notify function, so the call is synchronous and nothing is
        // used after it returns; `dev` keeps the block device open.
        to_result(unsafe { bindings::dm_io(&mut req, 1, &mut region, core::ptr::null_mut(), 0) })
    }
}

impl Drop for IoClient {
    fn drop(&mut self) {
        // SAFETY: Live and owned (invariant); no request is in flight since
        // every request is synchronous.
        unsafe { bindings::dm_io_client_destroy(self.client.as_ptr()) };
    }
}
