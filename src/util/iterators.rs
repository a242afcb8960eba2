//! [`iter_move_on_after`] and [`iter_fail_after`]: a time limit on each
//! item of a stream.
//!
//! The limit covers the wait for one item (from the `next()` that asks for
//! it), not the consumer's work between items: a stream of heartbeats that
//! must keep coming, a feed that may go quiet. For a limit on the whole
//! loop, wrap the loop in [`move_on_after`](crate::move_on_after).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_util::StreamExt as _;

use crate::TooSlow;

/// The items of `stream`, ending when one takes longer than `timeout` to
/// arrive (trio-util's `iter_move_on_after`).
///
/// Each item is awaited inside [`move_on_after`](crate::move_on_after): the
/// wait that times out is cancelled (dropped) like any cancelled scope, and
/// the adapter ends (`None`); so does the end of `stream`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use futures_util::StreamExt as _;
/// use trellis::util::iter_move_on_after;
///
/// let (tx, rx) = trellis::channel(8);
/// tokio::spawn(async move {
///     for delay in [1, 1, 5] {
///         tokio::time::sleep(Duration::from_secs(delay)).await;
///         tx.send(delay).await.unwrap();
///     }
/// });
/// let got: Vec<u64> = iter_move_on_after(Duration::from_secs(2), rx).collect().await;
/// assert_eq!(got, [1, 1]); // the third item took 5 s
/// # }
/// ```
///
/// # Cancel safety
///
/// A dropped `next()` drops the wait for the item; whether `stream` loses
/// an item then is `stream`'s own cancel safety.
pub fn iter_move_on_after<'a, S>(timeout: Duration, stream: S) -> IterMoveOnAfter<'a, S::Item>
where
    S: Stream + Send + 'a,
    S::Item: Send + 'a,
{
    let stream = Box::pin(stream);
    let items = futures_util::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        let item = crate::move_on_after(timeout, stream.next()).await??;
        Some((item, Some(stream)))
    });
    IterMoveOnAfter {
        inner: Box::pin(items),
    }
}

/// The items of `stream` as `Ok`, then `Err(TooSlow)` and the end when one
/// takes longer than `timeout` to arrive (trio-util's `iter_fail_after`).
///
/// Each item is awaited inside [`fail_after`](crate::fail_after); the
/// adapter ends after the error, or when `stream` ends.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use futures_util::StreamExt as _;
/// use trellis::util::iter_fail_after;
///
/// let heartbeats = futures_util::stream::iter([1, 2]).chain(futures_util::stream::pending());
/// let mut beats = iter_fail_after(Duration::from_secs(3), heartbeats);
/// assert_eq!(beats.next().await.unwrap(), Ok(1));
/// assert_eq!(beats.next().await.unwrap(), Ok(2));
/// assert!(beats.next().await.unwrap().is_err()); // no beat for 3 s
/// assert!(beats.next().await.is_none());
/// # }
/// ```
///
/// # Errors
///
/// The item after the last one is [`TooSlow`] when the wait for it timed
/// out.
///
/// # Cancel safety
///
/// As [`iter_move_on_after`].
pub fn iter_fail_after<'a, S>(timeout: Duration, stream: S) -> IterFailAfter<'a, S::Item>
where
    S: Stream + Send + 'a,
    S::Item: Send + 'a,
{
    let stream = Box::pin(stream);
    let items = futures_util::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        match crate::fail_after(timeout, stream.next()).await {
            Ok(Some(item)) => Some((Ok(item), Some(stream))),
            Ok(None) => None,
            Err(too_slow) => Some((Err(too_slow), None)),
        }
    });
    IterFailAfter {
        inner: Box::pin(items),
    }
}

/// The stream returned by [`iter_move_on_after`].
#[must_use = "streams do nothing unless polled"]
pub struct IterMoveOnAfter<'a, T> {
    inner: Pin<Box<dyn Stream<Item = T> + Send + 'a>>,
}

/// The stream returned by [`iter_fail_after`].
#[must_use = "streams do nothing unless polled"]
pub struct IterFailAfter<'a, T> {
    inner: Pin<Box<dyn Stream<Item = Result<T, TooSlow>> + Send + 'a>>,
}

impl<T> fmt::Debug for IterMoveOnAfter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IterMoveOnAfter").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for IterFailAfter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IterFailAfter").finish_non_exhaustive()
    }
}

impl<T> Stream for IterMoveOnAfter<'_, T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl<T> Stream for IterFailAfter<'_, T> {
    type Item = Result<T, TooSlow>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}
