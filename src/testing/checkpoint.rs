//! [`assert_checkpoint`] and [`assert_no_checkpoint`]: check whether an async
//! operation yields (`trio.testing.assert_checkpoints`).

use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::Location;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

/// Runs `fut`, panicking if it completes without yielding at least once:
/// asserts that the operation is a checkpoint (`trio.testing.assert_checkpoints`).
///
/// In Trellis, an `.await` that yields is where a task can be cancelled and
/// where other tasks get to run, and every `async` operation of the library
/// is meant to be one, even when it could finish at once (see
/// [`checkpoint`](crate::checkpoint)). This checks it: the first poll of
/// `fut` must return `Pending`. Then `fut` runs to completion as usual and
/// its output is returned. tokio's cooperative budget is lifted during the
/// first poll, so a future does not pass only because its task ran out of
/// budget.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use trellis::testing::assert_checkpoint;
///
/// assert_checkpoint(trellis::checkpoint()).await;
/// let out = assert_checkpoint(async {
///     trellis::checkpoint().await;
///     7
/// })
/// .await;
/// assert_eq!(out, 7);
/// # }
/// ```
///
/// # Panics
///
/// When the returned future is polled, if `fut` completes on its first poll.
/// The message names the line that called `assert_checkpoint`.
#[track_caller]
pub fn assert_checkpoint<F: Future>(fut: F) -> AssertCheckpoint<F> {
    AssertCheckpoint {
        inner: FirstPoll::new(fut, Location::caller()),
    }
}

/// Runs `fut`, panicking if it yields before completing: asserts that the
/// operation is *not* a checkpoint (`trio.testing.assert_no_checkpoints`).
///
/// The first poll of `fut` must return `Ready`; the output is returned.
/// tokio's cooperative budget is lifted during that poll, so a future does
/// not fail only because its task ran out of budget. Use it to pin down an
/// operation that must never give other tasks a chance to run, or be
/// cancelled, in the middle of something.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use trellis::testing::assert_no_checkpoint;
///
/// let (tx, rx) = tokio::sync::oneshot::channel();
/// tx.send(5).unwrap();
/// // A value is already there: receiving it does not wait.
/// assert_eq!(assert_no_checkpoint(rx).await, Ok(5));
/// # }
/// ```
///
/// # Panics
///
/// When the returned future is polled, if `fut` returns `Pending` on its
/// first poll. The message names the line that called `assert_no_checkpoint`.
#[track_caller]
pub fn assert_no_checkpoint<F: Future>(fut: F) -> AssertNoCheckpoint<F> {
    AssertNoCheckpoint {
        inner: FirstPoll::new(fut, Location::caller()),
    }
}

pin_project! {
    /// The future returned by [`assert_checkpoint`].
    #[must_use = "futures do nothing unless polled"]
    pub struct AssertCheckpoint<F> {
        #[pin]
        inner: FirstPoll<F>,
    }
}

pin_project! {
    /// The future returned by [`assert_no_checkpoint`].
    #[must_use = "futures do nothing unless polled"]
    pub struct AssertNoCheckpoint<F> {
        #[pin]
        inner: FirstPoll<F>,
    }
}

impl<F> fmt::Debug for AssertCheckpoint<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertCheckpoint")
            .field("caller", &self.inner.caller)
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Debug for AssertNoCheckpoint<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertNoCheckpoint")
            .field("caller", &self.inner.caller)
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for AssertCheckpoint<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let inner = self.project().inner;
        let caller = inner.caller;
        inner.poll_checked(cx, |first| {
            assert!(
                first.is_pending(),
                "assert_checkpoint at {caller}: the future completed without yielding"
            );
        })
    }
}

impl<F: Future> Future for AssertNoCheckpoint<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let inner = self.project().inner;
        let caller = inner.caller;
        inner.poll_checked(cx, |first| {
            assert!(
                first.is_ready(),
                "assert_no_checkpoint at {caller}: the future yielded before completing"
            );
        })
    }
}

pin_project! {
    /// A future whose first poll, made without a cooperative budget, is
    /// shown to a check.
    struct FirstPoll<F> {
        #[pin]
        fut: F,
        polled: bool,
        caller: &'static Location<'static>,
    }
}

impl<F: Future> FirstPoll<F> {
    fn new(fut: F, caller: &'static Location<'static>) -> Self {
        FirstPoll {
            fut,
            polled: false,
            caller,
        }
    }

    fn poll_checked(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        check: impl FnOnce(&Poll<F::Output>),
    ) -> Poll<F::Output> {
        let mut this = self.project();
        if *this.polled {
            return this.fut.poll(cx);
        }
        *this.polled = true;
        let mut fut = this.fut.as_mut();
        // Polls `fut` once and hands back what it returned, outside the budget.
        let once = poll_fn(move |cx| Poll::Ready(fut.as_mut().poll(cx)));
        let first = match pin!(tokio::task::unconstrained(once)).poll(cx) {
            Poll::Ready(first) => first,
            Poll::Pending => Poll::Pending, // `once` is always ready
        };
        check(&first);
        first
    }
}
