// SPDX-License-Identifier: GPL-2.0

//! The era metadata superblock and writeset records, byte for byte as the C
//! target (`struct superblock_disk`, `struct writeset_disk`, all
//! little-endian and packed) and thin-provisioning-tools read them. The
//! superblock opens with the header persistent-data targets share
//! (`dm::pdata::superblock`: checksum, block number, magic, version, space
//! map root); era's fields follow.
//!
//! Pure code, also compiled into the host unit tests.

use crate::dm::pdata::superblock::{self as header, le32, le64, put32, put64, Format};
pub use header::SPACE_MAP_ROOT_SIZE;

/// Block number of the superblock.
pub const LOCATION: u64 = 0;
/// `SUPERBLOCK_MAGIC`, `SUPERBLOCK_CSUM_XOR` and the only metadata version.
pub const FORMAT: Format = Format {
    magic: 2126579579,
    csum_xor: 146538381,
    version: 1,
};
/// Metadata block size in bytes (`DM_ERA_METADATA_BLOCK_SIZE`).
pub const METADATA_BLOCK_SIZE: u32 = 4096;
/// The root of "no writeset".
pub const INVALID_WRITESET_ROOT: u64 = LOCATION;

// Offsets of era's fields of `struct superblock_disk`, after the header
// persistent-data superblocks share.
const DATA_BLOCK_SIZE: usize = header::FIELDS;
const METADATA_BLOCK_SIZE_OFF: usize = DATA_BLOCK_SIZE + 4;
const NR_BLOCKS: usize = METADATA_BLOCK_SIZE_OFF + 4;
const CURRENT_ERA: usize = NR_BLOCKS + 4;
const CURRENT_WRITESET: usize = CURRENT_ERA + 4;
const WRITESET_TREE_ROOT: usize = CURRENT_WRITESET + WRITESET_DISK_SIZE;
const ERA_ARRAY_ROOT: usize = WRITESET_TREE_ROOT + 8;
const METADATA_SNAP: usize = ERA_ARRAY_ROOT + 8;
/// Size of `struct superblock_disk`.
pub const SIZE: usize = METADATA_SNAP + 8;

/// Size of `struct writeset_disk`: `__le32 nr_bits; __le64 root;`.
pub const WRITESET_DISK_SIZE: usize = 12;

/// A writeset: its size in bits and the root of its on-disk bitset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WritesetMetadata {
    /// Number of bits.
    pub nr_bits: u32,
    /// Root of the on-disk bitset, or [`INVALID_WRITESET_ROOT`].
    pub root: u64,
}

impl WritesetMetadata {
    /// `ws_pack()`.
    pub fn pack(&self) -> [u8; WRITESET_DISK_SIZE] {
        let mut b = [0u8; WRITESET_DISK_SIZE];
        b[..4].copy_from_slice(&self.nr_bits.to_le_bytes());
        b[4..].copy_from_slice(&self.root.to_le_bytes());
        b
    }

    /// `ws_unpack()`; `b` must hold [`WRITESET_DISK_SIZE`] bytes.
    pub fn unpack(b: &[u8]) -> Self {
        Self {
            nr_bits: le32(b, 0),
            root: le64(b, 4),
        }
    }
}

/// The fields of the superblock (checksum and block number are the
/// validator's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// Space map root.
    pub sm_root: [u8; SPACE_MAP_ROOT_SIZE],
    /// Era block size in sectors.
    pub data_block_size: u32,
    /// Number of era blocks.
    pub nr_blocks: u32,
    /// The current era.
    pub current_era: u32,
    /// The current writeset.
    pub current_writeset: WritesetMetadata,
    /// Root of the btree of archived writesets.
    pub writeset_tree_root: u64,
    /// Root of the era array.
    pub era_array_root: u64,
    /// Block of the metadata snapshot, or [`LOCATION`] for none.
    pub metadata_snap: u64,
}

impl Superblock {
    /// Reads the fields from a superblock (at least [`SIZE`] bytes).
    pub fn decode(b: &[u8]) -> Self {
        Self {
            sm_root: header::sm_root(b),
            data_block_size: le32(b, DATA_BLOCK_SIZE),
            nr_blocks: le32(b, NR_BLOCKS),
            current_era: le32(b, CURRENT_ERA),
            current_writeset: WritesetMetadata::unpack(&b[CURRENT_WRITESET..]),
            writeset_tree_root: le64(b, WRITESET_TREE_ROOT),
            era_array_root: le64(b, ERA_ARRAY_ROOT),
            metadata_snap: le64(b, METADATA_SNAP),
        }
    }

    /// Writes all fields but the checksum and block number, as C's
    /// `prepare_superblock()` (flags and uuid zero, current version).
    pub fn encode(&self, b: &mut [u8]) {
        FORMAT.encode_header(b, &self.sm_root);
        put32(b, DATA_BLOCK_SIZE, self.data_block_size);
        put32(b, METADATA_BLOCK_SIZE_OFF, METADATA_BLOCK_SIZE >> 9);
        put32(b, NR_BLOCKS, self.nr_blocks);
        put32(b, CURRENT_ERA, self.current_era);
        b[CURRENT_WRITESET..CURRENT_WRITESET + WRITESET_DISK_SIZE]
            .copy_from_slice(&self.current_writeset.pack());
        put64(b, WRITESET_TREE_ROOT, self.writeset_tree_root);
        put64(b, ERA_ARRAY_ROOT, self.era_array_root);
        put64(b, METADATA_SNAP, self.metadata_snap);
    }
}
