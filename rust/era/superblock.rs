// SPDX-License-Identifier: GPL-2.0

//! The era metadata superblock and writeset records, byte for byte as the C
//! target (`struct superblock_disk`, `struct writeset_disk`, all
//! little-endian and packed) and thin-provisioning-tools read them.
//!
//! Pure code, also compiled into the host unit tests.

/// Block number of the superblock.
pub const LOCATION: u64 = 0;
/// `SUPERBLOCK_MAGIC`.
pub const MAGIC: u64 = 2126579579;
/// `SUPERBLOCK_CSUM_XOR`.
pub const CSUM_XOR: u32 = 146538381;
/// The only metadata version.
pub const VERSION: u32 = 1;
/// Metadata block size in bytes (`DM_ERA_METADATA_BLOCK_SIZE`).
pub const METADATA_BLOCK_SIZE: u32 = 4096;
/// Size of the space map root in the superblock.
pub const SPACE_MAP_ROOT_SIZE: usize = 128;
/// The root of "no writeset".
pub const INVALID_WRITESET_ROOT: u64 = LOCATION;

// Field offsets of `struct superblock_disk`.
const CSUM: usize = 0;
const FLAGS: usize = 4;
const BLOCKNR: usize = 8;
const UUID: usize = 16;
const MAGIC_OFF: usize = 32;
const VERSION_OFF: usize = 40;
const SM_ROOT: usize = 44;
const DATA_BLOCK_SIZE: usize = SM_ROOT + SPACE_MAP_ROOT_SIZE;
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

fn le32(b: &[u8], off: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(x)
}

fn le64(b: &[u8], off: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(x)
}

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

impl Superblock {
    /// Reads the fields from a superblock (at least [`SIZE`] bytes).
    pub fn decode(b: &[u8]) -> Self {
        let mut sm_root = [0u8; SPACE_MAP_ROOT_SIZE];
        sm_root.copy_from_slice(&b[SM_ROOT..SM_ROOT + SPACE_MAP_ROOT_SIZE]);
        Self {
            sm_root,
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
        put32(b, FLAGS, 0);
        b[UUID..UUID + 16].fill(0);
        put64(b, MAGIC_OFF, MAGIC);
        put32(b, VERSION_OFF, VERSION);
        b[SM_ROOT..SM_ROOT + SPACE_MAP_ROOT_SIZE].copy_from_slice(&self.sm_root);
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

/// Why a superblock is not valid (C's `sb_check()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckError {
    /// The block number in the block is not where it was read (`-ENOTBLK`).
    WrongLocation,
    /// Bad magic or checksum (`-EILSEQ`).
    Corrupt,
    /// Unsupported metadata version (`-EINVAL`).
    Version(u32),
}

/// Seals a superblock at `location` before writing: block number and
/// checksum, where `csum` computes `dm_bm_checksum()` with [`CSUM_XOR`].
pub fn seal(b: &mut [u8], location: u64, csum: impl Fn(&[u8]) -> u32) {
    put64(b, BLOCKNR, location);
    let c = csum(&b[FLAGS..]);
    put32(b, CSUM, c);
}

/// Checks a superblock read from `location`.
pub fn check(b: &[u8], location: u64, csum: impl Fn(&[u8]) -> u32) -> Result<(), CheckError> {
    if le64(b, BLOCKNR) != location {
        return Err(CheckError::WrongLocation);
    }
    if le64(b, MAGIC_OFF) != MAGIC || csum(&b[FLAGS..]) != le32(b, CSUM) {
        return Err(CheckError::Corrupt);
    }
    let v = le32(b, VERSION_OFF);
    if v != VERSION {
        return Err(CheckError::Version(v));
    }
    Ok(())
}
