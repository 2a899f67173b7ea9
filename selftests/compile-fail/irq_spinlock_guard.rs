// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0599\]: no method named .lock. found for struct .(dm::sync::)?IrqSpinLock

//! An `IrqSpinLock` gives no guard (guards of two such locks dropped out of
//! order would enable interrupts under the inner lock): only `with`.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{sync::IrqSpinLock, BioList, MapBio, MapResult, Operations, Target};
use kernel::{c_str, prelude::*};

module_dm_target! {
    type: Case,
    name: "cf_irq_spinlock_guard",
    description: "compile-fail case",
}

#[pin_data]
struct Case {
    dev: dm::Device,
    #[pin]
    kept: IrqSpinLock<BioList<Case>>,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_irq_spinlock_guard");
    const VERSION: [u32; 3] = [1, 0, 0];

    type PerBio = ();

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;
        Ok(try_pin_init!(Case {
            dev,
            kept <- new_irq_spinlock!(BioList::new()),
        }))
    }

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        let mut list = self.kept.lock(); //~ ERROR
        list.push(bio.keep());
        drop(list);
        MapResult::submitted()
    }
}
