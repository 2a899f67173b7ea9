// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0277\]: .\*mut \(\). cannot be (sent|shared) between threads safely
// allow-error: ^error(\[E[0-9]+\])?: (lifetime may not live long enough|borrowed data escapes)
// expect-output: Sleepable

//! A `Sleepable` token stays on the thread that got it: the constructor
//! cannot hand its token to work that runs elsewhere, later.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{mempool::Mempool, MapBio, MapResult, Operations, Target};
use kernel::{c_str, prelude::*, workqueue};

module_dm_target! {
    type: Case,
    name: "cf_sleepable_sent",
    description: "compile-fail case",
}

struct Case {
    dev: dm::Device,
    pool: Mempool<u64>,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_sleepable_sent");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = ();

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        let pool = Mempool::new(4)?;
        let ctx = target.sleepable();
        let theirs = pool.clone();
        let later = move || {
            let _n = theirs.alloc(&ctx, 1);
        };
        let _ = workqueue::system().try_spawn(GFP_KERNEL, later); //~ ERROR
        Ok(Case { dev, pool })
    }

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        bio.remap()
    }
}
