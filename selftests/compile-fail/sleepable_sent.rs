// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0277\]: .\*mut \(\). cannot be (sent|shared) between threads safely
// allow-error: ^error(\[E[0-9]+\])?: (lifetime may not live long enough|borrowed data escapes)
// expect-output: Sleepable

//! A `Sleepable` token stays on the thread that got it: the constructor
//! cannot hand its token to work that runs elsewhere, later.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");
use dm::mempool::Mempool;
use kernel::workqueue;

cf_target! {
    name: "cf_sleepable_sent",
    type: Case,
}

struct Case {
    dev: dm::Device,
}

impl Case {
    fn new(target: &mut dm::Ctr<'_>, dev: dm::Device) -> Result<impl PinInit<Self, Error>> {
        let pool = Mempool::<u64>::new(4)?;
        let ctx = target.sleepable();
        let later = move || {
            let _n = pool.alloc(&ctx, 1);
        };
        let _ = workqueue::system().try_spawn(GFP_KERNEL, later); //~ ERROR
        Ok(Case { dev })
    }
}
