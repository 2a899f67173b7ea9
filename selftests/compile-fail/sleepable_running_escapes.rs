// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0277\]: .\*mut \(\). cannot be sent between threads safely
// expect-output: Running<Core>

//! A worker's `Running` lends the `Sleepable` token for the length of its
//! run: it cannot be handed to the kernel's `Queue::enqueue`, whose work
//! may run elsewhere (another queue, another thread), with it.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{workqueue::Running, MapBio, MapResult, Operations, Target};
use kernel::{
    c_str, new_work,
    prelude::*,
    sync::Arc,
    workqueue::{self, impl_has_work, Work, WorkItem},
};

module_dm_target! {
    type: Case,
    name: "cf_sleepable_running_escapes",
    description: "compile-fail case",
}

#[pin_data]
struct Core {
    #[pin]
    work: Work<Core>,
}

impl_has_work! {
    impl HasWork<Self> for Core { self.work }
}

impl WorkItem for Core {
    type Pointer = Running<Core>;

    fn run(this: Running<Core>) {
        let _ = workqueue::system().enqueue(this); //~ ERROR
    }
}

struct Case {
    dev: dm::Device,
    _core: Arc<Core>,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_sleepable_running_escapes");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = ();

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        let core = Arc::pin_init(
            pin_init!(Core {
                work <- new_work!("Core::work"),
            }),
            GFP_KERNEL,
        )?;
        Ok(Case { dev, _core: core })
    }

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        bio.remap()
    }
}
