// SPDX-License-Identifier: GPL-2.0

//! Forward error correction in a build against a kernel without the
//! Reed-Solomon decoder (`CONFIG_REED_SOLOMON_DEC8`, which C's
//! `CONFIG_DM_VERITY_FEC` selects): the API of `fec.rs` with no FEC behind
//! it, as C's `dm-verity-fec.h` without `CONFIG_DM_VERITY_FEC`. The FEC
//! options are not recognized (`table::parse_options` without `fec`), so no
//! target has a [`Fec`]: the type cannot be made.

use crate::{
    dm::{hash::MAX_DIGEST_SIZE, mempool::PoolBuffer, Device, Target},
    geometry::FecGeometry,
    verify::{BlockType, IoState},
    Verity,
};
use core::convert::Infallible;
use kernel::{error::code::*, prelude::*};

/// FEC of one target: never made in this build.
pub(crate) struct Fec {
    pub(crate) geo: FecGeometry,
    pub(crate) dev: Device,
    never: Infallible,
}

/// Why [`Fec::new`] failed: C's reason, and the error.
pub(crate) type CtrError = (&'static core::ffi::CStr, Error);

impl Fec {
    /// Not reached (the options that ask for FEC are refused first).
    pub(crate) fn new(
        _geo: FecGeometry,
        _dev: Device,
        _data_dev: &Device,
        _hash_dev_blocks: u64,
        _hash_start: u64,
        _data_blocks: u64,
    ) -> Result<Self, CtrError> {
        Err((c"Unrecognized verity feature request", EINVAL))
    }

    pub(crate) fn fixed_digest(&self, _block: u64, _offset: usize, _out: &mut [u8]) -> bool {
        match self.never {}
    }

    pub(crate) fn remember_fixed(&self, _block: u64, _data: &[u8]) {
        match self.never {}
    }
}

/// `verity_fec_decode()` without FEC: `EOPNOTSUPP`.
pub(crate) fn decode(
    _v: &Verity,
    _target: &Target,
    _ctx: &crate::dm::Sleepable<'_>,
    _io: &mut IoState,
    _kind: BlockType,
    _block: u64,
    _want: &[u8; MAX_DIGEST_SIZE],
) -> Result<PoolBuffer> {
    Err(Error::from_errno(-(kernel::bindings::EOPNOTSUPP as i32)))
}
