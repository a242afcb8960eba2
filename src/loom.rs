//! (private) The synchronisation primitives of `cancel::tree`: `std`'s
//! normally, loom's for its loom models (`--cfg trellis_loom`, see
//! `src/cancel/tests/loom_tree.rs`).

#[cfg(all(test, trellis_loom))]
pub(crate) use ::loom::sync::{Mutex, MutexGuard, atomic::*};
#[cfg(not(all(test, trellis_loom)))]
pub(crate) use std::sync::{Mutex, MutexGuard, atomic::*};
