// SPDX-License-Identifier: GPL-2.0

//! The header that opens the superblock of the persistent-data targets
//! (`struct superblock_disk` of dm-era and dm-clone, little-endian and
//! packed): checksum, flags, block number, uuid, magic, version, then the
//! metadata space map root; each target's own fields follow from
//! [`FIELDS`]. With the byte helpers for the fields, and C's `sb_check()`
//! and `sb_prepare_for_write()`, which the targets repeat with only their
//! magic, checksum xor and version changed.
//!
//! A target describes its superblock with a [`Format`]; the block manager's
//! [`super::SuperblockValidator`] checks and seals it with persistent-data's
//! checksum.
//!
//! Pure code, also compiled into the host unit tests.

/// Size of the metadata space map root (`SPACE_MAP_ROOT_SIZE`).
pub const SPACE_MAP_ROOT_SIZE: usize = 128;

// Field offsets of the header.
/// `__le32 csum`: of everything after it, up to the end of the block.
pub const CSUM: usize = 0;
/// `__le32 flags`.
pub const FLAGS: usize = 4;
/// `__le64 blocknr`: where the superblock is.
pub const BLOCKNR: usize = 8;
/// `__u8 uuid[16]`.
pub const UUID: usize = 16;
/// `__le64 magic`.
pub const MAGIC: usize = 32;
/// `__le32 version`.
pub const VERSION: usize = 40;
/// `__u8 metadata_space_map_root[SPACE_MAP_ROOT_SIZE]`.
pub const SM_ROOT: usize = 44;
/// Where the target's own fields start.
pub const FIELDS: usize = SM_ROOT + SPACE_MAP_ROOT_SIZE;

/// What tells one target's superblock from another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    /// `SUPERBLOCK_MAGIC`.
    pub magic: u64,
    /// `SUPERBLOCK_CSUM_XOR`: the checksum's initial xor.
    pub csum_xor: u32,
    /// The only metadata version supported (and written).
    pub version: u32,
}

/// Why a superblock is not valid (C's `sb_check()`, in its order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckError {
    /// The block number in the block (given) is not where it was read
    /// (`-ENOTBLK`).
    WrongLocation(u64),
    /// Bad magic (given) (`-EILSEQ`).
    Magic(u64),
    /// Bad checksum (`-EILSEQ`): computed, stored.
    Checksum(u32, u32),
    /// Unsupported metadata version (given) (`-EINVAL`).
    Version(u32),
}

/// The little-endian `u32` at `off` of `b`.
pub fn le32(b: &[u8], off: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(x)
}

/// The little-endian `u64` at `off` of `b`.
pub fn le64(b: &[u8], off: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(x)
}

/// Writes `v` little-endian at `off` of `b`.
pub fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Writes `v` little-endian at `off` of `b`.
pub fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// The space map root of a superblock.
pub fn sm_root(b: &[u8]) -> [u8; SPACE_MAP_ROOT_SIZE] {
    let mut root = [0u8; SPACE_MAP_ROOT_SIZE];
    root.copy_from_slice(&b[SM_ROOT..FIELDS]);
    root
}

impl Format {
    /// Writes the header but the checksum and block number (the
    /// validator's), as C's `prepare_superblock()`: flags and uuid zero,
    /// this format's magic and version, and `sm_root`.
    pub fn encode_header(&self, b: &mut [u8], sm_root: &[u8; SPACE_MAP_ROOT_SIZE]) {
        put32(b, FLAGS, 0);
        b[UUID..UUID + 16].fill(0);
        put64(b, MAGIC, self.magic);
        put32(b, VERSION, self.version);
        b[SM_ROOT..FIELDS].copy_from_slice(sm_root);
    }

    /// Seals a superblock at `location` before writing: block number and
    /// checksum, where `csum(data, xor)` computes `dm_bm_checksum()` (C's
    /// `sb_prepare_for_write()`).
    pub fn seal(&self, b: &mut [u8], location: u64, csum: impl Fn(&[u8], u32) -> u32) {
        put64(b, BLOCKNR, location);
        let c = csum(&b[FLAGS..], self.csum_xor);
        put32(b, CSUM, c);
    }

    /// Checks a superblock read from `location`, in C's order (`sb_check()`).
    pub fn check(
        &self,
        b: &[u8],
        location: u64,
        csum: impl Fn(&[u8], u32) -> u32,
    ) -> Result<(), CheckError> {
        let blocknr = le64(b, BLOCKNR);
        if blocknr != location {
            return Err(CheckError::WrongLocation(blocknr));
        }
        let magic = le64(b, MAGIC);
        if magic != self.magic {
            return Err(CheckError::Magic(magic));
        }
        let c = csum(&b[FLAGS..], self.csum_xor);
        if c != le32(b, CSUM) {
            return Err(CheckError::Checksum(c, le32(b, CSUM)));
        }
        let v = le32(b, VERSION);
        if v != self.version {
            return Err(CheckError::Version(v));
        }
        Ok(())
    }
}
