// SPDX-License-Identifier: GPL-2.0
/*
 * Out-of-line wrappers of static inlines for the Rust device-mapper
 * abstraction; see helpers.h. Included once by each module's
 * rust/<target>/<target>_helpers.c.
 */
#include "helpers.h"

void rdm_bio_set_dev(struct bio *bio, struct block_device *bdev)
{
	bio_set_dev(bio, bdev);
}

sector_t rdm_bdev_nr_sectors(struct block_device *bdev)
{
	return bdev_nr_sectors(bdev);
}

unsigned int rdm_bdev_logical_block_size(struct block_device *bdev)
{
	return bdev_logical_block_size(bdev);
}

