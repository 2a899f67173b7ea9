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

void rdm_bio_set_dev(struct bio *bio, struct block_device *bdev);
sector_t rdm_bdev_nr_sectors(struct block_device *bdev);
unsigned int rdm_bdev_logical_block_size(struct block_device *bdev);

#endif /* RDM_HELPERS_H */
