// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0080\]: evaluation panicked: a NOWAIT target's map must not sleep
// expect-output: evaluation of `dm::bio::MapBio::<'_, Case>::sleepable::\{constant#0\}` failed

//! A target that declares `NOWAIT` may be mapping a `REQ_NOWAIT` bio, whose
//! submitter must not be blocked: its `map` gets no `Sleepable` token
//! (`MapBio::sleepable` is a build error there, a `const` assertion on the
//! target's `FEATURES`), so it cannot wait for a pool's element. The error
//! is raised where `sleepable` is instantiated for the target: the case's
//! marked line.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
include!("common/skeleton.rs");

cf_target! {
    name: "cf_sleepable_in_nowait_map",
    kind: sleepable,
    features: dm::features::NOWAIT,

    fn map<'m>(&self, _target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        let ctx = bio.sleepable(); //~ ERROR
        let _n = self.pool.alloc(&ctx, 1);
        bio.set_dev(&self.dev);
        bio.remap()
    }
}
