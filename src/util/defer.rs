//! [`defer_to_cancelled`]: routine errors that race with a cancellation give
//! way to it.
//!
//! The mapping from trio-util is documented on [`defer_to_cancelled`].

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::NurseryError;
use crate::cancel::current;

/// Runs `future`; if it returns an `Err` for which `routine` holds while the
/// enclosing scope is cancelled, the error yields to the cancellation.
///
/// Outside any Trellis scope, or inside a shield, nothing is deferred.
///
/// # The mapping from trio-util
///
/// In Trio, cancelling a scope raises `Cancelled` inside it; code being torn
/// down often fails on the way with some other, routine exception (a
/// `BrokenResourceError` from a stream its peer just closed, say), and the
/// caller then sees a `MultiError` of `Cancelled` and that noise.
/// trio-util's `defer_to_cancelled(*exception_types)` drops the listed
/// exceptions when a `Cancelled` is among them, so the cancellation
/// propagates cleanly.
///
/// In Trellis a cancellation is not a value: the cancelled future is dropped
/// at its next `.await`, so a task that is already cancelled never gets to
/// fail. What reaches the caller is instead an ordinary `Err` produced in
/// the same instant as the cancellation — most often a
/// [`NurseryError::Failed`] whose task returned a routine error in the very
/// poll in which its scope was cancelled (by another thread, or by that task
/// itself on its way out). A nursery returns failures even when a scope
/// around it is cancelled, so that none is lost; usually that is right, but
/// for errors that only say "the thing I was using went away" it is noise.
/// [`defer_to_cancelled`] wraps such a future: when it returns an `Err`
/// that your predicate calls routine *and* the scope it runs in is cancelled,
/// the error is dropped and the future behaves as cancelled — it never
/// completes, and the cancelled scope drops it at once, exactly as if the
/// cancellation had come first. Every other outcome passes through
/// unchanged: an error while nobody cancels, an error the predicate does not
/// list, a panic.
///
/// | trio-util | Trellis |
/// |---|---|
/// | `with defer_to_cancelled(BrokenResourceError):` | `defer_to_cancelled(fut, \|e\| is_broken(e))` |
/// | the listed exception types | the predicate; [`failures_of::<E>()`](failures_of) for a nursery whose failures are all `E` |
/// | `Cancelled` propagates | the future parks and the cancelled scope drops it |
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use trellis::{nursery, CancelScope};
/// use trellis::util::{defer_to_cancelled, failures_of};
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("connection reset")]
/// struct Reset;
///
/// let scope = CancelScope::new();
/// let stopper = scope.clone();
/// let work = nursery(|n| async move {
///     n.spawn(async move {
///         // A handler that stops everything, and fails on its way out
///         // before the cancellation reaches it.
///         stopper.cancel();
///         Err::<(), _>(Reset)
///     });
/// });
/// let out = scope.run(defer_to_cancelled(work, failures_of::<Reset>())).await;
/// assert!(out.is_none()); // a clean cancellation, not a `Reset` failure
/// # }
/// ```
///
/// # Cancel safety
///
/// As `future`.
pub fn defer_to_cancelled<F, T, E, P>(future: F, routine: P) -> DeferToCancelled<F, P>
where
    F: Future<Output = Result<T, E>>,
    P: FnMut(&E) -> bool,
{
    DeferToCancelled {
        future,
        routine,
        deferred: false,
    }
}

/// A predicate for [`defer_to_cancelled`]: a [`NurseryError::Failed`] whose
/// every failure is an error of type `E` (never a panic).
///
/// # Examples
///
/// ```
/// use trellis::NurseryError;
/// use trellis::util::failures_of;
///
/// let routine = failures_of::<std::io::Error>();
/// assert!(!routine(&NurseryError::Closed));
/// ```
pub fn failures_of<E: StdError + 'static>() -> impl Fn(&NurseryError) -> bool + Clone + Send + Sync
{
    |error: &NurseryError| {
        matches!(error, NurseryError::Failed { .. })
            && error
                .failures()
                .iter()
                .all(|f| f.error().is_some_and(|e| e.is::<E>()))
    }
}

pin_project! {
    /// The future returned by [`defer_to_cancelled`].
    #[must_use = "futures do nothing unless polled"]
    pub struct DeferToCancelled<F, P> {
        #[pin]
        future: F,
        routine: P,
        deferred: bool,
    }
}

impl<F, P> fmt::Debug for DeferToCancelled<F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferToCancelled")
            .field("deferred", &self.deferred)
            .finish_non_exhaustive()
    }
}

impl<F, T, E, P> Future for DeferToCancelled<F, P>
where
    F: Future<Output = Result<T, E>>,
    P: FnMut(&E) -> bool,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if *this.deferred {
            return Poll::Pending; // waiting for the cancelled scope to drop us
        }
        match this.future.poll(cx) {
            Poll::Ready(Err(error))
                if current().is_some_and(|scope| scope.is_cancelled())
                    && (this.routine)(&error) =>
            {
                tracing::debug!("routine error deferred to the cancellation");
                *this.deferred = true;
                Poll::Pending
            }
            other => other,
        }
    }
}
