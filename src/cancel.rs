//! Cancel scopes, deadlines, checkpoints and graceful shutdown: Trio's
//! cancellation in Rust's shape.
//!
//! The public semantics are documented on [`CancelScope`] (the crate root
//! re-exports everything here). The mechanism — a tree of scope nodes that
//! cancellation is pushed down, with holds for shields and draining
//! nurseries — lives in the private `tree` module; the drivers here
//! ([`Scoped`], and the nursery's futures, which reuse [`poll_body`] and
//! [`DeadlineTimer`]) decide when a body is polled and when it is dropped.

mod current;
mod tree;

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

pub(crate) use current::{InNode, current, in_node, with_node};
pub(crate) use tree::{Cause, Kind, Node, Verdict, WakerRegistration};
#[cfg(feature = "observer")]
pub(crate) use tree::{keep_ages, roots};

/// Cancels everything inside it when told to or when its deadline passes.
///
/// A [`CancelScope`] wraps a future. When the scope is cancelled — by
/// [`CancelScope::cancel`] from any task, by its deadline passing, or because a
/// scope around it was cancelled — the wrapped future is dropped at its next
/// `.await` that yields. Dropping is the Rust form of Trio's `Cancelled`
/// exception: synchronous cleanup runs in `Drop`, and the code after the
/// cancelled `.await` never runs. The scope then returns `None` (it *caught*
/// the cancellation); a scope cancelled only because an outer scope was
/// cancelled never returns at all: the outer scope drops it whole.
///
/// Scopes nest with nurseries and tasks into one tree, so cancelling an outer
/// scope cancels every nursery and task opened inside it, and deadlines
/// compose: the nearest one wins ([`current_deadline`] reports it).
///
/// # Cheat sheet
///
/// | if you want to… | write |
/// |---|---|
/// | give up on something after a while, and go on | [`move_on_after(d, fut)`](move_on_after) → `Option<T>` |
/// | treat "too slow" as an error | [`fail_after(d, fut)`](fail_after) → `Result<T, TooSlow>` |
/// | the same, at an absolute [`Instant`] | [`move_on_at`], [`fail_at`] |
/// | cancel from another task, or move the deadline later | [`CancelScope::new`], clone it, [`CancelScope::run`] one clone, [`CancelScope::cancel`] or [`CancelScope::set_deadline`] another |
/// | protect cleanup from outer cancellation | [`CancelScope::shielded`] (read its limits) |
/// | ask for an orderly stop with time to clean up | [`CancelScope::shutdown`] in the stopper, [`wait_shutdown`] in the task |
/// | let others run and honour cancellation in a busy loop | [`checkpoint`] |
/// | know how long you may still take | [`current_deadline`] |
///
/// # Cancellation points
///
/// Only an `.await` that actually returns `Pending` is a cancellation point:
/// a future that completes without yielding runs to completion. Use
/// [`checkpoint`] in long computations. Cancellation is level-triggered: once a
/// scope is cancelled, every later yielding `.await` inside it is cancelled too.
///
/// # What a shield can and cannot promise
///
/// A shielded scope is not cancelled when an enclosing scope, nursery or task
/// is: its body runs on to completion (or until the shield's *own* deadline or
/// `cancel`), and the enclosing scopes wait for it before dropping anything.
/// That holds for every cancellation Trellis delivers — scopes, deadlines,
/// nursery failures, supervisor shutdowns. It cannot hold when the future
/// that contains the shield is dropped by something outside Trellis: a
/// `tokio::select!` branch that loses, `tokio::time::timeout`, an aborted
/// `JoinHandle`, a dropped nursery future, or the runtime shutting down. Rust
/// gives a future no way to refuse being dropped; keep shields inside Trellis
/// scopes, and keep them short.
///
/// # Graceful shutdown
///
/// [`CancelScope::shutdown`] (and [`Nursery::shutdown`](crate::Nursery::shutdown))
/// first *asks*: every [`wait_shutdown`] inside wakes, so a task can flush,
/// say goodbye or run other asynchronous cleanup, and return. After the grace
/// period the scope is cancelled as usual. This is OTP's `shutdown` timeout,
/// and what supervisors use to stop their children.
///
/// # The handle
///
/// A `CancelScope` is a cheap handle (clone it to share it); [`run`](Self::run)
/// wraps a future in the scope, which may be done once per scope. The other
/// methods may be called from any task, before, during or after the run.
///
/// # Examples
///
/// Cancel work from another task:
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use trellis::CancelScope;
///
/// let scope = CancelScope::new();
/// let canceller = scope.clone();
/// tokio::spawn(async move {
///     tokio::time::sleep(Duration::from_secs(1)).await;
///     canceller.cancel();
/// });
/// let out = scope.run(std::future::pending::<()>()).await;
/// assert_eq!(out, None);
/// assert!(scope.cancelled_caught());
/// # }
/// ```
#[derive(Clone)]
pub struct CancelScope {
    node: Arc<Node>,
}

impl fmt::Debug for CancelScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelScope")
            .field("deadline", &self.deadline())
            .field("cancelled", &self.is_cancelled())
            .field("cancelled_caught", &self.cancelled_caught())
            .finish()
    }
}

impl Default for CancelScope {
    fn default() -> Self {
        Self::new()
    }
}

impl CancelScope {
    /// Creates a scope with no deadline.
    pub fn new() -> Self {
        Self::with_node(Node::new(Kind::Scope, false))
    }

    /// Creates a shielded scope: cancellation of enclosing scopes does not
    /// reach inside until the shielded body is done.
    ///
    /// Its own [`cancel`](Self::cancel) and deadline still apply. Read
    /// ["What a shield can and cannot promise"](CancelScope#what-a-shield-can-and-cannot-promise).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use trellis::{CancelScope, move_on_after};
    ///
    /// let start = tokio::time::Instant::now();
    /// let out = move_on_after(Duration::from_secs(1), async {
    ///     // Cleanup that must finish even though the outer deadline passes:
    ///     let flushed = CancelScope::shielded()
    ///         .run(tokio::time::sleep(Duration::from_secs(5)))
    ///         .await;
    ///     assert_eq!(flushed, Some(()));
    ///     tokio::time::sleep(Duration::from_secs(1)).await; // cancelled here
    ///     unreachable!();
    /// })
    /// .await;
    /// assert_eq!(out, None);
    /// assert_eq!(start.elapsed(), Duration::from_secs(5));
    /// # }
    /// ```
    pub fn shielded() -> Self {
        Self::with_node(Node::new(Kind::Scope, true))
    }

    fn with_node(node: Arc<Node>) -> Self {
        CancelScope { node }
    }

    /// Sets the deadline (builder form of [`set_deadline`](Self::set_deadline)).
    #[must_use]
    pub fn with_deadline(self, deadline: Instant) -> Self {
        self.set_deadline(Some(deadline));
        self
    }

    /// Sets a relative deadline: `timeout` from the moment the scope is
    /// entered (first polled), not from now (Trio's `relative_deadline`).
    /// If the scope also has an absolute deadline, the earlier one wins.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use trellis::CancelScope;
    ///
    /// let scope = CancelScope::new().with_timeout(Duration::from_secs(2));
    /// assert_eq!(scope.relative_deadline(), Some(Duration::from_secs(2)));
    /// tokio::time::sleep(Duration::from_secs(10)).await; // the clock has not started
    /// let start = tokio::time::Instant::now();
    /// assert_eq!(scope.run(std::future::pending::<()>()).await, None);
    /// assert_eq!(start.elapsed(), Duration::from_secs(2));
    /// # }
    /// ```
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.set_relative_deadline(Some(timeout));
        self
    }

    /// The relative deadline (Trio's `relative_deadline`): before the scope
    /// is entered, the one set with [`with_timeout`](Self::with_timeout) or
    /// [`set_relative_deadline`](Self::set_relative_deadline); once entered,
    /// the time left until its deadline (zero once passed). `None` if there
    /// is none.
    pub fn relative_deadline(&self) -> Option<Duration> {
        if let Some(relative) = self.node.relative_deadline() {
            return Some(relative);
        }
        let deadline = self.deadline()?;
        Some(deadline.saturating_duration_since(Instant::now()))
    }

    /// Sets the relative deadline: before the scope is entered, counted from
    /// its entry; once entered, `timeout` from now. `None` removes it.
    pub fn set_relative_deadline(&self, timeout: Option<Duration>) {
        self.node.set_relative_deadline(timeout);
    }

    /// The scope's own deadline, if it has one.
    ///
    /// Enclosing scopes may have earlier ones: [`current_deadline`] gives the
    /// nearest.
    pub fn deadline(&self) -> Option<Instant> {
        self.node.deadline()
    }

    /// Moves the deadline (earlier or later), or removes it with `None`.
    /// Replaces a relative deadline that has not started counting yet (see
    /// [`with_timeout`](Self::with_timeout)).
    ///
    /// A deadline in the past cancels the scope as soon as it runs.
    pub fn set_deadline(&self, deadline: Option<Instant>) {
        self.node.set_deadline(deadline);
    }

    /// Cancels the scope and everything running inside it.
    ///
    /// Idempotent; callable from any task; if the scope has not run yet, it
    /// will be cancelled as soon as it starts.
    pub fn cancel(&self) {
        self.node.cancel(Cause::Explicit);
    }

    /// Asks everything inside to stop gracefully, then cancels the scope after
    /// `grace` if it is still running.
    ///
    /// Tasks inside learn of the request through [`wait_shutdown`]. An earlier
    /// grace deadline from a previous call stays.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use trellis::{CancelScope, wait_shutdown};
    ///
    /// let scope = CancelScope::new();
    /// scope.shutdown(Duration::from_secs(5));
    /// let out = scope
    ///     .run(async {
    ///         wait_shutdown().await;
    ///         "said goodbye" // async cleanup fits in the grace period
    ///     })
    ///     .await;
    /// assert_eq!(out, Some("said goodbye"));
    /// # }
    /// ```
    pub fn shutdown(&self, grace: Duration) {
        self.node.request_shutdown();
        self.node.set_grace_deadline(deadline_after(grace));
    }

    /// Whether this scope has been cancelled (by itself or by an enclosing
    /// one), or its deadline has passed (even if it has not run yet: it
    /// will be cancelled as soon as it does).
    pub fn is_cancelled(&self) -> bool {
        self.node.is_cancelled() || self.deadline().is_some_and(|d| d <= Instant::now())
    }

    /// Whether the scope is a shield (see [`shielded`](Self::shielded)).
    pub fn is_shield(&self) -> bool {
        self.node.is_shield()
    }

    /// Turns the shield on or off, before or while the scope runs (Trio's
    /// `cancel_scope.shield = …`).
    ///
    /// Turning it on protects the body from cancellations of enclosing
    /// scopes from now on; turning it off lets them in, and a body inside a
    /// cancelled enclosing scope is then cancelled at its next `.await`.
    ///
    /// Differs from Trio in one case: a cancellation of an enclosing scope
    /// that has *already* reached this scope is not taken back by turning
    /// the shield on (the body may have been dropped in part already); the
    /// scope then catches it, ending its run with `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use trellis::{move_on_after, CancelScope};
    ///
    /// let cleanup = CancelScope::new();
    /// let shield = cleanup.clone();
    /// let out = move_on_after(Duration::from_secs(1), async move {
    ///     cleanup
    ///         .run(async move {
    ///             shield.set_shield(true); // from here on, the outer deadline waits
    ///             tokio::time::sleep(Duration::from_secs(5)).await;
    ///             "flushed"
    ///         })
    ///         .await
    /// })
    /// .await;
    /// assert_eq!(out, Some(Some("flushed")));
    /// # }
    /// ```
    pub fn set_shield(&self, shield: bool) {
        self.node.set_shield(shield);
    }

    /// Whether this scope's run ended because the scope was cancelled (Trio's
    /// `cancelled_caught`): `run` returned `None`.
    pub fn cancelled_caught(&self) -> bool {
        self.node.is_caught()
    }

    /// Runs `fut` inside this scope. Returns `Some(output)` if it finished, or
    /// `None` if the scope was cancelled first.
    ///
    /// If an *enclosing* scope is cancelled, the returned future never
    /// completes: the enclosing scope drops it. When this scope and one
    /// around it in the same task are both cancelled, the outermost catches
    /// the cancellation (as in Trio): this run never completes either.
    ///
    /// A scope runs once: call `run` once per scope (clones share it).
    ///
    /// # Panics
    ///
    /// If this scope (or a clone of it) has been run before: running a
    /// scope twice, re-entering it, or entering it from a second task is a
    /// programming error, as in Trio. [`try_run`](Self::try_run) returns an
    /// error value instead.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future drops `fut` at once, shield or not.
    #[track_caller]
    pub fn run<F: Future>(&self, fut: F) -> Scoped<F> {
        match self.try_run(fut) {
            Ok(scoped) => scoped,
            Err(error) => panic!("{error}"),
        }
    }

    /// [`run`](Self::run), returning an error instead of panicking when the
    /// scope has been run before.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::{CancelScope, ScopeError};
    ///
    /// let scope = CancelScope::new();
    /// let first = scope.try_run(async {});
    /// assert!(first.is_ok());
    /// assert!(matches!(scope.try_run(async {}), Err(ScopeError::AlreadyRun)));
    /// ```
    ///
    /// # Errors
    ///
    /// [`ScopeError::AlreadyRun`] if `run` or `try_run` was called on this
    /// scope, or a clone of it, before.
    pub fn try_run<F: Future>(&self, fut: F) -> Result<Scoped<F>, ScopeError> {
        if !self.node.mark_entered() {
            return Err(ScopeError::AlreadyRun);
        }
        Ok(Scoped {
            body: Some(in_node(Arc::clone(&self.node), fut)),
            timer: DeadlineTimer::new(),
            scope: self.clone(),
            entered: false,
            registration: WakerRegistration::default(),
        })
    }
}

/// A misuse of a [`CancelScope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// The scope (or a clone of it) was run before: a scope runs once.
    #[error("a cancel scope can be run only once")]
    AlreadyRun,
}

pin_project! {
    /// The future returned by [`CancelScope::run`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Scoped<F> {
        #[pin]
        body: Option<InNode<F>>,
        #[pin]
        timer: DeadlineTimer,
        scope: CancelScope,
        entered: bool,
        registration: WakerRegistration,
    }

    impl<F> PinnedDrop for Scoped<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.entered {
                this.scope.leave();
            }
        }
    }
}

impl<F> fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl CancelScope {
    fn enter(&self) {
        self.node.apply_relative(Instant::now);
        if let Some(parent) = current() {
            self.node.attach(&parent);
        }
        self.node.sync_shield_hold(true);
    }

    fn leave(&self) {
        self.node.sync_shield_hold(false);
        self.node.detach();
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let first_poll = !*this.entered;
        if first_poll {
            *this.entered = true;
            this.scope.enter();
        }
        let node = &this.scope.node;
        node.sync_shield_hold(true);
        this.timer.as_mut().poll_fire(node, cx);
        let mut outcome = if first_poll {
            // As tokio's `timeout`, and Trio's "cancelled at the next
            // checkpoint": a body that completes without yielding completes.
            poll_body_first(node, this.body.as_mut(), cx)
        } else {
            poll_body(node, this.body.as_mut(), cx, |body, cx| body.poll(cx))
        };
        if matches!(outcome, BodyPoll::Pending | BodyPoll::Parked)
            && this.registration.update(node, cx.waker())
        {
            // First wait with this waker (a body done in one poll registers
            // none): a cancellation before it woke no one, so look again.
            outcome = recheck(node, this.body.as_mut(), cx);
        }
        match outcome {
            BodyPoll::Pending | BodyPoll::Parked => {
                // The body may have turned the shield on or off: hold (or
                // release) the path before the scopes around us look at it.
                node.sync_shield_hold(true);
                Poll::Pending
            }
            BodyPoll::Ready(out) => {
                *this.entered = false;
                this.scope.leave();
                Poll::Ready(Some(out))
            }
            BodyPoll::Dropped => {
                *this.entered = false;
                this.scope.leave();
                this.scope.node.mark_caught();
                Poll::Ready(None)
            }
        }
    }
}

/// The outcome of [`poll_body`].
pub(crate) enum BodyPoll<T> {
    Ready(T),
    Pending,
    /// The body was dropped because the node was cancelled.
    Dropped,
    /// Cancelled by an ancestor in this task: wait to be dropped.
    Parked,
}

/// Polls a driver's `body` under `node`'s verdict: drops it if the node is
/// cancelled (checking before and after the poll), parks, or polls it.
pub(crate) fn poll_body<B, T>(
    node: &Node,
    mut body: Pin<&mut Option<B>>,
    cx: &mut Context<'_>,
    poll: impl FnOnce(Pin<&mut B>, &mut Context<'_>) -> Poll<T>,
) -> BodyPoll<T> {
    let Some(inner) = body.as_mut().as_pin_mut() else {
        return BodyPoll::Dropped;
    };
    match node.verdict() {
        Verdict::Park => return BodyPoll::Parked,
        Verdict::Drop => {
            body.set(None);
            return BodyPoll::Dropped;
        }
        Verdict::Poll => {}
    }
    if let Poll::Ready(out) = poll(inner, cx) {
        body.set(None);
        return BodyPoll::Ready(out);
    }
    // The poll may have cancelled us, or released the last hold.
    match node.verdict() {
        Verdict::Poll => BodyPoll::Pending,
        Verdict::Park => BodyPoll::Parked,
        Verdict::Drop => {
            body.set(None);
            BodyPoll::Dropped
        }
    }
}

/// Applies the node's verdict to a body that is waiting, without polling
/// it: for a driver that has just registered its waker.
fn recheck<B, T>(node: &Node, body: Pin<&mut Option<B>>, cx: &mut Context<'_>) -> BodyPoll<T> {
    poll_body(node, body, cx, |_, _| Poll::Pending)
}

/// Polls a body for the first time, whatever the node's state, then applies
/// the verdict as [`poll_body`] does after a poll.
fn poll_body_first<B: Future>(
    node: &Node,
    mut body: Pin<&mut Option<B>>,
    cx: &mut Context<'_>,
) -> BodyPoll<B::Output> {
    let Some(inner) = body.as_mut().as_pin_mut() else {
        return BodyPoll::Dropped;
    };
    if let Poll::Ready(out) = inner.poll(cx) {
        body.set(None);
        return BodyPoll::Ready(out);
    }
    recheck(node, body, cx)
}

/// Like [`poll_body`] (or [`poll_body_first`] for the `first` poll), but a
/// panic while polling or dropping the body becomes `Err(message)` instead of
/// unwinding.
pub(crate) fn poll_body_catching<B: Future>(
    node: &Node,
    body: Pin<&mut Option<B>>,
    cx: &mut Context<'_>,
    first: bool,
) -> BodyPoll<Result<B::Output, String>> {
    let mut body = body;
    match std::panic::catch_unwind(AssertUnwindSafe(|| {
        if first {
            poll_body_first(node, body.as_mut(), cx)
        } else {
            poll_body(node, body.as_mut(), cx, |b, cx| b.poll(cx))
        }
    })) {
        Ok(BodyPoll::Ready(out)) => BodyPoll::Ready(Ok(out)),
        Ok(BodyPoll::Pending) => BodyPoll::Pending,
        Ok(BodyPoll::Parked) => BodyPoll::Parked,
        Ok(BodyPoll::Dropped) => BodyPoll::Dropped,
        Err(payload) => {
            // The body may have panicked mid-poll; dropping it may panic too.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| body.set(None)));
            BodyPoll::Ready(Err(panic_message(&*payload)))
        }
    }
}

/// Drops a driver's body, turning a panic in its `Drop` into a failure.
pub(crate) fn drop_catching<B: Future>(
    mut body: Pin<&mut Option<B>>,
) -> BodyPoll<Result<B::Output, String>> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| body.set(None))) {
        Ok(()) => BodyPoll::Dropped,
        Err(payload) => BodyPoll::Ready(Err(panic_message(&*payload))),
    }
}

/// The message of a panic payload (`&str` or `String`), or a placeholder.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// The timer a driver keeps for its node's deadline and grace deadline.
/// Re-armed whenever the node's deadline generation changes.
///
/// The tokio timer is boxed, made when a deadline is first set: most nodes
/// never have one, and a `Sleep` inline (112 bytes) would sit in every
/// task and scoped future for nothing.
pub(crate) struct DeadlineTimer {
    sleep: Option<Pin<Box<Sleep>>>,
    cause: Cause,
    generation: u64,
}

impl DeadlineTimer {
    pub(crate) fn new() -> Self {
        DeadlineTimer {
            sleep: None,
            cause: Cause::Deadline,
            // Generation 0: no deadline was ever set (every change bumps
            // it), so a node without one never takes its lock here.
            generation: 0,
        }
    }

    /// Cancels `node` if its deadline has passed; otherwise arranges a wake-up.
    pub(crate) fn poll_fire(self: Pin<&mut Self>, node: &Node, cx: &mut Context<'_>) {
        let this = self.get_mut();
        let generation = node.deadline_generation();
        if this.generation != generation {
            this.generation = generation;
            match node.timer_target() {
                Some((at, cause)) => {
                    this.cause = cause;
                    match &mut this.sleep {
                        Some(sleep) => sleep.as_mut().reset(at),
                        None => this.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
                    }
                }
                None => this.sleep = None,
            }
        }
        if node.is_cancelled_by_itself() {
            return;
        }
        if let Some(sleep) = &mut this.sleep {
            if sleep.as_mut().poll(cx).is_ready() {
                node.cancel(this.cause);
            }
        }
    }
}

/// `timeout` from now, or about 30 years from now if that overflows.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or_else(|| far_future(now))
}

/// About 30 years from now: tokio's own stand-in for "never".
fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(86400 * 365 * 30)
}

/// Runs `fut`, giving up when `timeout` has passed: `None` if it did.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use trellis::move_on_after;
///
/// let slow = tokio::time::sleep(Duration::from_secs(10));
/// assert_eq!(move_on_after(Duration::from_secs(1), slow).await, None);
/// assert_eq!(move_on_after(Duration::from_secs(1), async { 7 }).await, Some(7));
/// # }
/// ```
///
/// # Cancel safety
///
/// Whatever `fut` would lose when dropped is lost on timeout.
pub fn move_on_after<F: Future>(timeout: Duration, fut: F) -> Scoped<F> {
    CancelScope::new().with_timeout(timeout).run(fut)
}

/// Runs `fut`, giving up at `deadline`: `None` if it did.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use tokio::time::Instant;
/// use trellis::move_on_at;
///
/// let at = Instant::now() + Duration::from_secs(1);
/// assert_eq!(move_on_at(at, std::future::pending::<()>()).await, None);
/// # }
/// ```
pub fn move_on_at<F: Future>(deadline: Instant, fut: F) -> Scoped<F> {
    CancelScope::new().with_deadline(deadline).run(fut)
}

/// Runs `fut`, failing with [`TooSlow`] when `timeout` has passed.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use trellis::fail_after;
///
/// let slow = tokio::time::sleep(Duration::from_secs(10));
/// assert!(fail_after(Duration::from_secs(1), slow).await.is_err());
/// # }
/// ```
///
/// # Errors
///
/// [`TooSlow`] if the deadline passed before `fut` finished.
pub async fn fail_after<F: Future>(timeout: Duration, fut: F) -> Result<F::Output, TooSlow> {
    fail_at(deadline_after(timeout), fut).await
}

/// Runs `fut`, failing with [`TooSlow`] at `deadline`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use tokio::time::Instant;
/// use trellis::fail_at;
///
/// let at = Instant::now() + Duration::from_secs(1);
/// let err = fail_at(at, std::future::pending::<()>()).await.unwrap_err();
/// assert_eq!(err.deadline(), at);
/// # }
/// ```
///
/// # Errors
///
/// [`TooSlow`] if the deadline passed before `fut` finished.
pub async fn fail_at<F: Future>(deadline: Instant, fut: F) -> Result<F::Output, TooSlow> {
    CancelScope::new()
        .with_deadline(deadline)
        .run(fut)
        .await
        .ok_or(TooSlow { deadline })
}

/// The error of [`fail_after`] and [`fail_at`]: the deadline passed first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("deadline passed before the operation finished")]
pub struct TooSlow {
    deadline: Instant,
}

impl TooSlow {
    /// The deadline that passed.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

/// Yields to the scheduler once: a cancellation point that lets other tasks
/// run (Trio's `checkpoint`, `trio.sleep(0)`).
///
/// If a scope around the caller has been cancelled, the caller is dropped here.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use trellis::{checkpoint, CancelScope};
///
/// let scope = CancelScope::new();
/// let out = scope
///     .run(async {
///         let mut sum = 0u64;
///         for i in 0.. {
///             sum += i;
///             if i == 1_000 {
///                 trellis::CancelScope::cancel(&scope);
///             }
///             checkpoint().await; // a busy loop stays cancellable
///         }
///         sum
///     })
///     .await;
/// assert_eq!(out, None);
/// # }
/// ```
pub async fn checkpoint() {
    tokio::task::yield_now().await;
}

/// Whether the innermost scope around the caller has been cancelled or
/// asked to shut down (by itself or an enclosing scope): what a supervised
/// child's task looks at before it restarts its child in place.
pub(crate) fn current_is_stopping() -> bool {
    current::current().is_some_and(|node| node.is_cancelled() || node.is_shutdown_requested())
}

/// The nearest deadline that applies to the calling task: the earliest
/// deadline among the enclosing scopes and nurseries (up to a shield), or
/// `None` outside any scope with a deadline.
///
/// Servers use it to bound a request by the caller's remaining time.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use trellis::{current_deadline, move_on_after};
///
/// assert_eq!(current_deadline(), None);
/// move_on_after(Duration::from_secs(10), async {
///     let outer = current_deadline().unwrap();
///     move_on_after(Duration::from_secs(1), async {
///         assert!(current_deadline().unwrap() < outer); // the nearest wins
///     })
///     .await;
/// })
/// .await;
/// # }
/// ```
pub fn current_deadline() -> Option<Instant> {
    let node = current()?;
    if node.is_cancelled() {
        // Trio's `-inf`: the time is already up.
        return Some(Instant::now());
    }
    node.effective_deadline()
}

/// Waits until an enclosing scope or nursery asks for a graceful shutdown
/// ([`CancelScope::shutdown`], [`Nursery::shutdown`](crate::Nursery::shutdown)).
///
/// The caller then has the grace period for asynchronous cleanup before it is
/// cancelled. Outside any Trellis scope it never completes.
///
/// # Examples
///
/// See [`CancelScope::shutdown`].
///
/// # Cancel safety
///
/// Cancel safe: nothing is consumed; the request stays visible to later waits.
pub fn wait_shutdown() -> WaitShutdown {
    WaitShutdown {
        node: current(),
        registered: None,
    }
}

/// The future returned by [`wait_shutdown`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct WaitShutdown {
    node: Option<Arc<Node>>,
    /// Our slot among the node's waiters and the waker stored there: while
    /// it would wake the same task and no request has arrived, a poll
    /// touches no lock.
    registered: Option<(usize, std::task::Waker)>,
}

impl Future for WaitShutdown {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(node) = &this.node else {
            return Poll::Pending;
        };
        // Fast path (a server loop polls this each time its mailbox runs
        // dry). The request sets the flag under the node's lock and then
        // wakes every registered waker: if the flag is unset, our waker is
        // still registered and will be woken.
        if this
            .registered
            .as_ref()
            .is_some_and(|(_, w)| w.will_wake(cx.waker()))
            && !node.is_shutdown_requested()
        {
            return Poll::Pending;
        }
        let key = this.registered.as_ref().map(|(key, _)| *key);
        match node.register_shutdown_waiter(key, cx.waker()) {
            None => {
                this.registered = None;
                Poll::Ready(())
            }
            Some(key) => {
                match &mut this.registered {
                    Some((slot, w)) => {
                        *slot = key;
                        w.clone_from(cx.waker());
                    }
                    None => this.registered = Some((key, cx.waker().clone())),
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for WaitShutdown {
    fn drop(&mut self) {
        if let (Some(node), Some((key, _))) = (&self.node, &self.registered) {
            node.unregister_shutdown_waiter(*key);
        }
    }
}
