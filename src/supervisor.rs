//! Supervisors: processes that start children, watch them and restart them
//! when they end, within a restart intensity (Erlang/OTP's `supervisor`).
//!
//! A supervisor is a task like any other: [`start`] runs one in a nursery
//! and returns its [`Supervisor`] handle once every child has started
//! ([`serve`] is the same body for [`Nursery::start`](crate::Nursery::start)
//! or a [`ChildSpec`]). Each child is described by a
//! [`ChildSpec`]: an id, a *start function* that builds a fresh task for
//! every (re)start (a gen_server, another supervisor, any async function), a
//! [`Restart`] type and a [`Shutdown`] policy. Below the supervisor sit
//! [`dynamic_supervisor`](crate::dynamic_supervisor) (children added at run
//! time), above it [`application`](crate::application) and
//! [`node`](crate::node). A plain nursery is the right tool when a failure
//! should stop the group; a supervisor when it should be repaired.
//!
//! # You call → we do
//!
//! | you call | the supervisor |
//! |---|---|
//! | [`start(&n, children, options)`](start) / [`serve(children, options, status)`](serve) | starts children in order, each after the previous reported [`TaskStatus::started`] (a [`ChildSpec::task`] child: once spawned); then returns (reports) its own [`Supervisor`] handle |
//! | a child returns, fails or panics | decides by its [`Restart`] type; restarts it (and siblings, by [`Strategy`]) or lets it go |
//! | a [`ChildSpec::new`] child returns `Ok` without reporting `started` | records it as [ignored](ChildState::Ignored) (OTP's `ignore`): not running, no pid, never restarted; not a start failure |
//! | a child fails (error, panic) before reporting `started` | a start failure: [`SupervisorError::StartFailed`] (a restart that fails this way counts as another exit) |
//! | more than [`max_restarts`](SupervisorOptions::max_restarts) restarts within [`max_seconds`](SupervisorOptions::max_seconds) | stops every child in reverse start order and fails with [`SupervisorError::IntensityExceeded`], carrying the last child failure |
//! | the enclosing scope asks for a graceful shutdown, or [`Supervisor::stop`] | stops children in reverse start order, each by its [`Shutdown`], then returns `Ok(())` |
//! | every child has ended and none is to be restarted | returns `Ok(())` (as triotp) |
//! | [`tree`] from any task | a snapshot of every live supervision tree |
//!
//! # OTP call → Trellis
//!
//! A Trellis supervisor has no callback module: OTP's `init/1` result (the
//! supervisor flags and child specs) is the value you pass to [`start`].
//!
//! | OTP | Trellis |
//! |---|---|
//! | `supervisor:start_link(Mod, Args)`, then `Mod:init(Args)` → `{ok, {SupFlags, ChildSpecs}}` | [`start(&n, children, options)`](start): `options` are the flags, `children` the specs |
//! | `Mod:init/1` → `ignore` | don't start the supervisor (nothing to call) |
//! | child `start := {M, F, A}` → `{ok, Pid}` | the [`ChildSpec`] start function, called for every (re)start; its [`TaskStatus::started`] is `{ok, Pid}` |
//! | child start → `ignore` | the start function returns `Ok` without `started`: [`ChildState::Ignored`], [`StartedChild::is_ignored`] |
//! | child start → `{error, E}` | the start function fails (error, panic) before `started`: [`SupervisorError::StartFailed`] |
//! | `supervisor:start_child(Sup, Spec)` | [`Supervisor::start_child`] |
//! | `terminate_child` + `delete_child` | [`Supervisor::terminate_child`] |
//! | `which_children(Sup)` (`undefined` pid when not running) | [`Supervisor::which_children`] (`pid: None`; see [`ChildInfo::pid`]) |
//! | `count_children(Sup)` | [`Supervisor::count_children`] |
//! | the supervisor process restarts a failed child (in its `'EXIT'` handler, blocking its other messages meanwhile) | a one-for-one child is restarted by its own task, recorded as the supervisor would record it (see [Where children run](#where-children-run)): on purpose, so a restart costs no round trip through the supervisor (3–5× more restarts per second); the supervisor keeps answering requests meanwhile |
//! | `exit(Sup, shutdown)` | [`Supervisor::stop`], or a shutdown of the enclosing scope |
//!
//! Every default, OTP's and Trellis's:
//!
//! | setting | OTP default | Trellis default |
//! |---|---|---|
//! | strategy | `one_for_one` | [`Strategy::OneForOne`] |
//! | intensity / period | 1 restart in 5 s | 3 restarts in 5 s ([`max_restarts`](SupervisorOptions::max_restarts), [`max_seconds`](SupervisorOptions::max_seconds)): triotp's default, on purpose |
//! | restart | `permanent` | [`Restart::Permanent`] |
//! | shutdown of a worker | 5000 ms, then `kill` | [`Shutdown::Timeout`] of 5 s, then killed (logged at `ERROR`) |
//! | shutdown of a supervisor child | `infinity` | [`Shutdown::Infinity`] ([`ChildSpec::supervisor`]); bounded all the same, see [Shutdown](#shutdown) |
//! | `auto_shutdown` | `never`: a supervisor with no children runs on | a static supervisor returns `Ok(())` once no child is left to run (triotp's behaviour); a [dynamic supervisor](crate::dynamic_supervisor) runs on |
//! | registered name | none | none ([`register`](SupervisorOptions::register) `false`); the [name](SupervisorOptions::name) `"supervisor"` labels logs and the tree |
//! | backoff between restarts | none | none ([`backoff`](SupervisorOptions::backoff)) |
//!
//! # Restart types
//!
//! | [`Restart`] | normal exit | error or panic | stopped by its supervisor |
//! |---|---|---|---|
//! | `Permanent` (default) | restarted | restarted | — |
//! | `Transient` | not restarted | restarted | — |
//! | `Temporary` | not restarted | not restarted | removed |
//!
//! A child cancelled by something other than its supervisor ended with
//! [`ExitReason::Killed`], which is abnormal.
//!
//! # Strategies
//!
//! | [`Strategy`] | when one child must be restarted |
//! |---|---|
//! | `OneForOne` (default) | only that child is restarted |
//! | `OneForAll` | every other running child is stopped in reverse start order, then every non-temporary child is started again in start order |
//! | `RestForOne` | the children started after it are stopped in reverse order, then it and the non-temporary ones after it are started again in order |
//!
//! A group restart starts every non-temporary child of the group, as OTP
//! does — also one that was not running: a `Transient` child that had
//! exited normally, an [ignored](ChildState::Ignored) one. `Temporary`
//! children that the restart stopped are removed.
//!
//! # Shutdown
//!
//! | [`Shutdown`] | how a child is stopped |
//! |---|---|
//! | `Timeout(d)` (default, 5 s) | [`wait_shutdown`](crate::wait_shutdown) completes inside the child; after `d` it is dropped |
//! | `BrutalKill` | dropped at once (its `Drop` code runs, no async cleanup) |
//! | `Infinity` | asked to shut down and waited for; give it to child supervisors |
//!
//! A child supervisor that is asked to shut down stops its own children the
//! same way, so stopping a tree is graceful and recursive.
//!
//! No default waits forever. A worker's default is OTP's: 5 s, then it is
//! killed — its task dropped at its next `.await`, so a gen_server's
//! `terminate` or a task's cleanup is cut short — and the kill is logged at
//! `ERROR`. A [`ChildSpec::supervisor`] defaults to `Infinity`, as in OTP,
//! yet its stop is bounded too: it only stops its own children, each within
//! its own bounded shutdown, so the stop of a whole tree of default children
//! is bounded by the sum of its workers' shutdown times. Only a child given
//! `Infinity` explicitly can make a stop wait forever.
//!
//! # Options
//!
//! | option | default |
//! |---|---|
//! | [`name`](SupervisorOptions::name) | `"supervisor"` |
//! | [`register`](SupervisorOptions::register) | `false`: the name is a label for logs and the tree |
//! | [`strategy`](SupervisorOptions::strategy) | `OneForOne` |
//! | [`max_restarts`](SupervisorOptions::max_restarts) | 3 |
//! | [`max_seconds`](SupervisorOptions::max_seconds) | 5 s |
//! | [`backoff`](SupervisorOptions::backoff) | none: restart at once, as OTP |
//!
//! # Where children run
//!
//! Each child incarnation is its own tokio task, in its own
//! [`CancelScope`](crate::CancelScope), owned by the supervisor: dropping the
//! supervisor aborts every child, so none outlives it. Because a child's scope
//! is not nested in the supervisor's, a shutdown request that reaches the
//! supervisor reaches its children one at a time, in reverse start order.
//! Children have no enclosing nursery ([`Nursery::current`](crate::Nursery::current)
//! is `None`): one that needs concurrency opens its own.
//!
//! When a [`OneForOne`](Strategy::OneForOne) supervisor (or a
//! [dynamic](crate::dynamic_supervisor) one) without a
//! [`backoff`](SupervisorOptions::backoff) would only start a failed child
//! again, the child's task does it itself: it counts the restart in the
//! restart window (under the same lock the supervisor uses), in the
//! counters and in the child's row, logs what the supervisor would log, and
//! runs the next incarnation in the same task and scope, spending tokio's
//! cooperative budget as a message would (a child that fails at once does
//! not hold its thread). The supervisor is not woken. Everything it must
//! decide still goes to it: a full restart window, a child not to be
//! restarted, a restarted child that fails or [ignores](ChildState::Ignored)
//! its start, a group restart, a backoff, a stop. While the
//! [observer](crate::observer)'s events are streamed, every restart goes
//! through the supervisor, which publishes them.
//!
//! # Logging
//!
//! Every start, exit, restart, kill and intensity trip is a `tracing` event
//! (OTP's supervisor, crash and progress reports). Log pipelines can filter
//! on these fields, which every child event carries:
//!
//! | field | value |
//! |---|---|
//! | `supervisor` | the supervisor's [name](SupervisorOptions::name) |
//! | `child` | the child's id ([`ChildSpec::id`]) |
//! | `pid` | the child's own pid (see [`ChildInfo::pid`]), or `undefined` when it has none (OTP's word) |
//! | `reason` | how it ended ([`ExitReason`]'s text: `normal`, `shutdown`, `killed`, `error: …`, `panic: …`), on exits, stops and failures |
//!
//! plus `restart` (its [`Restart`] type) on abnormal exits, `restarts` (its
//! restart count) on restarts, `shutdown` on kills, and `max_restarts` /
//! `max_seconds` on intensity trips.
//!
//! | event (message) | level |
//! |---|---|
//! | `child started`, `child exited` (normally), `child stopped` (by its supervisor), `child ignored its start` | `INFO`; `DEBUG` under a [dynamic supervisor](crate::dynamic_supervisor), where children come and go (one per connection) |
//! | `child restarted` (after a normal exit) | `INFO` |
//! | `child terminated abnormally` (error, panic, killed — a temporary child's too) | `ERROR` |
//! | `child restarted after an abnormal exit` | `ERROR` |
//! | `child did not stop within its shutdown time; killed` | `ERROR` |
//! | `child failed to start`, `restart intensity exceeded, shutting down` | `ERROR` |
//!
//! # Names and pids
//!
//! A running supervisor is a process of the node: its [`Supervisor::pid`] is
//! alive ([`process::is_alive`](crate::process::is_alive)) and
//! [`registry::lookup_pid::<Supervisor>`](crate::registry::lookup_pid) gives
//! its handle. Its [name](SupervisorOptions::name) is a label unless it
//! [registers](SupervisorOptions::register) it (dynamic supervisors always do); a
//! [`registry::ProcessRef<Supervisor>`](crate::registry::ProcessRef) reaches a supervisor by handle, name or pid ([`resolve`]).
//!
//! A child's pid, in [`Supervisor::which_children`], [`tree`] and the log
//! events, is the child's own, as OTP's `which_children` gives it: the pid
//! of the first process created in the child's task — a gen_server's, a
//! nested supervisor's, or a mailbox a [`ChildSpec::new`] child opens — so
//! it is alive and [`registry::lookup_pid`](crate::registry::lookup_pid)
//! finds the child by it. A plain task that creates no process has no pid
//! (`None`, `undefined` in logs): it is not a process, nothing can send to
//! it, and Trellis does not invent a pid that no lookup could resolve (see
//! [`ChildInfo::pid`]).
//!
//! # Cheat sheet
//!
//! | if you want… | write |
//! |---|---|
//! | a child from a function that needs no handshake | [`ChildSpec::task`] |
//! | a child that reports readiness (and a value) | [`ChildSpec::new`] with a `TaskStatus` |
//! | a supervisor under a supervisor | [`ChildSpec::supervisor`] |
//! | to add or remove children at run time | [`Supervisor::start_child`], [`Supervisor::terminate_child`], or a [`dynamic_supervisor`](crate::dynamic_supervisor) |
//! | to slow down a child that keeps crashing | [`SupervisorOptions::backoff`] |
//! | to see the tree | [`tree`], [`Supervisor::info`] |
//! | to reach a supervisor by its name | [`SupervisorOptions::register`], then a name (any `impl Into<ProcessRef<Supervisor>>`) or [`registry::lookup::<Supervisor>`](crate::registry::lookup) |
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use trellis::supervisor::{self, ChildSpec, SupervisorOptions};
//!
//! let runs = Arc::new(AtomicU32::new(0));
//! let counter = runs.clone();
//! // Fails twice, then finishes its work.
//! let flaky = ChildSpec::task("flaky", move || {
//!     let counter = counter.clone();
//!     async move {
//!         match counter.fetch_add(1, Ordering::SeqCst) {
//!             0 | 1 => Err("not yet"),
//!             _ => Ok(()),
//!         }
//!     }
//! })
//! .restart(supervisor::Restart::Transient);
//!
//! trellis::nursery(|n| async move {
//!     supervisor::start(&n, vec![flaky], SupervisorOptions::new()).await?;
//!     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//! })
//! .await
//! .unwrap(); // the supervisor returned: its only child finished normally
//! assert_eq!(runs.load(Ordering::SeqCst), 3);
//! # }
//! ```

mod engine;
pub(crate) mod intensity;
mod tree;

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::AbortOnDropHandle;

use crate::BoxError;
use crate::nursery::{StartHook, TaskOutput, TaskStatus};
use crate::process::{ExitReason, Pid};
use crate::registry::ProcessRef;
use engine::{Launch, restarted_started};

pub use tree::{ChildInfo, ChildState, SupervisorInfo, Tree, tree};

/// The value a child reported with [`TaskStatus::started`], type-erased.
pub(crate) type StartedValue = Box<dyn Any + Send>;

/// One incarnation of a child, as its start function built it from the
/// supervisor's [`Launch`]: the whole task to spawn (the child's future
/// inside its scope and exit report, in one allocation), and the handshake
/// to wait for (`None`: started once spawned, with `()`, as
/// [`ChildSpec::task`] children are).
pub(crate) struct Incarnation {
    /// The child's spawned task.
    pub(crate) task: AbortOnDropHandle<()>,
    pub(crate) started: Option<BoxFuture<'static, Option<StartedValue>>>,
}

type StartFn = Arc<dyn Fn(Launch) -> Incarnation + Send + Sync>;

/// One incarnation of a [`ChildSpec::new`] child: `start` is called inside
/// the child's task and scope (on the first poll), so what it captures
/// (`wait_shutdown()`…) belongs to the child. The start hook is held until
/// the child has started, or its task ends before (the handshake then
/// fails). Its output says whether it started; one `restarted` in place
/// reports its start to its row then.
async fn handshake_incarnation<T, F, Fut>(
    start: Arc<F>,
    status: TaskStatus<T>,
    hook: StartHook,
    restarted: bool,
) -> (Result<(), BoxError>, bool)
where
    T: Send + 'static,
    F: Fn(TaskStatus<T>) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: TaskOutput,
{
    let child = start(status);
    let mut child = std::pin::pin!(child);
    let mut hook = Some(hook);
    let out = std::future::poll_fn(|cx| {
        let polled = child.as_mut().poll(cx);
        if hook.is_some() {
            StartHook::release_if_answered(&mut hook);
            if hook.is_none() && restarted {
                restarted_started();
            }
        }
        polled
    })
    .await;
    (out.into_result().map(drop), hook.is_none())
}

/// One incarnation of a [`ChildSpec::task`] child (`start` called inside
/// its task and scope, as in [`handshake_incarnation`]): started once
/// spawned.
async fn task_incarnation<F, Fut>(start: Arc<F>) -> (Result<(), BoxError>, bool)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: TaskOutput,
{
    (start().await.into_result().map(drop), true)
}

/// When a child that ended is restarted (OTP's `restart` in a child spec).
///
/// See the [module table](self#restart-types). Default: `Permanent`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Restart {
    /// Always restarted.
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit (error, panic, killed).
    Transient,
    /// Never restarted.
    Temporary,
}

impl Restart {
    /// Whether a child with this restart type that ended with `reason` is
    /// restarted.
    ///
    /// ```
    /// use trellis::process::ExitReason;
    /// use trellis::supervisor::Restart;
    ///
    /// assert!(Restart::Permanent.restarts_after(&ExitReason::Normal));
    /// assert!(!Restart::Transient.restarts_after(&ExitReason::Normal));
    /// assert!(Restart::Transient.restarts_after(&ExitReason::error("boom")));
    /// assert!(!Restart::Temporary.restarts_after(&ExitReason::error("boom")));
    /// ```
    pub fn restarts_after(self, reason: &ExitReason) -> bool {
        self.restarts_if(reason.is_abnormal())
    }

    /// [`restarts_after`](Self::restarts_after) a reason that is abnormal or
    /// not.
    pub(crate) fn restarts_if(self, abnormal: bool) -> bool {
        match self {
            Restart::Permanent => true,
            Restart::Transient => abnormal,
            Restart::Temporary => false,
        }
    }
}

/// How a supervisor stops a child (OTP's `shutdown` in a child spec).
///
/// See the [module table](self#shutdown). Default: `Timeout(5 s)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shutdown {
    /// Ask for a graceful shutdown, drop the child after this long.
    Timeout(Duration),
    /// Drop the child at once.
    BrutalKill,
    /// Ask for a graceful shutdown and wait as long as it takes.
    Infinity,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::Timeout(Duration::from_secs(5))
    }
}

/// Which children are restarted together (OTP's restart strategies).
///
/// See the [module table](self#strategies). Default: `OneForOne`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Restart only the child that ended.
    #[default]
    #[doc(alias = "one_for_one")]
    OneForOne,
    /// Restart every child.
    #[doc(alias = "one_for_all")]
    OneForAll,
    /// Restart the child and those started after it.
    #[doc(alias = "rest_for_one")]
    RestForOne,
}

/// A delay between consecutive restarts of one child that doubles each time,
/// from `initial` up to `max` (off by default).
///
/// A child that ran for at least `max` before ending starts over at
/// `initial`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first restart of a streak.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay before the `n`-th consecutive restart (`n` ≥ 1).
    ///
    /// ```
    /// use std::time::Duration;
    /// use trellis::supervisor::Backoff;
    ///
    /// let b = Backoff { initial: Duration::from_millis(10), max: Duration::from_millis(50) };
    /// assert_eq!(b.delay(1), Duration::from_millis(10));
    /// assert_eq!(b.delay(3), Duration::from_millis(40));
    /// assert_eq!(b.delay(9), Duration::from_millis(50));
    /// ```
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// The options of a supervisor (see the [module table](self#options) for
/// the defaults: `OneForOne`, 3 restarts in 5 s, no backoff, a label name).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use trellis::supervisor::{Strategy, SupervisorOptions};
///
/// let options = SupervisorOptions::new()
///     .name("db")
///     .strategy(Strategy::RestForOne)
///     .max_restarts(10)
///     .max_seconds(Duration::from_secs(60));
/// assert!(format!("{options:?}").contains("RestForOne"));
/// ```
#[derive(Clone, Debug)]
#[must_use]
#[doc(alias = "options")]
pub struct SupervisorOptions {
    pub(crate) name: Cow<'static, str>,
    pub(crate) strategy: Strategy,
    pub(crate) max_restarts: u32,
    pub(crate) max_seconds: Duration,
    pub(crate) backoff: Option<Backoff>,
    pub(crate) max_children: Option<usize>,
    pub(crate) register: bool,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        SupervisorOptions {
            name: Cow::Borrowed("supervisor"),
            strategy: Strategy::OneForOne,
            max_restarts: 3,
            max_seconds: Duration::from_secs(5),
            backoff: None,
            max_children: None,
            register: false,
        }
    }
}

impl SupervisorOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the supervisor, in logs, errors and the tree.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Registers the [name](Self::name) in the node's
    /// [registry](crate::registry) while the supervisor runs (off by
    /// default; [dynamic supervisors](crate::dynamic_supervisor) always
    /// register).
    ///
    /// A registered supervisor is found with
    /// [`registry::lookup::<Supervisor>(name)`](crate::registry::lookup) and
    /// reached by name through a [`ProcessRef`]. The name is registered
    /// before the first child starts and released when the supervisor ends,
    /// however it ends (returning, failing, panicking or being cancelled), so
    /// a restarted supervisor finds it free. A name already taken makes
    /// [`start`] fail with [`SupervisorError::NameTaken`] before any child
    /// starts.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use trellis::registry;
    /// use trellis::supervisor::{self, ChildSpec, SupervisorOptions, Supervisor};
    ///
    /// trellis::nursery(|n| async move {
    ///     let children = vec![ChildSpec::task("worker", || trellis::wait_shutdown())];
    ///     let options = SupervisorOptions::new().name("registered-demo").register(true);
    ///     let sup = supervisor::start(&n, children, options).await?;
    ///     let found = registry::lookup::<Supervisor>("registered-demo")?;
    ///     assert_eq!(found.pid(), sup.pid());
    ///     sup.stop().await?;
    ///     assert_eq!(registry::whereis("registered-demo"), None);
    ///     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn register(mut self, register: bool) -> Self {
        self.register = register;
        self
    }

    /// The restart strategy.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// How many restarts are allowed within [`max_seconds`](Self::max_seconds)
    /// (OTP's `intensity`); one more and the supervisor gives up.
    pub fn max_restarts(mut self, max_restarts: u32) -> Self {
        self.max_restarts = max_restarts;
        self
    }

    /// The length of the restart-intensity window (OTP's `period`); must not
    /// be zero.
    pub fn max_seconds(mut self, window: Duration) -> Self {
        self.max_seconds = window;
        self
    }

    /// Delays consecutive restarts of a child (see [`Backoff`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }
}

/// A key for a child, unique within its supervisor and stable across the
/// child's restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChildId(pub(crate) u64);

impl fmt::Display for ChildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Describes a child: its id, how to start it, when to restart it and how to
/// stop it (OTP's child specification, triotp's `child_spec`).
///
/// | field | default |
/// |---|---|
/// | `id` | required; unique among a static supervisor's children |
/// | `start` | required; called again for every restart |
/// | [`restart`](Self::restart) | [`Restart::Permanent`] |
/// | [`shutdown`](Self::shutdown) | [`Shutdown::Timeout`] of 5 s ([`Infinity`](Shutdown::Infinity) for [`ChildSpec::supervisor`]) |
///
/// Cheap to clone: the start function is shared.
#[derive(Clone)]
#[doc(alias = "child_spec")]
pub struct ChildSpec {
    pub(crate) id: Cow<'static, str>,
    pub(crate) start: StartFn,
    /// Whether the child reports started through the handshake
    /// ([`ChildSpec::new`]) or counts as started once spawned
    /// ([`ChildSpec::task`]).
    pub(crate) handshake: bool,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Shutdown,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .finish_non_exhaustive()
    }
}

impl ChildSpec {
    /// A child whose start function takes the `start` handshake: the
    /// supervisor waits for [`TaskStatus::started`] before starting the next
    /// child, and hands the value to whoever started the child dynamically.
    ///
    /// `start` is called for every (re)start and must build a fresh task.
    /// The task's output is `()` or a `Result` (see
    /// [`TaskOutput`]); an `Err` is an abnormal exit, as
    /// is a panic.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::TaskStatus;
    /// use trellis::supervisor::ChildSpec;
    ///
    /// let spec = ChildSpec::new("listener", |status: TaskStatus<u16>| async move {
    ///     status.started(8080);
    ///     trellis::wait_shutdown().await;
    /// });
    /// assert_eq!(spec.id(), "listener");
    /// ```
    pub fn new<T, F, Fut>(id: impl Into<Cow<'static, str>>, start: F) -> Self
    where
        T: Send + 'static,
        F: Fn(TaskStatus<T>) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: TaskOutput,
    {
        let start = Arc::new(start);
        let start: StartFn = Arc::new(move |launch: Launch| {
            let (status, hook, handshake) = TaskStatus::<T>::new();
            let first = handshake_incarnation(Arc::clone(&start), status, hook, false);
            let start = Arc::clone(&start);
            Incarnation {
                task: launch.spawn(first, move || {
                    // Restarted in place: nobody waits for this handshake
                    // (its answer marks the child started).
                    let (status, hook, _unread) = TaskStatus::<T>::new();
                    handshake_incarnation(Arc::clone(&start), status, hook, true)
                }),
                started: Some(Box::pin(async move {
                    match handshake.await {
                        Ok(value) => Some(Box::new(value) as StartedValue),
                        Err(_) => None,
                    }
                })),
            }
        });
        ChildSpec {
            id: id.into(),
            start,
            handshake: true,
            restart: Restart::default(),
            shutdown: Shutdown::default(),
        }
    }

    /// A child from a plain async function, started as soon as it is
    /// spawned (no handshake): the supervisor counts it as started, and
    /// goes on to the next child, once its task is spawned, without waiting
    /// for its body to run. Its started value is `()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::supervisor::{ChildSpec, Restart};
    ///
    /// let spec = ChildSpec::task("ticker", || async {
    ///     trellis::wait_shutdown().await;
    /// })
    /// .restart(Restart::Transient);
    /// assert_eq!(spec.id(), "ticker");
    /// ```
    pub fn task<F, Fut>(id: impl Into<Cow<'static, str>>, start: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: TaskOutput,
    {
        let start = Arc::new(start);
        let start: StartFn = Arc::new(move |launch: Launch| {
            let first = task_incarnation(Arc::clone(&start));
            let start = Arc::clone(&start);
            Incarnation {
                task: launch.spawn(first, move || task_incarnation(Arc::clone(&start))),
                started: None,
            }
        });
        ChildSpec {
            id: id.into(),
            start,
            handshake: false,
            restart: Restart::default(),
            shutdown: Shutdown::default(),
        }
    }

    /// A child that is itself a supervisor of `children`, with shutdown
    /// [`Infinity`](Shutdown::Infinity). Its [`SupervisorError`] (a start
    /// failure or an intensity trip) is an abnormal exit its parent reacts to.
    /// The started value is its [`Supervisor`] handle.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::supervisor::{ChildSpec, SupervisorOptions, Shutdown};
    ///
    /// let workers = vec![ChildSpec::task("w", || trellis::wait_shutdown())];
    /// let spec = ChildSpec::supervisor("pool", workers, SupervisorOptions::new().name("pool"));
    /// assert_eq!(spec.shutdown_policy(), Shutdown::Infinity);
    /// ```
    pub fn supervisor(
        id: impl Into<Cow<'static, str>>,
        children: Vec<ChildSpec>,
        options: SupervisorOptions,
    ) -> Self {
        ChildSpec::new(id, move |status: TaskStatus<Supervisor>| {
            serve(children.clone(), options.clone(), status)
        })
        .shutdown(Shutdown::Infinity)
    }

    /// A child that is a [`GenServer`](crate::gen_server::GenServer):
    /// every (re)start builds a fresh server with `server()` and serves it
    /// ([`gen_server::Builder::serve`](crate::gen_server::Builder::serve))
    /// with a clone of `arg`. An `init` that returns `Init::Ignore` ends the
    /// child normally without reporting started.
    /// The started value is its [`Server`](crate::gen_server::Server)
    /// handle; a name in `options` is registered by each incarnation, so
    /// callers by name reach the current one.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::BoxError;
    /// use trellis::gen_server::{Context, GenServer, Init, Response};
    /// use trellis::supervisor::ChildSpec;
    ///
    /// struct Echo;
    /// impl GenServer for Echo {
    ///     type Arg = ();
    ///     type Call = String;
    ///     type Reply = String;
    ///     type Cast = ();
    ///     type Info = ();
    ///     async fn init(&mut self, _: (), _: &mut Context<Self>) -> Result<Init, BoxError> {
    ///         Ok(Init::Ready)
    ///     }
    ///     async fn handle_call(&mut self, s: String, _: &mut Context<Self>) -> Result<Response<String>, BoxError> {
    ///         Ok(Response::Reply(s))
    ///     }
    /// }
    ///
    /// let spec = ChildSpec::gen_server("echo", || Echo, (), "echo");
    /// assert_eq!(spec.id(), "echo");
    /// ```
    pub fn gen_server<S, F>(
        id: impl Into<Cow<'static, str>>,
        server: F,
        arg: S::Arg,
        options: impl Into<crate::gen_server::GenServerOptions>,
    ) -> Self
    where
        S: crate::gen_server::GenServer,
        S::Arg: Clone + Sync,
        F: Fn() -> S + Send + Sync + 'static,
    {
        let options = options.into();
        ChildSpec::new(
            id,
            move |status: TaskStatus<crate::gen_server::Server<S>>| {
                crate::gen_server::Builder::new(server())
                    .arg(arg.clone())
                    .options(options.clone())
                    .serve(status)
            },
        )
    }

    /// Sets the restart type.
    #[must_use]
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets the shutdown policy.
    #[must_use]
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// The child's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The child's restart type.
    pub fn restart_type(&self) -> Restart {
        self.restart
    }

    /// The child's shutdown policy.
    pub fn shutdown_policy(&self) -> Shutdown {
        self.shutdown
    }
}

/// Errors of supervisors and of requests to them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// A child failed to start (it returned an error, panicked or was
    /// killed before reporting `started`); the children started before it
    /// were stopped. A child that returned `Ok` before reporting `started`
    /// did not fail: it [ignored](StartedChild::is_ignored) its start.
    #[error("supervisor {supervisor}: child {child} failed to start: {reason}")]
    StartFailed {
        /// The supervisor's name.
        supervisor: String,
        /// The child's id.
        child: String,
        /// How the child ended.
        reason: ExitReason,
    },
    /// More than `max_restarts` restarts within `max_seconds`: the supervisor
    /// stopped its children and gave up.
    #[error(
        "supervisor {supervisor}: restart intensity exceeded ({max_restarts} in {max_seconds:?}), last: child {child} {reason}"
    )]
    IntensityExceeded {
        /// The supervisor's name.
        supervisor: String,
        /// The id of the child whose exit was one too many.
        child: String,
        /// How that child ended.
        reason: ExitReason,
        /// The configured limit.
        max_restarts: u32,
        /// The configured window.
        max_seconds: Duration,
    },
    /// The supervisor is not running any more.
    #[error("supervisor {supervisor} is not running")]
    NotRunning {
        /// The supervisor's name.
        supervisor: String,
    },
    /// A dynamic supervisor already has `max_children` children.
    #[error("supervisor {supervisor}: max_children ({max}) reached")]
    MaxChildren {
        /// The supervisor's name.
        supervisor: String,
        /// The configured limit.
        max: usize,
    },
    /// No child has this key.
    #[error("supervisor {supervisor}: no child {child}")]
    ChildNotFound {
        /// The supervisor's name.
        supervisor: String,
        /// The key asked for.
        child: ChildId,
    },
    /// A static supervisor already has a child with this id.
    #[error("supervisor {supervisor}: child id {child} already present")]
    DuplicateChild {
        /// The supervisor's name.
        supervisor: String,
        /// The duplicated id.
        child: String,
    },
    /// The options are unusable (the reason says which).
    #[error("invalid supervisor options: {0}")]
    InvalidOptions(&'static str),
    /// The supervisor's name is registered to another process already
    /// (see [`SupervisorOptions::register`]); nothing was started.
    #[error("supervisor {name}: name is already registered")]
    #[doc(alias = "already_started")]
    NameTaken {
        /// The name.
        name: String,
    },
    /// A name or pid leads to no running supervisor:
    /// nothing is registered under it, or what is is not a supervisor.
    #[error("no supervisor {name}")]
    NoSuchSupervisor {
        /// The name (quoted) or pid that was looked up.
        name: String,
    },
}

/// A child started at run time: its key and the value it reported with
/// [`TaskStatus::started`] — or nothing, if it ignored its start.
///
/// A [`ChildSpec::new`] child whose task returns `Ok` without having called
/// `started` *ignored* its start (OTP's `ignore`; a gen_server whose `init`
/// declines): that is not a failure. A static supervisor keeps it, shown as
/// [`ChildState::Ignored`] with no pid and never restarted; a dynamic
/// supervisor forgets it. [`is_ignored`](Self::is_ignored) tells.
#[derive(Debug)]
pub struct StartedChild {
    /// The child's key, for [`Supervisor::terminate_child`].
    pub id: ChildId,
    value: Option<Box<dyn Any + Send>>,
}

impl StartedChild {
    /// Whether the child ignored its start (it returned `Ok` without
    /// reporting `started`): nothing runs, there is no value.
    pub fn is_ignored(&self) -> bool {
        self.value.is_none()
    }

    /// The started value as a `T`, if that is its type (`()` for a
    /// [`ChildSpec::task`]).
    ///
    /// # Errors
    ///
    /// Gives `self` back when the value is not a `T`, or the child ignored
    /// its start.
    pub fn downcast<T: 'static>(self) -> Result<T, Self> {
        match self.value.map(|value| value.downcast::<T>()) {
            Some(Ok(value)) => Ok(*value),
            Some(Err(value)) => Err(StartedChild {
                id: self.id,
                value: Some(value),
            }),
            None => Err(StartedChild {
                id: self.id,
                value: None,
            }),
        }
    }
}

/// How many children a supervisor has (OTP's `count_children`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildCount {
    /// Children the supervisor knows of, running or not.
    pub specs: usize,
    /// Children running (or starting).
    pub active: usize,
    /// Children that are supervisors.
    pub supervisors: usize,
    /// Children that are not supervisors.
    pub workers: usize,
}

pub(crate) enum Command {
    StartChild(
        ChildSpec,
        oneshot::Sender<Result<StartedChild, SupervisorError>>,
    ),
    TerminateChild(ChildId, oneshot::Sender<Result<(), SupervisorError>>),
    /// Stops the child if it runs and starts it again (the observer's
    /// restart action); uses no restart intensity.
    RestartChild(ChildId, oneshot::Sender<Result<(), SupervisorError>>),
    Stop(oneshot::Sender<()>),
}

/// A handle to a running supervisor: cheap to clone, usable from any task.
///
/// It is what [`start`] reports through its [`TaskStatus`], and what
/// [`registry::lookup`](crate::registry::lookup) and
/// [`registry::lookup_pid`](crate::registry::lookup_pid) find for a running
/// supervisor (by name if it [registers](SupervisorOptions::register)). Requests made
/// after the supervisor ended fail with [`SupervisorError::NotRunning`].
#[derive(Clone)]
pub struct Supervisor {
    shared: Arc<tree::Shared>,
    commands: mpsc::UnboundedSender<Command>,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("name", &self.shared.name)
            .field("pid", &self.shared.pid)
            .finish()
    }
}

impl Supervisor {
    /// The supervisor's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The supervisor's process id: alive in the process table while the
    /// supervisor runs (its handle is found with
    /// [`registry::lookup_pid`](crate::registry::lookup_pid)).
    pub fn pid(&self) -> Pid {
        self.shared.pid
    }

    /// Whether the supervisor is still running.
    pub fn is_running(&self) -> bool {
        !self.commands.is_closed()
    }

    fn not_running(&self) -> SupervisorError {
        SupervisorError::NotRunning {
            supervisor: self.shared.name.to_string(),
        }
    }

    /// A snapshot of this supervisor and the tree below it.
    pub fn info(&self) -> SupervisorInfo {
        self.shared.snapshot()
    }

    /// The children, in start order (OTP's `which_children`): each one's
    /// id, key, own pid ([`ChildInfo::pid`]: `None` when it has none, as
    /// OTP's `undefined`), state and restart count. Ignored children and
    /// stopped ones waiting for a restart are listed; temporary children
    /// that ended are not. See [`start_child`](Self::start_child) for an
    /// example.
    pub fn which_children(&self) -> Vec<ChildInfo> {
        self.info().children
    }

    /// Counts the children (OTP's `count_children`): `specs` lists every
    /// child the supervisor knows, `active` those starting or running (not
    /// ignored, stopped or being stopped).
    pub fn count_children(&self) -> ChildCount {
        let info = self.info();
        let mut count = ChildCount {
            specs: info.children.len(),
            ..ChildCount::default()
        };
        for child in &info.children {
            if matches!(child.state, ChildState::Starting | ChildState::Running) {
                // Not `Ignored`, `Stopped` nor `Stopping`.
                count.active += 1;
            }
            if child.supervisor.is_some() {
                count.supervisors += 1;
            } else {
                count.workers += 1;
            }
        }
        count
    }

    /// Adds a child and starts it, after the children already there; returns
    /// its key and started value once its handshake is done (or that it
    /// [ignored](StartedChild::is_ignored) its start).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use trellis::supervisor::{self, ChildSpec, ChildState, SupervisorOptions};
    /// use trellis::TaskStatus;
    ///
    /// trellis::nursery(|n| async move {
    ///     let worker = ChildSpec::task("worker", trellis::wait_shutdown);
    ///     let sup = supervisor::start(&n, vec![worker], SupervisorOptions::new()).await?;
    ///     let port = ChildSpec::new("listener", |status: TaskStatus<u16>| async move {
    ///         status.started(8080);
    ///         trellis::wait_shutdown().await;
    ///     });
    ///     let started = sup.start_child(port).await?;
    ///     let key = started.id;
    ///     assert_eq!(started.downcast::<u16>().unwrap(), 8080);
    ///     let children = sup.which_children();
    ///     assert_eq!((children[1].id.as_str(), children[1].state), ("listener", ChildState::Running));
    ///     sup.terminate_child(key).await?;
    ///     assert_eq!(sup.which_children().len(), 1);
    ///     sup.stop().await?;
    ///     Ok::<_, trellis::BoxError>(())
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SupervisorError::StartFailed`] if the child failed to start (it is
    /// not kept), [`SupervisorError::MaxChildren`] past a dynamic
    /// supervisor's limit, [`SupervisorError::DuplicateChild`] for an id a
    /// static supervisor already has, [`SupervisorError::NotRunning`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not cancel the request: the child is started
    /// and kept, its value dropped.
    pub async fn start_child(&self, spec: ChildSpec) -> Result<StartedChild, SupervisorError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::StartChild(spec, tx))
            .map_err(|_| self.not_running())?;
        rx.await.map_err(|_| self.not_running())?
    }

    /// Stops a child by its [`Shutdown`] policy and removes it; it is not
    /// restarted (OTP's `terminate_child` followed by `delete_child`).
    ///
    /// # Errors
    ///
    /// [`SupervisorError::ChildNotFound`], [`SupervisorError::NotRunning`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not cancel the request.
    pub async fn terminate_child(&self, id: ChildId) -> Result<(), SupervisorError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::TerminateChild(id, tx))
            .map_err(|_| self.not_running())?;
        rx.await.map_err(|_| self.not_running())?
    }

    /// Stops child `id` if it runs and starts it again, as an operator's
    /// restart (for the observer's actions): its restart count grows, its
    /// supervisor's intensity is not used.
    #[cfg_attr(not(feature = "observer"), allow(dead_code))]
    pub(crate) async fn restart_child(&self, id: ChildId) -> Result<(), SupervisorError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::RestartChild(id, tx))
            .map_err(|_| self.not_running())?;
        rx.await.map_err(|_| self.not_running())?
    }

    /// Stops the supervisor gracefully: its children in reverse start order,
    /// each by its [`Shutdown`] (bounded by default), then itself; returns
    /// once they have all ended.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use trellis::supervisor::{self, ChildSpec, SupervisorError, SupervisorOptions};
    ///
    /// trellis::nursery(|n| async move {
    ///     let children = vec![ChildSpec::task("worker", trellis::wait_shutdown)];
    ///     let sup = supervisor::start(&n, children, SupervisorOptions::new()).await?;
    ///     sup.stop().await?;
    ///     assert!(!sup.is_running());
    ///     assert!(matches!(sup.stop().await, Err(SupervisorError::NotRunning { .. })));
    ///     Ok::<_, trellis::BoxError>(())
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SupervisorError::NotRunning`] if it had already ended.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not cancel the stop.
    pub async fn stop(&self) -> Result<(), SupervisorError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Stop(tx))
            .map_err(|_| self.not_running())?;
        rx.await.map_err(|_| self.not_running())
    }
}

impl From<Supervisor> for ProcessRef<Supervisor> {
    fn from(supervisor: Supervisor) -> Self {
        ProcessRef::Handle(supervisor)
    }
}

impl From<&Supervisor> for ProcessRef<Supervisor> {
    fn from(supervisor: &Supervisor) -> Self {
        ProcessRef::Handle(supervisor.clone())
    }
}

/// The supervisor `target` (a handle, a registered name or a pid: OTP's
/// `SupRef`) refers to, looking a name or pid up on each use, so it reaches
/// the current incarnation of a supervisor that was restarted.
///
/// # Examples
///
/// ```
/// use trellis::supervisor::{self, SupervisorError};
///
/// let err = supervisor::resolve("nobody-here").unwrap_err();
/// assert!(matches!(err, SupervisorError::NoSuchSupervisor { .. }));
/// assert_eq!(err.to_string(), "no supervisor \"nobody-here\"");
/// ```
///
/// # Errors
///
/// [`SupervisorError::NoSuchSupervisor`] if the name or pid leads to no
/// running supervisor. A handle always resolves (to a supervisor that may
/// have ended: its requests then fail with [`SupervisorError::NotRunning`]).
pub fn resolve(target: impl Into<ProcessRef<Supervisor>>) -> Result<Supervisor, SupervisorError> {
    let target = target.into();
    let name = match &target {
        ProcessRef::Name(name) => format!("{name:?}"),
        ProcessRef::Pid(pid) => pid.to_string(),
        _ => String::new(),
    };
    target
        .resolve()
        .map_err(|_| SupervisorError::NoSuchSupervisor { name })
}

/// Starts a supervisor of `children` as a task of `nursery` and returns its
/// handle once every child has started (triotp's `supervisor.start`; the
/// [`gen_server::start`](crate::gen_server::start) of supervisors).
///
/// The supervisor runs [`serve`] in the nursery (its task named after
/// [`SupervisorOptions::name`]) until it is stopped, gives up, or has no
/// child left to run; once started, its end is the nursery's business like
/// any task's (a [`SupervisorError`] then fails the nursery).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use trellis::supervisor::{self, ChildSpec, SupervisorOptions};
///
/// trellis::nursery(|n| async move {
///     let children = vec![ChildSpec::task("worker", trellis::wait_shutdown)];
///     let sup = supervisor::start(&n, children, SupervisorOptions::new().name("app")).await?;
///     assert_eq!(sup.name(), "app");
///     assert_eq!(sup.count_children().active, 1);
///     sup.stop().await?;
///     Ok::<_, trellis::BoxError>(())
/// })
/// .await
/// .unwrap();
/// # }
/// ```
///
/// # Errors
///
/// [`SupervisorError::StartFailed`] if a child failed to start,
/// [`SupervisorError::InvalidOptions`] for a zero `max_seconds`,
/// [`SupervisorError::DuplicateChild`] for two children with one id,
/// [`SupervisorError::NameTaken`] if it [registers](SupervisorOptions::register) a
/// name that is taken, [`SupervisorError::NotRunning`] if the nursery is
/// closed or the supervisor ended (panicked, was cancelled) before it started.
///
/// # Cancel safety
///
/// Dropping the future before the supervisor has started cancels it (and
/// the children started so far); after that, nothing is lost.
pub async fn start(
    nursery: &crate::Nursery,
    children: Vec<ChildSpec>,
    options: SupervisorOptions,
) -> Result<Supervisor, SupervisorError> {
    let name = options.name.clone();
    let spawn = crate::SpawnOptions::new().name(name.clone());
    nursery
        .start_with(spawn, move |status| serve(children, options, status))
        .await
        .map_err(|error| start_error(error, &name))
}

/// The supervisor's own error out of a failed start handshake.
pub(crate) fn start_error(error: crate::StartError, name: &str) -> SupervisorError {
    let not_running = || SupervisorError::NotRunning {
        supervisor: name.to_owned(),
    };
    match error {
        crate::StartError::Failed(failure) => match failure.into_error() {
            Some(error) => match error.downcast::<SupervisorError>() {
                Ok(error) => *error,
                Err(_) => not_running(),
            },
            None => not_running(),
        },
        _ => not_running(),
    }
}

/// Runs a supervisor of `children` in the current task, reporting its
/// handle through `status` once every child has started: the body of
/// [`start`], for [`Nursery::start`](crate::Nursery::start) (triotp's
/// `supervisor.start(children, opts, task_status)`).
///
/// Starts the children in order, each after the previous one reported
/// `started`, then reports a [`Supervisor`] handle through `status` and
/// supervises until asked to stop or until no child is left to run. Run it
/// with [`Nursery::start`](crate::Nursery::start), as a
/// [`ChildSpec::supervisor`], or `.await` it with [`TaskStatus::ignored`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use trellis::supervisor::{self, ChildSpec, SupervisorOptions, SupervisorError};
///
/// // A child that always fails: the supervisor gives up after 3 restarts.
/// let crasher = ChildSpec::task("crasher", || async { Err::<(), _>("crash") });
/// let err = supervisor::serve(vec![crasher], SupervisorOptions::new(), trellis::TaskStatus::ignored())
///     .await
///     .unwrap_err();
/// assert!(matches!(err, SupervisorError::IntensityExceeded { ref child, .. } if child == "crasher"));
/// # }
/// ```
///
/// # Errors
///
/// [`SupervisorError::StartFailed`] if a child failed to start,
/// [`SupervisorError::IntensityExceeded`] if children ended too often,
/// [`SupervisorError::InvalidOptions`] for a zero `max_seconds`,
/// [`SupervisorError::DuplicateChild`] for two children with one id,
/// [`SupervisorError::NameTaken`] if it [registers](SupervisorOptions::register) a
/// name that is taken.
///
/// # Cancel safety
///
/// Dropping the future aborts every child at its next `.await`. To stop the
/// tree gracefully, ask the enclosing scope or nursery for a shutdown, or call
/// [`Supervisor::stop`].
pub async fn serve(
    children: Vec<ChildSpec>,
    options: SupervisorOptions,
    status: TaskStatus<Supervisor>,
) -> Result<(), SupervisorError> {
    engine::run(children, options, false, status).await
}

pub(crate) async fn engine_run(
    children: Vec<ChildSpec>,
    options: SupervisorOptions,
    dynamic: bool,
    status: TaskStatus<Supervisor>,
) -> Result<(), SupervisorError> {
    engine::run(children, options, dynamic, status).await
}
