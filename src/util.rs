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
//! | …until the predicate has held for a while | [`AsyncValue::wait_value_held`] |
//! | every value that matches, as a stream (latest wins when you lag, never twice in a row) | [`AsyncValue::eventual_values`], [`AsyncValue::eventual_values_held`] |
//! | every matching change `(new, old)` while you wait for it, as a stream | [`AsyncValue::transitions`] |
//! | a value computed from another one, kept up to date | [`AsyncValue::open_transform`] |
//! | a value computed from several, kept up to date | [`compose_values`] |
//! | a flag to wait on being `true`/`false`, or flipping | [`AsyncBool`] |
//! | a map whose readers wait for a key to appear | [`AsyncDictionary`] |
//! | wake a listener loop, dropping signals while it is busy | [`UnqueuedRepeatedEvent`] |
//! | wake a listener loop, keeping at most one signal while it is busy | [`MailboxRepeatedEvent`] |
//! | a loop that runs every `period`, body time included | [`periodic`] |
//! | walk several streams in lockstep | [`azip`], [`azip_longest`] |
//! | stop a body when an event fires or a value turns | [`move_on_when`] |
//! | run a background job for as long as a body runs | [`run_and_cancelling`] |
//! | give up on a stream when one item is late | [`iter_move_on_after`], [`iter_fail_after`] |
//! | find slow polls, long wake-to-poll delays, scheduling storms | [`TaskStats`] |
//! | let routine errors that race with a cancellation give way to it | [`defer_to_cancelled`] |
//! | reduce a nursery's several failures to the one that matters | [`multi_error_defer_to`], [`DeferTo`] |
//!
//! Every `wait_*` method here ([`AsyncValue::wait_value`],
//! [`AsyncValue::wait_value_held`], [`AsyncValue::wait_transition`],
//! [`AsyncBool`]'s, [`AsyncDictionary::get_wait`],
//! [`AsyncDictionary::pop_wait`]) is a checkpoint: it yields at least once,
//! even when it could return at once, so a loop over it lets other tasks run
//! and can be cancelled (as in Trio). The combinators ([`wait_any`],
//! [`move_on_when`], …) are as much a checkpoint as the futures they run.
//!
//! # trio-util → Trellis
//!
//! Every public name of trio-util 0.8, and the names it retired that
//! Trellis keeps.
//!
//! | trio-util | Trellis | notes |
//! |---|---|---|
//! | `wait_any(*fns)` | [`wait_any`] | also says which finished, and with what |
//! | `wait_all(*fns)` | [`wait_all`], [`try_wait_all`] | returns every value |
//! | `AsyncValue(v)`, `.value` (get / set) | [`AsyncValue::new`], [`value`](AsyncValue::value), [`set`](AsyncValue::set) | `set` says whether the value changed |
//! | `AsyncValue.wait_value(value_or_predicate)` | [`AsyncValue::wait_value`] (a predicate; [`AsyncBool::wait_value`] takes a value) | a checkpoint even when already true; returns the latest match set before the waiter ran |
//! | `wait_value(…, held_for=d)` | [`AsyncValue::wait_value_held`]`(predicate, d)` | returns the value when the hold ends (trio-util: when it began); the predicate is `Fn + Sync` |
//! | `AsyncValue.eventual_values(…)` | [`AsyncValue::eventual_values`] | never the same value twice in a row; a match that came and went while you were busy is still yielded (latest wins), where trio-util looks at the value only when you ask again |
//! | `eventual_values(…, held_for=d)` | [`AsyncValue::eventual_values_held`]`(predicate, d)` | yields the current value once the hold ends |
//! | `AsyncValue.wait_transition(…)` | [`AsyncValue::wait_transition`] (`(new, old)` predicate), [`AsyncBool::wait_transition`] (`Option<bool>`) | latest matching change wins |
//! | `AsyncValue.transitions(…)` | [`AsyncValue::transitions`] | equal predicates are not shared (closures have no identity in Rust); one registration per stream |
//! | `AsyncValue.open_transform(f)` (a context manager) | [`AsyncValue::open_transform`] (a guard) | follows while the guard lives |
//! | `compose_values(x=a, y=b, _transform_=f)` | [`compose_values`]`((&a, &b), f)` | a tuple of 2–4 sources instead of keyword names; the result is writable like trio-util's, but meant to be read only |
//! | `AsyncBool` | [`AsyncBool`] | |
//! | `move_on_when(fn, *args)` (yields the scope) | [`move_on_when`]`(condition, body)` | `None` when the condition fired; shield inside `body` with [`CancelScope::shielded`](crate::CancelScope::shielded) |
//! | `run_and_cancelling(fn, *args)` | [`run_and_cancelling`]`(background, body)` | polled in the caller's task, no nursery |
//! | `iter_move_on_after(t, ait)`, `iter_fail_after(t, ait)` | [`iter_move_on_after`], [`iter_fail_after`] | the failing one yields `Err(`[`TooSlow`](crate::TooSlow)`)` then ends; the stream must be `Send` |
//! | `periodic(period)` | [`periodic`] | a [`Stream`](futures_core::Stream) of `(elapsed, delta)` |
//! | `azip`, `azip_longest` | [`azip`], [`azip_longest`] | `fillvalue` is `None` |
//! | `RepeatedEvent().unqueued_events()` | [`UnqueuedRepeatedEvent`] | one listener per event (trio-util allows many); a second gets [`UtilError::AlreadyListening`] |
//! | `RepeatedEvent().events()` | [`MailboxRepeatedEvent`] | one listener; `repeat_last=True` is a `set()` before listening |
//! | `RepeatedEvent().wait()` | [`AsyncValue::wait_transition`] on a counter | rarely wanted on its own |
//! | `UnqueuedRepeatedEvent`, `MailboxRepeatedEvent` (retired in trio-util 0.6) | [`UnqueuedRepeatedEvent`], [`MailboxRepeatedEvent`] | `events()` is a [`Stream`](futures_core::Stream) |
//! | `AsyncDictionary` (retired in trio-util 0.6) | [`AsyncDictionary`] | `get_wait`/`pop_wait` are checkpoints |
//! | `TaskStats` (a Trio instrument) | [`TaskStats`] | enabled per nursery, not per run; reports through `tracing` |
//! | `defer_to_cancelled(*exc)` | [`defer_to_cancelled`] | a future adapter keyed to the enclosing scope's cancellation (see its docs) |
//! | `multi_error_defer_to(*types, strict=, propagate_multi_error=)` | [`multi_error_defer_to`] with a [`DeferTo`] list | kinds are error types (downcast) and [`DeferTo::cancelled`]; `propagate_multi_error=False` is [`DeferTo::defer`]'s [`DeferToError`] |
//! | `trio_async_generator` | not needed | a Rust [`Stream`](futures_core::Stream) cannot leak a cancel scope across `yield`s, the problem it solves |
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
pub use task_stats::{BusyWindow, TaskReport, TaskStats, TaskStatsOptions, TaskStatsReport};
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
