// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0499\]: cannot borrow .\*tm. as mutable more than once at a time
// cfg: dm_persistent_data

//! A write-locked persistent-data block borrows its transaction manager
//! mutably: two write locks at once (of one block: a deadlock in C) do not
//! compile.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{
    pdata::{BlockValidator, TransactionManager, Validator},
    MapBio, MapResult, Operations, Target,
};
use kernel::{c_str, prelude::*};

module_dm_target! {
    type: Case,
    name: "cf_pdata_two_write_locks",
    description: "compile-fail case",
}

struct Case {
    dev: dm::Device,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_pdata_two_write_locks");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = ();

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        Ok(Case { dev })
    }

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        bio.remap()
    }
}

/// Write-locks block 1 twice at once.
pub fn misuse<V: BlockValidator>(tm: &mut TransactionManager, v: &'static Validator<V>) -> Result {
    let (first, _) = tm.shadow_block(1, v)?;
    let (second, _) = tm.shadow_block(1, v)?; //~ ERROR
    drop(second);
    drop(first);
    Ok(())
}
