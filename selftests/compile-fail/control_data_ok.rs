// SPDX-License-Identifier: GPL-2.0
// expect-build
// cfg: dm_persistent_data
// cfg: dm_bufio

//! Compile-fail control for the data cases: a correct target that reads and
//! writes completed bio data by copies (`BioData`), and correct uses of
//! persistent-data write locks (one at a time) and of a bufio client
//! (`reset` once no buffer is held; `get_bh` with the BH token). It must build: otherwise a case
//! failing to build shows nothing.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");
use dm::{
    bufio::BufioClient,
    completion::CompletedBio,
    pdata::{BlockValidator, TransactionManager, Validator},
    BlkStatus,
};

cf_target! {
    name: "cf_control_data_ok",
    kind: completion,
}

impl Case {
    fn completed(&self, bio: &mut CompletedBio<'_>) -> BlkStatus {
        let mut block = [0u8; 512];
        while bio.remaining() >= 512 {
            let r = bio.next_block(512, |data| -> Result {
                data.copy_to_slice(&mut block)?;
                block[0] ^= 1;
                data.copy_from_slice(&block)?;
                data.fill(0);
                Ok(())
            });
            if !matches!(r, Ok(Ok(()))) {
                return BlkStatus::IOERR;
            }
        }
        BlkStatus::OK
    }
}

/// Write-locks block 1 twice, one lock after the other.
pub fn pdata_ok<V: BlockValidator>(
    tm: &mut TransactionManager,
    v: &'static Validator<V>,
) -> Result {
    let (first, _) = tm.shadow_block(1, v)?;
    drop(first);
    let (second, _) = tm.shadow_block(1, v)?;
    drop(second);
    Ok(())
}

/// Reads a block, and resets the client once the buffer is given back
/// (in a hook: both need its `Target`).
pub fn bufio_ok(client: &mut BufioClient, target: &Target) -> Result {
    let buf = client.read(target, 0)?;
    let _first = buf.data().first().copied();
    drop(buf);
    let _ = client.reset(target);
    Ok(())
}

/// A cached block looked up in the BH workqueue, with the token.
pub fn bufio_bh_ok(client: &BufioClient, bh: &dm::Bh<'_>) -> bool {
    client
        .get_bh(bh, 0)
        .is_some_and(|b| b.data().first().is_some())
}
