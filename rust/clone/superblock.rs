// SPDX-License-Identifier: GPL-2.0

//! The dm-clone metadata superblock, byte for byte as the C target writes it
//! (`struct superblock_disk` in `drivers/md/dm-clone-metadata.c`: packed,
//! little-endian), and the region arithmetic of the I/O path. The
//! superblock opens with the header persistent-data targets share
//! (`dm::pdata::superblock`: checksum, block number, magic, version, space
//! map root); clone's fields follow.
//!
//! Pure code, also compiled into the host unit tests.

use crate::dm::pdata::superblock::{self as header, le64, put64, Format};
pub use header::SPACE_MAP_ROOT_SIZE;

/// Block number of the superblock.
pub const LOCATION: u64 = 0;
/// `SUPERBLOCK_MAGIC`, `SUPERBLOCK_CSUM_XOR` and the only metadata version
/// (`DM_CLONE_{MIN,MAX}_METADATA_VERSION`).
pub const FORMAT: Format = Format {
    magic: 0x8af27f64,
    csum_xor: 257649492,
    version: 1,
};
/// Metadata block size in bytes (`DM_CLONE_METADATA_BLOCK_SIZE` sectors).
pub const METADATA_BLOCK_SIZE: u32 = 4096;

// Offsets of clone's fields of `struct superblock_disk`, after the header
// persistent-data superblocks share.
const REGION_SIZE: usize = header::FIELDS;
const TARGET_SIZE: usize = REGION_SIZE + 8;
const BITSET_ROOT: usize = TARGET_SIZE + 8;
/// Size of `struct superblock_disk`.
pub const SIZE: usize = BITSET_ROOT + 8;

/// The fields of the superblock (checksum and block number are the
/// validator's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// Space map root.
    pub sm_root: [u8; SPACE_MAP_ROOT_SIZE],
    /// Region size in sectors.
    pub region_size: u64,
    /// Length of the target in sectors.
    pub target_size: u64,
    /// Root of the on-disk bitset of hydrated regions.
    pub bitset_root: u64,
}

impl Superblock {
    /// Reads the fields from a superblock (at least [`SIZE`] bytes).
    pub fn decode(b: &[u8]) -> Self {
        Self {
            sm_root: header::sm_root(b),
            region_size: le64(b, REGION_SIZE),
            target_size: le64(b, TARGET_SIZE),
            bitset_root: le64(b, BITSET_ROOT),
        }
    }

    /// Writes all fields but the checksum and block number, as C's
    /// `__prepare_superblock()` (flags and uuid zero, current version).
    pub fn encode(&self, b: &mut [u8]) {
        FORMAT.encode_header(b, &self.sm_root);
        put64(b, REGION_SIZE, self.region_size);
        put64(b, TARGET_SIZE, self.target_size);
        put64(b, BITSET_ROOT, self.bitset_root);
    }
}

/// Region arithmetic: regions are `1 << shift` sectors; the last one may be
/// shorter (the target length need not be a multiple of the region size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Regions {
    /// log2 of the region size in sectors.
    pub shift: u32,
    /// Number of regions.
    pub nr: u64,
    /// Target length in sectors.
    pub len: u64,
}

impl Regions {
    /// Regions of `1 << shift` sectors over `len` sectors.
    pub fn new(shift: u32, len: u64) -> Self {
        let size = 1u64 << shift;
        Self {
            shift,
            nr: (len >> shift) + u64::from(len & (size - 1) != 0),
            len,
        }
    }

    /// Region size in sectors.
    pub fn size(&self) -> u64 {
        1 << self.shift
    }

    /// The region `sector` is in.
    pub fn of(&self, sector: u64) -> u64 {
        sector >> self.shift
    }

    /// First sector of `region`.
    pub fn start(&self, region: u64) -> u64 {
        region << self.shift
    }

    /// The regions a discard of `sectors` at `sector` covers entirely:
    /// (first, count), count 0 if none (C's `bio_region_range()`).
    pub fn covered(&self, sector: u64, sectors: u64) -> (u64, u64) {
        let first = (sector >> self.shift) + u64::from(sector & (self.size() - 1) != 0);
        let end = (sector + sectors) >> self.shift;
        if first >= end {
            (first, 0)
        } else {
            (first, end - first)
        }
    }

    /// The sectors to copy for `count` regions from `first` (the last region
    /// of the device may be short): C's `hydration_copy()` sizes.
    pub fn copy_len(&self, first: u64, count: u64) -> u64 {
        if count == 0 {
            return 0;
        }
        let last = first + count - 1;
        let tail = if last == self.nr - 1 {
            match self.len & (self.size() - 1) {
                0 => self.size(),
                t => t,
            }
        } else {
            self.size()
        };
        ((count - 1) << self.shift) + tail
    }
}
