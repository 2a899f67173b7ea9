// SPDX-License-Identifier: GPL-2.0

//! Sector arithmetic of the linear target: pure code, also compiled into the
//! host unit tests.

/// Maps `sector` of the mapped device to the underlying device, for a target
/// that starts at `begin` of the mapped device and at `start` of the
/// underlying one (C's `linear_map_sector()`).
///
/// The table is validated (`start + len` within the device), so this cannot
/// overflow for sectors inside the target; it wraps instead of panicking if
/// dm core ever hands it one outside.
#[inline]
pub fn map_sector(start: u64, begin: u64, sector: u64) -> u64 {
    start.wrapping_add(sector.wrapping_sub(begin))
}
