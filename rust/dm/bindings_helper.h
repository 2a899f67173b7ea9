/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Input of bindgen for the device-mapper bindings (rust/dm/bindings.rs).
 *
 * kernel::bindings in an unpatched 6.12 tree has no device-mapper types,
 * so Kbuild runs bindgen on this header with the kernel's own C flags.
 * Only dm items are generated; every other type they mention (bio,
 * block_device, queue_limits, ...) is taken from kernel::bindings so the
 * two sets of bindings agree on one definition of each C type.
 */
#include <linux/device-mapper.h>
#include <linux/dm-bufio.h>
#include <linux/dm-io.h>
#include <linux/dm-kcopyd.h>
#include <linux/reboot.h>
#include <linux/rslib.h>
#include <linux/security.h>
#include <linux/verification.h>
#include <crypto/hash.h>
#include "helpers.h"
#include "dm-block-manager.h"
#include "dm-transaction-manager.h"
#include "dm-space-map.h"
#include "dm-bitset.h"
#include "dm-array.h"
#include "dm-btree.h"

/* Macros bindgen cannot evaluate, as typed constants (see rust/bindgen_parameters). */
const blk_opf_t RDM_CONST_REQ_PREFLUSH = REQ_PREFLUSH;
const blk_opf_t RDM_CONST_REQ_FUA = REQ_FUA;
const blk_opf_t RDM_CONST_REQ_OP_MASK = REQ_OP_MASK;
const blk_status_t RDM_CONST_BLK_STS_OK = BLK_STS_OK;
const blk_status_t RDM_CONST_BLK_STS_IOERR = BLK_STS_IOERR;
const blk_status_t RDM_CONST_BLK_STS_NOTSUPP = BLK_STS_NOTSUPP;
const blk_status_t RDM_CONST_BLK_STS_RESOURCE = BLK_STS_RESOURCE;
const blk_status_t RDM_CONST_BLK_STS_PROTECTION = BLK_STS_PROTECTION;
const blk_mode_t RDM_CONST_BLK_OPEN_READ = BLK_OPEN_READ;
const blk_mode_t RDM_CONST_BLK_OPEN_WRITE = BLK_OPEN_WRITE;
const size_t RDM_CONST_HASH_MAX_DESCSIZE = HASH_MAX_DESCSIZE;
const size_t RDM_CONST_HASH_MAX_DIGESTSIZE = HASH_MAX_DIGESTSIZE;
const unsigned int RDM_CONST_WQ_MEM_RECLAIM = WQ_MEM_RECLAIM;
const unsigned int RDM_CONST_WQ_HIGHPRI = WQ_HIGHPRI;
const unsigned int RDM_CONST_WQ_UNBOUND = WQ_UNBOUND;
const blk_opf_t RDM_CONST_REQ_RAHEAD = REQ_RAHEAD;
const unsigned long RDM_CONST_HZ = HZ;
