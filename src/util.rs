//! The helpers every Trio program ends up writing (Python's trio-util), in
//! Rust's shape.
//!
//! These sit one layer above the structured-concurrency core: they use
//! [`nursery`](crate::nursery), [`CancelScope`](crate::CancelScope) and
//! tokio's primitives, and the OTP layer may use them. None of them spawns a
//! task behind your back: the waiting helpers ([`wait_any`], [`wait_all`],
//! [`azip`]) poll their futures in place, inside the caller's task and cancel
//! scope, so a cancellation of the caller drops them all at once.
//!
//! # Which one do I want?
//!
//! | if you want to… | use |
//! |---|---|
//! | race futures, keep the first result, cancel the rest | [`wait_any`] (or [`WaitAny::wait_any`] on a tuple) |
//! | run futures concurrently and collect every result | [`wait_all`] (or [`WaitAll::wait_all`] on a tuple) |
//! | the same, stopping at the first `Err` | [`try_wait_all`] (or [`TryWaitAll::try_wait_all`]) |
//! | a value tasks can wait on until it satisfies a predicate, or changes in a certain way | [`AsyncValue`] ([`wait_value`](AsyncValue::wait_value), [`wait_transition`](AsyncValue::wait_transition)) |
//! | every value that matches, as a stream (latest wins when you lag) | [`AsyncValue::eventual_values`] |
//! | a value computed from another one, kept up to date | [`AsyncValue::open_transform`] |
//! | a flag to wait on being `true`/`false`, or flipping | [`AsyncBool`] |
//! | a map whose readers wait for a key to appear | [`AsyncDictionary`] |
//! | wake a listener loop, dropping signals while it is busy | [`UnqueuedRepeatedEvent`] |
//! | wake a listener loop, keeping at most one signal while it is busy | [`MailboxRepeatedEvent`] |
//! | a loop that runs every `period`, body time included | [`periodic`] |
//! | walk several streams in lockstep | [`azip`], [`azip_longest`] |
//! | find slow polls, long wake-to-poll delays, scheduling storms | [`TaskStats`] |
//! | let routine errors that race with a cancellation give way to it | [`defer_to_cancelled`] |
//!
//! # trio-util → Trellis
//!
//! | trio-util | Trellis | notes |
//! |---|---|---|
//! | `wait_any(*fns)` | [`wait_any`] | also says which finished, and with what |
//! | `wait_all(*fns)` | [`wait_all`], [`try_wait_all`] | returns every value |
//! | `AsyncValue`, `AsyncBool` | [`AsyncValue`], [`AsyncBool`] | |
//! | `AsyncDictionary` | [`AsyncDictionary`] | |
//! | `UnqueuedRepeatedEvent`, `MailboxRepeatedEvent` | [`UnqueuedRepeatedEvent`], [`MailboxRepeatedEvent`] | `events()` is a [`Stream`](futures_core::Stream) |
//! | `periodic(period)` | [`periodic`] | a [`Stream`](futures_core::Stream) of `(elapsed, delta)` |
//! | `azip`, `azip_longest` | [`azip`], [`azip_longest`] | `fillvalue` is `None` |
//! | `TaskStats` | [`TaskStats`] | enabled per nursery |
//! | `defer_to_cancelled(*exc)` | [`defer_to_cancelled`] | a future adapter |
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::time::Duration;
//! use trellis::util::{wait_any, AsyncBool};
//!
//! let ready = AsyncBool::new(false);
//! let setter = ready.clone();
//! let (first, _) = wait_any([
//!     Box::pin(async move { ready.wait_value(true).await; "ready" })
//!         as std::pin::Pin<Box<dyn std::future::Future<Output = &str>>>,
//!     Box::pin(async move {
//!         tokio::time::sleep(Duration::from_secs(1)).await;
//!         setter.set(true);
//!         std::future::pending().await
//!     }),
//! ])
//! .await
//! .unwrap();
//! assert_eq!(first, 0); // the waiter won; the setter was cancelled
//! # }
//! ```

mod async_dictionary;
mod async_value;
mod azip;
mod cancel_scopes;
mod compose;
mod defer;
mod iterators;
mod periodic;
mod repeated_event;
mod task_stats;
mod wait;

pub use async_dictionary::AsyncDictionary;
pub use async_value::{
    AsyncBool, AsyncValue, EventualValues, EventualValuesHeld, Transform, Transitions,
    WaitTransition, WaitValue,
};
pub use azip::{Azip, AzipLongest, azip, azip_longest};
pub use cancel_scopes::{move_on_when, run_and_cancelling};
pub use compose::{ComposeSources, Composed, Updater, compose_values};
pub use defer::{
    DeferTo, DeferToCancelled, DeferToError, MultiErrorDeferTo, defer_to_cancelled, failures_of,
    multi_error_defer_to,
};
pub use iterators::{IterFailAfter, IterMoveOnAfter, iter_fail_after, iter_move_on_after};
pub use periodic::{Periodic, periodic};
pub use repeated_event::{MailboxRepeatedEvent, RepeatedEvents, UnqueuedRepeatedEvent};
pub use task_stats::{TaskStats, TaskStatsReport};
pub use wait::{TryWaitAll, WaitAll, WaitAny, WaitAnyFuture, try_wait_all, wait_all, wait_any};

/// Why a helper of this module could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UtilError {
    /// [`wait_any`] was given no future: nothing could ever finish first.
    #[error("wait_any needs at least one future, got none")]
    NoFutures,
    /// A repeated event already has a listener iterating its events; only
    /// one may listen at a time.
    #[error("repeated event can only have one listener, and one is already listening")]
    AlreadyListening,
}
