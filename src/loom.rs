//! (private) The crate's synchronisation facade: `std`'s primitives normally,
//! loom's for the loom models (`--cfg trellis_loom`, see
//! `src/cancel/tests/loom_tree.rs`), and the one poison-ignoring [`lock`]
//! every module takes its short critical sections with.

#[cfg(all(test, trellis_loom))]
pub(crate) use ::loom::sync::{Mutex, MutexGuard, atomic::*};
#[cfg(not(all(test, trellis_loom)))]
pub(crate) use std::sync::{Mutex, MutexGuard, atomic::*};

/// Locks `mutex`, recovering the data if a panic poisoned it.
///
/// Every lock in the crate guards a few pushes, takes or flag flips, with no
/// user code inside, or user code whose panic leaves the data consistent (a
/// predicate, a `Hash` impl): a poisoned lock still holds consistent state,
/// and spreading the panic to every other task would turn one failure into
/// many.
pub(crate) fn lock<T: ?Sized>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
