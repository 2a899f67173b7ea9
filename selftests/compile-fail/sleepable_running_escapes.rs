// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0277\]: .\*mut \(\). cannot be sent between threads safely
// expect-output: Running<Core>

//! A worker's `Running` lends the `Sleepable` token for the length of its
//! run: it cannot be handed to the kernel's `Queue::enqueue`, whose work
//! may run elsewhere (another queue, another thread), with it.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");
use dm::workqueue::Running;
use kernel::workqueue::{self, WorkItem};

cf_target! {
    name: "cf_sleepable_running_escapes",
    kind: worker,
}

impl WorkItem for Core {
    type Pointer = Running<Core>;

    fn run(this: Running<Core>) {
        let _ = workqueue::system().enqueue(this); //~ ERROR
    }
}
