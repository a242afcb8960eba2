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
//! | [`Applications::stop`] / [`stop`] | ask the application to shut down gracefully, wait for it |
//! | [`Applications::stop_all`] | stop every application in reverse start order |
//! | an application ends on its own | by its [`Restart`] type: `Permanent` asks the node to stop; `Transient` only if it failed; `Temporary` is only logged |
//!
//! | [`AppSpec`] option | default |
//! |---|---|
//! | [`restart`](AppSpec::restart) | `Permanent` (triotp's `permanent=True`) |
//! | [`depends_on`](AppSpec::depends_on) | none |
//! | [`shutdown`](AppSpec::shutdown) | 30 s grace, then killed (logged at `ERROR`) |
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
use crate::process::ExitReason;
pub use crate::supervisor::{Restart, Shutdown};

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
    /// Two specs with one name were given together.
    #[error("application {0} given twice")]
    Duplicate(String),
    /// The application failed, or returned, before it reported `started`.
    #[error("application {app} failed to start: {reason}")]
    StartFailed {
        /// The application.
        app: String,
        /// How it ended.
        reason: ExitReason,
    },
    /// No running application has this name.
    #[error("application {0} is not running")]
    NotRunning(String),
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
            return Err(ApplicationError::Duplicate(spec.name.to_string()));
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
    /// is already running.
    ///
    /// # Errors
    ///
    /// As [`start_all`](Self::start_all).
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
    /// [`ApplicationError::Duplicate`] before anything starts;
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
        let result = self
            .inner
            .nursery
            .start_with(options, move |status: TaskStatus<()>| async move {
                // Built inside the scope, so that what it captures
                // (`wait_shutdown()`…) belongs to the application.
                let start = Arc::clone(&spec.start);
                let fut = async move { start(status).await };
                let out = AssertUnwindSafe(task_scope.run(fut)).catch_unwind().await;
                let reason = match out {
                    Ok(Some(Ok(()))) => ExitReason::Normal,
                    Ok(Some(Err(error))) => ExitReason::error(error),
                    Ok(None) => ExitReason::Killed,
                    Err(payload) => {
                        ExitReason::Panic(crate::cancel::panic_message(&*payload).into())
                    }
                };
                inner.exited(&spec.name, restart, reason);
                let _ = done_tx.send(true);
            })
            .await;
        match result {
            Ok(()) => {
                tracing::info!(application = %name, "application started");
                let mut state = lock(&self.inner.state);
                // It may already have ended, between `started` and now.
                if let Some(reason) = state.last_exit.remove(&name) {
                    drop(state);
                    self.inner.ended(&name, restart, reason);
                } else {
                    state.running.push(Running {
                        name,
                        scope,
                        shutdown,
                        done,
                    });
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
    /// [`ApplicationError::NotRunning`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not cancel the stop.
    pub async fn stop(&self, name: &str) -> Result<(), ApplicationError> {
        let mut done = {
            let mut state = lock(&self.inner.state);
            let Some(at) = state.running.iter().position(|r| &*r.name == name) else {
                return Err(ApplicationError::NotRunning(name.to_owned()));
            };
            let app = state.running.remove(at);
            state.stopping.push(app.name.clone());
            match app.shutdown {
                Shutdown::Timeout(grace) => app.scope.shutdown(grace),
                Shutdown::Infinity => app.scope.shutdown(Duration::MAX),
                Shutdown::BrutalKill => app.scope.cancel(),
            }
            app.done
        };
        let _ = done.wait_for(|done| *done).await;
        tracing::info!(application = %name, "application stopped");
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
    /// Called by an application's task when it ends.
    fn exited(&self, name: &Arc<str>, restart: Restart, reason: ExitReason) {
        let mut state = lock(&self.state);
        if let Some(at) = state.stopping.iter().position(|n| n == name) {
            state.stopping.remove(at);
            if reason == ExitReason::Killed {
                tracing::error!(application = %name, %reason, "application did not stop within its shutdown time; killed");
            }
            return;
        }
        if let Some(at) = state.running.iter().position(|r| &r.name == name) {
            state.running.remove(at);
            drop(state);
            self.ended(name, restart, reason);
        } else {
            // Not started yet (or between `started` and being listed).
            state.last_exit.insert(name.clone(), reason);
        }
    }

    /// An application ended on its own: decide what it means for the node.
    fn ended(&self, name: &str, restart: Restart, reason: ExitReason) {
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
/// # Errors
///
/// [`ApplicationError::NoNode`] outside [`node::run`](crate::node::run);
/// otherwise as [`Applications::start`].
pub async fn start(spec: AppSpec) -> Result<(), ApplicationError> {
    node()?.start(spec).await
}

/// Stops the application `name` on the running node.
///
/// # Errors
///
/// [`ApplicationError::NoNode`], [`ApplicationError::NotRunning`].
pub async fn stop(name: &str) -> Result<(), ApplicationError> {
    node()?.stop(name).await
}

/// The applications running on the node, in start order (empty outside a
/// node).
pub fn which_applications() -> Vec<String> {
    node().map(|n| n.which_applications()).unwrap_or_default()
}
