// SPDX-License-Identifier: GPL-2.0

//! TEST BUILD ONLY: `hold_rs`, a linear mapping whose destructor hands its
//! [`dm::Device`] to a work item on the system workqueue, which keeps using
//! the device (`flushes` cache flushes, table argument 3) after the target
//! value is gone. It exists so that a selftest can show the abstraction's
//! rule for device lifetimes at run time: the destructor trampoline waits
//! for the last handle before dm core frees the `dm_target` and the device
//! is put (on a KASAN kernel a use after free would be reported). Table:
//! `<device> <start sector> <flushes>`.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{workqueue::Running, MapBio, MapResult, Operations, Target};
use kernel::{
    c_str, new_work,
    prelude::*,
    sync::Arc,
    workqueue::{impl_has_work, Work, WorkItem},
};

const DM_MSG_PREFIX: &str = "hold_rs";

module_dm_target! {
    type: Hold,
    name: "dm_hold_rs",
    description: "TEST ONLY: a target whose device outlives it in a work item",
}

/// What the work item keeps after the target is gone.
#[pin_data]
struct Holder {
    dev: dm::Device,
    flushes: u32,
    #[pin]
    work: Work<Holder>,
}

impl_has_work! {
    impl HasWork<Self> for Holder { self.work }
}

impl WorkItem for Holder {
    type Pointer = Running<Holder>;

    fn run(this: Running<Holder>) {
        let ctx = this.sleepable();
        let mut failed = 0;
        for _ in 0..this.flushes {
            if this.dev.issue_flush(&ctx).is_err() {
                failed += 1;
            }
        }
        dm_info!(
            "{} flushes of {} after the destructor ({} failed); releasing it",
            this.flushes,
            this.dev.name(),
            failed
        );
        // `this`, and with it the last handle of the device, drops here.
    }
}

struct Hold {
    dev: dm::Device,
    start: u64,
    holder: Arc<Holder>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        dm_info!("destructor: the device goes on in a work item");
        let _ = dm::workqueue::enqueue_system(self.holder.clone());
    }
}

#[vtable]
impl Operations for Hold {
    const NAME: &'static CStr = c_str!("hold_rs");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = ();

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        args.expect_count(3, c_str!("Invalid argument count"))?;
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let start = args.next_u64(c_str!("Invalid device sector"))?;
        let flushes = args.next_u32(c_str!("Invalid flush count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        let held = dev.clone();
        let holder = Arc::pin_init(
            pin_init!(Holder {
                dev: held,
                flushes,
                work <- new_work!("Holder::work"),
            }),
            GFP_KERNEL,
        )?;
        target.set_num_flush_bios(1);
        Ok(Hold { dev, start, holder })
    }

    fn map<'m>(&self, target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        if bio.sectors() != 0 {
            bio.set_sector(self.start + target.offset(bio.sector()));
        }
        bio.remap()
    }
}
