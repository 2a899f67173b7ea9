// SPDX-License-Identifier: GPL-2.0

//! The metadata space map (reference counts of metadata blocks), created
//! and owned by the [`TransactionManager`].
//!
//! C header: [`drivers/md/persistent-data/dm-space-map.h`](srctree/drivers/md/persistent-data/dm-space-map.h)

use super::{bindings, might_sleep, BlockNr, TransactionManager};
use kernel::{
    error::{code::*, to_result},
    prelude::*,
};

impl TransactionManager {
    /// Size of the space map root to store in the superblock.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn sm_root_size(&self) -> Result<usize> {
        might_sleep();
        let mut n = 0usize;
        // SAFETY: `sm` is live, `n` a valid out-pointer.
        to_result(unsafe { bindings::rdm_dm_sm_root_size(self.sm_raw(), &mut n) })?;
        Ok(n)
    }

    /// Copies the space map root into `out` (at least [`Self::sm_root_size`]).
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn copy_sm_root(&self, out: &mut [u8]) -> Result {
        let n = self.sm_root_size()?;
        if out.len() < n {
            return Err(EINVAL);
        }
        // SAFETY: `sm` is live; `out` has room for `n` bytes.
        to_result(unsafe {
            bindings::rdm_dm_sm_copy_root(self.sm_raw(), out.as_mut_ptr().cast(), n)
        })
    }

    /// Number of free blocks in the space map.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn nr_free(&self) -> Result<BlockNr> {
        might_sleep();
        let mut n = 0;
        // SAFETY: `sm` is live.
        to_result(unsafe { bindings::rdm_dm_sm_get_nr_free(self.sm_raw(), &mut n) })?;
        Ok(n)
    }

    /// Number of blocks the space map covers.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn nr_blocks(&self) -> Result<BlockNr> {
        might_sleep();
        let mut n = 0;
        // SAFETY: `sm` is live.
        to_result(unsafe { bindings::rdm_dm_sm_get_nr_blocks(self.sm_raw(), &mut n) })?;
        Ok(n)
    }

    /// Takes a reference on block `b` in the space map.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn sm_inc(&mut self, b: BlockNr) -> Result {
        might_sleep();
        // SAFETY: `sm` is live; `&mut self`: no `Block` is alive.
        to_result(unsafe { bindings::rdm_dm_sm_inc_block(self.sm_raw(), b) })
    }

    /// Drops a reference on block `b` in the space map.
    ///
    /// # Context
    ///
    /// May sleep.
    pub fn sm_dec(&mut self, b: BlockNr) -> Result {
        might_sleep();
        // SAFETY: `sm` is live; `&mut self`: no `Block` is alive.
        to_result(unsafe { bindings::rdm_dm_sm_dec_block(self.sm_raw(), b) })
    }
}
