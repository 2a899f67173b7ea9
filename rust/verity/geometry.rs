// SPDX-License-Identifier: GPL-2.0

//! Hash tree geometry: where the hash of each block lives, at each level.
//!
//! Pure code, also compiled into the host unit tests. The layout is the one
//! of the C target and of `veritysetup format`: level 0 is the lowest (hashes
//! of data blocks), the top level is stored first on the hash device, from
//! `hash_start`, and the root digest (not stored) covers it.

use core::ffi::CStr;

/// Deepest tree the format allows (`DM_VERITY_MAX_LEVELS`).
pub const MAX_LEVELS: usize = 63;

/// The shape of a hash tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    /// Format version: 0 (digests packed) or 1 (digests padded to a power of two).
    pub version: u32,
    /// log2 of the data block size.
    pub data_block_bits: u32,
    /// log2 of the hash block size.
    pub hash_block_bits: u32,
    /// Digest size of the hash algorithm in bytes.
    pub digest_size: u32,
    /// log2 of the number of digests in one hash block.
    pub hash_per_block_bits: u32,
    /// Number of data blocks.
    pub data_blocks: u64,
    /// First block of the hash tree on the hash device (`<hash start>`).
    pub hash_start: u64,
    /// Number of tree levels (0 for at most one data block).
    pub levels: u32,
    /// First hash block of each level; level 0 is the lowest.
    pub level_start: [u64; MAX_LEVELS],
    /// One past the last hash block of the tree (from the start of the hash
    /// device, `hash_start` included).
    pub hash_end: u64,
}

impl Geometry {
    /// Computes the tree for `data_blocks` blocks whose hash tree starts at
    /// block `hash_start` of the hash device. Block sizes are powers of two
    /// and `hash_block_size >= 2 * digest_size` (checked by the caller).
    pub fn new(
        version: u32,
        data_block_bits: u32,
        hash_block_bits: u32,
        digest_size: u32,
        data_blocks: u64,
        hash_start: u64,
    ) -> Result<Self, &'static CStr> {
        if digest_size == 0 || (1u64 << hash_block_bits) < 2 * u64::from(digest_size) {
            return Err(c"Digest size too big");
        }
        // __fls((1 << hash_block_bits) / digest_size)
        let per_block = (1u32 << hash_block_bits) / digest_size;
        let hash_per_block_bits = 31 - per_block.leading_zeros();

        let mut levels: u32 = 0;
        if data_blocks != 0 {
            while hash_per_block_bits * levels < 64
                && (data_blocks - 1) >> (hash_per_block_bits * levels) != 0
            {
                levels += 1;
            }
        }
        if levels as usize > MAX_LEVELS {
            return Err(c"Too many tree levels");
        }

        let mut level_start = [0u64; MAX_LEVELS];
        let mut position = hash_start;
        for i in (0..levels).rev() {
            level_start[i as usize] = position;
            let shift = (i + 1) * hash_per_block_bits;
            // Number of hash blocks at level i: data_blocks / 2^shift, rounded
            // up, computed as C does (in 64 bits, with the same overflow).
            let s = if shift >= 64 {
                u64::from(data_blocks != 0)
            } else {
                data_blocks.wrapping_add((1u64 << shift) - 1) >> shift
            };
            position = position
                .checked_add(s)
                .ok_or(c"Hash device offset overflow")?;
        }
        Ok(Self {
            version,
            data_block_bits,
            hash_block_bits,
            digest_size,
            hash_per_block_bits,
            data_blocks,
            hash_start,
            levels,
            level_start,
            hash_end: position,
        })
    }

    /// The hash block holding the digest of data block `block` at `level`, and
    /// the byte offset of that digest in the hash block.
    pub fn hash_at_level(&self, block: u64, level: u32) -> (u64, usize) {
        let position = position_at_level(block, level * self.hash_per_block_bits);
        let hash_block = self.level_start[level as usize] + (position >> self.hash_per_block_bits);
        let idx = (position & ((1u64 << self.hash_per_block_bits) - 1)) as usize;
        let offset = if self.version == 0 {
            idx * self.digest_size as usize
        } else {
            idx << (self.hash_block_bits - self.hash_per_block_bits)
        };
        (hash_block, offset)
    }

    /// Data block size in bytes.
    pub fn data_block_size(&self) -> u32 {
        1 << self.data_block_bits
    }

    /// Hash block size in bytes.
    pub fn hash_block_size(&self) -> u32 {
        1 << self.hash_block_bits
    }

    /// Sectors (512 bytes) per data block.
    pub fn sectors_per_block(&self) -> u64 {
        1 << (self.data_block_bits - 9)
    }
}

fn position_at_level(block: u64, shift: u32) -> u64 {
    if shift >= 64 {
        0
    } else {
        block >> shift
    }
}

/// The layout of the forward error correction data: which bytes of which
/// blocks each Reed-Solomon codeword covers, and where its parity is.
///
/// The FEC area is the `blocks` blocks "data blocks | hash blocks |
/// optional metadata", each byte of it in exactly one RS(255, `rsn`)
/// codeword. The area is cut into `rounds` interleaving rounds: codeword
/// bytes lie `rounds` blocks apart, so that a burst of bad blocks costs each
/// codeword at most one byte per block (C's `fec_interleave()`). The parity,
/// `roots` bytes per codeword, lies packed from `fec_start` of the FEC
/// device, in codeword order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FecGeometry {
    /// Parity bytes per codeword: `M - N` of RS(M, N).
    pub roots: u32,
    /// Data bytes per codeword: `N` of RS(M, N).
    pub rsn: u32,
    /// Blocks covered (`fec_blocks`).
    pub blocks: u64,
    /// First block of the parity on the FEC device (`fec_start`).
    pub start: u64,
    /// Interleaving rounds: `blocks / rsn`, rounded up.
    pub rounds: u64,
    /// Blocks covered after the data, read from the hash device from
    /// `hash_start` on.
    pub hash_blocks: u64,
    /// log2 of the block size (data and hash blocks are alike).
    pub block_bits: u32,
}

/// Reed-Solomon codeword length `M` of RS(M, N) (`DM_VERITY_FEC_RSM`).
pub const FEC_RSM: u32 = 255;

impl FecGeometry {
    /// Checks the FEC options against the tree `geo`, with the C target's
    /// reasons (`verity_fec_ctr()`); `roots` and `blocks` are 0 when not
    /// given.
    pub fn new(geo: &Geometry, roots: u32, blocks: u64, start: u64) -> Result<Self, &'static CStr> {
        if geo.data_block_bits != geo.hash_block_bits {
            return Err(c"Block sizes must match to use FEC");
        }
        if roots == 0 {
            return Err(c"Missing fec_roots");
        }
        let rsn = FEC_RSM - roots;
        if blocks == 0 {
            return Err(c"Missing fec_blocks");
        }
        let rounds = blocks.div_ceil(u64::from(rsn));
        let tree = geo.hash_end - geo.hash_start;
        if geo
            .data_blocks
            .checked_add(tree)
            .map_or(true, |covered| blocks < covered)
        {
            return Err(c"Invalid fec_blocks");
        }
        Ok(Self {
            roots,
            rsn,
            blocks,
            start,
            rounds,
            hash_blocks: blocks - geo.data_blocks,
            block_bits: geo.data_block_bits,
        })
    }

    /// For block `block` of the FEC area: `(rsb, offset)`, the first of the
    /// codewords that cover it and the block's byte offset in the area (C's
    /// `verity_fec_decode()`). Codeword `rsb + k` holds byte `k` of the
    /// block and of the `rsn - 1` other blocks interleaved with it; byte `i`
    /// of the codeword group is at area offset
    /// `interleave(rsb * rsn + i)`, plus `k`.
    pub fn rs_block(&self, block: u64) -> (u64, u64) {
        let offset = block << self.block_bits;
        let round = self.rounds << self.block_bits;
        (offset % round, offset)
    }

    /// The byte offset in the FEC area of byte `i` of the codeword at
    /// `offset` (`rsb * rsn + i`): C's `fec_interleave()`.
    pub fn interleave(&self, offset: u64) -> u64 {
        let rsn = u64::from(self.rsn);
        offset / rsn + (offset % rsn) * (self.rounds << self.block_bits)
    }

    /// The parity block (relative to `start`) and byte position in it of the
    /// parity of codeword `rsb` (C's `fec_decode_bufs()`): a codeword's
    /// parity may span two blocks when `roots` does not divide the block
    /// size.
    pub fn parity_at(&self, rsb: u64) -> (u64, usize) {
        let byte = rsb * u64::from(self.roots);
        (
            byte >> self.block_bits,
            (byte & ((1u64 << self.block_bits) - 1)) as usize,
        )
    }

    /// Parity blocks the FEC device needs from `start` on.
    pub fn parity_blocks(&self) -> u64 {
        self.rounds * u64::from(self.roots)
    }
}
