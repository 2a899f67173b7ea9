// SPDX-License-Identifier: GPL-2.0
/*
 * The C side of dm-verity-rs.ko: the abstraction's C helpers (with the
 * Reed-Solomon decoders for FEC, reed_solomon.ko: this module only, when
 * the kernel has them: Kbuild defines RDM_REED_SOLOMON), and the module
 * parameters, which 6.12's Rust `module!` cannot declare (read through
 * rust/dm/params.rs).
 */
#ifdef RDM_HELPERS_BUILTIN
/* Built in: the helpers are the kernel's one copy (rdm-helpers.o). */
#include "../dm/helpers.h"
#else
#include "../dm/helpers.c"
#endif
#include <linux/cred.h>
#include <linux/key.h>
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

/*
 * Beyond C 6.12, as dm-verity-verify-sig.c of later kernels: the
 * ".dm-verity" keyring, which userspace may fill at boot when the module
 * is loaded with keyring_unsealed=1 and then seal; signatures are checked
 * against it after the system keyrings, once it holds keys and is sealed
 * (rust/dm/security.rs, ModuleKeyring). C panics if it cannot make or seal
 * it; here the module load fails.
 */
static struct key *dm_verity_keyring;

static bool keyring_unsealed;
module_param(keyring_unsealed, bool, 0444);
MODULE_PARM_DESC(keyring_unsealed, "Leave the dm-verity keyring unsealed");

int rdm_module_keyring_init(void)
{
	struct key *k;
	int r;

	k = keyring_alloc(".dm-verity", GLOBAL_ROOT_UID, GLOBAL_ROOT_GID, current_cred(),
			  KEY_POS_SEARCH | KEY_USR_VIEW | KEY_USR_READ | KEY_USR_WRITE |
			  KEY_USR_SEARCH | KEY_USR_SETATTR,
			  KEY_ALLOC_NOT_IN_QUOTA, NULL, NULL);
	if (IS_ERR(k))
		return PTR_ERR(k);
	if (!keyring_unsealed) {
		r = keyring_restrict(make_key_ref(k, true), NULL, NULL);
		if (r) {
			key_revoke(k);
			key_put(k);
			return r;
		}
	}
	dm_verity_keyring = k;
	return 0;
}

void rdm_module_keyring_exit(void)
{
	key_revoke(dm_verity_keyring);
	key_put(dm_verity_keyring);
	dm_verity_keyring = NULL;
}

struct key *rdm_module_keyring(void)
{
	return dm_verity_keyring;
}

/* It holds keys and is sealed (as C: no lock, a snapshot). */
bool rdm_module_keyring_usable(void)
{
	return READ_ONCE(dm_verity_keyring->keys.nr_leaves_on_tree) &&
	       READ_ONCE(dm_verity_keyring->restrict_link);
}
