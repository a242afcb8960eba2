//! Applications: named units of a program that a node starts in dependency
//! order and stops in reverse (OTP's `application`, triotp's `application`).
//!
//! An application is a start function with its start argument — usually it
//! runs a [`supervisor`](crate::supervisor) — plus a [`Restart`] type that
//! says what its end means for the node, and the names of the applications
//! it depends on. An [`Applications`] controller runs them as tasks of a
//! nursery; [`node::run`](crate::node::run) owns one and makes it reachable
//! from every task through the free functions [`start`], [`stop`] and
//! [`which_applications`].
//!
//! | you call | we do |
//! |---|---|
//! | [`Applications::start_all`] / [`start`] | check every dependency exists and none is circular (before starting anything), then start each application after its dependencies, each after the previous reported `started`; running ones are skipped |
//! | [`Applications::stop`] / [`stop`] | ask the application to shut down gracefully, wait for it (killed after its [`shutdown`](AppSpec::shutdown) time); an unknown name gives [`ApplicationError::NotStarted`] and changes nothing |
//! | [`Applications::stop_all`] | stop every application in reverse start order |
//! | an application ends on its own | it leaves the running set (it can be started again); by its [`Restart`] type: `Permanent` is restarted within its [limit](AppSpec::max_restarts), then asks the node to stop; `Transient` likewise, only if it failed; `Temporary` is only logged |
//!
//! A name listed twice in one [`start_all`](Applications::start_all) is
//! started once, as its first listing says.
//!
//! | [`AppSpec`] option | default |
//! |---|---|
//! | [`restart`](AppSpec::restart) | `Permanent` (triotp's `permanent=True`) |
//! | [`depends_on`](AppSpec::depends_on) | none |
//! | [`shutdown`](AppSpec::shutdown) | 30 s grace, then killed (logged at `ERROR`) |
//! | [`max_restarts`](AppSpec::max_restarts) / [`max_seconds`](AppSpec::max_seconds) | 0 in 5 s: not restarted (OTP); triotp's default is its supervisor's 3 in 5 s |
//!
//! | triotp / OTP | Trellis | why it differs |
//! |---|---|---|
//! | triotp `app_spec(permanent=False)` restarts a crashed app up to `opts.max_restarts` (default 3) | `Restart::Transient` with [`max_restarts`](AppSpec::max_restarts), default 0 | OTP's application controller never restarts an application; restarts belong to its supervisor, so the default follows OTP |
//! | OTP `application:stop(App)` of an unknown app: `{error, {not_started, App}}` | `Err(ApplicationError::NotStarted { app })` | same |
//! | triotp `application.stop` of an unknown app does nothing | returns the error value above, nothing else happens | the caller learns it |
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use trellis::application::{AppSpec, Applications};
//! use trellis::TaskStatus;
//!
//! let serve = |port: u16, status: TaskStatus<()>| async move {
//!     assert_eq!(port, 8080);
//!     status.started(());
//!     trellis::wait_shutdown().await;
//! };
//! let db = AppSpec::new("db", |(), status: TaskStatus<()>| async move {
//!     status.started(());
//!     trellis::wait_shutdown().await;
//! }, ());
//! let web = AppSpec::new("web", serve, 8080).depends_on("db");
//!
//! trellis::nursery(|n| async move {
//!     let apps = Applications::new(&n);
//!     apps.start_all(vec![web, db]).await?; // db first
//!     assert_eq!(apps.which_applications(), ["db", "web"]);
//!     apps.stop_all().await; // web first
//!     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//! })
//! .await
//! .unwrap();
//! # }
//! ```

use crate::loom::lock;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use tokio::sync::watch;

use crate::cancel::CancelScope;
use crate::nursery::{Nursery, SpawnOptions, TaskOutput, TaskStatus};
use crate::observer::bus::{Event, EventKind};
use crate::process::ExitReason;
use crate::supervisor::intensity::Intensity;
pub use crate::supervisor::{Restart, Shutdown};
use tokio::time::Instant;

use crate::BoxError;

/// An application's default [`Shutdown`]: a 30 s grace period, then a kill.
const DEFAULT_SHUTDOWN: Shutdown = Shutdown::Timeout(Duration::from_secs(30));

type StartFn =
    Arc<dyn Fn(TaskStatus<()>) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;

/// An application: a name, a start function with its argument, a restart
/// type and dependencies (triotp's `app_spec`).
#[derive(Clone)]
#[doc(alias = "app_spec")]
pub struct AppSpec {
    name: Arc<str>,
    start: StartFn,
    restart: Restart,
    dependencies: Vec<Arc<str>>,
    shutdown: Shutdown,
    max_restarts: u32,
    max_seconds: Duration,
}

impl fmt::Debug for AppSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppSpec")
            .field("name", &self.name)
            .field("restart", &self.restart)
            .field("dependencies", &self.dependencies)
            .finish_non_exhaustive()
    }
}

impl AppSpec {
    /// An application named `name` that runs `start(arg.clone(), status)`;
    /// it counts as started when it calls [`TaskStatus::started`].
    ///
    /// The start function usually starts the application's top
    /// [supervisor](crate::supervisor), reports `started`, and returns when
    /// the supervisor does. Its output is `()` or a `Result`: an `Err` or a
    /// panic is a failure; returning before `started` is a start failure.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use trellis::application::{AppSpec, Applications, Restart, Shutdown};
    /// use trellis::TaskStatus;
    ///
    /// let spec = AppSpec::new("greeter", |greeting: &'static str, status: TaskStatus<()>| async move {
    ///     assert_eq!(greeting, "hello");
    ///     status.started(());
    ///     trellis::wait_shutdown().await;
    /// }, "hello")
    /// .restart(Restart::Transient)
    /// .shutdown(Shutdown::Timeout(Duration::from_secs(1)));
    /// assert_eq!(spec.name(), "greeter");
    /// assert_eq!(spec.shutdown_policy(), Shutdown::Timeout(Duration::from_secs(1)));
    ///
    /// trellis::nursery(|n| async move {
    ///     let apps = Applications::new(&n);
    ///     apps.start(spec).await?;
    ///     assert_eq!(apps.which_applications(), ["greeter"]);
    ///     apps.stop("greeter").await?;
    ///     Ok::<_, trellis::BoxError>(())
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn new<A, F, Fut>(name: impl AsRef<str>, start: F, arg: A) -> Self
    where
        A: Clone + Send + Sync + 'static,
        F: Fn(A, TaskStatus<()>) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: TaskOutput,
    {
        let start: StartFn = Arc::new(move |status| {
            let fut = start(arg.clone(), status);
            Box::pin(async move { fut.await.into_result().map(drop) })
        });
        AppSpec {
            name: name.as_ref().into(),
            start,
            restart: Restart::Permanent,
            dependencies: Vec::new(),
            shutdown: DEFAULT_SHUTDOWN,
            max_restarts: 0,
            max_seconds: Duration::from_secs(5),
        }
    }

    /// What the application's end means for the node (see the module table).
    #[must_use]
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Adds an application that must be running before this one starts.
    #[must_use]
    pub fn depends_on(mut self, name: impl AsRef<str>) -> Self {
        self.dependencies.push(name.as_ref().into());
        self
    }

    /// How the application is stopped (default: [`Shutdown::Timeout`] of
    /// 30 s): asked to shut down, then killed — its task dropped at its next
    /// `.await`, logged at `ERROR` — if it has not ended within the grace
    /// period. [`Shutdown::Infinity`] waits as long as it takes;
    /// [`Shutdown::BrutalKill`] drops it at once.
    ///
    /// The default is longer than a worker's 5 s because an application's
    /// top supervisor stops its children one after the other, each within
    /// its own bounded shutdown.
    #[must_use]
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// The application's shutdown policy (see [`shutdown`](Self::shutdown)).
    pub fn shutdown_policy(&self) -> Shutdown {
        self.shutdown
    }

    /// Restarts the application, when its [`Restart`] type says it ends
    /// with a restart (a `Permanent` one always, a `Transient` one after a
    /// failure), up to `max_restarts` times within
    /// [`max_seconds`](Self::max_seconds) (triotp's app `opts`); one end more
    /// and its end stops the node. Default: 0, no restart (OTP's application
    /// controller restarts nothing).
    ///
    /// A restart runs the start function again; the first start's handshake
    /// is the one [`Applications::start`] waits for, later ones are not
    /// waited for. An application stopped with [`Applications::stop`] is
    /// never restarted.
    #[must_use]
    pub fn max_restarts(mut self, max_restarts: u32) -> Self {
        self.max_restarts = max_restarts;
        self
    }

    /// The window of [`max_restarts`](Self::max_restarts) (default: 5 s).
    #[must_use]
    pub fn max_seconds(mut self, window: Duration) -> Self {
        self.max_seconds = window;
        self
    }

    /// The application's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Errors of the application controller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplicationError {
    /// A dependency is neither running nor among the applications started.
    #[error("application {app} depends on {dependency}, which is not known")]
    MissingDependency {
        /// The application.
        app: String,
        /// The missing dependency.
        dependency: String,
    },
    /// Dependencies form a cycle through these applications.
    #[error("circular dependencies between applications {0:?}")]
    Cycle(Vec<String>),
    /// The application failed, or returned, before it reported `started`.
    #[error("application {app} failed to start: {reason}")]
    StartFailed {
        /// The application.
        app: String,
        /// How it ended.
        reason: ExitReason,
    },
    /// No running application has this name (OTP's
    /// `{error, {not_started, App}}`): [`Applications::stop`] of it did
    /// nothing.
    #[error("application {app} is not started")]
    #[doc(alias = "not_started")]
    NotStarted {
        /// The name asked for.
        app: String,
    },
    /// The controller's nursery has finished.
    #[error("the application controller is closed")]
    Closed,
    /// The free functions were called outside a running node.
    #[error("no node is running")]
    NoNode,
}

/// Why the node must stop: an application whose end stops the node ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStop {
    /// The application.
    pub app: String,
    /// How it ended.
    pub reason: ExitReason,
}

struct Running {
    name: Arc<str>,
    scope: CancelScope,
    shutdown: Shutdown,
    done: watch::Receiver<bool>,
}

struct State {
    running: Vec<Running>,
    stopping: Vec<Arc<str>>,
    last_exit: HashMap<Arc<str>, ExitReason>,
}

struct Inner {
    nursery: Nursery,
    state: Mutex<State>,
    node_stop: watch::Sender<Option<NodeStop>>,
    /// How many applications are running or stopping; `None` until one
    /// has started.
    count: watch::Sender<Option<usize>>,
}

/// An application controller: starts applications as tasks of a nursery and
/// stops them (OTP's `application_controller`). Cheap to clone.
#[derive(Clone)]
pub struct Applications {
    inner: Arc<Inner>,
}

impl fmt::Debug for Applications {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Applications")
            .field("running", &self.which_applications())
            .finish()
    }
}

/// Orders `specs` so that each comes after its dependencies; `running` are
/// already started.
fn start_order(
    specs: Vec<AppSpec>,
    running: &[Arc<str>],
) -> Result<Vec<AppSpec>, ApplicationError> {
    let mut by_name: HashMap<Arc<str>, AppSpec> = HashMap::new();
    let mut names = Vec::new();
    for spec in specs {
        if by_name.contains_key(&spec.name) {
            continue; // listed twice: started once, as the first listing says
        }
        names.push(spec.name.clone());
        by_name.insert(spec.name.clone(), spec);
    }
    for name in &names {
        for dep in &by_name[name].dependencies {
            if !by_name.contains_key(dep) && !running.contains(dep) {
                return Err(ApplicationError::MissingDependency {
                    app: name.to_string(),
                    dependency: dep.to_string(),
                });
            }
        }
    }
    // Depth-first, in the order given; `path` detects cycles.
    fn visit(
        name: &Arc<str>,
        by_name: &HashMap<Arc<str>, AppSpec>,
        done: &mut Vec<Arc<str>>,
        path: &mut Vec<Arc<str>>,
    ) -> Result<(), ApplicationError> {
        if done.contains(name) || !by_name.contains_key(name) {
            return Ok(());
        }
        if let Some(at) = path.iter().position(|p| p == name) {
            return Err(ApplicationError::Cycle(
                path[at..].iter().map(|p| p.to_string()).collect(),
            ));
        }
        path.push(name.clone());
        for dep in &by_name[name].dependencies {
            visit(dep, by_name, done, path)?;
        }
        path.pop();
        done.push(name.clone());
        Ok(())
    }
    let mut done = Vec::new();
    for name in &names {
        visit(name, &by_name, &mut done, &mut Vec::new())?;
    }
    Ok(done
        .into_iter()
        .filter_map(|name| by_name.remove(&name))
        .collect())
}

/// How an application's start function ended, as an exit reason.
fn reason_of(out: Result<Result<(), BoxError>, Box<dyn std::any::Any + Send>>) -> ExitReason {
    match out {
        Ok(Ok(())) => ExitReason::Normal,
        Ok(Err(error)) => ExitReason::error(error),
        Err(payload) => ExitReason::Panic(crate::cancel::panic_message(&*payload).into()),
    }
}

/// Runs an application's start function, again after each end its
/// [`Restart`] type and limits allow (see [`AppSpec::max_restarts`]);
/// returns how the last incarnation ended. The first incarnation's
/// handshake is forwarded to `status`.
async fn incarnations(
    inner: Arc<Inner>,
    spec: AppSpec,
    (max_restarts, max_seconds): (u32, Duration),
    status: TaskStatus<()>,
) -> ExitReason {
    let mut intensity = Intensity::new(max_restarts, max_seconds);
    let mut first = Some(status);
    loop {
        let (own, hook, handshake) = TaskStatus::<()>::new();
        let run = AssertUnwindSafe((spec.start)(own)).catch_unwind();
        tokio::pin!(run, handshake);
        let out = match first.take() {
            // A restart: nobody waits for its handshake.
            None => run.await,
            Some(status) => tokio::select! {
                biased;
                out = &mut run => {
                    // The handshake is settled once the incarnation ended.
                    drop(hook);
                    if handshake.await.is_err() {
                        // Never started: a start failure, which the
                        // starter learns from the dropped `status`.
                        return reason_of(out);
                    }
                    status.started(());
                    out
                }
                answer = &mut handshake => {
                    if answer.is_ok() {
                        status.started(());
                    }
                    run.await
                }
            },
        };
        let reason = reason_of(out);
        if !spec.restart.restarts_after(&reason) || inner.is_stopping(&spec.name) {
            return reason;
        }
        if !intensity.record(Instant::now()) {
            if max_restarts > 0 {
                tracing::error!(
                    application = %spec.name,
                    %reason,
                    max_restarts,
                    max_seconds = ?max_seconds,
                    "application restart limit reached"
                );
            }
            return reason;
        }
        if reason.is_abnormal() {
            tracing::error!(application = %spec.name, %reason, "application failed, restarting");
        } else {
            tracing::info!(application = %spec.name, %reason, "application ended, restarting");
        }
    }
}

impl Applications {
    /// A controller whose applications run as tasks of `nursery`.
    pub fn new(nursery: &Nursery) -> Self {
        Applications {
            inner: Arc::new(Inner {
                nursery: nursery.clone(),
                state: Mutex::new(State {
                    running: Vec::new(),
                    stopping: Vec::new(),
                    last_exit: HashMap::new(),
                }),
                node_stop: watch::channel(None).0,
                count: watch::channel(None).0,
            }),
        }
    }

    /// The running applications, in start order (OTP's
    /// `which_applications`).
    pub fn which_applications(&self) -> Vec<String> {
        lock(&self.inner.state)
            .running
            .iter()
            .map(|r| r.name.to_string())
            .collect()
    }

    /// Starts `spec` (its dependencies must be running); does nothing if it
    /// is already running. Returns once the application reported `started`.
    ///
    /// # Errors
    ///
    /// As [`start_all`](Self::start_all).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before the application has started cancels its
    /// start; after that, it runs on.
    pub async fn start(&self, spec: AppSpec) -> Result<(), ApplicationError> {
        self.start_all(vec![spec]).await
    }

    /// Starts `specs` in dependency order, skipping running ones.
    ///
    /// Dependencies are checked before anything starts. If one application
    /// fails to start, the ones started by this call are stopped again.
    ///
    /// # Errors
    ///
    /// [`ApplicationError::MissingDependency`], [`ApplicationError::Cycle`],
    /// before anything starts;
    /// [`ApplicationError::StartFailed`], [`ApplicationError::Closed`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves the applications started so far running.
    pub async fn start_all(&self, specs: Vec<AppSpec>) -> Result<(), ApplicationError> {
        let running: Vec<Arc<str>> = lock(&self.inner.state)
            .running
            .iter()
            .map(|r| r.name.clone())
            .collect();
        let order = start_order(specs, &running)?;
        let mut started: Vec<String> = Vec::new();
        for spec in order {
            if running.contains(&spec.name) {
                continue; // idempotent, as triotp
            }
            let name = spec.name.clone();
            if let Err(error) = self.start_one(spec).await {
                for name in started.iter().rev() {
                    let _ = self.stop(name).await;
                }
                return Err(error);
            }
            started.push(name.to_string());
        }
        Ok(())
    }

    async fn start_one(&self, spec: AppSpec) -> Result<(), ApplicationError> {
        let scope = CancelScope::new();
        let (done_tx, done) = watch::channel(false);
        let inner = Arc::clone(&self.inner);
        let name = spec.name.clone();
        let (restart, shutdown) = (spec.restart, spec.shutdown);
        let task_scope = scope.clone();
        let options = SpawnOptions::new().name(name.to_string()).bubble(false);
        let limits = (spec.max_restarts, spec.max_seconds);
        let result = self
            .inner
            .nursery
            .start_with(options, move |status: TaskStatus<()>| async move {
                // Built inside the scope, so that what it captures
                // (`wait_shutdown()`…) belongs to the application.
                let body = incarnations(Arc::clone(&inner), spec.clone(), limits, status);
                let reason = task_scope.run(body).await.unwrap_or(ExitReason::Killed);
                inner.exited(&spec.name, restart, reason);
                let _ = done_tx.send(true);
            })
            .await;
        match result {
            Ok(()) => {
                tracing::info!(application = %name, "application started");
                app_event(EventKind::ApplicationStarted, &name, None);
                let mut state = lock(&self.inner.state);
                // It may already have ended, between `started` and now.
                if let Some(reason) = state.last_exit.remove(&name) {
                    drop(state);
                    self.inner.ended(&name, restart, reason);
                    self.inner.count_changed(&lock(&self.inner.state));
                } else {
                    state.running.push(Running {
                        name,
                        scope,
                        shutdown,
                        done,
                    });
                    self.inner.count_changed(&state);
                }
                Ok(())
            }
            Err(crate::StartError::Closed) => Err(ApplicationError::Closed),
            Err(_) => {
                let reason = lock(&self.inner.state)
                    .last_exit
                    .remove(&name)
                    .unwrap_or(ExitReason::Killed);
                let reason = match reason {
                    ExitReason::Normal => ExitReason::error("returned before it reported started"),
                    other => other,
                };
                tracing::error!(application = %name, %reason, "application failed to start");
                Err(ApplicationError::StartFailed {
                    app: name.to_string(),
                    reason,
                })
            }
        }
    }

    /// Stops the running application `name` gracefully and waits for it
    /// (within its [`AppSpec::shutdown`] grace, if set).
    ///
    /// # Errors
    ///
    /// [`ApplicationError::NotStarted`] if no application of that name
    /// runs: nothing happens (as OTP's `{error, {not_started, App}}`).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not cancel the stop.
    pub async fn stop(&self, name: &str) -> Result<(), ApplicationError> {
        let mut done = {
            let mut state = lock(&self.inner.state);
            let Some(at) = state.running.iter().position(|r| &*r.name == name) else {
                return Err(ApplicationError::NotStarted {
                    app: name.to_owned(),
                });
            };
            let app = state.running.remove(at);
            state.stopping.push(app.name.clone());
            self.inner.count_changed(&state);
            match app.shutdown {
                Shutdown::Timeout(grace) => app.scope.shutdown(grace),
                Shutdown::Infinity => app.scope.shutdown(Duration::MAX),
                Shutdown::BrutalKill => app.scope.cancel(),
            }
            app.done
        };
        let _ = done.wait_for(|done| *done).await;
        tracing::info!(application = %name, "application stopped");
        app_event(
            EventKind::ApplicationStopped,
            name,
            Some(&ExitReason::Shutdown),
        );
        Ok(())
    }

    /// Stops every running application, in reverse start order.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves the applications not yet stopped running.
    pub async fn stop_all(&self) {
        loop {
            let last = lock(&self.inner.state)
                .running
                .last()
                .map(|r| r.name.clone());
            let Some(name) = last else { return };
            let _ = self.stop(&name).await;
        }
    }

    /// Waits until no application is running or stopping — every one
    /// ended, by itself or by [`stop`](Self::stop) — and at least one had
    /// started.
    ///
    /// [`node::run`](crate::node::run) returns then (triotp's node runs to
    /// completion).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_all_ended(&self) {
        let mut count = self.inner.count.subscribe();
        let _ = count.wait_for(|&n| n == Some(0)).await;
    }

    /// Waits until an application whose end stops the node has ended
    /// (see the module table), and says which and how.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_node_stop(&self) -> NodeStop {
        let mut rx = self.inner.node_stop.subscribe();
        loop {
            if let Some(stop) = rx.borrow_and_update().clone() {
                return stop;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Inner {
    /// Publishes how many applications run or stop, for
    /// [`Applications::wait_all_ended`].
    fn count_changed(&self, state: &State) {
        self.count
            .send_replace(Some(state.running.len() + state.stopping.len()));
    }

    /// Whether `name` is being stopped by [`Applications::stop`].
    fn is_stopping(&self, name: &Arc<str>) -> bool {
        lock(&self.state).stopping.contains(name)
    }

    /// Called by an application's task when it ends.
    fn exited(&self, name: &Arc<str>, restart: Restart, reason: ExitReason) {
        let mut state = lock(&self.state);
        if let Some(at) = state.stopping.iter().position(|n| n == name) {
            state.stopping.remove(at);
            self.count_changed(&state);
            if reason == ExitReason::Killed {
                tracing::error!(application = %name, %reason, "application did not stop within its shutdown time; killed");
            }
            return;
        }
        if let Some(at) = state.running.iter().position(|r| &r.name == name) {
            state.running.remove(at);
            drop(state);
            // The node learns whether this end stops it before it can see
            // that nothing runs any more.
            self.ended(name, restart, reason);
            self.count_changed(&lock(&self.state));
        } else {
            // Not started yet (or between `started` and being listed).
            state.last_exit.insert(name.clone(), reason);
        }
    }

    /// An application ended on its own: decide what it means for the node.
    fn ended(&self, name: &str, restart: Restart, reason: ExitReason) {
        app_event(EventKind::ApplicationStopped, name, Some(&reason));
        if restart.restarts_after(&reason) {
            if reason.is_abnormal() {
                tracing::error!(application = %name, %reason, ?restart, "application failed, stopping the node");
            } else {
                tracing::info!(application = %name, %reason, ?restart, "application ended, stopping the node");
            }
            self.node_stop.send_if_modified(|stop| {
                if stop.is_none() {
                    *stop = Some(NodeStop {
                        app: name.to_owned(),
                        reason,
                    });
                    true
                } else {
                    false
                }
            });
        } else {
            tracing::info!(application = %name, %reason, ?restart, "application ended");
        }
    }
}

/// Publishes an application's start or end to the observer, if one runs.
fn app_event(kind: EventKind, name: &str, reason: Option<&ExitReason>) {
    crate::observer::bus::publish(|| {
        let mut event = Event::new(kind);
        event.child = Some(name.to_owned());
        event.reason = reason.map(ToString::to_string);
        event
    });
}

/// The controller of the running node, for the free functions.
static NODE: Mutex<Option<Applications>> = Mutex::new(None);

pub(crate) fn install(apps: &Applications) -> bool {
    let mut node = lock(&NODE);
    if node.is_some() {
        return false;
    }
    *node = Some(apps.clone());
    true
}

pub(crate) fn uninstall() {
    *lock(&NODE) = None;
}

fn node() -> Result<Applications, ApplicationError> {
    lock(&NODE).clone().ok_or(ApplicationError::NoNode)
}

/// Starts `spec` on the running node (triotp's `application.start`);
/// nothing happens if it is already running.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use trellis::application::{self, AppSpec, ApplicationError, Restart};
/// use trellis::node::{self, NodeOptions};
/// use trellis::TaskStatus;
///
/// let helper = AppSpec::new("helper", |(), status: TaskStatus<()>| async move {
///     status.started(());
///     trellis::wait_shutdown().await;
/// }, ());
/// // An application that starts another, then stops it, and ends.
/// let boss = AppSpec::new("boss", move |(), status: TaskStatus<()>| {
///     let helper = helper.clone();
///     async move {
///         status.started(());
///         application::start(helper).await?;
///         assert!(application::which_applications().contains(&"helper".to_owned()));
///         application::stop("helper").await?;
///         Ok::<_, ApplicationError>(())
///     }
/// }, ())
/// .restart(Restart::Temporary);
/// // Both ended, neither terminated the node: it returns `Ok`.
/// node::run(vec![boss], NodeOptions::new().logging(false).signals(false)).await.unwrap();
/// // Outside a node there is no controller.
/// assert!(matches!(application::stop("boss").await, Err(ApplicationError::NoNode)));
/// # }
/// ```
///
/// # Errors
///
/// [`ApplicationError::NoNode`] outside [`node::run`](crate::node::run);
/// otherwise as [`Applications::start`].
///
/// # Cancel safety
///
/// As [`Applications::start`].
pub async fn start(spec: AppSpec) -> Result<(), ApplicationError> {
    node()?.start(spec).await
}

/// Stops the application `name` on the running node (triotp's
/// `application.stop`): gracefully, within its [`AppSpec::shutdown`]. An
/// application stopped this way did not terminate: its end never stops the
/// node (see [`start`] for an example).
///
/// # Errors
///
/// [`ApplicationError::NoNode`] outside a node;
/// [`ApplicationError::NotStarted`] if no application of that name runs
/// (nothing else happens).
///
/// # Cancel safety
///
/// As [`Applications::stop`].
pub async fn stop(name: &str) -> Result<(), ApplicationError> {
    node()?.stop(name).await
}

/// The applications running on the node, in start order (empty outside a
/// node).
pub fn which_applications() -> Vec<String> {
    node().map(|n| n.which_applications()).unwrap_or_default()
}
