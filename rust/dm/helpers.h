/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C helpers of the Rust device-mapper abstraction: out-of-line wrappers of
 * static inline functions and macros, which Rust cannot call directly.
 * Each module compiles its own copy (rust/<target>/<target>_helpers.c), so the
 * names only need to be unique within one module.
 */
#ifndef RDM_HELPERS_H
#define RDM_HELPERS_H

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/device-mapper.h>
#include <linux/dm-bufio.h>
#include <linux/moduleparam.h>
#include <linux/workqueue.h>
#include <crypto/hash.h>
#include "dm-space-map.h"

void rdm_bio_set_dev(struct bio *bio, struct block_device *bdev);
int rdm_accept_partial_bio(struct bio *bio, unsigned int n_sectors);
sector_t rdm_bdev_nr_sectors(struct block_device *bdev);
unsigned int rdm_bdev_logical_block_size(struct block_device *bdev);

/* bio data, one segment at a time */
void *rdm_bio_iter_map(struct bio *bio, struct bvec_iter *iter, unsigned int *len);
void rdm_unmap_local(void *addr);
void rdm_bio_advance_iter(struct bio *bio, struct bvec_iter *iter, unsigned int bytes);

/* workqueues */
struct workqueue_struct *rdm_alloc_workqueue(const char *name, unsigned int flags,
					     int max_active);
struct workqueue_struct *rdm_alloc_ordered_workqueue(const char *name, unsigned int flags);
void rdm_init_work(struct work_struct *work, work_func_t fn);
void rdm_init_work_bh(struct work_struct *work, work_func_t fn);
bool rdm_queue_work(struct workqueue_struct *wq, struct work_struct *work);
void rdm_flush_workqueue(struct workqueue_struct *wq);
bool rdm_queue_work_bh(struct work_struct *work);
void rdm_bh_completion_count(void);
#ifndef __BINDGEN__
/* the get of a module parameter showing the count (C only) */
int rdm_bh_completions_get(char *buf, const struct kernel_param *kp);
#endif

/* crypto shash */
void rdm_crypto_free_shash(struct crypto_shash *tfm);
unsigned int rdm_crypto_shash_digestsize(struct crypto_shash *tfm);
unsigned int rdm_crypto_shash_descsize(struct crypto_shash *tfm);
unsigned int rdm_crypto_shash_statesize(struct crypto_shash *tfm);
const char *rdm_crypto_shash_alg_name(struct crypto_shash *tfm);
const char *rdm_crypto_shash_driver_name(struct crypto_shash *tfm);
int rdm_crypto_shash_init(struct shash_desc *desc);

/* persistent-data space maps (static inline dispatchers) */
void rdm_dm_sm_destroy(struct dm_space_map *sm);
int rdm_dm_sm_root_size(struct dm_space_map *sm, size_t *result);
int rdm_dm_sm_copy_root(struct dm_space_map *sm, void *copy_to_here_le, size_t len);
int rdm_dm_sm_get_nr_free(struct dm_space_map *sm, dm_block_t *count);
int rdm_dm_sm_get_nr_blocks(struct dm_space_map *sm, dm_block_t *count);
int rdm_dm_sm_inc_block(struct dm_space_map *sm, dm_block_t b);
int rdm_dm_sm_dec_block(struct dm_space_map *sm, dm_block_t b);

/* bio lists */
void rdm_bio_list_add(struct bio_list *bl, struct bio *bio);
struct bio *rdm_bio_list_pop(struct bio_list *bl);

/* keys, LSM, system */
void *rdm_read_user_key(const char *desc, size_t *len);
struct block_device *rdm_dm_target_bdev(struct dm_target *ti);
void rdm_dm_target_uevent(struct dm_target *ti, char *env);
void __noreturn rdm_panic(const char *msg);
void rdm_kfree(const void *p);

/* Context checks. */
void rdm_might_sleep(void);


/* sync.rs: spinlocks usable from bio completion (hard/soft irq) context,
 * and waiting for a counter to drop to zero. */
unsigned long rdm_spin_lock_irqsave(spinlock_t *lock);
void rdm_spin_unlock_irqrestore(spinlock_t *lock, unsigned long flags);
void rdm_wait_var_zero(int *var);
void rdm_wake_up_var(void *var);

/* periodic.rs: a self-rearming delayed work item calling back into Rust. */
struct rdm_periodic;
struct rdm_periodic *rdm_periodic_alloc(void (*fn)(void *), void *ctx, unsigned long period);
void rdm_periodic_schedule(struct rdm_periodic *p);
void rdm_periodic_cancel_sync(struct rdm_periodic *p);
void rdm_periodic_free(struct rdm_periodic *p);
unsigned long rdm_jiffies(void);

/* device.rs: discard limits of an underlying device. */
unsigned int rdm_bdev_max_discard_sectors(struct block_device *bdev);
struct rdm_discard_limits {
	unsigned int max_discard_sectors;
	unsigned int max_hw_discard_sectors;
	unsigned int granularity;
	unsigned int alignment;
	unsigned short max_segments;
};
void rdm_bdev_discard_limits(struct block_device *bdev, struct rdm_discard_limits *out);
/* bio data that Rust must not read as a slice (completion.rs) */
void rdm_memcpy(void *dst, const void *src, size_t n);
void rdm_memset(void *dst, int c, size_t n);

/* noio.rs */
unsigned int rdm_memalloc_noio_save(void);
void rdm_memalloc_noio_restore(unsigned int flags);

/* mempool.rs: kmalloc-backed mempools; allocations that wait (GFP_NOIO) or
 * do not (GFP_NOWAIT). */
struct mempool_s;
struct mempool_s *rdm_mempool_create_kmalloc(int min_nr, size_t size);
void *rdm_mempool_alloc_noio(struct mempool_s *pool);
void *rdm_mempool_alloc_nowait(struct mempool_s *pool);
void rdm_mempool_free(void *element, struct mempool_s *pool);
void rdm_mempool_destroy(struct mempool_s *pool);

/* kcopyd.rs: a client dropped (or waited for) from its own completion. */
void rdm_kcopyd_warn_drop_in_callback(void);
void rdm_kcopyd_warn_wait_in_callback(void);

/* reed_solomon.rs: pools of Reed-Solomon decoders (rdm_rs_pool_create
 * exists only where RDM_REED_SOLOMON is defined). */
unsigned int rdm_num_online_cpus(void);
struct mempool_s *rdm_rs_pool_create(int min_nr, int roots);

/*
 * params.rs: module parameters a module declares in its own
 * rust/<target>/<target>_helpers.c (only that module defines them).
 */
bool rdm_param_require_signatures(void);

/*
 * security.rs (ModuleKeyring): a keyring of the module's own, such as C
 * dm-verity's ".dm-verity" of kernels after 6.12, defined with its
 * parameter in the module's rust/<target>/<target>_helpers.c (only that
 * module defines them). One keyring at a time: init fails with -EBUSY
 * while one exists; exit drops it (if any); verify holds a reference for
 * the check and returns 1 when there is no keyring or it is not yet usable
 * (no keys, or not sealed).
 */
int rdm_module_keyring_init(void);
void rdm_module_keyring_exit(void);
int rdm_module_keyring_verify(const void *data, size_t len, const void *sig, size_t sig_len);

#endif /* RDM_HELPERS_H */
