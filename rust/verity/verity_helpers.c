// SPDX-License-Identifier: GPL-2.0
/*
 * The C side of dm-verity-rs.ko: the abstraction's C helpers, and the
 * module parameters, which 6.12's Rust `module!` cannot declare (read
 * through rust/dm/params.rs).
 */
#include "../dm/helpers.c"
#include <linux/moduleparam.h>

/* As dm-verity-verify-sig.c: a table without root_hash_sig_key_desc is refused. */
static bool require_signatures;
module_param(require_signatures, bool, 0444);
MODULE_PARM_DESC(require_signatures,
		"Verify the roothash of dm-verity hash tree");

bool rdm_param_require_signatures(void)
{
	return READ_ONCE(require_signatures);
}
