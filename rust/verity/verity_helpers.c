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
#include <linux/spinlock.h>
#include <linux/verification.h>
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
/* Guards dm_verity_keyring: made, used and dropped from any thread. */
static DEFINE_SPINLOCK(dm_verity_keyring_lock);

static bool keyring_unsealed;
module_param(keyring_unsealed, bool, 0444);
MODULE_PARM_DESC(keyring_unsealed, "Leave the dm-verity keyring unsealed");

/* One keyring at a time: a second init while one exists fails (-EBUSY). */
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
		if (r)
			goto drop;
	}
	r = -EBUSY;
	spin_lock(&dm_verity_keyring_lock);
	if (!dm_verity_keyring) {
		dm_verity_keyring = k;
		r = 0;
	}
	spin_unlock(&dm_verity_keyring_lock);
	if (!r)
		return 0;
drop:
	key_revoke(k);
	key_put(k);
	return r;
}

void rdm_module_keyring_exit(void)
{
	struct key *k;

	spin_lock(&dm_verity_keyring_lock);
	k = dm_verity_keyring;
	dm_verity_keyring = NULL;
	spin_unlock(&dm_verity_keyring_lock);
	if (k) {
		key_revoke(k);
		key_put(k);
	}
}

/*
 * Verifies against the keyring if there is one and it holds keys and is
 * sealed (as C: no lock on its contents, a snapshot): 0 or an error of
 * verify_pkcs7_signature(), 1 when it is not used. The keyring is held
 * (key_get) for the check, so that an exit meanwhile cannot free it.
 */
int rdm_module_keyring_verify(const void *data, size_t len, const void *sig, size_t sig_len)
{
	struct key *k;
	int r = 1;

	spin_lock(&dm_verity_keyring_lock);
	k = key_get(dm_verity_keyring);
	spin_unlock(&dm_verity_keyring_lock);
	if (!k)
		return 1;
	if (READ_ONCE(k->keys.nr_leaves_on_tree) && READ_ONCE(k->restrict_link))
		r = verify_pkcs7_signature(data, len, sig, sig_len, k,
					   VERIFYING_UNSPECIFIED_SIGNATURE, NULL, NULL);
	key_put(k);
	return r;
}
