//! The node: the top of a Trellis program (triotp's `node.run`).
//!
//! [`run`] installs logging, starts the applications in dependency order on
//! an [`Applications`] controller reachable from every task through
//! [`application::start`](crate::application::start) & co., and then waits.
//! It returns:
//!
//! | when | `run` returns |
//! |---|---|
//! | SIGINT or SIGTERM | `Ok(())`, after stopping the applications gracefully in reverse start order |
//! | every application has ended (by itself or by [`application::stop`](crate::application::stop)) and none of those ends stops the node | `Ok(())` (triotp's `node.run` runs to completion) |
//! | an application whose end stops the node ended: a `Permanent` one, normally or not, or a `Transient` one that failed (past its [restart limit](AppSpec::max_restarts), if any) | [`NodeError::ApplicationTerminated`] naming it, after stopping the others (OTP: "application terminated") |
//! | an application failed to start | [`NodeError::Start`], nothing left running |
//!
//! An application stopped explicitly ([`application::stop`](crate::application::stop))
//! did not terminate: its end never stops the node.
//!
//! Every stop is bounded: each application gets its
//! [`AppSpec::shutdown`] (30 s by default) and is then killed.
//!
//! One node runs per process, as in Erlang.
//!
//! | option | default |
//! |---|---|
//! | [`log_level`](NodeOptions::log_level) | [`LogLevel::Info`] |
//! | [`log_format`](NodeOptions::log_format) | [`LogFormat::Text`] |
//! | [`logging`](NodeOptions::logging) | `true`: install a subscriber unless one exists |
//! | [`signals`](NodeOptions::signals) | `true`: stop on SIGINT/SIGTERM |
//! | `observer` (feature `observer`) | none: no HTTP server |
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use trellis::application::AppSpec;
//! use trellis::node::{self, NodeError, NodeOptions};
//! use trellis::TaskStatus;
//!
//! // A permanent application that gives up: the node stops and names it.
//! let app = AppSpec::new("worker", |(), status: TaskStatus<()>| async move {
//!     status.started(());
//!     Err::<(), _>("out of work")
//! }, ());
//! let err = node::run(vec![app], NodeOptions::new().logging(false)).await.unwrap_err();
//! assert!(matches!(err, NodeError::ApplicationTerminated { ref app, .. } if app == "worker"));
//! # }
//! ```

use crate::application::{AppSpec, ApplicationError, Applications, NodeStop};
use crate::logging::{self, LogFormat, LogLevel};
use crate::nursery::nursery;
use crate::process::ExitReason;

/// Options of [`run`] (see the [module table](self) for the defaults).
///
/// # Examples
///
/// ```
/// use trellis::logging::{LogFormat, LogLevel};
/// use trellis::node::NodeOptions;
///
/// let options = NodeOptions::new()
///     .log_level(LogLevel::Debug)
///     .log_format(LogFormat::Json)
///     .signals(false);
/// assert!(format!("{options:?}").contains("Debug"));
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct NodeOptions {
    log_level: LogLevel,
    log_format: LogFormat,
    logging: bool,
    signals: bool,
    #[cfg(feature = "observer")]
    observer: Option<crate::observer::ObserverOptions>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            log_level: LogLevel::Info,
            log_format: LogFormat::Text,
            logging: true,
            signals: true,
            #[cfg(feature = "observer")]
            observer: None,
        }
    }
}

impl NodeOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The log level (`RUST_LOG` overrides it).
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.log_level = level;
        self
    }

    /// The log format.
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.log_format = format;
        self
    }

    /// Whether to install a `tracing` subscriber (skipped anyway when the
    /// process already has one).
    pub fn logging(mut self, install: bool) -> Self {
        self.logging = install;
        self
    }

    /// Whether SIGINT and SIGTERM stop the node.
    pub fn signals(mut self, handle: bool) -> Self {
        self.signals = handle;
        self
    }

    /// Serves the [observer](crate::observer) on `addr` while the node runs
    /// (default: none): started before the applications, so that every
    /// process they start is observed, and stopped after them. Read-only
    /// and loopback-only unless [`observer_options`](Self::observer_options)
    /// says otherwise. Needs the cargo feature `observer`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use trellis::application::{AppSpec, Restart};
    /// use trellis::node::{self, NodeOptions};
    /// use trellis::TaskStatus;
    ///
    /// // Port 0: any free port. The application looks at what the observer
    /// // serves as `/metrics`, then ends, and so does the node.
    /// let app = AppSpec::new("peek", |(), status: TaskStatus<()>| async move {
    ///     status.started(());
    ///     assert!(trellis::observer::metrics_text().contains("trellis_processes "));
    ///     Ok::<(), String>(())
    /// }, ()).restart(Restart::Temporary);
    /// let options = NodeOptions::new().logging(false).signals(false);
    /// node::run(vec![app], options.observer("127.0.0.1:0".parse().unwrap())).await.unwrap();
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`node::run`](run) fails with [`NodeError::Observer`] if the observer
    /// cannot start (a non-loopback address, a port in use).
    #[cfg(feature = "observer")]
    pub fn observer(mut self, addr: std::net::SocketAddr) -> Self {
        self.observer = Some(crate::observer::ObserverOptions::new(addr));
        self
    }

    /// Serves the observer with these options (for actions:
    /// [`ObserverOptions::actions`](crate::observer::ObserverOptions::actions)).
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::node::NodeOptions;
    /// use trellis::observer::ObserverOptions;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use trellis::node::{self, NodeError};
    ///
    /// // Not a loopback address, and remote access was not allowed.
    /// let addr = "0.0.0.0:0".parse().unwrap();
    /// let options = NodeOptions::new()
    ///     .logging(false)
    ///     .observer_options(ObserverOptions::new(addr).actions(true));
    /// let err = node::run(vec![], options).await.unwrap_err();
    /// assert!(matches!(err, NodeError::Observer(_)));
    /// # }
    /// ```
    #[cfg(feature = "observer")]
    pub fn observer_options(mut self, options: crate::observer::ObserverOptions) -> Self {
        self.observer = Some(options);
        self
    }
}

/// Errors of [`run`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Another node is running in this process.
    #[error("a node is already running in this process")]
    AlreadyRunning,
    /// The applications could not be started (nothing is left running).
    #[error("starting applications: {0}")]
    Start(#[from] ApplicationError),
    /// An application whose end stops the node ended (OTP's "application
    /// terminated"): a `Permanent` one, however it ended, or a `Transient`
    /// one that failed — past its [restart limit](AppSpec::max_restarts),
    /// if it has one. An application stopped with
    /// [`application::stop`](crate::application::stop) did not terminate.
    #[error("application {app} terminated: {reason}")]
    ApplicationTerminated {
        /// The application.
        app: String,
        /// How it ended.
        reason: ExitReason,
    },
    /// Installing the signal handlers failed.
    #[error("installing signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// The observer did not start ([`NodeOptions::observer`]).
    #[cfg(feature = "observer")]
    #[error("starting the observer: {0}")]
    Observer(#[from] crate::observer::ObserverError),
}

/// Clears the node's controller when `run` ends, however it ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        crate::application::uninstall();
    }
}

/// Why the node is stopping.
enum Stop {
    Signal(&'static str),
    App(NodeStop),
    AllEnded,
}

/// Installs the handlers now (so a signal that arrives while applications
/// start is not lost, nor fatal), and returns the wait for one.
#[cfg(unix)]
fn signals() -> Result<impl std::future::Future<Output = &'static str>, NodeError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(NodeError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(NodeError::Signals)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}

#[cfg(not(unix))]
fn signals() -> Result<impl std::future::Future<Output = &'static str>, NodeError> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        "ctrl-c"
    })
}

/// Runs a node: starts `apps`, waits for a signal, for an application whose
/// end stops the node, or for every application to end; then stops the
/// applications in reverse order (see the [module table](self)).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use trellis::application::{AppSpec, Restart};
/// use trellis::node::{self, NodeOptions};
/// use trellis::TaskStatus;
///
/// // A batch job: a transient application that finishes its work.
/// let job = AppSpec::new("job", |(), status: TaskStatus<()>| async move {
///     status.started(());
///     tokio::time::sleep(Duration::from_secs(1)).await;
/// }, ())
/// .restart(Restart::Transient);
/// // Every application ended, none terminated: the node returns Ok.
/// node::run(vec![job], NodeOptions::new().logging(false).signals(false))
///     .await
///     .unwrap();
/// # }
/// ```
///
/// # Errors
///
/// [`NodeError::AlreadyRunning`], [`NodeError::Start`] (a missing or
/// circular dependency, an application that failed to start),
/// [`NodeError::ApplicationTerminated`], [`NodeError::Signals`].
///
/// # Cancel safety
///
/// Dropping the future cancels every application without waiting for them
/// (no graceful stop): let a signal or the applications end it instead.
pub async fn run(apps: Vec<AppSpec>, options: NodeOptions) -> Result<(), NodeError> {
    if options.logging {
        // A subscriber installed by the program (or a test) stays.
        let _ = logging::init(options.log_level, options.log_format);
    }
    let outcome = nursery(|n| async move {
        let controller = Applications::new(&n);
        if !crate::application::install(&controller) {
            return Err(NodeError::AlreadyRunning);
        }
        let _installed = Installed;
        let signal = if options.signals {
            Some(signals()?)
        } else {
            None
        };
        let signal = async {
            match signal {
                Some(signal) => signal.await,
                None => std::future::pending().await,
            }
        };
        #[cfg(feature = "observer")]
        if let Some(observer) = options.observer {
            crate::observer::start(&n, observer).await?;
        }
        controller.start_all(apps).await?;
        tracing::info!(applications = ?controller.which_applications(), "node started");
        let stop = tokio::select! {
            // An application's termination wins over "all ended": both
            // are seen when the last application terminates.
            biased;
            stop = controller.wait_node_stop() => Stop::App(stop),
            signal = signal => Stop::Signal(signal),
            () = controller.wait_all_ended() => Stop::AllEnded,
        };
        match &stop {
            Stop::Signal(signal) => tracing::info!(%signal, "node stopping"),
            Stop::App(s) => {
                tracing::error!(application = %s.app, reason = %s.reason, "application terminated, node stopping")
            }
            Stop::AllEnded => tracing::info!("every application has ended, node stopping"),
        }
        controller.stop_all().await;
        n.cancel(); // anything left (nothing, normally)
        match stop {
            Stop::App(NodeStop { app, reason }) => {
                Err(NodeError::ApplicationTerminated { app, reason })
            }
            Stop::Signal(_) | Stop::AllEnded => Ok(()),
        }
    })
    .await;
    match outcome {
        Ok(()) => Ok(()),
        Err(crate::NurseryError::Failed { failures }) => {
            // The body's own error, boxed by the nursery: give it back.
            let mut failures = failures.into_iter();
            match failures.next().and_then(|f| f.into_error()) {
                Some(error) => match error.downcast::<NodeError>() {
                    Ok(error) => Err(*error),
                    Err(other) => Err(NodeError::ApplicationTerminated {
                        app: "node".into(),
                        reason: ExitReason::error(other),
                    }),
                },
                None => Err(NodeError::ApplicationTerminated {
                    app: "node".into(),
                    reason: ExitReason::error("node body panicked"),
                }),
            }
        }
        Err(other) => Err(NodeError::ApplicationTerminated {
            app: "node".into(),
            reason: ExitReason::error(other),
        }),
    }
}
