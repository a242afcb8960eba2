//! [`wait_any`] and [`wait_all`]: run futures concurrently, return at the
//! first or at the last.
//!
//! The futures are polled in place, inside the caller's task (as
//! `futures::join!` does), not spawned: they need be neither `Send` nor
//! `'static`, they live in the caller's cancel scope, and "cancelling the
//! others" is dropping them, Trellis' cancellation. They run concurrently, not
//! in parallel; for parallelism spawn them in a [`nursery`](crate::nursery)
//! and make each send its result through a channel. Only futures that were
//! woken are polled again ([`FuturesUnordered`]), so a wake costs O(1), not
//! O(number of futures).
//!
//! Mixed types: a tuple of up to four futures has the same operations as
//! methods ([`WaitAny::wait_any`], [`WaitAll::wait_all`],
//! [`TryWaitAll::try_wait_all`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::{Either, Join, Join3, Join4, JoinAll, TryJoin, TryJoin3, TryJoin4};
use futures_util::future::{TryFuture, TryJoinAll};
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use pin_project_lite::pin_project;

use super::UtilError;

/// Runs every future concurrently until the first one finishes; returns its
/// position and output, and drops (cancels) the others.
///
/// The Rust form of trio-util's `wait_any`, which also tells which future won
/// and what it returned. A future that returns an `Err` wins like any other:
/// the error comes back to you and the others are cancelled, so nothing is
/// lost. If several are ready in the same poll, the one polled first wins.
/// A panic in a future unwinds out of `wait_any` (in a nursery task it
/// becomes that task's failure).
///
/// To race futures of different types, give them one type
/// (`Box::pin(f) as Pin<Box<dyn Future<Output = T>>>`) or use a tuple:
/// [`WaitAny::wait_any`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use trellis::util::wait_any;
///
/// let sleeps = [3, 1, 2].map(|s| async move {
///     tokio::time::sleep(Duration::from_secs(s)).await;
///     s * 10
/// });
/// assert_eq!(wait_any(sleeps).await, Ok((1, 10)));
/// # }
/// ```
///
/// # Errors
///
/// [`UtilError::NoFutures`] if `futures` is empty (there would be no first).
///
/// # Cancel safety
///
/// Dropping the returned future drops every future still running.
pub fn wait_any<I>(futures: I) -> WaitAnyFuture<I::Item>
where
    I: IntoIterator,
    I::Item: Future,
{
    WaitAnyFuture {
        set: futures
            .into_iter()
            .enumerate()
            .map(|(index, future)| Indexed { index, future })
            .collect(),
    }
}

/// Runs every future concurrently and returns all their outputs, in the
/// order of the input.
///
/// trio-util's `wait_all`, returning the values. For futures that return a
/// `Result`, [`try_wait_all`] stops at the first error.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use trellis::util::wait_all;
///
/// let start = tokio::time::Instant::now();
/// let outputs = wait_all([3, 1, 2].map(|s| async move {
///     tokio::time::sleep(Duration::from_secs(s)).await;
///     s
/// }))
/// .await;
/// assert_eq!(outputs, [3, 1, 2]);
/// assert_eq!(start.elapsed(), Duration::from_secs(3)); // concurrently
/// # }
/// ```
///
/// # Cancel safety
///
/// Dropping the returned future drops every future still running, and the
/// outputs already produced.
pub fn wait_all<I>(futures: I) -> JoinAll<I::Item>
where
    I: IntoIterator,
    I::Item: Future,
{
    futures_util::future::join_all(futures)
}

/// Runs every fallible future concurrently; returns all their values, or the
/// first error, after dropping (cancelling) the others.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use trellis::util::try_wait_all;
///
/// let result = try_wait_all([1, 2, 3].map(|s| async move {
///     tokio::time::sleep(Duration::from_secs(s)).await;
///     if s == 2 { Err(format!("{s} failed")) } else { Ok(s) }
/// }))
/// .await;
/// assert_eq!(result, Err("2 failed".to_string())); // the 3 s one was cancelled
/// # }
/// ```
///
/// # Errors
///
/// The first error any future returns.
///
/// # Cancel safety
///
/// As [`wait_all`].
pub fn try_wait_all<I>(futures: I) -> TryJoinAll<I::Item>
where
    I: IntoIterator,
    I::Item: TryFuture,
{
    futures_util::future::try_join_all(futures)
}

pin_project! {
    /// A future tagged with its position.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    struct Indexed<F> {
        index: usize,
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for Indexed<F> {
    type Output = (usize, F::Output);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let index = *this.index;
        this.future.poll(cx).map(|out| (index, out))
    }
}

/// The future returned by [`wait_any`] and [`WaitAny::wait_any`].
#[must_use = "futures do nothing unless polled"]
pub struct WaitAnyFuture<F> {
    set: FuturesUnordered<Indexed<F>>,
}

impl<F> std::fmt::Debug for WaitAnyFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitAnyFuture")
            .field("running", &self.set.len())
            .finish()
    }
}

impl<F: Future> Future for WaitAnyFuture<F> {
    type Output = Result<(usize, F::Output), UtilError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.set.poll_next_unpin(cx) {
            Poll::Ready(Some(first)) => {
                // Cancel the others now, not when the caller drops us.
                self.set.clear();
                Poll::Ready(Ok(first))
            }
            Poll::Ready(None) => Poll::Ready(Err(UtilError::NoFutures)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// [`wait_any`] for a tuple of futures of different types with one output
/// type.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use trellis::util::WaitAny as _;
///
/// let timeout = async {
///     tokio::time::sleep(Duration::from_secs(1)).await;
///     "timeout"
/// };
/// let answer = async { "answer" };
/// assert_eq!((timeout, answer).wait_any().await, Ok((1, "answer")));
/// # }
/// ```
pub trait WaitAny {
    /// The common output of the futures.
    type Output;
    /// The one type every future of the tuple is wrapped into.
    type Future: Future<Output = Self::Output>;

    /// Races the futures; see [`wait_any`].
    ///
    /// # Errors
    ///
    /// Never [`UtilError::NoFutures`] (a tuple is never empty); the `Result`
    /// keeps one output type with [`wait_any`].
    ///
    /// # Cancel safety
    ///
    /// As [`wait_any`].
    fn wait_any(self) -> WaitAnyFuture<Self::Future>;
}

impl<T, A, B> WaitAny for (A, B)
where
    A: Future<Output = T>,
    B: Future<Output = T>,
{
    type Output = T;
    type Future = Either<A, B>;

    fn wait_any(self) -> WaitAnyFuture<Self::Future> {
        wait_any([Either::Left(self.0), Either::Right(self.1)])
    }
}

impl<T, A, B, C> WaitAny for (A, B, C)
where
    A: Future<Output = T>,
    B: Future<Output = T>,
    C: Future<Output = T>,
{
    type Output = T;
    type Future = Either<A, Either<B, C>>;

    fn wait_any(self) -> WaitAnyFuture<Self::Future> {
        wait_any([
            Either::Left(self.0),
            Either::Right(Either::Left(self.1)),
            Either::Right(Either::Right(self.2)),
        ])
    }
}

impl<T, A, B, C, D> WaitAny for (A, B, C, D)
where
    A: Future<Output = T>,
    B: Future<Output = T>,
    C: Future<Output = T>,
    D: Future<Output = T>,
{
    type Output = T;
    type Future = Either<Either<A, B>, Either<C, D>>;

    fn wait_any(self) -> WaitAnyFuture<Self::Future> {
        wait_any([
            Either::Left(Either::Left(self.0)),
            Either::Left(Either::Right(self.1)),
            Either::Right(Either::Left(self.2)),
            Either::Right(Either::Right(self.3)),
        ])
    }
}

/// [`wait_all`] for a tuple of futures of different types: a tuple of their
/// outputs.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use trellis::util::WaitAll as _;
///
/// let (n, s) = (async { 1 }, async { "one" }).wait_all().await;
/// assert_eq!((n, s), (1, "one"));
/// # }
/// ```
pub trait WaitAll {
    /// The future that runs them.
    type Future: Future;

    /// Runs the futures concurrently; see [`wait_all`].
    ///
    /// # Cancel safety
    ///
    /// As [`wait_all`].
    fn wait_all(self) -> Self::Future;
}

/// [`try_wait_all`] for a tuple of fallible futures of different value
/// types and one error type.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use trellis::util::TryWaitAll as _;
///
/// let ok = (async { Ok::<_, String>(1) }, async { Ok("one") }).try_wait_all().await;
/// assert_eq!(ok, Ok((1, "one")));
/// let failed = (async { Ok(1) }, async { Err::<(), _>("no".to_string()) }).try_wait_all().await;
/// assert_eq!(failed, Err("no".to_string()));
/// # }
/// ```
pub trait TryWaitAll {
    /// The future that runs them.
    type Future: Future;

    /// Runs the futures concurrently, stopping at the first error; see
    /// [`try_wait_all`].
    ///
    /// # Errors
    ///
    /// The first error.
    ///
    /// # Cancel safety
    ///
    /// As [`wait_all`].
    fn try_wait_all(self) -> Self::Future;
}

impl<A: Future, B: Future> WaitAll for (A, B) {
    type Future = Join<A, B>;

    fn wait_all(self) -> Self::Future {
        futures_util::future::join(self.0, self.1)
    }
}

impl<A: Future, B: Future, C: Future> WaitAll for (A, B, C) {
    type Future = Join3<A, B, C>;

    fn wait_all(self) -> Self::Future {
        futures_util::future::join3(self.0, self.1, self.2)
    }
}

impl<A: Future, B: Future, C: Future, D: Future> WaitAll for (A, B, C, D) {
    type Future = Join4<A, B, C, D>;

    fn wait_all(self) -> Self::Future {
        futures_util::future::join4(self.0, self.1, self.2, self.3)
    }
}

impl<E, A, B> TryWaitAll for (A, B)
where
    A: TryFuture<Error = E>,
    B: TryFuture<Error = E>,
{
    type Future = TryJoin<A, B>;

    fn try_wait_all(self) -> Self::Future {
        futures_util::future::try_join(self.0, self.1)
    }
}

impl<E, A, B, C> TryWaitAll for (A, B, C)
where
    A: TryFuture<Error = E>,
    B: TryFuture<Error = E>,
    C: TryFuture<Error = E>,
{
    type Future = TryJoin3<A, B, C>;

    fn try_wait_all(self) -> Self::Future {
        futures_util::future::try_join3(self.0, self.1, self.2)
    }
}

impl<E, A, B, C, D> TryWaitAll for (A, B, C, D)
where
    A: TryFuture<Error = E>,
    B: TryFuture<Error = E>,
    C: TryFuture<Error = E>,
    D: TryFuture<Error = E>,
{
    type Future = TryJoin4<A, B, C, D>;

    fn try_wait_all(self) -> Self::Future {
        futures_util::future::try_join4(self.0, self.1, self.2, self.3)
    }
}
