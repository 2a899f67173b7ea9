// SPDX-License-Identifier: GPL-2.0
/* The C helpers of the dm abstraction, compiled into dm-verity-rs.ko. */
/* Reed-Solomon decoding for FEC (reed_solomon.ko): this module only. */
#define RDM_REED_SOLOMON
#include "../dm/helpers.c"
