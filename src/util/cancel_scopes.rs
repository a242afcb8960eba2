//! [`move_on_when`] and [`run_and_cancelling`]: a body that stops when
//! something else happens, and a background job that stops with a body.
//!
//! Both poll their futures in the caller's task, like
//! [`wait_any`](super::wait_any): nothing is spawned. For a deadline rather
//! than an event use [`move_on_after`](crate::move_on_after).

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use crate::CancelScope;

/// Runs `body`; if `condition` completes first, cancels `body` and returns
/// `None` (trio-util's `move_on_when`).
///
/// `body` runs in a fresh [`CancelScope`]: when `condition` completes, the
/// scope is cancelled, so `body` is dropped at its next `.await` and the
/// nurseries it opened cancel their tasks, exactly as with
/// [`move_on_after`](crate::move_on_after). `condition` is any future: an
/// [`Event`](crate::sync::Event)'s wait, an
/// [`AsyncBool::wait_value`](super::AsyncBool::wait_value), a
/// `tokio::signal::ctrl_c()`. It is polled after `body` at every wake, so a
/// body that finishes in the same instant wins; once the body is done,
/// `condition` is dropped.
///
/// trio-util hands the body the cancel scope (to shield it); in Rust put a
/// [`CancelScope::shielded`] inside `body` for the part that must not be
/// interrupted.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use trellis::util::{move_on_when, AsyncBool};
///
/// let stop = AsyncBool::new(false);
/// let stopper = stop.clone();
/// tokio::spawn(async move {
///     tokio::time::sleep(Duration::from_secs(1)).await;
///     stopper.set(true);
/// });
/// let out = move_on_when(stop.wait_value(true), async {
///     tokio::time::sleep(Duration::from_secs(60)).await;
///     "finished"
/// })
/// .await;
/// assert_eq!(out, None); // stopped after one second
/// # }
/// ```
///
/// # Cancel safety
///
/// Dropping the future drops `body` and `condition`; whatever they would
/// lose is lost.
pub async fn move_on_when<C, F>(condition: C, body: F) -> Option<F::Output>
where
    C: Future,
    F: Future,
{
    let scope = CancelScope::new();
    let mut body = pin!(scope.run(body));
    let mut condition = pin!(condition);
    let mut fired = false;
    poll_fn(|cx| {
        if let Poll::Ready(out) = body.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        if !fired && condition.as_mut().poll(cx).is_ready() {
            fired = true;
            scope.cancel();
            return body.as_mut().poll(cx);
        }
        Poll::Pending
    })
    .await
}

/// Runs `body` with `background` alongside it; when `body` finishes,
/// `background` is cancelled (dropped) if it is still running (trio-util's
/// `run_and_cancelling`).
///
/// `background` ending early is fine: `body` goes on alone. Both run in the
/// caller's task, so a panic in either reaches the caller.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use trellis::util::{run_and_cancelling, AsyncValue};
///
/// let ticks = AsyncValue::new(0);
/// let counter = ticks.clone();
/// let out = run_and_cancelling(
///     async move {
///         loop {
///             tokio::time::sleep(Duration::from_secs(1)).await;
///             counter.set(counter.value() + 1);
///         }
///     },
///     async { ticks.wait_value(|t| *t == 3).await },
/// )
/// .await;
/// assert_eq!(out, 3);
/// tokio::time::sleep(Duration::from_secs(5)).await;
/// assert_eq!(ticks.value(), 3); // the ticker was cancelled with the body
/// # }
/// ```
///
/// # Cancel safety
///
/// Dropping the future drops both.
pub async fn run_and_cancelling<B, F>(background: B, body: F) -> F::Output
where
    B: Future<Output = ()>,
    F: Future,
{
    let mut body = pin!(body);
    let mut background = pin!(background);
    let mut background_done = false;
    poll_fn(|cx| {
        if let Poll::Ready(out) = body.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        if !background_done && background.as_mut().poll(cx).is_ready() {
            background_done = true;
        }
        Poll::Pending
    })
    .await
}
