// SPDX-License-Identifier: GPL-2.0

//! `linear_rs`: the linear target of device-mapper, in Rust.
//!
//! A drop-in for the built-in `linear` target under another name: same table
//! line (`<device> <start sector>`), same `dmsetup table` and empty
//! `dmsetup status`, same IMA record; flushes, discards, secure erases and
//! write-zeroes pass through to the device.

// No `unsafe` in a target: only the abstraction (`mod dm`) has any.
#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
pub mod mapping;

use core::fmt::Write;
use dm::{MapBio, MapResult, Operations, StatusType, StatusWriter, Target};
use kernel::{c_str, prelude::*};

module_dm_target! {
    type: Linear,
    name: "dm_linear_rs",
    description: "device-mapper linear target, in Rust",
}

/// One linear mapping: `len` sectors of the mapped device onto `dev` from
/// sector `start`.
struct Linear {
    dev: dm::Device,
    start: u64,
}

#[vtable]
impl Operations for Linear {
    const NAME: &'static CStr = c_str!("linear_rs");
    // The version of the C `linear` target this one matches.
    const VERSION: [u32; 3] = [1, 4, 0];
    const FEATURES: u64 =
        dm::features::PASSES_INTEGRITY | dm::features::NOWAIT | dm::features::PASSES_CRYPTO;

    type PerBio = ();

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        args.expect_count(2, c_str!("Invalid argument count"))?;
        let path = args.next_str(c_str!("Invalid argument count"))?;
        let start = args.next_u64(c_str!("Invalid device sector"))?;
        let dev = target.get_device(path, c_str!("Device lookup failed"))?;

        target.set_num_flush_bios(1);
        target.set_num_discard_bios(1);
        target.set_num_secure_erase_bios(1);
        target.set_num_write_zeroes_bios(1);
        target.set_flush_bypasses_map(true);
        Ok(Linear { dev, start })
    }

    #[inline]
    fn map<'m>(&self, target: &Target, mut bio: MapBio<'m, Self>) -> MapResult<'m> {
        bio.set_dev(&self.dev);
        // An empty flush has no sector to remap: pass it through untouched.
        if bio.sectors() != 0 {
            bio.set_sector(mapping::map_sector(
                self.start,
                target.begin(),
                bio.sector(),
            ));
        }
        bio.remap()
    }

    fn status(
        &self,
        _target: &Target,
        _ctx: &dm::Sleepable<'_>,
        kind: StatusType,
        _flags: u32,
        out: &mut StatusWriter<'_>,
    ) {
        // Formatting into the bounded writer cannot fail: it truncates.
        let _ = match kind {
            StatusType::Info => Ok(()),
            StatusType::Table => write!(out, "{} {}", self.dev.name(), self.start),
            StatusType::Ima => write!(
                out,
                "target_name={},target_version={}.{}.{},device_name={},start={};",
                Self::NAME,
                Self::VERSION[0],
                Self::VERSION[1],
                Self::VERSION[2],
                self.dev.name(),
                self.start
            ),
        };
    }

    fn iterate_devices(&self, target: &Target, callout: &mut dm::DeviceCallout<'_>) -> i32 {
        callout.visit(&self.dev, self.start, target.len())
    }
}
