// SPDX-License-Identifier: GPL-2.0
/*
 * Out-of-line wrappers of static inlines for the Rust device-mapper
 * abstraction; see helpers.h. Included once by each module's
 * rust/<target>/<target>_helpers.c.
 */
#include "helpers.h"
#include <linux/highmem.h>
#include <linux/key.h>
#include <linux/mempool.h>
#include <linux/slab.h>
#include <linux/sched/mm.h>
#include <linux/sysfs.h>
#include <keys/user-type.h>

void rdm_bio_set_dev(struct bio *bio, struct block_device *bdev)
{
	bio_set_dev(bio, bdev);
}

/*
 * dm_accept_partial_bio() for a bio in its target's map: only reads and
 * writes (dm core sends those once, never as duplicates, and with a length
 * to shorten; empty flushes have none), never on a zoned device (a BUG in
 * dm core), and at least one and at most all of the bio's sectors.
 */
int rdm_accept_partial_bio(struct bio *bio, unsigned int n_sectors)
{
	if (bio_op(bio) != REQ_OP_READ && bio_op(bio) != REQ_OP_WRITE)
		return -EINVAL;
	if (!n_sectors || n_sectors > bio_sectors(bio) || bdev_is_zoned(bio->bi_bdev))
		return -EINVAL;
	dm_accept_partial_bio(bio, n_sectors);
	return 0;
}

sector_t rdm_bdev_nr_sectors(struct block_device *bdev)
{
	return bdev_nr_sectors(bdev);
}

unsigned int rdm_bdev_logical_block_size(struct block_device *bdev)
{
	return bdev_logical_block_size(bdev);
}


void *rdm_bio_iter_map(struct bio *bio, struct bvec_iter *iter, unsigned int *len)
{
	struct bio_vec bv = bio_iter_iovec(bio, *iter);

	*len = bv.bv_len;
	return bvec_kmap_local(&bv);
}

void rdm_unmap_local(void *addr)
{
	kunmap_local(addr);
}

void rdm_bio_advance_iter(struct bio *bio, struct bvec_iter *iter, unsigned int bytes)
{
	bio_advance_iter(bio, iter, bytes);
}

struct workqueue_struct *rdm_alloc_workqueue(const char *name, unsigned int flags,
					     int max_active)
{
	return alloc_workqueue("%s", flags, max_active, name);
}

struct workqueue_struct *rdm_alloc_ordered_workqueue(const char *name, unsigned int flags)
{
	return alloc_ordered_workqueue("%s", flags, name);
}

void rdm_init_work(struct work_struct *work, work_func_t fn)
{
	INIT_WORK(work, fn);
}

/*
 * For a work item of the BH workqueue: INIT_WORK() gives the item the
 * lockdep class of its call site, and one class for works run both in
 * softirq (BH) and in process context is an "inconsistent lock state"
 * to lockdep. C dm-verity has two work_structs with two INIT_WORK()s
 * (io->bh_work, io->work); this is the second site.
 */
void rdm_init_work_bh(struct work_struct *work, work_func_t fn)
{
	INIT_WORK(work, fn);
}

bool rdm_queue_work(struct workqueue_struct *wq, struct work_struct *work)
{
	return queue_work(wq, work);
}

bool rdm_queue_work_bh(struct work_struct *work)
{
	return queue_work(system_bh_wq, work);
}

/*
 * Bios whose completion work finished in the BH workqueue (completion.rs);
 * a module may show it as a read-only parameter (rdm_bh_completions_get).
 */
static atomic_long_t rdm_bh_completions = ATOMIC_LONG_INIT(0);

void rdm_bh_completion_count(void)
{
	atomic_long_inc(&rdm_bh_completions);
}

int rdm_bh_completions_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(&rdm_bh_completions));
}

void rdm_flush_workqueue(struct workqueue_struct *wq)
{
	flush_workqueue(wq);
}

void rdm_crypto_free_shash(struct crypto_shash *tfm)
{
	crypto_free_shash(tfm);
}

unsigned int rdm_crypto_shash_digestsize(struct crypto_shash *tfm)
{
	return crypto_shash_digestsize(tfm);
}

unsigned int rdm_crypto_shash_descsize(struct crypto_shash *tfm)
{
	return crypto_shash_descsize(tfm);
}

unsigned int rdm_crypto_shash_statesize(struct crypto_shash *tfm)
{
	return crypto_shash_statesize(tfm);
}

const char *rdm_crypto_shash_alg_name(struct crypto_shash *tfm)
{
	return crypto_shash_alg_name(tfm);
}

const char *rdm_crypto_shash_driver_name(struct crypto_shash *tfm)
{
	return crypto_shash_driver_name(tfm);
}

int rdm_crypto_shash_init(struct shash_desc *desc)
{
	return crypto_shash_init(desc);
}

/*
 * A copy of the payload of the "user" key @desc (kmalloc'ed, free with
 * rdm_kfree()), or an ERR_PTR. The key API's payload access is macros and
 * RCU-protected accessors, hence this helper.
 */
void *rdm_read_user_key(const char *desc, size_t *len)
{
	const struct user_key_payload *ukp;
	struct key *key;
	void *copy;

	key = request_key(&key_type_user, desc, NULL);
	if (IS_ERR(key))
		return ERR_CAST(key);

	down_read(&key->sem);
	ukp = user_key_payload_locked(key);
	if (!ukp) {
		copy = ERR_PTR(-EKEYREVOKED);
	} else {
		copy = kmemdup(ukp->data, ukp->datalen, GFP_KERNEL);
		if (!copy)
			copy = ERR_PTR(-ENOMEM);
		else
			*len = ukp->datalen;
	}
	up_read(&key->sem);
	key_put(key);
	return copy;
}

/* The block device of the mapped device @ti belongs to. */
struct block_device *rdm_dm_target_bdev(struct dm_target *ti)
{
	return dm_disk(dm_table_get_md(ti->table))->part0;
}

/* A KOBJ_CHANGE uevent on the mapped device with one variable, "NAME=value". */
void rdm_dm_target_uevent(struct dm_target *ti, char *env)
{
	char *envp[] = { env, NULL };

	kobject_uevent_env(&disk_to_dev(dm_disk(dm_table_get_md(ti->table)))->kobj,
			   KOBJ_CHANGE, envp);
}

void __noreturn rdm_panic(const char *msg)
{
	panic("%s", msg);
}

void rdm_kfree(const void *p)
{
	kfree(p);
}

void rdm_dm_sm_destroy(struct dm_space_map *sm)
{
	dm_sm_destroy(sm);
}

int rdm_dm_sm_root_size(struct dm_space_map *sm, size_t *result)
{
	return dm_sm_root_size(sm, result);
}

int rdm_dm_sm_copy_root(struct dm_space_map *sm, void *copy_to_here_le, size_t len)
{
	return dm_sm_copy_root(sm, copy_to_here_le, len);
}

int rdm_dm_sm_get_nr_free(struct dm_space_map *sm, dm_block_t *count)
{
	return dm_sm_get_nr_free(sm, count);
}

int rdm_dm_sm_get_nr_blocks(struct dm_space_map *sm, dm_block_t *count)
{
	return dm_sm_get_nr_blocks(sm, count);
}

int rdm_dm_sm_inc_block(struct dm_space_map *sm, dm_block_t b)
{
	return dm_sm_inc_block(sm, b);
}

int rdm_dm_sm_dec_block(struct dm_space_map *sm, dm_block_t b)
{
	return dm_sm_dec_block(sm, b);
}

void rdm_bio_list_add(struct bio_list *bl, struct bio *bio)
{
	bio_list_add(bl, bio);
}

struct bio *rdm_bio_list_pop(struct bio_list *bl)
{
	return bio_list_pop(bl);
}

/* ---- sync.rs -------------------------------------------------------- */

unsigned long rdm_spin_lock_irqsave(spinlock_t *lock)
{
	unsigned long flags;

	spin_lock_irqsave(lock, flags);
	return flags;
}

void rdm_spin_unlock_irqrestore(spinlock_t *lock, unsigned long flags)
{
	spin_unlock_irqrestore(lock, flags);
}

void rdm_wait_var_zero(int *var)
{
	wait_var_event(var, READ_ONCE(*var) == 0);
}

void rdm_wake_up_var(void *var)
{
	/* Order the caller's store of the condition before the waiter check. */
	smp_mb();
	wake_up_var(var);
}

/* ---- periodic.rs ---------------------------------------------------- */

struct rdm_periodic {
	struct delayed_work dwork;
	void (*fn)(void *ctx);
	void *ctx;
	unsigned long period;
};

static void rdm_periodic_run(struct work_struct *work)
{
	struct rdm_periodic *p = container_of(to_delayed_work(work), struct rdm_periodic, dwork);

	p->fn(p->ctx);
	queue_delayed_work(system_wq, &p->dwork, p->period);
}

struct rdm_periodic *rdm_periodic_alloc(void (*fn)(void *), void *ctx, unsigned long period)
{
	struct rdm_periodic *p = kzalloc(sizeof(*p), GFP_KERNEL);

	if (!p)
		return NULL;
	INIT_DELAYED_WORK(&p->dwork, rdm_periodic_run);
	p->fn = fn;
	p->ctx = ctx;
	p->period = period;
	return p;
}

void rdm_periodic_schedule(struct rdm_periodic *p)
{
	queue_delayed_work(system_wq, &p->dwork, p->period);
}

void rdm_periodic_cancel_sync(struct rdm_periodic *p)
{
	/* Also stops a work item that re-queues itself. */
	cancel_delayed_work_sync(&p->dwork);
}

void rdm_periodic_free(struct rdm_periodic *p)
{
	cancel_delayed_work_sync(&p->dwork);
	kfree(p);
}

unsigned long rdm_jiffies(void)
{
	return jiffies;
}

/* ---- device.rs ------------------------------------------------------ */

unsigned int rdm_bdev_max_discard_sectors(struct block_device *bdev)
{
	return bdev_max_discard_sectors(bdev);
}

void rdm_bdev_discard_limits(struct block_device *bdev, struct rdm_discard_limits *out)
{
	const struct queue_limits *l = &bdev_get_queue(bdev)->limits;

	/* Plain reads, as the block layer's own readers of the limits do. */
	out->max_discard_sectors = bdev_max_discard_sectors(bdev);
	out->max_hw_discard_sectors = READ_ONCE(l->max_hw_discard_sectors);
	out->granularity = READ_ONCE(l->discard_granularity);
	out->alignment = READ_ONCE(l->discard_alignment);
	out->max_segments = READ_ONCE(l->max_discard_segments);
}

void rdm_memcpy(void *dst, const void *src, size_t n)
{
	memcpy(dst, src, n);
}

void rdm_memset(void *dst, int c, size_t n)
{
	memset(dst, c, n);
}

void rdm_might_sleep(void)
{
	might_sleep();
}

/* ---- noio.rs -------------------------------------------------------- */

unsigned int rdm_memalloc_noio_save(void)
{
	return memalloc_noio_save();
}

void rdm_memalloc_noio_restore(unsigned int flags)
{
	memalloc_noio_restore(flags);
}

/* ---- mempool.rs ----------------------------------------------------- */

struct mempool_s *rdm_mempool_create_kmalloc(int min_nr, size_t size)
{
	return mempool_create_kmalloc_pool(min_nr, size);
}

/*
 * GFP_NOIO includes __GFP_DIRECT_RECLAIM: mempool_alloc() then never
 * returns NULL, it waits for an element to be freed (mm/mempool.c).
 */
void *rdm_mempool_alloc_noio(struct mempool_s *pool)
{
	return mempool_alloc(pool, GFP_NOIO);
}

void *rdm_mempool_alloc_nowait(struct mempool_s *pool)
{
	return mempool_alloc(pool, GFP_NOWAIT | __GFP_NOWARN);
}

void rdm_mempool_free(void *element, struct mempool_s *pool)
{
	mempool_free(element, pool);
}

void rdm_mempool_destroy(struct mempool_s *pool)
{
	mempool_destroy(pool);
}

/* ---- kcopyd.rs ------------------------------------------------------ */

/*
 * dm_kcopyd_client_destroy() waits for every job of the client, the running
 * one included: from a completion callback it would never return. The Rust
 * client leaks itself instead, with this warning (WARN_ONCE has one flag per
 * call site, hence one function per case).
 */
void rdm_kcopyd_warn_drop_in_callback(void)
{
	WARN_ONCE(1, "rust-dm: kcopyd client dropped from its own completion callback; leaked\n");
}

void rdm_kcopyd_warn_wait_in_callback(void)
{
	WARN_ONCE(1, "rust-dm: kcopyd client waited for from its own completion callback\n");
}

/* ---- reed_solomon.rs ------------------------------------------------ */

unsigned int rdm_num_online_cpus(void)
{
	return num_online_cpus();
}

/*
 * Reed-Solomon decoders (lib/reed_solomon, reed_solomon.ko): only in the
 * modules that define RDM_REED_SOLOMON before including this file, so that
 * no other module depends on reed_solomon.ko.
 */
#ifdef RDM_REED_SOLOMON
#include <linux/rslib.h>

/* The code of dm-verity FEC: GF(2^8) with x^8 + x^4 + x^3 + x^2 + 1 (0x11d),
 * first consecutive root 0, primitive element 1 (C's fec_rs_alloc). */
static void *rdm_rs_alloc(gfp_t gfp, void *pool_data)
{
	return init_rs_gfp(8, 0x11d, 0, 1, (int)(uintptr_t)pool_data, gfp);
}

static void rdm_rs_free(void *element, void *pool_data)
{
	if (element)
		free_rs(element);
}

mempool_t *rdm_rs_pool_create(int min_nr, int roots)
{
	return mempool_create(min_nr, rdm_rs_alloc, rdm_rs_free,
			      (void *)(uintptr_t)roots);
}
#endif
