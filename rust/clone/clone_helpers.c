// SPDX-License-Identifier: GPL-2.0
/* The C helpers of the dm abstraction, compiled into this module. */
#include "../dm/helpers.c"
