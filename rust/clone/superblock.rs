// SPDX-License-Identifier: GPL-2.0

//! The dm-clone metadata superblock, byte for byte as the C target writes it
//! (`struct superblock_disk` in `drivers/md/dm-clone-metadata.c`: packed,
//! little-endian), and the region arithmetic of the I/O path.
//!
//! Pure code, also compiled into the host unit tests.

/// Block number of the superblock.
pub const LOCATION: u64 = 0;
/// `SUPERBLOCK_MAGIC`.
pub const MAGIC: u64 = 0x8af27f64;
/// `SUPERBLOCK_CSUM_XOR`.
pub const CSUM_XOR: u32 = 257649492;
/// The only metadata version (`DM_CLONE_{MIN,MAX}_METADATA_VERSION`).
pub const VERSION: u32 = 1;
/// Metadata block size in bytes (`DM_CLONE_METADATA_BLOCK_SIZE` sectors).
pub const METADATA_BLOCK_SIZE: u32 = 4096;
/// Size of the space map root in the superblock.
pub const SPACE_MAP_ROOT_SIZE: usize = 128;

// Field offsets of `struct superblock_disk`.
const CSUM: usize = 0;
const FLAGS: usize = 4;
const BLOCKNR: usize = 8;
const UUID: usize = 16;
const MAGIC_OFF: usize = 32;
const VERSION_OFF: usize = 40;
const SM_ROOT: usize = 44;
const REGION_SIZE: usize = SM_ROOT + SPACE_MAP_ROOT_SIZE;
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

fn le32(b: &[u8], off: usize) -> u32 {
    let mut x = [0u8; 4];
    for (d, s) in x.iter_mut().zip(&b[off..off + 4]) {
        *d = *s;
    }
    u32::from_le_bytes(x)
}

fn le64(b: &[u8], off: usize) -> u64 {
    let mut x = [0u8; 8];
    for (d, s) in x.iter_mut().zip(&b[off..off + 8]) {
        *d = *s;
    }
    u64::from_le_bytes(x)
}

fn put(b: &mut [u8], off: usize, v: &[u8]) {
    for (d, s) in b[off..off + v.len()].iter_mut().zip(v) {
        *d = *s;
    }
}

impl Superblock {
    /// Reads the fields from a superblock (at least [`SIZE`] bytes).
    pub fn decode(b: &[u8]) -> Self {
        let mut sm_root = [0u8; SPACE_MAP_ROOT_SIZE];
        for (d, s) in sm_root
            .iter_mut()
            .zip(&b[SM_ROOT..SM_ROOT + SPACE_MAP_ROOT_SIZE])
        {
            *d = *s;
        }
        Self {
            sm_root,
            region_size: le64(b, REGION_SIZE),
            target_size: le64(b, TARGET_SIZE),
            bitset_root: le64(b, BITSET_ROOT),
        }
    }

    /// Writes all fields but the checksum and block number, as C's
    /// `__prepare_superblock()` (flags and uuid zero, current version).
    pub fn encode(&self, b: &mut [u8]) {
        put(b, FLAGS, &0u32.to_le_bytes());
        b[UUID..UUID + 16].fill(0);
        put(b, MAGIC_OFF, &MAGIC.to_le_bytes());
        put(b, VERSION_OFF, &VERSION.to_le_bytes());
        put(b, SM_ROOT, &self.sm_root);
        put(b, REGION_SIZE, &self.region_size.to_le_bytes());
        put(b, TARGET_SIZE, &self.target_size.to_le_bytes());
        put(b, BITSET_ROOT, &self.bitset_root.to_le_bytes());
    }
}

/// Why a superblock is not valid (C's `sb_check()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckError {
    /// The block number in the block is not where it was read (`-ENOTBLK`).
    WrongLocation(u64),
    /// Bad magic (`-EILSEQ`).
    Magic(u64),
    /// Bad checksum (`-EILSEQ`): computed, stored.
    Checksum(u32, u32),
    /// Unsupported metadata version (`-EINVAL`).
    Version(u32),
}

/// Seals a superblock at `location` before writing: block number and
/// checksum, where `csum` computes `dm_bm_checksum()` with [`CSUM_XOR`].
pub fn seal(b: &mut [u8], location: u64, csum: impl Fn(&[u8]) -> u32) {
    put(b, BLOCKNR, &location.to_le_bytes());
    let c = csum(&b[FLAGS..]);
    put(b, CSUM, &c.to_le_bytes());
}

/// Checks a superblock read from `location`, in C's order.
pub fn check(b: &[u8], location: u64, csum: impl Fn(&[u8]) -> u32) -> Result<(), CheckError> {
    let blocknr = le64(b, BLOCKNR);
    if blocknr != location {
        return Err(CheckError::WrongLocation(blocknr));
    }
    let magic = le64(b, MAGIC_OFF);
    if magic != MAGIC {
        return Err(CheckError::Magic(magic));
    }
    let c = csum(&b[FLAGS..]);
    if c != le32(b, CSUM) {
        return Err(CheckError::Checksum(c, le32(b, CSUM)));
    }
    let v = le32(b, VERSION_OFF);
    if v != VERSION {
        return Err(CheckError::Version(v));
    }
    Ok(())
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
