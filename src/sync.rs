//! Synchronisation primitives for tasks: Trio's `Event`, `Lock`,
//! `Semaphore`, `CapacityLimiter` and `Condition`.
//!
//! Where tokio already has the primitive with Trio's semantics, this module
//! re-exports it under its tokio name (one public path per type, and the name
//! Rust users already know); the Trio names are search aliases. What tokio
//! lacks — a set-once [`Event`] that counts its waiters, a [`CapacityLimiter`]
//! whose size can change and which knows its borrowers, a [`Condition`] tied
//! to its lock — is built here: the `Event` as a flag and a slab of wakers
//! under one mutex (checked with loom), the others from tokio's primitives.
//!
//! These are the lowest layer: [`channel`](crate::channel()) passes values
//! between tasks, nurseries run the tasks, and the OTP layer's servers
//! serialise access to their state by owning it. Reach for a lock only when
//! state really is shared; often a task that owns the state and a channel to
//! it is simpler.
//!
//! # Trio → Trellis
//!
//! | Trio | Trellis | notes |
//! |---|---|---|
//! | `Event` | [`Event`] | set once, never reset; clones share the event; `wait` on a set event still yields once; `statistics()` is [`Event::stats`] |
//! | `Lock`, `StrictFIFOLock` | [`Mutex`] | tokio's mutex is FIFO-fair and guards the data it protects: `lock()` returns a [`MutexGuard`] |
//! | `Semaphore(initial_value)` | [`Semaphore`] | no `max_value`; `release()` is dropping a [`SemaphorePermit`] or [`Semaphore::add_permits`] |
//! | `CapacityLimiter` | [`CapacityLimiter`] | tokens are RAII [`CapacityToken`]s; resizable; borrowers via [`CapacityLimiter::acquire_on_behalf_of`] |
//! | `Condition` | [`Condition`] | owns its lock's data: `cond.wait(guard)` |
//!
//! # Which one do I want?
//!
//! | if you want to… | use |
//! |---|---|
//! | wait until something has happened, once | [`Event`] |
//! | protect shared state across `.await`s | [`Mutex`] |
//! | let at most *n* tasks in, *n* fixed | [`Semaphore`] |
//! | let at most *n* tasks in, *n* changing at run time, or know who holds a slot | [`CapacityLimiter`] |
//! | wait until shared state satisfies a predicate | [`Condition`] |
//! | watch a value change over time | [`tokio::sync::watch`] |
//! | hand values from task to task | [`channel`](crate::channel()) |
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use trellis::sync::{CapacityLimiter, Event};
//!
//! let ready = Event::new();
//! let limiter = CapacityLimiter::new(2);
//! let mut workers = Vec::new();
//! for _ in 0..4 {
//!     let (ready, limiter) = (ready.clone(), limiter.clone());
//!     workers.push(tokio::spawn(async move {
//!         ready.wait().await;
//!         let _token = limiter.acquire().await; // at most two at a time
//!         tokio::task::yield_now().await;
//!     }));
//! }
//! ready.set();
//! for w in workers {
//!     w.await.unwrap();
//! }
//! assert_eq!(limiter.borrowed_tokens(), 0);
//! # }
//! ```

mod condition;
mod event;
mod limiter;

pub use condition::Condition;
pub use event::{Event, EventStats};
pub use limiter::{
    Borrower, CapacityLimiter, CapacityLimiterError, CapacityLimiterStats, CapacityToken,
};

/// Trio's `Lock` (and `StrictFIFOLock`): tokio's asynchronous mutex,
/// re-exported.
///
/// Waiters get the lock in the order they asked for it, as Trio's
/// `StrictFIFOLock` promises. Unlike Trio's `Lock`, it owns the data it
/// protects. Use it (not [`std::sync::Mutex`]) when the guard is held across
/// an `.await`.
#[doc(inline)]
#[doc(alias = "Lock")]
#[doc(alias = "StrictFIFOLock")]
pub use tokio::sync::Mutex;

/// The guard of a locked [`Mutex`]; the lock is released when it is dropped.
#[doc(inline)]
pub use tokio::sync::MutexGuard;

/// An owned guard of a [`Mutex`] held in an `Arc`, for guards that must be
/// `'static`.
#[doc(inline)]
pub use tokio::sync::OwnedMutexGuard;

/// Returned by [`Mutex::try_lock`] when the lock is held (Trio's
/// `WouldBlock` from `acquire_nowait`).
#[doc(inline)]
pub use tokio::sync::TryLockError;

/// Trio's `Semaphore`: tokio's fair counting semaphore, re-exported.
///
/// `acquire()` waits for a permit, in FIFO order; dropping the
/// [`SemaphorePermit`] is Trio's `release()`. Trio's `max_value` has no
/// counterpart; [`Semaphore::add_permits`] raises the count. For a limit that
/// changes at run time, or that tracks its borrowers, use
/// [`CapacityLimiter`].
#[doc(inline)]
pub use tokio::sync::Semaphore;

/// A permit of a [`Semaphore`]; dropping it returns the permit.
#[doc(inline)]
pub use tokio::sync::SemaphorePermit;

/// An owned permit of a [`Semaphore`] held in an `Arc`, for permits that must
/// be `'static`.
#[doc(inline)]
pub use tokio::sync::OwnedSemaphorePermit;

/// Returned by [`Semaphore::acquire`] once the semaphore is closed.
#[doc(inline)]
pub use tokio::sync::AcquireError;

/// Returned by [`Semaphore::try_acquire`] when no permit is free or the
/// semaphore is closed.
#[doc(inline)]
pub use tokio::sync::TryAcquireError;
