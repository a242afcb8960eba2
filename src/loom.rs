//! (private) The synchronisation primitives of `cancel::tree`: `std`'s (and
//! futures') normally, loom's for its loom models (`--cfg trellis_loom`, see
//! `src/cancel/tests/loom_tree.rs`).

#[cfg(all(test, trellis_loom))]
pub(crate) use ::loom::sync::{Mutex, MutexGuard, atomic::*};
#[cfg(not(all(test, trellis_loom)))]
pub(crate) use {
    futures_util::task::AtomicWaker,
    std::sync::{Mutex, MutexGuard, atomic::*},
};

/// loom's `AtomicWaker` takes the waker by value; this gives it futures' API.
#[cfg(all(test, trellis_loom))]
#[derive(Debug, Default)]
pub(crate) struct AtomicWaker(::loom::future::AtomicWaker);

#[cfg(all(test, trellis_loom))]
impl AtomicWaker {
    pub(crate) fn new() -> Self {
        Self::default()
    }
    pub(crate) fn register(&self, waker: &std::task::Waker) {
        self.0.register_by_ref(waker);
    }
    pub(crate) fn wake(&self) {
        self.0.wake();
    }
}
