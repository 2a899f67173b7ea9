// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0308\]: mismatched types
// expect-output: expected .&mut EndIoBio<'_, Case>., found .&mut DmBio<Case>.

//! `end_io` sees the completing bio through a view (`EndIoBio`), which cannot
//! be swapped with a bio the target owns (`DmBio`): dm core would complete
//! the wrong bio.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");
use dm::{BlkStatus, EndIoBio, EndIoResult};

cf_target! {
    name: "cf_end_io_swap_kept",
    kind: kept,

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        let kept = bio.keep();
        self.kept.with(|list| list.push(kept));
        MapResult::submitted()
    }

    fn end_io(&self, mut bio: EndIoBio<'_, Self>, _status: &mut BlkStatus) -> EndIoResult {
        if let Some(mut kept) = self.kept.with(|list| list.pop()) {
            core::mem::swap(&mut bio, &mut kept); //~ ERROR
            kept.submit();
        }
        EndIoResult::Done
    }
}
