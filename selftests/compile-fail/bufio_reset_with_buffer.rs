// SPDX-License-Identifier: GPL-2.0
// expect-error: ^error\[E0502\]: cannot borrow .\*client. as mutable because it is also borrowed as immutable
// cfg: dm_bufio
// needs: BufioClient::reset(&mut self) (branch pdata has reset(&self) -> Result: EBUSY at run time)

//! A bufio client cannot be reset (every cached buffer dropped) while a
//! buffer borrowed from it is held.

#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;

use dm::{bufio::BufioClient, MapBio, MapResult, Operations, Target};
use kernel::{c_str, prelude::*};

module_dm_target! {
    type: Case,
    name: "cf_bufio_reset_with_buffer",
    description: "compile-fail case",
}

struct Case {
    dev: dm::Device,
}

#[vtable]
impl Operations for Case {
    const NAME: &'static CStr = c_str!("cf_bufio_reset_with_buffer");
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

/// Resets the client while holding one of its buffers.
pub fn misuse(client: &mut BufioClient) -> Result {
    let buf = client.read(0)?;
    let _ = client.reset(); //~ ERROR
    drop(buf);
    Ok(())
}
