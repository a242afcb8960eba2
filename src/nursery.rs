//! Nurseries: the place where tasks live, so that none outlives its caller.
//!
//! The public semantics are documented on [`nursery`] (re-exported at the
//! crate root). Here: the nursery future ([`NurseryFuture`]), the handle
//! ([`Nursery`]), the per-task driver that polls a task under its scope node,
//! catches its panics and reports how it ended, and the shared counters that
//! decide when a nursery is done.

mod error;
mod fork;
mod handle;
#[cfg(feature = "observer")]
pub(crate) mod listing;
mod options;
pub(crate) mod stats;
mod status;
mod task;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::runtime::Handle;
use tokio::time::Instant;

use crate::cancel::{
    BodyPoll, Cause, DeadlineTimer, InNode, Kind, Node, WakerRegistration, current, deadline_after,
    in_node, poll_body_catching,
};
use crate::loom::lock;

pub use error::{BoxError, NurseryError, StartError, TaskFailure};
pub use fork::ForkOptions;
use fork::{ForkState, GroupLink};
pub use handle::{TaskError, TaskHandle, TaskInfo, TaskState};
pub use options::{NurseryOptions, SpawnOptions};
use stats::{Probe, Recorder};
pub(crate) use status::StartHook;
pub use status::TaskStatus;
use status::not_started;
use task::{Outcome, TaskDriver, TaskMeta};

/// What a task (or a nursery body) may return: `()` or a `Result` whose error
/// converts into `Box<dyn Error + Send + Sync>` (any `std::error::Error`,
/// `String`, `&str`, `anyhow::Error`…).
///
/// An `Err` is a failure: it cancels the nursery and is reported in its
/// [`NurseryError`]. The `Ok` value is the task's value, which its
/// [`TaskHandle`] returns (and a body's, which the nursery returns): a task
/// that computes a plain value returns it as `Ok(value)`. (Rust has no way
/// to implement a trait for "every type but `Result`", so a bare `u32` is not
/// a `TaskOutput`.)
///
/// A task that loops forever, `async { loop { … } }`, has the output `!` in
/// edition 2024, which is not a `TaskOutput`: give the loop an exit
/// (`while`, `for _ in 0..`), or end it with `Ok::<(), E>(())` after a
/// `break`.
pub trait TaskOutput {
    /// The value of a successful run.
    type Value;

    /// Splits the output into success and failure.
    ///
    /// # Errors
    ///
    /// The task's error, boxed.
    fn into_result(self) -> Result<Self::Value, BoxError>;

    /// The value a nursery returns when it was cancelled from inside (by
    /// [`Nursery::cancel`], a master task) before its body produced one:
    /// `Some(())` for a body returning `()` — "we're done, stop
    /// everything" ends the nursery with `Ok(())`, as in Trio — and `None`
    /// (the nursery returns [`NurseryError::Cancelled`]) for a body whose
    /// value it never got.
    fn value_if_cancelled() -> Option<Self::Value> {
        None
    }
}

impl TaskOutput for () {
    type Value = ();

    fn into_result(self) -> Result<(), BoxError> {
        Ok(())
    }

    fn value_if_cancelled() -> Option<()> {
        Some(())
    }
}

impl<T, E: Into<BoxError>> TaskOutput for Result<T, E> {
    type Value = T;

    fn into_result(self) -> Result<T, BoxError> {
        self.map_err(Into::into)
    }
}

/// The recorder of the nearest nursery around the caller, if instrumented.
fn inherited_recorder() -> Option<Arc<Recorder>> {
    let mut node = current();
    while let Some(n) = node {
        if let Some(link) = GroupLink::of(&n) {
            return link.shared.upgrade().and_then(|s| s.stats.clone());
        }
        node = n.parent().cloned();
    }
    None
}

/// Opens a nursery, runs `body` in it, and returns when the body and every
/// task spawned in the nursery have finished.
///
/// The body receives the [`Nursery`] handle to spawn tasks with. Tasks are
/// tokio tasks (they run in parallel on a multi-thread runtime),
/// but they cannot escape: the nursery is the only way they are spawned, and
/// the nursery waits for them.
///
/// When a task fails — returns `Err` or panics — the nursery cancels its body
/// and every other task at their next `.await` (see [`CancelScope`](crate::CancelScope) for what that means), waits for all of them, and
/// returns one [`NurseryError`] listing every failure with its task's name.
/// Nothing is swallowed, and a panic never takes the process down.
///
/// Compared with tokio's `JoinSet`: a `JoinSet` collects results you ask for;
/// a nursery also *reacts* to failures (cancelling siblings), honours cancel
/// scopes and deadlines around it, and cannot be forgotten, because its
/// future is what you await.
///
/// # Cheat sheet
///
/// | if you want to… | write |
/// |---|---|
/// | run tasks concurrently and wait for all | `nursery(\|n\| async move { n.spawn(a); n.spawn(b); })` |
/// | get one task's value, or cancel that one task | the [`TaskHandle`] that [`Nursery::spawn`] returns |
/// | handle a task's error yourself | [`SpawnOptions::bubble(false)`](SpawnOptions::bubble), then await its [`TaskHandle`] |
/// | wait until a task is ready, and get a value from it (a bound port…) | [`n.start(\|status\| …)`](Nursery::start), [`TaskStatus::started`] |
/// | give a task time to clean up when cancelled | [`SpawnOptions::cancel_grace`] and [`wait_shutdown`](crate::wait_shutdown) |
/// | run blocking code as a child | [`Nursery::spawn_blocking`] |
/// | stop everything because the work is done | [`Nursery::cancel`] (the nursery still returns `Ok`) |
/// | stop everything because of an error | [`Nursery::cancel_with`] |
/// | see what is running | [`Nursery::child_tasks`] |
/// | name a task for errors and traces | [`SpawnOptions::name`] with [`Nursery::spawn_with`] |
/// | a task whose failure is only logged | [`SpawnOptions::bubble(false)`](SpawnOptions::bubble) |
/// | stop everything when one task ends | [`SpawnOptions::master`] |
/// | a helper that runs only as long as the real work | [`SpawnOptions::awaited(false)`](SpawnOptions::awaited) |
/// | a deadline for all of it | [`NurseryOptions::timeout`] with [`nursery_with`] |
/// | stop a group of tasks without stopping the rest | [`Nursery::fork`], then [`Nursery::cancel`] on the fork |
/// | wait for a group of tasks and handle its failure | [`Nursery::fork_with`] with [`ForkOptions::bubble(false)`](ForkOptions::bubble), then [`Nursery::join`] |
/// | spawn from deep inside a task | [`Nursery::current`] |
///
/// # traio → Trellis
///
/// | traio | Trellis | notes |
/// |---|---|---|
/// | `Scope(timeout=…)` | [`nursery_with`] + [`NurseryOptions::timeout`] | the clock starts when the nursery does |
/// | `scope.spawn(coro, bubble=, master=, awaited=, cancel_timeout=)` | [`Nursery::spawn_with`] + [`SpawnOptions`] (`bubble`, `master`, `awaited`, `cancel_grace`) | |
/// | the returned task: `await task`, `task.cancel()`, `task.done()` | [`TaskHandle`]: `.await`, [`cancel`](TaskHandle::cancel), [`is_finished`](TaskHandle::is_finished) | an error of a bubbling task goes to the nursery, and the handle says so ([`TaskError::Reported`]): reported once |
/// | `scope.cancel()` / `scope.cancel(exc)` | [`Nursery::cancel`] / [`Nursery::cancel_with`] | cancelling your own nursery is not an error |
/// | `scope.fork(timeout=)` | [`Nursery::fork`], [`Nursery::fork_with`] + [`ForkOptions`], [`Nursery::join`] | a fork's failures fail the nursery at once unless `bubble(false)`; its deadline is an error unless `move_on` |
/// | `Scope.get_current()` | [`Nursery::current`] | |
/// | named tasks, the scope's logger | [`SpawnOptions::name`], `tracing` spans | |
/// | `loop.run_in_executor` in a scope | [`Nursery::spawn_blocking`] | cancellation waits for the thread |
///
/// # The body
///
/// The body's output (`()` or a `Result`, see [`TaskOutput`]) becomes the
/// nursery's value; an `Err` from the body counts as a failure, like a task's.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use trellis::nursery;
///
/// let done = Arc::new(AtomicUsize::new(0));
/// let counter = done.clone();
/// nursery(|n| async move {
///     for _ in 0..10 {
///         let counter = counter.clone();
///         n.spawn(async move {
///             counter.fetch_add(1, Ordering::SeqCst);
///         });
///     }
/// })
/// .await
/// .unwrap();
/// assert_eq!(done.load(Ordering::SeqCst), 10); // every task finished first
/// # }
/// ```
///
/// # Errors
///
/// [`NurseryError::Failed`] with every failure if a task or the body failed;
/// [`NurseryError::TimedOut`] if a deadline set with [`nursery_with`] passed;
/// [`NurseryError::Cancelled`] if the nursery cancelled itself before the
/// body returned (e.g. a master task ended).
///
/// If a scope *around* the nursery is cancelled, the nursery cancels its
/// tasks, waits for them and never completes: that scope drops it. Failures
/// still win: they are returned even then.
///
/// # Cancel safety
///
/// Dropping the returned future cancels every task in the nursery; they stop
/// at their next `.await` without being waited for. Prefer cancelling through
/// a [`CancelScope`](crate::CancelScope), which does wait.
pub fn nursery<F, Fut>(body: F) -> NurseryFuture<Fut, <Fut::Output as TaskOutput>::Value>
where
    F: FnOnce(Nursery) -> Fut,
    Fut: Future,
    Fut::Output: TaskOutput,
{
    nursery_with(NurseryOptions::default(), body)
}

/// [`nursery`] with options: a name and a deadline.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use trellis::{nursery_with, NurseryError, NurseryOptions};
///
/// let opts = NurseryOptions::new().timeout(Duration::from_secs(1));
/// let result = nursery_with(opts, |n| async move {
///     n.spawn(tokio::time::sleep(Duration::from_secs(60)));
/// })
/// .await;
/// assert!(matches!(result, Err(NurseryError::TimedOut { .. })));
/// # }
/// ```
///
/// # Errors
///
/// As [`nursery`].
pub fn nursery_with<F, Fut>(
    options: NurseryOptions,
    body: F,
) -> NurseryFuture<Fut, <Fut::Output as TaskOutput>::Value>
where
    F: FnOnce(Nursery) -> Fut,
    Fut: Future,
    Fut::Output: TaskOutput,
{
    let name = options.name.unwrap_or(Cow::Borrowed("nursery"));
    let stats_owner = options.recorder.is_some();
    let stats = options.recorder.or_else(inherited_recorder);
    let shared = Arc::new_cyclic(|weak: &Weak<Shared>| Shared {
        node: Node::new(
            Kind::Group(Arc::new(GroupLink {
                shared: weak.clone(),
                fork: None,
            })),
            false,
        ),
        forks: Mutex::new(Vec::new()),
        name,
        runtime: OnceLock::new(),
        awaited: AtomicUsize::new(0),
        background: AtomicUsize::new(0),
        body_done: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        failures: Mutex::new(Vec::new()),
        waker: Mutex::new(None),
        stats,
        stats_owner,
    });
    if options.deadline.is_some() {
        shared.node.set_deadline(options.deadline);
    }
    if options.timeout.is_some() {
        shared.node.set_relative_deadline(options.timeout);
    }
    let handle = Nursery {
        node: Arc::clone(&shared.node),
        shared: Arc::clone(&shared),
        fork: None,
    };
    let body = in_node(Arc::clone(&shared.node), body(handle));
    NurseryFuture {
        body: Some(body),
        timer: DeadlineTimer::new(),
        shared,
        value: None,
        phase: Phase::Idle,
        registration: WakerRegistration::default(),
    }
}

/// The nursery state every handle and task shares.
///
/// Spawning and finishing a task touch only atomics (and, for the task's
/// node, its parent's lock); the mutexes are taken on failures and when the
/// nursery is about to finish. Closing is a handshake on sequentially
/// consistent atomics: a spawner increments its counter, *then* reads
/// `closed`; the nursery sets `closed`, *then* reads the counters. At least
/// one of the two sees the other: either the spawner backs out (and wakes the
/// nursery), or the nursery sees the new task and waits for it.
pub(crate) struct Shared {
    /// The nursery's own node (forks have nodes below it).
    node: Arc<Node>,
    name: Cow<'static, str>,
    runtime: OnceLock<Handle>,
    /// Live awaited tasks.
    awaited: AtomicUsize,
    /// Live background tasks (`awaited(false)`).
    background: AtomicUsize,
    body_done: AtomicBool,
    closed: AtomicBool,
    failures: Mutex<Vec<TaskFailure>>,
    /// The forks opened in it, whose unjoined failures it reports.
    forks: Mutex<Vec<Arc<ForkState>>>,
    /// The nursery future's waker, once its body is done.
    waker: Mutex<Option<Waker>>,
    /// `util::TaskStats`: given to this nursery or inherited from the one
    /// it was opened in; `None` unless instrumented.
    stats: Option<Arc<Recorder>>,
    /// Whether the instrument was given to this nursery (which then logs the
    /// numbers when it ends).
    stats_owner: bool,
}

impl Shared {
    fn counter(&self, awaited: bool) -> &AtomicUsize {
        if awaited {
            &self.awaited
        } else {
            &self.background
        }
    }

    /// Counts a new task in; `false` if the nursery is closed.
    fn enter_task(&self, awaited: bool) -> bool {
        let counter = self.counter(awaited);
        counter.fetch_add(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            counter.fetch_sub(1, Ordering::SeqCst);
            self.wake_nursery();
            return false;
        }
        true
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn wake_nursery(&self) {
        let waker = lock(&self.waker).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Records the end of a task and reacts to it. Returns the failure of a
    /// task that does not bubble: its handle's.
    fn task_done(
        &self,
        node: &Node,
        meta: &TaskMeta,
        outcome: Outcome,
        start: Option<StartHook>,
    ) -> Option<TaskFailure> {
        let outcome = match (start, outcome) {
            (Some(hook), Outcome::Failed(failure)) => {
                match hook.fail(StartError::Failed(failure)) {
                    Some(StartError::Failed(failure)) => Outcome::Failed(failure),
                    _ => Outcome::Ok,
                }
            }
            (Some(hook), outcome) => {
                let cancelled = matches!(outcome, Outcome::Cancelled);
                let _ = hook.fail(not_started(node.task_name().clone(), cancelled));
                outcome
            }
            (None, outcome) => outcome,
        };
        let mut cause = None;
        let mut unreported = None;
        let mut fork_failure = None;
        if let Outcome::Failed(failure) = outcome {
            let fork = meta.fork.as_ref().filter(|fork| !fork.bubble);
            if let (Some(fork), true) = (fork, meta.bubble) {
                // A fork that keeps its failures: cancel the fork only.
                tracing::error!(nursery = %self.name, fork = %fork.name, %failure, "task of a fork failed");
                if let Some(parent) = node.parent() {
                    parent.cancel(Cause::Failure);
                }
                fork_failure = Some(failure);
            } else if meta.bubble {
                tracing::debug!(nursery = %self.name, %failure, "task failed");
                lock(&self.failures).push(failure);
                cause = Some(Cause::Failure);
            } else {
                tracing::error!(nursery = %self.name, %failure, "task failed (not bubbling)");
                unreported = Some(failure);
            }
        }
        if meta.master && cause.is_none() {
            cause = Some(Cause::Master);
        }
        if let Some(fork) = &meta.fork {
            fork.task_ended(fork_failure);
        }
        let left = self.counter(meta.awaited).fetch_sub(1, Ordering::SeqCst) - 1;
        let last = left == 0 && (meta.awaited || self.awaited.load(Ordering::SeqCst) == 0);
        let finished = last && self.body_done.load(Ordering::SeqCst);
        if let Some(cause) = cause {
            self.node.cancel(cause);
        }
        if finished || cause.is_some() {
            self.wake_nursery();
        }
        unreported
    }
}

/// A handle to a nursery: spawn tasks into it, cancel it.
///
/// Cheap to clone; tasks may keep clones to spawn siblings. A handle can
/// outlive its nursery, but spawning then fails with [`NurseryError::Closed`].
#[derive(Clone)]
pub struct Nursery {
    shared: Arc<Shared>,
    /// The group this handle spawns into: the nursery's node, or a fork's.
    node: Arc<Node>,
    /// The fork's state, for a fork's handle.
    fork: Option<Arc<ForkState>>,
}

impl fmt::Debug for Nursery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nursery")
            .field("name", &self.shared.name)
            .field("fork", &!Arc::ptr_eq(&self.node, &self.shared.node))
            .field("cancelled", &self.node.is_cancelled())
            .finish()
    }
}

impl Nursery {
    /// The nursery the calling task runs in (or the body of), if any.
    ///
    /// Inside a fork, this is the fork.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use trellis::{nursery, Nursery, NurseryError};
    ///
    /// async fn helper() -> Result<(), NurseryError> {
    ///     let n = Nursery::current().expect("called inside a nursery");
    ///     n.spawn(async {});
    ///     Ok(())
    /// }
    ///
    /// assert!(Nursery::current().is_none());
    /// nursery(|_n| helper()).await.unwrap();
    /// # }
    /// ```
    pub fn current() -> Option<Nursery> {
        let mut node = current();
        while let Some(n) = node {
            if let Some(link) = GroupLink::of(&n) {
                let fork = link.fork.clone();
                return link.shared.upgrade().map(|shared| Nursery {
                    shared,
                    node: Arc::clone(&n),
                    fork,
                });
            }
            node = n.parent().cloned();
        }
        None
    }

    /// Spawns `fut` as a task of this nursery (Trio's `start_soon`), with
    /// default [`SpawnOptions`], and returns its [`TaskHandle`].
    ///
    /// The task always starts: even in a nursery that is already cancelled,
    /// it runs until its first `.await` that yields, and is cancelled there
    /// (as Trio runs a task to its first checkpoint), so what it does first
    /// — and a failure before its first `.await` — is never lost.
    ///
    /// The handle may be dropped: the task runs on, and its nursery still
    /// waits for it and reports its failure.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use trellis::nursery;
    ///
    /// use trellis::BoxError;
    ///
    /// let sum = nursery(|n| async move {
    ///     let a = n.spawn(async { Ok::<_, BoxError>(1) });
    ///     let b = n.spawn(async { Ok::<_, BoxError>(2) });
    ///     Ok::<_, BoxError>(a.await? + b.await?)
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(sum, 3);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If the nursery has finished (a handle kept past its nursery: a
    /// programming error, as Trio raises `RuntimeError` and tokio's `spawn`
    /// panics outside a runtime; inside a task, that panic is a failure like
    /// any other). [`try_spawn`](Self::try_spawn) returns the error instead.
    /// Also if the nursery is not running on a tokio runtime (it always is
    /// when its body or one of its tasks calls this).
    #[doc(alias = "start_soon")]
    #[track_caller]
    pub fn spawn<F>(&self, fut: F) -> TaskHandle<<F::Output as TaskOutput>::Value>
    where
        F: Future + Send + 'static,
        F::Output: TaskOutput,
        <F::Output as TaskOutput>::Value: Send + 'static,
    {
        self.spawn_with(SpawnOptions::default(), fut)
    }

    /// Spawns `fut` as a task of this nursery with `options`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use trellis::{nursery, SpawnOptions};
    ///
    /// let err = nursery(|n| async move {
    ///     n.spawn_with(SpawnOptions::new().name("fetcher"), async { Err::<(), _>("404") });
    /// })
    /// .await
    /// .unwrap_err();
    /// assert_eq!(err.failures()[0].task(), "fetcher");
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// As [`spawn`](Self::spawn).
    #[track_caller]
    pub fn spawn_with<F>(
        &self,
        options: SpawnOptions,
        fut: F,
    ) -> TaskHandle<<F::Output as TaskOutput>::Value>
    where
        F: Future + Send + 'static,
        F::Output: TaskOutput,
        <F::Output as TaskOutput>::Value: Send + 'static,
    {
        match self.spawn_task(options, fut, None) {
            Some(handle) => handle,
            None => panic!("spawn into a finished nursery `{}`", self.shared.name),
        }
    }

    /// [`spawn`](Self::spawn), returning an error instead of panicking when
    /// the nursery has finished: for handles that may outlive their nursery.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use trellis::{nursery, NurseryError};
    ///
    /// let escaped = nursery(|n| async move { Ok::<_, NurseryError>(n) }).await.unwrap();
    /// assert!(matches!(escaped.try_spawn(async {}), Err(NurseryError::Closed)));
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`NurseryError::Closed`] if the nursery has finished.
    pub fn try_spawn<F>(
        &self,
        fut: F,
    ) -> Result<TaskHandle<<F::Output as TaskOutput>::Value>, NurseryError>
    where
        F: Future + Send + 'static,
        F::Output: TaskOutput,
        <F::Output as TaskOutput>::Value: Send + 'static,
    {
        self.try_spawn_with(SpawnOptions::default(), fut)
    }

    /// [`spawn_with`](Self::spawn_with), returning an error instead of
    /// panicking when the nursery has finished.
    ///
    /// # Errors
    ///
    /// [`NurseryError::Closed`] if the nursery has finished.
    pub fn try_spawn_with<F>(
        &self,
        options: SpawnOptions,
        fut: F,
    ) -> Result<TaskHandle<<F::Output as TaskOutput>::Value>, NurseryError>
    where
        F: Future + Send + 'static,
        F::Output: TaskOutput,
        <F::Output as TaskOutput>::Value: Send + 'static,
    {
        self.spawn_task(options, fut, None)
            .ok_or(NurseryError::Closed)
    }

    /// Runs the blocking function `f` on tokio's blocking thread pool as a
    /// task of this nursery (Trio's `to_thread.run_sync`), and returns its
    /// handle.
    ///
    /// The nursery waits for the thread: when the nursery returns, `f` has
    /// returned. A thread cannot be interrupted, so cancelling the nursery
    /// (or the task's handle) does not stop `f`: the task waits for it to
    /// return, and then ends with its value — Trio's default
    /// (`abandon_on_cancel=False`). A nursery cancelled while `f` runs
    /// therefore returns only once `f` returns; keep blocking work short, or
    /// have it poll a flag you set on cancellation. A panic in `f` is a
    /// failure of the task, as any task's.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use trellis::{nursery, BoxError};
    ///
    /// let digest = nursery(|n| async move {
    ///     let hashing = n.spawn_blocking(|| (0..1_000u64).sum::<u64>());
    ///     Ok::<_, BoxError>(hashing.await?)
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(digest, 499_500);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// As [`spawn`](Self::spawn).
    #[track_caller]
    pub fn spawn_blocking<F, T>(&self, f: F) -> TaskHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let name = Cow::Borrowed(short_type_name::<F>());
        let options = SpawnOptions::new().name(name);
        self.spawn_with(options, async move {
            let thread = tokio::task::spawn_blocking(f);
            // Shielded: the task waits for the thread even when cancelled.
            match crate::CancelScope::shielded().run(thread).await {
                Some(Ok(value)) => Ok(value),
                // The task's driver catches it: a panic failure, as any task's.
                Some(Err(error)) if error.is_panic() => {
                    std::panic::resume_unwind(error.into_panic())
                }
                _ => Err(BoxError::from("blocking task lost: the runtime shut down")),
            }
        })
    }

    /// Spawns the task `f(status)` and waits until it calls
    /// [`status.started(value)`](TaskStatus::started); returns that value.
    ///
    /// Before it has started, a failure of the task is returned here instead
    /// of failing the nursery, and cancelling the caller cancels the task.
    /// Afterwards it is an ordinary task of this nursery.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), trellis::BoxError> {
    /// use trellis::nursery;
    ///
    /// nursery(|n| async move {
    ///     let port = n
    ///         .start(|status| async move {
    ///             status.started(8080u16); // e.g. once a listener is bound
    ///         })
    ///         .await?;
    ///     assert_eq!(port, 8080);
    ///     Ok::<_, trellis::BoxError>(())
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`StartError::Failed`] if the task failed before starting,
    /// [`StartError::NotStarted`] if it returned without starting,
    /// [`StartError::Cancelled`] if it was cancelled first,
    /// [`StartError::Closed`] if the nursery has finished (`start` does not
    /// panic on a finished nursery: it already returns a `Result`).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before the task started cancels the task.
    pub async fn start<T, F, Fut>(&self, f: F) -> Result<T, StartError>
    where
        T: Send + 'static,
        F: FnOnce(TaskStatus<T>) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: TaskOutput,
        <Fut::Output as TaskOutput>::Value: Send + 'static,
    {
        self.start_with(SpawnOptions::default(), f).await
    }

    /// [`start`](Self::start) with options.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    ///
    /// # Cancel safety
    ///
    /// As [`start`](Self::start).
    pub async fn start_with<T, F, Fut>(&self, options: SpawnOptions, f: F) -> Result<T, StartError>
    where
        T: Send + 'static,
        F: FnOnce(TaskStatus<T>) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: TaskOutput,
        <Fut::Output as TaskOutput>::Value: Send + 'static,
    {
        let (status, hook, started) = TaskStatus::new();
        let task = self
            .spawn_task(options, f(status), Some(hook))
            .ok_or(StartError::Closed)?;
        /// Cancels a task that has not started when its starter goes away.
        struct CancelUnstarted<'a, T>(Option<&'a TaskHandle<T>>);
        impl<T> Drop for CancelUnstarted<'_, T> {
            fn drop(&mut self) {
                if let Some(task) = self.0.take() {
                    task.cancel();
                }
            }
        }
        let mut guard = CancelUnstarted(Some(&task));
        let result = started.await;
        guard.0 = None;
        result
    }

    /// Spawns a task; returns its handle, or `None` if the nursery is closed.
    fn spawn_task<F>(
        &self,
        options: SpawnOptions,
        fut: F,
        start: Option<StartHook>,
    ) -> Option<TaskHandle<<F::Output as TaskOutput>::Value>>
    where
        F: Future + Send + 'static,
        F::Output: TaskOutput,
        <F::Output as TaskOutput>::Value: Send + 'static,
    {
        if !self.shared.enter_task(options.awaited) {
            return None;
        }
        if let Some(fork) = &self.fork {
            fork.task_started();
        }
        let name = options
            .name
            .unwrap_or_else(|| Cow::Borrowed(short_type_name::<F>()));
        let node = Node::new_task(&self.node, name, options.cancel_grace);
        // Kept only if a subscriber wants it: a disabled span would still
        // take 40 bytes in every task.
        let span =
            tracing::debug_span!("task", name = %node.task_name(), nursery = %self.shared.name);
        let driver = TaskDriver {
            body: Some(in_node(Arc::clone(&node), fut)),
            span: (!span.is_disabled()).then(|| Box::new(span)),
            node: Arc::clone(&node),
            shared: Arc::clone(&self.shared),
            meta: TaskMeta {
                fork: self.fork.clone(),
                bubble: options.bubble,
                master: options.master,
                awaited: options.awaited,
            },
            start,
            polled: false,
            grace: options.cancel_grace.map(|period| {
                Box::pin(task::Grace {
                    period,
                    timer: DeadlineTimer::new(),
                })
            }),
            registered: false,
            registration: WakerRegistration::default(),
            done: false,
            probe: self
                .shared
                .stats
                .as_ref()
                .map(|r| Probe::new(Arc::clone(r))),
        };
        let join = match self.shared.runtime.get() {
            Some(runtime) => runtime.spawn(driver),
            None => tokio::spawn(driver),
        };
        Some(TaskHandle::new(join, node))
    }

    /// Cancels every task in this nursery (or in this fork only) and, if the
    /// body is still running, the body.
    ///
    /// Cancelling your own nursery is not an error (Trio's
    /// `nursery.cancel_scope.cancel()`): the nursery returns its body's
    /// value if the body had finished, `Ok(())` for a body returning `()`,
    /// and [`NurseryError::Cancelled`] only for a body whose value it never
    /// got. Failures still win.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use trellis::{nursery, Nursery};
    ///
    /// let done = nursery(|n| async move {
    ///     n.spawn(std::future::pending::<()>()); // would run forever
    ///     n.spawn(async {
    ///         tokio::time::sleep(Duration::from_secs(1)).await;
    ///         Nursery::current().unwrap().cancel(); // "we're done, stop everything"
    ///     });
    ///     std::future::pending::<()>().await;
    /// })
    /// .await;
    /// assert!(done.is_ok());
    /// # }
    /// ```
    pub fn cancel(&self) {
        self.node.cancel(Cause::Explicit);
    }

    /// Cancels this nursery (or fork) with a reason (traio's `cancel(exc)`):
    /// as [`cancel`](Self::cancel), and the nursery ends with `error` as a
    /// failure under the nursery's name, in [`NurseryError::Failed`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use trellis::{nursery_with, NurseryOptions};
    ///
    /// let err = nursery_with(NurseryOptions::new().name("fetch"), |n| async move {
    ///     n.spawn(std::future::pending::<()>());
    ///     n.cancel_with("upstream went away");
    /// })
    /// .await
    /// .unwrap_err();
    /// assert_eq!(err.to_string(), "task `fetch` failed: upstream went away");
    /// # }
    /// ```
    pub fn cancel_with(&self, error: impl Into<BoxError>) {
        let failure = TaskFailure::from_error(self.shared.name.clone(), error.into());
        lock(&self.shared.failures).push(failure);
        self.node.cancel(Cause::Failure);
        self.shared.wake_nursery();
    }

    /// Whether this nursery (or fork) has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.node.is_cancelled()
    }

    /// Asks every task in this nursery (or fork) to stop gracefully — each
    /// [`wait_shutdown`](crate::wait_shutdown) inside completes — and cancels
    /// whatever is still running after `grace`.
    pub fn shutdown(&self, grace: Duration) {
        self.node.request_shutdown();
        self.node.set_grace_deadline(deadline_after(grace));
        self.ensure_fork_timer();
    }

    /// The nursery's (or fork's) own deadline, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.node.deadline()
    }

    /// Moves the deadline of this nursery (or fork), or removes it. When it
    /// passes, everything inside is cancelled; a nursery reports
    /// [`NurseryError::TimedOut`].
    pub fn set_deadline(&self, deadline: Option<Instant>) {
        self.node.set_deadline(deadline);
        self.ensure_fork_timer();
    }

    /// Opens a fork with default [`ForkOptions`]: a group of tasks inside
    /// this nursery with its own cancellation (traio's `fork`).
    ///
    /// Tasks spawned through the fork are tasks of this nursery — it waits
    /// for them, and by default their failures fail it — but
    /// [`cancel`](Self::cancel), [`shutdown`](Self::shutdown) and deadlines
    /// on the fork reach only them. Cancelling the nursery cancels its
    /// forks. [`join`](Self::join) waits for the fork's tasks and returns
    /// its result.
    ///
    /// # Fork or nested nursery?
    ///
    /// | | fork | nested [`nursery`] in a task |
    /// |---|---|---|
    /// | who waits for its tasks | the enclosing nursery (and [`join`](Self::join), if called) | the nested nursery's `.await`, in one task |
    /// | spawning into it | from anywhere that holds the handle, as long as the nursery runs | while its body runs |
    /// | a failure | fails the whole nursery at once, or with [`ForkOptions::bubble(false)`](ForkOptions::bubble) waits for `join` | is returned by its `.await` |
    /// | its deadline | an error (`join` returns [`NurseryError::TimedOut`]) unless [`ForkOptions::move_on`] | an error ([`NurseryOptions::timeout`]) |
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use trellis::{nursery, TaskError};
    ///
    /// nursery(|n| async move {
    ///     let group = n.fork();
    ///     let forever = group.spawn(std::future::pending::<()>());
    ///     let sibling = n.spawn(async {});
    ///     group.cancel(); // stops the group only
    ///     assert!(matches!(forever.await, Err(TaskError::Cancelled { .. })));
    ///     assert!(sibling.await.is_ok());
    ///     assert!(!n.is_cancelled());
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If the nursery has finished, as [`spawn`](Self::spawn);
    /// [`try_fork`](Self::try_fork) returns the error instead.
    #[track_caller]
    pub fn fork(&self) -> Nursery {
        match self.try_fork() {
            Ok(fork) => fork,
            Err(_) => panic!("fork of a finished nursery `{}`", self.shared.name),
        }
    }

    /// [`fork`](Self::fork), returning an error instead of panicking when
    /// the nursery has finished.
    ///
    /// # Errors
    ///
    /// [`NurseryError::Closed`] if the nursery has finished.
    pub fn try_fork(&self) -> Result<Nursery, NurseryError> {
        self.try_fork_with(ForkOptions::default())
    }

    /// Opens a fork with `options` (see [`fork`](Self::fork)).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use trellis::{nursery, ForkOptions, NurseryError};
    ///
    /// nursery(|n| async move {
    ///     // A group whose failure the body handles itself:
    ///     let probes = n.fork_with(ForkOptions::new().name("probes").bubble(false));
    ///     probes.spawn(async { Err::<(), _>("host unreachable") });
    ///     probes.spawn(std::future::pending::<()>()); // cancelled by the failure
    ///     let err = probes.join().await.unwrap_err();
    ///     assert_eq!(err.failures().len(), 1);
    ///
    ///     // A group with a deadline that is an error:
    ///     let slow = n.fork_with(ForkOptions::new().timeout(Duration::from_secs(1)).bubble(false));
    ///     slow.spawn(tokio::time::sleep(Duration::from_secs(60)));
    ///     assert!(matches!(slow.join().await, Err(NurseryError::TimedOut { .. })));
    /// })
    /// .await
    /// .unwrap(); // both failures were handled: the nursery is fine
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If the nursery has finished, as [`spawn`](Self::spawn).
    #[track_caller]
    pub fn fork_with(&self, options: ForkOptions) -> Nursery {
        match self.try_fork_with(options) {
            Ok(fork) => fork,
            Err(_) => panic!("fork of a finished nursery `{}`", self.shared.name),
        }
    }

    /// [`fork_with`](Self::fork_with), returning an error instead of
    /// panicking when the nursery has finished.
    ///
    /// # Errors
    ///
    /// [`NurseryError::Closed`] if the nursery has finished.
    pub fn try_fork_with(&self, options: ForkOptions) -> Result<Nursery, NurseryError> {
        if self.shared.is_closed() {
            return Err(NurseryError::Closed);
        }
        let fork = Arc::new(ForkState::new(&options));
        let link = GroupLink {
            shared: Arc::downgrade(&self.shared),
            fork: Some(Arc::clone(&fork)),
        };
        let node = Node::new_child(Some(&self.node), Kind::Group(Arc::new(link)), false);
        lock(&self.shared.forks).push(Arc::clone(&fork));
        let handle = Nursery {
            shared: Arc::clone(&self.shared),
            node,
            fork: Some(fork),
        };
        if options.deadline.is_some() || options.timeout.is_some() {
            // A fork is entered when opened: its timeout counts from now,
            // and the earlier of the two deadlines wins.
            handle.node.set_deadline(options.deadline);
            handle.node.set_relative_deadline(options.timeout);
            handle.node.apply_relative(Instant::now);
            handle.ensure_fork_timer();
        }
        Ok(handle)
    }

    /// Waits until every task spawned through this fork has ended, and
    /// returns the fork's result: `Ok(())`, the failures of a fork opened
    /// with [`ForkOptions::bubble(false)`](ForkOptions::bubble) in
    /// [`NurseryError::Failed`], or [`NurseryError::TimedOut`] if its
    /// deadline passed (with the failures of its cancelled tasks). What
    /// `join` returns is taken: the nursery does not report it again; a
    /// failure after it (a task spawned later) is the nursery's to report.
    ///
    /// # Errors
    ///
    /// As above; [`NurseryError::NotAFork`] on a nursery's own handle (a
    /// nursery cannot wait for itself from inside).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future takes nothing; join again later.
    pub async fn join(&self) -> Result<(), NurseryError> {
        match &self.fork {
            Some(fork) => fork.join().await,
            None => Err(NurseryError::NotAFork),
        }
    }

    /// The nursery's name (see [`NurseryOptions::name`]).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The tasks of this nursery (or of this fork) that are running now,
    /// with their names and states (Trio's `nursery.child_tasks`). A
    /// nursery's list includes the tasks of its forks; tasks of nurseries
    /// opened inside its tasks are theirs, not its.
    ///
    /// A task is listed from the first time it waits (a task that finishes
    /// within its first poll never shows up: listing it would cost every
    /// spawn a lock) until it ends.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use trellis::{nursery, SpawnOptions, TaskState};
    ///
    /// nursery(|n| async move {
    ///     let sleeper = n.spawn_with(SpawnOptions::new().name("sleeper"), async {
    ///         tokio::time::sleep(Duration::from_secs(1)).await;
    ///     });
    ///     tokio::task::yield_now().await; // let it start
    ///     let tasks = n.child_tasks();
    ///     assert_eq!(tasks.len(), 1);
    ///     assert_eq!((tasks[0].name.as_str(), tasks[0].state), ("sleeper", TaskState::Running));
    ///     sleeper.await.unwrap();
    ///     assert!(n.child_tasks().is_empty());
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn child_tasks(&self) -> Vec<TaskInfo> {
        let mut tasks = Vec::new();
        let mut groups = vec![Arc::clone(&self.node)];
        while let Some(group) = groups.pop() {
            for child in group.children() {
                match child.kind() {
                    Kind::Task(_) => tasks.push(TaskInfo::of(&child)),
                    // A fork of this nursery: its tasks are ours.
                    Kind::Group(_)
                        if GroupLink::of(&child).is_some_and(|link| {
                            link.shared.as_ptr() == Arc::as_ptr(&self.shared)
                        }) =>
                    {
                        groups.push(child);
                    }
                    _ => {}
                }
            }
        }
        tasks
    }

    /// Forks have no driver of their own to run their deadline timer: the
    /// first time one needs it, a background task of the nursery runs it.
    fn ensure_fork_timer(&self) {
        if Arc::ptr_eq(&self.node, &self.shared.node) {
            return; // the nursery future runs the timer
        }
        let node = Arc::clone(&self.node);
        if !node.claim_timer() {
            return;
        }
        let fork = self.fork.clone();
        let shared = Arc::clone(&self.shared);
        let mut timer = DeadlineTimer::new();
        let run = std::future::poll_fn(move |cx| {
            node.register_waker(cx.waker());
            Pin::new(&mut timer).poll_fire(&node, cx);
            if !node.is_cancelled() {
                return Poll::Pending;
            }
            // A fork's deadline that passed is an error unless `move_on`.
            if let (Some(fork), Some(Cause::Deadline)) = (&fork, node.own_cause()) {
                let deadline = node.deadline().unwrap_or_else(Instant::now);
                if fork.bubble && !fork.move_on {
                    let timed_out = NurseryError::TimedOut {
                        deadline,
                        cleanup: Vec::new(),
                    };
                    let failure = TaskFailure::from_error(fork.name.clone(), Box::new(timed_out));
                    shared.body_failed(failure);
                } else if !fork.move_on {
                    fork.timed_out(deadline);
                }
            }
            Poll::Ready(())
        });
        let options = SpawnOptions::new().name("fork deadline").awaited(false);
        // A closed nursery has no tasks left to cancel.
        let _ = self.try_spawn_with(options, run);
    }
}

/// The type name of `T` without the `::{{closure}}` suffixes of async blocks
/// and without the generic parameters of the function that made it:
/// `my_app::serve<my_app::Handler>::{{closure}}` becomes `my_app::serve`.
///
/// Every unnamed spawn asks for its future's name, and an async block's type
/// name can be hundreds of characters long: each thread remembers the last
/// name it trimmed (a loop spawning one kind of task trims once).
pub(crate) fn short_type_name<T>() -> &'static str {
    trimmed_type_name::<T>(trim_type_name)
}

/// `T`'s type name as `trim` shortens it, remembered per thread for the
/// last type and `trim` asked for.
pub(crate) fn trimmed_type_name<T>(trim: fn(&'static str) -> &'static str) -> &'static str {
    type Last = Option<(&'static str, fn(&'static str) -> &'static str, &'static str)>;
    std::thread_local! {
        static LAST: std::cell::Cell<Last> = const { std::cell::Cell::new(None) };
    }
    let full = std::any::type_name::<T>();
    let cached = LAST.try_with(|last| match last.get() {
        Some((seen, by, short)) if std::ptr::eq(seen, full) && std::ptr::fn_addr_eq(by, trim) => {
            Some(short)
        }
        _ => None,
    });
    if let Ok(Some(short)) = cached {
        return short;
    }
    let short = trim(full);
    let _ = LAST.try_with(|last| last.set(Some((full, trim, short))));
    short
}

pub(crate) fn trim_type_name(mut name: &str) -> &str {
    loop {
        if let Some(shorter) = name.strip_suffix("::{{closure}}") {
            name = shorter;
        } else if name.ends_with('>') {
            // Drop the trailing balanced `<…>` group.
            let mut depth = 0usize;
            let mut cut = None;
            for (i, c) in name.char_indices().rev() {
                match c {
                    '>' => depth += 1,
                    '<' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            cut = Some(i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            match cut {
                Some(0) | None => return name,
                Some(i) => name = &name[..i],
            }
        } else {
            return name;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Running,
    Finished,
}

pin_project! {
    /// The future returned by [`nursery`] and [`nursery_with`]: `Fut` is
    /// the body's future, `T` the value of its output (see [`TaskOutput`]).
    ///
    /// `T` is a parameter of its own, not a projection of `Fut`'s output, so
    /// that holding a nursery future across an `.await` never asks the
    /// compiler to prove a trait bound for every lifetime (which made the
    /// documented idioms fail to compile inside `tokio::spawn`).
    #[must_use = "a nursery does nothing unless awaited"]
    pub struct NurseryFuture<Fut, T> {
        #[pin]
        body: Option<InNode<Fut>>,
        #[pin]
        timer: DeadlineTimer,
        shared: Arc<Shared>,
        value: Option<T>,
        phase: Phase,
        registration: WakerRegistration,
    }

    impl<Fut, T> PinnedDrop for NurseryFuture<Fut, T> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.shared.closed.store(true, Ordering::SeqCst);
            if *this.phase == Phase::Running {
                // Dropped from outside while running: cancel every task.
                this.shared.node.cancel(Cause::Explicit);
                this.shared.node.release_hold();
                this.shared.node.detach();
            }
        }
    }
}

impl<Fut, T> fmt::Debug for NurseryFuture<Fut, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NurseryFuture")
            .field("name", &self.shared.name)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl<Fut, T> Future for NurseryFuture<Fut, T>
where
    Fut: Future,
    Fut::Output: TaskOutput<Value = T>,
{
    type Output = Result<T, NurseryError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let shared = &**this.shared;
        let node = &shared.node;
        let first_poll = *this.phase == Phase::Idle;
        match *this.phase {
            Phase::Finished => return Poll::Pending, // parked, or polled after completion
            Phase::Idle => {
                *this.phase = Phase::Running;
                node.apply_relative(Instant::now);
                if let Ok(runtime) = Handle::try_current() {
                    let _ = shared.runtime.set(runtime);
                }
                if let Some(parent) = current() {
                    node.attach(&parent);
                } else {
                    // A root of the scope tree: listed for the observer.
                    #[cfg(feature = "observer")]
                    node.register_root();
                }
                node.acquire_hold();
            }
            Phase::Running => {}
        }
        this.registration.update(node, cx.waker());
        this.timer.as_mut().poll_fire(node, cx);

        if this.body.is_some() {
            let body_done = match poll_body_catching(node, this.body.as_mut(), cx, first_poll) {
                BodyPoll::Pending | BodyPoll::Parked => false,
                BodyPoll::Dropped => true,
                BodyPoll::Ready(Ok(out)) => {
                    match out.into_result() {
                        Ok(value) => *this.value = Some(value),
                        Err(error) => {
                            shared.body_failed(TaskFailure::from_error(shared.name.clone(), error))
                        }
                    }
                    true
                }
                BodyPoll::Ready(Err(panic)) => {
                    shared.body_failed(TaskFailure::from_panic(shared.name.clone(), panic));
                    true
                }
            };
            if body_done {
                shared.body_done.store(true, Ordering::SeqCst);
            }
        }
        if this.body.is_some() {
            return Poll::Pending; // task endings matter once the body is done
        }

        // Store the waker before reading the counters (see `Shared`).
        store_waker(&mut lock(&shared.waker), cx.waker());
        if shared.awaited.load(Ordering::SeqCst) > 0 {
            return Poll::Pending;
        }
        if shared.background.load(Ordering::SeqCst) > 0 {
            if !node.is_cancelled() {
                node.cancel(Cause::Done);
            }
            return Poll::Pending;
        }
        shared.closed.store(true, Ordering::SeqCst);
        if shared.awaited.load(Ordering::SeqCst) > 0 || shared.background.load(Ordering::SeqCst) > 0
        {
            return Poll::Pending; // a spawn raced with closing; its task will wake us
        }
        let mut failures = std::mem::take(&mut *lock(&shared.failures));
        let forks = std::mem::take(&mut *lock(&shared.forks));
        failures.extend(forks.iter().filter_map(|fork| fork.unjoined_failure()));

        *this.phase = Phase::Finished;
        node.release_hold();
        node.detach();
        if shared.stats_owner {
            if let Some(recorder) = &shared.stats {
                recorder.log(&shared.name);
            }
        }
        let cause = node.own_cause();
        if cause == Some(Cause::Deadline) {
            // The deadline came first: what failed after it failed while
            // being cancelled, and never hides the timeout.
            for failure in &failures {
                tracing::error!(nursery = %shared.name, %failure, "task failed while being cancelled for a timeout");
            }
            return Poll::Ready(Err(NurseryError::TimedOut {
                deadline: node.deadline().unwrap_or_else(Instant::now),
                cleanup: failures,
            }));
        }
        if !failures.is_empty() {
            return Poll::Ready(Err(NurseryError::Failed { failures }));
        }
        match cause {
            // Cancelled from outside: never return; the scope that was
            // cancelled drops us (see the cancel module).
            None if node.is_cancelled() => Poll::Pending,
            // Finished, or cancelled from inside ("we're done").
            _ => Poll::Ready(
                this.value
                    .take()
                    .or_else(<Fut::Output as TaskOutput>::value_if_cancelled)
                    .ok_or(NurseryError::Cancelled),
            ),
        }
    }
}

impl Shared {
    fn body_failed(&self, failure: TaskFailure) {
        lock(&self.failures).push(failure);
        self.node.cancel(Cause::Failure);
    }
}

fn store_waker(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(old) if old.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::trim_type_name;

    #[test]
    fn default_task_names_lose_closure_suffixes_and_generics() {
        assert_eq!(
            trim_type_name("app::main::{{closure}}::{{closure}}"),
            "app::main"
        );
        assert_eq!(
            trim_type_name(
                "trellis::net::serve_tcp<app::on_conn, alloc::string::String>::{{closure}}"
            ),
            "trellis::net::serve_tcp"
        );
        assert_eq!(
            trim_type_name("core::future::Pending<()>"),
            "core::future::Pending"
        );
        assert_eq!(
            trim_type_name("tokio::time::sleep::Sleep"),
            "tokio::time::sleep::Sleep"
        );
        assert_eq!(trim_type_name("<weird>"), "<weird>");
    }
}
