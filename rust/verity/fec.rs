// SPDX-License-Identifier: GPL-2.0

//! Forward error correction: rebuilding a block whose hash did not match (or
//! whose read failed) from Reed-Solomon parity, as C's
//! `drivers/md/dm-verity-fec.c`.
//!
//! The FEC area is the data blocks, then the hash blocks (and optional
//! metadata after them, on the hash device), each byte of it in one
//! RS(255, `rsn`) codeword whose bytes are interleaved `rounds` blocks apart
//! ([`FecGeometry`]). Correcting one block decodes the `block size`
//! codewords that hold its bytes: for each, the `rsn` blocks they span are
//! read (through dm-bufio clients of their own), deinterleaved into
//! buffers, and decoded with the parity. A first pass decodes without
//! erasures; if it fails, a second pass marks as erasures the blocks whose
//! hash does not match or whose read failed (a decoder corrects up to
//! `roots` erasures, but only `roots / 2` errors of unknown place). The
//! result is used only if its hash is the wanted one.
//!
//! Memory comes from pools, so that correcting never fails for want of
//! memory: a decoder (`rs_pool`), one deinterleave buffer
//! (`prealloc_pool`) and the output block (`output_pool`) are taken waiting
//! if need be; more deinterleave buffers (`extra_pool`, up to one pass for
//! the whole block) only when at hand, otherwise the block is decoded in
//! more passes. The state lives for one correction, not in every bio.

use crate::{
    dm::{
        bufio::BufioClient,
        hash::MAX_DIGEST_SIZE,
        mempool::{BufferPool, PoolBuffer},
        reed_solomon::{num_online_cpus, RsDecoder, RsPool, RS_CODEWORD},
        Device, Workqueue,
    },
    geometry::{FecGeometry, FEC_RSM},
    table::FEC_MAX_ROOTS,
    verify::{self, BlockType, IoState},
    Verity,
};
use kernel::{c_str, error::code::*, new_mutex, prelude::*, sync::Mutex};

/// The log prefix of C's dm-verity-fec.c.
const PREFIX: &str = "verity-fec";

/// log2 of the codewords one deinterleave buffer holds
/// (`DM_VERITY_FEC_BUF_RS_BITS` is 4 in C; here buffers are larger and
/// fewer, so that the buffer table fits the stack).
const BUF_RS_BITS: u32 = 6;
/// Most deinterleave buffers one correction uses: enough for one pass over
/// a page-sized block.
const BUF_MAX: usize = kernel::page::PAGE_SIZE >> BUF_RS_BITS;
/// Largest number of data symbols in a codeword (`DM_VERITY_FEC_MAX_RSN`).
const MAX_RSN: usize = (FEC_RSM - 2) as usize;
/// Corrected hash blocks kept (see [`FixedHashBlocks`]).
const FIXED_SLOTS: usize = 4;

/// The last hash blocks FEC corrected, by block number.
///
/// C writes a corrected hash block into its dm-bufio buffer and marks it
/// verified. Buffers are shared read-only here, so the corrected copies
/// are kept aside, and a lookup of an unverified hash block finds them
/// first: otherwise each use of the block would correct it again, and a
/// lookup from within another correction (where FEC is not entered again)
/// would call it corrupt. A copy is right for good: it matched the digest
/// its verified parent holds, under the one root digest. Slots are
/// allocated by the constructor and reused round-robin.
struct FixedHashBlocks {
    /// `(hash block, contents)`; `u64::MAX` marks an empty slot.
    slots: KVec<(u64, KVec<u8>)>,
    next: usize,
}

/// The FEC configuration and resources of one target.
///
/// Field order is drop order: the bufio clients go before the device they
/// read, every pool after the last user (a correction borrows the target).
pub(crate) struct Fec {
    pub(crate) geo: FecGeometry,
    /// Parity blocks, from `fec_start` of the FEC device.
    bufio: BufioClient,
    /// Data blocks read for decoding (C's `data_bufio`).
    data_bufio: BufioClient,
    rs_pool: RsPool,
    prealloc_pool: BufferPool,
    extra_pool: BufferPool,
    output_pool: BufferPool,
    fixed: Pin<KBox<Mutex<FixedHashBlocks>>>,
    pub(crate) dev: Device,
}

/// Why [`Fec::new`] failed: C's reason, and the error.
pub(crate) type CtrError = (&'static core::ffi::CStr, Error);

impl Fec {
    /// Sets FEC up for `geo` (`verity_fec_ctr()` after its checks of the
    /// options): checks the devices' sizes and allocates the pools.
    /// `hash_dev_blocks` is the size of the hash device in hash blocks.
    ///
    /// # Context
    ///
    /// May sleep.
    pub(crate) fn new(
        geo: FecGeometry,
        dev: Device,
        data_dev: &Device,
        hash_dev_blocks: u64,
        hash_start: u64,
        data_blocks: u64,
    ) -> Result<Self, CtrError> {
        // Metadata is read through the hash device.
        if hash_dev_blocks < hash_start + geo.hash_blocks {
            return Err((c"Hash device is too small for fec_blocks", E2BIG));
        }
        let bs = 1u32 << geo.block_bits;
        // Workqueues of the clients' (unused) prefetches.
        let wq = || Workqueue::new(c_str!("kverityd_fec"), 0, 1);
        let fail = |r: &'static core::ffi::CStr| move |e: Error| (r, e);
        let mut bufio = BufioClient::new(
            &dev,
            bs,
            1,
            wq().map_err(fail(c"Cannot initialize FEC bufio client"))?,
        )
        .map_err(fail(c"Cannot initialize FEC bufio client"))?;
        bufio.set_sector_offset(geo.start << (geo.block_bits - 9));
        if bufio.device_size() < geo.parity_blocks() {
            return Err((c"FEC device is too small", E2BIG));
        }
        let data_bufio = BufioClient::new(
            data_dev,
            bs,
            1,
            wq().map_err(fail(c"Cannot initialize FEC data bufio client"))?,
        )
        .map_err(fail(c"Cannot initialize FEC data bufio client"))?;
        if data_bufio.device_size() < data_blocks {
            return Err((c"Data device is too small", E2BIG));
        }
        // One of each for every worker that may correct at once.
        let cpus = num_online_cpus() as usize;
        let rs_pool =
            RsPool::new(geo.roots, cpus as u32).map_err(fail(c"Cannot allocate RS pool"))?;
        let buf_size = (geo.rsn as usize) << BUF_RS_BITS;
        let prealloc_pool = BufferPool::new(cpus, buf_size)
            .map_err(fail(c"Cannot allocate FEC buffer prealloc pool"))?;
        let extra_pool =
            BufferPool::new(0, buf_size).map_err(fail(c"Cannot allocate FEC buffer extra pool"))?;
        let output_pool =
            BufferPool::new(cpus, bs as usize).map_err(fail(c"Cannot allocate FEC output pool"))?;
        let mut slots = KVec::new();
        for _ in 0..FIXED_SLOTS {
            let mut b = KVec::new();
            b.extend_with(bs as usize, 0u8, GFP_KERNEL)
                .map_err(|e| (c"Cannot allocate FEC structure", e.into()))?;
            slots
                .push((u64::MAX, b), GFP_KERNEL)
                .map_err(|e| (c"Cannot allocate FEC structure", e.into()))?;
        }
        let fixed = KBox::pin_init(new_mutex!(FixedHashBlocks { slots, next: 0 }), GFP_KERNEL)
            .map_err(|e| (c"Cannot allocate FEC structure", e))?;
        Ok(Self {
            fixed,
            geo,
            bufio,
            data_bufio,
            rs_pool,
            prealloc_pool,
            extra_pool,
            output_pool,
            dev,
        })
    }

    fn block_size(&self) -> usize {
        1 << self.geo.block_bits
    }

    /// If FEC corrected hash block `block` before, copies the digest at
    /// `offset` of the corrected copy into `out` and returns `true`.
    ///
    /// # Context
    ///
    /// May sleep (takes a mutex).
    pub(crate) fn fixed_digest(&self, block: u64, offset: usize, out: &mut [u8]) -> bool {
        let fixed = self.fixed.lock();
        let Some((_, data)) = fixed.slots.iter().find(|(b, _)| *b == block) else {
            return false;
        };
        match data.get(offset..offset + out.len()) {
            Some(d) => {
                out.copy_from_slice(d);
                true
            }
            None => false,
        }
    }

    /// Keeps the corrected copy `data` of hash block `block`.
    ///
    /// # Context
    ///
    /// May sleep (takes a mutex).
    pub(crate) fn remember_fixed(&self, block: u64, data: &[u8]) {
        let mut fixed = self.fixed.lock();
        let fixed = &mut *fixed;
        if fixed.slots.iter().any(|(b, _)| *b == block) {
            return;
        }
        let i = fixed.next % FIXED_SLOTS;
        fixed.next = i + 1;
        if let Some(slot) = fixed.slots.get_mut(i) {
            if slot.1.len() == data.len() {
                slot.1.copy_from_slice(data);
                slot.0 = block;
            }
        }
    }
}

/// The state of one correction (C's `struct dm_verity_fec_io`).
struct FecIo<'a> {
    rs: RsDecoder<'a>,
    /// Deinterleave buffers: `1 << BUF_RS_BITS` codewords of `rsn` bytes
    /// each; the first `nbufs` are taken.
    bufs: [Option<PoolBuffer>; BUF_MAX],
    nbufs: usize,
    /// The buffers hold zeroes only (as the pools hand them out).
    zeroed: bool,
    /// Indexes in the codewords of the blocks known bad.
    erasures: [u8; MAX_RSN],
    neras: usize,
    output: PoolBuffer,
}

impl<'a> FecIo<'a> {
    /// Takes the decoder and buffers (`fec_alloc_bufs()`): the first buffer
    /// waiting if need be, the others only while at hand, no more than one
    /// pass over the block needs.
    fn new(fec: &'a Fec, ctx: &crate::dm::Sleepable<'_>) -> Self {
        let rs = fec.rs_pool.alloc(ctx);
        let mut bufs: [Option<PoolBuffer>; BUF_MAX] = [const { None }; BUF_MAX];
        let wanted = (fec.block_size() >> BUF_RS_BITS).clamp(1, BUF_MAX);
        bufs[0] = Some(fec.prealloc_pool.alloc(ctx));
        let mut nbufs = 1;
        while nbufs < wanted {
            let Some(b) = fec.extra_pool.try_alloc() else {
                break;
            };
            bufs[nbufs] = Some(b);
            nbufs += 1;
        }
        Self {
            rs,
            bufs,
            nbufs,
            zeroed: true,
            erasures: [0; MAX_RSN],
            neras: 0,
            output: fec.output_pool.alloc(ctx),
        }
    }

    /// Codewords one pass decodes.
    fn per_pass(&self) -> usize {
        self.nbufs << BUF_RS_BITS
    }
}

/// Codeword `index` of the pass in `bufs` (`fec_buffer_rs_block()`).
fn codeword<'b>(
    bufs: &'b mut [Option<PoolBuffer>; BUF_MAX],
    rsn: usize,
    index: usize,
) -> Option<&'b mut [u8]> {
    let buf = bufs.get_mut(index >> BUF_RS_BITS)?.as_mut()?;
    let j = index & ((1 << BUF_RS_BITS) - 1);
    buf.get_mut(j * rsn..(j + 1) * rsn)
}

/// Corrects `block` (of the data device, or of the hash device for
/// metadata) whose wanted digest is `want`; returns the corrected block
/// (C's `verity_fec_decode()`).
///
/// `ENOTSUPP` without FEC; `EIO` when called while correcting another
/// block of the same bio (hash blocks are read while locating erasures: a
/// bad one is not corrected in turn); otherwise the error that made both
/// passes fail.
///
/// # Context
///
/// May sleep (the verify worker).
pub(crate) fn decode<'v>(
    v: &'v Verity,
    target: &crate::dm::Target,
    ctx: &crate::dm::Sleepable<'_>,
    io: &mut IoState,
    kind: BlockType,
    block: u64,
    want: &[u8; MAX_DIGEST_SIZE],
) -> Result<PoolBuffer> {
    let fec = v.fec.as_ref().ok_or(ENOTSUPP)?;
    if io.in_fec {
        return Err(EIO);
    }
    io.in_fec = true;
    let block = match kind {
        BlockType::Data => block,
        BlockType::Metadata => block - v.geo.hash_start + v.geo.data_blocks,
    };
    let (rsb, offset) = fec.geo.rs_block(block);
    let mut c = Correction {
        v,
        target,
        ctx,
        fec,
        io,
        fio: FecIo::new(fec, ctx),
        rsb,
        offset,
    };
    // Locating erasures is slow: try without first.
    let r = c
        .decode_rsb(want, false)
        .or_else(|_| c.decode_rsb(want, true));
    let Correction { io, fio, .. } = c;
    io.in_fec = false;
    r.map(|()| fio.output)
}

/// One correction under way: what its steps share (C passes them as `v`,
/// `io`, `fio`, `rsb` and `offset`).
struct Correction<'a, 'i> {
    v: &'a Verity,
    target: &'a crate::dm::Target,
    ctx: &'a crate::dm::Sleepable<'a>,
    fec: &'a Fec,
    io: &'i mut IoState,
    fio: FecIo<'a>,
    /// The codeword group of the block being corrected.
    rsb: u64,
    /// The block's offset in the FEC area, in bytes.
    offset: u64,
}

impl Correction<'_, '_> {
    /// Decodes the codewords of the block into `fio.output` and checks its
    /// hash (`fec_decode_rsb()`).
    fn decode_rsb(&mut self, want: &[u8; MAX_DIGEST_SIZE], use_erasures: bool) -> Result {
        let bs = self.fec.block_size();
        let mut pos = 0;
        while pos < bs {
            // Blocks skipped by `read_bufs` count as zeroes. Buffers come
            // zeroed from their pool: cleared again only once used.
            if !core::mem::replace(&mut self.fio.zeroed, false) {
                for b in self.fio.bufs.iter_mut().flatten() {
                    b.fill(0);
                }
            }
            self.fio.neras = 0;
            let index = self.read_bufs(pos, use_erasures)?;
            self.decode_bufs(index, pos)?;
            pos += self.fio.per_pass();
        }
        // Always re-validate the corrected block against the expected hash.
        let v = self.v;
        let mut real = [0u8; MAX_DIGEST_SIZE];
        v.hash_block(&self.fio.output[..], &mut real)?;
        let ds = v.digest_size();
        if real[..ds] != want[..ds] {
            crate::dm_log_limit!(
                pr_err,
                PREFIX,
                "{}: FEC {}: failed to correct ({} erasures)",
                v.data_dev.name(),
                self.rsb,
                self.fio.neras
            );
            return Err(Error::from_errno(-(kernel::bindings::EILSEQ as i32)));
        }
        Ok(())
    }

    /// Reads the `rsn` blocks of the codeword group and deinterleaves the
    /// bytes from `pos` on that fit the buffers; marks erasures if
    /// `use_erasures` (`fec_read_bufs()`). Returns the index in the
    /// codewords of the block being corrected.
    fn read_bufs(&mut self, pos: usize, use_erasures: bool) -> Result<usize> {
        let (v, target, fec, rsb) = (self.v, self.target, self.fec, self.rsb);
        let (fio, io) = (&mut self.fio, &mut *self.io);
        let rsn = fec.geo.rsn as usize;
        let roots = fec.geo.roots as usize;
        let bs = fec.block_size();
        let ds = v.digest_size();
        let mut target_index = None;
        for i in 0..rsn {
            let ileaved = fec.geo.interleave(rsb * rsn as u64 + i as u64);
            if ileaved == self.offset {
                target_index = Some(i);
            }
            let mut block = ileaved >> fec.geo.block_bits;
            let on_data = block < v.geo.data_blocks;
            let client = if on_data {
                &fec.data_bufio
            } else {
                block -= v.geo.data_blocks;
                // Blocks past the area count as zeroes in the encoding.
                if block >= fec.geo.hash_blocks {
                    continue;
                }
                block += v.geo.hash_start;
                &v.bufio
            };
            let buf = match client.read(target, block) {
                Ok(b) => b,
                Err(e) => {
                    crate::dm_log_limit!(
                        pr_warn,
                        PREFIX,
                        "{}: FEC {}: read failed ({}): {}",
                        v.data_dev.name(),
                        rsb,
                        block,
                        e.to_errno()
                    );
                    // Assume the block is corrupted.
                    if use_erasures && fio.neras < roots {
                        fio.erasures[fio.neras] = i as u8;
                        fio.neras += 1;
                    }
                    continue;
                }
            };
            // Locate erasures if the block is on the data device.
            let mut want = [0u8; MAX_DIGEST_SIZE];
            if on_data && verify::hash_for_block(v, target, self.ctx, block, &mut want, io).is_ok()
            {
                // Known zero blocks are skipped entirely.
                if v.zero_digest
                    .as_ref()
                    .is_some_and(|z| z[..ds] == want[..ds])
                {
                    continue;
                }
                if use_erasures && fio.neras < roots {
                    let mut real = [0u8; MAX_DIGEST_SIZE];
                    if v.hash_block(buf.data(), &mut real).is_ok() && real[..ds] != want[..ds] {
                        fio.erasures[fio.neras] = i as u8;
                        fio.neras += 1;
                    }
                }
            }
            // Deinterleave the bytes that fit into the buffers, from `pos`
            // on: byte `pos + k` of the block is byte `i` of codeword `k`.
            // Buffer by buffer, a stride of `rsn` in each (C's
            // `fec_for_each_buffer_rs_block`): the innermost loop of a
            // correction, it runs `rsn` times per byte of the block.
            let data = buf.data();
            let end = bs.min(pos + fio.per_pass()).min(data.len());
            let src = data.get(pos..end).unwrap_or(&[]);
            let codewords = src.chunks(1 << BUF_RS_BITS);
            for (chunk, dst) in codewords.zip(fio.bufs.iter_mut().flatten()) {
                let column = dst.get_mut(i..).unwrap_or(&mut []);
                for (d, &byte) in column.iter_mut().step_by(rsn).zip(chunk) {
                    *d = byte;
                }
            }
        }
        target_index.ok_or(EIO)
    }

    /// Decodes the codewords in the buffers and copies the corrected bytes of
    /// the target block (index `index` in each codeword) to `fio.output` from
    /// `pos` on (`fec_decode_bufs()`).
    fn decode_bufs(&mut self, index: usize, pos: usize) -> Result {
        let (v, target, fec, rsb) = (self.v, self.target, self.fec, self.rsb);
        let fio = &mut self.fio;
        let rsn = fec.geo.rsn as usize;
        let roots = fec.geo.roots as usize;
        let bs = fec.block_size();
        // The parity of codeword `rsb + pos` on: `roots` bytes each, packed,
        // so that one codeword's may span two parity blocks.
        let (mut parity_block, mut parity_pos) = fec.geo.parity_at(rsb + pos as u64);
        let read_parity = |block: u64| {
            fec.bufio.read(target, block).inspect_err(|e| {
                kernel::pr_err!(
                    "device-mapper: {}: {}: FEC {}: parity read failed (block {}): {}\n",
                    PREFIX,
                    v.data_dev.name(),
                    rsb,
                    block,
                    e.to_errno()
                )
            })
        };
        let mut par = read_parity(parity_block)?;
        let mut corrected = 0u32;
        let mut par_buf = [0u8; FEC_MAX_ROOTS as usize];
        let mut result = Ok(());
        let neras = fio.neras;
        for k in 0..fio.per_pass() {
            if pos + k >= bs {
                break;
            }
            let to_copy = (bs - parity_pos).min(roots);
            par_buf[..to_copy].copy_from_slice(&par.data()[parity_pos..parity_pos + to_copy]);
            parity_pos += to_copy;
            if to_copy < roots {
                parity_block += 1;
                parity_pos = roots - to_copy;
                drop(par);
                par = read_parity(parity_block)?;
                par_buf[to_copy..roots].copy_from_slice(&par.data()[..parity_pos]);
            }
            let (erasures, rs) = (&fio.erasures[..neras], &mut fio.rs);
            let Some(cw) = codeword(&mut fio.bufs, rsn, k) else {
                result = Err(EINVAL);
                break;
            };
            match rs.decode(cw, &par_buf[..roots], erasures) {
                Ok(n) => corrected += n,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            fio.output[pos + k] = cw[index];
        }
        drop(par);
        match result {
            Err(e) if neras != 0 => crate::dm_log_limit!(
                pr_err,
                PREFIX,
                "{}: FEC {}: failed to correct: {}",
                v.data_dev.name(),
                rsb,
                e.to_errno()
            ),
            Ok(()) if corrected > 0 => crate::dm_log_limit!(
                pr_warn,
                PREFIX,
                "{}: FEC {}: corrected {} errors",
                v.data_dev.name(),
                rsb,
                corrected
            ),
            _ => {}
        }
        result
    }
}

const _: () = assert!(RS_CODEWORD == FEC_RSM as usize);
