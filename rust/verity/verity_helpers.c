// SPDX-License-Identifier: GPL-2.0
/*
 * The C side of dm-verity-rs.ko: the abstraction's C helpers (with the
 * Reed-Solomon decoders for FEC, reed_solomon.ko: this module only), and
 * the module parameters, which 6.12's Rust `module!` cannot declare (read
 * through rust/dm/params.rs).
 */
#define RDM_REED_SOLOMON
#ifdef RDM_HELPERS_BUILTIN
/* Built in: the helpers are the kernel's one copy (rdm-helpers.o). */
#include "../dm/helpers.h"
#else
#include "../dm/helpers.c"
#endif
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

/*
 * Not in C: bios verified in the BH workqueue (try_verify_in_tasklet),
 * counted by the abstraction (rust/dm/completion.rs); read-only.
 */
static int verified_in_bh_set(const char *val, const struct kernel_param *kp)
{
	return -EPERM;
}

static const struct kernel_param_ops verified_in_bh_ops = {
	.set = verified_in_bh_set,
	.get = rdm_bh_completions_get,
};
module_param_cb(verified_in_bh, &verified_in_bh_ops, NULL, 0444);
MODULE_PARM_DESC(verified_in_bh,
		"Bios verified in the BH workqueue (try_verify_in_tasklet), not counting those deferred to kverityd");
