// SPDX-License-Identifier: GPL-2.0
/* The C helpers of the dm abstraction, compiled into dm-hold-rs.ko. */
#include "../dm/helpers.c"
