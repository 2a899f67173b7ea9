// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0599\]: no method named .lock. found for struct .(dm::sync::)?IrqSpinLock

//! An `IrqSpinLock` gives no guard (guards of two such locks dropped out of
//! order would enable interrupts under the inner lock): only `with`.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");

cf_target! {
    name: "cf_irq_spinlock_guard",
    kind: kept,

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        let mut list = self.kept.lock(); //~ ERROR
        list.push(bio.keep());
        drop(list);
        MapResult::submitted()
    }
}
