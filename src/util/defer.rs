//! [`defer_to_cancelled`] and [`multi_error_defer_to`]: when several
//! things fail at once, let the one that matters through.
//!
//! [`defer_to_cancelled`] lets routine errors that race with a cancellation
//! give way to it; [`multi_error_defer_to`] reduces a nursery's several
//! failures to the one of the highest priority in a [`DeferTo`] list. The
//! mapping from trio-util is documented on each.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::cancel::current;
use crate::{NurseryError, TaskFailure};

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

/// A priority list of error kinds for [`multi_error_defer_to`], highest
/// first, and how strict the choice is (trio-util's
/// `multi_error_defer_to(*privileged_types, strict=…)`).
///
/// A kind is either an error type, matched by downcasting a task's error
/// ([`error::<E>()`](Self::error)), or the cancellation kind
/// ([`cancelled()`](Self::cancelled)): a task whose error is a
/// [`NurseryError::Cancelled`], a [`NurseryError::TimedOut`] or a
/// [`TooSlow`](crate::TooSlow). A panic is of no kind. By default the
/// choice is strict.
///
/// # Examples
///
/// ```
/// use trellis::util::DeferTo;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("obstacle")]
/// struct Obstacle;
///
/// // A cancellation outranks an `Obstacle` that happened on the way out.
/// let defer_to = DeferTo::new().cancelled().error::<Obstacle>();
/// assert_eq!(defer_to.kinds(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct DeferTo {
    kinds: Vec<Kind>,
    strict: bool,
}

#[derive(Clone, Copy)]
enum Kind {
    Error {
        name: &'static str,
        is: fn(&(dyn StdError + Send + Sync + 'static)) -> bool,
    },
    Cancelled,
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Error { name, .. } => f.write_str(name),
            Kind::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl Default for DeferTo {
    fn default() -> Self {
        DeferTo {
            kinds: Vec::new(),
            strict: true,
        }
    }
}

impl DeferTo {
    /// An empty list (nothing is deferred until kinds are added), strict.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the errors of type `E` as the next kind, below the ones already
    /// listed.
    #[must_use]
    pub fn error<E: StdError + 'static>(mut self) -> Self {
        self.kinds.push(Kind::Error {
            name: std::any::type_name::<E>(),
            is: |e| e.is::<E>(),
        });
        self
    }

    /// Adds the cancellation kind as the next kind, below the ones already
    /// listed: Trio's `Cancelled` in the list.
    #[must_use]
    pub fn cancelled(mut self) -> Self {
        self.kinds.push(Kind::Cancelled);
        self
    }

    /// Whether several *different* errors at the highest priority leave the
    /// error as it was (`true`, the default) or the first of them wins
    /// (`false`). Equal errors (the same kind and the same `Debug` text)
    /// always merge into one.
    #[must_use]
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// How many kinds are listed.
    pub fn kinds(&self) -> usize {
        self.kinds.len()
    }

    fn rank(&self, error: &(dyn StdError + Send + Sync + 'static)) -> Option<usize> {
        self.kinds.iter().position(|kind| match kind {
            Kind::Error { is, .. } => is(error),
            Kind::Cancelled => is_cancellation(error),
        })
    }

    /// Reduces a nursery's failures to the one of the highest priority.
    ///
    /// The failures are flattened first (a task that failed with a
    /// [`NurseryError::Failed`] of its own contributes its failures). Then,
    /// if every failure is of a listed kind, failures with the same kind and
    /// `Debug` text merge, and the one of the highest kind wins: it comes
    /// back alone, as a [`NurseryError::Failed`] of that one failure — or as
    /// the [`NurseryError::Cancelled`] / [`NurseryError::TimedOut`] itself
    /// when that is the winner. An error that is not `Failed`, or a single
    /// failure, comes back unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use trellis::{nursery, NurseryError};
    /// use trellis::util::DeferTo;
    ///
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("obstacle")]
    /// struct Obstacle;
    ///
    /// # use trellis::{BoxError, CancelScope};
    /// # // Tasks that fail in the same instant (shielded, so that the first
    /// # // failure does not cancel the other before it fails).
    /// # async fn together(errors: Vec<BoxError>) -> NurseryError {
    /// #     nursery(|n| async move {
    /// #         for e in errors {
    /// #             n.spawn(async move {
    /// #                 CancelScope::shielded()
    /// #                     .run(async move { trellis::checkpoint().await; Err::<(), _>(e) })
    /// #                     .await
    /// #                     .unwrap()
    /// #             });
    /// #         }
    /// #         Ok::<_, NurseryError>(())
    /// #     })
    /// #     .await
    /// #     .unwrap_err()
    /// # }
    /// // One task's nested nursery was cancelled; another hit an obstacle.
    /// let err = together(vec![NurseryError::Cancelled.into(), Obstacle.into()]).await;
    /// assert_eq!(err.failures().len(), 2);
    /// let deferred = DeferTo::new().cancelled().error::<Obstacle>().defer(err).unwrap();
    /// assert!(matches!(deferred, NurseryError::Cancelled));
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// Trio-util's `propagate_multi_error=False` case, as a value that
    /// gives the original error back ([`DeferToError::into_inner`]):
    /// [`DeferToError::Unlisted`] if a failure is of no listed kind (a
    /// panic, an unlisted error), [`DeferToError::Ambiguous`] if, strict,
    /// different errors share the highest priority.
    pub fn defer(&self, error: NurseryError) -> Result<NurseryError, DeferToError> {
        let NurseryError::Failed { failures } = error else {
            return Ok(error);
        };
        if failures.len() == 1 && !is_nested_failure(&failures[0]) {
            return Ok(NurseryError::Failed { failures });
        }
        // Rank every leaf, without taking anything apart yet, so that the
        // original can be given back whole.
        let mut leaves = Vec::new();
        collect_leaves(&failures, &mut leaves);
        let mut best: Option<(usize, Vec<String>)> = None;
        for failure in &leaves {
            let Some(rank) = failure.error().and_then(|e| self.rank(e)) else {
                let task = failure.task().to_owned();
                return Err(DeferToError::Unlisted {
                    task,
                    error: NurseryError::Failed { failures },
                });
            };
            let text = format!("{:?}", failure.error());
            match &mut best {
                Some((r, texts)) if *r == rank => {
                    if !texts.contains(&text) {
                        texts.push(text);
                    }
                }
                Some((r, _)) if *r < rank => {}
                _ => best = Some((rank, vec![text])),
            }
        }
        let Some((rank, texts)) = best else {
            return Ok(NurseryError::Failed { failures }); // no failures at all
        };
        if self.strict && texts.len() > 1 {
            return Err(DeferToError::Ambiguous {
                count: texts.len(),
                error: NurseryError::Failed { failures },
            });
        }
        let winner = take_first_leaf(failures, &|f| {
            f.error().and_then(|e| self.rank(e)) == Some(rank)
        })
        .expect("the winner is among the leaves");
        if winner
            .error()
            .and_then(|e| e.downcast_ref::<NurseryError>())
            .is_some()
        {
            if let Some(error) = winner.into_error() {
                if let Ok(nursery) = error.downcast::<NurseryError>() {
                    return Ok(*nursery);
                }
            }
            unreachable!("checked above");
        }
        Ok(NurseryError::Failed {
            failures: vec![winner],
        })
    }
}

fn is_cancellation(error: &(dyn StdError + Send + Sync + 'static)) -> bool {
    error.is::<crate::TooSlow>()
        || matches!(
            error.downcast_ref::<NurseryError>(),
            Some(NurseryError::Cancelled | NurseryError::TimedOut { .. })
        )
}

fn is_nested_failure(failure: &TaskFailure) -> bool {
    matches!(
        failure
            .error()
            .and_then(|e| e.downcast_ref::<NurseryError>()),
        Some(NurseryError::Failed { .. })
    )
}

fn collect_leaves<'a>(failures: &'a [TaskFailure], out: &mut Vec<&'a TaskFailure>) {
    for failure in failures {
        match failure
            .error()
            .and_then(|e| e.downcast_ref::<NurseryError>())
        {
            Some(nested @ NurseryError::Failed { .. }) => collect_leaves(nested.failures(), out),
            _ => out.push(failure),
        }
    }
}

fn take_first_leaf(
    failures: Vec<TaskFailure>,
    wanted: &dyn Fn(&TaskFailure) -> bool,
) -> Option<TaskFailure> {
    for failure in failures {
        if is_nested_failure(&failure) {
            let nested = failure.into_error()?.downcast::<NurseryError>().ok()?;
            if let NurseryError::Failed { failures } = *nested {
                if let Some(found) = take_first_leaf(failures, wanted) {
                    return Some(found);
                }
            }
        } else if wanted(&failure) {
            return Some(failure);
        }
    }
    None
}

/// Why [`DeferTo::defer`] left a nursery's failures as they were; the
/// original error is inside ([`into_inner`](Self::into_inner)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeferToError {
    /// A failure is of no kind in the list (an unlisted error, or a panic).
    #[error("unhandled multi-error: task `{task}` failed with an error of no listed kind")]
    Unlisted {
        /// The task whose failure is of no listed kind.
        task: String,
        /// The original error.
        error: NurseryError,
    },
    /// Strict, and several different errors share the highest priority.
    #[error("unhandled multi-error: {count} different errors share the highest priority")]
    Ambiguous {
        /// How many different errors share the highest priority.
        count: usize,
        /// The original error.
        error: NurseryError,
    },
}

impl DeferToError {
    /// The original error, unchanged.
    pub fn into_inner(self) -> NurseryError {
        match self {
            DeferToError::Unlisted { error, .. } | DeferToError::Ambiguous { error, .. } => error,
        }
    }
}

/// Runs `future`; if it fails with several failures, reduces them to the
/// one of the highest priority in `defer_to`, or leaves the error as it was
/// when that is not possible (trio-util's `multi_error_defer_to`).
///
/// See [`DeferTo::defer`] for the rules. This adapter is trio-util's
/// default `propagate_multi_error=True`: an error that cannot be reduced
/// passes through unchanged. For `propagate_multi_error=False`, call
/// [`DeferTo::defer`] yourself and handle its [`DeferToError`].
///
/// | trio-util | Trellis |
/// |---|---|
/// | `multi_error_defer_to(MyError, trio.Cancelled)` | `multi_error_defer_to(fut, DeferTo::new().error::<MyError>().cancelled())` |
/// | `MultiError` | [`NurseryError::Failed`] (nested ones flattened) |
/// | grouping by `repr()` | grouping by kind and `Debug` text |
/// | `strict=False` | [`DeferTo::strict(false)`](DeferTo::strict) |
/// | `RuntimeError` with `propagate_multi_error=False` | [`DeferToError`] from [`DeferTo::defer`] |
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use trellis::{nursery, NurseryError};
/// use trellis::util::{multi_error_defer_to, DeferTo};
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("emergency stop")]
/// struct EmergencyStop;
///
/// use trellis::CancelScope;
///
/// let work = nursery(|n| async move {
///     // Two tasks that fail in the same instant (shielded, so that the
///     // first failure does not cancel the other first).
///     n.spawn(async {
///         CancelScope::shielded()
///             .run(async { trellis::checkpoint().await; Err::<(), _>(NurseryError::Cancelled) })
///             .await
///             .unwrap()
///     });
///     n.spawn(async {
///         CancelScope::shielded()
///             .run(async { trellis::checkpoint().await; Err::<(), _>(EmergencyStop) })
///             .await
///             .unwrap()
///     });
/// });
/// // An error listed above the cancellation outranks it.
/// let defer_to = DeferTo::new().error::<EmergencyStop>().cancelled();
/// let err = multi_error_defer_to(work, defer_to).await.unwrap_err();
/// assert_eq!(err.failures().len(), 1);
/// assert!(err.failures()[0].error().unwrap().is::<EmergencyStop>());
/// # }
/// ```
///
/// # Cancel safety
///
/// As `future`.
pub fn multi_error_defer_to<F, T>(future: F, defer_to: DeferTo) -> MultiErrorDeferTo<F>
where
    F: Future<Output = Result<T, NurseryError>>,
{
    MultiErrorDeferTo { future, defer_to }
}

pin_project! {
    /// The future returned by [`multi_error_defer_to`].
    #[must_use = "futures do nothing unless polled"]
    pub struct MultiErrorDeferTo<F> {
        #[pin]
        future: F,
        defer_to: DeferTo,
    }
}

impl<F> fmt::Debug for MultiErrorDeferTo<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiErrorDeferTo")
            .field("defer_to", &self.defer_to)
            .finish_non_exhaustive()
    }
}

impl<F, T> Future for MultiErrorDeferTo<F>
where
    F: Future<Output = Result<T, NurseryError>>,
{
    type Output = Result<T, NurseryError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.future.poll(cx) {
            Poll::Ready(Err(error)) => Poll::Ready(Err(this
                .defer_to
                .defer(error)
                .unwrap_or_else(DeferToError::into_inner))),
            other => other,
        }
    }
}
