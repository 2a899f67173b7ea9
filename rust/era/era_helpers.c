// SPDX-License-Identifier: GPL-2.0
/* The C helpers of the dm abstraction, compiled into dm-era-rs.ko. */
#ifdef RDM_HELPERS_BUILTIN
/* Built in: the helpers are the kernel's one copy (rdm-helpers.o). */
#include "../dm/helpers.h"
#else
#include "../dm/helpers.c"
#endif
