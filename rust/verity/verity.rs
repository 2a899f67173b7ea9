// SPDX-License-Identifier: GPL-2.0

//! `verity`: dm-verity in Rust.
//!
//! A drop-in for the C target of Linux 6.12 (`drivers/md/dm-verity-target.c`):
//! same target name, version, table line, status, options and behaviour,
//! so `veritysetup` and `dmsetup` drive it unchanged. Every data block read is
//! verified against a hash tree whose root digest is in the table; hash
//! blocks are cached and verified once (dm-bufio). The root hash (and its
//! signature status) is bound to the mapped block device in `preresume`,
//! where security modules such as IPE find it.
//!
//! Split like the C twin: the table (`table.rs`), the tree's shape
//! (`geometry.rs`), the I/O path (`verify.rs`), forward error correction
//! (`fec.rs`), and this file: construction, status, and the dm hooks.

// No `unsafe` in a target: only the abstraction (`mod dm`) has any.
#![deny(unsafe_code)]

#[path = "../dm/mod.rs"]
pub mod dm;
#[cfg(dm_reed_solomon)]
mod fec;
#[cfg(not(dm_reed_solomon))]
#[path = "fec_disabled.rs"]
mod fec;
pub mod geometry;
pub mod table;
mod verify;
mod verify_bh;
mod verify_sig;

use core::{
    fmt::Write,
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64},
};
use dm::{
    bufio::BufioClient,
    completion::{CompletionHandler, CompletionHook},
    hash::{Shash, MAX_DIGEST_SIZE, MAX_STATE_SIZE},
    reason, security, BlkStatus, MapBio, MapResult, Operations, StatusType, StatusWriter, Target,
};
use geometry::Geometry;
use kernel::{c_str, new_mutex, prelude::*, str::CString, sync::Mutex};
use table::{CorruptionMode, ErrorMode};

const DM_MSG_PREFIX: &str = "verity";

/// Whether this build has forward error correction (C's
/// `CONFIG_DM_VERITY_FEC`): Kbuild sets `dm_reed_solomon` when the kernel
/// has the Reed-Solomon decoder (`CONFIG_REED_SOLOMON_DEC8`). Without it the
/// FEC options are refused as by C built without FEC.
const FEC: bool = cfg!(dm_reed_solomon);

// dm core loads targets with request_module("dm-<target>"): the alias lets
// it find this module where the C one is not installed (an initramfs for
// dm-mod.create=).
module_dm_target! {
    type: Verity,
    name: "dm_verity_rs",
    description: "device-mapper target for transparent disk integrity checking, in Rust",
    alias: ["dm-verity"],
    state: dm::security::ModuleKeyring,
}

/// One verity device.
///
/// Field order is drop order: the buffer cache goes first (with its
/// workqueue, `kverityd`, drained of pending prefetches and verifications),
/// then the devices it reads.
struct Verity {
    /// Forward error correction, if the table asks for it; it reads through
    /// `bufio` and the devices, so it goes first.
    fec: Option<fec::Fec>,
    /// The hash block cache. Its workqueue is the target's `kverityd`: hash
    /// prefetches and data verification run there, as in C.
    bufio: BufioClient,
    hash: Shash,
    data_dev: dm::Device,
    hash_dev: dm::Device,
    geo: Geometry,
    /// The algorithm as written in the table, echoed back by `dmsetup table`.
    alg_name: CString,
    root_digest: [u8; MAX_DIGEST_SIZE],
    salt: KVec<u8>,
    /// Version 1: the hash state after the salt, so each block hashes from it.
    salted_state: KVec<u8>,
    zero_digest: Option<[u8; MAX_DIGEST_SIZE]>,
    /// `check_at_most_once`: one bit per data block verified once.
    validated: Option<KVVec<AtomicU64>>,
    mode: CorruptionMode,
    error_mode: ErrorMode,
    try_verify_in_tasklet: bool,
    sig_key_desc: Option<CString>,
    root_digest_sig: Option<KVec<u8>>,
    hash_failed: AtomicBool,
    corrupted_errs: AtomicU32,
    /// Re-reads a block whose hash did not match before calling it corrupt
    /// (the bio's pages may have changed under the read, e.g. by a
    /// concurrent writer of an O_DIRECT buffer): C's `verity_recheck`.
    recheck_io: dm::io::IoClient,
    recheck_buf: Pin<KBox<Mutex<KVec<u8>>>>,
}

impl Verity {
    fn digest_size(&self) -> usize {
        self.geo.digest_size as usize
    }

    fn root_digest(&self) -> &[u8] {
        &self.root_digest[..self.digest_size()]
    }
}

/// Fails the constructor with a reason from the pure table code.
fn bad(args: &dm::Args<'_>, r: &'static core::ffi::CStr) -> Error {
    args.fail(reason(r), EINVAL)
}

fn to_cstring(s: &[u8]) -> Result<CString> {
    let mut v = KVec::with_capacity(s.len() + 1, GFP_KERNEL)?;
    v.extend_from_slice(s, GFP_KERNEL)?;
    v.push(0, GFP_KERNEL)?;
    Ok(CString::try_from(
        kernel::str::CStr::from_bytes_with_nul(&v).map_err(|_| EINVAL)?,
    )?)
}

#[vtable]
impl Operations for Verity {
    const NAME: &'static CStr = c_str!("verity");
    // The version of the C target this one matches.
    const VERSION: [u32; 3] = [1, 10, 0];
    // Security modules rely on a verity table being alone and never replaced
    // by a table of another type.
    const FEATURES: u64 = dm::features::SINGLETON | dm::features::IMMUTABLE;

    type PerBio = CompletionHook;

    fn ctr(target: &mut dm::Ctr<'_>, args: &mut dm::Args<'_>) -> Result<impl PinInit<Self, Error>> {
        if target.is_writable() {
            return Err(args.fail(c_str!("Device must be readonly"), EINVAL));
        }
        if args.count() < table::MANDATORY_ARGS {
            return Err(args.fail(c_str!("Not enough arguments"), EINVAL));
        }
        // C's first allocation is the target's structure; ours are the
        // argument vectors: the same reason when they fail.
        let no_mem =
            |args: &dm::Args<'_>| args.fail(c_str!("Cannot allocate verity structure"), ENOMEM);
        let mut argc: KVec<&CStr> =
            KVec::with_capacity(args.count(), GFP_KERNEL).map_err(|_| no_mem(args))?;
        let mut argv: KVec<&[u8]> =
            KVec::with_capacity(args.count(), GFP_KERNEL).map_err(|_| no_mem(args))?;
        while let Some(a) = args.next_opt() {
            argc.push(a, GFP_KERNEL).map_err(|_| no_mem(args))?;
            argv.push(a.as_bytes(), GFP_KERNEL)
                .map_err(|_| no_mem(args))?;
        }
        let opt_args = &argv[table::MANDATORY_ARGS..];
        // C validates the option count before anything else.
        table::check_opt_count(opt_args, FEC).map_err(|r| bad(args, r))?;

        let version = table::parse_version(argv[0]).map_err(|r| bad(args, r))?;
        let data_dev = target.get_device_read_only(argc[1], c_str!("Data device lookup failed"))?;
        let hash_dev = target.get_device_read_only(argc[2], c_str!("Hash device lookup failed"))?;
        let data_block_bits = table::parse_block_size(
            argv[3],
            data_dev.logical_block_size(),
            kernel::page::PAGE_SIZE as u32,
            c"Invalid data device block size",
        )
        .map_err(|r| bad(args, r))?;
        let hash_block_bits = table::parse_block_size(
            argv[4],
            hash_dev.logical_block_size(),
            i32::MAX as u32,
            c"Invalid hash device block size",
        )
        .map_err(|r| bad(args, r))?;
        let data_blocks = table::parse_blocks(argv[5], data_block_bits, c"Invalid data blocks")
            .map_err(|r| bad(args, r))?;
        if target.len() > data_blocks << (data_block_bits - 9) {
            return Err(args.fail(c_str!("Data device is too small"), EINVAL));
        }
        let hash_start = table::parse_blocks(argv[6], hash_block_bits, c"Invalid hash start")
            .map_err(|r| bad(args, r))?;

        let alg_name = to_cstring(argv[7])?;
        let hash = Shash::new(&alg_name)
            .map_err(|e| args.fail(c_str!("Cannot initialize hash function"), e))?;
        dm_info!("{} using shash \"{}\"", &*alg_name, hash.driver_name());
        let digest_size = hash.digest_size();
        if (1usize << hash_block_bits) < digest_size * 2 {
            return Err(args.fail(c_str!("Digest size too big"), EINVAL));
        }

        let mut root_digest = [0u8; MAX_DIGEST_SIZE];
        table::parse_digest(argv[8], digest_size, &mut root_digest).map_err(|r| bad(args, r))?;

        let mut salt = KVec::new();
        if argv[9] != b"-" {
            salt.extend_with(argv[9].len() / 2, 0, GFP_KERNEL)
                .map_err(|e| args.fail(c_str!("Cannot allocate salt"), e.into()))?;
        }
        table::parse_salt(argv[9], &mut salt).map_err(|r| bad(args, r))?;
        let mut salted_state = KVec::new();
        if version >= 1 {
            salted_state
                .extend_with(hash.state_size().min(MAX_STATE_SIZE), 0, GFP_KERNEL)
                .map_err(|e| args.fail(c_str!("Cannot allocate initial hash state"), e.into()))?;
            hash.export_state(&salt, &mut salted_state)
                .map_err(|e| args.fail(c_str!("Cannot set up initial hash state"), e))?;
        }

        let opts =
            table::parse_options(opt_args, data_block_bits, FEC).map_err(|r| bad(args, r))?;
        let fec_dev = match opts.fec.dev {
            Some(path) => Some(
                target
                    .get_device_read_only(&to_cstring(path)?, c_str!("FEC device lookup failed"))?,
            ),
            None => None,
        };

        // The root hash signature, from the user keyring.
        let mut sig_key_desc = None;
        let mut root_digest_sig = None;
        if let Some(desc) = opts.sig_key_desc {
            let desc = to_cstring(desc)?;
            let sig = security::read_user_key(&desc)
                .map_err(|e| args.fail(reason(table::SIG_KEY_INVALID), e))?;
            sig_key_desc = Some(desc);
            root_digest_sig = Some(sig);
        }
        // The signature covers the root digest as written in the table (hex).
        verify_sig::verify_root_hash(argv[8], root_digest_sig.as_deref())
            .map_err(|e| args.fail(c_str!("Root hash verification failed"), e))?;

        let geo = Geometry::new(
            version,
            data_block_bits,
            hash_block_bits,
            digest_size as u32,
            data_blocks,
            hash_start,
        )
        .map_err(|r| args.fail(reason(r), E2BIG))?;

        let verify_wq =
            dm::Workqueue::new(c_str!("kverityd"), dm::WQ_MEM_RECLAIM | dm::WQ_HIGHPRI, 0)
                .map_err(|e| args.fail(c_str!("Cannot allocate workqueue"), e))?;
        // try_verify_in_tasklet looks hash blocks up in the BH workqueue:
        // dm-bufio's locks must be spinlocks there.
        let new_bufio = if opts.try_verify_in_tasklet {
            BufioClient::new_no_sleep
        } else {
            BufioClient::new
        };
        let bufio = new_bufio(&hash_dev, 1 << hash_block_bits, 1, verify_wq)
            .map_err(|e| args.fail(c_str!("Cannot initialize dm-bufio"), e))?;
        if bufio.device_size() < geo.hash_end {
            return Err(args.fail(c_str!("Hash device is too small"), E2BIG));
        }

        let validated = if opts.check_at_most_once {
            if data_blocks > i32::MAX as u64 {
                return Err(args.fail(c_str!("device too large to use check_at_most_once"), E2BIG));
            }
            let words = data_blocks.div_ceil(64) as usize;
            let mut v = KVVec::with_capacity(words, GFP_KERNEL).map_err(|e| {
                args.fail(
                    c_str!("failed to allocate bitset for check_at_most_once"),
                    e.into(),
                )
            })?;
            for _ in 0..words {
                v.push(AtomicU64::new(0), GFP_KERNEL)?;
            }
            Some(v)
        } else {
            None
        };

        let recheck_io =
            dm::io::IoClient::new().map_err(|e| args.fail(c_str!("Cannot allocate dm io"), e))?;
        // C's recheck pool (`mempool_init_page_pool`): one buffer here.
        let no_pool = |e: Error| args.fail(c_str!("Cannot allocate mempool"), e);
        let mut buf = KVec::new();
        buf.extend_with(1usize << data_block_bits, 0u8, GFP_KERNEL)
            .map_err(|e| no_pool(e.into()))?;
        let recheck_buf = KBox::pin_init(new_mutex!(buf), GFP_KERNEL).map_err(no_pool)?;

        // FEC is on with a device; its other options alone are ignored.
        let fec = match fec_dev {
            Some(dev) => {
                let fgeo = geometry::FecGeometry::new(
                    &geo,
                    opts.fec.roots,
                    opts.fec.blocks,
                    opts.fec.start,
                )
                .map_err(|r| bad(args, r))?;
                let (hash_start, data_blocks) = (geo.hash_start, geo.data_blocks);
                Some(
                    fec::Fec::new(
                        fgeo,
                        dev,
                        &data_dev,
                        bufio.device_size(),
                        hash_start,
                        data_blocks,
                    )
                    .map_err(|(r, e)| args.fail(reason(r), e))?,
                )
            }
            None => None,
        };

        let mut v = Verity {
            fec,
            bufio,
            hash,
            data_dev,
            hash_dev,
            geo,
            alg_name,
            root_digest,
            salt,
            salted_state,
            zero_digest: None,
            validated,
            mode: opts.mode,
            error_mode: opts.error_mode,
            try_verify_in_tasklet: opts.try_verify_in_tasklet,
            sig_key_desc,
            root_digest_sig,
            hash_failed: AtomicBool::new(false),
            corrupted_errs: AtomicU32::new(0),
            recheck_io,
            recheck_buf,
        };
        if opts.ignore_zero_blocks {
            let mut zero = KVec::new();
            zero.extend_with(1usize << data_block_bits, 0u8, GFP_KERNEL)
                .map_err(|e| args.fail(c_str!("Cannot allocate zero digest"), e.into()))?;
            let mut digest = [0u8; MAX_DIGEST_SIZE];
            v.hash_block(&zero[..], &mut digest)
                .map_err(|e| args.fail(c_str!("Cannot allocate zero digest"), e))?;
            v.zero_digest = Some(digest);
        }
        Ok(v)
    }

    fn map<'m>(&self, target: &Target, bio: MapBio<'m, Self>) -> MapResult<'m> {
        verify::map(self, target, bio)
    }

    fn postsuspend(&self, target: &Target, _ctx: &dm::Sleepable<'_>) {
        // Flushes kverityd, then empties the cache; refused (nothing to undo)
        // if a buffer is still held, which a suspended table never does.
        if self.bufio.reset(target).is_err() {
            crate::dm_warn!("{}: hash cache busy, not reset", target.device_name());
        }
    }

    fn preresume(&self, target: &Target, _ctx: &dm::Sleepable<'_>) -> Result {
        let root = security::VerityRootHash {
            alg: self.hash.alg_name(),
            digest: self.root_digest(),
        };
        // dm core has already swapped this table in (the previous one is
        // gone) when preresume runs, and a failure leaves it suspended: on
        // any failure withdraw the root hash, so that the binding never
        // describes a table that is not the live one. (C undoes it only when
        // the second call fails; if the first fails, the previous table's
        // root hash would stay bound.)
        let r = target
            .set_verity_root_hash(Some(&root))
            .and_then(|()| target.set_verity_signature(self.root_digest_sig.as_deref()));
        if r.is_err() {
            let _ = target.set_verity_root_hash(None);
        }
        r
    }

    fn status(
        &self,
        _target: &Target,
        _ctx: &dm::Sleepable<'_>,
        kind: StatusType,
        _flags: u32,
        out: &mut StatusWriter<'_>,
    ) {
        // Writes into the bounded buffer cannot fail: they truncate.
        let _ = match kind {
            StatusType::Info => out.write_char(
                if self.hash_failed.load(core::sync::atomic::Ordering::Relaxed) {
                    'C'
                } else {
                    'V'
                },
            ),
            StatusType::Table => self.emit_table(out),
            StatusType::Ima => self.emit_ima(out),
        };
    }

    fn iterate_devices(&self, target: &Target, callout: &mut dm::DeviceCallout<'_>) -> i32 {
        callout.visit(&self.data_dev, 0, target.len())
    }

    fn io_hints(&self, _target: &Target, limits: &mut dm::QueueLimits) {
        let bs = self.geo.data_block_size();
        limits.raise_logical_block_size(bs);
        limits.raise_physical_block_size(bs);
        let lbs = limits.logical_block_size();
        limits.set_io_min(lbs);
        // Like C: no direct I/O aligned below the block size, so no data
        // block ever spans two pages.
        limits.set_dma_alignment(lbs - 1);
    }
}

impl CompletionHandler for Verity {
    fn completion_queue(&self) -> &dm::Workqueue {
        self.bufio.workqueue()
    }

    fn bio_completed(
        &self,
        target: &Target,
        ctx: &dm::Sleepable<'_>,
        bio: &mut dm::completion::CompletedBio<'_>,
    ) -> BlkStatus {
        verify::bio_completed(self, target, ctx, bio)
    }

    fn try_bh(&self) -> bool {
        self.try_verify_in_tasklet
    }

    fn bio_completed_bh(
        &self,
        bh: &dm::Bh<'_>,
        bio: &mut dm::completion::CompletedBio<'_>,
    ) -> dm::completion::BhOutcome {
        verify_bh::bio_completed_bh(self, bh, bio)
    }
}

fn emit_hex(out: &mut StatusWriter<'_>, bytes: &[u8]) -> core::fmt::Result {
    for b in bytes {
        write!(out, "{:02x}", b)?;
    }
    Ok(())
}

impl Verity {
    fn emit_salt(&self, out: &mut StatusWriter<'_>) -> core::fmt::Result {
        if self.salt.is_empty() {
            out.write_char('-')
        } else {
            emit_hex(out, &self.salt)
        }
    }

    fn emit_table(&self, out: &mut StatusWriter<'_>) -> core::fmt::Result {
        write!(
            out,
            "{} {} {} {} {} {} {} {} ",
            self.geo.version,
            self.data_dev.name(),
            self.hash_dev.name(),
            self.geo.data_block_size(),
            self.geo.hash_block_size(),
            self.geo.data_blocks,
            self.geo.hash_start,
            &*self.alg_name
        )?;
        emit_hex(out, self.root_digest())?;
        out.write_char(' ')?;
        self.emit_salt(out)?;
        let args = u32::from(self.mode != CorruptionMode::Eio)
            + u32::from(self.error_mode != ErrorMode::Eio)
            + u32::from(self.zero_digest.is_some())
            + u32::from(self.validated.is_some())
            + u32::from(self.try_verify_in_tasklet)
            + if self.fec.is_some() {
                table::FEC_OPT_ARGS
            } else {
                0
            }
            + if self.sig_key_desc.is_some() { 2 } else { 0 };
        if args == 0 {
            return Ok(());
        }
        write!(out, " {}", args)?;
        for opt in [self.mode.option(), self.error_mode.option()]
            .into_iter()
            .flatten()
        {
            write!(out, " {}", opt)?;
        }
        if self.zero_digest.is_some() {
            out.write_str(" ignore_zero_blocks")?;
        }
        if self.validated.is_some() {
            out.write_str(" check_at_most_once")?;
        }
        if self.try_verify_in_tasklet {
            out.write_str(" try_verify_in_tasklet")?;
        }
        if let Some(fec) = &self.fec {
            write!(
                out,
                " use_fec_from_device {} fec_blocks {} fec_start {} fec_roots {}",
                fec.dev.name(),
                fec.geo.blocks,
                fec.geo.start,
                fec.geo.roots
            )?;
        }
        if let Some(desc) = &self.sig_key_desc {
            write!(out, " root_hash_sig_key_desc {}", &**desc)?;
        }
        Ok(())
    }

    fn emit_ima(&self, out: &mut StatusWriter<'_>) -> core::fmt::Result {
        write!(
            out,
            "target_name={},target_version={}.{}.{}",
            Self::NAME,
            Self::VERSION[0],
            Self::VERSION[1],
            Self::VERSION[2]
        )?;
        let failed = self.hash_failed.load(core::sync::atomic::Ordering::Relaxed);
        write!(out, ",hash_failed={}", if failed { 'C' } else { 'V' })?;
        write!(out, ",verity_version={}", self.geo.version)?;
        write!(out, ",data_device_name={}", self.data_dev.name())?;
        write!(out, ",hash_device_name={}", self.hash_dev.name())?;
        write!(out, ",verity_algorithm={}", &*self.alg_name)?;
        out.write_str(",root_digest=")?;
        emit_hex(out, self.root_digest())?;
        out.write_str(",salt=")?;
        self.emit_salt(out)?;
        let yn = |b: bool| if b { 'y' } else { 'n' };
        write!(
            out,
            ",ignore_zero_blocks={}",
            yn(self.zero_digest.is_some())
        )?;
        write!(out, ",check_at_most_once={}", yn(self.validated.is_some()))?;
        if let Some(desc) = &self.sig_key_desc {
            write!(out, ",root_hash_sig_key_desc={}", &**desc)?;
        }
        if let Some(opt) = self.mode.option() {
            write!(out, ",verity_mode={}", opt)?;
        }
        if let Some(opt) = self.error_mode.option() {
            write!(out, ",verity_error_mode={}", opt)?;
        }
        out.write_char(';')
    }
}
