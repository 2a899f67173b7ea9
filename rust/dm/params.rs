// SPDX-License-Identifier: GPL-2.0

//! Module parameters declared on the C side of a module.
//!
//! The `module!` macro of 6.12 declares no parameters of the kinds the C
//! twins have (a `bool`, a read-only counter), so a module declares them
//! with `module_param()` in its own `rust/<target>/<target>_helpers.c`, and
//! reads them through the functions here. Each function is compiled only
//! into the module whose C side defines the parameter (a `--cfg` in
//! `Kbuild`), so no other module links against a symbol it lacks.

#[cfg(dm_require_signatures)]
use super::bindings;

/// `require_signatures` (bool, 0444, default off: C dm-verity's
/// `dm_verity.require_signatures`): whether every table must carry a root
/// hash signature. Set when the module is loaded.
///
/// # Context
///
/// Any.
#[cfg(dm_require_signatures)]
pub fn require_signatures() -> bool {
    // SAFETY: No precondition: it reads a `bool` the module declared.
    unsafe { bindings::rdm_param_require_signatures() }
}
